// .npy read/write for the ONNX Runtime peer harness (format versions 1.0-3.0, C order,
// little-endian float16/32/64, int8-64, uint8-64, bool).
import fs from 'node:fs';

const DESCR = {
  '<f4': 'float32', '<f8': 'float64', '<f2': 'float16',
  '<i8': 'int64', '<i4': 'int32', '<i2': 'int16', '|i1': 'int8',
  '<u8': 'uint64', '<u4': 'uint32', '<u2': 'uint16', '|u1': 'uint8', '|b1': 'bool',
};
const ELEM = { float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, int16: 2, int8: 1,
  uint64: 8, uint32: 4, uint16: 2, uint8: 1, bool: 1 };

function typedView(type, buf) {
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  switch (type) {
    case 'float32': return new Float32Array(ab);
    case 'float64': return new Float64Array(ab);
    case 'float16': return new Uint16Array(ab);
    case 'int64': return new BigInt64Array(ab);
    case 'int32': return new Int32Array(ab);
    case 'int16': return new Int16Array(ab);
    case 'int8': return new Int8Array(ab);
    case 'uint64': return new BigUint64Array(ab);
    case 'uint32': return new Uint32Array(ab);
    case 'uint16': return new Uint16Array(ab);
    case 'uint8': return new Uint8Array(ab);
    case 'bool': return new Uint8Array(ab);
    default: throw new Error(`unsupported dtype ${type}`);
  }
}

// Returns {type, dims, data} (data a typed array; ORT's Tensor takes it as is).
export function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY')
    throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  let hlen, off;
  if (major === 1) { hlen = buf.readUInt16LE(8); off = 10; }
  else if (major === 2 || major === 3) { hlen = buf.readUInt32LE(8); off = 12; }
  else throw new Error(`${path}: unsupported .npy version ${major}`);
  if (off + hlen > buf.length) throw new Error(`${path}: truncated header`);
  const header = buf.toString('latin1', off, off + hlen);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${path}: bad header ${header}`);
  if (fortran[1] === 'True') throw new Error(`${path}: Fortran order not supported`);
  const type = DESCR[descr[1]];
  if (!type) throw new Error(`${path}: unsupported dtype ${descr[1]}`);
  const dims = shape[1].split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const start = off + hlen;
  const nbytes = n * ELEM[type];
  if (start + nbytes > buf.length) throw new Error(`${path}: data truncated (${buf.length - start} < ${nbytes} bytes)`);
  const data = typedView(type, buf.subarray(start, start + nbytes));
  return { type, dims, data: type === 'bool' ? Uint8Array.from(data, v => (v ? 1 : 0)) : data };
}

export function writeNpy(path, type, dims, data) {
  const rev = Object.fromEntries(Object.entries(DESCR).map(([k, v]) => [v, k]));
  const descr = rev[type];
  if (!descr) throw new Error(`cannot write dtype ${type}`);
  const shp = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shp}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  let body;
  if (type === 'bool') body = Buffer.from(Uint8Array.from(data, v => (v ? 1 : 0)));
  else body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function f16ToF32(h) {
  const s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function toFloat64(type, data) {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++)
    out[i] = type === 'float16' ? f16ToF32(data[i]) : Number(data[i]);
  return out;
}

// Fidelity metrics: cosine, relative L2 (||a-b|| / ||a||, a = reference), max abs error, and
// top-1 agreement over the last axis (fraction of rows whose argmax agrees).
export function compare(ref, out) {
  if (ref.dims.join(',') !== out.dims.join(','))
    return { ok: false, error: `shape mismatch: ref [${ref.dims}] vs out [${out.dims}]` };
  const a = toFloat64(ref.type, ref.data), b = toFloat64(out.type, out.data);
  let dot = 0, na = 0, nb = 0, nd = 0, maxabs = 0, nonfinite = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    if (!Number.isFinite(b[i]) && Number.isFinite(a[i])) nonfinite++;
    dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; nd += d * d;
    if (Math.abs(d) > maxabs || Number.isNaN(d)) maxabs = Math.abs(d);
  }
  const cos = na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : (na === nb ? 1 : 0);
  const rel = na > 0 ? Math.sqrt(nd) / Math.sqrt(na) : Math.sqrt(nd);
  let top1 = null;
  const last = ref.dims.length ? ref.dims[ref.dims.length - 1] : 1;
  if (last > 1 && a.length >= last) {
    const rows = a.length / last;
    let agree = 0;
    for (let r = 0; r < rows; r++) {
      let ia = 0, ib = 0;
      for (let j = 1; j < last; j++) {
        if (a[r * last + j] > a[r * last + ia]) ia = j;
        if (b[r * last + j] > b[r * last + ib]) ib = j;
      }
      if (ia === ib) agree++;
    }
    top1 = agree / rows;
  }
  return { ok: nonfinite === 0, cosine: cos, rel_l2: rel, max_abs: maxabs, top1, nonfinite };
}

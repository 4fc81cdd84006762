#!/usr/bin/env node
// ONNX Runtime peer harness: loads a model, feeds .npy inputs, runs with a fixed thread count
// (intra-op N, inter-op 1, graph optimisation 'all'), warms up, reports the median latency of
// N runs, writes outputs as .npy and optionally compares them with reference .npy files.
import fs from 'node:fs';
import path from 'node:path';
import { readNpy, writeNpy, compare } from './npy.mjs';

const USAGE = `usage: node bench/ort_run.mjs MODEL.onnx [options]
  --input NAME=FILE.npy   feed input NAME from FILE (repeatable)
  (no --input)            inputs default to MODEL.in.<NAME>.npy next to the model (zoo layout)
  --random-inputs         fill inputs not given by --input deterministically (--seed S,
                          --dim SYM=VALUE); the zoo-layout default is then not used
  --threads N             intra-op threads (default 2; inter-op is always 1)
  --warmup W              warm-up runs (default 3)
  --runs R                timed runs (default 10); latency = median
  --output-dir DIR        write each output as DIR/<NAME>.npy
  --compare-ref           compare each output with MODEL.ref.<NAME>.npy (zoo layout)
  --ref-dir DIR           compare each output with DIR/<NAME>.npy instead
  --max-rel-l2 X          comparison threshold (default 1e-4); exit 1 when exceeded
  --opt-level L           disabled|basic|extended|all (default all)
  --profile               enable ORT profiling (writes onnxruntime_profile_*.json in cwd)
  --json                  print one JSON line with the results
  --quiet                 print only the summary line`;

function die(msg, code = 2) { console.error(`ort_run: ${msg}`); process.exit(code); }

const args = process.argv.slice(2);
if (!args.length || args.includes('--help') || args.includes('-h')) { console.log(USAGE); process.exit(args.length ? 0 : 2); }
const opt = { inputs: {}, dims: {}, threads: 2, warmup: 3, runs: 10, seed: 0, maxRel: 1e-4,
  level: 'all', random: false, compareRef: false, refDir: null, outDir: null, json: false,
  quiet: false, profile: false, model: null };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => { if (i + 1 >= args.length) die(`${a} needs a value`); return args[++i]; };
  if (a === '--input') { const v = next(); const eq = v.indexOf('='); if (eq <= 0) die(`--input wants NAME=FILE, got ${v}`); opt.inputs[v.slice(0, eq)] = v.slice(eq + 1); }
  else if (a === '--dim') { const v = next(); const eq = v.indexOf('='); if (eq <= 0) die(`--dim wants SYM=VALUE`); opt.dims[v.slice(0, eq)] = Number(v.slice(eq + 1)); }
  else if (a === '--threads') opt.threads = Number(next());
  else if (a === '--warmup') opt.warmup = Number(next());
  else if (a === '--runs') opt.runs = Number(next());
  else if (a === '--seed') opt.seed = Number(next());
  else if (a === '--max-rel-l2') opt.maxRel = Number(next());
  else if (a === '--opt-level') opt.level = next();
  else if (a === '--output-dir') opt.outDir = next();
  else if (a === '--ref-dir') opt.refDir = next();
  else if (a === '--random-inputs') opt.random = true;
  else if (a === '--compare-ref') opt.compareRef = true;
  else if (a === '--json') opt.json = true;
  else if (a === '--quiet') opt.quiet = true;
  else if (a === '--profile') opt.profile = true;
  else if (a.startsWith('-')) die(`unknown option ${a}\n${USAGE}`);
  else if (!opt.model) opt.model = a;
  else die(`unexpected argument ${a}`);
}
if (!opt.model) die('no model given');
if (!(opt.threads >= 1) || !(opt.runs >= 1) || !(opt.warmup >= 0)) die('bad --threads/--runs/--warmup');

let ort;
try { ort = await import('onnxruntime-node'); }
catch (e) { die(`cannot load onnxruntime-node (run bench/setup.sh): ${e.message}`); }

const stem = opt.model.replace(/\.onnx$/, '');
const sessOpts = { executionProviders: ['cpu'], intraOpNumThreads: opt.threads, interOpNumThreads: 1,
  graphOptimizationLevel: opt.level, executionMode: 'sequential', enableProfiling: opt.profile };
let t0 = process.hrtime.bigint();
let session;
try { session = await ort.InferenceSession.create(opt.model, sessOpts); }
catch (e) { die(`${opt.model}: ${e.message}`); }
const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;

// Deterministic fill (xorshift32 + Box-Muller) for --random-inputs.
let rs = (opt.seed * 2654435761 + 12345) >>> 0 || 1;
const urand = () => { rs ^= rs << 13; rs >>>= 0; rs ^= rs >>> 17; rs ^= rs << 5; rs >>>= 0; return (rs + 0.5) / 4294967296; };
const nrand = () => Math.sqrt(-2 * Math.log(urand())) * Math.cos(2 * Math.PI * urand());

const meta = session.inputMetadata || [];
const feeds = {};
for (const name of session.inputNames) {
  let file = opt.inputs[name];
  if (!file && !opt.random && fs.existsSync(`${stem}.in.${name}.npy`)) file = `${stem}.in.${name}.npy`;
  if (file) {
    let t;
    try { t = readNpy(file); } catch (e) { die(e.message); }
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    continue;
  }
  if (!opt.random) die(`no data for input '${name}' (give --input ${name}=FILE.npy or --random-inputs)`);
  const m = Array.isArray(meta) ? meta.find(x => x.name === name) : null;
  if (!m || !m.shape) die(`input '${name}': cannot learn its shape for --random-inputs`);
  const dims = m.shape.map(d => (typeof d === 'number' ? d : (opt.dims[d] ?? die(`input '${name}': symbolic dim '${d}' needs --dim ${d}=VALUE`))));
  const n = dims.reduce((a, b) => a * b, 1);
  const type = m.type || 'float32';
  let data;
  if (type === 'float32') data = Float32Array.from({ length: n }, nrand);
  else if (type === 'int64') data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(urand() * 8)));
  else if (type === 'int32') data = Int32Array.from({ length: n }, () => Math.floor(urand() * 8));
  else if (type === 'bool') data = Uint8Array.from({ length: n }, () => (urand() < 0.5 ? 1 : 0));
  else die(`input '${name}': --random-inputs does not fill ${type}`);
  feeds[name] = new ort.Tensor(type, data, dims);
}

let outputs;
for (let i = 0; i < opt.warmup; i++) outputs = await session.run(feeds);
const times = [];
for (let i = 0; i < opt.runs; i++) {
  t0 = process.hrtime.bigint();
  outputs = await session.run(feeds);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
if (opt.profile) { const f = session.endProfiling(); if (!opt.quiet) console.error(`profile: ${f}`); }
const sorted = [...times].sort((a, b) => a - b);
const median = sorted.length % 2 ? sorted[(sorted.length - 1) >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
const result = { model: opt.model, threads: opt.threads, runs: opt.runs, warmup: opt.warmup,
  load_ms: loadMs, median_ms: median, min_ms: sorted[0], max_ms: sorted[sorted.length - 1],
  mean_ms: times.reduce((a, b) => a + b, 0) / times.length, outputs: {} };

if (opt.outDir) fs.mkdirSync(opt.outDir, { recursive: true });
let failed = false;
for (const name of session.outputNames) {
  const t = outputs[name];
  const r = { dims: t.dims, type: t.type };
  if (opt.outDir) writeNpy(path.join(opt.outDir, `${name}.npy`), t.type, t.dims, t.data);
  const refFile = opt.refDir ? path.join(opt.refDir, `${name}.npy`) : (opt.compareRef ? `${stem}.ref.${name}.npy` : null);
  if (refFile) {
    if (!fs.existsSync(refFile)) { r.error = `missing reference ${refFile}`; failed = true; }
    else {
      const c = compare(readNpy(refFile), { type: t.type, dims: t.dims, data: t.data });
      Object.assign(r, c);
      if (!c.ok || !(c.rel_l2 <= opt.maxRel)) { failed = true; r.fail = true; }
    }
  }
  result.outputs[name] = r;
}

if (opt.json) console.log(JSON.stringify(result));
else {
  const fmt = x => x.toFixed(3);
  if (!opt.quiet) {
    console.log(`model ${opt.model}: load ${fmt(loadMs)} ms, ${opt.threads} thread(s), ${opt.warmup} warm-up, ${opt.runs} runs`);
    for (const [name, r] of Object.entries(result.outputs)) {
      let line = `  output ${name} ${r.type}[${r.dims.join(',')}]`;
      if (r.error) line += `  ERROR ${r.error}`;
      else if (r.rel_l2 !== undefined)
        line += `  cosine ${r.cosine.toFixed(8)} rel_l2 ${r.rel_l2.toExponential(3)} max_abs ${r.max_abs.toExponential(3)}` +
          (r.top1 !== null ? ` top1 ${(100 * r.top1).toFixed(1)}%` : '') + (r.fail ? `  FAIL (> ${opt.maxRel})` : '  ok');
      console.log(line);
    }
  }
  console.log(`latency median ${fmt(median)} ms  min ${fmt(result.min_ms)}  max ${fmt(result.max_ms)}  mean ${fmt(result.mean_ms)}`);
}
process.exit(failed ? 1 : 0);

/* onnx_tensor.c — TensorProto decoding shared by the ONNX reader (initializers, Constant nodes,
 * tensor attributes) and the .pb tensor reader; the protobuf nesting pre-check; file helpers. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fe_internal.h"
#include "frontend.h"

/* ---------- protobuf wire pre-check --------------------------------------------------------- */

static int get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (*pos >= len) return -1;
    uint8_t b = p[(*pos)++];
    if (shift == 63 && (b & 0x7e)) return -1;
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) { *v = r; return 0; }
  }
  return -1;
}

static int walk(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth,
                char *why, size_t why_len) {
  if (depth > FE_PROTO_MAX_DEPTH) {
    snprintf(why, why_len, "messages nested deeper than %d levels", FE_PROTO_MAX_DEPTH);
    return -1;
  }
  size_t pos = 0;
  while (pos < len) {
    uint64_t key, v;
    if (get_varint(p, len, &pos, &key) < 0) goto truncated;
    uint32_t wire = (uint32_t)(key & 7);
    uint64_t tag = key >> 3;
    if (tag == 0 || tag > 0x1fffffff) {
      snprintf(why, why_len, "invalid field number %llu at byte %zu", (unsigned long long)tag, pos);
      return -1;
    }
    switch (wire) {
    case 0:
      if (get_varint(p, len, &pos, &v) < 0) goto truncated;
      break;
    case 1:
      if (len - pos < 8) goto truncated;
      pos += 8;
      break;
    case 5:
      if (len - pos < 4) goto truncated;
      pos += 4;
      break;
    case 2: {
      if (get_varint(p, len, &pos, &v) < 0) goto truncated;
      if (v > len - pos) goto truncated;
      const ProtobufCFieldDescriptor *f = d ? protobuf_c_message_descriptor_get_field(d, (unsigned)tag) : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          walk(p + pos, (size_t)v, f->descriptor, depth + 1, why, why_len) < 0)
        return -1;
      pos += (size_t)v;
      break;
    }
    default:
      snprintf(why, why_len, "unsupported wire type %u at byte %zu", wire, pos);
      return -1;
    }
  }
  return 0;
truncated:
  snprintf(why, why_len, "truncated or corrupt protobuf data");
  return -1;
}

int fe_proto_precheck(const void *buf, size_t len, const ProtobufCMessageDescriptor *desc,
                      char *why, size_t why_len) {
  return walk((const uint8_t *)buf, len, desc, 0, why, why_len);
}

/* ---------- dtypes and tensors ------------------------------------------------------------- */

vt_dtype fe_dtype_from_onnx(int32_t dt) {
  switch (dt) {
  case VT_F32: case VT_U8: case VT_I8: case VT_U16: case VT_I16: case VT_I32: case VT_I64:
  case VT_STRING: case VT_BOOL: case VT_F16: case VT_F64: case VT_U32: case VT_U64: case VT_BF16:
    return (vt_dtype)dt;
  default:
    return VT_UNDEFINED;
  }
}

const char *fe_dims_str(int32_t rank, const int64_t *dims, char *buf, size_t n) {
  size_t k = 0;
  if (n == 0) return buf;
  buf[0] = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int32_t i = 0; i < rank && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

int fe_tensor_header(const Onnx__TensorProto *tp, const char *file, const char *what,
                     vt_tensor *t, size_t *nbytes, vt_error *e) {
  memset(t, 0, sizeof *t);
  int32_t odt = tp->has_data_type ? tp->data_type : 0;
  vt_dtype dt = fe_dtype_from_onnx(odt);
  if (dt == VT_UNDEFINED)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: unsupported data type %d", file, what, (int)odt);
  if (dt == VT_STRING)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: string tensors are not supported", file, what);
  if (tp->n_dims > VT_MAX_RANK)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: rank %zu exceeds vtopt's maximum rank %d", file,
                     what, tp->n_dims, VT_MAX_RANK);
  if (tp->segment)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: segmented tensors are not supported", file, what);
  t->dtype = dt;
  t->rank = (int32_t)tp->n_dims;
  for (size_t i = 0; i < tp->n_dims; i++) t->dims[i] = tp->dims[i];
  char dbuf[256];
  for (size_t i = 0; i < tp->n_dims; i++)
    if (tp->dims[i] < 0)
      return vt_errorf(e, VT_ERR_MODEL, "%s: %s: negative dim in %s", file, what,
                       fe_dims_str(t->rank, t->dims, dbuf, sizeof dbuf));
  int64_t numel = vt_shape_numel(t->rank, t->dims);
  size_t esz = vt_dtype_size(dt);
  if (numel < 0 || esz == 0 || (uint64_t)numel > (uint64_t)(SIZE_MAX / 2) / esz ||
      (uint64_t)numel > (uint64_t)INT64_MAX / esz)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: dims %s overflow (too many elements)", file, what,
                     fe_dims_str(t->rank, t->dims, dbuf, sizeof dbuf));
  *nbytes = (size_t)numel * esz;
  return VT_OK;
}

/* Copies n typed-field values into a buffer of dtype dt. */
#define CONVERT(SRC, N, DSTTYPE, EXPR)                                              \
  do {                                                                              \
    DSTTYPE *dst = (DSTTYPE *)buf;                                                  \
    for (size_t i = 0; i < (N); i++) { const __typeof__((SRC)[0]) x = (SRC)[i]; dst[i] = (DSTTYPE)(EXPR); } \
  } while (0)

int fe_tensor_data(Onnx__TensorProto *tp, const char *file, const char *what, vt_tensor *t,
                   size_t nbytes, vt_error *e) {
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: external data is not allowed here", file, what);
  int64_t numel = vt_tensor_numel(t);
  char dbuf[256];
  if (tp->has_raw_data) {
    if (tp->raw_data.len != nbytes)
      return vt_errorf(e, VT_ERR_MODEL,
                       "%s: %s: raw_data has %zu bytes, expected %zu for %s %s", file, what,
                       tp->raw_data.len, nbytes, vt_dtype_name(t->dtype),
                       fe_dims_str(t->rank, t->dims, dbuf, sizeof dbuf));
    if (nbytes > 0) {
      /* protobuf-c unpacked raw_data into its own malloc'd buffer: take it over. */
      t->data = tp->raw_data.data;
      tp->raw_data.data = NULL;
      tp->raw_data.len = 0;
    } else {
      t->data = calloc(1, 16);
      if (!t->data) return vt_errorf(e, VT_ERR_MODEL, "%s: %s: out of memory", file, what);
    }
    t->owned = true;
    return VT_OK;
  }
  size_t have;
  const char *field;
  switch (t->dtype) {
  case VT_F32: have = tp->n_float_data; field = "float_data"; break;
  case VT_F64: have = tp->n_double_data; field = "double_data"; break;
  case VT_I64: have = tp->n_int64_data; field = "int64_data"; break;
  case VT_U32: case VT_U64: have = tp->n_uint64_data; field = "uint64_data"; break;
  default: have = tp->n_int32_data; field = "int32_data"; break;
  }
  if ((uint64_t)have != (uint64_t)numel)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: %s has %zu values, expected %lld for %s %s", file,
                     what, field, have, (long long)numel, vt_dtype_name(t->dtype),
                     fe_dims_str(t->rank, t->dims, dbuf, sizeof dbuf));
  void *buf = malloc(nbytes ? nbytes : 16);
  if (!buf) return vt_errorf(e, VT_ERR_MODEL, "%s: %s: out of memory (%zu bytes)", file, what, nbytes);
  size_t n = (size_t)numel;
  switch (t->dtype) {
  case VT_F32: if (n) memcpy(buf, tp->float_data, n * 4); break;
  case VT_F64: if (n) memcpy(buf, tp->double_data, n * 8); break;
  case VT_I64: if (n) memcpy(buf, tp->int64_data, n * 8); break;
  case VT_U64: if (n) memcpy(buf, tp->uint64_data, n * 8); break;
  case VT_U32: CONVERT(tp->uint64_data, n, uint32_t, x); break;
  case VT_I32: if (n) memcpy(buf, tp->int32_data, n * 4); break;
  case VT_I16: CONVERT(tp->int32_data, n, int16_t, x); break;
  case VT_U16: case VT_F16: case VT_BF16: CONVERT(tp->int32_data, n, uint16_t, (uint32_t)x & 0xffff); break;
  case VT_I8: CONVERT(tp->int32_data, n, int8_t, x); break;
  case VT_U8: CONVERT(tp->int32_data, n, uint8_t, (uint32_t)x & 0xff); break;
  case VT_BOOL: CONVERT(tp->int32_data, n, uint8_t, x != 0); break;
  default:
    free(buf);
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s: unsupported data type %s", file, what,
                     vt_dtype_name(t->dtype));
  }
  t->data = buf;
  t->owned = true;
  return VT_OK;
}

/* ---------- files ---------------------------------------------------------------------------- */

int fe_read_file(const char *path, size_t max, void **out, size_t *len, vt_error *e) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return vt_errorf(e, VT_ERR_MODEL, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return vt_errorf(e, VT_ERR_MODEL, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > (uint64_t)max) {
    fclose(f);
    return vt_errorf(e, VT_ERR_MODEL, "%s: file too large (%lld bytes, limit %zu)", path,
                     (long long)st.st_size, max);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n ? n : 1);
  if (!buf) {
    fclose(f);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory reading %zu bytes", path, n);
  }
  size_t got = n ? fread(buf, 1, n, f) : 0;
  int err = ferror(f);
  fclose(f);
  if (got != n || err) {
    free(buf);
    return vt_errorf(e, VT_ERR_MODEL, "%s: read error", path);
  }
  *out = buf;
  *len = n;
  return VT_OK;
}

/* ---------- TensorProto files ------------------------------------------------------------------ */

int vt_tensorproto_read(const char *path, vt_tensor *t, char **name, vt_error *e) {
  memset(t, 0, sizeof *t);
  if (name) *name = NULL;
  void *buf;
  size_t len;
  int rc = fe_read_file(path, FE_PROTO_MAX, &buf, &len, e);
  if (rc) return rc;
  char why[160];
  if (fe_proto_precheck(buf, len, &onnx__tensor_proto__descriptor, why, sizeof why) < 0) {
    free(buf);
    return vt_errorf(e, VT_ERR_MODEL, "%s: not a valid TensorProto: %s", path, why);
  }
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
  free(buf);
  if (!tp) return vt_errorf(e, VT_ERR_MODEL, "%s: not a valid TensorProto (protobuf parse failed)", path);
  char what[300];
  snprintf(what, sizeof what, "tensor '%s'", tp->name ? tp->name : "");
  size_t nbytes;
  rc = fe_tensor_header(tp, path, what, t, &nbytes, e);
  if (!rc) rc = fe_tensor_data(tp, path, what, t, nbytes, e);
  if (!rc && name && tp->name && tp->name[0]) {
    *name = strdup(tp->name);
    if (!*name) rc = vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path);
  }
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (rc) {
    if (t->owned) free(t->data);
    memset(t, 0, sizeof *t);
  }
  return rc;
}

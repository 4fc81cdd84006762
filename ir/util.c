/* util.c — errors, the arena, dtype facts, half-precision conversion and vt_tensor helpers. */
#include "ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vt_verrorf(vt_error *e, int code, const char *fmt, va_list ap) {
  if (e && e->code == VT_OK) {
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  }
  return code;
}

int vt_errorf(vt_error *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vt_verrorf(e, code, fmt, ap);
  va_end(ap);
  return code;
}

void vt_error_clear(vt_error *e) {
  if (e) { e->code = VT_OK; e->msg[0] = 0; }
}

void vt_assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "vtopt: internal error: %s:%d: assertion '%s' failed\n", file, line, what);
  fflush(stderr);
  _Exit(3);
}

/* ---------- arena: a list of blocks, each serving bump allocations ---------- */
struct vt_arena_block {
  vt_arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void *vt_arena_alloc(vt_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  vt_arena_block *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->used = 0;
    b->cap = cap;
    if (n > 65536 && a->head) {   /* big one-off: keep the current block in front */
      b->next = a->head->next;
      a->head->next = b;
      b->used = n;
      memset(b->data, 0, n);
      return b->data;
    }
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *vt_arena_strdup(vt_arena *a, const char *s) {
  if (!s) s = "";
  size_t n = strlen(s) + 1;
  char *d = vt_arena_alloc(a, n);
  if (d) memcpy(d, s, n);
  return d;
}

void vt_arena_free(vt_arena *a) {
  vt_arena_block *b = a->head;
  while (b) {
    vt_arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
}

/* ---------- dtypes ---------- */
size_t vt_dtype_size(vt_dtype t) {
  switch (t) {
    case VT_F32: case VT_I32: case VT_U32: return 4;
    case VT_U8: case VT_I8: case VT_BOOL: return 1;
    case VT_U16: case VT_I16: case VT_F16: case VT_BF16: return 2;
    case VT_I64: case VT_F64: case VT_U64: return 8;
    case VT_STRING: return sizeof(char *);
    default: return 0;
  }
}

const char *vt_dtype_name(vt_dtype t) {
  switch (t) {
    case VT_F32: return "f32"; case VT_U8: return "u8"; case VT_I8: return "i8";
    case VT_U16: return "u16"; case VT_I16: return "i16"; case VT_I32: return "i32";
    case VT_I64: return "i64"; case VT_STRING: return "string"; case VT_BOOL: return "bool";
    case VT_F16: return "f16"; case VT_F64: return "f64"; case VT_U32: return "u32";
    case VT_U64: return "u64"; case VT_BF16: return "bf16";
    default: return "?";
  }
}

bool vt_dtype_is_float(vt_dtype t) {
  return t == VT_F32 || t == VT_F16 || t == VT_BF16 || t == VT_F64;
}

bool vt_dtype_is_int(vt_dtype t) {
  return t == VT_U8 || t == VT_I8 || t == VT_U16 || t == VT_I16 || t == VT_I32 || t == VT_I64 ||
         t == VT_U32 || t == VT_U64;
}

float vt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else {  /* subnormal: normalise */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; exp--; }
      man &= 0x3ff;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000 | (man << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t vt_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = (int32_t)((x >> 23) & 0xff);
  uint32_t man = x & 0x7fffff;
  if (exp == 255) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - e);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13);
  uint32_t rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;   /* round to nearest even; may carry into exp */
  return (uint16_t)h;
}

float vt_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t vt_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

/* ---------- tensors ---------- */
int64_t vt_shape_numel(int32_t rank, const int64_t *dims) {
  int64_t n = 1;
  for (int32_t i = 0; i < rank; i++) {
    if (dims[i] < 0) return -1;
    if (dims[i] != 0 && n > INT64_MAX / dims[i]) return -1;
    n *= dims[i];
  }
  return n;
}

int64_t vt_tensor_numel(const vt_tensor *t) { return vt_shape_numel(t->rank, t->dims); }

size_t vt_tensor_nbytes(const vt_tensor *t) {
  int64_t n = vt_tensor_numel(t);
  return n < 0 ? 0 : (size_t)n * vt_dtype_size(t->dtype);
}

void vt_tensor_free(vt_tensor *t) {
  if (t->owned) {
    if (t->dtype == VT_STRING && t->data) {
      int64_t n = vt_tensor_numel(t);
      for (int64_t i = 0; i < n; i++) free(((char **)t->data)[i]);
    }
    free(t->data);
  }
  memset(t, 0, sizeof *t);
}

int vt_tensor_alloc(vt_tensor *t, vt_dtype dt, int32_t rank, const int64_t *dims, vt_error *e) {
  vt_tensor_free(t);
  if (rank < 0 || rank > VT_MAX_RANK)
    return vt_errorf(e, VT_ERR_MODEL, "tensor rank %d is not supported (max %d)", rank, VT_MAX_RANK);
  size_t es = vt_dtype_size(dt);
  if (es == 0) return vt_errorf(e, VT_ERR_MODEL, "tensor dtype %d is not supported", (int)dt);
  int64_t n = vt_shape_numel(rank, dims);
  if (n < 0 || (uint64_t)n > ((uint64_t)1 << 40) / es)
    return vt_errorf(e, VT_ERR_MODEL, "tensor of %d dims is too large (element count overflows)", rank);
  void *d = calloc(n ? (size_t)n : 1, es);
  if (!d) return vt_errorf(e, VT_ERR_MODEL, "out of memory allocating %lld elements", (long long)n);
  t->dtype = dt;
  t->rank = rank;
  for (int32_t i = 0; i < rank; i++) t->dims[i] = dims[i];
  t->data = d;
  t->owned = true;
  return VT_OK;
}

double vt_tensor_get_f64(const vt_tensor *t, int64_t i) {
  const void *p = t->data;
  switch (t->dtype) {
    case VT_F32: return ((const float *)p)[i];
    case VT_F64: return ((const double *)p)[i];
    case VT_F16: return vt_f16_to_f32(((const uint16_t *)p)[i]);
    case VT_BF16: return vt_bf16_to_f32(((const uint16_t *)p)[i]);
    case VT_I8: return ((const int8_t *)p)[i];
    case VT_U8: return ((const uint8_t *)p)[i];
    case VT_BOOL: return ((const uint8_t *)p)[i] != 0;
    case VT_I16: return ((const int16_t *)p)[i];
    case VT_U16: return ((const uint16_t *)p)[i];
    case VT_I32: return ((const int32_t *)p)[i];
    case VT_U32: return ((const uint32_t *)p)[i];
    case VT_I64: return (double)((const int64_t *)p)[i];
    case VT_U64: return (double)((const uint64_t *)p)[i];
    default: return 0;
  }
}

int64_t vt_tensor_get_i64(const vt_tensor *t, int64_t i) {
  switch (t->dtype) {
    case VT_I64: return ((const int64_t *)t->data)[i];
    case VT_I32: return ((const int32_t *)t->data)[i];
    case VT_U64: return (int64_t)((const uint64_t *)t->data)[i];
    case VT_F32: case VT_F64: case VT_F16: case VT_BF16: {
      double d = vt_tensor_get_f64(t, i);
      if (!(d > -9.2e18 && d < 9.2e18)) return d > 0 ? INT64_MAX : INT64_MIN;
      return (int64_t)d;
    }
    default: return (int64_t)vt_tensor_get_f64(t, i);
  }
}

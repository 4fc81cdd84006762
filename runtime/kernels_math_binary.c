/* kernels_math_binary.c — reference kernels of the math family's broadcasting ops: arithmetic
 * (Add Sub Mul Div Mod Pow PRelu), variadic (Min Max Sum Mean), comparisons, logical ops,
 * BitShift, Where, Cast and CastLike. float16/bfloat16 are computed in float32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_util.h"

/* ---------- row functions ------------------------------------------------------------------
 * A row function computes n output elements; a and b advance by sa, sb (0 or 1) per element. */
typedef void (*row2_fn)(const void *a, int64_t sa, const void *b, int64_t sb, void *o, int64_t n);

#define ROW2(name, TA, TB, TO, EXPR)                                                            \
  static void name(const void *pa_, int64_t sa, const void *pb_, int64_t sb, void *po_,        \
                   int64_t n) {                                                                 \
    const TA *pa = pa_;                                                                         \
    const TB *pb = pb_;                                                                         \
    TO *po = po_;                                                                               \
    if (sa == 1 && sb == 1) {                                                                   \
      for (int64_t i = 0; i < n; i++) { TA a = pa[i]; TB b = pb[i]; po[i] = (TO)(EXPR); }       \
    } else if (sa == 1 && sb == 0) {                                                            \
      TB b = pb[0];                                                                             \
      for (int64_t i = 0; i < n; i++) { TA a = pa[i]; po[i] = (TO)(EXPR); }                     \
    } else if (sa == 0 && sb == 1) {                                                            \
      TA a = pa[0];                                                                             \
      for (int64_t i = 0; i < n; i++) { TB b = pb[i]; po[i] = (TO)(EXPR); }                     \
    } else {                                                                                    \
      for (int64_t i = 0; i < n; i++) { TA a = pa[i * sa]; TB b = pb[i * sb]; po[i] = (TO)(EXPR); } \
    }                                                                                           \
  }

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MODC, B_MODP, B_MIN, B_MAX, B_PRELU, B_POW,
       B_EQ, B_LT, B_GT, B_LE, B_GE, B_AND, B_OR, B_XOR, B_SHL, B_SHR, B_COUNT };

#define FLOAT_TYPES(X) X(VT_F32, float, f32) X(VT_F64, double, f64)
#define SINT_TYPES(X) X(VT_I8, int8_t, i8) X(VT_I16, int16_t, i16) X(VT_I32, int32_t, i32) X(VT_I64, int64_t, i64)
#define UINT_TYPES(X) X(VT_U8, uint8_t, u8) X(VT_U16, uint16_t, u16) X(VT_U32, uint32_t, u32) X(VT_U64, uint64_t, u64)
#define INT_TYPES(X) SINT_TYPES(X) UINT_TYPES(X)
#define NUM_TYPES(X) FLOAT_TYPES(X) INT_TYPES(X)

static inline double py_fmod(double a, double b) {
  double r = fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

#define DEF_FLOAT(DT, T, s)                                                                  \
  ROW2(add_##s, T, T, T, a + b)                                                              \
  ROW2(sub_##s, T, T, T, a - b)                                                              \
  ROW2(mul_##s, T, T, T, a * b)                                                              \
  ROW2(div_##s, T, T, T, a / b)                                                              \
  ROW2(modc_##s, T, T, T, fmod(a, b))                                                        \
  ROW2(modp_##s, T, T, T, py_fmod(a, b))                                                     \
  ROW2(min_##s, T, T, T, (a != a || b != b) ? a + b : (b < a ? b : a))                       \
  ROW2(max_##s, T, T, T, (a != a || b != b) ? a + b : (b > a ? b : a))                       \
  ROW2(prelu_##s, T, T, T, a < 0 ? a * b : a)
FLOAT_TYPES(DEF_FLOAT)
ROW2(pow_f32, float, float, float, powf(a, b))
ROW2(pow_f64, double, double, double, pow(a, b))

/* Integer arithmetic wraps (through uint64_t, no signed overflow); division by zero is rejected
 * before the rows run (the b == 0 guards only keep the rows total). */
#define DEF_INT_COMMON(T, s)                                                                 \
  ROW2(add_##s, T, T, T, (uint64_t)a + (uint64_t)b)                                          \
  ROW2(sub_##s, T, T, T, (uint64_t)a - (uint64_t)b)                                          \
  ROW2(mul_##s, T, T, T, (uint64_t)a * (uint64_t)b)                                          \
  ROW2(min_##s, T, T, T, b < a ? b : a)                                                      \
  ROW2(max_##s, T, T, T, b > a ? b : a)
#define DEF_SINT(DT, T, s)                                                                   \
  DEF_INT_COMMON(T, s)                                                                       \
  ROW2(div_##s, T, T, T, b == 0 ? 0 : b == -1 ? (T)(0 - (uint64_t)a) : a / b)                \
  ROW2(modc_##s, T, T, T, (b == 0 || b == -1) ? 0 : a % b)                                   \
  ROW2(modp_##s, T, T, T, (b == 0 || b == -1) ? 0 :                                          \
       ((a % b != 0 && ((a % b < 0) != (b < 0))) ? a % b + b : a % b))                       \
  ROW2(prelu_##s, T, T, T, a < 0 ? (T)((uint64_t)a * (uint64_t)b) : a)
#define DEF_UINT(DT, T, s)                                                                   \
  DEF_INT_COMMON(T, s)                                                                       \
  ROW2(div_##s, T, T, T, b == 0 ? 0 : a / b)                                                 \
  ROW2(modc_##s, T, T, T, b == 0 ? 0 : a % b)                                                \
  ROW2(modp_##s, T, T, T, b == 0 ? 0 : a % b)                                                \
  ROW2(prelu_##s, T, T, T, a + 0 * b)
SINT_TYPES(DEF_SINT)
UINT_TYPES(DEF_UINT)

#define DEF_CMP(DT, T, s)                                                                    \
  ROW2(eq_##s, T, T, uint8_t, a == b)                                                        \
  ROW2(lt_##s, T, T, uint8_t, a < b)                                                         \
  ROW2(gt_##s, T, T, uint8_t, a > b)                                                         \
  ROW2(le_##s, T, T, uint8_t, a <= b)                                                        \
  ROW2(ge_##s, T, T, uint8_t, a >= b)
NUM_TYPES(DEF_CMP)
DEF_CMP(VT_BOOL, uint8_t, b8)

ROW2(and_b8, uint8_t, uint8_t, uint8_t, (a != 0) & (b != 0))
ROW2(or_b8, uint8_t, uint8_t, uint8_t, (a != 0) | (b != 0))
ROW2(xor_b8, uint8_t, uint8_t, uint8_t, (a != 0) ^ (b != 0))

#define DEF_SHIFT(DT, T, s)                                                                  \
  ROW2(shl_##s, T, T, T, b >= sizeof(T) * 8 ? 0 : (T)(a << b))                               \
  ROW2(shr_##s, T, T, T, b >= sizeof(T) * 8 ? 0 : (T)(a >> b))
UINT_TYPES(DEF_SHIFT)

static const row2_fn bin_tab[B_COUNT][VT_DTYPE_MAX] = {
#define TAB_ARITH(DT, T, s)                                                                  \
  [B_ADD][DT] = add_##s, [B_SUB][DT] = sub_##s, [B_MUL][DT] = mul_##s, [B_DIV][DT] = div_##s, \
  [B_MODC][DT] = modc_##s, [B_MODP][DT] = modp_##s, [B_MIN][DT] = min_##s,                   \
  [B_MAX][DT] = max_##s, [B_PRELU][DT] = prelu_##s,
#define TAB_CMP(DT, T, s)                                                                    \
  [B_EQ][DT] = eq_##s, [B_LT][DT] = lt_##s, [B_GT][DT] = gt_##s, [B_LE][DT] = le_##s,        \
  [B_GE][DT] = ge_##s,
#define TAB_SHIFT(DT, T, s) [B_SHL][DT] = shl_##s, [B_SHR][DT] = shr_##s,
  NUM_TYPES(TAB_ARITH) NUM_TYPES(TAB_CMP) TAB_CMP(VT_BOOL, uint8_t, b8) UINT_TYPES(TAB_SHIFT)
  [B_POW][VT_F32] = pow_f32, [B_POW][VT_F64] = pow_f64,
  [B_AND][VT_BOOL] = and_b8, [B_OR][VT_BOOL] = or_b8, [B_XOR][VT_BOOL] = xor_b8,
};

static const char *bin_name[B_COUNT] = {"Add", "Sub", "Mul", "Div", "Mod", "Mod", "Min", "Max",
                                        "PRelu", "Pow", "Equal", "Less", "Greater", "LessOrEqual",
                                        "GreaterOrEqual", "And", "Or", "Xor", "BitShift", "BitShift"};

/* ---------- driver -------------------------------------------------------------------------- */
typedef struct {
  const char *a, *b;
  char *o;
  size_t ea, eb, eo;
  int64_t sa, sb;
  row2_fn fn;
} bin_job;

static void bin_row(void *arg, int64_t out_off, const int64_t *in_off, int64_t len) {
  const bin_job *j = arg;
  j->fn(j->a + in_off[0] * j->ea, j->sa, j->b + in_off[1] * j->eb, j->sb, j->o + out_off * j->eo, len);
}

/* o = op(a, b) with broadcasting; a, b, o native dtypes (a's dtype selects the row function). */
static int bin_native(vt_kctx *k, int op, const vt_tensor *a, const vt_tensor *b, vt_tensor *o) {
  row2_fn fn = (a->dtype >= 0 && a->dtype < VT_DTYPE_MAX) ? bin_tab[op][a->dtype] : NULL;
  if (!fn) return vt_kernel_fail(k, "%s is not supported for dtype %s", bin_name[op], vt_dtype_name(a->dtype));
  if ((op == B_DIV || op == B_MODC || op == B_MODP) && vt_dtype_is_int(b->dtype)) {
    int64_t nb = vt_tensor_numel(b);
    size_t eb = vt_dtype_size(b->dtype);
    static const char zero[8];
    for (int64_t i = 0; i < nb; i++)
      if (!memcmp((const char *)b->data + i * eb, zero, eb))
        return vt_kernel_fail(k, "integer %s by zero", op == B_DIV ? "division" : "modulo");
  }
  const vt_tensor *ins[2] = {a, b};
  vt_bcast bc;
  if (vt_bcast_init_t(&bc, o, 2, ins))
    return vt_kernel_fail(k, "inputs of rank %d and %d do not broadcast to the output", a->rank, b->rank);
  if (bc.numel == 0) return VT_OK;
  bin_job j = {a->data, b->data, o->data, vt_dtype_size(a->dtype), vt_dtype_size(b->dtype),
               vt_dtype_size(o->dtype), bc.str[0][bc.rank - 1], bc.str[1][bc.rank - 1], fn};
  vt_bcast_run(&bc, k->pool, bin_row, &j);
  return VT_OK;
}

/* Same, with f16/bf16 operands converted to f32 (output converted back unless it is bool). */
static int bin_any(vt_kctx *k, int op, const vt_tensor *a, const vt_tensor *b, vt_tensor *o) {
  if (!vt_dtype_is_half(a->dtype)) return bin_native(k, op, a, b, o);
  vt_tensor fa = {0}, fb = {0}, fo = {0};
  int rc = vt_tensor_to_f32(a, &fa, k->err);
  if (!rc) rc = vt_tensor_to_f32(b, &fb, k->err);
  bool half_out = vt_dtype_is_half(o->dtype);
  if (!rc && half_out) rc = vt_tensor_alloc(&fo, VT_F32, o->rank, o->dims, k->err);
  if (!rc) rc = bin_native(k, op, &fa, &fb, half_out ? &fo : o);
  if (!rc && half_out) vt_tensor_from_f32(&fo, o);
  vt_tensor_free(&fa);
  vt_tensor_free(&fb);
  vt_tensor_free(&fo);
  return rc;
}

/* Opset < 7 broadcasting (see infer_math.c legacy_b): a view of b padded with trailing 1s so
 * that numpy broadcasting aligns it at `axis` of a. */
static vt_tensor legacy_view(vt_kctx *k, const vt_tensor *a, const vt_tensor *b, bool prelu) {
  vt_tensor v = vt_tensor_view(b);
  int64_t ver = vt_graph_opset(k->g, "");
  if (ver <= 0 || ver >= 7) return v;
  int64_t axis;
  if (prelu) {
    if (b->rank != 1 || a->rank < 2) return v;
    axis = 1;
  } else {
    if (!vt_attr_int(k->node, "broadcast", 0)) return v;
    axis = vt_attr_int(k->node, "axis", a->rank - b->rank);
    if (axis < 0) axis += a->rank;
  }
  if (axis < 0 || axis + b->rank > a->rank) return v;
  for (int32_t d = b->rank; d < a->rank - axis; d++) v.dims[d] = 1;
  v.rank = (int32_t)(a->rank - axis);
  return v;
}

static int binary(vt_kctx *k, int op) {
  if (k->in[0]->dtype != k->in[1]->dtype)
    return vt_kernel_fail(k, "inputs have dtypes %s and %s", vt_dtype_name(k->in[0]->dtype),
                          vt_dtype_name(k->in[1]->dtype));
  vt_tensor b = legacy_view(k, k->in[0], k->in[1], op == B_PRELU);
  return bin_any(k, op, k->in[0], &b, k->out[0]);
}

int vt_kernel_Add(vt_kctx *k) { return binary(k, B_ADD); }
int vt_kernel_Sub(vt_kctx *k) { return binary(k, B_SUB); }
int vt_kernel_Mul(vt_kctx *k) { return binary(k, B_MUL); }
int vt_kernel_Div(vt_kctx *k) { return binary(k, B_DIV); }
int vt_kernel_Mod(vt_kctx *k) {
  bool f = vt_attr_int(k->node, "fmod", 0) != 0;
  if (!f && (vt_dtype_is_float(k->in[0]->dtype)))
    return vt_kernel_fail(k, "Mod with fmod=0 is not defined for float inputs (set fmod=1)");
  return binary(k, f ? B_MODC : B_MODP);
}
int vt_kernel_Equal(vt_kctx *k) { return binary(k, B_EQ); }
int vt_kernel_Less(vt_kctx *k) { return binary(k, B_LT); }
int vt_kernel_Greater(vt_kctx *k) { return binary(k, B_GT); }
int vt_kernel_LessOrEqual(vt_kctx *k) { return binary(k, B_LE); }
int vt_kernel_GreaterOrEqual(vt_kctx *k) { return binary(k, B_GE); }
int vt_kernel_And(vt_kctx *k) { return binary(k, B_AND); }
int vt_kernel_Or(vt_kctx *k) { return binary(k, B_OR); }
int vt_kernel_Xor(vt_kctx *k) { return binary(k, B_XOR); }
int vt_kernel_PRelu(vt_kctx *k) { return binary(k, B_PRELU); }

int vt_kernel_BitShift(vt_kctx *k) {
  const char *d = vt_attr_str(k->node, "direction", "");
  if (!strcmp(d, "LEFT")) return binary(k, B_SHL);
  if (!strcmp(d, "RIGHT")) return binary(k, B_SHR);
  return vt_kernel_fail(k, "direction must be LEFT or RIGHT, got '%s'", d);
}

/* ---------- Pow ----------------------------------------------------------------------------
 * Output dtype is the base's. f32^f32 and f64^f64 use the row tables; everything else goes
 * element by element through double (or exact integer powers for int^int). */
typedef struct { const vt_tensor *a, *b; vt_tensor *o; int64_t sa, sb; } pow_job;

static int64_t ipow(int64_t a, int64_t b) {
  if (b < 0) return (a == 1) ? 1 : (a == -1) ? ((b & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = (uint64_t)a;
  while (b) {
    if (b & 1) r *= x;
    x *= x;
    b >>= 1;
  }
  return (int64_t)r;
}

static void store_f64(vt_tensor *o, int64_t i, double v) {
  void *p = o->data;
  switch (o->dtype) {
  case VT_F32: ((float *)p)[i] = (float)v; break;
  case VT_F64: ((double *)p)[i] = v; break;
  case VT_F16: ((uint16_t *)p)[i] = vt_f32_to_f16((float)v); break;
  case VT_BF16: ((uint16_t *)p)[i] = vt_f32_to_bf16((float)v); break;
  default: {
    int64_t x = (v != v) ? 0 : v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
    switch (o->dtype) {
    case VT_I8: ((int8_t *)p)[i] = (int8_t)x; break;
    case VT_I16: ((int16_t *)p)[i] = (int16_t)x; break;
    case VT_I32: ((int32_t *)p)[i] = (int32_t)x; break;
    case VT_I64: ((int64_t *)p)[i] = x; break;
    case VT_U8: ((uint8_t *)p)[i] = (uint8_t)x; break;
    case VT_U16: ((uint16_t *)p)[i] = (uint16_t)x; break;
    case VT_U32: ((uint32_t *)p)[i] = (uint32_t)x; break;
    case VT_U64: ((uint64_t *)p)[i] = (uint64_t)x; break;
    default: break;
    }
  }
  }
}

static void pow_row(void *arg, int64_t out_off, const int64_t *in_off, int64_t len) {
  const pow_job *j = arg;
  bool ints = vt_dtype_is_int(j->a->dtype) && vt_dtype_is_int(j->b->dtype);
  for (int64_t i = 0; i < len; i++) {
    int64_t ia = in_off[0] + i * j->sa, ib = in_off[1] + i * j->sb;
    if (ints) {
      int64_t r = ipow(vt_tensor_get_i64(j->a, ia), vt_tensor_get_i64(j->b, ib));
      if (j->o->dtype == VT_I64) ((int64_t *)j->o->data)[out_off + i] = r;
      else store_f64(j->o, out_off + i, (double)r);   /* narrower ints: exact below 2^53 */
    } else {
      store_f64(j->o, out_off + i, pow(vt_tensor_get_f64(j->a, ia), vt_tensor_get_f64(j->b, ib)));
    }
  }
}

int vt_kernel_Pow(vt_kctx *k) {
  const vt_tensor *a = k->in[0], *b = k->in[1];
  if (a->dtype == b->dtype && (a->dtype == VT_F32 || a->dtype == VT_F64)) return bin_native(k, B_POW, a, b, k->out[0]);
  if (a->dtype == b->dtype && vt_dtype_is_half(a->dtype)) return bin_any(k, B_POW, a, b, k->out[0]);
  if (!vt_dtype_size(a->dtype) || !vt_dtype_size(b->dtype) || a->dtype == VT_BOOL || b->dtype == VT_BOOL)
    return vt_kernel_fail(k, "Pow is not supported for dtypes %s and %s", vt_dtype_name(a->dtype), vt_dtype_name(b->dtype));
  const vt_tensor *ins[2] = {a, b};
  vt_bcast bc;
  if (vt_bcast_init_t(&bc, k->out[0], 2, ins)) return vt_kernel_fail(k, "inputs do not broadcast");
  if (bc.numel == 0) return VT_OK;
  pow_job j = {a, b, k->out[0], bc.str[0][bc.rank - 1], bc.str[1][bc.rank - 1]};
  vt_bcast_run(&bc, k->pool, pow_row, &j);
  return VT_OK;
}

/* ---------- variadic ------------------------------------------------------------------------ */
typedef struct { const char *x; char *o; size_t es; int64_t sx; } copy_job;

static void copy_row(void *arg, int64_t out_off, const int64_t *in_off, int64_t len) {
  const copy_job *j = arg;
  if (j->sx == 1) {
    memcpy(j->o + out_off * j->es, j->x + in_off[0] * j->es, (size_t)len * j->es);
    return;
  }
  for (int64_t i = 0; i < len; i++) memcpy(j->o + (out_off + i) * j->es, j->x + in_off[0] * j->es, j->es);
}

static int variadic(vt_kctx *k, int op, bool mean) {
  vt_tensor *o = k->out[0];
  for (int i = 1; i < k->n_in; i++)
    if (k->in[i]->dtype != k->in[0]->dtype)
      return vt_kernel_fail(k, "input %d has dtype %s, input 0 has %s", i, vt_dtype_name(k->in[i]->dtype),
                            vt_dtype_name(k->in[0]->dtype));
  if (mean && !vt_dtype_is_float(o->dtype)) return vt_kernel_fail(k, "Mean needs float inputs");
  /* work in f32 for halves */
  bool half = vt_dtype_is_half(o->dtype);
  vt_tensor acc = vt_tensor_view(o), tmp = {0};
  int rc = VT_OK;
  if (half) {
    rc = vt_tensor_alloc(&acc, VT_F32, o->rank, o->dims, k->err);
    if (rc) return rc;
  }
  for (int i = 0; i < k->n_in && !rc; i++) {
    const vt_tensor *x = k->in[i];
    vt_tensor xv = vt_tensor_view(x);
    if (half) {
      rc = vt_tensor_to_f32(x, &tmp, k->err);
      if (rc) break;
      xv = tmp;
    }
    if (i == 0) {
      /* acc = x broadcast to the output shape */
      const vt_tensor *ins[1] = {&xv};
      vt_bcast bc;
      if (vt_bcast_init_t(&bc, &acc, 1, ins)) { rc = vt_kernel_fail(k, "input 0 does not broadcast to the output"); break; }
      copy_job cj = {xv.data, acc.data, vt_dtype_size(acc.dtype), bc.str[0][bc.rank - 1]};
      if (bc.numel) vt_bcast_run(&bc, k->pool, copy_row, &cj);
    } else {
      rc = bin_native(k, op, &acc, &xv, &acc);
    }
    if (half) vt_tensor_free(&tmp);
  }
  if (!rc && mean) {
    int64_t n = vt_tensor_numel(&acc);
    if (acc.dtype == VT_F32) {
      float *p = acc.data;
      float inv = 1.0f / (float)k->n_in;
      for (int64_t i = 0; i < n; i++) p[i] *= inv;
    } else {
      double *p = acc.data;
      for (int64_t i = 0; i < n; i++) p[i] /= (double)k->n_in;
    }
  }
  if (half) {
    if (!rc) vt_tensor_from_f32(&acc, o);
    vt_tensor_free(&acc);
  }
  return rc;
}

int vt_kernel_Min(vt_kctx *k) { return variadic(k, B_MIN, false); }
int vt_kernel_Max(vt_kctx *k) { return variadic(k, B_MAX, false); }
int vt_kernel_Sum(vt_kctx *k) { return variadic(k, B_ADD, false); }
int vt_kernel_Mean(vt_kctx *k) { return variadic(k, B_ADD, true); }

/* ---------- Where ---------------------------------------------------------------------------- */
typedef struct { const uint8_t *c; const char *x, *y; char *o; size_t es; int64_t sc, sx, sy; } where_job;

#define WHERE_ROW(T)                                                                         \
  {                                                                                          \
    const T *x = (const T *)(j->x + in_off[1] * j->es), *y = (const T *)(j->y + in_off[2] * j->es); \
    T *o = (T *)(j->o + out_off * j->es);                                                    \
    const uint8_t *c = j->c + in_off[0];                                                     \
    for (int64_t i = 0; i < len; i++) o[i] = c[i * j->sc] ? x[i * j->sx] : y[i * j->sy];     \
    return;                                                                                  \
  }

static void where_row(void *arg, int64_t out_off, const int64_t *in_off, int64_t len) {
  const where_job *j = arg;
  switch (j->es) {
  case 1: WHERE_ROW(uint8_t)
  case 2: WHERE_ROW(uint16_t)
  case 4: WHERE_ROW(uint32_t)
  case 8: WHERE_ROW(uint64_t)
  default: break;
  }
}

int vt_kernel_Where(vt_kctx *k) {
  const vt_tensor *c = k->in[0], *x = k->in[1], *y = k->in[2];
  vt_tensor *o = k->out[0];
  if (c->dtype != VT_BOOL) return vt_kernel_fail(k, "condition must be bool");
  if (x->dtype != y->dtype) return vt_kernel_fail(k, "X and Y dtypes differ");
  size_t es = vt_dtype_size(x->dtype);
  if (es == 0) return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  const vt_tensor *ins[3] = {c, x, y};
  vt_bcast bc;
  if (vt_bcast_init_t(&bc, o, 3, ins)) return vt_kernel_fail(k, "inputs do not broadcast");
  if (bc.numel == 0) return VT_OK;
  int r = bc.rank - 1;
  where_job j = {c->data, x->data, y->data, o->data, es, bc.str[0][r], bc.str[1][r], bc.str[2][r]};
  vt_bcast_run(&bc, k->pool, where_row, &j);
  return VT_OK;
}

/* ---------- Cast ----------------------------------------------------------------------------
 * Integer/bool -> integer/bool goes through int64 (wrapping like numpy astype); everything else
 * through double. float -> integer saturates (NaN -> 0), which ONNX leaves undefined. Done in
 * chunks of CHUNK elements. */
#define CHUNK 1024

static bool is_intlike(vt_dtype t) { return vt_dtype_is_int(t) || t == VT_BOOL; }

static void load_i64(const vt_tensor *t, int64_t i0, int64_t n, int64_t *v) {
  const void *p = t->data;
  switch (t->dtype) {
#define L(DT, T) case DT: for (int64_t i = 0; i < n; i++) v[i] = (int64_t)((const T *)p)[i0 + i]; break;
    VT_FOR_INT_TYPES(L)
#undef L
  case VT_BOOL: for (int64_t i = 0; i < n; i++) v[i] = ((const uint8_t *)p)[i0 + i] != 0; break;
  default: break;
  }
}

static void load_f64(const vt_tensor *t, int64_t i0, int64_t n, double *v) {
  const void *p = t->data;
  switch (t->dtype) {
#define L(DT, T) case DT: for (int64_t i = 0; i < n; i++) v[i] = (double)((const T *)p)[i0 + i]; break;
    VT_FOR_NUM_TYPES(L)
#undef L
  case VT_BOOL: for (int64_t i = 0; i < n; i++) v[i] = ((const uint8_t *)p)[i0 + i] != 0; break;
  case VT_F16: for (int64_t i = 0; i < n; i++) v[i] = vt_f16_to_f32(((const uint16_t *)p)[i0 + i]); break;
  case VT_BF16: for (int64_t i = 0; i < n; i++) v[i] = vt_bf16_to_f32(((const uint16_t *)p)[i0 + i]); break;
  default: break;
  }
}

static void store_i64(vt_tensor *t, int64_t i0, int64_t n, const int64_t *v) {
  void *p = t->data;
  switch (t->dtype) {
#define S(DT, T) case DT: for (int64_t i = 0; i < n; i++) ((T *)p)[i0 + i] = (T)v[i]; break;
    VT_FOR_INT_TYPES(S)
#undef S
  case VT_BOOL: for (int64_t i = 0; i < n; i++) ((uint8_t *)p)[i0 + i] = v[i] != 0; break;
  default: break;
  }
}

/* Saturating double -> integer type conversion bounds. */
#define SAT(T, lo, hi) \
  for (int64_t i = 0; i < n; i++) { double x = v[i]; ((T *)p)[i0 + i] = x != x ? 0 : x <= (lo) ? (T)(lo) : x >= (hi) ? (T)(hi) : (T)x; }

static void store_f64v(vt_tensor *t, int64_t i0, int64_t n, const double *v) {
  void *p = t->data;
  switch (t->dtype) {
  case VT_F32: for (int64_t i = 0; i < n; i++) ((float *)p)[i0 + i] = (float)v[i]; break;
  case VT_F64: for (int64_t i = 0; i < n; i++) ((double *)p)[i0 + i] = v[i]; break;
  case VT_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)p)[i0 + i] = vt_f32_to_f16((float)v[i]); break;
  case VT_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)p)[i0 + i] = vt_f32_to_bf16((float)v[i]); break;
  case VT_BOOL: for (int64_t i = 0; i < n; i++) ((uint8_t *)p)[i0 + i] = v[i] != 0; break;
  case VT_I8: SAT(int8_t, -128.0, 127.0) break;
  case VT_I16: SAT(int16_t, -32768.0, 32767.0) break;
  case VT_I32: SAT(int32_t, -2147483648.0, 2147483647.0) break;
  case VT_I64: {
    for (int64_t i = 0; i < n; i++) {
      double x = v[i];
      ((int64_t *)p)[i0 + i] = x != x ? 0 : x <= -9223372036854775808.0 ? INT64_MIN
                               : x >= 9223372036854775807.0 ? INT64_MAX : (int64_t)x;
    }
    break;
  }
  case VT_U8: SAT(uint8_t, 0.0, 255.0) break;
  case VT_U16: SAT(uint16_t, 0.0, 65535.0) break;
  case VT_U32: SAT(uint32_t, 0.0, 4294967295.0) break;
  case VT_U64: {
    for (int64_t i = 0; i < n; i++) {
      double x = v[i];
      ((uint64_t *)p)[i0 + i] = (x != x || x <= 0) ? 0 : x >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)x;
    }
    break;
  }
  default: break;
  }
}
#undef SAT

typedef struct { const vt_tensor *x; vt_tensor *o; } cast_job;

static void cast_range(void *arg, int64_t b, int64_t e) {
  const cast_job *j = arg;
  bool ints = is_intlike(j->x->dtype) && is_intlike(j->o->dtype);
  int64_t iv[CHUNK];
  double dv[CHUNK];
  b *= CHUNK;
  e *= CHUNK;
  int64_t n = vt_tensor_numel(j->x);
  if (e > n) e = n;
  for (int64_t i = b; i < e; i += CHUNK) {
    int64_t m = e - i < CHUNK ? e - i : CHUNK;
    if (ints) {
      load_i64(j->x, i, m, iv);
      store_i64(j->o, i, m, iv);
    } else if (j->x->dtype == VT_U64 || j->x->dtype == VT_I64) {
      load_i64(j->x, i, m, iv);
      if (j->x->dtype == VT_U64)
        for (int64_t t = 0; t < m; t++) dv[t] = (double)(uint64_t)iv[t];
      else
        for (int64_t t = 0; t < m; t++) dv[t] = (double)iv[t];
      store_f64v(j->o, i, m, dv);
    } else {
      load_f64(j->x, i, m, dv);
      store_f64v(j->o, i, m, dv);
    }
  }
}

static int cast(vt_kctx *k, vt_dtype to) {
  const vt_tensor *x = k->in[0];
  vt_tensor *o = k->out[0];
  if (to == VT_STRING || x->dtype == VT_STRING)
    return vt_kernel_fail(k, "cast from %s to %s: string tensors are not supported",
                          vt_dtype_name(x->dtype), vt_dtype_name(to));
  if (!vt_dtype_size(to) || !vt_dtype_size(x->dtype) || o->dtype != to)
    return vt_kernel_fail(k, "cast from %s to dtype %d is not supported", vt_dtype_name(x->dtype), (int)to);
  int64_t n = vt_tensor_numel(x);
  if (n == 0) return VT_OK;
  if (x->dtype == to) {
    memcpy(o->data, x->data, vt_tensor_nbytes(x));
    return VT_OK;
  }
  cast_job j = {x, o};
  int64_t chunks = (n + CHUNK - 1) / CHUNK;
  if (n >= VT_PAR_MIN && k->pool) vt_pool_for(k->pool, chunks, cast_range, &j);
  else cast_range(&j, 0, chunks);
  return VT_OK;
}

int vt_kernel_Cast(vt_kctx *k) { return cast(k, (vt_dtype)vt_attr_int(k->node, "to", 0)); }
int vt_kernel_CastLike(vt_kctx *k) { return cast(k, k->in[1]->dtype); }

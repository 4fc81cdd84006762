/* kernels_math_unary.c — reference kernels of the math family's elementwise unary ops
 * (activations, rounding, trigonometry, Clip, Not, IsNaN, IsInf). Float ops run in the input's
 * precision (f32 or f64) with type-generic math; f16/bf16 are computed in f32. Neg, Abs, Relu,
 * Sign, Clip also take integer inputs. */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "kernels_util.h"

typedef struct { double alpha, beta, gamma; } uparams;

typedef void (*urow_fn)(const void *x, void *y, int64_t n, const uparams *p);

/* EXPR is written in terms of x (type T) and alpha, beta, gamma (type T); K(v) is a T literal. */
#define K(v) ((T)(v))
#define UROW(name, TT, EXPR)                                                                   \
  static void name(const void *px_, void *py_, int64_t n, const uparams *p) {                  \
    typedef TT T;                                                                               \
    const T *px = px_;                                                                          \
    T *py = py_;                                                                                \
    const T alpha = (T)p->alpha, beta = (T)p->beta, gamma = (T)p->gamma;                        \
    (void)alpha; (void)beta; (void)gamma;                                                       \
    for (int64_t i = 0; i < n; i++) {                                                           \
      T x = px[i];                                                                              \
      py[i] = (T)(EXPR);                                                                        \
    }                                                                                           \
  }
#define UFLOAT(name, EXPR) UROW(name##_f32, float, EXPR) UROW(name##_f64, double, EXPR)

static inline float sigm_f(float x) { return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)); }
static inline double sigm_d(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }
#define SIGM(x) _Generic((x), float: sigm_f, default: sigm_d)(x)
/* log(1 + exp(x)) without overflow */
#define SOFTPLUS(x) ((x) > 0 ? (x) + log1p(exp(-(x))) : log1p(exp(x)))

UFLOAT(sqrt, sqrt(x))
UFLOAT(recip, K(1) / x)
UFLOAT(neg, -x)
UFLOAT(abs, fabs(x))
UFLOAT(exp, exp(x))
UFLOAT(log, log(x))
UFLOAT(erf, erf(x))
UFLOAT(tanh, tanh(x))
UFLOAT(sigmoid, SIGM(x))
UFLOAT(relu, x < 0 ? K(0) : x)
UFLOAT(leaky, x < 0 ? alpha * x : x)
UFLOAT(thresh, x > alpha ? x : K(0))
UFLOAT(hsigmoid, fmax(K(0), fmin(K(1), alpha * x + beta)))
UFLOAT(hswish, x * fmax(K(0), fmin(K(1), x / K(6) + K(0.5))))
UFLOAT(gelu, K(0.5) * x * (K(1) + erf(x * K(0.70710678118654752440))))
UFLOAT(gelu_tanh, K(0.5) * x * (K(1) + tanh(K(0.79788456080286535588) * (x + K(0.044715) * x * x * x))))
UFLOAT(floor, floor(x))
UFLOAT(ceil, ceil(x))
UFLOAT(round, rint(x))   /* half to even in the default rounding mode */
UFLOAT(sign, x > 0 ? K(1) : x < 0 ? K(-1) : x)
UFLOAT(sin, sin(x))
UFLOAT(cos, cos(x))
UFLOAT(tan, tan(x))
UFLOAT(asin, asin(x))
UFLOAT(acos, acos(x))
UFLOAT(atan, atan(x))
UFLOAT(sinh, sinh(x))
UFLOAT(cosh, cosh(x))
UFLOAT(asinh, asinh(x))
UFLOAT(acosh, acosh(x))
UFLOAT(atanh, atanh(x))
UFLOAT(elu, x < 0 ? alpha * expm1(x) : x)
UFLOAT(selu, x > 0 ? gamma * x : gamma * (alpha * exp(x) - alpha))
UFLOAT(celu, fmax(K(0), x) + fmin(K(0), alpha * expm1(x / alpha)))
UFLOAT(softplus, SOFTPLUS(x))
UFLOAT(softsign, x / (K(1) + fabs(x)))
UFLOAT(mish, x * tanh(SOFTPLUS(x)))
UFLOAT(shrink, x < -beta ? x + alpha : x > beta ? x - alpha : K(0))

/* integer versions (wrapping negation through uint64_t) */
#define UINT_ROWS(DT, TT)                                                                    \
  UROW(neg_##DT, TT, (T)(0 - (uint64_t)x))                                                    \
  UROW(abs_##DT, TT, x < 0 ? (T)(0 - (uint64_t)x) : x)                                        \
  UROW(relu_##DT, TT, x < 0 ? 0 : x)                                                          \
  UROW(sign_##DT, TT, (x > 0) - (x < 0))
UINT_ROWS(i8, int8_t) UINT_ROWS(i16, int16_t) UINT_ROWS(i32, int32_t) UINT_ROWS(i64, int64_t)
#define UUINT_ROWS(DT, TT)                                                                   \
  UROW(neg_##DT, TT, (T)(0 - (uint64_t)x))                                                    \
  UROW(abs_##DT, TT, x)                                                                       \
  UROW(relu_##DT, TT, x)                                                                      \
  UROW(sign_##DT, TT, x > 0)
UUINT_ROWS(u8, uint8_t) UUINT_ROWS(u16, uint16_t) UUINT_ROWS(u32, uint32_t) UUINT_ROWS(u64, uint64_t)

/* ---------- driver ---------------------------------------------------------------------------- */
typedef struct { const char *x; char *y; size_t ex, ey; urow_fn fn; const uparams *p; } ujob;

static void urange(void *arg, int64_t b, int64_t e) {
  const ujob *j = arg;
  j->fn(j->x + b * j->ex, j->y + b * j->ey, e - b, j->p);
}

static void urun(vt_kctx *k, urow_fn fn, const vt_tensor *x, vt_tensor *y, const uparams *p) {
  int64_t n = vt_tensor_numel(x);
  ujob j = {x->data, y->data, vt_dtype_size(x->dtype), vt_dtype_size(y->dtype), fn, p};
  if (n >= VT_PAR_MIN && k->pool) vt_pool_for(k->pool, n, urange, &j);
  else if (n > 0) urange(&j, 0, n);
}

/* Runs a float row function pair (f32, f64) on input 0 -> output 0; halves through f32. */
static int ufloat(vt_kctx *k, urow_fn f32, urow_fn f64, const uparams *p) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  if (x->dtype == VT_F32) { urun(k, f32, x, y, p); return VT_OK; }
  if (x->dtype == VT_F64) { urun(k, f64, x, y, p); return VT_OK; }
  if (vt_dtype_is_half(x->dtype)) {
    vt_tensor t = {0};
    int rc = vt_tensor_to_f32(x, &t, k->err);
    if (rc) return rc;
    urun(k, f32, &t, &t, p);
    vt_tensor_from_f32(&t, y);
    vt_tensor_free(&t);
    return VT_OK;
  }
  return vt_kernel_fail(k, "dtype %s is not supported (float inputs only)", vt_dtype_name(x->dtype));
}

static const uparams P0 = {0, 0, 0};
#define FLOAT_KERNEL(id, row)                                                                \
  int vt_kernel_##id(vt_kctx *k) { return ufloat(k, row##_f32, row##_f64, &P0); }
FLOAT_KERNEL(Sqrt, sqrt) FLOAT_KERNEL(Reciprocal, recip) FLOAT_KERNEL(Exp, exp) FLOAT_KERNEL(Log, log)
FLOAT_KERNEL(Erf, erf) FLOAT_KERNEL(Tanh, tanh) FLOAT_KERNEL(Sigmoid, sigmoid)
FLOAT_KERNEL(HardSwish, hswish) FLOAT_KERNEL(MsGelu, gelu) FLOAT_KERNEL(Floor, floor)
FLOAT_KERNEL(Ceil, ceil) FLOAT_KERNEL(Round, round) FLOAT_KERNEL(Sin, sin) FLOAT_KERNEL(Cos, cos)
FLOAT_KERNEL(Tan, tan) FLOAT_KERNEL(Asin, asin) FLOAT_KERNEL(Acos, acos) FLOAT_KERNEL(Atan, atan)
FLOAT_KERNEL(Sinh, sinh) FLOAT_KERNEL(Cosh, cosh) FLOAT_KERNEL(Asinh, asinh)
FLOAT_KERNEL(Acosh, acosh) FLOAT_KERNEL(Atanh, atanh) FLOAT_KERNEL(Softplus, softplus)
FLOAT_KERNEL(Softsign, softsign) FLOAT_KERNEL(Mish, mish)
#undef FLOAT_KERNEL

int vt_kernel_LeakyRelu(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "alpha", 0.01f), 0, 0};
  return ufloat(k, leaky_f32, leaky_f64, &p);
}
int vt_kernel_ThresholdedRelu(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "alpha", 1.0f), 0, 0};
  return ufloat(k, thresh_f32, thresh_f64, &p);
}
int vt_kernel_HardSigmoid(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "alpha", 0.2f), vt_attr_float(k->node, "beta", 0.5f), 0};
  return ufloat(k, hsigmoid_f32, hsigmoid_f64, &p);
}
int vt_kernel_Elu(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "alpha", 1.0f), 0, 0};
  return ufloat(k, elu_f32, elu_f64, &p);
}
int vt_kernel_Selu(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "alpha", 1.67326319217681884765625f), 0,
               vt_attr_float(k->node, "gamma", 1.05070102214813232421875f)};
  return ufloat(k, selu_f32, selu_f64, &p);
}
int vt_kernel_Celu(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "alpha", 1.0f), 0, 0};
  if (p.alpha == 0) return vt_kernel_fail(k, "alpha must not be 0");
  return ufloat(k, celu_f32, celu_f64, &p);
}
int vt_kernel_Gelu(vt_kctx *k) {
  const char *a = vt_attr_str(k->node, "approximate", "none");
  if (!strcmp(a, "tanh")) return ufloat(k, gelu_tanh_f32, gelu_tanh_f64, &P0);
  if (!strcmp(a, "none")) return ufloat(k, gelu_f32, gelu_f64, &P0);
  return vt_kernel_fail(k, "approximate must be 'none' or 'tanh', got '%s'", a);
}

/* Ops with integer versions too. */
static int unum(vt_kctx *k, urow_fn f32, urow_fn f64, const urow_fn *ints, const uparams *p) {
  static const vt_dtype order[8] = {VT_I8, VT_I16, VT_I32, VT_I64, VT_U8, VT_U16, VT_U32, VT_U64};
  for (int i = 0; i < 8; i++)
    if (k->in[0]->dtype == order[i]) {
      urun(k, ints[i], k->in[0], k->out[0], p);
      return VT_OK;
    }
  return ufloat(k, f32, f64, p);
}
#define INT_KERNEL(id, row)                                                                  \
  int vt_kernel_##id(vt_kctx *k) {                                                           \
    static const urow_fn ints[8] = {row##_i8, row##_i16, row##_i32, row##_i64,               \
                                    row##_u8, row##_u16, row##_u32, row##_u64};              \
    return unum(k, row##_f32, row##_f64, ints, &P0);                                         \
  }
INT_KERNEL(Neg, neg) INT_KERNEL(Abs, abs) INT_KERNEL(Relu, relu) INT_KERNEL(Sign, sign)
#undef INT_KERNEL

int vt_kernel_Shrink(vt_kctx *k) {
  uparams p = {vt_attr_float(k->node, "bias", 0.0f), vt_attr_float(k->node, "lambd", 0.5f), 0};
  const vt_tensor *x = k->in[0];
  if (vt_dtype_is_float(x->dtype)) return ufloat(k, shrink_f32, shrink_f64, &p);
  if (!vt_dtype_is_int(x->dtype)) return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  /* integer inputs: compute in double, store back with the input's type */
  int64_t n = vt_tensor_numel(x);
  for (int64_t i = 0; i < n; i++) {
    double v = vt_tensor_get_f64(x, i);
    double r = v < -p.beta ? v + p.alpha : v > p.beta ? v - p.alpha : 0;
    switch (x->dtype) {
#define S(DT, T) case DT: ((T *)k->out[0]->data)[i] = (T)r; break;
      VT_FOR_INT_TYPES(S)
#undef S
    default: break;
    }
  }
  return VT_OK;
}

/* ---------- Clip ---------------------------------------------------------------------------- */
/* Bounds: attributes min/max (opset < 11, floats) or optional scalar inputs 1, 2 (opset >= 11). */
#define CLIP_T(DT, T, LOWEST, HIGHEST)                                                       \
  case DT: {                                                                                 \
    T lo = LOWEST, hi = HIGHEST;                                                             \
    if (k->n_in > 1 && k->in[1]) lo = *(const T *)k->in[1]->data;                            \
    else if (amin) lo = (T)amin->f;                                                          \
    if (k->n_in > 2 && k->in[2]) hi = *(const T *)k->in[2]->data;                            \
    else if (amax) hi = (T)amax->f;                                                          \
    const T *px = x->data;                                                                   \
    T *py = y->data;                                                                         \
    for (int64_t i = 0; i < n; i++) {                                                        \
      T v = px[i];                                                                           \
      v = v < lo ? lo : v;                                                                   \
      py[i] = v > hi ? hi : v;                                                               \
    }                                                                                        \
    return VT_OK;                                                                            \
  }

int vt_kernel_Clip(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  const vt_attr *amin = vt_node_attr(k->node, "min"), *amax = vt_node_attr(k->node, "max");
  for (int i = 1; i < k->n_in && i < 3; i++)
    if (k->in[i] && (k->in[i]->dtype != x->dtype || vt_tensor_numel(k->in[i]) != 1))
      return vt_kernel_fail(k, "bound input %d must be a scalar of the input's dtype", i);
  int64_t n = vt_tensor_numel(x);
  if (vt_dtype_is_half(x->dtype)) {
    /* bounds and data through f32 */
    float lo = -INFINITY, hi = INFINITY;
    if (k->n_in > 1 && k->in[1]) lo = (float)vt_tensor_get_f64(k->in[1], 0);
    else if (amin) lo = amin->f;
    if (k->n_in > 2 && k->in[2]) hi = (float)vt_tensor_get_f64(k->in[2], 0);
    else if (amax) hi = amax->f;
    vt_tensor t = {0};
    int rc = vt_tensor_to_f32(x, &t, k->err);
    if (rc) return rc;
    float *p = t.data;
    for (int64_t i = 0; i < n; i++) {
      float v = p[i] < lo ? lo : p[i];
      p[i] = v > hi ? hi : v;
    }
    vt_tensor_from_f32(&t, y);
    vt_tensor_free(&t);
    return VT_OK;
  }
  switch (x->dtype) {
    CLIP_T(VT_F32, float, -INFINITY, INFINITY)
    CLIP_T(VT_F64, double, -INFINITY, INFINITY)
    CLIP_T(VT_I8, int8_t, INT8_MIN, INT8_MAX)
    CLIP_T(VT_I16, int16_t, INT16_MIN, INT16_MAX)
    CLIP_T(VT_I32, int32_t, INT32_MIN, INT32_MAX)
    CLIP_T(VT_I64, int64_t, INT64_MIN, INT64_MAX)
    CLIP_T(VT_U8, uint8_t, 0, UINT8_MAX)
    CLIP_T(VT_U16, uint16_t, 0, UINT16_MAX)
    CLIP_T(VT_U32, uint32_t, 0, UINT32_MAX)
    CLIP_T(VT_U64, uint64_t, 0, UINT64_MAX)
  default: break;
  }
  return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
}

/* ---------- bool results ---------------------------------------------------------------------- */
int vt_kernel_Not(vt_kctx *k) {
  if (k->in[0]->dtype != VT_BOOL) return vt_kernel_fail(k, "needs a bool input");
  int64_t n = vt_tensor_numel(k->in[0]);
  const uint8_t *x = k->in[0]->data;
  uint8_t *y = k->out[0]->data;
  for (int64_t i = 0; i < n; i++) y[i] = !x[i];
  return VT_OK;
}

/* mode 0: isnan; 1: isinf with detect flags. */
static int float_pred(vt_kctx *k, int mode) {
  const vt_tensor *x = k->in[0];
  if (!vt_dtype_is_float(x->dtype)) return vt_kernel_fail(k, "needs a float input, got %s", vt_dtype_name(x->dtype));
  bool neg = vt_attr_int(k->node, "detect_negative", 1) != 0;
  bool pos = vt_attr_int(k->node, "detect_positive", 1) != 0;
  int64_t n = vt_tensor_numel(x);
  uint8_t *y = k->out[0]->data;
  for (int64_t i = 0; i < n; i++) {
    double v = vt_tensor_get_f64(x, i);
    if (mode == 0) y[i] = isnan(v);
    else y[i] = isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
  }
  return VT_OK;
}
int vt_kernel_IsNaN(vt_kctx *k) { return float_pred(k, 0); }
int vt_kernel_IsInf(vt_kctx *k) { return float_pred(k, 1); }

/* kernels_math_reduce.c — reference kernels of the math family's reductions: ReduceMean/Sum/
 * Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp, ArgMax/ArgMin and CumSum.
 * Reduced axes that form one run of the shape use an [outer, reduced, inner] walk (the last-axis
 * case is inner = 1); other axis sets use a strided walk over the input. Floats accumulate in
 * double, integers in int64; f16/bf16 go through f32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_util.h"

enum { R_SUM, R_MEAN, R_SUMSQ, R_L1, R_L2, R_PROD, R_MAX, R_MIN, R_LOGSUM, R_LSE };

/* ---------- axes ----------------------------------------------------------------------------- */
/* Fills mask (rank entries); returns 1 for a no-op reduction, 0 otherwise, <0 on error. */
static int kernel_axes(vt_kctx *k, int32_t rank, bool *mask) {
  int64_t ax[VT_MAX_RANK * 4];
  int64_t na = 0;
  if (k->n_in > 1 && k->in[1]) {
    const vt_tensor *a = k->in[1];
    if (a->dtype != VT_I64 && a->dtype != VT_I32) { vt_kernel_fail(k, "axes must be int64"); return -1; }
    na = vt_tensor_numel(a);
    if (na > (int64_t)(sizeof ax / sizeof ax[0])) { vt_kernel_fail(k, "too many axes (%lld)", (long long)na); return -1; }
    for (int64_t i = 0; i < na; i++) ax[i] = vt_tensor_get_i64(a, i);
  } else {
    const int64_t *v;
    int32_t n = vt_attr_ints(k->node, "axes", &v);
    if (n > (int32_t)(sizeof ax / sizeof ax[0])) { vt_kernel_fail(k, "too many axes (%d)", n); return -1; }
    for (int32_t i = 0; i < n; i++) ax[i] = v[i];
    na = n < 0 ? 0 : n;
  }
  for (int32_t d = 0; d < rank; d++) mask[d] = na == 0;
  if (na == 0) return vt_attr_int(k->node, "noop_with_empty_axes", 0) ? 1 : 0;
  for (int64_t i = 0; i < na; i++) {
    int64_t a = ax[i] < 0 ? ax[i] + rank : ax[i];
    if (a < 0 || a >= (rank ? rank : 1)) {
      vt_kernel_fail(k, "axis %lld is out of range for rank %d", (long long)ax[i], rank);
      return -1;
    }
    if (rank) mask[a] = true;
  }
  return 0;
}

/* ---------- accumulation --------------------------------------------------------------------
 * acc has one entry per output element. m (LSE only) holds the per-output max. */
#define ACC_LOOPS(T, A)                                                                      \
  switch (kind) {                                                                            \
  case R_SUM: case R_MEAN: case R_LOGSUM: LOOP(a += (A)v); break;                            \
  case R_SUMSQ: case R_L2: LOOP(a += (A)v * (A)v); break;                                    \
  case R_L1: LOOP(a += (A)(v < 0 ? -(A)v : (A)v)); break;                                    \
  case R_PROD: LOOP(a *= (A)v); break;                                                       \
  case R_MAX: LOOP(if ((A)v > a || v != v) a = (A)v); break;                                 \
  case R_MIN: LOOP(if ((A)v < a || v != v) a = (A)v); break;                                 \
  case R_LSE: LOOP(a += (A)exp((double)v - (double)mm)); break;                              \
  default: break;                                                                            \
  }

/* [outer, R, inner] walk for outputs o in [o0, o1). */
#define DEF_ORI(name, T, A)                                                                  \
  static void name(const T *x, A *acc, const A *m, int64_t o0, int64_t o1, int64_t R,        \
                   int64_t I, int kind) {                                                    \
    typedef T in_t;                                                                          \
    typedef A acc_t;                                                                         \
    for (int64_t o = o0; o < o1; o++) {                                                      \
      A *ap = acc + o * I;                                                                   \
      const A *mp = m ? m + o * I : NULL;                                                    \
      (void)mp;                                                                              \
      for (int64_t r = 0; r < R; r++) {                                                      \
        const T *xr = x + (o * R + r) * I;                                                   \
        _Pragma("GCC diagnostic push")                                                       \
        _Pragma("GCC diagnostic ignored \"-Wtype-limits\"")                                  \
        ACC_LOOPS(T, A)                                                                      \
        _Pragma("GCC diagnostic pop")                                                        \
      }                                                                                      \
    }                                                                                        \
  }
#define LOOP(STMT)                                                                           \
  for (int64_t i = 0; i < I; i++) {                                                          \
    acc_t a = ap[i];                                                                         \
    in_t v = xr[i];                                                                          \
    acc_t mm = mp ? mp[i] : 0;                                                                   \
    (void)mm;                                                                                \
    STMT;                                                                                    \
    ap[i] = a;                                                                               \
  }
DEF_ORI(ori_f32, float, double)
DEF_ORI(ori_f64, double, double)
DEF_ORI(ori_i64, int64_t, int64_t)
#undef LOOP

/* Strided walk over the whole input: out_str[d] is the output stride of input dim d (0 on
 * reduced dims). */
#define DEF_GEN(name, T, A)                                                                  \
  static void name(const T *x, A *acc, const A *m, int32_t rank, const int64_t *dims,        \
                   const int64_t *out_str, int64_t n, int kind) {                            \
    typedef T in_t;                                                                          \
    typedef A acc_t;                                                                         \
    int64_t idx[VT_MAX_RANK] = {0};                                                          \
    int64_t off = 0;                                                                         \
    for (int64_t e = 0; e < n; e++) {                                                        \
      const T *xr = x + e;                                                                   \
      A *ap = acc + off;                                                                     \
      const A *mp = m ? m + off : NULL;                                                      \
      const int64_t I = 1;                                                                   \
      _Pragma("GCC diagnostic push")                                                         \
      _Pragma("GCC diagnostic ignored \"-Wtype-limits\"")                                    \
      ACC_LOOPS(T, A)                                                                        \
      _Pragma("GCC diagnostic pop")                                                          \
      for (int32_t d = rank - 1; d >= 0; d--) {                                              \
        off += out_str[d];                                                                   \
        if (++idx[d] < dims[d]) break;                                                       \
        off -= out_str[d] * dims[d];                                                         \
        idx[d] = 0;                                                                          \
      }                                                                                      \
    }                                                                                        \
  }
#define LOOP(STMT)                                                                           \
  for (int64_t i = 0; i < I; i++) {                                                          \
    acc_t a = ap[i];                                                                         \
    in_t v = xr[i];                                                                          \
    acc_t mm = mp ? mp[i] : 0;                                                                   \
    (void)mm;                                                                                \
    STMT;                                                                                    \
    ap[i] = a;                                                                               \
  }
DEF_GEN(gen_f32, float, double)
DEF_GEN(gen_f64, double, double)
DEF_GEN(gen_i64, int64_t, int64_t)
#undef LOOP

typedef struct {
  int work;                /* 0: f32, 1: f64, 2: i64 */
  const void *x;
  void *acc;
  const void *m;
  int64_t R, I;
  int kind;
} red_job;

/* Last-axis (inner == 1) f32 rows: independent accumulators so the adds pipeline. Returns false
 * for kinds without a fast row. */
static bool row_f32(const float *x, int64_t n, int kind, double *out) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  switch (kind) {
  case R_SUM: case R_MEAN: case R_LOGSUM:
    for (; i + 4 <= n; i += 4) { s[0] += x[i]; s[1] += x[i + 1]; s[2] += x[i + 2]; s[3] += x[i + 3]; }
    for (; i < n; i++) s[0] += x[i];
    break;
  case R_SUMSQ: case R_L2:
    for (; i + 4 <= n; i += 4) {
      s[0] += (double)x[i] * x[i]; s[1] += (double)x[i + 1] * x[i + 1];
      s[2] += (double)x[i + 2] * x[i + 2]; s[3] += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++) s[0] += (double)x[i] * x[i];
    break;
  case R_L1:
    for (; i + 4 <= n; i += 4) { s[0] += fabsf(x[i]); s[1] += fabsf(x[i + 1]); s[2] += fabsf(x[i + 2]); s[3] += fabsf(x[i + 3]); }
    for (; i < n; i++) s[0] += fabsf(x[i]);
    break;
  default:
    return false;
  }
  *out = (s[0] + s[1]) + (s[2] + s[3]);
  return true;
}

static void red_range(void *arg, int64_t o0, int64_t o1) {
  const red_job *j = arg;
  if (j->work == 0 && j->I == 1 && j->kind != R_LSE) {
    const float *x = j->x;
    double *acc = j->acc;
    double v;
    if (row_f32(x + o0 * j->R, j->R, j->kind, &v)) {
      for (int64_t o = o0; o < o1; o++) {
        row_f32(x + o * j->R, j->R, j->kind, &v);
        acc[o] += v;
      }
      return;
    }
  }
  switch (j->work) {
  case 0: ori_f32(j->x, j->acc, j->m, o0, o1, j->R, j->I, j->kind); break;
  case 1: ori_f64(j->x, j->acc, j->m, o0, o1, j->R, j->I, j->kind); break;
  default: ori_i64(j->x, j->acc, j->m, o0, o1, j->R, j->I, j->kind); break;
  }
}

static void acc_init(int work, void *acc, int64_t n, int kind) {
  if (work == 2) {
    int64_t v = kind == R_PROD ? 1 : kind == R_MAX ? INT64_MIN : kind == R_MIN ? INT64_MAX : 0;
    for (int64_t i = 0; i < n; i++) ((int64_t *)acc)[i] = v;
  } else {
    double v = kind == R_PROD ? 1 : kind == R_MAX ? -INFINITY : kind == R_MIN ? INFINITY : 0;
    for (int64_t i = 0; i < n; i++) ((double *)acc)[i] = v;
  }
}

/* One accumulation pass of `kind` into acc (already initialised). */
static void red_pass(vt_kctx *k, int work, const void *x, void *acc, const void *m, int32_t rank,
                     const int64_t *dims, const bool *mask, int kind) {
  /* drop size-1 dims, then check whether the reduced dims form a single run */
  int64_t cd[VT_MAX_RANK];
  bool cm[VT_MAX_RANK];
  int32_t cr = 0;
  for (int32_t d = 0; d < rank; d++)
    if (dims[d] != 1) { cd[cr] = dims[d]; cm[cr] = mask[d]; cr++; }
  int32_t first = -1, last = -1;
  bool run = true;
  for (int32_t d = 0; d < cr; d++)
    if (cm[d]) {
      if (first < 0) first = d;
      else if (last != d - 1) run = false;
      last = d;
    }
  if (first < 0) { first = 0; last = -1; }
  if (run) {
    int64_t O, R, I;
    vt_ori(cr, cd, first, last + 1, &O, &R, &I);
    red_job j = {work, x, acc, m, R, I, kind};
    if (O * R * I >= VT_PAR_MIN && O >= 2 && k->pool) vt_pool_for(k->pool, O, red_range, &j);
    else red_range(&j, 0, O);
    return;
  }
  int64_t out_str[VT_MAX_RANK], s = 1, n = 1;
  for (int32_t d = cr - 1; d >= 0; d--) {
    out_str[d] = cm[d] ? 0 : s;
    if (!cm[d]) s *= cd[d];
    n *= cd[d];
  }
  switch (work) {
  case 0: gen_f32(x, acc, m, cr, cd, out_str, n, kind); break;
  case 1: gen_f64(x, acc, m, cr, cd, out_str, n, kind); break;
  default: gen_i64(x, acc, m, cr, cd, out_str, n, kind); break;
  }
}

static int reduce(vt_kctx *k, int kind) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  bool mask[VT_MAX_RANK];
  int r = kernel_axes(k, x->rank, mask);
  if (r < 0) return VT_ERR_MODEL;
  if (y->rank < 0 || (!y->data && vt_tensor_numel(y) != 0)) {
    /* shape was data-dependent at graph level: compute it now */
    bool keep = vt_attr_int(k->node, "keepdims", 1) != 0;
    int64_t od[VT_MAX_RANK];
    int32_t orank = 0;
    for (int32_t d = 0; d < x->rank; d++) {
      if (r == 1 || !mask[d]) od[orank++] = x->dims[d];
      else if (keep) od[orank++] = 1;
    }
    int rc = vt_tensor_alloc(y, x->dtype, orank, od, k->err);
    if (rc) return rc;
  }
  int64_t n_in = vt_tensor_numel(x), n_out = vt_tensor_numel(y);
  if (r == 1) {
    if (n_in != n_out) return vt_kernel_fail(k, "no-op reduction with a different output size");
    memcpy(y->data, x->data, vt_tensor_nbytes(x));
    return VT_OK;
  }
  /* working representation */
  int work;
  vt_tensor tmp = {0};
  const void *xd = x->data;
  int rc = VT_OK;
  bool int_kind = kind == R_SUM || kind == R_SUMSQ || kind == R_L1 || kind == R_PROD ||
                  kind == R_MAX || kind == R_MIN;
  if (x->dtype == VT_F32) work = 0;
  else if (x->dtype == VT_F64) work = 1;
  else if (vt_dtype_is_half(x->dtype)) {
    work = 0;
    rc = vt_tensor_to_f32(x, &tmp, k->err);
    xd = tmp.data;
  } else if (vt_dtype_is_int(x->dtype)) {
    work = int_kind ? 2 : 1;
    if (!(work == 2 && x->dtype == VT_I64)) {
      rc = vt_tensor_alloc(&tmp, work == 2 ? VT_I64 : VT_F64, x->rank, x->dims, k->err);
      if (!rc) {
        for (int64_t i = 0; i < n_in; i++) {
          if (work == 2) ((int64_t *)tmp.data)[i] = vt_tensor_get_i64(x, i);
          else ((double *)tmp.data)[i] = vt_tensor_get_f64(x, i);
        }
        if (x->dtype == VT_U64 && work == 2)
          for (int64_t i = 0; i < n_in; i++) ((int64_t *)tmp.data)[i] = (int64_t)((const uint64_t *)x->data)[i];
      }
      xd = tmp.data;
    }
  } else {
    return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  }
  if (rc) return rc;
  size_t es = work == 2 ? sizeof(int64_t) : sizeof(double);
  void *acc = calloc((size_t)(n_out ? n_out : 1), es);
  void *m = kind == R_LSE ? calloc((size_t)(n_out ? n_out : 1), es) : NULL;
  if (!acc || (kind == R_LSE && !m)) {
    free(acc); free(m); vt_tensor_free(&tmp);
    return vt_kernel_fail(k, "out of memory");
  }
  if (kind == R_LSE) {
    acc_init(work, m, n_out, R_MAX);
    red_pass(k, work, xd, m, NULL, x->rank, x->dims, mask, R_MAX);
    /* an all -inf (or empty) slice: avoid inf - inf */
    for (int64_t i = 0; i < n_out; i++)
      if (isinf(((double *)m)[i])) ((double *)m)[i] = 0;
  }
  acc_init(work, acc, n_out, kind);
  if (n_in > 0) red_pass(k, work, xd, acc, m, x->rank, x->dims, mask, kind);
  /* finalise and store */
  int64_t cnt = n_out ? n_in / n_out : 0;
  for (int64_t i = 0; i < n_out; i++) {
    if (work == 2) {
      int64_t v = ((int64_t *)acc)[i];
      switch (y->dtype) {
#define S(DT, T) case DT: ((T *)y->data)[i] = (T)v; break;
        VT_FOR_INT_TYPES(S)
#undef S
      default: break;
      }
      continue;
    }
    double v = ((double *)acc)[i];
    switch (kind) {
    case R_MEAN: v = cnt ? v / (double)cnt : NAN; break;
    case R_L2: v = sqrt(v); break;
    case R_LOGSUM: v = log(v); break;
    case R_LSE: v = ((double *)m)[i] + log(v); break;
    default: break;
    }
    switch (y->dtype) {
    case VT_F32: ((float *)y->data)[i] = (float)v; break;
    case VT_F64: ((double *)y->data)[i] = v; break;
    case VT_F16: ((uint16_t *)y->data)[i] = vt_f32_to_f16((float)v); break;
    case VT_BF16: ((uint16_t *)y->data)[i] = vt_f32_to_bf16((float)v); break;
#define S(DT, T) case DT: ((T *)y->data)[i] = (T)(v != v ? 0 : v); break;
      VT_FOR_INT_TYPES(S)
#undef S
    default: break;
    }
  }
  free(acc);
  free(m);
  vt_tensor_free(&tmp);
  return VT_OK;
}

int vt_kernel_ReduceMean(vt_kctx *k) { return reduce(k, R_MEAN); }
int vt_kernel_ReduceSum(vt_kctx *k) { return reduce(k, R_SUM); }
int vt_kernel_ReduceMax(vt_kctx *k) { return reduce(k, R_MAX); }
int vt_kernel_ReduceMin(vt_kctx *k) { return reduce(k, R_MIN); }
int vt_kernel_ReduceProd(vt_kctx *k) { return reduce(k, R_PROD); }
int vt_kernel_ReduceL1(vt_kctx *k) { return reduce(k, R_L1); }
int vt_kernel_ReduceL2(vt_kctx *k) { return reduce(k, R_L2); }
int vt_kernel_ReduceSumSquare(vt_kctx *k) { return reduce(k, R_SUMSQ); }
int vt_kernel_ReduceLogSum(vt_kctx *k) { return reduce(k, R_LOGSUM); }
int vt_kernel_ReduceLogSumExp(vt_kctx *k) { return reduce(k, R_LSE); }

/* ---------- ArgMax / ArgMin ------------------------------------------------------------------ */
static int argreduce(vt_kctx *k, bool is_max) {
  const vt_tensor *x = k->in[0];
  int64_t *y = k->out[0]->data;
  int64_t axis = vt_attr_int(k->node, "axis", 0);
  if (axis < 0) axis += x->rank;
  if (axis < 0 || axis >= x->rank) return vt_kernel_fail(k, "axis out of range");
  bool last = vt_attr_int(k->node, "select_last_index", 0) != 0;
  int64_t O, R, I;
  vt_ori(x->rank, x->dims, (int32_t)axis, (int32_t)axis + 1, &O, &R, &I);
  if (R == 0 && O * I > 0) return vt_kernel_fail(k, "cannot take ArgMax/ArgMin over an empty axis");
  bool ints = vt_dtype_is_int(x->dtype) || x->dtype == VT_BOOL;
  const float *xf = x->dtype == VT_F32 ? x->data : NULL;
  for (int64_t o = 0; o < O; o++)
    for (int64_t i = 0; i < I; i++) {
      int64_t best = 0;
      int64_t base = o * R * I + i;
      if (xf) {
        float bv = xf[base];
        for (int64_t r = 1; r < R; r++) {
          float v = xf[base + r * I];
          if (is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv))) { bv = v; best = r; }
        }
      } else if (ints) {
        int64_t bv = vt_tensor_get_i64(x, base);
        for (int64_t r = 1; r < R; r++) {
          int64_t v = vt_tensor_get_i64(x, base + r * I);
          if (is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv))) { bv = v; best = r; }
        }
      } else {
        double bv = vt_tensor_get_f64(x, base);
        for (int64_t r = 1; r < R; r++) {
          double v = vt_tensor_get_f64(x, base + r * I);
          if (is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv))) { bv = v; best = r; }
        }
      }
      y[o * I + i] = best;
    }
  return VT_OK;
}
int vt_kernel_ArgMax(vt_kctx *k) { return argreduce(k, true); }
int vt_kernel_ArgMin(vt_kctx *k) { return argreduce(k, false); }

/* ---------- CumSum ------------------------------------------------------------------------- */
#define CUMSUM_T(DT, T, A)                                                                   \
  case DT: {                                                                                 \
    const T *px = xd;                                                                        \
    T *py = yd;                                                                              \
    for (int64_t o = 0; o < O; o++)                                                          \
      for (int64_t i = 0; i < I; i++) {                                                      \
        A acc = 0;                                                                           \
        for (int64_t t = 0; t < R; t++) {                                                    \
          int64_t r = rev ? R - 1 - t : t;                                                   \
          int64_t at = (o * R + r) * I + i;                                                  \
          A v = (A)px[at]; /* read before write: x and y may alias */                       \
          py[at] = (T)(excl ? acc : acc + v);                                                \
          acc += v;                                                                          \
        }                                                                                    \
      }                                                                                      \
    break;                                                                                   \
  }

int vt_kernel_CumSum(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *ax = k->in[1];
  vt_tensor *y = k->out[0];
  if (vt_tensor_numel(ax) != 1) return vt_kernel_fail(k, "axis must be a scalar");
  int64_t axis = vt_tensor_get_i64(ax, 0);
  if (axis < 0) axis += x->rank;
  if (axis < 0 || axis >= x->rank) return vt_kernel_fail(k, "axis %lld out of range for rank %d", (long long)vt_tensor_get_i64(ax, 0), x->rank);
  bool excl = vt_attr_int(k->node, "exclusive", 0) != 0, rev = vt_attr_int(k->node, "reverse", 0) != 0;
  int64_t O, R, I;
  vt_ori(x->rank, x->dims, (int32_t)axis, (int32_t)axis + 1, &O, &R, &I);
  vt_tensor tmp = {0};
  const void *xd = x->data;
  void *yd = y->data;
  vt_dtype dt = x->dtype;
  if (vt_dtype_is_half(dt)) {
    int rc = vt_tensor_to_f32(x, &tmp, k->err);
    if (rc) return rc;
    xd = yd = tmp.data;
    dt = VT_F32;
  }
  switch (dt) {
    CUMSUM_T(VT_F32, float, double)
    CUMSUM_T(VT_F64, double, double)
    CUMSUM_T(VT_I32, int32_t, int64_t)
    CUMSUM_T(VT_I64, int64_t, uint64_t)
    CUMSUM_T(VT_U32, uint32_t, uint64_t)
    CUMSUM_T(VT_U64, uint64_t, uint64_t)
  default:
    return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  }
  if (tmp.data) {
    vt_tensor_from_f32(&tmp, y);
    vt_tensor_free(&tmp);
  }
  return VT_OK;
}

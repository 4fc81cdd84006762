/* kernels_math_norm.c — reference kernels of the math family's softmax ops (Softmax, LogSoftmax,
 * Hardmax; opset < 13 flattens to 2-D at axis, opset >= 13 works on one axis) and
 * normalisations (LayerNormalization with optional Mean/InvStdDev, InstanceNormalization).
 * f32 and f64 are native; f16/bf16 go through f32. Statistics accumulate in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_util.h"

/* Runs fn on f32/f64 views of the inputs listed (halves converted to f32 and the outputs
 * converted back). Inputs may be NULL. Outputs are the first n_out of k->out. */
typedef int (*norm_fn)(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out);

static int with_f32(vt_kctx *k, int n_in, int n_out, norm_fn fn) {
  const vt_tensor *xin[4] = {0};
  vt_tensor tin[4] = {{0}}, tout[4] = {{0}};
  vt_tensor *xout[4] = {0};
  int rc = VT_OK;
  for (int i = 0; i < n_in && i < 4 && !rc; i++) {
    xin[i] = i < k->n_in ? k->in[i] : NULL;
    if (xin[i] && vt_dtype_is_half(xin[i]->dtype)) {
      rc = vt_tensor_to_f32(xin[i], &tin[i], k->err);
      xin[i] = &tin[i];
    }
  }
  for (int o = 0; o < n_out && o < 4 && !rc; o++) {
    xout[o] = o < k->n_out ? k->out[o] : NULL;
    if (xout[o] && vt_dtype_is_half(xout[o]->dtype)) {
      rc = vt_tensor_alloc(&tout[o], VT_F32, xout[o]->rank, xout[o]->dims, k->err);
      xout[o] = &tout[o];
    }
  }
  if (!rc) rc = fn(k, xin, xout);
  for (int o = 0; o < n_out && o < 4; o++) {
    if (!rc && tout[o].data) vt_tensor_from_f32(&tout[o], k->out[o]);
    vt_tensor_free(&tout[o]);
  }
  for (int i = 0; i < n_in && i < 4; i++) vt_tensor_free(&tin[i]);
  return rc;
}

/* ---------- softmax family ---------------------------------------------------------------- */
enum { SM_SOFT, SM_LOG, SM_HARD };

typedef struct { const void *x; void *y; int64_t R, I; int mode; bool f64; } sm_job;

#define SM_BODY(T, EXP, LOG)                                                                 \
  {                                                                                          \
    const T *x = j->x;                                                                       \
    T *y = j->y;                                                                             \
    int64_t R = j->R, I = j->I;                                                              \
    for (int64_t o = o0; o < o1; o++)                                                        \
      for (int64_t i = 0; i < I; i++) {                                                      \
        const T *xp = x + o * R * I + i;                                                     \
        T *yp = y + o * R * I + i;                                                           \
        if (R == 0) continue;                                                                \
        T mx = xp[0];                                                                        \
        int64_t arg = 0;                                                                     \
        for (int64_t r = 1; r < R; r++)                                                      \
          if (xp[r * I] > mx) { mx = xp[r * I]; arg = r; }                                   \
        if (j->mode == SM_HARD) {                                                            \
          for (int64_t r = 0; r < R; r++) yp[r * I] = (T)(r == arg);                         \
          continue;                                                                          \
        }                                                                                    \
        if (isinf(mx) && mx < 0) mx = 0; /* all -inf: keep exp(x - mx) defined */            \
        double s = 0;                                                                        \
        if (j->mode == SM_SOFT) {                                                            \
          for (int64_t r = 0; r < R; r++) {                                                  \
            T e = EXP(xp[r * I] - mx);                                                       \
            yp[r * I] = e;                                                                   \
            s += e;                                                                          \
          }                                                                                  \
          T inv = (T)(1.0 / s);                                                              \
          for (int64_t r = 0; r < R; r++) yp[r * I] *= inv;                                  \
        } else {                                                                             \
          for (int64_t r = 0; r < R; r++) s += EXP(xp[r * I] - mx);                          \
          T ls = (T)LOG(s);                                                                  \
          for (int64_t r = 0; r < R; r++) yp[r * I] = xp[r * I] - mx - ls;                   \
        }                                                                                    \
      }                                                                                      \
  }

/* f32 softmax over contiguous rows (inner == 1), the attention case. */
static void sm_rows_f32(const float *x, float *y, int64_t R, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; o++) {
    const float *xp = x + o * R;
    float *yp = y + o * R;
    float mx = xp[0];
    for (int64_t r = 1; r < R; r++) mx = xp[r] > mx ? xp[r] : mx;
    if (isinf(mx) && mx < 0) mx = 0;
    double s[4] = {0, 0, 0, 0};
    int64_t r = 0;
    for (; r + 4 <= R; r += 4)
      for (int t = 0; t < 4; t++) {
        float e = expf(xp[r + t] - mx);
        yp[r + t] = e;
        s[t] += e;
      }
    for (; r < R; r++) {
      float e = expf(xp[r] - mx);
      yp[r] = e;
      s[0] += e;
    }
    float inv = (float)(1.0 / ((s[0] + s[1]) + (s[2] + s[3])));
    for (r = 0; r < R; r++) yp[r] *= inv;
  }
}

static void sm_range(void *arg, int64_t o0, int64_t o1) {
  const sm_job *j = arg;
  if (!j->f64 && j->I == 1 && j->mode == SM_SOFT && j->R > 0) {
    sm_rows_f32(j->x, j->y, j->R, o0, o1);
    return;
  }
  if (j->f64) SM_BODY(double, exp, log)
  else SM_BODY(float, expf, log)
}

static int softmax_fn(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out, int mode) {
  const vt_tensor *x = in[0];
  vt_tensor *y = out[0];
  if (x->dtype != VT_F32 && x->dtype != VT_F64)
    return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  int64_t ver = vt_graph_opset(k->g, "");
  bool old = ver > 0 && ver < 13;
  int64_t axis = vt_attr_int(k->node, "axis", old ? 1 : -1);
  int32_t rank = x->rank;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= (rank ? rank : 1))
    return vt_kernel_fail(k, "axis %lld is out of range for rank %d", (long long)vt_attr_int(k->node, "axis", 0), rank);
  int64_t O, R, I;
  if (old) {
    vt_ori(rank, x->dims, (int32_t)axis, rank, &O, &R, &I);
  } else {
    vt_ori(rank, x->dims, (int32_t)axis, (int32_t)axis + 1, &O, &R, &I);
  }
  sm_job j = {x->data, y->data, R, I, mode, x->dtype == VT_F64};
  if (O * R * I >= VT_PAR_MIN && O >= 2 && k->pool) vt_pool_for(k->pool, O, sm_range, &j);
  else sm_range(&j, 0, O);
  return VT_OK;
}

static int soft_fn(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out) { return softmax_fn(k, in, out, SM_SOFT); }
static int logsoft_fn(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out) { return softmax_fn(k, in, out, SM_LOG); }
static int hard_fn(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out) { return softmax_fn(k, in, out, SM_HARD); }

int vt_kernel_Softmax(vt_kctx *k) { return with_f32(k, 1, 1, soft_fn); }
int vt_kernel_LogSoftmax(vt_kctx *k) { return with_f32(k, 1, 1, logsoft_fn); }
int vt_kernel_Hardmax(vt_kctx *k) { return with_f32(k, 1, 1, hard_fn); }

/* ---------- LayerNormalization ------------------------------------------------------------- */
/* Expands a scale/bias tensor t (broadcastable to the normalised dims nd[0..nr)) to D values. */
static int expand_param(vt_kctx *k, const vt_tensor *t, int32_t nr, const int64_t *nd, int64_t D, double *out) {
  if (t->rank > nr) return vt_kernel_fail(k, "scale/bias rank %d exceeds normalised rank %d", t->rank, nr);
  int64_t str[VT_MAX_RANK], acc = 1;
  for (int32_t d = nr - 1; d >= 0; d--) {
    int32_t kk = d - (nr - t->rank);
    int64_t dim = kk >= 0 ? t->dims[kk] : 1;
    if (dim != nd[d] && dim != 1)
      return vt_kernel_fail(k, "scale/bias dim %lld does not broadcast to %lld", (long long)dim, (long long)nd[d]);
    str[d] = dim == 1 ? 0 : acc;
    acc *= dim;
  }
  for (int64_t e = 0; e < D; e++) {
    int64_t rem = e, off = 0;
    for (int32_t d = nr - 1; d >= 0; d--) {
      off += (rem % nd[d]) * str[d];
      rem /= nd[d];
    }
    out[e] = vt_tensor_get_f64(t, off);
  }
  return VT_OK;
}

typedef struct {
  const void *x; void *y; const double *w, *b; const float *wf, *bf; void *mean, *istd;
  int64_t D; double eps; bool f64, mean_f64, istd_f64;
} ln_job;

static void ln_range(void *arg, int64_t o0, int64_t o1) {
  const ln_job *j = arg;
  int64_t D = j->D;
  for (int64_t o = o0; o < o1; o++) {
    double s = 0, ss = 0;
    if (j->f64) {
      const double *x = (const double *)j->x + o * D;
      for (int64_t i = 0; i < D; i++) s += x[i];
      double mu = D ? s / (double)D : 0;
      for (int64_t i = 0; i < D; i++) ss += (x[i] - mu) * (x[i] - mu);
      double inv = 1.0 / sqrt((D ? ss / (double)D : 0) + j->eps);
      double *y = (double *)j->y + o * D;
      for (int64_t i = 0; i < D; i++) y[i] = (x[i] - mu) * inv * j->w[i] + (j->b ? j->b[i] : 0);
      s = mu; ss = inv;
    } else {
      const float *x = (const float *)j->x + o * D;
      double p[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};   /* independent chains pipeline */
      int64_t i = 0;
      for (; i + 4 <= D; i += 4)
        for (int t = 0; t < 4; t++) p[t] += x[i + t];
      for (; i < D; i++) p[0] += x[i];
      s = (p[0] + p[1]) + (p[2] + p[3]);
      double mu = D ? s / (double)D : 0;
      for (i = 0; i + 4 <= D; i += 4)
        for (int t = 0; t < 4; t++) q[t] += ((double)x[i + t] - mu) * ((double)x[i + t] - mu);
      for (; i < D; i++) q[0] += ((double)x[i] - mu) * ((double)x[i] - mu);
      ss = (q[0] + q[1]) + (q[2] + q[3]);
      double inv = 1.0 / sqrt((D ? ss / (double)D : 0) + j->eps);
      float *y = (float *)j->y + o * D;
      float fm = (float)mu, fi = (float)inv;
      const float *wf = j->wf, *bf = j->bf;
      if (bf)
        for (i = 0; i < D; i++) y[i] = (x[i] - fm) * fi * wf[i] + bf[i];
      else
        for (i = 0; i < D; i++) y[i] = (x[i] - fm) * fi * wf[i];
      s = mu; ss = inv;
    }
    if (j->mean) {
      if (j->mean_f64) ((double *)j->mean)[o] = s;
      else ((float *)j->mean)[o] = (float)s;
    }
    if (j->istd) {
      if (j->istd_f64) ((double *)j->istd)[o] = ss;
      else ((float *)j->istd)[o] = (float)ss;
    }
  }
}

static int ln_fn(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out) {
  const vt_tensor *x = in[0], *w = in[1], *b = in[2];
  if (x->dtype != VT_F32 && x->dtype != VT_F64) return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  int64_t axis = vt_attr_int(k->node, "axis", -1);
  if (axis < 0) axis += x->rank;
  if (axis < 0 || axis >= x->rank) return vt_kernel_fail(k, "axis out of range for rank %d", x->rank);
  int64_t O, D, I;
  vt_ori(x->rank, x->dims, (int32_t)axis, x->rank, &O, &D, &I);
  double *wb = malloc(((size_t)D * 3 + 1) * sizeof(double));   /* w, b (double), then w, b (float) */
  if (!wb) return vt_kernel_fail(k, "out of memory");
  float *wbf = (float *)(wb + 2 * D);
  int32_t nr = x->rank - (int32_t)axis;
  int rc = expand_param(k, w, nr, x->dims + axis, D, wb);
  if (!rc && b) rc = expand_param(k, b, nr, x->dims + axis, D, wb + D);
  if (rc) { free(wb); return rc; }
  vt_tensor *m = k->n_out > 1 ? out[1] : NULL, *is = k->n_out > 2 ? out[2] : NULL;
  if ((m && m->dtype != VT_F32 && m->dtype != VT_F64) || (is && is->dtype != VT_F32 && is->dtype != VT_F64)) {
    free(wb);
    return vt_kernel_fail(k, "Mean/InvStdDev dtype is not supported");
  }
  for (int64_t i = 0; i < D; i++) {
    wbf[i] = (float)wb[i];
    wbf[D + i] = b ? (float)wb[D + i] : 0.0f;
  }
  ln_job j = {x->data, out[0]->data, wb, b ? wb + D : NULL, wbf, b ? wbf + D : NULL,
              m ? m->data : NULL, is ? is->data : NULL,
              D, vt_attr_float(k->node, "epsilon", 1e-5f), x->dtype == VT_F64,
              m && m->dtype == VT_F64, is && is->dtype == VT_F64};
  if (O * D >= VT_PAR_MIN && O >= 2 && k->pool) vt_pool_for(k->pool, O, ln_range, &j);
  else ln_range(&j, 0, O);
  free(wb);
  return VT_OK;
}

int vt_kernel_LayerNormalization(vt_kctx *k) { return with_f32(k, 3, 3, ln_fn); }

/* ---------- InstanceNormalization ---------------------------------------------------------- */
static int in_fn(vt_kctx *k, const vt_tensor *const *in, vt_tensor *const *out) {
  const vt_tensor *x = in[0], *sc = in[1], *b = in[2];
  if (x->dtype != VT_F32 && x->dtype != VT_F64) return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  if (x->rank < 2) return vt_kernel_fail(k, "input must have rank >= 2");
  int64_t N = x->dims[0], C = x->dims[1], S = 1;
  for (int32_t d = 2; d < x->rank; d++) S *= x->dims[d];
  if (vt_tensor_numel(sc) != C || vt_tensor_numel(b) != C)
    return vt_kernel_fail(k, "scale and B must have %lld elements", (long long)C);
  double eps = vt_attr_float(k->node, "epsilon", 1e-5f);
  bool f64 = x->dtype == VT_F64;
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      int64_t base = (n * C + c) * S;
      double s = 0, ss = 0;
      for (int64_t i = 0; i < S; i++) s += f64 ? ((const double *)x->data)[base + i] : ((const float *)x->data)[base + i];
      double mu = S ? s / (double)S : 0;
      for (int64_t i = 0; i < S; i++) {
        double v = (f64 ? ((const double *)x->data)[base + i] : ((const float *)x->data)[base + i]) - mu;
        ss += v * v;
      }
      double inv = 1.0 / sqrt((S ? ss / (double)S : 0) + eps);
      double g = vt_tensor_get_f64(sc, c), bb = vt_tensor_get_f64(b, c);
      for (int64_t i = 0; i < S; i++) {
        if (f64) {
          double *y = out[0]->data;
          y[base + i] = (((const double *)x->data)[base + i] - mu) * inv * g + bb;
        } else {
          float *y = out[0]->data;
          y[base + i] = (float)((((const float *)x->data)[base + i] - mu) * inv * g + bb);
        }
      }
    }
  return VT_OK;
}

int vt_kernel_InstanceNormalization(vt_kctx *k) { return with_f32(k, 3, 1, in_fn); }

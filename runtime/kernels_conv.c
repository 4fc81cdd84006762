/* kernels_conv.c — reference kernels of Conv, ConvTranspose (im2col / col2im + the shared GEMM),
 * BatchNormalization (inference), MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool.
 * Compute is float32; other float dtypes (and u8/i8 for MaxPool) convert through f32. */
#include "gemm.h"
#include "kernels_util.h"
#include "linalg_util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* dst (any supported dtype, allocated) = src (f32, same numel). */
static void store_f32(vt_tensor *dst, const float *src) {
  int64_t n = vt_tensor_numel(dst);
  switch (dst->dtype) {
  case VT_F32: if (dst->data != src) memcpy(dst->data, src, (size_t)n * 4); break;
  case VT_F64: for (int64_t i = 0; i < n; i++) ((double *)dst->data)[i] = src[i]; break;
  case VT_F16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst->data)[i] = vt_f32_to_f16(src[i]); break;
  case VT_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)dst->data)[i] = vt_f32_to_bf16(src[i]); break;
  case VT_U8: for (int64_t i = 0; i < n; i++) ((uint8_t *)dst->data)[i] = (uint8_t)src[i]; break;
  case VT_I8: for (int64_t i = 0; i < n; i++) ((int8_t *)dst->data)[i] = (int8_t)src[i]; break;
  default: break;
  }
}

/* A float32 view of t: t itself when f32, else a converted copy in tmp. */
static const float *as_f32(vt_kctx *k, const vt_tensor *t, vt_tensor *tmp, int *rc) {
  if (t->dtype == VT_F32) return t->data;
  *rc = vt_tensor_to_f32(t, tmp, k->err);
  return *rc ? NULL : tmp->data;
}

/* Output buffer: y's data when f32, else a scratch f32 tensor in tmp. */
static float *out_f32(vt_kctx *k, vt_tensor *y, vt_tensor *tmp, int *rc) {
  if (y->dtype == VT_F32) return y->data;
  *rc = vt_tensor_alloc(tmp, VT_F32, y->rank, y->dims, k->err);
  return *rc ? NULL : tmp->data;
}

typedef struct {
  int nsp;
  int64_t in[VT_MAX_RANK], out[VT_MAX_RANK];
  int64_t k[VT_MAX_RANK], s[VT_MAX_RANK], d[VT_MAX_RANK], pb[VT_MAX_RANK], pe[VT_MAX_RANK];
  int64_t kprod, pin, pout;
} win;

/* Reads geometry for x (and weight kernel dims if w) and checks the output dims against y. */
static int read_win(vt_kctx *k, const vt_tensor *x, const vt_tensor *w, const vt_tensor *y,
                    int transpose, win *g) {
  int nsp = x->rank - 2;
  vt_lgeom lg;
  char err[256];
  vt_dim wk[VT_MAX_RANK] = {0};
  if (w)
    for (int i = 0; i < nsp; i++) wk[i] = w->dims[2 + i];
  if (vt_lgeom_read(k->node, nsp, w ? wk : NULL, &lg, err, sizeof err))
    return vt_kernel_fail(k, "%s", err);
  memset(g, 0, sizeof *g);
  g->nsp = nsp;
  g->kprod = g->pin = g->pout = 1;
  for (int i = 0; i < nsp; i++) {
    g->in[i] = x->dims[2 + i];
    int64_t o = transpose ? vt_lgeom_out_t(&lg, i, g->in[i], &g->pb[i], &g->pe[i], err, sizeof err)
                          : vt_lgeom_out(&lg, i, g->in[i], &g->pb[i], &g->pe[i], err, sizeof err);
    if (o < 0) return vt_kernel_fail(k, "%s", err);
    if (o != y->dims[2 + i]) return vt_kernel_fail(k, "output spatial dim %d mismatch", i);
    g->out[i] = o;
    g->k[i] = lg.k[i];
    g->s[i] = lg.s[i];
    g->d[i] = lg.d[i];
    g->kprod *= g->k[i];
    g->pin *= g->in[i];
    g->pout *= g->out[i];
  }
  return VT_OK;
}

/* kernel offset index -> per-dim kernel positions */
static void kpos(const win *g, int64_t kidx, int64_t *kk) {
  for (int i = g->nsp - 1; i >= 0; i--) {
    kk[i] = kidx % g->k[i];
    kidx /= g->k[i];
  }
}

/* ---------- Conv ----------------------------------------------------------------------------- */
typedef struct {
  const win *g;
  const float *x;       /* the group's input channels [Cg, pin] */
  float *col;           /* [Cg * kprod, pout] */
} im2col_job;

static void im2col_rows(void *arg, int64_t r0, int64_t r1) {
  im2col_job *j = arg;
  const win *g = j->g;
  int nsp = g->nsp, last = nsp - 1;
  int64_t ol = g->out[last];
  for (int64_t r = r0; r < r1; r++) {
    int64_t c = r / g->kprod, kk[VT_MAX_RANK];
    kpos(g, r % g->kprod, kk);
    const float *xc = j->x + c * g->pin;
    float *dst = j->col + r * g->pout;
    int64_t idx[VT_MAX_RANK] = {0};
    int64_t souter = g->pout / ol;
    /* valid range of the last output dim */
    int64_t off_l = kk[last] * g->d[last] - g->pb[last], sl = g->s[last], inl = g->in[last];
    for (int64_t q = 0; q < souter; q++) {
      bool ok = true;
      int64_t base = 0;
      for (int i = 0; i < last; i++) {
        int64_t p = idx[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];
        if (p < 0 || p >= g->in[i]) { ok = false; break; }
        base = base * g->in[i] + p;
      }
      float *drow = dst + q * ol;
      if (!ok) {
        memset(drow, 0, sizeof(float) * (size_t)ol);
      } else {
        const float *xr = xc + base * inl;
        for (int64_t o = 0; o < ol; o++) {
          int64_t p = o * sl + off_l;
          drow[o] = (p >= 0 && p < inl) ? xr[p] : 0.0f;
        }
      }
      for (int i = last - 1; i >= 0; i--) {
        if (++idx[i] < g->out[i]) break;
        idx[i] = 0;
      }
    }
  }
}

typedef struct {
  const win *g;
  const float *x, *w, *b;
  float *y;
  int64_t C, Cout, mult;     /* mult: output channels per input channel */
} dw_job;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define VT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VT_CLONES
#endif

/* Depthwise (one input channel per group): direct loops, planes split across threads. */
VT_CLONES __attribute__((optimize("O3")))
static void dw_planes(void *arg, int64_t p0, int64_t p1) {
  dw_job *j = arg;
  const win *g = j->g;
  for (int64_t p = p0; p < p1; p++) {
    int64_t n = p / j->Cout, oc = p % j->Cout, ic = oc / j->mult;
    const float *xc = j->x + (n * j->C + ic) * g->pin;
    const float *wk = j->w + oc * g->kprod;
    float *yc = j->y + p * g->pout;
    float bias = j->b ? j->b[oc] : 0.0f;
    if (g->nsp == 2) {
      /* row-wise: for each kernel tap, one multiply-add over the run of valid output columns
       * (contiguous for stride 1, so it vectorises) */
      int64_t IH = g->in[0], IW = g->in[1], KH = g->k[0], KW = g->k[1], OW = g->out[1];
      int64_t s1 = g->s[1];
      for (int64_t oh = 0; oh < g->out[0]; oh++) {
        float *yr = yc + oh * OW;
        for (int64_t ow = 0; ow < OW; ow++) yr[ow] = bias;
        for (int64_t a = 0; a < KH; a++) {
          int64_t ih = oh * g->s[0] - g->pb[0] + a * g->d[0];
          if (ih < 0 || ih >= IH) continue;
          const float *xr = xc + ih * IW;
          for (int64_t b = 0; b < KW; b++) {
            float wv = wk[a * KW + b];
            int64_t off = b * g->d[1] - g->pb[1];   /* iw = ow * s1 + off */
            int64_t lo = off >= 0 ? 0 : (-off + s1 - 1) / s1;
            int64_t hi = IW - off <= 0 ? 0 : (IW - off + s1 - 1) / s1;
            if (hi > OW) hi = OW;
            if (s1 == 1) {
              const float *restrict xs = xr + off;
              float *restrict yo = yr;
              for (int64_t ow = lo; ow < hi; ow++) yo[ow] += wv * xs[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * s1 + off];
            }
          }
        }
      }
      continue;
    }
    int64_t oidx[VT_MAX_RANK] = {0};
    for (int64_t o = 0; o < g->pout; o++) {
      float s = bias;
      int64_t kk[VT_MAX_RANK] = {0};
      for (int64_t t = 0; t < g->kprod; t++) {
        int64_t off = 0;
        bool ok = true;
        for (int i = 0; i < g->nsp; i++) {
          int64_t q = oidx[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];
          if (q < 0 || q >= g->in[i]) { ok = false; break; }
          off = off * g->in[i] + q;
        }
        if (ok) s += wk[t] * xc[off];
        for (int i = g->nsp - 1; i >= 0; i--) {
          if (++kk[i] < g->k[i]) break;
          kk[i] = 0;
        }
      }
      yc[o] = s;
      for (int i = g->nsp - 1; i >= 0; i--) {
        if (++oidx[i] < g->out[i]) break;
        oidx[i] = 0;
      }
    }
  }
}

int vt_kernel_Conv(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *w = k->in[1], *b = k->n_in > 2 ? k->in[2] : NULL;
  vt_tensor *y = k->out[0];
  if (x->rank < 3 || w->rank != x->rank) return vt_kernel_fail(k, "bad ranks");
  int64_t group = vt_attr_int(k->node, "group", 1);
  int64_t N = x->dims[0], C = x->dims[1], Cout = w->dims[0];
  if (group < 1 || C % group || Cout % group || w->dims[1] * group != C)
    return vt_kernel_fail(k, "channels %lld / weight %lld x group %lld mismatch", (long long)C,
                          (long long)w->dims[1], (long long)group);
  win g;
  int rc = read_win(k, x, w, y, 0, &g);
  if (rc) return rc;
  vt_tensor tx = {0}, tw = {0}, tb = {0}, ty = {0};
  float *col = NULL;
  const float *xf = as_f32(k, x, &tx, &rc), *wf = xf ? as_f32(k, w, &tw, &rc) : NULL;
  const float *bf = (wf && b) ? as_f32(k, b, &tb, &rc) : NULL;
  float *yf = (wf && (!b || bf)) ? out_f32(k, y, &ty, &rc) : NULL;
  if (rc) goto done;
  int64_t Cg = C / group, Mg = Cout / group, Kd = Cg * g.kprod;
  if (N == 0 || Cout == 0 || g.pout == 0) goto convert;
  if (Cg == 1 && Mg <= 4) {
    dw_job j = {&g, xf, wf, bf, yf, C, Cout, Mg};
    vt_pool_for((double)N * Cout * g.pout * g.kprod >= VT_PAR_MIN ? k->pool : NULL, N * Cout, dw_planes, &j);
    goto convert;
  }
  bool direct = true;   /* 1x1, stride 1, no pads: the input is its own im2col */
  for (int i = 0; i < g.nsp; i++)
    if (g.k[i] != 1 || g.s[i] != 1 || g.pb[i] || g.pe[i]) direct = false;
  if (!direct) {
    if ((double)Kd * (double)g.pout > 1e10) { rc = vt_kernel_fail(k, "im2col buffer too large"); goto done; }
    col = malloc(sizeof(float) * (size_t)(Kd * g.pout));
    if (!col) { rc = vt_kernel_fail(k, "out of memory (im2col %lld x %lld)", (long long)Kd, (long long)g.pout); goto done; }
  }
  for (int64_t n = 0; n < N; n++) {
    for (int64_t gi = 0; gi < group; gi++) {
      const float *xg = xf + (n * C + gi * Cg) * g.pin;
      float *yg = yf + (n * Cout + gi * Mg) * g.pout;
      const float *cm = xg;
      if (!direct) {
        im2col_job j = {&g, xg, col};
        vt_pool_for((double)Kd * g.pout >= VT_PAR_MIN ? k->pool : NULL, Kd, im2col_rows, &j);
        cm = col;
      }
      if (bf)
        for (int64_t m = 0; m < Mg; m++)
          for (int64_t q = 0; q < g.pout; q++) yg[m * g.pout + q] = bf[gi * Mg + m];
      vt_sgemm(k->pool, 0, 0, Mg, g.pout, Kd, 1.0f, wf + gi * Mg * Kd, Kd, cm, g.pout,
               bf ? 1.0f : 0.0f, yg, g.pout);
    }
  }
convert:
  if (yf != y->data) store_f32(y, yf);
done:
  free(col);
  vt_tensor_free(&tx); vt_tensor_free(&tw); vt_tensor_free(&tb); vt_tensor_free(&ty);
  return rc;
}

/* ---------- ConvTranspose ------------------------------------------------------------------ */
typedef struct {
  const win *g;          /* in/out as seen by the transposed conv: in = X spatial, out = Y */
  const float *col;      /* [Mg * kprod, pin] */
  float *y;              /* the group's output channels [Mg, pout] */
} col2im_job;

static void col2im_ch(void *arg, int64_t m0, int64_t m1) {
  col2im_job *j = arg;
  const win *g = j->g;
  for (int64_t m = m0; m < m1; m++) {
    float *ym = j->y + m * g->pout;
    for (int64_t t = 0; t < g->kprod; t++) {
      int64_t kk[VT_MAX_RANK];
      kpos(g, t, kk);
      const float *cr = j->col + (m * g->kprod + t) * g->pin;
      int64_t idx[VT_MAX_RANK] = {0};
      for (int64_t q = 0; q < g->pin; q++) {
        int64_t off = 0;
        bool ok = true;
        for (int i = 0; i < g->nsp; i++) {
          int64_t p = idx[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];
          if (p < 0 || p >= g->out[i]) { ok = false; break; }
          off = off * g->out[i] + p;
        }
        if (ok) ym[off] += cr[q];
        for (int i = g->nsp - 1; i >= 0; i--) {
          if (++idx[i] < g->in[i]) break;
          idx[i] = 0;
        }
      }
    }
  }
}

int vt_kernel_ConvTranspose(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *w = k->in[1], *b = k->n_in > 2 ? k->in[2] : NULL;
  vt_tensor *y = k->out[0];
  if (x->rank < 3 || w->rank != x->rank) return vt_kernel_fail(k, "bad ranks");
  int64_t group = vt_attr_int(k->node, "group", 1);
  int64_t N = x->dims[0], C = x->dims[1], Mg = w->dims[1], Cout = Mg * group;
  if (group < 1 || C % group || w->dims[0] != C || y->dims[1] != Cout)
    return vt_kernel_fail(k, "channel mismatch");
  win g;
  int rc = read_win(k, x, w, y, 1, &g);
  if (rc) return rc;
  vt_tensor tx = {0}, tw = {0}, tb = {0}, ty = {0};
  float *col = NULL;
  const float *xf = as_f32(k, x, &tx, &rc), *wf = xf ? as_f32(k, w, &tw, &rc) : NULL;
  const float *bf = (wf && b) ? as_f32(k, b, &tb, &rc) : NULL;
  float *yf = (wf && (!b || bf)) ? out_f32(k, y, &ty, &rc) : NULL;
  if (rc) goto done;
  int64_t Cg = C / group, Kd = Mg * g.kprod;
  if (N == 0 || Cout == 0 || g.pout == 0) goto convert;
  memset(yf, 0, sizeof(float) * (size_t)vt_tensor_numel(y));
  col = malloc(sizeof(float) * (size_t)(Kd * g.pin) + 4);
  if (!col) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
  for (int64_t n = 0; n < N; n++) {
    for (int64_t gi = 0; gi < group; gi++) {
      const float *xg = xf + (n * C + gi * Cg) * g.pin;
      float *yg = yf + (n * Cout + gi * Mg) * g.pout;
      /* col [Kd, pin] = W_g^T [Kd, Cg] x X_g [Cg, pin]; W_g is [Cg, Kd] */
      vt_sgemm(k->pool, 1, 0, Kd, g.pin, Cg, 1.0f, wf + gi * Cg * Kd, Kd, xg, g.pin, 0.0f, col,
               g.pin);
      col2im_job j = {&g, col, yg};
      vt_pool_for((double)Kd * g.pin >= VT_PAR_MIN ? k->pool : NULL, Mg, col2im_ch, &j);
      if (bf)
        for (int64_t m = 0; m < Mg; m++)
          for (int64_t q = 0; q < g.pout; q++) yg[m * g.pout + q] += bf[gi * Mg + m];
    }
  }
convert:
  if (yf != y->data) store_f32(y, yf);
done:
  free(col);
  vt_tensor_free(&tx); vt_tensor_free(&tw); vt_tensor_free(&tb); vt_tensor_free(&ty);
  return rc;
}

/* ---------- BatchNormalization (inference) ------------------------------------------------ */
typedef struct {
  const float *x;
  float *y;
  const double *a, *b;
  int64_t C, inner;
} bn_job;

static void bn_planes(void *arg, int64_t p0, int64_t p1) {
  bn_job *j = arg;
  for (int64_t p = p0; p < p1; p++) {
    int64_t c = p % j->C;
    float a = (float)j->a[c], b = (float)j->b[c];
    const float *x = j->x + p * j->inner;
    float *y = j->y + p * j->inner;
    for (int64_t i = 0; i < j->inner; i++) y[i] = x[i] * a + b;
  }
}

int vt_kernel_BatchNormalization(vt_kctx *k) {
  if (vt_attr_int(k->node, "training_mode", 0) != 0)
    return vt_kernel_fail(k, "training_mode=1 is not supported (inference only)");
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  if (x->rank < 2) return vt_kernel_fail(k, "X must have rank >= 2");
  int64_t C = x->dims[1], N = x->dims[0];
  for (int i = 1; i < 5; i++)
    if (!k->in[i] || vt_tensor_numel(k->in[i]) != C)
      return vt_kernel_fail(k, "input %d must have %lld elements", i, (long long)C);
  float eps = vt_attr_float(k->node, "epsilon", 1e-5f);
  double *ab = malloc(sizeof(double) * 2 * (size_t)C + 16);
  if (!ab) return vt_kernel_fail(k, "out of memory");
  for (int64_t c = 0; c < C; c++) {
    double sc = vt_tensor_get_f64(k->in[1], c), bi = vt_tensor_get_f64(k->in[2], c);
    double mu = vt_tensor_get_f64(k->in[3], c), var = vt_tensor_get_f64(k->in[4], c);
    double a = sc / sqrt(var + (double)eps);
    ab[c] = a;
    ab[C + c] = bi - mu * a;
  }
  int64_t inner = 1;
  for (int d = 2; d < x->rank; d++) inner *= x->dims[d];
  int rc = VT_OK;
  if (x->dtype == VT_F64) {
    const double *xd = x->data;
    double *yd = y->data;
    for (int64_t p = 0; p < N * C; p++)
      for (int64_t i = 0; i < inner; i++)
        yd[p * inner + i] = xd[p * inner + i] * ab[p % C] + ab[C + p % C];
  } else {
    vt_tensor tx = {0}, ty = {0};
    const float *xf = as_f32(k, x, &tx, &rc);
    float *yf = xf ? out_f32(k, y, &ty, &rc) : NULL;
    if (!rc) {
      bn_job j = {xf, yf, ab, ab + C, C, inner};
      vt_pool_for(N * C * inner >= VT_PAR_MIN ? k->pool : NULL, N * C, bn_planes, &j);
      if (yf != y->data) store_f32(y, yf);
    }
    vt_tensor_free(&tx);
    vt_tensor_free(&ty);
  }
  free(ab);
  return rc;
}

/* ---------- MaxPool / AveragePool ------------------------------------------------------------ */
typedef struct {
  const win *g;
  const float *x;
  float *y;
  int64_t *ind;          /* MaxPool indices or NULL */
  int is_max, count_pad, col_major;
} pool_job;

static void pool_planes(void *arg, int64_t p0, int64_t p1) {
  pool_job *j = arg;
  const win *g = j->g;
  int nsp = g->nsp;
  for (int64_t p = p0; p < p1; p++) {
    const float *xp = j->x + p * g->pin;
    float *yp = j->y + p * g->pout;
    int64_t oidx[VT_MAX_RANK] = {0};
    for (int64_t o = 0; o < g->pout; o++) {
      float best = -INFINITY;
      int64_t bi = -1;
      double sum = 0;
      int64_t cnt = 0, padcnt = 1;
      for (int i = 0; i < nsp; i++) {
        /* window elements inside the padded input (count_include_pad) */
        int64_t st = oidx[i] * g->s[i] - g->pb[i], c = 0;
        for (int64_t t = 0; t < g->k[i]; t++) {
          int64_t q = st + t * g->d[i];
          if (q >= -g->pb[i] && q < g->in[i] + g->pe[i]) c++;
        }
        padcnt *= c;
      }
      int64_t kk[VT_MAX_RANK] = {0};
      for (int64_t t = 0; t < g->kprod; t++) {
        int64_t off = 0, coff = 0, cmul = 1;
        bool ok = true;
        for (int i = 0; i < nsp; i++) {
          int64_t q = oidx[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];
          if (q < 0 || q >= g->in[i]) { ok = false; break; }
          off = off * g->in[i] + q;
          coff += q * cmul;
          cmul *= g->in[i];
        }
        if (ok) {
          float v = xp[off];
          if (j->is_max) {
            if (v > best || bi < 0) { best = v; bi = j->col_major ? coff : off; }
          } else {
            sum += v;
            cnt++;
          }
        }
        for (int i = nsp - 1; i >= 0; i--) {
          if (++kk[i] < g->k[i]) break;
          kk[i] = 0;
        }
      }
      if (j->is_max) {
        yp[o] = best;
        if (j->ind) j->ind[p * g->pout + o] = (bi < 0 ? 0 : bi) + p * g->pin;
      } else {
        int64_t div = j->count_pad ? padcnt : cnt;
        yp[o] = div > 0 ? (float)(sum / (double)div) : 0.0f;
      }
      for (int i = nsp - 1; i >= 0; i--) {
        if (++oidx[i] < g->out[i]) break;
        oidx[i] = 0;
      }
    }
  }
}

static int pool_common(vt_kctx *k, int is_max) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  if (x->rank < 3) return vt_kernel_fail(k, "X must have rank >= 3");
  win g;
  int rc = read_win(k, x, NULL, y, 0, &g);
  if (rc) return rc;
  vt_tensor tx = {0}, ty = {0};
  const float *xf = as_f32(k, x, &tx, &rc);
  float *yf = xf ? out_f32(k, y, &ty, &rc) : NULL;
  if (!rc) {
    vt_tensor *ind = is_max && k->n_out > 1 ? k->out[1] : NULL;
    pool_job j = {&g, xf, yf, ind && ind->data && ind->dtype == VT_I64 ? ind->data : NULL, is_max,
                  (int)vt_attr_int(k->node, "count_include_pad", 0),
                  (int)vt_attr_int(k->node, "storage_order", 0) == 1};
    int64_t planes = x->dims[0] * x->dims[1];
    vt_pool_for((double)planes * g.pout * g.kprod >= VT_PAR_MIN ? k->pool : NULL, planes, pool_planes, &j);
    if (yf != y->data) store_f32(y, yf);
  }
  vt_tensor_free(&tx);
  vt_tensor_free(&ty);
  return rc;
}

int vt_kernel_MaxPool(vt_kctx *k) { return pool_common(k, 1); }
int vt_kernel_AveragePool(vt_kctx *k) { return pool_common(k, 0); }

/* ---------- global pools ------------------------------------------------------------------- */
static int global_pool(vt_kctx *k, int is_max) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  if (x->rank < 2) return vt_kernel_fail(k, "X must have rank >= 2");
  int64_t planes = x->dims[0] * x->dims[1], inner = 1;
  for (int d = 2; d < x->rank; d++) inner *= x->dims[d];
  int rc = VT_OK;
  vt_tensor tx = {0}, ty = {0};
  const float *xf = as_f32(k, x, &tx, &rc);
  float *yf = xf ? out_f32(k, y, &ty, &rc) : NULL;
  if (!rc) {
    for (int64_t p = 0; p < planes; p++) {
      const float *xp = xf + p * inner;
      if (is_max) {
        float m = inner ? xp[0] : -INFINITY;
        for (int64_t i = 1; i < inner; i++) m = xp[i] > m ? xp[i] : m;
        yf[p] = m;
      } else {
        double s = 0;
        for (int64_t i = 0; i < inner; i++) s += xp[i];
        yf[p] = inner ? (float)(s / (double)inner) : NAN;
      }
    }
    if (yf != y->data) store_f32(y, yf);
  }
  vt_tensor_free(&tx);
  vt_tensor_free(&ty);
  return rc;
}

int vt_kernel_GlobalAveragePool(vt_kctx *k) { return global_pool(k, 0); }
int vt_kernel_GlobalMaxPool(vt_kctx *k) { return global_pool(k, 1); }

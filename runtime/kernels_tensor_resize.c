/* kernels_tensor_resize.c — reference kernels for Resize (nearest / linear / cubic, every ONNX
 * coordinate_transformation_mode, scales or sizes, axes), its old form Upsample, and Pad
 * (constant / reflect / edge, pads as attribute or input, axes input).
 * Resize follows the ONNX reference implementation: per axis, each output coordinate maps to a
 * source coordinate and a few weighted taps (edge-clamped, or dropped and renormalised with
 * exclude_outside); the n-d result is the tensor product of the per-axis taps. */
#include "kernels_tensor.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---------- Resize ------------------------------------------------------------------------- */
enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum { CT_HALF, CT_PYTORCH_HALF, CT_ALIGN, CT_ASYM, CT_TF_NN, CT_TF_CROP };
enum { NM_ROUND_FLOOR, NM_ROUND_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

typedef vt_resize_axis axis_taps;   /* runtime.h */

typedef struct rjob {
  const vt_tensor *x;
  vt_tensor *y;
  int32_t r;
  axis_taps ax[VT_MAX_RANK];
  int64_t xs[VT_MAX_RANK];
  double extrap_val;
  bool copy_only;           /* all axes single-tap: copy elements by size */
  size_t es;
  atomic_int failed;        /* a chunk ran out of memory */
} rjob;

static void cubic_coeffs(double t, double A, double *c) {
  double t1 = t + 1, u = 1 - t, u1 = u + 1;
  c[0] = ((A * t1 - 5 * A) * t1 + 8 * A) * t1 - 4 * A;
  c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
  c[2] = ((A + 2) * u - (A + 3)) * u * u + 1;
  c[3] = ((A * u1 - 5 * A) * u1 + 8 * A) * u1 - 4 * A;
}

static int build_taps(axis_taps *a, int64_t in, int64_t out, double scale, int mode, int ct, int nm, double A,
                      bool exclude, double roi0, double roi1, bool identity) {
  a->nt = identity || mode == M_NEAREST ? 1 : mode == M_LINEAR ? 2 : 4;
  a->idx = malloc((size_t)(out * a->nt + 1) * sizeof *a->idx);
  a->w = malloc((size_t)(out * a->nt + 1) * sizeof *a->w);
  a->extrap = calloc((size_t)out + 1, sizeof *a->extrap);
  if (!a->idx || !a->w || !a->extrap) return -1;
  double ow = scale * (double)in;   /* the reference's "output width" (not rounded) */
  for (int64_t o = 0; o < out; o++) {
    int64_t *ix = a->idx + o * a->nt;
    double *w = a->w + o * a->nt;
    if (identity) {
      ix[0] = o;
      w[0] = 1;
      continue;
    }
    double x;
    switch (ct) {
      case CT_ALIGN: x = ow == 1 ? 0 : (double)o * (double)(in - 1) / (ow - 1); break;
      case CT_ASYM: x = (double)o / scale; break;
      case CT_PYTORCH_HALF: x = ow == 1 ? -0.5 : ((double)o + 0.5) / scale - 0.5; break;
      case CT_TF_NN: x = ((double)o + 0.5) / scale; break;
      case CT_TF_CROP:
        x = ow == 1 ? (roi1 - roi0) * (double)(in - 1) / 2 : (double)o * (roi1 - roi0) * (double)(in - 1) / (ow - 1);
        x += roi0 * (double)(in - 1);
        if (x < 0 || x > (double)(in - 1)) a->extrap[o] = true;
        break;
      default: x = ((double)o + 0.5) / scale - 0.5;
    }
    double x0 = floor(x), t = x - x0;
    int64_t b = (int64_t)x0;
    if (mode == M_NEAREST) {
      int64_t pick;
      if (t == 0) pick = b;
      else switch (nm) {
        case NM_ROUND_CEIL: pick = t < 0.5 ? b : b + 1; break;
        case NM_FLOOR: pick = b; break;
        case NM_CEIL: pick = b + 1; break;
        case NM_SIMPLE: pick = scale < 1 ? b + 1 : b; break;
        default: pick = t <= 0.5 ? b : b + 1;
      }
      ix[0] = pick < 0 ? 0 : pick >= in ? in - 1 : pick;
      w[0] = 1;
      continue;
    }
    int64_t first;
    if (mode == M_LINEAR) {
      first = b;
      w[0] = 1 - t;
      w[1] = t;
    } else {
      first = b - 1;
      cubic_coeffs(t, A, w);
    }
    double sum = 0;
    for (int j = 0; j < a->nt; j++) {
      int64_t i = first + j;
      if (exclude && (i < 0 || i >= in)) w[j] = 0;
      sum += w[j];
      ix[j] = i < 0 ? 0 : i >= in ? in - 1 : i;
    }
    if (exclude && sum != 0)
      for (int j = 0; j < a->nt; j++) w[j] /= sum;
  }
  return 0;
}

static inline double load_elem(const vt_tensor *x, int64_t i) {
  return x->dtype == VT_F32 ? (double)((const float *)x->data)[i] : vt_tensor_get_f64(x, i);
}

static void resize_rows(void *arg, int64_t begin, int64_t end) {
  rjob *j = arg;
  int32_t r = j->r;
  int64_t W = j->y->dims[r - 1];
  int64_t idx[VT_MAX_RANK] = {0}, rem = begin;
  for (int32_t d = r - 2; d >= 0; d--) {
    idx[d] = rem % j->y->dims[d];
    rem /= j->y->dims[d];
  }
  const char *src = j->x->data;
  char *dst = j->y->data;
  size_t es = j->es;
  const axis_taps *la = &j->ax[r - 1];
  /* the outer dims' tap combinations of one row: offsets and weight products */
  int64_t ntot = 1;
  for (int32_t d = 0; d < r - 1; d++) ntot *= j->ax[d].nt;
  int64_t *coff = malloc((size_t)ntot * sizeof *coff);
  double *cw = malloc((size_t)ntot * sizeof *cw);
  if (!coff || !cw) {
    atomic_store(&j->failed, 1);
    free(coff);
    free(cw);
    return;
  }
  for (int64_t row = begin; row < end; row++) {
    bool ext_row = false;
    for (int32_t d = 0; d < r - 1; d++) ext_row = ext_row || j->ax[d].extrap[idx[d]];
    int64_t nc = 0;
    for (int64_t c = 0; c < ntot; c++) {
      int64_t cc = c, off = 0;
      double w = 1;
      for (int32_t d = r - 2; d >= 0; d--) {
        const axis_taps *a = &j->ax[d];
        int tj = (int)(cc % a->nt);
        cc /= a->nt;
        w *= a->w[idx[d] * a->nt + tj];
        off += a->idx[idx[d] * a->nt + tj] * j->xs[d];
      }
      if (w == 0) continue;
      coff[nc] = off;
      cw[nc++] = w;
    }
    for (int64_t o = 0; o < W; o++) {
      int64_t oe = row * W + o;
      if (ext_row || la->extrap[o]) {
        vt_tk_store_f64(dst + (size_t)oe * es, j->y->dtype, j->extrap_val);
        continue;
      }
      if (j->copy_only) {
        memcpy(dst + (size_t)oe * es, src + (size_t)(coff[0] + la->idx[o]) * es, es);
        continue;
      }
      double acc = 0;
      const int64_t *li = la->idx + o * la->nt;
      const double *lw = la->w + o * la->nt;
      for (int64_t c = 0; c < nc; c++)
        for (int tj = 0; tj < la->nt; tj++)
          if (lw[tj] != 0) acc += cw[c] * lw[tj] * load_elem(j->x, coff[c] + li[tj]);
      if (j->y->dtype == VT_F32) ((float *)dst)[oe] = (float)acc;
      else vt_tk_store_f64(dst + (size_t)oe * es, j->y->dtype, acc);
    }
    for (int32_t d = r - 2; d >= 0; d--) {
      if (++idx[d] < j->y->dims[d]) break;
      idx[d] = 0;
    }
  }
  free(coff);
  free(cw);
}

int vt_resize_taps(const vt_node *node, int64_t opset, bool upsample, int32_t r, const int64_t *xdims,
                   const int64_t *ydims, const vt_tensor *ts, const vt_tensor *troi, vt_resize_axis *ax,
                   char *err, size_t errn) {
  memset(ax, 0, (size_t)r * sizeof *ax);
  bool legacy = upsample || opset < 11;
  const char *ms = vt_attr_str(node, "mode", "nearest");
  int mode = !strcmp(ms, "nearest") ? M_NEAREST : !strcmp(ms, "cubic") ? M_CUBIC : M_LINEAR;
  const char *cs = vt_attr_str(node, "coordinate_transformation_mode", "half_pixel");
  int ct;
  if (legacy) ct = CT_ASYM;
  else if (!strcmp(cs, "half_pixel")) ct = CT_HALF;
  else if (!strcmp(cs, "pytorch_half_pixel")) ct = CT_PYTORCH_HALF;
  else if (!strcmp(cs, "align_corners")) ct = CT_ALIGN;
  else if (!strcmp(cs, "asymmetric")) ct = CT_ASYM;
  else if (!strcmp(cs, "tf_half_pixel_for_nn")) ct = CT_TF_NN;
  else if (!strcmp(cs, "tf_crop_and_resize")) ct = CT_TF_CROP;
  else { snprintf(err, errn, "unknown coordinate_transformation_mode '%s'", cs); return -1; }
  const char *ns = vt_attr_str(node, "nearest_mode", "round_prefer_floor");
  int nm;
  if (legacy) nm = NM_SIMPLE;
  else if (!strcmp(ns, "round_prefer_floor")) nm = NM_ROUND_FLOOR;
  else if (!strcmp(ns, "round_prefer_ceil")) nm = NM_ROUND_CEIL;
  else if (!strcmp(ns, "floor")) nm = NM_FLOOR;
  else if (!strcmp(ns, "ceil")) nm = NM_CEIL;
  else { snprintf(err, errn, "unknown nearest_mode '%s'", ns); return -1; }
  double A = vt_attr_float(node, "cubic_coeff_a", -0.75f);
  bool exclude = vt_attr_int(node, "exclude_outside", 0) != 0;
  /* axes (opset 18) */
  int64_t axes[VT_MAX_RANK];
  const int64_t *aa;
  int32_t na = legacy ? -1 : vt_attr_ints(node, "axes", &aa);
  if (na < 0) {
    na = r;
    for (int32_t d = 0; d < r; d++) axes[d] = d;
  } else {
    for (int32_t d = 0; d < na; d++) axes[d] = aa[d] < 0 ? aa[d] + r : aa[d];
  }
  double scale[VT_MAX_RANK], roi0[VT_MAX_RANK], roi1[VT_MAX_RANK];
  for (int32_t d = 0; d < r; d++) {
    scale[d] = xdims[d] ? (double)ydims[d] / (double)xdims[d] : 1;
    roi0[d] = 0;
    roi1[d] = 1;
  }
  if (upsample && !ts) {
    const float *f;
    int32_t n = vt_attr_floats(node, "scales", &f);
    for (int32_t d = 0; d < n && d < r; d++) scale[d] = f[d];
  }
  if (ts && vt_tensor_numel(ts) > 0) {
    if (vt_tensor_numel(ts) != na) {
      snprintf(err, errn, "scales has %lld entries for %d axes", (long long)vt_tensor_numel(ts), na);
      return -1;
    }
    for (int32_t i = 0; i < na; i++) scale[axes[i]] = vt_tensor_get_f64(ts, i);
  }
  if (ct == CT_TF_CROP && troi && vt_tensor_numel(troi) > 0) {
    if (vt_tensor_numel(troi) != 2 * na) {
      snprintf(err, errn, "roi has %lld entries for %d axes", (long long)vt_tensor_numel(troi), na);
      return -1;
    }
    for (int32_t i = 0; i < na; i++) {
      roi0[axes[i]] = vt_tensor_get_f64(troi, i);
      roi1[axes[i]] = vt_tensor_get_f64(troi, na + i);
    }
  }
  for (int32_t d = 0; d < r; d++) {
    if (!(scale[d] > 0)) { snprintf(err, errn, "scale %g is invalid", scale[d]); return -1; }
    bool identity = xdims[d] == ydims[d] && scale[d] == 1 && ct != CT_TF_CROP;
    if (xdims[d] == 0 && ydims[d] > 0) { snprintf(err, errn, "cannot resize an empty axis"); return -1; }
    if (build_taps(&ax[d], xdims[d], ydims[d], scale[d], mode, ct, nm, A, exclude, roi0[d], roi1[d], identity)) {
      snprintf(err, errn, "out of memory");
      return -1;
    }
  }
  return 0;
}

void vt_resize_taps_free(vt_resize_axis *ax, int32_t r) {
  for (int32_t d = 0; d < r; d++) {
    free(ax[d].idx);
    free(ax[d].w);
    free(ax[d].extrap);
    ax[d].idx = NULL;
    ax[d].w = NULL;
    ax[d].extrap = NULL;
  }
}

static int run_resize(vt_kctx *k, bool upsample) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int32_t r = x->rank;
  int64_t op = vt_tk_opset(k);
  const char *ms = vt_attr_str(k->node, "mode", "nearest");
  if (strcmp(ms, "nearest") && !vt_dtype_is_float(x->dtype) && !vt_dtype_is_int(x->dtype))
    return vt_kernel_fail(k, "%s resize is not supported for %s", ms, vt_dtype_name(x->dtype));
  const vt_tensor *ts = NULL, *troi = NULL;
  if (upsample) {
    if (k->n_in > 1) ts = k->in[1];
  } else if (op < 11) {
    ts = k->in[1];
  } else {
    troi = k->n_in > 1 ? k->in[1] : NULL;
    ts = k->n_in > 2 ? k->in[2] : NULL;
  }
  rjob j = {.x = x, .y = y, .r = r, .extrap_val = vt_attr_float(k->node, "extrapolation_value", 0), .es = es};
  vt_strides(r, x->dims, j.xs);
  char err[200];
  int rc = VT_OK;
  if (vt_resize_taps(k->node, op, upsample, r, x->dims, y->dims, ts, troi, j.ax, err, sizeof err))
    rc = vt_kernel_fail(k, "%s", err);
  bool all_single = true;
  for (int32_t d = 0; d < r && rc == VT_OK; d++)
    if (j.ax[d].nt != 1) all_single = false;
  j.copy_only = all_single;
  if (rc == VT_OK && vt_tensor_numel(y) > 0) {
    if (r == 0) {
      memcpy(y->data, x->data, es);
    } else {
      int64_t rows = vt_tensor_numel(y) / y->dims[r - 1];
      vt_pool_for(vt_tensor_numel(y) >= VT_TK_PAR_MIN / 8 && rows > 1 ? k->pool : NULL, rows, resize_rows, &j);
      if (atomic_load(&j.failed)) rc = vt_kernel_fail(k, "out of memory");
    }
  }
  vt_resize_taps_free(j.ax, r);
  return rc;
}

int vt_kernel_Resize(vt_kctx *k) { return run_resize(k, false); }
int vt_kernel_Upsample(vt_kctx *k) { return run_resize(k, true); }

/* ---------- Pad ------------------------------------------------------------------------------- */
enum { P_CONST, P_REFLECT, P_EDGE };

typedef struct pjob {
  const vt_tensor *x;
  vt_tensor *y;
  int32_t r;
  int mode;
  int64_t pb[VT_MAX_RANK];
  int64_t xs[VT_MAX_RANK];
  unsigned char val[16];
  size_t es;
} pjob;

/* Source index for output position o - pad on an axis of size d; -1: the constant value. */
static int64_t pad_map(int64_t i, int64_t d, int mode) {
  if (i >= 0 && i < d) return i;
  if (mode == P_CONST || d == 0) return -1;
  if (mode == P_EDGE) return i < 0 ? 0 : d - 1;
  if (d == 1) return 0;
  int64_t per = 2 * (d - 1);
  i %= per;
  if (i < 0) i += per;
  return i < d ? i : per - i;
}

static void pad_rows(void *arg, int64_t begin, int64_t end) {
  const pjob *p = arg;
  int32_t r = p->r;
  int64_t W = p->y->dims[r - 1], Wx = p->x->dims[r - 1], pbl = p->pb[r - 1];
  int64_t idx[VT_MAX_RANK] = {0}, rem = begin;
  for (int32_t d = r - 2; d >= 0; d--) {
    idx[d] = rem % p->y->dims[d];
    rem /= p->y->dims[d];
  }
  size_t es = p->es;
  const char *src = p->x->data;
  for (int64_t row = begin; row < end; row++) {
    char *dst = (char *)p->y->data + (size_t)(row * W) * es;
    int64_t off = 0;
    bool constrow = false;
    for (int32_t d = 0; d < r - 1; d++) {
      int64_t s = pad_map(idx[d] - p->pb[d], p->x->dims[d], p->mode);
      if (s < 0) constrow = true;
      else off += s * p->xs[d];
    }
    /* interior [lo, hi) of the row copies straight from the source */
    int64_t lo = pbl < 0 ? 0 : pbl, hi = pbl + Wx;
    if (hi > W) hi = W;
    if (constrow) lo = hi = 0;
    for (int64_t o = 0; o < W; o++) {
      if (o == lo && hi > lo) {
        memcpy(dst + (size_t)o * es, src + (size_t)(off + o - pbl) * es, (size_t)(hi - lo) * es);
        o = hi - 1;
        continue;
      }
      int64_t s = constrow ? -1 : pad_map(o - pbl, Wx, p->mode);
      if (s < 0) memcpy(dst + (size_t)o * es, p->val, es);
      else memcpy(dst + (size_t)o * es, src + (size_t)(off + s) * es, es);
    }
    for (int32_t d = r - 2; d >= 0; d--) {
      if (++idx[d] < p->y->dims[d]) break;
      idx[d] = 0;
    }
  }
}

int vt_kernel_Pad(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  if (es > 16) return vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(x->dtype));
  int32_t r = x->rank;
  const char *ms = vt_attr_str(k->node, "mode", "constant");
  pjob p = {.x = x, .y = y, .r = r, .es = es};
  p.mode = !strcmp(ms, "reflect") ? P_REFLECT : !strcmp(ms, "edge") ? P_EDGE : P_CONST;
  int64_t axes[VT_MAX_RANK], pads[2 * VT_MAX_RANK];
  int32_t na = r;
  for (int32_t d = 0; d < r; d++) axes[d] = d;
  if (k->n_in > 3 && k->in[3]) {
    na = vt_tk_read_ints(k->in[3], axes, VT_MAX_RANK);
    if (na < 0) return vt_kernel_fail(k, "invalid axes");
    for (int32_t i = 0; i < na; i++) axes[i] = axes[i] < 0 ? axes[i] + r : axes[i];
  }
  int32_t np;
  if (k->n_in > 1) {
    np = vt_tk_read_ints(k->in[1], pads, 2 * VT_MAX_RANK);
  } else {
    const int64_t *a;
    np = vt_attr_ints(k->node, "pads", &a);
    for (int32_t i = 0; i < np && i < 2 * VT_MAX_RANK; i++) pads[i] = a[i];
  }
  if (np != 2 * na) return vt_kernel_fail(k, "%d pads for %d axes", np, na);
  for (int32_t i = 0; i < na; i++) p.pb[axes[i]] = pads[i];
  memset(p.val, 0, sizeof p.val);
  if (k->n_in > 2 && k->in[2] && vt_tensor_numel(k->in[2]) > 0) {
    if (k->in[2]->dtype != x->dtype) return vt_kernel_fail(k, "constant_value must have the input's dtype");
    memcpy(p.val, k->in[2]->data, es);
  } else if (k->n_in <= 1) {
    vt_tk_store_f64(p.val, x->dtype, vt_attr_float(k->node, "value", 0));
  }
  vt_strides(r, x->dims, p.xs);
  int64_t n = vt_tensor_numel(y);
  if (n == 0) return VT_OK;
  if (r == 0) {
    memcpy(y->data, x->data, es);
    return VT_OK;
  }
  int64_t rows = n / y->dims[r - 1];
  vt_pool_for(n >= VT_TK_PAR_MIN && rows > 1 ? k->pool : NULL, rows, pad_rows, &p);
  return VT_OK;
}

/* ---------- GridSample (4-D, opset 16; PyTorch grid_sample semantics) ------------------------ */
enum { GP_ZEROS, GP_BORDER, GP_REFLECT };

static double gs_unnorm(double c, int64_t size, bool ac) {
  return ac ? (c + 1) / 2 * (double)(size - 1) : ((c + 1) * (double)size - 1) / 2;
}

static double gs_reflect(double in, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  double mn = twice_low / 2, span = (twice_high - twice_low) / 2;
  in = fabs(in - mn);
  double extra = fmod(in, span);
  int64_t flips = (int64_t)floor(in / span);
  return flips % 2 == 0 ? extra + mn : span - extra + mn;
}

/* Applies the padding mode to a source coordinate (border / reflection fold it inside). */
static double gs_pad(double x, int64_t size, int pad, bool ac) {
  if (pad == GP_BORDER) return fmin((double)(size - 1), fmax(x, 0));
  if (pad == GP_REFLECT) {
    x = ac ? gs_reflect(x, 0, 2.0 * (double)(size - 1)) : gs_reflect(x, -1, 2.0 * (double)size - 1);
    return fmin((double)(size - 1), fmax(x, 0));
  }
  return x;
}

typedef struct gsjob {
  const vt_tensor *x, *grid;
  vt_tensor *y;
  int mode, pad;
  bool ac;
} gsjob;

static double gs_at(const gsjob *j, int64_t base, int64_t iy, int64_t ix, int64_t H, int64_t W) {
  if (iy < 0 || iy >= H || ix < 0 || ix >= W) return 0;
  return vt_tensor_get_f64(j->x, base + iy * W + ix);
}

static void gs_run(void *arg, int64_t begin, int64_t end) {
  const gsjob *j = arg;
  int64_t C = j->x->dims[1], H = j->x->dims[2], W = j->x->dims[3];
  int64_t Ho = j->y->dims[2], Wo = j->y->dims[3];
  size_t es = vt_dtype_size(j->y->dtype);
  for (int64_t p = begin; p < end; p++) {   /* p = (n, oy, ox) */
    int64_t n = p / (Ho * Wo), rem = p % (Ho * Wo);
    double gx = vt_tensor_get_f64(j->grid, p * 2), gy = vt_tensor_get_f64(j->grid, p * 2 + 1);
    double x = gs_unnorm(gx, W, j->ac), y = gs_unnorm(gy, H, j->ac);
    for (int64_t ch = 0; ch < C; ch++) {
      int64_t base = (n * C + ch) * H * W;
      double v = 0;
      if (j->mode == M_NEAREST) {
        double px = gs_pad(x, W, j->pad, j->ac), py = gs_pad(y, H, j->pad, j->ac);
        v = gs_at(j, base, (int64_t)nearbyint(py), (int64_t)nearbyint(px), H, W);
      } else if (j->mode == M_LINEAR) {
        double px = gs_pad(x, W, j->pad, j->ac), py = gs_pad(y, H, j->pad, j->ac);
        double x0 = floor(px), y0 = floor(py), tx = px - x0, ty = py - y0;
        int64_t ix = (int64_t)x0, iy = (int64_t)y0;
        v = gs_at(j, base, iy, ix, H, W) * (1 - tx) * (1 - ty) + gs_at(j, base, iy, ix + 1, H, W) * tx * (1 - ty) +
            gs_at(j, base, iy + 1, ix, H, W) * (1 - tx) * ty + gs_at(j, base, iy + 1, ix + 1, H, W) * tx * ty;
      } else {
        double x0 = floor(x), y0 = floor(y), cx[4], cy[4];
        cubic_coeffs(x - x0, -0.75, cx);
        cubic_coeffs(y - y0, -0.75, cy);
        for (int a = 0; a < 4; a++)
          for (int b = 0; b < 4; b++) {
            /* taps are folded by the padding mode, then zero outside */
            double tyc = gs_pad(y0 - 1 + a, H, j->pad, j->ac), txc = gs_pad(x0 - 1 + b, W, j->pad, j->ac);
            v += cy[a] * cx[b] * gs_at(j, base, (int64_t)tyc, (int64_t)txc, H, W);
          }
      }
      int64_t oe = ((n * C + ch) * Ho) * Wo + rem;
      vt_tk_store_f64((char *)j->y->data + (size_t)oe * es, j->y->dtype, v);
    }
  }
}

int vt_kernel_GridSample(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *grid = k->in[1];
  vt_tensor *y = k->out[0];
  if (x->dims[0] != grid->dims[0]) return vt_kernel_fail(k, "X and grid differ in batch size");
  const char *ms = vt_attr_str(k->node, "mode", "bilinear"), *ps = vt_attr_str(k->node, "padding_mode", "zeros");
  gsjob j = {.x = x, .grid = grid, .y = y, .ac = vt_attr_int(k->node, "align_corners", 0) != 0};
  j.mode = !strcmp(ms, "nearest") ? M_NEAREST : (!strcmp(ms, "bicubic") || !strcmp(ms, "cubic")) ? M_CUBIC : M_LINEAR;
  j.pad = !strcmp(ps, "border") ? GP_BORDER : !strcmp(ps, "reflection") ? GP_REFLECT : GP_ZEROS;
  int64_t pts = y->dims[0] * y->dims[2] * y->dims[3];
  if (pts > 0 && y->dims[1] > 0 && x->dims[2] > 0 && x->dims[3] > 0)
    vt_pool_for(vt_tensor_numel(y) >= VT_TK_PAR_MIN / 8 ? k->pool : NULL, pts, gs_run, &j);
  return VT_OK;
}

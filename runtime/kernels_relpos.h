/* kernels_relpos.h — the decomposed relative-position bias inputs (bias_rows, bias_cols) of
 * ai.vtopt.Attention and ai.vtopt.EventfulAttention in their reference kernels: the shape checks
 * and broadcast strides, and the per-row addition. Keys are a kh x kw grid (Nk = kh * kw, key
 * j = (j / kw, j % kw)); query row i of slice (b, h) adds rows[j / kw] + cols[j % kw] to the
 * logit of key j, summed in that order (as the materialised mask Add(cols, rows) of the
 * fuse-attention pass did, so both forms give the same floats). */
#ifndef VTOPT_KERNELS_RELPOS_H
#define VTOPT_KERNELS_RELPOS_H

#include "kernels_util.h"
#include "runtime.h"

typedef struct {
  const float *rows, *cols;   /* NULL when the node has no decomposed bias */
  int64_t rstr[4], cstr[4];   /* element strides over [B,H,Nq,kh] and [B,H,Nq,kw] (0: broadcast) */
  int64_t kh, kw;
} vt_relpos;

/* Checks bias_rows / bias_cols (either may be NULL: both must then be) against [B,H,Nq] and Nk
 * and fills rp. Fails with the kernel's node named (vt_kernel_fail). */
static inline int vt_relpos_init(vt_kctx *k, const vt_tensor *rows, const vt_tensor *cols, int64_t B, int64_t H,
                                 int64_t Nq, int64_t Nk, vt_relpos *rp) {
  rp->rows = rp->cols = NULL;
  rp->kh = rp->kw = 0;
  if (!rows && !cols) return VT_OK;
  if (!rows || !cols)
    return vt_kernel_fail(k, "bias_rows and bias_cols (the decomposed relative-position bias) come together; %s is missing",
                          rows ? "bias_cols" : "bias_rows");
  const vt_tensor *t[2] = {rows, cols};
  static const char *nm[2] = {"bias_rows", "bias_cols"};
  for (int s = 0; s < 2; s++) {
    if (t[s]->dtype != VT_F32) return vt_kernel_fail(k, "%s must be f32, got %s", nm[s], vt_dtype_name(t[s]->dtype));
    if (t[s]->rank < 1 || t[s]->rank > 4) return vt_kernel_fail(k, "%s must have rank 1 to 4, got %d", nm[s], t[s]->rank);
  }
  rp->kh = rows->dims[rows->rank - 1];
  rp->kw = cols->dims[cols->rank - 1];
  if (rp->kh * rp->kw != Nk || (Nk > 0 && rp->kw == 0))
    return vt_kernel_fail(k, "bias_rows [..., %lld] and bias_cols [..., %lld] span a %lld x %lld key grid, but K has %lld keys",
                          (long long)rp->kh, (long long)rp->kw, (long long)rp->kh, (long long)rp->kw, (long long)Nk);
  int64_t fr[4] = {B, H, Nq, rp->kh}, fc[4] = {B, H, Nq, rp->kw};
  int rc = vt_bcast_strides(k, "bias_rows", rows, 4, fr, rp->rstr);
  if (!rc) rc = vt_bcast_strides(k, "bias_cols", cols, 4, fc, rp->cstr);
  if (rc) return rc;
  rp->rows = rows->data;
  rp->cols = cols->data;
  return VT_OK;
}

/* x[j] += rows[j / kw] + cols[j % kw] for keys j < n of query row i of slice (b, h). */
static inline void vt_relpos_add(const vt_relpos *rp, int64_t b, int64_t h, int64_t i, float *x, int64_t n) {
  const float *r = rp->rows + b * rp->rstr[0] + h * rp->rstr[1] + i * rp->rstr[2];
  const float *c = rp->cols + b * rp->cstr[0] + h * rp->cstr[1] + i * rp->cstr[2];
  int64_t kw = rp->kw, rs = rp->rstr[3], cs = rp->cstr[3];
  for (int64_t a = 0; a * kw < n; a++) {
    float ra = r[a * rs], *xa = x + a * kw;
    int64_t m = n - a * kw < kw ? n - a * kw : kw;
    if (cs == 1)
      for (int64_t j = 0; j < m; j++) xa[j] += ra + c[j];
    else
      for (int64_t j = 0; j < m; j++) xa[j] += ra + c[j * cs];
  }
}

#endif

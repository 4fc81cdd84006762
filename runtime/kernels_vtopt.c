/* kernels_vtopt.c — reference kernels for vtopt's own ops (domain "ai.vtopt", rows in
 * ir/ops_vtopt.def): Attention, float32 (other dtypes are rejected with a clear error), with
 * the decomposed relative-position bias added per row on the fly (kernels_relpos.h). */
#include "gemm.h"
#include "kernels_relpos.h"
#include "kernels_util.h"
#include "runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const float *q, *k, *v, *mask, *kbias;
  const uint8_t *bmask;           /* bool mask (true = attend), or NULL */
  float *out;
  int64_t B, H, Hkv, Nq, Nk, Dh, Dv;
  int64_t mstr[4];                /* mask element strides over [B,H,Nq,Nk] (0: broadcast) */
  int64_t kbstr_b, kbstr_h;       /* key_bias strides over B and H */
  vt_relpos rel;                  /* bias_rows / bias_cols (rel.rows NULL: none) */
  float scale;
  int causal;
  int failed;                     /* set when scratch allocation fails */
} attn_args;

/* Rows of queries handled per GEMM pair (bounds the score scratch to QB x Nk floats). */
#define QB 64

/* One (b, h) at a time: S = scale * Q.K^T by blocks of QB query rows (GEMM), + mask + the
 * decomposed bias + key bias (in that order), causal and bool masks as -inf, max-subtracted softmax per row (double sum), then
 * O = P.V (GEMM). Rows with no visible key come out zero. */
static void attn_range(void *arg, int64_t begin, int64_t end) {
  attn_args *a = arg;
  size_t nk = (size_t)(a->Nk ? a->Nk : 1);
  float *S = malloc((size_t)QB * nk * sizeof *S);
  if (!S) {
    __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  int64_t group = a->H / a->Hkv;
  for (int64_t bh = begin; bh < end; bh++) {
    int64_t b = bh / a->H, h = bh % a->H, hk = h / group;
    const float *q = a->q + bh * a->Nq * a->Dh;
    const float *k = a->k + (b * a->Hkv + hk) * a->Nk * a->Dh;
    const float *v = a->v + (b * a->Hkv + hk) * a->Nk * a->Dv;
    float *out = a->out + bh * a->Nq * a->Dv;
    const float *kb = a->kbias ? a->kbias + b * a->kbstr_b + h * a->kbstr_h : NULL;
    for (int64_t i0 = 0; i0 < a->Nq; i0 += QB) {
      int64_t m = a->Nq - i0 < QB ? a->Nq - i0 : QB;
      vt_sgemm(NULL, 0, 1, m, a->Nk, a->Dh, a->scale, q + i0 * a->Dh, a->Dh, k, a->Dh, 0.0f, S, a->Nk);
      for (int64_t r = 0; r < m; r++) {
        int64_t i = i0 + r;
        float *p = S + r * a->Nk;
        int64_t last = a->causal ? i + (a->Nk - a->Nq) : a->Nk - 1;   /* last visible key */
        if (last > a->Nk - 1) last = a->Nk - 1;
        int64_t moff = b * a->mstr[0] + h * a->mstr[1] + i * a->mstr[2];
        if (a->mask || a->bmask)
          for (int64_t j = 0; j <= last; j++) {
            float x = p[j];
            if (a->mask) x += a->mask[moff + j * a->mstr[3]];
            if (a->bmask && !a->bmask[moff + j * a->mstr[3]]) x = -INFINITY;
            p[j] = x;
          }
        if (a->rel.rows) vt_relpos_add(&a->rel, b, h, i, p, last + 1);
        float mx = -INFINITY;
        for (int64_t j = 0; j <= last; j++) {
          float x = p[j];
          if (kb) x += kb[j];
          p[j] = x;
          if (x > mx) mx = x;
        }
        int64_t j0 = last < 0 ? 0 : last + 1;
        for (int64_t j = j0; j < a->Nk; j++) p[j] = 0.0f;
        if (last < 0 || mx == -INFINITY) {   /* no visible key: the row is zero */
          for (int64_t j = 0; j < j0; j++) p[j] = 0.0f;
          continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j <= last; j++) {
          p[j] = expf(p[j] - mx);
          sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j <= last; j++) p[j] *= inv;
      }
      vt_sgemm(NULL, 0, 0, m, a->Dv, a->Nk, 1.0f, S, a->Nk, v, a->Dv, 0.0f, out + i0 * a->Dv, a->Dv);
    }
  }
  free(S);
}

int vt_kernel_Attention(vt_kctx *k) {
  const vt_tensor *q = k->in[0], *kt = k->in[1], *v = k->in[2];
  const vt_tensor *mask = k->n_in > 3 ? k->in[3] : NULL;
  const vt_tensor *kb = k->n_in > 4 ? k->in[4] : NULL;
  const vt_tensor *brows = k->n_in > 5 ? k->in[5] : NULL, *bcols = k->n_in > 6 ? k->in[6] : NULL;
  vt_tensor *out = k->out[0];
  if (q->dtype != VT_F32 || kt->dtype != VT_F32 || v->dtype != VT_F32)
    return vt_kernel_fail(k, "supports float32 only, got %s", vt_dtype_name(q->dtype));
  if (q->rank != 4 || kt->rank != 4 || v->rank != 4) return vt_kernel_fail(k, "Q, K, V must have rank 4");
  attn_args a = {0};
  a.B = q->dims[0]; a.H = q->dims[1]; a.Nq = q->dims[2]; a.Dh = q->dims[3];
  a.Hkv = kt->dims[1]; a.Nk = kt->dims[2]; a.Dv = v->dims[3];
  if (kt->dims[0] != a.B || v->dims[0] != a.B || kt->dims[3] != a.Dh || v->dims[1] != a.Hkv || v->dims[2] != a.Nk)
    return vt_kernel_fail(k, "inconsistent shapes Q [%lld,%lld,%lld,%lld], K [%lld,%lld,%lld,%lld], V [%lld,%lld,%lld,%lld]",
                          (long long)q->dims[0], (long long)q->dims[1], (long long)q->dims[2], (long long)q->dims[3],
                          (long long)kt->dims[0], (long long)kt->dims[1], (long long)kt->dims[2], (long long)kt->dims[3],
                          (long long)v->dims[0], (long long)v->dims[1], (long long)v->dims[2], (long long)v->dims[3]);
  if (a.Hkv <= 0 ? a.H != 0 : a.H % a.Hkv != 0)
    return vt_kernel_fail(k, "Q has %lld heads, not a multiple of K/V's %lld", (long long)a.H, (long long)a.Hkv);
  if (out->dtype != VT_F32 || out->rank != 4 || (!out->data && vt_tensor_numel(out) > 0))
    return vt_kernel_fail(k, "output was not allocated as f32 [B,H,Nq,Dv]");
  int64_t full[4] = {a.B, a.H, a.Nq, a.Nk};
  if (mask) {
    if (mask->rank > 4) return vt_kernel_fail(k, "mask must have rank <= 4, got %d", mask->rank);
    if (mask->dtype == VT_F32) a.mask = mask->data;
    else if (mask->dtype == VT_BOOL) a.bmask = mask->data;
    else return vt_kernel_fail(k, "mask must be f32 or bool, got %s", vt_dtype_name(mask->dtype));
    int rc = vt_bcast_strides(k, "mask", mask, 4, full, a.mstr);
    if (rc) return rc;
  }
  if (kb) {
    if (kb->dtype != VT_F32) return vt_kernel_fail(k, "key_bias must be f32, got %s", vt_dtype_name(kb->dtype));
    if (kb->rank != 3 || kb->dims[0] != a.B || (kb->dims[1] != 1 && kb->dims[1] != a.H) || kb->dims[2] != a.Nk)
      return vt_kernel_fail(k, "key_bias must be [B,1|H,Nk] = [%lld,1|%lld,%lld]", (long long)a.B, (long long)a.H,
                            (long long)a.Nk);
    a.kbias = kb->data;
    a.kbstr_b = kb->dims[1] * a.Nk;
    a.kbstr_h = kb->dims[1] == 1 ? 0 : a.Nk;
  }
  int rc = vt_relpos_init(k, brows, bcols, a.B, a.H, a.Nq, a.Nk, &a.rel);
  if (rc) return rc;
  float scale = vt_attr_float(k->node, "scale", 0.0f);
  a.scale = scale != 0.0f ? scale : (a.Dh > 0 ? 1.0f / sqrtf((float)a.Dh) : 1.0f);
  a.causal = (int)vt_attr_int(k->node, "causal", 0);
  a.q = q->data; a.k = kt->data; a.v = v->data; a.out = out->data;
  if (vt_tensor_numel(out) == 0) return VT_OK;
  vt_pool_for(k->pool, a.B * a.H, attn_range, &a);
  if (a.failed) return vt_kernel_fail(k, "out of memory");
  return VT_OK;
}

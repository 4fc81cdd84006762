/* kernels_attention.c — reference kernels (float32) of the attention ops other frameworks export
 * (rows in ir/ops_attention.def): ONNX Attention, com.microsoft.Attention and
 * com.microsoft.MultiHeadAttention. They are the oracle for the fuse-attention rewrites of these
 * ops, so their arithmetic follows ai.vtopt.Attention's kernel (runtime/kernels_vtopt.c): scores
 * by blocks of query rows with one GEMM (alpha = scale), masks added, max-subtracted softmax with
 * a double sum, P.V by GEMM.
 *
 * Layout: every op first brings K and V to [B,Hkv,T,D] contiguous (the present outputs when the
 * node has them, else scratch), past rows first. Q is read in place through strides (batch, head,
 * row; elements within a head contiguous) and Y is written in place the same way, so the 3-D
 * [B,S,H*D] forms need no transposes. */
#include "attention.h"
#include "gemm.h"
#include "kernels_util.h"
#include "runtime.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const float *q;
  int64_t qs_b, qs_h, qs_i;        /* Q strides (elements) over batch, head, query row */
  const float *k, *v;              /* [B,Hkv,T,D], [B,Hkv,T,Dv] contiguous */
  float *y;
  int64_t ys_b, ys_h, ys_i;        /* Y strides like Q's */
  float *qk;                       /* [B,H,S,T] or NULL */
  int qk_mode;
  int64_t B, H, Hkv, S, T, D, Dv;
  const float *add1, *add2;        /* additive masks broadcast over [B,H,S,T] via strides, or NULL */
  int64_t s1[4], s2[4];
  const uint8_t *keep;             /* bool mask (false = excluded), or NULL */
  int64_t sk[4];
  int causal;                      /* key j is excluded for query i when j > i + causal_off */
  int64_t causal_off;
  float scale, softcap;
  int failed;
} core_args;

#define QB 64

static void core_range(void *arg, int64_t begin, int64_t end) {
  core_args *a = arg;
  size_t nk = (size_t)(a->T ? a->T : 1);
  float *Sc = malloc((size_t)QB * nk * sizeof *Sc);
  if (!Sc) {
    __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  int64_t group = a->H / a->Hkv, T = a->T;
  for (int64_t bh = begin; bh < end; bh++) {
    int64_t b = bh / a->H, h = bh % a->H, hk = h / group;
    const float *q = a->q + b * a->qs_b + h * a->qs_h;
    const float *k = a->k + (b * a->Hkv + hk) * T * a->D;
    const float *v = a->v + (b * a->Hkv + hk) * T * a->Dv;
    float *y = a->y + b * a->ys_b + h * a->ys_h;
    for (int64_t i0 = 0; i0 < a->S; i0 += QB) {
      int64_t m = a->S - i0 < QB ? a->S - i0 : QB;
      vt_sgemm(NULL, 0, 1, m, T, a->D, a->scale, q + i0 * a->qs_i, a->qs_i, k, a->D, 0.0f, Sc, T);
      for (int64_t r = 0; r < m; r++) {
        int64_t i = i0 + r;
        float *p = Sc + r * T;
        float *qk = a->qk ? a->qk + (bh * a->S + i) * T : NULL;
        if (qk && a->qk_mode == 0) memcpy(qk, p, (size_t)T * sizeof *p);
        if (a->softcap > 0.0f)
          for (int64_t j = 0; j < T; j++) p[j] = a->softcap * tanhf(p[j] / a->softcap);
        if (qk && a->qk_mode == 1) memcpy(qk, p, (size_t)T * sizeof *p);
        int64_t o1 = b * a->s1[0] + h * a->s1[1] + i * a->s1[2];
        int64_t o2 = b * a->s2[0] + h * a->s2[1] + i * a->s2[2];
        int64_t ok = b * a->sk[0] + h * a->sk[1] + i * a->sk[2];
        float mx = -INFINITY;
        for (int64_t j = 0; j < T; j++) {
          float x = p[j];
          if (a->add1) x += a->add1[o1 + j * a->s1[3]];
          if (a->add2) x += a->add2[o2 + j * a->s2[3]];
          if (a->keep && !a->keep[ok + j * a->sk[3]]) x = -INFINITY;
          if (a->causal && j > i + a->causal_off) x = -INFINITY;
          p[j] = x;
          if (x > mx) mx = x;
        }
        if (qk && a->qk_mode == 2)
          for (int64_t j = 0; j < T; j++) qk[j] = p[j] == -INFINITY ? -FLT_MAX : p[j];
        if (mx == -INFINITY) {   /* no visible key: the row is zero */
          memset(p, 0, (size_t)T * sizeof *p);
        } else {
          double sum = 0.0;
          for (int64_t j = 0; j < T; j++) {
            p[j] = p[j] == -INFINITY ? 0.0f : expf(p[j] - mx);
            sum += p[j];
          }
          float inv = (float)(1.0 / sum);
          for (int64_t j = 0; j < T; j++) p[j] *= inv;
        }
        if (qk && a->qk_mode == 3) memcpy(qk, p, (size_t)T * sizeof *p);
      }
      vt_sgemm(NULL, 0, 0, m, a->Dv, T, 1.0f, Sc, T, v, a->Dv, 0.0f, y + i0 * a->ys_i, a->ys_i);
    }
  }
  free(Sc);
}

static int run_core(vt_kctx *k, core_args *a) {
  if (a->B * a->H * a->S == 0) return VT_OK;
  if (a->Dv == 0) return VT_OK;
  vt_pool_for(k->pool, a->B * a->H, core_range, a);
  if (a->failed) return vt_kernel_fail(k, "out of memory");
  return VT_OK;
}

/* Element strides of a mask of rank <= 4 broadcast over full[4]; 0 on broadcast dims. */
static int mask_strides(vt_kctx *k, const vt_tensor *m, const int64_t full[4], int64_t st[4]) {
  if (m->rank < 1 || m->rank > 4) return vt_kernel_fail(k, "mask must have rank 1 to 4, got %d", m->rank);
  return vt_bcast_strides(k, "mask", m, 4, full, st);
}

/* dst [B,H,T,D] rows P..P+L-1 of each head from src [B,L,H*D] (row stride `row`, batch stride
 * `bat`), plus bias[h*D+d] when given. */
static void put_bsh(float *dst, int64_t T, int64_t P, const float *src, int64_t row, int64_t bat, const float *bias,
                    int64_t B, int64_t H, int64_t L, int64_t D) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t j = 0; j < L; j++) {
        float *o = dst + ((b * H + h) * T + P + j) * D;
        const float *s = src + b * bat + j * row + h * D;
        if (bias)
          for (int64_t d = 0; d < D; d++) o[d] = s[d] + bias[h * D + d];
        else
          memcpy(o, s, (size_t)D * sizeof *o);
      }
}

/* dst [B,H,T,D] rows P..P+L-1 of each head from src [B,H,L,D] contiguous. */
static void put_bhsd(float *dst, int64_t T, int64_t P, const float *src, int64_t B, int64_t H, int64_t L, int64_t D) {
  for (int64_t bh = 0; bh < B * H; bh++)
    memcpy(dst + (bh * T + P) * D, src + bh * L * D, (size_t)(L * D) * sizeof *dst);
}

static bool all_f32(vt_kctx *k) {
  for (int i = 0; i < k->n_in; i++)
    if (k->in[i] && k->in[i]->dtype != VT_F32 && k->in[i]->dtype != VT_BOOL && k->in[i]->dtype != VT_I32) return false;
  return true;
}

/* A [B,Hkv,T,D] buffer: output slot o when the node has it, else scratch (*scratch to free). */
static float *kv_buffer(vt_kctx *k, int o, int64_t n, float **scratch) {
  if (o < k->n_out && k->out[o] && k->out[o]->data) return k->out[o]->data;
  *scratch = malloc((size_t)(n ? n : 1) * sizeof(float));
  return *scratch;
}

/* ---------- ONNX Attention --------------------------------------------------------------------- */

int vt_kernel_OnnxAttention(vt_kctx *k) {
  if (!all_f32(k)) return vt_kernel_fail(k, "supports float32 tensors only, got %s", vt_dtype_name(k->in[0]->dtype));
  const vt_tensor *q = k->in[0], *kk = k->in[1], *vv = k->in[2];
  const vt_tensor *mask = k->n_in > 3 ? k->in[3] : NULL;
  const vt_tensor *pk = k->n_in > 4 ? k->in[4] : NULL, *pv = k->n_in > 5 ? k->in[5] : NULL;
  core_args a = {0};
  a.B = q->dims[0];
  int rank = q->rank;
  int64_t L;
  if (rank == 3) {
    a.H = vt_attr_int(k->node, "q_num_heads", 0);
    a.Hkv = vt_attr_int(k->node, "kv_num_heads", 0);
    a.S = q->dims[1];
    L = kk->dims[1];
    a.D = q->dims[2] / a.H;
    a.Dv = vv->dims[2] / a.Hkv;
    a.qs_b = a.S * q->dims[2]; a.qs_h = a.D; a.qs_i = q->dims[2];
    a.ys_b = a.S * a.H * a.Dv; a.ys_h = a.Dv; a.ys_i = a.H * a.Dv;
  } else {
    a.H = q->dims[1];
    a.Hkv = kk->dims[1];
    a.S = q->dims[2];
    L = kk->dims[2];
    a.D = q->dims[3];
    a.Dv = vv->dims[3];
    a.qs_b = a.H * a.S * a.D; a.qs_h = a.S * a.D; a.qs_i = a.D;
    a.ys_b = a.H * a.S * a.Dv; a.ys_h = a.S * a.Dv; a.ys_i = a.Dv;
  }
  int64_t P = pk ? pk->dims[2] : 0;
  a.T = P + L;
  float *ks = NULL, *vs = NULL;
  float *kb = kv_buffer(k, 1, a.B * a.Hkv * a.T * a.D, &ks), *vb = kv_buffer(k, 2, a.B * a.Hkv * a.T * a.Dv, &vs);
  if (!kb || !vb) {
    free(ks); free(vs);
    return vt_kernel_fail(k, "out of memory");
  }
  if (pk) {
    put_bhsd(kb, a.T, 0, pk->data, a.B, a.Hkv, P, a.D);
    put_bhsd(vb, a.T, 0, pv->data, a.B, a.Hkv, P, a.Dv);
  }
  if (rank == 3) {
    put_bsh(kb, a.T, P, kk->data, kk->dims[2], L * kk->dims[2], NULL, a.B, a.Hkv, L, a.D);
    put_bsh(vb, a.T, P, vv->data, vv->dims[2], L * vv->dims[2], NULL, a.B, a.Hkv, L, a.Dv);
  } else {
    put_bhsd(kb, a.T, P, kk->data, a.B, a.Hkv, L, a.D);
    put_bhsd(vb, a.T, P, vv->data, a.B, a.Hkv, L, a.Dv);
  }
  a.q = q->data; a.k = kb; a.v = vb; a.y = k->out[0]->data;
  int64_t full[4] = {a.B, a.H, a.S, a.T};
  int rc = VT_OK;
  if (mask) {
    if (mask->dtype == VT_BOOL) { a.keep = mask->data; rc = mask_strides(k, mask, full, a.sk); }
    else { a.add1 = mask->data; rc = mask_strides(k, mask, full, a.s1); }
  }
  float sc = vt_attr_float(k->node, "scale", 0.0f);
  a.scale = vt_node_attr(k->node, "scale") ? sc : (a.D > 0 ? 1.0f / sqrtf((float)a.D) : 1.0f);
  a.softcap = vt_attr_float(k->node, "softcap", 0.0f);
  a.causal = (int)vt_attr_int(k->node, "is_causal", 0);
  a.causal_off = P;
  if (k->n_out > 3 && k->out[3]) {
    a.qk = k->out[3]->data;
    a.qk_mode = (int)vt_attr_int(k->node, "qk_matmul_output_mode", 0);
  }
  if (!rc) rc = run_core(k, &a);
  free(ks);
  free(vs);
  return rc;
}

/* ---------- com.microsoft contrib ops ------------------------------------------------------------ */

/* ONNX Runtime's mask: an additive [B,S,T] buffer holding mask_filter_value where a key is masked
 * (int32 mask_index: [B] lengths, [B,T] or [B,S,T] with values <= 0 masked) or, unidirectional,
 * in the future of the query (j > i + T - S); 0 elsewhere. NULL in *out when neither applies. */
static int ms_prepare_mask(vt_kctx *k, const vt_tensor *m, int uni, float filter, int64_t B, int64_t S, int64_t T,
                           float **out) {
  *out = NULL;
  if (!m && !uni) return VT_OK;
  float *f = calloc((size_t)(B * S * T > 0 ? B * S * T : 1), sizeof *f);
  if (!f) return vt_kernel_fail(k, "out of memory");
  const int32_t *md = m ? m->data : NULL;
  if (m && m->rank == 1 && m->dims[0] != B) {
    free(f);
    return vt_kernel_fail(k, "mask of shape [%lld]: only [batch] key lengths are supported", (long long)m->dims[0]);
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < S; i++)
      for (int64_t j = 0; j < T; j++) {
        bool masked = uni && j > i + (T - S);
        if (m && m->rank == 1) masked |= j >= md[b];
        else if (m && m->rank == 2) masked |= md[b * T + j] <= 0;
        else if (m) masked |= md[(b * S + i) * T + j] <= 0;
        if (masked) f[(b * S + i) * T + j] = filter;
      }
  *out = f;
  return VT_OK;
}

static float ms_scale(const vt_node *n, int64_t D) {
  float s = vt_attr_float(n, "scale", 0.0f);
  return s != 0.0f ? s : (D > 0 ? 1.0f / sqrtf((float)D) : 1.0f);
}

/* The part of the contrib kernels after K/V are in place: masks, attention_bias, core. */
static int ms_finish(vt_kctx *k, core_args *a, const vt_tensor *mask, const vt_tensor *abias) {
  float *mf = NULL;
  int rc = ms_prepare_mask(k, mask, (int)vt_attr_int(k->node, "unidirectional", 0),
                           vt_attr_float(k->node, "mask_filter_value", -10000.0f), a->B, a->S, a->T, &mf);
  if (rc) return rc;
  if (mf) {
    a->add1 = mf;
    a->s1[0] = a->S * a->T; a->s1[1] = 0; a->s1[2] = a->T; a->s1[3] = 1;
  }
  int64_t full[4] = {a->B, a->H, a->S, a->T};
  if (abias) {
    a->add2 = abias->data;
    rc = mask_strides(k, abias, full, a->s2);
  }
  if (!rc) rc = run_core(k, a);
  free(mf);
  return rc;
}

int vt_kernel_MsMultiHeadAttention(vt_kctx *k) {
  if (!all_f32(k)) return vt_kernel_fail(k, "supports float32 tensors only, got %s", vt_dtype_name(k->in[0]->dtype));
  const vt_tensor *q = k->in[0], *kk = k->in[1], *vv = k->in[2];
  const vt_tensor *bias = k->n_in > 3 ? k->in[3] : NULL, *mask = k->n_in > 4 ? k->in[4] : NULL;
  const vt_tensor *abias = k->n_in > 5 ? k->in[5] : NULL;
  const vt_tensor *pk = k->n_in > 6 ? k->in[6] : NULL, *pv = k->n_in > 7 ? k->in[7] : NULL;
  core_args a = {0};
  a.H = a.Hkv = vt_attr_int(k->node, "num_heads", 1);
  a.B = q->dims[0];
  a.S = q->dims[1];
  int64_t Hd = q->dims[2], Hv = vv->dims[2], L = kk->dims[1];
  a.D = Hd / a.H;
  a.Dv = Hv / a.H;
  int64_t P = pk ? pk->dims[2] : 0;
  a.T = P + L;
  const float *bq = bias ? bias->data : NULL;
  const float *bk = bq ? bq + Hd : NULL, *bv = bq ? bq + 2 * Hd : NULL;
  float *qs = NULL, *ks = NULL, *vs = NULL;
  float *kb = kv_buffer(k, 1, a.B * a.H * a.T * a.D, &ks), *vb = kv_buffer(k, 2, a.B * a.H * a.T * a.Dv, &vs);
  if (bq) qs = malloc((size_t)(a.B * a.S * Hd > 0 ? a.B * a.S * Hd : 1) * sizeof *qs);
  if (!kb || !vb || (bq && !qs)) {
    free(qs); free(ks); free(vs);
    return vt_kernel_fail(k, "out of memory");
  }
  if (bq) {   /* query + bias, kept in [B,S,Hd] */
    const float *src = q->data;
    for (int64_t r = 0; r < a.B * a.S; r++)
      for (int64_t c = 0; c < Hd; c++) qs[r * Hd + c] = src[r * Hd + c] + bq[c];
  }
  if (pk) {
    put_bhsd(kb, a.T, 0, pk->data, a.B, a.H, P, a.D);
    put_bhsd(vb, a.T, 0, pv->data, a.B, a.H, P, a.Dv);
  }
  put_bsh(kb, a.T, P, kk->data, Hd, L * Hd, bk, a.B, a.H, L, a.D);
  put_bsh(vb, a.T, P, vv->data, Hv, L * Hv, bv, a.B, a.H, L, a.Dv);
  a.q = qs ? qs : q->data;
  a.qs_b = a.S * Hd; a.qs_h = a.D; a.qs_i = Hd;
  a.k = kb; a.v = vb;
  a.y = k->out[0]->data;
  a.ys_b = a.S * Hv; a.ys_h = a.Dv; a.ys_i = Hv;
  a.scale = ms_scale(k->node, a.D);
  int rc = ms_finish(k, &a, mask, abias);
  free(qs); free(ks); free(vs);
  return rc;
}

int vt_kernel_MsAttention(vt_kctx *k) {
  if (!all_f32(k)) return vt_kernel_fail(k, "supports float32 tensors only, got %s", vt_dtype_name(k->in[0]->dtype));
  const vt_tensor *x = k->in[0], *w = k->in[1];
  const vt_tensor *bias = k->n_in > 2 ? k->in[2] : NULL, *mask = k->n_in > 3 ? k->in[3] : NULL;
  const vt_tensor *past = k->n_in > 4 ? k->in[4] : NULL, *abias = k->n_in > 5 ? k->in[5] : NULL;
  core_args a = {0};
  a.H = a.Hkv = vt_attr_int(k->node, "num_heads", 1);
  int64_t hs[3], cols = w->dims[1], Din = w->dims[0];
  char err[256];
  if (vt_ms_attention_sizes(k->node, cols, a.H, hs, err, sizeof err)) return vt_kernel_fail(k, "%s", err);
  a.B = x->dims[0];
  a.S = x->dims[1];
  a.D = hs[0] / a.H;
  a.Dv = hs[2] / a.H;
  int64_t P = past ? past->dims[3] : 0;
  a.T = P + a.S;
  /* xw = x . W + bias: [B*S, cols] */
  int64_t rows = a.B * a.S;
  float *xw = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *xw);
  float *ks = NULL, *vs = NULL;
  float *present = k->n_out > 1 && k->out[1] ? k->out[1]->data : NULL;
  int64_t nk = a.B * a.H * a.T * a.D, nv = a.B * a.H * a.T * a.Dv;
  float *kb = present ? present : (ks = malloc((size_t)(nk ? nk : 1) * sizeof *ks));
  float *vb = present ? present + nk : (vs = malloc((size_t)(nv ? nv : 1) * sizeof *vs));
  if (!xw || !kb || !vb) {
    free(xw); free(ks); free(vs);
    return vt_kernel_fail(k, "out of memory");
  }
  vt_sgemm(k->pool, 0, 0, rows, cols, Din, 1.0f, x->data, Din, w->data, cols, 0.0f, xw, cols);
  if (bias) {   /* added after the product, as MatMul then Add */
    const float *bd = bias->data;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) xw[r * cols + c] += bd[c];
  }
  if (past) {
    const float *pd = past->data;
    put_bhsd(kb, a.T, 0, pd, a.B, a.H, P, a.D);
    put_bhsd(vb, a.T, 0, pd + a.B * a.H * P * a.D, a.B, a.H, P, a.Dv);
  }
  put_bsh(kb, a.T, P, xw + hs[0], cols, a.S * cols, NULL, a.B, a.H, a.S, a.D);
  put_bsh(vb, a.T, P, xw + hs[0] + hs[1], cols, a.S * cols, NULL, a.B, a.H, a.S, a.Dv);
  a.q = xw;
  a.qs_b = a.S * cols; a.qs_h = a.D; a.qs_i = cols;
  a.k = kb; a.v = vb;
  a.y = k->out[0]->data;
  a.ys_b = a.S * hs[2]; a.ys_h = a.Dv; a.ys_i = hs[2];
  a.scale = ms_scale(k->node, a.D);
  int rc = ms_finish(k, &a, mask, abias);
  free(xw); free(ks); free(vs);
  return rc;
}

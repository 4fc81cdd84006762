/* kernels_topk.c — reference kernels of the residual top-k routing ops (ir/ops_topk.def):
 * TopKSelect (the retention-table row from the timestep or the topk.step knob, k largest scores or
 * k random tokens, CFG max over the cond/uncond halves), RouteGather and RouteScatter. */
#include "kernels_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { float s; int64_t i; } scored;

/* descending score, then ascending index */
static int cmp_scored(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int vt_kernel_TopKSelect(vt_kctx *k) {
  const vt_tensor *s = k->in[0];
  const vt_tensor *t = k->n_in == 4 ? k->in[1] : NULL;
  const vt_tensor *tt = k->in[k->n_in == 4 ? 2 : 1], *tk = k->in[k->n_in == 4 ? 3 : 2];
  if (s->dtype != VT_F32 || (s->rank != 2 && s->rank != 3)) return vt_kernel_fail(k, "scores must be f32 [B,N]");
  int64_t B = s->dims[0], N = s->dims[1];
  int64_t S = vt_tensor_numel(tk);
  if (S < 1 || vt_tensor_numel(tt) != S) return vt_kernel_fail(k, "the retention table is empty or ragged");
  const float *tv = tt->data;
  const int64_t *kv = tk->data;
  int64_t row = 0;
  double step = vt_kctx_knob(k, "topk.step", -1);
  if (step >= 0) {
    if (step >= (double)S) return vt_kernel_fail(k, "topk.step %g is past the table's %lld rows", step, (long long)S);
    row = (int64_t)step;
  } else if (t && t->data && vt_tensor_numel(t) >= 1 && t->dtype == VT_F32) {
    double t0 = ((const float *)t->data)[0], best = INFINITY;
    for (int64_t r = 0; r < S; r++) {
      double d = fabs((double)tv[r] - t0);
      if (d < best) { best = d; row = r; }
    }
  }
  int64_t K = kv[row];
  if (K < 1 || K > N)
    return vt_kernel_fail(k, "retention table row %lld keeps k=%lld tokens, outside [1, N=%lld]", (long long)row,
                          (long long)K, (long long)N);
  int64_t od[2] = {B, K};
  int rc = vt_kctx_output(k, 0, VT_I64, 2, od);
  if (rc) return rc;
  int64_t *idx = k->out[0]->data;
  bool random = !strcmp(vt_attr_str(k->node, "policy", "score"), "random");
  bool cfg = vt_attr_int(k->node, "cfg", 0) && B % 2 == 0;
  uint64_t seed = (uint64_t)vt_attr_int(k->node, "seed", 0);
  scored *buf = malloc((size_t)N * sizeof *buf);
  if (!buf) return vt_kernel_fail(k, "out of memory (%lld scores)", (long long)N);
  int64_t half = cfg ? B / 2 : B;
  for (int64_t b = 0; b < half; b++) {
    const float *sb = s->rank == 2 ? (const float *)s->data + b * N : NULL;
    const float *sb2 = cfg && sb ? (const float *)s->data + (b + half) * N : NULL;
    for (int64_t i = 0; i < N; i++) {
      buf[i].i = i;
      if (random) buf[i].s = (float)(mix64(seed * 0x100000001b3ull ^ mix64((uint64_t)row * 1315423911u + (uint64_t)b) ^
                                           (uint64_t)i * 0x9e3779b97f4a7c15ull) >> 40);
      else {
        float v = sb[i];
        if (sb2 && sb2[i] > v) v = sb2[i];
        buf[i].s = isnan(v) ? -INFINITY : v;
      }
    }
    if (K < N) qsort(buf, (size_t)N, sizeof *buf, cmp_scored);
    int64_t *ib = idx + b * K;
    for (int64_t j = 0; j < K; j++) ib[j] = buf[j].i;
    qsort(ib, (size_t)K, sizeof *ib, cmp_i64);
    if (cfg) memcpy(idx + (b + half) * K, ib, (size_t)K * sizeof *ib);
  }
  free(buf);
  return VT_OK;
}

static int check_rows(vt_kctx *k, const int64_t *idx, int64_t n_idx, int64_t N) {
  for (int64_t i = 0; i < n_idx; i++)
    if (idx[i] < 0 || idx[i] >= N)
      return vt_kernel_fail(k, "token index %lld out of range [0, %lld)", (long long)idx[i], (long long)N);
  return VT_OK;
}

int vt_kernel_RouteGather(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *idx = k->in[1];
  if (x->dtype != VT_F32 || x->rank != 3 || idx->rank != 2 || idx->dims[0] != x->dims[0])
    return vt_kernel_fail(k, "x must be f32 [B,N,D] and idx [B,K]");
  int64_t B = x->dims[0], N = x->dims[1], D = x->dims[2], K = idx->dims[1];
  int rc = check_rows(k, idx->data, B * K, N);
  int64_t od[3] = {B, K, D};
  if (rc == VT_OK) rc = vt_kctx_output(k, 0, VT_F32, 3, od);
  if (rc) return rc;
  const float *xs = x->data;
  const int64_t *iv = idx->data;
  float *o = k->out[0]->data;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < K; j++)
      memcpy(o + (b * K + j) * D, xs + (b * N + iv[b * K + j]) * D, (size_t)D * sizeof(float));
  return VT_OK;
}

int vt_kernel_RouteScatter(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *idx = k->in[1], *y = k->in[2];
  if (x->dtype != VT_F32 || x->rank != 3 || idx->rank != 2 || y->rank != 3 || idx->dims[0] != x->dims[0] ||
      y->dims[0] != x->dims[0] || y->dims[1] != idx->dims[1] || y->dims[2] != x->dims[2])
    return vt_kernel_fail(k, "x must be f32 [B,N,D], idx [B,K] and y [B,K,D]");
  int64_t B = x->dims[0], N = x->dims[1], D = x->dims[2], K = idx->dims[1];
  int rc = check_rows(k, idx->data, B * K, N);
  int64_t od[3] = {B, N, D};
  if (rc == VT_OK) rc = vt_kctx_output(k, 0, VT_F32, 3, od);
  if (rc) return rc;
  float *o = k->out[0]->data;
  if (o != x->data) memcpy(o, x->data, (size_t)(B * N * D) * sizeof(float));
  const float *ys = y->data;
  const int64_t *iv = idx->data;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < K; j++)
      memcpy(o + (b * N + iv[b * K + j]) * D, ys + (b * K + j) * D, (size_t)D * sizeof(float));
  return VT_OK;
}

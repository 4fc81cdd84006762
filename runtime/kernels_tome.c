/* kernels_tome.c — reference kernels for the ToMe token-merging ops (rows in ir/ops_tome.def):
 * TokenMatch (bipartite soft matching -> merge plan), TokenMerge (size-weighted average with
 * size tracking), TokenUnmerge (copy back, ToMe-SD). float32 data, int64 plans. Heavy loops
 * (normalisation, the |A| x |B| score search, merging) run on the pool. */
#include "runtime.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------- TokenMatch ---------- */
typedef struct {
  const float *m;
  int64_t B, H, N, C, stride, prot;
  int64_t nA, nB;        /* sizes of A and B (all tokens, protected included) */
  float *norm;           /* [B,N,C] head-averaged, L2-normalised metric */
  float *best;           /* [B,nA] best score per A token (-inf: protected / no eligible B) */
  int64_t *best_j;       /* [B,nA] token index of the best B */
} match_args;

static inline int64_t a_token(const match_args *a, int64_t k) { return k / (a->stride - 1) * a->stride + k % (a->stride - 1); }
static inline int64_t b_token(const match_args *a, int64_t k) { return k * a->stride + a->stride - 1; }

static void norm_range(void *arg, int64_t begin, int64_t end) {
  match_args *a = arg;
  for (int64_t row = begin; row < end; row++) {
    int64_t b = row / a->N, i = row % a->N;
    float *o = a->norm + row * a->C;
    double ss = 0;
    for (int64_t c = 0; c < a->C; c++) {
      double s = 0;
      for (int64_t h = 0; h < a->H; h++) s += a->m[((b * a->H + h) * a->N + i) * a->C + c];
      s /= (double)a->H;
      o[c] = (float)s;
      ss += s * s;
    }
    /* zero rows stay zero (score 0 with everything) */
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int64_t c = 0; c < a->C; c++) o[c] *= inv;
  }
}

static void score_range(void *arg, int64_t begin, int64_t end) {
  match_args *a = arg;
  for (int64_t row = begin; row < end; row++) {
    int64_t b = row / a->nA, ka = row % a->nA, i = a_token(a, ka);
    float best = -INFINITY;
    int64_t bj = -1;
    if (i >= a->prot) {
      const float *x = a->norm + (b * a->N + i) * a->C;
      for (int64_t kb = 0; kb < a->nB; kb++) {
        int64_t j = b_token(a, kb);
        if (j < a->prot) continue;
        const float *y = a->norm + (b * a->N + j) * a->C;
        float s = 0;
        for (int64_t c = 0; c < a->C; c++) s += x[c] * y[c];
        if (s != s) s = -FLT_MAX;   /* NaN metric: least similar, still mergeable */
        if (bj < 0 || s > best) { best = s; bj = j; }
      }
    }
    a->best[row] = best;
    a->best_j[row] = bj;
  }
}

typedef struct { float s; int64_t k; } scored;
static int cmp_scored(const void *x, const void *y) {
  const scored *a = x, *b = y;
  if (a->s != b->s) return a->s > b->s ? -1 : 1;
  return a->k < b->k ? -1 : a->k > b->k;
}

int vt_kernel_TokenMatch(vt_kctx *k) {
  const vt_tensor *m = k->in[0];
  vt_tensor *plan = k->out[0];
  if (m->dtype != VT_F32) return vt_kernel_fail(k, "metric must be f32, got %s", vt_dtype_name(m->dtype));
  match_args a = {.m = m->data};
  a.B = m->dims[0];
  a.H = m->rank == 4 ? m->dims[1] : 1;
  a.N = m->dims[m->rank - 2];
  a.C = m->dims[m->rank - 1];
  a.stride = vt_attr_int(k->node, "stride", 2);
  a.prot = vt_attr_int(k->node, "protected", 0);
  int64_t r = vt_attr_int(k->node, "r", 0);
  if (a.H <= 0 && a.N > 0) return vt_kernel_fail(k, "metric has no heads");
  a.nB = a.N / a.stride;
  a.nA = a.N - a.nB;
  int64_t *pl = plan->data;
  if (r == 0) {   /* identity plan */
    for (int64_t b = 0; b < a.B; b++)
      for (int64_t i = 0; i < a.N; i++) pl[b * a.N + i] = i;
    return VT_OK;
  }
  size_t nn = (size_t)(a.B * a.N * a.C), na = (size_t)(a.B * a.nA);
  a.norm = malloc((nn ? nn : 1) * sizeof *a.norm);
  a.best = malloc((na ? na : 1) * sizeof *a.best);
  a.best_j = malloc((na ? na : 1) * sizeof *a.best_j);
  scored *ord = malloc(((size_t)a.nA + 1) * sizeof *ord);
  int64_t *dst = malloc(((size_t)a.N + 1) * sizeof *dst);
  int rc = VT_OK;
  if (!a.norm || !a.best || !a.best_j || !ord || !dst) {
    rc = vt_kernel_fail(k, "out of memory (N=%lld, C=%lld)", (long long)a.N, (long long)a.C);
    goto done;
  }
  vt_pool_for(k->pool, a.B * a.N, norm_range, &a);
  vt_pool_for(k->pool, a.B * a.nA, score_range, &a);
  for (int64_t b = 0; b < a.B && rc == VT_OK; b++) {
    int64_t n_el = 0;
    for (int64_t ka = 0; ka < a.nA; ka++)
      if (a.best_j[b * a.nA + ka] >= 0) ord[n_el++] = (scored){a.best[b * a.nA + ka], ka};
    if (r > n_el) {
      rc = vt_kernel_fail(k, "cannot merge r=%lld tokens: only %lld of %lld can be merged (protected %lld)",
                          (long long)r, (long long)n_el, (long long)a.N, (long long)a.prot);
      break;
    }
    qsort(ord, (size_t)n_el, sizeof *ord, cmp_scored);
    for (int64_t i = 0; i < a.N; i++) dst[i] = -1;
    for (int64_t t = 0; t < r; t++) dst[a_token(&a, ord[t].k)] = a.best_j[b * a.nA + ord[t].k];
    /* ToMe's output order: the unmerged A tokens by index, then every B token by index */
    int64_t *p = pl + b * a.N, out = 0;
    for (int64_t ka = 0; ka < a.nA; ka++) {
      int64_t i = a_token(&a, ka);
      if (dst[i] < 0) p[i] = out++;
    }
    for (int64_t kb = 0; kb < a.nB; kb++) p[b_token(&a, kb)] = out++;
    for (int64_t i = 0; i < a.N; i++)
      if (dst[i] >= 0) p[i] = p[dst[i]];   /* destinations are B tokens, never merged themselves */
  }
done:
  free(a.norm);
  free(a.best);
  free(a.best_j);
  free(ord);
  free(dst);
  return rc;
}

/* ---------- TokenMerge ---------- */
#define DCHUNK 256
typedef struct {
  const float *x, *sizes;
  const int64_t *plan;
  float *y;
  const double *den;     /* [B,M] sum of sizes per output */
  int64_t B, N, M, D, nchunk;
} merge_args;

static void merge_range(void *arg, int64_t begin, int64_t end) {
  merge_args *a = arg;
  for (int64_t it = begin; it < end; it++) {
    int64_t b = it / a->nchunk, d0 = it % a->nchunk * DCHUNK;
    int64_t d1 = d0 + DCHUNK < a->D ? d0 + DCHUNK : a->D;
    float *y = a->y + b * a->M * a->D;
    for (int64_t i = 0; i < a->N; i++) {
      int64_t o = a->plan[b * a->N + i];
      float s = a->sizes ? a->sizes[b * a->N + i] : 1.0f;
      const float *x = a->x + (b * a->N + i) * a->D;
      for (int64_t d = d0; d < d1; d++) y[o * a->D + d] += x[d] * s;
    }
    for (int64_t o = 0; o < a->M; o++) {
      float inv = (float)(1.0 / a->den[b * a->M + o]);
      if (a->den[b * a->M + o] == 1.0) continue;   /* a lone unit-size token is copied exactly */
      for (int64_t d = d0; d < d1; d++) y[o * a->D + d] *= inv;
    }
  }
}

/* Checks plan values against [0, m) for every batch; with `cover`, also that every output row
 * receives at least one token. */
static int check_plan(vt_kctx *k, const vt_tensor *plan, int64_t B, int64_t N, int64_t m, bool cover) {
  if (plan->dtype != VT_I64) return vt_kernel_fail(k, "plan must be i64, got %s", vt_dtype_name(plan->dtype));
  if (plan->rank != 2 || plan->dims[0] != B || plan->dims[1] != N)
    return vt_kernel_fail(k, "plan must be [%lld,%lld]", (long long)B, (long long)N);
  const int64_t *p = plan->data;
  uint8_t *seen = cover ? calloc((size_t)m + 1, 1) : NULL;
  if (cover && !seen) return vt_kernel_fail(k, "out of memory");
  for (int64_t b = 0; b < B; b++) {
    if (cover) memset(seen, 0, (size_t)m + 1);
    for (int64_t i = 0; i < N; i++) {
      int64_t v = p[b * N + i];
      if (v < 0 || v >= m) {
        free(seen);
        return vt_kernel_fail(k, "plan[%lld,%lld] = %lld is outside [0,%lld)", (long long)b, (long long)i,
                              (long long)v, (long long)m);
      }
      if (cover) seen[v] = 1;
    }
    for (int64_t o = 0; cover && o < m; o++)
      if (!seen[o]) {
        free(seen);
        return vt_kernel_fail(k, "plan leaves output token %lld of batch %lld empty", (long long)o, (long long)b);
      }
  }
  free(seen);
  return VT_OK;
}

int vt_kernel_TokenMerge(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *plan = k->in[1], *sizes = k->n_in > 2 ? k->in[2] : NULL;
  vt_tensor *y = k->out[0], *so = k->n_out > 1 ? k->out[1] : NULL;
  if (x->dtype != VT_F32) return vt_kernel_fail(k, "x must be f32, got %s", vt_dtype_name(x->dtype));
  merge_args a = {.x = x->data, .y = y->data, .plan = plan->data};
  a.B = x->dims[0];
  a.N = x->dims[1];
  a.M = y->dims[1];
  a.D = 1;
  for (int32_t d = 2; d < x->rank; d++) a.D *= x->dims[d];
  int rc = check_plan(k, plan, a.B, a.N, a.M, true);
  if (rc) return rc;
  if (sizes) {
    if (sizes->dtype != VT_F32 || sizes->rank != 2 || sizes->dims[0] != a.B || sizes->dims[1] != a.N)
      return vt_kernel_fail(k, "sizes must be f32 [%lld,%lld]", (long long)a.B, (long long)a.N);
    a.sizes = sizes->data;
    for (int64_t i = 0; i < a.B * a.N; i++)
      if (!(a.sizes[i] > 0)) return vt_kernel_fail(k, "sizes[%lld] = %g is not positive", (long long)i, a.sizes[i]);
  }
  double *den = calloc((size_t)(a.B * a.M) + 1, sizeof *den);
  if (!den) return vt_kernel_fail(k, "out of memory");
  for (int64_t b = 0; b < a.B; b++)
    for (int64_t i = 0; i < a.N; i++) den[b * a.M + a.plan[b * a.N + i]] += a.sizes ? a.sizes[b * a.N + i] : 1.0;
  a.den = den;
  a.nchunk = (a.D + DCHUNK - 1) / DCHUNK;
  if (a.D > 0) vt_pool_for(k->pool, a.B * a.nchunk, merge_range, &a);
  if (so) {
    float *s = so->data;
    for (int64_t i = 0; i < a.B * a.M; i++) s[i] = (float)den[i];
  }
  free(den);
  return VT_OK;
}

/* ---------- TokenUnmerge ---------- */
typedef struct {
  const float *y;
  const int64_t *plan;
  float *out;
  int64_t N, M, D;
} unmerge_args;

static void unmerge_range(void *arg, int64_t begin, int64_t end) {
  unmerge_args *a = arg;
  for (int64_t row = begin; row < end; row++) {
    int64_t b = row / a->N;
    memcpy(a->out + row * a->D, a->y + (b * a->M + a->plan[row]) * a->D, (size_t)a->D * sizeof(float));
  }
}

int vt_kernel_TokenUnmerge(vt_kctx *k) {
  const vt_tensor *y = k->in[0], *plan = k->in[1];
  vt_tensor *out = k->out[0];
  if (y->dtype != VT_F32) return vt_kernel_fail(k, "y must be f32, got %s", vt_dtype_name(y->dtype));
  unmerge_args a = {.y = y->data, .plan = plan->data, .out = out->data};
  int64_t B = y->dims[0];
  a.M = y->dims[1];
  a.N = out->dims[1];
  a.D = 1;
  for (int32_t d = 2; d < y->rank; d++) a.D *= y->dims[d];
  int rc = check_plan(k, plan, B, a.N, a.M, false);
  if (rc) return rc;
  vt_pool_for(k->pool, B * a.N, unmerge_range, &a);
  return VT_OK;
}

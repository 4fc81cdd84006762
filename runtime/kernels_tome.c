/* kernels_tome.c — kernels for the ToMe token-merging ops (rows in ir/ops_tome.def): TokenMatch
 * (bipartite soft matching -> merge plan), TokenMerge (size-weighted average with size
 * tracking), TokenUnmerge (copy back, ToMe-SD). float32 data, int64 plans. These are the kernels
 * the interpreter and the JIT/fast.so (as fallbacks) run, so they are written for speed:
 *
 * TokenMatch, per batch element b (N tokens, C channels, A/B the two sets, nA ~ nB ~ N/2):
 *   1. metric rows averaged over heads and L2-normalised into norm[b]: the nA A rows, then the
 *      nB B rows                                                                  O(N*H*C)
 *   2. the score matrix A . B^T by the runtime's GEMM (vt_sgemm: packed, AVX2/AVX-512 clones),
 *      TOME_ROWS A rows at a time, then every row's argmax (first on ties)          O(N^2*C/4)
 *   3. the eligible A tokens sorted by (best score desc, index asc); the first r merge into
 *      their best B; plan in ToMe's output order                                   O(N log N)
 * Steps 1-2 run on the pool when the work is large enough to pay for waking it; 3 runs per
 * batch element. One scratch allocation per call.
 * TokenMerge: the plan is inverted (CSR: the members of each output row, in token order, O(N)),
 * then every output row is written once (a lone unit-size token is copied; otherwise
 * sum(x_i s_i) * (1 / sum(s_i)), members in token order), rows in parallel when large. Every
 * output element is written, so the output buffer needs no zeroing. */
#include "gemm.h"
#include "runtime.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Floating-point operations below which a kernel step stays on the caller's thread (waking
 * the pool costs more; the same bound the generated code uses). */
#define TOME_PAR_FLOPS 2097152.0

static void run_par(vt_pool *pool, double flops, int64_t n, vt_range_fn fn, void *arg) {
  vt_pool_for(flops >= TOME_PAR_FLOPS ? pool : NULL, n, fn, arg);
}

/* 4 floats: one SSE register (the baseline x86-64 target; GCC -O2 does not vectorise loops of
 * unknown length, and wider generic vectors get spilled there). */
typedef float v4f __attribute__((vector_size(16)));
static inline v4f ld4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void st4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
/* y = x * s */
static void row_scale(float *y, const float *x, float s, int64_t n) {
  int64_t d = 0;
  for (; d + 4 <= n; d += 4) st4(y + d, ld4(x + d) * s);
  for (; d < n; d++) y[d] = x[d] * s;
}
/* y += x * s */
static void row_axpy(float *y, const float *x, float s, int64_t n) {
  int64_t d = 0;
  for (; d + 4 <= n; d += 4) st4(y + d, ld4(y + d) + ld4(x + d) * s);
  for (; d < n; d++) y[d] += x[d] * s;
}
/* y += x */
static void row_add(float *y, const float *x, int64_t n) {
  int64_t d = 0;
  for (; d + 4 <= n; d += 4) st4(y + d, ld4(y + d) + ld4(x + d));
  for (; d < n; d++) y[d] += x[d];
}

#define TOME_ROWS 256   /* A rows per score block: the block is TOME_ROWS x nB floats */

/* ---------- TokenMatch ---------- */
typedef struct {
  const float *m;
  int64_t B, H, N, C, stride, prot;
  int64_t nA, nB;        /* sizes of A and B (all tokens, protected included) */
  int64_t kb0;           /* first B column a merge may go to (the earlier ones are protected) */
  float *norm;           /* [B,nA+nB,C] head-averaged, L2-normalised metric: A tokens, then B */
  const float *score;    /* the current block: rows [row0, row0 + nrows) of batch b, x nB */
  int64_t b, row0;
  float *best;           /* [B,nA] best score per A token (-inf: protected / no eligible B) */
  int64_t *best_j;       /* [B,nA] token index of the best B (-1: none) */
} match_args;

static inline int64_t a_token(const match_args *a, int64_t k) { return k / (a->stride - 1) * a->stride + k % (a->stride - 1); }
static inline int64_t b_token(const match_args *a, int64_t k) { return k * a->stride + a->stride - 1; }

/* rows = b * N + i: head average (heads in order, then / H) and L2 normalisation into norm: per
 * batch the A rows, then the B rows. */
static void norm_range(void *arg, int64_t begin, int64_t end) {
  match_args *a = arg;
  const int64_t C = a->C;
  for (int64_t row = begin; row < end; row++) {
    int64_t b = row / a->N, i = row % a->N;
    bool is_b = i % a->stride == a->stride - 1;
    int64_t k = is_b ? i / a->stride : i / a->stride * (a->stride - 1) + i % a->stride;
    /* norm holds per batch the nA A rows, then the nB B rows */
    float *o = a->norm + (b * (a->nA + a->nB) + (is_b ? a->nA + k : k)) * C;
    const float *src = a->m + (b * a->H * a->N + i) * C;
    memcpy(o, src, (size_t)C * sizeof *o);
    for (int64_t h = 1; h < a->H; h++) row_add(o, src + h * a->N * C, C);
    float fh = (float)a->H;
    v4f sq = {0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
      v4f v = ld4(o + c) / fh;
      st4(o + c, v);
      sq += v * v;
    }
    double ss = (double)sq[0] + sq[1] + sq[2] + sq[3];
    for (; c < C; c++) {
      o[c] /= fh;
      ss += (double)o[c] * o[c];
    }
    /* zero rows stay zero (score 0 with everything) */
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    row_scale(o, o, inv, C);
  }
}

/* rows [begin, end) of the current score block: best B (from kb0 on) for each A token */
static void argmax_range(void *arg, int64_t begin, int64_t end) {
  match_args *a = arg;
  for (int64_t r = begin; r < end; r++) {
    int64_t ka = a->row0 + r, row = a->b * a->nA + ka;
    float best = -INFINITY;
    int64_t bk = -1;
    if (a_token(a, ka) >= a->prot) {
      const float *s = a->score + r * a->nB;
      for (int64_t kb = a->kb0; kb < a->nB; kb++) {
        float v = s[kb];
        if (v != v) v = -FLT_MAX;   /* NaN metric: least similar, still mergeable */
        if (bk < 0 || v > best) { best = v; bk = kb; }
      }
    }
    a->best[row] = best;
    a->best_j[row] = bk < 0 ? -1 : b_token(a, bk);
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
  a.kb0 = 0;
  while (a.kb0 < a.nB && b_token(&a, a.kb0) < a.prot) a.kb0++;
  int64_t *pl = plan->data;
  if (r == 0) {   /* identity plan */
    for (int64_t b = 0; b < a.B; b++)
      for (int64_t i = 0; i < a.N; i++) pl[b * a.N + i] = i;
    return VT_OK;
  }
  /* one block: norm | score block | best | best_j | ord | dst */
  int64_t rows = a.nA < TOME_ROWS ? a.nA : TOME_ROWS;
  size_t n_norm = (size_t)(a.B * a.N * a.C), n_sc = (size_t)(rows * a.nB), na = (size_t)(a.B * a.nA);
  size_t off = ((n_norm + n_sc + na) * sizeof(float) + 7) / 8 * 8;
  size_t bytes = off + na * sizeof(int64_t) + ((size_t)a.nA + 1) * sizeof(scored) + ((size_t)a.N + 1) * sizeof(int64_t);
  char *blk = malloc(bytes);
  if (!blk) return vt_kernel_fail(k, "out of memory (N=%lld, C=%lld)", (long long)a.N, (long long)a.C);
  a.norm = (float *)blk;
  float *score = a.norm + n_norm;
  a.best = score + n_sc;
  a.best_j = (int64_t *)(blk + off);
  scored *ord = (scored *)(a.best_j + na);
  int64_t *dst = (int64_t *)(ord + a.nA + 1);
  run_par(k->pool, 2.0 * (double)(a.B * a.N) * (double)(a.H * a.C), a.B * a.N, norm_range, &a);
  a.score = score;
  for (a.b = 0; a.b < a.B; a.b++)
    for (a.row0 = 0; a.row0 < a.nA; a.row0 += rows) {
      int64_t nr = a.nA - a.row0 < rows ? a.nA - a.row0 : rows;
      const float *A = a.norm + (a.b * a.N + a.row0) * a.C, *Bm = a.norm + (a.b * a.N + a.nA) * a.C;
      double fl = 2.0 * (double)nr * (double)a.nB * (double)a.C;
      if (a.nB > 0)
        vt_sgemm(fl >= TOME_PAR_FLOPS ? k->pool : NULL, 0, 1, nr, a.nB, a.C, 1.0f, A, a.C, Bm, a.C, 0.0f, score, a.nB);
      run_par(k->pool, (double)nr * (double)a.nB, nr, argmax_range, &a);
    }
  int rc = VT_OK;
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
  free(blk);
  return rc;
}

/* ---------- plans ---------- */
/* Checks plan values against [0, m) and, when `csr` is given, inverts the plan: for batch b and
 * output row o, its tokens are csr->tok[b*N + csr->off[b*(m+1) + o] ...] in increasing order;
 * every output row must receive at least one token. */
typedef struct { int64_t *off, *tok; } plan_csr;

static int check_plan(vt_kctx *k, const vt_tensor *plan, int64_t B, int64_t N, int64_t m, plan_csr *csr) {
  if (plan->dtype != VT_I64) return vt_kernel_fail(k, "plan must be i64, got %s", vt_dtype_name(plan->dtype));
  if (plan->rank != 2 || plan->dims[0] != B || plan->dims[1] != N)
    return vt_kernel_fail(k, "plan must be [%lld,%lld]", (long long)B, (long long)N);
  const int64_t *p = plan->data;
  for (int64_t b = 0; b < B; b++) {
    int64_t *off = csr ? csr->off + b * (m + 1) : NULL;
    if (off) memset(off, 0, (size_t)(m + 1) * sizeof *off);
    for (int64_t i = 0; i < N; i++) {
      int64_t v = p[b * N + i];
      if (v < 0 || v >= m)
        return vt_kernel_fail(k, "plan[%lld,%lld] = %lld is outside [0,%lld)", (long long)b, (long long)i,
                              (long long)v, (long long)m);
      if (off) off[v + 1]++;
    }
    if (!off) continue;
    for (int64_t o = 0; o < m; o++) {
      if (!off[o + 1])
        return vt_kernel_fail(k, "plan leaves output token %lld of batch %lld empty", (long long)o, (long long)b);
      off[o + 1] += off[o];
    }
    /* fill in token order, using off[o] as the cursor, then shift the cursors back */
    int64_t *tok = csr->tok + b * N;
    for (int64_t i = 0; i < N; i++) tok[off[p[b * N + i]]++] = i;
    for (int64_t o = m; o > 0; o--) off[o] = off[o - 1];
    off[0] = 0;
  }
  return VT_OK;
}

/* ---------- TokenMerge ---------- */
typedef struct {
  const float *x, *sizes;
  float *y, *sizes_out;
  plan_csr csr;
  int64_t N, M, D;
} merge_args;

/* rows = b * M + o */
static void merge_range(void *arg, int64_t begin, int64_t end) {
  merge_args *a = arg;
  const int64_t D = a->D;
  for (int64_t row = begin; row < end; row++) {
    int64_t b = row / a->M, o = row % a->M;
    const int64_t *off = a->csr.off + b * (a->M + 1), *tok = a->csr.tok + b * a->N;
    float *y = a->y + row * D;
    double den = 0;
    for (int64_t t = off[o]; t < off[o + 1]; t++) den += a->sizes ? a->sizes[b * a->N + tok[t]] : 1.0;
    if (a->sizes_out) a->sizes_out[row] = (float)den;
    if (off[o + 1] - off[o] == 1 && den == 1.0) {   /* a lone unit-size token is copied exactly */
      memcpy(y, a->x + (b * a->N + tok[off[o]]) * D, (size_t)D * sizeof *y);
      continue;
    }
    for (int64_t t = off[o]; t < off[o + 1]; t++) {
      int64_t i = tok[t];
      float s = a->sizes ? a->sizes[b * a->N + i] : 1.0f;
      const float *x = a->x + (b * a->N + i) * D;
      if (t == off[o]) row_scale(y, x, s, D);
      else row_axpy(y, x, s, D);
    }
    if (den != 1.0) row_scale(y, y, (float)(1.0 / den), D);
  }
}

int vt_kernel_TokenMerge(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *plan = k->in[1], *sizes = k->n_in > 2 ? k->in[2] : NULL;
  vt_tensor *y = k->out[0], *so = k->n_out > 1 ? k->out[1] : NULL;
  if (x->dtype != VT_F32) return vt_kernel_fail(k, "x must be f32, got %s", vt_dtype_name(x->dtype));
  merge_args a = {.x = x->data, .y = y->data, .sizes_out = so ? so->data : NULL};
  int64_t B = x->dims[0];
  a.N = x->dims[1];
  a.M = y->dims[1];
  a.D = 1;
  for (int32_t d = 2; d < x->rank; d++) a.D *= x->dims[d];
  if (sizes) {
    if (sizes->dtype != VT_F32 || sizes->rank != 2 || sizes->dims[0] != B || sizes->dims[1] != a.N)
      return vt_kernel_fail(k, "sizes must be f32 [%lld,%lld]", (long long)B, (long long)a.N);
    a.sizes = sizes->data;
    for (int64_t i = 0; i < B * a.N; i++)
      if (!(a.sizes[i] > 0)) return vt_kernel_fail(k, "sizes[%lld] = %g is not positive", (long long)i, a.sizes[i]);
  }
  int64_t *blk = malloc(((size_t)(B * (a.M + 1)) + (size_t)(B * a.N) + 1) * sizeof *blk);
  if (!blk) return vt_kernel_fail(k, "out of memory");
  a.csr = (plan_csr){blk, blk + B * (a.M + 1)};
  int rc = check_plan(k, plan, B, a.N, a.M, &a.csr);
  if (rc == VT_OK) run_par(k->pool, 2.0 * (double)(B * a.N) * (double)a.D, B * a.M, merge_range, &a);
  free(blk);
  return rc;
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
  int rc = check_plan(k, plan, B, a.N, a.M, NULL);
  if (rc) return rc;
  run_par(k->pool, (double)(B * a.N) * (double)a.D, B * a.N, unmerge_range, &a);
  return VT_OK;
}

/* kernels_httm.c — kernel for the HTTM op (row in ir/ops_httm.def): HeadwiseMergedAttention,
 * float32.
 *
 * Layout shared by all heads (built once per call): tokens n = f*P + p of frame f; the first
 * `protected` tokens of a frame stand alone; the others (p' = p - protected in [0, Pm)) fall in
 * a block (spatial chunk c of ~n_s positions, frame group of ~n_t frames; chunks and groups
 * balanced, so no block is a small remainder). Inside a block the tokens are listed frame-major
 * (the temporal reordering: the inverse permutation is implicit because every output row is
 * written at its original token index). Merge targets (dst) are a deterministic, evenly spaced
 * subset of each block's list (with anchor: all frame-0 tokens first), the same for all heads;
 * every other token (src) joins its most cosine-similar dst of the block (a GEMM of normalised
 * rows fused with the argmax, see match_block), so matching costs O(block size x dst count x Dh)
 * per block: linear in N. With the default keep ratios it costs about 2.5 x n_b / N times the
 * attention on merged tokens (n_b = block size), so it dominates the op when blocks are a large
 * share of the tokens (few small frames) and fades as N grows.
 *
 * Slots: a merged sequence (Q or K/V) has one slot per protected token (slots [0, nprot)) and
 * one per dst token, numbered block by block (block bl's dst j is slot nprot + doff[bl] + j), so
 * a block's slots are contiguous and disjoint from other blocks' (units never write the same
 * row). Restored query outliers get extra slots after those, in token order, per head.
 *
 * Phases, each one parallel loop over units taken dynamically by the pool's threads (unit =
 * (batch, head, block) unless said otherwise), timed when VTOPT_HTTM_PROFILE is set (one line
 * per call on stderr):
 *   match    Q matching on the queries, K matching on the keys (shared=1: one matching per
 *            (batch, block) on the keys of all heads)
 *   merge    full Q group means -> deviation of every member (for outliers); K/V group means;
 *            (serial, per batch) the global top-`outlier` deviations over all heads become
 *            stand-alone queries; Q group means over the remaining members, outlier rows
 *   attend   unit = (batch, head, tile of QB merged queries): scores against the merged keys
 *            (+ log group size with prop_attn), softmax (vectorised exp), times merged V; both
 *            products are the runtime GEMM (vt_sgemm)
 *   unmerge  unit = (batch, head): every token copies its query slot's output row
 * keep 1 (no merging) skips matching and merging and attends straight into the output. */
#include "gemm.h"
#include "runtime.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QB 128   /* merged queries per attention tile */

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4)));   /* unaligned loads/stores */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define VT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VT_CLONES
#endif

/* One merged sequence's layout (Q or K/V), the same for every head. */
typedef struct {
  int64_t nslot;    /* protected + dst tokens */
  int64_t *doff;    /* [nblk+1] offsets into dtok */
  int32_t *dtok;    /* dst tokens, block by block */
  int64_t *soff;    /* [nblk+1] offsets into stok */
  int32_t *stok;    /* src tokens, block by block */
  int64_t max_nd;   /* largest dst count of a block */
} mlayout;

typedef struct {
  int64_t B, H, N, Dh, Dv, T, P, prot, nprot;
  float scale, q_keep, kv_keep, outlier;
  int anchor, shared, prop;
  const float *q, *k, *v;
  float *out;
  int64_t nblk;
  int32_t *ptok;            /* [nprot] protected tokens */
  mlayout lq, lk;
  bool merge_q, merge_k, want_dev;
  /* per (b,h) results; slot indices as described at the top */
  int32_t *qslot;           /* [B*H*N] query slot of each token */
  int32_t *kslot;           /* [B*H*N] key slot (shared mode: [B*N], for Q and K) */
  float *dev;               /* [B*H*N] deviation from the full Q group mean (0: alone) */
  uint8_t *outl;            /* [B*H*N] restored outlier queries */
  int64_t *nq, *qoff;       /* [B*H] merged query count; [B*H+1] offsets of the rows in mq/om */
  float *mq, *om;           /* merged queries [sum nq, Dh]; their attention output [sum nq, Dv] */
  float *mk, *mv, *kbias;   /* [B*H, nslot_k, Dh|Dv], [B*H, nslot_k] log group size */
  int64_t *tile_off;        /* [B*H+1] first attention tile of each head */
  atomic_llong next;        /* next unit of the current phase */
  int64_t nunits;
  int failed;
  bool prof;
  _Atomic double cpu;       /* profiling: CPU ms of the current phase on the pool's other threads */
  pthread_t caller;         /* profiling: the kernel's thread (its CPU time is measured whole) */
} hm_args;

/* ---------- small vector helpers ---------- */

/* Hot loops use 8-lane GCC vector code; functions marked VT_CLONES are compiled for AVX-512 /
 * AVX2+FMA / baseline and picked at load time (the helpers below are inlined into them). */
#define HOT VT_CLONES __attribute__((optimize("fp-contract=fast")))
#define INL static inline __attribute__((always_inline))

#define load8(p) (*(const v8fu *)(p))

/* sum over d of (x[d] - y[d])^2, y == NULL meaning 0 */
INL float sumsq(const float *x, const float *y, int64_t D) {
  v8f acc = {0};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    v8f t = load8(x + d);
    if (y) t -= load8(y + d);
    acc += t * t;
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; d < D; d++) {
    float t = x[d] - (y ? y[d] : 0.0f);
    s += t * t;
  }
  return s;
}

/* max of p[0..n), n >= 1 */
INL float maxf(const float *p, int64_t n) {
  float mx = p[0];
  int64_t j = 0;
  if (n >= 8) {
    v8f acc = load8(p);
    for (j = 8; j + 8 <= n; j += 8) {
      v8f x = load8(p + j);
      v8i m = x > acc;
      acc = (v8f)(((v8i)x & m) | ((v8i)acc & ~m));
    }
    mx = acc[0];
    for (int i = 1; i < 8; i++) mx = acc[i] > mx ? acc[i] : mx;
  }
  for (; j < n; j++) mx = p[j] > mx ? p[j] : mx;
  return mx;
}

/* r += x over n floats */
INL void add_row(float *restrict r, const float *restrict x, int64_t n) {
  int64_t d = 0;
  for (; d + 8 <= n; d += 8) *(v8fu *)(r + d) = load8(r + d) + load8(x + d);
  for (; d < n; d++) r[d] += x[d];
}

/* r *= c over n floats */
INL void scale_row(float *r, float c, int64_t n) {
  int64_t d = 0;
  for (; d + 8 <= n; d += 8) *(v8fu *)(r + d) = load8(r + d) * c;
  for (; d < n; d++) r[d] *= c;
}

/* y = x / ||x||_2 (0 for a zero row). */
INL void normalise_row(const float *restrict x, int64_t D, float *restrict y) {
  float s = sumsq(x, NULL, D);
  float inv = s > 0.0f ? 1.0f / sqrtf(s) : 0.0f;
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) *(v8fu *)(y + d) = load8(x + d) * inv;
  for (; d < D; d++) y[d] = x[d] * inv;
}

/* e^x for x <= 0 (softmax after the max is subtracted; x >= -87 clamps to tiny): Cephes-style
 * range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n via the exponent bits.
 * Relative error ~2 ulp. */
static inline void exp_neg8(v8f *xp) {
  v8f x = *xp;
  const v8f lo = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
  v8i m = x < lo;
  x = (v8f)(((v8i)x & ~m) | ((v8i)lo & m));
  v8f t = x * 1.44269504088896341f - 0.5f;
  v8i n = __builtin_convertvector(t, v8i);   /* truncation of t <= 0: round(x log2 e) */
  v8f nf = __builtin_convertvector(n, v8f);
  v8f r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
  v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  v8f y = p * r * r + r + 1.0f;
  v8i e = (n + 127) << 23;
  *xp = y * (v8f)e;
}

/* p[0..n) <- exp(p + bias - max) (bias may be NULL), n >= 1; returns the sum. */
INL float softmax_exp_row(float *p, const float *bias, int64_t n) {
  if (bias) add_row(p, bias, n);
  float mx = maxf(p, n);
  v8f acc = {0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f y = *(v8fu *)(p + j) - mx;
    exp_neg8(&y);
    *(v8fu *)(p + j) = y;
    acc += y;
  }
  float sum = 0.0f;
  for (int i = 0; i < 8; i++) sum += acc[i];
  if (j < n) {
    v8f y = {0};
    int64_t r = n - j;
    for (int64_t i = 0; i < r; i++) y[i] = p[j + i] - mx;
    exp_neg8(&y);
    for (int64_t i = 0; i < r; i++) { p[j + i] = y[i]; sum += y[i]; }
  }
  return sum;
}

/* ---------- profiling (VTOPT_HTTM_PROFILE=1): per phase of one call, the wall time and the
 * CPU time summed over the threads (robust on a shared machine) ---------- */
static double clock_ms(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}
static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static double cpu_ms(void) { return clock_ms(CLOCK_THREAD_CPUTIME_ID); }

/* ---------- the work loop: each pool thread takes units until none are left ---------- */
typedef void (*unit_fn)(hm_args *a, void *scratch, int64_t u);
typedef struct {
  hm_args *a;
  unit_fn fn;
  size_t scratch_bytes;
} phase_job;

static void phase_worker(void *arg, int64_t b0, int64_t b1) {
  (void)b0; (void)b1;
  phase_job *j = arg;
  hm_args *a = j->a;
  double c0 = a->prof ? cpu_ms() : 0.0;
  void *s = NULL;
  if (j->scratch_bytes && !(s = aligned_alloc(64, (j->scratch_bytes + 63) / 64 * 64))) {
    __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  for (;;) {
    int64_t u = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed);
    if (u >= a->nunits) break;
    j->fn(a, s, u);
  }
  free(s);
  if (a->prof && !pthread_equal(pthread_self(), a->caller)) {
    double d = cpu_ms() - c0, old = atomic_load(&a->cpu);
    while (!atomic_compare_exchange_weak(&a->cpu, &old, old + d)) {}
  }
}

static void run_phase(hm_args *a, vt_pool *pool, int64_t nunits, unit_fn fn, size_t scratch_bytes) {
  if (a->failed || nunits <= 0) return;
  phase_job j = {a, fn, scratch_bytes};
  atomic_store_explicit(&a->next, 0, memory_order_relaxed);
  a->nunits = nunits;
  int64_t nt = vt_pool_threads(pool);
  vt_pool_for(pool, nt < nunits ? nt : nunits, phase_worker, &j);
}

/* ---------- matching ---------- */

/* Row n of the matching features, normalised into y: head row x[n] (D = Dh), or in shared mode
 * the concatenation of every head's normalised key row (D = H*Dh). */
typedef struct {
  const float *x;   /* [N, Dh] of one head, or [H, N, Dh] of one batch element (shared) */
  int64_t heads;    /* 1, or H (shared) */
  int64_t N, Dh;
} feat_src;

INL void feat_row(const feat_src *f, int64_t n, float *y) {
  for (int64_t h = 0; h < f->heads; h++) normalise_row(f->x + (h * f->N + n) * f->Dh, f->Dh, y + h * f->Dh);
}

/* Matching is a GEMM (src rows x dst rows, dot products of normalised rows) whose only use is
 * each src row's argmax, so it runs as one: dst rows packed once per block into panels of 16
 * (dpack[(p*D + d)*16 + c] = dst p*16+c, zero padded), src rows 6 at a time (apack[d*6 + r]),
 * the runtime GEMM's 6x16 micro-kernel (vt_gemm_tile) per panel, and the running
 * argmax of each src row updated from the tile: the similarity matrix never leaves L1. */
#define TR VT_GEMM_MR
#define TC VT_GEMM_NR

/* floats of match_block's scratch for features of dimension D and at most md dst per block
 * (every part a multiple of 16 floats, so each stays 64-byte aligned) */
static int64_t match_floats(int64_t D, int64_t md) {
  int64_t npan = (md + TC - 1) / TC, Dr = (D + 15) / 16 * 16;
  return npan * D * TC + (TR * D + 15) / 16 * 16 + Dr + TR * TC;
}

/* Block bl of layout L: slot[t] = the slot of t's most cosine-similar dst (first on ties) for
 * every src t, its own slot for every dst. scratch: match_floats(D, L->max_nd) floats. */
HOT static void match_block(const hm_args *a, const mlayout *L, int64_t bl, const feat_src *f, int32_t *slot,
                            float *scratch) {
  int64_t D = f->heads * f->Dh, d0 = L->doff[bl], nd = L->doff[bl + 1] - d0;
  int64_t s0 = L->soff[bl], ns = L->soff[bl + 1] - s0, npan = (nd + TC - 1) / TC;
  float *dpack = scratch, *apack = dpack + npan * D * TC, *row = apack + (TR * D + 15) / 16 * 16;
  float *tile = row + (D + 15) / 16 * 16;
  int32_t base = (int32_t)(a->nprot + d0);
  for (int64_t j = 0; j < npan * TC; j++) {
    float *col = dpack + (j / TC) * D * TC + j % TC;
    if (j < nd) {
      feat_row(f, L->dtok[d0 + j], row);
      slot[L->dtok[d0 + j]] = base + (int32_t)j;
      for (int64_t d = 0; d < D; d++) col[d * TC] = row[d];
    } else {
      for (int64_t d = 0; d < D; d++) col[d * TC] = 0.0f;
    }
  }
  for (int64_t i0 = 0; i0 < ns; i0 += TR) {
    int64_t m = ns - i0 < TR ? ns - i0 : TR;
    for (int64_t r = 0; r < TR; r++) {
      if (r < m) feat_row(f, L->stok[s0 + i0 + r], row);
      for (int64_t d = 0; d < D; d++) apack[d * TR + r] = r < m ? row[d] : 0.0f;
    }
    /* per row and lane: the best score so far and its dst (first on ties) */
    v8f bv[TR][2];
    v8i bi[TR][2];
    const v8f ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int r = 0; r < TR; r++) {
      bv[r][0] = bv[r][1] = ninf;
      bi[r][0] = bi[r][1] = lane * 0;
    }
    for (int64_t p = 0; p < npan; p++) {
      vt_gemm_tile(D, apack, dpack + p * D * TC, tile);
      if (p == npan - 1)   /* padding columns never win */
        for (int64_t c = nd - p * TC; c < TC; c++)
          for (int r = 0; r < TR; r++) tile[r * TC + c] = -INFINITY;
      for (int r = 0; r < TR; r++)
        for (int h = 0; h < 2; h++) {
          v8f t = *(const v8f *)(tile + r * TC + h * 8);
          v8i mk = t > bv[r][h], id = lane + (int32_t)(p * TC + h * 8);
          bv[r][h] = (v8f)(((v8i)t & mk) | ((v8i)bv[r][h] & ~mk));
          bi[r][h] = (id & mk) | (bi[r][h] & ~mk);
        }
    }
    int32_t bj[TR];
    for (int64_t r = 0; r < m; r++) {
      float best = -INFINITY;
      bj[r] = 0;
      for (int h = 0; h < 2; h++)
        for (int l = 0; l < 8; l++)
          if (bv[r][h][l] > best || (bv[r][h][l] == best && bi[r][h][l] < bj[r])) { best = bv[r][h][l]; bj[r] = bi[r][h][l]; }
    }
    for (int64_t r = 0; r < m; r++) slot[L->stok[s0 + i0 + r]] = base + bj[r];
  }
}

static size_t match_scratch(const hm_args *a, int64_t D) {
  int64_t md = a->lq.max_nd > a->lk.max_nd ? a->lq.max_nd : a->lk.max_nd;
  return (size_t)match_floats(D, md < 1 ? 1 : md) * sizeof(float);
}

/* unit = (bh, bl): Q and/or K matching of one head in one block. */
static void unit_match(hm_args *a, void *scratch, int64_t u) {
  int64_t bh = u / a->nblk, bl = u % a->nblk;
  if (a->merge_q) {
    feat_src f = {a->q + bh * a->N * a->Dh, 1, a->N, a->Dh};
    match_block(a, &a->lq, bl, &f, a->qslot + bh * a->N, scratch);
  }
  if (a->merge_k) {
    feat_src f = {a->k + bh * a->N * a->Dh, 1, a->N, a->Dh};
    match_block(a, &a->lk, bl, &f, a->kslot + bh * a->N, scratch);
  }
}

/* shared mode, unit = (b, bl): one matching on all heads' keys. */
static void unit_match_shared(hm_args *a, void *scratch, int64_t u) {
  int64_t b = u / a->nblk, bl = u % a->nblk;
  feat_src f = {a->k + b * a->H * a->N * a->Dh, a->H, a->N, a->Dh};
  match_block(a, &a->lk, bl, &f, a->kslot + b * a->N, scratch);
}

/* ---------- merging ---------- */

/* Group means of block bl (all its tokens, by slot; skip, if not NULL, excludes tokens): the
 * block's slots are base + [0, nd) with base = nprot + doff[bl]; slot s's mean goes to row
 * s - row0 of m (row0 = 0: m holds every slot; row0 = base: m holds this block's). cnt [nd] gets
 * the member counts; cnt_out (if not NULL) too, at index s. */
HOT static void block_means(const hm_args *a, const mlayout *L, int64_t bl, const int32_t *slot, const uint8_t *skip,
                        const float *x, int64_t D, float *m, int64_t row0, float *cnt_out, float *cnt) {
  int64_t d0 = L->doff[bl], nd = L->doff[bl + 1] - d0, base = a->nprot + d0;
  m += (base - row0) * D;   /* now row j = slot base + j */
  memset(m, 0, (size_t)(nd * D) * sizeof *m);
  memset(cnt, 0, (size_t)nd * sizeof *cnt);
  for (int pass = 0; pass < 2; pass++) {
    const int32_t *tok = pass ? L->stok + L->soff[bl] : L->dtok + d0;
    int64_t nt = pass ? L->soff[bl + 1] - L->soff[bl] : nd;
    for (int64_t i = 0; i < nt; i++) {
      int64_t t = tok[i];
      if (skip && skip[t]) continue;
      int64_t j = slot[t] - base;
      add_row(m + j * D, x + t * D, D);
      cnt[j] += 1.0f;
    }
  }
  for (int64_t j = 0; j < nd; j++) {
    float inv = cnt[j] > 0.0f ? 1.0f / cnt[j] : 0.0f;
    scale_row(m + j * D, inv, D);
    if (cnt_out) cnt_out[base + j] = cnt[j];
  }
}

/* Scratch of the merge units: Q group means of one block [max_nd*Dh], counts [max_nd]. */
static size_t merge_scratch(const hm_args *a) {
  int64_t md = a->lq.max_nd > a->lk.max_nd ? a->lq.max_nd : a->lk.max_nd;
  if (md < 1) md = 1;
  return (size_t)(md * a->Dh + md) * sizeof(float);
}

/* unit = (bh, bl), bl == nblk: the protected tokens. K/V group means (+ log size), and the
 * deviations of the queries from their full group means when outliers are restored. */
HOT static void unit_merge_kv(hm_args *a, void *scratch, int64_t u) {
  int64_t bh = u / (a->nblk + 1), bl = u % (a->nblk + 1), b = bh / a->H, N = a->N, Dh = a->Dh, Dv = a->Dv;
  const float *q = a->q + bh * N * Dh, *k = a->k + bh * N * Dh, *v = a->v + bh * N * Dv;
  /* K/V results (only when keys merge: the arrays are NULL otherwise) */
  const int32_t *ks = !a->merge_k ? NULL : a->shared ? a->kslot + b * N : a->kslot + bh * N;
  int64_t nk = a->lk.nslot;
  float *mk = a->merge_k ? a->mk + bh * nk * Dh : NULL, *mv = a->merge_k ? a->mv + bh * nk * Dv : NULL;
  float *kb = a->merge_k ? a->kbias + bh * nk : NULL;
  if (bl == a->nblk) {   /* protected tokens: alone in their slot */
    for (int64_t i = 0; i < a->nprot; i++) {
      int64_t t = a->ptok[i];
      if (a->merge_k) {
        memcpy(mk + i * Dh, k + t * Dh, (size_t)Dh * sizeof *mk);
        memcpy(mv + i * Dv, v + t * Dv, (size_t)Dv * sizeof *mv);
        kb[i] = 0.0f;
      }
      if (a->want_dev) a->dev[bh * N + t] = 0.0f;
    }
    return;
  }
  float *cnt = (float *)scratch + (a->lq.max_nd > a->lk.max_nd ? a->lq.max_nd : a->lk.max_nd) * Dh;
  if (a->merge_k) {
    block_means(a, &a->lk, bl, ks, NULL, k, Dh, mk, 0, kb, cnt);
    block_means(a, &a->lk, bl, ks, NULL, v, Dv, mv, 0, NULL, cnt);
    int64_t base = a->nprot + a->lk.doff[bl], nd = a->lk.doff[bl + 1] - a->lk.doff[bl];
    for (int64_t j = 0; j < nd; j++) kb[base + j] = a->prop ? logf(kb[base + j]) : 0.0f;
  }
  if (a->want_dev) {
    /* full Q group means in scratch (rows indexed by slot - base) */
    const mlayout *L = &a->lq;
    int64_t base = a->nprot + L->doff[bl];
    float *m = scratch;   /* row s - base: the mean of slot s */
    block_means(a, L, bl, a->qslot + bh * N, NULL, q, Dh, m, base, NULL, cnt);
    float *dev = a->dev + bh * N;
    for (int pass = 0; pass < 2; pass++) {
      const int32_t *tok = pass ? L->stok + L->soff[bl] : L->dtok + L->doff[bl];
      int64_t nt = pass ? L->soff[bl + 1] - L->soff[bl] : L->doff[bl + 1] - L->doff[bl];
      for (int64_t i = 0; i < nt; i++) {
        int64_t t = tok[i], s = a->qslot[bh * N + t];
        if (cnt[s - base] <= 1.0f) { dev[t] = 0.0f; continue; }
        dev[t] = sqrtf(sumsq(q + t * Dh, m + (s - base) * Dh, Dh));
      }
    }
  }
}

/* unit = (bh, bl) as above: merged queries (group means of the members that are not outliers;
 * outliers copy their row into their own slot). */
static void unit_merge_q(hm_args *a, void *scratch, int64_t u) {
  int64_t bh = u / (a->nblk + 1), bl = u % (a->nblk + 1), b = bh / a->H, N = a->N, Dh = a->Dh;
  const float *q = a->q + bh * N * Dh;
  const int32_t *qs = a->shared ? a->kslot + b * N : a->qslot + bh * N;
  const uint8_t *ol = a->outlier > 0.0f && !a->shared ? a->outl + bh * N : NULL;
  const mlayout *L = a->shared ? &a->lk : &a->lq;
  float *mq = a->mq + a->qoff[bh] * Dh;
  if (bl == a->nblk) {
    for (int64_t i = 0; i < a->nprot; i++) memcpy(mq + i * Dh, q + (int64_t)a->ptok[i] * Dh, (size_t)Dh * sizeof *mq);
    return;
  }
  float *cnt = (float *)scratch;
  block_means(a, L, bl, qs, ol, q, Dh, mq, 0, NULL, cnt);
  if (ol) {
    for (int pass = 0; pass < 2; pass++) {
      const int32_t *tok = pass ? L->stok + L->soff[bl] : L->dtok + L->doff[bl];
      int64_t nt = pass ? L->soff[bl + 1] - L->soff[bl] : L->doff[bl + 1] - L->doff[bl];
      for (int64_t i = 0; i < nt; i++) {
        int64_t t = tok[i];
        if (ol[t]) memcpy(mq + (int64_t)a->qslot[bh * N + t] * Dh, q + t * Dh, (size_t)Dh * sizeof *mq);
      }
    }
  }
}

/* k-th largest (0-based) of x[0..n) by quickselect (x is reordered). */
static float kth_largest(float *x, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    float piv = x[lo + (hi - lo) / 2];
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (x[i] > piv) i++;
      while (x[j] < piv) j--;
      if (i <= j) { float t = x[i]; x[i] = x[j]; x[j] = t; i++; j--; }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return x[k];
  }
  return x[k];
}

/* Per batch element: the `want` largest positive deviations over all heads (ties: lower head,
 * then lower token first) become outliers; each head's outliers get query slots after the
 * merged ones, in token order. Fills nq (all heads). */
static int select_outliers(hm_args *a, int64_t mergeable) {
  int64_t HN = a->H * a->N;
  int64_t want = (int64_t)llround((double)a->outlier * (double)(a->H * mergeable));
  float *buf = malloc((size_t)(HN ? HN : 1) * sizeof *buf);
  if (!buf) return -1;
  for (int64_t b = 0; b < a->B; b++) {
    const float *dev = a->dev + b * HN;
    uint8_t *o = a->outl + b * HN;
    memset(o, 0, (size_t)HN);
    int64_t m = 0;
    for (int64_t i = 0; i < HN; i++)
      if (dev[i] > 0.0f) buf[m++] = dev[i];
    int64_t take = want < m ? want : m;
    if (take > 0) {
      float thr = kth_largest(buf, m, take - 1);
      int64_t above = 0;
      for (int64_t i = 0; i < HN; i++) above += dev[i] > thr;
      int64_t ties = take - above;   /* entries equal to thr to take, lowest index first */
      for (int64_t i = 0; i < HN; i++) {
        if (dev[i] > thr) o[i] = 1;
        else if (dev[i] == thr && ties > 0) { o[i] = 1; ties--; }
      }
    }
    for (int64_t h = 0; h < a->H; h++) {
      int64_t bh = b * a->H + h;
      int32_t s = (int32_t)a->lq.nslot;
      for (int64_t n = 0; n < a->N; n++)
        if (o[h * a->N + n]) a->qslot[bh * a->N + n] = s++;
      a->nq[bh] = s;
    }
  }
  free(buf);
  return 0;
}

/* ---------- attention on the merged tokens ---------- */

static size_t attend_scratch(const hm_args *a) {
  int64_t nk = a->merge_k ? a->lk.nslot : a->N;
  return (size_t)(QB * (nk ? nk : 1)) * sizeof(float);
}

/* unit = one tile of QB merged queries of one head. */
HOT static void unit_attend(hm_args *a, void *scratch, int64_t u) {
  int64_t lo = 0, hi = a->B * a->H;   /* head: the last bh with tile_off[bh] <= u */
  while (hi - lo > 1) {
    int64_t mid = (lo + hi) / 2;
    if (a->tile_off[mid] <= u) lo = mid; else hi = mid;
  }
  int64_t bh = lo, i0 = (u - a->tile_off[bh]) * QB, N = a->N, Dh = a->Dh, Dv = a->Dv;
  int64_t nq = a->merge_q ? a->nq[bh] : N, m = nq - i0 < QB ? nq - i0 : QB;
  int64_t nk = a->merge_k ? a->lk.nslot : N;
  const float *q = a->merge_q ? a->mq + a->qoff[bh] * Dh : a->q + bh * N * Dh;
  const float *k = a->merge_k ? a->mk + bh * nk * Dh : a->k + bh * N * Dh;
  const float *v = a->merge_k ? a->mv + bh * nk * Dv : a->v + bh * N * Dv;
  const float *bias = a->merge_k && a->prop ? a->kbias + bh * nk : NULL;
  float *o = (a->merge_q ? a->om + a->qoff[bh] * Dv : a->out + bh * N * Dv) + i0 * Dv;
  float *S = scratch;
  vt_sgemm(NULL, 0, 1, m, nk, Dh, a->scale, q + i0 * Dh, Dh, k, Dh, 0.0f, S, nk);
  float inv[QB];
  for (int64_t r = 0; r < m; r++) inv[r] = 1.0f / softmax_exp_row(S + r * nk, bias, nk);
  vt_sgemm(NULL, 0, 0, m, Dv, nk, 1.0f, S, nk, v, Dv, 0.0f, o, Dv);
  for (int64_t r = 0; r < m; r++) scale_row(o + r * Dv, inv[r], Dv);
}

/* unit = bh: head-wise unmerge. */
static void unit_unmerge(hm_args *a, void *scratch, int64_t bh) {
  (void)scratch;
  int64_t N = a->N, Dv = a->Dv;
  const float *om = a->om + a->qoff[bh] * Dv;
  const int32_t *qs = a->shared ? a->kslot + (bh / a->H) * N : a->qslot + bh * N;
  float *out = a->out + bh * N * Dv;
  for (int64_t n = 0; n < N; n++) memcpy(out + n * Dv, om + (int64_t)qs[n] * Dv, (size_t)Dv * sizeof *out);
}

/* ---------- layout ---------- */

/* Evenly spaced picks: marks `want` of the cnt entries of list (stride cnt/want, centred). */
static void pick_even(const int32_t *list, int64_t cnt, int64_t want, uint8_t *dst) {
  if (want <= 0 || cnt <= 0) return;
  if (want > cnt) want = cnt;
  for (int64_t j = 0; j < want; j++) {
    int64_t i = (int64_t)(((double)j + 0.5) * (double)cnt / (double)want);
    if (i >= cnt) i = cnt - 1;
    dst[list[i]] = 1;
  }
}

/* The dst and src lists of every block for keep ratio r (block order, frame-major inside). */
static int make_layout(hm_args *a, const int64_t *bstart, const int32_t *btok, double r, mlayout *L) {
  int64_t N = a->N, nblk = a->nblk;
  L->doff = malloc((size_t)(nblk + 1) * sizeof *L->doff);
  L->soff = malloc((size_t)(nblk + 1) * sizeof *L->soff);
  L->dtok = malloc((size_t)(N ? N : 1) * sizeof *L->dtok);
  L->stok = malloc((size_t)(N ? N : 1) * sizeof *L->stok);
  uint8_t *dst = calloc((size_t)(N ? N : 1), 1);
  int32_t *rest = malloc((size_t)(N ? N : 1) * sizeof *rest);
  if (!L->doff || !L->soff || !L->dtok || !L->stok || !dst || !rest) { free(dst); free(rest); return -1; }
  int64_t nd_all = 0, ns_all = 0;
  L->max_nd = 0;
  for (int64_t bl = 0; bl < nblk; bl++) {
    const int32_t *tok = btok + bstart[bl];
    int64_t nb = bstart[bl + 1] - bstart[bl];
    int64_t want = r >= 1.0 ? nb : (int64_t)llround((double)nb * r);
    if (want < 1) want = 1;
    if (want > nb) want = nb;
    int64_t nr = 0, n0 = 0;
    for (int64_t i = 0; i < nb; i++) {
      if (a->anchor && tok[i] < a->P) { dst[tok[i]] = 1; n0++; }
      else rest[nr++] = tok[i];
    }
    pick_even(rest, nr, want - n0, dst);
    L->doff[bl] = nd_all;
    L->soff[bl] = ns_all;
    for (int64_t i = 0; i < nb; i++) {
      if (dst[tok[i]]) L->dtok[nd_all++] = tok[i];
      else L->stok[ns_all++] = tok[i];
    }
    if (nd_all - L->doff[bl] > L->max_nd) L->max_nd = nd_all - L->doff[bl];
  }
  L->doff[nblk] = nd_all;
  L->soff[nblk] = ns_all;
  L->nslot = a->nprot + nd_all;
  free(dst);
  free(rest);
  return 0;
}

static void free_layout(mlayout *L) {
  free(L->doff); free(L->soff); free(L->dtok); free(L->stok);
}

/* Balanced split of [0, n) into ceil(n / size) parts: part i starts at i*n/parts. */
static int64_t parts_of(int64_t n, int64_t size) { return n <= 0 ? 0 : (n + size - 1) / size; }

int vt_kernel_HeadwiseMergedAttention(vt_kctx *k) {
  const vt_tensor *q = k->in[0], *kt = k->in[1], *v = k->in[2];
  vt_tensor *out = k->out[0];
  if (q->dtype != VT_F32 || kt->dtype != VT_F32 || v->dtype != VT_F32)
    return vt_kernel_fail(k, "supports float32 only, got %s", vt_dtype_name(q->dtype));
  if (q->rank != 4 || kt->rank != 4 || v->rank != 4) return vt_kernel_fail(k, "Q, K, V must have rank 4");
  hm_args a = {0};
  a.B = q->dims[0]; a.H = q->dims[1]; a.N = q->dims[2]; a.Dh = q->dims[3]; a.Dv = v->dims[3];
  for (int d = 0; d < 3; d++)
    if (kt->dims[d] != q->dims[d] || v->dims[d] != q->dims[d])
      return vt_kernel_fail(k, "Q [%lld,%lld,%lld,%lld], K and V must share B, H and N (K [%lld,%lld,%lld,..], V [%lld,%lld,%lld,..])",
                            (long long)q->dims[0], (long long)q->dims[1], (long long)q->dims[2], (long long)q->dims[3],
                            (long long)kt->dims[0], (long long)kt->dims[1], (long long)kt->dims[2],
                            (long long)v->dims[0], (long long)v->dims[1], (long long)v->dims[2]);
  if (kt->dims[3] != a.Dh) return vt_kernel_fail(k, "head dim of Q (%lld) differs from K (%lld)", (long long)a.Dh, (long long)kt->dims[3]);
  if (a.N > INT32_MAX) return vt_kernel_fail(k, "%lld tokens: at most 2^31-1 supported", (long long)a.N);
  if (out->dtype != VT_F32 || out->rank != 4 || (!out->data && vt_tensor_numel(out) > 0))
    return vt_kernel_fail(k, "output was not allocated as f32 [B,H,N,Dv]");
  const vt_node *nd = k->node;
  float scale = vt_attr_float(nd, "scale", 0.0f);
  a.scale = scale != 0.0f ? scale : (a.Dh > 0 ? 1.0f / sqrtf((float)a.Dh) : 1.0f);
  a.q_keep = vt_attr_float(nd, "q_keep", 1.0f);
  a.kv_keep = vt_attr_float(nd, "kv_keep", 1.0f);
  a.outlier = vt_attr_float(nd, "outlier", 0.0f);
  int64_t n_s = vt_attr_int(nd, "n_s", 128), n_t = vt_attr_int(nd, "n_t", 30);
  a.P = vt_attr_int(nd, "tokens_per_frame", 0);
  a.prot = vt_attr_int(nd, "protected", 0);
  a.anchor = (int)vt_attr_int(nd, "anchor", 0);
  a.shared = (int)vt_attr_int(nd, "shared", 0);
  a.prop = (int)vt_attr_int(nd, "prop_attn", 0);
  if (!(a.q_keep > 0.0f && a.q_keep <= 1.0f) || !(a.kv_keep > 0.0f && a.kv_keep <= 1.0f) ||
      !(a.outlier >= 0.0f && a.outlier < 1.0f) || n_s < 1 || n_t < 1 || a.P < 1 || a.prot < 0 || a.prot > a.P)
    return vt_kernel_fail(k, "bad attributes (q_keep %g, kv_keep %g, outlier %g, n_s %lld, n_t %lld, tokens_per_frame %lld, protected %lld)",
                          (double)a.q_keep, (double)a.kv_keep, (double)a.outlier, (long long)n_s, (long long)n_t,
                          (long long)a.P, (long long)a.prot);
  if (a.N % a.P != 0)
    return vt_kernel_fail(k, "token count %lld is not a multiple of tokens_per_frame %lld", (long long)a.N, (long long)a.P);
  if (vt_tensor_numel(out) == 0) return VT_OK;
  a.T = a.N / a.P;
  a.nprot = a.T * a.prot;
  a.q = q->data; a.k = kt->data; a.v = v->data; a.out = out->data;
  const char *pe = getenv("VTOPT_HTTM_PROFILE");
  bool prof = a.prof = pe && *pe && *pe != '0';
  /* wall[i], cpu[i]: phases match, merge, attend, unmerge; cpu = the calling thread's CPU time
   * over the phase (serial parts and its pool share) + the other threads' pool shares */
  double wall[4] = {0}, cpu[4] = {0}, w0 = 0, c0 = 0, t_start = prof ? now_ms() : 0;
  if (prof) a.caller = pthread_self();
#define PHASE_BEGIN()              \
  do {                             \
    if (prof) {                    \
      w0 = now_ms();               \
      c0 = cpu_ms();               \
      atomic_store(&a.cpu, 0.0);   \
    }                              \
  } while (0)
#define PHASE_END(i)                                      \
  do {                                                    \
    if (prof) {                                           \
      wall[i] = now_ms() - w0;                            \
      cpu[i] = cpu_ms() - c0 + atomic_load(&a.cpu);       \
    }                                                     \
  } while (0)
  /* merging settings: keep 1 merges nothing (exact); in shared mode one matching at kv_keep */
  double rq = a.q_keep >= 1.0f ? 1.0 : (double)a.q_keep - (double)a.outlier;
  if (rq <= 0.0) rq = 1e-9;   /* one dst per block */
  a.merge_k = a.kv_keep < 1.0f;
  a.merge_q = a.shared ? a.merge_k : a.q_keep < 1.0f;
  if (!a.merge_k) a.shared = 0;   /* nothing merged in shared mode: the plain path */
  a.want_dev = a.merge_q && !a.shared && a.outlier > 0.0f;
  /* block layout (n_s, n_t clipped to the frame and the clip) */
  int64_t Pm = a.P - a.prot;
  int64_t ns_eff = n_s < Pm ? n_s : (Pm > 0 ? Pm : 1), nt_eff = n_t < a.T ? n_t : a.T;
  int64_t nsb = parts_of(Pm, ns_eff), ntb = parts_of(a.T, nt_eff);
  a.nblk = nsb * ntb;
  int rc = VT_OK;
  int64_t BH = a.B * a.H, BHN = BH * a.N;
  int64_t *bstart = malloc((size_t)(a.nblk + 1) * sizeof *bstart);
  int32_t *btok = malloc((size_t)(a.N ? a.N : 1) * sizeof *btok);
  a.ptok = malloc((size_t)(a.nprot ? a.nprot : 1) * sizeof *a.ptok);
  a.tile_off = malloc((size_t)(BH + 1) * sizeof *a.tile_off);
  if (!bstart || !btok || !a.ptok || !a.tile_off) goto oom;
  for (int64_t f = 0; f < a.T; f++)
    for (int64_t p = 0; p < a.prot; p++) a.ptok[f * a.prot + p] = (int32_t)(f * a.P + p);
  int64_t pos = 0, bl = 0;
  for (int64_t tg = 0; tg < ntb; tg++) {
    int64_t f0 = tg * a.T / ntb, f1 = (tg + 1) * a.T / ntb;
    for (int64_t c = 0; c < nsb; c++) {
      int64_t p0 = c * Pm / nsb, p1 = (c + 1) * Pm / nsb;
      bstart[bl++] = pos;
      for (int64_t f = f0; f < f1; f++)
        for (int64_t p = p0; p < p1; p++) btok[pos++] = (int32_t)(f * a.P + a.prot + p);
    }
  }
  bstart[bl] = pos;
  if ((a.merge_q && !a.shared && make_layout(&a, bstart, btok, rq, &a.lq)) ||
      (a.merge_k && make_layout(&a, bstart, btok, a.kv_keep, &a.lk)))
    goto oom;

  /* matching */
  PHASE_BEGIN();
  if (a.merge_k && !(a.kslot = malloc((size_t)(a.shared ? a.B * a.N : BHN) * sizeof *a.kslot))) goto oom;
  if (a.merge_q && !a.shared && !(a.qslot = malloc((size_t)BHN * sizeof *a.qslot))) goto oom;
  if (a.shared) {
    run_phase(&a, k->pool, a.B * a.nblk, unit_match_shared, match_scratch(&a, a.H * a.Dh));
  } else if (a.merge_q || a.merge_k) {
    run_phase(&a, k->pool, BH * a.nblk, unit_match, match_scratch(&a, a.Dh));
  }
  /* protected tokens keep their own slot */
  for (int64_t i = 0; i < a.nprot; i++) {
    if (a.shared) for (int64_t b = 0; b < a.B; b++) a.kslot[b * a.N + a.ptok[i]] = (int32_t)i;
    else
      for (int64_t bh = 0; bh < BH; bh++) {
        if (a.merge_k) a.kslot[bh * a.N + a.ptok[i]] = (int32_t)i;
        if (a.merge_q) a.qslot[bh * a.N + a.ptok[i]] = (int32_t)i;
      }
  }
  PHASE_END(0);

  /* merging */
  PHASE_BEGIN();
  if (a.merge_k) {
    int64_t nk = a.lk.nslot;
    a.mk = malloc((size_t)(BH * nk * a.Dh) * sizeof *a.mk);
    a.mv = malloc((size_t)(BH * nk * a.Dv) * sizeof *a.mv);
    a.kbias = malloc((size_t)(BH * nk) * sizeof *a.kbias);
    if (!a.mk || !a.mv || !a.kbias) goto oom;
  }
  if (a.want_dev && (!(a.dev = malloc((size_t)BHN * sizeof *a.dev)) || !(a.outl = malloc((size_t)BHN)))) goto oom;
  if (a.merge_k || a.want_dev) run_phase(&a, k->pool, BH * (a.nblk + 1), unit_merge_kv, merge_scratch(&a));
  if (a.merge_q) {
    a.nq = malloc((size_t)BH * sizeof *a.nq);
    a.qoff = malloc((size_t)(BH + 1) * sizeof *a.qoff);
    if (!a.nq || !a.qoff) goto oom;
    if (a.want_dev && !a.failed) {
      if (select_outliers(&a, a.T * Pm)) goto oom;
    } else {
      for (int64_t bh = 0; bh < BH; bh++) a.nq[bh] = a.shared ? a.lk.nslot : a.lq.nslot;
    }
    a.qoff[0] = 0;
    for (int64_t bh = 0; bh < BH; bh++) a.qoff[bh + 1] = a.qoff[bh] + a.nq[bh];
    a.mq = malloc((size_t)(a.qoff[BH] * a.Dh) * sizeof *a.mq);
    a.om = malloc((size_t)(a.qoff[BH] * a.Dv) * sizeof *a.om);
    if (!a.mq || !a.om) goto oom;
    run_phase(&a, k->pool, BH * (a.nblk + 1), unit_merge_q, merge_scratch(&a));
  }
  PHASE_END(1);

  /* attention on the merged tokens */
  PHASE_BEGIN();
  a.tile_off[0] = 0;
  for (int64_t bh = 0; bh < BH; bh++) a.tile_off[bh + 1] = a.tile_off[bh] + ((a.merge_q ? a.nq[bh] : a.N) + QB - 1) / QB;
  run_phase(&a, k->pool, a.tile_off[BH], unit_attend, attend_scratch(&a));
  PHASE_END(2);

  /* head-wise unmerge */
  PHASE_BEGIN();
  if (a.merge_q) run_phase(&a, k->pool, BH, unit_unmerge, 0);
  PHASE_END(3);
#undef PHASE_BEGIN
#undef PHASE_END
  if (a.failed) goto oom;
  if (prof) {
    double tot = now_ms() - t_start;
    fprintf(stderr, "httm-profile: '%s' N %lld H %lld: wall ms match %.2f merge %.2f attend %.2f unmerge %.2f "
            "total %.2f; cpu ms match %.2f merge %.2f attend %.2f unmerge %.2f\n", nd->name, (long long)a.N,
            (long long)a.H, wall[0], wall[1], wall[2], wall[3], tot, cpu[0], cpu[1], cpu[2], cpu[3]);
  }
  goto done;
oom:
  rc = vt_kernel_fail(k, "out of memory");
done:
  free(bstart); free(btok); free(a.ptok); free(a.tile_off);
  free_layout(&a.lq); free_layout(&a.lk);
  free(a.qslot); free(a.kslot); free(a.dev); free(a.outl); free(a.nq); free(a.qoff);
  free(a.mq); free(a.om); free(a.mk); free(a.mv); free(a.kbias);
  return rc;
}

/* kernels_httm.c — reference kernel for the HTTM op (row in ir/ops_httm.def):
 * HeadwiseMergedAttention, float32.
 *
 * Layout shared by all heads (built once per call): tokens n = f*P + p of frame f; the first
 * `protected` tokens of a frame stand alone; the others (p' = p - protected in [0, Pm)) fall in
 * a block (spatial chunk c of ~n_s positions, frame group of ~n_t frames; chunks and groups
 * balanced, so no block is a small remainder). Inside a block the tokens are listed frame-major
 * (the temporal reordering: the inverse permutation is implicit because every output row is
 * written at its original token index). Merge targets (dst) are a deterministic, evenly spaced
 * subset of each block's list (with anchor: all frame-0 tokens first), the same for all heads;
 * every other token (src) joins its most cosine-similar dst of the block (a GEMM of normalised
 * rows), so matching costs O(block size x dst count x Dh) per block: linear in N.
 *
 * Phases: (1) per (b,h): Q matching, group means, deviation of each member from its group mean;
 * (2) per b: the global top-`outlier` fraction of deviations over all heads becomes stand-alone
 * queries (ragged per-head query counts); (3) per (b,h): K matching (V follows), group means of
 * the remaining Q members and of K/V, attention on the merged tokens with log(size) key bias
 * (prop_attn), each token copies its query slot's output row (head-wise unmerge). */
#include "gemm.h"
#include "runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QB 64
#define MB 256   /* src rows per matching GEMM */

/* Built with -DVT_HTTM_PROFILE (bench only), the kernel sums per-phase thread time into
 * vt_httm_prof[]: 0 Q matching + deviations, 1 outlier selection, 2 K/V matching and all group
 * means (the merging), 3 attention on merged tokens + unmerge. */
#ifdef VT_HTTM_PROFILE
#include <pthread.h>
#include <time.h>
double vt_httm_prof[4];
static pthread_mutex_t prof_mu = PTHREAD_MUTEX_INITIALIZER;
static double prof_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static void prof_add(int i, double dt) {
  pthread_mutex_lock(&prof_mu);
  vt_httm_prof[i] += dt;
  pthread_mutex_unlock(&prof_mu);
}
#define PROF_START(v) double v = prof_now()
#define PROF_END(i, v) prof_add(i, prof_now() - (v))
#else
#define PROF_START(v) ((void)0)
#define PROF_END(i, v) ((void)0)
#endif

typedef struct {
  int64_t B, H, N, Dh, Dv, T, P, prot;
  float scale, q_keep, kv_keep, outlier;
  int anchor, shared, prop;
  const float *q, *k, *v;
  float *out;
  /* block layout */
  int64_t nblk, max_nb;
  int64_t *bstart;      /* [nblk+1] offsets into btok */
  int32_t *btok;        /* mergeable tokens, block by block, frame-major inside a block */
  uint8_t *dst_q, *dst_k;   /* [N]: 1 if the token is a merge target (protected tokens: 1) */
  bool merge_q, merge_k;
  /* per (b,h) state between phases */
  int32_t *qgrp;        /* [B*H*N] dst token of each token's Q group */
  int32_t *kgrp_shared; /* [B*N] shared mode: one grouping per batch element */
  float *dev;           /* [B*H*N] */
  uint8_t *outl;        /* [B*H*N] */
  int failed;
} hm_args;

/* Cosine matching inside every block: grp[n] = the dst token of n's group. feat rows are
 * L2-normalised features of dimension D (row n at feat + n*D). Similarities come from a GEMM of
 * the block's src rows (MB at a time) against its dst rows. Scratch: dlist [N], dbuf [N*D],
 * sbuf [MB*D], S [MB*max block size]. */
static void match_blocks(const hm_args *a, const uint8_t *dst, const float *feat, int64_t D, int32_t *grp,
                         int32_t *dlist, float *dbuf, float *sbuf, float *S) {
  for (int64_t n = 0; n < a->N; n++) grp[n] = (int32_t)n;
  int32_t srcs[MB];
  for (int64_t bl = 0; bl < a->nblk; bl++) {
    const int32_t *tok = a->btok + a->bstart[bl];
    int64_t nb = a->bstart[bl + 1] - a->bstart[bl], nd = 0;
    for (int64_t i = 0; i < nb; i++)
      if (dst[tok[i]]) {
        memcpy(dbuf + nd * D, feat + (int64_t)tok[i] * D, (size_t)D * sizeof *dbuf);
        dlist[nd++] = tok[i];
      }
    if (nd == nb || nd == 0) continue;
    int64_t i = 0;
    while (i < nb) {
      int64_t m = 0;
      for (; i < nb && m < MB; i++)
        if (!dst[tok[i]]) {
          srcs[m] = tok[i];
          memcpy(sbuf + m * D, feat + (int64_t)tok[i] * D, (size_t)D * sizeof *sbuf);
          m++;
        }
      if (m == 0) break;
      vt_sgemm(NULL, 0, 1, m, nd, D, 1.0f, sbuf, D, dbuf, D, 0.0f, S, nd);
      for (int64_t r = 0; r < m; r++) {
        const float *row = S + r * nd;
        int64_t bj = 0;
        for (int64_t j = 1; j < nd; j++)
          if (row[j] > row[bj]) bj = j;   /* ties: the first dst */
        grp[srcs[r]] = dlist[bj];
      }
    }
  }
}

static void normalise_rows(const float *x, int64_t n, int64_t D, float *y) {
  for (int64_t i = 0; i < n; i++) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++) s += (double)x[i * D + d] * x[i * D + d];
    float inv = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int64_t d = 0; d < D; d++) y[i * D + d] = x[i * D + d] * inv;
  }
}

/* Group means: slot[n] (from the caller) indexes rows of m; cnt[slot] counts members. */
static void group_means(const float *x, int64_t N, int64_t D, const int32_t *slot, int64_t nslots, float *m,
                        float *cnt) {
  memset(m, 0, (size_t)(nslots * D) * sizeof *m);
  memset(cnt, 0, (size_t)nslots * sizeof *cnt);
  for (int64_t n = 0; n < N; n++) {
    float *r = m + (int64_t)slot[n] * D;
    const float *s = x + n * D;
    for (int64_t d = 0; d < D; d++) r[d] += s[d];
    cnt[slot[n]] += 1.0f;
  }
  for (int64_t g = 0; g < nslots; g++) {
    float inv = cnt[g] > 0.0f ? 1.0f / cnt[g] : 0.0f;
    for (int64_t d = 0; d < D; d++) m[g * D + d] *= inv;
  }
}

/* Slots from groups: tokens of one group share a slot (numbered in order of first member);
 * tokens with solo[n] set get their own slot. gslot is scratch [N]. Returns the slot count. */
static int64_t make_slots(int64_t N, const int32_t *grp, const uint8_t *solo, int32_t *gslot, int32_t *slot) {
  for (int64_t n = 0; n < N; n++) gslot[n] = -1;
  int64_t ns = 0;
  for (int64_t n = 0; n < N; n++) {
    if (solo && solo[n]) { slot[n] = (int32_t)ns++; continue; }
    int32_t g = grp[n];
    if (gslot[g] < 0) gslot[g] = (int32_t)ns++;
    slot[n] = gslot[g];
  }
  return ns;
}

/* Scratch of one worker (sized for N tokens). */
typedef struct {
  float *feat, *mq, *mk, *mv, *cq, *ck, *S, *dbuf, *sbuf, *msim;
  int32_t *grp, *kgrp, *slot, *kslot, *gslot, *dlist;
} scratch;

static void scratch_free(scratch *s) {
  free(s->dbuf); free(s->sbuf); free(s->msim);
  free(s->feat); free(s->mq); free(s->mk); free(s->mv); free(s->cq); free(s->ck); free(s->S);
  free(s->grp); free(s->kgrp); free(s->slot); free(s->kslot); free(s->gslot); free(s->dlist);
}

static int scratch_alloc(scratch *s, const hm_args *a, int64_t featD) {
  memset(s, 0, sizeof *s);
  size_t N = (size_t)(a->N ? a->N : 1), Dh = (size_t)(a->Dh ? a->Dh : 1), Dv = (size_t)(a->Dv ? a->Dv : 1);
  size_t fd = (size_t)(featD ? featD : 1);
  s->feat = malloc(N * fd * sizeof(float));
  s->dbuf = malloc(N * fd * sizeof(float));
  s->sbuf = malloc((size_t)MB * fd * sizeof(float));
  s->msim = malloc((size_t)MB * (size_t)(a->max_nb ? a->max_nb : 1) * sizeof(float));
  s->mq = malloc(N * Dh * sizeof(float));
  s->mk = malloc(N * Dh * sizeof(float));
  s->mv = malloc(N * Dv * sizeof(float));
  s->cq = malloc(N * sizeof(float));
  s->ck = malloc(N * sizeof(float));
  s->S = malloc((size_t)QB * N * sizeof(float));
  s->grp = malloc(N * sizeof(int32_t));
  s->kgrp = malloc(N * sizeof(int32_t));
  s->slot = malloc(N * sizeof(int32_t));
  s->kslot = malloc(N * sizeof(int32_t));
  s->gslot = malloc(N * sizeof(int32_t));
  s->dlist = malloc(N * sizeof(int32_t));
  if (!s->feat || !s->dbuf || !s->sbuf || !s->msim || !s->mq || !s->mk || !s->mv || !s->cq || !s->ck || !s->S || !s->grp || !s->kgrp || !s->slot ||
      !s->kslot || !s->gslot || !s->dlist) {
    scratch_free(s);
    return -1;
  }
  return 0;
}

/* Phase 1, per (b,h): Q matching and deviations from the group means. */
static void phase_q(void *arg, int64_t begin, int64_t end) {
  hm_args *a = arg;
  scratch s;
  if (scratch_alloc(&s, a, a->Dh)) { __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED); return; }
  PROF_START(t0);
  for (int64_t bh = begin; bh < end; bh++) {
    const float *q = a->q + bh * a->N * a->Dh;
    int32_t *grp = a->qgrp + bh * a->N;
    float *dev = a->dev + bh * a->N;
    normalise_rows(q, a->N, a->Dh, s.feat);
    match_blocks(a, a->dst_q, s.feat, a->Dh, grp, s.dlist, s.dbuf, s.sbuf, s.msim);
    int64_t ns = make_slots(a->N, grp, NULL, s.gslot, s.slot);
    group_means(q, a->N, a->Dh, s.slot, ns, s.mq, s.cq);
    for (int64_t n = 0; n < a->N; n++) {
      if (s.cq[s.slot[n]] <= 1.0f) { dev[n] = 0.0f; continue; }
      const float *x = q + n * a->Dh, *m = s.mq + (int64_t)s.slot[n] * a->Dh;
      double acc = 0.0;
      for (int64_t d = 0; d < a->Dh; d++) acc += ((double)x[d] - m[d]) * ((double)x[d] - m[d]);
      dev[n] = (float)sqrt(acc);
    }
  }
  PROF_END(0, t0);
  scratch_free(&s);
}

/* Shared mode (per b): one matching on the keys of all heads (per-head normalised, concatenated). */
static void phase_shared(void *arg, int64_t begin, int64_t end) {
  hm_args *a = arg;
  int64_t D = a->H * a->Dh;
  scratch s;
  if (scratch_alloc(&s, a, D)) { __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED); return; }
  for (int64_t b = begin; b < end; b++) {
    for (int64_t h = 0; h < a->H; h++) {
      const float *k = a->k + (b * a->H + h) * a->N * a->Dh;
      for (int64_t n = 0; n < a->N; n++) {
        double ss = 0.0;
        for (int64_t d = 0; d < a->Dh; d++) ss += (double)k[n * a->Dh + d] * k[n * a->Dh + d];
        float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int64_t d = 0; d < a->Dh; d++) s.feat[n * D + h * a->Dh + d] = k[n * a->Dh + d] * inv;
      }
    }
    PROF_START(t0);
    match_blocks(a, a->dst_k, s.feat, D, a->kgrp_shared + b * a->N, s.dlist, s.dbuf, s.sbuf, s.msim);
    PROF_END(2, t0);
  }
  scratch_free(&s);
}

typedef struct { float d; int32_t i; } devrec;
static int devrec_cmp(const void *x, const void *y) {
  const devrec *p = x, *q = y;
  if (p->d != q->d) return p->d > q->d ? -1 : 1;   /* descending */
  return p->i < q->i ? -1 : p->i > q->i;
}

/* Phase 2, per b: the global top fraction of query deviations over all heads. */
static int select_outliers(hm_args *a, int64_t mergeable) {
  int64_t HN = a->H * a->N;
  devrec *r = malloc((size_t)(HN ? HN : 1) * sizeof *r);
  if (!r) return -1;
  int64_t want = (int64_t)llround((double)a->outlier * (double)(a->H * mergeable));
  for (int64_t b = 0; b < a->B; b++) {
    const float *dev = a->dev + b * HN;
    uint8_t *o = a->outl + b * HN;
    int64_t m = 0;
    for (int64_t i = 0; i < HN; i++)
      if (dev[i] > 0.0f) { r[m].d = dev[i]; r[m].i = (int32_t)i; m++; }
    if (want < m) qsort(r, (size_t)m, sizeof *r, devrec_cmp);
    int64_t take = want < m ? want : m;
    for (int64_t i = 0; i < take; i++) o[r[i].i] = 1;
  }
  free(r);
  return 0;
}

/* Phase 3, per (b,h): K/V matching and merging, merged Q, attention, head-wise unmerge. */
static void phase_attn(void *arg, int64_t begin, int64_t end) {
  hm_args *a = arg;
  scratch s;
  if (scratch_alloc(&s, a, a->Dh)) { __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED); return; }
  int64_t N = a->N, Dh = a->Dh, Dv = a->Dv;
  for (int64_t bh = begin; bh < end; bh++) {
    int64_t b = bh / a->H;
    const float *q = a->q + bh * N * Dh, *k = a->k + bh * N * Dh, *v = a->v + bh * N * Dv;
    float *out = a->out + bh * N * Dv;
    PROF_START(t0);
    /* queries */
    const int32_t *qg;
    if (a->shared) qg = a->kgrp_shared + b * N;
    else if (a->merge_q) qg = a->qgrp + bh * N;
    else { for (int64_t n = 0; n < N; n++) s.grp[n] = (int32_t)n; qg = s.grp; }
    int64_t nq = make_slots(N, qg, a->shared || !a->merge_q ? NULL : a->outl + bh * N, s.gslot, s.slot);
    group_means(q, N, Dh, s.slot, nq, s.mq, s.cq);
    /* keys and values (V follows K's grouping) */
    const int32_t *kg;
    if (a->shared) kg = a->kgrp_shared + b * N;
    else if (a->merge_k) {
      normalise_rows(k, N, Dh, s.feat);
      match_blocks(a, a->dst_k, s.feat, Dh, s.kgrp, s.dlist, s.dbuf, s.sbuf, s.msim);
      kg = s.kgrp;
    } else { for (int64_t n = 0; n < N; n++) s.kgrp[n] = (int32_t)n; kg = s.kgrp; }
    int64_t nk = make_slots(N, kg, NULL, s.gslot, s.kslot);
    group_means(k, N, Dh, s.kslot, nk, s.mk, s.ck);
    group_means(v, N, Dv, s.kslot, nk, s.mv, s.ck);
    bool bias = a->prop && nk < N;   /* ck becomes the per-key bias log(size) */
    if (bias) for (int64_t j = 0; j < nk; j++) s.ck[j] = logf(s.ck[j]);
    PROF_END(2, t0);
    PROF_START(t1);
    /* attention of the nq merged queries on the nk merged keys; the output rows of the merged
     * queries go to s.feat (reused: nq*Dv <= N*Dh is not guaranteed, so use mv-sized rows) */
    float *om = malloc((size_t)(nq ? nq : 1) * (size_t)(Dv ? Dv : 1) * sizeof *om);
    if (!om) { __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED); break; }
    for (int64_t i0 = 0; i0 < nq; i0 += QB) {
      int64_t m = nq - i0 < QB ? nq - i0 : QB;
      vt_sgemm(NULL, 0, 1, m, nk, Dh, a->scale, s.mq + i0 * Dh, Dh, s.mk, Dh, 0.0f, s.S, nk);
      for (int64_t r = 0; r < m; r++) {
        float *p = s.S + r * nk, mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
          if (bias) p[j] += s.ck[j];
          if (p[j] > mx) mx = p[j];
        }
        double sum = 0.0;
        for (int64_t j = 0; j < nk; j++) { p[j] = expf(p[j] - mx); sum += p[j]; }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < nk; j++) p[j] *= inv;
      }
      vt_sgemm(NULL, 0, 0, m, Dv, nk, 1.0f, s.S, nk, s.mv, Dv, 0.0f, om + i0 * Dv, Dv);
    }
    for (int64_t n = 0; n < N; n++) memcpy(out + n * Dv, om + (int64_t)s.slot[n] * Dv, (size_t)Dv * sizeof *out);
    free(om);
    PROF_END(3, t1);
  }
  scratch_free(&s);
}

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

/* Marks the dst tokens of every block for keep ratio r (1: all). */
static int choose_dst(const hm_args *a, double r, uint8_t *dst) {
  memset(dst, 0, (size_t)a->N);
  for (int64_t f = 0; f < a->T; f++)
    for (int64_t p = 0; p < a->prot; p++) dst[f * a->P + p] = 1;
  int32_t *rest = malloc((size_t)(a->N ? a->N : 1) * sizeof *rest);
  if (!rest) return -1;
  for (int64_t bl = 0; bl < a->nblk; bl++) {
    const int32_t *tok = a->btok + a->bstart[bl];
    int64_t nb = a->bstart[bl + 1] - a->bstart[bl];
    int64_t nd = r >= 1.0 ? nb : (int64_t)llround((double)nb * r);
    if (nd < 1) nd = 1;
    if (nd > nb) nd = nb;
    int64_t nr = 0, n0 = 0;
    for (int64_t i = 0; i < nb; i++) {
      if (a->anchor && tok[i] < a->P) { dst[tok[i]] = 1; n0++; }
      else rest[nr++] = tok[i];
    }
    pick_even(rest, nr, nd - n0, dst);
  }
  free(rest);
  return 0;
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
  a.q = q->data; a.k = kt->data; a.v = v->data; a.out = out->data;
  /* merging settings: keep 1 merges nothing (exact); in shared mode one matching at kv_keep */
  double rq = a.q_keep >= 1.0f ? 1.0 : (double)a.q_keep - (double)a.outlier;
  if (rq <= 0.0) rq = 1e-9;   /* one dst per block */
  a.merge_q = a.shared ? a.kv_keep < 1.0f : a.q_keep < 1.0f;
  a.merge_k = a.kv_keep < 1.0f;
  /* block layout (n_s, n_t clipped to the frame and the clip) */
  int64_t Pm = a.P - a.prot;
  int64_t ns_eff = n_s < Pm ? n_s : (Pm > 0 ? Pm : 1), nt_eff = n_t < a.T ? n_t : a.T;
  int64_t nsb = parts_of(Pm, ns_eff), ntb = parts_of(a.T, nt_eff);
  a.nblk = nsb * ntb;
  int rc = VT_OK;
  a.bstart = malloc((size_t)(a.nblk + 1) * sizeof *a.bstart);
  a.btok = malloc((size_t)(a.N ? a.N : 1) * sizeof *a.btok);
  a.dst_q = malloc((size_t)a.N);
  a.dst_k = malloc((size_t)a.N);
  if (!a.bstart || !a.btok || !a.dst_q || !a.dst_k) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
  int64_t pos = 0, bl = 0;
  for (int64_t tg = 0; tg < ntb; tg++) {
    int64_t f0 = tg * a.T / ntb, f1 = (tg + 1) * a.T / ntb;
    for (int64_t c = 0; c < nsb; c++) {
      int64_t p0 = c * Pm / nsb, p1 = (c + 1) * Pm / nsb;
      a.bstart[bl++] = pos;
      for (int64_t f = f0; f < f1; f++)
        for (int64_t p = p0; p < p1; p++) a.btok[pos++] = (int32_t)(f * a.P + a.prot + p);
    }
  }
  a.bstart[bl] = pos;
  for (int64_t i = 0; i < a.nblk; i++)
    if (a.bstart[i + 1] - a.bstart[i] > a.max_nb) a.max_nb = a.bstart[i + 1] - a.bstart[i];
  if (choose_dst(&a, a.shared ? (double)a.kv_keep : rq, a.dst_q) || choose_dst(&a, a.kv_keep, a.dst_k)) {
    rc = vt_kernel_fail(k, "out of memory");
    goto done;
  }
  int64_t BHN = a.B * a.H * a.N;
  if (a.shared) {
    if (a.merge_k) {
      a.kgrp_shared = malloc((size_t)(a.B * a.N) * sizeof *a.kgrp_shared);
      if (!a.kgrp_shared) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
      vt_pool_for(k->pool, a.B, phase_shared, &a);
    } else a.shared = 0;   /* nothing merged: the plain path */
  } else if (a.merge_q) {
    a.qgrp = malloc((size_t)BHN * sizeof *a.qgrp);
    a.dev = malloc((size_t)BHN * sizeof *a.dev);
    a.outl = calloc((size_t)BHN, 1);
    if (!a.qgrp || !a.dev || !a.outl) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
    vt_pool_for(k->pool, a.B * a.H, phase_q, &a);
    PROF_START(t0);
    if (!a.failed && a.outlier > 0.0f && select_outliers(&a, a.T * Pm)) a.failed = 1;
    PROF_END(1, t0);
  }
  if (!a.failed) vt_pool_for(k->pool, a.B * a.H, phase_attn, &a);
  if (a.failed) rc = vt_kernel_fail(k, "out of memory");
done:
  free(a.bstart); free(a.btok); free(a.dst_q); free(a.dst_k);
  free(a.qgrp); free(a.dev); free(a.outl); free(a.kgrp_shared);
  return rc;
}

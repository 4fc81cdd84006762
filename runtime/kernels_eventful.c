/* kernels_eventful.c — reference kernels for the Eventful ops (rows in ir/ops_eventful.def):
 * TokenGate (per-token error norm against the reference, top-r / threshold / fraction policy by
 * O(N) selection, gather, reference scatter), TokenBuffer (scatter of the updated rows into the
 * kept output) and EventfulAttention (sparse refresh of B = scale q.k^T, full softmax, delta
 * update of A.v against A's reference columns and v's reference rows).
 * State lives in the session's per-node slot (vt_kctx.state): allocated on the first run (at its
 * upper bound: M <= N), kept across frames, flushed in place by vt_interp_reset (the next run
 * recomputes everything), reallocated only when N or D change. vt_state.bytes counts every byte
 * a state holds (scratch included). float32. */
#include "gemm.h"
#include "kernels_relpos.h"
#include "kernels_util.h"
#include "runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* rows x width below which a gather/scatter/copy stays on the calling thread */
#define EVT_PAR_MIN 65536

static int need_state(vt_kctx *k) {
  return vt_kernel_fail(k, "%s is stateful: it runs only inside an interpreter session (vt_interp_run), "
                           "not as a single node", vt_ops[k->node->op].name);
}

/* ---------- parallel row copies ---------- */
typedef struct {
  float *dst;
  const float *src;
  const int64_t *idx;   /* NULL: rows [0, n) */
  int64_t w;            /* floats per row */
  int gather;           /* 1: dst[j] = src[idx[j]]; 0: dst[idx[j]] = src[j]; 2: dst[idx[j]] = src[idx[j]] */
} rows_args;

static void rows_range(void *arg, int64_t begin, int64_t end) {
  rows_args *a = arg;
  size_t bytes = (size_t)a->w * sizeof(float);
  if (!a->idx) {
    memcpy(a->dst + begin * a->w, a->src + begin * a->w, (size_t)(end - begin) * bytes);
    return;
  }
  for (int64_t j = begin; j < end; j++) {
    int64_t d = a->gather == 1 ? j : a->idx[j], s = a->gather ? a->idx[j] : j;
    memcpy(a->dst + d * a->w, a->src + s * a->w, bytes);
  }
}

static void copy_rows(vt_pool *pool, float *dst, const float *src, const int64_t *idx, int64_t m, int64_t w,
                      int gather) {
  rows_args a = {.dst = dst, .src = src, .idx = idx, .w = w, .gather = gather};
  if (m * w < EVT_PAR_MIN) rows_range(&a, 0, m);
  else vt_pool_for(pool, m, rows_range, &a);
}

/* ---------- TokenGate / TokenBuffer state ---------- */
typedef struct {
  vt_state hdr;
  int64_t n, d;      /* tokens, channels */
  int full_next;     /* the next run updates every token (flush) */
  int64_t since;     /* gate: runs since the last flush (refresh counts them) */
  float *ref;        /* [n, d]: gate reference u, or buffer contents b */
  float *norm;       /* [n] (gate only): error norms of this frame */
  float *sel;        /* [n] (gate only): selection scratch */
  int64_t *order;    /* [n] (gate only): selected tokens, ascending */
} evt_state;

static void evt_free(void *p) {
  evt_state *s = p;
  if (!s) return;
  free(s->ref);
  free(s->norm);
  free(s->sel);
  free(s->order);
  free(s);
}

static void evt_flush(void *p) { ((evt_state *)p)->full_next = 1; }

/* The node's state when it has shape [n, d]; else drops it and allocates a new one (flushed). */
static evt_state *state_for(vt_kctx *k, int64_t n, int64_t d, bool gate) {
  evt_state *s = *k->state;
  if (s && s->n == n && s->d == d) return s;
  if (s) s->hdr.free(s);
  *k->state = NULL;
  if (n < 0 || d < 0 || (d > 0 && n > INT64_MAX / d / (int64_t)sizeof(float))) return NULL;
  s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->hdr.free = evt_free;
  s->hdr.flush = evt_flush;
  s->n = n;
  s->d = d;
  s->full_next = 1;
  s->ref = malloc((size_t)(n * d) * sizeof(float) + 1);
  s->hdr.bytes = sizeof *s + (size_t)(n * d) * sizeof(float);
  if (gate) {
    s->norm = malloc((size_t)n * sizeof(float) + 1);
    s->sel = malloc((size_t)n * sizeof(float) + 1);
    s->order = malloc((size_t)n * sizeof(int64_t) + 1);
    s->hdr.bytes += (size_t)n * (2 * sizeof(float) + sizeof(int64_t));
  }
  if (!s->ref || (gate && (!s->norm || !s->sel || !s->order))) {
    evt_free(s);
    return NULL;
  }
  *k->state = s;
  return s;
}

/* ---------- TokenGate ---------- */
/* generated loops of compiled sessions (vt_kctx.fns) */
typedef void (*gate_norm_fn)(const float *x, const float *u, float *norm, float *u2, int64_t i0, int64_t i1);
typedef void (*gate_select_fn)(const float *norm, int64_t *order, int64_t m);

typedef struct {
  const float *x, *u;
  float *norm;
  float *unorm2;   /* NULL, or per token ||u||^2 (the cut test) */
  int64_t d;
  gate_norm_fn gen;   /* compiled sessions: the generated loop (vt_kctx.fns[0]), else NULL */
} norm_args;

/* ||x - u||^2; with u2, also *u2 = ||u||^2 from the same loads of u. */
EVT_CLONES static float sq_dist(const float *x, const float *u, int64_t d, float *u2) {
  float acc[8] = {0}, uacc[8] = {0};
  int64_t c = 0;
  for (; c + 8 <= d; c += 8)
    for (int l = 0; l < 8; l++) {
      float e = x[c + l] - u[c + l];
      acc[l] += e * e;
      uacc[l] += u[c + l] * u[c + l];
    }
  float s = 0, su = 0;
  for (; c < d; c++) {
    s += (x[c] - u[c]) * (x[c] - u[c]);
    su += u[c] * u[c];
  }
  for (int l = 0; l < 8; l++) {
    s += acc[l];
    su += uacc[l];
  }
  if (u2) *u2 = su;
  return s;
}

static void norm_range(void *arg, int64_t begin, int64_t end) {
  norm_args *a = arg;
  if (a->gen) {
    a->gen(a->x, a->u, a->norm, a->unorm2, begin, end);
    return;
  }
  for (int64_t i = begin; i < end; i++) {
    float v = sqrtf(sq_dist(a->x + i * a->d, a->u + i * a->d, a->d, a->unorm2 ? a->unorm2 + i : NULL));
    a->norm[i] = v == v ? v : INFINITY;   /* NaN error: most changed */
  }
}

static int cmp_desc(const void *pa, const void *pb) {
  float a = *(const float *)pa, b = *(const float *)pb;
  return a > b ? -1 : a < b;
}

/* The k-th largest (0-based) of v[0, n), v permuted in place: quickselect with a median-of-three
 * pivot, O(n) expected; after 2*log2(n)+8 rounds (adversarial input) it sorts what is left. */
static float kth_largest(float *v, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1, rounds = 8;
  for (int64_t t = n; t > 1; t >>= 1) rounds += 2;
  while (lo < hi) {
    if (rounds-- == 0) {
      qsort(v + lo, (size_t)(hi - lo + 1), sizeof *v, cmp_desc);
      return v[k];
    }
    int64_t mid = lo + (hi - lo) / 2;
    float a = v[lo], b = v[mid], c = v[hi];
    float p = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
    int64_t i = lo, j = hi;
    while (i <= j) {   /* descending: left of i >= p, right of j <= p */
      while (v[i] > p) i++;
      while (v[j] < p) j--;
      if (i <= j) {
        float t = v[i];
        v[i++] = v[j];
        v[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return v[k];   /* between j and i: equal to the pivot */
  }
  return v[k];
}

/* The m tokens with the largest norms (ties: lower index first), ascending, into s->order: the
 * m-th largest norm by selection, then one pass in index order. O(n). */
static void select_top(evt_state *s, int64_t m) {
  int64_t n = s->n;
  if (m >= n) {
    for (int64_t i = 0; i < n; i++) s->order[i] = i;
    return;
  }
  if (m <= 0) return;
  memcpy(s->sel, s->norm, (size_t)n * sizeof(float));
  float thr = kth_largest(s->sel, n, m - 1);
  int64_t above = 0;
  for (int64_t i = 0; i < n; i++) above += s->norm[i] > thr;
  int64_t ties = m - above, j = 0;
  for (int64_t i = 0; i < n && j < m; i++) {
    float v = s->norm[i];
    if (v > thr || (v == thr && ties-- > 0)) s->order[j++] = i;
  }
}

int vt_kernel_TokenGate(vt_kctx *k) {
  if (!k->state) return need_state(k);
  const vt_tensor *x = k->in[0];
  if (x->dtype != VT_F32 || x->rank < 2) return vt_kernel_fail(k, "x must be f32 of rank >= 2");
  int64_t d = x->dims[x->rank - 1], numel = vt_tensor_numel(x);
  int64_t n = d > 0 ? numel / d : 0;
  evt_state *s = state_for(k, n, d, true);
  if (!s) return vt_kernel_fail(k, "out of memory for the gate state (%lld x %lld)", (long long)n, (long long)d);
  const float *xd = x->data;
  int64_t m = n;
  double refresh = vt_kctx_knob(k, "eventful.refresh", (double)vt_attr_int(k->node, "refresh", 0));
  if (!(refresh >= 0)) return vt_kernel_fail(k, "refresh %g must be >= 0", refresh);
  bool keyframe = false;   /* counted in the updated share, unlike the flush after a reset */
  if (s->full_next) s->since = 0;
  else if (refresh >= 1 && ++s->since >= (int64_t)refresh) {
    keyframe = true;
    s->full_next = 1;
    s->since = 0;
  }
  double cut = vt_kctx_knob(k, "eventful.cut", (double)vt_attr_float(k->node, "cut", 0.0f));
  if (!(cut >= 0)) return vt_kernel_fail(k, "cut %g must be >= 0", cut);
  if (!s->full_next && k->sig && k->sig->cut_run == k->sig->run) {   /* an earlier gate of this run saw a cut */
    keyframe = true;
    s->full_next = 1;
    s->since = 0;
  }
  bool full = s->full_next;
  if (!full) {
    norm_args na = {.x = xd, .u = s->ref, .norm = s->norm, .unorm2 = cut > 0 ? s->sel : NULL, .d = d,
                    .gen = k->fns ? (gate_norm_fn)(uintptr_t)k->fns[0] : NULL};
    if (n * d < EVT_PAR_MIN) norm_range(&na, 0, n);
    else vt_pool_for(k->pool, n, norm_range, &na);
    if (cut > 0) {   /* a scene cut: the error energy is a large share of the reference's */
      double e2 = 0, u2 = 0;
      for (int64_t i = 0; i < n; i++) {
        e2 += (double)s->norm[i] * s->norm[i];
        u2 += s->sel[i];
      }
      if (e2 > cut * u2) {
        full = keyframe = true;
        s->full_next = 1;
        s->since = 0;
        if (k->sig) k->sig->cut_run = k->sig->run;
      }
    }
  }
  if (full) {
    for (int64_t i = 0; i < n; i++) s->order[i] = i;
  } else {
    const char *pol = vt_attr_str(k->node, "policy", "topr");
    if (!strcmp(pol, "threshold")) {
      double h = vt_kctx_knob(k, "eventful.h", vt_attr_float(k->node, "h", 0.0f));
      m = 0;
      for (int64_t i = 0; i < n; i++)
        if (s->norm[i] > h) s->order[m++] = i;
    } else {
      if (!strcmp(pol, "fraction")) {
        double f = vt_kctx_knob(k, "eventful.fraction", vt_attr_float(k->node, "fraction", 1.0f));
        if (!(f >= 0 && f <= 1)) return vt_kernel_fail(k, "fraction %g is not in [0,1]", f);
        m = (int64_t)ceil(f * (double)n);
      } else {
        double r = vt_kctx_knob(k, "eventful.r", (double)vt_attr_int(k->node, "r", 0));
        if (!(r >= 0)) return vt_kernel_fail(k, "r %g must be >= 0", r);
        m = r >= (double)n ? n : (int64_t)r;
      }
      if (m > n) m = n;
      if (k->fns && k->fns[1] && m > 0 && m < n) ((gate_select_fn)(uintptr_t)k->fns[1])(s->norm, s->order, m);
      else select_top(s, m);
    }
  }
  int64_t od[2] = {m, d}, id[1] = {m};
  /* xg unread (out_skip bit 0: compiled code gathers x[idx] itself): its shape only */
  bool want_xg = !(k->out_skip & 1u);
  int rc = VT_OK;
  if (want_xg) {
    rc = vt_kctx_output(k, 0, VT_F32, 2, od);
  } else {
    vt_tensor *xg = k->out[0];
    xg->dtype = VT_F32;
    xg->rank = 2;
    xg->dims[0] = m;
    xg->dims[1] = d;
  }
  if (rc == VT_OK) rc = vt_kctx_output(k, 1, VT_I64, 1, id);
  if (rc) return rc;
  memcpy(k->out[1]->data, s->order, (size_t)m * sizeof(int64_t));
  if (want_xg) copy_rows(k->pool, k->out[0]->data, xd, full ? NULL : s->order, m, d, 1);
  /* the reference of the updated tokens: their rows of x */
  if (full) copy_rows(k->pool, s->ref, xd, NULL, n, d, 1);
  else copy_rows(k->pool, s->ref, xd, s->order, m, d, 2);
  if (!full || keyframe) {
    s->hdr.rows_done += m;
    s->hdr.rows_seen += n;
  }
  s->full_next = 0;
  return VT_OK;
}

/* ---------- TokenBuffer ---------- */
int vt_kernel_TokenBuffer(vt_kctx *k) {
  if (!k->state) return need_state(k);
  const vt_tensor *y = k->in[0], *idx = k->in[1], *like = k->in[2];
  if (y->dtype != VT_F32 || y->rank != 2 || idx->dtype != VT_I64 || idx->rank != 1 || like->rank < 2)
    return vt_kernel_fail(k, "expects y f32 [M,O], idx i64 [M], like [..., D]");
  int64_t m = y->dims[0], o = y->dims[1];
  if (idx->dims[0] != m)
    return vt_kernel_fail(k, "y has %lld rows but idx %lld", (long long)m, (long long)idx->dims[0]);
  int64_t ld = like->dims[like->rank - 1];
  int64_t n = ld > 0 ? vt_tensor_numel(like) / ld : 0;
  evt_state *s = state_for(k, n, o, false);
  if (!s) return vt_kernel_fail(k, "out of memory for the buffer state (%lld x %lld)", (long long)n, (long long)o);
  if (s->full_next && m != n)
    return vt_kernel_fail(k, "the buffer has no contents yet (first run, reset, or the token count changed to "
                             "%lld) but received %lld rows: its gate must flush (all tokens) on the same run",
                          (long long)n, (long long)m);
  const int64_t *ix = idx->data;
  for (int64_t j = 0; j < m; j++)
    if (ix[j] < 0 || ix[j] >= n)
      return vt_kernel_fail(k, "index %lld at row %lld is out of range [0, %lld)", (long long)ix[j], (long long)j,
                            (long long)n);
  copy_rows(k->pool, s->ref, y->data, ix, m, o, 0);
  s->full_next = 0;
  vt_tensor *out = k->out[0];
  if (!out->data || vt_tensor_numel(out) != n * o) {
    int64_t dims[VT_MAX_RANK];
    for (int32_t d = 0; d + 1 < like->rank; d++) dims[d] = like->dims[d];
    dims[like->rank - 1] = o;
    int rc = vt_kctx_output(k, 0, VT_F32, like->rank, dims);
    if (rc) return rc;
  }
  copy_rows(k->pool, out->data, s->ref, NULL, n, o, 1);
  return VT_OK;
}

/* ---------- EventfulAttention ----------
 * One independent problem per slice s = (b, h) of Q/K/V [B,H,N,Dh|Dv] (H == Hkv, Nq == Nk = N).
 * State per slice: Bq [N,N] = scale q.k^T as of the last run (no mask/bias: those are inputs and
 * are added every run), ArT [N,N] = A's reference, stored transposed (row j = column j of A, so
 * the columns idx that change are contiguous rows), vref [N,Dv] (v's reference rows),
 * P [N,Dv] = Aref.vref (the output). With the M updated tokens idx:
 *   Bq[idx,:] = scale q[idx].k^T, Bq[:,idx] = scale q.k[idx]^T           (2 N M Dh MACs)
 *   A = softmax(Bq + mask + key_bias) row by row (every row: N exps), only A[:,idx] kept
 *   P += A[:,idx].(v[idx] - vref[idx]) + (A[:,idx] - Aref[:,idx]).vref[idx]
 *        as one product [N, 2M] x [2M, Dv] (2 N M Dv MACs); Aref[:,idx] = A[:,idx]; vref[idx] = v[idx]
 * Rows go in strips of MR (the GEMM micro-kernel's height), every product through vt_gemm_tile on
 * operands packed once per slice (k, k[idx], V2 = [v[idx] - vref[idx]; vref[idx]] in NR-wide
 * panels), written straight where they belong (no [M,N], [N,M] or [N,2M] buffers): first Bq's rows
 * idx; then per strip its columns idx (scattered into the strip's Bq rows, which the previous
 * strip's exp passes prefetched), the full softmax of each row (one pass of logits with the max,
 * one of exps with the sum), A[i,idx] into the packed strip AD [2M, MR] (in L1), Aref's columns
 * idx against it once per strip (MR contiguous floats of ArT's row idx[j]: the state streamed per
 * frame is M rows of ArT, not all of Aref), and P's MR rows += AD^T.V2.
 * When 2M >= N (the sparse update would cost at least the dense one), on a flush and when the
 * state is new, everything is recomputed densely (Bq, Aref = A, vref = v, P = A.v): r >= N is
 * exact. Slices are spread over the pool's threads; each worker has its own scratch.
 *
 * exp_ref = 1 ([I], attn=delta_exp): the reference is the unnormalised exps E = exp(logits - c_i)
 * with a per-row offset c_i (state), P = Eref.vref unnormalised, and every run divides row i by
 * its current full sum S_i = sum_j exp(logit_ij - c_i). Rows idx (their q changed) are recomputed
 * whole (P[idx] = E[idx,:].v, one GEMM [M,N] x [N,Dv]); the other rows take the column delta
 * E[i,idx].v[idx] - Eref[i,idx].vref[idx] as above. The paper's normalised reference goes stale in
 * every column a row's new normaliser touches; this one is exact whenever only the rows and
 * columns idx changed (a row whose max moves more than EVT_REBASE from c_i is rescaled first, so
 * the exps neither overflow nor vanish). Same state size, same strips and products. */
#define EVT_REBASE 30.0f
#define EVT_MR VT_GEMM_MR
#define EVT_NR VT_GEMM_NR
_Static_assert(EVT_NR == 16, "refresh_rows and strip_update move a panel row as two 8-float vectors");
typedef struct {
  vt_state hdr;
  int64_t S, N, Dh, Dv, nw;
  /* per-worker scratch (offsets in floats, multiples of 16: 64-byte aligned):
   * [Kall [ceil(N/NR), Dh, NR] (all of k packed; exp_ref's T [M,Dv] after) | Kp [ceil(M/NR), Dh, NR] |
   *  V2p [npan, 2M, NR] | AD [2M, MR] | tile [MR, NR] | row [N] | Qs [Dh, MR] |
   *  exp_ref: EM [M,N] (rows idx), S [N] (row sums)] */
  int64_t wfloats, off_kp, off_v2, off_ad, off_tile, off_row, off_qs, off_em, off_sum;
  int full_next;
  float *Bq, *ArT, *vref, *P;    /* [S,N,N], [S,N,N] (transposed), [S,N,Dv], [S,N,Dv] */
  float *c;                      /* [S,N]: exp_ref row offsets (-inf: the row saw no key) */
  float *scratch;                /* nw x wfloats, 64-byte aligned */
} attn_state;

static void attn_free(void *p) {
  attn_state *s = p;
  if (!s) return;
  free(s->Bq);
  free(s->ArT);
  free(s->vref);
  free(s->P);
  free(s->c);
  free(s->scratch);
  free(s);
}

static void attn_flush(void *p) { ((attn_state *)p)->full_next = 1; }

static attn_state *attn_state_for(vt_kctx *k, int64_t S, int64_t N, int64_t Dh, int64_t Dv, int64_t nw) {
  attn_state *s = *k->state;
  if (s && s->S == S && s->N == N && s->Dh == Dh && s->Dv == Dv && s->nw == nw) return s;
  if (s) s->hdr.free(s);
  *k->state = NULL;
  int64_t mmax = N > 0 ? (N - 1) / 2 : 0;            /* largest M of the sparse path */
  int64_t npan = (Dv + EVT_NR - 1) / EVT_NR;
  int64_t r1 = (N + EVT_NR - 1) / EVT_NR * EVT_NR * Dh, r1b = mmax * Dv;   /* Kall | T */
  int64_t at[9] = {r1 > r1b ? r1 : r1b, (mmax + EVT_NR - 1) / EVT_NR * Dh * EVT_NR, npan * 2 * mmax * EVT_NR,
                   2 * mmax * EVT_MR, EVT_MR * EVT_NR, N, Dh * EVT_MR, mmax * N, N};
  int64_t off[9], wf = 0;
  for (int r = 0; r < 9; r++) {
    off[r] = wf;
    wf += (at[r] + 15) / 16 * 16;
  }
  double total = (double)S * N * (2.0 * N + 2.0 * Dv + 1.0) + (double)nw * wf;
  if (total * sizeof(float) > 1e15) return NULL;
  s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->hdr.free = attn_free;
  s->hdr.flush = attn_flush;
  s->S = S; s->N = N; s->Dh = Dh; s->Dv = Dv; s->nw = nw; s->wfloats = wf;
  s->off_kp = off[1];
  s->off_v2 = off[2];
  s->off_ad = off[3];
  s->off_tile = off[4];
  s->off_row = off[5];
  s->off_qs = off[6];
  s->off_em = off[7];
  s->off_sum = off[8];
  s->full_next = 1;
  s->Bq = malloc((size_t)(S * N * N) * sizeof(float) + 1);
  s->ArT = malloc((size_t)(S * N * N) * sizeof(float) + 1);
  s->vref = malloc((size_t)(S * N * Dv) * sizeof(float) + 1);
  s->P = malloc((size_t)(S * N * Dv) * sizeof(float) + 1);
  s->c = malloc((size_t)(S * N) * sizeof(float) + 1);
  s->scratch = aligned_alloc(64, (size_t)(nw * wf) * sizeof(float) + 64);
  s->hdr.bytes = sizeof *s + (size_t)total * sizeof(float);
  if (!s->Bq || !s->ArT || !s->vref || !s->P || !s->c || !s->scratch) {
    attn_free(s);
    return NULL;
  }
  *k->state = s;
  return s;
}

typedef struct {
  attn_state *st;
  const float *q, *k, *v, *mask, *kbias;
  const uint8_t *bmask;
  const int64_t *idx;
  float *out;
  int64_t H, M;
  int64_t mstr[4];          /* mask strides over [B,H,Nq,Nk] (0: broadcast) */
  int64_t kbstr_b, kbstr_h;
  vt_relpos rel;            /* bias_rows / bias_cols (rel.rows NULL: none) */
  float scale;
  int causal, dense, exp_ref;
  vt_pool *gemm_pool;       /* the pool for GEMMs when one worker runs (else NULL) */
} attn_job;

/* Softmax rows use GCC vector extensions (8 floats) so they vectorise at -O2 in every clone. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4)));   /* unaligned loads/stores */

/* Lane select: m ? a : b for masks from vector compares (all bits set or clear). */
#define EVT_SEL(m, a, b) ((v8f)(((m) & (v8i)(a)) | (~(m) & (v8i)(b))))

/* OUT = e^X for X <= 0 (softmax after max subtraction), 8 lanes: Cephes-style range reduction and
 * a degree-6 polynomial, ~1 ulp; 0 below -87 (and for -inf). A macro: no vector arguments cross
 * a call (their ABI differs between the clones). */
#define EVT_EXP8(OUT, X)                                                  \
  do {                                                                    \
    const v8f lo_ = (v8f){0} - 87.0f;                                     \
    v8i small_ = (X) < lo_;                                               \
    v8f xc_ = EVT_SEL(small_, lo_, (X));                                  \
    v8f n_ = (xc_ * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   \
    v8f r_ = xc_ - n_ * 0.693359375f + n_ * 2.12194440e-4f;               \
    v8f p_ = (v8f){0} + 1.9875691500e-4f;                                 \
    p_ = p_ * r_ + 1.3981999507e-3f;                                      \
    p_ = p_ * r_ + 8.3334519073e-3f;                                      \
    p_ = p_ * r_ + 4.1665795894e-2f;                                      \
    p_ = p_ * r_ + 1.6666665459e-1f;                                      \
    p_ = p_ * r_ + 5.0000001201e-1f;                                      \
    p_ = p_ * r_ * r_ + r_ + 1.0f;                                        \
    v8i bits_ = (__builtin_convertvector(n_, v8i) + 127) << 23;           \
    (OUT) = EVT_SEL(small_, (v8f){0}, p_ * (v8f)bits_);                   \
  } while (0)

static inline float evt_exp(float x) {
  v8f v = (v8f){0} + x, r;
  EVT_EXP8(r, v);
  return r[0];
}

/* row = b + mask (stride 1 or ms), returns the max. */
EVT_CLONES static float row_logits(float *row, const float *b, const float *mask, int64_t ms, int64_t n) {
  v8f m = (v8f){0} - INFINITY;
  int64_t j = 0;
  if (mask && ms == 1) {
    for (; j + 8 <= n; j += 8) {
      v8f x = *(const v8fu *)(b + j) + *(const v8fu *)(mask + j);
      *(v8fu *)(row + j) = x;
      m = EVT_SEL(x > m, x, m);
    }
    for (; j < n; j++) row[j] = b[j] + mask[j];
  } else if (mask) {
    for (; j < n; j++) row[j] = b[j] + mask[j * ms];
  } else {
    memcpy(row, b, (size_t)n * sizeof(float));
  }
  float r = -INFINITY;
  for (int l = 0; l < 8; l++) r = m[l] > r ? m[l] : r;
  for (int64_t i = j; i < n; i++) r = row[i] > r ? row[i] : r;   /* the tail, or all without the vector loop */
  return r;
}

/* row = b (+ mask, stride 1) + the decomposed bias r[a] + cols[c] at key a * kw + c (cols
 * contiguous; same sums as kernels_relpos.h), in one pass with vectors; returns the max.
 * row must not alias b or mask. */
EVT_CLONES static float row_logits_rel(float *row, const float *b, const float *mask, const float *r, int64_t rs,
                                       const float *cols, int64_t kw, int64_t n) {
  v8f m = (v8f){0} - INFINITY;
  float mx = -INFINITY;
  for (int64_t a = 0; a * kw < n; a++) {
    int64_t o = a * kw, len = n - o < kw ? n - o : kw, j = 0;
    float ra = r[a * rs];
    /* vectors; a grid row of >= 8 keys ends with one more vector overlapping the previous one
     * (row is written from b, mask and cols only, so recomputed lanes get the same values) */
    for (int64_t last = 0; j + 8 <= len || (!last && len >= 8 && j < len); j += 8) {
      if (j + 8 > len) {
        j = len - 8;
        last = 1;
      }
      v8f x = *(const v8fu *)(b + o + j);
      if (mask) x += *(const v8fu *)(mask + o + j);
      x += ra + *(const v8fu *)(cols + j);
      *(v8fu *)(row + o + j) = x;
      m = EVT_SEL(x > m, x, m);
    }
    for (; j < len; j++) {
      float x = b[o + j];
      if (mask) x += mask[o + j];
      x += ra + cols[j];
      row[o + j] = x;
      mx = x > mx ? x : mx;
    }
  }
  for (int l = 0; l < 8; l++) mx = m[l] > mx ? m[l] : mx;
  return mx;
}

EVT_CLONES static float row_max(const float *x, int64_t n) {
  v8f m = (v8f){0} - INFINITY;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v = *(const v8fu *)(x + j);
    m = EVT_SEL(v > m, v, m);
  }
  float r = -INFINITY;
  for (int l = 0; l < 8; l++) r = m[l] > r ? m[l] : r;
  for (; j < n; j++) r = x[j] > r ? x[j] : r;
  return r;
}

/* x = exp(x - mx) in place; returns the sum. The polynomial's multiply-adds are fused where the
 * clone's ISA has FMA. pf (NULL: none): n floats to prefetch meanwhile, one
 * cache line per 16 elements (the next softmax row's logits: its column refresh is scattered into
 * it before it is read, and those stores would otherwise each miss). */
EVT_CLONES __attribute__((optimize("fp-contract=fast"))) static float row_exp_sum(float *x, int64_t n, float mx,
                                                                                  const float *pf) {
  v8f s = {0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    if (pf && !(j & 15)) __builtin_prefetch(pf + j, 1, 3);
    v8f e, d = *(v8fu *)(x + j) - mx;
    EVT_EXP8(e, d);
    *(v8fu *)(x + j) = e;
    s += e;
  }
  float r = 0;
  for (; j < n; j++) {
    x[j] = evt_exp(x[j] - mx);
    r += x[j];
  }
  for (int l = 0; l < 8; l++) r += s[l];
  return r;
}

/* Logits of row i of slice (b, h): Bq's row + mask, the decomposed bias, key bias, causal (in
 * that order, as ai.vtopt.Attention), into row; returns the max (-inf: no visible key). */
static float logits_row(const attn_job *J, int64_t b, int64_t h, int64_t i, const float *brow, float *row) {
  int64_t N = J->st->N;
  int64_t moff = b * J->mstr[0] + h * J->mstr[1] + i * J->mstr[2];
  const vt_relpos *rp = &J->rel;
  float mx;
  bool more = false;
  if (rp->rows && rp->cstr[3] == 1 && !J->bmask && (!J->mask || J->mstr[3] == 1)) {   /* one vector pass */
    mx = row_logits_rel(row, brow, J->mask ? J->mask + moff : NULL,
                        rp->rows + b * rp->rstr[0] + h * rp->rstr[1] + i * rp->rstr[2], rp->rstr[3],
                        rp->cols + b * rp->cstr[0] + h * rp->cstr[1] + i * rp->cstr[2], rp->kw, N);
  } else {
    mx = row_logits(row, brow, J->mask ? J->mask + moff : NULL, J->mstr[3], N);
    if (J->bmask) {
      for (int64_t j = 0; j < N; j++)
        if (!J->bmask[moff + j * J->mstr[3]]) row[j] = -INFINITY;
      more = true;
    }
    if (rp->rows) {
      vt_relpos_add(rp, b, h, i, row, N);
      more = true;
    }
  }
  if (J->kbias) {
    const float *kb = J->kbias + b * J->kbstr_b + h * J->kbstr_h;
    for (int64_t j = 0; j < N; j++) row[j] += kb[j];
    more = true;
  }
  if (J->causal) {
    for (int64_t j = i + 1; j < N; j++) row[j] = -INFINITY;
    more = true;
  }
  return more ? row_max(row, N) : mx;
}

/* row = exp(row - c) (c finite; -inf logits give 0), returns the sum; c = -inf: a zero row.
 * pf: see row_exp_sum. */
static float exp_row(float *row, int64_t n, float c, const float *pf) {
  if (c == -INFINITY) {
    memset(row, 0, (size_t)n * sizeof(float));
    return 0.0f;
  }
  return row_exp_sum(row, n, c, pf);
}

/* Softmax row i of slice (b, h) from Bq's row into row: unnormalised exps; returns the factor
 * 1 / sum that normalises them (0 for a row with no visible key). */
static float softmax_row(const attn_job *J, int64_t b, int64_t h, int64_t i, const float *brow, float *row,
                         const float *pf) {
  float mx = logits_row(J, b, h, i, brow, row);
  float sum = exp_row(row, J->st->N, mx, pf);
  return sum > 0.0f ? 1.0f / sum : 0.0f;
}

/* V2p [npan, 2M, NR] = [v[idx] - vref[idx] (delta = 1) or v[idx] (delta = 0); vref[idx]] in the
 * GEMM's column panels (NR columns of Dv each, zero-padded); then vref[idx] = v[idx]. */
static void pack_v2(float *V2p, const float *v, float *vr, const int64_t *idx, int64_t M, int64_t Dv, int delta) {
  for (int64_t c0 = 0; c0 < Dv; c0 += EVT_NR) {
    int64_t nc = Dv - c0 < EVT_NR ? Dv - c0 : EVT_NR;
    float *pan = V2p + c0 / EVT_NR * 2 * M * EVT_NR;
    for (int64_t j = 0; j < M; j++) {
      const float *vn = v + idx[j] * Dv + c0, *vo = vr + idx[j] * Dv + c0;
      float *d = pan + j * EVT_NR, *o = pan + (M + j) * EVT_NR;
      int64_t c = 0;
      for (; c < nc; c++) {
        d[c] = delta ? vn[c] - vo[c] : vn[c];
        o[c] = vo[c];
      }
      for (; c < EVT_NR; c++) d[c] = o[c] = 0.0f;
    }
  }
  for (int64_t j = 0; j < M; j++) memcpy(vr + idx[j] * Dv, v + idx[j] * Dv, (size_t)Dv * sizeof(float));
}

/* Kp [ceil(n/NR), Dh, NR] = k[idx]^T (idx NULL: k[0..n)^T) in the GEMM's column panels
 * (zero-padded). */
static void pack_cols(float *Kp, const float *k, const int64_t *idx, int64_t n, int64_t Dh) {
  for (int64_t j0 = 0; j0 < n; j0 += EVT_NR) {
    float *pan = Kp + j0 * Dh;
    for (int64_t c = 0; c < EVT_NR; c++) {
      const float *kr = j0 + c < n ? k + (idx ? idx[j0 + c] : j0 + c) * Dh : NULL;
      for (int64_t d = 0; d < Dh; d++) pan[d * EVT_NR + c] = kr ? kr[d] : 0.0f;
    }
  }
}

/* A refresh of R <= MR rows of Bq: Bq[i, col] = scale q[i].k[col]^T for the rows i = ri[r] (ri
 * NULL: i0 + r) and the n columns col = ci[c] (ci NULL: c) packed in Kp, one micro-kernel call per
 * NR columns (the same sums and scaling as vt_sgemm's: bit-identical). Qs [Dh, MR]: scratch for
 * the packed q rows. */
EVT_CLONES static void refresh_rows(float *Bq, int64_t N, const float *q, int64_t Dh, const int64_t *ri, int64_t i0,
                                    int64_t R, const float *Kp, const int64_t *ci, int64_t n, float scale, float *Qs,
                                    float *tile) {
  for (int64_t r = 0; r < EVT_MR; r++) {
    const float *qr = r < R ? q + (ri ? ri[r] : i0 + r) * Dh : NULL;
    for (int64_t d = 0; d < Dh; d++) Qs[d * EVT_MR + r] = qr ? qr[d] : 0.0f;
  }
  for (int64_t j0 = 0; j0 < n; j0 += EVT_NR) {
    int64_t nc = n - j0 < EVT_NR ? n - j0 : EVT_NR;
    vt_gemm_tile(Dh, Qs, Kp + j0 * Dh, tile);
    for (int64_t r = 0; r < R; r++) {
      float *br = Bq + (ri ? ri[r] : i0 + r) * N;
      const float *tr = tile + r * EVT_NR;
      if (ci) {
        for (int64_t c = 0; c < nc; c++) br[ci[j0 + c]] = scale * tr[c];
      } else if (nc == EVT_NR) {   /* a whole panel: two vectors */
        *(v8fu *)(br + j0) = scale * *(const v8f *)tr;
        *(v8fu *)(br + j0 + 8) = scale * *(const v8f *)(tr + 8);
      } else {
        for (int64_t c = 0; c < nc; c++) br[j0 + c] = scale * tr[c];
      }
    }
  }
}

/* Bq's rows idx, whole: scale q[idx].k^T (Kall: all of k packed). */
static void refresh_idx_rows(float *Bq, int64_t N, const float *q, const float *k, int64_t Dh, const int64_t *idx,
                             int64_t M, float scale, float *Kall, float *Qs, float *tile) {
  pack_cols(Kall, k, NULL, N, Dh);
  for (int64_t j0 = 0; j0 < M; j0 += EVT_MR)
    refresh_rows(Bq, N, q, Dh, idx + j0, 0, M - j0 < EVT_MR ? M - j0 : EVT_MR, Kall, NULL, N, scale, Qs, tile);
}

/* The strip's kept columns against Aref: for the rows r < R not skipped (skip NULL: none), with
 * x = AD[j, r] (A[i0 + r, idx[j]]) and a = Aref[i0 + r, idx[j]] (ArT's row idx[j], contiguous
 * over r): AD[M + j, r] = x - a (neg: -a), Aref = x; AD[M + j, r] = 0 for the other rows. Then it
 * prefetches the next strip's runs of ArT (pf). */
EVT_CLONES static void strip_columns(float *ArT, float *AD, const int64_t *idx, int64_t M, int64_t N, int64_t i0,
                                     int64_t R, const uint8_t *skip, int neg) {
  int pf = i0 + 2 * EVT_MR <= N;
  for (int64_t j = 0; j < M; j++) {
    float *at = ArT + idx[j] * N + i0, *x = AD + j * EVT_MR, *d = AD + (M + j) * EVT_MR;
    if (pf) __builtin_prefetch(at + 2 * EVT_MR - 1, 1, 2);
    if (R == EVT_MR && !skip) {
      if (neg)
        for (int r = 0; r < EVT_MR; r++) {
          d[r] = -at[r];
          at[r] = x[r];
        }
      else
        for (int r = 0; r < EVT_MR; r++) {
          d[r] = x[r] - at[r];
          at[r] = x[r];
        }
      continue;
    }
    for (int64_t r = 0; r < EVT_MR; r++) {
      if (r >= R || (skip && skip[r])) {
        d[r] = 0.0f;
        continue;
      }
      d[r] = neg ? -at[r] : x[r] - at[r];
      at[r] = x[r];
    }
  }
}

/* P rows [i0, i0 + R) (R <= MR) += AD^T V2: the strip AD [2M, MR] (AD[k*MR + r]: row i0 + r) times
 * the packed V2p, one micro-kernel call per NR-wide panel of Dv. */
EVT_CLONES static void strip_update(float *P, int64_t Dv, int64_t i0, int64_t R, int64_t K, const float *AD,
                                    const float *V2p, float *tile) {
  for (int64_t c0 = 0; c0 < Dv; c0 += EVT_NR) {
    int64_t nc = Dv - c0 < EVT_NR ? Dv - c0 : EVT_NR;
    vt_gemm_tile(K, AD, V2p + c0 / EVT_NR * K * EVT_NR, tile);
    for (int64_t r = 0; r < R; r++) {
      float *pr = P + (i0 + r) * Dv + c0;
      const float *tr = tile + r * EVT_NR;
      if (nc == EVT_NR) {
        *(v8fu *)pr += *(const v8f *)tr;
        *(v8fu *)(pr + 8) += *(const v8f *)(tr + 8);
        continue;
      }
      for (int64_t c = 0; c < nc; c++) pr[c] += tr[c];
    }
  }
}

/* a [n,n] = a^T in place, in 32 x 32 tiles (tile pairs swapped, diagonal tiles in place) */
static void transpose_square(float *a, int64_t n) {
  const int64_t T = 32;
  for (int64_t i0 = 0; i0 < n; i0 += T)
    for (int64_t j0 = i0; j0 < n; j0 += T) {
      int64_t i1 = i0 + T < n ? i0 + T : n, j1 = j0 + T < n ? j0 + T : n;
      for (int64_t i = i0; i < i1; i++)
        for (int64_t j = (j0 == i0 ? i + 1 : j0); j < j1; j++) {
          float t = a[i * n + j];
          a[i * n + j] = a[j * n + i];
          a[j * n + i] = t;
        }
    }
}

static void attn_slice(const attn_job *J, int64_t s, float *W) {
  attn_state *st = J->st;
  int64_t N = st->N, Dh = st->Dh, Dv = st->Dv, M = J->M, b = s / J->H, h = s % J->H;
  const float *q = J->q + s * N * Dh, *k = J->k + s * N * Dh, *v = J->v + s * N * Dv;
  float *Bq = st->Bq + s * N * N, *ArT = st->ArT + s * N * N, *vr = st->vref + s * N * Dv, *P = st->P + s * N * Dv;
  const int64_t *idx = J->idx;
  vt_pool *gp = J->gemm_pool;
  float *row = W + st->off_row;
  if (J->dense) {   /* A row-major in ArT's memory for P = A.v, then transposed in place */
    vt_sgemm(gp, 0, 1, N, N, Dh, J->scale, q, Dh, k, Dh, 0.0f, Bq, N);
    for (int64_t i = 0; i < N; i++) {
      float *ar = ArT + i * N, inv = softmax_row(J, b, h, i, Bq + i * N, ar, NULL);
      for (int64_t j = 0; j < N; j++) ar[j] *= inv;
    }
    vt_sgemm(gp, 0, 0, N, Dv, N, 1.0f, ArT, N, v, Dv, 0.0f, P, Dv);
    transpose_square(ArT, N);
    memcpy(vr, v, (size_t)(N * Dv) * sizeof(float));
  } else if (M > 0) {
    /* rows idx of Bq, then per strip of MR rows: the columns idx refreshed (q times the packed
     * k[idx]^T), the full softmax per row, A[i,idx] and A[i,idx] - Aref[i,idx] into the strip
     * AD, P's rows updated */
    float *AD = W + st->off_ad, *V2p = W + st->off_v2, *tile = W + st->off_tile, *Kp = W + st->off_kp;
    float *Qs = W + st->off_qs;
    refresh_idx_rows(Bq, N, q, k, Dh, idx, M, J->scale, W, Qs, tile);
    pack_cols(Kp, k, idx, M, Dh);
    pack_v2(V2p, v, vr, idx, M, Dv, 1);
    for (int64_t i0 = 0; i0 < N; i0 += EVT_MR) {
      int64_t R = N - i0 < EVT_MR ? N - i0 : EVT_MR;
      refresh_rows(Bq, N, q, Dh, NULL, i0, R, Kp, idx, M, J->scale, Qs, tile);
      for (int64_t r = 0; r < EVT_MR; r++) {
        if (r >= R) {   /* the last strip's missing rows: zero (their products are not used) */
          for (int64_t j = 0; j < M; j++) AD[j * EVT_MR + r] = 0.0f;
          continue;
        }
        int64_t i = i0 + r;
        float *br = Bq + i * N;
        float inv = softmax_row(J, b, h, i, br, row, i + EVT_MR < N ? br + EVT_MR * N : NULL);
        for (int64_t j = 0; j < M; j++) AD[j * EVT_MR + r] = row[idx[j]] * inv;
      }
      strip_columns(ArT, AD, idx, M, N, i0, R, NULL, 0);
      strip_update(P, Dv, i0, R, 2 * M, AD, V2p, tile);
    }
  }
  memcpy(J->out + s * N * Dv, P, (size_t)(N * Dv) * sizeof(float));
}

/* exp_ref mode (see the top of this section): one slice. */
static void attn_slice_exp(const attn_job *J, int64_t s, float *W) {
  attn_state *st = J->st;
  int64_t N = st->N, Dh = st->Dh, Dv = st->Dv, M = J->M, b = s / J->H, h = s % J->H;
  const float *q = J->q + s * N * Dh, *k = J->k + s * N * Dh, *v = J->v + s * N * Dv;
  float *Bq = st->Bq + s * N * N, *ErT = st->ArT + s * N * N, *vr = st->vref + s * N * Dv, *P = st->P + s * N * Dv;
  float *c = st->c + s * N, *row = W + st->off_row, *S = W + st->off_sum;
  const int64_t *idx = J->idx;
  vt_pool *gp = J->gemm_pool;
  if (J->dense) {   /* E row-major in ErT's memory for P = E.v, then transposed in place */
    vt_sgemm(gp, 0, 1, N, N, Dh, J->scale, q, Dh, k, Dh, 0.0f, Bq, N);
    for (int64_t i = 0; i < N; i++) {
      float *er = ErT + i * N;
      c[i] = logits_row(J, b, h, i, Bq + i * N, er);
      S[i] = exp_row(er, N, c[i], NULL);
    }
    vt_sgemm(gp, 0, 0, N, Dv, N, 1.0f, ErT, N, v, Dv, 0.0f, P, Dv);
    transpose_square(ErT, N);
    memcpy(vr, v, (size_t)(N * Dv) * sizeof(float));
  } else if (M > 0) {
    float *EM = W + st->off_em, *Kp = W + st->off_kp, *Qs = W + st->off_qs;
    float *AD = W + st->off_ad, *V2p = W + st->off_v2, *tile = W + st->off_tile;
    refresh_idx_rows(Bq, N, q, k, Dh, idx, M, J->scale, W, Qs, tile);
    /* V2p = [v[idx]; vref[idx]]; then vref[idx] = v[idx]; column refresh and the delta
     * product per strip as above */
    pack_cols(Kp, k, idx, M, Dh);
    pack_v2(V2p, v, vr, idx, M, Dv, 0);
    int64_t next = 0;   /* next entry of idx: rows are visited in order, idx is ascending */
    for (int64_t i0 = 0; i0 < N; i0 += EVT_MR) {
      int64_t R = N - i0 < EVT_MR ? N - i0 : EVT_MR;
      refresh_rows(Bq, N, q, Dh, NULL, i0, R, Kp, idx, M, J->scale, Qs, tile);
      uint8_t skip[EVT_MR] = {0};   /* the strip's rows idx: their column of ErT is written whole */
      for (int64_t r = 0; r < EVT_MR; r++) {
        int64_t i = i0 + r;
        if (r >= R || (next < M && idx[next] == i)) {   /* no row, or a row without a delta */
          for (int64_t j = 0; j < M; j++) AD[j * EVT_MR + r] = 0.0f;
          if (r >= R) continue;
          skip[r] = 1;
        }
        float *br = Bq + i * N;
        float mx = logits_row(J, b, h, i, br, row);
        if (next < M && idx[next] == i) {   /* q_i changed: the whole row anew, P[i] by the GEMM below */
          float *em = EM + next * N;
          c[i] = mx;
          S[i] = exp_row(row, N, mx, i + EVT_MR < N ? br + EVT_MR * N : NULL);
          memcpy(em, row, (size_t)N * sizeof(float));
          for (int64_t j = 0; j < N; j++) ErT[j * N + i] = row[j];
          next++;
          continue;
        }
        if (mx != -INFINITY && (c[i] == -INFINITY || fabsf(mx - c[i]) > EVT_REBASE)) {
          if (c[i] != -INFINITY) {   /* rebase: the kept exps and P's row to the offset mx */
            float f = evt_exp(c[i] - mx);
            for (int64_t j = 0; j < N; j++) ErT[j * N + i] *= f;
            for (int64_t d = 0; d < Dv; d++) P[i * Dv + d] *= f;
          }
          c[i] = mx;
        }
        S[i] = exp_row(row, N, c[i], i + EVT_MR < N ? br + EVT_MR * N : NULL);
        for (int64_t j = 0; j < M; j++) AD[j * EVT_MR + r] = row[idx[j]];
      }
      strip_columns(ErT, AD, idx, M, N, i0, R, skip, 1);
      strip_update(P, Dv, i0, R, 2 * M, AD, V2p, tile);
    }
    /* rows idx: P[idx] = E[idx,:].v (v with the rows idx just taken: vref == v everywhere now) */
    float *T = W;   /* Kall is consumed: [M, Dv] */
    vt_sgemm(gp, 0, 0, M, Dv, N, 1.0f, EM, N, vr, Dv, 0.0f, T, Dv);
    for (int64_t j = 0; j < M; j++) memcpy(P + idx[j] * Dv, T + j * Dv, (size_t)Dv * sizeof(float));
  } else {   /* M = 0: nothing refreshed; this run's row sums (mask and key bias are inputs) */
    for (int64_t i = 0; i < N; i++) {
      logits_row(J, b, h, i, Bq + i * N, row);
      S[i] = exp_row(row, N, c[i], NULL);
    }
  }
  float *o = J->out + s * N * Dv;
  for (int64_t i = 0; i < N; i++) {
    float inv = S[i] > 0.0f ? 1.0f / S[i] : 0.0f;
    for (int64_t d = 0; d < Dv; d++) o[i * Dv + d] = P[i * Dv + d] * inv;
  }
}

typedef struct {
  const attn_job *J;
  int64_t nw;
} attn_workers;

static void attn_worker_range(void *arg, int64_t begin, int64_t end) {
  const attn_workers *a = arg;
  for (int64_t w = begin; w < end; w++)
    for (int64_t s = w; s < a->J->st->S; s += a->nw) {
      float *scratch = a->J->st->scratch + w * a->J->st->wfloats;
      if (a->J->exp_ref) attn_slice_exp(a->J, s, scratch);
      else attn_slice(a->J, s, scratch);
    }
}

int vt_kernel_EventfulAttention(vt_kctx *k) {
  if (!k->state) return need_state(k);
  const vt_tensor *q = k->in[0], *kt = k->in[1], *v = k->in[2];
  const vt_tensor *mask = k->n_in > 3 ? k->in[3] : NULL, *kb = k->n_in > 4 ? k->in[4] : NULL;
  const vt_tensor *idx = k->n_in > 5 ? k->in[5] : NULL;
  const vt_tensor *brows = k->n_in > 6 ? k->in[6] : NULL, *bcols = k->n_in > 7 ? k->in[7] : NULL;
  if (!idx || idx->dtype != VT_I64 || idx->rank != 1) return vt_kernel_fail(k, "idx must be i64 [M]");
  if (q->dtype != VT_F32 || kt->dtype != VT_F32 || v->dtype != VT_F32)
    return vt_kernel_fail(k, "supports float32 only, got %s", vt_dtype_name(q->dtype));
  if (q->rank != 4 || kt->rank != 4 || v->rank != 4) return vt_kernel_fail(k, "Q, K, V must have rank 4");
  int64_t B = q->dims[0], H = q->dims[1], N = q->dims[2], Dh = q->dims[3], Dv = v->dims[3];
  for (int d = 0; d < 3; d++)
    if (kt->dims[d] != q->dims[d] || v->dims[d] != q->dims[d])
      return vt_kernel_fail(k, "Q, K and V must agree on [B,H,N] (self-attention over one token set, H == Hkv)");
  if (kt->dims[3] != Dh) return vt_kernel_fail(k, "head dim of Q (%lld) differs from K (%lld)", (long long)Dh,
                                               (long long)kt->dims[3]);
  vt_tensor *out = k->out[0];
  if (out->dtype != VT_F32 || out->rank != 4 || (!out->data && vt_tensor_numel(out) > 0))
    return vt_kernel_fail(k, "output was not allocated as f32 [B,H,N,Dv]");
  attn_job J = {.q = q->data, .k = kt->data, .v = v->data, .out = out->data, .H = H, .M = idx->dims[0],
                .idx = idx->data};
  int64_t full[4] = {B, H, N, N};
  if (mask) {
    if (mask->rank > 4) return vt_kernel_fail(k, "mask must have rank <= 4, got %d", mask->rank);
    if (mask->dtype == VT_F32) J.mask = mask->data;
    else if (mask->dtype == VT_BOOL) J.bmask = mask->data;
    else return vt_kernel_fail(k, "mask must be f32 or bool, got %s", vt_dtype_name(mask->dtype));
    int rc = vt_bcast_strides(k, "mask", mask, 4, full, J.mstr);
    if (rc) return rc;
  }
  if (kb) {
    if (kb->dtype != VT_F32 || kb->rank != 3 || kb->dims[0] != B || (kb->dims[1] != 1 && kb->dims[1] != H) ||
        kb->dims[2] != N)
      return vt_kernel_fail(k, "key_bias must be f32 [B,1|H,N]");
    J.kbias = kb->data;
    J.kbstr_b = kb->dims[1] * N;
    J.kbstr_h = kb->dims[1] == 1 ? 0 : N;
  }
  int rc = vt_relpos_init(k, brows, bcols, B, H, N, N, &J.rel);
  if (rc) return rc;
  const int64_t *ix = J.idx;
  for (int64_t j = 0; j < J.M; j++)
    if (ix[j] < 0 || ix[j] >= N || (j > 0 && ix[j] <= ix[j - 1]))
      return vt_kernel_fail(k, "idx must be ascending token indices in [0, %lld); entry %lld is %lld", (long long)N,
                            (long long)j, (long long)ix[j]);
  float scale = vt_attr_float(k->node, "scale", 0.0f);
  J.scale = scale != 0.0f ? scale : (Dh > 0 ? 1.0f / sqrtf((float)Dh) : 1.0f);
  J.causal = (int)vt_attr_int(k->node, "causal", 0);
  J.exp_ref = (int)vt_attr_int(k->node, "exp_ref", 0);
  int64_t S = B * H, threads = vt_pool_threads(k->pool);
  int64_t nw = S < threads ? S : threads;
  if (nw < 1) nw = 1;
  attn_state *st = attn_state_for(k, S, N, Dh, Dv, nw);
  if (!st) return vt_kernel_fail(k, "out of memory for the attention state (%lld slices of %lld tokens)", (long long)S,
                                 (long long)N);
  J.st = st;
  J.dense = st->full_next || 2 * J.M >= N;
  if (S == 0 || N == 0) return VT_OK;
  attn_workers aw = {.J = &J, .nw = nw};
  if (nw == 1) {
    J.gemm_pool = k->pool;
    attn_worker_range(&aw, 0, 1);
  } else {
    vt_pool_for(k->pool, nw, attn_worker_range, &aw);
  }
  st->full_next = 0;
  return VT_OK;
}

/* test_httm.c — the httm pass and ai.vtopt.HeadwiseMergedAttention:
 *  - the kernel against a naive double-precision reference written from the op's definition
 *    (odd sizes, outliers, shared mode), and with every parameter at keep 1 against Attention;
 *  - hand-checkable structure: a static "video" (every frame repeats frame 0) with first-frame
 *    anchoring merges every token with its exact duplicate, so with proportional attention the
 *    merged result equals dense attention; without it, it must not;
 *  - vggt_tiny (zoo fixture): keep 1 equals the dense model (rel L2 <= 1e-5); the defaults and
 *    shared mode keep the merged global attentions' outputs at cosine >= 0.90 to dense attention
 *    and lower the FLOPs estimate; on real frames (a cockatoo.mp4 clip made by a fixture, pooled
 *    to 28x28, T = 16) cosine >= 0.95. Each threshold sits above two ablations measured in the
 *    same test (attention output zeroed: cosine 0; uniform attention, the mean of V: 0.80 and
 *    0.77), and the final output must beat both ablations too (on this tiny random model the
 *    residual stream alone keeps the final output at cosine 0.985 with attention deleted, so a
 *    threshold on the final output alone says little). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vt_skip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend.h"
#include "passes.h"
#include "runtime.h"
#include "test_metrics.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(vt_tensor *t, int rank, const int64_t *dims) {
  memset(t, 0, sizeof *t);
  vt_error e = {0};
  assert_int_equal(vt_tensor_alloc(t, VT_F32, rank, dims, &e), VT_OK);
  for (int64_t i = 0; i < vt_tensor_numel(t); i++) ((float *)t->data)[i] = frand();
}



typedef struct {
  float q_keep, kv_keep, outlier;
  int64_t n_s, n_t, P, prot, anchor, shared, prop;
} hm_conf;

/* A one-node graph: HeadwiseMergedAttention (or Attention when c == NULL) on Q, K, V. */
static vt_graph *one_node(const int64_t *qd, const int64_t *vd, const hm_conf *c) {
  vt_graph *g = vt_graph_new("");
  vt_dim d[4];
  int32_t in[3];
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 4; j++) d[j] = i == 2 ? vd[j] : qd[j];
    const char *nm[3] = {"q", "k", "v"};
    in[i] = vt_graph_add_value(g, nm[i], VT_F32, 4, d);
    vt_graph_add_input(g, in[i]);
  }
  int32_t o = vt_graph_add_value(g, "o", VT_UNDEFINED, -1, NULL);
  int32_t n = vt_graph_add_node(g, "attn", c ? VT_OP_HeadwiseMergedAttention : VT_OP_Attention, 3, in, 1, &o);
  vt_graph_add_output(g, o);
  if (c) {
    const char *fn[3] = {"q_keep", "kv_keep", "outlier"};
    float fv[3] = {c->q_keep, c->kv_keep, c->outlier};
    for (int i = 0; i < 3; i++) vt_node_add_attr(g, n, fn[i], VT_ATTR_FLOAT)->f = fv[i];
    const char *in_[7] = {"n_s", "n_t", "tokens_per_frame", "protected", "anchor", "shared", "prop_attn"};
    int64_t iv[7] = {c->n_s, c->n_t, c->P, c->prot, c->anchor, c->shared, c->prop};
    for (int i = 0; i < 7; i++) vt_node_add_attr(g, n, in_[i], VT_ATTR_INT)->i = iv[i];
  }
  vt_error e = {0};
  if (vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK) fail_msg("one_node: %s", e.msg);
  return g;
}

static void run_graph(const vt_graph *g, const vt_tensor *in, vt_tensor *out) {
  vt_error e = {0};
  vt_interp *it = vt_interp_new(g, 2, &e);
  if (!it) fail_msg("interp: %s", e.msg);
  if (vt_interp_run(it, in, out, &e) != VT_OK) fail_msg("run: %s", e.msg);
  vt_interp_free(it);
}

/* ---------- naive reference, written from the op's definition (ir/ops_httm.def) ----------
 * Blocks: frame groups i*T/ntb.., spatial chunks c*Pm/nsb.. of the non-protected positions,
 * tokens listed frame-major; dst = evenly spaced picks floor((j+0.5)*cnt/want) of the block list
 * (with anchor: frame 0's tokens plus picks among the rest), want = round(block * ratio) >= 1;
 * src -> most cosine-similar dst (first on ties). */
typedef struct {
  int64_t N, T, P, prot, nblk;
  int64_t *bs;
  int64_t *bt;
} ref_layout;

static void ref_layout_make(ref_layout *L, int64_t N, const hm_conf *c) {
  L->N = N; L->P = c->P; L->prot = c->prot; L->T = N / c->P;
  int64_t Pm = c->P - c->prot, ns = c->n_s < Pm ? c->n_s : Pm, nt = c->n_t < L->T ? c->n_t : L->T;
  int64_t nsb = (Pm + ns - 1) / ns, ntb = (L->T + nt - 1) / nt;
  L->nblk = nsb * ntb;
  L->bs = calloc((size_t)L->nblk + 1, sizeof *L->bs);
  L->bt = calloc((size_t)N, sizeof *L->bt);
  int64_t pos = 0, b = 0;
  for (int64_t tg = 0; tg < ntb; tg++)
    for (int64_t s = 0; s < nsb; s++) {
      L->bs[b++] = pos;
      for (int64_t f = tg * L->T / ntb; f < (tg + 1) * L->T / ntb; f++)
        for (int64_t p = s * Pm / nsb; p < (s + 1) * Pm / nsb; p++) L->bt[pos++] = f * c->P + c->prot + p;
    }
  L->bs[b] = pos;
}

static void ref_dst(const ref_layout *L, double r, int anchor, int *dst) {
  for (int64_t n = 0; n < L->N; n++) dst[n] = (n % L->P) < L->prot;
  for (int64_t b = 0; b < L->nblk; b++) {
    int64_t cnt = L->bs[b + 1] - L->bs[b];
    int64_t want = r >= 1 ? cnt : llround(cnt * r);
    if (want < 1) want = 1;
    int64_t rest[4096], nr = 0, n0 = 0;
    for (int64_t i = 0; i < cnt; i++) {
      int64_t t = L->bt[L->bs[b] + i];
      if (anchor && t < L->P) { dst[t] = 1; n0++; }
      else rest[nr++] = t;
    }
    int64_t w = want - n0 > nr ? nr : want - n0;
    for (int64_t j = 0; j < w; j++) dst[rest[(int64_t)((j + 0.5) * nr / w)]] = 1;
  }
}

/* grp[n]: dst of n's group, by cosine over D-dim rows x (stride D). */
static void ref_match(const ref_layout *L, const int *dst, const float *x, int64_t D, int64_t *grp) {
  for (int64_t n = 0; n < L->N; n++) grp[n] = n;
  for (int64_t b = 0; b < L->nblk; b++)
    for (int64_t i = L->bs[b]; i < L->bs[b + 1]; i++) {
      int64_t s = L->bt[i];
      if (dst[s]) continue;
      double best = -INFINITY;
      for (int64_t j = L->bs[b]; j < L->bs[b + 1]; j++) {
        int64_t t = L->bt[j];
        if (!dst[t]) continue;
        double xy = 0, xx = 0, yy = 0;
        for (int64_t d = 0; d < D; d++) {
          xy += (double)x[s * D + d] * x[t * D + d];
          xx += (double)x[s * D + d] * x[s * D + d];
          yy += (double)x[t * D + d] * x[t * D + d];
        }
        double cs = xy / (sqrt(xx) * sqrt(yy));
        if (cs > best + 1e-6) { best = cs; grp[s] = t; }
      }
    }
}

static void ref_httm(const vt_tensor *Q, const vt_tensor *K, const vt_tensor *V, const hm_conf *c, double *out) {
  int64_t B = Q->dims[0], H = Q->dims[1], N = Q->dims[2], Dh = Q->dims[3], Dv = V->dims[3];
  ref_layout L;
  ref_layout_make(&L, N, c);
  int *dq = calloc((size_t)N, sizeof *dq), *dk = calloc((size_t)N, sizeof *dk);
  double rq = c->shared ? (double)c->kv_keep : (c->q_keep >= 1 ? 1.0 : (double)c->q_keep - (double)c->outlier);
  ref_dst(&L, rq, (int)c->anchor, dq);
  ref_dst(&L, c->kv_keep, (int)c->anchor, dk);
  int64_t *qg = calloc((size_t)(B * H * N), sizeof *qg), *kg = calloc((size_t)(B * H * N), sizeof *kg);
  double *dev = calloc((size_t)(B * H * N), sizeof *dev);
  int *outl = calloc((size_t)(B * H * N), sizeof *outl);
  const float *q = Q->data, *k = K->data, *v = V->data;
  float *cat = calloc((size_t)(N * H * Dh), sizeof *cat);
  for (int64_t b = 0; b < B; b++) {
    if (c->shared) {
      for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++) {
          const float *r = k + ((b * H + h) * N + n) * Dh;
          double s = 0;
          for (int64_t d = 0; d < Dh; d++) s += (double)r[d] * r[d];
          for (int64_t d = 0; d < Dh; d++) cat[(n * H + h) * Dh + d] = (float)(r[d] / sqrt(s));
        }
      ref_match(&L, dk, cat, H * Dh, kg + b * H * N);
      for (int64_t h = 0; h < H; h++) {
        memmove(kg + (b * H + h) * N, kg + b * H * N, (size_t)N * sizeof *kg);
        memmove(qg + (b * H + h) * N, kg + b * H * N, (size_t)N * sizeof *kg);
      }
      continue;
    }
    for (int64_t h = 0; h < H; h++) {
      int64_t bh = b * H + h;
      ref_match(&L, dq, q + bh * N * Dh, Dh, qg + bh * N);
      ref_match(&L, dk, k + bh * N * Dh, Dh, kg + bh * N);
      for (int64_t n = 0; n < N; n++) {
        int64_t t = qg[bh * N + n], cnt = 0;
        double m[64] = {0};
        for (int64_t u = 0; u < N; u++)
          if (qg[bh * N + u] == t) { cnt++; for (int64_t d = 0; d < Dh; d++) m[d] += q[(bh * N + u) * Dh + d]; }
        double s = 0;
        for (int64_t d = 0; d < Dh; d++) s += pow(q[(bh * N + n) * Dh + d] - m[d] / cnt, 2);
        dev[bh * N + n] = cnt > 1 ? sqrt(s) : 0;
      }
    }
    /* global top outliers over heads: repeatedly take the largest positive deviation */
    int64_t want = llround((double)c->outlier * (double)(H * (N - L.T * c->prot)));
    for (int64_t w = 0; c->q_keep < 1 && w < want; w++) {
      int64_t bi = -1;
      for (int64_t i = 0; i < H * N; i++)
        if (!outl[b * H * N + i] && dev[b * H * N + i] > 0 && (bi < 0 || dev[b * H * N + i] > dev[b * H * N + bi])) bi = i;
      if (bi < 0) break;
      outl[b * H * N + bi] = 1;
    }
  }
  double scale = 1.0 / sqrt((double)Dh);
  double *qm = calloc((size_t)Dh, sizeof *qm), *kmean = calloc((size_t)(N * Dh), sizeof *kmean);
  double *vmean = calloc((size_t)(N * Dv), sizeof *vmean), *sz = calloc((size_t)N, sizeof *sz), *sc = calloc((size_t)N, sizeof *sc);
  for (int64_t bh = 0; bh < B * H; bh++) {
    /* merged keys, indexed by their dst token */
    memset(sz, 0, (size_t)N * sizeof *sz);
    memset(kmean, 0, (size_t)(N * Dh) * sizeof *kmean);
    memset(vmean, 0, (size_t)(N * Dv) * sizeof *vmean);
    for (int64_t u = 0; u < N; u++) {
      int64_t t = kg[bh * N + u];
      sz[t] += 1;
      for (int64_t d = 0; d < Dh; d++) kmean[t * Dh + d] += k[(bh * N + u) * Dh + d];
      for (int64_t d = 0; d < Dv; d++) vmean[t * Dv + d] += v[(bh * N + u) * Dv + d];
    }
    for (int64_t n = 0; n < N; n++) {
      /* this token's query: itself if an outlier, else the mean of its group's non-outliers */
      int64_t t = qg[bh * N + n], cnt = 0;
      memset(qm, 0, (size_t)Dh * sizeof *qm);
      for (int64_t u = 0; u < N; u++) {
        bool member = outl[bh * N + n] ? u == n : (qg[bh * N + u] == t && !outl[bh * N + u]);
        if (member) { cnt++; for (int64_t d = 0; d < Dh; d++) qm[d] += q[(bh * N + u) * Dh + d]; }
      }
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < N; j++) {
        if (sz[j] == 0) continue;
        double s = 0;
        for (int64_t d = 0; d < Dh; d++) s += qm[d] / cnt * kmean[j * Dh + d] / sz[j];
        sc[j] = s * scale + (c->prop ? log(sz[j]) : 0);
        if (sc[j] > mx) mx = sc[j];
      }
      for (int64_t j = 0; j < N; j++) if (sz[j] > 0) { sc[j] = exp(sc[j] - mx); sum += sc[j]; }
      for (int64_t d = 0; d < Dv; d++) {
        double acc = 0;
        for (int64_t j = 0; j < N; j++) if (sz[j] > 0) acc += sc[j] * vmean[j * Dv + d] / sz[j];
        out[(bh * N + n) * Dv + d] = acc / sum;
      }
    }
  }
  free(qm); free(kmean); free(vmean); free(sz); free(sc); free(cat);
  free(qg); free(kg); free(dev); free(outl); free(dq); free(dk); free(L.bs); free(L.bt);
}

static double rel_l2_ref(const vt_tensor *got, const double *ref) {
  double num = 0, den = 0;
  const float *x = got->data;
  for (int64_t i = 0; i < vt_tensor_numel(got); i++) { num += pow(x[i] - ref[i], 2); den += ref[i] * ref[i]; }
  return sqrt(num / den);
}

static void check_against_ref(const hm_conf *c, int64_t B, int64_t H, int64_t T, int64_t Dh, int64_t Dv) {
  int64_t N = T * c->P, qd[4] = {B, H, N, Dh}, vd[4] = {B, H, N, Dv};
  vt_tensor in[3], out = {0};
  fill(&in[0], 4, qd); fill(&in[1], 4, qd); fill(&in[2], 4, vd);
  vt_graph *g = one_node(qd, vd, c);
  run_graph(g, in, &out);
  double *ref = calloc((size_t)vt_tensor_numel(&out), sizeof *ref);
  ref_httm(&in[0], &in[1], &in[2], c, ref);
  double r = rel_l2_ref(&out, ref);
  printf("  ref check q_keep %.2f kv_keep %.2f outlier %.2f n_s %lld n_t %lld P %lld prot %lld anchor %lld shared %lld prop %lld: rel L2 %.2e\n",
         (double)c->q_keep, (double)c->kv_keep, (double)c->outlier, (long long)c->n_s, (long long)c->n_t, (long long)c->P,
         (long long)c->prot, (long long)c->anchor, (long long)c->shared, (long long)c->prop, r);
  if (!(r <= 1e-5)) fail_msg("kernel differs from the naive reference: rel L2 %g", r);
  free(ref);
  for (int i = 0; i < 3; i++) vt_tensor_free(&in[i]);
  vt_tensor_free(&out);
  vt_graph_free(g);
}

static void test_kernel_vs_reference(void **st) {
  (void)st;
  /* odd sizes: P = 7 (2 protected), T = 5, blocks of 3 positions x 2 frames (clipped/balanced) */
  hm_conf c = {0.45f, 0.4f, 0.15f, 3, 2, 7, 2, 0, 0, 1};
  check_against_ref(&c, 2, 3, 5, 5, 6);
  c.prop = 0;
  check_against_ref(&c, 1, 2, 5, 5, 3);
  c = (hm_conf){0.3f, 0.5f, 0.1f, 4, 3, 9, 1, 1, 0, 1};   /* anchoring */
  check_against_ref(&c, 1, 3, 7, 4, 4);
  c = (hm_conf){0.2f, 0.35f, 0.1f, 128, 30, 6, 0, 0, 1, 1};   /* shared matching, n_s/n_t clipped */
  check_against_ref(&c, 2, 2, 4, 3, 5);
  c = (hm_conf){1.0f, 0.25f, 0.1f, 2, 2, 5, 1, 0, 0, 1};   /* keys only */
  check_against_ref(&c, 1, 2, 6, 4, 4);
  c = (hm_conf){0.5f, 1.0f, 0.2f, 5, 1, 11, 3, 0, 0, 0};   /* queries only, purely spatial blocks */
  check_against_ref(&c, 1, 4, 3, 6, 2);
}

/* keep 1 everywhere: equals Attention (float rounding only) */
static void test_keep1_equals_attention(void **st) {
  (void)st;
  int64_t qd[4] = {2, 3, 35, 8}, vd[4] = {2, 3, 35, 5};
  vt_tensor in[3], a = {0}, b = {0};
  fill(&in[0], 4, qd); fill(&in[1], 4, qd); fill(&in[2], 4, vd);
  hm_conf c = {1.0f, 1.0f, 0.0f, 3, 2, 7, 2, 1, 0, 1};
  vt_graph *g1 = one_node(qd, vd, NULL), *g2 = one_node(qd, vd, &c);
  run_graph(g1, in, &a);
  run_graph(g2, in, &b);
  assert_true(rel_l2(&a, &b) <= 1e-6);
  for (int i = 0; i < 3; i++) vt_tensor_free(&in[i]);
  vt_tensor_free(&a); vt_tensor_free(&b);
  vt_graph_free(g1); vt_graph_free(g2);
}

/* A static clip: every frame repeats frame 0 (random, so only exact duplicates have cosine 1).
 * With anchoring, each token merges with its own duplicate; proportional attention then makes
 * the merged attention exact, and every duplicate gets the same output row. */
static void test_duplicates_merge_first(void **st) {
  (void)st;
  int64_t T = 6, P = 8, H = 2, Dh = 6, Dv = 4, N = T * P;
  int64_t qd[4] = {1, H, N, Dh}, vd[4] = {1, H, N, Dv};
  vt_tensor in[3], dense = {0}, got = {0}, noprop = {0};
  fill(&in[0], 4, qd); fill(&in[1], 4, qd); fill(&in[2], 4, vd);
  for (int i = 0; i < 3; i++) {
    int64_t D = i == 2 ? Dv : Dh;
    float *x = in[i].data;
    for (int64_t h = 0; h < H; h++)
      for (int64_t n = P; n < N; n++)
        memcpy(x + (h * N + n) * D, x + (h * N + n % P) * D, (size_t)D * sizeof *x);
  }
  hm_conf c = {0.3f, 0.3f, 0.1f, 3, 6, P, 1, 1, 0, 1};
  vt_graph *g0 = one_node(qd, vd, NULL), *g1 = one_node(qd, vd, &c);
  c.prop = 0;
  vt_graph *g2 = one_node(qd, vd, &c);
  run_graph(g0, in, &dense);
  run_graph(g1, in, &got);
  run_graph(g2, in, &noprop);
  double r = rel_l2(&dense, &got), r2 = rel_l2(&dense, &noprop);
  printf("  static clip: merged vs dense rel L2 %.2e (prop_attn), %.2e (without)\n", r, r2);
  assert_true(r <= 1e-5);
  assert_true(r2 > 1e-3);   /* the size bias matters: merged keys stand for several */
  for (int i = 0; i < 3; i++) vt_tensor_free(&in[i]);
  vt_tensor_free(&dense); vt_tensor_free(&got); vt_tensor_free(&noprop);
  vt_graph_free(g0); vt_graph_free(g1); vt_graph_free(g2);
}

static void test_bad_attributes(void **st) {
  (void)st;
  int64_t qd[4] = {1, 1, 10, 4};
  vt_graph *g = vt_graph_new("");
  vt_dim d[4] = {1, 1, 10, 4};
  int32_t in[3];
  for (int i = 0; i < 3; i++) {
    char nm[4] = {(char)('a' + i), 0};
    in[i] = vt_graph_add_value(g, nm, VT_F32, 4, d);
    vt_graph_add_input(g, in[i]);
  }
  int32_t o = vt_graph_add_value(g, "o", VT_UNDEFINED, -1, NULL);
  int32_t n = vt_graph_add_node(g, "attn", VT_OP_HeadwiseMergedAttention, 3, in, 1, &o);
  vt_graph_add_output(g, o);
  vt_node_add_attr(g, n, "tokens_per_frame", VT_ATTR_INT)->i = 3;   /* 10 tokens: not a multiple */
  vt_error e = {0};
  assert_int_not_equal(vt_graph_infer(g, &e), VT_OK);
  assert_non_null(strstr(e.msg, "multiple of tokens_per_frame"));
  vt_graph_free(g);
  (void)qd;
}

/* ---------- vggt_tiny ---------- */
static const char *zoo_dir(void) {
  const char *d = getenv("VT_ZOO_DIR");
  return d && *d ? d : VT_BINARY_DIR "/zoo-passes";
}

static vt_graph *load(const char *model) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.onnx", zoo_dir(), model);
  struct stat sb;
  if (stat(path, &sb) != 0) fail_msg("zoo model %s missing (gen_zoo.py --set tiny --out %s)", path, zoo_dir());
  vt_error e = {0};
  vt_graph *g = NULL;
  if (vt_onnx_load(path, &g, &e) != VT_OK) fail_msg("%s", e.msg);
  if (vt_graph_prepare(g, NULL, NULL, 0, &e) != VT_OK) fail_msg("%s", e.msg);
  return g;
}

/* model with symbolic dim `sym` pinned to val (sym NULL: nothing pinned) */
static vt_graph *load_pinned(const char *model, const char *sym, int64_t val) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.onnx", zoo_dir(), model);
  vt_error e = {0};
  vt_graph *g = NULL;
  if (vt_onnx_load(path, &g, &e) != VT_OK) fail_msg("%s", e.msg);
  const char *pin[1] = {sym};
  if (vt_graph_prepare(g, sym ? pin : NULL, sym ? &val : NULL, sym ? 1 : 0, &e) != VT_OK) fail_msg("%s", e.msg);
  return g;
}

static void apply(vt_graph *g, const char *spec) {
  vt_error e = {0};
  vt_pipeline pl = {0};
  if (vt_pipeline_parse(spec, &pl, &e) != VT_OK) fail_msg("%s", e.msg);
  FILE *f = fopen("/dev/null", "w");
  vt_pipeline_opts o = {.stats = true, .explain = true, .out = f};
  int rc = vt_pipeline_run(&pl, g, &o, &e);
  fclose(f);
  vt_pipeline_free(&pl);
  if (rc) fail_msg("%s: %s", spec, e.msg);
}

static int count_op(const vt_graph *g, int op) {
  int n = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
  return n;
}

/* Runs vggt_tiny densely and with `spec` on input x; returns cosine, sets *rl2. */
static double vggt_tiny_compare(const char *spec, const vt_tensor *x, double *rl2, int *merged) {
  vt_graph *g0 = load("vggt_tiny"), *g1 = load("vggt_tiny");
  apply(g0, "none");
  apply(g1, spec);
  *merged = count_op(g1, VT_OP_HeadwiseMergedAttention);
  vt_tensor a = {0}, b = {0};
  run_graph(g0, x, &a);
  run_graph(g1, x, &b);
  double c = cosine(&a, &b);
  *rl2 = rel_l2(&a, &b);
  vt_tensor_free(&a); vt_tensor_free(&b);
  vt_graph_free(g0); vt_graph_free(g1);
  return c;
}

/* Thresholds on the cosine of the merged global attentions' outputs to dense (vggt_tiny_branch),
 * each above what the ablation (those outputs zeroed) scores in the same test. */
#define HTTM_MIN_COS_DEFAULTS 0.90
#define HTTM_MIN_COS_SHARED 0.90
#define HTTM_MIN_COS_CLIP 0.95

enum { ABL_NONE, ABL_ZERO, ABL_UNIFORM };

/* vggt_tiny dense and with `spec` on x. Returns the worst cosine, over the merged global
 * attentions, between each one's output and the dense attention's at the same place (what HTTM
 * rewrites, before the projection and the residual); *out_cos gets the final output's cosine.
 * With ablate, the merged attentions' outputs are zeroed (attention deleted, test-only graph
 * edit): the calibration every threshold below must exceed. */
static double vggt_tiny_branch(const char *spec, const vt_tensor *x, int ablate, double *out_cos) {
  vt_graph *g0 = load("vggt_tiny"), *g1 = load("vggt_tiny");
  apply(g0, "none");
  apply(g1, spec);
  int32_t v0[8], v1[8];
  int n = 0;
  for (int32_t i = 0; i < g1->n_nodes && n < 8; i++)
    if (g1->nodes[i].op == VT_OP_HeadwiseMergedAttention) {
      v1[n] = g1->nodes[i].out[0];
      v0[n] = vt_graph_find_value(g0, g1->values[v1[n]].name);   /* the dense Attention's output */
      assert_true(v0[n] >= 0);
      n++;
    }
  assert_int_equal(n, 2);
  int o0[8], o1[8];
  for (int k = 0; k < n; k++) {
    if (ablate == ABL_ZERO) v1[k] = ablate_to_zero(g1, v1[k]);
    if (ablate == ABL_UNIFORM) {
      int32_t ni = -1;
      for (int32_t i = 0; i < g1->n_nodes; i++)
        if (g1->nodes[i].op == VT_OP_HeadwiseMergedAttention && g1->nodes[i].out[0] == v1[k]) ni = i;
      assert_true(ni >= 0);
      v1[k] = ablate_to_mean(g1, v1[k], g1->nodes[ni].in[2], 2);   /* uniform attention: mean of V over the keys */
    }
    o0[k] = probe_output(g0, v0[k]);
    o1[k] = probe_output(g1, v1[k]);
  }
  vt_tensor a[16] = {{0}}, b[16] = {{0}};
  assert_true(g0->n_outputs <= 16 && g1->n_outputs == g0->n_outputs);
  run_graph(g0, x, a);
  run_graph(g1, x, b);
  *out_cos = cosine(&a[0], &b[0]);
  double worst = 1;
  for (int k = 0; k < n; k++) worst = fmin(worst, cosine(&a[o0[k]], &b[o1[k]]));
  for (int32_t o = 0; o < g0->n_outputs; o++) { vt_tensor_free(&a[o]); vt_tensor_free(&b[o]); }
  vt_graph_free(g0);
  vt_graph_free(g1);
  return worst;
}

/* Fidelity of one HTTM setting on x: the merged attentions' outputs keep cosine >= min_branch to
 * dense, the ablation (merged attention zeroed) scores below min_branch on the same measure, and
 * the final output is closer to dense than the ablation's. */
static void httm_fidelity(const char *what, const char *spec, const vt_tensor *x, double min_branch) {
  double out, out_zero, out_unif;
  double br = vggt_tiny_branch(spec, x, ABL_NONE, &out);
  double br_zero = vggt_tiny_branch(spec, x, ABL_ZERO, &out_zero), br_unif = vggt_tiny_branch(spec, x, ABL_UNIFORM, &out_unif);
  printf("  vggt_tiny %s (%s): attention outputs cosine %.6f (threshold %.2f; ablations: zeroed %.6f, uniform "
         "attention %.6f); final output cosine %.6f (ablations: zeroed %.6f, uniform %.6f)\n", what, spec, br, min_branch,
         br_zero, br_unif, out, out_zero, out_unif);
  if (!(br_zero < min_branch && br_unif < min_branch))
    fail_msg("%s: an ablation scores >= the threshold %.2f (zeroed %.6f, uniform %.6f)", what, min_branch, br_zero, br_unif);
  if (!(br >= min_branch)) fail_msg("%s: attention outputs cosine %.6f < %.2f", what, br, min_branch);
  if (!(out > out_zero && out > out_unif))
    fail_msg("%s: final output cosine %.6f not above the ablations' (%.6f, %.6f)", what, out, out_zero, out_unif);
}

static void test_vggt_tiny(void **st) {
  (void)st;
  char path[1024];
  snprintf(path, sizeof path, "%s/vggt_tiny.in.images.npy", zoo_dir());
  vt_tensor x = {0};
  vt_error e = {0};
  if (vt_npy_read(path, &x, &e) != VT_OK) fail_msg("%s", e.msg);
  double rl2;
  int merged;
  double c = vggt_tiny_compare("httm:q_keep=1.0,kv_keep=1.0", &x, &rl2, &merged);
  printf("  vggt_tiny keep 1: %d global attentions merged, cosine %.8f rel L2 %.2e\n", merged, c, rl2);
  assert_int_equal(merged, 2);
  assert_true(rl2 <= 1e-5);
  httm_fidelity("defaults", "httm", &x, HTTM_MIN_COS_DEFAULTS);
  httm_fidelity("shared (FastVGGT-style)", "httm:shared=1", &x, HTTM_MIN_COS_SHARED);
  vt_tensor_free(&x);
  /* FLOPs with T pinned: the merged global attention costs less */
  double f[2];
  for (int i = 0; i < 2; i++) {
    vt_graph *g = load_pinned("vggt_tiny", "T", 64);
    apply(g, i ? "httm" : "none");   /* T pinned: frames from the graph (test_pinned_frames) */
    if (i) assert_int_equal(count_op(g, VT_OP_HeadwiseMergedAttention), 2);
    bool part = true;
    f[i] = vt_graph_flops(g, &part);
    assert_false(part);
    vt_graph_free(g);
  }
  printf("  vggt_tiny T=64 FLOPs: dense %.4g, httm %.4g\n", f[0], f[1]);
  assert_true(f[1] < 0.9 * f[0]);
}

/* T pinned (a constant token count): blocks.c finds P from the Reshape [B*T, P, C] -> [B, T*P, C]
 * above the global attention (P also being the frame attention's token count), so plain
 * `httm` merges the same nodes with the same attributes and outputs as with T symbolic. Models
 * without frames (ViT, windowed ViTDet-style vitstream, DiT) stay unmerged when pinned. */
static void test_pinned_frames(void **st) {
  (void)st;
  char path[1024];
  snprintf(path, sizeof path, "%s/vggt_tiny.in.images.npy", zoo_dir());
  vt_tensor x = {0}, a = {0}, b = {0};
  vt_error e = {0};
  if (vt_npy_read(path, &x, &e) != VT_OK) fail_msg("%s", e.msg);
  vt_graph *gs = load("vggt_tiny"), *gp = load_pinned("vggt_tiny", "T", x.dims[1]);
  apply(gs, "httm");
  apply(gp, "httm");
  assert_int_equal(count_op(gp, VT_OP_HeadwiseMergedAttention), 2);
  for (int32_t i = 0; i < gp->n_nodes; i++)
    if (gp->nodes[i].op == VT_OP_HeadwiseMergedAttention)
      assert_int_equal(vt_attr_int(&gp->nodes[i], "tokens_per_frame", 0), 9);   /* 2x2 patches + 5 */
  run_graph(gs, &x, &a);
  run_graph(gp, &x, &b);
  double r = rel_l2(&a, &b);
  printf("  vggt_tiny T pinned to %lld: 2 merged, tokens_per_frame 9, rel L2 to symbolic T %.2e\n", (long long)x.dims[1], r);
  assert_true(r <= 1e-6);
  /* an explicit tokens_per_frame that disagrees with the graph does not override it */
  vt_graph *g2 = load_pinned("vggt_tiny", "T", 8);
  apply(g2, "httm:tokens_per_frame=4");
  for (int32_t i = 0; i < g2->n_nodes; i++)
    if (g2->nodes[i].op == VT_OP_HeadwiseMergedAttention) assert_int_equal(vt_attr_int(&g2->nodes[i], "tokens_per_frame", 0), 9);
  vt_graph_free(g2);
  vt_tensor_free(&x); vt_tensor_free(&a); vt_tensor_free(&b);
  vt_graph_free(gs); vt_graph_free(gp);
  struct { const char *model, *sym; int64_t val; } neg[] = {
      {"vit_tiny_op17", NULL, 0}, {"vitstream_tiny", "T", 2}, {"dit_tiny", "batch", 2}};
  for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++) {
    vt_graph *g = load_pinned(neg[i].model, neg[i].sym, neg[i].val);
    apply(g, "httm");
    assert_int_equal(count_op(g, VT_OP_HeadwiseMergedAttention), 0);
    vt_graph_free(g);
  }
}

/* Real frames: a clip from scripts/make_clips.py, average-pooled 8x8 to 28x28 (vggt_tiny's
 * input), T = 16. Under ctest the fixture httm_clip_generate makes it and VT_HTTM_CLIP_DIR names
 * its folder: missing there fails. Run by hand without VT_HTTM_CLIP_DIR, the test reads
 * data/clips/ and skips (exit 77) when the clip has not been made. */
static void test_vggt_tiny_real_clip(void **st) {
  (void)st;
  const char *dir = getenv("VT_HTTM_CLIP_DIR");
  bool from_fixture = dir && *dir;
  char path[1024];
  snprintf(path, sizeof path, "%s/cockatoo_224_t16.npy", from_fixture ? dir : VT_SOURCE_DIR "/data/clips");
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (from_fixture) fail_msg("%s missing: the fixture httm_clip_generate should have made it", path);
    vt_skip("%s missing (run /usr/bin/python3 scripts/make_clips.py, or ctest -R test_httm)", path);
  }
  vt_tensor clip = {0}, x = {0};
  vt_error e = {0};
  if (vt_npy_read(path, &clip, &e) != VT_OK) fail_msg("%s", e.msg);
  assert_true(clip.rank == 4 && clip.dims[1] == 3 && clip.dims[2] == 224 && clip.dims[3] == 224);
  int64_t T = clip.dims[0], dims[5] = {1, T, 3, 28, 28};
  assert_int_equal(vt_tensor_alloc(&x, VT_F32, 5, dims, &e), VT_OK);
  const float *s = clip.data;
  float *d = x.data;
  for (int64_t t = 0; t < T * 3; t++)
    for (int64_t i = 0; i < 28; i++)
      for (int64_t j = 0; j < 28; j++) {
        double acc = 0;
        for (int64_t a = 0; a < 8; a++)
          for (int64_t b = 0; b < 8; b++) acc += s[(t * 224 + i * 8 + a) * 224 + j * 8 + b];
        d[(t * 28 + i) * 28 + j] = (float)(acc / 64);
      }
  double rl2;
  int merged;
  printf("  real clip T=%lld:\n", (long long)T);
  httm_fidelity("real clip, defaults", "httm", &x, HTTM_MIN_COS_CLIP);
  vggt_tiny_compare("httm:q_keep=1.0,kv_keep=1.0", &x, &rl2, &merged);
  assert_true(rl2 <= 1e-5);
  vt_tensor_free(&clip);
  vt_tensor_free(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernel_vs_reference), cmocka_unit_test(test_keep1_equals_attention),
      cmocka_unit_test(test_duplicates_merge_first), cmocka_unit_test(test_bad_attributes),
      cmocka_unit_test(test_vggt_tiny), cmocka_unit_test(test_pinned_frames),
      cmocka_unit_test(test_vggt_tiny_real_clip),
  };
  return vt_group_result(cmocka_run_group_tests(tests, NULL, NULL));
}

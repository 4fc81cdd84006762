/* test_passes.c — the pass manager and fuse-attention: the ai.vtopt.Attention kernel against a
 * double-precision reference (masks, causal, GQA, key bias); fusion of hand-built attention
 * cores (pre-scaled q, transposed K, rank 3) with interpreter equality; the decomposed
 * relative-position bias (kernel equal to its materialised mask, shape errors, the SAM/ViTDet core
 * fused with bias_rows/bias_cols or, when it cannot be, a mask); --explain for broken
 * patterns; the exported attention ops (ONNX Attention, com.microsoft.Attention /
 * MultiHeadAttention) fused with interpreter equality, left alone with a reason, or rejected;
 * pipeline parser errors; and every tiny zoo model: fused outputs equal unfused ones
 * (rel L2 <= 1e-5) with one Attention node per attention layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend.h"
#include "passes.h"
#include "runtime.h"
#include "test_metrics.h"

/* ---------- helpers ---------- */
static uint64_t rng = 88172645463325252ull;
static float frand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(vt_tensor *t, vt_dtype dt, int rank, const int64_t *dims) {
  memset(t, 0, sizeof *t);
  vt_error e = {0};
  assert_int_equal(vt_tensor_alloc(t, dt, rank, dims, &e), VT_OK);
  if (dt == VT_F32)
    for (int64_t i = 0; i < vt_tensor_numel(t); i++) ((float *)t->data)[i] = frand();
}


static int count_op(const vt_graph *g, int op) {
  int n = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
  return n;
}

static void run_graph(const vt_graph *g, const vt_tensor *in, vt_tensor *out) {
  vt_error e = {0};
  vt_interp *it = vt_interp_new(g, 2, &e);
  if (!it) fail_msg("interp: %s", e.msg);
  if (vt_interp_run(it, in, out, &e) != VT_OK) fail_msg("run: %s", e.msg);
  vt_interp_free(it);
}

/* in[i] = random contents for graph input i, of its dtype and dims (f32 in [-1, 1); others zero). */
static void fill_inputs(const vt_graph *g, vt_tensor *in) {
  for (int i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    int64_t d[VT_MAX_RANK];
    for (int k = 0; k < v->rank; k++) d[k] = v->dims[k];
    fill(&in[i], v->dtype, v->rank, d);
  }
}

/* Runs pipeline spec on g (NULL: the empty pipeline, canonicalisation only) with --explain and
 * --stats; returns what they printed (the caller frees it). An error fails the test, named by what. */
static char *run_explained(vt_graph *g, const char *spec, const char *what) {
  vt_pipeline pl = {0};
  vt_error e = {0};
  if (spec) assert_int_equal(vt_pipeline_parse(spec, &pl, &e), VT_OK);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  vt_pipeline_opts o = {.explain = true, .stats = true, .out = f};
  int rc = vt_pipeline_run(&pl, g, &o, &e);
  fclose(f);
  vt_pipeline_free(&pl);
  if (rc) fail_msg("%s: %s", what, e.msg);
  return buf;
}

static int32_t add_input(vt_graph *g, const char *name, int rank, const int64_t *dims) {
  vt_dim d[VT_MAX_RANK];
  for (int i = 0; i < rank; i++) d[i] = dims[i];
  int32_t v = vt_graph_add_value(g, name, VT_F32, rank, d);
  vt_graph_add_input(g, v);
  return v;
}

static int32_t add_scalar(vt_graph *g, const char *name, float x) {
  float *p = vt_arena_alloc(&g->arena, sizeof *p);
  *p = x;
  vt_tensor t = {.dtype = VT_F32, .rank = 0, .data = p};
  return vt_graph_add_const(g, name, &t);
}

static int32_t node1(vt_graph *g, int op, const char *name, int n_in, const int32_t *in) {
  int32_t v = vt_graph_add_value(g, name, VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, name, op, n_in, in, 1, &v);
  return v;
}

static void set_ints(vt_graph *g, int32_t v, const char *attr, int n, const int64_t *vals) {
  vt_attr *a = vt_node_add_attr(g, g->values[v].producer, attr, VT_ATTR_INTS);
  a->ints = vt_arena_alloc(&g->arena, (size_t)n * sizeof(int64_t));
  a->n = n;
  memcpy(a->ints, vals, (size_t)n * sizeof(int64_t));
}

static void prepare(vt_graph *g) {
  vt_error e = {0};
  if (vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK) fail_msg("prepare: %s", e.msg);
}

/* ---------- the Attention kernel against a double reference ---------- */
static void attention_ref(const vt_tensor *q, const vt_tensor *k, const vt_tensor *v, const vt_tensor *mask,
                          const vt_tensor *kb, double scale, int causal, double *out) {
  int64_t B = q->dims[0], H = q->dims[1], Nq = q->dims[2], D = q->dims[3];
  int64_t Hk = k->dims[1], Nk = k->dims[2], Dv = v->dims[3];
  const float *Q = q->data, *K = k->data, *V = v->data;
  double *s = malloc((size_t)Nk * sizeof *s);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      int64_t hk = h / (H / Hk);
      for (int64_t i = 0; i < Nq; i++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < Nk; j++) {
          double acc = 0;
          for (int64_t d = 0; d < D; d++)
            acc += (double)Q[((b * H + h) * Nq + i) * D + d] * K[((b * Hk + hk) * Nk + j) * D + d];
          acc *= scale;
          if (mask) {   /* mask [1,H,Nq,Nk] in this test */
            acc += ((const float *)mask->data)[(h * Nq + i) * Nk + j];
          }
          if (kb) acc += ((const float *)kb->data)[(b * kb->dims[1] + (kb->dims[1] == 1 ? 0 : h)) * Nk + j];
          if (causal && j > i + (Nk - Nq)) acc = -INFINITY;
          s[j] = acc;
          if (acc > mx) mx = acc;
        }
        double sum = 0;
        for (int64_t j = 0; j < Nk; j++) sum += s[j] = exp(s[j] - mx);
        for (int64_t d = 0; d < Dv; d++) {
          double o = 0;
          for (int64_t j = 0; j < Nk; j++) o += s[j] / sum * V[((b * Hk + hk) * Nk + j) * Dv + d];
          out[((b * H + h) * Nq + i) * Dv + d] = o;
        }
      }
    }
  free(s);
}

static void check_kernel(int64_t B, int64_t H, int64_t Hk, int64_t Nq, int64_t Nk, int64_t D, int64_t Dv,
                         bool with_mask, bool with_kb, int causal, float scale) {
  vt_graph *g = vt_graph_new("attn.onnx");
  int64_t qd[4] = {B, H, Nq, D}, kd[4] = {B, Hk, Nk, D}, vd[4] = {B, Hk, Nk, Dv}, md[4] = {1, H, Nq, Nk},
          bd[3] = {B, 1, Nk};
  int32_t in[5] = {add_input(g, "q", 4, qd), add_input(g, "k", 4, kd), add_input(g, "v", 4, vd), -1, -1};
  if (with_mask) in[3] = add_input(g, "mask", 4, md);
  if (with_kb) in[4] = add_input(g, "kb", 3, bd);
  int n_in = with_kb ? 5 : with_mask ? 4 : 3;
  int32_t o = node1(g, VT_OP_Attention, "att", n_in, in);
  vt_graph_add_output(g, o);
  vt_attr *a = vt_node_add_attr(g, g->values[o].producer, "scale", VT_ATTR_FLOAT);
  a->f = scale;
  if (causal) vt_node_add_attr(g, g->values[o].producer, "causal", VT_ATTR_INT)->i = 1;
  prepare(g);
  vt_tensor t[5] = {0};
  fill(&t[0], VT_F32, 4, qd);
  fill(&t[1], VT_F32, 4, kd);
  fill(&t[2], VT_F32, 4, vd);
  int ni = 3;
  if (with_mask) fill(&t[ni++], VT_F32, 4, md);
  if (with_kb) fill(&t[ni++], VT_F32, 3, bd);
  vt_tensor out = {0};
  run_graph(g, t, &out);
  double *ref = malloc((size_t)vt_tensor_numel(&out) * sizeof *ref);
  attention_ref(&t[0], &t[1], &t[2], with_mask ? &t[3] : NULL, with_kb ? &t[ni - 1] : NULL,
                scale != 0.0f ? scale : 1.0 / sqrt((double)D), causal, ref);
  assert_int_equal(out.rank, 4);
  assert_int_equal(out.dims[3], Dv);
  double num = 0, den = 0;
  for (int64_t i = 0; i < vt_tensor_numel(&out); i++) {
    double d = ((float *)out.data)[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  assert_true(sqrt(num / den) < 1e-6);
  free(ref);
  for (int i = 0; i < ni; i++) vt_tensor_free(&t[i]);
  vt_tensor_free(&out);
  vt_graph_free(g);
}

static void test_attention_kernel(void **st) {
  (void)st;
  check_kernel(2, 4, 4, 5, 7, 8, 6, false, false, 0, 0.0f);     /* default scale */
  check_kernel(1, 4, 2, 6, 6, 16, 16, true, false, 0, 0.3f);    /* GQA + mask */
  check_kernel(2, 3, 1, 3, 9, 4, 5, false, true, 1, 0.5f);      /* MQA + key bias + causal, Nk > Nq */
  check_kernel(1, 2, 2, 33, 33, 8, 8, true, true, 1, 0.125f);   /* all of it */
}

/* bool keep-mask: row 0 sees keys 0 and 2, row 1 sees none (zero output) */
static void test_attention_bool_mask(void **st) {
  (void)st;
  vt_graph *g = vt_graph_new("bmask.onnx");
  int64_t qd[4] = {1, 1, 2, 2}, kd[4] = {1, 1, 3, 2}, md[4] = {1, 1, 2, 3};
  int32_t in[4] = {add_input(g, "q", 4, qd), add_input(g, "k", 4, kd), add_input(g, "v", 4, kd), -1};
  vt_dim mdd[4] = {1, 1, 2, 3};
  in[3] = vt_graph_add_value(g, "mask", VT_BOOL, 4, mdd);
  vt_graph_add_input(g, in[3]);
  int32_t o = node1(g, VT_OP_Attention, "att", 4, in);
  vt_graph_add_output(g, o);
  prepare(g);
  vt_tensor t[4];
  fill(&t[0], VT_F32, 4, qd);
  fill(&t[1], VT_F32, 4, kd);
  fill(&t[2], VT_F32, 4, kd);
  fill(&t[3], VT_BOOL, 4, md);
  const uint8_t keep[6] = {1, 0, 1, 0, 0, 0};
  memcpy(t[3].data, keep, 6);
  vt_tensor out = {0};
  run_graph(g, t, &out);
  const float *Q = t[0].data, *K = t[1].data, *V = t[2].data, *O = out.data;
  double s0 = (Q[0] * K[0] + Q[1] * K[1]) / sqrt(2.0), s2 = (Q[0] * K[4] + Q[1] * K[5]) / sqrt(2.0);
  double mx = s0 > s2 ? s0 : s2, e0 = exp(s0 - mx), e2 = exp(s2 - mx);
  for (int d = 0; d < 2; d++) {
    assert_float_equal(O[d], (e0 * V[d] + e2 * V[4 + d]) / (e0 + e2), 1e-6);
    assert_float_equal(O[2 + d], 0.0, 0.0);
  }
  for (int i = 0; i < 4; i++) vt_tensor_free(&t[i]);
  vt_tensor_free(&out);
  vt_graph_free(g);
}

static void test_attention_infer_errors(void **st) {
  (void)st;
  vt_graph *g = vt_graph_new("bad.onnx");
  int64_t qd[4] = {1, 3, 4, 8}, kd[4] = {1, 2, 4, 8};
  int32_t in[3] = {add_input(g, "q", 4, qd), add_input(g, "k", 4, kd), add_input(g, "v", 4, kd)};
  node1(g, VT_OP_Attention, "att", 3, in);
  vt_error e = {0};
  assert_int_not_equal(vt_graph_infer(g, &e), VT_OK);
  assert_non_null(strstr(e.msg, "not a multiple"));
  vt_graph_free(g);
}

/* ---------- the decomposed relative-position bias (bias_rows, bias_cols) ---------- */
/* Attention with bias_rows [rd] and bias_cols [cd] (leading dims broadcast over [B,H,Nq]) against
 * Attention with the [B,H,Nq,Nk] mask they stand for, built here as float(cols + rows), on the
 * same q, k, v: equal bit for bit (the kernel adds rows[j / kw] + cols[j % kw] where the mask
 * Add put the same sum). extra: 1 adds a [1,H,Nq,Nk] mask and a key bias to both (the mask and
 * the decomposed bias are then summed in another order: rel L2 <= 1e-6), 2 makes both causal. */
static void check_relpos_kernel(int64_t B, int64_t H, int64_t Nq, int64_t kh, int64_t kw, int64_t D, int rr,
                                const int64_t *rd, int rc, const int64_t *cd, int extra) {
  int64_t Nk = kh * kw;
  vt_graph *g = vt_graph_new("relpos.onnx");
  int64_t qd[4] = {B, H, Nq, D}, kd[4] = {B, H, Nk, D}, md[4] = {B, H, Nq, Nk}, m1[4] = {1, H, Nq, Nk}, bd[3] = {B, 1, Nk};
  int32_t q = add_input(g, "q", 4, qd), k = add_input(g, "k", 4, kd), v = add_input(g, "v", 4, kd);
  int32_t rows = add_input(g, "rows", rr, rd), cols = add_input(g, "cols", rc, cd), full = add_input(g, "full", 4, md);
  int32_t m = extra == 1 ? add_input(g, "m", 4, m1) : -1, kb = extra == 1 ? add_input(g, "kb", 3, bd) : -1;
  int32_t y1 = node1(g, VT_OP_Attention, "att_rel", 7, (int32_t[]){q, k, v, m, kb, rows, cols});
  int32_t y2 = node1(g, VT_OP_Attention, "att_mask", 5, (int32_t[]){q, k, v, full, kb});
  for (int i = 0; i < 2; i++) {
    int32_t nd = g->values[i ? y2 : y1].producer;
    vt_node_add_attr(g, nd, "scale", VT_ATTR_FLOAT)->f = 0.4f;
    if (extra == 2) vt_node_add_attr(g, nd, "causal", VT_ATTR_INT)->i = 1;
  }
  vt_graph_add_output(g, y1);
  vt_graph_add_output(g, y2);
  prepare(g);
  vt_tensor t[8] = {0};
  fill(&t[0], VT_F32, 4, qd);
  fill(&t[1], VT_F32, 4, kd);
  fill(&t[2], VT_F32, 4, kd);
  fill(&t[3], VT_F32, rr, rd);
  fill(&t[4], VT_F32, rc, cd);
  fill(&t[5], VT_F32, 4, md);
  int nt = 6;
  if (extra == 1) {
    fill(&t[nt++], VT_F32, 4, m1);
    fill(&t[nt++], VT_F32, 3, bd);
  }
  /* full = cols + rows (+ m when given, so both sides hold the same logits up to rounding) */
  const float *R = t[3].data, *C = t[4].data, *M1 = extra == 1 ? t[6].data : NULL;
  float *F = t[5].data;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Nq; i++)
        for (int64_t j = 0; j < Nk; j++) {
          int64_t ix[4] = {b, h, i, j / kw}, cx[4] = {b, h, i, j % kw}, ro = 0, co = 0;
          for (int d = 0; d < rr; d++) ro = ro * rd[d] + (rd[d] == 1 ? 0 : ix[4 - rr + d]);
          for (int d = 0; d < rc; d++) co = co * cd[d] + (cd[d] == 1 ? 0 : cx[4 - rc + d]);
          float x = C[co] + R[ro];
          if (M1) x = M1[(h * Nq + i) * Nk + j] + x;
          F[((b * H + h) * Nq + i) * Nk + j] = x;
        }
  vt_tensor out[2] = {0};
  run_graph(g, t, out);
  if (extra == 1) {
    double r = rel_l2(&out[1], &out[0]);
    if (!(r <= 1e-6)) fail_msg("decomposed bias + mask + key bias: rel L2 %g against the summed mask", r);
  } else {
    assert_int_equal(vt_tensor_numel(&out[0]), B * H * Nq * D);
    if (memcmp(out[0].data, out[1].data, vt_tensor_nbytes(&out[0])) != 0)
      fail_msg("decomposed bias (kh %lld, kw %lld, Nq %lld) differs from its materialised mask (rel L2 %g)", (long long)kh,
               (long long)kw, (long long)Nq, rel_l2(&out[1], &out[0]));
  }
  for (int i = 0; i < nt; i++) vt_tensor_free(&t[i]);
  vt_tensor_free(&out[0]);
  vt_tensor_free(&out[1]);
  vt_graph_free(g);
}

static void test_attention_relpos(void **st) {
  (void)st;
  /* full [B,H,Nq,k] biases, kh = 3, kw = 5, Nq = 7 != Nk = 15 */
  check_relpos_kernel(2, 3, 7, 3, 5, 4, 4, (int64_t[]){2, 3, 7, 3}, 4, (int64_t[]){2, 3, 7, 5}, 0);
  /* broadcast leading dims: rows shared by the batch, cols by the heads; rank-2 cols [Nq, kw] */
  check_relpos_kernel(2, 3, 7, 3, 5, 4, 4, (int64_t[]){1, 3, 7, 3}, 4, (int64_t[]){2, 1, 7, 5}, 0);
  check_relpos_kernel(1, 2, 9, 4, 3, 8, 3, (int64_t[]){2, 9, 4}, 2, (int64_t[]){9, 3}, 0);
  check_relpos_kernel(1, 2, 20, 5, 3, 4, 4, (int64_t[]){1, 2, 20, 5}, 4, (int64_t[]){1, 2, 20, 3}, 2);   /* causal */
  check_relpos_kernel(2, 2, 6, 2, 7, 4, 4, (int64_t[]){2, 2, 6, 2}, 4, (int64_t[]){2, 2, 6, 7}, 1);     /* + mask, key bias */
}

/* Inconsistent bias_rows / bias_cols: shape inference fails naming the node and the input. */
static void test_attention_relpos_errors(void **st) {
  (void)st;
  static const struct { int64_t rd[4], cd[4]; int rc; const char *want; } bad[] = {
      {{1, 2, 7, 3}, {1, 2, 7, 4}, 2, "span a 3 x 4 key grid, but K has 15 keys"},
      {{1, 2, 6, 3}, {1, 2, 7, 5}, 2, "bias_rows dim 2 is 6; it must be 1 or 7"},
      {{1, 3, 7, 3}, {1, 2, 7, 5}, 2, "bias_rows dim 1 is 3; it must be 1 or 2"},
      {{1, 2, 7, 3}, {0}, 1, "bias_rows and bias_cols (the decomposed relative-position bias) come together; bias_cols is missing"},
  };
  for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
    vt_graph *g = vt_graph_new("bad_relpos.onnx");
    int64_t qd[4] = {1, 2, 7, 4}, kd[4] = {1, 2, 15, 4};
    int32_t in[7] = {add_input(g, "q", 4, qd), add_input(g, "k", 4, kd), add_input(g, "v", 4, kd), -1, -1,
                     add_input(g, "rows", 4, bad[c].rd), bad[c].rc == 2 ? add_input(g, "cols", 4, bad[c].cd) : -1};
    node1(g, VT_OP_Attention, "bad_att", 7, in);
    vt_error e = {0};
    assert_int_not_equal(vt_graph_infer(g, &e), VT_OK);
    if (!strstr(e.msg, "bad_att") || !strstr(e.msg, bad[c].want)) fail_msg("message '%s' lacks the node or '%s'", e.msg, bad[c].want);
    vt_graph_free(g);
  }
}

static int32_t add_i64(vt_graph *g, const char *name, int n, const int64_t *vals) {
  int64_t *p = vt_arena_alloc(&g->arena, (size_t)n * sizeof *p);
  memcpy(p, vals, (size_t)n * sizeof *p);
  vt_tensor t = {.dtype = VT_I64, .rank = 1, .dims = {n}, .data = p};
  return vt_graph_add_const(g, name, &t);
}

/* The SAM/ViTDet core: rank-3 scores [BH, Nq, Nk] (Nq = 2 x 4 query grid, Nk = 3 x 5 key grid)
 * reshaped to [BH,2,4,3,5], + rows [BH,2,4,3,1], + cols (style 0: [BH,2,4,1,5]; style 1: a full
 * [BH,2,4,3,5] bias, which cannot stay decomposed), reshaped back, Softmax, . V. Fused and
 * unfused outputs agree; style 0 keeps bias_rows/bias_cols (no [BH,Nq,Nk] value is left in the
 * graph), style 1 materialises the mask and says why. */
static void run_relpos_core(int style) {
  vt_graph *g = vt_graph_new("relpos_core.onnx");
  vt_graph_set_opset(g, "", 17);
  const int64_t BH = 6, qh = 2, qw = 4, kh = 3, kw = 5, D = 4, Nq = qh * qw, Nk = kh * kw;
  int64_t q3[3] = {BH, Nq, D}, k3[3] = {BH, D, Nk}, v3[3] = {BH, Nk, D}, r5[5] = {BH, qh, qw, kh, 1},
          c5[5] = {BH, qh, qw, style ? kh : 1, kw};
  int32_t q = add_input(g, "q", 3, q3), kt = add_input(g, "kt", 3, k3), v = add_input(g, "v", 3, v3);
  int32_t rows = add_input(g, "rel_h", 5, r5), cols = add_input(g, "rel_w", 5, c5);
  int32_t s = node1(g, VT_OP_MatMul, "qk", 2, (int32_t[]){q, kt});
  s = node1(g, VT_OP_Mul, "scale", 2, (int32_t[]){s, add_scalar(g, "c", 0.5f)});
  s = node1(g, VT_OP_Reshape, "r1", 2, (int32_t[]){s, add_i64(g, "r1_shape", 5, (int64_t[]){BH, qh, qw, kh, kw})});
  s = node1(g, VT_OP_Add, "add_h", 2, (int32_t[]){s, rows});
  s = node1(g, VT_OP_Add, "add_w", 2, (int32_t[]){s, cols});
  s = node1(g, VT_OP_Reshape, "r2", 2, (int32_t[]){s, add_i64(g, "r2_shape", 3, (int64_t[]){BH, Nq, Nk})});
  int32_t p = node1(g, VT_OP_Softmax, "softmax", 1, &s);
  vt_node_add_attr(g, g->values[p].producer, "axis", VT_ATTR_INT)->i = -1;
  int32_t o = node1(g, VT_OP_MatMul, "av", 2, (int32_t[]){p, v});
  vt_graph_add_output(g, o);
  prepare(g);
  vt_tensor in[5] = {0}, ref = {0}, got = {0};
  fill_inputs(g, in);
  run_graph(g, in, &ref);
  char *buf = run_explained(g, "fuse-attention", "pipeline");
  assert_int_equal(count_op(g, VT_OP_Attention), 1);
  const vt_node *a = NULL;
  for (int32_t i = 0; i < g->n_nodes; i++)
    if (g->nodes[i].op == VT_OP_Attention) a = &g->nodes[i];
  bool big = false;   /* a value with Nq x Nk elements per slice (a materialised mask) */
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_out; k++) {
      const vt_value *ov = &g->values[g->nodes[i].out[k]];
      int64_t n = 1;
      for (int32_t d = 0; d < ov->rank; d++) n *= ov->dims[d];
      big |= g->nodes[i].op != VT_OP_Attention && n >= BH * Nq * Nk;
    }
  if (style == 0) {
    assert_int_equal(a->n_in, 7);
    assert_true(a->in[3] < 0 && a->in[4] < 0 && a->in[5] >= 0 && a->in[6] >= 0);
    const vt_value *R = &g->values[a->in[5]], *C = &g->values[a->in[6]];
    assert_int_equal(R->rank, 4);
    assert_int_equal(R->dims[2], Nq);
    assert_int_equal(R->dims[3], kh);
    assert_int_equal(C->dims[3], kw);
    assert_false(big);
    if (!strstr(buf, "relative-position bias kept decomposed") || !strstr(buf, "rule relpos-decomposed        matched 1 of 1"))
      fail_msg("explain/stats lack the decomposed bias:\n%s", buf);
  } else {
    assert_true(a->n_in == 4 && a->in[3] >= 0);
    assert_true(big);
    if (!strstr(buf, "materialised as a mask") || !strstr(buf, "bias 'rel_w' is neither over the key rows") ||
        !strstr(buf, "rule relpos-decomposed        matched 0 of 1"))
      fail_msg("explain/stats lack the materialised mask's reason:\n%s", buf);
  }
  run_graph(g, in, &got);
  double r = rel_l2(&ref, &got);
  if (!(r <= 1e-6)) fail_msg("style %d: fused rel L2 %g", style, r);
  free(buf);
  for (int i = 0; i < 5; i++) vt_tensor_free(&in[i]);
  vt_tensor_free(&ref);
  vt_tensor_free(&got);
  vt_graph_free(g);
}

static void test_fuse_relpos(void **st) {
  (void)st;
  run_relpos_core(0);
  run_relpos_core(1);
}

/* ---------- fusion of hand-built cores ---------- */
/* style 0: q*s' . Transpose(k) -> Mul -> Add mask -> Softmax -> . v   (rank 4, q pre-scaled)
 * style 1: rank 3 [B*H,N,D] with k given as [B*H,D,N] directly (no Transpose), Div scale
 * style 2: like 0 but Softmax on axis -2 (must not fuse: explain says 'softmax')
 * style 3: like 0 but the scores go through Relu (must not fuse: explain says 'scores') */
static vt_graph *build_core(int style, int64_t *qd, int *rank) {
  vt_graph *g = vt_graph_new("core.onnx");
  vt_graph_set_opset(g, "", 17);
  int r = style == 1 ? 3 : 4;
  *rank = r;
  int64_t B = 2, H = 3, N = 5, D = 4;
  int64_t d4[4] = {B, H, N, D}, d3[3] = {B * H, N, D}, k3[3] = {B * H, D, N}, m4[4] = {1, 1, N, N};
  memcpy(qd, r == 4 ? d4 : d3, (size_t)r * sizeof *qd);
  int32_t q = add_input(g, "q", r, r == 4 ? d4 : d3);
  int32_t k = add_input(g, "k", r, r == 4 ? d4 : k3);
  int32_t v = add_input(g, "v", r, r == 4 ? d4 : d3);
  int32_t mask = r == 4 ? add_input(g, "mask", 4, m4) : -1;
  int32_t qs = node1(g, r == 4 ? VT_OP_Mul : VT_OP_Div, "qs", 2, (int32_t[]){q, add_scalar(g, "c0", r == 4 ? 0.7f : 2.0f)});
  int32_t kt = k;
  if (r == 4) {
    kt = node1(g, VT_OP_Transpose, "kt", 1, &k);
    set_ints(g, kt, "perm", 4, (int64_t[]){0, 1, 3, 2});
  }
  int32_t s = node1(g, VT_OP_MatMul, "qk", 2, (int32_t[]){qs, kt});
  s = node1(g, VT_OP_Mul, "scale", 2, (int32_t[]){s, add_scalar(g, "c1", 0.5f)});
  if (mask >= 0) s = node1(g, VT_OP_Add, "addmask", 2, (int32_t[]){s, mask});
  if (style == 3) s = node1(g, VT_OP_Relu, "relu", 1, &s);
  int32_t p = node1(g, VT_OP_Softmax, "softmax", 1, &s);
  vt_node_add_attr(g, g->values[p].producer, "axis", VT_ATTR_INT)->i = style == 2 ? -2 : -1;
  int32_t o = node1(g, VT_OP_MatMul, "av", 2, (int32_t[]){p, v});
  vt_graph_add_output(g, o);
  prepare(g);
  return g;
}

static void run_core(int style, int expect_fused, const char *expect_explain) {
  int64_t qd[4];
  int rank;
  vt_graph *g = build_core(style, qd, &rank);
  vt_tensor in[4] = {0}, ref = {0}, got = {0};
  fill_inputs(g, in);
  run_graph(g, in, &ref);
  char *buf = run_explained(g, "fuse-attention", "pipeline");
  assert_int_equal(count_op(g, VT_OP_Attention), expect_fused);
  assert_int_equal(count_op(g, VT_OP_Softmax), 1 - expect_fused);
  if (expect_explain && !strstr(buf, expect_explain)) fail_msg("explain output lacks '%s':\n%s", expect_explain, buf);
  if (expect_fused) assert_non_null(strstr(buf, "matched 1 of 1 candidates"));
  run_graph(g, in, &got);
  assert_true(rel_l2(&ref, &got) <= 1e-6);
  free(buf);
  for (int i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  vt_tensor_free(&ref);
  vt_tensor_free(&got);
  vt_graph_free(g);
}

static void test_fuse_core(void **st) {
  (void)st;
  run_core(0, 1, NULL);
  run_core(1, 1, NULL);
}

static void test_explain(void **st) {
  (void)st;
  run_core(2, 0, "no match at step 'softmax': axis 2 is not the last axis");
  run_core(3, 0, "no match at step 'scores': Softmax input comes from Relu 'relu'");
}

/* ---------- pattern rules are data: a custom rule through the driver ---------- */
static bool relu_match(const vt_graph *g, int32_t root, void *rec, vt_match_ctx *m) {
  int32_t *r = rec;
  if (vt_match_uses(m, g->nodes[root].out[0]) != 1) return vt_match_fail(m, "uses", "output used %d times", vt_match_uses(m, g->nodes[root].out[0]));
  *r = root;
  return true;
}
static int relu_rewrite(vt_graph *g, int32_t root, void *rec, vt_error *e) {
  (void)e;
  assert_int_equal(*(int32_t *)rec, root);
  g->nodes[root].op = VT_OP_Abs;   /* Relu(x*x) == Abs(x*x): exact for the graph below */
  return VT_OK;
}

static void test_rule_driver(void **st) {
  (void)st;
  vt_graph *g = vt_graph_new("rule.onnx");
  int64_t d[2] = {2, 3};
  int32_t x = add_input(g, "x", 2, d);
  int32_t sq = node1(g, VT_OP_Mul, "sq", 2, (int32_t[]){x, x});
  int32_t r1 = node1(g, VT_OP_Relu, "r1", 1, &sq);
  int32_t r2 = node1(g, VT_OP_Relu, "r2", 1, &r1);
  vt_graph_add_output(g, r2);
  vt_graph_add_output(g, r1);   /* r1 has two uses: no match */
  prepare(g);
  vt_pattern rules[] = {{.name = "relu-to-abs", .root_op = VT_OP_Relu, .match = relu_match, .rewrite = relu_rewrite,
                         .rec_size = sizeof(int32_t)}};
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  vt_pass_stats ps = {.explain = f};
  vt_error e = {0};
  assert_int_equal(vt_apply_patterns(g, rules, 1, &ps, &e), VT_OK);
  fclose(f);
  assert_int_equal(rules[0].candidates, 2);
  assert_int_equal(rules[0].matches, 1);
  assert_string_equal(rules[0].last_step, "uses");
  assert_int_equal(ps.n_rules, 1);
  assert_int_equal(ps.rules[0].matches, 1);
  assert_non_null(strstr(buf, "relu-to-abs: node 'r1' (Relu): no match at step 'uses': output used 2 times"));
  assert_int_equal(count_op(g, VT_OP_Abs), 1);
  assert_int_equal(vt_graph_verify(g, &e), VT_OK);
  free(buf);
  vt_graph_free(g);
}

/* ---------- pipeline parser ---------- */
static void expect_parse_error(const char *spec, const char *needle) {
  vt_pipeline pl;
  vt_error e = {0};
  assert_int_not_equal(vt_pipeline_parse(spec, &pl, &e), VT_OK);
  if (!strstr(e.msg, needle)) fail_msg("'%s': message '%s' lacks '%s'", spec, e.msg, needle);
  assert_int_equal(pl.n, 0);
}

static void test_parser(void **st) {
  (void)st;
  vt_pipeline pl;
  vt_error e = {0};
  assert_int_equal(vt_pipeline_parse("none", &pl, &e), VT_OK);
  assert_int_equal(pl.n, 0);
  assert_int_equal(vt_pipeline_parse("fuse-attention:fold_q_scale=0,fuse-attention+fuse-attention", &pl, &e), VT_OK);
  assert_int_equal(pl.n, 3);
  assert_int_equal(vt_param_int(&pl.steps[0], "fold_q_scale"), 0);
  assert_int_equal(vt_param_int(&pl.steps[1], "fold_q_scale"), 1);
  assert_true(pl.steps[0].v[0].set);
  assert_false(pl.steps[1].v[0].set);
  vt_pipeline_free(&pl);
  expect_parse_error("nosuchpass", "unknown pass 'nosuchpass'; known passes: fuse-attention");
  expect_parse_error("fuse-attention:q_keep=0.2", "unknown parameter 'q_keep'; valid parameters: fold_q_scale (int, default 1)");
  expect_parse_error("fuse-attention:fold_q_scale=yes", "parameter 'fold_q_scale' needs an integer, got 'yes'");
  expect_parse_error("fuse-attention,", "ends with ','");
  expect_parse_error("fuse-attention,,fuse-attention", "empty item");
  expect_parse_error("fold_q_scale=1", "must follow a pass");
  expect_parse_error("fuse-attention+fold_q_scale=1", "must follow a pass");
  expect_parse_error("fuse-attention:oops", "is not KEY=VALUE");
  expect_parse_error("none,fuse-attention", "'none' must be alone");
  /* print-after with an unknown pass */
  vt_graph *g = vt_graph_new("x.onnx");
  vt_pipeline_opts o = {.print_after = "nope", .out = stderr};
  assert_int_not_equal(vt_pipeline_run(NULL, g, &o, &e), VT_OK);
  assert_non_null(strstr(e.msg, "--print-after: unknown pass 'nope'"));
  vt_graph_free(g);
  /* help lists the pass and its parameter */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  vt_passes_help(f);
  fclose(f);
  assert_non_null(strstr(buf, "fuse-attention"));
  assert_non_null(strstr(buf, "fold_q_scale=1 (int)"));
  free(buf);
}

/* ---------- zoo models ---------- */
static const char *zoo_dir(void) {
  const char *d = getenv("VT_ZOO_DIR");
  return d && *d ? d : VT_BINARY_DIR "/zoo-passes";
}

typedef struct { const char *model; int layers; int fused_min; int heads, kv_heads; } zoo_case;
/* layers: attention layers in the generator's config (zoo_*.py CONFIGS); fused_min: what
 * fuse-attention must reach; heads/kv_heads: the Attention node's Q and K head counts (the MHA
 * export's heads are recovered from its [N,B,C] -> [N,B*H,D] reshape; vitstream's windowed
 * attention keeps heads folded into the batch: 1; decoder: GQA read through repeat_kv). */
static const zoo_case zoo_cases[] = {
    {"vit_tiny_op17", 2, 2, 4, 4}, {"vit_tiny_op14", 2, 2, 4, 4}, {"vit_tiny_mha_op14", 2, 2, 4, 4},
    {"vit_tiny_qkv_op16", 2, 2, 4, 4}, {"vggt_tiny", 4, 4, 2, 2}, {"dit_tiny", 2, 2, 4, 4},
    {"vitstream_tiny", 3, 3, 1, 1}, {"decoder_tiny", 2, 2, 4, 2},
};

static void run_zoo(const zoo_case *zc) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.onnx", zoo_dir(), zc->model);
  struct stat sb;
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "zoo model %s missing (generate with gen_zoo.py --set tiny --out %s)\n", path, zoo_dir());
    fail();
  }
  vt_error e = {0};
  vt_graph *g = NULL;
  if (vt_onnx_load(path, &g, &e) != VT_OK) fail_msg("%s", e.msg);
  if (vt_graph_prepare(g, NULL, NULL, 0, &e) != VT_OK) fail_msg("%s", e.msg);
  vt_tensor in[32] = {{0}}, ref[32] = {{0}}, got[32] = {{0}};
  assert_true(g->n_inputs <= 32 && g->n_outputs <= 32);
  for (int i = 0; i < g->n_inputs; i++) {
    snprintf(path, sizeof path, "%s/%s.in.%s.npy", zoo_dir(), zc->model, g->values[g->inputs[i]].name);
    if (vt_npy_read(path, &in[i], &e) != VT_OK) fail_msg("%s", e.msg);
  }
  run_graph(g, in, ref);
  int sm0 = count_op(g, VT_OP_Softmax);
  char *buf = run_explained(g, NULL, zc->model);
  int fused = count_op(g, VT_OP_Attention);
  printf("%-20s attention fused %d / %d layers (softmax %d -> %d)\n%s", zc->model, fused, zc->layers, sm0,
         count_op(g, VT_OP_Softmax), buf);
  assert_true(fused >= zc->fused_min && fused <= zc->layers);
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    if (n->op != VT_OP_Attention) continue;
    assert_int_equal(g->values[n->in[0]].dims[1], zc->heads);
    assert_int_equal(g->values[n->in[1]].dims[1], zc->kv_heads);
  }
  /* every fused attention sits in a recognised block with both residuals; vggt's global
   * attention spans T frames x 9 tokens (camera + 4 register tokens + 2x2 patches), the frame attention
   * does not */
  vt_block *blocks = NULL;
  int32_t nb = 0;
  assert_int_equal(vt_find_blocks(g, &blocks, &nb, NULL, &e), VT_OK);
  assert_int_equal(nb, fused);
  for (int32_t b = 0; b < nb; b++) {
    assert_true(blocks[b].mlp_add >= 0);
    if (b > 0 && strcmp(zc->model, "vggt_tiny") != 0) assert_int_equal(blocks[b].x_in, blocks[b - 1].x_out);
    if (!strcmp(zc->model, "vggt_tiny")) {
      const char *an = g->nodes[blocks[b].attn].name;
      bool global = strstr(an, "global_blocks") != NULL;
      assert_int_equal(blocks[b].tokens_per_frame, global ? 9 : 0);
      if (global) {
        char fb[64];
        assert_string_equal(vt_dim_str(g, blocks[b].frames, fb, sizeof fb), "T");
      }
    }
  }
  free(blocks);
  assert_int_equal(count_op(g, VT_OP_Softmax), sm0 - fused);
  run_graph(g, in, got);
  for (int i = 0; i < g->n_outputs; i++) {
    if (!vt_dtype_is_float(got[i].dtype)) continue;
    double r = rel_l2(&ref[i], &got[i]);
    if (!(r <= 1e-5)) fail_msg("%s output %d: rel L2 %g", zc->model, i, r);
  }
  /* the fused graph survives an ONNX round trip (ai.vtopt domain) with the same outputs */
  snprintf(path, sizeof path, "%s/test_passes_%s.fused.onnx", VT_BINARY_DIR, zc->model);
  if (vt_onnx_save(g, path, &e) != VT_OK) fail_msg("save: %s", e.msg);
  vt_graph *g2 = NULL;
  if (vt_onnx_load(path, &g2, &e) != VT_OK || vt_graph_prepare(g2, NULL, NULL, 0, &e) != VT_OK)
    fail_msg("reload: %s", e.msg);
  remove(path);
  assert_int_equal(count_op(g2, VT_OP_Attention), fused);
  vt_tensor got2[32] = {{0}};
  run_graph(g2, in, got2);
  for (int i = 0; i < g->n_outputs; i++) {
    if (vt_dtype_is_float(got[i].dtype)) assert_true(rel_l2(&got[i], &got2[i]) == 0.0);
    vt_tensor_free(&got2[i]);
  }
  vt_graph_free(g2);
  free(buf);
  for (int i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  for (int i = 0; i < g->n_outputs; i++) { vt_tensor_free(&ref[i]); vt_tensor_free(&got[i]); }
  vt_graph_free(g);
}


/* ---------- the exported attention ops: ONNX Attention, com.microsoft.* ---------- */

/* Fills the graph's inputs (f32 uniform in [-1,1); int32 masks: 1 except every third key of
 * batch 1 and, for a [B] lengths mask, lengths T-1 / 2), runs it, runs fuse-attention, checks the
 * rule's stats line, the node counts and that every output is unchanged (rel L2 <= 1e-5). */
static void fuse_op_graph(vt_graph *g, int op, const char *stats_line, int fused, const char *explain) {
  prepare(g);
  vt_tensor in[8] = {{0}}, ref[4] = {{0}}, got[4] = {{0}};
  fill_inputs(g, in);
  for (int i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    if (v->dtype == VT_I32) {
      int32_t *m = in[i].data;
      int64_t n = vt_tensor_numel(&in[i]), T = v->dims[v->rank - 1];
      for (int64_t j = 0; j < n; j++) m[j] = v->rank == 1 ? (int32_t)(j == 0 ? 5 : 2) : (j >= n / 2 && j % T % 3 == 2) ? 0 : 1;
    } else if (v->dtype == VT_BOOL) {
      /* keep-mask [.., Nq, Nk]: key k of query row q masked when (q + k) % 3 == 1, so every row
       * masks a key but keeps one that top-left causal allows too (q = 1 loses key 0, keeps 1) */
      uint8_t *m = in[i].data;
      int64_t n = vt_tensor_numel(&in[i]), T = v->dims[v->rank - 1], Q = v->rank >= 2 ? v->dims[v->rank - 2] : 1;
      for (int64_t j = 0; j < n; j++) m[j] = (j / T % Q + j % T) % 3 != 1;
    }
  }
  run_graph(g, in, ref);
  for (int i = 0; i < g->n_outputs; i++) {   /* a reference of zeros would make the comparison vacuous */
    double amax = 0;
    for (int64_t j = 0; j < vt_tensor_numel(&ref[i]); j++) amax = fmax(amax, fabs(vt_tensor_get_f64(&ref[i], j)));
    if (!(amax > 0)) fail_msg("%s: output %d of the unfused graph is all zeros (inputs do not exercise it)", g->path, i);
  }
  char *buf = run_explained(g, NULL, "pipeline");
  if (!strstr(buf, stats_line)) fail_msg("stats lack '%s':\n%s", stats_line, buf);
  if (explain && !strstr(buf, explain)) fail_msg("explain lacks '%s':\n%s", explain, buf);
  assert_int_equal(count_op(g, VT_OP_Attention), fused);
  assert_int_equal(count_op(g, op), 1 - fused);
  run_graph(g, in, got);
  for (int i = 0; i < g->n_outputs; i++) {
    double r = rel_l2(&ref[i], &got[i]);
    if (!(r <= 1e-5)) fail_msg("output %d: rel L2 %g after fuse-attention", i, r);
    vt_tensor_free(&ref[i]);
    vt_tensor_free(&got[i]);
  }
  for (int i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  free(buf);
  vt_graph_free(g);
}

static int32_t add_typed_input(vt_graph *g, const char *name, vt_dtype dt, int rank, const int64_t *dims) {
  int32_t v = add_input(g, name, rank, dims);
  g->values[v].dtype = dt;
  return v;
}

/* a node with n_out fresh outputs, all graph outputs */
static int32_t node_n(vt_graph *g, int op, const char *name, int n_in, const int32_t *in, int n_out) {
  int32_t out[4];
  char nm[64];
  for (int i = 0; i < n_out; i++) {
    snprintf(nm, sizeof nm, "%s_out%d", name, i);
    out[i] = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
    vt_graph_add_output(g, out[i]);
  }
  return vt_graph_add_node(g, name, op, n_in, in, n_out, out);
}

static void set_attr_i(vt_graph *g, int32_t node, const char *name, int64_t x) { vt_node_add_attr(g, node, name, VT_ATTR_INT)->i = x; }
static void set_attr_f(vt_graph *g, int32_t node, const char *name, float x) { vt_node_add_attr(g, node, name, VT_ATTR_FLOAT)->f = x; }

static int32_t add_const_f32(vt_graph *g, const char *name, int rank, const int64_t *dims) {
  vt_tensor t = {.dtype = VT_F32, .rank = rank};
  for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
  int64_t n = vt_tensor_numel(&t);
  float *p = vt_arena_alloc(&g->arena, (size_t)n * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = frand();
  t.data = p;
  return vt_graph_add_const(g, name, &t);
}

static void test_fuse_onnx_attention(void **st) {
  (void)st;
  /* 3-D, GQA (9 query heads over 3 KV heads), KV cache, causal self-attention: causal=1 */
  vt_graph *g = vt_graph_new("onnx_att.onnx");
  int32_t in[6] = {add_input(g, "Q", 3, (int64_t[]){2, 4, 72}), add_input(g, "K", 3, (int64_t[]){2, 4, 24}),
                   add_input(g, "V", 3, (int64_t[]){2, 4, 24}), -1, add_input(g, "past_key", 4, (int64_t[]){2, 3, 5, 8}),
                   add_input(g, "past_value", 4, (int64_t[]){2, 3, 5, 8})};
  int32_t n = node_n(g, VT_OP_OnnxAttention, "att", 6, in, 3);
  set_attr_i(g, n, "q_num_heads", 9);
  set_attr_i(g, n, "kv_num_heads", 3);
  set_attr_i(g, n, "is_causal", 1);
  fuse_op_graph(g, VT_OP_OnnxAttention, "rule onnx-attention           matched 1 of 1", 1, NULL);
  /* 4-D, top-left causal with more keys than queries and a bool mask: constant keep mask */
  g = vt_graph_new("onnx_att2.onnx");
  int32_t in2[4] = {add_input(g, "Q", 4, (int64_t[]){1, 2, 3, 8}), add_input(g, "K", 4, (int64_t[]){1, 2, 5, 8}),
                    add_input(g, "V", 4, (int64_t[]){1, 2, 5, 4}), add_typed_input(g, "m", VT_BOOL, 2, (int64_t[]){3, 5})};
  n = node_n(g, VT_OP_OnnxAttention, "att", 4, in2, 1);
  set_attr_i(g, n, "is_causal", 1);
  set_attr_f(g, n, "scale", 0.3f);
  fuse_op_graph(g, VT_OP_OnnxAttention, "rule onnx-attention           matched 1 of 1", 1, NULL);
  /* softcap: ai.vtopt.Attention has none: stays, --explain says why */
  g = vt_graph_new("onnx_att3.onnx");
  int32_t in3[3] = {add_input(g, "Q", 4, (int64_t[]){1, 2, 3, 8}), add_input(g, "K", 4, (int64_t[]){1, 2, 5, 8}),
                    add_input(g, "V", 4, (int64_t[]){1, 2, 5, 8})};
  n = node_n(g, VT_OP_OnnxAttention, "att", 3, in3, 1);
  set_attr_f(g, n, "softcap", 2.0f);
  fuse_op_graph(g, VT_OP_OnnxAttention, "rule onnx-attention           matched 0 of 1",
                0, "no match at step 'softcap'");
}

static void test_fuse_ms_attention(void **st) {
  (void)st;
  /* com.microsoft.Attention: packed projection (constant weights, bias), [B,T] mask, past, causal */
  vt_graph *g = vt_graph_new("ms_att.onnx");
  int32_t in[5] = {add_input(g, "x", 3, (int64_t[]){2, 4, 12}), add_const_f32(g, "w", 2, (int64_t[]){12, 48}),
                   add_const_f32(g, "b", 1, (int64_t[]){48}), add_typed_input(g, "mask", VT_I32, 2, (int64_t[]){2, 7}),
                   add_input(g, "past", 5, (int64_t[]){2, 2, 2, 3, 8})};
  int32_t n = node_n(g, VT_OP_MsAttention, "msa", 5, in, 2);
  set_attr_i(g, n, "num_heads", 2);
  set_attr_i(g, n, "unidirectional", 1);
  fuse_op_graph(g, VT_OP_MsAttention, "rule ms-attention             matched 1 of 1", 1, NULL);
  /* com.microsoft.MultiHeadAttention: cross attention, bias, [B] key lengths, attention_bias */
  g = vt_graph_new("ms_mha.onnx");
  int32_t in2[6] = {add_input(g, "q", 3, (int64_t[]){2, 3, 16}), add_input(g, "k", 3, (int64_t[]){2, 6, 16}),
                    add_input(g, "v", 3, (int64_t[]){2, 6, 8}), add_const_f32(g, "bias", 1, (int64_t[]){40}),
                    add_typed_input(g, "len", VT_I32, 1, (int64_t[]){2}), add_input(g, "ab", 4, (int64_t[]){1, 2, 3, 6})};
  n = node_n(g, VT_OP_MsMultiHeadAttention, "mha", 6, in2, 1);
  set_attr_i(g, n, "num_heads", 2);
  set_attr_f(g, n, "scale", 0.2f);
  fuse_op_graph(g, VT_OP_MsMultiHeadAttention, "rule ms-multihead-attention   matched 1 of 1", 1, NULL);
  /* unidirectional cross attention (query and key counts differ): not fused, with the reason */
  g = vt_graph_new("ms_mha2.onnx");
  int32_t in3[3] = {add_input(g, "q", 3, (int64_t[]){1, 3, 16}), add_input(g, "k", 3, (int64_t[]){1, 6, 16}),
                    add_input(g, "v", 3, (int64_t[]){1, 6, 16})};
  n = node_n(g, VT_OP_MsMultiHeadAttention, "mha", 3, in3, 1);
  set_attr_i(g, n, "num_heads", 2);
  set_attr_i(g, n, "unidirectional", 1);
  fuse_op_graph(g, VT_OP_MsMultiHeadAttention, "rule ms-multihead-attention   matched 0 of 1", 0,
                "no match at step 'causal'");
}

static void test_exported_attention_errors(void **st) {
  (void)st;
  /* attributes the kernels do not implement fail shape inference, naming node and attribute */
  struct { int op; const char *attr; int64_t val; const char *want; } bad[] = {
      {VT_OP_MsAttention, "do_rotary", 1, "do_rotary"},
      {VT_OP_MsAttention, "past_present_share_buffer", 1, "past_present_share_buffer"},
      {VT_OP_OnnxAttention, "qk_matmul_output_mode", 7, "qk_matmul_output_mode"},
      {VT_OP_OnnxAttention, "is_causal", 2, "is_causal"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vt_graph *g = vt_graph_new("bad.onnx");
    int32_t x = add_input(g, "x", 3, (int64_t[]){1, 4, 16});
    int32_t n;
    if (bad[i].op == VT_OP_MsAttention) {
      int32_t w = add_const_f32(g, "w", 2, (int64_t[]){16, 48});
      n = node_n(g, bad[i].op, "bad_node", 2, (int32_t[]){x, w}, 1);
      set_attr_i(g, n, "num_heads", 2);
    } else {
      n = node_n(g, bad[i].op, "bad_node", 3, (int32_t[]){x, x, x}, 1);
      set_attr_i(g, n, "q_num_heads", 2);
      set_attr_i(g, n, "kv_num_heads", 2);
    }
    set_attr_i(g, n, bad[i].attr, bad[i].val);
    vt_error e = {0};
    assert_int_equal(vt_graph_infer(g, &e), VT_ERR_MODEL);
    if (!strstr(e.msg, "bad_node") || !strstr(e.msg, bad[i].want)) fail_msg("message '%s' lacks node or '%s'", e.msg, bad[i].want);
    vt_graph_free(g);
  }
}

static void test_zoo(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof zoo_cases / sizeof zoo_cases[0]; i++) run_zoo(&zoo_cases[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attention_kernel), cmocka_unit_test(test_attention_bool_mask),
      cmocka_unit_test(test_attention_infer_errors),
      cmocka_unit_test(test_attention_relpos),  cmocka_unit_test(test_attention_relpos_errors),
      cmocka_unit_test(test_fuse_relpos),
      cmocka_unit_test(test_fuse_onnx_attention), cmocka_unit_test(test_fuse_ms_attention),
      cmocka_unit_test(test_exported_attention_errors),
      cmocka_unit_test(test_fuse_core),        cmocka_unit_test(test_explain),
      cmocka_unit_test(test_parser),           cmocka_unit_test(test_rule_driver),           cmocka_unit_test(test_zoo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

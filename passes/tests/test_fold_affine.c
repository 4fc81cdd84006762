/* test_fold_affine.c — the fold-affine canonical pass (passes/fold_affine.c): BatchNormalization
 * and per-channel Mul/Add folded into Conv (plain, strided, depthwise with dilation), Gemm
 * (transB, alpha, beta) and MatMul weights; the folded graph's outputs equal the unfolded
 * graph's in the interpreter within 1e-5 relative (max |diff| / max |ref|), --stats counts each
 * fold, and the cases that must not fold (shared producer output, Add after MatMul, a constant
 * that is not per channel, non-constant statistics) keep their nodes with the reason; and the
 * hybrid zoo models (torch exports keeping BatchNormalization, opsets 17 and 13): all 7 folded,
 * interpreter outputs before and after within 1e-5 relative. */
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

static uint64_t rng;
static float frand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int32_t add_input(vt_graph *g, const char *name, int rank, const int64_t *dims) {
  vt_dim d[VT_MAX_RANK];
  for (int i = 0; i < rank; i++) d[i] = dims[i];
  int32_t v = vt_graph_add_value(g, name, VT_F32, rank, d);
  vt_graph_add_input(g, v);
  return v;
}

/* A float32 constant with values lo + (hi - lo) * u, u uniform in [0, 1). */
static int32_t add_const(vt_graph *g, const char *name, int rank, const int64_t *dims, float lo, float hi) {
  vt_tensor t = {.dtype = VT_F32, .rank = rank};
  for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
  int64_t n = vt_tensor_numel(&t);
  float *p = vt_arena_alloc(&g->arena, (size_t)(n ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (frand() * 0.5f + 0.5f);
  t.data = p;
  return vt_graph_add_const(g, name, &t);
}

static int32_t node(vt_graph *g, int op, const char *name, int n_in, const int32_t *in) {
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
static void set_int(vt_graph *g, int32_t v, const char *attr, int64_t x) {
  vt_node_add_attr(g, g->values[v].producer, attr, VT_ATTR_INT)->i = x;
}
static void set_float(vt_graph *g, int32_t v, const char *attr, float x) {
  vt_node_add_attr(g, g->values[v].producer, attr, VT_ATTR_FLOAT)->f = x;
}

/* BatchNormalization of x over C channels with random statistics (var > 0). */
static int32_t batchnorm(vt_graph *g, int32_t x, int64_t C, const char *name) {
  char nm[5][64];
  const char *sfx[4] = {"scale", "beta", "mean", "var"};
  float lo[4] = {-2, -1, -1, 0.05f}, hi[4] = {2, 1, 1, 3};
  int32_t in[5] = {x};
  for (int k = 0; k < 4; k++) {
    snprintf(nm[k], sizeof nm[k], "%s_%s", name, sfx[k]);
    in[k + 1] = add_const(g, nm[k], 1, &C, lo[k], hi[k]);
  }
  int32_t y = node(g, VT_OP_BatchNormalization, name, 5, in);
  set_float(g, y, "epsilon", 1e-3f);
  return y;
}

static void prepare(vt_graph *g) {
  vt_error e = {0};
  if (vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK) fail_msg("prepare: %s", e.msg);
}

/* Conv (stride 2, pads) -> BN -> Mul [8,1,1] -> Add [1,8,1,1] -> Relu -> depthwise Conv (dilation 2,
 * no bias) -> BN -> Mul (scalar, constant first) -> output; and a grouped (2 groups) Conv -> BN. */
static vt_graph *build_conv(void) {
  rng = 88172645463325252ull;
  vt_graph *g = vt_graph_new("fold_conv.onnx");
  int32_t x = add_input(g, "x", 4, (int64_t[]){2, 6, 9, 11});
  int32_t c1in[3] = {x, add_const(g, "w1", 4, (int64_t[]){8, 6, 3, 3}, -1, 1), add_const(g, "b1", 1, (int64_t[]){8}, -1, 1)};
  int32_t c1 = node(g, VT_OP_Conv, "conv1", 3, c1in);
  set_ints(g, c1, "strides", 2, (int64_t[]){2, 2});
  set_ints(g, c1, "pads", 4, (int64_t[]){1, 1, 1, 1});
  int32_t b1 = batchnorm(g, c1, 8, "bn1");
  int32_t m1in[2] = {b1, add_const(g, "m1", 3, (int64_t[]){8, 1, 1}, -2, 2)};
  int32_t m1 = node(g, VT_OP_Mul, "mul1", 2, m1in);
  int32_t a1in[2] = {m1, add_const(g, "a1", 4, (int64_t[]){1, 8, 1, 1}, -1, 1)};
  int32_t a1 = node(g, VT_OP_Add, "add1", 2, a1in);
  int32_t r1 = node(g, VT_OP_Relu, "relu1", 1, &a1);
  int32_t c2in[2] = {r1, add_const(g, "w2", 4, (int64_t[]){8, 1, 3, 3}, -1, 1)};
  int32_t c2 = node(g, VT_OP_Conv, "dwconv", 2, c2in);
  set_int(g, c2, "group", 8);
  set_ints(g, c2, "dilations", 2, (int64_t[]){2, 2});
  set_ints(g, c2, "pads", 4, (int64_t[]){2, 1, 2, 1});
  int32_t b2 = batchnorm(g, c2, 8, "bn2");
  int32_t m2in[2] = {add_const(g, "m2", 0, NULL, 0.5f, 1.5f), b2};
  int32_t m2 = node(g, VT_OP_Mul, "mul2", 2, m2in);
  vt_graph_add_output(g, m2);
  int32_t c3in[3] = {r1, add_const(g, "w3", 4, (int64_t[]){4, 4, 1, 1}, -1, 1), add_const(g, "b3", 1, (int64_t[]){4}, -1, 1)};
  int32_t c3 = node(g, VT_OP_Conv, "gconv", 3, c3in);
  set_int(g, c3, "group", 2);
  vt_graph_add_output(g, batchnorm(g, c3, 4, "bn3"));
  prepare(g);
  return g;
}

/* Gemm (transB, alpha 0.5, beta 2, C [5]) -> BN -> Mul scalar; MatMul [7,5] -> BN (becomes a Gemm);
 * rank-3 MatMul -> Mul [5]. */
static vt_graph *build_gemm(void) {
  rng = 1234567890123ull;
  vt_graph *g = vt_graph_new("fold_gemm.onnx");
  int32_t x = add_input(g, "x", 2, (int64_t[]){3, 7});
  int32_t gin[3] = {x, add_const(g, "wg", 2, (int64_t[]){5, 7}, -1, 1), add_const(g, "cg", 1, (int64_t[]){5}, -1, 1)};
  int32_t gm = node(g, VT_OP_Gemm, "gemm", 3, gin);
  set_int(g, gm, "transB", 1);
  set_float(g, gm, "alpha", 0.5f);
  set_float(g, gm, "beta", 2.0f);
  int32_t b = batchnorm(g, gm, 5, "bng");
  int32_t min[2] = {b, add_const(g, "sg", 0, NULL, -3, 3)};
  vt_graph_add_output(g, node(g, VT_OP_Mul, "mulg", 2, min));
  int32_t mmin[2] = {x, add_const(g, "wm", 2, (int64_t[]){7, 5}, -1, 1)};
  vt_graph_add_output(g, batchnorm(g, node(g, VT_OP_MatMul, "mm", 2, mmin), 5, "bnm"));
  int32_t x3 = add_input(g, "x3", 3, (int64_t[]){2, 4, 7});
  int32_t m3in[2] = {x3, add_const(g, "wm3", 2, (int64_t[]){7, 5}, -1, 1)};
  int32_t m3 = node(g, VT_OP_MatMul, "mm3", 2, m3in);
  int32_t s3in[2] = {m3, add_const(g, "s3", 1, (int64_t[]){5}, -2, 2)};
  vt_graph_add_output(g, node(g, VT_OP_Mul, "mul3", 2, s3in));
  prepare(g);
  return g;
}

/* What must stay: a Conv whose output is also a graph output, then BN; MatMul -> Add [5];
 * Conv -> Mul by a [1,1,5,5] (spatial) constant; Conv -> BN with a mean that is an input. */
static vt_graph *build_negative(void) {
  rng = 42ull;
  vt_graph *g = vt_graph_new("fold_neg.onnx");
  int32_t x = add_input(g, "x", 4, (int64_t[]){1, 3, 5, 5});
  int32_t cin[2] = {x, add_const(g, "w", 4, (int64_t[]){4, 3, 1, 1}, -1, 1)};
  int32_t c = node(g, VT_OP_Conv, "conv_shared", 2, cin);
  vt_graph_add_output(g, c);
  vt_graph_add_output(g, batchnorm(g, c, 4, "bn_shared"));
  int32_t x2 = add_input(g, "x2", 2, (int64_t[]){3, 7});
  int32_t mmin[2] = {x2, add_const(g, "wm", 2, (int64_t[]){7, 5}, -1, 1)};
  int32_t aain[2] = {node(g, VT_OP_MatMul, "mm", 2, mmin), add_const(g, "bm", 1, (int64_t[]){5}, -1, 1)};
  vt_graph_add_output(g, node(g, VT_OP_Add, "mm_bias", 2, aain));
  int32_t c2in[2] = {x, add_const(g, "w2", 4, (int64_t[]){4, 3, 1, 1}, -1, 1)};
  int32_t spin[2] = {node(g, VT_OP_Conv, "conv_sp", 2, c2in), add_const(g, "sp", 4, (int64_t[]){1, 1, 5, 5}, -1, 1)};
  vt_graph_add_output(g, node(g, VT_OP_Mul, "mul_spatial", 2, spin));
  int32_t c3in[2] = {x, add_const(g, "w3", 4, (int64_t[]){4, 3, 1, 1}, -1, 1)};
  int32_t c3 = node(g, VT_OP_Conv, "conv_dyn", 2, c3in);
  int32_t mean = add_input(g, "mean", 1, (int64_t[]){4});
  int64_t four = 4;
  int32_t bnin[5] = {c3, add_const(g, "s", 1, &four, 0.5f, 1), add_const(g, "bb", 1, &four, -1, 1), mean,
                     add_const(g, "v", 1, &four, 0.5f, 1)};
  vt_graph_add_output(g, node(g, VT_OP_BatchNormalization, "bn_dyn", 5, bnin));
  prepare(g);
  return g;
}

static int count_op(const vt_graph *g, int op) {
  int n = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
  return n;
}

/* Runs the canonical pipeline with --stats and --explain; returns what they printed. */
static char *run_canonical(vt_graph *g) {
  vt_pipeline pl = {0};
  vt_error e = {0};
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  vt_pipeline_opts o = {.stats = true, .explain = true, .out = f};
  int rc = vt_pipeline_run(&pl, g, &o, &e);
  fclose(f);
  if (rc) fail_msg("pipeline: %s", e.msg);
  return buf;
}

/* Runs both graphs on the same random inputs; every output within 1e-5 of max |ref|. */
static void check_equal(const vt_graph *ref, const vt_graph *fold) {
  vt_tensor in[8] = {0}, out_r[8] = {0}, out_f[8] = {0};
  assert_true(ref->n_inputs <= 8 && ref->n_outputs <= 8);
  assert_int_equal(ref->n_inputs, fold->n_inputs);
  assert_int_equal(ref->n_outputs, fold->n_outputs);
  vt_error e = {0};
  for (int i = 0; i < ref->n_inputs; i++) {
    const vt_value *v = &ref->values[ref->inputs[i]];
    int64_t d[VT_MAX_RANK];
    for (int k = 0; k < v->rank; k++) d[k] = v->dims[k];
    assert_int_equal(vt_tensor_alloc(&in[i], VT_F32, v->rank, d, &e), VT_OK);
    for (int64_t j = 0; j < vt_tensor_numel(&in[i]); j++) ((float *)in[i].data)[j] = frand() * 2.0f;
  }
  const vt_graph *gs[2] = {ref, fold};
  vt_tensor *outs[2] = {out_r, out_f};
  for (int k = 0; k < 2; k++) {
    vt_interp *it = vt_interp_new(gs[k], 1, &e);
    if (!it) fail_msg("interp: %s", e.msg);
    if (vt_interp_run(it, in, outs[k], &e) != VT_OK) fail_msg("run: %s", e.msg);
    vt_interp_free(it);
  }
  for (int o = 0; o < ref->n_outputs; o++) {
    int64_t n = vt_tensor_numel(&out_r[o]);
    assert_int_equal(n, vt_tensor_numel(&out_f[o]));
    double maxref = 0, maxdiff = 0;
    for (int64_t j = 0; j < n; j++) {
      double a = ((float *)out_r[o].data)[j], b = ((float *)out_f[o].data)[j];
      if (fabs(a) > maxref) maxref = fabs(a);
      if (fabs(a - b) > maxdiff) maxdiff = fabs(a - b);
    }
    double rel = maxdiff / (maxref > 0 ? maxref : 1);
    if (!(rel <= 1e-5)) fail_msg("output %d ('%s'): max |diff| / max |ref| = %.3g > 1e-5", o,
                                 ref->values[ref->outputs[o]].name, rel);
    print_message("  output %d: max |diff| / max |ref| = %.3g\n", o, rel);
  }
  for (int i = 0; i < ref->n_inputs; i++) vt_tensor_free(&in[i]);
  for (int o = 0; o < ref->n_outputs; o++) { vt_tensor_free(&out_r[o]); vt_tensor_free(&out_f[o]); }
}

static void expect_line(const char *log, const char *line) {
  if (!strstr(log, line)) fail_msg("expected '%s' in:\n%s", line, log);
}

static void test_fold_conv(void **st) {
  (void)st;
  vt_graph *ref = build_conv(), *g = build_conv();
  char *log = run_canonical(g);
  expect_line(log, "rule fold-batchnorm           matched 3 of 3 candidates");
  expect_line(log, "rule fold-mul                 matched 2 of 2 candidates");
  expect_line(log, "rule fold-add                 matched 1 of 1 candidates");
  assert_int_equal(count_op(g, VT_OP_BatchNormalization), 0);
  assert_int_equal(count_op(g, VT_OP_Mul), 0);
  assert_int_equal(count_op(g, VT_OP_Add), 0);
  assert_int_equal(count_op(g, VT_OP_Conv), 3);
  /* the depthwise conv kept its group and dilations */
  for (int32_t i = 0; i < g->n_nodes; i++)
    if (g->nodes[i].op == VT_OP_Conv && vt_attr_int(&g->nodes[i], "group", 1) == 8) {
      const int64_t *d = NULL;
      assert_int_equal(vt_attr_ints(&g->nodes[i], "dilations", &d), 2);
      assert_int_equal(d[0], 2);
      assert_int_equal(g->nodes[i].n_in, 3);   /* BN gave it a bias */
    }
  check_equal(ref, g);
  free(log);
  vt_graph_free(ref);
  vt_graph_free(g);
}

static void test_fold_gemm(void **st) {
  (void)st;
  vt_graph *ref = build_gemm(), *g = build_gemm();
  char *log = run_canonical(g);
  expect_line(log, "rule fold-batchnorm           matched 2 of 2 candidates");
  expect_line(log, "rule fold-mul                 matched 2 of 2 candidates");
  assert_int_equal(count_op(g, VT_OP_BatchNormalization), 0);
  assert_int_equal(count_op(g, VT_OP_Mul), 0);
  assert_int_equal(count_op(g, VT_OP_Gemm), 2);     /* the MatMul + BN became a Gemm */
  assert_int_equal(count_op(g, VT_OP_MatMul), 1);
  check_equal(ref, g);
  free(log);
  vt_graph_free(ref);
  vt_graph_free(g);
}

static void test_fold_negative(void **st) {
  (void)st;
  vt_graph *ref = build_negative(), *g = build_negative();
  int32_t n0 = g->n_nodes;
  char *log = run_canonical(g);
  expect_line(log, "rule fold-batchnorm           matched 0 of 2 candidates");
  expect_line(log, "rule fold-mul                 matched 0 of 1 candidates");
  expect_line(log, "rule fold-add                 matched 0 of 1 candidates");
  expect_line(log, "node 'bn_shared' (BatchNormalization): no match at step 'single-use'");
  expect_line(log, "node 'mm_bias' (Add): no match at step 'producer': an Add after MatMul stays");
  expect_line(log, "node 'mul_spatial' (Mul): no match at step 'constant'");
  expect_line(log, "node 'bn_dyn' (BatchNormalization): no match at step 'parameters'");
  assert_int_equal(g->n_nodes, n0);
  check_equal(ref, g);
  free(log);
  vt_graph_free(ref);
  vt_graph_free(g);
}

/* ---------- the hybrid zoo models (passes_zoo fixture) ---------- */
static const char *zoo_dir(void) {
  const char *d = getenv("VT_ZOO_DIR");
  return d && *d ? d : VT_BINARY_DIR "/zoo-passes";
}

static vt_graph *load_zoo(const char *model, vt_tensor *in) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.onnx", zoo_dir(), model);
  struct stat sb;
  if (stat(path, &sb) != 0) fail_msg("zoo model %s missing (gen_zoo.py --set tiny --out %s)", path, zoo_dir());
  vt_error e = {0};
  vt_graph *g = NULL;
  if (vt_onnx_load(path, &g, &e) != VT_OK) fail_msg("%s", e.msg);
  if (vt_graph_prepare(g, NULL, NULL, 0, &e) != VT_OK) fail_msg("%s", e.msg);
  for (int i = 0; in && i < g->n_inputs; i++) {
    snprintf(path, sizeof path, "%s/%s.in.%s.npy", zoo_dir(), model, g->values[g->inputs[i]].name);
    if (vt_npy_read(path, &in[i], &e) != VT_OK) fail_msg("%s", e.msg);
  }
  return g;
}

static void check_zoo(const char *model) {
  vt_tensor in[4] = {0}, out_r[4] = {0}, out_f[4] = {0};
  vt_graph *ref = load_zoo(model, in), *g = load_zoo(model, NULL);
  assert_int_equal(count_op(ref, VT_OP_BatchNormalization), 7);
  char *log = run_canonical(g);
  expect_line(log, "rule fold-batchnorm           matched 7 of 7 candidates");
  assert_int_equal(count_op(g, VT_OP_BatchNormalization), 0);
  vt_error e = {0};
  const vt_graph *gs[2] = {ref, g};
  vt_tensor *outs[2] = {out_r, out_f};
  for (int k = 0; k < 2; k++) {
    vt_interp *it = vt_interp_new(gs[k], 1, &e);
    if (!it) fail_msg("interp: %s", e.msg);
    if (vt_interp_run(it, in, outs[k], &e) != VT_OK) fail_msg("run: %s", e.msg);
    vt_interp_free(it);
  }
  double maxref = 0, maxdiff = 0;
  for (int64_t j = 0; j < vt_tensor_numel(&out_r[0]); j++) {
    double a = ((float *)out_r[0].data)[j], b = ((float *)out_f[0].data)[j];
    if (fabs(a) > maxref) maxref = fabs(a);
    if (fabs(a - b) > maxdiff) maxdiff = fabs(a - b);
  }
  double rel = maxdiff / (maxref > 0 ? maxref : 1);
  print_message("  %s: max |diff| / max |ref| = %.3g\n", model, rel);
  if (!(rel <= 1e-5)) fail_msg("%s: folded vs unfolded max |diff| / max |ref| = %.3g > 1e-5", model, rel);
  for (int i = 0; i < ref->n_inputs; i++) vt_tensor_free(&in[i]);
  vt_tensor_free(&out_r[0]);
  vt_tensor_free(&out_f[0]);
  free(log);
  vt_graph_free(ref);
  vt_graph_free(g);
}

static void test_fold_zoo(void **st) {
  (void)st;
  check_zoo("hybrid_tiny_op17");
  check_zoo("hybrid_tiny_op13");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fold_conv),
      cmocka_unit_test(test_fold_gemm),
      cmocka_unit_test(test_fold_negative),
      cmocka_unit_test(test_fold_zoo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_codegen.c — the LLVM JIT (codegen/) against the reference interpreter, which is the
 * oracle: every generated kernel kind on odd sizes (GEMM, elementwise, rows, copies and views,
 * transposes, slices, reductions, attention, Conv over pads, strides, dilations and groups, Concat,
 * Expand), the static-shape and input checks, and the
 * tiny zoo ViT end to end (rel. L2 <= 1e-4 with generated kernels actually in use).
 * Tolerances (relative L2 over the whole output): GEMM 1e-5 (float32 sums in another order,
 * K up to 1025); elementwise chains 1e-5 (exp/erf/tanh are polynomial approximations with
 * ~1e-7 relative error); whole model 1e-4. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "frontend.h"
#include "ir.h"
#include "runtime.h"

#ifdef VT_HAVE_CODEGEN
#include <dlfcn.h>

#include "cg_cpu.h"
#include "codegen.h"
#include "vtopt/model.h"

/* ---------- graph building ------------------------------------------------------------------ */
static uint64_t rng = 12345;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int32_t add_input(vt_graph *g, const char *name, int rank, const int64_t *dims) {
  vt_dim d[VT_MAX_RANK];
  for (int i = 0; i < rank; i++) d[i] = dims[i];
  int32_t v = vt_graph_add_value(g, name, VT_F32, rank, d);
  assert_true(v >= 0);
  assert_int_equal(vt_graph_add_input(g, v), 0);
  return v;
}

/* A random float32 constant (scale s). */
static int32_t add_const(vt_graph *g, const char *name, int rank, const int64_t *dims, float s) {
  vt_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = VT_F32;
  t.rank = rank;
  int64_t n = 1;
  for (int i = 0; i < rank; i++) { t.dims[i] = dims[i]; n *= dims[i]; }
  float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  assert_non_null(p);
  for (int64_t i = 0; i < n; i++) p[i] = s * frand();
  t.data = p;
  assert_int_equal(vt_graph_own(g, p), 0);
  int32_t v = vt_graph_add_const(g, name, &t);
  assert_true(v >= 0);
  return v;
}

static int32_t add_scalar(vt_graph *g, const char *name, float x) {
  float *p = malloc(sizeof *p);
  assert_non_null(p);
  *p = x;
  assert_int_equal(vt_graph_own(g, p), 0);
  vt_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = VT_F32;
  t.rank = 0;
  t.data = p;
  int32_t v = vt_graph_add_const(g, name, &t);
  assert_true(v >= 0);
  return v;
}

/* Adds a node with one fresh output value (type filled by shape inference). */
static int32_t node(vt_graph *g, const char *op, int nin, const int32_t *in) {
  static int counter;
  char name[64];
  snprintf(name, sizeof name, "v%d", counter++);
  int32_t out = vt_graph_add_value(g, name, VT_UNDEFINED, -1, NULL);
  assert_true(out >= 0);
  int id = vt_op_lookup(op, "");
  assert_true(id >= 0);
  snprintf(name, sizeof name, "n%d", counter++);
  int32_t n = vt_graph_add_node(g, name, id, nin, in, 1, &out);
  assert_true(n >= 0);
  return out;
}

/* An int-list attribute on the graph's last node (e.g. a Transpose's perm). */
static void last_node_ints(vt_graph *g, const char *name, int n, const int64_t *v) {
  vt_attr *at = vt_node_add_attr(g, g->n_nodes - 1, name, VT_ATTR_INTS);
  assert_non_null(at);
  at->n = n;
  at->ints = vt_arena_alloc(&g->arena, (size_t)n * sizeof *at->ints);
  assert_non_null(at->ints);
  memcpy(at->ints, v, (size_t)n * sizeof *at->ints);
}

static vt_graph *new_graph(void) {
  vt_graph *g = vt_graph_new("");
  assert_non_null(g);
  assert_int_equal(vt_graph_set_opset(g, "", 17), 0);
  return g;
}

/* set by a test whose graph makes NaNs on purpose: NaN in both outputs at one place counts as
 * equal (and is counted in nan_matched); otherwise any NaN fails the comparison */
static int nan_equal, nan_matched;

static double rel_l2(const vt_tensor *a, const vt_tensor *b) {
  int64_t n = vt_tensor_numel(a);
  assert_int_equal(n, vt_tensor_numel(b));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = ((const float *)a->data)[i], y = ((const float *)b->data)[i];
    if (isinf(x) && x == y) continue;
    if (nan_equal && isnan(x) && isnan(y)) {
      nan_matched++;
      continue;
    }
    if (!isfinite(x - y)) {
      fprintf(stderr, "  element %lld: jit %g, interpreter %g\n", (long long)i, x, y);
      return INFINITY;
    }
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Prepares g, runs interpreter and JIT (2 threads) on random inputs, returns the worst rel. L2
 * over the outputs; *st gets the JIT's stats. */
static double compare(vt_graph *g, vt_jit_stats *st) {
  vt_error e = {0};
  if (vt_graph_prepare(g, NULL, NULL, 0, &e)) fail_msg("prepare: %s", e.msg);
  vt_tensor *in = calloc((size_t)g->n_inputs + 1, sizeof *in);
  vt_tensor *oi = calloc((size_t)g->n_outputs + 1, sizeof *oi), *oj = calloc((size_t)g->n_outputs + 1, sizeof *oj);
  assert_true(in && oi && oj);
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    int64_t dims[VT_MAX_RANK];
    for (int d = 0; d < v->rank; d++) dims[d] = v->dims[d];
    assert_int_equal(vt_tensor_alloc(&in[i], VT_F32, v->rank, dims, &e), 0);
    for (int64_t k = 0; k < vt_tensor_numel(&in[i]); k++) ((float *)in[i].data)[k] = frand();
  }
  vt_interp *it = vt_interp_new(g, 2, &e);
  assert_non_null(it);
  if (vt_interp_run(it, in, oi, &e)) fail_msg("interp: %s", e.msg);
  /* VT_TEST_STATS=1: each compiled graph's --stats kernel list on stderr (for debugging a case) */
  vt_cg_options opt = {.opt_level = 3, .threads = 2, .stats = getenv("VT_TEST_STATS") ? stderr : NULL};
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) fail_msg("jit compile: %s", e.msg);
  double worst = 0;
  for (int rep = 0; rep < 2; rep++) {   /* twice: the arena and buffers are reused */
    if (vt_jit_run(j, in, oj, &e)) fail_msg("jit run: %s", e.msg);
    for (int32_t o = 0; o < g->n_outputs; o++) {
      assert_int_equal(oj[o].rank, oi[o].rank);
      for (int d = 0; d < oi[o].rank; d++) assert_int_equal(oj[o].dims[d], oi[o].dims[d]);
      double r = rel_l2(&oj[o], &oi[o]);
      if (!(r <= worst)) worst = r;
      vt_tensor_free(&oj[o]);
    }
  }
  vt_jit_get_stats(j, st);
  vt_jit_free(j);
  vt_interp_free(it);
  for (int32_t i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  for (int32_t o = 0; o < g->n_outputs; o++) vt_tensor_free(&oi[o]);
  free(in); free(oi); free(oj);
  return worst;
}

/* ---------- GEMM ---------------------------------------------------------------------------- */
/* Y = relu(A*B + bias) + R, with A [batch?, M, K]. */
static void gemm_case(int64_t M, int64_t N, int64_t K, int batch, int epilogue) {
  vt_graph *g = new_graph();
  int64_t ad[3] = {batch, M, K}, bd[2] = {K, N}, nd[1] = {N}, rd[3] = {batch, M, N};
  int r = batch ? 3 : 2;
  int32_t a = add_input(g, "a", r, batch ? ad : ad + 1);
  int32_t b = add_const(g, "b", 2, bd, 1.0f);
  int32_t y = node(g, "MatMul", 2, (int32_t[]){a, b});
  if (epilogue) {
    int32_t bias = add_const(g, "bias", 1, nd, 0.5f);
    int32_t res = add_input(g, "res", r, batch ? rd : rd + 1);
    y = node(g, "Add", 2, (int32_t[]){y, bias});
    y = node(g, "Relu", 1, &y);
    y = node(g, "Add", 2, (int32_t[]){res, y});
  }
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  gemm M=%lld N=%lld K=%lld batch=%d epilogue=%d: rel L2 %.3g\n", (long long)M,
          (long long)N, (long long)K, batch, epilogue, err);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_gemm, 1);
  assert_int_equal(st.n_fallback, 0);
  assert_int_equal(st.n_elementwise, 0);   /* the epilogue is fused into the GEMM */
  vt_graph_free(g);
}

static void test_gemm_sizes(void **state) {
  (void)state;
  static const int64_t sz[] = {1, 7, 197, 1025};
  /* every size in every position, without running all 64 combinations */
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 4; k++) {
      int64_t M = sz[i], N = sz[(i + k) % 4], K = sz[(i + 2 * k + 1) % 4];
      if (M * N * K > 60000000) continue;
      gemm_case(M, N, K, 0, 0);
    }
  gemm_case(197, 1025, 197, 0, 0);
  gemm_case(1025, 7, 1025, 0, 0);
}

static void test_gemm_epilogue(void **state) {
  (void)state;
  gemm_case(7, 7, 7, 0, 1);
  gemm_case(197, 197, 197, 0, 1);
  gemm_case(1, 1025, 7, 0, 1);
  gemm_case(197, 33, 1025, 2, 1);
  gemm_case(7, 1, 1, 3, 1);
  /* 3 row blocks x 7 panels = 21 work units: the two threads' ranges meet inside a row block;
   * K = 300 is two K blocks (the second accumulates) */
  gemm_case(500, 100, 300, 0, 1);
}

/* Gemm with transB, alpha, beta and a row bias C [N]. */
static void test_gemm_op(void **state) {
  (void)state;
  static const int64_t shapes[][3] = {{7, 197, 33}, {197, 7, 1025}, {1, 1025, 7}};
  for (int s = 0; s < 3; s++) {
    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    vt_graph *g = new_graph();
    int64_t ad[2] = {M, K}, bd[2] = {N, K}, cd[1] = {N};
    int32_t a = add_input(g, "a", 2, ad);
    int32_t b = add_const(g, "b", 2, bd, 1.0f);
    int32_t c = add_const(g, "c", 1, cd, 1.0f);
    int32_t y = node(g, "Gemm", 3, (int32_t[]){a, b, c});
    int32_t n = g->n_nodes - 1;
    vt_attr *at = vt_node_add_attr(g, n, "transB", VT_ATTR_INT);
    at->i = 1;
    at = vt_node_add_attr(g, n, "alpha", VT_ATTR_FLOAT);
    at->f = 0.75f;
    at = vt_node_add_attr(g, n, "beta", VT_ATTR_FLOAT);
    at->f = -2.0f;
    assert_int_equal(vt_graph_add_output(g, y), 0);
    vt_jit_stats st;
    double err = compare(g, &st);
    fprintf(stderr, "  Gemm transB M=%lld N=%lld K=%lld: rel L2 %.3g\n", (long long)M, (long long)N, (long long)K, err);
    assert_true(err <= 1e-5);
    assert_int_equal(st.n_gemm, 1);
    assert_int_equal(st.n_fallback, 0);
    vt_graph_free(g);
  }
}

/* ---------- elementwise --------------------------------------------------------------------- */
/* A DAG of unary and binary ops with scalar, last-axis, per-row and full operands, GELU by erf,
 * and an intermediate value that is also a graph output. */
static void ew_case(int64_t rows, int64_t cols) {
  vt_graph *g = new_graph();
  int64_t xd[2] = {rows, cols}, ld[1] = {cols}, rd[2] = {rows, 1};
  int32_t x = add_input(g, "x", 2, xd);
  int32_t y = add_input(g, "y", 2, xd);
  int32_t rowv = add_input(g, "rowv", 2, rd);
  int32_t bias = add_const(g, "bias", 1, ld, 1.0f);
  int32_t three = add_scalar(g, "three", 3.0f), half = add_scalar(g, "half", 0.5f);
  int32_t rs2 = add_scalar(g, "rs2", 1.4142135f), one = add_scalar(g, "one", 1.0f);
  int32_t t = node(g, "Mul", 2, (int32_t[]){x, three});
  t = node(g, "Add", 2, (int32_t[]){t, bias});
  int32_t u = node(g, "Div", 2, (int32_t[]){t, rs2});        /* gelu(t) = t*0.5*(1+erf(t/sqrt2)) */
  u = node(g, "Erf", 1, &u);
  u = node(g, "Add", 2, (int32_t[]){u, one});
  u = node(g, "Mul", 2, (int32_t[]){t, u});
  int32_t gel = node(g, "Mul", 2, (int32_t[]){u, half});
  int32_t s = node(g, "Sub", 2, (int32_t[]){gel, y});
  s = node(g, "Sigmoid", 1, &s);
  int32_t th = node(g, "Tanh", 1, &y);
  s = node(g, "Add", 2, (int32_t[]){s, th});
  s = node(g, "Mul", 2, (int32_t[]){s, rowv});
  int32_t ex = node(g, "Exp", 1, &s);
  int32_t ab = node(g, "Abs", 1, &x);
  ab = node(g, "Sqrt", 1, &ab);
  s = node(g, "Sub", 2, (int32_t[]){ex, ab});
  s = node(g, "Relu", 1, &s);
  assert_int_equal(vt_graph_add_output(g, s), 0);
  assert_int_equal(vt_graph_add_output(g, gel), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  elementwise %lldx%lld: rel L2 %.3g (%d elementwise kernels)\n", (long long)rows,
          (long long)cols, err, st.n_elementwise);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_fallback, 0);
  assert_true(st.n_elementwise >= 1 && st.n_elementwise <= 2);
  assert_int_equal(st.n_fused_nodes, g->n_nodes);
  vt_graph_free(g);
}

static void test_elementwise(void **state) {
  (void)state;
  ew_case(1, 1);
  ew_case(7, 7);
  ew_case(197, 384);
  ew_case(3, 1025);
}

/* Operands matching trailing dims ([1, T, C] and [T, C] onto [B, T, C]), per-row [B, T, 1], and
 * the same after a GEMM (epilogue). */
static void test_broadcast_tail(void **state) {
  (void)state;
  for (int gemm = 0; gemm < 2; gemm++) {
    vt_graph *g = new_graph();
    int64_t xd[3] = {3, 7, 33}, pd[3] = {1, 7, 33}, qd[2] = {7, 33}, rd[3] = {3, 7, 1}, bd[2] = {5, 33};
    int64_t ad[3] = {3, 7, 5};
    int32_t x;
    if (gemm) {
      int32_t a = add_input(g, "a", 3, ad);
      int32_t b = add_const(g, "b", 2, bd, 1.0f);
      x = node(g, "MatMul", 2, (int32_t[]){a, b});
    } else {
      x = add_input(g, "x", 3, xd);
    }
    int32_t pos = add_const(g, "pos", 3, pd, 1.0f);
    int32_t q = add_input(g, "q", 2, qd);
    int32_t rowv = add_input(g, "rowv", 3, rd);
    int32_t t = node(g, "Add", 2, (int32_t[]){x, pos});
    t = node(g, "Mul", 2, (int32_t[]){q, t});
    t = node(g, "Sub", 2, (int32_t[]){t, rowv});
    assert_int_equal(vt_graph_add_output(g, t), 0);
    vt_jit_stats st;
    double err = compare(g, &st);
    fprintf(stderr, "  tail broadcast (gemm %d): rel L2 %.3g\n", gemm, err);
    assert_true(err <= 1e-5);
    assert_int_equal(st.n_fallback, 0);
    assert_int_equal(st.n_gemm + st.n_elementwise, 1);
    vt_graph_free(g);
  }
}

/* Any other numpy broadcast (BC_STRIDED): the outer sum of decomposed relative-position biases,
 * [B, H, w, 1] + [B, 1, 1, w] (rel_h + rel_w), a constant [3, 1, 7] in the middle, and the same
 * after a GEMM (epilogue). */
static void test_broadcast_strided(void **state) {
  (void)state;
  for (int gemm = 0; gemm < 2; gemm++) {
    vt_graph *g = new_graph();
    int64_t hd[4] = {2, 3, 5, 1}, wd[4] = {2, 1, 1, 7}, cd[3] = {3, 1, 7}, ad[4] = {2, 3, 5, 4}, bd[2] = {4, 7};
    int32_t x;
    if (gemm) {
      int32_t a = add_input(g, "a", 4, ad);
      int32_t b = add_const(g, "b", 2, bd, 1.0f);
      x = node(g, "MatMul", 2, (int32_t[]){a, b});
    } else {
      x = add_input(g, "rel_h", 4, hd);
    }
    int32_t w = add_input(g, "rel_w", 4, wd);
    int32_t k = add_const(g, "k", 3, cd, 1.0f);
    int32_t t = node(g, "Add", 2, (int32_t[]){x, w});
    t = node(g, "Mul", 2, (int32_t[]){k, t});
    assert_int_equal(vt_graph_add_output(g, t), 0);
    vt_jit_stats st;
    double err = compare(g, &st);
    fprintf(stderr, "  strided broadcast (gemm %d): rel L2 %.3g\n", gemm, err);
    assert_true(err <= 1e-6);
    assert_int_equal(st.n_fallback, 0);
    assert_int_equal(st.n_gemm + st.n_elementwise, 1);
    vt_graph_free(g);
  }
}

/* An int64 1-D constant (a Reshape target). */
static int32_t add_shape(vt_graph *g, const char *name, int n, const int64_t *v) {
  int64_t *p = malloc((size_t)n * sizeof *p);
  assert_non_null(p);
  memcpy(p, v, (size_t)n * sizeof *p);
  assert_int_equal(vt_graph_own(g, p), 0);
  vt_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = VT_I64;
  t.rank = 1;
  t.dims[0] = n;
  t.data = p;
  int32_t c = vt_graph_add_const(g, name, &t);
  assert_true(c >= 0);
  return c;
}

/* Reshape-like copies are views of their source's buffer: a chain of them, the source still read
 * after the views (its buffer must stay live for both), a view read by a GEMM, and a view that is
 * a graph output (that one is a real copy into the caller's memory). */
static void test_views(void **state) {
  (void)state;
  vt_graph *g = new_graph();
  int64_t xd[2] = {6, 20}, bd[2] = {20, 10};
  int32_t x = add_input(g, "x", 2, xd);
  int32_t r = node(g, "Relu", 1, &x);
  int32_t v1 = node(g, "Reshape", 2, (int32_t[]){r, add_shape(g, "s1", 3, (int64_t[]){2, 3, 20})});
  int32_t v2 = node(g, "Reshape", 2, (int32_t[]){v1, add_shape(g, "s2", 2, (int64_t[]){6, 20})});
  int32_t y = node(g, "MatMul", 2, (int32_t[]){v2, add_const(g, "b", 2, bd, 1.0f)});
  int32_t z = node(g, "Neg", 1, &r);   /* the source read after its views */
  int32_t o = node(g, "Reshape", 2, (int32_t[]){z, add_shape(g, "s3", 3, (int64_t[]){3, 2, 20})});
  assert_int_equal(vt_graph_add_output(g, y), 0);
  assert_int_equal(vt_graph_add_output(g, o), 0);
  int32_t v3 = node(g, "Reshape", 2, (int32_t[]){r, add_shape(g, "s4", 1, (int64_t[]){120})});
  assert_int_equal(vt_graph_add_output(g, v3), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  views: rel L2 %.3g, %d copies, %d of them views\n", err, st.n_copy, st.n_view);
  assert_true(err <= 1e-6);
  assert_int_equal(st.n_fallback, 0);
  assert_int_equal(st.n_copy, 4);
  assert_int_equal(st.n_view, 2);   /* v1, v2; o and v3 are graph outputs */
  vt_graph_free(g);
}

/* Row kernels: Softmax (last axis; opset 11 flattening at axis 1) and LayerNormalization (with
 * and without bias, over one or two trailing axes), odd sizes, inputs scaled to [-8, 8]. */
static void row_case(const char *op, int rank, const int64_t *dims, int64_t axis, int opset, int with_bias) {
  vt_graph *g = vt_graph_new("");
  assert_non_null(g);
  assert_int_equal(vt_graph_set_opset(g, "", opset), 0);
  int32_t x = add_input(g, "x", rank, dims);
  int32_t eight = add_scalar(g, "eight", 8.0f);
  int32_t t = node(g, "Mul", 2, (int32_t[]){x, eight});
  int32_t y;
  if (!strcmp(op, "Softmax")) {
    y = node(g, "Softmax", 1, &t);
  } else {
    int64_t a = axis < 0 ? axis + rank : axis;   /* scale / bias have the normalised dims */
    int32_t sc = add_const(g, "scale", rank - (int)a, dims + a, 1.0f);
    int32_t bi = add_const(g, "bias", rank - (int)a, dims + a, 1.0f);
    y = node(g, "LayerNormalization", with_bias ? 3 : 2, (int32_t[]){t, sc, bi});
  }
  vt_attr *at = vt_node_add_attr(g, g->n_nodes - 1, "axis", VT_ATTR_INT);
  at->i = axis;
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  %s rank %d last dim %lld axis %lld opset %d: rel L2 %.3g\n", op, rank,
          (long long)dims[rank - 1], (long long)axis, opset, err);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_row, 1);
  assert_int_equal(st.n_fallback, 0);
  vt_graph_free(g);
}

static void test_rows(void **state) {
  (void)state;
  static const int64_t d1[1] = {1}, d2[2] = {7, 197}, d3[2] = {3, 1025}, d4[3] = {2, 7, 13}, d5[2] = {197, 384};
  row_case("Softmax", 1, d1, -1, 17, 0);
  row_case("Softmax", 2, d2, -1, 17, 0);
  row_case("Softmax", 2, d3, 1, 17, 0);
  row_case("Softmax", 3, d4, 1, 11, 0);   /* opset < 13: softmax over dims [1, 3) flattened */
  row_case("LayerNormalization", 2, d5, -1, 17, 1);
  row_case("LayerNormalization", 2, d2, -1, 17, 0);
  row_case("LayerNormalization", 3, d4, -2, 17, 1);
  row_case("LayerNormalization", 2, d3, 1, 17, 1);
}

/* LayerNormalization (last axis) feeding a weight MatMul: the GEMM takes it as its prologue (no
 * row kernel) unless the normalised value has another use; odd sizes, with and without LN bias,
 * K over one and several K blocks, M over one and several row blocks. */
static void ln_gemm_case(int64_t M, int64_t K, int64_t N, int with_bias, int shared) {
  vt_graph *g = new_graph();
  int64_t xd[2] = {M, K}, kd[1] = {K}, bd[2] = {K, N};
  int32_t x = add_input(g, "x", 2, xd);
  int32_t eight = add_scalar(g, "eight", 8.0f);
  int32_t t = node(g, "Mul", 2, (int32_t[]){x, eight});   /* rows far from mean 0 / var 1 */
  int32_t sc = add_const(g, "scale", 1, kd, 1.0f);
  int32_t bi = add_const(g, "bias", 1, kd, 1.0f);
  int32_t ln = node(g, "LayerNormalization", with_bias ? 3 : 2, (int32_t[]){t, sc, bi});
  int32_t b = add_const(g, "b", 2, bd, 1.0f);
  int32_t y = node(g, "MatMul", 2, (int32_t[]){ln, b});
  assert_int_equal(vt_graph_add_output(g, y), 0);
  if (shared) assert_int_equal(vt_graph_add_output(g, ln), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  layernorm -> gemm M=%lld K=%lld N=%lld bias=%d shared=%d: rel L2 %.3g\n", (long long)M,
          (long long)K, (long long)N, with_bias, shared, err);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_gemm, 1);
  assert_int_equal(st.n_row, shared ? 1 : 0);
  assert_int_equal(st.n_fallback, 0);
  vt_graph_free(g);
}

static void test_ln_gemm(void **state) {
  (void)state;
  ln_gemm_case(1, 7, 7, 1, 0);
  ln_gemm_case(7, 197, 33, 0, 0);
  ln_gemm_case(197, 384, 1025, 1, 0);
  ln_gemm_case(500, 1025, 20, 1, 0);   /* 3 row blocks, 5 K blocks */
  ln_gemm_case(197, 384, 64, 1, 1);    /* the LayerNorm's output is also a graph output */
}

/* Slice with constant starts/ends/axes/steps as a generated row-strided copy: one sliced axis
 * (negative start, an end past the dim, the whole tensor); two sliced axes or a step stay host
 * kernels. */
static void slice_case(int naxes, const int64_t *starts, const int64_t *ends, const int64_t *axes, int64_t step,
                       int generated) {
  vt_graph *g = new_graph();
  int64_t xd[3] = {3, 7, 5};
  int32_t x = add_input(g, "x", 3, xd);
  int64_t steps[3] = {step, step, step};
  int32_t y = node(g, "Slice", 5, (int32_t[]){x, add_shape(g, "starts", naxes, starts), add_shape(g, "ends", naxes, ends),
                                            add_shape(g, "axes", naxes, axes), add_shape(g, "steps", naxes, steps)});
  assert_int_equal(vt_graph_add_output(g, node(g, "Neg", 1, &y)), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  slice %d axes (first %lld: %lld..%lld) step %lld: rel L2 %.3g\n", naxes, (long long)axes[0],
          (long long)starts[0], (long long)ends[0], (long long)step, err);
  assert_true(err == 0);
  assert_int_equal(st.n_fallback, generated ? 0 : 1);
  vt_graph_free(g);
}

static void test_slice(void **state) {
  (void)state;
  slice_case(1, (int64_t[]){2}, (int64_t[]){6}, (int64_t[]){1}, 1, 1);
  slice_case(1, (int64_t[]){-3}, (int64_t[]){100}, (int64_t[]){-1}, 1, 1);
  slice_case(1, (int64_t[]){1}, (int64_t[]){2}, (int64_t[]){0}, 1, 1);
  slice_case(1, (int64_t[]){0}, (int64_t[]){3}, (int64_t[]){0}, 1, 1);   /* the whole tensor */
  slice_case(2, (int64_t[]){1, 2}, (int64_t[]){3, 6}, (int64_t[]){0, 1}, 1, 0);
  slice_case(1, (int64_t[]){0}, (int64_t[]){7}, (int64_t[]){1}, 2, 0);
}

/* ReduceMean/Sum/Max/Min over trailing axes as generated row kernels, against the interpreter:
 * axes as an input (opset 18) or an attribute (opset 13), keepdims 0/1, odd widths; nan: row 0's
 * element 1 becomes NaN (Sqrt of a negative), so max/min must give NaN for that row only;
 * axes [0]: not the trailing axes: ReduceMean/Sum become the middle-axis reduce kernel
 * (generated 2: cg_lower_conv.c), ReduceMax/Min stay host kernels (generated 0). */
static void reduce_case(const char *op, int rank, const int64_t *dims, int naxes, const int64_t *axes, int opset,
                        int keep, int nan, int generated) {
  vt_graph *g = vt_graph_new("");
  assert_non_null(g);
  assert_int_equal(vt_graph_set_opset(g, "", opset), 0);
  int32_t x = add_input(g, "x", rank, dims);
  if (nan) {   /* x * m with m = 1 except one -1, then Sqrt(x^2 * m): NaN at that element */
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= dims[d];
    float *mp = malloc((size_t)n * sizeof *mp);
    assert_non_null(mp);
    for (int64_t i = 0; i < n; i++) mp[i] = i == 1 ? -1.0f : 1.0f;
    assert_int_equal(vt_graph_own(g, mp), 0);
    vt_tensor mt;
    memset(&mt, 0, sizeof mt);
    mt.dtype = VT_F32;
    mt.rank = rank;
    for (int d = 0; d < rank; d++) mt.dims[d] = dims[d];
    mt.data = mp;
    int32_t m = vt_graph_add_const(g, "m", &mt);
    int32_t sq = node(g, "Mul", 2, (int32_t[]){x, x});
    x = node(g, "Sqrt", 1, (int32_t[]){node(g, "Mul", 2, (int32_t[]){sq, m})});
  }
  int32_t y;
  bool as_input = opset >= 18 || !strcmp(op, "ReduceSum");
  if (as_input) {
    y = node(g, op, 2, (int32_t[]){x, add_shape(g, "axes", naxes, axes)});
  } else {
    y = node(g, op, 1, &x);
    last_node_ints(g, "axes", naxes, axes);
  }
  vt_node_add_attr(g, g->n_nodes - 1, "keepdims", VT_ATTR_INT)->i = keep;
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  nan_equal = nan;
  nan_matched = 0;
  double err = compare(g, &st);
  nan_equal = 0;
  fprintf(stderr, "  %s rank %d last dim %lld axes %d (first %lld) opset %d keep %d nan %d: rel L2 %.3g\n", op, rank,
          (long long)dims[rank - 1], naxes, (long long)axes[0], opset, keep, nan, err);
  assert_true(err <= 1e-5);
  if (nan) assert_true(nan_matched >= 2);   /* row 0 is NaN in both, in both of compare()'s runs */
  assert_int_equal(st.n_row, generated == 1 ? 1 : 0);
  assert_int_equal(st.n_pool, generated == 2 ? 1 : 0);
  assert_int_equal(st.n_fallback, generated ? 0 : 1);
  vt_graph_free(g);
}

static void test_reductions(void **state) {
  (void)state;
  static const int64_t d1[2] = {7, 1}, d2[2] = {197, 384}, d3[3] = {2, 7, 1025}, d4[3] = {3, 5, 13};
  static const int64_t last[1] = {-1}, two[2] = {1, 2}, first[1] = {0};
  const char *ops[4] = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"};
  for (int o = 0; o < 4; o++) {
    reduce_case(ops[o], 2, d1, 1, last, 18, 1, 0, 1);
    reduce_case(ops[o], 2, d2, 1, last, 13, 1, 0, 1);
    reduce_case(ops[o], 3, d3, 1, last, 18, 0, 0, 1);
    reduce_case(ops[o], 3, d4, 2, two, 13, 0, 0, 1);
    reduce_case(ops[o], 3, d4, 2, two, 18, 1, 0, 1);
    reduce_case(ops[o], 3, d4, 1, first, 18, 1, 0, o < 2 ? 2 : 0);
  }
  reduce_case("ReduceMax", 2, d2, 1, last, 18, 1, 1, 1);
  reduce_case("ReduceMin", 3, d4, 2, two, 13, 0, 1, 1);
}

/* ---------- Eventful fusion ------------------------------------------------------------------- */
/* TokenGate(x [T, N, D]) -> xg, idx; the token-wise GEMM(s) on xg; TokenBuffer(y, idx, x) -> out;
 * Relu(out) is the graph output (a buffer's output that is a graph output is not absorbed).
 * variant 0: MatMul + bias (gather prologue, scatter epilogue on the bias step);
 *         1: LayerNorm -> MatMul, no bias (gather under the LayerNorm prologue; scatter of the
 *            GEMM's primary result through an identity step);
 *         2: xg read by two MatMuls (no gather: the gate writes xg; the sum scatters);
 *         3: y also read by a Mul feeding a second buffer (the first buffer is not absorbed, the
 *            second is);
 *         4: as 0, but the drift is quantised (few distinct error norms: many exact ties at the
 *            selection threshold, which the generated radix select must break like the
 *            interpreter's quickselect: lower token index first).
 * Runs frames of a drifting input through the JIT and the interpreter with the knob eventful.r
 * changing, a reset in the middle; every frame equal (rel. L2 <= 1e-5), the stats name the fusion. */
static void evt_case(int variant, int64_t T, int64_t N, int64_t D, int64_t O, int want_gather, int want_scatter,
                     int n_buffers) {
  vt_graph *g = new_graph();
  assert_int_equal(vt_graph_set_opset(g, "ai.vtopt", 1), 0);
  int64_t xd[3] = {T, N, D}, wd[2] = {D, O}, od[1] = {O}, dd[1] = {D};
  int32_t x = add_input(g, "x", 3, xd);
  int32_t xg = vt_graph_add_value(g, "xg", VT_UNDEFINED, -1, NULL), idx = vt_graph_add_value(g, "idx", VT_UNDEFINED, -1, NULL);
  int32_t gn = vt_graph_add_node(g, "gate", vt_op_lookup("TokenGate", "ai.vtopt"), 1, &x, 2, (int32_t[]){xg, idx});
  assert_true(gn >= 0);
  vt_node_add_attr(g, gn, "r", VT_ATTR_INT)->i = 5;
  int32_t a = xg;
  if (variant == 1) {
    int32_t sc = add_const(g, "ln_scale", 1, dd, 1.0f), bi = add_const(g, "ln_bias", 1, dd, 1.0f);
    a = node(g, "LayerNormalization", 3, (int32_t[]){xg, sc, bi});
  }
  int32_t y = node(g, "MatMul", 2, (int32_t[]){a, add_const(g, "w", 2, wd, 0.3f)});
  if (variant != 1) y = node(g, "Add", 2, (int32_t[]){y, add_const(g, "b", 1, od, 1.0f)});
  if (variant == 2) y = node(g, "Add", 2, (int32_t[]){y, node(g, "MatMul", 2, (int32_t[]){xg, add_const(g, "w2", 2, wd, 0.3f)})});
  int32_t outs[2];
  for (int k = 0; k < n_buffers; k++) {
    int32_t yk = k == 0 ? y : node(g, "Mul", 2, (int32_t[]){y, y});
    char name[16];
    snprintf(name, sizeof name, "buf%d", k);
    outs[k] = vt_graph_add_value(g, name, VT_UNDEFINED, -1, NULL);
    assert_true(vt_graph_add_node(g, name, vt_op_lookup("TokenBuffer", "ai.vtopt"), 3, (int32_t[]){yk, idx, x}, 1,
                                  &outs[k]) >= 0);
  }
  int32_t z = n_buffers == 2 ? node(g, "Add", 2, outs) : outs[0];
  z = node(g, "Relu", 1, &z);
  assert_int_equal(vt_graph_add_output(g, z), 0);
  vt_error e = {0};
  if (vt_graph_prepare(g, NULL, NULL, 0, &e)) fail_msg("prepare: %s", e.msg);

  FILE *sf = tmpfile();
  assert_non_null(sf);
  vt_cg_options opt = {.opt_level = 3, .threads = 2, .stats = sf};
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) fail_msg("jit compile: %s", e.msg);
  char stats[1 << 16];
  size_t sn = (rewind(sf), fread(stats, 1, sizeof stats - 1, sf));
  stats[sn] = 0;
  fclose(sf);
  char want[200];
  snprintf(want, sizeof want, "%d of 1 TokenGates gathered by their GEMM's prologue (xg not written), %d of %d TokenBuffers absorbed",
           want_gather, want_scatter, n_buffers);
  if (!strstr(stats, want)) fail_msg("stats lack '%s':\n%s", want, stats);
  if (!want_gather) assert_non_null(strstr(stats, "xg written: xg is read by another node besides its GEMM"));
  if (want_scatter < n_buffers) assert_non_null(strstr(stats, "not absorbed: y is read by another node too"));
  if (want_gather) assert_non_null(strstr(stats, "gather prologue"));
  if (want_scatter) assert_non_null(strstr(stats, "scatter epilogue"));
  assert_non_null(strstr(stats, "1 of 1 TokenGates run generated loops"));

  vt_interp *it = vt_interp_new(g, 2, &e);
  assert_non_null(it);
  vt_tensor in = {0}, oi = {0}, oj = {0};
  assert_int_equal(vt_tensor_alloc(&in, VT_F32, 3, xd, &e), 0);
  float *xp = in.data;
  int64_t nt = T * N;
  for (int64_t k = 0; k < nt * D; k++) xp[k] = frand();
  const double rs[] = {5, 5, 0, 1000, 3, -1, 12, 7, 2, 9};   /* -1: reset before this frame */
  for (int f = 0; f < (int)(sizeof rs / sizeof rs[0]); f++) {
    if (rs[f] < 0) {
      vt_jit_reset(j);
      assert_int_equal(vt_interp_reset(it), 0);
    } else {
      assert_int_equal(vt_jit_set_knob(j, "eventful.r", rs[f], &e), 0);
      assert_int_equal(vt_interp_set_knob(it, "eventful.r", rs[f]), 0);
    }
    if (f > 0 && variant == 4)
      for (int64_t t = 0; t < nt; t++) xp[t * D] += (float)((t * 13 + f) % 4) * 0.25f;
    else if (f > 0)   /* drift: small noise everywhere, a few tokens jump */
      for (int64_t t = 0; t < nt; t++) {
        float amp = frand() > 0.7f ? 1.0f : 0.01f;
        for (int64_t c = 0; c < D; c++) xp[t * D + c] += amp * frand();
      }
    if (vt_interp_run(it, &in, &oi, &e)) fail_msg("interp frame %d: %s", f, e.msg);
    if (vt_jit_run(j, &in, &oj, &e)) fail_msg("jit frame %d: %s", f, e.msg);
    double err = rel_l2(&oj, &oi);
    if (!(err <= 1e-5)) fail_msg("eventful variant %d frame %d (r %g): rel L2 %.3g", variant, f, rs[f], err);
    vt_tensor_free(&oi);
    vt_tensor_free(&oj);
  }
  /* the persistent buffers are per-stream state, counted like the interpreter's buffer state */
  size_t sb = 0;
  int64_t done = 0, seen = 0;
  vt_jit_state_info(j, &sb, &done, &seen);
  size_t ib = vt_interp_state_bytes(it);
  fprintf(stderr, "  eventful variant %d: T=%lld N=%lld D=%lld O=%lld, state %zu bytes (interpreter %zu)\n", variant,
          (long long)T, (long long)N, (long long)D, (long long)O, sb, ib);
  assert_true(sb + 256 * (size_t)n_buffers >= ib && sb <= ib + 256 * (size_t)n_buffers);
  assert_true(sb >= (size_t)(nt * O * 4 * n_buffers));
  vt_tensor_free(&in);
  vt_interp_free(it);
  vt_jit_free(j);
  vt_graph_free(g);
}

static void test_eventful_fusion(void **state) {
  (void)state;
  evt_case(0, 2, 230, 300, 37, 1, 1, 1);   /* 460 tokens: 3 row blocks at the flush, 2 K blocks */
  evt_case(1, 1, 37, 24, 19, 1, 1, 1);
  evt_case(2, 1, 41, 24, 19, 0, 1, 1);
  evt_case(3, 1, 41, 24, 19, 1, 1, 2);
  evt_case(4, 1, 301, 24, 19, 1, 1, 1);
}

/* Transpose: several permutations and ranks (f32), the default (reversed) permutation, and an
 * int64 tensor (8-byte elements; the Casts around it run interpreter kernels). */
static void perm_case(int rank, const int64_t *dims, const int64_t *perm, int via_i64) {
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", rank, dims);
  int32_t t = x;
  if (via_i64) {
    int32_t s10 = add_scalar(g, "s10", 10.0f);
    t = node(g, "Mul", 2, (int32_t[]){t, s10});
    t = node(g, "Cast", 1, &t);
    vt_node_add_attr(g, g->n_nodes - 1, "to", VT_ATTR_INT)->i = VT_I64;
  }
  t = node(g, "Transpose", 1, &t);
  if (perm) last_node_ints(g, "perm", rank, perm);
  if (via_i64) {
    t = node(g, "Cast", 1, &t);
    vt_node_add_attr(g, g->n_nodes - 1, "to", VT_ATTR_INT)->i = VT_F32;
  }
  assert_int_equal(vt_graph_add_output(g, t), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  transpose rank %d%s: rel L2 %.3g\n", rank, via_i64 ? " (int64)" : "", err);
  assert_true(err == 0);
  assert_int_equal(st.n_copy, 1);
  assert_int_equal(st.n_fallback, via_i64 ? 2 : 0);
  vt_graph_free(g);
}

static void test_transpose(void **state) {
  (void)state;
  static const int64_t d1[1] = {7}, d2[2] = {7, 197}, d3[3] = {3, 7, 5}, d4[4] = {2, 3, 7, 5}, d5[5] = {2, 7, 3, 4, 5};
  static const int64_t p2[2] = {1, 0}, p3[3] = {1, 2, 0}, p4[4] = {0, 2, 1, 3}, p5[5] = {2, 0, 3, 1, 4};
  static const int64_t p4b[4] = {0, 2, 3, 1};
  perm_case(1, d1, NULL, 0);
  perm_case(2, d2, p2, 0);
  perm_case(3, d3, p3, 0);
  perm_case(3, d3, NULL, 0);
  perm_case(4, d4, p4, 0);
  perm_case(4, d4, p4b, 0);
  perm_case(5, d5, p5, 0);
  perm_case(3, d3, p3, 1);
}

/* ai.vtopt.Attention (fused, online softmax) against the reference kernel. mask: 0 none, 1 float
 * additive [Nq, Nk], 2 bool [B, 1, Nq, Nk] (a Less node makes it: ~half the keys masked, some
 * rows fully), 3 bool via a causal attribute instead. key_bias [B, 1, Nk] when kbias. */
static void attn_case(int64_t B, int64_t H, int64_t Hkv, int64_t Nq, int64_t Nk, int64_t Dh, int64_t Dv, int mask,
                      int kbias, float scale) {
  vt_graph *g = new_graph();
  assert_int_equal(vt_graph_set_opset(g, "ai.vtopt", 1), 0);
  int64_t qd[4] = {B, H, Nq, Dh}, kd[4] = {B, Hkv, Nk, Dh}, vd[4] = {B, Hkv, Nk, Dv};
  int32_t in[5] = {add_input(g, "q", 4, qd), add_input(g, "k", 4, kd), add_input(g, "v", 4, vd), -1, -1};
  int nin = 3;
  if (mask == 1) {
    int64_t md[2] = {Nq, Nk};
    in[3] = add_input(g, "mask", 2, md);
    nin = 4;
  } else if (mask == 2) {
    int64_t md[4] = {B, 1, Nq, Nk};
    int32_t m = add_input(g, "mraw", 4, md);
    int32_t thr = add_scalar(g, "thr", 0.3f);
    in[3] = node(g, "Less", 2, (int32_t[]){m, thr});
    nin = 4;
  }
  if (kbias) {
    int64_t kbd[3] = {B, 1, Nk};
    in[4] = add_input(g, "kbias", 3, kbd);
    nin = 5;
  }
  int32_t out = vt_graph_add_value(g, "attn_out", VT_UNDEFINED, -1, NULL);
  int op = vt_op_lookup("Attention", "ai.vtopt");
  assert_true(op >= 0);
  int32_t n = vt_graph_add_node(g, "attn", op, nin, in, 1, &out);
  assert_true(n >= 0);
  if (scale != 0.0f) vt_node_add_attr(g, n, "scale", VT_ATTR_FLOAT)->f = scale;
  if (mask == 3) vt_node_add_attr(g, n, "causal", VT_ATTR_INT)->i = 1;
  assert_int_equal(vt_graph_add_output(g, out), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  attention B=%lld H=%lld Hkv=%lld Nq=%lld Nk=%lld Dh=%lld Dv=%lld mask=%d kbias=%d: rel L2 %.3g\n",
          (long long)B, (long long)H, (long long)Hkv, (long long)Nq, (long long)Nk, (long long)Dh, (long long)Dv, mask,
          kbias, err);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_attention, 1);
  assert_int_equal(st.n_fallback, mask == 2 ? 1 : 0);
  vt_graph_free(g);
}

static void test_attention(void **state) {
  (void)state;
  static const int64_t ns[4] = {1, 7, 197, 1025};
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++) {
      if (ns[a] * ns[b] > 197 * 1025) continue;   /* keep the reference's time down */
      attn_case(1, 2, 2, ns[a], ns[b], 64, 64, 0, 0, 0.0f);
    }
  attn_case(1, 2, 2, 1025, 1025, 64, 64, 0, 0, 0.0f);
  attn_case(2, 4, 2, 197, 7, 64, 64, 1, 1, 0.0f);       /* GQA, float mask, key bias */
  attn_case(1, 3, 1, 7, 197, 64, 64, 2, 0, 0.25f);      /* MQA, bool mask, explicit scale */
  attn_case(2, 2, 1, 197, 197, 64, 64, 2, 1, 0.0f);
  attn_case(1, 2, 2, 7, 197, 64, 64, 3, 0, 0.0f);       /* causal, Nq < Nk (bottom-right) */
  attn_case(1, 2, 2, 197, 7, 64, 64, 3, 1, 0.0f);       /* causal, Nq > Nk: early rows empty */
  attn_case(1, 2, 2, 197, 197, 64, 64, 3, 0, 0.0f);
  attn_case(1, 2, 1, 65, 130, 40, 24, 1, 0, 0.0f);      /* head dims not multiples of 16 */
  attn_case(1, 1, 1, 49, 70, 7, 3, 0, 1, 0.0f);
  /* logits spread by tens: later key blocks raise the running max by more than the lazy
   * rescaling threshold (VT_CG_ATT_RESCALE), so the rescale path runs, and some rows not */
  attn_case(1, 2, 2, 197, 1025, 64, 64, 0, 0, 4.0f);
  attn_case(1, 2, 2, 197, 197, 64, 64, 1, 1, 4.0f);
}

/* Style 3 (as nn.MultiheadAttention exports it): x -> MatMul -> three Slices of the last axis ->
 * Reshape [B, N, H, Dh] -> Transpose (0, 2, 1, 3) each -> Attention -> Reshape [B * H, N, Dh] ->
 * Transpose (1, 0, 2) -> Reshape [N, B, C] -> MatMul: the Slices are strided views, and the
 * output is reached through a view before its Transpose (11 nodes absorbed). */
static void attn_layout_slices(int64_t B, int64_t N, int64_t H, int64_t Dh) {
  vt_graph *g = new_graph();
  assert_int_equal(vt_graph_set_opset(g, "ai.vtopt", 1), 0);
  int64_t C = H * Dh;
  int32_t x = add_input(g, "x", 3, (int64_t[]){B, N, C});
  int32_t qkv = node(g, "MatMul", 2, (int32_t[]){x, add_const(g, "wqkv", 2, (int64_t[]){C, 3 * C}, 0.3f)});
  int32_t heads[3];
  for (int i = 0; i < 3; i++) {
    char nm[3][16];
    for (int k = 0; k < 3; k++) snprintf(nm[k], sizeof nm[k], "sl%d_%d", i, k);
    int32_t sl = node(g, "Slice", 4, (int32_t[]){qkv, add_shape(g, nm[0], 1, (int64_t[]){i * C}),
                                                 add_shape(g, nm[1], 1, (int64_t[]){(i + 1) * C}),
                                                 add_shape(g, nm[2], 1, (int64_t[]){-1})});
    char rn[16];
    snprintf(rn, sizeof rn, "r4_%d", i);
    int32_t r = node(g, "Reshape", 2, (int32_t[]){sl, add_shape(g, rn, 4, (int64_t[]){B, N, H, Dh})});
    heads[i] = node(g, "Transpose", 1, &r);
    last_node_ints(g, "perm", 4, (int64_t[]){0, 2, 1, 3});
  }
  int32_t out = vt_graph_add_value(g, "attn_out", VT_UNDEFINED, -1, NULL);
  assert_true(vt_graph_add_node(g, "attn", vt_op_lookup("Attention", "ai.vtopt"), 3, heads, 1, &out) >= 0);
  int32_t o = node(g, "Reshape", 2, (int32_t[]){out, add_shape(g, "s3a", 3, (int64_t[]){B * H, N, Dh})});
  o = node(g, "Transpose", 1, &o);
  last_node_ints(g, "perm", 3, (int64_t[]){1, 0, 2});
  o = node(g, "Reshape", 2, (int32_t[]){o, add_shape(g, "s3b", 3, (int64_t[]){N, B, C})});
  int32_t y = node(g, "MatMul", 2, (int32_t[]){o, add_const(g, "wo", 2, (int64_t[]){C, C}, 0.3f)});
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  attention layout slices B=%lld N=%lld H=%lld Dh=%lld: rel L2 %.3g, %d layout nodes absorbed\n",
          (long long)B, (long long)N, (long long)H, (long long)Dh, err, st.n_absorbed);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_attention, 1);
  assert_int_equal(st.n_fallback, 0);
  assert_int_equal(st.n_absorbed, 11);
  vt_graph_free(g);
}

/* Attention between exported layout nodes: x [B, N, C] -> MatMul -> Reshape [B, N, 3, H, Dh] ->
 * Transpose (2, 0, 3, 1, 4) -> q, k, v (style 0: Split + Squeeze as timm exports it; 1: Gather
 * with a scalar index) -> ai.vtopt.Attention -> Transpose (0, 2, 1, 3) -> Reshape [B, N, H * Dh]
 * -> MatMul. The attention kernel reads Q, K, V in the projection's output and writes the merged
 * layout, so every layout node is absorbed (no kernel). Style 2: as 0 with k also read by another
 * node, so the input side stays as it was and only the output Transpose is absorbed. JIT against
 * the interpreter. */
static void attn_layout_case(int style, int64_t B, int64_t N, int64_t H, int64_t Dh) {
  vt_graph *g = new_graph();
  assert_int_equal(vt_graph_set_opset(g, "ai.vtopt", 1), 0);
  int64_t C = H * Dh;
  int32_t x = add_input(g, "x", 3, (int64_t[]){B, N, C});
  int32_t qkv = node(g, "MatMul", 2, (int32_t[]){x, add_const(g, "wqkv", 2, (int64_t[]){C, 3 * C}, 0.3f)});
  int32_t r = node(g, "Reshape", 2, (int32_t[]){qkv, add_shape(g, "s5", 5, (int64_t[]){B, N, 3, H, Dh})});
  int32_t t = node(g, "Transpose", 1, &r);
  last_node_ints(g, "perm", 5, (int64_t[]){2, 0, 3, 1, 4});
  int32_t qkvh[3];
  if (style == 1) {
    for (int i = 0; i < 3; i++) {
      char nm[16];
      snprintf(nm, sizeof nm, "i%d", i);
      int64_t *ix = malloc(sizeof *ix);
      assert_non_null(ix);
      *ix = i;
      assert_int_equal(vt_graph_own(g, ix), 0);
      vt_tensor it;
      memset(&it, 0, sizeof it);
      it.dtype = VT_I64;
      it.data = ix;
      int32_t iv = vt_graph_add_const(g, nm, &it);
      qkvh[i] = node(g, "Gather", 2, (int32_t[]){t, iv});
    }
  } else {
    int32_t parts[3];
    for (int i = 0; i < 3; i++) {
      char nm[16];
      snprintf(nm, sizeof nm, "part%d", i);
      parts[i] = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
    }
    assert_true(vt_graph_add_node(g, "split", vt_op_lookup("Split", ""), 1, &t, 3, parts) >= 0);
    int32_t ax = add_shape(g, "ax0", 1, (int64_t[]){0});
    for (int i = 0; i < 3; i++) qkvh[i] = node(g, "Squeeze", 2, (int32_t[]){parts[i], ax});
  }
  int32_t out = vt_graph_add_value(g, "attn_out", VT_UNDEFINED, -1, NULL);
  assert_true(vt_graph_add_node(g, "attn", vt_op_lookup("Attention", "ai.vtopt"), 3, qkvh, 1, &out) >= 0);
  int32_t o = node(g, "Transpose", 1, &out);
  last_node_ints(g, "perm", 4, (int64_t[]){0, 2, 1, 3});
  o = node(g, "Reshape", 2, (int32_t[]){o, add_shape(g, "s3", 3, (int64_t[]){B, N, C})});
  int32_t y = node(g, "MatMul", 2, (int32_t[]){o, add_const(g, "wo", 2, (int64_t[]){C, C}, 0.3f)});
  assert_int_equal(vt_graph_add_output(g, y), 0);
  if (style == 2) assert_int_equal(vt_graph_add_output(g, node(g, "Neg", 1, &qkvh[1])), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  attention layout style %d B=%lld N=%lld H=%lld Dh=%lld: rel L2 %.3g, %d layout nodes absorbed\n",
          style, (long long)B, (long long)N, (long long)H, (long long)Dh, err, st.n_absorbed);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_attention, 1);
  assert_int_equal(st.n_fallback, 0);
  /* Reshape, Transpose, Split + 3 Squeeze | 3 Gather, the output Transpose; style 2: the last only */
  assert_int_equal(st.n_absorbed, style == 0 ? 7 : style == 1 ? 6 : 1);
  vt_graph_free(g);
}

static void test_attention_layout(void **state) {
  (void)state;
  attn_layout_case(0, 1, 197, 6, 64);
  attn_layout_case(0, 2, 7, 3, 5);
  attn_layout_case(1, 2, 7, 3, 5);
  attn_layout_case(1, 1, 1, 2, 16);
  attn_layout_case(2, 1, 33, 2, 24);
  attn_layout_slices(1, 197, 6, 64);
  attn_layout_slices(2, 7, 3, 5);
}

/* ai.vtopt.Attention with the decomposed relative-position bias: y1 = Attention(q, k, v,
 * bias_rows [rd], bias_cols [cd]) and y2 = Attention(q, k, v, mask) with the mask built in the
 * graph as Reshape(Add(Unsqueeze(cols, -2), Unsqueeze(rows, -1)), [B,H,Nq,Nk]) (what
 * fuse-attention used to emit). JIT against the interpreter (rel L2 <= 1e-5, both attentions
 * generated), and in the JIT y1 equals y2 bit for bit (the kernel adds the same rows + cols sum
 * the mask holds). rd/cd: rank 4 with 1 where a dim broadcasts. */
static void attn_relpos_case(int64_t B, int64_t H, int64_t Nq, int64_t kh, int64_t kw, int64_t Dh, const int64_t *rd,
                             const int64_t *cd, int causal) {
  vt_graph *g = new_graph();
  assert_int_equal(vt_graph_set_opset(g, "ai.vtopt", 1), 0);
  int64_t Nk = kh * kw;
  int64_t qd[4] = {B, H, Nq, Dh}, kd[4] = {B, H, Nk, Dh};
  int32_t q = add_input(g, "q", 4, qd), k = add_input(g, "k", 4, kd), v = add_input(g, "v", 4, kd);
  int32_t rows = add_input(g, "rows", 4, rd), cols = add_input(g, "cols", 4, cd);
  int op = vt_op_lookup("Attention", "ai.vtopt");
  int32_t y[2];
  for (int t = 0; t < 2; t++) {
    int32_t in[7] = {q, k, v, -1, -1, rows, cols};
    if (t == 1) {   /* the materialised mask */
      int64_t *ax = malloc(2 * sizeof *ax), *sh = malloc(4 * sizeof *sh);
      assert_true(ax && sh);
      ax[0] = -2; ax[1] = -1;
      sh[0] = B; sh[1] = H; sh[2] = Nq; sh[3] = Nk;
      assert_int_equal(vt_graph_own(g, ax), 0);
      assert_int_equal(vt_graph_own(g, sh), 0);
      vt_tensor at = {.dtype = VT_I64, .rank = 1, .dims = {1}, .data = ax}, bt = at, st = {.dtype = VT_I64, .rank = 1, .dims = {4}, .data = sh};
      bt.data = ax + 1;
      int32_t c4 = node(g, "Unsqueeze", 2, (int32_t[]){cols, vt_graph_add_const(g, "ax_c", &at)});
      int32_t r4 = node(g, "Unsqueeze", 2, (int32_t[]){rows, vt_graph_add_const(g, "ax_r", &bt)});
      int32_t sum = node(g, "Add", 2, (int32_t[]){c4, r4});
      in[3] = node(g, "Reshape", 2, (int32_t[]){sum, vt_graph_add_const(g, "mask_shape", &st)});
    }
    y[t] = vt_graph_add_value(g, t ? "y_mask" : "y_rel", VT_UNDEFINED, -1, NULL);
    int32_t n = vt_graph_add_node(g, t ? "attn_mask" : "attn_rel", op, t ? 4 : 7, in, 1, &y[t]);
    assert_true(n >= 0);
    vt_node_add_attr(g, n, "scale", VT_ATTR_FLOAT)->f = 0.3f;
    if (causal) vt_node_add_attr(g, n, "causal", VT_ATTR_INT)->i = 1;
    assert_int_equal(vt_graph_add_output(g, y[t]), 0);
  }
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  attention rel-pos B=%lld H=%lld Nq=%lld kh=%lld kw=%lld Dh=%lld causal=%d: rel L2 %.3g\n", (long long)B,
          (long long)H, (long long)Nq, (long long)kh, (long long)kw, (long long)Dh, causal, err);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_attention, 2);
  /* JIT: decomposed == materialised */
  vt_error e = {0};
  vt_tensor in[5], out[2];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *iv = &g->values[g->inputs[i]];
    int64_t dims[VT_MAX_RANK];
    for (int d = 0; d < iv->rank; d++) dims[d] = iv->dims[d];
    assert_int_equal(vt_tensor_alloc(&in[i], VT_F32, iv->rank, dims, &e), 0);
    for (int64_t x = 0; x < vt_tensor_numel(&in[i]); x++) ((float *)in[i].data)[x] = frand();
  }
  /* VT_TEST_STATS=1: each compiled graph's --stats kernel list on stderr (for debugging a case) */
  vt_cg_options opt = {.opt_level = 3, .threads = 2, .stats = getenv("VT_TEST_STATS") ? stderr : NULL};
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) fail_msg("jit compile: %s", e.msg);
  if (vt_jit_run(j, in, out, &e)) fail_msg("jit run: %s", e.msg);
  assert_int_equal(vt_tensor_numel(&out[0]), B * H * Nq * Dh);
  if (memcmp(out[0].data, out[1].data, vt_tensor_nbytes(&out[0])) != 0)
    fail_msg("jit: decomposed bias differs from its materialised mask (rel L2 %g)", rel_l2(&out[0], &out[1]));
  for (int i = 0; i < 2; i++) vt_tensor_free(&out[i]);
  for (int32_t i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  vt_jit_free(j);
  vt_graph_free(g);
}

static void test_attention_relpos(void **state) {
  (void)state;
  /* kh = 3, kw = 5 (a 64-key block spans whole and partial grid rows), Nq != Nk */
  attn_relpos_case(2, 3, 7, 3, 5, 16, (int64_t[]){2, 3, 7, 3}, (int64_t[]){2, 3, 7, 5}, 0);
  /* 14 x 14 windows and the 42 x 42 grid's block boundaries (Nk = 196, 1764 cut to 23 x 13 = 299
   * here), broadcast leading dims */
  attn_relpos_case(1, 2, 197, 14, 14, 64, (int64_t[]){1, 2, 197, 14}, (int64_t[]){1, 1, 197, 14}, 0);
  attn_relpos_case(2, 2, 100, 23, 13, 40, (int64_t[]){2, 1, 100, 23}, (int64_t[]){1, 2, 100, 13}, 0);
  attn_relpos_case(1, 2, 50, 9, 7, 24, (int64_t[]){1, 2, 50, 9}, (int64_t[]){1, 2, 50, 7}, 1);   /* causal */
}

/* exp / erf / tanh / sigmoid over a wide range, including overflow to inf and underflow. */
static void test_math_range(void **state) {
  (void)state;
  vt_graph *g = new_graph();
  int64_t xd[1] = {4099};
  int32_t x = add_input(g, "x", 1, xd);
  int32_t s = add_scalar(g, "s", 40.0f);
  int32_t w = node(g, "Mul", 2, (int32_t[]){x, s});   /* [-40, 40] */
  const char *ops[] = {"Exp", "Erf", "Tanh", "Sigmoid"};
  for (int i = 0; i < 4; i++) {
    int32_t o = node(g, ops[i], 1, &w);
    assert_int_equal(vt_graph_add_output(g, o), 0);
  }
  int32_t big = add_scalar(g, "big", 100.0f);
  int32_t w2 = node(g, "Mul", 2, (int32_t[]){x, big});
  int32_t e2 = node(g, "Exp", 1, &w2);                 /* inf above 88.7, 0 below -103 */
  assert_int_equal(vt_graph_add_output(g, e2), 0);
  /* Log over [e^-100, e^100]: denormals below e^-87, 0 (-inf) below e^-103.9, inf above e^88.7;
   * and of |100 x| (around 1 and near 0) */
  int32_t l1 = node(g, "Log", 1, &e2);
  assert_int_equal(vt_graph_add_output(g, l1), 0);
  int32_t a2 = node(g, "Abs", 1, &w2);
  int32_t l2 = node(g, "Log", 1, &a2);
  assert_int_equal(vt_graph_add_output(g, l2), 0);
  /* Erf near 0 (its odd-polynomial branch) and across the branch point |x| = 1 */
  int32_t tiny = add_scalar(g, "tiny", 1e-3f);
  int32_t w3 = node(g, "Mul", 2, (int32_t[]){x, tiny});
  int32_t ef3 = node(g, "Erf", 1, &w3);
  assert_int_equal(vt_graph_add_output(g, ef3), 0);
  int32_t two = add_scalar(g, "two", 2.0f);
  int32_t w4 = node(g, "Mul", 2, (int32_t[]){x, two});
  int32_t ef4 = node(g, "Erf", 1, &w4);
  assert_int_equal(vt_graph_add_output(g, ef4), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  math range: rel L2 %.3g\n", err);
  assert_true(err <= 1e-5);
  assert_int_equal(st.n_fallback, 0);
  vt_graph_free(g);
}

/* ---------- checks -------------------------------------------------------------------------- */
static void test_symbolic_refused(void **state) {
  (void)state;
  vt_graph *g = new_graph();
  vt_dim d[2] = {vt_dim_named(g, "batch"), 8};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 2, d);
  assert_int_equal(vt_graph_add_input(g, x), 0);
  int32_t y = node(g, "Relu", 1, &x);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_error e = {0};
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), 0);
  vt_jit *j = vt_jit_compile(g, NULL, &e);
  assert_null(j);
  assert_int_equal(e.code, VT_ERR_MODEL);
  if (!strstr(e.msg, "--dim")) fail_msg("message lacks the --dim hint: %s", e.msg);
  vt_graph_free(g);
}

static void test_bad_inputs(void **state) {
  (void)state;
  vt_graph *g = new_graph();
  int64_t xd[2] = {4, 8};
  int32_t x = add_input(g, "x", 2, xd);
  int32_t y = node(g, "Relu", 1, &x);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_error e = {0};
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), 0);
  vt_jit *j = vt_jit_compile(g, NULL, &e);
  assert_non_null(j);
  vt_tensor in, out;
  memset(&in, 0, sizeof in);
  int64_t wrong[2] = {4, 9};
  assert_int_equal(vt_tensor_alloc(&in, VT_F32, 2, wrong, &e), 0);
  assert_int_equal(vt_jit_run(j, &in, &out, &e), VT_ERR_MODEL);
  if (!strstr(e.msg, "dim 1 is 9")) fail_msg("unexpected message: %s", e.msg);
  vt_tensor_free(&in);
  vt_error_clear(&e);
  int64_t r1[1] = {32};
  assert_int_equal(vt_tensor_alloc(&in, VT_F32, 1, r1, &e), 0);
  assert_int_equal(vt_jit_run(j, &in, &out, &e), VT_ERR_MODEL);
  vt_tensor_free(&in);
  vt_jit_free(j);
  vt_graph_free(g);
}

/* ---------- whole model --------------------------------------------------------------------- */
#define ZOO_DIR VT_BINARY_DIR "/testsuite/codegen_zoo"
#define ZOO_MODEL ZOO_DIR "/vit_tiny_op17.onnx"

/* The tiny zoo ViT (generated on first use), prepared with batch = 2. */
static vt_graph *load_vit_tiny(void) {
  if (access(ZOO_MODEL, R_OK) != 0 &&
      system("/usr/bin/python3 '" VT_SOURCE_DIR "/testsuite/models/gen_zoo.py' --only vit_tiny_op17 --out '" ZOO_DIR
             "' >/dev/null") != 0)
    fail_msg("cannot generate %s (needs /usr/bin/python3 with torch and onnx)", ZOO_MODEL);
  vt_error e = {0};
  vt_graph *g = NULL;
  if (vt_onnx_load(ZOO_MODEL, &g, &e)) fail_msg("%s", e.msg);
  const char *names[1] = {"batch"};
  int64_t vals[1] = {2};
  if (vt_graph_prepare(g, names, vals, 1, &e)) fail_msg("%s", e.msg);
  return g;
}

static void test_vit_tiny(void **state) {
  (void)state;
  vt_graph *g = load_vit_tiny();
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  vit_tiny_op17 (batch 2): rel L2 %.3g; %d gemm, %d elementwise, %d row, %d copy, %d fallback; %.0f ms\n",
          err, st.n_gemm, st.n_elementwise, st.n_row, st.n_copy, st.n_fallback, st.compile_ms);
  assert_true(err <= 1e-4);
  /* the JIT must not silently run everything through the interpreter */
  assert_true(st.n_gemm >= 9);   /* 2 blocks x 4 linear layers + the head */
  assert_true(st.n_row >= 3);    /* 2 Softmax + the final LayerNormalization (the 4 in the blocks are
                                    * prologues of the qkv / fc1 GEMMs) */
  assert_true(st.n_fused_nodes > 0);
  vt_graph_free(g);
}

/* ---------- fast.so ------------------------------------------------------------------------- */
typedef struct {
  void *h;
  const char *(*signature)(void);
  int (*create)(int, vtopt_session **);
  int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
  const char *(*last_error)(const vtopt_session *);
  void (*destroy)(vtopt_session *);
} so_api;

static void so_open(so_api *a, const char *path, const char *tag) {
  a->h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!a->h) fail_msg("dlopen %s: %s", path, dlerror());
  char n[128];
#define SYM(f) (snprintf(n, sizeof n, "%s_" #f, tag), *(void **)&a->f = dlsym(a->h, n), assert_non_null(a->f))
  SYM(signature); SYM(create); SYM(run); SYM(last_error); SYM(destroy);
#undef SYM
}

/* What a library's compile generated (its --stats summary line). */
typedef struct { int kernels, gemm, elementwise, row, attention, copy, host, generated, nodes, host_matmul; } so_counts;

/* Compiles g to path (relative: the test's working directory, one per ISA run) with tag; checks
 * the library against the interpreter through the ABI only; *cnt gets the compile's counts. */
static void so_check(vt_graph *g, const char *path, const char *tag, so_api *a, so_counts *cnt) {
  vt_error e = {0};
  FILE *sf = tmpfile();
  assert_non_null(sf);
  vt_cg_options opt = {.opt_level = 3, .stats = sf};
  if (vt_cg_emit_so(g, &opt, path, tag, &e)) fail_msg("emit so: %s", e.msg);
  char line[4096] = "", l2[1024];
  memset(cnt, 0, sizeof *cnt);
  rewind(sf);
  while (fgets(line, sizeof line, sf) && strncmp(line, "codegen: ", 9)) line[0] = 0;
  while (fgets(l2, sizeof l2, sf)) cnt->host_matmul += strstr(l2, "] host kernel MatMul '") != NULL;
  fclose(sf);
  const char *p = strstr(line, "codegen: ");
  assert_non_null(p);
  assert_int_equal(sscanf(p, "codegen: %d kernels: %d gemm, %d elementwise, %d row, %d attention, %d copy", &cnt->kernels,
                          &cnt->gemm, &cnt->elementwise, &cnt->row, &cnt->attention, &cnt->copy), 6);
  const char *h = strstr(p, "moved), ");
  assert_non_null(h);
  assert_int_equal(sscanf(h, "moved), %d host", &cnt->host), 1);
  const char *gn = strstr(p, " nodes in generated kernels");
  assert_non_null(gn);
  while (gn > p && gn[-1] != ';') gn--;
  assert_int_equal(sscanf(gn, " %d of %d", &cnt->generated, &cnt->nodes), 2);
  fprintf(stderr, "  %s.so: %d kernels (%d gemm, %d elementwise, %d row, %d attention, %d copy), %d host; %d of %d nodes "
          "generated\n", tag, cnt->kernels, cnt->gemm, cnt->elementwise, cnt->row, cnt->attention, cnt->copy, cnt->host,
          cnt->generated, cnt->nodes);
  so_open(a, path, tag);
  const char *sig = a->signature();
  assert_non_null(strstr(sig, "\"inputs\""));
  vtopt_session *s = NULL;
  assert_int_equal(a->create(2, &s), VTOPT_OK);
  vt_tensor *in = calloc((size_t)g->n_inputs + 1, sizeof *in), *oi = calloc((size_t)g->n_outputs + 1, sizeof *oi);
  vt_tensor *os = calloc((size_t)g->n_outputs + 1, sizeof *os);
  assert_true(in && oi && os);
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    int64_t dims[VT_MAX_RANK];
    for (int d = 0; d < v->rank; d++) dims[d] = v->dims[d];
    assert_int_equal(vt_tensor_alloc(&in[i], VT_F32, v->rank, dims, &e), 0);
    for (int64_t k = 0; k < vt_tensor_numel(&in[i]); k++) ((float *)in[i].data)[k] = frand();
  }
  for (int32_t o = 0; o < g->n_outputs; o++) {
    const vt_value *v = &g->values[g->outputs[o]];
    int64_t dims[VT_MAX_RANK];
    for (int d = 0; d < v->rank; d++) dims[d] = v->dims[d];
    assert_int_equal(vt_tensor_alloc(&os[o], v->dtype, v->rank, dims, &e), 0);
  }
  vt_interp *it = vt_interp_new(g, 2, &e);
  assert_non_null(it);
  if (vt_interp_run(it, in, oi, &e)) fail_msg("interp: %s", e.msg);
  if (a->run(s, (const vtopt_tensor *)in, (vtopt_tensor *)os) != VTOPT_OK) fail_msg("so run: %s", a->last_error(s));
  for (int32_t o = 0; o < g->n_outputs; o++) {
    double err = rel_l2(&os[o], &oi[o]);
    fprintf(stderr, "  %s output %d: rel L2 %.3g\n", tag, o, err);
    assert_true(err <= 1e-4);
  }
  /* a wrong dim is an error with a message, not a crash */
  in[0].dims[0] += 1;
  assert_int_equal(a->run(s, (const vtopt_tensor *)in, (vtopt_tensor *)os), VTOPT_ERR_INPUT);
  assert_non_null(strstr(a->last_error(s), "dim 0 is"));
  in[0].dims[0] -= 1;
  a->destroy(s);
  vt_interp_free(it);
  for (int32_t i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  for (int32_t o = 0; o < g->n_outputs; o++) { vt_tensor_free(&oi[o]); vt_tensor_free(&os[o]); }
  free(in); free(oi); free(os);
}

/* ---------- Conv (im2col + GEMM), Concat (block copies), Expand (strided copy) --------------- */
typedef struct {
  int64_t N, C, H, W, Cout, kh, kw;
  int64_t st[2], dl[2], pads[4];   /* pads: top, left, bottom, right */
  int64_t group;
  int bias;
  const char *auto_pad;            /* NULL: explicit pads */
} conv_spec;

/* Y = Conv(x, W[, b]) against the interpreter on random inputs. A 2-D float32 Conv with constant
 * weights and group 1 is one generated im2col + GEMM kernel (counted in n_gemm). */
static void conv_case(const conv_spec *c) {
  vt_graph *g = new_graph();
  int64_t xd[4] = {c->N, c->C, c->H, c->W}, wd[4] = {c->Cout, c->C / c->group, c->kh, c->kw}, bd[1] = {c->Cout};
  int32_t in[3] = {add_input(g, "x", 4, xd), add_const(g, "w", 4, wd, 0.5f), -1};
  if (c->bias) in[2] = add_const(g, "b", 1, bd, 1.0f);
  int32_t y = node(g, "Conv", c->bias ? 3 : 2, in);
  int32_t ni = g->n_nodes - 1;
  last_node_ints(g, "kernel_shape", 2, (int64_t[]){c->kh, c->kw});
  last_node_ints(g, "strides", 2, c->st);
  last_node_ints(g, "dilations", 2, c->dl);
  if (c->auto_pad) {
    vt_attr *at = vt_node_add_attr(g, ni, "auto_pad", VT_ATTR_STRING);
    assert_non_null(at);
    at->s = c->auto_pad;
    at->s_len = strlen(c->auto_pad);
  } else {
    last_node_ints(g, "pads", 4, c->pads);
  }
  if (c->group != 1) vt_node_add_attr(g, ni, "group", VT_ATTR_INT)->i = c->group;
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  const vt_value *yv = &g->values[y];
  fprintf(stderr, "  conv x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] strides %lldx%lld dilations %lldx%lld pads "
          "%lld,%lld,%lld,%lld%s%s group %lld bias %d -> [%lld,%lld]: rel L2 %.3g, %d gemm, %d host\n",
          (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)wd[0], (long long)wd[1],
          (long long)c->kh, (long long)c->kw, (long long)c->st[0], (long long)c->st[1], (long long)c->dl[0],
          (long long)c->dl[1], (long long)c->pads[0], (long long)c->pads[1], (long long)c->pads[2],
          (long long)c->pads[3], c->auto_pad ? " auto_pad " : "", c->auto_pad ? c->auto_pad : "",
          (long long)c->group, c->bias, (long long)yv->dims[2], (long long)yv->dims[3], err, st.n_gemm, st.n_fallback);
  assert_true(err <= 1e-5);
  /* every group count is generated (im2col GEMM for group 1, the direct grouped / depthwise
   * kernel otherwise: both counted as GEMM-like kernels), nothing on the host */
  assert_int_equal(st.n_gemm, 1);
  assert_int_equal(st.n_fallback, 0);
  vt_graph_free(g);
}

/* Pads (symmetric, asymmetric, auto_pad), strides, dilations, non-square and 1x1 kernels, odd
 * sizes, with and without bias; grouped and depthwise. */
static void test_conv(void **state) {
  (void)state;
  static const conv_spec cases[] = {
      /* N  C   H   W Cout kh kw  strides dilations  pads(t,l,b,r)  group bias auto_pad */
      {2, 3, 13, 11, 5, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, 1, NULL},     /* "same" 3x3 */
      {1, 3, 13, 11, 5, 3, 3, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, 0, NULL},     /* no pad, no bias */
      {1, 4, 17, 15, 6, 3, 3, {2, 2}, {1, 1}, {1, 0, 2, 1}, 1, 1, NULL},     /* stride 2, asymmetric pads */
      {2, 3, 15, 9, 4, 3, 3, {1, 1}, {2, 2}, {2, 2, 2, 2}, 1, 1, NULL},      /* dilation 2 */
      {1, 2, 16, 19, 3, 3, 2, {1, 2}, {2, 3}, {1, 3, 0, 2}, 1, 1, NULL},     /* dilations 2x3, strides 1x2 */
      {1, 5, 11, 13, 7, 5, 3, {2, 1}, {1, 1}, {2, 1, 2, 1}, 1, 1, NULL},     /* 5x3 kernel, stride 2x1 */
      {3, 7, 9, 7, 5, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, 1, NULL},       /* 1x1 */
      {1, 16, 10, 12, 33, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, 1, NULL},   /* K = 144, Cout 33 */
      {1, 3, 14, 14, 8, 4, 4, {4, 4}, {1, 1}, {0, 0, 0, 0}, 1, 1, NULL},     /* patchify: kernel = stride */
      {1, 3, 13, 10, 4, 3, 3, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1, 1, "SAME_UPPER"},
      {1, 3, 13, 10, 4, 4, 4, {2, 3}, {1, 1}, {0, 0, 0, 0}, 1, 0, "SAME_LOWER"},
      {2, 6, 11, 9, 9, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, 3, 1, NULL},      /* group 3 */
      {1, 4, 12, 13, 4, 3, 3, {2, 1}, {2, 1}, {2, 1, 2, 1}, 4, 1, NULL},     /* depthwise */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_case(&cases[i]);
}

/* Concat of three values (two inputs and a constant, odd sizes) along each axis: one generated
 * block copy (n_copy), exact. */
static void concat_case(int rank, const int64_t *dims, int axis) {
  vt_graph *g = new_graph();
  int64_t d1[VT_MAX_RANK], d2[VT_MAX_RANK], d3[VT_MAX_RANK];
  int a = axis < 0 ? axis + rank : axis;
  for (int d = 0; d < rank; d++) d1[d] = d2[d] = d3[d] = dims[d];
  d2[a] = dims[a] + 2;
  d3[a] = 1;
  int32_t x1 = add_input(g, "x1", rank, d1), x2 = add_input(g, "x2", rank, d2);
  int32_t k = add_const(g, "k", rank, d3, 1.0f);
  int32_t y = node(g, "Concat", 3, (int32_t[]){x1, k, x2});
  vt_node_add_attr(g, g->n_nodes - 1, "axis", VT_ATTR_INT)->i = axis;
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  concat rank %d axis %d: rel L2 %.3g, %d copy, %d host\n", rank, axis, err, st.n_copy, st.n_fallback);
  assert_true(err == 0);
  assert_int_equal(st.n_copy, 1);
  assert_int_equal(st.n_fallback, 0);
  vt_graph_free(g);
}

static void test_concat(void **state) {
  (void)state;
  static const int64_t d1[1] = {7}, d3[3] = {3, 5, 7}, d4[4] = {2, 3, 5, 9};
  concat_case(1, d1, 0);
  concat_case(3, d3, 0);
  concat_case(3, d3, 1);
  concat_case(3, d3, 2);
  concat_case(4, d4, -1);
  concat_case(4, d4, 1);
}

/* Expand (broadcast to a constant shape, rank kept or raised, size-1 axes anywhere): one
 * generated strided copy (n_copy), exact. */
static void expand_case(int xrank, const int64_t *xd, int yrank, const int64_t *yd) {
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", xrank, xd);
  int32_t y = node(g, "Expand", 2, (int32_t[]){x, add_shape(g, "shape", yrank, yd)});
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st;
  double err = compare(g, &st);
  fprintf(stderr, "  expand rank %d -> %d (last %lld -> %lld): rel L2 %.3g, %d copy, %d host\n", xrank, yrank,
          (long long)xd[xrank - 1], (long long)yd[yrank - 1], err, st.n_copy, st.n_fallback);
  assert_true(err == 0);
  assert_int_equal(st.n_copy, 1);
  assert_int_equal(st.n_fallback, 0);
  vt_graph_free(g);
}

static void test_expand(void **state) {
  (void)state;
  expand_case(1, (int64_t[]){1}, 1, (int64_t[]){7});
  expand_case(1, (int64_t[]){7}, 3, (int64_t[]){3, 5, 7});
  expand_case(2, (int64_t[]){5, 1}, 2, (int64_t[]){5, 9});
  expand_case(3, (int64_t[]){3, 1, 5}, 4, (int64_t[]){2, 3, 4, 5});
  expand_case(4, (int64_t[]){1, 3, 1, 7}, 4, (int64_t[]){2, 3, 5, 7});
}

/* Two different models as shared libraries in one process (tagged symbols), both against the
 * interpreter, with the kernel counts of each library's compile (its stats). The ViT is not
 * fused here (no passes), so its attention is MatMul -> Softmax -> MatMul: the two activation x
 * activation MatMuls per block are the only interpreter kernels inside the library; the small
 * model is all generated code. */
static void test_shared_library(void **state) {
  (void)state;
  vt_error e = {0};
  vt_graph *g = load_vit_tiny();
  so_api a, b;
  so_counts ca, cb;
  so_check(g, "./codegen_vit_tiny.so", "vit_tiny", &a, &ca);
  /* 2 blocks x (packed QKV, proj, fc1, fc2) weight GEMMs + the patch-embedding Conv (im2col +
   * GEMM) + the head; LayerNorms as GEMM prologues or row kernels, Softmaxes as row kernels */
  assert_int_equal(ca.gemm, 10);
  assert_int_equal(ca.row, 3);
  assert_int_equal(ca.attention, 0);
  assert_int_equal(ca.host, 4);          /* Q K^T and P V of each block ... */
  assert_int_equal(ca.host_matmul, 4);   /* ... and nothing else */
  assert_int_equal(ca.generated, ca.nodes - 4);
  vt_graph *g2 = new_graph();
  int64_t ad[2] = {7, 33}, bd[2] = {33, 19}, nd[1] = {19};
  int32_t x = add_input(g2, "x", 2, ad);
  int32_t w = add_const(g2, "w", 2, bd, 1.0f);
  int32_t bias = add_const(g2, "bias", 1, nd, 1.0f);
  int32_t y = node(g2, "MatMul", 2, (int32_t[]){x, w});
  y = node(g2, "Add", 2, (int32_t[]){y, bias});
  y = node(g2, "Softmax", 1, &y);
  assert_int_equal(vt_graph_add_output(g2, y), 0);
  if (vt_graph_prepare(g2, NULL, NULL, 0, &e)) fail_msg("%s", e.msg);
  so_check(g2, "./codegen_small.so", "small", &b, &cb);
  /* MatMul + Add: one GEMM with its bias epilogue; Softmax: one row kernel */
  assert_int_equal(cb.kernels, 2);
  assert_int_equal(cb.gemm, 1);
  assert_int_equal(cb.row, 1);
  assert_int_equal(cb.host, 0);
  assert_int_equal(cb.generated, 3);
  /* both stay usable side by side */
  vtopt_session *s1 = NULL, *s2 = NULL;
  assert_int_equal(a.create(1, &s1), VTOPT_OK);
  assert_int_equal(b.create(1, &s2), VTOPT_OK);
  assert_null(dlsym(b.h, "vit_tiny_create"));   /* no cross-talk between the tags */
  assert_null(dlsym(a.h, "vt_so_create"));      /* support code stays local */
  a.destroy(s1);
  b.destroy(s2);
  dlclose(a.h);
  dlclose(b.h);
  assert_int_equal(vt_cg_emit_so(g2, NULL, "/tmp/x.so", "1bad", &e), VT_ERR_MODEL);
  vt_graph_free(g2);
  vt_graph_free(g);
}

int main(void) {
  if (getenv("VTOPT_CPU")) {   /* one ISA's run (ctest test_codegen_avx2 / _avx512): skip if this CPU can't */
    vt_cg_target_info t;
    vt_error e = {0};
    if (vt_cg_target(NULL, &t, &e)) { fprintf(stderr, "test_codegen: %s\n", e.msg); return 1; }
    if (vt_cpu_missing(t.features, NULL, 0)) {
      fprintf(stderr, "test_codegen: skipped: VTOPT_CPU=%s builds %s kernels, which need %s; this CPU lacks some\n",
              t.cpu, t.isa, t.features);
      return 77;
    }
    fprintf(stderr, "test_codegen: kernels built for %s (%s, micro-tile %d x %d)\n", t.cpu, t.isa, t.mr, t.nr);
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_shared_library),
    cmocka_unit_test(test_gemm_sizes),   cmocka_unit_test(test_gemm_epilogue),
    cmocka_unit_test(test_gemm_op),      cmocka_unit_test(test_ln_gemm),
    cmocka_unit_test(test_eventful_fusion),
    cmocka_unit_test(test_elementwise),
    cmocka_unit_test(test_math_range),   cmocka_unit_test(test_broadcast_tail),
    cmocka_unit_test(test_broadcast_strided), cmocka_unit_test(test_views),
    cmocka_unit_test(test_rows),         cmocka_unit_test(test_transpose),
    cmocka_unit_test(test_reductions),   cmocka_unit_test(test_slice),
    cmocka_unit_test(test_attention),    cmocka_unit_test(test_attention_relpos),
    cmocka_unit_test(test_attention_layout),
    cmocka_unit_test(test_conv),         cmocka_unit_test(test_concat),
    cmocka_unit_test(test_expand),
    cmocka_unit_test(test_symbolic_refused),
    cmocka_unit_test(test_bad_inputs),   cmocka_unit_test(test_vit_tiny),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* built without codegen/ */
static void test_codegen_not_built(void **state) {
  (void)state;
  /* the top CMakeLists adds codegen/ (LLVM 19, which scripts/setup.sh installs) to every build:
   * without it this build is broken, not a skip */
  fail_msg("built without VT_HAVE_CODEGEN: codegen/ (LLVM 19) is not part of this build");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_codegen_not_built)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif

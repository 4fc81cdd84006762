/* test_kernels_math.c — the math family (elementwise, Where/Cast, reductions, softmax family,
 * normalisations) and the shared broadcast helper of kernels_util.h. Each op runs as a one-node
 * graph through shape inference and vt_run_node; expected values are hand-computed or were
 * computed with numpy/torch when the test was written. Also checks known-contents propagation
 * through shape arithmetic (symbolic dims) and the threaded paths against serial loops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "kernels_util.h"
#include "runtime.h"
#include "op_harness.h"

/* ---------- helpers ---------------------------------------------------------------------------- */


static vt_tensor tf32(int rank, const int64_t *dims, const float *vals) {
  vt_tensor t = {0};
  assert_int_equal(vt_tensor_alloc(&t, VT_F32, rank, dims, NULL), VT_OK);
  memcpy(t.data, vals, vt_tensor_nbytes(&t));
  return t;
}
static vt_tensor ti64(int rank, const int64_t *dims, const int64_t *vals) {
  vt_tensor t = {0};
  assert_int_equal(vt_tensor_alloc(&t, VT_I64, rank, dims, NULL), VT_OK);
  memcpy(t.data, vals, vt_tensor_nbytes(&t));
  return t;
}

/* Builds a one-node graph (opset `opset`, 0 = none imported) and runs it. */
static int run_op_v(const char *opname, int64_t opset, int nin, const vt_tensor *const *ins, int nout,
                    vt_tensor *outs, const tattr *attrs, int nattr, vt_pool *pool, vt_error *err) {
  return run_one_op(opname, opset, nin, ins, nout, outs, attrs, nattr, pool, err);
}

static int run_op(const char *opname, int nin, const vt_tensor *const *ins, vt_tensor *out,
                  const tattr *attrs, int nattr, vt_error *err) {
  return run_op_v(opname, 0, nin, ins, 1, out, attrs, nattr, NULL, err);
}

static void check_f32(const vt_tensor *t, int rank, const int64_t *dims, const float *want, float tol) {
  assert_int_equal(t->dtype, VT_F32);
  assert_int_equal(t->rank, rank);
  for (int d = 0; d < rank; d++) assert_int_equal(t->dims[d], dims[d]);
  int64_t n = vt_tensor_numel(t);
  for (int64_t i = 0; i < n; i++) {
    float got = ((const float *)t->data)[i];
    if (!(fabsf(got - want[i]) <= tol)) fail_msg("element %lld: got %.7g, want %.7g", (long long)i, got, want[i]);
  }
}

/* ---------- broadcast helper ------------------------------------------------------------------ */
static void test_bcast_collapse(void **state) {
  (void)state;
  /* [2,3,4,5] with [1,3,1,1]: dims collapse to [2,3,20] with strides {0,1,0} */
  int64_t od[4] = {2, 3, 4, 5}, bd[4] = {1, 3, 1, 1};
  int32_t ranks[2] = {4, 4};
  const int64_t *dims[2] = {od, bd};
  vt_bcast b;
  assert_int_equal(vt_bcast_init(&b, 4, od, 2, ranks, dims), 0);
  assert_int_equal(b.rank, 3);
  assert_int_equal(b.dims[0], 2);
  assert_int_equal(b.dims[1], 3);
  assert_int_equal(b.dims[2], 20);
  assert_int_equal(b.str[1][0], 0);
  assert_int_equal(b.str[1][1], 1);
  assert_int_equal(b.str[1][2], 0);
  assert_int_equal(b.str[0][2], 1);
  /* incompatible */
  int64_t cd[1] = {4};
  int32_t r1[1] = {1};
  const int64_t *d1[1] = {cd};
  int64_t o2[2] = {2, 3};
  assert_int_equal(vt_bcast_init(&b, 2, o2, 1, r1, d1), -1);
}

/* ---------- elementwise ---------------------------------------------------------------------- */
static void test_add_broadcast(void **state) {
  (void)state;
  int64_t ad[3] = {2, 1, 3}, bd[2] = {2, 1};
  float av[6] = {1, 2, 3, 4, 5, 6}, bv[2] = {10, 20};
  vt_tensor a = tf32(3, ad, av), b = tf32(2, bd, bv), y = {0};
  const vt_tensor *ins[2] = {&a, &b};
  vt_error e = {0};
  assert_int_equal(run_op("Add", 2, ins, &y, NULL, 0, &e), VT_OK);
  int64_t yd[3] = {2, 2, 3};
  float want[12] = {11, 12, 13, 21, 22, 23, 14, 15, 16, 24, 25, 26};
  check_f32(&y, 3, yd, want, 0);
  vt_tensor_free(&y);
  /* Sub is not commutative: b - a */
  const vt_tensor *ins2[2] = {&b, &a};
  assert_int_equal(run_op("Sub", 2, ins2, &y, NULL, 0, &e), VT_OK);
  float want2[12] = {9, 8, 7, 19, 18, 17, 6, 5, 4, 16, 15, 14};
  check_f32(&y, 3, yd, want2, 0);
  vt_tensor_free(&y);
  /* shapes that do not broadcast give an error naming them */
  int64_t cd[1] = {4};
  float cv[4] = {0};
  vt_tensor c = tf32(1, cd, cv);
  const vt_tensor *ins3[2] = {&a, &c};
  assert_int_not_equal(run_op("Mul", 2, ins3, &y, NULL, 0, &e), VT_OK);
  assert_non_null(strstr(e.msg, "broadcast"));
  vt_tensor_free(&y);
  vt_tensor_free(&a);
  vt_tensor_free(&b);
  vt_tensor_free(&c);
}

static void test_int_div_mod(void **state) {
  (void)state;
  int64_t d[1] = {4};
  int64_t av[4] = {7, -7, 7, -7}, bv[4] = {2, 2, -2, -2};
  vt_tensor a = ti64(1, d, av), b = ti64(1, d, bv), y = {0};
  const vt_tensor *ins[2] = {&a, &b};
  vt_error e = {0};
  assert_int_equal(run_op("Div", 2, ins, &y, NULL, 0, &e), VT_OK);
  int64_t wdiv[4] = {3, -3, -3, 3};   /* truncation */
  assert_memory_equal(y.data, wdiv, sizeof wdiv);
  vt_tensor_free(&y);
  assert_int_equal(run_op("Mod", 2, ins, &y, NULL, 0, &e), VT_OK);
  int64_t wmod[4] = {1, 1, -1, -1};   /* sign of the divisor (numpy) */
  assert_memory_equal(y.data, wmod, sizeof wmod);
  vt_tensor_free(&y);
  tattr fm[1] = {AI("fmod", 1)};
  assert_int_equal(run_op("Mod", 2, ins, &y, fm, 1, &e), VT_OK);
  int64_t wfmod[4] = {1, -1, 1, -1};  /* sign of the dividend (C) */
  assert_memory_equal(y.data, wfmod, sizeof wfmod);
  vt_tensor_free(&y);
  ((int64_t *)b.data)[2] = 0;
  vt_error e2 = {0};
  assert_int_not_equal(run_op("Div", 2, ins, &y, NULL, 0, &e2), VT_OK);
  assert_non_null(strstr(e2.msg, "by zero"));
  vt_tensor_free(&y);
  vt_tensor_free(&a);
  vt_tensor_free(&b);
}

static void test_unary_and_where(void **state) {
  (void)state;
  int64_t d[1] = {3};
  float xv[3] = {-1.5f, 0.3f, 2.0f};
  vt_tensor x = tf32(1, d, xv), y = {0};
  const vt_tensor *ins[1] = {&x};
  vt_error e = {0};
  tattr tanh_a[1] = {AS("approximate", "tanh")};
  assert_int_equal(run_op("Gelu", 1, ins, &y, tanh_a, 1, &e), VT_OK);
  float wt[3] = {-0.10042843f, 0.18537094f, 1.9545977f};   /* torch gelu(approximate='tanh') */
  check_f32(&y, 1, d, wt, 1e-6f);
  vt_tensor_free(&y);
  assert_int_equal(run_op("Gelu", 1, ins, &y, NULL, 0, &e), VT_OK);
  float we[3] = {-0.10021086f, 0.18537343f, 1.9545f};      /* torch gelu */
  check_f32(&y, 1, d, we, 1e-6f);
  vt_tensor_free(&y);
  tattr la[1] = {AF("alpha", 0.1f)};
  assert_int_equal(run_op("LeakyRelu", 1, ins, &y, la, 1, &e), VT_OK);
  float wl[3] = {-0.15f, 0.3f, 2.0f};
  check_f32(&y, 1, d, wl, 1e-7f);
  vt_tensor_free(&y);
  /* Clip with bound inputs (opset 11+), max input absent */
  int64_t sd[1] = {0};
  float lo = 0.0f;
  vt_tensor lov = tf32(0, sd, &lo);
  const vt_tensor *cins[3] = {&x, &lov, NULL};
  assert_int_equal(run_op("Clip", 3, cins, &y, NULL, 0, &e), VT_OK);
  float wc[3] = {0, 0.3f, 2.0f};
  check_f32(&y, 1, d, wc, 0);
  vt_tensor_free(&y);
  /* Where with a broadcast condition */
  vt_tensor c = {0};
  int64_t cd[2] = {2, 1};
  assert_int_equal(vt_tensor_alloc(&c, VT_BOOL, 2, cd, NULL), VT_OK);
  ((uint8_t *)c.data)[0] = 1;
  float zv[1] = {-9};
  vt_tensor z = tf32(0, sd, zv);
  const vt_tensor *wins[3] = {&c, &x, &z};
  assert_int_equal(run_op("Where", 3, wins, &y, NULL, 0, &e), VT_OK);
  int64_t wd[2] = {2, 3};
  float ww[6] = {-1.5f, 0.3f, 2.0f, -9, -9, -9};
  check_f32(&y, 2, wd, ww, 0);
  vt_tensor_free(&y);
  vt_tensor_free(&c);
  vt_tensor_free(&z);
  vt_tensor_free(&lov);
  vt_tensor_free(&x);
}

static void test_cast(void **state) {
  (void)state;
  int64_t d[1] = {5};
  float xv[5] = {1.5f, -2.7f, 3e10f, NAN, 65504.0f};
  vt_tensor x = tf32(1, d, xv), y = {0};
  const vt_tensor *ins[1] = {&x};
  vt_error e = {0};
  tattr to_i32[1] = {AI("to", VT_I32)};
  assert_int_equal(run_op("Cast", 1, ins, &y, to_i32, 1, &e), VT_OK);
  assert_int_equal(y.dtype, VT_I32);
  int32_t wi[5] = {1, -2, INT32_MAX, 0, 65504};   /* truncation, saturation, NaN -> 0 */
  assert_memory_equal(y.data, wi, sizeof wi);
  vt_tensor_free(&y);
  tattr to_f16[1] = {AI("to", VT_F16)};
  assert_int_equal(run_op("Cast", 1, ins, &y, to_f16, 1, &e), VT_OK);
  assert_int_equal(y.dtype, VT_F16);
  assert_int_equal(((uint16_t *)y.data)[0], 0x3E00);   /* 1.5 */
  assert_int_equal(((uint16_t *)y.data)[4], 0x7BFF);   /* 65504 */
  vt_tensor_free(&y);
  /* i64 -> u8 wraps like numpy astype */
  int64_t iv[5] = {255, 256, -1, 1000, 7};
  vt_tensor xi = ti64(1, d, iv);
  const vt_tensor *ins2[1] = {&xi};
  tattr to_u8[1] = {AI("to", VT_U8)};
  assert_int_equal(run_op("Cast", 1, ins2, &y, to_u8, 1, &e), VT_OK);
  uint8_t wu[5] = {255, 0, 255, 232, 7};
  assert_memory_equal(y.data, wu, sizeof wu);
  vt_tensor_free(&y);
  tattr to_str[1] = {AI("to", VT_STRING)};
  assert_int_not_equal(run_op("Cast", 1, ins, &y, to_str, 1, &e), VT_OK);
  assert_non_null(strstr(e.msg, "string"));
  vt_tensor_free(&y);
  vt_tensor_free(&x);
  vt_tensor_free(&xi);
}

/* ---------- reductions ------------------------------------------------------------------------ */
static void test_reduce(void **state) {
  (void)state;
  int64_t d[3] = {2, 3, 4};
  float xv[24];
  for (int i = 0; i < 24; i++) xv[i] = (float)i;
  vt_tensor x = tf32(3, d, xv), y = {0};
  const vt_tensor *ins[1] = {&x};
  vt_error e = {0};
  /* non-contiguous axes {0, 2}, keepdims=0 (attribute form) */
  tattr a02[2] = {AINTS("axes", 2, 0, 2), AI("keepdims", 0)};
  assert_int_equal(run_op_v("ReduceSum", 11, 1, ins, 1, &y, a02, 2, NULL, &e), VT_OK);
  int64_t yd[1] = {3};
  float ws[3] = {60, 92, 124};
  check_f32(&y, 1, yd, ws, 0);
  vt_tensor_free(&y);
  /* ReduceSum opset 13: axes as input; empty axes + noop_with_empty_axes = identity */
  int64_t ad[1] = {1}, av[1] = {-2};
  vt_tensor axes = ti64(1, ad, av);
  const vt_tensor *ins2[2] = {&x, &axes};
  assert_int_equal(run_op_v("ReduceSum", 13, 2, ins2, 1, &y, NULL, 0, NULL, &e), VT_OK);
  int64_t kd[3] = {2, 1, 4};
  float wk[8] = {12, 15, 18, 21, 48, 51, 54, 57};
  check_f32(&y, 3, kd, wk, 0);
  vt_tensor_free(&y);
  int64_t ed[1] = {0};
  vt_tensor noaxes = ti64(1, ed, av);
  const vt_tensor *ins3[2] = {&x, &noaxes};
  tattr noop[1] = {AI("noop_with_empty_axes", 1)};
  assert_int_equal(run_op_v("ReduceSum", 13, 2, ins3, 1, &y, noop, 1, NULL, &e), VT_OK);
  check_f32(&y, 3, d, xv, 0);
  vt_tensor_free(&y);
  /* LogSumExp over the middle axis of x/10 (numpy) */
  for (int i = 0; i < 24; i++) ((float *)x.data)[i] = (float)i / 10;
  tattr a1[1] = {AINTS("axes", 1, 1)};
  assert_int_equal(run_op_v("ReduceLogSumExp", 13, 1, ins, 1, &y, a1, 1, NULL, &e), VT_OK);
  float wl[4] = {1.5512506f, 1.6512505f, 1.7512505f, 1.8512505f};
  assert_int_equal(y.rank, 3);
  for (int i = 0; i < 4; i++) assert_true(fabsf(((float *)y.data)[i] - wl[i]) < 1e-5f);
  vt_tensor_free(&y);
  /* ArgMax with ties: first vs last index */
  int64_t td[2] = {2, 3};
  float tv[6] = {1, 5, 5, 2, 2, 0};
  vt_tensor t = tf32(2, td, tv);
  const vt_tensor *tins[1] = {&t};
  tattr am[2] = {AI("axis", 1), AI("keepdims", 0)};
  assert_int_equal(run_op("ArgMax", 1, tins, &y, am, 2, &e), VT_OK);
  int64_t w1[2] = {1, 0};
  assert_memory_equal(y.data, w1, sizeof w1);
  vt_tensor_free(&y);
  tattr aml[3] = {AI("axis", 1), AI("keepdims", 0), AI("select_last_index", 1)};
  assert_int_equal(run_op("ArgMax", 1, tins, &y, aml, 3, &e), VT_OK);
  int64_t w2[2] = {2, 1};
  assert_memory_equal(y.data, w2, sizeof w2);
  vt_tensor_free(&y);
  /* CumSum exclusive + reverse on axis 1 */
  int64_t sd[1] = {0}, one[1] = {1};
  vt_tensor ax = ti64(0, sd, one);
  const vt_tensor *cins[2] = {&t, &ax};
  tattr er[2] = {AI("exclusive", 1), AI("reverse", 1)};
  assert_int_equal(run_op("CumSum", 2, cins, &y, er, 2, &e), VT_OK);
  float wc[6] = {10, 5, 0, 2, 0, 0};
  check_f32(&y, 2, td, wc, 0);
  vt_tensor_free(&y);
  vt_tensor_free(&ax);
  vt_tensor_free(&t);
  vt_tensor_free(&axes);
  vt_tensor_free(&noaxes);
  vt_tensor_free(&x);
}

/* ---------- softmax and normalisation -------------------------------------------------------- */
static void test_softmax_opsets(void **state) {
  (void)state;
  int64_t d[3] = {2, 2, 2};
  float xv[8];
  for (int i = 0; i < 8; i++) xv[i] = 0.5f * (float)i;
  vt_tensor x = tf32(3, d, xv), y = {0};
  const vt_tensor *ins[1] = {&x};
  vt_error e = {0};
  tattr ax1[1] = {AI("axis", 1)};
  /* opset 13: softmax over axis 1 only */
  assert_int_equal(run_op_v("Softmax", 13, 1, ins, 1, &y, ax1, 1, NULL, &e), VT_OK);
  float w13[8] = {0.26894142f, 0.26894142f, 0.7310586f, 0.7310586f,
                  0.26894142f, 0.26894142f, 0.7310586f, 0.7310586f};
  check_f32(&y, 3, d, w13, 1e-6f);
  vt_tensor_free(&y);
  /* opset 11: input coerced to 2-D [2, 4] at axis 1 */
  assert_int_equal(run_op_v("Softmax", 11, 1, ins, 1, &y, ax1, 1, NULL, &e), VT_OK);
  float w11[8] = {0.10153632f, 0.16740508f, 0.27600434f, 0.45505422f,
                  0.10153632f, 0.16740508f, 0.27600434f, 0.45505422f};
  check_f32(&y, 3, d, w11, 1e-6f);
  vt_tensor_free(&y);
  vt_tensor_free(&x);
}

static void test_layernorm(void **state) {
  (void)state;
  int64_t d[2] = {2, 4}, pd[1] = {4};
  float xv[8] = {1, 2, 3, 4, 2, 4, 6, 9}, wv[4] = {1, 2, 1, 2}, bv[4] = {0, 1, 0, 0};
  vt_tensor x = tf32(2, d, xv), w = tf32(1, pd, wv), b = tf32(1, pd, bv);
  vt_tensor outs[3] = {{0}};
  const vt_tensor *ins[3] = {&x, &w, &b};
  vt_error e = {0};
  assert_int_equal(run_op_v("LayerNormalization", 17, 3, ins, 3, outs, NULL, 0, NULL, &e), VT_OK);
  float wy[8] = {-1.3416355f, 0.10557634f, 0.44721183f, 2.683271f,
                 -1.2567564f, 0.03326428f, 0.2900207f, 2.900207f};
  check_f32(&outs[0], 2, d, wy, 1e-5f);
  int64_t md[2] = {2, 1};
  float wm[2] = {2.5f, 5.25f}, wi[2] = {0.8944237f, 0.3866943f};
  check_f32(&outs[1], 2, md, wm, 1e-6f);
  check_f32(&outs[2], 2, md, wi, 1e-6f);
  for (int i = 0; i < 3; i++) vt_tensor_free(&outs[i]);
  vt_tensor_free(&x);
  vt_tensor_free(&w);
  vt_tensor_free(&b);
}

/* ---------- known contents (shape arithmetic) ------------------------------------------------ */
static void test_known_contents(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("known.onnx");
  vt_dim N = vt_dim_named(g, "N");
  vt_dim sd[1] = {3};
  /* s: an int64 [3] whose contents are known to be {N, 196, 768} (as after Shape) */
  int32_t s = vt_graph_add_value(g, "s", VT_I64, 1, sd);
  vt_graph_add_input(g, s);
  g->values[s].known = vt_arena_alloc(&g->arena, 3 * sizeof(vt_dim));
  g->values[s].known[0] = N;
  g->values[s].known[1] = 196;
  g->values[s].known[2] = 768;
  g->values[s].nknown = 3;
  /* constants 2 and [1, 12, 64] */
  int64_t *two = malloc(sizeof(int64_t));
  *two = 2;
  vt_graph_own(g, two);
  vt_tensor tt = {.dtype = VT_I64, .rank = 0, .data = two};
  int32_t c2 = vt_graph_add_const(g, "two", &tt);
  int64_t *hv = malloc(3 * sizeof(int64_t));
  hv[0] = 1; hv[1] = 12; hv[2] = 64;
  vt_graph_own(g, hv);
  vt_tensor ht = {.dtype = VT_I64, .rank = 1, .dims = {3}, .data = hv};
  int32_t ch = vt_graph_add_const(g, "h", &ht);
  int32_t m = vt_graph_add_value(g, "m", VT_UNDEFINED, -1, NULL);
  int32_t q = vt_graph_add_value(g, "q", VT_UNDEFINED, -1, NULL);
  int32_t eq = vt_graph_add_value(g, "eq", VT_UNDEFINED, -1, NULL);
  int32_t in1[2] = {s, c2}, in2[2] = {m, ch}, in3[2] = {s, s};
  vt_graph_add_node(g, "mul", VT_OP_Mul, 2, in1, 1, &m);
  vt_graph_add_node(g, "div", VT_OP_Div, 2, in2, 1, &q);
  vt_graph_add_node(g, "eq", VT_OP_Equal, 2, in3, 1, &eq);
  vt_graph_add_output(g, q);
  vt_graph_add_output(g, eq);
  /* float chain: Cast(f32) -> Mul(2.0) -> Floor -> Cast(i64) keeps the contents; Div by 2.0 of
   * a symbol is not exact and drops them */
  float *f2 = malloc(sizeof(float));
  *f2 = 2.0f;
  vt_graph_own(g, f2);
  vt_tensor ft = {.dtype = VT_F32, .rank = 0, .data = f2};
  int32_t cf = vt_graph_add_const(g, "f2", &ft);
  int32_t sf = vt_graph_add_value(g, "sf", VT_UNDEFINED, -1, NULL);
  int32_t mf = vt_graph_add_value(g, "mf", VT_UNDEFINED, -1, NULL);
  int32_t df = vt_graph_add_value(g, "df", VT_UNDEFINED, -1, NULL);
  int32_t ff = vt_graph_add_value(g, "ff", VT_UNDEFINED, -1, NULL);
  int32_t mi = vt_graph_add_value(g, "mi", VT_UNDEFINED, -1, NULL);
  int32_t n1 = vt_graph_add_node(g, "tof", VT_OP_Cast, 1, &s, 1, &sf);
  vt_node_add_attr(g, n1, "to", VT_ATTR_INT)->i = VT_F32;
  int32_t i4[2] = {sf, cf};
  vt_graph_add_node(g, "mulf", VT_OP_Mul, 2, i4, 1, &mf);
  vt_graph_add_node(g, "divf", VT_OP_Div, 2, i4, 1, &df);
  vt_graph_add_node(g, "floor", VT_OP_Floor, 1, &mf, 1, &ff);
  int32_t n2 = vt_graph_add_node(g, "toi", VT_OP_Cast, 1, &ff, 1, &mi);
  vt_node_add_attr(g, n2, "to", VT_ATTR_INT)->i = VT_I64;
  vt_graph_add_output(g, mi);
  vt_graph_add_output(g, df);
  vt_error e = {0};
  assert_int_equal(vt_graph_infer(g, &e), VT_OK);
  assert_int_equal(g->values[mi].dtype, VT_I64);
  assert_int_equal(g->values[mi].nknown, 3);
  assert_true(g->values[mi].known[0] == vt_dim_mul(g, N, 2));
  assert_int_equal(g->values[mi].known[2], 1536);
  assert_int_equal(g->values[df].nknown, 0);
  const vt_value *mv = &g->values[m], *qv = &g->values[q], *ev = &g->values[eq];
  assert_int_equal(mv->nknown, 3);
  assert_true(mv->known[0] == vt_dim_mul(g, N, 2));
  assert_int_equal(mv->known[1], 392);
  assert_int_equal(mv->known[2], 1536);
  assert_int_equal(qv->nknown, 3);
  assert_true(qv->known[0] == vt_dim_mul(g, N, 2));   /* x / 1 folds */
  assert_int_equal(qv->known[1], 32);                  /* 392 / 12 truncated */
  assert_int_equal(qv->known[2], 24);
  assert_int_equal(ev->dtype, VT_BOOL);
  assert_int_equal(ev->nknown, 3);                     /* same symbol: decidable */
  assert_int_equal(ev->known[0], 1);
  vt_graph_free(g);
}

/* Integer Mod folds through known contents: fmod=0 takes the divisor's sign, fmod=1 the
 * dividend's; a symbol (a size) mod a positive constant stays symbolic. This is the padding
 * arithmetic of windowed attention: pad = (win - H % win) % win. */
static void test_known_mod(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("mod.onnx");
  vt_dim T = vt_dim_named(g, "T");
  vt_dim sd[1] = {4};
  int32_t s = vt_graph_add_value(g, "s", VT_I64, 1, sd);
  vt_graph_add_input(g, s);
  g->values[s].known = vt_arena_alloc(&g->arena, 4 * sizeof(vt_dim));
  g->values[s].known[0] = -7;
  g->values[s].known[1] = 7;
  g->values[s].known[2] = 10;
  g->values[s].known[3] = T;
  int64_t *dv = malloc(4 * sizeof(int64_t));
  dv[0] = 3; dv[1] = -3; dv[2] = 14; dv[3] = 14;
  vt_graph_own(g, dv);
  vt_tensor dt = {.dtype = VT_I64, .rank = 1, .dims = {4}, .data = dv};
  int32_t d = vt_graph_add_const(g, "d", &dt);
  g->values[s].nknown = 4;
  int32_t fl = vt_graph_add_value(g, "fl", VT_UNDEFINED, -1, NULL);
  int32_t tr = vt_graph_add_value(g, "tr", VT_UNDEFINED, -1, NULL);
  int32_t in[2] = {s, d};
  vt_graph_add_node(g, "mod", VT_OP_Mod, 2, in, 1, &fl);
  int32_t nt = vt_graph_add_node(g, "fmod", VT_OP_Mod, 2, in, 1, &tr);
  vt_node_add_attr(g, nt, "fmod", VT_ATTR_INT)->i = 1;
  vt_graph_add_output(g, fl);
  vt_graph_add_output(g, tr);
  vt_error e = {0};
  assert_int_equal(vt_graph_infer(g, &e), VT_OK);
  const vt_value *f = &g->values[fl], *t = &g->values[tr];
  assert_int_equal(f->nknown, 4);
  assert_int_equal(f->known[0], 2);     /* -7 mod 3 = 2 (numpy) */
  assert_int_equal(f->known[1], -2);    /* 7 mod -3 = -2 */
  assert_int_equal(f->known[2], 10);
  assert_true(f->known[3] == vt_dim_mod(g, T, 14));
  assert_int_equal(t->nknown, 0);       /* fmod of a symbol: not decided */
  vt_graph_free(g);
  g = vt_graph_new("mod.onnx");
  s = vt_graph_add_value(g, "s", VT_I64, 1, (vt_dim[1]){3});
  vt_graph_add_input(g, s);
  g->values[s].known = vt_arena_alloc(&g->arena, 3 * sizeof(vt_dim));
  g->values[s].known[0] = -7;
  g->values[s].known[1] = 7;
  g->values[s].known[2] = 10;
  g->values[s].nknown = 3;
  int64_t *d3 = malloc(3 * sizeof(int64_t));
  d3[0] = 3; d3[1] = -3; d3[2] = 14;
  vt_graph_own(g, d3);
  vt_tensor d3t = {.dtype = VT_I64, .rank = 1, .dims = {3}, .data = d3};
  d = vt_graph_add_const(g, "d", &d3t);
  tr = vt_graph_add_value(g, "tr", VT_UNDEFINED, -1, NULL);
  int32_t in2[2] = {s, d};
  nt = vt_graph_add_node(g, "fmod", VT_OP_Mod, 2, in2, 1, &tr);
  vt_node_add_attr(g, nt, "fmod", VT_ATTR_INT)->i = 1;
  vt_graph_add_output(g, tr);
  assert_int_equal(vt_graph_infer(g, &e), VT_OK);
  t = &g->values[tr];
  assert_int_equal(t->nknown, 3);
  assert_int_equal(t->known[0], -1);    /* C remainder */
  assert_int_equal(t->known[1], 1);
  assert_int_equal(t->known[2], 10);
  vt_graph_free(g);
}

/* ---------- threaded paths -------------------------------------------------------------------- */
static void test_threaded_large(void **state) {
  (void)state;
  vt_pool *pool = vt_pool_new(2);
  assert_non_null(pool);
  int64_t ad[3] = {4, 197, 384}, bd[1] = {384};
  vt_tensor a = {0}, b = {0}, y = {0};
  assert_int_equal(vt_tensor_alloc(&a, VT_F32, 3, ad, NULL), VT_OK);
  assert_int_equal(vt_tensor_alloc(&b, VT_F32, 1, bd, NULL), VT_OK);
  float *pa = a.data, *pb = b.data;
  for (int64_t i = 0; i < vt_tensor_numel(&a); i++) pa[i] = (float)((i * 7919) % 1000) / 100.0f - 5;
  for (int64_t i = 0; i < 384; i++) pb[i] = (float)i / 384.0f;
  const vt_tensor *ins[2] = {&a, &b};
  vt_error e = {0};
  assert_int_equal(run_op_v("Mul", 17, 2, ins, 1, &y, NULL, 0, pool, &e), VT_OK);
  for (int64_t i = 0; i < vt_tensor_numel(&a); i++)
    if (((float *)y.data)[i] != pa[i] * pb[i % 384]) fail_msg("Mul mismatch at %lld", (long long)i);
  vt_tensor_free(&y);
  /* ReduceMean over the last axis, threaded, against a serial double loop */
  tattr ax[1] = {AINTS("axes", 1, -1)};
  const vt_tensor *rin[1] = {&a};
  assert_int_equal(run_op_v("ReduceMean", 17, 1, rin, 1, &y, ax, 1, pool, &e), VT_OK);
  assert_int_equal(y.rank, 3);
  assert_int_equal(y.dims[2], 1);
  for (int64_t r = 0; r < 4 * 197; r++) {
    double s = 0;
    for (int64_t i = 0; i < 384; i++) s += pa[r * 384 + i];
    assert_true(fabs(((float *)y.data)[r] - s / 384) < 1e-5);
  }
  vt_tensor_free(&y);
  /* Softmax over the last axis, threaded, against a serial double loop (exp(x - max) / sum),
   * element by element (rows summing to 1 alone would pass a permuted or shifted row) */
  assert_int_equal(run_op_v("Softmax", 17, 1, rin, 1, &y, NULL, 0, pool, &e), VT_OK);
  for (int64_t r = 0; r < 4 * 197; r++) {
    const float *x = pa + r * 384, *p = (const float *)y.data + r * 384;
    double mx = x[0], s = 0;
    for (int64_t i = 1; i < 384; i++) mx = fmax(mx, x[i]);
    for (int64_t i = 0; i < 384; i++) s += exp((double)x[i] - mx);
    for (int64_t i = 0; i < 384; i++) {
      double want = exp((double)x[i] - mx) / s;
      if (!(fabs(p[i] - want) <= 1e-6 * want + 1e-9))
        fail_msg("Softmax row %lld col %lld: %.9g, want %.9g", (long long)r, (long long)i, p[i], want);
    }
  }
  vt_tensor_free(&y);
  vt_tensor_free(&a);
  vt_tensor_free(&b);
  vt_pool_free(pool);
}

/* ---------- other dtypes --------------------------------------------------------------------- */
static void test_int_and_half(void **state) {
  (void)state;
  vt_error e = {0};
  /* int32 reductions go through int64 accumulators; results keep int32 */
  int64_t d[2] = {2, 3};
  vt_tensor x = {0}, y = {0};
  assert_int_equal(vt_tensor_alloc(&x, VT_I32, 2, d, NULL), VT_OK);
  int32_t xv[6] = {-7, 3, 100000, 4, -2, 50000};
  memcpy(x.data, xv, sizeof xv);
  const vt_tensor *ins[1] = {&x};
  tattr ax[2] = {AINTS("axes", 1, 1), AI("keepdims", 0)};
  assert_int_equal(run_op_v("ReduceMax", 13, 1, ins, 1, &y, ax, 2, NULL, &e), VT_OK);
  assert_int_equal(y.dtype, VT_I32);
  int32_t wmax[2] = {100000, 50000};
  assert_memory_equal(y.data, wmax, sizeof wmax);
  vt_tensor_free(&y);
  assert_int_equal(run_op_v("ReduceProd", 13, 1, ins, 1, &y, ax, 2, NULL, &e), VT_OK);
  int32_t wprod[2] = {-2100000, -400000};
  assert_memory_equal(y.data, wprod, sizeof wprod);
  vt_tensor_free(&y);
  assert_int_equal(run_op("Neg", 1, ins, &y, NULL, 0, &e), VT_OK);
  assert_int_equal(((int32_t *)y.data)[0], 7);
  assert_int_equal(((int32_t *)y.data)[2], -100000);
  vt_tensor_free(&y);
  vt_tensor_free(&x);
  /* f16 softmax computed in f32: [0, ln 3] -> [0.25, 0.75], exact in f16 */
  int64_t hd[1] = {2};
  vt_tensor h = {0};
  assert_int_equal(vt_tensor_alloc(&h, VT_F16, 1, hd, NULL), VT_OK);
  ((uint16_t *)h.data)[0] = vt_f32_to_f16(0.0f);
  ((uint16_t *)h.data)[1] = vt_f32_to_f16(1.0986123f);
  const vt_tensor *hins[1] = {&h};
  assert_int_equal(run_op_v("Softmax", 13, 1, hins, 1, &y, NULL, 0, NULL, &e), VT_OK);
  assert_int_equal(y.dtype, VT_F16);
  assert_true(fabsf(vt_f16_to_f32(((uint16_t *)y.data)[0]) - 0.25f) < 1e-3f);
  assert_true(fabsf(vt_f16_to_f32(((uint16_t *)y.data)[1]) - 0.75f) < 1e-3f);
  vt_tensor_free(&y);
  vt_tensor_free(&h);
}

/* ---------- randomised differential checks ---------------------------------------------------- */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

/* Naive offset of output multi-index `ix` in an input of shape (r, d) right-aligned to rank R. */
static int64_t naive_off(int R, const int64_t *ix, int r, const int64_t *d) {
  int64_t off = 0;
  for (int k = 0; k < r; k++) {
    int64_t i = ix[R - r + k];
    off = off * d[k] + (d[k] == 1 ? 0 : i);
  }
  return off;
}

static void test_random_broadcast(void **state) {
  (void)state;
  vt_pool *pool = vt_pool_new(2);
  for (int iter = 0; iter < 60; iter++) {
    int R = 1 + (int)rnd(4);
    int64_t od[4];
    int64_t big = iter % 6 == 0 ? 40 : 6;   /* some cases above VT_PAR_MIN */
    for (int k = 0; k < R; k++) od[k] = 1 + rnd((uint32_t)big);
    int ra = 1 + (int)rnd((uint32_t)R), rb = 1 + (int)rnd((uint32_t)R);
    if (ra < R && rb < R) ra = R;   /* the output has rank max(ra, rb) = R */
    int64_t ad[4], bd[4];
    for (int k = 0; k < ra; k++) ad[k] = rnd(3) == 0 ? 1 : od[R - ra + k];
    for (int k = 0; k < rb; k++) bd[k] = rnd(3) == 0 ? 1 : od[R - rb + k];
    /* the output must still be od: force full dims where neither input covers it */
    for (int k = 0; k < R; k++) {
      bool ca = k >= R - ra && ad[k - (R - ra)] == od[k], cb = k >= R - rb && bd[k - (R - rb)] == od[k];
      if (!ca && !cb) {
        if (k >= R - ra) ad[k - (R - ra)] = od[k];
        else if (k >= R - rb) bd[k - (R - rb)] = od[k];
        else od[k] = 1;
      }
    }
    vt_tensor a = {0}, b = {0}, y = {0};
    assert_int_equal(vt_tensor_alloc(&a, VT_F32, ra, ad, NULL), VT_OK);
    assert_int_equal(vt_tensor_alloc(&b, VT_F32, rb, bd, NULL), VT_OK);
    for (int64_t i = 0; i < vt_tensor_numel(&a); i++) ((float *)a.data)[i] = (float)rnd(1000);
    for (int64_t i = 0; i < vt_tensor_numel(&b); i++) ((float *)b.data)[i] = (float)rnd(1000) * 0.5f;
    const vt_tensor *ins[2] = {&a, &b};
    vt_error e = {0};
    if (run_op_v("Sub", 17, 2, ins, 1, &y, NULL, 0, pool, &e) != VT_OK) fail_msg("%s", e.msg);
    assert_int_equal(y.rank, R);
    int64_t n = vt_tensor_numel(&y), ix[4];
    for (int64_t i = 0; i < n; i++) {
      int64_t rem = i;
      for (int k = R - 1; k >= 0; k--) { ix[k] = rem % od[k]; rem /= od[k]; }
      float want = ((float *)a.data)[naive_off(R, ix, ra, ad)] - ((float *)b.data)[naive_off(R, ix, rb, bd)];
      if (((float *)y.data)[i] != want) fail_msg("iter %d element %lld: got %g want %g", iter, (long long)i, ((float *)y.data)[i], want);
    }
    vt_tensor_free(&a);
    vt_tensor_free(&b);
    vt_tensor_free(&y);
  }
  vt_pool_free(pool);
}

static void test_random_reduce(void **state) {
  (void)state;
  vt_pool *pool = vt_pool_new(2);
  static const char *ops[4] = {"ReduceSum", "ReduceMax", "ReduceL1", "ReduceProd"};
  for (int iter = 0; iter < 60; iter++) {
    int R = 1 + (int)rnd(4);
    int64_t d[4];
    for (int k = 0; k < R; k++) d[k] = 1 + rnd(iter % 5 == 0 ? 30 : 5);
    vt_tensor x = {0}, y = {0};
    assert_int_equal(vt_tensor_alloc(&x, VT_F32, R, d, NULL), VT_OK);
    int64_t n = vt_tensor_numel(&x);
    for (int64_t i = 0; i < n; i++) ((float *)x.data)[i] = ((float)rnd(200) - 100) / 64.0f;
    bool mask[4] = {false};
    tattr at[2] = {AINTS("axes", 0), AI("keepdims", 1)};
    for (int k = 0; k < R; k++)
      if (rnd(2)) { mask[k] = true; at[0].ints[at[0].n++] = k; }
    if (at[0].n == 0) for (int k = 0; k < R; k++) mask[k] = true;   /* no axes: all */
    int op = (int)rnd(4);
    const vt_tensor *ins[1] = {&x};
    vt_error e = {0};
    if (run_op_v(ops[op], 11, 1, ins, 1, &y, at, at[0].n ? 2 : 1, pool, &e) != VT_OK) fail_msg("%s", e.msg);
    /* naive: accumulate in double by output index */
    int64_t on = vt_tensor_numel(&y);
    double *acc = calloc((size_t)on, sizeof(double));
    for (int64_t o = 0; o < on; o++) acc[o] = op == 1 ? -INFINITY : op == 3 ? 1 : 0;
    for (int64_t i = 0; i < n; i++) {
      int64_t rem = i, ix[4], o = 0;
      for (int k = R - 1; k >= 0; k--) { ix[k] = rem % d[k]; rem /= d[k]; }
      for (int k = 0; k < R; k++) o = o * (mask[k] ? 1 : d[k]) + (mask[k] ? 0 : ix[k]);
      double v = ((float *)x.data)[i];
      if (op == 0) acc[o] += v;
      else if (op == 1) acc[o] = v > acc[o] ? v : acc[o];
      else if (op == 2) acc[o] += fabs(v);
      else acc[o] *= v;
    }
    for (int64_t o = 0; o < on; o++)
      if (!(fabs(((float *)y.data)[o] - acc[o]) <= 1e-4 * (1 + fabs(acc[o]))))
        fail_msg("iter %d %s output %lld: got %g want %g", iter, ops[op], (long long)o, ((float *)y.data)[o], acc[o]);
    free(acc);
    vt_tensor_free(&x);
    vt_tensor_free(&y);
  }
  vt_pool_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bcast_collapse),    cmocka_unit_test(test_add_broadcast),
      cmocka_unit_test(test_int_div_mod),       cmocka_unit_test(test_unary_and_where),
      cmocka_unit_test(test_cast),              cmocka_unit_test(test_reduce),
      cmocka_unit_test(test_softmax_opsets),    cmocka_unit_test(test_layernorm),
      cmocka_unit_test(test_known_contents),    cmocka_unit_test(test_known_mod),    cmocka_unit_test(test_threaded_large),
      cmocka_unit_test(test_random_broadcast),  cmocka_unit_test(test_random_reduce),
      cmocka_unit_test(test_int_and_half),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

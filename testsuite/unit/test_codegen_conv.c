/* test_codegen_conv.c — the convolution family's generated kernels (codegen/cg_lower_conv.c,
 * codegen/kernels/cg_kernels_conv.c) against the reference interpreter: direct Conv over odd
 * sizes, groups 1 (small-K stem) / in between / depthwise, strides, asymmetric pads, dilations,
 * non-square kernels, auto_pad; 1x1 Conv (GEMM on NCHW planes) with residual and squeeze-excite
 * input scale; every fused epilogue (Relu, Clip, HardSigmoid, HardSwish, Sigmoid, x*Sigmoid(x),
 * x*HardSigmoid(x)); ConvTranspose (groups, strides, pads, dilations, output_padding); Resize (nearest / linear, coordinate
 * modes, scales or sizes); MaxPool / AveragePool (pads counted or not, ceil_mode, dilations) /
 * GlobalAveragePool; ReduceMean / ReduceSum over middle axes; the hybrid zoo models (BatchNorm
 * folded, then every node in generated code) against the interpreter and torch. Each case asserts, through vt_jit_stats, how many conv / pool kernels were
 * generated, how many nodes they fused, and that nothing ran on the host. Tolerance: relative L2
 * 1e-5 (float32 sums in another order). Runs once per ISA too (ctest test_codegen_conv_avx2 /
 * _avx512: VTOPT_CPU picks the target; exit 77, a skip, where this CPU can't run it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "frontend.h"
#include "ir.h"
#include "passes.h"
#include "runtime.h"

#ifdef VT_HAVE_CODEGEN
#include "cg_cpu.h"
#include "codegen.h"

static uint64_t rng = 777;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static vt_graph *new_graph(void) {
  vt_graph *g = vt_graph_new("conv_case.onnx");
  assert_non_null(g);
  assert_int_equal(vt_graph_set_opset(g, "", 17), 0);
  return g;
}

static int32_t add_input(vt_graph *g, const char *name, int rank, const int64_t *dims) {
  vt_dim d[VT_MAX_RANK];
  for (int i = 0; i < rank; i++) d[i] = dims[i];
  int32_t v = vt_graph_add_value(g, name, VT_F32, rank, d);
  assert_true(v >= 0);
  assert_int_equal(vt_graph_add_input(g, v), 0);
  return v;
}

static int32_t add_const(vt_graph *g, const char *name, int rank, const int64_t *dims, float s) {
  vt_tensor t = {.dtype = VT_F32, .rank = rank};
  int64_t n = 1;
  for (int i = 0; i < rank; i++) { t.dims[i] = dims[i]; n *= dims[i]; }
  float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  assert_non_null(p);
  for (int64_t i = 0; i < n; i++) p[i] = s * frand();
  assert_int_equal(vt_graph_own(g, p), 0);
  t.data = p;
  int32_t v = vt_graph_add_const(g, name, &t);
  assert_true(v >= 0);
  return v;
}

static int32_t node(vt_graph *g, const char *op, int nin, const int32_t *in) {
  char name[32];
  snprintf(name, sizeof name, "v%d", g->n_values);
  int32_t out = vt_graph_add_value(g, name, VT_UNDEFINED, -1, NULL);
  int id = vt_op_lookup(op, "");
  assert_true(out >= 0 && id >= 0);
  assert_true(vt_graph_add_node(g, name, id, nin, in, 1, &out) >= 0);
  return out;
}
static void attr_ints(vt_graph *g, const char *name, int n, const int64_t *v) {
  vt_attr *a = vt_node_add_attr(g, g->n_nodes - 1, name, VT_ATTR_INTS);
  a->n = n;
  a->ints = vt_arena_alloc(&g->arena, (size_t)n * sizeof *a->ints);
  memcpy(a->ints, v, (size_t)n * sizeof *a->ints);
}
static void attr_int(vt_graph *g, const char *name, int64_t x) { vt_node_add_attr(g, g->n_nodes - 1, name, VT_ATTR_INT)->i = x; }
static void attr_float(vt_graph *g, const char *name, float x) { vt_node_add_attr(g, g->n_nodes - 1, name, VT_ATTR_FLOAT)->f = x; }
static void attr_str(vt_graph *g, const char *name, const char *s) {
  vt_attr *a = vt_node_add_attr(g, g->n_nodes - 1, name, VT_ATTR_STRING);
  a->s = vt_arena_strdup(&g->arena, s);
  a->s_len = strlen(s);
}

static double rel_l2(const vt_tensor *a, const vt_tensor *b) {
  int64_t n = vt_tensor_numel(a);
  assert_int_equal(n, vt_tensor_numel(b));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = ((const float *)a->data)[i], y = ((const float *)b->data)[i];
    if (!isfinite(x - y)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Prepares g, runs the interpreter and the JIT (2 threads) on random inputs; fails above 1e-5
 * relative L2; returns the JIT's stats. */
static vt_jit_stats check(vt_graph *g, const char *what) {
  vt_error e = {0};
  if (vt_graph_prepare(g, NULL, NULL, 0, &e)) fail_msg("%s: prepare: %s", what, e.msg);
  vt_tensor in[4] = {0}, oi[2] = {0}, oj[2] = {0};
  assert_true(g->n_inputs <= 4 && g->n_outputs <= 2);
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    int64_t dims[VT_MAX_RANK];
    for (int d = 0; d < v->rank; d++) dims[d] = v->dims[d];
    assert_int_equal(vt_tensor_alloc(&in[i], VT_F32, v->rank, dims, &e), 0);
    for (int64_t k = 0; k < vt_tensor_numel(&in[i]); k++) ((float *)in[i].data)[k] = 2.0f * frand();
  }
  vt_interp *it = vt_interp_new(g, 2, &e);
  assert_non_null(it);
  if (vt_interp_run(it, in, oi, &e)) fail_msg("%s: interp: %s", what, e.msg);
  vt_cg_options opt = {.opt_level = 3, .threads = 2, .stats = getenv("VT_TEST_STATS") ? stderr : NULL};
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) fail_msg("%s: jit compile: %s", what, e.msg);
  if (vt_jit_run(j, in, oj, &e)) fail_msg("%s: jit run: %s", what, e.msg);
  for (int32_t o = 0; o < g->n_outputs; o++) {
    double r = rel_l2(&oj[o], &oi[o]);
    if (!(r <= 1e-5)) fail_msg("%s: output %d: rel L2 %.3g > 1e-5", what, o, r);
    vt_tensor_free(&oj[o]);
    vt_tensor_free(&oi[o]);
  }
  vt_jit_stats st;
  vt_jit_get_stats(j, &st);
  vt_jit_free(j);
  vt_interp_free(it);
  for (int32_t i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
  if (st.n_fallback) fail_msg("%s: %d host nodes", what, st.n_fallback);
  return st;
}

enum { ACT_NONE, ACT_RELU, ACT_CLIP, ACT_HSIG, ACT_HSWISH, ACT_SIGMOID, ACT_SILU, ACT_XHSIG };
static const char *const act_name[] = {"none", "relu", "clip", "hardsigmoid", "hardswish", "sigmoid", "silu", "x*hardsigmoid"};

/* act after value x; returns the new output and how many nodes it took */
static int32_t add_act(vt_graph *g, int32_t x, int act, int *nodes) {
  *nodes = act == ACT_NONE ? 0 : act == ACT_SILU || act == ACT_XHSIG ? 2 : 1;
  switch (act) {
  case ACT_RELU: return node(g, "Relu", 1, &x);
  case ACT_CLIP: {
    float *mn = vt_arena_alloc(&g->arena, sizeof(float)), *mx = vt_arena_alloc(&g->arena, sizeof(float));
    *mn = -0.25f; *mx = 0.5f;
    vt_tensor t0 = {.dtype = VT_F32, .rank = 0, .data = mn}, t1 = {.dtype = VT_F32, .rank = 0, .data = mx};
    char n0[32], n1[32];
    snprintf(n0, sizeof n0, "clip_min%d", g->n_values);
    snprintf(n1, sizeof n1, "clip_max%d", g->n_values);
    int32_t in[3] = {x, vt_graph_add_const(g, n0, &t0), vt_graph_add_const(g, n1, &t1)};
    return node(g, "Clip", 3, in);
  }
  case ACT_HSIG: {
    int32_t y = node(g, "HardSigmoid", 1, &x);
    attr_float(g, "alpha", 0.3f);
    attr_float(g, "beta", 0.4f);
    return y;
  }
  case ACT_HSWISH: return node(g, "HardSwish", 1, &x);
  case ACT_SIGMOID: return node(g, "Sigmoid", 1, &x);
  case ACT_SILU: {
    int32_t s = node(g, "Sigmoid", 1, &x);
    int32_t in[2] = {x, s};
    return node(g, "Mul", 2, in);
  }
  case ACT_XHSIG: {
    int32_t s = node(g, "HardSigmoid", 1, &x);
    attr_float(g, "alpha", 1.0f / 6.0f);
    int32_t in[2] = {s, x};
    return node(g, "Mul", 2, in);
  }
  default: return x;
  }
}

typedef struct {
  int64_t Nb, C, H, W, Cout, groups, kh, kw, sh, sw, dh, dw, pads[4];
  int bias, act;
  const char *auto_pad;
  int want_direct, want_1x1;   /* expected kernel counts */
} conv_spec;

static void conv_case(const conv_spec *s) {
  char what[256];
  snprintf(what, sizeof what, "conv N%lld C%lld %lldx%lld -> %lld g%lld k%lldx%lld s%lldx%lld d%lldx%lld p%lld,%lld,%lld,%lld %s%s",
           (long long)s->Nb, (long long)s->C, (long long)s->H, (long long)s->W, (long long)s->Cout, (long long)s->groups,
           (long long)s->kh, (long long)s->kw, (long long)s->sh, (long long)s->sw, (long long)s->dh, (long long)s->dw,
           (long long)s->pads[0], (long long)s->pads[1], (long long)s->pads[2], (long long)s->pads[3], act_name[s->act],
           s->auto_pad ? s->auto_pad : "");
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", 4, (int64_t[]){s->Nb, s->C, s->H, s->W});
  int32_t in[3] = {x, add_const(g, "w", 4, (int64_t[]){s->Cout, s->C / s->groups, s->kh, s->kw}, 0.5f),
                   s->bias ? add_const(g, "b", 1, (int64_t[]){s->Cout}, 1.0f) : -1};
  int32_t y = node(g, "Conv", s->bias ? 3 : 2, in);
  attr_int(g, "group", s->groups);
  attr_ints(g, "kernel_shape", 2, (int64_t[]){s->kh, s->kw});
  attr_ints(g, "strides", 2, (int64_t[]){s->sh, s->sw});
  attr_ints(g, "dilations", 2, (int64_t[]){s->dh, s->dw});
  if (s->auto_pad) attr_str(g, "auto_pad", s->auto_pad);
  else attr_ints(g, "pads", 4, s->pads);
  int n_act = 0;
  y = add_act(g, y, s->act, &n_act);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st = check(g, what);
  if (st.n_conv_direct != s->want_direct || st.n_conv_1x1 != s->want_1x1 || st.n_conv_fused != n_act)
    fail_msg("%s: %d direct, %d 1x1 conv kernels, %d fused nodes (want %d, %d, %d)", what, st.n_conv_direct,
             st.n_conv_1x1, st.n_conv_fused, s->want_direct, s->want_1x1, n_act);
  vt_graph_free(g);
}

static void test_conv_direct(void **state) {
  (void)state;
  const conv_spec cases[] = {
      /* depthwise: stride 1 / 2, odd sizes, pads, dilation */
      {1, 8, 9, 13, 8, 8, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, ACT_NONE, NULL, 1, 0},
      {2, 7, 11, 10, 7, 7, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 0, ACT_HSWISH, NULL, 1, 0},
      {1, 5, 12, 9, 5, 5, 3, 3, 1, 1, 2, 2, {2, 2, 2, 2}, 1, ACT_RELU, NULL, 1, 0},
      {1, 6, 10, 15, 6, 6, 5, 3, 2, 1, 1, 3, {2, 0, 1, 3}, 1, ACT_SILU, NULL, 1, 0},     /* asymmetric pads */
      {1, 6, 9, 9, 12, 6, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, ACT_CLIP, NULL, 1, 0},      /* channel multiplier 2 */
      {1, 4, 7, 8, 4, 4, 3, 3, 2, 2, 1, 1, {0, 0, 0, 0}, 1, ACT_SIGMOID, "SAME_UPPER", 1, 0},
      /* groups in between */
      {2, 12, 9, 7, 6, 3, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, ACT_HSIG, NULL, 1, 0},
      {1, 8, 13, 11, 16, 2, 3, 2, 2, 3, 1, 1, {0, 1, 2, 0}, 0, ACT_XHSIG, NULL, 1, 0},
      /* group 1 with a small K (an RGB stem, K = 27) */
      {2, 3, 17, 15, 10, 1, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 1, ACT_HSWISH, NULL, 1, 0},
      /* group 1, K = 144: stays im2col + GEMM */
      {1, 16, 9, 9, 8, 1, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, ACT_NONE, NULL, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_case(&cases[i]);
}

static void test_conv_1x1(void **state) {
  (void)state;
  const conv_spec cases[] = {
      {2, 17, 7, 9, 13, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, ACT_RELU, NULL, 0, 1},
      {1, 32, 16, 16, 24, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 0, ACT_NONE, NULL, 0, 1},
      {3, 5, 1, 1, 7, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, ACT_HSIG, NULL, 0, 1},       /* SE-sized */
      {1, 9, 11, 13, 40, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, ACT_SILU, NULL, 0, 1},
      /* 1x1 with stride 2: not the GEMM form; group 1, K = 9: the direct kernel */
      {1, 9, 10, 10, 4, 1, 1, 1, 2, 2, 1, 1, {0, 0, 0, 0}, 1, ACT_NONE, NULL, 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_case(&cases[i]);
}

/* A depthwise-separable block: dw Conv + HardSwish, squeeze-excite (ReduceMean, 1x1 + Relu, 1x1 +
 * HardSigmoid, Mul), pointwise 1x1 + residual Add + Clip: the Mul becomes the pointwise Conv's
 * input scale, the Add and Clip its epilogue. */
static void test_conv_se_block(void **state) {
  (void)state;
  for (int nb = 1; nb <= 2; nb++) {
    vt_graph *g = new_graph();
    int64_t C = 12, H = 9, W = 11, R = 5;
    int32_t x = add_input(g, "x", 4, (int64_t[]){nb, C, H, W});
    int32_t dwin[3] = {x, add_const(g, "wdw", 4, (int64_t[]){C, 1, 3, 3}, 0.5f), add_const(g, "bdw", 1, &C, 0.2f)};
    int32_t y = node(g, "Conv", 3, dwin);
    attr_int(g, "group", C);
    attr_ints(g, "pads", 4, (int64_t[]){1, 1, 1, 1});
    y = node(g, "HardSwish", 1, &y);
    int32_t m = node(g, "ReduceMean", 1, &y);
    attr_ints(g, "axes", 2, (int64_t[]){2, 3});
    attr_int(g, "keepdims", 1);
    int32_t r1[3] = {m, add_const(g, "wr", 4, (int64_t[]){R, C, 1, 1}, 0.5f), add_const(g, "br", 1, &R, 0.2f)};
    int32_t s = node(g, "Relu", 1, (int32_t[]){node(g, "Conv", 3, r1)});
    int32_t e1[3] = {s, add_const(g, "we", 4, (int64_t[]){C, R, 1, 1}, 0.5f), add_const(g, "be", 1, &C, 0.2f)};
    s = node(g, "HardSigmoid", 1, (int32_t[]){node(g, "Conv", 3, e1)});
    attr_float(g, "alpha", 1.0f / 6.0f);
    int32_t sc = node(g, "Mul", 2, (int32_t[]){y, s});
    int32_t pw[3] = {sc, add_const(g, "wp", 4, (int64_t[]){C, C, 1, 1}, 0.3f), add_const(g, "bp", 1, &C, 0.2f)};
    int32_t o = node(g, "Add", 2, (int32_t[]){x, node(g, "Conv", 3, pw)});
    o = node(g, "Relu", 1, &o);
    assert_int_equal(vt_graph_add_output(g, o), 0);
    vt_jit_stats st = check(g, nb == 1 ? "se block, batch 1" : "se block, batch 2");
    /* dw (+HardSwish), reduce 1x1 (+Relu), expand 1x1 (+HardSigmoid), pw 1x1 (+Mul scale, +Add, +Relu) */
    assert_int_equal(st.n_conv_direct, 1);
    assert_int_equal(st.n_conv_1x1, 3);
    assert_int_equal(st.n_conv_fused, 6);
    vt_graph_free(g);
  }
}

/* ConvTranspose: w [C, Cout/groups, kh, kw] */
static void convt_case(int64_t Nb, int64_t C, int64_t H, int64_t W, int64_t Cout, int64_t groups, int64_t kh,
                       int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, const int64_t *pads,
                       const int64_t *outpad, int bias, int act) {
  char what[200];
  snprintf(what, sizeof what, "convtranspose N%lld C%lld %lldx%lld -> %lld g%lld k%lldx%lld s%lldx%lld d%lldx%lld %s",
           (long long)Nb, (long long)C, (long long)H, (long long)W, (long long)Cout, (long long)groups, (long long)kh,
           (long long)kw, (long long)sh, (long long)sw, (long long)dh, (long long)dw, act_name[act]);
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", 4, (int64_t[]){Nb, C, H, W});
  int32_t in[3] = {x, add_const(g, "w", 4, (int64_t[]){C, Cout / groups, kh, kw}, 0.5f),
                   bias ? add_const(g, "b", 1, (int64_t[]){Cout}, 1.0f) : -1};
  int32_t y = node(g, "ConvTranspose", bias ? 3 : 2, in);
  attr_int(g, "group", groups);
  attr_ints(g, "kernel_shape", 2, (int64_t[]){kh, kw});
  attr_ints(g, "strides", 2, (int64_t[]){sh, sw});
  attr_ints(g, "dilations", 2, (int64_t[]){dh, dw});
  attr_ints(g, "pads", 4, pads);
  if (outpad) attr_ints(g, "output_padding", 2, outpad);
  int n_act = 0;
  y = add_act(g, y, act, &n_act);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st = check(g, what);
  if (st.n_conv_transpose != 1 || st.n_conv_fused != n_act)
    fail_msg("%s: %d conv transpose kernels, %d fused (want 1, %d)", what, st.n_conv_transpose, st.n_conv_fused, n_act);
  vt_graph_free(g);
}

static void test_conv_transpose(void **state) {
  (void)state;
  convt_case(1, 4, 5, 7, 6, 1, 3, 3, 2, 2, 1, 1, (int64_t[]){1, 1, 1, 1}, (int64_t[]){1, 1}, 1, ACT_NONE);
  convt_case(2, 6, 4, 3, 6, 3, 2, 2, 2, 2, 1, 1, (int64_t[]){0, 0, 0, 0}, NULL, 0, ACT_RELU);   /* 2x up, groups 3 */
  convt_case(1, 5, 6, 5, 3, 1, 3, 2, 1, 3, 2, 1, (int64_t[]){2, 0, 1, 1}, (int64_t[]){0, 2}, 1, ACT_HSWISH);
  convt_case(1, 8, 3, 3, 8, 8, 4, 4, 2, 2, 1, 1, (int64_t[]){1, 1, 1, 1}, NULL, 1, ACT_SIGMOID);  /* depthwise */
}

/* Resize (opset 17) of [N, C, H, W] by scales (or to sizes when sizes != NULL) */
static void resize_case(const char *mode, const char *ctm, const char *nearest, int64_t H, int64_t W, const float *scales,
                        const int64_t *sizes) {
  char what[200];
  snprintf(what, sizeof what, "resize %s %s %s %lldx%lld", mode, ctm, nearest ? nearest : "", (long long)H, (long long)W);
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", 4, (int64_t[]){2, 3, H, W});
  int32_t in[4] = {x, -1, -1, -1};
  if (sizes) {
    int64_t *p = vt_arena_alloc(&g->arena, 4 * sizeof *p);
    memcpy(p, sizes, 4 * sizeof *p);
    vt_tensor t = {.dtype = VT_I64, .rank = 1, .dims = {4}, .data = p};
    in[3] = vt_graph_add_const(g, "sizes", &t);
  } else {
    float *p = vt_arena_alloc(&g->arena, 4 * sizeof *p);
    memcpy(p, scales, 4 * sizeof *p);
    vt_tensor t = {.dtype = VT_F32, .rank = 1, .dims = {4}, .data = p};
    in[2] = vt_graph_add_const(g, "scales", &t);
  }
  int32_t y = node(g, "Resize", 4, in);
  attr_str(g, "mode", mode);
  attr_str(g, "coordinate_transformation_mode", ctm);
  if (nearest) attr_str(g, "nearest_mode", nearest);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st = check(g, what);
  if (st.n_resize != 1) fail_msg("%s: %d resize kernels (want 1)", what, st.n_resize);
  vt_graph_free(g);
}

static void test_resize(void **state) {
  (void)state;
  resize_case("nearest", "asymmetric", "floor", 5, 7, (const float[]){1, 1, 2, 2}, NULL);
  resize_case("nearest", "half_pixel", "round_prefer_floor", 9, 6, (const float[]){1, 1, 1.5f, 0.5f}, NULL);
  resize_case("nearest", "tf_half_pixel_for_nn", "ceil", 4, 4, NULL, (const int64_t[]){2, 3, 7, 9});
  resize_case("linear", "half_pixel", NULL, 5, 7, (const float[]){1, 1, 2, 2}, NULL);
  resize_case("linear", "pytorch_half_pixel", NULL, 8, 3, (const float[]){1, 1, 0.5f, 3}, NULL);
  resize_case("linear", "align_corners", NULL, 6, 5, NULL, (const int64_t[]){2, 3, 11, 4});
  resize_case("linear", "asymmetric", NULL, 7, 7, (const float[]){1, 1, 1.75f, 1.25f}, NULL);
}

typedef struct {
  const char *op;
  int64_t Nb, C, H, W, kh, kw, sh, sw, dh, dw, pads[4];
  int count_include_pad, ceil_mode;
} pool_spec;

static void pool_case(const pool_spec *s) {
  char what[200];
  snprintf(what, sizeof what, "%s N%lld C%lld %lldx%lld k%lldx%lld s%lldx%lld d%lldx%lld p%lld,%lld,%lld,%lld cip%d ceil%d",
           s->op, (long long)s->Nb, (long long)s->C, (long long)s->H, (long long)s->W, (long long)s->kh, (long long)s->kw,
           (long long)s->sh, (long long)s->sw, (long long)s->dh, (long long)s->dw, (long long)s->pads[0],
           (long long)s->pads[1], (long long)s->pads[2], (long long)s->pads[3], s->count_include_pad, s->ceil_mode);
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", 4, (int64_t[]){s->Nb, s->C, s->H, s->W});
  int32_t y = node(g, s->op, 1, &x);
  if (strcmp(s->op, "GlobalAveragePool")) {
    attr_ints(g, "kernel_shape", 2, (int64_t[]){s->kh, s->kw});
    attr_ints(g, "strides", 2, (int64_t[]){s->sh, s->sw});
    attr_ints(g, "pads", 4, s->pads);
    if (s->ceil_mode) attr_int(g, "ceil_mode", 1);
    if (!strcmp(s->op, "MaxPool")) attr_ints(g, "dilations", 2, (int64_t[]){s->dh, s->dw});
    else attr_int(g, "count_include_pad", s->count_include_pad);
  }
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st = check(g, what);
  if (st.n_pool != 1) fail_msg("%s: %d pool kernels (want 1)", what, st.n_pool);
  vt_graph_free(g);
}

static void test_pools(void **state) {
  (void)state;
  const pool_spec cases[] = {
      {"MaxPool", 2, 3, 11, 9, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 0, 0},
      {"MaxPool", 1, 4, 12, 13, 2, 3, 2, 1, 2, 1, {0, 1, 1, 0}, 0, 0},
      {"MaxPool", 1, 2, 10, 10, 3, 3, 2, 2, 1, 1, {0, 0, 0, 0}, 0, 1},
      {"AveragePool", 2, 3, 11, 9, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 0, 0},
      {"AveragePool", 1, 5, 9, 14, 3, 2, 1, 2, 1, 1, {1, 0, 1, 1}, 1, 0},
      {"AveragePool", 1, 2, 10, 10, 3, 3, 2, 2, 1, 1, {1, 1, 0, 0}, 0, 1},
      {"GlobalAveragePool", 2, 7, 9, 13, 0, 0, 0, 0, 0, 0, {0, 0, 0, 0}, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) pool_case(&cases[i]);
}

static void reduce_mid_case(const char *op, int rank, const int64_t *dims, int naxes, const int64_t *axes, int keepdims) {
  vt_graph *g = new_graph();
  int32_t x = add_input(g, "x", rank, dims);
  int32_t y = node(g, op, 1, &x);
  if (!strcmp(op, "ReduceSum")) {   /* opset 13+: axes as an input */
    vt_tensor t = {.dtype = VT_I64, .rank = 1, .dims = {naxes}};
    int64_t *p = vt_arena_alloc(&g->arena, (size_t)naxes * sizeof *p);
    memcpy(p, axes, (size_t)naxes * sizeof *p);
    t.data = p;
    int32_t av = vt_graph_add_const(g, "axes", &t);
    vt_node *n = &g->nodes[g->n_nodes - 1];
    int32_t in[2] = {x, av};
    n->in = vt_arena_alloc(&g->arena, sizeof in);
    memcpy(n->in, in, sizeof in);
    n->n_in = 2;
  } else {
    attr_ints(g, "axes", naxes, axes);
  }
  attr_int(g, "keepdims", keepdims);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_jit_stats st = check(g, op);
  assert_int_equal(st.n_pool, 1);
  vt_graph_free(g);
}

static void test_reduce_middle(void **state) {
  (void)state;
  reduce_mid_case("ReduceMean", 3, (int64_t[]){2, 7, 19}, 1, (int64_t[]){1}, 0);        /* mean over tokens */
  reduce_mid_case("ReduceMean", 4, (int64_t[]){3, 4, 5, 6}, 2, (int64_t[]){1, 2}, 1);
  reduce_mid_case("ReduceSum", 4, (int64_t[]){2, 5, 1, 9}, 1, (int64_t[]){-3}, 0);
  reduce_mid_case("ReduceMean", 3, (int64_t[]){1, 33, 8}, 1, (int64_t[]){-2}, 1);
}

/* ---------- the hybrid zoo models (tiny; the passes_zoo fixture makes them) ---------- */
static void hybrid_case(const char *model) {
  const char *dir = getenv("VT_ZOO_DIR") && *getenv("VT_ZOO_DIR") ? getenv("VT_ZOO_DIR") : VT_BINARY_DIR "/zoo-passes";
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.onnx", dir, model);
  struct stat sb;
  if (stat(path, &sb) != 0) fail_msg("zoo model %s missing (gen_zoo.py --set tiny --out %s)", path, dir);
  vt_error e = {0};
  vt_graph *g = NULL;
  vt_pipeline pl = {0};
  vt_pipeline_opts po = {0};
  vt_tensor in = {0}, ref = {0}, oi = {0}, oj = {0};
  snprintf(path, sizeof path, "%s/%s.in.pixel_values.npy", dir, model);
  if (vt_npy_read(path, &in, &e)) fail_msg("%s", e.msg);
  snprintf(path, sizeof path, "%s/%s.ref.logits.npy", dir, model);
  if (vt_npy_read(path, &ref, &e)) fail_msg("%s", e.msg);
  snprintf(path, sizeof path, "%s/%s.onnx", dir, model);
  /* the zoo input's batch (2) pins the graph's symbolic batch; canonicalisation folds the BatchNorms */
  const char *pin_names[1] = {"batch"};
  int64_t pin_vals[1] = {in.dims[0]};
  if (vt_onnx_load(path, &g, &e) || vt_graph_prepare(g, pin_names, pin_vals, 1, &e)) fail_msg("%s: %s", model, e.msg);
  if (vt_pipeline_run(&pl, g, &po, &e)) fail_msg("%s: canonicalisation: %s", model, e.msg);
  vt_interp *it = vt_interp_new(g, 2, &e);
  assert_non_null(it);
  if (vt_interp_run(it, &in, &oi, &e)) fail_msg("%s: interp: %s", model, e.msg);
  vt_cg_options opt = {.opt_level = 3, .threads = 2, .stats = getenv("VT_TEST_STATS") ? stderr : NULL};
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) fail_msg("%s: jit compile: %s", model, e.msg);
  if (vt_jit_run(j, &in, &oj, &e)) fail_msg("%s: jit run: %s", model, e.msg);
  double r_interp = rel_l2(&oj, &oi), r_torch = rel_l2(&oj, &ref);
  print_message("  %s: JIT vs interpreter rel L2 %.3g, vs torch %.3g\n", model, r_interp, r_torch);
  if (!(r_interp <= 1e-5) || !(r_torch <= 1e-4)) fail_msg("%s: rel L2 %.3g (interp), %.3g (torch)", model, r_interp, r_torch);
  vt_jit_stats st;
  vt_jit_get_stats(j, &st);
  /* stem + 3 depthwise convs direct; 3 x (SE reduce, SE expand, pointwise) + to_tokens as 1x1; the
   * token mean; no host node anywhere */
  assert_int_equal(st.n_conv_direct, 4);
  assert_int_equal(st.n_conv_1x1, 10);
  assert_int_equal(st.n_pool, 1);
  assert_int_equal(st.n_fallback, 0);
  vt_jit_free(j);
  vt_interp_free(it);
  vt_tensor_free(&in); vt_tensor_free(&ref); vt_tensor_free(&oi); vt_tensor_free(&oj);
  vt_graph_free(g);
}

static void test_hybrid_zoo(void **state) {
  (void)state;
  hybrid_case("hybrid_tiny_op17");
  hybrid_case("hybrid_tiny_op13");
}

int main(void) {
  if (getenv("VTOPT_CPU")) {   /* one ISA's run (ctest test_codegen_conv_avx2 / _avx512): skip if this CPU can't */
    vt_cg_target_info t;
    vt_error e = {0};
    if (vt_cg_target(NULL, &t, &e)) { fprintf(stderr, "test_codegen_conv: %s\n", e.msg); return 1; }
    if (vt_cpu_missing(t.features, NULL, 0)) {
      fprintf(stderr, "test_codegen_conv: skipped: VTOPT_CPU=%s builds %s kernels, which need %s; this CPU lacks some\n",
              t.cpu, t.isa, t.features);
      return 77;
    }
    fprintf(stderr, "test_codegen_conv: kernels built for %s (%s)\n", t.cpu, t.isa);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_direct),
      cmocka_unit_test(test_conv_1x1),
      cmocka_unit_test(test_conv_se_block),
      cmocka_unit_test(test_conv_transpose),
      cmocka_unit_test(test_resize),
      cmocka_unit_test(test_pools),
      cmocka_unit_test(test_reduce_middle),
      cmocka_unit_test(test_hybrid_zoo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* built without codegen/ */
static void test_codegen_conv_not_built(void **state) {
  (void)state;
  skip();
}
int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_codegen_conv_not_built)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif

/* test_kernels_tensor.c — the tensor family (ir/infer_tensor.c, runtime/kernels_tensor*.c):
 * symbolic shape inference through Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains,
 * and kernels run as one-node graphs through vt_graph_infer + vt_run_node, compared with naive
 * loops written here or hand-computed values (ONNX operator docs). */
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
#include "runtime.h"
#include "op_harness.h"

/* ---------- helpers ---------------------------------------------------------------------------- */


static vt_pool *pool2;
static uint64_t rng = 88172645463325252ull;
static float frand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (float)((rng >> 11) % 2000001) / 1000000.0f - 1.0f;
}

static void set_opset(vt_graph *g, int64_t v) { assert_int_equal(vt_graph_set_opset(g, "", v), 0); }

static vt_tensor tf32(int rank, const int64_t *dims, const float *vals) {
  vt_tensor t = {0};
  assert_int_equal(vt_tensor_alloc(&t, VT_F32, rank, dims, NULL), VT_OK);
  int64_t n = vt_tensor_numel(&t);
  for (int64_t i = 0; i < n; i++) ((float *)t.data)[i] = vals ? vals[i] : frand();
  return t;
}

static vt_tensor ti64(int rank, const int64_t *dims, const int64_t *vals) {
  vt_tensor t = {0};
  assert_int_equal(vt_tensor_alloc(&t, VT_I64, rank, dims, NULL), VT_OK);
  int64_t n = vt_tensor_numel(&t);
  if (n) memcpy(t.data, vals, (size_t)n * sizeof(int64_t));
  return t;
}

/* Runs op (opset) on ins (NULL = absent); outs zeroed tensors. */
static int run_op(const char *opname, int64_t opset, int nin, const vt_tensor *const *ins, int nout,
                  vt_tensor *outs, const tattr *attrs, int nattr, vt_error *err) {
  return run_one_op(opname, opset, nin, ins, nout, outs, attrs, nattr, pool2, err);
}

static void expect_f32(const vt_tensor *t, const float *want, int64_t n) {
  assert_int_equal(t->dtype, VT_F32);
  assert_int_equal(vt_tensor_numel(t), n);
  for (int64_t i = 0; i < n; i++)
    if (fabsf(((float *)t->data)[i] - want[i]) > 1e-5f)
      fail_msg("element %lld: got %g want %g", (long long)i, ((float *)t->data)[i], want[i]);
}

static void expect_dims(const vt_tensor *t, int rank, const int64_t *dims) {
  assert_int_equal(t->rank, rank);
  for (int d = 0; d < rank; d++) assert_int_equal(t->dims[d], dims[d]);
}

/* ---------- symbolic shape chains ------------------------------------------------------------ */
static int32_t add_const_i64(vt_graph *g, const char *name, int rank, const int64_t *dims, const int64_t *vals) {
  vt_tensor t = {.dtype = VT_I64, .rank = rank};
  int64_t n = 1;
  for (int d = 0; d < rank; d++) t.dims[d] = dims[d], n *= dims[d];
  int64_t *p = vt_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
  memcpy(p, vals, sizeof(int64_t) * (size_t)n);
  t.data = p;
  return vt_graph_add_const(g, name, &t);
}

static int32_t node1(vt_graph *g, const char *op, int nin, const int32_t *in, const char *outname) {
  int32_t o = vt_graph_add_value(g, outname, VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, outname, vt_op_lookup(op, ""), nin, in, 1, &o);
  return o;
}

/* x[N, T, 384] -> Shape -> Gather(0), Gather(1) -> Unsqueeze -> Concat(N, T, 6, 64) -> Reshape:
 * and the same with -1 for T, and Shape -> Slice[0:2] -> Concat -> Reshape. */
static void test_symbolic_reshape_chain(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("chain.onnx");
  set_opset(g, 13);
  vt_dim N = vt_dim_named(g, "N"), T = vt_dim_named(g, "T");
  vt_dim xd[3] = {N, T, 384};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 3, xd);
  vt_graph_add_input(g, x);
  int64_t one = 1, zero = 0, two = 2;
  int64_t c0[1] = {0}, c1[1] = {1}, c664[2] = {6, 64}, cm1[1] = {-1}, c64[1] = {64};
  int32_t i0 = add_const_i64(g, "i0", 0, NULL, &zero), i1 = add_const_i64(g, "i1", 0, NULL, c1);
  int32_t ax0 = add_const_i64(g, "ax0", 1, &one, c0);
  int32_t k664 = add_const_i64(g, "k664", 1, &two, c664), km1 = add_const_i64(g, "km1", 1, &one, cm1);
  int32_t k64 = add_const_i64(g, "k64", 1, &one, c64);
  int32_t shp = node1(g, "Shape", 1, &x, "shape");
  int32_t gn = node1(g, "Gather", 2, (int32_t[]){shp, i0}, "gn");
  int32_t gt = node1(g, "Gather", 2, (int32_t[]){shp, i1}, "gt");
  int32_t un = node1(g, "Unsqueeze", 2, (int32_t[]){gn, ax0}, "un");
  int32_t ut = node1(g, "Unsqueeze", 2, (int32_t[]){gt, ax0}, "ut");
  int32_t cat = node1(g, "Concat", 3, (int32_t[]){un, ut, k664}, "cat");   /* (N, T, 6, 64) */
  int32_t r1 = node1(g, "Reshape", 2, (int32_t[]){x, cat}, "r1");
  int32_t cat2 = node1(g, "Concat", 3, (int32_t[]){un, km1, k64}, "cat2");   /* (N, -1, 64) */
  int32_t r2 = node1(g, "Reshape", 2, (int32_t[]){x, cat2}, "r2");
  int32_t cat3 = node1(g, "Concat", 3, (int32_t[]){un, km1, k664}, "cat3");   /* (N, -1, 6, 64) */
  int32_t r3 = node1(g, "Reshape", 2, (int32_t[]){x, cat3}, "r3");
  /* Shape -> Slice [0:2] -> Concat with [6, 64] */
  int32_t st = add_const_i64(g, "st", 1, &one, c0), en = add_const_i64(g, "en", 1, &one, (int64_t[]){2});
  int32_t sl = node1(g, "Slice", 3, (int32_t[]){shp, st, en}, "sl");
  int32_t cat4 = node1(g, "Concat", 2, (int32_t[]){sl, k664}, "cat4");
  int32_t r4 = node1(g, "Reshape", 2, (int32_t[]){x, cat4}, "r4");
  /* Size and Flatten on symbols */
  int32_t sz = node1(g, "Size", 1, &x, "sz");
  vt_graph_add_output(g, r1);
  vt_graph_add_output(g, r2);
  vt_graph_add_output(g, r3);
  vt_graph_add_output(g, r4);
  vt_graph_add_output(g, sz);
  vt_error err = {0};
  int rc = vt_graph_infer(g, &err);
  if (rc) fail_msg("%s", err.msg);
  const vt_value *v = &g->values[shp];
  assert_int_equal(v->nknown, 3);
  assert_true(v->known[0] == N && v->known[1] == T && v->known[2] == 384);
  v = &g->values[cat];
  assert_int_equal(v->nknown, 4);
  assert_true(v->known[0] == N && v->known[1] == T && v->known[2] == 6 && v->known[3] == 64);
  v = &g->values[r1];
  assert_int_equal(v->rank, 4);
  assert_true(v->dims[0] == N && v->dims[1] == T && v->dims[2] == 6 && v->dims[3] == 64);
  v = &g->values[r2];   /* [N, T*6, 64] */
  assert_int_equal(v->rank, 3);
  assert_true(v->dims[0] == N && v->dims[1] == vt_dim_mul(g, T, 6) && v->dims[2] == 64);
  v = &g->values[r3];   /* -1 resolves to T: (N*T*384) / (N*6*64) */
  assert_int_equal(v->rank, 4);
  assert_true(v->dims[0] == N && v->dims[1] == T && v->dims[2] == 6 && v->dims[3] == 64);
  v = &g->values[r4];
  assert_int_equal(v->rank, 4);
  assert_true(v->dims[0] == N && v->dims[1] == T && v->dims[2] == 6 && v->dims[3] == 64);
  v = &g->values[sz];
  assert_int_equal(v->nknown, 1);
  assert_true(v->known[0] == vt_dim_mul(g, vt_dim_mul(g, N, T), 384));
  vt_graph_free(g);
}

/* torch's F.pad export: pads reshaped to [3,2], rows reversed by Slice(step -1), transposed and
 * flattened; known contents (with a symbol in them) must follow n-D Slice and Transpose. */
static void test_known_nd(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("pads.onnx");
  set_opset(g, 13);
  vt_dim T = vt_dim_named(g, "T");
  vt_dim xd[1] = {T};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 1, xd);
  vt_graph_add_input(g, x);
  int64_t one = 1, two = 2, five = 5;
  int32_t shp = node1(g, "Shape", 1, &x, "shape");                                  /* [T] */
  int32_t rest = add_const_i64(g, "rest", 1, &five, (int64_t[]){2, 0, 3, 0, 0});
  int32_t cat = node1(g, "Concat", 2, (int32_t[]){shp, rest}, "cat");              /* T 2 0 3 0 0 */
  int32_t s32 = add_const_i64(g, "s32", 1, &two, (int64_t[]){3, 2});
  int32_t rs = node1(g, "Reshape", 2, (int32_t[]){cat, s32}, "rs");
  int32_t st = add_const_i64(g, "st", 1, &one, (int64_t[]){-1});
  int32_t en = add_const_i64(g, "en", 1, &one, (int64_t[]){INT64_MIN});
  int32_t ax = add_const_i64(g, "ax", 1, &one, (int64_t[]){0});
  int32_t sp = add_const_i64(g, "sp", 1, &one, (int64_t[]){-1});
  int32_t sl = node1(g, "Slice", 5, (int32_t[]){rs, st, en, ax, sp}, "sl");        /* [[0,0],[0,3],[T,2]] */
  int32_t tr = node1(g, "Transpose", 1, &sl, "tr");                                /* [[0,0,T],[0,3,2]] */
  vt_graph_add_output(g, tr);
  vt_error err = {0};
  if (vt_graph_infer(g, &err)) fail_msg("%s", err.msg);
  const vt_value *v = &g->values[tr];
  assert_int_equal(v->rank, 2);
  assert_int_equal(v->dims[0], 2);
  assert_int_equal(v->dims[1], 3);
  assert_int_equal(v->nknown, 6);
  vt_dim want[6] = {0, 0, T, 0, 3, 2};
  for (int i = 0; i < 6; i++) assert_true(v->known[i] == want[i]);
  vt_graph_free(g);
}

/* Graph-level inference with shape inputs that are graph inputs: ranks are known, dims fresh. */
static void test_unknown_shape_inputs(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("u.onnx");
  set_opset(g, 13);
  vt_dim xd[2] = {4, 6}, sd[1] = {3};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 2, xd);
  int32_t s = vt_graph_add_value(g, "s", VT_I64, 1, sd);
  vt_graph_add_input(g, x);
  vt_graph_add_input(g, s);
  int32_t r = node1(g, "Reshape", 2, (int32_t[]){x, s}, "r");
  int32_t e = node1(g, "Expand", 2, (int32_t[]){x, s}, "e");
  vt_graph_add_output(g, r);
  vt_graph_add_output(g, e);
  vt_error err = {0};
  if (vt_graph_infer(g, &err)) fail_msg("%s", err.msg);
  assert_int_equal(g->values[r].rank, 3);
  assert_int_equal(g->values[e].rank, 3);
  assert_false(vt_dim_is_const(g->values[r].dims[0]));
  vt_graph_free(g);
}

static void test_reshape_errors(void **state) {
  (void)state;
  int64_t xd[2] = {4, 6}, sd[1] = {2};
  vt_tensor x = tf32(2, xd, NULL);
  vt_tensor s = ti64(1, sd, (int64_t[]){5, -1});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  assert_int_not_equal(run_op("Reshape", 14, 2, (const vt_tensor *[]){&x, &s}, 1, out, NULL, 0, &err), VT_OK);
  assert_non_null(strstr(err.msg, "not divisible"));
  vt_tensor s2 = ti64(1, sd, (int64_t[]){0, -1});
  assert_int_equal(run_op("Reshape", 14, 2, (const vt_tensor *[]){&x, &s2}, 1, out, NULL, 0, &err), VT_OK);
  expect_dims(&out[0], 2, (int64_t[]){4, 6});
  assert_memory_equal(out[0].data, x.data, 24 * sizeof(float));
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x);
  vt_tensor_free(&s);
  vt_tensor_free(&s2);
}

/* ---------- Transpose ---------------------------------------------------------------------------- */
static void check_transpose(int rank, const int64_t *dims, const int64_t *perm) {
  vt_tensor x = tf32(rank, dims, NULL);
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  tattr a[1] = {{"perm", VT_ATTR_INTS, 0, 0, NULL, rank, {0}}};
  for (int i = 0; i < rank; i++) a[0].ints[i] = perm[i];
  if (run_op("Transpose", 13, 1, (const vt_tensor *[]){&x}, 1, out, a, 1, &err)) fail_msg("%s", err.msg);
  int64_t xs[VT_MAX_RANK], n = vt_tensor_numel(&x), idx[VT_MAX_RANK] = {0};
  vt_strides(rank, dims, xs);
  for (int d = 0; d < rank; d++) assert_int_equal(out[0].dims[d], dims[perm[d]]);
  for (int64_t i = 0; i < n; i++) {   /* walk output in order */
    int64_t off = 0;
    for (int d = 0; d < rank; d++) off += idx[d] * xs[perm[d]];
    if (((float *)out[0].data)[i] != ((float *)x.data)[off]) fail_msg("transpose mismatch at %lld", (long long)i);
    for (int d = rank - 1; d >= 0; d--) {
      if (++idx[d] < out[0].dims[d]) break;
      idx[d] = 0;
    }
  }
  vt_tensor_free(&x);
  vt_tensor_free(&out[0]);
}

static void test_transpose(void **state) {
  (void)state;
  check_transpose(4, (int64_t[]){2, 3, 4, 5}, (int64_t[]){0, 2, 1, 3});
  check_transpose(4, (int64_t[]){2, 3, 4, 5}, (int64_t[]){3, 1, 0, 2});
  check_transpose(3, (int64_t[]){3, 40, 33}, (int64_t[]){0, 2, 1});        /* tiled path */
  check_transpose(4, (int64_t[]){2, 197, 6, 64}, (int64_t[]){0, 2, 1, 3}); /* big, threaded */
  check_transpose(4, (int64_t[]){2, 6, 197, 64}, (int64_t[]){0, 1, 3, 2});
  check_transpose(2, (int64_t[]){1, 7}, (int64_t[]){1, 0});
}

/* ---------- Gather, GatherElements, Scatter ---------------------------------------------------- */
static void test_gather(void **state) {
  (void)state;
  float xv[6] = {1, 2, 3, 4, 5, 6};
  vt_tensor x = tf32(2, (int64_t[]){3, 2}, xv);
  vt_tensor ind = ti64(2, (int64_t[]){2, 2}, (int64_t[]){0, -1, 1, 2});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  tattr ax0[1] = {AI("axis", 0)};
  if (run_op("Gather", 13, 2, (const vt_tensor *[]){&x, &ind}, 1, out, ax0, 1, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 3, (int64_t[]){2, 2, 2});
  expect_f32(&out[0], (float[]){1, 2, 5, 6, 3, 4, 5, 6}, 8);
  vt_tensor_free(&out[0]);
  vt_tensor ind1 = ti64(1, (int64_t[]){2}, (int64_t[]){1, 0});
  tattr ax1[1] = {AI("axis", 1)};
  if (run_op("Gather", 13, 2, (const vt_tensor *[]){&x, &ind1}, 1, out, ax1, 1, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){2, 1, 4, 3, 6, 5}, 6);
  vt_tensor_free(&out[0]);
  /* out of range: a clear error, no crash */
  vt_tensor bad = ti64(1, (int64_t[]){2}, (int64_t[]){0, 3});
  assert_int_not_equal(run_op("Gather", 13, 2, (const vt_tensor *[]){&x, &bad}, 1, out, ax0, 1, &err), VT_OK);
  assert_non_null(strstr(err.msg, "out of range"));
  vt_tensor bad2 = ti64(1, (int64_t[]){1}, (int64_t[]){-4});
  assert_int_not_equal(run_op("Gather", 13, 2, (const vt_tensor *[]){&x, &bad2}, 1, out, ax0, 1, &err), VT_OK);
  vt_tensor_free(&out[0]);
  /* GatherElements with a bad index */
  vt_tensor ge = ti64(2, (int64_t[]){3, 2}, (int64_t[]){0, 1, 1, 0, 7, 0});
  assert_int_not_equal(run_op("GatherElements", 13, 2, (const vt_tensor *[]){&x, &ge}, 1, out, ax1, 1, &err), VT_OK);
  assert_non_null(strstr(err.msg, "out of range"));
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&ind); vt_tensor_free(&ind1); vt_tensor_free(&bad); vt_tensor_free(&bad2);
  vt_tensor_free(&ge);
}

static void test_scatter(void **state) {
  (void)state;
  /* ScatterElements add with duplicate indices (ONNX doc example) */
  vt_tensor x = tf32(2, (int64_t[]){1, 5}, (float[]){1, 2, 3, 4, 5});
  vt_tensor ind = ti64(2, (int64_t[]){1, 2}, (int64_t[]){1, 1});
  vt_tensor upd = tf32(2, (int64_t[]){1, 2}, (float[]){1.1f, 2.1f});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  tattr a[2] = {AI("axis", 1), AS("reduction", "add")};
  if (run_op("ScatterElements", 16, 3, (const vt_tensor *[]){&x, &ind, &upd}, 1, out, a, 2, &err))
    fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 5.2f, 3, 4, 5}, 5);
  vt_tensor_free(&out[0]);
  /* ScatterND with an out-of-range index fails */
  vt_tensor x8 = tf32(1, (int64_t[]){8}, (float[]){1, 2, 3, 4, 5, 6, 7, 8});
  vt_tensor i8 = ti64(2, (int64_t[]){2, 1}, (int64_t[]){4, 8});
  vt_tensor u8 = tf32(1, (int64_t[]){2}, (float[]){9, 10});
  assert_int_not_equal(run_op("ScatterND", 16, 3, (const vt_tensor *[]){&x8, &i8, &u8}, 1, out, NULL, 0, &err), VT_OK);
  assert_non_null(strstr(err.msg, "out of range"));
  vt_tensor_free(&out[0]);
  ((int64_t *)i8.data)[1] = -1;
  if (run_op("ScatterND", 16, 3, (const vt_tensor *[]){&x8, &i8, &u8}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 2, 3, 4, 9, 6, 7, 10}, 8);
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&ind); vt_tensor_free(&upd);
  vt_tensor_free(&x8); vt_tensor_free(&i8); vt_tensor_free(&u8);
}

/* ---------- Slice, Pad, Concat/Split, Expand, Tile -------------------------------------------- */
static void test_slice(void **state) {
  (void)state;
  float xv[12];
  for (int i = 0; i < 12; i++) xv[i] = (float)i;
  vt_tensor x = tf32(2, (int64_t[]){3, 4}, xv);
  vt_tensor st = ti64(1, (int64_t[]){2}, (int64_t[]){-1, 100});
  vt_tensor en = ti64(1, (int64_t[]){2}, (int64_t[]){INT64_MIN, 0});
  vt_tensor ax = ti64(1, (int64_t[]){2}, (int64_t[]){0, 1});
  vt_tensor sp = ti64(1, (int64_t[]){2}, (int64_t[]){-2, -2});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  /* rows 2, 0; cols 3, 1 (start 100 clamps to 3, end 0 exclusive) */
  if (run_op("Slice", 13, 5, (const vt_tensor *[]){&x, &st, &en, &ax, &sp}, 1, out, NULL, 0, &err))
    fail_msg("%s", err.msg);
  expect_dims(&out[0], 2, (int64_t[]){2, 2});
  expect_f32(&out[0], (float[]){11, 9, 3, 1}, 4);
  vt_tensor_free(&out[0]);
  /* opset 1 attributes */
  tattr a[3] = {AINTS("starts", 1, 1), AINTS("ends", 1, -1), AINTS("axes", 1, 1)};
  if (run_op("Slice", 9, 1, (const vt_tensor *[]){&x}, 1, out, a, 3, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 2, 5, 6, 9, 10}, 6);
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&st); vt_tensor_free(&en); vt_tensor_free(&ax); vt_tensor_free(&sp);
}

static void test_pad(void **state) {
  (void)state;
  vt_tensor x = tf32(2, (int64_t[]){3, 2}, (float[]){1, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f});
  vt_tensor pads = ti64(1, (int64_t[]){4}, (int64_t[]){0, 2, 0, 0});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  tattr refl[1] = {AS("mode", "reflect")}, edge[1] = {AS("mode", "edge")};
  /* ONNX Pad doc examples */
  if (run_op("Pad", 13, 2, (const vt_tensor *[]){&x, &pads}, 1, out, refl, 1, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 1.2f, 1, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f, 5.7f, 4.5f, 5.7f}, 12);
  vt_tensor_free(&out[0]);
  if (run_op("Pad", 13, 2, (const vt_tensor *[]){&x, &pads}, 1, out, edge, 1, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 1, 1, 1.2f, 2.3f, 2.3f, 2.3f, 3.4f, 4.5f, 4.5f, 4.5f, 5.7f}, 12);
  vt_tensor_free(&out[0]);
  /* constant with a value, negative pad crops: [3,2] -> pads (1,-1,0,0) -> [4,1] */
  vt_tensor p2 = ti64(1, (int64_t[]){4}, (int64_t[]){1, -1, 0, 0});
  vt_tensor val = tf32(0, NULL, (float[]){9});
  if (run_op("Pad", 13, 3, (const vt_tensor *[]){&x, &p2, &val}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 2, (int64_t[]){4, 1});
  expect_f32(&out[0], (float[]){9, 1.2f, 3.4f, 5.7f}, 4);
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&pads); vt_tensor_free(&p2); vt_tensor_free(&val);
}

static void test_concat_split(void **state) {
  (void)state;
  vt_tensor a = tf32(3, (int64_t[]){2, 3, 4}, NULL), b = tf32(3, (int64_t[]){2, 5, 4}, NULL);
  vt_tensor out[3] = {{0}};
  vt_error err = {0};
  tattr ax1[1] = {AI("axis", -2)};
  if (run_op("Concat", 13, 2, (const vt_tensor *[]){&a, &b}, 1, out, ax1, 1, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 3, (int64_t[]){2, 8, 4});
  for (int i = 0; i < 2; i++) {
    assert_memory_equal((float *)out[0].data + i * 32, (float *)a.data + i * 12, 12 * sizeof(float));
    assert_memory_equal((float *)out[0].data + i * 32 + 12, (float *)b.data + i * 20, 20 * sizeof(float));
  }
  vt_tensor cat = out[0];
  memset(&out[0], 0, sizeof out[0]);
  vt_tensor sp = ti64(1, (int64_t[]){2}, (int64_t[]){3, 5});
  vt_tensor parts[2] = {{0}};
  if (run_op("Split", 13, 2, (const vt_tensor *[]){&cat, &sp}, 2, parts, ax1, 1, &err)) fail_msg("%s", err.msg);
  assert_memory_equal(parts[0].data, a.data, 24 * sizeof(float));
  assert_memory_equal(parts[1].data, b.data, 40 * sizeof(float));
  vt_tensor_free(&parts[0]);
  vt_tensor_free(&parts[1]);
  /* opset 18 num_outputs, uneven: 8 -> 3, 3, 2 */
  tattr a18[2] = {AI("axis", 1), AI("num_outputs", 3)};
  if (run_op("Split", 18, 1, (const vt_tensor *[]){&cat}, 3, out, a18, 2, &err)) fail_msg("%s", err.msg);
  assert_int_equal(out[0].dims[1], 3);
  assert_int_equal(out[2].dims[1], 2);
  assert_memory_equal(out[2].data, (float *)cat.data + 24, 8 * sizeof(float));
  for (int i = 0; i < 3; i++) vt_tensor_free(&out[i]);
  vt_tensor_free(&cat); vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&sp);
}

static void test_expand_tile(void **state) {
  (void)state;
  vt_tensor x = tf32(2, (int64_t[]){3, 1}, (float[]){1, 2, 3});
  vt_tensor shp = ti64(1, (int64_t[]){3}, (int64_t[]){2, 1, 4});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  if (run_op("Expand", 13, 2, (const vt_tensor *[]){&x, &shp}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 3, (int64_t[]){2, 3, 4});
  for (int i = 0; i < 24; i++) assert_true(((float *)out[0].data)[i] == (float)((i / 4) % 3 + 1));
  vt_tensor_free(&out[0]);
  vt_tensor rep = ti64(1, (int64_t[]){2}, (int64_t[]){2, 3});
  if (run_op("Tile", 13, 2, (const vt_tensor *[]){&x, &rep}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 2, (int64_t[]){6, 3});
  for (int i = 0; i < 18; i++) assert_true(((float *)out[0].data)[i] == (float)((i / 3) % 3 + 1));
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&shp); vt_tensor_free(&rep);
}

/* ---------- TopK, Resize, NonZero, Trilu ------------------------------------------------------ */
static void test_topk(void **state) {
  (void)state;
  vt_tensor x = tf32(2, (int64_t[]){2, 4}, (float[]){3, 1, 3, 2, 0, 5, 5, 5});
  vt_tensor kk = ti64(1, (int64_t[]){1}, (int64_t[]){2});
  vt_tensor out[2] = {{0}};
  vt_error err = {0};
  if (run_op("TopK", 11, 2, (const vt_tensor *[]){&x, &kk}, 2, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){3, 3, 5, 5}, 4);
  int64_t want_i[4] = {0, 2, 1, 2};   /* ties: lower index first */
  assert_memory_equal(out[1].data, want_i, sizeof want_i);
  vt_tensor_free(&out[0]); vt_tensor_free(&out[1]);
  tattr sm[1] = {AI("largest", 0)};
  if (run_op("TopK", 11, 2, (const vt_tensor *[]){&x, &kk}, 2, out, sm, 1, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 2, 0, 5}, 4);
  int64_t want_s[4] = {1, 3, 0, 1};
  assert_memory_equal(out[1].data, want_s, sizeof want_s);
  vt_tensor_free(&out[0]); vt_tensor_free(&out[1]);
  vt_tensor_free(&x); vt_tensor_free(&kk);
}

static void test_resize(void **state) {
  (void)state;
  vt_tensor x = tf32(4, (int64_t[]){1, 1, 2, 2}, (float[]){1, 2, 3, 4});
  vt_tensor sc = tf32(1, (int64_t[]){4}, (float[]){1, 1, 2, 2});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  tattr lin[1] = {AS("mode", "linear")};
  /* ONNX doc: resize_upsample_scales_linear */
  if (run_op("Resize", 13, 3, (const vt_tensor *[]){&x, NULL, &sc}, 1, out, lin, 1, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 4, (int64_t[]){1, 1, 4, 4});
  expect_f32(&out[0], (float[]){1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f,
                                3.75f, 4}, 16);
  vt_tensor_free(&out[0]);
  /* nearest (round_prefer_floor, half_pixel) upsample x2 on W, x3 on H */
  vt_tensor sc2 = tf32(1, (int64_t[]){4}, (float[]){1, 1, 2, 3});
  if (run_op("Resize", 13, 3, (const vt_tensor *[]){&x, NULL, &sc2}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 4, (int64_t[]){1, 1, 4, 6});
  expect_f32(&out[0], (float[]){1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}, 24);
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&sc); vt_tensor_free(&sc2);
}

static void test_nonzero_trilu(void **state) {
  (void)state;
  vt_tensor x = tf32(2, (int64_t[]){2, 3}, (float[]){0, 1, 0, 2, -0.0f, 3});
  vt_tensor out[1] = {{0}};
  vt_error err = {0};
  if (run_op("NonZero", 13, 1, (const vt_tensor *[]){&x}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 2, (int64_t[]){2, 3});
  int64_t want[6] = {0, 1, 1, 1, 0, 2};
  assert_memory_equal(out[0].data, want, sizeof want);
  vt_tensor_free(&out[0]);
  vt_tensor y = tf32(2, (int64_t[]){3, 3}, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
  vt_tensor k = ti64(0, NULL, (int64_t[]){-1});
  tattr lo[1] = {AI("upper", 0)};
  if (run_op("Trilu", 14, 2, (const vt_tensor *[]){&y, &k}, 1, out, lo, 1, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){0, 0, 0, 4, 0, 0, 7, 8, 0}, 9);
  vt_tensor_free(&out[0]);
  if (run_op("Trilu", 14, 2, (const vt_tensor *[]){&y, &k}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_f32(&out[0], (float[]){1, 2, 3, 4, 5, 6, 0, 8, 9}, 9);
  vt_tensor_free(&out[0]);
  vt_tensor_free(&x); vt_tensor_free(&y); vt_tensor_free(&k);
}

/* Bad parameters fail with a message naming the problem (never a crash). */
static void test_bad_params(void **state) {
  (void)state;
  vt_tensor x = tf32(2, (int64_t[]){3, 4}, NULL);
  vt_tensor out[2] = {{0}};
  vt_error err = {0};
  tattr perm[1] = {AINTS("perm", 2, 0, 0)};
  assert_int_not_equal(run_op("Transpose", 13, 1, (const vt_tensor *[]){&x}, 1, out, perm, 1, &err), VT_OK);
  assert_non_null(strstr(err.msg, "permutation"));
  vt_tensor two_neg = ti64(1, (int64_t[]){2}, (int64_t[]){-1, -1});
  assert_int_not_equal(run_op("Reshape", 14, 2, (const vt_tensor *[]){&x, &two_neg}, 1, out, NULL, 0, &err), VT_OK);
  assert_non_null(strstr(err.msg, "more than one -1"));
  vt_tensor ax = ti64(1, (int64_t[]){1}, (int64_t[]){0});
  assert_int_not_equal(run_op("Squeeze", 13, 2, (const vt_tensor *[]){&x, &ax}, 1, out, NULL, 0, &err), VT_OK);
  assert_non_null(strstr(err.msg, "cannot squeeze"));
  vt_tensor z = ti64(1, (int64_t[]){1}, (int64_t[]){0});
  assert_int_not_equal(run_op("Slice", 13, 5, (const vt_tensor *[]){&x, &z, &z, &z, &z}, 1, out, NULL, 0, &err), VT_OK);
  assert_non_null(strstr(err.msg, "step is 0"));
  /* huge steps and pads do not overflow */
  vt_tensor big = ti64(1, (int64_t[]){1}, (int64_t[]){INT64_MIN});
  vt_tensor st = ti64(1, (int64_t[]){1}, (int64_t[]){-1});
  vt_tensor en = ti64(1, (int64_t[]){1}, (int64_t[]){INT64_MIN});
  if (run_op("Slice", 13, 5, (const vt_tensor *[]){&x, &st, &en, &z, &big}, 1, out, NULL, 0, &err)) fail_msg("%s", err.msg);
  expect_dims(&out[0], 2, (int64_t[]){1, 4});
  assert_memory_equal(out[0].data, (float *)x.data + 8, 4 * sizeof(float));
  vt_tensor_free(&out[0]);
  vt_tensor pads = ti64(1, (int64_t[]){4}, (int64_t[]){INT64_MAX, 0, 0, 0});
  assert_int_not_equal(run_op("Pad", 13, 2, (const vt_tensor *[]){&x, &pads}, 1, out, NULL, 0, &err), VT_OK);
  vt_tensor kk = ti64(1, (int64_t[]){1}, (int64_t[]){5});
  assert_int_not_equal(run_op("TopK", 11, 2, (const vt_tensor *[]){&x, &kk}, 2, out, NULL, 0, &err), VT_OK);
  assert_non_null(strstr(err.msg, "larger than"));
  vt_tensor_free(&x); vt_tensor_free(&two_neg); vt_tensor_free(&ax); vt_tensor_free(&z); vt_tensor_free(&big);
  vt_tensor_free(&st); vt_tensor_free(&en); vt_tensor_free(&pads); vt_tensor_free(&kk);
}

static int setup(void **state) {
  (void)state;
  pool2 = vt_pool_new(2);
  return pool2 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  vt_pool_free(pool2);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_symbolic_reshape_chain),
      cmocka_unit_test(test_known_nd),
      cmocka_unit_test(test_unknown_shape_inputs),
      cmocka_unit_test(test_reshape_errors),
      cmocka_unit_test(test_transpose),
      cmocka_unit_test(test_gather),
      cmocka_unit_test(test_scatter),
      cmocka_unit_test(test_slice),
      cmocka_unit_test(test_pad),
      cmocka_unit_test(test_concat_split),
      cmocka_unit_test(test_expand_tile),
      cmocka_unit_test(test_topk),
      cmocka_unit_test(test_resize),
      cmocka_unit_test(test_nonzero_trilu),
      cmocka_unit_test(test_bad_params),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_frontend.c — the frontend on good input: ONNX load (initializers of every dtype, Constant
 * nodes, symbolic dims, attributes, external data), save -> onnx.checker -> load round trip,
 * .npy read/write (checked against numpy), TensorProto .pb files. Fixtures are generated at test
 * time by testsuite/data/frontend/make_fixtures.py with /usr/bin/python3 (python3-onnx). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "frontend.h"
#include "ir.h"

int fe_onnx_save_ext(const vt_graph *g, const char *path, size_t ext_min_total, vt_error *e);

#define FX VT_BINARY_DIR "/testsuite/fixtures_frontend"
#define PY "/usr/bin/python3"
#define SCRIPT VT_SOURCE_DIR "/testsuite/data/frontend/make_fixtures.py"

static int setup_fixtures(void **state) {
  (void)state;
  int rc = system("rm -rf '" FX "' && " PY " '" SCRIPT "' '" FX "'");
  if (rc != 0) {
    fprintf(stderr, "fixture generation failed (needs /usr/bin/python3 with python3-onnx)\n");
    return -1;
  }
  return 0;
}

static vt_graph *load_ok(const char *path) {
  vt_error e = {0};
  vt_graph *g = NULL;
  int rc = vt_onnx_load(path, &g, &e);
  if (rc) fprintf(stderr, "load %s: %s\n", path, e.msg);
  assert_int_equal(rc, VT_OK);
  assert_non_null(g);
  return g;
}

static int32_t find_node(const vt_graph *g, const char *name) {
  for (int32_t i = 0; i < g->n_nodes; i++)
    if (!strcmp(g->nodes[i].name, name)) return i;
  return -1;
}

static const vt_value *val(const vt_graph *g, const char *name) {
  int32_t v = vt_graph_find_value(g, name);
  assert_true(v >= 0);
  return &g->values[v];
}

static const char *dimstr(const vt_graph *g, const vt_value *v, int i) {
  static char buf[4][64];
  static int k;
  k = (k + 1) % 4;
  return vt_dim_str(g, v->dims[i], buf[k], sizeof buf[k]);
}

/* ---------- loading ---------------------------------------------------------------------------- */

static void test_load_model(void **state) {
  (void)state;
  vt_graph *g = load_ok(FX "/roundtrip.onnx");
  assert_int_equal(vt_graph_opset(g, ""), 17);
  assert_string_equal(g->producer_name, "make_fixtures");
  /* W is both an initializer and a graph input: a constant, not an input */
  assert_int_equal(g->n_inputs, 1);
  const vt_value *x = &g->values[g->inputs[0]];
  assert_string_equal(x->name, "x");
  assert_int_equal(x->dtype, VT_F32);
  assert_int_equal(x->rank, 3);
  assert_false(vt_dim_is_const(x->dims[0]));
  assert_string_equal(dimstr(g, x, 0), "N");
  assert_int_equal(x->dims[1], 3);
  assert_int_equal(x->dims[2], 4);

  const vt_value *W = val(g, "W");
  assert_true(W->flags & VT_VAL_CONST);
  assert_false(W->flags & VT_VAL_INPUT);
  assert_int_equal(W->cdata->rank, 2);
  for (int i = 0; i < 20; i++) assert_true(((float *)W->cdata->data)[i] == (float)i / 8);
  const float B[5] = {0.5f, -1, 2, -3, 4};
  assert_memory_equal(val(g, "B")->cdata->data, B, sizeof B);
  /* Constant nodes became constants */
  const vt_value *shp = val(g, "shp");
  assert_true(shp->flags & VT_VAL_CONST);
  assert_int_equal(shp->producer, -1);
  assert_int_equal(shp->cdata->dtype, VT_I64);
  assert_int_equal(shp->cdata->rank, 1);
  assert_int_equal(shp->cdata->dims[0], 2);
  assert_int_equal(((int64_t *)shp->cdata->data)[0], -1);
  assert_int_equal(((int64_t *)shp->cdata->data)[1], 5);
  const vt_value *two = val(g, "two");
  assert_int_equal(two->cdata->rank, 0);
  assert_true(*(float *)two->cdata->data == 2.0f);
  const vt_value *tens = val(g, "tens");
  assert_int_equal(tens->cdata->dtype, VT_I32);
  const int32_t tv[4] = {1, 2, 3, 4};
  assert_memory_equal(tens->cdata->data, tv, sizeof tv);
  assert_int_equal(find_node(g, "c_two"), -1);

  /* 14 nodes minus 3 Constants; toposorted (relu was listed before matmul) */
  assert_int_equal(g->n_nodes, 11);
  int32_t mm = find_node(g, "matmul"), relu = find_node(g, "relu");
  assert_true(mm >= 0 && relu >= 0 && mm < relu);
  /* the unnamed node gets "<op>_<index>" */
  int32_t add = find_node(g, "Add_2");
  assert_true(add >= 0);
  assert_string_equal(vt_ops[g->nodes[add].op].name, "Add");
  /* omitted optional input in the middle */
  const vt_node *clip = &g->nodes[find_node(g, "clip")];
  assert_int_equal(clip->n_in, 3);
  assert_int_equal(clip->in[1], -1);
  assert_string_equal(g->values[clip->in[2]].name, "maxc");
  /* attributes */
  const vt_node *tr = &g->nodes[find_node(g, "transpose")];
  const int64_t *perm;
  assert_int_equal(vt_attr_ints(tr, "perm", &perm), 2);
  assert_int_equal(perm[0], 1);
  assert_int_equal(perm[1], 0);
  assert_true(vt_attr_float(&g->nodes[find_node(g, "leaky")], "alpha", 0) == 0.125f);
  assert_string_equal(vt_attr_str(&g->nodes[find_node(g, "pad")], "mode", ""), "constant");
  const vt_attr *cv = vt_node_attr(&g->nodes[find_node(g, "cos")], "value");
  assert_non_null(cv);
  assert_int_equal(cv->type, VT_ATTR_TENSOR);
  assert_int_equal(cv->t->dtype, VT_F32);
  assert_int_equal(cv->t->rank, 1);
  assert_true(*(float *)cv->t->data == 3.5f);
  /* value_info and declared output types */
  const vt_value *mmv = val(g, "mm");
  assert_int_equal(mmv->rank, 3);
  assert_string_equal(dimstr(g, mmv, 0), "N");
  assert_int_equal(mmv->dims[2], 5);
  assert_int_equal(g->n_outputs, 4);
  const vt_value *pad = &g->values[g->outputs[0]];
  assert_string_equal(pad->name, "padded");
  assert_int_equal(pad->rank, 2);
  assert_int_equal(pad->dims[0], 5);
  assert_string_equal(dimstr(g, pad, 1), "M");
  const vt_value *cl = &g->values[g->outputs[2]];
  assert_false(vt_dim_is_const(cl->dims[2]));   /* neither dim_value nor dim_param: fresh */
  assert_true(cl->dims[2] != cl->dims[0]);

  vt_error e = {0};
  int rc = vt_graph_infer(g, &e);
  if (rc) fprintf(stderr, "%s\n", e.msg);
  assert_int_equal(rc, VT_OK);
  rc = vt_graph_verify(g, &e);
  if (rc) fprintf(stderr, "%s\n", e.msg);
  assert_int_equal(rc, VT_OK);
  vt_graph_free(g);
}

static void test_load_buffer(void **state) {
  (void)state;
  FILE *f = fopen(FX "/roundtrip.onnx", "rb");
  assert_non_null(f);
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  assert_true(n > 100 && n < sizeof buf);
  vt_graph *g = NULL;
  vt_error e = {0};
  assert_int_equal(vt_onnx_load_buffer(buf, n, "mem.onnx", NULL, &g, &e), VT_OK);
  assert_int_equal(g->n_nodes, 11);
  assert_string_equal(g->path, "mem.onnx");
  vt_graph_free(g);
}

static void test_dtypes(void **state) {
  (void)state;
  vt_graph *g = load_ok(FX "/dtypes.onnx");
#define CHECK(NAME, DT, CTYPE, ...)                                           \
  do {                                                                        \
    const CTYPE want[] = {__VA_ARGS__};                                       \
    const vt_tensor *t = val(g, NAME)->cdata;                                 \
    assert_non_null(t);                                                       \
    assert_int_equal(t->dtype, DT);                                           \
    assert_int_equal(vt_tensor_numel(t), sizeof want / sizeof want[0]);       \
    assert_memory_equal(t->data, want, sizeof want);                          \
  } while (0)
  CHECK("f16", VT_F16, uint16_t, 0x3C00, 0xC000, 0x3800);
  CHECK("bf16", VT_BF16, uint16_t, 0x3F80, 0xC040);
  CHECK("bool", VT_BOOL, uint8_t, 1, 0, 1, 1);
  CHECK("u8", VT_U8, uint8_t, 0, 255, 7);
  CHECK("i8", VT_I8, int8_t, -128, 127, -1);
  CHECK("i16", VT_I16, int16_t, -32768, 5);
  CHECK("u16", VT_U16, uint16_t, 65535, 1);
  CHECK("i32", VT_I32, int32_t, -5, 7);
  CHECK("i64", VT_I64, int64_t, -(INT64_C(1) << 40), 3);
  CHECK("u32", VT_U32, uint32_t, 4294967295u, 1);
  CHECK("u64", VT_U64, uint64_t, UINT64_MAX, 0);
  CHECK("f64", VT_F64, double, 1.5, -2.25);
  CHECK("f32", VT_F32, float, 0.25f);
  CHECK("scalar", VT_F32, float, 3.0f);
  CHECK("raw_i64", VT_I64, int64_t, 1, -2, 3, -4);
  CHECK("raw_f16", VT_F16, uint16_t, 0x3C00, 0xB800);
#undef CHECK
  assert_int_equal(val(g, "scalar")->cdata->rank, 0);
  assert_int_equal(val(g, "f32")->cdata->rank, 2);
  const vt_tensor *em = val(g, "empty")->cdata;
  assert_int_equal(em->rank, 2);
  assert_int_equal(em->dims[0], 0);
  assert_int_equal(em->dims[1], 3);
  assert_int_equal(vt_tensor_numel(em), 0);
  vt_graph_free(g);
}

static void test_external_data(void **state) {
  (void)state;
  vt_graph *g = load_ok(FX "/ext/model.onnx");
  const float w1[4] = {1, 2, 3, 4}, w2[2] = {10, 20};
  const vt_tensor *t1 = val(g, "w1")->cdata, *t2 = val(g, "w2")->cdata;
  assert_memory_equal(t1->data, w1, sizeof w1);
  assert_memory_equal(t2->data, w2, sizeof w2);
  /* one mapping of weights.bin shared by both; w1 lies in it, w2 (offset 19) was copied */
  assert_int_equal(g->n_maps, 1);
  const char *base = g->maps[0].addr;
  assert_ptr_equal(t1->data, base);
  assert_true((const char *)t2->data < base || (const char *)t2->data >= base + g->maps[0].len);
  assert_int_equal((uintptr_t)t2->data % 4, 0);
  vt_graph_free(g);
  g = load_ok(FX "/ext/subdir.onnx");
  const float w[4] = {5, 6, 7, 8};
  assert_memory_equal(val(g, "w1")->cdata->data, w, sizeof w);
  vt_graph_free(g);
}

/* ---------- writing ---------------------------------------------------------------------------- */

static bool same_dims(const vt_graph *ga, const vt_value *a, const vt_graph *gb, const vt_value *b) {
  if (a->rank != b->rank) return false;
  for (int32_t i = 0; i < a->rank; i++) {
    char x[64], y[64];
    vt_dim_str(ga, a->dims[i], x, sizeof x);
    vt_dim_str(gb, b->dims[i], y, sizeof y);
    if (strcmp(x, y)) return false;
  }
  return true;
}

static void same_tensor(const vt_tensor *a, const vt_tensor *b) {
  assert_int_equal(a->dtype, b->dtype);
  assert_int_equal(a->rank, b->rank);
  for (int32_t i = 0; i < a->rank; i++) assert_int_equal(a->dims[i], b->dims[i]);
  assert_int_equal(vt_tensor_nbytes(a), vt_tensor_nbytes(b));
  if (vt_tensor_nbytes(a)) assert_memory_equal(a->data, b->data, vt_tensor_nbytes(a));
}

/* Same nodes (op, name, inputs/outputs by name, attributes), constants, inputs/outputs, dims. */
static void same_graph(const vt_graph *a, const vt_graph *b) {
  assert_int_equal(a->n_nodes, b->n_nodes);
  assert_int_equal(a->n_inputs, b->n_inputs);
  assert_int_equal(a->n_outputs, b->n_outputs);
  for (int32_t i = 0; i < a->n_nodes; i++) {
    const vt_node *x = &a->nodes[i], *y = &b->nodes[i];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->op, y->op);
    assert_int_equal(x->n_in, y->n_in);
    assert_int_equal(x->n_out, y->n_out);
    for (int32_t k = 0; k < x->n_in; k++) {
      if (x->in[k] < 0) { assert_true(y->in[k] < 0); continue; }
      assert_string_equal(a->values[x->in[k]].name, b->values[y->in[k]].name);
    }
    for (int32_t k = 0; k < x->n_out; k++)
      assert_string_equal(a->values[x->out[k]].name, b->values[y->out[k]].name);
    assert_int_equal(x->n_attr, y->n_attr);
    for (int32_t k = 0; k < x->n_attr; k++) {
      const vt_attr *p = &x->attr[k], *q = vt_node_attr(y, p->name);
      assert_non_null(q);
      assert_int_equal(p->type, q->type);
      switch (p->type) {
      case VT_ATTR_INT: assert_int_equal(p->i, q->i); break;
      case VT_ATTR_FLOAT: assert_true(p->f == q->f); break;
      case VT_ATTR_STRING: assert_string_equal(p->s, q->s); break;
      case VT_ATTR_INTS:
        assert_int_equal(p->n, q->n);
        if (p->n) assert_memory_equal(p->ints, q->ints, (size_t)p->n * 8);
        break;
      case VT_ATTR_FLOATS:
        assert_int_equal(p->n, q->n);
        if (p->n) assert_memory_equal(p->floats, q->floats, (size_t)p->n * 4);
        break;
      case VT_ATTR_TENSOR: same_tensor(p->t, q->t); break;
      default: fail_msg("unexpected attribute type %d", p->type);
      }
    }
  }
  int nconst = 0;
  for (int32_t v = 0; v < a->n_values; v++) {
    const vt_value *x = &a->values[v];
    if (!(x->flags & VT_VAL_CONST)) continue;
    nconst++;
    const vt_value *y = val(b, x->name);
    assert_true(y->flags & VT_VAL_CONST);
    same_tensor(x->cdata, y->cdata);
  }
  for (int32_t v = 0; v < b->n_values; v++) nconst -= (b->values[v].flags & VT_VAL_CONST) != 0;
  assert_int_equal(nconst, 0);
  for (int32_t i = 0; i < a->n_inputs; i++) {
    const vt_value *x = &a->values[a->inputs[i]], *y = &b->values[b->inputs[i]];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->dtype, y->dtype);
    assert_true(same_dims(a, x, b, y));
  }
  for (int32_t i = 0; i < a->n_outputs; i++) {
    const vt_value *x = &a->values[a->outputs[i]], *y = &b->values[b->outputs[i]];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->dtype, y->dtype);
    assert_true(same_dims(a, x, b, y));
  }
  for (int32_t v = 0; v < a->n_values; v++) {
    const vt_value *x = &a->values[v];
    if (x->dtype == VT_UNDEFINED || x->producer < 0) continue;
    const vt_value *y = val(b, x->name);
    assert_int_equal(x->dtype, y->dtype);
    assert_true(same_dims(a, x, b, y));
  }
  for (int32_t i = 0; i < a->n_opsets; i++)
    assert_int_equal(vt_graph_opset(b, a->opsets[i].domain), a->opsets[i].version);
}

static void check_with_onnx(const char *path) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, PY " -c \"import onnx; onnx.checker.check_model('%s')\"", path);
  assert_int_equal(system(cmd), 0);
}

static void test_roundtrip(void **state) {
  (void)state;
  vt_graph *a = load_ok(FX "/roundtrip.onnx");
  vt_error e = {0};
  int rc = vt_onnx_save(a, FX "/rt1.onnx", &e);
  if (rc) fprintf(stderr, "%s\n", e.msg);
  assert_int_equal(rc, VT_OK);
  check_with_onnx(FX "/rt1.onnx");
  /* semantic comparison of the original and the written model, done by onnx/numpy */
  assert_int_equal(system(PY " '" SCRIPT "' --compare '" FX "/roundtrip.onnx' '" FX "/rt1.onnx'"), 0);
  vt_graph *b = load_ok(FX "/rt1.onnx");
  same_graph(a, b);
  /* after shape inference the written types are the inferred ones, and still round trip */
  assert_int_equal(vt_graph_infer(b, &e), VT_OK);
  assert_int_equal(vt_onnx_save(b, FX "/rt2.onnx", &e), VT_OK);
  check_with_onnx(FX "/rt2.onnx");
  vt_graph *c = load_ok(FX "/rt2.onnx");
  same_graph(b, c);
  vt_graph_free(a);
  vt_graph_free(b);
  vt_graph_free(c);

  a = load_ok(FX "/dtypes.onnx");
  assert_int_equal(vt_onnx_save(a, FX "/rt_dtypes.onnx", &e), VT_OK);
  check_with_onnx(FX "/rt_dtypes.onnx");
  assert_int_equal(system(PY " '" SCRIPT "' --compare '" FX "/dtypes.onnx' '" FX "/rt_dtypes.onnx'"), 0);
  b = load_ok(FX "/rt_dtypes.onnx");
  same_graph(a, b);
  vt_graph_free(a);
  vt_graph_free(b);
}

/* A graph built in memory: no opsets, a 1 KiB weight, written with external data. */
static void test_save_external(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("");
  assert_non_null(g);
  vt_dim d[1] = {256};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 1, d);
  assert_int_equal(vt_graph_add_input(g, x), 0);
  float *w = malloc(256 * sizeof(float));
  assert_non_null(w);
  for (int i = 0; i < 256; i++) w[i] = (float)i * 0.5f - 3;
  assert_int_equal(vt_graph_own(g, w), 0);
  vt_tensor t = {.dtype = VT_F32, .rank = 1, .dims = {256}, .data = w};
  int32_t wv = vt_graph_add_const(g, "w", &t);
  int32_t y = vt_graph_add_value(g, "y", VT_F32, 1, d);
  int32_t in[2] = {x, wv};
  int op = vt_op_lookup("Add", "");
  assert_true(op >= 0);
  assert_true(vt_graph_add_node(g, "add", op, 2, in, 1, &y) >= 0);
  assert_int_equal(vt_graph_add_output(g, y), 0);
  vt_error e = {0};
  int rc = fe_onnx_save_ext(g, FX "/extsave.onnx", 0, &e);
  if (rc) fprintf(stderr, "%s\n", e.msg);
  assert_int_equal(rc, VT_OK);
  struct stat st;
  assert_int_equal(stat(FX "/extsave.onnx.data", &st), 0);
  assert_int_equal(st.st_size, 1024);
  check_with_onnx(FX "/extsave.onnx");
  assert_int_equal(system(PY " -c \"import onnx, numpy as np; from onnx import numpy_helper as h; "
                          "m = onnx.load('" FX "/extsave.onnx'); "
                          "assert m.opset_import[0].domain == '' and m.opset_import[0].version == 17; "
                          "w = h.to_array(m.graph.initializer[0]); "
                          "assert (w == np.arange(256, dtype=np.float32) * 0.5 - 3).all()\""),
                   0);
  vt_graph *b = load_ok(FX "/extsave.onnx");
  assert_int_equal(b->n_maps, 1);
  same_graph(g, b);
  vt_graph_free(b);
  vt_graph_free(g);
}

/* ---------- .npy -------------------------------------------------------------------------------- */

static void npy_ok(const char *name, vt_tensor *t) {
  char path[512];
  snprintf(path, sizeof path, FX "/npy/%s", name);
  vt_error e = {0};
  int rc = vt_npy_read(path, t, &e);
  if (rc) fprintf(stderr, "%s\n", e.msg);
  assert_int_equal(rc, VT_OK);
}

static void test_npy_read(void **state) {
  (void)state;
  vt_tensor t;
  npy_ok("good_f32.npy", &t);
  assert_int_equal(t.dtype, VT_F32);
  assert_int_equal(t.rank, 2);
  assert_int_equal(t.dims[0], 2);
  assert_int_equal(t.dims[1], 3);
  const float f[6] = {0, 1, 2, 3, 4, 5};
  assert_memory_equal(t.data, f, sizeof f);
  vt_tensor_free(&t);
  npy_ok("scalar_f64.npy", &t);
  assert_int_equal(t.dtype, VT_F64);
  assert_int_equal(t.rank, 0);
  assert_true(*(double *)t.data == 2.5);
  vt_tensor_free(&t);
  npy_ok("vec_i64.npy", &t);
  assert_int_equal(t.rank, 1);
  assert_int_equal(t.dims[0], 3);
  const int64_t iv[3] = {1, -2, 3};
  assert_memory_equal(t.data, iv, sizeof iv);
  vt_tensor_free(&t);
  npy_ok("bool.npy", &t);
  assert_int_equal(t.dtype, VT_BOOL);
  assert_int_equal(t.rank, 2);
  assert_int_equal(((uint8_t *)t.data)[0], 1);
  assert_int_equal(((uint8_t *)t.data)[1], 0);
  vt_tensor_free(&t);
  npy_ok("u8.npy", &t);
  assert_int_equal(t.dtype, VT_U8);
  assert_int_equal(((uint8_t *)t.data)[1], 200);
  vt_tensor_free(&t);
  npy_ok("f16.npy", &t);
  assert_int_equal(t.dtype, VT_F16);
  assert_int_equal(((uint16_t *)t.data)[1], 0xC000);
  vt_tensor_free(&t);
  npy_ok("i16.npy", &t);
  assert_int_equal(t.dtype, VT_I16);
  assert_int_equal(((int16_t *)t.data)[0], -7);
  vt_tensor_free(&t);
  npy_ok("u64.npy", &t);
  assert_int_equal(t.dtype, VT_U64);
  assert_true(((uint64_t *)t.data)[0] == (UINT64_C(1) << 63));
  vt_tensor_free(&t);
  npy_ok("empty.npy", &t);
  assert_int_equal(t.rank, 2);
  assert_int_equal(t.dims[0], 0);
  assert_int_equal(t.dims[1], 4);
  vt_tensor_free(&t);
  npy_ok("v2.npy", &t);
  assert_int_equal(t.dtype, VT_I32);
  assert_int_equal(((int32_t *)t.data)[1], 8);
  vt_tensor_free(&t);
  npy_ok("v3.npy", &t);
  assert_int_equal(t.dtype, VT_I8);
  assert_int_equal(((int8_t *)t.data)[0], 9);
  vt_tensor_free(&t);
}

static void test_npy_write(void **state) {
  (void)state;
  vt_error e = {0};
  vt_tensor t = {0};
  int64_t dims[3] = {2, 1, 3};
  assert_int_equal(vt_tensor_alloc(&t, VT_F32, 3, dims, &e), VT_OK);
  for (int i = 0; i < 6; i++) ((float *)t.data)[i] = (float)i - 2.5f;
  assert_int_equal(vt_npy_write(FX "/w_f32.npy", &t, &e), VT_OK);
  vt_tensor r;
  assert_int_equal(vt_npy_read(FX "/w_f32.npy", &r, &e), VT_OK);
  same_tensor(&t, &r);
  vt_tensor_free(&r);
  vt_tensor_free(&t);
  int64_t one = 3;
  assert_int_equal(vt_tensor_alloc(&t, VT_I64, 1, &one, &e), VT_OK);
  ((int64_t *)t.data)[2] = -9;
  assert_int_equal(vt_npy_write(FX "/w_i64.npy", &t, &e), VT_OK);
  vt_tensor_free(&t);
  assert_int_equal(vt_tensor_alloc(&t, VT_BOOL, 0, NULL, &e), VT_OK);
  ((uint8_t *)t.data)[0] = 1;
  assert_int_equal(vt_npy_write(FX "/w_bool.npy", &t, &e), VT_OK);
  vt_tensor_free(&t);
  assert_int_equal(vt_tensor_alloc(&t, VT_U16, 1, &one, &e), VT_OK);
  ((uint16_t *)t.data)[0] = 65535;
  assert_int_equal(vt_npy_write(FX "/w_u16.npy", &t, &e), VT_OK);
  vt_tensor_free(&t);
  /* numpy reads them back with the right dtype, shape and values */
  assert_int_equal(system(PY " -c \"import numpy as np; "
                          "a = np.load('" FX "/w_f32.npy'); "
                          "assert a.dtype == np.float32 and a.shape == (2, 1, 3), a; "
                          "assert (a.ravel() == np.arange(6) - 2.5).all(); "
                          "b = np.load('" FX "/w_i64.npy'); "
                          "assert b.dtype == np.int64 and b.shape == (3,) and list(b) == [0, 0, -9]; "
                          "c = np.load('" FX "/w_bool.npy'); "
                          "assert c.dtype == np.bool_ and c.shape == () and c; "
                          "d = np.load('" FX "/w_u16.npy'); "
                          "assert d.dtype == np.uint16 and d[0] == 65535\""),
                   0);
}

/* ---------- TensorProto .pb ---------------------------------------------------------------------- */

static void test_tensorproto(void **state) {
  (void)state;
  vt_error e = {0};
  vt_tensor t;
  char *name;
  assert_int_equal(vt_tensorproto_read(FX "/pb/raw_f32.pb", &t, &name, &e), VT_OK);
  assert_string_equal(name, "a");
  free(name);
  const float f[4] = {1.5f, -2, 0, 4};
  assert_int_equal(t.rank, 2);
  assert_memory_equal(t.data, f, sizeof f);
  vt_tensor_free(&t);
  assert_int_equal(vt_tensorproto_read(FX "/pb/typed_i64.pb", &t, NULL, &e), VT_OK);
  const int64_t iv[3] = {5, -6, 7};
  assert_int_equal(t.dtype, VT_I64);
  assert_memory_equal(t.data, iv, sizeof iv);
  vt_tensor_free(&t);
  assert_int_equal(vt_tensorproto_read(FX "/pb/typed_f16.pb", &t, NULL, &e), VT_OK);
  assert_int_equal(t.dtype, VT_F16);
  assert_int_equal(((uint16_t *)t.data)[1], 0xBC00);
  vt_tensor_free(&t);
  /* ONNX conformance data (values read with numpy_helper when writing this test) */
  const char *conf = "/usr/include/onnx/backend/test/data/node/test_add/test_data_set_0/input_0.pb";
  assert_int_equal(vt_tensorproto_read(conf, &t, &name, &e), VT_OK);
  assert_string_equal(name, "x");
  free(name);
  assert_int_equal(t.dtype, VT_F32);
  assert_int_equal(t.rank, 3);
  assert_int_equal(t.dims[0], 3);
  assert_int_equal(t.dims[1], 4);
  assert_int_equal(t.dims[2], 5);
  assert_true(((float *)t.data)[0] == 1.7640524f);
  assert_true(((float *)t.data)[59] == -0.36274117f);
  vt_tensor_free(&t);
}

/* Every conformance model of the node tests either loads or fails with a clean message; every
 * one that loads round-trips through the writer (same graph, and onnx.checker accepts it). */
static void test_conformance_models_load(void **state) {
  (void)state;
  FILE *p = popen("ls -d /usr/include/onnx/backend/test/data/node/*/model.onnx", "r");
  assert_non_null(p);
  assert_int_equal(system("mkdir -p '" FX "/conf'"), 0);
  char line[1024];
  int ok = 0, bad = 0;
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    vt_graph *g = NULL;
    vt_error e = {0};
    int rc = vt_onnx_load(line, &g, &e);
    if (rc == VT_OK) {
      assert_non_null(g);
      ok++;
      char out[1200];
      const char *end = strrchr(line, '/'), *start = end;
      while (start > line && start[-1] != '/') start--;
      snprintf(out, sizeof out, FX "/conf/%.*s.onnx", (int)(end - start), start);
      rc = vt_onnx_save(g, out, &e);
      if (rc) fprintf(stderr, "%s\n", e.msg);
      assert_int_equal(rc, VT_OK);
      vt_graph *b = load_ok(out);
      same_graph(g, b);
      vt_graph_free(b);
    } else {
      assert_int_equal(rc, VT_ERR_MODEL);
      assert_null(g);
      assert_non_null(strstr(e.msg, line));
      bad++;
    }
    vt_graph_free(g);
  }
  pclose(p);
  fprintf(stderr, "conformance models: %d load and round-trip, %d rejected\n", ok, bad);
  assert_true(ok > 500);
  assert_int_equal(system(PY " -c \"import glob, onnx, sys; fs = sorted(glob.glob('" FX "/conf/*.onnx')); "
                          "[onnx.checker.check_model(f) for f in fs]; print(len(fs), 'checked')\""),
                   0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_model),
      cmocka_unit_test(test_load_buffer),
      cmocka_unit_test(test_dtypes),
      cmocka_unit_test(test_external_data),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_save_external),
      cmocka_unit_test(test_npy_read),
      cmocka_unit_test(test_npy_write),
      cmocka_unit_test(test_tensorproto),
      cmocka_unit_test(test_conformance_models_load),
  };
  return cmocka_run_group_tests(tests, setup_fixtures, NULL);
}

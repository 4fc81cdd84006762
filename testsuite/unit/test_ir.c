/* test_ir.c — the IR core: symbolic dims, graph building, topological sort and cycles, the
 * verifier, shape inference with symbolic dims and folding of shape arithmetic, the printer,
 * and the interpreter driver on a small graph. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "runtime.h"

static int op(const char *name) {
  int o = vt_op_lookup(name, "");
  assert_true(o >= 0);
  return o;
}

static void test_dims_fold_and_hashcons(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("m.onnx");
  vt_dim n = vt_dim_named(g, "N"), t = vt_dim_named(g, "T");
  assert_false(vt_dim_is_const(n));
  assert_int_equal(vt_dim_named(g, "N"), n);
  assert_int_equal(vt_dim_mul(g, 3, 4), 12);
  assert_int_equal(vt_dim_add(g, -1, 4), 3);      /* known contents may be negative */
  assert_int_equal(vt_dim_sub(g, 2, 5), -3);
  assert_int_equal(vt_dim_div(g, -7, 2), -4);     /* floor division */
  vt_dim nt = vt_dim_mul(g, n, t), tn = vt_dim_mul(g, t, n);
  assert_int_equal(nt, tn);                        /* commutative expressions are one symbol */
  assert_int_equal(vt_dim_div(g, nt, t), n);
  vt_dim n196 = vt_dim_mul(g, n, 196);
  assert_int_equal(vt_dim_div(g, n196, 196), n);
  assert_int_equal(vt_dim_div(g, vt_dim_mul(g, n196, 6), 6), n196);
  assert_int_equal(vt_dim_mul(g, n, 1), n);
  assert_int_equal(vt_dim_sub(g, vt_dim_add(g, n, 5), 5), n);
  assert_int_equal(vt_dim_sub(g, vt_dim_add(g, t, 3), 1), vt_dim_add(g, t, 2));   /* (T+3)-1 = T+2 */
  assert_int_equal(vt_dim_add(g, vt_dim_add(g, t, 3), 4), vt_dim_add(g, 7, t));
  char buf[64];
  assert_string_equal(vt_dim_str(g, n196, buf, sizeof buf), "(N*196)");
  int64_t bind[64];
  for (int i = 0; i < 64; i++) bind[i] = -1;
  bind[vt_dim_sym(n)] = 2;
  assert_int_equal(vt_dim_eval(g, n196, bind), 392);
  assert_int_equal(vt_dim_eval(g, nt, bind), -1);  /* T unbound */
  /* upper bounds: none for a plain symbol; propagated through expressions when set */
  assert_int_equal(vt_dim_upper(g, 7), 7);
  assert_int_equal(vt_dim_upper(g, n), -1);
  vt_dim m = vt_dim_named(g, "M");
  g->syms[vt_dim_sym(m)].upper = 64;
  assert_int_equal(vt_dim_upper(g, m), 64);
  assert_int_equal(vt_dim_upper(g, vt_dim_mul(g, m, 3)), 192);
  assert_int_equal(vt_dim_upper(g, vt_dim_add(g, m, 1)), 65);
  assert_int_equal(vt_dim_upper(g, vt_dim_div(g, m, 8)), 8);
  assert_int_equal(vt_dim_upper(g, vt_dim_mul(g, m, n)), -1);
  assert_int_equal(vt_dim_upper(g, vt_dim_min(g, m, n)), 64);
  vt_dim f1 = vt_dim_fresh(g), f2 = vt_dim_fresh(g);
  assert_true(f1 != f2);
  vt_graph_free(g);
}

/* x[N,4] -> Relu -> y ; y + x -> z */
static vt_graph *small_graph(void) {
  vt_graph *g = vt_graph_new("small.onnx");
  vt_dim d[2] = {vt_dim_named(g, "N"), 4};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 2, d);
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  int32_t z = vt_graph_add_value(g, "z", VT_UNDEFINED, -1, NULL);
  vt_graph_add_input(g, x);
  int32_t in2[2] = {y, x};
  /* added out of order on purpose: Add before the Relu that feeds it */
  vt_graph_add_node(g, "add", op("Add"), 2, in2, 1, &z);
  vt_graph_add_node(g, "relu", op("Relu"), 1, &x, 1, &y);
  vt_graph_add_output(g, z);
  return g;
}

static void test_toposort_infer_print(void **state) {
  (void)state;
  vt_graph *g = small_graph();
  vt_error e = {0};
  assert_int_equal(vt_graph_toposort(g, &e), VT_OK);
  assert_string_equal(g->nodes[0].name, "relu");
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), VT_OK);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  vt_graph_print(g, f);
  fclose(f);
  const char *want =
      "graph small.onnx {\n"
      "  input %x: f32[N,4]\n"
      "  constants: 0 (0 bytes)\n"
      "  %y: f32[N,4] = Relu(%x)  # relu\n"
      "  %z: f32[N,4] = Add(%y, %x)  # add\n"
      "  output %z: f32[N,4]\n"
      "}\n";
  assert_string_equal(buf, want);
  free(buf);
  vt_graph_free(g);
}

static void test_cycle_is_reported(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("cyc.onnx");
  vt_dim d[1] = {3};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 1, d);
  int32_t a = vt_graph_add_value(g, "a", VT_UNDEFINED, -1, NULL);
  int32_t b = vt_graph_add_value(g, "b", VT_UNDEFINED, -1, NULL);
  vt_graph_add_input(g, x);
  int32_t ia[2] = {x, b}, ib[1] = {a};
  vt_graph_add_node(g, "n1", op("Add"), 2, ia, 1, &a);
  vt_graph_add_node(g, "n2", op("Relu"), 1, ib, 1, &b);
  vt_graph_add_output(g, b);
  vt_error e = {0};
  assert_int_equal(vt_graph_toposort(g, &e), VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, "cyc.onnx: node 'n1' (Add): the graph has a cycle"));
  vt_graph_free(g);
}

static void test_verify_catches_bad_attribute_and_arity(void **state) {
  (void)state;
  vt_graph *g = small_graph();
  vt_error e = {0};
  assert_int_equal(vt_graph_toposort(g, &e), VT_OK);
  vt_attr *a = vt_node_add_attr(g, 0, "no_such_attr", VT_ATTR_INT);
  a->i = 3;
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, "node 'relu' (Relu): attribute 'no_such_attr' is not supported"));
  vt_graph_free(g);

  g = small_graph();
  vt_error_clear(&e);
  g->nodes[0].n_in = 1;   /* Add with one input */
  assert_int_equal(vt_graph_toposort(g, &e), VT_OK);
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, "(Add): has 1 inputs"));
  vt_graph_free(g);
}

static void test_pin_dims(void **state) {
  (void)state;
  vt_graph *g = small_graph();
  vt_error e = {0};
  const char *names[1] = {"N"};
  int64_t vals[1] = {5};
  assert_int_equal(vt_graph_toposort(g, &e), VT_OK);
  assert_int_equal(vt_graph_prepare(g, names, vals, 1, &e), VT_OK);
  assert_int_equal(g->values[g->outputs[0]].dims[0], 5);
  vt_graph_free(g);
  g = small_graph();
  const char *bad[1] = {"Q"};
  assert_int_equal(vt_graph_prepare(g, bad, vals, 1, &e), VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, "no dim named 'Q'"));
  vt_graph_free(g);
}

static void test_interp_runs_and_checks_inputs(void **state) {
  (void)state;
  vt_graph *g = small_graph();
  vt_error e = {0};
  assert_int_equal(vt_graph_toposort(g, &e), VT_OK);
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), VT_OK);
  vt_interp *it = vt_interp_new(g, 2, &e);
  assert_non_null(it);
  vt_tensor x = {0}, out[1] = {{0}};
  int64_t dims[2] = {3, 4};
  assert_int_equal(vt_tensor_alloc(&x, VT_F32, 2, dims, &e), VT_OK);
  for (int i = 0; i < 12; i++) ((float *)x.data)[i] = (float)(i - 6);
  assert_int_equal(vt_interp_run(it, &x, out, &e), VT_OK);
  assert_int_equal(out[0].rank, 2);
  assert_int_equal(out[0].dims[0], 3);
  for (int i = 0; i < 12; i++) {
    float v = (float)(i - 6);
    assert_true(((float *)out[0].data)[i] == (v > 0 ? v : 0) + v);
  }
  vt_tensor_free(&out[0]);
  /* wrong dtype and wrong dim are errors naming the input */
  x.dtype = VT_I32;
  assert_int_equal(vt_interp_run(it, &x, out, &e), VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, "input 'x': got dtype i32"));
  vt_error_clear(&e);
  x.dtype = VT_F32;
  x.dims[1] = 5;
  assert_int_equal(vt_interp_run(it, &x, out, &e), VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, "input 'x': dim 1 is 5"));
  x.dims[1] = 4;
  vt_tensor_free(&x);
  vt_interp_free(it);
  vt_graph_free(g);
}

/* Shape(x[N,197,384]) -> Gather(0) -> Unsqueeze -> Concat([.., 197, 6, 64]) -> Reshape:
 * the torch export idiom; the output must come out as [N,197,6,64] symbolically. */
static vt_graph *chain_graph(void) {
  vt_graph *g = vt_graph_new("chain.onnx");
  assert_int_equal(vt_graph_set_opset(g, "", 17), 0);
  vt_dim d[3] = {vt_dim_named(g, "N"), 197, 384};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 3, d);
  vt_graph_add_input(g, x);
  int32_t shp = vt_graph_add_value(g, "shp", VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, "shape", op("Shape"), 1, &x, 1, &shp);
  static int64_t zero = 0, axes0 = 0, rest[3] = {197, 6, 64};
  vt_tensor tz = {.dtype = VT_I64, .rank = 0, .data = &zero};
  vt_tensor ta = {.dtype = VT_I64, .rank = 1, .dims = {1}, .data = &axes0};
  vt_tensor tr = {.dtype = VT_I64, .rank = 1, .dims = {3}, .data = rest};
  int32_t cz = vt_graph_add_const(g, "zero", &tz), ca = vt_graph_add_const(g, "axes", &ta),
          cr = vt_graph_add_const(g, "rest", &tr);
  int32_t n0 = vt_graph_add_value(g, "n0", VT_UNDEFINED, -1, NULL);
  int32_t gi[2] = {shp, cz};
  vt_graph_add_node(g, "gather", op("Gather"), 2, gi, 1, &n0);
  int32_t n1 = vt_graph_add_value(g, "n1", VT_UNDEFINED, -1, NULL);
  int32_t ui[2] = {n0, ca};
  vt_graph_add_node(g, "unsq", op("Unsqueeze"), 2, ui, 1, &n1);
  int32_t cat = vt_graph_add_value(g, "cat", VT_UNDEFINED, -1, NULL);
  int32_t ci[2] = {n1, cr};
  int32_t cn = vt_graph_add_node(g, "concat", op("Concat"), 2, ci, 1, &cat);
  vt_attr *ax = vt_node_add_attr(g, cn, "axis", VT_ATTR_INT);
  ax->i = 0;
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  int32_t ri[2] = {x, cat};
  vt_graph_add_node(g, "reshape", op("Reshape"), 2, ri, 1, &y);
  vt_graph_add_output(g, y);
  return g;
}

static void test_symbolic_reshape_chain(void **state) {
  (void)state;
  vt_graph *g = chain_graph();
  vt_error e = {0};
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), VT_OK);
  const vt_value *yv = &g->values[g->outputs[0]];
  char buf[256];
  assert_string_equal(vt_value_type_str(g, yv, buf, sizeof buf), "f32[N,197,6,64]");
  assert_int_equal(g->n_nodes, 5);   /* symbolic: the chain stays */
  vt_graph_free(g);

  /* with N pinned, the whole chain folds to a constant shape and only Reshape remains */
  g = chain_graph();
  const char *names[1] = {"N"};
  int64_t vals[1] = {2};
  assert_int_equal(vt_graph_prepare(g, names, vals, 1, &e), VT_OK);
  assert_int_equal(g->n_nodes, 1);
  assert_string_equal(vt_ops[g->nodes[0].op].name, "Reshape");
  assert_string_equal(vt_value_type_str(g, &g->values[g->outputs[0]], buf, sizeof buf), "f32[2,197,6,64]");
  vt_graph_free(g);
}

/* Identity of a constant folds to the constant (the exporter's deduplicated initializers); an
 * Identity that is a graph output stays a node. */
static void test_identity_of_const_folds(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("ident.onnx");
  assert_int_equal(vt_graph_set_opset(g, "", 17), 0);
  vt_dim d[1] = {4};
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 1, d);
  vt_graph_add_input(g, x);
  static float bias[4] = {1, 2, 3, 4};
  vt_tensor tb = {.dtype = VT_F32, .rank = 1, .dims = {4}, .data = bias};
  int32_t cb = vt_graph_add_const(g, "bias", &tb);
  int32_t b1 = vt_graph_add_value(g, "bias_1", VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, "ident", op("Identity"), 1, &cb, 1, &b1);
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, "add", op("Add"), 2, (int32_t[]){x, b1}, 1, &y);
  vt_graph_add_output(g, y);
  int32_t b2 = vt_graph_add_value(g, "bias_out", VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, "ident_out", op("Identity"), 1, &cb, 1, &b2);
  vt_graph_add_output(g, b2);
  vt_error e = {0};
  assert_int_equal(vt_graph_prepare(g, NULL, NULL, 0, &e), VT_OK);
  assert_int_equal(g->n_nodes, 2);   /* Add and the output's Identity */
  const vt_value *bv = &g->values[b1];
  assert_true((bv->flags & VT_VAL_CONST) && bv->cdata && bv->producer < 0);
  assert_ptr_equal(bv->cdata->data, bias);
  assert_true(g->values[b2].producer >= 0);
  vt_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dims_fold_and_hashcons),
      cmocka_unit_test(test_toposort_infer_print),
      cmocka_unit_test(test_cycle_is_reported),
      cmocka_unit_test(test_verify_catches_bad_attribute_and_arity),
      cmocka_unit_test(test_pin_dims),
      cmocka_unit_test(test_interp_runs_and_checks_inputs),
      cmocka_unit_test(test_symbolic_reshape_chain),
      cmocka_unit_test(test_identity_of_const_folds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

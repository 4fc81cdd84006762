/* op_harness.h — shared by the kernel unit tests: attribute literals and a runner that builds a
 * one-node graph, infers it and runs the node with the reference kernel. Header-only (static
 * functions), included by each test_kernels_*.c. */
#ifndef VTOPT_OP_HARNESS_H
#define VTOPT_OP_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "runtime.h"

typedef struct {
  const char *name;
  vt_attr_type type;
  int64_t i;
  float f;
  const char *s;
  int n;
  int64_t ints[16];
} tattr;

#define AI(nm, v) {nm, VT_ATTR_INT, v, 0, NULL, 0, {0}}
#define AF(nm, v) {nm, VT_ATTR_FLOAT, 0, v, NULL, 0, {0}}
#define AS(nm, v) {nm, VT_ATTR_STRING, 0, 0, v, 0, {0}}
#define AINTS(nm, cnt, ...) {nm, VT_ATTR_INTS, 0, 0, NULL, cnt, {__VA_ARGS__}}

/* Builds graph inputs in0.. from ins (NULL = absent optional input), outputs out0.., one node of
 * ai.onnx op `opname` (opset: 0 = none imported) with attrs, infers it and runs it on pool.
 * outs must be zeroed tensors. Returns the status; the message is in err. */
static inline int run_one_op(const char *opname, int64_t opset, int nin, const vt_tensor *const *ins, int nout,
                             vt_tensor *outs, const tattr *attrs, int nattr, vt_pool *pool, vt_error *err) {
  vt_graph *g = vt_graph_new("test.onnx");
  if (!g) return vt_errorf(err, VT_ERR_INTERNAL, "out of memory");
  if (opset > 0 && vt_graph_set_opset(g, "", opset) != 0) {
    vt_graph_free(g);
    return vt_errorf(err, VT_ERR_INTERNAL, "out of memory");
  }
  int32_t in[16], out[8];
  char nm[32];
  if (nin > 16 || nout > 8) {
    vt_graph_free(g);
    return vt_errorf(err, VT_ERR_INTERNAL, "op harness: too many inputs or outputs");
  }
  for (int i = 0; i < nin; i++) {
    if (!ins[i]) { in[i] = -1; continue; }
    vt_dim d[VT_MAX_RANK];
    for (int k = 0; k < ins[i]->rank; k++) d[k] = ins[i]->dims[k];
    snprintf(nm, sizeof nm, "in%d", i);
    in[i] = vt_graph_add_value(g, nm, ins[i]->dtype, ins[i]->rank, d);
    vt_graph_add_input(g, in[i]);
  }
  for (int o = 0; o < nout; o++) {
    snprintf(nm, sizeof nm, "out%d", o);
    out[o] = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
    vt_graph_add_output(g, out[o]);
  }
  int op = vt_op_lookup(opname, "");
  if (op < 0) {
    vt_graph_free(g);
    return vt_errorf(err, VT_ERR_INTERNAL, "op harness: unknown op %s", opname);
  }
  int32_t node = vt_graph_add_node(g, "n0", op, nin, in, nout, out);
  for (int a = 0; a < nattr; a++) {
    vt_attr *at = vt_node_add_attr(g, node, attrs[a].name, attrs[a].type);
    at->i = attrs[a].i;
    at->f = attrs[a].f;
    if (attrs[a].s) { at->s = vt_arena_strdup(&g->arena, attrs[a].s); at->s_len = strlen(at->s); }
    if (attrs[a].type == VT_ATTR_INTS) {
      at->n = attrs[a].n;
      at->ints = vt_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)(attrs[a].n + 1));
      memcpy(at->ints, attrs[a].ints, sizeof(int64_t) * (size_t)attrs[a].n);
    }
  }
  vt_error_clear(err);
  int rc = vt_graph_infer(g, err);
  if (rc == VT_OK) {
    vt_tensor *op_out[8];
    for (int o = 0; o < nout; o++) op_out[o] = &outs[o];
    rc = vt_run_node(g, node, ins, op_out, pool, err);
  }
  vt_graph_free(g);
  return rc;
}

#endif

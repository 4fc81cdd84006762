/* test_metrics.h — output agreement helpers shared by the pass tests (header-only). */
#ifndef VTOPT_PASSES_TEST_METRICS_H
#define VTOPT_PASSES_TEST_METRICS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ||a - b|| / ||a|| (a is the reference); ||a - b|| when a is all zero. Sizes must match. */
static inline double rel_l2(const vt_tensor *a, const vt_tensor *b) {
  int64_t n = vt_tensor_numel(a);
  assert_int_equal(n, vt_tensor_numel(b));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = vt_tensor_get_f64(a, i), y = vt_tensor_get_f64(b, i);
    num += (x - y) * (x - y);
    den += x * x;
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Cosine similarity of a and b as flat vectors (0 when either is all zero). */
static inline double cosine(const vt_tensor *a, const vt_tensor *b) {
  int64_t n = vt_tensor_numel(a);
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = vt_tensor_get_f64(a, i), y = vt_tensor_get_f64(b, i);
    ab += x * y; aa += x * x; bb += y * y;
  }
  return ab / (sqrt(aa * bb) + 1e-30);
}

/* ---------- probes and ablations (test-only graph edits) ----------------------------------
 * A rewrite's fidelity is measured where it acts (e.g. an attention branch's output) and its
 * threshold is calibrated against an ablation of the same rewrite in the same test: on tiny
 * random models the residual stream dominates the final output, so a threshold on the output
 * alone can pass with the rewritten part deleted. */

/* Makes value v (an intermediate one too) an extra graph output; returns its output index. */
static inline int probe_output(vt_graph *g, int32_t v) {
  assert_true(v >= 0);
  assert_int_equal(vt_graph_add_output(g, v), 0);
  return g->n_outputs - 1;
}

/* Ablation: every node and graph output that read v now reads v * 0 (a Mul by a constant zero,
 * same shape). Returns the zeroed value. The graph is re-sorted and re-inferred. */
static inline int32_t ablate_to_zero(vt_graph *g, int32_t v) {
  char nm[600];
  snprintf(nm, sizeof nm, "%s/ablated_zero", g->values[v].name);
  float *zero = (float *)calloc(1, sizeof *zero);
  assert_non_null(zero);
  assert_int_equal(vt_graph_own(g, zero), 0);
  vt_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = VT_F32;
  t.data = zero;
  int32_t c = vt_graph_add_const(g, nm, &t);
  assert_true(c >= 0);
  snprintf(nm, sizeof nm, "%s/ablated", g->values[v].name);
  int32_t z = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
  assert_true(z >= 0);
  int32_t mul_in[2] = {v, c};
  int32_t nn = vt_graph_add_node(g, nm, VT_OP_Mul, 2, mul_in, 1, &z);
  assert_true(nn >= 0);
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in && i != nn; k++)
      if (g->nodes[i].in[k] == v) g->nodes[i].in[k] = z;
  for (int32_t o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] == v) g->outputs[o] = z;
  vt_error e;
  memset(&e, 0, sizeof e);
  if (vt_graph_toposort(g, &e) != VT_OK || vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK)
    fail_msg("ablation of %s: %s", g->values[v].name, e.msg);
  return z;
}

#endif

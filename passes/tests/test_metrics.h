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

/* Cosine of a and b [B, N, C] after subtracting each one's mean over the N tokens (per batch
 * item and channel): the agreement of what varies from token to token, which a per-token
 * constant part (a bias, a gate) would otherwise dominate. */
static inline double centered_cosine(const vt_tensor *a, const vt_tensor *b) {
  assert_int_equal(a->rank, 3);
  assert_int_equal(vt_tensor_numel(a), vt_tensor_numel(b));
  int64_t B = a->dims[0], N = a->dims[1], C = a->dims[2];
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < B; i++)
    for (int64_t c = 0; c < C; c++) {
      double ma = 0, mb = 0;
      for (int64_t t = 0; t < N; t++) {
        ma += vt_tensor_get_f64(a, (i * N + t) * C + c);
        mb += vt_tensor_get_f64(b, (i * N + t) * C + c);
      }
      ma /= (double)N;
      mb /= (double)N;
      for (int64_t t = 0; t < N; t++) {
        double x = vt_tensor_get_f64(a, (i * N + t) * C + c) - ma, y = vt_tensor_get_f64(b, (i * N + t) * C + c) - mb;
        ab += x * y; aa += x * x; bb += y * y;
      }
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

/* Ablation: every reader of v [B, N, ...] now reads v with its N tokens in reverse order (a
 * Gather on axis 1): values put back at the wrong tokens. Returns the value now read. */
static inline int32_t ablate_reverse_tokens(vt_graph *g, int32_t v) {
  int64_t N = g->values[v].dims[1];
  assert_true(vt_dim_is_const(g->values[v].dims[1]) && N > 0);
  int64_t *idx = (int64_t *)calloc((size_t)N, sizeof *idx);
  assert_non_null(idx);
  for (int64_t t = 0; t < N; t++) idx[t] = N - 1 - t;
  assert_int_equal(vt_graph_own(g, idx), 0);
  vt_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = VT_I64;
  t.rank = 1;
  t.dims[0] = N;
  t.data = idx;
  char nm[600];
  snprintf(nm, sizeof nm, "%s/reversed_idx", g->values[v].name);
  int32_t c = vt_graph_add_const(g, nm, &t);
  snprintf(nm, sizeof nm, "%s/reversed", g->values[v].name);
  int32_t r = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
  int32_t gin[2] = {v, c};
  int32_t gn = vt_graph_add_node(g, nm, VT_OP_Gather, 2, gin, 1, &r);
  assert_true(c >= 0 && r >= 0 && gn >= 0);
  vt_node_add_attr(g, gn, "axis", VT_ATTR_INT)->i = 1;
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in && i != gn; k++)
      if (g->nodes[i].in[k] == v) g->nodes[i].in[k] = r;
  for (int32_t o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] == v) g->outputs[o] = r;
  vt_error e;
  memset(&e, 0, sizeof e);
  if (vt_graph_toposort(g, &e) != VT_OK || vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK)
    fail_msg("token-reversal ablation of %s: %s", g->values[v].name, e.msg);
  return r;
}

/* Ablation: every reader of v now reads the mean of src over `axis` (keepdims), broadcast to v's
 * shape (v * 0 + mean), e.g. uniform attention: an attention's output replaced by the mean of
 * its V over the keys. The model's opset must take ReduceMean's axes as an attribute (<= 17).
 * Returns the value now read in v's place. */
static inline int32_t ablate_to_mean(vt_graph *g, int32_t v, int32_t src, int64_t axis) {
  int32_t z = ablate_to_zero(g, v);
  char nm[600];
  snprintf(nm, sizeof nm, "%s/ablated_mean", g->values[v].name);
  int32_t m = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
  int32_t rn = vt_graph_add_node(g, nm, VT_OP_ReduceMean, 1, &src, 1, &m);
  assert_true(m >= 0 && rn >= 0);
  vt_attr *ax = vt_node_add_attr(g, rn, "axes", VT_ATTR_INTS);
  assert_non_null(ax);
  ax->n = 1;
  ax->ints = (int64_t *)vt_arena_alloc(&g->arena, sizeof *ax->ints);
  assert_non_null(ax->ints);
  ax->ints[0] = axis;
  snprintf(nm, sizeof nm, "%s/ablated_broadcast", g->values[v].name);
  int32_t u = vt_graph_add_value(g, nm, VT_UNDEFINED, -1, NULL);
  int32_t add_in[2] = {z, m};
  int32_t an = vt_graph_add_node(g, nm, VT_OP_Add, 2, add_in, 1, &u);
  assert_true(u >= 0 && an >= 0);
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in && i != an; k++)
      if (g->nodes[i].in[k] == z) g->nodes[i].in[k] = u;
  for (int32_t o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] == z) g->outputs[o] = u;
  vt_error e;
  memset(&e, 0, sizeof e);
  if (vt_graph_toposort(g, &e) != VT_OK || vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK)
    fail_msg("mean ablation of %s: %s", g->values[v].name, e.msg);
  return u;
}

#endif

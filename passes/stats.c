/* stats.c — cost estimates for --stats: FLOPs (2 x multiply-adds) of the GEMM-like ops and of
 * fused attention. */
#include "httm.h"
#include "passes.h"

/* A dim as a count: its value, else its upper bound (costs are planned for the bound), else 1
 * with *partial set. */
static double dimf(const vt_graph *g, vt_dim d, bool *partial) {
  int64_t u = vt_dim_upper(g, d);
  if (u >= 0) return (double)u;
  *partial = true;
  return 1.0;
}

static double numel(const vt_graph *g, const vt_value *v, bool *partial) {
  double n = 1;
  for (int32_t d = 0; d < v->rank; d++) n *= dimf(g, v->dims[d], partial);
  return n;
}

double vt_graph_flops(const vt_graph *g, bool *partial) {
  bool part = false;
  double total = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    if (n->n_out < 1 || n->out[0] < 0) continue;
    const vt_value *y = &g->values[n->out[0]];
    const vt_value *a = n->n_in > 0 && n->in[0] >= 0 ? &g->values[n->in[0]] : NULL;
    const vt_value *b = n->n_in > 1 && n->in[1] >= 0 ? &g->values[n->in[1]] : NULL;
    if (!a || y->rank < 0 || a->rank < 1) continue;
    switch (n->op) {
      case VT_OP_MatMul:   /* out numel x K */
        total += 2.0 * numel(g, y, &part) * dimf(g, a->dims[a->rank - 1], &part);
        break;
      case VT_OP_Gemm: {
        int64_t ta = vt_attr_int(n, "transA", 0);
        if (a->rank == 2) total += 2.0 * numel(g, y, &part) * dimf(g, a->dims[ta ? 0 : 1], &part);
        break;
      }
      case VT_OP_Conv:
      case VT_OP_ConvTranspose: {
        /* out numel x (C_in / group) x kernel size; weight [M, C/g, k...] for Conv,
         * [C, M/g, k...] for ConvTranspose: per output element, C/g x k MACs (Conv) and
         * per input element M/g x k (ConvTranspose) */
        if (!b || b->rank < 2) break;
        double k = 1;
        for (int32_t d = 2; d < b->rank; d++) k *= dimf(g, b->dims[d], &part);
        if (n->op == VT_OP_Conv) total += 2.0 * numel(g, y, &part) * dimf(g, b->dims[1], &part) * k;
        else total += 2.0 * numel(g, a, &part) * dimf(g, b->dims[1], &part) * k;
        break;
      }
      case VT_OP_Attention: {
        const vt_value *kk = b, *vv = n->n_in > 2 && n->in[2] >= 0 ? &g->values[n->in[2]] : NULL;
        if (!kk || !vv || a->rank != 4 || kk->rank != 4 || vv->rank != 4) break;
        total += 2.0 * dimf(g, a->dims[0], &part) * dimf(g, a->dims[1], &part) * dimf(g, a->dims[2], &part) *
                 dimf(g, kk->dims[2], &part) * (dimf(g, a->dims[3], &part) + dimf(g, vv->dims[3], &part));
        break;
      }
      case VT_OP_HeadwiseMergedAttention: total += vt_httm_node_flops(g, n, &part); break;
      default: break;
    }
  }
  if (partial) *partial = part;
  return total;
}

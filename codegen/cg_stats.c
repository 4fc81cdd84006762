/* cg_stats.c — what lowering did, for vt_jit_stats and --stats: group counts by kind and the
 * per-group table (kernel kind, shapes, fused ops, why a node runs on the host). */
#include "cg_internal.h"

static const char *const ew_names[] = {"add", "sub", "mul", "div", "relu", "neg", "abs", "sqrt",
                                       "recip", "exp", "erf", "tanh", "sigmoid", "square", "cube",
                                       "id", "leakyrelu", "clip", "hardsigmoid", "hardswish",
                                       "gelu", "gelu_tanh", "log"};

/* One line for a CONV_DIRECT / CONV_1X1 / CONV_POOL group: shape, and what it fused. */
static void cg_print_conv_group(const cg *c, int gi, FILE *f) {
  static const char *const act_names[] = {"", "relu", "clip", "hardsigmoid", "hardswish", "sigmoid", "x*sigmoid(x)", "x*hardsigmoid(x)"};
  static const char *const pool_names[] = {"max", "average", "average (pads counted)", "global average"};
  const cg_group *G = &c->groups[gi];
  const vt_node *n = &c->g->nodes[G->conv_node];
  const int64_t *cv = G->conv;
  if (G->conv_kind == CONV_RESIZE) {
    fprintf(f, "  [%d] resize %lldx%lld -> %lldx%lld, %lld planes '%s'\n", gi, (long long)cv[1], (long long)cv[2],
            (long long)cv[3], (long long)cv[4], (long long)G->rows, n->name);
    return;
  }
  if (G->conv_kind == CONV_REDUCE_MID) {
    fprintf(f, "  [%d] reduce %s over a middle axis %lldx%lldx%lld '%s'\n", gi, G->pool_kind ? "mean" : "sum",
            (long long)G->rows, (long long)cv[0], (long long)cv[1], n->name);
    return;
  }
  if (G->conv_kind == CONV_POOL) {
    fprintf(f, "  [%d] pool %s %lldx%lld -> %lldx%lld, %lld planes '%s'\n", gi, pool_names[G->pool_kind],
            (long long)cv[1], (long long)cv[2], (long long)cv[3], (long long)cv[4], (long long)G->rows, n->name);
    return;
  }
  if (G->conv_kind == CONV_DIRECT || G->conv_kind == CONV_TRANSPOSE)
    fprintf(f, "  [%d] %s %lldx%lld group %lld (%lld -> %lld channels, %lldx%lld -> %lldx%lld, stride %lldx%lld) '%s'",
            gi, G->conv_kind == CONV_DIRECT ? "conv direct" : "conv transpose", (long long)cv[5], (long long)cv[6], (long long)G->conv_groups, (long long)cv[0], (long long)G->N,
            (long long)cv[1], (long long)cv[2], (long long)cv[3], (long long)cv[4], (long long)cv[7], (long long)cv[8],
            n->name);
  else
    fprintf(f, "  [%d] conv 1x1 as gemm (no im2col) %lldx%lldx%lld '%s'", gi, (long long)G->N, (long long)(cv[3] * cv[4]),
            (long long)cv[0], n->name);
  if (G->conv_scale >= 0) fprintf(f, " input scale '%s'", c->g->values[G->conv_scale].name);
  if (G->conv_res >= 0) fprintf(f, " + residual '%s'", c->g->values[G->conv_res].name);
  if (G->conv_act) fprintf(f, " epilogue: %s", act_names[G->conv_act]);
  fprintf(f, "\n");
}

void cg_print_stats(const cg *c, const vt_jit_stats *st, FILE *f) {
  const vt_graph *g = c->g;
  int n_alloc = 0;   /* host nodes with an absent output: vt_run_node (allocate, copy in) */
  for (int gi = 0; gi < c->n_groups; gi++)
    if (c->groups[gi].kind == G_FALLBACK) {
      const vt_node *n = &g->nodes[c->groups[gi].seed];
      bool direct = true;
      for (int32_t o = 0; o < n->n_out; o++) direct &= n->out[o] >= 0;
      n_alloc += !direct;
    }
  fprintf(f, "codegen: %d kernels: %d gemm, %d elementwise, %d row, %d attention, %d copy (%d views: no data "
             "moved), %d host (interpreter kernels: %d called in place on the arena, %d through vt_run_node); %d of %d "
             "nodes in generated kernels; %d layout nodes absorbed into attention kernels (strided reads / writes); "
             "compile %.1f ms\n",
          c->n_groups - st->n_absorbed, st->n_gemm, st->n_elementwise, st->n_row, st->n_attention,
          st->n_copy, st->n_view, st->n_fallback, st->n_fallback - n_alloc, n_alloc, st->n_fused_nodes,
          g->n_nodes, st->n_absorbed, st->compile_ms);
  if (st->n_conv_direct || st->n_conv_1x1 || st->n_pool || st->n_conv_transpose || st->n_resize)
    fprintf(f, "codegen conv: %d direct conv, %d 1x1 conv (gemm, no im2col), %d conv transpose, %d pool / middle-axis "
               "reduce, %d resize kernels (counted above as gemm); %d nodes fused into them (activations, residual "
               "adds, squeeze-excite scales)\n",
            st->n_conv_direct, st->n_conv_1x1, st->n_conv_transpose, st->n_pool, st->n_resize, st->n_conv_fused);
  int n_gather = 0, n_scatter = 0, n_gates = 0, n_buffers = 0;
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    n_gather += G->kind == G_GEMM && G->gate >= 0;
    n_scatter += G->kind == G_GEMM && G->sc_node >= 0;
    n_gates += G->kind == G_FALLBACK && g->nodes[G->seed].op == VT_OP_TokenGate;
    n_buffers += G->kind == G_FALLBACK && g->nodes[G->seed].op == VT_OP_TokenBuffer;
  }
  if (n_gates || n_buffers || n_scatter)
    fprintf(f, "codegen: eventful fusion: %d of %d TokenGates gathered by their GEMM's prologue (xg not written), %d of %d "
               "TokenBuffers absorbed into their GEMM's scatter epilogue (no host node, no copy)\n",
            n_gather, n_gates, n_scatter, n_scatter + n_buffers);
  if (n_gates)
    fprintf(f, "codegen: %d of %d TokenGates run generated loops for their error norms and top-r selection "
               "(specialised to their token count and width; the gate's control logic stays in its host kernel)\n",
            c->n_gate_fns, n_gates);
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    const vt_node *n = &g->nodes[G->seed];
    switch (G->kind) {
    case G_GEMM:
      fprintf(f, "  [%d] gemm %lldx%lldx%lld%s '%s'", gi, (long long)G->M, (long long)G->N, (long long)G->K,
              G->ln ? " (LayerNorm prologue)" : "", n->name);
      if (G->gate >= 0) fprintf(f, " gather prologue (A = rows idx of TokenGate '%s''s input)", g->nodes[G->gate].name);
      if (G->sc_node >= 0)
        fprintf(f, " scatter epilogue (absorbs TokenBuffer '%s': rows idx of persistent '%s')", g->nodes[G->sc_node].name,
                g->values[G->sc_out].name);
      break;
    case G_EW:
      fprintf(f, "  [%d] elementwise %lld elems '%s'", gi, (long long)G->total, n->name);
      break;
    case G_COPY:
      fprintf(f, "  [%d] %s %s '%s'\n", gi, G->alias ? "view (no copy)" : "copy", vt_ops[n->op].name, n->name);
      continue;
    case G_PERM:
      fprintf(f, "  [%d] %s %lldx%lld '%s'\n", gi, n->op == VT_OP_Expand ? "expand" : "transpose", (long long)G->rows,
              (long long)G->cols, n->name);
      continue;
    case G_CONV:
      if (G->conv_kind == CONV_IM2COL) {
        fprintf(f, "  [%d] conv (im2col + gemm %lldx%lldx%lld, %lld rows per unit) '%s'\n", gi, (long long)G->M,
                (long long)G->N, (long long)G->K, (long long)G->conv[13], n->name);
        continue;
      }
      cg_print_conv_group(c, gi, f);
      continue;
    case G_BLOCKS:
      fprintf(f, "  [%d] copy %s (%d block copies, %lld bytes) '%s'\n", gi, vt_ops[n->op].name, G->n_copies,
              (long long)G->total, n->name);
      continue;
    case G_ATTN:
      fprintf(f, "  [%d] attention H=%lld Hkv=%lld Nq=%lld Nk=%lld Dh=%lld Dv=%lld%s%s%s%s '%s'\n", gi, (long long)G->aH,
              (long long)G->aHkv, (long long)G->aNq, (long long)G->aNk, (long long)G->aDh, (long long)G->aDv,
              G->att_v[3] >= 0 || G->att_v[4] >= 0 ? " mask" : "", G->att_v[5] >= 0 ? " key_bias" : "",
              G->att_v[6] >= 0 ? " rel-pos bias (decomposed)" : "", G->causal ? " causal" : "", n->name);
      continue;
    case G_ROW:
      fprintf(f, "  [%d] row %s %lldx%lld '%s'\n", gi, vt_ops[n->op].name, (long long)G->rows, (long long)G->cols,
              n->name);
      continue;
    case G_ABSORBED:
      fprintf(f, "  [%d] absorbed %s '%s': attention [%d] reads / writes its layout in place\n", gi, vt_ops[n->op].name,
              n->name, G->into);
      continue;
    default: {
      bool direct = true;
      for (int32_t o = 0; o < n->n_out; o++) direct &= n->out[o] >= 0;
      fprintf(f, "  [%d] %s %s '%s': %s%s%s\n", gi, direct ? "host kernel" : "host kernel via vt_run_node (absent output)",
              vt_ops[n->op].name, n->name, G->why, G->note[0] ? "; " : "", G->note);
      continue;
    }
    }
    fprintf(f, " ops:");
    for (int s = 0; s < G->n_steps; s++) fprintf(f, " %s", ew_names[G->steps[s].op]);
    fprintf(f, "\n");
  }
}

void cg_count_groups(const cg *c, vt_jit_stats *st) {
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    if (G->kind == G_CONV) {   /* the convolution family (also counted as gemm below) */
      st->n_conv_direct += G->conv_kind == CONV_DIRECT;
      st->n_conv_transpose += G->conv_kind == CONV_TRANSPOSE;
      st->n_resize += G->conv_kind == CONV_RESIZE;
      st->n_conv_1x1 += G->conv_kind == CONV_1X1;
      st->n_pool += G->conv_kind == CONV_POOL || G->conv_kind == CONV_REDUCE_MID;
      if (G->conv_kind == CONV_DIRECT || G->conv_kind == CONV_1X1 || G->conv_kind == CONV_TRANSPOSE)
        st->n_conv_fused += G->n_nodes - 1;
    }
    if (G->kind == G_GEMM || G->kind == G_CONV) st->n_gemm++;
    else if (G->kind == G_EW) st->n_elementwise++;
    else if (G->kind == G_COPY || G->kind == G_PERM || G->kind == G_BLOCKS) st->n_copy++;
    else if (G->kind == G_ROW) st->n_row++;
    else if (G->kind == G_ATTN) st->n_attention++;
    else if (G->kind == G_ABSORBED) st->n_absorbed++;
    else st->n_fallback++;
    if (G->kind != G_FALLBACK) st->n_fused_nodes += G->n_nodes;
    if (G->kind == G_COPY && G->alias) st->n_view++;
  }
}

/* cg_views.c — strided views of buffers: attention kernels reading Q/K/V and writing their output
 * through chains of layout nodes (absorbed, no kernel of their own), and Reshape-like COPY groups
 * that alias their source's buffer instead of copying. */
#include "cg_internal.h"

/* ---------- attention layout: Q/K/V read and the output written in place --------------------- */
/* Exports split a packed QKV projection into heads with Reshape -> Transpose -> Split/Gather ->
 * Squeeze, and merge the heads back with Transpose -> Reshape. Each of those is a strided view
 * of one buffer, so the attention kernel reads Q, K, V in the projection's output and writes
 * the merged [B, N, H * Dv] layout directly; the layout nodes become G_ABSORBED (no kernel, their
 * values no buffer). */

/* element (i_0, ..., i_{rank-1}) of a view at off + sum_d i_d * st[d] of its buffer */
typedef struct { int32_t rank; int64_t off, dims[VT_MAX_RANK], st[VT_MAX_RANK]; } cg_sview;

static void sview_contig(cg_sview *w, const vt_value *v) {
  w->rank = v->rank;
  w->off = 0;
  int64_t acc = 1;
  for (int32_t d = v->rank - 1; d >= 0; d--) {
    w->dims[d] = v->dims[d];
    w->st[d] = acc;
    acc *= v->dims[d];
  }
}

/* w reshaped to the dims of `to` without moving data (numpy's no-copy reshape): dims of size 1
 * come and go freely; a group of old dims may be re-split into new dims when the group is
 * contiguous within itself (st[k] == st[k + 1] * dims[k + 1]). False when that is not possible. */
static bool sview_reshape(cg_sview *w, const vt_value *to) {
  int64_t od[VT_MAX_RANK], os[VT_MAX_RANK];
  int on = 0;
  for (int32_t d = 0; d < w->rank; d++)
    if (w->dims[d] != 1) {
      od[on] = w->dims[d];
      os[on++] = w->st[d];
    }
  cg_sview r = {.rank = to->rank, .off = w->off};
  for (int32_t d = 0; d < to->rank; d++) {
    r.dims[d] = to->dims[d];
    r.st[d] = 0;
    if (to->dims[d] <= 0) return false;
  }
  int i = 0;
  int32_t j = 0;
  while (i < on) {
    while (j < to->rank && to->dims[j] == 1) j++;
    if (j >= to->rank) return false;
    int i0 = i;
    int32_t j0 = j;
    int64_t op = od[i], np = to->dims[j];
    while (op != np) {
      if (np < op) {
        if (++j >= to->rank) return false;
        np *= to->dims[j];
      } else {
        if (++i >= on) return false;
        op *= od[i];
      }
    }
    for (int k = i0; k < i; k++)   /* the old group must be one strided run */
      if (os[k] != os[k + 1] * od[k + 1]) return false;
    int64_t acc = os[i];
    for (int32_t k = j; k >= j0; k--) {
      r.st[k] = to->dims[k] == 1 ? 0 : acc;
      acc *= to->dims[k];
    }
    i++;
    j++;
  }
  for (; j < to->rank; j++)
    if (to->dims[j] != 1) return false;
  *w = r;
  return true;
}

/* w after layout node ni, for its output oi; false when that output is not a view of w. */
static bool sview_step(const cg *c, cg_sview *w, int32_t ni, int32_t oi) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  const vt_value *ov = &g->values[n->out[oi]];
  if (cg_is_copy_op(n->op)) {
    if (!sview_reshape(w, ov)) return false;
  } else if (n->op == VT_OP_Transpose) {
    int64_t perm[VT_MAX_RANK];
    if (!cg_read_perm(n, w->rank, perm)) return false;
    cg_sview t = *w;
    for (int32_t d = 0; d < w->rank; d++) {
      t.dims[d] = w->dims[perm[d]];
      t.st[d] = w->st[perm[d]];
    }
    *w = t;
  } else if (n->op == VT_OP_Split) {
    int axis = cg_norm_axis(vt_attr_int(n, "axis", 0), w->rank);
    if (axis < 0 || ov->rank != w->rank) return false;
    int64_t start = 0;
    for (int32_t o = 0; o < oi; o++) {
      if (n->out[o] < 0 || g->values[n->out[o]].rank != w->rank) return false;
      start += g->values[n->out[o]].dims[axis];
    }
    w->off += start * w->st[axis];
    w->dims[axis] = ov->dims[axis];
  } else if (n->op == VT_OP_Slice) {
    int64_t st0[VT_MAX_RANK], stp[VT_MAX_RANK];
    if (ov->rank != w->rank || !cg_slice_params(g, n, &g->values[n->in[0]], st0, stp)) return false;
    for (int32_t d = 0; d < w->rank; d++) {
      w->off += st0[d] * w->st[d];
      w->st[d] *= stp[d];
      w->dims[d] = ov->dims[d];
    }
  } else if (n->op == VT_OP_Gather) {   /* one constant index: a slice that drops (or keeps) the axis */
    if (n->n_in != 2 || n->in[1] < 0 || !cg_is_const(g, n->in[1])) return false;
    const vt_tensor *it = g->values[n->in[1]].cdata;
    int axis = cg_norm_axis(vt_attr_int(n, "axis", 0), w->rank);
    if (axis < 0 || vt_tensor_numel(it) != 1 || it->rank > 1 || (it->dtype != VT_I64 && it->dtype != VT_I32))
      return false;
    int64_t ix = vt_tensor_get_i64(it, 0);
    if (ix < 0) ix += w->dims[axis];
    if (ix < 0 || ix >= w->dims[axis]) return false;
    w->off += ix * w->st[axis];
    if (it->rank == 0) {
      for (int32_t d = axis; d + 1 < w->rank; d++) {
        w->dims[d] = w->dims[d + 1];
        w->st[d] = w->st[d + 1];
      }
      w->rank--;
    } else {
      w->dims[axis] = 1;
    }
  } else {
    return false;
  }
  if (w->rank != ov->rank) return false;
  for (int32_t d = 0; d < w->rank; d++)
    if (w->dims[d] != ov->dims[d]) return false;
  return true;
}

/* The layout nodes between value v (read by node user) and the buffer it views, walking back:
 * nodes[i] and the index oidx[i] of the output taken; stops at a graph output, a run-time dim, a
 * producer that is not a single-node layout group, and (strict) a value with another user.
 * Returns the count; *root is the value the walk stopped at. */
static int layout_chain(const cg *c, int32_t v, int32_t user, bool strict, int32_t *nodes, int32_t *oidx, int cap,
                        int32_t *root) {
  const vt_graph *g = c->g;
  int n = 0;
  while (n < cap) {
    const vt_value *val = &g->values[v];
    if (val->producer < 0 || c->is_out[v] || cg_val_dynamic(c, v)) break;
    bool only = true;
    for (int32_t u = c->uoff[v]; u < c->uoff[v + 1] && strict; u++) only &= c->ulist[u] == user;
    int32_t p = val->producer;
    const vt_node *pn = &g->nodes[p];
    int pg = c->node_group[p];
    if (!only || pg < 0 || c->groups[pg].n_nodes != 1 || pn->n_in < 1 || pn->in[0] < 0) break;
    int kind = c->groups[pg].kind;
    if (!((pn->op == VT_OP_Transpose && kind == G_PERM) ||
          ((pn->op == VT_OP_Split || pn->op == VT_OP_Gather || pn->op == VT_OP_Slice) && kind == G_BLOCKS) ||
          (cg_is_copy_op(pn->op) && kind == G_COPY)))
      break;
    int32_t oi = 0;
    while (oi < pn->n_out && pn->out[oi] != v) oi++;
    nodes[n] = p;
    oidx[n++] = oi;
    user = p;
    v = pn->in[0];
  }
  *root = v;
  return n;
}

/* Moves layout node ni into attention group gi; its own group emits nothing from now on. */
static int absorb_node(cg *c, int gi, int32_t ni) {
  if (c->node_group[ni] == gi) return 0;   /* shared by two chains (a Split): taken already */
  cg_group *H = &c->groups[c->node_group[ni]];
  H->kind = G_ABSORBED;
  H->n_nodes = 0;
  H->into = gi;
  return cg_group_add_node(c, gi, ni);
}

#define LAYOUT_CHAIN_MAX 16   /* layout nodes followed per attention operand */
/* Do the layout nodes of chains ch[k][0..len[k]) write only values that these chains or the
 * attention node an read (and no graph output)? */
static bool chains_closed(const cg *c, int32_t an, int32_t ch[3][LAYOUT_CHAIN_MAX], const int len[3]) {
  const vt_graph *g = c->g;
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < len[k]; i++) {
      const vt_node *n = &g->nodes[ch[k][i]];
      for (int32_t o = 0; o < n->n_out; o++) {
        int32_t v = n->out[o];
        if (v < 0) continue;
        if (c->is_out[v]) return false;
        for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++) {
          bool in_chain = c->ulist[u] == an;
          for (int k2 = 0; k2 < 3; k2++)
            for (int i2 = 0; i2 < len[k2]; i2++) in_chain |= c->ulist[u] == ch[k2][i2];
          if (!in_chain) return false;
        }
      }
    }
  return true;
}

/* Q, K, V of attention group gi read in place (see cg_plan_attn_layout). */
static int absorb_attn_inputs(cg *c, int gi) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  int64_t *mstr = c->blobs[G->gblob].owned;
  int32_t ch[3][LAYOUT_CHAIN_MAX], oi[3][LAYOUT_CHAIN_MAX], root[3];
  int len[3] = {0, 0, 0};
  bool ok = false;
  for (int strict = 0; strict < 2 && !ok; strict++) {
    ok = true;
    for (int k = 0; k < 3 && ok; k++) {
      ok = G->att_blob[k] < 0;
      if (ok) len[k] = layout_chain(c, G->att_v[k], G->seed, strict, ch[k], oi[k], LAYOUT_CHAIN_MAX, &root[k]);
      ok = ok && !cg_is_const(g, root[k]) && g->values[root[k]].dtype == VT_F32;
    }
    ok = ok && len[0] + len[1] + len[2] > 0 && chains_closed(c, G->seed, ch, len);
  }
  cg_sview w[3];
  for (int k = 0; k < 3 && ok; k++) {
    sview_contig(&w[k], &g->values[root[k]]);
    for (int i = len[k] - 1; i >= 0 && ok; i--) ok = sview_step(c, &w[k], ch[k][i], oi[k][i]);
    ok = ok && w[k].rank == 4 && (w[k].st[3] == 1 || w[k].dims[3] == 1);
  }
  for (int k = 0; k < 3 && ok; k++) {
    G->att_v[k] = root[k];
    G->att_off[k] = w[k].off;
    for (int d = 0; d < 3; d++) mstr[12 + 3 * k + d] = w[k].st[d];
    for (int i = 0; i < len[k]; i++) {
      const vt_node *n = &g->nodes[ch[k][i]];
      for (int32_t o = 0; o < n->n_out; o++)
        if (n->out[o] >= 0) c->nobuf[n->out[o]] = true;
      if (absorb_node(c, gi, ch[k][i])) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  }
  return VT_OK;
}

/* The output of attention group gi written in place: O's one reader, through Reshape-like
 * views, is a Transpose; its (contiguous) output is viewed back through the inverse
 * permutation and the views to O's dims. */
static int absorb_attn_output(cg *c, int gi) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  int32_t O = G->out, on[LAYOUT_CHAIN_MAX], v = O, tn = -1;
  int n_on = 0;
  while (n_on < LAYOUT_CHAIN_MAX && !c->is_out[v] && !cg_val_dynamic(c, v) && c->uoff[v + 1] - c->uoff[v] == 1) {
    int32_t un = c->ulist[c->uoff[v]];
    const vt_node *u = &g->nodes[un];
    int ug = c->node_group[un];
    if (ug < 0 || c->groups[ug].n_nodes != 1 || u->n_out < 1 || u->out[0] < 0 || u->in[0] != v) break;
    if (u->op == VT_OP_Transpose && c->groups[ug].kind == G_PERM) { tn = un; break; }
    if (!cg_is_copy_op(u->op) || c->groups[ug].kind != G_COPY) break;
    on[n_on++] = un;
    v = u->out[0];
  }
  if (tn < 0 || cg_val_dynamic(c, g->nodes[tn].out[0])) return VT_OK;
  const vt_node *t = &g->nodes[tn];
  const vt_value *F = &g->values[t->out[0]];
  int64_t perm[VT_MAX_RANK];
  if (!cg_read_perm(t, F->rank, perm)) return VT_OK;
  cg_sview fw, ow;
  sview_contig(&fw, F);
  ow = fw;
  for (int32_t d = 0; d < F->rank; d++) {   /* the transpose's input: its axis perm[d] is F's axis d */
    ow.dims[perm[d]] = fw.dims[d];
    ow.st[perm[d]] = fw.st[d];
  }
  bool ok = true;
  for (int i = n_on - 1; i >= 0 && ok; i--) ok = sview_reshape(&ow, &g->values[g->nodes[on[i]].in[0]]);
  ok = ok && ow.rank == 4 && (ow.st[3] == 1 || ow.dims[3] == 1);
  for (int d = 0; d < 4 && ok; d++) ok = ow.dims[d] == g->values[O].dims[d];
  if (!ok) return VT_OK;
  int64_t *mstr = c->blobs[G->gblob].owned;
  for (int d = 0; d < 3; d++) mstr[21 + d] = ow.st[d];
  G->out = t->out[0];
  c->nobuf[O] = true;
  for (int i = 0; i < n_on; i++) {
    c->nobuf[g->nodes[on[i]].out[0]] = true;
    if (absorb_node(c, gi, on[i])) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  return absorb_node(c, gi, tn) ? vt_errorf(c->e, VT_ERR_MODEL, "out of memory") : VT_OK;
}

/* Q, K, V: absorbed when every chain is a view and the layout nodes' outputs feed these chains
 * only (a Split's three outputs, or the three Gathers / Slices of one value: Q, K and V). The
 * chains first go back as far as layout nodes go; when some value on them has a reader
 * elsewhere, again stopping at the first value read by anything else. The output: when its one
 * reader, through Reshape-like views, is a Transpose after which the head dim is still
 * contiguous. */
int cg_plan_attn_layout(cg *c) {
  for (int gi = 0; gi < c->n_groups; gi++) {
    if (c->groups[gi].kind != G_ATTN || c->groups[gi].dref >= 0) continue;
    if (absorb_attn_inputs(c, gi) || absorb_attn_output(c, gi)) return VT_ERR_MODEL;
  }
  return VT_OK;
}

/* Reshape-like copies (COPY groups) whose source lives in the arena become views: the output
 * shares the source's buffer (same bytes, same order), so nothing is copied. Not for graph
 * outputs (the caller's memory) or sources that are graph inputs, outputs or constants. Chains
 * resolve to their first buffer; cg_plan_arena keeps that buffer live for every alias's users. */
void cg_plan_aliases(cg *c) {
  const vt_graph *g = c->g;
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    if (G->kind != G_COPY) continue;
    int32_t src = G->src, root = c->alias_of[src] >= 0 ? c->alias_of[src] : src;
    if (c->is_out[G->out] || c->is_out[root] || g->values[root].producer < 0 ||
        !(cg_needs_buffer(c, root) || c->persist[root]))
      continue;
    if (vt_dtype_size(g->values[src].dtype) != vt_dtype_size(g->values[G->out].dtype)) continue;
    G->alias = true;
    c->alias_of[G->out] = root;
  }
}

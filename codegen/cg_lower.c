/* cg_lower.c — target-independent lowering: the graph's nodes grouped into kernel groups (GEMM
 * with fused epilogues, elementwise chains, rows, attention, conv, reductions, copies, transposes,
 * Eventful gather / scatter fusion, host fallbacks) by cg_plan(), with the packed constants they
 * embed. No LLVM here. */
#include "cg_internal.h"

#include <float.h>
#include <math.h>

int cg_add_blob(cg *c, const void *data, size_t nbytes, void *owned) {
  if (!owned)   /* graph constants are embedded once however often they are read */
    for (int i = 0; i < c->n_blobs; i++)
      if (c->blobs[i].data == data && c->blobs[i].nbytes == nbytes) return i;
  if (c->n_blobs == c->cap_blobs) {
    int nc = c->cap_blobs ? 2 * c->cap_blobs : 16;
    cg_blob *nb = realloc(c->blobs, (size_t)nc * sizeof *nb);
    if (!nb) { free(owned); return -1; }
    c->blobs = nb;
    c->cap_blobs = nc;
  }
  c->blobs[c->n_blobs] = (cg_blob){data, nbytes, owned};
  return c->n_blobs++;
}

/* Does node ni read or write a value with a run-time dim? */
static bool node_dynamic(const cg *c, int32_t ni) {
  const vt_node *n = &c->orig->nodes[ni];
  for (int32_t k = 0; k < n->n_in; k++)
    if (cg_val_dynamic(c, n->in[k])) return true;
  for (int32_t o = 0; o < n->n_out; o++)
    if (cg_val_dynamic(c, n->out[o])) return true;
  return false;
}

/* Whether value v (in the original graph) can be an operand of group G read with broadcast kind
 * bc: run-time rows must be G's rows (same dims), a value of constant shape only broadcasts
 * along rows; a group of constant shape takes no run-time value. */
static bool dyn_match(const cg *c, const cg_group *G, int32_t v, int bc) {
  if (!cg_val_dynamic(c, v)) return G->dref < 0 || bc == BC_LAST || bc == BC_SCALAR;
  if (G->dref < 0) return false;
  const vt_value *a = &c->orig->values[v], *r = &c->orig->values[G->dref];
  if (a->rank != r->rank || (bc != BC_FULL && bc != BC_ROW)) return false;
  for (int32_t d = 0; d < a->rank; d++)
    if (a->dims[d] != r->dims[d] && !(bc == BC_ROW && d == a->rank - 1 && a->dims[d] == 1)) return false;
  return true;
}

/* Whether the trailing dims of value v (original graph) multiply to width with constants only, so
 * that its run-time element count divided by width is a row count. */
static bool const_width(const cg *c, int32_t v, int64_t width) {
  const vt_value *val = &c->orig->values[v];
  int64_t p = 1;
  for (int32_t d = val->rank - 1; d >= 0 && p < width; d--) {
    if (!vt_dim_is_const(val->dims[d])) return false;
    p *= val->dims[d];
  }
  return p == width;
}

/* Are all symbols in d bounded and defined by a node (not pinned-less graph-input dims)? */
static bool dim_runtime_ok(const cg *c, vt_dim d) {
  if (vt_dim_is_const(d)) return true;
  if (vt_dim_upper(c->orig, d) < 0) return false;
  const vt_sym *s = &c->orig->syms[vt_dim_sym(d)];
  if (s->kind == VT_SYM_NAMED) return c->sym_def[vt_dim_sym(d)] >= 0;
  return dim_runtime_ok(c, s->a) && dim_runtime_ok(c, s->b);
}

cg_group *cg_new_group(cg *c, int kind, int32_t seed) {
  if (c->n_groups == c->cap_groups) {
    int nc = c->cap_groups ? 2 * c->cap_groups : 64;
    cg_group *ng = realloc(c->groups, (size_t)nc * sizeof *ng);
    if (!ng) return NULL;
    c->groups = ng;
    c->cap_groups = nc;
  }
  cg_group *G = &c->groups[c->n_groups++];
  memset(G, 0, sizeof *G);
  G->kind = kind;
  G->seed = seed;
  G->out = G->src = G->wblob = -1;
  G->dref = -1;
  G->conv_res = G->conv_scale = G->conv_node = -1;
  G->gidx = G->gate = G->sc_val = G->sc_out = G->sc_idx = G->sc_node = -1;
  const vt_node *n = &c->g->nodes[seed];
  if (node_dynamic(c, seed) && n->n_out >= 1) G->dref = n->out[0];
  return G;
}

int cg_group_add_node(cg *c, int gi, int32_t node) {
  cg_group *G = &c->groups[gi];
  if (G->n_nodes == G->cap_nodes) {
    int nc = G->cap_nodes ? 2 * G->cap_nodes : 8;
    int32_t *nn = realloc(G->nodes, (size_t)nc * sizeof *nn);
    if (!nn) return -1;
    G->nodes = nn;
    G->cap_nodes = nc;
  }
  G->nodes[G->n_nodes++] = node;
  c->node_group[node] = gi;
  return 0;
}

static int group_add_step(cg_group *G, const cg_step *s) {
  if (G->n_steps == G->cap_steps) {
    int nc = G->cap_steps ? 2 * G->cap_steps : 8;
    cg_step *ns = realloc(G->steps, (size_t)nc * sizeof *ns);
    if (!ns) return -1;
    G->steps = ns;
    G->cap_steps = nc;
  }
  G->steps[G->n_steps++] = *s;
  return 0;
}

/* Operand strides of v broadcast to G's shape (numpy rules, aligned from the right); false when
 * v does not broadcast to it. */
static bool bcast_strides(const cg_group *G, const vt_value *v, int64_t *st) {
  if (v->rank > G->rank) return false;
  int64_t run = 1;
  for (int32_t d = G->rank - 1; d >= 0; d--) {
    int32_t vd = d - (G->rank - v->rank);
    int64_t n = vd >= 0 ? v->dims[vd] : 1;
    if (n != 1 && n != G->dims[d]) return false;
    st[d] = n == 1 ? 0 : run;
    run *= n;
  }
  return true;
}

/* Shape of value v compared with the group shape: a BC_ kind, or -1 (*period for BC_TAIL,
 * st for BC_STRIDED). */
static int bcast_kind(const cg_group *G, const vt_value *v, int64_t *period, int64_t *st) {
  int64_t n = cg_val_numel(v);
  if (n == 1) return BC_SCALAR;
  int32_t r = 0;
  while (r < v->rank && v->dims[r] == 1) r++;   /* strip leading ones */
  int32_t gr = 0;
  while (gr < G->rank && G->dims[gr] == 1) gr++;
  if (v->rank - r == G->rank - gr) {
    bool same = true;
    for (int32_t i = 0; r + i < v->rank; i++)
      if (v->dims[r + i] != G->dims[gr + i]) same = false;
    if (same) return BC_FULL;
  }
  if (v->rank - r == 1 && G->rank >= 1 && v->dims[v->rank - 1] == G->dims[G->rank - 1]) return BC_LAST;
  /* one value per row ([..., 1] against [..., cols]); shape inference already checked that v
   * broadcasts to the group shape, so equal counts mean equal leading dims */
  if (v->rank >= 1 && v->dims[v->rank - 1] == 1 && n == G->rows && G->cols != 1) return BC_ROW;
  int32_t vr = v->rank - r;
  if (vr >= 2 && vr <= G->rank && G->cols > 0) {
    bool tail = true;
    for (int32_t i = 1; i <= vr; i++)
      if (v->dims[v->rank - i] != G->dims[G->rank - i]) tail = false;
    if (tail) {
      *period = n / G->cols;
      return BC_TAIL;
    }
  }
  if (G->rank >= 1 && G->cols == G->dims[G->rank - 1] && bcast_strides(G, v, st)) return BC_STRIDED;
  return -1;
}

static float const_scalar(const vt_graph *g, int32_t v) {
  return (float)vt_tensor_get_f64(g->values[v].cdata, 0);
}

/* Resolves input value v of a node joining group gi; false if it cannot be an operand. */
static bool resolve_arg(cg *c, int gi, int32_t v, cg_arg *a) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  memset(a, 0, sizeof *a);
  a->blob = -1;
  if (v < 0) return false;
  const vt_value *val = &g->values[v];
  if (val->dtype != VT_F32 || !cg_val_static(val)) return false;
  int32_t p = val->producer;
  if (p >= 0 && c->node_group[p] == gi) {
    if (c->val_step[v] == -2) { a->kind = A_PRIMARY; return true; }
    if (c->val_step[v] >= 0) { a->kind = A_STEP; a->idx = c->val_step[v]; return true; }
    return false;
  }
  if (p >= G->seed) return false;                /* not yet computed when the group runs */
  int64_t period = 0;
  int bc = bcast_kind(G, val, &period, a->st);
  if (bc < 0 || !dyn_match(c, G, v, bc)) return false;
  a->period = period;
  if (cg_is_const(g, v)) {
    if (bc == BC_SCALAR) { a->kind = A_CONSTF; a->c = const_scalar(g, v); return true; }
    const vt_tensor *t = val->cdata;
    if (t->dtype != VT_F32 || !t->data) return false;
    a->blob = cg_add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
    if (a->blob < 0) return false;
  }
  a->kind = A_VAL;
  a->bc = bc;
  a->idx = v;
  return true;
}

/* Builds the step for elementwise node ni joining group gi. Returns false if not supported. */
static bool ew_step(cg *c, int gi, int32_t ni, cg_step *s) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  cg_group *G = &c->groups[gi];
  memset(s, 0, sizeof *s);
  s->node = ni;
  if (n->n_out != 1 || n->out[0] < 0) return false;
  const vt_value *ov = &g->values[n->out[0]];
  if (ov->dtype != VT_F32 || !cg_val_static(ov) || ov->rank != G->rank) return false;
  for (int32_t d = 0; d < ov->rank; d++)
    if (ov->dims[d] != G->dims[d]) return false;
  if (!dyn_match(c, G, n->out[0], BC_FULL)) return false;
  s->out = n->out[0];
  int nargs = 1;
  switch (n->op) {
  case VT_OP_Add: s->op = E_ADD; nargs = 2; break;
  case VT_OP_Sub: s->op = E_SUB; nargs = 2; break;
  case VT_OP_Mul: s->op = E_MUL; nargs = 2; break;
  case VT_OP_Div: s->op = E_DIV; nargs = 2; break;
  case VT_OP_Relu: s->op = E_RELU; break;
  case VT_OP_Neg: s->op = E_NEG; break;
  case VT_OP_Abs: s->op = E_ABS; break;
  case VT_OP_Sqrt: s->op = E_SQRT; break;
  case VT_OP_Reciprocal: s->op = E_RECIP; break;
  case VT_OP_Exp: s->op = E_EXP; break;
  case VT_OP_Erf: s->op = E_ERF; break;
  case VT_OP_Log: s->op = E_LOG; break;
  case VT_OP_Tanh: s->op = E_TANH; break;
  case VT_OP_Sigmoid: s->op = E_SIGMOID; break;
  case VT_OP_HardSwish: s->op = E_HSWISH; break;
  case VT_OP_LeakyRelu: s->op = E_LEAKY; s->f0 = vt_attr_float(n, "alpha", 0.01f); break;
  case VT_OP_HardSigmoid:
    s->op = E_HSIG;
    s->f0 = vt_attr_float(n, "alpha", 0.2f);
    s->f1 = vt_attr_float(n, "beta", 0.5f);
    break;
  case VT_OP_Gelu: {
    const char *ap = vt_attr_str(n, "approximate", "none");
    if (!strcmp(ap, "none")) s->op = E_GELU;
    else if (!strcmp(ap, "tanh")) s->op = E_GELU_TANH;
    else return false;
    break;
  }
  case VT_OP_Pow: {
    if (n->n_in != 2 || !cg_is_const(g, n->in[1]) || cg_val_numel(&g->values[n->in[1]]) != 1) return false;
    float y = const_scalar(g, n->in[1]);
    if (y == 1.0f) s->op = E_ID;
    else if (y == 2.0f) s->op = E_SQUARE;
    else if (y == 3.0f) s->op = E_CUBE;
    else if (y == 0.5f) s->op = E_SQRT;
    else if (y == -1.0f) s->op = E_RECIP;
    else return false;
    break;
  }
  case VT_OP_Clip: {
    s->op = E_CLIP;
    s->f0 = vt_attr_float(n, "min", -FLT_MAX);
    s->f1 = vt_attr_float(n, "max", FLT_MAX);
    for (int k = 1; k < n->n_in && k < 3; k++) {
      if (n->in[k] < 0) continue;
      if (!cg_is_const(g, n->in[k]) || cg_val_numel(&g->values[n->in[k]]) != 1) return false;
      if (k == 1) s->f0 = const_scalar(g, n->in[k]);
      else s->f1 = const_scalar(g, n->in[k]);
    }
    break;
  }
  default:
    return false;
  }
  if (n->n_in < nargs) return false;
  if (n->op != VT_OP_Pow && n->op != VT_OP_Clip && n->n_in != nargs) return false;
  s->nargs = nargs;
  int mark = c->n_blobs;
  for (int k = 0; k < nargs; k++)
    if (!resolve_arg(c, gi, n->in[k], &s->a[k])) {
      for (int b = mark; b < c->n_blobs; b++) free(c->blobs[b].owned);
      c->n_blobs = mark;
      return false;
    }
  /* a node with no operand from inside the group belongs to another group (unless it seeds) */
  return true;
}

/* Considers user node un of a group value (or of one of its external operands) for group gi;
 * keeps the earliest eligible one in *best. */
static void consider(cg *c, int gi, int32_t un, int32_t *best) {
  const cg_group *G = &c->groups[gi];
  if (c->node_group[un] >= 0 || un <= G->seed || (*best >= 0 && un >= *best)) return;
  if (!(vt_ops[c->g->nodes[un].op].flags & VT_OPF_ELEMENTWISE)) return;
  cg_step s;
  int mark = c->n_blobs;
  if (ew_step(c, gi, un, &s)) *best = un;
  for (int b = mark; b < c->n_blobs; b++) free(c->blobs[b].owned);
  c->n_blobs = mark;
}

/* Grows group gi (at most 64 steps) with elementwise nodes of the group's shape that read group
 * values, or that read the group's non-constant external operands (siblings: one loop computes
 * both). The earliest eligible node joins first, so steps stay in node order. */
static int grow_group(cg *c, int gi) {
  const vt_graph *g = c->g;
  for (;;) {
    cg_group *G = &c->groups[gi];
    if (G->n_steps >= 64) break;
    int32_t best = -1;
    for (int m = 0; m < G->n_nodes; m++) {
      const vt_node *n = &g->nodes[G->nodes[m]];
      for (int32_t o = 0; o < n->n_out; o++) {
        int32_t v = n->out[o];
        if (v < 0) continue;
        for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++) consider(c, gi, c->ulist[u], &best);
      }
    }
    for (int st = 0; st < G->n_steps; st++)
      for (int k = 0; k < G->steps[st].nargs; k++) {
        const cg_arg *a = &G->steps[st].a[k];
        if (a->kind != A_VAL || a->blob >= 0) continue;
        for (int32_t u = c->uoff[a->idx]; u < c->uoff[a->idx + 1]; u++) consider(c, gi, c->ulist[u], &best);
      }
    if (best < 0) break;
    cg_step s;
    if (!ew_step(c, gi, best, &s)) break;
    if (cg_group_add_node(c, gi, best) || group_add_step(&c->groups[gi], &s))
      return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    c->val_step[s.out] = c->groups[gi].n_steps - 1;
  }
  return VT_OK;
}

static void set_group_shape(cg_group *G, const vt_value *v) {
  G->rank = v->rank;
  for (int32_t d = 0; d < v->rank; d++) G->dims[d] = v->dims[d];
  G->total = cg_val_numel(v);
  G->cols = v->rank ? v->dims[v->rank - 1] : 1;
  G->rows = G->cols ? G->total / G->cols : 0;
}

/* Packs B (K x N, or N x K when transB) times alpha into panels of NR columns. */
static float *pack_b(const cg *c, const float *B, int64_t K, int64_t N, int transB, float alpha, size_t *nbytes) {
  const int64_t nr = c->tgt.isa->nr;
  int64_t npan = (N + nr - 1) / nr;
  size_t n = (size_t)npan * (size_t)K * nr;
  size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes);   /* a panel row is one cache line: no split loads */
  if (!p) return NULL;
  memset(p, 0, bytes);
  for (int64_t pn = 0; pn < npan; pn++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t j = 0; j < nr; j++) {
        int64_t col = pn * nr + j;
        if (col >= N) continue;
        float x = transB ? B[col * K + k] : B[k * N + col];
        p[(pn * K + k) * nr + j] = alpha * x;
      }
  *nbytes = n * sizeof *p;
  return p;
}

/* Checks a LayerNormalization node ni normalising axes [axis, rank) (cols elements) for the
 * generated kernels (unused mean / inv-std outputs; constant float32 scale and bias of the
 * normalised shape) and adds its scale / bias blobs (*bb = -1: no bias). 1 ok, 0 not (why), <0 error. */
static int ln_params(cg *c, int32_t ni, int32_t axis, int64_t cols, int32_t *gb, int32_t *bb, float *eps, char *why,
                     size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  const vt_value *X = &g->values[n->in[0]];
  *gb = *bb = -1;
  for (int32_t o = 1; o < n->n_out; o++) {
    int32_t v = n->out[o];
    if (v >= 0 && (c->is_out[v] || c->uoff[v + 1] > c->uoff[v])) {
      snprintf(why, whyn, "the mean / inverse std-dev outputs are used");
      return 0;
    }
  }
  for (int k = 1; k < 3 && k < n->n_in; k++) {
    int32_t v = n->in[k];
    if (v < 0) continue;
    if (!cg_is_const(g, v) || g->values[v].cdata->dtype != VT_F32 || cg_val_numel(&g->values[v]) != cols) {
      snprintf(why, whyn, "scale / bias are not constant float32 tensors of %lld elements", (long long)cols);
      return 0;
    }
    /* same shape as the normalised dims (up to leading ones), as the reference kernel requires */
    const vt_value *pv = &g->values[v];
    int32_t pr = 0, xr = axis;
    while (pr < pv->rank && pv->dims[pr] == 1) pr++;
    while (xr < X->rank && X->dims[xr] == 1) xr++;
    bool same = pv->rank - pr == X->rank - xr;
    for (int32_t d = 0; same && pr + d < pv->rank; d++) same = pv->dims[pr + d] == X->dims[xr + d];
    if (!same) {
      snprintf(why, whyn, "scale / bias shape differs from the normalised dims");
      return 0;
    }
    const vt_tensor *t = g->values[v].cdata;
    int blob = cg_add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
    if (blob < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    if (k == 1) *gb = blob; else *bb = blob;
  }
  if (*gb < 0) { snprintf(why, whyn, "no scale"); return 0; }
  *eps = vt_attr_float(n, "epsilon", 1e-5f);
  return 1;
}

/* Eventful gather prologue: when v (the GEMM's A, or its LayerNorm prologue's input) is a
 * TokenGate's xg [M, K], read by node `user` only and not a graph output, and the gate's input x
 * is float32 [..., K] of static shape, the GEMM can read row m of A as row idx[m] of x: returns
 * the gate node (the caller makes xg bufferless), else -1 with the reason in the gate's note. */
static int32_t gather_gate(cg *c, int32_t v, int32_t user, int64_t K) {
  const vt_graph *g = c->g;
  int32_t gn = g->values[v].producer;
  if (gn < 0 || g->nodes[gn].op != VT_OP_TokenGate || g->nodes[gn].n_out < 2 || g->nodes[gn].out[0] != v) return -1;
  const vt_node *n = &g->nodes[gn];
  int gg = c->node_group[gn];
  int32_t x = n->in[0], idx = n->out[1];
  const vt_value *xv = x >= 0 ? &g->values[x] : NULL;
  const char *r = NULL;
  if (gg < 0 || c->groups[gg].kind != G_FALLBACK) r = "the gate is not a host node";
  else if (c->is_out[v]) r = "xg is a graph output";
  else if (c->uoff[v + 1] - c->uoff[v] != 1 || c->ulist[c->uoff[v]] != user)
    r = "xg is read by another node besides its GEMM";
  else if (idx < 0 || g->values[idx].dtype != VT_I64) r = "the gate's idx output is absent";
  else if (!xv || xv->dtype != VT_F32 || xv->rank < 1 || xv->dims[xv->rank - 1] != K || cg_val_dynamic(c, x))
    r = "the gate's input is not a float32 [..., K] tensor of static shape";
  if (r) {
    if (gg >= 0) snprintf(c->groups[gg].note, sizeof c->groups[gg].note, "xg written: %s", r);
    return -1;
  }
  return gn;
}

/* Tries to start a GEMM group at node ni; returns 1 if made, 0 if not applicable, <0 error.
 * ln >= 0: a LayerNormalization node over the last axis whose only use is A of this node; the
 * group takes it as its prologue (A = the LayerNorm's input), made at the LayerNorm's turn. */
static int try_gemm(cg *c, int32_t ni, int32_t ln, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  bool gemm = n->op == VT_OP_Gemm;
  if (n->n_in < 2 || n->n_out != 1 || n->out[0] < 0) return 0;
  int32_t va = n->in[0], vb = n->in[1];
  const vt_value *A = &g->values[va], *B = &g->values[vb], *O = &g->values[n->out[0]];
  if (A->dtype != VT_F32 || B->dtype != VT_F32 || O->dtype != VT_F32) {
    snprintf(why, whyn, "only float32 GEMMs are generated");
    return 0;
  }
  if (!cg_is_const(g, vb) || B->rank != 2 || B->cdata->dtype != VT_F32) {
    snprintf(why, whyn, "B is not a constant 2-D float32 tensor (stage 1 generates weight GEMMs only)");
    return 0;
  }
  int transB = gemm ? (int)vt_attr_int(n, "transB", 0) : 0;
  float alpha = gemm ? vt_attr_float(n, "alpha", 1.0f) : 1.0f;
  float beta = gemm ? vt_attr_float(n, "beta", 1.0f) : 1.0f;
  if (gemm && vt_attr_int(n, "transA", 0)) { snprintf(why, whyn, "transA is not generated"); return 0; }
  if (A->rank < (gemm ? 2 : 2) || (gemm && A->rank != 2)) {
    snprintf(why, whyn, "A has rank %d", A->rank);
    return 0;
  }
  int64_t K = transB ? B->dims[1] : B->dims[0], N = transB ? B->dims[0] : B->dims[1];
  if (A->dims[A->rank - 1] != K) { snprintf(why, whyn, "inner dims differ"); return 0; }
  int64_t M = 1;
  for (int32_t d = 0; d < A->rank - 1; d++) M *= A->dims[d];
  if (cg_val_numel(O) != M * N || O->dims[O->rank - 1] != N) { snprintf(why, whyn, "unexpected output shape"); return 0; }
  cg_arg bias = {.kind = A_CONSTF, .blob = -1};
  bool has_bias = false;
  if (gemm && n->n_in >= 3 && n->in[2] >= 0 && beta != 0.0f) {
    int32_t vc = n->in[2];
    const vt_value *C = &g->values[vc];
    if (!cg_is_const(g, vc) || C->dtype != VT_F32 || C->cdata->dtype != VT_F32) {
      snprintf(why, whyn, "C is not a constant float32 tensor");
      return 0;
    }
    cg_group tmp;
    memset(&tmp, 0, sizeof tmp);
    set_group_shape(&tmp, O);
    int64_t period = 0;
    int bc = bcast_kind(&tmp, C, &period, bias.st);
    if (bc < 0) { snprintf(why, whyn, "C does not broadcast along rows"); return 0; }
    has_bias = true;
    if (bc == BC_SCALAR) {
      bias.c = beta * const_scalar(g, vc);
    } else {
      int64_t cn = cg_val_numel(C);
      float *cb = malloc((size_t)(cn ? cn : 1) * sizeof *cb);
      if (!cb) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      for (int64_t i = 0; i < cn; i++) cb[i] = beta * ((const float *)C->cdata->data)[i];
      bias.kind = A_VAL;
      bias.bc = bc;
      bias.idx = vc;
      bias.period = period;
      bias.blob = cg_add_blob(c, cb, (size_t)cn * sizeof *cb, cb);
      if (bias.blob < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  }
  int32_t lgb = -1, lbb = -1;
  float leps = 0;
  if (ln >= 0) {   /* the LayerNorm normalises exactly A's rows (K contiguous floats) */
    const vt_node *L = &g->nodes[ln];
    const vt_value *X = &g->values[L->in[0]];
    int64_t axis = vt_attr_int(L, "axis", -1);
    if (axis < 0) axis += X->rank;
    if (L->out[0] != va || X->dtype != VT_F32 || axis != X->rank - 1 || X->rank != A->rank) return 0;
    for (int32_t d = 0; d < X->rank; d++)
      if (X->dims[d] != A->dims[d]) return 0;
    int r = ln_params(c, ln, (int32_t)axis, K, &lgb, &lbb, &leps, why, whyn);
    if (r <= 0) return r;
  }
  size_t nb = 0;
  float *packed = pack_b(c, (const float *)B->cdata->data, K, N, transB, alpha, &nb);
  if (!packed) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory packing weights");
  int wb = cg_add_blob(c, packed, nb, packed);
  if (wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_GEMM, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int gi = c->n_groups - 1;
  set_group_shape(G, O);
  G->M = M; G->N = N; G->K = K;
  G->src = va;
  G->out = n->out[0];
  G->wblob = wb;
  if (ln >= 0) {
    G->ln = true;
    G->src = g->nodes[ln].in[0];
    G->gblob = lgb;
    G->bblob = lbb;
    G->eps = leps;
    if (cg_group_add_node(c, gi, ln)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  if (cg_group_add_node(c, gi, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int32_t gate = gather_gate(c, G->src, ln >= 0 ? ln : ni, K);
  if (gate >= 0) {   /* A = x[idx]: read while packing; xg is never written */
    int gg = c->node_group[gate];
    c->nobuf[G->src] = true;
    G->gate = gate;
    G->gidx = g->nodes[gate].out[1];
    G->src = g->nodes[gate].in[0];
    snprintf(c->groups[gg].note, sizeof c->groups[gg].note, "xg not written: gathered by the prologue of GEMM '%s'",
             n->name);
  }
  if (has_bias) {
    cg_step s = {.op = E_ADD, .nargs = 2, .node = ni, .out = n->out[0]};
    s.a[0] = (cg_arg){.kind = A_PRIMARY, .blob = -1};
    s.a[1] = bias;
    if (group_add_step(&c->groups[gi], &s)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    c->val_step[n->out[0]] = 0;
  } else {
    c->val_step[n->out[0]] = -2;
  }
  if (grow_group(c, gi)) return -1;
  return 1;
}

/* Tokens of a value [..., D] of static shape (all leading dims), or -1. */
int64_t cg_val_tokens(const cg *c, int32_t v) {
  const vt_value *val = &c->orig->values[v];
  if (v < 0 || val->rank < 1 || !cg_val_static(val)) return -1;
  int64_t d = val->dims[val->rank - 1];
  return d > 0 ? cg_val_numel(val) / d : -1;
}

/* Eventful scatter epilogue: absorbs TokenBuffer node bn into the GEMM group that computes its y
 * [M, O] when nothing else reads y: the GEMM stores row m of y to row idx[m] of the buffer's
 * output, a persistent buffer of the session (the buffer's kept contents: rows not selected keep
 * last frame's values). Sound only if every row is written before it is read: idx must be a
 * TokenGate's over as many tokens as the output has rows, since a gate's first run after a
 * reset (or its first run at all) selects every token (flush). 1 absorbed, 0 not (why), <0 error. */
static int try_scatter(cg *c, int32_t bn, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[bn];
  if (n->n_in < 3 || n->n_out != 1 || n->out[0] < 0 || n->in[0] < 0 || n->in[1] < 0 || n->in[2] < 0) {
    snprintf(why, whyn, "absent inputs or outputs");
    return 0;
  }
  int32_t y = n->in[0], idx = n->in[1], like = n->in[2], out = n->out[0];
  int32_t p = g->values[y].producer;
  int gi = p >= 0 ? c->node_group[p] : -1;
  if (gi < 0 || c->groups[gi].kind != G_GEMM) {
    snprintf(why, whyn, "y is not computed by a generated GEMM");
    return 0;
  }
  cg_group *G = &c->groups[gi];
  const vt_value *yv = &c->orig->values[y], *iv = &c->orig->values[idx];
  int32_t gn = g->values[idx].producer;
  int64_t ng = gn >= 0 && g->nodes[gn].op == VT_OP_TokenGate ? cg_val_tokens(c, g->nodes[gn].in[0]) : -1;
  int64_t nb = cg_val_tokens(c, like);
  if (G->sc_val >= 0) {
    snprintf(why, whyn, "its GEMM already scatters another value");
  } else if (c->is_out[y] || c->uoff[y + 1] - c->uoff[y] != 1) {
    snprintf(why, whyn, "y is read by another node too");
  } else if (G->out != y && c->val_step[y] < 0) {
    snprintf(why, whyn, "y is not a value of its GEMM's epilogue");
  } else if (yv->rank != 2 || yv->dtype != VT_F32 || yv->dims[1] != G->N || G->cols != G->N || G->rank != 2 ||
             iv->rank != 1 || iv->dtype != VT_I64 || yv->dims[0] != iv->dims[0]) {
    snprintf(why, whyn, "y is not [M, O] with idx's M rows");
  } else if (gn < 0 || g->nodes[gn].op != VT_OP_TokenGate || g->nodes[gn].n_out < 2 || g->nodes[gn].out[1] != idx ||
             gn >= G->seed) {
    snprintf(why, whyn, "idx does not come from a TokenGate that runs before the GEMM");
  } else if (ng < 0 || ng != nb) {
    snprintf(why, whyn, "the gate's tokens (%lld) are not the buffer's (%lld): its flush would not write every row",
             (long long)ng, (long long)nb);
  } else if (g->values[out].dtype != VT_F32 || !cg_val_static(&c->orig->values[out]) ||
             cg_val_numel(&g->values[out]) != nb * G->N) {
    snprintf(why, whyn, "the output is not float32 [..., %lld] over the buffer's tokens", (long long)G->N);
  } else if (c->is_out[out]) {
    snprintf(why, whyn, "the output is a graph output (the caller's memory is not kept across runs)");
  } else {
    if (cg_group_add_node(c, gi, bn)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    G = &c->groups[gi];
    G->sc_val = y;
    G->sc_out = out;
    G->sc_idx = idx;
    G->sc_node = bn;
    c->persist[out] = true;
    bool stepped = false;   /* y is the primary (no step computes it): an identity step stores it */
    for (int s = 0; s < G->n_steps; s++) stepped |= G->steps[s].out == y;
    if (!stepped) {
      cg_step st = {.op = E_ID, .nargs = 1, .node = bn, .out = y};
      st.a[0] = (cg_arg){.kind = A_PRIMARY, .blob = -1};
      if (group_add_step(G, &st)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
    return 1;
  }
  return 0;
}

/* Tries a ROW group for Softmax / LayerNormalization at node ni: 1 made, 0 not applicable. */
static int try_row(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  bool ln = n->op == VT_OP_LayerNormalization;
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  if (X->dtype != VT_F32 || Y->dtype != VT_F32 || X->rank < 1 || cg_val_numel(X) != cg_val_numel(Y)) {
    snprintf(why, whyn, "only float32 inputs of rank >= 1 are generated");
    return 0;
  }
  int64_t ver = vt_graph_opset(g, "");
  bool old = !ln && ver > 0 && ver < 13;   /* Softmax before opset 13: flatten at axis */
  int64_t axis = vt_attr_int(n, "axis", old ? 1 : -1);
  if (axis < 0) axis += X->rank;
  if (axis < 0 || axis >= X->rank) { snprintf(why, whyn, "axis out of range"); return 0; }
  if (!ln && !old && axis != X->rank - 1) { snprintf(why, whyn, "softmax over a non-last axis"); return 0; }
  int64_t cols = 1;
  for (int32_t d = (int32_t)axis; d < X->rank; d++) cols *= X->dims[d];
  int32_t gb = -1, bb = -1;
  float eps = 0;
  if (ln) {
    int r = ln_params(c, ni, (int32_t)axis, cols, &gb, &bb, &eps, why, whyn);
    if (r <= 0) return r;
  }
  cg_group *G = cg_new_group(c, G_ROW, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->row_op = ln ? ROW_LAYERNORM : ROW_SOFTMAX;
  G->src = n->in[0];
  G->out = n->out[0];
  G->total = cg_val_numel(X);
  G->cols = cols;
  G->rows = cols ? G->total / cols : 0;
  G->eps = eps;
  G->gblob = gb;
  G->bblob = bb;
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Makes a PERM (strided copy) group for node ni from arr: [0, VT_MAX_RANK) output dims, then
 * [VT_MAX_RANK, 2*VT_MAX_RANK) input strides per output axis (0 = broadcast). arr (malloc'd) is
 * owned by the group's blobs from here on. Returns 1 made, <0 error. */
static int add_perm_group(cg *c, int32_t ni, int64_t *arr, int32_t r, int64_t total, int64_t es) {
  const vt_node *n = &c->g->nodes[ni];
  int ob = cg_add_blob(c, arr, VT_MAX_RANK * sizeof *arr, NULL);   /* arr owned by the second blob */
  int sb = ob < 0 ? -1 : cg_add_blob(c, arr + VT_MAX_RANK, VT_MAX_RANK * sizeof *arr, arr);
  if (sb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_PERM, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->src = n->in[0];
  G->out = n->out[0];
  G->rank = r;
  G->total = total;
  G->cols = arr[r - 1];
  G->rows = G->cols ? G->total / G->cols : 0;
  G->esize = es;
  G->gblob = ob;
  G->bblob = sb;
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Transpose node n's permutation of rank r into perm (default: reversed axes); false when the
 * attribute is not a permutation of r axes. */
bool cg_read_perm(const vt_node *n, int32_t r, int64_t *perm) {
  const int64_t *pa = NULL;
  int32_t np = vt_attr_ints(n, "perm", &pa);
  if (np >= 0 && np != r) return false;
  bool seen[VT_MAX_RANK] = {false};
  for (int32_t d = 0; d < r; d++) {
    perm[d] = np >= 0 ? pa[d] : r - 1 - d;
    if (perm[d] < 0) perm[d] += r;
    if (perm[d] < 0 || perm[d] >= r || seen[perm[d]]) return false;
    seen[perm[d]] = true;
  }
  return true;
}

/* Tries a PERM group for Transpose at node ni: 1 made, 0 not applicable, <0 error. */
static int try_perm(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]];
  int64_t es = (int64_t)vt_dtype_size(X->dtype);
  if (X->dtype == VT_STRING || !(es == 1 || es == 2 || es == 4 || es == 8) || X->rank < 1) {
    snprintf(why, whyn, "element type or rank not supported by the generated transpose");
    return 0;
  }
  int32_t r = X->rank;
  int64_t perm[VT_MAX_RANK];
  if (!cg_read_perm(n, r, perm)) { snprintf(why, whyn, "perm is not a permutation of the %d axes", r); return 0; }
  int64_t *arr = malloc(2 * VT_MAX_RANK * sizeof *arr);
  if (!arr) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int64_t istride[VT_MAX_RANK], acc = 1;
  for (int32_t d = r - 1; d >= 0; d--) { istride[d] = acc; acc *= X->dims[d]; }
  for (int32_t d = 0; d < VT_MAX_RANK; d++) {
    arr[d] = d < r ? X->dims[perm[d]] : 1;                   /* output dims */
    arr[VT_MAX_RANK + d] = d < r ? istride[perm[d]] : 0;     /* input stride per output axis */
  }
  return add_perm_group(c, ni, arr, r, cg_val_numel(X), es);
}

/* Element strides st[4] of v (rank <= 4, contiguous) read as the 4-d shape full by numpy
 * broadcasting (0 along broadcast dims); false when v does not broadcast to full. */
static bool bcast_strides4(const vt_value *v, const int64_t full[4], int64_t st[4]) {
  int64_t s = 1;
  for (int d = 3; d >= 0; d--) {
    int md = d - (4 - v->rank);
    int64_t sz = md >= 0 ? v->dims[md] : 1;
    if (sz != 1 && sz != full[d]) return false;
    st[d] = sz == 1 ? 0 : s;
    s *= sz;
  }
  return true;
}

/* Tries an ATTN group for ai.vtopt.Attention at node ni: 1 made, 0 not applicable, <0 error. */
static int try_attn(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 3 || n->n_out != 1 || n->out[0] < 0) return 0;
  for (int k = 0; k < 3; k++)
    if (n->in[k] < 0 || g->values[n->in[k]].dtype != VT_F32 || g->values[n->in[k]].rank != 4) {
      snprintf(why, whyn, "Q, K, V are not float32 tensors of rank 4");
      return 0;
    }
  const vt_value *Q = &g->values[n->in[0]], *K = &g->values[n->in[1]], *V = &g->values[n->in[2]];
  const vt_value *O = &g->values[n->out[0]];
  int64_t B = Q->dims[0], H = Q->dims[1], Nq = Q->dims[2], Dh = Q->dims[3];
  int64_t Hkv = K->dims[1], Nk = K->dims[2], Dv = V->dims[3];
  if (K->dims[0] != B || V->dims[0] != B || K->dims[3] != Dh || V->dims[1] != Hkv || V->dims[2] != Nk ||
      Hkv <= 0 || H % Hkv != 0 || O->dtype != VT_F32 || cg_val_numel(O) != B * H * Nq * Dv) {
    snprintf(why, whyn, "inconsistent Q/K/V shapes");
    return 0;
  }
  if (Dh > VT_CG_ATT_DMAX || Dv > VT_CG_ATT_DMAX) {
    snprintf(why, whyn, "head dims %lld / %lld exceed the generated kernel's %d", (long long)Dh, (long long)Dv,
             VT_CG_ATT_DMAX);
    return 0;
  }
  int32_t vin[8] = {n->in[0], n->in[1], n->in[2], -1, -1, -1, -1, -1};
  int64_t mstr[ATT_NSTR] = {0}, kb_b = 0, kb_h = 0, kw = 0;
  const vt_value *qkvo[4] = {Q, K, V, O};
  for (int k = 0; k < 4; k++) {   /* contiguous [B, H, N, D] until cg_plan_attn_layout finds better */
    int64_t n = k == 3 ? Nq : qkvo[k]->dims[2], dd = k == 3 ? Dv : qkvo[k]->dims[3];
    int64_t h = k == 3 ? H : qkvo[k]->dims[1];
    mstr[12 + 3 * k + 2] = dd;
    mstr[12 + 3 * k + 1] = n * dd;
    mstr[12 + 3 * k] = h * n * dd;
  }
  if (n->n_in > 3 && n->in[3] >= 0) {
    const vt_value *M = &g->values[n->in[3]];
    if ((M->dtype != VT_F32 && M->dtype != VT_BOOL) || M->rank > 4) {
      snprintf(why, whyn, "mask is not a float32 or bool tensor of rank <= 4");
      return 0;
    }
    if (!bcast_strides4(M, (int64_t[]){B, H, Nq, Nk}, mstr)) {
      snprintf(why, whyn, "mask does not broadcast to [B,H,Nq,Nk]");
      return 0;
    }
    vin[M->dtype == VT_F32 ? 3 : 4] = n->in[3];
  }
  if (n->n_in > 4 && n->in[4] >= 0) {
    const vt_value *KB = &g->values[n->in[4]];
    if (KB->dtype != VT_F32 || KB->rank != 3 || KB->dims[0] != B || (KB->dims[1] != 1 && KB->dims[1] != H) ||
        KB->dims[2] != Nk) {
      snprintf(why, whyn, "key_bias is not a float32 [B,1|H,Nk] tensor");
      return 0;
    }
    vin[5] = n->in[4];
    kb_b = KB->dims[1] * Nk;
    kb_h = KB->dims[1] == 1 ? 0 : Nk;
  }
  bool has_r = n->n_in > 5 && n->in[5] >= 0, has_c = n->n_in > 6 && n->in[6] >= 0;
  if (has_r != has_c) { snprintf(why, whyn, "only one of bias_rows and bias_cols is given"); return 0; }
  if (has_r) {   /* decomposed bias: bias_rows [.., Nq, kh], bias_cols [.., Nq, kw], kh * kw = Nk */
    const vt_value *R = &g->values[n->in[5]], *C = &g->values[n->in[6]];
    if (R->dtype != VT_F32 || C->dtype != VT_F32 || R->rank < 1 || R->rank > 4 || C->rank < 1 || C->rank > 4) {
      snprintf(why, whyn, "bias_rows / bias_cols are not float32 tensors of rank 1 to 4");
      return 0;
    }
    int64_t kh = R->dims[R->rank - 1];
    kw = C->dims[C->rank - 1];
    if (kw <= 0 || kh * kw != Nk) { snprintf(why, whyn, "bias_rows / bias_cols do not span the %lld keys", (long long)Nk); return 0; }
    if (!bcast_strides4(R, (int64_t[]){B, H, Nq, kh}, mstr + 4) || !bcast_strides4(C, (int64_t[]){B, H, Nq, kw}, mstr + 8)) {
      snprintf(why, whyn, "bias_rows / bias_cols do not broadcast to [B,H,Nq,k]");
      return 0;
    }
    vin[6] = n->in[5];
    vin[7] = n->in[6];
  }
  int32_t blobs[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  for (int k = 0; k < 8; k++)
    if (vin[k] >= 0 && cg_is_const(g, vin[k])) {
      const vt_tensor *t = g->values[vin[k]].cdata;
      if (t->dtype != g->values[vin[k]].dtype || !t->data) { snprintf(why, whyn, "unexpected constant input"); return 0; }
      blobs[k] = cg_add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
      if (blobs[k] < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  int64_t *ms = malloc(sizeof mstr);
  if (!ms) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  memcpy(ms, mstr, sizeof mstr);
  int mb = cg_add_blob(c, ms, sizeof mstr, ms);
  if (mb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_ATTN, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  memcpy(G->att_v, vin, sizeof vin);
  memcpy(G->att_blob, blobs, sizeof blobs);
  G->out = n->out[0];
  G->total = cg_val_numel(O);
  G->aH = H; G->aHkv = Hkv; G->aNq = Nq; G->aNk = Nk; G->aDh = Dh; G->aDv = Dv;
  G->kb_b = kb_b; G->kb_h = kb_h; G->aKw = kw;
  G->gblob = mb;
  float scale = vt_attr_float(n, "scale", 0.0f);
  G->scale = scale != 0.0f ? scale : (Dh > 0 ? 1.0f / sqrtf((float)Dh) : 1.0f);
  G->causal = (int)vt_attr_int(n, "causal", 0);
  G->rows = B * H * ((Nq + VT_CG_ATT_QB - 1) / VT_CG_ATT_QB);   /* work units: (b, h, query block) */
  G->M = Nq; G->N = Nk; G->K = Dh;
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* The per-axis start and step of Slice node n (opset >= 10: starts, ends, axes, steps inputs, all
 * constant; positive steps) over x's dims: start[d] (normalised, clamped) and step[d] (1 where
 * the axis is not sliced); the output's dims say how many elements each axis keeps. False when
 * it is not such a Slice. */
bool cg_slice_params(const vt_graph *g, const vt_node *n, const vt_value *x, int64_t *start, int64_t *step) {
  for (int32_t d = 0; d < x->rank; d++) { start[d] = 0; step[d] = 1; }
  if (n->n_in < 3 || n->in[1] < 0 || n->in[2] < 0) return false;
  const vt_tensor *t[4] = {NULL, NULL, NULL, NULL};
  for (int k = 1; k < 5 && k < n->n_in; k++) {
    if (n->in[k] < 0) continue;
    if (!cg_is_const(g, n->in[k])) return false;
    t[k - 1] = g->values[n->in[k]].cdata;
    if (t[k - 1]->dtype != VT_I64 && t[k - 1]->dtype != VT_I32) return false;
  }
  int64_t na = vt_tensor_numel(t[0]);
  if (na > VT_MAX_RANK || (t[2] && vt_tensor_numel(t[2]) != na) || (t[3] && vt_tensor_numel(t[3]) != na)) return false;
  for (int64_t i = 0; i < na; i++) {
    int64_t a = t[2] ? vt_tensor_get_i64(t[2], i) : i, s0 = vt_tensor_get_i64(t[0], i);
    int64_t st = t[3] ? vt_tensor_get_i64(t[3], i) : 1;
    if (a < 0) a += x->rank;
    if (a < 0 || a >= x->rank || st <= 0) return false;
    int64_t dim = x->dims[a];
    if (s0 < 0) s0 += dim;
    start[a] = s0 < 0 ? 0 : s0 > dim ? dim : s0;
    step[a] = st;
  }
  return true;
}

/* Tries a ROW group for ReduceMean/Sum/Max/Min of float32 whose reduced axes are the trailing
 * ones (dims of size 1 aside), given by a constant axes input or the axes attribute: one output
 * per row of the input. 1 made, 0 not applicable (why says so), <0 error. */
static int try_reduce(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  if (X->dtype != VT_F32 || Y->dtype != VT_F32 || X->rank < 1) {
    snprintf(why, whyn, "only float32 inputs of rank >= 1 are generated");
    return 0;
  }
  int64_t ax[VT_MAX_RANK];
  int64_t na = 0;
  if (n->n_in > 1 && n->in[1] >= 0) {
    const vt_tensor *t = cg_is_const(g, n->in[1]) ? g->values[n->in[1]].cdata : NULL;
    if (!t || (t->dtype != VT_I64 && t->dtype != VT_I32) || vt_tensor_numel(t) > VT_MAX_RANK) {
      snprintf(why, whyn, "axes are not a constant int64/int32 list");
      return 0;
    }
    na = vt_tensor_numel(t);
    for (int64_t i = 0; i < na; i++) ax[i] = vt_tensor_get_i64(t, i);
  } else {
    const int64_t *v = NULL;
    int32_t k = vt_attr_ints(n, "axes", &v);
    if (k > VT_MAX_RANK) { snprintf(why, whyn, "too many axes"); return 0; }
    for (int32_t i = 0; i < k; i++) ax[i] = v[i];
    na = k < 0 ? 0 : k;
  }
  if (na == 0 && vt_attr_int(n, "noop_with_empty_axes", 0)) { snprintf(why, whyn, "a no-op reduction"); return 0; }
  bool red[VT_MAX_RANK];
  for (int32_t d = 0; d < X->rank; d++) red[d] = na == 0;
  for (int64_t i = 0; i < na; i++) {
    int64_t a = ax[i] < 0 ? ax[i] + X->rank : ax[i];
    if (a < 0 || a >= X->rank) { snprintf(why, whyn, "axis out of range"); return 0; }
    red[a] = true;
  }
  int32_t first = X->rank;   /* the trailing run of reduced (or size-1) dims */
  while (first > 0 && (red[first - 1] || X->dims[first - 1] == 1)) first--;
  for (int32_t d = 0; d < first; d++)
    if (red[d] && X->dims[d] != 1) {
      snprintf(why, whyn, "the reduced axes are not the trailing ones");
      return cg_try_reduce_mid(c, ni, red, why, whyn);
    }
  int64_t cols = 1;
  for (int32_t d = first; d < X->rank; d++) cols *= X->dims[d];
  if (cols <= 0 || cg_val_numel(Y) * cols != cg_val_numel(X)) { snprintf(why, whyn, "empty or inconsistent reduction"); return 0; }
  cg_group *G = cg_new_group(c, G_ROW, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->row_op = n->op == VT_OP_ReduceMean ? ROW_MEAN : n->op == VT_OP_ReduceSum ? ROW_SUM
              : n->op == VT_OP_ReduceMax ? ROW_MAX : ROW_MIN;
  G->src = n->in[0];
  G->out = n->out[0];
  G->total = cg_val_numel(X);
  G->cols = cols;
  G->rows = G->total / cols;
  G->gblob = G->bblob = -1;
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* [outer, axis, inner] view of value v around axis (inner in elements). */
static void axis_view(const vt_value *v, int32_t axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int32_t d = 0; d < axis; d++) *outer *= v->dims[d];
  for (int32_t d = axis + 1; d < v->rank; d++) *inner *= v->dims[d];
}

int cg_norm_axis(int64_t axis, int32_t rank) {
  if (axis < 0) axis += rank;
  return axis < 0 || axis >= rank ? -1 : (int)axis;
}

/* Tries a BLOCKS group (Split, Concat, Gather with constant indices) at node ni: each becomes a
 * few row-strided copies over [outer, axis, inner] views. 1 made, 0 not applicable, <0 error. */
static int try_blocks(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->n_out < 1) return 0;
  for (int32_t k = 0; k < n->n_out; k++)
    if (n->out[k] < 0) { snprintf(why, whyn, "an output is absent"); return 0; }
  cg_copy cp[64];
  int ncp = 0;
  int32_t X = n->in[0];
  if (X < 0) return 0;
  const vt_value *xv = &g->values[X];
  int64_t es = (int64_t)vt_dtype_size(xv->dtype);
  if (n->op == VT_OP_Split) {
    int axis = cg_norm_axis(vt_attr_int(n, "axis", 0), xv->rank);
    if (axis < 0 || n->n_out > 64) { snprintf(why, whyn, "axis out of range or too many outputs"); return 0; }
    int64_t outer, inner, start = 0;
    axis_view(xv, axis, &outer, &inner);
    for (int32_t o = 0; o < n->n_out; o++) {
      const vt_value *ov = &g->values[n->out[o]];
      if (ov->rank != xv->rank || ov->dtype != xv->dtype) { snprintf(why, whyn, "unexpected output type"); return 0; }
      int64_t len = ov->dims[axis];
      cp[ncp++] = (cg_copy){X, n->out[o], -1, start * inner * es, 0, outer, len * inner * es,
                            xv->dims[axis] * inner * es, len * inner * es};
      start += len;
    }
    if (start != xv->dims[axis]) { snprintf(why, whyn, "the split sizes do not cover the axis"); return 0; }
  } else if (n->op == VT_OP_Concat) {
    const vt_value *ov = &g->values[n->out[0]];
    int axis = cg_norm_axis(vt_attr_int(n, "axis", 0), ov->rank);
    if (axis < 0 || n->n_in > 64) { snprintf(why, whyn, "axis out of range or too many inputs"); return 0; }
    int64_t outer, inner, start = 0;
    axis_view(ov, axis, &outer, &inner);
    for (int32_t k = 0; k < n->n_in; k++) {
      int32_t v = n->in[k];
      if (v < 0) continue;
      const vt_value *iv = &g->values[v];
      if (iv->rank != ov->rank || iv->dtype != ov->dtype) { snprintf(why, whyn, "unexpected input type"); return 0; }
      int64_t len = iv->dims[axis];
      if (len) cp[ncp++] = (cg_copy){v, n->out[0], -1, 0, start * inner * es, outer, len * inner * es,
                                     len * inner * es, ov->dims[axis] * inner * es};
      start += len;
    }
    if (start != ov->dims[axis]) { snprintf(why, whyn, "the inputs do not fill the axis"); return 0; }
  } else if (n->op == VT_OP_Slice) {   /* one sliced axis, step 1: rows of a contiguous run */
    const vt_value *ov = &g->values[n->out[0]];
    int64_t st0[VT_MAX_RANK], stp[VT_MAX_RANK];
    if (!cg_slice_params(g, n, xv, st0, stp) || ov->rank != xv->rank) {
      snprintf(why, whyn, "starts/ends/axes/steps are not constant with positive steps");
      return 0;
    }
    int axis = -1;
    for (int32_t d = 0; d < xv->rank; d++)
      if (ov->dims[d] != xv->dims[d] || st0[d] != 0) {
        if (axis >= 0 || stp[d] != 1) { snprintf(why, whyn, "slices more than one axis, or with a step"); return 0; }
        axis = d;
      }
    if (axis < 0) axis = 0;   /* the whole tensor */
    int64_t outer, inner;
    axis_view(xv, axis, &outer, &inner);
    int64_t len = ov->dims[axis];
    cp[ncp++] = (cg_copy){X, n->out[0], -1, st0[axis] * inner * es, 0, outer, len * inner * es,
                          xv->dims[axis] * inner * es, len * inner * es};
  } else {   /* Gather */
    if (n->n_in != 2 || !cg_is_const(g, n->in[1])) { snprintf(why, whyn, "indices are not constant"); return 0; }
    const vt_tensor *it = g->values[n->in[1]].cdata;
    if (it->dtype != VT_I64 && it->dtype != VT_I32) { snprintf(why, whyn, "indices are not int64/int32"); return 0; }
    int axis = cg_norm_axis(vt_attr_int(n, "axis", 0), xv->rank);
    int64_t ni_ = vt_tensor_numel(it);
    if (axis < 0 || ni_ > 64) { snprintf(why, whyn, "axis out of range or more than 64 indices"); return 0; }
    int64_t outer, inner, D = xv->dims[axis];
    axis_view(xv, axis, &outer, &inner);
    for (int64_t p = 0; p < ni_; p++) {
      int64_t ix = it->dtype == VT_I64 ? ((const int64_t *)it->data)[p] : ((const int32_t *)it->data)[p];
      if (ix < 0) ix += D;
      if (ix < 0 || ix >= D) { snprintf(why, whyn, "index out of range"); return 0; }
      cp[ncp++] = (cg_copy){X, n->out[0], -1, ix * inner * es, p * inner * es, outer, inner * es, D * inner * es,
                            ni_ * inner * es};
    }
  }
  for (int i = 0; i < ncp; i++)
    if (cg_is_const(g, cp[i].src)) {
      const vt_tensor *t = g->values[cp[i].src].cdata;
      cp[i].sblob = cg_add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
      if (cp[i].sblob < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  cg_group *G = cg_new_group(c, G_BLOCKS, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->copies = malloc((size_t)(ncp ? ncp : 1) * sizeof *G->copies);
  if (!G->copies) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  memcpy(G->copies, cp, (size_t)ncp * sizeof *cp);
  G->n_copies = ncp;
  G->src = X;
  G->out = n->out[0];
  for (int i = 0; i < ncp; i++) G->total += cp[i].rows * cp[i].bytes;
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* The optional bias (input 2) of a Conv / ConvTranspose node with Cout output channels as a blob
 * (*bb, -1 without one): 1 ok, 0 not generated (why: not a constant float32 [Cout]), <0 error. */
int cg_conv_bias_blob(cg *c, const vt_node *n, int64_t Cout, int32_t *bb, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  *bb = -1;
  if (n->n_in <= 2 || n->in[2] < 0) return 1;
  const vt_value *Bv = &g->values[n->in[2]];
  if (!cg_is_const(g, n->in[2]) || Bv->cdata->dtype != VT_F32 || cg_val_numel(Bv) != Cout) {
    snprintf(why, whyn, "bias is not a constant float32 [Cout] tensor");
    return 0;
  }
  *bb = cg_add_blob(c, Bv->cdata->data, vt_tensor_nbytes(Bv->cdata), NULL);
  if (*bb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Tries a CONV group (2-D, group 1, float32, constant weights: im2col + GEMM with the weights
 * packed at compile time) at node ni: 1 made, 0 not applicable, <0 error. */
static int try_conv(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 2 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Wv = &g->values[n->in[1]], *Y = &g->values[n->out[0]];
  if (X->dtype != VT_F32 || Y->dtype != VT_F32 || X->rank != 4 || Y->rank != 4 || !cg_is_const(g, n->in[1]) ||
      Wv->rank != 4 || Wv->cdata->dtype != VT_F32) {
    snprintf(why, whyn, "only 2-D float32 convolutions with constant weights are generated");
    return 0;
  }
  if (vt_attr_int(n, "group", 1) != 1) { snprintf(why, whyn, "grouped convolution is not generated"); return 0; }
  int64_t Nb = X->dims[0], C = X->dims[1], H = X->dims[2], W = X->dims[3];
  int64_t Cout = Wv->dims[0], kh = Wv->dims[2], kw = Wv->dims[3], OH = Y->dims[2], OW = Y->dims[3];
  if (Wv->dims[1] != C || Y->dims[0] != Nb || Y->dims[1] != Cout) { snprintf(why, whyn, "inconsistent shapes"); return 0; }
  const int64_t *a = NULL;
  int64_t st[2] = {1, 1}, dl[2] = {1, 1}, pd[4] = {0, 0, 0, 0};
  if (vt_attr_ints(n, "strides", &a) == 2) { st[0] = a[0]; st[1] = a[1]; }
  if (vt_attr_ints(n, "dilations", &a) == 2) { dl[0] = a[0]; dl[1] = a[1]; }
  if (vt_attr_ints(n, "pads", &a) == 4) memcpy(pd, a, sizeof pd);
  const char *ap = vt_attr_str(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    int64_t sp[2] = {H, W}, op[2] = {OH, OW}, ks[2] = {kh, kw};
    for (int d = 0; d < 2; d++) {
      int64_t tot = (op[d] - 1) * st[d] + (ks[d] - 1) * dl[d] + 1 - sp[d];
      if (tot < 0) tot = 0;
      pd[d] = !strcmp(ap, "SAME_UPPER") ? tot / 2 : tot - tot / 2;
    }
  } else if (!strcmp(ap, "VALID")) {
    pd[0] = pd[1] = 0;
  } else if (strcmp(ap, "NOTSET")) {
    snprintf(why, whyn, "auto_pad %s is not generated", ap);
    return 0;
  }
  if (st[0] < 1 || st[1] < 1 || dl[0] < 1 || dl[1] < 1) { snprintf(why, whyn, "bad strides / dilations"); return 0; }
  int64_t K = C * kh * kw;
  int64_t rb = VT_CG_CONV_SCRATCH / (K + Cout) / c->tgt.isa->mr * c->tgt.isa->mr;
  if (rb < c->tgt.isa->mr) { snprintf(why, whyn, "C*kh*kw + Cout = %lld is too large for the generated kernel", (long long)(K + Cout)); return 0; }
  int32_t bb = -1;
  int brc = cg_conv_bias_blob(c, n, Cout, &bb, why, whyn);
  if (brc <= 0) return brc;
  size_t nb = 0;   /* W is [Cout][K]: B = W^T, i.e. transB */
  float *packed = pack_b(c, (const float *)Wv->cdata->data, K, Cout, 1, 1.0f, &nb);
  if (!packed) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory packing weights");
  int wb = cg_add_blob(c, packed, nb, packed);
  if (wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_CONV, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->src = n->in[0];
  G->out = n->out[0];
  G->M = Nb * OH * OW; G->N = Cout; G->K = K;
  G->wblob = wb;
  G->gblob = bb;
  G->total = cg_val_numel(Y);
  G->rows = (G->M + rb - 1) / rb;
  int64_t cv[14] = {C, H, W, OH, OW, kh, kw, st[0], st[1], dl[0], dl[1], pd[0], pd[1], rb};
  memcpy(G->conv, cv, sizeof cv);
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Tries a PERM group for Expand at node ni (a strided copy whose broadcast axes have input
 * stride 0): 1 made, 0 not applicable, <0 error. */
static int try_expand(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  int64_t es = (int64_t)vt_dtype_size(X->dtype);
  if (!(es == 1 || es == 2 || es == 4 || es == 8) || Y->rank < 1 || X->rank > Y->rank || X->dtype != Y->dtype) {
    snprintf(why, whyn, "element type or rank not supported by the generated expand");
    return 0;
  }
  int32_t r = Y->rank;
  int64_t *arr = malloc(2 * VT_MAX_RANK * sizeof *arr);
  if (!arr) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int64_t acc = 1;
  for (int32_t d = VT_MAX_RANK - 1; d >= 0; d--) {
    arr[d] = d < r ? Y->dims[d] : 1;
    int32_t xd = d - (r - X->rank);
    int64_t xs = xd >= 0 && d < r ? X->dims[xd] : 1;
    arr[VT_MAX_RANK + d] = d < r && xd >= 0 && xs != 1 ? acc : 0;
    if (d < r && xd >= 0 && xs != 1 && xs != Y->dims[d]) {
      free(arr);
      snprintf(why, whyn, "input does not broadcast to the output");
      return 0;
    }
    if (d < r && xd >= 0) acc *= xs;
  }
  return add_perm_group(c, ni, arr, r, cg_val_numel(Y), es);
}

bool cg_is_copy_op(int op) {
  return op == VT_OP_Reshape || op == VT_OP_Flatten || op == VT_OP_Squeeze || op == VT_OP_Unsqueeze ||
         op == VT_OP_Identity;
}

int cg_plan(cg *c) {
  const vt_graph *g = c->g;
  /* every value in play must have a static shape, or run-time dims with known bounds that a node
   * computes (graph inputs and outputs: static) */
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &c->orig->values[v];
    bool used = val->producer >= 0 || (val->flags & (VT_VAL_INPUT | VT_VAL_OUTPUT));
    if (!used) continue;
    bool bounded = val->rank >= 0 && !(val->flags & (VT_VAL_INPUT | VT_VAL_OUTPUT));
    for (int32_t d = 0; d < val->rank && bounded; d++) bounded = dim_runtime_ok(c, val->dims[d]);
    if (!cg_val_static(val) && !bounded) {
      char buf[256];
      vt_value_type_str(c->orig, val, buf, sizeof buf);
      bool inputs_static = true;
      for (int32_t i = 0; i < g->n_inputs; i++) inputs_static &= cg_val_static(&c->orig->values[g->inputs[i]]);
      if (inputs_static)
        return vt_errorf(c->e, VT_ERR_MODEL,
                         "%s: value '%s' has shape %s, unknown at compile time although every input dim is "
                         "pinned (data-dependent shape%s): compiled code needs static shapes, or run-time dims with "
                         "a known upper bound inside the graph",
                         g->path, val->name, buf, (val->flags & VT_VAL_OUTPUT) ? " of a graph output" : "");
      return vt_errorf(c->e, VT_ERR_MODEL,
                       "%s: value '%s' has shape %s: the JIT compiles static shapes only; pin dims with --dim SYM=N",
                       g->path, val->name, buf);
    }
    if (val->dtype == VT_STRING || val->dtype == VT_UNDEFINED || (vt_dtype_size(val->dtype) == 0))
      return vt_errorf(c->e, VT_ERR_MODEL, "%s: value '%s' has dtype %s, which the JIT does not support",
                       g->path, val->name, vt_dtype_name(val->dtype));
    if (cg_val_numel(&g->values[v]) < 0)
      return vt_errorf(c->e, VT_ERR_MODEL, "%s: value '%s' is too large", g->path, val->name);
  }
  for (int32_t ni = 0; ni < g->n_nodes; ni++) {
    if (c->node_group[ni] >= 0) continue;
    const vt_node *n = &g->nodes[ni];
    char why[200] = "";
    bool dyn = node_dynamic(c, ni);
    bool dyn_ok = n->op == VT_OP_MatMul || n->op == VT_OP_Gemm || n->op == VT_OP_Softmax ||
                  n->op == VT_OP_LayerNormalization || (vt_ops[n->op].flags & VT_OPF_ELEMENTWISE) ||
                  cg_is_copy_op(n->op);
    if (dyn && n->op == VT_OP_Gemm && n->n_in >= 3 && n->in[2] >= 0 && n->n_out >= 1 && n->out[0] >= 0) {
      const vt_value *cv = &g->values[n->in[2]], *ov = &g->values[n->out[0]];
      int64_t cn = cg_val_numel(cv);
      dyn_ok = cn == 1 || (cv->rank >= 1 && cn == ov->dims[ov->rank - 1]);   /* C broadcasts along rows */
    }
    if (dyn && (vt_ops[n->op].flags & VT_OPF_ELEMENTWISE) && n->n_out == 1 && n->out[0] >= 0) {
      const vt_value *ov = &g->values[n->out[0]];
      dyn_ok = ov->rank >= 1 && const_width(c, n->out[0], ov->dims[ov->rank - 1]);
    }
    /* ops only the convolution family generates (cg_lower_conv.c) */
    bool conv_family_only = n->op == VT_OP_MaxPool || n->op == VT_OP_AveragePool ||
                            n->op == VT_OP_GlobalAveragePool || n->op == VT_OP_ConvTranspose ||
                            n->op == VT_OP_Resize || n->op == VT_OP_Upsample;
    if (n->op == VT_OP_Mul && !dyn) {   /* a squeeze-excite scale read by a 1x1 Conv: that Conv's prologue */
      int r = cg_try_conv_family(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
      why[0] = 0;
    }
    bool has_gen = n->op == VT_OP_Split || n->op == VT_OP_Concat || n->op == VT_OP_Gather || n->op == VT_OP_Slice ||
                   n->op == VT_OP_Conv || conv_family_only ||
                   n->op == VT_OP_Expand || n->op == VT_OP_Attention || n->op == VT_OP_Transpose;
    char note[160] = "";
    if (n->op == VT_OP_TokenBuffer) {   /* absorbed into its GEMM's epilogue when that is sound */
      char bwhy[140] = "";
      int r = try_scatter(c, ni, bwhy, sizeof bwhy);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
      snprintf(note, sizeof note, "not absorbed: %s", bwhy);
    } else if (n->op == VT_OP_TokenGate) {
      snprintf(note, sizeof note, "xg written: it is not the A of a generated GEMM");
    }
    if (vt_ops[n->op].flags & VT_OPF_STATEFUL) {
      snprintf(why, sizeof why, "stateful op: its interpreter kernel runs in place with the session's state");
    } else if (dyn && !dyn_ok) {
      if (has_gen)
        snprintf(why, sizeof why, "a shape depends on a run-time dim: %s with run-time dims is not generated yet",
                 vt_ops[n->op].name);
      else
        snprintf(why, sizeof why, "no generated kernel for %s yet", vt_ops[n->op].name);
    } else if (n->op == VT_OP_MatMul || n->op == VT_OP_Gemm) {
      int r = try_gemm(c, ni, -1, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Split || n->op == VT_OP_Concat || n->op == VT_OP_Gather || n->op == VT_OP_Slice) {
      int r = try_blocks(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Conv || conv_family_only) {
      int r = cg_try_conv_family(c, ni, why, sizeof why);   /* direct, 1x1, pools; else im2col below */
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
      if (conv_family_only) r = 0;
      else r = try_conv(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Expand) {
      int r = try_expand(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Attention) {
      int r = try_attn(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Transpose) {
      int r = try_perm(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_ReduceMean || n->op == VT_OP_ReduceSum || n->op == VT_OP_ReduceMax ||
               n->op == VT_OP_ReduceMin) {
      int r = try_reduce(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Softmax || n->op == VT_OP_LayerNormalization) {
      /* a LayerNorm whose only use is a weight GEMM's A becomes that GEMM's prologue */
      int32_t y = n->n_out >= 1 ? n->out[0] : -1;
      if (n->op == VT_OP_LayerNormalization && y >= 0 && !c->is_out[y] && c->uoff[y + 1] - c->uoff[y] == 1) {
        int32_t un = c->ulist[c->uoff[y]];
        const vt_node *u = &g->nodes[un];
        if ((u->op == VT_OP_MatMul || u->op == VT_OP_Gemm) && u->n_in >= 2 && u->in[0] == y && u->in[1] != y &&
            c->node_group[un] < 0) {
          char gwhy[200] = "";
          int r = try_gemm(c, un, ni, gwhy, sizeof gwhy);
          if (r < 0) return VT_ERR_MODEL;
          if (r == 1) continue;
        }
      }
      int r = try_row(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      cg_group *R = r == 1 ? &c->groups[c->n_groups - 1] : NULL;
      if (R && R->dref >= 0 && !const_width(c, R->dref, R->cols)) {   /* a run-time dim among the row's */
        R->kind = G_FALLBACK;
        snprintf(R->why, sizeof R->why, "%s normalises over a run-time dim", vt_ops[n->op].name);
        continue;
      }
      if (r == 1) continue;
    } else if (vt_ops[n->op].flags & VT_OPF_ELEMENTWISE) {
      if (n->n_out == 1 && n->out[0] >= 0 && g->values[n->out[0]].dtype == VT_F32) {
        cg_group *G = cg_new_group(c, G_EW, ni);
        if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
        int gi = c->n_groups - 1;
        set_group_shape(G, &g->values[n->out[0]]);
        cg_step s;
        if (ew_step(c, gi, ni, &s)) {
          if (cg_group_add_node(c, gi, ni) || group_add_step(&c->groups[gi], &s))
            return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
          c->val_step[s.out] = 0;
          if (grow_group(c, gi)) return VT_ERR_MODEL;
          continue;
        }
        c->n_groups--;
        snprintf(why, sizeof why, "operands or op not supported by the elementwise generator");
      } else {
        snprintf(why, sizeof why, "only float32 elementwise ops are generated");
      }
    } else if (cg_is_copy_op(n->op) && n->n_in >= 1 && n->in[0] >= 0 && n->n_out == 1 && n->out[0] >= 0) {
      cg_group *G = cg_new_group(c, G_COPY, ni);
      if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      G->src = n->in[0];
      G->out = n->out[0];
      G->total = (int64_t)vt_dtype_size(g->values[n->out[0]].dtype) * cg_val_numel(&g->values[n->out[0]]);
      if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      continue;
    } else {
      snprintf(why, sizeof why, "no generated kernel for %s yet", vt_ops[n->op].name);
    }
    cg_group *G = cg_new_group(c, G_FALLBACK, ni);
    if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    snprintf(G->why, sizeof G->why, "%s", why);
    snprintf(G->note, sizeof G->note, "%s", note);
    if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  /* which step results must be written out */
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    for (int s = 0; s < G->n_steps; s++) {
      cg_step *st = &G->steps[s];
      int32_t v = st->out;
      if (v < 0) continue;
      st->store = c->is_out[v];
      for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++)
        if (c->node_group[c->ulist[u]] != gi) st->store = true;
    }
  }
  if (cg_plan_attn_layout(c)) return VT_ERR_MODEL;
  cg_plan_aliases(c);
  return VT_OK;
}

/* eventful.c — the `eventful` pass: Eventful Transformers (Dutson et al., ICCV 2023), token-wise
 * level. A token-wise region is a set of nodes that starts with a MatMul by a constant 2-D
 * matrix (or, with gate=before_ln, a LayerNormalization over the last axis feeding one) and
 * grows over every later node that reads only region values and constants and acts on each
 * token (row of the last axis) independently: MatMul by constant matrices, elementwise ops with
 * per-channel constants, unary activations, LayerNormalization over the last axis. The region
 * must end in exactly one value read outside it. It becomes
 *   xg, idx = ai.vtopt.TokenGate(x)        x: the region's input [..., D], all leading dims = tokens
 *   ... region on xg [M, D] ...
 *   y' = ai.vtopt.TokenBuffer(y, idx, x)    full [..., O] again, read by everything y fed
 * In vitstream/ViTDet blocks that gives three pairs per block: QKV projection, output projection
 * and the whole MLP (fc1, GELU, fc2), with the buffers before both residual adds.
 * The sparse q.k^T and delta A.v updates of the paper's global blocks are not built: attention
 * runs dense on the buffered projections. Only inputs of rank >= 3 are gated (a [B, D] head is
 * not per token). */
#include "passes_internal.h"
#include "eventful.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define EVT_SCAN 256   /* nodes scanned past the last region node */

typedef struct {
  vt_graph *g;
  FILE *explain;
  uint8_t *claimed;    /* per node: in a region */
  uint8_t *inr;        /* per node (the first nn0): in the region being grown or rewritten */
  int32_t nn0;         /* nodes before the rewrite (later ones are the inserted gates/buffers) */
  uint8_t *rval;       /* per value: produced inside the region being grown */
} ectx;

static void explainf(ectx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void explainf(ectx *c, const char *fmt, ...) {
  if (!c->explain) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(c->explain, "  eventful: ");
  vfprintf(c->explain, fmt, ap);
  fprintf(c->explain, "\n");
  va_end(ap);
}

static bool is_const(const vt_graph *g, int32_t v) { return v >= 0 && (g->values[v].flags & VT_VAL_CONST); }

/* A constant that broadcasts along the last axis only (scalar, [C], [1, C]). */
static bool channel_const(const vt_graph *g, int32_t v) {
  if (!is_const(g, v)) return false;
  const vt_value *cv = &g->values[v];
  return cv->rank <= 1 || (cv->rank == 2 && cv->dims[0] == 1);
}

/* A MatMul x[..., K] @ W[K, O] with W constant and x of rank >= 3. */
static bool const_matmul(const vt_graph *g, const vt_node *n) {
  if (n->op != VT_OP_MatMul || n->n_in < 2 || n->in[0] < 0 || !is_const(g, n->in[1])) return false;
  return g->values[n->in[1]].rank == 2 && g->values[n->in[0]].rank >= 3;
}

static bool last_axis_ln(const vt_graph *g, const vt_node *n) {
  if (n->op != VT_OP_LayerNormalization || n->in[0] < 0 || n->n_out < 1) return false;
  int32_t r = g->values[n->in[0]].rank;
  int64_t ax = vt_attr_int(n, "axis", -1);
  if (r < 1 || (ax != -1 && ax != r - 1)) return false;
  for (int32_t k = 1; k < n->n_in; k++)
    if (n->in[k] >= 0 && !channel_const(g, n->in[k])) return false;
  for (int32_t o = 1; o < n->n_out; o++)
    if (n->out[o] >= 0) return false;   /* mean / inv-std outputs are not per-row [.., D] */
  return true;
}

static bool unary_tokenwise(int op) {
  switch (op) {
    case VT_OP_Erf: case VT_OP_Relu: case VT_OP_Sigmoid: case VT_OP_Tanh: case VT_OP_Gelu: case VT_OP_MsGelu:
    case VT_OP_Sqrt: case VT_OP_Exp: case VT_OP_Neg: case VT_OP_Abs: case VT_OP_Identity: case VT_OP_LeakyRelu:
    case VT_OP_HardSigmoid: case VT_OP_HardSwish: case VT_OP_Elu: case VT_OP_Selu: case VT_OP_Softplus:
    case VT_OP_Mish: case VT_OP_Reciprocal: case VT_OP_Dropout:
      return true;
    default:
      return false;
  }
}

/* Does node n act on region values token by token, with every other input a per-channel
 * constant? (At least one input must be a region value.) */
static bool tokenwise_member(const ectx *c, const vt_node *n) {
  const vt_graph *g = c->g;
  int nreg = 0;
  for (int32_t k = 0; k < n->n_in; k++) {
    int32_t v = n->in[k];
    if (v < 0) continue;
    if (c->rval[v]) nreg++;
    else if (!is_const(g, v)) return false;
  }
  if (nreg == 0 || n->n_out < 1 || n->out[0] < 0) return false;
  if (n->op == VT_OP_MatMul) return c->rval[n->in[0]] && is_const(g, n->in[1]) && g->values[n->in[1]].rank == 2;
  if (n->op == VT_OP_LayerNormalization) return last_axis_ln(g, n) && c->rval[n->in[0]];
  if (unary_tokenwise(n->op)) {
    for (int32_t k = 1; k < n->n_in; k++)
      if (n->in[k] >= 0 && !channel_const(g, n->in[k])) return false;
    for (int32_t o = 1; o < n->n_out; o++)
      if (n->out[o] >= 0) return false;
    return true;
  }
  if (n->op == VT_OP_Add || n->op == VT_OP_Sub || n->op == VT_OP_Mul || n->op == VT_OP_Div || n->op == VT_OP_Pow) {
    if (n->n_in != 2) return false;
    int32_t a = n->in[0], b = n->in[1];
    if (c->rval[a] && c->rval[b]) {
      const vt_value *va = &g->values[a], *vb = &g->values[b];
      if (va->rank != vb->rank) return false;
      for (int32_t d = 0; d < va->rank; d++)
        if (va->dims[d] != vb->dims[d]) return false;
      return true;
    }
    return channel_const(g, c->rval[a] ? b : a);
  }
  return false;
}

/* Is value v read by a node outside the region, or a graph output? */
static bool read_outside(const ectx *c, int32_t v) {
  const vt_graph *g = c->g;
  if (g->values[v].flags & VT_VAL_OUTPUT) return true;
  for (int32_t i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] == v) return true;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    if (c->inr[i]) continue;
    for (int32_t k = 0; k < g->nodes[i].n_in; k++)
      if (g->nodes[i].in[k] == v) return true;
  }
  return false;
}

typedef struct {
  int32_t x;         /* entry value */
  int32_t y;         /* exit value */
  int32_t *nodes;    /* region nodes (malloc'd) */
  int32_t n;
  int32_t first_matmul;
} region;

/* Grows the region from node `start`; fills r and returns true when it is a valid region. */
static bool grow(ectx *c, int32_t start, region *r, char *why, size_t wn) {
  vt_graph *g = c->g;
  memset(c->inr, 0, (size_t)g->n_nodes);
  memset(c->rval, 0, (size_t)g->n_values);
  int32_t *nodes = malloc(((size_t)g->n_nodes + 1) * sizeof *nodes);
  if (!nodes) { snprintf(why, wn, "out of memory"); return false; }
  int32_t n = 0, last = start;
  const vt_node *s = &g->nodes[start];
  nodes[n++] = start;
  c->inr[start] = 1;
  c->rval[s->out[0]] = 1;
  for (int32_t i = start + 1; i < g->n_nodes && i <= last + EVT_SCAN; i++) {
    if (c->claimed[i]) continue;
    if (!tokenwise_member(c, &g->nodes[i])) continue;
    nodes[n++] = i;
    c->inr[i] = 1;
    c->rval[g->nodes[i].out[0]] = 1;
    last = i;
  }
  /* trim from the end until one value leaves the region */
  int32_t exit = -1;
  while (n > 0) {
    int32_t exits = 0;
    exit = -1;
    for (int32_t j = 0; j < n; j++) {
      int32_t v = g->nodes[nodes[j]].out[0];
      if (read_outside(c, v)) { exits++; exit = v; }
    }
    if (exits == 1) break;
    int32_t drop = nodes[--n];
    c->inr[drop] = 0;
    c->rval[g->nodes[drop].out[0]] = 0;
  }
  int32_t mm = -1;
  for (int32_t j = 0; j < n && mm < 0; j++)
    if (g->nodes[nodes[j]].op == VT_OP_MatMul) mm = nodes[j];
  if (n == 0 || mm < 0) {
    free(nodes);
    snprintf(why, wn, n == 0 ? "its values leave the chain in several places" : "no projection (MatMul) in the chain");
    return false;
  }
  const vt_value *xv = &g->values[s->in[0]], *yv = &g->values[exit];
  bool ok = xv->rank == yv->rank && xv->rank >= 3;
  for (int32_t d = 0; ok && d + 1 < xv->rank; d++) ok = xv->dims[d] == yv->dims[d];
  if (!ok) {
    free(nodes);
    snprintf(why, wn, "the chain's output '%s' does not keep the input's token dims", yv->name);
    return false;
  }
  if (read_outside(c, exit) && (g->values[exit].flags & VT_VAL_OUTPUT)) {
    free(nodes);
    snprintf(why, wn, "the chain's output '%s' is a graph output", yv->name);
    return false;
  }
  for (int32_t o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] == exit) {
      free(nodes);
      snprintf(why, wn, "the chain's output '%s' is a graph output", yv->name);
      return false;
    }
  r->x = s->in[0];
  r->y = exit;
  r->nodes = nodes;
  r->n = n;
  r->first_matmul = mm;
  return true;
}

static vt_attr *set_attr(vt_graph *g, int32_t node, const char *name, vt_attr_type t) {
  return vt_node_add_attr(g, node, name, t);
}

/* Inserts the gate and buffer of region r; *yb = the buffer's output. */
static int rewrite(ectx *c, const region *r, const vt_pass_params *p, int32_t *yb_out, vt_error *e) {
  vt_graph *g = c->g;
  const char *base = g->nodes[r->first_matmul].name;
  int32_t xg = vt_rw_new_value(g, base, "evt_gated");
  int32_t idx = vt_rw_new_value(g, base, "evt_idx");
  if (xg < 0 || idx < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
  int32_t in[1] = {r->x}, out[2] = {xg, idx};
  int32_t gn = vt_graph_add_node(g, vt_rw_fresh_name(g, base, "evt_gate"), VT_OP_TokenGate, 1, in, 2, out);
  if (gn < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
  vt_attr *a = set_attr(g, gn, "policy", VT_ATTR_STRING);
  if (!a) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
  a->s = vt_arena_strdup(&g->arena, vt_param_str(p, "policy"));
  a->s_len = a->s ? strlen(a->s) : 0;
  if ((a = set_attr(g, gn, "r", VT_ATTR_INT))) a->i = vt_param_int(p, "r");
  if ((a = set_attr(g, gn, "h", VT_ATTR_FLOAT))) a->f = (float)vt_param_float(p, "h");
  if ((a = set_attr(g, gn, "fraction", VT_ATTR_FLOAT))) a->f = (float)vt_param_float(p, "fraction");
  /* region nodes read the gated tokens */
  for (int32_t j = 0; j < r->n; j++) {
    vt_node *nd = &g->nodes[r->nodes[j]];
    for (int32_t k = 0; k < nd->n_in; k++)
      if (nd->in[k] == r->x) nd->in[k] = xg;
  }
  int32_t bin[3] = {r->y, idx, r->x};
  int32_t yb = vt_rw_node1(g, VT_OP_TokenBuffer, base, "evt_buffer", 3, bin);
  if (yb < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
  int32_t bnode = g->values[yb].producer;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    if (i == bnode || (i < c->nn0 && c->inr[i])) continue;
    vt_node *nd = &g->nodes[i];
    for (int32_t k = 0; k < nd->n_in; k++)
      if (nd->in[k] == r->y) nd->in[k] = yb;
  }
  *yb_out = yb;
  return VT_OK;
}

int vt_pass_eventful(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e) {
  const char *pol = vt_param_str(p, "policy"), *gate = vt_param_str(p, "gate");
  if (strcmp(pol, "topr") && strcmp(pol, "threshold") && strcmp(pol, "fraction"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: policy must be topr, threshold or fraction, got '%s'", pol);
  if (strcmp(gate, "after_ln") && strcmp(gate, "before_ln"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: gate must be after_ln or before_ln, got '%s'", gate);
  if (vt_param_int(p, "r") < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: r must be >= 0");
  double f = vt_param_float(p, "fraction");
  if (!(f >= 0 && f <= 1)) return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: fraction must be in [0,1], got %g", f);
  bool before_ln = !strcmp(gate, "before_ln");
  ectx c = {.g = g, .explain = st ? st->explain : NULL};
  int32_t nn0 = g->n_nodes;
  c.nn0 = nn0;
  c.claimed = calloc((size_t)nn0 + 1, 1);
  c.inr = calloc((size_t)nn0 + 1, 1);
  c.rval = calloc((size_t)g->n_values + 1, 1);
  region *regs = calloc((size_t)nn0 + 1, sizeof *regs);
  int rc = VT_OK;
  if (!c.claimed || !c.inr || !c.rval || !regs) rc = vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
  int32_t nr = 0, cand = 0;
  char why[256];
  for (int32_t i = 0; i < nn0 && rc == VT_OK; i++) {
    if (c.claimed[i]) continue;
    const vt_node *n = &g->nodes[i];
    bool ln = before_ln && last_axis_ln(g, n) && g->values[n->in[0]].rank >= 3;
    if (!ln && !const_matmul(g, n)) continue;
    cand++;
    region r;
    if (!grow(&c, i, &r, why, sizeof why)) {
      if (!ln) explainf(&c, "'%s' (%s): not gated: %s", n->name, vt_ops[n->op].name, why);
      continue;
    }
    for (int32_t j = 0; j < r.n; j++) c.claimed[r.nodes[j]] = 1;
    regs[nr++] = r;
  }
  /* rewrite (appends only: node indices of the regions stay valid until the re-sort) */
  for (int32_t k = 0; k < nr && rc == VT_OK; k++) {
    memset(c.inr, 0, (size_t)nn0);
    for (int32_t j = 0; j < regs[k].n; j++) c.inr[regs[k].nodes[j]] = 1;
    char xb[256];
    const vt_node *first = &g->nodes[regs[k].nodes[0]];
    explainf(&c, "gate '%s' %s -> %d token-wise nodes (%s ...) -> buffer '%s'", g->values[regs[k].x].name,
             vt_value_type_str(g, &g->values[regs[k].x], xb, sizeof xb), regs[k].n, first->name,
             g->values[regs[k].y].name);
    int32_t yb = -1;
    rc = rewrite(&c, &regs[k], p, &yb, e);
    /* a later region entered from this one's exit now reads the buffered (full) tensor */
    for (int32_t j = k + 1; j < nr && rc == VT_OK; j++)
      if (regs[j].x == regs[k].y) regs[j].x = yb;
  }
  for (int32_t k = 0; k < nr; k++) free(regs[k].nodes);
  free(regs);
  free(c.claimed);
  free(c.inr);
  free(c.rval);
  if (rc) return rc;
  if (nr > 0) {
    rc = vt_graph_toposort(g, e);
    if (rc == VT_OK) rc = vt_graph_infer(g, e);
    if (rc) return rc;
    vt_graph_remove_dead(g);
  }
  if (st && st->n_rules < VT_STATS_MAX_RULES) {
    st->rules[st->n_rules].name = "eventful-gate-buffer-pairs";
    st->rules[st->n_rules].candidates = cand;
    st->rules[st->n_rules].matches = nr;
    st->n_rules++;
  }
  return VT_OK;
}

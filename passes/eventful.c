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
 * Only inputs of rank >= 3 are gated (a [B, D] head is not per token).
 *
 * Global attention (attn=delta, the default): an ai.vtopt.Attention whose Q, K and V all come from
 * one QKV TokenBuffer through data-movement ops only (Reshape, Transpose, Squeeze, Unsqueeze,
 * Flatten, Split, Gather of one index, Identity) becomes ai.vtopt.EventfulAttention, which also
 * reads the QKV gate's idx and keeps B = q.k^T, A's reference columns and v's reference rows as
 * state (sparse B refresh, delta A.v: EventfulBlock of the paper); its mask, key bias and decomposed
 * relative-position bias (bias_rows/bias_cols) carry over as inputs, read whole every frame. The pass proves that position
 * n of every (b, h) slice of Q/K/V is gate token n by following each axis as a list of factors
 * of the buffer's token and channel axes through the movement chain (constant dims required:
 * pin the frame dim, e.g. --dim T=1). Windowed attention (a slice sees only some tokens) fails
 * that proof and keeps the token-wise gates only (EventfulTokenwiseBlock), as in the paper. */
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

/* ---------- global attention: token layout of Q/K/V ----------
 * Each axis of a value on the chain is a list of factors (outer to inner) of the buffer output's
 * axes: a token factor (size, stride in the flat gate token index) or a channel factor. */
#define EVT_MAXF 12
typedef struct {
  int8_t tok;
  int64_t size, stride;
} lfac;
typedef struct {
  int32_t rank;
  int32_t nf[VT_MAX_RANK];
  lfac f[VT_MAX_RANK][EVT_MAXF];
  int64_t tok_off;   /* token offset of element 0 (a slice over token axes) */
} layout;

static bool const_dims(const vt_value *v) {
  if (v->rank < 0) return false;
  for (int32_t d = 0; d < v->rank; d++)
    if (!vt_dim_is_const(v->dims[d]) || v->dims[d] < 0) return false;
  return true;
}

/* The buffer output [t0, ..., t_{r-2}, C]: token axes row-major over the gate's flat index. */
static void layout_init(layout *L, const vt_value *v) {
  memset(L, 0, sizeof *L);
  L->rank = v->rank;
  int64_t st = 1;
  for (int32_t a = v->rank - 1; a >= 0; a--) {
    bool tok = a < v->rank - 1;
    if (v->dims[a] != 1) L->f[a][L->nf[a]++] = (lfac){tok, v->dims[a], tok ? st : 1};
    if (tok) st *= v->dims[a];
  }
}

/* Regroups the factors into new constant dims (Reshape, Squeeze, Unsqueeze, Flatten). */
static bool layout_reshape(layout *L, const vt_value *out) {
  lfac F[VT_MAX_RANK * EVT_MAXF];
  int32_t n = 0, h = 0;
  for (int32_t a = 0; a < L->rank; a++)
    for (int32_t j = 0; j < L->nf[a]; j++) F[n++] = L->f[a][j];
  layout R = {.rank = out->rank, .tok_off = L->tok_off};
  for (int32_t a = 0; a < out->rank; a++) {
    int64_t need = out->dims[a];
    while (need > 1) {
      if (h >= n || R.nf[a] >= EVT_MAXF) return false;
      lfac f = F[h];
      if (f.size <= need) {
        if (need % f.size) return false;
        R.f[a][R.nf[a]++] = f;
        need /= f.size;
        h++;
      } else {
        if (f.size % need) return false;
        R.f[a][R.nf[a]++] = (lfac){f.tok, need, f.stride * (f.size / need)};
        F[h].size = f.size / need;
        need = 1;
      }
    }
  }
  if (h != n) return false;
  *L = R;
  return true;
}

/* Keeps [start, start + len) of axis a (Split, Gather of one index). */
static bool layout_slice(layout *L, int32_t a, int64_t start, int64_t len) {
  if (a < 0 || a >= L->rank) return false;
  if (L->nf[a] == 0) return start == 0 && len == 1;
  int64_t inner = 1;
  for (int32_t j = 1; j < L->nf[a]; j++) inner *= L->f[a][j].size;
  if (start % inner || len % inner || len <= 0) return false;
  lfac *f0 = &L->f[a][0];
  if (f0->tok) L->tok_off += start / inner * f0->stride;
  f0->size = len / inner;
  if (f0->size == 1) {
    memmove(&L->f[a][0], &L->f[a][1], (size_t)(L->nf[a] - 1) * sizeof(lfac));
    L->nf[a]--;
  }
  return true;
}

/* Applies movement node nd (its data input has layout L) to get the layout of output slot o. */
static bool layout_step(const vt_graph *g, const vt_node *nd, int32_t o, layout *L) {
  const vt_value *out = &g->values[nd->out[o]];
  if (!const_dims(out)) return false;
  int32_t r = g->values[nd->in[0]].rank;
  switch (nd->op) {
    case VT_OP_Identity:
      return true;
    case VT_OP_Reshape: case VT_OP_Squeeze: case VT_OP_Unsqueeze: case VT_OP_Flatten:
      return layout_reshape(L, out);
    case VT_OP_Transpose: {
      const int64_t *perm = NULL;
      int32_t np = vt_attr_ints(nd, "perm", &perm);
      layout R = {.rank = L->rank, .tok_off = L->tok_off};
      for (int32_t a = 0; a < L->rank; a++) {
        int64_t src = np < 0 ? L->rank - 1 - a : (a < np ? perm[a] : -1);
        if (src < 0 || src >= L->rank) return false;
        R.nf[a] = L->nf[src];
        memcpy(R.f[a], L->f[src], sizeof R.f[a]);
      }
      *L = R;
      return true;
    }
    case VT_OP_Split: {
      int64_t ax = vt_attr_int(nd, "axis", 0);
      if (ax < 0) ax += r;
      int64_t start = 0;
      for (int32_t j = 0; j < o; j++) {
        if (nd->out[j] < 0 || !const_dims(&g->values[nd->out[j]])) return false;
        start += g->values[nd->out[j]].dims[ax];
      }
      return layout_slice(L, (int32_t)ax, start, out->dims[ax]);
    }
    case VT_OP_Gather: {
      double iv;
      int64_t ax = vt_attr_int(nd, "axis", 0);
      if (ax < 0) ax += r;
      if (nd->n_in < 2 || !vt_rw_const_scalar(g, nd->in[1], &iv) || g->values[nd->in[1]].rank != 0) return false;
      const vt_value *x = &g->values[nd->in[0]];
      if (!const_dims(x) || ax < 0 || ax >= r) return false;
      int64_t i = (int64_t)iv;
      if (i < 0) i += x->dims[ax];
      return layout_slice(L, (int32_t)ax, i, 1) && layout_reshape(L, out);
    }
    default:
      return false;
  }
}

/* The TokenBuffer node that value v comes from through movement ops, with the chain of
 * (node, output slot) from the buffer's output to v; -1 when there is none. */
static int32_t movement_chain(const vt_graph *g, int32_t v, int32_t *nodes, int32_t *slots, int32_t *n) {
  *n = 0;
  for (int32_t steps = 0; v >= 0 && steps < 64; steps++) {
    int32_t p = g->values[v].producer;
    if (p < 0) return -1;
    const vt_node *nd = &g->nodes[p];
    if (nd->op == VT_OP_TokenBuffer) {
      for (int32_t i = 0, j = *n - 1; i < j; i++, j--) {   /* buffer first */
        int32_t t = nodes[i]; nodes[i] = nodes[j]; nodes[j] = t;
        t = slots[i]; slots[i] = slots[j]; slots[j] = t;
      }
      return p;
    }
    switch (nd->op) {
      case VT_OP_Identity: case VT_OP_Reshape: case VT_OP_Squeeze: case VT_OP_Unsqueeze: case VT_OP_Flatten:
      case VT_OP_Transpose: case VT_OP_Split: case VT_OP_Gather:
        break;
      default:
        return -1;
    }
    int32_t o = 0;
    while (o < nd->n_out && nd->out[o] != v) o++;
    nodes[*n] = p;
    slots[*n] = o;
    (*n)++;
    v = nd->in[0];
  }
  return -1;
}

/* Can Attention node `ai` be made eventful? Sets *idx (the QKV gate's idx value). */
static bool global_attention(const vt_graph *g, int32_t ai, int32_t *idx, char *why, size_t wn) {
  const vt_node *a = &g->nodes[ai];
  int32_t buf = -1, chain[64], slots[64], n;
  static const char *nm[3] = {"Q", "K", "V"};
  for (int i = 0; i < 3; i++) {
    int32_t b = movement_chain(g, a->in[i], chain, slots, &n);
    if (b < 0) {
      snprintf(why, wn, "%s does not come from a token buffer through data movement only", nm[i]);
      return false;
    }
    if (buf >= 0 && b != buf) {
      snprintf(why, wn, "Q, K and V come from different token buffers");
      return false;
    }
    buf = b;
    const vt_value *bo = &g->values[g->nodes[b].out[0]], *x = &g->values[a->in[i]];
    if (!const_dims(bo) || !const_dims(x)) {
      snprintf(why, wn, "symbolic dims (pin the frame dim, e.g. --dim T=1, as --stream does)");
      return false;
    }
    layout L;
    layout_init(&L, bo);
    for (int32_t j = 0; j < n; j++)
      if (!layout_step(g, &g->nodes[chain[j]], slots[j], &L)) {
        snprintf(why, wn, "%s: cannot follow the token axes through '%s' (%s)", nm[i], g->nodes[chain[j]].name,
                 vt_ops[g->nodes[chain[j]].op].name);
        return false;
      }
    int64_t ntok = 1;
    for (int32_t d = 0; d + 1 < bo->rank; d++) ntok *= bo->dims[d];
    bool ok = L.rank == 4 && L.tok_off == 0;
    for (int32_t d = 0; ok && d < 4; d++)
      for (int32_t j = 0; ok && j < L.nf[d]; j++) ok = (d == 2) == (L.f[d][j].tok != 0);
    int64_t st = 1;
    for (int32_t j = ok ? L.nf[2] - 1 : -1; j >= 0 && ok; j--) {
      ok = L.f[2][j].stride == st;
      st *= L.f[2][j].size;
    }
    if (!ok || st != ntok) {
      snprintf(why, wn, "%s's token axis does not hold all %lld tokens in order in every head (windowed attention)",
               nm[i], (long long)ntok);
      return false;
    }
  }
  const vt_value *q = &g->values[a->in[0]], *k = &g->values[a->in[1]];
  if (q->dims[1] != k->dims[1]) {
    snprintf(why, wn, "grouped K/V heads (GQA) are not supported");
    return false;
  }
  *idx = g->nodes[buf].in[1];
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
  if ((a = set_attr(g, gn, "refresh", VT_ATTR_INT))) a->i = vt_param_int(p, "refresh");
  if ((a = set_attr(g, gn, "cut", VT_ATTR_FLOAT))) a->f = (float)vt_param_float(p, "cut");
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
  const char *attn = vt_param_str(p, "attn");
  if (strcmp(attn, "delta") && strcmp(attn, "delta_exp") && strcmp(attn, "dense"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: attn must be delta, delta_exp or dense, got '%s'", attn);
  if (strcmp(gate, "after_ln") && strcmp(gate, "before_ln"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: gate must be after_ln or before_ln, got '%s'", gate);
  if (vt_param_int(p, "r") < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: r must be >= 0");
  if (vt_param_int(p, "refresh") < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: refresh must be >= 0");
  if (!(vt_param_float(p, "cut") >= 0)) return vt_errorf(e, VT_ERR_MODEL, "--pass: eventful: cut must be >= 0");
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
  }
  /* global attention: sparse q.k^T and delta A.v */
  int32_t acand = 0, amatch = 0;
  bool delta = strcmp(vt_param_str(p, "attn"), "dense") != 0;
  bool exp_ref = !strcmp(vt_param_str(p, "attn"), "delta_exp");
  int32_t nn1 = g->n_nodes;
  for (int32_t i = 0; i < nn1 && nr > 0; i++) {
    if (g->nodes[i].op != VT_OP_Attention || g->nodes[i].out[0] < 0 || g->nodes[i].n_in < 3) continue;
    acand++;
    int32_t idx = -1;
    if (!delta) {
      explainf(&c, "attention '%s': token-wise gates only (attn=dense)", g->nodes[i].name);
      continue;
    }
    if (!global_attention(g, i, &idx, why, sizeof why)) {
      explainf(&c, "attention '%s': token-wise gates only: %s", g->nodes[i].name, why);
      continue;
    }
    const vt_node *a = &g->nodes[i];
    /* Attention's inputs, idx, then the decomposed bias (bias_rows, bias_cols) when it has one */
    int32_t in[8] = {a->in[0], a->in[1], a->in[2], a->n_in > 3 ? a->in[3] : -1, a->n_in > 4 ? a->in[4] : -1, idx,
                     a->n_in > 5 ? a->in[5] : -1, a->n_in > 6 ? a->in[6] : -1};
    int n_in = in[6] >= 0 || in[7] >= 0 ? 8 : 6;
    float scale = vt_attr_float(a, "scale", 0.0f);
    int64_t causal = vt_attr_int(a, "causal", 0);
    int32_t out = a->out[0];
    const char *name = vt_rw_fresh_name(g, a->name, "evt_attention");
    if (!name) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
    vt_rw_detach_output(g, i, 0);
    int32_t ea = vt_graph_add_node(g, name, VT_OP_EventfulAttention, n_in, in, 1, &out);
    vt_attr *at;
    if (ea < 0 || !(at = set_attr(g, ea, "scale", VT_ATTR_FLOAT)))
      return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
    at->f = scale;
    if (!(at = set_attr(g, ea, "causal", VT_ATTR_INT))) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
    at->i = causal;
    if (!(at = set_attr(g, ea, "exp_ref", VT_ATTR_INT))) return vt_errorf(e, VT_ERR_MODEL, "%s: eventful: out of memory", g->path);
    at->i = exp_ref;
    explainf(&c, "attention '%s': eventful (sparse q.k^T, delta A.v) with the idx of '%s'", g->nodes[i].name,
             g->values[idx].name);
    amatch++;
  }
  if (amatch > 0) {
    rc = vt_graph_toposort(g, e);
    if (rc == VT_OK) rc = vt_graph_infer(g, e);
    if (rc) return rc;
  }
  if (nr > 0) vt_graph_remove_dead(g);
  if (st && st->n_rules < VT_STATS_MAX_RULES) {
    st->rules[st->n_rules].name = "eventful-gate-buffer-pairs";
    st->rules[st->n_rules].candidates = cand;
    st->rules[st->n_rules].matches = nr;
    st->n_rules++;
  }
  if (st && st->n_rules < VT_STATS_MAX_RULES) {
    st->rules[st->n_rules].name = "eventful-global-attention";
    st->rules[st->n_rules].candidates = acand;
    st->rules[st->n_rules].matches = amatch;
    st->n_rules++;
  }
  return VT_OK;
}

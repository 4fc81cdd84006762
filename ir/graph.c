/* graph.c — building and editing graphs: values, nodes, attributes, inputs/outputs, owned data,
 * topological sorting, dead-node removal and folding of shape arithmetic into constants. */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GROW(arr, n, cap, init)                                              \
  do {                                                                       \
    if ((n) == (cap)) {                                                      \
      int32_t nc_ = (cap) ? (cap) * 2 : (init);                              \
      void *np_ = realloc((arr), (size_t)nc_ * sizeof *(arr));               \
      if (!np_) return -1;                                                   \
      (arr) = np_;                                                           \
      (cap) = nc_;                                                           \
    }                                                                        \
  } while (0)

vt_graph *vt_graph_new(const char *path) {
  vt_graph *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->path = vt_arena_strdup(&g->arena, path ? path : "");
  g->name = g->path;
  g->ir_version = 8;
  if (!g->path) { free(g); return NULL; }
  return g;
}

void vt_graph_free(vt_graph *g) {
  if (!g) return;
  for (int32_t i = 0; i < g->n_maps; i++) munmap(g->maps[i].addr, g->maps[i].len);
  for (int32_t i = 0; i < g->n_blocks; i++) free(g->blocks[i]);
  free(g->maps);
  free(g->blocks);
  free(g->values);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->syms);
  free(g->opsets);
  vt_arena_free(&g->arena);
  free(g);
}

int32_t vt_graph_add_value(vt_graph *g, const char *name, vt_dtype dt, int32_t rank, const vt_dim *dims) {
  GROW(g->values, g->n_values, g->cap_values, 64);
  if (rank > VT_MAX_RANK) return -1;
  vt_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  v->name = vt_arena_strdup(&g->arena, name);
  if (!v->name) return -1;
  v->dtype = dt;
  v->rank = rank;
  for (int32_t i = 0; i < rank && dims; i++) v->dims[i] = dims[i];
  v->producer = -1;
  return g->n_values++;
}

int32_t vt_graph_add_const(vt_graph *g, const char *name, const vt_tensor *t) {
  vt_dim dims[VT_MAX_RANK];
  if (t->rank < 0 || t->rank > VT_MAX_RANK) return -1;
  for (int32_t i = 0; i < t->rank; i++) dims[i] = t->dims[i];
  int32_t v = vt_graph_add_value(g, name, t->dtype, t->rank, dims);
  if (v < 0) return -1;
  vt_tensor *c = vt_arena_alloc(&g->arena, sizeof *c);
  if (!c) return -1;
  *c = *t;
  c->owned = false;
  g->values[v].cdata = c;
  g->values[v].flags |= VT_VAL_CONST;
  return v;
}

int32_t vt_graph_find_value(const vt_graph *g, const char *name) {
  for (int32_t i = g->n_values - 1; i >= 0; i--)
    if (strcmp(g->values[i].name, name) == 0) return i;
  return -1;
}

int32_t vt_graph_add_node(vt_graph *g, const char *name, int op, int n_in, const int32_t *in,
                          int n_out, const int32_t *out) {
  GROW(g->nodes, g->n_nodes, g->cap_nodes, 64);
  vt_node *n = &g->nodes[g->n_nodes];
  memset(n, 0, sizeof *n);
  n->name = vt_arena_strdup(&g->arena, name);
  n->op = op;
  n->n_in = n_in;
  n->n_out = n_out;
  n->in = vt_arena_alloc(&g->arena, (size_t)(n_in + 1) * sizeof(int32_t));
  n->out = vt_arena_alloc(&g->arena, (size_t)(n_out + 1) * sizeof(int32_t));
  if (!n->name || !n->in || !n->out) return -1;
  for (int i = 0; i < n_in; i++) n->in[i] = in ? in[i] : -1;
  for (int i = 0; i < n_out; i++) {
    n->out[i] = out ? out[i] : -1;
    if (n->out[i] >= 0 && n->out[i] < g->n_values && g->values[n->out[i]].producer < 0)
      g->values[n->out[i]].producer = g->n_nodes;
  }
  return g->n_nodes++;
}

vt_attr *vt_node_add_attr(vt_graph *g, int32_t node, const char *name, vt_attr_type type) {
  vt_node *n = &g->nodes[node];
  vt_attr *a = vt_arena_alloc(&g->arena, (size_t)(n->n_attr + 1) * sizeof *a);
  if (!a) return NULL;
  if (n->n_attr) memcpy(a, n->attr, (size_t)n->n_attr * sizeof *a);
  n->attr = a;
  vt_attr *r = &a[n->n_attr++];
  r->name = vt_arena_strdup(&g->arena, name);
  r->type = type;
  return r->name ? r : NULL;
}

int vt_graph_add_input(vt_graph *g, int32_t v) {
  GROW(g->inputs, g->n_inputs, g->cap_inputs, 8);
  g->inputs[g->n_inputs++] = v;
  g->values[v].flags |= VT_VAL_INPUT;
  return 0;
}

int vt_graph_add_output(vt_graph *g, int32_t v) {
  GROW(g->outputs, g->n_outputs, g->cap_outputs, 8);
  g->outputs[g->n_outputs++] = v;
  g->values[v].flags |= VT_VAL_OUTPUT;
  return 0;
}

int vt_graph_own(vt_graph *g, void *block) {
  if (g->n_blocks == g->cap_blocks) {
    int32_t nc = g->cap_blocks ? g->cap_blocks * 2 : 64;
    void **nb = realloc(g->blocks, (size_t)nc * sizeof *nb);
    if (!nb) { free(block); return -1; }
    g->blocks = nb;
    g->cap_blocks = nc;
  }
  g->blocks[g->n_blocks++] = block;
  return 0;
}

int vt_graph_add_mapping(vt_graph *g, void *addr, size_t len) {
  GROW(g->maps, g->n_maps, g->cap_maps, 8);
  g->maps[g->n_maps].addr = addr;
  g->maps[g->n_maps].len = len;
  g->n_maps++;
  return 0;
}

int64_t vt_graph_opset(const vt_graph *g, const char *domain) {
  if (!domain || strcmp(domain, "ai.onnx") == 0) domain = "";
  for (int32_t i = 0; i < g->n_opsets; i++) {
    const char *d = g->opsets[i].domain;
    if (!d || strcmp(d, "ai.onnx") == 0) d = "";
    if (strcmp(d, domain) == 0) return g->opsets[i].version;
  }
  return 0;
}

int vt_graph_set_opset(vt_graph *g, const char *domain, int64_t version) {
  if (!domain || strcmp(domain, "ai.onnx") == 0) domain = "";
  for (int32_t i = 0; i < g->n_opsets; i++)
    if (strcmp(g->opsets[i].domain ? g->opsets[i].domain : "", domain) == 0) {
      g->opsets[i].version = version;
      return 0;
    }
  vt_opset *n = realloc(g->opsets, (size_t)(g->n_opsets + 1) * sizeof *n);
  if (!n) return -1;
  g->opsets = n;
  g->opsets[g->n_opsets].domain = vt_arena_strdup(&g->arena, domain);
  g->opsets[g->n_opsets].version = version;
  if (!g->opsets[g->n_opsets].domain) return -1;
  g->n_opsets++;
  return 0;
}

const vt_attr *vt_node_attr(const vt_node *n, const char *name) {
  for (int32_t i = 0; i < n->n_attr; i++)
    if (strcmp(n->attr[i].name, name) == 0) return &n->attr[i];
  return NULL;
}

int64_t vt_attr_int(const vt_node *n, const char *name, int64_t dflt) {
  const vt_attr *a = vt_node_attr(n, name);
  return a && a->type == VT_ATTR_INT ? a->i : dflt;
}

float vt_attr_float(const vt_node *n, const char *name, float dflt) {
  const vt_attr *a = vt_node_attr(n, name);
  return a && a->type == VT_ATTR_FLOAT ? a->f : dflt;
}

const char *vt_attr_str(const vt_node *n, const char *name, const char *dflt) {
  const vt_attr *a = vt_node_attr(n, name);
  return a && a->type == VT_ATTR_STRING ? a->s : dflt;
}

int32_t vt_attr_ints(const vt_node *n, const char *name, const int64_t **vals) {
  const vt_attr *a = vt_node_attr(n, name);
  if (!a || a->type != VT_ATTR_INTS) return -1;
  if (vals) *vals = a->ints;
  return a->n;
}

int32_t vt_attr_floats(const vt_node *n, const char *name, const float **vals) {
  const vt_attr *a = vt_node_attr(n, name);
  if (!a || a->type != VT_ATTR_FLOATS) return -1;
  if (vals) *vals = a->floats;
  return a->n;
}

int vt_node_errorf(const vt_graph *g, int32_t node, vt_error *e, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const vt_node *n = node >= 0 && node < g->n_nodes ? &g->nodes[node] : NULL;
  const char *op = n && n->op >= 0 && n->op < VT_OP_COUNT ? vt_ops[n->op].name : "?";
  return vt_errorf(e, VT_ERR_MODEL, "%s: node '%s' (%s): %s", g->path[0] ? g->path : "<model>",
                   n ? n->name : "?", op, msg);
}

/* ---------- topological order ---------- */
int vt_graph_toposort(vt_graph *g, vt_error *e) {
  int32_t nn = g->n_nodes;
  if (nn <= 0) return VT_OK;
  /* producer of each value by the node list (values may have been added out of order) */
  int32_t *prod = malloc((size_t)(g->n_values + 1) * sizeof *prod);
  int32_t *indeg = calloc((size_t)nn, sizeof *indeg);
  int32_t *order = malloc((size_t)nn * sizeof *order);
  uint8_t *done = calloc((size_t)nn, 1);
  if (!prod || !indeg || !order || !done) {
    free(prod); free(indeg); free(order); free(done);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory sorting nodes", g->path);
  }
  for (int32_t v = 0; v < g->n_values; v++) prod[v] = -1;
  for (int32_t i = 0; i < nn; i++)
    for (int32_t o = 0; o < g->nodes[i].n_out; o++)
      if (g->nodes[i].out[o] >= 0) prod[g->nodes[i].out[o]] = i;
  /* Kahn's algorithm, stable: repeatedly take the first ready node in original order. Simple
   * O(n^2) scan would be too slow for big graphs, so count unmet inputs and keep a queue. */
  int32_t *q = malloc((size_t)nn * sizeof *q);
  int32_t *uses_start = calloc((size_t)nn + 1, sizeof *uses_start);
  if (!q || !uses_start) {
    free(prod); free(indeg); free(order); free(done); free(q); free(uses_start);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory sorting nodes", g->path);
  }
  int64_t nedges = 0;
  for (int32_t i = 0; i < nn; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++) {
      int32_t v = g->nodes[i].in[k];
      if (v >= 0 && prod[v] >= 0 && prod[v] != i) { indeg[i]++; uses_start[prod[v]]++; nedges++; }
      else if (v >= 0 && prod[v] == i) indeg[i] += 1 << 20;  /* self loop: never ready */
    }
  /* prefix sums -> adjacency of producer -> consumers */
  int32_t acc = 0;
  for (int32_t i = 0; i < nn; i++) { int32_t c = uses_start[i]; uses_start[i] = acc; acc += c; }
  uses_start[nn] = acc;
  int32_t *adj = malloc((size_t)(nedges + 1) * sizeof *adj);
  int32_t *fill = calloc((size_t)nn, sizeof *fill);
  if (!adj || !fill) {
    free(prod); free(indeg); free(order); free(done); free(q); free(uses_start); free(adj); free(fill);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory sorting nodes", g->path);
  }
  for (int32_t i = 0; i < nn; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++) {
      int32_t v = g->nodes[i].in[k];
      if (v >= 0 && prod[v] >= 0 && prod[v] != i) {
        int32_t p = prod[v];
        adj[uses_start[p] + fill[p]++] = i;
      }
    }
  int32_t qh = 0, qt = 0, no = 0;
  for (int32_t i = 0; i < nn; i++) if (indeg[i] == 0) q[qt++] = i;
  while (qh < qt) {
    int32_t i = q[qh++];
    order[no++] = i;
    done[i] = 1;
    for (int32_t k = uses_start[i]; k < uses_start[i + 1]; k++)
      if (--indeg[adj[k]] == 0) q[qt++] = adj[k];
  }
  int rc = VT_OK;
  if (no < nn) {
    int32_t bad = 0;
    while (bad < nn && done[bad]) bad++;
    rc = vt_node_errorf(g, bad, e, "the graph has a cycle through this node (%d of %d nodes cannot be ordered)",
                        nn - no, nn);
  } else {
    vt_node *sorted = malloc((size_t)nn * sizeof *sorted);
    if (!sorted) rc = vt_errorf(e, VT_ERR_MODEL, "%s: out of memory sorting nodes", g->path);
    else {
      for (int32_t i = 0; i < nn; i++) sorted[i] = g->nodes[order[i]];
      memcpy(g->nodes, sorted, (size_t)nn * sizeof *sorted);
      free(sorted);
      for (int32_t v = 0; v < g->n_values; v++) g->values[v].producer = -1;
      for (int32_t i = 0; i < nn; i++)
        for (int32_t o = 0; o < g->nodes[i].n_out; o++)
          if (g->nodes[i].out[o] >= 0) g->values[g->nodes[i].out[o]].producer = i;
    }
  }
  free(prod); free(indeg); free(order); free(done); free(q); free(uses_start); free(adj); free(fill);
  return rc;
}

/* ---------- dead nodes and folding ---------- */
void vt_graph_remove_dead(vt_graph *g) {
  uint8_t *live = calloc((size_t)g->n_values + 1, 1);
  uint8_t *keep = calloc((size_t)g->n_nodes + 1, 1);
  VT_ASSERT(live && keep);
  for (int32_t i = 0; i < g->n_outputs; i++) live[g->outputs[i]] = 1;
  for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
    const vt_node *n = &g->nodes[i];
    bool used = false;
    for (int32_t o = 0; o < n->n_out; o++) if (n->out[o] >= 0 && live[n->out[o]]) used = true;
    if (vt_ops[n->op].flags & VT_OPF_STATEFUL) used = true;
    if (!used) continue;
    keep[i] = 1;
    for (int32_t k = 0; k < n->n_in; k++) if (n->in[k] >= 0) live[n->in[k]] = 1;
  }
  int32_t w = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) if (keep[i]) g->nodes[w++] = g->nodes[i];
  g->n_nodes = w;
  for (int32_t v = 0; v < g->n_values; v++) g->values[v].producer = -1;
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t o = 0; o < g->nodes[i].n_out; o++)
      if (g->nodes[i].out[o] >= 0) g->values[g->nodes[i].out[o]].producer = i;
  free(live);
  free(keep);
}

int vt_graph_fold_known(vt_graph *g, vt_error *e) {
  int folded = 0;
  /* Identity of a constant (exporters write one per deduplicated initializer: twelve layers'
   * equal biases become one initializer and eleven Identity nodes) is that constant */
  for (int32_t i = 0; i < g->n_nodes; i++) {
    vt_node *n = &g->nodes[i];
    if (n->op != VT_OP_Identity || n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) continue;
    vt_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
    if (!(x->flags & VT_VAL_CONST) || !x->cdata || (y->flags & VT_VAL_OUTPUT) || y->dtype != x->dtype) continue;
    y->cdata = x->cdata;
    y->flags |= VT_VAL_CONST;
    y->producer = -1;
    n->out[0] = -1;
    folded++;
  }
  for (int32_t v = 0; v < g->n_values; v++) {
    vt_value *val = &g->values[v];
    if (val->producer < 0 || val->nknown <= 0 || !val->known) continue;
    if (val->dtype != VT_I64 && val->dtype != VT_I32) continue;
    if (val->rank < 0 || val->rank > 1) continue;
    if (val->rank == 1 && val->dims[0] != val->nknown) continue;
    if (val->rank == 0 && val->nknown != 1) continue;
    bool all_const = true;
    for (int32_t i = 0; i < val->nknown; i++) if (!vt_dim_is_const(val->known[i])) all_const = false;
    if (!all_const) continue;
    vt_tensor t = {.dtype = val->dtype, .rank = val->rank};
    if (val->rank == 1) t.dims[0] = val->nknown;
    size_t es = vt_dtype_size(val->dtype);
    t.data = vt_arena_alloc(&g->arena, (size_t)val->nknown * es);
    if (!t.data) { vt_errorf(e, VT_ERR_MODEL, "%s: out of memory folding constants", g->path); return -1; }
    for (int32_t i = 0; i < val->nknown; i++) {
      if (val->dtype == VT_I64) ((int64_t *)t.data)[i] = val->known[i];
      else ((int32_t *)t.data)[i] = (int32_t)val->known[i];
    }
    vt_tensor *c = vt_arena_alloc(&g->arena, sizeof *c);
    if (!c) { vt_errorf(e, VT_ERR_MODEL, "%s: out of memory folding constants", g->path); return -1; }
    *c = t;
    /* Detach the value from its producer: the node keeps writing a now-unused output slot. */
    int32_t p = val->producer;
    vt_node *n = &g->nodes[p];
    for (int32_t o = 0; o < n->n_out; o++) if (n->out[o] == v) n->out[o] = -1;
    val->producer = -1;
    val->cdata = c;
    val->flags |= VT_VAL_CONST;
    folded++;
  }
  if (folded) vt_graph_remove_dead(g);
  return folded;
}

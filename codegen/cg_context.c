/* cg_context.c — the lowering context (cg): the planning view of the graph (run-time dims at
 * their bounds), the users of every value, small value helpers shared by the modules, and freeing
 * everything a cg owns. */
#include "cg_internal.h"

#include <time.h>

double cg_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------- small helpers ------------------------------------------------------------------ */
bool cg_val_static(const vt_value *v) {
  if (v->rank < 0) return false;
  for (int32_t d = 0; d < v->rank; d++)
    if (!vt_dim_is_const(v->dims[d])) return false;
  return true;
}

int64_t cg_val_numel(const vt_value *v) {
  int64_t d[VT_MAX_RANK];
  for (int32_t i = 0; i < v->rank; i++) d[i] = v->dims[i];
  return vt_shape_numel(v->rank, d);
}

bool cg_is_const(const vt_graph *g, int32_t v) {
  return v >= 0 && (g->values[v].flags & VT_VAL_CONST) && g->values[v].cdata;
}

/* ---------- run-time dims ------------------------------------------------------------------- */
bool cg_val_dynamic(const cg *c, int32_t v) {
  return v >= 0 && !cg_is_const(c->orig, v) && !cg_val_static(&c->orig->values[v]);
}

/* The planning view: orig with every symbolic dim replaced by its upper bound (left symbolic
 * when it has none; cg_plan() then refuses the value). */
int cg_make_view(cg *c) {
  const vt_graph *g = c->orig;
  c->view = *g;
  c->view_values = malloc(((size_t)g->n_values + 1) * sizeof *c->view_values);
  c->sym_def = malloc(((size_t)g->n_syms + 1) * sizeof *c->sym_def);
  if (!c->view_values || !c->sym_def) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  if (g->n_values) memcpy(c->view_values, g->values, (size_t)g->n_values * sizeof *c->view_values);
  for (int32_t v = 0; v < g->n_values; v++)
    for (int32_t d = 0; d < c->view_values[v].rank; d++) {
      int64_t ub = vt_dim_upper(g, c->view_values[v].dims[d]);
      if (!vt_dim_is_const(c->view_values[v].dims[d]) && ub >= 0) c->view_values[v].dims[d] = ub;
    }
  c->view.values = c->view_values;
  c->g = &c->view;
  vt_cg_sym_defs(g, c->sym_def);
  return VT_OK;
}

void cg_free(cg *c) {
  if (c->b) LLVMDisposeBuilder(c->b);
  cg_target_free(&c->tgt);
  free(c->view_values);
  free(c->sym_def);
  free(c->uoff);
  free(c->ulist);
  free(c->is_out);
  free(c->node_group);
  free(c->val_step);
  free(c->alias_of);
  free(c->nobuf);
  free(c->persist);
  for (int i = 0; i < c->n_groups; i++) {
    free(c->groups[i].nodes);
    free(c->groups[i].steps);
    free(c->groups[i].slots);
    free(c->groups[i].slot_blob);
    free(c->groups[i].copies);
  }
  free(c->groups);
  for (int i = 0; i < c->n_blobs; i++) free(c->blobs[i].owned);
  free(c->blobs);
  free(c->blob_globals);
  free(c->cores);
  free(c->row_cores);
  free(c->attn_keys);
  free(c->attn_cores);
  for (int i = 0; i < c->n_epis; i++) free(c->epis[i].key);
  free(c->epis);
}

int cg_build_users(cg *c) {
  const vt_graph *g = c->g;
  c->uoff = calloc((size_t)g->n_values + 2, sizeof *c->uoff);
  c->is_out = calloc((size_t)g->n_values + 1, sizeof *c->is_out);
  c->node_group = malloc(((size_t)g->n_nodes + 1) * sizeof *c->node_group);
  c->val_step = malloc(((size_t)g->n_values + 1) * sizeof *c->val_step);
  c->alias_of = malloc(((size_t)g->n_values + 1) * sizeof *c->alias_of);
  c->nobuf = calloc((size_t)g->n_values + 1, sizeof *c->nobuf);
  c->persist = calloc((size_t)g->n_values + 1, sizeof *c->persist);
  size_t nu = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) nu += (size_t)g->nodes[i].n_in;
  c->ulist = malloc((nu + 1) * sizeof *c->ulist);
  if (!c->uoff || !c->is_out || !c->node_group || !c->val_step || !c->alias_of || !c->ulist || !c->nobuf ||
      !c->persist)
    return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int32_t i = 0; i < g->n_nodes; i++) {
    c->node_group[i] = -1;
    const vt_node *n = &g->nodes[i];
    for (int32_t k = 0; k < n->n_in; k++) {
      bool dup = false;   /* a node reading a value twice is one user */
      for (int32_t q = 0; q < k; q++) dup |= n->in[q] == n->in[k];
      if (n->in[k] >= 0 && !dup) c->uoff[n->in[k] + 1]++;
    }
  }
  for (int32_t v = 0; v < g->n_values; v++) {
    c->uoff[v + 1] += c->uoff[v];
    c->val_step[v] = -1;
    c->alias_of[v] = -1;
  }
  int32_t *fill = calloc((size_t)g->n_values + 1, sizeof *fill);
  if (!fill) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    for (int32_t k = 0; k < n->n_in; k++) {
      bool dup = false;
      for (int32_t q = 0; q < k; q++) dup |= n->in[q] == n->in[k];
      if (n->in[k] >= 0 && !dup) c->ulist[c->uoff[n->in[k]] + fill[n->in[k]]++] = i;
    }
  }
  free(fill);
  for (int32_t i = 0; i < g->n_outputs; i++) c->is_out[g->outputs[i]] = true;
  return VT_OK;
}

/* pattern.c — the pattern-rule driver: tries every rule on every candidate root node, records
 * per-rule counts and the failing step/reason of each non-match (--explain), applies rewrites,
 * then re-sorts, removes dead nodes and re-infers the graph. */
#include "passes_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct vt_match_ctx {
  const int32_t *uses;
  int32_t n_values;
  const void *user;
  char step[64];
  char reason[320];
};

bool vt_match_fail(vt_match_ctx *m, const char *step, const char *fmt, ...) {
  snprintf(m->step, sizeof m->step, "%s", step);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->reason, sizeof m->reason, fmt, ap);
  va_end(ap);
  return false;
}

int32_t vt_match_uses(const vt_match_ctx *m, int32_t v) {
  return v >= 0 && v < m->n_values ? m->uses[v] : 0;
}

const void *vt_match_user(const vt_match_ctx *m) { return m->user; }

static int32_t *count_uses(const vt_graph *g) {
  int32_t *u = calloc((size_t)g->n_values + 1, sizeof *u);
  if (!u) return NULL;
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++)
      if (g->nodes[i].in[k] >= 0) u[g->nodes[i].in[k]]++;
  for (int32_t i = 0; i < g->n_outputs; i++) u[g->outputs[i]]++;
  return u;
}

int vt_apply_patterns(vt_graph *g, vt_pattern *rules, int n_rules, vt_pass_stats *st, vt_error *e) {
  size_t recmax = 1;
  for (int r = 0; r < n_rules; r++) {
    rules[r].candidates = rules[r].matches = 0;
    rules[r].last_step[0] = rules[r].last_reason[0] = 0;
    if (rules[r].rec_size > recmax) recmax = rules[r].rec_size;
  }
  int32_t *uses = count_uses(g);
  void *rec = malloc(recmax);
  if (!uses || !rec) {
    free(uses); free(rec);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory matching patterns", g->path);
  }
  /* Nodes a rewrite consumed are not candidates again; rewrites only append nodes, so the
   * original indices stay valid during the sweep. */
  int32_t n0 = g->n_nodes;
  uint8_t *consumed = calloc((size_t)n0 + 1, 1);
  int rc = consumed ? VT_OK : vt_errorf(e, VT_ERR_MODEL, "%s: out of memory matching patterns", g->path);
  bool changed = false;
  for (int32_t i = 0; i < n0 && rc == VT_OK; i++) {
    for (int r = 0; r < n_rules && rc == VT_OK; r++) {
      vt_pattern *p = &rules[r];
      if (g->nodes[i].op != p->root_op || consumed[i]) continue;
      p->candidates++;
      vt_match_ctx m = {.uses = uses, .n_values = g->n_values, .user = p->user};
      memset(rec, 0, recmax);
      if (!p->match(g, i, rec, &m)) {
        snprintf(p->last_step, sizeof p->last_step, "%s", m.step);
        snprintf(p->last_reason, sizeof p->last_reason, "%s", m.reason);
        if (st && st->explain)
          fprintf(st->explain, "  %s: node '%s' (%s): no match at step '%s': %s\n", p->name, g->nodes[i].name,
                  vt_ops[g->nodes[i].op].name, m.step, m.reason);
        continue;
      }
      rc = p->rewrite(g, i, rec, e);
      if (rc) break;
      p->matches++;
      changed = true;
      consumed[i] = 1;
      /* uses changed: recount (values were appended too) */
      free(uses);
      uses = count_uses(g);
      if (!uses) rc = vt_errorf(e, VT_ERR_MODEL, "%s: out of memory matching patterns", g->path);
    }
  }
  free(uses);
  free(rec);
  free(consumed);
  if (st)
    for (int r = 0; r < n_rules; r++) {
      int k;
      for (k = 0; k < st->n_rules; k++) if (strcmp(st->rules[k].name, rules[r].name) == 0) break;
      if (k == st->n_rules) {
        if (k >= VT_STATS_MAX_RULES) continue;
        st->rules[k].name = rules[r].name;
        st->n_rules++;
      }
      st->rules[k].candidates += rules[r].candidates;
      st->rules[k].matches += rules[r].matches;
    }
  if (rc || !changed) return rc;
  rc = vt_graph_toposort(g, e);
  if (rc) return rc;
  vt_graph_remove_dead(g);
  return vt_graph_infer(g, e);
}

/* verify.c — the graph verifier: structure (indices, topological order, single producer, no
 * dangling use, unique value names), arity and attribute schema against the op table, and types
 * set on every produced value. Runs after every pass in debug and test builds. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

char vt_attr_type_letter(vt_attr_type t) {
  static const char letters[] = "?fistgFIS";
  return (t >= 0 && t <= VT_ATTR_STRINGS) ? letters[t] : '?';
}

static int cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int check_names(const vt_graph *g, vt_error *e) {
  /* sort indices by name and compare neighbours */
  int32_t n = g->n_values;
  const char **names = malloc((size_t)(n + 1) * sizeof *names);
  if (!names) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory verifying", g->path);
  int32_t k = 0;
  for (int32_t i = 0; i < n; i++) if (g->values[i].name[0]) names[k++] = g->values[i].name;

  qsort(names, (size_t)k, sizeof *names, cmp);
  int rc = VT_OK;
  for (int32_t i = 1; i < k; i++)
    if (strcmp(names[i - 1], names[i]) == 0) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: value name '%s' is defined more than once", g->path, names[i]);
      break;
    }
  free(names);
  return rc;
}


int vt_graph_verify(const vt_graph *g, vt_error *e) {
  int rc = check_names(g, e);
  if (rc) return rc;
  uint8_t *defined = calloc((size_t)g->n_values + 1, 1);
  if (!defined) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory verifying", g->path);
  for (int32_t v = 0; v < g->n_values; v++)
    if (g->values[v].flags & (VT_VAL_INPUT | VT_VAL_CONST)) defined[v] = 1;
  for (int32_t i = 0; i < g->n_nodes && rc == VT_OK; i++) {
    const vt_node *n = &g->nodes[i];
    if (n->op < 0 || n->op >= VT_OP_COUNT) { rc = vt_node_errorf(g, i, e, "invalid op id %d", n->op); break; }
    const vt_op_info *op = &vt_ops[n->op];
    if (n->n_in < op->min_in || (op->max_in >= 0 && n->n_in > op->max_in)) {
      rc = vt_node_errorf(g, i, e, "has %d inputs; the op takes %d to %d", n->n_in, op->min_in, op->max_in);
      break;
    }
    if (n->n_out < op->min_out || (op->max_out >= 0 && n->n_out > op->max_out)) {
      rc = vt_node_errorf(g, i, e, "has %d outputs; the op takes %d to %d", n->n_out, op->min_out, op->max_out);
      break;
    }
    for (int32_t a = 0; a < n->n_attr; a++) {
      char want = vt_op_attr_type(n->op, n->attr[a].name);
      if (!want) { rc = vt_node_errorf(g, i, e, "attribute '%s' is not supported by this op", n->attr[a].name); break; }
      if (want != vt_attr_type_letter(n->attr[a].type)) {
        rc = vt_node_errorf(g, i, e, "attribute '%s' has type '%c', expected '%c'", n->attr[a].name,
                            vt_attr_type_letter(n->attr[a].type), want);
        break;
      }
    }
    if (rc) break;
    for (int32_t k = 0; k < n->n_in; k++) {
      int32_t v = n->in[k];
      if (v < -1 || v >= g->n_values) { rc = vt_node_errorf(g, i, e, "input %d has invalid value index", k); break; }
      if (v >= 0 && !defined[v]) {
        rc = vt_node_errorf(g, i, e, "input '%s' is used before it is defined (or never defined)", g->values[v].name);
        break;
      }
    }
    if (rc) break;
    for (int32_t o = 0; o < n->n_out; o++) {
      int32_t v = n->out[o];
      if (v == -1) continue;
      if (v < 0 || v >= g->n_values) { rc = vt_node_errorf(g, i, e, "output %d has invalid value index", o); break; }
      if (defined[v]) { rc = vt_node_errorf(g, i, e, "output '%s' is defined more than once", g->values[v].name); break; }
      if (g->values[v].producer != i) {
        rc = vt_node_errorf(g, i, e, "output '%s' does not record this node as its producer", g->values[v].name);
        break;
      }
      if (g->values[v].dtype == VT_UNDEFINED) {   /* rank may stay unknown (-1): data-dependent */
        rc = vt_node_errorf(g, i, e, "output '%s' has no inferred type", g->values[v].name);
        break;
      }
      defined[v] = 1;
    }
  }
  for (int32_t i = 0; i < g->n_outputs && rc == VT_OK; i++) {
    int32_t v = g->outputs[i];
    if (v < 0 || v >= g->n_values || !defined[v])
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: graph output '%s' is not produced by any node", g->path,
                     v >= 0 && v < g->n_values ? g->values[v].name : "?");
  }
  free(defined);
  return rc;
}

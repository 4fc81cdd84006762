/* rewrite.c — small graph-editing helpers for pattern rewrites: fresh names, new values and
 * constants, single-output nodes, output detaching, Unsqueeze/Squeeze across opsets. */
#include "passes_internal.h"

#include <stdio.h>
#include <string.h>

const char *vt_rw_fresh_name(vt_graph *g, const char *base, const char *suffix) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", base, suffix);
  for (int k = 2; vt_graph_find_value(g, buf) >= 0; k++) snprintf(buf, sizeof buf, "%s/%s_%d", base, suffix, k);
  return vt_arena_strdup(&g->arena, buf);
}

int32_t vt_rw_new_value(vt_graph *g, const char *base, const char *suffix) {
  const char *name = vt_rw_fresh_name(g, base, suffix);
  if (!name) return -1;
  return vt_graph_add_value(g, name, VT_UNDEFINED, -1, NULL);
}

int32_t vt_rw_const_i64(vt_graph *g, const char *base, const char *suffix, const int64_t *vals, int32_t n) {
  const char *name = vt_rw_fresh_name(g, base, suffix);
  int64_t *data = vt_arena_alloc(&g->arena, (size_t)(n ? n : 1) * sizeof *data);
  if (!name || !data) return -1;
  memcpy(data, vals, (size_t)n * sizeof *data);
  vt_tensor t = {.dtype = VT_I64, .rank = 1, .dims = {n}, .data = data};
  return vt_graph_add_const(g, name, &t);
}

int32_t vt_rw_node1(vt_graph *g, int op, const char *base, const char *suffix, int n_in, const int32_t *in) {
  int32_t v = vt_rw_new_value(g, base, suffix);
  if (v < 0) return -1;
  if (vt_graph_add_node(g, g->values[v].name, op, n_in, in, 1, &v) < 0) return -1;
  return v;
}

void vt_rw_detach_output(vt_graph *g, int32_t node, int o) {
  int32_t v = g->nodes[node].out[o];
  g->nodes[node].out[o] = -1;
  if (v >= 0) g->values[v].producer = -1;
}

static bool axes_as_input(const vt_graph *g) {
  int64_t op = vt_graph_opset(g, "");
  return op == 0 || op >= 13;
}

int32_t vt_rw_unsqueeze(vt_graph *g, int32_t x, int64_t axis, const char *base, const char *suffix) {
  if (axes_as_input(g)) {
    int32_t ax = vt_rw_const_i64(g, base, "unsqueeze_axes", &axis, 1);
    if (ax < 0) return -1;
    int32_t in[2] = {x, ax};
    return vt_rw_node1(g, VT_OP_Unsqueeze, base, suffix, 2, in);
  }
  int32_t v = vt_rw_node1(g, VT_OP_Unsqueeze, base, suffix, 1, &x);
  if (v < 0) return -1;
  vt_attr *a = vt_node_add_attr(g, g->values[v].producer, "axes", VT_ATTR_INTS);
  if (!a || !(a->ints = vt_arena_alloc(&g->arena, sizeof(int64_t)))) return -1;
  a->n = 1;
  a->ints[0] = axis;
  return v;
}

int32_t vt_rw_squeeze_into(vt_graph *g, int32_t x, int64_t axis, int32_t out, const char *name) {
  int32_t node;
  if (axes_as_input(g)) {
    int32_t ax = vt_rw_const_i64(g, name, "squeeze_axes", &axis, 1);
    if (ax < 0) return -1;
    int32_t in[2] = {x, ax};
    node = vt_graph_add_node(g, name, VT_OP_Squeeze, 2, in, 1, &out);
    return node < 0 ? -1 : out;
  }
  node = vt_graph_add_node(g, name, VT_OP_Squeeze, 1, &x, 1, &out);
  if (node < 0) return -1;
  vt_attr *a = vt_node_add_attr(g, node, "axes", VT_ATTR_INTS);
  if (!a || !(a->ints = vt_arena_alloc(&g->arena, sizeof(int64_t)))) return -1;
  a->n = 1;
  a->ints[0] = axis;
  return out;
}

bool vt_rw_const_scalar(const vt_graph *g, int32_t v, double *out) {
  if (v < 0 || v >= g->n_values) return false;
  const vt_value *val = &g->values[v];
  if (!(val->flags & VT_VAL_CONST) || !val->cdata || !val->cdata->data) return false;
  if (vt_tensor_numel(val->cdata) != 1 || val->cdata->dtype == VT_STRING) return false;
  if (val->cdata->dtype == VT_F16) *out = vt_f16_to_f32(*(const uint16_t *)val->cdata->data);
  else if (val->cdata->dtype == VT_BF16) *out = vt_bf16_to_f32(*(const uint16_t *)val->cdata->data);
  else *out = vt_tensor_get_f64(val->cdata, 0);
  return true;
}

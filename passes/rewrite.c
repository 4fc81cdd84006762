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

/* ---------- Reshape targets that name a token count (tome, topk) ---------- */
void vt_rw_int_contents(const vt_value *x, vt_rw_ints *o) {
  o->n = 0;
  if (x->known && x->nknown > 0 && x->nknown <= 64) {
    o->n = x->nknown;
    memcpy(o->v, x->known, (size_t)x->nknown * sizeof *o->v);
    return;
  }
  const vt_tensor *t = (x->flags & VT_VAL_CONST) ? x->cdata : NULL;
  if (!t || t->rank > 1 || (t->dtype != VT_I64 && t->dtype != VT_I32)) return;
  int64_t n = vt_tensor_numel(t);
  if (n < 1 || n > 64) return;
  for (int64_t i = 0; i < n; i++)
    o->v[i] = t->dtype == VT_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
  o->n = (int32_t)n;
}

int vt_rw_count_dim(const vt_rw_ints *v, vt_dim d, bool *has_neg1) {
  int cnt = 0;
  *has_neg1 = false;
  for (int32_t i = 0; i < v->n; i++) {
    if (v->v[i] == d) cnt++;
    if (vt_dim_is_const(v->v[i]) && v->v[i] == -1) *has_neg1 = true;
  }
  return cnt;
}

int32_t vt_rw_token_pos(const vt_value *x, const vt_rw_ints *t, vt_dim n) {
  int32_t cnt = 0, pos = -1;
  for (int32_t i = 0; i < t->n; i++)
    if (t->v[i] == n) { cnt++; pos = i; }
  if (cnt <= 1) return pos;
  int32_t ax = -1;
  for (int32_t i = 0; i < x->rank && ax < 0; i++)
    if (x->dims[i] == n) ax = i;
  if (ax < 0 || ax >= t->n || t->v[ax] != n) return -1;
  for (int32_t i = 0; i < ax; i++)
    if (t->v[i] != x->dims[i] && !(vt_dim_is_const(t->v[i]) && t->v[i] == 0)) return -1;
  return ax;
}

int vt_rw_retarget_reshape(vt_graph *g, int32_t node, vt_dim n, vt_dim m, const char *prefix) {
  int32_t x = g->nodes[node].in[0], t = g->nodes[node].in[1];
  const vt_value *xv = &g->values[x];
  bool has = false;
  for (int32_t i = 0; i < xv->rank; i++) has |= xv->dims[i] == n;
  if (!has) return 0;
  vt_rw_ints tv;
  vt_rw_int_contents(&g->values[t], &tv);
  int32_t len = tv.n, pos = vt_rw_token_pos(xv, &tv, n);
  if (pos < 0) return 0;   /* the target has a -1 for it (the caller checked) */
  const char *base = g->nodes[node].name;
  char s_target[48], s_axis[48], s_tokens[48];
  snprintf(s_target, sizeof s_target, "%s_target", prefix);
  snprintf(s_axis, sizeof s_axis, "%s_token_axis", prefix);
  snprintf(s_tokens, sizeof s_tokens, "%s_tokens", prefix);
  /* every entry known and constant (pinned dims): the new target is a constant, no runtime op */
  bool all_const = vt_dim_is_const(m) && len <= VT_MAX_RANK;
  for (int32_t k = 0; k < len && all_const; k++) all_const = vt_dim_is_const(tv.v[k]);
  if (all_const) {
    int64_t vals[VT_MAX_RANK];
    for (int32_t k = 0; k < len; k++) vals[k] = k == pos ? m : tv.v[k];
    int32_t cv = vt_rw_const_i64(g, base, s_target, vals, len);
    if (cv < 0) return -1;
    g->nodes[node].in[1] = cv;
    return 0;
  }
  uint8_t *mask = vt_arena_alloc(&g->arena, (size_t)len);
  const char *mname = vt_rw_fresh_name(g, base, s_axis);
  if (!mask || !mname) return -1;
  mask[pos] = 1;
  vt_tensor mt = {.dtype = VT_BOOL, .rank = 1, .dims = {len}, .data = mask};
  int32_t mv = vt_graph_add_const(g, mname, &mt);
  int64_t nv = vt_dim_is_const(m) ? m : -1;
  int32_t cv = vt_rw_const_i64(g, base, s_tokens, &nv, 1);
  if (mv < 0 || cv < 0) return -1;
  int32_t in[3] = {mv, cv, t};
  int32_t w = vt_rw_node1(g, VT_OP_Where, base, s_target, 3, in);
  if (w < 0) return -1;
  g->nodes[node].in[1] = w;
  return 0;
}

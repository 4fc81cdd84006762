/* infer.c — the shape-inference driver (graph level and per node), the helpers op infer
 * functions share (broadcasting, integer contents, axes), and vt_graph_prepare. */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vt_infer_fail(vt_infer_ctx *c, const char *fmt, ...) {
  char msg[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vt_node_errorf(c->g, c->node_idx, c->err, "%s", msg);
}

static const char *dims_str(const vt_graph *g, int32_t rank, const vt_dim *dims, char *buf, size_t n) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, n - off, "[");
  for (int32_t i = 0; i < rank && off < n; i++) {
    char d[96];
    off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? "," : "", vt_dim_str(g, dims[i], d, sizeof d));
  }
  if (off < n) snprintf(buf + off, n - off, "]");
  return buf;
}

int vt_infer_broadcast(vt_infer_ctx *c, int n, vt_infer_out *o) {
  int32_t rank = 0;
  for (int i = 0; i < n && i < c->n_in; i++) {
    if (!c->in[i].present) continue;
    if (c->in[i].rank < 0) return vt_infer_fail(c, "input %d has unknown rank", i);
    if (c->in[i].rank > rank) rank = c->in[i].rank;
  }
  vt_dim out[VT_MAX_RANK];
  for (int32_t d = 0; d < rank; d++) out[d] = 1;
  for (int i = 0; i < n && i < c->n_in; i++) {
    const vt_infer_in *in = &c->in[i];
    if (!in->present) continue;
    int32_t off = rank - in->rank;
    for (int32_t d = 0; d < in->rank; d++) {
      vt_dim a = out[off + d], b = in->dims[d];
      if (a == b || b == 1) continue;
      if (a == 1) { out[off + d] = b; continue; }
      if (vt_dim_is_const(a) && vt_dim_is_const(b)) {
        char s1[256], s2[256];
        vt_dim prev[VT_MAX_RANK];
        for (int32_t k = 0; k < rank; k++) prev[k] = out[k];
        return vt_infer_fail(c, "shapes %s and %s (input %d) do not broadcast",
                             dims_str(c->g, rank, prev, s1, sizeof s1),
                             dims_str(c->g, in->rank, in->dims, s2, sizeof s2), i);
      }
      /* A symbol against a size: the size wins (the symbol must be 1 or equal at run time). */
      if (vt_dim_is_const(b)) out[off + d] = b;
      else if (!vt_dim_is_const(a)) out[off + d] = vt_dim_max(c->g, a, b);
    }
  }
  o->rank = rank;
  for (int32_t d = 0; d < rank; d++) o->dims[d] = out[d];
  return VT_OK;
}

int32_t vt_infer_ints(const vt_infer_ctx *c, int i, vt_dim *vals, int32_t max) {
  if (i >= c->n_in || !c->in[i].present) return -1;
  const vt_infer_in *in = &c->in[i];
  if (in->known && in->nknown > 0) {
    if (in->nknown > max) return -1;
    for (int32_t k = 0; k < in->nknown; k++) vals[k] = in->known[k];
    return in->nknown;
  }
  if (in->data && in->data->data) {
    int64_t n = vt_tensor_numel(in->data);
    if (n < 0 || n > max) return -1;
    if (in->data->dtype == VT_STRING) return -1;
    for (int64_t k = 0; k < n; k++) {
      int64_t x = vt_tensor_get_i64(in->data, k);
      vals[k] = x <= VT_SYM_BASE ? VT_SYM_BASE + 1 : x;
    }
    return (int32_t)n;
  }
  if (in->rank >= 0 && vt_dim_is_const(in->rank ? in->dims[0] : 1)) {
    /* an empty tensor has known (empty) contents */
    int64_t n = 1;
    for (int32_t d = 0; d < in->rank; d++) {
      if (!vt_dim_is_const(in->dims[d])) return -1;
      n *= in->dims[d];
    }
    if (n == 0) return 0;
  }
  return -1;
}

void vt_infer_same(vt_infer_ctx *c, int i, int o) {
  c->out[o].dtype = c->in[i].dtype;
  c->out[o].rank = c->in[i].rank;
  for (int32_t d = 0; d < c->in[i].rank && d < VT_MAX_RANK; d++) c->out[o].dims[d] = c->in[i].dims[d];
}

int vt_infer_axis(vt_infer_ctx *c, int64_t axis, int32_t rank, int64_t *out) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= (rank ? rank : 1))
    return vt_infer_fail(c, "axis %lld is out of range for rank %d", (long long)axis, rank);
  *out = a;
  return VT_OK;
}

int vt_infer_node(vt_graph *g, int32_t node, const vt_infer_in *in, vt_infer_out *out, vt_error *e) {
  const vt_node *n = &g->nodes[node];
  const vt_op_info *op = &vt_ops[n->op];
  if (n->n_in < op->min_in || (op->max_in >= 0 && n->n_in > op->max_in))
    return vt_node_errorf(g, node, e, "has %d inputs; the op takes %d to %d", n->n_in, op->min_in, op->max_in);
  if (n->n_out < op->min_out || (op->max_out >= 0 && n->n_out > op->max_out))
    return vt_node_errorf(g, node, e, "has %d outputs; the op takes %d to %d", n->n_out, op->min_out, op->max_out);
  for (int32_t o = 0; o < n->n_out; o++) memset(&out[o], 0, sizeof out[o]), out[o].rank = -1;
  vt_infer_ctx c = {.g = g, .node_idx = node, .node = n, .n_in = n->n_in, .n_out = n->n_out,
                    .in = in, .out = out, .err = e};
  int rc = vt_infer_fns[n->op](&c);
  if (rc != VT_OK) {
    if (e && e->code == VT_OK) vt_node_errorf(g, node, e, "shape inference failed");
    return rc ? rc : VT_ERR_MODEL;
  }
  for (int32_t o = 0; o < n->n_out; o++) {
    if (out[o].rank > VT_MAX_RANK) return vt_node_errorf(g, node, e, "output %d has rank %d (max %d)", o, out[o].rank, VT_MAX_RANK);
    for (int32_t d = 0; d < out[o].rank; d++)
      if (vt_dim_is_const(out[o].dims[d]) && out[o].dims[d] < 0)
        return vt_node_errorf(g, node, e, "output %d would have negative dim %lld at axis %d", o,
                              (long long)out[o].dims[d], d);
    if (out[o].nknown > VT_MAX_KNOWN) out[o].nknown = 0;
  }
  return VT_OK;
}

/* Fills the infer description of value v. kbuf receives known contents of small int constants. */
static void describe_value(const vt_graph *g, int32_t v, vt_infer_in *in, vt_dim *kbuf) {
  memset(in, 0, sizeof *in);
  if (v < 0) return;
  const vt_value *val = &g->values[v];
  in->present = true;
  in->dtype = val->dtype;
  in->rank = val->rank;
  in->dims = val->dims;
  in->nknown = val->nknown;
  in->known = val->known;
  in->data = val->cdata;
  if (val->cdata && !val->known && (val->dtype == VT_I64 || val->dtype == VT_I32) && val->rank <= 1) {
    int64_t ne = vt_tensor_numel(val->cdata);
    if (ne > 0 && ne <= VT_MAX_KNOWN) {
      for (int64_t k = 0; k < ne; k++) {
        int64_t x = vt_tensor_get_i64(val->cdata, k);
        kbuf[k] = x <= VT_SYM_BASE ? VT_SYM_BASE + 1 : x;
      }
      in->nknown = (int32_t)ne;
      in->known = kbuf;
    }
  }
}

static bool dims_conflict(const vt_value *decl, const vt_infer_out *o) {
  if (decl->rank < 0 || o->rank < 0) return false;
  if (decl->rank != o->rank) return true;
  for (int32_t d = 0; d < o->rank; d++)
    if (vt_dim_is_const(decl->dims[d]) && vt_dim_is_const(o->dims[d]) && decl->dims[d] != o->dims[d])
      return true;
  return false;
}

int vt_graph_infer(vt_graph *g, vt_error *e) {
  int maxin = 1, maxout = 1;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].n_in > maxin) maxin = g->nodes[i].n_in;
    if (g->nodes[i].n_out > maxout) maxout = g->nodes[i].n_out;
  }
  vt_infer_in *in = calloc((size_t)maxin, sizeof *in);
  vt_infer_out *out = calloc((size_t)maxout, sizeof *out);
  vt_dim *kbuf = calloc((size_t)maxin * VT_MAX_KNOWN, sizeof *kbuf);
  if (!in || !out || !kbuf) {
    free(in); free(out); free(kbuf);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory in shape inference", g->path);
  }
  int rc = VT_OK;
  for (int32_t i = 0; i < g->n_nodes && rc == VT_OK; i++) {
    const vt_node *n = &g->nodes[i];
    for (int32_t k = 0; k < n->n_in; k++) {
      describe_value(g, n->in[k], &in[k], kbuf + (size_t)k * VT_MAX_KNOWN);
      if (n->in[k] >= 0 && g->values[n->in[k]].rank < 0 && g->values[n->in[k]].dtype == VT_UNDEFINED) {
        rc = vt_node_errorf(g, i, e, "input '%s' has no type (is it defined?)", g->values[n->in[k]].name);
        break;
      }
    }
    if (rc != VT_OK) break;
    rc = vt_infer_node(g, i, in, out, e);
    if (rc != VT_OK) break;
    for (int32_t o = 0; o < n->n_out; o++) {
      int32_t v = n->out[o];
      if (v < 0) continue;
      vt_value *val = &g->values[v];
      if ((val->flags & VT_VAL_OUTPUT) && val->dtype != VT_UNDEFINED && out[o].dtype != VT_UNDEFINED &&
          (val->dtype != out[o].dtype || dims_conflict(val, &out[o]))) {
        char a[128], b[128];
        vt_value tmp = *val;
        tmp.dtype = out[o].dtype;
        tmp.rank = out[o].rank;
        memcpy(tmp.dims, out[o].dims, sizeof tmp.dims);
        rc = vt_node_errorf(g, i, e, "output '%s' is inferred as %s but the model declares %s", val->name,
                            vt_value_type_str(g, &tmp, a, sizeof a), vt_value_type_str(g, val, b, sizeof b));
        break;
      }
      /* An unknown inferred rank (data-dependent) keeps what the model declares, if anything. */
      bool keep_declared = out[o].rank < 0 && val->rank >= 0 && val->dtype == out[o].dtype;
      val->dtype = out[o].dtype;
      if (!keep_declared) {
        val->rank = out[o].rank;
        for (int32_t d = 0; d < out[o].rank; d++) val->dims[d] = out[o].dims[d];
      }
      val->nknown = 0;
      val->known = NULL;
      if (out[o].nknown > 0) {
        val->known = vt_arena_alloc(&g->arena, (size_t)out[o].nknown * sizeof(vt_dim));
        if (!val->known) { rc = vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path); break; }
        memcpy(val->known, out[o].known, (size_t)out[o].nknown * sizeof(vt_dim));
        val->nknown = out[o].nknown;
      }
    }
  }
  free(in);
  free(out);
  free(kbuf);
  return rc;
}

int vt_graph_prepare(vt_graph *g, const char *const *pin_names, const int64_t *pin_vals, int npins,
                     vt_error *e) {
  for (int p = 0; p < npins; p++) {
    int32_t sym = -1;
    for (int32_t s = 0; s < g->n_syms; s++)
      if (g->syms[s].kind == VT_SYM_NAMED && strcmp(g->syms[s].name, pin_names[p]) == 0) sym = s;
    if (sym < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: --dim %s: the model has no dim named '%s'", g->path,
                                  pin_names[p], pin_names[p]);
    if (pin_vals[p] < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: --dim %s: negative size", g->path, pin_names[p]);
    for (int32_t i = 0; i < g->n_inputs; i++) {
      vt_value *v = &g->values[g->inputs[i]];
      for (int32_t d = 0; d < v->rank; d++)
        if (!vt_dim_is_const(v->dims[d]) && vt_dim_sym(v->dims[d]) == sym) v->dims[d] = pin_vals[p];
    }
  }
  int rc = vt_graph_infer(g, e);
  if (rc != VT_OK) return rc;
  if (vt_graph_fold_known(g, e) < 0) return e && e->code ? e->code : VT_ERR_MODEL;
  if (e && e->code) return e->code;
  return vt_graph_verify(g, e);
}

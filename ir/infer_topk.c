/* infer_topk.c — shape inference for the residual top-k routing ops (rows in ir/ops_topk.def):
 * TopKSelect, RouteGather, RouteScatter. The selected token count K is a named symbol per
 * TopKSelect ("<node>:K", upper bound N when N is constant) unless the retention table is a
 * constant whose rows all keep the same k (then K is that constant). */
#include "ir.h"

#include <stdio.h>
#include <string.h>

static bool dims_may_equal(vt_dim a, vt_dim b) { return a == b || !vt_dim_is_const(a) || !vt_dim_is_const(b); }

int vt_infer_TopKSelect(vt_infer_ctx *c) {
  const vt_infer_in *s = &c->in[0];
  if (s->rank != 2 && s->rank != 3)
    return vt_infer_fail(c, "scores must be [B,N] (or x [B,N,D] for policy random), got rank %d", s->rank);
  if (s->dtype != VT_F32) return vt_infer_fail(c, "scores must be f32, got %s", vt_dtype_name(s->dtype));
  const char *pol = vt_attr_str(c->node, "policy", "score");
  if (strcmp(pol, "score") && strcmp(pol, "random"))
    return vt_infer_fail(c, "policy must be score or random, got '%s'", pol);
  int tt = c->n_in == 4 ? 2 : 1;   /* t is optional: (scores, table_t, table_k) or (scores, t, table_t, table_k) */
  if (c->n_in == 4 && c->in[1].present) {
    const vt_infer_in *t = &c->in[1];
    if (t->rank != 1 || t->dtype != VT_F32)
      return vt_infer_fail(c, "t must be f32 [B], got %s rank %d", vt_dtype_name(t->dtype), t->rank);
  }
  const vt_infer_in *tt_in = &c->in[tt], *tk = &c->in[tt + 1];
  if (tt_in->rank != 1 || tt_in->dtype != VT_F32)
    return vt_infer_fail(c, "table_t must be f32 [S], got %s rank %d", vt_dtype_name(tt_in->dtype), tt_in->rank);
  if (tk->rank != 1 || tk->dtype != VT_I64)
    return vt_infer_fail(c, "table_k must be i64 [S], got %s rank %d", vt_dtype_name(tk->dtype), tk->rank);
  if (!dims_may_equal(tt_in->dims[0], tk->dims[0]))
    return vt_infer_fail(c, "table_t and table_k must have the same length");
  vt_dim n = s->dims[1];
  vt_dim k = -1;
  if (tk->data && tk->data->dtype == VT_I64) {
    int64_t cnt = vt_tensor_numel(tk->data);
    const int64_t *kv = tk->data->data;
    if (cnt < 1) return vt_infer_fail(c, "the retention table is empty");
    for (int64_t i = 0; i < cnt; i++) {
      if (kv[i] < 1 || (vt_dim_is_const(n) && kv[i] > n))
        return vt_infer_fail(c, "retention table row %lld keeps k=%lld tokens, outside [1, N=%lld]", (long long)i,
                             (long long)kv[i], vt_dim_is_const(n) ? (long long)n : -1LL);
      if (i == 0) k = kv[0];
      else if (kv[i] != k) k = -2;
    }
  }
  vt_dim K;
  if (k >= 1) {
    K = k;
  } else {
    char name[256];
    snprintf(name, sizeof name, "%s:K", c->node->name ? c->node->name : "TopKSelect");
    K = vt_dim_named(c->g, name);
    if (!vt_dim_is_const(K) && vt_dim_is_const(n) && c->g->syms[vt_dim_sym(K)].upper != n)
      c->g->syms[vt_dim_sym(K)].upper = n;
  }
  vt_infer_out *o = &c->out[0];
  o->dtype = VT_I64;
  o->rank = 2;
  o->dims[0] = s->dims[0];
  o->dims[1] = K;
  return VT_OK;
}

static int check_idx(vt_infer_ctx *c, const vt_infer_in *x, const vt_infer_in *idx) {
  if (x->rank != 3 || x->dtype != VT_F32)
    return vt_infer_fail(c, "x must be f32 [B,N,D], got %s rank %d", vt_dtype_name(x->dtype), x->rank);
  if (idx->rank != 2 || idx->dtype != VT_I64)
    return vt_infer_fail(c, "idx must be i64 [B,K], got %s rank %d", vt_dtype_name(idx->dtype), idx->rank);
  if (!dims_may_equal(idx->dims[0], x->dims[0])) return vt_infer_fail(c, "idx and x differ in the batch dim");
  return VT_OK;
}

int vt_infer_RouteGather(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0], *idx = &c->in[1];
  if (check_idx(c, x, idx)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  o->dtype = VT_F32;
  o->rank = 3;
  o->dims[0] = x->dims[0];
  o->dims[1] = idx->dims[1];
  o->dims[2] = x->dims[2];
  return VT_OK;
}

int vt_infer_RouteScatter(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0], *idx = &c->in[1], *y = &c->in[2];
  if (check_idx(c, x, idx)) return VT_ERR_MODEL;
  if (y->rank != 3 || y->dtype != VT_F32) return vt_infer_fail(c, "y must be f32 [B,K,D], got rank %d", y->rank);
  if (!dims_may_equal(y->dims[1], idx->dims[1]) || !dims_may_equal(y->dims[2], x->dims[2]) ||
      !dims_may_equal(y->dims[0], x->dims[0]))
    return vt_infer_fail(c, "y must be [B,K,D] matching idx [B,K] and x [B,N,D]");
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

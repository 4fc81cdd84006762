/* infer_tome.c — shape inference for the ToMe token-merging ops (rows in ir/ops_tome.def):
 * TokenMatch, TokenMerge, TokenUnmerge. The merged token count is N - r (a constant when N is,
 * else a symbolic expression). */
#include "ir.h"

static bool present(const vt_infer_ctx *c, int i) { return i < c->n_in && c->in[i].present; }

static bool dims_may_equal(vt_dim a, vt_dim b) { return a == b || !vt_dim_is_const(a) || !vt_dim_is_const(b); }

/* Eligible A (mergeable) and B (receiving) tokens among N with the first p protected. */
static void eligible(int64_t n, int64_t p, int64_t stride, int64_t *ea, int64_t *eb) {
  if (p > n) p = n;
  *eb = n / stride - p / stride;
  *ea = (n - p) - *eb;
}

int vt_infer_TokenMatch(vt_infer_ctx *c) {
  const vt_infer_in *m = &c->in[0];
  if (m->rank != 3 && m->rank != 4)
    return vt_infer_fail(c, "metric must be [B,N,C] or [B,H,N,C], got rank %d", m->rank);
  if (m->dtype != VT_F32) return vt_infer_fail(c, "metric must be f32, got %s", vt_dtype_name(m->dtype));
  int64_t r = vt_attr_int(c->node, "r", 0), p = vt_attr_int(c->node, "protected", 0);
  int64_t stride = vt_attr_int(c->node, "stride", 2);
  if (r < 0 || p < 0) return vt_infer_fail(c, "r (%lld) and protected (%lld) must be >= 0", (long long)r, (long long)p);
  if (stride < 2) return vt_infer_fail(c, "stride must be >= 2, got %lld", (long long)stride);
  vt_dim n = m->dims[m->rank - 2];
  if (vt_dim_is_const(n)) {
    int64_t ea, eb;
    eligible(n, p, stride, &ea, &eb);
    if (r > ea || (r > 0 && eb == 0))
      return vt_infer_fail(c, "cannot merge r=%lld of %lld tokens (protected %lld, stride %lld): only %lld can be "
                           "merged into %lld destinations", (long long)r, (long long)n, (long long)p,
                           (long long)stride, (long long)ea, (long long)eb);
  }
  vt_infer_out *o = &c->out[0];
  o->dtype = VT_I64;
  o->rank = 2;
  o->dims[0] = m->dims[0];
  o->dims[1] = n;
  return VT_OK;
}

static int check_plan(vt_infer_ctx *c, const vt_infer_in *x, const vt_infer_in *plan) {
  if (plan->dtype != VT_I64) return vt_infer_fail(c, "plan must be i64, got %s", vt_dtype_name(plan->dtype));
  if (plan->rank != 2) return vt_infer_fail(c, "plan must be [B,N], got rank %d", plan->rank);
  if (!dims_may_equal(plan->dims[0], x->dims[0])) {
    char a[96], b[96];
    return vt_infer_fail(c, "plan batch %s differs from the input's %s", vt_dim_str(c->g, plan->dims[0], a, 96),
                         vt_dim_str(c->g, x->dims[0], b, 96));
  }
  return VT_OK;
}

int vt_infer_TokenMerge(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0], *plan = &c->in[1];
  if (x->rank < 2) return vt_infer_fail(c, "x must be [B,N,...] (rank >= 2), got rank %d", x->rank);
  if (x->dtype != VT_F32) return vt_infer_fail(c, "x must be f32, got %s", vt_dtype_name(x->dtype));
  if (check_plan(c, x, plan)) return VT_ERR_MODEL;
  char a[96], b[96];
  if (!dims_may_equal(plan->dims[1], x->dims[1]))
    return vt_infer_fail(c, "plan covers %s tokens, x has %s", vt_dim_str(c->g, plan->dims[1], a, 96),
                         vt_dim_str(c->g, x->dims[1], b, 96));
  if (present(c, 2)) {
    const vt_infer_in *s = &c->in[2];
    if (s->dtype != VT_F32) return vt_infer_fail(c, "sizes must be f32, got %s", vt_dtype_name(s->dtype));
    if (s->rank != 2 || !dims_may_equal(s->dims[0], x->dims[0]) || !dims_may_equal(s->dims[1], x->dims[1]))
      return vt_infer_fail(c, "sizes must be [B,N] = [%s,%s]", vt_dim_str(c->g, x->dims[0], a, 96),
                           vt_dim_str(c->g, x->dims[1], b, 96));
  }
  int64_t r = vt_attr_int(c->node, "r", 0);
  if (r < 0) return vt_infer_fail(c, "r must be >= 0, got %lld", (long long)r);
  vt_dim n = x->dims[1];
  if (vt_dim_is_const(n) && r >= n && !(r == 0 && n == 0))
    return vt_infer_fail(c, "r=%lld must be smaller than the token count %lld", (long long)r, (long long)n);
  vt_dim m = vt_dim_sub(c->g, n, r);
  vt_infer_out *o = &c->out[0];
  o->dtype = x->dtype;
  o->rank = x->rank;
  for (int32_t d = 0; d < x->rank; d++) o->dims[d] = x->dims[d];
  o->dims[1] = m;
  if (c->n_out > 1) {
    c->out[1].dtype = VT_F32;
    c->out[1].rank = 2;
    c->out[1].dims[0] = x->dims[0];
    c->out[1].dims[1] = m;
  }
  return VT_OK;
}

int vt_infer_TokenUnmerge(vt_infer_ctx *c) {
  const vt_infer_in *y = &c->in[0], *plan = &c->in[1];
  if (y->rank < 2) return vt_infer_fail(c, "y must be [B,M,...] (rank >= 2), got rank %d", y->rank);
  if (y->dtype != VT_F32) return vt_infer_fail(c, "y must be f32, got %s", vt_dtype_name(y->dtype));
  if (check_plan(c, y, plan)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  o->dtype = y->dtype;
  o->rank = y->rank;
  for (int32_t d = 0; d < y->rank; d++) o->dims[d] = y->dims[d];
  o->dims[1] = plan->dims[1];
  return VT_OK;
}

/* infer_vtopt.c — shape inference for vtopt's own ops (domain "ai.vtopt", rows in
 * ir/ops_vtopt.def): Attention. */
#include "ir.h"

#include <stdio.h>

static bool present(const vt_infer_ctx *c, int i) { return i < c->n_in && c->in[i].present; }

/* Two dims that must be equal: false only when both are constants and differ. */
static bool dims_may_equal(vt_dim a, vt_dim b) {
  return a == b || !vt_dim_is_const(a) || !vt_dim_is_const(b);
}

static const char *ds(const vt_graph *g, vt_dim d, char *buf) { return vt_dim_str(g, d, buf, 96); }

int vt_infer_Attention(vt_infer_ctx *c) {
  static const char *names[3] = {"Q", "K", "V"};
  for (int i = 0; i < 3; i++) {
    if (!present(c, i)) return vt_infer_fail(c, "input %s is required", names[i]);
    if (c->in[i].rank != 4)
      return vt_infer_fail(c, "%s must have rank 4 ([B,H,N,D]), got rank %d", names[i], c->in[i].rank);
  }
  const vt_infer_in *q = &c->in[0], *k = &c->in[1], *v = &c->in[2];
  if (!vt_dtype_is_float(q->dtype)) return vt_infer_fail(c, "Q must be a float tensor, got %s", vt_dtype_name(q->dtype));
  if (k->dtype != q->dtype || v->dtype != q->dtype)
    return vt_infer_fail(c, "Q, K and V must have one dtype, got %s, %s, %s", vt_dtype_name(q->dtype),
                         vt_dtype_name(k->dtype), vt_dtype_name(v->dtype));
  char b1[96], b2[96];
  if (!dims_may_equal(q->dims[0], k->dims[0]) || !dims_may_equal(q->dims[0], v->dims[0]))
    return vt_infer_fail(c, "batch of Q (%s) differs from K/V (%s)", ds(c->g, q->dims[0], b1), ds(c->g, k->dims[0], b2));
  if (!dims_may_equal(k->dims[1], v->dims[1]))
    return vt_infer_fail(c, "K has %s heads, V has %s", ds(c->g, k->dims[1], b1), ds(c->g, v->dims[1], b2));
  if (vt_dim_is_const(q->dims[1]) && vt_dim_is_const(k->dims[1])) {
    if (k->dims[1] <= 0 || q->dims[1] % k->dims[1] != 0)
      return vt_infer_fail(c, "Q has %lld heads, not a multiple of K/V's %lld", (long long)q->dims[1],
                           (long long)k->dims[1]);
  }
  if (!dims_may_equal(q->dims[3], k->dims[3]))
    return vt_infer_fail(c, "head dim of Q (%s) differs from K (%s)", ds(c->g, q->dims[3], b1), ds(c->g, k->dims[3], b2));
  if (!dims_may_equal(k->dims[2], v->dims[2]))
    return vt_infer_fail(c, "K has %s keys, V has %s", ds(c->g, k->dims[2], b1), ds(c->g, v->dims[2], b2));
  vt_dim target[4] = {q->dims[0], q->dims[1], q->dims[2], k->dims[2]};
  if (present(c, 3)) {
    const vt_infer_in *m = &c->in[3];
    if (m->rank < 0 || m->rank > 4) return vt_infer_fail(c, "mask must have rank <= 4, got %d", m->rank);
    if (m->dtype != q->dtype && m->dtype != VT_BOOL)
      return vt_infer_fail(c, "mask must be %s or bool, got %s", vt_dtype_name(q->dtype), vt_dtype_name(m->dtype));
    for (int32_t d = 0; d < m->rank; d++) {
      vt_dim md = m->dims[d], td = target[4 - m->rank + d];
      if (vt_dim_is_const(md) && md == 1) continue;
      if (!dims_may_equal(md, td))
        return vt_infer_fail(c, "mask dim %d is %s; it must be 1 or %s to broadcast to [B,H,Nq,Nk]", d,
                             ds(c->g, md, b1), ds(c->g, td, b2));
    }
  }
  if (present(c, 4)) {
    const vt_infer_in *kb = &c->in[4];
    if (kb->rank != 3) return vt_infer_fail(c, "key_bias must have rank 3 ([B,1|H,Nk]), got %d", kb->rank);
    if (kb->dtype != q->dtype) return vt_infer_fail(c, "key_bias must be %s, got %s", vt_dtype_name(q->dtype), vt_dtype_name(kb->dtype));
    if (!dims_may_equal(kb->dims[0], q->dims[0]) ||
        !(kb->dims[1] == 1 || dims_may_equal(kb->dims[1], q->dims[1])) || !dims_may_equal(kb->dims[2], k->dims[2]))
      return vt_infer_fail(c, "key_bias must be [B,1|H,Nk] = [%s,1|%s,%s]", ds(c->g, q->dims[0], b1),
                           ds(c->g, q->dims[1], b2), "Nk");
  }
  if (present(c, 5) != present(c, 6))
    return vt_infer_fail(c, "bias_rows and bias_cols (the decomposed relative-position bias) come together; %s is missing",
                         present(c, 5) ? "bias_cols" : "bias_rows");
  if (present(c, 5)) {
    /* bias_rows [..., Nq, kh], bias_cols [..., Nq, kw]: leading dims broadcast to [B,H,Nq],
     * the last dims are the key grid (kh x kw = Nk) */
    static const char *bn[2] = {"bias_rows", "bias_cols"};
    vt_dim kd[2];
    for (int t = 0; t < 2; t++) {
      const vt_infer_in *r = &c->in[5 + t];
      if (r->rank < 1 || r->rank > 4) return vt_infer_fail(c, "%s must have rank 1 to 4, got %d", bn[t], r->rank);
      if (r->dtype != q->dtype) return vt_infer_fail(c, "%s must be %s, got %s", bn[t], vt_dtype_name(q->dtype), vt_dtype_name(r->dtype));
      kd[t] = r->dims[r->rank - 1];
      for (int32_t d = 0; d + 1 < r->rank; d++) {
        vt_dim rd = r->dims[d], td = target[4 - r->rank + d];
        if (vt_dim_is_const(rd) && rd == 1) continue;
        if (!dims_may_equal(rd, td))
          return vt_infer_fail(c, "%s dim %d is %s; it must be 1 or %s to broadcast to [B,H,Nq,%s]", bn[t], d,
                               ds(c->g, rd, b1), ds(c->g, td, b2), t ? "kw" : "kh");
      }
    }
    if (vt_dim_is_const(kd[0]) && vt_dim_is_const(kd[1]) && vt_dim_is_const(k->dims[2]) && kd[0] * kd[1] != k->dims[2])
      return vt_infer_fail(c, "bias_rows [..., %lld] and bias_cols [..., %lld] span a %lld x %lld key grid, but K has %lld keys",
                           (long long)kd[0], (long long)kd[1], (long long)kd[0], (long long)kd[1], (long long)k->dims[2]);
  }
  int64_t causal = vt_attr_int(c->node, "causal", 0);
  if (causal != 0 && causal != 1) return vt_infer_fail(c, "causal must be 0 or 1, got %lld", (long long)causal);
  float scale = vt_attr_float(c->node, "scale", 0.0f);
  if (!(scale >= 0.0f) && !(scale < 0.0f)) return vt_infer_fail(c, "scale is NaN");
  vt_infer_out *o = &c->out[0];
  o->dtype = q->dtype;
  o->rank = 4;
  o->dims[0] = q->dims[0];
  o->dims[1] = q->dims[1];
  o->dims[2] = q->dims[2];
  o->dims[3] = v->dims[3];
  return VT_OK;
}

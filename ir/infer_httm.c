/* infer_httm.c — shape inference for the HTTM ops (rows in ir/ops_httm.def):
 * HeadwiseMergedAttention (same output as Attention; checks the merging attributes). */
#include "ir.h"

int vt_infer_Attention(vt_infer_ctx *c);

int vt_infer_HeadwiseMergedAttention(vt_infer_ctx *c) {
  int rc = vt_infer_Attention(c);   /* Q/K/V ranks, dtypes, heads, head dims, scale */
  if (rc != VT_OK) return rc;
  const vt_infer_in *q = &c->in[0], *k = &c->in[1];
  if (vt_dim_is_const(q->dims[1]) && vt_dim_is_const(k->dims[1]) && q->dims[1] != k->dims[1])
    return vt_infer_fail(c, "Q has %lld heads, K/V %lld: grouped K/V heads are not supported", (long long)q->dims[1],
                         (long long)k->dims[1]);
  if (vt_dim_is_const(q->dims[2]) && vt_dim_is_const(k->dims[2]) && q->dims[2] != k->dims[2])
    return vt_infer_fail(c, "self-attention needs as many keys as queries, got Nq %lld, Nk %lld",
                         (long long)q->dims[2], (long long)k->dims[2]);
  float qk = vt_attr_float(c->node, "q_keep", 1.0f), kk = vt_attr_float(c->node, "kv_keep", 1.0f);
  float od = vt_attr_float(c->node, "outlier", 0.0f);
  if (!(qk > 0.0f && qk <= 1.0f) || !(kk > 0.0f && kk <= 1.0f))
    return vt_infer_fail(c, "q_keep (%g) and kv_keep (%g) must be in (0, 1]", (double)qk, (double)kk);
  if (!(od >= 0.0f && od < 1.0f)) return vt_infer_fail(c, "outlier (%g) must be in [0, 1)", (double)od);
  int64_t ns = vt_attr_int(c->node, "n_s", 128), nt = vt_attr_int(c->node, "n_t", 30);
  int64_t P = vt_attr_int(c->node, "tokens_per_frame", 0), prot = vt_attr_int(c->node, "protected", 0);
  if (ns < 1 || nt < 1) return vt_infer_fail(c, "n_s (%lld) and n_t (%lld) must be >= 1", (long long)ns, (long long)nt);
  if (P < 1) return vt_infer_fail(c, "tokens_per_frame must be >= 1, got %lld", (long long)P);
  if (prot < 0 || prot > P)
    return vt_infer_fail(c, "protected (%lld) must be in [0, tokens_per_frame = %lld]", (long long)prot, (long long)P);
  for (int i = 0; i < 3; i++) {
    static const char *names[3] = {"anchor", "shared", "prop_attn"};
    int64_t x = vt_attr_int(c->node, names[i], 0);
    if (x != 0 && x != 1) return vt_infer_fail(c, "%s must be 0 or 1, got %lld", names[i], (long long)x);
  }
  vt_dim n = q->dims[2];
  if (vt_dim_is_const(n) && n % P != 0)
    return vt_infer_fail(c, "token count %lld is not a multiple of tokens_per_frame %lld", (long long)n, (long long)P);
  return VT_OK;
}

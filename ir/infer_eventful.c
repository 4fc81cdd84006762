/* infer_eventful.c — shape inference for the Eventful ops (rows in ir/ops_eventful.def):
 * TokenGate, TokenBuffer and EventfulAttention (Attention's checks plus the idx input). The gated token count M is data-dependent: a named symbol per gate
 * ("<gate name>:M", upper bound N when N is constant); in the interpreter the kernel allocates. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

static bool dims_may_equal(vt_dim a, vt_dim b) { return a == b || !vt_dim_is_const(a) || !vt_dim_is_const(b); }

int vt_infer_TokenGate(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0];
  if (x->rank < 2) return vt_infer_fail(c, "x must be [..., N, D] (rank >= 2), got rank %d", x->rank);
  if (x->dtype != VT_F32) return vt_infer_fail(c, "x must be f32, got %s", vt_dtype_name(x->dtype));
  const char *pol = vt_attr_str(c->node, "policy", "topr");
  if (strcmp(pol, "topr") && strcmp(pol, "threshold") && strcmp(pol, "fraction"))
    return vt_infer_fail(c, "policy must be topr, threshold or fraction, got '%s'", pol);
  if (vt_attr_int(c->node, "r", 0) < 0) return vt_infer_fail(c, "r must be >= 0");
  float f = vt_attr_float(c->node, "fraction", 1.0f);
  if (!(f >= 0 && f <= 1)) return vt_infer_fail(c, "fraction must be in [0,1], got %g", (double)f);
  /* N = product of the leading dims */
  vt_dim n = 1;
  for (int32_t d = 0; d + 1 < x->rank; d++) n = vt_dim_mul(c->g, n, x->dims[d]);
  char name[256];
  snprintf(name, sizeof name, "%s:M", c->node->name ? c->node->name : "TokenGate");
  vt_dim m = vt_dim_named(c->g, name);
  /* written once (graph-level inference); the interpreter's re-inference finds it set */
  if (!vt_dim_is_const(m) && vt_dim_is_const(n) && c->g->syms[vt_dim_sym(m)].upper != n)
    c->g->syms[vt_dim_sym(m)].upper = n;
  vt_infer_out *o = &c->out[0];
  o->dtype = VT_F32;
  o->rank = 2;
  o->dims[0] = m;
  o->dims[1] = x->dims[x->rank - 1];
  vt_infer_out *ix = &c->out[1];
  ix->dtype = VT_I64;
  ix->rank = 1;
  ix->dims[0] = m;
  return VT_OK;
}

int vt_infer_TokenBuffer(vt_infer_ctx *c) {
  const vt_infer_in *y = &c->in[0], *idx = &c->in[1], *like = &c->in[2];
  if (y->rank != 2 || y->dtype != VT_F32)
    return vt_infer_fail(c, "y must be f32 [M, O], got %s rank %d", vt_dtype_name(y->dtype), y->rank);
  if (idx->rank != 1 || idx->dtype != VT_I64)
    return vt_infer_fail(c, "idx must be i64 [M], got %s rank %d", vt_dtype_name(idx->dtype), idx->rank);
  if (!dims_may_equal(y->dims[0], idx->dims[0])) {
    char a[96], b[96];
    return vt_infer_fail(c, "y has %s rows but idx %s", vt_dim_str(c->g, y->dims[0], a, 96),
                         vt_dim_str(c->g, idx->dims[0], b, 96));
  }
  if (like->rank < 2) return vt_infer_fail(c, "like must be [..., N, D] (rank >= 2), got rank %d", like->rank);
  vt_infer_out *o = &c->out[0];
  o->dtype = VT_F32;
  o->rank = like->rank;
  for (int32_t d = 0; d + 1 < like->rank; d++) o->dims[d] = like->dims[d];
  o->dims[like->rank - 1] = y->dims[1];
  return VT_OK;
}

int vt_infer_Attention(vt_infer_ctx *c);   /* infer_vtopt.c */

int vt_infer_EventfulAttention(vt_infer_ctx *c) {
  if (c->n_in < 6 || !c->in[5].present) return vt_infer_fail(c, "input idx (6th) is required");
  const vt_infer_in *idx = &c->in[5];
  if (idx->rank != 1 || idx->dtype != VT_I64)
    return vt_infer_fail(c, "idx must be i64 [M], got %s rank %d", vt_dtype_name(idx->dtype), idx->rank);
  for (int i = 0; i < 3; i++)
    if (!c->in[i].present || c->in[i].rank != 4) return vt_infer_fail(c, "Q, K and V must be given with rank 4");
  for (int d = 0; d < 3; d++)
    if (!dims_may_equal(c->in[0].dims[d], c->in[1].dims[d]) || !dims_may_equal(c->in[0].dims[d], c->in[2].dims[d]))
      return vt_infer_fail(c, "Q, K and V must agree on [B,H,N] (self-attention over one token set, H == Hkv)");
  /* the rest is Attention's: Q, K, V, mask, key_bias, then bias_rows/bias_cols (slots 6, 7 here,
   * 5, 6 there) */
  vt_infer_in ins[7];
  for (int i = 0; i < 7; i++) {
    int src = i < 5 ? i : i + 1;
    if (src < c->n_in) ins[i] = c->in[src];
    else memset(&ins[i], 0, sizeof ins[i]);
  }
  vt_infer_ctx a = *c;
  a.in = ins;
  a.n_in = 7;
  return vt_infer_Attention(&a);
}

/* infer_attention.c — shape inference and attribute checks for the attention ops other frameworks
 * export (rows in ir/ops_attention.def): the ONNX Attention op and ONNX Runtime's contrib
 * com.microsoft.Attention / com.microsoft.MultiHeadAttention. Unsupported forms (packed QKV,
 * rotary, shared past/present buffers, opset-24 nonpad_kv_seqlen, ...) fail here with a message
 * naming the input or attribute, so they never reach a kernel or a rewrite. */
#include "attention.h"

#include <math.h>
#include <stdio.h>

static bool present(const vt_infer_ctx *c, int i) { return i < c->n_in && c->in[i].present; }

/* false only when both are constants and differ */
static bool may_eq(vt_dim a, vt_dim b) { return a == b || !vt_dim_is_const(a) || !vt_dim_is_const(b); }

static const char *ds(const vt_infer_ctx *c, vt_dim d, char *buf) { return vt_dim_str(c->g, d, buf, 96); }

static int need(vt_infer_ctx *c, int i, const char *name, int rank) {
  if (!present(c, i)) return vt_infer_fail(c, "input %s is required", name);
  if (c->in[i].rank != rank)
    return vt_infer_fail(c, "%s must have rank %d, got %d", name, rank, c->in[i].rank);
  return VT_OK;
}

static int same_float(vt_infer_ctx *c, int i, const char *name, vt_dtype t) {
  if (c->in[i].dtype != t)
    return vt_infer_fail(c, "%s must be %s like the query, got %s", name, vt_dtype_name(t), vt_dtype_name(c->in[i].dtype));
  return VT_OK;
}

/* x / n for a hidden size x split into n heads: checks divisibility when x is constant. */
static int split_heads(vt_infer_ctx *c, vt_dim x, int64_t n, const char *what, vt_dim *out) {
  char b[96];
  if (vt_dim_is_const(x) && x % n != 0)
    return vt_infer_fail(c, "%s hidden size %s is not a multiple of %lld heads", what, ds(c, x, b), (long long)n);
  *out = vt_dim_div(c->g, x, n);
  return VT_OK;
}

static void set_out(vt_infer_ctx *c, int o, vt_dtype t, int rank, const vt_dim *dims) {
  if (o >= c->n_out) return;
  c->out[o].dtype = t;
  c->out[o].rank = rank;
  for (int d = 0; d < rank; d++) c->out[o].dims[d] = dims[d];
}

/* A mask/bias of rank <= 4 must broadcast to full = [B,H,S,T]. */
static int check_bcast4(vt_infer_ctx *c, int i, const char *name, const vt_dim *full) {
  const vt_infer_in *m = &c->in[i];
  char b1[96], b2[96];
  if (m->rank < 1 || m->rank > 4) return vt_infer_fail(c, "%s must have rank 1 to 4, got %d", name, m->rank);
  for (int d = 0; d < m->rank; d++) {
    vt_dim md = m->dims[d], td = full[4 - m->rank + d];
    if (d == m->rank - 1) {
      if (!may_eq(md, td))
        return vt_infer_fail(c, "%s has %s keys in its last dim; it must be the total sequence length %s", name,
                             ds(c, md, b1), ds(c, td, b2));
      continue;
    }
    if (vt_dim_is_const(md) && md == 1) continue;
    if (!may_eq(md, td))
      return vt_infer_fail(c, "%s dim %d is %s; it must be 1 or %s to broadcast to [B,H,S,T]", name, d, ds(c, md, b1),
                           ds(c, td, b2));
  }
  return VT_OK;
}

/* ---------- ONNX Attention (opset 23) ---------------------------------------------------------- */

int vt_infer_OnnxAttention(vt_infer_ctx *c) {
  int64_t opset = vt_graph_opset(c->g, "");
  if (opset != 0 && opset < 23)
    return vt_infer_fail(c, "Attention is an opset-23 op; the model imports opset %lld", (long long)opset);
  if (present(c, 6)) return vt_infer_fail(c, "input nonpad_kv_seqlen (opset 24) is not supported");
  for (int i = 0; i < 3; i++)
    if (!present(c, i)) return vt_infer_fail(c, "input %s is required", i == 0 ? "Q" : i == 1 ? "K" : "V");
  const vt_infer_in *q = &c->in[0], *k = &c->in[1], *v = &c->in[2];
  int rank = q->rank;
  if ((rank != 3 && rank != 4) || k->rank != rank || v->rank != rank)
    return vt_infer_fail(c, "Q, K and V must all be 3-D or all 4-D, got ranks %d, %d, %d", q->rank, k->rank, v->rank);
  if (!vt_dtype_is_float(q->dtype)) return vt_infer_fail(c, "Q must be a float tensor, got %s", vt_dtype_name(q->dtype));
  if (same_float(c, 1, "K", q->dtype) || same_float(c, 2, "V", q->dtype)) return VT_ERR_MODEL;
  int64_t causal = vt_attr_int(c->node, "is_causal", 0);
  if (causal != 0 && causal != 1) return vt_infer_fail(c, "attribute is_causal must be 0 or 1, got %lld", (long long)causal);
  int64_t mode = vt_attr_int(c->node, "qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3)
    return vt_infer_fail(c, "attribute qk_matmul_output_mode must be 0, 1, 2 or 3, got %lld", (long long)mode);
  if (vt_node_attr(c->node, "scale")) {
    float s = vt_attr_float(c->node, "scale", 1.0f);
    if (!(s > 0.0f) || !isfinite(s)) return vt_infer_fail(c, "attribute scale must be a finite value > 0, got %g", (double)s);
  }
  float cap = vt_attr_float(c->node, "softcap", 0.0f);
  if (!(cap >= 0.0f) || !isfinite(cap)) return vt_infer_fail(c, "attribute softcap must be finite and >= 0, got %g", (double)cap);
  if (vt_node_attr(c->node, "softmax_precision")) {
    int64_t p = vt_attr_int(c->node, "softmax_precision", 1);
    if (p != VT_F32 && p != VT_F16 && p != VT_BF16 && p != VT_F64)
      return vt_infer_fail(c, "attribute softmax_precision must name a float type (1, 10, 11 or 16), got %lld", (long long)p);
  }
  int64_t hq_attr = vt_attr_int(c->node, "q_num_heads", 0), hkv_attr = vt_attr_int(c->node, "kv_num_heads", 0);
  char b1[96], b2[96];
  vt_dim B = q->dims[0], S, L, Hq, Hkv, D, Dk, Dv;
  if (rank == 3) {
    if (hq_attr <= 0 || hkv_attr <= 0)
      return vt_infer_fail(c, "3-D inputs need attributes q_num_heads and kv_num_heads > 0 (got %lld and %lld)",
                           (long long)hq_attr, (long long)hkv_attr);
    S = q->dims[1];
    L = k->dims[1];
    Hq = hq_attr;
    Hkv = hkv_attr;
    if (split_heads(c, q->dims[2], Hq, "Q", &D) || split_heads(c, k->dims[2], Hkv, "K", &Dk) ||
        split_heads(c, v->dims[2], Hkv, "V", &Dv))
      return VT_ERR_MODEL;
    if (!may_eq(v->dims[1], L)) return vt_infer_fail(c, "K has %s keys, V has %s", ds(c, L, b1), ds(c, v->dims[1], b2));
  } else {
    Hq = q->dims[1];
    Hkv = k->dims[1];
    S = q->dims[2];
    L = k->dims[2];
    D = q->dims[3];
    Dk = k->dims[3];
    Dv = v->dims[3];
    if (!may_eq(v->dims[1], Hkv)) return vt_infer_fail(c, "K has %s heads, V has %s", ds(c, Hkv, b1), ds(c, v->dims[1], b2));
    if (!may_eq(v->dims[2], L)) return vt_infer_fail(c, "K has %s keys, V has %s", ds(c, L, b1), ds(c, v->dims[2], b2));
  }
  if (!may_eq(D, Dk)) return vt_infer_fail(c, "head size of Q (%s) differs from K's (%s)", ds(c, D, b1), ds(c, Dk, b2));
  if (!may_eq(k->dims[0], B) || !may_eq(v->dims[0], B))
    return vt_infer_fail(c, "batch of Q (%s) differs from K/V (%s)", ds(c, B, b1), ds(c, k->dims[0], b2));
  if (vt_dim_is_const(Hq) && vt_dim_is_const(Hkv) && (Hkv <= 0 || Hq % Hkv != 0))
    return vt_infer_fail(c, "q_num_heads %lld is not a multiple of kv_num_heads %lld", (long long)Hq, (long long)Hkv);
  vt_dim T = L;
  if (present(c, 4) != present(c, 5)) return vt_infer_fail(c, "past_key and past_value must be given together");
  if (present(c, 4)) {
    if (need(c, 4, "past_key", 4) || need(c, 5, "past_value", 4)) return VT_ERR_MODEL;
    if (same_float(c, 4, "past_key", q->dtype) || same_float(c, 5, "past_value", q->dtype)) return VT_ERR_MODEL;
    const vt_infer_in *pk = &c->in[4], *pv = &c->in[5];
    if (!may_eq(pk->dims[0], B) || !may_eq(pk->dims[1], Hkv) || !may_eq(pk->dims[3], D))
      return vt_infer_fail(c, "past_key must be [B,kv_num_heads,P,head_size] = [%s,%s,P,%s]", ds(c, B, b1), ds(c, Hkv, b2),
                           "D");
    if (!may_eq(pv->dims[0], B) || !may_eq(pv->dims[1], Hkv) || !may_eq(pv->dims[2], pk->dims[2]) || !may_eq(pv->dims[3], Dv))
      return vt_infer_fail(c, "past_value must be [B,kv_num_heads,P,v_head_size] like past_key");
    T = vt_dim_add(c->g, pk->dims[2], L);
  }
  vt_dim full[4] = {B, Hq, S, T};
  if (present(c, 3)) {
    if (c->in[3].dtype != VT_BOOL && c->in[3].dtype != q->dtype)
      return vt_infer_fail(c, "attn_mask must be bool or %s, got %s", vt_dtype_name(q->dtype), vt_dtype_name(c->in[3].dtype));
    if (check_bcast4(c, 3, "attn_mask", full)) return VT_ERR_MODEL;
  }
  if (rank == 3) set_out(c, 0, q->dtype, 3, (vt_dim[]){B, S, vt_dim_mul(c->g, Hq, Dv)});
  else set_out(c, 0, q->dtype, 4, (vt_dim[]){B, Hq, S, Dv});
  set_out(c, 1, q->dtype, 4, (vt_dim[]){B, Hkv, T, D});
  set_out(c, 2, q->dtype, 4, (vt_dim[]){B, Hkv, T, Dv});
  set_out(c, 3, q->dtype, 4, full);
  return VT_OK;
}

/* ---------- com.microsoft contrib ops ---------------------------------------------------------- */

/* Common attribute checks of the two contrib ops; *heads = num_heads. */
static int ms_attrs(vt_infer_ctx *c, int64_t *heads) {
  *heads = vt_attr_int(c->node, "num_heads", 0);
  if (!vt_node_attr(c->node, "num_heads")) return vt_infer_fail(c, "attribute num_heads is required");
  if (*heads <= 0) return vt_infer_fail(c, "attribute num_heads must be > 0, got %lld", (long long)*heads);
  int64_t uni = vt_attr_int(c->node, "unidirectional", 0);
  if (uni != 0 && uni != 1) return vt_infer_fail(c, "attribute unidirectional must be 0 or 1, got %lld", (long long)uni);
  float s = vt_attr_float(c->node, "scale", 0.0f);
  if (!(s >= 0.0f) || !isfinite(s)) return vt_infer_fail(c, "attribute scale must be finite and >= 0 (0: 1/sqrt(head_size)), got %g", (double)s);
  float f = vt_attr_float(c->node, "mask_filter_value", -10000.0f);
  if (!isfinite(f)) return vt_infer_fail(c, "attribute mask_filter_value must be finite, got %g", (double)f);
  return VT_OK;
}

/* mask (int32) of a contrib op: [B] key lengths, [B,T] or [B,S,T] with 0 = masked. */
static int ms_mask(vt_infer_ctx *c, int i, const char *name, vt_dim B, vt_dim S, vt_dim T) {
  if (!present(c, i)) return VT_OK;
  const vt_infer_in *m = &c->in[i];
  char b1[96], b2[96], b3[96];
  if (m->dtype != VT_I32) return vt_infer_fail(c, "%s must be int32, got %s", name, vt_dtype_name(m->dtype));
  if (m->rank == 1) {
    if (vt_dim_is_const(m->dims[0]) && vt_dim_is_const(B) && m->dims[0] != B)
      return vt_infer_fail(c, "%s of shape [%lld]: only the [batch] (right-padding lengths) form is supported; "
                              "[2*batch] (left padding) and [3*batch+2] are not",
                           name, (long long)m->dims[0]);
    return VT_OK;
  }
  if (m->rank == 2) {
    if (!may_eq(m->dims[0], B) || !may_eq(m->dims[1], T))
      return vt_infer_fail(c, "%s must be [B,T] = [%s,%s], got [%s,%s]", name, ds(c, B, b1), ds(c, T, b2),
                           ds(c, m->dims[0], b3), ds(c, m->dims[1], b3));
    return VT_OK;
  }
  if (m->rank == 3) {
    if (!may_eq(m->dims[0], B) || !may_eq(m->dims[1], S) || !may_eq(m->dims[2], T))
      return vt_infer_fail(c, "%s must be [B,S,T] = [%s,%s,%s]", name, ds(c, B, b1), ds(c, S, b2), ds(c, T, b3));
    return VT_OK;
  }
  return vt_infer_fail(c, "%s of rank %d is not supported (supported: [B] lengths, [B,T], [B,S,T])", name, m->rank);
}

static int ms_bias(vt_infer_ctx *c, int i, vt_dtype t, vt_dim B, vt_dim N, vt_dim S, vt_dim T) {
  if (!present(c, i)) return VT_OK;
  if (c->in[i].rank != 4) return vt_infer_fail(c, "attention_bias must have rank 4, got %d", c->in[i].rank);
  if (same_float(c, i, "attention_bias", t)) return VT_ERR_MODEL;
  const vt_dim *d = c->in[i].dims;
  if (!(d[0] == 1 || may_eq(d[0], B)) || !(d[1] == 1 || may_eq(d[1], N)) || !may_eq(d[2], S) || !may_eq(d[3], T))
    return vt_infer_fail(c, "attention_bias must be [B|1,num_heads|1,S,T]");
  return VT_OK;
}

int vt_infer_MsMultiHeadAttention(vt_infer_ctx *c) {
  int64_t N;
  if (ms_attrs(c, &N)) return VT_ERR_MODEL;
  if (!present(c, 0)) return vt_infer_fail(c, "input query is required");
  const vt_infer_in *q = &c->in[0];
  if (q->rank == 5) return vt_infer_fail(c, "packed QKV (5-D query) is not supported");
  if (need(c, 0, "query", 3)) return VT_ERR_MODEL;
  if (!present(c, 1) || !present(c, 2)) return vt_infer_fail(c, "separate key and value inputs are required (packed forms are not supported)");
  if (c->in[1].rank != 3)
    return vt_infer_fail(c, "key of rank %d is not supported (only [B,L,hidden]; packed KV and BNSH key are not)", c->in[1].rank);
  if (need(c, 2, "value", 3)) return VT_ERR_MODEL;
  if (present(c, 8)) return vt_infer_fail(c, "input past_sequence_length (shared past/present buffers) is not supported");
  if (present(c, 9)) return vt_infer_fail(c, "input cache_indirection (beam search) is not supported");
  if (!vt_dtype_is_float(q->dtype)) return vt_infer_fail(c, "query must be a float tensor, got %s", vt_dtype_name(q->dtype));
  if (same_float(c, 1, "key", q->dtype) || same_float(c, 2, "value", q->dtype)) return VT_ERR_MODEL;
  const vt_infer_in *k = &c->in[1], *v = &c->in[2];
  char b1[96], b2[96];
  vt_dim B = q->dims[0], S = q->dims[1], L = k->dims[1], D, Dv;
  if (!may_eq(k->dims[0], B) || !may_eq(v->dims[0], B)) return vt_infer_fail(c, "batch of query, key and value differ");
  if (!may_eq(v->dims[1], L)) return vt_infer_fail(c, "key has %s tokens, value has %s", ds(c, L, b1), ds(c, v->dims[1], b2));
  if (!may_eq(k->dims[2], q->dims[2]))
    return vt_infer_fail(c, "key hidden size %s differs from query's %s", ds(c, k->dims[2], b1), ds(c, q->dims[2], b2));
  if (split_heads(c, q->dims[2], N, "query", &D) || split_heads(c, v->dims[2], N, "value", &Dv)) return VT_ERR_MODEL;
  if (present(c, 3)) {
    if (need(c, 3, "bias", 1) || same_float(c, 3, "bias", q->dtype)) return VT_ERR_MODEL;
    vt_dim want = vt_dim_add(c->g, vt_dim_mul(c->g, q->dims[2], 2), v->dims[2]);
    if (!may_eq(c->in[3].dims[0], want))
      return vt_infer_fail(c, "bias has %s elements, expected hidden + hidden + v_hidden = %s", ds(c, c->in[3].dims[0], b1),
                           ds(c, want, b2));
  }
  vt_dim T = L;
  if (present(c, 6) != present(c, 7)) return vt_infer_fail(c, "past_key and past_value must be given together");
  if (present(c, 6)) {
    if (need(c, 6, "past_key", 4) || need(c, 7, "past_value", 4)) return VT_ERR_MODEL;
    if (same_float(c, 6, "past_key", q->dtype) || same_float(c, 7, "past_value", q->dtype)) return VT_ERR_MODEL;
    const vt_dim *pk = c->in[6].dims, *pv = c->in[7].dims;
    if (!may_eq(pk[0], B) || !may_eq(pk[1], N) || !may_eq(pk[3], D))
      return vt_infer_fail(c, "past_key must be [B,num_heads,P,head_size]");
    if (!may_eq(pv[0], B) || !may_eq(pv[1], N) || !may_eq(pv[2], pk[2]) || !may_eq(pv[3], Dv))
      return vt_infer_fail(c, "past_value must be [B,num_heads,P,v_head_size] like past_key");
    T = vt_dim_add(c->g, pk[2], L);
  }
  if (ms_mask(c, 4, "key_padding_mask", B, S, T) || ms_bias(c, 5, q->dtype, B, N, S, T)) return VT_ERR_MODEL;
  set_out(c, 0, q->dtype, 3, (vt_dim[]){B, S, v->dims[2]});
  set_out(c, 1, q->dtype, 4, (vt_dim[]){B, N, T, D});
  set_out(c, 2, q->dtype, 4, (vt_dim[]){B, N, T, Dv});
  return VT_OK;
}

/* Hidden sizes of Q, K and V of com.microsoft.Attention from qkv_hidden_sizes or thirds of the
 * weights' columns (constant: the weights are an initializer in every export). */
int vt_ms_attention_sizes(const vt_node *n, int64_t cols, int64_t heads, int64_t hs[3], char *err, size_t errn) {
  const int64_t *q;
  int32_t nq = vt_attr_ints(n, "qkv_hidden_sizes", &q);
  if (nq >= 0) {
    if (nq != 3) return snprintf(err, errn, "attribute qkv_hidden_sizes must have 3 values, got %d", nq), -1;
    for (int i = 0; i < 3; i++) hs[i] = q[i];
  } else {
    if (cols % 3 != 0) return snprintf(err, errn, "weights have %lld columns, not 3 equal Q/K/V parts", (long long)cols), -1;
    hs[0] = hs[1] = hs[2] = cols / 3;
  }
  if (hs[0] <= 0 || hs[1] <= 0 || hs[2] <= 0 || hs[0] + hs[1] + hs[2] != cols)
    return snprintf(err, errn, "qkv_hidden_sizes %lld+%lld+%lld do not add up to the weights' %lld columns", (long long)hs[0],
                    (long long)hs[1], (long long)hs[2], (long long)cols), -1;
  if (hs[0] != hs[1]) return snprintf(err, errn, "Q and K hidden sizes differ (%lld, %lld)", (long long)hs[0], (long long)hs[1]), -1;
  if (hs[0] % heads || hs[2] % heads)
    return snprintf(err, errn, "hidden sizes %lld and %lld are not multiples of num_heads %lld", (long long)hs[0], (long long)hs[2],
                    (long long)heads), -1;
  return 0;
}

int vt_infer_MsAttention(vt_infer_ctx *c) {
  int64_t N;
  if (ms_attrs(c, &N)) return VT_ERR_MODEL;
  if (vt_attr_int(c->node, "do_rotary", 0) != 0) return vt_infer_fail(c, "attribute do_rotary=1 (rotary embedding) is not supported");
  if (vt_attr_int(c->node, "past_present_share_buffer", 0) != 0)
    return vt_infer_fail(c, "attribute past_present_share_buffer=1 is not supported");
  if (present(c, 6)) return vt_infer_fail(c, "input past_sequence_length (shared past/present buffers) is not supported");
  if (need(c, 0, "input", 3) || need(c, 1, "weights", 2)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0], *w = &c->in[1];
  if (!vt_dtype_is_float(x->dtype)) return vt_infer_fail(c, "input must be a float tensor, got %s", vt_dtype_name(x->dtype));
  if (same_float(c, 1, "weights", x->dtype)) return VT_ERR_MODEL;
  char b1[96], b2[96];
  if (!may_eq(w->dims[0], x->dims[2]))
    return vt_infer_fail(c, "weights have %s rows, input has hidden size %s", ds(c, w->dims[0], b1), ds(c, x->dims[2], b2));
  if (!vt_dim_is_const(w->dims[1])) return vt_infer_fail(c, "weights must have a constant number of columns");
  int64_t hs[3];
  char err[256];
  if (vt_ms_attention_sizes(c->node, w->dims[1], N, hs, err, sizeof err)) return vt_infer_fail(c, "%s", err);
  if (present(c, 2)) {
    if (need(c, 2, "bias", 1) || same_float(c, 2, "bias", x->dtype)) return VT_ERR_MODEL;
    if (!may_eq(c->in[2].dims[0], w->dims[1]))
      return vt_infer_fail(c, "bias has %s elements, weights have %lld columns", ds(c, c->in[2].dims[0], b1), (long long)w->dims[1]);
  }
  vt_dim B = x->dims[0], S = x->dims[1], T = S, P = 0;
  int64_t D = hs[0] / N;
  if (present(c, 4)) {
    if (need(c, 4, "past", 5) || same_float(c, 4, "past", x->dtype)) return VT_ERR_MODEL;
    const vt_dim *p = c->in[4].dims;
    if (hs[2] != hs[0]) return vt_infer_fail(c, "past needs equal Q/K/V hidden sizes, got %lld and %lld", (long long)hs[0], (long long)hs[2]);
    if (!may_eq(p[0], 2) || !may_eq(p[1], B) || !may_eq(p[2], N) || !may_eq(p[4], D))
      return vt_infer_fail(c, "past must be [2,B,num_heads,P,head_size] = [2,%s,%lld,P,%lld]", ds(c, B, b1), (long long)N, (long long)D);
    P = p[3];
    T = vt_dim_add(c->g, P, S);
  }
  if (c->n_out > 1 && hs[2] != hs[0])
    return vt_infer_fail(c, "output present needs equal K/V hidden sizes, got %lld and %lld", (long long)hs[1], (long long)hs[2]);
  if (ms_mask(c, 3, "mask_index", B, S, T) || ms_bias(c, 5, x->dtype, B, N, S, T)) return VT_ERR_MODEL;
  set_out(c, 0, x->dtype, 3, (vt_dim[]){B, S, hs[2]});
  set_out(c, 1, x->dtype, 5, (vt_dim[]){2, B, N, T, D});
  return VT_OK;
}

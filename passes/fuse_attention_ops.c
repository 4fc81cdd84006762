/* fuse_attention_ops.c — fuse-attention's rules for the attention ops other frameworks export
 * (ir/ops_attention.def): ONNX Attention (rule "onnx-attention"), com.microsoft.MultiHeadAttention
 * ("ms-multihead-attention") and com.microsoft.Attention ("ms-attention") become one
 * ai.vtopt.Attention node plus the plain ops around it:
 *   3-D [B,N,H*D] inputs: Reshape [0,0,H,-1] + Transpose [0,2,1,3] to heads; the output back by
 *   Transpose + Reshape [0,0,-1]. Past K/V: Concat over the sequence (the present outputs).
 *   Contrib bias: Add of its constant Q/K/V slices; com.microsoft.Attention's packed projection:
 *   three MatMuls with the constant weight column blocks. Contrib masks: int32 masks become the
 *   additive mask_filter_value mask (Where), attention_bias is added to it.
 *   Causal: ai.vtopt.Attention's causal (bottom-right) when the new keys are as many as the queries;
 *   ONNX's top-left causal with more keys than queries becomes a constant keep/additive mask.
 * A configuration ai.vtopt.Attention cannot express (softcap, a qk_matmul_output that is read,
 * non-f32, non-constant contrib weights, ...) stays unfused and --explain says why. Exactness:
 * the rewritten graph computes what the op's reference kernel (runtime/kernels_attention.c) does;
 * the one difference is ONNX Runtime's contrib masking, which adds mask_filter_value to causal
 * positions where the rewrite excludes them: equal unless every visible key of a row is masked. */
#include "attention.h"
#include "passes_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int32_t node;
  int rank;                 /* ONNX: 3 or 4; contrib: 3 */
  int64_t hq, hkv;          /* heads (3-D forms) */
  bool causal, causal_mask; /* causal: ai.vtopt causal=1; causal_mask: constant mask instead */
  int64_t S, T, P;          /* constant sizes, for causal_mask */
  int64_t hs[3];            /* com.microsoft.Attention hidden sizes */
} fo_rec;

static bool present_in(const vt_node *n, int i) { return i < n->n_in && n->in[i] >= 0; }
static bool out_used(const vt_node *n, int o, vt_match_ctx *m) { return o < n->n_out && n->out[o] >= 0 && vt_match_uses(m, n->out[o]) > 0; }

static bool check_f32(const vt_graph *g, const vt_node *n, vt_match_ctx *m) {
  for (int i = 0; i < n->n_in; i++) {
    if (n->in[i] < 0) continue;
    vt_dtype t = g->values[n->in[i]].dtype;
    if (t != VT_F32 && t != VT_BOOL && t != VT_I32)
      return vt_match_fail(m, "dtype", "input %d is %s; ai.vtopt.Attention is f32", i, vt_dtype_name(t));
  }
  return true;
}

/* ---------- matching --------------------------------------------------------------------------- */

static bool match_onnx(const vt_graph *g, int32_t root, void *recp, vt_match_ctx *m) {
  fo_rec *r = recp;
  const vt_node *n = &g->nodes[root];
  r->node = root;
  if (!check_f32(g, n, m)) return false;
  float cap = vt_attr_float(n, "softcap", 0.0f);
  if (cap != 0.0f) return vt_match_fail(m, "softcap", "softcap=%g is not supported by ai.vtopt.Attention", (double)cap);
  if (out_used(n, 3, m)) return vt_match_fail(m, "qk-output", "output qk_matmul_output is read (ai.vtopt.Attention does not produce the scores)");
  const vt_value *q = &g->values[n->in[0]], *k = &g->values[n->in[1]];
  r->rank = q->rank;
  r->hq = vt_attr_int(n, "q_num_heads", 0);
  r->hkv = vt_attr_int(n, "kv_num_heads", 0);
  vt_dim S = q->dims[r->rank == 3 ? 1 : 2], L = k->dims[r->rank == 3 ? 1 : 2];
  if (vt_attr_int(n, "is_causal", 0)) {
    if (S == L) r->causal = true;
    else {
      vt_dim P = present_in(n, 4) ? g->values[n->in[4]].dims[2] : 0;
      if (!vt_dim_is_const(S) || !vt_dim_is_const(L) || !vt_dim_is_const(P))
        return vt_match_fail(m, "causal", "is_causal with %s queries and keys whose counts differ or are not constant",
                             "symbolic");
      r->causal_mask = true;
      r->S = S;
      r->P = P;
      r->T = P + L;
    }
  }
  return true;
}

/* Contrib ops: bias and weights must be constants (they are initializers in every export). */
static bool const_input(const vt_graph *g, const vt_node *n, int i, const char *name, vt_match_ctx *m) {
  if (!present_in(n, i)) return true;
  const vt_value *v = &g->values[n->in[i]];
  if (!(v->flags & VT_VAL_CONST) || !v->cdata || !v->cdata->data)
    return vt_match_fail(m, "weights", "%s '%s' is not a constant (its Q/K/V parts are split at compile time)", name, v->name);
  return true;
}

static bool match_ms_common(const vt_graph *g, const vt_node *n, vt_dim S, vt_dim L, vt_match_ctx *m, fo_rec *r) {
  if (!check_f32(g, n, m)) return false;
  if (vt_attr_int(n, "unidirectional", 0)) {
    if (S != L) return vt_match_fail(m, "causal", "unidirectional with key and query token counts that may differ");
    r->causal = true;
  }
  return true;
}

/* A [B] key-lengths mask is compared against a constant iota of the T keys: T = P + L constant. */
static bool lengths_T(const vt_graph *g, const vt_node *n, int mask_in, vt_dim P, vt_dim L, vt_match_ctx *m, fo_rec *r) {
  if (!present_in(n, mask_in) || g->values[n->in[mask_in]].rank != 1) return true;
  if (!vt_dim_is_const(P) || !vt_dim_is_const(L))
    return vt_match_fail(m, "mask", "the mask holds key lengths and the key count is not constant");
  r->T = P + L;
  return true;
}

static bool match_mha(const vt_graph *g, int32_t root, void *recp, vt_match_ctx *m) {
  fo_rec *r = recp;
  const vt_node *n = &g->nodes[root];
  r->node = root;
  r->rank = 3;
  if (!const_input(g, n, 3, "bias", m)) return false;
  const vt_value *q = &g->values[n->in[0]], *k = &g->values[n->in[1]];
  if (!match_ms_common(g, n, q->dims[1], k->dims[1], m, r)) return false;
  return lengths_T(g, n, 4, present_in(n, 6) ? g->values[n->in[6]].dims[2] : 0, k->dims[1], m, r);
}

static bool match_msa(const vt_graph *g, int32_t root, void *recp, vt_match_ctx *m) {
  fo_rec *r = recp;
  const vt_node *n = &g->nodes[root];
  r->node = root;
  r->rank = 3;
  if (!const_input(g, n, 1, "weights", m) || !const_input(g, n, 2, "bias", m)) return false;
  const vt_value *x = &g->values[n->in[0]], *w = &g->values[n->in[1]];
  char err[256];
  if (vt_ms_attention_sizes(n, w->dims[1], vt_attr_int(n, "num_heads", 1), r->hs, err, sizeof err))
    return vt_match_fail(m, "sizes", "%s", err);
  if (!match_ms_common(g, n, x->dims[1], x->dims[1], m, r)) return false;
  return lengths_T(g, n, 3, present_in(n, 4) ? g->values[n->in[4]].dims[3] : 0, x->dims[1], m, r);
}

/* ---------- building blocks -------------------------------------------------------------------- */

typedef struct {
  vt_graph *g;
  char base[400];
  bool oom;
} bld;

static int32_t chk(bld *b, int32_t v) {
  if (v < 0) b->oom = true;
  return v;
}

static int32_t node1(bld *b, int op, const char *sfx, int n_in, const int32_t *in) {
  for (int i = 0; i < n_in; i++)
    if (in[i] < 0 && !(op == VT_OP_Attention && i > 2)) { b->oom = true; return -1; }
  return chk(b, vt_rw_node1(b->g, op, b->base, sfx, n_in, in));
}

static void set_ints(bld *b, int32_t v, const char *name, const int64_t *vals, int n) {
  if (v < 0) return;
  vt_attr *a = vt_node_add_attr(b->g, b->g->values[v].producer, name, VT_ATTR_INTS);
  if (!a || !(a->ints = vt_arena_alloc(&b->g->arena, (size_t)n * sizeof(int64_t)))) { b->oom = true; return; }
  a->n = n;
  memcpy(a->ints, vals, (size_t)n * sizeof(int64_t));
}

static void set_int(bld *b, int32_t v, const char *name, int64_t x) {
  if (v < 0) return;
  vt_attr *a = vt_node_add_attr(b->g, b->g->values[v].producer, name, VT_ATTR_INT);
  if (!a) { b->oom = true; return; }
  a->i = x;
}

/* A constant of dtype dt with the given dims; data copied into the graph's arena. */
static int32_t constant(bld *b, const char *sfx, vt_dtype dt, int rank, const int64_t *dims, const void *data) {
  int64_t n = vt_shape_numel(rank, dims);
  size_t bytes = (size_t)(n > 0 ? n : 1) * vt_dtype_size(dt);
  const char *name = vt_rw_fresh_name(b->g, b->base, sfx);
  void *d = vt_arena_alloc(&b->g->arena, bytes);
  if (!name || !d) { b->oom = true; return -1; }
  memcpy(d, data, (size_t)n * vt_dtype_size(dt));
  vt_tensor t = {.dtype = dt, .rank = rank};
  for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
  t.data = d;
  return chk(b, vt_graph_add_const(b->g, name, &t));
}

static int32_t transpose(bld *b, const char *sfx, int32_t x, const int64_t *perm, int rank) {
  int32_t v = node1(b, VT_OP_Transpose, sfx, 1, &x);
  set_ints(b, v, "perm", perm, rank);
  return v;
}

static const int64_t P0213[4] = {0, 2, 1, 3};

/* [B,N,H*D] -> [B,H,N,D] */
static int32_t to_heads(bld *b, const char *sfx, int32_t x, int64_t heads) {
  int64_t sh[4] = {0, 0, heads, -1};
  int32_t s = chk(b, vt_rw_const_i64(b->g, b->base, "Attention_heads_shape", sh, 4));
  int32_t r = node1(b, VT_OP_Reshape, sfx, 2, (int32_t[]){x, s});
  return transpose(b, sfx, r, P0213, 4);
}

/* [B,H,S,Dv] -> existing value out [B,S,H*Dv] */
static void from_heads_into(bld *b, int32_t att, int32_t out) {
  int32_t t = transpose(b, "Attention_out_t", att, P0213, 4);
  int64_t sh[3] = {0, 0, -1};
  int32_t s = chk(b, vt_rw_const_i64(b->g, b->base, "Attention_out_shape", sh, 3));
  if (b->oom) return;
  const char *name = vt_rw_fresh_name(b->g, b->base, "Attention_out");
  if (!name || vt_graph_add_node(b->g, name, VT_OP_Reshape, 2, (int32_t[]){t, s}, 1, &out) < 0) b->oom = true;
}

/* A node computing the existing value `out` (an output of the fused op, detached first). */
static void produce_into(bld *b, int op, const char *sfx, int n_in, const int32_t *in, int32_t out) {
  if (b->oom) return;
  const char *name = vt_rw_fresh_name(b->g, b->base, sfx);
  int32_t node = name ? vt_graph_add_node(b->g, name, op, n_in, in, 1, &out) : -1;
  if (node < 0) b->oom = true;
}

/* Concat(past, x) over axis 2, into the node's present output slot o when it has one. */
static int32_t concat_past(bld *b, int32_t root, int o, int32_t past, int32_t x) {
  vt_graph *g = b->g;
  const vt_node *n = &g->nodes[root];
  int32_t outv = o < n->n_out ? n->out[o] : -1;
  if (past < 0) {
    if (outv >= 0) {
      vt_rw_detach_output(g, root, o);
      produce_into(b, VT_OP_Identity, o == 1 ? "present_key" : "present_value", 1, &x, outv);
    }
    return x;
  }
  int32_t c;
  if (outv >= 0) {
    vt_rw_detach_output(g, root, o);
    produce_into(b, VT_OP_Concat, o == 1 ? "present_key" : "present_value", 2, (int32_t[]){past, x}, outv);
    c = outv;
    if (!b->oom) {
      vt_attr *a = vt_node_add_attr(g, g->n_nodes - 1, "axis", VT_ATTR_INT);
      if (!a) b->oom = true; else a->i = 2;
    }
  } else {
    c = node1(b, VT_OP_Concat, "Attention_kv", 2, (int32_t[]){past, x});
    set_int(b, c, "axis", 2);
  }
  return c;
}

/* x + the constant slice [off, off+len) of the 1-D constant bias (or x when bias < 0). */
static int32_t add_bias_slice(bld *b, const char *sfx, int32_t x, int32_t bias, int64_t off, int64_t len) {
  if (bias < 0) return x;
  const float *bd = b->g->values[bias].cdata->data;
  int32_t c = constant(b, "Attention_bias", VT_F32, 1, &len, bd + off);
  return node1(b, VT_OP_Add, sfx, 2, (int32_t[]){x, c});
}

/* int32 contrib mask -> additive f32 mask (0 kept, mask_filter_value masked), broadcastable to
 * [B,H,S,T]: [B] lengths (T constant) and [B,T] -> [B,1,1,T], [B,S,T] -> [B,1,S,T]. */
static int32_t ms_additive_mask(bld *b, int32_t mask, float filter, int64_t T) {
  vt_graph *g = b->g;
  int rank = g->values[mask].rank;
  int32_t keep;
  if (rank == 1) {
    int32_t *iota = malloc((size_t)(T > 0 ? T : 1) * sizeof *iota);
    if (!iota) { b->oom = true; return -1; }
    for (int64_t j = 0; j < T; j++) iota[j] = (int32_t)j;
    int32_t io = constant(b, "Attention_key_index", VT_I32, 1, &T, iota);
    free(iota);
    int32_t len = chk(b, vt_rw_unsqueeze(g, mask, 1, b->base, "Attention_key_len"));
    keep = node1(b, VT_OP_Less, "Attention_keep", 2, (int32_t[]){io, len});
  } else {
    int32_t zero_i = 0;
    int32_t z = constant(b, "Attention_zero_i", VT_I32, 0, NULL, &zero_i);
    keep = node1(b, VT_OP_Greater, "Attention_keep", 2, (int32_t[]){mask, z});
  }
  float zf = 0.0f;
  int32_t z = constant(b, "Attention_zero", VT_F32, 0, NULL, &zf);
  int32_t fv = constant(b, "Attention_filter", VT_F32, 0, NULL, &filter);
  int32_t add = node1(b, VT_OP_Where, "Attention_mask_add", 3, (int32_t[]){keep, z, fv});
  add = chk(b, b->oom ? -1 : vt_rw_unsqueeze(g, add, 1, b->base, "Attention_mask4"));
  if (rank != 3 && !b->oom) add = chk(b, vt_rw_unsqueeze(g, add, 1, b->base, "Attention_mask4"));
  return add;
}

/* Appends ai.vtopt.Attention(q, k, v, mask?) with scale and causal; returns its output value. */
static int32_t attention(bld *b, int32_t q, int32_t k, int32_t v, int32_t mask, float scale, bool causal) {
  int32_t in[4] = {q, k, v, mask};
  int32_t a = node1(b, VT_OP_Attention, "Attention", mask >= 0 ? 4 : 3, in);
  if (a < 0) return -1;
  vt_attr *sa = vt_node_add_attr(b->g, b->g->values[a].producer, "scale", VT_ATTR_FLOAT);
  if (!sa) { b->oom = true; return -1; }
  sa->f = scale;
  if (causal) set_int(b, a, "causal", 1);
  return a;
}

static void bld_init(bld *b, vt_graph *g, int32_t root) {
  b->g = g;
  b->oom = false;
  const char *nm = g->nodes[root].name;
  snprintf(b->base, sizeof b->base, "%s", nm && nm[0] ? nm : "attention");
}

static int bld_done(bld *b, vt_error *e) {
  if (b->oom) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory in fuse-attention", b->g->path);
  return VT_OK;
}

/* ---------- rewrites --------------------------------------------------------------------------- */

static int rewrite_onnx(vt_graph *g, int32_t root, void *recp, vt_error *e) {
  fo_rec r = *(fo_rec *)recp;
  bld b;
  bld_init(&b, g, root);
  const vt_node *n0 = &g->nodes[root];
  int32_t in[6] = {-1, -1, -1, -1, -1, -1};
  for (int i = 0; i < 6 && i < n0->n_in; i++) in[i] = n0->in[i];
  float scale = vt_node_attr(n0, "scale") ? vt_attr_float(n0, "scale", 0.0f) : 0.0f;
  int32_t y = n0->out[0];   /* read now: adding nodes moves g->nodes */
  int32_t q = in[0], k = in[1], v = in[2], mask = in[3];
  if (r.rank == 3) {
    q = to_heads(&b, "Attention_q", q, r.hq);
    k = to_heads(&b, "Attention_k", k, r.hkv);
    v = to_heads(&b, "Attention_v", v, r.hkv);
  }
  k = concat_past(&b, root, 1, in[4], k);
  v = concat_past(&b, root, 2, in[5], v);
  if (r.causal_mask && !b.oom) {   /* top-left causal over the new keys: key j visible iff j <= i + P */
    bool is_bool = mask >= 0 && g->values[mask].dtype == VT_BOOL;
    int64_t dims[2] = {r.S, r.T};
    size_t cnt = (size_t)(r.S * r.T > 0 ? r.S * r.T : 1);
    void *data = calloc(cnt, is_bool || mask < 0 ? 1 : sizeof(float));
    if (!data) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory in fuse-attention", g->path);
    for (int64_t i = 0; i < r.S; i++)
      for (int64_t j = 0; j < r.T; j++) {
        bool vis = j <= i + r.P;
        if (is_bool || mask < 0) ((uint8_t *)data)[i * r.T + j] = vis;
        else ((float *)data)[i * r.T + j] = vis ? 0.0f : -INFINITY;
      }
    int32_t c = constant(&b, "Attention_causal", is_bool || mask < 0 ? VT_BOOL : VT_F32, 2, dims, data);
    free(data);
    if (mask < 0) mask = c;
    else mask = node1(&b, is_bool ? VT_OP_And : VT_OP_Add, "Attention_mask", 2, (int32_t[]){mask, c});
  }
  vt_rw_detach_output(g, root, 0);
  if (r.rank == 4) {
    int32_t in4[4] = {q, k, v, mask};
    if (!b.oom) {
      const char *name = vt_rw_fresh_name(g, b.base, "Attention");
      int32_t node = name ? vt_graph_add_node(g, name, VT_OP_Attention, mask >= 0 ? 4 : 3, in4, 1, &y) : -1;
      vt_attr *sa = node >= 0 ? vt_node_add_attr(g, node, "scale", VT_ATTR_FLOAT) : NULL;
      if (!sa) b.oom = true;
      else {
        sa->f = scale;
        if (r.causal) {
          vt_attr *ca = vt_node_add_attr(g, node, "causal", VT_ATTR_INT);
          if (!ca) b.oom = true; else ca->i = 1;
        }
      }
    }
  } else {
    int32_t a = attention(&b, q, k, v, mask, scale, r.causal);
    if (!b.oom) from_heads_into(&b, a, y);
  }
  return bld_done(&b, e);
}

/* The contrib ops after Q/K/V ([B,N,H*D] each) are known: heads, past, masks, attention, output. */
static int ms_tail(bld *b, int32_t root, fo_rec *r, int32_t q, int32_t k, int32_t v, int32_t pk, int32_t pv, int32_t mask,
                   int32_t abias, bool packed_present, vt_error *e) {
  vt_graph *g = b->g;
  const vt_node *n0 = &g->nodes[root];   /* only before nodes are added (g->nodes moves) */
  int64_t N = vt_attr_int(n0, "num_heads", 1);
  float scale = vt_attr_float(n0, "scale", 0.0f), filter = vt_attr_float(n0, "mask_filter_value", -10000.0f);
  int32_t present = packed_present && n0->n_out > 1 ? n0->out[1] : -1, y = n0->out[0];
  q = to_heads(b, "Attention_q", q, N);
  k = to_heads(b, "Attention_k", k, N);
  v = to_heads(b, "Attention_v", v, N);
  if (packed_present) {
    if (pk >= 0) {
      k = node1(b, VT_OP_Concat, "Attention_kv", 2, (int32_t[]){pk, k});
      set_int(b, k, "axis", 2);
      v = node1(b, VT_OP_Concat, "Attention_kv", 2, (int32_t[]){pv, v});
      set_int(b, v, "axis", 2);
    }
    if (present >= 0 && !b->oom) {   /* present = [K; V] stacked on a new axis 0 */
      vt_rw_detach_output(g, root, 1);
      int32_t k5 = chk(b, vt_rw_unsqueeze(g, k, 0, b->base, "present_k"));
      int32_t v5 = b->oom ? -1 : chk(b, vt_rw_unsqueeze(g, v, 0, b->base, "present_v"));
      produce_into(b, VT_OP_Concat, "present", 2, (int32_t[]){k5, v5}, present);
      if (!b->oom) {
        vt_attr *a = vt_node_add_attr(g, g->n_nodes - 1, "axis", VT_ATTR_INT);
        if (!a) b->oom = true; else a->i = 0;
      }
    }
  } else {
    k = concat_past(b, root, 1, pk, k);
    v = concat_past(b, root, 2, pv, v);
  }
  int32_t m = -1;
  if (mask >= 0 && !b->oom) m = ms_additive_mask(b, mask, filter, r->T);
  if (abias >= 0) m = m >= 0 ? node1(b, VT_OP_Add, "Attention_mask", 2, (int32_t[]){m, abias}) : abias;
  vt_rw_detach_output(g, root, 0);
  int32_t a = b->oom ? -1 : attention(b, q, k, v, m, scale, r->causal);
  if (!b->oom) from_heads_into(b, a, y);
  return bld_done(b, e);
}

static int rewrite_mha(vt_graph *g, int32_t root, void *recp, vt_error *e) {
  fo_rec r = *(fo_rec *)recp;
  bld b;
  bld_init(&b, g, root);
  const vt_node *n0 = &g->nodes[root];
  int32_t in[8];
  for (int i = 0; i < 8; i++) in[i] = i < n0->n_in ? n0->in[i] : -1;
  int64_t Hd = g->values[in[0]].dims[2], Hv = g->values[in[2]].dims[2];
  int32_t q = add_bias_slice(&b, "Attention_q_bias", in[0], in[3], 0, Hd);
  int32_t k = add_bias_slice(&b, "Attention_k_bias", in[1], in[3], Hd, Hd);
  int32_t v = add_bias_slice(&b, "Attention_v_bias", in[2], in[3], 2 * Hd, Hv);
  return ms_tail(&b, root, &r, q, k, v, in[6], in[7], in[4], in[5], false, e);
}

static int rewrite_msa(vt_graph *g, int32_t root, void *recp, vt_error *e) {
  fo_rec r = *(fo_rec *)recp;
  bld b;
  bld_init(&b, g, root);
  const vt_node *n0 = &g->nodes[root];
  int32_t in[6];
  for (int i = 0; i < 6; i++) in[i] = i < n0->n_in ? n0->in[i] : -1;
  const vt_value *w = &g->values[in[1]];
  int64_t din = w->dims[0], cols = w->dims[1];
  const float *wd = w->cdata->data;
  int32_t proj[3];
  int64_t off = 0;
  static const char *sfx[3] = {"Attention_q_proj", "Attention_k_proj", "Attention_v_proj"};
  for (int p = 0; p < 3; p++) {   /* x . W[:, off:off+hs] (+ bias slice) */
    int64_t hs = r.hs[p];
    float *blk = malloc((size_t)(din * hs > 0 ? din * hs : 1) * sizeof *blk);
    if (!blk) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory in fuse-attention", g->path);
    for (int64_t i = 0; i < din; i++) memcpy(blk + i * hs, wd + i * cols + off, (size_t)hs * sizeof *blk);
    int32_t wc = constant(&b, "Attention_weight", VT_F32, 2, (int64_t[]){din, hs}, blk);
    free(blk);
    int32_t mm = node1(&b, VT_OP_MatMul, sfx[p], 2, (int32_t[]){in[0], wc});
    proj[p] = add_bias_slice(&b, sfx[p], mm, in[2], off, hs);
    off += hs;
  }
  int32_t pk = -1, pv = -1;
  if (in[4] >= 0) {
    for (int s = 0; s < 2; s++) {
      int64_t idx = s;
      int32_t iv = constant(&b, "Attention_past_index", VT_I64, 0, NULL, &idx);
      int32_t gth = node1(&b, VT_OP_Gather, s ? "Attention_past_v" : "Attention_past_k", 2, (int32_t[]){in[4], iv});
      set_int(&b, gth, "axis", 0);
      if (s) pv = gth; else pk = gth;
    }
  }
  return ms_tail(&b, root, &r, proj[0], proj[1], proj[2], pk, pv, in[3], in[5], true, e);
}

int vt_fuse_attention_op_rules(vt_pattern *rules, int max) {
  vt_pattern all[3] = {
      {.name = "onnx-attention", .root_op = VT_OP_OnnxAttention, .match = match_onnx, .rewrite = rewrite_onnx,
       .rec_size = sizeof(fo_rec)},
      {.name = "ms-multihead-attention", .root_op = VT_OP_MsMultiHeadAttention, .match = match_mha,
       .rewrite = rewrite_mha, .rec_size = sizeof(fo_rec)},
      {.name = "ms-attention", .root_op = VT_OP_MsAttention, .match = match_msa, .rewrite = rewrite_msa,
       .rec_size = sizeof(fo_rec)},
  };
  int n = max < 3 ? max : 3;
  for (int i = 0; i < n; i++) rules[i] = all[i];
  return n;
}

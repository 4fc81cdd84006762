/* portable.c — `-o out.onnx --portable`: lowers vtopt's own ops (domain ai.vtopt) to standard
 * ONNX ops so that any ONNX runtime runs the rewritten graph:
 *   Attention     -> MatMul(Q, K^T) * scale [+ mask | Where(bool mask)] [+ key bias] [+ causal]
 *                    -> Softmax -> MatMul(., V)
 *   TokenMatch    -> head mean, L2 normalisation, Gather of the A/B sets, MatMul scores, ArgMax /
 *                    ReduceMax, TopK (ties: lower index first, as the kernel), ScatterElements
 *                    of the merged set, CumSum ranks, Where, Concat and a constant Gather into
 *                    token order: the same plan as runtime/kernels_tome.c
 *   TokenMerge    -> ScatterElements(reduction=add) of x*size and size, Div
 *   TokenUnmerge  -> GatherElements
 * Everything else in ai.vtopt (HTTM's merged attention, Eventful's stateful gates and buffers,
 * ...) is refused by name with the reason. The default-domain opset is raised to 16 when lower
 * (ScatterElements with reduction needs it); graphs below opset 13 are refused (raising them
 * would change the meaning of their Squeeze/Unsqueeze/Split/ReduceSum nodes). Token counts,
 * channels and heads must be constants; the batch may stay symbolic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes_internal.h"

typedef struct lower {
  vt_graph *g;
  const char *base;   /* names of new values: base/suffix */
  int64_t opset;      /* default-domain opset of the result */
  bool bad;           /* out of memory somewhere */
} lower;

static int32_t nd(lower *L, int op, const char *suffix, int n_in, const int32_t *in) {
  if (L->bad) return -1;
  int32_t v = vt_rw_node1(L->g, op, L->base, suffix, n_in, in);
  if (v < 0) L->bad = true;
  return v;
}
static int32_t nd1(lower *L, int op, const char *suffix, int32_t a) { return nd(L, op, suffix, 1, &a); }
static int32_t nd2(lower *L, int op, const char *suffix, int32_t a, int32_t b) {
  int32_t in[2] = {a, b};
  return nd(L, op, suffix, 2, in);
}

static vt_attr *attr(lower *L, int32_t v, const char *name, vt_attr_type type) {
  if (L->bad || v < 0) return NULL;
  vt_attr *a = vt_node_add_attr(L->g, L->g->values[v].producer, name, type);
  if (!a) L->bad = true;
  return a;
}
static void attr_i(lower *L, int32_t v, const char *name, int64_t x) {
  vt_attr *a = attr(L, v, name, VT_ATTR_INT);
  if (a) a->i = x;
}
static void attr_ints(lower *L, int32_t v, const char *name, const int64_t *x, int32_t n) {
  vt_attr *a = attr(L, v, name, VT_ATTR_INTS);
  if (!a) return;
  a->ints = vt_arena_alloc(&L->g->arena, (size_t)(n ? n : 1) * sizeof(int64_t));
  if (!a->ints) { L->bad = true; return; }
  memcpy(a->ints, x, (size_t)n * sizeof(int64_t));
  a->n = n;
}

static int32_t ci64(lower *L, const char *suffix, const int64_t *vals, int32_t n) {
  if (L->bad) return -1;
  int32_t v = vt_rw_const_i64(L->g, L->base, suffix, vals, n);
  if (v < 0) L->bad = true;
  return v;
}
static int32_t ci64_1(lower *L, const char *suffix, int64_t x) { return ci64(L, suffix, &x, 1); }
/* a float32 constant of shape [n] (n = 0: a scalar) */
static int32_t cf32(lower *L, const char *suffix, const float *vals, int32_t n) {
  if (L->bad) return -1;
  const char *name = vt_rw_fresh_name(L->g, L->base, suffix);
  float *data = vt_arena_alloc(&L->g->arena, (size_t)(n ? n : 1) * sizeof *data);
  if (!name || !data) { L->bad = true; return -1; }
  memcpy(data, vals, (size_t)(n ? n : 1) * sizeof *data);
  vt_tensor t = {.dtype = VT_F32, .rank = n ? 1 : 0, .dims = {n}, .data = data};
  int32_t v = vt_graph_add_const(L->g, name, &t);
  if (v < 0) L->bad = true;
  return v;
}
static int32_t cf32_1(lower *L, const char *suffix, float x) { return cf32(L, suffix, &x, 0); }

/* ReduceMean/Max/SumSquare over one axis: axes as an input from opset 18, else an attribute. */
static int32_t reduce(lower *L, int op, int32_t x, int64_t axis, bool keepdims, const char *suffix) {
  int32_t v;
  if (L->opset >= 18) v = nd2(L, op, suffix, x, ci64_1(L, "axes", axis));
  else {
    v = nd1(L, op, suffix, x);
    attr_ints(L, v, "axes", &axis, 1);
  }
  attr_i(L, v, "keepdims", keepdims);
  return v;
}

/* [batch of x, tail...] as a shape tensor */
static int32_t batch_shape(lower *L, int32_t x, const int64_t *tail, int32_t n) {
  int32_t shp = nd1(L, VT_OP_Shape, "shape", x);
  int32_t in[3] = {shp, ci64_1(L, "zero", 0), ci64_1(L, "one", 1)};
  int32_t b = nd(L, VT_OP_Slice, "batch", 3, in);
  int32_t cat = nd2(L, VT_OP_Concat, "shape_out", b, ci64(L, "tail", tail, n));
  attr_i(L, cat, "axis", 0);
  return cat;
}

static int32_t const_of_shape(lower *L, int32_t shape, vt_dtype dt, double value, const char *suffix) {
  int32_t v = nd1(L, VT_OP_ConstantOfShape, suffix, shape);
  vt_attr *a = attr(L, v, "value", VT_ATTR_TENSOR);
  if (!a) return v;
  vt_tensor *t = vt_arena_alloc(&L->g->arena, sizeof *t);
  void *d = vt_arena_alloc(&L->g->arena, 8);
  if (!t || !d) { L->bad = true; return v; }
  memset(t, 0, sizeof *t);
  t->dtype = dt;
  t->rank = 1;
  t->dims[0] = 1;
  t->data = d;
  if (dt == VT_F32) *(float *)d = (float)value;
  else *(int64_t *)d = (int64_t)value;
  a->t = t;
  return v;
}

static bool const_dims(const vt_value *v, int32_t from) {
  for (int32_t d = from; d < v->rank; d++)
    if (!vt_dim_is_const(v->dims[d])) return false;
  return v->rank >= 0;
}

/* Reattaches the last node built (producing tmp) to produce out instead. */
static void produce_into(lower *L, int32_t tmp, int32_t out) {
  if (L->bad || tmp < 0) return;
  vt_graph *g = L->g;
  int32_t node = g->values[tmp].producer;
  for (int32_t o = 0; o < g->nodes[node].n_out; o++)
    if (g->nodes[node].out[o] == tmp) g->nodes[node].out[o] = out;
  g->values[out].producer = node;
  g->values[tmp].producer = -1;
}

static int lower_attention(lower *L, int32_t ni, vt_error *e) {
  vt_graph *g = L->g;
  vt_node *n = &g->nodes[ni];
  int32_t q = n->in[0], k = n->in[1], v = n->in[2];
  int32_t mask = n->n_in > 3 ? n->in[3] : -1, kbias = n->n_in > 4 ? n->in[4] : -1;
  const vt_value *qv = &g->values[q], *kv = &g->values[k];
  if (n->n_in > 5 && n->in[5] >= 0)
    return vt_node_errorf(g, ni, e, "--portable: the decomposed relative-position bias (bias_rows/bias_cols) is not lowered yet");
  if (qv->rank != 4 || kv->rank != 4)
    return vt_node_errorf(g, ni, e, "--portable: needs Q and K of rank 4");
  if (qv->dims[1] != kv->dims[1])
    return vt_node_errorf(g, ni, e, "--portable: grouped-query attention (K/V heads %lld < Q heads %lld) is not lowered yet",
                          (long long)kv->dims[1], (long long)qv->dims[1]);
  double scale = 0;
  for (int32_t a = 0; a < n->n_attr; a++)
    if (!strcmp(n->attr[a].name, "scale")) scale = n->attr[a].f;
  if (scale == 0 && !vt_dim_is_const(qv->dims[3]))
    return vt_node_errorf(g, ni, e, "--portable: the default scale needs a constant head width");
  if (scale == 0) scale = 1.0 / sqrt((double)qv->dims[3]);
  int64_t causal = vt_attr_int(n, "causal", 0), nq = qv->dims[2], nk = kv->dims[2];
  if (causal && (!vt_dim_is_const(nq) || !vt_dim_is_const(nk)))
    return vt_node_errorf(g, ni, e, "--portable: causal attention needs constant token counts");
  int32_t out = n->out[0];
  vt_rw_detach_output(g, ni, 0);
  int64_t perm[4] = {0, 1, 3, 2};
  int32_t kt = nd1(L, VT_OP_Transpose, "k_t", k);
  attr_ints(L, kt, "perm", perm, 4);
  int32_t s = nd2(L, VT_OP_MatMul, "scores", q, kt);
  s = nd2(L, VT_OP_Mul, "scaled", s, cf32_1(L, "scale", (float)scale));
  if (mask >= 0) {
    if (g->values[mask].dtype == VT_BOOL) {
      int32_t in[3] = {mask, s, cf32_1(L, "neg_inf", -INFINITY)};
      s = nd(L, VT_OP_Where, "masked", 3, in);
    } else {
      s = nd2(L, VT_OP_Add, "masked", s, mask);
    }
  }
  if (kbias >= 0) s = nd2(L, VT_OP_Add, "key_bias", s, vt_rw_unsqueeze(g, kbias, 2, L->base, "key_bias4"));
  if (causal) {   /* query i sees key j iff j <= i + (nk - nq) */
    float *cm = malloc((size_t)(nq * nk) * sizeof *cm);
    if (!cm) { L->bad = true; return VT_OK; }
    for (int64_t i = 0; i < nq; i++)
      for (int64_t j = 0; j < nk; j++) cm[i * nk + j] = j <= i + (nk - nq) ? 0.0f : -INFINITY;
    int32_t c = cf32(L, "causal", cm, (int32_t)(nq * nk));
    free(cm);
    int64_t shp[2] = {nq, nk};
    s = nd2(L, VT_OP_Add, "causal_scores", s, nd2(L, VT_OP_Reshape, "causal2d", c, ci64(L, "causal_shape", shp, 2)));
  }
  int32_t p = nd1(L, VT_OP_Softmax, "probs", s);
  attr_i(L, p, "axis", -1);
  produce_into(L, nd2(L, VT_OP_MatMul, "out", p, v), out);
  return VT_OK;
}

static int lower_token_match(lower *L, int32_t ni, vt_error *e) {
  vt_graph *g = L->g;
  vt_node *n = &g->nodes[ni];
  int32_t m = n->in[0], out = n->out[0];
  const vt_value *mv = &g->values[m];
  if ((mv->rank != 3 && mv->rank != 4) || !const_dims(mv, 1))
    return vt_node_errorf(g, ni, e, "--portable: needs a metric [B,N,C] or [B,H,N,C] with constant N, C (and H)");
  int64_t N = mv->dims[mv->rank - 2], r = vt_attr_int(n, "r", 0), stride = vt_attr_int(n, "stride", 2),
          prot = vt_attr_int(n, "protected", 0);
  if (stride < 2) return vt_node_errorf(g, ni, e, "--portable: stride %lld < 2", (long long)stride);
  int64_t nB = N / stride, nA = N - nB;
  int64_t *ia = malloc((size_t)(N + 1) * sizeof *ia), *ib = malloc((size_t)(N + 1) * sizeof *ib),
          *inv = malloc((size_t)(N + 1) * sizeof *inv), *rowb = malloc((size_t)(N + 1) * sizeof *rowb);
  float *colb = malloc((size_t)(N + 1) * sizeof *colb), *rowa = malloc((size_t)(N + 1) * sizeof *rowa);
  if (!ia || !ib || !inv || !rowb || !colb || !rowa) L->bad = true;
  int64_t ka = 0, kb = 0, eligible = 0;
  bool any_prot_a = false, any_prot_b = false;
  for (int64_t i = 0; i < N && !L->bad; i++) {
    if (i % stride == stride - 1 && kb < nB) {
      inv[i] = nA + kb;
      colb[kb] = i < prot ? -INFINITY : 0.0f;
      any_prot_b |= i < prot;
      rowb[kb] = nA - r + kb;
      ib[kb++] = i;
    } else {
      inv[i] = ka;
      rowa[ka] = i < prot ? -INFINITY : 0.0f;
      any_prot_a |= i < prot;
      eligible += i >= prot;
      ia[ka++] = i;
    }
  }
  int rc = VT_OK;
  if (!L->bad && r > eligible)
    rc = vt_node_errorf(g, ni, e, "--portable: r=%lld exceeds the %lld tokens that can merge", (long long)r, (long long)eligible);
  if (!L->bad && !rc) {
    vt_rw_detach_output(g, ni, 0);
    int32_t mm = mv->rank == 4 ? reduce(L, VT_OP_ReduceMean, m, 1, false, "head_mean") : m;
    if (r == 0) {   /* the identity plan */
      int64_t none = 0;
      int32_t zero = const_of_shape(L, batch_shape(L, mm, &N, 1), VT_I64, 0, "zeros");
      for (int64_t i = 0; i < N; i++) ia[i] = i;
      (void)none;
      produce_into(L, nd2(L, VT_OP_Add, "plan", zero, ci64(L, "iota", ia, (int32_t)N)), out);
    } else {
      int32_t ss = reduce(L, VT_OP_ReduceSumSquare, mm, -1, true, "sumsq");
      int32_t norm = nd2(L, VT_OP_Max, "norm", nd1(L, VT_OP_Sqrt, "l2", ss), cf32_1(L, "tiny", 1e-30f));
      int32_t unit = nd2(L, VT_OP_Div, "unit", mm, norm);
      int32_t a = nd2(L, VT_OP_Gather, "set_a", unit, ci64(L, "idx_a", ia, (int32_t)nA));
      attr_i(L, a, "axis", 1);
      int32_t b = nd2(L, VT_OP_Gather, "set_b", unit, ci64(L, "idx_b", ib, (int32_t)nB));
      attr_i(L, b, "axis", 1);
      int64_t perm[3] = {0, 2, 1};
      int32_t bt = nd1(L, VT_OP_Transpose, "set_b_t", b);
      attr_ints(L, bt, "perm", perm, 3);
      int32_t sc = nd2(L, VT_OP_MatMul, "scores", a, bt);
      if (any_prot_b) sc = nd2(L, VT_OP_Add, "scores_eligible", sc, cf32(L, "protected_b", colb, (int32_t)nB));
      int32_t best = reduce(L, VT_OP_ReduceMax, sc, -1, false, "best");
      int32_t bestj = nd1(L, VT_OP_ArgMax, "best_b", sc);
      attr_i(L, bestj, "axis", -1);
      attr_i(L, bestj, "keepdims", 0);
      if (any_prot_a) best = nd2(L, VT_OP_Add, "best_eligible", best, cf32(L, "protected_a", rowa, (int32_t)nA));
      /* TopK: the r best A tokens (sorted; equal scores: lower index first) */
      int32_t vals = vt_rw_new_value(g, L->base, "merged_score"), src = vt_rw_new_value(g, L->base, "merged_a");
      int32_t tin[2] = {best, ci64_1(L, "r", r)}, tout[2] = {vals, src};
      if (vals < 0 || src < 0 || L->bad || vt_graph_add_node(g, g->values[src].name, VT_OP_TopK, 2, tin, 2, tout) < 0)
        L->bad = true;
      attr_i(L, src, "axis", -1);
      attr_i(L, src, "largest", 1);
      attr_i(L, src, "sorted", 1);
      int32_t zeros_a = const_of_shape(L, batch_shape(L, best, &nA, 1), VT_I64, 0, "zeros_a");
      int32_t ones_r = const_of_shape(L, nd1(L, VT_OP_Shape, "merged_shape", src), VT_I64, 1, "ones_r");
      int32_t sin[3] = {zeros_a, src, ones_r};
      int32_t merged = nd(L, VT_OP_ScatterElements, "is_merged", 3, sin);
      attr_i(L, merged, "axis", 1);
      int32_t kept = nd2(L, VT_OP_Sub, "is_kept", ci64_1(L, "one_i", 1), merged);
      int32_t rank = nd2(L, VT_OP_CumSum, "kept_rank", kept, ci64_1(L, "axis1", 1));
      attr_i(L, rank, "exclusive", 1);
      int32_t dst = nd2(L, VT_OP_Add, "dst_row", bestj, ci64_1(L, "b_row0", nA - r));
      int32_t cond = nd2(L, VT_OP_Equal, "merged_bool", merged, ci64_1(L, "one_i2", 1));
      int32_t win[3] = {cond, dst, rank};
      int32_t row_a = nd(L, VT_OP_Where, "row_a", 3, win);
      int32_t zeros_b = const_of_shape(L, batch_shape(L, best, &nB, 1), VT_I64, 0, "zeros_b");
      int32_t row_b = nd2(L, VT_OP_Add, "row_b", zeros_b, ci64(L, "rows_b", rowb, (int32_t)nB));
      int32_t cat = nd2(L, VT_OP_Concat, "rows_ab", row_a, row_b);
      attr_i(L, cat, "axis", 1);
      int32_t plan = nd2(L, VT_OP_Gather, "plan", cat, ci64(L, "token_order", inv, (int32_t)N));
      attr_i(L, plan, "axis", 1);
      produce_into(L, plan, out);
    }
  }
  free(ia); free(ib); free(inv); free(rowb); free(colb); free(rowa);
  return rc;
}

static int lower_token_merge(lower *L, int32_t ni, vt_error *e) {
  vt_graph *g = L->g;
  vt_node *n = &g->nodes[ni];
  int32_t x = n->in[0], plan = n->in[1], sizes = n->n_in > 2 ? n->in[2] : -1;
  int32_t y = n->out[0], sizes_out = n->n_out > 1 ? n->out[1] : -1;
  const vt_value *xv = &g->values[x];
  int64_t r = vt_attr_int(n, "r", 0);
  if (xv->rank != 3 || !const_dims(xv, 1))
    return vt_node_errorf(g, ni, e, "--portable: needs x [B,N,C] with constant N and C");
  int64_t M = xv->dims[1] - r, C = xv->dims[2];
  vt_rw_detach_output(g, ni, 0);
  if (sizes_out >= 0) vt_rw_detach_output(g, ni, 1);
  int32_t s = sizes >= 0 ? sizes : const_of_shape(L, nd1(L, VT_OP_Shape, "plan_shape", plan), VT_F32, 1, "unit_sizes");
  int32_t s3 = vt_rw_unsqueeze(g, s, 2, L->base, "sizes3");
  int32_t xs = nd2(L, VT_OP_Mul, "weighted", x, s3);
  int32_t idx = nd2(L, VT_OP_Expand, "plan3", vt_rw_unsqueeze(g, plan, 2, L->base, "plan_col"), nd1(L, VT_OP_Shape, "x_shape", x));
  int64_t tail[2] = {M, C};
  int32_t zy = const_of_shape(L, batch_shape(L, x, tail, 2), VT_F32, 0, "zeros_y");
  int32_t in1[3] = {zy, idx, xs};
  int32_t num = nd(L, VT_OP_ScatterElements, "sum", 3, in1);
  attr_i(L, num, "axis", 1);
  vt_attr *red = attr(L, num, "reduction", VT_ATTR_STRING);
  if (red) { red->s = "add"; red->s_len = 3; }
  int32_t zs = const_of_shape(L, batch_shape(L, x, &M, 1), VT_F32, 0, "zeros_s");
  int32_t in2[3] = {zs, plan, s};
  int32_t den = nd(L, VT_OP_ScatterElements, "size_sum", 3, in2);
  attr_i(L, den, "axis", 1);
  red = attr(L, den, "reduction", VT_ATTR_STRING);
  if (red) { red->s = "add"; red->s_len = 3; }
  produce_into(L, nd2(L, VT_OP_Div, "merged", num, vt_rw_unsqueeze(g, den, 2, L->base, "size_col")), y);
  if (sizes_out >= 0) produce_into(L, nd1(L, VT_OP_Identity, "sizes_out", den), sizes_out);
  return VT_OK;
}

static int lower_token_unmerge(lower *L, int32_t ni, vt_error *e) {
  vt_graph *g = L->g;
  vt_node *n = &g->nodes[ni];
  int32_t y = n->in[0], plan = n->in[1], out = n->out[0];
  const vt_value *yv = &g->values[y];
  if (yv->rank != 3 || !const_dims(yv, 2))
    return vt_node_errorf(g, ni, e, "--portable: needs y [B,M,C] with constant C");
  int64_t C = yv->dims[2], tail[2];
  const vt_value *pv = &g->values[plan];
  if (pv->rank != 2 || !vt_dim_is_const(pv->dims[1])) return vt_node_errorf(g, ni, e, "--portable: needs a plan [B,N] with constant N");
  tail[0] = pv->dims[1];
  tail[1] = C;
  vt_rw_detach_output(g, ni, 0);
  int32_t idx = nd2(L, VT_OP_Expand, "plan3", vt_rw_unsqueeze(g, plan, 2, L->base, "plan_col"), batch_shape(L, plan, tail, 2));
  int32_t gat = nd2(L, VT_OP_GatherElements, "unmerged", y, idx);
  attr_i(L, gat, "axis", 1);
  produce_into(L, gat, out);
  return VT_OK;
}

int vt_graph_lower_portable(vt_graph *g, vt_error *e) {
  int64_t opset = vt_graph_opset(g, "");
  if (opset && opset < 13)
    return vt_errorf(e, VT_ERR_MODEL, "%s: --portable needs a model of opset 13 or later (this one imports opset %lld)",
                     g->path, (long long)opset);
  lower L = {.g = g, .opset = opset < 16 ? 16 : opset};
  if (vt_graph_set_opset(g, "", L.opset)) return vt_errorf(e, VT_ERR_MODEL, "out of memory");
  int32_t n0 = g->n_nodes;
  int rc = VT_OK;
  for (int32_t i = 0; i < n0 && !rc && !L.bad; i++) {
    int op = g->nodes[i].op;
    if (strcmp(vt_ops[op].domain, "ai.vtopt") != 0) continue;
    L.base = g->nodes[i].name && g->nodes[i].name[0] ? g->nodes[i].name : vt_ops[op].name;
    if (op == VT_OP_Attention) rc = lower_attention(&L, i, e);
    else if (op == VT_OP_TokenMatch) rc = lower_token_match(&L, i, e);
    else if (op == VT_OP_TokenMerge) rc = lower_token_merge(&L, i, e);
    else if (op == VT_OP_TokenUnmerge) rc = lower_token_unmerge(&L, i, e);
    else if (vt_ops[op].flags & VT_OPF_STATEFUL)
      rc = vt_node_errorf(g, i, e, "--portable: a stateful op (it keeps state from run to run, e.g. Eventful's token "
                                   "gates and buffers) has no standard ONNX form without explicit state inputs and "
                                   "outputs; export the graph without --portable or without this pass");
    else
      rc = vt_node_errorf(g, i, e, "--portable: ai.vtopt.%s has no lowering to standard ONNX yet (HTTM's merged "
                                   "attention and the other vtopt ops are refused; tome and attention are lowered)",
                          vt_ops[op].name);
  }
  if (!rc && L.bad) rc = vt_errorf(e, VT_ERR_MODEL, "%s: --portable: out of memory", g->path);
  if (rc) return rc;
  /* new nodes were appended after their users: sort, then drop the replaced nodes */
  if ((rc = vt_graph_toposort(g, e)) != VT_OK) return rc;
  vt_graph_remove_dead(g);
  /* the ai.vtopt import goes when no node uses it */
  int32_t w = 0;
  for (int32_t i = 0; i < g->n_opsets; i++)
    if (strcmp(g->opsets[i].domain ? g->opsets[i].domain : "", "ai.vtopt") != 0) g->opsets[w++] = g->opsets[i];
  g->n_opsets = w;
  if ((rc = vt_graph_infer(g, e)) != VT_OK) return rc;
  return vt_graph_verify(g, e);
}

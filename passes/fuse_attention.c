/* fuse_attention.c — the fuse-attention pass (exact, canonical): the attention core
 *   S = Q.K^T -> [scalar Mul/Div]* -> [mask Add | decomposed rel-pos bias] -> Softmax(last axis)
 *     -> [no-op Cast] -> S.V
 * becomes one ai.vtopt.Attention node. Also folded: a pre-scaled q (scalar Mul/Div right before
 * Q.K^T or before q's head Reshape/Transpose), K^T arriving through a Transpose, HF repeat_kv
 * (Unsqueeze/Expand/Reshape of K and V: GQA read directly), and the decomposed relative-position
 * bias of SAM/ViTDet (scores reshaped to [BH,h,w,h,w], biases added, reshaped back): a bias
 * over the key rows ([..., kh, 1]) and one over the key columns ([..., 1, kw]) become the
 * Attention's bias_rows [..., Nq, kh] and bias_cols [..., Nq, kw] (reshaped, never summed to a
 * [BH,Nq,Nk] mask); other bias sets are summed and reshaped into the mask. Rank-4 scores are
 * [B,H,Nq,Nk]; rank-3 scores ([B*H,Nq,Nk]) are reshaped to [B,H,..] when H is known from
 * nn.MultiheadAttention's [N,B,C] -> [N,B*H,D] reshape, else get a unit head axis
 * (Unsqueeze/Squeeze). Projections,
 * reshapes and residuals around the core stay as they are; afterwards the residual blocks around
 * each Attention are recognised (blocks.c) and counted as rule "residual-block". The rule is
 * rooted at Softmax: every Softmax is a candidate, and --explain says which step stopped the
 * others. The attention ops of ONNX (opset 23) and ONNX Runtime (com.microsoft.Attention,
 * MultiHeadAttention) are rewritten by their own rules (fuse_attention_ops.c). */
#include "passes_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int32_t sm, qk, av;      /* Softmax, Q.K^T MatMul, probs.V MatMul nodes */
  int32_t q, kt, v, mask;  /* values (mask -1 if none) */
  double scale;
  bool scaled;             /* a scale factor was found (else the scale attribute is 1) */
  int32_t rank;            /* 3 or 4 */
  /* pre-scale found upstream of Q's Reshape/Transpose chain: node `qs_user` input `qs_slot`
   * is rewired to `qs_src` (the Mul/Div's other operand) */
  int32_t qs_user, qs_slot, qs_src;
  /* decomposed relative-position bias: scores reshaped by R1, biases added, reshaped back by
   * R2: the mask becomes Reshape(sum of biases, R2's shape input) */
  int32_t rp_n, rp_bias[4], rp_shape;
  /* the decomposed form (rp_rows >= 0): rows/cols biases and the target shape of their
   * Reshape ([scores dims but the last..., kh | kw], 0 = copy, -1 = infer), rp_drank entries */
  int32_t rp_rows, rp_cols, rp_drank;
  int64_t rp_dshape[2][VT_MAX_RANK];
  const struct fa_conf *conf;
  char rp_why[200];        /* why the biases were summed into a mask (rp_rows < 0) */
  int64_t heads;           /* rank 3: heads folded into the batch dim (B*H), 1 if unknown */
} fa_rec;

typedef struct fa_conf {
  bool fold_q_scale;
  FILE *explain;                 /* --explain: one line per relative-position bias fused */
  int64_t *relpos, *decomposed;  /* counters: rel-pos biases fused / kept decomposed */
} fa_conf;

static const char *opname(const vt_graph *g, int32_t node) { return vt_ops[g->nodes[node].op].name; }

/* The scalar factor of x*c, c*x (Mul) or x/c (Div) with c a one-element constant: sets *other to
 * x and *f to c or 1/c. */
static bool scalar_factor(const vt_graph *g, int32_t node, int32_t *other, double *f) {
  const vt_node *n = &g->nodes[node];
  double c;
  if (n->op == VT_OP_Mul) {
    for (int s = 0; s < 2; s++)
      if (vt_rw_const_scalar(g, n->in[s], &c)) {
        *other = n->in[1 - s];
        *f = c;
        return true;
      }
  } else if (n->op == VT_OP_Div && vt_rw_const_scalar(g, n->in[1], &c) && c != 0.0) {
    *other = n->in[0];
    *f = 1.0 / c;
    return true;
  }
  return false;
}

/* Does value v come from a Q.K^T MatMul through scalar scalings only? */
static bool leads_to_qk(const vt_graph *g, int32_t v, int depth) {
  if (v < 0 || depth > 8) return false;
  int32_t p = g->values[v].producer;
  if (p < 0) return false;
  if (g->nodes[p].op == VT_OP_MatMul) return true;
  int32_t x;
  double f;
  return scalar_factor(g, p, &x, &f) && leads_to_qk(g, x, depth + 1);
}

/* The only node reading v (and the input slot), or -1 if none or several. */
static int32_t sole_consumer(const vt_graph *g, int32_t v, int *slot) {
  int32_t found = -1;
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++)
      if (g->nodes[i].in[k] == v) {
        if (found >= 0) return -1;
        found = i;
        *slot = (int)k;
      }
  return found;
}

static bool same_dim(vt_dim a, vt_dim b) { return a == b; }

static bool same_shape(const vt_value *a, const vt_value *b) {
  if (a->rank != b->rank || a->rank < 0) return false;
  for (int32_t d = 0; d < a->rank; d++) if (!same_dim(a->dims[d], b->dims[d])) return false;
  return true;
}

/* Does v come, through Adds, from a Reshape of Q.K^T scores (the R1 of a reshaped-bias region)? */
static bool reaches_r1(const vt_graph *g, int32_t v, int depth) {
  if (v < 0 || depth > 6) return false;
  int32_t p = g->values[v].producer;
  if (p < 0) return false;
  if (g->nodes[p].op == VT_OP_Reshape) return leads_to_qk(g, g->nodes[p].in[0], 0);
  if (g->nodes[p].op == VT_OP_Add) return reaches_r1(g, g->nodes[p].in[0], depth + 1) || reaches_r1(g, g->nodes[p].in[1], depth + 1);
  return false;
}

/* Can the two biases of a relative-position region stay decomposed? R1 (value r1) reshapes
 * the scores s [..., Nk] to [..., kh, kw] (kh * kw = Nk: the last axis splits into the key grid,
 * row-major); one bias must be [P..., kh, 1] (rows), the other [P..., 1, kw] (cols), P being R1's
 * leading dims (no broadcasting there), so Reshape(bias, [s dims but the last..., kh | kw]) holds
 * the same numbers per query row. Sets r->rp_rows/rp_cols/rp_dshape, or returns false (with the
 * reason in why) and the biases are summed into a mask. */
static bool relpos_decomposable(const vt_graph *g, int32_t s, int32_t r1, fa_rec *r, char *why, size_t whyn) {
  const vt_value *sv = &g->values[s], *r1v = &g->values[r1];
  int32_t n1 = r1v->rank, ns = sv->rank;
  r->rp_rows = r->rp_cols = -1;
  if (r->rp_n != 2) { snprintf(why, whyn, "%d biases (2 needed: one over key rows, one over key columns)", r->rp_n); return false; }
  if (n1 < 3 || ns < 2) { snprintf(why, whyn, "the reshaped scores have rank %d", n1); return false; }
  vt_dim kh = r1v->dims[n1 - 2], kw = r1v->dims[n1 - 1], nk = sv->dims[ns - 1];
  if (!vt_dim_is_const(kh) || !vt_dim_is_const(kw) || !vt_dim_is_const(nk) || kh < 2 || kw < 2 || kh * kw != nk) {
    snprintf(why, whyn, "the scores' last axis is not split into a constant key grid kh x kw (kh, kw >= 2)");
    return false;
  }
  for (int32_t b = 0; b < 2; b++) {
    const vt_value *bv = &g->values[r->rp_bias[b]];
    if (bv->rank != n1) { snprintf(why, whyn, "bias '%s' has rank %d, not the reshaped scores' %d", bv->name, bv->rank, n1); return false; }
    for (int32_t d = 0; d < n1 - 2; d++)
      if (!same_dim(bv->dims[d], r1v->dims[d])) {
        snprintf(why, whyn, "bias '%s' broadcasts over dim %d", bv->name, d);
        return false;
      }
    vt_dim a = bv->dims[n1 - 2], c = bv->dims[n1 - 1];
    if (a == kh && c == 1 && r->rp_rows < 0) r->rp_rows = r->rp_bias[b];
    else if (a == 1 && c == kw && r->rp_cols < 0) r->rp_cols = r->rp_bias[b];
    else {
      snprintf(why, whyn, "bias '%s' is neither over the key rows [..., %lld, 1] nor the key columns [..., 1, %lld]", bv->name,
               (long long)kh, (long long)kw);
      r->rp_rows = r->rp_cols = -1;
      return false;
    }
  }
  if (r->rp_rows < 0 || r->rp_cols < 0) {
    snprintf(why, whyn, "both biases are over the key %s", r->rp_rows < 0 ? "columns" : "rows");
    r->rp_rows = r->rp_cols = -1;
    return false;
  }
  /* [s dims but the last..., k]: constants as they are, a symbolic dim equal to R1's at the same
   * index as 0 (Reshape copies it from the bias), at most one other as -1 */
  bool infer = false;
  for (int32_t d = 0; d < ns - 1; d++) {
    vt_dim sd = sv->dims[d];
    int64_t x;
    if (vt_dim_is_const(sd) && sd > 0) x = sd;
    else if (!vt_dim_is_const(sd) && d < n1 - 2 && same_dim(sd, r1v->dims[d])) x = 0;
    else if (!infer && !(vt_dim_is_const(sd) && sd == 0)) { x = -1; infer = true; }
    else {
      snprintf(why, whyn, "the scores' dim %d cannot be named in a Reshape of the biases", d);
      r->rp_rows = r->rp_cols = -1;
      return false;
    }
    r->rp_dshape[0][d] = r->rp_dshape[1][d] = x;
  }
  r->rp_dshape[0][ns - 1] = kh;
  r->rp_dshape[1][ns - 1] = kw;
  r->rp_drank = ns;
  return true;
}

/* Softmax input x comes from Reshape R2: match R2(Add(...Add(R1(s), b1)..., bn)) with R1 reshaping
 * the scores s and R2 restoring their shape; the biases must together cover R1's full shape.
 * On success *x is s. */
static bool match_relpos(const vt_graph *g, int32_t r2, fa_rec *r, vt_match_ctx *m, int32_t *x) {
  const vt_node *n2 = &g->nodes[r2];
  int32_t y = n2->in[0];
  for (int steps = 0;; steps++) {
    int32_t p = g->values[y].producer;
    if (p < 0 || steps > 5) return vt_match_fail(m, "relpos", "no Reshape of the scores under '%s'", n2->name);
    if (vt_match_uses(m, y) != 1)
      return vt_match_fail(m, "relpos", "intermediate '%s' has %d uses", g->values[y].name, vt_match_uses(m, y));
    const vt_node *pn = &g->nodes[p];
    if (pn->op == VT_OP_Reshape) {
      int32_t s = pn->in[0];
      if (!leads_to_qk(g, s, 0)) return vt_match_fail(m, "relpos", "Reshape '%s' does not reshape Q.K^T scores", pn->name);
      const vt_value *sv = &g->values[s], *r1v = &g->values[y], *r2v = &g->values[n2->out[0]];
      if (!same_shape(sv, r2v))
        return vt_match_fail(m, "relpos", "Reshape '%s' does not restore the scores' shape", n2->name);
      if (r->rp_n == 0) return vt_match_fail(m, "relpos", "no bias is added between '%s' and '%s'", pn->name, n2->name);
      /* the biases' broadcast must be R1's full shape, so their sum can be reshaped */
      for (int32_t d = 0; d < r1v->rank; d++) {
        vt_dim want = r1v->dims[d];
        bool cov = vt_dim_is_const(want) && want == 1;
        for (int32_t b = 0; b < r->rp_n && !cov; b++) {
          const vt_value *bv = &g->values[r->rp_bias[b]];
          int32_t bd = d - (r1v->rank - bv->rank);
          if (bd >= 0 && same_dim(bv->dims[bd], want)) cov = true;
        }
        if (!cov) return vt_match_fail(m, "relpos", "the biases do not cover dim %d of the reshaped scores", d);
      }
      if (vt_match_uses(m, s) != 1) return vt_match_fail(m, "relpos", "scores '%s' have other uses", g->values[s].name);
      r->rp_shape = n2->in[1];
      char why[320];
      if (!relpos_decomposable(g, s, y, r, why, sizeof why)) {
        r->rp_rows = r->rp_cols = -1;
        snprintf(r->rp_why, sizeof r->rp_why, "%s", why);
      }
      *x = s;
      return true;
    }
    if (pn->op != VT_OP_Add) return vt_match_fail(m, "relpos", "%s '%s' between the score Reshapes", opname(g, p), pn->name);
    bool c0 = reaches_r1(g, pn->in[0], 0), c1 = reaches_r1(g, pn->in[1], 0);
    if (c0 == c1) return vt_match_fail(m, "relpos", "Add '%s': cannot tell the scores from the bias", pn->name);
    if (r->rp_n == 4) return vt_match_fail(m, "relpos", "more than 4 bias Adds");
    int32_t b = pn->in[c0 ? 1 : 0];
    if (g->values[b].dtype != VT_F32 || g->values[b].rank > g->values[y].rank)
      return vt_match_fail(m, "relpos", "bias '%s' is not an f32 tensor of rank <= the scores'", g->values[b].name);
    r->rp_bias[r->rp_n++] = b;
    y = pn->in[c0 ? 0 : 1];
  }
}

/* Rank-3 q of nn.MultiheadAttention: [B*H,N,D] = Transpose([1,0,2]) of Reshape([N,B,C] ->
 * [N,B*H,D]) (possibly through a scalar pre-scale), so H = C / D. 1 when not recognisable. */
static int64_t mha_heads(const vt_graph *g, int32_t q) {
  for (int steps = 0; steps < 3; steps++) {
    int32_t p = g->values[q].producer;
    if (p < 0) return 1;
    const vt_node *n = &g->nodes[p];
    int32_t other;
    double f;
    if (scalar_factor(g, p, &other, &f)) { q = other; continue; }
    if (n->op != VT_OP_Transpose) return 1;
    const int64_t *pv;
    if (vt_attr_ints(n, "perm", &pv) != 3 || pv[0] != 1 || pv[1] != 0 || pv[2] != 2) return 1;
    int32_t rs = g->values[n->in[0]].producer;
    if (rs < 0 || g->nodes[rs].op != VT_OP_Reshape) return 1;
    const vt_value *x = &g->values[g->nodes[rs].in[0]], *y = &g->values[g->nodes[rs].out[0]];
    if (x->rank != 3 || y->rank != 3 || x->dims[0] != y->dims[0]) return 1;
    vt_dim c = x->dims[2], d = y->dims[2];
    if (!vt_dim_is_const(c) || !vt_dim_is_const(d) || d <= 0 || c % d != 0 || c / d < 2) return 1;
    /* B*H must be B times C/D */
    if (vt_dim_is_const(x->dims[1]) && vt_dim_is_const(y->dims[1]) && y->dims[1] != x->dims[1] * (c / d)) return 1;
    return c / d;
  }
  return 1;
}

static bool fa_match(const vt_graph *g, int32_t root, void *recp, vt_match_ctx *m) {
  fa_rec *r = recp;
  const fa_conf *conf = vt_match_user(m);
  const vt_node *sm = &g->nodes[root];
  r->sm = root;
  r->mask = -1;
  r->scale = 1.0;
  r->qs_user = -1;
  r->rp_shape = -1;
  r->rp_rows = r->rp_cols = -1;
  r->conf = conf;
  int32_t x = sm->in[0];
  const vt_value *sx = &g->values[x];
  if (sx->rank < 1) return vt_match_fail(m, "softmax", "input rank is unknown");
  int64_t axis = vt_attr_int(sm, "axis", vt_graph_opset(g, "") >= 13 || vt_graph_opset(g, "") == 0 ? -1 : 1);
  if (axis < 0) axis += sx->rank;
  if (axis != sx->rank - 1)
    return vt_match_fail(m, "softmax", "axis %lld is not the last axis of the rank-%d scores", (long long)axis, sx->rank);
  if (sx->dtype != VT_F32) return vt_match_fail(m, "softmax", "dtype %s (the Attention kernel is f32)", vt_dtype_name(sx->dtype));

  /* walk back from the Softmax input to Q.K^T: [scale]* [mask Add] */
  bool seen_scale = false;
  for (int steps = 0;; steps++) {
    int32_t p = g->values[x].producer;
    if (p < 0) return vt_match_fail(m, "scores", "value '%s' is not computed by a node (expected Q.K^T MatMul)", g->values[x].name);
    if (vt_match_uses(m, x) != 1)
      return vt_match_fail(m, "scores", "intermediate '%s' has %d uses (fusing would drop it)", g->values[x].name,
                           vt_match_uses(m, x));
    if (steps > 8) return vt_match_fail(m, "scores", "chain from Q.K^T to Softmax is longer than 8 ops");
    const vt_node *pn = &g->nodes[p];
    if (pn->op == VT_OP_MatMul) { r->qk = p; break; }
    int32_t other;
    double f;
    if (scalar_factor(g, p, &other, &f)) {
      r->scale *= f;
      r->scaled = true;
      seen_scale = true;
      x = other;
      continue;
    }
    if (pn->op == VT_OP_Add) {
      if (r->mask >= 0) return vt_match_fail(m, "mask", "two mask Adds before Softmax at '%s'", pn->name);
      if (seen_scale) return vt_match_fail(m, "mask", "scores are scaled after the mask Add '%s' (mask would be scaled)", pn->name);
      bool l0 = leads_to_qk(g, pn->in[0], 0), l1 = leads_to_qk(g, pn->in[1], 0);
      if (l0 == l1)
        return vt_match_fail(m, "mask", "Add '%s': %s operand comes from a MatMul", pn->name, l0 ? "more than one" : "no");
      int s = l0 ? 0 : 1;
      r->mask = pn->in[1 - s];
      const vt_value *mv = &g->values[r->mask];
      if (mv->rank > sx->rank)
        return vt_match_fail(m, "mask", "mask '%s' has rank %d > scores rank %d", mv->name, mv->rank, sx->rank);
      if (mv->dtype != VT_F32) return vt_match_fail(m, "mask", "mask dtype %s is not f32", vt_dtype_name(mv->dtype));
      x = pn->in[s];
      continue;
    }
    if (pn->op == VT_OP_Reshape && r->rp_n == 0 && r->mask < 0 && !seen_scale) {
      if (!match_relpos(g, p, r, m, &x)) return false;
      continue;
    }
    return vt_match_fail(m, "scores", "Softmax input comes from %s '%s'; expected Q.K^T MatMul, scalar Mul/Div or mask Add",
                         opname(g, p), pn->name);
  }
  const vt_node *qk = &g->nodes[r->qk];
  r->q = qk->in[0];
  r->kt = qk->in[1];
  const vt_value *qv = &g->values[r->q], *ktv = &g->values[r->kt], *qko = &g->values[qk->out[0]];
  if (qv->rank != ktv->rank || (qv->rank != 3 && qv->rank != 4))
    return vt_match_fail(m, "qk", "Q.K^T operands have ranks %d and %d (need both 3 or both 4)", qv->rank, ktv->rank);
  if (qko->rank != sx->rank) return vt_match_fail(m, "mask", "the mask Add broadcasts the scores from rank %d to %d", qko->rank, sx->rank);
  for (int32_t d = 0; d < sx->rank; d++)
    if (vt_dim_is_const(qko->dims[d]) && vt_dim_is_const(sx->dims[d]) && qko->dims[d] != sx->dims[d])
      return vt_match_fail(m, "mask", "the mask Add broadcasts score dim %d from %lld to %lld", d,
                           (long long)qko->dims[d], (long long)sx->dims[d]);
  r->rank = qv->rank;

  /* probs . V, with an optional Cast to the same dtype in between */
  int slot = -1;
  int32_t probs = sm->out[0];
  if (vt_match_uses(m, probs) != 1) return vt_match_fail(m, "av", "the probabilities have %d uses", vt_match_uses(m, probs));
  int32_t c = sole_consumer(g, probs, &slot);
  if (c >= 0 && g->nodes[c].op == VT_OP_Cast && vt_attr_int(&g->nodes[c], "to", 0) == VT_F32) {
    probs = g->nodes[c].out[0];
    if (vt_match_uses(m, probs) != 1) return vt_match_fail(m, "av", "the cast probabilities have %d uses", vt_match_uses(m, probs));
    c = sole_consumer(g, probs, &slot);
  }
  if (c < 0 || g->nodes[c].op != VT_OP_MatMul || slot != 0)
    return vt_match_fail(m, "av", "the probabilities feed %s%s, not the left side of a MatMul with V",
                         c >= 0 ? opname(g, c) : "no single node", c >= 0 && slot != 0 ? " (slot != 0)" : "");
  r->av = c;
  r->v = g->nodes[c].in[1];
  const vt_value *vv = &g->values[r->v];
  if (vv->rank != r->rank) return vt_match_fail(m, "av", "V has rank %d, Q has %d", vv->rank, r->rank);

  /* shapes: [B,H,N,D] (rank 4) or [B,N,D] (rank 3) with identical batch dims */
  if (!same_dim(qv->dims[0], ktv->dims[0]) || !same_dim(qv->dims[0], vv->dims[0]))
    return vt_match_fail(m, "shapes", "batch dims of Q, K and V differ (MatMul broadcasting)");
  if (r->rank == 4) {
    vt_dim hq = qv->dims[1], hk = ktv->dims[1];
    bool ok = same_dim(hq, hk) || (vt_dim_is_const(hk) && hk == 1) ||
              (vt_dim_is_const(hq) && vt_dim_is_const(hk) && hk > 0 && hq % hk == 0);
    if (!ok) return vt_match_fail(m, "shapes", "Q's heads are not a multiple of K's heads");
    if (!same_dim(hk, vv->dims[1])) return vt_match_fail(m, "shapes", "K and V have different head counts");
  }

  /* pre-scaled q */
  int32_t qp = qv->producer;
  int32_t other;
  double f;
  if (conf->fold_q_scale && qp >= 0 && scalar_factor(g, qp, &other, &f) && g->values[other].rank == r->rank) {
    r->q = other;
    r->scale *= f;
    r->scaled = true;
  } else if (conf->fold_q_scale) {
    /* q = Transpose/Reshape chain of (x * c): move c into the scale, rewire the chain to x */
    int32_t cur = r->q, user = -1;
    for (int steps = 0; steps < 4 && cur >= 0 && vt_match_uses(m, cur) == 1; steps++) {
      int32_t pp = g->values[cur].producer;
      if (pp < 0) break;
      if (user >= 0 && scalar_factor(g, pp, &other, &f)) {
        r->qs_user = user;
        r->qs_slot = 0;
        r->qs_src = other;
        r->scale *= f;
        r->scaled = true;
        break;
      }
      if (g->nodes[pp].op != VT_OP_Transpose && g->nodes[pp].op != VT_OP_Reshape) break;
      user = pp;
      cur = g->nodes[pp].in[0];
    }
  }
  if (!isfinite(r->scale) || r->scale == 0.0) return vt_match_fail(m, "scale", "combined scale %g is not usable", r->scale);
  r->heads = r->rank == 3 ? mha_heads(g, qk->in[0]) : 1;
  return true;
}

/* repeat_kv (HF GQA): x = Reshape(Expand(Unsqueeze(kv, axis 2), [B,Hkv,rep,N,D]), [B,Hkv*rep,N,D])
 * is head h of kv[h / rep]: the Attention op reads kv directly. Returns kv, or x unchanged. */
static int32_t undo_repeat_kv(const vt_graph *g, int32_t x) {
  const vt_value *xv = &g->values[x];
  int32_t p = xv->producer;
  if (p < 0 || g->nodes[p].op != VT_OP_Reshape || xv->rank != 4) return x;
  int32_t ex = g->nodes[p].in[0];
  int32_t pe = g->values[ex].producer;
  if (pe < 0 || g->nodes[pe].op != VT_OP_Expand) return x;
  int32_t un = g->nodes[pe].in[0];
  int32_t pu = g->values[un].producer;
  if (pu < 0 || g->nodes[pu].op != VT_OP_Unsqueeze) return x;
  int64_t axis = -1;
  const int64_t *av;
  if (g->nodes[pu].n_in > 1 && g->nodes[pu].in[1] >= 0) {
    double a;
    if (!vt_rw_const_scalar(g, g->nodes[pu].in[1], &a)) return x;
    axis = (int64_t)a;
  } else if (vt_attr_ints(&g->nodes[pu], "axes", &av) == 1) axis = av[0];
  if (axis < 0) axis += 5;
  if (axis != 2) return x;
  int32_t kv = g->nodes[pu].in[0];
  const vt_value *kvv = &g->values[kv], *ev = &g->values[ex];
  if (kvv->rank != 4 || ev->rank != 5) return x;
  vt_dim rep = ev->dims[2], hkv = kvv->dims[1];
  if (!vt_dim_is_const(rep) || !vt_dim_is_const(hkv) || !vt_dim_is_const(xv->dims[1]) || xv->dims[1] != hkv * rep) return x;
  if (!same_dim(ev->dims[0], kvv->dims[0]) || !same_dim(ev->dims[1], hkv) || !same_dim(ev->dims[3], kvv->dims[2]) ||
      !same_dim(ev->dims[4], kvv->dims[3]))
    return x;
  if (!same_dim(xv->dims[0], kvv->dims[0]) || !same_dim(xv->dims[2], kvv->dims[2]) || !same_dim(xv->dims[3], kvv->dims[3]))
    return x;
  return kv;
}

static int oom(vt_graph *g, vt_error *e) { return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory in fuse-attention", g->path); }

static int fa_rewrite(vt_graph *g, int32_t root, void *recp, vt_error *e) {
  fa_rec r = *(fa_rec *)recp;
  /* base name: the Softmax's scope ("/blocks.0/attn/Softmax" -> "/blocks.0/attn") */
  char base[400];
  snprintf(base, sizeof base, "%s", g->nodes[r.sm].name[0] ? g->nodes[r.sm].name : "attention");
  char *slash = strrchr(base, '/');
  if (slash && slash != base) *slash = 0;
  int32_t rank = r.rank;

  /* K = K^T with its last two axes swapped; a Transpose producing K^T is folded */
  int32_t k = -1;
  int32_t kp = g->values[r.kt].producer;
  int64_t perm[VT_MAX_RANK];
  int32_t src = r.kt;
  bool have_perm = false;
  if (kp >= 0 && g->nodes[kp].op == VT_OP_Transpose) {
    const int64_t *pv;
    int32_t np = vt_attr_ints(&g->nodes[kp], "perm", &pv);
    src = g->nodes[kp].in[0];
    if (np == rank) for (int32_t i = 0; i < rank; i++) perm[i] = pv[i];
    else for (int32_t i = 0; i < rank; i++) perm[i] = rank - 1 - i;   /* default: reverse */
    have_perm = true;
  }
  if (!have_perm) {
    src = r.kt;
    for (int32_t i = 0; i < rank; i++) perm[i] = i;
  }
  int64_t t = perm[rank - 1];
  perm[rank - 1] = perm[rank - 2];
  perm[rank - 2] = t;
  bool ident = true;
  for (int32_t i = 0; i < rank; i++) if (perm[i] != i) ident = false;
  if (ident) k = undo_repeat_kv(g, src);
  else {
    k = vt_rw_node1(g, VT_OP_Transpose, base, "Attention_k", 1, &src);
    if (k < 0) return oom(g, e);
    vt_attr *a = vt_node_add_attr(g, g->values[k].producer, "perm", VT_ATTR_INTS);
    if (!a || !(a->ints = vt_arena_alloc(&g->arena, (size_t)rank * sizeof(int64_t)))) return oom(g, e);
    a->n = rank;
    memcpy(a->ints, perm, (size_t)rank * sizeof(int64_t));
  }

  int32_t q = r.q, v = undo_repeat_kv(g, r.v), mask = r.mask, rel[2] = {-1, -1};
  if (r.qs_user >= 0) g->nodes[r.qs_user].in[r.qs_slot] = r.qs_src;
  if (r.rp_n > 0) {
    (*r.conf->relpos)++;
    if (r.conf->explain && r.rp_rows >= 0)
      fprintf(r.conf->explain, "  fuse-attention: '%s': relative-position bias kept decomposed (bias_rows, bias_cols)\n", base);
    else if (r.conf->explain)
      fprintf(r.conf->explain, "  fuse-attention: '%s': relative-position bias materialised as a mask: %s\n", base, r.rp_why);
  }
  if (r.rp_rows >= 0) {   /* bias_rows / bias_cols = Reshape(bias, [scores dims but the last..., kh | kw]) */
    (*r.conf->decomposed)++;
    int32_t src[2] = {r.rp_rows, r.rp_cols};
    static const char *sfx[2] = {"Attention_bias_rows", "Attention_bias_cols"};
    for (int t = 0; t < 2; t++) {
      int32_t shape = vt_rw_const_i64(g, base, t ? "Attention_bias_cols_shape" : "Attention_bias_rows_shape", r.rp_dshape[t],
                                      r.rp_drank);
      rel[t] = shape < 0 ? -1 : vt_rw_node1(g, VT_OP_Reshape, base, sfx[t], 2, (int32_t[]){src[t], shape});
      if (rel[t] < 0) return oom(g, e);
    }
  } else if (r.rp_n > 0) {   /* mask = Reshape(b1 + ... + bn, shape of the scores) */
    int32_t sum = r.rp_bias[0];
    for (int32_t b = 1; b < r.rp_n; b++) {
      sum = vt_rw_node1(g, VT_OP_Add, base, "Attention_bias_sum", 2, (int32_t[]){sum, r.rp_bias[b]});
      if (sum < 0) return oom(g, e);
    }
    mask = vt_rw_node1(g, VT_OP_Reshape, base, "Attention_bias", 2, (int32_t[]){sum, r.rp_shape});
    if (mask < 0) return oom(g, e);
  }
  int32_t hshape = -1;
  if (rank == 3 && r.heads > 1) {
    int64_t sh[4] = {-1, r.heads, 0, 0};
    hshape = vt_rw_const_i64(g, base, "Attention_heads_shape", sh, 4);
    if (hshape < 0) return oom(g, e);
  }
  if (rank == 3) {   /* [B*H,N,D] -> [B*H,1,N,D] (-> [B,H,N,D] when H is known) */
    int32_t *xs[3] = {&q, &k, &v};
    static const char *sfx[3] = {"Attention_q4", "Attention_k4", "Attention_v4"};
    for (int i = 0; i < 3; i++) {
      *xs[i] = vt_rw_unsqueeze(g, *xs[i], 1, base, sfx[i]);
      if (*xs[i] >= 0 && hshape >= 0)
        *xs[i] = vt_rw_node1(g, VT_OP_Reshape, base, sfx[i], 2, (int32_t[]){*xs[i], hshape});
      if (*xs[i] < 0) return oom(g, e);
    }
    for (int t = 0; t < 2 && rel[t] >= 0; t++) {   /* [B*H,Nq,k] -> [B*H,1,Nq,k] (-> [B,H,Nq,k]) */
      rel[t] = vt_rw_unsqueeze(g, rel[t], 1, base, t ? "Attention_bias_cols4" : "Attention_bias_rows4");
      if (rel[t] >= 0 && hshape >= 0)
        rel[t] = vt_rw_node1(g, VT_OP_Reshape, base, t ? "Attention_bias_cols4" : "Attention_bias_rows4", 2,
                             (int32_t[]){rel[t], hshape});
      if (rel[t] < 0) return oom(g, e);
    }
    int32_t mask_rank = r.rp_n > 0 && rel[0] < 0 ? rank : mask >= 0 ? g->values[mask].rank : -1;
    if (mask_rank == 3) {
      /* a mask over B*H keeps its per-head values; one shared by all ([1,N,N]) broadcasts */
      bool per_bh = r.rp_n > 0 || !(vt_dim_is_const(g->values[mask].dims[0]) && g->values[mask].dims[0] == 1);
      mask = vt_rw_unsqueeze(g, mask, 1, base, "Attention_mask4");
      if (mask >= 0 && hshape >= 0 && per_bh)
        mask = vt_rw_node1(g, VT_OP_Reshape, base, "Attention_mask4", 2, (int32_t[]){mask, hshape});
      if (mask < 0) return oom(g, e);
    }
  }
  int32_t out = g->nodes[r.av].out[0];
  vt_rw_detach_output(g, r.av, 0);
  int32_t in[7] = {q, k, v, mask, -1, rel[0], rel[1]};
  int n_in = rel[0] >= 0 ? 7 : mask >= 0 ? 4 : 3;
  int32_t att;
  if (rank == 4) {
    const char *name = vt_rw_fresh_name(g, base, "Attention");
    if (!name) return oom(g, e);
    att = vt_graph_add_node(g, name, VT_OP_Attention, n_in, in, 1, &out);
  } else {
    int32_t a4 = vt_rw_new_value(g, base, "Attention");
    if (a4 < 0) return oom(g, e);
    att = vt_graph_add_node(g, g->values[a4].name, VT_OP_Attention, n_in, in, 1, &a4);
    if (att < 0) return oom(g, e);
    int32_t flat = a4;
    if (hshape >= 0) {   /* [B,H,N,D] -> [B*H,1,N,D] */
      int64_t sh[4] = {-1, 1, 0, 0};
      int32_t s1 = vt_rw_const_i64(g, base, "Attention_flat_shape", sh, 4);
      flat = s1 < 0 ? -1 : vt_rw_node1(g, VT_OP_Reshape, base, "Attention_flat", 2, (int32_t[]){a4, s1});
      if (flat < 0) return oom(g, e);
    }
    const char *sq = vt_rw_fresh_name(g, base, "Attention_out3");
    if (!sq || vt_rw_squeeze_into(g, flat, 1, out, sq) < 0) return oom(g, e);
  }
  if (att < 0) return oom(g, e);
  vt_attr *sa = vt_node_add_attr(g, att, "scale", VT_ATTR_FLOAT);
  if (!sa) return oom(g, e);
  sa->f = (float)(r.scaled ? r.scale : 1.0);
  (void)root;
  return VT_OK;
}

int vt_pass_fuse_attention(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e) {
  int64_t relpos = 0, decomposed = 0;
  fa_conf conf = {.fold_q_scale = vt_param_int(p, "fold_q_scale") != 0, .explain = st ? st->explain : NULL,
                  .relpos = &relpos, .decomposed = &decomposed};
  vt_pattern rules[4] = {
      {.name = "attention-core", .root_op = VT_OP_Softmax, .match = fa_match, .rewrite = fa_rewrite,
       .rec_size = sizeof(fa_rec), .user = &conf},
  };
  /* the exported attention ops (ONNX Attention, com.microsoft.*): fuse_attention_ops.c */
  int n_rules = 1 + vt_fuse_attention_op_rules(rules + 1, 3);
  int rc = vt_apply_patterns(g, rules, n_rules, st, e);
  if (rc || !st) return rc;
  if (relpos > 0 && st->n_rules < VT_STATS_MAX_RULES) {   /* of the fused rel-pos biases, how many stayed decomposed */
    st->rules[st->n_rules].name = "relpos-decomposed";
    st->rules[st->n_rules].candidates = relpos;
    st->rules[st->n_rules].matches = decomposed;
    st->n_rules++;
  }
  /* record the residual blocks around the fused attention (stats: rule "residual-block") */
  vt_block *b = NULL;
  int32_t nb = 0;
  rc = vt_find_blocks(g, &b, &nb, st->explain, e);
  if (rc) return rc;
  if (st->explain) vt_print_blocks(g, b, nb, st->explain);
  free(b);
  if (st->n_rules < VT_STATS_MAX_RULES) {
    int64_t na = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) na += g->nodes[i].op == VT_OP_Attention;
    st->rules[st->n_rules].name = "residual-block";
    st->rules[st->n_rules].candidates = na;
    st->rules[st->n_rules].matches = nb;
    st->n_rules++;
  }
  return VT_OK;
}

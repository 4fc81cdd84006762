/* fold_affine.c — the canonical pass fold-affine: a per-output-channel affine map right after a
 * Conv, Gemm or MatMul with constant weights is folded into those weights at compile time.
 *   BatchNormalization (inference) after Conv (rank >= 3) or after Gemm / rank-2 MatMul:
 *       s = scale / sqrt(var + eps); W'[m,...] = W[m,...] * s[m]; b'[m] = (b[m] - mean[m]) * s[m] + beta[m]
 *   Mul by a per-channel (or scalar) constant: the weights (and the bias) scaled by it;
 *   Add of a per-channel (or scalar) constant after Conv or Gemm: added to the bias.
 * The channel is axis 1 for Conv and the last axis for Gemm/MatMul. Arithmetic in double, one
 * rounding to float32 per folded weight, so the fold is exact up to float rounding. A MatMul
 * followed by BatchNormalization becomes a Gemm (it needs a bias); an Add after a MatMul stays
 * (codegen's GEMM epilogue adds it). The producer's output must have no other reader. */
#include "passes_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FOLD_BN, FOLD_MUL, FOLD_ADD } fold_kind;

typedef struct {
  int32_t producer;     /* the Conv / Gemm / MatMul node */
  int32_t cval;         /* Mul/Add: the constant operand (value index) */
  int64_t channels;     /* output channels (Conv M, Gemm/MatMul N) */
} fold_rec;

static bool is_f32_const(const vt_graph *g, int32_t v) {
  return v >= 0 && v < g->n_values && (g->values[v].flags & VT_VAL_CONST) && g->values[v].cdata &&
         g->values[v].cdata->data && g->values[v].cdata->dtype == VT_F32;
}

/* Is the producer of value x a Conv/Gemm/MatMul with constant float32 weights (and a constant
 * float32 bias if any) whose only reader is the root? Fills r->producer and r->channels. */
static bool match_producer(const vt_graph *g, int32_t x, fold_kind kind, fold_rec *r, vt_match_ctx *m) {
  if (x < 0) return vt_match_fail(m, "producer", "input omitted");
  int32_t p = g->values[x].producer;
  if (p < 0) return vt_match_fail(m, "producer", "'%s' is not computed by a node", g->values[x].name);
  const vt_node *P = &g->nodes[p];
  if (P->op != VT_OP_Conv && P->op != VT_OP_Gemm && P->op != VT_OP_MatMul)
    return vt_match_fail(m, "producer", "'%s' comes from %s, not Conv/Gemm/MatMul", g->values[x].name,
                         vt_ops[P->op].name);
  if (vt_match_uses(m, x) != 1)
    return vt_match_fail(m, "single-use", "the %s output '%s' has other readers", vt_ops[P->op].name,
                         g->values[x].name);
  if (P->n_in < 2 || !is_f32_const(g, P->in[1]))
    return vt_match_fail(m, "weights", "%s '%s' has no constant float32 weights", vt_ops[P->op].name, P->name);
  if (P->n_in > 2 && P->in[2] >= 0 && !is_f32_const(g, P->in[2]))
    return vt_match_fail(m, "bias", "%s '%s' has a bias that is not a constant float32 tensor", vt_ops[P->op].name,
                         P->name);
  const vt_value *Y = &g->values[x];
  const vt_tensor *W = g->values[P->in[1]].cdata;
  if (Y->dtype != VT_F32 || Y->rank < 2)
    return vt_match_fail(m, "output", "the output is not float32 of rank >= 2");
  if (P->op == VT_OP_Conv) {
    if (W->rank < 3) return vt_match_fail(m, "weights", "Conv weights of rank %d", W->rank);
    r->channels = W->dims[0];
    if (P->n_in > 2 && P->in[2] >= 0 && vt_tensor_numel(g->values[P->in[2]].cdata) != r->channels)
      return vt_match_fail(m, "bias", "Conv bias is not [M]");
  } else {
    if (W->rank != 2) return vt_match_fail(m, "weights", "weights of rank %d (not 2)", W->rank);
    bool tB = P->op == VT_OP_Gemm && vt_attr_int(P, "transB", 0);
    r->channels = tB ? W->dims[0] : W->dims[1];
    if (P->op == VT_OP_Gemm && P->n_in > 2 && P->in[2] >= 0) {
      int64_t cn = vt_tensor_numel(g->values[P->in[2]].cdata);
      const vt_tensor *C = g->values[P->in[2]].cdata;
      bool row = cn == 1 || (cn == r->channels && C->dims[C->rank - 1] == r->channels);
      if (!row) return vt_match_fail(m, "bias", "Gemm C is not a scalar or a [N] row");
    }
    if (P->op == VT_OP_MatMul && kind == FOLD_ADD)
      return vt_match_fail(m, "producer", "an Add after MatMul stays (the GEMM epilogue adds it)");
    if (P->op == VT_OP_MatMul && kind == FOLD_BN && Y->rank != 2)
      return vt_match_fail(m, "producer", "BatchNormalization after a MatMul of rank %d", Y->rank);
  }
  if (Y->dims[P->op == VT_OP_Conv ? 1 : Y->rank - 1] != r->channels)
    return vt_match_fail(m, "output", "the output's channel dim is not the weights' %lld", (long long)r->channels);
  r->producer = p;
  return true;
}

static bool bn_match(const vt_graph *g, int32_t root, void *rec, vt_match_ctx *m) {
  fold_rec *r = rec;
  const vt_node *n = &g->nodes[root];
  if (vt_attr_int(n, "training_mode", 0) != 0) return vt_match_fail(m, "mode", "training_mode=1");
  if (vt_attr_int(n, "spatial", 1) != 1) return vt_match_fail(m, "mode", "spatial=0");
  for (int k = 1; k < n->n_out; k++)
    if (n->out[k] >= 0 && vt_match_uses(m, n->out[k]) > 0)
      return vt_match_fail(m, "outputs", "output %d (running statistics) is read", k);
  if (!match_producer(g, n->in[0], FOLD_BN, r, m)) return false;
  if (g->nodes[r->producer].op != VT_OP_Conv && g->values[n->in[0]].rank != 2)
    return vt_match_fail(m, "producer", "the channel axis 1 is not the GEMM's column axis");
  for (int k = 1; k < 5; k++)
    if (!is_f32_const(g, n->in[k]) || vt_tensor_numel(g->values[n->in[k]].cdata) != r->channels)
      return vt_match_fail(m, "parameters", "input %d is not a constant float32 [%lld]", k, (long long)r->channels);
  return true;
}

/* A constant c broadcasting over output y of the producer as one value per channel (axis ax of
 * y) or one value overall, without growing y. */
static bool per_channel(const vt_graph *g, int32_t c, int32_t y, int ax, int64_t channels) {
  if (!is_f32_const(g, c)) return false;
  const vt_tensor *t = g->values[c].cdata;
  const vt_value *Y = &g->values[y];
  if (t->rank > Y->rank) return false;
  for (int d = 0; d < t->rank; d++) {
    int yd = d + (Y->rank - t->rank);
    if (t->dims[d] == 1) continue;
    if (yd != ax || t->dims[d] != channels) return false;
  }
  return true;
}

static bool binary_match(const vt_graph *g, int32_t root, void *rec, vt_match_ctx *m, fold_kind kind) {
  fold_rec *r = rec;
  const vt_node *n = &g->nodes[root];
  if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0) return vt_match_fail(m, "inputs", "not two inputs");
  int side = is_f32_const(g, n->in[1]) ? 0 : is_f32_const(g, n->in[0]) ? 1 : -1;
  if (side < 0) return vt_match_fail(m, "constant", "no constant float32 operand");
  int32_t x = n->in[side], c = n->in[1 - side];
  if (!match_producer(g, x, kind, r, m)) return false;
  int ax = g->nodes[r->producer].op == VT_OP_Conv ? 1 : g->values[x].rank - 1;
  if (!per_channel(g, c, x, ax, r->channels))
    return vt_match_fail(m, "constant", "'%s' is not one value per output channel", g->values[c].name);
  r->cval = c;
  return true;
}
static bool mul_match(const vt_graph *g, int32_t root, void *rec, vt_match_ctx *m) {
  return binary_match(g, root, rec, m, FOLD_MUL);
}
static bool add_match(const vt_graph *g, int32_t root, void *rec, vt_match_ctx *m) {
  return binary_match(g, root, rec, m, FOLD_ADD);
}

/* A new float32 constant of the given shape named after base (data owned by the graph). */
static int32_t new_f32_const(vt_graph *g, const char *base, const char *suffix, int rank, const int64_t *dims,
                             float **data) {
  vt_tensor t = {.dtype = VT_F32, .rank = rank};
  memcpy(t.dims, dims, (size_t)rank * sizeof *dims);
  int64_t n = vt_shape_numel(rank, dims);
  float *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
  if (!d || vt_graph_own(g, d)) return -1;
  t.data = d;
  const char *name = vt_rw_fresh_name(g, base, suffix);
  if (!name) return -1;
  *data = d;
  return vt_graph_add_const(g, name, &t);
}

/* The folded node: producer P with weights scaled per channel by s[ch] and bias b'[ch] =
 * b[ch] * s[ch] + t[ch] (b = P's bias or 0), writing the root's output. */
static int rewrite_affine(vt_graph *g, int32_t root, const fold_rec *r, const double *s, const double *t,
                          vt_error *e) {
  const vt_node *P0 = &g->nodes[r->producer];
  int op = P0->op;
  int32_t win = P0->in[1], bin = P0->n_in > 2 ? P0->in[2] : -1, ain = P0->in[0];
  const char *pname = P0->name;
  int64_t M = r->channels;
  const vt_tensor *W = g->values[win].cdata;
  bool tB = op == VT_OP_Gemm && vt_attr_int(P0, "transB", 0);
  double alpha = op == VT_OP_Gemm ? vt_attr_float(P0, "alpha", 1.0f) : 1.0;
  double beta = op == VT_OP_Gemm ? vt_attr_float(P0, "beta", 1.0f) : 1.0;
  (void)alpha;
  float *wd = NULL, *bd = NULL;
  int32_t w2 = new_f32_const(g, pname, "folded_w", W->rank, W->dims, &wd);
  if (w2 < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory folding into '%s'", g->path, pname);
  W = g->values[win].cdata;
  const float *w = W->data;
  int64_t wn = vt_tensor_numel(W);
  if (op == VT_OP_Conv || tB) {   /* channel is the first axis */
    int64_t inner = wn / M;
    for (int64_t i = 0; i < wn; i++) wd[i] = (float)((double)w[i] * s[i / inner]);
  } else {                          /* [K, N]: channel is the column */
    for (int64_t i = 0; i < wn; i++) wd[i] = (float)((double)w[i] * s[i % M]);
  }
  bool need_bias = bin >= 0;
  for (int64_t c = 0; c < M && !need_bias; c++) need_bias = t[c] != 0.0;
  int32_t b2 = -1;
  if (need_bias) {
    b2 = new_f32_const(g, pname, "folded_b", 1, &M, &bd);
    if (b2 < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory folding into '%s'", g->path, pname);
    const vt_tensor *B = bin >= 0 ? g->values[bin].cdata : NULL;
    int64_t bn = B ? vt_tensor_numel(B) : 0;
    for (int64_t c = 0; c < M; c++) {
      double b = B ? (double)((const float *)B->data)[bn == 1 ? 0 : c] : 0.0;
      if (op == VT_OP_Gemm) b *= beta;
      bd[c] = (float)(b * s[c] + t[c]);
    }
  }
  int new_op = op == VT_OP_MatMul && b2 >= 0 ? VT_OP_Gemm : op;
  int32_t out = g->nodes[root].out[0];
  vt_rw_detach_output(g, root, 0);
  int32_t in[3] = {ain, w2, b2};
  const char *nname = vt_rw_fresh_name(g, pname, "folded");
  if (!nname) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
  int32_t nn = vt_graph_add_node(g, nname, new_op, b2 >= 0 ? 3 : 2, in, 1, &out);
  if (nn < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
  /* the producer's attributes (Gemm: beta is now folded into C) */
  int32_t na = g->nodes[r->producer].n_attr;
  for (int32_t k = 0; k < na; k++) {
    vt_attr a = g->nodes[r->producer].attr[k];
    if (new_op == VT_OP_Gemm && strcmp(a.name, "beta") == 0) continue;
    vt_attr *d = vt_node_add_attr(g, nn, a.name, a.type);
    if (!d) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
    const char *dn = d->name;
    *d = a;
    d->name = dn;
  }
  return VT_OK;
}

static int bn_rewrite(vt_graph *g, int32_t root, void *rec, vt_error *e) {
  const fold_rec *r = rec;
  const vt_node *n = &g->nodes[root];
  int64_t M = r->channels;
  double *st = malloc(2 * (size_t)M * sizeof *st);
  if (!st) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
  double eps = vt_attr_float(n, "epsilon", 1e-5f);
  const float *sc = g->values[n->in[1]].cdata->data, *bi = g->values[n->in[2]].cdata->data;
  const float *mu = g->values[n->in[3]].cdata->data, *var = g->values[n->in[4]].cdata->data;
  for (int64_t c = 0; c < M; c++) {
    double s = (double)sc[c] / sqrt((double)var[c] + eps);
    st[c] = s;
    st[M + c] = (double)bi[c] - (double)mu[c] * s;
  }
  int rc = rewrite_affine(g, root, r, st, st + M, e);
  free(st);
  return rc;
}

static int binary_rewrite(vt_graph *g, int32_t root, const fold_rec *r, bool mul, vt_error *e) {
  int64_t M = r->channels;
  double *st = malloc(2 * (size_t)M * sizeof *st);
  if (!st) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
  const vt_tensor *c = g->values[r->cval].cdata;
  bool scalar = vt_tensor_numel(c) == 1;
  for (int64_t k = 0; k < M; k++) {
    double v = ((const float *)c->data)[scalar ? 0 : k];
    st[k] = mul ? v : 1.0;
    st[M + k] = mul ? 0.0 : v;
  }
  int rc = rewrite_affine(g, root, r, st, st + M, e);
  free(st);
  return rc;
}
static int mul_rewrite(vt_graph *g, int32_t root, void *rec, vt_error *e) { return binary_rewrite(g, root, rec, true, e); }
static int add_rewrite(vt_graph *g, int32_t root, void *rec, vt_error *e) { return binary_rewrite(g, root, rec, false, e); }

int vt_pass_fold_affine(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e) {
  (void)p;
  vt_pattern rules[3] = {
      {.name = "fold-batchnorm", .root_op = VT_OP_BatchNormalization, .match = bn_match, .rewrite = bn_rewrite,
       .rec_size = sizeof(fold_rec)},
      {.name = "fold-mul", .root_op = VT_OP_Mul, .match = mul_match, .rewrite = mul_rewrite,
       .rec_size = sizeof(fold_rec)},
      {.name = "fold-add", .root_op = VT_OP_Add, .match = add_match, .rewrite = add_rewrite,
       .rec_size = sizeof(fold_rec)},
  };
  return vt_apply_patterns(g, rules, 3, st, e);
}

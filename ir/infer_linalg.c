/* infer_linalg.c — shape inference of the linalg family: MatMul, Gemm, Conv, ConvTranspose,
 * BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Einsum. */
#include "linalg_util.h"

#include <stdio.h>
#include <string.h>

static const char *dstr(vt_infer_ctx *c, vt_dim d, char *buf, size_t n) {
  return vt_dim_str(c->g, d, buf, n);
}

static int need_rank(vt_infer_ctx *c, int i) {
  if (!c->in[i].present) return vt_infer_fail(c, "input %d is required", i);
  if (c->in[i].rank < 0) return vt_infer_fail(c, "input %d has unknown rank", i);
  return VT_OK;
}

/* Broadcast of two batch dims (numpy rules); a symbol against a size takes the size. */
static int bcast_dim(vt_infer_ctx *c, vt_dim a, vt_dim b, vt_dim *out) {
  if (a == b || b == 1) { *out = a; return VT_OK; }
  if (a == 1) { *out = b; return VT_OK; }
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) {
    char s1[64], s2[64];
    return vt_infer_fail(c, "batch dims %s and %s do not broadcast", dstr(c, a, s1, 64),
                         dstr(c, b, s2, 64));
  }
  *out = vt_dim_is_const(b) ? b : vt_dim_is_const(a) ? a : vt_dim_max(c->g, a, b);
  return VT_OK;
}

static bool dims_conflict(vt_dim a, vt_dim b) {
  return vt_dim_is_const(a) && vt_dim_is_const(b) && a != b;
}

static bool is_matmul_dtype(vt_dtype t) {
  return t == VT_F32 || t == VT_F64 || t == VT_F16 || t == VT_BF16 || t == VT_I32 ||
         t == VT_I64 || t == VT_U32 || t == VT_U64;
}

int vt_infer_MatMul(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *a = &c->in[0], *b = &c->in[1];
  if (a->dtype != b->dtype)
    return vt_infer_fail(c, "operands have different dtypes %s and %s", vt_dtype_name(a->dtype),
                         vt_dtype_name(b->dtype));
  if (!is_matmul_dtype(a->dtype))
    return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(a->dtype));
  if (a->rank < 1 || b->rank < 1) return vt_infer_fail(c, "operands must have rank >= 1");
  vt_dim ka = a->dims[a->rank - 1];
  vt_dim kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
  if (dims_conflict(ka, kb)) {
    char s1[64], s2[64];
    return vt_infer_fail(c, "inner dims differ: A has K = %s, B has K = %s", dstr(c, ka, s1, 64),
                         dstr(c, kb, s2, 64));
  }
  int ba = a->rank > 2 ? a->rank - 2 : 0, bb = b->rank > 2 ? b->rank - 2 : 0;
  int nb = ba > bb ? ba : bb;
  vt_infer_out *o = &c->out[0];
  o->dtype = a->dtype;
  int r = 0;
  for (int i = 0; i < nb; i++) {
    vt_dim da = i - (nb - ba) >= 0 ? a->dims[i - (nb - ba)] : 1;
    vt_dim db = i - (nb - bb) >= 0 ? b->dims[i - (nb - bb)] : 1;
    if (bcast_dim(c, da, db, &o->dims[r++])) return VT_ERR_MODEL;
  }
  if (a->rank >= 2) o->dims[r++] = a->dims[a->rank - 2];
  if (b->rank >= 2) o->dims[r++] = b->dims[b->rank - 1];
  o->rank = r;
  return VT_OK;
}

int vt_infer_Gemm(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *a = &c->in[0], *b = &c->in[1];
  if (a->rank != 2 || b->rank != 2)
    return vt_infer_fail(c, "A and B must be 2-D (got ranks %d and %d)", a->rank, b->rank);
  if (a->dtype != b->dtype)
    return vt_infer_fail(c, "A and B have different dtypes %s and %s", vt_dtype_name(a->dtype),
                         vt_dtype_name(b->dtype));
  if (!is_matmul_dtype(a->dtype))
    return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(a->dtype));
  int tA = vt_attr_int(c->node, "transA", 0) != 0, tB = vt_attr_int(c->node, "transB", 0) != 0;
  vt_dim M = a->dims[tA ? 1 : 0], K = a->dims[tA ? 0 : 1];
  vt_dim K2 = b->dims[tB ? 1 : 0], N = b->dims[tB ? 0 : 1];
  if (dims_conflict(K, K2)) {
    char s1[64], s2[64];
    return vt_infer_fail(c, "inner dims differ: op(A) has K = %s, op(B) has K = %s",
                         dstr(c, K, s1, 64), dstr(c, K2, s2, 64));
  }
  if (c->n_in > 2 && c->in[2].present) {
    const vt_infer_in *cc = &c->in[2];
    if (cc->rank < 0 || cc->rank > 2) return vt_infer_fail(c, "C must have rank <= 2");
    if (cc->dtype != a->dtype) return vt_infer_fail(c, "C has dtype %s, A has %s",
                                                    vt_dtype_name(cc->dtype), vt_dtype_name(a->dtype));
    vt_dim want[2] = {M, N};
    /* opset < 7: broadcast=0 means C must already be [M, N] */
    if (vt_node_attr(c->node, "broadcast") && vt_attr_int(c->node, "broadcast", 1) == 0 &&
        (cc->rank != 2 || dims_conflict(cc->dims[0], M) || dims_conflict(cc->dims[1], N)))
      return vt_infer_fail(c, "broadcast=0 but C is not [M, N]");
    for (int d = 0; d < cc->rank; d++) {
      vt_dim x = cc->dims[d], w = want[2 - cc->rank + d];
      if (x != 1 && dims_conflict(x, w))
        return vt_infer_fail(c, "C does not broadcast to the output [M, N]");
    }
  }
  vt_infer_out *o = &c->out[0];
  o->dtype = a->dtype;
  o->rank = 2;
  o->dims[0] = M;
  o->dims[1] = N;
  return VT_OK;
}

/* Spatial output dims of conv/pool for input dims x (rank nsp + 2). */
static int spatial_out(vt_infer_ctx *c, const vt_lgeom *g, const vt_dim *x, vt_dim *out,
                       int transpose) {
  char err[256];
  for (int i = 0; i < g->nsp; i++) {
    vt_dim in = x[2 + i];
    if (vt_dim_is_const(in)) {
      int64_t pb, pe;
      int64_t o = transpose ? vt_lgeom_out_t(g, i, in, &pb, &pe, err, sizeof err)
                            : vt_lgeom_out(g, i, in, &pb, &pe, err, sizeof err);
      if (o < 0) return vt_infer_fail(c, "%s", err);
      out[i] = o;
      continue;
    }
    vt_graph *G = c->g;
    int64_t dk = (g->k[i] - 1) * g->d[i] + 1;
    if (transpose) {
      if (g->n_oshape) out[i] = g->oshape[i];
      else if (g->autopad == VT_AUTOPAD_SAME_UPPER || g->autopad == VT_AUTOPAD_SAME_LOWER)
        out[i] = vt_dim_mul(G, in, g->s[i]);
      else {
        int64_t pads = g->autopad == VT_AUTOPAD_VALID ? 0 : g->pb[i] + g->pe[i];
        vt_dim t = vt_dim_mul(G, vt_dim_sub(G, in, 1), g->s[i]);
        int64_t adj = g->op[i] + dk - pads;   /* negative constants are symbols: split */
        out[i] = adj >= 0 ? vt_dim_add(G, t, adj) : vt_dim_sub(G, t, -adj);
      }
      continue;
    }
    switch (g->autopad) {
    case VT_AUTOPAD_SAME_UPPER:
    case VT_AUTOPAD_SAME_LOWER:
      out[i] = vt_dim_ceildiv(G, in, g->s[i]);
      break;
    case VT_AUTOPAD_VALID:
      out[i] = vt_dim_add(G, vt_dim_div(G, vt_dim_sub(G, in, dk), g->s[i]), 1);
      break;
    default: {
      vt_dim num = vt_dim_sub(G, vt_dim_add(G, in, g->pb[i] + g->pe[i]), dk);
      if (g->ceil_mode)
        return vt_infer_fail(c, "ceil_mode with a symbolic spatial dim is not supported");
      out[i] = vt_dim_add(G, vt_dim_div(G, num, g->s[i]), 1);
    }
    }
  }
  return VT_OK;
}

static int conv_common(vt_infer_ctx *c, int transpose) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0], *w = &c->in[1];
  if (x->rank < 3) return vt_infer_fail(c, "X must have rank >= 3 (N, C, spatial...), got %d", x->rank);
  if (w->rank != x->rank)
    return vt_infer_fail(c, "W has rank %d, X has rank %d", w->rank, x->rank);
  if (x->dtype != w->dtype)
    return vt_infer_fail(c, "X and W have different dtypes %s and %s", vt_dtype_name(x->dtype),
                         vt_dtype_name(w->dtype));
  if (x->dtype != VT_F32 && x->dtype != VT_F64 && x->dtype != VT_F16 && x->dtype != VT_BF16)
    return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(x->dtype));
  int64_t group = vt_attr_int(c->node, "group", 1);
  if (group < 1) return vt_infer_fail(c, "group must be >= 1 (got %lld)", (long long)group);
  int nsp = x->rank - 2;
  vt_lgeom g;
  char err[256];
  if (vt_lgeom_read(c->node, nsp, w->dims + 2, &g, err, sizeof err)) return vt_infer_fail(c, "%s", err);
  char s1[64], s2[64];
  vt_dim cout;
  if (!transpose) {
    /* W: [Cout, Cin/group, k...] */
    if (vt_dim_is_const(x->dims[1]) && vt_dim_is_const(w->dims[1]) && x->dims[1] != w->dims[1] * group)
      return vt_infer_fail(c, "X has %s channels but W expects %s x group %lld",
                           dstr(c, x->dims[1], s1, 64), dstr(c, w->dims[1], s2, 64), (long long)group);
    if (vt_dim_is_const(w->dims[0]) && w->dims[0] % group)
      return vt_infer_fail(c, "output channels %lld are not a multiple of group %lld",
                           (long long)w->dims[0], (long long)group);
    cout = w->dims[0];
  } else {
    /* W: [Cin, Cout/group, k...] */
    if (dims_conflict(x->dims[1], w->dims[0]))
      return vt_infer_fail(c, "X has %s channels but W has %s input channels",
                           dstr(c, x->dims[1], s1, 64), dstr(c, w->dims[0], s2, 64));
    if (vt_dim_is_const(w->dims[0]) && w->dims[0] % group)
      return vt_infer_fail(c, "input channels %lld are not a multiple of group %lld",
                           (long long)w->dims[0], (long long)group);
    cout = vt_dim_mul(c->g, w->dims[1], group);
  }
  if (c->n_in > 2 && c->in[2].present) {
    const vt_infer_in *b = &c->in[2];
    if (b->rank != 1 || dims_conflict(b->dims[0], cout))
      return vt_infer_fail(c, "bias must be 1-D of size %s", dstr(c, cout, s1, 64));
    if (b->dtype != x->dtype) return vt_infer_fail(c, "bias dtype %s differs from X's %s",
                                                   vt_dtype_name(b->dtype), vt_dtype_name(x->dtype));
  }
  vt_infer_out *o = &c->out[0];
  o->dtype = x->dtype;
  o->rank = x->rank;
  o->dims[0] = x->dims[0];
  o->dims[1] = cout;
  return spatial_out(c, &g, x->dims, o->dims + 2, transpose);
}

int vt_infer_Conv(vt_infer_ctx *c) { return conv_common(c, 0); }
int vt_infer_ConvTranspose(vt_infer_ctx *c) { return conv_common(c, 1); }

int vt_infer_BatchNormalization(vt_infer_ctx *c) {
  if (vt_attr_int(c->node, "training_mode", 0) != 0)
    return vt_infer_fail(c, "training_mode=1 is not supported (inference only)");
  if (vt_attr_int(c->node, "spatial", 1) != 1)
    return vt_infer_fail(c, "spatial=0 (per-activation statistics) is not supported");
  for (int o = 1; o < c->n_out; o++)
    if (c->node->out[o] >= 0)
      return vt_infer_fail(c, "output %d (training statistics) is not supported in inference mode", o);
  for (int i = 0; i < 5; i++)
    if (need_rank(c, i)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (x->rank < 2) return vt_infer_fail(c, "X must have rank >= 2, got %d", x->rank);
  if (x->dtype != VT_F32 && x->dtype != VT_F64 && x->dtype != VT_F16 && x->dtype != VT_BF16)
    return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(x->dtype));
  for (int i = 1; i < 5; i++) {
    const vt_infer_in *p = &c->in[i];
    if (p->rank != 1 || dims_conflict(p->dims[0], x->dims[1])) {
      char s1[64];
      return vt_infer_fail(c, "input %d must be 1-D of size C = %s", i, dstr(c, x->dims[1], s1, 64));
    }
    if (!vt_dtype_is_float(p->dtype))
      return vt_infer_fail(c, "input %d has non-float dtype %s", i, vt_dtype_name(p->dtype));
  }
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

static int pool_common(vt_infer_ctx *c, int is_max) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (x->rank < 3) return vt_infer_fail(c, "X must have rank >= 3 (N, C, spatial...), got %d", x->rank);
  bool ok = x->dtype == VT_F32 || x->dtype == VT_F64 || x->dtype == VT_F16 || x->dtype == VT_BF16;
  if (is_max) ok = ok || x->dtype == VT_U8 || x->dtype == VT_I8;
  if (!ok) return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(x->dtype));
  vt_lgeom g;
  char err[256];
  if (vt_lgeom_read(c->node, x->rank - 2, NULL, &g, err, sizeof err)) return vt_infer_fail(c, "%s", err);
  if (is_max) {
    int64_t so = vt_attr_int(c->node, "storage_order", 0);
    if (so != 0 && so != 1) return vt_infer_fail(c, "storage_order must be 0 or 1");
  }
  vt_infer_out *o = &c->out[0];
  o->dtype = x->dtype;
  o->rank = x->rank;
  o->dims[0] = x->dims[0];
  o->dims[1] = x->dims[1];
  if (spatial_out(c, &g, x->dims, o->dims + 2, 0)) return VT_ERR_MODEL;
  if (is_max && c->n_out > 1) {
    c->out[1] = *o;
    c->out[1].dtype = VT_I64;
  }
  return VT_OK;
}

int vt_infer_MaxPool(vt_infer_ctx *c) { return pool_common(c, 1); }
int vt_infer_AveragePool(vt_infer_ctx *c) { return pool_common(c, 0); }

static int global_pool(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (x->rank < 2) return vt_infer_fail(c, "X must have rank >= 2, got %d", x->rank);
  if (x->dtype != VT_F32 && x->dtype != VT_F64 && x->dtype != VT_F16 && x->dtype != VT_BF16)
    return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(x->dtype));
  vt_infer_out *o = &c->out[0];
  o->dtype = x->dtype;
  o->rank = x->rank;
  o->dims[0] = x->dims[0];
  o->dims[1] = x->dims[1];
  for (int d = 2; d < x->rank; d++) o->dims[d] = 1;
  return VT_OK;
}

int vt_infer_GlobalAveragePool(vt_infer_ctx *c) { return global_pool(c); }
int vt_infer_GlobalMaxPool(vt_infer_ctx *c) { return global_pool(c); }

int vt_infer_Einsum(vt_infer_ctx *c) {
  const char *eq = vt_attr_str(c->node, "equation", NULL);
  if (!eq) return vt_infer_fail(c, "attribute equation is required");
  int32_t ranks[VT_EINSUM_MAX_IN];
  if (c->n_in > VT_EINSUM_MAX_IN) return vt_infer_fail(c, "too many inputs (%d)", c->n_in);
  for (int i = 0; i < c->n_in; i++) {
    if (need_rank(c, i)) return VT_ERR_MODEL;
    if (c->in[i].dtype != c->in[0].dtype)
      return vt_infer_fail(c, "inputs have different dtypes %s and %s",
                           vt_dtype_name(c->in[0].dtype), vt_dtype_name(c->in[i].dtype));
    ranks[i] = c->in[i].rank;
  }
  vt_dtype dt = c->in[0].dtype;
  if (!is_matmul_dtype(dt)) return vt_infer_fail(c, "dtype %s is not supported", vt_dtype_name(dt));
  vt_einsum e;
  char err[256];
  if (vt_einsum_parse(eq, c->n_in, ranks, &e, err, sizeof err)) return vt_infer_fail(c, "%s", err);
  vt_dim size[VT_EINSUM_LABELS];
  bool have[VT_EINSUM_LABELS] = {0};
  for (int t = 0; t < e.nin; t++) {
    for (int d = 0; d < e.rank[t]; d++) {
      int l = e.lab[t][d];
      vt_dim x = c->in[t].dims[d];
      if (!have[l]) { size[l] = x; have[l] = true; continue; }
      if (size[l] == x || x == 1) continue;
      if (size[l] == 1) { size[l] = x; continue; }
      if (dims_conflict(size[l], x)) {
        char s1[64], s2[64];
        return vt_infer_fail(c, "einsum '%s': a label has sizes %s and %s", eq,
                             dstr(c, size[l], s1, 64), dstr(c, x, s2, 64));
      }
      if (vt_dim_is_const(x)) size[l] = x;
    }
  }
  vt_infer_out *o = &c->out[0];
  o->dtype = dt;
  o->rank = e.nout;
  for (int d = 0; d < e.nout; d++) o->dims[d] = size[e.out[d]];
  return VT_OK;
}

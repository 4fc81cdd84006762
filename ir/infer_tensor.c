/* infer_tensor.c — shape inference for the tensor family (data movement and shape ops, rows in
 * ir/ops_tensor.def). Besides output types these functions propagate known integer contents
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of torch exports), so Reshape,
 * Expand, Tile, Slice, ConstantOfShape and Range can produce symbolic output dims.
 * Where an output dim cannot be known at graph level (a shape input fed by a graph input), the
 * dim is a fresh symbol; in the interpreter all data is present, so every dim comes out constant
 * (NonZero included: its count is taken from the data). */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BIG_END ((int64_t)1 << 40)   /* slice ends at or beyond this mean "to the end" */

/* ---------- helpers ------------------------------------------------------------------------- */
static bool present(const vt_infer_ctx *c, int i) { return i < c->n_in && c->in[i].present; }

static const vt_tensor *data_of(const vt_infer_ctx *c, int i) {
  if (!present(c, i) || !c->in[i].data) return NULL;
  const vt_tensor *t = c->in[i].data;
  if (!t->data && vt_tensor_numel(t) != 0) return NULL;
  return t;
}

static int need_rank(vt_infer_ctx *c, int i) {
  if (!present(c, i)) return vt_infer_fail(c, "input %d is required", i);
  if (c->in[i].rank < 0) return vt_infer_fail(c, "input %d has unknown rank", i);
  return VT_OK;
}

static int64_t opset(const vt_infer_ctx *c) {
  int64_t v = vt_graph_opset(c->g, "");
  return v > 0 ? v : 18;
}

/* Element count of input i when its dims are all constant, else -1. */
static int64_t const_numel(const vt_infer_ctx *c, int i) {
  if (!present(c, i) || c->in[i].rank < 0) return -1;
  int64_t n = 1;
  for (int32_t d = 0; d < c->in[i].rank; d++) {
    if (!vt_dim_is_const(c->in[i].dims[d])) return -1;
    n *= c->in[i].dims[d];
  }
  return n;
}

/* Literal integer contents of input i (all entries constant); -1 when not known. */
static int32_t lit_ints(const vt_infer_ctx *c, int i, int64_t *v, int32_t max) {
  if (!present(c, i)) return -1;
  const vt_tensor *t = data_of(c, i);
  if (t && (vt_dtype_is_int(t->dtype) || t->dtype == VT_BOOL)) {
    int64_t n = vt_tensor_numel(t);
    if (n < 0 || n > max) return -1;
    for (int64_t k = 0; k < n; k++) v[k] = vt_tensor_get_i64(t, k);
    return (int32_t)n;
  }
  vt_dim tmp[VT_MAX_KNOWN];
  int32_t n = vt_infer_ints(c, i, tmp, VT_MAX_KNOWN);
  if (n < 0 || n > max) return -1;
  for (int32_t k = 0; k < n; k++) {
    if (!vt_dim_is_const(tmp[k])) return -1;
    v[k] = tmp[k];
  }
  return n;
}

/* Known contents of input i as dims (constants or symbols); -1 when not known. */
static int32_t dim_ints(const vt_infer_ctx *c, int i, vt_dim *v, int32_t max) {
  if (!present(c, i)) return -1;
  if (c->in[i].dtype != VT_UNDEFINED && !vt_dtype_is_int(c->in[i].dtype)) return -1;
  return vt_infer_ints(c, i, v, max);
}

/* First element of input i as a double (any numeric dtype, from data only). */
static bool scalar_f64(const vt_infer_ctx *c, int i, double *x) {
  const vt_tensor *t = data_of(c, i);
  if (!t || t->dtype == VT_STRING || vt_tensor_numel(t) < 1) return false;
  *x = vt_tensor_get_f64(t, 0);
  return true;
}

static void set_known(vt_infer_out *o, const vt_dim *v, int32_t n) {
  o->nknown = 0;
  if (n <= 0 || n > VT_MAX_KNOWN) return;
  memcpy(o->known, v, (size_t)n * sizeof *v);
  o->nknown = n;
}

/* Copies input i's known contents (same element order) to output o. */
static void pass_known(vt_infer_ctx *c, int i, vt_infer_out *o) {
  if (!present(c, i) || !vt_dtype_is_int(c->in[i].dtype)) return;
  vt_dim v[VT_MAX_KNOWN];
  int32_t n = vt_infer_ints(c, i, v, VT_MAX_KNOWN);
  if (n > 0) set_known(o, v, n);
}

static vt_dim fresh(vt_infer_ctx *c) { return vt_dim_fresh(c->g); }

/* d + k for a constant k, folding into an existing "x + c" / "x - c" (no ((T+3)-1) chains). */
static vt_dim addc(vt_infer_ctx *c, vt_dim d, int64_t k) {
  if (vt_dim_is_const(d)) return d + k;
  if (k == 0) return d;
  const vt_sym *s = &c->g->syms[vt_dim_sym(d)];
  if (s->kind == VT_SYM_ADD && (vt_dim_is_const(s->a) || vt_dim_is_const(s->b))) {
    vt_dim x = vt_dim_is_const(s->a) ? s->b : s->a;
    int64_t k2 = (vt_dim_is_const(s->a) ? s->a : s->b) + k;
    return addc(c, x, k2);
  }
  if (s->kind == VT_SYM_SUB && vt_dim_is_const(s->b)) return addc(c, s->a, k - s->b);
  return k > 0 ? vt_dim_add(c->g, d, k) : vt_dim_sub(c->g, d, -k);
}

/* An anonymous unknown dim (vt_dim_fresh names them "?N"). */
static bool is_fresh(const vt_graph *g, vt_dim d) {
  if (vt_dim_is_const(d)) return false;
  const vt_sym *s = &g->syms[vt_dim_sym(d)];
  return s->kind == VT_SYM_NAMED && s->name && s->name[0] == '?';
}

/* Known contents of a small n-D integer input i with constant dims: out receives numel entries
 * (row-major) and *dims its dims. Returns numel, or -1. */
static int32_t known_nd(const vt_infer_ctx *c, int i, vt_dim *v, int64_t *dims) {
  if (!present(c, i) || !vt_dtype_is_int(c->in[i].dtype)) return -1;
  int64_t n = const_numel(c, i);
  if (n <= 0 || n > VT_MAX_KNOWN) return -1;
  if (vt_infer_ints(c, i, v, VT_MAX_KNOWN) != n) return -1;
  for (int32_t d = 0; d < c->in[i].rank; d++) dims[d] = c->in[i].dims[d];
  return (int32_t)n;
}

/* Gathers known entries through a strided view: out[k] = v[off + sum idx_d * str_d] over the
 * row-major walk of odims. */
static void known_view(vt_infer_out *o, const vt_dim *v, int32_t rank, const int64_t *odims, int64_t off,
                       const int64_t *str) {
  int64_t n = 1, idx[VT_MAX_RANK] = {0};
  for (int32_t d = 0; d < rank; d++) n *= odims[d];
  if (n <= 0 || n > VT_MAX_KNOWN) return;
  vt_dim res[VT_MAX_KNOWN];
  for (int64_t k = 0; k < n; k++) {
    int64_t e = off;
    for (int32_t d = 0; d < rank; d++) e += idx[d] * str[d];
    res[k] = v[e];
    for (int32_t d = rank - 1; d >= 0; d--) {
      if (++idx[d] < odims[d]) break;
      idx[d] = 0;
    }
  }
  set_known(o, res, (int32_t)n);
}

static void row_strides(int32_t rank, const int64_t *dims, int64_t *st) {
  int64_t acc = 1;
  for (int32_t d = rank - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= dims[d];
  }
}

static void out_type(vt_infer_out *o, vt_dtype dt, int32_t rank) {
  o->dtype = dt;
  o->rank = rank;
  o->nknown = 0;
}

static vt_dim dims_prod(vt_infer_ctx *c, const vt_dim *d, int32_t from, int32_t to) {
  vt_dim p = 1;
  for (int32_t i = from; i < to; i++) p = vt_dim_mul(c->g, p, d[i]);
  return p;
}

static char *dstr(const vt_graph *g, vt_dim d, char *buf) { return (char *)vt_dim_str(g, d, buf, 64); }

/* Splits a product into a constant coefficient and symbolic leaf factors. */
static void factorize(const vt_graph *g, vt_dim d, int64_t *coef, vt_dim *f, int *n, int max) {
  if (vt_dim_is_const(d)) { *coef *= d; return; }
  const vt_sym *s = &g->syms[vt_dim_sym(d)];
  if (s->kind == VT_SYM_MUL) {
    factorize(g, s->a, coef, f, n, max);
    factorize(g, s->b, coef, f, n, max);
    return;
  }
  if (*n < max) f[(*n)++] = d;
  else *coef = 0;   /* too many factors: poison, caller falls back */
}

/* num / den for a Reshape -1: exact for constants (error when it does not divide), common
 * symbolic factors cancelled, else a floor-division symbol. */
static int div_dims(vt_infer_ctx *c, vt_dim num, vt_dim den, vt_dim *res) {
  char a[64], b[64];
  if (vt_dim_is_const(num) && vt_dim_is_const(den)) {
    if (den == 0 || num % den != 0)
      return vt_infer_fail(c, "cannot infer the -1 dim: %lld elements are not divisible by %lld",
                           (long long)num, (long long)den);
    *res = num / den;
    return VT_OK;
  }
  int64_t cn = 1, cd = 1;
  vt_dim fn[32], fd[32];
  int nn = 0, nd = 0;
  factorize(c->g, num, &cn, fn, &nn, 32);
  factorize(c->g, den, &cd, fd, &nd, 32);
  bool used[32] = {false};
  int kept = 0;
  for (int j = 0; j < nd; j++) {
    int hit = -1;
    for (int i = 0; i < nn && hit < 0; i++)
      if (!used[i] && fn[i] == fd[j]) hit = i;
    if (hit >= 0) used[hit] = true;
    else fd[kept++] = fd[j];
  }
  nd = kept;
  if (cn != 0 && cd > 0 && nd == 0 && cn % cd == 0) {
    vt_dim r = cn / cd;
    for (int i = 0; i < nn; i++)
      if (!used[i]) r = vt_dim_mul(c->g, r, fn[i]);
    *res = r;
    return VT_OK;
  }
  if (cd == 0) return vt_infer_fail(c, "cannot infer the -1 dim: the other dims multiply to 0");
  (void)a; (void)b;
  *res = vt_dim_div(c->g, num, den);
  return VT_OK;
}

/* Normalises a list of axes against rank; fails on out-of-range or repeated axes. */
static int norm_axes(vt_infer_ctx *c, int64_t *ax, int32_t n, int32_t rank, const char *what) {
  for (int32_t i = 0; i < n; i++) {
    int64_t a = ax[i] < 0 ? ax[i] + rank : ax[i];
    if (a < 0 || a >= rank)
      return vt_infer_fail(c, "%s: axis %lld is out of range for rank %d", what, (long long)ax[i], rank);
    for (int32_t j = 0; j < i; j++)
      if (ax[j] == a) return vt_infer_fail(c, "%s: axis %lld is repeated", what, (long long)ax[i]);
    ax[i] = a;
  }
  return VT_OK;
}

/* ---------- Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Identity ------------------------ */
int vt_infer_Transpose(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  int32_t r = c->in[0].rank;
  const int64_t *perm;
  int32_t np = vt_attr_ints(c->node, "perm", &perm);
  int64_t p[VT_MAX_RANK];
  if (np < 0) {
    for (int32_t i = 0; i < r; i++) p[i] = r - 1 - i;
  } else {
    if (np != r) return vt_infer_fail(c, "perm has %d entries for an input of rank %d", np, r);
    bool seen[VT_MAX_RANK] = {false};
    for (int32_t i = 0; i < r; i++) {
      if (perm[i] < 0 || perm[i] >= r || seen[perm[i]])
        return vt_infer_fail(c, "perm is not a permutation of 0..%d", r - 1);
      seen[perm[i]] = true;
      p[i] = perm[i];
    }
  }
  vt_infer_out *o = &c->out[0];
  out_type(o, c->in[0].dtype, r);
  for (int32_t i = 0; i < r; i++) o->dims[i] = c->in[0].dims[p[i]];
  if (r <= 1) {
    pass_known(c, 0, o);
  } else {
    vt_dim v[VT_MAX_KNOWN];
    int64_t xd[VT_MAX_RANK], xs[VT_MAX_RANK], od[VT_MAX_RANK], vs[VT_MAX_RANK];
    if (known_nd(c, 0, v, xd) > 0) {
      row_strides(r, xd, xs);
      for (int32_t i = 0; i < r; i++) od[i] = xd[p[i]], vs[i] = xs[p[i]];
      known_view(o, v, r, od, 0, vs);
    }
  }
  return VT_OK;
}

int vt_infer_Reshape(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0], *s = &c->in[1];
  if (s->rank != 1) return vt_infer_fail(c, "the shape input must be 1-D (has rank %d)", s->rank);
  bool allowzero = vt_attr_int(c->node, "allowzero", 0) != 0;
  vt_infer_out *o = &c->out[0];
  vt_dim v[VT_MAX_KNOWN];
  int32_t n = dim_ints(c, 1, v, VT_MAX_KNOWN);
  if (n < 0) {
    if (!vt_dim_is_const(s->dims[0]))
      return vt_infer_fail(c, "the shape input has unknown length and contents");
    if (s->dims[0] > VT_MAX_RANK) return vt_infer_fail(c, "target rank %lld is too large", (long long)s->dims[0]);
    out_type(o, x->dtype, (int32_t)s->dims[0]);
    for (int32_t i = 0; i < o->rank; i++) o->dims[i] = fresh(c);
    return VT_OK;
  }
  if (n > VT_MAX_RANK) return vt_infer_fail(c, "target rank %d is too large (max %d)", n, VT_MAX_RANK);
  out_type(o, x->dtype, n);
  int neg = -1;
  for (int32_t i = 0; i < n; i++) {
    vt_dim d = v[i];
    if (vt_dim_is_const(d) && d == -1) {
      if (neg >= 0) return vt_infer_fail(c, "the shape has more than one -1");
      neg = i;
      o->dims[i] = 1;
    } else if (vt_dim_is_const(d) && d < -1) {
      return vt_infer_fail(c, "the shape has invalid entry %lld", (long long)d);
    } else if (vt_dim_is_const(d) && d == 0 && !allowzero) {
      if (i >= x->rank)
        return vt_infer_fail(c, "shape entry %d is 0 (copy) but the input has rank %d", i, x->rank);
      o->dims[i] = x->dims[i];
    } else {
      o->dims[i] = d;
    }
  }
  vt_dim total = dims_prod(c, x->dims, 0, x->rank);
  if (neg >= 0) {
    if (allowzero) {
      for (int32_t i = 0; i < n; i++)
        if (vt_dim_is_const(v[i]) && v[i] == 0)
          return vt_infer_fail(c, "allowzero=1 with both 0 and -1 in the shape");
    }
    vt_dim other = dims_prod(c, o->dims, 0, n);
    if (vt_dim_is_const(other) && other == 0) {
      if (vt_dim_is_const(total) && total == 0) o->dims[neg] = 0;
      else return vt_infer_fail(c, "cannot infer the -1 dim: the other dims multiply to 0");
    } else if (div_dims(c, total, other, &o->dims[neg])) {
      return VT_ERR_MODEL;
    }
  } else {
    vt_dim prod = dims_prod(c, o->dims, 0, n);
    if (vt_dim_is_const(prod) && vt_dim_is_const(total) && prod != total) {
      char a[64], b[64];
      return vt_infer_fail(c, "cannot reshape %s elements into a shape of %s elements", dstr(c->g, total, a),
                           dstr(c->g, prod, b));
    }
  }
  pass_known(c, 0, o);
  return VT_OK;
}

int vt_infer_Flatten(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  int32_t r = c->in[0].rank;
  int64_t axis = vt_attr_int(c->node, "axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) return vt_infer_fail(c, "axis %lld is out of range for rank %d",
                                                 (long long)vt_attr_int(c->node, "axis", 1), r);
  vt_infer_out *o = &c->out[0];
  out_type(o, c->in[0].dtype, 2);
  o->dims[0] = dims_prod(c, c->in[0].dims, 0, (int32_t)axis);
  o->dims[1] = dims_prod(c, c->in[0].dims, (int32_t)axis, r);
  pass_known(c, 0, o);
  return VT_OK;
}

/* Axes of Squeeze/Unsqueeze from the input (opset 13) or the attribute. Returns the count, -1
 * when the input exists but its contents are unknown, -2 when there are no axes at all. */
static int32_t get_axes(vt_infer_ctx *c, int i, int64_t *ax, int32_t max) {
  if (present(c, i)) return lit_ints(c, i, ax, max);
  const int64_t *a;
  int32_t n = vt_attr_ints(c->node, "axes", &a);
  if (n < 0) return -2;
  if (n > max) n = max;
  for (int32_t k = 0; k < n; k++) ax[k] = a[k];
  return n;
}

int vt_infer_Squeeze(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  int64_t ax[VT_MAX_RANK + 1];
  int32_t n = get_axes(c, 1, ax, VT_MAX_RANK + 1);
  vt_infer_out *o = &c->out[0];
  if (n == -1) {
    if (c->in[1].rank == 1 && vt_dim_is_const(c->in[1].dims[0]) && c->in[1].dims[0] <= r) {
      out_type(o, x->dtype, r - (int32_t)c->in[1].dims[0]);
      for (int32_t i = 0; i < o->rank; i++) o->dims[i] = fresh(c);
      pass_known(c, 0, o);
      return VT_OK;
    }
    return vt_infer_fail(c, "the axes input is not constant");
  }
  bool drop[VT_MAX_RANK] = {false};
  if (n == -2) {
    for (int32_t i = 0; i < r; i++) drop[i] = vt_dim_is_const(x->dims[i]) && x->dims[i] == 1;
  } else {
    if (n > r) return vt_infer_fail(c, "%d axes for an input of rank %d", n, r);
    if (norm_axes(c, ax, n, r, "axes")) return VT_ERR_MODEL;
    for (int32_t i = 0; i < n; i++) {
      vt_dim d = x->dims[ax[i]];
      if (vt_dim_is_const(d) && d != 1) {
        char b[64];
        return vt_infer_fail(c, "cannot squeeze axis %lld of size %s", (long long)ax[i], dstr(c->g, d, b));
      }
      drop[ax[i]] = true;
    }
  }
  out_type(o, x->dtype, 0);
  for (int32_t i = 0; i < r; i++)
    if (!drop[i]) o->dims[o->rank++] = x->dims[i];
  pass_known(c, 0, o);
  return VT_OK;
}

int vt_infer_Unsqueeze(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  int64_t ax[VT_MAX_RANK + 1];
  int32_t n = get_axes(c, 1, ax, VT_MAX_RANK + 1);
  vt_infer_out *o = &c->out[0];
  if (n == -2) return vt_infer_fail(c, "axes are required");
  if (n == -1) {
    if (c->in[1].rank == 1 && vt_dim_is_const(c->in[1].dims[0]) && c->in[1].dims[0] + r <= VT_MAX_RANK) {
      out_type(o, x->dtype, r + (int32_t)c->in[1].dims[0]);
      for (int32_t i = 0; i < o->rank; i++) o->dims[i] = fresh(c);
      pass_known(c, 0, o);
      return VT_OK;
    }
    return vt_infer_fail(c, "the axes input is not constant");
  }
  int32_t ro = r + n;
  if (ro > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large (max %d)", ro, VT_MAX_RANK);
  if (norm_axes(c, ax, n, ro, "axes")) return VT_ERR_MODEL;
  bool ins[VT_MAX_RANK] = {false};
  for (int32_t i = 0; i < n; i++) ins[ax[i]] = true;
  out_type(o, x->dtype, ro);
  for (int32_t i = 0, k = 0; i < ro; i++) o->dims[i] = ins[i] ? 1 : x->dims[k++];
  pass_known(c, 0, o);
  return VT_OK;
}

int vt_infer_Identity(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  vt_infer_same(c, 0, 0);
  pass_known(c, 0, &c->out[0]);
  return VT_OK;
}

int vt_infer_Dropout(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  vt_infer_same(c, 0, 0);
  pass_known(c, 0, &c->out[0]);
  if (c->n_out > 1) {
    vt_infer_same(c, 0, 1);
    c->out[1].dtype = VT_BOOL;
  }
  return VT_OK;
}

/* ---------- Concat, Split ------------------------------------------------------------------ */
int vt_infer_Concat(vt_infer_ctx *c) {
  int first = -1;
  for (int i = 0; i < c->n_in; i++) {
    if (!present(c, i)) continue;
    if (need_rank(c, i)) return VT_ERR_MODEL;
    if (first < 0) first = i;
  }
  if (first < 0) return vt_infer_fail(c, "needs at least one input");
  int32_t r = c->in[first].rank;
  if (r == 0) return vt_infer_fail(c, "cannot concatenate scalars");
  int64_t axis;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", 0), r, &axis)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  out_type(o, c->in[first].dtype, r);
  for (int32_t d = 0; d < r; d++) o->dims[d] = c->in[first].dims[d];
  o->dims[axis] = 0;
  for (int i = 0; i < c->n_in; i++) {
    if (!present(c, i)) continue;
    const vt_infer_in *x = &c->in[i];
    if (x->rank != r) return vt_infer_fail(c, "input %d has rank %d, input %d has rank %d", i, x->rank, first, r);
    if (x->dtype != o->dtype)
      return vt_infer_fail(c, "input %d is %s, input %d is %s", i, vt_dtype_name(x->dtype), first,
                           vt_dtype_name(o->dtype));
    for (int32_t d = 0; d < r; d++) {
      if (d == axis) continue;
      vt_dim a = o->dims[d], b = x->dims[d];
      if (a == b) continue;
      if (vt_dim_is_const(a) && vt_dim_is_const(b)) {
        char s1[64], s2[64];
        return vt_infer_fail(c, "input %d has size %s on axis %d where input %d has %s", i, dstr(c->g, b, s1), d,
                             first, dstr(c->g, a, s2));
      }
      /* the dims must be equal at run time: keep the most informative one */
      if (vt_dim_is_const(b) || (is_fresh(c->g, a) && !is_fresh(c->g, b))) o->dims[d] = b;
    }
    o->dims[axis] = vt_dim_add(c->g, o->dims[axis], x->dims[axis]);
  }
  /* known contents: concatenation of 1-D known inputs */
  if (r == 1 && vt_dtype_is_int(o->dtype)) {
    vt_dim all[VT_MAX_KNOWN], v[VT_MAX_KNOWN];
    int32_t total = 0;
    for (int i = 0; i < c->n_in; i++) {
      if (!present(c, i)) continue;
      int32_t n = vt_infer_ints(c, i, v, VT_MAX_KNOWN);
      if (n < 0 || total + n > VT_MAX_KNOWN) { total = -1; break; }
      memcpy(all + total, v, (size_t)n * sizeof *v);
      total += n;
    }
    if (total > 0) set_known(o, all, total);
  }
  return VT_OK;
}

int vt_infer_Split(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  int64_t axis;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", 0), r, &axis)) return VT_ERR_MODEL;
  int nout = c->n_out;
  vt_dim d = x->dims[axis];
  vt_dim sizes[256];
  if (nout > 256) return vt_infer_fail(c, "too many outputs (%d)", nout);
  int64_t sp[256];
  int32_t ns = -2;
  if (present(c, 1)) {
    ns = lit_ints(c, 1, sp, 256);
  } else {
    const int64_t *a;
    int32_t n = vt_attr_ints(c->node, "split", &a);
    if (n >= 0) {
      if (n > 256) return vt_infer_fail(c, "too many splits (%d)", n);
      for (int32_t k = 0; k < n; k++) sp[k] = a[k];
      ns = n;
    }
  }
  if (ns == -1) {
    for (int k = 0; k < nout; k++) sizes[k] = fresh(c);
  } else if (ns >= 0) {
    if (ns != nout) return vt_infer_fail(c, "%d split sizes for %d outputs", ns, nout);
    int64_t sum = 0;
    for (int k = 0; k < ns; k++) {
      if (sp[k] < 0) return vt_infer_fail(c, "split size %lld is negative", (long long)sp[k]);
      sum += sp[k];
      sizes[k] = sp[k];
    }
    if (vt_dim_is_const(d) && sum != d)
      return vt_infer_fail(c, "split sizes sum to %lld but axis %lld has size %lld", (long long)sum,
                           (long long)axis, (long long)d);
  } else {
    int64_t num = vt_attr_int(c->node, "num_outputs", 0);
    if (num > 0 && num != nout)
      return vt_infer_fail(c, "num_outputs is %lld but the node has %d outputs", (long long)num, nout);
    if (num > 0) {
      vt_dim chunk = vt_dim_ceildiv(c->g, d, nout);
      for (int k = 0; k < nout - 1; k++) sizes[k] = chunk;
      sizes[nout - 1] = vt_dim_sub(c->g, d, vt_dim_mul(c->g, chunk, nout - 1));
      if (vt_dim_is_const(sizes[nout - 1]) && sizes[nout - 1] < 0)
        return vt_infer_fail(c, "cannot split size %lld into %d outputs", (long long)d, nout);
    } else {
      if (vt_dim_is_const(d) && d % nout != 0)
        return vt_infer_fail(c, "axis %lld of size %lld does not split evenly into %d outputs", (long long)axis,
                             (long long)d, nout);
      for (int k = 0; k < nout; k++) sizes[k] = vt_dim_div(c->g, d, nout);
    }
  }
  for (int k = 0; k < nout; k++) {
    vt_infer_out *o = &c->out[k];
    out_type(o, x->dtype, r);
    for (int32_t j = 0; j < r; j++) o->dims[j] = x->dims[j];
    o->dims[axis] = sizes[k];
  }
  return VT_OK;
}

/* ---------- Slice ---------------------------------------------------------------------------- */
/* Clamped start and output length of one sliced axis of constant size d (ONNX Slice rules). */
static void slice_axis(int64_t d, int64_t s, int64_t e, int64_t step, int64_t *start, int64_t *len) {
  /* a step longer than the axis picks at most one element: clamp it (avoids overflow) */
  if (step > d) step = d > 0 ? d : 1;
  if (step < -d) step = d > 0 ? -d : -1;
  if (s < 0) s += d;
  if (e < 0) e += d;
  if (step > 0) {
    s = s < 0 ? 0 : s > d ? d : s;
    e = e < 0 ? 0 : e > d ? d : e;
    *len = e > s ? (e - s + step - 1) / step : 0;
  } else {
    s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
    e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
    *len = s > e ? (s - e + (-step) - 1) / (-step) : 0;
  }
  *start = s;
}

typedef struct slice_params {
  int32_t n;                 /* entries; -1 unknown */
  int64_t st[VT_MAX_RANK], en[VT_MAX_RANK], ax[VT_MAX_RANK], sp[VT_MAX_RANK];
  bool axes_known;
} slice_params;

static int get_slice_params(vt_infer_ctx *c, int32_t r, slice_params *p) {
  p->n = -1;
  p->axes_known = false;
  int64_t buf[4][VT_MAX_RANK + 1];
  int32_t cnt[4];
  if (c->n_in > 1) {
    for (int k = 0; k < 4; k++) cnt[k] = present(c, k + 1) ? lit_ints(c, k + 1, buf[k], VT_MAX_RANK + 1) : -2;
    if (cnt[0] == -2 || cnt[1] == -2) return vt_infer_fail(c, "starts and ends are required");
  } else {
    const char *names[3] = {"starts", "ends", "axes"};
    for (int k = 0; k < 3; k++) {
      const int64_t *a;
      int32_t n = vt_attr_ints(c->node, names[k], &a);
      if (n > VT_MAX_RANK + 1) n = VT_MAX_RANK + 1;
      for (int32_t j = 0; j < n; j++) buf[k][j] = a[j];
      cnt[k] = n < 0 ? -2 : n;
    }
    cnt[3] = -2;
    if (cnt[0] < 0 || cnt[1] < 0) return vt_infer_fail(c, "starts and ends attributes are required");
  }
  int32_t n = cnt[0] >= 0 ? cnt[0] : cnt[1] >= 0 ? cnt[1] : cnt[2] >= 0 ? cnt[2] : -1;
  if (cnt[2] >= 0) {
    p->axes_known = true;
    if (cnt[2] > r) return vt_infer_fail(c, "%d axes for an input of rank %d", cnt[2], r);
    for (int32_t j = 0; j < cnt[2]; j++) p->ax[j] = buf[2][j];
    if (norm_axes(c, p->ax, cnt[2], r, "axes")) return VT_ERR_MODEL;
  } else if (cnt[2] == -2 && n >= 0) {
    p->axes_known = true;
    if (n > r) return vt_infer_fail(c, "%d starts for an input of rank %d", n, r);
    for (int32_t j = 0; j < n; j++) p->ax[j] = j;
  }
  if (cnt[0] < 0 || cnt[1] < 0 || cnt[2] == -1 || cnt[3] == -1) {
    if (p->axes_known && cnt[2] >= 0) p->n = -cnt[2] - 2;   /* axes known, values not */
    return VT_OK;
  }
  if (cnt[1] != n || (cnt[2] >= 0 && cnt[2] != n) || (cnt[3] >= 0 && cnt[3] != n))
    return vt_infer_fail(c, "starts, ends, axes and steps have different lengths");
  if (n > r) return vt_infer_fail(c, "%d slice entries for an input of rank %d", n, r);
  for (int32_t j = 0; j < n; j++) {
    p->st[j] = buf[0][j];
    p->en[j] = buf[1][j];
    p->sp[j] = cnt[3] >= 0 ? buf[3][j] : 1;
    if (p->sp[j] == 0) return vt_infer_fail(c, "step is 0 on axis %lld", (long long)p->ax[j]);
  }
  p->n = n;
  return VT_OK;
}

int vt_infer_Slice(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  slice_params p;
  if (get_slice_params(c, r, &p)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  out_type(o, x->dtype, r);
  for (int32_t d = 0; d < r; d++) o->dims[d] = x->dims[d];
  if (p.n < 0) {
    if (p.n <= -2) {
      for (int32_t j = 0; j < -p.n - 2; j++) o->dims[p.ax[j]] = fresh(c);
    } else {
      for (int32_t d = 0; d < r; d++) o->dims[d] = fresh(c);
    }
    return VT_OK;
  }
  for (int32_t j = 0; j < p.n; j++) {
    int64_t a = p.ax[j], s = p.st[j], e = p.en[j], step = p.sp[j];
    vt_dim d = x->dims[a];
    if (vt_dim_is_const(d)) {
      int64_t st, len;
      slice_axis(d, s, e, step, &st, &len);
      o->dims[a] = len;
      continue;
    }
    /* symbolic size: assume the symbol is large enough that the indices fall inside it */
    if (step == 1) {
      vt_dim s2 = s >= 0 ? (vt_dim)s : s < -BIG_END ? 0 : addc(c, d, s);
      vt_dim e2 = e >= BIG_END ? d : e >= 0 ? (vt_dim)e : e < -BIG_END ? 0 : addc(c, d, e);
      if (vt_dim_is_const(s2) && vt_dim_is_const(e2)) o->dims[a] = e2 > s2 ? e2 - s2 : 0;
      else if (vt_dim_is_const(s2)) o->dims[a] = addc(c, e2, -s2);
      else o->dims[a] = vt_dim_sub(c->g, e2, s2);
    } else if (step > 1 && s == 0 && e >= BIG_END) {
      o->dims[a] = vt_dim_ceildiv(c->g, d, step);
    } else if (step == -1 && s <= -1 && s >= -BIG_END && e <= -BIG_END) {
      o->dims[a] = addc(c, d, s + 1);
    } else {
      o->dims[a] = fresh(c);
    }
  }
  /* known contents of a small sliced integer tensor */
  {
    vt_dim v[VT_MAX_KNOWN];
    int64_t xd[VT_MAX_RANK], xs[VT_MAX_RANK], od[VT_MAX_RANK], vs[VT_MAX_RANK], off = 0;
    if (known_nd(c, 0, v, xd) > 0) {
      row_strides(r, xd, xs);
      for (int32_t d = 0; d < r; d++) od[d] = xd[d], vs[d] = xs[d];
      for (int32_t j = 0; j < p.n; j++) {
        int64_t a = p.ax[j], st, len;
        slice_axis(xd[a], p.st[j], p.en[j], p.sp[j], &st, &len);
        od[a] = len;
        if (len > 0) off += st * xs[a];
        vs[a] = len > 1 ? xs[a] * p.sp[j] : 0;
      }
      known_view(o, v, r, od, off, vs);
    }
  }
  return VT_OK;
}

/* ---------- Gather family, Scatter family ------------------------------------------------------ */
int vt_infer_Gather(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0], *ind = &c->in[1];
  int32_t r = x->rank, q = ind->rank;
  if (r < 1) return vt_infer_fail(c, "data must have rank >= 1");
  if (ind->dtype != VT_I64 && ind->dtype != VT_I32)
    return vt_infer_fail(c, "indices must be int32 or int64 (is %s)", vt_dtype_name(ind->dtype));
  int64_t axis;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", 0), r, &axis)) return VT_ERR_MODEL;
  if (r + q - 1 > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large", r + q - 1);
  vt_infer_out *o = &c->out[0];
  out_type(o, x->dtype, r + q - 1);
  int32_t k = 0;
  for (int32_t d = 0; d < axis; d++) o->dims[k++] = x->dims[d];
  for (int32_t d = 0; d < q; d++) o->dims[k++] = ind->dims[d];
  for (int32_t d = (int32_t)axis + 1; d < r; d++) o->dims[k++] = x->dims[d];
  /* known contents: picking entries of a known 1-D tensor with constant indices */
  if (r == 1 && vt_dtype_is_int(x->dtype)) {
    int64_t ni = const_numel(c, 1);
    vt_dim v[VT_MAX_KNOWN], res[VT_MAX_KNOWN];
    int64_t idx[VT_MAX_KNOWN];
    int32_t n = ni >= 0 && ni <= VT_MAX_KNOWN ? vt_infer_ints(c, 0, v, VT_MAX_KNOWN) : -1;
    int32_t m = n >= 0 ? lit_ints(c, 1, idx, VT_MAX_KNOWN) : -1;
    if (n >= 0 && m == ni && m > 0) {
      for (int32_t j = 0; j < m; j++) {
        int64_t i = idx[j] < 0 ? idx[j] + n : idx[j];
        if (i < 0 || i >= n)
          return vt_infer_fail(c, "index %lld is out of range for axis 0 of size %d", (long long)idx[j], n);
        res[j] = v[i];
      }
      set_known(o, res, m);
    }
  }
  return VT_OK;
}

static int check_index_dtype(vt_infer_ctx *c, int i) {
  if (c->in[i].dtype != VT_I64 && c->in[i].dtype != VT_I32)
    return vt_infer_fail(c, "indices must be int32 or int64 (is %s)", vt_dtype_name(c->in[i].dtype));
  return VT_OK;
}

int vt_infer_GatherElements(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1) || check_index_dtype(c, 1)) return VT_ERR_MODEL;
  int32_t r = c->in[0].rank;
  if (c->in[1].rank != r) return vt_infer_fail(c, "indices have rank %d but data has rank %d", c->in[1].rank, r);
  int64_t axis;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", 0), r, &axis)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  out_type(o, c->in[0].dtype, r);
  for (int32_t d = 0; d < r; d++) o->dims[d] = c->in[1].dims[d];
  return VT_OK;
}

int vt_infer_GatherND(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  if (c->in[1].dtype != VT_I64) return vt_infer_fail(c, "indices must be int64");
  const vt_infer_in *x = &c->in[0], *ind = &c->in[1];
  int32_t r = x->rank, q = ind->rank;
  int64_t b = vt_attr_int(c->node, "batch_dims", 0);
  if (q < 1) return vt_infer_fail(c, "indices must have rank >= 1");
  if (b < 0 || b >= q || b >= r) return vt_infer_fail(c, "batch_dims %lld is invalid for ranks %d and %d",
                                                      (long long)b, r, q);
  vt_dim m = ind->dims[q - 1];
  if (!vt_dim_is_const(m)) return vt_infer_fail(c, "the last dim of indices must be a constant");
  if (m < 1 || m > r - b) return vt_infer_fail(c, "indices' last dim %lld is out of range 1..%lld", (long long)m,
                                               (long long)(r - b));
  int32_t ro = q - 1 + r - (int32_t)b - (int32_t)m;
  if (ro > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large", ro);
  vt_infer_out *o = &c->out[0];
  out_type(o, x->dtype, ro);
  int32_t k = 0;
  for (int32_t d = 0; d < q - 1; d++) o->dims[k++] = ind->dims[d];
  for (int32_t d = (int32_t)(b + m); d < r; d++) o->dims[k++] = x->dims[d];
  return VT_OK;
}

static int infer_scatter(vt_infer_ctx *c, bool nd) {
  if (need_rank(c, 0) || need_rank(c, 1) || need_rank(c, 2) || check_index_dtype(c, 1)) return VT_ERR_MODEL;
  if (nd && c->in[1].dtype != VT_I64) return vt_infer_fail(c, "indices must be int64");
  if (c->in[2].dtype != c->in[0].dtype)
    return vt_infer_fail(c, "updates are %s but data is %s", vt_dtype_name(c->in[2].dtype),
                         vt_dtype_name(c->in[0].dtype));
  if (!nd) {
    int32_t r = c->in[0].rank;
    if (c->in[1].rank != r || c->in[2].rank != r)
      return vt_infer_fail(c, "data, indices and updates must have the same rank");
    int64_t axis;
    if (vt_infer_axis(c, vt_attr_int(c->node, "axis", 0), r, &axis)) return VT_ERR_MODEL;
  }
  const char *red = vt_attr_str(c->node, "reduction", "none");
  if (strcmp(red, "none") && strcmp(red, "add") && strcmp(red, "mul") && strcmp(red, "max") && strcmp(red, "min"))
    return vt_infer_fail(c, "unknown reduction '%s'", red);
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

int vt_infer_ScatterElements(vt_infer_ctx *c) { return infer_scatter(c, false); }
int vt_infer_Scatter(vt_infer_ctx *c) { return infer_scatter(c, false); }
int vt_infer_ScatterND(vt_infer_ctx *c) { return infer_scatter(c, true); }

/* ---------- Expand, Tile ------------------------------------------------------------------------ */
int vt_infer_Expand(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (c->in[1].rank != 1) return vt_infer_fail(c, "the shape input must be 1-D");
  vt_dim v[VT_MAX_KNOWN];
  int32_t n = dim_ints(c, 1, v, VT_MAX_KNOWN);
  vt_infer_out *o = &c->out[0];
  if (n < 0) {
    vt_dim len = c->in[1].dims[0];
    if (!vt_dim_is_const(len)) return vt_infer_fail(c, "the shape input has unknown length and contents");
    int32_t ro = len > x->rank ? (int32_t)len : x->rank;
    if (ro > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large", ro);
    out_type(o, x->dtype, ro);
    /* an input dim of constant size != 1 can only stay as it is */
    for (int32_t d = 0; d < ro; d++) {
      int32_t ia = d - (ro - x->rank);
      vt_dim a = ia >= 0 ? x->dims[ia] : 1;
      o->dims[d] = vt_dim_is_const(a) && a != 1 ? a : fresh(c);
    }
    return VT_OK;
  }
  int32_t ro = n > x->rank ? n : x->rank;
  if (ro > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large", ro);
  out_type(o, x->dtype, ro);
  for (int32_t d = 0; d < ro; d++) {
    int32_t ia = d - (ro - x->rank), ib = d - (ro - n);
    vt_dim a = ia >= 0 ? x->dims[ia] : 1, b = ib >= 0 ? v[ib] : 1;
    if (vt_dim_is_const(b) && b < 0) return vt_infer_fail(c, "shape entry %lld is negative", (long long)b);
    if (a == b || b == 1) o->dims[d] = a;
    else if (a == 1) o->dims[d] = b;
    else if (vt_dim_is_const(a) && vt_dim_is_const(b)) {
      return vt_infer_fail(c, "input dim %d of size %lld cannot expand to %lld", ia, (long long)a, (long long)b);
    } else if (vt_dim_is_const(b)) {
      o->dims[d] = b;
    } else if (vt_dim_is_const(a)) {
      o->dims[d] = a;
    } else {
      o->dims[d] = vt_dim_max(c->g, a, b);
    }
  }
  /* known contents of a small expanded integer tensor */
  if (vt_dtype_is_int(x->dtype) && ro <= 1) {
    vt_dim kv[VT_MAX_KNOWN], res[VT_MAX_KNOWN];
    int32_t m = vt_infer_ints(c, 0, kv, VT_MAX_KNOWN);
    vt_dim len = ro == 1 ? o->dims[0] : 1;
    if (m > 0 && vt_dim_is_const(len) && len <= VT_MAX_KNOWN && (m == 1 || m == len)) {
      for (int64_t k = 0; k < len; k++) res[k] = kv[m == 1 ? 0 : k];
      set_known(o, res, (int32_t)len);
    }
  }
  return VT_OK;
}

int vt_infer_Tile(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  vt_infer_out *o = &c->out[0];
  out_type(o, x->dtype, r);
  vt_dim v[VT_MAX_KNOWN];
  int32_t n = dim_ints(c, 1, v, VT_MAX_KNOWN);
  if (n < 0) {
    for (int32_t d = 0; d < r; d++) o->dims[d] = fresh(c);
    return VT_OK;
  }
  if (n != r) return vt_infer_fail(c, "repeats has %d entries for an input of rank %d", n, r);
  for (int32_t d = 0; d < r; d++) {
    if (vt_dim_is_const(v[d]) && v[d] < 0) return vt_infer_fail(c, "repeat %lld is negative", (long long)v[d]);
    int64_t prod;
    if (vt_dim_is_const(v[d]) && vt_dim_is_const(x->dims[d]) && __builtin_mul_overflow(x->dims[d], v[d], &prod))
      return vt_infer_fail(c, "repeat %lld overflows the size of axis %d", (long long)v[d], d);
    o->dims[d] = vt_dim_mul(c->g, x->dims[d], v[d]);
  }
  return VT_OK;
}

/* ---------- Shape, Size, ConstantOfShape, Range, EyeLike ------------------------------------ */
int vt_infer_Shape(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  int64_t r = c->in[0].rank;
  int64_t s = vt_attr_int(c->node, "start", 0), e = vt_attr_int(c->node, "end", r);
  if (s < 0) s += r;
  if (e < 0) e += r;
  s = s < 0 ? 0 : s > r ? r : s;
  e = e < 0 ? 0 : e > r ? r : e;
  int64_t len = e > s ? e - s : 0;
  vt_infer_out *o = &c->out[0];
  out_type(o, VT_I64, 1);
  o->dims[0] = len;
  if (len > 0) set_known(o, c->in[0].dims + s, (int32_t)len);
  return VT_OK;
}

int vt_infer_Size(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  out_type(o, VT_I64, 0);
  vt_dim p = dims_prod(c, c->in[0].dims, 0, c->in[0].rank);
  set_known(o, &p, 1);
  return VT_OK;
}

int vt_infer_ConstantOfShape(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  if (c->in[0].rank != 1) return vt_infer_fail(c, "the shape input must be 1-D (has rank %d)", c->in[0].rank);
  const vt_attr *a = vt_node_attr(c->node, "value");
  vt_dtype dt = VT_F32;
  if (a && a->type == VT_ATTR_TENSOR && a->t) {
    if (vt_tensor_numel(a->t) != 1) return vt_infer_fail(c, "value must hold exactly one element");
    dt = a->t->dtype;
    if (dt == VT_STRING) return vt_infer_fail(c, "string values are not supported");
  }
  vt_dim v[VT_MAX_KNOWN];
  int32_t n = dim_ints(c, 0, v, VT_MAX_KNOWN);
  vt_infer_out *o = &c->out[0];
  if (n < 0) {
    vt_dim len = c->in[0].dims[0];
    if (!vt_dim_is_const(len)) return vt_infer_fail(c, "the shape input has unknown length and contents");
    if (len > VT_MAX_RANK) return vt_infer_fail(c, "output rank %lld is too large", (long long)len);
    out_type(o, dt, (int32_t)len);
    for (int32_t d = 0; d < o->rank; d++) o->dims[d] = fresh(c);
    return VT_OK;
  }
  if (n > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large", n);
  out_type(o, dt, n);
  for (int32_t d = 0; d < n; d++) {
    if (vt_dim_is_const(v[d]) && v[d] < 0) return vt_infer_fail(c, "shape entry %lld is negative", (long long)v[d]);
    o->dims[d] = v[d];
  }
  vt_dim numel = dims_prod(c, o->dims, 0, n);
  if (vt_dtype_is_int(dt) && vt_dim_is_const(numel) && numel > 0 && numel <= VT_MAX_KNOWN) {
    int64_t val = a && a->t ? vt_tensor_get_i64(a->t, 0) : 0;
    vt_dim res[VT_MAX_KNOWN];
    for (int64_t k = 0; k < numel; k++) res[k] = val;
    set_known(o, res, (int32_t)numel);
  }
  return VT_OK;
}

int vt_infer_Range(vt_infer_ctx *c) {
  for (int i = 0; i < 3; i++)
    if (need_rank(c, i)) return VT_ERR_MODEL;
  vt_dtype dt = c->in[0].dtype;
  if (c->in[1].dtype != dt || c->in[2].dtype != dt) return vt_infer_fail(c, "start, limit and delta differ in dtype");
  if (dt != VT_F32 && dt != VT_F64 && dt != VT_I16 && dt != VT_I32 && dt != VT_I64)
    return vt_infer_fail(c, "unsupported dtype %s", vt_dtype_name(dt));
  vt_infer_out *o = &c->out[0];
  out_type(o, dt, 1);
  const vt_tensor *ts = data_of(c, 0), *tl = data_of(c, 1), *td = data_of(c, 2);
  if (ts && tl && td && vt_tensor_numel(ts) == 1 && vt_tensor_numel(tl) == 1 && vt_tensor_numel(td) == 1) {
    int64_t n;
    if (vt_dtype_is_float(dt)) {
      double s = vt_tensor_get_f64(ts, 0), l = vt_tensor_get_f64(tl, 0), d = vt_tensor_get_f64(td, 0);
      if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d)) return vt_infer_fail(c, "invalid start/limit/delta");
      double f = ceil((l - s) / d);
      if (f > 1e12) return vt_infer_fail(c, "the range has too many elements");
      n = f > 0 ? (int64_t)f : 0;
    } else {
      int64_t s = vt_tensor_get_i64(ts, 0), l = vt_tensor_get_i64(tl, 0), d = vt_tensor_get_i64(td, 0);
      if (d == 0) return vt_infer_fail(c, "delta is 0");
      double f = ceil(((double)l - (double)s) / (double)d);
      n = f > 0 ? (int64_t)f : 0;
      if (n > 0 && n <= VT_MAX_KNOWN && dt != VT_I16) {
        vt_dim res[VT_MAX_KNOWN];
        for (int64_t k = 0; k < n; k++) res[k] = s + k * d;
        set_known(o, res, (int32_t)n);
      }
    }
    o->dims[0] = n;
    return VT_OK;
  }
  vt_dim s, l, d;
  if (vt_dtype_is_int(dt) && dim_ints(c, 0, &s, 1) == 1 && dim_ints(c, 1, &l, 1) == 1 && dim_ints(c, 2, &d, 1) == 1 &&
      vt_dim_is_const(d) && d > 0) {
    vt_dim diff = vt_dim_sub(c->g, l, s);
    o->dims[0] = d == 1 ? diff : vt_dim_ceildiv(c->g, diff, d);
    return VT_OK;
  }
  o->dims[0] = fresh(c);
  return VT_OK;
}

int vt_infer_EyeLike(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  if (c->in[0].rank != 2) return vt_infer_fail(c, "input must be 2-D (has rank %d)", c->in[0].rank);
  vt_infer_same(c, 0, 0);
  int64_t dt = vt_attr_int(c->node, "dtype", c->in[0].dtype);
  if (dt <= 0 || dt >= VT_DTYPE_MAX || dt == VT_STRING || vt_dtype_size((vt_dtype)dt) == 0)
    return vt_infer_fail(c, "unsupported dtype %lld", (long long)dt);
  c->out[0].dtype = (vt_dtype)dt;
  return VT_OK;
}

/* ---------- TopK, Pad, Trilu, DepthToSpace, SpaceToDepth, NonZero, OneHot ------------------ */
int vt_infer_TopK(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (x->rank < 1) return vt_infer_fail(c, "input must have rank >= 1");
  int64_t axis;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", -1), x->rank, &axis)) return VT_ERR_MODEL;
  vt_dim k;
  if (present(c, 1)) {
    vt_dim v[1];
    if (dim_ints(c, 1, v, 1) == 1) k = v[0];
    else k = fresh(c);
  } else {
    const vt_attr *a = vt_node_attr(c->node, "k");
    if (!a) return vt_infer_fail(c, "k is required");
    k = a->i;
  }
  if (vt_dim_is_const(k) && k < 0) return vt_infer_fail(c, "k is negative (%lld)", (long long)k);
  if (vt_dim_is_const(k) && vt_dim_is_const(x->dims[axis]) && k > x->dims[axis])
    return vt_infer_fail(c, "k = %lld is larger than axis %lld of size %lld", (long long)k, (long long)axis,
                         (long long)x->dims[axis]);
  vt_infer_same(c, 0, 0);
  c->out[0].dims[axis] = k;
  vt_infer_same(c, 0, 1);
  c->out[1].dims[axis] = k;
  c->out[1].dtype = VT_I64;
  return VT_OK;
}

int vt_infer_Pad(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  const char *mode = vt_attr_str(c->node, "mode", "constant");
  if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge"))
    return vt_infer_fail(c, "unsupported mode '%s'", mode);
  int64_t pads[2 * VT_MAX_RANK], axes[VT_MAX_RANK];
  int32_t na = r;
  for (int32_t d = 0; d < r; d++) axes[d] = d;
  if (present(c, 3)) {
    na = lit_ints(c, 3, axes, VT_MAX_RANK);
    if (na < 0) return vt_infer_fail(c, "the axes input is not constant");
    if (norm_axes(c, axes, na, r, "axes")) return VT_ERR_MODEL;
  }
  int32_t np;
  if (c->n_in > 1) {
    if (!present(c, 1)) return vt_infer_fail(c, "pads input is required");
    np = lit_ints(c, 1, pads, 2 * VT_MAX_RANK);
  } else {
    const int64_t *a;
    np = vt_attr_ints(c->node, "pads", &a);
    if (np < 0) return vt_infer_fail(c, "pads are required");
    if (np > 2 * VT_MAX_RANK) np = 2 * VT_MAX_RANK + 1;
    else for (int32_t k = 0; k < np; k++) pads[k] = a[k];
  }
  vt_infer_out *o = &c->out[0];
  vt_infer_same(c, 0, 0);
  if (np < 0) {
    for (int32_t k = 0; k < na; k++) o->dims[axes[k]] = fresh(c);
    return VT_OK;
  }
  if (np != 2 * na) return vt_infer_fail(c, "%d pads for %d axes", np, na);
  for (int32_t k = 0; k < na; k++) {
    vt_dim d = x->dims[axes[k]];
    int64_t add = pads[k] + pads[k + na];
    if (pads[k] > BIG_END || pads[k] < -BIG_END || pads[k + na] > BIG_END || pads[k + na] < -BIG_END)
      return vt_infer_fail(c, "pad %lld/%lld is too large", (long long)pads[k], (long long)pads[k + na]);
    if (vt_dim_is_const(d)) {
      if (d + add < 0) return vt_infer_fail(c, "pads remove more than axis %lld has", (long long)axes[k]);
      if (strcmp(mode, "constant") && d == 0 && add > 0)
        return vt_infer_fail(c, "cannot %s-pad the empty axis %lld", mode, (long long)axes[k]);
      o->dims[axes[k]] = d + add;
    } else {
      o->dims[axes[k]] = addc(c, d, add);
    }
  }
  return VT_OK;
}

int vt_infer_Trilu(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  if (c->in[0].rank < 2) return vt_infer_fail(c, "input must have rank >= 2");
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

static int infer_d2s(vt_infer_ctx *c, bool to_space) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (x->rank != 4) return vt_infer_fail(c, "input must be 4-D (has rank %d)", x->rank);
  int64_t b = vt_attr_int(c->node, "blocksize", 0);
  if (b <= 0) return vt_infer_fail(c, "blocksize must be positive");
  if (to_space) {
    const char *mode = vt_attr_str(c->node, "mode", "DCR");
    if (strcmp(mode, "DCR") && strcmp(mode, "CRD")) return vt_infer_fail(c, "unknown mode '%s'", mode);
  }
  vt_infer_same(c, 0, 0);
  vt_infer_out *o = &c->out[0];
  if (to_space) {
    if (vt_dim_is_const(x->dims[1]) && x->dims[1] % (b * b))
      return vt_infer_fail(c, "channels %lld are not divisible by blocksize^2 = %lld", (long long)x->dims[1],
                           (long long)(b * b));
    o->dims[1] = vt_dim_div(c->g, x->dims[1], b * b);
    o->dims[2] = vt_dim_mul(c->g, x->dims[2], b);
    o->dims[3] = vt_dim_mul(c->g, x->dims[3], b);
  } else {
    for (int d = 2; d < 4; d++)
      if (vt_dim_is_const(x->dims[d]) && x->dims[d] % b)
        return vt_infer_fail(c, "spatial dim %lld is not divisible by blocksize %lld", (long long)x->dims[d],
                             (long long)b);
    o->dims[1] = vt_dim_mul(c->g, x->dims[1], b * b);
    o->dims[2] = vt_dim_div(c->g, x->dims[2], b);
    o->dims[3] = vt_dim_div(c->g, x->dims[3], b);
  }
  return VT_OK;
}

int vt_infer_DepthToSpace(vt_infer_ctx *c) { return infer_d2s(c, true); }
int vt_infer_SpaceToDepth(vt_infer_ctx *c) { return infer_d2s(c, false); }

int vt_infer_NonZero(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  vt_infer_out *o = &c->out[0];
  out_type(o, VT_I64, 2);
  o->dims[0] = c->in[0].rank;
  const vt_tensor *t = data_of(c, 0);
  if (t) {
    if (t->dtype == VT_STRING) return vt_infer_fail(c, "string input is not supported");
    int64_t n = vt_tensor_numel(t), cnt = 0;
    size_t es = vt_dtype_size(t->dtype);
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < n; i++, p += es) {
      bool nz = false;
      for (size_t b = 0; b < es && !nz; b++) nz = p[b] != 0;
      /* -0.0 is zero */
      if (nz && vt_dtype_is_float(t->dtype)) nz = vt_tensor_get_f64(t, i) != 0;
      cnt += nz;
    }
    o->dims[1] = cnt;
  } else {
    o->dims[1] = fresh(c);
  }
  return VT_OK;
}

int vt_infer_OneHot(vt_infer_ctx *c) {
  for (int i = 0; i < 3; i++)
    if (need_rank(c, i)) return VT_ERR_MODEL;
  int32_t r = c->in[0].rank;
  if (r + 1 > VT_MAX_RANK) return vt_infer_fail(c, "output rank %d is too large", r + 1);
  int64_t axis;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", -1), r + 1, &axis)) return VT_ERR_MODEL;
  if (const_numel(c, 2) >= 0 && const_numel(c, 2) != 2) return vt_infer_fail(c, "values must have 2 elements");
  vt_infer_out *o = &c->out[0];
  out_type(o, c->in[2].dtype, r + 1);
  double depth;
  vt_dim dd;
  if (scalar_f64(c, 1, &depth)) {
    if (!(depth >= 1) || depth > 1e12) return vt_infer_fail(c, "depth %g is invalid", depth);
    dd = (int64_t)depth;
  } else {
    vt_dim v;
    dd = dim_ints(c, 1, &v, 1) == 1 ? v : fresh(c);
  }
  for (int32_t d = 0, k = 0; d < r + 1; d++) o->dims[d] = d == axis ? dd : c->in[0].dims[k++];
  return VT_OK;
}

/* ---------- Resize, Upsample --------------------------------------------------------------- */
/* Float contents of input i from data (scales, roi); -1 when unknown. */
static int32_t lit_floats(const vt_infer_ctx *c, int i, double *v, int32_t max) {
  const vt_tensor *t = data_of(c, i);
  if (!t || t->dtype == VT_STRING) return -1;
  int64_t n = vt_tensor_numel(t);
  if (n > max) return -1;
  for (int64_t k = 0; k < n; k++) v[k] = vt_tensor_get_f64(t, k);
  return (int32_t)n;
}

static int infer_resize(vt_infer_ctx *c, int iscales, int isizes) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  int32_t r = x->rank;
  const char *mode = vt_attr_str(c->node, "mode", "nearest");
  if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "cubic") && strcmp(mode, "bilinear"))
    return vt_infer_fail(c, "unsupported mode '%s'", mode);
  if (vt_attr_int(c->node, "antialias", 0) != 0) return vt_infer_fail(c, "antialias=1 is not supported");
  int64_t axes[VT_MAX_RANK];
  const int64_t *aa;
  int32_t na = vt_attr_ints(c->node, "axes", &aa);
  if (na < 0) {
    na = r;
    for (int32_t d = 0; d < r; d++) axes[d] = d;
  } else {
    if (na > r) return vt_infer_fail(c, "%d axes for rank %d", na, r);
    for (int32_t d = 0; d < na; d++) axes[d] = aa[d];
    if (norm_axes(c, axes, na, r, "axes")) return VT_ERR_MODEL;
  }
  vt_infer_same(c, 0, 0);
  vt_infer_out *o = &c->out[0];
  bool have_sizes = isizes >= 0 && present(c, isizes) && !(c->in[isizes].rank == 1 && c->in[isizes].dims[0] == 0);
  bool have_scales = iscales >= 0 && present(c, iscales) && !(c->in[iscales].rank == 1 && c->in[iscales].dims[0] == 0);
  double sc[VT_MAX_RANK];
  if (iscales < 0) {   /* Upsample-7: scales attribute */
    const float *f;
    int32_t n = vt_attr_floats(c->node, "scales", &f);
    if (n != r) return vt_infer_fail(c, "scales has %d entries for rank %d", n, r);
    for (int32_t d = 0; d < r; d++) sc[d] = f[d];
    have_scales = true;
  }
  if (have_sizes && have_scales) return vt_infer_fail(c, "only one of scales and sizes may be given");
  if (!have_sizes && !have_scales) return vt_infer_fail(c, "one of scales and sizes is required");
  if (have_sizes) {
    vt_dim szd[VT_MAX_RANK];
    int64_t sz[VT_MAX_RANK];
    int32_t n = present(c, isizes) && vt_dtype_is_int(c->in[isizes].dtype) ? vt_infer_ints(c, isizes, szd, VT_MAX_RANK) : -1;
    if (n < 0) {
      for (int32_t k = 0; k < na; k++) o->dims[axes[k]] = fresh(c);
      return VT_OK;
    }
    if (n != na) return vt_infer_fail(c, "sizes has %d entries for %d axes", n, na);
    bool all_const = true;
    for (int32_t k = 0; k < n; k++) {
      if (vt_dim_is_const(szd[k])) sz[k] = szd[k];
      else all_const = false;
    }
    if (!all_const) {   /* symbolic sizes (e.g. from Shape arithmetic): stretch only */
      if (strcmp(vt_attr_str(c->node, "keep_aspect_ratio_policy", "stretch"), "stretch"))
        return vt_infer_fail(c, "keep_aspect_ratio_policy needs constant sizes");
      for (int32_t k = 0; k < na; k++) {
        if (vt_dim_is_const(szd[k]) && szd[k] < 0) return vt_infer_fail(c, "negative size %lld", (long long)szd[k]);
        o->dims[axes[k]] = szd[k];
      }
      return VT_OK;
    }
    const char *pol = vt_attr_str(c->node, "keep_aspect_ratio_policy", "stretch");
    if (strcmp(pol, "stretch") == 0) {
      for (int32_t k = 0; k < na; k++) {
        if (sz[k] < 0) return vt_infer_fail(c, "negative size %lld", (long long)sz[k]);
        o->dims[axes[k]] = sz[k];
      }
    } else {
      bool larger = strcmp(pol, "not_smaller") == 0;
      if (!larger && strcmp(pol, "not_larger")) return vt_infer_fail(c, "unknown keep_aspect_ratio_policy '%s'", pol);
      double s = larger ? 0 : 1e300;
      for (int32_t k = 0; k < na; k++) {
        vt_dim d = x->dims[axes[k]];
        if (!vt_dim_is_const(d)) {
          for (int32_t j = 0; j < na; j++) o->dims[axes[j]] = fresh(c);
          return VT_OK;
        }
        double q = d ? (double)sz[k] / (double)d : 1;
        s = larger ? fmax(s, q) : fmin(s, q);
      }
      for (int32_t k = 0; k < na; k++) o->dims[axes[k]] = (int64_t)floor(s * (double)x->dims[axes[k]] + 0.5);
    }
    return VT_OK;
  }
  int32_t n = iscales < 0 ? r : lit_floats(c, iscales, sc, VT_MAX_RANK);
  if (n < 0) {
    for (int32_t k = 0; k < na; k++) o->dims[axes[k]] = fresh(c);
    return VT_OK;
  }
  if (iscales < 0) na = r;
  if (n != na) return vt_infer_fail(c, "scales has %d entries for %d axes", n, na);
  for (int32_t k = 0; k < na; k++) {
    vt_dim d = x->dims[axes[k]];
    if (!(sc[k] > 0) || sc[k] > 1e9) return vt_infer_fail(c, "scale %g is invalid", sc[k]);
    if (vt_dim_is_const(d) && (double)d * sc[k] > 1e15) return vt_infer_fail(c, "scale %g makes axis %lld too large", sc[k], (long long)axes[k]);
    if (vt_dim_is_const(d)) o->dims[axes[k]] = (int64_t)floor((double)d * sc[k]);
    else if (sc[k] == floor(sc[k])) o->dims[axes[k]] = vt_dim_mul(c->g, d, (int64_t)sc[k]);
    else o->dims[axes[k]] = fresh(c);
  }
  return VT_OK;
}

int vt_infer_Resize(vt_infer_ctx *c) {
  if (opset(c) < 11) return infer_resize(c, 1, -1);
  return infer_resize(c, 2, 3);
}

int vt_infer_Upsample(vt_infer_ctx *c) { return infer_resize(c, c->n_in > 1 ? 1 : -1, -1); }

/* ---------- GridSample, Compress, ReverseSequence ------------------------------------------ */
int vt_infer_GridSample(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0], *gr = &c->in[1];
  if (x->rank != 4 || gr->rank != 4) return vt_infer_fail(c, "X and grid must be 4-D (have ranks %d and %d)", x->rank, gr->rank);
  if (!vt_dtype_is_float(x->dtype) || !vt_dtype_is_float(gr->dtype)) return vt_infer_fail(c, "X and grid must be float tensors");
  if (vt_dim_is_const(gr->dims[3]) && gr->dims[3] != 2) return vt_infer_fail(c, "grid's last dim must be 2");
  if (vt_dim_is_const(x->dims[0]) && vt_dim_is_const(gr->dims[0]) && x->dims[0] != gr->dims[0])
    return vt_infer_fail(c, "X and grid differ in batch size");
  const char *mode = vt_attr_str(c->node, "mode", "bilinear");
  const char *pad = vt_attr_str(c->node, "padding_mode", "zeros");
  if (strcmp(mode, "bilinear") && strcmp(mode, "nearest") && strcmp(mode, "bicubic") && strcmp(mode, "linear") &&
      strcmp(mode, "cubic"))
    return vt_infer_fail(c, "unknown mode '%s'", mode);
  if (strcmp(pad, "zeros") && strcmp(pad, "border") && strcmp(pad, "reflection"))
    return vt_infer_fail(c, "unknown padding_mode '%s'", pad);
  vt_infer_out *o = &c->out[0];
  out_type(o, x->dtype, 4);
  o->dims[0] = vt_dim_is_const(x->dims[0]) ? x->dims[0] : gr->dims[0];
  o->dims[1] = x->dims[1];
  o->dims[2] = gr->dims[1];
  o->dims[3] = gr->dims[2];
  return VT_OK;
}

int vt_infer_Compress(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (c->in[1].rank != 1) return vt_infer_fail(c, "condition must be 1-D");
  const vt_attr *a = vt_node_attr(c->node, "axis");
  vt_infer_out *o = &c->out[0];
  int64_t axis = 0;
  vt_dim len;
  if (a) {
    if (vt_infer_axis(c, a->i, x->rank, &axis)) return VT_ERR_MODEL;
    out_type(o, x->dtype, x->rank);
    for (int32_t d = 0; d < x->rank; d++) o->dims[d] = x->dims[d];
    len = x->dims[axis];
  } else {
    out_type(o, x->dtype, 1);
    len = dims_prod(c, x->dims, 0, x->rank);
  }
  const vt_tensor *t = data_of(c, 1);
  vt_dim cnt;
  if (t && vt_dim_is_const(len)) {
    int64_t n = vt_tensor_numel(t), k = 0;
    if (n > len) n = len;
    for (int64_t i = 0; i < n; i++) k += vt_tensor_get_f64(t, i) != 0;
    cnt = k;
  } else {
    cnt = fresh(c);
  }
  o->dims[a ? axis : 0] = cnt;
  return VT_OK;
}

int vt_infer_ReverseSequence(vt_infer_ctx *c) {
  if (need_rank(c, 0) || need_rank(c, 1)) return VT_ERR_MODEL;
  int32_t r = c->in[0].rank;
  if (r < 2) return vt_infer_fail(c, "input must have rank >= 2");
  int64_t b = vt_attr_int(c->node, "batch_axis", 1), t = vt_attr_int(c->node, "time_axis", 0);
  if (!((b == 0 && t == 1) || (b == 1 && t == 0))) return vt_infer_fail(c, "batch_axis and time_axis must be 0 and 1");
  if (c->in[1].rank != 1 || c->in[1].dtype != VT_I64) return vt_infer_fail(c, "sequence_lens must be a 1-D int64 tensor");
  vt_dim nb = c->in[0].dims[b], nl = c->in[1].dims[0];
  if (vt_dim_is_const(nb) && vt_dim_is_const(nl) && nb != nl)
    return vt_infer_fail(c, "sequence_lens has %lld entries for a batch of %lld", (long long)nl, (long long)nb);
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

/* ---------- Unique --------------------------------------------------------------------------- */
/* Slices X[:, i, :] of a [outer, n, inner] view compared lexicographically (the kernel's order). */
typedef struct uq_ctx { const vt_tensor *x; int64_t n, outer, inner; bool is_int; } uq_ctx;

static int uq_cmp(const void *pa, const void *pb, void *arg) {
  const uq_ctx *u = arg;
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  for (int64_t o = 0; o < u->outer; o++)
    for (int64_t i = 0; i < u->inner; i++) {
      int64_t ea = (o * u->n + a) * u->inner + i, eb = (o * u->n + b) * u->inner + i;
      if (u->is_int) {
        int64_t va = vt_tensor_get_i64(u->x, ea), vb = vt_tensor_get_i64(u->x, eb);
        if (va != vb) return va < vb ? -1 : 1;
      } else {
        double va = vt_tensor_get_f64(u->x, ea), vb = vt_tensor_get_f64(u->x, eb);
        if (va != vb) return va < vb ? -1 : 1;
      }
    }
  return 0;
}

int vt_infer_Unique(vt_infer_ctx *c) {
  if (need_rank(c, 0)) return VT_ERR_MODEL;
  const vt_infer_in *x = &c->in[0];
  if (x->dtype == VT_STRING) return vt_infer_fail(c, "string input is not supported");
  const vt_attr *a = vt_node_attr(c->node, "axis");
  int64_t axis = 0;
  if (a && vt_infer_axis(c, a->i, x->rank, &axis)) return VT_ERR_MODEL;
  vt_dim n = a ? x->dims[axis] : dims_prod(c, x->dims, 0, x->rank), cnt;
  const vt_tensor *t = data_of(c, 0);
  if (t) {
    uq_ctx u = {.x = t, .n = n, .outer = 1, .inner = 1, .is_int = !vt_dtype_is_float(t->dtype)};
    if (a) {
      for (int32_t d = 0; d < axis; d++) u.outer *= t->dims[d];
      for (int32_t d = (int32_t)axis + 1; d < t->rank; d++) u.inner *= t->dims[d];
    }
    int64_t *ord = malloc((size_t)(n ? n : 1) * sizeof *ord);
    if (!ord) return vt_infer_fail(c, "out of memory");
    for (int64_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, (size_t)n, sizeof *ord, uq_cmp, &u);
    cnt = n > 0;
    for (int64_t i = 1; i < n; i++) cnt += uq_cmp(&ord[i - 1], &ord[i], &u) != 0;
    free(ord);
  } else {
    cnt = fresh(c);
  }
  vt_infer_out *o = &c->out[0];
  if (a) {
    vt_infer_same(c, 0, 0);
    o->dims[axis] = cnt;
  } else {
    out_type(o, x->dtype, 1);
    o->dims[0] = cnt;
  }
  for (int k = 1; k < c->n_out; k++) {
    out_type(&c->out[k], VT_I64, 1);
    c->out[k].dims[0] = k == 2 ? n : cnt;
  }
  return VT_OK;
}

/* infer_math.c — shape inference for the math op family (rows in ops_math.def): elementwise
 * binary/unary ops, Where, Cast, reductions, softmax family and normalisations. Elementwise integer
 * ops on small tensors also propagate known contents (shape arithmetic of torch exports:
 * Shape -> Gather -> Mul/Div/Add -> Concat -> Reshape), folding symbolic dims. */
#include <math.h>
#include <string.h>

#include "ir.h"

/* ---------- helpers ------------------------------------------------------------------------ */

static int64_t opset(const vt_infer_ctx *c) {
  int64_t v = vt_graph_opset(c->g, "");
  return v > 0 ? v : 1000;   /* graphs built in memory: newest semantics */
}

static bool in_present(const vt_infer_ctx *c, int i) { return i < c->n_in && c->in[i].present; }

/* Element count of constant dims, or -1 if a dim is symbolic / rank unknown. */
static int64_t const_numel(int32_t rank, const vt_dim *dims) {
  if (rank < 0) return -1;
  int64_t n = 1;
  for (int32_t d = 0; d < rank; d++) {
    if (!vt_dim_is_const(dims[d])) return -1;
    n *= dims[d];
    if (n > (1 << 20)) return -1;
  }
  return n;
}

/* Known contents are exact integers. Float tensors carry them too (Shape -> Cast(float) -> Mul ->
 * Cast(int64) chains), but only while every value stays an exact integer. */
static bool known_dtype(vt_dtype t) { return vt_dtype_is_int(t) || t == VT_BOOL || t == VT_F32 || t == VT_F64; }

/* vt_infer_ints, except that float data must hold exact integers (else -1). */
static int32_t known_ints(const vt_infer_ctx *c, int i, vt_dim *vals, int32_t max) {
  const vt_infer_in *in = &c->in[i];
  if (vt_dtype_is_float(in->dtype) && !(in->known && in->nknown > 0)) {
    if (!in->data || !in->data->data) return -1;
    int64_t n = vt_tensor_numel(in->data);
    if (n < 0 || n > max) return -1;
    for (int64_t k = 0; k < n; k++) {
      double v = vt_tensor_get_f64(in->data, k);
      if (!(v == floor(v) && fabs(v) < 1e15)) return -1;
      vals[k] = (vt_dim)v;
    }
    return (int32_t)n;
  }
  return vt_infer_ints(c, i, vals, max);
}

enum { KB_ADD, KB_SUB, KB_MUL, KB_DIV, KB_MOD, KB_FMOD, KB_MIN, KB_MAX, KB_EQ, KB_WHERE, KB_NEG, KB_ABS, KB_COPY };

/* Combines known values (a, b, w: Where's third) for one output element; returns false if the
 * result is not decidable or not representable. */
static bool known_op(vt_graph *g, int op, vt_dim a, vt_dim b, vt_dim w, vt_dim *r) {
  bool ca = vt_dim_is_const(a), cb = vt_dim_is_const(b);
  switch (op) {
  case KB_ADD: *r = vt_dim_add(g, a, b); return true;
  case KB_SUB: *r = vt_dim_sub(g, a, b); return true;
  case KB_MUL:
    if ((ca && a < 0 && !cb) || (cb && b < 0 && !ca)) return false;
    if (ca && cb) { *r = (vt_dim)((uint64_t)a * (uint64_t)b); return vt_dim_is_const(*r); }
    *r = vt_dim_mul(g, a, b);
    return true;
  case KB_DIV:
    if (ca && cb) {
      if (b == 0 || (b == -1 && a == INT64_MIN)) return false;
      *r = a / b;   /* ONNX integer Div truncates */
      return true;
    }
    if ((ca && a < 0) || (cb && b <= 0)) return false;
    *r = vt_dim_div(g, a, b);
    return true;
  case KB_MOD: case KB_FMOD:   /* constants only: Mod's remainder takes the divisor's sign, fmod's the dividend's */
    if (!ca || !cb || b == 0 || (b == -1 && a == INT64_MIN)) return false;
    *r = a % b;
    if (op == KB_MOD && *r != 0 && ((*r < 0) != (b < 0))) *r += b;
    return true;
  case KB_MIN: *r = vt_dim_min(g, a, b); return true;
  case KB_MAX: *r = vt_dim_max(g, a, b); return true;
  case KB_EQ:
    if (a == b) { *r = 1; return true; }
    if (ca && cb) { *r = 0; return true; }
    /* a symbol is a size (>= 0), so it never equals a negative constant: this decides torch's
     * expand(B, -1, -1) idiom Where(Equal(shape, -1), 1, shape) */
    if ((ca && a < 0) || (cb && b < 0)) { *r = 0; return true; }
    return false;
  case KB_WHERE:
    if (!ca) return false;
    *r = a ? b : w;
    return true;
  case KB_NEG:
    if (!ca || a == INT64_MIN) return false;
    *r = -a;
    return vt_dim_is_const(*r);
  case KB_ABS:
    if (!ca) return (*r = a), true;   /* symbols are sizes: >= 0 */
    if (a == INT64_MIN) return false;
    *r = a < 0 ? -a : a;
    return true;
  default: *r = a; return true;
  }
}

/* Sets out[0]'s known contents elementwise from inputs [0, n) when all are known and the output
 * is small. Output shape must already be set. */
static void propagate_known(vt_infer_ctx *c, int n, int op) {
  vt_infer_out *o = &c->out[0];
  o->nknown = 0;
  if (!known_dtype(o->dtype)) return;
  int64_t on = const_numel(o->rank, o->dims);
  if (on <= 0 || on > VT_MAX_KNOWN) return;
  vt_dim vals[3][VT_MAX_KNOWN];
  int64_t str[3][VT_MAX_RANK];
  for (int i = 0; i < n; i++) {
    if (!in_present(c, i)) return;
    const vt_infer_in *in = &c->in[i];
    if (!known_dtype(in->dtype)) return;
    int64_t inn = const_numel(in->rank, in->dims);
    if (inn < 0 || inn > VT_MAX_KNOWN || in->rank > o->rank) return;
    if (known_ints(c, i, vals[i], VT_MAX_KNOWN) != inn) return;
    int64_t acc = 1;
    for (int32_t d = o->rank - 1; d >= 0; d--) {
      int32_t k = d - (o->rank - in->rank);
      int64_t dim = k >= 0 ? in->dims[k] : 1;
      str[i][d] = dim == 1 ? 0 : acc;
      acc *= dim;
    }
  }
  vt_dim res[VT_MAX_KNOWN];
  for (int64_t e = 0; e < on; e++) {
    int64_t off[3] = {0, 0, 0}, rem = e;
    for (int32_t d = o->rank - 1; d >= 0; d--) {
      int64_t ix = rem % o->dims[d];
      rem /= o->dims[d];
      for (int i = 0; i < n; i++) off[i] += ix * str[i][d];
    }
    vt_dim a = vals[0][off[0]], b = n > 1 ? vals[1][off[1]] : 0, w = n > 2 ? vals[2][off[2]] : 0;
    if (o->dtype == VT_BOOL && op == KB_WHERE) return;
    if (op == KB_DIV && vt_dtype_is_float(o->dtype)) {
      /* float division stays integral only when exact */
      if (!(vt_dim_is_const(b) && b == 1) &&
          !(vt_dim_is_const(a) && vt_dim_is_const(b) && b != 0 && a % b == 0)) return;
    }
    if (!known_op(c->g, op, a, b, w, &res[e])) return;
    /* f32 holds integers exactly only up to 2^24 */
    if (o->dtype == VT_F32 && vt_dim_is_const(res[e]) && (res[e] > (1 << 24) || res[e] < -(1 << 24))) return;
  }
  memcpy(o->known, res, (size_t)on * sizeof(vt_dim));
  o->nknown = (int32_t)on;
}

static bool is_numeric(vt_dtype t) { return vt_dtype_is_float(t) || vt_dtype_is_int(t); }

/* Broadcast of inputs [0, n) with all dtypes equal; output dtype = out_dt or the input's. */
static int bcast_same(vt_infer_ctx *c, int n, vt_dtype out_dt) {
  for (int i = 1; i < n && i < c->n_in; i++)
    if (c->in[i].present && c->in[i].dtype != c->in[0].dtype)
      return vt_infer_fail(c, "input %d has dtype %s but input 0 has %s", i,
                           vt_dtype_name(c->in[i].dtype), vt_dtype_name(c->in[0].dtype));
  int rc = vt_infer_broadcast(c, n, &c->out[0]);
  if (rc) return rc;
  c->out[0].dtype = out_dt ? out_dt : c->in[0].dtype;
  return VT_OK;
}

/* Opset < 7 broadcasting of Add/Sub/Mul/Div (broadcast=1, optional axis) and PRelu (slope of
 * size C on axis 1): B's dims become a run of A's starting at axis, i.e. numpy broadcasting of
 * B padded with trailing 1s. Fills *b with the adjusted description of input 1; returns false
 * when no legacy rule applies. */
static bool legacy_b(const vt_infer_ctx *c, bool prelu, vt_infer_in *b, vt_dim *dims) {
  int64_t ver = vt_graph_opset(c->g, "");
  if (ver <= 0 || ver >= 7 || c->in[0].rank < 0 || c->in[1].rank < 0) return false;
  int32_t ra = c->in[0].rank, rb = c->in[1].rank;
  int64_t axis;
  if (prelu) {
    if (rb != 1 || ra < 2) return false;
    axis = 1;
  } else {
    if (!vt_attr_int(c->node, "broadcast", 0)) return false;
    axis = vt_attr_int(c->node, "axis", ra - rb);
    if (axis < 0) axis += ra;
  }
  if (axis < 0 || axis + rb > ra) return false;
  *b = c->in[1];
  for (int32_t d = 0; d < rb; d++) dims[d] = c->in[1].dims[d];
  for (int32_t d = rb; d < ra - axis; d++) dims[d] = 1;
  b->rank = (int32_t)(ra - axis);
  b->dims = dims;
  return true;
}

static int numeric_bcast(vt_infer_ctx *c, int n, int kop) {
  if (!is_numeric(c->in[0].dtype))
    return vt_infer_fail(c, "dtype %s is not numeric", vt_dtype_name(c->in[0].dtype));
  vt_infer_in lin[2];
  vt_dim ldims[VT_MAX_RANK];
  if (n == 2 && legacy_b(c, c->node->op == VT_OP_PRelu, &lin[1], ldims)) {
    lin[0] = c->in[0];
    vt_infer_ctx lc = *c;
    lc.in = lin;
    int rc = bcast_same(&lc, 2, 0);
    if (rc) return rc;
    if (kop >= 0) propagate_known(&lc, 2, kop);
    return VT_OK;
  }
  int rc = bcast_same(c, n, 0);
  if (rc) return rc;
  if (kop >= 0) propagate_known(c, n, kop);
  return VT_OK;
}

/* ---------- binary ------------------------------------------------------------------------- */
int vt_infer_Add(vt_infer_ctx *c) { return numeric_bcast(c, 2, KB_ADD); }
int vt_infer_Sub(vt_infer_ctx *c) { return numeric_bcast(c, 2, KB_SUB); }
int vt_infer_Mul(vt_infer_ctx *c) { return numeric_bcast(c, 2, KB_MUL); }
int vt_infer_Div(vt_infer_ctx *c) { return numeric_bcast(c, 2, KB_DIV); }
int vt_infer_Mod(vt_infer_ctx *c) {
  return numeric_bcast(c, 2, vt_dtype_is_int(c->in[0].dtype) ? (vt_attr_int(c->node, "fmod", 0) ? KB_FMOD : KB_MOD) : -1);
}

int vt_infer_Pow(vt_infer_ctx *c) {
  if (!is_numeric(c->in[0].dtype) || !is_numeric(c->in[1].dtype))
    return vt_infer_fail(c, "dtypes %s and %s: Pow needs numeric inputs",
                         vt_dtype_name(c->in[0].dtype), vt_dtype_name(c->in[1].dtype));
  int rc = vt_infer_broadcast(c, 2, &c->out[0]);
  c->out[0].dtype = c->in[0].dtype;
  return rc;
}

/* Variadic ops: min/max fold through known contents for two inputs. */
static int variadic(vt_infer_ctx *c, int kop) {
  int rc = numeric_bcast(c, c->n_in, -1);
  if (rc) return rc;
  if (kop >= 0 && c->n_in == 2) propagate_known(c, 2, kop);
  if (kop >= 0 && c->n_in == 1) propagate_known(c, 1, KB_COPY);
  return VT_OK;
}
int vt_infer_Min(vt_infer_ctx *c) { return variadic(c, KB_MIN); }
int vt_infer_Max(vt_infer_ctx *c) { return variadic(c, KB_MAX); }
int vt_infer_Sum(vt_infer_ctx *c) { return variadic(c, c->n_in == 2 ? KB_ADD : -1); }
int vt_infer_Mean(vt_infer_ctx *c) {
  if (!vt_dtype_is_float(c->in[0].dtype))
    return vt_infer_fail(c, "Mean needs float inputs, got %s", vt_dtype_name(c->in[0].dtype));
  return variadic(c, -1);
}

static int compare(vt_infer_ctx *c, int kop) {
  if (c->in[0].dtype == VT_STRING) return vt_infer_fail(c, "string comparison is not supported");
  int rc = bcast_same(c, 2, VT_BOOL);
  if (rc) return rc;
  if (kop >= 0) propagate_known(c, 2, kop);
  return VT_OK;
}
int vt_infer_Equal(vt_infer_ctx *c) { return compare(c, KB_EQ); }
int vt_infer_Less(vt_infer_ctx *c) { return compare(c, -1); }
int vt_infer_Greater(vt_infer_ctx *c) { return compare(c, -1); }
int vt_infer_LessOrEqual(vt_infer_ctx *c) { return compare(c, -1); }
int vt_infer_GreaterOrEqual(vt_infer_ctx *c) { return compare(c, -1); }

static int logical(vt_infer_ctx *c) {
  if (c->in[0].dtype != VT_BOOL) return vt_infer_fail(c, "needs bool inputs, got %s", vt_dtype_name(c->in[0].dtype));
  return bcast_same(c, 2, VT_BOOL);
}
int vt_infer_And(vt_infer_ctx *c) { return logical(c); }
int vt_infer_Or(vt_infer_ctx *c) { return logical(c); }
int vt_infer_Xor(vt_infer_ctx *c) { return logical(c); }

int vt_infer_BitShift(vt_infer_ctx *c) {
  const char *dir = vt_attr_str(c->node, "direction", "");
  if (strcmp(dir, "LEFT") && strcmp(dir, "RIGHT"))
    return vt_infer_fail(c, "direction must be LEFT or RIGHT, got '%s'", dir);
  vt_dtype t = c->in[0].dtype;
  if (t != VT_U8 && t != VT_U16 && t != VT_U32 && t != VT_U64)
    return vt_infer_fail(c, "BitShift needs unsigned integer inputs, got %s", vt_dtype_name(t));
  return bcast_same(c, 2, 0);
}

int vt_infer_PRelu(vt_infer_ctx *c) { return numeric_bcast(c, 2, -1); }

/* ---------- unary -------------------------------------------------------------------------- */
static int unary_float(vt_infer_ctx *c) {
  if (!vt_dtype_is_float(c->in[0].dtype))
    return vt_infer_fail(c, "needs a float input, got %s", vt_dtype_name(c->in[0].dtype));
  vt_infer_same(c, 0, 0);
  return VT_OK;
}
static int unary_numeric(vt_infer_ctx *c, int kop) {
  if (!is_numeric(c->in[0].dtype))
    return vt_infer_fail(c, "needs a numeric input, got %s", vt_dtype_name(c->in[0].dtype));
  vt_infer_same(c, 0, 0);
  if (kop >= 0) propagate_known(c, 1, kop);
  return VT_OK;
}
#define UNARY_FLOAT(id) int vt_infer_##id(vt_infer_ctx *c) { return unary_float(c); }
UNARY_FLOAT(Sqrt) UNARY_FLOAT(Reciprocal) UNARY_FLOAT(Exp) UNARY_FLOAT(Log) UNARY_FLOAT(Erf)
UNARY_FLOAT(Tanh) UNARY_FLOAT(Sigmoid) UNARY_FLOAT(LeakyRelu) UNARY_FLOAT(ThresholdedRelu)
UNARY_FLOAT(HardSigmoid) UNARY_FLOAT(HardSwish) UNARY_FLOAT(MsGelu) UNARY_FLOAT(Sin) UNARY_FLOAT(Cos) UNARY_FLOAT(Tan) UNARY_FLOAT(Asin)
UNARY_FLOAT(Acos) UNARY_FLOAT(Atan) UNARY_FLOAT(Sinh) UNARY_FLOAT(Cosh) UNARY_FLOAT(Asinh)
UNARY_FLOAT(Acosh) UNARY_FLOAT(Atanh) UNARY_FLOAT(Elu) UNARY_FLOAT(Selu) UNARY_FLOAT(Celu)
UNARY_FLOAT(Softplus) UNARY_FLOAT(Softsign) UNARY_FLOAT(Mish)
#undef UNARY_FLOAT

/* Rounding ops keep (integral) known contents. */
static int rounding(vt_infer_ctx *c) {
  int rc = unary_float(c);
  if (!rc) propagate_known(c, 1, KB_COPY);
  return rc;
}
int vt_infer_Ceil(vt_infer_ctx *c) { return rounding(c); }
int vt_infer_Floor(vt_infer_ctx *c) { return rounding(c); }
int vt_infer_Round(vt_infer_ctx *c) { return rounding(c); }
int vt_infer_Neg(vt_infer_ctx *c) { return unary_numeric(c, KB_NEG); }
int vt_infer_Abs(vt_infer_ctx *c) { return unary_numeric(c, KB_ABS); }
int vt_infer_Relu(vt_infer_ctx *c) { return unary_numeric(c, -1); }
int vt_infer_Sign(vt_infer_ctx *c) { return unary_numeric(c, -1); }
int vt_infer_Shrink(vt_infer_ctx *c) { return unary_numeric(c, -1); }

int vt_infer_Gelu(vt_infer_ctx *c) {
  const char *a = vt_attr_str(c->node, "approximate", "none");
  if (strcmp(a, "none") && strcmp(a, "tanh"))
    return vt_infer_fail(c, "approximate must be 'none' or 'tanh', got '%s'", a);
  return unary_float(c);
}

int vt_infer_Clip(vt_infer_ctx *c) {
  if (!is_numeric(c->in[0].dtype))
    return vt_infer_fail(c, "needs a numeric input, got %s", vt_dtype_name(c->in[0].dtype));
  for (int i = 1; i < 3; i++) {
    if (!in_present(c, i)) continue;
    if (c->in[i].dtype != c->in[0].dtype)
      return vt_infer_fail(c, "bound input %d has dtype %s, input has %s", i,
                           vt_dtype_name(c->in[i].dtype), vt_dtype_name(c->in[0].dtype));
    int64_t n = const_numel(c->in[i].rank, c->in[i].dims);
    if (n > 1 || (n == 0)) return vt_infer_fail(c, "bound input %d must be a scalar", i);
  }
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

int vt_infer_Not(vt_infer_ctx *c) {
  if (c->in[0].dtype != VT_BOOL) return vt_infer_fail(c, "needs a bool input, got %s", vt_dtype_name(c->in[0].dtype));
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

static int float_pred(vt_infer_ctx *c) {
  int rc = unary_float(c);
  c->out[0].dtype = VT_BOOL;
  return rc;
}
int vt_infer_IsNaN(vt_infer_ctx *c) { return float_pred(c); }
int vt_infer_IsInf(vt_infer_ctx *c) { return float_pred(c); }

/* ---------- Where / Cast --------------------------------------------------------------------- */
int vt_infer_Where(vt_infer_ctx *c) {
  if (c->in[0].dtype != VT_BOOL)
    return vt_infer_fail(c, "condition must be bool, got %s", vt_dtype_name(c->in[0].dtype));
  if (c->in[1].dtype != c->in[2].dtype)
    return vt_infer_fail(c, "X has dtype %s but Y has %s", vt_dtype_name(c->in[1].dtype),
                         vt_dtype_name(c->in[2].dtype));
  if (c->in[1].dtype == VT_STRING) return vt_infer_fail(c, "string tensors are not supported");
  int rc = vt_infer_broadcast(c, 3, &c->out[0]);
  if (rc) return rc;
  c->out[0].dtype = c->in[1].dtype;
  propagate_known(c, 3, KB_WHERE);
  return VT_OK;
}

static bool cast_ok(vt_dtype t) { return is_numeric(t) || t == VT_BOOL; }

static int cast_to(vt_infer_ctx *c, vt_dtype to) {
  vt_dtype from = c->in[0].dtype;
  if (to == VT_STRING || from == VT_STRING)
    return vt_infer_fail(c, "cast from %s to %s: string tensors are not supported",
                         vt_dtype_name(from), vt_dtype_name(to));
  if (!cast_ok(to) || !cast_ok(from))
    return vt_infer_fail(c, "cast from dtype %d to dtype %d is not supported", (int)from, (int)to);
  vt_infer_same(c, 0, 0);
  c->out[0].dtype = to;
  /* contents survive casts to types wide enough for sizes (int32/int64/f32/f64; f32 is exact
   * up to 2^24, and larger known values are dropped) */
  if (known_dtype(from) && known_dtype(to) && to != VT_BOOL && from != VT_BOOL &&
      vt_dtype_size(to) >= 4 && to != VT_U32 && to != VT_U64) {
    propagate_known(c, 1, KB_COPY);
    int64_t lim = to == VT_F32 ? (1 << 24) : to == VT_I32 ? INT32_MAX : INT64_MAX;
    for (int32_t i = 0; i < c->out[0].nknown; i++) {
      vt_dim v = c->out[0].known[i];
      if (vt_dim_is_const(v) && (v > lim || v < -lim)) c->out[0].nknown = 0;
    }
  }
  return VT_OK;
}

int vt_infer_Cast(vt_infer_ctx *c) {
  const vt_attr *a = vt_node_attr(c->node, "to");
  if (!a) return vt_infer_fail(c, "missing attribute 'to'");
  if (a->i == VT_STRING) return cast_to(c, VT_STRING);
  if (a->i <= 0 || a->i >= VT_DTYPE_MAX || vt_dtype_size((vt_dtype)a->i) == 0)
    return vt_infer_fail(c, "cast to dtype %lld is not supported", (long long)a->i);
  return cast_to(c, (vt_dtype)a->i);
}

int vt_infer_CastLike(vt_infer_ctx *c) { return cast_to(c, c->in[1].dtype); }

/* ---------- reductions ------------------------------------------------------------------- */
/* Which axes are reduced: mask over rank; returns 1 when reduction is a no-op (identity),
 * 0 otherwise, -1 when the axes are unknown (data-dependent), or an error code < -1. */
static int reduce_axes(vt_infer_ctx *c, int32_t rank, bool *mask) {
  const vt_node *n = c->node;
  vt_dim vals[VT_MAX_KNOWN];
  int32_t na;
  if (in_present(c, 1)) {
    na = vt_infer_ints(c, 1, vals, VT_MAX_KNOWN);
    if (na < 0) return -1;
  } else {
    const int64_t *av;
    na = vt_attr_ints(n, "axes", &av);
    if (na < 0) na = 0;
    if (na > VT_MAX_KNOWN) na = VT_MAX_KNOWN + 1;
    for (int32_t i = 0; i < na && i < VT_MAX_KNOWN; i++) vals[i] = av[i];
    if (na > VT_MAX_KNOWN) { vt_infer_fail(c, "too many axes"); return -2; }
  }
  for (int32_t d = 0; d < rank; d++) mask[d] = na == 0;
  if (na == 0) return vt_attr_int(n, "noop_with_empty_axes", 0) ? 1 : 0;
  for (int32_t i = 0; i < na; i++) {
    if (!vt_dim_is_const(vals[i])) return -1;
    int64_t ax;
    if (vt_infer_axis(c, vals[i], rank, &ax)) return -2;
    if (rank == 0) continue;
    mask[ax] = true;
  }
  return 0;
}

static int reduce_infer(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0];
  if (!is_numeric(x->dtype))
    return vt_infer_fail(c, "needs a numeric input, got %s", vt_dtype_name(x->dtype));
  vt_infer_out *o = &c->out[0];
  o->dtype = x->dtype;
  bool keep = vt_attr_int(c->node, "keepdims", 1) != 0;
  if (x->rank < 0) { o->rank = -1; return VT_OK; }
  bool mask[VT_MAX_RANK];
  int r = reduce_axes(c, x->rank, mask);
  if (r < -1) return VT_ERR_MODEL;
  if (r == 1) { vt_infer_same(c, 0, 0); return VT_OK; }
  if (r == -1) {
    if (!keep) { o->rank = -1; return VT_OK; }
    o->rank = x->rank;
    for (int32_t d = 0; d < x->rank; d++)
      o->dims[d] = (vt_dim_is_const(x->dims[d]) && x->dims[d] == 1) ? 1 : vt_dim_fresh(c->g);
    return VT_OK;
  }
  int32_t k = 0;
  for (int32_t d = 0; d < x->rank; d++) {
    if (!mask[d]) o->dims[k++] = x->dims[d];
    else if (keep) o->dims[k++] = 1;
  }
  o->rank = k;
  return VT_OK;
}
#define REDUCE(id) int vt_infer_##id(vt_infer_ctx *c) { return reduce_infer(c); }
REDUCE(ReduceMean) REDUCE(ReduceSum) REDUCE(ReduceMax) REDUCE(ReduceMin) REDUCE(ReduceProd)
REDUCE(ReduceL1) REDUCE(ReduceL2) REDUCE(ReduceSumSquare) REDUCE(ReduceLogSum) REDUCE(ReduceLogSumExp)
#undef REDUCE

static int arg_infer(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0];
  if (!is_numeric(x->dtype)) return vt_infer_fail(c, "needs a numeric input, got %s", vt_dtype_name(x->dtype));
  if (x->rank < 1) return vt_infer_fail(c, "needs an input of known rank >= 1");
  int64_t ax;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", 0), x->rank, &ax)) return VT_ERR_MODEL;
  bool keep = vt_attr_int(c->node, "keepdims", 1) != 0;
  vt_infer_out *o = &c->out[0];
  o->dtype = VT_I64;
  int32_t k = 0;
  for (int32_t d = 0; d < x->rank; d++) {
    if (d != ax) o->dims[k++] = x->dims[d];
    else if (keep) o->dims[k++] = 1;
  }
  o->rank = k;
  return VT_OK;
}
int vt_infer_ArgMax(vt_infer_ctx *c) { return arg_infer(c); }
int vt_infer_ArgMin(vt_infer_ctx *c) { return arg_infer(c); }

int vt_infer_CumSum(vt_infer_ctx *c) {
  if (!is_numeric(c->in[0].dtype)) return vt_infer_fail(c, "needs a numeric input");
  if (c->in[1].dtype != VT_I32 && c->in[1].dtype != VT_I64)
    return vt_infer_fail(c, "axis must be int32 or int64, got %s", vt_dtype_name(c->in[1].dtype));
  vt_dim ax[2];
  int32_t n = vt_infer_ints(c, 1, ax, 2);
  if (n > 1) return vt_infer_fail(c, "axis must be a scalar");
  if (n == 1 && vt_dim_is_const(ax[0]) && c->in[0].rank >= 0) {
    int64_t a;
    if (vt_infer_axis(c, ax[0], c->in[0].rank, &a)) return VT_ERR_MODEL;
  }
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

/* ---------- softmax family and normalisations ------------------------------------------- */
static int softmax_infer(vt_infer_ctx *c) {
  if (!vt_dtype_is_float(c->in[0].dtype))
    return vt_infer_fail(c, "needs a float input, got %s", vt_dtype_name(c->in[0].dtype));
  int32_t rank = c->in[0].rank;
  if (rank >= 0) {
    int64_t ax;
    int64_t dflt = opset(c) < 13 ? 1 : -1;
    if (vt_infer_axis(c, vt_attr_int(c->node, "axis", dflt), rank, &ax)) return VT_ERR_MODEL;
  }
  vt_infer_same(c, 0, 0);
  return VT_OK;
}
int vt_infer_Softmax(vt_infer_ctx *c) { return softmax_infer(c); }
int vt_infer_LogSoftmax(vt_infer_ctx *c) { return softmax_infer(c); }
int vt_infer_Hardmax(vt_infer_ctx *c) { return softmax_infer(c); }

int vt_infer_LayerNormalization(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0];
  if (!vt_dtype_is_float(x->dtype)) return vt_infer_fail(c, "needs a float input, got %s", vt_dtype_name(x->dtype));
  if (x->rank < 1) return vt_infer_fail(c, "needs an input of known rank >= 1");
  int64_t ax;
  if (vt_infer_axis(c, vt_attr_int(c->node, "axis", -1), x->rank, &ax)) return VT_ERR_MODEL;
  for (int i = 1; i < 3; i++) {
    if (!in_present(c, i)) continue;
    if (c->in[i].dtype != x->dtype)
      return vt_infer_fail(c, "input %d has dtype %s, X has %s", i, vt_dtype_name(c->in[i].dtype), vt_dtype_name(x->dtype));
    if (c->in[i].rank > x->rank - ax)
      return vt_infer_fail(c, "input %d has rank %d; normalised dims have rank %d", i, c->in[i].rank, (int)(x->rank - ax));
  }
  int64_t st = vt_attr_int(c->node, "stash_type", 1);
  if (st != VT_F32 && st != VT_F64 && st != VT_F16 && st != VT_BF16)
    return vt_infer_fail(c, "stash_type %lld is not a float dtype", (long long)st);
  vt_infer_same(c, 0, 0);
  for (int o = 1; o < c->n_out && o < 3; o++) {
    c->out[o].dtype = (vt_dtype)st;
    c->out[o].rank = x->rank;
    for (int32_t d = 0; d < x->rank; d++) c->out[o].dims[d] = d < ax ? x->dims[d] : 1;
  }
  return VT_OK;
}

int vt_infer_InstanceNormalization(vt_infer_ctx *c) {
  const vt_infer_in *x = &c->in[0];
  if (!vt_dtype_is_float(x->dtype)) return vt_infer_fail(c, "needs a float input, got %s", vt_dtype_name(x->dtype));
  if (x->rank < 2) return vt_infer_fail(c, "input must have rank >= 2 (N, C, ...), got %d", x->rank);
  for (int i = 1; i < 3; i++) {
    if (c->in[i].rank != 1)
      return vt_infer_fail(c, "input %d must be 1-D of size C", i);
    if (vt_dim_is_const(c->in[i].dims[0]) && vt_dim_is_const(x->dims[1]) && c->in[i].dims[0] != x->dims[1])
      return vt_infer_fail(c, "input %d has %lld channels, X has %lld", i,
                           (long long)c->in[i].dims[0], (long long)x->dims[1]);
  }
  vt_infer_same(c, 0, 0);
  return VT_OK;
}

/* kernels_tensor_index.c — reference kernels for the tensor family's indexing ops: Gather,
 * GatherElements, GatherND, ScatterElements (and its old name Scatter), ScatterND, OneHot, TopK.
 * Every index is bounds-checked (negative indices count from the end, as ONNX allows) and an
 * out-of-range index fails the node with a message, never touching memory out of bounds. */
#include "kernels_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_index_tensor(vt_kctx *k, const vt_tensor *t) {
  if (t->dtype != VT_I32 && t->dtype != VT_I64)
    return vt_kernel_fail(k, "indices must be int32 or int64 (are %s)", vt_dtype_name(t->dtype));
  return VT_OK;
}

/* Normalises index i (from element at position pos) against size n or fails. */
static int norm_index(vt_kctx *k, int64_t *i, int64_t n, int64_t axis, int64_t pos) {
  int64_t v = *i;
  if (v < -n || v >= n)
    return vt_kernel_fail(k, "index %lld (element %lld of indices) is out of range [%lld, %lld] for axis %lld",
                          (long long)v, (long long)pos, (long long)-n, (long long)(n - 1), (long long)axis);
  *i = v < 0 ? v + n : v;
  return VT_OK;
}

/* ---------- Gather --------------------------------------------------------------------------- */
typedef struct gjob {
  const char *src;
  char *dst;
  const int64_t *idx;
  int64_t nidx, nax, blk;     /* blk: bytes per inner block */
} gjob;

static void gather_run(void *arg, int64_t begin, int64_t end) {
  const gjob *g = arg;
  for (int64_t t = begin; t < end; t++) {
    int64_t o = t / g->nidx, j = t % g->nidx;
    memcpy(g->dst + t * g->blk, g->src + (o * g->nax + g->idx[j]) * g->blk, (size_t)g->blk);
  }
}

int vt_kernel_Gather(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *ind = k->in[1];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es || check_index_tensor(k, ind)) return VT_ERR_MODEL;
  int64_t axis = vt_attr_int(k->node, "axis", 0);
  if (axis < 0) axis += x->rank;
  int64_t outer = 1, inner = 1, nax = x->dims[axis], n = vt_tensor_numel(ind);
  for (int32_t d = 0; d < axis; d++) outer *= x->dims[d];
  for (int32_t d = (int32_t)axis + 1; d < x->rank; d++) inner *= x->dims[d];
  int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
  if (!idx) return vt_kernel_fail(k, "out of memory");
  for (int64_t j = 0; j < n; j++) {
    idx[j] = vt_tk_index(ind, j);
    if (norm_index(k, &idx[j], nax, axis, j)) {
      free(idx);
      return VT_ERR_MODEL;
    }
  }
  gjob g = {.src = x->data, .dst = y->data, .idx = idx, .nidx = n, .nax = nax, .blk = inner * (int64_t)es};
  int64_t jobs = outer * n;
  if (jobs > 0 && inner > 0) vt_pool_for(vt_tensor_numel(y) >= VT_TK_PAR_MIN ? k->pool : NULL, jobs, gather_run, &g);
  free(idx);
  return VT_OK;
}

/* ---------- GatherElements, ScatterElements ------------------------------------------------------ */
enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static int reduction_of(vt_kctx *k, int *red) {
  const char *s = vt_attr_str(k->node, "reduction", "none");
  if (!strcmp(s, "none")) *red = RED_NONE;
  else if (!strcmp(s, "add")) *red = RED_ADD;
  else if (!strcmp(s, "mul")) *red = RED_MUL;
  else if (!strcmp(s, "max")) *red = RED_MAX;
  else if (!strcmp(s, "min")) *red = RED_MIN;
  else return vt_kernel_fail(k, "unknown reduction '%s'", s);
  return VT_OK;
}

/* dst op= src for one element of dtype dt. */
static int combine(vt_kctx *k, void *dst, const void *src, vt_dtype dt, size_t es, int red) {
  if (red == RED_NONE) {
    memcpy(dst, src, es);
    return VT_OK;
  }
  switch (dt) {
#define RED(DT, T)                                                 \
  case DT: {                                                       \
    T a = *(T *)dst, b = *(const T *)src;                          \
    *(T *)dst = red == RED_ADD ? (T)(a + b) : red == RED_MUL ? (T)(a * b) \
              : red == RED_MAX ? (a > b ? a : b) : (a < b ? a : b);  \
    return VT_OK;                                                  \
  }
    RED(VT_F32, float) RED(VT_F64, double) RED(VT_I8, int8_t) RED(VT_I16, int16_t) RED(VT_I32, int32_t)
    RED(VT_I64, int64_t) RED(VT_U8, uint8_t) RED(VT_U16, uint16_t) RED(VT_U32, uint32_t) RED(VT_U64, uint64_t)
#undef RED
    case VT_F16: case VT_BF16: {
      vt_tensor ta = {.dtype = dt, .rank = 0, .data = dst}, tb = {.dtype = dt, .rank = 0, .data = (void *)src};
      double a = vt_tensor_get_f64(&ta, 0), b = vt_tensor_get_f64(&tb, 0);
      double r = red == RED_ADD ? a + b : red == RED_MUL ? a * b : red == RED_MAX ? fmax(a, b) : fmin(a, b);
      vt_tk_store_f64(dst, dt, r);
      return VT_OK;
    }
    default: return vt_kernel_fail(k, "reduction is not supported for dtype %s", vt_dtype_name(dt));
  }
}

/* Walks every element of ind (rank r) and calls back with the data offset it addresses. */
static int elements_walk(vt_kctx *k, const vt_tensor *x, const vt_tensor *ind, int64_t axis, bool scatter,
                         const vt_tensor *upd, vt_tensor *y, int red) {
  size_t es = vt_tk_esz(k, x);
  if (!es || check_index_tensor(k, ind)) return VT_ERR_MODEL;
  int32_t r = x->rank;
  if (ind->rank != r) return vt_kernel_fail(k, "indices have rank %d, data rank %d", ind->rank, r);
  for (int32_t d = 0; d < r; d++)
    if (d != axis && ind->dims[d] > x->dims[d])
      return vt_kernel_fail(k, "indices dim %d (%lld) exceeds data dim (%lld)", d, (long long)ind->dims[d],
                            (long long)x->dims[d]);
  if (scatter)
    for (int32_t d = 0; d < r; d++)
      if (upd->dims[d] != ind->dims[d]) return vt_kernel_fail(k, "updates and indices differ in shape");
  int64_t xs[VT_MAX_RANK], idx[VT_MAX_RANK] = {0};
  vt_strides(r, x->dims, xs);
  int64_t n = vt_tensor_numel(ind), nax = x->dims[axis];
  const char *src = x->data;
  char *dst = y->data;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = vt_tk_index(ind, i);
    if (norm_index(k, &v, nax, axis, i)) return VT_ERR_MODEL;
    int64_t off = 0;
    for (int32_t d = 0; d < r; d++) off += (d == axis ? v : idx[d]) * xs[d];
    if (scatter) {
      if (combine(k, dst + off * (int64_t)es, (const char *)upd->data + i * (int64_t)es, x->dtype, es, red))
        return VT_ERR_MODEL;
    } else {
      memcpy(dst + i * (int64_t)es, src + off * (int64_t)es, es);
    }
    for (int32_t d = r - 1; d >= 0; d--) {
      if (++idx[d] < ind->dims[d]) break;
      idx[d] = 0;
    }
  }
  return VT_OK;
}

int vt_kernel_GatherElements(vt_kctx *k) {
  int64_t axis = vt_attr_int(k->node, "axis", 0);
  if (axis < 0) axis += k->in[0]->rank;
  return elements_walk(k, k->in[0], k->in[1], axis, false, NULL, k->out[0], RED_NONE);
}

static int scatter_elements(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  int red;
  if (reduction_of(k, &red)) return VT_ERR_MODEL;
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  size_t nb = (size_t)vt_tensor_numel(x) * es;
  if (nb) memcpy(y->data, x->data, nb);
  int64_t axis = vt_attr_int(k->node, "axis", 0);
  if (axis < 0) axis += x->rank;
  return elements_walk(k, x, k->in[1], axis, true, k->in[2], y, red);
}

int vt_kernel_ScatterElements(vt_kctx *k) { return scatter_elements(k); }
int vt_kernel_Scatter(vt_kctx *k) { return scatter_elements(k); }

/* ---------- GatherND, ScatterND ---------------------------------------------------------------- */
/* Offsets (in elements of data) of each index tuple of ind, checked. Tuples of batch b address
 * data[b, ...]. off receives count = numel(ind) / m entries. */
static int nd_offsets(vt_kctx *k, const vt_tensor *x, const vt_tensor *ind, int64_t bd, int64_t *off,
                      int64_t *blk_out, int64_t *count_out) {
  int32_t r = x->rank, q = ind->rank;
  int64_t m = ind->dims[q - 1];
  if (m < 1 || m > r - bd) return vt_kernel_fail(k, "indices' last dim %lld is invalid", (long long)m);
  for (int32_t d = 0; d < bd; d++)
    if (ind->dims[d] != x->dims[d]) return vt_kernel_fail(k, "batch dim %d differs between data and indices", d);
  int64_t xs[VT_MAX_RANK];
  vt_strides(r, x->dims, xs);
  int64_t count = m ? vt_tensor_numel(ind) / m : 0, batches = 1;
  for (int32_t d = 0; d < bd; d++) batches *= x->dims[d];
  int64_t per_batch = batches ? count / batches : 0, bstride = bd > 0 ? xs[bd - 1] : 0;
  for (int64_t t = 0; t < count; t++) {
    int64_t o = per_batch ? (t / per_batch) * bstride : 0;
    for (int64_t j = 0; j < m; j++) {
      int64_t v = vt_tk_index(ind, t * m + j);
      if (norm_index(k, &v, x->dims[bd + j], bd + j, t * m + j)) return VT_ERR_MODEL;
      o += v * xs[bd + j];
    }
    off[t] = o;
  }
  *blk_out = 1;
  for (int32_t d = (int32_t)(bd + m); d < r; d++) *blk_out *= x->dims[d];
  *count_out = count;
  return VT_OK;
}

static int gather_scatter_nd(vt_kctx *k, bool scatter) {
  const vt_tensor *x = k->in[0], *ind = k->in[1];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es || check_index_tensor(k, ind)) return VT_ERR_MODEL;
  int red = RED_NONE;
  if (scatter && reduction_of(k, &red)) return VT_ERR_MODEL;
  int64_t bd = scatter ? 0 : vt_attr_int(k->node, "batch_dims", 0);
  if (ind->rank < 1) return vt_kernel_fail(k, "indices must have rank >= 1");
  int64_t m = ind->dims[ind->rank - 1], count = m > 0 ? vt_tensor_numel(ind) / m : 0, blk = 0;
  int64_t *off = malloc((size_t)(count ? count : 1) * sizeof *off);
  if (!off) return vt_kernel_fail(k, "out of memory");
  int rc = nd_offsets(k, x, ind, bd, off, &blk, &count);
  if (rc == VT_OK && !scatter) {
    for (int64_t t = 0; t < count; t++)
      memcpy((char *)y->data + (size_t)(t * blk) * es, (const char *)x->data + (size_t)off[t] * es, (size_t)blk * es);
  } else if (rc == VT_OK) {
    const vt_tensor *u = k->in[2];
    if (vt_tensor_numel(u) != count * blk) {
      rc = vt_kernel_fail(k, "updates have %lld elements, expected %lld", (long long)vt_tensor_numel(u),
                          (long long)(count * blk));
    } else {
      size_t nb = (size_t)vt_tensor_numel(x) * es;
      if (nb) memcpy(y->data, x->data, nb);
      for (int64_t t = 0; t < count && rc == VT_OK; t++) {
        char *dst = (char *)y->data + (size_t)off[t] * es;
        const char *src = (const char *)u->data + (size_t)(t * blk) * es;
        if (red == RED_NONE) memcpy(dst, src, (size_t)blk * es);
        else for (int64_t e = 0; e < blk && rc == VT_OK; e++) rc = combine(k, dst + e * (int64_t)es, src + e * (int64_t)es, x->dtype, es, red);
      }
    }
  }
  free(off);
  return rc;
}

int vt_kernel_GatherND(vt_kctx *k) { return gather_scatter_nd(k, false); }
int vt_kernel_ScatterND(vt_kctx *k) { return gather_scatter_nd(k, true); }

/* ---------- OneHot --------------------------------------------------------------------------- */
int vt_kernel_OneHot(vt_kctx *k) {
  const vt_tensor *ind = k->in[0], *vals = k->in[2];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, y);
  if (!es) return VT_ERR_MODEL;
  if (vt_tensor_numel(vals) != 2) return vt_kernel_fail(k, "values must have 2 elements");
  if (ind->dtype == VT_STRING) return vt_kernel_fail(k, "indices must be numeric");
  int64_t axis = vt_attr_int(k->node, "axis", -1);
  if (axis < 0) axis += y->rank;
  int64_t depth = y->dims[axis], outer = 1, inner = 1;
  for (int32_t d = 0; d < axis; d++) outer *= y->dims[d];
  for (int32_t d = (int32_t)axis + 1; d < y->rank; d++) inner *= y->dims[d];
  const char *off = vals->data, *on = (const char *)vals->data + es;
  char *p = y->data;
  int64_t n = vt_tensor_numel(y);
  for (int64_t i = 0; i < n; i++) memcpy(p + (size_t)i * es, off, es);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t v = vt_tensor_get_i64(ind, o * inner + i);
      if (v < 0) v += depth;
      if (v < 0 || v >= depth) continue;   /* out of range: all off values (ONNX) */
      memcpy(p + (size_t)((o * depth + v) * inner + i) * es, on, es);
    }
  return VT_OK;
}

/* ---------- TopK ------------------------------------------------------------------------------- */
typedef struct topk_job {
  const vt_tensor *x;
  vt_tensor *vals, *idx;
  int64_t n, inner, kk;
  bool largest, is_int;
  size_t es;
  int failed;
} topk_job;

typedef struct key { double f; int64_t i; int64_t pos; } key;

static int cmp_largest(const void *pa, const void *pb) {
  const key *a = pa, *b = pb;
  bool na = isnan(a->f), nb = isnan(b->f);
  if (na != nb) return na ? -1 : 1;   /* NaN counts as the largest */
  if (a->f != b->f) return a->f > b->f ? -1 : 1;
  if (a->i != b->i) return a->i > b->i ? -1 : 1;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int cmp_smallest(const void *pa, const void *pb) {
  const key *a = pa, *b = pb;
  bool na = isnan(a->f), nb = isnan(b->f);
  if (na != nb) return na ? 1 : -1;
  if (a->f != b->f) return a->f < b->f ? -1 : 1;
  if (a->i != b->i) return a->i < b->i ? -1 : 1;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static void topk_run(void *arg, int64_t begin, int64_t end) {
  topk_job *t = arg;
  key *keys = malloc((size_t)(t->n ? t->n : 1) * sizeof *keys);
  if (!keys) {
    t->failed = 1;
    return;
  }
  for (int64_t s = begin; s < end; s++) {
    int64_t o = s / t->inner, i = s % t->inner, base = o * t->n * t->inner + i;
    for (int64_t j = 0; j < t->n; j++) {
      int64_t e = base + j * t->inner;
      keys[j].pos = j;
      keys[j].i = t->is_int ? vt_tensor_get_i64(t->x, e) : 0;
      keys[j].f = t->is_int ? 0 : vt_tensor_get_f64(t->x, e);
    }
    qsort(keys, (size_t)t->n, sizeof *keys, t->largest ? cmp_largest : cmp_smallest);
    int64_t obase = o * t->kk * t->inner + i;
    for (int64_t j = 0; j < t->kk; j++) {
      int64_t oe = obase + j * t->inner;
      memcpy((char *)t->vals->data + (size_t)oe * t->es, (const char *)t->x->data + (size_t)(base + keys[j].pos * t->inner) * t->es,
             t->es);
      ((int64_t *)t->idx->data)[oe] = keys[j].pos;
    }
  }
  free(keys);
}

int vt_kernel_TopK(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  if (x->dtype == VT_BOOL) return vt_kernel_fail(k, "bool input is not supported");
  int64_t axis = vt_attr_int(k->node, "axis", -1);
  if (axis < 0) axis += x->rank;
  int64_t n = x->dims[axis], outer = 1, inner = 1;
  for (int32_t d = 0; d < axis; d++) outer *= x->dims[d];
  for (int32_t d = (int32_t)axis + 1; d < x->rank; d++) inner *= x->dims[d];
  topk_job t = {.x = x, .vals = k->out[0], .idx = k->out[1], .n = n, .inner = inner,
                .kk = k->out[0]->dims[axis], .largest = vt_attr_int(k->node, "largest", 1) != 0,
                .is_int = vt_dtype_is_int(x->dtype), .es = es};
  if (t.kk > n) return vt_kernel_fail(k, "k = %lld is larger than the axis (%lld)", (long long)t.kk, (long long)n);
  int64_t slices = outer * inner;
  if (slices > 0 && t.kk > 0)
    vt_pool_for(vt_tensor_numel(x) >= VT_TK_PAR_MIN && slices > 1 ? k->pool : NULL, slices, topk_run, &t);
  if (t.failed) return vt_kernel_fail(k, "out of memory");
  return VT_OK;
}

/* ---------- Compress, ReverseSequence -------------------------------------------------------- */
int vt_kernel_Compress(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *cond = k->in[1];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  const vt_attr *a = vt_node_attr(k->node, "axis");
  int64_t axis = 0, outer = 1, inner = 1, len;
  if (a) {
    axis = a->i < 0 ? a->i + x->rank : a->i;
    len = x->dims[axis];
    for (int32_t d = 0; d < axis; d++) outer *= x->dims[d];
    for (int32_t d = (int32_t)axis + 1; d < x->rank; d++) inner *= x->dims[d];
  } else {
    len = vt_tensor_numel(x);
  }
  int64_t nc = vt_tensor_numel(cond), cnt = 0;
  if (nc > len) nc = len;
  for (int64_t i = 0; i < nc; i++) cnt += vt_tensor_get_f64(cond, i) != 0;
  if (y->rank < 0 || y->dims[a ? axis : 0] != cnt) return vt_kernel_fail(k, "output shape does not match the condition");
  const char *src = x->data;
  char *dst = y->data;
  size_t blk = (size_t)inner * es;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < nc; i++)
      if (vt_tensor_get_f64(cond, i) != 0) {
        memcpy(dst, src + (size_t)(o * len + i) * blk, blk);
        dst += blk;
      }
  return VT_OK;
}

int vt_kernel_ReverseSequence(vt_kctx *k) {
  const vt_tensor *x = k->in[0], *lens = k->in[1];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int64_t ba = vt_attr_int(k->node, "batch_axis", 1), ta = vt_attr_int(k->node, "time_axis", 0);
  int64_t B = x->dims[ba], T = x->dims[ta], inner = 1;
  for (int32_t d = 2; d < x->rank; d++) inner *= x->dims[d];
  if (vt_tensor_numel(lens) != B) return vt_kernel_fail(k, "sequence_lens has %lld entries for a batch of %lld",
                                                        (long long)vt_tensor_numel(lens), (long long)B);
  size_t blk = (size_t)inner * es;
  for (int64_t b = 0; b < B; b++) {
    int64_t L = ((const int64_t *)lens->data)[b];
    if (L < 0 || L > T) return vt_kernel_fail(k, "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                                              (long long)L, (long long)T);
    for (int64_t t = 0; t < T; t++) {
      int64_t s = t < L ? L - 1 - t : t;
      int64_t od = ba == 0 ? b * T + t : t * B + b, sd = ba == 0 ? b * T + s : s * B + b;
      memcpy((char *)y->data + (size_t)od * blk, (const char *)x->data + (size_t)sd * blk, blk);
    }
  }
  return VT_OK;
}

/* ---------- Unique --------------------------------------------------------------------------- */
/* Slices X[:, i, :] of the [outer, n, inner] view, compared lexicographically; ties keep the
 * lower index first so a group's first member is its first occurrence. */
typedef struct uq_ctx { const vt_tensor *x; int64_t n, outer, inner; bool is_int; } uq_ctx;

static int uq_cmp_vals(const uq_ctx *u, int64_t a, int64_t b) {
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

static int uq_cmp(const void *pa, const void *pb, void *arg) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  int r = uq_cmp_vals(arg, a, b);
  return r ? r : (a < b ? -1 : a > b);
}

int vt_kernel_Unique(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  const vt_attr *a = vt_node_attr(k->node, "axis");
  bool sorted = vt_attr_int(k->node, "sorted", 1) != 0;
  uq_ctx u = {.x = x, .outer = 1, .inner = 1, .is_int = !vt_dtype_is_float(x->dtype)};
  int64_t axis = 0;
  if (a) {
    axis = a->i < 0 ? a->i + x->rank : a->i;
    u.n = x->dims[axis];
    for (int32_t d = 0; d < axis; d++) u.outer *= x->dims[d];
    for (int32_t d = (int32_t)axis + 1; d < x->rank; d++) u.inner *= x->dims[d];
  } else {
    u.n = vt_tensor_numel(x);
  }
  int64_t n = u.n;
  int64_t *ord = malloc((size_t)(n ? n : 1) * sizeof *ord), *grp = malloc((size_t)(n ? n : 1) * sizeof *grp);
  int64_t *first = malloc((size_t)(n ? n : 1) * sizeof *first), *cnts = calloc((size_t)(n ? n : 1), sizeof *cnts);
  int64_t *rank = malloc((size_t)(n ? n : 1) * sizeof *rank);
  int rc = VT_OK;
  if (!ord || !grp || !first || !cnts || !rank) {
    rc = vt_kernel_fail(k, "out of memory");
    goto done;
  }
  for (int64_t i = 0; i < n; i++) ord[i] = i;
  qsort_r(ord, (size_t)n, sizeof *ord, uq_cmp, &u);
  /* groups in sorted order: grp[element] = group, first[group] = first occurrence */
  int64_t ng = 0;
  for (int64_t i = 0; i < n; i++) {
    if (i == 0 || uq_cmp_vals(&u, ord[i - 1], ord[i]) != 0) first[ng++] = ord[i];
    grp[ord[i]] = ng - 1;
    cnts[ng - 1]++;
  }
  /* output position of each group: sorted order, or order of first occurrence */
  for (int64_t g = 0; g < ng; g++) rank[g] = g;
  if (!sorted) {
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++)
      if (first[grp[i]] == i) rank[grp[i]] = pos++;
  }
  vt_tensor *y = k->out[0];
  int64_t want = a ? y->dims[axis] : y->dims[0];
  if (want != ng) {
    rc = vt_kernel_fail(k, "output has %lld entries, found %lld unique", (long long)want, (long long)ng);
    goto done;
  }
  size_t blk = (size_t)u.inner * es;
  for (int64_t g = 0; g < ng; g++)
    for (int64_t o = 0; o < u.outer; o++)
      memcpy((char *)y->data + (size_t)(o * ng + rank[g]) * blk, (const char *)x->data + (size_t)(o * n + first[g]) * blk, blk);
  if (k->n_out > 1 && k->out[1] && k->out[1]->data)
    for (int64_t g = 0; g < ng; g++) ((int64_t *)k->out[1]->data)[rank[g]] = first[g];
  if (k->n_out > 2 && k->out[2] && k->out[2]->data)
    for (int64_t i = 0; i < n; i++) ((int64_t *)k->out[2]->data)[i] = rank[grp[i]];
  if (k->n_out > 3 && k->out[3] && k->out[3]->data)
    for (int64_t g = 0; g < ng; g++) ((int64_t *)k->out[3]->data)[rank[g]] = cnts[g];
done:
  free(ord); free(grp); free(first); free(cnts); free(rank);
  return rc;
}

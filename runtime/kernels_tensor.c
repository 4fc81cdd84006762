/* kernels_tensor.c — reference kernels for the tensor family's layout ops: Transpose, the
 * reshaping ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout), Concat, Split, Slice,
 * Expand, Tile, DepthToSpace, SpaceToDepth, Shape, Size, ConstantOfShape, Range, EyeLike, Trilu,
 * NonZero; plus the strided-copy engine and helpers of kernels_tensor.h.
 * Data movement is dtype-agnostic (copies by element size); outputs arrive allocated by the
 * interpreter from the shapes vt_infer_* computed. */
#include "kernels_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXR (2 * VT_MAX_RANK)

/* ---------- helpers ------------------------------------------------------------------------- */
size_t vt_tk_esz(vt_kctx *k, const vt_tensor *t) {
  size_t es = vt_dtype_size(t->dtype);
  if (es == 0) vt_kernel_fail(k, "dtype %s is not supported by this op", vt_dtype_name(t->dtype));
  return es;
}

void vt_tk_store_f64(void *p, vt_dtype dt, double x) {
  switch (dt) {
    case VT_F32: *(float *)p = (float)x; break;
    case VT_F64: *(double *)p = x; break;
    case VT_F16: *(uint16_t *)p = vt_f32_to_f16((float)x); break;
    case VT_BF16: *(uint16_t *)p = vt_f32_to_bf16((float)x); break;
    case VT_BOOL: *(uint8_t *)p = x != 0; break;
    case VT_I8: *(int8_t *)p = (int8_t)nearbyint(x); break;
    case VT_U8: *(uint8_t *)p = (uint8_t)nearbyint(x); break;
    case VT_I16: *(int16_t *)p = (int16_t)nearbyint(x); break;
    case VT_U16: *(uint16_t *)p = (uint16_t)nearbyint(x); break;
    case VT_I32: *(int32_t *)p = (int32_t)nearbyint(x); break;
    case VT_U32: *(uint32_t *)p = (uint32_t)nearbyint(x); break;
    case VT_I64: *(int64_t *)p = (int64_t)nearbyint(x); break;
    case VT_U64: *(uint64_t *)p = (uint64_t)nearbyint(x); break;
    default: break;
  }
}

int32_t vt_tk_read_ints(const vt_tensor *t, int64_t *v, int32_t max) {
  if (!t || !(vt_dtype_is_int(t->dtype) || t->dtype == VT_BOOL)) return -1;
  int64_t n = vt_tensor_numel(t);
  if (n < 0 || n > max) return -1;
  for (int64_t i = 0; i < n; i++) v[i] = vt_tensor_get_i64(t, i);
  return (int32_t)n;
}

int64_t vt_tk_opset(const vt_kctx *k) {
  int64_t v = vt_graph_opset(k->g, "");
  return v > 0 ? v : 18;
}

/* ---------- strided copy ------------------------------------------------------------------- */
typedef struct scopy {
  char *dst;
  const char *src;
  int rank;                 /* >= 1; the last dim is the row */
  int64_t dims[MAXR], str[MAXR];
  size_t esz;
} scopy;

static void scopy_rows(void *arg, int64_t begin, int64_t end) {
  const scopy *s = arg;
  int r = s->rank;
  int64_t n = s->dims[r - 1], st = s->str[r - 1];
  size_t es = s->esz;
  int64_t idx[MAXR] = {0}, off = 0, rem = begin;
  for (int d = r - 2; d >= 0; d--) {
    idx[d] = rem % s->dims[d];
    rem /= s->dims[d];
    off += idx[d] * s->str[d];
  }
  char *out = s->dst + (size_t)begin * (size_t)n * es;
  for (int64_t row = begin; row < end; row++) {
    const char *in = s->src + off * (int64_t)es;
    if (st == 1) {
      memcpy(out, in, (size_t)n * es);
    } else {
      switch (es) {
        case 1: for (int64_t i = 0; i < n; i++) out[i] = in[i * st]; break;
        case 2: for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = *(const uint16_t *)(in + i * st * 2); break;
        case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)out)[i] = *(const uint32_t *)(in + i * st * 4); break;
        case 8: for (int64_t i = 0; i < n; i++) ((uint64_t *)out)[i] = *(const uint64_t *)(in + i * st * 8); break;
        default: for (int64_t i = 0; i < n; i++) memcpy(out + (size_t)i * es, in + i * st * (int64_t)es, es);
      }
    }
    out += (size_t)n * es;
    for (int d = r - 2; d >= 0; d--) {
      off += s->str[d];
      if (++idx[d] < s->dims[d]) break;
      off -= idx[d] * s->str[d];
      idx[d] = 0;
    }
  }
}

/* Blocked copy for views whose last output dim is strided in the source while another output dim
 * p is the source's contiguous one: 32x32 tiles over (p, last) keep both sides in cache. */
typedef struct tiled {
  char *dst;
  const char *src;
  int rank, p;
  int64_t dims[MAXR], str[MAXR], dstr[MAXR];
  int64_t nblk;              /* tiles along p */
  size_t esz;
} tiled;

#define TB 32

static void tiled_run(void *arg, int64_t begin, int64_t end) {
  const tiled *t = arg;
  int r = t->rank, p = t->p;
  int64_t L = t->dims[r - 1], P = t->dims[p], sl = t->str[r - 1], dp = t->dstr[p];
  for (int64_t job = begin; job < end; job++) {
    int64_t rem = job / t->nblk, i0 = (job % t->nblk) * TB, soff = 0, doff = 0;
    for (int d = r - 2; d >= 0; d--) {
      if (d == p) continue;
      int64_t ix = rem % t->dims[d];
      rem /= t->dims[d];
      soff += ix * t->str[d];
      doff += ix * t->dstr[d];
    }
    int64_t i1 = i0 + TB < P ? i0 + TB : P;
    for (int64_t j0 = 0; j0 < L; j0 += TB) {
      int64_t j1 = j0 + TB < L ? j0 + TB : L;
      switch (t->esz) {
#define TILE(T)                                                                  \
  {                                                                              \
    const T *sp = (const T *)t->src + soff;                                      \
    T *dq = (T *)t->dst + doff;                                                  \
    for (int64_t i = i0; i < i1; i++)                                            \
      for (int64_t j = j0; j < j1; j++) dq[i * dp + j] = sp[i + j * sl];         \
    break;                                                                       \
  }
        case 1: TILE(uint8_t)
        case 2: TILE(uint16_t)
        case 4: TILE(uint32_t)
        case 8: TILE(uint64_t)
#undef TILE
        default:
          for (int64_t i = i0; i < i1; i++)
            for (int64_t j = j0; j < j1; j++)
              memcpy(t->dst + (size_t)(doff + i * dp + j) * t->esz, t->src + (size_t)(soff + i + j * sl) * t->esz, t->esz);
      }
    }
  }
}

void vt_tk_strided_copy(void *dst, const void *src, int rank, const int64_t *dims, const int64_t *strides,
                        size_t esz, vt_pool *pool) {
  scopy s = {.dst = dst, .src = src, .esz = esz, .rank = 0};
  int64_t total = 1;
  for (int d = 0; d < rank; d++) {
    if (dims[d] == 0) return;
    total *= dims[d];
    if (dims[d] == 1) continue;
    /* merge with the previous kept dim when contiguous in the source */
    if (s.rank > 0 && s.str[s.rank - 1] == strides[d] * dims[d]) {
      s.dims[s.rank - 1] *= dims[d];
      s.str[s.rank - 1] = strides[d];
      continue;
    }
    s.dims[s.rank] = dims[d];
    s.str[s.rank] = strides[d];
    s.rank++;
  }
  if (s.rank == 0) {
    memcpy(dst, src, esz);
    return;
  }
  vt_pool *p = total >= VT_TK_PAR_MIN ? pool : NULL;
  int r = s.rank;
  /* last dim strided, another dim contiguous in the source: blocked transpose */
  if (r >= 2 && s.str[r - 1] != 1 && s.dims[r - 1] >= 8) {
    int pc = -1;
    for (int d = 0; d < r - 1; d++)
      if (s.str[d] == 1 && s.dims[d] >= 8) pc = d;
    if (pc >= 0) {
      tiled t = {.dst = dst, .src = src, .rank = r, .p = pc, .esz = esz};
      int64_t acc = 1;
      for (int d = r - 1; d >= 0; d--) {
        t.dims[d] = s.dims[d];
        t.str[d] = s.str[d];
        t.dstr[d] = acc;
        acc *= s.dims[d];
      }
      t.nblk = (s.dims[pc] + TB - 1) / TB;
      vt_pool_for(p, total / (s.dims[pc] * s.dims[r - 1]) * t.nblk, tiled_run, &t);
      return;
    }
  }
  int64_t rows = total / s.dims[r - 1];
  if (p && rows > 1) vt_pool_for(p, rows, scopy_rows, &s);
  else scopy_rows(&s, 0, rows);
}

static void strides_of(const vt_tensor *t, int64_t *st) { vt_strides(t->rank, t->dims, st); }

/* ---------- Transpose ------------------------------------------------------------------------ */
int vt_kernel_Transpose(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int32_t r = x->rank;
  const int64_t *perm;
  int32_t np = vt_attr_ints(k->node, "perm", &perm);
  int64_t st[VT_MAX_RANK], vs[VT_MAX_RANK];
  strides_of(x, st);
  for (int32_t i = 0; i < r; i++) vs[i] = st[np < 0 ? r - 1 - i : perm[i]];
  vt_tk_strided_copy(y->data, x->data, r, y->dims, vs, es, k->pool);
  return VT_OK;
}

/* ---------- reshaping ops: a plain copy -------------------------------------------------------- */
static int copy_all(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  if (vt_tensor_numel(x) != vt_tensor_numel(y))
    return vt_kernel_fail(k, "input has %lld elements, output %lld", (long long)vt_tensor_numel(x),
                          (long long)vt_tensor_numel(y));
  size_t nb = (size_t)vt_tensor_numel(x) * es;
  if (nb) memcpy(y->data, x->data, nb);
  return VT_OK;
}

int vt_kernel_Reshape(vt_kctx *k) { return copy_all(k); }
int vt_kernel_Flatten(vt_kctx *k) { return copy_all(k); }
int vt_kernel_Squeeze(vt_kctx *k) { return copy_all(k); }
int vt_kernel_Unsqueeze(vt_kctx *k) { return copy_all(k); }
int vt_kernel_Identity(vt_kctx *k) { return copy_all(k); }

int vt_kernel_Dropout(vt_kctx *k) {
  if (k->n_in > 2 && k->in[2] && vt_tensor_numel(k->in[2]) > 0 && vt_tensor_get_i64(k->in[2], 0)) {
    double ratio = 0.5;
    if (k->n_in > 1 && k->in[1] && vt_tensor_numel(k->in[1]) > 0) ratio = vt_tensor_get_f64(k->in[1], 0);
    if (ratio != 0) return vt_kernel_fail(k, "training_mode=true (random dropout) is not supported");
  }
  int rc = copy_all(k);
  if (rc) return rc;
  if (k->n_out > 1 && k->out[1] && k->out[1]->data) {
    int64_t n = vt_tensor_numel(k->out[1]);
    memset(k->out[1]->data, 1, (size_t)n);
  }
  return VT_OK;
}

/* ---------- Concat, Split ---------------------------------------------------------------------- */
typedef struct catjob {
  char *big;                 /* the concatenated tensor */
  char **parts;              /* the pieces */
  int64_t *blk;              /* bytes of each piece per outer step */
  int np;
  int64_t row;               /* bytes of big per outer step */
  bool split;
} catjob;

static void cat_run(void *arg, int64_t begin, int64_t end) {
  const catjob *c = arg;
  for (int64_t o = begin; o < end; o++) {
    char *b = c->big + o * c->row;
    for (int i = 0; i < c->np; i++) {
      if (!c->blk[i]) continue;
      char *p = c->parts[i] + o * c->blk[i];
      if (c->split) memcpy(p, b, (size_t)c->blk[i]);
      else memcpy(b, p, (size_t)c->blk[i]);
      b += c->blk[i];
    }
  }
}

static int cat_split(vt_kctx *k, const vt_tensor *big, int np, vt_tensor *const *pt, const vt_tensor *const *ct,
                     int64_t axis, bool split) {
  size_t es = vt_tk_esz(k, big);
  if (!es) return VT_ERR_MODEL;
  int64_t outer = 1, inner = 1;
  for (int32_t d = 0; d < axis; d++) outer *= big->dims[d];
  for (int32_t d = (int32_t)axis + 1; d < big->rank; d++) inner *= big->dims[d];
  char **parts = calloc((size_t)np + 1, sizeof *parts);
  int64_t *blk = calloc((size_t)np + 1, sizeof *blk);
  if (!parts || !blk) {
    free(parts); free(blk);
    return vt_kernel_fail(k, "out of memory");
  }
  int64_t sum = 0;
  for (int i = 0; i < np; i++) {
    const vt_tensor *t = split ? pt[i] : ct[i];
    if (!t) continue;
    parts[i] = split ? pt[i]->data : (char *)ct[i]->data;
    blk[i] = t->dims[axis] * inner * (int64_t)es;
    sum += t->dims[axis];
  }
  int rc = VT_OK;
  if (sum != big->dims[axis]) {
    rc = vt_kernel_fail(k, "pieces add up to %lld along axis %lld, expected %lld", (long long)sum, (long long)axis,
                        (long long)big->dims[axis]);
  } else if (outer > 0) {
    catjob c = {.big = big->data, .parts = parts, .blk = blk, .np = np,
                .row = big->dims[axis] * inner * (int64_t)es, .split = split};
    vt_pool *p = vt_tensor_numel(big) >= VT_TK_PAR_MIN && outer > 1 ? k->pool : NULL;
    vt_pool_for(p, outer, cat_run, &c);
  }
  free(parts);
  free(blk);
  return rc;
}

int vt_kernel_Concat(vt_kctx *k) {
  vt_tensor *y = k->out[0];
  int64_t axis = vt_attr_int(k->node, "axis", 0);
  if (axis < 0) axis += y->rank;
  return cat_split(k, y, k->n_in, NULL, k->in, axis, false);
}

int vt_kernel_Split(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  int64_t axis = vt_attr_int(k->node, "axis", 0);
  if (axis < 0) axis += x->rank;
  return cat_split(k, x, k->n_out, k->out, NULL, axis, true);
}

/* ---------- Slice ------------------------------------------------------------------------------ */
int vt_kernel_Slice(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int32_t r = x->rank;
  int64_t st[VT_MAX_RANK + 1], en[VT_MAX_RANK + 1], ax[VT_MAX_RANK + 1], sp[VT_MAX_RANK + 1];
  int32_t n, ne, na = -1, ns = -1;
  if (k->n_in > 1) {
    n = vt_tk_read_ints(k->in[1], st, VT_MAX_RANK + 1);
    ne = vt_tk_read_ints(k->in[2], en, VT_MAX_RANK + 1);
    if (k->n_in > 3 && k->in[3]) na = vt_tk_read_ints(k->in[3], ax, VT_MAX_RANK + 1);
    if (k->n_in > 4 && k->in[4]) ns = vt_tk_read_ints(k->in[4], sp, VT_MAX_RANK + 1);
  } else {
    const int64_t *a;
    n = vt_attr_ints(k->node, "starts", &a);
    for (int32_t i = 0; i < n && i <= VT_MAX_RANK; i++) st[i] = a[i];
    ne = vt_attr_ints(k->node, "ends", &a);
    for (int32_t i = 0; i < ne && i <= VT_MAX_RANK; i++) en[i] = a[i];
    na = vt_attr_ints(k->node, "axes", &a);
    for (int32_t i = 0; i < na && i <= VT_MAX_RANK; i++) ax[i] = a[i];
  }
  if (n < 0 || n > r || ne != n || (na >= 0 && na != n) || (ns >= 0 && ns != n))
    return vt_kernel_fail(k, "starts, ends, axes and steps are invalid or differ in length");
  int64_t start[VT_MAX_RANK], step[VT_MAX_RANK], xs[VT_MAX_RANK], vs[VT_MAX_RANK];
  for (int32_t d = 0; d < r; d++) start[d] = 0, step[d] = 1;
  for (int32_t i = 0; i < n; i++) {
    int64_t a = na >= 0 ? ax[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return vt_kernel_fail(k, "axis %lld is out of range", (long long)ax[i]);
    int64_t d = x->dims[a], s = st[i], e = en[i], stp = ns >= 0 ? sp[i] : 1;
    if (stp == 0) return vt_kernel_fail(k, "step is 0");
    if (stp > d) stp = d > 0 ? d : 1;   /* at most one element either way; avoids stride overflow */
    if (stp < -d) stp = d > 0 ? -d : -1;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (stp > 0) s = s < 0 ? 0 : s > d ? d : s;
    else s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
    start[a] = s;
    step[a] = stp;
  }
  strides_of(x, xs);
  int64_t off = 0;
  for (int32_t d = 0; d < r; d++) {
    if (y->dims[d] > 0) off += start[d] * xs[d];
    vs[d] = xs[d] * step[d];
  }
  if (vt_tensor_numel(y) == 0) return VT_OK;
  vt_tk_strided_copy(y->data, (const char *)x->data + off * (int64_t)es, r, y->dims, vs, es, k->pool);
  return VT_OK;
}

/* ---------- Expand, Tile -------------------------------------------------------------------- */
int vt_kernel_Expand(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int64_t xs[VT_MAX_RANK], vs[VT_MAX_RANK];
  strides_of(x, xs);
  int32_t off = y->rank - x->rank;
  if (off < 0) return vt_kernel_fail(k, "output rank is below input rank");
  for (int32_t d = 0; d < y->rank; d++) {
    int32_t i = d - off;
    if (i < 0) { vs[d] = 0; continue; }
    if (x->dims[i] == y->dims[d]) vs[d] = xs[i];
    else if (x->dims[i] == 1) vs[d] = 0;
    else return vt_kernel_fail(k, "input dim %d of size %lld does not expand to %lld", i, (long long)x->dims[i],
                               (long long)y->dims[d]);
  }
  vt_tk_strided_copy(y->data, x->data, y->rank, y->dims, vs, es, k->pool);
  return VT_OK;
}

int vt_kernel_Tile(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int64_t xs[VT_MAX_RANK], dims[MAXR], vs[MAXR];
  strides_of(x, xs);
  if (vt_tensor_numel(y) == 0) return VT_OK;
  for (int32_t d = 0; d < x->rank; d++) {
    if (x->dims[d] == 0 || y->dims[d] % x->dims[d]) return vt_kernel_fail(k, "inconsistent tile shapes");
    dims[2 * d] = y->dims[d] / x->dims[d];
    vs[2 * d] = 0;
    dims[2 * d + 1] = x->dims[d];
    vs[2 * d + 1] = xs[d];
  }
  vt_tk_strided_copy(y->data, x->data, 2 * x->rank, dims, vs, es, k->pool);
  return VT_OK;
}

/* ---------- DepthToSpace, SpaceToDepth ------------------------------------------------------- */
int vt_kernel_DepthToSpace(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int64_t b = vt_attr_int(k->node, "blocksize", 0);
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], Cp = C / (b * b);
  bool crd = strcmp(vt_attr_str(k->node, "mode", "DCR"), "CRD") == 0;
  int64_t sN = C * H * W, sC, sb1, sb2;
  if (crd) { sC = b * b * H * W; sb1 = b * H * W; sb2 = H * W; }
  else { sb1 = b * Cp * H * W; sb2 = Cp * H * W; sC = H * W; }
  int64_t dims[6] = {N, Cp, H, b, W, b}, vs[6] = {sN, sC, W, sb1, 1, sb2};
  vt_tk_strided_copy(y->data, x->data, 6, dims, vs, es, k->pool);
  return VT_OK;
}

int vt_kernel_SpaceToDepth(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int64_t b = vt_attr_int(k->node, "blocksize", 0);
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
  int64_t dims[6] = {N, b, b, C, H / b, W / b}, vs[6] = {C * H * W, W, 1, H * W, b * W, b};
  vt_tk_strided_copy(y->data, x->data, 6, dims, vs, es, k->pool);
  return VT_OK;
}

/* ---------- Shape, Size, ConstantOfShape, Range, EyeLike ------------------------------------ */
int vt_kernel_Shape(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  int64_t r = x->rank, s = vt_attr_int(k->node, "start", 0);
  if (s < 0) s += r;
  s = s < 0 ? 0 : s > r ? r : s;
  int64_t *o = k->out[0]->data;
  for (int64_t i = 0; i < k->out[0]->dims[0]; i++) o[i] = x->dims[s + i];
  return VT_OK;
}

int vt_kernel_Size(vt_kctx *k) {
  *(int64_t *)k->out[0]->data = vt_tensor_numel(k->in[0]);
  return VT_OK;
}

int vt_kernel_ConstantOfShape(vt_kctx *k) {
  vt_tensor *y = k->out[0];
  const vt_attr *a = vt_node_attr(k->node, "value");
  if (!a || !a->t) return VT_OK;   /* default: float zeros, already zeroed */
  size_t es = vt_tk_esz(k, a->t);
  if (!es) return VT_ERR_MODEL;
  int64_t n = vt_tensor_numel(y);
  bool zero = true;
  for (size_t b = 0; b < es; b++) zero = zero && ((const unsigned char *)a->t->data)[b] == 0;
  if (zero) return VT_OK;
  char *p = y->data;
  for (int64_t i = 0; i < n; i++) memcpy(p + (size_t)i * es, a->t->data, es);
  return VT_OK;
}

int vt_kernel_Range(vt_kctx *k) {
  vt_tensor *y = k->out[0];
  int64_t n = vt_tensor_numel(y);
  switch (y->dtype) {
#define RANGE(DT, T)                                                              \
  case DT: {                                                                      \
    T s = *(const T *)k->in[0]->data, d = *(const T *)k->in[2]->data;            \
    T *o = y->data;                                                               \
    for (int64_t i = 0; i < n; i++) o[i] = (T)(s + (T)i * d);                      \
    break;                                                                        \
  }
    RANGE(VT_F32, float) RANGE(VT_F64, double) RANGE(VT_I16, int16_t) RANGE(VT_I32, int32_t) RANGE(VT_I64, int64_t)
#undef RANGE
    default: return vt_kernel_fail(k, "unsupported dtype %s", vt_dtype_name(y->dtype));
  }
  return VT_OK;
}

int vt_kernel_EyeLike(vt_kctx *k) {
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, y);
  if (!es) return VT_ERR_MODEL;
  int64_t kk = vt_attr_int(k->node, "k", 0), R = y->dims[0], C = y->dims[1];
  if (kk >= C || kk <= -R) return VT_OK;
  for (int64_t i = 0; i < R; i++) {
    int64_t j = i + kk;
    if (j >= 0 && j < C) vt_tk_store_f64((char *)y->data + (size_t)(i * C + j) * es, y->dtype, 1);
  }
  return VT_OK;
}

/* ---------- Trilu, NonZero ------------------------------------------------------------------- */
int vt_kernel_Trilu(vt_kctx *k) {
  int rc = copy_all(k);
  if (rc) return rc;
  vt_tensor *y = k->out[0];
  size_t es = vt_dtype_size(y->dtype);
  int64_t kk = 0;
  if (k->n_in > 1 && k->in[1]) {
    if (vt_tensor_numel(k->in[1]) != 1 || !vt_dtype_is_int(k->in[1]->dtype))
      return vt_kernel_fail(k, "k must be an integer scalar");
    kk = vt_tensor_get_i64(k->in[1], 0);
  }
  bool upper = vt_attr_int(k->node, "upper", 1) != 0;
  int64_t R = y->dims[y->rank - 2], C = y->dims[y->rank - 1], batch = (R > 0 && C > 0) ? vt_tensor_numel(y) / (R * C) : 0;
  if (kk > C + 1) kk = C + 1;
  if (kk < -R - 1) kk = -R - 1;
  char *p = y->data;
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t i = 0; i < R; i++) {
      char *row = p + (size_t)((b * R + i) * C) * es;
      /* upper keeps j - i >= k: zero j < i + k; lower keeps j - i <= k: zero j > i + k */
      int64_t lim = i + kk;
      if (upper) {
        int64_t z = lim < 0 ? 0 : lim > C ? C : lim;
        memset(row, 0, (size_t)z * es);
      } else {
        int64_t z0 = lim + 1 < 0 ? 0 : lim + 1 > C ? C : lim + 1;
        memset(row + (size_t)z0 * es, 0, (size_t)(C - z0) * es);
      }
    }
  }
  return VT_OK;
}

int vt_kernel_NonZero(vt_kctx *k) {
  const vt_tensor *x = k->in[0];
  vt_tensor *y = k->out[0];
  size_t es = vt_tk_esz(k, x);
  if (!es) return VT_ERR_MODEL;
  int64_t n = vt_tensor_numel(x), cnt = 0;
  const unsigned char *p = x->data;
  bool fl = vt_dtype_is_float(x->dtype);
  for (int64_t i = 0; i < n; i++) {
    bool nz = false;
    for (size_t b = 0; b < es && !nz; b++) nz = p[i * (int64_t)es + b] != 0;
    if (nz && fl) nz = vt_tensor_get_f64(x, i) != 0;
    cnt += nz;
  }
  if (y->rank < 0 || y->dims[1] != cnt) {
    int64_t dims[2] = {x->rank, cnt};
    if (vt_tensor_alloc(y, VT_I64, 2, dims, k->err)) return VT_ERR_MODEL;
  }
  int64_t *o = y->data, j = 0, idx[VT_MAX_RANK] = {0};
  for (int64_t i = 0; i < n; i++) {
    bool nz = false;
    for (size_t b = 0; b < es && !nz; b++) nz = p[i * (int64_t)es + b] != 0;
    if (nz && fl) nz = vt_tensor_get_f64(x, i) != 0;
    if (nz) {
      for (int32_t d = 0; d < x->rank; d++) o[d * cnt + j] = idx[d];
      j++;
    }
    for (int32_t d = x->rank - 1; d >= 0; d--) {
      if (++idx[d] < x->dims[d]) break;
      idx[d] = 0;
    }
  }
  return VT_OK;
}

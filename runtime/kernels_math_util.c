/* kernels_math_util.c — implementations of the shared kernel helpers declared in kernels_util.h
 * (broadcast iteration, f16/bf16 conversion, axis views). */
#include <stdlib.h>
#include <string.h>

#include "kernels_util.h"

int vt_tensor_to_f32(const vt_tensor *src, vt_tensor *dst, vt_error *e) {
  *dst = (vt_tensor){0};
  int rc = vt_tensor_alloc(dst, VT_F32, src->rank, src->dims, e);
  if (rc) return rc;
  int64_t n = vt_tensor_numel(src);
  float *o = dst->data;
  const uint16_t *h = src->data;
  if (src->dtype == VT_F16)
    for (int64_t i = 0; i < n; i++) o[i] = vt_f16_to_f32(h[i]);
  else if (src->dtype == VT_BF16)
    for (int64_t i = 0; i < n; i++) o[i] = vt_bf16_to_f32(h[i]);
  else if (src->dtype == VT_F32)
    memcpy(o, src->data, (size_t)n * sizeof(float));
  else
    for (int64_t i = 0; i < n; i++) o[i] = (float)vt_tensor_get_f64(src, i);
  return VT_OK;
}

void vt_tensor_from_f32(const vt_tensor *src, vt_tensor *dst) {
  int64_t n = vt_tensor_numel(dst);
  const float *s = src->data;
  uint16_t *h = dst->data;
  if (dst->dtype == VT_F16)
    for (int64_t i = 0; i < n; i++) h[i] = vt_f32_to_f16(s[i]);
  else if (dst->dtype == VT_BF16)
    for (int64_t i = 0; i < n; i++) h[i] = vt_f32_to_bf16(s[i]);
  else if (dst->dtype == VT_F32 && dst->data != src->data)
    memcpy(dst->data, s, (size_t)n * sizeof(float));
}

int vt_bcast_init(vt_bcast *b, int32_t out_rank, const int64_t *out_dims, int n_in,
                  const int32_t *in_ranks, const int64_t *const *in_dims) {
  memset(b, 0, sizeof *b);
  if (n_in > VT_BC_MAX_IN || out_rank > VT_MAX_RANK || out_rank < 0) return -1;
  b->n_in = n_in;
  int64_t numel = vt_shape_numel(out_rank, out_dims);
  if (numel < 0) return -1;
  b->numel = numel;
  /* per input: aligned dims and contiguous strides in the output's rank */
  int64_t st[VT_BC_MAX_IN][VT_MAX_RANK];
  for (int i = 0; i < n_in; i++) {
    int32_t r = in_ranks[i];
    if (r > out_rank || r < 0) return -1;
    int64_t acc = 1;
    for (int d = out_rank - 1; d >= 0; d--) {
      int k = d - (out_rank - r);
      int64_t dim = k >= 0 ? in_dims[i][k] : 1;
      if (dim != out_dims[d] && dim != 1) return -1;
      st[i][d] = (dim == 1) ? 0 : acc;
      acc *= dim;
    }
  }
  if (numel == 0) {
    b->rank = 1;
    b->dims[0] = 0;
    return 0;
  }
  int rank = 0;
  for (int d = 0; d < out_rank; d++) {
    if (out_dims[d] == 1) continue;
    if (rank > 0) {
      /* merge with the previous kept dim when every input walks both as one */
      bool merge = true;
      for (int i = 0; i < n_in; i++)
        if (b->str[i][rank - 1] != st[i][d] * out_dims[d]) { merge = false; break; }
      if (merge) {
        b->dims[rank - 1] *= out_dims[d];
        for (int i = 0; i < n_in; i++) b->str[i][rank - 1] = st[i][d];
        continue;
      }
    }
    b->dims[rank] = out_dims[d];
    for (int i = 0; i < n_in; i++) b->str[i][rank] = st[i][d];
    rank++;
  }
  if (rank == 0) {
    rank = 1;
    b->dims[0] = 1;
    for (int i = 0; i < n_in; i++) b->str[i][0] = 0;
  }
  b->rank = rank;
  return 0;
}

int vt_bcast_init_t(vt_bcast *b, const vt_tensor *out, int n_in, const vt_tensor *const *ins) {
  int32_t ranks[VT_BC_MAX_IN];
  const int64_t *dims[VT_BC_MAX_IN];
  if (n_in > VT_BC_MAX_IN) return -1;
  for (int i = 0; i < n_in; i++) {
    ranks[i] = ins[i]->rank;
    dims[i] = ins[i]->dims;
  }
  return vt_bcast_init(b, out->rank, out->dims, n_in, ranks, dims);
}

void vt_bcast_rows(const vt_bcast *b, int64_t begin, int64_t end, vt_bcast_row_fn fn, void *arg) {
  if (begin >= end) return;
  int r = b->rank;
  int64_t idx[VT_MAX_RANK];
  int64_t off[VT_BC_MAX_IN] = {0};
  int64_t rem = begin;
  for (int d = r - 1; d >= 0; d--) {
    idx[d] = rem % b->dims[d];
    rem /= b->dims[d];
    for (int i = 0; i < b->n_in; i++) off[i] += idx[d] * b->str[i][d];
  }
  int64_t pos = begin;
  int64_t last = b->dims[r - 1];
  while (pos < end) {
    int64_t len = last - idx[r - 1];
    if (len > end - pos) len = end - pos;
    fn(arg, pos, off, len);
    pos += len;
    if (pos >= end) break;
    /* advance the index by len (only the last dim moved; carry upwards) */
    idx[r - 1] += len;
    for (int i = 0; i < b->n_in; i++) off[i] += len * b->str[i][r - 1];
    for (int d = r - 1; d > 0 && idx[d] == b->dims[d]; d--) {
      for (int i = 0; i < b->n_in; i++) off[i] -= b->dims[d] * b->str[i][d] - b->str[i][d - 1];
      idx[d] = 0;
      idx[d - 1]++;
    }
  }
}

typedef struct { const vt_bcast *b; vt_bcast_row_fn fn; void *arg; } bc_job;

static void bc_range(void *arg, int64_t begin, int64_t end) {
  bc_job *j = arg;
  vt_bcast_rows(j->b, begin, end, j->fn, j->arg);
}

void vt_bcast_run(const vt_bcast *b, vt_pool *pool, vt_bcast_row_fn fn, void *arg) {
  bc_job j = {b, fn, arg};
  if (b->numel >= VT_PAR_MIN && pool)
    vt_pool_for(pool, b->numel, bc_range, &j);
  else
    vt_bcast_rows(b, 0, b->numel, fn, arg);
}

void vt_ori(int32_t rank, const int64_t *dims, int32_t a0, int32_t a1, int64_t *outer,
            int64_t *mid, int64_t *inner) {
  int64_t o = 1, m = 1, in = 1;
  for (int32_t d = 0; d < rank; d++) {
    if (d < a0) o *= dims[d];
    else if (d < a1) m *= dims[d];
    else in *= dims[d];
  }
  *outer = o;
  *mid = m;
  *inner = in;
}

int vt_bcast_strides(vt_kctx *k, const char *what, const vt_tensor *t, int32_t rank, const int64_t *full,
                     int64_t *st) {
  int64_t s = 1;
  for (int32_t d = rank - 1; d >= 0; d--) {
    int32_t td = d - (rank - t->rank);
    int64_t sz = td >= 0 ? t->dims[td] : 1;
    if (sz != 1 && sz != full[d])
      return vt_kernel_fail(k, "%s dim %d is %lld; it must be 1 or %lld", what, td, (long long)sz, (long long)full[d]);
    st[d] = sz == 1 ? 0 : s;
    s *= sz;
  }
  return VT_OK;
}

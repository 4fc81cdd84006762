/* kernels_util.h — helpers shared by the reference kernels (owned by the math family; other
 * kernel files may include it, so this interface stays stable):
 *   - numpy broadcasting iteration (vt_bcast_*): row-wise walk over an output shape with each
 *     input's element offset, adjacent dims collapsed so the inner rows are as long as possible;
 *   - dtype dispatch X-macros (VT_FOR_NATIVE_TYPES and friends);
 *   - float16/bfloat16 <-> float32 conversion of whole tensors (kernels compute f16/bf16 in f32);
 *   - the [outer, axis, inner] view of a shape around one axis or a run of axes (vt_ori);
 *   - element strides of a tensor broadcast to a fixed shape (vt_bcast_strides: attention masks);
 *   - the parallelism threshold VT_PAR_MIN (elements below which kernels stay single-threaded).
 * Implementations live in runtime/kernels_math_util.c. */
#ifndef VTOPT_KERNELS_UTIL_H
#define VTOPT_KERNELS_UTIL_H

#include "runtime.h"

/* Work (in elements) below which a kernel runs on the caller's thread only. */
#define VT_PAR_MIN 65536

/* ---------- dtype dispatch ------------------------------------------------------------------
 * X(VT_DTYPE, ctype) for every dtype with a native C type. f16/bf16 (uint16_t storage) are not
 * listed: convert them with vt_tensor_to_f32 / vt_tensor_from_f32. */
#define VT_FOR_INT_TYPES(X) \
  X(VT_I8, int8_t) X(VT_I16, int16_t) X(VT_I32, int32_t) X(VT_I64, int64_t) \
  X(VT_U8, uint8_t) X(VT_U16, uint16_t) X(VT_U32, uint32_t) X(VT_U64, uint64_t)
#define VT_FOR_FLOAT_TYPES(X) X(VT_F32, float) X(VT_F64, double)
#define VT_FOR_NUM_TYPES(X) VT_FOR_FLOAT_TYPES(X) VT_FOR_INT_TYPES(X)
/* bool tensors hold one byte per element, 0 or 1: read them as uint8_t (never as C bool). */
#define VT_FOR_NATIVE_TYPES(X) VT_FOR_NUM_TYPES(X) X(VT_BOOL, uint8_t)

static inline bool vt_dtype_is_half(vt_dtype t) { return t == VT_F16 || t == VT_BF16; }

/* Makes dst a new owned f32 tensor with src's shape holding src's values (src: f16 or bf16).
 * Returns VT_OK or sets e. */
int vt_tensor_to_f32(const vt_tensor *src, vt_tensor *dst, vt_error *e);
/* Writes the f32 values of src into dst (same numel; dst dtype f16, bf16 or f32). */
void vt_tensor_from_f32(const vt_tensor *src, vt_tensor *dst);
/* A shallow, non-owning view (same data) of t. */
static inline vt_tensor vt_tensor_view(const vt_tensor *t) {
  vt_tensor v = *t;
  v.owned = false;
  return v;
}

/* ---------- broadcasting ---------------------------------------------------------------------
 * Set up with the output shape and up to VT_BC_MAX_IN input shapes (each broadcastable to the
 * output, numpy rules: aligned on the right, size-1 dims stretch). Dims that are 1 everywhere are
 * dropped and adjacent dims with the same broadcast pattern merged, so rank is small and the last
 * dim long. str[i][d] is input i's element stride on dim d (0 where it is broadcast). */
#define VT_BC_MAX_IN 4
typedef struct vt_bcast {
  int n_in;
  int rank;                                 /* >= 1 after collapsing */
  int64_t dims[VT_MAX_RANK];
  int64_t str[VT_BC_MAX_IN][VT_MAX_RANK];
  int64_t numel;                            /* output elements */
} vt_bcast;

/* Returns 0, or -1 if an input does not broadcast to the output shape. */
int vt_bcast_init(vt_bcast *b, int32_t out_rank, const int64_t *out_dims, int n_in,
                  const int32_t *in_ranks, const int64_t *const *in_dims);
/* The same from tensors: output shape from out, inputs from ins[0..n_in). */
int vt_bcast_init_t(vt_bcast *b, const vt_tensor *out, int n_in, const vt_tensor *const *ins);

/* Row callback: len consecutive output elements starting at out_off; input i's first element is
 * at in_off[i] and advances by b->str[i][b->rank - 1] per output element. */
typedef void (*vt_bcast_row_fn)(void *arg, int64_t out_off, const int64_t *in_off, int64_t len);
/* Calls fn for every row piece of output elements [begin, end) in order. */
void vt_bcast_rows(const vt_bcast *b, int64_t begin, int64_t end, vt_bcast_row_fn fn, void *arg);
/* Same over all output elements, split across the pool when numel >= VT_PAR_MIN. */
void vt_bcast_run(const vt_bcast *b, vt_pool *pool, vt_bcast_row_fn fn, void *arg);

/* ---------- axis views ----------------------------------------------------------------------- */
/* Views dims as [outer, mid, inner] where mid = product of dims[a0, a1). */
void vt_ori(int32_t rank, const int64_t *dims, int32_t a0, int32_t a1, int64_t *outer,
            int64_t *mid, int64_t *inner);

/* Element strides st[rank] of t (rank <= rank, aligned from the right) broadcast numpy-style to
 * full[rank]: 0 where t's dim is 1 or absent. Fails (naming `what` and t's dim) when a dim is
 * neither 1 nor full's; the caller checks t's rank. */
int vt_bcast_strides(vt_kctx *k, const char *what, const vt_tensor *t, int32_t rank, const int64_t *full,
                     int64_t *st);

#endif

/* kernels_tensor.h — private helpers shared by the tensor-family kernel files
 * (runtime/kernels_tensor*.c): strided copies, element load/store through double, integer
 * input reading. Not part of the runtime's interface. */
#ifndef VTOPT_KERNELS_TENSOR_H
#define VTOPT_KERNELS_TENSOR_H

#include "runtime.h"

/* Elements below which tensor kernels stay on the caller's thread. */
#define VT_TK_PAR_MIN 32768

/* Copies the strided view (dims, element strides that may be 0 or negative, starting at src)
 * into contiguous dst. rank <= 2 * VT_MAX_RANK. */
void vt_tk_strided_copy(void *dst, const void *src, int rank, const int64_t *dims, const int64_t *strides,
                        size_t esz, vt_pool *pool);
/* Element size of t, or fails the kernel for strings / unknown dtypes (returns 0). */
size_t vt_tk_esz(vt_kctx *k, const vt_tensor *t);
/* Writes x converted to dtype dt at p (ints rounded to nearest, bool = x != 0). */
void vt_tk_store_f64(void *p, vt_dtype dt, double x);
/* Reads up to max integers of t into v; returns the count or -1 when t has more, or is not an
 * integer tensor. */
int32_t vt_tk_read_ints(const vt_tensor *t, int64_t *v, int32_t max);
/* Same as vt_infer: the model's ai.onnx opset (18 when not imported). */
int64_t vt_tk_opset(const vt_kctx *k);
/* Index element i of an int32/int64 tensor. */
static inline int64_t vt_tk_index(const vt_tensor *t, int64_t i) {
  return t->dtype == VT_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
}

#endif

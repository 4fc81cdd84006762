/* gemm.h — the one float32 GEMM of the reference runtime (MatMul, Gemm, Conv, Einsum use it).
 * C = alpha * op(A) * op(B) + beta * C, row-major, op(X) = X or X^T. beta == 0 ignores C's old
 * contents (NaNs included). Multi-threaded through the pool (p may be NULL). Never fails: when
 * the packing buffers cannot be allocated it falls back to an unpacked loop. */
#ifndef VTOPT_GEMM_H
#define VTOPT_GEMM_H

#include "runtime.h"

/* The micro-kernel's register tile: VT_GEMM_MR rows x VT_GEMM_NR columns of C. */
#define VT_GEMM_MR 6
#define VT_GEMM_NR 16

/* tile[r*NR + c] = sum_k a[k*MR + r] * b[k*NR + c] for k < kc: the micro-kernel on packed panels
 * (a: MR-high row strip, b: NR-wide column panel; a, b, tile 32-byte aligned), for kernels that
 * consume a tile themselves (HTTM's matching keeps a running argmax over tiles). */
void vt_gemm_tile(int64_t kc, const float *restrict a, const float *restrict b, float *restrict tile);

void vt_sgemm(vt_pool *p, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

/* batch independent GEMMs; item i uses A + i*strideA, B + i*strideB, C + i*strideC (a stride of
 * 0 broadcasts that operand). */
void vt_sgemm_strided(vt_pool *p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, int64_t strideA, const float *B,
                      int64_t ldb, int64_t strideB, float beta, float *C, int64_t ldc,
                      int64_t strideC, int64_t batch);

/* batch independent GEMMs given by pointer arrays (general broadcasting). */
void vt_sgemm_ptrs(vt_pool *p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                   float alpha, const float *const *A, int64_t lda, const float *const *B,
                   int64_t ldb, float beta, float *const *C, int64_t ldc, int64_t batch);

#endif

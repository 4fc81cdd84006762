/* gemm.c — cache-blocked, multi-threaded float32 GEMM (GotoBLAS structure) in portable C.
 * A and B are packed once per call (in parallel) into MR-high row strips and NR-wide column
 * panels per KC-deep block; pool threads then take (MC rows) x (some panels) tiles of C
 * dynamically and run the MR x NR register-blocked micro-kernel over them. The micro-kernel uses GCC vector extensions (no ISA
 * intrinsics) and is cloned for x86-64-v3 / v4 with a portable default, picked at load time. */
/* The GEMM is the interpreter's hot loop: keep it optimised in Debug builds too. */
#pragma GCC optimize("O2")

#include "gemm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MR VT_GEMM_MR
#define NR VT_GEMM_NR
#define KC 256
#define MC_MAX 96

typedef float v8f __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4)));   /* unaligned loads */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define VT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VT_CLONES
#endif

/* acc[2r], acc[2r+1] = row r of sum_k a[k][0..MR) (x) b[k][0..NR) (a, b packed, 32-byte aligned):
 * the accumulation of every micro-kernel, inlined so the 12 accumulators stay in registers. */
static inline __attribute__((always_inline)) void accumulate(int64_t kc, const float *restrict a,
                                                             const float *restrict b, v8f acc[2 * MR]) {
  v8f c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
  v8f c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
  for (int64_t k = 0; k < kc; k++) {
    v8f b0 = *(const v8f *)b, b1 = *(const v8f *)(b + 8);
    float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
    c00 += a0 * b0; c01 += a0 * b1;
    c10 += a1 * b0; c11 += a1 * b1;
    c20 += a2 * b0; c21 += a2 * b1;
    c30 += a3 * b0; c31 += a3 * b1;
    c40 += a4 * b0; c41 += a4 * b1;
    c50 += a5 * b0; c51 += a5 * b1;
    a += MR;
    b += NR;
  }
  acc[0] = c00; acc[1] = c01; acc[2] = c10; acc[3] = c11; acc[4] = c20; acc[5] = c21;
  acc[6] = c30; acc[7] = c31; acc[8] = c40; acc[9] = c41; acc[10] = c50; acc[11] = c51;
}

VT_CLONES __attribute__((optimize("fp-contract=fast")))
void vt_gemm_tile(int64_t kc, const float *restrict a, const float *restrict b, float *restrict tile) {
  accumulate(kc, a, b, (v8f *)tile);
}

/* C[0..MR)[0..NR) (row stride ldc) = alpha * (a (x) b) + beta * C, for full tiles: the same
 * accumulation as vt_gemm_tile with the update done in registers. beta == 0 ignores C. */
VT_CLONES __attribute__((optimize("fp-contract=fast")))
static void ukernel_c(int64_t kc, const float *restrict a, const float *restrict b,
                      float *restrict c, int64_t ldc, float alpha, float beta) {
  v8f acc[2 * MR];
  accumulate(kc, a, b, acc);
  for (int r = 0; r < MR; r++) {
    v8fu *p0 = (v8fu *)(c + r * ldc), *p1 = (v8fu *)(c + r * ldc + 8);
    if (beta == 0.0f) {
      *p0 = alpha * acc[2 * r];
      *p1 = alpha * acc[2 * r + 1];
    } else if (beta == 1.0f) {
      *p0 += alpha * acc[2 * r];
      *p1 += alpha * acc[2 * r + 1];
    } else {
      *p0 = alpha * acc[2 * r] + beta * *p0;
      *p1 = alpha * acc[2 * r + 1] + beta * *p1;
    }
  }
}

static void *aligned_buf(size_t nfloats) {
  size_t bytes = (nfloats * sizeof(float) + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes ? bytes : 64);
}

/* Unpacked reference path for tiny problems and allocation failure. */
static void gemm_naive(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < N; j++) {
      float s = 0;
      for (int64_t k = 0; k < K; k++) {
        float a = tA ? A[k * lda + i] : A[i * lda + k];
        float b = tB ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
      }
      float *c = &C[i * ldc + j];
      *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
    }
  }
}

typedef struct {
  int tA, tB;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const float *A, *B;
  float *C;
  float *bp;          /* packed B: per K block, npanels panels of kc x NR */
  float *ap;          /* packed A: per K block, nstrips strips of kc x MR */
  int64_t npanels, npad, nstrips, mpad, mc, mblocks, pblock, nblocks;
  int nparts;         /* packing work split in this many parts */
  atomic_llong next;  /* next tile task to take (tasks are handed out dynamically) */
} gemm_job;

/* Packs panels [p0, p1) of B for every K block. Both layouts read B along its rows (sequential
 * memory) and write whole 64-byte panel rows. */
static void pack_b_range(gemm_job *j, int64_t p0, int64_t p1) {
  for (int64_t kb = 0; kb < j->K; kb += KC) {
    int64_t kc = j->K - kb < KC ? j->K - kb : KC;
    float *blk = j->bp + kb * j->npad;
    if (!j->tB) {
      for (int64_t k = 0; k < kc; k++) {
        const float *src = j->B + (kb + k) * j->ldb;
        for (int64_t p = p0; p < p1; p++) {
          float *dst = blk + p * kc * NR + k * NR;
          int64_t c0 = p * NR, nc = j->N - c0 < NR ? j->N - c0 : NR;
          if (nc == NR) {
            ((v8f *)dst)[0] = *(const v8fu *)(src + c0);
            ((v8f *)dst)[1] = *(const v8fu *)(src + c0 + 8);
          } else {
            int64_t c = 0;
            for (; c < nc; c++) dst[c] = src[c0 + c];
            for (; c < NR; c++) dst[c] = 0;
          }
        }
      }
    } else {
      for (int64_t p = p0; p < p1; p++) {
        float *dst = blk + p * kc * NR;
        int64_t c0 = p * NR, nc = j->N - c0 < NR ? j->N - c0 : NR;
        for (int64_t c = 0; c < nc; c++) {
          const float *src = j->B + (c0 + c) * j->ldb + kb;
          for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = src[k];
        }
        for (int64_t c = nc; c < NR; c++)
          for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = 0;
      }
    }
  }
}

/* Packs MR-row strips [s0, s1) of A for every K block. */
static void pack_a_range(const gemm_job *j, int64_t s0, int64_t s1) {
  for (int64_t kb = 0; kb < j->K; kb += KC) {
    int64_t kc = j->K - kb < KC ? j->K - kb : KC;
    for (int64_t st = s0; st < s1; st++) {
      int64_t i0 = st * MR, mr = j->M - i0 < MR ? j->M - i0 : MR;
      float *d = j->ap + kb * j->mpad + st * kc * MR;
      if (!j->tA && mr == MR) {
        const float *r0 = j->A + i0 * j->lda + kb, *r1 = r0 + j->lda, *r2 = r1 + j->lda;
        const float *r3 = r2 + j->lda, *r4 = r3 + j->lda, *r5 = r4 + j->lda;
        for (int64_t k = 0; k < kc; k++) {
          d[0] = r0[k]; d[1] = r1[k]; d[2] = r2[k]; d[3] = r3[k]; d[4] = r4[k]; d[5] = r5[k];
          d += MR;
        }
        continue;
      }
      if (!j->tA) {
        for (int64_t r = 0; r < mr; r++) {
          const float *src = j->A + (i0 + r) * j->lda + kb;
          for (int64_t k = 0; k < kc; k++) d[k * MR + r] = src[k];
        }
      } else {
        for (int64_t k = 0; k < kc; k++) {
          const float *src = j->A + (kb + k) * j->lda + i0;
          for (int64_t r = 0; r < mr; r++) d[k * MR + r] = src[r];
        }
      }
      for (int64_t r = mr; r < MR; r++)
        for (int64_t k = 0; k < kc; k++) d[k * MR + r] = 0;
    }
  }
}

/* Pool task: part w of nparts packs its share of B's panels and A's strips. */
static void pack_parts(void *arg, int64_t w0, int64_t w1) {
  gemm_job *j = arg;
  for (int64_t w = w0; w < w1; w++) {
    pack_b_range(j, w * j->npanels / j->nparts, (w + 1) * j->npanels / j->nparts);
    pack_a_range(j, w * j->nstrips / j->nparts, (w + 1) * j->nstrips / j->nparts);
  }
}

/* One tile task: rows [i0, i0 + mc) x panels [p0, p1) of C from the packed operands. */
static void do_tile(const gemm_job *j, int64_t t) {
  int64_t mb = t / j->nblocks, nb = t % j->nblocks;
  int64_t i0 = mb * j->mc, mc = j->M - i0 < j->mc ? j->M - i0 : j->mc;
  int64_t p0 = nb * j->pblock, p1 = p0 + j->pblock;
  if (p1 > j->npanels) p1 = j->npanels;
  float tile[MR * NR] __attribute__((aligned(64)));
  for (int64_t kb = 0; kb < j->K; kb += KC) {
    int64_t kc = j->K - kb < KC ? j->K - kb : KC;
    float beta = kb == 0 ? j->beta : 1.0f;
    const float *ap = j->ap + kb * j->mpad + i0 * kc;   /* i0 is a multiple of MR */
    for (int64_t p = p0; p < p1; p++) {
      const float *bpan = j->bp + kb * j->npad + p * kc * NR;
      int64_t c0 = p * NR, nr = j->N - c0 < NR ? j->N - c0 : NR;
      for (int64_t r0 = 0; r0 < mc; r0 += MR) {
        int64_t mr = mc - r0 < MR ? mc - r0 : MR;
        float *c = j->C + (i0 + r0) * j->ldc + c0;
        float alpha = j->alpha;
        if (mr == MR && nr == NR) {
          ukernel_c(kc, ap + r0 * kc, bpan, c, j->ldc, alpha, beta);
          continue;
        }
        vt_gemm_tile(kc, ap + r0 * kc, bpan, tile);
        for (int64_t r = 0; r < mr; r++) {
          float *cr = c + r * j->ldc;
          const float *tr = tile + r * NR;
          if (beta == 0.0f) {
            for (int64_t q = 0; q < nr; q++) cr[q] = alpha * tr[q];
          } else if (beta == 1.0f) {
            for (int64_t q = 0; q < nr; q++) cr[q] += alpha * tr[q];
          } else {
            for (int64_t q = 0; q < nr; q++) cr[q] = alpha * tr[q] + beta * cr[q];
          }
        }
      }
    }
  }
}

/* Pool task: takes tile tasks from j->next until none are left. */
static void run_tiles_dyn(void *arg, int64_t b, int64_t e) {
  (void)b;
  (void)e;
  gemm_job *j = arg;
  int64_t ntasks = j->mblocks * j->nblocks;
  for (;;) {
    int64_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (t >= ntasks) break;
    do_tile(j, t);
  }
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

void vt_sgemm(vt_pool *p, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    if (beta != 1.0f) scale_c(M, N, beta, C, ldc);
    return;
  }
  if ((double)M * (double)N * (double)K <= 4096.0) {
    gemm_naive(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  gemm_job j = {transA, transB, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C, NULL, NULL,
                0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  j.npanels = (N + NR - 1) / NR;
  j.npad = j.npanels * NR;
  j.nstrips = (M + MR - 1) / MR;
  j.mpad = j.nstrips * MR;
  j.bp = aligned_buf((size_t)j.npad * (size_t)K);
  j.ap = aligned_buf((size_t)j.mpad * (size_t)K);
  if (!j.bp || !j.ap) {
    free(j.bp);
    free(j.ap);
    gemm_naive(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int nt = vt_pool_threads(p);
  double flops = 2.0 * (double)M * (double)N * (double)K;
  if (flops < 2e6) nt = 1;   /* not worth waking workers */
  vt_pool *pp = nt > 1 ? p : NULL;

  j.mblocks = (M + MC_MAX - 1) / MC_MAX;
  int64_t mc = (M + j.mblocks - 1) / j.mblocks;
  j.mc = (mc + MR - 1) / MR * MR;
  j.mblocks = (M + j.mc - 1) / j.mc;
  /* About 8 tasks per thread (taken dynamically, so a descheduled thread does not hold the
   * others up), but no narrower than 4 panels. */
  int64_t nb = 1;
  if (nt > 1) {
    nb = (8 * nt + j.mblocks - 1) / j.mblocks;
    if (nb > j.npanels / 4) nb = j.npanels / 4;
    if (nb < 1) nb = 1;
  }
  j.pblock = (j.npanels + nb - 1) / nb;
  j.nblocks = (j.npanels + j.pblock - 1) / j.pblock;
  atomic_init(&j.next, 0);

  j.nparts = nt;
  vt_pool_for(pp, nt, pack_parts, &j);
  if (pp)
    vt_pool_for(pp, nt, run_tiles_dyn, &j);
  else
    run_tiles_dyn(&j, 0, 1);
  free(j.bp);
  free(j.ap);
}

typedef struct {
  int tA, tB;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const float *const *A;
  const float *const *B;
  float *const *C;
  const float *A0, *B0;
  float *C0;
  int64_t sA, sB, sC;
} batch_job;

static void run_items(void *arg, int64_t b0, int64_t b1) {
  batch_job *j = arg;
  for (int64_t b = b0; b < b1; b++) {
    const float *a = j->A ? j->A[b] : j->A0 + b * j->sA;
    const float *bb = j->B ? j->B[b] : j->B0 + b * j->sB;
    float *c = j->C ? j->C[b] : j->C0 + b * j->sC;
    vt_sgemm(NULL, j->tA, j->tB, j->M, j->N, j->K, j->alpha, a, j->lda, bb, j->ldb, j->beta, c,
             j->ldc);
  }
}

static void run_batch(vt_pool *p, batch_job *j, int64_t batch) {
  if (batch <= 0) return;
  int nt = vt_pool_threads(p);
  /* Many items: one thread per item. Few large items: parallelise inside each. */
  if (batch >= 2 * nt || (batch >= nt && batch % nt == 0) ||
      2.0 * (double)j->M * (double)j->N * (double)j->K < 2e6) {
    vt_pool_for(p, batch, run_items, j);
  } else {
    for (int64_t b = 0; b < batch; b++) {
      const float *a = j->A ? j->A[b] : j->A0 + b * j->sA;
      const float *bb = j->B ? j->B[b] : j->B0 + b * j->sB;
      float *c = j->C ? j->C[b] : j->C0 + b * j->sC;
      vt_sgemm(p, j->tA, j->tB, j->M, j->N, j->K, j->alpha, a, j->lda, bb, j->ldb, j->beta, c,
               j->ldc);
    }
  }
}

void vt_sgemm_strided(vt_pool *p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, int64_t strideA, const float *B,
                      int64_t ldb, int64_t strideB, float beta, float *C, int64_t ldc,
                      int64_t strideC, int64_t batch) {
  batch_job j = {transA, transB, M, N, K, lda, ldb, ldc, alpha, beta, NULL, NULL, NULL,
                 A, B, C, strideA, strideB, strideC};
  run_batch(p, &j, batch);
}

void vt_sgemm_ptrs(vt_pool *p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                   float alpha, const float *const *A, int64_t lda, const float *const *B,
                   int64_t ldb, float beta, float *const *C, int64_t ldc, int64_t batch) {
  batch_job j = {transA, transB, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C,
                 NULL, NULL, NULL, 0, 0, 0};
  run_batch(p, &j, batch);
}

/* cg_kernels.c — kernel bodies of the LLVM code generator, compiled to bitcode at build time
 * (clang-19 -emit-llvm, no target CPU, no LLVM passes) and linked into every model module.
 * The generated glue calls these with constant sizes and constant pointers to pre-packed weights;
 * after inlining (always_inline) LLVM specialises them for the model and the host CPU.
 *
 * Invariants shared with the code generator (cg_lower.c, cg_emit_cpu.c; keep in sync, see cg_layout.h):
 *  - packed B: panels of VT_CG_NR columns; panel p holds K rows of VT_CG_NR floats
 *    (B[k][p*NR + j], zero past N), panels stored one after another (K*NR floats each).
 *  - the epilogue callback receives a block of C (row-major, stride ldc; a row block's rows by
 *    one panel's columns) that holds the final accumulated A*B values for rows [m0, m0+mr) and
 *    columns [n0, n0+nr).
 * Everything here is branch-light straight C so the loop vectorizer can widen the math helpers. */
#include <stdint.h>

#include "../cg_layout.h"

#define AI __attribute__((always_inline))

#ifndef VT_CG_ISA
#error "compile the kernel library with -DVT_CG_ISA=<VT_CG_ISA_AVX2|VT_CG_ISA_AVX512> (codegen/CMakeLists.txt)"
#endif
_Static_assert(VT_CG_ATT_QB % VT_CG_MR == 0, "attention query blocks are whole micro-tiles");
_Static_assert(VT_CG_ATT_KB % VT_CG_NR == 0, "attention key blocks are whole panels");
_Static_assert(VT_CG_NR == 2 * VT_CG_VW, "a micro-tile row is two vectors");

typedef float vt_v8 __attribute__((vector_size(32)));
/* one vector of the library's ISA (8 floats for AVX2, 16 for AVX-512): the GEMM micro-kernel */
typedef float vt_vf __attribute__((vector_size(VT_CG_VW * 4)));
#define LDV(dst, p) __builtin_memcpy(&(dst), (p), sizeof(vt_vf))
#define STV(p, v) __builtin_memcpy((p), &(v), sizeof(vt_vf))
#if VT_CG_VW == 16
#define SPLATV(x) ((vt_vf){(x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x)})
#else
#define SPLATV(x) ((vt_vf){(x), (x), (x), (x), (x), (x), (x), (x)})
#endif
typedef int32_t vt_if __attribute__((vector_size(VT_CG_VW * 4)));   /* lane masks, exponent bits */
#define HSUM8(v) ((((v)[0] + (v)[1]) + ((v)[2] + (v)[3])) + (((v)[4] + (v)[5]) + ((v)[6] + (v)[7])))
/* the lanes of a vector in a fixed order: halves added down to 8 lanes, then pairwise */
#if VT_CG_VW == 16
#define HSUMV(v)                                                                                     \
  ({                                                                                               \
    vt_v8 h_ = __builtin_shufflevector((v), (v), 0, 1, 2, 3, 4, 5, 6, 7) +                          \
               __builtin_shufflevector((v), (v), 8, 9, 10, 11, 12, 13, 14, 15);                     \
    HSUM8(h_);                                                                                     \
  })
#define IOTAV ((vt_if){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
#else
#define HSUMV(v) HSUM8(v)
#define IOTAV ((vt_if){0, 1, 2, 3, 4, 5, 6, 7})
#endif
typedef void (*vt_cg_epi_fn)(void **bufs, float *c, int64_t ldc, int64_t m0, int64_t n0, int64_t mr,
                             int64_t nr);

/* unaligned vector load/store (macros: vector arguments would change the generic-x86 ABI) */
#define LD8(dst, p) __builtin_memcpy(&(dst), (p), sizeof(vt_v8))
#define ST8(p, v) __builtin_memcpy((p), &(v), sizeof(vt_v8))


/* Sum of a row: VW lane sums (a vector of the library's ISA), the lanes in a fixed order, then the tail (one summation order for
 * LayerNorm, Softmax and the Reduce kernels). */
static inline AI float vt_cg_row_sum(const float *xr, int64_t cols) {
  vt_vf sv = SPLATV(0.0f);
  int64_t j = 0;
  for (; j + VT_CG_VW <= cols; j += VT_CG_VW) {
    vt_vf v;
    LDV(v, xr + j);
    sv += v;
  }
  float s = HSUMV(sv);
  for (; j < cols; j++) s += xr[j];
  return s;
}

/* LayerNorm of one row: mean and 1 / sqrt(var + eps) (vector sums, then the tail), and the
 * normalised value of one element. */
static inline AI void vt_cg_ln_stats(const float *xr, int64_t cols, float eps, float *mean_out, float *inv_out) {
  float s = vt_cg_row_sum(xr, cols);
  int64_t j;
  float mean = cols ? s / (float)cols : 0.0f;
  vt_vf qv = SPLATV(0.0f);
  vt_vf mv = SPLATV(mean);
  for (j = 0; j + VT_CG_VW <= cols; j += VT_CG_VW) {
    vt_vf v;
    LDV(v, xr + j);
    v -= mv;
    qv += v * v;
  }
  float q = HSUMV(qv);
  for (; j < cols; j++) q += (xr[j] - mean) * (xr[j] - mean);
  *mean_out = mean;
  *inv_out = 1.0f / __builtin_sqrtf((cols ? q / (float)cols : 0.0f) + eps);
}
#define VT_CG_LN(x, mean, inv, g, b) (((x) - (mean)) * (inv) * (g) + (b))

/* C[mr x nr] (+)= A[mr x kc] * B[kc x NR]: element (i, k) of A at A[i * lda + k * ka] (ka = 1: rows
 * of a matrix; lda = 1, ka = MR: a packed micro-panel), B read at row stride ldb (NR readable
 * floats per row: VT_CG_NR for a packed panel, the matrix's row stride when read in place). Rows
 * past mr read row mr-1 of A (valid memory) and their results are dropped, so the inner loop has
 * no row guards. Always inlined, so constant strides and nr fold away. */
static inline AI void vt_cg_micro_rows(int64_t kc, const float *A, int64_t lda, int64_t ka, int64_t a_rows,
                                       const float *B, int64_t ldb, float *C, int64_t ldc, int64_t mr, int64_t nr,
                                       int accumulate) {
  const float *a[VT_CG_MR];
  for (int i = 0; i < VT_CG_MR; i++) a[i] = A + (i < a_rows ? i : a_rows - 1) * lda;
  vt_vf c0[VT_CG_MR], c1[VT_CG_MR];
  for (int i = 0; i < VT_CG_MR; i++) {
    c0[i] = (vt_vf){0};
    c1[i] = c0[i];
  }
  for (int64_t k = 0; k < kc; k++) {
    vt_vf b0, b1;
    LDV(b0, B + k * ldb);
    LDV(b1, B + k * ldb + VT_CG_VW);
    for (int i = 0; i < VT_CG_MR; i++) {
      float s = a[i][k * ka];
      vt_vf av = SPLATV(s);
      c0[i] += av * b0;
      c1[i] += av * b1;
    }
  }
  if (nr == VT_CG_NR) {   /* unrolled: the accumulators go from registers to C, never to the stack */
    if (accumulate) {
#pragma clang loop unroll(full)
      for (int i = 0; i < VT_CG_MR; i++) {
        if (i < mr) {
          float *cp = C + i * ldc;
          vt_vf o0, o1;
          LDV(o0, cp);
          LDV(o1, cp + VT_CG_VW);
          o0 += c0[i];
          o1 += c1[i];
          STV(cp, o0);
          STV(cp + VT_CG_VW, o1);
        }
      }
    } else {
#pragma clang loop unroll(full)
      for (int i = 0; i < VT_CG_MR; i++) {
        if (i < mr) {
          float *cp = C + i * ldc;
          STV(cp, c0[i]);
          STV(cp + VT_CG_VW, c1[i]);
        }
      }
    }
  } else {
    float tmp[VT_CG_MR][VT_CG_NR];
    for (int i = 0; i < VT_CG_MR; i++) {
      STV(tmp[i], c0[i]);
      STV(tmp[i] + VT_CG_VW, c1[i]);
    }
    for (int64_t i = 0; i < mr; i++)
      for (int64_t j = 0; j < nr; j++) C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.0f) + tmp[i][j];
  }
}

/* The same with A's first mr rows readable (rows past them read row mr - 1). */
static inline AI void vt_cg_micro(int64_t kc, const float *A, int64_t lda, int64_t ka, const float *B, int64_t ldb,
                                  float *C, int64_t ldc, int64_t mr, int64_t nr, int accumulate) {
  vt_cg_micro_rows(kc, A, lda, ka, mr, B, ldb, C, ldc, mr, nr, accumulate);
}

/* Packs rows [m0, m1) x columns [k0, k0 + kc) of A into micro-panels of MR rows, each row kept
 * contiguous: Ap[(m - m0) * ks + k] = A[m][k0 + k] (row stride ks >= kc: the GEMM's K block, a
 * constant after inlining, so the micro-kernel reads row i of a panel at a constant offset);
 * rows from m1 up to the end of the last micro-panel are zero. Row-major packing is a plain
 * (vectorised) copy per row instead of a 6-row transpose; it still gathers the row block into L2
 * away from A's own stride (a large power-of-two row stride would alias in the cache). With ln,
 * every element is LayerNorm-ed on the way (row statistics mean/inv indexed from m0, scale lg and
 * bias lb indexed by column, lb NULL: no bias). With ridx (gather prologue), row m of A is row
 * ridx[m] of the matrix at A; a constant NULL ridx folds away after inlining. */
#define VT_CG_PACK_AHEAD 2   /* rows of A prefetched ahead of the row being packed */
static inline AI void vt_cg_pack_a(const float *A, int64_t lda, int64_t m0, int64_t m1, int64_t k0, int64_t kc,
                                   int64_t ks, float *Ap, int ln, const float *mean, const float *inv,
                                   const float *lg, const float *lb, const int64_t *ridx) {
  int64_t mend = m0 + (m1 - m0 + VT_CG_MR - 1) / VT_CG_MR * VT_CG_MR;
  for (int64_t m = m0; m < mend; m++) {
    float *dst = Ap + (m - m0) * ks;
    if (m >= m1) {
      for (int64_t k = 0; k < kc; k++) dst[k] = 0.0f;
      continue;
    }
    const float *src = A + (ridx ? ridx[m] : m) * lda + k0;
    if (m + VT_CG_PACK_AHEAD < m1) {   /* A often comes from another core's cache: start the row ahead */
      const float *nx = A + (ridx ? ridx[m + VT_CG_PACK_AHEAD] : m + VT_CG_PACK_AHEAD) * lda + k0;
      for (int64_t k = 0; k < kc; k += 16) __builtin_prefetch(nx + k, 0, 3);
    }
    if (ln) {
      float mu = mean[m - m0], iv = inv[m - m0];
      const float *g = lg + k0;
      if (lb) {
        const float *b = lb + k0;
        for (int64_t k = 0; k < kc; k++) dst[k] = VT_CG_LN(src[k], mu, iv, g[k], b[k]);
      } else {
        for (int64_t k = 0; k < kc; k++) dst[k] = VT_CG_LN(src[k], mu, iv, g[k], 0.0f);
      }
    } else {
      for (int64_t k = 0; k < kc; k++) dst[k] = src[k];
    }
  }
}

/* Work units [u0, u1) of C = A * B (M x N, B packed, see the top; units and row blocks as in
 * cg_layout.h), then the epilogue on every finished panel of a row block. K == 0 gives zeros. With ln, A is
 * replaced by LayerNorm(A) over its K columns (scale lg, bias lb or NULL, epsilon eps), computed
 * while packing: the LayerNorm's output never goes to memory. With ridx (gather prologue: an
 * Eventful gate's selected tokens), row m of A is row ridx[m] of the matrix at A (the gate's
 * input), read while packing, so the gathered rows are never written; NULL: rows in order.
 * Per row block and K block (<= kc_max, K split evenly): A's block is packed once (stack, L2),
 * then every panel of the range runs down the row block's micro-tiles with its K block in L1,
 * accumulating into C from the second K block on. While one panel runs, the next panel's block
 * (one cache line per k: NR floats) and the next tile's C rows are prefetched. */
AI void vt_cgk_gemm_kc(const float *A, int64_t lda, const float *Bp, float *C, int64_t ldc, int64_t M,
                       int64_t N, int64_t K, int64_t u0, int64_t u1, void **bufs, vt_cg_epi_fn epi, int32_t ln,
                       const float *lg, const float *lb, float eps, const int64_t *ridx, int64_t kc_max) {
  int64_t npan = (N + VT_CG_NR - 1) / VT_CG_NR;
  if (npan == 0 || M <= 0) return;
  int64_t mc = vt_cg_gemm_mc_p(M, VT_CG_MC, VT_CG_MR);
  int64_t nkb = (K + kc_max - 1) / kc_max;
  int64_t kcb = nkb ? (K + nkb - 1) / nkb : 1;
  float Ap[mc * kcb];
  float mean[ln ? mc : 1], inv[ln ? mc : 1];
  for (int64_t u = u0; u < u1;) {
    int64_t mb = u / npan, p0 = u % npan;
    int64_t p1 = u1 - mb * npan < npan ? u1 - mb * npan : npan;
    int64_t m_lo = mb * mc, m_hi = m_lo + mc < M ? m_lo + mc : M;
    u = mb * npan + p1;
    if (K == 0) {
      for (int64_t p = p0; p < p1; p++) {
        int64_t n0 = p * VT_CG_NR, nr = N - n0 < VT_CG_NR ? N - n0 : VT_CG_NR;
        for (int64_t m = m_lo; m < m_hi; m += VT_CG_MR) {
          int64_t mr = m_hi - m < VT_CG_MR ? m_hi - m : VT_CG_MR;
          for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nr; j++) C[(m + i) * ldc + n0 + j] = 0.0f;
          if (epi) epi(bufs, C + m * ldc + n0, ldc, m, n0, mr, nr);
        }
      }
      continue;
    }
    int64_t ntiles = (m_hi - m_lo + VT_CG_MR - 1) / VT_CG_MR;
    if (ln)   /* LayerNorm prologue: statistics of the row block's rows (A row = all K columns) */
      for (int64_t m = m_lo; m < m_hi; m++) vt_cg_ln_stats(A + (ridx ? ridx[m] : m) * lda, K, eps, &mean[m - m_lo], &inv[m - m_lo]);
    for (int64_t k0 = 0; k0 < K; k0 += kcb) {
      int64_t kc = K - k0 < kcb ? K - k0 : kcb;
      int last = k0 + kc >= K;
      vt_cg_pack_a(A, lda, m_lo, m_hi, k0, kc, kcb, Ap, ln, mean, inv, lg, lb, ridx);
      for (int64_t p = p0; p < p1; p++) {
        int64_t n0 = p * VT_CG_NR, nr = N - n0 < VT_CG_NR ? N - n0 : VT_CG_NR;
        const float *bp = Bp + p * K * VT_CG_NR + k0 * VT_CG_NR;
        /* the block used after this one: next panel, or the first panel of the next K block */
        const float *nb = p + 1 < p1 ? bp + K * VT_CG_NR : !last ? Bp + p0 * K * VT_CG_NR + (k0 + kc) * VT_CG_NR : 0;
        int64_t nrows = p + 1 < p1 ? kc : !last ? (K - k0 - kc < kcb ? K - k0 - kc : kcb) : 0;
        int64_t per = (nrows + ntiles - 1) / ntiles;
        for (int64_t t = 0; t < ntiles; t++) {
          int64_t m = m_lo + t * VT_CG_MR;
          int64_t mr = m_hi - m < VT_CG_MR ? m_hi - m : VT_CG_MR;
          for (int64_t r = t * per; r < (t + 1) * per && r < nrows; r++)
            for (int l = 0; l < VT_CG_NR; l += 16) __builtin_prefetch(nb + r * VT_CG_NR + l, 0, 3);   /* its cache lines */
          if (k0 > 0 && t + 1 < ntiles)
            for (int i = 0; i < VT_CG_MR; i++) {
              const float *cn = C + (m + VT_CG_MR + i) * ldc + n0;
              for (int l = 0; l < VT_CG_NR; l += 16) __builtin_prefetch(cn + l, 0, 3);
              __builtin_prefetch(cn + VT_CG_NR - 1, 0, 3);
            }
          /* packed micro-panels always hold MR rows (zeros past the last row): the loads use
           * constant row offsets, only the stores stop at mr */
          if (mr == VT_CG_MR && nr == VT_CG_NR)   /* full tile: stores straight from the registers */
            vt_cg_micro_rows(kc, Ap + t * VT_CG_MR * kcb, kcb, 1, VT_CG_MR, bp, VT_CG_NR, C + m * ldc + n0, ldc,
                             VT_CG_MR, VT_CG_NR, k0 > 0);
          else if (nr == VT_CG_NR)
            vt_cg_micro_rows(kc, Ap + t * VT_CG_MR * kcb, kcb, 1, VT_CG_MR, bp, VT_CG_NR, C + m * ldc + n0, ldc,
                             mr, VT_CG_NR, k0 > 0);
          else
            vt_cg_micro_rows(kc, Ap + t * VT_CG_MR * kcb, kcb, 1, VT_CG_MR, bp, VT_CG_NR, C + m * ldc + n0, ldc,
                             mr, nr, k0 > 0);
        }
        /* the epilogue once per panel of the row block (its C columns still in cache): one call
         * and one long loop instead of a call per micro-tile */
        if (last && epi) epi(bufs, C + m_lo * ldc + n0, ldc, m_lo, n0, m_hi - m_lo, nr);
      }
    }
  }
}

/* The same with the library's default K block (VT_CG_KC); the code generator calls
 * vt_cgk_gemm_kc with the target's, sized to its L1 cache (cg_target.c). */
AI void vt_cgk_gemm(const float *A, int64_t lda, const float *Bp, float *C, int64_t ldc, int64_t M, int64_t N,
                    int64_t K, int64_t u0, int64_t u1, void **bufs, vt_cg_epi_fn epi, int32_t ln, const float *lg,
                    const float *lb, float eps, const int64_t *ridx) {
  vt_cgk_gemm_kc(A, lda, Bp, C, ldc, M, N, K, u0, u1, bufs, epi, ln, lg, lb, eps, ridx, VT_CG_KC);
}

/* ---------- scalar math, written branch-free so loops that call them vectorize ---------------- */
static inline float bits_to_f(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

/* e^(x - n ln2) for |x - n ln2| <= ln2 / 2: ln2 subtracted in two parts, then a degree-6
 * polynomial (rel. error ~2 ulp). The callers pick n and apply 2^n. The polynomial is evaluated
 * in Estrin's scheme (pairs, then r^2 and r^4), not Horner's: a third of the dependent latency,
 * which is what bounds long elementwise epilogues (GELU's erf) and softmax. A macro so that the
 * same code serves a float and a vt_v8 (vector-scalar arithmetic splats the constants). */
#define VT_CGM_EXP_REDUCED(x, n)                                                                  \
  ({                                                                                              \
    __typeof__(x) r_ = (x) - (n) * 0.693359375f;                                                  \
    r_ = r_ + (n) * 2.12194440e-4f;                                                               \
    __typeof__(x) r2_ = r_ * r_, r4_ = r2_ * r2_;                                                 \
    __typeof__(x) p_ = (5.0000001201e-1f + 1.6666665459e-1f * r_) +                               \
                       r2_ * (4.1665795894e-2f + 8.3334519073e-3f * r_) +                         \
                       r4_ * (1.3981999507e-3f + 1.9875691500e-4f * r_);                          \
    p_ * r2_ + r_ + 1.0f;                                                                         \
  })
static inline AI float vt_cgm_exp_reduced(float x, float n) { return VT_CGM_EXP_REDUCED(x, n); }

/* exp(x) = 2^n e^(x - n ln2). The scale 2^n is applied in two halves so results near FLT_MAX and
 * in the denormal range come out right. */
AI float vt_cgm_exp(float x) {
  float xc = x > 88.8f ? 88.8f : x;
  xc = xc < -104.0f ? -104.0f : xc;
  float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float p = vt_cgm_exp_reduced(xc, n);
  int32_t ni = (int32_t)n;
  int32_t n1 = ni / 2, n2 = ni - n1;
  float res = p * bits_to_f((uint32_t)(n1 + 127) << 23) * bits_to_f((uint32_t)(n2 + 127) << 23);
  res = x > 88.72283935546875f ? __builtin_inff() : res;
  res = x < -103.972084045410f ? 0.0f : res;
  return x != x ? x : res;
}

/* log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(1 + t) for t = m - 1 by the Cephes
 * degree-9 polynomial, e ln2 added in two parts (rel. error ~1 ulp). Denormals are scaled by 2^23
 * first; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN. */
AI float vt_cgm_log(float x) {
  int den = x < 1.17549435e-38f;
  float xs = den ? x * 8388608.0f : x;
  uint32_t u;
  __builtin_memcpy(&u, &xs, 4);
  int32_t e = (int32_t)((u >> 23) & 0xffu) - 126 - (den ? 23 : 0);
  float m = bits_to_f((u & 0x007fffffu) | 0x3f000000u);   /* [0.5, 1) */
  int lo = m < 0.707106781186547524f;
  float ef = (float)(lo ? e - 1 : e);
  float t = lo ? m + m - 1.0f : m - 1.0f;
  float z = t * t;
  float p = 7.0376836292e-2f;
  p = p * t - 1.1514610310e-1f;
  p = p * t + 1.1676998740e-1f;
  p = p * t - 1.2420140846e-1f;
  p = p * t + 1.4249322787e-1f;
  p = p * t - 1.6668057665e-1f;
  p = p * t + 2.0000714765e-1f;
  p = p * t - 2.4999993993e-1f;
  p = p * t + 3.3333331174e-1f;
  float y = p * t * z + ef * -2.12194440e-4f - 0.5f * z;
  float r = t + y + ef * 0.693359375f;
  r = x == __builtin_inff() ? x : r;
  r = x == 0.0f ? -__builtin_inff() : r;
  return x < 0.0f || x != x ? __builtin_nanf("") : r;
}

/* erf(x), |abs error| < 1.5e-7 over all floats, no division: for |x| < 1 an odd polynomial
 * (x times a degree-5 polynomial in x^2); for 1 <= |x| < 3.92, 1 - exp(q(|x|)) with q a degree-7
 * fit of log(erfc) (exp inlined: q is in [-17, 0], so no range checks); beyond, erf = +-1 to float
 * precision. Both branches are computed and selected, so loops over it vectorize. Coefficients:
 * least-squares fits on Chebyshev nodes (double precision, iteratively reweighted towards the
 * largest errors). */
AI float vt_cgm_erf(float x) {
  float z = __builtin_fabsf(x);
  z = z < 3.92f ? z : 3.92f;
  float s = z * z;
  float ps = -5.660952745666883e-4f;
  ps = ps * s + 4.924989293455065e-3f;
  ps = ps * s - 2.6717882665217612e-2f;
  ps = ps * s + 1.1280417887486817e-1f;
  ps = ps * s - 3.761235646855143e-1f;
  ps = ps * s + 1.1283791287292615f;
  ps = ps * z;
  float z2 = s, z4 = s * s;   /* q in Estrin's scheme (see vt_cgm_exp_reduced) */
  float q01 = -6.463590257997796e-4f - 1.126329325311802f * z;
  float q23 = -6.384870052835447e-1f - 1.0380616299965985e-1f * z;
  float q45 = 2.284830479364684e-2f - 3.497771776768879e-3f * z;
  float q67 = 3.2638363808770975e-4f - 1.3839420078640094e-5f * z;
  float q = (q01 + z2 * q23) + z4 * (q45 + z2 * q67);
  float n = __builtin_rintf(q * 1.44269504088896341f);   /* exp(q) = 2^n e^(q - n ln2) */
  float erfc = vt_cgm_exp_reduced(q, n) * bits_to_f((uint32_t)((int32_t)n + 127) << 23);
  float res = z < 1.0f ? ps : 1.0f - erfc;
  res = x < 0.0f ? -res : res;
  return x != x ? x : res;
}

/* p[0..VW) = exp(p[0..VW) - mx), adding the results to *sum; each lane's x - mx <= 88 (softmax
 * against a running max: at most VT_CG_ATT_RESCALE). Written with vector operations so that it
 * needs no vectorizer (whole vectors, no scalar remainder loop): vt_cgm_exp's reduction and
 * polynomial with one 2^n scale (n >= -126: the argument is clamped at -87.33, below which the
 * result is 0 instead of a denormal), no overflow checks; NaN lanes kept. Elsewhere the same
 * values as vt_cgm_exp. Pointer arguments, not vectors: the generic-x86 ABI. */
static inline AI void vt_cgm_expv(float *pv, float mx, vt_vf *sum) {
  vt_vf x;
  LDV(x, pv);
  x -= SPLATV(mx);
  vt_vf lo = SPLATV(-87.33f);
  vt_if keep = x >= lo;   /* false below the clamp and for NaN */
  vt_vf xc = __builtin_elementwise_max(x, lo);
  vt_vf n = __builtin_elementwise_floor(xc * SPLATV(1.44269504088896341f) + SPLATV(0.5f));
  vt_vf p = VT_CGM_EXP_REDUCED(xc, n);
  vt_if scale = (__builtin_convertvector(n, vt_if) + 127) << 23;
  vt_vf res = p * (vt_vf)scale;
  vt_if nan = x != x;
  res = (vt_vf)(((vt_if)res & keep) | ((vt_if)x & nan));
  STV(pv, res);
  *sum += res;
}

AI float vt_cgm_tanh(float x) {
  float z = __builtin_fabsf(x);
  float zc = z > 20.0f ? 20.0f : z;
  float e = vt_cgm_exp(2.0f * zc);
  float r = 1.0f - 2.0f / (e + 1.0f);
  float z2 = z * z;
  float small = z * (1.0f + z2 * (-0.333333333f + z2 * 0.133333333f));
  r = z < 0.02f ? small : r;
  r = x != x ? x : r;
  return x < 0.0f ? -r : r;
}

AI float vt_cgm_sigmoid(float x) { return 1.0f / (1.0f + vt_cgm_exp(-x)); }

/* ---------- row kernels (reductions along the last axis) ------------------------------------- */

/* Max (want_max) or min of a row, NaNs skipped; -inf / +inf for an empty or all-NaN row. */
static inline AI float vt_cg_row_extreme(const float *xr, int64_t cols, int want_max) {
  float m = want_max ? -__builtin_inff() : __builtin_inff();
  int64_t j = 0;
  if (cols >= VT_CG_VW) {
    vt_vf mv;
    LDV(mv, xr);
    for (j = VT_CG_VW; j + VT_CG_VW <= cols; j += VT_CG_VW) {
      vt_vf v;
      LDV(v, xr + j);
      mv = want_max ? __builtin_elementwise_max(mv, v) : __builtin_elementwise_min(mv, v);
    }
    for (int l = 0; l < VT_CG_VW; l++) m = want_max ? (mv[l] > m ? mv[l] : m) : (mv[l] < m ? mv[l] : m);
  }
  for (; j < cols; j++) m = want_max ? (xr[j] > m ? xr[j] : m) : (xr[j] < m ? xr[j] : m);
  return m;
}

/* Softmax of rows [r0, r1) of x [rows x cols] into y. */
AI void vt_cgk_softmax_rows(const float *x, float *y, int64_t cols, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float m = vt_cg_row_extreme(xr, cols, 1);
    int64_t j;
    for (j = 0; j < cols; j++) yr[j] = vt_cgm_exp(xr[j] - m);
    float inv = 1.0f / vt_cg_row_sum(yr, cols);
    for (j = 0; j < cols; j++) yr[j] *= inv;
  }
}

/* LayerNormalization of rows [r0, r1): y = (x - mean) / sqrt(var + eps) * g + b (b may be NULL
 * when has_b is 0). The GEMM's LayerNorm prologue uses the same two helpers, so a fused
 * LayerNorm gives the same values as this kernel. */
AI void vt_cgk_layernorm_rows(const float *x, const float *g, const float *b, int has_b, float *y, int64_t cols,
                              float eps, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float mean, inv;
    vt_cg_ln_stats(xr, cols, eps, &mean, &inv);
    for (int64_t j = 0; j < cols; j++) yr[j] = VT_CG_LN(xr[j], mean, inv, g[j], has_b ? b[j] : 0.0f);
  }
}

/* ReduceMean (op 0), ReduceSum (1), ReduceMax (2), ReduceMin (3) of rows [r0, r1) of x [rows x
 * cols] into y[r]. Sums: 8 float lanes, then the lanes, then the tail (the interpreter sums in
 * double: the results agree to float rounding). Max / min: a NaN anywhere in the row gives NaN,
 * as in the interpreter. cols >= 1. */
AI void vt_cgk_reduce_rows(const float *x, float *y, int64_t cols, int32_t op, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * cols;
    if (op <= 1) {
      float s = vt_cg_row_sum(xr, cols);
      y[r] = op == 0 ? s / (float)cols : s;
      continue;
    }
    int nan = 0;   /* NaNs first (an OR over the row); the max / min skips them */
    for (int64_t k = 0; k < cols; k++) nan |= xr[k] != xr[k];
    y[r] = nan ? __builtin_nanf("") : vt_cg_row_extreme(xr, cols, op == 2);
  }
}

/* ---------- layout ----------------------------------------------------------------------------- */
/* Transpose as a strided copy: output rows [r0, r1) (all output dims but the last flattened) of
 * a rank-`rank` output with dims odims, reading the input at strides istr[d] (the input stride of
 * the axis that becomes output axis d). Elements of esize bytes (1, 2, 4 or 8). */
AI void vt_cgk_transpose(const char *src, char *dst, int64_t esize, int32_t rank, const int64_t *odims,
                         const int64_t *istr, int64_t r0, int64_t r1) {
  int64_t n = odims[rank - 1], s = istr[rank - 1];
  for (int64_t r = r0; r < r1; r++) {
    int64_t rem = r, off = 0;
    for (int32_t d = rank - 2; d >= 0; d--) {
      off += (rem % odims[d]) * istr[d];
      rem /= odims[d];
    }
    if (esize == 4) {
      const uint32_t *x = (const uint32_t *)src + off;
      uint32_t *y = (uint32_t *)dst + r * n;
      for (int64_t j = 0; j < n; j++) y[j] = x[j * s];
    } else if (esize == 8) {
      const uint64_t *x = (const uint64_t *)src + off;
      uint64_t *y = (uint64_t *)dst + r * n;
      for (int64_t j = 0; j < n; j++) y[j] = x[j * s];
    } else if (esize == 2) {
      const uint16_t *x = (const uint16_t *)src + off;
      uint16_t *y = (uint16_t *)dst + r * n;
      for (int64_t j = 0; j < n; j++) y[j] = x[j * s];
    } else {
      const uint8_t *x = (const uint8_t *)src + off;
      uint8_t *y = (uint8_t *)dst + r * n;
      for (int64_t j = 0; j < n; j++) y[j] = x[j * s];
    }
  }
}

/* ---------- fused attention -------------------------------------------------------------------- */
/* dst[i * dstride + j] = src[j * sstride + i] for an 8 x 8 block: unpack, shuffle, lane swap */
static inline AI void vt_cg_transpose8(const float *src, int64_t sstride, float *dst, int64_t dstride) {
  vt_v8 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) LD8(r[i], src + i * sstride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4)
    for (int h = 0; h < 2; h++) {
      u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  for (int i = 0; i < 4; i++) {
    vt_v8 lo = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    vt_v8 hi = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    ST8(dst + i * dstride, lo);
    ST8(dst + (i + 4) * dstride, hi);
  }
}

/* ai.vtopt.Attention, one work unit = (b, h, block of at most VT_CG_ATT_QB query rows); units [u0, u1).
 * out = softmax(scale * Q.K^T + mask + rel + key_bias [+ causal]) . V computed flash-style: keys
 * in blocks of KB with a running row max and sum (online softmax), so the score matrix is never
 * materialised. Q [B,H,Nq,Dh], K [B,Hkv,Nk,Dh], V [B,Hkv,Nk,Dv], out [B,H,Nq,Dv]; head h reads
 * K/V head h / (H / Hkv). mask (float, additive) or bmask (bool, 0 = masked) at element strides
 * mstr[0..3] over [B,H,Nq,Nk] (0 = broadcast), or NULL; kbias at kb_b * b + kb_h * h + j, or NULL.
 * rel, the decomposed relative-position bias (brow and bcol, or both NULL): keys form a grid of
 * rows of kw, rel(i, j) = brow[j / kw] + bcol[j % kw] with brow/bcol at element strides
 * mstr[4..7] / mstr[8..11] over [B,H,Nq,kh|kw]; built per (query row, key block) in a KB-float
 * line, one contiguous run of bcol per key-grid row the block touches.
 * Q, K, V and out are strided views: element (b, h, n, d) of Q at b * mstr[12] + h * mstr[13] +
 * n * mstr[14] + d (K: mstr[15..17], V: mstr[18..20], out: mstr[21..23]; the last dim is
 * contiguous), so the kernel reads a packed QKV projection and writes the heads-merged
 * [B, N, H * Dv] layout in place (cg_views.c cg_plan_attn_layout).
 * Rows that see no key come out zero (as the reference kernel). Dh, Dv <= VT_CG_ATT_DMAX
 * (cg_lower.c try_attn checks), so the scratch lives on the stack. */
AI void vt_cgk_attention(const float *Q, const float *K, const float *V, float *out, const float *mask,
                         const uint8_t *bmask, const int64_t *mstr, const float *kbias, int64_t kb_b,
                         int64_t kb_h, const float *brow, const float *bcol, int64_t kw, int64_t H, int64_t Hkv,
                         int64_t Nq, int64_t Nk, int64_t Dh, int64_t Dv, float scale, int32_t causal, int64_t u0,
                         int64_t u1) {
  float Kt[VT_CG_ATT_DMAX * VT_CG_ATT_KB];   /* K block transposed: [Dh][KB], zero-padded */
  float S[VT_CG_ATT_QB * VT_CG_ATT_KB];      /* scores, then probabilities */
  float O[VT_CG_ATT_QB * VT_CG_ATT_DMAX];    /* unnormalised output rows, stride Dv */
  float rmax[VT_CG_ATT_QB], rsum[VT_CG_ATT_QB];
  float Rb[VT_CG_ATT_KB];                    /* one query row's rel over the key block */
  int64_t nqb = (Nq + VT_CG_ATT_QB - 1) / VT_CG_ATT_QB;
  /* balanced blocks (197 rows: 3 x 66, not 96 + 96 + 5), a multiple of the micro-tile height;
   * at most VT_CG_ATT_QB because that is a multiple of VT_CG_MR */
  int64_t qb = nqb ? ((Nq + nqb - 1) / nqb + VT_CG_MR - 1) / VT_CG_MR * VT_CG_MR : 0;
  int64_t group = H / Hkv;
  int64_t dvn = Dv / VT_CG_NR * VT_CG_NR;   /* V columns in whole panels (read in place) */
  for (int64_t u = u0; u < u1; u++) {
    int64_t bh = u / nqb, i0 = (u % nqb) * qb;
    int64_t b = bh / H, h = bh % H, hk = h / group;
    if (i0 >= Nq) continue;
    int64_t m = Nq - i0 < qb ? Nq - i0 : qb;
    int64_t qn = mstr[14], kn = mstr[17], vn = mstr[20], on = mstr[23];   /* row strides */
    const float *q = Q + b * mstr[12] + h * mstr[13] + i0 * qn;
    const float *k = K + b * mstr[15] + hk * mstr[16];
    const float *v = V + b * mstr[18] + hk * mstr[19];
    float *o = out + b * mstr[21] + h * mstr[22] + i0 * on;
    const float *kb = kbias ? kbias + b * kb_b + h * kb_h : 0;
    for (int64_t r = 0; r < m; r++) {
      rmax[r] = -__builtin_inff();
      rsum[r] = 0.0f;
      for (int64_t d = 0; d < Dv; d++) O[r * Dv + d] = 0.0f;
    }
    for (int64_t j0 = 0; j0 < Nk; j0 += VT_CG_ATT_KB) {
      int64_t kc = Nk - j0 < VT_CG_ATT_KB ? Nk - j0 : VT_CG_ATT_KB;
      if (causal && j0 > i0 + m - 1 + (Nk - Nq)) break;   /* no row of the block sees these keys */
      int64_t kc_8 = kc / 8 * 8, dh8 = Dh / 8 * 8;
      for (int64_t jj = 0; jj < kc_8; jj += 8)
        for (int64_t d = 0; d < dh8; d += 8) vt_cg_transpose8(k + (j0 + jj) * kn + d, kn, Kt + d * VT_CG_ATT_KB + jj, VT_CG_ATT_KB);
      for (int64_t d = 0; d < Dh; d++) {
        for (int64_t jj = d < dh8 ? kc_8 : 0; jj < kc; jj++) Kt[d * VT_CG_ATT_KB + jj] = k[(j0 + jj) * kn + d];
        for (int64_t jj = kc; jj < VT_CG_ATT_KB; jj++) Kt[d * VT_CG_ATT_KB + jj] = 0.0f;
      }
      int64_t kcp = (kc + VT_CG_NR - 1) / VT_CG_NR * VT_CG_NR;
      for (int64_t r = 0; r < m; r += VT_CG_MR) {
        int64_t mr = m - r < VT_CG_MR ? m - r : VT_CG_MR;
        for (int64_t p = 0; p < kcp; p += VT_CG_NR)
          vt_cg_micro(Dh, q + r * qn, qn, 1, Kt + p, VT_CG_ATT_KB, S + r * VT_CG_ATT_KB + p, VT_CG_ATT_KB, mr, VT_CG_NR, 0);
      }
      int64_t kcv = (kc + VT_CG_VW - 1) / VT_CG_VW * VT_CG_VW;   /* S rows padded with -inf to whole vectors */
      int64_t ga0 = brow ? j0 / kw : 0, gc0 = brow ? j0 - ga0 * kw : 0;   /* key grid cell of key j0 */
      for (int64_t r = 0; r < m; r++) {
        float *s = S + r * VT_CG_ATT_KB;
        int64_t i = i0 + r;
        int64_t lastj = causal ? i + (Nk - Nq) - j0 : kc - 1;   /* last visible key in the block */
        if (lastj > kc - 1) lastj = kc - 1;
        int64_t moff = b * mstr[0] + h * mstr[1] + i * mstr[2] + j0 * mstr[3];
        if (brow) {   /* Rb[jj] = brow[a] + bcol[c] for key j0 + jj = a * kw + c, by runs of one a */
          const float *br = brow + b * mstr[4] + h * mstr[5] + i * mstr[6];
          const float *bc = bcol + b * mstr[8] + h * mstr[9] + i * mstr[10];
          int64_t a = ga0, c0 = gc0;
          for (int64_t jj = 0; jj < kc; a++) {
            int64_t len = kw - c0 < kc - jj ? kw - c0 : kc - jj;
            float ra = br[a * mstr[7]];
            for (int64_t t = 0; t < len; t++) Rb[jj + t] = ra + bc[(c0 + t) * mstr[11]];
            jj += len;
            c0 = 0;
          }
        }
        vt_vf mv = SPLATV(-__builtin_inff());   /* the block's max */
        if (!mask && !bmask && !brow && !kb && !causal) {   /* plain logits: one vector pass */
          for (int64_t jj = 0; jj < kcv; jj += VT_CG_VW) {
            vt_vf v;
            LDV(v, s + jj);
            vt_if in = (IOTAV + (int32_t)jj) < (int32_t)kc;
            v = (vt_vf)(((vt_if)(v * scale) & in) | ((vt_if)SPLATV(-__builtin_inff()) & ~in));
            STV(s + jj, v);
            mv = __builtin_elementwise_max(mv, v);
          }
        } else {
          /* no reductions in this loop, so it vectorizes without reassociation */
          for (int64_t jj = 0; jj < kc; jj++) {
            float x = s[jj] * scale;
            if (mask) x += mask[moff + jj * mstr[3]];
            if (bmask) x = bmask[moff + jj * mstr[3]] ? x : -__builtin_inff();
            if (brow) x += Rb[jj];
            if (kb) x += kb[j0 + jj];
            s[jj] = jj > lastj ? -__builtin_inff() : x;
          }
          for (int64_t jj = kc; jj < kcv; jj++) s[jj] = -__builtin_inff();
          for (int64_t jj = 0; jj < kcv; jj += VT_CG_VW) {
            vt_vf v;
            LDV(v, s + jj);
            mv = __builtin_elementwise_max(mv, v);
          }
        }
        float mx = mv[0];
        for (int k = 1; k < VT_CG_VW; k++) mx = mv[k] > mx ? mv[k] : mx;
        if (mx == -__builtin_inff()) {   /* no visible key in this block: nothing to add */
          for (int64_t jj = 0; jj < kcv; jj++) s[jj] = 0.0f;
          continue;
        }
        /* lazy rescaling: the running max moves (and O and the sum are rescaled) only when the
         * block's max exceeds it by more than VT_CG_ATT_RESCALE, so probabilities stay <= e^8
         * and most blocks after the first need no rescale at all */
        if (!(mx <= rmax[r] + VT_CG_ATT_RESCALE)) {
          if (rmax[r] != -__builtin_inff()) {   /* rows with no key yet hold zeros: nothing to scale */
            float corr = vt_cgm_exp(rmax[r] - mx);
            rsum[r] *= corr;
            for (int64_t d = 0; d < Dv; d++) O[r * Dv + d] *= corr;
          }
          rmax[r] = mx;
        }
        vt_vf sv = SPLATV(0.0f);
        for (int64_t jj = 0; jj < kcv; jj += VT_CG_VW) vt_cgm_expv(s + jj, rmax[r], &sv);
        rsum[r] += HSUMV(sv);
      }
      for (int64_t r = 0; r < m; r += VT_CG_MR) {
        int64_t mr = m - r < VT_CG_MR ? m - r : VT_CG_MR;
        for (int64_t d0 = 0; d0 < dvn; d0 += VT_CG_NR)
          vt_cg_micro(kc, S + r * VT_CG_ATT_KB, VT_CG_ATT_KB, 1, v + j0 * vn + d0, vn, O + r * Dv + d0, Dv, mr, VT_CG_NR, 1);
        for (int64_t rr = r; rr < r + mr; rr++)
          for (int64_t d = dvn; d < Dv; d++) {
            float acc = O[rr * Dv + d];
            for (int64_t jj = 0; jj < kc; jj++) acc += S[rr * VT_CG_ATT_KB + jj] * v[(j0 + jj) * vn + d];
            O[rr * Dv + d] = acc;
          }
      }
    }
    for (int64_t r = 0; r < m; r++) {
      float inv = rsum[r] > 0.0f ? 1.0f / rsum[r] : 0.0f;
      for (int64_t d = 0; d < Dv; d++) o[r * on + d] = O[r * Dv + d] * inv;
    }
  }
}

/* ---------- Eventful token gate (the hot loops of runtime/kernels_eventful.c's TokenGate) ---- */
/* Error norms of rows [i0, i1) of x against the reference u ([n, d] each): norm[i] = ||x_i - u_i||
 * (NaN -> +inf: most changed); with u2, u2[i] = ||u_i||^2 from the same loads. Same summation
 * order as the runtime's kernel (8 lane sums, the tail, then the lanes in order), so compiled and
 * interpreted sessions select the same tokens. */
AI void vt_cgk_gate_norm(const float *x, const float *u, float *norm, float *u2, int64_t d, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) {
    const float *xr = x + i * d, *ur = u + i * d;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, uacc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
      for (int l = 0; l < 8; l++) {
        float e = xr[c + l] - ur[c + l];
        acc[l] += e * e;
        uacc[l] += ur[c + l] * ur[c + l];
      }
    float s = 0.0f, su = 0.0f;
    for (; c < d; c++) {
      s += (xr[c] - ur[c]) * (xr[c] - ur[c]);
      su += ur[c] * ur[c];
    }
    for (int l = 0; l < 8; l++) {
      s += acc[l];
      su += uacc[l];
    }
    if (u2) u2[i] = su;
    float v = __builtin_sqrtf(s);
    norm[i] = v == v ? v : __builtin_inff();
  }
}

/* The m (1 <= m < n) rows with the largest norms (ties: lower index first), ascending, into
 * order. Norms are >= 0 or +inf, so their IEEE bits (sign cleared) order like the values: a radix
 * select, one byte per pass from the top, finds the m-th largest key (4 passes of n, no worst
 * case), then one pass in index order takes the keys above it and the first ties. */
static inline AI uint32_t vt_cg_norm_key(const float *norm, int64_t i) {
  uint32_t k;
  __builtin_memcpy(&k, norm + i, 4);
  return k & 0x7fffffffu;
}

AI void vt_cgk_gate_select(const float *norm, int64_t *order, int64_t n, int64_t m) {
  uint32_t prefix = 0, pmask = 0;
  int64_t need = m;   /* keys still to take among those matching prefix, from the top */
  for (int shift = 24; shift >= 0; shift -= 8) {
    int64_t hist[256];
    for (int b = 0; b < 256; b++) hist[b] = 0;
    for (int64_t i = 0; i < n; i++) {
      uint32_t k = vt_cg_norm_key(norm, i);
      if ((k & pmask) == prefix) hist[(k >> shift) & 255u]++;
    }
    int b = 255;
    while (b > 0 && hist[b] < need) need -= hist[b--];
    prefix |= (uint32_t)b << shift;
    pmask |= 255u << shift;
  }
  int64_t j = 0, ties = need;
  for (int64_t i = 0; i < n && j < m; i++) {
    uint32_t k = vt_cg_norm_key(norm, i);
    if (k > prefix || (k == prefix && ties-- > 0)) order[j++] = i;
  }
}

/* rows copies of `bytes` bytes: row r from src + r * sstride to dst + r * dstride (byte strides;
 * Split, Concat and Gather slices as [outer, axis, inner] views). */
AI void vt_cgk_copy_rows(char *dst, const char *src, int64_t rows, int64_t bytes, int64_t dstride, int64_t sstride) {
  for (int64_t r = 0; r < rows; r++) __builtin_memcpy(dst + r * dstride, src + r * sstride, (unsigned long)bytes);
}

/* Conv 2-D (group 1) as im2col + GEMM with B = the weights packed at compile time ([K =
 * C*kh*kw] x Cout panels, see the top). Work unit = a block of rb output pixels (rows of the
 * im2col matrix over all batches, M = Nb*OH*OW); units [u0, u1). A (rb x K) and the tile of C
 * (rb x Cout) live on the stack: rb * (K + Cout) <= VT_CG_CONV_SCRATCH (cg_lower.c try_conv picks rb).
 * y [Nb, Cout, OH, OW] = C^T + bias (bias may be NULL). */
AI void vt_cgk_conv2d(const float *x, const float *Bp, const float *bias, float *y, int64_t M, int64_t C,
                      int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                      int64_t dh, int64_t dw, int64_t ph, int64_t pw, int64_t Cout, int64_t rb, int64_t u0,
                      int64_t u1) {
  float scratch[VT_CG_CONV_SCRATCH];
  int64_t K = C * kh * kw, P = OH * OW;
  float *A = scratch, *T = scratch + rb * K;
  for (int64_t u = u0; u < u1; u++) {
    int64_t m0 = u * rb, rows = M - m0 < rb ? M - m0 : rb;
    for (int64_t r = 0; r < rows; r++) {
      int64_t m = m0 + r, nb = m / P, p = m % P, oh = p / OW, ow = p % OW;
      float *a = A + r * K;
      const float *xb = x + nb * C * H * W;
      for (int64_t ci = 0; ci < C; ci++)
        for (int64_t i = 0; i < kh; i++) {
          int64_t ih = oh * sh - ph + i * dh;
          float *ar = a + (ci * kh + i) * kw;
          if (ih < 0 || ih >= H) {
            for (int64_t j = 0; j < kw; j++) ar[j] = 0.0f;
            continue;
          }
          const float *xr = xb + (ci * H + ih) * W;
          for (int64_t j = 0; j < kw; j++) {
            int64_t iw = ow * sw - pw + j * dw;
            ar[j] = iw >= 0 && iw < W ? xr[iw] : 0.0f;
          }
        }
    }
    vt_cgk_gemm(A, K, Bp, T, Cout, rows, Cout, K, 0, vt_cg_gemm_units_p(rows, Cout, VT_CG_MC, VT_CG_NR), 0, 0, 0, 0, 0, 0.0f, 0);
    for (int64_t r = 0; r < rows; r++) {
      int64_t m = m0 + r, nb = m / P, p = m % P;
      float *yb = y + nb * Cout * P + p;
      for (int64_t co = 0; co < Cout; co++) yb[co * P] = T[r * Cout + co] + (bias ? bias[co] : 0.0f);
    }
  }
}

/* the convolution family (direct / 1x1 Conv, pools): a separate file, the same translation unit */
#include "cg_kernels_conv.c"

/* cg_kernels.c — kernel bodies of the LLVM code generator, compiled to bitcode at build time
 * (clang-19 -emit-llvm, no target CPU, no LLVM passes) and linked into every model module.
 * The generated glue calls these with constant sizes and constant pointers to pre-packed weights;
 * after inlining (always_inline) LLVM specialises them for the model and the host CPU.
 *
 * Invariants shared with codegen.c (keep in sync, see cg_layout.h):
 *  - packed B: panels of VT_CG_NR columns; panel p holds K rows of VT_CG_NR floats
 *    (B[k][p*NR + j], zero past N), panels stored one after another (K*NR floats each).
 *  - the epilogue callback receives a tile of C (row-major, stride ldc) that holds the final
 *    accumulated A*B values for rows [m0, m0+mr) and columns [n0, n0+nr).
 * Everything here is branch-light straight C so the loop vectorizer can widen the math helpers. */
#include <stdint.h>

#include "../cg_layout.h"

#define AI __attribute__((always_inline))

typedef float vt_v8 __attribute__((vector_size(32)));
typedef void (*vt_cg_epi_fn)(void **bufs, float *c, int64_t ldc, int64_t m0, int64_t n0, int64_t mr,
                             int64_t nr);

/* unaligned vector load/store (macros: vector arguments would change the generic-x86 ABI) */
#define LD8(dst, p) __builtin_memcpy(&(dst), (p), sizeof(vt_v8))
#define ST8(p, v) __builtin_memcpy((p), &(v), sizeof(vt_v8))

/* C[mr x nr] (+)= A[mr x kc] * Bp[kc x NR]. Rows past mr read row mr-1 of A (valid memory) and
 * their results are dropped, so the inner loop has no row guards. */
static inline AI void vt_cg_micro(int64_t kc, const float *A, int64_t lda, const float *Bp, float *C,
                                  int64_t ldc, int64_t mr, int64_t nr, int accumulate) {
  const float *a[VT_CG_MR];
  for (int i = 0; i < VT_CG_MR; i++) a[i] = A + (i < mr ? i : mr - 1) * lda;
  vt_v8 c0[VT_CG_MR], c1[VT_CG_MR];
  for (int i = 0; i < VT_CG_MR; i++) {
    c0[i] = (vt_v8){0, 0, 0, 0, 0, 0, 0, 0};
    c1[i] = c0[i];
  }
  for (int64_t k = 0; k < kc; k++) {
    vt_v8 b0, b1;
    LD8(b0, Bp + k * VT_CG_NR);
    LD8(b1, Bp + k * VT_CG_NR + 8);
    for (int i = 0; i < VT_CG_MR; i++) {
      float s = a[i][k];
      vt_v8 av = {s, s, s, s, s, s, s, s};
      c0[i] += av * b0;
      c1[i] += av * b1;
    }
  }
  if (mr == VT_CG_MR && nr == VT_CG_NR) {
    for (int i = 0; i < VT_CG_MR; i++) {
      float *cp = C + i * ldc;
      if (accumulate) {
        vt_v8 o0, o1;
        LD8(o0, cp);
        LD8(o1, cp + 8);
        c0[i] += o0;
        c1[i] += o1;
      }
      ST8(cp, c0[i]);
      ST8(cp + 8, c1[i]);
    }
  } else {
    float tmp[VT_CG_MR][VT_CG_NR];
    for (int i = 0; i < VT_CG_MR; i++) {
      ST8(tmp[i], c0[i]);
      ST8(tmp[i] + 8, c1[i]);
    }
    for (int64_t i = 0; i < mr; i++)
      for (int64_t j = 0; j < nr; j++) C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.0f) + tmp[i][j];
  }
}

/* Rows [mb0*MR, min(mb1*MR, M)) of C = A * B with B packed (see top), then the epilogue on every
 * finished tile. K == 0 gives zeros. */
AI void vt_cgk_gemm(const float *A, int64_t lda, const float *Bp, float *C, int64_t ldc, int64_t M,
                    int64_t N, int64_t K, int64_t mb0, int64_t mb1, void **bufs, vt_cg_epi_fn epi) {
  int64_t m_lo = mb0 * VT_CG_MR, m_hi = mb1 * VT_CG_MR;
  if (m_hi > M) m_hi = M;
  int64_t npan = (N + VT_CG_NR - 1) / VT_CG_NR;
  if (K == 0) {
    for (int64_t m = m_lo; m < m_hi; m++)
      for (int64_t n = 0; n < N; n++) C[m * ldc + n] = 0.0f;
    if (epi)
      for (int64_t m = m_lo; m < m_hi; m += VT_CG_MR)
        for (int64_t p = 0; p < npan; p++) {
          int64_t mr = m_hi - m < VT_CG_MR ? m_hi - m : VT_CG_MR;
          int64_t nr = N - p * VT_CG_NR < VT_CG_NR ? N - p * VT_CG_NR : VT_CG_NR;
          epi(bufs, C + m * ldc + p * VT_CG_NR, ldc, m, p * VT_CG_NR, mr, nr);
        }
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += VT_CG_KC) {
    int64_t kc = K - k0 < VT_CG_KC ? K - k0 : VT_CG_KC;
    int last = k0 + kc >= K;
    for (int64_t p = 0; p < npan; p++) {
      int64_t n0 = p * VT_CG_NR;
      int64_t nr = N - n0 < VT_CG_NR ? N - n0 : VT_CG_NR;
      const float *bp = Bp + p * K * VT_CG_NR + k0 * VT_CG_NR;
      for (int64_t m = m_lo; m < m_hi; m += VT_CG_MR) {
        int64_t mr = m_hi - m < VT_CG_MR ? m_hi - m : VT_CG_MR;
        vt_cg_micro(kc, A + m * lda + k0, lda, bp, C + m * ldc + n0, ldc, mr, nr, k0 > 0);
        if (last && epi) epi(bufs, C + m * ldc + n0, ldc, m, n0, mr, nr);
      }
    }
  }
}

/* ---------- scalar math, written branch-free so loops that call them vectorize ---------------- */
static inline float bits_to_f(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

/* exp(x): range reduction by ln2 and a degree-6 polynomial (rel. error ~2 ulp). The scale 2^n
 * is applied in two halves so results near FLT_MAX and in the denormal range come out right. */
AI float vt_cgm_exp(float x) {
  float xc = x > 88.8f ? 88.8f : x;
  xc = xc < -104.0f ? -104.0f : xc;
  float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t ni = (int32_t)n;
  int32_t n1 = ni / 2, n2 = ni - n1;
  float res = p * bits_to_f((uint32_t)(n1 + 127) << 23) * bits_to_f((uint32_t)(n2 + 127) << 23);
  res = x > 88.72283935546875f ? __builtin_inff() : res;
  res = x < -103.972084045410f ? 0.0f : res;
  return x != x ? x : res;
}

/* erf(x) = 1 - erfc(x); erfc by the Chebyshev fit of Numerical Recipes (|rel err| < 1.2e-7). */
AI float vt_cgm_erf(float x) {
  float z = __builtin_fabsf(x);
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float erfc = t * vt_cgm_exp(-z * z + p);
  float r = 1.0f - erfc;
  /* near 0 the subtraction loses digits: use the Taylor series there */
  float z2 = z * z;
  float small = z * (1.12837916709551f + z2 * (-0.37612638903183f + z2 * 0.11283791670955f));
  r = z < 0.05f ? small : r;
  return x < 0.0f ? -r : r;
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
#define HSUM8(v) ((((v)[0] + (v)[1]) + ((v)[2] + (v)[3])) + (((v)[4] + (v)[5]) + ((v)[6] + (v)[7])))

/* Softmax of rows [r0, r1) of x [rows x cols] into y. */
AI void vt_cgk_softmax_rows(const float *x, float *y, int64_t cols, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float m = -__builtin_inff();
    int64_t j = 0;
    if (cols >= 8) {
      vt_v8 mv;
      LD8(mv, xr);
      for (j = 8; j + 8 <= cols; j += 8) {
        vt_v8 v;
        LD8(v, xr + j);
        mv = __builtin_elementwise_max(mv, v);
      }
      for (int k = 0; k < 8; k++) m = mv[k] > m ? mv[k] : m;
    }
    for (; j < cols; j++) m = xr[j] > m ? xr[j] : m;
    for (j = 0; j < cols; j++) yr[j] = vt_cgm_exp(xr[j] - m);
    vt_v8 sv = {0, 0, 0, 0, 0, 0, 0, 0};
    for (j = 0; j + 8 <= cols; j += 8) {
      vt_v8 v;
      LD8(v, yr + j);
      sv += v;
    }
    float s = HSUM8(sv);
    for (; j < cols; j++) s += yr[j];
    float inv = 1.0f / s;
    for (j = 0; j < cols; j++) yr[j] *= inv;
  }
}

/* LayerNormalization of rows [r0, r1): y = (x - mean) / sqrt(var + eps) * g + b (b may be NULL
 * when has_b is 0). */
AI void vt_cgk_layernorm_rows(const float *x, const float *g, const float *b, int has_b, float *y, int64_t cols,
                              float eps, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    vt_v8 sv = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      vt_v8 v;
      LD8(v, xr + j);
      sv += v;
    }
    float s = HSUM8(sv);
    for (; j < cols; j++) s += xr[j];
    float mean = cols ? s / (float)cols : 0.0f;
    vt_v8 qv = {0, 0, 0, 0, 0, 0, 0, 0};
    vt_v8 mv = {mean, mean, mean, mean, mean, mean, mean, mean};
    for (j = 0; j + 8 <= cols; j += 8) {
      vt_v8 v;
      LD8(v, xr + j);
      v -= mv;
      qv += v * v;
    }
    float q = HSUM8(qv);
    for (; j < cols; j++) q += (xr[j] - mean) * (xr[j] - mean);
    float inv = 1.0f / __builtin_sqrtf((cols ? q / (float)cols : 0.0f) + eps);
    for (j = 0; j < cols; j++) yr[j] = (xr[j] - mean) * inv * g[j] + (has_b ? b[j] : 0.0f);
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

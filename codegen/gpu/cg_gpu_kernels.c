/* cg_gpu_kernels.c — device bodies of the GPU path, compiled by clang-19 for nvptx64-nvidia-cuda
 * to bitcode at build time (codegen/CMakeLists.txt) and linked into every GPU module by
 * cg_emit_nvptx.c, which emits the kernels (entry points) that call these bodies with the group's
 * constants; after inlining and constant propagation each kernel is specialised to its group.
 * Owns: the math helpers of elementwise chains (no libdevice: approximations accurate to a few
 * ulp), the row kernels (softmax, LayerNorm, reductions: one row per thread block), strided
 * copies (Transpose) and byte copies, and the shared-memory tiled float32 GEMM with a fused
 * epilogue callback. Plain C: thread indices through the NVVM sreg builtins, block barriers
 * through __nvvm_barrier0, shared memory in address space 3. */
#include <stdint.h>

#define SHARED __attribute__((address_space(3)))
#define INL __attribute__((always_inline))

/* the block barrier: the NVVM intrinsic by its LLVM name (__syncthreads is CUDA-only) */
void vt_gk_barrier(void) __asm("llvm.nvvm.barrier0");

static inline INL int tid_x(void) { return __nvvm_read_ptx_sreg_tid_x(); }
static inline INL int ntid_x(void) { return __nvvm_read_ptx_sreg_ntid_x(); }
static inline INL int ctaid_x(void) { return __nvvm_read_ptx_sreg_ctaid_x(); }
static inline INL int ctaid_y(void) { return __nvvm_read_ptx_sreg_ctaid_y(); }
static inline INL int nctaid_x(void) { return __nvvm_read_ptx_sreg_nctaid_x(); }

/* ---------- math (float32) ------------------------------------------------------------------ */
INL float vt_gk_exp(float x) {
  if (x < -104.0f) return 0.0f;
  if (x > 88.7f) return __builtin_inff();
  return __nvvm_ex2_approx_f(x * 1.4426950408889634f);
}
INL float vt_gk_log(float x) { return __nvvm_lg2_approx_f(x) * 0.6931471805599453f; }
INL float vt_gk_sqrt(float x) { return __nvvm_sqrt_rn_f(x); }
INL float vt_gk_fabs(float x) { return __builtin_fabsf(x); }
INL float vt_gk_tanh(float x) {
  float a = __builtin_fabsf(x);
  float r;
  if (a < 0.004f) r = a;
  else if (a > 9.0f) r = 1.0f;
  else {
    float e = vt_gk_exp(-2.0f * a);
    r = (1.0f - e) / (1.0f + e);
  }
  return x < 0 ? -r : r;
}
INL float vt_gk_sigmoid(float x) { return 1.0f / (1.0f + vt_gk_exp(-x)); }
/* erf: |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit, evaluated in float) */
INL float vt_gk_erf(float x) {
  float z = __builtin_fabsf(x);
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = -z * z - 1.26551223f +
            t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f + t * (0.27886807f +
            t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  float r = 1.0f - t * vt_gk_exp(p);
  return x < 0 ? -r : r;
}

/* ---------- row kernels: row ctaid.x (grid-stride over rows), threads over the columns ------ */
#define VT_GK_THREADS 256
static SHARED float red_buf[VT_GK_THREADS / 32];

/* block-wide reduction (op 0 sum, 1 max, 2 min); every thread gets the result */
static inline INL float block_reduce(float v, int op) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __nvvm_shfl_sync_bfly_f32(0xffffffffu, v, o, 31);
    v = op == 0 ? v + w : op == 1 ? (w > v ? w : v) : (w < v ? w : v);
  }
  int lane = tid_x() & 31, warp = tid_x() >> 5, nw = ntid_x() >> 5;
  vt_gk_barrier();
  if (lane == 0) red_buf[warp] = v;
  vt_gk_barrier();
  v = red_buf[0];
  for (int i = 1; i < nw; i++) {
    float w = red_buf[i];
    v = op == 0 ? v + w : op == 1 ? (w > v ? w : v) : (w < v ? w : v);
  }
  return v;
}

/* op: 0 softmax, 1 LayerNorm (g, b: scale, bias or null), 2 mean, 3 sum, 4 max, 5 min (the
 * ROW_* order of cg_internal.h). Launch: blockDim.x = VT_GK_THREADS, any grid. */
INL void vt_gk_rows(int op, const float *x, const float *g, const float *b, float *y, int64_t rows, int64_t cols,
                    float eps) {
  for (int64_t r = ctaid_x(); r < rows; r += nctaid_x()) {
    const float *xr = x + r * cols;
    int t = tid_x(), nt = ntid_x();
    if (op == 0) {
      float m = -__builtin_inff();
      for (int64_t j = t; j < cols; j += nt) m = xr[j] > m ? xr[j] : m;
      m = block_reduce(m, 1);
      float s = 0;
      for (int64_t j = t; j < cols; j += nt) s += vt_gk_exp(xr[j] - m);
      s = block_reduce(s, 0);
      float inv = 1.0f / s;
      for (int64_t j = t; j < cols; j += nt) y[r * cols + j] = vt_gk_exp(xr[j] - m) * inv;
    } else if (op == 1) {
      float s = 0;
      for (int64_t j = t; j < cols; j += nt) s += xr[j];
      float mean = block_reduce(s, 0) / (float)cols;
      float q = 0;
      for (int64_t j = t; j < cols; j += nt) {
        float d = xr[j] - mean;
        q += d * d;
      }
      float rstd = 1.0f / vt_gk_sqrt(block_reduce(q, 0) / (float)cols + eps);
      for (int64_t j = t; j < cols; j += nt) {
        float v = (xr[j] - mean) * rstd;
        if (g) v *= g[j];
        if (b) v += b[j];
        y[r * cols + j] = v;
      }
    } else {
      int rop = op == 4 ? 1 : op == 5 ? 2 : 0;
      float s = rop == 1 ? -__builtin_inff() : rop == 2 ? __builtin_inff() : 0.0f;
      for (int64_t j = t; j < cols; j += nt) {
        float v = xr[j];
        s = rop == 0 ? s + v : rop == 1 ? (v > s ? v : s) : (v < s ? v : s);
      }
      s = block_reduce(s, rop);
      if (t == 0) y[r] = op == 2 ? s / (float)cols : s;
    }
    vt_gk_barrier();   /* red_buf is reused by the next row */
  }
}

/* ---------- copies --------------------------------------------------------------------------- */
/* Strided copy (Transpose): output element i (row-major over odims) <- input at sum(idx_d * istr_d)
 * (elements). One element per thread, grid-stride. */
INL void vt_gk_perm(const char *src, char *dst, int64_t esize, int rank, const int64_t *odims, const int64_t *istr,
                    int64_t total) {
  int64_t step = (int64_t)ntid_x() * nctaid_x();
  for (int64_t i = (int64_t)ctaid_x() * ntid_x() + tid_x(); i < total; i += step) {
    int64_t rem = i, off = 0;
    for (int d = rank - 1; d >= 0; d--) {
      int64_t q = rem % odims[d];
      rem /= odims[d];
      off += q * istr[d];
    }
    if (esize == 4) ((int32_t *)dst)[i] = ((const int32_t *)src)[off];
    else if (esize == 8) ((int64_t *)dst)[i] = ((const int64_t *)src)[off];
    else for (int64_t k = 0; k < esize; k++) dst[i * esize + k] = src[off * esize + k];
  }
}

/* Byte copy of n bytes (words where both pointers and n allow). */
INL void vt_gk_copy(const char *src, char *dst, int64_t n) {
  int64_t step = (int64_t)ntid_x() * nctaid_x();
  int64_t i0 = (int64_t)ctaid_x() * ntid_x() + tid_x();
  if (((uintptr_t)src | (uintptr_t)dst | (uintptr_t)n) % 4 == 0) {
    for (int64_t i = i0; i < n / 4; i += step) ((int32_t *)dst)[i] = ((const int32_t *)src)[i];
  } else {
    for (int64_t i = i0; i < n; i += step) dst[i] = src[i];
  }
}

/* ---------- GEMM: C[M, N] = A[M, K] B[K, N] (row-major, float32), then the epilogue --------------
 * Tile 64 x 64 per block of 256 threads (16 x 16), each thread a 4 x 4 micro-tile, K in steps of
 * 16 through shared memory. epi(tbl, acc, m, n) stores the element (the fused epilogue; with
 * epi == 0 the kernel stores acc to C). Grid: (ceil(N / 64), ceil(M / 64)). */
#define GT 64
#define GK 16
typedef void (*vt_gk_epi_fn)(void *tbl, float acc, int64_t m, int64_t n);
static SHARED float As[GK][GT];
static SHARED float Bs[GK][GT];

INL void vt_gk_gemm(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, vt_gk_epi_fn epi,
                    void *tbl) {
  int t = tid_x(), tx = t % 16, ty = t / 16;
  int64_t m0 = (int64_t)ctaid_y() * GT, n0 = (int64_t)ctaid_x() * GT;
  float acc[4][4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < K; k0 += GK) {
    for (int l = t; l < GT * GK; l += 256) {   /* A tile transposed into As[k][m], B tile into Bs[k][n] */
      int am = l / GK, ak = l % GK;
      int64_t gm = m0 + am, gk = k0 + ak;
      As[ak][am] = gm < M && gk < K ? A[gm * K + gk] : 0.0f;
      int bk = l / GT, bn = l % GT;
      int64_t gk2 = k0 + bk, gn = n0 + bn;
      Bs[bk][bn] = gk2 < K && gn < N ? B[gk2 * N + gn] : 0.0f;
    }
    vt_gk_barrier();
    for (int kk = 0; kk < GK; kk++) {
      float a[4], bv[4];
      for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = __builtin_fmaf(a[i], bv[j], acc[i][j]);
    }
    vt_gk_barrier();
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) {
        if (epi) epi(tbl, acc[i][j], m, n);
        else C[m * N + n] = acc[i][j];
      }
    }
}

/* ---------- row-strided byte copies (Concat / Split / Slice blocks) --------------------------- */
/* dst + r * dstride <- src + r * sstride, `bytes` per row, rows r in [0, rows); grid-stride over
 * the bytes (words where every offset allows). */
INL void vt_gk_copy_rows(char *dst, const char *src, int64_t rows, int64_t bytes, int64_t dstride, int64_t sstride) {
  int64_t step = (int64_t)ntid_x() * nctaid_x();
  int64_t i0 = (int64_t)ctaid_x() * ntid_x() + tid_x();
  if (((uintptr_t)src | (uintptr_t)dst | (uint64_t)bytes | (uint64_t)dstride | (uint64_t)sstride) % 4 == 0) {
    int64_t w = bytes / 4;
    for (int64_t i = i0; i < rows * w; i += step) {
      int64_t r = i / w, k = i % w;
      ((int32_t *)(dst + r * dstride))[k] = ((const int32_t *)(src + r * sstride))[k];
    }
  } else {
    for (int64_t i = i0; i < rows * bytes; i += step) {
      int64_t r = i / bytes, k = i % bytes;
      dst[r * dstride + k] = src[r * sstride + k];
    }
  }
}

/* ---------- Conv (2-D, NCHW, group 1): one output element per thread, grid-stride ------------ */
/* y[n, o, oh, ow] = bias[o] + sum over c, i, j of x[n, c, oh * sh - ph + i * dh, ow * sw - pw + j * dw]
 * * w[o, c, i, j] (zero padding). */
INL void vt_gk_conv(const float *x, const float *w, const float *bias, float *y, int64_t Nb, int64_t Cout, int64_t C,
                    int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                    int64_t dh, int64_t dw, int64_t ph, int64_t pw) {
  int64_t total = Nb * Cout * OH * OW, step = (int64_t)ntid_x() * nctaid_x();
  for (int64_t e = (int64_t)ctaid_x() * ntid_x() + tid_x(); e < total; e += step) {
    int64_t ow = e % OW, oh = (e / OW) % OH, o = (e / (OW * OH)) % Cout, n = e / (OW * OH * Cout);
    float acc = bias ? bias[o] : 0.0f;
    for (int64_t c = 0; c < C; c++) {
      const float *xc = x + (n * C + c) * H * W;
      const float *wc = w + (o * C + c) * kh * kw;
      for (int64_t i = 0; i < kh; i++) {
        int64_t ih = oh * sh - ph + i * dh;
        if (ih < 0 || ih >= H) continue;
        for (int64_t j = 0; j < kw; j++) {
          int64_t iw = ow * sw - pw + j * dw;
          if (iw >= 0 && iw < W) acc = __builtin_fmaf(xc[ih * W + iw], wc[i * kw + j], acc);
        }
      }
    }
    y[e] = acc;
  }
}

/* ---------- fused attention (ai.vtopt.Attention): one warp per query row, online softmax ----------
 * The CPU kernel's contract (codegen/kernels/cg_kernels.c vt_cgk_attention): out = softmax(scale *
 * Q.K^T + mask + rel + key_bias [+ causal]) . V over strided Q, K, V, out views (mstr[12..23]),
 * masks at mstr[0..3], decomposed rel bias at mstr[4..11], GQA (head h reads K/V head h / (H /
 * Hkv)); rows that see no key come out zero. Each warp walks the keys once, keeping the running
 * max, sum and its share of the output row (lane d, d + 32, ...: Dh, Dv <= 256) in registers. */
#define ATT_DL 8   /* dims per lane: 256 / 32 */
INL void vt_gk_attention(const float *Q, const float *K, const float *V, float *out, const float *mask,
                         const unsigned char *bmask, const int64_t *mstr, const float *kbias, int64_t kb_b, int64_t kb_h,
                         const float *brow, const float *bcol, int64_t kw, int64_t B, int64_t H, int64_t Hkv, int64_t Nq,
                         int64_t Nk, int64_t Dh, int64_t Dv, float scale, int causal) {
  int lane = tid_x() & 31;
  int64_t warps = (int64_t)(ntid_x() >> 5) * nctaid_x();
  int64_t group = H / Hkv;
  for (int64_t row = (int64_t)ctaid_x() * (ntid_x() >> 5) + (tid_x() >> 5); row < B * H * Nq; row += warps) {
    int64_t i = row % Nq, h = (row / Nq) % H, b = row / (Nq * H), hk = h / group;
    const float *q = Q + b * mstr[12] + h * mstr[13] + i * mstr[14];
    const float *k = K + b * mstr[15] + hk * mstr[16];
    const float *v = V + b * mstr[18] + hk * mstr[19];
    float *o = out + b * mstr[21] + h * mstr[22] + i * mstr[23];
    const float *kb = kbias ? kbias + b * kb_b + h * kb_h : 0;
    float qv[ATT_DL], acc[ATT_DL];
    for (int t = 0; t < ATT_DL; t++) {
      int64_t d = lane + 32 * t;
      qv[t] = d < Dh ? q[d] : 0.0f;
      acc[t] = 0.0f;
    }
    float m = -__builtin_inff(), l = 0.0f;
    int64_t lastj = causal ? i + (Nk - Nq) : Nk - 1;
    if (lastj > Nk - 1) lastj = Nk - 1;
    int64_t moff = b * mstr[0] + h * mstr[1] + i * mstr[2];
    for (int64_t j = 0; j <= lastj; j++) {
      const float *kj = k + j * mstr[17];
      float s = 0.0f;
      for (int t = 0; t < ATT_DL; t++) {
        int64_t d = lane + 32 * t;
        if (d < Dh) s = __builtin_fmaf(qv[t], kj[d], s);
      }
      for (int off = 16; off > 0; off >>= 1) s += __nvvm_shfl_sync_bfly_f32(0xffffffffu, s, off, 31);
      float x = s * scale;
      if (mask) x += mask[moff + j * mstr[3]];
      if (bmask && !bmask[moff + j * mstr[3]]) x = -__builtin_inff();
      if (brow) x += brow[b * mstr[4] + h * mstr[5] + i * mstr[6] + (j / kw) * mstr[7]] +
                     bcol[b * mstr[8] + h * mstr[9] + i * mstr[10] + (j % kw) * mstr[11]];
      if (kb) x += kb[j];
      if (x == -__builtin_inff()) continue;
      float mn = x > m ? x : m;
      float corr = m == -__builtin_inff() ? 0.0f : vt_gk_exp(m - mn);
      float p = vt_gk_exp(x - mn);
      l = l * corr + p;
      const float *vj = v + j * mstr[20];
      for (int t = 0; t < ATT_DL; t++) {
        int64_t d = lane + 32 * t;
        acc[t] = acc[t] * corr + (d < Dv ? p * vj[d] : 0.0f);
      }
      m = mn;
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int t = 0; t < ATT_DL; t++) {
      int64_t d = lane + 32 * t;
      if (d < Dv) o[d] = acc[t] * inv;
    }
  }
}

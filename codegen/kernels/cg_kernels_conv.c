/* cg_kernels_conv.c — the convolution family's kernel bodies (part of the bitcode kernel library:
 * #included at the end of cg_kernels.c, one translation unit). Plain C loops and vectors of
 * VT_CG_VW floats, so LLVM widens them for the target ISA after the generated glue has made every
 * size a constant.
 *   vt_cgk_conv_direct  grouped / depthwise Conv 2-D, any strides, pads, dilations; bias and an
 *                       activation fused (work unit: one output plane)
 *   vt_cgk_conv1x1      1x1 Conv (stride 1, no pads) as a GEMM on the NCHW planes without im2col:
 *                       Y[n] = act(W * (s[n] .* X[n]) + b + R[n]); s = an optional per-(n, channel)
 *                       input scale (squeeze-excite), R an optional residual (work unit: one block of
 *                       VT_CG_C1_PB pixels of one image, all output channels)
 *   vt_cgk_conv_transpose  ConvTranspose 2-D (groups, strides, pads, dilations; output_padding via
 *                       the output size), bias and an activation fused (work unit: one output plane)
 *   vt_cgk_pool2d       MaxPool / AveragePool (count_include_pad 0/1) / GlobalAveragePool
 *                       (work unit: one plane)
 *   vt_cgk_resize2d     Resize / Upsample of the last two axes (nearest or linear: up to two taps
 *                       per axis from tables computed at compile time; work unit: one plane)
 *   vt_cgk_reduce_mid   ReduceMean / ReduceSum over a middle run of axes (e.g. the mean over the
 *                       tokens of [B, T, C]; work unit: one outer index)
 * Activations (act codes, shared with the lowering in codegen): VT_CG_ACT_* below. */

#ifndef VT_CG_VW
#define VT_CG_VW 8   /* floats per vector: 8 (AVX2) unless the ISA build defines it */
#endif

#include "cg_kernels_conv_act.h"

/* act(v) for the act code (a constant after inlining, so the switch folds away); a, b: Clip's
 * min / max, HardSigmoid's alpha / beta. */
static inline AI float vt_cg_act(float v, int32_t act, float a, float b) {
  switch (act) {
  case VT_CG_ACT_RELU: return v > 0.0f ? v : 0.0f;
  case VT_CG_ACT_CLIP: { float t = v < a ? a : v; return t > b ? b : t; }
  case VT_CG_ACT_HARDSIGMOID: { float t = a * v + b; t = t < 0.0f ? 0.0f : t; return t > 1.0f ? 1.0f : t; }
  case VT_CG_ACT_HARDSWISH: { float t = v * (1.0f / 6.0f) + 0.5f; t = t < 0.0f ? 0.0f : t; return v * (t > 1.0f ? 1.0f : t); }
  case VT_CG_ACT_SIGMOID: return vt_cgm_sigmoid(v);
  case VT_CG_ACT_SILU: return v * vt_cgm_sigmoid(v);
  case VT_CG_ACT_X_HARDSIGMOID: { float t = a * v + b; t = t < 0.0f ? 0.0f : t; return v * (t > 1.0f ? 1.0f : t); }
  default: return v;
  }
}

/* The output columns o in [*lo, *hi) whose input column o*s - p + j*d lies in [0, n). */
static inline AI void vt_cg_valid_range(int64_t n, int64_t on, int64_t s, int64_t p, int64_t jd, int64_t *lo,
                                        int64_t *hi) {
  int64_t off = jd - p;   /* input column = o*s + off */
  int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t h = n - 1 - off < 0 ? 0 : (n - 1 - off) / s + 1;
  *lo = l;
  *hi = h < on ? h : on;
}

/* Conv 2-D, direct: x [Nb, C, H, W], w [Cout, C/groups, kh, kw], bias [Cout] or NULL, y [Nb, Cout,
 * OH, OW] = act(conv + bias). Units [u0, u1) are output planes (n * Cout + co). Per output row a
 * row of accumulators; each (input channel, kernel tap) adds one weight times a (strided) input
 * row over the output columns whose input column is inside the image, so the inner loop has no
 * bounds checks and vectorises. */
AI void vt_cgk_conv_direct(const float *x, const float *w, const float *bias, float *y, int64_t C, int64_t H,
                           int64_t W, int64_t Cout, int64_t OH, int64_t OW, int64_t groups, int64_t kh, int64_t kw,
                           int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t ph, int64_t pw, int32_t act,
                           float a, float b, int64_t u0, int64_t u1) {
  int64_t Cg = C / groups, Mg = Cout / groups;
  float acc[OW];
  int64_t jlo[kw], jhi[kw];
  for (int64_t j = 0; j < kw; j++) vt_cg_valid_range(W, OW, sw, pw, j * dw, &jlo[j], &jhi[j]);
  for (int64_t u = u0; u < u1; u++) {
    int64_t n = u / Cout, co = u % Cout, g = co / Mg;
    const float *xg = x + (n * C + g * Cg) * H * W;
    const float *wc = w + co * Cg * kh * kw;
    float b0 = bias ? bias[co] : 0.0f;
    float *yp = y + u * OH * OW;
    for (int64_t oh = 0; oh < OH; oh++) {
      for (int64_t o = 0; o < OW; o++) acc[o] = b0;
      for (int64_t ci = 0; ci < Cg; ci++)
        for (int64_t i = 0; i < kh; i++) {
          int64_t ih = oh * sh - ph + i * dh;
          if (ih < 0 || ih >= H) continue;
          const float *xr = xg + (ci * H + ih) * W;
          const float *wr = wc + (ci * kh + i) * kw;
          for (int64_t j = 0; j < kw; j++) {
            float wv = wr[j];
            const float *xs = xr + j * dw - pw;
            for (int64_t o = jlo[j]; o < jhi[j]; o++) acc[o] += wv * xs[o * sw];
          }
        }
      float *yr = yp + oh * OW;
      for (int64_t o = 0; o < OW; o++) yr[o] = vt_cg_act(acc[o], act, a, b);
    }
  }
}

/* ConvTranspose 2-D: x [Nb, C, H, W], w [C, Cout/groups, kh, kw], bias [Cout] or NULL, y [Nb, Cout,
 * OH, OW] = act(bias + sum over ci, taps of x[ci][ih][iw] * w[ci][m][i][j] at oh = ih*sh - ph + i*dh,
 * ow = iw*sw - pw + j*dw). Units [u0, u1) are output planes (n * Cout + co), accumulated in place:
 * each input row adds, per tap, into one output row at stride sw over the input columns that
 * land inside it. */
AI void vt_cgk_conv_transpose(const float *x, const float *w, const float *bias, float *y, int64_t C, int64_t H,
                              int64_t W, int64_t Cout, int64_t OH, int64_t OW, int64_t groups, int64_t kh,
                              int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t ph, int64_t pw,
                              int32_t act, float a, float b, int64_t u0, int64_t u1) {
  int64_t Cg = C / groups, Mg = Cout / groups;
  int64_t jlo[kw], jhi[kw];
  for (int64_t j = 0; j < kw; j++) vt_cg_valid_range(OW, W, sw, pw, j * dw, &jlo[j], &jhi[j]);
  for (int64_t u = u0; u < u1; u++) {
    int64_t n = u / Cout, co = u % Cout, g = co / Mg, m = co % Mg;
    float *yp = y + u * OH * OW;
    float b0 = bias ? bias[co] : 0.0f;
    for (int64_t q = 0; q < OH * OW; q++) yp[q] = b0;
    for (int64_t ci = 0; ci < Cg; ci++) {
      const float *xp = x + (n * C + g * Cg + ci) * H * W;
      const float *wc = w + ((g * Cg + ci) * Mg + m) * kh * kw;
      for (int64_t ih = 0; ih < H; ih++)
        for (int64_t i = 0; i < kh; i++) {
          int64_t oh = ih * sh - ph + i * dh;
          if (oh < 0 || oh >= OH) continue;
          const float *xr = xp + ih * W;
          float *yr = yp + oh * OW + (-pw);
          for (int64_t j = 0; j < kw; j++) {
            float wv = wc[i * kw + j];
            float *ys = yr + j * dw;
            for (int64_t iw = jlo[j]; iw < jhi[j]; iw++) ys[iw * sw] += wv * xr[iw];
          }
        }
    }
    if (act)
      for (int64_t q = 0; q < OH * OW; q++) yp[q] = vt_cg_act(yp[q], act, a, b);
  }
}

/* ---------- 1x1 Conv as a GEMM on NCHW planes ---------- */
typedef float vt_cvw __attribute__((vector_size(4 * VT_CG_VW)));
#define VT_CG_C1_MR 6                 /* output channels per register tile */
#define VT_CG_C1_PB (2 * VT_CG_VW)    /* pixels per register tile (two vectors) */

/* One tile: output channels [co, co + mr) x pixels [p, p + np) of image n (np <= PB; a partial
 * tile reads its pixels through a zero-padded copy, so the vector loop never reads past a row). */
static inline AI void vt_cg_c1_tile(const float *xn, const float *w, const float *bias, const float *sn,
                                    const float *rn, float *yn, int64_t C, int64_t P, int64_t co, int64_t mr,
                                    int64_t p, int64_t np, int32_t act, float a, float b) {
  vt_cvw acc[VT_CG_C1_MR][2];
  for (int r = 0; r < VT_CG_C1_MR; r++) { acc[r][0] = (vt_cvw){0}; acc[r][1] = (vt_cvw){0}; }
  const float *wr[VT_CG_C1_MR];
  for (int r = 0; r < VT_CG_C1_MR; r++) wr[r] = w + (co + (r < mr ? r : mr - 1)) * C;
  float pad[VT_CG_C1_PB];
  for (int64_t c = 0; c < C; c++) {
    const float *xc = xn + c * P + p;
    vt_cvw x0, x1;
    if (np == VT_CG_C1_PB) {
      __builtin_memcpy(&x0, xc, sizeof x0);
      __builtin_memcpy(&x1, xc + VT_CG_VW, sizeof x1);
    } else {
      for (int64_t j = 0; j < VT_CG_C1_PB; j++) pad[j] = j < np ? xc[j] : 0.0f;
      __builtin_memcpy(&x0, pad, sizeof x0);
      __builtin_memcpy(&x1, pad + VT_CG_VW, sizeof x1);
    }
    float s = sn ? sn[c] : 1.0f;
    for (int r = 0; r < VT_CG_C1_MR; r++) {
      float wv = wr[r][c] * s;
      acc[r][0] += wv * x0;
      acc[r][1] += wv * x1;
    }
  }
  for (int64_t r = 0; r < mr; r++) {
    float out[VT_CG_C1_PB];
    __builtin_memcpy(out, &acc[r][0], sizeof acc[r][0]);
    __builtin_memcpy(out + VT_CG_VW, &acc[r][1], sizeof acc[r][1]);
    float b0 = bias ? bias[co + r] : 0.0f;
    float *yr = yn + (co + r) * P + p;
    const float *rr = rn ? rn + (co + r) * P + p : 0;
    for (int64_t j = 0; j < np; j++) yr[j] = vt_cg_act(out[j] + b0 + (rr ? rr[j] : 0.0f), act, a, b);
  }
}

/* x [Nb, C, P] (P = H*W), w [Cout, C], bias [Cout] or NULL, scale [Nb, C] or NULL (input channel
 * scale), res [Nb, Cout, P] or NULL, y [Nb, Cout, P] = act(W * (scale .* x) + bias + res). Units
 * [u0, u1): blocks of `unit` pixels of one image (n * ceil(P / unit) + block); per unit the input
 * block (C x unit floats) stays in L1 while all output channels run over it. */
AI void vt_cgk_conv1x1(const float *x, const float *w, const float *bias, const float *scale, const float *res,
                       float *y, int64_t C, int64_t P, int64_t Cout, int64_t unit, int32_t act, float a, float b,
                       int64_t u0, int64_t u1) {
  int64_t nblk = (P + unit - 1) / unit;
  for (int64_t u = u0; u < u1; u++) {
    int64_t n = u / nblk, p0 = (u % nblk) * unit;
    int64_t p1 = p0 + unit < P ? p0 + unit : P;
    const float *xn = x + n * C * P, *sn = scale ? scale + n * C : 0, *rn = res ? res + n * Cout * P : 0;
    float *yn = y + n * Cout * P;
    for (int64_t co = 0; co < Cout; co += VT_CG_C1_MR) {
      int64_t mr = Cout - co < VT_CG_C1_MR ? Cout - co : VT_CG_C1_MR;
      for (int64_t p = p0; p < p1; p += VT_CG_C1_PB) {
        int64_t np = p1 - p < VT_CG_C1_PB ? p1 - p : VT_CG_C1_PB;
        if (mr == VT_CG_C1_MR && np == VT_CG_C1_PB)   /* full tile: constant sizes */
          vt_cg_c1_tile(xn, w, bias, sn, rn, yn, C, P, co, VT_CG_C1_MR, p, VT_CG_C1_PB, act, a, b);
        else
          vt_cg_c1_tile(xn, w, bias, sn, rn, yn, C, P, co, mr, p, np, act, a, b);
      }
    }
  }
}

/* ---------- pools ---------- */
/* x [planes, H, W] -> y [planes, OH, OW]; kind 0: max (pads never win), 1: average over the
 * window's positions inside the image, 2: average over the window including pads (positions
 * inside [-ph, H + pe_h) x [-pw, W + pe_w), the padded image), 3: global average (the plane's
 * mean; OH = OW = 1). Units [u0, u1): planes. */
AI void vt_cgk_pool2d(const float *x, float *y, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t kh,
                      int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t ph, int64_t pw,
                      int64_t pe_h, int64_t pe_w, int32_t kind, int64_t u0, int64_t u1) {
  float acc[OW], cnt[OW];
  int64_t jlo[kw], jhi[kw], plo[kw], phi[kw];
  for (int64_t j = 0; j < kw; j++) {
    vt_cg_valid_range(W, OW, sw, pw, j * dw, &jlo[j], &jhi[j]);
    /* padded image columns [-pw, W + pe_w) = [0, W + pw + pe_w) shifted */
    vt_cg_valid_range(W + pw + pe_w, OW, sw, 0, j * dw, &plo[j], &phi[j]);
  }
  for (int64_t u = u0; u < u1; u++) {
    const float *xp = x + u * H * W;
    float *yp = y + u * OH * OW;
    if (kind == 3) {
      yp[0] = vt_cg_row_sum(xp, H * W) / (float)(H * W);
      continue;
    }
    for (int64_t oh = 0; oh < OH; oh++) {
      for (int64_t o = 0; o < OW; o++) { acc[o] = kind == 0 ? -__builtin_inff() : 0.0f; cnt[o] = 0.0f; }
      for (int64_t i = 0; i < kh; i++) {
        int64_t ih = oh * sh - ph + i * dh;
        if (kind == 2 && ih >= -ph && ih < H + pe_h)
          for (int64_t j = 0; j < kw; j++)
            for (int64_t o = plo[j]; o < phi[j]; o++) cnt[o] += 1.0f;
        if (ih < 0 || ih >= H) continue;
        const float *xr = xp + ih * W;
        for (int64_t j = 0; j < kw; j++) {
          const float *xs = xr + j * dw - pw;
          if (kind == 0) {
            for (int64_t o = jlo[j]; o < jhi[j]; o++) {
              float v = xs[o * sw];
              acc[o] = v > acc[o] || v != v ? v : acc[o];
            }
          } else {
            for (int64_t o = jlo[j]; o < jhi[j]; o++) acc[o] += xs[o * sw];
            if (kind == 1)
              for (int64_t o = jlo[j]; o < jhi[j]; o++) cnt[o] += 1.0f;
          }
        }
      }
      float *yr = yp + oh * OW;
      if (kind == 0)
        for (int64_t o = 0; o < OW; o++) yr[o] = acc[o];
      else
        for (int64_t o = 0; o < OW; o++) yr[o] = cnt[o] > 0.0f ? acc[o] / cnt[o] : 0.0f;
    }
  }
}

/* x [O, R, I] -> y [O, I]: the sum (mean: times 1/R) over R, vectorised over I (rows added in
 * order r = 0..R-1). Units [u0, u1): outer indices. */
AI void vt_cgk_reduce_mid(const float *x, float *y, int64_t R, int64_t I, int32_t mean, int64_t u0, int64_t u1) {
  float scale = mean && R > 0 ? 1.0f / (float)R : 1.0f;
  for (int64_t u = u0; u < u1; u++) {
    const float *xo = x + u * R * I;
    float *yo = y + u * I;
    for (int64_t i = 0; i < I; i++) yo[i] = 0.0f;
    for (int64_t r = 0; r < R; r++) {
      const float *xr = xo + r * I;
      for (int64_t i = 0; i < I; i++) yo[i] += xr[i];
    }
    if (mean)
      for (int64_t i = 0; i < I; i++) yo[i] *= scale;
  }
}

/* x [planes, H, W] -> y [planes, OH, OW]: y[oh][ow] = sum over the taps a (rows) and b (columns) of
 * wr[a][oh] * wc[b][ow] * x[ir[a][oh]][ic[b][ow]]. idx: [ir0 (OH), ir1 (OH), ic0 (OW), ic1 (OW)],
 * wts: the same layout of weights (a second tap of weight 0 where the axis has one tap). */
AI void vt_cgk_resize2d(const float *x, float *y, int64_t H, int64_t W, int64_t OH, int64_t OW, const int64_t *idx,
                        const float *wts, int64_t u0, int64_t u1) {
  const int64_t *ir0 = idx, *ir1 = idx + OH, *ic0 = idx + 2 * OH, *ic1 = ic0 + OW;
  const float *wr0 = wts, *wr1 = wts + OH, *wc0 = wts + 2 * OH, *wc1 = wc0 + OW;
  for (int64_t u = u0; u < u1; u++) {
    const float *xp = x + u * H * W;
    float *yp = y + u * OH * OW;
    for (int64_t oh = 0; oh < OH; oh++) {
      const float *r0 = xp + ir0[oh] * W, *r1 = xp + ir1[oh] * W;
      float a0 = wr0[oh], a1 = wr1[oh];
      float *yr = yp + oh * OW;
      for (int64_t o = 0; o < OW; o++)
        yr[o] = a0 * (wc0[o] * r0[ic0[o]] + wc1[o] * r0[ic1[o]]) + a1 * (wc0[o] * r1[ic0[o]] + wc1[o] * r1[ic1[o]]);
    }
  }
}

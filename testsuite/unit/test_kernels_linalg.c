/* test_kernels_linalg.c — the linalg family (MatMul, Gemm, Conv, ConvTranspose,
 * BatchNormalization, MaxPool, AveragePool, Global*Pool, Einsum) and the shared GEMM: each op
 * runs as a one-node graph through shape inference and vt_run_node and is compared with naive
 * loops written here independently, on odd sizes (1, 7, 33, 197, 1025) and with 2 threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "ir.h"
#include "runtime.h"
#include "op_harness.h"

/* ---------- helpers ---------------------------------------------------------------------------- */


static uint64_t rng = 88172645463325252ull;
static float frand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (float)((rng >> 11) % 2000001) / 1000000.0f - 1.0f;
}

static vt_tensor mk(vt_dtype dt, int rank, const int64_t *dims) {
  vt_tensor t = {0};
  assert_int_equal(vt_tensor_alloc(&t, dt, rank, dims, NULL), VT_OK);
  int64_t n = vt_tensor_numel(&t);
  for (int64_t i = 0; i < n; i++) {
    if (dt == VT_F32) ((float *)t.data)[i] = frand();
    else if (dt == VT_F64) ((double *)t.data)[i] = frand();
    else if (dt == VT_I64) ((int64_t *)t.data)[i] = (int64_t)(frand() * 10);
    else if (dt == VT_I32) ((int32_t *)t.data)[i] = (int32_t)(frand() * 10);
  }
  return t;
}

static vt_pool *pool2;

/* Runs op on ins (NULL = absent optional input); outs must be zeroed tensors. Returns rc and
 * leaves the message in err. */
static int run_op(const char *opname, int nin, const vt_tensor *const *ins, int nout,
                  vt_tensor *outs, const tattr *attrs, int nattr, vt_error *err) {
  return run_one_op(opname, 0, nin, ins, nout, outs, attrs, nattr, pool2, err);
}

static void expect_close(const float *got, const double *want, int64_t n, double tol) {
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    if (d > tol * (1.0 + fabs(want[i]))) {
      fail_msg("element %lld: got %.7g want %.7g", (long long)i, (double)got[i], want[i]);
    }
  }
}

/* ---------- GEMM core ---------------------------------------------------------------------------- */
static void test_sgemm_direct(void **state) {
  (void)state;
  static const int64_t sz[][3] = {{1, 1, 1}, {7, 33, 1}, {33, 7, 197}, {197, 33, 7},
                                  {1, 1025, 33}, {1025, 1, 7}, {197, 197, 64}, {67, 130, 300},
                                  {7, 1025, 197}, {257, 515, 520}};
  for (size_t s = 0; s < sizeof sz / sizeof sz[0]; s++) {
    int64_t M = sz[s][0], N = sz[s][1], K = sz[s][2];
    for (int tr = 0; tr < 4; tr++) {
      int tA = tr & 1, tB = tr >> 1;
      float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
      float *C = malloc(sizeof(float) * M * N);
      double *R = malloc(sizeof(double) * M * N);
      for (int64_t i = 0; i < M * K; i++) A[i] = frand();
      for (int64_t i = 0; i < K * N; i++) B[i] = frand();
      for (int64_t i = 0; i < M * N; i++) C[i] = frand();
      float alpha = tr == 3 ? 0.5f : 1.0f, beta = tr == 1 ? 0.0f : tr == 2 ? 1.0f : -0.25f;
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double acc = 0;
          for (int64_t k = 0; k < K; k++)
            acc += (double)(tA ? A[k * M + i] : A[i * K + k]) * (tB ? B[j * K + k] : B[k * N + j]);
          R[i * N + j] = alpha * acc + (beta == 0.0f ? 0.0 : beta * (double)C[i * N + j]);
        }
      if (beta == 0.0f) C[0] = NAN;   /* beta 0 must ignore C */
      vt_sgemm(pool2, tA, tB, M, N, K, alpha, A, tA ? M : K, B, tB ? K : N, beta, C, N);
      expect_close(C, R, M * N, 1e-4 * sqrt((double)K));
      free(A); free(B); free(C); free(R);
    }
  }
}

/* ---------- MatMul ------------------------------------------------------------------------------- */
/* naive batched matmul with numpy broadcasting over the leading dims (ranks >= 2 here) */
static void ref_matmul(const vt_tensor *a, const vt_tensor *b, const vt_tensor *y, double *r) {
  int ry = y->rank;
  int64_t M = y->dims[ry - 2], N = y->dims[ry - 1], K = a->dims[a->rank - 1];
  int64_t batch = vt_tensor_numel(y) / (M * N);
  for (int64_t t = 0; t < batch; t++) {
    int64_t idx[VT_MAX_RANK], rem = t;
    for (int d = ry - 3; d >= 0; d--) { idx[d] = rem % y->dims[d]; rem /= y->dims[d]; }
    int64_t oa = 0, ob = 0;
    for (int d = 0; d < a->rank - 2; d++) {
      int yd = d + (ry - a->rank);
      oa = oa * a->dims[d] + (a->dims[d] == 1 ? 0 : idx[yd]);
    }
    for (int d = 0; d < b->rank - 2; d++) {
      int yd = d + (ry - b->rank);
      ob = ob * b->dims[d] + (b->dims[d] == 1 ? 0 : idx[yd]);
    }
    const float *A = (const float *)a->data + oa * M * K, *B = (const float *)b->data + ob * K * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += (double)A[i * K + k] * B[k * N + j];
        r[t * M * N + i * N + j] = s;
      }
  }
}

static void check_matmul(int ra, const int64_t *da, int rb, const int64_t *db, int rexp,
                         const int64_t *dexp) {
  vt_tensor a = mk(VT_F32, ra, da), b = mk(VT_F32, rb, db), y = {0};
  const vt_tensor *ins[2] = {&a, &b};
  vt_error err = {0};
  int rc = run_op("MatMul", 2, ins, 1, &y, NULL, 0, &err);
  if (rc) fail_msg("%s", err.msg);
  assert_int_equal(y.rank, rexp);
  for (int d = 0; d < rexp; d++) assert_int_equal(y.dims[d], dexp[d]);
  /* reference through 2-D views of the 1-D operands */
  vt_tensor a2 = a, b2 = b, y2 = y;
  if (ra == 1) { a2.rank = 2; a2.dims[0] = 1; a2.dims[1] = da[0]; }
  if (rb == 1) { b2.rank = 2; b2.dims[0] = db[0]; b2.dims[1] = 1; }
  int64_t M = ra == 1 ? 1 : da[ra - 2], N = rb == 1 ? 1 : db[rb - 1];
  y2.rank = 0;
  if (rexp >= 0) {
    int nb = rexp - (ra >= 2) - (rb >= 2);
    for (int d = 0; d < nb; d++) y2.dims[y2.rank++] = y.dims[d];
    y2.dims[y2.rank++] = M;
    y2.dims[y2.rank++] = N;
  }
  double *r = malloc(sizeof(double) * (size_t)vt_tensor_numel(&y) + 8);
  ref_matmul(&a2, &b2, &y2, r);
  expect_close(y.data, r, vt_tensor_numel(&y), 1e-4 * sqrt((double)da[ra - 1]));
  free(r);
  vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&y);
}

static void test_matmul_sizes(void **state) {
  (void)state;
  static const int64_t s[] = {1, 7, 33, 197, 1025};
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++)
      for (int k = 0; k < 5; k++) {
        if (s[i] * s[j] * s[k] > 197 * 197 * 197) continue;
        int64_t da[2] = {s[i], s[k]}, db[2] = {s[k], s[j]}, dy[2] = {s[i], s[j]};
        check_matmul(2, da, 2, db, 2, dy);
      }
}

static void test_matmul_batch(void **state) {
  (void)state;
  { int64_t a[4] = {2, 1, 5, 7}, b[3] = {3, 7, 4}, y[4] = {2, 3, 5, 4}; check_matmul(4, a, 3, b, 4, y); }
  { int64_t a[3] = {4, 197, 64}, b[2] = {64, 33}, y[3] = {4, 197, 33}; check_matmul(3, a, 2, b, 3, y); }
  { int64_t a[2] = {33, 7}, b[3] = {5, 7, 9}, y[3] = {5, 33, 9}; check_matmul(2, a, 3, b, 3, y); }
  { int64_t a[4] = {1, 6, 197, 64}, b[4] = {1, 6, 64, 197}, y[4] = {1, 6, 197, 197}; check_matmul(4, a, 4, b, 4, y); }
  { int64_t a[1] = {7}, b[2] = {7, 4}, y[1] = {4}; check_matmul(1, a, 2, b, 1, y); }
  { int64_t a[2] = {5, 7}, b[1] = {7}, y[1] = {5}; check_matmul(2, a, 1, b, 1, y); }
  { int64_t a[1] = {33}, b[3] = {2, 33, 3}, y[2] = {2, 3}; check_matmul(1, a, 3, b, 2, y); }
  { int64_t a[1] = {7}, b[1] = {7}; check_matmul(1, a, 1, b, 0, NULL); }
  /* mismatched K is an error, not a crash */
  vt_tensor a = mk(VT_F32, 2, (int64_t[]){3, 4}), b = mk(VT_F32, 2, (int64_t[]){5, 2}), y = {0};
  const vt_tensor *ins[2] = {&a, &b};
  vt_error err = {0};
  assert_int_equal(run_op("MatMul", 2, ins, 1, &y, NULL, 0, &err), VT_ERR_MODEL);
  assert_non_null(strstr(err.msg, "inner dims"));
  vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&y);
}

static void test_matmul_int64(void **state) {
  (void)state;
  vt_tensor a = mk(VT_I64, 3, (int64_t[]){2, 3, 4}), b = mk(VT_I64, 2, (int64_t[]){4, 5}), y = {0};
  const vt_tensor *ins[2] = {&a, &b};
  vt_error err = {0};
  assert_int_equal(run_op("MatMul", 2, ins, 1, &y, NULL, 0, &err), VT_OK);
  const int64_t *A = a.data, *B = b.data, *Y = y.data;
  for (int t = 0; t < 2; t++)
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 5; j++) {
        int64_t s = 0;
        for (int k = 0; k < 4; k++) s += A[t * 12 + i * 4 + k] * B[k * 5 + j];
        assert_int_equal(Y[t * 15 + i * 5 + j], s);
      }
  vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&y);
}


static void test_matmul_f16(void **state) {
  (void)state;
  vt_tensor a = {0}, b = {0}, y = {0};
  assert_int_equal(vt_tensor_alloc(&a, VT_F16, 2, (int64_t[]){3, 5}, NULL), VT_OK);
  assert_int_equal(vt_tensor_alloc(&b, VT_F16, 2, (int64_t[]){5, 4}, NULL), VT_OK);
  for (int i = 0; i < 15; i++) ((uint16_t *)a.data)[i] = vt_f32_to_f16((float)(i % 7 - 3));
  for (int i = 0; i < 20; i++) ((uint16_t *)b.data)[i] = vt_f32_to_f16((float)(i % 5 - 2));
  const vt_tensor *ins[2] = {&a, &b};
  vt_error err = {0};
  if (run_op("MatMul", 2, ins, 1, &y, NULL, 0, &err)) fail_msg("%s", err.msg);
  assert_int_equal(y.dtype, VT_F16);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) {
      float s = 0;
      for (int k = 0; k < 5; k++) s += (float)((i * 5 + k) % 7 - 3) * (float)((k * 4 + j) % 5 - 2);
      assert_true(vt_f16_to_f32(((uint16_t *)y.data)[i * 4 + j]) == s);
    }
  vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&y);
}

/* ---------- Gemm --------------------------------------------------------------------------------- */
static void test_gemm(void **state) {
  (void)state;
  for (int tr = 0; tr < 4; tr++) {
    int tA = tr & 1, tB = tr >> 1;
    int64_t M = 33, N = 197, K = 7;
    vt_tensor a = mk(VT_F32, 2, tA ? (int64_t[]){K, M} : (int64_t[]){M, K});
    vt_tensor b = mk(VT_F32, 2, tB ? (int64_t[]){N, K} : (int64_t[]){K, N});
    vt_tensor c = mk(VT_F32, 1, (int64_t[]){N}), y = {0};
    const vt_tensor *ins[3] = {&a, &b, &c};
    tattr at[4] = {AI("transA", tA), AI("transB", tB), AF("alpha", 0.75f), AF("beta", 1.5f)};
    vt_error err = {0};
    if (run_op("Gemm", 3, ins, 1, &y, at, 4, &err)) fail_msg("%s", err.msg);
    double *r = malloc(sizeof(double) * M * N);
    const float *A = a.data, *B = b.data, *C = c.data;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++)
          s += (double)(tA ? A[k * M + i] : A[i * K + k]) * (tB ? B[j * K + k] : B[k * N + j]);
        r[i * N + j] = 0.75 * s + 1.5 * C[j];
      }
    expect_close(y.data, r, M * N, 1e-5);
    free(r);
    vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&c); vt_tensor_free(&y);
  }
}

/* ---------- Conv --------------------------------------------------------------------------------- */
typedef struct { int nsp; int64_t k[3], s[3], d[3], pb[3], pe[3]; int64_t group; } cgeom;

/* naive direct convolution, dims of y already known */
static void ref_conv(const vt_tensor *x, const vt_tensor *w, const vt_tensor *b, const vt_tensor *y,
                     const cgeom *g, double *r) {
  int nsp = g->nsp;
  int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0], Cg = C / g->group, Mg = M / g->group;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1};
  for (int i = 0; i < nsp; i++) { in[i] = x->dims[2 + i]; out[i] = y->dims[2 + i]; k[i] = g->k[i]; }
  const float *X = x->data, *W = w->data;
  int64_t q = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t o0 = 0; o0 < out[0]; o0++)
        for (int64_t o1 = 0; o1 < out[1]; o1++)
          for (int64_t o2 = 0; o2 < out[2]; o2++) {
            double s = b ? ((const float *)b->data)[m] : 0;
            int64_t gi = m / Mg;
            for (int64_t c = 0; c < Cg; c++)
              for (int64_t k0 = 0; k0 < k[0]; k0++)
                for (int64_t k1 = 0; k1 < k[1]; k1++)
                  for (int64_t k2 = 0; k2 < k[2]; k2++) {
                    int64_t o[3] = {o0, o1, o2}, kk[3] = {k0, k1, k2}, p[3] = {0, 0, 0};
                    bool ok = true;
                    for (int i = 0; i < nsp; i++) {
                      p[i] = o[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];
                      if (p[i] < 0 || p[i] >= in[i]) ok = false;
                    }
                    if (!ok) continue;
                    int64_t xi = ((n * C + gi * Cg + c) * in[0] + p[0]) * in[1] * in[2] + p[1] * in[2] + p[2];
                    int64_t wi = ((m * Cg + c) * k[0] + k0) * k[1] * k[2] + k1 * k[2] + k2;
                    s += (double)X[xi] * W[wi];
                  }
            r[q++] = s;
          }
}

static void check_conv(int nsp, int64_t N, int64_t C, int64_t M, const int64_t *in, const cgeom *g,
                       const char *autopad, bool bias) {
  int64_t xd[5] = {N, C}, wd[5] = {M, C / g->group};
  for (int i = 0; i < nsp; i++) { xd[2 + i] = in[i]; wd[2 + i] = g->k[i]; }
  vt_tensor x = mk(VT_F32, nsp + 2, xd), w = mk(VT_F32, nsp + 2, wd);
  vt_tensor b = mk(VT_F32, 1, (int64_t[]){M}), y = {0};
  const vt_tensor *ins[3] = {&x, &w, bias ? &b : NULL};
  tattr at[6];
  int na = 0;
  at[na] = (tattr)AINTS("strides", nsp); memcpy(at[na++].ints, g->s, sizeof(int64_t) * nsp);
  at[na] = (tattr)AINTS("dilations", nsp); memcpy(at[na++].ints, g->d, sizeof(int64_t) * nsp);
  at[na++] = (tattr)AI("group", g->group);
  if (autopad) {
    at[na++] = (tattr)AS("auto_pad", autopad);
  } else {
    at[na] = (tattr)AINTS("pads", 2 * nsp);
    memcpy(at[na].ints, g->pb, sizeof(int64_t) * nsp);
    memcpy(at[na++].ints + nsp, g->pe, sizeof(int64_t) * nsp);
  }
  vt_error err = {0};
  if (run_op("Conv", 3, ins, 1, &y, at, na, &err)) fail_msg("%s", err.msg);
  cgeom gg = *g;
  for (int i = 0; i < nsp; i++) {
    int64_t dk = (g->k[i] - 1) * g->d[i] + 1, out;
    if (autopad) {
      out = (in[i] + g->s[i] - 1) / g->s[i];
      int64_t tot = (out - 1) * g->s[i] + dk - in[i];
      if (tot < 0) tot = 0;
      gg.pb[i] = !strcmp(autopad, "SAME_UPPER") ? tot / 2 : tot - tot / 2;
    } else {
      out = (in[i] + g->pb[i] + g->pe[i] - dk) / g->s[i] + 1;
    }
    assert_int_equal(y.dims[2 + i], out);
  }
  double *r = malloc(sizeof(double) * (size_t)vt_tensor_numel(&y));
  ref_conv(&x, &w, bias ? &b : NULL, &y, &gg, r);
  expect_close(y.data, r, vt_tensor_numel(&y), 1e-4);
  free(r);
  vt_tensor_free(&x); vt_tensor_free(&w); vt_tensor_free(&b); vt_tensor_free(&y);
}

static void test_conv(void **state) {
  (void)state;
  /* 2-D: plain, strided+padded+dilated, groups, depthwise, depthwise multiplier, 1x1, patchify */
  { cgeom g = {2, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1}; check_conv(2, 2, 3, 5, (int64_t[]){7, 9}, &g, NULL, true); }
  { cgeom g = {2, {3, 2}, {2, 3}, {2, 1}, {1, 0}, {2, 1}, 1}; check_conv(2, 1, 4, 6, (int64_t[]){11, 13}, &g, NULL, false); }
  { cgeom g = {2, {3, 3}, {1, 2}, {1, 1}, {0, 1}, {1, 0}, 2}; check_conv(2, 2, 6, 4, (int64_t[]){8, 7}, &g, NULL, true); }
  { cgeom g = {2, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 8}; check_conv(2, 2, 8, 8, (int64_t[]){9, 9}, &g, NULL, true); }
  { cgeom g = {2, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 4}; check_conv(2, 1, 4, 8, (int64_t[]){9, 10}, &g, NULL, true); }
  { cgeom g = {2, {3, 5}, {1, 2}, {2, 3}, {2, 0}, {1, 4}, 6}; check_conv(2, 2, 6, 12, (int64_t[]){9, 17}, &g, NULL, true); }
  { cgeom g = {2, {7, 7}, {1, 1}, {1, 1}, {3, 3}, {3, 3}, 5}; check_conv(2, 1, 5, 5, (int64_t[]){6, 11}, &g, NULL, false); }
  { cgeom g = {2, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 1}; check_conv(2, 2, 33, 7, (int64_t[]){5, 6}, &g, NULL, true); }
  { cgeom g = {2, {16, 16}, {16, 16}, {1, 1}, {0, 0}, {0, 0}, 1}; check_conv(2, 1, 3, 24, (int64_t[]){64, 48}, &g, NULL, true); }
  { cgeom g = {2, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, 1}; check_conv(2, 1, 2, 3, (int64_t[]){7, 8}, &g, "SAME_UPPER", true); }
  { cgeom g = {2, {4, 4}, {3, 2}, {1, 1}, {0, 0}, {0, 0}, 1}; check_conv(2, 1, 2, 3, (int64_t[]){7, 8}, &g, "SAME_LOWER", false); }
  /* 1-D and 3-D */
  { cgeom g = {1, {5}, {2}, {2}, {3}, {1}, 1}; check_conv(1, 3, 4, 5, (int64_t[]){33}, &g, NULL, true); }
  { cgeom g = {3, {2, 3, 2}, {1, 2, 1}, {1, 1, 2}, {0, 1, 1}, {1, 0, 1}, 2}; check_conv(3, 1, 4, 6, (int64_t[]){5, 6, 7}, &g, NULL, true); }
  { cgeom g = {3, {2, 16, 16}, {2, 16, 16}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, 1}; check_conv(3, 1, 3, 8, (int64_t[]){4, 32, 32}, &g, NULL, true); }
}

static void test_conv_errors(void **state) {
  (void)state;
  vt_tensor x = mk(VT_F32, 4, (int64_t[]){1, 3, 5, 5}), w = mk(VT_F32, 4, (int64_t[]){4, 2, 3, 3}), y = {0};
  const vt_tensor *ins[2] = {&x, &w};
  vt_error err = {0};
  assert_int_equal(run_op("Conv", 2, ins, 1, &y, NULL, 0, &err), VT_ERR_MODEL);
  vt_tensor_free(&y);
  vt_tensor w2 = mk(VT_F32, 4, (int64_t[]){4, 3, 7, 7});
  ins[1] = &w2;
  assert_int_equal(run_op("Conv", 2, ins, 1, &y, NULL, 0, &err), VT_ERR_MODEL);
  assert_non_null(strstr(err.msg, "smaller than the window"));
  vt_tensor_free(&x); vt_tensor_free(&w); vt_tensor_free(&w2); vt_tensor_free(&y);
}

/* ---------- ConvTranspose ------------------------------------------------------------------------- */
static void test_conv_transpose(void **state) {
  (void)state;
  /* 2-D, stride (3,2), pads, output_padding, groups 2, bias */
  int64_t N = 2, C = 4, Mg = 3, G = 2, H = 4, W = 5, kh = 3, kw = 2, sh = 3, sw = 2, ph = 1, pw = 0;
  int64_t oph = 1, opw = 1;
  vt_tensor x = mk(VT_F32, 4, (int64_t[]){N, C, H, W}), w = mk(VT_F32, 4, (int64_t[]){C, Mg, kh, kw});
  vt_tensor b = mk(VT_F32, 1, (int64_t[]){Mg * G}), y = {0};
  const vt_tensor *ins[3] = {&x, &w, &b};
  tattr at[4] = {AINTS("strides", 2, sh, sw), AINTS("pads", 4, ph, pw, ph, pw),
                 AINTS("output_padding", 2, oph, opw), AI("group", G)};
  vt_error err = {0};
  if (run_op("ConvTranspose", 3, ins, 1, &y, at, 4, &err)) fail_msg("%s", err.msg);
  int64_t OH = sh * (H - 1) + oph + kh - 2 * ph, OW = sw * (W - 1) + opw + kw - 2 * pw;
  assert_int_equal(y.dims[1], Mg * G);
  assert_int_equal(y.dims[2], OH);
  assert_int_equal(y.dims[3], OW);
  int64_t M = Mg * G, Cg = C / G;
  double *r = calloc((size_t)(N * M * OH * OW), sizeof(double));
  const float *X = x.data, *Wt = w.data, *B = b.data;
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t i = 0; i < H; i++)
        for (int64_t j = 0; j < W; j++)
          for (int64_t m = 0; m < Mg; m++)
            for (int64_t a = 0; a < kh; a++)
              for (int64_t bb = 0; bb < kw; bb++) {
                int64_t oi = i * sh - ph + a, oj = j * sw - pw + bb;
                if (oi < 0 || oi >= OH || oj < 0 || oj >= OW) continue;
                int64_t oc = (c / Cg) * Mg + m;
                r[((n * M + oc) * OH + oi) * OW + oj] +=
                    (double)X[((n * C + c) * H + i) * W + j] * Wt[((c * Mg + m) * kh + a) * kw + bb];
              }
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t q = 0; q < OH * OW; q++) r[(n * M + m) * OH * OW + q] += B[m];
  expect_close(y.data, r, vt_tensor_numel(&y), 1e-5);
  free(r);
  vt_tensor_free(&x); vt_tensor_free(&w); vt_tensor_free(&b); vt_tensor_free(&y);
}

/* ---------- pools, BatchNormalization -------------------------------------------------------------- */
static void test_pools_hand(void **state) {
  (void)state;
  /* 1x1x4x4 = 1..16, kernel 3, stride 2, pads 1 */
  vt_tensor x = {0};
  assert_int_equal(vt_tensor_alloc(&x, VT_F32, 4, (int64_t[]){1, 1, 4, 4}, NULL), VT_OK);
  for (int i = 0; i < 16; i++) ((float *)x.data)[i] = (float)(i + 1);
  const vt_tensor *ins[1] = {&x};
  tattr at[3] = {AINTS("kernel_shape", 2, 3, 3), AINTS("strides", 2, 2, 2), AINTS("pads", 4, 1, 1, 1, 1)};
  vt_tensor y[2] = {{0}, {0}};
  vt_error err = {0};
  if (run_op("MaxPool", 1, ins, 2, y, at, 3, &err)) fail_msg("%s", err.msg);
  static const float mx[4] = {6, 8, 14, 16};
  static const int64_t ix[4] = {5, 7, 13, 15};
  for (int i = 0; i < 4; i++) {
    assert_true(((float *)y[0].data)[i] == mx[i]);
    assert_int_equal(((int64_t *)y[1].data)[i], ix[i]);
  }
  vt_tensor_free(&y[0]); vt_tensor_free(&y[1]);
  /* average, pads excluded: top-left window {1,2,5,6} -> 3.5 ; included -> 14/9 */
  if (run_op("AveragePool", 1, ins, 1, y, at, 3, &err)) fail_msg("%s", err.msg);
  assert_float_equal(((float *)y[0].data)[0], 3.5, 1e-6);
  assert_float_equal(((float *)y[0].data)[3], (6 + 7 + 8 + 10 + 11 + 12 + 14 + 15 + 16) / 9.0, 1e-6);
  vt_tensor_free(&y[0]);
  tattr at2[4] = {at[0], at[1], at[2], AI("count_include_pad", 1)};
  if (run_op("AveragePool", 1, ins, 1, y, at2, 4, &err)) fail_msg("%s", err.msg);
  assert_float_equal(((float *)y[0].data)[0], 14.0 / 9, 1e-6);
  vt_tensor_free(&y[0]);
  /* ceil_mode: 4 -> kernel 3 stride 2 no pads: floor 1, ceil 2 */
  tattr at3[3] = {AINTS("kernel_shape", 2, 3, 3), AINTS("strides", 2, 2, 2), AI("ceil_mode", 1)};
  if (run_op("MaxPool", 1, ins, 1, y, at3, 3, &err)) fail_msg("%s", err.msg);
  assert_int_equal(y[0].dims[2], 2);
  assert_true(((float *)y[0].data)[3] == 16);
  vt_tensor_free(&y[0]);
  /* global pools */
  if (run_op("GlobalAveragePool", 1, ins, 1, y, NULL, 0, &err)) fail_msg("%s", err.msg);
  assert_int_equal(y[0].rank, 4);
  assert_float_equal(((float *)y[0].data)[0], 8.5, 1e-6);
  vt_tensor_free(&y[0]);
  if (run_op("GlobalMaxPool", 1, ins, 1, y, NULL, 0, &err)) fail_msg("%s", err.msg);
  assert_true(((float *)y[0].data)[0] == 16);
  vt_tensor_free(&y[0]);
  /* missing kernel_shape is a clear error */
  assert_int_equal(run_op("MaxPool", 1, ins, 1, y, NULL, 0, &err), VT_ERR_MODEL);
  assert_non_null(strstr(err.msg, "kernel_shape"));
  vt_tensor_free(&y[0]);
  vt_tensor_free(&x);
}

static void test_batchnorm(void **state) {
  (void)state;
  int64_t C = 3;
  vt_tensor x = mk(VT_F32, 4, (int64_t[]){2, C, 4, 5}), p[4];
  for (int i = 0; i < 4; i++) p[i] = mk(VT_F32, 1, (int64_t[]){C});
  for (int c = 0; c < C; c++) ((float *)p[3].data)[c] = fabsf(((float *)p[3].data)[c]) + 0.1f;
  vt_tensor y = {0};
  const vt_tensor *ins[5] = {&x, &p[0], &p[1], &p[2], &p[3]};
  tattr at[1] = {AF("epsilon", 1e-3f)};
  vt_error err = {0};
  if (run_op("BatchNormalization", 5, ins, 1, &y, at, 1, &err)) fail_msg("%s", err.msg);
  double r[120];
  for (int i = 0; i < 120; i++) {
    int c = (i / 20) % C;
    const float *s = p[0].data, *b = p[1].data, *m = p[2].data, *v = p[3].data;
    r[i] = (((float *)x.data)[i] - m[c]) / sqrt(v[c] + 1e-3) * s[c] + b[c];
  }
  expect_close(y.data, r, 120, 1e-5);
  vt_tensor_free(&y);
  tattr tm[1] = {AI("training_mode", 1)};
  assert_int_equal(run_op("BatchNormalization", 5, ins, 1, &y, tm, 1, &err), VT_ERR_MODEL);
  assert_non_null(strstr(err.msg, "training_mode"));
  vt_tensor_free(&y);
  vt_tensor_free(&x);
  for (int i = 0; i < 4; i++) vt_tensor_free(&p[i]);
}

/* ---------- Einsum -------------------------------------------------------------------------------- */
/* a[b,h,i,d] x c[b,h,j,d] style checks through MatMul-equivalent references */
static void check_einsum2(const char *eq, int ra, const int64_t *da, int rb, const int64_t *db,
                          int ry, const int64_t *dy, void (*ref)(const float *, const float *,
                                                                 const int64_t *, double *)) {
  vt_tensor a = mk(VT_F32, ra, da), b = mk(VT_F32, rb, db), y = {0};
  const vt_tensor *ins[2] = {&a, &b};
  tattr at[1] = {AS("equation", eq)};
  vt_error err = {0};
  if (run_op("Einsum", 2, ins, 1, &y, at, 1, &err)) fail_msg("%s: %s", eq, err.msg);
  assert_int_equal(y.rank, ry);
  for (int d = 0; d < ry; d++) assert_int_equal(y.dims[d], dy[d]);
  double *r = calloc((size_t)vt_tensor_numel(&y) + 1, sizeof(double));
  int64_t all[8] = {0};
  for (int d = 0; d < ra; d++) all[d] = da[d];
  for (int d = 0; d < rb; d++) all[4 + d] = db[d];
  ref(a.data, b.data, all, r);
  expect_close(y.data, r, vt_tensor_numel(&y), 1e-4);
  free(r);
  vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&y);
}

/* bhid,bhjd->bhij */
static void ref_qk(const float *A, const float *B, const int64_t *d, double *r) {
  int64_t BH = d[0] * d[1], I = d[2], D = d[3], J = d[6];
  for (int64_t t = 0; t < BH; t++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t j = 0; j < J; j++) {
        double s = 0;
        for (int64_t k = 0; k < D; k++) s += (double)A[(t * I + i) * D + k] * B[(t * J + j) * D + k];
        r[(t * I + i) * J + j] = s;
      }
}
/* bhij,bhjd->bhid */
static void ref_av(const float *A, const float *B, const int64_t *d, double *r) {
  int64_t BH = d[0] * d[1], I = d[2], J = d[3], D = d[7];
  for (int64_t t = 0; t < BH; t++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t e = 0; e < D; e++) {
        double s = 0;
        for (int64_t j = 0; j < J; j++) s += (double)A[(t * I + i) * J + j] * B[(t * J + j) * D + e];
        r[(t * I + i) * D + e] = s;
      }
}
/* bid,bjd->bij */
static void ref_bqk(const float *A, const float *B, const int64_t *d, double *r) {
  int64_t Bn = d[0], I = d[1], D = d[2], J = d[5];
  for (int64_t t = 0; t < Bn; t++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t j = 0; j < J; j++) {
        double s = 0;
        for (int64_t k = 0; k < D; k++) s += (double)A[(t * I + i) * D + k] * B[(t * J + j) * D + k];
        r[(t * I + i) * J + j] = s;
      }
}
/* i,j->ij */
static void ref_outer(const float *A, const float *B, const int64_t *d, double *r) {
  for (int64_t i = 0; i < d[0]; i++)
    for (int64_t j = 0; j < d[4]; j++) r[i * d[4] + j] = (double)A[i] * B[j];
}
/* ...ij,...jk->...ik with A [2,3,I,J] and B [3,J,K] (broadcast) */
static void ref_ell(const float *A, const float *B, const int64_t *d, double *r) {
  int64_t I = d[2], J = d[3], K = d[6];
  for (int64_t p = 0; p < 2; p++)
    for (int64_t q = 0; q < 3; q++)
      for (int64_t i = 0; i < I; i++)
        for (int64_t k = 0; k < K; k++) {
          double s = 0;
          for (int64_t j = 0; j < J; j++) s += (double)A[((p * 3 + q) * I + i) * J + j] * B[(q * J + j) * K + k];
          r[((p * 3 + q) * I + i) * K + k] = s;
        }
}
/* bhid,bhjd->bhji (output permuted) */
static void ref_qk_t(const float *A, const float *B, const int64_t *d, double *r) {
  int64_t BH = d[0] * d[1], I = d[2], D = d[3], J = d[6];
  for (int64_t t = 0; t < BH; t++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t j = 0; j < J; j++) {
        double s = 0;
        for (int64_t k = 0; k < D; k++) s += (double)A[(t * I + i) * D + k] * B[(t * J + j) * D + k];
        r[(t * J + j) * I + i] = s;
      }
}

static void test_einsum_transformer(void **state) {
  (void)state;
  check_einsum2("bhid,bhjd->bhij", 4, (int64_t[]){2, 6, 197, 64}, 4, (int64_t[]){2, 6, 197, 64}, 4,
                (int64_t[]){2, 6, 197, 197}, ref_qk);
  check_einsum2("bhij,bhjd->bhid", 4, (int64_t[]){2, 3, 33, 197}, 4, (int64_t[]){2, 3, 197, 7}, 4,
                (int64_t[]){2, 3, 33, 7}, ref_av);
  check_einsum2("bid,bjd->bij", 3, (int64_t[]){3, 33, 7}, 3, (int64_t[]){3, 1, 7}, 3,
                (int64_t[]){3, 33, 1}, ref_bqk);
  check_einsum2("i,j->ij", 1, (int64_t[]){33}, 1, (int64_t[]){7}, 2, (int64_t[]){33, 7}, ref_outer);
  check_einsum2("...ij,...jk->...ik", 4, (int64_t[]){2, 3, 7, 33}, 3, (int64_t[]){3, 33, 5}, 4,
                (int64_t[]){2, 3, 7, 5}, ref_ell);
  check_einsum2("bhid, bhjd -> bhji", 4, (int64_t[]){1, 2, 7, 5}, 4, (int64_t[]){1, 2, 9, 5}, 4,
                (int64_t[]){1, 2, 9, 7}, ref_qk_t);
}

static void test_einsum_generic(void **state) {
  (void)state;
  vt_error err = {0};
  /* trace and diagonal, transpose, sum, implicit output */
  vt_tensor a = mk(VT_F32, 3, (int64_t[]){2, 4, 4}), y = {0};
  const vt_tensor *ins[2] = {&a, NULL};
  tattr diag[1] = {AS("equation", "...ii->...i")};
  if (run_op("Einsum", 1, ins, 1, &y, diag, 1, &err)) fail_msg("%s", err.msg);
  assert_int_equal(y.rank, 2);
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 4; i++)
      assert_true(((float *)y.data)[b * 4 + i] == ((float *)a.data)[b * 16 + i * 5]);
  vt_tensor_free(&y);
  tattr tr[1] = {AS("equation", "kij->jik")};
  if (run_op("Einsum", 1, ins, 1, &y, tr, 1, &err)) fail_msg("%s", err.msg);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        assert_true(((float *)y.data)[(j * 4 + i) * 2 + k] == ((float *)a.data)[(k * 4 + i) * 4 + j]);
  vt_tensor_free(&y);
  tattr imp[1] = {AS("equation", "kij")};   /* implicit: output "ijk" */
  if (run_op("Einsum", 1, ins, 1, &y, imp, 1, &err)) fail_msg("%s", err.msg);
  assert_int_equal(y.dims[0], 4);
  assert_int_equal(y.dims[2], 2);
  assert_true(((float *)y.data)[(1 * 4 + 2) * 2 + 1] == ((float *)a.data)[(1 * 4 + 1) * 4 + 2]);
  vt_tensor_free(&y);
  tattr sum[1] = {AS("equation", "kij->i")};
  if (run_op("Einsum", 1, ins, 1, &y, sum, 1, &err)) fail_msg("%s", err.msg);
  for (int i = 0; i < 4; i++) {
    double s = 0;
    for (int k = 0; k < 2; k++)
      for (int j = 0; j < 4; j++) s += ((float *)a.data)[(k * 4 + i) * 4 + j];
    assert_float_equal(((float *)y.data)[i], s, 1e-5);
  }
  vt_tensor_free(&y);
  /* three operands, and a label summed inside one operand: generic path */
  vt_tensor b = mk(VT_F32, 2, (int64_t[]){4, 3}), c = mk(VT_F32, 1, (int64_t[]){3});
  const vt_tensor *ins3[3] = {&a, &b, &c};
  tattr three[1] = {AS("equation", "kij,jl,l->ki")};
  if (run_op("Einsum", 3, ins3, 1, &y, three, 1, &err)) fail_msg("%s", err.msg);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 4; i++) {
      double s = 0;
      for (int j = 0; j < 4; j++)
        for (int l = 0; l < 3; l++)
          s += (double)((float *)a.data)[(k * 4 + i) * 4 + j] * ((float *)b.data)[j * 3 + l] *
               ((float *)c.data)[l];
      assert_float_equal(((float *)y.data)[k * 4 + i], s, 1e-4);
    }
  vt_tensor_free(&y);
  /* errors */
  tattr bad[1] = {AS("equation", "ij->i")};
  assert_int_equal(run_op("Einsum", 1, ins, 1, &y, bad, 1, &err), VT_ERR_MODEL);
  vt_tensor_free(&y);
  tattr bad2[1] = {AS("equation", "kij->q")};
  assert_int_equal(run_op("Einsum", 1, ins, 1, &y, bad2, 1, &err), VT_ERR_MODEL);
  vt_tensor_free(&y);
  vt_tensor_free(&a); vt_tensor_free(&b); vt_tensor_free(&c);
}


/* ---------- shape inference with symbolic dims ------------------------------------------------ */
static const char *out_dims(vt_graph *g, int32_t v, char *buf, size_t n) {
  size_t o = 0;
  buf[0] = 0;
  for (int d = 0; d < g->values[v].rank; d++) {
    char b[64];
    o += (size_t)snprintf(buf + o, n - o, "%s%s", d ? "," : "", vt_dim_str(g, g->values[v].dims[d], b, sizeof b));
  }
  return buf;
}

static void test_infer_symbolic(void **state) {
  (void)state;
  vt_graph *g = vt_graph_new("sym.onnx");
  vt_dim B = vt_dim_named(g, "B"), T = vt_dim_named(g, "T"), H = vt_dim_named(g, "H");
  int32_t x = vt_graph_add_value(g, "x", VT_F32, 3, (vt_dim[]){B, T, 384});
  int32_t w = vt_graph_add_value(g, "w", VT_F32, 2, (vt_dim[]){384, 1152});
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, "mm", vt_op_lookup("MatMul", ""), 2, (int32_t[]){x, w}, 1, &y);
  int32_t im = vt_graph_add_value(g, "im", VT_F32, 4, (vt_dim[]){B, 3, H, 224});
  int32_t cw = vt_graph_add_value(g, "cw", VT_F32, 4, (vt_dim[]){384, 3, 16, 16});
  int32_t cy = vt_graph_add_value(g, "cy", VT_UNDEFINED, -1, NULL);
  int32_t cn = vt_graph_add_node(g, "conv", vt_op_lookup("Conv", ""), 2, (int32_t[]){im, cw}, 1, &cy);
  vt_attr *a = vt_node_add_attr(g, cn, "strides", VT_ATTR_INTS);
  a->n = 2;
  a->ints = vt_arena_alloc(&g->arena, 16);
  a->ints[0] = a->ints[1] = 16;
  int32_t q = vt_graph_add_value(g, "q", VT_F32, 4, (vt_dim[]){B, 6, T, 64});
  int32_t ey = vt_graph_add_value(g, "ey", VT_UNDEFINED, -1, NULL);
  int32_t en = vt_graph_add_node(g, "es", vt_op_lookup("Einsum", ""), 2, (int32_t[]){q, q}, 1, &ey);
  a = vt_node_add_attr(g, en, "equation", VT_ATTR_STRING);
  a->s = "bhid,bhjd->bhij";
  a->s_len = strlen(a->s);
  int32_t py = vt_graph_add_value(g, "py", VT_UNDEFINED, -1, NULL);
  vt_graph_add_node(g, "gap", vt_op_lookup("GlobalAveragePool", ""), 1, &cy, 1, &py);
  vt_error err = {0};
  if (vt_graph_infer(g, &err)) fail_msg("%s", err.msg);
  char buf[256];
  assert_string_equal(out_dims(g, y, buf, sizeof buf), "B,T,1152");
  assert_int_equal(g->values[cy].dims[0], B);
  assert_int_equal(g->values[cy].dims[1], 384);
  assert_int_equal(g->values[cy].dims[3], 14);
  assert_false(vt_dim_is_const(g->values[cy].dims[2]));
  int64_t bind[64];
  for (int i = 0; i < 64; i++) bind[i] = -1;
  bind[vt_dim_sym(H)] = 224;
  assert_int_equal(vt_dim_eval(g, g->values[cy].dims[2], bind), 14);
  assert_string_equal(out_dims(g, ey, buf, sizeof buf), "B,6,T,T");
  assert_int_equal(g->values[py].dims[2], 1);
  vt_graph_free(g);
}

static int setup(void **state) {
  (void)state;
  pool2 = vt_pool_new(2);
  return pool2 ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  vt_pool_free(pool2);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgemm_direct),
      cmocka_unit_test(test_matmul_sizes),
      cmocka_unit_test(test_matmul_batch),
      cmocka_unit_test(test_matmul_int64),
      cmocka_unit_test(test_matmul_f16),
      cmocka_unit_test(test_gemm),
      cmocka_unit_test(test_conv),
      cmocka_unit_test(test_conv_errors),
      cmocka_unit_test(test_conv_transpose),
      cmocka_unit_test(test_pools_hand),
      cmocka_unit_test(test_batchnorm),
      cmocka_unit_test(test_einsum_transformer),
      cmocka_unit_test(test_einsum_generic),
      cmocka_unit_test(test_infer_symbolic),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

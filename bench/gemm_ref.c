/* gemm_ref.c — benchmark of the reference runtime's float32 GEMM (runtime/gemm.c) on the ViT-S
 * MatMul shapes, 1 and 2 threads; prints the median (and best) GFLOP/s over repeated runs after warm-up.
 * Build: gcc -std=c11 -O2 -D_GNU_SOURCE -Iir -Iruntime bench/gemm_ref.c runtime/gemm.c
 *        runtime/pool.c -lpthread -lm -o gemm_ref */
#include "gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  static const int64_t shapes[][3] = {{197, 1152, 384}, {197, 1536, 384}, {197, 384, 1536},
                                      {1024, 1024, 1024}};
  int reps = argc > 1 ? atoi(argv[1]) : 30;
  for (int nt = 1; nt <= 2; nt++) {
    vt_pool *p = vt_pool_new(nt);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
      float *C = malloc(sizeof(float) * M * N);
      for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7 % 13) - 6) / 8;
      for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i * 5 % 11) - 5) / 8;
      double t[200];
      int r = reps > 200 ? 200 : reps;
      for (int w = 0; w < 3; w++)
        vt_sgemm(p, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
      for (int i = 0; i < r; i++) {
        double t0 = now();
        vt_sgemm(p, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        t[i] = now() - t0;
      }
      qsort(t, r, sizeof t[0], cmp);
      /* spot check a few entries */
      double maxerr = 0;
      for (int64_t q = 0; q < 50; q++) {
        int64_t i = (q * 37) % M, j = (q * 101) % N;
        double ref = 0;
        for (int64_t k = 0; k < K; k++) ref += (double)A[i * K + k] * B[k * N + j];
        double e = fabs(ref - C[i * N + j]);
        if (e > maxerr) maxerr = e;
      }
      double fl = 2.0 * M * N * K * 1e-9;
      printf("threads=%d  %4lldx%-4lld @ %4lldx%-4lld  median %.3f ms  %.1f GFLOP/s  best %.1f"
             " GFLOP/s  (maxerr %.2g)\n",
             nt, (long long)M, (long long)K, (long long)K, (long long)N, t[r / 2] * 1e3,
             fl / t[r / 2], fl / t[0], maxerr);
      free(A); free(B); free(C);
    }
    vt_pool_free(p);
  }
  return 0;
}

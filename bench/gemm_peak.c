/* gemm_peak.c — GFLOP/s of the JIT's GEMM kernel (codegen/: constant weights pre-packed at
 * compile time) on the ViT-B/16 shapes (batch 1: M = 197 tokens; qkv, proj, fc1, fc2) against the
 * machine's measured float32 FMA peak (its own loop of independent vector FMAs, widest vector the
 * CPU has: AVX-512 or AVX2), at 1 and 2 threads. Peak = best of several trials (what the core
 * can do); GEMM = median and best of --reps runs after warm-up, and the median by CPU time (process
 * CPU time / threads: leaves out preemption on a shared machine, not thread imbalance). The box may be shared: run on an
 * idle machine for clean numbers; the best-of columns are the least disturbed.
 * usage: vt_gemm_peak_bench [--reps N] [--threads T] [MxKxN ...] */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen.h"

#include "bench_util.h"   /* now_ms; cpu_ms: flop / (CPU time / threads) tracks the kernel itself */

#define PEAK_ITERS 2000000L   /* ~1 ms per trial: short trials, many of them, so the best one
                                  * ran without preemption on a shared machine */
static volatile float sink;

/* 12 independent FMA chains (enough to cover the FMA latency x units on current cores), in named
 * variables so they stay in registers (an array indexed in a loop is kept in memory at -O2, which
 * made the loop store-bound and the "peak" half the real one). */
#define FMA12(f)                                                                                    \
  a0 = f(a0, m, c); a1 = f(a1, m, c); a2 = f(a2, m, c); a3 = f(a3, m, c); a4 = f(a4, m, c);        \
  a5 = f(a5, m, c); a6 = f(a6, m, c); a7 = f(a7, m, c); a8 = f(a8, m, c); a9 = f(a9, m, c);        \
  a10 = f(a10, m, c); a11 = f(a11, m, c)
__attribute__((target("avx2,fma"))) static void *peak_avx2(void *arg) {
  (void)arg;
  __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
  __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
  __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
  for (long it = 0; it < PEAK_ITERS / 8; it++) {
    FMA12(_mm256_fmadd_ps);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  sink = _mm256_cvtss_f32(s);
  return NULL;
}

__attribute__((target("avx512f"))) static void *peak_avx512(void *arg) {
  (void)arg;
  __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
  __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
  __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
  for (long it = 0; it < PEAK_ITERS / 16; it++) {
    FMA12(_mm512_fmadd_ps);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  sink = _mm512_reduce_add_ps(s);
  return NULL;
}

/* GFLOP/s of `threads` threads each running the FMA loop (best of `trials`). */
static double fma_peak(int threads, int wide, int trials) {
  double flop_per_thread = (double)(PEAK_ITERS / (wide ? 16 : 8)) * 12 * (wide ? 16 : 8) * 2;
  double best = 0;
  for (int t = 0; t < trials; t++) {
    pthread_t th[64];
    double t0 = now_ms();
    for (int i = 1; i < threads; i++) pthread_create(&th[i], NULL, wide ? peak_avx512 : peak_avx2, NULL);
    (wide ? peak_avx512 : peak_avx2)(NULL);
    for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
    double g = flop_per_thread * threads / (now_ms() - t0) / 1e6;
    if (g > best) best = g;
  }
  return best;
}

/* median and best GFLOP/s of the JIT GEMM C[M,N] = A[M,K] * B[K,N] (B constant) */
static int gemm(int64_t M, int64_t K, int64_t N, int threads, int reps, double *med, double *best, double *cpu) {
  vt_error e = {0};
  vt_graph *g = vt_graph_new("gemm_peak");
  if (!g || vt_graph_set_opset(g, "", 17)) return 2;
  vt_dim ad[2] = {M, K};
  int32_t a = vt_graph_add_value(g, "a", VT_F32, 2, ad);
  vt_graph_add_input(g, a);
  float *B = malloc((size_t)(K * N) * sizeof *B), *A = malloc((size_t)(M * K) * sizeof *A);
  if (!B || !A) return 2;
  uint64_t s = 7;
  for (int64_t i = 0; i < K * N; i++) { s = s * 6364136223846793005ull + 1; B[i] = (float)((s >> 40) % 1000) / 1000.0f - 0.5f; }
  for (int64_t i = 0; i < M * K; i++) { s = s * 6364136223846793005ull + 1; A[i] = (float)((s >> 40) % 1000) / 1000.0f - 0.5f; }
  vt_graph_own(g, B);
  vt_tensor bt = {.dtype = VT_F32, .rank = 2, .dims = {K, N}, .data = B};
  int32_t b = vt_graph_add_const(g, "b", &bt);
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  int32_t in[2] = {a, b};
  vt_graph_add_node(g, "mm", vt_op_lookup("MatMul", ""), 2, in, 1, &y);
  vt_graph_add_output(g, y);
  if (vt_graph_prepare(g, NULL, NULL, 0, &e)) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_cg_options opt = {.opt_level = 3, .threads = threads};
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_tensor x = {.dtype = VT_F32, .rank = 2, .dims = {M, K}, .data = A}, out;
  double *t = malloc((size_t)reps * sizeof *t), *ct = malloc((size_t)reps * sizeof *ct);
  for (int r = -3; r < reps; r++) {
    double t0 = now_ms(), c0 = cpu_ms();
    if (vt_jit_run(j, &x, &out, &e)) { fprintf(stderr, "%s\n", e.msg); return 2; }
    if (r >= 0) t[r] = now_ms() - t0, ct[r] = cpu_ms() - c0;
    vt_tensor_free(&out);
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_double);
  qsort(ct, (size_t)reps, sizeof *ct, cmp_double);
  double flop = 2.0 * (double)M * (double)N * (double)K;
  *med = flop / t[reps / 2] / 1e6;
  *best = flop / t[0] / 1e6;
  *cpu = flop / (ct[reps / 2] / threads) / 1e6;
  vt_jit_free(j);
  vt_graph_free(g);
  free(A);
  free(t);
  free(ct);
  return 0;
}

int main(int argc, char **argv) {
  int reps = 30, maxthreads = 2;
  int64_t shapes[16][3];
  int ns = 0;
  for (int i = 1; i < argc; i++) {
    long long m, k, n;
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) maxthreads = atoi(argv[++i]);
    else if (ns < 16 && sscanf(argv[i], "%lldx%lldx%lld", &m, &k, &n) == 3 && m > 0 && k > 0 && n > 0) {
      shapes[ns][0] = m; shapes[ns][1] = k; shapes[ns][2] = n; ns++;
    } else {
      fprintf(stderr, "usage: vt_gemm_peak_bench [--reps N] [--threads T] [MxKxN ...]\n");
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  if (maxthreads < 1 || maxthreads > 64) maxthreads = 2;
  if (!ns) {   /* ViT-B/16, batch 1: qkv, attention proj, MLP fc1, fc2 */
    static const int64_t d[4][3] = {{197, 768, 2304}, {197, 768, 768}, {197, 768, 3072}, {197, 3072, 768}};
    memcpy(shapes, d, sizeof d);
    ns = 4;
  }
  __builtin_cpu_init();
  int wide = __builtin_cpu_supports("avx512f");
  if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
    fprintf(stderr, "vt_gemm_peak_bench: needs AVX2+FMA\n");
    return 2;
  }
  vt_cg_target_info tgt;
  vt_error te = {0};
  if (vt_cg_target(NULL, &tgt, &te)) { fprintf(stderr, "%s\n", te.msg); return 2; }
  printf("GEMM kernels built for %s: %s, micro-tile %d x %d (VTOPT_CPU picks another CPU)\n", tgt.cpu, tgt.isa, tgt.mr,
         tgt.nr);
  printf("FMA peak loop: %s float32\n", wide ? "AVX-512" : "AVX2");
  printf("| threads | shape MxKxN | FMA peak GFLOP/s | GEMM median GFLOP/s | %% of peak | GEMM best GFLOP/s | %% of peak "
         "| by CPU time GFLOP/s | %% of peak |\n");
  printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int th = 1; th <= maxthreads; th *= 2) {
    for (int i = 0; i < ns; i++) {
      double p0 = fma_peak(th, wide, 40), med, best, cpu;
      if (gemm(shapes[i][0], shapes[i][1], shapes[i][2], th, reps, &med, &best, &cpu)) return 2;
      double p1 = fma_peak(th, wide, 40), peak = p0 > p1 ? p0 : p1;
      printf("| %d | %lldx%lldx%lld | %.1f | %.1f | %.0f%% | %.1f | %.0f%% | %.1f | %.0f%% |\n", th,
             (long long)shapes[i][0], (long long)shapes[i][1], (long long)shapes[i][2], peak, med, 100 * med / peak,
             best, 100 * best / peak, cpu, 100 * cpu / peak);
      fflush(stdout);
    }
  }
  return 0;
}

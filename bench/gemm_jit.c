/* gemm_jit.c — GFLOP/s of the JIT's GEMM kernel (codegen/, constant pre-packed B) against the
 * reference runtime's vt_sgemm (runtime/gemm.c, packs B per call) on the ViT-S shapes, at 1 and 2
 * threads. Median and best of --reps runs after warm-up, plus GFLOP/s per CPU-second of the
 * process (robust when other jobs share the cores); also checks both agree (rel. L2).
 * usage: vt_gemm_jit_bench [--reps N] [--epilogue] [MxKxN ...]  (--epilogue: + bias + GELU fused)   (default 197x384x1152 197x384x1536 197x1536x384) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen.h"
#include "gemm.h"

#include "bench_util.h"

static int epilogue;   /* --epilogue: + bias + GELU (erf form) fused after the GEMM */

static int32_t scalar_const(vt_graph *g, const char *name, float x) {
  float *p = malloc(sizeof *p);
  *p = x;
  vt_graph_own(g, p);
  vt_tensor t = {.dtype = VT_F32, .rank = 0, .data = p};
  return vt_graph_add_const(g, name, &t);
}

static int32_t op(vt_graph *g, const char *name, int32_t a, int32_t b) {
  static int counter;
  char vn[64];
  snprintf(vn, sizeof vn, "%s_out%d", name, counter++);
  int32_t y = vt_graph_add_value(g, vn, VT_UNDEFINED, -1, NULL);
  int32_t in[2] = {a, b};
  vt_graph_add_node(g, name, vt_op_lookup(name, ""), b >= 0 ? 2 : 1, in, 1, &y);
  return y;
}

static int bench(int64_t M, int64_t K, int64_t N, int threads, int reps) {
  vt_error e = {0};
  vt_graph *g = vt_graph_new("gemm_bench");
  if (!g || vt_graph_set_opset(g, "", 17)) return 2;
  vt_dim ad[2] = {M, K};
  int32_t a = vt_graph_add_value(g, "a", VT_F32, 2, ad);
  vt_graph_add_input(g, a);
  float *B = malloc((size_t)(K * N) * sizeof *B), *A = malloc((size_t)(M * K) * sizeof *A);
  float *Cref = malloc((size_t)(M * N) * sizeof *Cref);
  if (!B || !A || !Cref) return 2;
  uint64_t s = 7;
  for (int64_t i = 0; i < K * N; i++) { s = s * 6364136223846793005ull + 1; B[i] = (float)((s >> 40) % 1000) / 1000.0f - 0.5f; }
  for (int64_t i = 0; i < M * K; i++) { s = s * 6364136223846793005ull + 1; A[i] = (float)((s >> 40) % 1000) / 1000.0f - 0.5f; }
  vt_graph_own(g, B);
  vt_tensor bt = {.dtype = VT_F32, .rank = 2, .dims = {K, N}, .data = B};
  int32_t b = vt_graph_add_const(g, "b", &bt);
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  int32_t in[2] = {a, b};
  vt_graph_add_node(g, "mm", vt_op_lookup("MatMul", ""), 2, in, 1, &y);
  if (epilogue) {
    float *bias = calloc((size_t)N, sizeof *bias);
    vt_graph_own(g, bias);
    vt_tensor bt2 = {.dtype = VT_F32, .rank = 1, .dims = {N}, .data = bias};
    int32_t bv = vt_graph_add_const(g, "bias", &bt2);
    int32_t t = op(g, "Add", y, bv);
    int32_t u = op(g, "Div", t, scalar_const(g, "rs2", 1.4142135f));
    u = op(g, "Erf", u, -1);
    u = op(g, "Add", u, scalar_const(g, "one", 1.0f));
    u = op(g, "Mul", t, u);
    y = op(g, "Mul", u, scalar_const(g, "half", 0.5f));
  }
  vt_graph_add_output(g, y);
  if (vt_graph_prepare(g, NULL, NULL, 0, &e)) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_cg_options opt = {.opt_level = 3, .threads = threads};
  double t0 = now_ms();
  vt_jit *j = vt_jit_compile(g, &opt, &e);
  if (!j) { fprintf(stderr, "%s\n", e.msg); return 2; }
  double tc = now_ms() - t0;
  vt_tensor x = {.dtype = VT_F32, .rank = 2, .dims = {M, K}, .data = A}, out;
  double *tj = malloc((size_t)reps * sizeof *tj), *tr = malloc((size_t)reps * sizeof *tr);
  double cj = 0, cr = 0;
  vt_pool *pool = vt_pool_new(threads);
  for (int r = -3; r < reps; r++) {
    if (r == 0) cj = cpu_ms();
    double t = now_ms();
    if (vt_jit_run(j, &x, &out, &e)) { fprintf(stderr, "%s\n", e.msg); return 2; }
    if (r >= 0) tj[r] = now_ms() - t;
    if (r < reps - 1) vt_tensor_free(&out);
  }
  cj = cpu_ms() - cj;
  for (int r = -3; r < reps; r++) {
    if (r == 0) cr = cpu_ms();
    double t = now_ms();
    vt_sgemm(pool, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, Cref, N);
    if (r >= 0) tr[r] = now_ms() - t;
  }
  cr = cpu_ms() - cr;
  double num = 0, den = 0;
  for (int64_t i = 0; i < M * N && epilogue; i++) {   /* reference epilogue on vt_sgemm's result */
    double t = Cref[i];
    Cref[i] = (float)(0.5 * t * (1.0 + erf(t / 1.4142135)));
  }
  for (int64_t i = 0; i < M * N; i++) {
    double d = (double)((float *)out.data)[i] - Cref[i];
    num += d * d;
    den += (double)Cref[i] * Cref[i];
  }
  vt_tensor_free(&out);
  qsort(tj, (size_t)reps, sizeof *tj, cmp_double);
  qsort(tr, (size_t)reps, sizeof *tr, cmp_double);
  double flop = 2.0 * (double)M * (double)N * (double)K;
  printf("%5lldx%5lldx%5lld %d thr | jit median %6.1f best %6.1f cpu %6.1f GFLOP/s | vt_sgemm median %6.1f best %6.1f cpu %6.1f | "
         "median ratio %.2f | relL2 %.1e | compile %.0f ms\n",
         (long long)M, (long long)K, (long long)N, threads, flop / tj[reps / 2] / 1e6, flop / tj[0] / 1e6,
         flop * reps / (cj / threads) / 1e6, flop / tr[reps / 2] / 1e6, flop / tr[0] / 1e6,
         flop * reps / (cr / threads) / 1e6, tr[reps / 2] / tj[reps / 2], sqrt(num / den), tc);
  fflush(stdout);
  vt_pool_free(pool);
  vt_jit_free(j);
  vt_graph_free(g);
  free(A); free(Cref); free(tj); free(tr);
  return 0;
}

int main(int argc, char **argv) {
  int reps = 20;
  int64_t shapes[16][3];
  int ns = 0;
  for (int i = 1; i < argc; i++) {
    long long m, k, n;
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--epilogue")) epilogue = 1;
    else if (ns < 16 && sscanf(argv[i], "%lldx%lldx%lld", &m, &k, &n) == 3 && m > 0 && k > 0 && n > 0) {
      shapes[ns][0] = m; shapes[ns][1] = k; shapes[ns][2] = n; ns++;
    } else {
      fprintf(stderr, "usage: vt_gemm_jit_bench [--reps N] [--epilogue] [MxKxN ...]\n");
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  if (!ns) {
    static const int64_t d[3][3] = {{197, 384, 1152}, {197, 384, 1536}, {197, 1536, 384}};
    memcpy(shapes, d, sizeof d);
    ns = 3;
  }
  for (int t = 1; t <= 2; t++)
    for (int i = 0; i < ns; i++)
      if (bench(shapes[i][0], shapes[i][1], shapes[i][2], t, reps)) return 2;
  return 0;
}

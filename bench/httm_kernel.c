/* httm_kernel.c — micro-benchmark of ai.vtopt.HeadwiseMergedAttention alone at vggt_full's
 * global-attention shape (B 1, H 6, N = T x 261, head dim 64) against the interpreter's dense
 * Attention on the same Q/K/V. Q/K/V are smooth random "videos": each frame is the previous one
 * plus small noise (so temporal matches exist, as in real clips); the cost of the merged op does
 * not depend on the values beyond the outlier count, which is fixed by the outlier fraction.
 * Prints the median time of each; with VTOPT_HTTM_PROFILE=1 the kernel prints its phases.
 * Build (against build/'s static libraries) and run, e.g. the phases at T = 64 with 2 threads:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iruntime -Iir bench/httm_kernel.c build/runtime/libvt_runtime.a \
 *      build/ir/libvt_ir.a -lm -lpthread -o /tmp/httm_kernel
 *   VTOPT_HTTM_PROFILE=1 /tmp/httm_kernel 64 3 2 0
 * usage: httm_kernel T [runs] [threads] [dense 0|1] [q_keep kv_keep n_s n_t] */
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s T [runs] [threads] [dense 0|1] [q_keep kv_keep n_s n_t]\n", argv[0]);
    return 2;
  }
  int64_t T = atoll(argv[1]), P = 261, H = 6, D = 64, N = T * P;
  int runs = argc > 2 ? atoi(argv[2]) : 3, th = argc > 3 ? atoi(argv[3]) : 2, dense = argc > 4 ? atoi(argv[4]) : 1;
  float qk = argc > 5 ? (float)atof(argv[5]) : 0.2f, kk = argc > 6 ? (float)atof(argv[6]) : 0.3f;
  int64_t ns = argc > 7 ? atoll(argv[7]) : 128, nt = argc > 8 ? atoll(argv[8]) : 30;
  vt_graph *g = vt_graph_new("httm_kernel");
  vt_dim d[4] = {1, H, N, D};
  int32_t in[3];
  for (int i = 0; i < 3; i++) {
    const char *nm[3] = {"q", "k", "v"};
    in[i] = vt_graph_add_value(g, nm[i], VT_F32, 4, d);
    vt_graph_add_input(g, in[i]);
  }
  int32_t o1 = vt_graph_add_value(g, "o1", VT_UNDEFINED, -1, NULL), o2 = vt_graph_add_value(g, "o2", VT_UNDEFINED, -1, NULL);
  int32_t n1 = vt_graph_add_node(g, "merged", VT_OP_HeadwiseMergedAttention, 3, in, 1, &o1);
  int32_t n2 = vt_graph_add_node(g, "dense", VT_OP_Attention, 3, in, 1, &o2);
  vt_graph_add_output(g, o1);
  vt_graph_add_output(g, o2);
  const char *fn[3] = {"q_keep", "kv_keep", "outlier"};
  float fv[3] = {qk, kk, qk < 1.0f ? 0.1f : 0.0f};
  for (int i = 0; i < 3; i++) vt_node_add_attr(g, n1, fn[i], VT_ATTR_FLOAT)->f = fv[i];
  const char *inames[5] = {"n_s", "n_t", "tokens_per_frame", "protected", "prop_attn"};
  int64_t iv[5] = {ns, nt, P, 5, 1};
  for (int i = 0; i < 5; i++) vt_node_add_attr(g, n1, inames[i], VT_ATTR_INT)->i = iv[i];
  vt_error e = {0};
  if (vt_graph_infer(g, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_tensor x[3], out = {0};
  int64_t dims[4] = {1, H, N, D};
  for (int i = 0; i < 3; i++) {
    memset(&x[i], 0, sizeof x[i]);
    if (vt_tensor_alloc(&x[i], VT_F32, 4, dims, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
    float *p = x[i].data;
    for (int64_t h = 0; h < H; h++)
      for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < D; c++) {
          float *r = p + (h * N + n) * D + c;
          *r = n < P ? frand() : r[-P * D] + 0.3f * frand();
        }
  }
  if (vt_tensor_alloc(&out, VT_F32, 4, dims, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_pool *pool = vt_pool_new(th);
  const vt_tensor *ins[3] = {&x[0], &x[1], &x[2]};
  vt_tensor *outs[1] = {&out};
  for (int which = 0; which < 1 + (dense != 0); which++) {
    double *t = calloc((size_t)runs, sizeof *t);
    for (int r = 0; r < runs; r++) {
      double t0 = now_ms();
      if (vt_run_node(g, which ? n2 : n1, ins, outs, pool, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
      t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    printf("%s T=%lld N=%lld: median %.1f ms (min %.1f) over %d runs, %d threads\n", which ? "dense Attention" : "HeadwiseMergedAttention",
           (long long)T, (long long)N, t[runs / 2], t[0], runs, th);
    free(t);
  }
  vt_pool_free(pool);
  for (int i = 0; i < 3; i++) vt_tensor_free(&x[i]);
  vt_tensor_free(&out);
  vt_graph_free(g);
  return 0;
}

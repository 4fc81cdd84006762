/* eventful_attn_bench.c — micro-benchmark of one ai.vtopt.EventfulAttention node at
 * vitstream_b16's global-attention shape (B 1, H 12, N 1764 = 42 x 42 tokens, head dim 64, the
 * decomposed relative-position bias bias_rows/bias_cols [1,12,N,42]) in an interpreter session:
 * frame 0 is the flush (dense), every later frame updates M tokens (random, ascending; their
 * q/k/v and bias rows change a little, as a gate's picks would). Prints the flush time and the
 * median / min time of the sparse frames in ms per frame and the median CPU time (all threads)
 * of a sparse frame; no pass/fail (a speed probe).
 * Run with `nice -n 10` on a shared machine and compare medians of alternated runs.
 * usage: vt_eventful_attn_bench [M=384] [frames=6] [threads=2] [exp_ref 0|1] [relpos 0|1] [N=1764] */
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

int main(int argc, char **argv) {
  int64_t M = argc > 1 ? atoll(argv[1]) : 384;
  int frames = argc > 2 ? atoi(argv[2]) : 6, th = argc > 3 ? atoi(argv[3]) : 2;
  int exp_ref = argc > 4 ? atoi(argv[4]) : 0, rel = argc > 5 ? atoi(argv[5]) : 1;
  int64_t N = argc > 6 ? atoll(argv[6]) : 1764, H = 12, D = 64, kw = (int64_t)llround(sqrt((double)N)), kh = kw;
  if (M < 0 || M > N || frames < 2 || th < 1 || kh * kw != N) {
    fprintf(stderr, "usage: %s [M <= N] [frames >= 2] [threads >= 1] [exp_ref 0|1] [relpos 0|1] [N: a square]\n", argv[0]);
    return 2;
  }
  vt_graph *g = vt_graph_new("eventful_attn_bench");
  vt_dim dq[4] = {1, H, N, D}, dr[4] = {1, H, N, kh}, dc[4] = {1, H, N, kw}, dmi[1] = {vt_dim_named(g, "M")};
  int32_t q = vt_graph_add_value(g, "q", VT_F32, 4, dq), k = vt_graph_add_value(g, "k", VT_F32, 4, dq);
  int32_t v = vt_graph_add_value(g, "v", VT_F32, 4, dq), idx = vt_graph_add_value(g, "idx", VT_I64, 1, dmi);
  int32_t rows = rel ? vt_graph_add_value(g, "rows", VT_F32, 4, dr) : -1;
  int32_t cols = rel ? vt_graph_add_value(g, "cols", VT_F32, 4, dc) : -1;
  int32_t gin[6] = {q, k, v, idx, rows, cols};
  int n_gin = rel ? 6 : 4;
  for (int i = 0; i < n_gin; i++) vt_graph_add_input(g, gin[i]);
  int32_t y = vt_graph_add_value(g, "y", VT_UNDEFINED, -1, NULL);
  int32_t n = vt_graph_add_node(g, "eattn", VT_OP_EventfulAttention, rel ? 8 : 6,
                                (int32_t[]){q, k, v, -1, -1, idx, rows, cols}, 1, &y);
  vt_node_add_attr(g, n, "scale", VT_ATTR_FLOAT)->f = 0.125f;
  vt_node_add_attr(g, n, "exp_ref", VT_ATTR_INT)->i = exp_ref;
  vt_graph_add_output(g, y);
  vt_error e = {0};
  if (vt_graph_infer(g, &e) != VT_OK || vt_graph_verify(g, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_interp *it = vt_interp_new(g, th, &e);
  if (!it) { fprintf(stderr, "%s\n", e.msg); return 2; }
  vt_tensor in[6] = {{0}};
  int64_t aq[4] = {1, H, N, D}, ar[4] = {1, H, N, kh}, ac[4] = {1, H, N, kw};
  const int64_t *ad[6] = {aq, aq, aq, NULL, ar, ac};
  for (int i = 0; i < n_gin; i++) {
    if (i == 3) continue;
    if (vt_tensor_alloc(&in[i], VT_F32, 4, ad[i], &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
    float *p = in[i].data;
    for (int64_t x = 0; x < vt_tensor_numel(&in[i]); x++) p[x] = (i < 2 ? 1.5f : 1.0f) * frand();
  }
  int64_t *ix = malloc((size_t)N * sizeof *ix);
  double *t = calloc((size_t)frames, sizeof *t), *cpu = calloc((size_t)frames, sizeof *cpu);
  for (int f = 0; f < frames; f++) {
    int64_t m = f == 0 ? N : M, c = 0;
    /* m of N tokens, ascending (selection sampling); their rows drift */
    for (int64_t i = 0; i < N && c < m; i++)
      if ((double)(frand() * 0.5f + 0.5f) * (double)(N - i) < (double)(m - c)) ix[c++] = i;
    for (int64_t j = 0; j < c && f > 0; j++)
      for (int i = 0; i < n_gin; i++) {
        if (i == 3) continue;
        int64_t w = in[i].dims[3];
        for (int64_t h = 0; h < H; h++) {
          float *r = (float *)in[i].data + (h * N + ix[j]) * w;
          for (int64_t x = 0; x < w; x++) r[x] += 0.1f * frand();
        }
      }
    vt_tensor_free(&in[3]);
    int64_t di[1] = {c};
    if (vt_tensor_alloc(&in[3], VT_I64, 1, di, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
    memcpy(in[3].data, ix, (size_t)c * sizeof *ix);
    vt_tensor out = {0};
    double t0 = now_ms(), c0 = cpu_ms();
    if (vt_interp_run(it, in, &out, &e) != VT_OK) { fprintf(stderr, "%s\n", e.msg); return 2; }
    t[f] = now_ms() - t0;
    cpu[f] = cpu_ms() - c0;
    vt_tensor_free(&out);
  }
  double flush = t[0];
  qsort(t + 1, (size_t)(frames - 1), sizeof *t, cmp_double);
  qsort(cpu + 1, (size_t)(frames - 1), sizeof *cpu, cmp_double);
  printf("EventfulAttention N=%lld H=%lld D=%lld M=%lld exp_ref=%d relpos=%d threads=%d: flush %.1f ms, "
         "sparse frame median %.1f ms (min %.1f) over %d frames, CPU time median %.1f ms\n",
         (long long)N, (long long)H, (long long)D, (long long)M, exp_ref, rel, th, flush, t[1 + (frames - 1) / 2],
         t[1], frames - 1, cpu[1 + (frames - 1) / 2]);
  free(t);
  free(cpu);
  free(ix);
  for (int i = 0; i < 6; i++) vt_tensor_free(&in[i]);
  vt_interp_free(it);
  vt_graph_free(g);
  return 0;
}

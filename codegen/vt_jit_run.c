/* vt_jit_run.c — end-to-end driver of the JIT until the vtopt CLI gains --jit: loads an ONNX
 * model, pins dims, compiles it with the JIT, runs JIT and interpreter on the same inputs and
 * prints the relative L2 error per output and the median latency of both. Exit 0 when every
 * output agrees within --tol, 1 when not, 2 on a model/usage error. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen.h"
#include "frontend.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void usage(void) {
  fprintf(stderr,
          "usage: vt_jit_run MODEL.onnx [--dim SYM=N]... [--input NAME=FILE.npy]... [--threads N]\n"
          "                  [--runs R] [-O0..-O3] [--stats] [--dump-llvm FILE] [--tol T] [--no-interp]\n"
          "                  [-o FILE.so [--tag TAG]]   (compile to a shared library instead)\n"
          "Inputs not given are random uniform in [-1, 1] (seed 1); symbolic dims of inputs given as .npy\n"
          "are pinned from the files. Prints rel. L2 JIT vs interpreter per output.\n");
}

int main(int argc, char **argv) {
  const char *model = NULL, *dump = NULL, *so = NULL, *tag = "model";
  const char *pin_names[32], *in_names[32], *in_files[32];
  int64_t pin_vals[32];
  int npins = 0, nin = 0, threads = 2, runs = 5, olv = 3, stats = 0, interp = 1;
  double tol = 1e-4;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if ((!strcmp(a, "--dim") || !strcmp(a, "--input")) && i + 1 < argc) {
      char *kv = argv[++i], *eq = strchr(kv, '=');
      if (!eq) { usage(); return 2; }
      *eq = 0;
      if (!strcmp(a, "--dim")) {
        if (npins == 32) { usage(); return 2; }
        pin_names[npins] = kv;
        pin_vals[npins++] = atoll(eq + 1);
      } else {
        if (nin == 32) { usage(); return 2; }
        in_names[nin] = kv;
        in_files[nin++] = eq + 1;
      }
    } else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(a, "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else if (!strcmp(a, "--tol") && i + 1 < argc) tol = atof(argv[++i]);
    else if (!strcmp(a, "--dump-llvm") && i + 1 < argc) dump = argv[++i];
    else if (!strcmp(a, "-o") && i + 1 < argc) so = argv[++i];
    else if (!strcmp(a, "--tag") && i + 1 < argc) tag = argv[++i];
    else if (!strcmp(a, "--stats")) stats = 1;
    else if (!strcmp(a, "--no-interp")) interp = 0;
    else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) olv = a[2] - '0';
    else if (a[0] != '-' && !model) model = a;
    else { usage(); return 2; }
  }
  if (!model || runs < 1) { usage(); return 2; }
  vt_error e = {0};
  vt_graph *g = NULL;
  int rc = vt_onnx_load(model, &g, &e);
  /* named symbolic dims of inputs given as .npy files are pinned from those files */
  for (int32_t i = 0; !rc && i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    for (int k = 0; k < nin && !rc; k++) {
      if (strcmp(in_names[k], v->name)) continue;
      vt_tensor t;
      memset(&t, 0, sizeof t);
      if ((rc = vt_npy_read(in_files[k], &t, &e))) break;
      for (int32_t d = 0; d < v->rank && d < t.rank; d++) {
        if (vt_dim_is_const(v->dims[d]) || g->syms[vt_dim_sym(v->dims[d])].kind != VT_SYM_NAMED) continue;
        const char *nm = g->syms[vt_dim_sym(v->dims[d])].name;
        bool have = false;
        for (int p = 0; p < npins; p++) have |= !strcmp(pin_names[p], nm);
        if (!have && npins < 32) {
          pin_names[npins] = nm;
          pin_vals[npins++] = t.dims[d];
        }
      }
      vt_tensor_free(&t);
    }
  }
  if (!rc) rc = vt_graph_prepare(g, pin_names, pin_vals, npins, &e);
  if (rc) { fprintf(stderr, "%s\n", e.msg); vt_graph_free(g); return 2; }
  vt_tensor *in = calloc((size_t)g->n_inputs + 1, sizeof *in);
  vt_tensor *oj = calloc((size_t)g->n_outputs + 1, sizeof *oj), *oi = calloc((size_t)g->n_outputs + 1, sizeof *oi);
  double *tj = calloc((size_t)runs, sizeof *tj), *ti = calloc((size_t)runs, sizeof *ti);
  vt_jit *j = NULL;
  vt_interp *it = NULL;
  int status = 0;
  if (!in || !oj || !oi || !tj || !ti) { fprintf(stderr, "out of memory\n"); status = 2; goto done; }
  uint64_t seed = 1;
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    const char *file = NULL;
    for (int k = 0; k < nin; k++) if (!strcmp(in_names[k], v->name)) file = in_files[k];
    if (file) {
      if (vt_npy_read(file, &in[i], &e)) { fprintf(stderr, "%s\n", e.msg); status = 2; goto done; }
      continue;
    }
    int64_t dims[VT_MAX_RANK];
    for (int32_t d = 0; d < v->rank; d++) {
      if (!vt_dim_is_const(v->dims[d])) {
        fprintf(stderr, "%s: input '%s' has a symbolic dim: pin it with --dim\n", model, v->name);
        status = 2;
        goto done;
      }
      dims[d] = v->dims[d];
    }
    if (vt_tensor_alloc(&in[i], v->dtype, v->rank, dims, &e)) { fprintf(stderr, "%s\n", e.msg); status = 2; goto done; }
    int64_t n = vt_tensor_numel(&in[i]);
    for (int64_t k = 0; k < n; k++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      double u = (double)(seed >> 11) / 9007199254740992.0;
      if (v->dtype == VT_F32) ((float *)in[i].data)[k] = (float)(2 * u - 1);
      else if (v->dtype == VT_I64) ((int64_t *)in[i].data)[k] = (int64_t)(u * 10);
    }
  }
  vt_cg_options opt = {.opt_level = olv, .threads = threads, .dump_llvm = dump, .stats = stats ? stdout : NULL};
  double t0 = now_ms();
  if (so) {
    if (vt_cg_emit_so(g, &opt, so, tag, &e)) { fprintf(stderr, "%s\n", e.msg); status = 2; goto done; }
    printf("wrote %s (tag %s) in %.1f ms\n", so, tag, now_ms() - t0);
    goto done;
  }
  j = vt_jit_compile(g, &opt, &e);
  if (!j) { fprintf(stderr, "%s\n", e.msg); status = 2; goto done; }
  vt_jit_stats st;
  vt_jit_get_stats(j, &st);
  printf("compile: %.1f ms (%d gemm, %d elementwise, %d row, %d copy, %d fallback kernels; %d nodes generated)\n",
         now_ms() - t0, st.n_gemm, st.n_elementwise, st.n_row, st.n_copy, st.n_fallback, st.n_fused_nodes);
  double cj = cpu_ms(), ci = 0;
  for (int r = 0; r < runs; r++) {
    for (int32_t o = 0; o < g->n_outputs; o++) vt_tensor_free(&oj[o]);
    double a = now_ms();
    if (vt_jit_run(j, in, oj, &e)) { fprintf(stderr, "jit: %s\n", e.msg); status = 2; goto done; }
    tj[r] = now_ms() - a;
  }
  cj = (cpu_ms() - cj) / runs;
  qsort(tj, (size_t)runs, sizeof *tj, cmp_double);
  vt_jit_get_stats(j, &st);
  printf("jit:    best %.3f ms; median %.3f ms over %d runs (%d threads); last run %.3f ms of which %.3f ms in fallback kernels"
         " (%d host nodes in place, %d copied); compile CPU %.0f ms\n",
         tj[0], tj[runs / 2], runs, threads, st.last_run_ms, st.last_fallback_ms, st.last_host_direct,
         st.last_host_copied, st.compile_cpu_ms);
  if (interp) {
    it = vt_interp_new(g, threads, &e);
    if (!it) { fprintf(stderr, "%s\n", e.msg); status = 2; goto done; }
    ci = cpu_ms();
    for (int r = 0; r < runs; r++) {
      for (int32_t o = 0; o < g->n_outputs; o++) vt_tensor_free(&oi[o]);
      double a = now_ms();
      if (vt_interp_run(it, in, oi, &e)) { fprintf(stderr, "interp: %s\n", e.msg); status = 2; goto done; }
      ti[r] = now_ms() - a;
    }
    ci = (cpu_ms() - ci) / runs;
    qsort(ti, (size_t)runs, sizeof *ti, cmp_double);
    printf("interp: median %.3f ms, best %.3f ms over %d runs; speedup %.2fx (median), %.2fx (best)\n", ti[runs / 2],
           ti[0], runs, ti[runs / 2] / tj[runs / 2], ti[0] / tj[0]);
    printf("CPU time per run: jit %.1f ms, interp %.1f ms (ratio %.2f)\n", cj, ci, ci / cj);
    for (int32_t o = 0; o < g->n_outputs; o++) {
      int64_t n = vt_tensor_numel(&oi[o]);
      if (n != vt_tensor_numel(&oj[o]) || oi[o].dtype != oj[o].dtype) {
        printf("output %s: shape/dtype differ\n", g->values[g->outputs[o]].name);
        status = 1;
        continue;
      }
      double num = 0, den = 0;
      for (int64_t k = 0; k < n; k++) {
        double x = vt_tensor_get_f64(&oj[o], k), y = vt_tensor_get_f64(&oi[o], k);
        num += (x - y) * (x - y);
        den += y * y;
      }
      double rel = den > 0 ? sqrt(num / den) : sqrt(num);
      printf("output %s: rel L2 %.3g%s\n", g->values[g->outputs[o]].name, rel, rel <= tol ? "" : "  (ABOVE TOLERANCE)");
      if (!(rel <= tol)) status = 1;
    }
  }
done:
  if (g) {
    for (int32_t i = 0; in && i < g->n_inputs; i++) vt_tensor_free(&in[i]);
    for (int32_t o = 0; o < g->n_outputs; o++) {
      if (oj) vt_tensor_free(&oj[o]);
      if (oi) vt_tensor_free(&oi[o]);
    }
  }
  free(in); free(oj); free(oi); free(tj); free(ti);
  vt_jit_free(j);
  vt_interp_free(it);
  vt_graph_free(g);
  return status;
}

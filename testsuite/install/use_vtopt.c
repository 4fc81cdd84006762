/* use_vtopt.c — a program built against an installed vtopt only (pkg-config vtopt / find_package):
 * the compiler library loads an ONNX model, pins its batch, runs a pass pipeline and compiles it
 * to a fast.so; then the fast.so is used through <vtopt/model.h> alone (dlopen), and its output
 * compared with the interpreter's (vt_run). Exit 0 and "ok" when they agree.
 * usage: use_vtopt MODEL.onnx PIPELINE OUT.so */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "codegen.h"
#include "frontend.h"
#include "ir.h"
#include "passes.h"
#include "runtime.h"
#include <vtopt/model.h>

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: use_vtopt MODEL.onnx PIPELINE OUT.so\n"); return 2; }
  vt_error e = {0};
  vt_graph *g = NULL;
  const char *pin = "batch";
  int64_t one = 1;
  vt_pipeline pl;
  if (vt_onnx_load(argv[1], &g, &e) || vt_graph_prepare(g, &pin, &one, 1, &e) ||
      vt_pipeline_parse(argv[2], &pl, &e) || vt_pipeline_run(&pl, g, NULL, &e) ||
      vt_cg_emit_so(g, NULL, argv[3], "installed", &e)) {
    fprintf(stderr, "use_vtopt: %s\n", e.msg);
    return 1;
  }
  vt_pipeline_free(&pl);
  /* the reference: the interpreter on the same rewritten graph, input all 0.5 */
  const vt_value *in = &g->values[g->inputs[0]];
  vt_tensor x = {0}, ref = {0};
  if (vt_tensor_alloc(&x, in->dtype, in->rank, in->dims, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
  int64_t n = vt_tensor_numel(&x);
  for (int64_t i = 0; i < n; i++) ((float *)x.data)[i] = 0.5f + 0.001f * (float)(i % 97);
  vt_interp *it = vt_interp_new(g, 1, &e);
  if (!it || vt_interp_run(it, &x, &ref, &e)) { fprintf(stderr, "use_vtopt: interpreter: %s\n", e.msg); return 1; }
  vt_interp_free(it);

  void *dl = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
  if (!dl) { fprintf(stderr, "use_vtopt: %s\n", dlerror()); return 1; }
  int (*create)(int, vtopt_session **) = (int (*)(int, vtopt_session **))dlsym(dl, "installed_create");
  int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *) =
      (int (*)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *))dlsym(dl, "installed_run");
  void (*destroy)(vtopt_session *) = (void (*)(vtopt_session *))dlsym(dl, "installed_destroy");
  if (!create || !run || !destroy) { fprintf(stderr, "use_vtopt: symbols missing\n"); return 1; }
  vtopt_session *s = NULL;
  if (create(1, &s) != VTOPT_OK) { fprintf(stderr, "use_vtopt: create failed\n"); return 1; }
  vtopt_tensor xin = {.dtype = 1, .rank = x.rank, .data = x.data}, y = {.dtype = 1, .rank = ref.rank};
  for (int k = 0; k < x.rank; k++) xin.dims[k] = x.dims[k];
  for (int k = 0; k < ref.rank; k++) y.dims[k] = ref.dims[k];
  int64_t m = vt_tensor_numel(&ref);
  y.data = calloc((size_t)m, sizeof(float));
  if (!y.data || run(s, &xin, &y) != VTOPT_OK) { fprintf(stderr, "use_vtopt: run failed\n"); return 1; }
  double num = 0, den = 0;
  for (int64_t i = 0; i < m; i++) {
    double a = ((float *)y.data)[i], b = ((float *)ref.data)[i];
    num += (a - b) * (a - b);
    den += b * b;
  }
  double rel = sqrt(num / (den > 0 ? den : 1));
  printf("use_vtopt: %s through %s: %lld outputs, rel L2 vs interpreter %.3g\n", argv[1], argv[2], (long long)m, rel);
  destroy(s);
  dlclose(dl);
  free(y.data);
  vt_tensor_free(&x);
  vt_tensor_free(&ref);
  vt_graph_free(g);
  if (!(rel <= 1e-4)) return 1;
  puts("ok");
  return 0;
}

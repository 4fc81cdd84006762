/* gpu_run.c — runs a compiled model (fast.so, CPU or CUDA) through include/vtopt/model.h with
 * float32 .npy inputs, writes its outputs as OUTDIR/out<i>.npy and prints the median wall time
 * per run. Needs only libc (no LLVM, no vtopt): scripts/gpu_check.sh carries it to GPU machines.
 * usage: gpu_run LIB.so TAG RUNS OUTDIR IN.npy... (inputs in the signature's order) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi_util.h"
#include "vtopt/model.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int write_npy(const char *path, const vtopt_tensor *t) {
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  char shape[256] = "";
  size_t n = 0;
  for (int d = 0; d < t->rank; d++) n += (size_t)snprintf(shape + n, sizeof shape - n, "%lld,%s", (long long)t->dims[d], "");
  if (t->rank > 1) shape[n - 1] = 0;
  char hdr[512];
  int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
  int pad = 64 - (10 + hl + 1) % 64;
  if (pad == 64) pad = 0;
  unsigned short len = (unsigned short)(hl + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fwrite(&len, 2, 1, f);
  fwrite(hdr, 1, (size_t)hl, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  fwrite(t->data, sizeof(float), (size_t)numel(t), f);
  return fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: gpu_run LIB.so TAG RUNS OUTDIR IN.npy...\n"); return 2; }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { fprintf(stderr, "gpu_run: %s\n", dlerror()); return 2; }
  char nm[160];
  snprintf(nm, sizeof nm, "%s_create", argv[2]);
  int (*create)(int, vtopt_session **) = (int (*)(int, vtopt_session **))dlsym(h, nm);
  snprintf(nm, sizeof nm, "%s_run", argv[2]);
  int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *) = (int (*)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *))dlsym(h, nm);
  snprintf(nm, sizeof nm, "%s_last_error", argv[2]);
  const char *(*last_error)(const vtopt_session *) = (const char *(*)(const vtopt_session *))dlsym(h, nm);
  snprintf(nm, sizeof nm, "%s_destroy", argv[2]);
  void (*destroy)(vtopt_session *) = (void (*)(vtopt_session *))dlsym(h, nm);
  snprintf(nm, sizeof nm, "%s_signature", argv[2]);
  const char *(*signature)(void) = (const char *(*)(void))dlsym(h, nm);
  if (!create || !run || !last_error || !destroy || !signature) { fprintf(stderr, "gpu_run: %s has no tag %s\n", argv[1], argv[2]); return 2; }
  int runs = atoi(argv[3]);
  if (runs < 1) runs = 1;
  int nin = argc - 5, nout = 0;
  for (const char *p = strstr(signature(), "\"outputs\":"); p && (p = strstr(p, "\"name\":")); p++) nout++;
  vtopt_tensor in[32], out[32];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  for (int i = 0; i < nin && i < 32; i++)
    if (read_npy(argv[5 + i], &in[i])) { fprintf(stderr, "gpu_run: cannot read %s (float32 .npy)\n", argv[5 + i]); return 2; }
  vtopt_session *s = NULL;
  if (create(0, &s)) { fprintf(stderr, "gpu_run: create: %s\n", last_error(NULL)); return 2; }
  double *t = calloc((size_t)runs, sizeof *t);
  int rc = 0;
  for (int r = 0; r <= runs && !rc; r++) {   /* run 0: warm-up (driver JIT of the PTX, first copies) */
    for (int i = 0; i < nout; i++) { free(out[i].data); out[i].data = NULL; }
    double t0 = now_ms();
    rc = run(s, in, out);
    if (r) t[r - 1] = now_ms() - t0;
  }
  if (rc) fprintf(stderr, "gpu_run: run: %s\n", last_error(s));
  for (int i = 0; i < nout && !rc; i++) {
    char p[4200];
    snprintf(p, sizeof p, "%s/out%d.npy", argv[4], i);
    if (write_npy(p, &out[i])) { fprintf(stderr, "gpu_run: cannot write %s\n", p); rc = 1; }
  }
  if (!rc) {
    qsort(t, (size_t)runs, sizeof *t, cmp);
    printf("%s: median %.4f ms over %d runs (host tensors in and out)\n", argv[1], t[runs / 2], runs);
  }
  for (int i = 0; i < nout; i++) free(out[i].data);
  for (int i = 0; i < nin; i++) free(in[i].data);
  free(t);
  destroy(s);
  return rc ? 2 : 0;
}

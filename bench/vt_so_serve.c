/* vt_so_serve.c — vtopt side of bench/vit_vs_ort.sh: dlopens a compiled model (fast.so) through
 * the public ABI only (include/vtopt/model.h), feeds a float32 .npy input (the zoo's
 * MODEL.in.<NAME>.npy), checks the output against a reference .npy (relative L2, printed to
 * stderr), runs WARMUP times, prints "ready", then for every line "run" on stdin runs once and
 * prints the latency in ms; "quit" or EOF ends it. Exit 2 on any error.
 * usage: vt_so_serve LIB.so TAG INPUT.npy REF.npy THREADS WARMUP */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtopt/model.h"

#include "bench_util.h"

typedef int (*create_fn)(int, vtopt_session **);
typedef int (*run_fn)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
typedef const char *(*err_fn)(const vtopt_session *);
typedef void (*destroy_fn)(vtopt_session *);

/* Reads a little-endian float32 C-order .npy; returns the element count or -1. */
static long read_npy_f32(const char *path, float **data, int64_t *dims, int *rank) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char pre[10];
  long n = -1;
  if (fread(pre, 1, 10, f) == 10 && !memcmp(pre, "\x93NUMPY", 6)) {
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {   /* version 2+: 4-byte header length */
      unsigned char b2[2];
      if (fread(b2, 1, 2, f) != 2) hl = 0;
      hl |= (size_t)b2[0] << 16 | (size_t)b2[1] << 24;
    }
    char *h = calloc(hl + 1, 1);
    if (h && hl && fread(h, 1, hl, f) == hl && strstr(h, "'<f4'") && strstr(h, "'fortran_order': False")) {
      char *s = strchr(strstr(h, "'shape'"), '(');
      *rank = 0;
      n = 1;
      for (s = s ? s + 1 : NULL; s && *s && *s != ')' && *rank < VTOPT_MAX_RANK;) {
        char *e;
        long d = strtol(s, &e, 10);
        if (e == s) break;
        dims[(*rank)++] = d;
        n *= d;
        s = e;
        while (*s == ',' || *s == ' ') s++;
      }
      *data = malloc((size_t)(n ? n : 1) * sizeof **data);
      if (!*data || fread(*data, sizeof **data, (size_t)n, f) != (size_t)n) n = -1;
    }
    free(h);
  }
  fclose(f);
  return n;
}


int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: vt_so_serve LIB.so TAG INPUT.npy REF.npy THREADS WARMUP\n");
    return 2;
  }
  const char *tag = argv[2];
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { fprintf(stderr, "vt_so_serve: %s\n", dlerror()); return 2; }
  char name[256];
#define SYM(var, type, suffix)                                   \
  snprintf(name, sizeof name, "%s_" suffix, tag);                \
  type var = (type)dlsym(h, name);                               \
  if (!var) { fprintf(stderr, "vt_so_serve: no %s\n", name); return 2; }
  SYM(create, create_fn, "create")
  SYM(run, run_fn, "run")
  SYM(last_error, err_fn, "last_error")
  SYM(destroy, destroy_fn, "destroy")
  vtopt_tensor in = {.dtype = 1}, ref = {.dtype = 1}, out = {.dtype = 1};
  float *x = NULL, *r = NULL;
  long nx = read_npy_f32(argv[3], &x, in.dims, &in.rank), nr = read_npy_f32(argv[4], &r, ref.dims, &ref.rank);
  if (nx < 0 || nr < 0) { fprintf(stderr, "vt_so_serve: cannot read %s or %s as float32 .npy\n", argv[3], argv[4]); return 2; }
  in.data = x;
  out = ref;
  out.data = calloc((size_t)(nr ? nr : 1), sizeof(float));
  vtopt_session *s = NULL;
  if (create(atoi(argv[5]), &s) != VTOPT_OK) { fprintf(stderr, "vt_so_serve: %s\n", last_error(NULL)); return 2; }
  if (run(s, &in, &out) != VTOPT_OK) { fprintf(stderr, "vt_so_serve: %s\n", last_error(s)); return 2; }
  double num = 0, den = 0;
  for (long i = 0; i < nr; i++) {
    double d = (double)((float *)out.data)[i] - r[i];
    num += d * d;
    den += (double)r[i] * r[i];
  }
  fprintf(stderr, "vt_so_serve: %s: output vs reference rel. L2 %.3g\n", argv[1], den > 0 ? sqrt(num / den) : sqrt(num));
  for (int i = 1; i < atoi(argv[6]); i++) run(s, &in, &out);
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin) && !strncmp(line, "run", 3)) {
    double t0 = now_ms();
    int rc = run(s, &in, &out);
    double t = now_ms() - t0;
    if (rc != VTOPT_OK) { fprintf(stderr, "vt_so_serve: %s\n", last_error(s)); return 2; }
    printf("%.3f\n", t);
    fflush(stdout);
  }
  destroy(s);
  free(x);
  free(r);
  free(out.data);
  dlclose(h);
  return 0;
}

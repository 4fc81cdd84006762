/* abi_util.h — helpers of the ABI tests (test_so_abi.c, test_so_stream.c), which use only the
 * public header include/vtopt/model.h: float32 .npy reading and relative L2. */
#ifndef VTOPT_ABI_UTIL_H
#define VTOPT_ABI_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtopt/model.h"

/* little-endian float32 C-order .npy -> tensor (data malloc'd); 0 on success */
static inline int read_npy(const char *path, vtopt_tensor *t) {
  memset(t, 0, sizeof *t);
  t->dtype = 1;
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char pre[10];
  int rc = -1;
  if (fread(pre, 1, 10, f) == 10 && !memcmp(pre, "\x93NUMPY", 6) && pre[6] == 1) {
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    char *h = calloc(hl + 1, 1);
    if (h && fread(h, 1, hl, f) == hl && strstr(h, "'<f4'") && strstr(h, "'fortran_order': False") && strstr(h, "'shape'")) {
      char *s = strchr(strstr(h, "'shape'"), '(');
      long n = 1;
      for (s = s ? s + 1 : NULL; s && *s && *s != ')' && t->rank < VTOPT_MAX_RANK;) {
        char *e;
        long d = strtol(s, &e, 10);
        if (e == s) break;
        t->dims[t->rank++] = d;
        n *= d;
        s = e;
        while (*s == ',' || *s == ' ') s++;
      }
      t->data = malloc((size_t)(n ? n : 1) * sizeof(float));
      if (t->data && fread(t->data, sizeof(float), (size_t)n, f) == (size_t)n) rc = 0;
    }
    free(h);
  }
  fclose(f);
  return rc;
}

static inline long numel(const vtopt_tensor *t) {
  long n = 1;
  for (int d = 0; d < t->rank; d++) n *= (long)t->dims[d];
  return n;
}

static inline double rel_l2(const vtopt_tensor *got, const vtopt_tensor *ref) {
  double num = 0, den = 0;
  for (long i = 0; i < numel(ref); i++) {
    double d = (double)((float *)got->data)[i] - ((float *)ref->data)[i];
    num += d * d;
    den += (double)((float *)ref->data)[i] * ((float *)ref->data)[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif

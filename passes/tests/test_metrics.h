/* test_metrics.h — output agreement helpers shared by the pass tests (header-only). */
#ifndef VTOPT_PASSES_TEST_METRICS_H
#define VTOPT_PASSES_TEST_METRICS_H

#include <math.h>

#include "ir.h"

/* ||a - b|| / ||a|| (a is the reference); ||a - b|| when a is all zero. Sizes must match. */
static inline double rel_l2(const vt_tensor *a, const vt_tensor *b) {
  int64_t n = vt_tensor_numel(a);
  assert_int_equal(n, vt_tensor_numel(b));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = vt_tensor_get_f64(a, i), y = vt_tensor_get_f64(b, i);
    num += (x - y) * (x - y);
    den += x * x;
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Cosine similarity of a and b as flat vectors (0 when either is all zero). */
static inline double cosine(const vt_tensor *a, const vt_tensor *b) {
  int64_t n = vt_tensor_numel(a);
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; i++) {
    double x = vt_tensor_get_f64(a, i), y = vt_tensor_get_f64(b, i);
    ab += x * y; aa += x * x; bb += y * y;
  }
  return ab / (sqrt(aa * bb) + 1e-30);
}

#endif

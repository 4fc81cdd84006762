/* metrics.c — see metrics.h. */
#include "metrics.h"

#include <math.h>
#include <string.h>

int vt_compare_tensors(const vt_tensor *ref, const vt_tensor *got, vt_metrics *m, vt_error *e) {
  memset(m, 0, sizeof *m);
  if (ref->rank != got->rank) return vt_errorf(e, VT_ERR_MODEL, "rank %d vs %d", ref->rank, got->rank);
  for (int32_t d = 0; d < ref->rank; d++)
    if (ref->dims[d] != got->dims[d])
      return vt_errorf(e, VT_ERR_MODEL, "dim %d is %lld vs %lld", d, (long long)ref->dims[d], (long long)got->dims[d]);
  if (ref->dtype == VT_STRING || got->dtype == VT_STRING)
    return vt_errorf(e, VT_ERR_MODEL, "string tensors cannot be compared numerically");
  int64_t n = vt_tensor_numel(ref);
  double dot = 0, na = 0, nb = 0, nd = 0, maxabs = 0;
  int64_t nonfinite = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = vt_tensor_get_f64(ref, i), b = vt_tensor_get_f64(got, i);
    if (!isfinite(a) || !isfinite(b)) {
      bool same = (isnan(a) && isnan(b)) || (isinf(a) && isinf(b) && (a > 0) == (b > 0));
      if (!same) nonfinite++;
      continue;
    }
    dot += a * b;
    na += a * a;
    nb += b * b;
    nd += (a - b) * (a - b);
    if (fabs(a - b) > maxabs) maxabs = fabs(a - b);
  }
  m->numel = n;
  m->nonfinite = nonfinite;
  m->max_abs = nonfinite ? INFINITY : maxabs;
  m->cosine = (na == 0 && nb == 0) ? 1.0 : (na == 0 || nb == 0) ? 0.0 : dot / (sqrt(na) * sqrt(nb));
  m->rel_l2 = nonfinite ? INFINITY : (na == 0 ? (nd == 0 ? 0.0 : INFINITY) : sqrt(nd) / sqrt(na));
  m->top1 = -1;
  if (ref->rank >= 1 && ref->dims[ref->rank - 1] > 0) {
    int64_t cols = ref->dims[ref->rank - 1], rows = n / cols, agree = 0;
    for (int64_t r = 0; r < rows; r++) {
      int64_t ia = 0, ib = 0;
      for (int64_t c = 1; c < cols; c++) {
        if (vt_tensor_get_f64(ref, r * cols + c) > vt_tensor_get_f64(ref, r * cols + ia)) ia = c;
        if (vt_tensor_get_f64(got, r * cols + c) > vt_tensor_get_f64(got, r * cols + ib)) ib = c;
      }
      agree += ia == ib;
    }
    m->rows = rows;
    m->top1 = rows ? (double)agree / (double)rows : 1.0;
  }
  return VT_OK;
}

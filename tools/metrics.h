/* metrics.h — output agreement between two tensors: cosine similarity, relative L2, max abs
 * error, and top-1 agreement along the last axis (for logits). Used by `vtopt compare-outputs`
 * and the strategy comparison. */
#ifndef VTOPT_METRICS_H
#define VTOPT_METRICS_H

#include "ir.h"

typedef struct vt_metrics {
  double cosine;        /* 1 when both are all-zero */
  double rel_l2;        /* ||a-b|| / ||a||  (a is the reference); 0 when both are zero */
  double max_abs;
  double top1;          /* fraction of rows (last axis) whose argmax agrees; -1 if rank 0 */
  int64_t rows, numel;
  int64_t nonfinite;    /* elements where exactly one side is NaN/Inf or they differ in kind */
} vt_metrics;

/* Shapes must match (same numel and dims); dtypes may differ (compared as double). */
int vt_compare_tensors(const vt_tensor *ref, const vt_tensor *got, vt_metrics *m, vt_error *e);

#endif

/* linalg_util.h — helpers of the linalg op family shared by its shape inference (ir/) and its
 * kernels (runtime/): convolution/pooling window geometry and the Einsum equation parser.
 * Implementations in ir/linalg_util.c. */
#ifndef VTOPT_LINALG_UTIL_H
#define VTOPT_LINALG_UTIL_H

#include "ir.h"

/* ---------- conv / pool window geometry ----------------------------------------------------- */
enum { VT_AUTOPAD_NOTSET = 0, VT_AUTOPAD_VALID, VT_AUTOPAD_SAME_UPPER, VT_AUTOPAD_SAME_LOWER };

typedef struct vt_lgeom {
  int nsp;                            /* spatial rank */
  int autopad;
  int ceil_mode;
  int64_t k[VT_MAX_RANK];             /* kernel extent */
  int64_t s[VT_MAX_RANK];             /* strides */
  int64_t d[VT_MAX_RANK];             /* dilations */
  int64_t pb[VT_MAX_RANK], pe[VT_MAX_RANK];   /* explicit pads (NOTSET) */
  int64_t op[VT_MAX_RANK];            /* ConvTranspose output_padding */
  int n_oshape;                       /* ConvTranspose output_shape count (0 if absent) */
  int64_t oshape[VT_MAX_RANK];
} vt_lgeom;

/* Reads kernel_shape/strides/dilations/pads/auto_pad/ceil_mode/output_padding/output_shape of
 * node n for nsp spatial dims. wk: kernel extents from the weight's dims (entries < 0 unknown)
 * or NULL (pools: kernel_shape is then required). Returns 0, or -1 with a message in err. */
int vt_lgeom_read(const vt_node *n, int nsp, const vt_dim *wk, vt_lgeom *g, char *err, size_t len);

/* Forward (conv/pool) output size of spatial dim i for a constant input size, with the pads in
 * effect. Returns -1 (message in err) when the window does not fit. */
int64_t vt_lgeom_out(const vt_lgeom *g, int i, int64_t in, int64_t *pb, int64_t *pe, char *err,
                     size_t len);
/* ConvTranspose output size of spatial dim i for a constant input size and the pads in effect. */
int64_t vt_lgeom_out_t(const vt_lgeom *g, int i, int64_t in, int64_t *pb, int64_t *pe, char *err,
                       size_t len);

/* ---------- Einsum ----------------------------------------------------------------------------
 * Labels: 'a'..'z' -> 0..25, 'A'..'Z' -> 26..51, ellipsis dim t -> 52 + t (t from the left of the
 * broadcast ellipsis block of rank n_ell). */
#define VT_EINSUM_MAX_IN 16
#define VT_EINSUM_LABELS (52 + VT_MAX_RANK)
typedef struct vt_einsum {
  int nin;
  int n_ell;                                      /* broadcast rank of the ellipsis */
  int rank[VT_EINSUM_MAX_IN];
  int8_t lab[VT_EINSUM_MAX_IN][VT_MAX_RANK];
  int nout;
  int8_t out[VT_MAX_RANK];
} vt_einsum;

/* Parses eq for nin inputs of the given ranks. Returns 0, or -1 with a message in err. */
int vt_einsum_parse(const char *eq, int nin, const int32_t *ranks, vt_einsum *e, char *err,
                    size_t len);

#endif

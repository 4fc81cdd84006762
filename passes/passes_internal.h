/* passes_internal.h — private to passes/: the pass entry points listed in the registry and the
 * graph-editing helpers rewrites share (passes/rewrite.c). */
#ifndef VTOPT_PASSES_INTERNAL_H
#define VTOPT_PASSES_INTERNAL_H

#include "passes.h"

/* pass entry points (one file each) */
int vt_pass_fuse_attention(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);
/* fuse_attention_ops.c: the rules for the exported attention ops; fills at most max, returns the count */
int vt_fuse_attention_op_rules(vt_pattern *rules, int max);
int vt_pass_fold_affine(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);   /* fold_affine.c */
int vt_pass_tome(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);   /* tome.c */

/* A value name not yet used in g, from base + suffix ("base/suffix", then "base/suffix_2"...).
 * Returns an arena string or NULL on OOM. */
const char *vt_rw_fresh_name(vt_graph *g, const char *base, const char *suffix);
/* A new untyped value (shape inference types it) named fresh from base/suffix; -1 on OOM. */
int32_t vt_rw_new_value(vt_graph *g, const char *base, const char *suffix);
/* A new constant int64 vector (data in the graph's arena); -1 on OOM. */
int32_t vt_rw_const_i64(vt_graph *g, const char *base, const char *suffix, const int64_t *vals, int32_t n);
/* Appends a node computing a fresh value; returns the value index or -1 on OOM. The node's name
 * is the value's name. */
int32_t vt_rw_node1(vt_graph *g, int op, const char *base, const char *suffix, int n_in, const int32_t *in);
/* Makes node `node` produce nothing into output slot o (the value loses its producer), so a new
 * node can produce that value instead. */
void vt_rw_detach_output(vt_graph *g, int32_t node, int o);
/* Unsqueeze/Squeeze of x at one axis, using the axes input (opset >= 13) or attribute. */
int32_t vt_rw_unsqueeze(vt_graph *g, int32_t x, int64_t axis, const char *base, const char *suffix);
int32_t vt_rw_squeeze_into(vt_graph *g, int32_t x, int64_t axis, int32_t out, const char *name);
/* Scalar value of a constant with one element (any float/int dtype); false if v is not one. */
bool vt_rw_const_scalar(const vt_graph *g, int32_t v, double *out);

/* Reshape targets that name a token count (tome.c, topk.c). The integer contents of a small int
 * tensor: its known contents (shape arithmetic) or, for a constant, its data; n = 0 when unknown. */
typedef struct { int32_t n; vt_dim v[64]; } vt_rw_ints;
void vt_rw_int_contents(const vt_value *x, vt_rw_ints *o);
/* Entries of v equal to d; *has_neg1: some entry is -1. */
int vt_rw_count_dim(const vt_rw_ints *v, vt_dim d, bool *has_neg1);
/* The entry of Reshape target t that holds the token count n of data input x: the only entry
 * equal to n, or, when several are, the one at x's first axis of size n provided the target
 * keeps x's leading dims before it. -1 if none or ambiguous. */
int32_t vt_rw_token_pos(const vt_value *x, const vt_rw_ints *t, vt_dim n);
/* Rewrites Reshape node's target so the entry naming n names m (a constant target when all is
 * known and m constant, else Where(onehot, m or -1, target)); nothing when its data has no dim n or
 * the target does not name n. New names: <node>/<prefix>_target, _token_axis, _tokens. -1 on OOM. */
int vt_rw_retarget_reshape(vt_graph *g, int32_t node, vt_dim n, vt_dim m, const char *prefix);

#endif

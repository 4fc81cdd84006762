/* runtime.h — the reference interpreter: thread pool, kernel interface and the graph executor.
 * The interpreter runs any IR graph with plain C kernels; it is the oracle every compiled kernel
 * and every pass is tested against. */
#ifndef VTOPT_RUNTIME_H
#define VTOPT_RUNTIME_H

#include "ir.h"

/* ---------- thread pool (our own; no OpenMP) --------------------------------------------- */
typedef struct vt_pool vt_pool;
/* nthreads <= 0: VTOPT_NUM_THREADS or the number of online CPUs. */
vt_pool *vt_pool_new(int nthreads);
void vt_pool_free(vt_pool *p);
int vt_pool_threads(const vt_pool *p);
/* Splits [0, n) into contiguous chunks and calls fn(arg, begin, end) on the pool's threads (the
 * caller's thread included); returns when all are done. Safe with p == NULL (runs inline). */
typedef void (*vt_range_fn)(void *arg, int64_t begin, int64_t end);
void vt_pool_for(vt_pool *p, int64_t n, vt_range_fn fn, void *arg);

/* ---------- kernels -------------------------------------------------------------------------
 * Before a kernel runs, the interpreter infers output types with the op's infer function from
 * the concrete inputs and allocates every output whose shape came out fully known (zeroed).
 * Outputs left with rank -1 / data NULL (data-dependent shapes) are the kernel's to allocate
 * with vt_tensor_alloc. Absent optional inputs are NULL. */
typedef struct vt_kctx {
  const vt_graph *g;
  int32_t node_idx;
  const vt_node *node;
  int n_in, n_out;
  const vt_tensor *const *in;
  vt_tensor *const *out;
  vt_pool *pool;
  vt_error *err;
} vt_kctx;

typedef int (*vt_kernel_fn)(vt_kctx *k);
extern const vt_kernel_fn vt_kernels[VT_OP_COUNT + 1];
/* Fails the kernel with "FILE: node 'NAME' (OP): message"; returns VT_ERR_MODEL. */
int vt_kernel_fail(vt_kctx *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strides (in elements) of a contiguous row-major shape. */
void vt_strides(int32_t rank, const int64_t *dims, int64_t *strides);

/* ---------- interpreter ---------------------------------------------------------------------- */
typedef struct vt_interp vt_interp;
/* The graph must have passed vt_graph_infer; it is not modified and must outlive the session. */
vt_interp *vt_interp_new(const vt_graph *g, int nthreads, vt_error *e);
void vt_interp_free(vt_interp *it);
/* inputs[i] feeds g->inputs[i]; outputs[i] receives g->outputs[i] (allocated, owned by the
 * caller: free with vt_tensor_free). Checks dtypes, ranks and dims against the graph. */
int vt_interp_run(vt_interp *it, const vt_tensor *inputs, vt_tensor *outputs, vt_error *e);
/* Checks a tensor against graph input i (dtype, rank, constant dims); symbolic dims are not
 * cross-checked here (vt_interp_run does that). */
int vt_interp_check_input(const vt_graph *g, int32_t i, const vt_tensor *t, vt_error *e);
/* Runs a single node on concrete tensors (kernel tests use this). */
int vt_run_node(const vt_graph *g, int32_t node, const vt_tensor *const *in, vt_tensor *const *out,
                vt_pool *pool, vt_error *e);

#endif

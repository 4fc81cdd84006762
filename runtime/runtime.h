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
struct vt_interp;

/* Runtime knobs of one session (the interpreter's and compiled sessions'): name -> value, read by
 * kernels through vt_kctx_knob; unset knobs read as the kernel's default. */
#define VT_MAX_KNOBS 64
/* What one run's stateful kernels tell each other (a session = one stream). run: the session's
 * run counter (incremented as each run starts, first run 1); cut_run: the run in which a token
 * gate saw a scene cut (the gates after it in that run flush too), 0 for none. */
typedef struct vt_stream_sig {
  int64_t run, cut_run;
} vt_stream_sig;

typedef struct vt_knobs {
  int32_t n;
  struct { char name[64]; double value; } k[VT_MAX_KNOBS];
} vt_knobs;
/* Sets (or adds) a knob: VT_ERR_MODEL when the name is longer than 63 bytes or the table is full. */
int vt_knobs_set(vt_knobs *kb, const char *name, double value);
/* The knobs kernels of g read (one name per kernel-read knob of an op present in g), comma
 * separated into buf ("" when g has none); returns how many. A knob a kernel reads must be listed
 * in the table in interp.c. */
int vt_graph_knobs(const vt_graph *g, char *buf, size_t n);
/* Whether name is one of vt_graph_knobs(g). */
bool vt_graph_has_knob(const vt_graph *g, const char *name);

/* Frees every state block of a per-node state table (n slots; NULL slots skipped) and clears the
 * slots: the next run of each stateful node starts fresh ("flush"). */
void vt_states_reset(void **state, int32_t n);
/* Frees every state block of n slots (a session's end). */
void vt_states_free(void **state, int32_t n);
/* Over n state slots: bytes held (the memory per stream) and the sums of rows_done / rows_seen. */
size_t vt_states_bytes(void *const *state, int32_t n);
void vt_states_rows(void *const *state, int32_t n, int64_t *done, int64_t *seen);

typedef struct vt_kctx {
  const vt_graph *g;
  int32_t node_idx;
  const vt_node *node;
  int n_in, n_out;
  const vt_tensor *const *in;
  vt_tensor *const *out;
  vt_pool *pool;
  vt_error *err;
  /* Stateful ops (VT_OPF_STATEFUL): the node's state slot, owned by the session (interpreter or
   * compiled; one session = one stream) and kept across runs; NULL when the kernel runs without
   * a session (vt_run_node), where a stateful kernel must fail. A kernel stores a malloc'd block
   * that starts with a vt_state header; the session calls its free() when freed, and on reset
   * its flush() when set (keeps the allocation, the next run recomputes everything), else free(). */
  void **state;
  const vt_knobs *knobs;   /* the session's knobs; NULL outside a session: knobs read as defaults */
  struct vt_stream_sig *sig;   /* signals the session's stateful kernels share (NULL outside one) */
  /* Compiled sessions bind outputs to preallocated buffers (data set, owned false); out_cap[o]
   * is the size in bytes of output o's buffer, which may exceed the current shape when a dim is
   * bounded rather than known (e.g. a gate's token count). NULL in the interpreter. */
  const int64_t *out_cap;
  /* Bit o set: the caller does not read output o's data (compiled code that reads what it needs
   * elsewhere, e.g. a GEMM that gathers a token gate's rows itself). A kernel that honours it sets
   * only the output's dtype and shape (data stays NULL); one that ignores it may still write it.
   * 0 in the interpreter. */
  uint32_t out_skip;
  /* Compiled sessions: functions the code generator specialised for this node (constant sizes,
   * host CPU), which the kernel calls for its hot loops instead of its own C; NULL otherwise.
   * TokenGate: fns[0] = void norm(const float *x, const float *u, float *norm, float *u2,
   * int64_t i0, int64_t i1) (error norms of rows [i0, i1)), fns[1] = void select(const float
   * *norm, int64_t *order, int64_t m) (the m < n largest, ties by index, ascending). */
  const void *const *fns;
} vt_kctx;

typedef struct vt_state {
  void (*free)(void *self);
  void (*flush)(void *self);   /* optional: reset without freeing */
  size_t bytes;                /* bytes the state holds (vt_interp_state_bytes) */
  int64_t rows_done, rows_seen; /* token gates: rows updated / rows offered, flush runs excluded */
} vt_state;

/* Runtime knob `name` of the kernel's session (vt_interp_set_knob), or dflt when unset. */
double vt_kctx_knob(const vt_kctx *k, const char *name, double dflt);
/* Gives output o the given dtype and shape with zeroed contents, for kernels whose output shape
 * depends on the data: in the buffer the caller bound (compiled sessions; fails when the shape
 * exceeds its capacity), else newly allocated like vt_tensor_alloc. */
int vt_kctx_output(vt_kctx *k, int32_t o, vt_dtype dt, int32_t rank, const int64_t *dims);

typedef int (*vt_kernel_fn)(vt_kctx *k);
extern const vt_kernel_fn vt_kernels[VT_OP_COUNT + 1];
/* Fails the kernel with "FILE: node 'NAME' (OP): message"; returns VT_ERR_MODEL. */
int vt_kernel_fail(vt_kctx *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strides (in elements) of a contiguous row-major shape. */
void vt_strides(int32_t rank, const int64_t *dims, int64_t *strides);

/* Resize / Upsample as per-axis taps (runtime/kernels_tensor_resize.c; the interpreter's kernel and
 * codegen share them): for each of the ydims[d] output coordinates of axis d, nt source indices
 * and weights (and, for tf_crop_and_resize, whether it extrapolates). ts: the scales tensor (or
 * NULL), troi: the roi (or NULL), as the node reads them at this opset; upsample: the old
 * Upsample op. Returns 0, or -1 with err set; free with vt_resize_taps_free. */
typedef struct vt_resize_axis {
  int nt;                  /* taps per output coordinate: 1, 2 or 4 */
  int64_t *idx;            /* [out * nt] source indices (element offsets along this axis) */
  double *w;               /* [out * nt] weights */
  bool *extrap;            /* [out] tf_crop_and_resize coordinate outside the input */
} vt_resize_axis;
int vt_resize_taps(const vt_node *node, int64_t opset, bool upsample, int32_t r, const int64_t *xdims,
                   const int64_t *ydims, const vt_tensor *ts, const vt_tensor *troi, vt_resize_axis *ax,
                   char *err, size_t errn);
void vt_resize_taps_free(vt_resize_axis *ax, int32_t r);

/* ---------- interpreter ---------------------------------------------------------------------- */
typedef struct vt_interp vt_interp;
/* The graph must have passed vt_graph_infer; it is not modified and must outlive the session. */
vt_interp *vt_interp_new(const vt_graph *g, int nthreads, vt_error *e);
void vt_interp_free(vt_interp *it);
/* inputs[i] feeds g->inputs[i]; outputs[i] receives g->outputs[i] (allocated, owned by the
 * caller: free with vt_tensor_free). Checks dtypes, ranks and dims against the graph. */
int vt_interp_run(vt_interp *it, const vt_tensor *inputs, vt_tensor *outputs, vt_error *e);
/* Drops the state of every stateful node: the next run computes everything ("flush"). */
int vt_interp_reset(vt_interp *it);
/* Bytes held by the state of every stateful node of the session (the memory per stream). */
size_t vt_interp_state_bytes(const vt_interp *it);
/* Sums of vt_state.rows_done / rows_seen over the session's states (0 when none count). */
void vt_interp_state_rows(const vt_interp *it, int64_t *done, int64_t *seen);
/* Sets a runtime knob read by kernels (e.g. "eventful.r"); takes effect at the next run. Names are
 * at most 63 bytes; at most 64 distinct knobs. */
int vt_interp_set_knob(vt_interp *it, const char *name, double value);
/* Checks a tensor against graph input i (dtype, rank, constant dims); symbolic dims are not
 * cross-checked here (vt_interp_run does that). */
int vt_interp_check_input(const vt_graph *g, int32_t i, const vt_tensor *t, vt_error *e);
/* Runs a single node on concrete tensors (kernel tests use this). No session: stateful ops fail. */
int vt_run_node(const vt_graph *g, int32_t node, const vt_tensor *const *in, vt_tensor *const *out,
                vt_pool *pool, vt_error *e);

#endif

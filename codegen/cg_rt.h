/* cg_rt.h — the run-time side of generated code, shared by the in-process JIT and the fast.so
 * support library: the host callbacks the generated entry calls (parallel-for, fallback node) and
 * the input-checking / output-handling run wrapper. Needs ir + runtime only (no LLVM). */
#ifndef VTOPT_CG_RT_H
#define VTOPT_CG_RT_H

#include <stdbool.h>

#include "ir.h"
#include "runtime.h"

/* int32 entry(void **bufs, void *rt): runs every kernel in order; nonzero = a fallback failed */
typedef int32_t (*vt_cg_entry_fn)(void **bufs, void *rt);

typedef struct vt_cg_rt {
  const vt_graph *g;        /* static types of every value; nodes for the fallback kernels */
  vt_pool *pool;
  void **bufs;              /* per value: its memory (arena slot, constant, or set per run) */
  vt_cg_entry_fn entry;
  vt_error *err;            /* during a run */
  double last_run_ms, last_fallback_ms;
} vt_cg_rt;

/* Called by generated code (names are part of the generated module's contract). */
void vt_jit_host_par(void *rt, void (*fn)(void **bufs, int64_t begin, int64_t end), void **bufs, int64_t n);
int32_t vt_jit_host_node(void *rt, int32_t node);

/* Checks inputs against the graph (dtype, rank, every dim), binds them, runs the entry and fills
 * outputs: allocated here (owned by the caller), or, with caller_outputs, checked against the
 * graph and written in place. Same messages as the interpreter. */
int vt_cg_rt_run(vt_cg_rt *rt, const vt_tensor *inputs, vt_tensor *outputs, bool caller_outputs, vt_error *e);

#endif

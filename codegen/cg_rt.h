/* cg_rt.h — the run-time side of generated code, shared by the in-process JIT and the fast.so
 * support library: the session (buffers, per-node state of stateful ops, knobs, the table of
 * run-time dims), the host callbacks the generated entry calls (parallel-for, host node) and the
 * input-checking / output-handling run wrapper. Needs ir + runtime only (no LLVM).
 *
 * Run-time dims: a value's dims may contain symbols with a known upper bound whose value is set
 * by a kernel at run time (e.g. a token gate's count "gate:M"). Its buffer is sized at the bound;
 * the current value of every named symbol lives in dims[symbol] (bufs[n_values] points to it, so
 * generated code reads it from its buffer table); the node that defines a symbol (the first one
 * whose output has it) fills it each run, and everything after reads it. */
#ifndef VTOPT_CG_RT_H
#define VTOPT_CG_RT_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"
#include "runtime.h"

/* int32 entry(void **bufs, void *rt): runs every kernel in order; nonzero = a host node failed */
typedef int32_t (*vt_cg_entry_fn)(void **bufs, void *rt);

typedef struct vt_cg_rt {
  const vt_graph *g;        /* static types of every value; nodes for the host kernels */
  vt_pool *pool;
  void **bufs;              /* n_values + 1: per value its memory (arena slot, constant, or set per
                               run); bufs[n_values] = dims */
  vt_cg_entry_fn entry;
  vt_error *err;            /* during a run */
  /* session */
  void **state;             /* per node: state block of a stateful op (vt_state), kept across runs */
  vt_knobs knobs;
  vt_stream_sig sig;
  int64_t *dims;            /* per symbol: its value in this run (named run-time symbols) */
  int32_t *sym_def;         /* per symbol: the node that defines it at run time, or -1 */
  int64_t *cap;             /* per value: bytes of its buffer (its size at the dims' upper bounds) */
  double last_run_ms, last_fallback_ms;
  /* profile (entries compiled with VTOPT_PROFILE): per group its label and accumulated time */
  struct vt_cg_prof { char *label; double ms; } *prof;
  int32_t n_prof, prof_cur;
  double prof_t0;
  int64_t prof_runs;
  int last_direct, last_copied;   /* host nodes of the last run: kernel wrote in place / copied */
  /* persistent buffers (one block): values the generated code keeps across runs (an Eventful
   * TokenBuffer's output, written row by row by its GEMM's scatter epilogue); per-stream state */
  void *persist;
  int64_t persist_bytes;
} vt_cg_rt;

/* Per named symbol of g: the first node with an output whose dims contain it, else -1 (a graph
 * input's symbol, or unused). */
void vt_cg_sym_defs(const vt_graph *g, int32_t *def);
/* Value of dim d in the current run (named symbols from rt->dims); -1 when it is not known. */
int64_t vt_cg_rt_dim(const vt_cg_rt *rt, vt_dim d);

/* Sets up rt's session for graph g (which must outlive it): buffer table, state slots, knobs,
 * dims table, per-value capacities and the thread pool (threads <= 0: VTOPT_NUM_THREADS or all
 * CPUs). The caller points bufs at the arena / constants and sets entry. */
int vt_cg_rt_init(vt_cg_rt *rt, const vt_graph *g, int threads, vt_error *e);
void vt_cg_rt_fini(vt_cg_rt *rt);
/* Buffer offsets as the compiler plans them (per value): >= 0 a byte offset in the arena; -1 no
 * buffer of its own (constants: their data; graph inputs / outputs: set per run; anything else:
 * not needed, e.g. a gate's xg that a GEMM gathers itself: a host node is told through
 * vt_kctx.out_skip); <= VT_CG_PERSIST: persistent, at byte (VT_CG_PERSIST - off) of the session's
 * persistent block (zeroed at creation, kept across runs and resets: what is kept there is
 * rewritten whole by the flush that follows a reset). */
#define VT_CG_PERSIST (-2)
/* Points rt->bufs at the arena, the constants and the persistent block (allocated here from the
 * persistent values' capacities). */
int vt_cg_rt_bind(vt_cg_rt *rt, const int64_t *off, void *arena, vt_error *e);
/* Bytes of per-stream state: every stateful node's state plus the persistent block. */
size_t vt_cg_rt_state_bytes(const vt_cg_rt *rt);
/* Drops the state of every stateful node: the next run computes everything ("flush"). */
void vt_cg_rt_reset(vt_cg_rt *rt);
/* Sets a runtime knob; names the graph's kernels do not read fail with the list of valid ones. */
int vt_cg_rt_set_knob(vt_cg_rt *rt, const char *name, double value, vt_error *e);

/* Called by generated code (names are part of the generated module's contract). */
void vt_jit_host_par(void *rt, void (*fn)(void **bufs, int64_t begin, int64_t end), void **bufs, int64_t n);
/* Runs node's interpreter kernel on the session's buffers; fns: functions generated for the node
 * (vt_kctx.fns), or NULL. */
int32_t vt_jit_host_node(void *rt, int32_t node, const void *const *fns);
/* Profiling entries call this before group gi (label: what it is) and with gi = -1 at the end. */
void vt_jit_host_prof(void *rt, int32_t gi, const char *label);
/* Prints the profile gathered so far (nothing when the entry was not compiled for it). */
void vt_cg_rt_prof_print(const vt_cg_rt *rt, FILE *f);

/* Checks inputs against the graph (dtype, rank, every dim), binds them, runs the entry and fills
 * outputs: allocated here (owned by the caller), or, with caller_outputs, checked against the
 * graph and written in place. Same messages as the interpreter. */
int vt_cg_rt_run(vt_cg_rt *rt, const vt_tensor *inputs, vt_tensor *outputs, bool caller_outputs, vt_error *e);

#endif

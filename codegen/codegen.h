/* codegen.h — vtopt's LLVM code generator: lowers a prepared IR graph (all dims constant) to
 * fused CPU kernels, specialises them for the model and the host CPU, and runs them in process
 * through the ORC LLJIT. Ops without a generated kernel run the interpreter's reference kernel
 * (the generated code calls back into the host for them); --stats says which and why. */
#ifndef VTOPT_CODEGEN_H
#define VTOPT_CODEGEN_H

#include <stdio.h>

#include "ir.h"
#include "runtime.h"

typedef struct vt_cg_options {
  int opt_level;           /* 0..3 (LLVM pipeline default<ON> and codegen level) */
  int threads;             /* <= 0: VTOPT_NUM_THREADS or the online CPUs */
  const char *dump_llvm;   /* write the optimised module's IR here, or NULL */
  FILE *stats;             /* kernel list and fallbacks with reasons, or NULL */
  const char *cpu;         /* LLVM CPU name to build for (x86-64-v3, skylake-avx512, znver4, ...);
                              NULL: VTOPT_CPU, else the host ("host" too) */
  const char *cpu_features;   /* LLVM feature overrides "+a,-b"; NULL: VTOPT_CPU_FEATURES */
  int64_t max_memory;      /* refuse (VT_ERR_MODEL, with the numbers) a model whose weights, planned
                              activation arena, or the two together exceed this many bytes;
                              0: the machine's physical memory; < 0: no limit */
  const char *target;      /* NULL / "cpu": the CPU; "cuda": NVPTX kernels driven through the CUDA
                              driver (cg_emit_nvptx.c) */
  const char *gpu;         /* with target "cuda": sm_80 (default) or sm_90 */
} vt_cg_options;

/* The target a compilation with these options builds for: CPU name, the kernel library's ISA
 * ("avx2", "avx512") and micro-tile, and the CPU features a fast.so checks when a session is
 * created (comma separated). Errors (unknown CPU or feature names, a CPU without AVX2 + FMA):
 * VT_ERR_MODEL with e set. */
typedef struct vt_cg_target_info {
  char cpu[64];
  char isa[16];
  char features[1024];
  int host;                /* built for the machine it runs on */
  int mr, nr;              /* GEMM micro-tile rows x columns */
  int kc;                  /* GEMM K block (from the host's L1 data cache, or the ISA's default) */
  long l1d;                /* the host's L1 data cache in bytes, 0 when not building for the host */
} vt_cg_target_info;
int vt_cg_target(const vt_cg_options *opt, vt_cg_target_info *info, vt_error *e);

typedef struct vt_jit_stats {
  int n_gemm;              /* generated GEMM kernels (each with its fused epilogue) */
  int n_elementwise;       /* generated fused elementwise loops */
  int n_row;               /* generated row kernels (Softmax, LayerNormalization) */
  int n_attention;         /* generated fused attention kernels (ai.vtopt.Attention) */
  int n_copy;              /* generated copies (Reshape, Flatten, Squeeze, Unsqueeze, Identity) and
                              transposes */
  int n_view;              /* of those, Reshape-like ones that became views (no data moved) */
  int n_absorbed;          /* layout nodes (Transpose, Split, Gather, Reshape-like) around attention
                              whose data movement the attention kernel does by strided reads and
                              writes: no kernel, no buffer */
  int n_fallback;          /* nodes run by the interpreter's kernels (host nodes) */
  int n_fused_nodes;       /* graph nodes covered by generated kernels */
  double compile_ms;       /* lowering + LLVM optimisation + JIT code generation (wall) */
  double compile_cpu_ms;   /* the same in process CPU time */
  double last_run_ms;      /* the last vt_jit_run: whole model (wall) */
  double last_fallback_ms; /* ... of which in interpreter kernels (host nodes) */
  int last_host_direct;    /* host nodes of the last run whose kernel wrote into its buffers in place */
  int last_host_copied;    /* ... whose outputs were allocated and copied in (vt_run_node) */
  /* the convolution family (cg_lower_conv.c), also counted in n_gemm */
  int n_conv_direct;       /* direct grouped / depthwise Conv kernels */
  int n_conv_1x1;          /* 1x1 Conv kernels (GEMM on the NCHW planes, no im2col) */
  int n_pool;              /* MaxPool / AveragePool / GlobalAveragePool kernels, and ReduceMean / ReduceSum
                              over middle axes */
  int n_conv_transpose;    /* ConvTranspose kernels */
  int n_resize;            /* Resize / Upsample kernels (nearest, linear) */
  int n_conv_fused;        /* nodes fused into those conv kernels (activations, residual adds, SE scales) */
} vt_jit_stats;

typedef struct vt_jit vt_jit;

/* The graph must have passed vt_graph_prepare, is not modified, and must outlive the JIT. Every
 * value's dims must be constants (pin symbolic dims first), except dims a node sets at run time
 * that have an upper bound (e.g. Eventful's gated token count; not on graph inputs or outputs). opt may be NULL (O3, default
 * threads). Returns NULL with e set on failure. */
vt_jit *vt_jit_compile(const vt_graph *g, const vt_cg_options *opt, vt_error *e);
/* Same contract as vt_interp_run: inputs[i] feeds g->inputs[i] (checked against the graph's
 * dtypes and dims), outputs[i] receives g->outputs[i], allocated, owned by the caller. One run at
 * a time per vt_jit (the activation arena is per JIT). */
int vt_jit_run(vt_jit *j, const vt_tensor *inputs, vt_tensor *outputs, vt_error *e);
void vt_jit_get_stats(const vt_jit *j, vt_jit_stats *st);
/* A vt_jit is one session (one stream): stateful nodes (e.g. Eventful's gates) keep state across
 * vt_jit_run calls. reset drops it (the next run computes everything); set_knob sets a runtime
 * knob the kernels read (e.g. "eventful.r"), effective from the next run; unknown names fail with
 * the list of the model's knobs. */
void vt_jit_reset(vt_jit *j);
/* The session's stream state: bytes held, and token rows updated / offered by gates. */
void vt_jit_state_info(const vt_jit *j, size_t *bytes, int64_t *done, int64_t *seen);
int vt_jit_set_knob(vt_jit *j, const char *name, double value, vt_error *e);
void vt_jit_free(vt_jit *j);

/* Compiles g (same requirements as vt_jit_compile) into a self-contained shared library at path
 * whose ABI is include/vtopt/model.h with every exported symbol prefixed by tag (a C identifier). The
 * library links the runtime support statically and needs only libc, libm and pthreads. */
int vt_cg_emit_so(const vt_graph *g, const vt_cg_options *opt, const char *path, const char *tag, vt_error *e);

/* The GPU path (opt->target "cuda", opt->gpu): writes the PTX of g's kernels to path. Nodes
 * without a GPU kernel are refused by name (VT_ERR_MODEL), never run on the host. */
int vt_cg_emit_ptx(const vt_graph *g, const vt_cg_options *opt, const char *path, vt_error *e);

#endif

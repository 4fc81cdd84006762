/* cg_internal.h — codegen's internal types (the lowering context cg, kernel groups, steps,
 * blobs) and the functions its modules share; not a public header (codegen.h is).
 *
 * Codegen lowers a prepared graph (static shapes) to LLVM IR, specialises it with the bitcode
 * kernel library, and runs it in-process through the ORC LLJIT or writes a fast.so. Modules:
 *   cg_context.c   the cg context: planning view of the graph, users, value helpers, freeing
 *   cg_lower.c     target-independent lowering: graph nodes to kernel groups (cg_plan)
 *   cg_lower_conv.c  the convolution family's groups: direct (grouped / depthwise) and 1x1 Conv with
 *                  fused epilogues and squeeze-excite input scale, Max / Average / GlobalAverage pools,
 *                  mean / sum over middle axes (the token mean of a classifier), ConvTranspose,
 *                  Resize (nearest, linear)
 *   cg_views.c     strided views: attention layout absorption, COPY groups as aliases
 *   cg_memplan.c   the activation arena: which values need a buffer, their offsets
 *   cg_emit_cpu.c  LLVM IR of the CPU kernels and the entry function (cg_build_module)
 *   cg_target.c    target selection: CPU name / features, the target machine
 *   cg_module.c    the module pipeline: bitcode link, emission, retarget, verify, passes
 *   cg_stats.c     --stats: group counts and the per-group table
 *   cg_jit.c       the public JIT API (vt_jit_*)
 *   cg_so.c        the fast.so writer (vt_cg_emit_so)
 *   cg_emit_nvptx.c  the GPU target: the same groups as NVPTX kernels, PTX, the GPU plan
 *   cg_gpu_so.c    the CUDA fast.so writer (plan + PTX embedded, host runtime gpu/gpu_rt.c)
 *
 * Lowering groups nodes into kernels, in node order:
 *   GEMM      MatMul / Gemm with float32 A and a constant 2-D B (packed at compile time into the
 *             micro-kernel's panel layout and embedded as a constant global), plus a fused
 *             epilogue: following float32 elementwise nodes on its output;
 *   ELEMENTWISE  a fused loop over a chain (DAG) of float32 elementwise nodes of one shape whose
 *             other inputs are full-shape, last-axis broadcasts or scalars;
 *   COPY      Reshape / Flatten / Squeeze / Unsqueeze / Identity (a memcpy);
 *   ROW       Softmax and LayerNormalization over trailing axes (bitcode row kernels, rows in
 *             parallel, constant scale/bias embedded);
 *   PERM      Transpose (a strided copy specialised to the permutation and dims);
 *   FALLBACK  anything else ("host nodes"): the generated entry calls back into the host
 *             (cg_rt.c), which calls the interpreter's kernel directly with the outputs bound to
 *             their arena buffers and the session's state slot and knobs (stateful ops run here).
 * Run-time dims: a dim that is a symbol with a known upper bound, set at run time by the node
 * that defines it (Eventful's gate count), is planned at its bound (c->g, a view of the graph with
 * bounds for symbols) and read at run time from the dims table (bufs[n_values]) by the kernels that
 * take a run-time row count: GEMM (M), elementwise, row, copy; other kernels of such values run as
 * host nodes.
 * Eventful fusion (gate -> token-wise GEMMs -> buffer, see passes/eventful.c): a GEMM whose A is a
 * TokenGate's xg (read by nothing else) gathers A's rows from the gate's input x at the gate's idx
 * while packing (gather prologue); the gate, still a host node, then does not write xg
 * (vt_kctx.out_skip) and xg has no buffer. A TokenBuffer whose y is a value of a GEMM group (read
 * by nothing else) joins that group: the epilogue stores row m of y to row idx[m] of the buffer's
 * output, which lives in the session's persistent block (kept across runs, outside the arena,
 * counted as stream state); sound because idx comes from a gate over the same tokens, whose first
 * run after a reset selects every token. cg_plan() says in --stats what was fused and why not.
 * A group runs at the position of its first node; nodes join a group only when all their inputs
 * not produced inside it are available before that position, so node order stays valid.
 *
 * The same module feeds the ORC LLJIT (vt_jit_compile) and object emission for a self-contained
 * fast.so (vt_cg_emit_so: the tagged ABI of include/vtopt/model.h, the graph description its fallback
 * nodes need, linked with the runtime support). VT_CG_TIMING=1 in the environment prints the
 * lowering / optimisation / machine-code times to stderr. VTOPT_PROFILE=1 at compile time makes
 * the entry time every group (vt_jit_host_prof); the session prints the table at its end.
 *
 * Memory: every value that crosses a group boundary gets a slot in one arena laid out at compile
 * time by liveness (first fit, biggest first); graph inputs, constants and outputs use the
 * caller's / the graph's memory; scattered TokenBuffer outputs the session's persistent block. The generated code reads all buffer addresses from one pointer
 * table (bufs[value index]), so the same code runs on any arena. */
#ifndef VT_CG_INTERNAL_H
#define VT_CG_INTERNAL_H

#include "codegen.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "cg_layout.h"
#include "cg_rt.h"

extern const unsigned char vt_cg_kernels_avx2_bc[], vt_cg_kernels_avx512_bc[];   /* one per ISA */
extern const size_t vt_cg_kernels_avx2_bc_len, vt_cg_kernels_avx512_bc_len;

/* ---------- lowering data ------------------------------------------------------------------ */
#define ATT_NSTR 24   /* i64 in an attention group's strides blob (see cg_group.att_v) */

/* G_ABSORBED: a layout node (Transpose, Split, Gather, Reshape-like) whose data movement an
 * attention kernel does itself by strided reads / writes (cg_plan_attn_layout); it emits nothing */
enum { G_GEMM, G_EW, G_COPY, G_FALLBACK, G_ROW, G_PERM, G_ATTN, G_BLOCKS, G_CONV, G_ABSORBED };
enum { CONV_IM2COL, CONV_DIRECT, CONV_1X1, CONV_POOL, CONV_REDUCE_MID, CONV_TRANSPOSE, CONV_RESIZE };   /* G_CONV kinds */
enum { ROW_SOFTMAX, ROW_LAYERNORM, ROW_MEAN, ROW_SUM, ROW_MAX, ROW_MIN };   /* ROW_MEAN..: vt_cgk_reduce_rows op + ROW_MEAN */
enum { A_STEP, A_PRIMARY, A_CONSTF, A_VAL };     /* argument sources */
/* how an external operand is indexed: FULL [flat], LAST [col], SCALAR [0], ROW [row] (shape
 * [..., 1]), TAIL [(row % period) * cols + col] (it matches the group's trailing dims, e.g. a
 * position embedding [1, T, C] added to [B, T, C]), STRIDED (any other numpy broadcast: per group
 * dim d the operand stride st[d], 0 where it broadcasts; index = sum over the leading dims of
 * (row / inner_d % dims[d]) * st[d] + col * st[last], the row part hoisted out of the col loop) */
enum { BC_FULL, BC_LAST, BC_SCALAR, BC_ROW, BC_TAIL, BC_STRIDED };
enum { E_ADD, E_SUB, E_MUL, E_DIV, E_RELU, E_NEG, E_ABS, E_SQRT, E_RECIP, E_EXP, E_ERF, E_TANH,
       E_SIGMOID, E_SQUARE, E_CUBE, E_ID, E_LEAKY, E_CLIP, E_HSIG, E_HSWISH, E_GELU, E_GELU_TANH, E_LOG };
/* (the names of E_* for --stats: ew_names in cg_stats.c, in this order) */

typedef struct cg_arg {
  int kind, bc;
  int32_t idx;       /* step index (A_STEP) or value index (A_VAL) */
  int32_t blob;      /* A_VAL of a constant: index into blobs (a module global), else -1 */
  int64_t period;    /* BC_TAIL: rows after which the operand repeats */
  int64_t st[VT_MAX_RANK];   /* BC_STRIDED: operand stride per group dim */
  float c;           /* A_CONSTF */
} cg_arg;

typedef struct cg_step {
  int op, nargs;
  cg_arg a[2];
  float f0, f1;
  int32_t node;      /* graph node (-1: synthetic, e.g. Gemm's bias) */
  int32_t out;       /* value written (-1: synthetic) */
  bool store;        /* the value is needed outside the group */
} cg_step;

/* BLOCKS: one row-strided byte copy (dst + doff + r * dstride <- src + soff + r * sstride) */
typedef struct cg_copy {
  int32_t src, dst, sblob;     /* values; sblob: blob of a constant source, else -1 */
  int64_t soff, doff, rows, bytes, sstride, dstride;
} cg_copy;

typedef struct cg_group {
  int kind;
  int32_t seed;                /* first node */
  int32_t *nodes; int n_nodes, cap_nodes;
  cg_step *steps; int n_steps, cap_steps;
  int32_t rank; int64_t dims[VT_MAX_RANK];   /* group shape */
  int64_t rows, cols, total;
  int32_t out;                 /* GEMM: the value holding C; COPY: destination */
  int32_t src;                 /* GEMM: A; COPY: source */
  int64_t M, N, K;
  int32_t wblob;               /* GEMM: packed B blob */
  int row_op;                  /* ROW: ROW_SOFTMAX / ROW_LAYERNORM / ROW_MEAN..ROW_MIN (reductions) */
  float eps;                   /* ROW, GEMM with ln: LayerNormalization epsilon */
  int32_t gblob, bblob;        /* ROW, GEMM with ln: scale and bias blobs (-1: no bias); PERM: odims, istr */
  bool ln;                     /* GEMM: LayerNorm prologue (A = LayerNorm(src) over K, computed while packing) */
  int64_t esize;               /* PERM: element size */
  int32_t *slots; int n_slots; /* values whose pointers a kernel body takes */
  int32_t *slot_blob;          /* per slot: the blob it reads (GEMM epilogue constants), or -1 */
  /* ATTN: inputs Q, K, V, float mask, bool mask, key bias, bias_rows, bias_cols (value, or -1)
   * and the blob of each constant one (-1: read from bufs); dims; strides blob (gblob: 12 i64,
   * the mask's, bias_rows' and bias_cols' element strides over [B,H,Nq,Nk|kh|kw]); key-bias
   * strides; aKw: the key grid's width (0: no decomposed bias). The strides blob also holds the
   * (b, h, n) element strides of Q, K, V and the output (ATT_NSTR i64 in all, cg_kernels.c), and
   * att_off the element offsets of Q, K, V in their buffers (nonzero when cg_plan_attn_layout points
   * them into a packed QKV projection) */
  int32_t att_v[8], att_blob[8];
  int64_t att_off[3];
  cg_copy *copies; int n_copies;   /* BLOCKS */
  int64_t conv[14];            /* CONV: C, H, W, OH, OW, kh, kw, sh, sw, dh, dw, ph, pw, rows per unit
                                  (CONV_1X1: pixels per unit; POOL: pads at the end in conv[5..], see
                                  cg_lower_conv.c) */
  int conv_kind;               /* CONV: CONV_IM2COL / CONV_DIRECT / CONV_1X1 / CONV_POOL / CONV_REDUCE_MID
                                  (conv[0] = R, conv[1] = I; pool_kind 1 mean, 0 sum) */
  int64_t conv_groups;         /* CONV_DIRECT / CONV_TRANSPOSE: the group attribute */
  int32_t conv_act;            /* CONV_DIRECT / CONV_1X1 / CONV_TRANSPOSE: fused activation (VT_CG_ACT_* of cg_kernels_conv.c) */
  float conv_a, conv_b;        /* ... its parameters (Clip min / max, HardSigmoid alpha / beta) */
  int32_t conv_res;            /* CONV_1X1: residual value added before the activation, or -1 */
  int32_t conv_scale;          /* CONV_1X1: per-(image, input channel) scale [Nb, C, 1, 1] (squeeze-excite), or -1 */
  int32_t conv_node;           /* the Conv / pool node (the seed may be the squeeze-excite Mul) */
  int pool_kind;               /* CONV_POOL: 0 max, 1 average, 2 average counting pads, 3 global average */
  int64_t aH, aHkv, aNq, aNk, aDh, aDv, kb_b, kb_h, aKw;
  float scale;
  int causal;
  char why[200];               /* FALLBACK: the reason */
  /* run-time rows: the value (of the original graph) whose element count at run time, divided
   * by the constant row width, is the group's row count (GEMM: M, with the width N; COPY: bytes
   * = count x element size); -1 when every dim is constant. Static fields hold the bounds. */
  int32_t dref;
  bool alias;                  /* COPY: out shares src's buffer (c->alias_of); nothing is emitted */
  /* GEMM, Eventful fusion (plan_gather / try_scatter):
   * gather prologue: gidx >= 0 is a TokenGate's idx [M] i64; src is then the gate's input x and
   *   row m of A is row idx[m] of x, read while packing (the gate does not write xg);
   * scatter epilogue: the TokenBuffer node sc_node is absorbed; the group's value sc_val (y [M, O],
   *   read by the buffer only) is stored to row sc_idx[m] of sc_out (the buffer's output, a
   *   persistent buffer of the session) instead of being stored as y. */
  int32_t gidx, gate;
  int32_t sc_val, sc_out, sc_idx, sc_node;
  char note[160];              /* FALLBACK TokenGate / TokenBuffer: why it was not absorbed */
  int into;                    /* ABSORBED: the attention group that took its node */
} cg_group;

typedef struct cg_blob { const void *data; size_t nbytes; void *owned; } cg_blob;

/* Blobs this big (weights) stay out of the LLVM module: copying hundreds of MB into LLVM
 * constants and through its object writer dominated the compile time. The JIT's code addresses
 * them where they are (constant addresses; the JIT keeps the packed ones alive); a fast.so
 * declares them and links them from an ELF object written directly (write_blob_object). Loads from them cannot
 * be constant-folded anyway. */
#define VT_CG_EXTERN_BLOB 4096
static inline bool cg_blob_extern(const cg_blob *b) { return b->nbytes >= VT_CG_EXTERN_BLOB; }

/* The resolved target (cg_target.c): CPU name and LLVM feature string (malloc'd), the kernel
 * library variant, and the features a fast.so records and checks at create. */
typedef struct cg_target {
  char *cpu, *features;
  bool host;
  int isa_id;                       /* VT_CG_ISA_* */
  const vt_cg_isa_params *isa;      /* micro-tile, vector width, blocking (cg_layout.h) */
  int64_t kc;                       /* GEMM K block: a packed-B panel block (kc x NR floats) fills half
                                       the L1 data cache of the host; the ISA's default otherwise */
  int64_t l1d;                      /* the host's L1 data cache in bytes (0: unknown / not the host) */
  char required[1024];
} cg_target;

typedef struct cg {
  bool gpu;                    /* lowering for the GPU target: no convolution-family groups (cg_lower_conv.c) */
  /* g: the graph planned and emitted, a view of orig in which every run-time dim is replaced by
   * its upper bound (buffers, tiles and constants are laid out for the bound); orig: the graph as
   * given, whose symbolic dims say what is read at run time. */
  const vt_graph *g, *orig;
  vt_graph view;
  vt_value *view_values;
  int32_t *sym_def;            /* per symbol of orig: the node that defines it at run time, or -1 */
  vt_error *e;
  int32_t *uoff, *ulist;       /* users of each value (CSR over node indices) */
  bool *is_out;                /* per value: graph output */
  int32_t *node_group;
  int32_t *val_step;           /* per value: producing step in its group, -2 GEMM primary, -1 */
  int32_t *alias_of;           /* per value: the arena value whose buffer it shares (a COPY group's
                                  output that is a view of its source: no data moves), or -1 */
  bool *nobuf;                 /* per value: needs no buffer (a gate's xg gathered by its GEMM) */
  bool *persist;               /* per value: a persistent buffer of the session (scattered TokenBuffer
                                  output), outside the arena */
  cg_group *groups; int n_groups, cap_groups;
  cg_blob *blobs; int n_blobs, cap_blobs;
  /* LLVM */
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  bool prof;                   /* VTOPT_PROFILE at compile time: the entry times every group */
  LLVMValueRef f_prof;
  LLVMTypeRef ft_prof;
  LLVMTypeRef t_i64, t_i32, t_f32, t_ptr, t_void, t_i1;
  LLVMValueRef f_log;
  LLVMValueRef f_gate_norm, f_gate_sel;   /* Eventful TokenGate loops (vt_kctx.fns) */
  int n_gate_fns;                         /* TokenGates given generated loops */
  LLVMValueRef f_gemm, f_exp, f_erf, f_tanh, f_sigmoid, f_par, f_node, f_sqrt, f_fabs, f_softmax, f_ln, f_reduce;
  LLVMTypeRef ft_softmax, ft_ln, ft_perm, ft_reduce;
  LLVMValueRef f_perm;
  LLVMTypeRef ft_gemm, ft_f1, ft_par, ft_node, ft_kern, ft_epi;
  LLVMValueRef *blob_globals;
  bool pic;                    /* building a fast.so (PIC): big blobs are hidden symbols of the .so */
  cg_target tgt;               /* resolved before lowering: packing and tiles depend on its ISA */
  /* one specialised GEMM core per distinct (M, N, K, LayerNorm prologue with / without bias, eps):
   * kernels of the same shape share it */
  struct { int64_t M, N, K; int ln, gather; float eps; LLVMValueRef fn; } *cores;
  int n_cores;
  /* one row core per (op, cols, has bias): void core(ptr x, ptr g, ptr b, ptr y, float eps, i64 r0, i64 r1) */
  struct { int op, has_b; int64_t cols; LLVMValueRef fn; } *row_cores;
  int n_row_cores;
  LLVMTypeRef ft_row_core;
  LLVMTypeRef ft_core, ft_core_dyn;   /* ft_core_dyn: ft_core + i64 M (run-time row count) */
  /* one attention core per distinct shape / attributes / mask layout:
   * void core(ptr q, ptr k, ptr v, ptr out, ptr mask, ptr bmask, ptr kbias, i64 u0, i64 u1) */
  LLVMValueRef f_attn, f_copy_rows, f_conv;
  LLVMValueRef f_conv_direct, f_conv1x1, f_pool, f_reduce_mid, f_conv_transpose, f_resize;   /* the convolution family (cg_kernels_conv.c) */
  LLVMTypeRef ft_attn, ft_attn_core, ft_copy_rows, ft_conv;
  struct attn_key { int64_t d[9 + ATT_NSTR]; float scale; int flags; } *attn_keys;
  LLVMValueRef *attn_cores;
  int n_attn_cores;
  /* GEMM epilogues shared by groups of equal structure (epi_key) */
  struct { unsigned char *key; size_t n; LLVMValueRef fn; } *epis;
  int n_epis;
} cg;

/* ---------- shared functions ------------------------------------------------------------------ */
/* cg_context.c */
double cg_now_ms(void);
bool cg_val_static(const vt_value *v);
int64_t cg_val_numel(const vt_value *v);
bool cg_is_const(const vt_graph *g, int32_t v);
bool cg_val_dynamic(const cg *c, int32_t v);
int cg_make_view(cg *c);
int cg_build_users(cg *c);
void cg_free(cg *c);

/* cg_lower.c */
int cg_plan(cg *c);
int cg_group_add_node(cg *c, int gi, int32_t node);
int64_t cg_val_tokens(const cg *c, int32_t v);
bool cg_read_perm(const vt_node *n, int32_t r, int64_t *perm);
bool cg_slice_params(const vt_graph *g, const vt_node *n, const vt_value *x, int64_t *start, int64_t *step);
int cg_norm_axis(int64_t axis, int32_t rank);
bool cg_is_copy_op(int op);
int cg_add_blob(cg *c, const void *data, size_t nbytes, void *owned);
cg_group *cg_new_group(cg *c, int kind, int32_t seed);

/* cg_lower_conv.c: the group for node ni (a Conv, a ConvTranspose, a pool, or a Mul that scales a
 * 1x1 Conv's input):
 * 1 made, 0 not applicable (why says why when ni is a Conv or pool), <0 error */
int cg_try_conv_family(cg *c, int32_t ni, char *why, size_t whyn);
/* ReduceMean / ReduceSum node ni over one contiguous run of axes followed by kept axes (red[d]:
 * axis d reduced): a CONV_REDUCE_MID group; 1 made, 0 not applicable */
int cg_try_reduce_mid(cg *c, int32_t ni, const bool *red, char *why, size_t whyn);

/* cg_views.c */
int cg_plan_attn_layout(cg *c);
void cg_plan_aliases(cg *c);

/* cg_memplan.c */
bool cg_needs_buffer(const cg *c, int32_t v);
int64_t cg_plan_arena(const cg *c, int64_t *off);
/* The memory limit (vt_cg_options.max_memory) against the graph's weights and the planned arena. */
int cg_check_memory(const cg *c, int64_t max_memory, int64_t arena, vt_error *e);

/* cg_lower.c: a Conv / ConvTranspose node's optional constant bias as a blob (1 ok, 0 not, <0 error) */
int cg_conv_bias_blob(cg *c, const vt_node *n, int64_t Cout, int32_t *bb, char *why, size_t whyn);

/* cg_emit_cpu.c */
LLVMValueRef cg_ci64(cg *c, int64_t x);
/* one elementwise step's value (x, y: its operands) with c's math functions (f_exp ...): shared
 * with the GPU emitter (cg_emit_nvptx.c), which points them at its device library */
LLVMValueRef cg_emit_elem_op(cg *c, const cg_step *s, LLVMValueRef x, LLVMValueRef y);
int cg_build_module(cg *c, int nthreads);

/* cg_target.c: the CPU code is built for (options, VTOPT_CPU, or the host), its ISA, its target
 * machine, and that target stamped on a module's functions */
int cg_target_resolve(const vt_cg_options *opt, cg_target *t, vt_error *e);
void cg_target_free(cg_target *t);
LLVMTargetMachineRef cg_target_machine(const cg_target *t, int opt_level, LLVMRelocMode reloc, vt_error *e);
void cg_target_functions(LLVMModuleRef m, LLVMContextRef ctx, const cg_target *t);

/* cg_module.c */
char *cg_llvm_err(LLVMErrorRef err);
int cg_llvm_module(cg *c, const vt_cg_options *opt, int olv, int nthreads, LLVMRelocMode reloc,
                   int (*extra)(cg *c, void *arg), void *extra_arg, double t0,
                   LLVMOrcThreadSafeContextRef *tsc, LLVMTargetMachineRef *tm);

/* cg_stats.c */
void cg_count_groups(const cg *c, vt_jit_stats *st);
void cg_print_stats(const cg *c, const vt_jit_stats *st, FILE *f);

#endif

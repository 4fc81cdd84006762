/* codegen.c — lowering of a prepared graph (static shapes) to LLVM IR, specialisation with the
 * bitcode kernel library, and in-process execution through the ORC LLJIT.
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
 * run after a reset selects every token. plan() says in --stats what was fused and why not.
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
#include "codegen.h"

#include <elf.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg_layout.h"
#include "cg_rt.h"

extern const unsigned char vt_cg_kernels_bc[];
extern const size_t vt_cg_kernels_bc_len;

/* ---------- lowering data ------------------------------------------------------------------ */
#define ATT_NSTR 24   /* i64 in an attention group's strides blob (see cg_group.att_v) */

/* G_ABSORBED: a layout node (Transpose, Split, Gather, Reshape-like) whose data movement an
 * attention kernel does itself by strided reads / writes (plan_attn_layout); it emits nothing */
enum { G_GEMM, G_EW, G_COPY, G_FALLBACK, G_ROW, G_PERM, G_ATTN, G_BLOCKS, G_CONV, G_ABSORBED };
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
static const char *const ew_names[] = {"add", "sub", "mul", "div", "relu", "neg", "abs", "sqrt",
                                       "recip", "exp", "erf", "tanh", "sigmoid", "square", "cube",
                                       "id", "leakyrelu", "clip", "hardsigmoid", "hardswish",
                                       "gelu", "gelu_tanh", "log"};

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
   * att_off the element offsets of Q, K, V in their buffers (nonzero when plan_attn_layout points
   * them into a packed QKV projection) */
  int32_t att_v[8], att_blob[8];
  int64_t att_off[3];
  cg_copy *copies; int n_copies;   /* BLOCKS */
  int64_t conv[14];            /* CONV: C, H, W, OH, OW, kh, kw, sh, sw, dh, dw, ph, pw, rows per unit */
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
static bool blob_extern(const cg_blob *b) { return b->nbytes >= VT_CG_EXTERN_BLOB; }

typedef struct cg {
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
  LLVMTypeRef ft_attn, ft_attn_core, ft_copy_rows, ft_conv;
  struct attn_key { int64_t d[9 + ATT_NSTR]; float scale; int flags; } *attn_keys;
  LLVMValueRef *attn_cores;
  int n_attn_cores;
  /* GEMM epilogues shared by groups of equal structure (epi_key) */
  struct { unsigned char *key; size_t n; LLVMValueRef fn; } *epis;
  int n_epis;
} cg;

struct vt_jit {
  vt_cg_rt rt;                 /* first: the generated entry receives &rt */
  LLVMOrcLLJITRef lljit;
  void *arena;
  void **keep; int n_keep;     /* packed weights the generated code reads (at constant addresses) */
  vt_jit_stats st;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------- small helpers ------------------------------------------------------------------ */
static bool val_static(const vt_value *v) {
  if (v->rank < 0) return false;
  for (int32_t d = 0; d < v->rank; d++)
    if (!vt_dim_is_const(v->dims[d])) return false;
  return true;
}

static int64_t val_numel(const vt_value *v) {
  int64_t d[VT_MAX_RANK];
  for (int32_t i = 0; i < v->rank; i++) d[i] = v->dims[i];
  return vt_shape_numel(v->rank, d);
}

static bool is_const(const vt_graph *g, int32_t v) {
  return v >= 0 && (g->values[v].flags & VT_VAL_CONST) && g->values[v].cdata;
}

static int add_blob(cg *c, const void *data, size_t nbytes, void *owned) {
  if (!owned)   /* graph constants are embedded once however often they are read */
    for (int i = 0; i < c->n_blobs; i++)
      if (c->blobs[i].data == data && c->blobs[i].nbytes == nbytes) return i;
  if (c->n_blobs == c->cap_blobs) {
    int nc = c->cap_blobs ? 2 * c->cap_blobs : 16;
    cg_blob *nb = realloc(c->blobs, (size_t)nc * sizeof *nb);
    if (!nb) { free(owned); return -1; }
    c->blobs = nb;
    c->cap_blobs = nc;
  }
  c->blobs[c->n_blobs] = (cg_blob){data, nbytes, owned};
  return c->n_blobs++;
}

/* ---------- run-time dims ------------------------------------------------------------------- */
static bool val_dynamic(const cg *c, int32_t v) {
  return v >= 0 && !is_const(c->orig, v) && !val_static(&c->orig->values[v]);
}

/* Does node ni read or write a value with a run-time dim? */
static bool node_dynamic(const cg *c, int32_t ni) {
  const vt_node *n = &c->orig->nodes[ni];
  for (int32_t k = 0; k < n->n_in; k++)
    if (val_dynamic(c, n->in[k])) return true;
  for (int32_t o = 0; o < n->n_out; o++)
    if (val_dynamic(c, n->out[o])) return true;
  return false;
}

/* Whether value v (in the original graph) can be an operand of group G read with broadcast kind
 * bc: run-time rows must be G's rows (same dims), a value of constant shape only broadcasts
 * along rows; a group of constant shape takes no run-time value. */
static bool dyn_match(const cg *c, const cg_group *G, int32_t v, int bc) {
  if (!val_dynamic(c, v)) return G->dref < 0 || bc == BC_LAST || bc == BC_SCALAR;
  if (G->dref < 0) return false;
  const vt_value *a = &c->orig->values[v], *r = &c->orig->values[G->dref];
  if (a->rank != r->rank || (bc != BC_FULL && bc != BC_ROW)) return false;
  for (int32_t d = 0; d < a->rank; d++)
    if (a->dims[d] != r->dims[d] && !(bc == BC_ROW && d == a->rank - 1 && a->dims[d] == 1)) return false;
  return true;
}

/* Whether the trailing dims of value v (original graph) multiply to width with constants only, so
 * that its run-time element count divided by width is a row count. */
static bool const_width(const cg *c, int32_t v, int64_t width) {
  const vt_value *val = &c->orig->values[v];
  int64_t p = 1;
  for (int32_t d = val->rank - 1; d >= 0 && p < width; d--) {
    if (!vt_dim_is_const(val->dims[d])) return false;
    p *= val->dims[d];
  }
  return p == width;
}

/* The planning view: orig with every symbolic dim replaced by its upper bound (left symbolic
 * when it has none; plan() then refuses the value). */
static int make_view(cg *c) {
  const vt_graph *g = c->orig;
  c->view = *g;
  c->view_values = malloc(((size_t)g->n_values + 1) * sizeof *c->view_values);
  c->sym_def = malloc(((size_t)g->n_syms + 1) * sizeof *c->sym_def);
  if (!c->view_values || !c->sym_def) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  if (g->n_values) memcpy(c->view_values, g->values, (size_t)g->n_values * sizeof *c->view_values);
  for (int32_t v = 0; v < g->n_values; v++)
    for (int32_t d = 0; d < c->view_values[v].rank; d++) {
      int64_t ub = vt_dim_upper(g, c->view_values[v].dims[d]);
      if (!vt_dim_is_const(c->view_values[v].dims[d]) && ub >= 0) c->view_values[v].dims[d] = ub;
    }
  c->view.values = c->view_values;
  c->g = &c->view;
  vt_cg_sym_defs(g, c->sym_def);
  return VT_OK;
}

/* Are all symbols in d bounded and defined by a node (not pinned-less graph-input dims)? */
static bool dim_runtime_ok(const cg *c, vt_dim d) {
  if (vt_dim_is_const(d)) return true;
  if (vt_dim_upper(c->orig, d) < 0) return false;
  const vt_sym *s = &c->orig->syms[vt_dim_sym(d)];
  if (s->kind == VT_SYM_NAMED) return c->sym_def[vt_dim_sym(d)] >= 0;
  return dim_runtime_ok(c, s->a) && dim_runtime_ok(c, s->b);
}

static cg_group *new_group(cg *c, int kind, int32_t seed) {
  if (c->n_groups == c->cap_groups) {
    int nc = c->cap_groups ? 2 * c->cap_groups : 64;
    cg_group *ng = realloc(c->groups, (size_t)nc * sizeof *ng);
    if (!ng) return NULL;
    c->groups = ng;
    c->cap_groups = nc;
  }
  cg_group *G = &c->groups[c->n_groups++];
  memset(G, 0, sizeof *G);
  G->kind = kind;
  G->seed = seed;
  G->out = G->src = G->wblob = -1;
  G->dref = -1;
  G->gidx = G->gate = G->sc_val = G->sc_out = G->sc_idx = G->sc_node = -1;
  const vt_node *n = &c->g->nodes[seed];
  if (node_dynamic(c, seed) && n->n_out >= 1) G->dref = n->out[0];
  return G;
}

static int group_add_node(cg *c, int gi, int32_t node) {
  cg_group *G = &c->groups[gi];
  if (G->n_nodes == G->cap_nodes) {
    int nc = G->cap_nodes ? 2 * G->cap_nodes : 8;
    int32_t *nn = realloc(G->nodes, (size_t)nc * sizeof *nn);
    if (!nn) return -1;
    G->nodes = nn;
    G->cap_nodes = nc;
  }
  G->nodes[G->n_nodes++] = node;
  c->node_group[node] = gi;
  return 0;
}

static int group_add_step(cg_group *G, const cg_step *s) {
  if (G->n_steps == G->cap_steps) {
    int nc = G->cap_steps ? 2 * G->cap_steps : 8;
    cg_step *ns = realloc(G->steps, (size_t)nc * sizeof *ns);
    if (!ns) return -1;
    G->steps = ns;
    G->cap_steps = nc;
  }
  G->steps[G->n_steps++] = *s;
  return 0;
}

/* Operand strides of v broadcast to G's shape (numpy rules, aligned from the right); false when
 * v does not broadcast to it. */
static bool bcast_strides(const cg_group *G, const vt_value *v, int64_t *st) {
  if (v->rank > G->rank) return false;
  int64_t run = 1;
  for (int32_t d = G->rank - 1; d >= 0; d--) {
    int32_t vd = d - (G->rank - v->rank);
    int64_t n = vd >= 0 ? v->dims[vd] : 1;
    if (n != 1 && n != G->dims[d]) return false;
    st[d] = n == 1 ? 0 : run;
    run *= n;
  }
  return true;
}

/* Shape of value v compared with the group shape: a BC_ kind, or -1 (*period for BC_TAIL,
 * st for BC_STRIDED). */
static int bcast_kind(const cg_group *G, const vt_value *v, int64_t *period, int64_t *st) {
  int64_t n = val_numel(v);
  if (n == 1) return BC_SCALAR;
  int32_t r = 0;
  while (r < v->rank && v->dims[r] == 1) r++;   /* strip leading ones */
  int32_t gr = 0;
  while (gr < G->rank && G->dims[gr] == 1) gr++;
  if (v->rank - r == G->rank - gr) {
    bool same = true;
    for (int32_t i = 0; r + i < v->rank; i++)
      if (v->dims[r + i] != G->dims[gr + i]) same = false;
    if (same) return BC_FULL;
  }
  if (v->rank - r == 1 && G->rank >= 1 && v->dims[v->rank - 1] == G->dims[G->rank - 1]) return BC_LAST;
  /* one value per row ([..., 1] against [..., cols]); shape inference already checked that v
   * broadcasts to the group shape, so equal counts mean equal leading dims */
  if (v->rank >= 1 && v->dims[v->rank - 1] == 1 && n == G->rows && G->cols != 1) return BC_ROW;
  int32_t vr = v->rank - r;
  if (vr >= 2 && vr <= G->rank && G->cols > 0) {
    bool tail = true;
    for (int32_t i = 1; i <= vr; i++)
      if (v->dims[v->rank - i] != G->dims[G->rank - i]) tail = false;
    if (tail) {
      *period = n / G->cols;
      return BC_TAIL;
    }
  }
  if (G->rank >= 1 && G->cols == G->dims[G->rank - 1] && bcast_strides(G, v, st)) return BC_STRIDED;
  return -1;
}

static float const_scalar(const vt_graph *g, int32_t v) {
  return (float)vt_tensor_get_f64(g->values[v].cdata, 0);
}

/* Resolves input value v of a node joining group gi; false if it cannot be an operand. */
static bool resolve_arg(cg *c, int gi, int32_t v, cg_arg *a) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  memset(a, 0, sizeof *a);
  a->blob = -1;
  if (v < 0) return false;
  const vt_value *val = &g->values[v];
  if (val->dtype != VT_F32 || !val_static(val)) return false;
  int32_t p = val->producer;
  if (p >= 0 && c->node_group[p] == gi) {
    if (c->val_step[v] == -2) { a->kind = A_PRIMARY; return true; }
    if (c->val_step[v] >= 0) { a->kind = A_STEP; a->idx = c->val_step[v]; return true; }
    return false;
  }
  if (p >= G->seed) return false;                /* not yet computed when the group runs */
  int64_t period = 0;
  int bc = bcast_kind(G, val, &period, a->st);
  if (bc < 0 || !dyn_match(c, G, v, bc)) return false;
  a->period = period;
  if (is_const(g, v)) {
    if (bc == BC_SCALAR) { a->kind = A_CONSTF; a->c = const_scalar(g, v); return true; }
    const vt_tensor *t = val->cdata;
    if (t->dtype != VT_F32 || !t->data) return false;
    a->blob = add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
    if (a->blob < 0) return false;
  }
  a->kind = A_VAL;
  a->bc = bc;
  a->idx = v;
  return true;
}

/* Builds the step for elementwise node ni joining group gi. Returns false if not supported. */
static bool ew_step(cg *c, int gi, int32_t ni, cg_step *s) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  cg_group *G = &c->groups[gi];
  memset(s, 0, sizeof *s);
  s->node = ni;
  if (n->n_out != 1 || n->out[0] < 0) return false;
  const vt_value *ov = &g->values[n->out[0]];
  if (ov->dtype != VT_F32 || !val_static(ov) || ov->rank != G->rank) return false;
  for (int32_t d = 0; d < ov->rank; d++)
    if (ov->dims[d] != G->dims[d]) return false;
  if (!dyn_match(c, G, n->out[0], BC_FULL)) return false;
  s->out = n->out[0];
  int nargs = 1;
  switch (n->op) {
  case VT_OP_Add: s->op = E_ADD; nargs = 2; break;
  case VT_OP_Sub: s->op = E_SUB; nargs = 2; break;
  case VT_OP_Mul: s->op = E_MUL; nargs = 2; break;
  case VT_OP_Div: s->op = E_DIV; nargs = 2; break;
  case VT_OP_Relu: s->op = E_RELU; break;
  case VT_OP_Neg: s->op = E_NEG; break;
  case VT_OP_Abs: s->op = E_ABS; break;
  case VT_OP_Sqrt: s->op = E_SQRT; break;
  case VT_OP_Reciprocal: s->op = E_RECIP; break;
  case VT_OP_Exp: s->op = E_EXP; break;
  case VT_OP_Erf: s->op = E_ERF; break;
  case VT_OP_Log: s->op = E_LOG; break;
  case VT_OP_Tanh: s->op = E_TANH; break;
  case VT_OP_Sigmoid: s->op = E_SIGMOID; break;
  case VT_OP_HardSwish: s->op = E_HSWISH; break;
  case VT_OP_LeakyRelu: s->op = E_LEAKY; s->f0 = vt_attr_float(n, "alpha", 0.01f); break;
  case VT_OP_HardSigmoid:
    s->op = E_HSIG;
    s->f0 = vt_attr_float(n, "alpha", 0.2f);
    s->f1 = vt_attr_float(n, "beta", 0.5f);
    break;
  case VT_OP_Gelu: {
    const char *ap = vt_attr_str(n, "approximate", "none");
    if (!strcmp(ap, "none")) s->op = E_GELU;
    else if (!strcmp(ap, "tanh")) s->op = E_GELU_TANH;
    else return false;
    break;
  }
  case VT_OP_Pow: {
    if (n->n_in != 2 || !is_const(g, n->in[1]) || val_numel(&g->values[n->in[1]]) != 1) return false;
    float y = const_scalar(g, n->in[1]);
    if (y == 1.0f) s->op = E_ID;
    else if (y == 2.0f) s->op = E_SQUARE;
    else if (y == 3.0f) s->op = E_CUBE;
    else if (y == 0.5f) s->op = E_SQRT;
    else if (y == -1.0f) s->op = E_RECIP;
    else return false;
    break;
  }
  case VT_OP_Clip: {
    s->op = E_CLIP;
    s->f0 = vt_attr_float(n, "min", -FLT_MAX);
    s->f1 = vt_attr_float(n, "max", FLT_MAX);
    for (int k = 1; k < n->n_in && k < 3; k++) {
      if (n->in[k] < 0) continue;
      if (!is_const(g, n->in[k]) || val_numel(&g->values[n->in[k]]) != 1) return false;
      if (k == 1) s->f0 = const_scalar(g, n->in[k]);
      else s->f1 = const_scalar(g, n->in[k]);
    }
    break;
  }
  default:
    return false;
  }
  if (n->n_in < nargs) return false;
  if (n->op != VT_OP_Pow && n->op != VT_OP_Clip && n->n_in != nargs) return false;
  s->nargs = nargs;
  int mark = c->n_blobs;
  for (int k = 0; k < nargs; k++)
    if (!resolve_arg(c, gi, n->in[k], &s->a[k])) {
      for (int b = mark; b < c->n_blobs; b++) free(c->blobs[b].owned);
      c->n_blobs = mark;
      return false;
    }
  /* a node with no operand from inside the group belongs to another group (unless it seeds) */
  return true;
}

/* Considers user node un of a group value (or of one of its external operands) for group gi;
 * keeps the earliest eligible one in *best. */
static void consider(cg *c, int gi, int32_t un, int32_t *best) {
  const cg_group *G = &c->groups[gi];
  if (c->node_group[un] >= 0 || un <= G->seed || (*best >= 0 && un >= *best)) return;
  if (!(vt_ops[c->g->nodes[un].op].flags & VT_OPF_ELEMENTWISE)) return;
  cg_step s;
  int mark = c->n_blobs;
  if (ew_step(c, gi, un, &s)) *best = un;
  for (int b = mark; b < c->n_blobs; b++) free(c->blobs[b].owned);
  c->n_blobs = mark;
}

/* Grows group gi (at most 64 steps) with elementwise nodes of the group's shape that read group
 * values, or that read the group's non-constant external operands (siblings: one loop computes
 * both). The earliest eligible node joins first, so steps stay in node order. */
static int grow_group(cg *c, int gi) {
  const vt_graph *g = c->g;
  for (;;) {
    cg_group *G = &c->groups[gi];
    if (G->n_steps >= 64) break;
    int32_t best = -1;
    for (int m = 0; m < G->n_nodes; m++) {
      const vt_node *n = &g->nodes[G->nodes[m]];
      for (int32_t o = 0; o < n->n_out; o++) {
        int32_t v = n->out[o];
        if (v < 0) continue;
        for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++) consider(c, gi, c->ulist[u], &best);
      }
    }
    for (int st = 0; st < G->n_steps; st++)
      for (int k = 0; k < G->steps[st].nargs; k++) {
        const cg_arg *a = &G->steps[st].a[k];
        if (a->kind != A_VAL || a->blob >= 0) continue;
        for (int32_t u = c->uoff[a->idx]; u < c->uoff[a->idx + 1]; u++) consider(c, gi, c->ulist[u], &best);
      }
    if (best < 0) break;
    cg_step s;
    if (!ew_step(c, gi, best, &s)) break;
    if (group_add_node(c, gi, best) || group_add_step(&c->groups[gi], &s))
      return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    c->val_step[s.out] = c->groups[gi].n_steps - 1;
  }
  return VT_OK;
}

static void set_group_shape(cg_group *G, const vt_value *v) {
  G->rank = v->rank;
  for (int32_t d = 0; d < v->rank; d++) G->dims[d] = v->dims[d];
  G->total = val_numel(v);
  G->cols = v->rank ? v->dims[v->rank - 1] : 1;
  G->rows = G->cols ? G->total / G->cols : 0;
}

/* Packs B (K x N, or N x K when transB) times alpha into panels of NR columns. */
static float *pack_b(const float *B, int64_t K, int64_t N, int transB, float alpha, size_t *nbytes) {
  int64_t npan = (N + VT_CG_NR - 1) / VT_CG_NR;
  size_t n = (size_t)npan * (size_t)K * VT_CG_NR;
  size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes);   /* a panel row is one cache line: no split loads */
  if (!p) return NULL;
  memset(p, 0, bytes);
  for (int64_t pn = 0; pn < npan; pn++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t j = 0; j < VT_CG_NR; j++) {
        int64_t col = pn * VT_CG_NR + j;
        if (col >= N) continue;
        float x = transB ? B[col * K + k] : B[k * N + col];
        p[(pn * K + k) * VT_CG_NR + j] = alpha * x;
      }
  *nbytes = n * sizeof *p;
  return p;
}

/* Checks a LayerNormalization node ni normalising axes [axis, rank) (cols elements) for the
 * generated kernels (unused mean / inv-std outputs; constant float32 scale and bias of the
 * normalised shape) and adds its scale / bias blobs (*bb = -1: no bias). 1 ok, 0 not (why), <0 error. */
static int ln_params(cg *c, int32_t ni, int32_t axis, int64_t cols, int32_t *gb, int32_t *bb, float *eps, char *why,
                     size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  const vt_value *X = &g->values[n->in[0]];
  *gb = *bb = -1;
  for (int32_t o = 1; o < n->n_out; o++) {
    int32_t v = n->out[o];
    if (v >= 0 && (c->is_out[v] || c->uoff[v + 1] > c->uoff[v])) {
      snprintf(why, whyn, "the mean / inverse std-dev outputs are used");
      return 0;
    }
  }
  for (int k = 1; k < 3 && k < n->n_in; k++) {
    int32_t v = n->in[k];
    if (v < 0) continue;
    if (!is_const(g, v) || g->values[v].cdata->dtype != VT_F32 || val_numel(&g->values[v]) != cols) {
      snprintf(why, whyn, "scale / bias are not constant float32 tensors of %lld elements", (long long)cols);
      return 0;
    }
    /* same shape as the normalised dims (up to leading ones), as the reference kernel requires */
    const vt_value *pv = &g->values[v];
    int32_t pr = 0, xr = axis;
    while (pr < pv->rank && pv->dims[pr] == 1) pr++;
    while (xr < X->rank && X->dims[xr] == 1) xr++;
    bool same = pv->rank - pr == X->rank - xr;
    for (int32_t d = 0; same && pr + d < pv->rank; d++) same = pv->dims[pr + d] == X->dims[xr + d];
    if (!same) {
      snprintf(why, whyn, "scale / bias shape differs from the normalised dims");
      return 0;
    }
    const vt_tensor *t = g->values[v].cdata;
    int blob = add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
    if (blob < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    if (k == 1) *gb = blob; else *bb = blob;
  }
  if (*gb < 0) { snprintf(why, whyn, "no scale"); return 0; }
  *eps = vt_attr_float(n, "epsilon", 1e-5f);
  return 1;
}

/* Eventful gather prologue: when v (the GEMM's A, or its LayerNorm prologue's input) is a
 * TokenGate's xg [M, K], read by node `user` only and not a graph output, and the gate's input x
 * is float32 [..., K] of static shape, the GEMM can read row m of A as row idx[m] of x: returns
 * the gate node (the caller makes xg bufferless), else -1 with the reason in the gate's note. */
static int32_t gather_gate(cg *c, int32_t v, int32_t user, int64_t K) {
  const vt_graph *g = c->g;
  int32_t gn = g->values[v].producer;
  if (gn < 0 || g->nodes[gn].op != VT_OP_TokenGate || g->nodes[gn].n_out < 2 || g->nodes[gn].out[0] != v) return -1;
  const vt_node *n = &g->nodes[gn];
  int gg = c->node_group[gn];
  int32_t x = n->in[0], idx = n->out[1];
  const vt_value *xv = x >= 0 ? &g->values[x] : NULL;
  const char *r = NULL;
  if (gg < 0 || c->groups[gg].kind != G_FALLBACK) r = "the gate is not a host node";
  else if (c->is_out[v]) r = "xg is a graph output";
  else if (c->uoff[v + 1] - c->uoff[v] != 1 || c->ulist[c->uoff[v]] != user)
    r = "xg is read by another node besides its GEMM";
  else if (idx < 0 || g->values[idx].dtype != VT_I64) r = "the gate's idx output is absent";
  else if (!xv || xv->dtype != VT_F32 || xv->rank < 1 || xv->dims[xv->rank - 1] != K || val_dynamic(c, x))
    r = "the gate's input is not a float32 [..., K] tensor of static shape";
  if (r) {
    if (gg >= 0) snprintf(c->groups[gg].note, sizeof c->groups[gg].note, "xg written: %s", r);
    return -1;
  }
  return gn;
}

/* Tries to start a GEMM group at node ni; returns 1 if made, 0 if not applicable, <0 error.
 * ln >= 0: a LayerNormalization node over the last axis whose only use is A of this node; the
 * group takes it as its prologue (A = the LayerNorm's input), made at the LayerNorm's turn. */
static int try_gemm(cg *c, int32_t ni, int32_t ln, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  bool gemm = n->op == VT_OP_Gemm;
  if (n->n_in < 2 || n->n_out != 1 || n->out[0] < 0) return 0;
  int32_t va = n->in[0], vb = n->in[1];
  const vt_value *A = &g->values[va], *B = &g->values[vb], *O = &g->values[n->out[0]];
  if (A->dtype != VT_F32 || B->dtype != VT_F32 || O->dtype != VT_F32) {
    snprintf(why, whyn, "only float32 GEMMs are generated");
    return 0;
  }
  if (!is_const(g, vb) || B->rank != 2 || B->cdata->dtype != VT_F32) {
    snprintf(why, whyn, "B is not a constant 2-D float32 tensor (stage 1 generates weight GEMMs only)");
    return 0;
  }
  int transB = gemm ? (int)vt_attr_int(n, "transB", 0) : 0;
  float alpha = gemm ? vt_attr_float(n, "alpha", 1.0f) : 1.0f;
  float beta = gemm ? vt_attr_float(n, "beta", 1.0f) : 1.0f;
  if (gemm && vt_attr_int(n, "transA", 0)) { snprintf(why, whyn, "transA is not generated"); return 0; }
  if (A->rank < (gemm ? 2 : 2) || (gemm && A->rank != 2)) {
    snprintf(why, whyn, "A has rank %d", A->rank);
    return 0;
  }
  int64_t K = transB ? B->dims[1] : B->dims[0], N = transB ? B->dims[0] : B->dims[1];
  if (A->dims[A->rank - 1] != K) { snprintf(why, whyn, "inner dims differ"); return 0; }
  int64_t M = 1;
  for (int32_t d = 0; d < A->rank - 1; d++) M *= A->dims[d];
  if (val_numel(O) != M * N || O->dims[O->rank - 1] != N) { snprintf(why, whyn, "unexpected output shape"); return 0; }
  cg_arg bias = {.kind = A_CONSTF, .blob = -1};
  bool has_bias = false;
  if (gemm && n->n_in >= 3 && n->in[2] >= 0 && beta != 0.0f) {
    int32_t vc = n->in[2];
    const vt_value *C = &g->values[vc];
    if (!is_const(g, vc) || C->dtype != VT_F32 || C->cdata->dtype != VT_F32) {
      snprintf(why, whyn, "C is not a constant float32 tensor");
      return 0;
    }
    cg_group tmp;
    memset(&tmp, 0, sizeof tmp);
    set_group_shape(&tmp, O);
    int64_t period = 0;
    int bc = bcast_kind(&tmp, C, &period, bias.st);
    if (bc < 0) { snprintf(why, whyn, "C does not broadcast along rows"); return 0; }
    has_bias = true;
    if (bc == BC_SCALAR) {
      bias.c = beta * const_scalar(g, vc);
    } else {
      int64_t cn = val_numel(C);
      float *cb = malloc((size_t)(cn ? cn : 1) * sizeof *cb);
      if (!cb) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      for (int64_t i = 0; i < cn; i++) cb[i] = beta * ((const float *)C->cdata->data)[i];
      bias.kind = A_VAL;
      bias.bc = bc;
      bias.idx = vc;
      bias.period = period;
      bias.blob = add_blob(c, cb, (size_t)cn * sizeof *cb, cb);
      if (bias.blob < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  }
  int32_t lgb = -1, lbb = -1;
  float leps = 0;
  if (ln >= 0) {   /* the LayerNorm normalises exactly A's rows (K contiguous floats) */
    const vt_node *L = &g->nodes[ln];
    const vt_value *X = &g->values[L->in[0]];
    int64_t axis = vt_attr_int(L, "axis", -1);
    if (axis < 0) axis += X->rank;
    if (L->out[0] != va || X->dtype != VT_F32 || axis != X->rank - 1 || X->rank != A->rank) return 0;
    for (int32_t d = 0; d < X->rank; d++)
      if (X->dims[d] != A->dims[d]) return 0;
    int r = ln_params(c, ln, (int32_t)axis, K, &lgb, &lbb, &leps, why, whyn);
    if (r <= 0) return r;
  }
  size_t nb = 0;
  float *packed = pack_b((const float *)B->cdata->data, K, N, transB, alpha, &nb);
  if (!packed) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory packing weights");
  int wb = add_blob(c, packed, nb, packed);
  if (wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = new_group(c, G_GEMM, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int gi = c->n_groups - 1;
  set_group_shape(G, O);
  G->M = M; G->N = N; G->K = K;
  G->src = va;
  G->out = n->out[0];
  G->wblob = wb;
  if (ln >= 0) {
    G->ln = true;
    G->src = g->nodes[ln].in[0];
    G->gblob = lgb;
    G->bblob = lbb;
    G->eps = leps;
    if (group_add_node(c, gi, ln)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  if (group_add_node(c, gi, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int32_t gate = gather_gate(c, G->src, ln >= 0 ? ln : ni, K);
  if (gate >= 0) {   /* A = x[idx]: read while packing; xg is never written */
    int gg = c->node_group[gate];
    c->nobuf[G->src] = true;
    G->gate = gate;
    G->gidx = g->nodes[gate].out[1];
    G->src = g->nodes[gate].in[0];
    snprintf(c->groups[gg].note, sizeof c->groups[gg].note, "xg not written: gathered by the prologue of GEMM '%s'",
             n->name);
  }
  if (has_bias) {
    cg_step s = {.op = E_ADD, .nargs = 2, .node = ni, .out = n->out[0]};
    s.a[0] = (cg_arg){.kind = A_PRIMARY, .blob = -1};
    s.a[1] = bias;
    if (group_add_step(&c->groups[gi], &s)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    c->val_step[n->out[0]] = 0;
  } else {
    c->val_step[n->out[0]] = -2;
  }
  if (grow_group(c, gi)) return -1;
  return 1;
}

/* Tokens of a value [..., D] of static shape (all leading dims), or -1. */
static int64_t val_tokens(const cg *c, int32_t v) {
  const vt_value *val = &c->orig->values[v];
  if (v < 0 || val->rank < 1 || !val_static(val)) return -1;
  int64_t d = val->dims[val->rank - 1];
  return d > 0 ? val_numel(val) / d : -1;
}

/* Eventful scatter epilogue: absorbs TokenBuffer node bn into the GEMM group that computes its y
 * [M, O] when nothing else reads y: the GEMM stores row m of y to row idx[m] of the buffer's
 * output, a persistent buffer of the session (the buffer's kept contents: rows not selected keep
 * last frame's values). Sound only if every row is written before it is read: idx must be a
 * TokenGate's over as many tokens as the output has rows, since a gate's first run after a
 * reset (or its first run at all) selects every token (flush). 1 absorbed, 0 not (why), <0 error. */
static int try_scatter(cg *c, int32_t bn, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[bn];
  if (n->n_in < 3 || n->n_out != 1 || n->out[0] < 0 || n->in[0] < 0 || n->in[1] < 0 || n->in[2] < 0) {
    snprintf(why, whyn, "absent inputs or outputs");
    return 0;
  }
  int32_t y = n->in[0], idx = n->in[1], like = n->in[2], out = n->out[0];
  int32_t p = g->values[y].producer;
  int gi = p >= 0 ? c->node_group[p] : -1;
  if (gi < 0 || c->groups[gi].kind != G_GEMM) {
    snprintf(why, whyn, "y is not computed by a generated GEMM");
    return 0;
  }
  cg_group *G = &c->groups[gi];
  const vt_value *yv = &c->orig->values[y], *iv = &c->orig->values[idx];
  int32_t gn = g->values[idx].producer;
  int64_t ng = gn >= 0 && g->nodes[gn].op == VT_OP_TokenGate ? val_tokens(c, g->nodes[gn].in[0]) : -1;
  int64_t nb = val_tokens(c, like);
  if (G->sc_val >= 0) {
    snprintf(why, whyn, "its GEMM already scatters another value");
  } else if (c->is_out[y] || c->uoff[y + 1] - c->uoff[y] != 1) {
    snprintf(why, whyn, "y is read by another node too");
  } else if (G->out != y && c->val_step[y] < 0) {
    snprintf(why, whyn, "y is not a value of its GEMM's epilogue");
  } else if (yv->rank != 2 || yv->dtype != VT_F32 || yv->dims[1] != G->N || G->cols != G->N || G->rank != 2 ||
             iv->rank != 1 || iv->dtype != VT_I64 || yv->dims[0] != iv->dims[0]) {
    snprintf(why, whyn, "y is not [M, O] with idx's M rows");
  } else if (gn < 0 || g->nodes[gn].op != VT_OP_TokenGate || g->nodes[gn].n_out < 2 || g->nodes[gn].out[1] != idx ||
             gn >= G->seed) {
    snprintf(why, whyn, "idx does not come from a TokenGate that runs before the GEMM");
  } else if (ng < 0 || ng != nb) {
    snprintf(why, whyn, "the gate's tokens (%lld) are not the buffer's (%lld): its flush would not write every row",
             (long long)ng, (long long)nb);
  } else if (g->values[out].dtype != VT_F32 || !val_static(&c->orig->values[out]) ||
             val_numel(&g->values[out]) != nb * G->N) {
    snprintf(why, whyn, "the output is not float32 [..., %lld] over the buffer's tokens", (long long)G->N);
  } else if (c->is_out[out]) {
    snprintf(why, whyn, "the output is a graph output (the caller's memory is not kept across runs)");
  } else {
    if (group_add_node(c, gi, bn)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    G = &c->groups[gi];
    G->sc_val = y;
    G->sc_out = out;
    G->sc_idx = idx;
    G->sc_node = bn;
    c->persist[out] = true;
    bool stepped = false;   /* y is the primary (no step computes it): an identity step stores it */
    for (int s = 0; s < G->n_steps; s++) stepped |= G->steps[s].out == y;
    if (!stepped) {
      cg_step st = {.op = E_ID, .nargs = 1, .node = bn, .out = y};
      st.a[0] = (cg_arg){.kind = A_PRIMARY, .blob = -1};
      if (group_add_step(G, &st)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
    return 1;
  }
  return 0;
}

/* Tries a ROW group for Softmax / LayerNormalization at node ni: 1 made, 0 not applicable. */
static int try_row(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  bool ln = n->op == VT_OP_LayerNormalization;
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  if (X->dtype != VT_F32 || Y->dtype != VT_F32 || X->rank < 1 || val_numel(X) != val_numel(Y)) {
    snprintf(why, whyn, "only float32 inputs of rank >= 1 are generated");
    return 0;
  }
  int64_t ver = vt_graph_opset(g, "");
  bool old = !ln && ver > 0 && ver < 13;   /* Softmax before opset 13: flatten at axis */
  int64_t axis = vt_attr_int(n, "axis", old ? 1 : -1);
  if (axis < 0) axis += X->rank;
  if (axis < 0 || axis >= X->rank) { snprintf(why, whyn, "axis out of range"); return 0; }
  if (!ln && !old && axis != X->rank - 1) { snprintf(why, whyn, "softmax over a non-last axis"); return 0; }
  int64_t cols = 1;
  for (int32_t d = (int32_t)axis; d < X->rank; d++) cols *= X->dims[d];
  int32_t gb = -1, bb = -1;
  float eps = 0;
  if (ln) {
    int r = ln_params(c, ni, (int32_t)axis, cols, &gb, &bb, &eps, why, whyn);
    if (r <= 0) return r;
  }
  cg_group *G = new_group(c, G_ROW, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->row_op = ln ? ROW_LAYERNORM : ROW_SOFTMAX;
  G->src = n->in[0];
  G->out = n->out[0];
  G->total = val_numel(X);
  G->cols = cols;
  G->rows = cols ? G->total / cols : 0;
  G->eps = eps;
  G->gblob = gb;
  G->bblob = bb;
  if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Makes a PERM (strided copy) group for node ni from arr: [0, VT_MAX_RANK) output dims, then
 * [VT_MAX_RANK, 2*VT_MAX_RANK) input strides per output axis (0 = broadcast). arr (malloc'd) is
 * owned by the group's blobs from here on. Returns 1 made, <0 error. */
static int add_perm_group(cg *c, int32_t ni, int64_t *arr, int32_t r, int64_t total, int64_t es) {
  const vt_node *n = &c->g->nodes[ni];
  int ob = add_blob(c, arr, VT_MAX_RANK * sizeof *arr, NULL);   /* arr owned by the second blob */
  int sb = ob < 0 ? -1 : add_blob(c, arr + VT_MAX_RANK, VT_MAX_RANK * sizeof *arr, arr);
  if (sb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = new_group(c, G_PERM, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->src = n->in[0];
  G->out = n->out[0];
  G->rank = r;
  G->total = total;
  G->cols = arr[r - 1];
  G->rows = G->cols ? G->total / G->cols : 0;
  G->esize = es;
  G->gblob = ob;
  G->bblob = sb;
  if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Transpose node n's permutation of rank r into perm (default: reversed axes); false when the
 * attribute is not a permutation of r axes. */
static bool read_perm(const vt_node *n, int32_t r, int64_t *perm) {
  const int64_t *pa = NULL;
  int32_t np = vt_attr_ints(n, "perm", &pa);
  if (np >= 0 && np != r) return false;
  bool seen[VT_MAX_RANK] = {false};
  for (int32_t d = 0; d < r; d++) {
    perm[d] = np >= 0 ? pa[d] : r - 1 - d;
    if (perm[d] < 0) perm[d] += r;
    if (perm[d] < 0 || perm[d] >= r || seen[perm[d]]) return false;
    seen[perm[d]] = true;
  }
  return true;
}

/* Tries a PERM group for Transpose at node ni: 1 made, 0 not applicable, <0 error. */
static int try_perm(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]];
  int64_t es = (int64_t)vt_dtype_size(X->dtype);
  if (X->dtype == VT_STRING || !(es == 1 || es == 2 || es == 4 || es == 8) || X->rank < 1) {
    snprintf(why, whyn, "element type or rank not supported by the generated transpose");
    return 0;
  }
  int32_t r = X->rank;
  int64_t perm[VT_MAX_RANK];
  if (!read_perm(n, r, perm)) { snprintf(why, whyn, "perm is not a permutation of the %d axes", r); return 0; }
  int64_t *arr = malloc(2 * VT_MAX_RANK * sizeof *arr);
  if (!arr) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int64_t istride[VT_MAX_RANK], acc = 1;
  for (int32_t d = r - 1; d >= 0; d--) { istride[d] = acc; acc *= X->dims[d]; }
  for (int32_t d = 0; d < VT_MAX_RANK; d++) {
    arr[d] = d < r ? X->dims[perm[d]] : 1;                   /* output dims */
    arr[VT_MAX_RANK + d] = d < r ? istride[perm[d]] : 0;     /* input stride per output axis */
  }
  return add_perm_group(c, ni, arr, r, val_numel(X), es);
}

/* Element strides st[4] of v (rank <= 4, contiguous) read as the 4-d shape full by numpy
 * broadcasting (0 along broadcast dims); false when v does not broadcast to full. */
static bool bcast_strides4(const vt_value *v, const int64_t full[4], int64_t st[4]) {
  int64_t s = 1;
  for (int d = 3; d >= 0; d--) {
    int md = d - (4 - v->rank);
    int64_t sz = md >= 0 ? v->dims[md] : 1;
    if (sz != 1 && sz != full[d]) return false;
    st[d] = sz == 1 ? 0 : s;
    s *= sz;
  }
  return true;
}

/* Tries an ATTN group for ai.vtopt.Attention at node ni: 1 made, 0 not applicable, <0 error. */
static int try_attn(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 3 || n->n_out != 1 || n->out[0] < 0) return 0;
  for (int k = 0; k < 3; k++)
    if (n->in[k] < 0 || g->values[n->in[k]].dtype != VT_F32 || g->values[n->in[k]].rank != 4) {
      snprintf(why, whyn, "Q, K, V are not float32 tensors of rank 4");
      return 0;
    }
  const vt_value *Q = &g->values[n->in[0]], *K = &g->values[n->in[1]], *V = &g->values[n->in[2]];
  const vt_value *O = &g->values[n->out[0]];
  int64_t B = Q->dims[0], H = Q->dims[1], Nq = Q->dims[2], Dh = Q->dims[3];
  int64_t Hkv = K->dims[1], Nk = K->dims[2], Dv = V->dims[3];
  if (K->dims[0] != B || V->dims[0] != B || K->dims[3] != Dh || V->dims[1] != Hkv || V->dims[2] != Nk ||
      Hkv <= 0 || H % Hkv != 0 || O->dtype != VT_F32 || val_numel(O) != B * H * Nq * Dv) {
    snprintf(why, whyn, "inconsistent Q/K/V shapes");
    return 0;
  }
  if (Dh > VT_CG_ATT_DMAX || Dv > VT_CG_ATT_DMAX) {
    snprintf(why, whyn, "head dims %lld / %lld exceed the generated kernel's %d", (long long)Dh, (long long)Dv,
             VT_CG_ATT_DMAX);
    return 0;
  }
  int32_t vin[8] = {n->in[0], n->in[1], n->in[2], -1, -1, -1, -1, -1};
  int64_t mstr[ATT_NSTR] = {0}, kb_b = 0, kb_h = 0, kw = 0;
  const vt_value *qkvo[4] = {Q, K, V, O};
  for (int k = 0; k < 4; k++) {   /* contiguous [B, H, N, D] until plan_attn_layout finds better */
    int64_t n = k == 3 ? Nq : qkvo[k]->dims[2], dd = k == 3 ? Dv : qkvo[k]->dims[3];
    int64_t h = k == 3 ? H : qkvo[k]->dims[1];
    mstr[12 + 3 * k + 2] = dd;
    mstr[12 + 3 * k + 1] = n * dd;
    mstr[12 + 3 * k] = h * n * dd;
  }
  if (n->n_in > 3 && n->in[3] >= 0) {
    const vt_value *M = &g->values[n->in[3]];
    if ((M->dtype != VT_F32 && M->dtype != VT_BOOL) || M->rank > 4) {
      snprintf(why, whyn, "mask is not a float32 or bool tensor of rank <= 4");
      return 0;
    }
    if (!bcast_strides4(M, (int64_t[]){B, H, Nq, Nk}, mstr)) {
      snprintf(why, whyn, "mask does not broadcast to [B,H,Nq,Nk]");
      return 0;
    }
    vin[M->dtype == VT_F32 ? 3 : 4] = n->in[3];
  }
  if (n->n_in > 4 && n->in[4] >= 0) {
    const vt_value *KB = &g->values[n->in[4]];
    if (KB->dtype != VT_F32 || KB->rank != 3 || KB->dims[0] != B || (KB->dims[1] != 1 && KB->dims[1] != H) ||
        KB->dims[2] != Nk) {
      snprintf(why, whyn, "key_bias is not a float32 [B,1|H,Nk] tensor");
      return 0;
    }
    vin[5] = n->in[4];
    kb_b = KB->dims[1] * Nk;
    kb_h = KB->dims[1] == 1 ? 0 : Nk;
  }
  bool has_r = n->n_in > 5 && n->in[5] >= 0, has_c = n->n_in > 6 && n->in[6] >= 0;
  if (has_r != has_c) { snprintf(why, whyn, "only one of bias_rows and bias_cols is given"); return 0; }
  if (has_r) {   /* decomposed bias: bias_rows [.., Nq, kh], bias_cols [.., Nq, kw], kh * kw = Nk */
    const vt_value *R = &g->values[n->in[5]], *C = &g->values[n->in[6]];
    if (R->dtype != VT_F32 || C->dtype != VT_F32 || R->rank < 1 || R->rank > 4 || C->rank < 1 || C->rank > 4) {
      snprintf(why, whyn, "bias_rows / bias_cols are not float32 tensors of rank 1 to 4");
      return 0;
    }
    int64_t kh = R->dims[R->rank - 1];
    kw = C->dims[C->rank - 1];
    if (kw <= 0 || kh * kw != Nk) { snprintf(why, whyn, "bias_rows / bias_cols do not span the %lld keys", (long long)Nk); return 0; }
    if (!bcast_strides4(R, (int64_t[]){B, H, Nq, kh}, mstr + 4) || !bcast_strides4(C, (int64_t[]){B, H, Nq, kw}, mstr + 8)) {
      snprintf(why, whyn, "bias_rows / bias_cols do not broadcast to [B,H,Nq,k]");
      return 0;
    }
    vin[6] = n->in[5];
    vin[7] = n->in[6];
  }
  int32_t blobs[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  for (int k = 0; k < 8; k++)
    if (vin[k] >= 0 && is_const(g, vin[k])) {
      const vt_tensor *t = g->values[vin[k]].cdata;
      if (t->dtype != g->values[vin[k]].dtype || !t->data) { snprintf(why, whyn, "unexpected constant input"); return 0; }
      blobs[k] = add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
      if (blobs[k] < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  int64_t *ms = malloc(sizeof mstr);
  if (!ms) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  memcpy(ms, mstr, sizeof mstr);
  int mb = add_blob(c, ms, sizeof mstr, ms);
  if (mb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = new_group(c, G_ATTN, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  memcpy(G->att_v, vin, sizeof vin);
  memcpy(G->att_blob, blobs, sizeof blobs);
  G->out = n->out[0];
  G->total = val_numel(O);
  G->aH = H; G->aHkv = Hkv; G->aNq = Nq; G->aNk = Nk; G->aDh = Dh; G->aDv = Dv;
  G->kb_b = kb_b; G->kb_h = kb_h; G->aKw = kw;
  G->gblob = mb;
  float scale = vt_attr_float(n, "scale", 0.0f);
  G->scale = scale != 0.0f ? scale : (Dh > 0 ? 1.0f / sqrtf((float)Dh) : 1.0f);
  G->causal = (int)vt_attr_int(n, "causal", 0);
  G->rows = B * H * ((Nq + VT_CG_ATT_QB - 1) / VT_CG_ATT_QB);   /* work units: (b, h, query block) */
  G->M = Nq; G->N = Nk; G->K = Dh;
  if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* The per-axis start and step of Slice node n (opset >= 10: starts, ends, axes, steps inputs, all
 * constant; positive steps) over x's dims: start[d] (normalised, clamped) and step[d] (1 where
 * the axis is not sliced); the output's dims say how many elements each axis keeps. False when
 * it is not such a Slice. */
static bool slice_params(const vt_graph *g, const vt_node *n, const vt_value *x, int64_t *start, int64_t *step) {
  for (int32_t d = 0; d < x->rank; d++) { start[d] = 0; step[d] = 1; }
  if (n->n_in < 3 || n->in[1] < 0 || n->in[2] < 0) return false;
  const vt_tensor *t[4] = {NULL, NULL, NULL, NULL};
  for (int k = 1; k < 5 && k < n->n_in; k++) {
    if (n->in[k] < 0) continue;
    if (!is_const(g, n->in[k])) return false;
    t[k - 1] = g->values[n->in[k]].cdata;
    if (t[k - 1]->dtype != VT_I64 && t[k - 1]->dtype != VT_I32) return false;
  }
  int64_t na = vt_tensor_numel(t[0]);
  if (na > VT_MAX_RANK || (t[2] && vt_tensor_numel(t[2]) != na) || (t[3] && vt_tensor_numel(t[3]) != na)) return false;
  for (int64_t i = 0; i < na; i++) {
    int64_t a = t[2] ? vt_tensor_get_i64(t[2], i) : i, s0 = vt_tensor_get_i64(t[0], i);
    int64_t st = t[3] ? vt_tensor_get_i64(t[3], i) : 1;
    if (a < 0) a += x->rank;
    if (a < 0 || a >= x->rank || st <= 0) return false;
    int64_t dim = x->dims[a];
    if (s0 < 0) s0 += dim;
    start[a] = s0 < 0 ? 0 : s0 > dim ? dim : s0;
    step[a] = st;
  }
  return true;
}

/* Tries a ROW group for ReduceMean/Sum/Max/Min of float32 whose reduced axes are the trailing
 * ones (dims of size 1 aside), given by a constant axes input or the axes attribute: one output
 * per row of the input. 1 made, 0 not applicable (why says so), <0 error. */
static int try_reduce(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  if (X->dtype != VT_F32 || Y->dtype != VT_F32 || X->rank < 1) {
    snprintf(why, whyn, "only float32 inputs of rank >= 1 are generated");
    return 0;
  }
  int64_t ax[VT_MAX_RANK];
  int64_t na = 0;
  if (n->n_in > 1 && n->in[1] >= 0) {
    const vt_tensor *t = is_const(g, n->in[1]) ? g->values[n->in[1]].cdata : NULL;
    if (!t || (t->dtype != VT_I64 && t->dtype != VT_I32) || vt_tensor_numel(t) > VT_MAX_RANK) {
      snprintf(why, whyn, "axes are not a constant int64/int32 list");
      return 0;
    }
    na = vt_tensor_numel(t);
    for (int64_t i = 0; i < na; i++) ax[i] = vt_tensor_get_i64(t, i);
  } else {
    const int64_t *v = NULL;
    int32_t k = vt_attr_ints(n, "axes", &v);
    if (k > VT_MAX_RANK) { snprintf(why, whyn, "too many axes"); return 0; }
    for (int32_t i = 0; i < k; i++) ax[i] = v[i];
    na = k < 0 ? 0 : k;
  }
  if (na == 0 && vt_attr_int(n, "noop_with_empty_axes", 0)) { snprintf(why, whyn, "a no-op reduction"); return 0; }
  bool red[VT_MAX_RANK];
  for (int32_t d = 0; d < X->rank; d++) red[d] = na == 0;
  for (int64_t i = 0; i < na; i++) {
    int64_t a = ax[i] < 0 ? ax[i] + X->rank : ax[i];
    if (a < 0 || a >= X->rank) { snprintf(why, whyn, "axis out of range"); return 0; }
    red[a] = true;
  }
  int32_t first = X->rank;   /* the trailing run of reduced (or size-1) dims */
  while (first > 0 && (red[first - 1] || X->dims[first - 1] == 1)) first--;
  for (int32_t d = 0; d < first; d++)
    if (red[d] && X->dims[d] != 1) { snprintf(why, whyn, "the reduced axes are not the trailing ones"); return 0; }
  int64_t cols = 1;
  for (int32_t d = first; d < X->rank; d++) cols *= X->dims[d];
  if (cols <= 0 || val_numel(Y) * cols != val_numel(X)) { snprintf(why, whyn, "empty or inconsistent reduction"); return 0; }
  cg_group *G = new_group(c, G_ROW, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->row_op = n->op == VT_OP_ReduceMean ? ROW_MEAN : n->op == VT_OP_ReduceSum ? ROW_SUM
              : n->op == VT_OP_ReduceMax ? ROW_MAX : ROW_MIN;
  G->src = n->in[0];
  G->out = n->out[0];
  G->total = val_numel(X);
  G->cols = cols;
  G->rows = G->total / cols;
  G->gblob = G->bblob = -1;
  if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* [outer, axis, inner] view of value v around axis (inner in elements). */
static void axis_view(const vt_value *v, int32_t axis, int64_t *outer, int64_t *inner) {
  *outer = *inner = 1;
  for (int32_t d = 0; d < axis; d++) *outer *= v->dims[d];
  for (int32_t d = axis + 1; d < v->rank; d++) *inner *= v->dims[d];
}

static int norm_axis(int64_t axis, int32_t rank) {
  if (axis < 0) axis += rank;
  return axis < 0 || axis >= rank ? -1 : (int)axis;
}

/* Tries a BLOCKS group (Split, Concat, Gather with constant indices) at node ni: each becomes a
 * few row-strided copies over [outer, axis, inner] views. 1 made, 0 not applicable, <0 error. */
static int try_blocks(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->n_out < 1) return 0;
  for (int32_t k = 0; k < n->n_out; k++)
    if (n->out[k] < 0) { snprintf(why, whyn, "an output is absent"); return 0; }
  cg_copy cp[64];
  int ncp = 0;
  int32_t X = n->in[0];
  if (X < 0) return 0;
  const vt_value *xv = &g->values[X];
  int64_t es = (int64_t)vt_dtype_size(xv->dtype);
  if (n->op == VT_OP_Split) {
    int axis = norm_axis(vt_attr_int(n, "axis", 0), xv->rank);
    if (axis < 0 || n->n_out > 64) { snprintf(why, whyn, "axis out of range or too many outputs"); return 0; }
    int64_t outer, inner, start = 0;
    axis_view(xv, axis, &outer, &inner);
    for (int32_t o = 0; o < n->n_out; o++) {
      const vt_value *ov = &g->values[n->out[o]];
      if (ov->rank != xv->rank || ov->dtype != xv->dtype) { snprintf(why, whyn, "unexpected output type"); return 0; }
      int64_t len = ov->dims[axis];
      cp[ncp++] = (cg_copy){X, n->out[o], -1, start * inner * es, 0, outer, len * inner * es,
                            xv->dims[axis] * inner * es, len * inner * es};
      start += len;
    }
    if (start != xv->dims[axis]) { snprintf(why, whyn, "the split sizes do not cover the axis"); return 0; }
  } else if (n->op == VT_OP_Concat) {
    const vt_value *ov = &g->values[n->out[0]];
    int axis = norm_axis(vt_attr_int(n, "axis", 0), ov->rank);
    if (axis < 0 || n->n_in > 64) { snprintf(why, whyn, "axis out of range or too many inputs"); return 0; }
    int64_t outer, inner, start = 0;
    axis_view(ov, axis, &outer, &inner);
    for (int32_t k = 0; k < n->n_in; k++) {
      int32_t v = n->in[k];
      if (v < 0) continue;
      const vt_value *iv = &g->values[v];
      if (iv->rank != ov->rank || iv->dtype != ov->dtype) { snprintf(why, whyn, "unexpected input type"); return 0; }
      int64_t len = iv->dims[axis];
      if (len) cp[ncp++] = (cg_copy){v, n->out[0], -1, 0, start * inner * es, outer, len * inner * es,
                                     len * inner * es, ov->dims[axis] * inner * es};
      start += len;
    }
    if (start != ov->dims[axis]) { snprintf(why, whyn, "the inputs do not fill the axis"); return 0; }
  } else if (n->op == VT_OP_Slice) {   /* one sliced axis, step 1: rows of a contiguous run */
    const vt_value *ov = &g->values[n->out[0]];
    int64_t st0[VT_MAX_RANK], stp[VT_MAX_RANK];
    if (!slice_params(g, n, xv, st0, stp) || ov->rank != xv->rank) {
      snprintf(why, whyn, "starts/ends/axes/steps are not constant with positive steps");
      return 0;
    }
    int axis = -1;
    for (int32_t d = 0; d < xv->rank; d++)
      if (ov->dims[d] != xv->dims[d] || st0[d] != 0) {
        if (axis >= 0 || stp[d] != 1) { snprintf(why, whyn, "slices more than one axis, or with a step"); return 0; }
        axis = d;
      }
    if (axis < 0) axis = 0;   /* the whole tensor */
    int64_t outer, inner;
    axis_view(xv, axis, &outer, &inner);
    int64_t len = ov->dims[axis];
    cp[ncp++] = (cg_copy){X, n->out[0], -1, st0[axis] * inner * es, 0, outer, len * inner * es,
                          xv->dims[axis] * inner * es, len * inner * es};
  } else {   /* Gather */
    if (n->n_in != 2 || !is_const(g, n->in[1])) { snprintf(why, whyn, "indices are not constant"); return 0; }
    const vt_tensor *it = g->values[n->in[1]].cdata;
    if (it->dtype != VT_I64 && it->dtype != VT_I32) { snprintf(why, whyn, "indices are not int64/int32"); return 0; }
    int axis = norm_axis(vt_attr_int(n, "axis", 0), xv->rank);
    int64_t ni_ = vt_tensor_numel(it);
    if (axis < 0 || ni_ > 64) { snprintf(why, whyn, "axis out of range or more than 64 indices"); return 0; }
    int64_t outer, inner, D = xv->dims[axis];
    axis_view(xv, axis, &outer, &inner);
    for (int64_t p = 0; p < ni_; p++) {
      int64_t ix = it->dtype == VT_I64 ? ((const int64_t *)it->data)[p] : ((const int32_t *)it->data)[p];
      if (ix < 0) ix += D;
      if (ix < 0 || ix >= D) { snprintf(why, whyn, "index out of range"); return 0; }
      cp[ncp++] = (cg_copy){X, n->out[0], -1, ix * inner * es, p * inner * es, outer, inner * es, D * inner * es,
                            ni_ * inner * es};
    }
  }
  for (int i = 0; i < ncp; i++)
    if (is_const(g, cp[i].src)) {
      const vt_tensor *t = g->values[cp[i].src].cdata;
      cp[i].sblob = add_blob(c, t->data, vt_tensor_nbytes(t), NULL);
      if (cp[i].sblob < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  cg_group *G = new_group(c, G_BLOCKS, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->copies = malloc((size_t)(ncp ? ncp : 1) * sizeof *G->copies);
  if (!G->copies) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  memcpy(G->copies, cp, (size_t)ncp * sizeof *cp);
  G->n_copies = ncp;
  G->src = X;
  G->out = n->out[0];
  for (int i = 0; i < ncp; i++) G->total += cp[i].rows * cp[i].bytes;
  if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Tries a CONV group (2-D, group 1, float32, constant weights: im2col + GEMM with the weights
 * packed at compile time) at node ni: 1 made, 0 not applicable, <0 error. */
static int try_conv(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 2 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Wv = &g->values[n->in[1]], *Y = &g->values[n->out[0]];
  if (X->dtype != VT_F32 || Y->dtype != VT_F32 || X->rank != 4 || Y->rank != 4 || !is_const(g, n->in[1]) ||
      Wv->rank != 4 || Wv->cdata->dtype != VT_F32) {
    snprintf(why, whyn, "only 2-D float32 convolutions with constant weights are generated");
    return 0;
  }
  if (vt_attr_int(n, "group", 1) != 1) { snprintf(why, whyn, "grouped convolution is not generated"); return 0; }
  int64_t Nb = X->dims[0], C = X->dims[1], H = X->dims[2], W = X->dims[3];
  int64_t Cout = Wv->dims[0], kh = Wv->dims[2], kw = Wv->dims[3], OH = Y->dims[2], OW = Y->dims[3];
  if (Wv->dims[1] != C || Y->dims[0] != Nb || Y->dims[1] != Cout) { snprintf(why, whyn, "inconsistent shapes"); return 0; }
  const int64_t *a = NULL;
  int64_t st[2] = {1, 1}, dl[2] = {1, 1}, pd[4] = {0, 0, 0, 0};
  if (vt_attr_ints(n, "strides", &a) == 2) { st[0] = a[0]; st[1] = a[1]; }
  if (vt_attr_ints(n, "dilations", &a) == 2) { dl[0] = a[0]; dl[1] = a[1]; }
  if (vt_attr_ints(n, "pads", &a) == 4) memcpy(pd, a, sizeof pd);
  const char *ap = vt_attr_str(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    int64_t sp[2] = {H, W}, op[2] = {OH, OW}, ks[2] = {kh, kw};
    for (int d = 0; d < 2; d++) {
      int64_t tot = (op[d] - 1) * st[d] + (ks[d] - 1) * dl[d] + 1 - sp[d];
      if (tot < 0) tot = 0;
      pd[d] = !strcmp(ap, "SAME_UPPER") ? tot / 2 : tot - tot / 2;
    }
  } else if (!strcmp(ap, "VALID")) {
    pd[0] = pd[1] = 0;
  } else if (strcmp(ap, "NOTSET")) {
    snprintf(why, whyn, "auto_pad %s is not generated", ap);
    return 0;
  }
  if (st[0] < 1 || st[1] < 1 || dl[0] < 1 || dl[1] < 1) { snprintf(why, whyn, "bad strides / dilations"); return 0; }
  int64_t K = C * kh * kw;
  int64_t rb = VT_CG_CONV_SCRATCH / (K + Cout) / VT_CG_MR * VT_CG_MR;
  if (rb < VT_CG_MR) { snprintf(why, whyn, "C*kh*kw + Cout = %lld is too large for the generated kernel", (long long)(K + Cout)); return 0; }
  int32_t bb = -1;
  if (n->n_in > 2 && n->in[2] >= 0) {
    const vt_value *Bv = &g->values[n->in[2]];
    if (!is_const(g, n->in[2]) || Bv->cdata->dtype != VT_F32 || val_numel(Bv) != Cout) {
      snprintf(why, whyn, "bias is not a constant float32 [Cout] tensor");
      return 0;
    }
    bb = add_blob(c, Bv->cdata->data, vt_tensor_nbytes(Bv->cdata), NULL);
    if (bb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  size_t nb = 0;   /* W is [Cout][K]: B = W^T, i.e. transB */
  float *packed = pack_b((const float *)Wv->cdata->data, K, Cout, 1, 1.0f, &nb);
  if (!packed) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory packing weights");
  int wb = add_blob(c, packed, nb, packed);
  if (wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = new_group(c, G_CONV, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->src = n->in[0];
  G->out = n->out[0];
  G->M = Nb * OH * OW; G->N = Cout; G->K = K;
  G->wblob = wb;
  G->gblob = bb;
  G->total = val_numel(Y);
  G->rows = (G->M + rb - 1) / rb;
  int64_t cv[14] = {C, H, W, OH, OW, kh, kw, st[0], st[1], dl[0], dl[1], pd[0], pd[1], rb};
  memcpy(G->conv, cv, sizeof cv);
  if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Tries a PERM group for Expand at node ni (a strided copy whose broadcast axes have input
 * stride 0): 1 made, 0 not applicable, <0 error. */
static int try_expand(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  int64_t es = (int64_t)vt_dtype_size(X->dtype);
  if (!(es == 1 || es == 2 || es == 4 || es == 8) || Y->rank < 1 || X->rank > Y->rank || X->dtype != Y->dtype) {
    snprintf(why, whyn, "element type or rank not supported by the generated expand");
    return 0;
  }
  int32_t r = Y->rank;
  int64_t *arr = malloc(2 * VT_MAX_RANK * sizeof *arr);
  if (!arr) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int64_t acc = 1;
  for (int32_t d = VT_MAX_RANK - 1; d >= 0; d--) {
    arr[d] = d < r ? Y->dims[d] : 1;
    int32_t xd = d - (r - X->rank);
    int64_t xs = xd >= 0 && d < r ? X->dims[xd] : 1;
    arr[VT_MAX_RANK + d] = d < r && xd >= 0 && xs != 1 ? acc : 0;
    if (d < r && xd >= 0 && xs != 1 && xs != Y->dims[d]) {
      free(arr);
      snprintf(why, whyn, "input does not broadcast to the output");
      return 0;
    }
    if (d < r && xd >= 0) acc *= xs;
  }
  return add_perm_group(c, ni, arr, r, val_numel(Y), es);
}

static bool is_copy_op(int op) {
  return op == VT_OP_Reshape || op == VT_OP_Flatten || op == VT_OP_Squeeze || op == VT_OP_Unsqueeze ||
         op == VT_OP_Identity;
}

/* ---------- attention layout: Q/K/V read and the output written in place --------------------- */
/* Exports split a packed QKV projection into heads with Reshape -> Transpose -> Split/Gather ->
 * Squeeze, and merge the heads back with Transpose -> Reshape. Each of those is a strided view
 * of one buffer, so the attention kernel reads Q, K, V in the projection's output and writes
 * the merged [B, N, H * Dv] layout directly; the layout nodes become G_ABSORBED (no kernel, their
 * values no buffer). */

/* element (i_0, ..., i_{rank-1}) of a view at off + sum_d i_d * st[d] of its buffer */
typedef struct { int32_t rank; int64_t off, dims[VT_MAX_RANK], st[VT_MAX_RANK]; } cg_sview;

static void sview_contig(cg_sview *w, const vt_value *v) {
  w->rank = v->rank;
  w->off = 0;
  int64_t acc = 1;
  for (int32_t d = v->rank - 1; d >= 0; d--) {
    w->dims[d] = v->dims[d];
    w->st[d] = acc;
    acc *= v->dims[d];
  }
}

/* w reshaped to the dims of `to` without moving data (numpy's no-copy reshape): dims of size 1
 * come and go freely; a group of old dims may be re-split into new dims when the group is
 * contiguous within itself (st[k] == st[k + 1] * dims[k + 1]). False when that is not possible. */
static bool sview_reshape(cg_sview *w, const vt_value *to) {
  int64_t od[VT_MAX_RANK], os[VT_MAX_RANK];
  int on = 0;
  for (int32_t d = 0; d < w->rank; d++)
    if (w->dims[d] != 1) {
      od[on] = w->dims[d];
      os[on++] = w->st[d];
    }
  cg_sview r = {.rank = to->rank, .off = w->off};
  for (int32_t d = 0; d < to->rank; d++) {
    r.dims[d] = to->dims[d];
    r.st[d] = 0;
    if (to->dims[d] <= 0) return false;
  }
  int i = 0;
  int32_t j = 0;
  while (i < on) {
    while (j < to->rank && to->dims[j] == 1) j++;
    if (j >= to->rank) return false;
    int i0 = i;
    int32_t j0 = j;
    int64_t op = od[i], np = to->dims[j];
    while (op != np) {
      if (np < op) {
        if (++j >= to->rank) return false;
        np *= to->dims[j];
      } else {
        if (++i >= on) return false;
        op *= od[i];
      }
    }
    for (int k = i0; k < i; k++)   /* the old group must be one strided run */
      if (os[k] != os[k + 1] * od[k + 1]) return false;
    int64_t acc = os[i];
    for (int32_t k = j; k >= j0; k--) {
      r.st[k] = to->dims[k] == 1 ? 0 : acc;
      acc *= to->dims[k];
    }
    i++;
    j++;
  }
  for (; j < to->rank; j++)
    if (to->dims[j] != 1) return false;
  *w = r;
  return true;
}

/* w after layout node ni, for its output oi; false when that output is not a view of w. */
static bool sview_step(const cg *c, cg_sview *w, int32_t ni, int32_t oi) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  const vt_value *ov = &g->values[n->out[oi]];
  if (is_copy_op(n->op)) {
    if (!sview_reshape(w, ov)) return false;
  } else if (n->op == VT_OP_Transpose) {
    int64_t perm[VT_MAX_RANK];
    if (!read_perm(n, w->rank, perm)) return false;
    cg_sview t = *w;
    for (int32_t d = 0; d < w->rank; d++) {
      t.dims[d] = w->dims[perm[d]];
      t.st[d] = w->st[perm[d]];
    }
    *w = t;
  } else if (n->op == VT_OP_Split) {
    int axis = norm_axis(vt_attr_int(n, "axis", 0), w->rank);
    if (axis < 0 || ov->rank != w->rank) return false;
    int64_t start = 0;
    for (int32_t o = 0; o < oi; o++) {
      if (n->out[o] < 0 || g->values[n->out[o]].rank != w->rank) return false;
      start += g->values[n->out[o]].dims[axis];
    }
    w->off += start * w->st[axis];
    w->dims[axis] = ov->dims[axis];
  } else if (n->op == VT_OP_Slice) {
    int64_t st0[VT_MAX_RANK], stp[VT_MAX_RANK];
    if (ov->rank != w->rank || !slice_params(g, n, &g->values[n->in[0]], st0, stp)) return false;
    for (int32_t d = 0; d < w->rank; d++) {
      w->off += st0[d] * w->st[d];
      w->st[d] *= stp[d];
      w->dims[d] = ov->dims[d];
    }
  } else if (n->op == VT_OP_Gather) {   /* one constant index: a slice that drops (or keeps) the axis */
    if (n->n_in != 2 || n->in[1] < 0 || !is_const(g, n->in[1])) return false;
    const vt_tensor *it = g->values[n->in[1]].cdata;
    int axis = norm_axis(vt_attr_int(n, "axis", 0), w->rank);
    if (axis < 0 || vt_tensor_numel(it) != 1 || it->rank > 1 || (it->dtype != VT_I64 && it->dtype != VT_I32))
      return false;
    int64_t ix = vt_tensor_get_i64(it, 0);
    if (ix < 0) ix += w->dims[axis];
    if (ix < 0 || ix >= w->dims[axis]) return false;
    w->off += ix * w->st[axis];
    if (it->rank == 0) {
      for (int32_t d = axis; d + 1 < w->rank; d++) {
        w->dims[d] = w->dims[d + 1];
        w->st[d] = w->st[d + 1];
      }
      w->rank--;
    } else {
      w->dims[axis] = 1;
    }
  } else {
    return false;
  }
  if (w->rank != ov->rank) return false;
  for (int32_t d = 0; d < w->rank; d++)
    if (w->dims[d] != ov->dims[d]) return false;
  return true;
}

/* The layout nodes between value v (read by node user) and the buffer it views, walking back:
 * nodes[i] and the index oidx[i] of the output taken; stops at a graph output, a run-time dim, a
 * producer that is not a single-node layout group, and (strict) a value with another user.
 * Returns the count; *root is the value the walk stopped at. */
static int layout_chain(const cg *c, int32_t v, int32_t user, bool strict, int32_t *nodes, int32_t *oidx, int cap,
                        int32_t *root) {
  const vt_graph *g = c->g;
  int n = 0;
  while (n < cap) {
    const vt_value *val = &g->values[v];
    if (val->producer < 0 || c->is_out[v] || val_dynamic(c, v)) break;
    bool only = true;
    for (int32_t u = c->uoff[v]; u < c->uoff[v + 1] && strict; u++) only &= c->ulist[u] == user;
    int32_t p = val->producer;
    const vt_node *pn = &g->nodes[p];
    int pg = c->node_group[p];
    if (!only || pg < 0 || c->groups[pg].n_nodes != 1 || pn->n_in < 1 || pn->in[0] < 0) break;
    int kind = c->groups[pg].kind;
    if (!((pn->op == VT_OP_Transpose && kind == G_PERM) ||
          ((pn->op == VT_OP_Split || pn->op == VT_OP_Gather || pn->op == VT_OP_Slice) && kind == G_BLOCKS) ||
          (is_copy_op(pn->op) && kind == G_COPY)))
      break;
    int32_t oi = 0;
    while (oi < pn->n_out && pn->out[oi] != v) oi++;
    nodes[n] = p;
    oidx[n++] = oi;
    user = p;
    v = pn->in[0];
  }
  *root = v;
  return n;
}

/* Moves layout node ni into attention group gi; its own group emits nothing from now on. */
static int absorb_node(cg *c, int gi, int32_t ni) {
  if (c->node_group[ni] == gi) return 0;   /* shared by two chains (a Split): taken already */
  cg_group *H = &c->groups[c->node_group[ni]];
  H->kind = G_ABSORBED;
  H->n_nodes = 0;
  H->into = gi;
  return group_add_node(c, gi, ni);
}

#define LAYOUT_CHAIN_MAX 16   /* layout nodes followed per attention operand */
/* Do the layout nodes of chains ch[k][0..len[k]) write only values that these chains or the
 * attention node an read (and no graph output)? */
static bool chains_closed(const cg *c, int32_t an, int32_t ch[3][LAYOUT_CHAIN_MAX], const int len[3]) {
  const vt_graph *g = c->g;
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < len[k]; i++) {
      const vt_node *n = &g->nodes[ch[k][i]];
      for (int32_t o = 0; o < n->n_out; o++) {
        int32_t v = n->out[o];
        if (v < 0) continue;
        if (c->is_out[v]) return false;
        for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++) {
          bool in_chain = c->ulist[u] == an;
          for (int k2 = 0; k2 < 3; k2++)
            for (int i2 = 0; i2 < len[k2]; i2++) in_chain |= c->ulist[u] == ch[k2][i2];
          if (!in_chain) return false;
        }
      }
    }
  return true;
}

/* Q, K, V of attention group gi read in place (see plan_attn_layout). */
static int absorb_attn_inputs(cg *c, int gi) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  int64_t *mstr = c->blobs[G->gblob].owned;
  int32_t ch[3][LAYOUT_CHAIN_MAX], oi[3][LAYOUT_CHAIN_MAX], root[3];
  int len[3] = {0, 0, 0};
  bool ok = false;
  for (int strict = 0; strict < 2 && !ok; strict++) {
    ok = true;
    for (int k = 0; k < 3 && ok; k++) {
      ok = G->att_blob[k] < 0;
      if (ok) len[k] = layout_chain(c, G->att_v[k], G->seed, strict, ch[k], oi[k], LAYOUT_CHAIN_MAX, &root[k]);
      ok = ok && !is_const(g, root[k]) && g->values[root[k]].dtype == VT_F32;
    }
    ok = ok && len[0] + len[1] + len[2] > 0 && chains_closed(c, G->seed, ch, len);
  }
  cg_sview w[3];
  for (int k = 0; k < 3 && ok; k++) {
    sview_contig(&w[k], &g->values[root[k]]);
    for (int i = len[k] - 1; i >= 0 && ok; i--) ok = sview_step(c, &w[k], ch[k][i], oi[k][i]);
    ok = ok && w[k].rank == 4 && (w[k].st[3] == 1 || w[k].dims[3] == 1);
  }
  for (int k = 0; k < 3 && ok; k++) {
    G->att_v[k] = root[k];
    G->att_off[k] = w[k].off;
    for (int d = 0; d < 3; d++) mstr[12 + 3 * k + d] = w[k].st[d];
    for (int i = 0; i < len[k]; i++) {
      const vt_node *n = &g->nodes[ch[k][i]];
      for (int32_t o = 0; o < n->n_out; o++)
        if (n->out[o] >= 0) c->nobuf[n->out[o]] = true;
      if (absorb_node(c, gi, ch[k][i])) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    }
  }
  return VT_OK;
}

/* The output of attention group gi written in place: O's one reader, through Reshape-like
 * views, is a Transpose; its (contiguous) output is viewed back through the inverse
 * permutation and the views to O's dims. */
static int absorb_attn_output(cg *c, int gi) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  int32_t O = G->out, on[LAYOUT_CHAIN_MAX], v = O, tn = -1;
  int n_on = 0;
  while (n_on < LAYOUT_CHAIN_MAX && !c->is_out[v] && !val_dynamic(c, v) && c->uoff[v + 1] - c->uoff[v] == 1) {
    int32_t un = c->ulist[c->uoff[v]];
    const vt_node *u = &g->nodes[un];
    int ug = c->node_group[un];
    if (ug < 0 || c->groups[ug].n_nodes != 1 || u->n_out < 1 || u->out[0] < 0 || u->in[0] != v) break;
    if (u->op == VT_OP_Transpose && c->groups[ug].kind == G_PERM) { tn = un; break; }
    if (!is_copy_op(u->op) || c->groups[ug].kind != G_COPY) break;
    on[n_on++] = un;
    v = u->out[0];
  }
  if (tn < 0 || val_dynamic(c, g->nodes[tn].out[0])) return VT_OK;
  const vt_node *t = &g->nodes[tn];
  const vt_value *F = &g->values[t->out[0]];
  int64_t perm[VT_MAX_RANK];
  if (!read_perm(t, F->rank, perm)) return VT_OK;
  cg_sview fw, ow;
  sview_contig(&fw, F);
  ow = fw;
  for (int32_t d = 0; d < F->rank; d++) {   /* the transpose's input: its axis perm[d] is F's axis d */
    ow.dims[perm[d]] = fw.dims[d];
    ow.st[perm[d]] = fw.st[d];
  }
  bool ok = true;
  for (int i = n_on - 1; i >= 0 && ok; i--) ok = sview_reshape(&ow, &g->values[g->nodes[on[i]].in[0]]);
  ok = ok && ow.rank == 4 && (ow.st[3] == 1 || ow.dims[3] == 1);
  for (int d = 0; d < 4 && ok; d++) ok = ow.dims[d] == g->values[O].dims[d];
  if (!ok) return VT_OK;
  int64_t *mstr = c->blobs[G->gblob].owned;
  for (int d = 0; d < 3; d++) mstr[21 + d] = ow.st[d];
  G->out = t->out[0];
  c->nobuf[O] = true;
  for (int i = 0; i < n_on; i++) {
    c->nobuf[g->nodes[on[i]].out[0]] = true;
    if (absorb_node(c, gi, on[i])) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  return absorb_node(c, gi, tn) ? vt_errorf(c->e, VT_ERR_MODEL, "out of memory") : VT_OK;
}

/* Q, K, V: absorbed when every chain is a view and the layout nodes' outputs feed these chains
 * only (a Split's three outputs, or the three Gathers / Slices of one value: Q, K and V). The
 * chains first go back as far as layout nodes go; when some value on them has a reader
 * elsewhere, again stopping at the first value read by anything else. The output: when its one
 * reader, through Reshape-like views, is a Transpose after which the head dim is still
 * contiguous. */
static int plan_attn_layout(cg *c) {
  for (int gi = 0; gi < c->n_groups; gi++) {
    if (c->groups[gi].kind != G_ATTN || c->groups[gi].dref >= 0) continue;
    if (absorb_attn_inputs(c, gi) || absorb_attn_output(c, gi)) return VT_ERR_MODEL;
  }
  return VT_OK;
}

/* ---------- planning ----------------------------------------------------------------------- */
static bool needs_buffer(const cg *c, int32_t v);

/* Reshape-like copies (COPY groups) whose source lives in the arena become views: the output
 * shares the source's buffer (same bytes, same order), so nothing is copied. Not for graph
 * outputs (the caller's memory) or sources that are graph inputs, outputs or constants. Chains
 * resolve to their first buffer; plan_arena keeps that buffer live for every alias's users. */
static void plan_aliases(cg *c) {
  const vt_graph *g = c->g;
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    if (G->kind != G_COPY) continue;
    int32_t src = G->src, root = c->alias_of[src] >= 0 ? c->alias_of[src] : src;
    if (c->is_out[G->out] || c->is_out[root] || g->values[root].producer < 0 ||
        !(needs_buffer(c, root) || c->persist[root]))
      continue;
    if (vt_dtype_size(g->values[src].dtype) != vt_dtype_size(g->values[G->out].dtype)) continue;
    G->alias = true;
    c->alias_of[G->out] = root;
  }
}

static int plan(cg *c) {
  const vt_graph *g = c->g;
  /* every value in play must have a static shape, or run-time dims with known bounds that a node
   * computes (graph inputs and outputs: static) */
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &c->orig->values[v];
    bool used = val->producer >= 0 || (val->flags & (VT_VAL_INPUT | VT_VAL_OUTPUT));
    if (!used) continue;
    bool bounded = val->rank >= 0 && !(val->flags & (VT_VAL_INPUT | VT_VAL_OUTPUT));
    for (int32_t d = 0; d < val->rank && bounded; d++) bounded = dim_runtime_ok(c, val->dims[d]);
    if (!val_static(val) && !bounded) {
      char buf[256];
      vt_value_type_str(c->orig, val, buf, sizeof buf);
      bool inputs_static = true;
      for (int32_t i = 0; i < g->n_inputs; i++) inputs_static &= val_static(&c->orig->values[g->inputs[i]]);
      if (inputs_static)
        return vt_errorf(c->e, VT_ERR_MODEL,
                         "%s: value '%s' has shape %s, unknown at compile time although every input dim is "
                         "pinned (data-dependent shape%s): compiled code needs static shapes, or run-time dims with "
                         "a known upper bound inside the graph",
                         g->path, val->name, buf, (val->flags & VT_VAL_OUTPUT) ? " of a graph output" : "");
      return vt_errorf(c->e, VT_ERR_MODEL,
                       "%s: value '%s' has shape %s: the JIT compiles static shapes only; pin dims with --dim SYM=N",
                       g->path, val->name, buf);
    }
    if (val->dtype == VT_STRING || val->dtype == VT_UNDEFINED || (vt_dtype_size(val->dtype) == 0))
      return vt_errorf(c->e, VT_ERR_MODEL, "%s: value '%s' has dtype %s, which the JIT does not support",
                       g->path, val->name, vt_dtype_name(val->dtype));
    if (val_numel(&g->values[v]) < 0)
      return vt_errorf(c->e, VT_ERR_MODEL, "%s: value '%s' is too large", g->path, val->name);
  }
  for (int32_t ni = 0; ni < g->n_nodes; ni++) {
    if (c->node_group[ni] >= 0) continue;
    const vt_node *n = &g->nodes[ni];
    char why[200] = "";
    bool dyn = node_dynamic(c, ni);
    bool dyn_ok = n->op == VT_OP_MatMul || n->op == VT_OP_Gemm || n->op == VT_OP_Softmax ||
                  n->op == VT_OP_LayerNormalization || (vt_ops[n->op].flags & VT_OPF_ELEMENTWISE) ||
                  is_copy_op(n->op);
    if (dyn && n->op == VT_OP_Gemm && n->n_in >= 3 && n->in[2] >= 0 && n->n_out >= 1 && n->out[0] >= 0) {
      const vt_value *cv = &g->values[n->in[2]], *ov = &g->values[n->out[0]];
      int64_t cn = val_numel(cv);
      dyn_ok = cn == 1 || (cv->rank >= 1 && cn == ov->dims[ov->rank - 1]);   /* C broadcasts along rows */
    }
    if (dyn && (vt_ops[n->op].flags & VT_OPF_ELEMENTWISE) && n->n_out == 1 && n->out[0] >= 0) {
      const vt_value *ov = &g->values[n->out[0]];
      dyn_ok = ov->rank >= 1 && const_width(c, n->out[0], ov->dims[ov->rank - 1]);
    }
    bool has_gen = n->op == VT_OP_Split || n->op == VT_OP_Concat || n->op == VT_OP_Gather || n->op == VT_OP_Slice ||
                   n->op == VT_OP_Conv ||
                   n->op == VT_OP_Expand || n->op == VT_OP_Attention || n->op == VT_OP_Transpose;
    char note[160] = "";
    if (n->op == VT_OP_TokenBuffer) {   /* absorbed into its GEMM's epilogue when that is sound */
      char bwhy[140] = "";
      int r = try_scatter(c, ni, bwhy, sizeof bwhy);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
      snprintf(note, sizeof note, "not absorbed: %s", bwhy);
    } else if (n->op == VT_OP_TokenGate) {
      snprintf(note, sizeof note, "xg written: it is not the A of a generated GEMM");
    }
    if (vt_ops[n->op].flags & VT_OPF_STATEFUL) {
      snprintf(why, sizeof why, "stateful op: its interpreter kernel runs in place with the session's state");
    } else if (dyn && !dyn_ok) {
      if (has_gen)
        snprintf(why, sizeof why, "a shape depends on a run-time dim: %s with run-time dims is not generated yet",
                 vt_ops[n->op].name);
      else
        snprintf(why, sizeof why, "no generated kernel for %s yet", vt_ops[n->op].name);
    } else if (n->op == VT_OP_MatMul || n->op == VT_OP_Gemm) {
      int r = try_gemm(c, ni, -1, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Split || n->op == VT_OP_Concat || n->op == VT_OP_Gather || n->op == VT_OP_Slice) {
      int r = try_blocks(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Conv) {
      int r = try_conv(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Expand) {
      int r = try_expand(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Attention) {
      int r = try_attn(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Transpose) {
      int r = try_perm(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_ReduceMean || n->op == VT_OP_ReduceSum || n->op == VT_OP_ReduceMax ||
               n->op == VT_OP_ReduceMin) {
      int r = try_reduce(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      if (r == 1) continue;
    } else if (n->op == VT_OP_Softmax || n->op == VT_OP_LayerNormalization) {
      /* a LayerNorm whose only use is a weight GEMM's A becomes that GEMM's prologue */
      int32_t y = n->n_out >= 1 ? n->out[0] : -1;
      if (n->op == VT_OP_LayerNormalization && y >= 0 && !c->is_out[y] && c->uoff[y + 1] - c->uoff[y] == 1) {
        int32_t un = c->ulist[c->uoff[y]];
        const vt_node *u = &g->nodes[un];
        if ((u->op == VT_OP_MatMul || u->op == VT_OP_Gemm) && u->n_in >= 2 && u->in[0] == y && u->in[1] != y &&
            c->node_group[un] < 0) {
          char gwhy[200] = "";
          int r = try_gemm(c, un, ni, gwhy, sizeof gwhy);
          if (r < 0) return VT_ERR_MODEL;
          if (r == 1) continue;
        }
      }
      int r = try_row(c, ni, why, sizeof why);
      if (r < 0) return VT_ERR_MODEL;
      cg_group *R = r == 1 ? &c->groups[c->n_groups - 1] : NULL;
      if (R && R->dref >= 0 && !const_width(c, R->dref, R->cols)) {   /* a run-time dim among the row's */
        R->kind = G_FALLBACK;
        snprintf(R->why, sizeof R->why, "%s normalises over a run-time dim", vt_ops[n->op].name);
        continue;
      }
      if (r == 1) continue;
    } else if (vt_ops[n->op].flags & VT_OPF_ELEMENTWISE) {
      if (n->n_out == 1 && n->out[0] >= 0 && g->values[n->out[0]].dtype == VT_F32) {
        cg_group *G = new_group(c, G_EW, ni);
        if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
        int gi = c->n_groups - 1;
        set_group_shape(G, &g->values[n->out[0]]);
        cg_step s;
        if (ew_step(c, gi, ni, &s)) {
          if (group_add_node(c, gi, ni) || group_add_step(&c->groups[gi], &s))
            return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
          c->val_step[s.out] = 0;
          if (grow_group(c, gi)) return VT_ERR_MODEL;
          continue;
        }
        c->n_groups--;
        snprintf(why, sizeof why, "operands or op not supported by the elementwise generator");
      } else {
        snprintf(why, sizeof why, "only float32 elementwise ops are generated");
      }
    } else if (is_copy_op(n->op) && n->n_in >= 1 && n->in[0] >= 0 && n->n_out == 1 && n->out[0] >= 0) {
      cg_group *G = new_group(c, G_COPY, ni);
      if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      G->src = n->in[0];
      G->out = n->out[0];
      G->total = (int64_t)vt_dtype_size(g->values[n->out[0]].dtype) * val_numel(&g->values[n->out[0]]);
      if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      continue;
    } else {
      snprintf(why, sizeof why, "no generated kernel for %s yet", vt_ops[n->op].name);
    }
    cg_group *G = new_group(c, G_FALLBACK, ni);
    if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    snprintf(G->why, sizeof G->why, "%s", why);
    snprintf(G->note, sizeof G->note, "%s", note);
    if (group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  /* which step results must be written out */
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    for (int s = 0; s < G->n_steps; s++) {
      cg_step *st = &G->steps[s];
      int32_t v = st->out;
      if (v < 0) continue;
      st->store = c->is_out[v];
      for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++)
        if (c->node_group[c->ulist[u]] != gi) st->store = true;
    }
  }
  if (plan_attn_layout(c)) return VT_ERR_MODEL;
  plan_aliases(c);
  return VT_OK;
}

/* Does value v need a buffer (it is produced by a node and visible outside its group)? */
static bool needs_buffer(const cg *c, int32_t v) {
  const vt_value *val = &c->g->values[v];
  if (val->producer < 0 || c->alias_of[v] >= 0 || c->nobuf[v] || c->persist[v]) return false;
  int gi = c->node_group[val->producer];
  const cg_group *G = &c->groups[gi];
  if (G->kind == G_GEMM && G->out == v) return true;
  int32_t s = c->val_step[v];
  if ((G->kind == G_EW || G->kind == G_GEMM) && s >= 0) return G->steps[s].store;
  return true;
}

typedef struct { int32_t v; int64_t size, def, last, off; } arena_item;

static int cmp_size_desc(const void *a, const void *b) {
  const arena_item *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  return x->v - y->v;
}

/* Lays out the arena; fills off[v] (-1: no arena slot; <= VT_CG_PERSIST: in the persistent
 * block, cg_rt.h) and returns the arena's size, or -1 on OOM. */
static int64_t plan_arena(const cg *c, int64_t *off) {
  const vt_graph *g = c->g;
  arena_item *items = malloc(((size_t)g->n_values + 1) * sizeof *items);
  int64_t *last_use = malloc(((size_t)g->n_values + 1) * sizeof *last_use);   /* group index, aliases folded in */
  if (!items || !last_use) { free(items); free(last_use); return -1; }
  for (int32_t v = 0; v < g->n_values; v++) {
    last_use[v] = -1;
    for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++)
      if (c->node_group[c->ulist[u]] > last_use[v]) last_use[v] = c->node_group[c->ulist[u]];
  }
  for (int gi = 0; gi < c->n_groups; gi++)   /* a gather prologue reads the gate's x and idx */
    if (c->groups[gi].gidx >= 0) {
      int32_t rd[2] = {c->groups[gi].src, c->groups[gi].gidx};
      for (int k = 0; k < 2; k++)
        if (last_use[rd[k]] < gi) last_use[rd[k]] = gi;
    }
  for (int32_t v = 0; v < g->n_values; v++)
    if (c->alias_of[v] >= 0 && last_use[v] > last_use[c->alias_of[v]]) last_use[c->alias_of[v]] = last_use[v];
  int n = 0;
  for (int32_t v = 0; v < g->n_values; v++) {
    off[v] = -1;
    if (c->is_out[v] || !needs_buffer(c, v)) continue;
    const vt_value *val = &g->values[v];
    int64_t sz = (int64_t)vt_dtype_size(val->dtype) * val_numel(val);
    sz = (sz + 63) / 64 * 64;
    if (sz == 0) sz = 64;
    int64_t def = c->node_group[val->producer], last = def > last_use[v] ? def : last_use[v];
    items[n++] = (arena_item){v, sz, def, last, 0};
  }
  free(last_use);
  qsort(items, (size_t)n, sizeof *items, cmp_size_desc);
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    int64_t o = 0;
    bool moved = true;
    while (moved) {   /* first fit: bump past every overlapping placed item until none collide */
      moved = false;
      for (int j = 0; j < i; j++) {
        if (items[j].last < items[i].def || items[j].def > items[i].last) continue;
        if (o < items[j].off + items[j].size && items[j].off < o + items[i].size) {
          o = items[j].off + items[j].size;
          moved = true;
        }
      }
    }
    items[i].off = o;
    if (o + items[i].size > total) total = o + items[i].size;
  }
  for (int i = 0; i < n; i++) off[items[i].v] = items[i].off;
  int64_t poff = 0;   /* persistent values: one after another in the session's persistent block */
  for (int32_t v = 0; v < g->n_values; v++)
    if (c->persist[v] && !c->is_out[v]) {
      off[v] = VT_CG_PERSIST - poff;
      poff += ((int64_t)vt_dtype_size(g->values[v].dtype) * val_numel(&g->values[v]) + 63) / 64 * 64;
    }
  for (int32_t v = 0; v < g->n_values; v++)
    if (c->alias_of[v] >= 0) off[v] = off[c->alias_of[v]];
  free(items);
  return total;
}

/* ---------- LLVM emission ------------------------------------------------------------------ */
typedef struct { LLVMBasicBlockRef hdr, exit; LLVMValueRef iv; LLVMValueRef phi; } cg_loop;

static void loop_begin(cg *c, LLVMValueRef fn, LLVMValueRef lo, LLVMValueRef hi, cg_loop *l) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
  l->hdr = LLVMAppendBasicBlockInContext(c->ctx, fn, "hdr");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "body");
  l->exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "exit");
  LLVMBuildBr(c->b, l->hdr);
  LLVMPositionBuilderAtEnd(c->b, l->hdr);
  l->phi = LLVMBuildPhi(c->b, c->t_i64, "i");
  LLVMAddIncoming(l->phi, &lo, &pre, 1);
  LLVMValueRef cond = LLVMBuildICmp(c->b, LLVMIntSLT, l->phi, hi, "");
  LLVMBuildCondBr(c->b, cond, body, l->exit);
  LLVMPositionBuilderAtEnd(c->b, body);
  l->iv = l->phi;
}

/* Closes loop l; vec_width > 0 asks the loop vectorizer for that width (llvm.loop metadata on
 * the latch: a self-referential node, made through a temporary). */
static void loop_end_vw(cg *c, cg_loop *l, int vec_width) {
  LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->iv, LLVMConstInt(c->t_i64, 1, 0), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(l->phi, &next, &latch, 1);
  LLVMValueRef br = LLVMBuildBr(c->b, l->hdr);
  if (vec_width > 0) {
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    LLVMMetadataRef w[2] = {LLVMMDStringInContext2(c->ctx, "llvm.loop.vectorize.width", 25),
                            LLVMValueAsMetadata(LLVMConstInt(c->t_i32, (unsigned long long)vec_width, 0))};
    LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(c->ctx, w, 2)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, id);   /* also frees the temporary */
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9), LLVMMetadataAsValue(c->ctx, id));
  }
  LLVMPositionBuilderAtEnd(c->b, l->exit);
}

static void loop_end(cg *c, cg_loop *l) { loop_end_vw(c, l, 0); }

static LLVMValueRef ci64(cg *c, int64_t x) { return LLVMConstInt(c->t_i64, (unsigned long long)x, 1); }
static LLVMValueRef cf(cg *c, double x) { return LLVMConstReal(c->t_f32, x); }

static LLVMValueRef call1(cg *c, LLVMValueRef f, LLVMTypeRef ft, LLVMValueRef x) {
  return LLVMBuildCall2(c->b, ft, f, &x, 1, "");
}

static LLVMValueRef fsel(cg *c, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                         LLVMValueRef f) {
  return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, p, a, b, ""), t, f, "");
}

static LLVMValueRef emit_op(cg *c, const cg_step *s, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef b = c->b;
  switch (s->op) {
  case E_ADD: return LLVMBuildFAdd(b, x, y, "");
  case E_SUB: return LLVMBuildFSub(b, x, y, "");
  case E_MUL: return LLVMBuildFMul(b, x, y, "");
  case E_DIV:   /* by a constant: times its reciprocal (within 1 ulp of the quotient; a divide is
                 * ~10 cycles on the critical path of an epilogue such as GELU's x / sqrt(2)) */
    if (s->nargs == 2 && s->a[1].kind == A_CONSTF && s->a[1].c != 0.0f && isfinite(1.0 / (double)s->a[1].c) &&
        fabs(1.0 / (double)s->a[1].c) >= 1.17549435e-38)
      return LLVMBuildFMul(b, x, cf(c, 1.0 / (double)s->a[1].c), "");
    return LLVMBuildFDiv(b, x, y, "");
  case E_RELU: return fsel(c, LLVMRealOLT, x, cf(c, 0), cf(c, 0), x);
  case E_NEG: return LLVMBuildFNeg(b, x, "");
  case E_ABS: return call1(c, c->f_fabs, c->ft_f1, x);
  case E_SQRT: return call1(c, c->f_sqrt, c->ft_f1, x);
  case E_RECIP: return LLVMBuildFDiv(b, cf(c, 1), x, "");
  case E_EXP: return call1(c, c->f_exp, c->ft_f1, x);
  case E_ERF: return call1(c, c->f_erf, c->ft_f1, x);
  case E_LOG: return call1(c, c->f_log, c->ft_f1, x);
  case E_TANH: return call1(c, c->f_tanh, c->ft_f1, x);
  case E_SIGMOID: return call1(c, c->f_sigmoid, c->ft_f1, x);
  case E_SQUARE: return LLVMBuildFMul(b, x, x, "");
  case E_CUBE: return LLVMBuildFMul(b, LLVMBuildFMul(b, x, x, ""), x, "");
  case E_ID: return x;
  case E_LEAKY: return fsel(c, LLVMRealOLT, x, cf(c, 0), LLVMBuildFMul(b, x, cf(c, s->f0), ""), x);
  case E_CLIP: {
    LLVMValueRef lo = cf(c, s->f0), hi = cf(c, s->f1);
    LLVMValueRef r = fsel(c, LLVMRealOLT, x, lo, lo, x);
    return fsel(c, LLVMRealOGT, r, hi, hi, r);
  }
  case E_HSIG: {
    LLVMValueRef r = LLVMBuildFAdd(b, LLVMBuildFMul(b, x, cf(c, s->f0), ""), cf(c, s->f1), "");
    r = fsel(c, LLVMRealOLT, r, cf(c, 0), cf(c, 0), r);
    return fsel(c, LLVMRealOGT, r, cf(c, 1), cf(c, 1), r);
  }
  case E_HSWISH: {
    LLVMValueRef r = LLVMBuildFAdd(b, LLVMBuildFMul(b, x, cf(c, 1.0 / 6.0), ""), cf(c, 0.5), "");
    r = fsel(c, LLVMRealOLT, r, cf(c, 0), cf(c, 0), r);
    r = fsel(c, LLVMRealOGT, r, cf(c, 1), cf(c, 1), r);
    return LLVMBuildFMul(b, x, r, "");
  }
  case E_GELU: {
    LLVMValueRef e = call1(c, c->f_erf, c->ft_f1, LLVMBuildFMul(b, x, cf(c, 0.70710678118654752), ""));
    return LLVMBuildFMul(b, LLVMBuildFMul(b, x, cf(c, 0.5), ""), LLVMBuildFAdd(b, e, cf(c, 1), ""), "");
  }
  case E_GELU_TANH: {
    LLVMValueRef x3 = LLVMBuildFMul(b, LLVMBuildFMul(b, x, x, ""), x, "");
    LLVMValueRef in = LLVMBuildFMul(b, LLVMBuildFAdd(b, x, LLVMBuildFMul(b, x3, cf(c, 0.044715), ""), ""),
                                    cf(c, 0.79788456080286536), "");
    LLVMValueRef t = call1(c, c->f_tanh, c->ft_f1, in);
    return LLVMBuildFMul(b, LLVMBuildFMul(b, x, cf(c, 0.5), ""), LLVMBuildFAdd(b, t, cf(c, 1), ""), "");
  }
  }
  return x;
}

/* Slot of value v read as blob b (-1: through its buffer). */
static int slot_of2(const cg_group *G, int32_t v, int32_t b) {
  for (int i = 0; i < G->n_slots; i++)
    if (G->slots[i] == v && G->slot_blob[i] == b) return i;
  return -1;
}

/* Collects the values a group body reads or writes through pointers (GEMM's C is passed
 * separately, not as a slot). GEMM epilogues take their constant operands (bias...) as slots too,
 * so the epilogue code depends only on the group's structure and is shared by identical layers. */
static int collect_slots(cg *c, cg_group *G) {
  G->slots = malloc(((size_t)G->n_steps * 3 + 3) * sizeof *G->slots);
  G->slot_blob = malloc(((size_t)G->n_steps * 3 + 3) * sizeof *G->slot_blob);
  if (!G->slots || !G->slot_blob) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->n_slots = 0;
  for (int s = 0; s < G->n_steps; s++) {
    cg_step *st = &G->steps[s];
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *a = &st->a[k];
      if (a->kind != A_VAL || (a->blob >= 0 && G->kind != G_GEMM)) continue;
      if (slot_of2(G, a->idx, a->blob) < 0) {
        G->slots[G->n_slots] = a->idx;
        G->slot_blob[G->n_slots++] = a->blob;
      }
    }
    if (st->store && !(G->kind == G_GEMM && st->out == G->out) && slot_of2(G, st->out, -1) < 0) {
      G->slots[G->n_slots] = st->out;
      G->slot_blob[G->n_slots++] = -1;
    }
  }
  if (G->sc_val >= 0) {   /* scatter epilogue: the persistent output and idx (int64) */
    G->slots[G->n_slots] = G->sc_out;
    G->slot_blob[G->n_slots++] = -1;
    G->slots[G->n_slots] = G->sc_idx;
    G->slot_blob[G->n_slots++] = -1;
  }
  return VT_OK;
}

/* The element computation of a group: prim = GEMM accumulator (or NULL), col / flat indices,
 * ptrs = slot pointers, cptr = address of this element in GEMM's C (stores of G->out go there). */
static void emit_elem(cg *c, const cg_group *G, LLVMValueRef prim, LLVMValueRef row, LLVMValueRef col,
                      LLVMValueRef flat,
                      LLVMValueRef *ptrs, LLVMValueRef cptr, LLVMValueRef *res) {
  for (int s = 0; s < G->n_steps; s++) {
    const cg_step *st = &G->steps[s];
    LLVMValueRef a[2] = {NULL, NULL};
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *ar = &st->a[k];
      switch (ar->kind) {
      case A_STEP: a[k] = res[ar->idx]; break;
      case A_PRIMARY: a[k] = prim; break;
      case A_CONSTF: a[k] = cf(c, ar->c); break;
      case A_VAL: {
        LLVMValueRef base = ar->blob >= 0 && G->kind != G_GEMM ? c->blob_globals[ar->blob]
                            : ptrs[slot_of2(G, ar->idx, G->kind == G_GEMM ? ar->blob : -1)];
        LLVMValueRef idx = ar->bc == BC_FULL ? flat : ar->bc == BC_LAST ? col : ar->bc == BC_ROW ? row : ci64(c, 0);
        if (ar->bc == BC_TAIL)
          idx = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, LLVMBuildURem(c->b, row, ci64(c, ar->period), ""),
                                                      ci64(c, G->cols), ""), col, "");
        if (ar->bc == BC_STRIDED) {
          idx = LLVMBuildNSWMul(c->b, col, ci64(c, ar->st[G->rank - 1]), "");
          int64_t inner = 1;
          for (int32_t d = G->rank - 2; d >= 0; d--) {
            if (ar->st[d]) {
              LLVMValueRef q = inner > 1 ? LLVMBuildUDiv(c->b, row, ci64(c, inner), "") : row;
              q = LLVMBuildURem(c->b, q, ci64(c, G->dims[d]), "");
              idx = LLVMBuildNSWAdd(c->b, idx, LLVMBuildNSWMul(c->b, q, ci64(c, ar->st[d]), ""), "");
            }
            inner *= G->dims[d];
          }
        }
        LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, base, &idx, 1, "");
        a[k] = LLVMBuildLoad2(c->b, c->t_f32, p, "");
        break;
      }
      }
    }
    res[s] = emit_op(c, st, a[0], a[1]);
    if (G->sc_val >= 0 && st->out == G->sc_val) {   /* scatter: row `row` of y goes to row idx[row] of out */
      LLVMValueRef ip = LLVMBuildInBoundsGEP2(c->b, c->t_i64, ptrs[slot_of2(G, G->sc_idx, -1)], &row, 1, "");
      LLVMValueRef tok = LLVMBuildLoad2(c->b, c->t_i64, ip, "tok");
      LLVMValueRef at = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, tok, ci64(c, G->cols), ""), col, "");
      LLVMBuildStore(c->b, res[s], LLVMBuildInBoundsGEP2(c->b, c->t_f32, ptrs[slot_of2(G, G->sc_out, -1)], &at, 1, ""));
    } else if (st->store) {
      LLVMValueRef p;
      if (G->kind == G_GEMM && st->out == G->out) p = cptr;
      else p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, ptrs[slot_of2(G, st->out, -1)], &flat, 1, "");
      LLVMBuildStore(c->b, res[s], p);
    }
  }
}

static LLVMValueRef load_buf(cg *c, LLVMValueRef bufs, int32_t v) {
  LLVMValueRef idx = ci64(c, v);
  LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->t_ptr, bufs, &idx, 1, "");
  return LLVMBuildLoad2(c->b, c->t_ptr, p, "");
}

/* Dim d of the original graph at run time: constants fold; named symbols are read from the dims
 * table (bufs[n_values][symbol], filled by the node that defines them); expressions are built. */
static LLVMValueRef emit_dim(cg *c, LLVMValueRef tbl, vt_dim d) {
  if (vt_dim_is_const(d)) return ci64(c, d);
  const vt_sym *s = &c->orig->syms[vt_dim_sym(d)];
  if (s->kind == VT_SYM_NAMED) {
    LLVMValueRef ix = ci64(c, vt_dim_sym(d));
    return LLVMBuildLoad2(c->b, c->t_i64, LLVMBuildInBoundsGEP2(c->b, c->t_i64, tbl, &ix, 1, ""), "");
  }
  LLVMValueRef a = emit_dim(c, tbl, s->a), b = emit_dim(c, tbl, s->b);
  switch (s->kind) {
  case VT_SYM_ADD: return LLVMBuildAdd(c->b, a, b, "");
  case VT_SYM_SUB: return LLVMBuildSub(c->b, a, b, "");
  case VT_SYM_MUL: return LLVMBuildMul(c->b, a, b, "");
  case VT_SYM_DIV: return LLVMBuildSDiv(c->b, a, b, "");   /* dims are >= 0: floor */
  case VT_SYM_CEILDIV: return LLVMBuildSDiv(c->b, LLVMBuildSub(c->b, LLVMBuildAdd(c->b, a, b, ""), ci64(c, 1), ""), b, "");
  case VT_SYM_MOD: return LLVMBuildSRem(c->b, a, b, "");
  case VT_SYM_MAX: return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b, "");
  default: return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");   /* MIN */
  }
}

/* Element count of value v at run time (its dims in the original graph). */
static LLVMValueRef emit_numel(cg *c, LLVMValueRef bufs, int32_t v) {
  const vt_value *val = &c->orig->values[v];
  LLVMValueRef tbl = load_buf(c, bufs, c->g->n_values), n = ci64(c, 1);
  for (int32_t d = 0; d < val->rank; d++) n = LLVMBuildMul(c->b, n, emit_dim(c, tbl, val->dims[d]), "");
  return n;
}

/* Run-time row count of a group with run-time dims: elements of dref / the constant width. */
static LLVMValueRef emit_rows(cg *c, LLVMValueRef bufs, const cg_group *G, int64_t width) {
  return LLVMBuildSDiv(c->b, emit_numel(c, bufs, G->dref), ci64(c, width ? width : 1), "rows");
}

static void add_fn_attr(cg *c, LLVMValueRef f, const char *name) {
  unsigned k = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, k, 0));
}

static void add_noalias_params(cg *c, LLVMValueRef f, int first, int n) {
  unsigned k = LLVMGetEnumAttributeKindForName("noalias", 7);
  for (int i = first; i < first + n; i++)
    LLVMAddAttributeAtIndex(f, (unsigned)i + 1, LLVMCreateEnumAttribute(c->ctx, k, 0));
}

/* body(ptr noalias slot..., [ptr noalias C, i64 ldc, i64 m0, i64 n0, i64 mr, i64 nr] | [i64 r0, i64 r1]) */
static LLVMValueRef emit_body(cg *c, cg_group *G, int gi) {
  bool gemm = G->kind == G_GEMM;
  int np = G->n_slots + (gemm ? 6 : 2);
  LLVMTypeRef *pt = malloc((size_t)np * sizeof *pt);
  LLVMValueRef *ptrs = malloc(((size_t)G->n_slots + 1) * sizeof *ptrs);
  LLVMValueRef *res = malloc(((size_t)G->n_steps + 1) * sizeof *res);
  if (!pt || !ptrs || !res) { free(pt); free(ptrs); free(res); return NULL; }
  for (int i = 0; i < G->n_slots; i++) pt[i] = c->t_ptr;
  if (gemm) {
    pt[G->n_slots] = c->t_ptr;
    for (int i = 1; i < 6; i++) pt[G->n_slots + i] = c->t_i64;
  } else {
    pt[G->n_slots] = pt[G->n_slots + 1] = c->t_i64;
  }
  LLVMTypeRef ft = LLVMFunctionType(c->t_void, pt, (unsigned)np, 0);
  char name[64];
  snprintf(name, sizeof name, "vt_body_%d", gi);
  LLVMValueRef f = LLVMAddFunction(c->mod, name, ft);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_fn_attr(c, f, "alwaysinline");
  add_fn_attr(c, f, "nounwind");
  add_noalias_params(c, f, 0, G->n_slots + (gemm ? 1 : 0));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, f, "entry");
  LLVMPositionBuilderAtEnd(c->b, entry);
  for (int i = 0; i < G->n_slots; i++) ptrs[i] = LLVMGetParam(f, (unsigned)i);
  if (gemm) {
    LLVMValueRef C = LLVMGetParam(f, (unsigned)G->n_slots), ldc = LLVMGetParam(f, (unsigned)G->n_slots + 1);
    LLVMValueRef m0 = LLVMGetParam(f, (unsigned)G->n_slots + 2), n0 = LLVMGetParam(f, (unsigned)G->n_slots + 3);
    LLVMValueRef mr = LLVMGetParam(f, (unsigned)G->n_slots + 4), nr = LLVMGetParam(f, (unsigned)G->n_slots + 5);
    /* full tiles (nr == NR, the common case) get a constant inner trip count so the
     * vectorizer covers the whole row; edge tiles take the generic loop */
    LLVMBasicBlockRef full = LLVMAppendBasicBlockInContext(c->ctx, f, "full");
    LLVMBasicBlockRef edge = LLVMAppendBasicBlockInContext(c->ctx, f, "edge");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, f, "done");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, nr, ci64(c, VT_CG_NR), ""), full, edge);
    for (int pass = 0; pass < 2; pass++) {
      LLVMPositionBuilderAtEnd(c->b, pass ? edge : full);
      cg_loop li, lj;
      loop_begin(c, f, ci64(c, 0), mr, &li);
      LLVMValueRef row = LLVMBuildNSWAdd(c->b, m0, li.iv, "");
      LLVMValueRef crow = LLVMBuildNSWMul(c->b, li.iv, ldc, "");
      LLVMValueRef frow = LLVMBuildNSWMul(c->b, row, ci64(c, G->N), "");
      loop_begin(c, f, ci64(c, 0), pass ? nr : ci64(c, VT_CG_NR), &lj);
      LLVMValueRef col = LLVMBuildNSWAdd(c->b, n0, lj.iv, "");
      LLVMValueRef flat = LLVMBuildNSWAdd(c->b, frow, col, "");
      LLVMValueRef cidx = LLVMBuildNSWAdd(c->b, crow, lj.iv, "");
      LLVMValueRef cptr = LLVMBuildInBoundsGEP2(c->b, c->t_f32, C, &cidx, 1, "");
      LLVMValueRef prim = LLVMBuildLoad2(c->b, c->t_f32, cptr, "");
      emit_elem(c, G, prim, row, col, flat, ptrs, cptr, res);
      loop_end_vw(c, &lj, pass ? 0 : VT_CG_NR);
      loop_end(c, &li);
      LLVMBuildBr(c->b, done);
    }
    LLVMPositionBuilderAtEnd(c->b, done);
  } else {
    LLVMValueRef r0 = LLVMGetParam(f, (unsigned)G->n_slots), r1 = LLVMGetParam(f, (unsigned)G->n_slots + 1);
    cg_loop li, lj;
    loop_begin(c, f, r0, r1, &li);
    LLVMValueRef frow = LLVMBuildNSWMul(c->b, li.iv, ci64(c, G->cols), "");
    loop_begin(c, f, ci64(c, 0), ci64(c, G->cols), &lj);
    LLVMValueRef flat = LLVMBuildNSWAdd(c->b, frow, lj.iv, "");
    emit_elem(c, G, NULL, li.iv, lj.iv, flat, ptrs, NULL, res);
    loop_end(c, &lj);
    loop_end(c, &li);
  }
  LLVMBuildRetVoid(c->b);
  free(pt);
  free(ptrs);
  free(res);
  return f;
}

/* The GEMM core for G's shape: void core(ptr A, ptr Bp, ptr C, i64 u0, i64 u1, ptr bufs,
 * ptr epi, ptr ln_scale, ptr ln_bias, ptr ridx [, i64 M]) over work units [u0, u1) (cg_layout.h), the bitcode driver inlined with constant M, N, K (noinline itself, so kernels of one
 * shape share its code; the epilogue is an indirect call per tile). */
static LLVMValueRef gemm_core(cg *c, const cg_group *G) {
  bool dyn = G->dref >= 0;   /* M at run time: the core takes it as a 10th argument */
  int64_t cm = dyn ? -1 : G->M;
  int ln = G->ln ? 1 + (G->bblob >= 0) : 0;   /* 0 none, 1 LayerNorm without bias, 2 with */
  int gather = G->gidx >= 0;   /* ridx read (else a constant NULL: the driver's gather code folds away) */
  float eps = G->ln ? G->eps : 0.0f;
  for (int i = 0; i < c->n_cores; i++)
    if (c->cores[i].M == cm && c->cores[i].N == G->N && c->cores[i].K == G->K && c->cores[i].ln == ln &&
        c->cores[i].gather == gather && c->cores[i].eps == eps)
      return c->cores[i].fn;
  void *nc = realloc(c->cores, ((size_t)c->n_cores + 1) * sizeof *c->cores);
  if (!nc) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
  c->cores = nc;
  char name[96];
  if (dyn) snprintf(name, sizeof name, "vt_gemm_Mx%lldx%lld%s%s", (long long)G->N, (long long)G->K, ln ? "_ln" : "",
                    gather ? "_gather" : "");
  else snprintf(name, sizeof name, "vt_gemm_%lldx%lldx%lld%s%s", (long long)G->M, (long long)G->N, (long long)G->K,
                ln ? "_ln" : "", gather ? "_gather" : "");
  LLVMValueRef f = LLVMAddFunction(c->mod, name, dyn ? c->ft_core_dyn : c->ft_core);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_fn_attr(c, f, "noinline");
  add_fn_attr(c, f, "nounwind");
  add_noalias_params(c, f, 2, 1);
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef ga[17] = {LLVMGetParam(f, 0), ci64(c, G->K), LLVMGetParam(f, 1), LLVMGetParam(f, 2),
                         ci64(c, G->N), dyn ? LLVMGetParam(f, 10) : ci64(c, G->M), ci64(c, G->N), ci64(c, G->K),
                         LLVMGetParam(f, 3), LLVMGetParam(f, 4), LLVMGetParam(f, 5), LLVMGetParam(f, 6),
                         LLVMConstInt(c->t_i32, (unsigned long long)(ln != 0), 0), ln ? LLVMGetParam(f, 7) : nul,
                         ln == 2 ? LLVMGetParam(f, 8) : nul, cf(c, eps), gather ? LLVMGetParam(f, 9) : nul};
  LLVMBuildCall2(c->b, c->ft_gemm, c->f_gemm, ga, 17, "");
  LLVMBuildRetVoid(c->b);
  if (saved) LLVMPositionBuilderAtEnd(c->b, saved);
  c->cores[c->n_cores].M = cm;
  c->cores[c->n_cores].N = G->N;
  c->cores[c->n_cores].K = G->K;
  c->cores[c->n_cores].ln = ln;
  c->cores[c->n_cores].gather = gather;
  c->cores[c->n_cores].eps = eps;
  c->cores[c->n_cores++].fn = f;
  return f;
}

/* Emits the kernel function of group gi: void k(ptr bufs, i64 begin, i64 end). */
static void kput(unsigned char *key, size_t cap, size_t *n, const void *p, size_t sz) {
  if (sz <= cap && *n <= cap - sz) memcpy(key + *n, p, sz);
  *n += sz;
}

/* The structure of a GEMM epilogue (everything its code depends on): equal keys, equal code.
 * Returns the key's length (more than cap: too long to cache). */
static size_t epi_key(const cg_group *G, unsigned char *key, size_t cap) {
  size_t n = 0;
#define PUT(x) kput(key, cap, &n, &(x), sizeof(x))
  PUT(G->N);
  PUT(G->n_slots);
  PUT(G->n_steps);
  for (int s = 0; s < G->n_steps; s++) {
    const cg_step *st = &G->steps[s];
    int32_t outslot = G->sc_val >= 0 && st->out == G->sc_val ? -4   /* scattered (slots at the end) */
                      : st->store ? (st->out == G->out ? -2 : slot_of2(G, st->out, -1)) : -3;
    PUT(st->op); PUT(st->nargs); PUT(st->f0); PUT(st->f1); PUT(outslot);
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *a = &st->a[k];
      int32_t where = a->kind == A_VAL ? slot_of2(G, a->idx, a->blob) : a->kind == A_STEP ? a->idx : 0;
      float cv = a->kind == A_CONSTF ? a->c : 0.0f;
      int32_t bc = a->kind == A_VAL ? a->bc : 0;
      int64_t period = a->kind == A_VAL ? a->period : 0;
      PUT(a->kind); PUT(bc); PUT(where); PUT(cv); PUT(period);
      if (bc == BC_STRIDED)
        for (int32_t d = 0; d < G->rank; d++) { PUT(a->st[d]); PUT(G->dims[d]); }
    }
  }
#undef PUT
  return n;
}

/* Starts group gi's kernel function `void vt_kernel_<gi>(ptr bufs, i64 lo, i64 hi)` (internal,
 * noinline, nounwind) and positions the builder at its entry block. */
static LLVMValueRef begin_kernel(cg *c, int gi) {
  char name[64];
  snprintf(name, sizeof name, "vt_kernel_%d", gi);
  LLVMValueRef k = LLVMAddFunction(c->mod, name, c->ft_kern);
  LLVMSetLinkage(k, LLVMInternalLinkage);
  add_fn_attr(c, k, "noinline");
  add_fn_attr(c, k, "nounwind");
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, k, "entry"));
  return k;
}

/* Emits the kernel function of group gi: void k(ptr bufs, i64 begin, i64 end). */
static LLVMValueRef emit_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  if (collect_slots(c, G)) return NULL;
  char name[64];
  LLVMValueRef *args = malloc(((size_t)G->n_slots + 8) * sizeof *args);
  if (!args) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
  LLVMValueRef epi = NULL, body = NULL;
  LLVMTypeRef bt = NULL;
  if (G->kind == G_GEMM && G->n_steps) {
    /* epi(ptr tbl, C, ldc, m0, n0, mr, nr): tbl = the group's slot pointers (built by the kernel) */
    unsigned char kb[4096];
    size_t kn = epi_key(G, kb, sizeof kb);
    for (int i = 0; i < c->n_epis && !epi && kn <= sizeof kb; i++)
      if (c->epis[i].n == kn && !memcmp(c->epis[i].key, kb, kn)) epi = c->epis[i].fn;
    if (!epi) {
      body = emit_body(c, G, gi);
      if (!body) { free(args); vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
      bt = LLVMGlobalGetValueType(body);
      snprintf(name, sizeof name, "vt_epi_%d", gi);
      epi = LLVMAddFunction(c->mod, name, c->ft_epi);
      LLVMSetLinkage(epi, LLVMInternalLinkage);
      add_fn_attr(c, epi, "nounwind");
      LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, epi, "entry"));
      LLVMValueRef tbl = LLVMGetParam(epi, 0);
      for (int i = 0; i < G->n_slots; i++) {
        LLVMValueRef ix = ci64(c, i);
        args[i] = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildInBoundsGEP2(c->b, c->t_ptr, tbl, &ix, 1, ""), "");
      }
      for (int i = 1; i < 7; i++) args[G->n_slots + i - 1] = LLVMGetParam(epi, (unsigned)i);
      LLVMBuildCall2(c->b, bt, body, args, (unsigned)G->n_slots + 6, "");
      LLVMBuildRetVoid(c->b);
      void *ne = kn <= sizeof kb ? realloc(c->epis, ((size_t)c->n_epis + 1) * sizeof *c->epis) : NULL;
      unsigned char *kc = ne ? malloc(kn) : NULL;
      if (ne) c->epis = ne;
      if (kc) {
        memcpy(kc, kb, kn);
        c->epis[c->n_epis].key = kc;
        c->epis[c->n_epis].n = kn;
        c->epis[c->n_epis++].fn = epi;
      }
    }
  } else if (G->n_steps) {
    body = emit_body(c, G, gi);
    if (!body) { free(args); vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
    bt = LLVMGlobalGetValueType(body);
  }
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0), b0 = LLVMGetParam(k, 1), b1 = LLVMGetParam(k, 2);
  if (G->kind == G_GEMM) {
    LLVMValueRef core = gemm_core(c, G);
    if (!core) { free(args); return NULL; }
    LLVMPositionBuilderAtEnd(c->b, LLVMGetLastBasicBlock(k));
    LLVMValueRef tbl = LLVMConstPointerNull(c->t_ptr);
    if (epi && G->n_slots) {   /* the epilogue's pointer table */
      tbl = LLVMBuildArrayAlloca(c->b, c->t_ptr, ci64(c, G->n_slots), "tbl");
      for (int i = 0; i < G->n_slots; i++) {
        LLVMValueRef ix = ci64(c, i);
        LLVMValueRef pv = G->slot_blob[i] >= 0 ? c->blob_globals[G->slot_blob[i]] : load_buf(c, bufs, G->slots[i]);
        LLVMBuildStore(c->b, pv, LLVMBuildInBoundsGEP2(c->b, c->t_ptr, tbl, &ix, 1, ""));
      }
    }
    LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
    LLVMValueRef ga[11] = {load_buf(c, bufs, G->src), c->blob_globals[G->wblob], load_buf(c, bufs, G->out),
                           b0, b1, tbl, epi ? epi : nul, G->ln ? c->blob_globals[G->gblob] : nul,
                           G->ln && G->bblob >= 0 ? c->blob_globals[G->bblob] : nul,
                           G->gidx >= 0 ? load_buf(c, bufs, G->gidx) : nul, NULL};
    if (G->dref >= 0) ga[10] = emit_rows(c, bufs, G, G->N);
    LLVMBuildCall2(c->b, G->dref >= 0 ? c->ft_core_dyn : c->ft_core, core, ga, G->dref >= 0 ? 11 : 10, "");
  } else {
    for (int i = 0; i < G->n_slots; i++) args[i] = load_buf(c, bufs, G->slots[i]);
    args[G->n_slots] = b0;
    args[G->n_slots + 1] = b1;
    LLVMBuildCall2(c->b, bt, body, args, (unsigned)G->n_slots + 2, "");
  }
  LLVMBuildRetVoid(c->b);
  free(args);
  return k;
}

/* void k(ptr bufs, i64 r0, i64 r1) for a ROW group. */
static LLVMValueRef emit_row_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  char name[64];
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0), r0 = LLVMGetParam(k, 1), r1 = LLVMGetParam(k, 2);
  LLVMValueRef x = load_buf(c, bufs, G->src), y = load_buf(c, bufs, G->out);
  int has_b = G->bblob >= 0;
  LLVMValueRef core = NULL;
  for (int i = 0; i < c->n_row_cores && !core; i++)
    if (c->row_cores[i].op == G->row_op && c->row_cores[i].cols == G->cols && c->row_cores[i].has_b == has_b)
      core = c->row_cores[i].fn;
  if (!core) {   /* the bitcode row kernel with constant cols, shared by nodes of one shape */
    void *nc = realloc(c->row_cores, ((size_t)c->n_row_cores + 1) * sizeof *c->row_cores);
    if (!nc) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
    c->row_cores = nc;
    static const char *const row_names[] = {"softmax", "layernorm", "mean", "sum", "max", "min"};
    snprintf(name, sizeof name, "vt_row_%s_%lld%s", row_names[G->row_op], (long long)G->cols, has_b ? "_b" : "");
    core = LLVMAddFunction(c->mod, name, c->ft_row_core);
    LLVMSetLinkage(core, LLVMInternalLinkage);
    add_fn_attr(c, core, "noinline");
    add_fn_attr(c, core, "nounwind");
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, core, "entry"));
    LLVMValueRef P[7];
    for (int i = 0; i < 7; i++) P[i] = LLVMGetParam(core, (unsigned)i);
    if (G->row_op == ROW_SOFTMAX) {
      LLVMValueRef a[5] = {P[0], P[3], ci64(c, G->cols), P[5], P[6]};
      LLVMBuildCall2(c->b, c->ft_softmax, c->f_softmax, a, 5, "");
    } else if (G->row_op >= ROW_MEAN) {
      LLVMValueRef a[6] = {P[0], P[3], ci64(c, G->cols), LLVMConstInt(c->t_i32, (unsigned long long)(G->row_op - ROW_MEAN), 0),
                           P[5], P[6]};
      LLVMBuildCall2(c->b, c->ft_reduce, c->f_reduce, a, 6, "");
    } else {
      LLVMValueRef a[9] = {P[0], P[1], P[2], LLVMConstInt(c->t_i32, (unsigned long long)has_b, 0), P[3],
                           ci64(c, G->cols), P[4], P[5], P[6]};
      LLVMBuildCall2(c->b, c->ft_ln, c->f_ln, a, 9, "");
    }
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, saved);
    c->row_cores[c->n_row_cores].op = G->row_op;
    c->row_cores[c->n_row_cores].cols = G->cols;
    c->row_cores[c->n_row_cores].has_b = has_b;
    c->row_cores[c->n_row_cores++].fn = core;
  }
  LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef a[7] = {x, G->gblob >= 0 ? c->blob_globals[G->gblob] : nul, has_b ? c->blob_globals[G->bblob] : nul,
                       y, cf(c, G->eps), r0, r1};
  LLVMBuildCall2(c->b, c->ft_row_core, core, a, 7, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* void k(ptr bufs, i64 r0, i64 r1) for a PERM group. */
static LLVMValueRef emit_perm_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef a[8] = {load_buf(c, bufs, G->src), load_buf(c, bufs, G->out), ci64(c, G->esize),
                       LLVMConstInt(c->t_i32, (unsigned long long)G->rank, 0), c->blob_globals[G->gblob],
                       c->blob_globals[G->bblob], LLVMGetParam(k, 1), LLVMGetParam(k, 2)};
  LLVMBuildCall2(c->b, c->ft_perm, c->f_perm, a, 8, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* void k(ptr bufs, i64 u0, i64 u1) for a CONV group (the bitcode kernel inlined with constants). */
static LLVMValueRef emit_conv_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef a[22] = {load_buf(c, bufs, G->src), c->blob_globals[G->wblob],
                        G->gblob >= 0 ? c->blob_globals[G->gblob] : LLVMConstPointerNull(c->t_ptr),
                        load_buf(c, bufs, G->out), ci64(c, G->M)};
  for (int i = 0; i < 13; i++) a[5 + i] = ci64(c, G->conv[i]);
  a[18] = ci64(c, G->N);
  a[19] = ci64(c, G->conv[13]);
  a[20] = LLVMGetParam(k, 1);
  a[21] = LLVMGetParam(k, 2);
  LLVMBuildCall2(c->b, c->ft_conv, c->f_conv, a, 22, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* Pointer to input k of an ATTN group: its constant global, its buffer, or null when absent. */
static LLVMValueRef attn_in(cg *c, const cg_group *G, LLVMValueRef bufs, int k) {
  if (G->att_v[k] < 0) return LLVMConstPointerNull(c->t_ptr);
  if (G->att_blob[k] >= 0) return c->blob_globals[G->att_blob[k]];
  LLVMValueRef p = load_buf(c, bufs, G->att_v[k]);
  if (k < 3 && G->att_off[k]) {
    LLVMValueRef o = ci64(c, G->att_off[k]);
    p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, p, &o, 1, "");
  }
  return p;
}

/* void k(ptr bufs, i64 u0, i64 u1) for an ATTN group; its core (the bitcode kernel inlined with
 * every size constant) is shared by the nodes of one shape. */
static LLVMValueRef emit_attn_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  const int64_t *mstr = c->blobs[G->gblob].data;
  struct attn_key key;
  memset(&key, 0, sizeof key);
  int64_t d[9 + ATT_NSTR] = {G->aH, G->aHkv, G->aNq, G->aNk, G->aDh, G->aDv, G->kb_b, G->kb_h, G->aKw};
  memcpy(d + 9, mstr, ATT_NSTR * sizeof *mstr);
  memcpy(key.d, d, sizeof d);
  key.scale = G->scale;
  key.flags = G->causal | (G->att_v[3] >= 0) << 1 | (G->att_v[4] >= 0) << 2 | (G->att_v[5] >= 0) << 3 |
              (G->att_v[6] >= 0) << 4;
  LLVMValueRef core = NULL;
  for (int i = 0; i < c->n_attn_cores && !core; i++)
    if (!memcmp(&c->attn_keys[i], &key, sizeof key)) core = c->attn_cores[i];
  char name[96];
  if (!core) {
    struct attn_key *nk = realloc(c->attn_keys, ((size_t)c->n_attn_cores + 1) * sizeof *nk);
    if (nk) c->attn_keys = nk;
    LLVMValueRef *ncf = nk ? realloc(c->attn_cores, ((size_t)c->n_attn_cores + 1) * sizeof *ncf) : NULL;
    if (!ncf) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
    c->attn_cores = ncf;
    snprintf(name, sizeof name, "vt_attn_%lldx%lldx%lldx%lld_%d", (long long)G->aH, (long long)G->aNq,
             (long long)G->aNk, (long long)G->aDh, c->n_attn_cores);
    core = LLVMAddFunction(c->mod, name, c->ft_attn_core);
    LLVMSetLinkage(core, LLVMInternalLinkage);
    add_fn_attr(c, core, "noinline");
    add_fn_attr(c, core, "nounwind");
    add_noalias_params(c, core, 3, 1);
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, core, "entry"));
    LLVMValueRef P[11];
    for (int i = 0; i < 11; i++) P[i] = LLVMGetParam(core, (unsigned)i);
    LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
    LLVMValueRef a[23] = {P[0], P[1], P[2], P[3],
                          G->att_v[3] >= 0 ? P[4] : nul, G->att_v[4] >= 0 ? P[5] : nul,
                          c->blob_globals[G->gblob], G->att_v[5] >= 0 ? P[6] : nul,
                          ci64(c, G->kb_b), ci64(c, G->kb_h), G->att_v[6] >= 0 ? P[7] : nul,
                          G->att_v[7] >= 0 ? P[8] : nul, ci64(c, G->aKw), ci64(c, G->aH), ci64(c, G->aHkv),
                          ci64(c, G->aNq), ci64(c, G->aNk), ci64(c, G->aDh), ci64(c, G->aDv), cf(c, G->scale),
                          LLVMConstInt(c->t_i32, (unsigned long long)G->causal, 0), P[9], P[10]};
    LLVMBuildCall2(c->b, c->ft_attn, c->f_attn, a, 23, "");
    LLVMBuildRetVoid(c->b);
    if (saved) LLVMPositionBuilderAtEnd(c->b, saved);
    c->attn_keys[c->n_attn_cores] = key;
    c->attn_cores[c->n_attn_cores++] = core;
  }
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef a[11] = {attn_in(c, G, bufs, 0), attn_in(c, G, bufs, 1), attn_in(c, G, bufs, 2),
                        load_buf(c, bufs, G->out), attn_in(c, G, bufs, 3), attn_in(c, G, bufs, 4),
                        attn_in(c, G, bufs, 5), attn_in(c, G, bufs, 6), attn_in(c, G, bufs, 7),
                        LLVMGetParam(k, 1), LLVMGetParam(k, 2)};
  LLVMBuildCall2(c->b, c->ft_attn_core, core, a, 11, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* i32 vt_entry(ptr bufs, ptr rt): every group in order; a nonzero status from a host callback
 * returns at once. */
/* The profile label of group gi: kind, first node (name, op) and its size. */
static LLVMValueRef prof_label(cg *c, int gi) {
  static const char *const kinds[] = {"gemm", "elementwise", "copy", "host", "row", "transpose", "attention",
                                      "blocks", "conv", "absorbed"};
  const cg_group *G = &c->groups[gi];
  const vt_node *n = &c->g->nodes[G->seed];
  char buf[320];
  int k = snprintf(buf, sizeof buf, "%-11s %s (%s", kinds[G->kind], n->name ? n->name : "?", vt_ops[n->op].name);
  if (G->kind == G_GEMM) k += snprintf(buf + k, sizeof buf - (size_t)k, " %lldx%lldx%lld", (long long)G->M, (long long)G->N, (long long)G->K);
  if (G->n_nodes > 1 && k < (int)sizeof buf) k += snprintf(buf + k, sizeof buf - (size_t)k, ", %d nodes", G->n_nodes);
  if (k < (int)sizeof buf) snprintf(buf + k, sizeof buf - (size_t)k, ")");
  return LLVMBuildGlobalStringPtr(c->b, buf, "prof");
}

static void emit_prof(cg *c, LLVMValueRef rt, int gi) {
  if (!c->prof) return;
  LLVMValueRef a[3] = {rt, LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)gi, 1),
                       gi >= 0 ? prof_label(c, gi) : LLVMConstNull(c->t_ptr)};
  LLVMBuildCall2(c->b, c->ft_prof, c->f_prof, a, 3, "");
}

/* The loops of TokenGate node ni specialised to its token count n and width d (constants), as
 * the table its host kernel receives in vt_kctx.fns: {norm(x, u, norm, u2, i0, i1),
 * select(norm, order, m)}. NULL (the kernel's own C loops) when its input's dims are not static. */
static LLVMValueRef emit_gate_fns(cg *c, int32_t ni) {
  const vt_node *n = &c->g->nodes[ni];
  int64_t ntok = n->n_in > 0 ? val_tokens(c, n->in[0]) : -1;
  if (ntok < 1) return NULL;
  const vt_value *xv = &c->orig->values[n->in[0]];
  int64_t d = xv->dims[xv->rank - 1];
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
  char name[64];
  LLVMValueRef fn[2];
  LLVMTypeRef t_norm = LLVMFunctionType(c->t_void, (LLVMTypeRef[]){c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64}, 6, 0);
  LLVMTypeRef t_sel = LLVMFunctionType(c->t_void, (LLVMTypeRef[]){c->t_ptr, c->t_ptr, c->t_i64}, 3, 0);
  for (int k = 0; k < 2; k++) {
    snprintf(name, sizeof name, k ? "vt_gate_select_%d" : "vt_gate_norm_%d", (int)ni);
    fn[k] = LLVMAddFunction(c->mod, name, k ? t_sel : t_norm);
    LLVMSetLinkage(fn[k], LLVMInternalLinkage);
    add_fn_attr(c, fn[k], "nounwind");
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn[k], "entry"));
    if (k == 0) {
      LLVMValueRef a[7] = {LLVMGetParam(fn[0], 0), LLVMGetParam(fn[0], 1), LLVMGetParam(fn[0], 2), LLVMGetParam(fn[0], 3),
                           ci64(c, d), LLVMGetParam(fn[0], 4), LLVMGetParam(fn[0], 5)};
      LLVMBuildCall2(c->b, LLVMGlobalGetValueType(c->f_gate_norm), c->f_gate_norm, a, 7, "");
    } else {
      LLVMValueRef a[4] = {LLVMGetParam(fn[1], 0), LLVMGetParam(fn[1], 1), ci64(c, ntok), LLVMGetParam(fn[1], 2)};
      LLVMBuildCall2(c->b, LLVMGlobalGetValueType(c->f_gate_sel), c->f_gate_sel, a, 4, "");
    }
    LLVMBuildRetVoid(c->b);
  }
  LLVMPositionBuilderAtEnd(c->b, saved);
  LLVMValueRef init = LLVMConstArray2(c->t_ptr, fn, 2);
  snprintf(name, sizeof name, "vt_gate_fns_%d", (int)ni);
  LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  c->n_gate_fns++;
  return gv;
}

static int emit_entry(cg *c, int nthreads) {
  LLVMTypeRef pt[2] = {c->t_ptr, c->t_ptr};
  LLVMValueRef f = LLVMAddFunction(c->mod, "vt_entry", LLVMFunctionType(c->t_i32, pt, 2, 0));
  add_fn_attr(c, f, "nounwind");
  LLVMValueRef *kern = calloc((size_t)c->n_groups + 1, sizeof *kern);
  if (!kern) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    if (G->kind == G_CONV && G->total > 0) {
      kern[gi] = emit_conv_kernel(c, gi);
    } else if (G->kind == G_ATTN && G->total > 0) {
      kern[gi] = emit_attn_kernel(c, gi);
      if (!kern[gi]) { free(kern); return VT_ERR_MODEL; }
    } else if (G->kind == G_PERM && G->total > 0) {
      kern[gi] = emit_perm_kernel(c, gi);
    } else if (G->kind == G_ROW && G->total > 0) {
      kern[gi] = emit_row_kernel(c, gi);
      if (!kern[gi]) { free(kern); return VT_ERR_MODEL; }
    } else if ((G->kind == G_GEMM || G->kind == G_EW) && G->total > 0) {
      kern[gi] = emit_kernel(c, gi);
      if (!kern[gi]) { free(kern); return VT_ERR_MODEL; }
    }
  }
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMValueRef bufs = LLVMGetParam(f, 0), rt = LLVMGetParam(f, 1);
  LLVMBasicBlockRef fail = NULL;   /* made at the first fallback: returns its status */
  LLVMValueRef fail_phi = NULL;
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    if (G->kind == G_ABSORBED) continue;
    emit_prof(c, rt, gi);
    switch (G->kind) {
    case G_GEMM:
    case G_EW:
    case G_ROW:
    case G_ATTN:
    case G_CONV:
    case G_PERM: {
      if (!kern[gi]) break;
      int64_t units = G->kind == G_GEMM ? vt_cg_gemm_units(G->M, G->N) : G->rows;
      double work = G->kind == G_GEMM || G->kind == G_CONV ? 2.0 * (double)G->M * (double)G->N * (double)G->K
                    : G->kind == G_ATTN ? (double)G->total / (double)(G->aDv ? G->aDv : 1) * (double)G->aNk *
                                          (double)(G->aDh + G->aDv) * 2.0
                    : G->kind == G_ROW ? (double)G->total * 16.0
                    : G->kind == G_PERM ? (double)G->total * 2.0
                                      : (double)G->total * (double)(G->n_steps + 1);
      LLVMValueRef nunits = ci64(c, units);
      if (G->dref >= 0 && G->kind == G_GEMM)   /* run-time rows (static fields: the bound); as vt_cg_gemm_units */
        nunits = LLVMBuildMul(c->b,
                              LLVMBuildSDiv(c->b, LLVMBuildAdd(c->b, emit_rows(c, bufs, G, G->N), ci64(c, VT_CG_MC - 1), ""),
                                            ci64(c, VT_CG_MC), ""),
                              ci64(c, (G->N + VT_CG_NR - 1) / VT_CG_NR), "");
      else if (G->dref >= 0)
        nunits = emit_rows(c, bufs, G, G->cols);
      if (nthreads > 1 && units > 1 && work >= 2097152.0) {   /* below ~25 us a pool wake-up costs more */
        LLVMValueRef a[4] = {rt, kern[gi], bufs, nunits};
        LLVMBuildCall2(c->b, c->ft_par, c->f_par, a, 4, "");
      } else {
        LLVMValueRef a[3] = {bufs, ci64(c, 0), nunits};
        LLVMBuildCall2(c->b, c->ft_kern, kern[gi], a, 3, "");
      }
      break;
    }
    case G_BLOCKS:
      for (int i = 0; i < G->n_copies; i++) {
        const cg_copy *cp = &G->copies[i];
        if (cp->rows <= 0 || cp->bytes <= 0) continue;
        LLVMValueRef src = cp->sblob >= 0 ? c->blob_globals[cp->sblob] : load_buf(c, bufs, cp->src);
        LLVMValueRef dst = load_buf(c, bufs, cp->dst);
        LLVMValueRef so = ci64(c, cp->soff), dof = ci64(c, cp->doff);
        LLVMTypeRef i8 = LLVMInt8TypeInContext(c->ctx);
        src = LLVMBuildInBoundsGEP2(c->b, i8, src, &so, 1, "");
        dst = LLVMBuildInBoundsGEP2(c->b, i8, dst, &dof, 1, "");
        LLVMValueRef a[6] = {dst, src, ci64(c, cp->rows), ci64(c, cp->bytes), ci64(c, cp->dstride), ci64(c, cp->sstride)};
        LLVMBuildCall2(c->b, c->ft_copy_rows, c->f_copy_rows, a, 6, "");
      }
      break;
    case G_COPY:
      if (G->total > 0 && !G->alias) {
        LLVMValueRef bytes = ci64(c, G->total);
        if (G->dref >= 0)
          bytes = LLVMBuildMul(c->b, emit_numel(c, bufs, G->dref),
                               ci64(c, (int64_t)vt_dtype_size(c->g->values[G->dref].dtype)), "");
        LLVMBuildMemCpy(c->b, load_buf(c, bufs, G->out), 1, load_buf(c, bufs, G->src), 1, bytes);
      }
      break;
    case G_FALLBACK: {
      LLVMValueRef fns = c->g->nodes[G->seed].op == VT_OP_TokenGate ? emit_gate_fns(c, G->seed) : NULL;
      LLVMValueRef a[3] = {rt, LLVMConstInt(c->t_i32, (unsigned long long)G->seed, 0),
                           fns ? fns : LLVMConstPointerNull(c->t_ptr)};
      LLVMValueRef rc = LLVMBuildCall2(c->b, c->ft_node, c->f_node, a, 3, "");
      LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
      if (!fail) {
        fail = LLVMAppendBasicBlockInContext(c->ctx, f, "fail");
        LLVMPositionBuilderAtEnd(c->b, fail);
        fail_phi = LLVMBuildPhi(c->b, c->t_i32, "rc");
        LLVMBuildRet(c->b, fail_phi);
        LLVMPositionBuilderAtEnd(c->b, here);
      }
      LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, f, "ok");
      LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, rc, LLVMConstInt(c->t_i32, 0, 0), ""), fail, next);
      LLVMAddIncoming(fail_phi, &rc, &here, 1);
      LLVMPositionBuilderAtEnd(c->b, next);
      break;
    }
    }
  }
  emit_prof(c, rt, -1);
  LLVMBuildRet(c->b, LLVMConstInt(c->t_i32, 0, 0));
  free(kern);
  return VT_OK;
}

/* ---------- module construction, optimisation, JIT ------------------------------------------ */
static char *llvm_err(LLVMErrorRef err) {
  char *m = LLVMGetErrorMessage(err);
  char *r = strdup(m ? m : "?");
  LLVMDisposeErrorMessage(m);
  return r;
}

static void retarget_functions(LLVMModuleRef m, LLVMContextRef ctx, const char *cpu, const char *feat) {
  static const char *const keys[] = {"target-cpu", "target-features", "tune-cpu"};
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    for (int i = 0; i < 3; i++)
      LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, keys[i], (unsigned)strlen(keys[i]));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "target-cpu", 10, cpu, (unsigned)strlen(cpu)));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "target-features", 15, feat, (unsigned)strlen(feat)));
  }
}

static LLVMTargetMachineRef host_tm(int opt_level, LLVMRelocMode reloc, vt_error *e) {
  char *triple = LLVMGetDefaultTargetTriple();
  char *cpu = LLVMGetHostCPUName();
  char *feat = LLVMGetHostCPUFeatures();
  LLVMTargetRef t;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
    vt_errorf(e, VT_ERR_INTERNAL, "LLVM has no target for %s: %s", triple, msg ? msg : "?");
    LLVMDisposeMessage(msg);
  } else {
    LLVMCodeGenOptLevel lv = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
                           : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
    tm = LLVMCreateTargetMachine(t, triple, cpu, feat, lv, reloc,
                                 reloc == LLVMRelocPIC ? LLVMCodeModelDefault : LLVMCodeModelJITDefault);
    if (!tm) vt_errorf(e, VT_ERR_INTERNAL, "cannot create an LLVM target machine for %s (%s)", triple, cpu);
  }
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  return tm;
}

static void print_stats(const cg *c, const vt_jit *j, FILE *f) {
  const vt_graph *g = c->g;
  int n_alloc = 0;   /* host nodes with an absent output: vt_run_node (allocate, copy in) */
  for (int gi = 0; gi < c->n_groups; gi++)
    if (c->groups[gi].kind == G_FALLBACK) {
      const vt_node *n = &g->nodes[c->groups[gi].seed];
      bool direct = true;
      for (int32_t o = 0; o < n->n_out; o++) direct &= n->out[o] >= 0;
      n_alloc += !direct;
    }
  fprintf(f, "codegen: %d kernels: %d gemm, %d elementwise, %d row, %d attention, %d copy (%d views: no data "
             "moved), %d host (interpreter kernels: %d called in place on the arena, %d through vt_run_node); %d of %d "
             "nodes in generated kernels; %d layout nodes absorbed into attention kernels (strided reads / writes); "
             "compile %.1f ms\n",
          c->n_groups - j->st.n_absorbed, j->st.n_gemm, j->st.n_elementwise, j->st.n_row, j->st.n_attention,
          j->st.n_copy, j->st.n_view, j->st.n_fallback, j->st.n_fallback - n_alloc, n_alloc, j->st.n_fused_nodes,
          g->n_nodes, j->st.n_absorbed, j->st.compile_ms);
  int n_gather = 0, n_scatter = 0, n_gates = 0, n_buffers = 0;
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    n_gather += G->kind == G_GEMM && G->gate >= 0;
    n_scatter += G->kind == G_GEMM && G->sc_node >= 0;
    n_gates += G->kind == G_FALLBACK && g->nodes[G->seed].op == VT_OP_TokenGate;
    n_buffers += G->kind == G_FALLBACK && g->nodes[G->seed].op == VT_OP_TokenBuffer;
  }
  if (n_gates || n_buffers || n_scatter)
    fprintf(f, "codegen: eventful fusion: %d of %d TokenGates gathered by their GEMM's prologue (xg not written), %d of %d "
               "TokenBuffers absorbed into their GEMM's scatter epilogue (no host node, no copy)\n",
            n_gather, n_gates, n_scatter, n_scatter + n_buffers);
  if (n_gates)
    fprintf(f, "codegen: %d of %d TokenGates run generated loops for their error norms and top-r selection "
               "(specialised to their token count and width; the gate's control logic stays in its host kernel)\n",
            c->n_gate_fns, n_gates);
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    const vt_node *n = &g->nodes[G->seed];
    switch (G->kind) {
    case G_GEMM:
      fprintf(f, "  [%d] gemm %lldx%lldx%lld%s '%s'", gi, (long long)G->M, (long long)G->N, (long long)G->K,
              G->ln ? " (LayerNorm prologue)" : "", n->name);
      if (G->gate >= 0) fprintf(f, " gather prologue (A = rows idx of TokenGate '%s''s input)", g->nodes[G->gate].name);
      if (G->sc_node >= 0)
        fprintf(f, " scatter epilogue (absorbs TokenBuffer '%s': rows idx of persistent '%s')", g->nodes[G->sc_node].name,
                g->values[G->sc_out].name);
      break;
    case G_EW:
      fprintf(f, "  [%d] elementwise %lld elems '%s'", gi, (long long)G->total, n->name);
      break;
    case G_COPY:
      fprintf(f, "  [%d] %s %s '%s'\n", gi, G->alias ? "view (no copy)" : "copy", vt_ops[n->op].name, n->name);
      continue;
    case G_PERM:
      fprintf(f, "  [%d] %s %lldx%lld '%s'\n", gi, n->op == VT_OP_Expand ? "expand" : "transpose", (long long)G->rows,
              (long long)G->cols, n->name);
      continue;
    case G_CONV:
      fprintf(f, "  [%d] conv (im2col + gemm %lldx%lldx%lld, %lld rows per unit) '%s'\n", gi, (long long)G->M,
              (long long)G->N, (long long)G->K, (long long)G->conv[13], n->name);
      continue;
    case G_BLOCKS:
      fprintf(f, "  [%d] copy %s (%d block copies, %lld bytes) '%s'\n", gi, vt_ops[n->op].name, G->n_copies,
              (long long)G->total, n->name);
      continue;
    case G_ATTN:
      fprintf(f, "  [%d] attention H=%lld Hkv=%lld Nq=%lld Nk=%lld Dh=%lld Dv=%lld%s%s%s%s '%s'\n", gi, (long long)G->aH,
              (long long)G->aHkv, (long long)G->aNq, (long long)G->aNk, (long long)G->aDh, (long long)G->aDv,
              G->att_v[3] >= 0 || G->att_v[4] >= 0 ? " mask" : "", G->att_v[5] >= 0 ? " key_bias" : "",
              G->att_v[6] >= 0 ? " rel-pos bias (decomposed)" : "", G->causal ? " causal" : "", n->name);
      continue;
    case G_ROW:
      fprintf(f, "  [%d] row %s %lldx%lld '%s'\n", gi, vt_ops[n->op].name, (long long)G->rows, (long long)G->cols,
              n->name);
      continue;
    case G_ABSORBED:
      fprintf(f, "  [%d] absorbed %s '%s': attention [%d] reads / writes its layout in place\n", gi, vt_ops[n->op].name,
              n->name, G->into);
      continue;
    default: {
      bool direct = true;
      for (int32_t o = 0; o < n->n_out; o++) direct &= n->out[o] >= 0;
      fprintf(f, "  [%d] %s %s '%s': %s%s%s\n", gi, direct ? "host kernel" : "host kernel via vt_run_node (absent output)",
              vt_ops[n->op].name, n->name, G->why, G->note[0] ? "; " : "", G->note);
      continue;
    }
    }
    fprintf(f, " ops:");
    for (int s = 0; s < G->n_steps; s++) fprintf(f, " %s", ew_names[G->steps[s].op]);
    fprintf(f, "\n");
  }
}

static void count_groups(const cg *c, vt_jit_stats *st) {
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    if (G->kind == G_GEMM || G->kind == G_CONV) st->n_gemm++;
    else if (G->kind == G_EW) st->n_elementwise++;
    else if (G->kind == G_COPY || G->kind == G_PERM || G->kind == G_BLOCKS) st->n_copy++;
    else if (G->kind == G_ROW) st->n_row++;
    else if (G->kind == G_ATTN) st->n_attention++;
    else if (G->kind == G_ABSORBED) st->n_absorbed++;
    else st->n_fallback++;
    if (G->kind != G_FALLBACK) st->n_fused_nodes += G->n_nodes;
    if (G->kind == G_COPY && G->alias) st->n_view++;
  }
}

static void cg_free(cg *c) {
  if (c->b) LLVMDisposeBuilder(c->b);
  free(c->view_values);
  free(c->sym_def);
  free(c->uoff);
  free(c->ulist);
  free(c->is_out);
  free(c->node_group);
  free(c->val_step);
  free(c->alias_of);
  free(c->nobuf);
  free(c->persist);
  for (int i = 0; i < c->n_groups; i++) {
    free(c->groups[i].nodes);
    free(c->groups[i].steps);
    free(c->groups[i].slots);
    free(c->groups[i].slot_blob);
    free(c->groups[i].copies);
  }
  free(c->groups);
  for (int i = 0; i < c->n_blobs; i++) free(c->blobs[i].owned);
  free(c->blobs);
  free(c->blob_globals);
  free(c->cores);
  free(c->row_cores);
  free(c->attn_keys);
  free(c->attn_cores);
  for (int i = 0; i < c->n_epis; i++) free(c->epis[i].key);
  free(c->epis);
}

static int build_users(cg *c) {
  const vt_graph *g = c->g;
  c->uoff = calloc((size_t)g->n_values + 2, sizeof *c->uoff);
  c->is_out = calloc((size_t)g->n_values + 1, sizeof *c->is_out);
  c->node_group = malloc(((size_t)g->n_nodes + 1) * sizeof *c->node_group);
  c->val_step = malloc(((size_t)g->n_values + 1) * sizeof *c->val_step);
  c->alias_of = malloc(((size_t)g->n_values + 1) * sizeof *c->alias_of);
  c->nobuf = calloc((size_t)g->n_values + 1, sizeof *c->nobuf);
  c->persist = calloc((size_t)g->n_values + 1, sizeof *c->persist);
  size_t nu = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) nu += (size_t)g->nodes[i].n_in;
  c->ulist = malloc((nu + 1) * sizeof *c->ulist);
  if (!c->uoff || !c->is_out || !c->node_group || !c->val_step || !c->alias_of || !c->ulist || !c->nobuf ||
      !c->persist)
    return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int32_t i = 0; i < g->n_nodes; i++) {
    c->node_group[i] = -1;
    const vt_node *n = &g->nodes[i];
    for (int32_t k = 0; k < n->n_in; k++) {
      bool dup = false;   /* a node reading a value twice is one user */
      for (int32_t q = 0; q < k; q++) dup |= n->in[q] == n->in[k];
      if (n->in[k] >= 0 && !dup) c->uoff[n->in[k] + 1]++;
    }
  }
  for (int32_t v = 0; v < g->n_values; v++) {
    c->uoff[v + 1] += c->uoff[v];
    c->val_step[v] = -1;
    c->alias_of[v] = -1;
  }
  int32_t *fill = calloc((size_t)g->n_values + 1, sizeof *fill);
  if (!fill) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    for (int32_t k = 0; k < n->n_in; k++) {
      bool dup = false;
      for (int32_t q = 0; q < k; q++) dup |= n->in[q] == n->in[k];
      if (n->in[k] >= 0 && !dup) c->ulist[c->uoff[n->in[k]] + fill[n->in[k]]++] = i;
    }
  }
  free(fill);
  for (int32_t i = 0; i < g->n_outputs; i++) c->is_out[g->outputs[i]] = true;
  return VT_OK;
}

static int build_module(cg *c, int nthreads) {
  c->b = LLVMCreateBuilderInContext(c->ctx);
  c->t_i64 = LLVMInt64TypeInContext(c->ctx);
  c->t_i32 = LLVMInt32TypeInContext(c->ctx);
  c->t_i1 = LLVMInt1TypeInContext(c->ctx);
  c->t_f32 = LLVMFloatTypeInContext(c->ctx);
  c->t_ptr = LLVMPointerTypeInContext(c->ctx, 0);
  c->t_void = LLVMVoidTypeInContext(c->ctx);
  c->ft_f1 = LLVMFunctionType(c->t_f32, &c->t_f32, 1, 0);
  LLVMTypeRef gp[17] = {c->t_ptr, c->t_i64, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64,
                        c->t_i64, c->t_i64, c->t_ptr, c->t_ptr, c->t_i32, c->t_ptr, c->t_ptr, c->t_f32, c->t_ptr};
  c->ft_gemm = LLVMFunctionType(c->t_void, gp, 17, 0);
  LLVMTypeRef cp[11] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr,
                        c->t_ptr, c->t_i64};
  c->ft_core = LLVMFunctionType(c->t_void, cp, 10, 0);
  c->ft_core_dyn = LLVMFunctionType(c->t_void, cp, 11, 0);   /* + i64 M (run-time row count) */
  LLVMTypeRef sp[5] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64};
  c->ft_softmax = LLVMFunctionType(c->t_void, sp, 5, 0);
  LLVMTypeRef lp[9] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i32, c->t_ptr, c->t_i64, c->t_f32, c->t_i64, c->t_i64};
  c->ft_ln = LLVMFunctionType(c->t_void, lp, 9, 0);
  LLVMTypeRef rdp[6] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i32, c->t_i64, c->t_i64};
  c->ft_reduce = LLVMFunctionType(c->t_void, rdp, 6, 0);
  LLVMTypeRef tp[8] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i32, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64};
  c->ft_perm = LLVMFunctionType(c->t_void, tp, 8, 0);
  LLVMTypeRef rp[7] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_f32, c->t_i64, c->t_i64};
  c->ft_row_core = LLVMFunctionType(c->t_void, rp, 7, 0);
  LLVMTypeRef ap[23] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr,
                        c->t_i64, c->t_i64, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64,
                        c->t_i64, c->t_i64, c->t_i64, c->t_f32, c->t_i32, c->t_i64, c->t_i64};
  c->ft_attn = LLVMFunctionType(c->t_void, ap, 23, 0);
  LLVMTypeRef acp[11] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr,
                         c->t_i64, c->t_i64};
  c->ft_attn_core = LLVMFunctionType(c->t_void, acp, 11, 0);
  LLVMTypeRef crp[6] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64};
  c->ft_copy_rows = LLVMFunctionType(c->t_void, crp, 6, 0);
  LLVMTypeRef cvp[22];
  for (int i = 0; i < 22; i++) cvp[i] = i < 4 ? c->t_ptr : c->t_i64;
  c->ft_conv = LLVMFunctionType(c->t_void, cvp, 22, 0);
  LLVMTypeRef kp[3] = {c->t_ptr, c->t_i64, c->t_i64};
  c->ft_kern = LLVMFunctionType(c->t_void, kp, 3, 0);
  LLVMTypeRef ep[7] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64, c->t_i64};
  c->ft_epi = LLVMFunctionType(c->t_void, ep, 7, 0);
  LLVMTypeRef pp[4] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64};
  c->ft_par = LLVMFunctionType(c->t_void, pp, 4, 0);
  LLVMTypeRef np[3] = {c->t_ptr, c->t_i32, c->t_ptr};
  c->ft_node = LLVMFunctionType(c->t_i32, np, 3, 0);
  struct { LLVMValueRef *f; const char *name; } lib[] = {
    {&c->f_gemm, "vt_cgk_gemm"}, {&c->f_exp, "vt_cgm_exp"}, {&c->f_erf, "vt_cgm_erf"}, {&c->f_log, "vt_cgm_log"},
    {&c->f_tanh, "vt_cgm_tanh"}, {&c->f_sigmoid, "vt_cgm_sigmoid"}, {&c->f_softmax, "vt_cgk_softmax_rows"},
    {&c->f_ln, "vt_cgk_layernorm_rows"}, {&c->f_reduce, "vt_cgk_reduce_rows"}, {&c->f_perm, "vt_cgk_transpose"}, {&c->f_attn, "vt_cgk_attention"},
    {&c->f_copy_rows, "vt_cgk_copy_rows"}, {&c->f_conv, "vt_cgk_conv2d"}, {&c->f_gate_norm, "vt_cgk_gate_norm"},
    {&c->f_gate_sel, "vt_cgk_gate_select"}};
  for (size_t i = 0; i < sizeof lib / sizeof lib[0]; i++) {
    *lib[i].f = LLVMGetNamedFunction(c->mod, lib[i].name);
    if (!*lib[i].f) return vt_errorf(c->e, VT_ERR_INTERNAL, "kernel library lacks %s", lib[i].name);
  }
  c->f_par = LLVMAddFunction(c->mod, "vt_jit_host_par", c->ft_par);
  c->f_node = LLVMAddFunction(c->mod, "vt_jit_host_node", c->ft_node);
  LLVMTypeRef prp[3] = {c->t_ptr, c->t_i32, c->t_ptr};
  c->ft_prof = LLVMFunctionType(c->t_void, prp, 3, 0);
  const char *pe = getenv("VTOPT_PROFILE");
  c->prof = pe && *pe && strcmp(pe, "0") != 0;
  if (c->prof) c->f_prof = LLVMAddFunction(c->mod, "vt_jit_host_prof", c->ft_prof);
  unsigned id_sqrt = LLVMLookupIntrinsicID("llvm.sqrt", 9), id_fabs = LLVMLookupIntrinsicID("llvm.fabs", 9);
  c->f_sqrt = LLVMGetIntrinsicDeclaration(c->mod, id_sqrt, &c->t_f32, 1);
  c->f_fabs = LLVMGetIntrinsicDeclaration(c->mod, id_fabs, &c->t_f32, 1);
  /* constant data: packed weights, broadcast operands */
  c->blob_globals = calloc((size_t)c->n_blobs + 1, sizeof *c->blob_globals);
  if (!c->blob_globals) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int i = 0; i < c->n_blobs; i++) {
    char name[64];
    snprintf(name, sizeof name, "vt_const_%d", i);
    if (blob_extern(&c->blobs[i]) && !c->pic) {   /* JIT: the blob's address, a constant */
      c->blob_globals[i] = LLVMConstIntToPtr(LLVMConstInt(c->t_i64, (unsigned long long)(uintptr_t)c->blobs[i].data, 0),
                                             c->t_ptr);
      continue;
    }
    if (blob_extern(&c->blobs[i])) {   /* fast.so: defined by the weights object (write_blob_object) */
      LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMArrayType2(LLVMInt8TypeInContext(c->ctx), c->blobs[i].nbytes), name);
      LLVMSetGlobalConstant(gv, 1);
      LLVMSetLinkage(gv, LLVMExternalLinkage);
      if (c->pic) LLVMSetVisibility(gv, LLVMHiddenVisibility);
      LLVMSetAlignment(gv, 64);
      c->blob_globals[i] = gv;
      continue;
    }
    LLVMValueRef init = LLVMConstStringInContext2(c->ctx, (const char *)c->blobs[i].data, c->blobs[i].nbytes, 1);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    LLVMSetAlignment(gv, 64);
    c->blob_globals[i] = gv;
  }
  return emit_entry(c, nthreads);
}

/* Builds the module of a planned graph in a new thread-safe context: kernel bitcode linked in,
 * glue and kernels emitted (extra() may add more, e.g. the fast.so ABI), retargeted to the host
 * CPU, verified, optimised, optionally dumped. *tsc and *tm are set even on failure (caller
 * disposes); c->mod is the module (NULL once handed over). */
static int cg_llvm_module(cg *c, const vt_cg_options *opt, int olv, int nthreads, LLVMRelocMode reloc,
                          int (*extra)(cg *c, void *arg), void *extra_arg, double t0,
                          LLVMOrcThreadSafeContextRef *tsc, LLVMTargetMachineRef *tm) {
  vt_error *e = c->e;
  const vt_graph *g = c->g;
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  *tsc = LLVMOrcCreateNewThreadSafeContext();
  c->ctx = LLVMOrcThreadSafeContextGetContext(*tsc);
  c->mod = LLVMModuleCreateWithNameInContext(g->name && *g->name ? g->name : "vt_model", c->ctx);
  *tm = host_tm(olv, reloc, e);
  if (!*tm) return VT_ERR_INTERNAL;
  LLVMTargetMachineRef tmr = *tm;
  {
    char *triple = LLVMGetTargetMachineTriple(tmr);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tmr);
    LLVMSetTarget(c->mod, triple);
    LLVMSetModuleDataLayout(c->mod, td);
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRange((const char *)vt_cg_kernels_bc,
                                                                  vt_cg_kernels_bc_len, "vt_cg_kernels", 0);
    LLVMModuleRef lib = NULL;
    bool bad = LLVMParseBitcodeInContext2(c->ctx, mb, &lib);
    LLVMDisposeMemoryBuffer(mb);
    if (bad) {
      LLVMDisposeMessage(triple);
      LLVMDisposeTargetData(td);
      vt_errorf(e, VT_ERR_INTERNAL, "cannot parse the embedded kernel bitcode");
      return VT_ERR_INTERNAL;
    }
    LLVMSetTarget(lib, triple);
    LLVMSetModuleDataLayout(lib, td);
    LLVMDisposeMessage(triple);
    LLVMDisposeTargetData(td);
    /* the library's definitions become internal once linked: only glue calls them */
    int nlib = 0;
    char **libnames = NULL;
    for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) nlib++;
    libnames = calloc((size_t)nlib + 1, sizeof *libnames);
    if (!libnames) { LLVMDisposeModule(lib); vt_errorf(e, VT_ERR_MODEL, "out of memory"); return VT_ERR_MODEL; }
    nlib = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) {
      size_t len;
      if (!LLVMIsDeclaration(f)) libnames[nlib++] = strdup(LLVMGetValueName2(f, &len));
    }
    if (LLVMLinkModules2(c->mod, lib)) {
      for (int i = 0; i < nlib; i++) free(libnames[i]);
      free(libnames);
      vt_errorf(e, VT_ERR_INTERNAL, "cannot link the kernel bitcode into the model module");
      return VT_ERR_INTERNAL;
    }
    int rc = build_module(c, nthreads);
    if (!rc && extra) rc = extra(c, extra_arg);
    for (int i = 0; i < nlib; i++) {
      LLVMValueRef f = libnames[i] ? LLVMGetNamedFunction(c->mod, libnames[i]) : NULL;
      if (f) LLVMSetLinkage(f, LLVMInternalLinkage);
      free(libnames[i]);
    }
    free(libnames);
    if (rc) return rc;
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    retarget_functions(c->mod, c->ctx, cpu, feat);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
  }
  {
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
      vt_errorf(e, VT_ERR_INTERNAL, "codegen produced an invalid LLVM module: %.800s", msg ? msg : "?");
      LLVMDisposeMessage(msg);
      return VT_ERR_INTERNAL;
    }
    LLVMDisposeMessage(msg);
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", olv);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, olv >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, olv >= 2);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, olv >= 2);
    double tp = now_ms();
    LLVMErrorRef err = LLVMRunPasses(c->mod, pipeline, tmr, po);
    if (getenv("VT_CG_TIMING")) fprintf(stderr, "codegen: lowering %.1f ms, passes %.1f ms\n", tp - t0, now_ms() - tp);
    LLVMDisposePassBuilderOptions(po);
    if (err) {
      char *m = llvm_err(err);
      vt_errorf(e, VT_ERR_INTERNAL, "LLVM passes failed: %s", m);
      free(m);
      return VT_ERR_INTERNAL;
    }
    if (opt->dump_llvm && LLVMPrintModuleToFile(c->mod, opt->dump_llvm, &msg)) {
      vt_errorf(e, VT_ERR_MODEL, "cannot write %s: %s", opt->dump_llvm, msg ? msg : "?");
      LLVMDisposeMessage(msg);
      return VT_ERR_MODEL;
    }
  }
  return VT_OK;
}

vt_jit *vt_jit_compile(const vt_graph *g, const vt_cg_options *opt, vt_error *e) {
  double t0 = now_ms();
  clock_t cpu0 = clock();
  vt_cg_options dflt = {.opt_level = 3};
  if (!opt) opt = &dflt;
  int olv = opt->opt_level < 0 ? 0 : opt->opt_level > 3 ? 3 : opt->opt_level;
  cg c;
  memset(&c, 0, sizeof c);
  c.g = c.orig = g;
  c.e = e;
  vt_jit *j = calloc(1, sizeof *j);
  LLVMOrcThreadSafeContextRef tsc = NULL;
  LLVMTargetMachineRef tm = NULL;
  LLVMOrcLLJITRef J = NULL;
  int64_t *off = NULL;
  if (!j) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); return NULL; }
  if (vt_cg_rt_init(&j->rt, g, opt->threads, e)) { free(j); return NULL; }
  if (make_view(&c) || build_users(&c) || plan(&c)) goto fail;
  count_groups(&c, &j->st);
  /* buffers */
  off = malloc(((size_t)g->n_values + 1) * sizeof *off);
  if (!off) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto fail; }
  int64_t asz = plan_arena(&c, off);
  if (asz < 0 || !(j->arena = aligned_alloc(64, (size_t)(asz ? asz : 64)))) {
    vt_errorf(e, VT_ERR_MODEL, "%s: cannot allocate the activation arena (%lld bytes)", g->path, (long long)asz);
    goto fail;
  }
  if (vt_cg_rt_bind(&j->rt, off, j->arena, e)) goto fail;

  if (cg_llvm_module(&c, opt, olv, vt_pool_threads(j->rt.pool), LLVMRelocDefault, NULL, NULL, t0, &tsc, &tm))
    goto fail;
  {
    LLVMOrcJITTargetMachineBuilderRef jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
    tm = NULL;   /* owned by the builder now */
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&J, jb);
    if (err) { char *m = llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "cannot create the LLJIT: %s", m); free(m); J = NULL; goto fail; }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(J);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(J), NULL, NULL);
    if (err) { char *m = llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT symbol generator: %s", m); free(m); goto fail; }
    LLVMOrcJITDylibAddGenerator(jd, gen);
    LLVMJITSymbolFlags fl = {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    LLVMOrcCSymbolMapPair syms[3] = {
      {LLVMOrcLLJITMangleAndIntern(J, "vt_jit_host_par"), {(LLVMOrcExecutorAddress)(uintptr_t)&vt_jit_host_par, fl}},
      {LLVMOrcLLJITMangleAndIntern(J, "vt_jit_host_node"), {(LLVMOrcExecutorAddress)(uintptr_t)&vt_jit_host_node, fl}},
      {LLVMOrcLLJITMangleAndIntern(J, "vt_jit_host_prof"), {(LLVMOrcExecutorAddress)(uintptr_t)&vt_jit_host_prof, fl}}};
    err = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(syms, 3));
    if (err) { char *m = llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT host symbols: %s", m); free(m); goto fail; }
    int next = 0;
    for (int i = 0; i < c.n_blobs; i++) next += blob_extern(&c.blobs[i]) && c.blobs[i].owned;
    if (next) {   /* packed weights the code addresses directly: the JIT keeps them */
      j->keep = calloc((size_t)next, sizeof *j->keep);
      if (!j->keep) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto fail; }
      for (int i = 0; i < c.n_blobs; i++)
        if (blob_extern(&c.blobs[i]) && c.blobs[i].owned) {
          j->keep[j->n_keep++] = c.blobs[i].owned;
          c.blobs[i].owned = NULL;
        }
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(c.mod, tsc);
    c.mod = NULL;
    err = LLVMOrcLLJITAddLLVMIRModule(J, jd, tsm);
    if (err) { LLVMOrcDisposeThreadSafeModule(tsm); char *m = llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT add module: %s", m); free(m); goto fail; }
    LLVMOrcExecutorAddress addr = 0;
    double tl = now_ms();
    err = LLVMOrcLLJITLookup(J, &addr, "vt_entry");
    if (getenv("VT_CG_TIMING")) fprintf(stderr, "codegen: machine code %.1f ms\n", now_ms() - tl);
    if (err) { char *m = llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT compile: %s", m); free(m); goto fail; }
    j->rt.entry = (vt_cg_entry_fn)(uintptr_t)addr;
    j->lljit = J;
    J = NULL;
  }
  LLVMOrcDisposeThreadSafeContext(tsc);
  tsc = NULL;
  j->st.compile_ms = now_ms() - t0;
  j->st.compile_cpu_ms = (double)(clock() - cpu0) * 1e3 / CLOCKS_PER_SEC;
  if (opt->stats) print_stats(&c, j, opt->stats);
  free(off);
  cg_free(&c);
  return j;
fail:
  if (c.mod) LLVMDisposeModule(c.mod);
  if (J) LLVMOrcDisposeLLJIT(J);
  if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
  if (tm) LLVMDisposeTargetMachine(tm);
  free(off);
  cg_free(&c);
  vt_jit_free(j);
  return NULL;
}

/* ---------- running ------------------------------------------------------------------------ */
int vt_jit_run(vt_jit *j, const vt_tensor *inputs, vt_tensor *outputs, vt_error *e) {
  int rc = vt_cg_rt_run(&j->rt, inputs, outputs, false, e);
  j->st.last_run_ms = j->rt.last_run_ms;
  j->st.last_fallback_ms = j->rt.last_fallback_ms;
  j->st.last_host_direct = j->rt.last_direct;
  j->st.last_host_copied = j->rt.last_copied;
  return rc;
}

void vt_jit_reset(vt_jit *j) { vt_cg_rt_reset(&j->rt); }

void vt_jit_state_info(const vt_jit *j, size_t *bytes, int64_t *done, int64_t *seen) {
  *bytes = vt_cg_rt_state_bytes(&j->rt);
  vt_states_rows(j->rt.state, j->rt.g->n_nodes, done, seen);
}

int vt_jit_set_knob(vt_jit *j, const char *name, double value, vt_error *e) {
  return vt_cg_rt_set_knob(&j->rt, name, value, e);
}

void vt_jit_get_stats(const vt_jit *j, vt_jit_stats *st) { *st = j->st; }

void vt_jit_free(vt_jit *j) {
  if (!j) return;
  if (j->lljit) {
    LLVMErrorRef err = LLVMOrcDisposeLLJIT(j->lljit);
    if (err) LLVMConsumeError(err);
  }
  vt_cg_rt_fini(&j->rt);
  free(j->arena);
  for (int i = 0; i < j->n_keep; i++) free(j->keep[i]);
  free(j->keep);
  free(j);
}

/* ---------- fast.so ------------------------------------------------------------------------- */
#include "so_format.h"

typedef struct { uint8_t *p; size_t n, cap; bool oom; } wbuf;

static void w_bytes(wbuf *w, const void *src, size_t n) {
  if (w->oom) return;
  if (w->n + n > w->cap) {
    size_t nc = w->cap ? w->cap : 4096;
    while (nc < w->n + n) nc *= 2;
    uint8_t *np = realloc(w->p, nc);
    if (!np) { w->oom = true; return; }
    w->p = np;
    w->cap = nc;
  }
  if (n) memcpy(w->p + w->n, src, n);
  w->n += n;
}
static void w_i32(wbuf *w, int32_t x) { w_bytes(w, &x, 4); }
static void w_i64(wbuf *w, int64_t x) { w_bytes(w, &x, 8); }
static void w_f32(wbuf *w, float x) { w_bytes(w, &x, 4); }
static void w_strn(wbuf *w, const char *s, size_t n) { w_i64(w, (int64_t)n); w_bytes(w, s, n); }
static void w_str(wbuf *w, const char *s) { w_strn(w, s ? s : "", s ? strlen(s) : 0); }
/* Appends data to the data section at a 64-byte aligned offset; returns the offset. */
static int64_t w_data(wbuf *d, const void *src, size_t n) {
  static const uint8_t zero[64];
  w_bytes(d, zero, (64 - d->n % 64) % 64);
  int64_t off = (int64_t)d->n;
  w_bytes(d, src, n);
  return off;
}

/* Serialises what the library needs at run time (so_format.h). Constant data is kept only for
 * constants read by interpreter kernels, copies or graph outputs; attributes only for nodes
 * that run interpreter kernels. (Generated kernels other than copies and strided copies read
 * their constants from module globals.) */
static int serialise_graph(cg *c, wbuf *w, wbuf *dsec) {
  const vt_graph *g = c->orig;
  w_i32(w, VT_SO_MAGIC);
  w_str(w, g->path);
  w_i32(w, g->n_opsets);
  for (int32_t i = 0; i < g->n_opsets; i++) { w_str(w, g->opsets[i].domain); w_i64(w, g->opsets[i].version); }
  w_i32(w, g->n_syms);
  for (int32_t i = 0; i < g->n_syms; i++) {
    const vt_sym *sy = &g->syms[i];
    w_i32(w, (int32_t)sy->kind);
    w_str(w, sy->kind == VT_SYM_NAMED ? sy->name : "");
    w_i64(w, sy->a);
    w_i64(w, sy->b);
    w_i64(w, sy->upper);
  }
  w_i32(w, g->n_values);
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &g->values[v];
    w_str(w, val->name);
    w_i32(w, (int32_t)val->dtype);
    int32_t rank = val->rank < 0 ? 0 : val->rank;
    w_i32(w, rank);
    for (int32_t d = 0; d < rank; d++) w_i64(w, val->dims[d]);   /* symbolic: index into the symbols */
    bool need = false;
    if (is_const(g, v)) {
      need = c->is_out[v];
      for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++) {
        int k = c->groups[c->node_group[c->ulist[u]]].kind;
        if (k == G_FALLBACK || k == G_COPY || k == G_PERM) need = true;   /* read through bufs */
      }
    }
    if (need) {
      const vt_tensor *t = val->cdata;
      if (t->dtype == VT_STRING)
        return vt_errorf(c->e, VT_ERR_MODEL, "%s: constant '%s': string tensors cannot go into a shared library",
                         g->path, val->name);
      w_i64(w, w_data(dsec, t->data, vt_tensor_nbytes(t)));
      w_i64(w, (int64_t)vt_tensor_nbytes(t));
    } else {
      w_i64(w, -1);
      w_i64(w, 0);
    }
  }
  w_i32(w, g->n_nodes);
  for (int32_t ni = 0; ni < g->n_nodes; ni++) {
    const vt_node *n = &g->nodes[ni];
    w_str(w, n->name);
    w_str(w, vt_ops[n->op].name);
    w_str(w, vt_ops[n->op].domain);
    w_i32(w, n->n_in);
    for (int32_t k = 0; k < n->n_in; k++) w_i32(w, n->in[k]);
    w_i32(w, n->n_out);
    for (int32_t k = 0; k < n->n_out; k++) w_i32(w, n->out[k]);
    bool fb = c->groups[c->node_group[ni]].kind == G_FALLBACK;
    w_i32(w, fb ? n->n_attr : 0);
    for (int32_t a = 0; fb && a < n->n_attr; a++) {
      const vt_attr *at = &n->attr[a];
      w_str(w, at->name);
      w_i32(w, (int32_t)at->type);
      switch (at->type) {
      case VT_ATTR_INT: w_i64(w, at->i); break;
      case VT_ATTR_FLOAT: w_f32(w, at->f); break;
      case VT_ATTR_STRING: w_strn(w, at->s ? at->s : "", at->s ? at->s_len : 0); break;
      case VT_ATTR_INTS: w_i32(w, at->n); for (int32_t k = 0; k < at->n; k++) w_i64(w, at->ints[k]); break;
      case VT_ATTR_FLOATS: w_i32(w, at->n); for (int32_t k = 0; k < at->n; k++) w_f32(w, at->floats[k]); break;
      case VT_ATTR_STRINGS: w_i32(w, at->n); for (int32_t k = 0; k < at->n; k++) w_str(w, at->strings[k]); break;
      case VT_ATTR_TENSOR:
        if (!at->t || at->t->dtype == VT_STRING)
          return vt_node_errorf(g, ni, c->e, "attribute '%s': this tensor cannot go into a shared library", at->name);
        w_i32(w, (int32_t)at->t->dtype);
        w_i32(w, at->t->rank);
        for (int32_t d = 0; d < at->t->rank; d++) w_i64(w, at->t->dims[d]);
        w_i64(w, w_data(dsec, at->t->data, vt_tensor_nbytes(at->t)));
        break;
      default:
        return vt_node_errorf(g, ni, c->e, "attribute '%s' (a subgraph) cannot go into a shared library yet", at->name);
      }
    }
  }
  w_i32(w, g->n_inputs);
  for (int32_t i = 0; i < g->n_inputs; i++) w_i32(w, g->inputs[i]);
  w_i32(w, g->n_outputs);
  for (int32_t i = 0; i < g->n_outputs; i++) w_i32(w, g->outputs[i]);
  if (w->oom || dsec->oom) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory serialising the graph");
  return VT_OK;
}

static void json_str(wbuf *w, const char *s) {
  w_bytes(w, "\"", 1);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') { w_bytes(w, "\\", 1); w_bytes(w, s, 1); }
    else if (ch < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", ch); w_bytes(w, b, 6); }
    else w_bytes(w, s, 1);
  }
  w_bytes(w, "\"", 1);
}

static void json_values(wbuf *w, const vt_graph *g, const int32_t *vals, int32_t n) {
  w_bytes(w, "[", 1);
  for (int32_t i = 0; i < n; i++) {
    const vt_value *v = &g->values[vals[i]];
    char b[64];
    if (i) w_bytes(w, ",", 1);
    w_bytes(w, "{\"name\":", 8);
    json_str(w, v->name);
    snprintf(b, sizeof b, ",\"dtype\":\"%s\",\"dims\":[", vt_dtype_name(v->dtype));
    w_bytes(w, b, strlen(b));
    for (int32_t d = 0; d < v->rank; d++) {
      snprintf(b, sizeof b, "%s%lld", d ? "," : "", (long long)v->dims[d]);
      w_bytes(w, b, strlen(b));
    }
    w_bytes(w, "]}", 2);
  }
  w_bytes(w, "]", 1);
}

typedef struct so_extra {
  const char *tag;
  wbuf graph, data, sig;
  int64_t *off;
  int64_t arena_size;
} so_extra;

static LLVMValueRef const_bytes_global(cg *c, const char *name, const void *p, size_t n, unsigned align) {
  LLVMValueRef init = LLVMConstStringInContext2(c->ctx, (const char *)p, n, 1);
  LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetAlignment(gv, align);
  return gv;
}

/* The fast.so ABI in the module: the constant descriptor and the tagged functions forwarding to
 * so_support.c. */
static int emit_so_abi(cg *c, void *arg) {
  so_extra *x = arg;
  const vt_graph *g = c->g;
  LLVMValueRef entry = LLVMGetNamedFunction(c->mod, "vt_entry");
  LLVMSetLinkage(entry, LLVMInternalLinkage);
  LLVMValueRef gg = const_bytes_global(c, "vt_so_graph", x->graph.p, x->graph.n, 16);
  LLVMValueRef gd = const_bytes_global(c, "vt_so_data", x->data.p ? x->data.p : (const uint8_t *)"", x->data.n, 64);
  LLVMValueRef go = const_bytes_global(c, "vt_so_offsets", x->off, (size_t)g->n_values * sizeof(int64_t), 8);
  LLVMValueRef gs = const_bytes_global(c, "vt_so_signature", x->sig.p, x->sig.n, 1);
  LLVMValueRef fields[7] = {gg, ci64(c, (int64_t)x->graph.n), gd, go, ci64(c, g->n_values), ci64(c, x->arena_size),
                            entry};
  LLVMValueRef init = LLVMConstStructInContext(c->ctx, fields, 7, 0);
  LLVMValueRef desc = LLVMAddGlobal(c->mod, LLVMTypeOf(init), "vt_so_desc");
  LLVMSetInitializer(desc, init);
  LLVMSetGlobalConstant(desc, 1);
  LLVMSetLinkage(desc, LLVMPrivateLinkage);
  /* declarations of the support functions */
  LLVMTypeRef p = c->t_ptr, i32 = c->t_i32;
  LLVMTypeRef t_create = LLVMFunctionType(i32, (LLVMTypeRef[]){p, i32, p}, 3, 0);
  LLVMTypeRef t_run = LLVMFunctionType(i32, (LLVMTypeRef[]){p, p, p}, 3, 0);
  LLVMTypeRef t_err = LLVMFunctionType(p, (LLVMTypeRef[]){p}, 1, 0);
  LLVMTypeRef t_destroy = LLVMFunctionType(c->t_void, (LLVMTypeRef[]){p}, 1, 0);
  LLVMValueRef s_create = LLVMAddFunction(c->mod, "vt_so_create", t_create);
  LLVMValueRef s_run = LLVMAddFunction(c->mod, "vt_so_run", t_run);
  LLVMValueRef s_err = LLVMAddFunction(c->mod, "vt_so_last_error", t_err);
  LLVMValueRef s_destroy = LLVMAddFunction(c->mod, "vt_so_destroy", t_destroy);
  LLVMTypeRef t_reset = LLVMFunctionType(i32, (LLVMTypeRef[]){p}, 1, 0);
  LLVMTypeRef t_set = LLVMFunctionType(i32, (LLVMTypeRef[]){p, p, LLVMDoubleTypeInContext(c->ctx)}, 3, 0);
  LLVMValueRef s_reset = LLVMAddFunction(c->mod, "vt_so_reset", t_reset);
  LLVMValueRef s_set = LLVMAddFunction(c->mod, "vt_so_set", t_set);
  LLVMTypeRef t_state = LLVMFunctionType(i32, (LLVMTypeRef[]){p, p, p, p}, 4, 0);
  LLVMValueRef s_state = LLVMAddFunction(c->mod, "vt_so_state_info", t_state);
  char name[200];
  /* <tag>_signature */
  snprintf(name, sizeof name, "%s_signature", x->tag);
  LLVMValueRef f = LLVMAddFunction(c->mod, name, LLVMFunctionType(p, NULL, 0, 0));
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, gs);
  /* <tag>_create(threads, out) */
  snprintf(name, sizeof name, "%s_create", x->tag);
  f = LLVMAddFunction(c->mod, name, LLVMFunctionType(i32, (LLVMTypeRef[]){i32, p}, 2, 0));
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_create, s_create, (LLVMValueRef[]){desc, LLVMGetParam(f, 0), LLVMGetParam(f, 1)}, 3, ""));
  /* <tag>_run(s, inputs, outputs) */
  snprintf(name, sizeof name, "%s_run", x->tag);
  f = LLVMAddFunction(c->mod, name, t_run);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_run, s_run, (LLVMValueRef[]){LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2)}, 3, ""));
  /* <tag>_reset(s) */
  snprintf(name, sizeof name, "%s_reset", x->tag);
  f = LLVMAddFunction(c->mod, name, t_reset);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_reset, s_reset, (LLVMValueRef[]){LLVMGetParam(f, 0)}, 1, ""));
  /* <tag>_set(s, knob, value) */
  snprintf(name, sizeof name, "%s_set", x->tag);
  f = LLVMAddFunction(c->mod, name, t_set);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_set, s_set,
                                    (LLVMValueRef[]){LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2)}, 3, ""));
  /* <tag>_state_info(s, bytes, updated, seen) */
  snprintf(name, sizeof name, "%s_state_info", x->tag);
  f = LLVMAddFunction(c->mod, name, t_state);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_state, s_state,
                                    (LLVMValueRef[]){LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2),
                                                     LLVMGetParam(f, 3)}, 4, ""));
  /* <tag>_last_error(s) */
  snprintf(name, sizeof name, "%s_last_error", x->tag);
  f = LLVMAddFunction(c->mod, name, t_err);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_err, s_err, (LLVMValueRef[]){LLVMGetParam(f, 0)}, 1, ""));
  /* <tag>_destroy(s) */
  snprintf(name, sizeof name, "%s_destroy", x->tag);
  f = LLVMAddFunction(c->mod, name, t_destroy);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildCall2(c->b, t_destroy, s_destroy, (LLVMValueRef[]){LLVMGetParam(f, 0)}, 1, "");
  LLVMBuildRetVoid(c->b);
  return VT_OK;
}

static bool valid_tag(const char *t) {
  if (!t || !*t || strlen(t) > 64 || !((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || *t == '_'))
    return false;
  for (; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '_'))
      return false;
  return true;
}

/* The blobs kept out of the module (blob_extern) for a fast.so, written straight into an ELF
 * relocatable object: one read-only section with every blob (64-byte aligned) and a hidden global
 * symbol vt_const_<i> per blob. One write of the data; no assembler or LLVM pass over it. */
static int write_blob_object(const cg *c, const char *path) {
#if defined(__x86_64__)
  const uint16_t machine = EM_X86_64;
#elif defined(__aarch64__)
  const uint16_t machine = EM_AARCH64;
#else
  return vt_errorf(c->e, VT_ERR_MODEL, "%s: fast.so emission supports x86-64 and AArch64 hosts", path);
#endif
  static const char shstr[] = "\0.rodata.vt_weights\0.symtab\0.strtab\0.shstrtab\0.note.GNU-stack";
  enum { SH_RODATA = 1, SH_SYMTAB = 9, SH_STRTAB = 17, SH_SHSTRTAB = 25, SH_NOTE = 35 };
  int nsym = 1;
  uint64_t dlen = 0;
  for (int i = 0; i < c->n_blobs; i++)
    if (blob_extern(&c->blobs[i])) {
      nsym++;
      dlen = (dlen + 63) / 64 * 64 + c->blobs[i].nbytes;
    }
  Elf64_Sym *sym = calloc((size_t)nsym, sizeof *sym);
  char *str = calloc((size_t)nsym, 24);
  if (!sym || !str) { free(sym); free(str); return vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); }
  size_t strn = 1;
  uint64_t off = 0;
  int k = 1;
  for (int i = 0; i < c->n_blobs; i++) {
    if (!blob_extern(&c->blobs[i])) continue;
    off = (off + 63) / 64 * 64;
    sym[k].st_name = (uint32_t)strn;
    sym[k].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
    sym[k].st_other = STV_HIDDEN;
    sym[k].st_shndx = 1;
    sym[k].st_value = off;
    sym[k++].st_size = c->blobs[i].nbytes;
    strn += (size_t)snprintf(str + strn, 24, "vt_const_%d", i) + 1;
    off += c->blobs[i].nbytes;
  }
  /* layout: header, data (at 64), symtab, strtab, shstrtab, section headers */
  uint64_t o_data = 64, o_sym = (o_data + dlen + 7) / 8 * 8, o_str = o_sym + (uint64_t)nsym * sizeof *sym;
  uint64_t o_shs = o_str + strn, o_sh = (o_shs + sizeof shstr + 7) / 8 * 8;
  Elf64_Ehdr eh;
  memset(&eh, 0, sizeof eh);
  memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_REL;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_shoff = o_sh;
  eh.e_ehsize = sizeof eh;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 6;
  eh.e_shstrndx = 5;
  Elf64_Shdr sh[6];
  memset(sh, 0, sizeof sh);
  sh[1] = (Elf64_Shdr){.sh_name = SH_RODATA, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC, .sh_offset = o_data,
                       .sh_size = dlen, .sh_addralign = 64};
  sh[2] = (Elf64_Shdr){.sh_name = SH_SYMTAB, .sh_type = SHT_SYMTAB, .sh_offset = o_sym,
                       .sh_size = (uint64_t)nsym * sizeof *sym, .sh_link = 3, .sh_info = 1, .sh_addralign = 8,
                       .sh_entsize = sizeof *sym};
  sh[3] = (Elf64_Shdr){.sh_name = SH_STRTAB, .sh_type = SHT_STRTAB, .sh_offset = o_str, .sh_size = strn, .sh_addralign = 1};
  sh[4] = (Elf64_Shdr){.sh_name = SH_NOTE, .sh_type = SHT_PROGBITS, .sh_offset = o_shs, .sh_addralign = 1};
  sh[5] = (Elf64_Shdr){.sh_name = SH_SHSTRTAB, .sh_type = SHT_STRTAB, .sh_offset = o_shs, .sh_size = sizeof shstr,
                       .sh_addralign = 1};
  FILE *f = fopen(path, "wb");
  bool ok = f != NULL;
  static const char zeros[64];
  uint64_t pos = 0;
#define WR(p, n) do { if (ok && (n) != 0 && fwrite((p), 1, (n), f) != (n)) ok = false; pos += (n); } while (0)
  WR(&eh, sizeof eh);
  for (int i = 0; i < c->n_blobs && ok; i++) {
    if (!blob_extern(&c->blobs[i])) continue;
    uint64_t pad = (64 - (pos - o_data) % 64) % 64;
    WR(zeros, pad);
    WR(c->blobs[i].data, c->blobs[i].nbytes);
  }
  WR(zeros, o_sym - pos);
  WR(sym, (size_t)nsym * sizeof *sym);
  WR(str, strn);
  WR(shstr, sizeof shstr);
  WR(zeros, o_sh - pos);
  WR(sh, sizeof sh);
#undef WR
  if (f && fclose(f)) ok = false;
  free(sym);
  free(str);
  if (!ok) return vt_errorf(c->e, VT_ERR_MODEL, "%s: cannot write: %s", path, strerror(errno));
  return VT_OK;
}

int vt_cg_emit_so(const vt_graph *g, const vt_cg_options *opt, const char *path, const char *tag, vt_error *e) {
  double t0 = now_ms();
  vt_cg_options dflt = {.opt_level = 3};
  if (!opt) opt = &dflt;
  int olv = opt->opt_level < 0 ? 0 : opt->opt_level > 3 ? 3 : opt->opt_level;
  if (!valid_tag(tag))
    return vt_errorf(e, VT_ERR_MODEL, "tag '%s' is not a C identifier (letters, digits, '_'; at most 64)", tag ? tag : "");
  if (!path || !*path || strpbrk(path, "'\"\\\n") || strlen(path) > 3000)
    return vt_errorf(e, VT_ERR_MODEL, "%s: unsupported output path", path ? path : "");
  cg c;
  memset(&c, 0, sizeof c);
  c.g = c.orig = g;
  c.e = e;
  so_extra x;
  memset(&x, 0, sizeof x);
  x.tag = tag;
  LLVMOrcThreadSafeContextRef tsc = NULL;
  LLVMTargetMachineRef tm = NULL;
  char obj[3100], map[3100], bin[3100], cmd[16384];
  snprintf(obj, sizeof obj, "%s.tmp.o", path);
  snprintf(map, sizeof map, "%s.tmp.map", path);
  snprintf(bin, sizeof bin, "%s.tmp.w.o", path);
  c.pic = true;
  int rc = make_view(&c);
  if (!rc) rc = build_users(&c);
  if (!rc) rc = plan(&c);
  if (!rc) {
    x.off = malloc(((size_t)g->n_values + 1) * sizeof *x.off);
    if (!x.off) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  if (!rc && (x.arena_size = plan_arena(&c, x.off)) < 0) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  if (!rc) rc = serialise_graph(&c, &x.graph, &x.data);
  if (!rc) {
    w_bytes(&x.sig, "{\"tag\":", 7);
    json_str(&x.sig, tag);
    w_bytes(&x.sig, ",\"inputs\":", 10);
    json_values(&x.sig, g, g->inputs, g->n_inputs);
    w_bytes(&x.sig, ",\"outputs\":", 11);
    json_values(&x.sig, g, g->outputs, g->n_outputs);
    w_bytes(&x.sig, ",\"passes\":[]}", 14);   /* includes the NUL */
    if (x.sig.oom) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  /* nthreads 2: kernels big enough always go through the pool (the session's thread count is
   * not known here; a 1-thread pool runs them inline) */
  if (!rc) rc = cg_llvm_module(&c, opt, olv, 2, LLVMRelocPIC, emit_so_abi, &x, t0, &tsc, &tm);
  double t_obj = now_ms();
  if (!rc) {
    char *msg = NULL;
    if (LLVMTargetMachineEmitToFile(tm, c.mod, obj, LLVMObjectFile, &msg)) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot write the object file: %s", obj, msg ? msg : "?");
    }
    LLVMDisposeMessage(msg);
  }
  if (!rc) {
    FILE *f = fopen(map, "w");
    if (!f) rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot write: %s", map, strerror(errno));
    else {
      fprintf(f, "{ global: %s_signature; %s_create; %s_run; %s_reset; %s_set; %s_state_info; %s_last_error; "
                 "%s_destroy; local: *; };\n",
              tag, tag, tag, tag, tag, tag, tag, tag);
      if (fclose(f)) rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot write", map);
    }
  }
  double t_link = now_ms();
  if (!rc) rc = write_blob_object(&c, bin);
  if (!rc) {
    snprintf(cmd, sizeof cmd, "%s -shared -o '%s' '%s' '%s' -Wl,--version-script='%s' %s %s -lm -lpthread 2>&1",
             VT_CG_SO_CC, path, obj, bin, map, VT_CG_SO_LIBS, VT_CG_SO_LDFLAGS);
    FILE *pp = popen(cmd, "r");
    char out[800] = "";
    size_t got = pp ? fread(out, 1, sizeof out - 1, pp) : 0;
    out[got] = 0;
    int st = pp ? pclose(pp) : -1;
    if (st != 0) rc = vt_errorf(e, VT_ERR_MODEL, "%s: linking the shared library failed: %s", path, out[0] ? out : cmd);
  }
  if (getenv("VT_CG_TIMING"))
    fprintf(stderr, "codegen: object file %.1f ms, link %.1f ms\n", t_link - t_obj, now_ms() - t_link);
  remove(obj);
  remove(map);
  remove(bin);
  if (!rc && opt->stats) {
    vt_jit tmp;
    memset(&tmp, 0, sizeof tmp);
    count_groups(&c, &tmp.st);
    tmp.st.compile_ms = now_ms() - t0;
    print_stats(&c, &tmp, opt->stats);
  }
  if (c.mod) LLVMDisposeModule(c.mod);
  if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
  if (tm) LLVMDisposeTargetMachine(tm);
  free(x.graph.p);
  free(x.data.p);
  free(x.sig.p);
  free(x.off);
  cg_free(&c);
  return rc;
}

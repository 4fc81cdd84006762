/* ir.h — vtopt's graph IR: dtypes, symbolic dims, tensors, values, nodes, attributes, the op
 * table, shape inference, verifier and printer. Everything else in vtopt builds on this header.
 *
 * Layout: a graph owns growable arrays of values and nodes, addressed by int32 indices (never by
 * pointer: arrays move when they grow). Small things (names, attribute payloads, node in/out
 * lists) live in the graph's arena and are freed all at once with the graph. Constant data is
 * either in the arena, in a malloc'd block owned by the graph, or in an mmapped file region. */
#ifndef VTOPT_IR_H
#define VTOPT_IR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---------- errors ---------------------------------------------------------------------- */
/* Codes double as CLI exit codes. VT_ERR_MODEL: bad user input or model (exit 2).
 * VT_ERR_INTERNAL: a broken invariant inside vtopt (exit 3). */
enum { VT_OK = 0, VT_ERR_MODEL = 2, VT_ERR_INTERNAL = 3 };

typedef struct vt_error {
  int code;
  char msg[1024];
} vt_error;

/* Sets e (if non-NULL and not already holding an error) and returns code. */
int vt_errorf(vt_error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vt_verrorf(vt_error *e, int code, const char *fmt, va_list ap);
void vt_error_clear(vt_error *e);

/* An internal invariant: prints file and line and aborts with exit code 3. Never for user input. */
#define VT_ASSERT(c) ((c) ? (void)0 : vt_assert_fail(#c, __FILE__, __LINE__))
void vt_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn));

/* ---------- dtypes (ONNX TensorProto.DataType numbering) ------------------------------------ */
typedef enum vt_dtype {
  VT_UNDEFINED = 0, VT_F32 = 1, VT_U8 = 2, VT_I8 = 3, VT_U16 = 4, VT_I16 = 5, VT_I32 = 6,
  VT_I64 = 7, VT_STRING = 8, VT_BOOL = 9, VT_F16 = 10, VT_F64 = 11, VT_U32 = 12, VT_U64 = 13,
  VT_BF16 = 16
} vt_dtype;
#define VT_DTYPE_MAX 17

size_t vt_dtype_size(vt_dtype t);          /* 0 for UNDEFINED/STRING/unknown */
const char *vt_dtype_name(vt_dtype t);     /* "f32", "i64", ... ; "?" if unknown */
bool vt_dtype_is_float(vt_dtype t);        /* F16, BF16, F32, F64 */
bool vt_dtype_is_int(vt_dtype t);          /* signed or unsigned integers (not bool) */
float vt_f16_to_f32(uint16_t h);
uint16_t vt_f32_to_f16(float f);
float vt_bf16_to_f32(uint16_t h);
uint16_t vt_f32_to_bf16(float f);

/* ---------- dims -------------------------------------------------------------------------
 * A dim is an int64. Values above VT_SYM_BASE are plain integers (sizes are >= 0; known integer
 * contents of shape tensors, such as a Reshape target's -1, may be negative); values at or below
 * VT_SYM_BASE name symbol number (VT_SYM_BASE - d) in the graph's symbol table. ALWAYS test with
 * vt_dim_is_const, never with "< 0". Symbols are either named (from the model: "batch", "T"; or
 * fresh "?3" for an unnamed unknown dim) or expressions over two dims (a*b, a+b, a-b, a/b floor,
 * a%b, ...), hash-consed so that equal expressions are the same symbol. Constant operands fold.
 * Integers at or below VT_SYM_BASE cannot be represented (vt_infer_ints clamps them). */
typedef int64_t vt_dim;
#define VT_MAX_RANK 8
#define VT_SYM_BASE (-((int64_t)1 << 62))
#define vt_dim_is_const(d) ((d) > VT_SYM_BASE)
#define vt_dim_sym(d) ((int32_t)(VT_SYM_BASE - (d)))
#define vt_sym_dim(s) ((vt_dim)(VT_SYM_BASE - (int64_t)(s)))

typedef enum { VT_SYM_NAMED = 0, VT_SYM_ADD, VT_SYM_SUB, VT_SYM_MUL, VT_SYM_DIV, VT_SYM_MOD,
               VT_SYM_CEILDIV, VT_SYM_MAX, VT_SYM_MIN } vt_sym_kind;

typedef struct vt_sym {
  vt_sym_kind kind;
  const char *name;    /* NAMED only (arena) */
  vt_dim a, b;         /* expression operands */
  int64_t upper;       /* known upper bound, -1 if none */
} vt_sym;

/* ---------- arena ------------------------------------------------------------------------- */
typedef struct vt_arena_block vt_arena_block;
typedef struct vt_arena { vt_arena_block *head; } vt_arena;
void *vt_arena_alloc(vt_arena *a, size_t n);            /* zeroed, 16-byte aligned; NULL on OOM */
char *vt_arena_strdup(vt_arena *a, const char *s);
void vt_arena_free(vt_arena *a);

/* ---------- tensors (concrete data: constants, runtime buffers, attribute payloads) ---------- */
typedef struct vt_tensor {
  vt_dtype dtype;
  int32_t rank;
  int64_t dims[VT_MAX_RANK];
  void *data;       /* numel * dtype_size bytes (STRING: char*[numel]) */
  bool owned;       /* data was malloc'd for this tensor and is freed by vt_tensor_free */
} vt_tensor;

int64_t vt_tensor_numel(const vt_tensor *t);
size_t vt_tensor_nbytes(const vt_tensor *t);
/* Allocates zeroed data of the given shape; fails with VT_ERR_MODEL if the size overflows or
 * memory is exhausted. Frees any previously owned data, so t must be zero-initialised or valid. */
int vt_tensor_alloc(vt_tensor *t, vt_dtype dt, int32_t rank, const int64_t *dims, vt_error *e);
void vt_tensor_free(vt_tensor *t);               /* frees owned data, resets to empty */
/* Element count of dims with overflow check: returns -1 on overflow or negative dims. */
int64_t vt_shape_numel(int32_t rank, const int64_t *dims);
/* Reads element i of any numeric tensor as double / int64 (bool, ints, floats). */
double vt_tensor_get_f64(const vt_tensor *t, int64_t i);
int64_t vt_tensor_get_i64(const vt_tensor *t, int64_t i);

/* ---------- attributes (ONNX AttributeProto.AttributeType numbering) ----------------------- */
typedef enum { VT_ATTR_UNDEFINED = 0, VT_ATTR_FLOAT = 1, VT_ATTR_INT = 2, VT_ATTR_STRING = 3,
               VT_ATTR_TENSOR = 4, VT_ATTR_GRAPH = 5, VT_ATTR_FLOATS = 6, VT_ATTR_INTS = 7,
               VT_ATTR_STRINGS = 8 } vt_attr_type;

typedef struct vt_attr {
  const char *name;
  vt_attr_type type;
  int64_t i;
  float f;
  const char *s;         /* STRING (NUL-terminated; may hold embedded data up to s_len) */
  size_t s_len;
  int32_t n;             /* element count for FLOATS/INTS/STRINGS */
  int64_t *ints;
  float *floats;
  const char **strings;
  vt_tensor *t;          /* TENSOR (data in the graph's arena or owned blocks) */
} vt_attr;

/* ---------- the op table ------------------------------------------------------------------- */
/* Op flags */
enum { VT_OPF_ELEMENTWISE = 1, VT_OPF_TOKENWISE = 2, VT_OPF_STATEFUL = 4, VT_OPF_COMMUTATIVE = 8,
       VT_OPF_SHAPE_ONLY = 16 /* output depends only on input shapes, not data */ };

/* ops.def rows: OP(ID, "OnnxName", "domain", min_in, max_in, min_out, max_out, flags, "attr schema")
 * The attribute schema is a comma list of name:type with type one of f i s t g F I S
 * (float, int, string, tensor, graph, floats, ints, strings). Every row needs vt_infer_ID in ir/
 * and vt_kernel_ID in runtime/: a missing one fails the link. */
typedef enum vt_op_id {
#define OP(id, name, dom, minin, maxin, minout, maxout, flags, schema) VT_OP_##id,
#include "ops.def"
#undef OP
  VT_OP_COUNT
} vt_op_id;

typedef struct vt_op_info {
  const char *name, *domain;
  int min_in, max_in, min_out, max_out;   /* max_in -1: variadic */
  unsigned flags;
  const char *schema;
} vt_op_info;

extern const vt_op_info vt_ops[VT_OP_COUNT + 1];   /* + a zero row so an empty table compiles */
/* Finds an op by ONNX name and domain ("" and "ai.onnx" are the same); -1 if unknown. */
int vt_op_lookup(const char *name, const char *domain);
/* The schema type letter (f i s t g F I S) of attribute `name` for op, or 0 if not in the schema. */
char vt_op_attr_type(int op, const char *name);
/* The schema letter for an attribute type. */
char vt_attr_type_letter(vt_attr_type t);

/* ---------- values and nodes --------------------------------------------------------------- */
enum { VT_VAL_INPUT = 1, VT_VAL_OUTPUT = 2, VT_VAL_CONST = 4 };

typedef struct vt_value {
  const char *name;
  vt_dtype dtype;
  int32_t rank;                 /* -1: unknown */
  vt_dim dims[VT_MAX_RANK];
  int32_t producer;             /* node index, -1 for graph inputs and constants */
  uint32_t flags;
  vt_tensor *cdata;             /* VT_VAL_CONST: the data (dims all constant) */
  /* Known integer contents (shape arithmetic): element i is a dim (constant or symbol).
   * Set by shape inference for small integer tensors, e.g. the result of Shape. NULL if not. */
  int32_t nknown;
  vt_dim *known;
} vt_value;

typedef struct vt_node {
  const char *name;
  int32_t op;                   /* vt_op_id */
  int32_t n_in, n_out, n_attr;
  int32_t *in;                  /* value indices; -1 = omitted optional input */
  int32_t *out;
  vt_attr *attr;
} vt_node;

typedef struct vt_opset { const char *domain; int64_t version; } vt_opset;

typedef struct vt_mapping { void *addr; size_t len; } vt_mapping;

typedef struct vt_graph {
  vt_arena arena;
  const char *path;             /* model file, for messages ("" if built in memory) */
  const char *name;
  vt_value *values; int32_t n_values, cap_values;
  vt_node *nodes;   int32_t n_nodes, cap_nodes;
  int32_t *inputs;  int32_t n_inputs, cap_inputs;   /* value indices, non-constant inputs */
  int32_t *outputs; int32_t n_outputs, cap_outputs;
  vt_sym *syms;     int32_t n_syms, cap_syms;
  vt_opset *opsets; int32_t n_opsets;
  int64_t ir_version;
  const char *producer_name, *producer_version;
  vt_mapping *maps; int32_t n_maps, cap_maps;       /* mmapped external data, unmapped at free */
  void **blocks;    int32_t n_blocks, cap_blocks;   /* malloc'd constant data owned by the graph */
} vt_graph;

vt_graph *vt_graph_new(const char *path);
void vt_graph_free(vt_graph *g);

/* Adds a value; name is copied. Returns index or -1 on OOM. Duplicate names are the caller's
 * check (vt_graph_find_value). */
int32_t vt_graph_add_value(vt_graph *g, const char *name, vt_dtype dt, int32_t rank, const vt_dim *dims);
/* Adds a constant value whose data is the tensor t (copied shallowly: t->data must stay alive as
 * long as the graph: arena, vt_graph_own block, or a mapping). */
int32_t vt_graph_add_const(vt_graph *g, const char *name, const vt_tensor *t);
int32_t vt_graph_find_value(const vt_graph *g, const char *name);   /* -1 if absent */
/* Adds a node with in/out value indices (copied). Attributes are added with vt_node_add_attr. */
int32_t vt_graph_add_node(vt_graph *g, const char *name, int op, int n_in, const int32_t *in,
                          int n_out, const int32_t *out);
vt_attr *vt_node_add_attr(vt_graph *g, int32_t node, const char *name, vt_attr_type type);
int vt_graph_add_input(vt_graph *g, int32_t v);
int vt_graph_add_output(vt_graph *g, int32_t v);
/* Takes ownership of a malloc'd block (freed with the graph). Returns 0, or -1 on OOM (then the
 * block is freed). */
int vt_graph_own(vt_graph *g, void *block);
int vt_graph_add_mapping(vt_graph *g, void *addr, size_t len);
int64_t vt_graph_opset(const vt_graph *g, const char *domain);   /* 0 if not imported */
/* Imports (or updates) an opset; g->opsets is malloc'd and freed with the graph. */
int vt_graph_set_opset(vt_graph *g, const char *domain, int64_t version);

/* Attribute lookup with defaults. */
const vt_attr *vt_node_attr(const vt_node *n, const char *name);
int64_t vt_attr_int(const vt_node *n, const char *name, int64_t dflt);
float vt_attr_float(const vt_node *n, const char *name, float dflt);
const char *vt_attr_str(const vt_node *n, const char *name, const char *dflt);
/* INTS attribute: returns count (or -1 if absent) and sets *vals. */
int32_t vt_attr_ints(const vt_node *n, const char *name, const int64_t **vals);
int32_t vt_attr_floats(const vt_node *n, const char *name, const float **vals);

/* "FILE: node 'NAME' (OP): " + message. */
int vt_node_errorf(const vt_graph *g, int32_t node, vt_error *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---------- symbolic dims ------------------------------------------------------------------ */
vt_dim vt_dim_named(vt_graph *g, const char *name);   /* same name -> same symbol */
vt_dim vt_dim_fresh(vt_graph *g);                      /* a new anonymous unknown dim */
vt_dim vt_dim_add(vt_graph *g, vt_dim a, vt_dim b);
vt_dim vt_dim_sub(vt_graph *g, vt_dim a, vt_dim b);
vt_dim vt_dim_mul(vt_graph *g, vt_dim a, vt_dim b);
vt_dim vt_dim_div(vt_graph *g, vt_dim a, vt_dim b);     /* floor division */
vt_dim vt_dim_ceildiv(vt_graph *g, vt_dim a, vt_dim b);
vt_dim vt_dim_mod(vt_graph *g, vt_dim a, vt_dim b);
vt_dim vt_dim_max(vt_graph *g, vt_dim a, vt_dim b);
vt_dim vt_dim_min(vt_graph *g, vt_dim a, vt_dim b);
/* Writes "384", "T", "(T*196)" ... into buf. */
const char *vt_dim_str(const vt_graph *g, vt_dim d, char *buf, size_t n);
/* Evaluates a dim given values for named symbols (bind[sym] = value or -1 unbound). Returns -1
 * when it depends on an unbound symbol. */
int64_t vt_dim_eval(const vt_graph *g, vt_dim d, const int64_t *bind);
/* A known upper bound of d (from the bounds of the symbols it is made of, e.g. the token count
 * after a data-dependent selection), or -1 when there is none. */
int64_t vt_dim_upper(const vt_graph *g, vt_dim d);

/* ---------- shape inference ------------------------------------------------------------------
 * Each op's vt_infer_ID reads its inputs' types (and, when known, their integer contents or
 * concrete data) and writes its outputs' dtype, rank and dims (and known contents for shape
 * arithmetic). The same functions run at graph level (symbolic dims) and inside the interpreter
 * (all dims constant, all data present), so output shapes are computed in one place. */
typedef struct vt_infer_in {
  vt_dtype dtype;
  int32_t rank;                 /* -1 unknown; the input is absent when present == false */
  bool present;
  const vt_dim *dims;
  int32_t nknown;               /* known integer contents, or 0 */
  const vt_dim *known;
  const vt_tensor *data;        /* concrete data when available (constants, interpreter) */
} vt_infer_in;

typedef struct vt_infer_out {
  vt_dtype dtype;
  int32_t rank;
  vt_dim dims[VT_MAX_RANK];
  int32_t nknown;               /* set by ops that propagate contents (max VT_MAX_KNOWN) */
  vt_dim known[64];
} vt_infer_out;
#define VT_MAX_KNOWN 64

typedef struct vt_infer_ctx {
  vt_graph *g;
  int32_t node_idx;
  const vt_node *node;
  int n_in, n_out;
  const vt_infer_in *in;
  vt_infer_out *out;
  vt_error *err;
} vt_infer_ctx;

typedef int (*vt_infer_fn)(vt_infer_ctx *c);
extern const vt_infer_fn vt_infer_fns[VT_OP_COUNT + 1];

/* Infers one node from explicit input descriptions (graph level or concrete). out has n_out
 * entries. Checks arity and reports errors with the node prefix. */
int vt_infer_node(vt_graph *g, int32_t node, const vt_infer_in *in, vt_infer_out *out, vt_error *e);

/* Helpers for infer functions. */
int vt_infer_fail(vt_infer_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Numpy-style broadcast of inputs [0, n) into out[0]'s rank/dims (dtype not touched). */
int vt_infer_broadcast(vt_infer_ctx *c, int n, vt_infer_out *o);
/* Integer contents of input i (from known or concrete data) into vals (at most max); returns the
 * count, or -1 when not known. Symbolic entries come back as negative dims. */
int32_t vt_infer_ints(const vt_infer_ctx *c, int i, vt_dim *vals, int32_t max);
/* Copies input i's type to output o. */
void vt_infer_same(vt_infer_ctx *c, int i, int o);
/* Normalises axis into [0, rank) or fails with a message naming the attribute. */
int vt_infer_axis(vt_infer_ctx *c, int64_t axis, int32_t rank, int64_t *out);

/* Runs shape inference over the whole graph in order; fills every value's type and known
 * contents. Returns VT_OK or an error naming the node. */
int vt_graph_infer(vt_graph *g, vt_error *e);
/* Replaces values whose contents became fully constant known ints (Shape chains), and outputs of
 * Identity nodes of constants, by constants, and drops nodes left without users. Returns the
 * number of values folded, -1 on error. */
int vt_graph_fold_known(vt_graph *g, vt_error *e);
/* The usual sequence after loading: pin named dims (names[i] := vals[i] in graph inputs), infer
 * shapes, fold shape arithmetic, verify. A pin naming no symbol is an error. */
int vt_graph_prepare(vt_graph *g, const char *const *pin_names, const int64_t *pin_vals, int npins,
                     vt_error *e);
/* Removes nodes whose outputs are unused (not graph outputs); compacts node list. */
void vt_graph_remove_dead(vt_graph *g);

/* ---------- checks and printing ------------------------------------------------------------ */
/* Topological order, arity against the op table, attribute schema, every use defined, unique
 * names, single producer, output types set. */
int vt_graph_verify(const vt_graph *g, vt_error *e);
/* Reorders nodes topologically (models may list them out of order); fails on a cycle. */
int vt_graph_toposort(vt_graph *g, vt_error *e);

#include <stdio.h>
/* Stable text form: inputs, constants summary, nodes with output types, outputs. */
void vt_graph_print(const vt_graph *g, FILE *f);
/* Inputs, outputs, nodes with output shapes, and an op histogram (vtopt inspect). */
void vt_graph_print_summary(const vt_graph *g, FILE *f);
const char *vt_value_type_str(const vt_graph *g, const vt_value *v, char *buf, size_t n);

#endif

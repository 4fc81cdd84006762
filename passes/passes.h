/* passes.h — vtopt's pass manager: the pass registry, typed pass parameters, the pipeline parser
 * and runner (canonicalisation first, --print-after, --stats, --explain, verification after
 * every pass), pattern rules as data, and the FLOPs estimate. Depends on ir/ only.
 *
 * Pipeline syntax (the --pass=LIST option):
 *   LIST  := SPEC ( ("," | "+") SPEC )*        passes run left to right
 *   SPEC  := NAME [ ":" KEY "=" VALUE ( "," KEY "=" VALUE )* ]
 * After a ':' a comma-separated item containing '=' is another parameter of the same pass; an
 * item without '=' starts the next pass. So "fuse-attention,httm:q_keep=0.2,kv_keep=0.3,tome"
 * is three passes. '+' always starts a new pass. Int lists are written 8/8/4 or [8,8,4].
 * "none" (alone) is the empty pipeline. */
#ifndef VTOPT_PASSES_H
#define VTOPT_PASSES_H

#include <stdio.h>

#include "ir.h"

/* ---------- parameters ------------------------------------------------------------------- */
typedef enum { VT_PARAM_INT, VT_PARAM_FLOAT, VT_PARAM_STRING, VT_PARAM_INTS } vt_param_type;

typedef struct vt_param_def {
  const char *name;
  vt_param_type type;
  const char *dflt;        /* default, in the same text form as on the command line */
  const char *help;
} vt_param_def;

#define VT_PASS_MAX_PARAMS 16
#define VT_PARAM_MAX_INTS 64
#define VT_PARAM_MAX_STR 128

typedef struct vt_param_value {
  vt_param_type type;
  bool set;                /* given explicitly (else: the default) */
  int64_t i;
  double f;
  char s[VT_PARAM_MAX_STR];
  int32_t n;               /* INTS count */
  int64_t ints[VT_PARAM_MAX_INTS];
} vt_param_value;

struct vt_pass_info;
typedef struct vt_pass_params {
  const struct vt_pass_info *pass;
  vt_param_value v[VT_PASS_MAX_PARAMS];   /* parallel to pass->params */
} vt_pass_params;

/* Typed accessors; the name must be one of the pass's parameters (an internal error otherwise). */
int64_t vt_param_int(const vt_pass_params *p, const char *name);
double vt_param_float(const vt_pass_params *p, const char *name);
const char *vt_param_str(const vt_pass_params *p, const char *name);
int32_t vt_param_ints(const vt_pass_params *p, const char *name, const int64_t **vals);

/* ---------- pattern rules (data) ----------------------------------------------------------
 * A rule is tried on every node whose op is root_op. match() reads the graph and fills a
 * rule-private match record (match_size bytes); on failure it calls vt_match_fail with the
 * pattern step and the reason. rewrite() edits the graph from the record (it may append nodes
 * and values and detach outputs; the driver re-sorts, removes dead nodes and re-infers). */
typedef struct vt_match_ctx vt_match_ctx;
typedef struct vt_pattern {
  const char *name;
  int root_op;
  bool (*match)(const vt_graph *g, int32_t root, void *rec, vt_match_ctx *m);
  int (*rewrite)(vt_graph *g, int32_t root, void *rec, vt_error *e);
  size_t rec_size;
  const void *user;        /* rule configuration, readable in match() via vt_match_user */
  /* filled by the driver */
  int64_t candidates, matches;
  char last_step[64];
  char last_reason[320];
} vt_pattern;

/* Records why a candidate did not match; returns false (so match functions can
 * `return vt_match_fail(m, "step", "reason %d", x);`). */
bool vt_match_fail(vt_match_ctx *m, const char *step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Number of node inputs reading value v, plus one if v is a graph output (from the driver's
 * use table, valid during match). */
int32_t vt_match_uses(const vt_match_ctx *m, int32_t v);
const void *vt_match_user(const vt_match_ctx *m);

/* ---------- per-pass statistics and logging ---------------------------------------------- */
#define VT_STATS_MAX_RULES 16
typedef struct vt_pass_stats {
  FILE *explain;           /* non-NULL: write one line per candidate that did not match */
  int32_t n_rules;
  struct { const char *name; int64_t candidates, matches; } rules[VT_STATS_MAX_RULES];
} vt_pass_stats;

/* Runs the rules over the graph once: each node whose op is a rule's root is a candidate;
 * matches are rewritten; afterwards the graph is re-sorted, dead nodes are removed and shapes
 * re-inferred. Counts go to st (and the rules). Returns VT_OK or an error. */
int vt_apply_patterns(vt_graph *g, vt_pattern *rules, int n_rules, vt_pass_stats *st, vt_error *e);

/* ---------- passes ---------------------------------------------------------------------- */
typedef int (*vt_pass_fn)(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);

typedef struct vt_pass_info {
  const char *name;
  const char *summary;     /* one line */
  vt_pass_fn run;
  bool exact;              /* outputs equal the input graph's (up to float rounding) */
  bool canonical;          /* part of canonicalisation (runs first unless no_canonicalize) */
  int n_params;
  vt_param_def params[VT_PASS_MAX_PARAMS];
} vt_pass_info;

int vt_pass_count(void);
const vt_pass_info *vt_pass_get(int i);
const vt_pass_info *vt_pass_find(const char *name);
/* Fills p with the pass's defaults. */
int vt_pass_params_default(const vt_pass_info *pass, vt_pass_params *p, vt_error *e);
/* Sets one parameter from text ("q_keep", "0.2"); errors name the pass, list the valid
 * parameters, or say what value was expected. */
int vt_pass_params_set(vt_pass_params *p, const char *key, const char *val, vt_error *e);

/* Pipeline syntax, the passes with their parameters and defaults (for --help). */
void vt_passes_help(FILE *f);

/* ---------- pipelines ------------------------------------------------------------------- */
typedef struct vt_pipeline {
  int32_t n;
  vt_pass_params *steps;
} vt_pipeline;

/* Parses LIST (see the top of this file) into pl (free with vt_pipeline_free). NULL or "" or
 * "none" give the empty pipeline. */
int vt_pipeline_parse(const char *spec, vt_pipeline *pl, vt_error *e);
void vt_pipeline_free(vt_pipeline *pl);

/* `-o out.onnx --portable` (passes/portable.c): rewrites ai.vtopt ops into standard ONNX ops
 * (Attention, ToMe's TokenMatch/TokenMerge/TokenUnmerge); refuses the others by name (stateful
 * ops, HTTM). g must be inferred; raises the default opset to 16 when lower. */
int vt_graph_lower_portable(vt_graph *g, vt_error *e);

typedef struct vt_pipeline_opts {
  bool no_canonicalize;    /* do not prepend the canonical passes */
  const char *print_after; /* NULL, a pass name, or "all": print the IR after it */
  bool stats;              /* per pass: nodes, FLOPs, matches per rule */
  bool explain;            /* candidates that did not match: node, step, reason */
  FILE *out;               /* where print/stats/explain go (NULL: stderr) */
} vt_pipeline_opts;

/* Runs the canonical passes (unless opts->no_canonicalize or already listed) and then pl's
 * passes on g, which must have been inferred (vt_graph_prepare). After every pass the graph is
 * inferred and verified; a failure is reported as "pass 'NAME' ...". */
int vt_pipeline_run(const vt_pipeline *pl, vt_graph *g, const vt_pipeline_opts *opts, vt_error *e);

/* ---------- block structure --------------------------------------------------------------
 * Transformer blocks around canonical Attention nodes (passes/blocks.c): x_mid = x_in + f(attn)
 * where x_in is an ancestor of the attention's Q (the residual stream), then x_out = x_mid +
 * g(x_mid) (the MLP residual; -1 when absent). When the query count is F*P with F a named
 * symbol and P a constant (attention over frames), frames/tokens_per_frame record it; with F
 * pinned (a constant count) they come from the Reshape above Q that joined rows of P tokens
 * into the sequence (e.g. [B*T, P, C] -> [B, T*P, C]). */
typedef struct vt_block {
  int32_t attn;                 /* Attention node */
  int32_t x_in;                 /* value: residual stream entering the block */
  int32_t attn_add;             /* node: x_mid = x_in + f(attention) */
  int32_t x_mid;                /* value */
  int32_t mlp_add;              /* node: x_out = x_mid + g(x_mid), or -1 */
  int32_t x_out;                /* value, or -1 */
  vt_dim frames;                /* 0 when unknown */
  int64_t tokens_per_frame;     /* 0 when unknown */
} vt_block;

/* Finds the blocks (malloc'd array in *blocks, free() it). Attention nodes without a
 * recognisable residual are skipped, with a line on `explain` when non-NULL. */
int vt_find_blocks(const vt_graph *g, vt_block **blocks, int32_t *n, FILE *explain, vt_error *e);
void vt_print_blocks(const vt_graph *g, const vt_block *b, int32_t n, FILE *f);

/* ---------- cost --------------------------------------------------------------------------
 * FLOPs (2 x multiply-adds) of MatMul, Gemm, Conv, ConvTranspose and ai.vtopt.Attention
 * (2*B*H*Nq*Nk*(Dh+Dv)); other ops (Einsum included) are not counted. A symbolic dim counts as
 * its upper bound when it has one (e.g. Eventful's updated-token count: costs at the bound),
 * else as 1 and sets *partial (may be NULL). */
double vt_graph_flops(const vt_graph *g, bool *partial);

#endif

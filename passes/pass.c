/* pass.c — the pass registry (one row per pass), typed parameters (defaults, parsing from text,
 * accessors) and the --help text for passes and the pipeline syntax. */
#include "passes_internal.h"
#include "httm.h"
#include "eventful.h"
#include "topk.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const vt_pass_info registry[] = {
    {.name = "fuse-attention",
     .summary = "rewrite each attention core (Q.K^T -> scale -> mask/rel-pos bias -> Softmax -> .V; pre-scaled q, "
                "K via Transpose, repeat_kv GQA, rank-3 MHA) and the ONNX Attention (opset 23), com.microsoft.Attention "
                "and com.microsoft.MultiHeadAttention ops into one ai.vtopt.Attention node",
     .run = vt_pass_fuse_attention,
     .exact = true,
     .canonical = true,
     .n_params = 1,
     .params = {{"fold_q_scale", VT_PARAM_INT, "1",
                 "fold a scalar Mul/Div of q (right before Q.K^T, or before q's head Reshape/Transpose) into the scale (1) or keep it (0)"}}},
    {.name = "fold-affine",
     .summary = "fold BatchNormalization (inference), and Mul / Add by a per-output-channel or scalar constant, "
                "into the preceding Conv / Gemm / MatMul's constant weights and bias (exact to float rounding; "
                "MatMul + BatchNormalization becomes a Gemm; an Add after MatMul stays for the GEMM epilogue)",
     .run = vt_pass_fold_affine,
     .exact = true,
     .canonical = true,
     .n_params = 0},
    /* tome (passes/tome.c) */
    {.name = "tome",
     .summary = "ToMe token merging: bipartite soft matching on keys averaged over heads (A = even, B = odd tokens, "
                "cosine), the top-r A->B edges merged by size-weighted average after each block's attention residual, "
                "sizes carried through the blocks, log(size) as key bias (proportional attention); protected prefix "
                "(CLS, registers) never merged; ToMe-SD form (merge the attention input, unmerge its output) for "
                "per-token outputs. r=0 is exact. [I] choices: metric = the Attention node's K input (after RoPE "
                "when the model applies one); merged rows in ToMe's order (unmerged A by index, then B), so the next "
                "block's even/odd split matches ToMe's; ties go to the lower index; sd mode uses a fixed 1-D stride for "
                "its destinations (every sd_stride-th token) instead of random 2x2 cells",
     .run = vt_pass_tome,
     .exact = false,
     .canonical = false,
     .n_params = 7,
     .params = {{"r", VT_PARAM_INTS, "13",
                 "tokens merged per block (tome mode): one value for every block (README setting for ViT-S/B: 13; ToMe's "
                 "patch default 0 = off), or a per-block list 8/8/4/... (missing blocks: 0); capped at 50% of the "
                 "unprotected tokens per block"},
                {"inflect", VT_PARAM_FLOAT, "0",
                 "with a single r: ToMe's schedule, r per block linear from r*(1-inflect) to 2r-that (-1: the paper's "
                 "decreasing schedule 2r..0; 0: constant)"},
                {"mode", VT_PARAM_STRING, "auto",
                 "tome (merge after attention, never unmerge), sd (ToMe-SD: merge before attention, unmerge after), or "
                 "auto: tome when the blocks form one chain and every output reads a protected token (Gather) or a "
                 "mean over tokens, sd when an output is per token (dit, vitstream, vggt)"},
                {"ratio", VT_PARAM_FLOAT, "0.5", "sd mode: fraction of the tokens merged per attention (ToMe-SD default 0.5)"},
                {"protected", VT_PARAM_INT, "-1",
                 "prefix tokens never merged (CLS, distillation, registers); -1: auto (the prefix Concat before the first "
                 "block, at least up to the token the output reads)"},
                {"prop_attn", VT_PARAM_INT, "1", "tome mode: add log(size) to the attention logits (1) or not (0)"},
                {"sd_stride", VT_PARAM_INT, "4", "sd mode: every sd_stride-th token is a destination (ToMe-SD: 1 in 2x2 = 4)"}}},
    /* end tome */
    VT_HTTM_PASS_INFO,
    VT_EVENTFUL_PASS_INFO,
    VT_TOPK_PASS_INFO,
};
#define N_PASSES ((int)(sizeof registry / sizeof registry[0]))

int vt_pass_count(void) { return N_PASSES; }
const vt_pass_info *vt_pass_get(int i) { return i >= 0 && i < N_PASSES ? &registry[i] : NULL; }

const vt_pass_info *vt_pass_find(const char *name) {
  for (int i = 0; i < N_PASSES; i++)
    if (strcmp(registry[i].name, name) == 0) return &registry[i];
  return NULL;
}

static const char *type_name(vt_param_type t) {
  switch (t) {
    case VT_PARAM_INT: return "int";
    case VT_PARAM_FLOAT: return "float";
    case VT_PARAM_STRING: return "string";
    case VT_PARAM_INTS: return "int list";
  }
  return "?";
}

static int parse_int(const char *s, int64_t *out) {
  if (!*s) return -1;
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || *end) return -1;
  *out = x;
  return 0;
}

/* Parses text into a value of type t (without touching `set`). */
static int parse_value(vt_param_value *v, vt_param_type t, const char *s) {
  v->type = t;
  switch (t) {
    case VT_PARAM_INT: return parse_int(s, &v->i);
    case VT_PARAM_FLOAT: {
      if (!*s) return -1;
      char *end;
      errno = 0;
      double x = strtod(s, &end);
      if (errno || *end || !isfinite(x)) return -1;
      v->f = x;
      return 0;
    }
    case VT_PARAM_STRING:
      if (strlen(s) >= VT_PARAM_MAX_STR) return -1;
      strcpy(v->s, s);
      return 0;
    case VT_PARAM_INTS: {
      /* 8/8/4, [8,8,4], 8 */
      char buf[1024];
      size_t n = strlen(s);
      if (n >= sizeof buf) return -1;
      if (n >= 2 && s[0] == '[' && s[n - 1] == ']') { memcpy(buf, s + 1, n - 2); buf[n - 2] = 0; }
      else strcpy(buf, s);
      v->n = 0;
      if (!buf[0]) return 0;   /* empty list */
      char *save = NULL;
      for (char *tok = strtok_r(buf, "/,", &save); tok; tok = strtok_r(NULL, "/,", &save)) {
        if (v->n >= VT_PARAM_MAX_INTS) return -1;
        if (parse_int(tok, &v->ints[v->n])) return -1;
        v->n++;
      }
      return 0;
    }
  }
  return -1;
}

int vt_pass_params_default(const vt_pass_info *pass, vt_pass_params *p, vt_error *e) {
  memset(p, 0, sizeof *p);
  p->pass = pass;
  for (int i = 0; i < pass->n_params; i++)
    if (parse_value(&p->v[i], pass->params[i].type, pass->params[i].dflt))
      return vt_errorf(e, VT_ERR_INTERNAL, "pass '%s': bad default '%s' for parameter '%s'", pass->name,
                       pass->params[i].dflt, pass->params[i].name);
  return VT_OK;
}

static void list_params(const vt_pass_info *pass, char *buf, size_t n) {
  size_t off = 0;
  buf[0] = 0;
  if (pass->n_params == 0) { snprintf(buf, n, "it takes no parameters"); return; }
  off += (size_t)snprintf(buf, n, "valid parameters: ");
  for (int i = 0; i < pass->n_params && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%s (%s, default %s)", i ? ", " : "", pass->params[i].name,
                            type_name(pass->params[i].type), pass->params[i].dflt);
}

int vt_pass_params_set(vt_pass_params *p, const char *key, const char *val, vt_error *e) {
  const vt_pass_info *pass = p->pass;
  for (int i = 0; i < pass->n_params; i++) {
    if (strcmp(pass->params[i].name, key) != 0) continue;
    vt_param_value tmp = p->v[i];
    if (parse_value(&tmp, pass->params[i].type, val)) {
      const char *want = pass->params[i].type == VT_PARAM_INT     ? "an integer"
                         : pass->params[i].type == VT_PARAM_FLOAT ? "a finite number"
                         : pass->params[i].type == VT_PARAM_INTS  ? "a list of integers like 8/8/4 or [8,8,4]"
                                                                  : "a string (shorter than 128 bytes)";
      return vt_errorf(e, VT_ERR_MODEL, "--pass: %s: parameter '%s' needs %s, got '%s'", pass->name, key, want, val);
    }
    tmp.set = true;
    p->v[i] = tmp;
    return VT_OK;
  }
  char list[768];
  list_params(pass, list, sizeof list);
  return vt_errorf(e, VT_ERR_MODEL, "--pass: %s: unknown parameter '%s'; %s", pass->name, key, list);
}

static const vt_param_value *lookup(const vt_pass_params *p, const char *name, vt_param_type t) {
  for (int i = 0; i < p->pass->n_params; i++)
    if (strcmp(p->pass->params[i].name, name) == 0) {
      VT_ASSERT(p->pass->params[i].type == t);
      return &p->v[i];
    }
  VT_ASSERT(!"pass parameter not declared in the registry");
  return NULL;
}

int64_t vt_param_int(const vt_pass_params *p, const char *name) { return lookup(p, name, VT_PARAM_INT)->i; }
double vt_param_float(const vt_pass_params *p, const char *name) { return lookup(p, name, VT_PARAM_FLOAT)->f; }
const char *vt_param_str(const vt_pass_params *p, const char *name) { return lookup(p, name, VT_PARAM_STRING)->s; }
int32_t vt_param_ints(const vt_pass_params *p, const char *name, const int64_t **vals) {
  const vt_param_value *v = lookup(p, name, VT_PARAM_INTS);
  if (vals) *vals = v->ints;
  return v->n;
}

void vt_passes_help(FILE *f) {
  fprintf(f,
          "pipelines (--pass=LIST):\n"
          "  LIST := SPEC ((',' | '+') SPEC)*     SPEC := NAME[:KEY=VALUE(,KEY=VALUE)*]\n"
          "  After ':', a comma-separated item with '=' is another parameter of the same pass; an item\n"
          "  without '=' starts the next pass ('+' always does). Int lists: 8/8/4 or [8,8,4].\n"
          "  e.g. --pass=httm:q_keep=0.2,kv_keep=0.3   --pass=fuse-attention,tome:r=8   --pass=none\n"
          "  Canonical passes (marked [canon]) run first unless --no-canonicalize.\n"
          "passes:\n");
  for (int i = 0; i < N_PASSES; i++) {
    const vt_pass_info *p = &registry[i];
    fprintf(f, "  %-16s %s%s %s\n", p->name, p->exact ? "[exact]" : "[approx]", p->canonical ? "[canon]" : "",
            p->summary);
    for (int k = 0; k < p->n_params; k++)
      fprintf(f, "      %s=%s (%s): %s\n", p->params[k].name, p->params[k].dflt, type_name(p->params[k].type),
              p->params[k].help);
  }
}

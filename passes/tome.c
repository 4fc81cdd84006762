/* tome.c — the `tome` pass: ToMe token merging (Bolya et al., ICLR 2023) on canonical graphs.
 *
 * mode=tome (classification-style models whose outputs read a protected token or pool over
 * tokens): in every block of a chain of residual blocks, after x_mid = x + Attn(LN(x)), insert
 *   plan = ai.vtopt.TokenMatch(K of the block's Attention, r, protected)   (keys averaged over heads)
 *   x_mid', sizes' = ai.vtopt.TokenMerge(x_mid, plan, sizes)               (size-weighted average)
 * so the MLP and every later block run on N - r tokens, and give every later Attention
 * key_bias = log(sizes) (proportional attention).
 * mode=sd (models with per-token outputs: ToMe-SD): per block, merge the attention branch input
 * (the LayerNorm output) on its own hidden states (mean, no sizes), run the attention branch on
 * fewer tokens and TokenUnmerge its output before the residual add; the token count outside the
 * branch never changes.
 * Reshape targets inside the shortened region that hold the old token count as a constant are
 * rewritten (Where(onehot, new count, target)); blocks where another op bakes the token count in
 * (position tables, masks, Expand shapes...) are left dense, with the reason on --explain.
 * Blocks are processed one at a time; after each rewrite the graph is re-sorted and re-inferred,
 * so later blocks see the new token counts. r = 0 inserts nothing (exact). */
#include "passes_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TOME_MAX_LAYERS 1024

typedef struct {
  vt_graph *g;
  vt_pass_stats *st;
  vt_error *e;
  FILE *explain;
  uint8_t *mark;       /* per value: in the region being shortened */
  uint8_t *anc;        /* per value: ancestor of the branch output (sd) */
  int32_t nvals;
} tctx;

static void explainf(tctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void explainf(tctx *c, const char *fmt, ...) {
  if (!c->explain) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(c->explain, "  tome: ");
  vfprintf(c->explain, fmt, ap);
  fprintf(c->explain, "\n");
  va_end(ap);
}

static int oom(tctx *c) { return vt_errorf(c->e, VT_ERR_MODEL, "%s: tome: out of memory", c->g->path); }

static int grow_marks(tctx *c) {
  if (c->nvals >= c->g->n_values) return 0;
  free(c->mark);
  free(c->anc);
  c->nvals = c->g->n_values + 64;
  c->mark = calloc((size_t)c->nvals, 1);
  c->anc = calloc((size_t)c->nvals, 1);
  return c->mark && c->anc ? 0 : -1;
}

/* Marks `from` and every value computed from it (the graph is topologically sorted). */
static void mark_descendants(tctx *c, int32_t from) {
  const vt_graph *g = c->g;
  memset(c->mark, 0, (size_t)c->nvals);
  c->mark[from] = 1;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    bool hit = false;
    for (int32_t k = 0; k < n->n_in && !hit; k++) hit = n->in[k] >= 0 && c->mark[n->in[k]];
    if (!hit) continue;
    for (int32_t o = 0; o < n->n_out; o++)
      if (n->out[o] >= 0) c->mark[n->out[o]] = 1;
  }
}

/* Marks `to` and every value it is computed from. */
static void mark_ancestors(tctx *c, int32_t to) {
  const vt_graph *g = c->g;
  memset(c->anc, 0, (size_t)c->nvals);
  c->anc[to] = 1;
  for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
    const vt_node *n = &g->nodes[i];
    bool hit = false;
    for (int32_t o = 0; o < n->n_out && !hit; o++) hit = n->out[o] >= 0 && c->anc[n->out[o]];
    if (!hit) continue;
    for (int32_t k = 0; k < n->n_in; k++)
      if (n->in[k] >= 0) c->anc[n->in[k]] = 1;
  }
}

/* Values added after the marks were computed are outside every region. */
static bool in_region(const tctx *c, int32_t v, bool sd) {
  return v >= 0 && v < c->nvals && c->mark[v] && (!sd || c->anc[v]);
}

static bool node_in_region(const tctx *c, const vt_node *n, bool sd) {
  for (int32_t o = 0; o < n->n_out; o++)
    if (in_region(c, n->out[o], sd)) return true;
  return false;
}

static bool dims_has(const vt_value *v, vt_dim d) {
  for (int32_t i = 0; i < v->rank; i++)
    if (v->dims[i] == d) return true;
  return false;
}

/* Can the region (marked values; with sd also ancestors of the branch output) run on fewer
 * tokens than n? Fails with the node and reason. */
static bool region_ok(tctx *c, int32_t m, vt_dim n, bool sd, char *why, size_t wn) {
  const vt_graph *g = c->g;
  char nb[64];
  vt_dim_str(g, n, nb, sizeof nb);
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *nd = &g->nodes[i];
    if (!node_in_region(c, nd, sd)) continue;
    for (int32_t k = 0; k < nd->n_in; k++) {
      int32_t u = nd->in[k];
      if (u < 0) continue;
      const vt_value *uv = &g->values[u];
      if (nd->op == VT_OP_Reshape && k == 1) {
        if (!dims_has(&g->values[nd->in[0]], n)) continue;
        bool neg;
        vt_rw_ints tv;
        vt_rw_int_contents(uv, &tv);
        int cnt = vt_rw_count_dim(&tv, n, &neg);
        int32_t pos = vt_rw_token_pos(&g->values[nd->in[0]], &tv, n);
        if ((cnt > 0 && pos < 0) || (cnt == 0 && !neg) || tv.n == 0) {
          snprintf(why, wn, "Reshape '%s': its target %s the token count %s %s", nd->name,
                   tv.n == 0 ? "is unknown, so" : "does not name", nb,
                   cnt > 1 ? "unambiguously" : "(or use -1 for it)");
          return false;
        }
        continue;
      }
      bool inside = u == m || in_region(c, u, sd);
      if (!inside && vt_dtype_is_float(uv->dtype) && uv->rank >= 2 && uv->dims[uv->rank - 2] == n) {
        snprintf(why, wn, "node '%s' reads '%s' with %s tokens from outside the merged region "
                 "(a position table or mask?)", nd->name, uv->name, nb);
        return false;
      }
      if (!inside && vt_dtype_is_int(uv->dtype) && nd->op != VT_OP_Gather && nd->op != VT_OP_Reshape) {
        bool neg;
        vt_rw_ints iv;
        vt_rw_int_contents(uv, &iv);
        if (vt_rw_count_dim(&iv, n, &neg) > 0 && nd->op != VT_OP_Concat && nd->op != VT_OP_Unsqueeze &&
            nd->op != VT_OP_Squeeze && nd->op != VT_OP_Where && nd->op != VT_OP_Cast && nd->op != VT_OP_Shape) {
          snprintf(why, wn, "node '%s' (%s) takes the token count %s as a constant in '%s'", nd->name,
                   vt_ops[nd->op].name, nb, uv->name);
          return false;
        }
      }
    }
  }
  return true;
}

/* Rewrites the Reshape targets in the region that name token count n to name m instead. */
static int retarget_reshapes(tctx *c, vt_dim n, vt_dim m, bool sd) {
  vt_graph *g = c->g;
  int32_t nn = g->n_nodes;
  for (int32_t i = 0; i < nn; i++) {
    if (g->nodes[i].op != VT_OP_Reshape || !node_in_region(c, &g->nodes[i], sd)) continue;
    if (vt_rw_retarget_reshape(g, i, n, m, "tome")) return oom(c);
  }
  return VT_OK;
}

/* Replaces reads of v by w in every node except `skip` (and nodes outside the region when
 * region is set). */
static void replace_uses(tctx *c, int32_t v, int32_t w, int32_t skip_a, int32_t skip_b, bool region_only, bool sd) {
  vt_graph *g = c->g;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    if (i == skip_a || i == skip_b) continue;
    vt_node *n = &g->nodes[i];
    if (region_only && !node_in_region(c, n, sd)) continue;
    for (int32_t k = 0; k < n->n_in; k++)
      if (n->in[k] == v) n->in[k] = w;
  }
}

static vt_attr *set_int(vt_graph *g, int32_t node, const char *name, int64_t v) {
  vt_attr *a = vt_node_add_attr(g, node, name, VT_ATTR_INT);
  if (a) a->i = v;
  return a;
}

/* Gives Attention node `attn` key_bias += log(sizes) ([B,N] -> [B,1,N]). */
static int add_key_bias(tctx *c, int32_t attn, int32_t sizes) {
  vt_graph *g = c->g;
  const char *base = g->nodes[attn].name;
  int32_t lg = vt_rw_node1(g, VT_OP_Log, base, "tome_log_size", 1, &sizes);
  if (lg < 0) return oom(c);
  int32_t kb = vt_rw_unsqueeze(g, lg, 1, base, "tome_key_bias");
  if (kb < 0) return oom(c);
  vt_node *a = &g->nodes[attn];
  if (a->n_in >= 5 && a->in[4] >= 0) {
    int32_t in[2] = {a->in[4], kb};
    kb = vt_rw_node1(g, VT_OP_Add, base, "tome_key_bias_sum", 2, in);
    if (kb < 0) return oom(c);
    a = &g->nodes[attn];
    a->in[4] = kb;
    return VT_OK;
  }
  int32_t nin = a->n_in > 5 ? a->n_in : 5;   /* inputs after key_bias (bias_rows/bias_cols) stay */
  int32_t *in = vt_arena_alloc(&g->arena, (size_t)nin * sizeof *in);
  if (!in) return oom(c);
  for (int k = 0; k < nin; k++) in[k] = k < a->n_in ? a->in[k] : -1;
  in[4] = kb;
  a->in = in;
  a->n_in = nin;
  return VT_OK;
}

static int resort(tctx *c) {
  int rc = vt_graph_toposort(c->g, c->e);
  if (rc == VT_OK) rc = vt_graph_infer(c->g, c->e);
  if (rc == VT_OK && grow_marks(c)) rc = oom(c);
  return rc;
}

/* Tokens a prefix Concat puts before the patch tokens (CLS, distillation, registers), found by
 * walking up from the first block's input through token-wise ops; 0 if none. */
static int64_t detect_prefix(const vt_graph *g, int32_t x) {
  for (int steps = 0; steps < 8 && x >= 0; steps++) {
    int32_t p = g->values[x].producer;
    if (p < 0) return 0;
    const vt_node *n = &g->nodes[p];
    if (n->op == VT_OP_Concat && g->values[x].rank == 3) {
      int64_t ax = vt_attr_int(n, "axis", 0);
      if (ax < 0) ax += 3;
      if (ax != 1 || n->n_in < 2) return 0;
      int64_t pre = 0;
      for (int32_t k = 0; k + 1 < n->n_in; k++) {
        vt_dim d = n->in[k] >= 0 ? g->values[n->in[k]].dims[1] : 0;
        if (!vt_dim_is_const(d)) return 0;
        pre += d;
      }
      return pre;
    }
    if (n->op == VT_OP_Add || n->op == VT_OP_Mul || n->op == VT_OP_Sub) {
      int32_t next = -1;
      for (int32_t k = 0; k < n->n_in && k < 2; k++) {
        int32_t u = n->in[k];
        if (u >= 0 && !(g->values[u].flags & VT_VAL_CONST) && g->values[u].rank == 3) { next = u; break; }
      }
      x = next;
    } else if (n->op == VT_OP_LayerNormalization || n->op == VT_OP_Dropout || n->op == VT_OP_Identity ||
               n->op == VT_OP_Cast) {
      x = n->in[0];
    } else {
      return 0;
    }
  }
  return 0;
}

/* Does every path from x to a graph output go through a token-reducing read (Gather of one
 * token on axis 1, ReduceMean over axis 1)? Sets *max_idx to the highest Gathered token. */
static bool readout_reduces(const vt_graph *g, int32_t x, int64_t *max_idx) {
  *max_idx = -1;
  uint8_t *seen = calloc((size_t)g->n_values + 1, 1);
  int32_t *stack = malloc(((size_t)g->n_values + 1) * sizeof *stack);
  bool ok = seen && stack;
  int32_t sp = 0;
  if (ok) { stack[sp++] = x; seen[x] = 1; }
  while (ok && sp > 0) {
    int32_t v = stack[--sp];
    if (g->values[v].flags & VT_VAL_OUTPUT) { ok = false; break; }
    for (int32_t o = 0; o < g->n_outputs; o++)
      if (g->outputs[o] == v) ok = false;
    for (int32_t i = 0; ok && i < g->n_nodes; i++) {
      const vt_node *n = &g->nodes[i];
      int32_t slot = -1;
      for (int32_t k = 0; k < n->n_in; k++)
        if (n->in[k] == v) slot = k;
      if (slot < 0) continue;
      const vt_value *xv = &g->values[v];
      if (n->op == VT_OP_Gather && slot == 0 && xv->rank == 3) {
        int64_t ax = vt_attr_int(n, "axis", 0);
        if (ax < 0) ax += 3;
        double idx;
        if (ax == 1 && n->in[1] >= 0 && g->values[n->in[1]].rank == 0 && vt_rw_const_scalar(g, n->in[1], &idx) &&
            idx >= 0) {
          if ((int64_t)idx > *max_idx) *max_idx = (int64_t)idx;
          continue;
        }
      }
      if (n->op == VT_OP_ReduceMean && slot == 0 && xv->rank == 3) {
        const int64_t *ax = NULL;
        int32_t na = vt_attr_ints(n, "axes", &ax);
        bool over1 = false;
        for (int32_t k = 0; k < na; k++) over1 |= ax[k] == 1 || ax[k] == -2;
        if (na < 0 && n->n_in > 1 && n->in[1] >= 0) {
          const vt_value *av = &g->values[n->in[1]];
          for (int32_t k = 0; k < av->nknown; k++) over1 |= av->known[k] == 1 || av->known[k] == -2;
        }
        if (over1) continue;
      }
      for (int32_t o = 0; o < n->n_out; o++) {
        int32_t w = n->out[o];
        if (w >= 0 && !seen[w]) { seen[w] = 1; stack[sp++] = w; }
      }
    }
  }
  free(seen);
  free(stack);
  return ok;
}

/* ToMe's parse_r: (r, inflect) -> per-layer r, linear from r*(1-inflect) to 2r - that. */
static void schedule(int64_t r, double inflect, int32_t L, int64_t *out) {
  if (L == 1 || inflect == 0) {
    for (int32_t l = 0; l < L; l++) out[l] = r;
    return;
  }
  int64_t mn = (int64_t)(r * (1.0 - inflect)), mx = 2 * r - mn;
  double step = (double)(mx - mn) / (L - 1);
  for (int32_t l = 0; l < L; l++) {
    int64_t v = (int64_t)(mn + step * l);
    out[l] = v < 0 ? 0 : v;
  }
}

static void eligible(int64_t n, int64_t p, int64_t stride, int64_t *ea, int64_t *eb) {
  if (p > n) p = n;
  *eb = n / stride - p / stride;
  *ea = (n - p) - *eb;
}

static void add_rule(tctx *c, const char *name, int64_t cand, int64_t match) {
  vt_pass_stats *st = c->st;
  if (!st || st->n_rules >= VT_STATS_MAX_RULES) return;
  st->rules[st->n_rules].name = name;
  st->rules[st->n_rules].candidates = cand;
  st->rules[st->n_rules].matches = match;
  st->n_rules++;
}

int vt_pass_tome(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e) {
  tctx c = {.g = g, .st = st, .e = e, .explain = st ? st->explain : NULL};
  const int64_t *rv = NULL;
  int32_t nr = vt_param_ints(p, "r", &rv);
  double inflect = vt_param_float(p, "inflect"), ratio = vt_param_float(p, "ratio");
  const char *mode = vt_param_str(p, "mode");
  int64_t prot_param = vt_param_int(p, "protected"), prop = vt_param_int(p, "prop_attn");
  int64_t sd_stride = vt_param_int(p, "sd_stride");
  if (strcmp(mode, "auto") && strcmp(mode, "tome") && strcmp(mode, "sd"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: tome: mode must be auto, tome or sd, got '%s'", mode);
  if (nr < 1) return vt_errorf(e, VT_ERR_MODEL, "--pass: tome: r needs at least one value");
  for (int32_t i = 0; i < nr; i++)
    if (rv[i] < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: tome: r values must be >= 0, got %lld", (long long)rv[i]);
  if (!(ratio >= 0 && ratio < 1)) return vt_errorf(e, VT_ERR_MODEL, "--pass: tome: ratio must be in [0,1), got %g", ratio);
  if (sd_stride < 2) return vt_errorf(e, VT_ERR_MODEL, "--pass: tome: sd_stride must be >= 2");
  if (prot_param < -1) return vt_errorf(e, VT_ERR_MODEL, "--pass: tome: protected must be >= 0 (or -1: auto)");

  vt_block *bl = NULL;
  int32_t L = 0;
  int rc = vt_find_blocks(g, &bl, &L, c.explain, e);
  if (rc) return rc;
  if (L == 0) {
    free(bl);
    explainf(&c, "no attention block recognised: nothing to merge");
    add_rule(&c, "tome-block", 0, 0);
    return VT_OK;
  }
  if (L > TOME_MAX_LAYERS) {
    free(bl);
    return vt_errorf(e, VT_ERR_MODEL, "%s: tome: %d blocks (max %d)", g->path, L, TOME_MAX_LAYERS);
  }
  /* chain of blocks and the kind of readout decide the mode */
  bool chain = true;
  for (int32_t l = 0; l < L; l++) {
    if (bl[l].mlp_add < 0 || (l > 0 && bl[l].x_in != bl[l - 1].x_out)) chain = false;
  }
  int64_t max_idx = -1;
  bool reduces = bl[L - 1].x_out >= 0 && readout_reduces(g, bl[L - 1].x_out, &max_idx);
  bool sd;
  if (!strcmp(mode, "auto")) {
    sd = !(chain && reduces);
    explainf(&c, "mode=auto chose %s: %s", sd ? "sd (merge/unmerge around attention)" : "tome (merge after attention)",
             sd ? (!chain ? "the blocks do not form one residual chain" : "the outputs are per token")
                : "the outputs read a protected token or pool over tokens");
  } else {
    sd = !strcmp(mode, "sd");
    if (!sd && !(chain && reduces)) {
      free(bl);
      return vt_errorf(e, VT_ERR_MODEL, "%s: tome: mode=tome needs one chain of residual blocks whose final tokens "
                       "are read through a token Gather or a mean over tokens (%s); use mode=sd for per-token "
                       "outputs", g->path, !chain ? "the blocks are not one chain" : "an output is per token");
    }
  }
  int64_t prot = prot_param;
  if (prot < 0) {
    prot = detect_prefix(g, bl[0].x_in);
    if (!sd && max_idx >= prot) prot = max_idx + 1;   /* the token read out must survive */
  } else if (!sd && max_idx >= prot) {
    free(bl);
    return vt_errorf(e, VT_ERR_MODEL, "%s: tome: the output reads token %lld but protected=%lld would let it merge",
                     g->path, (long long)max_idx, (long long)prot);
  }
  int64_t rl[TOME_MAX_LAYERS];
  if (nr == 1) schedule(rv[0], inflect, L, rl);
  else {
    if (nr > L) {
      free(bl);
      return vt_errorf(e, VT_ERR_MODEL, "%s: tome: r lists %d layers but the model has %d blocks", g->path, nr, L);
    }
    for (int32_t l = 0; l < L; l++) rl[l] = l < nr ? rv[l] : 0;
  }
  free(bl);
  bl = NULL;
  if (grow_marks(&c)) return oom(&c);

  int32_t sizes = -1, merged = 0;
  int64_t tok0[TOME_MAX_LAYERS], tok1[TOME_MAX_LAYERS];
  char why[512];
  for (int32_t l = 0; l < L && rc == VT_OK; l++) {
    tok0[l] = tok1[l] = -1;
    int32_t nb2 = 0;
    rc = vt_find_blocks(g, &bl, &nb2, NULL, e);
    if (rc) break;
    VT_ASSERT(nb2 == L);   /* merging never adds or removes attention blocks */
    vt_block b = bl[l];
    free(bl);
    bl = NULL;
    const vt_node *an = &g->nodes[b.attn];
    const char *aname = an->name;   /* arena string: stable */
    const vt_value *q = &g->values[an->in[0]], *kv = &g->values[an->in[1]];
    int32_t x = sd ? b.x_in : b.x_mid;
    const vt_value *xv = &g->values[x];
    if (xv->rank != 3 || q->rank != 4 || xv->dims[1] != q->dims[2] || kv->dims[2] != q->dims[2] ||
        xv->dims[0] != q->dims[0]) {
      char b1[64], b2[64], b3[64], b4[64];
      explainf(&c, "block %d (attention '%s'): the attention does not run over the stream's tokens (stream %s tokens, "
               "attention %s queries over %s keys, batch %s; windowed, folded into the batch, or a KV cache?)", l, aname,
               xv->rank == 3 ? vt_dim_str(g, xv->dims[1], b1, 64) : "?", q->rank == 4 ? vt_dim_str(g, q->dims[2], b2, 64) : "?",
               kv->rank == 4 ? vt_dim_str(g, kv->dims[2], b3, 64) : "?", q->rank == 4 ? vt_dim_str(g, q->dims[0], b4, 64) : "?");
      continue;
    }
    if ((an->n_in > 5 && an->in[5] >= 0) || (an->n_in > 6 && an->in[6] >= 0)) {
      /* its keys are a kh x kw grid (bias_rows/bias_cols): merged tokens would leave the grid */
      explainf(&c, "block %d (attention '%s'): it has a decomposed relative-position bias (bias_rows/bias_cols over a "
               "key grid that merging would break)", l, aname);
      continue;
    }
    vt_dim n = xv->dims[1];
    if (vt_dim_is_const(n)) tok0[l] = tok1[l] = n;
    /* proportional attention for blocks after a merge (tome mode) */
    if (!sd && sizes >= 0 && prop) {
      rc = add_key_bias(&c, b.attn, sizes);
      if (rc == VT_OK) rc = resort(&c);
      if (rc) break;
      /* re-sorting renumbered the nodes: find the block again */
      rc = vt_find_blocks(g, &bl, &nb2, NULL, e);
      if (rc) break;
      VT_ASSERT(nb2 == L);
      b = bl[l];
      free(bl);
      bl = NULL;
      an = &g->nodes[b.attn];
      q = &g->values[an->in[0]];
      kv = &g->values[an->in[1]];
    }
    int64_t r = sd ? (vt_dim_is_const(n) ? (int64_t)floor((double)n * ratio) : 0) : rl[l];
    int64_t stride = sd ? sd_stride : 2;
    if (vt_dim_is_const(n)) {
      int64_t ea, eb;
      eligible(n, prot, stride, &ea, &eb);
      if (!sd && r > (n - prot) / 2) r = (n - prot) / 2;   /* ToMe: at most 50% per layer */
      if (r > ea) r = ea;
      if (eb == 0) r = 0;
    } else if (sd) {
      explainf(&c, "block %d (attention '%s'): the token count is symbolic; ratio needs a constant count", l, aname);
      continue;
    }
    if (r <= 0) continue;
    /* the region that runs on fewer tokens */
    int32_t m = x, y = -1, ln = -1;
    if (sd) {
      const vt_node *add = &g->nodes[b.attn_add];
      y = add->in[0] == b.x_in ? add->in[1] : add->in[0];
      int32_t cons = 0, only = -1;
      for (int32_t i = 0; i < g->n_nodes; i++) {
        if (i == b.attn_add) continue;
        for (int32_t k = 0; k < g->nodes[i].n_in; k++)
          if (g->nodes[i].in[k] == b.x_in) { cons++; only = i; break; }
      }
      if (cons == 1 && g->nodes[only].op == VT_OP_LayerNormalization && g->nodes[only].out[0] >= 0) {
        ln = only;
        m = g->nodes[only].out[0];
      }
      mark_ancestors(&c, y);
    }
    mark_descendants(&c, m);
    c.mark[m] = 0;   /* m itself is read by the match/merge, not shortened */
    if (!region_ok(&c, m, n, sd, why, sizeof why)) {
      explainf(&c, "block %d (attention '%s'): left dense: %s", l, aname, why);
      continue;
    }
    vt_dim nm = vt_dim_sub(g, n, r);
    int32_t metric = sd ? m : an->in[1];
    int32_t plan = vt_rw_node1(g, VT_OP_TokenMatch, aname, "tome_plan", 1, &metric);
    if (plan < 0) return oom(&c);
    int32_t pn = g->values[plan].producer;
    if (!set_int(g, pn, "r", r) || !set_int(g, pn, "protected", prot) || !set_int(g, pn, "stride", stride))
      return oom(&c);
    if (!sd) {
      int32_t xm = vt_rw_new_value(g, aname, "tome_merged");
      int32_t sn = vt_rw_new_value(g, aname, "tome_sizes");
      if (xm < 0 || sn < 0) return oom(&c);
      int32_t in[3] = {x, plan, sizes}, out[2] = {xm, sn};
      int32_t mn = vt_graph_add_node(g, g->values[xm].name, VT_OP_TokenMerge, sizes >= 0 ? 3 : 2, in, 2, out);
      if (mn < 0 || !set_int(g, mn, "r", r)) return oom(&c);
      replace_uses(&c, x, xm, mn, -1, false, false);
      sizes = sn;
      if (grow_marks(&c)) return oom(&c);
      mark_descendants(&c, xm);
    } else {
      int32_t in[2] = {m, plan};
      int32_t xm = vt_rw_node1(g, VT_OP_TokenMerge, aname, "tome_merged", 2, in);
      if (xm < 0 || !set_int(g, g->values[xm].producer, "r", r)) return oom(&c);
      /* region nodes read the merged tokens (the LayerNorm stays on the full stream when m is
       * its output; when m is x_in, only the branch's readers switch) */
      int32_t mnode = g->values[xm].producer;
      for (int32_t i = 0; i < g->n_nodes; i++) {
        if (i == mnode || i == pn || i == b.attn_add || i == ln) continue;
        vt_node *nd = &g->nodes[i];
        if (!node_in_region(&c, nd, true)) continue;
        for (int32_t k = 0; k < nd->n_in; k++)
          if (nd->in[k] == m) nd->in[k] = xm;
      }
      int32_t uin[2] = {y, plan};
      int32_t yu = vt_rw_node1(g, VT_OP_TokenUnmerge, aname, "tome_unmerged", 2, uin);
      if (yu < 0) return oom(&c);
      vt_node *add = &g->nodes[b.attn_add];
      for (int32_t k = 0; k < add->n_in; k++)
        if (add->in[k] == y) add->in[k] = yu;
    }
    rc = retarget_reshapes(&c, n, nm, sd);
    if (rc) break;
    rc = resort(&c);
    if (rc) break;
    if (!sd && vt_dim_is_const(nm)) tok1[l] = nm;
    if (sd && vt_dim_is_const(nm)) tok1[l] = nm;   /* tokens inside the attention branch */
    merged++;
  }
  free(c.mark);
  free(c.anc);
  if (rc) return rc;
  vt_graph_remove_dead(g);
  /* --stats: one line per block with its token counts (the driver prints rule lines) */
  add_rule(&c, sd ? "tome-sd-blocks-merged" : "tome-blocks-merged", L, merged);
  for (int32_t l = 0; l < L; l++) {
    char buf[96];
    if (st && st->n_rules == VT_STATS_MAX_RULES - 1 && l < L - 1) {
      snprintf(buf, sizeof buf, "blocks %d..%d (not listed)", l, L - 1);
      add_rule(&c, vt_arena_strdup(&g->arena, buf), L - l, 0);
      break;
    }
    if (tok0[l] < 0) snprintf(buf, sizeof buf, "block %d tokens symbolic", l);
    else snprintf(buf, sizeof buf, "block %d %s %lld -> %lld", l, sd ? "attn tokens" : "tokens", (long long)tok0[l],
                  (long long)tok1[l]);
    add_rule(&c, vt_arena_strdup(&g->arena, buf), 1, tok1[l] != tok0[l]);
  }
  if (c.explain) {
    fprintf(c.explain, "  tome: mode=%s protected=%lld, tokens per block:", sd ? "sd" : "tome", (long long)prot);
    for (int32_t l = 0; l < L; l++) fprintf(c.explain, " %lld->%lld", (long long)tok0[l], (long long)tok1[l]);
    fprintf(c.explain, "\n");
  }
  return VT_OK;
}

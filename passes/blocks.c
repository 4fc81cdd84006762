/* blocks.c — recognition of transformer blocks around canonical ai.vtopt.Attention nodes: the
 * residual stream entering the block, the attention residual Add, the MLP residual Add, and for
 * attention over frames the (frames x tokens per frame) structure of the token count: from the
 * dims when it is F x P with F a named symbol, else (frames pinned, a constant count) from the
 * Reshape that regrouped the frames' tokens into one sequence. Read-only analysis for
 * --stats/--explain and for the token passes. */
#include "passes_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  const vt_graph *g;
  int32_t *cstart, *cons;          /* consumers of each value (CSR) */
  int32_t *mark, *amark;           /* per-node visit stamps: downstream search, ancestor search */
  int32_t stamp, astamp;
  int32_t *queue, *aqueue;
} ctx;

static int build(ctx *c, const vt_graph *g) {
  memset(c, 0, sizeof *c);
  c->g = g;
  c->cstart = calloc((size_t)g->n_values + 2, sizeof *c->cstart);
  c->mark = calloc((size_t)g->n_nodes + 1, sizeof *c->mark);
  c->queue = malloc(((size_t)g->n_nodes + 1) * sizeof *c->queue);
  c->amark = calloc((size_t)g->n_nodes + 1, sizeof *c->amark);
  c->aqueue = malloc(((size_t)g->n_nodes + 1) * sizeof *c->aqueue);
  if (!c->cstart || !c->mark || !c->queue || !c->amark || !c->aqueue) return -1;
  int64_t ne = 0;
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++)
      if (g->nodes[i].in[k] >= 0) { c->cstart[g->nodes[i].in[k] + 1]++; ne++; }
  for (int32_t v = 0; v < g->n_values; v++) c->cstart[v + 1] += c->cstart[v];
  c->cons = malloc((size_t)(ne + 1) * sizeof *c->cons);
  int32_t *fill = calloc((size_t)g->n_values + 1, sizeof *fill);
  if (!c->cons || !fill) { free(fill); return -1; }
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++) {
      int32_t v = g->nodes[i].in[k];
      if (v >= 0) c->cons[c->cstart[v] + fill[v]++] = i;
    }
  free(fill);
  return 0;
}

static void release(ctx *c) {
  free(c->cstart);
  free(c->cons);
  free(c->mark);
  free(c->queue);
  free(c->amark);
  free(c->aqueue);
}

/* Is value x an ancestor of value v (within max_nodes producer steps, BFS)? */
static bool is_ancestor(ctx *c, int32_t x, int32_t v, int32_t max_nodes) {
  if (x == v) return true;
  const vt_graph *g = c->g;
  int32_t stamp = ++c->astamp, qh = 0, qt = 0;
  int32_t p = g->values[v].producer;
  if (p < 0) return false;
  c->aqueue[qt++] = p;
  c->amark[p] = stamp;
  while (qh < qt && qh < max_nodes) {
    const vt_node *n = &g->nodes[c->aqueue[qh++]];
    for (int32_t k = 0; k < n->n_in; k++) {
      int32_t u = n->in[k];
      if (u < 0) continue;
      if (u == x) return true;
      int32_t pu = g->values[u].producer;
      if (pu >= 0 && c->amark[pu] != stamp) { c->amark[pu] = stamp; c->aqueue[qt++] = pu; }
    }
  }
  return false;
}

/* Same rank and no dim provably different (symbolic dims may be equal at run time). */
static bool same_shape(const vt_value *a, const vt_value *b) {
  if (a->rank != b->rank || a->rank < 0) return false;
  for (int32_t d = 0; d < a->rank; d++)
    if (vt_dim_is_const(a->dims[d]) && vt_dim_is_const(b->dims[d]) && a->dims[d] != b->dims[d]) return false;
  return true;
}

/* The first Add downstream of value `from` (BFS over consumers, at most max_nodes nodes, not
 * crossing another Attention) that adds a value other than its branch input satisfying
 * `residual_of`: x is an ancestor of `anchor` (attention residual), or x == anchor (MLP
 * residual). Sets *res to the residual operand. */
static int32_t find_residual_add(ctx *c, int32_t from, int32_t anchor, bool direct, int32_t max_nodes, int32_t *res) {
  const vt_graph *g = c->g;
  int32_t stamp = ++c->stamp, qh = 0, qt = 0;
  for (int32_t k = c->cstart[from]; k < c->cstart[from + 1]; k++) {
    int32_t n = c->cons[k];
    if (c->mark[n] != stamp) { c->mark[n] = stamp; c->queue[qt++] = n; }
  }
  while (qh < qt && qh < max_nodes) {
    int32_t ni = c->queue[qh++];
    const vt_node *n = &g->nodes[ni];
    if (n->op == VT_OP_Attention) continue;
    if (n->op == VT_OP_Add && n->out[0] >= 0) {
      for (int s = 0; s < 2; s++) {
        int32_t x = n->in[s], y = n->in[1 - s];
        if (x < 0 || y < 0) continue;
        /* the branch operand y descends from `from` */
        if (x == y || !is_ancestor(c, from, y, 256)) continue;
        bool ok = direct ? x == anchor : (x != from && is_ancestor(c, x, anchor, 256));
        if (ok && same_shape(&g->values[x], &g->values[n->out[0]])) { *res = x; return ni; }
      }
    }
    for (int32_t o = 0; o < n->n_out; o++) {
      int32_t v = n->out[o];
      if (v < 0) continue;
      for (int32_t k = c->cstart[v]; k < c->cstart[v + 1]; k++) {
        int32_t m = c->cons[k];
        if (c->mark[m] != stamp) { c->mark[m] = stamp; c->queue[qt++] = m; }
      }
    }
  }
  return -1;
}

/* N = F * P with F a named symbol and P a constant: attention over F frames of P tokens. */
static void frame_structure(const vt_graph *g, vt_dim n, vt_dim *frames, int64_t *per_frame) {
  *frames = 0;
  *per_frame = 0;
  if (vt_dim_is_const(n)) return;
  int32_t s = vt_dim_sym(n);
  if (s < 0 || s >= g->n_syms || g->syms[s].kind != VT_SYM_MUL) return;
  vt_dim a = g->syms[s].a, b = g->syms[s].b;
  if (vt_dim_is_const(a) && !vt_dim_is_const(b)) { vt_dim t = a; a = b; b = t; }
  if (!vt_dim_is_const(a) && vt_dim_is_const(b) && b > 1) {
    *frames = a;
    *per_frame = b;
  }
}

/* Frames pinned: the token count N is a constant, so the structure comes from the graph. The
 * nearest Reshape above Q (BFS over producers, at most 64 nodes, not crossing another Attention)
 * whose output has a dim N and whose input has a dim P at the same distance from the end, with
 * the dims after them (at least one: the channels) equal, P >= 2, P | N and N >= 2P: it joined rows of P tokens into
 * one sequence of N, e.g. [B*T, P, C] -> [B, T*P, C] between VGGT's frame and global blocks.
 * (The opposite split, [B, T*P, C] -> [B*T, P, C] above frame attention, has P > N: no match.)
 * A plain 2-D grid reshape [B, H, W, C] -> [B, H*W, C] looks the same, so P must also be the
 * query count of some attention of the model (frame attention over each frame's P tokens).
 * Returns P, or 0. */
static bool attends_over(const vt_graph *g, int64_t P) {
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    if (n->op != VT_OP_Attention || n->in[0] < 0) continue;
    const vt_value *q = &g->values[n->in[0]];
    if (q->rank == 4 && q->dims[2] == P) return true;
  }
  return false;
}

static int64_t pinned_frames(ctx *c, int32_t q, int64_t N) {
  const vt_graph *g = c->g;
  int32_t stamp = ++c->astamp, qh = 0, qt = 0;
  int32_t p = g->values[q].producer;
  if (p < 0 || N < 2) return 0;
  c->aqueue[qt++] = p;
  c->amark[p] = stamp;
  while (qh < qt && qh < 64) {
    const vt_node *n = &g->nodes[c->aqueue[qh++]];
    if (n->op == VT_OP_Reshape && n->in[0] >= 0 && n->out[0] >= 0) {
      const vt_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
      for (int32_t k = 0; k < y->rank; k++) {
        int32_t tail = y->rank - 1 - k, e = x->rank - 1 - tail;
        if (y->dims[k] != N || e < 0 || tail < 1) continue;
        bool same = vt_dim_is_const(x->dims[e]);
        for (int32_t t = 1; same && t <= tail; t++) same = x->dims[e + t] == y->dims[k + t] && vt_dim_is_const(x->dims[e + t]);
        int64_t P = same ? x->dims[e] : 0;
        if (P >= 2 && P <= N / 2 && N % P == 0 && attends_over(g, P)) return P;
      }
    }
    for (int32_t k = 0; k < n->n_in; k++) {
      int32_t u = n->in[k];
      if (u < 0) continue;
      int32_t pu = g->values[u].producer;
      if (pu >= 0 && c->amark[pu] != stamp && g->nodes[pu].op != VT_OP_Attention) {
        c->amark[pu] = stamp;
        c->aqueue[qt++] = pu;
      }
    }
  }
  return 0;
}

int vt_find_blocks(const vt_graph *g, vt_block **out, int32_t *n_out, FILE *explain, vt_error *e) {
  *out = NULL;
  *n_out = 0;
  ctx c;
  if (build(&c, g)) {
    release(&c);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory finding blocks", g->path);
  }
  int32_t cap = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) cap += g->nodes[i].op == VT_OP_Attention;
  vt_block *b = calloc((size_t)cap + 1, sizeof *b);
  if (!b) {
    release(&c);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory finding blocks", g->path);
  }
  int32_t nb = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *a = &g->nodes[i];
    if (a->op != VT_OP_Attention || a->out[0] < 0) continue;
    vt_block *bl = &b[nb];
    memset(bl, 0, sizeof *bl);
    bl->attn = i;
    bl->mlp_add = -1;
    bl->x_out = -1;
    const vt_value *q = &g->values[a->in[0]];
    if (q->rank == 4) frame_structure(g, q->dims[2], &bl->frames, &bl->tokens_per_frame);
    if (q->rank == 4 && vt_dim_is_const(q->dims[2])) {
      bl->tokens_per_frame = pinned_frames(&c, a->in[0], q->dims[2]);
      if (bl->tokens_per_frame > 0) bl->frames = q->dims[2] / bl->tokens_per_frame;
    }
    int32_t x_in = -1;
    int32_t add = find_residual_add(&c, a->out[0], a->in[0], false, 64, &x_in);
    if (add < 0) {
      if (explain)
        fprintf(explain, "  blocks: attention '%s': no residual Add (x + f(attention), x an ancestor of Q) "
                         "within 64 nodes downstream\n", a->name);
      continue;
    }
    bl->x_in = x_in;
    bl->attn_add = add;
    bl->x_mid = g->nodes[add].out[0];
    int32_t res = -1;
    int32_t add2 = find_residual_add(&c, bl->x_mid, bl->x_mid, true, 96, &res);
    if (add2 >= 0) {
      bl->mlp_add = add2;
      bl->x_out = g->nodes[add2].out[0];
    } else if (explain) {
      fprintf(explain, "  blocks: attention '%s': residual '%s' found, but no MLP residual Add after it\n", a->name,
              g->nodes[add].name);
    }
    nb++;
  }
  release(&c);
  *out = b;
  *n_out = nb;
  return VT_OK;
}

void vt_print_blocks(const vt_graph *g, const vt_block *b, int32_t n, FILE *f) {
  for (int32_t i = 0; i < n; i++) {
    char fb[96];
    fprintf(f, "  block %d: attention '%s', stream in '%s', attention residual '%s', MLP residual '%s'", i,
            g->nodes[b[i].attn].name, g->values[b[i].x_in].name, g->nodes[b[i].attn_add].name,
            b[i].mlp_add >= 0 ? g->nodes[b[i].mlp_add].name : "-");
    if (b[i].tokens_per_frame > 0)
      fprintf(f, ", tokens = %s frames x %lld", vt_dim_str(g, b[i].frames, fb, sizeof fb), (long long)b[i].tokens_per_frame);
    fprintf(f, "\n");
  }
}

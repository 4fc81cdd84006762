/* topk.c — the `topk` pass: Shiva-DiT residual top-k routing (methods.md section 4) on the
 * recognised residual blocks (passes/blocks.c) of a DiT. For every block l >= 1 (block 0 always
 * runs full) with input x [B,N,D] and output x_out:
 *   s    = router(x, c, l)                    (policy router; c: the adaLN conditioning vector)
 *   idx  = ai.vtopt.TopKSelect(s, t, table_t, table_k[:, l])       [B,K], k per step at run time
 *   xg   = ai.vtopt.RouteGather(x, idx)                             [B,K,D]
 *   ...the whole block (attention among the K tokens, MLP) reads xg instead of x...
 *   out  = ai.vtopt.RouteScatter(x, idx, x_out')                    the rest bypass the block
 * router(x, c, l) = MatMul(LayerNorm(SiLU(x Wx + (c Wc + el_l))), w) with Wx, Wc, w shared by
 * the pair of blocks (2p+1, 2p+2) and el_l per block (plain ONNX ops: the code generator fuses
 * them like any other GEMM/LayerNorm chain). policy random selects k random tokens; policy oracle
 * keeps the dense block and selects by the true relative update ||x_out - x||^2 / ||x||^2 (the
 * ceiling a router can reach; no speed-up). t: the graph's rank-1 f32 input with the stream's
 * batch dim (a DiT's timestep), which picks the table row nearest it; the knob topk.step picks a
 * row directly. Blocks whose region reads N-token tensors from outside (position tables, masks,
 * rotary tables) or whose Reshape targets are constants naming N stay dense (--explain). */
#include "passes_internal.h"
#include "topk.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  vt_graph *g;
  vt_error *e;
  FILE *explain;
  uint8_t *desc, *anc;
  int32_t nvals;
} kctx;

static void explainf(kctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void explainf(kctx *c, const char *fmt, ...) {
  if (!c->explain) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(c->explain, "  topk: ");
  vfprintf(c->explain, fmt, ap);
  fprintf(c->explain, "\n");
  va_end(ap);
}

static int oom(kctx *c) { return vt_errorf(c->e, VT_ERR_MODEL, "%s: topk: out of memory", c->g->path); }

static int marks(kctx *c, int32_t from, int32_t to) {
  const vt_graph *g = c->g;
  if (c->nvals < g->n_values) {
    free(c->desc);
    free(c->anc);
    c->nvals = g->n_values + 256;
    c->desc = malloc((size_t)c->nvals);
    c->anc = malloc((size_t)c->nvals);
    if (!c->desc || !c->anc) return -1;
  }
  memset(c->desc, 0, (size_t)c->nvals);
  memset(c->anc, 0, (size_t)c->nvals);
  c->desc[from] = 1;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    bool hit = false;
    for (int32_t k = 0; k < n->n_in && !hit; k++) hit = n->in[k] >= 0 && c->desc[n->in[k]];
    for (int32_t o = 0; hit && o < n->n_out; o++)
      if (n->out[o] >= 0) c->desc[n->out[o]] = 1;
  }
  c->desc[from] = 0;   /* x itself is not computed by the block */
  c->anc[to] = 1;
  for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
    const vt_node *n = &g->nodes[i];
    bool hit = false;
    for (int32_t o = 0; o < n->n_out && !hit; o++) hit = n->out[o] >= 0 && c->anc[n->out[o]];
    for (int32_t k = 0; hit && k < n->n_in; k++)
      if (n->in[k] >= 0) c->anc[n->in[k]] = 1;
  }
  return 0;
}

/* a node of the block: it computes a value between x (exclusive) and x_out (inclusive) */
static bool in_block(const kctx *c, const vt_node *n) {
  for (int32_t o = 0; o < n->n_out; o++) {
    int32_t v = n->out[o];
    if (v >= 0 && v < c->nvals && c->desc[v] && c->anc[v]) return true;
  }
  return false;
}

/* Can the block run on K < N tokens? Fails with the node and reason. */
static bool block_ok(kctx *c, int32_t x, int64_t N, char *why, size_t wn) {
  const vt_graph *g = c->g;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *nd = &g->nodes[i];
    if (!in_block(c, nd)) continue;
    for (int32_t k = 0; k < nd->n_in; k++) {
      int32_t u = nd->in[k];
      if (u < 0 || u == x || (u < c->nvals && c->desc[u])) continue;
      const vt_value *uv = &g->values[u];
      if (nd->op == VT_OP_Reshape && k == 1) {
        const vt_value *dv = &g->values[nd->in[0]];
        bool has = false, neg;
        for (int32_t d = 0; d < dv->rank; d++) has |= dv->dims[d] == N;
        if (!has) continue;
        vt_rw_ints tv;
        vt_rw_int_contents(uv, &tv);
        int cnt = vt_rw_count_dim(&tv, N, &neg);
        if (tv.n == 0 || (cnt > 0 && vt_rw_token_pos(dv, &tv, N) < 0) || (cnt == 0 && !neg)) {
          snprintf(why, wn, "Reshape '%s': its target %s the token count %lld", nd->name,
                   tv.n == 0 ? "is unknown, so it may not name" : "does not name unambiguously", (long long)N);
          return false;
        }
        continue;
      }
      if (vt_dtype_is_float(uv->dtype) && uv->rank >= 2 && uv->dims[uv->rank - 2] == N) {
        snprintf(why, wn, "node '%s' reads '%s' with %lld tokens from outside the block (a position, rotary or mask "
                 "table: not gathered)", nd->name, uv->name, (long long)N);
        return false;
      }
    }
  }
  return true;
}

/* The conditioning vector of the block: a rank-2 f32 value [B, Dc] (B the stream's batch) that
 * feeds a Sigmoid (adaLN's SiLU), is an ancestor of x_out and does not depend on x. -1: none. */
static int32_t find_cond(kctx *c, int32_t x) {
  const vt_graph *g = c->g;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    if (n->op != VT_OP_Sigmoid || n->in[0] < 0) continue;
    int32_t v = n->in[0];
    const vt_value *vv = &g->values[v];
    if (vv->rank == 2 && vv->dtype == VT_F32 && !(vv->flags & VT_VAL_CONST) && vv->dims[0] == g->values[x].dims[0] &&
        v < c->nvals && c->anc[v] && !c->desc[v])
      return v;
  }
  return -1;
}

static int32_t find_timestep(const vt_graph *g, int32_t x) {
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    if (v->rank == 1 && v->dtype == VT_F32 && v->dims[0] == g->values[x].dims[0]) return g->inputs[i];
  }
  return -1;
}

static int32_t const_f32(vt_graph *g, const char *base, const char *suffix, const float *vals, int32_t rank,
                         const int64_t *dims) {
  const char *name = vt_rw_fresh_name(g, base, suffix);
  int64_t n = 1;
  for (int32_t d = 0; d < rank; d++) n *= dims[d];
  float *data = vt_arena_alloc(&g->arena, (size_t)(n ? n : 1) * sizeof *data);
  if (!name || !data) return -1;
  if (vals) memcpy(data, vals, (size_t)n * sizeof *data);
  vt_tensor t = {.dtype = VT_F32, .rank = rank, .data = data};
  for (int32_t d = 0; d < rank; d++) t.dims[d] = dims[d];
  return vt_graph_add_const(g, name, &t);
}

static int32_t node2(vt_graph *g, int op, const char *base, const char *suffix, int32_t a, int32_t b) {
  int32_t in[2] = {a, b};
  return vt_rw_node1(g, op, base, suffix, b >= 0 ? 2 : 1, in);
}

/* The router's scores [B,N] for block l (ONNX ops, constants from r). */
static int32_t build_router(kctx *c, const vt_topk_routers *r, int32_t l, int32_t x, int32_t cond, const char *base) {
  vt_graph *g = c->g;
  int32_t p = vt_topk_pair(l), H = r->H;
  int64_t dx[2] = {r->D, H}, dh[1] = {H}, dc[2] = {r->Dc, H};
  int32_t wx = const_f32(g, base, "topk_router_wx", r->wx + (size_t)p * r->D * H, 2, dx);
  int32_t el = const_f32(g, base, "topk_router_layer", r->el + (size_t)l * H, 1, dh);
  int32_t w = const_f32(g, base, "topk_router_w", r->w + (size_t)p * H, 1, dh);
  if (wx < 0 || el < 0 || w < 0) return -1;
  int32_t h = node2(g, VT_OP_MatMul, base, "topk_router_hx", x, wx);
  if (h < 0) return -1;
  int32_t ctx = el;
  if (cond >= 0 && r->wc) {
    int32_t wc = const_f32(g, base, "topk_router_wc", r->wc + (size_t)p * r->Dc * H, 2, dc);
    int32_t hc = wc < 0 ? -1 : node2(g, VT_OP_MatMul, base, "topk_router_hc", cond, wc);
    int32_t hcl = hc < 0 ? -1 : node2(g, VT_OP_Add, base, "topk_router_ctx", hc, el);
    ctx = hcl < 0 ? -1 : vt_rw_unsqueeze(g, hcl, 1, base, "topk_router_ctx3");
    if (ctx < 0) return -1;
  }
  int32_t a = node2(g, VT_OP_Add, base, "topk_router_pre", h, ctx);
  int32_t sg = a < 0 ? -1 : node2(g, VT_OP_Sigmoid, base, "topk_router_sigmoid", a, -1);
  int32_t si = sg < 0 ? -1 : node2(g, VT_OP_Mul, base, "topk_router_silu", a, sg);
  if (si < 0) return -1;
  float *ones = malloc((size_t)H * sizeof *ones);
  if (!ones) return -1;
  for (int32_t i = 0; i < H; i++) ones[i] = 1.0f;
  int32_t gam = const_f32(g, base, "topk_router_ln_scale", ones, 1, dh);
  free(ones);
  int32_t bet = const_f32(g, base, "topk_router_ln_bias", NULL, 1, dh);
  if (gam < 0 || bet < 0) return -1;
  int32_t lin[3] = {si, gam, bet};
  int32_t ln = vt_rw_node1(g, VT_OP_LayerNormalization, base, "topk_router_ln", 3, lin);
  if (ln < 0) return -1;
  vt_attr *ax = vt_node_add_attr(g, g->values[ln].producer, "axis", VT_ATTR_INT);
  if (!ax) return -1;
  ax->i = -1;
  vt_attr *ep = vt_node_add_attr(g, g->values[ln].producer, "epsilon", VT_ATTR_FLOAT);
  if (!ep) return -1;
  ep->f = 1e-5f;
  return node2(g, VT_OP_MatMul, base, "topk_router_score", ln, w);
}

/* ||x_out - x||^2 / (||x||^2 + eps) per token [B,N] (policy oracle). */
static int32_t build_oracle(kctx *c, int32_t x, int32_t xo, int64_t D, const char *base) {
  vt_graph *g = c->g;
  float *ones = malloc((size_t)D * sizeof *ones);
  if (!ones) return -1;
  for (int64_t i = 0; i < D; i++) ones[i] = 1.0f;
  int64_t dd[1] = {D}, d1[1] = {1};
  int32_t on = const_f32(g, base, "topk_oracle_ones", ones, 1, dd);
  free(ones);
  float epsv = 1e-12f;
  int32_t eps = const_f32(g, base, "topk_oracle_eps", &epsv, 1, d1);
  if (on < 0 || eps < 0) return -1;
  int32_t d = node2(g, VT_OP_Sub, base, "topk_oracle_delta", xo, x);
  int32_t d2 = d < 0 ? -1 : node2(g, VT_OP_Mul, base, "topk_oracle_delta2", d, d);
  int32_t n2 = d2 < 0 ? -1 : node2(g, VT_OP_MatMul, base, "topk_oracle_update", d2, on);
  int32_t x2 = n2 < 0 ? -1 : node2(g, VT_OP_Mul, base, "topk_oracle_x2", x, x);
  int32_t xn = x2 < 0 ? -1 : node2(g, VT_OP_MatMul, base, "topk_oracle_norm", x2, on);
  int32_t xe = xn < 0 ? -1 : node2(g, VT_OP_Add, base, "topk_oracle_norm_eps", xn, eps);
  return xe < 0 ? -1 : node2(g, VT_OP_Div, base, "topk_oracle_score", n2, xe);
}

int vt_topk_block_values(const vt_graph *g, int32_t *L, int32_t *x_in, int32_t *x_out, int32_t *cond, vt_error *e) {
  vt_block *bl = NULL;
  int32_t n = 0;
  int rc = vt_find_blocks(g, &bl, &n, NULL, e);
  if (rc) return rc;
  if (n > VT_TOPK_MAX_LAYERS) n = VT_TOPK_MAX_LAYERS;
  kctx c = {.g = (vt_graph *)g, .e = e};
  for (int32_t l = 0; l < n && rc == VT_OK; l++) {
    x_in[l] = bl[l].x_in;
    x_out[l] = bl[l].x_out;
    cond[l] = -1;
    if (bl[l].x_out < 0) continue;
    if (marks(&c, bl[l].x_in, bl[l].x_out)) rc = oom(&c);
    else cond[l] = find_cond(&c, bl[l].x_in);
  }
  free(c.desc);
  free(c.anc);
  free(bl);
  *L = n;
  return rc;
}

static void add_rule(vt_pass_stats *st, const char *name, int64_t cand, int64_t match) {
  if (!st || st->n_rules >= VT_STATS_MAX_RULES) return;
  st->rules[st->n_rules].name = name;
  st->rules[st->n_rules].candidates = cand;
  st->rules[st->n_rules].matches = match;
  st->n_rules++;
}

static bool param_set(const vt_pass_params *p, const char *name) {
  for (int i = 0; p->pass && i < p->pass->n_params; i++)
    if (!strcmp(p->pass->params[i].name, name)) return p->v[i].set;
  return false;
}

int vt_pass_topk(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e) {
  kctx c = {.g = g, .e = e, .explain = st ? st->explain : NULL};
  double R = vt_param_float(p, "R");
  int64_t kfix = vt_param_int(p, "k"), S = vt_param_int(p, "steps"), cfg = vt_param_int(p, "cfg");
  int64_t seed = vt_param_int(p, "seed");
  const char *sched = vt_param_str(p, "schedule"), *pol = vt_param_str(p, "policy"), *rpath = vt_param_str(p, "routers");
  if (!(R > 0 && R <= 1)) return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: R must be in (0,1], got %g", R);
  if (kfix < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: k must be >= 0, got %lld", (long long)kfix);
  if (S < 1 || S > VT_TOPK_MAX_STEPS)
    return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: steps must be in [1,%d], got %lld", VT_TOPK_MAX_STEPS, (long long)S);
  if (strcmp(sched, "paper") && strcmp(sched, "flat") && strcmp(sched, "measured"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: schedule must be paper, flat or measured, got '%s'", sched);
  if (!strcmp(sched, "measured") && (!rpath[0] || param_set(p, "R") || param_set(p, "k")))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: schedule=measured is the table `vtopt calibrate --pass=topk:"
                     "schedule=measured` writes: give routers=FILE without R or k");
  bool router = !strcmp(pol, "router"), oracle = !strcmp(pol, "oracle");
  if (!router && !oracle && strcmp(pol, "random"))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: policy must be router, random or oracle, got '%s'", pol);
  if (router && !rpath[0])
    return vt_errorf(e, VT_ERR_MODEL, "--pass: topk: policy=router needs routers=FILE (make one with `vtopt calibrate "
                     "MODEL.onnx --pass=topk --data CALIB -o routers.npz`), or use policy=random/oracle");
  vt_topk_routers r = {0};
  if (rpath[0]) {
    int rc = vt_topk_routers_load(rpath, &r, e);
    if (rc) return rc;
  }
  vt_block *bl = NULL;
  int32_t L = 0;
  int rc = vt_find_blocks(g, &bl, &L, c.explain, e);
  if (rc) { vt_topk_routers_free(&r); return rc; }
  if (L < 2 || L > VT_TOPK_MAX_LAYERS) {
    free(bl);
    vt_topk_routers_free(&r);
    explainf(&c, "%d attention blocks recognised: nothing to route (block 0 always runs full)", L);
    add_rule(st, "topk-blocks-routed", L, 0);
    return VT_OK;
  }
  int64_t N = -1, D = -1;
  if (bl[0].x_in >= 0 && g->values[bl[0].x_in].rank == 3) {
    N = g->values[bl[0].x_in].dims[1];
    D = g->values[bl[0].x_in].dims[2];
  }
  free(bl);
  bl = NULL;
  if (!vt_dim_is_const(N) || N < 1 || !vt_dim_is_const(D)) {
    vt_topk_routers_free(&r);
    return vt_errorf(e, VT_ERR_MODEL, "%s: topk: the blocks' token count is not a constant [B,N,D] (the table needs N)",
                     g->path);
  }
  if (rpath[0] && (r.L != L || r.D != D || r.N != N)) {
    int rc2 = vt_errorf(e, VT_ERR_MODEL, "%s: routers file is for another model: %d blocks of %d x %lld tokens, "
                        "this model (%s) has %d blocks of %lld x %lld", rpath, r.L, r.D, (long long)r.N, g->path, L,
                        (long long)D, (long long)N);
    vt_topk_routers_free(&r);
    return rc2;
  }
  /* the retention table: the routers file's, unless R or k is given (or no file) */
  bool own_table = !rpath[0] || param_set(p, "R") || param_set(p, "k");
  int32_t TS = own_table ? (int32_t)S : r.S;
  float *tt = malloc((size_t)TS * sizeof *tt);
  int64_t *tk = malloc((size_t)TS * L * sizeof *tk);
  if (!tt || !tk) { free(tt); free(tk); vt_topk_routers_free(&r); return oom(&c); }
  if (own_table) vt_topk_table(TS, L, N, R, strcmp(sched, "flat") ? 0.75 : 0.0, kfix, tt, tk);
  else {
    memcpy(tt, r.table_t, (size_t)TS * sizeof *tt);
    memcpy(tk, r.table_k, (size_t)TS * L * sizeof *tk);
  }
  if (!vt_param_int(p, "per_step"))   /* one constant k per block: the mean of its column */
    for (int32_t l = 0; l < L; l++) {
      double m = 0;
      for (int32_t s = 0; s < TS; s++) m += (double)tk[(size_t)s * L + l];
      int64_t kk = (int64_t)nearbyint(m / TS);
      for (int32_t s = 0; s < TS; s++) tk[(size_t)s * L + l] = kk < 1 ? 1 : kk > N ? N : kk;
    }
  if (c.explain) {
    fprintf(c.explain, "  topk: policy=%s, retention table (%s; rows = sampling steps by timestep, columns = blocks):\n",
            pol, own_table ? (kfix > 0 ? "k fixed" : "from R") : rpath);
    for (int32_t s = 0; s < TS; s++) {
      fprintf(c.explain, "    t=%4.0f:", tt[s]);
      for (int32_t l = 0; l < L; l++) fprintf(c.explain, " %lld", (long long)tk[(size_t)s * L + l]);
      fprintf(c.explain, "\n");
    }
  }
  int32_t routed = 0;
  int64_t ksum[VT_TOPK_MAX_LAYERS] = {0};
  char why[512];
  for (int32_t l = 1; l < L && rc == VT_OK; l++) {
    int32_t nb = 0;
    rc = vt_find_blocks(g, &bl, &nb, NULL, e);
    if (rc) break;
    VT_ASSERT(nb == L);
    vt_block b = bl[l];
    free(bl);
    bl = NULL;
    const char *aname = g->nodes[b.attn].name;
    for (int32_t s = 0; s < TS; s++) ksum[l] += tk[(size_t)s * L + l];
    if (b.mlp_add < 0 || b.x_out < 0) {
      explainf(&c, "block %d (attention '%s'): no MLP residual: left dense", l, aname);
      ksum[l] = N * TS;
      continue;
    }
    const vt_value *xv = &g->values[b.x_in];
    if (xv->rank != 3 || xv->dims[1] != N || xv->dims[2] != D) {
      explainf(&c, "block %d (attention '%s'): its stream is not [B,%lld,%lld]: left dense", l, aname, (long long)N,
               (long long)D);
      ksum[l] = N * TS;
      continue;
    }
    if (marks(&c, b.x_in, b.x_out)) { rc = oom(&c); break; }
    if (!oracle && !block_ok(&c, b.x_in, N, why, sizeof why)) {
      explainf(&c, "block %d (attention '%s'): left dense: %s", l, aname, why);
      ksum[l] = N * TS;
      continue;
    }
    int32_t x = b.x_in, xo = b.x_out;
    int32_t cond = find_cond(&c, x), tin = find_timestep(g, x);
    int32_t score = -1;
    if (router) score = build_router(&c, &r, l, x, cond, aname);
    else if (oracle) score = build_oracle(&c, x, xo, D, aname);
    else score = x;
    if (score < 0) { rc = oom(&c); break; }
    int64_t dS[1] = {TS};
    int32_t ttv = const_f32(g, aname, "topk_table_t", tt, 1, dS);
    int64_t *col = malloc((size_t)TS * sizeof *col);
    if (!col) { rc = oom(&c); break; }
    for (int32_t s = 0; s < TS; s++) col[s] = tk[(size_t)s * L + l];
    int32_t tkv = vt_rw_const_i64(g, aname, "topk_table_k", col, TS);
    free(col);
    if (ttv < 0 || tkv < 0) { rc = oom(&c); break; }
    int32_t sin[4] = {score, tin, ttv, tkv};
    int32_t idx = vt_rw_node1(g, VT_OP_TopKSelect, aname, "topk_idx", 4, sin);
    if (idx < 0) { rc = oom(&c); break; }
    int32_t sn = g->values[idx].producer;
    /* one attribute at a time: adding one may move the node's attribute array */
    vt_attr *ap = vt_node_add_attr(g, sn, "policy", VT_ATTR_STRING);
    if (!ap || !(ap->s = vt_arena_strdup(&g->arena, router || oracle ? "score" : "random"))) { rc = oom(&c); break; }
    ap->s_len = strlen(ap->s);
    vt_attr *ac = vt_node_add_attr(g, sn, "cfg", VT_ATTR_INT);
    if (!ac) { rc = oom(&c); break; }
    ac->i = cfg;
    vt_attr *as = vt_node_add_attr(g, sn, "seed", VT_ATTR_INT);
    if (!as) { rc = oom(&c); break; }
    as->i = seed + l;
    int32_t out;
    if (oracle) {
      int32_t gin[2] = {xo, idx};
      int32_t yg = vt_rw_node1(g, VT_OP_RouteGather, aname, "topk_updated", 2, gin);
      int32_t scin[3] = {x, idx, yg};
      out = yg < 0 ? -1 : vt_rw_node1(g, VT_OP_RouteScatter, aname, "topk_out", 3, scin);
      if (out < 0) { rc = oom(&c); break; }
      int32_t keep_a = g->values[yg].producer, keep_b = g->values[score].producer;
      /* readers of x_out after the block read the scattered stream (not the oracle's own Sub) */
      for (int32_t i = 0; i < g->n_nodes; i++) {
        if (i == keep_a || i == keep_b) continue;
        vt_node *nd = &g->nodes[i];
        if (nd->op == VT_OP_Sub && nd->n_in == 2 && nd->in[0] == xo && nd->in[1] == x) continue;
        for (int32_t k = 0; k < nd->n_in; k++)
          if (nd->in[k] == xo) nd->in[k] = out;
      }
    } else {
      int32_t gin[2] = {x, idx};
      int32_t xg = vt_rw_node1(g, VT_OP_RouteGather, aname, "topk_gathered", 2, gin);
      if (xg < 0) { rc = oom(&c); break; }
      /* the block's nodes read the gathered tokens (marks cover only values older than xg), and
       * its Reshape targets name K instead of N (a constant when every row keeps the same k) */
      vt_dim kdim = tk[l];
      for (int32_t s = 1; s < TS; s++)
        if (tk[(size_t)s * L + l] != kdim) kdim = vt_sym_dim(0);
      int32_t nn = g->n_nodes;
      for (int32_t i = 0; i < nn; i++) {
        vt_node *nd = &g->nodes[i];
        if (!in_block(&c, nd)) continue;
        for (int32_t k = 0; k < nd->n_in; k++)
          if (nd->in[k] == x) nd->in[k] = xg;
        if (nd->op == VT_OP_Reshape && vt_rw_retarget_reshape(g, i, N, kdim, "topk")) { rc = oom(&c); break; }
      }
      if (rc) break;
      int32_t scin[3] = {x, idx, xo};
      out = vt_rw_node1(g, VT_OP_RouteScatter, aname, "topk_out", 3, scin);
      if (out < 0) { rc = oom(&c); break; }
      int32_t scn = g->values[out].producer;
      for (int32_t i = 0; i < g->n_nodes; i++) {
        if (i == scn) continue;
        vt_node *nd = &g->nodes[i];
        for (int32_t k = 0; k < nd->n_in; k++)
          if (nd->in[k] == xo) nd->in[k] = out;
      }
    }
    for (int32_t o = 0; o < g->n_outputs; o++)
      if (g->outputs[o] == xo) {
        rc = vt_errorf(e, VT_ERR_MODEL, "%s: topk: block %d's output '%s' is a graph output", g->path, l, g->values[xo].name);
      }
    if (rc) break;
    rc = vt_graph_toposort(g, e);
    if (rc == VT_OK) rc = vt_graph_infer(g, e);
    if (rc) break;
    routed++;
  }
  free(c.desc);
  free(c.anc);
  vt_topk_routers_free(&r);
  free(tt);
  free(tk);
  if (rc) return rc;
  vt_graph_remove_dead(g);
  add_rule(st, "topk-blocks-routed", L - 1, routed);
  for (int32_t l = 0; l < L; l++) {
    char buf[96];
    if (st && st->n_rules >= VT_STATS_MAX_RULES - 1) break;
    double mean = l == 0 ? (double)N : (double)ksum[l] / TS;
    snprintf(buf, sizeof buf, "block %d tokens %lld -> %.1f (mean over steps)", l, (long long)N, mean);
    add_rule(st, vt_arena_strdup(&g->arena, buf), 1, mean < N);
  }
  return VT_OK;
}

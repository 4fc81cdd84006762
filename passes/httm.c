/* httm.c — the httm pass (approximate): head-wise temporal token merging (HTTM, arXiv 2511.21317)
 * for the global attention of video transformers. Every canonical ai.vtopt.Attention whose query
 * count is T frames x P tokens (vt_find_blocks' frame structure) becomes one
 * ai.vtopt.HeadwiseMergedAttention (ir/ops_httm.def; reference kernel runtime/kernels_httm.c),
 * which reorders, matches and merges Q and K/V per head, attends on the merged tokens and
 * unmerges the output per head. Frame attention (N = P constant) is left dense. Also the FLOPs
 * estimate of the merged op for --stats. */
#include "httm.h"
#include "passes_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool set_f(vt_graph *g, int32_t node, const char *name, double x) {
  vt_attr *a = vt_node_add_attr(g, node, name, VT_ATTR_FLOAT);
  if (!a) return false;
  a->f = (float)x;
  return true;
}
static bool set_i(vt_graph *g, int32_t node, const char *name, int64_t x) {
  vt_attr *a = vt_node_add_attr(g, node, name, VT_ATTR_INT);
  if (!a) return false;
  a->i = x;
  return true;
}

int vt_pass_httm(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e) {
  double q_keep = vt_param_float(p, "q_keep"), kv_keep = vt_param_float(p, "kv_keep");
  double outlier = vt_param_float(p, "outlier");
  int64_t n_s = vt_param_int(p, "n_s"), n_t = vt_param_int(p, "n_t"), prot = vt_param_int(p, "protected");
  int64_t user_p = vt_param_int(p, "tokens_per_frame");
  int64_t anchor = vt_param_int(p, "anchor"), shared = vt_param_int(p, "shared"), prop = vt_param_int(p, "prop_attn");
  if (!(q_keep > 0 && q_keep <= 1) || !(kv_keep > 0 && kv_keep <= 1))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: q_keep (%g) and kv_keep (%g) must be in (0, 1]", q_keep, kv_keep);
  if (!(outlier >= 0 && outlier < 1)) return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: outlier (%g) must be in [0, 1)", outlier);
  if (q_keep < 1 && !shared && outlier >= q_keep)
    return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: outlier (%g) must be below q_keep (%g): the restored outliers are part of the kept queries",
                     outlier, q_keep);
  if (n_s < 1 || n_t < 1) return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: n_s and n_t must be >= 1");
  if (user_p < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: tokens_per_frame must be >= 0");
  if (prot < 0) return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: protected must be >= 0");
  if ((anchor != 0 && anchor != 1) || (shared != 0 && shared != 1) || (prop != 0 && prop != 1))
    return vt_errorf(e, VT_ERR_MODEL, "--pass: httm: anchor, shared and prop_attn must be 0 or 1");

  vt_block *b = NULL;
  int32_t nb = 0;
  int rc = vt_find_blocks(g, &b, &nb, NULL, e);
  if (rc) return rc;
  int64_t cand = 0, done = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].op != VT_OP_Attention) continue;
    cand++;
    const vt_block *bl = NULL;
    for (int32_t j = 0; j < nb; j++) if (b[j].attn == i) bl = &b[j];
    vt_node *n = &g->nodes[i];
    const char *why = NULL;
    char fb[96];
    const vt_value *q = &g->values[n->in[0]], *k = &g->values[n->in[1]];
    int64_t P = bl ? bl->tokens_per_frame : 0;
    bool pinned = false;
    if (bl && P <= 0 && user_p > 0 && q->rank == 4 && vt_dim_is_const(q->dims[2]) && q->dims[2] >= 2 * user_p &&
        q->dims[2] % user_p == 0) {
      P = user_p;
      pinned = true;
    }
    if (!bl)
      why = "no residual block around it";
    else if (P <= 0)
      why = user_p > 0 ? "not attention over frames (its token count is not T x P, nor a constant multiple >= 2 of tokens_per_frame)"
                       : "not attention over frames (its token count is not T x P with T a named dim and P a constant, "
                         "and no Reshape of rows of P tokens into the sequence (e.g. [B*T, P, C] -> [B, T*P, C]) is "
                         "found above it; tokens_per_frame=P gives P)";
    else if ((n->n_in > 3 && n->in[3] >= 0) || (n->n_in > 4 && n->in[4] >= 0))
      why = "it has a mask or key bias (not supported by HeadwiseMergedAttention)";
    else if ((n->n_in > 5 && n->in[5] >= 0) || (n->n_in > 6 && n->in[6] >= 0))
      why = "it has a decomposed relative-position bias (bias_rows/bias_cols: not supported by HeadwiseMergedAttention)";
    else if (vt_attr_int(n, "causal", 0) != 0)
      why = "it is causal";
    else if (q->rank != 4 || k->rank != 4 || q->dims[1] != k->dims[1])
      why = "K/V heads differ from Q heads (GQA) or ranks are not 4";
    else if (q->dims[2] != k->dims[2])
      why = "not self-attention (key count differs from query count)";
    if (why) {
      if (st->explain) fprintf(st->explain, "  httm: attention '%s': %s\n", n->name, why);
      continue;
    }
    float scale = vt_attr_float(n, "scale", 0.0f);
    n->op = VT_OP_HeadwiseMergedAttention;
    n->n_attr = 0;
    n->attr = NULL;
    if (!set_f(g, i, "scale", scale) || !set_f(g, i, "q_keep", q_keep) || !set_f(g, i, "kv_keep", kv_keep) ||
        !set_i(g, i, "n_s", n_s) || !set_i(g, i, "n_t", n_t) || !set_f(g, i, "outlier", q_keep < 1 ? outlier : 0.0) ||
        !set_i(g, i, "tokens_per_frame", P) || !set_i(g, i, "protected", prot < P ? prot : P) ||
        !set_i(g, i, "anchor", anchor) || !set_i(g, i, "shared", shared) || !set_i(g, i, "prop_attn", prop)) {
      free(b);
      return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
    }
    if (n->n_in > 3) n->n_in = 3;
    if (st->explain)
      fprintf(st->explain, "  httm: attention '%s': merged (%s frames x %lld tokens, %lld protected per frame)\n",
              g->nodes[i].name, pinned ? vt_dim_str(g, q->dims[2] / P, fb, sizeof fb) : vt_dim_str(g, bl->frames, fb, sizeof fb),
              (long long)P, (long long)(prot < P ? prot : P));
    done++;
  }
  free(b);
  if (st->n_rules < VT_STATS_MAX_RULES) {
    st->rules[st->n_rules].name = "global-attention";
    st->rules[st->n_rules].candidates = cand;
    st->rules[st->n_rules].matches = done;
    st->n_rules++;
  }
  return VT_OK;
}

static double dimf(vt_dim d, bool *partial) {
  if (vt_dim_is_const(d)) return (double)d;
  *partial = true;
  return 1.0;
}

double vt_httm_node_flops(const vt_graph *g, const vt_node *n, bool *partial) {
  if (n->n_in < 3 || n->in[0] < 0 || n->in[2] < 0) return 0;
  const vt_value *q = &g->values[n->in[0]], *v = &g->values[n->in[2]];
  if (q->rank != 4 || v->rank != 4) return 0;
  double B = dimf(q->dims[0], partial), H = dimf(q->dims[1], partial), N = dimf(q->dims[2], partial);
  double Dh = dimf(q->dims[3], partial), Dv = dimf(v->dims[3], partial);
  double qk = vt_attr_float(n, "q_keep", 1.0f), kk = vt_attr_float(n, "kv_keep", 1.0f);
  double od = vt_attr_float(n, "outlier", 0.0f);
  bool shared = vt_attr_int(n, "shared", 0) != 0;
  if (shared) qk = kk;
  double P = (double)vt_attr_int(n, "tokens_per_frame", 1), prot = (double)vt_attr_int(n, "protected", 0);
  double T = P > 0 ? N / P : 1, Pm = P - prot;
  double ns = (double)vt_attr_int(n, "n_s", 128), nt = (double)vt_attr_int(n, "n_t", 30);
  if (ns > Pm) ns = Pm;
  if (nt > T) nt = T;
  double nbk = ns * nt;   /* block size */
  double mq = qk * N, mk = kk * N;
  double f = 2.0 * B * H * mq * mk * (Dh + Dv);
  /* matching: every token against its block's dst (cosine, Dh MACs each), per head, for Q and K */
  double rq = shared ? 0 : (qk < 1 ? qk - od : 0), rk = kk < 1 ? kk : 0;
  f += 2.0 * B * H * N * nbk * (rq + rk) * Dh;
  return f;
}

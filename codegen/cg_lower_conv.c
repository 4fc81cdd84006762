/* cg_lower_conv.c — lowering of the convolution family to G_CONV groups (target-independent; the
 * kernels are cg_kernels_conv.c):
 *   CONV_DIRECT  grouped / depthwise Conv 2-D (and group-1 Convs with C*kh*kw <= 32, e.g. an RGB
 *                stem), any strides, pads, dilations; one output plane per work unit
 *   CONV_1X1     1x1 Conv (stride 1, no pads, group 1) as a GEMM on the NCHW planes, no im2col
 *   CONV_TRANSPOSE  ConvTranspose 2-D (groups, strides, explicit pads, dilations, output_padding);
 *                one output plane per work unit
 *   CONV_RESIZE  Resize / Upsample of the last two axes of a 4-D tensor, nearest or linear (the
 *                interpreter's per-axis taps, vt_resize_taps, as constant tables); one plane per unit
 *   CONV_POOL    MaxPool, AveragePool, GlobalAveragePool (2-D); one plane per work unit
 *   CONV_REDUCE_MID  ReduceMean / ReduceSum over a middle run of axes ([O, R, I] -> [O, I], e.g. the
 *                mean over tokens before a classifier); one outer index per work unit
 * Epilogues fused into CONV_DIRECT / CONV_1X1 / CONV_TRANSPOSE: a residual Add (1x1; the other operand computed
 * before the group runs), then one activation (Relu, Clip, HardSigmoid, HardSwish, Sigmoid, or
 * x * Sigmoid(x), x * HardSigmoid(x)); each absorbed node's output must be read only by the next absorbed node.
 * Prologue of CONV_1X1: a squeeze-excite Mul(y, s) with s [Nb, C, 1, 1] whose only reader is the
 * Conv: the kernel scales the weights by s per image instead (the group starts at the Mul). Other
 * Convs go to the im2col + GEMM group (cg_lower.c try_conv). */
#include "cg_internal.h"
#include "runtime.h"

#include "kernels/cg_kernels_conv_act.h"

/* 2-D geometry of a Conv or pool node (auto_pad resolved from the inferred output): 0 and why
 * set when it is not expressible. k[2] is the kernel (from kernel_shape, or kk when NULL). */
typedef struct { int64_t st[2], dl[2], pd[4]; } conv_geom;

static bool read_geom(const vt_node *n, const vt_value *X, const vt_value *Y, const int64_t *k, conv_geom *gm,
                      char *why, size_t whyn) {
  const int64_t *a = NULL;
  *gm = (conv_geom){{1, 1}, {1, 1}, {0, 0, 0, 0}};
  if (vt_attr_ints(n, "strides", &a) == 2) { gm->st[0] = a[0]; gm->st[1] = a[1]; }
  if (vt_attr_ints(n, "dilations", &a) == 2) { gm->dl[0] = a[0]; gm->dl[1] = a[1]; }
  if (vt_attr_ints(n, "pads", &a) == 4) memcpy(gm->pd, a, sizeof gm->pd);
  const char *ap = vt_attr_str(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    for (int d = 0; d < 2; d++) {
      int64_t tot = (Y->dims[2 + d] - 1) * gm->st[d] + (k[d] - 1) * gm->dl[d] + 1 - X->dims[2 + d];
      if (tot < 0) tot = 0;
      gm->pd[d] = !strcmp(ap, "SAME_UPPER") ? tot / 2 : tot - tot / 2;
      gm->pd[d + 2] = tot - gm->pd[d];
    }
  } else if (!strcmp(ap, "VALID")) {
    memset(gm->pd, 0, sizeof gm->pd);
  } else if (strcmp(ap, "NOTSET")) {
    snprintf(why, whyn, "auto_pad %s is not generated", ap);
    return false;
  }
  for (int d = 0; d < 2; d++)
    if (gm->st[d] < 1 || gm->dl[d] < 1 || gm->pd[d] < 0 || gm->pd[d + 2] < 0) {
      snprintf(why, whyn, "bad strides / dilations / pads");
      return false;
    }
  return true;
}

static bool is_f32_4d(const vt_value *v) { return v->dtype == VT_F32 && v->rank == 4; }

/* The only reader of value v (a node not yet grouped), or -1 (none, several, or v is an output). */
static int32_t sole_reader(const cg *c, int32_t v) {
  if (v < 0 || c->is_out[v] || c->uoff[v + 1] - c->uoff[v] != 1) return -1;
  int32_t u = c->ulist[c->uoff[v]];
  return c->node_group[u] < 0 ? u : -1;
}

static bool same_dims(const vt_value *a, const vt_value *b) {
  if (a->rank != b->rank || a->dtype != b->dtype) return false;
  for (int d = 0; d < a->rank; d++)
    if (a->dims[d] != b->dims[d]) return false;
  return true;
}

/* A scalar float from a constant input k of node n (Clip's min / max), or dflt when absent. */
static bool const_scalar_in(const vt_graph *g, const vt_node *n, int k, float dflt, float *out) {
  *out = dflt;
  if (n->n_in <= k || n->in[k] < 0) return true;
  if (!cg_is_const(g, n->in[k]) || cg_val_numel(&g->values[n->in[k]]) != 1) return false;
  *out = (float)vt_tensor_get_f64(g->values[n->in[k]].cdata, 0);
  return true;
}

/* Absorbs the epilogue after the group's current output G->out: [residual Add (1x1)] then [one
 * activation]. Returns <0 on error. */
static int absorb_epilogue(cg *c, int gi) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  int32_t cur = G->out;
  const vt_value *Y = &g->values[cur];
  int32_t u = sole_reader(c, cur);
  if (u >= 0 && G->conv_kind == CONV_1X1 && g->nodes[u].op == VT_OP_Add && g->nodes[u].n_in == 2 &&
      g->nodes[u].n_out == 1 && g->nodes[u].out[0] >= 0) {
    const vt_node *n = &g->nodes[u];
    int32_t r = n->in[0] == cur ? n->in[1] : n->in[0];
    int32_t rp = r >= 0 ? g->values[r].producer : -1;
    bool before = r >= 0 && r != cur && !cg_is_const(g, r) && (rp < 0 || c->node_group[rp] >= 0) &&
                  (rp < 0 || rp < G->seed);
    if (before && same_dims(&g->values[r], Y) && same_dims(&g->values[n->out[0]], Y)) {
      G->conv_res = r;
      if (cg_group_add_node(c, gi, u)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
      G = &c->groups[gi];
      cur = G->out = n->out[0];
      u = sole_reader(c, cur);
    }
  }
  if (u < 0) return 0;
  const vt_node *n = &g->nodes[u];
  if (n->n_out != 1 || n->out[0] < 0 || !same_dims(&g->values[n->out[0]], Y)) return 0;
  int32_t act = -1;
  float a = 0, b = 0;
  switch (n->op) {
  case VT_OP_Relu: act = VT_CG_ACT_RELU; break;
  case VT_OP_HardSwish: act = VT_CG_ACT_HARDSWISH; break;
  case VT_OP_HardSigmoid:
    act = VT_CG_ACT_HARDSIGMOID;
    a = vt_attr_float(n, "alpha", 0.2f);
    b = vt_attr_float(n, "beta", 0.5f);
    break;
  case VT_OP_Clip:
    if (vt_node_attr(n, "min") || vt_node_attr(n, "max")) {   /* opset < 11 */
      a = vt_attr_float(n, "min", -3.402823466e38f);
      b = vt_attr_float(n, "max", 3.402823466e38f);
      act = VT_CG_ACT_CLIP;
    } else if (const_scalar_in(g, n, 1, -3.402823466e38f, &a) && const_scalar_in(g, n, 2, 3.402823466e38f, &b)) {
      act = VT_CG_ACT_CLIP;
    }
    break;
  case VT_OP_Sigmoid: act = VT_CG_ACT_SIGMOID; break;
  default: break;
  }
  if (act < 0) return 0;
  G->conv_act = act;
  G->conv_a = a;
  G->conv_b = b;
  if (cg_group_add_node(c, gi, u)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  c->groups[gi].out = n->out[0];
  return 0;
}

/* x * Sigmoid(x) or x * HardSigmoid(x) after the group's output: cur read by exactly a
 * (Hard)Sigmoid s and a Mul m = cur * s, s read only by m. Absorbs both (VT_CG_ACT_SILU /
 * VT_CG_ACT_X_HARDSIGMOID with HardSigmoid's alpha and beta). */
static int absorb_silu(cg *c, int gi) {
  const vt_graph *g = c->g;
  cg_group *G = &c->groups[gi];
  int32_t cur = G->out;
  if (G->conv_act != VT_CG_ACT_NONE || c->is_out[cur] || c->uoff[cur + 1] - c->uoff[cur] != 2) return 0;
  int32_t s_node = -1, m_node = -1;
  for (int32_t k = c->uoff[cur]; k < c->uoff[cur + 1]; k++) {
    int32_t u = c->ulist[k];
    if (c->node_group[u] >= 0) return 0;
    if (g->nodes[u].op == VT_OP_Sigmoid || g->nodes[u].op == VT_OP_HardSigmoid) s_node = u;
    else if (g->nodes[u].op == VT_OP_Mul) m_node = u;
  }
  if (s_node < 0 || m_node < 0) return 0;
  const vt_node *s = &g->nodes[s_node], *m = &g->nodes[m_node];
  if (s->n_out != 1 || s->out[0] < 0 || m->n_in != 2 || m->n_out != 1 || m->out[0] < 0) return 0;
  int32_t sv = s->out[0];
  if (!((m->in[0] == cur && m->in[1] == sv) || (m->in[1] == cur && m->in[0] == sv))) return 0;
  if (c->is_out[sv] || c->uoff[sv + 1] - c->uoff[sv] != 1) return 0;
  if (!same_dims(&g->values[m->out[0]], &g->values[cur])) return 0;
  if (s->op == VT_OP_HardSigmoid) {
    G->conv_act = VT_CG_ACT_X_HARDSIGMOID;
    G->conv_a = vt_attr_float(s, "alpha", 0.2f);
    G->conv_b = vt_attr_float(s, "beta", 0.5f);
  } else {
    G->conv_act = VT_CG_ACT_SILU;
  }
  if (cg_group_add_node(c, gi, s_node) || cg_group_add_node(c, gi, m_node))
    return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  c->groups[gi].out = m->out[0];
  return 0;
}

/* A CONV_DIRECT or CONV_1X1 group for Conv node ci; seed is ci, or the squeeze-excite Mul se
 * (then the Conv reads y * s and the group reads y and s). 1 made, 0 not applicable. */
static int conv_group(cg *c, int32_t ci, int32_t se, int32_t y_in, int32_t scale, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ci];
  if (n->n_in < 2 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Wv = &g->values[n->in[1]], *Y = &g->values[n->out[0]];
  if (!is_f32_4d(X) || !is_f32_4d(Y) || !cg_is_const(g, n->in[1]) || Wv->rank != 4 ||
      Wv->cdata->dtype != VT_F32) {
    snprintf(why, whyn, "only 2-D float32 convolutions with constant weights are generated");
    return 0;
  }
  int64_t groups = vt_attr_int(n, "group", 1);
  int64_t Nb = X->dims[0], C = X->dims[1], H = X->dims[2], W = X->dims[3];
  int64_t Cout = Wv->dims[0], kh = Wv->dims[2], kw = Wv->dims[3], OH = Y->dims[2], OW = Y->dims[3];
  if (groups < 1 || C % groups || Cout % groups || Wv->dims[1] != C / groups || Y->dims[0] != Nb || Y->dims[1] != Cout) {
    snprintf(why, whyn, "inconsistent shapes or group");
    return 0;
  }
  conv_geom gm;
  int64_t k[2] = {kh, kw};
  if (!read_geom(n, X, Y, k, &gm, why, whyn)) return 0;
  bool pointwise = groups == 1 && kh == 1 && kw == 1 && gm.st[0] == 1 && gm.st[1] == 1 && !gm.pd[0] && !gm.pd[1] &&
                   !gm.pd[2] && !gm.pd[3] && OH == H && OW == W;
  int kind = pointwise ? CONV_1X1 : groups > 1 || C * kh * kw <= 32 ? CONV_DIRECT : -1;
  if (kind < 0) { snprintf(why, whyn, "group 1 with C*kh*kw = %lld: im2col + GEMM", (long long)(C * kh * kw)); return 0; }
  if (se >= 0 && kind != CONV_1X1) return 0;
  int32_t bb = -1;
  int brc = cg_conv_bias_blob(c, n, Cout, &bb, why, whyn);
  if (brc <= 0) return brc;
  int wb = cg_add_blob(c, Wv->cdata->data, vt_tensor_nbytes(Wv->cdata), NULL);
  if (wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_CONV, se >= 0 ? se : ci);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int gi = c->n_groups - 1;
  G->conv_kind = kind;
  G->conv_node = ci;
  G->conv_groups = groups;
  G->src = se >= 0 ? y_in : n->in[0];
  G->conv_scale = scale;
  G->out = n->out[0];
  G->wblob = wb;
  G->gblob = bb;
  G->M = Nb * OH * OW; G->N = Cout; G->K = C / groups * kh * kw;
  G->total = cg_val_numel(Y);
  int64_t unit = 64;   /* CONV_1X1 pixels per work unit (a multiple of the kernel's pixel tile) */
  G->rows = kind == CONV_1X1 ? Nb * ((OH * OW + unit - 1) / unit) : Nb * Cout;
  int64_t cv[14] = {C, H, W, OH, OW, kh, kw, gm.st[0], gm.st[1], gm.dl[0], gm.dl[1], gm.pd[0], gm.pd[1], unit};
  memcpy(G->conv, cv, sizeof cv);
  if (se >= 0 && cg_group_add_node(c, gi, se)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  if (cg_group_add_node(c, gi, ci)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int rc = absorb_epilogue(c, gi);
  if (rc == 0) rc = absorb_silu(c, gi);
  return rc < 0 ? rc : 1;
}

/* ConvTranspose node ti (2-D, float32, constant weights [C, Cout/group, kh, kw], explicit pads). */
static int conv_transpose_group(cg *c, int32_t ti, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ti];
  if (n->n_in < 2 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Wv = &g->values[n->in[1]], *Y = &g->values[n->out[0]];
  if (!is_f32_4d(X) || !is_f32_4d(Y) || !cg_is_const(g, n->in[1]) || Wv->rank != 4 ||
      Wv->cdata->dtype != VT_F32) {
    snprintf(why, whyn, "only 2-D float32 transposed convolutions with constant weights are generated");
    return 0;
  }
  if (strcmp(vt_attr_str(n, "auto_pad", "NOTSET"), "NOTSET") || vt_node_attr(n, "output_shape")) {
    snprintf(why, whyn, "auto_pad / output_shape are not generated (explicit pads only)");
    return 0;
  }
  int64_t groups = vt_attr_int(n, "group", 1);
  int64_t Nb = X->dims[0], C = X->dims[1], H = X->dims[2], W = X->dims[3];
  int64_t Mg = Wv->dims[1], Cout = Mg * groups, kh = Wv->dims[2], kw = Wv->dims[3];
  if (groups < 1 || C % groups || Wv->dims[0] != C || Y->dims[0] != Nb || Y->dims[1] != Cout) {
    snprintf(why, whyn, "inconsistent shapes or group");
    return 0;
  }
  conv_geom gm;
  int64_t k[2] = {kh, kw};
  if (!read_geom(n, X, Y, k, &gm, why, whyn)) return 0;
  int32_t bb = -1;
  int brc = cg_conv_bias_blob(c, n, Cout, &bb, why, whyn);
  if (brc <= 0) return brc;
  int wb = cg_add_blob(c, Wv->cdata->data, vt_tensor_nbytes(Wv->cdata), NULL);
  if (wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_CONV, ti);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int gi = c->n_groups - 1;
  G->conv_kind = CONV_TRANSPOSE;
  G->conv_node = ti;
  G->conv_groups = groups;
  G->src = n->in[0];
  G->out = n->out[0];
  G->wblob = wb;
  G->gblob = bb;
  G->M = Nb * H * W; G->N = Cout; G->K = C / groups * kh * kw;
  G->total = cg_val_numel(Y);
  G->rows = Nb * Cout;
  int64_t cv[14] = {C, H, W, Y->dims[2], Y->dims[3], kh, kw, gm.st[0], gm.st[1], gm.dl[0], gm.dl[1], gm.pd[0], gm.pd[1], 0};
  memcpy(G->conv, cv, sizeof cv);
  if (cg_group_add_node(c, gi, ti)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  int rc = absorb_epilogue(c, gi);
  if (rc == 0) rc = absorb_silu(c, gi);
  return rc < 0 ? rc : 1;
}

/* Resize / Upsample node ri: float32 rank 4, N and C kept, at most two taps per axis (nearest,
 * linear), no extrapolation, constant scales / roi. */
static int resize_group(cg *c, int32_t ri, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ri];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out != 1 || n->out[0] < 0) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  if (!is_f32_4d(X) || !is_f32_4d(Y) || X->dims[0] != Y->dims[0] || X->dims[1] != Y->dims[1]) {
    snprintf(why, whyn, "only float32 4-D resizes of the last two axes are generated");
    return 0;
  }
  if (vt_attr_int(n, "antialias", 0)) { snprintf(why, whyn, "antialias is not generated"); return 0; }
  bool upsample = n->op == VT_OP_Upsample;
  int64_t opset = vt_graph_opset(g, "");
  if (opset == 0) opset = 18;
  int32_t tsv = -1, roiv = -1;
  if (upsample || opset < 11) tsv = n->n_in > 1 ? n->in[1] : -1;
  else {
    roiv = n->n_in > 1 ? n->in[1] : -1;
    tsv = n->n_in > 2 ? n->in[2] : -1;
  }
  if ((tsv >= 0 && !cg_is_const(g, tsv)) || (roiv >= 0 && !cg_is_const(g, roiv))) {
    snprintf(why, whyn, "scales / roi are not constants");
    return 0;
  }
  int64_t xd[4], yd[4];
  for (int d = 0; d < 4; d++) { xd[d] = X->dims[d]; yd[d] = Y->dims[d]; }
  vt_resize_axis ax[4];
  char err[200];
  if (vt_resize_taps(n, opset, upsample, 4, xd, yd, tsv >= 0 ? g->values[tsv].cdata : NULL,
                     roiv >= 0 ? g->values[roiv].cdata : NULL, ax, err, sizeof err)) {
    vt_resize_taps_free(ax, 4);
    snprintf(why, whyn, "%s", err);
    return 0;
  }
  bool ok = true;
  for (int d = 0; d < 4 && ok; d++) {
    ok = ax[d].nt <= 2;
    for (int64_t o = 0; o < yd[d] && ok; o++) ok = !ax[d].extrap[o];
    for (int64_t o = 0; d < 2 && o < yd[d] && ok; o++) ok = ax[d].nt == 1 && ax[d].idx[o] == o && ax[d].w[o] == 1;
  }
  if (!ok) {
    vt_resize_taps_free(ax, 4);
    snprintf(why, whyn, "only nearest / linear resizes of the last two axes without extrapolation are generated");
    return 0;
  }
  int64_t OH = yd[2], OW = yd[3], nt = 2 * (OH + OW);
  int64_t *idx = malloc((size_t)nt * sizeof *idx);
  float *wts = malloc((size_t)nt * sizeof *wts);
  if (!idx || !wts) {
    free(idx); free(wts);
    vt_resize_taps_free(ax, 4);
    return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  }
  int64_t base = 0;
  for (int d = 2; d < 4; d++) {   /* [tap 0 of every coordinate, tap 1 of every coordinate] per axis */
    int64_t no = yd[d];
    for (int64_t o = 0; o < no; o++) {
      idx[base + o] = ax[d].idx[o * ax[d].nt];
      wts[base + o] = (float)ax[d].w[o * ax[d].nt];
      idx[base + no + o] = ax[d].nt == 2 ? ax[d].idx[o * 2 + 1] : idx[base + o];
      wts[base + no + o] = ax[d].nt == 2 ? (float)ax[d].w[o * 2 + 1] : 0.0f;
    }
    base += 2 * no;
  }
  vt_resize_taps_free(ax, 4);
  int ib = cg_add_blob(c, idx, (size_t)nt * sizeof *idx, idx);
  int wb = cg_add_blob(c, wts, (size_t)nt * sizeof *wts, wts);
  if (ib < 0 || wb < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  cg_group *G = cg_new_group(c, G_CONV, ri);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->conv_kind = CONV_RESIZE;
  G->conv_node = ri;
  G->src = n->in[0];
  G->out = n->out[0];
  G->wblob = wb;
  G->gblob = ib;
  G->M = cg_val_numel(Y); G->N = 1; G->K = 4;
  G->total = cg_val_numel(Y);
  G->rows = xd[0] * xd[1];
  int64_t cv[14] = {xd[1], xd[2], xd[3], OH, OW};
  memcpy(G->conv, cv, sizeof cv);
  if (cg_group_add_node(c, c->n_groups - 1, ri)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

/* Mul node mi = y * s, s [Nb, C, 1, 1] (s computed by a node, not a constant), read only by a
 * 1x1 Conv: that Conv's group with s as its input scale. */
static int try_se_scale(cg *c, int32_t mi) {
  const vt_graph *g = c->g;
  const vt_node *m = &g->nodes[mi];
  if (m->n_in != 2 || m->n_out != 1 || m->out[0] < 0 || m->in[0] < 0 || m->in[1] < 0) return 0;
  int32_t ci = sole_reader(c, m->out[0]);
  if (ci < 0 || g->nodes[ci].op != VT_OP_Conv || g->nodes[ci].in[0] != m->out[0]) return 0;
  const vt_value *Xm = &g->values[m->out[0]];
  if (!is_f32_4d(Xm)) return 0;
  for (int side = 0; side < 2; side++) {
    int32_t y = m->in[side], s = m->in[1 - side];
    const vt_value *Yv = &g->values[y], *Sv = &g->values[s];
    if (!same_dims(Yv, Xm) || cg_is_const(g, s) || !is_f32_4d(Sv)) continue;
    if (Sv->dims[0] != Xm->dims[0] || Sv->dims[1] != Xm->dims[1] || Sv->dims[2] != 1 || Sv->dims[3] != 1) continue;
    char why[200];
    return conv_group(c, ci, mi, y, s, why, sizeof why);
  }
  return 0;
}

/* MaxPool / AveragePool / GlobalAveragePool node pi (2-D, float32). */
static int pool_group(cg *c, int32_t pi, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[pi];
  if (n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
  for (int o = 1; o < n->n_out; o++)
    if (n->out[o] >= 0) { snprintf(why, whyn, "MaxPool's Indices output is not generated"); return 0; }
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  if (!is_f32_4d(X) || !is_f32_4d(Y)) { snprintf(why, whyn, "only 2-D float32 pools are generated"); return 0; }
  int64_t H = X->dims[2], W = X->dims[3], OH = Y->dims[2], OW = Y->dims[3];
  int64_t k[2] = {H, W};
  conv_geom gm = {{1, 1}, {1, 1}, {0, 0, 0, 0}};
  int kind = 3;
  if (n->op != VT_OP_GlobalAveragePool) {
    const int64_t *ks = NULL;
    if (vt_attr_ints(n, "kernel_shape", &ks) != 2) { snprintf(why, whyn, "kernel_shape is not 2-D"); return 0; }
    k[0] = ks[0]; k[1] = ks[1];
    if (!read_geom(n, X, Y, k, &gm, why, whyn)) return 0;
    if (n->op == VT_OP_MaxPool) {
      kind = 0;
      if (vt_attr_int(n, "storage_order", 0) != 0) { snprintf(why, whyn, "storage_order 1 is not generated"); return 0; }
    } else {
      kind = vt_attr_int(n, "count_include_pad", 0) ? 2 : 1;
    }
  }
  cg_group *G = cg_new_group(c, G_CONV, pi);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->conv_kind = CONV_POOL;
  G->pool_kind = kind;
  G->conv_node = pi;
  G->src = n->in[0];
  G->out = n->out[0];
  G->M = cg_val_numel(Y); G->N = 1; G->K = k[0] * k[1];
  G->total = cg_val_numel(Y);
  G->rows = X->dims[0] * X->dims[1];
  /* C slot unused; conv[13]: the end pads (rows << 32 | cols) */
  int64_t cv[14] = {X->dims[1], H, W, OH, OW, k[0], k[1], gm.st[0], gm.st[1], gm.dl[0], gm.dl[1], gm.pd[0], gm.pd[1],
                    gm.pd[2] << 32 | gm.pd[3]};
  memcpy(G->conv, cv, sizeof cv);
  if (cg_group_add_node(c, c->n_groups - 1, pi)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

int cg_try_conv_family(cg *c, int32_t ni, char *why, size_t whyn) {
  const vt_node *n = &c->g->nodes[ni];
  if (c->gpu) {   /* the GPU target has none of these kernels yet: im2col Conv or a refusal, as before */
    snprintf(why, whyn, "no GPU kernel for %s's convolution-family lowering yet", vt_ops[n->op].name);
    return 0;
  }
  switch (n->op) {
  case VT_OP_Conv: return conv_group(c, ni, -1, -1, -1, why, whyn);
  case VT_OP_ConvTranspose: return conv_transpose_group(c, ni, why, whyn);
  case VT_OP_Resize:
  case VT_OP_Upsample: return resize_group(c, ni, why, whyn);
  case VT_OP_Mul: return try_se_scale(c, ni);
  case VT_OP_MaxPool:
  case VT_OP_AveragePool:
  case VT_OP_GlobalAveragePool: return pool_group(c, ni, why, whyn);
  default: return 0;
  }
}

int cg_try_reduce_mid(cg *c, int32_t ni, const bool *red, char *why, size_t whyn) {
  const vt_graph *g = c->g;
  const vt_node *n = &g->nodes[ni];
  if (c->gpu || (n->op != VT_OP_ReduceMean && n->op != VT_OP_ReduceSum)) return 0;
  const vt_value *X = &g->values[n->in[0]], *Y = &g->values[n->out[0]];
  int32_t a0 = -1, a1 = -1;   /* the reduced run [a0, a1) (size-1 dims may sit anywhere) */
  for (int32_t d = 0; d < X->rank; d++) {
    if (!red[d] || X->dims[d] == 1) continue;
    if (a0 < 0) a0 = d;
    else if (a1 >= 0) { snprintf(why, whyn, "the reduced axes are not one contiguous run"); return 0; }
    int32_t e = d;
    while (e + 1 < X->rank && (red[e + 1] || X->dims[e + 1] == 1)) e++;
    a1 = e + 1;
    d = e;
  }
  if (a0 < 0) return 0;
  int64_t O = 1, R = 1, I = 1;
  for (int32_t d = 0; d < X->rank; d++) {
    if (d < a0) O *= X->dims[d];
    else if (d < a1) R *= red[d] ? X->dims[d] : 1;
    else I *= X->dims[d];
  }
  for (int32_t d = a0; d < a1; d++)
    if (!red[d] && X->dims[d] != 1) { snprintf(why, whyn, "a kept axis inside the reduced run"); return 0; }
  if (O * R * I != cg_val_numel(X) || O * I != cg_val_numel(Y) || I < 1) {
    snprintf(why, whyn, "empty or inconsistent reduction");
    return 0;
  }
  cg_group *G = cg_new_group(c, G_CONV, ni);
  if (!G) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->conv_kind = CONV_REDUCE_MID;
  G->pool_kind = n->op == VT_OP_ReduceMean;
  G->conv_node = ni;
  G->src = n->in[0];
  G->out = n->out[0];
  G->M = O * I; G->N = 1; G->K = R;
  G->total = cg_val_numel(X);
  G->rows = O;
  G->conv[0] = R;
  G->conv[1] = I;
  if (cg_group_add_node(c, c->n_groups - 1, ni)) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  return 1;
}

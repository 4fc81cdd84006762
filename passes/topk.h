/* topk.h — the `topk` pass (Shiva-DiT residual top-k routing, passes/topk.c): its registry row,
 * and the routers file (passes/topk_routers.c), which `vtopt calibrate` writes and the pass reads. */
#ifndef VTOPT_PASSES_TOPK_H
#define VTOPT_PASSES_TOPK_H

#include "passes.h"

#define VT_TOPK_HIDDEN 64     /* router bottleneck d' (Shiva-DiT) */
#define VT_TOPK_MAX_LAYERS 256
#define VT_TOPK_MAX_STEPS 1000

/* Router weights and the retention table for the L recognised blocks of one model. Pair p
 * (blocks 2p+1 and 2p+2: block 0 always runs full) shares wx, wc and w; el is per block.
 * score(x_i) = w_p . LayerNorm(SiLU(x_i Wx_p + c Wc_p + el_l)) (LayerNorm without affine). */
typedef struct vt_topk_routers {
  int32_t L, P, D, Dc, H;       /* blocks, pairs, token width, conditioning width (0: none), hidden */
  int64_t N;                    /* tokens the routers were fitted for */
  float *wx;                    /* [P, D, H] */
  float *wc;                    /* [P, Dc, H] or NULL */
  float *el;                    /* [L, H] */
  float *w;                     /* [P, H] */
  int32_t S;                    /* table rows (sampling steps) */
  float *table_t;               /* [S] timestep of each row */
  int64_t *table_k;             /* [S, L] tokens kept per (step, block) */
} vt_topk_routers;

static inline int32_t vt_topk_pair(int32_t l) { return l >= 1 ? (l - 1) / 2 : 0; }

/* Reads FILE (an .npz written by vt_topk_routers_save, uncompressed). Errors name the file and
 * the array. */
int vt_topk_routers_load(const char *path, vt_topk_routers *r, vt_error *e);
int vt_topk_routers_save(const char *path, const vt_topk_routers *r, vt_error *e);
void vt_topk_routers_free(vt_topk_routers *r);

/* The retention table shaped like Shiva-DiT's learned schedule: for S sampler steps (DDIM
 * timesteps linspace(999, 0, S) rounded) and L blocks, k[s*L + l] = clamp(round(N * r), 1, N)
 * with r = sigmoid(b + shape * (layer term + step term)) for l >= 1 (shallow blocks keep more,
 * early noisy steps prune harder), b chosen so the mean r over pruned blocks is R; block 0 = N.
 * shape = 0 gives a flat table. k_fixed > 0: every pruned entry is min(k_fixed, N). */
void vt_topk_table(int32_t S, int32_t L, int64_t N, double R, double shape, int64_t k_fixed, float *ts, int64_t *k);

/* The recognised blocks' stream values (input, output: -1 without an MLP residual) and the
 * conditioning vector the router reads (-1: none), as the pass sees them (at most
 * VT_TOPK_MAX_LAYERS entries per array). */
int vt_topk_block_values(const vt_graph *g, int32_t *L, int32_t *x_in, int32_t *x_out, int32_t *cond, vt_error *e);

int vt_pass_topk(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);

#define VT_TOPK_PASS_INFO                                                                                         \
  {.name = "topk",                                                                                                \
   .summary = "Shiva-DiT residual top-k routing for DiT blocks: per recognised residual block after the first, "  \
              "a router scores the tokens (block input, conditioning vector, layer embedding -> 64 -> SiLU -> "   \
              "LayerNorm -> score; routers shared by adjacent block pairs), TopKSelect keeps k tokens (k from a " \
              "retention table per sampling step and block, row picked at run time by the timestep input or "    \
              "the knob topk.step), the whole block runs on the k gathered tokens and RouteScatter writes them "  \
              "back; the other tokens bypass the block. k = N is exact. Policies: router (weights from "         \
              "routers=FILE, made by vtopt calibrate), random, oracle (the true relative update norm: runs the "  \
              "dense block, the ceiling)",                                                                        \
   .run = vt_pass_topk,                                                                                           \
   .exact = false,                                                                                                \
   .canonical = false,                                                                                            \
   .n_params = 9,                                                                                                 \
   .params = {{"R", VT_PARAM_FLOAT, "0.8", "global retention target over the pruned blocks (paper: 0.8, 0.6)"},   \
              {"k", VT_PARAM_INT, "0", "keep exactly k tokens in every pruned block and step (k = N: exact); 0: from R"}, \
              {"steps", VT_PARAM_INT, "50", "sampler steps the retention table covers (DDIM timesteps linspace(999,0,steps))"}, \
              {"schedule", VT_PARAM_STRING, "paper",                                                              \
               "paper (shallow blocks keep more, early noisy steps prune harder), flat (R everywhere), or measured " \
               "(vtopt calibrate only: from the mean update per step and block)"},         \
              {"policy", VT_PARAM_STRING, "router", "router (needs routers=FILE), random, or oracle"},            \
              {"routers", VT_PARAM_STRING, "", "routers file (.npz from vtopt calibrate); its table is used unless R or k is given"}, \
              {"cfg", VT_PARAM_INT, "0", "1: the batch is [cond; uncond]: both halves select with max of their scores"}, \
              {"seed", VT_PARAM_INT, "0", "policy random: the seed"},                                             \
              {"per_step", VT_PARAM_INT, "1",                                                                     \
               "1: k per (step, block) from the table, chosen at run time; 0: one k per block (the mean of its "  \
               "column), a constant token count the code generator specialises (every kernel but the routing ops generated)"}}}

#endif

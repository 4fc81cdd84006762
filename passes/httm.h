/* httm.h — private to passes/: the HTTM pass entry point and its FLOPs estimate (used by
 * stats.c for ai.vtopt.HeadwiseMergedAttention). */
#ifndef VTOPT_PASSES_HTTM_H
#define VTOPT_PASSES_HTTM_H

#include "passes.h"

int vt_pass_httm(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);
/* 2 x multiply-adds of one HeadwiseMergedAttention node: attention on the merged tokens plus the
 * block-wise matching and the merges; symbolic dims count as 1 and set *partial. */
double vt_httm_node_flops(const vt_graph *g, const vt_node *n, bool *partial);

/* The registry row (passes/pass.c lists it). The summary states the choices the paper leaves
 * open ([I] in research/methods.md). */
#define VT_HTTM_PASS_INFO                                                                                        \
  {.name = "httm",                                                                                               \
   .summary = "head-wise temporal token merging (HTTM) in global attention over T frames x P tokens: per head, "  \
              "Q grouped by a matching on queries, K/V on keys, inside blocks of n_s tokens x n_t frames; global "  \
              "top-outlier queries restored; attention on merged tokens; head-wise unmerge. Choices the paper "      \
              "leaves open: dst = evenly spaced tokens of each block (deterministic, same for all heads), every "   \
              "src merged into its most cosine-similar dst (dst share = keep ratio); spatial blocks = balanced "    \
              "chunks of a frame's non-protected tokens in raster order, frame groups balanced (no remainder "      \
              "blocks); n_s/n_t clipped to P and T; the first `protected` tokens of each frame never merged; "       \
              "outliers = top fraction over all heads per batch element (deviation from the group mean); "        \
              "plain group means, no re-normalisation; shared=1 = one matching from all heads' keys, no outliers",  \
   .run = vt_pass_httm,                                                                                          \
   .exact = false,                                                                                               \
   .canonical = false,                                                                                           \
   .n_params = 10,                                                                                                \
   .params = {{"q_keep", VT_PARAM_FLOAT, "0.2", "queries kept per head, outliers included (1 = no query merging)"}, \
              {"kv_keep", VT_PARAM_FLOAT, "0.3", "keys/values kept per head (1 = no key merging)"},              \
              {"n_s", VT_PARAM_INT, "128", "spatial tokens per merging block (clipped to the tokens of a frame)"},   \
              {"n_t", VT_PARAM_INT, "30", "frames per merging block (clipped to T)"},                              \
              {"outlier", VT_PARAM_FLOAT, "0.1",                                                                 \
               "fraction of (heads x tokens) restored as stand-alone queries: the largest deviations from "       \
               "their merged query, over all heads (so per-head query counts differ)"},                           \
              {"protected", VT_PARAM_INT, "5", "leading tokens of each frame never merged (VGGT: camera + 4 registers)"}, \
              {"anchor", VT_PARAM_INT, "0", "1: frame 0's tokens are all merge targets (HTTM* first-frame anchoring)"},  \
              {"shared", VT_PARAM_INT, "0",                                                                      \
               "1: FastVGGT-style baseline: one matching (keys of all heads) for Q, K, V of every head at kv_keep"}, \
              {"prop_attn", VT_PARAM_INT, "1",                                                                   \
               "1: add log(group size) to the scores of merged keys (ToMe proportional attention; the paper has none)"}, \
              {"tokens_per_frame", VT_PARAM_INT, "0",                                                             \
               "0: frames from the graph: N = T x P with T a named dim, or (T pinned) the Reshape above Q that " \
               "joined rows of P tokens into the sequence, e.g. [B*T, P, C] -> [B, T*P, C]; P > 0: also attention " \
               "whose constant N is a multiple >= 2P of P when the graph shows no frames"}}}

#endif

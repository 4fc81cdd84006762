/* eventful.h — private to passes/: the `eventful` pass entry point and its registry row. */
#ifndef VTOPT_PASSES_EVENTFUL_H
#define VTOPT_PASSES_EVENTFUL_H

#include "passes.h"

int vt_pass_eventful(vt_graph *g, const vt_pass_params *p, vt_pass_stats *st, vt_error *e);

#define VT_EVENTFUL_PASS_INFO                                                                                     \
  {.name = "eventful",                                                                                            \
   .summary = "Eventful Transformers (Dutson et al., ICCV 2023) for per-frame models run as a stream (one "        \
              "interpreter session = one stream, one run = one frame): a stateful TokenGate (reference per "      \
              "token, error norm, policy, gather, reference update) and TokenBuffer (last output per token, "     \
              "scatter) around every chain of token-wise ops that starts with a MatMul by a constant matrix "     \
              "(QKV projection, output projection, MLP), so those run on the M updated tokens only and buffers "  \
              "give full-length tensors before both residual adds; global attention (every head sees all "       \
              "tokens of the frame) becomes EventfulAttention: rows/columns of the updated tokens refresh the "   \
              "kept q.k^T, softmax over the full matrix, delta update of A.v against A's reference columns and " \
              "v's reference rows (EventfulBlock); windowed attention keeps the token-wise gates only. The "     \
              "first run after a reset computes everything; r >= N is exact; r changes between frames with the " \
              "runtime knob eventful.r",                                                                          \
   .run = vt_pass_eventful,                                                                                       \
   .exact = false,                                                                                                \
   .canonical = false,                                                                                            \
   .n_params = 8,                                                                                                 \
   .params = {{"r", VT_PARAM_INT, "384",                                                                          \
               "topr policy: tokens updated per gate and frame (paper, ViTDet 672^2 with 1764 tokens: 128..1024; " \
               "r >= N is exact); runtime knob eventful.r overrides it"},                                         \
              {"policy", VT_PARAM_STRING, "topr",                                                                 \
               "topr (the r largest error norms), threshold (norm > h), fraction (the top fraction of tokens)"},   \
              {"h", VT_PARAM_FLOAT, "1.0", "threshold policy: error-norm threshold (paper tried 0.2, 1, 5); knob eventful.h"}, \
              {"fraction", VT_PARAM_FLOAT, "0.25", "fraction policy: share of tokens updated; knob eventful.fraction"}, \
              {"gate", VT_PARAM_STRING, "after_ln",                                                               \
               "gate position: after_ln (the paper's code default: gate the LayerNorm output) or before_ln (gate " \
               "the residual stream and run the LayerNorm on the updated tokens, where the LayerNorm feeds the "   \
               "projection directly)"},                                                                           \
              {"attn", VT_PARAM_STRING, "delta",                                                                  \
               "global attention: delta (sparse q.k^T and delta A.v with their state, the paper's EventfulBlock), " \
               "delta_exp ([I] the same with unnormalised exps as A's reference, divided by each run's row sums " \
               "and rows of updated queries recomputed whole: no stale normalisers, exact when only the updated " \
               "tokens changed) or dense (token-wise gates only, EventfulTokenwiseBlock)"},                                      \
              {"refresh", VT_PARAM_INT, "0",                                                                      \
               "[I] keyframes: every refresh-th frame after a flush updates every token (a flush: the "            \
               "references and EventfulAttention's state are rebuilt, bounding the drift of long streams; "     \
               "0 = never, the paper); runtime knob eventful.refresh"},                                          \
              {"cut", VT_PARAM_FLOAT, "0",                                                                        \
               "[I] scene cuts: when a gate's error energy sum ||x - u||^2 exceeds cut x sum ||u||^2, it and every " \
               "gate after it in that frame update all tokens (a flush), instead of following a frame that "    \
               "changed nearly everywhere r tokens at a time (vitstream on cockatoo: ordinary frames stay below " \
               "0.75 at the first gate, a cut gives 2.4: cut=1); 0 = off (the paper); runtime knob eventful.cut"}}}

#endif

/* attention.h — helpers shared by the infer functions, kernels and rewrites of the exported
 * attention ops (ir/ops_attention.def). */
#ifndef VTOPT_ATTENTION_H
#define VTOPT_ATTENTION_H

#include "ir.h"

/* com.microsoft.Attention: the Q, K and V hidden sizes (hs[0..2]) for weights with `cols` columns
 * and `heads` heads, from qkv_hidden_sizes or thirds. Returns 0, or -1 with a message in err. */
int vt_ms_attention_sizes(const vt_node *n, int64_t cols, int64_t heads, int64_t hs[3], char *err, size_t errn);

#endif

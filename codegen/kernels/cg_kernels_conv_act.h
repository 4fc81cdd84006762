/* cg_kernels_conv_act.h — the activation codes fused into the convolution kernels
 * (cg_kernels_conv.c), shared with their lowering (cg_lower_conv.c). */
#ifndef VT_CG_KERNELS_CONV_ACT_H
#define VT_CG_KERNELS_CONV_ACT_H

enum { VT_CG_ACT_NONE = 0, VT_CG_ACT_RELU = 1, VT_CG_ACT_CLIP = 2, VT_CG_ACT_HARDSIGMOID = 3,
       VT_CG_ACT_HARDSWISH = 4, VT_CG_ACT_SIGMOID = 5, VT_CG_ACT_SILU = 6,
       VT_CG_ACT_X_HARDSIGMOID = 7 /* x * HardSigmoid(x) with any alpha / beta (older HardSwish exports) */ };

#endif

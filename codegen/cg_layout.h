/* cg_layout.h — constants shared by the bitcode kernels (kernels/cg_kernels.c) and the code
 * generator (codegen.c): the GEMM micro-tile and K blocking, i.e. the packed-B layout. */
#ifndef VTOPT_CG_LAYOUT_H
#define VTOPT_CG_LAYOUT_H

#define VT_CG_MR 6    /* rows of C per micro-tile */
#define VT_CG_NR 16   /* columns of C per micro-tile = width of one packed-B panel */
#define VT_CG_KC 512  /* K block kept hot in L1 per panel */

/* fused attention (vt_cgk_attention): query rows per work unit, keys per online-softmax step,
 * largest head dim (scratch on the stack) */
#define VT_CG_ATT_QB 96   /* a multiple of VT_CG_MR */
#define VT_CG_ATT_KB 64
#define VT_CG_ATT_DMAX 256
/* Conv (vt_cgk_conv2d): stack scratch in floats for the im2col rows and their GEMM tile */
#define VT_CG_CONV_SCRATCH 65536

#endif

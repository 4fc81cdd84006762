/* cg_layout.h — constants shared by the bitcode kernels (kernels/cg_kernels.c) and the code
 * generator (cg_lower.c, cg_emit_cpu.c): the GEMM micro-tile and K blocking, i.e. the packed-B layout. */
#ifndef VTOPT_CG_LAYOUT_H
#define VTOPT_CG_LAYOUT_H

#include <stdint.h>

#define VT_CG_MR 6    /* rows of C per micro-tile */
#define VT_CG_NR 16   /* columns of C per micro-tile = width of one packed-B panel */
#define VT_CG_KC 256  /* largest K block: a panel's block (KC x NR floats, 16 KB) stays in L1 */
#define VT_CG_MC 198  /* largest row block: its packed A block (MC x KC, <= 198 KB) stays in L2 */

/* GEMM work partition (vt_cgk_gemm and the parallel-for that calls it): rows are cut into
 * equal row blocks of at most VT_CG_MC rows (whole micro-tiles), a work unit is one (row block,
 * panel) pair, units numbered row block major. A ViT GEMM (197 rows) has one row block, so two
 * threads split the panels (N) and each reads half of B; several row blocks appear only for
 * long token sequences. Everything below depends on M at run time only through these helpers. */
static inline int64_t vt_cg_gemm_mblocks(int64_t M) { return (M + VT_CG_MC - 1) / VT_CG_MC; }
static inline int64_t vt_cg_gemm_mc(int64_t M) {   /* rows per row block (a multiple of MR) */
  int64_t nb = vt_cg_gemm_mblocks(M);
  int64_t mc = nb ? (M + nb - 1) / nb : 0;
  return (mc + VT_CG_MR - 1) / VT_CG_MR * VT_CG_MR;
}
static inline int64_t vt_cg_gemm_units(int64_t M, int64_t N) {
  return vt_cg_gemm_mblocks(M) * ((N + VT_CG_NR - 1) / VT_CG_NR);
}

/* fused attention (vt_cgk_attention): query rows per work unit, keys per online-softmax step,
 * largest head dim (scratch on the stack) */
#define VT_CG_ATT_QB 96   /* a multiple of VT_CG_MR */
#define VT_CG_ATT_KB 64
#define VT_CG_ATT_RESCALE 8.0f   /* online softmax: how far a block's max may exceed the running max
                                  * before the running max moves (probabilities <= e^8) */
#define VT_CG_ATT_DMAX 256
/* Conv (vt_cgk_conv2d): stack scratch in floats for the im2col rows and their GEMM tile */
#define VT_CG_CONV_SCRATCH 65536

#endif

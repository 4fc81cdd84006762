/* cg_layout.h — constants shared by the bitcode kernels (kernels/cg_kernels.c) and the code
 * generator (codegen.c): the GEMM micro-tile and K blocking, i.e. the packed-B layout. */
#ifndef VTOPT_CG_LAYOUT_H
#define VTOPT_CG_LAYOUT_H

#define VT_CG_MR 6    /* rows of C per micro-tile */
#define VT_CG_NR 16   /* columns of C per micro-tile = width of one packed-B panel */
#define VT_CG_KC 256  /* K block kept hot in L1 per panel */

#endif

/* cg_layout.h — constants shared by the bitcode kernels (kernels/cg_kernels.c) and the code
 * generator (cg_lower.c, cg_emit_cpu.c): the GEMM micro-tile and K blocking per instruction set, i.e. the packed-B layout.
 *
 * The kernel library is compiled to bitcode once per ISA (VT_CG_ISA defined on the clang command
 * line); the code generator reads the same numbers at run time from vt_cg_isa_table, picks the
 * row that matches the target CPU's features, and packs weights with that row's NR. */
#ifndef VTOPT_CG_LAYOUT_H
#define VTOPT_CG_LAYOUT_H

#include <stdint.h>

#define VT_CG_ISA_AVX2 0     /* 256-bit vectors, 16 registers (AVX2 + FMA) */
#define VT_CG_ISA_AVX512 1   /* 512-bit vectors, 32 registers (AVX-512 F/BW/DQ/VL) */
#define VT_CG_ISA_COUNT 2

/* Per ISA: VW floats per vector; a micro-tile is MR rows x NR = 2 vectors of columns held in
 * MR * 2 accumulator registers (AVX2: 12 of 16; AVX-512: 16 of 32); KC the largest K block (a
 * packed-B panel block, KC x NR floats, stays in L1: 16 KB / 24 KB); MC the largest row block
 * (its packed A block, MC x KC floats, stays in L2). AVX-512's tile by measurement on the ViT-B
 * shapes (bench/gemm_peak.c, 2026-12-08, Intel Xeon with AVX-512, 2 threads, medians of 30):
 * 8 x 32 / KC 192 gave 72-77% of the FMA peak, 12 x 32 / KC 192 67-71%, 12 x 32 / KC 384
 * 65-78%; one thread 61-69% for all of 8 or 12 rows and KC 128..768. */
#define VT_CG256_VW 8
#define VT_CG256_MR 6
#define VT_CG256_NR 16
#define VT_CG256_KC 256
#define VT_CG256_MC 198
#define VT_CG512_MR 8
#define VT_CG512_KC 192
#define VT_CG512_MC 200
#define VT_CG512_VW 16
#define VT_CG512_NR 32

typedef struct vt_cg_isa_params {
  const char *name;       /* "avx2", "avx512" */
  const char *features;   /* LLVM features the kernels need, comma separated, '+' each */
  int vw, mr, nr, kc, mc;
} vt_cg_isa_params;

#ifdef VT_CG_ISA   /* the kernel library's own build: one ISA's numbers as constants */
#if VT_CG_ISA == VT_CG_ISA_AVX512
#define VT_CG_VW VT_CG512_VW
#define VT_CG_MR VT_CG512_MR
#define VT_CG_NR VT_CG512_NR
#define VT_CG_KC VT_CG512_KC
#define VT_CG_MC VT_CG512_MC
#else
#define VT_CG_VW VT_CG256_VW
#define VT_CG_MR VT_CG256_MR
#define VT_CG_NR VT_CG256_NR
#define VT_CG_KC VT_CG256_KC
#define VT_CG_MC VT_CG256_MC
#endif
#else
static const vt_cg_isa_params vt_cg_isa_table[VT_CG_ISA_COUNT] = {
    {"avx2", "+avx2,+fma", VT_CG256_VW, VT_CG256_MR, VT_CG256_NR, VT_CG256_KC, VT_CG256_MC},
    {"avx512", "+avx512f,+avx512bw,+avx512dq,+avx512vl,+avx2,+fma", VT_CG512_VW, VT_CG512_MR, VT_CG512_NR,
     VT_CG512_KC, VT_CG512_MC},
};
#endif

/* GEMM work partition (vt_cgk_gemm and the parallel-for that calls it): rows are cut into
 * equal row blocks of at most mc_max rows (whole micro-tiles), a work unit is one (row block,
 * panel) pair, units numbered row block major. A ViT GEMM (197 rows) has one row block, so two
 * threads split the panels (N) and each reads half of B; several row blocks appear only for
 * long token sequences. Everything below depends on M at run time only through these helpers;
 * the kernels call them with their ISA's constants, the code generator with its table row's. */
static inline int64_t vt_cg_gemm_mblocks_p(int64_t M, int64_t mc_max) { return (M + mc_max - 1) / mc_max; }
static inline int64_t vt_cg_gemm_mc_p(int64_t M, int64_t mc_max, int64_t mr) {   /* rows per row block (a multiple of mr) */
  int64_t nb = vt_cg_gemm_mblocks_p(M, mc_max);
  int64_t mc = nb ? (M + nb - 1) / nb : 0;
  return (mc + mr - 1) / mr * mr;
}
static inline int64_t vt_cg_gemm_units_p(int64_t M, int64_t N, int64_t mc_max, int64_t nr) {
  return vt_cg_gemm_mblocks_p(M, mc_max) * ((N + nr - 1) / nr);
}

/* fused attention (vt_cgk_attention): query rows per work unit, keys per online-softmax step,
 * largest head dim (scratch on the stack). QB is a multiple of every ISA's MR, KB of every NR. */
#define VT_CG_ATT_QB 96
#define VT_CG_ATT_KB 64
#define VT_CG_ATT_RESCALE 8.0f   /* online softmax: how far a block's max may exceed the running max
                                  * before the running max moves (probabilities <= e^8) */
#define VT_CG_ATT_DMAX 256
/* Conv (vt_cgk_conv2d): stack scratch in floats for the im2col rows and their GEMM tile */
#define VT_CG_CONV_SCRATCH 65536

#endif

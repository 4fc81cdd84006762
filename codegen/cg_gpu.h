/* cg_gpu.h — the GPU target's internal entry points (cg_emit_nvptx.c, cg_gpu_so.c); the public
 * ones are in codegen.h (vt_cg_emit_ptx, vt_cg_emit_so with opt->target "cuda"). */
#ifndef VT_CG_GPU_H
#define VT_CG_GPU_H

#include <stddef.h>

#include "codegen.h"

/* --gpu name check (sm_80, sm_90; NULL: sm_80) */
int cg_gpu_check_options(const vt_cg_options *opt, vt_error *e);
/* Lowers g (cg_plan), refuses by name what has no GPU kernel, emits the NVPTX module and returns
 * the serialized GPU plan (gpu/gpu_plan.h; malloc'd) with the PTX inside. */
int cg_gpu_compile(const vt_graph *g, const vt_cg_options *opt, unsigned char **plan, size_t *plan_len, vt_error *e);
/* -o FILE.so --target cuda */
int cg_gpu_emit_so(const vt_graph *g, const vt_cg_options *opt, const char *path, const char *tag, vt_error *e);

#endif

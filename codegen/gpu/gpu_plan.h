/* gpu_plan.h — the serialized GPU plan of a CUDA fast.so (written by cg_emit_nvptx.c / cg_gpu_so.c,
 * read by the host runtime gpu_rt.c inside the library): the device pointer table's slots (what
 * each one holds and how big it is), the kernel launches in order, the PTX text and the constant
 * data uploaded once at create. Every kernel takes one parameter: the device address of the
 * pointer table (one 64-bit device pointer per slot). No LLVM and no CUDA headers here. */
#ifndef VT_GPU_PLAN_H
#define VT_GPU_PLAN_H

#include <stdint.h>

#define VT_GPU_PLAN_MAGIC 0x31555047u   /* "GPU1" */
#define VT_GPU_THREADS 256              /* threads per block of every kernel (cg_gpu_kernels.c) */

/* slot kinds: an activation (device buffer, written by kernels), graph input i (copied in by run),
 * graph output i (copied out by run), constant data (uploaded at create), an alias of slot index
 * (a view: the same device memory) */
enum { VT_GS_ACT, VT_GS_INPUT, VT_GS_OUTPUT, VT_GS_CONST, VT_GS_ALIAS };

typedef struct vt_gpu_slot {
  int32_t kind, index;     /* INPUT / OUTPUT: graph input / output number; ALIAS: the slot aliased */
  int64_t bytes;           /* device bytes (ALIAS: 0) */
  int64_t data_off;        /* CONST: offset of its bytes in the plan's constant data */
  int32_t dtype, rank;     /* INPUT / OUTPUT: ONNX dtype number and dims (checked / given by run) */
  int64_t dims[8];
} vt_gpu_slot;

typedef struct vt_gpu_launch {
  char kernel[48];         /* entry name in the PTX */
  uint32_t grid_x, grid_y, block_x;
  int32_t group;           /* the lowering's group (for messages) */
} vt_gpu_launch;

typedef struct vt_gpu_plan_hdr {
  uint32_t magic, n_slots, n_launches, n_inputs;
  uint32_t n_outputs, pad;
  uint64_t ptx_off, ptx_len;     /* NUL-terminated PTX text (ptx_len includes the NUL) */
  uint64_t data_off, data_len;   /* constant data */
  char gpu[16];                  /* sm_80 / sm_90 */
} vt_gpu_plan_hdr;
/* layout: hdr, slots[n_slots], launches[n_launches], ptx, data (8-byte aligned offsets) */

#endif

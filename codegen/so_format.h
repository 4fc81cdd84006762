/* so_format.h — the model description a fast.so carries (written by cg_so.c, read by
 * so_support.c; both are built from one tree, so it is not a stable file format). All integers
 * little-endian, strings as i64 length + bytes:
 *   i32 magic; str path; i32 n; n x (str domain, i64 version)
 *   i32 n_syms; each: i32 kind, str name (named symbols; else ""), i64 a, i64 b, i64 upper
 *                       (vt_sym: the graph's symbol table verbatim, so dims keep their meaning)
 *   i32 n_values; each: str name, i32 dtype, i32 rank, i64 dims[rank] (vt_dim: constant or symbol),
 *                       i64 data_off (-1: no data),
 *                       i64 nbytes            (constant data lives in a separate aligned global)
 *   i32 n_nodes; each: str name, str op, str domain, i32 n_in, i32 in[], i32 n_out, i32 out[],
 *                      i32 n_attr, attrs (str name, i32 type, payload by type; only for nodes
 *                      that run interpreter kernels)
 *   i32 n_inputs, i32 in[]; i32 n_outputs, i32 out[] */
#ifndef VTOPT_SO_FORMAT_H
#define VTOPT_SO_FORMAT_H

#include <stdint.h>

#include "cg_rt.h"

#define VT_SO_MAGIC 0x32475456   /* "VTG2" */

/* The generated module's constant descriptor; its layout is built with the IR builder in
 * cg_so.c (emit_so_abi): keep both in sync. */
typedef struct vt_so_desc {
  const uint8_t *graph;
  int64_t graph_len;
  const uint8_t *data;
  const int64_t *offsets;    /* per value: arena offset, -1 none, <= VT_CG_PERSIST persistent (cg_rt.h) */
  int64_t n_values;
  int64_t arena_size;
  vt_cg_entry_fn entry;
  const char *cpu;           /* the CPU the code was built for (LLVM name) and its ISA, "znver4 (avx512)" */
  const char *features;      /* CPU features the code may use, comma separated (cg_cpu.c names):
                              * vt_so_create refuses a CPU that lacks one */
} vt_so_desc;

typedef struct vt_so_session vt_so_session;
int vt_so_create(const vt_so_desc *d, int threads, vt_so_session **out);
int vt_so_run(vt_so_session *s, const vt_tensor *inputs, vt_tensor *outputs);
int vt_so_reset(vt_so_session *s);
int vt_so_set(vt_so_session *s, const char *knob, double value);
int vt_so_state_info(const vt_so_session *s, int64_t *bytes, int64_t *updated, int64_t *seen);
const char *vt_so_last_error(const vt_so_session *s);
void vt_so_destroy(vt_so_session *s);

/* The compiler and the static libraries `-o fast.so` links with (so_toolchain.c): installed
 * copies beside an installed vtopt, else the build tree's. */
const char *vt_cg_so_cc(void);
const char *vt_cg_so_libs(void);

#endif

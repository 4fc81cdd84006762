/* cg_gpu_so.c — the CUDA fast.so writer (-o FILE.so --target cuda). */
#include "cg_internal.h"
#include "cg_gpu.h"

int cg_gpu_emit_so(const vt_graph *g, const vt_cg_options *opt, const char *path, const char *tag, vt_error *e) {
  (void)g; (void)opt; (void)tag;
  return vt_errorf(e, VT_ERR_MODEL, "%s: -o FILE.so --target cuda is not built yet (use -o FILE.ptx)", path);
}

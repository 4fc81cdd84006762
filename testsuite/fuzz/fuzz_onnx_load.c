/* fuzz_onnx_load.c — libFuzzer target for the ONNX reader: any byte string must either load
 * (then shape inference and the verifier run on it) or fail with VT_ERR_MODEL, without crashing,
 * hanging or leaking. Built with -DVTOPT_FUZZ=ON and CC=clang-19 (testsuite/fuzz/CMakeLists.txt). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "frontend.h"
#include "ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vt_graph *g = NULL;
  vt_error e = {0};
  int rc = vt_onnx_load_buffer(data, size, "fuzz.onnx", NULL, &g, &e);
  if (rc != VT_OK) {
    if (g || rc != VT_ERR_MODEL || !e.msg[0]) {
      fprintf(stderr, "bad failure contract: rc %d, graph %p, message '%s'\n", rc, (void *)g, e.msg);
      abort();
    }
    return 0;
  }
  vt_error_clear(&e);
  if (vt_graph_infer(g, &e) == VT_OK) {
    vt_error_clear(&e);
    if (vt_graph_verify(g, &e) != VT_OK) {
      /* a graph that inferred must verify: anything else is a bug in vtopt */
      fprintf(stderr, "verifier rejected an inferred graph: %s\n", e.msg);
      abort();
    }
  }
  vt_graph_free(g);
  return 0;
}

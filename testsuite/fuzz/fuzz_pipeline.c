/* fuzz_pipeline.c — libFuzzer target for the pass-pipeline parser (--pass= strings with
 * parameters): any string must parse or fail with VT_ERR_MODEL and a message; a pipeline that
 * parses is then run on the trained glyphvit model (testsuite/models/trained, loaded once and
 * re-read from memory per input), where a pass must either rewrite a graph that still verifies
 * or refuse with VT_ERR_MODEL: never crash, hang, leak or report an internal error. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "ir.h"
#include "passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *model_bytes;
static size_t model_len;

static void fail(const char *what, const char *spec, const char *msg) {
  fprintf(stderr, "fuzz_pipeline: %s for '%s': %s\n", what, spec, msg);
  abort();
}

static void load_model_bytes(void) {
  const char *path = getenv("VTOPT_FUZZ_MODEL");
  if (!path) path = VT_SOURCE_DIR "/testsuite/models/trained/glyphvit.onnx";
  FILE *f = fopen(path, "rb");
  if (!f) fail("cannot open the model", path, "set VTOPT_FUZZ_MODEL");
  fseek(f, 0, SEEK_END);
  model_len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  model_bytes = malloc(model_len);
  if (!model_bytes || fread(model_bytes, 1, model_len, f) != model_len) fail("cannot read the model", path, "");
  fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *spec = malloc(size + 1);
  if (!spec) return 0;
  memcpy(spec, data, size);
  spec[size] = 0;
  vt_pipeline pl;
  vt_error e = {0};
  int rc = vt_pipeline_parse(spec, &pl, &e);
  if (rc != VT_OK) {
    if (rc != VT_ERR_MODEL || !e.msg[0] || pl.steps || pl.n) fail("bad failure contract", spec, e.msg);
    free(spec);
    return 0;
  }
  if (pl.n < 0 || (pl.n && !pl.steps)) fail("inconsistent pipeline", spec, "");
  if (!model_bytes) load_model_bytes();
  vt_graph *g = NULL;
  const char *pin = "batch";
  int64_t two = 2;
  vt_error_clear(&e);
  if (vt_onnx_load_buffer(model_bytes, model_len, "glyphvit.onnx", NULL, &g, &e) ||
      vt_graph_prepare(g, &pin, &two, 1, &e))
    fail("the model does not load", spec, e.msg);
  FILE *devnull = fopen("/dev/null", "w");
  vt_pipeline_opts opts = {.out = devnull};
  vt_error_clear(&e);
  rc = vt_pipeline_run(&pl, g, &opts, &e);
  if (getenv("VTOPT_FUZZ_VERBOSE"))
    fprintf(stderr, "'%s': %d steps, rc %d, %d nodes%s%s\n", spec, pl.n, rc, g->n_nodes, rc ? ": " : "", rc ? e.msg : "");
  if (rc != VT_OK && (rc != VT_ERR_MODEL || !e.msg[0])) fail("a pass failed badly", spec, e.msg);
  if (rc == VT_OK) {
    vt_error_clear(&e);
    if (vt_graph_verify(g, &e) != VT_OK) fail("the rewritten graph does not verify", spec, e.msg);
  }
  if (devnull) fclose(devnull);
  vt_graph_free(g);
  vt_pipeline_free(&pl);
  free(spec);
  return 0;
}

/* test_cli.c — the vtopt command line end to end: exit codes and messages for good runs and
 * for bad input (missing file, unknown option, .npy of the wrong dtype or shape, unpinned
 * symbolic dims, absent features), run on ONNX test-data models with inputs written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontend.h"
#include "ir.h"

#define VTOPT VT_BINARY_DIR "/vtopt"
#define RELU "/usr/include/onnx/backend/test/data/node/test_relu/model.onnx"
#define ADD_BCAST "/usr/include/onnx/backend/test/data/node/test_add_bcast/model.onnx"

static char tmpdir[256];
static char out[65536];

/* Runs a shell command line, captures stdout+stderr into `out`, returns the exit code. */
static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[4200];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void write_npy(const char *name, vt_dtype dt, int32_t rank, const int64_t *dims, float fill) {
  vt_tensor t = {0};
  vt_error e = {0};
  assert_int_equal(vt_tensor_alloc(&t, dt, rank, dims, &e), VT_OK);
  int64_t n = vt_tensor_numel(&t);
  for (int64_t i = 0; i < n; i++) {
    if (dt == VT_F32) ((float *)t.data)[i] = fill * (float)(i % 7 - 3);
    else if (dt == VT_F64) ((double *)t.data)[i] = fill * (double)(i % 7 - 3);
    else if (dt == VT_I64) ((int64_t *)t.data)[i] = i;
  }
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  assert_int_equal(vt_npy_write(path, &t, &e), VT_OK);
  vt_tensor_free(&t);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vt_cli_XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  int64_t d345[3] = {3, 4, 5}, d34[2] = {3, 4};
  write_npy("x345.npy", VT_F32, 3, d345, 0.5f);
  write_npy("x34.npy", VT_F32, 2, d34, 0.5f);
  write_npy("i345.npy", VT_I64, 3, d345, 0);
  write_npy("xd345.npy", VT_F64, 3, d345, 0.5f);   /* x345's values as float64 */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_run_writes_outputs(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " RELU " --run --input x=%s/x345.npy --output-dir %s/out", tmpdir, tmpdir), 0);
  assert_non_null(strstr(out, "output y"));
  vt_tensor y = {0};
  vt_error e = {0};
  char path[512];
  snprintf(path, sizeof path, "%s/out/y.npy", tmpdir);
  assert_int_equal(vt_npy_read(path, &y, &e), VT_OK);
  assert_int_equal(y.rank, 3);
  for (int i = 0; i < 60; i++) {
    float x = 0.5f * (float)(i % 7 - 3);
    assert_true(((float *)y.data)[i] == (x > 0 ? x : 0));
  }
  vt_tensor_free(&y);
  /* the same through the `run` subcommand, and compare-outputs agrees with itself */
  assert_int_equal(sh(VTOPT " run " RELU " --input x=%s/x345.npy --output-dir %s/out2/a/b -q", tmpdir, tmpdir), 0);
  assert_int_equal(sh(VTOPT " compare-outputs %s/out/y.npy %s/out2/a/b/y.npy --max-rel-l2 0", tmpdir, tmpdir), 0);
  assert_non_null(strstr(out, "cosine 1.0"));
  /* the same values in another dtype are a mismatch, not a pass */
  assert_int_equal(sh(VTOPT " compare-outputs %s/x345.npy %s/xd345.npy --max-rel-l2 0", tmpdir, tmpdir), 2);
  assert_non_null(strstr(out, "dtypes differ: f32 vs f64"));
}

static void test_random_inputs_are_deterministic(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " ADD_BCAST " --run --random-inputs --seed 7 --output-dir %s/r1 -q", tmpdir), 0);
  assert_int_equal(sh(VTOPT " " ADD_BCAST " --run --random-inputs --seed 7 --output-dir %s/r2 -q", tmpdir), 0);
  assert_int_equal(sh(VTOPT " " ADD_BCAST " --run --random-inputs --seed 8 --output-dir %s/r3 -q", tmpdir), 0);
  assert_int_equal(sh(VTOPT " compare-outputs %s/r1/sum.npy %s/r2/sum.npy --max-rel-l2 0", tmpdir, tmpdir), 0);
  assert_int_equal(sh(VTOPT " compare-outputs %s/r1/sum.npy %s/r3/sum.npy --max-rel-l2 1e-3", tmpdir, tmpdir), 1);
  assert_non_null(strstr(out, "FAIL: rel_l2"));
}

static void test_missing_model_file(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " %s/nope.onnx --run", tmpdir), 2);
  assert_non_null(strstr(out, "nope.onnx"));
}

static void test_unknown_option(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " RELU " --frobnicate"), 2);
  assert_non_null(strstr(out, "unknown option '--frobnicate'"));
}

static void test_npy_wrong_dtype(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " RELU " --run --input x=%s/i345.npy", tmpdir), 2);
  assert_non_null(strstr(out, "i345.npy"));
  assert_non_null(strstr(out, "input 'x': got dtype i64, the model wants f32[3,4,5]"));
}

static void test_npy_wrong_shape(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " RELU " --run --input x=%s/x34.npy", tmpdir), 2);
  assert_non_null(strstr(out, "x34.npy"));
  assert_non_null(strstr(out, "input 'x': got rank 2"));
}

static void test_unknown_input_name_and_missing_input(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " RELU " --run --input nothere=%s/x345.npy", tmpdir), 2);
  assert_non_null(strstr(out, "the model has no input named 'nothere'"));
  assert_int_equal(sh(VTOPT " " RELU " --run"), 2);
  assert_non_null(strstr(out, "input 'x' is not given"));
}

static void test_absent_features_say_so(void **state) {
  (void)state;
  /* the GPU path writes PTX (issue 16) but has no JIT: --target cuda --run says so */
  assert_int_equal(sh(VTOPT " " RELU " -o %s/fast.ptx -q", tmpdir), 0);
  assert_int_equal(sh(VTOPT " " RELU " --run --random-inputs --target cuda"), 2);
  assert_non_null(strstr(out, "running on the GPU from the compiler is not built"));
  assert_int_equal(sh(VTOPT " " RELU " --pass=frobnicate"), 2);
  assert_non_null(strstr(out, "unknown pass 'frobnicate'; known passes: fuse-attention"));
}

static void test_compile_to_shared_library(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " " RELU " -o %s/relu_model.so --stats", tmpdir), 0);
  assert_non_null(strstr(out, "symbols relu_model_*"));
  assert_non_null(strstr(out, "1 of 1 nodes in generated kernels"));   /* the Relu is generated code */
  assert_null(strstr(out, "host kernel"));
  char path[512];
  snprintf(path, sizeof path, "%s/relu_model.so", tmpdir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true(st.st_size > 0);
  /* the library it built loads and runs (through its ABI) and agrees with the interpreter */
  assert_int_equal(sh(VTOPT " " RELU " --run --input x=%s/x345.npy --output-dir %s/so_ref -q", tmpdir, tmpdir), 0);
  assert_int_equal(sh(VTOPT " run %s/relu_model.so --input x=%s/x345.npy --output-dir %s/so_out", tmpdir, tmpdir,
                      tmpdir), 0);
  assert_non_null(strstr(out, "its compiled code"));
  assert_int_equal(sh(VTOPT " compare-outputs %s/so_ref/y.npy %s/so_out/y.npy --max-rel-l2 1e-6", tmpdir, tmpdir), 0);
  /* --jit runs the compiled code and agrees with the interpreter */
  assert_int_equal(sh(VTOPT " " RELU " --run --jit --input x=%s/x345.npy --output-dir %s/jit -q", tmpdir, tmpdir), 0);
  assert_int_equal(sh(VTOPT " compare-outputs %s/out/y.npy %s/jit/y.npy --max-rel-l2 1e-6", tmpdir, tmpdir), 0);
}

#define GLYPHVIT VT_SOURCE_DIR "/testsuite/models/trained/glyphvit"

/* compare --stream: the 64 held-out images as frames of one stream; eventful with r >= N equals
 * dense on every frame (PREFIX.frames.csv: per frame latency and cosine of each strategy) */
static void test_compare_stream(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " compare " GLYPHVIT ".onnx --passes none,eventful:r=100 --stream " GLYPHVIT
                      ".in.pixel_values.npy --frames 12 --threads 2 --out %s/cs", tmpdir), 0);
  assert_non_null(strstr(out, "eventful:r=100"));
  char path[512], line[1024];
  snprintf(path, sizeof path, "%s/cs.frames.csv", tmpdir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  int lines = 0;
  while (fgets(line, sizeof line, f)) {
    if (lines++ == 0) {
      assert_non_null(strstr(line, "\"eventful:r=100 cosine\""));
      continue;
    }
    double v[5];
    int fr;
    assert_int_equal(sscanf(line, "%d,%lf,%lf,%lf,%lf", &fr, &v[0], &v[1], &v[2], &v[3]), 5);
    assert_int_equal(fr, lines - 2);
    assert_true(v[0] > 0 && v[2] > 0);                   /* latencies */
    assert_true(v[1] == 1.0 && v[3] > 0.99999);          /* dense vs itself; eventful r >= N */
  }
  fclose(f);
  assert_int_equal(lines, 13);
}

/* compare: the trained ViT under none / tome on its 64 real held-out images */
static void test_compare_strategies(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " compare " GLYPHVIT ".onnx --passes none,tome:r=4 --input " GLYPHVIT
                      ".in.pixel_values.npy --runs 2 --out %s/cmp", tmpdir), 0);
  assert_non_null(strstr(out, "tome:r=4"));
  assert_non_null(strstr(out, "37>25"));   /* 4 blocks merging 4 tokens each: 37 -> 25 keys */
  char path[512], line[1024];
  snprintf(path, sizeof path, "%s/cmp.csv", tmpdir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  int lines = 0;
  double cosine = 0, top1 = 0;
  while (fgets(line, sizeof line, f)) {
    lines++;
    if (lines == 3) {
      /* strategy,median,min,max,speedup,gflops,partial,layers,tok_first,tok_last,cosine,rel_l2,max_abs,top1 */
      char *p = line;
      for (int k = 0; k < 10; k++) p = strchr(p, ',') + 1;
      cosine = strtod(p, NULL);
      for (int k = 0; k < 3; k++) p = strchr(p, ',') + 1;
      top1 = strtod(p, NULL);
    }
  }
  fclose(f);
  assert_int_equal(lines, 3);
  assert_true(cosine > 0.999 && cosine <= 1.0);
  assert_true(top1 >= 0.95);
  snprintf(path, sizeof path, "%s/cmp.svg", tmpdir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  /* a bad strategy fails that row, not the run; a bad reference fails the run */
  assert_int_equal(sh(VTOPT " compare " GLYPHVIT ".onnx --passes none,nosuchpass --input " GLYPHVIT
                      ".in.pixel_values.npy --runs 1 --out %s/cmp2", tmpdir), 0);
  assert_non_null(strstr(out, "failed:"));
}

static void test_inspect_and_onnx_output(void **state) {
  (void)state;
  assert_int_equal(sh(VTOPT " inspect " ADD_BCAST), 0);
  assert_non_null(strstr(out, "op histogram:"));
  assert_non_null(strstr(out, "Add"));
  assert_int_equal(sh(VTOPT " " ADD_BCAST " -o %s/saved.onnx -q", tmpdir), 0);
  assert_int_equal(sh(VTOPT " %s/saved.onnx --run --random-inputs --seed 7 --output-dir %s/r4 -q", tmpdir, tmpdir), 0);
  assert_int_equal(sh(VTOPT " " ADD_BCAST " --run --random-inputs --seed 7 --output-dir %s/r5 -q", tmpdir), 0);
  assert_int_equal(sh(VTOPT " compare-outputs %s/r5/sum.npy %s/r4/sum.npy --max-rel-l2 0", tmpdir, tmpdir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_run_writes_outputs),
      cmocka_unit_test(test_random_inputs_are_deterministic),
      cmocka_unit_test(test_missing_model_file),
      cmocka_unit_test(test_unknown_option),
      cmocka_unit_test(test_npy_wrong_dtype),
      cmocka_unit_test(test_npy_wrong_shape),
      cmocka_unit_test(test_unknown_input_name_and_missing_input),
      cmocka_unit_test(test_absent_features_say_so),
      cmocka_unit_test(test_compile_to_shared_library),
      cmocka_unit_test(test_compare_strategies),
      cmocka_unit_test(test_compare_stream),
      cmocka_unit_test(test_inspect_and_onnx_output),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

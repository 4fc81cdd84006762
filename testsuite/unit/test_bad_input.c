/* test_bad_input.c — the frontend on bad input: every case must return VT_ERR_MODEL with a
 * message naming the file (and node), never crash, and leak nothing (run under ASan in sanitizer
 * builds). Bad models come from testsuite/data/frontend/make_fixtures.py (onnx.helper, checker
 * off) or are built from raw bytes here. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "frontend.h"
#include "ir.h"

#define FX VT_BINARY_DIR "/testsuite/fixtures_bad_input"
#define SCRIPT VT_SOURCE_DIR "/testsuite/data/frontend/make_fixtures.py"

static int setup_fixtures(void **state) {
  (void)state;
  if (system("rm -rf '" FX "' && /usr/bin/python3 '" SCRIPT "' '" FX "'") != 0) {
    fprintf(stderr, "fixture generation failed (needs /usr/bin/python3 with python3-onnx)\n");
    return -1;
  }
  return 0;
}

/* Loads path expecting VT_ERR_MODEL and every fragment (NULL-terminated) in the message. */
static void expect_load_error(const char *path, ...) {
  vt_graph *g = (vt_graph *)0x1;
  vt_error e = {0};
  int rc = vt_onnx_load(path, &g, &e);
  fprintf(stderr, "  -> %s\n", e.msg);
  assert_int_equal(rc, VT_ERR_MODEL);
  assert_null(g);
  assert_int_equal(e.code, VT_ERR_MODEL);
  assert_non_null(strstr(e.msg, path));
  va_list ap;
  va_start(ap, path);
  for (const char *s; (s = va_arg(ap, const char *));) {
    if (!strstr(e.msg, s)) fail_msg("message '%s' lacks '%s'", e.msg, s);
  }
  va_end(ap);
}

#define BAD(name) FX "/bad/" name ".onnx"
#define CASE(fn, file, ...) \
  static void fn(void **state) { (void)state; expect_load_error(file, __VA_ARGS__, NULL); }

CASE(test_unknown_op, BAD("unknown_op"), "node 'n0' (FooBar): unknown op (domain 'ai.onnx')")
CASE(test_unknown_domain, BAD("unknown_domain"), "node 'n0' (Relu): unknown op (domain 'com.example')")
CASE(test_wrong_arity, BAD("wrong_arity"), "node 'n0' (Add): has 1 inputs, expects 2")
CASE(test_too_many_outputs, BAD("too_many_outputs"), "node 'n0' (Relu): has 2 outputs, expects 1")
CASE(test_undefined_input, BAD("undefined_input"), "node 'n0' (Add): input 'nope' is not defined")
CASE(test_duplicate_value, BAD("duplicate_value"), "node 'n1' (Relu): output 'y' is already defined by node 'n0'")
CASE(test_output_is_input, BAD("output_is_input"), "node 'n0' (Relu): output 'x' is already defined by a graph input")
CASE(test_cycle, BAD("cycle"), "cycle")
CASE(test_overflow_dims, BAD("overflow_dims"), "initializer 'big'", "[1099511627776, 1099511627776] overflow")
CASE(test_bad_attr, BAD("bad_attr"), "node 'n0' (Relu): attribute 'foo' is not supported")
CASE(test_attr_type, BAD("attr_type"), "node 'n0' (LeakyRelu): attribute 'alpha' has type int, expected float")
CASE(test_subgraph, BAD("subgraph"), "node 'n0' (If): attribute '", "holds a subgraph; subgraphs (If/Loop/Scan) are not supported")
CASE(test_raw_size, BAD("raw_size"), "initializer 'w': raw_data has 8 bytes, expected 16")
CASE(test_typed_count, BAD("typed_count"), "initializer 'w': float_data has 3 values, expected 4")
CASE(test_missing_output, BAD("missing_output"), "graph output 'zz' is not defined")
CASE(test_string_init, BAD("string_init"), "initializer 's': string tensors are not supported")
CASE(test_sequence_input, BAD("sequence_input"), "graph input 'x' has a sequence type")
CASE(test_rank9_input, BAD("rank9_input"), "graph input 'x' has rank 9")
CASE(test_no_shape_input, BAD("no_shape_input"), "graph input 'x' has no shape (unknown rank)")
CASE(test_string_constant, BAD("string_constant"), "node 'n0' (Constant): string constants are not supported")
CASE(test_dup_init, BAD("dup_init"), "initializer 'w' is defined twice")
CASE(test_bad_dtype_init, BAD("bad_dtype_init"), "initializer 'w': unsupported data type 14")
CASE(test_negative_dim_init, BAD("negative_dim_init"), "initializer 'w': negative dim")
CASE(test_ext_dotdot, FX "/ext/escape_dotdot.onnx", "initializer 'w1'", "'../outside.bin' escapes the model's folder")
CASE(test_ext_absolute, FX "/ext/escape_abs.onnx", "initializer 'w1'", "is absolute")
CASE(test_ext_symlink, FX "/ext/escape_link.onnx", "'link.bin' resolves outside the model's folder")
CASE(test_ext_past_end, FX "/ext/past_end.onnx", "is past the end of 'weights.bin'")
CASE(test_ext_missing, FX "/ext/missing.onnx", "cannot open external data 'missing.bin'")
CASE(test_missing_file, FX "/no_such_model.onnx", "cannot open")

static void *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = malloc((size_t)len);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return buf;
}

static void expect_buffer_error(const void *buf, size_t n, const char *base, const char *frag) {
  vt_graph *g = NULL;
  vt_error e = {0};
  int rc = vt_onnx_load_buffer(buf, n, "buf.onnx", base, &g, &e);
  fprintf(stderr, "  -> %s\n", e.msg);
  assert_int_equal(rc, VT_ERR_MODEL);
  assert_null(g);
  assert_non_null(strstr(e.msg, "buf.onnx: "));
  if (!strstr(e.msg, frag)) fail_msg("message '%s' lacks '%s'", e.msg, frag);
}

static void test_truncated_protobuf(void **state) {
  (void)state;
  size_t n;
  char *buf = slurp(FX "/roundtrip.onnx", &n);
  /* every cut inside the first bytes and at the half must fail cleanly */
  expect_buffer_error(buf, n / 2, NULL, "not a valid ONNX model");
  for (size_t cut = 1; cut < 64; cut++) {
    vt_graph *g = NULL;
    vt_error e = {0};
    int rc = vt_onnx_load_buffer(buf, cut, "buf.onnx", NULL, &g, &e);
    assert_int_equal(rc, VT_ERR_MODEL);
    assert_null(g);
  }
  /* a truncated file on disk */
  FILE *f = fopen(FX "/truncated.onnx", "wb");
  assert_non_null(f);
  fwrite(buf, 1, n - 3, f);
  fclose(f);
  free(buf);
  expect_load_error(FX "/truncated.onnx", "not a valid ONNX model", NULL);
}

static void test_corrupt_protobuf(void **state) {
  (void)state;
  uint8_t buf[4096];
  uint32_t s = 12345;
  for (int round = 0; round < 200; round++) {
    for (size_t i = 0; i < sizeof buf; i++) {
      s = s * 1103515245u + 12345u;
      buf[i] = (uint8_t)(s >> 16);
    }
    vt_graph *g = NULL;
    vt_error e = {0};
    int rc = vt_onnx_load_buffer(buf, sizeof buf, "buf.onnx", NULL, &g, &e);
    assert_int_equal(rc, VT_ERR_MODEL);
    assert_null(g);
    assert_non_null(strstr(e.msg, "buf.onnx: "));
  }
  /* a flipped byte inside a valid model */
  size_t n;
  uint8_t *m = slurp(FX "/roundtrip.onnx", &n);
  for (size_t i = 0; i < n; i += 7) {
    uint8_t old = m[i];
    m[i] ^= 0xff;
    vt_graph *g = NULL;
    vt_error e = {0};
    int rc = vt_onnx_load_buffer(m, n, "buf.onnx", NULL, &g, &e);
    assert_true(rc == VT_OK || rc == VT_ERR_MODEL);
    if (rc == VT_OK) assert_non_null(g);
    else assert_null(g);
    vt_graph_free(g);
    m[i] = old;
  }
  free(m);
  expect_buffer_error("\x0a\x05hello\xff", 8, NULL, "not a valid ONNX model");
}

/* Appends a length-delimited field. */
static size_t put_field(uint8_t *out, unsigned field, const uint8_t *body, size_t n) {
  size_t k = 0;
  out[k++] = (uint8_t)(field << 3 | 2);
  size_t v = n;
  do {
    out[k] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) out[k] |= 0x80;
    k++;
  } while (v);
  memmove(out + k, body, n);
  return k + n;
}

/* Graph -> node -> attribute -> graph ... nested 200 levels: rejected before protobuf-c recurses. */
static void test_deep_nesting(void **state) {
  (void)state;
  size_t cap = 1 << 16;
  uint8_t *a = calloc(cap, 1), *b = calloc(cap, 1);
  assert_non_null(a);
  assert_non_null(b);
  size_t n = 0;
  for (int level = 0; level < 200; level++) {
    n = put_field(b, 6, a, n);  /* AttributeProto.g */
    n = put_field(a, 5, b, n);  /* NodeProto.attribute */
    n = put_field(b, 1, a, n);  /* GraphProto.node */
    memcpy(a, b, n);
  }
  n = put_field(b, 7, a, n);    /* ModelProto.graph */
  expect_buffer_error(b, n, NULL, "nested deeper than");
  free(a);
  free(b);
}

static void test_external_from_memory(void **state) {
  (void)state;
  size_t n;
  char *buf = slurp(FX "/ext/model.onnx", &n);
  expect_buffer_error(buf, n, NULL, "needs the model's folder");
  free(buf);
}

static void test_model_over_2gib(void **state) {
  (void)state;
  const char *p = FX "/huge.onnx";
  int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)INT32_MAX + 2), 0);  /* sparse: no disk used */
  close(fd);
  expect_load_error(p, "over 2 GiB", "external data", NULL);
  unlink(p);
}

/* ---------- .npy and .pb ---------------------------------------------------------------------- */

static void expect_npy_error(const char *name, const char *frag) {
  char path[512];
  snprintf(path, sizeof path, FX "/npy/%s", name);
  vt_tensor t;
  vt_error e = {0};
  int rc = vt_npy_read(path, &t, &e);
  fprintf(stderr, "  -> %s\n", e.msg);
  assert_int_equal(rc, VT_ERR_MODEL);
  assert_null(t.data);
  assert_non_null(strstr(e.msg, path));
  if (!strstr(e.msg, frag)) fail_msg("message '%s' lacks '%s'", e.msg, frag);
}

#define NPY(fn, file, frag) \
  static void fn(void **state) { (void)state; expect_npy_error(file, frag); }
NPY(test_npy_truncated_data, "truncated_data.npy", "size mismatch")
NPY(test_npy_truncated_header, "truncated_header.npy", "truncated .npy header")
NPY(test_npy_bad_magic, "bad_magic.npy", "not a .npy file")
NPY(test_npy_bad_version, "bad_version.npy", "unsupported .npy version 9")
NPY(test_npy_fortran, "fortran.npy", "fortran_order True is not supported")
NPY(test_npy_bad_header, "bad_header.npy", "bad .npy header")
NPY(test_npy_big_endian, "big_endian.npy", "big-endian")
NPY(test_npy_complex, "complex.npy", "unsupported .npy dtype '<c8'")
NPY(test_npy_size_mismatch, "size_mismatch.npy", "size mismatch: header says f32 [2, 4] (32 bytes of data), the file has 24")
NPY(test_npy_extra_data, "extra_data.npy", "size mismatch")
NPY(test_npy_missing, "nope.npy", "cannot open")

static void expect_pb_error(const char *name, const char *frag) {
  char path[512];
  snprintf(path, sizeof path, FX "/pb/%s", name);
  vt_tensor t;
  char *nm = NULL;
  vt_error e = {0};
  int rc = vt_tensorproto_read(path, &t, &nm, &e);
  fprintf(stderr, "  -> %s\n", e.msg);
  assert_int_equal(rc, VT_ERR_MODEL);
  assert_null(t.data);
  assert_null(nm);
  assert_non_null(strstr(e.msg, path));
  if (!strstr(e.msg, frag)) fail_msg("message '%s' lacks '%s'", e.msg, frag);
}

static void test_pb_truncated(void **state) { (void)state; expect_pb_error("truncated.pb", "not a valid TensorProto"); }
static void test_pb_string(void **state) { (void)state; expect_pb_error("string.pb", "string tensors are not supported"); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_truncated_protobuf),
      cmocka_unit_test(test_corrupt_protobuf),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_unknown_op),
      cmocka_unit_test(test_unknown_domain),
      cmocka_unit_test(test_wrong_arity),
      cmocka_unit_test(test_too_many_outputs),
      cmocka_unit_test(test_undefined_input),
      cmocka_unit_test(test_duplicate_value),
      cmocka_unit_test(test_output_is_input),
      cmocka_unit_test(test_cycle),
      cmocka_unit_test(test_overflow_dims),
      cmocka_unit_test(test_bad_attr),
      cmocka_unit_test(test_attr_type),
      cmocka_unit_test(test_subgraph),
      cmocka_unit_test(test_raw_size),
      cmocka_unit_test(test_typed_count),
      cmocka_unit_test(test_missing_output),
      cmocka_unit_test(test_string_init),
      cmocka_unit_test(test_sequence_input),
      cmocka_unit_test(test_rank9_input),
      cmocka_unit_test(test_no_shape_input),
      cmocka_unit_test(test_string_constant),
      cmocka_unit_test(test_dup_init),
      cmocka_unit_test(test_bad_dtype_init),
      cmocka_unit_test(test_negative_dim_init),
      cmocka_unit_test(test_ext_dotdot),
      cmocka_unit_test(test_ext_absolute),
      cmocka_unit_test(test_ext_symlink),
      cmocka_unit_test(test_ext_past_end),
      cmocka_unit_test(test_ext_missing),
      cmocka_unit_test(test_external_from_memory),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_model_over_2gib),
      cmocka_unit_test(test_npy_truncated_data),
      cmocka_unit_test(test_npy_truncated_header),
      cmocka_unit_test(test_npy_bad_magic),
      cmocka_unit_test(test_npy_bad_version),
      cmocka_unit_test(test_npy_fortran),
      cmocka_unit_test(test_npy_bad_header),
      cmocka_unit_test(test_npy_big_endian),
      cmocka_unit_test(test_npy_complex),
      cmocka_unit_test(test_npy_size_mismatch),
      cmocka_unit_test(test_npy_extra_data),
      cmocka_unit_test(test_npy_missing),
      cmocka_unit_test(test_pb_truncated),
      cmocka_unit_test(test_pb_string),
  };
  return cmocka_run_group_tests(tests, setup_fixtures, NULL);
}

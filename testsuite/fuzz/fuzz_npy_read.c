/* fuzz_npy_read.c — libFuzzer target for the .npy reader: any byte string, read as a file, must
 * either load (then the tensor is consistent, and writing and re-reading it gives the same bytes)
 * or fail with VT_ERR_MODEL and a message, without crashing, hanging or leaking. The bytes are
 * written to a memfd (a regular file the reader can stat) per input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frontend.h"
#include "ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int file_fd = -1, copy_fd = -1;
static char file_path[64], copy_path[64];

static void fail(const char *what, const char *msg) {
  fprintf(stderr, "fuzz_npy_read: %s: %s\n", what, msg);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (file_fd < 0) {
    file_fd = memfd_create("fuzz.npy", 0);
    copy_fd = memfd_create("copy.npy", 0);
    if (file_fd < 0 || copy_fd < 0) fail("memfd_create", "failed");
    snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
    snprintf(copy_path, sizeof copy_path, "/proc/self/fd/%d", copy_fd);
  }
  if (ftruncate(file_fd, 0) || (size && pwrite(file_fd, data, size, 0) != (ssize_t)size)) fail("write", "memfd");
  vt_tensor t;
  vt_error e = {0};
  int rc = vt_npy_read(file_path, &t, &e);
  if (rc != VT_OK) {
    if (rc != VT_ERR_MODEL || !e.msg[0] || t.data) fail("bad failure contract", e.msg);
    return 0;
  }
  if (t.rank < 0 || t.rank > VT_MAX_RANK) fail("rank out of range", "");
  for (int32_t k = 0; k < t.rank; k++)
    if (t.dims[k] < 0) fail("negative dim", "");
  size_t nbytes = vt_tensor_nbytes(&t);
  if (nbytes && !t.data) fail("no data for a non-empty tensor", "");
  if (nbytes > size) fail("more data than the file holds", "");
  /* round trip: write it back, read that, compare the payloads */
  vt_error_clear(&e);
  if (ftruncate(copy_fd, 0)) fail("truncate", "copy");
  if (vt_npy_write(copy_path, &t, &e) == VT_OK) {
    vt_tensor u;
    vt_error_clear(&e);
    if (vt_npy_read(copy_path, &u, &e) != VT_OK) fail("re-reading what was written failed", e.msg);
    if (u.dtype != t.dtype || u.rank != t.rank || memcmp(u.dims, t.dims, sizeof(int64_t) * (size_t)t.rank) ||
        (nbytes && memcmp(u.data, t.data, nbytes)))
      fail("round trip changed the tensor", "");
    vt_tensor_free(&u);
  }
  vt_tensor_free(&t);
  return 0;
}

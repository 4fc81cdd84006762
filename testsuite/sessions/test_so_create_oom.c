/* test_so_create_oom.c — a fast.so's create reports allocation failure as an error: with the
 * address space limited (RLIMIT_AS) to a little above what the process already maps, creating a
 * session of a model whose activation arena is larger than that headroom must return an error
 * code with an "out of memory" message (never crash); with the limit lifted the same create
 * succeeds and the session runs. Not under ASan (its shadow memory needs the address space).
 * usage: test_so_create_oom LIB.so TAG */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "vtopt/model.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static long mapped_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0;
  CHECK(f && fscanf(f, "%ld", &pages) == 1, "cannot read /proc/self/statm");
  fclose(f);
  return pages * 4096;
}

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: test_so_create_oom LIB.so TAG");
  void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  CHECK(dl, "dlopen: %s", dlerror());
  char name[128];
  int (*create)(int, vtopt_session **);
  const char *(*last_error)(const vtopt_session *);
  void (*destroy)(vtopt_session *);
  snprintf(name, sizeof name, "%s_create", argv[2]);
  *(void **)&create = dlsym(dl, name);
  snprintf(name, sizeof name, "%s_last_error", argv[2]);
  *(void **)&last_error = dlsym(dl, name);
  snprintf(name, sizeof name, "%s_destroy", argv[2]);
  *(void **)&destroy = dlsym(dl, name);
  CHECK(create && last_error && destroy, "missing symbols");

  struct rlimit old;
  CHECK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
  int refused = 0;
  for (long headroom = 256 << 10; headroom <= (2L << 20); headroom *= 2) {
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)(mapped_bytes() + headroom);
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit");
    vtopt_session *s = (vtopt_session *)1;
    int rc = create(1, &s);
    CHECK(setrlimit(RLIMIT_AS, &old) == 0, "restoring the limit");
    if (rc == VTOPT_OK) {
      destroy(s);
      continue;
    }
    CHECK(s == NULL, "a failed create left *out set");
    CHECK(strstr(last_error(NULL), "out of memory"), "create failed with '%s'", last_error(NULL));
    printf("headroom %ld KiB: create refused: %s\n", headroom >> 10, last_error(NULL));
    refused++;
  }
  CHECK(refused > 0, "no create failed under the limit: the test's model needs a larger arena");
  vtopt_session *s = NULL;
  CHECK(create(1, &s) == VTOPT_OK && s, "create without a limit: %s", last_error(NULL));
  destroy(s);
  dlclose(dl);
  puts("ok");
  return 0;
}

/* test_so_threads.c — the threading contract of a fast.so (include/vtopt/model.h), through dlopen:
 *  1. threads, each with its own session of one library, give results bit-equal to serial runs;
 *  2. one session called from two threads at once: every call either runs (and its result is
 *     bit-equal to the serial one) or returns VTOPT_ERR_BUSY at once with last_error "session
 *     busy" on the refused thread, and the two threads do overlap (some calls are refused);
 *  3. last_error(NULL) after a failed create is per thread.
 * Built also with ThreadSanitizer (testsuite/sessions/CMakeLists.txt: VTOPT_TSAN build).
 * usage: test_so_threads LIB.so TAG */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtopt/model.h"

#define N_THREADS 6
#define N_REPEAT 4
#define N_SHARED 60

static int (*create)(int, vtopt_session **);
static int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
static int (*reset)(vtopt_session *);
static const char *(*last_error)(const vtopt_session *);
static void (*destroy)(vtopt_session *);
static int64_t in_dims[VTOPT_MAX_RANK], out_dims[VTOPT_MAX_RANK];
static int in_rank, out_rank;
static int64_t in_n = 1, out_n = 1;
static float *inputs[N_THREADS], *refs[N_THREADS];

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

/* "dims":[a,b,...] after the n-th "dims" of the signature */
static int parse_dims(const char *sig, int nth, int64_t *dims) {
  const char *p = sig;
  for (int i = 0; i <= nth; i++) {
    p = strstr(p, "\"dims\":[");
    CHECK(p, "signature without dims: %s", sig);
    p += 8;
  }
  int r = 0;
  while (*p != ']') {
    char *end;
    dims[r++] = strtoll(p, &end, 10);
    p = *end == ',' ? end + 1 : end;
  }
  return r;
}

static int run_one(vtopt_session *s, const float *x, float *y) {
  vtopt_tensor in = {.dtype = 1, .rank = in_rank, .data = (void *)x};
  vtopt_tensor out = {.dtype = 1, .rank = out_rank, .data = y};
  memcpy(in.dims, in_dims, sizeof in_dims);
  memcpy(out.dims, out_dims, sizeof out_dims);
  return run(s, &in, &out);
}

static void *own_session(void *arg) {
  int t = (int)(intptr_t)arg;
  vtopt_session *s = NULL;
  CHECK(create(1, &s) == VTOPT_OK, "create: %s", last_error(NULL));
  float *y = malloc(sizeof(float) * (size_t)out_n);
  for (int k = 0; k < N_REPEAT; k++) {
    memset(y, 0, sizeof(float) * (size_t)out_n);
    CHECK(run_one(s, inputs[t], y) == VTOPT_OK, "thread %d: %s", t, last_error(s));
    CHECK(!memcmp(y, refs[t], sizeof(float) * (size_t)out_n), "thread %d run %d differs from the serial run", t, k);
    if (k == 1) CHECK(reset(s) == VTOPT_OK, "reset");
  }
  free(y);
  destroy(s);
  return NULL;
}

static vtopt_session *shared;
static atomic_int busy_count, ok_count;

static void *shared_session(void *arg) {
  int t = (int)(intptr_t)arg;
  float *y = malloc(sizeof(float) * (size_t)out_n);
  for (int k = 0; k < N_SHARED; k++) {
    int rc = run_one(shared, inputs[0], y);
    if (rc == VTOPT_ERR_BUSY) {
      CHECK(strstr(last_error(shared), "session busy"), "thread %d: busy with message '%s'", t, last_error(shared));
      atomic_fetch_add(&busy_count, 1);
    } else {
      CHECK(rc == VTOPT_OK, "thread %d: rc %d: %s", t, rc, last_error(shared));
      CHECK(!memcmp(y, refs[0], sizeof(float) * (size_t)out_n), "thread %d: a shared-session result was corrupted", t);
      atomic_fetch_add(&ok_count, 1);
    }
  }
  free(y);
  return NULL;
}

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: test_so_threads LIB.so TAG");
  void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  CHECK(dl, "dlopen: %s", dlerror());
  char name[128];
#define SYM(var, suffix) snprintf(name, sizeof name, "%s_%s", argv[2], suffix); \
  *(void **)&var = dlsym(dl, name); CHECK(var, "no symbol %s", name);
  const char *(*signature)(void);
  SYM(signature, "signature") SYM(create, "create") SYM(run, "run") SYM(reset, "reset")
  SYM(last_error, "last_error") SYM(destroy, "destroy")
#undef SYM
  const char *sig = signature();
  CHECK(strstr(sig, "\"dtype\":\"f32\""), "a float model expected: %s", sig);
  in_rank = parse_dims(sig, 0, in_dims);
  out_rank = parse_dims(sig, 1, out_dims);
  for (int k = 0; k < in_rank; k++) in_n *= in_dims[k];
  for (int k = 0; k < out_rank; k++) out_n *= out_dims[k];

  /* serial references, one input per thread */
  vtopt_session *s = NULL;
  CHECK(create(1, &s) == VTOPT_OK, "create: %s", last_error(NULL));
  unsigned seed = 1;
  for (int t = 0; t < N_THREADS; t++) {
    inputs[t] = malloc(sizeof(float) * (size_t)in_n);
    refs[t] = malloc(sizeof(float) * (size_t)out_n);
    for (int64_t i = 0; i < in_n; i++) {
      seed = seed * 1103515245u + 12345u;
      inputs[t][i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    CHECK(run_one(s, inputs[t], refs[t]) == VTOPT_OK, "serial run: %s", last_error(s));
  }
  CHECK(memcmp(refs[0], refs[1], sizeof(float) * (size_t)out_n), "different inputs gave equal outputs");
  destroy(s);

  pthread_t th[N_THREADS];
  for (int t = 0; t < N_THREADS; t++) pthread_create(&th[t], NULL, own_session, (void *)(intptr_t)t);
  for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
  printf("own sessions: %d threads x %d runs bit-equal to serial\n", N_THREADS, N_REPEAT);

  CHECK(create(1, &shared) == VTOPT_OK, "create: %s", last_error(NULL));
  for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, shared_session, (void *)(intptr_t)t);
  for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
  printf("shared session: %d runs, %d answered busy\n", ok_count, busy_count);
  CHECK(ok_count + busy_count == 2 * N_SHARED, "lost calls");
  CHECK(busy_count > 0, "two threads on one session never overlapped (or busy is not detected)");
  /* the refused thread's message does not leak to the owner: after a clean run, last_error is "" */
  float *y = malloc(sizeof(float) * (size_t)out_n);
  CHECK(run_one(shared, inputs[0], y) == VTOPT_OK && !last_error(shared)[0], "last_error after a good run: '%s'",
        last_error(shared));
  free(y);
  destroy(shared);
  for (int t = 0; t < N_THREADS; t++) { free(inputs[t]); free(refs[t]); }
  dlclose(dl);
  puts("ok");
  return 0;
}

/* test_so_abi.c — two different compiled models (fast.so) in one process, used through the public
 * header include/vtopt/model.h only (no vtopt internals): built twice by codegen/CMakeLists.txt,
 *   - VT_ABI_DLOPEN: both libraries dlopen'ed (RTLD_LOCAL), tagged symbols looked up by name;
 *   - otherwise: both libraries linked into the executable at link time (VTOPT_MODEL_DECLARE).
 * Each model runs on its zoo input and must match its torch reference (rel. L2 <= 1e-4), the two
 * alternately on sessions that stay open side by side; wrong rank, dtype or dims of an input or
 * an output, and NULL arguments, must return VTOPT_ERR_INPUT with a message (never crash) and
 * leave the session usable. Exit 0 = pass.
 * usage: test_so_abi [LIB_A.so LIB_B.so] IN_A.npy REF_A.npy IN_B.npy REF_B.npy
 * (the tags are TAG_A / TAG_B, compile-time definitions) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtopt/model.h"
#include "abi_util.h"

#ifdef VT_ABI_DLOPEN
#include <dlfcn.h>
#endif

#define STR2(x) #x
#define STR(x) STR2(x)

typedef struct api {
  const char *tag;
  const char *(*signature)(void);
  int (*create)(int, vtopt_session **);
  int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
  int (*reset)(vtopt_session *);
  int (*set)(vtopt_session *, const char *, double);
  const char *(*last_error)(const vtopt_session *);
  void (*destroy)(vtopt_session *);
} api;

#ifndef VT_ABI_DLOPEN
#define DECLARE(t) VTOPT_MODEL_DECLARE(t)   /* expands TAG_A before the header pastes it */
DECLARE(TAG_A)
DECLARE(TAG_B)
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define LINKED_API(t) {STR(t), CAT(t, _signature), CAT(t, _create), CAT(t, _run), CAT(t, _reset), CAT(t, _set), \
                       CAT(t, _last_error), CAT(t, _destroy)}
#endif

static int failures;
#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                       \
      fprintf(stderr, "\n");                                              \
      failures++;                                                         \
    }                                                                     \
  } while (0)

/* one correct run of m on session s, compared with ref */
static void good_run(const api *m, vtopt_session *s, const vtopt_tensor *in, const vtopt_tensor *ref) {
  vtopt_tensor out = *ref;
  out.data = calloc((size_t)numel(ref), sizeof(float));
  int rc = m->run(s, in, &out);
  CHECK(rc == VTOPT_OK, "%s_run: %s", m->tag, m->last_error(s));
  if (rc == VTOPT_OK) {
    double e = rel_l2(&out, ref);
    printf("%s: rel. L2 vs torch %.3g\n", m->tag, e);
    CHECK(e <= 1e-4, "%s: rel. L2 %g", m->tag, e);
  }
  free(out.data);
}

/* every kind of bad call must fail cleanly with a message */
static void bad_runs(const api *m, vtopt_session *s, const vtopt_tensor *in, const vtopt_tensor *ref) {
  vtopt_tensor out = *ref;
  out.data = calloc((size_t)numel(ref), sizeof(float));
  vtopt_tensor x;
  struct { const char *what; int which; } cases[] = {{"input rank", 0}, {"input dtype", 1}, {"input dim", 2},
                                                     {"input rank > max", 3}, {"input no data", 4},
                                                     {"output dims", 5}, {"output dtype", 6}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    vtopt_tensor o = out;
    x = *in;
    switch (cases[c].which) {
    case 0: x.rank = in->rank - 1; break;
    case 1: x.dtype = 7; break;                  /* int64 */
    case 2: x.dims[x.rank - 1] += 1; break;      /* the buffer is too small for it: must not be read */
    case 3: x.rank = 1000; break;
    case 4: x.data = NULL; break;
    case 5: o.dims[0] += 5; break;
    case 6: o.dtype = 11; break;                 /* double */
    }
    int rc = m->run(s, &x, &o);
    const char *msg = m->last_error(s);
    printf("%s: %s -> %d (%s)\n", m->tag, cases[c].what, rc, msg ? msg : "(null)");
    CHECK(rc == VTOPT_ERR_INPUT, "%s: %s gave %d", m->tag, cases[c].what, rc);
    CHECK(msg && *msg, "%s: %s: no message", m->tag, cases[c].what);
  }
  CHECK(m->run(s, NULL, &out) == VTOPT_ERR_INPUT, "%s: NULL inputs", m->tag);
  CHECK(m->run(s, in, NULL) == VTOPT_ERR_INPUT, "%s: NULL outputs", m->tag);
  free(out.data);
}

int main(int argc, char **argv) {
  api m[2];
#ifdef VT_ABI_DLOPEN
  if (argc != 7) {
    fprintf(stderr, "usage: test_so_abi LIB_A.so LIB_B.so IN_A.npy REF_A.npy IN_B.npy REF_B.npy\n");
    return 2;
  }
  const char *tags[2] = {STR(TAG_A), STR(TAG_B)};
  void *h[2];
  for (int i = 0; i < 2; i++) {
    h[i] = dlopen(argv[1 + i], RTLD_NOW | RTLD_LOCAL);
    if (!h[i]) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    char name[256];
    m[i].tag = tags[i];
#define LOOK(field, suffix)                                                 \
    snprintf(name, sizeof name, "%s_" suffix, tags[i]);                     \
    *(void **)&m[i].field = dlsym(h[i], name);                              \
    if (!m[i].field) { fprintf(stderr, "no symbol %s\n", name); return 1; }
    LOOK(signature, "signature")
    LOOK(create, "create")
    LOOK(run, "run")
    LOOK(reset, "reset")
    LOOK(set, "set")
    LOOK(last_error, "last_error")
    LOOK(destroy, "destroy")
  }
  /* the tags keep the two apart: neither library exports the other's names */
  char other[256];
  snprintf(other, sizeof other, "%s_run", tags[1]);
  CHECK(dlsym(h[0], other) == NULL, "%s visible in library A", other);
  snprintf(other, sizeof other, "%s_run", tags[0]);
  CHECK(dlsym(h[1], other) == NULL, "%s visible in library B", other);
  argv += 2;
#else
  if (argc != 5) {
    fprintf(stderr, "usage: test_so_abi_linked IN_A.npy REF_A.npy IN_B.npy REF_B.npy\n");
    return 2;
  }
  api la = LINKED_API(TAG_A), lb = LINKED_API(TAG_B);
  m[0] = la;
  m[1] = lb;
#endif
  vtopt_tensor in[2], ref[2];
  for (int i = 0; i < 2; i++)
    if (read_npy(argv[1 + 2 * i], &in[i]) || read_npy(argv[2 + 2 * i], &ref[i])) {
      fprintf(stderr, "cannot read %s / %s\n", argv[1 + 2 * i], argv[2 + 2 * i]);
      return 2;
    }
  vtopt_session *s[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) {
    const char *sig = m[i].signature();
    printf("%s signature: %s\n", m[i].tag, sig ? sig : "(null)");
    CHECK(sig && strstr(sig, "\"inputs\"") && strstr(sig, "\"outputs\""), "%s: signature", m[i].tag);
    CHECK(m[i].create(2, &s[i]) == VTOPT_OK && s[i], "%s_create: %s", m[i].tag, m[i].last_error(NULL));
  }
  if (!s[0] || !s[1]) return 1;
  for (int rep = 0; rep < 2; rep++)   /* alternately, both sessions open */
    for (int i = 0; i < 2; i++) good_run(&m[i], s[i], &in[i], &ref[i]);
  for (int i = 0; i < 2; i++) {
    bad_runs(&m[i], s[i], &in[i], &ref[i]);
    /* no stateful op, no knob: reset is a no-op, any knob an error with a message */
    CHECK(m[i].reset(s[i]) == VTOPT_OK, "%s_reset: %s", m[i].tag, m[i].last_error(s[i]));
    CHECK(m[i].set(s[i], "eventful.r", 4) == VTOPT_ERR_INPUT, "%s_set accepted a knob", m[i].tag);
    const char *msg = m[i].last_error(s[i]);
    printf("%s: set eventful.r -> %s\n", m[i].tag, msg ? msg : "(null)");
    CHECK(msg && strstr(msg, "no runtime knobs"), "%s_set: message '%s'", m[i].tag, msg ? msg : "");
    CHECK(m[i].set(NULL, "x", 1) != VTOPT_OK, "%s_set(NULL)", m[i].tag);
    CHECK(m[i].reset(NULL) != VTOPT_OK, "%s_reset(NULL)", m[i].tag);
    good_run(&m[i], s[i], &in[i], &ref[i]);   /* still usable after the errors */
  }
  for (int i = 0; i < 2; i++) {
    m[i].destroy(s[i]);
    free(in[i].data);
    free(ref[i].data);
  }
#ifdef VT_ABI_DLOPEN
  dlclose(h[0]);
  dlclose(h[1]);
#endif
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("all checks passed\n");
  return failures ? 1 : 0;
}

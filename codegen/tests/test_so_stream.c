/* test_so_stream.c — a stateful compiled model (tiny vitstream with the eventful pass, compiled
 * to fast.so) used through the public header only, dlopen'ed: per-session state, reset, runtime
 * knobs. The fixture (stream_setup.sh) writes the clip and the interpreter's per-frame outputs.
 * Checks, each output against its reference at rel. L2 <= 1e-4:
 *   - the clip frame by frame with eventful.r = R (a knob set before the first frame) equals the
 *     interpreter's stream with --knob eventful.r=R (frame 0 flushes, later frames update R of N
 *     tokens per gate: the gated GEMMs run with a run-time row count);
 *   - a second session, open at the same time, is independent (its own state);
 *   - reset, then frame F: equals the dense model on frame F (a flush computes every token);
 *   - eventful.r raised to >= N mid-stream: every following frame equals the dense model (the
 *     exact setting), without recompiling; eventful.r = 0 (no token updated) runs;
 *   - an unknown knob fails with VTOPT_ERR_INPUT and a message naming the valid knobs, and the
 *     session stays usable; create(0, ...) honours VTOPT_NUM_THREADS.
 * usage: test_so_stream LIB.so TAG CLIP.npy R EVT_REF_DIR DENSE_REF_DIR OUTPUT_NAME */
#include <dlfcn.h>

#include "vtopt/model.h"
#include "abi_util.h"

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

static int (*m_create)(int, vtopt_session **);
static int (*m_run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
static int (*m_reset)(vtopt_session *);
static int (*m_set)(vtopt_session *, const char *, double);
static int (*m_state_info)(const vtopt_session *, int64_t *, int64_t *, int64_t *);
static const char *(*m_last_error)(const vtopt_session *);
static void (*m_destroy)(vtopt_session *);

static const char *evt_dir, *dense_dir, *out_name;
static vtopt_tensor clip;

static vtopt_tensor frame(long f) {
  vtopt_tensor x = clip;
  x.dims[0] = 1;
  long per = numel(&clip) / clip.dims[0];
  x.data = (float *)clip.data + f * per;
  return x;
}

/* runs frame f on s and compares the output with DIR/<output>.<f>.npy */
static void run_check(vtopt_session *s, long f, const char *dir, const char *what) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.%05ld.npy", dir, out_name, f);
  vtopt_tensor ref, out, x = frame(f);
  if (read_npy(path, &ref)) { CHECK(0, "cannot read %s", path); return; }
  out = ref;
  out.data = calloc((size_t)numel(&ref), sizeof(float));
  int rc = m_run(s, &x, &out);
  CHECK(rc == VTOPT_OK, "%s, frame %ld: %s", what, f, m_last_error(s));
  if (rc == VTOPT_OK) {
    double e = rel_l2(&out, &ref);
    printf("%s, frame %ld: rel. L2 %.3g\n", what, f, e);
    CHECK(e <= 1e-4, "%s, frame %ld: rel. L2 %g against %s", what, f, e, path);
  }
  free(out.data);
  free(ref.data);
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: test_so_stream LIB.so TAG CLIP.npy R EVT_REF_DIR DENSE_REF_DIR OUTPUT_NAME\n");
    return 2;
  }
  const char *tag = argv[2];
  double r = atof(argv[4]);
  evt_dir = argv[5];
  dense_dir = argv[6];
  out_name = argv[7];
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
  char name[256];
#define LOOK(var, suffix)                                                   \
  snprintf(name, sizeof name, "%s_" suffix, tag);                           \
  *(void **)&var = dlsym(h, name);                                          \
  if (!var) { fprintf(stderr, "no symbol %s\n", name); return 1; }
  LOOK(m_create, "create")
  LOOK(m_run, "run")
  LOOK(m_reset, "reset")
  LOOK(m_set, "set")
  LOOK(m_state_info, "state_info")
  LOOK(m_last_error, "last_error")
  LOOK(m_destroy, "destroy")
  if (read_npy(argv[3], &clip) || clip.rank < 2) { fprintf(stderr, "cannot read %s\n", argv[3]); return 2; }
  long nf = (long)clip.dims[0];
  if (nf < 8) { fprintf(stderr, "%s: need at least 8 frames\n", argv[3]); return 2; }

  setenv("VTOPT_NUM_THREADS", "1", 1);   /* create(0): from the environment */
  vtopt_session *s = NULL, *s2 = NULL;
  CHECK(m_create(0, &s) == VTOPT_OK && s, "create(0): %s", m_last_error(NULL));
  CHECK(m_create(2, &s2) == VTOPT_OK && s2, "create(2): %s", m_last_error(NULL));
  if (!s || !s2) return 1;

  /* unknown knob: an error naming the valid ones; the session is unaffected */
  CHECK(m_set(s, "eventful.budget", 3) == VTOPT_ERR_INPUT, "unknown knob accepted");
  const char *msg = m_last_error(s);
  printf("unknown knob -> %s\n", msg ? msg : "(null)");
  CHECK(msg && strstr(msg, "eventful.budget") && strstr(msg, "eventful.r"), "message '%s'", msg ? msg : "");
  CHECK(m_set(s, NULL, 3) == VTOPT_ERR_INPUT, "NULL knob accepted");

  /* the stream with budget r, against the interpreter's stream; session 2 interleaved on the
   * same frames with the same budget must agree too (state per session) */
  CHECK(m_set(s, "eventful.r", r) == VTOPT_OK, "set eventful.r: %s", m_last_error(s));
  CHECK(m_set(s2, "eventful.r", r) == VTOPT_OK, "set eventful.r: %s", m_last_error(s2));
  for (long f = 0; f < nf; f++) {
    run_check(s, f, evt_dir, "session 1, eventful");
    if (f < 4) run_check(s2, f, evt_dir, "session 2, eventful");
  }
  /* state: allocated once (bytes), the gates updated about r of their tokens per frame */
  int64_t bytes = 0, upd = 0, seen = 0, bytes2 = 0;
  CHECK(m_state_info(s, &bytes, &upd, &seen) == VTOPT_OK, "state_info: %s", m_last_error(s));
  CHECK(bytes > 0 && seen > 0 && upd > 0 && upd < seen, "state_info: %lld bytes, %lld of %lld rows", (long long)bytes,
        (long long)upd, (long long)seen);
  /* reset: the next frame is a flush = dense */
  CHECK(m_reset(s) == VTOPT_OK, "reset: %s", m_last_error(s));
  CHECK(m_state_info(s, &bytes2, NULL, NULL) == VTOPT_OK && bytes2 == bytes, "state bytes changed by reset: %lld -> %lld",
        (long long)bytes, (long long)bytes2);
  run_check(s, 5, dense_dir, "after reset");
  /* budget >= N from here on (no recompiling): every frame is exact = dense */
  CHECK(m_set(s2, "eventful.r", 1e9) == VTOPT_OK, "set eventful.r: %s", m_last_error(s2));
  for (long f = 4; f < 8; f++) run_check(s2, f, dense_dir, "session 2, eventful.r >= N");
  /* no token updated: a GEMM of zero rows */
  CHECK(m_set(s, "eventful.r", 0) == VTOPT_OK, "set eventful.r: %s", m_last_error(s));
  {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%05d.npy", dense_dir, out_name, 6);
    vtopt_tensor ref, x = frame(6);
    if (read_npy(path, &ref) == 0) {
      vtopt_tensor out = ref;
      out.data = calloc((size_t)numel(&ref), sizeof(float));
      CHECK(m_run(s, &x, &out) == VTOPT_OK, "eventful.r = 0: %s", m_last_error(s));
      int finite = 1;
      for (long i = 0; i < numel(&out); i++) finite &= isfinite(((float *)out.data)[i]) != 0;
      CHECK(finite, "eventful.r = 0: non-finite output");
      free(out.data);
      free(ref.data);
    }
  }
  m_destroy(s);
  m_destroy(s2);
  m_destroy(NULL);
  free(clip.data);
  dlclose(h);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("all checks passed\n");
  return failures ? 1 : 0;
}

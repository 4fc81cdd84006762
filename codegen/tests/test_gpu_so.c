/* test_gpu_so.c FAKE.so LIB.so TAG IN.npy... — the host runtime of a CUDA fast.so (gpu/gpu_rt.c)
 * against the fake driver (fake_cuda.c, VTOPT_CUDA_DRIVER): the model.h ABI through dlopen; no
 * driver, no device, too old a GPU and an injected failure of every driver call at create fail
 * with a message naming it and leave nothing allocated; a run launches every kernel with the
 * pointer table and returns outputs of the compiled shapes; bad inputs, unknown knobs and failing
 * launches / copies are errors; destroy releases every device object (checked by the fake's
 * counters, and by ASan / LSan in the sanitizer build). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_util.h"
#include "vtopt/model.h"

typedef const char *(*sig_fn)(void);
typedef int (*create_fn)(int, vtopt_session **);
typedef int (*run_fn)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
typedef int (*set_fn)(vtopt_session *, const char *, double);
typedef const char *(*err_fn)(const vtopt_session *);
typedef void (*destroy_fn)(vtopt_session *);
typedef int (*count_fn)(void);

static int fails;
#define CHECK(c, ...) do { if (!(c)) { fails++; printf("FAIL (line %d): ", __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static count_fn live_allocs, live_modules, live_streams, ctx_refs, launches, bad;
static void (*reset_counts)(void);

static void expect_clean(const char *when) {
  CHECK(live_allocs() == 0 && live_modules() == 0 && live_streams() == 0 && ctx_refs() == 0,
        "%s: device objects left: %d allocations, %d modules, %d streams, %d context refs", when, live_allocs(),
        live_modules(), live_streams(), ctx_refs());
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: test_gpu_so FAKE.so LIB.so TAG IN.npy...\n"); return 2; }
  const char *fake = argv[1], *lib = argv[2], *tag = argv[3];
  void *fh = dlopen(fake, RTLD_NOW | RTLD_LOCAL);   /* kept open: the counters survive the runtime's dlclose */
  void *lh = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!fh || !lh) { printf("FAIL: dlopen: %s\n", dlerror()); return 1; }
  char nm[128];
#define SYM(h, T, var, name) T var = (T)dlsym(h, name); if (!var) { printf("FAIL: no %s\n", name); return 1; }
#define TSYM(T, var, suffix) snprintf(nm, sizeof nm, "%s_%s", tag, suffix); SYM(lh, T, var, nm)
  TSYM(sig_fn, signature, "signature");
  TSYM(create_fn, create, "create");
  TSYM(run_fn, run, "run");
  TSYM(set_fn, set, "set");
  TSYM(err_fn, last_error, "last_error");
  TSYM(destroy_fn, destroy, "destroy");
  live_allocs = (count_fn)dlsym(fh, "fake_cuda_live_allocs");
  live_modules = (count_fn)dlsym(fh, "fake_cuda_live_modules");
  live_streams = (count_fn)dlsym(fh, "fake_cuda_live_streams");
  ctx_refs = (count_fn)dlsym(fh, "fake_cuda_ctx_refs");
  launches = (count_fn)dlsym(fh, "fake_cuda_launches");
  bad = (count_fn)dlsym(fh, "fake_cuda_bad");
  reset_counts = (void (*)(void))dlsym(fh, "fake_cuda_reset_counts");
  if (!live_allocs || !launches || !reset_counts || !bad) { printf("FAIL: not the fake driver\n"); return 1; }
  const char *sig = signature();
  const char *kp = strstr(sig, "\"kernels\":");
  int n_kernels = kp ? atoi(kp + 10) : -1;
  CHECK(strstr(sig, "\"driver\":\"cuda\"") && n_kernels > 0, "signature: %s", sig);
  int n_in = argc - 4;
  vtopt_tensor in[16], out[16], out2[16];
  memset(in, 0, sizeof in);
  for (int i = 0; i < n_in && i < 16; i++)
    if (read_npy(argv[4 + i], &in[i])) { printf("FAIL: cannot read %s\n", argv[4 + i]); return 1; }
  int n_out = 0;
  for (const char *p = strstr(sig, "\"outputs\":"); p && (p = strstr(p, "\"name\":")); p++) n_out++;
  vtopt_session *s = NULL;

  /* no driver */
  setenv("VTOPT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  int rc = create(0, &s);
  CHECK(rc != VTOPT_OK && !s && strstr(last_error(NULL), "no CUDA driver"), "no driver: rc %d, '%s'", rc, last_error(NULL));
  setenv("VTOPT_CUDA_DRIVER", fake, 1);
  /* no device; a GPU older than the library's sm */
  setenv("VTOPT_FAKE_CUDA_DEVICES", "0", 1);
  rc = create(0, &s);
  CHECK(rc != VTOPT_OK && strstr(last_error(NULL), "no CUDA GPU"), "no device: rc %d, '%s'", rc, last_error(NULL));
  unsetenv("VTOPT_FAKE_CUDA_DEVICES");
  setenv("VTOPT_FAKE_CUDA_CC", "75", 1);
  rc = create(0, &s);
  CHECK(rc != VTOPT_OK && strstr(last_error(NULL), "compute capability 7.5"), "old GPU: rc %d, '%s'", rc, last_error(NULL));
  unsetenv("VTOPT_FAKE_CUDA_CC");
  expect_clean("refused creates");
  /* every driver call of create failing in turn: named, nothing left behind */
  const char *points[] = {"cuInit", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetAttribute", "cuDevicePrimaryCtxRetain",
                          "cuCtxSetCurrent", "cuModuleLoadData", "cuModuleGetFunction", "cuStreamCreate", "cuMemAlloc_v2",
                          "cuMemAlloc_v2:3", "cuMemcpyHtoD_v2"};
  for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
    reset_counts();
    setenv("VTOPT_FAKE_CUDA_FAIL", points[i], 1);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(points[i], ":_"), points[i]);
    rc = create(0, &s);
    CHECK(rc == VTOPT_ERR_INTERNAL && !s && strstr(last_error(NULL), name) && strstr(last_error(NULL), "999"),
          "failing %s: rc %d, '%s'", points[i], rc, last_error(NULL));
    expect_clean(points[i]);
  }
  unsetenv("VTOPT_FAKE_CUDA_FAIL");

  /* a working session */
  reset_counts();
  rc = create(0, &s);
  CHECK(rc == VTOPT_OK && s, "create: rc %d, '%s'", rc, last_error(NULL));
  if (s) {
    memset(out, 0, sizeof out);
    rc = run(s, in, out);
    CHECK(rc == VTOPT_OK, "run: rc %d, '%s'", rc, last_error(s));
    CHECK(launches() == n_kernels, "run launched %d kernels, the signature says %d", launches(), n_kernels);
    for (int i = 0; i < n_out && rc == VTOPT_OK; i++)
      CHECK(out[i].data && out[i].dtype == 1 && out[i].rank > 0 && numel(&out[i]) > 0, "output %d: no data / bad shape", i);
    memset(out2, 0, sizeof out2);
    rc = run(s, in, out2);   /* a second run: same launches again */
    CHECK(rc == VTOPT_OK && launches() == 2 * n_kernels, "second run: rc %d, %d launches", rc, launches());
    for (int i = 0; i < n_out; i++) { free(out[i].data); free(out2[i].data); }
    /* bad inputs */
    vtopt_tensor badin[16];
    memcpy(badin, in, sizeof badin);
    badin[0].dims[0] += 1;
    rc = run(s, badin, out);
    CHECK(rc == VTOPT_ERR_INPUT && strstr(last_error(s), "input 0"), "bad dims: rc %d, '%s'", rc, last_error(s));
    badin[0] = in[0];
    badin[0].dtype = 7;
    rc = run(s, badin, out);
    CHECK(rc == VTOPT_ERR_INPUT, "bad dtype: rc %d", rc);
    rc = run(s, NULL, out);
    CHECK(rc == VTOPT_ERR_INPUT, "NULL inputs: rc %d", rc);
    rc = set(s, "eventful.r", 3);
    CHECK(rc == VTOPT_ERR_INPUT && strstr(last_error(s), "eventful.r"), "unknown knob: rc %d '%s'", rc, last_error(s));
    /* failing launch and failing copy-out: errors named, no outputs left allocated */
    setenv("VTOPT_FAKE_CUDA_FAIL", "cuLaunchKernel", 1);
    reset_counts();
    rc = run(s, in, out);
    CHECK(rc == VTOPT_ERR_INTERNAL && strstr(last_error(s), "cuLaunchKernel(vt_gpu_"), "failing launch: rc %d '%s'", rc, last_error(s));
    setenv("VTOPT_FAKE_CUDA_FAIL", n_out > 1 ? "cuMemcpyDtoH_v2:2" : "cuMemcpyDtoH_v2", 1);
    reset_counts();
    rc = run(s, in, out);
    CHECK(rc == VTOPT_ERR_INTERNAL && strstr(last_error(s), "cuMemcpyDtoH") && !out[0].data, "failing copy-out: rc %d '%s'", rc,
          last_error(s));
    unsetenv("VTOPT_FAKE_CUDA_FAIL");
    destroy(s);
  }
  expect_clean("destroy");
  CHECK(bad() == 0, "the fake driver saw %d bad calls (stderr)", bad());
  for (int i = 0; i < n_in; i++) free(in[i].data);
  dlclose(lh);
  dlclose(fh);
  if (!fails) printf("PASS: CUDA fast.so host runtime against the fake driver (%d kernels per run)\n", n_kernels);
  return fails ? 1 : 0;
}

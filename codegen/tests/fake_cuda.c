/* fake_cuda.c — a fake CUDA driver (libvt_fakecuda.so) for testing the host runtime of CUDA
 * fast.so files (gpu/gpu_rt.c) on machines without a GPU: it exports the cu* entry points the
 * runtime calls, keeps "device memory" in host memory, checks every pointer it is given (copies
 * inside an allocation, frees of live allocations, kernels looked up by an .entry of the loaded
 * PTX, launch arguments: one pointer to a table of live device pointers), executes no kernel, and
 * counts calls and live objects (fake_cuda_* functions, read by test_gpu_so.c). Environment:
 *   VTOPT_FAKE_CUDA_DEVICES=N   devices reported (default 1)
 *   VTOPT_FAKE_CUDA_CC=80       compute capability (major * 10 + minor, default 80)
 *   VTOPT_FAKE_CUDA_FAIL=NAME[:K]  the K-th call (default 1st) of entry point NAME returns error 999
 *   VTOPT_FAKE_CUDA_EXEC=LIB.so  executes the kernels: LIB.so is the module built for x86 with the
 *                               emulator (gpu_emu.c, gpu_exec.sh); each kernel is its symbol there
 * Bad pointers are counted (fake_cuda_bad) and reported on stderr. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

typedef struct alloc { char *p; size_t n; struct alloc *next; } alloc;
typedef struct fmod { char *ptx; void *exec; struct fmod *next; } fmod;
typedef struct ffn { char name[64]; fmod *m; void (*kernel)(void *); } ffn;

static alloc *allocs;
static int n_allocs, n_modules, n_streams, ctx_refs, n_launches, n_bad, n_fns, inited;
static ffn fns[4096];
static struct { char name[64]; int n; } counts[64];
static int n_counts;

int fake_cuda_live_allocs(void) { return n_allocs; }
int fake_cuda_live_modules(void) { return n_modules; }
int fake_cuda_live_streams(void) { return n_streams; }
int fake_cuda_ctx_refs(void) { return ctx_refs; }
int fake_cuda_launches(void) { return n_launches; }
int fake_cuda_bad(void) { return n_bad; }
void fake_cuda_reset_counts(void) { n_counts = 0; n_launches = 0; }

static void bad(const char *what) {
  n_bad++;
  fprintf(stderr, "fake cuda: BAD %s\n", what);
}

/* 1 when this call of name is the one VTOPT_FAKE_CUDA_FAIL asks to fail */
static int fail_now(const char *name) {
  int i;
  for (i = 0; i < n_counts && strcmp(counts[i].name, name); i++) {}
  if (i == n_counts && n_counts < 64) { snprintf(counts[n_counts].name, 64, "%s", name); counts[n_counts++].n = 0; }
  int k = i < 64 ? ++counts[i].n : 0;
  const char *f = getenv("VTOPT_FAKE_CUDA_FAIL");
  if (!f || !*f) return 0;
  size_t ln = strcspn(f, ":");
  if (ln != strlen(name) || strncmp(f, name, ln)) return 0;
  int want = f[ln] == ':' ? atoi(f + ln + 1) : 1;
  return k == want;
}
#define FAILPOINT(name) do { if (fail_now(name)) return 999; } while (0)

static alloc *find(CUdeviceptr d, size_t n) {   /* the allocation holding [d, d + n) */
  for (alloc *a = allocs; a; a = a->next)
    if ((char *)(uintptr_t)d >= a->p && (char *)(uintptr_t)d + n <= a->p + a->n) return a;
  return NULL;
}

CUresult cuInit(unsigned flags) { FAILPOINT("cuInit"); if (flags) return 1; inited = 1; return 0; }
CUresult cuDeviceGetCount(int *n) {
  FAILPOINT("cuDeviceGetCount");
  const char *d = getenv("VTOPT_FAKE_CUDA_DEVICES");
  *n = d && *d ? atoi(d) : 1;
  return inited ? 0 : 3;
}
CUresult cuDeviceGet(int *dev, int i) { FAILPOINT("cuDeviceGet"); *dev = i; return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
  FAILPOINT("cuDeviceGetAttribute");
  (void)dev;
  const char *c = getenv("VTOPT_FAKE_CUDA_CC");
  int cc = c && *c ? atoi(c) : 80;
  if (attr == 75) *v = cc / 10;
  else if (attr == 76) *v = cc % 10;
  else return 1;
  return 0;
}
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
  FAILPOINT("cuDevicePrimaryCtxRetain");
  *ctx = (void *)(uintptr_t)(0x1000 + dev);
  ctx_refs++;
  return 0;
}
CUresult cuDevicePrimaryCtxRelease_v2(int dev) {
  (void)dev;
  if (ctx_refs <= 0) { bad("primary context released more often than retained"); return 1; }
  ctx_refs--;
  return 0;
}
CUresult cuCtxSetCurrent(void *ctx) { FAILPOINT("cuCtxSetCurrent"); if (!ctx_refs || !ctx) { bad("cuCtxSetCurrent without a retained context"); return 201; } return 0; }
CUresult cuModuleLoadData(void **m, const void *img) {
  FAILPOINT("cuModuleLoadData");
  const char *ptx = img;
  if (!ptx || !strstr(ptx, ".version") || !strstr(ptx, ".target") || !ctx_refs) { bad("cuModuleLoadData: not PTX or no context"); return 218; }
  fmod *fm = calloc(1, sizeof *fm);
  if (!fm || !(fm->ptx = strdup(ptx))) { free(fm); return 2; }
  const char *ex = getenv("VTOPT_FAKE_CUDA_EXEC");
  if (ex && *ex && !(fm->exec = dlopen(ex, RTLD_NOW | RTLD_LOCAL))) {
    fprintf(stderr, "fake cuda: cannot load %s: %s\n", ex, dlerror());
    free(fm->ptx);
    free(fm);
    return 218;
  }
  n_modules++;
  *m = fm;
  return 0;
}
CUresult cuModuleUnload(void *m) {
  fmod *fm = m;
  if (!fm) { bad("cuModuleUnload(NULL)"); return 400; }
  for (int i = 0; i < n_fns; i++)
    if (fns[i].m == fm) fns[i].m = NULL;
  if (fm->exec) dlclose(fm->exec);
  free(fm->ptx);
  free(fm);
  n_modules--;
  return 0;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
  FAILPOINT("cuModuleGetFunction");
  fmod *fm = m;
  char pat[128];
  snprintf(pat, sizeof pat, ".entry %s(", name);
  if (!fm || !strstr(fm->ptx, pat)) return 500;   /* CUDA_ERROR_NOT_FOUND */
  if (n_fns == 4096) return 2;
  snprintf(fns[n_fns].name, sizeof fns[n_fns].name, "%s", name);
  fns[n_fns].m = fm;
  fns[n_fns].kernel = fm->exec ? (void (*)(void *))dlsym(fm->exec, name) : NULL;
  if (fm->exec && !fns[n_fns].kernel) { bad("cuModuleGetFunction: the execution library lacks the kernel"); return 500; }
  *f = &fns[n_fns++];
  return 0;
}
CUresult cuMemAlloc_v2(CUdeviceptr *d, size_t n) {
  FAILPOINT("cuMemAlloc_v2");
  if (!n) return 1;
  alloc *a = calloc(1, sizeof *a);
  if (!a || !(a->p = calloc(1, n))) { free(a); return 2; }
  a->n = n;
  a->next = allocs;
  allocs = a;
  n_allocs++;
  *d = (CUdeviceptr)(uintptr_t)a->p;
  return 0;
}
CUresult cuMemFree_v2(CUdeviceptr d) {
  for (alloc **pp = &allocs; *pp; pp = &(*pp)->next)
    if ((*pp)->p == (char *)(uintptr_t)d) {
      alloc *a = *pp;
      *pp = a->next;
      free(a->p);
      free(a);
      n_allocs--;
      return 0;
    }
  bad("cuMemFree of a pointer that is not a live allocation");
  return 1;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t n) {
  FAILPOINT("cuMemcpyHtoD_v2");
  alloc *a = find(d, n);
  if (!a || !h) { bad("cuMemcpyHtoD outside an allocation"); return 1; }
  memcpy((void *)(uintptr_t)d, h, n);
  return 0;
}
CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n) {
  FAILPOINT("cuMemcpyDtoH_v2");
  alloc *a = find(d, n);
  if (!a || !h) { bad("cuMemcpyDtoH outside an allocation"); return 1; }
  memcpy(h, (void *)(uintptr_t)d, n);
  return 0;
}
CUresult cuStreamCreate(void **s, unsigned flags) {
  FAILPOINT("cuStreamCreate");
  (void)flags;
  *s = malloc(16);
  if (!*s) return 2;
  n_streams++;
  return 0;
}
CUresult cuStreamDestroy_v2(void *s) { if (!s) { bad("cuStreamDestroy(NULL)"); return 400; } free(s); n_streams--; return 0; }
CUresult cuStreamSynchronize(void *s) { FAILPOINT("cuStreamSynchronize"); return s ? 0 : 400; }
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                        void *stream, void **params, void **extra) {
  FAILPOINT("cuLaunchKernel");
  ffn *fn = f;
  if (!fn || fn < fns || fn >= fns + n_fns || !fn->m) { bad("cuLaunchKernel of an unknown or unloaded function"); return 400; }
  if (!gx || !gy || !gz || !bx || !by || !bz || bx * by * bz > 1024 || gy > 65535 || gz > 65535 || shmem > 48 * 1024) {
    bad("cuLaunchKernel: bad launch dimensions");
    return 1;
  }
  if (!stream || !params || extra) { bad("cuLaunchKernel: no stream or no parameters"); return 1; }
  /* the only parameter: the device address of the pointer table, every entry a live allocation */
  CUdeviceptr tbl = *(CUdeviceptr *)params[0];
  alloc *a = find(tbl, 8);
  if (!a || a->p != (char *)(uintptr_t)tbl || a->n % 8) { bad("cuLaunchKernel: the parameter is not a pointer table"); return 1; }
  for (size_t i = 0; i < a->n / 8; i++)
    if (!find(((CUdeviceptr *)a->p)[i], 1)) { bad("cuLaunchKernel: a table entry is not a live device pointer"); return 1; }
  n_launches++;
  if (fn->kernel) {   /* execute it on the emulator (the kernel's one parameter: the table address) */
    int (*launch)(void (*)(void *), unsigned, unsigned, unsigned, void *) =
        (int (*)(void (*)(void *), unsigned, unsigned, unsigned, void *))dlsym(fn->m->exec, "vt_emu_launch");
    if (!launch || launch(fn->kernel, gx, gy, bx, (void *)(uintptr_t)tbl)) { bad("cuLaunchKernel: emulation failed"); return 1; }
  }
  return 0;
}
CUresult cuGetErrorString(CUresult r, const char **s) {
  *s = r == 999 ? "CUDA_ERROR_UNKNOWN (injected by the fake driver)" : r == 500 ? "CUDA_ERROR_NOT_FOUND"
       : r == 218 ? "CUDA_ERROR_INVALID_PTX" : r == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "a fake driver error";
  return 0;
}

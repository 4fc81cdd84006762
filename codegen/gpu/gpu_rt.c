/* gpu_rt.c — the host runtime inside a CUDA fast.so (-o FILE.so --target cuda): the tagged ABI
 * functions of include/vtopt/model.h forward here with the library's GPU plan (gpu_plan.h).
 * The CUDA driver is loaded with dlopen at create (libcuda.so.1, or VTOPT_CUDA_DRIVER: the tests'
 * fake driver); no CUDA toolkit, runtime or header is needed to build or run this. create: cuInit,
 * the device (VTOPT_CUDA_DEVICE, default 0; its compute capability must reach the plan's sm), its
 * primary context, the PTX loaded (the driver JIT-compiles it), every kernel looked up, one device
 * buffer per slot, constants (weights) uploaded once, the pointer table uploaded. run: inputs
 * copied in, the launches in order on the session's stream, outputs copied out (malloc'd, owned by
 * the caller). No driver, no GPU, or a failing call: create fails with the call and its message. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_plan.h"
#include "vtopt/model.h"

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream;

/* the driver entry points used, by their exported names (the _v2 ones are what cuda.h maps to) */
typedef struct cu_api {
  CUresult (*Init)(unsigned);
  CUresult (*DeviceGetCount)(int *);
  CUresult (*DeviceGet)(CUdevice *, int);
  CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*DevicePrimaryCtxRelease)(CUdevice);
  CUresult (*CtxSetCurrent)(CUcontext);
  CUresult (*ModuleLoadData)(CUmodule *, const void *);
  CUresult (*ModuleUnload)(CUmodule);
  CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*MemAlloc)(CUdeviceptr *, size_t);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*StreamCreate)(CUstream *, unsigned);
  CUresult (*StreamDestroy)(CUstream);
  CUresult (*StreamSynchronize)(CUstream);
  CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                           void **, void **);
  CUresult (*GetErrorString)(CUresult, const char **);
} cu_api;

struct vtopt_session {
  void *dl;
  cu_api cu;
  const unsigned char *plan;
  const vt_gpu_plan_hdr *h;
  const vt_gpu_slot *slots;
  const vt_gpu_launch *launches;
  CUdevice dev;
  CUcontext ctx;
  int have_ctx;
  CUmodule mod;
  CUstream stream;
  CUfunction *fns;
  CUdeviceptr *ptr;      /* per slot (aliases share) */
  CUdeviceptr table;     /* the pointer table on the device */
  char err[512];
};

static _Thread_local char create_err[512];

static int fail(vtopt_session *s, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s ? s->err : create_err, s ? sizeof s->err : sizeof create_err, fmt, ap);
  va_end(ap);
  return code;
}

static const char *cu_msg(vtopt_session *s, CUresult r) {
  const char *m = NULL;
  if (!s->cu.GetErrorString || s->cu.GetErrorString(r, &m) != 0 || !m) m = "unknown CUDA error";
  return m;
}

#define CU(call, what)                                                                                \
  do {                                                                                                \
    CUresult r_ = (call);                                                                             \
    if (r_ != 0) return fail(s, VTOPT_ERR_INTERNAL, "CUDA driver: %s failed: error %d (%s)", what, r_, cu_msg(s, r_)); \
  } while (0)

static void session_free(vtopt_session *s) {
  if (!s) return;
  if (s->ptr && s->cu.MemFree) {
    for (uint32_t i = 0; i < s->h->n_slots; i++)
      if (s->slots[i].kind != VT_GS_ALIAS && s->ptr[i]) s->cu.MemFree(s->ptr[i]);
  }
  if (s->table && s->cu.MemFree) s->cu.MemFree(s->table);
  if (s->stream && s->cu.StreamDestroy) s->cu.StreamDestroy(s->stream);
  if (s->mod && s->cu.ModuleUnload) s->cu.ModuleUnload(s->mod);
  if (s->have_ctx && s->cu.DevicePrimaryCtxRelease) s->cu.DevicePrimaryCtxRelease(s->dev);
  if (s->dl) dlclose(s->dl);
  free(s->ptr);
  free(s->fns);
  free(s);
}

static int load_driver(vtopt_session *s) {
  const char *path = getenv("VTOPT_CUDA_DRIVER");
  if (!path || !*path) path = "libcuda.so.1";
  s->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!s->dl) {
    const char *d = dlerror();
    return fail(s, VTOPT_ERR_INTERNAL, "no CUDA driver: cannot load %s (%s); this library runs on an NVIDIA GPU with its driver installed",
                path, d ? d : "?");
  }
  struct { const char *name; void **slot; } syms[] = {
    {"cuInit", (void **)&s->cu.Init}, {"cuDeviceGetCount", (void **)&s->cu.DeviceGetCount},
    {"cuDeviceGet", (void **)&s->cu.DeviceGet}, {"cuDeviceGetAttribute", (void **)&s->cu.DeviceGetAttribute},
    {"cuDevicePrimaryCtxRetain", (void **)&s->cu.DevicePrimaryCtxRetain},
    {"cuDevicePrimaryCtxRelease_v2", (void **)&s->cu.DevicePrimaryCtxRelease},
    {"cuCtxSetCurrent", (void **)&s->cu.CtxSetCurrent}, {"cuModuleLoadData", (void **)&s->cu.ModuleLoadData},
    {"cuModuleUnload", (void **)&s->cu.ModuleUnload}, {"cuModuleGetFunction", (void **)&s->cu.ModuleGetFunction},
    {"cuMemAlloc_v2", (void **)&s->cu.MemAlloc}, {"cuMemFree_v2", (void **)&s->cu.MemFree},
    {"cuMemcpyHtoD_v2", (void **)&s->cu.MemcpyHtoD}, {"cuMemcpyDtoH_v2", (void **)&s->cu.MemcpyDtoH},
    {"cuStreamCreate", (void **)&s->cu.StreamCreate}, {"cuStreamDestroy_v2", (void **)&s->cu.StreamDestroy},
    {"cuStreamSynchronize", (void **)&s->cu.StreamSynchronize}, {"cuLaunchKernel", (void **)&s->cu.LaunchKernel},
    {"cuGetErrorString", (void **)&s->cu.GetErrorString}};
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    *syms[i].slot = dlsym(s->dl, syms[i].name);
    if (!*syms[i].slot) {
      memset(&s->cu, 0, sizeof s->cu);   /* nothing of this driver is called, not even to clean up */
      return fail(s, VTOPT_ERR_INTERNAL, "the CUDA driver %s lacks %s (driver too old?)", path, syms[i].name);
    }
  }
  return VTOPT_OK;
}

static int create(vtopt_session *s) {
  int rc = load_driver(s);
  if (rc) return rc;
  if (s->h->magic != VT_GPU_PLAN_MAGIC) return fail(s, VTOPT_ERR_INTERNAL, "corrupt GPU plan in the library");
  CU(s->cu.Init(0), "cuInit");
  int n = 0;
  CU(s->cu.DeviceGetCount(&n), "cuDeviceGetCount");
  if (n <= 0) return fail(s, VTOPT_ERR_INTERNAL, "no CUDA GPU: the driver reports no device");
  int want = 0;
  const char *dv = getenv("VTOPT_CUDA_DEVICE");
  if (dv && *dv) want = atoi(dv);
  if (want < 0 || want >= n) return fail(s, VTOPT_ERR_INTERNAL, "VTOPT_CUDA_DEVICE=%s: the driver reports %d device(s)", dv, n);
  CU(s->cu.DeviceGet(&s->dev, want), "cuDeviceGet");
  int major = 0, minor = 0;
  CU(s->cu.DeviceGetAttribute(&major, 75, s->dev), "cuDeviceGetAttribute(compute capability major)");
  CU(s->cu.DeviceGetAttribute(&minor, 76, s->dev), "cuDeviceGetAttribute(compute capability minor)");
  int need = atoi(s->h->gpu + 3);   /* "sm_80" -> 80 */
  if (major * 10 + minor < need)
    return fail(s, VTOPT_ERR_INTERNAL, "this library was compiled for %s; GPU %d has compute capability %d.%d "
                                       "(recompile with --gpu for it)", s->h->gpu, want, major, minor);
  CU(s->cu.DevicePrimaryCtxRetain(&s->ctx, s->dev), "cuDevicePrimaryCtxRetain");
  s->have_ctx = 1;
  CU(s->cu.CtxSetCurrent(s->ctx), "cuCtxSetCurrent");
  CU(s->cu.ModuleLoadData(&s->mod, s->plan + s->h->ptx_off), "cuModuleLoadData (the PTX)");
  s->fns = calloc(s->h->n_launches + 1, sizeof *s->fns);
  s->ptr = calloc(s->h->n_slots + 1, sizeof *s->ptr);
  if (!s->fns || !s->ptr) return fail(s, VTOPT_ERR_INTERNAL, "out of memory");
  for (uint32_t i = 0; i < s->h->n_launches; i++) {
    CUresult r = s->cu.ModuleGetFunction(&s->fns[i], s->mod, s->launches[i].kernel);
    if (r) return fail(s, VTOPT_ERR_INTERNAL, "CUDA driver: cuModuleGetFunction(%s) failed: error %d (%s)",
                       s->launches[i].kernel, r, cu_msg(s, r));
  }
  CU(s->cu.StreamCreate(&s->stream, 0), "cuStreamCreate");
  for (uint32_t i = 0; i < s->h->n_slots; i++) {
    const vt_gpu_slot *sl = &s->slots[i];
    if (sl->kind == VT_GS_ALIAS) continue;
    CUresult r = s->cu.MemAlloc(&s->ptr[i], (size_t)(sl->bytes > 0 ? sl->bytes : 4));
    if (r) return fail(s, VTOPT_ERR_INTERNAL, "CUDA driver: cuMemAlloc of %lld bytes failed: error %d (%s)",
                       (long long)sl->bytes, r, cu_msg(s, r));
    if (sl->kind == VT_GS_CONST && sl->bytes > 0)
      CU(s->cu.MemcpyHtoD(s->ptr[i], s->plan + s->h->data_off + sl->data_off, (size_t)sl->bytes), "cuMemcpyHtoD (weights)");
  }
  for (uint32_t i = 0; i < s->h->n_slots; i++) {   /* aliases: chains resolve to their root */
    uint32_t j = i;
    for (int hop = 0; s->slots[j].kind == VT_GS_ALIAS && hop < 64; hop++) j = (uint32_t)s->slots[j].index;
    if (j >= s->h->n_slots || s->slots[j].kind == VT_GS_ALIAS) return fail(s, VTOPT_ERR_INTERNAL, "corrupt GPU plan (alias)");
    s->ptr[i] = s->ptr[j];
  }
  CU(s->cu.MemAlloc(&s->table, (size_t)(s->h->n_slots ? s->h->n_slots : 1) * sizeof(CUdeviceptr)), "cuMemAlloc (pointer table)");
  if (s->h->n_slots) CU(s->cu.MemcpyHtoD(s->table, s->ptr, (size_t)s->h->n_slots * sizeof(CUdeviceptr)), "cuMemcpyHtoD (pointer table)");
  return VTOPT_OK;
}

int vt_gpu_so_create(const unsigned char *plan, int threads, vtopt_session **out) {
  (void)threads;
  if (!out) return fail(NULL, VTOPT_ERR_INPUT, "create: out is NULL");
  *out = NULL;
  vtopt_session *s = calloc(1, sizeof *s);
  if (!s) return fail(NULL, VTOPT_ERR_INTERNAL, "out of memory");
  s->plan = plan;
  s->h = (const vt_gpu_plan_hdr *)plan;
  size_t o_sl = (sizeof(vt_gpu_plan_hdr) + 7) & ~(size_t)7;
  s->slots = (const vt_gpu_slot *)(plan + o_sl);
  s->launches = (const vt_gpu_launch *)(plan + o_sl + (size_t)s->h->n_slots * sizeof(vt_gpu_slot));
  int rc = create(s);
  if (rc) {
    snprintf(create_err, sizeof create_err, "%s", s->err);
    session_free(s);
    return rc;
  }
  *out = s;
  return VTOPT_OK;
}

static void free_outputs(const vtopt_session *s, vtopt_tensor *outputs) {
  for (uint32_t i = 0; i < s->h->n_outputs; i++) {
    free(outputs[i].data);
    memset(&outputs[i], 0, sizeof outputs[i]);
  }
}

int vt_gpu_so_run(vtopt_session *s, const vtopt_tensor *inputs, vtopt_tensor *outputs) {
  if (!s) return VTOPT_ERR_INPUT;
  if ((!inputs && s->h->n_inputs) || (!outputs && s->h->n_outputs))
    return fail(s, VTOPT_ERR_INPUT, "run: inputs or outputs is NULL");
  for (uint32_t i = 0; i < s->h->n_slots; i++) {
    const vt_gpu_slot *sl = &s->slots[i];
    if (sl->kind != VT_GS_INPUT) continue;
    const vtopt_tensor *t = &inputs[sl->index];
    int ok = t->dtype == sl->dtype && t->rank == sl->rank && t->data;
    for (int32_t d = 0; ok && d < sl->rank; d++) ok = t->dims[d] == sl->dims[d];
    if (!ok) {
      char want[160];
      size_t n = (size_t)snprintf(want, sizeof want, "dtype %d dims [", sl->dtype);
      for (int32_t d = 0; d < sl->rank && n < sizeof want - 24; d++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%s%lld", d ? "," : "", (long long)sl->dims[d]);
      snprintf(want + n, sizeof want - n, "]");
      return fail(s, VTOPT_ERR_INPUT, "run: input %d: expected %s (the shapes it was compiled for)%s", sl->index, want,
                  t->data ? "" : "; data is NULL");
    }
  }
  for (uint32_t i = 0; i < s->h->n_outputs; i++) memset(&outputs[i], 0, sizeof outputs[i]);
  CU(s->cu.CtxSetCurrent(s->ctx), "cuCtxSetCurrent");
  for (uint32_t i = 0; i < s->h->n_slots; i++)
    if (s->slots[i].kind == VT_GS_INPUT && s->slots[i].bytes > 0)
      CU(s->cu.MemcpyHtoD(s->ptr[i], inputs[s->slots[i].index].data, (size_t)s->slots[i].bytes), "cuMemcpyHtoD (input)");
  for (uint32_t i = 0; i < s->h->n_launches; i++) {
    const vt_gpu_launch *l = &s->launches[i];
    void *params[1] = {&s->table};
    CUresult r = s->cu.LaunchKernel(s->fns[i], l->grid_x, l->grid_y, 1, l->block_x, 1, 1, 0, s->stream, params, NULL);
    if (r) return fail(s, VTOPT_ERR_INTERNAL, "CUDA driver: cuLaunchKernel(%s) failed: error %d (%s)", l->kernel, r, cu_msg(s, r));
  }
  CU(s->cu.StreamSynchronize(s->stream), "cuStreamSynchronize (the kernels)");
  for (uint32_t i = 0; i < s->h->n_slots; i++) {
    const vt_gpu_slot *sl = &s->slots[i];
    if (sl->kind != VT_GS_OUTPUT) continue;
    vtopt_tensor *t = &outputs[sl->index];
    t->dtype = sl->dtype;
    t->rank = sl->rank;
    for (int32_t d = 0; d < sl->rank; d++) t->dims[d] = sl->dims[d];
    t->data = malloc((size_t)(sl->bytes > 0 ? sl->bytes : 1));
    if (!t->data) { free_outputs(s, outputs); return fail(s, VTOPT_ERR_INTERNAL, "out of memory"); }
    CUresult r = sl->bytes > 0 ? s->cu.MemcpyDtoH(t->data, s->ptr[i], (size_t)sl->bytes) : 0;
    if (r) {
      free_outputs(s, outputs);
      return fail(s, VTOPT_ERR_INTERNAL, "CUDA driver: cuMemcpyDtoH (output) failed: error %d (%s)", r, cu_msg(s, r));
    }
  }
  return VTOPT_OK;
}

int vt_gpu_so_reset(vtopt_session *s) { return s ? VTOPT_OK : VTOPT_ERR_INPUT; }

int vt_gpu_so_set(vtopt_session *s, const char *knob, double value) {
  (void)value;
  if (!s) return VTOPT_ERR_INPUT;
  return fail(s, VTOPT_ERR_INPUT, "unknown knob '%s': this model has no runtime knobs", knob ? knob : "(null)");
}

int vt_gpu_so_state_info(const vtopt_session *s, int64_t *bytes, int64_t *updated, int64_t *seen) {
  if (!s) return VTOPT_ERR_INPUT;
  if (bytes) *bytes = 0;
  if (updated) *updated = 0;
  if (seen) *seen = 0;
  return VTOPT_OK;
}

const char *vt_gpu_so_last_error(const vtopt_session *s) { return s ? s->err : create_err; }

void vt_gpu_so_destroy(vtopt_session *s) { session_free(s); }

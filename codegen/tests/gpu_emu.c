/* gpu_emu.c — a small emulator of the CUDA execution model for the GPU module of a model, built
 * into an x86 "kernel library" together with that module (gpu_exec.sh: the module from
 * --dump-llvm, retargeted to x86-64 with the NVVM intrinsics renamed to the vt_emu_* functions
 * here). The fake driver (fake_cuda.c, VTOPT_FAKE_CUDA_EXEC) loads the library and runs each
 * launch through vt_emu_launch: a block is ntid pthreads with a block barrier, warp shuffles go
 * through a per-warp exchange and warp barrier, blocks run one after another (shared memory is
 * the module's globals). Slow, and only for tests: it checks the generated kernels end to end
 * (pointer table, epilogues, elementwise chains, launches) where there is no GPU. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define EMU_MAX 1024
static _Thread_local int tid, bx, by;
static int ntid, nbx, nby;
static pthread_barrier_t block_bar, warp_bar[EMU_MAX / 32];
static float xchg[EMU_MAX];

int vt_emu_tid_x(void) { return tid; }
int vt_emu_ntid_x(void) { return ntid; }
int vt_emu_ctaid_x(void) { return bx; }
int vt_emu_ctaid_y(void) { return by; }
int vt_emu_nctaid_x(void) { return nbx; }
int vt_emu_nctaid_y(void) { return nby; }
void vt_emu_barrier(void) { pthread_barrier_wait(&block_bar); }
float vt_emu_shfl_bfly(int mask, float v, int off, int clamp) {
  (void)mask; (void)clamp;
  int w = tid / 32;
  xchg[tid] = v;
  pthread_barrier_wait(&warp_bar[w]);
  float r = xchg[(tid & ~31) | ((tid & 31) ^ off)];
  pthread_barrier_wait(&warp_bar[w]);
  return r;
}

typedef struct { void (*fn)(void *); void *arg; int t, x, y; } emu_thread;
static void *thread_main(void *p) {
  emu_thread *e = p;
  tid = e->t;
  bx = e->x;
  by = e->y;
  e->fn(e->arg);
  return NULL;
}

/* runs fn(arg) as a grid gx x gy of blocks of n threads (n a multiple of 32, <= 1024); 0 on success */
int vt_emu_launch(void (*fn)(void *), unsigned gx, unsigned gy, unsigned n, void *arg) {
  if (n == 0 || n % 32 || n > EMU_MAX) return 1;
  ntid = (int)n;
  nbx = (int)gx;
  nby = (int)gy;
  pthread_barrier_init(&block_bar, NULL, n);
  for (unsigned w = 0; w < n / 32; w++) pthread_barrier_init(&warp_bar[w], NULL, 32);
  pthread_t *th = malloc(n * sizeof *th);
  emu_thread *ts = malloc(n * sizeof *ts);
  int rc = !th || !ts;
  for (unsigned y = 0; y < gy && !rc; y++)
    for (unsigned x = 0; x < gx && !rc; x++) {
      for (unsigned t = 0; t < n; t++) {
        ts[t] = (emu_thread){fn, arg, (int)t, (int)x, (int)y};
        if (pthread_create(&th[t], NULL, thread_main, &ts[t])) abort();   /* a half-started block would hang */
      }
      for (unsigned t = 0; t < n; t++) pthread_join(th[t], NULL);
    }
  pthread_barrier_destroy(&block_bar);
  for (unsigned w = 0; w < n / 32; w++) pthread_barrier_destroy(&warp_bar[w]);
  free(th);
  free(ts);
  return rc;
}

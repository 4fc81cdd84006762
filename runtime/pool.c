/* pool.c — vtopt's own thread pool (no OpenMP): persistent workers woken per vt_pool_for call.
 * The caller's thread takes part in every loop. A worker that finished a loop spins for a short
 * while (VT_POOL_SPIN_US) watching for the next one before it sleeps on a condition variable, and
 * the submitter spins as long for the workers to finish before it sleeps: compiled models issue
 * their parallel loops back to back, and a futex wake-up of an idle (virtual) CPU costs tens of
 * microseconds per loop. An idle pool still burns no CPU after the spin. A vt_pool_for issued
 * from inside a pool task (nested parallelism) runs inline on the calling thread; concurrent
 * vt_pool_for calls from different outside threads on one pool are serialised.
 *
 * Hand-off: the submitter writes the job under mu, then bumps gen (release); a worker that sees
 * the new gen (acquire), spinning or woken, reads the job. Workers count themselves in sleeping
 * (under mu) before they wait, so the submitter broadcasts only when someone sleeps. pending
 * counts workers not done with the current job; the one that brings it to 0 signals done under
 * mu, and the submitter re-checks pending under mu before it waits, so no wake-up is lost. */
#include "runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define VT_POOL_MAX_THREADS 256
#define VT_POOL_SPIN_US 30.0

struct vt_pool {
  int nthreads;                 /* including the caller's thread */
  int nworkers;                 /* threads actually created (nthreads - 1) */
  pthread_t *th;
  pthread_mutex_t mu;           /* guards stop, sleeping, the job fields and the waits */
  pthread_cond_t wake;          /* workers wait here for a new generation */
  pthread_cond_t done;          /* the submitter waits here for pending == 0 */
  pthread_mutex_t submit;       /* one vt_pool_for at a time per pool */
  atomic_ullong gen;
  int stop;
  int sleeping;                 /* workers waiting on wake */
  atomic_int pending;           /* workers that have not finished the current generation */
  /* current job */
  vt_range_fn fn;
  void *arg;
  int64_t n;
  int64_t nchunks;
  atomic_llong next;            /* next chunk to take */
};

static _Thread_local int tls_in_pool;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void run_chunk(vt_pool *p, int64_t c) {
  int64_t base = p->n / p->nchunks, rem = p->n % p->nchunks;
  int64_t b = c * base + (c < rem ? c : rem);
  int64_t e = b + base + (c < rem ? 1 : 0);
  if (e > b) p->fn(p->arg, b, e);
}

/* Chunk 0 is the submitter's; the others go to whoever takes them first. */
static void run_chunks(vt_pool *p) {
  for (;;) {
    int64_t c = (int64_t)atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (c >= p->nchunks) break;
    run_chunk(p, c);
  }
}

static void *worker_main(void *vp) {
  vt_pool *p = vp;
  tls_in_pool = 1;
  uint64_t seen = 0;
  for (;;) {
    /* spin a while for the next generation, then sleep */
    uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g == seen) {
      double t0 = now_us();
      for (int i = 1; g == seen; i++) {
        cpu_relax();
        g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (i % 64 == 0 && now_us() - t0 > VT_POOL_SPIN_US) break;
      }
    }
    if (g == seen) {
      pthread_mutex_lock(&p->mu);
      p->sleeping++;
      while (!p->stop && (g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
      p->sleeping--;
      int stop = p->stop;
      pthread_mutex_unlock(&p->mu);
      if (stop) break;
    }
    seen = g;
    if (p->fn == NULL) break;   /* generation bumped by vt_pool_free */
    run_chunks(p);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

static int default_threads(void) {
  const char *s = getenv("VTOPT_NUM_THREADS");
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == 0 && v > 0) return v > VT_POOL_MAX_THREADS ? VT_POOL_MAX_THREADS : (int)v;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  return n > VT_POOL_MAX_THREADS ? VT_POOL_MAX_THREADS : (int)n;
}

vt_pool *vt_pool_new(int nthreads) {
  if (nthreads <= 0) nthreads = default_threads();
  if (nthreads > VT_POOL_MAX_THREADS) nthreads = VT_POOL_MAX_THREADS;
  vt_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  if (pthread_mutex_init(&p->mu, NULL)) goto fail0;
  if (pthread_mutex_init(&p->submit, NULL)) goto fail1;
  if (pthread_cond_init(&p->wake, NULL)) goto fail2;
  if (pthread_cond_init(&p->done, NULL)) goto fail3;
  p->nthreads = 1;
  if (nthreads > 1) {
    p->th = calloc((size_t)nthreads - 1, sizeof *p->th);
    if (p->th) {
      for (int i = 0; i < nthreads - 1; i++) {
        if (pthread_create(&p->th[i], NULL, worker_main, p)) break;
        p->nworkers++;
      }
    }
    p->nthreads = p->nworkers + 1;   /* fewer threads if creation failed: still correct */
  }
  return p;
fail3:
  pthread_cond_destroy(&p->wake);
fail2:
  pthread_mutex_destroy(&p->submit);
fail1:
  pthread_mutex_destroy(&p->mu);
fail0:
  free(p);
  return NULL;
}

void vt_pool_free(vt_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  p->fn = NULL;   /* a spinning worker sees the new generation with no job and leaves */
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nworkers; i++) pthread_join(p->th[i], NULL);
  free(p->th);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->submit);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int vt_pool_threads(const vt_pool *p) { return p ? p->nthreads : 1; }

void vt_pool_for(vt_pool *p, int64_t n, vt_range_fn fn, void *arg) {
  if (n <= 0) return;
  if (!p || p->nworkers == 0 || n == 1 || tls_in_pool) {
    fn(arg, 0, n);
    return;
  }
  pthread_mutex_lock(&p->submit);
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->nchunks = n < p->nthreads ? n : p->nthreads;
  atomic_store_explicit(&p->next, 1, memory_order_relaxed);
  atomic_store_explicit(&p->pending, p->nworkers, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  if (p->sleeping) pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);

  tls_in_pool = 1;
  run_chunk(p, 0);
  run_chunks(p);
  tls_in_pool = 0;

  if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
    double t0 = now_us();
    for (int i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
      cpu_relax();
      if (i % 64 == 0 && now_us() - t0 > VT_POOL_SPIN_US) break;
    }
  }
  if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&p->submit);
}

/* bench_util.h — timing and input helpers shared by the stand-alone bench programs (header
 * only, included by the programs in bench/; each program is built on its own): wall and process CPU
 * clocks in ms, a qsort comparator for doubles, and a fixed-seed uniform generator. */
#ifndef VTOPT_BENCH_UTIL_H
#define VTOPT_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of the whole process (all threads, user + system): on a shared machine it leaves out
 * the time the threads sat preempted */
static inline double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* uniform in [-1, 1), xorshift64 from a fixed seed (the same inputs every run) */
static uint64_t bench_rng = 0x9E3779B97F4A7C15ull;
static inline float frand(void) {
  bench_rng ^= bench_rng << 13;
  bench_rng ^= bench_rng >> 7;
  bench_rng ^= bench_rng << 17;
  return (float)((double)(bench_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

#endif

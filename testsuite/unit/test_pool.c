/* test_pool.c — the thread pool (runtime/pool.c): every index covered exactly once, contiguous
 * chunks, the caller's thread participates, NULL pool and nested calls run inline, many short
 * calls in a row, VTOPT_NUM_THREADS, and clean shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

typedef struct {
  atomic_int *hits;
  atomic_int calls;
  atomic_int bad;
  vt_pool *pool;
  atomic_int nested_hits;
  pthread_t caller;
  atomic_int caller_ran;
} cov;

static void mark(void *arg, int64_t b, int64_t e) {
  cov *c = arg;
  if (b >= e) atomic_fetch_add(&c->bad, 1);
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
  atomic_fetch_add(&c->calls, 1);
  if (pthread_equal(pthread_self(), c->caller)) atomic_store(&c->caller_ran, 1);
}

static void check_cover(vt_pool *p, int64_t n) {
  cov c;
  memset(&c, 0, sizeof c);
  c.hits = calloc((size_t)n + 1, sizeof *c.hits);
  c.caller = pthread_self();
  vt_pool_for(p, n, mark, &c);
  for (int64_t i = 0; i < n; i++) assert_int_equal(atomic_load(&c.hits[i]), 1);
  assert_int_equal(atomic_load(&c.bad), 0);
  int nt = vt_pool_threads(p);
  if (n > 0) {
    assert_true(atomic_load(&c.calls) <= (n < nt ? n : nt));
    assert_int_equal(atomic_load(&c.caller_ran), 1);
  }
  free(c.hits);
}

static void test_cover(void **state) {
  (void)state;
  vt_pool *p = vt_pool_new(3);
  assert_non_null(p);
  assert_int_equal(vt_pool_threads(p), 3);
  int64_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 100, 1001, 65537};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_cover(p, sizes[i]);
  vt_pool_free(p);
  check_cover(NULL, 17);            /* NULL pool: inline */
  vt_pool *one = vt_pool_new(1);
  assert_int_equal(vt_pool_threads(one), 1);
  check_cover(one, 17);
  vt_pool_free(one);
  assert_int_equal(vt_pool_threads(NULL), 1);
}

static void inner(void *arg, int64_t b, int64_t e) {
  cov *c = arg;
  atomic_fetch_add(&c->nested_hits, (int)(e - b));
}

static void outer(void *arg, int64_t b, int64_t e) {
  cov *c = arg;
  for (int64_t i = b; i < e; i++) vt_pool_for(c->pool, 10, inner, c);   /* runs inline */
}

static void test_nested(void **state) {
  (void)state;
  cov c;
  memset(&c, 0, sizeof c);
  c.pool = vt_pool_new(2);
  vt_pool_for(c.pool, 8, outer, &c);
  assert_int_equal(atomic_load(&c.nested_hits), 80);
  vt_pool_free(c.pool);
}

static void add_range(void *arg, int64_t b, int64_t e) {
  atomic_llong *s = arg;
  long long t = 0;
  for (int64_t i = b; i < e; i++) t += i;
  atomic_fetch_add(s, t);
}

static void test_many_calls(void **state) {
  (void)state;
  vt_pool *p = vt_pool_new(2);
  for (int r = 0; r < 20000; r++) {
    atomic_llong s = 0;
    vt_pool_for(p, 64, add_range, &s);
    assert_int_equal((long long)atomic_load(&s), 64 * 63 / 2);
  }
  vt_pool_free(p);
}

static void test_env(void **state) {
  (void)state;
  setenv("VTOPT_NUM_THREADS", "3", 1);
  vt_pool *p = vt_pool_new(0);
  assert_int_equal(vt_pool_threads(p), 3);
  check_cover(p, 1000);
  vt_pool_free(p);
  setenv("VTOPT_NUM_THREADS", "garbage", 1);
  p = vt_pool_new(-1);
  assert_true(vt_pool_threads(p) >= 1);
  vt_pool_free(p);
  unsetenv("VTOPT_NUM_THREADS");
  vt_pool_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cover),
      cmocka_unit_test(test_nested),
      cmocka_unit_test(test_many_calls),
      cmocka_unit_test(test_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

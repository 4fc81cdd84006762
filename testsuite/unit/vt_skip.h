/* vt_skip.h — skips that ctest reports as skipped. cmocka 1.1.5's skip() marks a test skipped,
 * but cmocka_run_group_tests() returns only the number of failed tests, so a binary whose only
 * news is a skip exits 0 and ctest shows a pass. Tests skip with vt_skip() and main returns
 * vt_group_result(cmocka_run_group_tests(...)): failures first, else VT_SKIP_RC (77) when anything
 * was skipped; ctest maps 77 to "Skipped" (SKIP_RETURN_CODE, testsuite/CMakeLists.txt and
 * passes/CMakeLists.txt). Skip only what `make test` does not provide (e.g. a binary run by hand
 * without its fixture's environment): what its set-up or fixtures make must fail when absent. */
#ifndef VT_SKIP_H
#define VT_SKIP_H

#include <stdio.h>

#define VT_SKIP_RC 77

static int vt_skipped_tests;

#define vt_skip(...)                 \
  do {                               \
    printf("  SKIPPED: ");           \
    printf(__VA_ARGS__);             \
    printf("\n");                    \
    fflush(stdout);                  \
    vt_skipped_tests++;              \
    skip();                          \
  } while (0)

static inline int vt_group_result(int failed) { return failed ? failed : vt_skipped_tests ? VT_SKIP_RC : 0; }

#endif

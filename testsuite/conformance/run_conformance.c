/* run_conformance.c — runs the ONNX backend test cases shipped by Debian's libonnx-testdata
 * through the frontend and the reference interpreter and compares with the stored outputs.
 * Each case runs in a forked child (a crash or hang fails that case only; under LeakSanitizer a
 * leak fails it too: the child checks for leaks before it exits). A list of cases not
 * supported yet (one per line: "dir/case  reason") keeps CI honest: an unlisted failure fails
 * the run, and so does a listed case that passes (the list only shrinks). */
#include "frontend.h"
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DATA_ROOT "/usr/include/onnx/backend/test/data"

/* Built with AddressSanitizer (gcc: __SANITIZE_ADDRESS__, clang: __has_feature): the child runs
 * LeakSanitizer itself, since _exit() skips the check that would run at exit. */
#if defined(__SANITIZE_ADDRESS__)
#define VT_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VT_LSAN 1
#endif
#endif
#ifdef VT_LSAN
#include <sanitizer/lsan_interface.h>
#endif

static const char *usage =
    "usage: vt_conformance [--root DIR] [--dirs node,pytorch-converted,pytorch-operator,simple]\n"
    "                      [--filter SUBSTR] [--list unsupported.txt] [--results FILE.tsv]\n"
    "                      [--timeout SEC] [--verbose] [--write-list FILE]\n"
    "  Runs each case and prints FAIL lines with the reason; with --list, exits 1 when an unlisted\n"
    "  case fails or a listed case passes. --write-list writes the current failures as a list.\n";

typedef struct { char *name; char *reason; bool seen; } listed;

static listed *list;
static int n_list;

static void load_list(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "vt_conformance: cannot read %s: %s\n", path, strerror(errno)); exit(2); }
  char line[2048];
  while (fgets(line, sizeof line, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || !*p) continue;
    char *end = p;
    while (*end && *end != ' ' && *end != '\t' && *end != '\n') end++;
    char *reason = end;
    if (*reason) { *reason++ = 0; while (*reason == ' ' || *reason == '\t') reason++; }
    reason[strcspn(reason, "\n")] = 0;
    list = realloc(list, (size_t)(n_list + 1) * sizeof *list);
    list[n_list].name = strdup(p);
    list[n_list].reason = strdup(reason);
    list[n_list].seen = false;
    n_list++;
  }
  fclose(f);
}

static listed *find_listed(const char *name) {
  for (int i = 0; i < n_list; i++) if (!strcmp(list[i].name, name)) return &list[i];
  return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **list_dir(const char *path, int *n) {
  DIR *d = opendir(path);
  *n = 0;
  if (!d) return NULL;
  char **names = NULL;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    names = realloc(names, (size_t)(*n + 1) * sizeof *names);
    names[(*n)++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)*n, sizeof *names, cmp_str);
  return names;
}

static bool close_enough(vt_dtype dt, double want, double got) {
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
  if (isinf(want) || isinf(got)) return want == got;
  double rtol = 1e-3, atol = 1e-5;
  if (dt == VT_F16 || dt == VT_BF16) { rtol = 1e-2; atol = 1e-3; }
  if (!vt_dtype_is_float(dt)) { rtol = 0; atol = 0; }
  return fabs(want - got) <= atol + rtol * fabs(want);
}

/* Runs one case; writes a one-line reason into msg on failure. Returns 0 pass, 1 fail. */
static int run_case(const char *dir, char *msg, size_t msgn) {
  char path[4096];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  vt_error e = {0};
  vt_graph *g = NULL;
  int rc = vt_onnx_load(path, &g, &e);
  if (!rc) rc = vt_graph_prepare(g, NULL, NULL, 0, &e);
  if (rc) {
    snprintf(msg, msgn, "load: %s", e.msg);
    vt_graph_free(g);
    return 1;
  }
  int nsets = 0;
  char **sets = list_dir(dir, &nsets);
  int result = 0, ran = 0;
  vt_interp *it = vt_interp_new(g, 0, &e);
  for (int s = 0; s < nsets && !result && it; s++) {
    if (strncmp(sets[s], "test_data_set_", 14) != 0) continue;
    ran++;
    vt_tensor *in = calloc((size_t)g->n_inputs + 1, sizeof *in);
    vt_tensor *out = calloc((size_t)g->n_outputs + 1, sizeof *out);
    for (int32_t i = 0; i < g->n_inputs && !result; i++) {
      snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, sets[s], i);
      if (vt_tensorproto_read(path, &in[i], NULL, &e)) {
        snprintf(msg, msgn, "input %d: %s", i, e.msg);
        result = 1;
      } else if (in[i].dtype == VT_U16 && g->values[g->inputs[i]].dtype == VT_BF16) {
        in[i].dtype = VT_BF16;   /* ONNX 1.12's test data stores bfloat16 as uint16 bits */
      }
    }
    if (!result && vt_interp_run(it, in, out, &e)) {
      snprintf(msg, msgn, "run: %s", e.msg);
      result = 1;
    }
    for (int32_t o = 0; o < g->n_outputs && !result; o++) {
      vt_tensor want = {0};
      snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, sets[s], o);
      if (vt_tensorproto_read(path, &want, NULL, &e)) {
        snprintf(msg, msgn, "output %d: %s", o, e.msg);
        result = 1;
        break;
      }
      const vt_tensor *got = &out[o];
      if (want.dtype == VT_U16 && got->dtype == VT_BF16) want.dtype = VT_BF16;   /* as above */
      if (want.dtype != got->dtype) {
        snprintf(msg, msgn, "output %d: dtype %s, expected %s", o, vt_dtype_name(got->dtype), vt_dtype_name(want.dtype));
        result = 1;
      } else if (want.rank != got->rank || memcmp(want.dims, got->dims, (size_t)want.rank * sizeof(int64_t))) {
        char a[256] = "", b[256] = "";
        for (int32_t d = 0; d < want.rank; d++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? "," : "", (long long)want.dims[d]);
        for (int32_t d = 0; d < got->rank; d++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? "," : "", (long long)got->dims[d]);
        snprintf(msg, msgn, "output %d: shape [%s], expected [%s]", o, b, a);
        result = 1;
      } else if (want.dtype == VT_STRING) {
        int64_t n = vt_tensor_numel(&want);
        for (int64_t k = 0; k < n && !result; k++)
          if (strcmp(((char **)want.data)[k], ((char **)got->data)[k])) {
            snprintf(msg, msgn, "output %d: string element %lld differs", o, (long long)k);
            result = 1;
          }
      } else {
        int64_t n = vt_tensor_numel(&want), bad = 0, first = -1;
        for (int64_t k = 0; k < n; k++)
          if (!close_enough(want.dtype, vt_tensor_get_f64(&want, k), vt_tensor_get_f64(got, k))) {
            if (first < 0) first = k;
            bad++;
          }
        if (bad) {
          snprintf(msg, msgn, "output %d: %lld of %lld elements differ (first at %lld: got %.8g, expected %.8g)", o,
                   (long long)bad, (long long)n, (long long)first, vt_tensor_get_f64(got, first),
                   vt_tensor_get_f64(&want, first));
          result = 1;
        }
      }
      vt_tensor_free(&want);
    }
    for (int32_t i = 0; i < g->n_inputs; i++) vt_tensor_free(&in[i]);
    for (int32_t o = 0; o < g->n_outputs; o++) vt_tensor_free(&out[o]);
    free(in);
    free(out);
  }
  if (!it) { snprintf(msg, msgn, "interp: %s", e.msg); result = 1; }
  if (!result && ran == 0) { snprintf(msg, msgn, "no test_data_set_*"); result = 1; }
  for (int s = 0; s < nsets; s++) free(sets[s]);
  free(sets);
  vt_interp_free(it);
  vt_graph_free(g);
  return result;
}

/* Forks, runs the case in the child and passes the verdict back through a pipe. */
static int run_isolated(const char *dir, int timeout, char *msg, size_t msgn) {
  int fds[2];
  if (pipe(fds)) { snprintf(msg, msgn, "pipe: %s", strerror(errno)); return 1; }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm((unsigned)timeout);
    char m[1024] = "";
    int r = run_case(dir, m, sizeof m);
#ifdef VT_LSAN
    /* everything run_case allocated is freed by now: a leak is the case's failure (the report
     * is on stderr); 0 when ASAN_OPTIONS has detect_leaks=0 */
    if (__lsan_do_recoverable_leak_check()) {
      r = 1;
      snprintf(m, sizeof m, "memory leaked (LeakSanitizer report above)");
    }
#endif
    char buf[1100];
    int n = snprintf(buf, sizeof buf, "%d%s", r, m);
    if (write(fds[1], buf, (size_t)n) < 0) _exit(4);
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  char buf[1100];
  ssize_t got = 0, r;
  while ((r = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
  close(fds[0]);
  buf[got > 0 ? got : 0] = 0;
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    snprintf(msg, msgn, sig == SIGALRM ? "timeout after %d s" : "crashed with signal %d", sig == SIGALRM ? timeout : sig);
    return 1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    snprintf(msg, msgn, "child exited with status %d (sanitizer report?)", WEXITSTATUS(status));
    return 1;
  }
  if (got < 1) { snprintf(msg, msgn, "no verdict from child"); return 1; }
  snprintf(msg, msgn, "%s", buf + 1);
  return buf[0] == '0' ? 0 : 1;
}

int main(int argc, char **argv) {
  const char *root = DATA_ROOT, *dirs = "node,pytorch-converted,pytorch-operator,simple";
  const char *filter = NULL, *listpath = NULL, *results = NULL, *write_list = NULL;
  int timeout = 120;
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
    else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) verbose = true;
    else if (v && !strcmp(a, "--root")) { root = v; i++; }
    else if (v && !strcmp(a, "--dirs")) { dirs = v; i++; }
    else if (v && !strcmp(a, "--filter")) { filter = v; i++; }
    else if (v && !strcmp(a, "--list")) { listpath = v; i++; }
    else if (v && !strcmp(a, "--results")) { results = v; i++; }
    else if (v && !strcmp(a, "--write-list")) { write_list = v; i++; }
    else if (v && !strcmp(a, "--timeout")) { timeout = atoi(v); i++; }
    else { fprintf(stderr, "vt_conformance: unknown argument '%s'\n%s", a, usage); return 2; }
  }
  if (listpath) load_list(listpath);
  FILE *rf = results ? fopen(results, "w") : NULL;
  FILE *wl = write_list ? fopen(write_list, "w") : NULL;
  if ((results && !rf) || (write_list && !wl)) { fprintf(stderr, "vt_conformance: cannot write output files\n"); return 2; }
  int total = 0, passed = 0, unexpected_fail = 0, unexpected_pass = 0, expected_fail = 0;
  char dirbuf[1024];
  snprintf(dirbuf, sizeof dirbuf, "%s", dirs);
  for (char *sub = strtok(dirbuf, ","); sub; sub = strtok(NULL, ",")) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    int n = 0;
    char **cases = list_dir(path, &n);
    if (!cases) { fprintf(stderr, "vt_conformance: cannot read %s (install libonnx-testdata)\n", path); return 2; }
    for (int c = 0; c < n; c++) {
      char name[1024], dir[4096], msg[1024] = "";
      snprintf(name, sizeof name, "%s/%s", sub, cases[c]);
      snprintf(dir, sizeof dir, "%s/%s", path, cases[c]);
      free(cases[c]);
      if (filter && !strstr(name, filter)) continue;
      struct stat st;
      snprintf(msg, sizeof msg, "%s/model.onnx", dir);
      if (stat(msg, &st) != 0) continue;   /* not a case */
      msg[0] = 0;
      total++;
      int fail = run_isolated(dir, timeout, msg, sizeof msg);
      listed *l = find_listed(name);
      if (l) l->seen = true;
      if (!fail) passed++;
      if (rf) fprintf(rf, "%s\t%s\t%s\n", name, fail ? "fail" : "pass", fail ? msg : "");
      if (wl && fail) fprintf(wl, "%s  %s\n", name, msg);
      if (fail && l) { expected_fail++; if (verbose) printf("xfail %s: %s\n", name, msg); }
      else if (fail) { unexpected_fail++; printf("FAIL %s: %s\n", name, msg); }
      else if (l) { unexpected_pass++; printf("UNEXPECTED PASS %s (listed as unsupported: %s): remove it from the list\n", name, l->reason); }
      else if (verbose) printf("pass %s\n", name);
      fflush(stdout);
    }
    free(cases);
  }
  if (rf) fclose(rf);
  if (wl) fclose(wl);
  int stale = 0;
  for (int i = 0; i < n_list; i++)
    if (!list[i].seen && !filter) { printf("STALE list entry %s: no such case\n", list[i].name); stale++; }
  printf("conformance: %d of %d cases pass (%.1f%%); %d listed as unsupported fail as expected\n", passed, total,
         total ? 100.0 * passed / total : 0.0, expected_fail);
  for (int i = 0; i < n_list; i++) { free(list[i].name); free(list[i].reason); }
  free(list);
  if (!listpath) return 0;
  if (unexpected_fail || unexpected_pass || stale) {
    printf("conformance: %d unexpected failure(s), %d unexpected pass(es), %d stale entr%s\n", unexpected_fail,
           unexpected_pass, stale, stale == 1 ? "y" : "ies");
    return 1;
  }
  return 0;
}

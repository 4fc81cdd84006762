/* so_toolchain.c — where `-o fast.so` finds the C compiler and the static libraries it links into
 * every fast.so (vt_cg_so, vt_cg_rt, vt_runtime, vt_ir). An installed vtopt (cmake --install)
 * uses the copies installed beside it (<bindir>/VT_CG_SO_INSTALL_REL, found from
 * /proc/self/exe); a vtopt run from its build tree uses the build's libraries. VTOPT_CC in the
 * environment overrides the compiler. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "so_format.h"

static const char *const so_lib_names[] = {"libvt_cg_so.a", "libvt_cg_rt.a", "libvt_runtime.a", "libvt_ir.a"};

/* "<dir of the running executable>/<VT_CG_SO_INSTALL_REL>" when the libraries are all there. */
static bool installed_lib_dir(char *dir, size_t n) {
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) return false;
  exe[len] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash) return false;
  *slash = 0;
  if ((size_t)snprintf(dir, n, "%s/%s", exe, VT_CG_SO_INSTALL_REL) >= n) return false;
  for (size_t i = 0; i < sizeof so_lib_names / sizeof so_lib_names[0]; i++) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, so_lib_names[i]);
    if (access(p, R_OK) != 0) return false;
  }
  return true;
}

const char *vt_cg_so_libs(void) {
  static _Thread_local char libs[4 * (PATH_MAX + 64)];
  char dir[PATH_MAX];
  if (!installed_lib_dir(dir, sizeof dir)) return VT_CG_SO_BUILD_LIBS;
  size_t k = 0;
  libs[0] = 0;
  for (size_t i = 0; i < sizeof so_lib_names / sizeof so_lib_names[0]; i++)
    k += (size_t)snprintf(libs + k, sizeof libs - k, "%s'%s/%s'", i ? " " : "", dir, so_lib_names[i]);
  return libs;
}

const char *vt_cg_so_cc(void) {
  const char *cc = getenv("VTOPT_CC");
  return cc && *cc ? cc : VT_CG_SO_BUILD_CC;
}

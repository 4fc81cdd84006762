/* cg_cpu.c — x86 CPU features by name (LLVM's spelling: "avx512f", "fma", ...) read with cpuid
 * and xgetbv. The compiler uses it to say what the host has; every fast.so calls it when a session
 * is created, to refuse to run on a CPU that lacks a feature its code was built for (a clear error
 * instead of SIGILL). No LLVM here: this file is linked into fast.so. */
#include "cg_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define VT_X86 1
#endif

/* where a feature's bit lives: cpuid leaf, subleaf, register (0 eax, 1 ebx, 2 ecx, 3 edx), bit;
 * state: the XCR0 bits the OS must enable for its registers (AVX: 0x6, AVX-512: 0xe6, AMX: 0x60000) */
typedef struct cpu_feature {
  const char *name;
  unsigned leaf, sub;
  int reg, bit;
  unsigned long long state;
} cpu_feature;

#define XAVX 0x6ull
#define XAVX512 0xe6ull
#define XAMX 0x60006ull
static const cpu_feature features[] = {
    {"sse", 1, 0, 3, 25, 0},         {"sse2", 1, 0, 3, 26, 0},        {"cmov", 1, 0, 3, 15, 0},
    {"fxsr", 1, 0, 3, 24, 0},        {"sse3", 1, 0, 2, 0, 0},         {"pclmul", 1, 0, 2, 1, 0},
    {"ssse3", 1, 0, 2, 9, 0},        {"fma", 1, 0, 2, 12, XAVX},      {"cx16", 1, 0, 2, 13, 0},
    {"sse4.1", 1, 0, 2, 19, 0},      {"sse4.2", 1, 0, 2, 20, 0},      {"movbe", 1, 0, 2, 22, 0},
    {"popcnt", 1, 0, 2, 23, 0},      {"aes", 1, 0, 2, 25, 0},         {"xsave", 1, 0, 2, 26, 0},
    {"avx", 1, 0, 2, 28, XAVX},      {"f16c", 1, 0, 2, 29, XAVX},     {"rdrnd", 1, 0, 2, 30, 0},
    {"fsgsbase", 7, 0, 1, 0, 0},     {"bmi", 7, 0, 1, 3, 0},          {"avx2", 7, 0, 1, 5, XAVX},
    {"bmi2", 7, 0, 1, 8, 0},         {"avx512f", 7, 0, 1, 16, XAVX512}, {"avx512dq", 7, 0, 1, 17, XAVX512},
    {"rdseed", 7, 0, 1, 18, 0},      {"adx", 7, 0, 1, 19, 0},         {"avx512ifma", 7, 0, 1, 21, XAVX512},
    {"clflushopt", 7, 0, 1, 23, 0},  {"clwb", 7, 0, 1, 24, 0},        {"avx512cd", 7, 0, 1, 28, XAVX512},
    {"sha", 7, 0, 1, 29, 0},         {"avx512bw", 7, 0, 1, 30, XAVX512}, {"avx512vl", 7, 0, 1, 31, XAVX512},
    {"avx512vbmi", 7, 0, 2, 1, XAVX512}, {"avx512vbmi2", 7, 0, 2, 6, XAVX512}, {"gfni", 7, 0, 2, 8, 0},
    {"vaes", 7, 0, 2, 9, XAVX},      {"vpclmulqdq", 7, 0, 2, 10, XAVX}, {"avx512vnni", 7, 0, 2, 11, XAVX512},
    {"avx512bitalg", 7, 0, 2, 12, XAVX512}, {"avx512vpopcntdq", 7, 0, 2, 14, XAVX512}, {"rdpid", 7, 0, 2, 22, 0},
    {"avx512vp2intersect", 7, 0, 3, 8, XAVX512}, {"amx-bf16", 7, 0, 3, 22, XAMX}, {"avx512fp16", 7, 0, 3, 23, XAVX512},
    {"amx-tile", 7, 0, 3, 24, XAMX}, {"amx-int8", 7, 0, 3, 25, XAMX}, {"avxvnni", 7, 1, 0, 4, XAVX},
    {"avx512bf16", 7, 1, 0, 5, XAVX512}, {"avxifma", 7, 1, 0, 23, XAVX}, {"sahf", 0x80000001u, 0, 2, 0, 0},
    {"lzcnt", 0x80000001u, 0, 2, 5, 0}, {"sse4a", 0x80000001u, 0, 2, 6, 0}, {"prfchw", 0x80000001u, 0, 2, 8, 0},
    {"xop", 0x80000001u, 0, 2, 11, XAVX}, {"fma4", 0x80000001u, 0, 2, 16, XAVX}, {"tbm", 0x80000001u, 0, 2, 21, 0},
};

static const cpu_feature *find_feature(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
    if (strlen(features[i].name) == len && !strncmp(features[i].name, name, len)) return &features[i];
  return NULL;
}

/* Features named in VTOPT_CPU_HIDE (comma separated) read as absent: lets a test run a library
 * built for features this machine has as if on a CPU without them. */
static bool hidden(const char *name, size_t len) {
  const char *h = getenv("VTOPT_CPU_HIDE");
  while (h && *h) {
    const char *end = strchr(h, ',');
    size_t l = end ? (size_t)(end - h) : strlen(h);
    if (l == len && !strncmp(h, name, len)) return true;
    h = end ? end + 1 : NULL;
  }
  return false;
}

static bool have(const cpu_feature *f) {
#ifdef VT_X86
  unsigned r[4] = {0, 0, 0, 0}, max = __get_cpuid_max(f->leaf & 0x80000000u, NULL);
  if (max < f->leaf || !__get_cpuid_count(f->leaf, f->sub, &r[0], &r[1], &r[2], &r[3])) return false;
  if (!((r[f->reg] >> f->bit) & 1u)) return false;
  if (f->state) {   /* the OS must save the registers: OSXSAVE, then XCR0 */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
    if ((xcr0 & f->state) != f->state) return false;
  }
  return true;
#else
  (void)f;
  return false;
#endif
}

int vt_cpu_feature(const char *name) {
  size_t len = strlen(name);
  const cpu_feature *f = find_feature(name, len);
  if (!f) return -1;
  return have(f) && !hidden(name, len);
}

int vt_cpu_missing(const char *list, char *missing, size_t n) {
  int count = 0;
  size_t used = 0;
  if (n) missing[0] = 0;
  for (const char *p = list; p && *p;) {
    while (*p == ',' || *p == '+') p++;
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const cpu_feature *f = len ? find_feature(p, len) : NULL;
    if (f && (!have(f) || hidden(p, len))) {
      if (n && used + len + 3 < n) {
        used += (size_t)snprintf(missing + used, n - used, "%s%.*s", count ? ", " : "", (int)len, p);
      }
      count++;
    }
    p = end ? end + 1 : NULL;
  }
  return count;
}

size_t vt_cpu_known_features(const char *llvm_features, char *out, size_t n) {
  size_t used = 0;
  if (n) out[0] = 0;
  for (const char *p = llvm_features; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > 1 && p[0] == '+' && find_feature(p + 1, len - 1)) {
      int w = snprintf(out + used, used < n ? n - used : 0, "%s%.*s", used ? "," : "", (int)(len - 1), p + 1);
      if (w > 0) used += (size_t)w;
    }
    p = end ? end + 1 : NULL;
  }
  return used;
}

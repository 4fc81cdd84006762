/* cg_cpu.h — x86 CPU features by LLVM name, read with cpuid/xgetbv (cg_cpu.c). Linked into the
 * compiler and into every fast.so (no LLVM). */
#ifndef VTOPT_CG_CPU_H
#define VTOPT_CG_CPU_H

#include <stdbool.h>
#include <stddef.h>

/* 1: this CPU (and OS) has the feature; 0: not; -1: a name this table does not know. Names in the
 * environment variable VTOPT_CPU_HIDE (comma separated) read as absent (tests). */
int vt_cpu_feature(const char *name);
/* Of the comma-separated feature names in list ('+' prefixes allowed; unknown names are
 * skipped), how many this CPU lacks; their names, comma separated, into missing[n]. */
int vt_cpu_missing(const char *list, char *missing, size_t n);
/* The '+' features of an LLVM feature string that this table knows, as "a,b,c" into out[n]
 * (what a library records and checks at create). Returns the length it needed. */
size_t vt_cpu_known_features(const char *llvm_features, char *out, size_t n);

#endif

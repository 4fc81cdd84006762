/* cg_target.c — target selection: which CPU (LLVM name, feature string) generated code is built
 * for, which kernel library variant (ISA: micro-tile, vector width) serves it, the features a
 * fast.so records and checks when a session is created, the LLVM target machine for it, and
 * stamping that target onto every function of a module.
 *
 * The CPU comes from vt_cg_options.cpu / cpu_features, else VTOPT_CPU / VTOPT_CPU_FEATURES in the
 * environment, else the host ("host" names it too). The ISA is not guessed from the name: LLVM
 * itself is asked, by compiling a probe function for that CPU and features and looking at the
 * registers it used (zmm: 512-bit vectors are legal; ymm with vfmadd: AVX2 + FMA). */
#include "cg_internal.h"

#include <unistd.h>

#include <llvm-c/IRReader.h>

#include "cg_cpu.h"
#include "cg_x86_names.h"   /* generated at configure time from llc -mcpu=help (CMakeLists.txt) */

/* " name " in a space-separated list with a leading and a trailing space */
static bool in_list(const char *list, const char *name, size_t len) {
  if (!list[0]) return true;   /* list unavailable at build time: no check */
  char key[96];
  if (len + 3 > sizeof key) return false;
  snprintf(key, sizeof key, " %.*s ", (int)len, name);
  return strstr(list, key) != NULL;
}

/* Checks a comma-separated "+a,-b" feature string against LLVM's x86 feature names. */
static int check_features(const char *f, vt_error *e) {
  for (const char *p = f; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len && (p[0] != '+' && p[0] != '-'))
      return vt_errorf(e, VT_ERR_MODEL, "--cpu-features: '%.*s' needs a '+' or '-' (e.g. +avx512f,-avx512vl)", (int)len, p);
    if (len > 1 && !in_list(VT_X86_FEATURE_NAMES, p + 1, len - 1))
      return vt_errorf(e, VT_ERR_MODEL, "--cpu-features: '%.*s' is not an x86 feature LLVM knows (llc -march=x86-64 -mattr=help lists them)",
                       (int)(len - 1), p + 1);
    p = end ? end + 1 : NULL;
  }
  return VT_OK;
}

static char *join_features(const char *a, const char *b) {
  size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
  char *r = malloc(la + lb + 2);
  if (!r) return NULL;
  snprintf(r, la + lb + 2, "%s%s%s", a ? a : "", la && lb ? "," : "", b ? b : "");
  return r;
}

static LLVMTargetMachineRef make_tm(const char *cpu, const char *feat, int opt_level, LLVMRelocMode reloc,
                                    vt_error *e) {
  char *triple = LLVMGetDefaultTargetTriple();
  LLVMTargetRef t;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
    vt_errorf(e, VT_ERR_INTERNAL, "LLVM has no target for %s: %s", triple, msg ? msg : "?");
    LLVMDisposeMessage(msg);
  } else {
    LLVMCodeGenOptLevel lv = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
                           : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
    tm = LLVMCreateTargetMachine(t, triple, cpu, feat, lv, reloc,
                                 reloc == LLVMRelocPIC ? LLVMCodeModelDefault : LLVMCodeModelJITDefault);
    if (!tm) vt_errorf(e, VT_ERR_INTERNAL, "cannot create an LLVM target machine for %s (%s)", triple, cpu);
  }
  LLVMDisposeMessage(triple);
  return tm;
}

/* Assembly of a probe module for (cpu, feat): a <16 x float> multiply-add with 512-bit vectors
 * allowed, and an <8 x float> one; which registers and instructions LLVM chose tell the ISA. */
static int probe_isa(const char *cpu, const char *feat, int *isa, vt_error *e) {
  static const char ir[] =
      "define void @p16(ptr %a, ptr %b) #0 {\n"
      "  %x = load <16 x float>, ptr %a\n  %y = load <16 x float>, ptr %b\n"
      "  %z = call <16 x float> @llvm.fma.v16f32(<16 x float> %x, <16 x float> %y, <16 x float> %y)\n"
      "  store <16 x float> %z, ptr %a\n  ret void\n}\n"
      "define void @p8(ptr %a, ptr %b) #0 {\n"
      "  %x = load <8 x float>, ptr %a\n  %y = load <8 x float>, ptr %b\n"
      "  %z = call <8 x float> @llvm.fma.v8f32(<8 x float> %x, <8 x float> %y, <8 x float> %y)\n"
      "  store <8 x float> %z, ptr %a\n  ret void\n}\n"
      "declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)\n"
      "declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)\n"
      "attributes #0 = { \"min-legal-vector-width\"=\"512\" \"prefer-vector-width\"=\"512\" }\n";
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, sizeof ir - 1, "vt_isa_probe");
  LLVMModuleRef m = NULL;
  char *msg = NULL;
  int rc = VT_OK;
  if (LLVMParseIRInContext(ctx, mb, &m, &msg)) {   /* takes mb */
    rc = vt_errorf(e, VT_ERR_INTERNAL, "ISA probe: %s", msg ? msg : "?");
    LLVMDisposeMessage(msg);
    LLVMContextDispose(ctx);
    return rc;
  }
  LLVMTargetMachineRef tm = make_tm(cpu, feat, 2, LLVMRelocDefault, e);
  if (!tm) {
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    return VT_ERR_INTERNAL;
  }
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(m, triple);
  LLVMDisposeMessage(triple);
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "target-cpu", 10, cpu, (unsigned)strlen(cpu)));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "target-features", 15, feat, (unsigned)strlen(feat)));
  }
  LLVMMemoryBufferRef out = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &out)) {
    rc = vt_errorf(e, VT_ERR_INTERNAL, "ISA probe: %s", msg ? msg : "?");
    LLVMDisposeMessage(msg);
  } else {
    size_t n = LLVMGetBufferSize(out);
    char *s = malloc(n + 1);
    if (!s) {
      rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
    } else {
      memcpy(s, LLVMGetBufferStart(out), n);
      s[n] = 0;
      bool zmm = strstr(s, "%zmm") != NULL, fma = strstr(s, "vfmadd") != NULL, ymm = strstr(s, "%ymm") != NULL;
      *isa = zmm && fma ? VT_CG_ISA_AVX512 : ymm && fma ? VT_CG_ISA_AVX2 : -1;
      free(s);
    }
    LLVMDisposeMemoryBuffer(out);
  }
  LLVMDisposeTargetMachine(tm);
  LLVMDisposeModule(m);
  LLVMContextDispose(ctx);
  return rc;
}

void cg_target_free(cg_target *t) {
  free(t->cpu);
  free(t->features);
  memset(t, 0, sizeof *t);
}

int cg_target_resolve(const vt_cg_options *opt, cg_target *t, vt_error *e) {
  memset(t, 0, sizeof *t);
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  const char *cpu = opt && opt->cpu && *opt->cpu ? opt->cpu : getenv("VTOPT_CPU");
  const char *user = opt && opt->cpu_features && *opt->cpu_features ? opt->cpu_features : getenv("VTOPT_CPU_FEATURES");
  if (cpu && !*cpu) cpu = NULL;
  if (user && !*user) user = NULL;
  if (user && check_features(user, e)) return VT_ERR_MODEL;
  t->host = !cpu || !strcmp(cpu, "host") || !strcmp(cpu, "native");
  if (t->host) {
    char *hc = LLVMGetHostCPUName(), *hf = LLVMGetHostCPUFeatures();
    if (!hc || !hf) {
      LLVMDisposeMessage(hc);
      LLVMDisposeMessage(hf);
      return vt_errorf(e, VT_ERR_INTERNAL, "cannot read the host CPU's name and features from LLVM");
    }
    t->cpu = strdup(hc);
    t->features = join_features(hf, user);   /* later entries win: the user's overrides */
    LLVMDisposeMessage(hc);
    LLVMDisposeMessage(hf);
  } else {
    if (!in_list(VT_X86_CPU_NAMES, cpu, strlen(cpu)))
      return vt_errorf(e, VT_ERR_MODEL, "--cpu: '%s' is not an x86 CPU LLVM knows (e.g. host, x86-64-v3, x86-64-v4, "
                                        "skylake-avx512, znver4; llc -march=x86-64 -mcpu=help lists them)", cpu);
    t->cpu = strdup(cpu);
    t->features = join_features(NULL, user);
  }
  if (!t->cpu || !t->features) {
    cg_target_free(t);
    return vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  int isa = -1;
  if (probe_isa(t->cpu, t->features, &isa, e)) {
    cg_target_free(t);
    return VT_ERR_INTERNAL;
  }
  if (isa < 0) {
    vt_errorf(e, VT_ERR_MODEL, "--cpu %s%s%s: vtopt's kernels need at least AVX2 and FMA (x86-64-v3)", t->cpu,
              user ? " --cpu-features " : "", user ? user : "");
    cg_target_free(t);
    return VT_ERR_MODEL;
  }
  t->isa_id = isa;
  t->isa = &vt_cg_isa_table[isa];
  /* K block from the L1 data cache when building for this machine: a B panel block (kc x NR
   * floats) takes half of it, the rest holds the A rows and C (48 KiB and AVX-512: 192; 32 KiB
   * and AVX2: 256, the blocks measured best on those machines); a named CPU gets the ISA's */
  t->kc = t->isa->kc;
  long l1 = t->host ? sysconf(_SC_LEVEL1_DCACHE_SIZE) : 0;
  if (l1 >= 16384 && l1 <= (1L << 20)) {
    int64_t kc = l1 / 2 / (t->isa->nr * 4) / 16 * 16;
    t->kc = kc < 64 ? 64 : kc > 512 ? 512 : kc;
    t->l1d = l1;
  }
  /* what a fast.so checks at create: the host's '+' features (with the user's), or for a named
   * CPU the ISA's own features and the user's '+' ones; '-' entries removed */
  char buf[2048];
  const char *base = t->host ? t->features : t->isa->features;
  char *all = t->host ? strdup(base) : join_features(base, user);
  if (!all) {
    cg_target_free(t);
    return vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  vt_cpu_known_features(all, buf, sizeof buf);
  free(all);
  /* drop features the string also disables ("-x" after "+x") */
  t->required[0] = 0;
  size_t used = 0;
  for (char *p = buf, *end; p && *p; p = end ? end + 1 : NULL) {
    end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char key[96];
    snprintf(key, sizeof key, "-%.*s", (int)len, p);
    const char *off = strstr(t->features, key);
    bool disabled = false;
    while (off) {   /* a whole-name match ("-avx512f" must not match "-avx512fp16") */
      char after = off[strlen(key)];
      if (after == ',' || after == 0) { disabled = true; break; }
      off = strstr(off + 1, key);
    }
    char dup[98];
    snprintf(dup, sizeof dup, ",%.*s,", (int)len, p);
    char have[sizeof t->required + 2];
    snprintf(have, sizeof have, ",%s,", t->required);
    bool wide = !strncmp(p, "avx512", 6) || !strncmp(p, "amx", 3) || !strncmp(p, "avx10", 5);
    if (disabled || (wide && t->isa_id != VT_CG_ISA_AVX512) || strstr(have, dup) || used + len + 2 >= sizeof t->required)
      continue;   /* (AVX-512 turned off by the user's features: LLVM drops its dependents too) */
    used += (size_t)snprintf(t->required + used, sizeof t->required - used, "%s%.*s", used ? "," : "", (int)len, p);
  }
  return VT_OK;
}

LLVMTargetMachineRef cg_target_machine(const cg_target *t, int opt_level, LLVMRelocMode reloc, vt_error *e) {
  return make_tm(t->cpu, t->features, opt_level, reloc, e);
}

/* Every defined function gets the target CPU and features; with the AVX-512 library, vectors of
 * 512 bits are legal and preferred (the tuning of several CPUs prefers 256-bit vectors, under
 * which the vectorizer stays at ymm and the backend splits the library's 512-bit vectors). */
void cg_target_functions(LLVMModuleRef m, LLVMContextRef ctx, const cg_target *t) {
  static const char *const keys[] = {"target-cpu", "target-features", "tune-cpu", "prefer-vector-width",
                                     "min-legal-vector-width"};
  char width[16];
  snprintf(width, sizeof width, "%d", t->isa->vw * 32);
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    for (int i = 0; i < 5; i++)
      LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, keys[i], (unsigned)strlen(keys[i]));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, keys[0], 10, t->cpu, (unsigned)strlen(t->cpu)));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, keys[1], 15, t->features, (unsigned)strlen(t->features)));
    if (t->isa->vw > 8) {
      LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                              LLVMCreateStringAttribute(ctx, keys[3], 19, width, (unsigned)strlen(width)));
      LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                              LLVMCreateStringAttribute(ctx, keys[4], 22, width, (unsigned)strlen(width)));
    }
  }
}

int vt_cg_target(const vt_cg_options *opt, vt_cg_target_info *info, vt_error *e) {
  cg_target t;
  if (cg_target_resolve(opt, &t, e)) return VT_ERR_MODEL;
  memset(info, 0, sizeof *info);
  snprintf(info->cpu, sizeof info->cpu, "%s", t.cpu);
  snprintf(info->isa, sizeof info->isa, "%s", t.isa->name);
  snprintf(info->features, sizeof info->features, "%s", t.required);
  info->host = t.host;
  info->mr = t.isa->mr;
  info->nr = t.isa->nr;
  info->kc = (int)t.kc;
  info->l1d = t.l1d;
  cg_target_free(&t);
  return VT_OK;
}

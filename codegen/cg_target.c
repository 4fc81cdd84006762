/* cg_target.c — target selection: which CPU (name, features) generated code is built for, the
 * LLVM target machine for it, and stamping that target onto every function of a module. Today the
 * target is always the host CPU; this is the one place that decides it. */
#include "cg_internal.h"

int cg_target_cpu(const vt_cg_options *opt, char **cpu, char **features, vt_error *e) {
  (void)opt;   /* no target options yet: the host */
  *cpu = LLVMGetHostCPUName();
  *features = LLVMGetHostCPUFeatures();
  if (!*cpu || !*features) {
    LLVMDisposeMessage(*cpu);
    LLVMDisposeMessage(*features);
    *cpu = *features = NULL;
    return vt_errorf(e, VT_ERR_INTERNAL, "cannot read the host CPU's name and features from LLVM");
  }
  return VT_OK;
}

LLVMTargetMachineRef cg_target_machine(const vt_cg_options *opt, int opt_level, LLVMRelocMode reloc, vt_error *e) {
  char *cpu = NULL, *feat = NULL;
  if (cg_target_cpu(opt, &cpu, &feat, e)) return NULL;
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
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  return tm;
}

int cg_target_functions(LLVMModuleRef m, LLVMContextRef ctx, const vt_cg_options *opt, vt_error *e) {
  char *cpu = NULL, *feat = NULL;
  if (cg_target_cpu(opt, &cpu, &feat, e)) return VT_ERR_INTERNAL;
  static const char *const keys[] = {"target-cpu", "target-features", "tune-cpu"};
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    for (int i = 0; i < 3; i++)
      LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, keys[i], (unsigned)strlen(keys[i]));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "target-cpu", 10, cpu, (unsigned)strlen(cpu)));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "target-features", 15, feat, (unsigned)strlen(feat)));
  }
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  return VT_OK;
}

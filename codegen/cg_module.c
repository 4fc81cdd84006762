/* cg_module.c — the LLVM module pipeline shared by the JIT and the fast.so writer: a module in a
 * new context with the kernel bitcode linked in, the CPU emission (cg_emit_cpu.c) and any extra
 * (the fast.so ABI), the target's attributes, verification and the optimisation passes. */
#include "cg_internal.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Transforms/PassBuilder.h>

char *cg_llvm_err(LLVMErrorRef err) {
  char *m = LLVMGetErrorMessage(err);
  char *r = strdup(m ? m : "?");
  LLVMDisposeErrorMessage(m);
  return r;
}

/* Builds the module of a planned graph in a new thread-safe context: kernel bitcode linked in,
 * glue and kernels emitted (extra() may add more, e.g. the fast.so ABI), retargeted to the
 * target CPU (cg_target.c), verified, optimised, optionally dumped. *tsc and *tm are set even on
 * failure (caller disposes); c->mod is the module (NULL once handed over). */
int cg_llvm_module(cg *c, const vt_cg_options *opt, int olv, int nthreads, LLVMRelocMode reloc,
                   int (*extra)(cg *c, void *arg), void *extra_arg, double t0,
                   LLVMOrcThreadSafeContextRef *tsc, LLVMTargetMachineRef *tm) {
  vt_error *e = c->e;
  const vt_graph *g = c->g;
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  *tsc = LLVMOrcCreateNewThreadSafeContext();
  c->ctx = LLVMOrcThreadSafeContextGetContext(*tsc);
  c->mod = LLVMModuleCreateWithNameInContext(g->name && *g->name ? g->name : "vt_model", c->ctx);
  *tm = cg_target_machine(&c->tgt, olv, reloc, e);
  if (!*tm) return VT_ERR_INTERNAL;
  LLVMTargetMachineRef tmr = *tm;
  {
    char *triple = LLVMGetTargetMachineTriple(tmr);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tmr);
    LLVMSetTarget(c->mod, triple);
    LLVMSetModuleDataLayout(c->mod, td);
    LLVMMemoryBufferRef mb =   /* the kernel library built for the target's ISA (cg_layout.h) */
        c->tgt.isa_id == VT_CG_ISA_AVX512
            ? LLVMCreateMemoryBufferWithMemoryRange((const char *)vt_cg_kernels_avx512_bc, vt_cg_kernels_avx512_bc_len,
                                                    "vt_cg_kernels_avx512", 0)
            : LLVMCreateMemoryBufferWithMemoryRange((const char *)vt_cg_kernels_avx2_bc, vt_cg_kernels_avx2_bc_len,
                                                    "vt_cg_kernels_avx2", 0);
    LLVMModuleRef lib = NULL;
    bool bad = LLVMParseBitcodeInContext2(c->ctx, mb, &lib);
    LLVMDisposeMemoryBuffer(mb);
    if (bad) {
      LLVMDisposeMessage(triple);
      LLVMDisposeTargetData(td);
      vt_errorf(e, VT_ERR_INTERNAL, "cannot parse the embedded kernel bitcode");
      return VT_ERR_INTERNAL;
    }
    LLVMSetTarget(lib, triple);
    LLVMSetModuleDataLayout(lib, td);
    LLVMDisposeMessage(triple);
    LLVMDisposeTargetData(td);
    /* the library's definitions become internal once linked: only glue calls them */
    int nlib = 0;
    char **libnames = NULL;
    for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) nlib++;
    libnames = calloc((size_t)nlib + 1, sizeof *libnames);
    if (!libnames) { LLVMDisposeModule(lib); vt_errorf(e, VT_ERR_MODEL, "out of memory"); return VT_ERR_MODEL; }
    nlib = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) {
      size_t len;
      if (!LLVMIsDeclaration(f)) libnames[nlib++] = strdup(LLVMGetValueName2(f, &len));
    }
    if (LLVMLinkModules2(c->mod, lib)) {
      for (int i = 0; i < nlib; i++) free(libnames[i]);
      free(libnames);
      vt_errorf(e, VT_ERR_INTERNAL, "cannot link the kernel bitcode into the model module");
      return VT_ERR_INTERNAL;
    }
    int rc = cg_build_module(c, nthreads);
    if (!rc && extra) rc = extra(c, extra_arg);
    for (int i = 0; i < nlib; i++) {
      LLVMValueRef f = libnames[i] ? LLVMGetNamedFunction(c->mod, libnames[i]) : NULL;
      if (f) LLVMSetLinkage(f, LLVMInternalLinkage);
      free(libnames[i]);
    }
    free(libnames);
    if (rc) return rc;
    cg_target_functions(c->mod, c->ctx, &c->tgt);
  }
  {
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
      vt_errorf(e, VT_ERR_INTERNAL, "codegen produced an invalid LLVM module: %.800s", msg ? msg : "?");
      LLVMDisposeMessage(msg);
      return VT_ERR_INTERNAL;
    }
    LLVMDisposeMessage(msg);
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", olv);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, olv >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, olv >= 2);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, olv >= 2);
    double tp = cg_now_ms();
    LLVMErrorRef err = LLVMRunPasses(c->mod, pipeline, tmr, po);
    if (getenv("VT_CG_TIMING")) fprintf(stderr, "codegen: lowering %.1f ms, passes %.1f ms\n", tp - t0, cg_now_ms() - tp);
    LLVMDisposePassBuilderOptions(po);
    if (err) {
      char *m = cg_llvm_err(err);
      vt_errorf(e, VT_ERR_INTERNAL, "LLVM passes failed: %s", m);
      free(m);
      return VT_ERR_INTERNAL;
    }
    if (opt->dump_llvm && LLVMPrintModuleToFile(c->mod, opt->dump_llvm, &msg)) {
      vt_errorf(e, VT_ERR_MODEL, "cannot write %s: %s", opt->dump_llvm, msg ? msg : "?");
      LLVMDisposeMessage(msg);
      return VT_ERR_MODEL;
    }
  }
  return VT_OK;
}

/* cg_jit.c — the public JIT API: vt_jit_compile (plan, arena, module, ORC LLJIT with the host
 * callbacks), run, reset, state info, knobs, stats and free. */
#include "cg_internal.h"

#include <time.h>

#include <llvm-c/LLJIT.h>

struct vt_jit {
  vt_cg_rt rt;                 /* first: the generated entry receives &rt */
  LLVMOrcLLJITRef lljit;
  void *arena;
  void **keep; int n_keep;     /* packed weights the generated code reads (at constant addresses) */
  vt_jit_stats st;
};

vt_jit *vt_jit_compile(const vt_graph *g, const vt_cg_options *opt, vt_error *e) {
  double t0 = cg_now_ms();
  clock_t cpu0 = clock();
  vt_cg_options dflt = {.opt_level = 3};
  if (!opt) opt = &dflt;
  int olv = opt->opt_level < 0 ? 0 : opt->opt_level > 3 ? 3 : opt->opt_level;
  cg c;
  memset(&c, 0, sizeof c);
  c.g = c.orig = g;
  c.e = e;
  vt_jit *j = calloc(1, sizeof *j);
  LLVMOrcThreadSafeContextRef tsc = NULL;
  LLVMTargetMachineRef tm = NULL;
  LLVMOrcLLJITRef J = NULL;
  int64_t *off = NULL;
  if (!j) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); return NULL; }
  if (cg_target_resolve(opt, &c.tgt, e)) { free(j); return NULL; }
  if (vt_cg_rt_init(&j->rt, g, opt->threads, e)) { cg_target_free(&c.tgt); free(j); return NULL; }
  if (cg_make_view(&c) || cg_build_users(&c) || cg_plan(&c)) goto fail;
  cg_count_groups(&c, &j->st);
  /* buffers */
  off = malloc(((size_t)g->n_values + 1) * sizeof *off);
  if (!off) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto fail; }
  int64_t asz = cg_plan_arena(&c, off);
  if (asz >= 0 && cg_check_memory(&c, opt->max_memory, asz, e)) goto fail;
  if (asz < 0 || !(j->arena = aligned_alloc(64, (size_t)(asz ? asz : 64)))) {
    vt_errorf(e, VT_ERR_MODEL, "%s: cannot allocate the activation arena (%lld bytes)", g->path, (long long)asz);
    goto fail;
  }
  if (vt_cg_rt_bind(&j->rt, off, j->arena, e)) goto fail;

  if (cg_llvm_module(&c, opt, olv, vt_pool_threads(j->rt.pool), LLVMRelocDefault, NULL, NULL, t0, &tsc, &tm))
    goto fail;
  {
    LLVMOrcJITTargetMachineBuilderRef jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
    tm = NULL;   /* owned by the builder now */
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&J, jb);
    if (err) { char *m = cg_llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "cannot create the LLJIT: %s", m); free(m); J = NULL; goto fail; }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(J);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(J), NULL, NULL);
    if (err) { char *m = cg_llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT symbol generator: %s", m); free(m); goto fail; }
    LLVMOrcJITDylibAddGenerator(jd, gen);
    LLVMJITSymbolFlags fl = {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    LLVMOrcCSymbolMapPair syms[3] = {
      {LLVMOrcLLJITMangleAndIntern(J, "vt_jit_host_par"), {(LLVMOrcExecutorAddress)(uintptr_t)&vt_jit_host_par, fl}},
      {LLVMOrcLLJITMangleAndIntern(J, "vt_jit_host_node"), {(LLVMOrcExecutorAddress)(uintptr_t)&vt_jit_host_node, fl}},
      {LLVMOrcLLJITMangleAndIntern(J, "vt_jit_host_prof"), {(LLVMOrcExecutorAddress)(uintptr_t)&vt_jit_host_prof, fl}}};
    err = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(syms, 3));
    if (err) { char *m = cg_llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT host symbols: %s", m); free(m); goto fail; }
    int next = 0;
    for (int i = 0; i < c.n_blobs; i++) next += cg_blob_extern(&c.blobs[i]) && c.blobs[i].owned;
    if (next) {   /* packed weights the code addresses directly: the JIT keeps them */
      j->keep = calloc((size_t)next, sizeof *j->keep);
      if (!j->keep) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto fail; }
      for (int i = 0; i < c.n_blobs; i++)
        if (cg_blob_extern(&c.blobs[i]) && c.blobs[i].owned) {
          j->keep[j->n_keep++] = c.blobs[i].owned;
          c.blobs[i].owned = NULL;
        }
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(c.mod, tsc);
    c.mod = NULL;
    err = LLVMOrcLLJITAddLLVMIRModule(J, jd, tsm);
    if (err) { LLVMOrcDisposeThreadSafeModule(tsm); char *m = cg_llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT add module: %s", m); free(m); goto fail; }
    LLVMOrcExecutorAddress addr = 0;
    double tl = cg_now_ms();
    err = LLVMOrcLLJITLookup(J, &addr, "vt_entry");
    if (getenv("VT_CG_TIMING")) fprintf(stderr, "codegen: machine code %.1f ms\n", cg_now_ms() - tl);
    if (err) { char *m = cg_llvm_err(err); vt_errorf(e, VT_ERR_INTERNAL, "JIT compile: %s", m); free(m); goto fail; }
    j->rt.entry = (vt_cg_entry_fn)(uintptr_t)addr;
    j->lljit = J;
    J = NULL;
  }
  LLVMOrcDisposeThreadSafeContext(tsc);
  tsc = NULL;
  j->st.compile_ms = cg_now_ms() - t0;
  j->st.compile_cpu_ms = (double)(clock() - cpu0) * 1e3 / CLOCKS_PER_SEC;
  if (opt->stats) cg_print_stats(&c, &j->st, opt->stats);
  free(off);
  cg_free(&c);
  return j;
fail:
  if (c.mod) LLVMDisposeModule(c.mod);
  if (J) LLVMOrcDisposeLLJIT(J);
  if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
  if (tm) LLVMDisposeTargetMachine(tm);
  free(off);
  cg_free(&c);
  vt_jit_free(j);
  return NULL;
}

/* ---------- running ------------------------------------------------------------------------ */
int vt_jit_run(vt_jit *j, const vt_tensor *inputs, vt_tensor *outputs, vt_error *e) {
  int rc = vt_cg_rt_run(&j->rt, inputs, outputs, false, e);
  j->st.last_run_ms = j->rt.last_run_ms;
  j->st.last_fallback_ms = j->rt.last_fallback_ms;
  j->st.last_host_direct = j->rt.last_direct;
  j->st.last_host_copied = j->rt.last_copied;
  return rc;
}

void vt_jit_reset(vt_jit *j) { vt_cg_rt_reset(&j->rt); }

void vt_jit_state_info(const vt_jit *j, size_t *bytes, int64_t *done, int64_t *seen) {
  *bytes = vt_cg_rt_state_bytes(&j->rt);
  vt_states_rows(j->rt.state, j->rt.g->n_nodes, done, seen);
}

int vt_jit_set_knob(vt_jit *j, const char *name, double value, vt_error *e) {
  return vt_cg_rt_set_knob(&j->rt, name, value, e);
}

void vt_jit_get_stats(const vt_jit *j, vt_jit_stats *st) { *st = j->st; }

void vt_jit_free(vt_jit *j) {
  if (!j) return;
  if (j->lljit) {
    LLVMErrorRef err = LLVMOrcDisposeLLJIT(j->lljit);
    if (err) LLVMConsumeError(err);
  }
  vt_cg_rt_fini(&j->rt);
  free(j->arena);
  for (int i = 0; i < j->n_keep; i++) free(j->keep[i]);
  free(j->keep);
  free(j);
}

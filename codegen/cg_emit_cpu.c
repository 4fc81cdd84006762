/* cg_emit_cpu.c — LLVM IR for the CPU: the kernels of every group (GEMM cores and epilogues,
 * elementwise loops, rows, transposes, conv, attention, block copies), the TokenGate loops, the
 * entry function that runs the groups in order, and the module's types, library functions and
 * constant blobs (cg_build_module). */
#include "cg_internal.h"

#include <math.h>

#include <llvm-c/DebugInfo.h>

/* ---------- LLVM emission ------------------------------------------------------------------ */
typedef struct { LLVMBasicBlockRef hdr, exit; LLVMValueRef iv; LLVMValueRef phi; } cg_loop;

static void loop_begin(cg *c, LLVMValueRef fn, LLVMValueRef lo, LLVMValueRef hi, cg_loop *l) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
  l->hdr = LLVMAppendBasicBlockInContext(c->ctx, fn, "hdr");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "body");
  l->exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "exit");
  LLVMBuildBr(c->b, l->hdr);
  LLVMPositionBuilderAtEnd(c->b, l->hdr);
  l->phi = LLVMBuildPhi(c->b, c->t_i64, "i");
  LLVMAddIncoming(l->phi, &lo, &pre, 1);
  LLVMValueRef cond = LLVMBuildICmp(c->b, LLVMIntSLT, l->phi, hi, "");
  LLVMBuildCondBr(c->b, cond, body, l->exit);
  LLVMPositionBuilderAtEnd(c->b, body);
  l->iv = l->phi;
}

/* Closes loop l; vec_width > 0 asks the loop vectorizer for that width (llvm.loop metadata on
 * the latch: a self-referential node, made through a temporary). */
static void loop_end_vw(cg *c, cg_loop *l, int vec_width) {
  LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->iv, LLVMConstInt(c->t_i64, 1, 0), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(l->phi, &next, &latch, 1);
  LLVMValueRef br = LLVMBuildBr(c->b, l->hdr);
  if (vec_width > 0) {
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    LLVMMetadataRef w[2] = {LLVMMDStringInContext2(c->ctx, "llvm.loop.vectorize.width", 25),
                            LLVMValueAsMetadata(LLVMConstInt(c->t_i32, (unsigned long long)vec_width, 0))};
    LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(c->ctx, w, 2)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, id);   /* also frees the temporary */
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9), LLVMMetadataAsValue(c->ctx, id));
  }
  LLVMPositionBuilderAtEnd(c->b, l->exit);
}

static void loop_end(cg *c, cg_loop *l) { loop_end_vw(c, l, 0); }

LLVMValueRef cg_ci64(cg *c, int64_t x) { return LLVMConstInt(c->t_i64, (unsigned long long)x, 1); }
static LLVMValueRef cf(cg *c, double x) { return LLVMConstReal(c->t_f32, x); }

static LLVMValueRef call1(cg *c, LLVMValueRef f, LLVMTypeRef ft, LLVMValueRef x) {
  return LLVMBuildCall2(c->b, ft, f, &x, 1, "");
}

static LLVMValueRef fsel(cg *c, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                         LLVMValueRef f) {
  return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, p, a, b, ""), t, f, "");
}

static LLVMValueRef emit_op(cg *c, const cg_step *s, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef b = c->b;
  switch (s->op) {
  case E_ADD: return LLVMBuildFAdd(b, x, y, "");
  case E_SUB: return LLVMBuildFSub(b, x, y, "");
  case E_MUL: return LLVMBuildFMul(b, x, y, "");
  case E_DIV:   /* by a constant: times its reciprocal (within 1 ulp of the quotient; a divide is
                 * ~10 cycles on the critical path of an epilogue such as GELU's x / sqrt(2)) */
    if (s->nargs == 2 && s->a[1].kind == A_CONSTF && s->a[1].c != 0.0f && isfinite(1.0 / (double)s->a[1].c) &&
        fabs(1.0 / (double)s->a[1].c) >= 1.17549435e-38)
      return LLVMBuildFMul(b, x, cf(c, 1.0 / (double)s->a[1].c), "");
    return LLVMBuildFDiv(b, x, y, "");
  case E_RELU: return fsel(c, LLVMRealOLT, x, cf(c, 0), cf(c, 0), x);
  case E_NEG: return LLVMBuildFNeg(b, x, "");
  case E_ABS: return call1(c, c->f_fabs, c->ft_f1, x);
  case E_SQRT: return call1(c, c->f_sqrt, c->ft_f1, x);
  case E_RECIP: return LLVMBuildFDiv(b, cf(c, 1), x, "");
  case E_EXP: return call1(c, c->f_exp, c->ft_f1, x);
  case E_ERF: return call1(c, c->f_erf, c->ft_f1, x);
  case E_LOG: return call1(c, c->f_log, c->ft_f1, x);
  case E_TANH: return call1(c, c->f_tanh, c->ft_f1, x);
  case E_SIGMOID: return call1(c, c->f_sigmoid, c->ft_f1, x);
  case E_SQUARE: return LLVMBuildFMul(b, x, x, "");
  case E_CUBE: return LLVMBuildFMul(b, LLVMBuildFMul(b, x, x, ""), x, "");
  case E_ID: return x;
  case E_LEAKY: return fsel(c, LLVMRealOLT, x, cf(c, 0), LLVMBuildFMul(b, x, cf(c, s->f0), ""), x);
  case E_CLIP: {
    LLVMValueRef lo = cf(c, s->f0), hi = cf(c, s->f1);
    LLVMValueRef r = fsel(c, LLVMRealOLT, x, lo, lo, x);
    return fsel(c, LLVMRealOGT, r, hi, hi, r);
  }
  case E_HSIG: {
    LLVMValueRef r = LLVMBuildFAdd(b, LLVMBuildFMul(b, x, cf(c, s->f0), ""), cf(c, s->f1), "");
    r = fsel(c, LLVMRealOLT, r, cf(c, 0), cf(c, 0), r);
    return fsel(c, LLVMRealOGT, r, cf(c, 1), cf(c, 1), r);
  }
  case E_HSWISH: {
    LLVMValueRef r = LLVMBuildFAdd(b, LLVMBuildFMul(b, x, cf(c, 1.0 / 6.0), ""), cf(c, 0.5), "");
    r = fsel(c, LLVMRealOLT, r, cf(c, 0), cf(c, 0), r);
    r = fsel(c, LLVMRealOGT, r, cf(c, 1), cf(c, 1), r);
    return LLVMBuildFMul(b, x, r, "");
  }
  case E_GELU: {
    LLVMValueRef e = call1(c, c->f_erf, c->ft_f1, LLVMBuildFMul(b, x, cf(c, 0.70710678118654752), ""));
    return LLVMBuildFMul(b, LLVMBuildFMul(b, x, cf(c, 0.5), ""), LLVMBuildFAdd(b, e, cf(c, 1), ""), "");
  }
  case E_GELU_TANH: {
    LLVMValueRef x3 = LLVMBuildFMul(b, LLVMBuildFMul(b, x, x, ""), x, "");
    LLVMValueRef in = LLVMBuildFMul(b, LLVMBuildFAdd(b, x, LLVMBuildFMul(b, x3, cf(c, 0.044715), ""), ""),
                                    cf(c, 0.79788456080286536), "");
    LLVMValueRef t = call1(c, c->f_tanh, c->ft_f1, in);
    return LLVMBuildFMul(b, LLVMBuildFMul(b, x, cf(c, 0.5), ""), LLVMBuildFAdd(b, t, cf(c, 1), ""), "");
  }
  }
  return x;
}

/* Slot of value v read as blob b (-1: through its buffer). */
static int slot_of2(const cg_group *G, int32_t v, int32_t b) {
  for (int i = 0; i < G->n_slots; i++)
    if (G->slots[i] == v && G->slot_blob[i] == b) return i;
  return -1;
}

/* Collects the values a group body reads or writes through pointers (GEMM's C is passed
 * separately, not as a slot). GEMM epilogues take their constant operands (bias...) as slots too,
 * so the epilogue code depends only on the group's structure and is shared by identical layers. */
static int collect_slots(cg *c, cg_group *G) {
  G->slots = malloc(((size_t)G->n_steps * 3 + 3) * sizeof *G->slots);
  G->slot_blob = malloc(((size_t)G->n_steps * 3 + 3) * sizeof *G->slot_blob);
  if (!G->slots || !G->slot_blob) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  G->n_slots = 0;
  for (int s = 0; s < G->n_steps; s++) {
    cg_step *st = &G->steps[s];
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *a = &st->a[k];
      if (a->kind != A_VAL || (a->blob >= 0 && G->kind != G_GEMM)) continue;
      if (slot_of2(G, a->idx, a->blob) < 0) {
        G->slots[G->n_slots] = a->idx;
        G->slot_blob[G->n_slots++] = a->blob;
      }
    }
    if (st->store && !(G->kind == G_GEMM && st->out == G->out) && slot_of2(G, st->out, -1) < 0) {
      G->slots[G->n_slots] = st->out;
      G->slot_blob[G->n_slots++] = -1;
    }
  }
  if (G->sc_val >= 0) {   /* scatter epilogue: the persistent output and idx (int64) */
    G->slots[G->n_slots] = G->sc_out;
    G->slot_blob[G->n_slots++] = -1;
    G->slots[G->n_slots] = G->sc_idx;
    G->slot_blob[G->n_slots++] = -1;
  }
  return VT_OK;
}

/* The element computation of a group: prim = GEMM accumulator (or NULL), col / flat indices,
 * ptrs = slot pointers, cptr = address of this element in GEMM's C (stores of G->out go there). */
static void emit_elem(cg *c, const cg_group *G, LLVMValueRef prim, LLVMValueRef row, LLVMValueRef col,
                      LLVMValueRef flat,
                      LLVMValueRef *ptrs, LLVMValueRef cptr, LLVMValueRef *res) {
  for (int s = 0; s < G->n_steps; s++) {
    const cg_step *st = &G->steps[s];
    LLVMValueRef a[2] = {NULL, NULL};
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *ar = &st->a[k];
      switch (ar->kind) {
      case A_STEP: a[k] = res[ar->idx]; break;
      case A_PRIMARY: a[k] = prim; break;
      case A_CONSTF: a[k] = cf(c, ar->c); break;
      case A_VAL: {
        LLVMValueRef base = ar->blob >= 0 && G->kind != G_GEMM ? c->blob_globals[ar->blob]
                            : ptrs[slot_of2(G, ar->idx, G->kind == G_GEMM ? ar->blob : -1)];
        LLVMValueRef idx = ar->bc == BC_FULL ? flat : ar->bc == BC_LAST ? col : ar->bc == BC_ROW ? row : cg_ci64(c, 0);
        if (ar->bc == BC_TAIL)
          idx = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, LLVMBuildURem(c->b, row, cg_ci64(c, ar->period), ""),
                                                      cg_ci64(c, G->cols), ""), col, "");
        if (ar->bc == BC_STRIDED) {
          idx = LLVMBuildNSWMul(c->b, col, cg_ci64(c, ar->st[G->rank - 1]), "");
          int64_t inner = 1;
          for (int32_t d = G->rank - 2; d >= 0; d--) {
            if (ar->st[d]) {
              LLVMValueRef q = inner > 1 ? LLVMBuildUDiv(c->b, row, cg_ci64(c, inner), "") : row;
              q = LLVMBuildURem(c->b, q, cg_ci64(c, G->dims[d]), "");
              idx = LLVMBuildNSWAdd(c->b, idx, LLVMBuildNSWMul(c->b, q, cg_ci64(c, ar->st[d]), ""), "");
            }
            inner *= G->dims[d];
          }
        }
        LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, base, &idx, 1, "");
        a[k] = LLVMBuildLoad2(c->b, c->t_f32, p, "");
        break;
      }
      }
    }
    res[s] = emit_op(c, st, a[0], a[1]);
    if (G->sc_val >= 0 && st->out == G->sc_val) {   /* scatter: row `row` of y goes to row idx[row] of out */
      LLVMValueRef ip = LLVMBuildInBoundsGEP2(c->b, c->t_i64, ptrs[slot_of2(G, G->sc_idx, -1)], &row, 1, "");
      LLVMValueRef tok = LLVMBuildLoad2(c->b, c->t_i64, ip, "tok");
      LLVMValueRef at = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, tok, cg_ci64(c, G->cols), ""), col, "");
      LLVMBuildStore(c->b, res[s], LLVMBuildInBoundsGEP2(c->b, c->t_f32, ptrs[slot_of2(G, G->sc_out, -1)], &at, 1, ""));
    } else if (st->store) {
      LLVMValueRef p;
      if (G->kind == G_GEMM && st->out == G->out) p = cptr;
      else p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, ptrs[slot_of2(G, st->out, -1)], &flat, 1, "");
      LLVMBuildStore(c->b, res[s], p);
    }
  }
}

static LLVMValueRef load_buf(cg *c, LLVMValueRef bufs, int32_t v) {
  LLVMValueRef idx = cg_ci64(c, v);
  LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->t_ptr, bufs, &idx, 1, "");
  return LLVMBuildLoad2(c->b, c->t_ptr, p, "");
}

/* Dim d of the original graph at run time: constants fold; named symbols are read from the dims
 * table (bufs[n_values][symbol], filled by the node that defines them); expressions are built. */
static LLVMValueRef emit_dim(cg *c, LLVMValueRef tbl, vt_dim d) {
  if (vt_dim_is_const(d)) return cg_ci64(c, d);
  const vt_sym *s = &c->orig->syms[vt_dim_sym(d)];
  if (s->kind == VT_SYM_NAMED) {
    LLVMValueRef ix = cg_ci64(c, vt_dim_sym(d));
    return LLVMBuildLoad2(c->b, c->t_i64, LLVMBuildInBoundsGEP2(c->b, c->t_i64, tbl, &ix, 1, ""), "");
  }
  LLVMValueRef a = emit_dim(c, tbl, s->a), b = emit_dim(c, tbl, s->b);
  switch (s->kind) {
  case VT_SYM_ADD: return LLVMBuildAdd(c->b, a, b, "");
  case VT_SYM_SUB: return LLVMBuildSub(c->b, a, b, "");
  case VT_SYM_MUL: return LLVMBuildMul(c->b, a, b, "");
  case VT_SYM_DIV: return LLVMBuildSDiv(c->b, a, b, "");   /* dims are >= 0: floor */
  case VT_SYM_CEILDIV: return LLVMBuildSDiv(c->b, LLVMBuildSub(c->b, LLVMBuildAdd(c->b, a, b, ""), cg_ci64(c, 1), ""), b, "");
  case VT_SYM_MOD: return LLVMBuildSRem(c->b, a, b, "");
  case VT_SYM_MAX: return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b, "");
  default: return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");   /* MIN */
  }
}

/* Element count of value v at run time (its dims in the original graph). */
static LLVMValueRef emit_numel(cg *c, LLVMValueRef bufs, int32_t v) {
  const vt_value *val = &c->orig->values[v];
  LLVMValueRef tbl = load_buf(c, bufs, c->g->n_values), n = cg_ci64(c, 1);
  for (int32_t d = 0; d < val->rank; d++) n = LLVMBuildMul(c->b, n, emit_dim(c, tbl, val->dims[d]), "");
  return n;
}

/* Run-time row count of a group with run-time dims: elements of dref / the constant width. */
static LLVMValueRef emit_rows(cg *c, LLVMValueRef bufs, const cg_group *G, int64_t width) {
  return LLVMBuildSDiv(c->b, emit_numel(c, bufs, G->dref), cg_ci64(c, width ? width : 1), "rows");
}

static void add_fn_attr(cg *c, LLVMValueRef f, const char *name) {
  unsigned k = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, k, 0));
}

static void add_noalias_params(cg *c, LLVMValueRef f, int first, int n) {
  unsigned k = LLVMGetEnumAttributeKindForName("noalias", 7);
  for (int i = first; i < first + n; i++)
    LLVMAddAttributeAtIndex(f, (unsigned)i + 1, LLVMCreateEnumAttribute(c->ctx, k, 0));
}

/* body(ptr noalias slot..., [ptr noalias C, i64 ldc, i64 m0, i64 n0, i64 mr, i64 nr] | [i64 r0, i64 r1]) */
static LLVMValueRef emit_body(cg *c, cg_group *G, int gi) {
  bool gemm = G->kind == G_GEMM;
  int np = G->n_slots + (gemm ? 6 : 2);
  LLVMTypeRef *pt = malloc((size_t)np * sizeof *pt);
  LLVMValueRef *ptrs = malloc(((size_t)G->n_slots + 1) * sizeof *ptrs);
  LLVMValueRef *res = malloc(((size_t)G->n_steps + 1) * sizeof *res);
  if (!pt || !ptrs || !res) { free(pt); free(ptrs); free(res); return NULL; }
  for (int i = 0; i < G->n_slots; i++) pt[i] = c->t_ptr;
  if (gemm) {
    pt[G->n_slots] = c->t_ptr;
    for (int i = 1; i < 6; i++) pt[G->n_slots + i] = c->t_i64;
  } else {
    pt[G->n_slots] = pt[G->n_slots + 1] = c->t_i64;
  }
  LLVMTypeRef ft = LLVMFunctionType(c->t_void, pt, (unsigned)np, 0);
  char name[64];
  snprintf(name, sizeof name, "vt_body_%d", gi);
  LLVMValueRef f = LLVMAddFunction(c->mod, name, ft);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_fn_attr(c, f, "alwaysinline");
  add_fn_attr(c, f, "nounwind");
  add_noalias_params(c, f, 0, G->n_slots + (gemm ? 1 : 0));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, f, "entry");
  LLVMPositionBuilderAtEnd(c->b, entry);
  for (int i = 0; i < G->n_slots; i++) ptrs[i] = LLVMGetParam(f, (unsigned)i);
  if (gemm) {
    LLVMValueRef C = LLVMGetParam(f, (unsigned)G->n_slots), ldc = LLVMGetParam(f, (unsigned)G->n_slots + 1);
    LLVMValueRef m0 = LLVMGetParam(f, (unsigned)G->n_slots + 2), n0 = LLVMGetParam(f, (unsigned)G->n_slots + 3);
    LLVMValueRef mr = LLVMGetParam(f, (unsigned)G->n_slots + 4), nr = LLVMGetParam(f, (unsigned)G->n_slots + 5);
    /* full tiles (nr == NR, the common case) get a constant inner trip count so the
     * vectorizer covers the whole row; edge tiles take the generic loop */
    LLVMBasicBlockRef full = LLVMAppendBasicBlockInContext(c->ctx, f, "full");
    LLVMBasicBlockRef edge = LLVMAppendBasicBlockInContext(c->ctx, f, "edge");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, f, "done");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, nr, cg_ci64(c, c->tgt.isa->nr), ""), full, edge);
    for (int pass = 0; pass < 2; pass++) {
      LLVMPositionBuilderAtEnd(c->b, pass ? edge : full);
      cg_loop li, lj;
      loop_begin(c, f, cg_ci64(c, 0), mr, &li);
      LLVMValueRef row = LLVMBuildNSWAdd(c->b, m0, li.iv, "");
      LLVMValueRef crow = LLVMBuildNSWMul(c->b, li.iv, ldc, "");
      LLVMValueRef frow = LLVMBuildNSWMul(c->b, row, cg_ci64(c, G->N), "");
      loop_begin(c, f, cg_ci64(c, 0), pass ? nr : cg_ci64(c, c->tgt.isa->nr), &lj);
      LLVMValueRef col = LLVMBuildNSWAdd(c->b, n0, lj.iv, "");
      LLVMValueRef flat = LLVMBuildNSWAdd(c->b, frow, col, "");
      LLVMValueRef cidx = LLVMBuildNSWAdd(c->b, crow, lj.iv, "");
      LLVMValueRef cptr = LLVMBuildInBoundsGEP2(c->b, c->t_f32, C, &cidx, 1, "");
      LLVMValueRef prim = LLVMBuildLoad2(c->b, c->t_f32, cptr, "");
      emit_elem(c, G, prim, row, col, flat, ptrs, cptr, res);
      loop_end_vw(c, &lj, pass ? 0 : c->tgt.isa->nr);
      loop_end(c, &li);
      LLVMBuildBr(c->b, done);
    }
    LLVMPositionBuilderAtEnd(c->b, done);
  } else {
    LLVMValueRef r0 = LLVMGetParam(f, (unsigned)G->n_slots), r1 = LLVMGetParam(f, (unsigned)G->n_slots + 1);
    cg_loop li, lj;
    loop_begin(c, f, r0, r1, &li);
    LLVMValueRef frow = LLVMBuildNSWMul(c->b, li.iv, cg_ci64(c, G->cols), "");
    loop_begin(c, f, cg_ci64(c, 0), cg_ci64(c, G->cols), &lj);
    LLVMValueRef flat = LLVMBuildNSWAdd(c->b, frow, lj.iv, "");
    emit_elem(c, G, NULL, li.iv, lj.iv, flat, ptrs, NULL, res);
    loop_end(c, &lj);
    loop_end(c, &li);
  }
  LLVMBuildRetVoid(c->b);
  free(pt);
  free(ptrs);
  free(res);
  return f;
}

/* The GEMM core for G's shape: void core(ptr A, ptr Bp, ptr C, i64 u0, i64 u1, ptr bufs,
 * ptr epi, ptr ln_scale, ptr ln_bias, ptr ridx [, i64 M]) over work units [u0, u1) (cg_layout.h), the bitcode driver inlined with constant M, N, K (noinline itself, so kernels of one
 * shape share its code; the epilogue is an indirect call per tile). */
static LLVMValueRef gemm_core(cg *c, const cg_group *G) {
  bool dyn = G->dref >= 0;   /* M at run time: the core takes it as a 10th argument */
  int64_t cm = dyn ? -1 : G->M;
  int ln = G->ln ? 1 + (G->bblob >= 0) : 0;   /* 0 none, 1 LayerNorm without bias, 2 with */
  int gather = G->gidx >= 0;   /* ridx read (else a constant NULL: the driver's gather code folds away) */
  float eps = G->ln ? G->eps : 0.0f;
  for (int i = 0; i < c->n_cores; i++)
    if (c->cores[i].M == cm && c->cores[i].N == G->N && c->cores[i].K == G->K && c->cores[i].ln == ln &&
        c->cores[i].gather == gather && c->cores[i].eps == eps)
      return c->cores[i].fn;
  void *nc = realloc(c->cores, ((size_t)c->n_cores + 1) * sizeof *c->cores);
  if (!nc) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
  c->cores = nc;
  char name[96];
  if (dyn) snprintf(name, sizeof name, "vt_gemm_Mx%lldx%lld%s%s", (long long)G->N, (long long)G->K, ln ? "_ln" : "",
                    gather ? "_gather" : "");
  else snprintf(name, sizeof name, "vt_gemm_%lldx%lldx%lld%s%s", (long long)G->M, (long long)G->N, (long long)G->K,
                ln ? "_ln" : "", gather ? "_gather" : "");
  LLVMValueRef f = LLVMAddFunction(c->mod, name, dyn ? c->ft_core_dyn : c->ft_core);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_fn_attr(c, f, "noinline");
  add_fn_attr(c, f, "nounwind");
  add_noalias_params(c, f, 2, 1);
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef ga[18] = {LLVMGetParam(f, 0), cg_ci64(c, G->K), LLVMGetParam(f, 1), LLVMGetParam(f, 2),
                         cg_ci64(c, G->N), dyn ? LLVMGetParam(f, 10) : cg_ci64(c, G->M), cg_ci64(c, G->N), cg_ci64(c, G->K),
                         LLVMGetParam(f, 3), LLVMGetParam(f, 4), LLVMGetParam(f, 5), LLVMGetParam(f, 6),
                         LLVMConstInt(c->t_i32, (unsigned long long)(ln != 0), 0), ln ? LLVMGetParam(f, 7) : nul,
                         ln == 2 ? LLVMGetParam(f, 8) : nul, cf(c, eps), gather ? LLVMGetParam(f, 9) : nul,
                         cg_ci64(c, c->tgt.kc)};
  LLVMBuildCall2(c->b, c->ft_gemm, c->f_gemm, ga, 18, "");
  LLVMBuildRetVoid(c->b);
  if (saved) LLVMPositionBuilderAtEnd(c->b, saved);
  c->cores[c->n_cores].M = cm;
  c->cores[c->n_cores].N = G->N;
  c->cores[c->n_cores].K = G->K;
  c->cores[c->n_cores].ln = ln;
  c->cores[c->n_cores].gather = gather;
  c->cores[c->n_cores].eps = eps;
  c->cores[c->n_cores++].fn = f;
  return f;
}

/* Emits the kernel function of group gi: void k(ptr bufs, i64 begin, i64 end). */
static void kput(unsigned char *key, size_t cap, size_t *n, const void *p, size_t sz) {
  if (sz <= cap && *n <= cap - sz) memcpy(key + *n, p, sz);
  *n += sz;
}

/* The structure of a GEMM epilogue (everything its code depends on): equal keys, equal code.
 * Returns the key's length (more than cap: too long to cache). */
static size_t epi_key(const cg_group *G, unsigned char *key, size_t cap) {
  size_t n = 0;
#define PUT(x) kput(key, cap, &n, &(x), sizeof(x))
  PUT(G->N);
  PUT(G->n_slots);
  PUT(G->n_steps);
  for (int s = 0; s < G->n_steps; s++) {
    const cg_step *st = &G->steps[s];
    int32_t outslot = G->sc_val >= 0 && st->out == G->sc_val ? -4   /* scattered (slots at the end) */
                      : st->store ? (st->out == G->out ? -2 : slot_of2(G, st->out, -1)) : -3;
    PUT(st->op); PUT(st->nargs); PUT(st->f0); PUT(st->f1); PUT(outslot);
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *a = &st->a[k];
      int32_t where = a->kind == A_VAL ? slot_of2(G, a->idx, a->blob) : a->kind == A_STEP ? a->idx : 0;
      float cv = a->kind == A_CONSTF ? a->c : 0.0f;
      int32_t bc = a->kind == A_VAL ? a->bc : 0;
      int64_t period = a->kind == A_VAL ? a->period : 0;
      PUT(a->kind); PUT(bc); PUT(where); PUT(cv); PUT(period);
      if (bc == BC_STRIDED)
        for (int32_t d = 0; d < G->rank; d++) { PUT(a->st[d]); PUT(G->dims[d]); }
    }
  }
#undef PUT
  return n;
}

/* Starts group gi's kernel function `void vt_kernel_<gi>(ptr bufs, i64 lo, i64 hi)` (internal,
 * noinline, nounwind) and positions the builder at its entry block. */
static LLVMValueRef begin_kernel(cg *c, int gi) {
  char name[64];
  snprintf(name, sizeof name, "vt_kernel_%d", gi);
  LLVMValueRef k = LLVMAddFunction(c->mod, name, c->ft_kern);
  LLVMSetLinkage(k, LLVMInternalLinkage);
  add_fn_attr(c, k, "noinline");
  add_fn_attr(c, k, "nounwind");
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, k, "entry"));
  return k;
}

/* Emits the kernel function of group gi: void k(ptr bufs, i64 begin, i64 end). */
static LLVMValueRef emit_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  if (collect_slots(c, G)) return NULL;
  char name[64];
  LLVMValueRef *args = malloc(((size_t)G->n_slots + 8) * sizeof *args);
  if (!args) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
  LLVMValueRef epi = NULL, body = NULL;
  LLVMTypeRef bt = NULL;
  if (G->kind == G_GEMM && G->n_steps) {
    /* epi(ptr tbl, C, ldc, m0, n0, mr, nr): tbl = the group's slot pointers (built by the kernel) */
    unsigned char kb[4096];
    size_t kn = epi_key(G, kb, sizeof kb);
    for (int i = 0; i < c->n_epis && !epi && kn <= sizeof kb; i++)
      if (c->epis[i].n == kn && !memcmp(c->epis[i].key, kb, kn)) epi = c->epis[i].fn;
    if (!epi) {
      body = emit_body(c, G, gi);
      if (!body) { free(args); vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
      bt = LLVMGlobalGetValueType(body);
      snprintf(name, sizeof name, "vt_epi_%d", gi);
      epi = LLVMAddFunction(c->mod, name, c->ft_epi);
      LLVMSetLinkage(epi, LLVMInternalLinkage);
      add_fn_attr(c, epi, "nounwind");
      LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, epi, "entry"));
      LLVMValueRef tbl = LLVMGetParam(epi, 0);
      for (int i = 0; i < G->n_slots; i++) {
        LLVMValueRef ix = cg_ci64(c, i);
        args[i] = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildInBoundsGEP2(c->b, c->t_ptr, tbl, &ix, 1, ""), "");
      }
      for (int i = 1; i < 7; i++) args[G->n_slots + i - 1] = LLVMGetParam(epi, (unsigned)i);
      LLVMBuildCall2(c->b, bt, body, args, (unsigned)G->n_slots + 6, "");
      LLVMBuildRetVoid(c->b);
      void *ne = kn <= sizeof kb ? realloc(c->epis, ((size_t)c->n_epis + 1) * sizeof *c->epis) : NULL;
      unsigned char *kc = ne ? malloc(kn) : NULL;
      if (ne) c->epis = ne;
      if (kc) {
        memcpy(kc, kb, kn);
        c->epis[c->n_epis].key = kc;
        c->epis[c->n_epis].n = kn;
        c->epis[c->n_epis++].fn = epi;
      }
    }
  } else if (G->n_steps) {
    body = emit_body(c, G, gi);
    if (!body) { free(args); vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
    bt = LLVMGlobalGetValueType(body);
  }
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0), b0 = LLVMGetParam(k, 1), b1 = LLVMGetParam(k, 2);
  if (G->kind == G_GEMM) {
    LLVMValueRef core = gemm_core(c, G);
    if (!core) { free(args); return NULL; }
    LLVMPositionBuilderAtEnd(c->b, LLVMGetLastBasicBlock(k));
    LLVMValueRef tbl = LLVMConstPointerNull(c->t_ptr);
    if (epi && G->n_slots) {   /* the epilogue's pointer table */
      tbl = LLVMBuildArrayAlloca(c->b, c->t_ptr, cg_ci64(c, G->n_slots), "tbl");
      for (int i = 0; i < G->n_slots; i++) {
        LLVMValueRef ix = cg_ci64(c, i);
        LLVMValueRef pv = G->slot_blob[i] >= 0 ? c->blob_globals[G->slot_blob[i]] : load_buf(c, bufs, G->slots[i]);
        LLVMBuildStore(c->b, pv, LLVMBuildInBoundsGEP2(c->b, c->t_ptr, tbl, &ix, 1, ""));
      }
    }
    LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
    LLVMValueRef ga[11] = {load_buf(c, bufs, G->src), c->blob_globals[G->wblob], load_buf(c, bufs, G->out),
                           b0, b1, tbl, epi ? epi : nul, G->ln ? c->blob_globals[G->gblob] : nul,
                           G->ln && G->bblob >= 0 ? c->blob_globals[G->bblob] : nul,
                           G->gidx >= 0 ? load_buf(c, bufs, G->gidx) : nul, NULL};
    if (G->dref >= 0) ga[10] = emit_rows(c, bufs, G, G->N);
    LLVMBuildCall2(c->b, G->dref >= 0 ? c->ft_core_dyn : c->ft_core, core, ga, G->dref >= 0 ? 11 : 10, "");
  } else {
    for (int i = 0; i < G->n_slots; i++) args[i] = load_buf(c, bufs, G->slots[i]);
    args[G->n_slots] = b0;
    args[G->n_slots + 1] = b1;
    LLVMBuildCall2(c->b, bt, body, args, (unsigned)G->n_slots + 2, "");
  }
  LLVMBuildRetVoid(c->b);
  free(args);
  return k;
}

/* void k(ptr bufs, i64 r0, i64 r1) for a ROW group. */
static LLVMValueRef emit_row_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  char name[64];
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0), r0 = LLVMGetParam(k, 1), r1 = LLVMGetParam(k, 2);
  LLVMValueRef x = load_buf(c, bufs, G->src), y = load_buf(c, bufs, G->out);
  int has_b = G->bblob >= 0;
  LLVMValueRef core = NULL;
  for (int i = 0; i < c->n_row_cores && !core; i++)
    if (c->row_cores[i].op == G->row_op && c->row_cores[i].cols == G->cols && c->row_cores[i].has_b == has_b)
      core = c->row_cores[i].fn;
  if (!core) {   /* the bitcode row kernel with constant cols, shared by nodes of one shape */
    void *nc = realloc(c->row_cores, ((size_t)c->n_row_cores + 1) * sizeof *c->row_cores);
    if (!nc) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
    c->row_cores = nc;
    static const char *const row_names[] = {"softmax", "layernorm", "mean", "sum", "max", "min"};
    snprintf(name, sizeof name, "vt_row_%s_%lld%s", row_names[G->row_op], (long long)G->cols, has_b ? "_b" : "");
    core = LLVMAddFunction(c->mod, name, c->ft_row_core);
    LLVMSetLinkage(core, LLVMInternalLinkage);
    add_fn_attr(c, core, "noinline");
    add_fn_attr(c, core, "nounwind");
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, core, "entry"));
    LLVMValueRef P[7];
    for (int i = 0; i < 7; i++) P[i] = LLVMGetParam(core, (unsigned)i);
    if (G->row_op == ROW_SOFTMAX) {
      LLVMValueRef a[5] = {P[0], P[3], cg_ci64(c, G->cols), P[5], P[6]};
      LLVMBuildCall2(c->b, c->ft_softmax, c->f_softmax, a, 5, "");
    } else if (G->row_op >= ROW_MEAN) {
      LLVMValueRef a[6] = {P[0], P[3], cg_ci64(c, G->cols), LLVMConstInt(c->t_i32, (unsigned long long)(G->row_op - ROW_MEAN), 0),
                           P[5], P[6]};
      LLVMBuildCall2(c->b, c->ft_reduce, c->f_reduce, a, 6, "");
    } else {
      LLVMValueRef a[9] = {P[0], P[1], P[2], LLVMConstInt(c->t_i32, (unsigned long long)has_b, 0), P[3],
                           cg_ci64(c, G->cols), P[4], P[5], P[6]};
      LLVMBuildCall2(c->b, c->ft_ln, c->f_ln, a, 9, "");
    }
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, saved);
    c->row_cores[c->n_row_cores].op = G->row_op;
    c->row_cores[c->n_row_cores].cols = G->cols;
    c->row_cores[c->n_row_cores].has_b = has_b;
    c->row_cores[c->n_row_cores++].fn = core;
  }
  LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef a[7] = {x, G->gblob >= 0 ? c->blob_globals[G->gblob] : nul, has_b ? c->blob_globals[G->bblob] : nul,
                       y, cf(c, G->eps), r0, r1};
  LLVMBuildCall2(c->b, c->ft_row_core, core, a, 7, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* void k(ptr bufs, i64 r0, i64 r1) for a PERM group. */
static LLVMValueRef emit_perm_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef a[8] = {load_buf(c, bufs, G->src), load_buf(c, bufs, G->out), cg_ci64(c, G->esize),
                       LLVMConstInt(c->t_i32, (unsigned long long)G->rank, 0), c->blob_globals[G->gblob],
                       c->blob_globals[G->bblob], LLVMGetParam(k, 1), LLVMGetParam(k, 2)};
  LLVMBuildCall2(c->b, c->ft_perm, c->f_perm, a, 8, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* void k(ptr bufs, i64 u0, i64 u1) for a conv-family group (direct, 1x1, transposed, pool, resize,
 * middle-axis reduce): one call of
 * its cg_kernels_conv.c kernel with every size constant. */
static LLVMValueRef emit_conv_family_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef x = load_buf(c, bufs, G->src), y = load_buf(c, bufs, G->out);
  LLVMValueRef w = G->wblob >= 0 ? c->blob_globals[G->wblob] : nul, bias = G->gblob >= 0 ? c->blob_globals[G->gblob] : nul;
  LLVMValueRef act = LLVMConstInt(c->t_i32, (unsigned long long)G->conv_act, 0);
  LLVMValueRef fa = LLVMConstReal(c->t_f32, G->conv_a), fb = LLVMConstReal(c->t_f32, G->conv_b);
  const int64_t *cv = G->conv;   /* C, H, W, OH, OW, kh, kw, sh, sw, dh, dw, ph, pw, (unit | end pads) */
  LLVMValueRef a[24], fn;
  int na = 0;
  if (G->conv_kind == CONV_DIRECT || G->conv_kind == CONV_TRANSPOSE) {
    fn = G->conv_kind == CONV_DIRECT ? c->f_conv_direct : c->f_conv_transpose;
    LLVMValueRef h[4] = {x, w, bias, y};
    int64_t d[15] = {cv[0], cv[1], cv[2], G->N, cv[3], cv[4], G->conv_groups, cv[5], cv[6], cv[7], cv[8], cv[9], cv[10], cv[11], cv[12]};
    for (int i = 0; i < 4; i++) a[na++] = h[i];
    for (int i = 0; i < 15; i++) a[na++] = cg_ci64(c, d[i]);
    a[na++] = act; a[na++] = fa; a[na++] = fb;
  } else if (G->conv_kind == CONV_1X1) {
    fn = c->f_conv1x1;
    LLVMValueRef h[6] = {x, w, bias, G->conv_scale >= 0 ? load_buf(c, bufs, G->conv_scale) : nul,
                         G->conv_res >= 0 ? load_buf(c, bufs, G->conv_res) : nul, y};
    for (int i = 0; i < 6; i++) a[na++] = h[i];
    int64_t d[4] = {cv[0], cv[3] * cv[4], G->N, cv[13]};
    for (int i = 0; i < 4; i++) a[na++] = cg_ci64(c, d[i]);
    a[na++] = act; a[na++] = fa; a[na++] = fb;
  } else if (G->conv_kind == CONV_RESIZE) {
    fn = c->f_resize;
    a[na++] = x;
    a[na++] = y;
    for (int i = 1; i < 5; i++) a[na++] = cg_ci64(c, cv[i]);
    a[na++] = c->blob_globals[G->gblob];
    a[na++] = w;
  } else if (G->conv_kind == CONV_REDUCE_MID) {
    fn = c->f_reduce_mid;
    a[na++] = x;
    a[na++] = y;
    a[na++] = cg_ci64(c, cv[0]);
    a[na++] = cg_ci64(c, cv[1]);
    a[na++] = LLVMConstInt(c->t_i32, (unsigned long long)G->pool_kind, 0);
  } else {
    fn = c->f_pool;
    a[na++] = x;
    a[na++] = y;
    int64_t d[14] = {cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7], cv[8], cv[9], cv[10], cv[11], cv[12],
                     cv[13] >> 32, cv[13] & 0xffffffff};
    for (int i = 0; i < 14; i++) a[na++] = cg_ci64(c, d[i]);
    a[na++] = LLVMConstInt(c->t_i32, (unsigned long long)G->pool_kind, 0);
  }
  a[na++] = LLVMGetParam(k, 1);
  a[na++] = LLVMGetParam(k, 2);
  LLVMBuildCall2(c->b, LLVMGlobalGetValueType(fn), fn, a, (unsigned)na, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* void k(ptr bufs, i64 u0, i64 u1) for a CONV group (the bitcode kernel inlined with constants). */
static LLVMValueRef emit_conv_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  if (G->conv_kind != CONV_IM2COL) return emit_conv_family_kernel(c, gi);
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef a[22] = {load_buf(c, bufs, G->src), c->blob_globals[G->wblob],
                        G->gblob >= 0 ? c->blob_globals[G->gblob] : LLVMConstPointerNull(c->t_ptr),
                        load_buf(c, bufs, G->out), cg_ci64(c, G->M)};
  for (int i = 0; i < 13; i++) a[5 + i] = cg_ci64(c, G->conv[i]);
  a[18] = cg_ci64(c, G->N);
  a[19] = cg_ci64(c, G->conv[13]);
  a[20] = LLVMGetParam(k, 1);
  a[21] = LLVMGetParam(k, 2);
  LLVMBuildCall2(c->b, c->ft_conv, c->f_conv, a, 22, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* Pointer to input k of an ATTN group: its constant global, its buffer, or null when absent. */
static LLVMValueRef attn_in(cg *c, const cg_group *G, LLVMValueRef bufs, int k) {
  if (G->att_v[k] < 0) return LLVMConstPointerNull(c->t_ptr);
  if (G->att_blob[k] >= 0) return c->blob_globals[G->att_blob[k]];
  LLVMValueRef p = load_buf(c, bufs, G->att_v[k]);
  if (k < 3 && G->att_off[k]) {
    LLVMValueRef o = cg_ci64(c, G->att_off[k]);
    p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, p, &o, 1, "");
  }
  return p;
}

/* void k(ptr bufs, i64 u0, i64 u1) for an ATTN group; its core (the bitcode kernel inlined with
 * every size constant) is shared by the nodes of one shape. */
static LLVMValueRef emit_attn_kernel(cg *c, int gi) {
  cg_group *G = &c->groups[gi];
  const int64_t *mstr = c->blobs[G->gblob].data;
  struct attn_key key;
  memset(&key, 0, sizeof key);
  int64_t d[9 + ATT_NSTR] = {G->aH, G->aHkv, G->aNq, G->aNk, G->aDh, G->aDv, G->kb_b, G->kb_h, G->aKw};
  memcpy(d + 9, mstr, ATT_NSTR * sizeof *mstr);
  memcpy(key.d, d, sizeof d);
  key.scale = G->scale;
  key.flags = G->causal | (G->att_v[3] >= 0) << 1 | (G->att_v[4] >= 0) << 2 | (G->att_v[5] >= 0) << 3 |
              (G->att_v[6] >= 0) << 4;
  LLVMValueRef core = NULL;
  for (int i = 0; i < c->n_attn_cores && !core; i++)
    if (!memcmp(&c->attn_keys[i], &key, sizeof key)) core = c->attn_cores[i];
  char name[96];
  if (!core) {
    struct attn_key *nk = realloc(c->attn_keys, ((size_t)c->n_attn_cores + 1) * sizeof *nk);
    if (nk) c->attn_keys = nk;
    LLVMValueRef *ncf = nk ? realloc(c->attn_cores, ((size_t)c->n_attn_cores + 1) * sizeof *ncf) : NULL;
    if (!ncf) { vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); return NULL; }
    c->attn_cores = ncf;
    snprintf(name, sizeof name, "vt_attn_%lldx%lldx%lldx%lld_%d", (long long)G->aH, (long long)G->aNq,
             (long long)G->aNk, (long long)G->aDh, c->n_attn_cores);
    core = LLVMAddFunction(c->mod, name, c->ft_attn_core);
    LLVMSetLinkage(core, LLVMInternalLinkage);
    add_fn_attr(c, core, "noinline");
    add_fn_attr(c, core, "nounwind");
    add_noalias_params(c, core, 3, 1);
    LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, core, "entry"));
    LLVMValueRef P[11];
    for (int i = 0; i < 11; i++) P[i] = LLVMGetParam(core, (unsigned)i);
    LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
    LLVMValueRef a[23] = {P[0], P[1], P[2], P[3],
                          G->att_v[3] >= 0 ? P[4] : nul, G->att_v[4] >= 0 ? P[5] : nul,
                          c->blob_globals[G->gblob], G->att_v[5] >= 0 ? P[6] : nul,
                          cg_ci64(c, G->kb_b), cg_ci64(c, G->kb_h), G->att_v[6] >= 0 ? P[7] : nul,
                          G->att_v[7] >= 0 ? P[8] : nul, cg_ci64(c, G->aKw), cg_ci64(c, G->aH), cg_ci64(c, G->aHkv),
                          cg_ci64(c, G->aNq), cg_ci64(c, G->aNk), cg_ci64(c, G->aDh), cg_ci64(c, G->aDv), cf(c, G->scale),
                          LLVMConstInt(c->t_i32, (unsigned long long)G->causal, 0), P[9], P[10]};
    LLVMBuildCall2(c->b, c->ft_attn, c->f_attn, a, 23, "");
    LLVMBuildRetVoid(c->b);
    if (saved) LLVMPositionBuilderAtEnd(c->b, saved);
    c->attn_keys[c->n_attn_cores] = key;
    c->attn_cores[c->n_attn_cores++] = core;
  }
  LLVMValueRef k = begin_kernel(c, gi);
  LLVMValueRef bufs = LLVMGetParam(k, 0);
  LLVMValueRef a[11] = {attn_in(c, G, bufs, 0), attn_in(c, G, bufs, 1), attn_in(c, G, bufs, 2),
                        load_buf(c, bufs, G->out), attn_in(c, G, bufs, 3), attn_in(c, G, bufs, 4),
                        attn_in(c, G, bufs, 5), attn_in(c, G, bufs, 6), attn_in(c, G, bufs, 7),
                        LLVMGetParam(k, 1), LLVMGetParam(k, 2)};
  LLVMBuildCall2(c->b, c->ft_attn_core, core, a, 11, "");
  LLVMBuildRetVoid(c->b);
  return k;
}

/* i32 vt_entry(ptr bufs, ptr rt): every group in order; a nonzero status from a host callback
 * returns at once. */
/* The profile label of group gi: kind, first node (name, op) and its size. */
static LLVMValueRef prof_label(cg *c, int gi) {
  static const char *const kinds[] = {"gemm", "elementwise", "copy", "host", "row", "transpose", "attention",
                                      "blocks", "conv", "absorbed"};
  const cg_group *G = &c->groups[gi];
  const vt_node *n = &c->g->nodes[G->seed];
  char buf[320];
  int k = snprintf(buf, sizeof buf, "%-11s %s (%s", kinds[G->kind], n->name ? n->name : "?", vt_ops[n->op].name);
  if (G->kind == G_GEMM) k += snprintf(buf + k, sizeof buf - (size_t)k, " %lldx%lldx%lld", (long long)G->M, (long long)G->N, (long long)G->K);
  if (G->n_nodes > 1 && k < (int)sizeof buf) k += snprintf(buf + k, sizeof buf - (size_t)k, ", %d nodes", G->n_nodes);
  if (k < (int)sizeof buf) snprintf(buf + k, sizeof buf - (size_t)k, ")");
  return LLVMBuildGlobalStringPtr(c->b, buf, "prof");
}

static void emit_prof(cg *c, LLVMValueRef rt, int gi) {
  if (!c->prof) return;
  LLVMValueRef a[3] = {rt, LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)gi, 1),
                       gi >= 0 ? prof_label(c, gi) : LLVMConstNull(c->t_ptr)};
  LLVMBuildCall2(c->b, c->ft_prof, c->f_prof, a, 3, "");
}

/* The loops of TokenGate node ni specialised to its token count n and width d (constants), as
 * the table its host kernel receives in vt_kctx.fns: {norm(x, u, norm, u2, i0, i1),
 * select(norm, order, m)}. NULL (the kernel's own C loops) when its input's dims are not static. */
static LLVMValueRef emit_gate_fns(cg *c, int32_t ni) {
  const vt_node *n = &c->g->nodes[ni];
  int64_t ntok = n->n_in > 0 ? cg_val_tokens(c, n->in[0]) : -1;
  if (ntok < 1) return NULL;
  const vt_value *xv = &c->orig->values[n->in[0]];
  int64_t d = xv->dims[xv->rank - 1];
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(c->b);
  char name[64];
  LLVMValueRef fn[2];
  LLVMTypeRef t_norm = LLVMFunctionType(c->t_void, (LLVMTypeRef[]){c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64}, 6, 0);
  LLVMTypeRef t_sel = LLVMFunctionType(c->t_void, (LLVMTypeRef[]){c->t_ptr, c->t_ptr, c->t_i64}, 3, 0);
  for (int k = 0; k < 2; k++) {
    snprintf(name, sizeof name, k ? "vt_gate_select_%d" : "vt_gate_norm_%d", (int)ni);
    fn[k] = LLVMAddFunction(c->mod, name, k ? t_sel : t_norm);
    LLVMSetLinkage(fn[k], LLVMInternalLinkage);
    add_fn_attr(c, fn[k], "nounwind");
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn[k], "entry"));
    if (k == 0) {
      LLVMValueRef a[7] = {LLVMGetParam(fn[0], 0), LLVMGetParam(fn[0], 1), LLVMGetParam(fn[0], 2), LLVMGetParam(fn[0], 3),
                           cg_ci64(c, d), LLVMGetParam(fn[0], 4), LLVMGetParam(fn[0], 5)};
      LLVMBuildCall2(c->b, LLVMGlobalGetValueType(c->f_gate_norm), c->f_gate_norm, a, 7, "");
    } else {
      LLVMValueRef a[4] = {LLVMGetParam(fn[1], 0), LLVMGetParam(fn[1], 1), cg_ci64(c, ntok), LLVMGetParam(fn[1], 2)};
      LLVMBuildCall2(c->b, LLVMGlobalGetValueType(c->f_gate_sel), c->f_gate_sel, a, 4, "");
    }
    LLVMBuildRetVoid(c->b);
  }
  LLVMPositionBuilderAtEnd(c->b, saved);
  LLVMValueRef init = LLVMConstArray2(c->t_ptr, fn, 2);
  snprintf(name, sizeof name, "vt_gate_fns_%d", (int)ni);
  LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  c->n_gate_fns++;
  return gv;
}

static int emit_entry(cg *c, int nthreads) {
  LLVMTypeRef pt[2] = {c->t_ptr, c->t_ptr};
  LLVMValueRef f = LLVMAddFunction(c->mod, "vt_entry", LLVMFunctionType(c->t_i32, pt, 2, 0));
  add_fn_attr(c, f, "nounwind");
  LLVMValueRef *kern = calloc((size_t)c->n_groups + 1, sizeof *kern);
  if (!kern) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    if (G->kind == G_CONV && G->total > 0) {
      kern[gi] = emit_conv_kernel(c, gi);
    } else if (G->kind == G_ATTN && G->total > 0) {
      kern[gi] = emit_attn_kernel(c, gi);
      if (!kern[gi]) { free(kern); return VT_ERR_MODEL; }
    } else if (G->kind == G_PERM && G->total > 0) {
      kern[gi] = emit_perm_kernel(c, gi);
    } else if (G->kind == G_ROW && G->total > 0) {
      kern[gi] = emit_row_kernel(c, gi);
      if (!kern[gi]) { free(kern); return VT_ERR_MODEL; }
    } else if ((G->kind == G_GEMM || G->kind == G_EW) && G->total > 0) {
      kern[gi] = emit_kernel(c, gi);
      if (!kern[gi]) { free(kern); return VT_ERR_MODEL; }
    }
  }
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMValueRef bufs = LLVMGetParam(f, 0), rt = LLVMGetParam(f, 1);
  LLVMBasicBlockRef fail = NULL;   /* made at the first fallback: returns its status */
  LLVMValueRef fail_phi = NULL;
  for (int gi = 0; gi < c->n_groups; gi++) {
    cg_group *G = &c->groups[gi];
    if (G->kind == G_ABSORBED) continue;
    emit_prof(c, rt, gi);
    switch (G->kind) {
    case G_GEMM:
    case G_EW:
    case G_ROW:
    case G_ATTN:
    case G_CONV:
    case G_PERM: {
      if (!kern[gi]) break;
      int64_t units = G->kind == G_GEMM ? vt_cg_gemm_units_p(G->M, G->N, c->tgt.isa->mc, c->tgt.isa->nr) : G->rows;
      double work = G->kind == G_GEMM || G->kind == G_CONV ? 2.0 * (double)G->M * (double)G->N * (double)G->K
                    : G->kind == G_ATTN ? (double)G->total / (double)(G->aDv ? G->aDv : 1) * (double)G->aNk *
                                          (double)(G->aDh + G->aDv) * 2.0
                    : G->kind == G_ROW ? (double)G->total * 16.0
                    : G->kind == G_PERM ? (double)G->total * 2.0
                                      : (double)G->total * (double)(G->n_steps + 1);
      LLVMValueRef nunits = cg_ci64(c, units);
      if (G->dref >= 0 && G->kind == G_GEMM)   /* run-time rows (static fields: the bound); as vt_cg_gemm_units */
        nunits = LLVMBuildMul(c->b,
                              LLVMBuildSDiv(c->b, LLVMBuildAdd(c->b, emit_rows(c, bufs, G, G->N), cg_ci64(c, c->tgt.isa->mc - 1), ""),
                                            cg_ci64(c, c->tgt.isa->mc), ""),
                              cg_ci64(c, (G->N + c->tgt.isa->nr - 1) / c->tgt.isa->nr), "");
      else if (G->dref >= 0)
        nunits = emit_rows(c, bufs, G, G->cols);
      if (nthreads > 1 && units > 1 && work >= 2097152.0) {   /* below ~25 us a pool wake-up costs more */
        LLVMValueRef a[4] = {rt, kern[gi], bufs, nunits};
        LLVMBuildCall2(c->b, c->ft_par, c->f_par, a, 4, "");
      } else {
        LLVMValueRef a[3] = {bufs, cg_ci64(c, 0), nunits};
        LLVMBuildCall2(c->b, c->ft_kern, kern[gi], a, 3, "");
      }
      break;
    }
    case G_BLOCKS:
      for (int i = 0; i < G->n_copies; i++) {
        const cg_copy *cp = &G->copies[i];
        if (cp->rows <= 0 || cp->bytes <= 0) continue;
        LLVMValueRef src = cp->sblob >= 0 ? c->blob_globals[cp->sblob] : load_buf(c, bufs, cp->src);
        LLVMValueRef dst = load_buf(c, bufs, cp->dst);
        LLVMValueRef so = cg_ci64(c, cp->soff), dof = cg_ci64(c, cp->doff);
        LLVMTypeRef i8 = LLVMInt8TypeInContext(c->ctx);
        src = LLVMBuildInBoundsGEP2(c->b, i8, src, &so, 1, "");
        dst = LLVMBuildInBoundsGEP2(c->b, i8, dst, &dof, 1, "");
        LLVMValueRef a[6] = {dst, src, cg_ci64(c, cp->rows), cg_ci64(c, cp->bytes), cg_ci64(c, cp->dstride), cg_ci64(c, cp->sstride)};
        LLVMBuildCall2(c->b, c->ft_copy_rows, c->f_copy_rows, a, 6, "");
      }
      break;
    case G_COPY:
      if (G->total > 0 && !G->alias) {
        LLVMValueRef bytes = cg_ci64(c, G->total);
        if (G->dref >= 0)
          bytes = LLVMBuildMul(c->b, emit_numel(c, bufs, G->dref),
                               cg_ci64(c, (int64_t)vt_dtype_size(c->g->values[G->dref].dtype)), "");
        LLVMBuildMemCpy(c->b, load_buf(c, bufs, G->out), 1, load_buf(c, bufs, G->src), 1, bytes);
      }
      break;
    case G_FALLBACK: {
      LLVMValueRef fns = c->g->nodes[G->seed].op == VT_OP_TokenGate ? emit_gate_fns(c, G->seed) : NULL;
      LLVMValueRef a[3] = {rt, LLVMConstInt(c->t_i32, (unsigned long long)G->seed, 0),
                           fns ? fns : LLVMConstPointerNull(c->t_ptr)};
      LLVMValueRef rc = LLVMBuildCall2(c->b, c->ft_node, c->f_node, a, 3, "");
      LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
      if (!fail) {
        fail = LLVMAppendBasicBlockInContext(c->ctx, f, "fail");
        LLVMPositionBuilderAtEnd(c->b, fail);
        fail_phi = LLVMBuildPhi(c->b, c->t_i32, "rc");
        LLVMBuildRet(c->b, fail_phi);
        LLVMPositionBuilderAtEnd(c->b, here);
      }
      LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, f, "ok");
      LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, rc, LLVMConstInt(c->t_i32, 0, 0), ""), fail, next);
      LLVMAddIncoming(fail_phi, &rc, &here, 1);
      LLVMPositionBuilderAtEnd(c->b, next);
      break;
    }
    }
  }
  emit_prof(c, rt, -1);
  LLVMBuildRet(c->b, LLVMConstInt(c->t_i32, 0, 0));
  free(kern);
  return VT_OK;
}

int cg_build_module(cg *c, int nthreads) {
  c->b = LLVMCreateBuilderInContext(c->ctx);
  c->t_i64 = LLVMInt64TypeInContext(c->ctx);
  c->t_i32 = LLVMInt32TypeInContext(c->ctx);
  c->t_i1 = LLVMInt1TypeInContext(c->ctx);
  c->t_f32 = LLVMFloatTypeInContext(c->ctx);
  c->t_ptr = LLVMPointerTypeInContext(c->ctx, 0);
  c->t_void = LLVMVoidTypeInContext(c->ctx);
  c->ft_f1 = LLVMFunctionType(c->t_f32, &c->t_f32, 1, 0);
  LLVMTypeRef gp[18] = {c->t_ptr, c->t_i64, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64, c->t_i64,
                        c->t_i64, c->t_ptr, c->t_ptr, c->t_i32, c->t_ptr, c->t_ptr, c->t_f32, c->t_ptr, c->t_i64};
  c->ft_gemm = LLVMFunctionType(c->t_void, gp, 18, 0);   /* vt_cgk_gemm_kc */
  LLVMTypeRef cp[11] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr,
                        c->t_ptr, c->t_i64};
  c->ft_core = LLVMFunctionType(c->t_void, cp, 10, 0);
  c->ft_core_dyn = LLVMFunctionType(c->t_void, cp, 11, 0);   /* + i64 M (run-time row count) */
  LLVMTypeRef sp[5] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64};
  c->ft_softmax = LLVMFunctionType(c->t_void, sp, 5, 0);
  LLVMTypeRef lp[9] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i32, c->t_ptr, c->t_i64, c->t_f32, c->t_i64, c->t_i64};
  c->ft_ln = LLVMFunctionType(c->t_void, lp, 9, 0);
  LLVMTypeRef rdp[6] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i32, c->t_i64, c->t_i64};
  c->ft_reduce = LLVMFunctionType(c->t_void, rdp, 6, 0);
  LLVMTypeRef tp[8] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i32, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64};
  c->ft_perm = LLVMFunctionType(c->t_void, tp, 8, 0);
  LLVMTypeRef rp[7] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_f32, c->t_i64, c->t_i64};
  c->ft_row_core = LLVMFunctionType(c->t_void, rp, 7, 0);
  LLVMTypeRef ap[23] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr,
                        c->t_i64, c->t_i64, c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64,
                        c->t_i64, c->t_i64, c->t_i64, c->t_f32, c->t_i32, c->t_i64, c->t_i64};
  c->ft_attn = LLVMFunctionType(c->t_void, ap, 23, 0);
  LLVMTypeRef acp[11] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr,
                         c->t_i64, c->t_i64};
  c->ft_attn_core = LLVMFunctionType(c->t_void, acp, 11, 0);
  LLVMTypeRef crp[6] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64};
  c->ft_copy_rows = LLVMFunctionType(c->t_void, crp, 6, 0);
  LLVMTypeRef cvp[22];
  for (int i = 0; i < 22; i++) cvp[i] = i < 4 ? c->t_ptr : c->t_i64;
  c->ft_conv = LLVMFunctionType(c->t_void, cvp, 22, 0);
  LLVMTypeRef kp[3] = {c->t_ptr, c->t_i64, c->t_i64};
  c->ft_kern = LLVMFunctionType(c->t_void, kp, 3, 0);
  LLVMTypeRef ep[7] = {c->t_ptr, c->t_ptr, c->t_i64, c->t_i64, c->t_i64, c->t_i64, c->t_i64};
  c->ft_epi = LLVMFunctionType(c->t_void, ep, 7, 0);
  LLVMTypeRef pp[4] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_i64};
  c->ft_par = LLVMFunctionType(c->t_void, pp, 4, 0);
  LLVMTypeRef np[3] = {c->t_ptr, c->t_i32, c->t_ptr};
  c->ft_node = LLVMFunctionType(c->t_i32, np, 3, 0);
  struct { LLVMValueRef *f; const char *name; } lib[] = {
    {&c->f_gemm, "vt_cgk_gemm_kc"}, {&c->f_exp, "vt_cgm_exp"}, {&c->f_erf, "vt_cgm_erf"}, {&c->f_log, "vt_cgm_log"},
    {&c->f_tanh, "vt_cgm_tanh"}, {&c->f_sigmoid, "vt_cgm_sigmoid"}, {&c->f_softmax, "vt_cgk_softmax_rows"},
    {&c->f_ln, "vt_cgk_layernorm_rows"}, {&c->f_reduce, "vt_cgk_reduce_rows"}, {&c->f_perm, "vt_cgk_transpose"}, {&c->f_attn, "vt_cgk_attention"},
    {&c->f_copy_rows, "vt_cgk_copy_rows"}, {&c->f_conv, "vt_cgk_conv2d"},
    {&c->f_conv_direct, "vt_cgk_conv_direct"}, {&c->f_conv1x1, "vt_cgk_conv1x1"}, {&c->f_pool, "vt_cgk_pool2d"},
    {&c->f_reduce_mid, "vt_cgk_reduce_mid"}, {&c->f_conv_transpose, "vt_cgk_conv_transpose"},
    {&c->f_resize, "vt_cgk_resize2d"}, {&c->f_gate_norm, "vt_cgk_gate_norm"},
    {&c->f_gate_sel, "vt_cgk_gate_select"}};
  for (size_t i = 0; i < sizeof lib / sizeof lib[0]; i++) {
    *lib[i].f = LLVMGetNamedFunction(c->mod, lib[i].name);
    if (!*lib[i].f) return vt_errorf(c->e, VT_ERR_INTERNAL, "kernel library lacks %s", lib[i].name);
  }
  c->f_par = LLVMAddFunction(c->mod, "vt_jit_host_par", c->ft_par);
  c->f_node = LLVMAddFunction(c->mod, "vt_jit_host_node", c->ft_node);
  LLVMTypeRef prp[3] = {c->t_ptr, c->t_i32, c->t_ptr};
  c->ft_prof = LLVMFunctionType(c->t_void, prp, 3, 0);
  const char *pe = getenv("VTOPT_PROFILE");
  c->prof = pe && *pe && strcmp(pe, "0") != 0;
  if (c->prof) c->f_prof = LLVMAddFunction(c->mod, "vt_jit_host_prof", c->ft_prof);
  unsigned id_sqrt = LLVMLookupIntrinsicID("llvm.sqrt", 9), id_fabs = LLVMLookupIntrinsicID("llvm.fabs", 9);
  c->f_sqrt = LLVMGetIntrinsicDeclaration(c->mod, id_sqrt, &c->t_f32, 1);
  c->f_fabs = LLVMGetIntrinsicDeclaration(c->mod, id_fabs, &c->t_f32, 1);
  /* constant data: packed weights, broadcast operands */
  c->blob_globals = calloc((size_t)c->n_blobs + 1, sizeof *c->blob_globals);
  if (!c->blob_globals) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  for (int i = 0; i < c->n_blobs; i++) {
    char name[64];
    snprintf(name, sizeof name, "vt_const_%d", i);
    if (cg_blob_extern(&c->blobs[i]) && !c->pic) {   /* JIT: the blob's address, a constant */
      c->blob_globals[i] = LLVMConstIntToPtr(LLVMConstInt(c->t_i64, (unsigned long long)(uintptr_t)c->blobs[i].data, 0),
                                             c->t_ptr);
      continue;
    }
    if (cg_blob_extern(&c->blobs[i])) {   /* fast.so: defined by the weights object (write_blob_object) */
      LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMArrayType2(LLVMInt8TypeInContext(c->ctx), c->blobs[i].nbytes), name);
      LLVMSetGlobalConstant(gv, 1);
      LLVMSetLinkage(gv, LLVMExternalLinkage);
      if (c->pic) LLVMSetVisibility(gv, LLVMHiddenVisibility);
      LLVMSetAlignment(gv, 64);
      c->blob_globals[i] = gv;
      continue;
    }
    LLVMValueRef init = LLVMConstStringInContext2(c->ctx, (const char *)c->blobs[i].data, c->blobs[i].nbytes, 1);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    LLVMSetAlignment(gv, 64);
    c->blob_globals[i] = gv;
  }
  return emit_entry(c, nthreads);
}

LLVMValueRef cg_emit_elem_op(cg *c, const cg_step *s, LLVMValueRef x, LLVMValueRef y) { return emit_op(c, s, x, y); }

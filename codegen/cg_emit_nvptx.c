/* cg_emit_nvptx.c — the GPU target (--target cuda): the lowering's kernel groups (cg_plan, the
 * same target-independent lowering as the CPU) emitted as NVPTX kernels through LLVM 19's NVPTX
 * backend, and the GPU plan a CUDA fast.so runs (gpu/gpu_plan.h: pointer-table slots, launches,
 * PTX, constants). Every kernel is `void k(ptr addrspace(1) tbl)`: tbl holds one device pointer
 * per slot (values, constants, scratch), so the host runtime launches every kernel the same way.
 * Kernels (one per group, two for a GEMM with a LayerNorm prologue):
 *   ELEMENTWISE  one thread per element, the step chain built here (global loads / stores);
 *   GEMM         the shared-memory tiled float32 GEMM of gpu/cg_gpu_kernels.c with the group's
 *                epilogue built here as a function it calls per element (inlined after constant
 *                propagation); B is the raw constant [K, N] (x alpha), not the CPU's packed panels;
 *   ROW          softmax / LayerNorm / reductions (a thread block per row);
 *   PERM, COPY   strided and byte copies (COPY views are aliases: no kernel).
 * Groups without a GPU kernel (host nodes, attention, conv, layout blocks, run-time dims, Eventful
 * gather / scatter fusion) are refused by name: the GPU path never runs a node on the host. */
#include "cg_internal.h"
#include "cg_gpu.h"
#include "gpu/gpu_plan.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Transforms/PassBuilder.h>

extern const unsigned char vt_cg_gpu_kernels_bc[];
extern const size_t vt_cg_gpu_kernels_bc_len;

typedef struct gpu_emit {
  cg *c;
  vt_gpu_slot *slots; int n_slots, cap_slots;
  int32_t *val_slot, *blob_slot;            /* per value / blob: its slot or -1 */
  unsigned char *data; size_t n_data, cap_data;
  vt_gpu_launch *launches; int n_launches, cap_launches;
  LLVMTypeRef t_gptr, ft_kern, ft_epi;       /* ptr addrspace(1); void(ptr addrspace(1)); epilogue */
  LLVMValueRef f_rows, f_perm, f_copy, f_gemm, f_copy_rows, f_conv, f_attn;
  LLVMTypeRef ft_rows, ft_perm, ft_copy, ft_gemm, ft_copy_rows, ft_conv, ft_attn;
  int n_kern[7];                             /* gemm, elementwise, row, copy/perm/blocks, views, conv, attention */
} gpu_emit;

static int new_slot(gpu_emit *x, int kind, int32_t index, int64_t bytes) {
  if (x->n_slots == x->cap_slots) {
    int nc = x->cap_slots ? 2 * x->cap_slots : 64;
    void *p = realloc(x->slots, (size_t)nc * sizeof *x->slots);
    if (!p) return -1;
    x->slots = p;
    x->cap_slots = nc;
  }
  x->slots[x->n_slots] = (vt_gpu_slot){.kind = kind, .index = index, .bytes = bytes, .data_off = -1};
  return x->n_slots++;
}

static int64_t add_data(gpu_emit *x, const void *d, size_t n) {
  size_t at = (x->n_data + 255) & ~(size_t)255;   /* 256-byte aligned like cuMemAlloc */
  if (at + n > x->cap_data) {
    size_t nc = x->cap_data ? x->cap_data : 1 << 16;
    while (nc < at + n) nc *= 2;
    void *p = realloc(x->data, nc);
    if (!p) return -1;
    x->data = p;
    x->cap_data = nc;
  }
  memset(x->data + x->n_data, 0, at - x->n_data);
  if (n) memcpy(x->data + at, d, n);
  x->n_data = at + n;
  return (int64_t)at;
}

static int const_slot(gpu_emit *x, const void *d, size_t n) {
  int64_t off = add_data(x, d, n);
  int s = off < 0 ? -1 : new_slot(x, VT_GS_CONST, -1, (int64_t)(n ? n : 4));
  if (s >= 0) x->slots[s].data_off = off;
  return s;
}

/* The slot of value v: graph input / output, constant, alias of its source's, or an activation. */
static int value_slot(gpu_emit *x, int32_t v) {
  cg *c = x->c;
  const vt_graph *g = c->g;
  if (x->val_slot[v] >= 0) return x->val_slot[v];
  const vt_value *val = &g->values[v];
  int64_t bytes = cg_val_numel(val) * (int64_t)vt_dtype_size(val->dtype);
  int s = -1;
  for (int32_t i = 0; i < g->n_inputs && s < 0; i++)
    if (g->inputs[i] == v) s = new_slot(x, VT_GS_INPUT, i, bytes);
  for (int32_t i = 0; i < g->n_outputs && s < 0; i++)
    if (g->outputs[i] == v) s = new_slot(x, VT_GS_OUTPUT, i, bytes);
  if (s >= 0 && val->rank <= 8) {   /* the ABI's tensor description of an input / output */
    x->slots[s].dtype = (int32_t)val->dtype;
    x->slots[s].rank = val->rank;
    for (int32_t d = 0; d < val->rank; d++) x->slots[s].dims[d] = val->dims[d];
  }
  if (s < 0 && cg_is_const(g, v) && val->cdata && val->cdata->data)
    s = const_slot(x, val->cdata->data, vt_tensor_nbytes(val->cdata));
  if (s < 0 && c->alias_of && c->alias_of[v] >= 0 && c->alias_of[v] != v) {
    int r = value_slot(x, c->alias_of[v]);
    s = r < 0 ? -1 : new_slot(x, VT_GS_ALIAS, r, 0);
  }
  if (s < 0) s = new_slot(x, VT_GS_ACT, -1, bytes ? bytes : 4);
  if (s >= 0) x->val_slot[v] = s;
  return s;
}

static int blob_slot(gpu_emit *x, int32_t b) {
  if (x->blob_slot[b] < 0) x->blob_slot[b] = const_slot(x, x->c->blobs[b].data, x->c->blobs[b].nbytes);
  return x->blob_slot[b];
}

static int add_launch(gpu_emit *x, const char *kernel, int64_t gx, int64_t gy, int group) {
  if (x->n_launches == x->cap_launches) {
    int nc = x->cap_launches ? 2 * x->cap_launches : 64;
    void *p = realloc(x->launches, (size_t)nc * sizeof *x->launches);
    if (!p) return -1;
    x->launches = p;
    x->cap_launches = nc;
  }
  vt_gpu_launch *l = &x->launches[x->n_launches++];
  memset(l, 0, sizeof *l);
  snprintf(l->kernel, sizeof l->kernel, "%s", kernel);
  l->grid_x = (uint32_t)(gx < 1 ? 1 : gx);
  l->grid_y = (uint32_t)(gy < 1 ? 1 : gy);
  l->block_x = VT_GPU_THREADS;
  l->group = group;
  return 0;
}

/* ---------- IR helpers ------------------------------------------------------------------------ */
static LLVMValueRef ci32(cg *c, int v) { return LLVMConstInt(c->t_i32, (unsigned long long)(unsigned)v, 0); }

/* device pointer of slot s from the table (as ptr addrspace(1)) */
static LLVMValueRef tbl_ptr(gpu_emit *x, LLVMValueRef tbl, int s) {
  cg *c = x->c;
  LLVMValueRef ix = cg_ci64(c, s);
  return LLVMBuildLoad2(c->b, x->t_gptr, LLVMBuildInBoundsGEP2(c->b, x->t_gptr, tbl, &ix, 1, ""), "");
}
static LLVMValueRef generic(gpu_emit *x, LLVMValueRef p) {
  return LLVMBuildAddrSpaceCast(x->c->b, p, x->c->t_ptr, "");
}

static LLVMValueRef sreg(gpu_emit *x, const char *name) {
  cg *c = x->c;
  LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
  LLVMTypeRef ft = LLVMFunctionType(c->t_i32, NULL, 0, 0);
  if (!f) f = LLVMAddFunction(c->mod, name, ft);
  return LLVMBuildZExt(c->b, LLVMBuildCall2(c->b, ft, f, NULL, 0, ""), c->t_i64, "");
}

static LLVMValueRef begin_kernel(gpu_emit *x, const char *name) {
  cg *c = x->c;
  LLVMValueRef k = LLVMAddFunction(c->mod, name, x->ft_kern);
  LLVMMetadataRef md[3] = {LLVMValueAsMetadata(k), LLVMMDStringInContext2(c->ctx, "kernel", 6),
                           LLVMValueAsMetadata(ci32(c, 1))};
  LLVMAddNamedMetadataOperand(c->mod, "nvvm.annotations", LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, md, 3)));
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, k, "entry"));
  return k;
}

/* The element computation of an elementwise / epilogue group: prim = GEMM accumulator or NULL,
 * row / col / flat indices (i64), cptr = GEMM's C element. Operands are read through the table. */
static void emit_elem_gpu(gpu_emit *x, const cg_group *G, LLVMValueRef tbl, LLVMValueRef prim, LLVMValueRef row,
                          LLVMValueRef col, LLVMValueRef flat, LLVMValueRef cptr, LLVMValueRef *res) {
  cg *c = x->c;
  LLVMBuilderRef b = c->b;
  for (int s = 0; s < G->n_steps; s++) {
    const cg_step *st = &G->steps[s];
    LLVMValueRef a[2] = {NULL, NULL};
    for (int k = 0; k < st->nargs; k++) {
      const cg_arg *ar = &st->a[k];
      switch (ar->kind) {
      case A_STEP: a[k] = res[ar->idx]; break;
      case A_PRIMARY: a[k] = prim; break;
      case A_CONSTF: a[k] = LLVMConstReal(c->t_f32, ar->c); break;
      case A_VAL: {
        LLVMValueRef base = tbl_ptr(x, tbl, ar->blob >= 0 ? blob_slot(x, ar->blob) : value_slot(x, ar->idx));
        LLVMValueRef idx = ar->bc == BC_FULL ? flat : ar->bc == BC_LAST ? col : ar->bc == BC_ROW ? row : cg_ci64(c, 0);
        if (ar->bc == BC_TAIL)
          idx = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildURem(b, row, cg_ci64(c, ar->period), ""),
                                                   cg_ci64(c, G->cols), ""), col, "");
        if (ar->bc == BC_STRIDED) {
          idx = LLVMBuildNSWMul(b, col, cg_ci64(c, ar->st[G->rank - 1]), "");
          int64_t inner = 1;
          for (int32_t d = G->rank - 2; d >= 0; d--) {
            if (ar->st[d]) {
              LLVMValueRef q = inner > 1 ? LLVMBuildUDiv(b, row, cg_ci64(c, inner), "") : row;
              q = LLVMBuildURem(b, q, cg_ci64(c, G->dims[d]), "");
              idx = LLVMBuildNSWAdd(b, idx, LLVMBuildNSWMul(b, q, cg_ci64(c, ar->st[d]), ""), "");
            }
            inner *= G->dims[d];
          }
        }
        a[k] = LLVMBuildLoad2(b, c->t_f32, LLVMBuildInBoundsGEP2(b, c->t_f32, base, &idx, 1, ""), "");
        break;
      }
      }
    }
    res[s] = cg_emit_elem_op(c, st, a[0], a[1]);
    if (st->store) {
      LLVMValueRef p;
      if (G->kind == G_GEMM && st->out == G->out) p = cptr;
      else p = LLVMBuildInBoundsGEP2(b, c->t_f32, tbl_ptr(x, tbl, value_slot(x, st->out)), &flat, 1, "");
      LLVMBuildStore(b, res[s], p);
    }
  }
}

/* ---------- kernels per group ------------------------------------------------------------------- */
static int emit_ew(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  char name[48];
  snprintf(name, sizeof name, "vt_gpu_ew_%d", gi);
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  LLVMValueRef i = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, sreg(x, "llvm.nvvm.read.ptx.sreg.ctaid.x"),
                                                   sreg(x, "llvm.nvvm.read.ptx.sreg.ntid.x"), ""),
                                sreg(x, "llvm.nvvm.read.ptx.sreg.tid.x"), "i");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, k, "body");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, k, "done");
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, i, cg_ci64(c, G->total), ""), body, done);
  LLVMPositionBuilderAtEnd(c->b, body);
  int64_t cols = G->cols > 0 ? G->cols : 1;
  LLVMValueRef row = LLVMBuildUDiv(c->b, i, cg_ci64(c, cols), "row");
  LLVMValueRef col = LLVMBuildURem(c->b, i, cg_ci64(c, cols), "col");
  LLVMValueRef *res = calloc((size_t)G->n_steps + 1, sizeof *res);
  if (!res) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  emit_elem_gpu(x, G, tbl, NULL, row, col, i, NULL, res);
  free(res);
  LLVMBuildBr(c->b, done);
  LLVMPositionBuilderAtEnd(c->b, done);
  LLVMBuildRetVoid(c->b);
  x->n_kern[1]++;
  return add_launch(x, name, (G->total + VT_GPU_THREADS - 1) / VT_GPU_THREADS, 1, gi);
}

static int64_t row_grid(int64_t rows) { return rows < 1 ? 1 : rows > 65535 ? 65535 : rows; }

/* row kernel: y (slot ys) = op(x (slot xs)) over rows x cols */
static int emit_rows_kernel(gpu_emit *x, const char *name, int gi, int op, int xs, int gs, int bs, int ys,
                            int64_t rows, int64_t cols, float eps) {
  cg *c = x->c;
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  LLVMValueRef nul = LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef a[8] = {ci32(c, op), generic(x, tbl_ptr(x, tbl, xs)), gs >= 0 ? generic(x, tbl_ptr(x, tbl, gs)) : nul,
                       bs >= 0 ? generic(x, tbl_ptr(x, tbl, bs)) : nul, generic(x, tbl_ptr(x, tbl, ys)),
                       cg_ci64(c, rows), cg_ci64(c, cols), LLVMConstReal(c->t_f32, eps)};
  LLVMBuildCall2(c->b, x->ft_rows, x->f_rows, a, 8, "");
  LLVMBuildRetVoid(c->b);
  x->n_kern[2]++;
  return add_launch(x, name, row_grid(rows), 1, gi);
}

static int emit_row(gpu_emit *x, int gi) {
  cg_group *G = &x->c->groups[gi];
  char name[48];
  snprintf(name, sizeof name, "vt_gpu_row_%d", gi);
  return emit_rows_kernel(x, name, gi, G->row_op, value_slot(x, G->src), G->gblob >= 0 ? blob_slot(x, G->gblob) : -1,
                          G->bblob >= 0 ? blob_slot(x, G->bblob) : -1, value_slot(x, G->out), G->rows, G->cols, G->eps);
}

static int emit_perm(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  char name[48];
  snprintf(name, sizeof name, "vt_gpu_perm_%d", gi);
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  LLVMValueRef a[7] = {generic(x, tbl_ptr(x, tbl, value_slot(x, G->src))), generic(x, tbl_ptr(x, tbl, value_slot(x, G->out))),
                       cg_ci64(c, G->esize), ci32(c, G->rank), generic(x, tbl_ptr(x, tbl, blob_slot(x, G->gblob))),
                       generic(x, tbl_ptr(x, tbl, blob_slot(x, G->bblob))), cg_ci64(c, G->total)};
  LLVMBuildCall2(c->b, x->ft_perm, x->f_perm, a, 7, "");
  LLVMBuildRetVoid(c->b);
  x->n_kern[3]++;
  int64_t blocks = (G->total + VT_GPU_THREADS - 1) / VT_GPU_THREADS;
  return add_launch(x, name, blocks > 65535 ? 65535 : blocks, 1, gi);
}

static int emit_copy(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  if (G->alias) {   /* a view: the output's slot aliases the source's */
    value_slot(x, G->out);
    x->n_kern[4]++;
    return 0;
  }
  char name[48];
  snprintf(name, sizeof name, "vt_gpu_copy_%d", gi);
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  LLVMValueRef a[3] = {generic(x, tbl_ptr(x, tbl, value_slot(x, G->src))), generic(x, tbl_ptr(x, tbl, value_slot(x, G->out))),
                       cg_ci64(c, G->total)};
  LLVMBuildCall2(c->b, x->ft_copy, x->f_copy, a, 3, "");
  LLVMBuildRetVoid(c->b);
  x->n_kern[3]++;
  int64_t blocks = (G->total / 4 + VT_GPU_THREADS - 1) / VT_GPU_THREADS;
  return add_launch(x, name, blocks > 65535 ? 65535 : blocks, 1, gi);
}

/* B of a GEMM group as a row-major [K, N] float32 constant (transB undone, alpha applied) */
static int raw_b_slot(gpu_emit *x, const cg_group *G) {
  const vt_graph *g = x->c->g;
  for (int i = 0; i < G->n_nodes; i++) {
    const vt_node *n = &g->nodes[G->nodes[i]];
    if (n->op != VT_OP_MatMul && n->op != VT_OP_Gemm) continue;
    bool gemm = n->op == VT_OP_Gemm;
    int transB = gemm ? (int)vt_attr_int(n, "transB", 0) : 0;
    float alpha = gemm ? vt_attr_float(n, "alpha", 1.0f) : 1.0f;
    const float *B = (const float *)g->values[n->in[1]].cdata->data;
    if (!transB && alpha == 1.0f) return value_slot(x, n->in[1]);
    int64_t kn = G->K * G->N;
    float *t = malloc((size_t)(kn > 0 ? kn : 1) * sizeof *t);
    if (!t) return -1;
    for (int64_t k = 0; k < G->K; k++)
      for (int64_t j = 0; j < G->N; j++) t[k * G->N + j] = alpha * (transB ? B[j * G->K + k] : B[k * G->N + j]);
    int s = const_slot(x, t, (size_t)(G->K * G->N) * sizeof *t);
    free(t);
    return s;
  }
  return -1;
}

static int emit_gemm(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  char name[48];
  int as = value_slot(x, G->src);
  if (G->ln) {   /* LayerNorm prologue: a row kernel into a scratch A, then the GEMM */
    int scratch = new_slot(x, VT_GS_ACT, -1, G->M * G->K * 4);
    snprintf(name, sizeof name, "vt_gpu_gemm_ln_%d", gi);
    if (scratch < 0 || emit_rows_kernel(x, name, gi, ROW_LAYERNORM, as, blob_slot(x, G->gblob),
                                        G->bblob >= 0 ? blob_slot(x, G->bblob) : -1, scratch, G->M, G->K, G->eps))
      return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    as = scratch;
  }
  int bs = raw_b_slot(x, G), cs = value_slot(x, G->out);
  if (bs < 0 || cs < 0) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
  LLVMValueRef epi = NULL;
  if (G->n_steps) {   /* epi(ptr tbl, float acc, i64 m, i64 n) */
    snprintf(name, sizeof name, "vt_gpu_epi_%d", gi);
    epi = LLVMAddFunction(c->mod, name, x->ft_epi);
    LLVMSetLinkage(epi, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, epi, "entry"));
    LLVMValueRef tbl = LLVMBuildAddrSpaceCast(c->b, LLVMGetParam(epi, 0), x->t_gptr, "");
    LLVMValueRef m = LLVMGetParam(epi, 2), n = LLVMGetParam(epi, 3);
    LLVMValueRef flat = LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, m, cg_ci64(c, G->N), ""), n, "");
    LLVMValueRef cptr = LLVMBuildInBoundsGEP2(c->b, c->t_f32, tbl_ptr(x, tbl, cs), &flat, 1, "");
    LLVMValueRef *res = calloc((size_t)G->n_steps + 1, sizeof *res);
    if (!res) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory");
    emit_elem_gpu(x, G, tbl, LLVMGetParam(epi, 1), m, n, flat, cptr, res);
    free(res);
    LLVMBuildRetVoid(c->b);
  }
  snprintf(name, sizeof name, "vt_gpu_gemm_%d", gi);
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  LLVMValueRef a[8] = {generic(x, tbl_ptr(x, tbl, as)), generic(x, tbl_ptr(x, tbl, bs)), generic(x, tbl_ptr(x, tbl, cs)),
                       cg_ci64(c, G->M), cg_ci64(c, G->N), cg_ci64(c, G->K),
                       epi ? epi : LLVMConstPointerNull(c->t_ptr), generic(x, tbl)};
  LLVMBuildCall2(c->b, x->ft_gemm, x->f_gemm, a, 8, "");
  LLVMBuildRetVoid(c->b);
  x->n_kern[0]++;
  return add_launch(x, name, (G->N + 63) / 64, (G->M + 63) / 64, gi);
}

/* BLOCKS: one launch per row-strided copy (in order: a later copy may read an earlier one's output) */
static int emit_blocks(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  LLVMTypeRef i8 = LLVMInt8TypeInContext(c->ctx);
  for (int i = 0; i < G->n_copies; i++) {
    const cg_copy *cp = &G->copies[i];
    if (cp->rows <= 0 || cp->bytes <= 0) continue;
    char name[48];
    snprintf(name, sizeof name, "vt_gpu_blocks_%d_%d", gi, i);
    LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
    LLVMValueRef src = tbl_ptr(x, tbl, cp->sblob >= 0 ? blob_slot(x, cp->sblob) : value_slot(x, cp->src));
    LLVMValueRef dst = tbl_ptr(x, tbl, value_slot(x, cp->dst));
    LLVMValueRef so = cg_ci64(c, cp->soff), dof = cg_ci64(c, cp->doff);
    src = LLVMBuildInBoundsGEP2(c->b, i8, src, &so, 1, "");
    dst = LLVMBuildInBoundsGEP2(c->b, i8, dst, &dof, 1, "");
    LLVMValueRef a[6] = {generic(x, dst), generic(x, src), cg_ci64(c, cp->rows), cg_ci64(c, cp->bytes),
                         cg_ci64(c, cp->dstride), cg_ci64(c, cp->sstride)};
    LLVMBuildCall2(c->b, x->ft_copy_rows, x->f_copy_rows, a, 6, "");
    LLVMBuildRetVoid(c->b);
    x->n_kern[3]++;
    int64_t blocks = (cp->rows * cp->bytes / 4 + VT_GPU_THREADS - 1) / VT_GPU_THREADS;
    if (add_launch(x, name, blocks > 65535 ? 65535 : blocks, 1, gi)) return -1;
  }
  return 0;
}

/* CONV: direct convolution over the raw constant weights (the node's W [Cout, C, kh, kw]) */
static int emit_conv(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  const vt_node *n = &c->g->nodes[G->seed];
  char name[48];
  snprintf(name, sizeof name, "vt_gpu_conv_%d", gi);
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  const int64_t *cv = G->conv;
  int64_t Nb = c->g->values[G->src].dims[0];
  LLVMValueRef a[19] = {generic(x, tbl_ptr(x, tbl, value_slot(x, G->src))), generic(x, tbl_ptr(x, tbl, value_slot(x, n->in[1]))),
                        G->gblob >= 0 ? generic(x, tbl_ptr(x, tbl, blob_slot(x, G->gblob))) : LLVMConstPointerNull(c->t_ptr),
                        generic(x, tbl_ptr(x, tbl, value_slot(x, G->out))), cg_ci64(c, Nb), cg_ci64(c, G->N)};
  for (int i = 0; i < 13; i++) a[6 + i] = cg_ci64(c, cv[i]);
  LLVMBuildCall2(c->b, x->ft_conv, x->f_conv, a, 19, "");
  LLVMBuildRetVoid(c->b);
  x->n_kern[5]++;
  int64_t blocks = (G->total + VT_GPU_THREADS - 1) / VT_GPU_THREADS;
  return add_launch(x, name, blocks > 65535 ? 65535 : blocks, 1, gi);
}

/* ATTN: input k of the group as a generic pointer (its constant, its buffer + offset, or null) */
static LLVMValueRef attn_arg(gpu_emit *x, const cg_group *G, LLVMValueRef tbl, int k) {
  cg *c = x->c;
  if (G->att_v[k] < 0) return LLVMConstPointerNull(c->t_ptr);
  LLVMValueRef p = tbl_ptr(x, tbl, G->att_blob[k] >= 0 ? blob_slot(x, G->att_blob[k]) : value_slot(x, G->att_v[k]));
  if (k < 3 && G->att_off[k] && G->att_blob[k] < 0) {
    LLVMValueRef o = cg_ci64(c, G->att_off[k]);
    p = LLVMBuildInBoundsGEP2(c->b, c->t_f32, p, &o, 1, "");
  }
  return generic(x, p);
}

static int emit_attn(gpu_emit *x, int gi) {
  cg *c = x->c;
  cg_group *G = &c->groups[gi];
  char name[48];
  snprintf(name, sizeof name, "vt_gpu_attn_%d", gi);
  int64_t per_b = G->aH * G->aNq * G->aDv;
  int64_t B = per_b ? cg_val_numel(&c->g->values[G->out]) / per_b : 0;
  LLVMValueRef k = begin_kernel(x, name), tbl = LLVMGetParam(k, 0);
  LLVMValueRef a[24] = {attn_arg(x, G, tbl, 0), attn_arg(x, G, tbl, 1), attn_arg(x, G, tbl, 2),
                        generic(x, tbl_ptr(x, tbl, value_slot(x, G->out))), attn_arg(x, G, tbl, 3), attn_arg(x, G, tbl, 4),
                        generic(x, tbl_ptr(x, tbl, blob_slot(x, G->gblob))), attn_arg(x, G, tbl, 5),
                        cg_ci64(c, G->kb_b), cg_ci64(c, G->kb_h), attn_arg(x, G, tbl, 6), attn_arg(x, G, tbl, 7),
                        cg_ci64(c, G->aKw ? G->aKw : 1), cg_ci64(c, B), cg_ci64(c, G->aH), cg_ci64(c, G->aHkv),
                        cg_ci64(c, G->aNq), cg_ci64(c, G->aNk), cg_ci64(c, G->aDh), cg_ci64(c, G->aDv),
                        LLVMConstReal(c->t_f32, G->scale), ci32(c, G->causal)};
  LLVMBuildCall2(c->b, x->ft_attn, x->f_attn, a, 22, "");
  LLVMBuildRetVoid(c->b);
  x->n_kern[6]++;
  int64_t rows = B * G->aH * G->aNq, wpb = VT_GPU_THREADS / 32;
  int64_t blocks = (rows + wpb - 1) / wpb;
  return add_launch(x, name, blocks > 65535 ? 65535 : blocks, 1, gi);
}

/* ---------- refusals ------------------------------------------------------------------------------ */
static const char *gpu_refusal(const cg *c, const cg_group *G) {
  switch (G->kind) {
  case G_FALLBACK: return "no GPU kernel (a host node on the CPU path)";
  case G_ATTN:
    if (G->aDh > 256 || G->aDv > 256) return "attention head dims above 256 have no GPU kernel yet";
    break;
  default: break;
  }
  if (G->dref >= 0) return "run-time dims (a gated token count) are not supported by the GPU path yet";
  if (G->kind == G_GEMM && (G->gidx >= 0 || G->sc_val >= 0))
    return "Eventful gather / scatter fusion has no GPU kernel yet";
  (void)c;
  return NULL;
}

/* Fails (VT_ERR_MODEL, every refused node named with its op and why) when a group has no GPU kernel. */
static int check_supported(cg *c) {
  const vt_graph *g = c->g;
  char msg[900];
  size_t n = 0;
  int bad = 0;
  for (int gi = 0; gi < c->n_groups; gi++) {
    const cg_group *G = &c->groups[gi];
    const char *why = gpu_refusal(c, G);
    if (!why) continue;
    for (int i = 0; i < G->n_nodes; i++) {
      const vt_node *nd = &g->nodes[G->nodes[i]];
      if (bad++ < 8 && n < sizeof msg - 200)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%s node '%s' (%s): %s", bad > 1 ? ";" : "",
                              nd->name ? nd->name : "?", vt_ops[nd->op].name, why);
    }
  }
  if (!bad) return VT_OK;
  char ops[300] = "";   /* the distinct ops refused */
  size_t no = 0;
  for (int gi = 0; gi < c->n_groups; gi++) {
    if (!gpu_refusal(c, &c->groups[gi])) continue;
    for (int i = 0; i < c->groups[gi].n_nodes; i++) {
      const char *op = vt_ops[g->nodes[c->groups[gi].nodes[i]].op].name;
      char key[40];
      snprintf(key, sizeof key, " %s,", op);
      char padded[304];
      snprintf(padded, sizeof padded, " %s", ops);
      if (!strstr(padded, key) && no + strlen(op) + 3 < sizeof ops) no += (size_t)snprintf(ops + no, sizeof ops - no, "%s, ", op);
    }
  }
  if (no >= 2) ops[no - 2] = 0;
  return vt_errorf(c->e, VT_ERR_MODEL, "%s: --target cuda refuses %d node%s (ops without a GPU kernel: %s; they would have to "
                   "run on the host):%s%s", g->path, bad, bad > 1 ? "s" : "", ops, msg, bad > 8 ? "; ..." : "");
}

/* ---------- the module ------------------------------------------------------------------------- */
static int gpu_name_ok(const char *gpu) { return !strcmp(gpu, "sm_80") || !strcmp(gpu, "sm_90"); }

int cg_gpu_check_options(const vt_cg_options *opt, vt_error *e) {
  const char *gpu = opt && opt->gpu ? opt->gpu : "sm_80";
  if (!gpu_name_ok(gpu)) return vt_errorf(e, VT_ERR_MODEL, "--gpu %s: unknown GPU architecture (sm_80 or sm_90)", gpu);
  return VT_OK;
}

static LLVMValueRef lib_fn(cg *c, const char *name, LLVMTypeRef *ft) {
  LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
  if (f && ft) *ft = LLVMGlobalGetValueType(f);
  return f;
}

/* Builds, optimises and emits the GPU module of c's plan into x (launches, slots) and *ptx. */
static int build_gpu_module(gpu_emit *x, const vt_cg_options *opt, const char *gpu, char **ptx, size_t *ptx_len) {
  cg *c = x->c;
  vt_error *e = c->e;
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
  const char *triple = "nvptx64-nvidia-cuda";
  LLVMTargetRef target;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &err)) {
    vt_errorf(e, VT_ERR_INTERNAL, "this LLVM has no NVPTX backend: %s", err ? err : "?");
    LLVMDisposeMessage(err);
    return VT_ERR_INTERNAL;
  }
  int olv = opt && opt->opt_level >= 0 && opt->opt_level <= 3 ? opt->opt_level : 3;
  /* PTX ISA 7.8: sm_90's minimum; ptxas of CUDA 12 and 13 accept it for sm_80 too */
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, gpu, "+ptx78",
                                                    olv ? LLVMCodeGenLevelAggressive : LLVMCodeGenLevelNone,
                                                    LLVMRelocDefault, LLVMCodeModelDefault);
  if (!tm) return vt_errorf(e, VT_ERR_INTERNAL, "cannot create the NVPTX target machine for %s", gpu);
  int rc = VT_OK;
  c->ctx = LLVMContextCreate();
  c->mod = LLVMModuleCreateWithNameInContext(c->g->name && *c->g->name ? c->g->name : "vt_model", c->ctx);
  c->b = LLVMCreateBuilderInContext(c->ctx);
  LLVMSetTarget(c->mod, triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(c->mod, td);
  LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRange((const char *)vt_cg_gpu_kernels_bc, vt_cg_gpu_kernels_bc_len,
                                                                 "vt_cg_gpu_kernels", 0);
  LLVMModuleRef lib = NULL;
  if (LLVMParseBitcodeInContext2(c->ctx, mb, &lib)) {
    LLVMDisposeMemoryBuffer(mb);
    rc = vt_errorf(e, VT_ERR_INTERNAL, "cannot parse the embedded GPU kernel bitcode");
    goto done;
  }
  LLVMDisposeMemoryBuffer(mb);
  LLVMSetModuleDataLayout(lib, td);
  /* the library was compiled for one sm: the target machine decides, so drop its per-function CPU */
  for (LLVMValueRef f = LLVMGetFirstFunction(lib); f; f = LLVMGetNextFunction(f)) {
    LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-cpu", 10);
    LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-features", 15);
  }
  if (LLVMLinkModules2(c->mod, lib)) { rc = vt_errorf(e, VT_ERR_INTERNAL, "cannot link the GPU kernel bitcode"); goto done; }
  c->t_i64 = LLVMInt64TypeInContext(c->ctx);
  c->t_i32 = LLVMInt32TypeInContext(c->ctx);
  c->t_i1 = LLVMInt1TypeInContext(c->ctx);
  c->t_f32 = LLVMFloatTypeInContext(c->ctx);
  c->t_ptr = LLVMPointerTypeInContext(c->ctx, 0);
  c->t_void = LLVMVoidTypeInContext(c->ctx);
  x->t_gptr = LLVMPointerTypeInContext(c->ctx, 1);
  x->ft_kern = LLVMFunctionType(c->t_void, &x->t_gptr, 1, 0);
  LLVMTypeRef ep[4] = {c->t_ptr, c->t_f32, c->t_i64, c->t_i64};
  x->ft_epi = LLVMFunctionType(c->t_void, ep, 4, 0);
  c->ft_f1 = LLVMFunctionType(c->t_f32, &c->t_f32, 1, 0);
  c->f_exp = lib_fn(c, "vt_gk_exp", NULL);
  c->f_log = lib_fn(c, "vt_gk_log", NULL);
  c->f_erf = lib_fn(c, "vt_gk_erf", NULL);
  c->f_tanh = lib_fn(c, "vt_gk_tanh", NULL);
  c->f_sigmoid = lib_fn(c, "vt_gk_sigmoid", NULL);
  c->f_sqrt = lib_fn(c, "vt_gk_sqrt", NULL);
  c->f_fabs = lib_fn(c, "vt_gk_fabs", NULL);
  x->f_rows = lib_fn(c, "vt_gk_rows", &x->ft_rows);
  x->f_perm = lib_fn(c, "vt_gk_perm", &x->ft_perm);
  x->f_copy = lib_fn(c, "vt_gk_copy", &x->ft_copy);
  x->f_gemm = lib_fn(c, "vt_gk_gemm", &x->ft_gemm);
  x->f_copy_rows = lib_fn(c, "vt_gk_copy_rows", &x->ft_copy_rows);
  x->f_conv = lib_fn(c, "vt_gk_conv", &x->ft_conv);
  x->f_attn = lib_fn(c, "vt_gk_attention", &x->ft_attn);
  if (!c->f_exp || !c->f_log || !c->f_erf || !c->f_tanh || !c->f_sigmoid || !c->f_sqrt || !c->f_fabs || !x->f_rows ||
      !x->f_perm || !x->f_copy || !x->f_gemm || !x->f_copy_rows || !x->f_conv || !x->f_attn) {
    rc = vt_errorf(e, VT_ERR_INTERNAL, "the GPU kernel bitcode lacks a body the emitter calls");
    goto done;
  }
  /* library bodies: internal (inlined into the kernels, then dropped) */
  for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f))
    if (!LLVMIsDeclaration(f)) LLVMSetLinkage(f, LLVMInternalLinkage);
  for (int gi = 0; gi < c->n_groups && !rc; gi++) {
    switch (c->groups[gi].kind) {
    case G_EW: rc = emit_ew(x, gi); break;
    case G_ROW: rc = emit_row(x, gi); break;
    case G_PERM: rc = emit_perm(x, gi); break;
    case G_COPY: rc = emit_copy(x, gi); break;
    case G_GEMM: rc = emit_gemm(x, gi); break;
    case G_BLOCKS: rc = emit_blocks(x, gi); break;
    case G_CONV: rc = emit_conv(x, gi); break;
    case G_ATTN: rc = emit_attn(x, gi); break;
    case G_ABSORBED: break;   /* its data movement is the attention kernel's strided reads / writes */
    default: rc = vt_errorf(e, VT_ERR_INTERNAL, "group %d: no GPU kernel (should have been refused)", gi);
    }
    if (rc && !e->code) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  if (rc) goto done;
  for (int s = 0; s < x->n_slots; s++)
    if (x->slots[s].kind == VT_GS_CONST && x->slots[s].data_off < 0) { rc = vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto done; }
  {
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
      rc = vt_errorf(e, VT_ERR_INTERNAL, "codegen produced an invalid GPU module: %.800s", msg ? msg : "?");
      LLVMDisposeMessage(msg);
      goto done;
    }
    LLVMDisposeMessage(msg);
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", olv);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef perr = LLVMRunPasses(c->mod, pipeline, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (perr) {
      char *m = cg_llvm_err(perr);
      rc = vt_errorf(e, VT_ERR_INTERNAL, "LLVM passes failed on the GPU module: %s", m);
      free(m);
      goto done;
    }
    if (opt && opt->dump_llvm && LLVMPrintModuleToFile(c->mod, opt->dump_llvm, &msg)) {
      rc = vt_errorf(e, VT_ERR_MODEL, "cannot write %s: %s", opt->dump_llvm, msg ? msg : "?");
      LLVMDisposeMessage(msg);
      goto done;
    }
    LLVMMemoryBufferRef out = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, c->mod, LLVMAssemblyFile, &msg, &out)) {
      rc = vt_errorf(e, VT_ERR_INTERNAL, "NVPTX code generation failed: %s", msg ? msg : "?");
      LLVMDisposeMessage(msg);
      goto done;
    }
    size_t n = LLVMGetBufferSize(out);
    *ptx = malloc(n + 1);
    if (*ptx) {
      memcpy(*ptx, LLVMGetBufferStart(out), n);
      (*ptx)[n] = 0;
      *ptx_len = n + 1;
    }
    LLVMDisposeMemoryBuffer(out);
    if (!*ptx) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
done:
  LLVMDisposeTargetData(td);
  LLVMDisposeBuilder(c->b);
  c->b = NULL;
  if (c->mod) LLVMDisposeModule(c->mod);
  c->mod = NULL;
  LLVMContextDispose(c->ctx);
  c->ctx = NULL;
  LLVMDisposeTargetMachine(tm);
  return rc;
}

static void print_gpu_stats(const gpu_emit *x, const char *gpu, FILE *f) {
  int nact = 0, ncon = 0;
  int64_t act = 0, con = 0;
  for (int s = 0; s < x->n_slots; s++) {
    if (x->slots[s].kind == VT_GS_CONST) { ncon++; con += x->slots[s].bytes; }
    else if (x->slots[s].kind != VT_GS_ALIAS) { nact++; act += x->slots[s].bytes; }
  }
  fprintf(f, "gpu (%s): %d launches: %d GEMM (fused epilogue), %d attention, %d conv, %d elementwise, %d row, "
             "%d copy / transpose, %d views; %d device buffers (%.1f MB), %d constants (%.1f MB); nothing runs on the host\n",
          gpu, x->n_launches, x->n_kern[0], x->n_kern[6], x->n_kern[5], x->n_kern[1], x->n_kern[2], x->n_kern[3], x->n_kern[4],
          nact, act / 1e6, ncon, con / 1e6);
  for (int i = 0; i < x->n_launches; i++)
    fprintf(f, "  %-28s grid %u x %u, block %u\n", x->launches[i].kernel, x->launches[i].grid_x, x->launches[i].grid_y,
            x->launches[i].block_x);
}

int cg_gpu_compile(const vt_graph *g, const vt_cg_options *opt, unsigned char **plan, size_t *plan_len, vt_error *e) {
  *plan = NULL;
  *plan_len = 0;
  if (cg_gpu_check_options(opt, e)) return VT_ERR_MODEL;
  const char *gpu = opt && opt->gpu ? opt->gpu : "sm_80";
  cg c;
  memset(&c, 0, sizeof c);
  c.g = c.orig = g;
  c.e = e;
  c.gpu = true;   /* the lowering keeps to the groups the GPU emitter has kernels for */
  gpu_emit x;
  memset(&x, 0, sizeof x);
  x.c = &c;
  char *ptx = NULL;
  size_t ptx_len = 0;
  /* the lowering packs CPU GEMM panels for a CPU target: plan for the portable AVX2 one (the GPU
   * kernels read B unpacked) */
  vt_cg_options copt = {.opt_level = 3, .cpu = "x86-64-v3"};
  int rc = cg_target_resolve(&copt, &c.tgt, e);
  if (!rc) rc = cg_make_view(&c);
  if (!rc) rc = cg_build_users(&c);
  if (!rc) rc = cg_plan(&c);
  if (!rc) rc = check_supported(&c);
  if (!rc) {
    x.val_slot = malloc(((size_t)g->n_values + 1) * sizeof *x.val_slot);
    x.blob_slot = malloc(((size_t)c.n_blobs + 1) * sizeof *x.blob_slot);
    if (!x.val_slot || !x.blob_slot) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
    else {
      for (int32_t v = 0; v < g->n_values; v++) x.val_slot[v] = -1;
      for (int b = 0; b < c.n_blobs; b++) x.blob_slot[b] = -1;
      /* graph inputs and outputs first: the runtime finds them by kind */
      for (int32_t i = 0; i < g->n_inputs && !rc; i++) if (value_slot(&x, g->inputs[i]) < 0) rc = VT_ERR_MODEL;
      for (int32_t i = 0; i < g->n_outputs && !rc; i++) if (value_slot(&x, g->outputs[i]) < 0) rc = VT_ERR_MODEL;
      if (rc) vt_errorf(e, VT_ERR_MODEL, "out of memory");
    }
  }
  if (!rc) {
    for (int32_t i = 0; i < g->n_outputs && !rc; i++) {
      const vt_gpu_slot *s = &x.slots[x.val_slot[g->outputs[i]]];
      if (s->kind != VT_GS_OUTPUT)
        rc = vt_errorf(e, VT_ERR_MODEL, "%s: output %d is also a graph input or a constant: not supported by --target cuda",
                       g->path, i);
    }
  }
  if (!rc) rc = build_gpu_module(&x, opt, gpu, &ptx, &ptx_len);
  if (!rc && opt && opt->stats) print_gpu_stats(&x, gpu, opt->stats);
  if (!rc) {   /* serialize: hdr, slots, launches, ptx, data */
    size_t o_sl = (sizeof(vt_gpu_plan_hdr) + 7) & ~(size_t)7;
    size_t o_la = o_sl + (size_t)x.n_slots * sizeof(vt_gpu_slot);
    size_t o_px = (o_la + (size_t)x.n_launches * sizeof(vt_gpu_launch) + 7) & ~(size_t)7;
    size_t o_da = (o_px + ptx_len + 255) & ~(size_t)255;
    size_t total = o_da + x.n_data;
    unsigned char *p = calloc(1, total ? total : 1);
    if (!p) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
    else {
      vt_gpu_plan_hdr h = {.magic = VT_GPU_PLAN_MAGIC, .n_slots = (uint32_t)x.n_slots, .n_launches = (uint32_t)x.n_launches,
                           .n_inputs = (uint32_t)g->n_inputs, .n_outputs = (uint32_t)g->n_outputs,
                           .ptx_off = o_px, .ptx_len = ptx_len, .data_off = o_da, .data_len = x.n_data};
      snprintf(h.gpu, sizeof h.gpu, "%s", gpu);
      memcpy(p, &h, sizeof h);
      if (x.n_slots) memcpy(p + o_sl, x.slots, (size_t)x.n_slots * sizeof(vt_gpu_slot));
      if (x.n_launches) memcpy(p + o_la, x.launches, (size_t)x.n_launches * sizeof(vt_gpu_launch));
      memcpy(p + o_px, ptx, ptx_len);
      if (x.n_data) memcpy(p + o_da, x.data, x.n_data);
      *plan = p;
      *plan_len = total;
    }
  }
  free(ptx);
  free(x.slots);
  free(x.val_slot);
  free(x.blob_slot);
  free(x.data);
  free(x.launches);
  cg_free(&c);
  return rc;
}

int vt_cg_emit_ptx(const vt_graph *g, const vt_cg_options *opt, const char *path, vt_error *e) {
  unsigned char *plan = NULL;
  size_t n = 0;
  int rc = cg_gpu_compile(g, opt, &plan, &n, e);
  if (rc) return rc;
  const vt_gpu_plan_hdr *h = (const vt_gpu_plan_hdr *)plan;
  FILE *f = fopen(path, "wb");
  if (!f) rc = vt_errorf(e, VT_ERR_MODEL, "cannot write %s", path);
  else {
    if (fwrite(plan + h->ptx_off, 1, h->ptx_len - 1, f) != h->ptx_len - 1) rc = vt_errorf(e, VT_ERR_MODEL, "cannot write %s", path);
    if (fclose(f) && !rc) rc = vt_errorf(e, VT_ERR_MODEL, "cannot write %s", path);
  }
  free(plan);
  return rc;
}

/* cg_so.c — the fast.so writer (vt_cg_emit_so): the graph description its host nodes need
 * (serialised), the signature JSON, the tagged ABI functions in the module, the weights written
 * as an ELF object, and the link into a shared library. */
#include "cg_internal.h"

#include <elf.h>
#include <errno.h>

#include "so_format.h"
#include "cg_gpu.h"

typedef struct { uint8_t *p; size_t n, cap; bool oom; } wbuf;

static void w_bytes(wbuf *w, const void *src, size_t n) {
  if (w->oom) return;
  if (w->n + n > w->cap) {
    size_t nc = w->cap ? w->cap : 4096;
    while (nc < w->n + n) nc *= 2;
    uint8_t *np = realloc(w->p, nc);
    if (!np) { w->oom = true; return; }
    w->p = np;
    w->cap = nc;
  }
  if (n) memcpy(w->p + w->n, src, n);
  w->n += n;
}
static void w_i32(wbuf *w, int32_t x) { w_bytes(w, &x, 4); }
static void w_i64(wbuf *w, int64_t x) { w_bytes(w, &x, 8); }
static void w_f32(wbuf *w, float x) { w_bytes(w, &x, 4); }
static void w_strn(wbuf *w, const char *s, size_t n) { w_i64(w, (int64_t)n); w_bytes(w, s, n); }
static void w_str(wbuf *w, const char *s) { w_strn(w, s ? s : "", s ? strlen(s) : 0); }
/* Appends data to the data section at a 64-byte aligned offset; returns the offset. */
static int64_t w_data(wbuf *d, const void *src, size_t n) {
  static const uint8_t zero[64];
  w_bytes(d, zero, (64 - d->n % 64) % 64);
  int64_t off = (int64_t)d->n;
  w_bytes(d, src, n);
  return off;
}

/* Serialises what the library needs at run time (so_format.h). Constant data is kept only for
 * constants read by interpreter kernels, copies or graph outputs; attributes only for nodes
 * that run interpreter kernels. (Generated kernels other than copies and strided copies read
 * their constants from module globals.) */
static int serialise_graph(cg *c, wbuf *w, wbuf *dsec) {
  const vt_graph *g = c->orig;
  w_i32(w, VT_SO_MAGIC);
  w_str(w, g->path);
  w_i32(w, g->n_opsets);
  for (int32_t i = 0; i < g->n_opsets; i++) { w_str(w, g->opsets[i].domain); w_i64(w, g->opsets[i].version); }
  w_i32(w, g->n_syms);
  for (int32_t i = 0; i < g->n_syms; i++) {
    const vt_sym *sy = &g->syms[i];
    w_i32(w, (int32_t)sy->kind);
    w_str(w, sy->kind == VT_SYM_NAMED ? sy->name : "");
    w_i64(w, sy->a);
    w_i64(w, sy->b);
    w_i64(w, sy->upper);
  }
  w_i32(w, g->n_values);
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &g->values[v];
    w_str(w, val->name);
    w_i32(w, (int32_t)val->dtype);
    int32_t rank = val->rank < 0 ? 0 : val->rank;
    w_i32(w, rank);
    for (int32_t d = 0; d < rank; d++) w_i64(w, val->dims[d]);   /* symbolic: index into the symbols */
    bool need = false;
    if (cg_is_const(g, v)) {
      need = c->is_out[v];
      for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++) {
        int k = c->groups[c->node_group[c->ulist[u]]].kind;
        if (k == G_FALLBACK || k == G_COPY || k == G_PERM) need = true;   /* read through bufs */
      }
    }
    if (need) {
      const vt_tensor *t = val->cdata;
      if (t->dtype == VT_STRING)
        return vt_errorf(c->e, VT_ERR_MODEL, "%s: constant '%s': string tensors cannot go into a shared library",
                         g->path, val->name);
      w_i64(w, w_data(dsec, t->data, vt_tensor_nbytes(t)));
      w_i64(w, (int64_t)vt_tensor_nbytes(t));
    } else {
      w_i64(w, -1);
      w_i64(w, 0);
    }
  }
  w_i32(w, g->n_nodes);
  for (int32_t ni = 0; ni < g->n_nodes; ni++) {
    const vt_node *n = &g->nodes[ni];
    w_str(w, n->name);
    w_str(w, vt_ops[n->op].name);
    w_str(w, vt_ops[n->op].domain);
    w_i32(w, n->n_in);
    for (int32_t k = 0; k < n->n_in; k++) w_i32(w, n->in[k]);
    w_i32(w, n->n_out);
    for (int32_t k = 0; k < n->n_out; k++) w_i32(w, n->out[k]);
    bool fb = c->groups[c->node_group[ni]].kind == G_FALLBACK;
    w_i32(w, fb ? n->n_attr : 0);
    for (int32_t a = 0; fb && a < n->n_attr; a++) {
      const vt_attr *at = &n->attr[a];
      w_str(w, at->name);
      w_i32(w, (int32_t)at->type);
      switch (at->type) {
      case VT_ATTR_INT: w_i64(w, at->i); break;
      case VT_ATTR_FLOAT: w_f32(w, at->f); break;
      case VT_ATTR_STRING: w_strn(w, at->s ? at->s : "", at->s ? at->s_len : 0); break;
      case VT_ATTR_INTS: w_i32(w, at->n); for (int32_t k = 0; k < at->n; k++) w_i64(w, at->ints[k]); break;
      case VT_ATTR_FLOATS: w_i32(w, at->n); for (int32_t k = 0; k < at->n; k++) w_f32(w, at->floats[k]); break;
      case VT_ATTR_STRINGS: w_i32(w, at->n); for (int32_t k = 0; k < at->n; k++) w_str(w, at->strings[k]); break;
      case VT_ATTR_TENSOR:
        if (!at->t || at->t->dtype == VT_STRING)
          return vt_node_errorf(g, ni, c->e, "attribute '%s': this tensor cannot go into a shared library", at->name);
        w_i32(w, (int32_t)at->t->dtype);
        w_i32(w, at->t->rank);
        for (int32_t d = 0; d < at->t->rank; d++) w_i64(w, at->t->dims[d]);
        w_i64(w, w_data(dsec, at->t->data, vt_tensor_nbytes(at->t)));
        break;
      default:
        return vt_node_errorf(g, ni, c->e, "attribute '%s' (a subgraph) cannot go into a shared library yet", at->name);
      }
    }
  }
  w_i32(w, g->n_inputs);
  for (int32_t i = 0; i < g->n_inputs; i++) w_i32(w, g->inputs[i]);
  w_i32(w, g->n_outputs);
  for (int32_t i = 0; i < g->n_outputs; i++) w_i32(w, g->outputs[i]);
  if (w->oom || dsec->oom) return vt_errorf(c->e, VT_ERR_MODEL, "out of memory serialising the graph");
  return VT_OK;
}

static void json_str(wbuf *w, const char *s) {
  w_bytes(w, "\"", 1);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') { w_bytes(w, "\\", 1); w_bytes(w, s, 1); }
    else if (ch < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", ch); w_bytes(w, b, 6); }
    else w_bytes(w, s, 1);
  }
  w_bytes(w, "\"", 1);
}

static void json_values(wbuf *w, const vt_graph *g, const int32_t *vals, int32_t n) {
  w_bytes(w, "[", 1);
  for (int32_t i = 0; i < n; i++) {
    const vt_value *v = &g->values[vals[i]];
    char b[64];
    if (i) w_bytes(w, ",", 1);
    w_bytes(w, "{\"name\":", 8);
    json_str(w, v->name);
    snprintf(b, sizeof b, ",\"dtype\":\"%s\",\"dims\":[", vt_dtype_name(v->dtype));
    w_bytes(w, b, strlen(b));
    for (int32_t d = 0; d < v->rank; d++) {
      snprintf(b, sizeof b, "%s%lld", d ? "," : "", (long long)v->dims[d]);
      w_bytes(w, b, strlen(b));
    }
    w_bytes(w, "]}", 2);
  }
  w_bytes(w, "]", 1);
}

typedef struct so_extra {
  const char *tag;
  wbuf graph, data, sig;
  int64_t *off;
  int64_t arena_size;
} so_extra;

static LLVMValueRef const_bytes_global(cg *c, const char *name, const void *p, size_t n, unsigned align) {
  LLVMValueRef init = LLVMConstStringInContext2(c->ctx, (const char *)p, n, 1);
  LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetAlignment(gv, align);
  return gv;
}

/* The fast.so ABI in the module: the constant descriptor and the tagged functions forwarding to
 * so_support.c. */
static int emit_so_abi(cg *c, void *arg) {
  so_extra *x = arg;
  const vt_graph *g = c->g;
  LLVMValueRef entry = LLVMGetNamedFunction(c->mod, "vt_entry");
  LLVMSetLinkage(entry, LLVMInternalLinkage);
  LLVMValueRef gg = const_bytes_global(c, "vt_so_graph", x->graph.p, x->graph.n, 16);
  LLVMValueRef gd = const_bytes_global(c, "vt_so_data", x->data.p ? x->data.p : (const uint8_t *)"", x->data.n, 64);
  LLVMValueRef go = const_bytes_global(c, "vt_so_offsets", x->off, (size_t)g->n_values * sizeof(int64_t), 8);
  LLVMValueRef gs = const_bytes_global(c, "vt_so_signature", x->sig.p, x->sig.n, 1);
  char cpu[160];
  snprintf(cpu, sizeof cpu, "%s (%s)", c->tgt.cpu, c->tgt.isa->name);
  LLVMValueRef gc = const_bytes_global(c, "vt_so_cpu", cpu, strlen(cpu) + 1, 1);
  LLVMValueRef gf = const_bytes_global(c, "vt_so_features", c->tgt.required, strlen(c->tgt.required) + 1, 1);
  LLVMValueRef fields[9] = {gg, cg_ci64(c, (int64_t)x->graph.n), gd, go, cg_ci64(c, g->n_values), cg_ci64(c, x->arena_size),
                            entry, gc, gf};
  LLVMValueRef init = LLVMConstStructInContext(c->ctx, fields, 9, 0);
  LLVMValueRef desc = LLVMAddGlobal(c->mod, LLVMTypeOf(init), "vt_so_desc");
  LLVMSetInitializer(desc, init);
  LLVMSetGlobalConstant(desc, 1);
  LLVMSetLinkage(desc, LLVMPrivateLinkage);
  /* declarations of the support functions */
  LLVMTypeRef p = c->t_ptr, i32 = c->t_i32;
  LLVMTypeRef t_create = LLVMFunctionType(i32, (LLVMTypeRef[]){p, i32, p}, 3, 0);
  LLVMTypeRef t_run = LLVMFunctionType(i32, (LLVMTypeRef[]){p, p, p}, 3, 0);
  LLVMTypeRef t_err = LLVMFunctionType(p, (LLVMTypeRef[]){p}, 1, 0);
  LLVMTypeRef t_destroy = LLVMFunctionType(c->t_void, (LLVMTypeRef[]){p}, 1, 0);
  LLVMValueRef s_create = LLVMAddFunction(c->mod, "vt_so_create", t_create);
  LLVMValueRef s_run = LLVMAddFunction(c->mod, "vt_so_run", t_run);
  LLVMValueRef s_err = LLVMAddFunction(c->mod, "vt_so_last_error", t_err);
  LLVMValueRef s_destroy = LLVMAddFunction(c->mod, "vt_so_destroy", t_destroy);
  LLVMTypeRef t_reset = LLVMFunctionType(i32, (LLVMTypeRef[]){p}, 1, 0);
  LLVMTypeRef t_set = LLVMFunctionType(i32, (LLVMTypeRef[]){p, p, LLVMDoubleTypeInContext(c->ctx)}, 3, 0);
  LLVMValueRef s_reset = LLVMAddFunction(c->mod, "vt_so_reset", t_reset);
  LLVMValueRef s_set = LLVMAddFunction(c->mod, "vt_so_set", t_set);
  LLVMTypeRef t_state = LLVMFunctionType(i32, (LLVMTypeRef[]){p, p, p, p}, 4, 0);
  LLVMValueRef s_state = LLVMAddFunction(c->mod, "vt_so_state_info", t_state);
  char name[200];
  /* <tag>_signature */
  snprintf(name, sizeof name, "%s_signature", x->tag);
  LLVMValueRef f = LLVMAddFunction(c->mod, name, LLVMFunctionType(p, NULL, 0, 0));
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, gs);
  /* <tag>_create(threads, out) */
  snprintf(name, sizeof name, "%s_create", x->tag);
  f = LLVMAddFunction(c->mod, name, LLVMFunctionType(i32, (LLVMTypeRef[]){i32, p}, 2, 0));
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_create, s_create, (LLVMValueRef[]){desc, LLVMGetParam(f, 0), LLVMGetParam(f, 1)}, 3, ""));
  /* <tag>_run(s, inputs, outputs) */
  snprintf(name, sizeof name, "%s_run", x->tag);
  f = LLVMAddFunction(c->mod, name, t_run);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_run, s_run, (LLVMValueRef[]){LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2)}, 3, ""));
  /* <tag>_reset(s) */
  snprintf(name, sizeof name, "%s_reset", x->tag);
  f = LLVMAddFunction(c->mod, name, t_reset);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_reset, s_reset, (LLVMValueRef[]){LLVMGetParam(f, 0)}, 1, ""));
  /* <tag>_set(s, knob, value) */
  snprintf(name, sizeof name, "%s_set", x->tag);
  f = LLVMAddFunction(c->mod, name, t_set);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_set, s_set,
                                    (LLVMValueRef[]){LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2)}, 3, ""));
  /* <tag>_state_info(s, bytes, updated, seen) */
  snprintf(name, sizeof name, "%s_state_info", x->tag);
  f = LLVMAddFunction(c->mod, name, t_state);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_state, s_state,
                                    (LLVMValueRef[]){LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2),
                                                     LLVMGetParam(f, 3)}, 4, ""));
  /* <tag>_last_error(s) */
  snprintf(name, sizeof name, "%s_last_error", x->tag);
  f = LLVMAddFunction(c->mod, name, t_err);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, t_err, s_err, (LLVMValueRef[]){LLVMGetParam(f, 0)}, 1, ""));
  /* <tag>_destroy(s) */
  snprintf(name, sizeof name, "%s_destroy", x->tag);
  f = LLVMAddFunction(c->mod, name, t_destroy);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, f, "entry"));
  LLVMBuildCall2(c->b, t_destroy, s_destroy, (LLVMValueRef[]){LLVMGetParam(f, 0)}, 1, "");
  LLVMBuildRetVoid(c->b);
  return VT_OK;
}

static bool valid_tag(const char *t) {
  if (!t || !*t || strlen(t) > 64 || !((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || *t == '_'))
    return false;
  for (; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '_'))
      return false;
  return true;
}

/* The blobs kept out of the module (cg_blob_extern) for a fast.so, written straight into an ELF
 * relocatable object: one read-only section with every blob (64-byte aligned) and a hidden global
 * symbol vt_const_<i> per blob. One write of the data; no assembler or LLVM pass over it. */
static int write_blob_object(const cg *c, const char *path) {
#if defined(__x86_64__)
  const uint16_t machine = EM_X86_64;
#elif defined(__aarch64__)
  const uint16_t machine = EM_AARCH64;
#else
  return vt_errorf(c->e, VT_ERR_MODEL, "%s: fast.so emission supports x86-64 and AArch64 hosts", path);
#endif
  static const char shstr[] = "\0.rodata.vt_weights\0.symtab\0.strtab\0.shstrtab\0.note.GNU-stack";
  enum { SH_RODATA = 1, SH_SYMTAB = 9, SH_STRTAB = 17, SH_SHSTRTAB = 25, SH_NOTE = 35 };
  int nsym = 1;
  uint64_t dlen = 0;
  for (int i = 0; i < c->n_blobs; i++)
    if (cg_blob_extern(&c->blobs[i])) {
      nsym++;
      dlen = (dlen + 63) / 64 * 64 + c->blobs[i].nbytes;
    }
  Elf64_Sym *sym = calloc((size_t)nsym, sizeof *sym);
  char *str = calloc((size_t)nsym, 24);
  if (!sym || !str) { free(sym); free(str); return vt_errorf(c->e, VT_ERR_MODEL, "out of memory"); }
  size_t strn = 1;
  uint64_t off = 0;
  int k = 1;
  for (int i = 0; i < c->n_blobs; i++) {
    if (!cg_blob_extern(&c->blobs[i])) continue;
    off = (off + 63) / 64 * 64;
    sym[k].st_name = (uint32_t)strn;
    sym[k].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
    sym[k].st_other = STV_HIDDEN;
    sym[k].st_shndx = 1;
    sym[k].st_value = off;
    sym[k++].st_size = c->blobs[i].nbytes;
    strn += (size_t)snprintf(str + strn, 24, "vt_const_%d", i) + 1;
    off += c->blobs[i].nbytes;
  }
  /* layout: header, data (at 64), symtab, strtab, shstrtab, section headers */
  uint64_t o_data = 64, o_sym = (o_data + dlen + 7) / 8 * 8, o_str = o_sym + (uint64_t)nsym * sizeof *sym;
  uint64_t o_shs = o_str + strn, o_sh = (o_shs + sizeof shstr + 7) / 8 * 8;
  Elf64_Ehdr eh;
  memset(&eh, 0, sizeof eh);
  memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_REL;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_shoff = o_sh;
  eh.e_ehsize = sizeof eh;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 6;
  eh.e_shstrndx = 5;
  Elf64_Shdr sh[6];
  memset(sh, 0, sizeof sh);
  sh[1] = (Elf64_Shdr){.sh_name = SH_RODATA, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC, .sh_offset = o_data,
                       .sh_size = dlen, .sh_addralign = 64};
  sh[2] = (Elf64_Shdr){.sh_name = SH_SYMTAB, .sh_type = SHT_SYMTAB, .sh_offset = o_sym,
                       .sh_size = (uint64_t)nsym * sizeof *sym, .sh_link = 3, .sh_info = 1, .sh_addralign = 8,
                       .sh_entsize = sizeof *sym};
  sh[3] = (Elf64_Shdr){.sh_name = SH_STRTAB, .sh_type = SHT_STRTAB, .sh_offset = o_str, .sh_size = strn, .sh_addralign = 1};
  sh[4] = (Elf64_Shdr){.sh_name = SH_NOTE, .sh_type = SHT_PROGBITS, .sh_offset = o_shs, .sh_addralign = 1};
  sh[5] = (Elf64_Shdr){.sh_name = SH_SHSTRTAB, .sh_type = SHT_STRTAB, .sh_offset = o_shs, .sh_size = sizeof shstr,
                       .sh_addralign = 1};
  FILE *f = fopen(path, "wb");
  bool ok = f != NULL;
  static const char zeros[64];
  uint64_t pos = 0;
#define WR(p, n) do { if (ok && (n) != 0 && fwrite((p), 1, (n), f) != (n)) ok = false; pos += (n); } while (0)
  WR(&eh, sizeof eh);
  for (int i = 0; i < c->n_blobs && ok; i++) {
    if (!cg_blob_extern(&c->blobs[i])) continue;
    uint64_t pad = (64 - (pos - o_data) % 64) % 64;
    WR(zeros, pad);
    WR(c->blobs[i].data, c->blobs[i].nbytes);
  }
  WR(zeros, o_sym - pos);
  WR(sym, (size_t)nsym * sizeof *sym);
  WR(str, strn);
  WR(shstr, sizeof shstr);
  WR(zeros, o_sh - pos);
  WR(sh, sizeof sh);
#undef WR
  if (f && fclose(f)) ok = false;
  free(sym);
  free(str);
  if (!ok) return vt_errorf(c->e, VT_ERR_MODEL, "%s: cannot write: %s", path, strerror(errno));
  return VT_OK;
}

int vt_cg_emit_so(const vt_graph *g, const vt_cg_options *opt, const char *path, const char *tag, vt_error *e) {
  if (opt && opt->target && !strcmp(opt->target, "cuda")) return cg_gpu_emit_so(g, opt, path, tag, e);
  double t0 = cg_now_ms();
  vt_cg_options dflt = {.opt_level = 3};
  if (!opt) opt = &dflt;
  int olv = opt->opt_level < 0 ? 0 : opt->opt_level > 3 ? 3 : opt->opt_level;
  if (!valid_tag(tag))
    return vt_errorf(e, VT_ERR_MODEL, "tag '%s' is not a C identifier (letters, digits, '_'; at most 64)", tag ? tag : "");
  if (!path || !*path || strpbrk(path, "'\"\\\n") || strlen(path) > 3000)
    return vt_errorf(e, VT_ERR_MODEL, "%s: unsupported output path", path ? path : "");
  cg c;
  memset(&c, 0, sizeof c);
  c.g = c.orig = g;
  c.e = e;
  so_extra x;
  memset(&x, 0, sizeof x);
  x.tag = tag;
  LLVMOrcThreadSafeContextRef tsc = NULL;
  LLVMTargetMachineRef tm = NULL;
  char obj[3100], map[3100], bin[3100], cmd[16384];
  snprintf(obj, sizeof obj, "%s.tmp.o", path);
  snprintf(map, sizeof map, "%s.tmp.map", path);
  snprintf(bin, sizeof bin, "%s.tmp.w.o", path);
  c.pic = true;
  int rc = cg_target_resolve(opt, &c.tgt, e);
  if (!rc) rc = cg_make_view(&c);
  if (!rc) rc = cg_build_users(&c);
  if (!rc) rc = cg_plan(&c);
  if (!rc) {
    x.off = malloc(((size_t)g->n_values + 1) * sizeof *x.off);
    if (!x.off) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  if (!rc && (x.arena_size = cg_plan_arena(&c, x.off)) < 0) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  if (!rc) rc = cg_check_memory(&c, opt->max_memory, x.arena_size, e);
  if (!rc) rc = serialise_graph(&c, &x.graph, &x.data);
  if (!rc) {
    w_bytes(&x.sig, "{\"tag\":", 7);
    json_str(&x.sig, tag);
    w_bytes(&x.sig, ",\"inputs\":", 10);
    json_values(&x.sig, g, g->inputs, g->n_inputs);
    w_bytes(&x.sig, ",\"outputs\":", 11);
    json_values(&x.sig, g, g->outputs, g->n_outputs);
    w_bytes(&x.sig, ",\"target\":{\"cpu\":", 17);
    json_str(&x.sig, c.tgt.cpu);
    w_bytes(&x.sig, ",\"isa\":", 7);
    json_str(&x.sig, c.tgt.isa->name);
    w_bytes(&x.sig, ",\"features\":", 12);
    json_str(&x.sig, c.tgt.required);
    w_bytes(&x.sig, "}", 1);
    w_bytes(&x.sig, ",\"passes\":[]}", 14);   /* includes the NUL */
    if (x.sig.oom) rc = vt_errorf(e, VT_ERR_MODEL, "out of memory");
  }
  /* nthreads 2: kernels big enough always go through the pool (the session's thread count is
   * not known here; a 1-thread pool runs them inline) */
  if (!rc) rc = cg_llvm_module(&c, opt, olv, 2, LLVMRelocPIC, emit_so_abi, &x, t0, &tsc, &tm);
  double t_obj = cg_now_ms();
  if (!rc) {
    char *msg = NULL;
    if (LLVMTargetMachineEmitToFile(tm, c.mod, obj, LLVMObjectFile, &msg)) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot write the object file: %s", obj, msg ? msg : "?");
    }
    LLVMDisposeMessage(msg);
  }
  if (!rc) {
    FILE *f = fopen(map, "w");
    if (!f) rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot write: %s", map, strerror(errno));
    else {
      fprintf(f, "{ global: %s_signature; %s_create; %s_run; %s_reset; %s_set; %s_state_info; %s_last_error; "
                 "%s_destroy; local: *; };\n",
              tag, tag, tag, tag, tag, tag, tag, tag);
      if (fclose(f)) rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot write", map);
    }
  }
  double t_link = cg_now_ms();
  if (!rc) rc = write_blob_object(&c, bin);
  if (!rc) {
    snprintf(cmd, sizeof cmd, "%s -shared -o '%s' '%s' '%s' -Wl,--version-script='%s' %s %s -lm -lpthread 2>&1",
             VT_CG_SO_CC, path, obj, bin, map, VT_CG_SO_LIBS, VT_CG_SO_LDFLAGS);
    FILE *pp = popen(cmd, "r");
    char out[800] = "";
    size_t got = pp ? fread(out, 1, sizeof out - 1, pp) : 0;
    out[got] = 0;
    int st = pp ? pclose(pp) : -1;
    if (st != 0) rc = vt_errorf(e, VT_ERR_MODEL, "%s: linking the shared library failed: %s", path, out[0] ? out : cmd);
  }
  if (getenv("VT_CG_TIMING"))
    fprintf(stderr, "codegen: object file %.1f ms, link %.1f ms\n", t_link - t_obj, cg_now_ms() - t_link);
  remove(obj);
  remove(map);
  remove(bin);
  if (!rc && opt->stats) {
    vt_jit_stats st;
    memset(&st, 0, sizeof st);
    cg_count_groups(&c, &st);
    st.compile_ms = cg_now_ms() - t0;
    cg_print_stats(&c, &st, opt->stats);
  }
  if (c.mod) LLVMDisposeModule(c.mod);
  if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
  if (tm) LLVMDisposeTargetMachine(tm);
  free(x.graph.p);
  free(x.data.p);
  free(x.sig.p);
  free(x.off);
  cg_free(&c);
  return rc;
}

/* so_support.c — the session side of a fast.so: rebuilds the graph description the compiler
 * serialised into the library (value types for input checks, nodes and constants for the ops that
 * run interpreter kernels), lays out the activation arena, and runs the generated entry. Linked
 * into every fast.so with cg_rt.c, the runtime and the IR core (no LLVM, no protobuf); the
 * tagged ABI functions generated into the module forward here. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_rt.h"
#include "so_format.h"
#include "vtopt/model.h"
#include "cg_cpu.h"

/* the ABI's tensor is the runtime's tensor */
_Static_assert(sizeof(vtopt_tensor) == sizeof(vt_tensor), "vtopt_tensor layout");
_Static_assert(offsetof(vtopt_tensor, dims) == offsetof(vt_tensor, dims), "vtopt_tensor layout");
_Static_assert(offsetof(vtopt_tensor, data) == offsetof(vt_tensor, data), "vtopt_tensor layout");
_Static_assert(sizeof(((vt_tensor *)0)->dtype) == sizeof(int32_t), "vtopt_tensor layout");

typedef struct vt_so_session {
  vt_cg_rt rt;        /* first: the generated entry receives &rt */
  vt_graph *g;
  void *arena;
  vt_error err;
  atomic_int busy;    /* 1 while a run/reset/set is inside: a second thread is refused */
} vt_so_session;

/* Per thread: the last failed create (no session to hold it), and the session whose last call
 * from this thread was refused as busy (its err belongs to the thread inside it, so the refusal's
 * message is kept here; last_error answers it for this thread only). */
static _Thread_local vt_error create_err;
static _Thread_local const vt_so_session *busy_refused;
static const char busy_msg[] =
    "session busy: another thread is inside run/reset/set of this session (use one session per thread)";

/* Enters s for this thread, or returns false (VTOPT_ERR_BUSY) when another thread is inside. */
static bool enter(vt_so_session *s) {
  busy_refused = NULL;
  int expected = 0;
  if (!atomic_compare_exchange_strong_explicit(&s->busy, &expected, 1, memory_order_acquire, memory_order_relaxed)) {
    busy_refused = s;
    return false;
  }
  vt_error_clear(&s->err);
  return true;
}
static int leave(vt_so_session *s, int rc) {
  atomic_store_explicit(&s->busy, 0, memory_order_release);
  return rc;
}

typedef struct { const uint8_t *p, *end; bool bad; } rd;

static void take(rd *r, void *dst, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) { r->bad = true; memset(dst, 0, n); return; }
  memcpy(dst, r->p, n);
  r->p += n;
}
static int32_t r_i32(rd *r) { int32_t x; take(r, &x, 4); return x; }
static int64_t r_i64(rd *r) { int64_t x; take(r, &x, 8); return x; }
static float r_f32(rd *r) { float x; take(r, &x, 4); return x; }
/* A string into the graph arena (NUL-terminated); *len gets its length. */
static char *r_str(rd *r, vt_graph *g, size_t *len) {
  int64_t n = r_i64(r);
  if (r->bad || n < 0 || n > r->end - r->p) { r->bad = true; return NULL; }
  char *s = vt_arena_alloc(&g->arena, (size_t)n + 1);
  if (!s) { r->bad = true; return NULL; }
  memcpy(s, r->p, (size_t)n);
  s[n] = 0;
  r->p += n;
  if (len) *len = (size_t)n;
  return s;
}

static vt_graph *load_graph(const vt_so_desc *d, vt_error *e) {
  rd r = {d->graph, d->graph + d->graph_len, false};
  if (r_i32(&r) != VT_SO_MAGIC) { vt_errorf(e, VT_ERR_INTERNAL, "fast.so: bad model description"); return NULL; }
  vt_graph *g = vt_graph_new("");
  if (!g) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); return NULL; }
  g->path = r_str(&r, g, NULL);
  int32_t nops = r_i32(&r);
  for (int32_t i = 0; i < nops && !r.bad; i++) {
    char *dom = r_str(&r, g, NULL);
    int64_t ver = r_i64(&r);
    if (!r.bad && vt_graph_set_opset(g, dom, ver)) r.bad = true;
  }
  int32_t ns = r_i32(&r);   /* the symbol table verbatim: dims below index into it */
  if (!r.bad && (ns < 0 || ns > (1 << 20))) r.bad = true;
  if (!r.bad && ns > 0) {
    g->syms = calloc((size_t)ns, sizeof *g->syms);
    if (!g->syms) r.bad = true;
    else g->cap_syms = ns;
  }
  for (int32_t i = 0; i < ns && !r.bad; i++) {
    vt_sym *sy = &g->syms[i];
    sy->kind = (vt_sym_kind)r_i32(&r);
    char *name = r_str(&r, g, NULL);
    sy->a = r_i64(&r);
    sy->b = r_i64(&r);
    sy->upper = r_i64(&r);
    if (sy->kind == VT_SYM_NAMED) sy->name = name;
    else if (sy->kind < VT_SYM_ADD || sy->kind > VT_SYM_MIN) r.bad = true;
    /* operands refer to earlier symbols only */
    for (int k = 0; k < 2 && sy->kind != VT_SYM_NAMED; k++) {
      vt_dim x = k ? sy->b : sy->a;
      if (!vt_dim_is_const(x) && vt_dim_sym(x) >= i) r.bad = true;
    }
    g->n_syms = i + 1;
  }
  int32_t nv = r_i32(&r);
  for (int32_t v = 0; v < nv && !r.bad; v++) {
    char *name = r_str(&r, g, NULL);
    int32_t dt = r_i32(&r), rank = r_i32(&r);
    if (rank < 0 || rank > VT_MAX_RANK) { r.bad = true; break; }
    vt_dim dims[VT_MAX_RANK];
    int64_t idims[VT_MAX_RANK];
    for (int32_t k = 0; k < rank; k++) {
      idims[k] = dims[k] = r_i64(&r);
      if (!vt_dim_is_const(dims[k]) && vt_dim_sym(dims[k]) >= ns) r.bad = true;
    }
    int64_t off = r_i64(&r), nbytes = r_i64(&r);
    if (r.bad) break;
    int32_t id;
    if (off >= 0) {
      vt_tensor t;
      memset(&t, 0, sizeof t);
      t.dtype = (vt_dtype)dt;
      t.rank = rank;
      memcpy(t.dims, idims, sizeof idims);
      t.data = (void *)(d->data + off);
      if (nbytes != (int64_t)vt_tensor_nbytes(&t)) { r.bad = true; break; }
      id = vt_graph_add_const(g, name, &t);
    } else {
      id = vt_graph_add_value(g, name, (vt_dtype)dt, rank, dims);
    }
    if (id != v) r.bad = true;
  }
  int32_t nn = r_i32(&r);
  for (int32_t ni = 0; ni < nn && !r.bad; ni++) {
    char *name = r_str(&r, g, NULL), *op = r_str(&r, g, NULL), *dom = r_str(&r, g, NULL);
    int32_t nin = r_i32(&r);
    if (r.bad || nin < 0 || nin > 4096) { r.bad = true; break; }
    int32_t in[nin + 1];
    for (int32_t k = 0; k < nin; k++) in[k] = r_i32(&r);
    int32_t nout = r_i32(&r);
    if (r.bad || nout < 0 || nout > 4096) { r.bad = true; break; }
    int32_t out[nout + 1];
    for (int32_t k = 0; k < nout; k++) out[k] = r_i32(&r);
    for (int32_t k = 0; k < nin; k++) if (in[k] < -1 || in[k] >= nv) r.bad = true;
    for (int32_t k = 0; k < nout; k++) if (out[k] < -1 || out[k] >= nv) r.bad = true;
    int opid = r.bad ? -1 : vt_op_lookup(op, dom);
    if (opid < 0) { r.bad = true; break; }
    if (vt_graph_add_node(g, name, opid, nin, in, nout, out) != ni) { r.bad = true; break; }
    int32_t na = r_i32(&r);
    for (int32_t a = 0; a < na && !r.bad; a++) {
      char *an = r_str(&r, g, NULL);
      int32_t ty = r_i32(&r);
      if (r.bad) break;
      vt_attr *at = vt_node_add_attr(g, ni, an, (vt_attr_type)ty);
      if (!at) { r.bad = true; break; }
      switch (ty) {
      case VT_ATTR_INT: at->i = r_i64(&r); break;
      case VT_ATTR_FLOAT: at->f = r_f32(&r); break;
      case VT_ATTR_STRING: at->s = r_str(&r, g, &at->s_len); break;
      case VT_ATTR_INTS: case VT_ATTR_FLOATS: case VT_ATTR_STRINGS: {
        int32_t n = r_i32(&r);
        if (r.bad || n < 0 || n > (1 << 24)) { r.bad = true; break; }
        at->n = n;
        if (ty == VT_ATTR_INTS) {
          at->ints = vt_arena_alloc(&g->arena, (size_t)n * 8 + 8);
          for (int32_t k = 0; k < n && at->ints; k++) at->ints[k] = r_i64(&r);
          if (!at->ints) r.bad = true;
        } else if (ty == VT_ATTR_FLOATS) {
          at->floats = vt_arena_alloc(&g->arena, (size_t)n * 4 + 8);
          for (int32_t k = 0; k < n && at->floats; k++) at->floats[k] = r_f32(&r);
          if (!at->floats) r.bad = true;
        } else {
          at->strings = vt_arena_alloc(&g->arena, (size_t)n * sizeof(char *) + 8);
          for (int32_t k = 0; k < n && at->strings; k++) at->strings[k] = r_str(&r, g, NULL);
          if (!at->strings) r.bad = true;
        }
        break;
      }
      case VT_ATTR_TENSOR: {
        vt_tensor *t = vt_arena_alloc(&g->arena, sizeof *t);
        if (!t) { r.bad = true; break; }
        t->dtype = (vt_dtype)r_i32(&r);
        t->rank = r_i32(&r);
        if (t->rank < 0 || t->rank > VT_MAX_RANK) { r.bad = true; break; }
        for (int32_t k = 0; k < t->rank; k++) t->dims[k] = r_i64(&r);
        int64_t off = r_i64(&r);
        if (r.bad || off < 0) { r.bad = true; break; }
        t->data = (void *)(d->data + off);
        at->t = t;
        break;
      }
      default: r.bad = true;
      }
    }
  }
  int32_t ni = r_i32(&r);
  for (int32_t i = 0; i < ni && !r.bad; i++) {
    int32_t v = r_i32(&r);
    if (v < 0 || v >= nv || vt_graph_add_input(g, v)) r.bad = true;
  }
  int32_t no = r_i32(&r);
  for (int32_t i = 0; i < no && !r.bad; i++) {
    int32_t v = r_i32(&r);
    if (v < 0 || v >= nv || vt_graph_add_output(g, v)) r.bad = true;
  }
  if (r.bad || nv != d->n_values) {
    vt_graph_free(g);
    vt_errorf(e, VT_ERR_INTERNAL, "fast.so: corrupt model description");
    return NULL;
  }
  return g;
}

int vt_so_create(const vt_so_desc *d, int threads, vt_so_session **out) {
  vt_error_clear(&create_err);
  char missing[512];
  if (vt_cpu_missing(d->features, missing, sizeof missing))   /* before any generated code runs */
    return vt_errorf(&create_err, VT_ERR_MODEL,
                     "this library was built for %s and uses CPU features this CPU lacks: %s (rebuild it here, or "
                     "with --cpu x86-64-v3 for a portable library)", d->cpu, missing);
  *out = NULL;
  vt_so_session *s = calloc(1, sizeof *s);
  if (!s) return vt_errorf(&create_err, VT_ERR_MODEL, "out of memory creating a session");
  s->g = load_graph(d, &create_err);
  if (!s->g) { free(s); return create_err.code; }
  if (vt_cg_rt_init(&s->rt, s->g, threads, &create_err)) {
    vt_graph_free(s->g);
    free(s);
    return create_err.code;
  }
  s->rt.entry = d->entry;
  s->arena = aligned_alloc(64, (size_t)(d->arena_size > 0 ? d->arena_size : 64));
  if (!s->arena) {
    vt_cg_rt_fini(&s->rt);
    vt_graph_free(s->g);
    free(s);
    return vt_errorf(&create_err, VT_ERR_MODEL, "out of memory creating a session (arena %lld bytes)",
                     (long long)d->arena_size);
  }
  if (vt_cg_rt_bind(&s->rt, d->offsets, s->arena, &create_err)) {
    vt_so_destroy(s);
    return create_err.code;
  }
  *out = s;
  return VT_OK;
}

int vt_so_run(vt_so_session *s, const vt_tensor *inputs, vt_tensor *outputs) {
  if (!s) return VT_ERR_MODEL;
  if (!enter(s)) return VTOPT_ERR_BUSY;
  if (!inputs || (!outputs && s->g->n_outputs))
    return leave(s, vt_errorf(&s->err, VT_ERR_MODEL, "%s: inputs and outputs must not be NULL", s->g->path));
  return leave(s, vt_cg_rt_run(&s->rt, inputs, outputs, true, &s->err));
}

int vt_so_reset(vt_so_session *s) {
  if (!s) return VT_ERR_MODEL;
  if (!enter(s)) return VTOPT_ERR_BUSY;
  vt_cg_rt_reset(&s->rt);
  return leave(s, VT_OK);
}

int vt_so_set(vt_so_session *s, const char *knob, double value) {
  if (!s) return VT_ERR_MODEL;
  if (!enter(s)) return VTOPT_ERR_BUSY;
  if (!knob) return leave(s, vt_errorf(&s->err, VT_ERR_MODEL, "%s: knob name must not be NULL", s->g->path));
  return leave(s, vt_cg_rt_set_knob(&s->rt, knob, value, &s->err));
}

int vt_so_state_info(const vt_so_session *s, int64_t *bytes, int64_t *updated, int64_t *seen) {
  if (!s) return VT_ERR_MODEL;
  int64_t done = 0, all = 0;
  vt_states_rows(s->rt.state, s->g->n_nodes, &done, &all);
  if (bytes) *bytes = (int64_t)vt_cg_rt_state_bytes(&s->rt);
  if (updated) *updated = done;
  if (seen) *seen = all;
  return VT_OK;
}

const char *vt_so_last_error(const vt_so_session *s) {
  if (s && s == busy_refused) return busy_msg;
  return s ? s->err.msg : create_err.msg;
}

void vt_so_destroy(vt_so_session *s) {
  if (!s) return;
  vt_cg_rt_fini(&s->rt);
  free(s->arena);
  vt_graph_free(s->g);
  free(s);
}

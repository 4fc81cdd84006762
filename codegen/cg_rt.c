/* cg_rt.c — host side of generated code (see cg_rt.h): used by the JIT in process and linked
 * into every fast.so. */
#include "cg_rt.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef void (*kern_fn)(void **bufs, int64_t begin, int64_t end);
typedef struct { kern_fn fn; void **bufs; } par_arg;

static void par_tramp(void *arg, int64_t begin, int64_t end) {
  par_arg *a = arg;
  a->fn(a->bufs, begin, end);
}

void vt_jit_host_par(void *rt, void (*fn)(void **bufs, int64_t begin, int64_t end), void **bufs, int64_t n) {
  vt_cg_rt *r = rt;
  par_arg a = {fn, bufs};
  vt_pool_for(r->pool, n, par_tramp, &a);
}

/* ---------- profile ---------- */
void vt_jit_host_prof(void *rt, int32_t gi, const char *label) {
  vt_cg_rt *r = rt;
  double t = now_ms();
  if (r->prof_cur >= 0 && r->prof_cur < r->n_prof) r->prof[r->prof_cur].ms += t - r->prof_t0;
  r->prof_cur = -1;
  if (gi < 0) { r->prof_runs++; return; }
  if (gi >= r->n_prof) {
    struct vt_cg_prof *p = realloc(r->prof, (size_t)(gi + 1) * sizeof *p);
    if (!p) return;   /* profiling is best effort */
    memset(p + r->n_prof, 0, (size_t)(gi + 1 - r->n_prof) * sizeof *p);
    r->prof = p;
    r->n_prof = gi + 1;
  }
  if (!r->prof[gi].label && label) r->prof[gi].label = strdup(label);
  r->prof_cur = gi;
  r->prof_t0 = now_ms();
}

static int cmp_prof_desc(const void *a, const void *b) {
  double x = ((const struct vt_cg_prof *)a)->ms, y = ((const struct vt_cg_prof *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

void vt_cg_rt_prof_print(const vt_cg_rt *rt, FILE *f) {
  if (!rt->prof_runs || !rt->n_prof) return;
  struct vt_cg_prof *s = malloc((size_t)rt->n_prof * sizeof *s);
  struct { char kind[16]; double ms; int n; } kinds[16];
  int nk = 0;
  double total = 0;
  if (!s) return;
  memcpy(s, rt->prof, (size_t)rt->n_prof * sizeof *s);
  for (int32_t i = 0; i < rt->n_prof; i++) {
    total += s[i].ms;
    char k[16] = "?";
    if (s[i].label) sscanf(s[i].label, "%15s", k);
    int j = 0;
    while (j < nk && strcmp(kinds[j].kind, k)) j++;
    if (j == nk && nk < 16) { snprintf(kinds[nk].kind, sizeof kinds[nk].kind, "%s", k); kinds[nk].ms = 0; kinds[nk++].n = 0; }
    if (j < nk) { kinds[j].ms += s[i].ms; kinds[j].n++; }
  }
  double runs = (double)rt->prof_runs;
  fprintf(f, "profile: %lld runs, %.2f ms per run in %d groups\n", (long long)rt->prof_runs, total / runs, rt->n_prof);
  for (int j = 0; j < nk; j++)
    fprintf(f, "  %-12s %4d groups %10.2f ms/run %5.1f%%\n", kinds[j].kind, kinds[j].n, kinds[j].ms / runs,
            total > 0 ? 100.0 * kinds[j].ms / total : 0.0);
  qsort(s, (size_t)rt->n_prof, sizeof *s, cmp_prof_desc);
  const char *pe = getenv("VTOPT_PROFILE");   /* a number above 1: how many groups to list */
  int top = pe && atoi(pe) > 1 ? atoi(pe) : 30;
  fprintf(f, "  slowest groups (ms/run, share):\n");
  for (int32_t i = 0; i < rt->n_prof && i < top; i++)
    fprintf(f, "  %10.3f %5.1f%%  %s\n", s[i].ms / runs, total > 0 ? 100.0 * s[i].ms / total : 0.0,
            s[i].label ? s[i].label : "?");
  free(s);
}

/* ---------- session ---------- */
static bool dim_has_sym(const vt_graph *g, vt_dim d, int32_t sym) {
  if (vt_dim_is_const(d)) return false;
  int32_t s = vt_dim_sym(d);
  if (s == sym) return true;
  if (s >= g->n_syms || g->syms[s].kind == VT_SYM_NAMED) return false;
  return dim_has_sym(g, g->syms[s].a, sym) || dim_has_sym(g, g->syms[s].b, sym);
}

void vt_cg_sym_defs(const vt_graph *g, int32_t *def) {
  for (int32_t s = 0; s < g->n_syms; s++) {
    def[s] = -1;
    if (g->syms[s].kind != VT_SYM_NAMED) continue;
    bool input = false;
    for (int32_t i = 0; i < g->n_inputs && !input; i++) {
      const vt_value *v = &g->values[g->inputs[i]];
      for (int32_t d = 0; d < v->rank; d++) input |= dim_has_sym(g, v->dims[d], s);
    }
    for (int32_t ni = 0; ni < g->n_nodes && !input && def[s] < 0; ni++) {
      const vt_node *n = &g->nodes[ni];
      for (int32_t o = 0; o < n->n_out && def[s] < 0; o++) {
        if (n->out[o] < 0) continue;
        const vt_value *v = &g->values[n->out[o]];
        for (int32_t d = 0; d < v->rank; d++)
          if (dim_has_sym(g, v->dims[d], s)) def[s] = ni;
      }
    }
  }
}

int64_t vt_cg_rt_dim(const vt_cg_rt *rt, vt_dim d) {
  if (vt_dim_is_const(d)) return d;
  int32_t s = vt_dim_sym(d);
  if (s >= rt->g->n_syms) return -1;
  const vt_sym *sy = &rt->g->syms[s];
  if (sy->kind == VT_SYM_NAMED) return rt->dims[s];
  int64_t a = vt_cg_rt_dim(rt, sy->a), b = vt_cg_rt_dim(rt, sy->b);
  if (a < 0 || b < 0) return -1;
  switch (sy->kind) {
  case VT_SYM_ADD: return a + b;
  case VT_SYM_SUB: return a - b;
  case VT_SYM_MUL: return a * b;
  case VT_SYM_DIV: return b ? a / b : -1;
  case VT_SYM_CEILDIV: return b ? (a + b - 1) / b : -1;
  case VT_SYM_MOD: return b ? a % b : -1;
  case VT_SYM_MAX: return a > b ? a : b;
  case VT_SYM_MIN: return a < b ? a : b;
  default: return -1;
  }
}

int vt_cg_rt_init(vt_cg_rt *rt, const vt_graph *g, int threads, vt_error *e) {
  memset(rt, 0, sizeof *rt);
  rt->g = g;
  rt->prof_cur = -1;
  rt->bufs = calloc((size_t)g->n_values + 1, sizeof *rt->bufs);
  rt->state = calloc((size_t)g->n_nodes + 1, sizeof *rt->state);
  rt->dims = malloc(((size_t)g->n_syms + 1) * sizeof *rt->dims);
  rt->sym_def = malloc(((size_t)g->n_syms + 1) * sizeof *rt->sym_def);
  rt->cap = calloc((size_t)g->n_values + 1, sizeof *rt->cap);
  if (!rt->bufs || !rt->state || !rt->dims || !rt->sym_def || !rt->cap) {
    vt_cg_rt_fini(rt);
    return vt_errorf(e, VT_ERR_MODEL, "out of memory creating a session");
  }
  for (int32_t s = 0; s < g->n_syms; s++) rt->dims[s] = -1;
  vt_cg_sym_defs(g, rt->sym_def);
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &g->values[v];
    int64_t n = val->rank >= 0 ? (int64_t)vt_dtype_size(val->dtype) : 0;
    for (int32_t d = 0; d < val->rank && n > 0; d++) {
      int64_t u = vt_dim_upper(g, val->dims[d]);
      n = u < 0 ? 0 : n * u;
    }
    rt->cap[v] = n;
  }
  rt->bufs[g->n_values] = rt->dims;
  rt->pool = vt_pool_new(threads);
  if (!rt->pool) {
    vt_cg_rt_fini(rt);
    return vt_errorf(e, VT_ERR_MODEL, "cannot create the thread pool");
  }
  return VT_OK;
}

void vt_cg_rt_fini(vt_cg_rt *rt) {
  if (!rt) return;
  vt_cg_rt_prof_print(rt, stderr);
  for (int32_t i = 0; i < rt->n_prof; i++) free(rt->prof[i].label);
  free(rt->prof);
  if (rt->g) vt_states_free(rt->state, rt->g->n_nodes);
  vt_pool_free(rt->pool);
  free(rt->bufs);
  free(rt->state);
  free(rt->dims);
  free(rt->sym_def);
  free(rt->cap);
  free(rt->persist);
  memset(rt, 0, sizeof *rt);
}

int vt_cg_rt_bind(vt_cg_rt *rt, const int64_t *off, void *arena, vt_error *e) {
  const vt_graph *g = rt->g;
  int64_t pb = 0;
  for (int32_t v = 0; v < g->n_values; v++)
    if (off[v] <= VT_CG_PERSIST && VT_CG_PERSIST - off[v] + rt->cap[v] > pb) pb = VT_CG_PERSIST - off[v] + rt->cap[v];
  free(rt->persist);
  rt->persist = NULL;
  rt->persist_bytes = pb;
  if (pb > 0) {
    size_t n = ((size_t)pb + 63) / 64 * 64;
    rt->persist = aligned_alloc(64, n);
    if (!rt->persist)
      return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory for the session's persistent buffers (%lld bytes)", g->path,
                       (long long)pb);
    memset(rt->persist, 0, n);
  }
  for (int32_t v = 0; v < g->n_values; v++) {
    if (off[v] >= 0) rt->bufs[v] = (char *)arena + off[v];
    else if (off[v] <= VT_CG_PERSIST) rt->bufs[v] = (char *)rt->persist + (VT_CG_PERSIST - off[v]);
    else if ((g->values[v].flags & VT_VAL_CONST) && g->values[v].cdata) rt->bufs[v] = g->values[v].cdata->data;
  }
  return VT_OK;
}

size_t vt_cg_rt_state_bytes(const vt_cg_rt *rt) {
  return vt_states_bytes(rt->state, rt->g->n_nodes) + (size_t)rt->persist_bytes;
}

void vt_cg_rt_reset(vt_cg_rt *rt) { vt_states_reset(rt->state, rt->g->n_nodes); }

int vt_cg_rt_set_knob(vt_cg_rt *rt, const char *name, double value, vt_error *e) {
  char valid[512];
  if (!name || !vt_graph_has_knob(rt->g, name)) {
    int n = vt_graph_knobs(rt->g, valid, sizeof valid);
    if (!n) return vt_errorf(e, VT_ERR_MODEL, "%s: unknown knob '%s': this model has no runtime knobs", rt->g->path,
                             name ? name : "(null)");
    return vt_errorf(e, VT_ERR_MODEL, "%s: unknown knob '%s': this model's knobs are %s", rt->g->path,
                     name ? name : "(null)", valid);
  }
  if (vt_knobs_set(&rt->knobs, name, value)) return vt_errorf(e, VT_ERR_MODEL, "%s: too many knobs", rt->g->path);
  return VT_OK;
}

/* ---------- host nodes ---------- */
/* Ops whose kernels write every element of their (fully shaped) outputs: their buffers are not
 * zeroed first. Every other kernel gets zeroed outputs, as in the interpreter. */
static bool writes_all(int op) {
  return (vt_ops[op].flags & VT_OPF_ELEMENTWISE) || op == VT_OP_TokenBuffer || op == VT_OP_TokenUnmerge;
}

/* After node ni ran: checks output o (tensor t) against its compiled type, records the run-time
 * symbols ni defines, and moves the data into the value's buffer when the kernel put it elsewhere
 * (then *copied). */
static int finish_output(vt_cg_rt *r, int32_t ni, int32_t o, vt_tensor *t, bool *copied) {
  const vt_graph *g = r->g;
  int32_t v = g->nodes[ni].out[o];
  const vt_value *val = &g->values[v];
  char buf[256];
  bool skip = !r->bufs[v];   /* not needed (vt_kctx.out_skip): the shape only */
  bool ok = t->dtype == val->dtype && t->rank == val->rank && (skip || t->data || vt_tensor_numel(t) == 0);
  for (int pass = 0; pass < 2 && ok; pass++)   /* named symbols first, then expressions over them */
    for (int32_t d = 0; d < val->rank && ok; d++) {
      vt_dim vd = val->dims[d];
      if (vt_dim_is_const(vd)) { ok = pass || t->dims[d] == vd; continue; }
      int32_t s = vt_dim_sym(vd);
      bool defines = g->syms[s].kind == VT_SYM_NAMED && r->sym_def[s] == ni;
      if (defines && pass == 0) {
        int64_t ub = vt_dim_upper(g, vd);
        if (t->dims[d] < 0 || (ub >= 0 && t->dims[d] > ub))
          return vt_node_errorf(g, ni, r->err, "output %d: dim %d is %lld, above its bound %lld (%s)", o, d,
                                (long long)t->dims[d], (long long)ub, vt_value_type_str(g, val, buf, sizeof buf));
        r->dims[s] = t->dims[d];
      } else if (!defines && pass == 1) {
        int64_t want = vt_cg_rt_dim(r, vd);
        ok = want < 0 || want == t->dims[d];
      }
    }
  if (!ok)
    return vt_node_errorf(g, ni, r->err, "the kernel produced a different type than compiled for (%s)",
                          vt_value_type_str(g, val, buf, sizeof buf));
  size_t nb = vt_tensor_nbytes(t);
  if (skip) return VT_OK;   /* (a kernel that wrote it anyway into its own memory: freed by the caller) */
  if ((int64_t)nb > r->cap[v])
    return vt_node_errorf(g, ni, r->err, "output %d has %zu bytes, its compiled buffer %lld", o, nb,
                          (long long)r->cap[v]);
  if (t->data != r->bufs[v]) {
    if (nb) memcpy(r->bufs[v], t->data, nb);
    vt_tensor_free(t);
    *copied = true;
  }
  return VT_OK;
}

/* Runs node ni with the interpreter's kernel on the generated code's buffers. Outputs are bound to
 * their buffers and the kernel is called directly, with the session's state slot and knobs; a
 * node with an absent (unnamed) output, whose shape the compiled graph does not know, goes
 * through vt_run_node (allocated outputs, copied in). */
int32_t vt_jit_host_node(void *rt, int32_t ni, const void *const *fns) {
  vt_cg_rt *r = rt;
  const vt_graph *g = r->g;
  const vt_node *n = &g->nodes[ni];
  vt_tensor tin[n->n_in + 1], tout[n->n_out + 1];
  const vt_tensor *in[n->n_in + 1];
  vt_tensor *out[n->n_out + 1];
  int64_t cap[n->n_out + 1];
  double t0 = now_ms();
  int rc = VT_OK;
  bool direct = true, copied = false;
  uint32_t skip = 0;   /* outputs without a buffer: nobody reads their data (vt_kctx.out_skip) */
  for (int32_t o = 0; o < n->n_out; o++) direct &= n->out[o] >= 0;
  for (int32_t k = 0; k < n->n_in && rc == VT_OK; k++) {
    int32_t v = n->in[k];
    in[k] = NULL;
    if (v < 0) continue;
    const vt_value *val = &g->values[v];
    if ((val->flags & VT_VAL_CONST) && val->cdata) { in[k] = val->cdata; continue; }
    memset(&tin[k], 0, sizeof tin[k]);
    tin[k].dtype = val->dtype;
    tin[k].rank = val->rank;
    for (int32_t d = 0; d < val->rank; d++)
      if ((tin[k].dims[d] = vt_cg_rt_dim(r, val->dims[d])) < 0)
        rc = vt_node_errorf(g, ni, r->err, "input %d: dim %d is not known at run time", k, d);
    tin[k].data = r->bufs[v];
    in[k] = &tin[k];
  }
  for (int32_t o = 0; o < n->n_out && rc == VT_OK; o++) {
    memset(&tout[o], 0, sizeof tout[o]);
    out[o] = &tout[o];
    int32_t v = n->out[o];
    cap[o] = 0;
    if (!direct) continue;
    const vt_value *val = &g->values[v];
    bool defines = false;   /* the shape is the kernel's to choose (in the bound buffer) */
    for (int32_t s = 0; s < g->n_syms; s++)
      if (r->sym_def[s] == ni)
        for (int32_t d = 0; d < val->rank; d++) defines |= dim_has_sym(g, val->dims[d], s);
    tout[o].dtype = val->dtype;
    tout[o].data = r->bufs[v];
    if (!tout[o].data && o < 32) skip |= 1u << o;
    cap[o] = r->cap[v];
    if (defines) { tout[o].rank = -1; continue; }
    tout[o].rank = val->rank;
    for (int32_t d = 0; d < val->rank; d++) tout[o].dims[d] = vt_cg_rt_dim(r, val->dims[d]);
    if (!writes_all(n->op) && tout[o].data) memset(tout[o].data, 0, vt_tensor_nbytes(&tout[o]));
  }
  if (rc == VT_OK && direct) {
    vt_kctx kc = {.g = g, .node_idx = ni, .node = n, .n_in = n->n_in, .n_out = n->n_out, .in = in, .out = out,
                  .pool = r->pool, .err = r->err,
                  .state = (vt_ops[n->op].flags & VT_OPF_STATEFUL) ? &r->state[ni] : NULL,
                  .knobs = &r->knobs, .sig = &r->sig, .out_cap = cap, .out_skip = skip, .fns = fns};
    rc = vt_kernels[n->op](&kc);
    if (rc != VT_OK && r->err && r->err->code == VT_OK) vt_node_errorf(g, ni, r->err, "kernel failed");
  } else if (rc == VT_OK) {
    rc = vt_run_node(g, ni, in, out, r->pool, r->err);
    copied = true;
  }
  for (int32_t o = 0; o < n->n_out && rc == VT_OK; o++)
    if (n->out[o] >= 0) rc = finish_output(r, ni, o, &tout[o], &copied);
  for (int32_t o = 0; o < n->n_out; o++) vt_tensor_free(&tout[o]);
  if (copied) r->last_copied++;
  else r->last_direct++;
  r->last_fallback_ms += now_ms() - t0;
  return rc;
}

static int check_tensor(const vt_graph *g, const vt_value *v, const vt_tensor *t, const char *what, vt_error *e) {
  char want[256];
  vt_value_type_str(g, v, want, sizeof want);
  if (t->dtype != v->dtype || t->rank != v->rank)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s '%s': got %s of rank %d, the model wants %s", g->path, what, v->name,
                     vt_dtype_name(t->dtype), t->rank, want);
  for (int32_t d = 0; d < v->rank; d++)
    if (t->dims[d] != v->dims[d])
      return vt_errorf(e, VT_ERR_MODEL, "%s: %s '%s': dim %d is %lld, the compiled model wants %s", g->path, what,
                       v->name, d, (long long)t->dims[d], want);
  if (!t->data && vt_tensor_numel(t) != 0)
    return vt_errorf(e, VT_ERR_MODEL, "%s: %s '%s' has no data", g->path, what, v->name);
  return VT_OK;
}

int vt_cg_rt_run(vt_cg_rt *rt, const vt_tensor *inputs, vt_tensor *outputs, bool caller_outputs, vt_error *e) {
  const vt_graph *g = rt->g;
  int rc = VT_OK;
  rt->sig.run++;
  if (!caller_outputs)
    for (int32_t i = 0; i < g->n_outputs; i++) memset(&outputs[i], 0, sizeof outputs[i]);
  for (int32_t i = 0; i < g->n_inputs; i++) {
    if ((rc = check_tensor(g, &g->values[g->inputs[i]], &inputs[i], "input", e))) return rc;
  }
  for (int32_t i = 0; i < g->n_outputs && caller_outputs; i++)
    if ((rc = check_tensor(g, &g->values[g->outputs[i]], &outputs[i], "output", e))) return rc;
  for (int32_t i = 0; i < g->n_inputs; i++) rt->bufs[g->inputs[i]] = inputs[i].data;
  /* the first listing of an output produced by a node is written in place */
  for (int32_t i = 0; i < g->n_outputs && rc == VT_OK; i++) {
    const vt_value *v = &g->values[g->outputs[i]];
    if (!caller_outputs) {
      int64_t dims[VT_MAX_RANK];
      for (int32_t d = 0; d < v->rank; d++) dims[d] = v->dims[d];
      rc = vt_tensor_alloc(&outputs[i], v->dtype, v->rank, dims, e);
    }
    bool first = true;
    for (int32_t k = 0; k < i; k++) first &= g->outputs[k] != g->outputs[i];
    if (rc == VT_OK && first && v->producer >= 0) rt->bufs[g->outputs[i]] = outputs[i].data;
  }
  if (rc == VT_OK) {
    rt->err = e;
    rt->last_fallback_ms = 0;
    rt->last_direct = rt->last_copied = 0;
    double t0 = now_ms();
    rc = rt->entry(rt->bufs, rt);
    rt->last_run_ms = now_ms() - t0;
    rt->err = NULL;
    if (rc != VT_OK && e && e->code == VT_OK) vt_errorf(e, rc, "%s: compiled model failed", g->path);
  }
  for (int32_t i = 0; i < g->n_outputs && rc == VT_OK; i++) {
    const void *src = rt->bufs[g->outputs[i]];
    size_t nb = vt_tensor_nbytes(&outputs[i]);
    if (src && src != outputs[i].data && nb) memmove(outputs[i].data, src, nb);
  }
  for (int32_t i = 0; i < g->n_inputs; i++) rt->bufs[g->inputs[i]] = NULL;
  for (int32_t i = 0; i < g->n_outputs; i++)
    if (g->values[g->outputs[i]].producer >= 0) rt->bufs[g->outputs[i]] = NULL;
  if (rc != VT_OK && !caller_outputs)
    for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&outputs[i]);
  return rc;
}

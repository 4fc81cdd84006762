/* interp.c — the reference interpreter: runs a graph node by node with the reference kernels.
 * Output shapes come from the ops' infer functions run on concrete inputs; intermediate tensors
 * are freed after their last use. Inputs and constants are borrowed, never copied. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP(id, name, dom, minin, maxin, minout, maxout, flags, schema) int vt_kernel_##id(vt_kctx *k);
#include "ops.def"
#undef OP

const vt_kernel_fn vt_kernels[VT_OP_COUNT + 1] = {
#define OP(id, name, dom, minin, maxin, minout, maxout, flags, schema) vt_kernel_##id,
#include "ops.def"
#undef OP
  0,
};

int vt_kernel_fail(vt_kctx *k, const char *fmt, ...) {
  char msg[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vt_node_errorf(k->g, k->node_idx, k->err, "%s", msg);
}

void vt_strides(int32_t rank, const int64_t *dims, int64_t *strides) {
  int64_t s = 1;
  for (int32_t i = rank - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
}

struct vt_interp {
  const vt_graph *g;
  vt_pool *pool;
  int32_t *last_use;    /* per value: index of the last node reading it, -1 if none */
  void **state;         /* per node: state of stateful ops (vt_state header), kept across runs */
  vt_knobs knobs;
  vt_stream_sig sig;
};

/* ---------- knobs and state, shared with compiled sessions (codegen/cg_rt.c) ---------- */
/* Every knob a kernel reads (vt_kctx_knob), by op: the names sessions accept for a graph. */
static const struct { int op; const char *name; } knob_table[] = {
  {VT_OP_TokenGate, "eventful.r"},
  {VT_OP_TokenGate, "eventful.h"},
  {VT_OP_TokenGate, "eventful.fraction"},
  {VT_OP_TokenGate, "eventful.cut"},
  {VT_OP_TokenGate, "eventful.refresh"},
  {VT_OP_TopKSelect, "topk.step"},
};

int vt_graph_knobs(const vt_graph *g, char *buf, size_t n) {
  int count = 0;
  size_t len = 0;
  if (buf && n) buf[0] = 0;
  for (size_t t = 0; t < sizeof knob_table / sizeof knob_table[0]; t++) {
    bool present = false;
    for (int32_t i = 0; i < g->n_nodes && !present; i++) present = g->nodes[i].op == knob_table[t].op;
    if (!present) continue;
    if (buf && len < n) len += (size_t)snprintf(buf + len, n - len, "%s%s", count ? ", " : "", knob_table[t].name);
    count++;
  }
  return count;
}

bool vt_graph_has_knob(const vt_graph *g, const char *name) {
  for (size_t t = 0; name && t < sizeof knob_table / sizeof knob_table[0]; t++) {
    if (strcmp(knob_table[t].name, name)) continue;
    for (int32_t i = 0; i < g->n_nodes; i++)
      if (g->nodes[i].op == knob_table[t].op) return true;
  }
  return false;
}

int vt_knobs_set(vt_knobs *kb, const char *name, double value) {
  if (!kb || !name || strlen(name) >= sizeof kb->k[0].name) return VT_ERR_MODEL;
  for (int32_t i = 0; i < kb->n; i++)
    if (strcmp(kb->k[i].name, name) == 0) { kb->k[i].value = value; return VT_OK; }
  if (kb->n >= VT_MAX_KNOBS) return VT_ERR_MODEL;
  strcpy(kb->k[kb->n].name, name);
  kb->k[kb->n++].value = value;
  return VT_OK;
}

double vt_kctx_knob(const vt_kctx *k, const char *name, double dflt) {
  const vt_knobs *kb = k ? k->knobs : NULL;
  if (!kb) return dflt;
  for (int32_t i = 0; i < kb->n; i++)
    if (strcmp(kb->k[i].name, name) == 0) return kb->k[i].value;
  return dflt;
}

void vt_states_free(void **state, int32_t n) {
  for (int32_t i = 0; state && i < n; i++)
    if (state[i]) {
      vt_state *st = state[i];
      if (st->free) st->free(st);
      state[i] = NULL;
    }
}

void vt_states_reset(void **state, int32_t n) {
  for (int32_t i = 0; state && i < n; i++)
    if (state[i]) {
      vt_state *st = state[i];
      if (st->flush) {          /* keeps its allocation; the next run recomputes everything */
        st->flush(st);
        continue;
      }
      if (st->free) st->free(st);
      state[i] = NULL;
    }
}

int vt_kctx_output(vt_kctx *k, int32_t o, vt_dtype dt, int32_t rank, const int64_t *dims) {
  vt_tensor *t = k->out[o];
  if (!k->out_cap || !t->data || t->owned) return vt_tensor_alloc(t, dt, rank, dims, k->err);
  size_t es = vt_dtype_size(dt);
  int64_t numel = rank >= 0 && rank <= VT_MAX_RANK ? vt_shape_numel(rank, dims) : -1;
  if (es == 0 || numel < 0 || (uint64_t)numel > (uint64_t)k->out_cap[o] / es)
    return vt_kernel_fail(k, "output %d (%lld elements of %s) exceeds its compiled buffer of %lld bytes (the bound "
                             "of its shape)", o, (long long)numel, vt_dtype_name(dt), (long long)k->out_cap[o]);
  t->dtype = dt;
  t->rank = rank;
  for (int32_t d = 0; d < rank; d++) t->dims[d] = dims[d];
  memset(t->data, 0, (size_t)numel * es);
  return VT_OK;
}

int vt_interp_set_knob(vt_interp *it, const char *name, double value) {
  return it ? vt_knobs_set(&it->knobs, name, value) : VT_ERR_MODEL;
}

int vt_interp_reset(vt_interp *it) {
  if (!it) return VT_ERR_MODEL;
  vt_states_reset(it->state, it->g->n_nodes);
  return VT_OK;
}

void vt_states_rows(void *const *state, int32_t n, int64_t *done, int64_t *seen) {
  *done = *seen = 0;
  for (int32_t i = 0; state && i < n; i++)
    if (state[i]) {
      *done += ((const vt_state *)state[i])->rows_done;
      *seen += ((const vt_state *)state[i])->rows_seen;
    }
}

void vt_interp_state_rows(const vt_interp *it, int64_t *done, int64_t *seen) {
  vt_states_rows(it ? it->state : NULL, it ? it->g->n_nodes : 0, done, seen);
}

size_t vt_states_bytes(void *const *state, int32_t n) {
  size_t b = 0;
  for (int32_t i = 0; state && i < n; i++)
    if (state[i]) b += ((const vt_state *)state[i])->bytes;
  return b;
}

size_t vt_interp_state_bytes(const vt_interp *it) {
  return vt_states_bytes(it ? it->state : NULL, it ? it->g->n_nodes : 0);
}

vt_interp *vt_interp_new(const vt_graph *g, int nthreads, vt_error *e) {
  vt_interp *it = calloc(1, sizeof *it);
  if (!it) { vt_errorf(e, VT_ERR_MODEL, "out of memory"); return NULL; }
  it->g = g;
  it->last_use = malloc((size_t)(g->n_values + 1) * sizeof *it->last_use);
  it->pool = vt_pool_new(nthreads);
  it->state = calloc((size_t)g->n_nodes + 1, sizeof *it->state);
  if (!it->last_use || !it->pool || !it->state) {
    vt_interp_free(it);
    vt_errorf(e, VT_ERR_MODEL, "out of memory creating the interpreter");
    return NULL;
  }
  for (int32_t v = 0; v < g->n_values; v++) it->last_use[v] = -1;
  for (int32_t i = 0; i < g->n_nodes; i++)
    for (int32_t k = 0; k < g->nodes[i].n_in; k++)
      if (g->nodes[i].in[k] >= 0) it->last_use[g->nodes[i].in[k]] = i;
  return it;
}

void vt_interp_free(vt_interp *it) {
  if (!it) return;
  vt_states_free(it->state, it->g->n_nodes);
  free(it->state);
  vt_pool_free(it->pool);
  free(it->last_use);
  free(it);
}

/* Runs node `ni` of g on concrete inputs: infer output shapes, allocate, call the kernel, check. */
static int run_node(const vt_graph *g, int32_t ni, const vt_tensor *const *in, vt_tensor *const *out,
                    vt_pool *pool, vt_interp *it, vt_error *e) {
  const vt_node *n = &g->nodes[ni];
  vt_infer_in desc[n->n_in + 1];
  vt_infer_out *res = calloc((size_t)n->n_out + 1, sizeof *res);
  vt_dim *kbuf = malloc(((size_t)n->n_in + 1) * VT_MAX_KNOWN * sizeof *kbuf);
  if (!res || !kbuf) {
    free(res); free(kbuf);
    return vt_node_errorf(g, ni, e, "out of memory");
  }
  memset(desc, 0, sizeof desc);
  for (int32_t k = 0; k < n->n_in; k++) {
    const vt_tensor *t = in[k];
    if (!t) continue;
    desc[k].present = true;
    desc[k].dtype = t->dtype;
    desc[k].rank = t->rank;
    desc[k].dims = t->dims;
    desc[k].data = t;
    if ((t->dtype == VT_I64 || t->dtype == VT_I32) && t->rank <= 1) {
      int64_t ne = vt_tensor_numel(t);
      if (ne > 0 && ne <= VT_MAX_KNOWN) {
        vt_dim *kb = kbuf + (size_t)k * VT_MAX_KNOWN;
        for (int64_t j = 0; j < ne; j++) {
          int64_t x = vt_tensor_get_i64(t, j);
          kb[j] = x <= VT_SYM_BASE ? VT_SYM_BASE + 1 : x;
        }
        desc[k].known = kb;
        desc[k].nknown = (int32_t)ne;
      }
    }
  }
  int rc = vt_infer_node((vt_graph *)g, ni, desc, res, e);
  for (int32_t o = 0; o < n->n_out && rc == VT_OK; o++) {
    vt_tensor_free(out[o]);
    out[o]->rank = -1;
    bool concrete = res[o].rank >= 0 && res[o].dtype != VT_UNDEFINED;
    for (int32_t d = 0; d < res[o].rank && concrete; d++)
      if (!vt_dim_is_const(res[o].dims[d])) concrete = false;
    if (concrete) {
      int64_t dims[VT_MAX_RANK];
      for (int32_t d = 0; d < res[o].rank; d++) dims[d] = res[o].dims[d];
      rc = vt_tensor_alloc(out[o], res[o].dtype, res[o].rank, dims, e);
      if (rc) {
        vt_error_clear(e);
        rc = vt_node_errorf(g, ni, e, "cannot allocate output %d (%lld elements)", o,
                            (long long)vt_shape_numel(res[o].rank, dims));
      }
    } else {
      out[o]->dtype = res[o].dtype;
    }
  }
  free(res);
  free(kbuf);
  if (rc != VT_OK) return rc;
  vt_kctx kc = {.g = g, .node_idx = ni, .node = n, .n_in = n->n_in, .n_out = n->n_out,
                .in = in, .out = out, .pool = pool, .err = e,
                .state = it && (vt_ops[n->op].flags & VT_OPF_STATEFUL) ? &it->state[ni] : NULL,
                .knobs = it ? &it->knobs : NULL, .sig = it ? &it->sig : NULL};
  rc = vt_kernels[n->op](&kc);
  if (rc != VT_OK) {
    if (e && e->code == VT_OK) vt_node_errorf(g, ni, e, "kernel failed");
    return rc;
  }
  for (int32_t o = 0; o < n->n_out; o++)
    if (out[o]->rank < 0 || (!out[o]->data && vt_tensor_numel(out[o]) != 0))
      return vt_errorf(e, VT_ERR_INTERNAL, "%s: node '%s' (%s): kernel left output %d unset", g->path,
                       n->name, vt_ops[n->op].name, o);
  return VT_OK;
}

int vt_run_node(const vt_graph *g, int32_t node, const vt_tensor *const *in, vt_tensor *const *out,
                vt_pool *pool, vt_error *e) {
  return run_node(g, node, in, out, pool, NULL, e);
}

static int check_input(const vt_graph *g, int32_t i, const vt_tensor *t, int64_t *bind, vt_error *e) {
  const vt_value *v = &g->values[g->inputs[i]];
  char want[256];
  vt_value_type_str(g, v, want, sizeof want);
  if (t->dtype != v->dtype)
    return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s': got dtype %s, the model wants %s", g->path, v->name,
                     vt_dtype_name(t->dtype), want);
  if (v->rank >= 0 && t->rank != v->rank)
    return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s': got rank %d, the model wants %s", g->path, v->name,
                     t->rank, want);
  if (!t->data && vt_tensor_numel(t) != 0)
    return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s' has no data", g->path, v->name);
  for (int32_t d = 0; d < v->rank; d++) {
    vt_dim want_d = v->dims[d];
    if (vt_dim_is_const(want_d)) {
      if (t->dims[d] != want_d)
        return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s': dim %d is %lld, the model wants %s", g->path,
                         v->name, d, (long long)t->dims[d], want);
    } else {
      int32_t s = vt_dim_sym(want_d);
      if (g->syms[s].kind != VT_SYM_NAMED) continue;
      if (bind[s] >= 0 && bind[s] != t->dims[d]) {
        char sb[128];
        return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s': dim %d is %lld but %s is already %lld from another input",
                         g->path, v->name, d, (long long)t->dims[d], vt_dim_str(g, want_d, sb, sizeof sb),
                         (long long)bind[s]);
      }
      bind[s] = t->dims[d];
    }
  }
  return VT_OK;
}

int vt_interp_check_input(const vt_graph *g, int32_t i, const vt_tensor *t, vt_error *e) {
  int64_t *bind = malloc(((size_t)g->n_syms + 1) * sizeof *bind);
  if (!bind) return vt_errorf(e, VT_ERR_MODEL, "out of memory");
  for (int32_t s = 0; s < g->n_syms; s++) bind[s] = -1;
  int rc = check_input(g, i, t, bind, e);
  free(bind);
  return rc;
}

int vt_interp_run(vt_interp *it, const vt_tensor *inputs, vt_tensor *outputs, vt_error *e) {
  const vt_graph *g = it->g;
  int rc = VT_OK;
  it->sig.run++;
  vt_tensor *vals = calloc((size_t)g->n_values + 1, sizeof *vals);
  int64_t *bind = malloc(((size_t)g->n_syms + 1) * sizeof *bind);
  int32_t maxio = 1;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].n_in > maxio) maxio = g->nodes[i].n_in;
    if (g->nodes[i].n_out > maxio) maxio = g->nodes[i].n_out;
  }
  const vt_tensor **in = calloc((size_t)maxio + 1, sizeof *in);
  vt_tensor **out = calloc((size_t)maxio + 1, sizeof *out);
  vt_tensor *scratch = calloc((size_t)maxio + 1, sizeof *scratch);   /* for unused outputs */
  if (!vals || !bind || !in || !out || !scratch) {
    rc = vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", g->path);
    goto done;
  }
  for (int32_t i = 0; i < g->n_outputs; i++) memset(&outputs[i], 0, sizeof outputs[i]);
  for (int32_t s = 0; s < g->n_syms; s++) bind[s] = -1;
  for (int32_t i = 0; i < g->n_inputs && rc == VT_OK; i++) {
    rc = check_input(g, i, &inputs[i], bind, e);
    if (rc == VT_OK) {
      vals[g->inputs[i]] = inputs[i];
      vals[g->inputs[i]].owned = false;
    }
  }
  for (int32_t v = 0; v < g->n_values; v++)
    if (g->values[v].flags & VT_VAL_CONST) {
      vals[v] = *g->values[v].cdata;
      vals[v].owned = false;
    }
  for (int32_t ni = 0; ni < g->n_nodes && rc == VT_OK; ni++) {
    const vt_node *n = &g->nodes[ni];
    for (int32_t k = 0; k < n->n_in; k++) in[k] = n->in[k] >= 0 ? &vals[n->in[k]] : NULL;
    for (int32_t o = 0; o < n->n_out; o++) out[o] = n->out[o] >= 0 ? &vals[n->out[o]] : &scratch[o];
    rc = run_node(g, ni, in, out, it->pool, it, e);
    for (int32_t o = 0; o < n->n_out; o++) vt_tensor_free(&scratch[o]);
    /* free what is no longer needed */
    for (int32_t k = 0; k < n->n_in; k++) {
      int32_t v = n->in[k];
      if (v >= 0 && it->last_use[v] == ni && !(g->values[v].flags & VT_VAL_OUTPUT)) vt_tensor_free(&vals[v]);
    }
  }
  for (int32_t i = 0; i < g->n_outputs && rc == VT_OK; i++) {
    int32_t v = g->outputs[i];
    vt_tensor *t = &vals[v];
    bool seen_before = false;   /* the same value listed twice as an output */
    for (int32_t j = 0; j < i; j++) if (g->outputs[j] == v) seen_before = true;
    if (t->owned && !seen_before) {
      outputs[i] = *t;
      t->owned = false;
    } else {
      rc = vt_tensor_alloc(&outputs[i], t->dtype, t->rank, t->dims, e);
      if (rc == VT_OK && vt_tensor_nbytes(t)) {
        if (t->dtype == VT_STRING) rc = vt_errorf(e, VT_ERR_MODEL, "%s: string outputs are not supported", g->path);
        else memcpy(outputs[i].data, t->data, vt_tensor_nbytes(t));
      }
    }
  }
  if (rc != VT_OK)
    for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&outputs[i]);
done:
  if (vals)
    for (int32_t v = 0; v < g->n_values; v++) vt_tensor_free(&vals[v]);
  free(vals);
  free(bind);
  free(in);
  free(out);
  free(scratch);
  return rc;
}

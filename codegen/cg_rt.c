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

static int64_t val_numel(const vt_value *v) {
  int64_t d[VT_MAX_RANK];
  for (int32_t i = 0; i < v->rank; i++) d[i] = v->dims[i];
  return vt_shape_numel(v->rank, d);
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

/* Runs node ni with the interpreter's kernel on the generated code's buffers. */
int32_t vt_jit_host_node(void *rt, int32_t ni) {
  vt_cg_rt *r = rt;
  const vt_graph *g = r->g;
  const vt_node *n = &g->nodes[ni];
  vt_tensor tin[n->n_in + 1], tout[n->n_out + 1];
  const vt_tensor *in[n->n_in + 1];
  vt_tensor *out[n->n_out + 1];
  for (int32_t k = 0; k < n->n_in; k++) {
    int32_t v = n->in[k];
    in[k] = NULL;
    if (v < 0) continue;
    const vt_value *val = &g->values[v];
    if ((val->flags & VT_VAL_CONST) && val->cdata) { in[k] = val->cdata; continue; }
    memset(&tin[k], 0, sizeof tin[k]);
    tin[k].dtype = val->dtype;
    tin[k].rank = val->rank;
    for (int32_t d = 0; d < val->rank; d++) tin[k].dims[d] = val->dims[d];
    tin[k].data = r->bufs[v];
    in[k] = &tin[k];
  }
  for (int32_t o = 0; o < n->n_out; o++) {
    memset(&tout[o], 0, sizeof tout[o]);
    out[o] = &tout[o];
  }
  double t0 = now_ms();
  int rc = vt_run_node(g, ni, in, out, r->pool, r->err);
  for (int32_t o = 0; o < n->n_out && rc == VT_OK; o++) {
    int32_t v = n->out[o];
    if (v < 0 || !r->bufs[v]) continue;
    const vt_value *val = &g->values[v];
    size_t want = vt_dtype_size(val->dtype) * (size_t)val_numel(val);
    bool same = tout[o].dtype == val->dtype && tout[o].rank == val->rank;
    for (int32_t d = 0; d < val->rank && same; d++) same = tout[o].dims[d] == val->dims[d];
    if (!same || vt_tensor_nbytes(&tout[o]) != want) {
      char buf[256];
      rc = vt_node_errorf(g, ni, r->err, "the kernel produced a different shape than compiled for (%s)",
                          vt_value_type_str(g, val, buf, sizeof buf));
      break;
    }
    if (want) memcpy(r->bufs[v], tout[o].data, want);
  }
  for (int32_t o = 0; o < n->n_out; o++) vt_tensor_free(&tout[o]);
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

/* kernels_eventful.c — reference kernels for the Eventful ops (rows in ir/ops_eventful.def):
 * TokenGate (per-token error norm against the reference, top-r / threshold / fraction policy,
 * gather, reference scatter) and TokenBuffer (scatter of the updated rows into the kept output).
 * Their state lives in the session's per-node slot (vt_kctx.state) and is allocated on a flush
 * (first call after reset, or a change of N or D), never per frame. float32. */
#include "runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  vt_state hdr;
  int64_t n, d;      /* tokens, channels */
  float *ref;        /* [n, d]: gate reference u, or buffer contents b */
  float *norm;       /* [n] scratch (gate only) */
  int64_t *order;    /* [n] scratch (gate only): selected tokens */
  struct evt_key { float v; int64_t i; } *keys;   /* [n] scratch (gate only) */
} evt_state;

static void evt_free(void *p) {
  evt_state *s = p;
  if (!s) return;
  free(s->ref);
  free(s->norm);
  free(s->order);
  free(s->keys);
  free(s);
}

/* The node's state when it has shape [n, d]; else drops it and allocates a new one. */
static evt_state *state_for(vt_kctx *k, int64_t n, int64_t d, bool scratch, bool *fresh) {
  evt_state *s = *k->state;
  *fresh = false;
  if (s && s->n == n && s->d == d) return s;
  if (s) s->hdr.free(s);
  *k->state = NULL;
  if (n < 0 || d < 0 || (d > 0 && n > INT64_MAX / d / (int64_t)sizeof(float))) return NULL;
  s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->hdr.free = evt_free;
  s->n = n;
  s->d = d;
  s->ref = malloc((size_t)(n * d) * sizeof(float) + 1);
  if (scratch) {
    s->norm = malloc((size_t)n * sizeof(float) + 1);
    s->order = malloc((size_t)n * sizeof(int64_t) + 1);
    s->keys = malloc((size_t)n * sizeof *s->keys + 1);
  }
  if (!s->ref || (scratch && (!s->norm || !s->order || !s->keys))) {
    evt_free(s);
    return NULL;
  }
  *k->state = s;
  *fresh = true;
  return s;
}

static int need_state(vt_kctx *k) {
  return vt_kernel_fail(k, "%s is stateful: it runs only inside an interpreter session (vt_interp_run), "
                           "not as a single node", vt_ops[k->node->op].name);
}

/* ---------- TokenGate ---------- */
typedef struct {
  const float *x, *u;
  float *norm;
  int64_t d;
} norm_args;

static void norm_range(void *arg, int64_t begin, int64_t end) {
  norm_args *a = arg;
  for (int64_t i = begin; i < end; i++) {
    const float *x = a->x + i * a->d, *u = a->u + i * a->d;
    double s = 0;
    for (int64_t c = 0; c < a->d; c++) {
      double e = (double)x[c] - (double)u[c];
      s += e * e;
    }
    float v = (float)sqrt(s);
    a->norm[i] = v == v ? v : INFINITY;   /* NaN error: most changed */
  }
}

/* Token order: norm descending, ties by index ascending. */
static int by_norm_desc(const void *pa, const void *pb) {
  const struct evt_key *a = pa, *b = pb;
  if (a->v != b->v) return a->v > b->v ? -1 : 1;
  return a->i < b->i ? -1 : a->i > b->i;
}
static int by_index(const void *pa, const void *pb) {
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  return a < b ? -1 : a > b;
}

/* Top-m selection by a full sort of the n tokens of one frame; the chosen indices ascending. */
static void select_top(evt_state *s, int64_t m) {
  for (int64_t i = 0; i < s->n; i++) s->keys[i] = (struct evt_key){s->norm[i], i};
  qsort(s->keys, (size_t)s->n, sizeof *s->keys, by_norm_desc);
  for (int64_t j = 0; j < m; j++) s->order[j] = s->keys[j].i;
  qsort(s->order, (size_t)m, sizeof *s->order, by_index);
}

int vt_kernel_TokenGate(vt_kctx *k) {
  if (!k->state) return need_state(k);
  const vt_tensor *x = k->in[0];
  if (x->dtype != VT_F32 || x->rank < 2) return vt_kernel_fail(k, "x must be f32 of rank >= 2");
  int64_t d = x->dims[x->rank - 1], numel = vt_tensor_numel(x);
  int64_t n = d > 0 ? numel / d : 0;
  bool fresh;
  evt_state *s = state_for(k, n, d, true, &fresh);
  if (!s) return vt_kernel_fail(k, "out of memory for the gate state (%lld x %lld)", (long long)n, (long long)d);
  const float *xd = x->data;
  int64_t m = n;
  if (fresh) {
    memcpy(s->ref, xd, (size_t)(n * d) * sizeof(float));
    for (int64_t i = 0; i < n; i++) s->order[i] = i;
  } else {
    norm_args na = {.x = xd, .u = s->ref, .norm = s->norm, .d = d};
    vt_pool_for(k->pool, n, norm_range, &na);
    const char *pol = vt_attr_str(k->node, "policy", "topr");
    if (!strcmp(pol, "threshold")) {
      double h = vt_kctx_knob(k, "eventful.h", vt_attr_float(k->node, "h", 0.0f));
      m = 0;
      for (int64_t i = 0; i < n; i++)
        if (s->norm[i] > h) s->order[m++] = i;
    } else {
      if (!strcmp(pol, "fraction")) {
        double f = vt_kctx_knob(k, "eventful.fraction", vt_attr_float(k->node, "fraction", 1.0f));
        if (!(f >= 0 && f <= 1)) return vt_kernel_fail(k, "fraction %g is not in [0,1]", f);
        m = (int64_t)ceil(f * (double)n);
      } else {
        double r = vt_kctx_knob(k, "eventful.r", (double)vt_attr_int(k->node, "r", 0));
        if (!(r >= 0)) return vt_kernel_fail(k, "r %g must be >= 0", r);
        m = r >= (double)n ? n : (int64_t)r;
      }
      if (m > n) m = n;
      select_top(s, m);
    }
  }
  int64_t od[2] = {m, d}, id[1] = {m};
  int rc = vt_kctx_output(k, 0, VT_F32, 2, od);
  if (rc == VT_OK) rc = vt_kctx_output(k, 1, VT_I64, 1, id);
  if (rc) return rc;
  float *o = k->out[0]->data;
  int64_t *ix = k->out[1]->data;
  for (int64_t j = 0; j < m; j++) {
    int64_t i = s->order[j];
    ix[j] = i;
    memcpy(o + j * d, xd + i * d, (size_t)d * sizeof(float));
    if (!fresh) memcpy(s->ref + i * d, xd + i * d, (size_t)d * sizeof(float));
  }
  return VT_OK;
}

/* ---------- TokenBuffer ---------- */
int vt_kernel_TokenBuffer(vt_kctx *k) {
  if (!k->state) return need_state(k);
  const vt_tensor *y = k->in[0], *idx = k->in[1], *like = k->in[2];
  if (y->dtype != VT_F32 || y->rank != 2 || idx->dtype != VT_I64 || idx->rank != 1 || like->rank < 2)
    return vt_kernel_fail(k, "expects y f32 [M,O], idx i64 [M], like [..., D]");
  int64_t m = y->dims[0], o = y->dims[1];
  if (idx->dims[0] != m)
    return vt_kernel_fail(k, "y has %lld rows but idx %lld", (long long)m, (long long)idx->dims[0]);
  int64_t ld = like->dims[like->rank - 1];
  int64_t n = ld > 0 ? vt_tensor_numel(like) / ld : 0;
  bool fresh;
  evt_state *s = state_for(k, n, o, false, &fresh);
  if (!s) return vt_kernel_fail(k, "out of memory for the buffer state (%lld x %lld)", (long long)n, (long long)o);
  if (fresh) {
    if (m != n) {
      s->hdr.free(s);
      *k->state = NULL;
      return vt_kernel_fail(k, "the buffer has no state yet (or the token count changed to %lld) but received "
                               "%lld rows: its gate must flush (all tokens) on the same run", (long long)n, (long long)m);
    }
    memset(s->ref, 0, (size_t)(n * o) * sizeof(float));
  }
  const int64_t *ix = idx->data;
  for (int64_t j = 0; j < m; j++)
    if (ix[j] < 0 || ix[j] >= n)
      return vt_kernel_fail(k, "index %lld at row %lld is out of range [0, %lld)", (long long)ix[j], (long long)j,
                            (long long)n);
  const float *yd = y->data;
  for (int64_t j = 0; j < m; j++) memcpy(s->ref + ix[j] * o, yd + j * o, (size_t)o * sizeof(float));
  vt_tensor *out = k->out[0];
  if (!out->data || vt_tensor_numel(out) != n * o) {
    int64_t dims[VT_MAX_RANK];
    for (int32_t d = 0; d + 1 < like->rank; d++) dims[d] = like->dims[d];
    dims[like->rank - 1] = o;
    int rc = vt_kctx_output(k, 0, VT_F32, like->rank, dims);
    if (rc) return rc;
  }
  memcpy(out->data, s->ref, (size_t)(n * o) * sizeof(float));
  return VT_OK;
}

/* so_model.c — `vtopt run fast.so ...`: opens a compiled model through its public ABI
 * (include/vtopt/model.h, symbols <tag>_*), rebuilds its signature (input and output names,
 * dtypes, dims) as a graph of values only, so the --run / --stream drivers treat it like a loaded
 * model, and runs sessions on caller-allocated outputs. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vtopt/model.h"

struct cli_so {
  void *dl;
  vtopt_session *s;
  int (*create)(int, vtopt_session **);
  int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
  int (*reset)(vtopt_session *);
  int (*set)(vtopt_session *, const char *, double);
  int (*state_info)(const vtopt_session *, int64_t *, int64_t *, int64_t *);   /* NULL: an older library */
  const char *(*last_error)(const vtopt_session *);
  void (*destroy)(vtopt_session *);
  const char *(*signature)(void);
};

_Static_assert(sizeof(vtopt_tensor) == sizeof(vt_tensor), "vtopt_tensor is vt_tensor");

/* ---------- the signature JSON (written by codegen/cg_so.c: json_values) ---------- */
typedef struct { const char *p; bool bad; } js;

static void ws(js *j) { while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r') j->p++; }
static bool lit(js *j, const char *s) {
  ws(j);
  size_t n = strlen(s);
  if (strncmp(j->p, s, n)) { j->bad = true; return false; }
  j->p += n;
  return true;
}
/* A JSON string into out (escapes \" \\ \uXXXX below 0x80 only, as the writer makes them). */
static void str(js *j, char *out, size_t n) {
  size_t k = 0;
  if (!lit(j, "\"")) return;
  while (*j->p && *j->p != '"') {
    char ch = *j->p++;
    if (ch == '\\') {
      ch = *j->p++;
      if (ch == 'u') {
        unsigned v = 0;
        for (int i = 0; i < 4 && j->p[0]; i++, j->p++)
          v = v * 16 + (unsigned)(j->p[0] <= '9' ? j->p[0] - '0' : (j->p[0] | 32) - 'a' + 10);
        ch = (char)v;
      } else if (!ch) {
        j->bad = true;
        return;
      }
    }
    if (k + 1 < n) out[k++] = ch;
  }
  out[k] = 0;
  lit(j, "\"");
}

static vt_dtype dtype_named(const char *s) {
  for (int t = 1; t < 32; t++)
    if (!strcmp(vt_dtype_name((vt_dtype)t), s)) return (vt_dtype)t;
  return VT_UNDEFINED;
}

/* [{"name":..., "dtype":..., "dims":[...]}, ...] into values of g, added as inputs or outputs */
static void values(js *j, vt_graph *g, bool inputs) {
  if (!lit(j, "[")) return;
  ws(j);
  if (*j->p == ']') { j->p++; return; }
  do {
    char name[512], dt[32];
    int64_t dims[VT_MAX_RANK];
    int32_t rank = 0;
    lit(j, "{"); lit(j, "\"name\""); lit(j, ":"); str(j, name, sizeof name);
    lit(j, ","); lit(j, "\"dtype\""); lit(j, ":"); str(j, dt, sizeof dt);
    lit(j, ","); lit(j, "\"dims\""); lit(j, ":"); lit(j, "[");
    ws(j);
    while (!j->bad && *j->p != ']') {
      char *end;
      long long d = strtoll(j->p, &end, 10);
      if (end == j->p || rank == VT_MAX_RANK || d < 0) { j->bad = true; break; }
      dims[rank++] = d;
      j->p = end;
      ws(j);
      if (*j->p == ',') j->p++;
      ws(j);
    }
    lit(j, "]"); lit(j, "}");
    vt_dtype t = dtype_named(dt);
    if (j->bad || t == VT_UNDEFINED) { j->bad = true; return; }
    int32_t v = vt_graph_add_value(g, name, t, rank, dims);
    if (v < 0 || (inputs ? vt_graph_add_input(g, v) : vt_graph_add_output(g, v))) { j->bad = true; return; }
    ws(j);
  } while (*j->p == ',' && j->p++);
  lit(j, "]");
}

int cli_so_open(const char *path, const char *tag, int threads, vt_graph **gp, cli_so **out, vt_error *e) {
  *gp = NULL;
  *out = NULL;
  char tagbuf[80];
  if (!tag) {   /* default: the file name without .so as a C identifier (vtopt -o's default tag) */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = 0;
    if (base[0] >= '0' && base[0] <= '9') tagbuf[n++] = '_';
    for (const char *p = base; *p && strcmp(p, ".so") && n + 1 < sizeof tagbuf; p++)
      tagbuf[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p : '_';
    tagbuf[n] = 0;
    tag = tagbuf;
  }
  char rel[4200];
  snprintf(rel, sizeof rel, "%s%s", strchr(path, '/') ? "" : "./", path);   /* not a library search */
  cli_so *so = calloc(1, sizeof *so);
  if (!so) return vt_errorf(e, VT_ERR_MODEL, "out of memory");
  so->dl = dlopen(rel, RTLD_NOW | RTLD_LOCAL);
  if (!so->dl) {
    const char *m = dlerror();
    free(so);
    return vt_errorf(e, VT_ERR_MODEL, "%s: cannot load: %s", path, m ? m : "?");
  }
  struct { void **fn; const char *suffix; } syms[] = {
    {(void **)&so->signature, "signature"}, {(void **)&so->create, "create"}, {(void **)&so->run, "run"},
    {(void **)&so->reset, "reset"}, {(void **)&so->set, "set"}, {(void **)&so->last_error, "last_error"},
    {(void **)&so->destroy, "destroy"}};
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    char name[200];
    snprintf(name, sizeof name, "%s_%s", tag, syms[i].suffix);
    *syms[i].fn = dlsym(so->dl, name);
    if (!*syms[i].fn) {
      dlclose(so->dl);
      free(so);
      return vt_errorf(e, VT_ERR_MODEL, "%s: no symbol %s: not a vtopt model with tag '%s' (give the tag with --tag)",
                       path, name, tag);
    }
  }
  {
    char name[200];
    snprintf(name, sizeof name, "%s_state_info", tag);
    *(void **)&so->state_info = dlsym(so->dl, name);
  }
  vt_graph *g = vt_graph_new(path);
  js j = {so->signature(), false};
  if (!g) j.bad = true;
  if (!j.bad) { lit(&j, "{"); lit(&j, "\"tag\""); lit(&j, ":"); char t[200]; str(&j, t, sizeof t); }
  if (!j.bad) { lit(&j, ","); lit(&j, "\"inputs\""); lit(&j, ":"); values(&j, g, true); }
  if (!j.bad) { lit(&j, ","); lit(&j, "\"outputs\""); lit(&j, ":"); values(&j, g, false); }
  if (j.bad) {
    vt_graph_free(g);
    dlclose(so->dl);
    free(so);
    return vt_errorf(e, VT_ERR_MODEL, "%s: cannot read the model's signature", path);
  }
  if (so->create(threads, &so->s) != VTOPT_OK) {
    vt_errorf(e, VT_ERR_MODEL, "%s: creating a session failed: %s", path, so->last_error(NULL));
    vt_graph_free(g);
    dlclose(so->dl);
    free(so);
    return VT_ERR_MODEL;
  }
  *gp = g;
  *out = so;
  return VT_OK;
}

int cli_so_run(cli_so *so, const vt_graph *g, const vt_tensor *in, vt_tensor *out, vt_error *e) {
  int rc = VT_OK;
  for (int32_t i = 0; i < g->n_outputs && rc == VT_OK; i++) {
    const vt_value *v = &g->values[g->outputs[i]];
    memset(&out[i], 0, sizeof out[i]);
    rc = vt_tensor_alloc(&out[i], v->dtype, v->rank, v->dims, e);
  }
  if (rc == VT_OK && so->run(so->s, (const vtopt_tensor *)in, (vtopt_tensor *)out) != VTOPT_OK)
    rc = vt_errorf(e, VT_ERR_MODEL, "%s", so->last_error(so->s));
  if (rc)
    for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&out[i]);
  return rc;
}

int cli_so_set(cli_so *so, const char *knob, double value, vt_error *e) {
  if (so->set(so->s, knob, value) != VTOPT_OK) return vt_errorf(e, VT_ERR_MODEL, "%s", so->last_error(so->s));
  return VT_OK;
}

int cli_so_reset(cli_so *so, vt_error *e) {
  if (so->reset(so->s) != VTOPT_OK) return vt_errorf(e, VT_ERR_MODEL, "%s", so->last_error(so->s));
  return VT_OK;
}

void cli_so_state_info(const cli_so *so, size_t *bytes, int64_t *updated, int64_t *seen) {
  int64_t b = 0, u = 0, n = 0;
  if (so->state_info) so->state_info(so->s, &b, &u, &n);
  *bytes = (size_t)b;
  *updated = u;
  *seen = n;
}

void cli_so_close(cli_so *so) {
  if (!so) return;
  so->destroy(so->s);
  dlclose(so->dl);
  free(so);
}

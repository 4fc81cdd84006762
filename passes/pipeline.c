/* pipeline.c — parsing --pass=LIST into a pipeline (syntax in passes.h) and running it:
 * canonical passes first, then the listed ones; after each pass infer + verify, and the
 * --print-after / --stats / --explain outputs. */
#include "passes_internal.h"

#include <stdlib.h>
#include <string.h>

static int add_step(vt_pipeline *pl, const vt_pass_info *pass, vt_error *e) {
  vt_pass_params *s = realloc(pl->steps, (size_t)(pl->n + 1) * sizeof *s);
  if (!s) return vt_errorf(e, VT_ERR_MODEL, "--pass: out of memory");
  pl->steps = s;
  int rc = vt_pass_params_default(pass, &pl->steps[pl->n], e);
  if (rc) return rc;
  pl->n++;
  return VT_OK;
}

static void known_passes(char *buf, size_t n) {
  size_t off = 0;
  buf[0] = 0;
  for (int i = 0; i < vt_pass_count() && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? ", " : "", vt_pass_get(i)->name);
}

static int set_param(vt_pipeline *pl, const char *item, vt_error *e) {
  const char *eq = strchr(item, '=');
  char key[128];
  size_t kl = (size_t)(eq - item);
  if (kl == 0 || kl >= sizeof key) return vt_errorf(e, VT_ERR_MODEL, "--pass: '%s' is not KEY=VALUE", item);
  memcpy(key, item, kl);
  key[kl] = 0;
  return vt_pass_params_set(&pl->steps[pl->n - 1], key, eq + 1, e);
}

int vt_pipeline_parse(const char *spec, vt_pipeline *pl, vt_error *e) {
  memset(pl, 0, sizeof *pl);
  if (!spec || !*spec || strcmp(spec, "none") == 0) return VT_OK;
  size_t len = strlen(spec);
  char *buf = malloc(len + 1);
  if (!buf) return vt_errorf(e, VT_ERR_MODEL, "--pass: out of memory");
  int rc = VT_OK;
  size_t i = 0;
  char sep = 0;   /* separator before the current item: 0 (start), ',' or '+' */
  while (rc == VT_OK && i <= len) {
    /* one item: up to the next ',' or '+' outside brackets */
    size_t j = i;
    int depth = 0;
    while (j < len && (depth > 0 || (spec[j] != ',' && spec[j] != '+'))) {
      if (spec[j] == '[') depth++;
      else if (spec[j] == ']' && depth > 0) depth--;
      j++;
    }
    memcpy(buf, spec + i, j - i);
    buf[j - i] = 0;
    char *colon = strchr(buf, ':');
    char *eq = strchr(buf, '=');
    if (!buf[0]) {
      rc = vt_errorf(e, VT_ERR_MODEL, "--pass: empty item in '%s' (at offset %zu)", spec, i);
    } else if (eq && (!colon || colon > eq)) {
      /* KEY=VALUE for the current pass */
      if (pl->n == 0 || sep != ',')
        rc = vt_errorf(e, VT_ERR_MODEL, "--pass: '%s' must follow a pass (write NAME:%s)", buf, buf);
      else rc = set_param(pl, buf, e);
    } else {
      if (colon) *colon = 0;
      const vt_pass_info *pass = vt_pass_find(buf);
      if (!pass) {
        char names[512];
        known_passes(names, sizeof names);
        rc = vt_errorf(e, VT_ERR_MODEL, "--pass: unknown pass '%s'%s; known passes: %s",
                       buf, strcmp(buf, "none") == 0 ? " ('none' must be alone)" : "", names);
      } else {
        rc = add_step(pl, pass, e);
        if (rc == VT_OK && colon) {
          if (!strchr(colon + 1, '='))
            rc = vt_errorf(e, VT_ERR_MODEL, "--pass: %s: '%s' is not KEY=VALUE", pass->name, colon + 1);
          else rc = set_param(pl, colon + 1, e);
        }
      }
    }
    if (j >= len) break;
    sep = spec[j];
    i = j + 1;
    if (i == len) rc = rc ? rc : vt_errorf(e, VT_ERR_MODEL, "--pass: '%s' ends with '%c'", spec, sep);
  }
  free(buf);
  if (rc) vt_pipeline_free(pl);
  return rc;
}

void vt_pipeline_free(vt_pipeline *pl) {
  if (!pl) return;
  free(pl->steps);
  pl->steps = NULL;
  pl->n = 0;
}

static int64_t count_nodes(const vt_graph *g) { return g->n_nodes; }

static int run_one(const vt_pass_params *p, vt_graph *g, const vt_pipeline_opts *o, FILE *out, vt_error *e) {
  const vt_pass_info *pass = p->pass;
  vt_pass_stats st;
  memset(&st, 0, sizeof st);
  if (o->explain) st.explain = out;
  int64_t n0 = count_nodes(g);
  bool part0 = false, part1 = false;
  double f0 = o->stats ? vt_graph_flops(g, &part0) : 0;
  if (o->explain) fprintf(out, "explain %s:\n", pass->name);
  vt_error pe = {0};
  int rc = pass->run(g, p, &st, &pe);
  if (rc != VT_OK)
    return vt_errorf(e, rc, "pass '%s' failed: %s", pass->name, pe.msg[0] ? pe.msg : "(no message)");
  /* Every pass leaves a typed, valid graph. */
  rc = vt_graph_infer(g, &pe);
  if (rc == VT_OK) rc = vt_graph_verify(g, &pe);
  if (rc != VT_OK)
    return vt_errorf(e, VT_ERR_INTERNAL, "pass '%s' left an invalid graph: %s", pass->name, pe.msg);
  if (o->stats) {
    double f1 = vt_graph_flops(g, &part1);
    fprintf(out, "stats %s: nodes %lld -> %lld, FLOPs %.4g -> %.4g%s\n", pass->name, (long long)n0,
            (long long)count_nodes(g), f0, f1, part0 || part1 ? " (symbolic dims counted as 1)" : "");
    for (int r = 0; r < st.n_rules; r++)
      fprintf(out, "  rule %-24s matched %lld of %lld candidates\n", st.rules[r].name,
              (long long)st.rules[r].matches, (long long)st.rules[r].candidates);
  }
  if (o->print_after && (strcmp(o->print_after, "all") == 0 || strcmp(o->print_after, pass->name) == 0)) {
    fprintf(out, "// IR after %s\n", pass->name);
    vt_graph_print(g, out);
  }
  return VT_OK;
}

int vt_pipeline_run(const vt_pipeline *pl, vt_graph *g, const vt_pipeline_opts *opts, vt_error *e) {
  vt_pipeline_opts dflt = {0};
  const vt_pipeline_opts *o = opts ? opts : &dflt;
  FILE *out = o->out ? o->out : stderr;
  if (o->print_after && strcmp(o->print_after, "all") != 0 && !vt_pass_find(o->print_after)) {
    char names[512];
    known_passes(names, sizeof names);
    return vt_errorf(e, VT_ERR_MODEL, "--print-after: unknown pass '%s'; known passes: %s (or 'all')",
                     o->print_after, names);
  }
  if (!o->no_canonicalize) {
    for (int i = 0; i < vt_pass_count(); i++) {
      const vt_pass_info *pass = vt_pass_get(i);
      if (!pass->canonical) continue;
      bool listed = false;
      for (int32_t s = 0; pl && s < pl->n; s++) if (pl->steps[s].pass == pass) listed = true;
      if (listed) continue;   /* runs where the user put it, with the user's parameters */
      vt_pass_params p;
      int rc = vt_pass_params_default(pass, &p, e);
      if (rc == VT_OK) rc = run_one(&p, g, o, out, e);
      if (rc) return rc;
    }
  }
  for (int32_t s = 0; pl && s < pl->n; s++) {
    int rc = run_one(&pl->steps[s], g, o, out, e);
    if (rc) return rc;
  }
  return VT_OK;
}

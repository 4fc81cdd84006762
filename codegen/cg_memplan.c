/* cg_memplan.c — the memory plan: which values need an arena buffer, and the arena's layout by
 * liveness (first fit, biggest first) plus the session's persistent block and aliases. */
#include <stdint.h>
#include <unistd.h>

#include "cg_internal.h"

/* Does value v need a buffer (it is produced by a node and visible outside its group)? */
bool cg_needs_buffer(const cg *c, int32_t v) {
  const vt_value *val = &c->g->values[v];
  if (val->producer < 0 || c->alias_of[v] >= 0 || c->nobuf[v] || c->persist[v]) return false;
  int gi = c->node_group[val->producer];
  const cg_group *G = &c->groups[gi];
  if (G->kind == G_GEMM && G->out == v) return true;
  if (G->kind == G_CONV) return G->out == v;   /* values inside a conv-family group stay in registers */
  int32_t s = c->val_step[v];
  if ((G->kind == G_EW || G->kind == G_GEMM) && s >= 0) return G->steps[s].store;
  return true;
}

typedef struct { int32_t v; int64_t size, def, last, off; } arena_item;

static int cmp_size_desc(const void *a, const void *b) {
  const arena_item *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  return x->v - y->v;
}

static int64_t machine_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (int64_t)pages * page : INT64_MAX;
}

int cg_check_memory(const cg *c, int64_t max_memory, int64_t arena, vt_error *e) {
  if (max_memory < 0) return VT_OK;
  int64_t limit = max_memory ? max_memory : machine_memory(), weights = 0;
  const vt_graph *g = c->g;
  for (int32_t v = 0; v < g->n_values; v++)
    if ((g->values[v].flags & VT_VAL_CONST) && g->values[v].cdata) weights += (int64_t)vt_tensor_nbytes(g->values[v].cdata);
  if (weights <= limit && arena <= limit && weights <= limit - arena) return VT_OK;
  const char *what = weights > limit ? "its weights exceed" : arena > limit ? "its activation arena exceeds"
                                                      : "its weights and activation arena together exceed";
  return vt_errorf(e, VT_ERR_MODEL,
                   "%s: refused: %s the memory limit: weights %lld bytes (%.1f MiB) + planned activation arena "
                   "%lld bytes (%.1f MiB) = %.1f MiB, limit %lld bytes (%.1f MiB%s)",
                   g->path, what, (long long)weights, (double)weights / 1048576.0, (long long)arena,
                   (double)arena / 1048576.0, (double)(weights + arena) / 1048576.0, (long long)limit,
                   (double)limit / 1048576.0, max_memory ? ", --max-memory" : ", this machine's memory; --max-memory sets another");
}

/* Lays out the arena; fills off[v] (-1: no arena slot; <= VT_CG_PERSIST: in the persistent
 * block, cg_rt.h) and returns the arena's size, or -1 on OOM. */
int64_t cg_plan_arena(const cg *c, int64_t *off) {
  const vt_graph *g = c->g;
  arena_item *items = malloc(((size_t)g->n_values + 1) * sizeof *items);
  int64_t *last_use = malloc(((size_t)g->n_values + 1) * sizeof *last_use);   /* group index, aliases folded in */
  if (!items || !last_use) { free(items); free(last_use); return -1; }
  for (int32_t v = 0; v < g->n_values; v++) {
    last_use[v] = -1;
    for (int32_t u = c->uoff[v]; u < c->uoff[v + 1]; u++)
      if (c->node_group[c->ulist[u]] > last_use[v]) last_use[v] = c->node_group[c->ulist[u]];
  }
  for (int gi = 0; gi < c->n_groups; gi++)   /* a gather prologue reads the gate's x and idx */
    if (c->groups[gi].gidx >= 0) {
      int32_t rd[2] = {c->groups[gi].src, c->groups[gi].gidx};
      for (int k = 0; k < 2; k++)
        if (last_use[rd[k]] < gi) last_use[rd[k]] = gi;
    }
  for (int32_t v = 0; v < g->n_values; v++)
    if (c->alias_of[v] >= 0 && last_use[v] > last_use[c->alias_of[v]]) last_use[c->alias_of[v]] = last_use[v];
  int n = 0;
  for (int32_t v = 0; v < g->n_values; v++) {
    off[v] = -1;
    if (c->is_out[v] || !cg_needs_buffer(c, v)) continue;
    const vt_value *val = &g->values[v];
    int64_t sz = (int64_t)vt_dtype_size(val->dtype) * cg_val_numel(val);
    sz = (sz + 63) / 64 * 64;
    if (sz == 0) sz = 64;
    int64_t def = c->node_group[val->producer], last = def > last_use[v] ? def : last_use[v];
    items[n++] = (arena_item){v, sz, def, last, 0};
  }
  free(last_use);
  qsort(items, (size_t)n, sizeof *items, cmp_size_desc);
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    int64_t o = 0;
    bool moved = true;
    while (moved) {   /* first fit: bump past every overlapping placed item until none collide */
      moved = false;
      for (int j = 0; j < i; j++) {
        if (items[j].last < items[i].def || items[j].def > items[i].last) continue;
        if (o < items[j].off + items[j].size && items[j].off < o + items[i].size) {
          o = items[j].off + items[j].size;
          moved = true;
        }
      }
    }
    items[i].off = o;
    if (o + items[i].size > total) total = o + items[i].size;
  }
  for (int i = 0; i < n; i++) off[items[i].v] = items[i].off;
  int64_t poff = 0;   /* persistent values: one after another in the session's persistent block */
  for (int32_t v = 0; v < g->n_values; v++)
    if (c->persist[v] && !c->is_out[v]) {
      off[v] = VT_CG_PERSIST - poff;
      poff += ((int64_t)vt_dtype_size(g->values[v].dtype) * cg_val_numel(&g->values[v]) + 63) / 64 * 64;
    }
  for (int32_t v = 0; v < g->n_values; v++)
    if (c->alias_of[v] >= 0) off[v] = off[c->alias_of[v]];
  free(items);
  return total;
}

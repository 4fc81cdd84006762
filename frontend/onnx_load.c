/* onnx_load.c — the ONNX reader: ModelProto (protobuf-c) -> vt_graph. Owns initializers and
 * Constant nodes (-> constant values), external data (mmapped, confined to the model's folder),
 * opsets, graph inputs/outputs/value_info with symbolic dims, node arity and attribute checks
 * against the op table. Nodes are topologically sorted at the end; shapes are not inferred. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fe_internal.h"
#include "frontend.h"

/* ---------- a string -> int32 hash table (keys are not owned) ------------------------------- */
typedef struct strtab {
  const char **keys;
  int32_t *vals;
  size_t cap, n;
} strtab;

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static int32_t strtab_get(const strtab *t, const char *k) {
  if (!t->cap) return -1;
  for (size_t i = str_hash(k) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (!t->keys[i]) return -1;
    if (!strcmp(t->keys[i], k)) return t->vals[i];
  }
}

/* Inserts or overwrites; returns 0 or -1 on OOM. */
static int strtab_put(strtab *t, const char *k, int32_t v) {
  if ((t->n + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    const char **nk = calloc(ncap, sizeof *nk);
    int32_t *nv = calloc(ncap, sizeof *nv);
    if (!nk || !nv) { free(nk); free(nv); return -1; }
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->keys[i]) continue;
      size_t j = str_hash(t->keys[i]) & (ncap - 1);
      while (nk[j]) j = (j + 1) & (ncap - 1);
      nk[j] = t->keys[i];
      nv[j] = t->vals[i];
    }
    free(t->keys);
    free(t->vals);
    t->keys = nk;
    t->vals = nv;
    t->cap = ncap;
  }
  size_t i = str_hash(k) & (t->cap - 1);
  while (t->keys[i] && strcmp(t->keys[i], k)) i = (i + 1) & (t->cap - 1);
  if (!t->keys[i]) t->n++;
  t->keys[i] = k;
  t->vals[i] = v;
  return 0;
}

static void strtab_free(strtab *t) {
  free(t->keys);
  free(t->vals);
  memset(t, 0, sizeof *t);
}

/* ---------- loader state --------------------------------------------------------------------- */
typedef struct ext_file { char *real; uint8_t *addr; size_t size; } ext_file;

/* How a value got defined (for duplicate-definition messages). */
enum { DEF_INIT = -1, DEF_INPUT = -2, DEF_SYNTH = -3 };

typedef struct loader {
  const char *file;        /* for messages */
  const char *base_dir;    /* NULL: no external data allowed */
  char *base_real;         /* realpath(base_dir), lazily */
  vt_graph *g;
  vt_error *e;
  Onnx__ModelProto *m;
  Onnx__GraphProto *gp;
  strtab values;           /* value name -> value index */
  strtab vinfo;            /* value_info name -> index in gp->value_info */
  int32_t *def;            /* per value: ONNX node index that defines it, or DEF_* */
  size_t def_cap;
  char **node_names;       /* per ONNX node: name or synthesized "<op>_<i>" (arena) */
  int32_t *node_op;        /* per ONNX node: op id, or -1 for Constant */
  ext_file *ext;
  int n_ext, cap_ext;
} loader;

static const vt_dim no_dims[VT_MAX_RANK];

static const char *dom_str(const char *d) { return (d && d[0]) ? d : "ai.onnx"; }

static int oom(loader *L) { return vt_errorf(L->e, VT_ERR_MODEL, "%s: out of memory", L->file); }

static int node_fail(loader *L, size_t ni, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int node_fail(loader *L, size_t ni, const char *fmt, ...) {
  if (L->e && L->e->code) return L->e->code;
  const Onnx__NodeProto *np = L->gp->node[ni];
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vt_errorf(L->e, VT_ERR_MODEL, "%s: node '%s' (%s): %s", L->file, L->node_names[ni],
                   np->op_type ? np->op_type : "", msg);
}

/* Records value v as defined by def (node index or DEF_*). */
static int set_def(loader *L, int32_t v, int32_t def) {
  if ((size_t)v >= L->def_cap) {
    size_t ncap = L->def_cap ? L->def_cap * 2 : 256;
    while (ncap <= (size_t)v) ncap *= 2;
    int32_t *nd = realloc(L->def, ncap * sizeof *nd);
    if (!nd) return -1;
    L->def = nd;
    L->def_cap = ncap;
  }
  L->def[v] = def;
  return 0;
}

/* Describes who defined an existing value, for messages. */
static const char *def_desc(loader *L, int32_t v, char *buf, size_t n) {
  int32_t d = (size_t)v < L->def_cap ? L->def[v] : DEF_SYNTH;
  if (d == DEF_INIT) snprintf(buf, n, "an initializer");
  else if (d == DEF_INPUT) snprintf(buf, n, "a graph input");
  else if (d >= 0) snprintf(buf, n, "node '%s'", L->node_names[d]);
  else snprintf(buf, n, "another value");
  return buf;
}

/* Registers a new value's name (the name must not exist yet) and definition. */
static int register_value(loader *L, int32_t v, int32_t def) {
  if (v < 0) return oom(L);
  if (strtab_put(&L->values, L->g->values[v].name, v) < 0 || set_def(L, v, def) < 0) return oom(L);
  return VT_OK;
}

/* ---------- types ------------------------------------------------------------------------------ */

/* Parses a ValueInfo type into dtype/rank/dims. strict: fail with a message (graph inputs and
 * outputs); otherwise return 1 when the type is not usable (value_info hints). */
static int parse_type(loader *L, const Onnx__ValueInfoProto *vi, const char *what, bool strict,
                      vt_dtype *dt, int32_t *rank, vt_dim *dims) {
  const Onnx__TypeProto *tp = vi->type;
  const char *name = vi->name ? vi->name : "";
  if (!tp) {
    if (!strict) return 1;
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s '%s' has no type", L->file, what, name);
  }
  if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
    if (!strict) return 1;
    const char *kind = tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE ? "sequence"
                     : tp->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE ? "map"
                     : tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE ? "optional"
                     : tp->value_case == ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE ? "sparse tensor"
                     : "unknown";
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s '%s' has %s %s type; only tensors are supported",
                     L->file, what, name, kind[0] == 'o' || kind[0] == 'u' ? "an" : "a", kind);
  }
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int32_t et = tt->has_elem_type ? tt->elem_type : 0;
  *dt = fe_dtype_from_onnx(et);
  if (*dt == VT_UNDEFINED) {
    if (!strict) return 1;
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s '%s' has unsupported element type %d", L->file,
                     what, name, (int)et);
  }
  if (!tt->shape) {
    *rank = -1;
    return VT_OK;
  }
  if (tt->shape->n_dim > VT_MAX_RANK) {
    if (!strict) return 1;
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s '%s' has rank %zu; vtopt supports rank <= %d",
                     L->file, what, name, tt->shape->n_dim, VT_MAX_RANK);
  }
  *rank = (int32_t)tt->shape->n_dim;
  for (size_t i = 0; i < tt->shape->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    vt_dim r;
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
      if (d->dim_value < 0) {
        if (!strict) return 1;
        return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s '%s' has negative dim %lld", L->file, what,
                         name, (long long)d->dim_value);
      }
      r = d->dim_value;
    } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
               d->dim_param && d->dim_param[0]) {
      r = vt_dim_named(L->g, d->dim_param);
    } else {
      r = vt_dim_fresh(L->g);
    }
    dims[i] = r;
  }
  return VT_OK;
}

/* ---------- tensors and external data ---------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s) return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

/* Maps (or finds already mapped) the external file at real path `real`. */
static int ext_map(loader *L, const char *what, const char *loc, const char *real, ext_file **out) {
  for (int i = 0; i < L->n_ext; i++)
    if (!strcmp(L->ext[i].real, real)) { *out = &L->ext[i]; return VT_OK; }
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: cannot open external data '%s': %s", L->file,
                     what, loc, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: external data '%s' is not a regular file",
                     L->file, what, loc);
  }
  size_t size = (size_t)st.st_size;
  void *addr = NULL;
  if (size > 0) {
    /* Private writable mapping: the file is never modified, and a stray write cannot fault. */
    addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      close(fd);
      return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: cannot map external data '%s': %s", L->file,
                       what, loc, strerror(err));
    }
  }
  close(fd);
  if (addr && vt_graph_add_mapping(L->g, addr, size) != 0) {
    munmap(addr, size);
    return oom(L);
  }
  if (L->n_ext == L->cap_ext) {
    int ncap = L->cap_ext ? L->cap_ext * 2 : 4;
    ext_file *ne = realloc(L->ext, (size_t)ncap * sizeof *ne);
    if (!ne) return oom(L);
    L->ext = ne;
    L->cap_ext = ncap;
  }
  ext_file *x = &L->ext[L->n_ext];
  x->real = strdup(real);
  if (!x->real) return oom(L);
  x->addr = addr;
  x->size = size;
  L->n_ext++;
  *out = x;
  return VT_OK;
}

static int load_external(loader *L, const Onnx__TensorProto *tp, const char *what, vt_tensor *t,
                         size_t nbytes) {
  const char *loc = NULL;
  uint64_t offset = 0, length = 0;
  bool has_length = false;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *kv = tp->external_data[i];
    const char *k = kv->key ? kv->key : "", *v = kv->value ? kv->value : "";
    if (!strcmp(k, "location")) {
      loc = v;
    } else if (!strcmp(k, "offset")) {
      if (parse_u64(v, &offset) < 0)
        return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: bad external data offset '%s'", L->file, what, v);
    } else if (!strcmp(k, "length")) {
      if (parse_u64(v, &length) < 0)
        return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: bad external data length '%s'", L->file, what, v);
      has_length = true;
    }
  }
  if (!loc || !loc[0])
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: external data without a location", L->file, what);
  if (!L->base_dir)
    return vt_errorf(L->e, VT_ERR_MODEL,
                     "%s: %s: external data '%s' needs the model's folder (model loaded from memory)",
                     L->file, what, loc);
  if (loc[0] == '/')
    return vt_errorf(L->e, VT_ERR_MODEL,
                     "%s: %s: external data path '%s' is absolute; it must be relative to the model's folder",
                     L->file, what, loc);
  for (const char *p = loc; *p;) {
    const char *q = strchr(p, '/');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.')
      return vt_errorf(L->e, VT_ERR_MODEL,
                       "%s: %s: external data path '%s' escapes the model's folder ('..')",
                       L->file, what, loc);
    p += n;
    while (*p == '/') p++;
  }
  if (!L->base_real) {
    L->base_real = realpath(L->base_dir, NULL);
    if (!L->base_real)
      return vt_errorf(L->e, VT_ERR_MODEL, "%s: cannot resolve the model's folder '%s': %s",
                       L->file, L->base_dir, strerror(errno));
  }
  size_t fl = strlen(L->base_dir) + strlen(loc) + 2;
  char *full = malloc(fl);
  if (!full) return oom(L);
  snprintf(full, fl, "%s/%s", L->base_dir, loc);
  char *real = realpath(full, NULL);
  int err = errno;
  free(full);
  if (!real)
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: cannot open external data '%s': %s", L->file,
                     what, loc, strerror(err));
  size_t bl = strlen(L->base_real);
  bool inside = !strncmp(real, L->base_real, bl) &&
                (real[bl] == '/' || (bl == 1 && L->base_real[0] == '/'));
  if (!inside) {
    free(real);
    return vt_errorf(L->e, VT_ERR_MODEL,
                     "%s: %s: external data '%s' resolves outside the model's folder (symlink)",
                     L->file, what, loc);
  }
  ext_file *x = NULL;
  int rc = ext_map(L, what, loc, real, &x);
  free(real);
  if (rc || !x) return rc ? rc : oom(L);
  if (offset > x->size)
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: %s: external data offset %llu is past the end of '%s' (%zu bytes)",
                     L->file, what, (unsigned long long)offset, loc, x->size);
  if (!has_length) length = x->size - offset;
  if (length > x->size - offset)
    return vt_errorf(L->e, VT_ERR_MODEL,
                     "%s: %s: external data range [%llu, +%llu) is past the end of '%s' (%zu bytes)",
                     L->file, what, (unsigned long long)offset, (unsigned long long)length, loc, x->size);
  char dbuf[256];
  if (length != nbytes)
    return vt_errorf(L->e, VT_ERR_MODEL,
                     "%s: %s: external data has %llu bytes, expected %zu for %s %s", L->file, what,
                     (unsigned long long)length, nbytes, vt_dtype_name(t->dtype),
                     fe_dims_str(t->rank, t->dims, dbuf, sizeof dbuf));
  size_t esz = vt_dtype_size(t->dtype);
  uint8_t *p = x->addr ? x->addr + offset : NULL;
  if (nbytes == 0 || ((uintptr_t)p % esz) != 0) {
    /* Empty, or misaligned for the element type: keep an aligned private copy. */
    void *blk = malloc(nbytes ? nbytes : 16);
    if (!blk) return oom(L);
    if (nbytes) memcpy(blk, p, nbytes);
    if (vt_graph_own(L->g, blk) != 0) return oom(L);
    t->data = blk;
  } else {
    t->data = p;
  }
  t->owned = false;
  return VT_OK;
}

/* Decodes a TensorProto into t, with the data owned by the graph (block or mapping). */
static int load_tensor(loader *L, Onnx__TensorProto *tp, const char *what, vt_tensor *t) {
  size_t nbytes;
  int rc = fe_tensor_header(tp, L->file, what, t, &nbytes, L->e);
  if (rc) return rc;
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return load_external(L, tp, what, t, nbytes);
  rc = fe_tensor_data(tp, L->file, what, t, nbytes, L->e);
  if (rc) return rc;
  t->owned = false;
  if (vt_graph_own(L->g, t->data) != 0) {
    t->data = NULL;
    return oom(L);
  }
  return VT_OK;
}

/* A small constant tensor from attribute values (Constant value_float(s)/value_int(s)). */
static int small_const(loader *L, vt_dtype dt, int32_t rank, size_t n, const void *src, vt_tensor *t) {
  memset(t, 0, sizeof *t);
  size_t esz = vt_dtype_size(dt);
  if (n > SIZE_MAX / 8) return oom(L);
  void *blk = malloc(n ? n * esz : 16);
  if (!blk) return oom(L);
  if (n) memcpy(blk, src, n * esz);
  if (vt_graph_own(L->g, blk) != 0) return oom(L);
  t->dtype = dt;
  t->rank = rank;
  if (rank == 1) t->dims[0] = (int64_t)n;
  t->data = blk;
  return VT_OK;
}

/* ---------- attributes ------------------------------------------------------------------------- */

static const char *attr_type_name(int t) {
  switch (t) {
  case VT_ATTR_FLOAT: return "float";
  case VT_ATTR_INT: return "int";
  case VT_ATTR_STRING: return "string";
  case VT_ATTR_TENSOR: return "tensor";
  case VT_ATTR_GRAPH: return "graph";
  case VT_ATTR_FLOATS: return "floats";
  case VT_ATTR_INTS: return "ints";
  case VT_ATTR_STRINGS: return "strings";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: return "sparse tensor";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "tensors";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "graphs";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: return "sparse tensors";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: return "type proto";
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: return "type protos";
  default: return "undefined";
  }
}

static int schema_char_type(char c) {
  switch (c) {
  case 'f': return VT_ATTR_FLOAT;
  case 'i': return VT_ATTR_INT;
  case 's': return VT_ATTR_STRING;
  case 't': return VT_ATTR_TENSOR;
  case 'g': return VT_ATTR_GRAPH;
  case 'F': return VT_ATTR_FLOATS;
  case 'I': return VT_ATTR_INTS;
  case 'S': return VT_ATTR_STRINGS;
  default: return -1;
  }
}

/* Type of attribute `name` in a schema "a:i,b:F", or 0 if absent. */
static int schema_lookup(const char *schema, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = schema ? schema : ""; *p;) {
    const char *end = strchr(p, ',');
    size_t el = end ? (size_t)(end - p) : strlen(p);
    const char *colon = memchr(p, ':', el);
    if (colon && (size_t)(colon - p) == nl && !memcmp(p, name, nl) && colon + 1 < p + el)
      return schema_char_type(colon[1]);
    p += el;
    if (*p == ',') p++;
  }
  return 0;
}

/* Names in a schema, "a, b, c" for messages. */
static void schema_names(const char *schema, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  bool any = false;
  for (const char *p = schema ? schema : ""; *p && k + 1 < n;) {
    const char *end = strchr(p, ',');
    size_t el = end ? (size_t)(end - p) : strlen(p);
    const char *colon = memchr(p, ':', el);
    size_t nl = colon ? (size_t)(colon - p) : el;
    k += (size_t)snprintf(buf + k, n - k, "%s%.*s", any ? ", " : "", (int)nl, p);
    any = true;
    p += el;
    if (*p == ',') p++;
  }
  if (!any) snprintf(buf, n, "none");
}

/* The attribute's type, inferred from the set field for old models without `type`. */
static int attr_proto_type(const Onnx__AttributeProto *ap) {
  if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return ap->type;
  if (ap->has_f) return VT_ATTR_FLOAT;
  if (ap->has_i) return VT_ATTR_INT;
  if (ap->has_s) return VT_ATTR_STRING;
  if (ap->t) return VT_ATTR_TENSOR;
  if (ap->g) return VT_ATTR_GRAPH;
  if (ap->n_floats) return VT_ATTR_FLOATS;
  if (ap->n_ints) return VT_ATTR_INTS;
  if (ap->n_strings) return VT_ATTR_STRINGS;
  return VT_ATTR_UNDEFINED;
}

static char *arena_bytes(vt_graph *g, const uint8_t *p, size_t n) {
  if (n >= SIZE_MAX - 1) return NULL;
  char *s = vt_arena_alloc(&g->arena, n + 1);
  if (s && n) memcpy(s, p, n);
  return s;
}

static int convert_attr(loader *L, size_t ni, int32_t node, Onnx__AttributeProto *ap, int type) {
  vt_graph *g = L->g;
  const char *an = ap->name;
  vt_attr tmp;
  memset(&tmp, 0, sizeof tmp);
  switch (type) {
  case VT_ATTR_FLOAT: tmp.f = ap->f; break;
  case VT_ATTR_INT: tmp.i = ap->i; break;
  case VT_ATTR_STRING:
    tmp.s = arena_bytes(g, ap->s.data, ap->s.len);
    tmp.s_len = ap->s.len;
    if (!tmp.s) return oom(L);
    break;
  case VT_ATTR_FLOATS:
  case VT_ATTR_INTS:
  case VT_ATTR_STRINGS: {
    size_t n = type == VT_ATTR_FLOATS ? ap->n_floats : type == VT_ATTR_INTS ? ap->n_ints : ap->n_strings;
    if (n > INT32_MAX) return node_fail(L, ni, "attribute '%s' has too many values", an);
    tmp.n = (int32_t)n;
    if (n == 0) break;
    if (type == VT_ATTR_FLOATS) {
      tmp.floats = vt_arena_alloc(&g->arena, n * sizeof(float));
      if (!tmp.floats) return oom(L);
      memcpy(tmp.floats, ap->floats, n * sizeof(float));
    } else if (type == VT_ATTR_INTS) {
      tmp.ints = vt_arena_alloc(&g->arena, n * sizeof(int64_t));
      if (!tmp.ints) return oom(L);
      memcpy(tmp.ints, ap->ints, n * sizeof(int64_t));
    } else {
      const char **ss = vt_arena_alloc(&g->arena, n * sizeof(char *));
      if (!ss) return oom(L);
      for (size_t k = 0; k < n; k++)
        if (!(ss[k] = arena_bytes(g, ap->strings[k].data, ap->strings[k].len))) return oom(L);
      tmp.strings = ss;
    }
    break;
  }
  case VT_ATTR_TENSOR: {
    if (!ap->t) return node_fail(L, ni, "attribute '%s' has no tensor", an);
    vt_tensor *t = vt_arena_alloc(&g->arena, sizeof *t);
    if (!t) return oom(L);
    char what[512];
    snprintf(what, sizeof what, "node '%s' (%s): attribute '%s'", L->node_names[ni],
             L->gp->node[ni]->op_type, an);
    int rc = load_tensor(L, ap->t, what, t);
    if (rc) return rc;
    tmp.t = t;
    break;
  }
  default:
    return node_fail(L, ni, "attribute '%s' has unsupported type %s", an, attr_type_name(type));
  }
  vt_attr *a = vt_node_add_attr(g, node, an, (vt_attr_type)type);
  if (!a) return oom(L);
  tmp.name = a->name;
  tmp.type = (vt_attr_type)type;
  *a = tmp;
  return VT_OK;
}

static size_t schema_count(const char *schema) {
  size_t n = 0;
  for (const char *p = schema ? schema : ""; *p; p++) n += *p == ':';
  return n;
}

static int node_attrs(loader *L, size_t ni, int32_t node, int op) {
  const Onnx__NodeProto *np = L->gp->node[ni];
  /* Bounds the duplicate check below (and hostile inputs with huge attribute lists). */
  if (np->n_attribute > schema_count(vt_ops[op].schema)) {
    for (size_t k = 0; k < np->n_attribute; k++) {
      const char *an = np->attribute[k]->name ? np->attribute[k]->name : "";
      if (!schema_lookup(vt_ops[op].schema, an)) {
        char names[512];
        schema_names(vt_ops[op].schema, names, sizeof names);
        return node_fail(L, ni, "attribute '%s' is not supported by vtopt's %s (supported: %s)", an,
                         vt_ops[op].name, names);
      }
    }
    return node_fail(L, ni, "has %zu attributes, some given twice", np->n_attribute);
  }
  for (size_t k = 0; k < np->n_attribute; k++) {
    Onnx__AttributeProto *ap = np->attribute[k];
    if (!ap->name || !ap->name[0]) return node_fail(L, ni, "attribute %zu has no name", k);
    for (size_t j = 0; j < k; j++)
      if (!strcmp(np->attribute[j]->name, ap->name))
        return node_fail(L, ni, "attribute '%s' is given twice", ap->name);
    if (ap->ref_attr_name && ap->ref_attr_name[0])
      return node_fail(L, ni, "attribute '%s' refers to a function attribute; functions are not supported",
                       ap->name);
    int type = attr_proto_type(ap);
    if (type == VT_ATTR_GRAPH || type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS)
      return node_fail(L, ni, "attribute '%s' holds a subgraph; subgraphs (If/Loop/Scan) are not supported",
                       ap->name);
    int want = schema_lookup(vt_ops[op].schema, ap->name);
    if (want == 0) {
      char names[512];
      schema_names(vt_ops[op].schema, names, sizeof names);
      return node_fail(L, ni, "attribute '%s' is not supported by vtopt's %s (supported: %s)",
                       ap->name, vt_ops[op].name, names);
    }
    if (want != type)
      return node_fail(L, ni, "attribute '%s' has type %s, expected %s", ap->name,
                       attr_type_name(type), attr_type_name(want));
    int rc = convert_attr(L, ni, node, ap, type);
    if (rc) return rc;
  }
  return VT_OK;
}

/* ---------- nodes -------------------------------------------------------------------------------- */

static bool is_constant_op(const Onnx__NodeProto *np) {
  const char *d = np->domain ? np->domain : "";
  return np->op_type && !strcmp(np->op_type, "Constant") && (!d[0] || !strcmp(d, "ai.onnx"));
}

/* Trailing empty names are omitted optional inputs/outputs. */
static size_t trim_names(char **names, size_t n) {
  while (n > 0 && (!names[n - 1] || !names[n - 1][0])) n--;
  return n;
}

/* Applies a value_info type hint to value v (if one exists and is usable). */
static void apply_value_info(loader *L, int32_t v) {
  int32_t k = strtab_get(&L->vinfo, L->g->values[v].name);
  if (k < 0) return;
  vt_dtype dt;
  int32_t rank;
  vt_dim dims[VT_MAX_RANK];
  if (parse_type(L, L->gp->value_info[k], "value", false, &dt, &rank, dims) != VT_OK) return;
  vt_value *val = &L->g->values[v];
  val->dtype = dt;
  val->rank = rank;
  for (int32_t i = 0; i < rank; i++) val->dims[i] = dims[i];
}

static int define_output(loader *L, size_t ni, const char *name, int32_t *out) {
  int32_t v = strtab_get(&L->values, name);
  if (v >= 0) {
    char buf[300];
    return node_fail(L, ni, "output '%s' is already defined by %s", name, def_desc(L, v, buf, sizeof buf));
  }
  v = vt_graph_add_value(L->g, name, VT_UNDEFINED, -1, no_dims);
  int rc = register_value(L, v, (int32_t)ni);
  if (rc) return rc;
  apply_value_info(L, v);
  *out = v;
  return VT_OK;
}

static int constant_node(loader *L, size_t ni) {
  Onnx__NodeProto *np = L->gp->node[ni];
  size_t n_out = trim_names(np->output, np->n_output);
  if (np->n_input != 0) return node_fail(L, ni, "Constant takes no inputs, got %zu", np->n_input);
  if (n_out != 1 || np->n_output != 1)
    return node_fail(L, ni, "Constant needs exactly 1 output, got %zu", np->n_output);
  if (np->n_attribute != 1)
    return node_fail(L, ni, "Constant needs exactly one value attribute, got %zu", np->n_attribute);
  Onnx__AttributeProto *ap = np->attribute[0];
  const char *an = ap->name ? ap->name : "";
  int type = attr_proto_type(ap);
  vt_tensor t;
  memset(&t, 0, sizeof t);
  int rc;
  int want = !strcmp(an, "value") ? VT_ATTR_TENSOR
           : !strcmp(an, "value_float") ? VT_ATTR_FLOAT
           : !strcmp(an, "value_floats") ? VT_ATTR_FLOATS
           : !strcmp(an, "value_int") ? VT_ATTR_INT
           : !strcmp(an, "value_ints") ? VT_ATTR_INTS : -1;
  if (!strcmp(an, "value_string") || !strcmp(an, "value_strings"))
    return node_fail(L, ni, "string constants are not supported");
  if (!strcmp(an, "sparse_value")) return node_fail(L, ni, "sparse constants are not supported");
  if (want < 0) return node_fail(L, ni, "attribute '%s' is not supported by Constant", an);
  if (type != want)
    return node_fail(L, ni, "attribute '%s' has type %s, expected %s", an, attr_type_name(type),
                     attr_type_name(want));
  switch (want) {
  case VT_ATTR_TENSOR: {
    if (!ap->t) return node_fail(L, ni, "attribute 'value' has no tensor");
    char what[512];
    snprintf(what, sizeof what, "node '%s' (Constant)", L->node_names[ni]);
    rc = load_tensor(L, ap->t, what, &t);
    break;
  }
  case VT_ATTR_FLOAT: rc = small_const(L, VT_F32, 0, 1, &ap->f, &t); break;
  case VT_ATTR_INT: rc = small_const(L, VT_I64, 0, 1, &ap->i, &t); break;
  case VT_ATTR_FLOATS: rc = small_const(L, VT_F32, 1, ap->n_floats, ap->floats, &t); break;
  default: rc = small_const(L, VT_I64, 1, ap->n_ints, ap->ints, &t); break;
  }
  if (rc) return rc;
  const char *name = np->output[0];
  int32_t v = strtab_get(&L->values, name);
  if (v >= 0) {
    char buf[300];
    return node_fail(L, ni, "output '%s' is already defined by %s", name, def_desc(L, v, buf, sizeof buf));
  }
  v = vt_graph_add_const(L->g, name, &t);
  return register_value(L, v, (int32_t)ni);
}

/* First pass over a node: checks op and arity, defines its outputs. */
static int node_outputs(loader *L, size_t ni) {
  Onnx__NodeProto *np = L->gp->node[ni];
  if (is_constant_op(np)) {
    L->node_op[ni] = -1;
    return constant_node(L, ni);
  }
  for (size_t k = 0; k < np->n_attribute; k++) {
    int type = attr_proto_type(np->attribute[k]);
    if (type == VT_ATTR_GRAPH || type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS)
      return node_fail(L, ni, "attribute '%s' holds a subgraph; subgraphs (If/Loop/Scan) are not supported",
                       np->attribute[k]->name ? np->attribute[k]->name : "");
  }
  int op = vt_op_lookup(np->op_type, np->domain ? np->domain : "");
  if (op < 0) {
    for (size_t k = 0; k < L->m->n_functions; k++) {
      const Onnx__FunctionProto *fp = L->m->functions[k];
      if (fp->name && !strcmp(fp->name, np->op_type) &&
          !strcmp(fp->domain ? fp->domain : "", np->domain ? np->domain : ""))
        return node_fail(L, ni, "unknown op (domain '%s'): model-local functions are not supported",
                         dom_str(np->domain));
    }
    return node_fail(L, ni, "unknown op (domain '%s')", dom_str(np->domain));
  }
  L->node_op[ni] = op;
  const vt_op_info *oi = &vt_ops[op];
  size_t n_in = trim_names(np->input, np->n_input);
  size_t n_out = trim_names(np->output, np->n_output);
  if ((int64_t)n_in < oi->min_in || (oi->max_in >= 0 && (int64_t)n_in > oi->max_in)) {
    if (oi->max_in < 0)
      return node_fail(L, ni, "has %zu inputs, expects at least %d", n_in, oi->min_in);
    if (oi->min_in == oi->max_in)
      return node_fail(L, ni, "has %zu inputs, expects %d", n_in, oi->min_in);
    return node_fail(L, ni, "has %zu inputs, expects %d to %d", n_in, oi->min_in, oi->max_in);
  }
  if ((int64_t)n_out < oi->min_out || (oi->max_out >= 0 && (int64_t)n_out > oi->max_out)) {
    if (oi->max_out < 0)
      return node_fail(L, ni, "has %zu outputs, expects at least %d", n_out, oi->min_out);
    if (oi->min_out == oi->max_out)
      return node_fail(L, ni, "has %zu outputs, expects %d", n_out, oi->min_out);
    return node_fail(L, ni, "has %zu outputs, expects %d to %d", n_out, oi->min_out, oi->max_out);
  }
  for (size_t k = 0; k < n_in; k++)
    if ((int64_t)k < oi->min_in && !np->input[k][0])
      return node_fail(L, ni, "required input %zu is missing", k);
  for (size_t k = 0; k < n_out; k++) {
    int32_t v;
    int rc;
    if (!np->output[k][0]) {
      /* An omitted output in the middle: a named value nobody uses. */
      char name[600];
      snprintf(name, sizeof name, "%s.unused_out%zu", L->node_names[ni], k);
      if (strtab_get(&L->values, name) >= 0)
        return node_fail(L, ni, "cannot name omitted output %zu ('%s' exists)", k, name);
      v = vt_graph_add_value(L->g, name, VT_UNDEFINED, -1, no_dims);
      rc = register_value(L, v, (int32_t)ni);
    } else {
      rc = define_output(L, ni, np->output[k], &v);
    }
    if (rc) return rc;
  }
  return VT_OK;
}

/* Second pass: resolves inputs and adds the node with its attributes. */
static int node_add(loader *L, size_t ni) {
  Onnx__NodeProto *np = L->gp->node[ni];
  int op = L->node_op[ni];
  if (op < 0) return VT_OK;
  size_t n_in = trim_names(np->input, np->n_input);
  size_t n_out = trim_names(np->output, np->n_output);
  int32_t stack_buf[32];
  int32_t *idx = (n_in + n_out) <= 32 ? stack_buf : malloc((n_in + n_out) * sizeof(int32_t));
  if (!idx) return oom(L);
  int rc = VT_OK;
  for (size_t k = 0; k < n_in && !rc; k++) {
    const char *nm = np->input[k];
    if (!nm[0]) { idx[k] = -1; continue; }
    idx[k] = strtab_get(&L->values, nm);
    if (idx[k] < 0) rc = node_fail(L, ni, "input '%s' is not defined", nm);
  }
  for (size_t k = 0; k < n_out && !rc; k++) {
    char name[600];
    const char *nm = np->output[k];
    if (!nm[0]) {
      snprintf(name, sizeof name, "%s.unused_out%zu", L->node_names[ni], k);
      nm = name;
    }
    idx[n_in + k] = strtab_get(&L->values, nm);
    if (idx[n_in + k] < 0) rc = vt_errorf(L->e, VT_ERR_INTERNAL, "%s: lost output '%s'", L->file, nm);
  }
  if (!rc) {
    int32_t node = vt_graph_add_node(L->g, L->node_names[ni], op, (int)n_in, idx, (int)n_out, idx + n_in);
    if (node < 0) rc = oom(L);
    else rc = node_attrs(L, ni, node, op);
  }
  if (idx != stack_buf) free(idx);
  return rc;
}

/* The graph holds its own copy of an initializer now: drop protobuf-c's data arrays early so
 * that a big model's weights are not held twice while the rest loads. */
static void release_tensor_fields(Onnx__TensorProto *tp) {
  free(tp->raw_data.data);
  tp->raw_data.data = NULL;
  tp->raw_data.len = 0;
#define DROP(f) do { free(tp->f); tp->f = NULL; tp->n_##f = 0; } while (0)
  DROP(float_data);
  DROP(int32_data);
  DROP(int64_data);
  DROP(double_data);
  DROP(uint64_data);
#undef DROP
}

/* ---------- the model ---------------------------------------------------------------------------- */

static int build_graph(loader *L) {
  Onnx__GraphProto *gp = L->gp;
  vt_graph *g = L->g;
  int rc;
  if (gp->name && !(g->name = vt_arena_strdup(&g->arena, gp->name))) return oom(L);
  if (gp->n_sparse_initializer)
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: sparse initializers are not supported", L->file);

  /* node names, for messages */
  if (gp->n_node > (size_t)INT32_MAX / 2)
    return vt_errorf(L->e, VT_ERR_MODEL, "%s: too many nodes (%zu)", L->file, gp->n_node);
  L->node_names = calloc(gp->n_node ? gp->n_node : 1, sizeof(char *));
  L->node_op = calloc(gp->n_node ? gp->n_node : 1, sizeof(int32_t));
  if (!L->node_names || !L->node_op) return oom(L);
  for (size_t i = 0; i < gp->n_node; i++) {
    const Onnx__NodeProto *np = gp->node[i];
    char buf[300];
    const char *nm = np->name;
    if (!nm || !nm[0]) {
      snprintf(buf, sizeof buf, "%s_%zu", np->op_type && np->op_type[0] ? np->op_type : "node", i);
      nm = buf;
    }
    if (!(L->node_names[i] = vt_arena_strdup(&g->arena, nm))) return oom(L);
  }
  for (size_t i = 0; i < gp->n_node; i++) {
    if (!gp->node[i]->op_type || !gp->node[i]->op_type[0])
      return node_fail(L, i, "node has no op_type");
  }

  for (size_t i = 0; i < gp->n_value_info; i++) {
    const char *nm = gp->value_info[i]->name;
    if (nm && nm[0] && strtab_put(&L->vinfo, nm, (int32_t)i) < 0) return oom(L);
  }

  /* initializers */
  for (size_t i = 0; i < gp->n_initializer; i++) {
    Onnx__TensorProto *tp = gp->initializer[i];
    const char *nm = tp->name ? tp->name : "";
    if (!nm[0]) return vt_errorf(L->e, VT_ERR_MODEL, "%s: initializer %zu has no name", L->file, i);
    if (strtab_get(&L->values, nm) >= 0)
      return vt_errorf(L->e, VT_ERR_MODEL, "%s: initializer '%s' is defined twice", L->file, nm);
    char what[300];
    snprintf(what, sizeof what, "initializer '%s'", nm);
    vt_tensor t;
    if ((rc = load_tensor(L, tp, what, &t))) return rc;
    if ((rc = register_value(L, vt_graph_add_const(g, nm, &t), DEF_INIT))) return rc;
    release_tensor_fields(tp);
  }

  /* graph inputs (those that are initializers are constants) */
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *nm = vi->name ? vi->name : "";
    if (!nm[0]) return vt_errorf(L->e, VT_ERR_MODEL, "%s: graph input %zu has no name", L->file, i);
    int32_t v = strtab_get(&L->values, nm);
    if (v >= 0) {
      if (L->def[v] == DEF_INIT) continue;
      return vt_errorf(L->e, VT_ERR_MODEL, "%s: graph input '%s' is listed twice", L->file, nm);
    }
    vt_dtype dt;
    int32_t rank;
    vt_dim dims[VT_MAX_RANK];
    if ((rc = parse_type(L, vi, "graph input", true, &dt, &rank, dims))) return rc;
    if (rank < 0)
      return vt_errorf(L->e, VT_ERR_MODEL,
                       "%s: graph input '%s' has no shape (unknown rank); vtopt needs the rank of every input",
                       L->file, nm);
    v = vt_graph_add_value(g, nm, dt, rank, dims);
    if ((rc = register_value(L, v, DEF_INPUT))) return rc;
    if (vt_graph_add_input(g, v) != 0) return oom(L);
  }

  for (size_t i = 0; i < gp->n_node; i++)
    if ((rc = node_outputs(L, i))) return rc;
  for (size_t i = 0; i < gp->n_node; i++)
    if ((rc = node_add(L, i))) return rc;

  /* graph outputs */
  for (size_t i = 0; i < gp->n_output; i++) {
    const Onnx__ValueInfoProto *vi = gp->output[i];
    const char *nm = vi->name ? vi->name : "";
    if (!nm[0]) return vt_errorf(L->e, VT_ERR_MODEL, "%s: graph output %zu has no name", L->file, i);
    int32_t v = strtab_get(&L->values, nm);
    if (v < 0) return vt_errorf(L->e, VT_ERR_MODEL, "%s: graph output '%s' is not defined", L->file, nm);
    vt_dtype dt;
    int32_t rank;
    vt_dim dims[VT_MAX_RANK];
    if ((rc = parse_type(L, vi, "graph output", true, &dt, &rank, dims))) return rc;
    vt_value *val = &g->values[v];
    if (!(val->flags & VT_VAL_CONST) && (val->dtype == VT_UNDEFINED || val->rank < 0)) {
      val->dtype = dt;
      val->rank = rank;
      for (int32_t k = 0; k < rank; k++) val->dims[k] = dims[k];
    }
    if (vt_graph_add_output(g, v) != 0) return oom(L);
  }
  return vt_graph_toposort(g, L->e);
}

static int build_model(Onnx__ModelProto *m, const char *file, const char *base_dir, vt_graph **out,
                       vt_error *e) {
  *out = NULL;
  if (!m->graph) return vt_errorf(e, VT_ERR_MODEL, "%s: the model has no graph", file);
  vt_graph *g = vt_graph_new(file);
  if (!g) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", file);
  loader L;
  memset(&L, 0, sizeof L);
  L.file = file;
  L.base_dir = base_dir;
  L.g = g;
  L.e = e;
  L.m = m;
  L.gp = m->graph;
  int rc = VT_OK;
  g->ir_version = m->has_ir_version ? m->ir_version : 0;
  if (m->producer_name && !(g->producer_name = vt_arena_strdup(&g->arena, m->producer_name))) rc = oom(&L);
  if (!rc && m->producer_version &&
      !(g->producer_version = vt_arena_strdup(&g->arena, m->producer_version)))
    rc = oom(&L);
  if (!rc && m->n_opset_import) {
    if (m->n_opset_import > 4096) rc = vt_errorf(e, VT_ERR_MODEL, "%s: too many opset imports", file);
    else if (!(g->opsets = calloc(m->n_opset_import, sizeof(vt_opset)))) rc = oom(&L);  /* freed by vt_graph_free */
    for (size_t i = 0; !rc && i < m->n_opset_import; i++) {
      const Onnx__OperatorSetIdProto *os = m->opset_import[i];
      const char *d = os->domain ? os->domain : "";
      if (!strcmp(d, "ai.onnx")) d = "";
      if (!(g->opsets[i].domain = vt_arena_strdup(&g->arena, d))) rc = oom(&L);
      g->opsets[i].version = os->has_version ? os->version : 0;
      g->n_opsets = (int32_t)i + 1;
    }
  }
  if (!rc) rc = build_graph(&L);
  free(L.base_real);
  strtab_free(&L.values);
  strtab_free(&L.vinfo);
  free(L.def);
  free(L.node_names);
  free(L.node_op);
  for (int i = 0; i < L.n_ext; i++) free(L.ext[i].real);
  free(L.ext);
  if (rc) {
    if (e && !e->code) vt_errorf(e, rc, "%s: loading failed", file);
    vt_graph_free(g);
    return rc;
  }
  *out = g;
  return VT_OK;
}

static Onnx__ModelProto *parse_model(const void *buf, size_t len, const char *file, vt_error *e) {
  if (len > FE_PROTO_MAX) {
    vt_errorf(e, VT_ERR_MODEL,
              "%s: the model is %zu bytes; protobuf files over 2 GiB are not supported, keep the "
              "weights in external data (onnx.save_model(..., save_as_external_data=True))",
              file, len);
    return NULL;
  }
  char why[160];
  if (fe_proto_precheck(buf, len, &onnx__model_proto__descriptor, why, sizeof why) < 0) {
    vt_errorf(e, VT_ERR_MODEL, "%s: not a valid ONNX model: %s", file, why);
    return NULL;
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
  if (!m) vt_errorf(e, VT_ERR_MODEL, "%s: not a valid ONNX model (protobuf parse failed: truncated or corrupt)", file);
  return m;
}

int vt_onnx_load_buffer(const void *buf, size_t len, const char *path, const char *base_dir,
                        vt_graph **out, vt_error *e) {
  const char *file = path && path[0] ? path : "<memory>";
  *out = NULL;
  Onnx__ModelProto *m = parse_model(buf, len, file, e);
  if (!m) return VT_ERR_MODEL;
  int rc = build_model(m, file, base_dir, out, e);
  onnx__model_proto__free_unpacked(m, NULL);
  return rc;
}

int vt_onnx_load(const char *path, vt_graph **out, vt_error *e) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return vt_errorf(e, VT_ERR_MODEL, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > (uint64_t)FE_PROTO_MAX) {
    close(fd);
    return vt_errorf(e, VT_ERR_MODEL,
                     "%s: the model file is %lld bytes; protobuf files over 2 GiB are not "
                     "supported, keep the weights in external data "
                     "(onnx.save_model(..., save_as_external_data=True))",
                     path, (long long)st.st_size);
  }
  size_t len = (size_t)st.st_size;
  void *map = NULL;
  if (len > 0) {
    map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int err = errno;
      close(fd);
      return vt_errorf(e, VT_ERR_MODEL, "%s: cannot map: %s", path, strerror(err));
    }
    madvise(map, len, MADV_SEQUENTIAL);
  }
  close(fd);
  static const char empty[1] = {0};
  Onnx__ModelProto *m = parse_model(map ? map : empty, len, path, e);
  /* protobuf-c copied everything it needs: drop the file mapping before building. */
  if (map) munmap(map, len);
  if (!m) return VT_ERR_MODEL;
  char *dcopy = strdup(path);
  if (!dcopy) {
    onnx__model_proto__free_unpacked(m, NULL);
    return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path);
  }
  int rc = build_model(m, path, dirname(dcopy), out, e);
  free(dcopy);
  onnx__model_proto__free_unpacked(m, NULL);
  return rc;
}

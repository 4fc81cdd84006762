/* onnx_save.c — the ONNX writer: vt_graph -> ModelProto (ir_version 8), streamed to the file
 * through protobuf-c without a second copy of the weights. Constants become initializers with
 * raw_data; symbolic dims become dim_param; models whose weights would push the protobuf past
 * 2 GiB keep their large constants in an external data file next to the model. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fe_internal.h"
#include "frontend.h"

typedef struct saver {
  const vt_graph *g;
  const char *path;
  vt_error *e;
  vt_arena a;              /* every temporary proto struct lives here */
  const char **vname;      /* per value: the name written */
  /* external data */
  FILE *ext;
  const char *ext_loc;     /* file name relative to the model's folder */
  uint64_t ext_off;
  size_t ext_min;          /* constants with at least this many bytes go external */
} saver;

static void *A(saver *S, size_t n) { return vt_arena_alloc(&S->a, n ? n : 1); }

static void *new_msg(saver *S, size_t n, const void *init) {
  void *p = A(S, n);
  if (p) memcpy(p, init, n);
  return p;
}
#define NEW(S, T, INIT) ((T *)new_msg((S), sizeof(T), &(T)INIT))

static int oom(saver *S) { return vt_errorf(S->e, VT_ERR_MODEL, "%s: out of memory writing the model", S->path); }

static char *S_strdup(saver *S, const char *s) { return vt_arena_strdup(&S->a, s ? s : ""); }

static Onnx__TypeProto *make_type(saver *S, const vt_value *v) {
  Onnx__TypeProto *tp = NEW(S, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT);
  Onnx__TypeProto__Tensor *tt = NEW(S, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT);
  if (!tp || !tt) return NULL;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = 1;
  tt->elem_type = (int32_t)v->dtype;
  if (v->rank < 0) return tp;
  Onnx__TensorShapeProto *sh = NEW(S, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT);
  if (!sh) return NULL;
  tt->shape = sh;
  sh->n_dim = (size_t)v->rank;
  sh->dim = A(S, (size_t)v->rank * sizeof *sh->dim);
  if (!sh->dim) return NULL;
  for (int32_t i = 0; i < v->rank; i++) {
    Onnx__TensorShapeProto__Dimension *d =
        NEW(S, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT);
    if (!d) return NULL;
    if (vt_dim_is_const(v->dims[i])) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = v->dims[i];
    } else {
      char buf[256];
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = S_strdup(S, vt_dim_str(S->g, v->dims[i], buf, sizeof buf));
      if (!d->dim_param) return NULL;
    }
    sh->dim[i] = d;
  }
  return tp;
}

static Onnx__ValueInfoProto *make_vi(saver *S, int32_t v) {
  Onnx__ValueInfoProto *vi = NEW(S, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT);
  if (!vi) return NULL;
  vi->name = (char *)S->vname[v];
  vi->type = make_type(S, &S->g->values[v]);
  return vi->type ? vi : NULL;
}

static Onnx__StringStringEntryProto *kv(saver *S, const char *k, const char *v) {
  Onnx__StringStringEntryProto *p = NEW(S, Onnx__StringStringEntryProto, ONNX__STRING_STRING_ENTRY_PROTO__INIT);
  if (!p) return NULL;
  p->key = S_strdup(S, k);
  p->value = S_strdup(S, v);
  return p->key && p->value ? p : NULL;
}

/* Writes nbytes at a 64-byte aligned offset of the external data file. */
static int ext_write(saver *S, const void *data, size_t nbytes, uint64_t *off) {
  static const char zeros[64];
  size_t pad = (size_t)((64 - S->ext_off % 64) % 64);
  if (pad && fwrite(zeros, 1, pad, S->ext) != pad) goto fail;
  S->ext_off += pad;
  *off = S->ext_off;
  if (nbytes && fwrite(data, 1, nbytes, S->ext) != nbytes) goto fail;
  S->ext_off += nbytes;
  return VT_OK;
fail:
  return vt_errorf(S->e, VT_ERR_MODEL, "%s: writing external data '%s' failed: %s", S->path,
                   S->ext_loc, strerror(errno));
}

static int make_tensor(saver *S, const vt_tensor *t, const char *name, Onnx__TensorProto **out) {
  *out = NULL;
  Onnx__TensorProto *tp = NEW(S, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT);
  if (!tp) return oom(S);
  if (name && name[0] && !(tp->name = S_strdup(S, name))) return oom(S);
  if (t->rank < 0 || t->rank > VT_MAX_RANK)
    return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: tensor '%s' has rank %d", S->path, name ? name : "", (int)t->rank);
  tp->has_data_type = 1;
  tp->data_type = (int32_t)t->dtype;
  tp->n_dims = (size_t)t->rank;
  tp->dims = A(S, (size_t)t->rank * sizeof(int64_t));
  if (!tp->dims) return oom(S);
  for (int32_t i = 0; i < t->rank; i++) tp->dims[i] = t->dims[i];
  int64_t numel = vt_tensor_numel(t);
  if (numel < 0)
    return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: tensor '%s' has invalid dims", S->path, name ? name : "");
  if (t->dtype == VT_STRING) {
    const char *const *ss = (const char *const *)t->data;
    tp->n_string_data = (size_t)numel;
    tp->string_data = A(S, (size_t)numel * sizeof(ProtobufCBinaryData));
    if (!tp->string_data) return oom(S);
    for (int64_t i = 0; i < numel; i++) {
      const char *s = ss && ss[i] ? ss[i] : "";
      tp->string_data[i].data = (uint8_t *)s;
      tp->string_data[i].len = strlen(s);
    }
    *out = tp;
    return VT_OK;
  }
  size_t esz = vt_dtype_size(t->dtype);
  if (esz == 0)
    return vt_errorf(S->e, VT_ERR_MODEL, "%s: tensor '%s' has unsupported dtype %d", S->path,
                     name ? name : "", (int)t->dtype);
  size_t nbytes = (size_t)numel * esz;
  if (nbytes > 0 && !t->data)
    return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: constant '%s' has no data", S->path, name ? name : "");
  if (S->ext && name && name[0] && nbytes >= S->ext_min && nbytes > 0) {
    uint64_t off = 0;
    int rc = ext_write(S, t->data, nbytes, &off);
    if (rc) return rc;
    char ob[32], lb[32];
    snprintf(ob, sizeof ob, "%llu", (unsigned long long)off);
    snprintf(lb, sizeof lb, "%zu", nbytes);
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    tp->n_external_data = 3;
    tp->external_data = A(S, 3 * sizeof *tp->external_data);
    if (!tp->external_data) return oom(S);
    if (!(tp->external_data[0] = kv(S, "location", S->ext_loc)) ||
        !(tp->external_data[1] = kv(S, "offset", ob)) || !(tp->external_data[2] = kv(S, "length", lb)))
      return oom(S);
  } else {
    /* The proto points at the graph's data: protobuf-c streams it out without copying. */
    tp->has_raw_data = 1;
    tp->raw_data.len = nbytes;
    tp->raw_data.data = (uint8_t *)t->data;
  }
  *out = tp;
  return VT_OK;
}

static int make_attr(saver *S, int32_t ni, const vt_attr *a, Onnx__AttributeProto **out) {
  const vt_graph *g = S->g;
  Onnx__AttributeProto *ap = NEW(S, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
  if (!ap) return oom(S);
  ap->name = (char *)a->name;
  ap->has_type = 1;
  ap->type = (Onnx__AttributeProto__AttributeType)a->type;
  switch (a->type) {
  case VT_ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; break;
  case VT_ATTR_INT: ap->has_i = 1; ap->i = a->i; break;
  case VT_ATTR_STRING:
    ap->has_s = 1;
    ap->s.data = (uint8_t *)(a->s ? a->s : "");
    ap->s.len = a->s_len ? a->s_len : (a->s ? strlen(a->s) : 0);
    break;
  case VT_ATTR_FLOATS: ap->n_floats = a->n > 0 ? (size_t)a->n : 0; ap->floats = a->floats; break;
  case VT_ATTR_INTS: ap->n_ints = a->n > 0 ? (size_t)a->n : 0; ap->ints = a->ints; break;
  case VT_ATTR_STRINGS: {
    size_t n = a->n > 0 ? (size_t)a->n : 0;
    ap->n_strings = n;
    ap->strings = A(S, n * sizeof(ProtobufCBinaryData));
    if (!ap->strings) return oom(S);
    for (size_t k = 0; k < n; k++) {
      const char *s = a->strings && a->strings[k] ? a->strings[k] : "";
      ap->strings[k].data = (uint8_t *)s;
      ap->strings[k].len = strlen(s);
    }
    break;
  }
  case VT_ATTR_TENSOR: {
    if (!a->t) return vt_node_errorf(g, ni, S->e, "attribute '%s' has no tensor", a->name);
    int rc = make_tensor(S, a->t, NULL, &ap->t);
    if (rc) return rc;
    break;
  }
  default:
    return vt_node_errorf(g, ni, S->e, "cannot write attribute '%s' of type %d", a->name, (int)a->type);
  }
  *out = ap;
  return VT_OK;
}

static int make_node(saver *S, int32_t ni, Onnx__NodeProto **out) {
  const vt_graph *g = S->g;
  const vt_node *n = &g->nodes[ni];
  if (n->op < 0 || n->op >= VT_OP_COUNT)
    return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: node %d has invalid op %d", S->path, (int)ni, (int)n->op);
  Onnx__NodeProto *np = NEW(S, Onnx__NodeProto, ONNX__NODE_PROTO__INIT);
  if (!np) return oom(S);
  const vt_op_info *oi = &vt_ops[n->op];
  np->op_type = (char *)oi->name;
  np->domain = oi->domain && oi->domain[0] ? (char *)oi->domain : NULL;
  np->name = n->name && n->name[0] ? (char *)n->name : NULL;
  np->n_input = (size_t)n->n_in;
  np->input = A(S, (size_t)n->n_in * sizeof(char *));
  np->n_output = (size_t)n->n_out;
  np->output = A(S, (size_t)n->n_out * sizeof(char *));
  np->n_attribute = (size_t)n->n_attr;
  np->attribute = A(S, (size_t)n->n_attr * sizeof(Onnx__AttributeProto *));
  if (!np->input || !np->output || !np->attribute) return oom(S);
  for (int32_t k = 0; k < n->n_in; k++) {
    int32_t v = n->in[k];
    if (v >= g->n_values) return vt_node_errorf(g, ni, S->e, "input %d refers to no value", (int)k);
    np->input[k] = v >= 0 ? (char *)S->vname[v] : "";
  }
  for (int32_t k = 0; k < n->n_out; k++) {
    int32_t v = n->out[k];
    if (v >= g->n_values) return vt_node_errorf(g, ni, S->e, "output %d refers to no value", (int)k);
    np->output[k] = v >= 0 ? (char *)S->vname[v] : "";
  }
  for (int32_t k = 0; k < n->n_attr; k++) {
    int rc = make_attr(S, ni, &n->attr[k], &np->attribute[k]);
    if (rc) return rc;
  }
  *out = np;
  return VT_OK;
}

/* opset imports: the graph's, plus every domain a node uses (version 1 for vtopt's own, 17 for
 * ai.onnx when the graph was built in memory without imports). */
static int make_opsets(saver *S, Onnx__ModelProto *m) {
  const vt_graph *g = S->g;
  size_t cap = (size_t)g->n_opsets + (size_t)VT_OP_COUNT + 1, n = 0;
  m->opset_import = A(S, cap * sizeof *m->opset_import);
  if (!m->opset_import) return oom(S);
  for (int32_t i = 0; i < g->n_opsets; i++) {
    const char *d = g->opsets[i].domain ? g->opsets[i].domain : "";
    if (!strcmp(d, "ai.onnx")) d = "";
    bool dup = false;
    for (size_t k = 0; k < n; k++) dup |= !strcmp(m->opset_import[k]->domain, d);
    if (dup) continue;
    Onnx__OperatorSetIdProto *os = NEW(S, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
    if (!os || !(os->domain = S_strdup(S, d))) return oom(S);
    os->has_version = 1;
    os->version = g->opsets[i].version;
    m->opset_import[n++] = os;
  }
  bool need_onnx = g->n_nodes == 0;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    int32_t op = g->nodes[i].op;
    if (op < 0 || op >= VT_OP_COUNT) continue;
    const char *d = vt_ops[op].domain ? vt_ops[op].domain : "";
    if (!strcmp(d, "ai.onnx")) d = "";
    if (!d[0]) need_onnx = true;
    bool have = false;
    for (size_t k = 0; k < n; k++) have |= !strcmp(m->opset_import[k]->domain, d);
    if (have || !d[0]) continue;
    Onnx__OperatorSetIdProto *os = NEW(S, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
    if (!os || !(os->domain = S_strdup(S, d))) return oom(S);
    os->has_version = 1;
    os->version = 1;
    m->opset_import[n++] = os;
  }
  bool have_onnx = false;
  for (size_t k = 0; k < n; k++) have_onnx |= !m->opset_import[k]->domain[0];
  if (need_onnx && !have_onnx) {
    Onnx__OperatorSetIdProto *os = NEW(S, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
    if (!os || !(os->domain = S_strdup(S, ""))) return oom(S);
    os->has_version = 1;
    os->version = 17;
    m->opset_import[n++] = os;
  }
  m->n_opset_import = n;
  return VT_OK;
}

static int build(saver *S, Onnx__ModelProto *m, Onnx__GraphProto *gp) {
  const vt_graph *g = S->g;
  int rc;
  m->has_ir_version = 1;
  m->ir_version = 8;
  m->producer_name = "vtopt";
  if ((rc = make_opsets(S, m))) return rc;
  m->graph = gp;
  gp->name = (char *)(g->name && g->name[0] ? g->name : "vtopt");

  /* value names: as in the graph; unnamed or clashing values get "_vt<index>" */
  S->vname = A(S, (size_t)g->n_values * sizeof(char *));
  if (!S->vname) return oom(S);
  for (int32_t v = 0; v < g->n_values; v++) {
    const char *nm = g->values[v].name;
    if (!nm || !nm[0]) {
      char buf[32];
      snprintf(buf, sizeof buf, "_vt%d", (int)v);
      if (!(nm = S_strdup(S, buf))) return oom(S);
    }
    S->vname[v] = nm;
  }

  /* nodes */
  gp->n_node = (size_t)g->n_nodes;
  gp->node = A(S, (size_t)g->n_nodes * sizeof *gp->node);
  if (!gp->node) return oom(S);
  for (int32_t i = 0; i < g->n_nodes; i++)
    if ((rc = make_node(S, i, &gp->node[i]))) return rc;

  /* used[v]: referenced by a node or an output (others are dropped unless constant/input) */
  uint8_t *used = A(S, (size_t)g->n_values);
  if (!used) return oom(S);
  for (int32_t i = 0; i < g->n_nodes; i++) {
    for (int32_t k = 0; k < g->nodes[i].n_in; k++) if (g->nodes[i].in[k] >= 0) used[g->nodes[i].in[k]] = 1;
    for (int32_t k = 0; k < g->nodes[i].n_out; k++) if (g->nodes[i].out[k] >= 0) used[g->nodes[i].out[k]] = 1;
  }

  size_t n_init = 0, n_vi = 0;
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &g->values[v];
    if (val->flags & VT_VAL_CONST) n_init++;
    else if (!(val->flags & (VT_VAL_INPUT | VT_VAL_OUTPUT)) && used[v] && val->dtype != VT_UNDEFINED) n_vi++;
  }
  gp->initializer = A(S, n_init * sizeof *gp->initializer);
  gp->value_info = A(S, n_vi * sizeof *gp->value_info);
  gp->input = A(S, (size_t)g->n_inputs * sizeof *gp->input);
  gp->output = A(S, (size_t)g->n_outputs * sizeof *gp->output);
  if (!gp->initializer || !gp->value_info || !gp->input || !gp->output) return oom(S);
  for (int32_t v = 0; v < g->n_values; v++) {
    const vt_value *val = &g->values[v];
    if (val->flags & VT_VAL_CONST) {
      if (!val->cdata)
        return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: constant '%s' has no data", S->path, S->vname[v]);
      if ((rc = make_tensor(S, val->cdata, S->vname[v], &gp->initializer[gp->n_initializer]))) return rc;
      gp->n_initializer++;
    } else if (!(val->flags & (VT_VAL_INPUT | VT_VAL_OUTPUT)) && used[v] && val->dtype != VT_UNDEFINED) {
      if (!(gp->value_info[gp->n_value_info++] = make_vi(S, v))) return oom(S);
    }
  }
  for (int32_t i = 0; i < g->n_inputs; i++) {
    int32_t v = g->inputs[i];
    if (v < 0 || v >= g->n_values) return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: bad graph input %d", S->path, (int)v);
    if (!(gp->input[gp->n_input++] = make_vi(S, v))) return oom(S);
  }
  for (int32_t i = 0; i < g->n_outputs; i++) {
    int32_t v = g->outputs[i];
    if (v < 0 || v >= g->n_values) return vt_errorf(S->e, VT_ERR_INTERNAL, "%s: bad graph output %d", S->path, (int)v);
    if (!(gp->output[gp->n_output++] = make_vi(S, v))) return oom(S);
  }
  return VT_OK;
}

typedef struct file_buf {
  ProtobufCBuffer base;
  FILE *f;
  int err;
} file_buf;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
  file_buf *fb = (file_buf *)b;
  if (!fb->err && len && fwrite(data, 1, len, fb->f) != len) fb->err = errno ? errno : EIO;
}

int fe_onnx_save_ext(const vt_graph *g, const char *path, size_t ext_min_total, vt_error *e) {
  saver S;
  memset(&S, 0, sizeof S);
  S.g = g;
  S.path = path;
  S.e = e;
  uint64_t total = 0;
  for (int32_t v = 0; v < g->n_values; v++)
    if ((g->values[v].flags & VT_VAL_CONST) && g->values[v].cdata) total += vt_tensor_nbytes(g->values[v].cdata);
  char *ext_path = NULL;
  if (total >= ext_min_total) {
    char *pc = strdup(path);
    if (!pc) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path);
    const char *base = basename(pc);
    size_t n = strlen(path) + 6;
    ext_path = malloc(n);
    char *loc = malloc(strlen(base) + 6);
    if (!ext_path || !loc) {
      free(pc); free(ext_path); free(loc);
      return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path);
    }
    snprintf(ext_path, n, "%s.data", path);
    snprintf(loc, strlen(base) + 6, "%s.data", base);
    free(pc);
    S.ext_loc = S_strdup(&S, loc);
    free(loc);
    S.ext_min = 1024;
    S.ext = fopen(ext_path, "wb");
    if (!S.ext || !S.ext_loc) {
      int rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot create external data file '%s': %s", path,
                         ext_path, strerror(errno));
      if (S.ext) fclose(S.ext);
      free(ext_path);
      vt_arena_free(&S.a);
      return rc;
    }
  }
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  int rc = build(&S, &m, &gp);
  if (S.ext) {
    if (fclose(S.ext) != 0 && !rc)
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: writing '%s' failed: %s", path, ext_path, strerror(errno));
    S.ext = NULL;
  }
  if (!rc) {
    size_t size = protobuf_c_message_get_packed_size(&m.base);
    if (size > FE_PROTO_MAX) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: the model would be %zu bytes, over protobuf's 2 GiB limit",
                     path, size);
    }
  }
  if (!rc) {
    FILE *f = fopen(path, "wb");
    if (!f) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot create: %s", path, strerror(errno));
    } else {
      file_buf fb = {{file_append}, f, 0};
      protobuf_c_message_pack_to_buffer(&m.base, &fb.base);
      int cerr = fclose(f);
      if (fb.err || cerr != 0) {
        rc = vt_errorf(e, VT_ERR_MODEL, "%s: write failed: %s", path, strerror(fb.err ? fb.err : errno));
        unlink(path);
      }
    }
  }
  if (rc && ext_path) unlink(ext_path);
  free(ext_path);
  vt_arena_free(&S.a);
  return rc;
}

int vt_onnx_save(const vt_graph *g, const char *path, vt_error *e) {
  /* Keep the protobuf itself well under 2 GiB: large weights go to external data. */
  return fe_onnx_save_ext(g, path, (size_t)1 << 30, e);
}

/* print.c — the stable text form of a graph (golden output in tests) and the `vtopt inspect`
 * summary: inputs, outputs, nodes with output shapes, op histogram. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

const char *vt_value_type_str(const vt_graph *g, const vt_value *v, char *buf, size_t n) {
  size_t off = (size_t)snprintf(buf, n, "%s", vt_dtype_name(v->dtype));
  if (v->rank < 0) {
    if (off < n) snprintf(buf + off, n - off, "[?]");
    return buf;
  }
  if (off < n) off += (size_t)snprintf(buf + off, n - off, "[");
  for (int32_t d = 0; d < v->rank && off < n; d++) {
    char s[128];
    off += (size_t)snprintf(buf + off, n - off, "%s%s", d ? "," : "", vt_dim_str(g, v->dims[d], s, sizeof s));
  }
  if (off < n) snprintf(buf + off, n - off, "]");
  return buf;
}

static void print_attr(FILE *f, const vt_attr *a) {
  fprintf(f, "%s=", a->name);
  switch (a->type) {
    case VT_ATTR_FLOAT: fprintf(f, "%g", (double)a->f); break;
    case VT_ATTR_INT: fprintf(f, "%lld", (long long)a->i); break;
    case VT_ATTR_STRING: fprintf(f, "\"%s\"", a->s ? a->s : ""); break;
    case VT_ATTR_INTS:
      fputc('[', f);
      for (int32_t i = 0; i < a->n; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)a->ints[i]);
      fputc(']', f);
      break;
    case VT_ATTR_FLOATS:
      fputc('[', f);
      for (int32_t i = 0; i < a->n; i++) fprintf(f, "%s%g", i ? "," : "", (double)a->floats[i]);
      fputc(']', f);
      break;
    case VT_ATTR_STRINGS:
      fputc('[', f);
      for (int32_t i = 0; i < a->n; i++) fprintf(f, "%s\"%s\"", i ? "," : "", a->strings[i]);
      fputc(']', f);
      break;
    case VT_ATTR_TENSOR:
      if (a->t) {
        fprintf(f, "tensor<%s[", vt_dtype_name(a->t->dtype));
        for (int32_t d = 0; d < a->t->rank; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)a->t->dims[d]);
        fprintf(f, "]>");
      }
      break;
    default: fprintf(f, "?"); break;
  }
}

void vt_graph_print(const vt_graph *g, FILE *f) {
  char buf[512];
  fprintf(f, "graph %s {\n", g->name && g->name[0] ? g->name : "main");
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    fprintf(f, "  input %%%s: %s\n", v->name, vt_value_type_str(g, v, buf, sizeof buf));
  }
  int64_t nconst = 0, cbytes = 0;
  for (int32_t v = 0; v < g->n_values; v++)
    if (g->values[v].flags & VT_VAL_CONST) {
      nconst++;
      cbytes += (int64_t)vt_tensor_nbytes(g->values[v].cdata);
    }
  fprintf(f, "  constants: %lld (%lld bytes)\n", (long long)nconst, (long long)cbytes);
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    fprintf(f, "  ");
    for (int32_t o = 0; o < n->n_out; o++) {
      if (n->out[o] < 0) { fprintf(f, "%s_", o ? ", " : ""); continue; }
      const vt_value *v = &g->values[n->out[o]];
      fprintf(f, "%s%%%s: %s", o ? ", " : "", v->name, vt_value_type_str(g, v, buf, sizeof buf));
    }
    const vt_op_info *op = &vt_ops[n->op];
    fprintf(f, " = %s%s%s(", op->domain[0] ? op->domain : "", op->domain[0] ? "." : "", op->name);
    for (int32_t k = 0; k < n->n_in; k++) {
      if (n->in[k] < 0) fprintf(f, "%s_", k ? ", " : "");
      else fprintf(f, "%s%%%s", k ? ", " : "", g->values[n->in[k]].name);
    }
    fputc(')', f);
    if (n->n_attr) {
      fprintf(f, " {");
      for (int32_t a = 0; a < n->n_attr; a++) {
        if (a) fprintf(f, ", ");
        print_attr(f, &n->attr[a]);
      }
      fputc('}', f);
    }
    fprintf(f, "  # %s\n", n->name);
  }
  for (int32_t i = 0; i < g->n_outputs; i++) {
    const vt_value *v = &g->values[g->outputs[i]];
    fprintf(f, "  output %%%s: %s\n", v->name, vt_value_type_str(g, v, buf, sizeof buf));
  }
  fprintf(f, "}\n");
}

typedef struct { int op; int count; } op_count;

static int by_count(const void *a, const void *b) {
  const op_count *x = a, *y = b;
  if (x->count != y->count) return y->count - x->count;
  return strcmp(vt_ops[x->op].name, vt_ops[y->op].name);
}

void vt_graph_print_summary(const vt_graph *g, FILE *f) {
  char buf[512];
  fprintf(f, "model: %s\n", g->path);
  fprintf(f, "ir_version: %lld  producer: %s %s\n", (long long)g->ir_version,
          g->producer_name ? g->producer_name : "", g->producer_version ? g->producer_version : "");
  fprintf(f, "opsets:");
  for (int32_t i = 0; i < g->n_opsets; i++)
    fprintf(f, " %s=%lld", g->opsets[i].domain && g->opsets[i].domain[0] ? g->opsets[i].domain : "ai.onnx",
            (long long)g->opsets[i].version);
  fprintf(f, "\n\ninputs (%d):\n", g->n_inputs);
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    fprintf(f, "  %-32s %s\n", v->name, vt_value_type_str(g, v, buf, sizeof buf));
  }
  fprintf(f, "outputs (%d):\n", g->n_outputs);
  for (int32_t i = 0; i < g->n_outputs; i++) {
    const vt_value *v = &g->values[g->outputs[i]];
    fprintf(f, "  %-32s %s\n", v->name, vt_value_type_str(g, v, buf, sizeof buf));
  }
  int64_t nconst = 0, cbytes = 0, nparams = 0;
  for (int32_t v = 0; v < g->n_values; v++)
    if (g->values[v].flags & VT_VAL_CONST) {
      nconst++;
      cbytes += (int64_t)vt_tensor_nbytes(g->values[v].cdata);
      nparams += vt_tensor_numel(g->values[v].cdata);
    }
  fprintf(f, "constants: %lld tensors, %lld elements, %.2f MB\n", (long long)nconst, (long long)nparams,
          (double)cbytes / 1e6);
  fprintf(f, "\nnodes (%d):\n", g->n_nodes);
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    fprintf(f, "  %4d %-22s %-40s ->", i, vt_ops[n->op].name, n->name);
    for (int32_t o = 0; o < n->n_out; o++) {
      if (n->out[o] < 0) { fprintf(f, " _"); continue; }
      fprintf(f, " %s", vt_value_type_str(g, &g->values[n->out[o]], buf, sizeof buf));
    }
    fputc('\n', f);
  }
  op_count *hist = calloc(VT_OP_COUNT + 1, sizeof *hist);
  if (!hist) return;
  int nh = 0;
  for (int op = 0; op < VT_OP_COUNT; op++) {
    int c = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) c += g->nodes[i].op == op;
    if (c) { hist[nh].op = op; hist[nh].count = c; nh++; }
  }
  qsort(hist, (size_t)nh, sizeof *hist, by_count);
  fprintf(f, "\nop histogram:\n");
  for (int i = 0; i < nh; i++) fprintf(f, "  %-24s %d\n", vt_ops[hist[i].op].name, hist[i].count);
  free(hist);
}

/* ops.c — the op table built from ops.def, lookup by name and domain, and the table of shape
 * inference functions (one vt_infer_ID per row; a missing one fails the link). */
#include "ir.h"

#include <string.h>

const vt_op_info vt_ops[VT_OP_COUNT + 1] = {
#define OP(id, name, dom, minin, maxin, minout, maxout, flags, schema) \
  {name, dom, minin, maxin, minout, maxout, flags, schema},
#include "ops.def"
#undef OP
  {0},
};

#define OP(id, name, dom, minin, maxin, minout, maxout, flags, schema) int vt_infer_##id(vt_infer_ctx *c);
#include "ops.def"
#undef OP

const vt_infer_fn vt_infer_fns[VT_OP_COUNT + 1] = {
#define OP(id, name, dom, minin, maxin, minout, maxout, flags, schema) vt_infer_##id,
#include "ops.def"
#undef OP
  0,
};

static const char *norm_domain(const char *d) {
  if (!d || strcmp(d, "ai.onnx") == 0) return "";
  return d;
}

int vt_op_lookup(const char *name, const char *domain) {
  domain = norm_domain(domain);
  for (int i = 0; i < VT_OP_COUNT; i++)
    if (strcmp(vt_ops[i].name, name) == 0 && strcmp(norm_domain(vt_ops[i].domain), domain) == 0)
      return i;
  return -1;
}

/* Schema lookup: returns the type letter of attribute `name` in the op's schema, or 0. */
char vt_op_attr_type(int op, const char *name) {
  const char *s = vt_ops[op].schema;
  size_t ln = strlen(name);
  while (s && *s) {
    const char *colon = strchr(s, ':');
    if (!colon) break;
    if ((size_t)(colon - s) == ln && strncmp(s, name, ln) == 0) return colon[1];
    s = strchr(colon, ',');
    if (s) s++;
  }
  return 0;
}

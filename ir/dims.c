/* dims.c — symbolic dimensions: named symbols and hash-consed expressions over them.
 * Invariant: an expression symbol never has two constant operands (those fold to a constant),
 * and commutative expressions (ADD, MUL, MAX, MIN) keep their operands ordered (a >= b as
 * int64, so a constant, when present, is always a: symbols encode below every constant). */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vt_dim add_sym(vt_graph *g, vt_sym s) {
  if (g->n_syms == g->cap_syms) {
    int32_t cap = g->cap_syms ? g->cap_syms * 2 : 64;
    vt_sym *n = realloc(g->syms, (size_t)cap * sizeof *n);
    VT_ASSERT(n != NULL);
    g->syms = n;
    g->cap_syms = cap;
  }
  g->syms[g->n_syms] = s;
  return vt_sym_dim(g->n_syms++);
}

vt_dim vt_dim_named(vt_graph *g, const char *name) {
  for (int32_t i = 0; i < g->n_syms; i++)
    if (g->syms[i].kind == VT_SYM_NAMED && strcmp(g->syms[i].name, name) == 0) return vt_sym_dim(i);
  vt_sym s = {.kind = VT_SYM_NAMED, .name = vt_arena_strdup(&g->arena, name), .upper = -1};
  VT_ASSERT(s.name != NULL);
  return add_sym(g, s);
}

vt_dim vt_dim_fresh(vt_graph *g) {
  char buf[32];
  snprintf(buf, sizeof buf, "?%d", g->n_syms);
  vt_sym s = {.kind = VT_SYM_NAMED, .name = vt_arena_strdup(&g->arena, buf), .upper = -1};
  VT_ASSERT(s.name != NULL);
  return add_sym(g, s);
}

static int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

static vt_dim expr(vt_graph *g, vt_sym_kind k, vt_dim a, vt_dim b) {
  if (k == VT_SYM_ADD || k == VT_SYM_MUL || k == VT_SYM_MAX || k == VT_SYM_MIN) {
    if (a < b) { vt_dim t = a; a = b; b = t; }
  }
  for (int32_t i = 0; i < g->n_syms; i++) {
    const vt_sym *s = &g->syms[i];
    if (s->kind == k && s->a == a && s->b == b) return vt_sym_dim(i);
  }
  /* A graph-less caller (constant-only contexts) must not reach here. */
  vt_sym s = {.kind = k, .a = a, .b = b, .upper = -1};
  return add_sym(g, s);
}

/* If d is (x + c) with a constant c, sets *x and *c and returns true. */
static bool split_add_const(const vt_graph *g, vt_dim d, vt_dim *x, int64_t *c) {
  if (vt_dim_is_const(d)) return false;
  const vt_sym *s = &g->syms[vt_dim_sym(d)];
  if (s->kind != VT_SYM_ADD || !vt_dim_is_const(s->a)) return false;
  *c = s->a;
  *x = s->b;
  return true;
}

vt_dim vt_dim_add(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return a + b;
  if (a == 0) return b;
  if (b == 0) return a;
  /* (x + c1) + c2 = x + (c1 + c2) */
  vt_dim x;
  int64_t c;
  if (vt_dim_is_const(b) && split_add_const(g, a, &x, &c)) return vt_dim_add(g, x, c + b);
  if (vt_dim_is_const(a) && split_add_const(g, b, &x, &c)) return vt_dim_add(g, x, c + a);
  return expr(g, VT_SYM_ADD, a, b);
}

vt_dim vt_dim_sub(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return a - b;
  if (b == 0) return a;
  if (a == b) return 0;
  /* (x + c1) - c2 = x + (c1 - c2) when that stays a sum of non-negative terms */
  vt_dim x;
  int64_t c;
  if (vt_dim_is_const(b) && split_add_const(g, a, &x, &c) && c >= b) return vt_dim_add(g, x, c - b);
  /* (x + y) - y = x */
  if (!vt_dim_is_const(a)) {
    const vt_sym *s = &g->syms[vt_dim_sym(a)];
    if (s->kind == VT_SYM_ADD && s->a == b) return s->b;
    if (s->kind == VT_SYM_ADD && s->b == b) return s->a;
  }
  return expr(g, VT_SYM_SUB, a, b);
}

vt_dim vt_dim_mul(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return a * b;
  if (a == 1) return b;
  if (b == 1) return a;
  if (a == 0 || b == 0) return 0;
  return expr(g, VT_SYM_MUL, a, b);
}

vt_dim vt_dim_div(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return b ? floordiv(a, b) : 0;
  if (b == 1) return a;
  if (a == b) return 1;
  /* (x * y) / y = x, and (c1 * x) / c2 = (c1/c2) * x when c2 divides c1 */
  if (!vt_dim_is_const(a)) {
    const vt_sym *s = &g->syms[vt_dim_sym(a)];
    if (s->kind == VT_SYM_MUL) {
      if (s->a == b) return s->b;
      if (s->b == b) return s->a;
      if (vt_dim_is_const(s->a) && vt_dim_is_const(b) && b > 0 && s->a % b == 0)
        return vt_dim_mul(g, s->a / b, s->b);
      /* (x * y) / z where x is itself divisible: try each operand */
      if (!vt_dim_is_const(s->a)) {
        const vt_sym *sa = &g->syms[vt_dim_sym(s->a)];
        if (sa->kind == VT_SYM_MUL && (sa->a == b || sa->b == b))
          return vt_dim_mul(g, sa->a == b ? sa->b : sa->a, s->b);
      }
      if (!vt_dim_is_const(s->b)) {
        const vt_sym *sb = &g->syms[vt_dim_sym(s->b)];
        if (sb->kind == VT_SYM_MUL && (sb->a == b || sb->b == b))
          return vt_dim_mul(g, s->a, sb->a == b ? sb->b : sb->a);
      }
    }
  }
  return expr(g, VT_SYM_DIV, a, b);
}

vt_dim vt_dim_ceildiv(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return b ? -floordiv(-a, b) : 0;
  if (b == 1) return a;
  return expr(g, VT_SYM_CEILDIV, a, b);
}

vt_dim vt_dim_mod(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return b ? a - floordiv(a, b) * b : 0;
  if (b == 1 || a == b) return 0;
  return expr(g, VT_SYM_MOD, a, b);
}

vt_dim vt_dim_max(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return a > b ? a : b;
  if (a == b) return a;
  return expr(g, VT_SYM_MAX, a, b);
}

vt_dim vt_dim_min(vt_graph *g, vt_dim a, vt_dim b) {
  if (vt_dim_is_const(a) && vt_dim_is_const(b)) return a < b ? a : b;
  if (a == b) return a;
  return expr(g, VT_SYM_MIN, a, b);
}

const char *vt_dim_str(const vt_graph *g, vt_dim d, char *buf, size_t n) {
  if (n == 0) return buf;
  if (vt_dim_is_const(d)) {
    snprintf(buf, n, "%lld", (long long)d);
    return buf;
  }
  int32_t i = vt_dim_sym(d);
  if (!g || i >= g->n_syms) {
    snprintf(buf, n, "?sym%d", i);
    return buf;
  }
  const vt_sym *s = &g->syms[i];
  if (s->kind == VT_SYM_NAMED) {
    snprintf(buf, n, "%s", s->name);
    return buf;
  }
  char a[128], b[128];
  vt_dim_str(g, s->a, a, sizeof a);
  vt_dim_str(g, s->b, b, sizeof b);
  switch (s->kind) {
    case VT_SYM_ADD: snprintf(buf, n, "(%s+%s)", b, a); break;  /* constant last reads better */
    case VT_SYM_SUB: snprintf(buf, n, "(%s-%s)", a, b); break;
    case VT_SYM_MUL: snprintf(buf, n, "(%s*%s)", b, a); break;
    case VT_SYM_DIV: snprintf(buf, n, "(%s/%s)", a, b); break;
    case VT_SYM_CEILDIV: snprintf(buf, n, "ceil(%s/%s)", a, b); break;
    case VT_SYM_MOD: snprintf(buf, n, "(%s%%%s)", a, b); break;
    case VT_SYM_MAX: snprintf(buf, n, "max(%s,%s)", a, b); break;
    case VT_SYM_MIN: snprintf(buf, n, "min(%s,%s)", a, b); break;
    default: snprintf(buf, n, "?"); break;
  }
  return buf;
}

int64_t vt_dim_eval(const vt_graph *g, vt_dim d, const int64_t *bind) {
  if (vt_dim_is_const(d)) return d;
  int32_t i = vt_dim_sym(d);
  if (!g || i >= g->n_syms) return -1;
  const vt_sym *s = &g->syms[i];
  if (s->kind == VT_SYM_NAMED) return bind ? bind[i] : -1;
  int64_t a = vt_dim_eval(g, s->a, bind), b = vt_dim_eval(g, s->b, bind);
  if (a < 0 || b < 0) return -1;
  switch (s->kind) {
    case VT_SYM_ADD: return a + b;
    case VT_SYM_SUB: return a - b >= 0 ? a - b : 0;
    case VT_SYM_MUL: return a * b;
    case VT_SYM_DIV: return b ? a / b : -1;
    case VT_SYM_CEILDIV: return b ? (a + b - 1) / b : -1;
    case VT_SYM_MOD: return b ? a % b : -1;
    case VT_SYM_MAX: return a > b ? a : b;
    case VT_SYM_MIN: return a < b ? a : b;
    default: return -1;
  }
}

int64_t vt_dim_upper(const vt_graph *g, vt_dim d) {
  if (vt_dim_is_const(d)) return d;
  int32_t i = vt_dim_sym(d);
  if (!g || i >= g->n_syms) return -1;
  const vt_sym *s = &g->syms[i];
  if (s->upper >= 0 || s->kind == VT_SYM_NAMED) return s->upper;
  int64_t a = vt_dim_upper(g, s->a), b = vt_dim_upper(g, s->b);
  switch (s->kind) {
    case VT_SYM_ADD: return a >= 0 && b >= 0 ? a + b : -1;
    case VT_SYM_MUL: return a >= 0 && b >= 0 ? a * b : -1;
    case VT_SYM_MAX: return a >= 0 && b >= 0 ? (a > b ? a : b) : -1;
    case VT_SYM_MIN: return a >= 0 && b >= 0 ? (a < b ? a : b) : a >= 0 ? a : b;
    case VT_SYM_SUB: return a;                                   /* b >= 0 */
    case VT_SYM_MOD: return b > 0 ? b - 1 : -1;
    case VT_SYM_DIV:                                             /* divisor >= 1 */
      return a >= 0 && vt_dim_is_const(s->b) && s->b > 0 ? a / s->b : a;
    case VT_SYM_CEILDIV:
      return a >= 0 && vt_dim_is_const(s->b) && s->b > 0 ? (a + s->b - 1) / s->b : a;
    default: return -1;
  }
}

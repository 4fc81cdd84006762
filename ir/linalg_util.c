/* linalg_util.c — conv/pool window geometry and the Einsum equation parser (see linalg_util.h). */
#include "linalg_util.h"

#include <stdio.h>
#include <string.h>

static int geom_err(char *err, size_t len, const char *msg, const char *what) {
  snprintf(err, len, msg, what);
  return -1;
}

static int read_ints(const vt_node *n, const char *name, int want, int64_t *dst, int64_t dflt,
                     int64_t minv, char *err, size_t len) {
  const int64_t *v;
  int32_t cnt = vt_attr_ints(n, name, &v);
  if (cnt < 0) {
    for (int i = 0; i < want; i++) dst[i] = dflt;
    return 0;
  }
  if (cnt != want) {
    snprintf(err, len, "attribute %s has %d values, expected %d", name, (int)cnt, want);
    return -1;
  }
  for (int i = 0; i < want; i++) {
    if (v[i] < minv || v[i] > ((int64_t)1 << 24)) {
      snprintf(err, len, "attribute %s has invalid value %lld", name, (long long)v[i]);
      return -1;
    }
    dst[i] = v[i];
  }
  return 0;
}

int vt_lgeom_read(const vt_node *n, int nsp, const vt_dim *wk, vt_lgeom *g, char *err, size_t len) {
  memset(g, 0, sizeof *g);
  if (nsp < 1 || nsp > VT_MAX_RANK - 2) {
    snprintf(err, len, "input rank %d is not supported (needs 1 to %d spatial dims)", nsp + 2,
             VT_MAX_RANK - 2);
    return -1;
  }
  g->nsp = nsp;
  const int64_t *ks;
  int32_t nk = vt_attr_ints(n, "kernel_shape", &ks);
  if (nk >= 0) {
    if (nk != nsp) {
      snprintf(err, len, "kernel_shape has %d values, expected %d", (int)nk, nsp);
      return -1;
    }
    for (int i = 0; i < nsp; i++) {
      if (ks[i] < 1 || ks[i] > ((int64_t)1 << 24))
        return geom_err(err, len, "kernel_shape has a value out of range%s", "");
      if (wk && vt_dim_is_const(wk[i]) && wk[i] != ks[i]) {
        snprintf(err, len, "kernel_shape[%d] = %lld does not match the weight's %lld", i,
                 (long long)ks[i], (long long)wk[i]);
        return -1;
      }
      g->k[i] = ks[i];
    }
  } else if (wk) {
    for (int i = 0; i < nsp; i++) {
      if (!vt_dim_is_const(wk[i]))
        return geom_err(err, len, "the weight's kernel dims are not known%s", "");
      if (wk[i] < 1 || wk[i] > ((int64_t)1 << 24))
        return geom_err(err, len, "the weight's kernel dims are out of range%s", "");
      g->k[i] = wk[i];
    }
  } else {
    return geom_err(err, len, "attribute kernel_shape is required%s", "");
  }
  if (read_ints(n, "strides", nsp, g->s, 1, 1, err, len)) return -1;
  if (read_ints(n, "dilations", nsp, g->d, 1, 1, err, len)) return -1;
  if (read_ints(n, "output_padding", nsp, g->op, 0, 0, err, len)) return -1;
  int64_t pads[2 * VT_MAX_RANK];
  if (read_ints(n, "pads", 2 * nsp, pads, 0, 0, err, len)) return -1;
  for (int i = 0; i < nsp; i++) {
    g->pb[i] = pads[i];
    g->pe[i] = pads[nsp + i];
  }
  const int64_t *os;
  int32_t no = vt_attr_ints(n, "output_shape", &os);
  if (no >= 0) {
    /* output_shape may list the full shape or only the spatial dims */
    if (no != nsp && no != nsp + 2) {
      snprintf(err, len, "output_shape has %d values, expected %d", (int)no, nsp);
      return -1;
    }
    g->n_oshape = nsp;
    for (int i = 0; i < nsp; i++) {
      g->oshape[i] = os[no - nsp + i];
      if (g->oshape[i] < 0) return geom_err(err, len, "output_shape has a negative value%s", "");
    }
  }
  g->ceil_mode = (int)vt_attr_int(n, "ceil_mode", 0);
  const char *ap = vt_attr_str(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "NOTSET") || !*ap) g->autopad = VT_AUTOPAD_NOTSET;
  else if (!strcmp(ap, "VALID")) g->autopad = VT_AUTOPAD_VALID;
  else if (!strcmp(ap, "SAME_UPPER")) g->autopad = VT_AUTOPAD_SAME_UPPER;
  else if (!strcmp(ap, "SAME_LOWER")) g->autopad = VT_AUTOPAD_SAME_LOWER;
  else return geom_err(err, len, "unknown auto_pad '%s'", ap);
  return 0;
}

int64_t vt_lgeom_out(const vt_lgeom *g, int i, int64_t in, int64_t *pb, int64_t *pe, char *err,
                     size_t len) {
  if (in < 0 || in > ((int64_t)1 << 40)) {
    snprintf(err, len, "spatial dim %d: input size %lld out of range", i, (long long)in);
    return -1;
  }
  int64_t dk = (g->k[i] - 1) * g->d[i] + 1, s = g->s[i], out;
  switch (g->autopad) {
  case VT_AUTOPAD_VALID:
    *pb = *pe = 0;
    if (in < dk) goto small;
    return (in - dk) / s + 1;
  case VT_AUTOPAD_SAME_UPPER:
  case VT_AUTOPAD_SAME_LOWER: {
    out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + dk - in;
    if (total < 0) total = 0;
    if (g->autopad == VT_AUTOPAD_SAME_UPPER) { *pb = total / 2; *pe = total - *pb; }
    else { *pe = total / 2; *pb = total - *pe; }
    return out;
  }
  default: {
    *pb = g->pb[i];
    *pe = g->pe[i];
    int64_t num = in + *pb + *pe - dk;
    if (num < 0) goto small;
    if (g->ceil_mode) {
      out = (num + s - 1) / s + 1;
      /* the last window must start inside the input or the begin padding */
      if ((out - 1) * s >= in + *pb) out--;
    } else {
      out = num / s + 1;
    }
    return out;
  }
  }
small:
  snprintf(err, len, "spatial dim %d: input size %lld (with pads) is smaller than the window %lld",
           i, (long long)in, (long long)dk);
  return -1;
}

int64_t vt_lgeom_out_t(const vt_lgeom *g, int i, int64_t in, int64_t *pb, int64_t *pe, char *err,
                       size_t len) {
  if (in < 1 || in > ((int64_t)1 << 36)) {
    snprintf(err, len, "spatial dim %d: input size %lld out of range", i, (long long)in);
    return -1;
  }
  int64_t dk = (g->k[i] - 1) * g->d[i] + 1, s = g->s[i];
  int64_t full = s * (in - 1) + g->op[i] + dk;
  int64_t out;
  if (g->n_oshape || g->autopad == VT_AUTOPAD_SAME_UPPER || g->autopad == VT_AUTOPAD_SAME_LOWER) {
    out = g->n_oshape ? g->oshape[i] : in * s;
    int64_t total = full - out;
    if (total < 0) {
      /* a larger output_shape acts as extra output_padding at the end */
      if (out - full > ((int64_t)1 << 40)) {
        snprintf(err, len, "output_shape[%d] = %lld is too large", i, (long long)out);
        return -1;
      }
      *pb = 0;
      *pe = total;
    } else if (g->autopad == VT_AUTOPAD_SAME_UPPER) { *pb = total / 2; *pe = total - *pb; }
    else { *pe = total / 2; *pb = total - *pe; }
    return out;
  }
  if (g->autopad == VT_AUTOPAD_VALID) { *pb = *pe = 0; }
  else { *pb = g->pb[i]; *pe = g->pe[i]; }
  out = full - *pb - *pe;
  if (out < 0) {
    snprintf(err, len, "spatial dim %d: pads exceed the output size", i);
    return -1;
  }
  return out;
}

/* ---------- Einsum ---------------------------------------------------------------------------- */
static int label_of(char ch) {
  if (ch >= 'a' && ch <= 'z') return ch - 'a';
  if (ch >= 'A' && ch <= 'Z') return 26 + ch - 'A';
  return -1;
}

/* Parses one term (no spaces) into letters with an ellipsis position; returns count or -1. */
static int parse_term(const char *s, size_t n, int8_t *labs, int *ell_pos, char *err, size_t len) {
  int cnt = 0;
  *ell_pos = -1;
  for (size_t i = 0; i < n;) {
    if (s[i] == '.') {
      if (i + 2 >= n || s[i + 1] != '.' || s[i + 2] != '.' || *ell_pos >= 0) goto bad;
      *ell_pos = cnt;
      i += 3;
      continue;
    }
    int l = label_of(s[i]);
    if (l < 0) goto bad;
    if (cnt >= VT_MAX_RANK) {
      snprintf(err, len, "einsum term '%.*s' has more than %d labels", (int)n, s, VT_MAX_RANK);
      return -1;
    }
    labs[cnt++] = (int8_t)l;
    i++;
  }
  return cnt;
bad:
  snprintf(err, len, "einsum term '%.*s' is malformed", (int)n, s);
  return -1;
}

int vt_einsum_parse(const char *eq, int nin, const int32_t *ranks, vt_einsum *e, char *err,
                    size_t len) {
  memset(e, 0, sizeof *e);
  if (nin < 1 || nin > VT_EINSUM_MAX_IN) {
    snprintf(err, len, "einsum with %d inputs is not supported (max %d)", nin, VT_EINSUM_MAX_IN);
    return -1;
  }
  char buf[512];
  size_t bl = 0;
  for (const char *p = eq; *p; p++) {
    if (*p == ' ' || *p == '\t') continue;
    if (bl + 1 >= sizeof buf) {
      snprintf(err, len, "einsum equation is too long");
      return -1;
    }
    buf[bl++] = *p;
  }
  buf[bl] = 0;
  const char *arrow = strstr(buf, "->");
  size_t lhs_len = arrow ? (size_t)(arrow - buf) : bl;
  e->nin = nin;
  int8_t letters[VT_EINSUM_MAX_IN][VT_MAX_RANK];
  int nlet[VT_EINSUM_MAX_IN], ellp[VT_EINSUM_MAX_IN];
  int term = 0;
  size_t start = 0;
  for (size_t i = 0; i <= lhs_len; i++) {
    if (i == lhs_len || buf[i] == ',') {
      if (term >= nin) {
        snprintf(err, len, "einsum equation '%s' has more terms than the %d inputs", eq, nin);
        return -1;
      }
      int c = parse_term(buf + start, i - start, letters[term], &ellp[term], err, len);
      if (c < 0) return -1;
      nlet[term] = c;
      term++;
      start = i + 1;
    }
  }
  if (term != nin) {
    snprintf(err, len, "einsum equation '%s' has %d terms but the node has %d inputs", eq, term, nin);
    return -1;
  }
  int n_ell = 0;
  for (int t = 0; t < nin; t++) {
    if (ranks[t] < 0) {
      snprintf(err, len, "input %d has unknown rank", t);
      return -1;
    }
    int extra = ranks[t] - nlet[t];
    if (ellp[t] < 0 ? extra != 0 : extra < 0) {
      snprintf(err, len, "einsum term %d has %d labels but input %d has rank %d", t, nlet[t], t,
               (int)ranks[t]);
      return -1;
    }
    if (extra > n_ell) n_ell = extra;
  }
  e->n_ell = n_ell;
  int count[VT_EINSUM_LABELS] = {0};
  bool any_ell = false;
  for (int t = 0; t < nin; t++) {
    int r = 0;
    int extra = ranks[t] - nlet[t];
    for (int l = 0; l <= nlet[t]; l++) {
      if (l == ellp[t]) {
        any_ell = true;
        for (int q = 0; q < extra; q++) e->lab[t][r++] = (int8_t)(52 + n_ell - extra + q);
      }
      if (l < nlet[t]) {
        e->lab[t][r++] = letters[t][l];
        count[letters[t][l]]++;
      }
    }
    e->rank[t] = r;
  }
  if (arrow) {
    int8_t ol[VT_MAX_RANK];
    int oell;
    int c = parse_term(arrow + 2, strlen(arrow + 2), ol, &oell, err, len);
    if (c < 0) return -1;
    if (c + (oell >= 0 ? n_ell : 0) > VT_MAX_RANK) {
      snprintf(err, len, "einsum output rank exceeds %d", VT_MAX_RANK);
      return -1;
    }
    int r = 0;
    bool seen[VT_EINSUM_LABELS] = {0};
    for (int l = 0; l <= c; l++) {
      if (l == oell)
        for (int q = 0; q < n_ell; q++) e->out[r++] = (int8_t)(52 + q);
      if (l < c) {
        if (!count[ol[l]]) {
          snprintf(err, len, "einsum output label '%c' does not appear in the inputs",
                   ol[l] < 26 ? 'a' + ol[l] : 'A' + ol[l] - 26);
          return -1;
        }
        if (seen[ol[l]]) {
          snprintf(err, len, "einsum output label repeated in '%s'", eq);
          return -1;
        }
        seen[ol[l]] = true;
        e->out[r++] = ol[l];
      }
    }
    e->nout = r;
  } else {
    int r = 0;
    if (any_ell)
      for (int q = 0; q < n_ell; q++) e->out[r++] = (int8_t)(52 + q);
    /* letters appearing once, in ASCII order (upper case first) */
    for (int l = 26; l < 52; l++)
      if (count[l] == 1) {
        if (r >= VT_MAX_RANK) goto toolong;
        e->out[r++] = (int8_t)l;
      }
    for (int l = 0; l < 26; l++)
      if (count[l] == 1) {
        if (r >= VT_MAX_RANK) goto toolong;
        e->out[r++] = (int8_t)l;
      }
    e->nout = r;
  }
  return 0;
toolong:
  snprintf(err, len, "einsum output rank exceeds %d", VT_MAX_RANK);
  return -1;
}

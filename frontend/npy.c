/* npy.c — NumPy .npy tensor files: versions 1.0/2.0/3.0, little-endian, C order, numeric and
 * bool dtypes. The header is parsed strictly; anything else is a clear error naming the file. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fe_internal.h"
#include "frontend.h"

#define NPY_MAX_HEADER (1u << 20)

static const struct { const char *code; vt_dtype dt; } npy_types[] = {
    {"f4", VT_F32}, {"f8", VT_F64}, {"f2", VT_F16}, {"i8", VT_I64}, {"i4", VT_I32},
    {"i2", VT_I16}, {"i1", VT_I8},  {"u1", VT_U8},  {"u2", VT_U16}, {"u4", VT_U32},
    {"u8", VT_U64}, {"b1", VT_BOOL},
};

/* ---------- header parsing: a Python dict literal of str keys ------------------------------- */
typedef struct hdr_parser { const char *p, *end; } hdr_parser;

static void skip_ws(hdr_parser *h) {
  while (h->p < h->end && isspace((unsigned char)*h->p)) h->p++;
}

static bool accept(hdr_parser *h, char c) {
  skip_ws(h);
  if (h->p < h->end && *h->p == c) { h->p++; return true; }
  return false;
}

/* A quoted string into buf (no escapes; numpy never writes any in headers). */
static bool parse_str(hdr_parser *h, char *buf, size_t n) {
  skip_ws(h);
  if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return false;
  char q = *h->p++;
  size_t k = 0;
  while (h->p < h->end && *h->p != q) {
    if (*h->p == '\\' || k + 1 >= n) return false;
    buf[k++] = *h->p++;
  }
  if (h->p >= h->end) return false;
  h->p++;
  buf[k] = 0;
  return true;
}

static bool parse_word(hdr_parser *h, const char *w) {
  skip_ws(h);
  size_t n = strlen(w);
  if ((size_t)(h->end - h->p) >= n && !memcmp(h->p, w, n)) { h->p += n; return true; }
  return false;
}

static bool parse_shape(hdr_parser *h, int32_t *rank, int64_t *dims, const char **why) {
  *rank = 0;
  if (!accept(h, '(')) { *why = "shape is not a tuple"; return false; }
  for (;;) {
    if (accept(h, ')')) return true;
    skip_ws(h);
    if (h->p >= h->end || !isdigit((unsigned char)*h->p)) { *why = "bad shape tuple"; return false; }
    int64_t v = 0;
    while (h->p < h->end && isdigit((unsigned char)*h->p)) {
      if (v > (INT64_MAX - 9) / 10) { *why = "shape dim too large"; return false; }
      v = v * 10 + (*h->p++ - '0');
    }
    if (h->p < h->end && *h->p == 'L') h->p++;
    if (*rank >= VT_MAX_RANK) { *why = "rank exceeds vtopt's maximum of 8"; return false; }
    dims[(*rank)++] = v;
    if (accept(h, ',')) continue;
    if (accept(h, ')')) return true;
    *why = "bad shape tuple";
    return false;
  }
}

static int npy_fail(const char *path, vt_error *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int npy_fail(const char *path, vt_error *e, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vt_errorf(e, VT_ERR_MODEL, "%s: %s", path, msg);
}

static int parse_header(const char *path, const char *hdr, size_t len, vt_dtype *dt,
                        int32_t *rank, int64_t *dims, vt_error *e) {
  hdr_parser h = {hdr, hdr + len};
  bool have_descr = false, have_fo = false, have_shape = false;
  const char *why = "bad header";
  if (!accept(&h, '{')) return npy_fail(path, e, "bad .npy header: expected a dict");
  for (;;) {
    if (accept(&h, '}')) break;
    char key[64], val[64];
    if (!parse_str(&h, key, sizeof key) || !accept(&h, ':'))
      return npy_fail(path, e, "bad .npy header: expected 'key': value");
    if (!strcmp(key, "descr")) {
      skip_ws(&h);
      if (h.p < h.end && *h.p == '[')
        return npy_fail(path, e, "structured .npy dtypes are not supported");
      if (!parse_str(&h, val, sizeof val)) return npy_fail(path, e, "bad .npy header: descr is not a string");
      const char *code = val;
      char order = '|';
      if (*code == '<' || *code == '>' || *code == '|' || *code == '=') order = *code++;
      int found = -1;
      for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (!strcmp(code, npy_types[i].code)) found = (int)i;
      if (found < 0) return npy_fail(path, e, "unsupported .npy dtype '%s'", val);
      if (order == '>' && vt_dtype_size(npy_types[found].dt) > 1)
        return npy_fail(path, e, "big-endian .npy data ('%s') is not supported", val);
      *dt = npy_types[found].dt;
      have_descr = true;
    } else if (!strcmp(key, "fortran_order")) {
      if (parse_word(&h, "True"))
        return npy_fail(path, e, "fortran_order True is not supported (save the array in C order)");
      if (!parse_word(&h, "False")) return npy_fail(path, e, "bad .npy header: fortran_order");
      have_fo = true;
    } else if (!strcmp(key, "shape")) {
      if (!parse_shape(&h, rank, dims, &why)) return npy_fail(path, e, "bad .npy header: %s", why);
      have_shape = true;
    } else {
      return npy_fail(path, e, "bad .npy header: unknown key '%s'", key);
    }
    if (accept(&h, ',')) continue;
    if (accept(&h, '}')) break;
    return npy_fail(path, e, "bad .npy header: expected ',' or '}'");
  }
  if (!have_descr || !have_fo || !have_shape)
    return npy_fail(path, e, "bad .npy header: missing %s", !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");
  skip_ws(&h);
  while (h.p < h.end && (*h.p == '\0')) h.p++;
  if (h.p != h.end) return npy_fail(path, e, "bad .npy header: trailing characters");
  return VT_OK;
}

int vt_npy_read(const char *path, vt_tensor *t, vt_error *e) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "rb");
  if (!f) return vt_errorf(e, VT_ERR_MODEL, "%s: cannot open: %s", path, strerror(errno));
  int rc = VT_OK;
  char *hdr = NULL;
  struct stat st;
  uint8_t pre[12];
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = npy_fail(path, e, "not a regular file");
    goto done;
  }
  if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    rc = npy_fail(path, e, "not a .npy file (bad magic or truncated)");
    goto done;
  }
  uint8_t major = pre[6];
  size_t hlen, pos;
  if (major == 1) {
    if (fread(pre + 8, 1, 2, f) != 2) { rc = npy_fail(path, e, "truncated .npy header"); goto done; }
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (fread(pre + 8, 1, 4, f) != 4) { rc = npy_fail(path, e, "truncated .npy header"); goto done; }
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
    pos = 12;
  } else {
    rc = npy_fail(path, e, "unsupported .npy version %u.%u", (unsigned)major, (unsigned)pre[7]);
    goto done;
  }
  if (hlen > NPY_MAX_HEADER) { rc = npy_fail(path, e, "bad .npy header length %zu", hlen); goto done; }
  hdr = malloc(hlen + 1);
  if (!hdr) { rc = npy_fail(path, e, "out of memory"); goto done; }
  if (fread(hdr, 1, hlen, f) != hlen) { rc = npy_fail(path, e, "truncated .npy header"); goto done; }
  hdr[hlen] = 0;
  pos += hlen;
  vt_dtype dt = VT_UNDEFINED;
  int32_t rank = 0;
  int64_t dims[VT_MAX_RANK] = {0};
  if ((rc = parse_header(path, hdr, hlen, &dt, &rank, dims, e))) goto done;
  int64_t numel = vt_shape_numel(rank, dims);
  size_t esz = vt_dtype_size(dt);
  char dbuf[256];
  if (numel < 0 || (uint64_t)numel > (uint64_t)INT64_MAX / esz) {
    rc = npy_fail(path, e, "shape %s overflows", fe_dims_str(rank, dims, dbuf, sizeof dbuf));
    goto done;
  }
  uint64_t want = (uint64_t)numel * esz;
  uint64_t have = (uint64_t)st.st_size >= pos ? (uint64_t)st.st_size - pos : 0;
  if (have != want) {
    rc = npy_fail(path, e, "size mismatch: header says %s %s (%llu bytes of data), the file has %llu",
                  vt_dtype_name(dt), fe_dims_str(rank, dims, dbuf, sizeof dbuf),
                  (unsigned long long)want, (unsigned long long)have);
    goto done;
  }
  if ((rc = vt_tensor_alloc(t, dt, rank, dims, e))) goto done;
  if (want && fread(t->data, 1, (size_t)want, f) != (size_t)want) {
    rc = npy_fail(path, e, "truncated .npy data");
    goto done;
  }
  if (dt == VT_BOOL) {
    uint8_t *b = t->data;
    for (int64_t i = 0; i < numel; i++) b[i] = b[i] != 0;
  }
done:
  free(hdr);
  fclose(f);
  if (rc) vt_tensor_free(t);
  return rc;
}

int vt_npy_write(const char *path, const vt_tensor *t, vt_error *e) {
  const char *code = NULL;
  for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
    if (npy_types[i].dt == t->dtype) code = npy_types[i].code;
  if (!code)
    return vt_errorf(e, VT_ERR_MODEL, "%s: cannot write dtype %s to .npy", path, vt_dtype_name(t->dtype));
  if (t->rank < 0 || t->rank > VT_MAX_RANK)
    return vt_errorf(e, VT_ERR_MODEL, "%s: cannot write a tensor of rank %d", path, (int)t->rank);
  int64_t numel = vt_tensor_numel(t);
  if (numel < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: tensor has invalid dims", path);
  size_t nbytes = (size_t)numel * vt_dtype_size(t->dtype);
  if (nbytes && !t->data) return vt_errorf(e, VT_ERR_MODEL, "%s: tensor has no data", path);
  char shape[VT_MAX_RANK * 24 + 8];
  size_t k = 0;
  k += (size_t)snprintf(shape + k, sizeof shape - k, "(");
  for (int32_t i = 0; i < t->rank; i++)
    k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
  snprintf(shape + k, sizeof shape - k, "%s)", t->rank == 1 ? "," : "");
  char hdr[512];
  int hl = snprintf(hdr, sizeof hdr, "{'descr': '%c%s', 'fortran_order': False, 'shape': %s, }",
                    vt_dtype_size(t->dtype) == 1 ? '|' : '<', code, shape);
  /* magic(6) + version(2) + len(2) + header padded with spaces and '\n' to a multiple of 64 */
  size_t total = 10 + (size_t)hl + 1;
  size_t padded = (total + 63) / 64 * 64;
  size_t hlen = padded - 10;
  char buf[640];
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)(hlen & 0xff);
  buf[9] = (char)(hlen >> 8);
  memcpy(buf + 10, hdr, (size_t)hl);
  memset(buf + 10 + hl, ' ', hlen - (size_t)hl - 1);
  buf[padded - 1] = '\n';
  FILE *f = fopen(path, "wb");
  if (!f) return vt_errorf(e, VT_ERR_MODEL, "%s: cannot create: %s", path, strerror(errno));
  bool ok = fwrite(buf, 1, padded, f) == padded;
  if (ok && nbytes) ok = fwrite(t->data, 1, nbytes, f) == nbytes;
  if (fclose(f) != 0) ok = false;
  if (!ok) {
    remove(path);
    return vt_errorf(e, VT_ERR_MODEL, "%s: write failed: %s", path, strerror(errno));
  }
  return VT_OK;
}

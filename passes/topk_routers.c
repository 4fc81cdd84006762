/* topk_routers.c — the routers file of the `topk` pass (an uncompressed .npz: numpy's
 * np.load reads it, and so does this reader) and the retention table schedule. Arrays: wx
 * [P,D,H] f32, wc [P,Dc,H] f32 (absent without conditioning), el [L,H] f32, w [P,H] f32, table_t
 * [S] f32, table_k [S,L] i64, tokens [1] i64. */
#include "topk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- zip (stored entries only) and .npy ---------- */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
  static uint32_t table[256];
  static int ready;
  if (!ready) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = 1;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xFFFF); put16(p + 2, v >> 16); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

typedef struct { const char *name; const char *descr; int32_t rank; int64_t dims[3]; const void *data; size_t esize; } npy_entry;

/* The .npy bytes of one array (version 1.0 header padded to 64 bytes). */
static uint8_t *npy_bytes(const npy_entry *a, size_t *len) {
  char hdr[256], shape[96];
  size_t numel = 1;
  int off = 0;
  for (int32_t d = 0; d < a->rank; d++) {
    off += snprintf(shape + off, sizeof shape - (size_t)off, "%lld,%s", (long long)a->dims[d], a->rank > 1 && d + 1 < a->rank ? " " : "");
    numel *= (size_t)a->dims[d];
  }
  if (a->rank > 1) shape[off - 1] = 0;   /* (a, b) not (a, b,) */
  int h = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", a->descr, shape);
  int total = 10 + h + 1;
  int pad = (64 - total % 64) % 64;
  size_t hl = (size_t)(h + pad + 1);
  *len = 10 + hl + numel * a->esize;
  uint8_t *b = malloc(*len);
  if (!b) return NULL;
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  put16(b + 8, (uint32_t)hl);
  memcpy(b + 10, hdr, (size_t)h);
  memset(b + 10 + h, ' ', (size_t)pad);
  b[10 + hl - 1] = '\n';
  memcpy(b + 10 + hl, a->data, numel * a->esize);
  return b;
}

static int write_npz(const char *path, const npy_entry *arr, int n, vt_error *e) {
  FILE *f = fopen(path, "wb");
  if (!f) return vt_errorf(e, VT_ERR_MODEL, "%s: cannot write the routers file", path);
  uint8_t *cd = calloc((size_t)n, 46 + 64);
  uint32_t *offs = calloc((size_t)n, sizeof *offs);
  size_t cdlen = 0, pos = 0;
  int rc = cd && offs ? VT_OK : vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path);
  for (int i = 0; i < n && rc == VT_OK; i++) {
    size_t len;
    uint8_t *b = npy_bytes(&arr[i], &len);
    char fname[64];
    snprintf(fname, sizeof fname, "%s.npy", arr[i].name);
    size_t fl = strlen(fname);
    if (!b) { rc = vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path); break; }
    uint32_t crc = crc32_of(b, len);
    uint8_t lh[30] = {0};
    put32(lh, 0x04034b50);
    put16(lh + 4, 20);
    put32(lh + 14, crc);
    put32(lh + 18, (uint32_t)len);
    put32(lh + 22, (uint32_t)len);
    put16(lh + 26, (uint32_t)fl);
    offs[i] = (uint32_t)pos;
    if (fwrite(lh, 1, 30, f) != 30 || fwrite(fname, 1, fl, f) != fl || fwrite(b, 1, len, f) != len)
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: write failed", path);
    pos += 30 + fl + len;
    uint8_t *c = cd + cdlen;
    put32(c, 0x02014b50);
    put16(c + 4, 20);
    put16(c + 6, 20);
    put32(c + 16, crc);
    put32(c + 20, (uint32_t)len);
    put32(c + 24, (uint32_t)len);
    put16(c + 28, (uint32_t)fl);
    put32(c + 42, offs[i]);
    memcpy(c + 46, fname, fl);
    cdlen += 46 + fl;
    free(b);
  }
  if (rc == VT_OK) {
    uint8_t eo[22] = {0};
    put32(eo, 0x06054b50);
    put16(eo + 8, (uint32_t)n);
    put16(eo + 10, (uint32_t)n);
    put32(eo + 12, (uint32_t)cdlen);
    put32(eo + 16, (uint32_t)pos);
    if (fwrite(cd, 1, cdlen, f) != cdlen || fwrite(eo, 1, 22, f) != 22) rc = vt_errorf(e, VT_ERR_MODEL, "%s: write failed", path);
  }
  free(cd);
  free(offs);
  if (fclose(f) && rc == VT_OK) rc = vt_errorf(e, VT_ERR_MODEL, "%s: write failed", path);
  return rc;
}

/* Finds entry NAME.npy in the zip bytes; parses its header. Returns 0, or -1 if absent, -2 if malformed. */
static int npz_find(const uint8_t *z, size_t zl, const char *name, char *descr, int32_t *rank, int64_t *dims,
                    const uint8_t **data, size_t *dlen) {
  char want[80];
  snprintf(want, sizeof want, "%s.npy", name);
  size_t wl = strlen(want), p = 0;
  while (p + 30 <= zl && get32(z + p) == 0x04034b50) {
    uint32_t method = get16(z + p + 8), csize = get32(z + p + 18), usize = get32(z + p + 22);
    uint32_t fl = get16(z + p + 26), xl = get16(z + p + 28);
    size_t body = p + 30 + fl + xl;
    if (body > zl || csize > zl - body) return -2;
    if (fl == wl && !memcmp(z + p + 30, want, wl)) {
      if (method != 0 || csize != usize) return -2;   /* compressed (np.savez_compressed): not read */
      const uint8_t *b = z + body;
      if (csize < 10 || memcmp(b, "\x93NUMPY", 6)) return -2;
      uint32_t hl = b[6] == 1 ? get16(b + 8) : get32(b + 8);
      size_t hs = b[6] == 1 ? 10 : 12;
      if (hs + hl > csize || hl > 1000) return -2;
      char h[1024];
      memcpy(h, b + hs, hl);
      h[hl] = 0;
      const char *d = strstr(h, "'descr':"), *s = strstr(h, "'shape':");
      if (!d || !s || strstr(h, "'fortran_order': True")) return -2;
      if (sscanf(d, "'descr': '%7[^']'", descr) != 1) return -2;
      s = strchr(s, '(');
      if (!s) return -2;
      s++;
      *rank = 0;
      while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || *rank >= 3 || v < 0) return -2;
        dims[(*rank)++] = v;
        s = end;
      }
      *data = b + hs + hl;
      *dlen = csize - hs - hl;
      return 0;
    }
    p = body + csize;
  }
  return -1;
}

/* Copies array NAME (dtype descr, rank, dims -1 = any, recorded in got) out of the zip. */
static int npz_get(const char *path, const uint8_t *z, size_t zl, const char *name, const char *want_descr, int32_t rank,
                   const int64_t *want, int64_t *got, void **out, bool optional, vt_error *e) {
  char descr[8] = {0};
  int32_t r;
  int64_t dims[3] = {0};
  const uint8_t *data;
  size_t dlen;
  *out = NULL;
  int rc = npz_find(z, zl, name, descr, &r, dims, &data, &dlen);
  if (rc == -1) return optional ? VT_OK : vt_errorf(e, VT_ERR_MODEL, "%s: routers file: array '%s' is missing", path, name);
  if (rc) return vt_errorf(e, VT_ERR_MODEL, "%s: routers file: array '%s' is not an uncompressed .npy entry", path, name);
  if (strcmp(descr, want_descr) || r != rank)
    return vt_errorf(e, VT_ERR_MODEL, "%s: routers file: array '%s' is %s of rank %d, expected %s of rank %d", path, name,
                     descr, r, want_descr, rank);
  size_t numel = 1;
  for (int32_t d = 0; d < rank; d++) {
    if (want[d] >= 0 && dims[d] != want[d])
      return vt_errorf(e, VT_ERR_MODEL, "%s: routers file: array '%s' has dim %d = %lld, expected %lld", path, name, d,
                       (long long)dims[d], (long long)want[d]);
    got[d] = dims[d];
    numel *= (size_t)dims[d];
  }
  size_t es = want_descr[2] == '4' ? 4 : 8;
  if (numel * es > dlen) return vt_errorf(e, VT_ERR_MODEL, "%s: routers file: array '%s' is truncated", path, name);
  *out = malloc(numel * es + 1);
  if (!*out) return vt_errorf(e, VT_ERR_MODEL, "%s: out of memory", path);
  memcpy(*out, data, numel * es);
  return VT_OK;
}

void vt_topk_routers_free(vt_topk_routers *r) {
  free(r->wx);
  free(r->wc);
  free(r->el);
  free(r->w);
  free(r->table_t);
  free(r->table_k);
  memset(r, 0, sizeof *r);
}

int vt_topk_routers_load(const char *path, vt_topk_routers *r, vt_error *e) {
  memset(r, 0, sizeof *r);
  FILE *f = fopen(path, "rb");
  if (!f) return vt_errorf(e, VT_ERR_MODEL, "%s: cannot open the routers file", path);
  fseek(f, 0, SEEK_END);
  long zl = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *z = zl > 0 && zl < (1L << 30) ? malloc((size_t)zl) : NULL;
  if (!z || fread(z, 1, (size_t)zl, f) != (size_t)zl) {
    fclose(f);
    free(z);
    return vt_errorf(e, VT_ERR_MODEL, "%s: routers file: empty or unreadable", path);
  }
  fclose(f);
  int64_t any3[3] = {-1, -1, -1}, got[3], got2[3];
  void *tok = NULL;
  int rc = npz_get(path, z, (size_t)zl, "wx", "<f4", 3, any3, got, (void **)&r->wx, false, e);
  if (rc == VT_OK) {
    r->P = (int32_t)got[0];
    r->D = (int32_t)got[1];
    r->H = (int32_t)got[2];
    int64_t want[3] = {r->P, -1, r->H};
    rc = npz_get(path, z, (size_t)zl, "wc", "<f4", 3, want, got2, (void **)&r->wc, true, e);
    r->Dc = r->wc ? (int32_t)got2[1] : 0;
  }
  if (rc == VT_OK) {
    int64_t want[2] = {-1, r->H};
    rc = npz_get(path, z, (size_t)zl, "el", "<f4", 2, want, got, (void **)&r->el, false, e);
    r->L = (int32_t)got[0];
  }
  if (rc == VT_OK) {
    int64_t want[2] = {r->P, r->H};
    rc = npz_get(path, z, (size_t)zl, "w", "<f4", 2, want, got, (void **)&r->w, false, e);
  }
  if (rc == VT_OK) {
    int64_t want[1] = {-1};
    rc = npz_get(path, z, (size_t)zl, "table_t", "<f4", 1, want, got, (void **)&r->table_t, false, e);
    r->S = (int32_t)got[0];
  }
  if (rc == VT_OK) {
    int64_t want[2] = {r->S, r->L};
    rc = npz_get(path, z, (size_t)zl, "table_k", "<i8", 2, want, got, (void **)&r->table_k, false, e);
  }
  if (rc == VT_OK) {
    int64_t want[1] = {1};
    rc = npz_get(path, z, (size_t)zl, "tokens", "<i8", 1, want, got, &tok, false, e);
    if (rc == VT_OK) r->N = *(int64_t *)tok;
  }
  free(tok);
  free(z);
  if (rc == VT_OK && (r->P < 1 || r->D < 1 || r->H < 1 || r->L < 2 || r->S < 1 || r->P < (r->L - 1 + 1) / 2 || r->N < 1))
    rc = vt_errorf(e, VT_ERR_MODEL, "%s: routers file: inconsistent sizes (%d blocks, %d router pairs, width %d, hidden "
                   "%d, %d table rows, %lld tokens): a pair per two blocks after the first is needed", path, r->L, r->P,
                   r->D, r->H, r->S, (long long)r->N);
  for (int32_t s = 0; rc == VT_OK && s < r->S; s++)
    for (int32_t l = 0; l < r->L; l++) {
      int64_t k = r->table_k[(size_t)s * r->L + l];
      if (k < 1 || k > r->N) {
        rc = vt_errorf(e, VT_ERR_MODEL, "%s: routers file: table_k[%d][%d] (block %d) = %lld is outside [1, N=%lld]", path,
                       s, l, l, (long long)k, (long long)r->N);
        break;
      }
    }
  if (rc) vt_topk_routers_free(r);
  return rc;
}

int vt_topk_routers_save(const char *path, const vt_topk_routers *r, vt_error *e) {
  int64_t one = r->N;
  npy_entry a[7] = {
      {"wx", "<f4", 3, {r->P, r->D, r->H}, r->wx, 4},
      {"el", "<f4", 2, {r->L, r->H}, r->el, 4},
      {"w", "<f4", 2, {r->P, r->H}, r->w, 4},
      {"table_t", "<f4", 1, {r->S}, r->table_t, 4},
      {"table_k", "<i8", 2, {r->S, r->L}, r->table_k, 8},
      {"tokens", "<i8", 1, {1}, &one, 8},
      {"wc", "<f4", 3, {r->P, r->Dc, r->H}, r->wc, 4},
  };
  return write_npz(path, a, r->wc ? 7 : 6, e);
}

/* ---------- retention schedule ---------- */
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

void vt_topk_table(int32_t S, int32_t L, int64_t N, double R, double shape, int64_t k_fixed, float *ts, int64_t *k) {
  for (int32_t s = 0; s < S; s++) ts[s] = S > 1 ? (float)nearbyint(999.0 - 999.0 * s / (S - 1)) : 999.0f;
  /* layer term: +1 at block 1 .. -1 at the last; step term: -1 at the first (noisiest) step .. +1 */
  double lo = -20, hi = 20, b = 0;
  for (int it = 0; it < 100 && k_fixed <= 0; it++) {
    b = 0.5 * (lo + hi);
    double sum = 0;
    int cnt = 0;
    for (int32_t s = 0; s < S; s++)
      for (int32_t l = 1; l < L; l++) {
        double lt = L > 2 ? 1.0 - 2.0 * (l - 1) / (L - 2) : 0, st = S > 1 ? 2.0 * s / (S - 1) - 1.0 : 0;
        sum += sigm(b + shape * (lt + st));
        cnt++;
      }
    if (cnt == 0 || sum / cnt > R) hi = b;
    else lo = b;
  }
  for (int32_t s = 0; s < S; s++)
    for (int32_t l = 0; l < L; l++) {
      int64_t kk = N;
      if (l > 0) {
        if (k_fixed > 0) kk = k_fixed < N ? k_fixed : N;
        else {
          double lt = L > 2 ? 1.0 - 2.0 * (l - 1) / (L - 2) : 0, st = S > 1 ? 2.0 * s / (S - 1) - 1.0 : 0;
          kk = (int64_t)nearbyint((double)N * sigm(b + shape * (lt + st)));
          if (kk < 1) kk = 1;
          if (kk > N) kk = N;
        }
      }
      k[(size_t)s * L + l] = kk;
    }
}

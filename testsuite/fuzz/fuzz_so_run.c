/* fuzz_so_run.c — libFuzzer target for a fast.so's input checks: the bytes choose, per input and
 * output of the model's signature, either the exact tensor the signature asks for or one with
 * fuzzed dtype, rank (up to 12, beyond VTOPT_MAX_RANK), dims and a NULL data pointer, plus NULL
 * arrays, knob names and resets; the data is filled from the bytes (NaNs and all). Every call must
 * return VTOPT_OK or VTOPT_ERR_INPUT with a message; a run that succeeded must have been given
 * exactly the signature's tensors. The library is $VTOPT_FUZZ_SO (tag $VTOPT_FUZZ_TAG, default
 * "fz"), compiled by the vtopt of the same build (the fuzz build instruments its session code). */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vtopt/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct { int32_t dtype; int32_t rank; int64_t dims[VTOPT_MAX_RANK]; } spec;

static struct {
  void *dl;
  vtopt_session *s;
  int (*create)(int, vtopt_session **);
  int (*run)(vtopt_session *, const vtopt_tensor *, vtopt_tensor *);
  int (*reset)(vtopt_session *);
  int (*set)(vtopt_session *, const char *, double);
  const char *(*last_error)(const vtopt_session *);
  int n_in, n_out;
  spec specs[16];   /* inputs then outputs */
} m;

static void fail(const char *what, const char *msg) {
  fprintf(stderr, "fuzz_so_run: %s: %s\n", what, msg ? msg : "");
  abort();
}

static int dtype_number(const char *name, size_t len) {
  static const struct { const char *n; int t; } names[] = {
    {"f32", 1}, {"u8", 2}, {"i8", 3}, {"u16", 4}, {"i16", 5}, {"i32", 6}, {"i64", 7}, {"bool", 9},
    {"f16", 10}, {"f64", 11}, {"u32", 12}, {"u64", 13}, {"bf16", 16}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i].n) == len && !memcmp(names[i].n, name, len)) return names[i].t;
  return 0;
}

static size_t dtype_size(int32_t t) {
  switch (t) {
    case 1: case 6: case 12: return 4;
    case 2: case 3: case 9: return 1;
    case 4: case 5: case 10: case 16: return 2;
    case 7: case 11: case 13: return 8;
    default: return 0;
  }
}

/* The signature's "dtype":"..","dims":[..] entries in order; inputs come before "outputs". */
static void read_signature(const char *sig) {
  const char *outputs = strstr(sig, "\"outputs\"");
  if (!outputs) fail("signature without outputs", sig);
  int n = 0;
  for (const char *p = strstr(sig, "\"dtype\":\""); p; p = strstr(p, "\"dtype\":\"")) {
    if (n == 16) fail("more than 16 inputs and outputs", sig);
    p += 9;
    const char *q = strchr(p, '"');
    spec *sp = &m.specs[n];
    sp->dtype = q ? dtype_number(p, (size_t)(q - p)) : 0;
    const char *d = q ? strstr(q, "\"dims\":[") : NULL;
    if (!sp->dtype || !d) fail("unreadable signature", sig);
    d += 8;
    sp->rank = 0;
    while (*d && *d != ']') {
      char *end;
      sp->dims[sp->rank++] = strtoll(d, &end, 10);
      d = *end == ',' ? end + 1 : end;
      if (sp->rank > VTOPT_MAX_RANK) fail("rank", sig);
    }
    if (p < outputs) m.n_in = n + 1;
    n++;
    p = d;
  }
  m.n_out = n - m.n_in;
}

static void open_model(void) {
  const char *path = getenv("VTOPT_FUZZ_SO"), *tag = getenv("VTOPT_FUZZ_TAG");
  if (!path) fail("set VTOPT_FUZZ_SO", "the fast.so to fuzz");
  if (!tag) tag = "fz";
  m.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!m.dl) fail("dlopen", dlerror());
  char name[128];
#define SYM(field, suffix)                                      \
  snprintf(name, sizeof name, "%s_%s", tag, suffix);            \
  *(void **)&m.field = dlsym(m.dl, name);                       \
  if (!m.field) fail("missing symbol", name);
  const char *(*signature)(void);
  snprintf(name, sizeof name, "%s_signature", tag);
  *(void **)&signature = dlsym(m.dl, name);
  if (!signature) fail("missing symbol", name);
  SYM(create, "create") SYM(run, "run") SYM(reset, "reset") SYM(set, "set") SYM(last_error, "last_error")
#undef SYM
  read_signature(signature());
  if (m.create(1, &m.s) != VTOPT_OK) fail("create", m.last_error(NULL));
}

typedef struct { const uint8_t *p, *end; } rd;
static uint8_t byte(rd *r) { return r->p < r->end ? *r->p++ : 0; }

/* Builds tensor t: exact (spec) or fuzzed; returns false when it differs from the spec. */
static bool make_tensor(rd *r, const spec *sp, vtopt_tensor *t, void **buf) {
  memset(t, 0, sizeof *t);
  uint8_t mode = byte(r);
  bool exact = (mode & 7) != 0;   /* most tensors exact, so runs get past the first check */
  int rank_claimed;
  if (exact) {
    t->dtype = sp->dtype;
    t->rank = sp->rank;
    memcpy(t->dims, sp->dims, sizeof t->dims);
    rank_claimed = sp->rank;
  } else {
    t->dtype = (mode & 8) ? sp->dtype : (int32_t)byte(r) - 8;
    rank_claimed = (mode & 16) ? sp->rank : (int)(byte(r) % 13) - 1;
    t->rank = rank_claimed;
    for (int k = 0; k < VTOPT_MAX_RANK; k++)
      t->dims[k] = (mode & 32) && k < sp->rank ? sp->dims[k] : (int64_t)(int8_t)byte(r);
  }
  bool same = t->dtype == sp->dtype && t->rank == sp->rank &&
              !memcmp(t->dims, sp->dims, sizeof(int64_t) * (size_t)sp->rank);
  /* a buffer as large as the claimed shape when that is computable and small, else 64 bytes */
  size_t esz = dtype_size(t->dtype), n = esz;
  if (t->rank >= 0 && t->rank <= VTOPT_MAX_RANK)
    for (int k = 0; k < t->rank && n; k++) n = t->dims[k] < 0 || t->dims[k] > (1 << 22) ? 0 : n * (size_t)t->dims[k];
  else n = 0;
  if (!n || n > (1u << 20)) n = 64;   /* the model's tensors are smaller: keep runs fast */
  *buf = malloc(n);
  if (!*buf) fail("malloc", "");
  for (size_t i = 0; i < n; i++) ((uint8_t *)*buf)[i] = r->p < r->end ? r->p[i % (size_t)(r->end - r->p)] : (uint8_t)i;
  t->data = (!exact && (mode & 64)) ? NULL : *buf;
  if (!t->data) same = false;
  return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!m.dl) open_model();
  rd r = {data, data + size};
  uint8_t op = byte(&r);
  if (op % 16 == 1) {   /* a knob with a fuzzed name */
    char knob[32];
    size_t n = byte(&r) % sizeof knob;
    for (size_t i = 0; i < n; i++) knob[i] = (char)byte(&r);
    knob[n] = 0;
    int rc = m.set(m.s, knob, (double)(int8_t)byte(&r));
    if (rc != VTOPT_OK && (rc != VTOPT_ERR_INPUT || !m.last_error(m.s)[0])) fail("set", m.last_error(m.s));
    return 0;
  }
  if (op % 16 == 2 && m.reset(m.s) != VTOPT_OK) fail("reset", m.last_error(m.s));
  vtopt_tensor ts[16];
  void *bufs[16];
  bool all_same = true;
  for (int i = 0; i < m.n_in + m.n_out; i++) all_same &= make_tensor(&r, &m.specs[i], &ts[i], &bufs[i]);
  const vtopt_tensor *in = (op & 32) ? NULL : ts;
  vtopt_tensor *out = (op & 64) ? NULL : ts + m.n_in;
  if (!in || !out) all_same = false;
  int rc = m.run(m.s, in, out);
  if (getenv("VTOPT_FUZZ_VERBOSE")) fprintf(stderr, "run: rc %d%s%s\n", rc, rc ? ": " : "", rc ? m.last_error(m.s) : "");
  if (rc == VTOPT_OK && !all_same) fail("run accepted tensors that differ from the signature", "");
  if (rc != VTOPT_OK && (rc != VTOPT_ERR_INPUT || !m.last_error(m.s)[0])) fail("run: bad failure contract", m.last_error(m.s));
  for (int i = 0; i < m.n_in + m.n_out; i++) free(bufs[i]);
  return 0;
}

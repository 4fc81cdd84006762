/* calibrate.c — `vtopt calibrate MODEL.onnx --pass=topk[:R=..,steps=..,schedule=..] --data DIR -o
 * routers.npz`: router weights for the topk pass without training. The dense model runs (reference
 * interpreter) over calibration inputs (DIR/<input name>.npy for every graph input, dim 0 the
 * sample count: e.g. states x_t of the model's own sampling trajectories at several timesteps and
 * classes, with their t and y); per recognised block l >= 1 every token's relative update
 * u = ||Block(x)_i - x_i|| / ||x_i|| is recorded. The router of block pair p has fixed random
 * projections (Wx: N(0, 1/(D rms(x)^2)), Wc likewise on the conditioning vector, a random layer
 * embedding per block), so its features f = LayerNorm(SiLU(x Wx + c Wc + e_l)) are fixed, and its
 * output weights w are the closed-form ridge regression of log(u) on f over both blocks of the
 * pair (no backprop). The retention table comes from the pass parameters (R, steps, schedule).
 * Prints, per block, how much of the true top-k (by u) the router's top-k recovers, against a
 * random choice's k/N. */
#include "frontend.h"
#include "ir.h"
#include "cli.h"
#include "passes.h"
#include "runtime.h"
#include "topk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double rng_normal(uint64_t *s) {
  double u1 = ((rng_next(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (rng_next(s) >> 11) / 9007199254740992.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Router features of one token: f = LayerNorm(SiLU(x Wx + ctx)) (ctx = c Wc + e_l, length H). */
static void features(const float *x, int64_t D, const float *wx, const double *ctx, int32_t H, double *f) {
  double mean = 0, var = 0;
  for (int32_t h = 0; h < H; h++) {
    double a = ctx[h];
    for (int64_t d = 0; d < D; d++) a += (double)x[d] * wx[d * H + h];
    f[h] = a / (1.0 + exp(-a));
    mean += f[h];
  }
  mean /= H;
  for (int32_t h = 0; h < H; h++) var += (f[h] - mean) * (f[h] - mean);
  var /= H;
  double inv = 1.0 / sqrt(var + 1e-5);
  for (int32_t h = 0; h < H; h++) f[h] = (f[h] - mean) * inv;
}

/* Solves the SPD system A w = b (n x n, Cholesky in place). -1 if not positive definite. */
static int spd_solve(double *A, double *b, int n) {
  for (int j = 0; j < n; j++) {
    double s = A[j * n + j];
    for (int k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
    if (!(s > 0)) return -1;
    A[j * n + j] = sqrt(s);
    for (int i = j + 1; i < n; i++) {
      double t = A[i * n + j];
      for (int k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = t / A[j * n + j];
    }
  }
  for (int i = 0; i < n; i++) {
    double t = b[i];
    for (int k = 0; k < i; k++) t -= A[i * n + k] * b[k];
    b[i] = t / A[i * n + i];
  }
  for (int i = n - 1; i >= 0; i--) {
    double t = b[i];
    for (int k = i + 1; k < n; k++) t -= A[k * n + i] * b[k];
    b[i] = t / A[i * n + i];
  }
  return 0;
}

typedef struct { double s; int64_t i; } ranked;
static int cmp_ranked(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* schedule=measured: retention r(s, l) = sigmoid(b + log(u(s, l) / u_geo)) from the mean relative
 * update u of block l at table row s (rows without samples: the block's mean over all rows), b
 * chosen so the mean over the pruned blocks is R: blocks and steps that change tokens more keep
 * more of them. */
static void measured_table(vt_topk_routers *r, const double *usum, const double *ucnt, double R) {
  int32_t S = r->S, L = r->L;
  double *u = malloc((size_t)S * L * sizeof *u);
  if (!u) return;
  double lg = 0;
  int n = 0;
  for (int32_t l = 1; l < L; l++) {
    double bs = 0, bc = 0;
    for (int32_t s = 0; s < S; s++) { bs += usum[(size_t)s * L + l]; bc += ucnt[(size_t)s * L + l]; }
    double bm = bc > 0 ? bs / bc : 1.0;
    for (int32_t s = 0; s < S; s++) {
      double c = ucnt[(size_t)s * L + l];
      u[(size_t)s * L + l] = c > 0 ? usum[(size_t)s * L + l] / c : bm;
      lg += log(u[(size_t)s * L + l] + 1e-12);
      n++;
    }
  }
  lg /= n > 0 ? n : 1;
  double lo = -20, hi = 20, b = 0;
  for (int it = 0; it < 100; it++) {
    b = 0.5 * (lo + hi);
    double m = 0;
    for (int32_t s = 0; s < S; s++)
      for (int32_t l = 1; l < L; l++) m += 1.0 / (1.0 + exp(-(b + log(u[(size_t)s * L + l] + 1e-12) - lg)));
    if (m / n > R) hi = b;
    else lo = b;
  }
  for (int32_t s = 0; s < S; s++)
    for (int32_t l = 1; l < L; l++) {
      double rr = 1.0 / (1.0 + exp(-(b + log(u[(size_t)s * L + l] + 1e-12) - lg)));
      int64_t k = (int64_t)nearbyint(rr * (double)r->N);
      r->table_k[(size_t)s * L + l] = k < 1 ? 1 : k > r->N ? r->N : k;
    }
  free(u);
}

/* The output slot of value v, made an output when it is not one yet; -1 on OOM. */
static int32_t output_slot(vt_graph *g, int32_t v) {
  for (int32_t o = 0; o < g->n_outputs; o++)
    if (g->outputs[o] == v) return o;
  return vt_graph_add_output(g, v) < 0 ? -1 : g->n_outputs - 1;
}

static const char *calib_usage =
    "usage: vtopt calibrate MODEL.onnx --pass=topk[:R=0.8,steps=50,schedule=paper] --data DIR -o ROUTERS.npz\n"
    "                       [--batch B] [--threads N] [--seed S]\n"
    "  DIR holds one NAME.npy per graph input (dim 0: the calibration samples, e.g. states of the model's\n"
    "  own sampling trajectories with their timesteps and labels); the dense model runs over them and the\n"
    "  routers are fitted by ridge regression to each token's relative update ||Block(x)-x||/||x||.\n"
    "  schedule=measured: the retention table from the measured mean update per (step, block) instead\n"
    "  of the paper's shape (shallow blocks and late steps keep more).\n";

int cli_calibrate(int argc, char **argv) {
  const char *model = NULL, *data = NULL, *out = NULL, *spec = "topk";
  int64_t batch = 8, seed = 0;
  int threads = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "--pass=", 7)) spec = a + 7;
    else if (!strcmp(a, "--data") && i + 1 < argc) data = argv[++i];
    else if (!strcmp(a, "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(a, "--batch") && i + 1 < argc) batch = atoll(argv[++i]);
    else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(a, "--seed") && i + 1 < argc) seed = atoll(argv[++i]);
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(calib_usage, stdout); return 0; }
    else if (a[0] != '-' && !model) model = a;
    else { fprintf(stderr, "vtopt calibrate: unknown argument '%s'\n%s", a, calib_usage); return 2; }
  }
  if (!model || !data || !out || batch < 1) { fputs(calib_usage, stderr); return 2; }
  vt_error e = {0};
  /* the pass parameters: topk[:K=V,...] */
  const vt_pass_info *pi = vt_pass_find("topk");
  vt_pass_params pp;
  int rc = vt_pass_params_default(pi, &pp, &e);
  if (strncmp(spec, "topk", 4) || (spec[4] && spec[4] != ':')) {
    fprintf(stderr, "vtopt calibrate: --pass must be topk[:KEY=VALUE,...], got '%s'\n", spec);
    return 2;
  }
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", spec[4] ? spec + 5 : "");
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv && rc == VT_OK; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) { fprintf(stderr, "vtopt calibrate: '%s' is not KEY=VALUE\n", kv); return 2; }
    *eq = 0;
    rc = vt_pass_params_set(&pp, kv, eq + 1, &e);
  }
  const char *sched = rc == VT_OK ? vt_param_str(&pp, "schedule") : "paper";
  if (rc == VT_OK && strcmp(sched, "paper") && strcmp(sched, "flat") && strcmp(sched, "measured"))
    rc = vt_errorf(&e, VT_ERR_MODEL, "--pass: topk: schedule must be paper, flat or measured, got '%s'", sched);
  vt_graph *g = NULL;
  if (rc == VT_OK) rc = vt_onnx_load(model, &g, &e);
  if (rc == VT_OK) rc = vt_graph_prepare(g, NULL, NULL, 0, &e);
  vt_pipeline pl = {0};
  vt_pipeline_opts po = {.out = stderr};
  if (rc == VT_OK) rc = vt_pipeline_run(&pl, g, &po, &e);
  int32_t L = 0, xin[VT_TOPK_MAX_LAYERS], xout[VT_TOPK_MAX_LAYERS], cond[VT_TOPK_MAX_LAYERS];
  if (rc == VT_OK) rc = vt_topk_block_values(g, &L, xin, xout, cond, &e);
  if (rc == VT_OK && L < 2) rc = vt_errorf(&e, VT_ERR_MODEL, "%s: topk: %d attention blocks recognised, need >= 2", model, L);
  int64_t N = 0, D = 0, Dc = 0;
  for (int32_t l = 0; rc == VT_OK && l < L; l++) {
    const vt_value *xv = &g->values[xin[l]];
    if (xv->rank != 3 || !vt_dim_is_const(xv->dims[1]) || !vt_dim_is_const(xv->dims[2]) || xout[l] < 0)
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: topk: block %d: stream '%s' is not [B,N,D] with constant N, D and an MLP "
                     "residual", model, l, xv->name);
    else if (l == 0) { N = xv->dims[1]; D = xv->dims[2]; }
    else if (xv->dims[1] != N || xv->dims[2] != D)
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: topk: block %d has another token count or width", model, l);
  }
  if (rc == VT_OK && cond[1] >= 0) Dc = g->values[cond[1]].dims[1];
  if (rc == VT_OK && !vt_dim_is_const(Dc)) Dc = 0;
  /* calibration inputs */
  int32_t nin = rc == VT_OK ? g->n_inputs : 0;
  vt_tensor *all = calloc((size_t)nin + 1, sizeof *all);
  int64_t M = -1;
  for (int32_t i = 0; rc == VT_OK && i < nin; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.npy", data, v->name);
    rc = vt_npy_read(path, &all[i], &e);
    if (rc) break;
    bool ok = all[i].rank == v->rank && all[i].dtype == v->dtype && all[i].rank >= 1;
    for (int32_t d = 1; ok && d < v->rank; d++) ok = !vt_dim_is_const(v->dims[d]) || v->dims[d] == all[i].dims[d];
    if (!ok) {
      char want[128];
      int off = snprintf(want, sizeof want, "%s [", vt_dtype_name(v->dtype));
      for (int32_t d = 0; d < v->rank; d++) {
        char db[48];
        off += snprintf(want + off, sizeof want - (size_t)off, "%s%s", d ? "," : "", d == 0 ? "M" : vt_dim_str(g, v->dims[d], db, 48));
      }
      snprintf(want + off, sizeof want - (size_t)off, "]");
      char got[128];
      off = snprintf(got, sizeof got, "%s [", vt_dtype_name(all[i].dtype));
      for (int32_t d = 0; d < all[i].rank; d++)
        off += snprintf(got + off, sizeof got - (size_t)off, "%s%lld", d ? "," : "", (long long)all[i].dims[d]);
      snprintf(got + off, sizeof got - (size_t)off, "]");
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: calibration input '%s' must be %s (dim 0: samples), got %s", path, v->name,
                     want, got);
    } else if (M >= 0 && all[i].dims[0] != M) {
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: %lld samples, the other inputs have %lld", path, (long long)all[i].dims[0], (long long)M);
    }
    M = all[i].dims[0];
  }
  if (rc == VT_OK && M < 1) rc = vt_errorf(&e, VT_ERR_MODEL, "%s: no calibration samples", data);
  /* the block values become outputs, so the interpreter keeps them */
  /* (each value once: a block's output is usually the next one's input) */
  int32_t oi[VT_TOPK_MAX_LAYERS], oo[VT_TOPK_MAX_LAYERS], oc = -1;
  for (int32_t l = 0; rc == VT_OK && l < L; l++) {
    oi[l] = output_slot(g, xin[l]);
    oo[l] = output_slot(g, xout[l]);
    if (oi[l] < 0 || oo[l] < 0) rc = vt_errorf(&e, VT_ERR_MODEL, "out of memory");
  }
  if (rc == VT_OK && Dc > 0 && (oc = output_slot(g, cond[1])) < 0) rc = vt_errorf(&e, VT_ERR_MODEL, "out of memory");
  vt_interp *it = NULL;
  if (rc == VT_OK) it = vt_interp_new(g, threads, &e);
  if (rc == VT_OK && !it) rc = VT_ERR_MODEL;
  const int32_t H = VT_TOPK_HIDDEN;
  int32_t P = L / 2;   /* pairs (1,2), (3,4), ...: blocks 1 .. L-1 */
  vt_topk_routers r = {.L = L, .P = P, .D = (int32_t)D, .Dc = (int32_t)Dc, .H = H, .N = N};
  size_t ntok = (size_t)M * (size_t)N;
  double *feat = NULL, *target = NULL;
  if (rc == VT_OK) {
    r.wx = calloc((size_t)P * D * H, sizeof *r.wx);
    r.wc = Dc > 0 ? calloc((size_t)P * Dc * H, sizeof *r.wc) : NULL;
    r.el = calloc((size_t)L * H, sizeof *r.el);
    r.w = calloc((size_t)P * H, sizeof *r.w);
    feat = malloc((size_t)L * ntok * H * sizeof *feat);
    target = malloc((size_t)L * ntok * sizeof *target);
    if (!r.wx || (Dc > 0 && !r.wc) || !r.el || !r.w || !feat || !target)
      rc = vt_errorf(&e, VT_ERR_MODEL, "calibrate: out of memory (%lld samples x %lld tokens x %d blocks)", (long long)M,
                     (long long)N, L);
  }
  uint64_t rs = (uint64_t)seed * 7919 + 17;
  for (size_t i = 0; rc == VT_OK && i < (size_t)L * H; i++) r.el[i] = (float)rng_normal(&rs);
  int32_t nout = g->n_outputs;
  vt_tensor *outs = calloc((size_t)nout, sizeof *outs);
  vt_tensor *ins = calloc((size_t)nin + 1, sizeof *ins);
  bool scaled = false;
  double *ctx = malloc((size_t)H * sizeof *ctx);
  /* schedule=measured: mean relative update per (table row, block); the row of a sample is the
   * one whose timestep is nearest the sample's (the graph's rank-1 f32 input) */
  int32_t S = rc == VT_OK ? (int32_t)vt_param_int(&pp, "steps") : 1;
  double *usum = calloc((size_t)S * L + 1, sizeof *usum), *ucnt = calloc((size_t)S * L + 1, sizeof *ucnt);
  int32_t t_in = -1;
  for (int32_t i = 0; i < nin; i++)
    if (all[i].rank == 1 && all[i].dtype == VT_F32) t_in = i;
  for (int64_t m0 = 0; rc == VT_OK && m0 < M; m0 += batch) {
    int64_t bsz = M - m0 < batch ? M - m0 : batch;
    for (int32_t i = 0; i < nin; i++) {
      ins[i] = all[i];
      ins[i].owned = false;
      ins[i].dims[0] = bsz;
      size_t row = vt_tensor_nbytes(&all[i]) / (size_t)M;
      ins[i].data = (char *)all[i].data + (size_t)m0 * row;
    }
    rc = vt_interp_run(it, ins, outs, &e);
    if (rc) break;
    if (!scaled) {   /* the random projections, scaled to the first batch's token and conditioning rms */
      const vt_tensor *x1 = &outs[oi[1]];
      double ss = 0;
      for (int64_t i = 0; i < vt_tensor_numel(x1); i++) ss += (double)((float *)x1->data)[i] * ((float *)x1->data)[i];
      double rms = sqrt(ss / (double)vt_tensor_numel(x1)) + 1e-12;
      for (size_t i = 0; i < (size_t)P * D * H; i++) r.wx[i] = (float)(rng_normal(&rs) / (sqrt((double)D) * rms));
      if (Dc > 0) {
        const vt_tensor *c1 = &outs[oc];
        double cs = 0;
        for (int64_t i = 0; i < vt_tensor_numel(c1); i++) cs += (double)((float *)c1->data)[i] * ((float *)c1->data)[i];
        double crms = sqrt(cs / (double)vt_tensor_numel(c1)) + 1e-12;
        for (size_t i = 0; i < (size_t)P * Dc * H; i++) r.wc[i] = (float)(rng_normal(&rs) / (sqrt((double)Dc) * crms));
      }
      scaled = true;
    }
    for (int32_t l = 1; l < L; l++) {
      int32_t p = vt_topk_pair(l);
      const float *xs = outs[oi[l]].data, *ys = outs[oo[l]].data;
      const float *cs = Dc > 0 ? outs[oc].data : NULL;
      for (int64_t b = 0; b < bsz; b++) {
        for (int32_t h = 0; h < H; h++) {
          double a = r.el[(size_t)l * H + h];
          for (int64_t d = 0; cs && d < Dc; d++) a += (double)cs[b * Dc + d] * r.wc[((size_t)p * Dc + d) * H + h];
          ctx[h] = a;
        }
        for (int64_t n = 0; n < N; n++) {
          const float *xr = xs + (b * N + n) * D, *yr = ys + (b * N + n) * D;
          size_t tok = (size_t)(m0 + b) * N + n;
          double du = 0, xx = 0;
          for (int64_t d = 0; d < D; d++) {
            du += ((double)yr[d] - xr[d]) * ((double)yr[d] - xr[d]);
            xx += (double)xr[d] * xr[d];
          }
          target[(size_t)l * ntok + tok] = 0.5 * log((du + 1e-12) / (xx + 1e-12));
          if (usum) {
            int32_t row = 0;
            if (t_in >= 0 && S > 1) {
              double tv = ((const float *)all[t_in].data)[m0 + b];
              row = (int32_t)nearbyint((999.0 - tv) * (S - 1) / 999.0);
              row = row < 0 ? 0 : row >= S ? S - 1 : row;
            }
            usum[(size_t)row * L + l] += sqrt((du + 1e-12) / (xx + 1e-12));
            ucnt[(size_t)row * L + l] += 1;
          }
          features(xr, D, r.wx + (size_t)p * D * H, ctx, H, feat + ((size_t)l * ntok + tok) * H);
        }
      }
    }
    for (int32_t o = 0; o < nout; o++) vt_tensor_free(&outs[o]);
  }
  /* ridge regression per pair: [f, 1] -> log u */
  const int n1 = H + 1;
  double *A = malloc((size_t)n1 * n1 * sizeof *A), *bv = malloc((size_t)n1 * sizeof *bv);
  double *fr = malloc((size_t)n1 * sizeof *fr);
  for (int32_t p = 0; rc == VT_OK && p < P; p++) {
    memset(A, 0, (size_t)n1 * n1 * sizeof *A);
    memset(bv, 0, (size_t)n1 * sizeof *bv);
    for (int32_t l = 2 * p + 1; l <= 2 * p + 2 && l < L; l++)
      for (size_t t = 0; t < ntok; t++) {
        memcpy(fr, feat + ((size_t)l * ntok + t) * H, (size_t)H * sizeof *fr);
        fr[H] = 1.0;
        double y = target[(size_t)l * ntok + t];
        for (int i = 0; i < n1; i++) {
          bv[i] += fr[i] * y;
          for (int j = 0; j <= i; j++) A[i * n1 + j] += fr[i] * fr[j];
        }
      }
    double tr = 0;
    for (int i = 0; i < n1; i++) tr += A[i * n1 + i];
    for (int i = 0; i < n1; i++) {
      A[i * n1 + i] += 1e-3 * tr / n1 + 1e-9;
      for (int j = i + 1; j < n1; j++) A[i * n1 + j] = A[j * n1 + i];
    }
    if (spd_solve(A, bv, n1)) rc = vt_errorf(&e, VT_ERR_MODEL, "calibrate: block pair %d: the ridge system is singular", p);
    for (int32_t h = 0; rc == VT_OK && h < H; h++) r.w[(size_t)p * H + h] = (float)bv[h];
  }
  /* the table, and how well the routers rank tokens on the calibration set */
  if (rc == VT_OK) {
    r.S = (int32_t)vt_param_int(&pp, "steps");
    r.table_t = malloc((size_t)r.S * sizeof *r.table_t);
    r.table_k = malloc((size_t)r.S * L * sizeof *r.table_k);
    if (!r.table_t || !r.table_k) rc = vt_errorf(&e, VT_ERR_MODEL, "out of memory");
    else vt_topk_table(r.S, L, N, vt_param_float(&pp, "R"), strcmp(sched, "flat") ? 0.75 : 0.0,
                       vt_param_int(&pp, "k"), r.table_t, r.table_k);
    if (rc == VT_OK && !strcmp(sched, "measured") && vt_param_int(&pp, "k") <= 0 && usum && ucnt)
      measured_table(&r, usum, ucnt, vt_param_float(&pp, "R"));
  }
  if (rc == VT_OK) {
    int64_t k = (int64_t)nearbyint(vt_param_float(&pp, "R") * (double)N);
    if (k < 1) k = 1;
    ranked *tr = malloc((size_t)N * sizeof *tr), *pr = malloc((size_t)N * sizeof *pr);
    uint8_t *in_true = malloc((size_t)N);
    printf("calibrate: %s: %d blocks of %lld tokens x %lld, %lld samples, conditioning width %lld; recall of the true "
           "top-%lld (by relative update) per block, router vs random (%.3f):\n", model, L, (long long)N, (long long)D,
           (long long)M, (long long)Dc, (long long)k, (double)k / N);
    for (int32_t l = 1; l < L && tr && pr && in_true; l++) {
      int32_t p = vt_topk_pair(l);
      double hit = 0;
      for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
          size_t t = (size_t)m * N + n;
          tr[n].s = target[(size_t)l * ntok + t];
          tr[n].i = n;
          const double *f = feat + ((size_t)l * ntok + t) * H;
          double s = 0;
          for (int32_t h = 0; h < H; h++) s += f[h] * r.w[(size_t)p * H + h];
          pr[n].s = s;
          pr[n].i = n;
        }
        qsort(tr, (size_t)N, sizeof *tr, cmp_ranked);
        qsort(pr, (size_t)N, sizeof *pr, cmp_ranked);
        memset(in_true, 0, (size_t)N);
        for (int64_t j = 0; j < k; j++) in_true[tr[j].i] = 1;
        for (int64_t j = 0; j < k; j++) hit += in_true[pr[j].i];
      }
      printf("  block %2d (pair %d): router %.3f\n", l, p, hit / ((double)M * k));
    }
    free(tr);
    free(pr);
    free(in_true);
    rc = vt_topk_routers_save(out, &r, &e);
    if (rc == VT_OK) printf("calibrate: wrote %s (%d router pairs, d'=%d, table %d steps x %d blocks)\n", out, P, H, r.S, L);
  }
  free(usum);
  free(ucnt);
  free(A);
  free(bv);
  free(fr);
  free(ctx);
  free(feat);
  free(target);
  free(outs);
  free(ins);
  for (int32_t i = 0; i < nin; i++) vt_tensor_free(&all[i]);
  free(all);
  vt_topk_routers_free(&r);
  if (it) vt_interp_free(it);
  if (g) vt_graph_free(g);
  if (rc) fprintf(stderr, "vtopt: %s\n", e.msg);
  return rc;
}

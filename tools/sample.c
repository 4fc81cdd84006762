/* sample.c — `vtopt sample`: a DDIM sampler (eta = 0) with classifier-free guidance for
 * class-conditional DiT noise predictors (inputs x [B,C,H,W] f32, t [B] f32, y [B] i64; output
 * [B,C',H,W] whose first C channels are the predicted noise), driving the reference interpreter,
 * the LLVM JIT (--jit) or a compiled fast.so (through its ABI). The loop: DiT's linear beta
 * schedule (1e-4 .. 0.02 over 1000 steps), timesteps linspace(999, 0, steps) rounded (the rows of
 * the topk pass's retention table), with --cfg W > 0 each step runs [x; x] with labels [y; null]
 * and eps = eps_u + W (eps_c - eps_u); x0 is clipped to [-clip, clip] when --clip-x0 > 0. The
 * initial noise comes from --seed (the same for every strategy) or --noise FILE.npy. Writes
 * DIR/samples.npy (final x) and DIR/labels.npy; --save-states DIR2 writes every step's model
 * inputs (DIR2/x.npy, t.npy, y.npy: the calibration set format of `vtopt calibrate`). */
#include "frontend.h"
#include "ir.h"
#include "cli.h"
#include "codegen.h"
#include "passes.h"
#include "runtime.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *sample_usage =
    "usage: vtopt sample MODEL.onnx|FAST.so [--pass=LIST] [--jit] [--steps 50] [--cfg 4.0] [--classes 0,1,2,...]\n"
    "                    [--null K] [--seed S] [--noise FILE.npy] [--clip-x0 1] [--threads N] [--tag T]\n"
    "                    [-o DIR] [--save-states DIR2]\n"
    "  DDIM (eta 0) with classifier-free guidance over a class-conditional DiT (x, t, y -> noise);\n"
    "  --classes: one sample per listed class (default 0..9); --null: the unconditional label\n"
    "  (default 10); prints wall time per image; -o DIR gets samples.npy and labels.npy;\n"
    "  --save-states DIR2 writes each step's model inputs (x.npy, t.npy, y.npy) for vtopt calibrate.\n";

static uint64_t smix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double gauss(uint64_t *s) {
  double u1 = ((smix(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (smix(s) >> 11) / 9007199254740992.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

int cli_sample(int argc, char **argv) {
  const char *model = NULL, *outdir = NULL, *states = NULL, *noise = NULL, *tag = NULL, *classes = "0,1,2,3,4,5,6,7,8,9";
  int steps = 50, threads = 0;
  double cfg = 4.0, clip = 1.0;
  int64_t null_class = 10, seed = 0;
  bool jit = false;
  vt_pipeline pl = {0};
  vt_error e = {0};
  int rc = VT_OK;
  for (int i = 2; i < argc && rc == VT_OK; i++) {
    const char *a = argv[i];
    bool more = i + 1 < argc;
    if (!strncmp(a, "--pass=", 7)) {
      vt_pipeline_free(&pl);
      rc = vt_pipeline_parse(a + 7, &pl, &e);
    } else if (!strcmp(a, "--jit")) jit = true;
    else if (!strcmp(a, "--steps") && more) steps = atoi(argv[++i]);
    else if (!strcmp(a, "--cfg") && more) cfg = atof(argv[++i]);
    else if (!strcmp(a, "--classes") && more) classes = argv[++i];
    else if (!strcmp(a, "--null") && more) null_class = atoll(argv[++i]);
    else if (!strcmp(a, "--seed") && more) seed = atoll(argv[++i]);
    else if (!strcmp(a, "--noise") && more) noise = argv[++i];
    else if (!strcmp(a, "--clip-x0") && more) clip = atof(argv[++i]);
    else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
    else if (!strcmp(a, "--tag") && more) tag = argv[++i];
    else if (!strcmp(a, "-o") && more) outdir = argv[++i];
    else if (!strcmp(a, "--save-states") && more) states = argv[++i];
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(sample_usage, stdout); vt_pipeline_free(&pl); return 0; }
    else if (a[0] != '-' && !model) model = a;
    else { fprintf(stderr, "vtopt sample: unknown argument '%s'\n%s", a, sample_usage); vt_pipeline_free(&pl); return 2; }
  }
  if (rc) { fprintf(stderr, "vtopt: %s\n", e.msg); vt_pipeline_free(&pl); return rc; }
  if (!model || steps < 1 || steps > 1000) { fputs(sample_usage, stderr); vt_pipeline_free(&pl); return 2; }
  int64_t cls[1024];
  int B = 0;
  for (const char *p = classes; *p && B < 1024;) {
    char *end;
    cls[B++] = strtoll(p, &end, 10);
    if (end == p) { fprintf(stderr, "vtopt sample: --classes '%s' is not a comma list of integers\n", classes); return 2; }
    p = *end == ',' ? end + 1 : end;
  }
  int64_t R = cfg > 0 ? 2 * B : B;   /* rows per model call */
  /* the model: a fast.so, or ONNX run by the interpreter or the JIT with batch pinned to R */
  vt_graph *g = NULL;
  cli_so *so = NULL;
  vt_interp *it = NULL;
  vt_jit *jt = NULL;
  if (ends_with(model, ".so")) {
    rc = cli_so_open(model, tag, threads, &g, &so, &e);
  } else {
    rc = vt_onnx_load(model, &g, &e);
    if (rc == VT_OK && g->n_inputs == 3) {
      const vt_value *xv = &g->values[g->inputs[0]];
      const char *pn[1];
      int64_t pv[1] = {R};
      int np = 0;
      if (xv->rank >= 1 && !vt_dim_is_const(xv->dims[0]) && g->syms[vt_dim_sym(xv->dims[0])].kind == VT_SYM_NAMED)
        pn[np++] = g->syms[vt_dim_sym(xv->dims[0])].name;
      rc = vt_graph_prepare(g, pn, pv, np, &e);
      vt_pipeline_opts po = {.out = stderr};
      if (rc == VT_OK) rc = vt_pipeline_run(&pl, g, &po, &e);
      if (rc == VT_OK && jit) {
        vt_cg_options copt = {.opt_level = 3, .threads = threads};
        jt = vt_jit_compile(g, &copt, &e);
        if (!jt) rc = e.code ? e.code : VT_ERR_MODEL;
      } else if (rc == VT_OK) {
        it = vt_interp_new(g, threads, &e);
        if (!it) rc = e.code ? e.code : VT_ERR_MODEL;
      }
    }
  }
  const vt_value *xv = NULL, *tv = NULL, *yv = NULL;
  if (rc == VT_OK) {
    if (g->n_inputs != 3 || g->n_outputs < 1)
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: sample needs a noise predictor with inputs (x, t, y) and an output, got %d "
                     "inputs", model, g->n_inputs);
    else {
      xv = &g->values[g->inputs[0]];
      tv = &g->values[g->inputs[1]];
      yv = &g->values[g->inputs[2]];
      bool ok = xv->rank == 4 && xv->dtype == VT_F32 && tv->rank == 1 && tv->dtype == VT_F32 && yv->rank == 1 &&
                yv->dtype == VT_I64;
      for (int d = 1; ok && d < 4; d++) ok = vt_dim_is_const(xv->dims[d]);
      ok = ok && (!vt_dim_is_const(xv->dims[0]) || xv->dims[0] == R);
      if (!ok)
        rc = vt_errorf(&e, VT_ERR_MODEL, "%s: inputs must be x f32 [%lld,C,H,W], t f32 [%lld], y i64 [%lld] (DiT "
                       "noise predictor; a fast.so must be compiled for batch %lld)", model, (long long)R, (long long)R,
                       (long long)R, (long long)R);
    }
  }
  if (rc) {
    fprintf(stderr, "vtopt: %s\n", e.msg);
    vt_pipeline_free(&pl);
    if (it) vt_interp_free(it);
    if (jt) vt_jit_free(jt);
    if (so) cli_so_close(so);
    if (g) vt_graph_free(g);
    return rc;
  }
  int64_t C = xv->dims[1], H = xv->dims[2], W = xv->dims[3], per = C * H * W;
  vt_tensor x = {0}, in[3] = {{0}}, out[4] = {{0}};
  int64_t xd[4] = {B, C, H, W}, id[4] = {R, C, H, W}, rd[1] = {R};
  rc = vt_tensor_alloc(&x, VT_F32, 4, xd, &e);
  if (rc == VT_OK) rc = vt_tensor_alloc(&in[0], VT_F32, 4, id, &e);
  if (rc == VT_OK) rc = vt_tensor_alloc(&in[1], VT_F32, 1, rd, &e);
  if (rc == VT_OK) rc = vt_tensor_alloc(&in[2], VT_I64, 1, rd, &e);
  if (rc == VT_OK && noise) {
    vt_tensor nz = {0};
    rc = vt_npy_read(noise, &nz, &e);
    if (rc == VT_OK && (nz.dtype != VT_F32 || vt_tensor_numel(&nz) < B * per))
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: --noise must be f32 with at least %lld values ([%d,%lld,%lld,%lld])", noise,
                     (long long)(B * per), B, (long long)C, (long long)H, (long long)W);
    if (rc == VT_OK) memcpy(x.data, nz.data, (size_t)(B * per) * sizeof(float));
    vt_tensor_free(&nz);
  } else if (rc == VT_OK) {
    uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < B * per; i++) ((float *)x.data)[i] = (float)gauss(&s);
  }
  double abar[1000], b = 1.0;
  for (int i = 0; i < 1000; i++) {
    b *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
    abar[i] = b;
  }
  int64_t ts[1000];
  for (int s = 0; s < steps; s++) ts[s] = steps > 1 ? (int64_t)nearbyint(999.0 - 999.0 * s / (steps - 1)) : 999;
  float *sx = NULL, *st = NULL;
  int64_t *sy = NULL;
  if (rc == VT_OK && states) {
    sx = malloc((size_t)(steps * R * per) * sizeof *sx);
    st = malloc((size_t)(steps * R) * sizeof *st);
    sy = malloc((size_t)(steps * R) * sizeof *sy);
    if (!sx || !st || !sy) rc = vt_errorf(&e, VT_ERR_MODEL, "out of memory for --save-states");
  }
  float *xs = x.data, *xi = in[0].data, *ti = in[1].data;
  int64_t *yi = in[2].data;
  double t0 = cli_now_ms();
  for (int s = 0; s < steps && rc == VT_OK; s++) {
    for (int64_t r = 0; r < R; r++) {
      memcpy(xi + r * per, xs + (r % B) * per, (size_t)per * sizeof *xi);
      ti[r] = (float)ts[s];
      yi[r] = r < B ? cls[r] : null_class;
    }
    if (states) {
      memcpy(sx + (size_t)s * R * per, xi, (size_t)(R * per) * sizeof *sx);
      memcpy(st + (size_t)s * R, ti, (size_t)R * sizeof *st);
      memcpy(sy + (size_t)s * R, yi, (size_t)R * sizeof *sy);
    }
    if (so) rc = cli_so_run(so, g, in, out, &e);
    else if (jt) rc = vt_jit_run(jt, in, out, &e);
    else rc = vt_interp_run(it, in, out, &e);
    if (rc) break;
    if (out[0].dtype != VT_F32 || out[0].rank != 4 || out[0].dims[0] != R || out[0].dims[1] < C ||
        out[0].dims[2] != H || out[0].dims[3] != W) {
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: output 0 must be f32 [%lld, >=%lld, %lld, %lld] (noise first)", model,
                     (long long)R, (long long)C, (long long)H, (long long)W);
      break;
    }
    const float *o = out[0].data;
    int64_t ostride = out[0].dims[1] * H * W;
    double at = abar[ts[s]], ap = s + 1 < steps ? abar[ts[s + 1]] : 1.0;
    for (int64_t bb = 0; bb < B; bb++)
      for (int64_t i = 0; i < per; i++) {
        double ec = o[bb * ostride + i];
        double eps = cfg > 0 ? o[(bb + B) * ostride + i] + cfg * (ec - o[(bb + B) * ostride + i]) : ec;
        double xt = xs[bb * per + i];
        double x0 = (xt - sqrt(1 - at) * eps) / sqrt(at);
        if (clip > 0) x0 = x0 > clip ? clip : x0 < -clip ? -clip : x0;
        xs[bb * per + i] = (float)(sqrt(ap) * x0 + sqrt(1 - ap) * eps);
      }
    for (int k = 0; k < 4; k++) vt_tensor_free(&out[k]);
  }
  double wall = cli_now_ms() - t0;
  if (rc == VT_OK) {
    printf("sample: %s: %d images, %d steps, cfg %.2f, %s: %.1f ms per image (%.1f ms per model call of batch %lld)\n",
           model, B, steps, cfg, so ? "fast.so" : jt ? "jit" : "interpreter", wall / B, wall / steps, (long long)R);
    if (outdir) {
      mkdir(outdir, 0777);
      char p[1200];
      snprintf(p, sizeof p, "%s/samples.npy", outdir);
      rc = vt_npy_write(p, &x, &e);
      vt_tensor lab = {.dtype = VT_I64, .rank = 1, .dims = {B}, .data = cls};
      snprintf(p, sizeof p, "%s/labels.npy", outdir);
      if (rc == VT_OK) rc = vt_npy_write(p, &lab, &e);
    }
    if (rc == VT_OK && states) {
      mkdir(states, 0777);
      char p[1200];
      vt_tensor a = {.dtype = VT_F32, .rank = 4, .dims = {steps * R, C, H, W}, .data = sx};
      vt_tensor b2 = {.dtype = VT_F32, .rank = 1, .dims = {steps * R}, .data = st};
      vt_tensor c = {.dtype = VT_I64, .rank = 1, .dims = {steps * R}, .data = sy};
      snprintf(p, sizeof p, "%s/%s.npy", states, xv->name);
      rc = vt_npy_write(p, &a, &e);
      snprintf(p, sizeof p, "%s/%s.npy", states, tv->name);
      if (rc == VT_OK) rc = vt_npy_write(p, &b2, &e);
      snprintf(p, sizeof p, "%s/%s.npy", states, yv->name);
      if (rc == VT_OK) rc = vt_npy_write(p, &c, &e);
    }
  }
  if (rc) fprintf(stderr, "vtopt: %s\n", e.msg);
  free(sx);
  free(st);
  free(sy);
  vt_tensor_free(&x);
  for (int k = 0; k < 3; k++) vt_tensor_free(&in[k]);
  vt_pipeline_free(&pl);
  if (it) vt_interp_free(it);
  if (jt) vt_jit_free(jt);
  if (so) cli_so_close(so);
  vt_graph_free(g);
  return rc;
}

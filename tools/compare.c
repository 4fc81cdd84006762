/* compare.c — `vtopt compare`: runs one model under several rewrite strategies on the same
 * inputs and prints one table (latency median and spread, speedup over the first strategy,
 * FLOPs, attention token counts, fidelity against the first strategy), plus CSV and an SVG
 * speed-versus-fidelity plot. The first strategy (normally `none`) is the reference.
 * With --stream CLIP.npy each strategy runs the clip frame by frame in one session of its own
 * (stateful strategies such as eventful keep their state across frames; the frame dim is pinned
 * to 1 before the passes); latency is per frame (the flush frame 0 excluded from the median) and
 * fidelity is the per-frame metric against the reference's frame, averaged, with the mean
 * cosine of the first and last 20 frames (drift). */
#include "cli.h"
#include "codegen.h"
#include "frontend.h"
#include "metrics.h"
#include "passes.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRATEGIES 32
#define MAX_INPUTS 64

static const char *compare_usage =
    "usage: vtopt compare MODEL.onnx --passes S1,S2,... [options]\n"
    "  Runs the model once per strategy and compares each with the first (the reference, normally\n"
    "  'none' = canonicalisation only). A strategy is a pass pipeline; inside a strategy write\n"
    "  several passes with '+' (e.g. tome:r=8+httm). An item after ',' that contains '=' is a\n"
    "  further parameter of the previous strategy's last pass (tome:r=8,mode=sd).\n"
    "options:\n"
    "  --passes LIST          the strategies (required)\n"
    "  --input [NAME=]FILE    an input (.npy); NAME may be left out when the model has one input\n"
    "  --random-inputs        fill the other inputs deterministically (--seed S, default 0)\n"
    "  --dim SYM=N            pin a symbolic dim (dims of given inputs are pinned automatically)\n"
    "  --runs N               timed runs per strategy after one warm-up (default 5)\n"
    "  --threads N            worker threads (default: VTOPT_NUM_THREADS or all cores)\n"
    "  --jit                  run each strategy compiled by LLVM (ORC JIT) instead of the interpreter\n"
    "  --out PREFIX           write PREFIX.csv and PREFIX.svg (default: compare); with --stream also\n"
    "                         PREFIX.frames.csv: every frame's latency and cosine per strategy\n"
    "  --stream [NAME=]CLIP   run CLIP.npy ([T, ...], frames along dim 0) frame by frame through one\n"
    "                         session per strategy (state kept across frames, e.g. eventful); report\n"
    "                         per-frame latency (median over frames 1..T-1) and per-frame fidelity\n"
    "                         averaged, plus the cosine of the first and last 20 frames; --frames N\n"
    "                         uses the first N frames. With --jit a strategy that does not compile\n"
    "                         runs in the interpreter (the table says which)\n"
    "  --labels FILE.npy      integer class labels, one per row of the first output: adds each\n"
    "                         strategy's accuracy (top-1 of the last axis against the labels)\n"
    "Latency is the reference interpreter's unless --jit. Fidelity is measured on\n"
    "the first graph output: cosine similarity, relative L2 and top-1 agreement (last axis).\n";

typedef struct strategy {
  char spec[512];
  double med, lo, hi, flops;
  bool flops_partial;
  int64_t tok_first, tok_last;
  int n_attn;
  vt_metrics m;
  double cos_first, cos_last, first_ms;   /* --stream: mean cosine of the first / last frames, frame 0 */
  size_t state_bytes;                     /* --stream: session state after the clip */
  double updated;                         /* --stream: share of gated tokens updated (-1: no gates) */
  double *frame_ms, *frame_cos;           /* --stream: per frame (PREFIX.frames.csv) */
  const char *engine;                     /* "interp", "jit", or "interp*" (--jit did not compile) */
  double accuracy;                        /* --labels: top-1 accuracy of the first output */
  int rc;
  char err[1024];
} strategy;

/* Top-1 accuracy of out (float32, rows along the last axis) against integer labels, one per row. */
static int label_accuracy(const vt_tensor *out, const vt_tensor *labels, double *acc, vt_error *e) {
  if (out->dtype != VT_F32 || out->rank < 1 || out->dims[out->rank - 1] < 1)
    return vt_errorf(e, VT_ERR_MODEL, "--labels: the first output must be float32 scores (rows x classes)");
  int64_t classes = out->dims[out->rank - 1], rows = vt_tensor_numel(out) / classes;
  if (labels->dtype != VT_I64 && labels->dtype != VT_I32)
    return vt_errorf(e, VT_ERR_MODEL, "--labels: int64 or int32 labels expected, got %s", vt_dtype_name(labels->dtype));
  if (vt_tensor_numel(labels) != rows)
    return vt_errorf(e, VT_ERR_MODEL, "--labels: %lld labels for %lld rows of the first output",
                     (long long)vt_tensor_numel(labels), (long long)rows);
  int64_t right = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float *row = (const float *)out->data + r * classes;
    int64_t best = 0;
    for (int64_t c = 1; c < classes; c++)
      if (row[c] > row[best]) best = c;
    int64_t want = labels->dtype == VT_I64 ? ((const int64_t *)labels->data)[r] : ((const int32_t *)labels->data)[r];
    right += best == want;
  }
  *acc = rows ? (double)right / (double)rows : 0;
  return VT_OK;
}

/* Splits the --passes list into strategies: ',' starts a new strategy unless the item holds '='
 * (then it is one more parameter of the previous strategy). */
static int split_strategies(const char *list, strategy *s, int max) {
  int n = 0;
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
    if (strchr(it, '=') && !strchr(it, ':') && n > 0) {
      size_t l = strlen(s[n - 1].spec);
      snprintf(s[n - 1].spec + l, sizeof s[n - 1].spec - l, ",%s", it);
      continue;
    }
    if (n == max) return -1;
    memset(&s[n], 0, sizeof s[n]);
    snprintf(s[n].spec, sizeof s[n].spec, "%s", it);
    n++;
  }
  return n;
}

/* Loads the model and applies one strategy, then pins dims for the given inputs and infers.
 * pre_pin (or NULL) is pinned to 1 before the passes (--stream: the frame dim). */
static int build_graph(const char *model, const char *spec, const char *pre_pin, const char *const *pin_names,
                       const int64_t *pin_vals, int npins, vt_graph **gp, vt_error *e) {
  vt_pipeline pl = {0};
  int rc = vt_pipeline_parse(spec, &pl, e);
  if (!rc) rc = vt_onnx_load(model, gp, e);
  /* Passes see symbolic dims (frame structure is read from them); dims are pinned after. */
  const int64_t one = 1;
  if (!rc) rc = vt_graph_prepare(*gp, pre_pin ? &pre_pin : NULL, pre_pin ? &one : NULL, pre_pin ? 1 : 0, e);
  vt_pipeline_opts po = {.out = stderr};
  if (!rc) rc = vt_pipeline_run(&pl, *gp, &po, e);
  if (!rc) rc = vt_graph_prepare(*gp, pin_names, pin_vals, npins, e);
  vt_pipeline_free(&pl);
  return rc;
}

const char *cli_stream_frame_symbol(const vt_graph *g, const char *stream_arg) {
  const char *eq = strchr(stream_arg, '=');
  int32_t si = g->n_inputs > 0 ? 0 : -1;
  if (eq && eq != stream_arg) {
    si = -1;
    for (int32_t i = 0; i < g->n_inputs; i++) {
      const char *nm = g->values[g->inputs[i]].name;
      if (strlen(nm) == (size_t)(eq - stream_arg) && !strncmp(nm, stream_arg, (size_t)(eq - stream_arg))) si = i;
    }
  }
  if (si < 0) return NULL;
  const vt_value *v = &g->values[g->inputs[si]];
  if (v->rank < 1 || vt_dim_is_const(v->dims[0])) return NULL;
  const vt_sym *sy = &g->syms[vt_dim_sym(v->dims[0])];
  return sy->kind == VT_SYM_NAMED ? sy->name : NULL;
}

static void attention_tokens(const vt_graph *g, strategy *s) {
  int att = vt_op_lookup("Attention", "ai.vtopt");
  s->n_attn = 0;
  for (int32_t i = 0; i < g->n_nodes; i++) {
    const vt_node *n = &g->nodes[i];
    if (vt_ops[n->op].domain[0] == 0 || n->n_in < 2 || n->in[1] < 0) continue;
    if (n->op != att && !strstr(vt_ops[n->op].name, "Attention")) continue;
    const vt_value *k = &g->values[n->in[1]];      /* keys: [B, H, Nk, D] */
    int64_t nk = k->rank >= 2 && vt_dim_is_const(k->dims[k->rank - 2]) ? k->dims[k->rank - 2] : -1;
    if (s->n_attn == 0) s->tok_first = nk;
    s->tok_last = nk;
    s->n_attn++;
  }
}

static void write_svg(const char *path, const strategy *s, int n) {
  FILE *f = fopen(path, "w");
  if (!f) { fprintf(stderr, "vtopt: cannot write %s\n", path); return; }
  const double W = 640, H = 420, L = 70, R = 30, T = 40, B = 60;
  double xmax = 1.0, ymin = 1.0;
  for (int i = 0; i < n; i++) {
    if (s[i].rc) continue;
    double sp = s[0].med / s[i].med;
    if (sp > xmax) xmax = sp;
    if (s[i].m.cosine < ymin) ymin = s[i].m.cosine;
  }
  xmax = ceil(xmax * 1.1 * 2) / 2;
  ymin = ymin > 0.99 ? 0.99 : floor(ymin * 100) / 100 - 0.01;
  if (ymin < -1) ymin = -1;
  fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif' font-size='12'>\n", W, H);
  fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
  fprintf(f, "<text x='%.0f' y='22' text-anchor='middle' font-size='14'>speed vs fidelity (reference: %s)</text>\n", W / 2, s[0].spec);
  fprintf(f, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", L, H - B, W - R, H - B);
  fprintf(f, "<line x1='%.0f' y1='%.0f' x2='%.0f' y2='%.0f' stroke='black'/>\n", L, T, L, H - B);
  for (int k = 0; k <= 5; k++) {
    double xv = xmax * k / 5, x = L + (W - L - R) * k / 5;
    double yv = ymin + (1.0 - ymin) * k / 5, y = H - B - (H - T - B) * k / 5;
    fprintf(f, "<text x='%.1f' y='%.0f' text-anchor='middle'>%.2fx</text>\n", x, H - B + 18, xv);
    fprintf(f, "<text x='%.0f' y='%.1f' text-anchor='end'>%.3f</text>\n", L - 6, y + 4, yv);
    fprintf(f, "<line x1='%.1f' y1='%.0f' x2='%.1f' y2='%.0f' stroke='#ddd'/>\n", x, T, x, H - B);
  }
  fprintf(f, "<text x='%.0f' y='%.0f' text-anchor='middle'>speedup over %s</text>\n", (L + W - R) / 2, H - 15, s[0].spec);
  fprintf(f, "<text x='18' y='%.0f' text-anchor='middle' transform='rotate(-90 18 %.0f)'>cosine similarity</text>\n", (T + H - B) / 2, (T + H - B) / 2);
  for (int i = 0; i < n; i++) {
    if (s[i].rc) continue;
    double sp = s[0].med / s[i].med;
    double x = L + (W - L - R) * sp / xmax, y = H - B - (H - T - B) * (s[i].m.cosine - ymin) / (1.0 - ymin);
    fprintf(f, "<circle cx='%.1f' cy='%.1f' r='5' fill='%s'/>\n", x, y, i ? "#d62728" : "#1f77b4");
    fprintf(f, "<text x='%.1f' y='%.1f'>", x + 8, y - 6);
    for (const char *c = s[i].spec; *c; c++) {   /* escape for XML */
      if (*c == '<') fputs("&lt;", f); else if (*c == '&') fputs("&amp;", f); else fputc(*c, f);
    }
    fprintf(f, "</text>\n");
  }
  fprintf(f, "</svg>\n");
  fclose(f);
}

int cli_compare_strategies(int argc, char **argv) {
  const char *model = NULL, *list = NULL, *prefix = "compare";
  const char *in_names[MAX_INPUTS], *in_files[MAX_INPUTS];
  const char *pin_names[MAX_INPUTS * 4];
  int64_t pin_vals[MAX_INPUTS * 4];
  int n_in = 0, npins = 0, runs = 5, threads = 0;
  int64_t max_frames = -1;
  const char *stream_arg = NULL, *labels_file = NULL;
  bool random = false, use_jit = false;
  uint64_t seed = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(compare_usage, stdout); return 0; }
    if (!strcmp(a, "--random-inputs")) { random = true; continue; }
    if (!strcmp(a, "--jit")) { use_jit = true; continue; }
    if (a[0] == '-' && !v) return cli_usage_error("%s needs a value", a);
    if (!strcmp(a, "--passes")) list = argv[++i];
    else if (!strcmp(a, "--out")) prefix = argv[++i];
    else if (!strcmp(a, "--stream")) stream_arg = argv[++i];
    else if (!strcmp(a, "--labels")) labels_file = argv[++i];
    else if (!strcmp(a, "--frames")) {
      char *end;
      long long x = strtoll(v, &end, 10);
      if (*end || x < 1) return cli_usage_error("--frames: '%s' is not a positive count", v);
      max_frames = x;
      i++;
    }
    else if (!strcmp(a, "--runs") || !strcmp(a, "--threads") || !strcmp(a, "--seed")) {
      char *end;
      long long x = strtoll(v, &end, 10);
      if (*end || x < (a[2] == 's' ? 0 : 1)) return cli_usage_error("'%s' is not a valid count", v);
      if (a[2] == 'r') runs = (int)x; else if (a[2] == 't') threads = (int)x; else seed = (uint64_t)x;
      i++;
    } else if (!strcmp(a, "--input")) {
      if (n_in == MAX_INPUTS) return cli_usage_error("too many %s", "--input");
      char *arg = argv[++i], *eq = strchr(arg, '=');
      if (eq) { *eq = 0; in_names[n_in] = arg; in_files[n_in++] = eq + 1; }
      else { in_names[n_in] = NULL; in_files[n_in++] = arg; }
    } else if (!strcmp(a, "--dim")) {
      char *arg = argv[++i], *eq = strchr(arg, '=');
      if (!eq || npins == MAX_INPUTS * 4) return cli_usage_error("--dim: '%s' is not SYM=N", arg);
      *eq = 0;
      pin_names[npins] = arg;
      pin_vals[npins++] = strtoll(eq + 1, NULL, 10);
    } else if (a[0] == '-') return cli_usage_error("compare: unknown option '%s'", a);
    else if (!model) model = a;
    else return cli_usage_error("compare: unexpected argument '%s'", a);
  }
  if (!model || !list) return cli_usage_error("%s", "compare needs MODEL.onnx and --passes (see vtopt compare --help)");
  strategy *st = calloc(MAX_STRATEGIES, sizeof *st);
  int ns = st ? split_strategies(list, st, MAX_STRATEGIES) : -1;
  if (ns <= 0) { free(st); return cli_usage_error("--passes: '%s' has no strategies (or too many)", list); }
  vt_error e = {0};
  int rc = VT_OK;
  /* Inputs: read the files, then pin the symbolic dims of the inputs they feed. */
  vt_graph *g0 = NULL;
  vt_tensor *inputs = NULL, *ref = NULL, *outs = NULL, labels = {0};
  if (labels_file && stream_arg) return cli_usage_error("%s", "--labels is not supported with --stream");
  if (labels_file && (rc = vt_npy_read(labels_file, &labels, &e)) != VT_OK) {
    free(st);
    fprintf(stderr, "vtopt: %s\n", e.msg);
    return rc;
  }
  int n_ref = 0;
  rc = vt_onnx_load(model, &g0, &e);
  if (!rc) rc = vt_graph_prepare(g0, NULL, NULL, 0, &e);
  if (!rc) {
    inputs = calloc((size_t)g0->n_inputs + 1, sizeof *inputs);
    if (!inputs) rc = vt_errorf(&e, VT_ERR_MODEL, "out of memory");
  }
  /* --stream: the clip feeds input si one frame (dim 0 of size 1) at a time */
  int32_t si = -1;
  int64_t nframes = 0, frame_bytes = 0;
  vt_tensor clip = {0};
  const char *frame_sym = NULL, *clip_file = NULL;
  vt_tensor **ref_frames = NULL;   /* the reference's first output per frame */
  if (!rc && stream_arg) {
    const char *eq = strchr(stream_arg, '=');
    clip_file = eq && eq != stream_arg ? eq + 1 : stream_arg;
    si = g0->n_inputs > 0 ? 0 : -1;
    if (eq && eq != stream_arg) {
      si = -1;
      for (int32_t i = 0; i < g0->n_inputs; i++) {
        const char *nm = g0->values[g0->inputs[i]].name;
        if (strlen(nm) == (size_t)(eq - stream_arg) && !strncmp(nm, stream_arg, (size_t)(eq - stream_arg))) si = i;
      }
    }
    if (si < 0) rc = vt_errorf(&e, VT_ERR_MODEL, "%s: --stream %s: the model has no such input", model, stream_arg);
    if (!rc) rc = vt_npy_read(clip_file, &clip, &e);
    if (!rc && (clip.rank < 1 || clip.dims[0] < 1))
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: --stream needs a clip with frames along dim 0", clip_file);
    if (!rc) {
      nframes = max_frames > 0 && max_frames < clip.dims[0] ? max_frames : clip.dims[0];
      frame_bytes = vt_tensor_numel(&clip) / clip.dims[0] * (int64_t)vt_dtype_size(clip.dtype);
      frame_sym = cli_stream_frame_symbol(g0, stream_arg);
      inputs[si] = clip;
      inputs[si].dims[0] = 1;
      inputs[si].owned = false;
      ref_frames = calloc((size_t)nframes, sizeof *ref_frames);
      if (!ref_frames) rc = vt_errorf(&e, VT_ERR_MODEL, "out of memory");
      const vt_value *v = &g0->values[g0->inputs[si]];
      for (int32_t d = 1; !rc && d < v->rank && d < clip.rank; d++)
        if (!vt_dim_is_const(v->dims[d]) && g0->syms[vt_dim_sym(v->dims[d])].kind == VT_SYM_NAMED &&
            npins < MAX_INPUTS * 4) {
          pin_names[npins] = g0->syms[vt_dim_sym(v->dims[d])].name;
          pin_vals[npins++] = clip.dims[d];
        }
    }
  }
  if (!rc && frame_sym && npins < MAX_INPUTS * 4) {
    pin_names[npins] = frame_sym;
    pin_vals[npins++] = 1;
  }
  for (int k = 0; k < n_in && !rc; k++) {
    int32_t idx = -1;
    if (!in_names[k] && g0->n_inputs == 1) idx = 0;
    for (int32_t i = 0; i < g0->n_inputs && in_names[k]; i++)
      if (!strcmp(g0->values[g0->inputs[i]].name, in_names[k])) idx = i;
    if (idx >= 0 && idx == si) {
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: --input %s: that input is the --stream one", model, in_files[k]);
      break;
    }
    if (idx < 0) {
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s: --input %s: %s", model, in_files[k],
                     in_names[k] ? "the model has no input of that name" : "name the input (NAME=FILE): the model has several");
      break;
    }
    rc = vt_npy_read(in_files[k], &inputs[idx], &e);
    const vt_value *v = &g0->values[g0->inputs[idx]];
    for (int32_t d = 0; !rc && d < v->rank && d < inputs[idx].rank; d++)
      if (!vt_dim_is_const(v->dims[d]) && g0->syms[vt_dim_sym(v->dims[d])].kind == VT_SYM_NAMED &&
          npins < MAX_INPUTS * 4) {
        pin_names[npins] = g0->syms[vt_dim_sym(v->dims[d])].name;
        pin_vals[npins++] = inputs[idx].dims[d];
      }
  }
  if (!rc) {
    vt_graph *gp = NULL;
    rc = vt_onnx_load(model, &gp, &e);
    if (!rc) rc = vt_graph_prepare(gp, pin_names, pin_vals, npins, &e);
    for (int32_t i = 0; !rc && i < gp->n_inputs; i++) {
      if (inputs[i].data) rc = vt_interp_check_input(gp, i, &inputs[i], &e);
      else if (random) rc = cli_random_tensor(gp, &gp->values[gp->inputs[i]], seed * 1000003u + (uint64_t)i, &inputs[i], &e);
      else rc = vt_errorf(&e, VT_ERR_MODEL, "%s: input '%s' is not given: use --input or --random-inputs", model,
                          gp->values[gp->inputs[i]].name);
    }
    vt_graph_free(gp);
  }
  int32_t n_outputs = g0 ? g0->n_outputs : 0;
  for (int s = 0; s < ns && !rc; s++) {
    strategy *S = &st[s];
    vt_graph *g = NULL;
    vt_interp *it = NULL;
    vt_jit *jit = NULL;
    vt_error se = {0};
    int64_t ntimes = stream_arg ? nframes : runs;
    double *times = calloc((size_t)ntimes + 1, sizeof *times);
    if (stream_arg) {
      S->frame_ms = calloc((size_t)nframes + 1, sizeof *S->frame_ms);
      S->frame_cos = calloc((size_t)nframes + 1, sizeof *S->frame_cos);
    }
    outs = calloc((size_t)n_outputs + 1, sizeof *outs);
    if (!times || !outs || (stream_arg && (!S->frame_ms || !S->frame_cos)))
      S->rc = vt_errorf(&se, VT_ERR_MODEL, "out of memory");
    else
      S->rc = build_graph(model, S->spec, frame_sym, pin_names, pin_vals, npins, &g, &se);
    S->engine = use_jit ? "jit" : "interp";
    if (!S->rc) {
      S->flops = vt_graph_flops(g, &S->flops_partial);
      attention_tokens(g, S);
      if (use_jit) {
        vt_cg_options copt = {.opt_level = 3, .threads = threads};
        jit = vt_jit_compile(g, &copt, &se);
        if (!jit && stream_arg) {   /* e.g. stateful ops the compiled path does not keep yet */
          fprintf(stderr, "compare: %s: not compiled (%s): runs in the interpreter\n", S->spec, se.msg);
          vt_error_clear(&se);
          S->engine = "interp*";
        } else if (!jit) S->rc = se.code ? se.code : VT_ERR_MODEL;
      }
      if (!jit && !S->rc) {
        it = vt_interp_new(g, threads, &se);
        if (!it) S->rc = se.code ? se.code : VT_ERR_MODEL;
      }
    }
    for (int64_t f = 0; stream_arg && f < nframes && !S->rc; f++) {   /* --stream: frame by frame */
      for (int32_t o = 0; o < n_outputs; o++) vt_tensor_free(&outs[o]);
      inputs[si].data = (char *)clip.data + f * frame_bytes;
      double t0 = cli_now_ms();
      S->rc = jit ? vt_jit_run(jit, inputs, outs, &se) : vt_interp_run(it, inputs, outs, &se);
      times[f] = cli_now_ms() - t0;
      if (S->rc) {
        char msg[sizeof se.msg];
        snprintf(msg, sizeof msg, "%s", se.msg);
        vt_error_clear(&se);
        S->rc = vt_errorf(&se, S->rc, "frame %lld: %s", (long long)f, msg);
        break;
      }
      if (s == 0) {   /* keep the reference's frame */
        ref_frames[f] = malloc(sizeof **ref_frames);
        if (!ref_frames[f]) { S->rc = vt_errorf(&se, VT_ERR_MODEL, "out of memory"); break; }
        *ref_frames[f] = outs[0];
        outs[0] = (vt_tensor){0};
      }
      vt_metrics fm;
      S->rc = vt_compare_tensors(ref_frames[f], s == 0 ? ref_frames[f] : &outs[0], &fm, &se);
      if (S->rc) break;
      S->m.cosine += fm.cosine / (double)nframes;
      S->m.rel_l2 += fm.rel_l2 / (double)nframes;
      S->m.top1 += fm.top1 / (double)nframes;
      if (fm.max_abs > S->m.max_abs) S->m.max_abs = fm.max_abs;
      S->frame_ms[f] = times[f];
      S->frame_cos[f] = fm.cosine;
      if (nframes >= 20 && (f % 10 == 9 || f + 1 == nframes))
        fprintf(stderr, "\rcompare: %s: frame %lld/%lld", S->spec, (long long)(f + 1), (long long)nframes);
    }
    if (stream_arg && !S->rc) {
      int64_t w = nframes >= 40 ? 20 : (nframes + 1) / 2;
      for (int64_t f = 0; f < w; f++) {
        S->cos_first += S->frame_cos[f] / (double)w;
        S->cos_last += S->frame_cos[nframes - 1 - f] / (double)w;
      }
      S->first_ms = times[0];
      if (nframes > 1) {   /* per-frame latency without the flush frame */
        memmove(times, times + 1, (size_t)(nframes - 1) * sizeof *times);
        ntimes = nframes - 1;
      }
      qsort(times, (size_t)ntimes, sizeof *times, cli_cmp_double);
      S->med = times[ntimes / 2];
      S->lo = times[0];
      S->hi = times[ntimes - 1];
      int64_t done = 0, seen = 0;
      S->state_bytes = 0;
      if (jit) vt_jit_state_info(jit, &S->state_bytes, &done, &seen);
      else if (it) {
        S->state_bytes = vt_interp_state_bytes(it);
        vt_interp_state_rows(it, &done, &seen);
      }
      S->updated = seen > 0 ? (double)done / (double)seen : -1;
      if (nframes >= 20) fprintf(stderr, "\n");
    }
    for (int r = -1; !stream_arg && r < runs && !S->rc; r++) {   /* r = -1: warm-up */
      for (int32_t o = 0; o < n_outputs; o++) vt_tensor_free(&outs[o]);
      double t0 = cli_now_ms();
      S->rc = jit ? vt_jit_run(jit, inputs, outs, &se) : vt_interp_run(it, inputs, outs, &se);
      if (r >= 0) times[r] = cli_now_ms() - t0;
    }
    if (!S->rc && !stream_arg) {
      qsort(times, (size_t)runs, sizeof *times, cli_cmp_double);
      S->med = times[runs / 2];
      S->lo = times[0];
      S->hi = times[runs - 1];
      if (s == 0) {
        ref = outs;
        n_ref = n_outputs;
        outs = NULL;
      }
      S->rc = vt_compare_tensors(&ref[0], s == 0 ? &ref[0] : &outs[0], &S->m, &se);
      if (!S->rc && labels_file) S->rc = label_accuracy(s == 0 ? &ref[0] : &outs[0], &labels, &S->accuracy, &se);
    }
    if (S->rc) {
      snprintf(S->err, sizeof S->err, "%s", se.msg);
      if (s == 0) rc = vt_errorf(&e, S->rc, "reference strategy '%s' failed: %s", S->spec, se.msg);
    }
    if (outs) for (int32_t o = 0; o < n_outputs; o++) vt_tensor_free(&outs[o]);
    free(outs);
    outs = NULL;
    free(times);
    vt_interp_free(it);
    vt_jit_free(jit);
    vt_graph_free(g);
    fprintf(stderr, "compare: %d/%d %s done\n", s + 1, ns, S->spec);
  }
  if (!rc && stream_arg) {
    printf("model: %s   reference: %s   stream: %s, %lld frames   latency: per frame (median of frames 1..%lld; "
           "frame 0 flushes), %s\n", model, st[0].spec, clip_file, (long long)nframes, (long long)nframes - 1,
           use_jit ? "LLVM JIT where it compiles (interp*: interpreter)" : "reference interpreter");
    printf("%-34s %8s %10s %17s %9s %8s %10s %10s %17s %9s %8s\n", "strategy", "engine", "median ms", "min..max ms",
           "frame0 ms", "speedup", "cosine", "rel_l2", "cos first/last20", "state MB", "updated");
    char csvp[1024], svgp[1024];
    snprintf(csvp, sizeof csvp, "%s.csv", prefix);
    snprintf(svgp, sizeof svgp, "%s.svg", prefix);
    FILE *csv = fopen(csvp, "w");
    if (csv) fprintf(csv, "strategy,engine,frames,median_ms,min_ms,max_ms,frame0_ms,speedup,gflops_bound,cosine,rel_l2,max_abs,top1,"
                          "cosine_first20,cosine_last20,state_bytes,updated_share\n");
    for (int s = 0; s < ns; s++) {
      const strategy *S = &st[s];
      if (S->rc) {
        printf("%-34s failed: %s\n", S->spec, S->err);
        if (csv) fprintf(csv, "\"%s\",,,,,,,,,,,,,,,,\n", S->spec);
        continue;
      }
      char fl[40], up[16] = "-";
      snprintf(fl, sizeof fl, "%.5f/%.5f", S->cos_first, S->cos_last);
      if (S->updated >= 0) snprintf(up, sizeof up, "%.1f%%", 100 * S->updated);
      printf("%-34s %8s %10.2f %8.2f..%-8.2f %9.2f %7.2fx %10.6f %10.3e %17s %9.1f %8s\n", S->spec, S->engine, S->med,
             S->lo, S->hi, S->first_ms, st[0].med / S->med, S->m.cosine, S->m.rel_l2, fl, (double)S->state_bytes / 1e6, up);
      if (csv)
        fprintf(csv, "\"%s\",%s,%lld,%.4f,%.4f,%.4f,%.4f,%.4f,%.6f,%.8f,%.6e,%.6e,%.6f,%.8f,%.8f,%zu,%.6f\n", S->spec,
                S->engine, (long long)nframes, S->med, S->lo, S->hi, S->first_ms, st[0].med / S->med, S->flops / 1e9,
                S->m.cosine, S->m.rel_l2, S->m.max_abs, S->m.top1, S->cos_first, S->cos_last, S->state_bytes, S->updated);
    }
    printf("cosine, rel_l2: per-frame against the reference's frame, averaged over the frames; updated: share of the "
           "token gates' tokens updated per frame (after frame 0)\n");
    if (csv) fclose(csv);
    write_svg(svgp, st, ns);
    /* per frame: latency and cosine to the reference of every strategy (drift over the stream) */
    char fp[1024];
    snprintf(fp, sizeof fp, "%s.frames.csv", prefix);
    FILE *fc = fopen(fp, "w");
    if (fc) {
      fprintf(fc, "frame");
      for (int s = 0; s < ns; s++)
        if (!st[s].rc) fprintf(fc, ",\"%s ms\",\"%s cosine\"", st[s].spec, st[s].spec);
      fprintf(fc, "\n");
      for (int64_t f = 0; f < nframes; f++) {
        fprintf(fc, "%lld", (long long)f);
        for (int s = 0; s < ns; s++)
          if (!st[s].rc) fprintf(fc, ",%.3f,%.8f", st[s].frame_ms[f], st[s].frame_cos[f]);
        fprintf(fc, "\n");
      }
      fclose(fc);
    }
    printf("wrote %s, %s and %s\n", csvp, fp, svgp);
  } else if (!rc) {
    printf("model: %s   reference: %s   runs: %d (+1 warm-up)   latency: %s\n", model, st[0].spec, runs,
           use_jit ? "LLVM JIT" : "reference interpreter");
    printf("%-34s %10s %17s %8s %9s %9s %10s %10s %7s%s\n", "strategy", "median ms", "min..max ms", "speedup", "GFLOPs",
           "tokens", "cosine", "rel_l2", "top1", labels_file ? "  accuracy" : "");
    char csvp[1024], svgp[1024];
    snprintf(csvp, sizeof csvp, "%s.csv", prefix);
    snprintf(svgp, sizeof svgp, "%s.svg", prefix);
    FILE *csv = fopen(csvp, "w");
    if (csv) fprintf(csv, "strategy,median_ms,min_ms,max_ms,speedup,gflops,flops_partial,attention_layers,tokens_first,tokens_last,cosine,rel_l2,max_abs,top1%s\n",
                     labels_file ? ",accuracy" : "");
    for (int s = 0; s < ns; s++) {
      const strategy *S = &st[s];
      if (S->rc) {
        printf("%-34s failed: %s\n", S->spec, S->err);
        if (csv) fprintf(csv, "\"%s\",,,,,,,,,,,,,\n", S->spec);
        continue;
      }
      char tok[32];
      snprintf(tok, sizeof tok, "%lld>%lld", (long long)S->tok_first, (long long)S->tok_last);
      char acc[32] = "";
      if (labels_file) snprintf(acc, sizeof acc, ",%.6f", S->accuracy);
      printf("%-34s %10.2f %8.2f..%-8.2f %7.2fx %9.3f%s %9s %10.6f %10.3e %7.4f%s", S->spec, S->med, S->lo, S->hi,
             st[0].med / S->med, S->flops / 1e9, S->flops_partial ? "*" : " ", S->n_attn ? tok : "-", S->m.cosine,
             S->m.rel_l2, S->m.top1, labels_file ? "  " : "");
      if (labels_file) printf("%8.4f\n", S->accuracy);
      else putchar('\n');
      if (csv)
        fprintf(csv, "\"%s\",%.4f,%.4f,%.4f,%.4f,%.6f,%d,%d,%lld,%lld,%.8f,%.6e,%.6e,%.6f%s\n", S->spec, S->med, S->lo,
                S->hi, st[0].med / S->med, S->flops / 1e9, S->flops_partial, S->n_attn, (long long)S->tok_first,
                (long long)S->tok_last, S->m.cosine, S->m.rel_l2, S->m.max_abs, S->m.top1, acc);
    }
    printf("tokens: keys of the first > last attention layer; '*': FLOPs of some ops unknown\n");
    if (labels_file)
      printf("accuracy: top-1 against %s (%lld labels); top1: agreement with the reference strategy\n", labels_file,
             (long long)vt_tensor_numel(&labels));
    if (csv) fclose(csv);
    write_svg(svgp, st, ns);
    printf("wrote %s and %s\n", csvp, svgp);
  }
  if (ref) for (int32_t o = 0; o < n_ref; o++) vt_tensor_free(&ref[o]);
  free(ref);
  for (int64_t f = 0; ref_frames && f < nframes; f++)
    if (ref_frames[f]) {
      vt_tensor_free(ref_frames[f]);
      free(ref_frames[f]);
    }
  free(ref_frames);
  if (si >= 0 && inputs) inputs[si] = (vt_tensor){0};   /* a view of the clip */
  vt_tensor_free(&clip);
  vt_tensor_free(&labels);
  if (inputs && g0) for (int32_t i = 0; i < g0->n_inputs; i++) vt_tensor_free(&inputs[i]);
  free(inputs);
  vt_graph_free(g0);
  for (int s = 0; s < ns; s++) { free(st[s].frame_ms); free(st[s].frame_cos); }
  free(st);
  if (rc) {
    fprintf(stderr, "vtopt: %s\n", e.msg);
    return rc;
  }
  return 0;
}

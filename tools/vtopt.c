/* vtopt.c — the command-line driver: load, inspect, run (reference interpreter), write ONNX,
 * and compare outputs. Exit codes: 0 ok, 1 a comparison threshold was exceeded, 2 bad input or
 * model (the message names file, node and op), 3 internal error. */
#include "frontend.h"
#include "ir.h"
#include "metrics.h"
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
#include <time.h>

#define MAX_ITEMS 256

static const char *usage =
    "usage:\n"
    "  vtopt MODEL.onnx [options]              load, check and (with --run) execute a model\n"
    "  vtopt run MODEL.onnx [options]          same as MODEL.onnx --run\n"
    "  vtopt run FAST.so [--stream [NAME=]CLIP.npy] [--knob K=V] [--threads N] [-o DIR] [--tag T]\n"
    "                                          run a compiled model (fast.so) through its ABI\n"
    "  vtopt inspect MODEL.onnx [--ir] [--dim SYM=N]\n"
    "                                          inputs, outputs, nodes with shapes, op histogram\n"
    "  vtopt compare MODEL.onnx --passes none,tome:r=8,... [--input [NAME=]FILE.npy] [--runs N]\n"
    "                                          run each strategy; table of latency, FLOPs, tokens\n"
    "                                          and fidelity against the first (see compare --help)\n"
    "  vtopt target [--cpu NAME] [--cpu-features LIST]\n"
    "                                          the CPU, ISA and features code is built for\n"
    "  vtopt calibrate MODEL.onnx --pass=topk[:R=0.8,...] --data DIR -o ROUTERS.npz\n"
    "                                          routers for the topk pass without training (calibrate --help)\n"
    "  vtopt sample MODEL.onnx|FAST.so [--pass=LIST] [--jit] [--steps S] [--cfg W] [--classes 0,1,...] [-o DIR]\n"
    "                                          DDIM + classifier-free guidance over a DiT (sample --help)\n"
    "  vtopt compare-outputs REF.npy GOT.npy [--max-rel-l2 X] [--min-cosine X]\n"
    "                                          agreement metrics; exit 1 if a threshold fails, 2 if\n"
    "                                          shapes or dtypes differ\n"
    "\n"
    "options:\n"
    "  --run                  execute the model with the reference interpreter\n"
    "  --jit                  with --run: compile with LLVM (ORC JIT) and run the compiled code;\n"
    "                         dims are pinned from the inputs; unsupported ops run interpreter kernels\n"
    "  -O0 .. -O3             JIT / .so optimisation level (default -O3)\n"
    "  --dump-llvm FILE       write the optimised LLVM module (text IR)\n"
    "  --cpu NAME             with --jit / -o FILE.so: build for this LLVM CPU (host, x86-64-v3 for a\n"
    "                         portable AVX2 library, x86-64-v4, skylake-avx512, znver4, ...; default:\n"
    "                         VTOPT_CPU, else the host); the ISA (AVX-512 or AVX2 kernels) follows it\n"
    "  --cpu-features LIST    LLVM feature overrides, e.g. -avx512f or +avx512f,+avx512vl (default:\n"
    "                         VTOPT_CPU_FEATURES); a fast.so refuses to start on a CPU lacking one\n"
    "  --input NAME=FILE.npy  feed graph input NAME from a .npy file (repeatable)\n"
    "  --random-inputs        fill inputs not given by --input deterministically: floats ~ N(0,1),\n"
    "                         integers uniform in [0, 10), bools uniform\n"
    "  --seed S               seed for --random-inputs (default 0)\n"
    "  --dim SYM=N            pin the symbolic dim SYM of the graph inputs to N (repeatable)\n"
    "  --output-dir DIR       write each output as DIR/NAME.npy (NAME with '/' and ':' as '_')\n"
    "  --threads N            worker threads (default: VTOPT_NUM_THREADS or all cores)\n"
    "  --runs N               run N times and report the median latency (default 1)\n"
    "  --stream [NAME=]CLIP.npy  with --run: feed input NAME (default: the first) frame by frame,\n"
    "                         splitting CLIP's dim 0 (frames of one stream, one session of the\n"
    "                         interpreter, the JIT or a fast.so: stateful ops such as eventful's\n"
    "                         gates keep state between frames);\n"
    "                         --output-dir gets DIR/NAME.<frame>.npy per output; progress on stderr;\n"
    "                         the input's symbolic dim 0 is pinned to 1 before the passes; prints the\n"
    "                         session's state bytes (memory per stream) and the tokens gates updated\n"
    "  --knob NAME=VALUE      runtime knob of the session, e.g. eventful.r=64 (repeatable; a name the\n"
    "                         model's kernels do not read is an error listing the valid ones)\n"
    "  -o FILE.onnx           write the (prepared) graph as an ONNX model\n"
    "  -o FILE.so             compile to a self-contained shared library (ABI: include/vtopt/model.h);\n"
    "                         every dim must be pinned (--dim, or from the shapes of --input files)\n"
    "  --portable             with -o FILE.onnx: lower vtopt's ops to standard ONNX (attention to\n"
    "                         MatMul/Softmax, ToMe's matching/merging to TopK/ScatterElements/...,\n"
    "                         opset raised to 16 if lower) so any ONNX runtime runs the rewritten\n"
    "                         graph; ops without a lowering (HTTM, Eventful's state) are refused\n"
    "  --tag NAME             prefix of the library's exported symbols (default: from FILE.so)\n"
    "  --max-memory SIZE      with -o FILE.so or --jit: refuse a model whose weights or planned\n"
    "                         activation arena (or both together) exceed SIZE (512M, 2G, bytes;\n"
    "                         'none': no limit); default: this machine's physical memory\n"
    "  --target cpu|cuda      with -o FILE.so: the CPU (default) or the GPU path (NVPTX kernels, run\n"
    "                         through the CUDA driver libcuda.so.1 loaded at create; no CUDA toolkit\n"
    "                         needed at run time); ops without a GPU kernel are refused by name\n"
    "  --gpu sm_80|sm_90      with --target cuda: the GPU architecture (default sm_80)\n"
    "  -o FILE.ptx            the PTX of the GPU path's kernels (implies --target cuda)\n"
    "  --pass=LIST            graph rewrites (pipeline syntax and passes below; repeatable: the lists\n"
    "                         run in order); canonicalisation runs first unless --no-canonicalize\n"
    "  --no-canonicalize      do not run the canonical passes (fuse-attention) first\n"
    "  --print-after=NAME|all print the IR after pass NAME (or after every pass)\n"
    "  --stats                per pass: nodes before/after, FLOPs, matches per pattern rule; with\n"
    "                         --jit or -o FILE.so also the generated kernels and what fell back, and why\n"
    "  --explain              per pass: each candidate that did not match, the step and the reason\n"
    "  --profile              with --jit or -o FILE.so: the compiled code times every kernel and\n"
    "                         host node; the session prints the table (per kind, slowest groups) when\n"
    "                         it ends (same as VTOPT_PROFILE=1 in the environment at compile time;\n"
    "                         VTOPT_PROFILE=N lists the N slowest groups)\n"
    "  --print-ir             print the IR text form after loading\n"
    "  -q, --quiet            print only errors\n"
    "  -h, --help             this text\n";

typedef struct opts {
  const char *model;
  bool run, random_inputs, print_ir, quiet, ir_text, jit, portable;
  int opt_level;
  const char *dump_llvm, *tag, *cpu, *cpu_features, *target, *gpu;
  int64_t max_memory;        /* --max-memory: bytes; 0 the machine's memory; -1 no limit */
  uint64_t seed;
  int threads, runs;
  const char *output_dir, *out_file;
  int n_inputs;
  const char *in_names[MAX_ITEMS], *in_files[MAX_ITEMS];
  int n_pins;
  const char *pin_names[MAX_ITEMS];
  int64_t pin_vals[MAX_ITEMS];
  const char *stream_file;   /* --stream [NAME=]FILE: the argument as given */
  int n_knobs;
  const char *knob_names[MAX_ITEMS];   /* --knob NAME=VALUE: the argument as given */
  double knob_vals[MAX_ITEMS];
  vt_pipeline pipeline;      /* from --pass (all lists concatenated) */
  vt_pipeline_opts popts;
} opts;

static int fail(const vt_error *e) {
  fprintf(stderr, "vtopt: %s\n", e->msg);
  return e->code ? e->code : VT_ERR_INTERNAL;
}

int cli_usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "vtopt: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see vtopt --help)\n");
  return 2;
}

static bool parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end) return false;
  *out = v;
  return true;
}

/* Splits "NAME=VALUE" at the last '=' (names may contain '='? no: ONNX names rarely do; the
 * first '=' after a non-empty name is used). */
static bool split_eq(char *s, char **name, char **val) {
  char *eq = strchr(s, '=');
  if (!eq || eq == s || !eq[1]) return false;
  *eq = 0;
  *name = s;
  *val = eq + 1;
  return true;
}

/* "123", "64K", "512M", "2G" (powers of 1024; "KiB".. too) or "none" (-1: no limit) */
static bool parse_size(const char *s, int64_t *out) {
  if (!strcmp(s, "none")) { *out = -1; return true; }
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v <= 0) return false;
  double mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1024.0;
  else if (*end == 'M' || *end == 'm') mul = 1024.0 * 1024;
  else if (*end == 'G' || *end == 'g') mul = 1024.0 * 1024 * 1024;
  else if (*end == 'T' || *end == 't') mul = 1024.0 * 1024 * 1024 * 1024;
  if (mul > 1) end++;
  if (mul > 1 && (!strcmp(end, "iB") || !strcmp(end, "B"))) end += strlen(end);
  if (*end || v * mul > 9e18 || v * mul < 1) return false;
  *out = (int64_t)(v * mul);
  return true;
}

static int parse_args(int argc, char **argv, int start, opts *o) {
  for (int i = start; i < argc; i++) {
    char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG() do { if (!next) return cli_usage_error("%s needs a value", a); i++; } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); vt_passes_help(stdout); return -1; }
    else if (!strcmp(a, "--run")) o->run = true;
    else if (!strcmp(a, "--jit")) o->jit = true;
    else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) o->opt_level = a[2] - '0';
    else if (!strcmp(a, "--dump-llvm")) { NEED_ARG(); o->dump_llvm = next; }
    else if (!strcmp(a, "--cpu")) { NEED_ARG(); o->cpu = next; }
    else if (!strcmp(a, "--cpu-features")) { NEED_ARG(); o->cpu_features = next; }
    else if (!strcmp(a, "--target")) { NEED_ARG(); o->target = next; }
    else if (!strcmp(a, "--gpu")) { NEED_ARG(); o->gpu = next; }
    else if (!strcmp(a, "--tag")) { NEED_ARG(); o->tag = next; }
    else if (!strcmp(a, "--max-memory")) {
      NEED_ARG();
      if (!parse_size(next, &o->max_memory))
        return cli_usage_error("--max-memory: '%s' is not a size (e.g. 512M, 2G, 1500000, or 'none')", next);
    }
    else if (!strcmp(a, "--random-inputs")) o->random_inputs = true;
    else if (!strcmp(a, "--print-ir")) o->print_ir = true;
    else if (!strcmp(a, "--ir")) o->ir_text = true;
    else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o->quiet = true;
    else if (!strcmp(a, "--seed")) {
      NEED_ARG();
      int64_t v;
      if (!parse_i64(next, &v)) return cli_usage_error("--seed: '%s' is not an integer", next);
      o->seed = (uint64_t)v;
    } else if (!strcmp(a, "--threads") || !strcmp(a, "--runs")) {
      NEED_ARG();
      int64_t v;
      if (!parse_i64(next, &v) || v < 1 || v > 100000) return cli_usage_error("'%s' is not a positive count", next);
      if (a[2] == 't') o->threads = (int)v; else o->runs = (int)v;
    } else if (!strcmp(a, "--output-dir")) { NEED_ARG(); o->output_dir = next; }
    else if (!strcmp(a, "--stream")) {
      NEED_ARG();
      o->stream_file = next;
    } else if (!strcmp(a, "--knob")) {
      NEED_ARG();
      const char *eq = strchr(next, '=');
      char *end = NULL;
      double v = eq ? strtod(eq + 1, &end) : 0;
      if (!eq || eq == next || !end || *end || end == eq + 1 || eq - next >= 64)
        return cli_usage_error("--knob %s: expected NAME=NUMBER (e.g. eventful.r=64)", next);
      if (o->n_knobs == MAX_ITEMS) return cli_usage_error("too many %s", "--knob");
      o->knob_names[o->n_knobs] = next;
      o->knob_vals[o->n_knobs++] = v;
    }
    else if (!strcmp(a, "-o")) { NEED_ARG(); o->out_file = next; }
    else if (!strcmp(a, "--input") || !strcmp(a, "--dim")) {
      NEED_ARG();
      char *name, *val;
      if (!split_eq(argv[i], &name, &val)) return cli_usage_error("'%s' is not NAME=VALUE", next);
      if (a[2] == 'i') {
        if (o->n_inputs == MAX_ITEMS) return cli_usage_error("too many %s", "--input");
        o->in_names[o->n_inputs] = name;
        o->in_files[o->n_inputs++] = val;
      } else {
        if (o->n_pins == MAX_ITEMS) return cli_usage_error("too many %s", "--dim");
        int64_t v;
        if (!parse_i64(val, &v) || v < 0) return cli_usage_error("--dim: '%s' is not a size", val);
        o->pin_names[o->n_pins] = name;
        o->pin_vals[o->n_pins++] = v;
      }
    } else if (!strncmp(a, "--pass=", 7)) {
      vt_pipeline more;
      vt_error pe = {0};
      if (vt_pipeline_parse(a + 7, &more, &pe) != VT_OK) return cli_usage_error("%s", pe.msg);
      vt_pass_params *st = more.n ? realloc(o->pipeline.steps, (size_t)(o->pipeline.n + more.n) * sizeof *st) : o->pipeline.steps;
      if (more.n && !st) { vt_pipeline_free(&more); return cli_usage_error("%s", "--pass: out of memory"); }
      if (more.n) memcpy(st + o->pipeline.n, more.steps, (size_t)more.n * sizeof *st);
      o->pipeline.steps = st;
      o->pipeline.n += more.n;
      vt_pipeline_free(&more);
    } else if (!strcmp(a, "--no-canonicalize")) o->popts.no_canonicalize = true;
    else if (!strncmp(a, "--print-after=", 14)) {
      if (strcmp(a + 14, "all") != 0 && !vt_pass_find(a + 14))
        return cli_usage_error("--print-after: unknown pass '%s' (see the passes in vtopt --help, or 'all')", a + 14);
      o->popts.print_after = a + 14;
    } else if (!strcmp(a, "--stats")) o->popts.stats = true;
    else if (!strcmp(a, "--explain")) o->popts.explain = true;
    else if (!strcmp(a, "--profile")) {
      if (!getenv("VTOPT_PROFILE")) setenv("VTOPT_PROFILE", "1", 1);   /* read by the code generator */
    }
    else if (!strcmp(a, "--portable")) o->portable = true;
    else if (a[0] == '-' && a[1]) return cli_usage_error("unknown option '%s'", a);
    else if (!o->model) o->model = a;
    else return cli_usage_error("unexpected argument '%s'", a);
#undef NEED_ARG
  }
  return 0;
}

/* ---------- deterministic random inputs ---------- */
static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0); }

int cli_random_tensor(const vt_graph *g, const vt_value *v, uint64_t seed, vt_tensor *t, vt_error *e) {
  int64_t dims[VT_MAX_RANK];
  for (int32_t d = 0; d < v->rank; d++) {
    if (!vt_dim_is_const(v->dims[d])) {
      char s[128];
      return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s' has symbolic dim '%s': pin it with --dim %s=N",
                       g->path, v->name, vt_dim_str(g, v->dims[d], s, sizeof s), vt_dim_str(g, v->dims[d], s, sizeof s));
    }
    dims[d] = v->dims[d];
  }
  if (v->rank < 0) return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s' has unknown rank", g->path, v->name);
  int rc = vt_tensor_alloc(t, v->dtype, v->rank, dims, e);
  if (rc) return rc;
  int64_t n = vt_tensor_numel(t);
  uint64_t s = seed;
  for (int64_t i = 0; i < n; i++) {
    double u1 = uniform01(&s), u2 = uniform01(&s);
    double normal = sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
    int64_t k = (int64_t)(u1 * 10);
    switch (v->dtype) {
      case VT_F32: ((float *)t->data)[i] = (float)normal; break;
      case VT_F64: ((double *)t->data)[i] = normal; break;
      case VT_F16: ((uint16_t *)t->data)[i] = vt_f32_to_f16((float)normal); break;
      case VT_BF16: ((uint16_t *)t->data)[i] = vt_f32_to_bf16((float)normal); break;
      case VT_I64: ((int64_t *)t->data)[i] = k; break;
      case VT_I32: ((int32_t *)t->data)[i] = (int32_t)k; break;
      case VT_I16: case VT_U16: ((int16_t *)t->data)[i] = (int16_t)k; break;
      case VT_I8: case VT_U8: ((int8_t *)t->data)[i] = (int8_t)k; break;
      case VT_U32: ((uint32_t *)t->data)[i] = (uint32_t)k; break;
      case VT_U64: ((uint64_t *)t->data)[i] = (uint64_t)k; break;
      case VT_BOOL: ((uint8_t *)t->data)[i] = u1 < 0.5; break;
      default:
        vt_tensor_free(t);
        return vt_errorf(e, VT_ERR_MODEL, "%s: input '%s': cannot make random %s data", g->path, v->name,
                         vt_dtype_name(v->dtype));
    }
  }
  return VT_OK;
}

static void safe_name(const char *in, char *out, size_t n) {
  size_t i = 0;
  for (; in[i] && i + 1 < n; i++) out[i] = (in[i] == '/' || in[i] == ':' || in[i] == '\\') ? '_' : in[i];
  out[i] = 0;
  if (!strcmp(out, ".") || !strcmp(out, "..") || !out[0]) snprintf(out, n, "output");
}

double cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int cli_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

/* Loads, prepares and (when with_passes) runs the pass pipeline: canonicalisation first unless
 * --no-canonicalize, then the --pass lists. */
static int load_model(const opts *o, vt_graph **gp, bool with_passes, vt_error *e) {
  int rc = vt_onnx_load(o->model, gp, e);
  if (rc) return rc;
  const char *pn[MAX_ITEMS + 1];
  int64_t pv[MAX_ITEMS + 1];
  int np = o->n_pins;
  memcpy(pn, o->pin_names, sizeof o->pin_names);
  memcpy(pv, o->pin_vals, sizeof o->pin_vals);
  const char *frame_sym = o->stream_file ? cli_stream_frame_symbol(*gp, o->stream_file) : NULL;
  for (int i = 0; frame_sym && i < np; i++)
    if (!strcmp(pn[i], frame_sym)) frame_sym = NULL;
  if (frame_sym) {   /* --stream feeds one frame per run: the frame dim is 1 (static shapes for the passes) */
    pn[np] = frame_sym;
    pv[np++] = 1;
  }
  /* -o FILE.so with --input files: their shapes pin the named dims --dim leaves open (as --jit
   * pins from the inputs it runs on) */
  vt_tensor pin_src[MAX_ITEMS];
  int n_src = 0;
  bool to_so = o->out_file && (ends_with(o->out_file, ".so") || ends_with(o->out_file, ".ptx"));
  const vt_graph *g = *gp;
  for (int k = 0; to_so && k < o->n_inputs && rc == VT_OK; k++) {
    int32_t in = -1;
    for (int32_t i = 0; i < g->n_inputs; i++)
      if (!strcmp(g->values[g->inputs[i]].name, o->in_names[k])) in = g->inputs[i];
    if (in < 0) continue;   /* run_model names the unknown input */
    const vt_value *v = &g->values[in];
    bool open = false;
    for (int32_t d = 0; d < v->rank; d++) open |= !vt_dim_is_const(v->dims[d]);
    if (!open) continue;
    vt_tensor *t = &pin_src[n_src];
    memset(t, 0, sizeof *t);
    if ((rc = vt_npy_read(o->in_files[k], t, e)) != VT_OK) break;
    n_src++;
    for (int32_t d = 0; d < v->rank && d < t->rank && np < MAX_ITEMS; d++) {
      if (vt_dim_is_const(v->dims[d]) || g->syms[vt_dim_sym(v->dims[d])].kind != VT_SYM_NAMED) continue;
      const char *sym = g->syms[vt_dim_sym(v->dims[d])].name;
      bool have = false;
      for (int i = 0; i < np; i++) have |= !strcmp(pn[i], sym);
      if (!have) {
        pn[np] = sym;
        pv[np++] = t->dims[d];
      }
    }
  }
  if (rc == VT_OK) rc = vt_graph_prepare(*gp, pn, pv, np, e);
  for (int i = 0; i < n_src; i++) vt_tensor_free(&pin_src[i]);
  if (rc || !with_passes) return rc;
  vt_pipeline_opts po = o->popts;
  po.out = stdout;
  return vt_pipeline_run(&o->pipeline, *gp, &po, e);
}

/* mkdir -p: creates dir and its missing parents; 0 or -1 with errno set. */
static int mkdir_p(const char *dir) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", dir);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------- sessions: what --run and --stream drive ---------- */
typedef struct session {
  vt_interp *it;     /* the reference interpreter, */
  vt_jit *jit;       /* or the LLVM JIT (--jit), */
  cli_so *so;        /* or a compiled fast.so (vtopt run fast.so) */
} session;

/* Creates the interpreter or (--jit) JIT session for g. The JIT is specialised to constant
 * dims: the named dims of the inputs are pinned from `inputs` first. */
static int session_new(const opts *o, vt_graph *g, const vt_tensor *inputs, session *s, vt_error *e) {
  if (!o->jit) {
    s->it = vt_interp_new(g, o->threads, e);
    return s->it ? VT_OK : (e->code ? e->code : VT_ERR_MODEL);
  }
  const char *pn[MAX_ITEMS];
  int64_t pv[MAX_ITEMS];
  int np = 0;
  for (int32_t i = 0; i < g->n_inputs; i++) {
    const vt_value *v = &g->values[g->inputs[i]];
    for (int32_t d = 0; d < v->rank && d < inputs[i].rank && np < MAX_ITEMS; d++)
      if (!vt_dim_is_const(v->dims[d]) && g->syms[vt_dim_sym(v->dims[d])].kind == VT_SYM_NAMED) {
        pn[np] = g->syms[vt_dim_sym(v->dims[d])].name;
        pv[np++] = inputs[i].dims[d];
      }
  }
  int rc = np ? vt_graph_prepare(g, pn, pv, np, e) : VT_OK;
  if (rc) return rc;
  vt_cg_options copt = {.opt_level = o->opt_level, .threads = o->threads, .dump_llvm = o->dump_llvm,
                        .stats = o->popts.stats ? stdout : NULL, .cpu = o->cpu, .cpu_features = o->cpu_features,
                        .max_memory = o->max_memory};
  s->jit = vt_jit_compile(g, &copt, e);
  return s->jit ? VT_OK : (e->code ? e->code : VT_ERR_MODEL);
}

static int session_run(session *s, const vt_graph *g, const vt_tensor *in, vt_tensor *out, vt_error *e) {
  if (s->so) return cli_so_run(s->so, g, in, out, e);
  return s->jit ? vt_jit_run(s->jit, in, out, e) : vt_interp_run(s->it, in, out, e);
}

/* --knob NAME=VALUE on the session; names the model's kernels do not read fail with the list. */
static int session_knobs(const opts *o, session *s, const vt_graph *g, vt_error *e) {
  for (int k = 0; k < o->n_knobs; k++) {
    char kn[64];
    size_t kl = (size_t)(strchr(o->knob_names[k], '=') - o->knob_names[k]);   /* checked by parse_args */
    memcpy(kn, o->knob_names[k], kl);
    kn[kl] = 0;
    int rc;
    if (s->so) rc = cli_so_set(s->so, kn, o->knob_vals[k], e);
    else if (s->jit) rc = vt_jit_set_knob(s->jit, kn, o->knob_vals[k], e);
    else if (!vt_graph_has_knob(g, kn)) {
      char valid[512];
      rc = vt_graph_knobs(g, valid, sizeof valid)
               ? vt_errorf(e, VT_ERR_MODEL, "%s: unknown knob '%s': this model's knobs are %s", g->path, kn, valid)
               : vt_errorf(e, VT_ERR_MODEL, "%s: unknown knob '%s': this model has no runtime knobs", g->path, kn);
    } else if (vt_interp_set_knob(s->it, kn, o->knob_vals[k]) != VT_OK)
      rc = vt_errorf(e, VT_ERR_MODEL, "--knob %s: too many knobs", o->knob_names[k]);
    else rc = VT_OK;
    if (rc) {
      char msg[sizeof e->msg];
      snprintf(msg, sizeof msg, "%s", e->msg);
      vt_error_clear(e);
      return vt_errorf(e, rc, "--knob %s: %s", o->knob_names[k], msg);
    }
  }
  return VT_OK;
}

static void session_free(session *s) {
  vt_interp_free(s->it);
  vt_jit_free(s->jit);
  cli_so_close(s->so);
  memset(s, 0, sizeof *s);
}

/* s: an open session (fast.so), or empty: made here. */
static int run_model(const opts *o, vt_graph *g, session *s, vt_error *e) {
  int rc = VT_OK;
  vt_tensor *inputs = calloc((size_t)g->n_inputs + 1, sizeof *inputs);
  vt_tensor *outputs = calloc((size_t)g->n_outputs + 1, sizeof *outputs);
  double *times = calloc((size_t)(o->runs > 0 ? o->runs : 1), sizeof *times);
  if (!inputs || !outputs || !times) { rc = vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto done; }
  for (int k = 0; k < o->n_inputs && rc == VT_OK; k++) {
    int found = -1;
    for (int32_t i = 0; i < g->n_inputs; i++)
      if (!strcmp(g->values[g->inputs[i]].name, o->in_names[k])) found = i;
    if (found < 0) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: --input %s: the model has no input named '%s'", g->path,
                     o->in_names[k], o->in_names[k]);
      break;
    }
    vt_tensor_free(&inputs[found]);
    rc = vt_npy_read(o->in_files[k], &inputs[found], e);
    if (rc == VT_OK && vt_interp_check_input(g, found, &inputs[found], e) != VT_OK) {
      char msg[sizeof e->msg];
      snprintf(msg, sizeof msg, "%s", e->msg);
      vt_error_clear(e);
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: %s", o->in_files[k], msg);
    }
  }
  for (int32_t i = 0; i < g->n_inputs && rc == VT_OK; i++) {
    if (inputs[i].data || inputs[i].rank > 0) continue;
    bool given = false;
    for (int k = 0; k < o->n_inputs; k++) given |= !strcmp(g->values[g->inputs[i]].name, o->in_names[k]);
    if (given) continue;
    if (!o->random_inputs) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: input '%s' is not given: use --input %s=FILE.npy or --random-inputs",
                     g->path, g->values[g->inputs[i]].name, g->values[g->inputs[i]].name);
      break;
    }
    rc = cli_random_tensor(g, &g->values[g->inputs[i]], o->seed * 1000003u + (uint64_t)i, &inputs[i], e);
  }
  if (rc) goto done;
  if (!s->so && (rc = session_new(o, g, inputs, s, e)) != VT_OK) goto done;
  if ((rc = session_knobs(o, s, g, e)) != VT_OK) goto done;
  int runs = o->runs > 0 ? o->runs : 1;
  for (int r = 0; r < runs && rc == VT_OK; r++) {
    for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&outputs[i]);
    double t0 = cli_now_ms();
    rc = session_run(s, g, inputs, outputs, e);
    times[r] = cli_now_ms() - t0;
  }
  if (rc) goto done;
  qsort(times, (size_t)runs, sizeof *times, cli_cmp_double);
  if (!o->quiet) {
    printf("ran %s with %s: %d node(s), %d run(s), median %.3f ms (min %.3f, max %.3f)\n", g->path,
           s->so ? "its compiled code" : s->jit ? "the LLVM JIT" : "the reference interpreter", g->n_nodes, runs,
           times[runs / 2], times[0], times[runs - 1]);
    if (s->jit && o->popts.stats) {
      vt_jit_stats st;
      vt_jit_get_stats(s->jit, &st);
      printf("  last run %.3f ms, of which %.3f ms in host nodes (interpreter kernels: %d called in place, %d with "
             "outputs allocated and copied in)\n", st.last_run_ms, st.last_fallback_ms, st.last_host_direct,
             st.last_host_copied);
    }
  }
  if (o->output_dir && mkdir_p(o->output_dir) != 0) {
    rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot create output directory: %s", o->output_dir, strerror(errno));
    goto done;
  }
  for (int32_t i = 0; i < g->n_outputs && rc == VT_OK; i++) {
    const vt_value *v = &g->values[g->outputs[i]];
    const vt_tensor *t = &outputs[i];
    if (!o->quiet) {
      printf("  output %-24s %s[", v->name, vt_dtype_name(t->dtype));
      for (int32_t d = 0; d < t->rank; d++) printf("%s%lld", d ? "," : "", (long long)t->dims[d]);
      printf("]");
      int64_t n = vt_tensor_numel(t);
      if (t->dtype != VT_STRING && n > 0) {
        double sum = 0, asum = 0;
        for (int64_t j = 0; j < n; j++) { double x = vt_tensor_get_f64(t, j); sum += x; asum += fabs(x); }
        printf("  mean %.6g  mean|x| %.6g  first %.6g", sum / (double)n, asum / (double)n, vt_tensor_get_f64(t, 0));
      }
      printf("\n");
    }
    if (o->output_dir) {
      char name[512], path[1200];
      safe_name(v->name, name, sizeof name);
      snprintf(path, sizeof path, "%s/%s.npy", o->output_dir, name);
      rc = vt_npy_write(path, t, e);
    }
  }
done:
  if (inputs) for (int32_t i = 0; i < g->n_inputs; i++) vt_tensor_free(&inputs[i]);
  if (outputs) for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&outputs[i]);
  free(inputs);
  free(outputs);
  free(times);
  return rc;
}

/* --stream: runs CLIP frame by frame (dim 0 split into frames of size 1) through one interpreter
 * session, so stateful ops keep their state from frame to frame; other inputs as for --run. */
static int run_stream(const opts *o, vt_graph *g, session *s, vt_error *e) {
  int rc = VT_OK;
  int32_t si = g->n_inputs > 0 ? 0 : -1;
  const char *file = o->stream_file, *eq = strchr(o->stream_file, '=');
  char sname[256] = "";
  if (eq && eq != file && (size_t)(eq - file) < sizeof sname) {   /* NAME=FILE */
    memcpy(sname, file, (size_t)(eq - file));
    sname[eq - file] = 0;
    file = eq + 1;
    si = -1;
    for (int32_t i = 0; i < g->n_inputs; i++)
      if (!strcmp(g->values[g->inputs[i]].name, sname)) si = i;
  }
  if (si < 0)
    return vt_errorf(e, VT_ERR_MODEL, "%s: --stream: the model has no input named '%s'", g->path,
                     sname[0] ? sname : "(none: the model has no inputs)");
  vt_tensor clip = {0};
  vt_tensor *inputs = calloc((size_t)g->n_inputs + 1, sizeof *inputs);
  vt_tensor *outputs = calloc((size_t)g->n_outputs + 1, sizeof *outputs);
  double *times = NULL;
  if (!inputs || !outputs) { rc = vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto done; }
  if ((rc = vt_npy_read(file, &clip, e)) != VT_OK) goto done;
  if (clip.rank < 1 || clip.dims[0] < 1) {
    rc = vt_errorf(e, VT_ERR_MODEL, "%s: --stream needs a clip with frames along dim 0", file);
    goto done;
  }
  int64_t nf = clip.dims[0], per = vt_tensor_numel(&clip) / nf;
  times = calloc((size_t)nf * 3, sizeof *times);   /* wall ms, CPU ms (all threads), host-node ms */
  if (!times) { rc = vt_errorf(e, VT_ERR_MODEL, "out of memory"); goto done; }
  for (int k = 0; k < o->n_inputs && rc == VT_OK; k++) {
    int found = -1;
    for (int32_t i = 0; i < g->n_inputs; i++)
      if (!strcmp(g->values[g->inputs[i]].name, o->in_names[k])) found = i;
    if (found < 0 || found == si) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: --input %s: %s", g->path, o->in_names[k],
                     found < 0 ? "the model has no input of that name" : "that input is the --stream one");
      break;
    }
    rc = vt_npy_read(o->in_files[k], &inputs[found], e);
  }
  for (int32_t i = 0; i < g->n_inputs && rc == VT_OK; i++) {
    if (i == si || inputs[i].data || inputs[i].rank > 0) continue;
    if (!o->random_inputs) {
      rc = vt_errorf(e, VT_ERR_MODEL, "%s: input '%s' is not given: use --input %s=FILE.npy or --random-inputs",
                     g->path, g->values[g->inputs[i]].name, g->values[g->inputs[i]].name);
      break;
    }
    rc = cli_random_tensor(g, &g->values[g->inputs[i]], o->seed * 1000003u + (uint64_t)i, &inputs[i], e);
  }
  if (rc) goto done;
  inputs[si] = clip;   /* frame 0's shape (a view) for a JIT's pinned dims */
  inputs[si].dims[0] = 1;
  inputs[si].owned = false;
  if (!s->so) rc = session_new(o, g, inputs, s, e);
  if (rc == VT_OK) rc = session_knobs(o, s, g, e);
  if (o->output_dir && rc == VT_OK && mkdir_p(o->output_dir) != 0)
    rc = vt_errorf(e, VT_ERR_MODEL, "%s: cannot create output directory: %s", o->output_dir, strerror(errno));
  double t_start = cli_now_ms(), last_print = t_start;
  for (int64_t f = 0; f < nf && rc == VT_OK; f++) {
    vt_tensor *fr = &inputs[si];
    *fr = clip;
    fr->dims[0] = 1;
    fr->data = (char *)clip.data + (size_t)(f * per) * vt_dtype_size(clip.dtype);
    fr->owned = false;
    for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&outputs[i]);
    double t0 = cli_now_ms(), c0 = cpu_ms();
    rc = session_run(s, g, inputs, outputs, e);
    times[f] = cli_now_ms() - t0;
    times[nf + f] = cpu_ms() - c0;
    if (s->jit) {
      vt_jit_stats st;
      vt_jit_get_stats(s->jit, &st);
      times[2 * nf + f] = st.last_fallback_ms;
    }
    if (rc) {
      char msg[sizeof e->msg];
      snprintf(msg, sizeof msg, "%s", e->msg);
      vt_error_clear(e);
      rc = vt_errorf(e, rc, "frame %lld of %s: %s", (long long)f, file, msg);
      break;
    }
    for (int32_t i = 0; i < g->n_outputs && o->output_dir && rc == VT_OK; i++) {
      char name[512], path[1200];
      safe_name(g->values[g->outputs[i]].name, name, sizeof name);
      snprintf(path, sizeof path, "%s/%s.%05lld.npy", o->output_dir, name, (long long)f);
      rc = vt_npy_write(path, &outputs[i], e);
    }
    double now = cli_now_ms();
    if (!o->quiet && nf >= 20 && (now - last_print >= 1000 || f + 1 == nf)) {
      fprintf(stderr, "\rframe %lld/%lld  %.2f ms/frame", (long long)(f + 1), (long long)nf,
              (now - t_start) / (double)(f + 1));
      if (f + 1 == nf) fprintf(stderr, "\n");
      last_print = now;
    }
  }
  inputs[si] = (vt_tensor){0};   /* borrowed from the clip */
  if (rc == VT_OK && !o->quiet) {
    double first = times[0];
    for (int k = 0; k < 3; k++) qsort(times + k * nf, (size_t)nf, sizeof *times, cli_cmp_double);
    printf("streamed %s through %s: %lld frame(s), first %.3f ms, median %.3f ms (min %.3f, max %.3f)%s%s\n",
           file, g->path, (long long)nf, first, times[nf / 2], times[0], times[nf - 1],
           o->output_dir ? ", outputs in " : "", o->output_dir ? o->output_dir : "");
    int64_t done = 0, seen = 0;
    size_t sb = 0;
    if (s->it) {
      vt_interp_state_rows(s->it, &done, &seen);
      sb = vt_interp_state_bytes(s->it);
    } else if (s->jit) {
      vt_jit_state_info(s->jit, &sb, &done, &seen);
    } else if (s->so) {
      cli_so_state_info(s->so, &sb, &done, &seen);
    }
    if (sb > 0)
      printf("stream state: %zu bytes (%.1f MB) per stream%s", sb, (double)sb / 1e6, seen > 0 ? "" : "\n");
    if (seen > 0) printf(", token gates updated %.1f%% of their tokens (frames after a flush)\n", 100.0 * (double)done / (double)seen);
    if (o->popts.stats)   /* process CPU time is steadier than wall time on a shared machine */
      printf("  per frame: median CPU %.3f ms (all threads)%s", times[nf + nf / 2], s->jit ? "" : "\n");
    if (o->popts.stats && s->jit) printf(", median %.3f ms in host nodes\n", times[2 * nf + nf / 2]);
  }
done:
  if (inputs) {
    for (int32_t i = 0; i < g->n_inputs; i++)
      if (i != si) vt_tensor_free(&inputs[i]);
  }
  if (outputs) for (int32_t i = 0; i < g->n_outputs; i++) vt_tensor_free(&outputs[i]);
  free(inputs);
  free(outputs);
  free(times);
  vt_tensor_free(&clip);
  return rc;
}

/* vtopt run FAST.so ...: a compiled model through its ABI (no graph, no passes). */
static int cmd_run_so(opts *o) {
  if (!o->run) return cli_usage_error("%s: a compiled model can only be run: vtopt run FAST.so [--stream CLIP.npy] ...", o->model);
  if (o->pipeline.n || o->n_pins || o->jit || o->dump_llvm || o->print_ir || o->opt_level != 3)
    return cli_usage_error("%s: --pass, --dim, --jit, -O, --dump-llvm and --print-ir apply to ONNX models, not to a "
                           "compiled one", o->model);
  if (o->out_file && !o->output_dir) o->output_dir = o->out_file;   /* run FAST.so -o DIR */
  else if (o->out_file) return cli_usage_error("%s: give -o DIR or --output-dir DIR, not both", o->model);
  vt_error e = {0};
  vt_graph *g = NULL;
  session s = {0};
  int rc = cli_so_open(o->model, o->tag, o->threads, &g, &s.so, &e);
  if (rc == VT_OK) rc = o->stream_file ? run_stream(o, g, &s, &e) : run_model(o, g, &s, &e);
  session_free(&s);
  vt_graph_free(g);
  return rc ? fail(&e) : 0;
}

static int cmd_main(opts *o) {
  vt_error e = {0};
  if (!o->model) return cli_usage_error("%s", "no model given");
  if (ends_with(o->model, ".so")) return cmd_run_so(o);
  bool so = o->out_file && ends_with(o->out_file, ".so");
  bool ptx = o->out_file && ends_with(o->out_file, ".ptx");
  if (o->target && strcmp(o->target, "cpu") && strcmp(o->target, "cuda"))
    return cli_usage_error("--target %s: unknown target (cpu or cuda)", o->target);
  bool cuda = (o->target && !strcmp(o->target, "cuda")) || ptx;
  if (ptx && o->target && strcmp(o->target, "cuda"))
    return cli_usage_error("-o %s: PTX is the GPU path's output (--target cuda), not another --target", o->out_file);
  if (o->gpu && !cuda) return cli_usage_error("%s", "--gpu applies to --target cuda (or -o FILE.ptx)");
  if (cuda && (o->cpu || o->cpu_features)) return cli_usage_error("%s", "--cpu and --cpu-features apply to the CPU target, not --target cuda");
  if (cuda && o->run)
    return cli_usage_error("%s", "--target cuda: running on the GPU from the compiler is not built (no GPU JIT); "
                                 "compile with -o FILE.so --target cuda and run the library");
  if (cuda && !so && !ptx) return cli_usage_error("%s", "--target cuda needs -o FILE.so or -o FILE.ptx");
  if (o->stream_file && !o->run) return cli_usage_error("%s", "--stream needs --run");
  if (o->n_knobs && !o->run) return cli_usage_error("%s", "--knob applies to --run and --stream");
  if ((o->jit || o->dump_llvm) && !o->run && !so && !ptx)
    return cli_usage_error("%s", "--jit and --dump-llvm apply to --run, -o FILE.so or -o FILE.ptx");
  if (o->out_file && !so && !ptx && !ends_with(o->out_file, ".onnx"))
    return cli_usage_error("-o %s: unknown output kind (expected .onnx, .so or .ptx)", o->out_file);
  if (o->portable && !(o->out_file && ends_with(o->out_file, ".onnx")))
    return cli_usage_error("%s", "--portable applies to -o FILE.onnx");
  vt_graph *g = NULL;
  int rc = load_model(o, &g, true, &e);
  if (rc == VT_OK && o->print_ir) vt_graph_print(g, stdout);
  if (rc == VT_OK && !o->quiet && !o->run)
    printf("loaded %s: %d inputs, %d outputs, %d nodes, %d values\n", g->path, g->n_inputs, g->n_outputs,
           g->n_nodes, g->n_values);
  if (rc == VT_OK && so) {
    char tag[80];
    const char *base = strrchr(o->out_file, '/');
    base = base ? base + 1 : o->out_file;
    size_t n = 0;
    if (o->tag) snprintf(tag, sizeof tag, "%s", o->tag);
    else {   /* default tag: the file name without .so, as a C identifier */
      if (base[0] >= '0' && base[0] <= '9') tag[n++] = '_';
      for (const char *p = base; *p && strcmp(p, ".so") && n + 1 < sizeof tag; p++)
        tag[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p : '_';
      tag[n] = 0;
    }
    vt_cg_options copt = {.opt_level = o->opt_level, .threads = o->threads, .dump_llvm = o->dump_llvm,
                          .stats = o->popts.stats ? stdout : NULL, .cpu = o->cpu, .cpu_features = o->cpu_features,
                          .max_memory = o->max_memory, .target = cuda ? "cuda" : NULL, .gpu = o->gpu};
    rc = vt_cg_emit_so(g, &copt, o->out_file, tag, &e);
    if (rc == VT_OK && !o->quiet) printf("wrote %s (symbols %s_*%s)\n", o->out_file, tag, cuda ? ", CUDA" : "");
  } else if (rc == VT_OK && ptx) {
    vt_cg_options copt = {.opt_level = o->opt_level, .dump_llvm = o->dump_llvm, .stats = o->popts.stats ? stdout : NULL,
                          .target = "cuda", .gpu = o->gpu};
    rc = vt_cg_emit_ptx(g, &copt, o->out_file, &e);
    if (rc == VT_OK && !o->quiet) printf("wrote %s (PTX, %s)\n", o->out_file, o->gpu ? o->gpu : "sm_80");
  } else if (rc == VT_OK && o->out_file) {
    if (o->portable) rc = vt_graph_lower_portable(g, &e);
    if (rc == VT_OK) rc = vt_onnx_save(g, o->out_file, &e);
    if (rc == VT_OK && !o->quiet) printf("wrote %s\n", o->out_file);
  }
  session s = {0};
  if (rc == VT_OK && o->run) rc = o->stream_file ? run_stream(o, g, &s, &e) : run_model(o, g, &s, &e);
  session_free(&s);
  vt_graph_free(g);
  return rc ? fail(&e) : 0;
}

static int cmd_inspect(opts *o) {
  vt_error e = {0};
  if (!o->model) return cli_usage_error("%s", "inspect: no model given");
  vt_graph *g = NULL;
  /* inspect shows the model as loaded unless passes or pass outputs are asked for */
  bool passes = o->pipeline.n > 0 || o->popts.stats || o->popts.explain || o->popts.print_after;
  int rc = load_model(o, &g, passes, &e);
  if (rc == VT_OK) {
    if (o->ir_text) vt_graph_print(g, stdout);
    else vt_graph_print_summary(g, stdout);
  }
  vt_graph_free(g);
  return rc ? fail(&e) : 0;
}

static int cmd_compare(int argc, char **argv) {
  const char *files[2] = {0};
  int nf = 0;
  double max_rel = -1, min_cos = -2;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(usage, stdout); return 0; }
    if ((!strcmp(argv[i], "--max-rel-l2") || !strcmp(argv[i], "--min-cosine")) && i + 1 < argc) {
      char *end;
      double v = strtod(argv[i + 1], &end);
      if (*end || end == argv[i + 1]) return cli_usage_error("'%s' is not a number", argv[i + 1]);
      if (argv[i][2] == 'm' && argv[i][3] == 'a') max_rel = v; else min_cos = v;
      i++;
    } else if (argv[i][0] == '-') return cli_usage_error("compare-outputs: unknown option '%s'", argv[i]);
    else if (nf < 2) files[nf++] = argv[i];
    else return cli_usage_error("compare-outputs: unexpected argument '%s'", argv[i]);
  }
  if (nf != 2) return cli_usage_error("%s", "compare-outputs needs two .npy files");
  vt_error e = {0};
  vt_tensor a = {0}, b = {0};
  int rc = vt_npy_read(files[0], &a, &e);
  if (!rc) rc = vt_npy_read(files[1], &b, &e);
  vt_metrics m;
  if (!rc && a.dtype != b.dtype)   /* a float64 output where float32 is expected is a mismatch too */
    rc = vt_errorf(&e, VT_ERR_MODEL, "%s vs %s: dtypes differ: %s vs %s", files[0], files[1], vt_dtype_name(a.dtype),
                   vt_dtype_name(b.dtype));
  else if (!rc) {
    rc = vt_compare_tensors(&a, &b, &m, &e);
    if (rc) {
      char msg[sizeof e.msg];
      snprintf(msg, sizeof msg, "%s", e.msg);
      vt_error_clear(&e);
      rc = vt_errorf(&e, VT_ERR_MODEL, "%s vs %s: shapes differ: %s", files[0], files[1], msg);
    }
  }
  vt_tensor_free(&a);
  vt_tensor_free(&b);
  if (rc) return fail(&e);
  printf("cosine %.8f  rel_l2 %.3e  max_abs %.3e", m.cosine, m.rel_l2, m.max_abs);
  if (m.top1 >= 0) printf("  top1 %.4f (%lld rows)", m.top1, (long long)m.rows);
  printf("  elements %lld\n", (long long)m.numel);
  int bad = 0;
  if (max_rel >= 0 && !(m.rel_l2 <= max_rel)) {
    printf("FAIL: rel_l2 %.3e > %.3e\n", m.rel_l2, max_rel);
    bad = 1;
  }
  if (min_cos > -2 && !(m.cosine >= min_cos)) {
    printf("FAIL: cosine %.8f < %.8f\n", m.cosine, min_cos);
    bad = 1;
  }
  return bad;
}

/* vtopt target: what --cpu / --cpu-features (or VTOPT_CPU, or the host) resolve to */
static int cmd_target(int argc, char **argv) {
  vt_cg_options copt = {.opt_level = 3};
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--cpu") && i + 1 < argc) copt.cpu = argv[++i];
    else if (!strcmp(argv[i], "--cpu-features") && i + 1 < argc) copt.cpu_features = argv[++i];
    else return cli_usage_error("target: unknown argument '%s' (usage: vtopt target [--cpu NAME] [--cpu-features LIST])", argv[i]);
  }
  vt_cg_target_info t;
  vt_error e = {0};
  if (vt_cg_target(&copt, &t, &e)) return fail(&e);
  char model[256] = "?";
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
      snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
      model[strcspn(model, "\n")] = 0;
      break;
    }
  if (f) fclose(f);
  printf("machine    %s\n", model);
  printf("cpu        %s%s\n", t.cpu, t.host ? " (host)" : "");
  printf("isa        %s (GEMM micro-tile %d x %d, K block %d", t.isa, t.mr, t.nr, t.kc);
  if (t.l1d) printf(" for a %ld KiB L1 data cache", t.l1d / 1024);
  printf(")\n");
  printf("features   %s\n", t.features);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) { fputs(usage, stderr); return 2; }
  if (!strcmp(argv[1], "target")) return cmd_target(argc, argv);
  opts o = {.runs = 1, .opt_level = 3};
  const char *cmd = argv[1];
  if (!strcmp(cmd, "compare-outputs")) return cmd_compare(argc, argv);
  if (!strcmp(cmd, "compare")) return cli_compare_strategies(argc, argv);
  if (!strcmp(cmd, "calibrate")) return cli_calibrate(argc, argv);
  if (!strcmp(cmd, "sample")) return cli_sample(argc, argv);
  if (!strcmp(cmd, "inspect") || !strcmp(cmd, "run")) {
    int rc = parse_args(argc, argv, 2, &o);
    if (rc == 0) {
      if (!strcmp(cmd, "inspect")) rc = cmd_inspect(&o);
      else { o.run = true; rc = cmd_main(&o); }
    }
    vt_pipeline_free(&o.pipeline);
    return rc < 0 ? 0 : rc;
  }
  int rc = parse_args(argc, argv, 1, &o);
  if (rc == 0) rc = cmd_main(&o);
  vt_pipeline_free(&o.pipeline);
  return rc < 0 ? 0 : rc;
}

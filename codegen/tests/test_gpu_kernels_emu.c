/* test_gpu_kernels_emu.c — the GPU device bodies (codegen/gpu/cg_gpu_kernels.c) compiled for the
 * host and run by a small emulator of the CUDA execution model (a block = 256 pthreads with a
 * block barrier; warp shuffles through a per-warp exchange with a warp barrier; blocks one after
 * another), against plain C references: GEMM (edge tiles, K not a multiple of the K step),
 * softmax / LayerNorm / reductions, fused attention (float mask, causal, GQA, key bias), Conv,
 * transpose and row-block copies. No GPU here: this checks the kernels' arithmetic, indexing and
 * synchronisation logic; the PTX they become is checked by ptxas (gpu_ptx.sh), and what runs on a
 * GPU by scripts/gpu_check.sh. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local int emu_tid, emu_ctaid_x, emu_ctaid_y;
static int emu_nctaid_x, emu_nctaid_y;
#define EMU_THREADS 256
static pthread_barrier_t emu_block_bar, emu_warp_bar[EMU_THREADS / 32];
static float emu_xchg[EMU_THREADS];

void emu_barrier(void) __asm("llvm.nvvm.barrier0");
void emu_barrier(void) { pthread_barrier_wait(&emu_block_bar); }
static float emu_shfl_bfly(unsigned mask, float v, int off, int clamp) {
  (void)mask; (void)clamp;
  int w = emu_tid / 32;
  emu_xchg[emu_tid] = v;
  pthread_barrier_wait(&emu_warp_bar[w]);
  float r = emu_xchg[(emu_tid & ~31) | ((emu_tid & 31) ^ off)];
  pthread_barrier_wait(&emu_warp_bar[w]);
  return r;
}
#define __nvvm_read_ptx_sreg_tid_x() emu_tid
#define __nvvm_read_ptx_sreg_ntid_x() EMU_THREADS
#define __nvvm_read_ptx_sreg_ctaid_x() emu_ctaid_x
#define __nvvm_read_ptx_sreg_ctaid_y() emu_ctaid_y
#define __nvvm_read_ptx_sreg_nctaid_x() emu_nctaid_x
#define __nvvm_ex2_approx_f(x) exp2f(x)
#define __nvvm_lg2_approx_f(x) log2f(x)
#define __nvvm_sqrt_rn_f(x) sqrtf(x)
#define __nvvm_shfl_sync_bfly_f32(m, v, o, c) emu_shfl_bfly(m, v, o, c)
#define address_space(n) aligned(16)
#include "../gpu/cg_gpu_kernels.c"

typedef struct { void (*fn)(void *); void *arg; int tid, bx, by; } emu_thread;
static void *emu_main(void *p) {
  emu_thread *t = p;
  emu_tid = t->tid;
  emu_ctaid_x = t->bx;
  emu_ctaid_y = t->by;
  t->fn(t->arg);
  return NULL;
}
static void launch(int gx, int gy, void (*fn)(void *), void *arg) {
  emu_nctaid_x = gx;
  emu_nctaid_y = gy;
  pthread_barrier_init(&emu_block_bar, NULL, EMU_THREADS);
  for (int w = 0; w < EMU_THREADS / 32; w++) pthread_barrier_init(&emu_warp_bar[w], NULL, 32);
  pthread_t th[EMU_THREADS];
  emu_thread ts[EMU_THREADS];
  for (int by = 0; by < gy; by++)
    for (int bx = 0; bx < gx; bx++) {
      for (int t = 0; t < EMU_THREADS; t++) {
        ts[t] = (emu_thread){fn, arg, t, bx, by};
        pthread_create(&th[t], NULL, emu_main, &ts[t]);
      }
      for (int t = 0; t < EMU_THREADS; t++) pthread_join(th[t], NULL);
    }
  pthread_barrier_destroy(&emu_block_bar);
  for (int w = 0; w < EMU_THREADS / 32; w++) pthread_barrier_destroy(&emu_warp_bar[w]);
}

static int fails;
static double max_rel(const float *got, const double *ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) { num += (got[i] - ref[i]) * (got[i] - ref[i]); den += ref[i] * ref[i]; }
  return sqrt(num / (den > 0 ? den : 1));
}
static void check(const char *what, const float *got, const double *ref, int64_t n, double tol) {
  double r = max_rel(got, ref, n);
  int ok = r <= tol;
  fails += !ok;
  printf("%s %-34s rel L2 %.2e (tol %.0e)\n", ok ? "ok  " : "FAIL", what, r, tol);
}
static float frand(void) { return (float)rand() / RAND_MAX * 2.0f - 1.0f; }

/* ---- GEMM ---- */
typedef struct { const float *A, *B; float *C; int64_t M, N, K; } gemm_args;
static void gemm_k(void *p) { gemm_args *a = p; vt_gk_gemm(a->A, a->B, a->C, a->M, a->N, a->K, 0, 0); }
static float epi_out[200 * 200];
static void epi_relu(void *tbl, float acc, int64_t m, int64_t n) { (void)tbl; epi_out[m * 75 + n] = acc > 0 ? acc : 0; }
static void gemm_epi_k(void *p) { gemm_args *a = p; vt_gk_gemm(a->A, a->B, a->C, a->M, a->N, a->K, epi_relu, 0); }
static void test_gemm(void) {
  int64_t M = 70, N = 75, K = 41;
  float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C = malloc(M * N * 4);
  double *R = malloc(M * N * 8), *Rr = malloc(M * N * 8);
  for (int64_t i = 0; i < M * K; i++) A[i] = frand();
  for (int64_t i = 0; i < K * N; i++) B[i] = frand();
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += (double)A[m * K + k] * B[k * N + n];
      R[m * N + n] = s;
      Rr[m * N + n] = s > 0 ? s : 0;
    }
  gemm_args a = {A, B, C, M, N, K};
  launch((int)((N + 63) / 64), (int)((M + 63) / 64), gemm_k, &a);
  check("gemm 70x75x41 (edge tiles)", C, R, M * N, 1e-6);
  launch((int)((N + 63) / 64), (int)((M + 63) / 64), gemm_epi_k, &a);
  check("gemm with a ReLU epilogue callback", epi_out, Rr, M * N, 1e-6);
  free(A); free(B); free(C); free(R); free(Rr);
}

/* ---- rows ---- */
typedef struct { int op; const float *x, *g, *b; float *y; int64_t rows, cols; float eps; } rows_args;
static void rows_k(void *p) { rows_args *a = p; vt_gk_rows(a->op, a->x, a->g, a->b, a->y, a->rows, a->cols, a->eps); }
static void test_rows(void) {
  int64_t R = 5, C = 300;
  float *x = malloc(R * C * 4), *g = malloc(C * 4), *b = malloc(C * 4), *y = malloc(R * C * 4);
  double *ref = malloc(R * C * 8);
  for (int64_t i = 0; i < R * C; i++) x[i] = 3 * frand();
  for (int64_t i = 0; i < C; i++) { g[i] = frand(); b[i] = frand(); }
  const char *names[] = {"softmax rows", "layernorm rows (scale, bias)", "mean rows", "sum rows", "max rows", "min rows"};
  for (int op = 0; op < 6; op++) {
    for (int64_t r = 0; r < R; r++) {
      const float *xr = x + r * C;
      double mx = -INFINITY, mn = INFINITY, s = 0, q = 0;
      for (int64_t j = 0; j < C; j++) { mx = xr[j] > mx ? xr[j] : mx; mn = xr[j] < mn ? xr[j] : mn; s += xr[j]; }
      double mean = s / C;
      for (int64_t j = 0; j < C; j++) q += (xr[j] - mean) * (xr[j] - mean);
      double se = 0;
      for (int64_t j = 0; j < C; j++) se += exp(xr[j] - mx);
      for (int64_t j = 0; j < C; j++) {
        if (op == 0) ref[r * C + j] = exp(xr[j] - mx) / se;
        if (op == 1) ref[r * C + j] = (xr[j] - mean) / sqrt(q / C + 1e-5) * g[j] + b[j];
      }
      if (op >= 2) ref[r] = op == 2 ? mean : op == 3 ? s : op == 4 ? mx : mn;
    }
    rows_args a = {op, x, g, b, y, R, C, 1e-5f};
    launch(3, 1, rows_k, &a);   /* fewer blocks than rows: the grid-stride loop */
    check(names[op], y, ref, op >= 2 ? R : R * C, 1e-5);
  }
  free(x); free(g); free(b); free(y); free(ref);
}

/* ---- attention ---- */
typedef struct { const float *q, *k, *v; float *o; const float *mask; const int64_t *mstr; const float *kb;
                 int64_t B, H, Hkv, Nq, Nk, D; float scale; int causal; } attn_args;
static void attn_k(void *p) {
  attn_args *a = p;
  vt_gk_attention(a->q, a->k, a->v, a->o, a->mask, 0, a->mstr, a->kb, 0, a->Nk, 0, 0, 1, a->B, a->H, a->Hkv, a->Nq, a->Nk,
                  a->D, a->D, a->scale, a->causal);
}
static void test_attention(int causal, int masked) {
  int64_t B = 2, H = 4, Hkv = 2, Nq = 9, Nk = 13, D = 40;
  float *q = malloc(B * H * Nq * D * 4), *k = malloc(B * Hkv * Nk * D * 4), *v = malloc(B * Hkv * Nk * D * 4);
  float *o = malloc(B * H * Nq * D * 4), *mask = malloc(Nq * Nk * 4), *kb = malloc(H * Nk * 4);
  double *ref = malloc(B * H * Nq * D * 8);
  for (int64_t i = 0; i < B * H * Nq * D; i++) q[i] = frand();
  for (int64_t i = 0; i < B * Hkv * Nk * D; i++) { k[i] = frand(); v[i] = frand(); }
  for (int64_t i = 0; i < Nq * Nk; i++) mask[i] = frand();
  for (int64_t i = 0; i < H * Nk; i++) kb[i] = frand();
  float scale = 1.0f / sqrtf((float)D);
  /* masks over [B,H,Nq,Nk] broadcast on B, H; Q/K/V/out contiguous [B,H|Hkv,N,D] */
  int64_t mstr[24] = {0, 0, Nk, 1, 0, 0, 0, 0, 0, 0, 0, 0, H * Nq * D, Nq * D, D, Hkv * Nk * D, Nk * D, D,
                      Hkv * Nk * D, Nk * D, D, H * Nq * D, Nq * D, D};
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Nq; i++) {
        double s[64], mx = -INFINITY, sum = 0;
        int64_t hk = h / (H / Hkv);
        for (int64_t j = 0; j < Nk; j++) {
          double d = 0;
          for (int64_t t = 0; t < D; t++) d += (double)q[((b * H + h) * Nq + i) * D + t] * k[((b * Hkv + hk) * Nk + j) * D + t];
          s[j] = d * scale + (masked ? mask[i * Nk + j] + kb[h * Nk + j] : 0);
          if (causal && j > i + (Nk - Nq)) s[j] = -INFINITY;
          mx = s[j] > mx ? s[j] : mx;
        }
        for (int64_t j = 0; j < Nk; j++) sum += exp(s[j] - mx);
        for (int64_t t = 0; t < D; t++) {
          double acc = 0;
          for (int64_t j = 0; j < Nk; j++) acc += exp(s[j] - mx) / sum * v[((b * Hkv + hk) * Nk + j) * D + t];
          ref[((b * H + h) * Nq + i) * D + t] = acc;
        }
      }
  attn_args a = {q, k, v, o, masked ? mask : 0, mstr, masked ? kb : 0, B, H, Hkv, Nq, Nk, D, scale, causal};
  launch(3, 1, attn_k, &a);
  char what[80];
  snprintf(what, sizeof what, "attention GQA%s%s", causal ? " causal" : "", masked ? " mask + key bias" : "");
  check(what, o, ref, B * H * Nq * D, 1e-5);
  free(q); free(k); free(v); free(o); free(mask); free(kb); free(ref);
}

/* ---- conv, transpose, row blocks ---- */
typedef struct { const float *x, *w, *b; float *y; } conv_args;
static void conv_k(void *p) { conv_args *a = p; vt_gk_conv(a->x, a->w, a->b, a->y, 2, 6, 3, 9, 8, 5, 4, 3, 3, 2, 2, 1, 1, 1, 1); }
static void test_conv(void) {
  float x[2 * 3 * 9 * 8], w[6 * 3 * 3 * 3], b[6], y[2 * 6 * 5 * 4];
  double ref[2 * 6 * 5 * 4];
  for (size_t i = 0; i < sizeof x / 4; i++) x[i] = frand();
  for (size_t i = 0; i < sizeof w / 4; i++) w[i] = frand();
  for (int i = 0; i < 6; i++) b[i] = frand();
  for (int n = 0; n < 2; n++)
    for (int o = 0; o < 6; o++)
      for (int oh = 0; oh < 5; oh++)
        for (int ow = 0; ow < 4; ow++) {
          double s = b[o];
          for (int c = 0; c < 3; c++)
            for (int i = 0; i < 3; i++)
              for (int j = 0; j < 3; j++) {
                int ih = oh * 2 - 1 + i, iw = ow * 2 - 1 + j;
                if (ih >= 0 && ih < 9 && iw >= 0 && iw < 8) s += (double)x[((n * 3 + c) * 9 + ih) * 8 + iw] * w[((o * 3 + c) * 3 + i) * 3 + j];
              }
          ref[((n * 6 + o) * 5 + oh) * 4 + ow] = s;
        }
  conv_args a = {x, w, b, y};
  launch(1, 1, conv_k, &a);
  check("conv 3x3 stride 2 pad 1 bias", y, ref, 240, 1e-6);
}
typedef struct { const float *src; float *dst; const int64_t *od, *is; } perm_args;
static void perm_k(void *p) { perm_args *a = p; vt_gk_perm((const char *)a->src, (char *)a->dst, 4, 3, a->od, a->is, 2 * 5 * 7); }
typedef struct { const float *src; float *dst; } rows_copy_args;
static void copy_rows_k(void *p) { rows_copy_args *a = p; vt_gk_copy_rows((char *)a->dst + 8, (const char *)a->src, 6, 12, 40, 20); }
static void test_layout(void) {
  float x[2 * 7 * 5], y[70], big[6 * 10];
  double ref[70], refc[60];
  for (int i = 0; i < 70; i++) x[i] = (float)i;
  /* x [2, 7, 5] -> y [2, 5, 7] (perm 0, 2, 1): input strides per output axis 35, 1, 5 */
  int64_t od[8] = {2, 5, 7}, is[8] = {35, 1, 5};
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 5; b++)
      for (int c = 0; c < 7; c++) ref[(a * 5 + b) * 7 + c] = x[a * 35 + c * 5 + b];
  perm_args pa = {x, y, od, is};
  launch(1, 1, perm_k, &pa);
  check("transpose [2,7,5] perm 0,2,1", y, ref, 70, 0);
  for (int i = 0; i < 60; i++) big[i] = -1.0f;
  for (int i = 0; i < 60; i++) refc[i] = -1.0;
  for (int r = 0; r < 6; r++)   /* 3 floats per row, src rows 20 bytes apart, dst rows 40 apart at +8 bytes */
    for (int t = 0; t < 3; t++) refc[r * 10 + 2 + t] = x[r * 5 + t];
  rows_copy_args ca = {x, big};
  launch(1, 1, copy_rows_k, &ca);
  check("row-block copy (strided rows)", big, refc, 60, 0);
}

/* the math helpers of elementwise chains against libm (exp2f here; the GPU's ex2.approx adds ~2 ulp) */
static void test_math(void) {
  double e_erf = 0, e_tanh = 0, e_sig = 0, e_exp = 0, e_log = 0;
  for (int i = -4000; i <= 4000; i++) {
    float x = i / 400.0f;
    e_erf = fmax(e_erf, fabs(vt_gk_erf(x) - erf(x)));
    e_tanh = fmax(e_tanh, fabs(vt_gk_tanh(x) - tanh(x)));
    e_sig = fmax(e_sig, fabs(vt_gk_sigmoid(x) - 1.0 / (1.0 + exp(-x))));
    e_exp = fmax(e_exp, fabs(vt_gk_exp(x) - exp(x)) / exp(x));
    if (x > 0) e_log = fmax(e_log, fabs(vt_gk_log(x) - log(x)));
  }
  int ok = e_erf < 1e-6 && e_tanh < 1e-6 && e_sig < 1e-6 && e_exp < 1e-6 && e_log < 1e-6;
  fails += !ok;
  printf("%s math on [-10, 10]: max |err| erf %.1e tanh %.1e sigmoid %.1e, rel exp %.1e, log %.1e (tol 1e-6)\n",
         ok ? "ok  " : "FAIL", e_erf, e_tanh, e_sig, e_exp, e_log);
}

int main(void) {
  srand(1);
  test_math();
  test_gemm();
  test_rows();
  test_attention(0, 0);
  test_attention(1, 1);
  test_attention(0, 1);
  test_conv();
  test_layout();
  if (!fails) printf("PASS: GPU device bodies on the emulator\n");
  return fails ? 1 : 0;
}

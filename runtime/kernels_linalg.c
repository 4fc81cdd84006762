/* kernels_linalg.c — reference kernels of MatMul, Gemm and Einsum (the linalg family; Conv,
 * ConvTranspose, BatchNormalization and the pools are in kernels_conv.c). float32 runs on the
 * shared blocked GEMM (gemm.c); f16/bf16 compute in f32; f64 and integers use plain loops. */
#include "gemm.h"
#include "kernels_util.h"
#include "linalg_util.h"

#include <stdlib.h>
#include <string.h>

/* ---------- plain-loop matmul for non-f32 dtypes ------------------------------------------- */
typedef struct {
  vt_dtype dt;
  int tA, tB;
  int64_t M, N, K, lda, ldb;
  const int64_t *offA, *offB;    /* per batch item element offsets */
  const void *A, *B;
  void *C;
  double alpha, beta;            /* Gemm scaling (MatMul: 1, 0) */
  int has_beta;
} loop_job;

#define LOOP_BODY(T, ACC)                                                                   \
  {                                                                                         \
    const T *A = (const T *)j->A + j->offA[b], *B = (const T *)j->B + j->offB[b];          \
    T *C = (T *)j->C + b * j->M * j->N + i * j->N;                                          \
    for (int64_t n = 0; n < j->N; n++) {                                                    \
      ACC s = 0;                                                                            \
      for (int64_t k = 0; k < j->K; k++)                                                    \
        s += (ACC)(j->tA ? A[k * j->lda + i] : A[i * j->lda + k]) *                         \
             (ACC)(j->tB ? B[n * j->ldb + k] : B[k * j->ldb + n]);                          \
      if (j->has_beta)                                                                      \
        C[n] = (T)((ACC)j->alpha * s + (ACC)j->beta * (ACC)C[n]);                           \
      else                                                                                  \
        C[n] = (T)((ACC)j->alpha * s);                                                      \
    }                                                                                       \
  }

static void loop_rows(void *arg, int64_t r0, int64_t r1) {
  loop_job *j = arg;
  for (int64_t r = r0; r < r1; r++) {
    int64_t b = r / j->M, i = r % j->M;
    switch (j->dt) {
    case VT_F64: LOOP_BODY(double, double) break;
    case VT_I32: LOOP_BODY(int32_t, int64_t) break;
    case VT_I64: LOOP_BODY(int64_t, int64_t) break;
    case VT_U32: LOOP_BODY(uint32_t, uint64_t) break;
    case VT_U64: LOOP_BODY(uint64_t, uint64_t) break;
    default: break;
    }
  }
}

/* ---------- MatMul ----------------------------------------------------------------------------- */
int vt_kernel_MatMul(vt_kctx *k) {
  const vt_tensor *a = k->in[0], *b = k->in[1];
  vt_tensor *y = k->out[0];
  int ra = a->rank, rb = b->rank, ry = y->rank;
  if (ra < 1 || rb < 1) return vt_kernel_fail(k, "operands must have rank >= 1");
  int64_t M = ra >= 2 ? a->dims[ra - 2] : 1, K = a->dims[ra - 1];
  int64_t K2 = rb >= 2 ? b->dims[rb - 2] : b->dims[0], N = rb >= 2 ? b->dims[rb - 1] : 1;
  if (K != K2) return vt_kernel_fail(k, "inner dims differ: %lld vs %lld", (long long)K, (long long)K2);
  int nb = ry - (ra >= 2) - (rb >= 2);
  int ba = ra > 2 ? ra - 2 : 0, bbr = rb > 2 ? rb - 2 : 0;
  int64_t batch = 1;
  for (int i = 0; i < nb; i++) batch *= y->dims[i];
  if (batch == 0 || M == 0 || N == 0) return VT_OK;
  /* element strides of the batch dims for A and B (0 where broadcast) */
  int64_t sa[VT_MAX_RANK] = {0}, sb[VT_MAX_RANK] = {0};
  {
    int64_t s = M * K;
    for (int i = ba - 1; i >= 0; i--) {
      sa[nb - ba + i] = a->dims[i] == 1 ? 0 : s;
      s *= a->dims[i];
    }
    s = K * N;
    for (int i = bbr - 1; i >= 0; i--) {
      sb[nb - bbr + i] = b->dims[i] == 1 ? 0 : s;
      s *= b->dims[i];
    }
  }
  bool b_shared = true, a_full = true;
  for (int i = 0; i < nb; i++) {
    if (sb[i]) b_shared = false;
    if (!sa[i] && y->dims[i] != 1) a_full = false;
  }
  vt_tensor af = {0}, bf = {0}, yf = {0};
  const vt_tensor *ap = a, *bp = b;
  vt_tensor *yp = y;
  int rc = VT_OK;
  int64_t *offs = NULL;
  if (vt_dtype_is_half(a->dtype)) {
    if ((rc = vt_tensor_to_f32(a, &af, k->err)) || (rc = vt_tensor_to_f32(b, &bf, k->err)) ||
        (rc = vt_tensor_alloc(&yf, VT_F32, y->rank, y->dims, k->err)))
      goto done;
    ap = &af; bp = &bf; yp = &yf;
  }
  if (ap->dtype == VT_F32 && b_shared && a_full) {
    /* one GEMM: the batch folds into M */
    vt_sgemm(k->pool, 0, 0, batch * M, N, K, 1.0f, ap->data, K, bp->data, N, 0.0f, yp->data, N);
    goto convert;
  }
  offs = malloc(sizeof(int64_t) * 2 * (size_t)batch);
  if (!offs) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
  {
    int64_t idx[VT_MAX_RANK] = {0}, oa = 0, ob = 0;
    for (int64_t t = 0; t < batch; t++) {
      offs[t] = oa;
      offs[batch + t] = ob;
      for (int d = nb - 1; d >= 0; d--) {
        oa += sa[d]; ob += sb[d];
        if (++idx[d] < y->dims[d]) break;
        oa -= sa[d] * idx[d]; ob -= sb[d] * idx[d];
        idx[d] = 0;
      }
    }
  }
  if (ap->dtype == VT_F32) {
    const float **pa = malloc(sizeof(float *) * 2 * (size_t)batch);
    float **pc = malloc(sizeof(float *) * (size_t)batch);
    if (!pa || !pc) { free(pa); free(pc); rc = vt_kernel_fail(k, "out of memory"); goto done; }
    for (int64_t t = 0; t < batch; t++) {
      pa[t] = (const float *)ap->data + offs[t];
      pa[batch + t] = (const float *)bp->data + offs[batch + t];
      pc[t] = (float *)yp->data + t * M * N;
    }
    vt_sgemm_ptrs(k->pool, 0, 0, M, N, K, 1.0f, pa, K, pa + batch, N, 0.0f, pc, N, batch);
    free(pa);
    free(pc);
  } else if (ap->dtype == VT_F64 || ap->dtype == VT_I32 || ap->dtype == VT_I64 ||
             ap->dtype == VT_U32 || ap->dtype == VT_U64) {
    loop_job j = {ap->dtype, 0, 0, M, N, K, K, N, offs, offs + batch, ap->data, bp->data,
                  yp->data, 1.0, 0.0, 0};
    vt_pool_for((double)M * N * K * batch >= VT_PAR_MIN ? k->pool : NULL, batch * M, loop_rows, &j);
  } else {
    rc = vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(ap->dtype));
    goto done;
  }
convert:
  if (yp != y) vt_tensor_from_f32(yp, y);
done:
  free(offs);
  vt_tensor_free(&af);
  vt_tensor_free(&bf);
  vt_tensor_free(&yf);
  return rc;
}

/* ---------- Gemm ---------------------------------------------------------------------------------- */
int vt_kernel_Gemm(vt_kctx *k) {
  const vt_tensor *a = k->in[0], *b = k->in[1], *c = k->n_in > 2 ? k->in[2] : NULL;
  vt_tensor *y = k->out[0];
  if (a->rank != 2 || b->rank != 2) return vt_kernel_fail(k, "A and B must be 2-D");
  int tA = vt_attr_int(k->node, "transA", 0) != 0, tB = vt_attr_int(k->node, "transB", 0) != 0;
  float alpha = vt_attr_float(k->node, "alpha", 1.0f), beta = vt_attr_float(k->node, "beta", 1.0f);
  int64_t M = y->dims[0], N = y->dims[1], K = a->dims[tA ? 0 : 1];
  if (b->dims[tB ? 1 : 0] != K) return vt_kernel_fail(k, "inner dims differ");
  vt_tensor af = {0}, bf = {0}, cf = {0}, yf = {0};
  const vt_tensor *ap = a, *bp = b, *cp = c;
  vt_tensor *yp = y;
  int rc = VT_OK;
  if (vt_dtype_is_half(a->dtype)) {
    if ((rc = vt_tensor_to_f32(a, &af, k->err)) || (rc = vt_tensor_to_f32(b, &bf, k->err)) ||
        (c && (rc = vt_tensor_to_f32(c, &cf, k->err))) ||
        (rc = vt_tensor_alloc(&yf, VT_F32, 2, y->dims, k->err)))
      goto done;
    ap = &af; bp = &bf; cp = c ? &cf : NULL; yp = &yf;
  }
  bool use_c = cp && beta != 0.0f && M > 0 && N > 0;
  if (use_c) {
    /* broadcast C into Y (C's rank <= 2, dims 1 or equal) */
    int64_t cr = cp->rank >= 1 ? cp->dims[cp->rank - 1] : 1;
    int64_t cm = cp->rank >= 2 ? cp->dims[0] : 1;
    if ((cr != 1 && cr != N) || (cm != 1 && cm != M))
      { rc = vt_kernel_fail(k, "C does not broadcast to [%lld, %lld]", (long long)M, (long long)N); goto done; }
    size_t es = vt_dtype_size(yp->dtype);
    for (int64_t i = 0; i < M; i++) {
      char *dst = (char *)yp->data + (size_t)(i * N) * es;
      const char *src = (const char *)cp->data + (size_t)((cm == 1 ? 0 : i) * cr) * es;
      if (cr == N) {
        memcpy(dst, src, (size_t)N * es);
      } else {
        for (int64_t j = 0; j < N; j++) memcpy(dst + (size_t)j * es, src, es);
      }
    }
  }
  if (yp->dtype == VT_F32) {
    vt_sgemm(k->pool, tA, tB, M, N, K, alpha, ap->data, ap->dims[1], bp->data, bp->dims[1],
             use_c ? beta : 0.0f, yp->data, N);
  } else if (yp->dtype == VT_F64 || yp->dtype == VT_I32 || yp->dtype == VT_I64 ||
             yp->dtype == VT_U32 || yp->dtype == VT_U64) {
    int64_t zero = 0;
    loop_job j = {yp->dtype, tA, tB, M, N, K, ap->dims[1], bp->dims[1], &zero, &zero, ap->data,
                  bp->data, yp->data, alpha, beta, use_c};
    vt_pool_for((double)M * N * K >= VT_PAR_MIN ? k->pool : NULL, M, loop_rows, &j);
  } else {
    rc = vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(yp->dtype));
    goto done;
  }
  if (yp != y) vt_tensor_from_f32(yp, y);
done:
  vt_tensor_free(&af);
  vt_tensor_free(&bf);
  vt_tensor_free(&cf);
  vt_tensor_free(&yf);
  return rc;
}

/* ---------- Einsum -------------------------------------------------------------------------------- */
/* dst[i0..] = src permuted: dst dim i is src dim perm[i]. */
static void permute_f32(const float *src, int rank, const int64_t *dims, const int *perm, float *dst) {
  int64_t sstr[VT_MAX_RANK], ddims[VT_MAX_RANK] = {0}, st[VT_MAX_RANK] = {0}, idx[VT_MAX_RANK] = {0};
  vt_strides(rank, dims, sstr);
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    ddims[i] = dims[perm[i]];
    st[i] = sstr[perm[i]];
    n *= ddims[i];
  }
  if (rank == 0) { if (n) dst[0] = src[0]; return; }
  int64_t inner = ddims[rank - 1], is = st[rank - 1], off = 0;
  for (int64_t o = 0; o < n; o += inner) {
    for (int64_t q = 0; q < inner; q++) dst[o + q] = src[off + q * is];
    for (int d = rank - 2; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < ddims[d]) break;
      off -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
}

typedef struct {
  const vt_einsum *e;
  int64_t size[VT_EINSUM_LABELS];
} es_info;

/* Fast path: two f32 operands whose labels are all batch / M / N / K (no diagonal, no label
 * summed inside one operand). Returns 1 if it ran, 0 if not applicable, -1 on error (set). */
static int einsum_gemm(vt_kctx *k, const es_info *inf) {
  const vt_einsum *e = inf->e;
  const vt_tensor *ta = k->in[0], *tb = k->in[1];
  vt_tensor *y = k->out[0];
  if (e->nin != 2 || ta->dtype != VT_F32) return 0;
  int inA[VT_EINSUM_LABELS] = {0}, inB[VT_EINSUM_LABELS] = {0}, inO[VT_EINSUM_LABELS] = {0};
  int64_t szA[VT_EINSUM_LABELS], szB[VT_EINSUM_LABELS];
  for (int d = 0; d < e->rank[0]; d++) {
    if (inA[e->lab[0][d]]++) return 0;
    szA[e->lab[0][d]] = ta->dims[d];
  }
  for (int d = 0; d < e->rank[1]; d++) {
    if (inB[e->lab[1][d]]++) return 0;
    szB[e->lab[1][d]] = tb->dims[d];
  }
  for (int d = 0; d < e->nout; d++) inO[e->out[d]] = 1;
  int bl[VT_MAX_RANK], ml[VT_MAX_RANK], nl[VT_MAX_RANK], kl[VT_MAX_RANK];
  int nbl = 0, nml = 0, nnl = 0, nkl = 0;
  for (int d = 0; d < e->nout; d++) {
    int l = e->out[d];
    if (inA[l] && inB[l]) bl[nbl++] = l;
    else if (inA[l]) ml[nml++] = l;
    else nl[nnl++] = l;
  }
  for (int d = 0; d < e->rank[0]; d++) {
    int l = e->lab[0][d];
    if (inO[l]) continue;
    if (!inB[l] || szA[l] != szB[l]) return 0;
    kl[nkl++] = l;
  }
  for (int d = 0; d < e->rank[1]; d++)
    if (!inO[e->lab[1][d]] && !inA[e->lab[1][d]]) return 0;
  int64_t M = 1, N = 1, K = 1, batch = 1;
  for (int i = 0; i < nml; i++) M *= inf->size[ml[i]];
  for (int i = 0; i < nnl; i++) N *= inf->size[nl[i]];
  for (int i = 0; i < nkl; i++) K *= inf->size[kl[i]];
  for (int i = 0; i < nbl; i++) batch *= inf->size[bl[i]];
  if (M == 0 || N == 0 || batch == 0) return 1;

  /* canonical orders */
  int ordA[VT_MAX_RANK], ordAt[VT_MAX_RANK], ordB[VT_MAX_RANK], ordBt[VT_MAX_RANK], ordY[VT_MAX_RANK];
  int r = 0;
  for (int i = 0; i < nbl; i++) ordA[r] = ordAt[r] = bl[i], r++;
  for (int i = 0; i < nml; i++) { ordA[r + i] = ml[i]; ordAt[r + nkl + i] = ml[i]; }
  for (int i = 0; i < nkl; i++) { ordA[r + nml + i] = kl[i]; ordAt[r + i] = kl[i]; }
  r = 0;
  for (int i = 0; i < nbl; i++) ordB[r] = ordBt[r] = bl[i], r++;
  for (int i = 0; i < nkl; i++) { ordB[r + i] = kl[i]; ordBt[r + nnl + i] = kl[i]; }
  for (int i = 0; i < nnl; i++) { ordB[r + nkl + i] = nl[i]; ordBt[r + i] = nl[i]; }
  r = 0;
  for (int i = 0; i < nbl; i++) ordY[r++] = bl[i];
  for (int i = 0; i < nml; i++) ordY[r++] = ml[i];
  for (int i = 0; i < nnl; i++) ordY[r++] = nl[i];

  int tA = -1, tB = -1;
  bool eqA = true, eqAt = true, eqB = true, eqBt = true, eqY = true;
  for (int d = 0; d < e->rank[0]; d++) {
    if (e->lab[0][d] != ordA[d]) eqA = false;
    if (e->lab[0][d] != ordAt[d]) eqAt = false;
  }
  for (int d = 0; d < e->rank[1]; d++) {
    if (e->lab[1][d] != ordB[d]) eqB = false;
    if (e->lab[1][d] != ordBt[d]) eqBt = false;
  }
  for (int d = 0; d < e->nout; d++)
    if (e->out[d] != ordY[d]) eqY = false;
  tA = eqA ? 0 : eqAt ? 1 : -1;
  tB = eqB ? 0 : eqBt ? 1 : -1;

  float *bufA = NULL, *bufB = NULL, *bufY = NULL;
  const float *pA = ta->data, *pB = tb->data;
  float *pY = y->data;
  const float **pa = NULL;
  float **pc = NULL;
  int rc = 1;
  if (tA < 0) {
    int perm[VT_MAX_RANK];
    for (int i = 0; i < e->rank[0]; i++)
      for (int d = 0; d < e->rank[0]; d++)
        if (e->lab[0][d] == ordA[i]) perm[i] = d;
    bufA = malloc(sizeof(float) * (size_t)vt_tensor_numel(ta) + 1);
    if (!bufA) goto oom;
    permute_f32(ta->data, ta->rank, ta->dims, perm, bufA);
    pA = bufA;
    tA = 0;
  }
  if (tB < 0) {
    int perm[VT_MAX_RANK];
    for (int i = 0; i < e->rank[1]; i++)
      for (int d = 0; d < e->rank[1]; d++)
        if (e->lab[1][d] == ordB[i]) perm[i] = d;
    bufB = malloc(sizeof(float) * (size_t)vt_tensor_numel(tb) + 1);
    if (!bufB) goto oom;
    permute_f32(tb->data, tb->rank, tb->dims, perm, bufB);
    pB = bufB;
    tB = 0;
  }
  if (!eqY) {
    bufY = malloc(sizeof(float) * (size_t)(batch * M * N));
    if (!bufY) goto oom;
    pY = bufY;
  }
  /* batch strides: operands keep their batch labels first, in canonical order */
  int64_t sa[VT_MAX_RANK], sb[VT_MAX_RANK], bdims[VT_MAX_RANK];
  {
    int64_t s = M * K;
    for (int i = nbl - 1; i >= 0; i--) { sa[i] = szA[bl[i]] == 1 ? 0 : s; s *= szA[bl[i]]; }
    s = K * N;
    for (int i = nbl - 1; i >= 0; i--) { sb[i] = szB[bl[i]] == 1 ? 0 : s; s *= szB[bl[i]]; }
    for (int i = 0; i < nbl; i++) bdims[i] = inf->size[bl[i]];
  }
  pa = malloc(sizeof(float *) * 2 * (size_t)batch);
  pc = malloc(sizeof(float *) * (size_t)batch);
  if (!pa || !pc) goto oom;
  {
    int64_t idx[VT_MAX_RANK] = {0}, oa = 0, ob = 0;
    for (int64_t t = 0; t < batch; t++) {
      pa[t] = pA + oa;
      pa[batch + t] = pB + ob;
      pc[t] = pY + t * M * N;
      for (int d = nbl - 1; d >= 0; d--) {
        oa += sa[d]; ob += sb[d];
        if (++idx[d] < bdims[d]) break;
        oa -= sa[d] * idx[d]; ob -= sb[d] * idx[d];
        idx[d] = 0;
      }
    }
  }
  vt_sgemm_ptrs(k->pool, tA, tB, M, N, K, 1.0f, pa, tA ? M : K, pa + batch, tB ? K : N, 0.0f, pc,
                N, batch);
  if (!eqY) {
    /* bufY has labels in ordY order; output wants e->out order */
    int64_t ydims[VT_MAX_RANK];
    int perm[VT_MAX_RANK];
    for (int i = 0; i < e->nout; i++) {
      ydims[i] = inf->size[ordY[i]];
      for (int d = 0; d < e->nout; d++)
        if (ordY[d] == e->out[i]) perm[i] = d;
    }
    permute_f32(bufY, e->nout, ydims, perm, y->data);
  }
  goto out;
oom:
  vt_kernel_fail(k, "out of memory");
  rc = -1;
out:
  free(bufA); free(bufB); free(bufY); free(pa); free(pc);
  return rc;
}

/* Generic path: out[o] = sum over the other labels of the product of the operands, computed in
 * double (float dtypes) or int64 (integers). */
typedef struct {
  const es_info *inf;
  int nin;
  int nlab;                       /* output labels first, then summed labels */
  int labs[VT_EINSUM_LABELS];
  int64_t st[VT_EINSUM_MAX_IN][VT_EINSUM_LABELS];   /* per operand stride of each label */
  const void *in[VT_EINSUM_MAX_IN];
  int isint;
  void *out;                      /* double or int64 buffer, one per output element */
} es_gen;

static void es_gen_range(void *arg, int64_t o0, int64_t o1) {
  es_gen *g = arg;
  const es_info *inf = g->inf;
  int no = inf->e->nout, nl = g->nlab;
  int64_t inner = 1;
  for (int i = no; i < nl; i++) inner *= inf->size[g->labs[i]];
  for (int64_t o = o0; o < o1; o++) {
    /* base offsets from the output index */
    int64_t base[VT_EINSUM_MAX_IN] = {0}, rem = o;
    for (int i = no - 1; i >= 0; i--) {
      int64_t sz = inf->size[g->labs[i]], x = rem % sz;
      rem /= sz;
      for (int t = 0; t < g->nin; t++) base[t] += x * g->st[t][g->labs[i]];
    }
    int64_t idx[VT_EINSUM_LABELS] = {0}, off[VT_EINSUM_MAX_IN];
    for (int t = 0; t < g->nin; t++) off[t] = base[t];
    double sd = 0;
    int64_t si = 0;
    for (int64_t q = 0; q < inner; q++) {
      if (g->isint) {
        int64_t p = 1;
        for (int t = 0; t < g->nin; t++) p *= ((const int64_t *)g->in[t])[off[t]];
        si += p;
      } else {
        double p = 1;
        for (int t = 0; t < g->nin; t++) p *= ((const double *)g->in[t])[off[t]];
        sd += p;
      }
      for (int i = nl - 1; i >= no; i--) {
        int l = g->labs[i];
        for (int t = 0; t < g->nin; t++) off[t] += g->st[t][l];
        if (++idx[i] < inf->size[l]) break;
        for (int t = 0; t < g->nin; t++) off[t] -= g->st[t][l] * idx[i];
        idx[i] = 0;
      }
    }
    if (g->isint) ((int64_t *)g->out)[o] = si;
    else ((double *)g->out)[o] = sd;
  }
}

static int einsum_generic(vt_kctx *k, const es_info *inf) {
  const vt_einsum *e = inf->e;
  vt_tensor *y = k->out[0];
  es_gen g;
  memset(&g, 0, sizeof g);
  g.inf = inf;
  g.nin = e->nin;
  g.isint = vt_dtype_is_int(y->dtype);
  bool used[VT_EINSUM_LABELS] = {0};
  for (int d = 0; d < e->nout; d++) { g.labs[g.nlab++] = e->out[d]; used[e->out[d]] = true; }
  for (int t = 0; t < e->nin; t++)
    for (int d = 0; d < e->rank[t]; d++)
      if (!used[e->lab[t][d]]) { used[e->lab[t][d]] = true; g.labs[g.nlab++] = e->lab[t][d]; }
  int rc = VT_OK;
  void *bufs[VT_EINSUM_MAX_IN] = {0};
  void *obuf = NULL;
  int64_t nout = vt_tensor_numel(y);
  for (int t = 0; t < e->nin; t++) {
    const vt_tensor *x = k->in[t];
    int64_t n = vt_tensor_numel(x), str[VT_MAX_RANK];
    vt_strides(x->rank, x->dims, str);
    for (int d = 0; d < x->rank; d++)
      if (x->dims[d] != 1 || inf->size[e->lab[t][d]] == 1) g.st[t][e->lab[t][d]] += str[d];
    bufs[t] = malloc(8 * (size_t)n + 8);
    if (!bufs[t]) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
    for (int64_t i = 0; i < n; i++) {
      if (g.isint) ((int64_t *)bufs[t])[i] = vt_tensor_get_i64(x, i);
      else ((double *)bufs[t])[i] = vt_tensor_get_f64(x, i);
    }
    g.in[t] = bufs[t];
  }
  obuf = malloc(8 * (size_t)nout + 8);
  if (!obuf) { rc = vt_kernel_fail(k, "out of memory"); goto done; }
  g.out = obuf;
  vt_pool_for(nout >= 64 ? k->pool : NULL, nout, es_gen_range, &g);
  for (int64_t i = 0; i < nout; i++) {
    switch (y->dtype) {
    case VT_F32: ((float *)y->data)[i] = (float)((double *)obuf)[i]; break;
    case VT_F64: ((double *)y->data)[i] = ((double *)obuf)[i]; break;
    case VT_F16: ((uint16_t *)y->data)[i] = vt_f32_to_f16((float)((double *)obuf)[i]); break;
    case VT_BF16: ((uint16_t *)y->data)[i] = vt_f32_to_bf16((float)((double *)obuf)[i]); break;
    case VT_I32: ((int32_t *)y->data)[i] = (int32_t)((int64_t *)obuf)[i]; break;
    case VT_I64: ((int64_t *)y->data)[i] = ((int64_t *)obuf)[i]; break;
    case VT_U32: ((uint32_t *)y->data)[i] = (uint32_t)((int64_t *)obuf)[i]; break;
    case VT_U64: ((uint64_t *)y->data)[i] = (uint64_t)((int64_t *)obuf)[i]; break;
    default: rc = vt_kernel_fail(k, "dtype %s is not supported", vt_dtype_name(y->dtype)); goto done;
    }
  }
done:
  for (int t = 0; t < e->nin; t++) free(bufs[t]);
  free(obuf);
  return rc;
}

int vt_kernel_Einsum(vt_kctx *k) {
  const char *eq = vt_attr_str(k->node, "equation", NULL);
  if (!eq) return vt_kernel_fail(k, "attribute equation is required");
  if (k->n_in > VT_EINSUM_MAX_IN) return vt_kernel_fail(k, "too many inputs");
  int32_t ranks[VT_EINSUM_MAX_IN];
  for (int i = 0; i < k->n_in; i++) {
    if (!k->in[i]) return vt_kernel_fail(k, "input %d is missing", i);
    ranks[i] = k->in[i]->rank;
  }
  vt_einsum e;
  char err[256];
  if (vt_einsum_parse(eq, k->n_in, ranks, &e, err, sizeof err)) return vt_kernel_fail(k, "%s", err);
  es_info inf;
  inf.e = &e;
  for (int l = 0; l < VT_EINSUM_LABELS; l++) inf.size[l] = 1;
  bool have[VT_EINSUM_LABELS] = {0};
  for (int t = 0; t < e.nin; t++)
    for (int d = 0; d < e.rank[t]; d++) {
      int l = e.lab[t][d];
      int64_t x = k->in[t]->dims[d];
      if (!have[l] || inf.size[l] == 1) { inf.size[l] = x; have[l] = true; }
      else if (x != 1 && x != inf.size[l])
        return vt_kernel_fail(k, "einsum '%s': a label has sizes %lld and %lld", eq,
                              (long long)inf.size[l], (long long)x);
    }
  int rc = einsum_gemm(k, &inf);
  if (rc < 0) return VT_ERR_MODEL;
  if (rc == 1) return VT_OK;
  return einsum_generic(k, &inf);
}

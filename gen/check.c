/*
** check.c: inputs, fp64 references and error bounds per reference kind (see check.h).
*/
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kf_quant.h"
#include "kf_ref.h"

typedef enum { PROB_GEMM_Q, PROB_ATTN, PROB_MLA, PROB_ATTN_Q } prob_kind;

struct kf_problem {
  prob_kind kind;
  const kf_kernel *k;
  int n_args;
  void **args;
  size_t *arg_bytes;
  int weight_arg;
  int64_t out_n;
  float *out;       /* points into args (the output) */
  double *ref, *bound;
  double flops, bytes;
  /* gemm */
  kf_qweight qw;
  int64_t M, N, K;
  /* attention */
  int64_t B, H, HKV, S, D, DV, block;
  double scale;
  double *kd, *vd; /* exact dequantized INT8 KV cache (kvq baseline, attn_q) */
  int64_t *check_rows; /* gemm: the output rows the reference covers (ref/bound are per such row) */
  int8_t *mx_value;    /* gemm, MXFP4 nibble weights: 2 * E2M1 value per weight (N x K) */
  int64_t n_check_rows;
};

/* INT8 KV cache for attention: K per channel (kscale 0: one scale per (kv head, d) over the
** tokens) or per token (kscale 1), V per token; scale = max|.|/127, codes round-half-even.
** K (B*HKV x S x D) and V (B*HKV x S x DV) are overwritten with nothing; the codes and
** scales go to the outputs, the exact values code*scale to kd / vd. K's channels get
** different magnitudes (every 7th channel x8) so per-channel scales matter. */
static void quantize_kv(int64_t BH, int64_t S, int64_t D, int64_t DV, int kscale, int64_t ks_stride, float *k, const float *v,
                        int8_t *kc, float *ks, int8_t *vc, float *vs, double *kd, double *vd) {
  for (int64_t g = 0; g < BH; g++) {
    float *K = k + g * S * D;
    for (int64_t j = 0; j < S; j++)
      for (int64_t d = 0; d < D; d += 7) K[j * D + d] *= 8.0f;
    for (int64_t i = 0; i < (kscale ? S : D); i++) {
      double amax = 0;
      for (int64_t o = 0; o < (kscale ? D : S); o++)
        amax = fmax(amax, fabs((double)(kscale ? K[i * D + o] : K[o * D + i])));
      ks[g * ks_stride + i] = (float)(amax / 127.0);
    }
    for (int64_t j = 0; j < S; j++)
      for (int64_t d = 0; d < D; d++) {
        float sc = ks[g * ks_stride + (kscale ? j : d)];
        double c = sc > 0 ? nearbyint((double)K[j * D + d] / sc) : 0;
        c = fmax(-127, fmin(127, c));
        kc[(g * S + j) * D + d] = (int8_t)c;
        kd[(g * S + j) * D + d] = c * sc;
      }
    for (int64_t j = 0; j < S; j++) {
      double amax = 0;
      for (int64_t c = 0; c < DV; c++) amax = fmax(amax, fabs((double)v[(g * S + j) * DV + c]));
      float sc = (float)(amax / 127.0);
      vs[g * ((S + 15) / 16 * 16) + j] = sc;
      for (int64_t c = 0; c < DV; c++) {
        double q = sc > 0 ? nearbyint((double)v[(g * S + j) * DV + c] / sc) : 0;
        q = fmax(-127, fmin(127, q));
        vc[(g * S + j) * DV + c] = (int8_t)q;
        vd[(g * S + j) * DV + c] = q * sc;
      }
    }
  }
}



static int64_t param(const kf_kernel *k, const char *name, int64_t def) {
  int64_t v;
  return kf_binding_get(&k->params, name, &v) ? v : def;
}

static int expect_arg(kf_ctx *ctx, const kf_kernel *k, int i, const char *name, kf_scalar dt,
                      const char *what) {
  const kf_ir_buf *b = kf_kernel_arg(k, i);
  if (!b || strcmp(b->name, name) || b->dtype != dt)
    return kf_err(ctx, KF_EINVAL,
                  "%s: reference '%s' expects argument %d to be '%s' (%s, %s); the template declares %s%s%s",
                  kf_template_path(k->tmpl), kf_template_reference(k->tmpl), i + 1, name,
                  kf_scalar_name(dt), what, b ? "'" : "nothing", b ? b->name : "", b ? "'" : "");
  return KF_OK;
}

static int64_t lir_arg_elems(const kf_lir_func *f, int arg) {
  for (size_t i = 0; i < f->bufs.len; i++)
    if (f->bufs.data[i].arg_index == arg) return f->bufs.data[i].n_elems;
  return 0;
}

/* Input and output buffers end right before an unmapped page, so a kernel that reads or
** writes past a buffer faults at once (in every build) instead of reading its neighbour.
** The mapping's base and length sit in the 64 bytes before the returned pointer. */
static void *xalloc64(size_t bytes) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), b64 = (bytes + 63) & ~(size_t)63;
  size_t body = (b64 + 64 + page - 1) / page * page, len = body + page;
  unsigned char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  kf_assert(base != MAP_FAILED);
  kf_assert(mprotect(base + body, page, PROT_NONE) == 0);
  unsigned char *p = base + body - b64;
  memcpy(p - 64, &base, sizeof base);
  memcpy(p - 64 + sizeof base, &len, sizeof len);
  return p;
}

static void xfree64(void *ptr) {
  if (!ptr) return;
  unsigned char *base;
  size_t len;
  memcpy(&base, (unsigned char *)ptr - 64, sizeof base);
  memcpy(&len, (unsigned char *)ptr - 64 + sizeof base, sizeof len);
  munmap(base, len);
}

static void *xcopy64(const void *src, size_t bytes) { return memcpy(xalloc64(bytes), src, bytes); }

/* ---- gemm_q: y[M,N] = x[M,K] * W[N,K]^T, W quantized (runtime/quant) ---- */

static int gemm_new(kf_ctx *ctx, kf_problem *p, uint64_t seed, int act_dist) {
  const kf_kernel *k = p->k;
  int rc;
  if ((rc = expect_arg(ctx, k, 0, "x", KF_BF16, "M x K activations")) ||
      (rc = expect_arg(ctx, k, 1, "w", KF_U8, "quantized weights")) ||
      (rc = expect_arg(ctx, k, 2, "w_scale", KF_F32, "weight scales")) ||
      (rc = expect_arg(ctx, k, 3, "y", KF_F32, "M x N output")))
    return rc;
  const kf_ir_buf *wb = kf_kernel_arg(k, 1);
  if (wb->layout != KF_LAYOUT_QW)
    return kf_err(ctx, KF_EINVAL, "%s: argument 'w' must have layout = \"qweight\"", kf_template_path(k->tmpl));
  int64_t M = param(k, "M", 0), N = param(k, "N", 0), K = param(k, "K", 0);
  p->M = M;
  p->N = N;
  p->K = K;
  kf_rng rng;
  kf_rng_seed(&rng, seed);
  /* weights: N(0, 1/K), quantized as the template declares */
  float *wf = kf_xmalloc((size_t)(N * K) * sizeof(float));
  for (int64_t i = 0; i < N * K; i++) wf[i] = (float)(kf_rng_normal(&rng) / sqrt((double)K));
  char err[256];
  int64_t group = wb->wgroup >= K ? (K + 7) / 8 * 8 : wb->wgroup;
  int wfmt = (int)param(k, "wfmt", 0);
  if (wfmt == 1) {
    /* MXFP4 weights as models store them (OCP scale rule, blocks of 32 along K), held as
    ** int8 codes 2*E2M1 with f32 scales 2^e / 2: the exact weight is code * scale. */
    /* (a group of 32 or more along a shorter K is the whole row: one block) */
    if ((wb->wbits != 8 && !(wb->wbits == 4 && wb->wmx)) || wb->wgroup != (K < 32 ? K : 32)) {
      free(wf);
      return kf_err(ctx, KF_EINVAL, "%s: MXFP4 weights need group = 32 and bits = 8 (doubled E2M1 codes) or "
                    "bits = 4 with format = \"mxfp4\" (E2M1 nibbles)", kf_template_path(k->tmpl));
    }
    int64_t nb = kf_mx_n_blocks(K);
    int8_t *q = kf_xmalloc((size_t)(N * K));
    if (wb->wbits == 4) p->mx_value = kf_xmalloc((size_t)(N * K));
    float *sc = kf_xmalloc((size_t)(N * nb) * sizeof(float));
    uint8_t *codes = kf_xmalloc((size_t)K), *e8 = kf_xmalloc((size_t)nb);
    for (int64_t n = 0; n < N; n++) {
      kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_OCP, wf + n * K, K, codes, e8);
      for (int64_t kk = 0; kk < K; kk++) /* 4-bit: the nibble is the E2M1 code (stored q + 8) */
        q[n * K + kk] = wb->wbits == 4 ? (int8_t)(codes[kk] - 8) : (int8_t)kf_fp4_e2m1_times2(codes[kk]);
      if (wb->wbits == 4)
        for (int64_t kk = 0; kk < K; kk++) p->mx_value[n * K + kk] = kf_fp4_e2m1_times2(codes[kk]);
      for (int64_t b = 0; b < nb; b++) sc[n * nb + b] = kf_e8m0_to_f32(e8[b]) * 0.5f;
    }
    int qrc = kf_qweight_from_codes(&p->qw, q, sc, N, K, wb->wbits, 32,
                                    wb->wlayout ? KF_WLAYOUT_N16K1 : KF_WLAYOUT_N16K4, err, sizeof err);
    free(q);
    free(sc);
    free(codes);
    free(e8);
    if (qrc) {
      free(wf);
      return kf_err(ctx, KF_EINVAL, "MXFP4 weights: %s", err);
    }
  } else if (kf_qweight_quantize(&p->qw, wf, N, K, wb->wbits, group, wb->wlayout ? KF_WLAYOUT_N16K1 : KF_WLAYOUT_N16K4,
                                 err, sizeof err)) {
    free(wf);
    return kf_err(ctx, KF_EINVAL, "quantizing weights: %s", err);
  }
  free(wf);
  /* activations, bf16 */
  float *xf = kf_xmalloc((size_t)(M * K) * sizeof(float));
  if (kf_ref_fill(&rng, (kf_ref_dist)act_dist, 1.0, 1, M, K, xf)) {
    free(xf);
    return kf_err(ctx, KF_EINVAL, "bad activation distribution %d", act_dist);
  }
  p->n_args = 4;
  p->args = kf_xcalloc(4, sizeof(void *));
  p->arg_bytes = kf_xcalloc(4, sizeof(size_t));
  uint16_t *xb = xalloc64((size_t)(M * K) * 2);
  kf_bf16_from_f32_n(xb, xf, (size_t)(M * K));
  p->args[0] = xb;
  p->arg_bytes[0] = (size_t)(M * K) * 2;
  p->args[1] = xcopy64(p->qw.packed, p->qw.packed_bytes);
  p->arg_bytes[1] = p->qw.packed_bytes;
  if ((int64_t)p->qw.packed_bytes < lir_arg_elems(k->lir, 1)) {
    free(xf);
    return kf_err(ctx, KF_EINVAL, "packed weights (%zu bytes) smaller than the kernel expects (%lld)",
                  p->qw.packed_bytes, (long long)lir_arg_elems(k->lir, 1));
  }
  size_t sbytes = (size_t)(p->qw.n_groups * p->qw.n_pad) * sizeof(float);
  p->args[2] = xcopy64(p->qw.scales, sbytes);
  p->arg_bytes[2] = sbytes;
  p->out_n = M * N;
  p->out = xalloc64((size_t)(M * N) * sizeof(float));
  p->args[3] = p->out;
  p->arg_bytes[3] = (size_t)(M * N) * sizeof(float);
  p->weight_arg = 1;
  p->flops = 2.0 * (double)M * (double)N * (double)K;
  p->bytes = (double)p->qw.packed_bytes + (double)sbytes + 2.0 * (double)(M * K) + 4.0 * (double)(M * N);

  /* reference and bounds */
  double *wd = kf_xmalloc((size_t)(N * K) * sizeof(double));
  for (int64_t n = 0; n < N; n++)
    for (int64_t kk = 0; kk < K; kk++) /* nibble MXFP4: doubled value x scale (2^e / 2) */
      wd[n * K + kk] = p->mx_value ? (double)p->mx_value[n * K + kk] * (double)p->qw.scales[(kk / 32) * p->qw.n_pad + n]
                                   : kf_qweight_value(&p->qw, n, kk);
  /* Large problems are checked on 16 rows spread over M (first and last included): the
  ** fp64 reference is O(M N K). Every output is still checked for NaN/Inf. */
  int64_t Mr = M;
  if ((double)M * (double)N * (double)K > 2e9 && M > 16) Mr = 16;
  p->check_rows = kf_xmalloc((size_t)Mr * sizeof(int64_t));
  p->n_check_rows = Mr;
  float *xr = kf_xmalloc((size_t)(Mr * K) * sizeof(float));
  for (int64_t r = 0; r < Mr; r++) {
    p->check_rows[r] = Mr == M ? r : r * (M - 1) / (Mr - 1);
    memcpy(xr + r * K, xf + p->check_rows[r] * K, (size_t)K * sizeof(float));
  }
  p->ref = kf_xmalloc((size_t)(Mr * N) * sizeof(double));
  p->bound = kf_xmalloc((size_t)(Mr * N) * sizeof(double));
  double *absy = kf_xmalloc((size_t)(Mr * N) * sizeof(double));
  kf_ref_gemm(Mr, N, K, xr, wd, p->ref, absy);
  int64_t passes = 0;
  int msd = kf_binding_get(&k->config, "passes", &passes);
  if (!msd) {
    /* f32 FMA chain; plus 2^-8 (bf16 unit roundoff) per weight when weights are rounded to bf16 */
    double g = kf_ref_gamma(K + 2, 24) + (param(k, "wround", 0) ? ldexp(1.0, -8) : 0.0);
    for (int64_t i = 0; i < Mr * N; i++) p->bound[i] = g * absy[i];
  } else {
    /* e_x(m,k) = s_P/2 (1 + 2^-10): per row or per activation group */
    int64_t ag = param(k, "act_group", 0);
    if (ag <= 0) ag = K;
    int64_t Kp = (K + 7) / 8 * 8, grp = param(k, "group", 0), kc = 0;
    kf_binding_get(&k->config, "kc", &kc);
    int64_t span = grp > 0 ? grp : param(k, "act_group", 0) > 0 ? ag : (kc > 0 && kc < Kp ? kc : Kp);
    if (param(k, "afmt", 0) == 1) ag = span = 32; /* MX blocks */
    int64_t nspan = (Kp + span - 1) / span;
    double *ex = kf_xmalloc((size_t)(Mr * K) * sizeof(double));
    for (int64_t m = 0; m < Mr; m++)
      for (int64_t g0 = 0; g0 < K; g0 += ag) {
        int64_t g1 = g0 + ag < K ? g0 + ag : K;
        double amax = 0;
        for (int64_t kk = g0; kk < g1; kk++) amax = fmax(amax, fabs((double)xr[m * K + kk]));
        double e;
        if (param(k, "afmt", 0) == 1) /* MXFP4 passes: |e| <= alpha / 8^P, alpha = 2^ceil(log2 amax) */
          e = amax > 0 ? ldexp(1.0, (int)ceil(log2(amax))) / pow(8.0, (double)passes) : 0.0;
        else /* INT8 passes: |e| <= s_P / 2, s_P = amax / 127 / 254^(P-1) */
          e = 0.5 * amax / 127.0 / pow(254.0, (double)(passes - 1)) * (1.0 + ldexp(1.0, -10));
        for (int64_t kk = g0; kk < g1; kk++) ex[m * K + kk] = e;
      }
    double g = kf_ref_gamma(passes * nspan + 3, 24);
    for (int64_t m = 0; m < Mr; m++)
      for (int64_t n = 0; n < N; n++) {
        double dec = 0, ax = 0;
        for (int64_t kk = 0; kk < K; kk++) {
          double aw = fabs(wd[n * K + kk]);
          dec += aw * ex[m * K + kk];
          ax += aw * (fabs((double)xr[m * K + kk]) + ex[m * K + kk]);
        }
        p->bound[m * N + n] = dec + g * ax;
      }
    free(ex);
  }
  free(xr);
  free(absy);
  free(wd);
  free(xf);
  return KF_OK;
}

/* ---- attention decode (attn_decode: MHA/GQA/MQA; mla_decode: shared latent KV) ----
** Inputs from kf_ref_gen_attn (the --dist name picks random/rising/equal/large/negative
** scores). Bound per output (row, c), from the arithmetic:
**   scores: |ds_j| <= e_j = gamma_(D+1) * scale * sum_d |q_d k_jd| (f32 dot, one scale);
**   weights p_j/sum p: relative perturbation delta = (exp(2 max e_j) - 1) + u_p + 2^-21
**   (u_p = 2^-8 when P is rounded to bf16, exp is good to ~2^-22); AMLA adds 2^-9 per
**   KV block (the mantissa-add compensation of r_hat's bf16 rounding, refs/amla.md 1.4);
**   output: 2 delta max_j |v_jc| + gamma_(S+4) max_j |v_jc| (P V sum and the divide). */
/* MXFP4 KV cache (OCP rule, as a cache would be written): K per token in blocks of 32
** channels, k_scale [BH][nbd][Sk]; V per channel in blocks of 32 tokens, v_scale
** [BH][ntb][DVp]; codes are doubled E2M1 values (int8), scales 2^e / 2, exact values in kd / vd. */
static void quantize_kv_mx(int64_t BH, int64_t S, int64_t D, int64_t DV, int64_t Sk, int64_t ntb, int64_t DVp,
                           const float *k, const float *v, int8_t *kc, float *ks, int8_t *vc, float *vs, double *kd,
                           double *vd) {
  int64_t nbd = (D + 31) / 32, nbs = (S + 31) / 32;
  uint8_t *codes = kf_xmalloc((size_t)(D > S ? D : S)), *e8 = kf_xmalloc((size_t)(nbd > nbs ? nbd : nbs));
  float *col = kf_xmalloc((size_t)S * sizeof(float));
  for (int64_t g = 0; g < BH; g++) {
    for (int64_t j = 0; j < S; j++) {
      kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_OCP, k + (g * S + j) * D, D, codes, e8);
      for (int64_t d = 0; d < D; d++) {
        float sc = kf_e8m0_to_f32(e8[d / 32]) * 0.5f;
        int8_t q = (int8_t)kf_fp4_e2m1_times2(codes[d]);
        kc[(g * S + j) * D + d] = q;
        kd[(g * S + j) * D + d] = (double)q * sc;
      }
      for (int64_t b = 0; b < nbd; b++) ks[(g * nbd + b) * Sk + j] = kf_e8m0_to_f32(e8[b]) * 0.5f;
    }
    for (int64_t c = 0; c < DV; c++) {
      for (int64_t j = 0; j < S; j++) col[j] = v[(g * S + j) * DV + c];
      kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_OCP, col, S, codes, e8);
      for (int64_t j = 0; j < S; j++) {
        float sc = kf_e8m0_to_f32(e8[j / 32]) * 0.5f;
        int8_t q = (int8_t)kf_fp4_e2m1_times2(codes[j]);
        vc[(g * S + j) * DV + c] = q;
        vd[(g * S + j) * DV + c] = (double)q * sc;
      }
      for (int64_t b = 0; b < nbs && b < ntb; b++) vs[(g * ntb + b) * DVp + c] = kf_e8m0_to_f32(e8[b]) * 0.5f;
    }
  }
  free(codes);
  free(e8);
  free(col);
}

/* Reference and bounds from the bf16 inputs in the args (so tests may edit them). */
static void attn_reference(kf_problem *p) {
  const kf_kernel *k = p->k;
  int mla = p->kind == PROB_MLA;
  int64_t B = p->B, H = p->H, HKV = p->HKV, S = p->S, D = p->D, DV = p->DV;
  double scale = p->scale;
  int64_t nq = B * H * D, nk = B * HKV * S * D, nv = mla ? 0 : B * HKV * S * DV, no = B * H * DV;
  float *q = kf_xmalloc((size_t)nq * sizeof(float)), *kk = kf_xmalloc((size_t)nk * sizeof(float));
  float *v = nv ? kf_xmalloc((size_t)nv * sizeof(float)) : NULL;
  kf_bf16_to_f32_n(q, p->args[0], (size_t)nq);
  kf_bf16_to_f32_n(kk, p->args[1], (size_t)nk);
  if (v) kf_bf16_to_f32_n(v, p->args[2], (size_t)nv);
  struct { int64_t block; } gen = {p->block};
  free(p->ref);
  free(p->bound);
  p->ref = kf_xmalloc((size_t)no * sizeof(double));
  p->bound = kf_xmalloc((size_t)no * sizeof(double));
  if (p->kd) { /* the kernel reads bf16(code * scale); the reference uses code * scale exactly */
    double *qd = kf_xmalloc((size_t)nq * sizeof(double));
    for (int64_t i = 0; i < nq; i++) qd[i] = q[i];
    kf_ref_attn_decode_d(B, H, HKV, S, D, DV, scale, qd, p->kd, p->vd, p->ref);
    free(qd);
  } else if (mla) kf_ref_mla_decode(B, H, S, D, DV, scale, q, kk, p->ref);
  else kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, kk, v, p->ref);
  double kv_round = p->kd ? ldexp(1.0, -8) : 0.0; /* bf16 rounding of the dequantized cache */
  /* bounds */
  int amla = mla && param(k, "amla", 1);
  int pbf = mla ? 1 : (int)param(k, "p_bf16", 1);
  int64_t n_blocks = (S + gen.block - 1) / gen.block;
  double g_d = kf_ref_gamma(D + 1, 24), g_s = kf_ref_gamma(S + 4, 24);
  int64_t G = H / HKV;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      int64_t kvh = b * HKV + h / G;
      const float *qr = q + (b * H + h) * D;
      double emax = 0;
      for (int64_t j = 0; j < S; j++) {
        const float *kr = kk + (kvh * S + j) * D;
        double a1 = 0;
        for (int64_t d = 0; d < D; d++) a1 += fabs((double)qr[d] * (double)kr[d]);
        emax = fmax(emax, (g_d + kv_round) * scale * a1);
      }
      double delta = expm1(2 * emax) + (pbf ? ldexp(1.0, -8) : ldexp(1.0, -24)) + ldexp(1.0, -21) + kv_round +
                     (amla ? (double)n_blocks * ldexp(1.0, -9) : 0.0);
      for (int64_t c = 0; c < DV; c++) {
        double vmax = 0;
        for (int64_t j = 0; j < S; j++) {
          double vv = mla ? kk[(b * S + j) * D + c] : v[(kvh * S + j) * DV + c];
          vmax = fmax(vmax, fabs(vv));
        }
        /* AMLA: an int add on an O element that is still 0 leaves either NaN/-inf (zeroed by
        ** the guard) or, since n_i never increases, bits below 2^23: |value| < 2^-126, which
        ** the final divide (l >= 1, r_hat >= 2^-1/2) keeps below 2^-125. */
        p->bound[(b * H + h) * DV + c] = (2 * delta + g_s) * vmax + (amla ? ldexp(1.0, -125) : 0.0);
      }
    }
  free(q);
  free(kk);
  free(v);
}

/* The comparison MSD's MXFP4 attention is measured against (refs/msd.md section 5): the same
** inputs and exact cache, but Q' (= Q / sqrt(D)) and P rounded once to MXFP8 E4M3 (blocks of
** 32 along d and along the tokens, non-clipping scale), everything else exact (fp64): what a
** matrix unit with FP8 x FP4 inputs at the same GEMM time would give. Returns the rel L2
** error of that output against the reference, or -1 if p is not an attn_q problem. */
double kf_problem_attn_mxfp8_rel_l2(const kf_problem *p) {
  if (p->kind != PROB_ATTN_Q || !p->kd) return -1;
  int64_t B = p->B, H = p->H, HKV = p->HKV, S = p->S, D = p->D, DV = p->DV, G = H / HKV;
  float *qf = kf_xmalloc((size_t)D * sizeof(float)), *qh = kf_xmalloc((size_t)D * sizeof(float));
  float *pf = kf_xmalloc((size_t)S * sizeof(float)), *ph = kf_xmalloc((size_t)S * sizeof(float));
  double *sc = kf_xmalloc((size_t)S * sizeof(double)), num = 0, den = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      int64_t g = b * HKV + h / G;
      float qr[1];
      for (int64_t d = 0; d < D; d++) {
        kf_bf16_to_f32_n(qr, (const uint16_t *)p->args[0] + (b * H + h) * D + d, 1);
        qf[d] = (float)((double)qr[0] * p->scale);
      }
      kf_mx_residual_passes(KF_MX_E4M3, KF_MX_SCALE_CEIL, qf, D, 1, qh);
      double mx = -INFINITY, l = 0;
      for (int64_t j = 0; j < S; j++) {
        double a = 0;
        for (int64_t d = 0; d < D; d++) a += (double)qh[d] * p->kd[(g * S + j) * D + d];
        sc[j] = a;
        mx = fmax(mx, a);
      }
      for (int64_t j = 0; j < S; j++) {
        pf[j] = (float)exp(sc[j] - mx);
        l += pf[j];
      }
      kf_mx_residual_passes(KF_MX_E4M3, KF_MX_SCALE_CEIL, pf, S, 1, ph);
      for (int64_t c = 0; c < DV; c++) {
        double o = 0;
        for (int64_t j = 0; j < S; j++) o += (double)ph[j] * p->vd[(g * S + j) * DV + c];
        double r = p->ref[(b * H + h) * DV + c];
        num += (o / l - r) * (o / l - r);
        den += r * r;
      }
    }
  free(qf);
  free(qh);
  free(pf);
  free(ph);
  free(sc);
  return den > 0 ? sqrt(num / den) : 0;
}

void kf_problem_recompute_reference(kf_problem *p) {
  if (p->kind == PROB_ATTN || p->kind == PROB_MLA) attn_reference(p);
}

/* The attention shape from the kernel's params into p: B, H, S, D (defaults 1, 1, 1, 128), HKV
** (0: H; MLA has one latent KV head) and DV (0: D), and the softmax scale 1/sqrt(D). */
static void attn_shape(kf_problem *p, int mla) {
  const kf_kernel *k = p->k;
  p->B = param(k, "B", 1);
  p->H = param(k, "H", 1);
  p->S = param(k, "S", 1);
  p->D = param(k, "D", 128);
  p->HKV = mla ? 1 : param(k, "HKV", 0);
  p->DV = param(k, "DV", 0);
  if (p->HKV <= 0) p->HKV = p->H;
  if (p->DV <= 0) p->DV = p->D;
  p->scale = 1.0 / sqrt((double)p->D);
}

static int attn_new(kf_ctx *ctx, kf_problem *p, uint64_t seed, int act_dist, int mla) {
  const kf_kernel *k = p->k;
  int rc;
  attn_shape(p, mla);
  int64_t B = p->B, H = p->H, HKV = p->HKV, S = p->S, D = p->D, DV = p->DV;
  double scale = p->scale;
  if (mla) {
    if ((rc = expect_arg(ctx, k, 0, "q", KF_BF16, "B*H x D queries")) ||
        (rc = expect_arg(ctx, k, 1, "kv", KF_BF16, "B x S x D latent cache")) ||
        (rc = expect_arg(ctx, k, 2, "out", KF_F32, "B*H x DV output")))
      return rc;
  } else if ((rc = expect_arg(ctx, k, 0, "q", KF_BF16, "B*H x D queries")) ||
             (rc = expect_arg(ctx, k, 1, "k", KF_BF16, "B*HKV x S x D keys")) ||
             (rc = expect_arg(ctx, k, 2, "v", KF_BF16, "B*HKV x S x DV values")) ||
             (rc = expect_arg(ctx, k, 3, "out", KF_F32, "B*H x DV output")))
    return rc;
  int64_t nq = B * H * D, nk = B * HKV * S * D, nv = mla ? 0 : B * HKV * S * DV, no = B * H * DV;
  float *q = kf_xmalloc((size_t)nq * sizeof(float)), *kk = kf_xmalloc((size_t)nk * sizeof(float));
  float *v = nv ? kf_xmalloc((size_t)nv * sizeof(float)) : NULL;
  kf_rng rng;
  kf_rng_seed(&rng, seed);
  kf_ref_attn_gen gen;
  memset(&gen, 0, sizeof gen);
  gen.kind = (kf_ref_attn_kind)act_dist;
  int64_t bs = 0;
  kf_binding_get(&k->config, "bs", &bs);
  gen.block = bs > 0 ? bs : 64;
  if (kf_ref_gen_attn(&rng, &gen, B, H, HKV, S, D, DV, scale, q, kk, v)) {
    free(q);
    free(kk);
    free(v);
    return kf_err(ctx, KF_EINVAL, "attention inputs: bad shape or kind");
  }
  if (!mla && param(k, "kvq", 0)) {
    /* the dequant baseline: an INT8 (kvq 1) or MXFP4 (kvq 2) cache dequantized to bf16 before FA-2 */
    int64_t BH = B * HKV;
    int8_t *kc = kf_xmalloc((size_t)nk), *vc = kf_xmalloc((size_t)nv);
    int kscale = (int)param(k, "kscale", 0);
    float *ks = kf_xmalloc((size_t)(BH * (kscale ? (S + 15) / 16 * 16 : D)) * sizeof(float));
    float *vs = kf_xmalloc((size_t)(BH * ((S + 15) / 16 * 16)) * sizeof(float));
    p->kd = kf_xmalloc((size_t)nk * sizeof(double));
    p->vd = kf_xmalloc((size_t)nv * sizeof(double));
    if (param(k, "kvq", 0) == 2) { /* an MXFP4 cache (as msd_attention kvfmt=1 stores it) */
      int64_t nbd = (D + 31) / 32, ntb = (S + 31) / 32, DVp = (DV + 15) / 16 * 16;
      float *ksm = kf_xmalloc((size_t)(BH * nbd * S) * sizeof(float)), *vsm = kf_xmalloc((size_t)(BH * ntb * DVp) * sizeof(float));
      quantize_kv_mx(BH, S, D, DV, S, ntb, DVp, kk, v, kc, ksm, vc, vsm, p->kd, p->vd);
      free(ksm);
      free(vsm);
    } else {
      quantize_kv(BH, S, D, DV, kscale, kscale ? (S + 15) / 16 * 16 : D, kk, v, kc, ks, vc, vs, p->kd, p->vd);
    }
    for (int64_t i = 0; i < nk; i++) kk[i] = (float)p->kd[i]; /* rounded to bf16 below */
    for (int64_t i = 0; i < nv; i++) v[i] = (float)p->vd[i];
    free(kc);
    free(vc);
    free(ks);
    free(vs);
  }
  p->n_args = mla ? 3 : 4;
  p->args = kf_xcalloc((size_t)p->n_args, sizeof(void *));
  p->arg_bytes = kf_xcalloc((size_t)p->n_args, sizeof(size_t));
  uint16_t *qb = xalloc64((size_t)nq * 2), *kb = xalloc64((size_t)nk * 2), *vb = nv ? xalloc64((size_t)nv * 2) : NULL;
  kf_bf16_from_f32_n(qb, q, (size_t)nq);
  kf_bf16_from_f32_n(kb, kk, (size_t)nk);
  if (vb) kf_bf16_from_f32_n(vb, v, (size_t)nv);
  p->out_n = no;
  p->out = xalloc64((size_t)no * sizeof(float));
  int a = 0;
  p->args[a] = qb;
  p->arg_bytes[a++] = (size_t)nq * 2;
  p->args[a] = kb;
  p->arg_bytes[a++] = (size_t)nk * 2;
  p->weight_arg = 1;
  if (vb) {
    p->args[a] = vb;
    p->arg_bytes[a++] = (size_t)nv * 2;
  }
  p->args[a] = p->out;
  p->arg_bytes[a] = (size_t)no * sizeof(float);
  p->flops = 2.0 * (double)B * (double)H * (double)S * (double)(D + DV);
  p->bytes = 2.0 * (double)(nq + nk + nv) + 4.0 * (double)no;
  p->block = gen.block;
  free(q);
  free(kk);
  free(v);
  attn_reference(p);
  return KF_OK;
}

/* ---- attn_q: MSD attention over an INT8 KV cache (msd_attention) ----
** Bound per output (row, c), from the arithmetic: Q' = Q s_K / sqrt(D) split into P int8
** passes errs by e_q <= s_P/2 per element (s_P = max|Q'| / 127 / 254^(P-1)), so a score errs
** by e_j <= sum_d e_q |kcode_jd| s_j (s_j = per-token K scale or 1) plus the f32 combination
** gamma * sum_d |Q'_d kcode_jd| s_j; the softmax weights by delta = exp(2 max e_j) - 1 + 2^-21;
** P' = P s_V split into passes errs by E <= max_j s_V[j] / (2 * 127 * 254^(P-1)) per element
** (P <= 1), adding E sum_j |vcode_jc| (l >= 1); plus gamma_(S+4) for the P V sums. */
static int attnq_new(kf_ctx *ctx, kf_problem *p, uint64_t seed) {
  const kf_kernel *k = p->k;
  int rc;
  if ((rc = expect_arg(ctx, k, 0, "q", KF_BF16, "B*H x D queries")) ||
      (rc = expect_arg(ctx, k, 1, "k", KF_U8, "packed K codes")) ||
      (rc = expect_arg(ctx, k, 2, "k_scale", KF_F32, "K scales")) ||
      (rc = expect_arg(ctx, k, 3, "v", KF_U8, "packed V codes")) ||
      (rc = expect_arg(ctx, k, 4, "v_scale", KF_F32, "V scales")) ||
      (rc = expect_arg(ctx, k, 5, "out", KF_F32, "B*H x DV output")))
    return rc;
  attn_shape(p, 0);
  int64_t B = p->B, H = p->H, HKV = p->HKV, S = p->S, D = p->D, DV = p->DV, passes = 2;
  double scale = p->scale;
  int kscale = (int)param(k, "kscale", 0);
  kf_binding_get(&k->config, "passes", &passes);
  int64_t BH = B * HKV, Sp = (S + 15) / 16 * 16, G = H / HKV;
  int64_t Sk = kf_kernel_arg(k, 1)->dims[1]; /* tokens K is packed for (>= S, zero codes past S) */
  if (Sk < S) return kf_err(ctx, KF_EINVAL, "%s: 'k' must hold at least S tokens", kf_template_path(k->tmpl));
  int64_t nq = B * H * D, nk = BH * S * D, nv = BH * S * DV, no = B * H * DV;
  kf_rng rng;
  kf_rng_seed(&rng, seed);
  float *q = kf_xmalloc((size_t)nq * sizeof(float)), *kk = kf_xmalloc((size_t)nk * sizeof(float));
  float *v = kf_xmalloc((size_t)nv * sizeof(float));
  kf_ref_fill(&rng, KF_REF_GAUSS, 1.0, 1, B * H, D, q);
  kf_ref_fill(&rng, KF_REF_GAUSS, 1.0, 0, BH * S, D, kk);
  kf_ref_fill(&rng, KF_REF_GAUSS, 1.0, 0, BH * S, DV, v);
  int8_t *kc = kf_xmalloc((size_t)nk), *vc = kf_xmalloc((size_t)nv);
  int kvfmt = (int)param(k, "kvfmt", 0);
  int64_t bs = 64, nbd = (D + 31) / 32, DVp = (DV + 15) / 16 * 16;
  kf_binding_get(&k->config, "bs", &bs);
  int64_t ntb = (S + bs - 1) / bs * (bs / 32);
  int64_t ksn = kvfmt ? nbd * Sk : kscale ? Sk : D, vsn = kvfmt ? ntb * DVp : Sp;
  float *ks = xalloc64((size_t)(BH * ksn) * sizeof(float)), *vs = xalloc64((size_t)(BH * vsn) * sizeof(float));
  p->kd = kf_xmalloc((size_t)nk * sizeof(double));
  p->vd = kf_xmalloc((size_t)nv * sizeof(double));
  if (kvfmt) quantize_kv_mx(BH, S, D, DV, Sk, ntb, DVp, kk, v, kc, ks, vc, vs, p->kd, p->vd);
  else quantize_kv(BH, S, D, DV, kscale, ksn, kk, v, kc, ks, vc, vs, p->kd, p->vd);
  /* pack: K per head as an S x D matrix, V per head as DV x S (both n16k4, scales 1) */
  int64_t Sv = kf_kernel_arg(k, 3)->dims[2]; /* tokens V is packed for (>= S, zero codes past S) */
  if (Sv < S) return kf_err(ctx, KF_EINVAL, "%s: 'v' must hold at least S tokens", kf_template_path(k->tmpl));
  int64_t kmat = Sk * ((D + 7) / 8 * 8), vmat = ((DV + 15) / 16 * 16) * ((Sv + 7) / 8 * 8);
  uint8_t *kp = xalloc64((size_t)(BH * kmat)), *vp = xalloc64((size_t)(BH * vmat));
  int8_t *vt = kf_xcalloc((size_t)(DV * Sv), 1);
  int64_t nmax = Sk > DV ? Sk : DV;
  float *one = kf_xmalloc((size_t)(nmax + 1) * sizeof(float));
  for (int64_t i = 0; i <= nmax; i++) one[i] = 1.0f;
  int8_t *kpad = kf_xcalloc((size_t)(Sk * D), 1);
  char err[256];
  rc = KF_OK;
  for (int64_t g = 0; g < BH && !rc; g++) {
    kf_qweight w;
    memcpy(kpad, kc + g * S * D, (size_t)(S * D));
    if (kf_qweight_from_codes(&w, kpad, one, Sk, D, 8, (D + 7) / 8 * 8, KF_WLAYOUT_N16K4, err, sizeof err)) {
      rc = kf_err(ctx, KF_EINVAL, "packing K: %s", err);
      break;
    }
    kf_assert((int64_t)w.packed_bytes >= kmat);
    memcpy(kp + g * kmat, w.packed, (size_t)kmat);
    kf_qweight_free(&w);
    for (int64_t j = 0; j < S; j++)
      for (int64_t c = 0; c < DV; c++) vt[c * Sv + j] = vc[(g * S + j) * DV + c];
    if (kf_qweight_from_codes(&w, vt, one, DV, Sv, 8, (Sv + 7) / 8 * 8, KF_WLAYOUT_N16K4, err, sizeof err)) {
      rc = kf_err(ctx, KF_EINVAL, "packing V: %s", err);
      break;
    }
    memcpy(vp + g * vmat, w.packed, (size_t)vmat);
    kf_qweight_free(&w);
  }
  p->n_args = 6;
  p->args = kf_xcalloc(6, sizeof(void *));
  p->arg_bytes = kf_xcalloc(6, sizeof(size_t));
  uint16_t *qb = xalloc64((size_t)nq * 2);
  kf_bf16_from_f32_n(qb, q, (size_t)nq);
  p->out_n = no;
  p->out = xalloc64((size_t)no * sizeof(float));
  void *a[6] = {qb, kp, ks, vp, vs, p->out};
  size_t sz[6] = {(size_t)nq * 2, (size_t)(BH * kmat), (size_t)(BH * ksn) * 4, (size_t)(BH * vmat), (size_t)(BH * vsn) * 4,
                  (size_t)no * 4};
  memcpy(p->args, a, sizeof a);
  memcpy(p->arg_bytes, sz, sizeof sz);
  p->weight_arg = 1;
  p->flops = 2.0 * (double)B * (double)H * (double)S * (double)(D + DV);
  p->bytes = (double)(BH * (kmat + vmat)) + 2.0 * (double)nq + 4.0 * (double)no;
  if (!rc) {
    /* reference on the exact cache; bounds */
    double *qd = kf_xmalloc((size_t)nq * sizeof(double));
    float *qr = kf_xmalloc((size_t)nq * sizeof(float));
    kf_bf16_to_f32_n(qr, qb, (size_t)nq);
    for (int64_t i = 0; i < nq; i++) qd[i] = qr[i];
    p->ref = kf_xmalloc((size_t)no * sizeof(double));
    p->bound = kf_xmalloc((size_t)no * sizeof(double));
    kf_ref_attn_decode_d(B, H, HKV, S, D, DV, scale, qd, p->kd, p->vd, p->ref);
    double pw = pow(254.0, (double)(passes - 1)), slack = 1.0 + ldexp(1.0, -10);
    double g_c = kf_ref_gamma(D + passes + 3, 24), g_s = kf_ref_gamma(S + 4 + passes * ((S + 15) / 16), 24);
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++) {
        int64_t g = b * HKV + h / G;
        double *qs = kf_xmalloc((size_t)D * sizeof(double)), *eqd = kf_xmalloc((size_t)D * sizeof(double)), amax = 0;
        for (int64_t d = 0; d < D; d++) {
          qs[d] = qd[(b * H + h) * D + d] * scale * (kscale || kvfmt ? 1.0 : (double)ks[g * ksn + d]);
          amax = fmax(amax, fabs(qs[d]));
        }
        /* Q' pass error per element: INT8 s_P/2 per row; MXFP4 alpha/8^P per 32-block */
        for (int64_t d = 0; d < D; d++) eqd[d] = amax / 127.0 / pw / 2 * slack;
        if (kvfmt)
          for (int64_t d0 = 0; d0 < D; d0 += 32) {
            double bm = 0;
            for (int64_t d = d0; d < D && d < d0 + 32; d++) bm = fmax(bm, fabs(qs[d]));
            for (int64_t d = d0; d < D && d < d0 + 32; d++)
              eqd[d] = bm > 0 ? ldexp(1.0, (int)ceil(log2(bm))) / pow(8.0, (double)passes) : 0.0;
          }
        double emax = 0, svmax = 0;
        for (int64_t j = 0; j < S; j++) {
          double sj = kscale && !kvfmt ? (double)ks[g * ksn + j] : 1.0, e = 0, a2 = 0;
          for (int64_t d = 0; d < D; d++) {
            /* the cache value the codes stand for, without a per-token INT8 K scale */
            double kv = kvfmt ? fabs(p->kd[(g * S + j) * D + d]) : fabs((double)kc[(g * S + j) * D + d]);
            e += eqd[d] * kv;
            a2 += fabs(qs[d]) * kv;
          }
          emax = fmax(emax, (e + g_c * a2) * sj);
          if (!kvfmt) svmax = fmax(svmax, (double)vs[g * Sp + j]);
        }
        double delta = expm1(2 * emax) + ldexp(1.0, -21);
        /* P' pass error per element: INT8 max s_V / (2 127 254^(P-1)) in code units of V;
        ** MXFP4 alpha/8^P <= 8^-P (P <= 1) in V's values */
        double E = kvfmt ? pow(8.0, -(double)passes) : svmax / (2 * 127.0 * pw) * slack;
        for (int64_t c = 0; c < DV; c++) {
          double vmax = 0, vcs = 0;
          for (int64_t j = 0; j < S; j++) {
            vmax = fmax(vmax, fabs(p->vd[(g * S + j) * DV + c]));
            vcs += kvfmt ? fabs(p->vd[(g * S + j) * DV + c]) : fabs((double)vc[(g * S + j) * DV + c]);
          }
          p->bound[(b * H + h) * DV + c] = (2 * delta + g_s) * vmax + E * vcs;
        }
        free(eqd);
        free(qs);
      }
    free(qd);
    free(qr);
  }
  free(q);
  free(kk);
  free(v);
  free(kc);
  free(vc);
  free(vt);
  free(one);
  free(kpad);
  return rc;
}

/* The inputs live in the kernel's formats beside f32 masters and f64 references: refuse,
** with the numbers, a shape whose arguments cannot fit this machine's memory (rather than
** abort in malloc or meet the OOM killer). 12 bytes per element bounds what the generators
** below keep (f32 master, f64 reference output, the kernel's own copy). */
static int fits_memory(kf_ctx *ctx, const kf_kernel *k) {
  double need = 0, big = 0;
  const char *big_name = "";
  for (int i = 0; i < kf_kernel_n_args(k); i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    double e = 1;
    for (int d = 0; d < b->rank; d++) e *= (double)b->dims[d];
    double by = e * (kf_scalar_bits(b->dtype) / 8.0 + 12.0);
    need += by;
    if (by > big) {
      big = by;
      big_name = b->name;
    }
  }
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  double ram = pages > 0 && psz > 0 ? (double)pages * (double)psz : 0;
  if (ram > 0 && need > 0.8 * ram)
    return kf_err(ctx, KF_EINVAL, "%s: this shape's inputs and reference need about %.3g GB (most for '%s': %.3g GB); "
                  "this machine has %.3g GB of memory (generate code for it with kforge gen; check or time a smaller shape)",
                  kf_template_path(k->tmpl), need / 1e9, big_name, big / 1e9, ram / 1e9);
  return KF_OK;
}

int kf_problem_new(kf_ctx *ctx, const kf_kernel *k, uint64_t seed, int act_dist, kf_problem **out) {
  *out = NULL;
  int frc = fits_memory(ctx, k);
  if (frc) return frc;
  kf_problem *p = kf_xcalloc(1, sizeof *p);
  p->k = k;
  const char *ref = kf_template_reference(k->tmpl);
  int rc;
  if (!strcmp(ref, "gemm_q")) {
    p->kind = PROB_GEMM_Q;
    rc = gemm_new(ctx, p, seed, act_dist);
  } else if (!strcmp(ref, "attn_decode") || !strcmp(ref, "mla_decode")) {
    p->kind = ref[0] == 'a' ? PROB_ATTN : PROB_MLA;
    rc = attn_new(ctx, p, seed, act_dist, p->kind == PROB_MLA);
  } else if (!strcmp(ref, "attn_q")) {
    p->kind = PROB_ATTN_Q;
    rc = attnq_new(ctx, p, seed);
  } else {
    rc = kf_err(ctx, KF_EINVAL, "%s: unknown reference '%s' (known: gemm_q, attn_decode, mla_decode, attn_q)",
                kf_template_path(k->tmpl), ref);
  }
  if (rc) {
    kf_problem_free(p);
    return rc;
  }
  if (p->n_args != kf_kernel_n_args(k)) {
    rc = kf_err(ctx, KF_EINVAL, "%s: reference '%s' has %d arguments, the kernel %d", kf_template_path(k->tmpl),
                ref, p->n_args, kf_kernel_n_args(k));
    kf_problem_free(p);
    return rc;
  }
  *out = p;
  return KF_OK;
}

void kf_problem_free(kf_problem *p) {
  if (!p) return;
  if (p->kind == PROB_GEMM_Q) {
    if (p->args)
      for (int i = 0; i < 3; i++) xfree64(p->args[i]);
    xfree64(p->out);
    kf_qweight_free(&p->qw);
  } else if (p->args) {
    for (int i = 0; i < p->n_args; i++) xfree64(p->args[i]); /* out is among them */
  } else {
    xfree64(p->out);
  }
  free(p->args);
  free(p->arg_bytes);
  free(p->ref);
  free(p->bound);
  free(p->kd);
  free(p->vd);
  free(p->check_rows);
  free(p->mx_value);
  free(p);
}

void *const *kf_problem_args(const kf_problem *p) { return p->args; }
int kf_problem_weight_arg(const kf_problem *p, size_t *bytes) {
  if (bytes) *bytes = p->arg_bytes[p->weight_arg];
  return p->weight_arg;
}
double kf_problem_flops(const kf_problem *p) { return p->flops; }
double kf_problem_bytes(const kf_problem *p) { return p->bytes; }

void kf_problem_poison_outputs(kf_problem *p) {
  for (int64_t i = 0; i < p->out_n; i++) p->out[i] = NAN;
}

const float *kf_problem_output(const kf_problem *p, int64_t *n) {
  if (n) *n = p->out_n;
  return p->out;
}

int kf_problem_check(kf_ctx *ctx, kf_problem *p, kf_check_result *res) {
  memset(res, 0, sizeof *res);
  kf_ref_errs e;
  const float *got = p->out;
  int64_t n_cmp = p->out_n;
  float *gathered = NULL;
  int64_t nonfinite_all = 0, first_nonfinite = -1;
  for (int64_t i = 0; i < p->out_n; i++)
    if (!isfinite(p->out[i]) && nonfinite_all++ == 0) first_nonfinite = i;
  if (p->check_rows && p->n_check_rows * p->N != p->out_n) { /* sampled rows */
    n_cmp = p->n_check_rows * p->N;
    gathered = kf_xmalloc((size_t)n_cmp * sizeof(float));
    for (int64_t r = 0; r < p->n_check_rows; r++)
      memcpy(gathered + r * p->N, p->out + p->check_rows[r] * p->N, (size_t)p->N * sizeof(float));
    got = gathered;
  }
  int src = kf_ref_err_stats_bound(got, p->ref, p->bound, n_cmp, &e);
  free(gathered);
  if (src) return kf_err(ctx, KF_EINVAL, "error statistics failed");
  if (nonfinite_all && !e.n_nonfinite) {
    e.n_nonfinite = nonfinite_all;
    e.i_max = first_nonfinite;
  }
  res->max_abs = e.max_abs;
  res->rel_l2 = e.rel_l2;
  res->max_ratio = e.max_ratio;
  res->eff_bits = e.eff_bits;
  res->snr_bits = e.snr_bits;
  res->ref_max = e.ref_max_abs;
  res->n_out = p->out_n;
  res->n_nonfinite = e.n_nonfinite;
  res->worst_index = e.i_max;
  int64_t passes;
  if (p->kind == PROB_ATTN_Q)
    snprintf(res->bound_desc, sizeof res->bound_desc, "MSD attention: Q and P passes + softmax perturbation");
  else if (p->kind != PROB_GEMM_Q)
    snprintf(res->bound_desc, sizeof res->bound_desc, "softmax: (2 delta + gamma_S) max|v|%s",
             p->kind == PROB_MLA && param(p->k, "amla", 1) ? " + AMLA 2^-9/block" : "");
  else if (kf_binding_get(&p->k->config, "passes", &passes))
    snprintf(res->bound_desc, sizeof res->bound_desc, "MSD %s %lld-pass: sum|w|*%s + gamma(f32 combine)",
             param(p->k, "afmt", 0) ? "MXFP4" : "INT8", (long long)passes,
             param(p->k, "afmt", 0) ? "alpha/8^P" : "s_P/2");
  else
    snprintf(res->bound_desc, sizeof res->bound_desc, "%s",
             param(p->k, "wround", 0) ? "bf16 weights: (2^-8 + gamma_(K+2))*sum|w||x|"
                                      : "f32 dot: gamma_(K+2)*sum|w||x|");
  if (e.n_nonfinite)
    return kf_err(ctx, KF_ECHECK, "%lld of %lld outputs are not finite (first at index %lld)",
                  (long long)e.n_nonfinite, (long long)p->out_n, (long long)e.i_max);
  if (!(e.max_ratio <= 1.0))
    return kf_err(ctx, KF_ECHECK, "error exceeds the bound: worst output %lld has |err|/bound = %.3g",
                  (long long)e.i_max, e.max_ratio);
  return KF_OK;
}

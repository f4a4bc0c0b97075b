/*
** ref_gemm.c: the gemm_q reference family: y[M,N] = x[M,K] * W[N,K]^T with bf16 activations
** and quantized weights (runtime/quant: W8/W4 codes per channel or per K-group, or MXFP4).
** The weight format comes from the kernel's `w` argument (bits, group, format), the
** arithmetic from its IR: no quantize node = a float GEMM on dequantized weights (rounded to
** bf16 when the mma says so), else MSD with the quantize node's passes, groups and format.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_int.h"


static int gemm_new(kf_ctx *ctx, kf_problem *p, uint64_t seed, int act_dist) {
  const kf_kernel *k = p->k;
  int rc;
  if ((rc = kf_ref_expect_arg(ctx, k, 0, "x", KF_BF16, "M x K activations")) ||
      (rc = kf_ref_expect_arg(ctx, k, 1, "w", KF_U8, "quantized weights")) ||
      (rc = kf_ref_expect_arg(ctx, k, 2, "w_scale", KF_F32, "weight scales")) ||
      (rc = kf_ref_expect_arg(ctx, k, 3, "y", KF_F32, "M x N output")))
    return rc;
  const kf_ir_buf *wb = kf_kernel_arg(k, 1);
  if (wb->layout != KF_LAYOUT_QW)
    return kf_err(ctx, KF_EINVAL, "%s: argument 'w' must have layout = \"qweight\"", kf_template_path(k->tmpl));
  int64_t M = kf_ref_param(k, "M", 0), N = kf_ref_param(k, "N", 0), K = kf_ref_param(k, "K", 0);
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
  if (wb->wmx) {
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
  uint16_t *xb = kf_ref_alloc_guarded((size_t)(M * K) * 2);
  kf_bf16_from_f32_n(xb, xf, (size_t)(M * K));
  p->args[0] = xb;
  p->arg_bytes[0] = (size_t)(M * K) * 2;
  p->args[1] = memcpy(kf_ref_alloc_guarded(p->qw.packed_bytes), p->qw.packed, p->qw.packed_bytes);
  p->arg_bytes[1] = p->qw.packed_bytes;
  if ((int64_t)p->qw.packed_bytes < kf_ref_arg_elems(k, 1)) {
    free(xf);
    return kf_err(ctx, KF_EINVAL, "packed weights (%zu bytes) smaller than the kernel expects (%lld)",
                  p->qw.packed_bytes, (long long)kf_ref_arg_elems(k, 1));
  }
  size_t sbytes = (size_t)(p->qw.n_groups * p->qw.n_pad) * sizeof(float);
  p->args[2] = memcpy(kf_ref_alloc_guarded(sbytes), p->qw.scales, sbytes);
  p->arg_bytes[2] = sbytes;
  p->out_n = M * N;
  p->out = kf_ref_alloc_guarded((size_t)(M * N) * sizeof(float));
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
  int64_t passes = p->num.passes;
  if (!passes) {
    /* f32 FMA chain; plus 2^-8 (bf16 unit roundoff) per weight when weights are rounded to bf16 */
    double g = kf_ref_gamma(K + 2, 24) + (p->num.mma_round_bf16 ? ldexp(1.0, -8) : 0.0);
    for (int64_t i = 0; i < Mr * N; i++) p->bound[i] = g * absy[i];
  } else {
    /* e_x(m,k) = s_P/2 (1 + 2^-10): per row or per activation group */
    /* the quantize node's groups: activation scales per act_group (0: the row), int32 sums
    ** per sum_group (the span the kernel accumulates exactly before scaling) */
    int64_t Kp = (K + 7) / 8 * 8;
    int64_t ag = p->num.act_group > 0 && p->num.act_group < K ? p->num.act_group : K;
    int64_t span = p->num.sum_group > 0 && p->num.sum_group < Kp ? p->num.sum_group : Kp;
    int64_t nspan = (Kp + span - 1) / span;
    double *ex = kf_xmalloc((size_t)(Mr * K) * sizeof(double));
    for (int64_t m = 0; m < Mr; m++)
      for (int64_t g0 = 0; g0 < K; g0 += ag) {
        int64_t g1 = g0 + ag < K ? g0 + ag : K;
        double amax = 0;
        for (int64_t kk = g0; kk < g1; kk++) amax = fmax(amax, fabs((double)xr[m * K + kk]));
        double e;
        if (p->num.act_mxfp4) /* MXFP4 passes: |e| <= alpha / 8^P, alpha = 2^ceil(log2 amax) */
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


static void gemm_describe_bound(const kf_problem *p, char *out, size_t n) {
  if (p->num.passes)
    snprintf(out, n, "MSD %s %d-pass: sum|w|*%s + gamma(f32 combine)", p->num.act_mxfp4 ? "MXFP4" : "INT8",
             p->num.passes, p->num.act_mxfp4 ? "alpha/8^P" : "s_P/2");
  else
    snprintf(out, n, "%s", p->num.mma_round_bf16 ? "bf16 weights: (2^-8 + gamma_(K+2))*sum|w||x|"
                                                 : "f32 dot: gamma_(K+2)*sum|w||x|");
}

static double gemm_flops(const kf_binding *b) {
  int64_t M = 0, N = 0, K = 0;
  kf_binding_get(b, "M", &M);
  kf_binding_get(b, "N", &N);
  kf_binding_get(b, "K", &K);
  return 2.0 * (double)M * (double)N * (double)K;
}

const kf_ref_family kf_ref_family_gemm_q = {
    "gemm_q", "y[M,N] = x[M,K] (bf16) * W[N,K]^T (quantized: args x, w, w_scale, y)",
    gemm_new, NULL, gemm_describe_bound, gemm_flops, "M", 16};

/*
** ref_attn.c: the attention decode reference families: attn_decode (FlashAttention-2 over a
** bf16 KV cache, MHA/GQA/MQA; `kvq` 1/2: the cache is INT8/MXFP4 dequantized to bf16 first),
** mla_decode (one shared latent KV head, d 576 / d_v 512) and attn_q (MSD attention over an
** INT8 or MXFP4 cache: Q and P split into passes). The softmax's variant (AMLA or FA-2, P in
** bf16), the keys per block, the passes and the cache format come from the kernel's IR.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_int.h"

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
  int mla = p->mla;
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
  int amla = p->num.softmax_amla;
  int pbf = p->num.softmax_p_bf16 || amla; /* AMLA's P is always bf16 */
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
  if (p->family != &kf_ref_family_attn_q || !p->kd) return -1;
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


/* The attention shape from the kernel's params into p: B, H, S, D (defaults 1, 1, 1, 128), HKV
** (0: H; MLA has one latent KV head) and DV (0: D), and the softmax scale 1/sqrt(D). */
static void attn_shape(kf_problem *p, int mla) {
  const kf_kernel *k = p->k;
  p->B = kf_ref_param(k, "B", 1);
  p->H = kf_ref_param(k, "H", 1);
  p->S = kf_ref_param(k, "S", 1);
  p->D = kf_ref_param(k, "D", 128);
  p->HKV = mla ? 1 : kf_ref_param(k, "HKV", 0);
  p->DV = kf_ref_param(k, "DV", 0);
  if (p->HKV <= 0) p->HKV = p->H;
  if (p->DV <= 0) p->DV = p->D;
  p->scale = 1.0 / sqrt((double)p->D);
}

static int attn_make(kf_ctx *ctx, kf_problem *p, uint64_t seed, int act_dist) {
  int mla = p->mla;
  const kf_kernel *k = p->k;
  int rc;
  attn_shape(p, mla);
  int64_t B = p->B, H = p->H, HKV = p->HKV, S = p->S, D = p->D, DV = p->DV;
  double scale = p->scale;
  if (mla) {
    if ((rc = kf_ref_expect_arg(ctx, k, 0, "q", KF_BF16, "B*H x D queries")) ||
        (rc = kf_ref_expect_arg(ctx, k, 1, "kv", KF_BF16, "B x S x D latent cache")) ||
        (rc = kf_ref_expect_arg(ctx, k, 2, "out", KF_F32, "B*H x DV output")))
      return rc;
  } else if ((rc = kf_ref_expect_arg(ctx, k, 0, "q", KF_BF16, "B*H x D queries")) ||
             (rc = kf_ref_expect_arg(ctx, k, 1, "k", KF_BF16, "B*HKV x S x D keys")) ||
             (rc = kf_ref_expect_arg(ctx, k, 2, "v", KF_BF16, "B*HKV x S x DV values")) ||
             (rc = kf_ref_expect_arg(ctx, k, 3, "out", KF_F32, "B*H x DV output")))
    return rc;
  int64_t nq = B * H * D, nk = B * HKV * S * D, nv = mla ? 0 : B * HKV * S * DV, no = B * H * DV;
  float *q = kf_xmalloc((size_t)nq * sizeof(float)), *kk = kf_xmalloc((size_t)nk * sizeof(float));
  float *v = nv ? kf_xmalloc((size_t)nv * sizeof(float)) : NULL;
  kf_rng rng;
  kf_rng_seed(&rng, seed);
  kf_ref_attn_gen gen;
  memset(&gen, 0, sizeof gen);
  gen.kind = (kf_ref_attn_kind)act_dist;
  gen.block = p->num.key_block > 0 ? p->num.key_block : 64;
  if (kf_ref_gen_attn(&rng, &gen, B, H, HKV, S, D, DV, scale, q, kk, v)) {
    free(q);
    free(kk);
    free(v);
    return kf_err(ctx, KF_EINVAL, "attention inputs: bad shape or kind");
  }
  if (!mla && kf_ref_param(k, "kvq", 0)) {
    /* the dequant baseline: an INT8 (kvq 1) or MXFP4 (kvq 2) cache dequantized to bf16 before FA-2 */
    int64_t BH = B * HKV;
    int8_t *kc = kf_xmalloc((size_t)nk), *vc = kf_xmalloc((size_t)nv);
    int kscale = (int)kf_ref_param(k, "kscale", 0);
    float *ks = kf_xmalloc((size_t)(BH * (kscale ? (S + 15) / 16 * 16 : D)) * sizeof(float));
    float *vs = kf_xmalloc((size_t)(BH * ((S + 15) / 16 * 16)) * sizeof(float));
    p->kd = kf_xmalloc((size_t)nk * sizeof(double));
    p->vd = kf_xmalloc((size_t)nv * sizeof(double));
    if (kf_ref_param(k, "kvq", 0) == 2) { /* an MXFP4 cache (as attn_q kernels read one) */
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
  uint16_t *qb = kf_ref_alloc_guarded((size_t)nq * 2), *kb = kf_ref_alloc_guarded((size_t)nk * 2), *vb = nv ? kf_ref_alloc_guarded((size_t)nv * 2) : NULL;
  kf_bf16_from_f32_n(qb, q, (size_t)nq);
  kf_bf16_from_f32_n(kb, kk, (size_t)nk);
  if (vb) kf_bf16_from_f32_n(vb, v, (size_t)nv);
  p->out_n = no;
  p->out = kf_ref_alloc_guarded((size_t)no * sizeof(float));
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

/* ---- attn_q: MSD attention over an INT8 or MXFP4 KV cache ----
** Bound per output (row, c), from the arithmetic: Q' = Q s_K / sqrt(D) split into P int8
** passes errs by e_q <= s_P/2 per element (s_P = max|Q'| / 127 / 254^(P-1)), so a score errs
** by e_j <= sum_d e_q |kcode_jd| s_j (s_j = per-token K scale or 1) plus the f32 combination
** gamma * sum_d |Q'_d kcode_jd| s_j; the softmax weights by delta = exp(2 max e_j) - 1 + 2^-21;
** P' = P s_V split into passes errs by E <= max_j s_V[j] / (2 * 127 * 254^(P-1)) per element
** (P <= 1), adding E sum_j |vcode_jc| (l >= 1); plus gamma_(S+4) for the P V sums. */
static int attnq_make(kf_ctx *ctx, kf_problem *p, uint64_t seed, int act_dist) {
  (void)act_dist; /* attn_q draws Gaussian Q, K and V */
  const kf_kernel *k = p->k;
  int rc;
  if ((rc = kf_ref_expect_arg(ctx, k, 0, "q", KF_BF16, "B*H x D queries")) ||
      (rc = kf_ref_expect_arg(ctx, k, 1, "k", KF_U8, "packed K codes")) ||
      (rc = kf_ref_expect_arg(ctx, k, 2, "k_scale", KF_F32, "K scales")) ||
      (rc = kf_ref_expect_arg(ctx, k, 3, "v", KF_U8, "packed V codes")) ||
      (rc = kf_ref_expect_arg(ctx, k, 4, "v_scale", KF_F32, "V scales")) ||
      (rc = kf_ref_expect_arg(ctx, k, 5, "out", KF_F32, "B*H x DV output")))
    return rc;
  attn_shape(p, 0);
  int64_t B = p->B, H = p->H, HKV = p->HKV, S = p->S, D = p->D, DV = p->DV, passes = p->num.passes;
  double scale = p->scale;
  int kscale = (int)kf_ref_param(k, "kscale", 0);
  if (passes < 1 || p->num.n_quantize != 2)
    return kf_err(ctx, KF_EINVAL, "%s: reference 'attn_q' expects two quantize nodes (Q and P), the kernel has %d",
                  kf_template_path(k->tmpl), p->num.n_quantize);
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
  int kvfmt = p->num.act_mxfp4; /* MXFP4 passes over an MXFP4 cache, INT8 passes over INT8 */
  int64_t nbd = (D + 31) / 32, DVp = (DV + 15) / 16 * 16;
  const kf_ir_buf *vsb = kf_kernel_arg(k, 4);
  int64_t ntb = vsb->rank == 3 ? vsb->dims[1] : 0; /* MXFP4: V scale blocks of 32 tokens the kernel holds */
  int64_t ksn = kvfmt ? nbd * Sk : kscale ? Sk : D, vsn = kvfmt ? ntb * DVp : Sp;
  float *ks = kf_ref_alloc_guarded((size_t)(BH * ksn) * sizeof(float)), *vs = kf_ref_alloc_guarded((size_t)(BH * vsn) * sizeof(float));
  p->kd = kf_xmalloc((size_t)nk * sizeof(double));
  p->vd = kf_xmalloc((size_t)nv * sizeof(double));
  if (kvfmt) quantize_kv_mx(BH, S, D, DV, Sk, ntb, DVp, kk, v, kc, ks, vc, vs, p->kd, p->vd);
  else quantize_kv(BH, S, D, DV, kscale, ksn, kk, v, kc, ks, vc, vs, p->kd, p->vd);
  /* pack: K per head as an S x D matrix, V per head as DV x S (both n16k4, scales 1) */
  int64_t Sv = kf_kernel_arg(k, 3)->dims[2]; /* tokens V is packed for (>= S, zero codes past S) */
  if (Sv < S) return kf_err(ctx, KF_EINVAL, "%s: 'v' must hold at least S tokens", kf_template_path(k->tmpl));
  int64_t kmat = Sk * ((D + 7) / 8 * 8), vmat = ((DV + 15) / 16 * 16) * ((Sv + 7) / 8 * 8);
  uint8_t *kp = kf_ref_alloc_guarded((size_t)(BH * kmat)), *vp = kf_ref_alloc_guarded((size_t)(BH * vmat));
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
  uint16_t *qb = kf_ref_alloc_guarded((size_t)nq * 2);
  kf_bf16_from_f32_n(qb, q, (size_t)nq);
  p->out_n = no;
  p->out = kf_ref_alloc_guarded((size_t)no * sizeof(float));
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

static int attn_decode_make(kf_ctx *ctx, kf_problem *p, uint64_t seed, int dist) {
  p->mla = 0;
  return attn_make(ctx, p, seed, dist);
}

static int mla_decode_make(kf_ctx *ctx, kf_problem *p, uint64_t seed, int dist) {
  p->mla = 1;
  return attn_make(ctx, p, seed, dist);
}

static void attn_describe_bound(const kf_problem *p, char *out, size_t n) {
  snprintf(out, n, "softmax: (2 delta + gamma_S) max|v|%s", p->num.softmax_amla ? " + AMLA 2^-9/block" : "");
}

static void attnq_describe_bound(const kf_problem *p, char *out, size_t n) {
  snprintf(out, n, "MSD attention: Q and P %s passes + softmax perturbation", p->num.act_mxfp4 ? "MXFP4" : "INT8");
}

/* 2 B H S (D + DV): QK^T and PV. */
static double attn_flops(const kf_binding *b) {
  int64_t B = 1, H = 1, S = 1, D = 128, DV = 0;
  kf_binding_get(b, "B", &B);
  kf_binding_get(b, "H", &H);
  kf_binding_get(b, "S", &S);
  kf_binding_get(b, "D", &D);
  kf_binding_get(b, "DV", &DV);
  if (DV <= 0) DV = D;
  return 2.0 * (double)B * (double)H * (double)S * (double)(D + DV);
}

const kf_ref_family kf_ref_family_attn_decode = {
    "attn_decode", "decode attention over a bf16 KV cache (args q, k, v, out)",
    attn_decode_make, attn_reference, attn_describe_bound, attn_flops, "B", 2};
const kf_ref_family kf_ref_family_mla_decode = {
    "mla_decode", "MLA decode over one latent KV head (args q, kv, out)",
    mla_decode_make, attn_reference, attn_describe_bound, attn_flops, "B", 2};
const kf_ref_family kf_ref_family_attn_q = {
    "attn_q", "decode attention over an INT8/MXFP4 KV cache (args q, k, k_scale, v, v_scale, out)",
    attnq_make, NULL, attnq_describe_bound, attn_flops, "B", 2};

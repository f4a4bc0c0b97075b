/*
** check.c: inputs, fp64 references and error bounds per reference kind (see check.h).
*/
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_quant.h"
#include "kf_ref.h"

typedef enum { PROB_GEMM_Q, PROB_ATTN, PROB_MLA } prob_kind;

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
};



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

static void *xalloc64(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
  kf_assert(p);
  memset(p, 0, bytes);
  return p;
}

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
    if (wb->wbits != 8 || wb->wgroup != 32) {
      free(wf);
      return kf_err(ctx, KF_EINVAL, "%s: MXFP4 weights need bits = 8 (doubled E2M1 codes) and group = 32",
                    kf_template_path(k->tmpl));
    }
    int64_t nb = kf_mx_n_blocks(K);
    int8_t *q = kf_xmalloc((size_t)(N * K));
    float *sc = kf_xmalloc((size_t)(N * nb) * sizeof(float));
    uint8_t *codes = kf_xmalloc((size_t)K), *e8 = kf_xmalloc((size_t)nb);
    for (int64_t n = 0; n < N; n++) {
      kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_OCP, wf + n * K, K, codes, e8);
      for (int64_t kk = 0; kk < K; kk++) q[n * K + kk] = (int8_t)kf_fp4_e2m1_times2(codes[kk]);
      for (int64_t b = 0; b < nb; b++) sc[n * nb + b] = kf_e8m0_to_f32(e8[b]) * 0.5f;
    }
    int qrc = kf_qweight_from_codes(&p->qw, q, sc, N, K, 8, 32, wb->wlayout ? KF_WLAYOUT_N16K1 : KF_WLAYOUT_N16K4,
                                    err, sizeof err);
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
  p->args[1] = p->qw.packed;
  p->arg_bytes[1] = p->qw.packed_bytes;
  if ((int64_t)p->qw.packed_bytes < lir_arg_elems(k->lir, 1)) {
    free(xf);
    return kf_err(ctx, KF_EINVAL, "packed weights (%zu bytes) smaller than the kernel expects (%lld)",
                  p->qw.packed_bytes, (long long)lir_arg_elems(k->lir, 1));
  }
  size_t sbytes = (size_t)(p->qw.n_groups * p->qw.n_pad) * sizeof(float);
  p->args[2] = p->qw.scales;
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
    for (int64_t kk = 0; kk < K; kk++) wd[n * K + kk] = kf_qweight_value(&p->qw, n, kk);
  p->ref = kf_xmalloc((size_t)(M * N) * sizeof(double));
  p->bound = kf_xmalloc((size_t)(M * N) * sizeof(double));
  double *absy = kf_xmalloc((size_t)(M * N) * sizeof(double));
  kf_ref_gemm(M, N, K, xf, wd, p->ref, absy);
  int64_t passes = 0;
  int msd = kf_binding_get(&k->config, "passes", &passes);
  if (!msd) {
    /* f32 FMA chain; plus 2^-8 (bf16 unit roundoff) per weight when weights are rounded to bf16 */
    double g = kf_ref_gamma(K + 2, 24) + (param(k, "wround", 0) ? ldexp(1.0, -8) : 0.0);
    for (int64_t i = 0; i < M * N; i++) p->bound[i] = g * absy[i];
  } else {
    /* e_x(m,k) = s_P/2 (1 + 2^-10): per row or per activation group */
    int64_t ag = param(k, "act_group", 0);
    if (ag <= 0) ag = K;
    int64_t Kp = (K + 7) / 8 * 8, grp = param(k, "group", 0), kc = 0;
    kf_binding_get(&k->config, "kc", &kc);
    int64_t span = grp > 0 ? grp : param(k, "act_group", 0) > 0 ? ag : (kc > 0 && kc < Kp ? kc : Kp);
    if (param(k, "afmt", 0) == 1) ag = span = 32; /* MX blocks */
    int64_t nspan = (Kp + span - 1) / span;
    double *ex = kf_xmalloc((size_t)(M * K) * sizeof(double));
    for (int64_t m = 0; m < M; m++)
      for (int64_t g0 = 0; g0 < K; g0 += ag) {
        int64_t g1 = g0 + ag < K ? g0 + ag : K;
        double amax = 0;
        for (int64_t kk = g0; kk < g1; kk++) amax = fmax(amax, fabs((double)xf[m * K + kk]));
        double e;
        if (param(k, "afmt", 0) == 1) /* MXFP4 passes: |e| <= alpha / 8^P, alpha = 2^ceil(log2 amax) */
          e = amax > 0 ? ldexp(1.0, (int)ceil(log2(amax))) / pow(8.0, (double)passes) : 0.0;
        else /* INT8 passes: |e| <= s_P / 2, s_P = amax / 127 / 254^(P-1) */
          e = 0.5 * amax / 127.0 / pow(254.0, (double)(passes - 1)) * (1.0 + ldexp(1.0, -10));
        for (int64_t kk = g0; kk < g1; kk++) ex[m * K + kk] = e;
      }
    double g = kf_ref_gamma(passes * nspan + 3, 24);
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double dec = 0, ax = 0;
        for (int64_t kk = 0; kk < K; kk++) {
          double aw = fabs(wd[n * K + kk]);
          dec += aw * ex[m * K + kk];
          ax += aw * (fabs((double)xf[m * K + kk]) + ex[m * K + kk]);
        }
        p->bound[m * N + n] = dec + g * ax;
      }
    free(ex);
  }
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
  if (mla) kf_ref_mla_decode(B, H, S, D, DV, scale, q, kk, p->ref);
  else kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, kk, v, p->ref);
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
        emax = fmax(emax, g_d * scale * a1);
      }
      double delta = expm1(2 * emax) + (pbf ? ldexp(1.0, -8) : ldexp(1.0, -24)) + ldexp(1.0, -21) +
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

void kf_problem_recompute_reference(kf_problem *p) {
  if (p->kind != PROB_GEMM_Q) attn_reference(p);
}

static int attn_new(kf_ctx *ctx, kf_problem *p, uint64_t seed, int act_dist, int mla) {
  const kf_kernel *k = p->k;
  int rc;
  int64_t B = param(k, "B", 1), H = param(k, "H", 1), S = param(k, "S", 1), D = param(k, "D", 128);
  int64_t HKV = mla ? 1 : param(k, "HKV", 0), DV = param(k, "DV", 0);
  if (HKV <= 0) HKV = H;
  if (DV <= 0) DV = D;
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
  double scale = 1.0 / sqrt((double)D);
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
  p->B = B;
  p->H = H;
  p->HKV = HKV;
  p->S = S;
  p->D = D;
  p->DV = DV;
  p->scale = scale;
  p->block = gen.block;
  free(q);
  free(kk);
  free(v);
  attn_reference(p);
  return KF_OK;
}

int kf_problem_new(kf_ctx *ctx, const kf_kernel *k, uint64_t seed, int act_dist, kf_problem **out) {
  *out = NULL;
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
  } else {
    rc = kf_err(ctx, KF_EINVAL, "%s: unknown reference '%s' (known: gemm_q, attn_decode, mla_decode)",
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
    free(p->args ? p->args[0] : NULL);
    free(p->out);
    kf_qweight_free(&p->qw);
  } else if (p->args) {
    for (int i = 0; i < p->n_args; i++) free(p->args[i]); /* out is among them */
  } else {
    free(p->out);
  }
  free(p->args);
  free(p->arg_bytes);
  free(p->ref);
  free(p->bound);
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
  if (kf_ref_err_stats_bound(p->out, p->ref, p->bound, p->out_n, &e))
    return kf_err(ctx, KF_EINVAL, "error statistics failed");
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
  if (p->kind != PROB_GEMM_Q)
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

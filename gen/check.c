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

typedef enum { PROB_GEMM_Q } prob_kind;

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
  if (kf_qweight_quantize(&p->qw, wf, N, K, wb->wbits, group, wb->wlayout ? KF_WLAYOUT_N16K1 : KF_WLAYOUT_N16K4,
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
    int64_t span = grp > 0 ? grp : param(k, "act_group", 0) > 0 ? ag : (kc < Kp ? kc : Kp);
    int64_t nspan = (Kp + span - 1) / span;
    double *ex = kf_xmalloc((size_t)(M * K) * sizeof(double));
    for (int64_t m = 0; m < M; m++)
      for (int64_t g0 = 0; g0 < K; g0 += ag) {
        int64_t g1 = g0 + ag < K ? g0 + ag : K;
        double amax = 0;
        for (int64_t kk = g0; kk < g1; kk++) amax = fmax(amax, fabs((double)xf[m * K + kk]));
        double s = amax / 127.0 / pow(254.0, (double)(passes - 1));
        for (int64_t kk = g0; kk < g1; kk++) ex[m * K + kk] = 0.5 * s * (1.0 + ldexp(1.0, -10));
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

int kf_problem_new(kf_ctx *ctx, const kf_kernel *k, uint64_t seed, int act_dist, kf_problem **out) {
  *out = NULL;
  kf_problem *p = kf_xcalloc(1, sizeof *p);
  p->k = k;
  const char *ref = kf_template_reference(k->tmpl);
  int rc;
  if (!strcmp(ref, "gemm_q")) {
    p->kind = PROB_GEMM_Q;
    rc = gemm_new(ctx, p, seed, act_dist);
  } else {
    rc = kf_err(ctx, KF_EINVAL, "%s: unknown reference '%s' (known: gemm_q)", kf_template_path(k->tmpl), ref);
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
  if (kf_binding_get(&p->k->config, "passes", &passes))
    snprintf(res->bound_desc, sizeof res->bound_desc,
             "MSD %lld-pass: sum|w|*s_P/2 + gamma(f32 combine)", (long long)passes);
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

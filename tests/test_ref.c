/*
** test_ref.c: the fp64 references (tests/ref/kf_ref.h) against hand-computed cases, their internal
** consistency (MQA/GQA = MHA with replicated KV, MLA = attention over the latent cache, softmax
** rows sum to 1, identical keys give the mean of v), the generators' statistical and adversarial
** properties, the error statistics, and the rejection of bad arguments. One line per case.
*/
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_ref.h"
#include "kf_report.h"

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "test_ref: out of memory\n");
    exit(2);
  }
  return p;
}

static double max_abs_diff(const double *a, const double *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs(a[i] - b[i]);
    if (!(d <= m)) m = d; /* NaN makes it NaN: never "small" */
  }
  return m;
}

static int is_bf16(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return (bits & 0xffffu) == 0;
}

/* ------------------------------------------------------------------------------------------- */

static void test_bf16(void) {
  struct {
    float in, want;
  } cases[] = {
      {1.0f, 1.0f},
      {1.0f + 0x1p-8f, 1.0f},                      /* tie -> even (down) */
      {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f},        /* tie -> even (up) */
      {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f}, /* just above the tie -> up */
      {-1.0f - 0x1p-8f - 0x1p-20f, -1.0f - 0x1p-7f},
      {0x1.fffffep127f, INFINITY}, /* FLT_MAX rounds past the largest bf16 */
      {INFINITY, INFINITY},
      {-INFINITY, -INFINITY},
      {0x1p-130f, 0x1p-130f}, /* subnormal, bf16-exact */
      {0.0f, 0.0f},
  };
  int ok = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    float got = kf_ref_bf16_round(cases[i].in);
    if (got != cases[i].want) {
      printf("     bf16(%a) = %a, want %a\n", cases[i].in, got, cases[i].want);
      ok = 0;
    }
  }
  float nan_in;
  uint32_t nan_bits = 0x7f800001u; /* signalling NaN with its payload only in the low half */
  memcpy(&nan_in, &nan_bits, sizeof nan_in);
  float nan_out = kf_ref_bf16_round(nan_in);
  ok &= isnan(nan_out) && is_bf16(nan_out) && isnan(kf_ref_bf16_round(-NAN));
  report(ok, "bf16_round", "%zu hand cases + NaN payloads",
         sizeof cases / sizeof cases[0]);
}

static void test_rng(void) {
  kf_rng a, b, c;
  kf_rng_seed(&a, 42);
  kf_rng_seed(&b, 42);
  kf_rng_seed(&c, 43);
  int same = 1, differ = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = kf_rng_u64(&a), y = kf_rng_u64(&b), z = kf_rng_u64(&c);
    same &= x == y;
    differ += x != z;
  }
  report(same && differ > 990, "rng_deterministic", "same seed same stream, %d/1000 differ",
         differ);

  /* Moments over n draws: the tolerance is 6 standard errors of the estimate. */
  const int n = 200000;
  kf_rng r;
  kf_rng_seed(&r, 7);
  double s1 = 0, s2 = 0, lo = 1, hi = 0;
  for (int i = 0; i < n; i++) {
    double u = kf_rng_uniform(&r);
    s1 += u;
    s2 += u * u;
    if (u < lo) lo = u;
    if (u > hi) hi = u;
  }
  double mean = s1 / n, var = s2 / n - mean * mean;
  report(fabs(mean - 0.5) < 6 * sqrt(1.0 / 12 / n) && fabs(var - 1.0 / 12) < 6 * 0.0745 / sqrt(n) &&
             lo >= 0 && hi < 1,
         "rng_uniform", "mean %.5f (0.5) var %.5f (%.5f) range [%.2g, %.6f]", mean, var, 1.0 / 12,
         lo, hi);

  s1 = s2 = 0;
  double s4 = 0;
  for (int i = 0; i < n; i++) {
    double g = kf_rng_normal(&r);
    s1 += g;
    s2 += g * g;
    s4 += g * g * g * g;
  }
  mean = s1 / n;
  var = s2 / n - mean * mean;
  double kurt = s4 / n;
  report(fabs(mean) < 6 / sqrt(n) && fabs(var - 1) < 6 * sqrt(2.0 / n) && fabs(kurt - 3) < 0.15,
         "rng_normal", "mean %.4f var %.4f E[x^4] %.3f (0, 1, 3)", mean, var, kurt);

  /* Laplace(b = 1/sqrt 2): variance 1, P(|X| > 2) = exp(-2 sqrt 2) = 0.0591. */
  s2 = 0;
  int tail = 0;
  for (int i = 0; i < n; i++) {
    double l = kf_rng_laplace(&r);
    s2 += l * l;
    tail += fabs(l) > 2;
  }
  double p_want = exp(-2 * sqrt(2.0)), p = (double)tail / n;
  report(fabs(s2 / n - 1) < 0.03 && fabs(p - p_want) < 6 * sqrt(p_want / n), "rng_laplace",
         "var %.4f (1) P(|x|>2) %.4f (%.4f)", s2 / n, p, p_want);

  /* Student-t3: P(|T| > 3) = 0.05767 (t-table), P(|T| > 1) = 0.3910; the variance (3) converges
  ** too slowly to test, so test the tails. */
  int t1 = 0, t3 = 0;
  for (int i = 0; i < n; i++) {
    double t = kf_rng_student_t3(&r);
    t1 += fabs(t) > 1;
    t3 += fabs(t) > 3;
  }
  double p1 = (double)t1 / n, p3 = (double)t3 / n;
  report(fabs(p1 - 0.3910) < 6 * sqrt(0.39 * 0.61 / n) && fabs(p3 - 0.05767) < 6 * sqrt(0.058 / n),
         "rng_student_t3", "P(|t|>1) %.4f (0.3910) P(|t|>3) %.4f (0.0577)", p1, p3);

  int below_ok = 1;
  for (int i = 0; i < 10000; i++) below_ok &= kf_rng_below(&r, 7) < 7;
  report(below_ok, "rng_below", "10000 draws in [0, 7)");
}

static void test_fill(void) {
  kf_rng r;
  kf_rng_seed(&r, 1);
  const int64_t rows = 64, cols = 1000;
  float *x = xcalloc((size_t)(rows * cols), sizeof *x);

  for (int dist = 0; dist < KF_REF_N_DIST; dist++) {
    int rc = kf_ref_fill(&r, (kf_ref_dist)dist, 0.5, 1, rows, cols, x);
    int bf = 1;
    double s2 = 0, amax = 0;
    for (int64_t i = 0; i < rows * cols; i++) {
      bf &= is_bf16(x[i]) && isfinite(x[i]);
      s2 += (double)x[i] * x[i];
      if (fabs(x[i]) > amax) amax = fabs(x[i]);
    }
    double rms = sqrt(s2 / (double)(rows * cols));
    /* Expected RMS: sigma·sqrt(var); uniform(-1,1) has var 1/3, t3 var 3 (loose: heavy tail),
    ** outlier: 10 of 1000 channels ×30 -> var 0.99 + 0.01·900 = 9.99. */
    double want[KF_REF_N_DIST] = {0.5, 0.5 / sqrt(3.0), 0.5 * sqrt(3.0), 0.5, 0.5 * sqrt(9.99)};
    double tol = dist == KF_REF_STUDENT_T3 ? 0.25 : 0.05;
    int ok = rc == 0 && bf && fabs(rms / want[dist] - 1) < tol;
    if (dist == KF_REF_UNIFORM) ok &= amax <= 0.5;
    char name[40];
    snprintf(name, sizeof name, "fill_%s", kf_ref_dist_name((kf_ref_dist)dist));
    report(ok, name, "rms %.4f (want %.4f ±%.0f%%) max %.3g, all bf16", rms, want[dist],
           tol * 100, amax);
  }

  /* Outlier channels: exactly ceil(1% of 1000) = 10 columns with a per-column RMS ~30x. */
  kf_ref_fill(&r, KF_REF_OUTLIER, 1.0, 0, rows, cols, x);
  int n_big = 0, n_mid = 0;
  for (int64_t c = 0; c < cols; c++) {
    double s = 0;
    for (int64_t i = 0; i < rows; i++) s += (double)x[i * cols + c] * x[i * cols + c];
    double col_rms = sqrt(s / (double)rows);
    if (col_rms > 15) n_big++;
    else if (col_rms > 3) n_mid++;
  }
  report(n_big == 10 && n_mid == 0, "fill_outlier_channels", "%d channels with rms > 15 (want 10)",
         n_big);

  double *xd = xcalloc((size_t)(rows * cols), sizeof *xd);
  kf_rng r1, r2;
  kf_rng_seed(&r1, 5);
  kf_rng_seed(&r2, 5);
  kf_ref_fill_d(&r1, KF_REF_GAUSS, 1.0, rows, cols, xd);
  kf_ref_fill(&r2, KF_REF_GAUSS, 1.0, 0, rows, cols, x);
  int match = 1;
  for (int64_t i = 0; i < rows * cols; i++) match &= (float)xd[i] == x[i];
  report(match, "fill_d_matches_fill", "same seed: double values round to the float ones");

  int bad = kf_ref_fill(&r, KF_REF_N_DIST, 1, 0, 2, 2, x) != 0 &&
            kf_ref_fill(&r, KF_REF_GAUSS, 1, 0, 0, 2, x) != 0 &&
            kf_ref_fill(&r, KF_REF_GAUSS, 1, 0, 2, -1, x) != 0 &&
            kf_ref_fill(&r, KF_REF_GAUSS, NAN, 0, 2, 2, x) != 0 &&
            kf_ref_fill(NULL, KF_REF_GAUSS, 1, 0, 2, 2, x) != 0 &&
            kf_ref_fill(&r, KF_REF_GAUSS, 1, 0, 2, 2, NULL) != 0 &&
            kf_ref_fill_d(&r, KF_REF_GAUSS, 1, 2, 2, NULL) != 0;
  report(bad && kf_ref_dist_parse("t3") == KF_REF_STUDENT_T3 && kf_ref_dist_parse("nope") == -1,
         "fill_rejects_bad_args", "bad dist/shape/sigma/NULL -> KF_REF_EINVAL; names parse");
  free(x);
  free(xd);
}

static void test_gemm(void) {
  /* x = [[1, 2, -1], [0.5, 0, 4]] (2×3), w = [[1, -1, 2], [3, 0.25, -2]] (2×3)
  ** y[0] = [1 - 2 - 2, 3 + 0.5 + 2] = [-3, 5.5]; y[1] = [0.5 + 8, 1.5 - 8] = [8.5, -6.5]
  ** |y|  = [[5, 5.5], [8.5, 9.5]] */
  const float x[] = {1, 2, -1, 0.5f, 0, 4};
  const double w[] = {1, -1, 2, 3, 0.25, -2};
  const double want[] = {-3, 5.5, 8.5, -6.5}, want_abs[] = {5, 5.5, 8.5, 9.5};
  double y[4], ya[4];
  int rc = kf_ref_gemm(2, 2, 3, x, w, y, ya);
  report(rc == 0 && max_abs_diff(y, want, 4) == 0 && max_abs_diff(ya, want_abs, 4) == 0,
         "gemm_hand_2x2x3", "y = [%g %g; %g %g]", y[0], y[1], y[2], y[3]);
  rc = kf_ref_gemm(2, 2, 3, x, w, y, NULL);
  report(rc == 0 && max_abs_diff(y, want, 4) == 0, "gemm_abs_null", "abs_y may be NULL");

  /* M=1, K=1 boundary and linearity: gemm(x, 2w) = 2·gemm(x, w). */
  kf_rng r;
  kf_rng_seed(&r, 3);
  enum { M = 5, N = 7, K = 33 };
  float xs[M * K];
  double ws[N * K], ws2[N * K], y1[M * N], y2[M * N];
  kf_ref_fill(&r, KF_REF_GAUSS, 1, 1, M, K, xs);
  kf_ref_fill_d(&r, KF_REF_GAUSS, 1, N, K, ws);
  for (int i = 0; i < N * K; i++) ws2[i] = 2 * ws[i];
  kf_ref_gemm(M, N, K, xs, ws, y1, NULL);
  kf_ref_gemm(M, N, K, xs, ws2, y2, NULL);
  int lin = 1;
  for (int i = 0; i < M * N; i++) lin &= y2[i] == 2 * y1[i];
  double one;
  float x1 = 3;
  double w1 = -0.5;
  rc = kf_ref_gemm(1, 1, 1, &x1, &w1, &one, NULL);
  report(lin && rc == 0 && one == -1.5, "gemm_linear_and_k1", "y(2w) = 2 y(w) exactly; 1x1x1 = %g",
         one);

  int bad = kf_ref_gemm(0, 1, 1, x, w, y, NULL) != 0 && kf_ref_gemm(1, 1, -3, x, w, y, NULL) != 0 &&
            kf_ref_gemm(1, 1, 1, NULL, w, y, NULL) != 0 &&
            kf_ref_gemm(1, 1, 1, x, NULL, y, NULL) != 0 &&
            kf_ref_gemm(1, 1, 1, x, w, NULL, NULL) != 0;
  report(bad, "gemm_rejects_bad_args", "zero/negative dims, NULL -> KF_REF_EINVAL");

  double g = kf_ref_gamma(1, 24), g_want = 0x1p-24 / (1 - 0x1p-24);
  report(g == g_want && kf_ref_gamma(1 << 24, 24) == INFINITY && kf_ref_gamma(10, 53) > 0,
         "gamma", "gamma_1(fp32) = %.6g", g);
}

static void test_attn_hand(void) {
  /* One head, D = 1, S = 2: q = 1, k = [0, 1], scale = ln 3 -> scores [0, ln 3], p = [1/4, 3/4];
  ** v = [1, 3] -> out = 1/4 + 9/4 = 2.5. */
  const float q[] = {1}, k[] = {0, 1}, v[] = {1, 3};
  double out;
  int rc = kf_ref_attn_decode(1, 1, 1, 2, 1, 1, log(3.0), q, k, v, &out);
  report(rc == 0 && fabs(out - 2.5) < 1e-15, "attn_hand_ln3", "out %.17g (2.5)", out);

  /* Double inputs (kf_ref_attn_decode_d): k = ln 3 in double is not a float, scale 1. MLA _d:
  ** D = 2, DV = 1, the value is the first column of the latent row: kv = [(1, 0), (3, ln 3)],
  ** q = (0, 1) -> p = [1/4, 3/4] -> out = 2.5. */
  const double qd[] = {1}, kd[] = {0, log(3.0)}, vd[] = {1, 3};
  const double qm[] = {0, 1}, kvm[] = {1, 0, 3, log(3.0)};
  double out_d, out_m;
  rc = kf_ref_attn_decode_d(1, 1, 1, 2, 1, 1, 1.0, qd, kd, vd, &out_d);
  rc |= kf_ref_mla_decode_d(1, 1, 2, 2, 1, 1.0, qm, kvm, &out_m);
  report(rc == 0 && fabs(out_d - 2.5) < 1e-15 && fabs(out_m - 2.5) < 1e-15, "attn_hand_double",
         "out %.17g, mla %.17g (2.5)", out_d, out_m);

  /* Very large / very negative scores are fine thanks to the max subtraction:
  ** scores [1000, 999] -> p = [e/(1+e), 1/(1+e)]. Same with [-999, -1000]. */
  const float kbig[] = {1000, 999}, kneg[] = {-999, -1000}, v2[] = {1, 0};
  double out_big, out_neg, want = exp(1) / (1 + exp(1));
  kf_ref_attn_decode(1, 1, 1, 2, 1, 1, 1.0, q, kbig, v2, &out_big);
  kf_ref_attn_decode(1, 1, 1, 2, 1, 1, 1.0, q, kneg, v2, &out_neg);
  report(fabs(out_big - want) < 1e-15 && fabs(out_neg - want) < 1e-15, "attn_hand_pm1000",
         "out %.15f / %.15f (%.15f)", out_big, out_neg, want);

  /* Two heads of D = 2 sharing one kv head, S = 3, DV = 2, hand-checked softmax: head 0
  ** q = (0, 0) -> uniform -> mean of v = (2, 10/3); head 1 q = (1, 0), keys (0,0),(ln 2,0),(0,0) with scale 1 ->
  ** p = [1/4, 1/2, 1/4] -> out = (1/4·1 + 1/2·2 + 1/4·3, 1/4·0 + 1/2·4 + 1/4·6) = (2, 3.5). */
  const float q2[] = {0, 0, 1, 0};
  float k2[] = {0, 0, (float)log(2.0), 0, 0, 0};
  const float v3[] = {1, 0, 2, 4, 3, 6};
  double o2[4];
  /* k2[2] is ln 2 rounded to float: the exact weights are e^{fl(ln 2)}, not 2. */
  double e2 = exp((double)k2[2]);
  double w0 = 1 / (2 + e2), w1 = e2 / (2 + e2);
  double want2[4] = {2, 10.0 / 3, w0 * 1 + w1 * 2 + w0 * 3, w1 * 4 + w0 * 6};
  kf_ref_attn_decode(1, 2, 1, 3, 2, 2, 1.0, q2, k2, v3, o2); /* MQA: both heads */
  double err = max_abs_diff(o2, want2, 4);
  report(err < 1e-15 && fabs(want2[3] - 3.5) < 1e-7, "attn_hand_2heads",
         "out (%g %g) (%g %g), err %.2g", o2[0], o2[1], o2[2], o2[3], err);
}

/* Random GQA shape: checks consistency against MHA with replicated KV, ones-v, identical keys. */
static void test_attn_consistency(void) {
  kf_rng r;
  kf_rng_seed(&r, 11);
  const int64_t B = 2, H = 8, HKV = 2, S = 37, D = 24, DV = 16;
  const double scale = 1 / sqrt((double)D);
  float *q = xcalloc((size_t)(B * H * D), sizeof *q);
  float *k = xcalloc((size_t)(B * HKV * S * D), sizeof *k);
  float *v = xcalloc((size_t)(B * HKV * S * DV), sizeof *v);
  float *krep = xcalloc((size_t)(B * H * S * D), sizeof *krep);
  float *vrep = xcalloc((size_t)(B * H * S * DV), sizeof *vrep);
  double *out = xcalloc((size_t)(B * H * DV), sizeof *out);
  double *out_rep = xcalloc((size_t)(B * H * DV), sizeof *out_rep);
  kf_ref_attn_gen gen = {.kind = KF_REF_ATTN_RANDOM};
  kf_ref_gen_attn(&r, &gen, B, H, HKV, S, D, DV, scale, q, k, v);

  /* Replicate each kv head to every query head of its group. */
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      int64_t g = h / (H / HKV);
      memcpy(krep + (b * H + h) * S * D, k + (b * HKV + g) * S * D, (size_t)(S * D) * sizeof *k);
      memcpy(vrep + (b * H + h) * S * DV, v + (b * HKV + g) * S * DV,
             (size_t)(S * DV) * sizeof *v);
    }
  kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, k, v, out);
  kf_ref_attn_decode(B, H, H, S, D, DV, scale, q, krep, vrep, out_rep);
  double err = max_abs_diff(out, out_rep, B * H * DV);
  report(err == 0, "attn_gqa_eq_mha_replicated", "H=8 HKV=2: max diff %.2g", err);

  /* MQA: HKV = 1, replicate the single kv head. */
  kf_ref_attn_decode(B, H, 1, S, D, DV, scale, q, k, v, out);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      memcpy(krep + (b * H + h) * S * D, k + b * S * D, (size_t)(S * D) * sizeof *k);
      memcpy(vrep + (b * H + h) * S * DV, v + b * S * DV, (size_t)(S * DV) * sizeof *v);
    }
  /* With HKV = 1 the kv of sequence b is at k + b·S·D (B×1×S×D). */
  kf_ref_attn_decode(B, H, H, S, D, DV, scale, q, krep, vrep, out_rep);
  err = max_abs_diff(out, out_rep, B * H * DV);
  report(err == 0, "attn_mqa_eq_mha_replicated", "H=8 HKV=1: max diff %.2g", err);

  /* Softmax rows sum to 1: with v = 1 everywhere the output is Σ p_j = 1. */
  for (int64_t i = 0; i < B * HKV * S * DV; i++) v[i] = 1;
  kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, k, v, out);
  double dev = 0;
  for (int64_t i = 0; i < B * H * DV; i++)
    if (fabs(out[i] - 1) > dev) dev = fabs(out[i] - 1);
  report(dev < 1e-14, "attn_softmax_sums_to_1", "max |sum p - 1| = %.2g", dev);

  /* Identical keys: uniform softmax whatever q is -> the mean of v. */
  kf_ref_fill(&r, KF_REF_GAUSS, 1, 1, B * HKV * S, DV, v);
  for (int64_t b = 0; b < B * HKV; b++)
    for (int64_t j = 1; j < S; j++) memcpy(k + (b * S + j) * D, k + b * S * D, (size_t)D * 4);
  kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, k, v, out);
  double mean_err = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t c = 0; c < DV; c++) {
        int64_t g = h / (H / HKV);
        double mean = 0;
        for (int64_t j = 0; j < S; j++) mean += v[((b * HKV + g) * S + j) * DV + c];
        mean /= (double)S;
        double e = fabs(out[(b * H + h) * DV + c] - mean);
        if (e > mean_err) mean_err = e;
      }
  report(mean_err < 1e-14, "attn_identical_keys_mean_v", "max |out - mean(v)| = %.2g", mean_err);

  /* NaN in q propagates to that head's output only; nothing crashes. */
  q[0] = NAN;
  kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, k, v, out);
  int nan_ok = isnan(out[0]) && isfinite(out[DV]);
  report(nan_ok, "attn_nan_propagates", "head 0 NaN, head 1 finite");

  int bad = kf_ref_attn_decode(B, H, 3, S, D, DV, scale, q, k, v, out) != 0 && /* 3 ∤ 8 */
            kf_ref_attn_decode(0, H, HKV, S, D, DV, scale, q, k, v, out) != 0 &&
            kf_ref_attn_decode(B, H, HKV, 0, D, DV, scale, q, k, v, out) != 0 &&
            kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, k, NULL, out) != 0 &&
            kf_ref_mla_decode(B, H, S, 8, 16, scale, q, k, out) != 0 && /* DV > D */
            kf_ref_attn_scores(B, H, 3, S, D, scale, q, k, out) != 0;
  report(bad, "attn_rejects_bad_args", "H %% HKV != 0, zero dims, NULL, MLA DV > D");
  free(q), free(k), free(v), free(krep), free(vrep), free(out), free(out_rep);
}

static void test_mla(void) {
  /* MLA = MQA attention whose V is the first DV columns of the latent cache. */
  kf_rng r;
  kf_rng_seed(&r, 12);
  const int64_t B = 2, H = 4, S = 20, D = 576, DV = 512;
  const double scale = 1 / sqrt((double)D);
  float *q = xcalloc((size_t)(B * H * D), sizeof *q);
  float *kv = xcalloc((size_t)(B * S * D), sizeof *kv);
  float *v = xcalloc((size_t)(B * S * DV), sizeof *v);
  double *out = xcalloc((size_t)(B * H * DV), sizeof *out);
  double *out2 = xcalloc((size_t)(B * H * DV), sizeof *out2);
  kf_ref_attn_gen gen = {.kind = KF_REF_ATTN_RANDOM};
  int rc = kf_ref_gen_attn(&r, &gen, B, H, 1, S, D, DV, scale, q, kv, NULL);
  for (int64_t i = 0; i < B * S; i++) memcpy(v + i * DV, kv + i * D, (size_t)DV * sizeof *v);
  rc |= kf_ref_mla_decode(B, H, S, D, DV, scale, q, kv, out);
  rc |= kf_ref_attn_decode(B, H, 1, S, D, DV, scale, q, kv, v, out2);
  double err = max_abs_diff(out, out2, B * H * DV);
  report(rc == 0 && err == 0, "mla_eq_mqa_with_latent_v", "D=576 DV=512 H=4: max diff %.2g", err);
  free(q), free(kv), free(v), free(out), free(out2);
}

/* Checks one adversarial generator on one shape, from the scores it produces. */
static void check_attn_gen(const char *shape, kf_ref_attn_kind kind, int64_t B, int64_t H,
                           int64_t HKV, int64_t S, int64_t D, int64_t DV, int64_t block) {
  kf_rng r;
  kf_rng_seed(&r, 100 + (uint64_t)kind);
  const double scale = 1 / sqrt((double)D);
  int mla = DV < 0;
  if (mla) DV = -DV;
  float *q = xcalloc((size_t)(B * H * D), sizeof *q);
  float *k = xcalloc((size_t)(B * HKV * S * D), sizeof *k);
  float *v = mla ? NULL : xcalloc((size_t)(B * HKV * S * DV), sizeof *v);
  double *sc = xcalloc((size_t)(B * H * S), sizeof *sc);
  double *out = xcalloc((size_t)(B * H * DV), sizeof *out);
  kf_ref_attn_gen gen = {.kind = kind, .block = block};
  int rc = kf_ref_gen_attn(&r, &gen, B, H, HKV, S, D, DV, scale, q, k, v);
  rc |= kf_ref_attn_scores(B, H, HKV, S, D, scale, q, k, sc);
  rc |= mla ? kf_ref_mla_decode(B, H, S, D, DV, scale, q, k, out)
            : kf_ref_attn_decode(B, H, HKV, S, D, DV, scale, q, k, v, out);

  int bf = 1;
  for (int64_t i = 0; i < B * H * D; i++) bf &= is_bf16(q[i]);
  for (int64_t i = 0; i < B * HKV * S * D; i++) bf &= is_bf16(k[i]);
  for (int64_t i = 0; v && i < B * HKV * S * DV; i++) bf &= is_bf16(v[i]);
  int finite = 1;
  for (int64_t i = 0; i < B * H * DV; i++) finite &= isfinite(out[i]);

  int ok = rc == 0 && bf && finite;
  char detail[160] = "";
  double smin = INFINITY, smax = -INFINITY;
  for (int64_t i = 0; i < B * H * S; i++) {
    if (sc[i] < smin) smin = sc[i];
    if (sc[i] > smax) smax = sc[i];
  }
  if (kind == KF_REF_ATTN_RISING) {
    /* Every head: block max rises by > 20 from each block to the next; every score of a block
    ** lies within 9 below the block max (8 by construction + noise). */
    double min_rise = INFINITY, max_spread = 0;
    for (int64_t row = 0; row < B * H; row++) {
      double prev = -INFINITY;
      for (int64_t start = 0; start < S; start += block) {
        int64_t end = start + block < S ? start + block : S;
        double bmax = -INFINITY, bmin = INFINITY;
        for (int64_t j = start; j < end; j++) {
          double s = sc[row * S + j];
          if (s > bmax) bmax = s;
          if (s < bmin) bmin = s;
        }
        if (start > 0 && bmax - prev < min_rise) min_rise = bmax - prev;
        if (bmax - bmin > max_spread) max_spread = bmax - bmin;
        prev = bmax;
      }
    }
    ok &= min_rise > 20 && max_spread < 11;
    snprintf(detail, sizeof detail, "min block-max rise %.2f (> 20), in-block spread %.2f, scores "
             "[%.1f, %.1f]", min_rise, max_spread, smin, smax);
  } else if (kind == KF_REF_ATTN_EQUAL) {
    /* Bit-identical scores per head, and the output is the mean of v. */
    int equal = 1;
    for (int64_t row = 0; row < B * H; row++)
      for (int64_t j = 1; j < S; j++) equal &= sc[row * S + j] == sc[row * S];
    double mean_err = 0;
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++) {
        int64_t g = h / (H / HKV);
        for (int64_t c = 0; c < DV; c++) {
          double mean = 0;
          for (int64_t j = 0; j < S; j++)
            mean += mla ? k[((b * S) + j) * D + c] : v[((b * HKV + g) * S + j) * DV + c];
          mean /= (double)S;
          double e = fabs(out[(b * H + h) * DV + c] - mean);
          if (e > mean_err) mean_err = e;
        }
      }
    ok &= equal && mean_err < 1e-13;
    snprintf(detail, sizeof detail, "scores all equal (%.3f..%.3f), |out - mean v| %.2g", smin,
             smax, mean_err);
  } else if (kind == KF_REF_ATTN_LARGE) {
    ok &= smin > 900 && smax < 1400;
    snprintf(detail, sizeof detail, "scores [%.1f, %.1f] (want > 900)", smin, smax);
  } else if (kind == KF_REF_ATTN_NEGATIVE) {
    ok &= smax < -900 && smin > -1400;
    snprintf(detail, sizeof detail, "scores [%.1f, %.1f] (want < -900)", smin, smax);
  } else {
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < B * H * S; i++) s1 += sc[i], s2 += sc[i] * sc[i];
    double n = (double)(B * H * S), sd = sqrt(s2 / n - (s1 / n) * (s1 / n));
    ok &= fabs(sd - 1) < 0.15;
    snprintf(detail, sizeof detail, "score std %.3f (1 for scale 1/sqrt D)", sd);
  }
  char name[64];
  snprintf(name, sizeof name, "gen_%s_%s", kf_ref_attn_kind_name(kind), shape);
  report(ok, name, "%s%s", detail, bf ? "" : " NOT bf16");
  free(q), free(k), free(v), free(sc), free(out);
}

static void test_attn_gen(void) {
  for (int kind = 0; kind < KF_REF_ATTN_N_KIND; kind++) {
    check_attn_gen("gqa", (kf_ref_attn_kind)kind, 2, 8, 2, 300, 128, 128, 64);
    check_attn_gen("mla", (kf_ref_attn_kind)kind, 1, 16, 1, 520, 576, -512, 128);
  }
  /* Tiny D (no noise coordinates) and a last block shorter than the block. */
  check_attn_gen("d2", KF_REF_ATTN_RISING, 1, 2, 1, 50, 2, 3, 16);

  /* Deterministic: same seed, same data. */
  kf_rng r1, r2;
  kf_rng_seed(&r1, 9);
  kf_rng_seed(&r2, 9);
  float q1[2 * 16], q2[2 * 16], k1[40 * 16], k2[40 * 16];
  kf_ref_attn_gen gen = {.kind = KF_REF_ATTN_RISING, .block = 8};
  kf_ref_gen_attn(&r1, &gen, 1, 2, 1, 40, 16, 16, 0.25, q1, k1, NULL);
  kf_ref_gen_attn(&r2, &gen, 1, 2, 1, 40, 16, 16, 0.25, q2, k2, NULL);
  report(!memcmp(q1, q2, sizeof q1) && !memcmp(k1, k2, sizeof k1), "gen_attn_deterministic",
         "same seed -> same q, k");

  kf_ref_attn_gen badkind = {.kind = KF_REF_ATTN_N_KIND};
  kf_ref_attn_gen huge = {.kind = KF_REF_ATTN_LARGE, .level = 1e30};
  int bad = kf_ref_gen_attn(&r1, &badkind, 1, 2, 1, 40, 16, 16, 0.25, q1, k1, NULL) != 0 &&
            kf_ref_gen_attn(&r1, &gen, 1, 2, 1, 40, 16, 16, 0.0, q1, k1, NULL) != 0 &&
            kf_ref_gen_attn(&r1, &gen, 1, 2, 1, 40, 16, 32, 0.25, q1, k1, NULL) != 0 &&
            kf_ref_gen_attn(&r1, &huge, 1, 2, 1, 40, 16, 16, 1e-20, q1, k1, NULL) != 0 &&
            kf_ref_gen_attn(&r1, &gen, 1, 3, 2, 40, 16, 16, 0.25, q1, k1, NULL) != 0;
  report(bad && kf_ref_attn_kind_parse("rising") == KF_REF_ATTN_RISING &&
             kf_ref_attn_kind_parse("x") == -1,
         "gen_attn_rejects_bad_args", "bad kind, scale 0, MLA DV > D, score/scale > bf16, H%%HKV");
}

static void test_err_stats(void) {
  const float got[] = {1, 2, 3};
  const double ref[] = {1, 2, 3.5}, bound[] = {1, 1, 0.25};
  kf_ref_errs e;
  int rc = kf_ref_err_stats_bound(got, ref, bound, 3, &e);
  double rel_want = 0.5 / sqrt(1 + 4 + 12.25);
  report(rc == 0 && e.max_abs == 0.5 && fabs(e.rel_l2 - rel_want) < 1e-15 && e.max_ratio == 2 &&
             fabs(e.eff_bits - log2(7.0)) < 1e-12 && e.i_max == 2 && e.ref_max_abs == 3.5 &&
             fabs(e.snr_bits + log2(rel_want)) < 1e-12,
         "err_stats_hand", "max %g rel %.6f ratio %g bits %.4f (log2 7) i_max %lld", e.max_abs,
         e.rel_l2, e.max_ratio, e.eff_bits, (long long)e.i_max);

  const double exact[] = {1, 2, 3};
  rc = kf_ref_err_stats(got, exact, 3, &e);
  report(rc == 0 && e.max_abs == 0 && e.rel_l2 == 0 && e.eff_bits == INFINITY, "err_stats_exact",
         "exact -> 0 error, +Inf bits");

  const float gnan[] = {1, NAN, 3};
  rc = kf_ref_err_stats_bound(gnan, exact, bound, 3, &e);
  int nan_ok = rc == 0 && e.n_nonfinite == 1 && e.max_abs == INFINITY && e.rel_l2 == INFINITY &&
               e.max_ratio == INFINITY && e.i_max == 1 && e.eff_bits == -INFINITY;
  const double rnan[] = {1, NAN, INFINITY};
  const float gsame[] = {1, NAN, INFINITY};
  rc |= kf_ref_err_stats(gsame, rnan, 3, &e);
  nan_ok &= e.n_nonfinite == 0 && e.max_abs == 0;
  report(rc == 0 && nan_ok, "err_stats_nonfinite", "NaN result -> Inf error; NaN=NaN matches");

  const double gd[] = {1, 2, 3.25};
  rc = kf_ref_err_stats_d(gd, ref, NULL, 3, &e);
  int bad = kf_ref_err_stats(NULL, ref, 3, &e) != 0 && kf_ref_err_stats(got, NULL, 3, &e) != 0 &&
            kf_ref_err_stats(got, ref, -1, &e) != 0 && kf_ref_err_stats(got, ref, 3, NULL) != 0;
  report(rc == 0 && e.max_abs == 0.25 && e.max_ratio == 0 && bad, "err_stats_d_and_bad_args",
         "double variant; NULL / n < 0 -> KF_REF_EINVAL");
}

int main(void) {
  test_bf16();
  test_rng();
  test_fill();
  test_gemm();
  test_attn_hand();
  test_attn_consistency();
  test_mla();
  test_attn_gen();
  test_err_stats();
  if (n_fail) printf("test_ref: %d case(s) FAILED\n", n_fail);
  else printf("test_ref: all cases passed\n");
  return n_fail ? 1 : 0;
}

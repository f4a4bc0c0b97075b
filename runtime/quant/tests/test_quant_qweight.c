/* test_quant_qweight — INT8/INT4 weight quantization and packing.
 * For odd shapes (n = 1, 3, 17; k = 8, 24, 40, 136), bits 4/8, several groups and both layouts:
 * scales equal max|W|/qmax (fp64 reference, at most 1 ulp above, never below), every element's
 * error |W - q·s| <= s/2, RNE ties, the packed bytes sit where the layout formulas (re-derived
 * here) say, padding holds q = 0, the index map is a bijection, unpack round-trips, code sums are
 * right. Then the failure paths: bad bits/group/shape/layout, NaN/Inf (error names row/col). */
#include "kf_quant.h"
#include "quant_test.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x243F6A8885A308D3ull;

/* The layout formulas, written out again from the specification. */
static int64_t want_index(int bits, kf_wlayout layout, int64_t k_pad, int64_t r, int64_t c,
                          int *shift) {
  int64_t nb = r / 16, nn = r % 16;
  *shift = 0;
  if (layout == KF_WLAYOUT_N16K4) {
    int64_t kb = c / 4, kk = c % 4;
    if (bits == 8) return ((nb * (k_pad / 4) + kb) * 16 + nn) * 4 + kk;
    int64_t kb2 = kb / 2;
    *shift = (kb == 2 * kb2) ? 0 : 4;
    return ((nb * (k_pad / 8) + kb2) * 16 + nn) * 4 + kk;
  }
  if (bits == 8) return (nb * k_pad + c) * 16 + nn;
  *shift = (c % 2 == 0) ? 0 : 4;
  return (nb * (k_pad / 2) + c / 2) * 16 + nn;
}

/* Fills w (n x k) with a mix: Gaussian-ish rows, an all-zero row, one all-zero group, a row of
 * tiny (subnormal) values, a row near FLT_MAX, and exact ties of the quantization grid. */
static void fill_weights(float *w, int64_t n, int64_t k, int64_t group) {
  for (int64_t r = 0; r < n; r++) {
    double mag = r % 5 == 3 ? 1e-42 : r % 7 == 4 ? 2e38 : 1.0;
    for (int64_t c = 0; c < k; c++) {
      double v = (rng_unit(&rng) + rng_unit(&rng) + rng_unit(&rng) - 1.5) * mag;
      w[r * k + c] = (float)v;
    }
    if (r == 2) memset(&w[r * k], 0, sizeof(float) * (size_t)k);
  }
  if (n > 1 && k > group) /* second group of row 1 all zero */
    for (int64_t c = group; c < (k < 2 * group ? k : 2 * group); c++) w[1 * k + c] = 0.0f;
}

/* Runs every check on one configuration; returns the number of problems found. */
static int check_config(int64_t n, int64_t k, int bits, int64_t group, kf_wlayout layout,
                        double *worst_ratio) {
  float *w = malloc(sizeof(float) * (size_t)(n * k));
  fill_weights(w, n, k, group);
  kf_qweight qw;
  char err[256] = "";
  int bad = 0;
  if (kf_qweight_quantize(&qw, w, n, k, bits, group, layout, err, sizeof err) != 0) {
    printf("  quantize failed: %s\n", err);
    free(w);
    return 1;
  }
  const int qmax = bits == 8 ? 127 : 7;
  int64_t n_groups = group >= k ? 1 : (k + group - 1) / group;
  int64_t n_pad = (n + 15) / 16 * 16, k_pad = (k + 7) / 8 * 8;
  if (qw.n != n || qw.k != k || qw.bits != bits || qw.n_groups != n_groups || qw.n_pad != n_pad ||
      qw.k_pad != k_pad || qw.packed_bytes != (size_t)(n_pad * k_pad / (bits == 8 ? 1 : 2)) ||
      ((uintptr_t)qw.packed % 64) != 0) {
    printf("  size fields wrong\n");
    bad++;
  }
  /* Scales: the fp64 amax/qmax, never below, at most one float ulp above; padding 0. */
  for (int64_t g = 0; g < n_groups; g++)
    for (int64_t r = 0; r < n_pad; r++) {
      float s = qw.scales[g * n_pad + r];
      if (r >= n) {
        if (s != 0.0f) bad++;
        continue;
      }
      double amax = 0;
      int64_t c1 = (g + 1) * group < k ? (g + 1) * group : k;
      for (int64_t c = g * group; c < c1; c++) amax = fmax(amax, fabs((double)w[r * k + c]));
      double exact = amax / qmax;
      if (!((double)s >= exact && (double)nextafterf(s, 0.0f) < exact + (exact == 0 ? 1 : 0) &&
            isfinite(s))) {
        if (bad++ < 3)
          printf("  scale[%lld][%lld] = %a, exact %a\n", (long long)g, (long long)r, (double)s,
                 exact);
      }
    }
  /* Codes in range, error <= s/2, and the largest element hits +-qmax in nonzero groups. */
  for (int64_t r = 0; r < n; r++)
    for (int64_t g = 0; g < n_groups; g++) {
      int64_t c1 = (g + 1) * group < k ? (g + 1) * group : k;
      double s = qw.scales[g * n_pad + r];
      int hit_max = 0, any_nonzero = 0;
      for (int64_t c = g * group; c < c1; c++) {
        int q = qw.q[r * k + c];
        double x = w[r * k + c], v = kf_qweight_value(&qw, r, c);
        if (q < -qmax || q > qmax) bad++;
        if (v != (double)q * s) bad++;
        double e = fabs(x - v);
        if (e > s / 2) {
          if (bad++ < 3)
            printf("  err at (%lld,%lld): %g > s/2 = %g\n", (long long)r, (long long)c, e, s / 2);
        }
        if (s > 0 && e / s > *worst_ratio) *worst_ratio = e / s;
        if (q == qmax || q == -qmax) hit_max = 1;
        if (x != 0) any_nonzero = 1;
      }
      /* A normal scale puts the group's largest element on +-qmax (a subnormal scale is too
         coarse for that; the s/2 bound above still holds). */
      if ((s >= FLT_MIN && !hit_max) || (!any_nonzero && (s != 0 || hit_max))) bad++;
    }
  /* Packed bytes at the specified positions; padding holds offset 2^(bits-1). */
  int offset = 1 << (bits - 1);
  unsigned char *seen = calloc(qw.packed_bytes * 2, 1);
  for (int64_t r = 0; r < n_pad; r++)
    for (int64_t c = 0; c < k_pad; c++) {
      int shift, got_shift;
      int64_t idx = want_index(bits, layout, k_pad, r, c, &shift);
      int64_t got = kf_qweight_packed_index(&qw, r, c, &got_shift);
      if (got != idx || got_shift != shift || idx < 0 || (size_t)idx >= qw.packed_bytes) {
        bad++;
        continue;
      }
      seen[idx * 2 + shift / 4]++;
      int u = bits == 8 ? qw.packed[idx] : (qw.packed[idx] >> shift) & 15;
      int want_u = (r < n && c < k) ? qw.q[r * k + c] + offset : offset;
      if (u != want_u) {
        if (bad++ < 3)
          printf("  packed (%lld,%lld) = %d, want %d\n", (long long)r, (long long)c, u, want_u);
      }
    }
  for (size_t i = 0; i < qw.packed_bytes * 2; i++)
    if ((bits == 8 && i % 2 == 1) ? seen[i] != 0 : seen[i] != 1) bad++; /* bijection */
  free(seen);
  /* unpack round trip, code sums. */
  int8_t *codes = malloc((size_t)(n_pad * k_pad));
  kf_qweight_unpack(&qw, codes);
  for (int64_t r = 0; r < n_pad; r++)
    for (int64_t c = 0; c < k_pad; c++)
      if (codes[r * k_pad + c] != ((r < n && c < k) ? qw.q[r * k + c] : 0)) bad++;
  free(codes);
  for (int64_t g = 0; g < n_groups; g++)
    for (int64_t r = 0; r < n_pad; r++) {
      int32_t sum = 0;
      for (int64_t c = g * group; r < n && c < k && c < (g + 1) * group; c++) sum += qw.q[r * k + c];
      if (qw.qsums[g * n_pad + r] != sum) bad++;
    }
  /* Out-of-range queries are defined. */
  int sh = 9;
  if (kf_qweight_packed_index(&qw, n_pad, 0, &sh) != -1 || sh != 0 ||
      kf_qweight_packed_index(&qw, 0, -1, NULL) != -1 || kf_qweight_value(&qw, n, 0) != 0.0)
    bad++;
  kf_qweight_free(&qw);
  if (qw.packed != NULL || qw.q != NULL) bad++;
  free(w);
  return bad;
}

static void test_shapes(void) {
  const int64_t ns[] = {1, 3, 17}, ks[] = {8, 24, 40, 136};
  const int64_t groups[] = {8, 32, 64, 128, 1 << 20};
  const int bitss[] = {8, 4};
  for (int ib = 0; ib < 2; ib++)
    for (int lay = 0; lay < 2; lay++) {
      int n_cfg = 0, n_bad_cfg = 0;
      double worst = 0;
      for (int in = 0; in < 3; in++)
        for (int ik = 0; ik < 4; ik++)
          for (int ig = 0; ig < 5; ig++) {
            int bad = check_config(ns[in], ks[ik], bitss[ib], groups[ig], (kf_wlayout)lay, &worst);
            n_cfg++;
            if (bad) {
              n_bad_cfg++;
              printf("  config n=%lld k=%lld bits=%d group=%lld layout=%d: %d problem(s)\n",
                     (long long)ns[in], (long long)ks[ik], bitss[ib], (long long)groups[ig], lay,
                     bad);
            }
          }
      char name[64], d[160];
      snprintf(name, sizeof name, "w%d_%s_roundtrip", bitss[ib], lay ? "n16k1" : "n16k4");
      snprintf(d, sizeof d, "%d configs, %d bad; max |W - q*s| / s = %.6f (bound 0.5)", n_cfg,
               n_bad_cfg, worst);
      check(n_bad_cfg == 0 && worst <= 0.5, name, d);
    }
}

/* Exact grid ties: amax = qmax makes s = 1, so W/s = W and ties must go to even. */
static void test_ties(void) {
  const float w8[8] = {127.0f, 63.5f, 0.5f, 1.5f, -2.5f, -0.5f, 126.5f, 2.4999998f};
  const int8_t want8[8] = {127, 64, 0, 2, -2, 0, 126, 2};
  const float w4[8] = {7.0f, 3.5f, 2.5f, -0.5f, -1.5f, 6.5f, 0.49999997f, -7.0f};
  const int8_t want4[8] = {7, 4, 2, 0, -2, 6, 0, -7};
  kf_qweight a, b;
  char err[128];
  int ok = kf_qweight_quantize(&a, w8, 1, 8, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err) == 0 &&
           kf_qweight_quantize(&b, w4, 1, 8, 4, 8, KF_WLAYOUT_N16K1, err, sizeof err) == 0;
  char d[160] = "";
  if (ok) {
    ok = a.scales[0] == 1.0f && b.scales[0] == 1.0f && memcmp(a.q, want8, 8) == 0 &&
         memcmp(b.q, want4, 8) == 0;
    snprintf(d, sizeof d, "w8 q = %d %d %d %d %d %d %d %d; w4 q = %d %d %d %d %d %d %d %d", a.q[0],
             a.q[1], a.q[2], a.q[3], a.q[4], a.q[5], a.q[6], a.q[7], b.q[0], b.q[1], b.q[2],
             b.q[3], b.q[4], b.q[5], b.q[6], b.q[7]);
    kf_qweight_free(&a);
    kf_qweight_free(&b);
  }
  check(ok, "round_half_even_ties", d);
}

/* kf_qweight_from_codes packs given codes/scales exactly like quantize does. */
static void test_from_codes(void) {
  enum { N = 5, K = 20, G = 8, NG = 3 };
  float w[N * K];
  for (int i = 0; i < N * K; i++) w[i] = (float)(rng_unit(&rng) * 2 - 1);
  int ok = 1;
  for (int bits = 4; bits <= 8; bits += 4) {
    kf_qweight a, b;
    char err[128];
    if (kf_qweight_quantize(&a, w, N, K, bits, G, KF_WLAYOUT_N16K4, err, sizeof err)) {
      ok = 0;
      continue;
    }
    float sc[N * NG];
    for (int r = 0; r < N; r++)
      for (int g = 0; g < NG; g++) sc[r * NG + g] = a.scales[g * a.n_pad + r];
    if (kf_qweight_from_codes(&b, a.q, sc, N, K, bits, G, KF_WLAYOUT_N16K4, err, sizeof err)) {
      ok = 0;
      kf_qweight_free(&a);
      continue;
    }
    ok = ok && a.packed_bytes == b.packed_bytes &&
         memcmp(a.packed, b.packed, a.packed_bytes) == 0 &&
         memcmp(a.scales, b.scales, sizeof(float) * (size_t)(a.n_pad * a.n_groups)) == 0 &&
         memcmp(a.qsums, b.qsums, sizeof(int32_t) * (size_t)(a.n_pad * a.n_groups)) == 0;
    kf_qweight_free(&a);
    kf_qweight_free(&b);
  }
  /* The full asymmetric code range -8 / -128 is accepted and stored as u = 0. */
  int8_t q4[8] = {-8, 7, 0, 1, -1, 2, -2, 3};
  float s1[1] = {0.25f};
  kf_qweight c;
  char err[128];
  if (kf_qweight_from_codes(&c, q4, s1, 1, 8, 4, 8, KF_WLAYOUT_N16K1, err, sizeof err) == 0) {
    ok = ok && kf_qweight_packed_code(&c, 0, 0) == 0 && kf_qweight_packed_code(&c, 0, 1) == 15 &&
         kf_qweight_value(&c, 0, 0) == -2.0;
    kf_qweight_free(&c);
  } else {
    ok = 0;
  }
  check(ok, "from_codes_matches_quantize", "bits 4 and 8, n=5 k=20 group=8; q=-8 stored as u=0");
}

/* Each bad input returns non-zero, zeroes *out, and says what and where. */
static void expect_error(const char *name, int rc, const kf_qweight *out, const char *err,
                         const char *needle) {
  int zeroed = out == NULL || (out->q == NULL && out->packed == NULL && out->scales == NULL);
  char d[320];
  snprintf(d, sizeof d, "rc=%d message \"%s\" (expects \"%s\")", rc, err, needle);
  check(rc != 0 && zeroed && strstr(err, needle) != NULL, name, d);
}

static void test_errors(void) {
  float w[4 * 16];
  for (int i = 0; i < 64; i++) w[i] = (float)i - 30.0f;
  kf_qweight o;
  char err[256];
  int rc;
#define TRY(call) (memset(&o, 0x5A, sizeof o), err[0] = 0, rc = (call))
  TRY(kf_qweight_quantize(&o, w, 4, 16, 5, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_bits_5", rc, &o, err, "bits=5");
  TRY(kf_qweight_quantize(&o, w, 4, 16, 8, 12, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_group_12", rc, &o, err, "group=12");
  TRY(kf_qweight_quantize(&o, w, 4, 16, 4, 0, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_group_0", rc, &o, err, "group=0");
  TRY(kf_qweight_quantize(&o, w, 4, 16, 4, -8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_group_negative", rc, &o, err, "group=-8");
  TRY(kf_qweight_quantize(&o, w, 0, 16, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_n_0", rc, &o, err, "n=0");
  TRY(kf_qweight_quantize(&o, w, 4, -1, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_k_negative", rc, &o, err, "k=-1");
  TRY(kf_qweight_quantize(&o, w, 4, 16, 8, 8, (kf_wlayout)7, err, sizeof err));
  expect_error("err_layout", rc, &o, err, "layout=7");
  TRY(kf_qweight_quantize(&o, w, (int64_t)1 << 40, (int64_t)1 << 20, 8, 8, KF_WLAYOUT_N16K4, err,
                          sizeof err));
  expect_error("err_too_large", rc, &o, err, "too large");
  TRY(kf_qweight_quantize(&o, NULL, 4, 16, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_null_w", rc, &o, err, "w is NULL");
  TRY(kf_qweight_quantize(NULL, w, 4, 16, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_null_out", rc, NULL, err, "out is NULL");
  w[2 * 16 + 5] = NAN;
  TRY(kf_qweight_quantize(&o, w, 4, 16, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_nan_names_row_col", rc, &o, err, "w[2][5] = NaN");
  w[2 * 16 + 5] = 1.0f;
  w[3 * 16 + 15] = -INFINITY;
  TRY(kf_qweight_quantize(&o, w, 4, 16, 4, 16, KF_WLAYOUT_N16K1, err, sizeof err));
  expect_error("err_inf_names_row_col", rc, &o, err, "w[3][15] = Inf");
  w[3 * 16 + 15] = 1.0f;
  /* No message buffer: still an error, no crash. */
  rc = kf_qweight_quantize(&o, w, 4, 16, 3, 8, KF_WLAYOUT_N16K4, NULL, 0);
  check(rc != 0, "err_without_buffer", "");
  int8_t q[16] = {0};
  float sc[2] = {1.0f, 1.0f};
  q[9] = 8;
  TRY(kf_qweight_from_codes(&o, q, sc, 1, 16, 4, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_code_out_of_range", rc, &o, err, "q[0][9] = 8");
  q[9] = 0;
  sc[1] = NAN;
  TRY(kf_qweight_from_codes(&o, q, sc, 1, 16, 4, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_scale_nan", rc, &o, err, "scales[0][1]");
  sc[1] = -1.0f;
  TRY(kf_qweight_from_codes(&o, q, sc, 1, 16, 8, 8, KF_WLAYOUT_N16K4, err, sizeof err));
  expect_error("err_scale_negative", rc, &o, err, "scales[0][1]");
  kf_qweight_free(NULL);
  kf_qweight z;
  memset(&z, 0, sizeof z);
  kf_qweight_free(&z);
  check(1, "free_null_and_zeroed", "no crash");
#undef TRY
}

/* Extremes: all-zero matrix (scale 0, no NaN) and FLT_MAX-sized weights (finite scales). */
static void test_extremes(void) {
  float w[3 * 8];
  memset(w, 0, sizeof w);
  kf_qweight a;
  char err[128];
  int ok = kf_qweight_quantize(&a, w, 3, 8, 4, 8, KF_WLAYOUT_N16K4, err, sizeof err) == 0;
  if (ok) {
    for (int r = 0; r < 3; r++)
      for (int c = 0; c < 8; c++)
        if (kf_qweight_value(&a, r, c) != 0.0 || a.scales[r] != 0.0f) ok = 0;
    kf_qweight_free(&a);
  }
  check(ok, "all_zero_scale_0", "codes 0, values exactly 0");
  for (int i = 0; i < 24; i++) w[i] = (i % 2 ? -1.0f : 1.0f) * FLT_MAX / (float)(1 + i % 5);
  ok = kf_qweight_quantize(&a, w, 3, 8, 8, 64, KF_WLAYOUT_N16K1, err, sizeof err) == 0;
  double worst = 0;
  if (ok) {
    for (int r = 0; r < 3; r++) {
      if (!isfinite(a.scales[r])) ok = 0;
      for (int c = 0; c < 8; c++) {
        double e = fabs((double)w[r * 8 + c] - kf_qweight_value(&a, r, c)) / a.scales[r];
        if (e > worst) worst = e;
      }
    }
    kf_qweight_free(&a);
  }
  char d[96];
  snprintf(d, sizeof d, "max error / s = %.4f (bound 0.5)", worst);
  check(ok && worst <= 0.5, "flt_max_weights", d);
}

int main(void) {
  test_errors();
  test_ties();
  test_extremes();
  test_from_codes();
  test_shapes();
  printf("%s: %d failure(s)\n", n_fail ? "FAIL" : "PASS", n_fail);
  return n_fail != 0;
}

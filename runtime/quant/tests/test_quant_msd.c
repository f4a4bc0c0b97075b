/* test_quant_msd — scalar reference of MSD's INT8 activation decomposition (DESIGN.md §4):
 * per row, |x - x̂| <= s_p/2 (+ the fp32 rounding of x̂), worst-case bits log2(max|x|/max|x-x̂|)
 * ≈ 7.99 per pass (>= 15.9 for 2 passes), codes in [-127, 127], s_{p+1} = s_p/254, the codes
 * reconstruct x̂; uniform-data SNR 15.98 (refs/msd.md §4); zero rows, NaN/Inf and bad args. */
#include "kf_quant.h"
#include "quant_test.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng = 0xA4093822299F31D0ull;

enum { ROWS = 48, COLS = 4096 };

static void test_passes(int passes, double min_bits) {
  const char *dists[] = {"gauss", "uniform", "laplace", "outlier_channels", "tiny"};
  float *x = malloc(sizeof(float) * COLS), *xh = malloc(sizeof(float) * COLS);
  int8_t *codes = malloc((size_t)passes * COLS);
  float scales[8];
  for (int dist = 0; dist < 5; dist++) {
    double worst_bits = INFINITY, worst_ratio = 0, num = 0, den = 0;
    int bad = 0;
    for (int r = 0; r < ROWS; r++) {
      for (int i = 0; i < COLS; i++) {
        double v = dist == 0 ? rng_gauss(&rng)
                   : dist == 1 ? 2 * rng_unit(&rng) - 1
                   : dist == 2 ? (rng_unit(&rng) < 0.5 ? -1 : 1) * -log(1 - rng_unit(&rng))
                   : dist == 3 ? rng_gauss(&rng) * (i % 100 < 1 ? 30 : 1)
                               : rng_gauss(&rng) * 1e-30;
        x[i] = kf_bf16_to_f32(kf_bf16_from_f32((float)(v * (1 + r))));
      }
      if (kf_q_msd_int8_codes(x, COLS, passes, codes, scales, xh) != 0) {
        bad++;
        continue;
      }
      double amax = 0, emax = 0;
      for (int i = 0; i < COLS; i++) {
        amax = fmax(amax, fabs(x[i]));
        double e = fabs((double)x[i] - xh[i]);
        emax = fmax(emax, e);
        num += (double)x[i] * x[i];
        den += e * e;
        double recon = 0;
        for (int p = 0; p < passes; p++) {
          int q = codes[p * COLS + i];
          if (q < -127 || q > 127) bad++;
          recon += q * (double)scales[p];
        }
        if (xh[i] != (float)recon) bad++;
      }
      /* Scales: s1 >= amax/127 within one ulp, s_{p+1} = fl(s_p/254). */
      if (!((double)scales[0] >= amax / 127 && (double)nextafterf(scales[0], 0) < amax / 127))
        bad++;
      for (int p = 1; p < passes; p++)
        if (scales[p] != scales[p - 1] / 254.0f) bad++;
      /* Bound: s_passes/2, plus half an fp32 ulp of x̂ (x̂ is returned in fp32). */
      double bound = scales[passes - 1] / 2.0 + ldexp(amax, -24);
      worst_ratio = fmax(worst_ratio, emax / bound);
      if (emax > bound) bad++;
      worst_bits = fmin(worst_bits, emax > 0 ? log2(amax / emax) : INFINITY);
    }
    double snr = 0.5 * log2(num / den);
    char name[64], d[200];
    snprintf(name, sizeof name, "int8_%dpass_%s", passes, dists[dist]);
    snprintf(d, sizeof d,
             "%d rows x %d: worst-case bits %.3f (need >= %.2f; ideal %.2f), SNR bits %.2f, "
             "max err/bound %.4f",
             ROWS, COLS, worst_bits, min_bits, passes * log2(254.0),
             snr, worst_ratio);
    int ok = bad == 0 && worst_bits >= min_bits && worst_ratio <= 1.0;
    if (dist == 1 && passes == 2) ok = ok && fabs(snr - 15.98) <= 0.05; /* refs/msd.md §4 */
    check(ok, name, d);
  }
  free(x);
  free(xh);
  free(codes);
}

static void test_edges(void) {
  float x[64], xh[64], sc[3];
  int8_t q[3 * 64];
  for (int i = 0; i < 64; i++) x[i] = 0.0f;
  int rc = kf_q_msd_int8_codes(x, 64, 3, q, sc, xh);
  int ok = rc == 0 && sc[0] == 0.0f && sc[1] == 0.0f && sc[2] == 0.0f;
  for (int i = 0; i < 64; i++) ok &= xh[i] == 0.0f && q[i] == 0 && q[64 + i] == 0;
  check(ok, "zero_row", "scales 0, codes 0, x̂ = 0 (no NaN)");
  for (int i = 0; i < 64; i++) x[i] = (float)i - 31.5f;
  x[10] = NAN;
  rc = kf_q_msd_int8(x, 64, 2, xh);
  ok = rc == -2 && isnan(xh[0]) && isnan(xh[63]);
  x[10] = INFINITY;
  ok = ok && kf_q_msd_int8(x, 64, 2, xh) == -2;
  check(ok, "nan_inf_row", "returns -2, x̂ all NaN");
  x[10] = 1.0f;
  ok = kf_q_msd_int8(NULL, 64, 2, xh) == -1 && kf_q_msd_int8(x, 0, 2, xh) == -1 &&
       kf_q_msd_int8(x, 64, 0, xh) == -1 && kf_q_msd_int8(x, 64, 9, xh) == -1 &&
       kf_q_msd_int8(x, 64, 2, NULL) == -1;
  check(ok, "bad_args", "NULL x/xhat, n=0, passes 0 and 9 -> -1");
  /* One element, FLT_MAX magnitude: finite scales, exact max element. */
  x[0] = -FLT_MAX;
  rc = kf_q_msd_int8_codes(x, 1, 2, q, sc, xh);
  ok = rc == 0 && isfinite(sc[0]) && q[0] == -127 && fabs((double)xh[0] - x[0]) <= sc[1] / 2.0 + ldexp(FLT_MAX, -24);
  check(ok, "flt_max_single", "n=1, x=-FLT_MAX: q1=-127, error within bound");
  /* Round half even on an exact tie: max 127 -> s1 = 1, x = 2.5 -> q1 = 2, r = 0.5. */
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -3.5f;
  kf_q_msd_int8_codes(x, 3, 1, q, sc, xh);
  char d[96];
  snprintf(d, sizeof d, "s1 = %g, q = %d %d %d (want 127 2 -4)", (double)sc[0], q[0], q[1], q[2]);
  check(sc[0] == 1.0f && q[0] == 127 && q[1] == 2 && q[2] == -4, "round_half_even", d);
}

int main(void) {
  test_edges();
  test_passes(1, 7.9);
  test_passes(2, 15.9);
  test_passes(3, 22.9);
  printf("%s: %d failure(s)\n", n_fail ? "FAIL" : "PASS", n_fail);
  return n_fail != 0;
}

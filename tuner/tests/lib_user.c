/*
** lib_user.c: a program that links a `kforge lib` library with cc (no Lua, LLVM, SQLite or
** other kforge code) and checks it: for each case it quantizes and packs random weights the
** way runtime/quant/kf_quant.h documents (written out here, independently), calls the
** library's dispatch function, and compares every output with an fp64 reference under a
** bound derived from the arithmetic (DESIGN.md section 4, gen/check.h). It also checks which
** variant ran: a tuned kernel for the shapes in the library, the generic one otherwise.
** Usage: lib_user  (prints one line per case; exit status 1 on any failure)
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kforge_kernels.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void) { /* xorshift64, uniform in (-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static float bf16_val(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static double gamma_n(double n) { double u = ldexp(1.0, -24); return n * u / (1 - n * u); }

/* One case: family 0 = msd_gemm (N16K4), 1 = dequant_gemm (N16K1, wfmt 0 = integer codes, wround 1);
** 8-bit per channel. Params in the header's order: M, N, K, then the template's (sorted). */
static int run_case(int family, int64_t M, int64_t N, int64_t K, int want_tuned) {
  int64_t np = (N + 15) / 16 * 16, kp = (K + 7) / 8 * 8;
  uint16_t *x = malloc((size_t)(M * K) * 2);
  double *xd = malloc((size_t)(M * K) * sizeof(double)), *wd = calloc((size_t)(N * K), sizeof(double));
  uint8_t *w = malloc((size_t)(np * kp));
  float *sc = calloc((size_t)np, sizeof(float)), *y = malloc((size_t)(M * N) * sizeof(float));
  memset(w, 128, (size_t)(np * kp)); /* padding: code 0 */
  for (int64_t i = 0; i < M * K; i++) {
    x[i] = bf16_bits((float)(urand() * (i % 7 == 0 ? 8 : 1)));
    xd[i] = bf16_val(x[i]);
  }
  for (int64_t n = 0; n < N; n++) {
    float row[4096];
    double amax = 0;
    for (int64_t k = 0; k < K; k++) {
      row[k] = (float)(urand() / sqrt((double)K));
      amax = fmax(amax, fabs(row[k]));
    }
    float s = (float)(amax / 127);
    sc[n] = s;
    for (int64_t k = 0; k < K; k++) {
      int q = s > 0 ? (int)nearbyintf(row[k] / s) : 0;
      q = q > 127 ? 127 : q < -127 ? -127 : q;
      wd[n * K + k] = q * (double)s;
      int64_t nb = n / 16, nn = n % 16, idx;
      if (family == 0) idx = ((nb * (kp / 4) + k / 4) * 16 + nn) * 4 + k % 4;
      else idx = (nb * kp + k) * 16 + nn;
      w[idx] = (uint8_t)(q + 128);
    }
  }
  for (int64_t i = 0; i < M * N; i++) y[i] = NAN;
  const char *variant;
  int rc;
  if (family == 0) {
    variant = kforge_kernels_msd_gemm_variant(M, N, K, 0, 8, 0);
    rc = kforge_kernels_msd_gemm(M, N, K, 0, 8, 0, x, w, sc, y, 2);
  } else {
    variant = kforge_kernels_dequant_gemm_variant(M, N, K, 8, 0, 0, 1);
    rc = kforge_kernels_dequant_gemm(M, N, K, 8, 0, 0, 1, x, w, sc, y, 2);
  }
  double worst = 0, max_err = 0;
  int64_t nspan = (kp + 255) / 256; /* most int32 spans any kc of the template gives */
  for (int64_t m = 0; m < M; m++) {
    double amax = 0;
    for (int64_t k = 0; k < K; k++) amax = fmax(amax, fabs(xd[m * K + k]));
    double ex = 0.5 * amax / 127 / 254 * (1 + ldexp(1.0, -10)); /* 2 passes: s_2 / 2 */
    for (int64_t n = 0; n < N; n++) {
      double ref = 0, aw_ax = 0, aw = 0;
      for (int64_t k = 0; k < K; k++) {
        ref += xd[m * K + k] * wd[n * K + k];
        aw_ax += fabs(xd[m * K + k] * wd[n * K + k]);
        aw += fabs(wd[n * K + k]);
      }
      double bound = family == 0 ? aw * ex + gamma_n((double)(2 * nspan + 3)) * (aw_ax + aw * ex)
                                 : (gamma_n((double)(K + 2)) + ldexp(1.0, -8)) * aw_ax;
      double err = fabs((double)y[m * N + n] - ref);
      if (!(err <= bound)) worst = INFINITY;
      else if (bound > 0 && err / bound > worst) worst = err / bound;
      if (err > max_err || err != err) max_err = err;
    }
  }
  int tuned = strncmp(variant, "generic", 7) != 0; /* "generic (passes=2)" */
  int ok = rc == 0 && worst <= 1 && tuned == want_tuned;
  printf("%s: %s M=%lld N=%lld K=%lld via %s: max|err| %.3e, worst err/bound %.3f (want %s)\n", ok ? "ok  " : "FAIL",
         family ? "dequant_gemm" : "msd_gemm", (long long)M, (long long)N, (long long)K, variant, max_err, worst,
         want_tuned ? "a tuned variant" : "generic");
  free(x);
  free(xd);
  free(wd);
  free(w);
  free(sc);
  free(y);
  return ok;
}

int main(void) {
  int ok = 1;
  ok &= run_case(0, 2, 48, 96, 1);   /* tuned */
  ok &= run_case(0, 5, 40, 100, 1);  /* tuned, odd N and K */
  ok &= run_case(0, 3, 48, 96, 1);   /* in the library via the nearest tuned shape's config */
  ok &= run_case(0, 7, 33, 70, 0);   /* not in the library: generic */
  ok &= run_case(0, 1, 16, 8, 0);
  ok &= run_case(1, 3, 64, 128, 1);  /* dequant, tuned */
  ok &= run_case(1, 2, 20, 40, 0);   /* dequant, generic */
  printf("%s\n", ok ? "all ok" : "FAILED");
  return !ok;
}

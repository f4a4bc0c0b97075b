/*
** test_dispatch_generic: the generic runtime-shaped gemm_q kernels of runtime/dispatch against
** an fp64 reference, on weights quantized and packed by runtime/quant (so the generic reads
** exactly the layouts the templates use): 8 and 4 bits, per channel and per K-group, MSD with
** 1..3 passes and per-row or per-group activation scales, dequant with and without bf16
** weights, odd shapes, 1 and 3 threads. Bound per output (DESIGN.md section 4): MSD
** sum_k |w| s_P/2 (1 + 2^-10) + gamma_(K+3) sum_k |w|(|x| + s_P/2); dequant
** (gamma_(K+2) + 2^-8 if bf16) sum_k |w x|. Bad arguments return -1.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_dispatch.h"
#include "kf_quant.h"

static int failures;
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (double)(rs >> 11) / 4503599627370496.0 - 1.0;
}
static double gam(double n) { double u = ldexp(1.0, -24); return n * u / (1 - n * u); }

static void one(int msd, int64_t M, int64_t N, int64_t K, int bits, int64_t group, int64_t act_group, int passes,
                int wround, int threads) {
  float *wf = malloc((size_t)(N * K) * sizeof(float)), *xf = malloc((size_t)(M * K) * sizeof(float));
  uint16_t *x = malloc((size_t)(M * K) * 2);
  float *y = malloc((size_t)(M * N) * sizeof(float));
  for (int64_t i = 0; i < N * K; i++) wf[i] = (float)(urand() / sqrt((double)K));
  for (int64_t i = 0; i < M * K; i++) {
    x[i] = kf_bf16_from_f32((float)(urand() * (i % 5 ? 1 : 20)));
    xf[i] = kf_bf16_to_f32(x[i]);
  }
  kf_qweight qw;
  char err[200];
  int64_t g = group > 0 && group < K ? group : (K + 7) / 8 * 8;
  if (kf_qweight_quantize(&qw, wf, N, K, bits, g, msd ? KF_WLAYOUT_N16K4 : KF_WLAYOUT_N16K1, err, sizeof err)) {
    printf("FAIL: quantize: %s\n", err);
    failures++;
    return;
  }
  int rc = msd ? kf_generic_msd_gemm(M, N, K, bits, group, act_group, passes, x, qw.packed, qw.scales, y, threads)
               : kf_generic_dequant_gemm(M, N, K, bits, group, wround, x, qw.packed, qw.scales, y, threads);
  double worst = 0, max_err = 0;
  int64_t ag = act_group > 0 && act_group < K ? act_group : K;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double ref = 0, bound = 0, awx = 0;
      for (int64_t k = 0; k < K; k++) {
        double w = kf_qweight_value(&qw, n, k), xv = xf[m * K + k];
        ref += w * xv;
        awx += fabs(w * xv);
        if (msd) {
          int64_t g0 = k / ag * ag, g1 = g0 + ag < K ? g0 + ag : K;
          double amax = 0;
          for (int64_t kk = g0; kk < g1; kk++) amax = fmax(amax, fabs((double)xf[m * K + kk]));
          double ex = 0.5 * amax / 127 / pow(254, passes - 1) * (1 + ldexp(1.0, -10));
          bound += fabs(w) * ex * (1 + gam((double)K + 3)) + gam((double)K + 3) * fabs(w * xv);
        }
      }
      if (!msd) bound = (gam((double)K + 2) + (wround ? ldexp(1.0, -8) : 0)) * awx;
      double e = fabs((double)y[m * N + n] - ref);
      if (!(e <= bound)) worst = INFINITY;
      else if (bound > 0) worst = fmax(worst, e / bound);
      max_err = fmax(max_err, e);
    }
  int ok = rc == 0 && worst <= 1;
  printf("%s: %s M=%lld N=%lld K=%lld w%d group %lld%s passes %d%s threads %d: max|err| %.3e, worst err/bound %.3f\n",
         ok ? "ok  " : "FAIL", msd ? "msd" : "dequant", (long long)M, (long long)N, (long long)K, bits, (long long)group,
         msd && act_group ? " act_group" : "", msd ? passes : 0, !msd && wround ? " bf16 weights" : "", threads, max_err,
         worst);
  failures += !ok;
  kf_qweight_free(&qw);
  free(wf);
  free(xf);
  free(x);
  free(y);
}

int main(void) {
  /* bad arguments first */
  uint16_t x[8] = {0};
  uint8_t w[128] = {0};
  float s[16] = {0}, y[8];
  int bad = kf_generic_msd_gemm(0, 1, 8, 8, 0, 0, 2, x, w, s, y, 1) == -1 &&
            kf_generic_msd_gemm(1, 1, 8, 6, 0, 0, 2, x, w, s, y, 1) == -1 &&
            kf_generic_msd_gemm(1, 1, 8, 8, 12, 0, 2, x, w, s, y, 1) == -1 &&
            kf_generic_msd_gemm(1, 1, 8, 8, 0, 0, 5, x, w, s, y, 1) == -1 &&
            kf_generic_dequant_gemm(1, 1, 8, 8, 0, 0, NULL, w, s, y, 1) == -1;
  printf("%s: bad sizes, bits, group, passes, NULL pointers return -1\n", bad ? "ok  " : "FAIL");
  failures += !bad;
  one(1, 1, 16, 8, 8, 0, 0, 2, 0, 1);
  one(1, 3, 33, 70, 8, 0, 0, 1, 0, 1);
  one(1, 5, 40, 100, 8, 0, 0, 2, 0, 3);
  one(1, 4, 48, 128, 8, 32, 32, 2, 0, 2);
  one(1, 2, 20, 96, 4, 0, 0, 3, 0, 1);
  one(1, 3, 64, 256, 4, 64, 0, 2, 0, 3);
  one(0, 3, 33, 70, 8, 0, 0, 0, 1, 1);
  one(0, 2, 40, 128, 8, 32, 0, 0, 0, 3);
  one(0, 5, 17, 64, 4, 0, 0, 0, 1, 2);
  one(0, 1, 64, 256, 4, 128, 0, 0, 0, 1);
  printf("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}

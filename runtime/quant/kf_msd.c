/* kf_msd.c — scalar reference of MSD's INT8 activation decomposition (DESIGN.md §4):
 * x ≈ s1·q1 + s2·q2 + ..., s1 = max|x|/127, s_{p+1} = s_p/254, so that each residual fits the
 * next pass's int8 range without clipping and the error shrinks by 254 per pass. */
#include "kf_quant.h"
#include "kf_quant_int.h"

#include <math.h>
#include <stdlib.h>

int kf_q_msd_int8_codes(const float *x, int64_t n, int passes, int8_t *codes, float *scales,
                        float *xhat) {
  if (x == NULL || xhat == NULL || n <= 0 || passes < 1 || passes > 8) return -1;
  float amax = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) {
      for (int64_t j = 0; j < n; j++) xhat[j] = NAN;
      return -2;
    }
    amax = fmaxf(amax, fabsf(x[i]));
  }
  double *resid = malloc(sizeof(double) * (size_t)n);
  double *sum = calloc((size_t)n, sizeof(double));
  if (resid == NULL || sum == NULL) {
    free(resid);
    free(sum);
    return -1;
  }
  for (int64_t i = 0; i < n; i++) resid[i] = (double)x[i];
  float s = amax / 127.0f;
  if ((double)s * 127.0 < (double)amax) s = nextafterf(s, INFINITY); /* |x/s1| <= 127 */
  for (int p = 0; p < passes; p++) {
    if (p > 0) s = s / 254.0f;
    if (scales) scales[p] = s;
    for (int64_t i = 0; i < n; i++) {
      double q = s > 0.0f ? kf_q_rne_(resid[i] / (double)s) : 0.0;
      if (q > 127.0) q = 127.0;
      if (q < -127.0) q = -127.0;
      if (codes) codes[(int64_t)p * n + i] = (int8_t)q;
      double v = q * (double)s;
      sum[i] += v;
      resid[i] -= v;
    }
  }
  for (int64_t i = 0; i < n; i++) xhat[i] = kf_q_f32_sat_(sum[i]);
  free(resid);
  free(sum);
  return 0;
}

int kf_q_msd_int8(const float *x, int64_t n, int passes, float *xhat) {
  return kf_q_msd_int8_codes(x, n, passes, NULL, NULL, xhat);
}

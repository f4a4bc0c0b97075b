/* kf_quant_util.c — private helpers of the quant module (error text, rounding). */
#include "kf_quant_int.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

void kf_q_set_err_(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* v - floor(v) is exact for a finite double, so the tie test is exact. */
double kf_q_rne_(double v) {
  double r = floor(v);
  double frac = v - r;
  if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
  return r;
}

float kf_q_f32_sat_(double v) {
  if (isfinite(v) && fabs(v) > FLT_MAX) return v > 0 ? FLT_MAX : -FLT_MAX;
  return (float)v;
}

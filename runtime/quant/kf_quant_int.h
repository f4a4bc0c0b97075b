/* kf_quant_int.h — private helpers shared by the kf_quant sources. */
#ifndef KF_QUANT_INT_H
#define KF_QUANT_INT_H

#include <stddef.h>

/* Writes a printf-style message into err[errlen] when err is not NULL and errlen > 0. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void kf_q_set_err_(char *err, size_t errlen, const char *fmt, ...);

/* Round to nearest integer, ties to even, independent of the floating-point environment.
 * v must be finite. */
double kf_q_rne_(double v);

/* fp64 -> fp32, rounding to nearest, but a finite value beyond the fp32 range gives ±FLT_MAX
 * instead of ±Inf (reconstructions of finite fp32 inputs: clamping only moves them closer). */
float kf_q_f32_sat_(double v);

#endif

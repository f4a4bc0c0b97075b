/* kf_mx.c — OCP MX v1.0 formats: E2M1 / E4M3 / E5M2 elements, E8M0 block scales (OCP and
 * non-clipping rules), block and row quantizers, FP4 packing, MSD residual passes.
 * All arithmetic on values is done in fp64, where every step here is exact (scaling by powers of
 * two, rounding to a grid of a few bits), so the results do not depend on the FP environment. */
#include "kf_quant.h"
#include "kf_quant_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One element format: significand bits, exponent of the smallest normal, bias, total bits,
 * largest finite value, and the special codes (magnitude bits; -1 if absent). */
typedef struct mx_elem {
  int mbits, emin, bias, nbits;
  double maxv;
  int emax_elem;    /* exponent of the largest normal binade (OCP scale rule) */
  int max_code;     /* magnitude code of maxv */
  int inf_code;     /* -1: no Inf */
  int nan_code;     /* -1: no NaN */
} mx_elem;

static const mx_elem k_elems[3] = {
    {1, 0, 1, 4, 6.0, 2, 0x7, -1, -1},                /* E2M1 */
    {3, -6, 7, 8, 448.0, 8, 0x7E, -1, 0x7F},         /* E4M3 (fn) */
    {2, -14, 15, 8, 57344.0, 15, 0x7B, 0x7C, 0x7F},  /* E5M2 */
};

static const mx_elem *elem_of(kf_mxfmt fmt) {
  if ((int)fmt < 0 || (int)fmt > 2) return NULL;
  return &k_elems[fmt];
}

double kf_mx_elem_max(kf_mxfmt fmt) {
  const mx_elem *f = elem_of(fmt);
  return f ? f->maxv : 0.0;
}

/* RNE onto the grid 2^(max(floor(log2|v|), emin) - mbits) (subnormals included), then either
 * saturate or overflow to Inf/NaN as documented in kf_quant.h. */
uint8_t kf_mx_elem_encode(kf_mxfmt fmt, double v, int saturate) {
  const mx_elem *f = elem_of(fmt);
  if (f == NULL) return 0;
  unsigned sign = signbit(v) ? 1u << (f->nbits - 1) : 0u;
  if (isnan(v)) return (uint8_t)(sign | (f->nan_code >= 0 ? (unsigned)f->nan_code : 0u));
  double a = fabs(v);
  int overflow_code = saturate || (f->inf_code < 0 && f->nan_code < 0) ? f->max_code
                      : f->inf_code >= 0                                ? f->inf_code
                                                                        : f->nan_code;
  if (isinf(a)) return (uint8_t)(sign | (unsigned)overflow_code);
  if (a == 0.0) return (uint8_t)sign;
  int e2;
  frexp(a, &e2); /* a = m·2^e2, m in [0.5, 1): floor(log2 a) = e2 - 1 */
  int ex = e2 - 1 < f->emin ? f->emin : e2 - 1;
  double mult = kf_q_rne_(ldexp(a, f->mbits - ex)); /* integer in [0, 2^(mbits+1)] */
  if (ldexp(mult, ex - f->mbits) > f->maxv) return (uint8_t)(sign | (unsigned)overflow_code);
  int m = (int)mult;
  if (m == 2 << f->mbits) { /* rounded up into the next binade */
    m = 1 << f->mbits;
    ex++;
  }
  unsigned mag;
  if (m < (1 << f->mbits)) /* subnormal (only possible at ex == emin) or zero */
    mag = (unsigned)m;
  else
    mag = ((unsigned)(ex + f->bias) << f->mbits) | (unsigned)(m - (1 << f->mbits));
  return (uint8_t)(sign | mag);
}

double kf_mx_elem_decode(kf_mxfmt fmt, uint8_t code) {
  const mx_elem *f = elem_of(fmt);
  if (f == NULL) return NAN;
  unsigned mask = (1u << (f->nbits - 1)) - 1u;
  unsigned mag = code & mask;
  double sign = (code >> (f->nbits - 1)) & 1u ? -1.0 : 1.0;
  if (f->nan_code >= 0 && mag >= (unsigned)f->nan_code && f->inf_code < 0) return NAN; /* E4M3 */
  if (f->inf_code >= 0 && mag >= (unsigned)f->inf_code)
    return mag == (unsigned)f->inf_code ? sign * INFINITY : NAN;                  /* E5M2 */
  int efield = (int)(mag >> f->mbits);
  int mant = (int)(mag & ((1u << f->mbits) - 1u));
  if (efield == 0) return sign * ldexp((double)mant, f->emin - f->mbits);
  return sign * ldexp((double)((1 << f->mbits) + mant), efield - f->bias - f->mbits);
}

uint8_t kf_fp8_e4m3_from_f32(float x, int saturate) {
  return kf_mx_elem_encode(KF_MX_E4M3, (double)x, saturate);
}
uint8_t kf_fp8_e5m2_from_f32(float x, int saturate) {
  return kf_mx_elem_encode(KF_MX_E5M2, (double)x, saturate);
}
float kf_fp8_e4m3_to_f32(uint8_t code) { return (float)kf_mx_elem_decode(KF_MX_E4M3, code); }
float kf_fp8_e5m2_to_f32(uint8_t code) { return (float)kf_mx_elem_decode(KF_MX_E5M2, code); }
uint8_t kf_fp4_e2m1_from_f32(float x) { return kf_mx_elem_encode(KF_MX_E2M1, (double)x, 1); }
float kf_fp4_e2m1_to_f32(uint8_t code) {
  return (float)kf_mx_elem_decode(KF_MX_E2M1, (uint8_t)(code & 0xF));
}
int kf_fp4_e2m1_times2(uint8_t code) {
  return (int)(2.0 * kf_mx_elem_decode(KF_MX_E2M1, (uint8_t)(code & 0xF)));
}

float kf_e8m0_to_f32(uint8_t b) { return b == KF_E8M0_NAN ? NAN : ldexpf(1.0f, (int)b - 127); }

/* The scale exponent for a block whose largest magnitude is amax (finite, > 0). */
static int mx_scale_exp(const mx_elem *f, kf_mxscale rule, double amax) {
  int e2, e;
  frexp(amax, &e2);
  if (rule == KF_MX_SCALE_OCP) {
    e = (e2 - 1) - f->emax_elem;
  } else {
    /* Smallest e with maxv·2^e >= amax; start from the fp64 estimate and fix it exactly. */
    e = (int)ceil(log2(amax / f->maxv));
    while (ldexp(f->maxv, e) < amax) e++;
    while (ldexp(f->maxv, e - 1) >= amax) e--;
  }
  if (e < -127) e = -127;
  if (e > 127) e = 127;
  return e;
}

/* Block quantizer on fp64 inputs (fp32 inputs and fp64 residuals both come through here). */
static void mx_quantize_block_d(const mx_elem *f, kf_mxfmt fmt, kf_mxscale rule, const double *x,
                                int n, uint8_t *codes, uint8_t *scale) {
  double amax = 0.0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(x[i])) {
      *scale = KF_E8M0_NAN;
      memset(codes, 0, (size_t)n);
      return;
    }
    amax = fmax(amax, fabs(x[i]));
  }
  int e = amax > 0.0 ? mx_scale_exp(f, rule, amax) : -127;
  *scale = (uint8_t)(e + 127);
  for (int i = 0; i < n; i++) codes[i] = kf_mx_elem_encode(fmt, ldexp(x[i], -e), 1);
}

static int mx_args_ok(kf_mxfmt fmt, kf_mxscale rule) {
  return elem_of(fmt) != NULL && (rule == KF_MX_SCALE_OCP || rule == KF_MX_SCALE_CEIL);
}

int kf_mx_quantize_block(kf_mxfmt fmt, kf_mxscale rule, const float *x, int n, uint8_t *codes,
                         uint8_t *scale_e8m0) {
  if (!mx_args_ok(fmt, rule) || x == NULL || codes == NULL || scale_e8m0 == NULL || n < 1 ||
      n > KF_MX_BLOCK)
    return -1;
  double xd[KF_MX_BLOCK];
  for (int i = 0; i < n; i++) xd[i] = (double)x[i];
  mx_quantize_block_d(elem_of(fmt), fmt, rule, xd, n, codes, scale_e8m0);
  return 0;
}

/* Exact fp64 values of a block. */
static void mx_block_values(kf_mxfmt fmt, const uint8_t *codes, uint8_t scale, int n, double *v) {
  for (int i = 0; i < n; i++)
    v[i] = scale == KF_E8M0_NAN ? NAN : ldexp(kf_mx_elem_decode(fmt, codes[i]), (int)scale - 127);
}

int kf_mx_dequantize_block(kf_mxfmt fmt, const uint8_t *codes, uint8_t scale_e8m0, int n,
                           float *out) {
  if (elem_of(fmt) == NULL || codes == NULL || out == NULL || n < 1 || n > KF_MX_BLOCK) return -1;
  double v[KF_MX_BLOCK];
  mx_block_values(fmt, codes, scale_e8m0, n, v);
  for (int i = 0; i < n; i++) out[i] = (float)v[i];
  return 0;
}

int64_t kf_mx_n_blocks(int64_t n) { return n <= 0 ? 0 : (n + KF_MX_BLOCK - 1) / KF_MX_BLOCK; }

int kf_mx_quantize_row(kf_mxfmt fmt, kf_mxscale rule, const float *x, int64_t n, uint8_t *codes,
                       uint8_t *scales) {
  if (!mx_args_ok(fmt, rule) || x == NULL || codes == NULL || scales == NULL || n < 1) return -1;
  for (int64_t b = 0; b < kf_mx_n_blocks(n); b++) {
    int64_t i0 = b * KF_MX_BLOCK;
    int len = (int)(n - i0 < KF_MX_BLOCK ? n - i0 : KF_MX_BLOCK);
    kf_mx_quantize_block(fmt, rule, x + i0, len, codes + i0, scales + b);
  }
  return 0;
}

int kf_mx_dequantize_row(kf_mxfmt fmt, const uint8_t *codes, const uint8_t *scales, int64_t n,
                         float *out) {
  if (elem_of(fmt) == NULL || codes == NULL || scales == NULL || out == NULL || n < 1) return -1;
  for (int64_t b = 0; b < kf_mx_n_blocks(n); b++) {
    int64_t i0 = b * KF_MX_BLOCK;
    int len = (int)(n - i0 < KF_MX_BLOCK ? n - i0 : KF_MX_BLOCK);
    kf_mx_dequantize_block(fmt, codes + i0, scales[b], len, out + i0);
  }
  return 0;
}

size_t kf_mx_fp4_pack(const uint8_t *codes, int64_t n, uint8_t *packed) {
  if (codes == NULL || packed == NULL || n < 1) return 0;
  size_t n_bytes = (size_t)((n + 1) / 2);
  for (size_t i = 0; i < n_bytes; i++) {
    unsigned lo = codes[2 * i] & 0xFu;
    unsigned hi = (int64_t)(2 * i + 1) < n ? codes[2 * i + 1] & 0xFu : 0u;
    packed[i] = (uint8_t)(lo | (hi << 4));
  }
  return n_bytes;
}

void kf_mx_fp4_unpack(const uint8_t *packed, int64_t n, uint8_t *codes) {
  if (codes == NULL || packed == NULL) return;
  for (int64_t i = 0; i < n; i++)
    codes[i] = (uint8_t)((packed[i / 2] >> ((i % 2) * 4)) & 0xFu);
}

int kf_mx_residual_passes_codes(kf_mxfmt fmt, kf_mxscale rule, const float *x, int64_t n,
                                int passes, uint8_t *codes, uint8_t *scales, float *xhat) {
  if (!mx_args_ok(fmt, rule) || x == NULL || xhat == NULL || n < 1 || passes < 1 || passes > 8)
    return -1;
  const mx_elem *f = elem_of(fmt);
  int64_t n_blocks = kf_mx_n_blocks(n);
  for (int64_t b = 0; b < n_blocks; b++) {
    int64_t i0 = b * KF_MX_BLOCK;
    int len = (int)(n - i0 < KF_MX_BLOCK ? n - i0 : KF_MX_BLOCK);
    double resid[KF_MX_BLOCK], sum[KF_MX_BLOCK], v[KF_MX_BLOCK];
    uint8_t c[KF_MX_BLOCK], s;
    for (int i = 0; i < len; i++) {
      resid[i] = (double)x[i0 + i];
      sum[i] = 0.0;
    }
    for (int p = 0; p < passes; p++) {
      mx_quantize_block_d(f, fmt, rule, resid, len, c, &s);
      mx_block_values(fmt, c, s, len, v);
      for (int i = 0; i < len; i++) {
        sum[i] += v[i];
        resid[i] -= v[i]; /* exact: both sides sit on nearby fine grids */
      }
      if (codes) memcpy(codes + (int64_t)p * n + i0, c, (size_t)len);
      if (scales) scales[(int64_t)p * n_blocks + b] = s;
    }
    for (int i = 0; i < len; i++) xhat[i0 + i] = kf_q_f32_sat_(sum[i]);
  }
  return 0;
}

int kf_mx_residual_passes(kf_mxfmt fmt, kf_mxscale rule, const float *x, int64_t n, int passes,
                          float *xhat) {
  return kf_mx_residual_passes_codes(fmt, rule, x, n, passes, NULL, NULL, xhat);
}

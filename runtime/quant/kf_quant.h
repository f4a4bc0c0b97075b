/* kf_quant.h — kforge quantization formats (runtime/quant, library kf_quant).
 *
 * Depends on nothing else in kforge (libm only); no global state, every function is
 * thread-safe on distinct outputs.
 *
 *   kf_bf16_*    BF16 <-> FP32 (round to nearest even).
 *   kf_qweight_* INT8 / INT4 symmetric weight quantization (per channel or per K-group) and the
 *                packed layouts the CPU GEMM microkernels read (DESIGN.md §3.1).
 *   kf_fp8_*, kf_mx_*  OCP MX v1.0 element formats (E2M1, E4M3, E5M2), E8M0 block scales, block
 *                quantizers with the OCP and the non-clipping scale rule, MSD residual passes.
 *   kf_q_msd_int8  scalar reference of MSD's INT8 activation decomposition (DESIGN.md §4).
 */
#ifndef KF_QUANT_H
#define KF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* BF16                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* FP32 -> BF16 with round to nearest, ties to even. Overflow rounds to ±Inf (as RNE must),
 * ±Inf stays ±Inf, NaN stays NaN (sign and top payload kept, quiet bit forced), subnormals are
 * rounded like any other value (no flush to zero). */
uint16_t kf_bf16_from_f32(float x);
/* BF16 -> FP32, exact. */
float kf_bf16_to_f32(uint16_t b);
void kf_bf16_from_f32_n(uint16_t *dst, const float *src, size_t count);
void kf_bf16_to_f32_n(float *dst, const uint16_t *src, size_t count);

/* ------------------------------------------------------------------------------------------ */
/* Integer weights (W8 / W4) packed for the CPU GEMM kernels                                   */
/* ------------------------------------------------------------------------------------------ */

/* Logical weights W are n x k floats, row = output channel. Symmetric quantization per
 * (row, K-group): s = max|W[row, group]| / qmax (qmax = 127 for 8 bits, 7 for 4 bits), codes
 * q = round_half_even(W / s) in [-qmax, qmax]. The scale is stored as an fp32 that is never
 * below the exact amax/qmax (when fl(amax/qmax)·qmax < amax it is bumped one ulp up), so no code
 * clips and |W - q·s| <= s/2 holds for every element, also for subnormal groups.
 * An all-zero group has s = 0 and codes 0 (its weights are exactly 0; no NaN anywhere).
 *
 * Stored codes are offset binary: u = q + 2^(bits-1) (8 bit: 1..255, 4 bit: 1..15). Padding
 * positions (row >= n or col >= k) hold u = 2^(bits-1), i.e. q = 0, and their scales are 0.
 *
 * Packed layouts (u(n,k) = stored code of row n, column k; n = nb*16 + nn):
 *  N16K4, 8 bit: byte ((nb*(k_pad/4) + kb)*16 + nn)*4 + kk, k = kb*4 + kk.
 *                One 64-byte row = 16 output channels x 4 consecutive k (VNNI vpdpbusd).
 *  N16K4, 4 bit: the 8-bit N16K4 order, two consecutive kb blocks share one 64-byte row:
 *                byte ((nb*(k_pad/8) + kb/2)*16 + nn)*4 + kk, low nibble kb even, high kb odd.
 *  N16K1, 8 bit: byte (nb*k_pad + k)*16 + nn (16 channels of one k contiguous).
 *  N16K1, 4 bit: byte (nb*(k_pad/2) + k/2)*16 + nn, low nibble even k, high nibble odd k. */
typedef enum { KF_WLAYOUT_N16K4 = 0, KF_WLAYOUT_N16K1 = 1 } kf_wlayout;

typedef struct kf_qweight {
  int bits;          /* 8 or 4 */
  kf_wlayout layout;
  int64_t n, k;      /* logical sizes */
  int64_t group;     /* K-group size of the scales (multiple of 8, >= 8); as passed in. When
                        group >= k it is per channel (n_groups = 1). Group of column c: c/group */
  int64_t n_groups;  /* ceil(k / group) */
  int64_t n_pad;     /* n rounded up to a multiple of 16 */
  int64_t k_pad;     /* k rounded up to a multiple of 8 */
  int8_t *q;         /* logical codes, n x k row-major, signed (for references and tests) */
  float *scales;     /* [n_groups][n_pad], group-major; padding rows 0 */
  uint8_t *packed;   /* packed offset-binary codes, 64-byte aligned, packed_bytes long */
  size_t packed_bytes;
  int32_t *qsums;    /* [n_groups][n_pad]: sum of the signed codes q of row n over group g
                        (for kernels that correct u8 x s8 products with weight sums); padding 0 */
} kf_qweight;

/* Quantizes w (n x k, row-major) into *out (which it overwrites; free with kf_qweight_free).
 * Returns 0 on success; otherwise non-zero, *out zeroed, and a message in err (if err != NULL):
 * bits not 4/8, group not a multiple of 8 or < 8, n/k <= 0, bad layout, sizes that overflow,
 * NULL pointers, NaN/Inf in w (naming row and column), out of memory. */
int kf_qweight_quantize(kf_qweight *out, const float *w, int64_t n, int64_t k, int bits,
                        int64_t group, kf_wlayout layout, char *err, size_t errlen);

/* Builds *out from given signed codes q (n x k, each in [-2^(bits-1), 2^(bits-1)-1]) and scales
 * ([n_groups][n] group-major, finite): for weights that were quantized elsewhere (model files).
 * Same errors as kf_qweight_quantize, plus a code or scale out of range (naming where). */
int kf_qweight_from_codes(kf_qweight *out, const int8_t *q, const float *scales, int64_t n,
                          int64_t k, int bits, int64_t group, kf_wlayout layout, char *err,
                          size_t errlen);

/* Frees the arrays of *w and zeroes it; safe on a zeroed struct and on NULL. */
void kf_qweight_free(kf_qweight *w);

/* The exact weight the kernel means: q[n][k] * (double)scales[k/group][n]. 0 outside range. */
double kf_qweight_value(const kf_qweight *w, int64_t n, int64_t k);

/* Byte index in w->packed of element (n, k), for 0 <= n < n_pad, 0 <= k < k_pad (padding
 * included); *nibble_shift (if not NULL) gets 0 for 8-bit codes and for low nibbles, 4 for high
 * nibbles. Returns -1 (shift 0) for positions outside the padded range. */
int64_t kf_qweight_packed_index(const kf_qweight *w, int64_t n, int64_t k, int *nibble_shift);

/* Reads the stored offset-binary code of (n, k) from w->packed; -1 if outside the padded range. */
int kf_qweight_packed_code(const kf_qweight *w, int64_t n, int64_t k);

/* Unpacks w->packed into signed codes (n_pad x k_pad row-major, padding included), so that
 * tests can prove each layout round-trips. Returns 0. */
int kf_qweight_unpack(const kf_qweight *w, int8_t *codes);

#ifdef __cplusplus
}
#endif
#endif /* KF_QUANT_H */

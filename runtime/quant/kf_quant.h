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


/* ------------------------------------------------------------------------------------------ */
/* OCP MX v1.0 element formats, E8M0 scales, MX blocks                                         */
/* ------------------------------------------------------------------------------------------ */

/* Element formats. Codes are held one per uint8_t (E2M1 in the low nibble: S.EE.M).
 *  E2M1: bias 1, no Inf/NaN, values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}.
 *  E4M3 (OCP "fn"): bias 7, subnormals, no Inf, max ±448 (S.1111.110), NaN = S.1111.111.
 *  E5M2: bias 15, IEEE-like: subnormals, ±Inf = S.11111.00, NaN = S.11111.{01,10,11}, max ±57344.
 * Encoding rounds to nearest, ties to even (on the significand), after scaling. */
typedef enum { KF_MX_E2M1 = 0, KF_MX_E4M3 = 1, KF_MX_E5M2 = 2 } kf_mxfmt;

/* Block scale rules (X = 2^e, stored as E8M0 byte e + 127):
 *  KF_MX_SCALE_OCP:  e = floor(log2 amax) - emax_elem (emax_elem = 2, 8, 15), the OCP spec's rule;
 *                    elements above the element max after scaling saturate (clip).
 *  KF_MX_SCALE_CEIL: e = ceil(log2(amax / max_elem)), the smallest power of two that maps amax
 *                    into range: never clips (MSD's activation rule, refs/msd.md §3).
 * e is clamped to [-127, 127] (for fp32 inputs only the lower clamp can act: tiny blocks). */
typedef enum { KF_MX_SCALE_OCP = 0, KF_MX_SCALE_CEIL = 1 } kf_mxscale;

#define KF_MX_BLOCK 32     /* elements per MX block */
#define KF_E8M0_NAN 0xFF   /* E8M0 NaN: the whole block decodes to NaN */

/* Largest finite element value (6, 448, 57344); 0 for a bad fmt. */
double kf_mx_elem_max(kf_mxfmt fmt);

/* Encodes v (already divided by the block scale) into an element code, RNE. saturate != 0:
 * finite overflow and ±Inf give ±max (OFP8 "SAT" mode; the MX block quantizers use it).
 * saturate == 0: E5M2 overflow and ±Inf give ±Inf, E4M3 overflow and ±Inf give NaN (0x7F|sign),
 * E2M1 saturates anyway (it has no Inf/NaN). NaN gives the NaN code S.1111.111 / S.11111.11
 * (sign kept) for FP8, and ±0 for E2M1 (no NaN; inside MX blocks NaN lives in the scale).
 * Returns 0 for a bad fmt. */
uint8_t kf_mx_elem_encode(kf_mxfmt fmt, double v, int saturate);
/* Exact value of an element code (NaN codes give NaN, E5M2 Inf codes give ±Inf). */
double kf_mx_elem_decode(kf_mxfmt fmt, uint8_t code);

/* Scalar FP8 / FP4 conversions (thin wrappers over the element encoder). */
uint8_t kf_fp8_e4m3_from_f32(float x, int saturate);
uint8_t kf_fp8_e5m2_from_f32(float x, int saturate);
float kf_fp8_e4m3_to_f32(uint8_t code);
float kf_fp8_e5m2_to_f32(uint8_t code);
uint8_t kf_fp4_e2m1_from_f32(float x); /* saturating; NaN -> ±0 */
float kf_fp4_e2m1_to_f32(uint8_t code);
/* 2·value of an E2M1 code as a small integer in {0, ±1, ±2, ±3, ±4, ±6, ±8, ±12}: FP4 x FP4
 * block products are exact int8 dot products of these, times 2^(e_x + e_w - 2). */
int kf_fp4_e2m1_times2(uint8_t code);

/* E8M0 scale byte -> 2^(b-127) (b = 0 gives 2^-127); 0xFF gives NaN. */
float kf_e8m0_to_f32(uint8_t b);

/* Quantizes one block of n (1..32) floats: *scale_e8m0 and codes[n] (one code per byte).
 * Defined results: a block containing NaN or ±Inf gets scale 0xFF (NaN; the whole block decodes
 * to NaN, as in the spec's reference code) and codes 0; an all-zero block gets scale 0x00
 * (2^-127, the smallest) and zero codes (signs of -0 kept). Returns 0, or -1 for a bad fmt,
 * rule, n or NULL pointer. */
int kf_mx_quantize_block(kf_mxfmt fmt, kf_mxscale rule, const float *x, int n, uint8_t *codes,
                         uint8_t *scale_e8m0);
/* out[i] = value(codes[i]) · 2^(scale-127), all NaN if scale is 0xFF. Values are computed exactly
 * in fp64 then rounded to fp32 (only blocks near FLT_MAX can round to Inf). -1 on bad args. */
int kf_mx_dequantize_block(kf_mxfmt fmt, const uint8_t *codes, uint8_t scale_e8m0, int n,
                           float *out);

/* Whole rows: n elements, blocks of 32 along the row (the last one may be short),
 * codes[n], scales[kf_mx_n_blocks(n)]. */
int64_t kf_mx_n_blocks(int64_t n);
int kf_mx_quantize_row(kf_mxfmt fmt, kf_mxscale rule, const float *x, int64_t n, uint8_t *codes,
                       uint8_t *scales);
int kf_mx_dequantize_row(kf_mxfmt fmt, const uint8_t *codes, const uint8_t *scales, int64_t n,
                         float *out);

/* E2M1 packing: two codes per byte, element 2i in the low nibble, 2i+1 in the high nibble;
 * (n+1)/2 bytes; an odd n leaves the last high nibble 0. Returns the byte count. */
size_t kf_mx_fp4_pack(const uint8_t *codes, int64_t n, uint8_t *packed);
void kf_mx_fp4_unpack(const uint8_t *packed, int64_t n, uint8_t *codes);

/* MSD multi-pass decomposition of a row x[n] (blocks of 32): pass 1 quantizes x, pass p
 * quantizes the residual x - (x̂_1 + ... + x̂_{p-1}) with its own block scales (same rule).
 * Residuals are kept in fp64; xhat[n] = fp32 of Σ_p x̂_p (finite sums beyond the fp32 range,
 * possible only for |x| near FLT_MAX, give ±FLT_MAX). Blocks with NaN/Inf give NaN.
 * passes 1..8. Returns 0 or -1 on bad args. */
int kf_mx_residual_passes(kf_mxfmt fmt, kf_mxscale rule, const float *x, int64_t n, int passes,
                          float *xhat);
/* Same, and also returns each pass's codes [passes][n] and scales [passes][n_blocks] (either
 * may be NULL): what a kernel consumes. */
int kf_mx_residual_passes_codes(kf_mxfmt fmt, kf_mxscale rule, const float *x, int64_t n,
                                int passes, uint8_t *codes, uint8_t *scales, float *xhat);

/* ------------------------------------------------------------------------------------------ */
/* MSD INT8 activation decomposition (scalar reference, DESIGN.md §4)                          */
/* ------------------------------------------------------------------------------------------ */

/* x[n] ≈ Σ_p s_p·q_p with s1 = max|x|/127 (fp32, bumped one ulp up if fl(max/127)·127 < max, so
 * |x/s1| <= 127), s_{p+1} = fl(s_p/254), q_p = round_half_even(r_{p-1}/s_p) clamped to ±127,
 * r_0 = x, r_p = r_{p-1} - s_p·q_p in fp64. |x - x̂| <= s_passes/2 (= max|x|/(2·127·254^(p-1)),
 * 15.98 worst-case bits for 2 passes). xhat[n] = fp32 of the fp64 sum (±FLT_MAX if that sum
 * lies beyond the fp32 range, possible only for |x| near FLT_MAX). An all-zero row gives
 * scales 0 and codes 0; a scale that underflows to 0 zeroes the later passes.
 * Returns 0; -1 on bad args (NULL, n <= 0, passes not 1..8); -2 if x has NaN/Inf (xhat NaN). */
int kf_q_msd_int8(const float *x, int64_t n, int passes, float *xhat);
/* Same, and returns codes [passes][n] and scales [passes] (either may be NULL). */
int kf_q_msd_int8_codes(const float *x, int64_t n, int passes, int8_t *codes, float *scales,
                        float *xhat);

#ifdef __cplusplus
}
#endif
#endif /* KF_QUANT_H */

/*
** numerics.h: `kforge numerics`, the accuracy and traffic figures of MSD (DESIGN.md §4,
** refs/msd.md §3-§6) measured with the formats of runtime/quant and the data generators of
** tests/ref.
**
**  - activation quantization: SNR bits, row-wise worst-case bits and the largest per-block error
**    relative to α = 2^ceil(log2 block max), for INT8 / MXFP4 / MXFP8 / BF16 with 1-3 passes;
**  - GEMM output bits of MSD (INT8 and MXFP4 weights) against the bf16 dequant baseline and
**    single-pass MXFP8 activations;
**  - the closed-form KV-cache HBM traffic model of MSD attention (bytes per generated token).
**
** Every figure is computed here from data; the paper's figures are only printed beside them.
*/
#ifndef KF_NUMERICS_H
#define KF_NUMERICS_H

#include <stdint.h>

#include "kf.h"
#include "kf_quant.h"
#include "kf_ref.h"

/* Activation formats. MX formats use blocks of KF_MX_BLOCK along a row and a scale rule; INT8 is
** MSD's per-row decomposition (kf_q_msd_int8: s1 = max|x|/127, s_{p+1} = s_p/254); BF16 is one
** round to nearest even. */
typedef enum kf_num_fmt {
  KF_NUM_INT8 = 0,
  KF_NUM_MXFP4,      /* E2M1 elements */
  KF_NUM_MXFP8_E4M3,
  KF_NUM_MXFP8_E5M2,
  KF_NUM_BF16,
  KF_NUM_N_FMT
} kf_num_fmt;

const char *kf_num_fmt_name(kf_num_fmt fmt); /* "INT8", "MXFP4", ...; "?" when out of range */

#define KF_NUM_MAX_PASSES 3

/* Accuracy of one scheme (format, rule, pass count) on a matrix x[rows][cols]; e = x − x̂.
**   snr_bits        log2(‖x‖₂ / ‖e‖₂) over the whole matrix
**   worst_bits      −log2 max over rows of (max|e_row| / max|x_row|) (rows of zeros skipped)
**   block_err_alpha max over blocks (KF_MX_BLOCK consecutive elements of a row; the last block of
**                   a row may be shorter; all-zero blocks skipped) of max|e_block| / α,
**                   α = 2^ceil(log2 max|x_block|)
** An exact reconstruction gives +Inf bits and 0. x̂ is rebuilt in fp64 from the codes and scales
** the formats library returns (no fp32 rounding of the sum). */
typedef struct kf_num_act_stats {
  double snr_bits, worst_bits, block_err_alpha;
} kf_num_act_stats;

/* Measures 1..n_passes passes of fmt (rule: MX formats only; ignored otherwise) on x:
** stats[p-1] gets the figures of the p-pass reconstruction. n_passes is 1..KF_NUM_MAX_PASSES
** for INT8 and MXFP*, and 1 for BF16. Errors (KF_EINVAL, message names the problem): bad fmt,
** rule or pass count, non-positive or overflowing shape, NULL pointers, NaN/Inf in x (naming
** row and column). */
int kf_numerics_act(kf_ctx *ctx, kf_num_fmt fmt, kf_mxscale rule, int n_passes, const float *x,
                    int64_t rows, int64_t cols, kf_num_act_stats *stats);

/* GEMM output accuracy (refs/msd.md §5): W (N×K, N(0, 1/K)) quantized as wfmt, X (M×K, bf16
** values from act_dist), Y_ref = X · W_deq in fp64 (weight-quantization error excluded).
** Bits = −log2(‖Y − Y_ref‖₂ / ‖Y_ref‖₂) for
**   dequant      W_deq rounded to bf16, products summed in fp32 (the W8A16 / W4A16 baseline);
**   msd[p-1]     MSD with p passes: X decomposed (INT8 weights: per-row INT8 passes; MXFP4
**                weights: MXFP4 passes with the non-clipping scale), each pass × W_q as an exact
**                integer (block) dot product, scales applied and everything summed in fp32;
**   mxfp8[r]     (MXFP4 weights only; NaN otherwise) X as MXFP8 E4M3 in one pass with scale rule
**                r (0 = OCP, 1 = non-clipping), exact block products, fp32 sum. */
typedef enum kf_num_wfmt {
  KF_NUM_W_INT8_CHANNEL = 0, /* INT8, one scale per output channel */
  KF_NUM_W_INT8_G128,        /* INT8, one scale per channel and group of 128 along K */
  KF_NUM_W_MXFP4,            /* MXFP4 with the OCP scale rule (as models store it) */
  KF_NUM_N_WFMT
} kf_num_wfmt;

const char *kf_num_wfmt_name(kf_num_wfmt w); /* "INT8 per-channel", ...; "?" when out of range */

typedef struct kf_num_gemm_bits {
  double dequant;
  double msd[KF_NUM_MAX_PASSES];
  double mxfp8[2]; /* [KF_MX_SCALE_OCP], [KF_MX_SCALE_CEIL] */
} kf_num_gemm_bits;

int kf_numerics_gemm(kf_ctx *ctx, kf_num_wfmt wfmt, kf_ref_dist act_dist, int64_t M, int64_t N,
                     int64_t K, uint64_t seed, kf_num_gemm_bits *out);

/* KV-cache HBM traffic per generated token of decode attention (refs/msd.md §6, DESIGN.md §4).
** Per K (and likewise per V) of one kv head, M tokens × d channels, b_q bytes per cached element
** (1 for INT8, 17/32 for MXFP4 with its E8M0 scale):
**   baseline     (b_q + 4)·M·d   the Vector core reads the codes, writes BF16 to GM, the Cube
**                                reads the BF16 back (decoupled cores share no on-chip buffer)
**   msd_reread   p·b_q·M·d       the Cube reads the codes directly, once per pass
**   msd_stacked  b_q·M·d         the p parts stacked as rows of one GEMM: the cache is read once
** Totals are × 2 (K and V) × kv_heads × layers. qp_parts is what the model leaves out: the
** decomposed Q and P of MSD, p·b_q·g·(d + M) per kv head and layer (g query heads per kv head),
** counted once. */
typedef struct kf_num_kv_shape {
  int64_t tokens, head_dim, kv_heads, layers, q_per_kv;
} kf_num_kv_shape;

typedef struct kf_num_kv_traffic {
  double baseline, msd_reread, msd_stacked, qp_parts; /* bytes per generated token */
} kf_num_kv_traffic;

int kf_numerics_kv_traffic(kf_ctx *ctx, const kf_num_kv_shape *shape, double b_q, int passes,
                           kf_num_kv_traffic *out);

/* Options of the command (kf_numerics_parse fills them; defaults without options). */
typedef struct kf_num_opts {
  int64_t rows, cols;  /* activation matrix; GEMM K = cols, M = min(rows, 16), N = gemm_n */
  int64_t gemm_n;
  uint64_t seed;
  int attention, json, help;
  kf_num_kv_shape kv;
} kf_num_opts;

void kf_numerics_defaults(kf_num_opts *o);
/* Parses argv[1..argc-1] (argv[0] = "numerics"). KF_EINVAL with a message naming the option on
** an unknown option, a missing or malformed value, a value out of range, or an attention-only
** option without --attention. */
int kf_numerics_parse(kf_ctx *ctx, int argc, char **argv, kf_num_opts *o);
/* Runs the command and prints its tables (or JSON) to stdout. */
int kf_numerics_run(kf_ctx *ctx, const kf_num_opts *o);

/* `kforge numerics`: returns the process exit code (0, or 2 on bad arguments / errors). */
int kf_numerics_main(int argc, char **argv);

#endif

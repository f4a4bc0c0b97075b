/*
** test_numerics: `kforge numerics` (gen/numerics.c) through its library functions.
**  - the paper's figures within 0.05 bit: INT8 2-pass 15.98 (SNR on uniform data, and the
**    row-wise worst case on every distribution, never below the bound log2(127·508)), MXFP4
**    2-pass 6.57 (SNR, uniform, non-clipping scale), MXFP8 E4M3 5.23 (SNR, Gaussian);
**  - per-block error bounds of the MXFP4 passes with the non-clipping scale (α/8, α/64, α/512,
**    derived in refs/msd.md §3), and a constructed block where the OCP rule breaks α/64;
**  - GEMM output: 2-pass INT8 MSD ≥ 3 bits above the bf16 dequant baseline, 2-pass MXFP4 MSD
**    above single-pass MXFP8 activations, ≈ 8 bits more per INT8 pass;
**  - the KV traffic model: 2.5x (INT8, 2 passes, re-read), 5x (stacked), and its byte counts;
**  - bad arguments of every entry point give KF_EINVAL with a message naming the problem.
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numerics.h"

static int failures, cases;

static void check(int ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check(int ok, const char *what, const char *fmt, ...) {
  cases++;
  if (!ok) failures++;
  printf("%s %-58s ", ok ? "ok  " : "FAIL", what);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

/* bf16 activations of a distribution (as `kforge numerics` measures them). */
static float *make_x(kf_ref_dist dist, int64_t rows, int64_t cols, uint64_t seed) {
  kf_rng rng;
  kf_rng_seed(&rng, seed);
  float *x = malloc(sizeof(float) * (size_t)(rows * cols));
  if (!x || kf_ref_fill(&rng, dist, 1.0, 1, rows, cols, x)) {
    fprintf(stderr, "test_numerics: cannot make test data\n");
    exit(2);
  }
  return x;
}

static int act(kf_num_fmt fmt, kf_mxscale rule, int passes, const float *x, int64_t rows,
               int64_t cols, kf_num_act_stats *st) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  int rc = kf_numerics_act(&ctx, fmt, rule, passes, x, rows, cols, st);
  if (rc) printf("     kf_numerics_act failed: %s\n", kf_errmsg(&ctx));
  return rc;
}

enum { ROWS = 96, COLS = 4096 };

static void test_paper_figures(void) {
  const double int8_bound = log2(127.0 * 508.0); /* |e| <= M/64516: 15.977 bits */
  kf_num_act_stats st[KF_NUM_MAX_PASSES];
  char what[96];
  for (int d = 0; d < KF_REF_N_DIST; d++) {
    float *x = make_x((kf_ref_dist)d, ROWS, COLS, 11 + (uint64_t)d);
    if (act(KF_NUM_INT8, KF_MX_SCALE_CEIL, 3, x, ROWS, COLS, st) == 0) {
      snprintf(what, sizeof what, "INT8 2-pass worst-case bits, %s", kf_ref_dist_name((kf_ref_dist)d));
      check(fabs(st[1].worst_bits - 15.98) <= 0.05 && st[1].worst_bits >= int8_bound - 1e-5, what,
            "%.4f (paper ~16, bound %.4f, want within 0.05 of 15.98 and >= bound)",
            st[1].worst_bits, int8_bound);
      snprintf(what, sizeof what, "INT8 1/3-pass worst-case bits >= bound, %s",
               kf_ref_dist_name((kf_ref_dist)d));
      check(st[0].worst_bits >= log2(254.0) - 1e-5 && st[2].worst_bits >= log2(127.0 * 2 * 254 * 254) - 1e-4,
            what, "%.4f >= %.4f, %.4f >= %.4f", st[0].worst_bits, log2(254.0), st[2].worst_bits,
            log2(127.0 * 2 * 254 * 254));
      if (d == KF_REF_UNIFORM)
        check(fabs(st[1].snr_bits - 15.98) <= 0.05, "INT8 2-pass SNR bits, uniform",
              "%.4f (paper ~16, want 15.98 +- 0.05)", st[1].snr_bits);
    }
    if (act(KF_NUM_MXFP4, KF_MX_SCALE_CEIL, 3, x, ROWS, COLS, st) == 0) {
      snprintf(what, sizeof what, "MXFP4 ceil 1/2/3-pass block error <= a/8, a/64, a/512, %s",
               kf_ref_dist_name((kf_ref_dist)d));
      check(st[0].block_err_alpha <= 1.0 / 8 && st[1].block_err_alpha <= 1.0 / 64 &&
                st[2].block_err_alpha <= 1.0 / 512 && st[1].block_err_alpha > 0,
            what, "a/%.1f, a/%.1f, a/%.1f", 1 / st[0].block_err_alpha, 1 / st[1].block_err_alpha,
            1 / st[2].block_err_alpha);
      if (d == KF_REF_UNIFORM)
        check(fabs(st[1].snr_bits - 6.57) <= 0.05, "MXFP4 2-pass SNR bits, uniform, non-clipping",
              "%.4f (paper ~6.6, want 6.57 +- 0.05)", st[1].snr_bits);
    }
    if (d == KF_REF_GAUSS && act(KF_NUM_MXFP8_E4M3, KF_MX_SCALE_CEIL, 1, x, ROWS, COLS, st) == 0)
      check(fabs(st[0].snr_bits - 5.23) <= 0.05, "MXFP8 E4M3 1-pass SNR bits, gauss",
            "%.4f (paper 5.24, want 5.23 +- 0.05)", st[0].snr_bits);
    if (d == KF_REF_GAUSS) {
      /* 2-pass MXFP4 beats 1-pass MXFP8 on realistic data too (refs/msd.md §4: 6.15 vs 5.23). */
      kf_num_act_stats s4[2], s8[1];
      if (!act(KF_NUM_MXFP4, KF_MX_SCALE_CEIL, 2, x, ROWS, COLS, s4) &&
          !act(KF_NUM_MXFP8_E4M3, KF_MX_SCALE_CEIL, 1, x, ROWS, COLS, s8))
        check(s4[1].snr_bits > s8[0].snr_bits + 0.5, "MXFP4 2-pass > MXFP8 1-pass SNR, gauss",
              "%.3f vs %.3f", s4[1].snr_bits, s8[0].snr_bits);
    }
    free(x);
  }
}

/* A block with amax in (6X, 8X) under the OCP rule: 7.25 saturates to 6 (X = 1), the residual
** 1.25 gets X2 = 1/4 and 1.25/X2 = 5 rounds (ties to even) to 4: |e| = 1/4 = α/32 with α = 8.
** The non-clipping rule picks X = 2 and stays within α/64. A short row (33 elements: a full and a
** 1-element block) also checks the short last block. */
static void test_ocp_counterexample(void) {
  float x[33] = {7.25f};
  x[32] = 0.375f;
  kf_num_act_stats ocp[2], ceil_[2];
  if (act(KF_NUM_MXFP4, KF_MX_SCALE_OCP, 2, x, 1, 33, ocp) ||
      act(KF_NUM_MXFP4, KF_MX_SCALE_CEIL, 2, x, 1, 33, ceil_)) {
    check(0, "OCP counterexample", "measurement failed");
    return;
  }
  check(ocp[1].block_err_alpha > 1.0 / 64, "OCP rule breaks a/64 (block {7.25, 0, ...})",
        "max|e| = a/%.1f (a = 8; expected a/32)", 1 / ocp[1].block_err_alpha);
  check(fabs(ocp[1].block_err_alpha - 1.0 / 32) < 1e-12, "OCP 2-pass error is exactly 0.25 = a/32",
        "%.6g", ocp[1].block_err_alpha * 8);
  check(ceil_[1].block_err_alpha <= 1.0 / 64, "non-clipping rule keeps a/64 on the same block",
        "a/%.1f", ceil_[1].block_err_alpha > 0 ? 1 / ceil_[1].block_err_alpha : INFINITY);
  /* Random data as well: the OCP 2-pass worst block is far above α/64. */
  float *r = make_x(KF_REF_UNIFORM, 32, 1024, 5);
  if (!act(KF_NUM_MXFP4, KF_MX_SCALE_OCP, 2, r, 32, 1024, ocp))
    check(ocp[1].block_err_alpha > 1.0 / 64, "OCP rule breaks a/64 on uniform data", "a/%.1f",
          1 / ocp[1].block_err_alpha);
  free(r);
}

/* Exact cases: zeros, bf16 inputs through BF16, values an MX grid holds exactly. */
static void test_exact(void) {
  float z[64] = {0};
  kf_num_act_stats st[3];
  if (!act(KF_NUM_MXFP4, KF_MX_SCALE_CEIL, 3, z, 2, 32, st))
    check(isinf(st[0].snr_bits) && isinf(st[2].worst_bits) && st[2].block_err_alpha == 0,
          "all-zero input: exact (+Inf bits, no block error)", "snr %g worst %g blk %g",
          st[0].snr_bits, st[2].worst_bits, st[2].block_err_alpha);
  static const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  float g[32];
  for (int i = 0; i < 32; i++) g[i] = e2m1[i % 8] * (i & 8 ? -1.0f : 1.0f) * 0.25f; /* X = 1/4 */
  if (!act(KF_NUM_MXFP4, KF_MX_SCALE_OCP, 1, g, 1, 32, st))
    check(isinf(st[0].snr_bits) && st[0].block_err_alpha == 0, "E2M1 grid values: exact in 1 pass",
          "snr %g", st[0].snr_bits);
  float *x = make_x(KF_REF_GAUSS, 4, 100, 3); /* already bf16 */
  if (!act(KF_NUM_BF16, KF_MX_SCALE_CEIL, 1, x, 4, 100, st))
    check(isinf(st[0].snr_bits), "bf16 values through BF16: exact", "snr %g", st[0].snr_bits);
  /* INT8: each pass adds log2(254) = 7.99 worst-case bits (the decomposition, not the data). */
  if (!act(KF_NUM_INT8, KF_MX_SCALE_CEIL, 3, x, 4, 100, st))
    check(st[1].worst_bits - st[0].worst_bits > 7.0 && st[0].worst_bits >= log2(254.0) - 1e-5,
          "INT8 on K=100: bits grow ~8 per pass, pass 1 >= log2(254)", "%.3f %.3f %.3f",
          st[0].worst_bits, st[1].worst_bits, st[2].worst_bits);
  free(x);
}

static void test_gemm(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_num_gemm_bits b;
  const int64_t M = 8, N = 96, K = 4096;
  if (kf_numerics_gemm(&ctx, KF_NUM_W_INT8_CHANNEL, KF_REF_GAUSS, M, N, K, 1, &b)) {
    check(0, "gemm INT8", "%s", kf_errmsg(&ctx));
  } else {
    check(b.msd[1] >= b.dequant + 3.0, "GEMM INT8 per-channel: MSD 2p >= bf16 dequant + 3 bits",
          "%.2f vs %.2f (notes: 14.83 vs 9.24)", b.msd[1], b.dequant);
    check(b.msd[1] - b.msd[0] > 7.0 && b.msd[2] - b.msd[1] > 7.0,
          "GEMM INT8: about 8 bits per MSD pass", "%.2f %.2f %.2f", b.msd[0], b.msd[1], b.msd[2]);
    check(isnan(b.mxfp8[0]) && isnan(b.mxfp8[1]), "GEMM INT8: no MXFP8 column", "%g %g",
          b.mxfp8[0], b.mxfp8[1]);
  }
  if (kf_numerics_gemm(&ctx, KF_NUM_W_MXFP4, KF_REF_GAUSS, M, N, K, 2, &b)) {
    check(0, "gemm MXFP4", "%s", kf_errmsg(&ctx));
  } else {
    check(b.msd[1] > b.mxfp8[0] && b.msd[1] > b.mxfp8[1],
          "GEMM MXFP4: MSD 2p > MXFP8 E4M3 1p (both rules)",
          "%.2f vs ceil %.2f, OCP %.2f (notes: 6.17 vs 5.22 / 5.10)", b.msd[1], b.mxfp8[1],
          b.mxfp8[0]);
    /* MXFP4 dequantizes exactly to bf16: only fp32 summation error remains (~2^-24·sqrt(K)). */
    check(b.dequant > 18.0, "GEMM MXFP4: bf16 dequant baseline nearly exact", "%.2f bits",
          b.dequant);
  }
  /* Odd shapes: K not a multiple of 8 or 32, one row; per-group scales. */
  if (kf_numerics_gemm(&ctx, KF_NUM_W_INT8_G128, KF_REF_OUTLIER, 1, 7, 300, 3, &b))
    check(0, "gemm INT8 group-128 odd shape", "%s", kf_errmsg(&ctx));
  else
    check(b.msd[1] > b.dequant && b.msd[1] > 10.0, "GEMM INT8 g128 M=1 N=7 K=300 outlier",
          "MSD 2p %.2f, dequant %.2f", b.msd[1], b.dequant);
  if (kf_numerics_gemm(&ctx, KF_NUM_W_MXFP4, KF_REF_UNIFORM, 3, 5, 33, 4, &b))
    check(0, "gemm MXFP4 odd shape", "%s", kf_errmsg(&ctx));
  else
    check(b.msd[2] > b.msd[1] && b.msd[1] > b.msd[0] && b.msd[1] > 4.0,
          "GEMM MXFP4 M=3 N=5 K=33: bits grow with passes", "%.2f %.2f %.2f", b.msd[0], b.msd[1],
          b.msd[2]);
}

static void test_traffic(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_num_kv_shape sh = {4096, 128, 8, 32, 4};
  kf_num_kv_traffic t;
  if (kf_numerics_kv_traffic(&ctx, &sh, 1.0, 2, &t)) {
    check(0, "traffic INT8", "%s", kf_errmsg(&ctx));
    return;
  }
  check(fabs(t.baseline / t.msd_reread - 2.5) < 1e-12, "traffic INT8 2 passes, re-read: 2.5x",
        "%.4fx (paper: up to 2.5x, 5Md/2Md)", t.baseline / t.msd_reread);
  check(fabs(t.baseline / t.msd_stacked - 5.0) < 1e-12, "traffic INT8 stacked: 5x", "%.4fx",
        t.baseline / t.msd_stacked);
  double md_total = 2.0 * 4096 * 128 * 8 * 32; /* K and V elements per token */
  check(t.baseline == 5.0 * md_total && t.msd_stacked == md_total,
        "traffic INT8 bytes: 5 and 1 per cached element", "%.0f, %.0f", t.baseline,
        t.msd_stacked);
  check(t.qp_parts == 8.0 * 32 * 2 * 4 * (128 + 4096), "traffic: decomposed Q/P bytes",
        "%.0f", t.qp_parts);
  kf_num_kv_shape tiny = {3, 2, 1, 1, 1};
  if (!kf_numerics_kv_traffic(&ctx, &tiny, 1.0, 3, &t))
    check(t.baseline == 60 && t.msd_reread == 36 && t.msd_stacked == 12,
          "traffic INT8 3 passes, M=3 d=2: 60/36/12 bytes", "%g %g %g", t.baseline, t.msd_reread,
          t.msd_stacked);
  if (!kf_numerics_kv_traffic(&ctx, &sh, 17.0 / 32, 2, &t))
    check(fabs(t.baseline / t.msd_stacked - 145.0 / 17) < 1e-12 &&
              fabs(t.baseline / t.msd_reread - 145.0 / 34) < 1e-12,
          "traffic MXFP4: 8.53x stacked, 4.26x re-read", "%.3fx, %.3fx",
          t.baseline / t.msd_stacked, t.baseline / t.msd_reread);
}

/* Runs f and checks it failed with KF_EINVAL and a message containing `want`. */
#define EXPECT_ERR(call, want, what)                                                          \
  do {                                                                                        \
    kf_ctx_init(&ctx);                                                                        \
    int rc_ = (call);                                                                         \
    check(rc_ == KF_EINVAL && strstr(kf_errmsg(&ctx), want) != NULL, what, "rc %d: %s", rc_, \
          kf_errmsg(&ctx));                                                                   \
  } while (0)

static void test_errors(void) {
  kf_ctx ctx;
  kf_num_act_stats st[3];
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float bad[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  bad[7] = NAN;
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_INT8, KF_MX_SCALE_CEIL, 2, bad, 2, 4, st), "x[1][3] is NaN",
             "error: NaN in activations names row and column");
  bad[7] = -INFINITY;
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_MXFP4, KF_MX_SCALE_CEIL, 2, bad, 2, 4, st), "is Inf",
             "error: Inf in activations");
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_INT8, KF_MX_SCALE_CEIL, 4, x, 2, 4, st), "1..3 passes",
             "error: 4 INT8 passes");
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_BF16, KF_MX_SCALE_CEIL, 2, x, 2, 4, st), "BF16 takes 1..1",
             "error: 2 BF16 passes");
  EXPECT_ERR(kf_numerics_act(&ctx, (kf_num_fmt)9, KF_MX_SCALE_CEIL, 1, x, 2, 4, st), "format 9",
             "error: unknown format");
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_MXFP4, (kf_mxscale)5, 1, x, 2, 4, st), "scale rule 5",
             "error: unknown scale rule");
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_INT8, KF_MX_SCALE_CEIL, 1, x, 0, 4, st), "must be positive",
             "error: zero rows");
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_INT8, KF_MX_SCALE_CEIL, 1, x, (int64_t)1 << 40, 1 << 20,
                             st),
             "exceeds", "error: huge shape");
  EXPECT_ERR(kf_numerics_act(&ctx, KF_NUM_INT8, KF_MX_SCALE_CEIL, 1, NULL, 2, 4, st), "NULL",
             "error: NULL input");
  kf_num_gemm_bits gb;
  EXPECT_ERR(kf_numerics_gemm(&ctx, (kf_num_wfmt)7, KF_REF_GAUSS, 1, 1, 8, 1, &gb), "weight format 7",
             "error: gemm unknown weight format");
  EXPECT_ERR(kf_numerics_gemm(&ctx, KF_NUM_W_MXFP4, (kf_ref_dist)42, 1, 1, 8, 1, &gb),
             "distribution 42", "error: gemm unknown distribution");
  EXPECT_ERR(kf_numerics_gemm(&ctx, KF_NUM_W_MXFP4, KF_REF_GAUSS, 1, 1, 0, 1, &gb), "M x K",
             "error: gemm K = 0");
  kf_num_kv_shape sh = {4096, 128, 0, 32, 4};
  kf_num_kv_traffic t;
  EXPECT_ERR(kf_numerics_kv_traffic(&ctx, &sh, 1.0, 2, &t), "kv_heads = 0",
             "error: traffic kv_heads 0");
  sh.kv_heads = 8;
  EXPECT_ERR(kf_numerics_kv_traffic(&ctx, &sh, 0.0, 2, &t), "bytes per cached element",
             "error: traffic b_q 0");
  EXPECT_ERR(kf_numerics_kv_traffic(&ctx, &sh, NAN, 2, &t), "bytes per cached element",
             "error: traffic b_q NaN");
  EXPECT_ERR(kf_numerics_kv_traffic(&ctx, &sh, 1.0, 0, &t), "passes = 0", "error: traffic 0 passes");

  /* Command-line parsing. */
  static const struct {
    const char *args[6];
    const char *want;
  } bad_args[] = {
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--rows"}, "--rows needs a value"},
      {{"--rows", "abc"}, "'abc' is not a non-negative integer"},
      {{"--rows", "-5"}, "'-5' is not"},
      {{"--rows", "0"}, "out of range"},
      {{"--cols", "12x"}, "'12x'"},
      {{"--seed", "99999999999999999999999"}, "--seed"},
      {{"--rows", "65536", "--cols", "65536"}, "exceeds"},
      {{"--tokens", "10"}, "--tokens needs --attention"},
      {{"--attention", "--rows", "10"}, "--rows does not apply to --attention"},
      {{"stray"}, "unexpected argument 'stray'"},
  };
  for (size_t i = 0; i < sizeof bad_args / sizeof bad_args[0]; i++) {
    char *argv[8] = {"numerics"};
    int argc = 1;
    while (argc < 7 && bad_args[i].args[argc - 1]) {
      argv[argc] = (char *)bad_args[i].args[argc - 1];
      argc++;
    }
    kf_num_opts o;
    char what[96];
    snprintf(what, sizeof what, "error: numerics %s%s%s", argv[1], argc > 2 ? " " : "",
             argc > 2 ? argv[2] : "");
    EXPECT_ERR(kf_numerics_parse(&ctx, argc, argv, &o), bad_args[i].want, what);
    check(kf_numerics_main(argc, argv) == 2, "  ... and the command exits with status 2", "%s",
          "");
  }
  char *good[] = {"numerics", "--attention", "--tokens", "8192", "--kv-heads", "4", "--json"};
  kf_num_opts o;
  kf_ctx_init(&ctx);
  int rc = kf_numerics_parse(&ctx, 7, good, &o);
  check(rc == 0 && o.attention && o.json && o.kv.tokens == 8192 && o.kv.kv_heads == 4 &&
            o.kv.head_dim == 128,
        "parse: --attention --tokens 8192 --kv-heads 4 --json", "rc %d", rc);
  check(kf_numerics_main(7, good) == 0, "numerics --attention --json runs", "%s", "");
  /* The whole report on a small matrix (table, summary and GEMM paths; odd K), text and JSON. */
  char *small[] = {"numerics", "--rows", "5", "--cols", "200", "--gemm-n", "3", "--seed", "9"};
  check(kf_numerics_main(9, small) == 0, "numerics --rows 5 --cols 200 --gemm-n 3 runs", "%s", "");
  char *small_json[] = {"numerics", "--rows", "3", "--cols", "64", "--gemm-n", "2", "--json"};
  check(kf_numerics_main(8, small_json) == 0, "numerics --rows 3 --cols 64 --json runs", "%s", "");
  char *help[] = {"numerics", "--help"};
  check(kf_numerics_main(2, help) == 0, "numerics --help exits 0", "%s", "");
}

int main(void) {
  test_errors();
  test_traffic();
  test_exact();
  test_ocp_counterexample();
  test_paper_figures();
  test_gemm();
  printf("%d/%d cases passed\n", cases - failures, cases);
  return failures ? 1 : 0;
}

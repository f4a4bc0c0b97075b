/*
** kf_ais.h: importance weights for RL trainers whose rollouts come from a low-precision
** (e.g. FP8) copy of the policy while the trainer runs in BF16/FP32.
**
** Inputs, per batch: for every response token the log-prob under the rollout policy
** (lp_roll, returned by the sampler) and under the trainer policy (lp_train = log pi_old,
** recomputed by the trainer on the same tokens), a validity mask, and sequence boundaries as
** offsets (sequence i owns tokens offsets[i] .. offsets[i+1]-1).
**
** Notation (DESIGN.md section 7, refs/ais_lopt.md section 1.4):
**   delta_t = lp_train_t - lp_roll_t      token log-ratio (verl: old_log_prob - rollout_log_prob)
**   rho_t   = exp(delta_t)                token IS weight pi_old / pi_rollout
**   S_i     = sum_t delta_t               sequence log-ratio (valid tokens of sequence i, in order)
**   W_i     = exp(S_i)                    sequence IS weight
**   G_i     = exp(S_i / n_i)              geometric (length-normalised) sequence weight
** Every exp() is kf_ais_exp() of a log-ratio clamped to [-L, L] (L = cfg.log_clamp, default 20,
** as verl does), so nothing overflows for any finite input; comparisons with the masked-IS bounds
** are made in log space on the unclamped values. kf_ais_exp uses IEEE +,-,*,/ only (no libm), so
** the torch implementation (kforge_ais.torch) reproduces every weight bit for bit in float64.
** clampw(x) = min(max(x, cap_lower), C).
**
** Modes (weight w per valid token; invalid/rejected tokens get weight 0 and mask_out 0):
**   NONE       w = 1
**   TOKEN_TIS  w = clampw(rho_t)
**   SEQ_TIS    w = clampw(W_i)  (broadcast to the tokens of sequence i)
**   GEO_TIS    w = clampw(G_i)
**   TOKEN_MIS  keep token if lo <= rho_t <= hi: w = clampw(rho_t) (or 1 if reject_only),
**              else rejected (w = 0, mask_out = 0)
**   SEQ_MIS    keep sequence if lo <= W_i <= hi: w = clampw(W_i) (or 1 if reject_only),
**              else the whole sequence is rejected
**   GEO_MIS    as SEQ_MIS on G_i (verl's geometric rejection)
**   AIS        w = (1 - alpha) + alpha * clampw(r), r = rho_t, W_i or G_i (ais_level),
**              alpha in [0, 1] a per-batch coefficient from three diagnostics (below).
** lo, hi (mis_lower, mis_upper) bound pi_old / pi_rollout. verl's k1 rejection bounds
** "a_b" bound pi_rollout / pi_old = 1 / ratio: they correspond to lo = 1/b, hi = 1/a.
**
** AIS diagnostics (the paper's exact formulas are not public; this is our documented choice).
** A "unit" is a valid token (ais_level TOKEN) or a sequence (SEQ, GEO); u_k is the raw ratio of
** unit k (rho_t, W_i or G_i) and a_k = clampw(u_k) the weight actually applied.
**   R  weight reliability    = normalized ESS of the applied weights a_k:
**                              (sum a)^2 / (N sum a^2) = 1 / (1 + CV_pop(a)^2), in (0, 1]
**   V  variance amplification = CV_pop of the raw ratios u_k (what truncation had to remove)
**   D  divergence severity   = mean over valid tokens of |delta_t| (DIV_MEAN_ABS, default) or the
**                              k3 KL estimate mean(rho_t - 1 - delta_t) (DIV_K3); with dscale NLL
**                              (default) it is divided by (D + H), H = mean(-lp_train) the
**                              batch's mean token NLL, so D is the fraction of the policy's
**                              per-token information the mismatch perturbs (dimensionless)
**   a_D = 1 - exp(-D / tau_d), a_R = R^gamma_r, a_V = 1 / (1 + V / tau_v)
**   alpha_raw = clip(a_D * a_R * a_V, alpha_min, alpha_max)
**   alpha = ema * alpha_prev + (1 - ema) * alpha_raw   (only if a kf_ais_state with a previous
**           alpha is passed and ema > 0; otherwise alpha = alpha_raw)
** Why: R must describe the estimator that is used. With token weights a_k = min(rho_t, C) the
** reliability does not depend on the response length T; the ESS of the untruncated sequence
** weights (the previous rule) falls like exp(-T sigma^2) and drove alpha to 0 on long responses
** exactly where the mismatch matters most. Every diagnostic at ais_level TOKEN is a per-token
** mean, so alpha is length-invariant for a fixed per-token mismatch. D is scaled by the batch's
** own NLL so that tau_d is one number across models, vocabularies and training stages: the same
** |delta| matters more once the policy has sharpened (small H), which is when the paper reports
** the mismatch turning from exploration into bias.
**
** Input contract: mask values must be 0 or 1 (anything else is KF_AIS_EINVAL naming the index);
** log-probs of valid tokens must be finite, >= -KF_AIS_MAX_ABS_LOGPROB and <= cfg.logprob_tol
** (default 1e-3, which admits the rounding of a reduced-precision log_softmax of a near-certain
** token; a clearly positive value means logits or probabilities were passed).
**
** Data parallel: each rank calls kf_ais_accumulate on its own sequences (a sequence must not be
** split across ranks), all-reduces kf_ais_partial (isum with SUM over int64, dmax with MAX over
** double), then calls kf_ais_finish and kf_ais_weights. The sums are kept in exact fixed-point
** accumulators, so the merged result is bit-identical to a single rank holding all sequences, in
** any merge order. kf_ais_finish checks the merged statistics (counts, accumulator limbs) and
** refuses a partial whose integer sums overflowed; it never returns a NaN or infinite statistic
** without an error.
**
** Bad log-probs: a valid token whose lp_roll or lp_train is NaN, +-Inf, below
** -KF_AIS_MAX_ABS_LOGPROB or above logprob_tol is bad input. With nonfinite =
** KF_AIS_NONFINITE_ERROR (default) the call fails with KF_AIS_EDOMAIN and a message naming the
** array, index and sequence. With KF_AIS_NONFINITE_MASK the whole sequence holding it is dropped
** (weight 0, mask_out 0, excluded from every statistic) and counted in
** kf_ais_diag.n_seq_dropped. Tokens with mask = 0 are never read for their log-probs.
*/
#ifndef KF_AIS_H
#define KF_AIS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KF_AIS_VERSION "0.2.0"
#define KF_AIS_MAX_ABS_LOGPROB 1e6 /* log-probs below -1e6 count as non-finite input */

/* Status codes; every fallible function returns one and sets kf_ais_errmsg(ctx). */
enum {
  KF_AIS_OK = 0,
  KF_AIS_EINVAL = 1, /* bad argument: config value, offsets, sizes, NULL pointer */
  KF_AIS_EDOMAIN = 2 /* non-finite or out-of-range log-prob with the ERROR policy */
};

typedef enum {
  KF_AIS_MODE_NONE = 0,
  KF_AIS_MODE_TOKEN_TIS = 1,
  KF_AIS_MODE_SEQ_TIS = 2,
  KF_AIS_MODE_TOKEN_MIS = 3,
  KF_AIS_MODE_SEQ_MIS = 4,
  KF_AIS_MODE_AIS = 5,
  KF_AIS_MODE_GEO_TIS = 6,
  KF_AIS_MODE_GEO_MIS = 7
} kf_ais_mode;

typedef enum { KF_AIS_LEVEL_TOKEN = 0, KF_AIS_LEVEL_SEQ = 1, KF_AIS_LEVEL_GEO = 2 } kf_ais_level;
typedef enum { KF_AIS_DIV_MEAN_ABS = 0, KF_AIS_DIV_K3 = 1 } kf_ais_div;
/* How D is scaled before the gate: relative to the batch's mean token NLL (default) or not. */
typedef enum { KF_AIS_DSCALE_NLL = 0, KF_AIS_DSCALE_ABS = 1 } kf_ais_dscale;
typedef enum { KF_AIS_NONFINITE_ERROR = 0, KF_AIS_NONFINITE_MASK = 1 } kf_ais_nonfinite;

typedef struct kf_ais_config {
  kf_ais_mode mode;
  double cap;          /* C: upper truncation cap, > 0 (default 2) */
  double cap_lower;    /* lower clamp of TIS/AIS weights, 0 <= cap_lower < cap (default 0: off;
                          e.g. 0.5 with cap 5 is OpenRLHF's two-sided clamp) */
  double log_clamp;    /* L: log-ratios clamped to [-L, L] before exp, in (0, 300] (default 20) */
  double mis_lower;    /* masked IS: keep if mis_lower <= ratio <= mis_upper (default 0.5, 2) */
  double mis_upper;
  int reject_only;     /* masked IS: kept tokens get weight 1 instead of min(ratio, C) */
  kf_ais_level ais_level; /* the ratio AIS mixes in and measures R and V on: token rho_t
                             (default), sequence W_i or geometric G_i */
  kf_ais_div divergence;  /* D: mean |delta| (default) or k3 KL estimate */
  kf_ais_dscale dscale;   /* D relative to the batch's mean NLL (default) or absolute */
  double tau_d;        /* > 0 (default 0.1; in units of D, i.e. relative with dscale NLL) */
  double gamma_r;      /* >= 0 (default 1) */
  double tau_v;        /* > 0 (default 1) */
  double alpha_min;    /* 0 <= alpha_min <= alpha_max <= 1 (default 0, 1) */
  double alpha_max;
  double ema;          /* in [0, 1) (default 0: no smoothing) */
  double logprob_tol;  /* log-probs above this are bad input, in [0, 1] (default 1e-3) */
  kf_ais_nonfinite nonfinite;
} kf_ais_config;

/* Error sink; one per thread of use. Initialize with kf_ais_ctx_init. */
typedef struct kf_ais_ctx {
  char errmsg[512];
} kf_ais_ctx;

/* One batch (or one rank's share of it). mask may be NULL (all tokens valid). */
typedef struct kf_ais_batch {
  const double *lp_roll;  /* [n_tokens] log pi_rollout */
  const double *lp_train; /* [n_tokens] log pi_old (trainer precision) */
  const uint8_t *mask;    /* [n_tokens] 1 = valid response token, 0 = not, or NULL */
  const int64_t *offsets; /* [n_seqs + 1], offsets[0] = 0, non-decreasing, last = n_tokens */
  int64_t n_seqs;
  int64_t n_tokens;
} kf_ais_batch;

/* Mergeable partial statistics. Layout is fixed so it can be all-reduced as two flat arrays:
** isum (int64, SUM) and dmax (double, MAX). Counts come first in isum, then the exact
** accumulators (KF_AIS_ACC_LIMBS int64 limbs of 32 bits each, covering every double). */
#define KF_AIS_N_COUNTS 8
#define KF_AIS_N_ACCS 12
#define KF_AIS_ACC_LIMBS 68
#define KF_AIS_N_ISUM (KF_AIS_N_COUNTS + KF_AIS_N_ACCS * KF_AIS_ACC_LIMBS)
#define KF_AIS_N_DMAX 4
typedef struct kf_ais_partial {
  int64_t isum[KF_AIS_N_ISUM];
  double dmax[KF_AIS_N_DMAX];
} kf_ais_partial;

/* Per-batch diagnostics (global after merging). */
typedef struct kf_ais_diag {
  int64_t n_tokens;        /* valid tokens used in the statistics */
  int64_t n_seqs;          /* sequences with at least one valid token */
  int64_t n_seq_dropped;   /* sequences dropped for non-finite input (MASK policy) */
  int64_t n_tok_dropped;   /* valid tokens inside those sequences */
  int64_t n_tok_rejected;  /* valid tokens rejected by masked IS (token or sequence level) */
  int64_t n_seq_rejected;  /* sequences rejected by SEQ_MIS */
  double frac_tok_clipped; /* fraction of valid tokens with rho_t > C */
  double frac_seq_clipped; /* fraction of sequences with W_i > C */
  double ess_tok;          /* normalized ESS of token weights rho_t */
  double ess_seq;          /* normalized ESS of sequence weights W_i */
  double cv_tok;           /* CV (population) of rho_t */
  double cv_seq;           /* CV (population) of W_i */
  double mean_abs_delta;   /* mean |delta_t| */
  double kl_k1;            /* mean(lp_roll - lp_train): k1 estimate of KL(pi_roll || pi_train) */
  double kl_k3;            /* mean(rho_t - 1 - delta_t) with clamped delta: k3 estimate */
  double max_delta, min_delta; /* over valid tokens (unclamped) */
  double max_seq_logratio, min_seq_logratio; /* S_i over sequences (unclamped) */
  double mean_nll;         /* H = mean(-lp_train) over valid tokens */
  double ess_applied;      /* normalized ESS of the applied weights at ais_level (= R) */
  double cv_level;         /* CV of the raw ratios at ais_level (= V) */
  double reliability;      /* R */
  double divergence;       /* D (scaled as cfg.dscale says) */
  double variance_amp;     /* V */
  double a_d, a_r, a_v;    /* the three factors */
  double alpha_raw;        /* clipped product, before EMA */
  double alpha;            /* used by kf_ais_weights in AIS mode */
} kf_ais_diag;

/* EMA state carried across batches by the caller (no global state). */
typedef struct kf_ais_state {
  int has_alpha;
  double alpha;
} kf_ais_state;

void kf_ais_ctx_init(kf_ais_ctx *ctx);
const char *kf_ais_errmsg(const kf_ais_ctx *ctx);
const char *kf_ais_mode_name(kf_ais_mode mode); /* "none", "token_tis", ... or NULL */
/* Parses a mode name; returns KF_AIS_EINVAL (message lists the names) if unknown. */
int kf_ais_mode_parse(kf_ais_ctx *ctx, const char *name, kf_ais_mode *out);

void kf_ais_config_default(kf_ais_config *cfg, kf_ais_mode mode);
/* Checks every field; the message names the field and its value. */
int kf_ais_config_check(kf_ais_ctx *ctx, const kf_ais_config *cfg);

void kf_ais_state_init(kf_ais_state *state);
void kf_ais_partial_init(kf_ais_partial *p);
/* Adds the batch's statistics to p (p must be initialized). */
int kf_ais_accumulate(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *batch,
                      kf_ais_partial *p);
/* dst += src (counts and accumulators summed, maxima maxed). Same as an all-reduce. Fails with
** KF_AIS_EINVAL (dst unchanged) if an integer sum would overflow. */
int kf_ais_partial_merge(kf_ais_ctx *ctx, kf_ais_partial *dst, const kf_ais_partial *src);
/* Turns merged statistics into diagnostics and alpha. state may be NULL; if given, its alpha is
** used for the EMA and then updated. Fails with KF_AIS_EINVAL if p is corrupted or its integer
** sums overflowed (negative or inconsistent counts, accumulator limbs out of range), and with
** KF_AIS_EDOMAIN if a statistic is not finite. */
int kf_ais_finish(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_partial *p,
                  kf_ais_state *state, kf_ais_diag *diag);
/* Per-token weights of the batch given the finished diagnostics (diag->alpha is used in AIS
** mode; diag may be NULL in the other modes). weights[n_tokens] must not be NULL; mask_out may
** be NULL. On an error return the outputs are partly written and must not be used. */
int kf_ais_weights(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *batch,
                   const kf_ais_diag *diag, double *weights, uint8_t *mask_out);
/* Single rank: accumulate + finish + weights. */
int kf_ais_compute(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *batch,
                   kf_ais_state *state, double *weights, uint8_t *mask_out, kf_ais_diag *diag);

/* Exact accumulator over doubles (exposed for tests and for callers that want exact sums):
** acc has KF_AIS_ACC_LIMBS limbs (zero them to start); add is exact for every finite double and
** allows 2^30 additions between normalizations; value() returns the correctly rounded sum (+-inf
** if it exceeds the double range; a subnormal result may be rounded twice). */
void kf_ais_acc_add(int64_t *acc, double x);
void kf_ais_acc_normalize(int64_t *acc);
double kf_ais_acc_value(const int64_t *acc);

/* exp(x) for |x| <= 300 from IEEE +,-,* only (Cody-Waite reduction, degree-13 Taylor
** polynomial in Horner form, exact scaling by 2^n); error below 2 ulp (tested). The torch
** implementation evaluates the same operations, so weights agree bit for bit in float64. */
double kf_ais_exp(double x);

/* sizeof(kf_ais_partial) and sizeof(kf_ais_diag), for bindings that check their layout. */
size_t kf_ais_sizeof_partial(void);
size_t kf_ais_sizeof_diag(void);
size_t kf_ais_sizeof_config(void);

#ifdef __cplusplus
}
#endif
#endif

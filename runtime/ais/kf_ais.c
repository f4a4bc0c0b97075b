/*
** kf_ais.c: importance weights and AIS diagnostics for low-precision rollouts (see kf_ais.h).
*/
#include "kf_ais.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Indices into kf_ais_partial.isum (counts) ... */
enum {
  C_TOK = 0,     /* valid tokens */
  C_SEQ,         /* sequences with >= 1 valid token */
  C_SEQ_DROP,    /* sequences dropped for non-finite input */
  C_TOK_DROP,    /* valid tokens in dropped sequences */
  C_TOK_REJ,     /* tokens rejected by masked IS */
  C_SEQ_REJ,     /* sequences rejected by SEQ_MIS */
  C_TOK_CLIP,    /* tokens with rho > C */
  C_SEQ_CLIP     /* sequences with W > C */
};
/* ... the exact accumulators (each KF_AIS_ACC_LIMBS limbs after the counts) ... */
enum {
  A_ABS_DELTA = 0, /* sum |delta| */
  A_DELTA,         /* sum delta */
  A_K3,            /* sum rho - 1 - delta_c */
  A_RHO_M1,        /* sum (rho - 1) */
  A_RHO_M1_SQ,     /* sum (rho - 1)^2 */
  A_W_M1,          /* sum (W - 1) */
  A_W_M1_SQ,       /* sum (W - 1)^2 */
  A_NLL,           /* sum -lp_train */
  A_APP_M1,        /* sum (a - 1) over units of ais_level, a = clampw(u) the applied weight */
  A_APP_M1_SQ,     /* sum (a - 1)^2 */
  A_LVL_M1,        /* sum (u - 1), u the raw ratio of the unit */
  A_LVL_M1_SQ      /* sum (u - 1)^2 */
};
/* ... and the maxima in dmax. */
enum { M_DELTA = 0, M_NEG_DELTA, M_SEQ, M_NEG_SEQ };

_Static_assert(KF_AIS_N_COUNTS == C_SEQ_CLIP + 1, "count layout");
_Static_assert(KF_AIS_N_ACCS == A_LVL_M1_SQ + 1, "accumulator layout");
_Static_assert(KF_AIS_N_DMAX == M_NEG_SEQ + 1, "max layout");

static int64_t *acc_at(kf_ais_partial *p, int which) {
  return p->isum + KF_AIS_N_COUNTS + (size_t)which * KF_AIS_ACC_LIMBS;
}
static const int64_t *acc_at_const(const kf_ais_partial *p, int which) {
  return p->isum + KF_AIS_N_COUNTS + (size_t)which * KF_AIS_ACC_LIMBS;
}

__attribute__((format(printf, 3, 4))) static int set_err(kf_ais_ctx *ctx, int code,
                                                         const char *fmt, ...) {
  if (ctx) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void kf_ais_ctx_init(kf_ais_ctx *ctx) { ctx->errmsg[0] = '\0'; }
const char *kf_ais_errmsg(const kf_ais_ctx *ctx) { return ctx->errmsg; }

static const char *const mode_names[] = {"none",    "token_tis", "seq_tis", "token_mis",
                                         "seq_mis", "ais",       "geo_tis", "geo_mis"};
#define N_MODES ((int)(sizeof mode_names / sizeof mode_names[0]))

const char *kf_ais_mode_name(kf_ais_mode mode) {
  if ((int)mode < 0 || (int)mode >= N_MODES) return NULL;
  return mode_names[mode];
}

int kf_ais_mode_parse(kf_ais_ctx *ctx, const char *name, kf_ais_mode *out) {
  if (!name || !out) return set_err(ctx, KF_AIS_EINVAL, "kf_ais_mode_parse: NULL argument");
  for (int i = 0; i < N_MODES; i++) {
    if (strcmp(name, mode_names[i]) == 0) {
      *out = (kf_ais_mode)i;
      return KF_AIS_OK;
    }
  }
  return set_err(ctx, KF_AIS_EINVAL,
                 "unknown AIS mode '%s' (expected none, token_tis, seq_tis, geo_tis, token_mis, "
                 "seq_mis, geo_mis or ais)",
                 name);
}

void kf_ais_config_default(kf_ais_config *cfg, kf_ais_mode mode) {
  memset(cfg, 0, sizeof *cfg);
  cfg->mode = mode;
  cfg->cap = 2.0;
  cfg->cap_lower = 0.0;
  cfg->log_clamp = 20.0;
  cfg->mis_lower = 0.5;
  cfg->mis_upper = 2.0;
  cfg->reject_only = 0;
  cfg->ais_level = KF_AIS_LEVEL_TOKEN;
  cfg->divergence = KF_AIS_DIV_MEAN_ABS;
  cfg->dscale = KF_AIS_DSCALE_NLL;
  cfg->tau_d = 0.1;
  cfg->gamma_r = 1.0;
  cfg->tau_v = 1.0;
  cfg->alpha_min = 0.0;
  cfg->alpha_max = 1.0;
  cfg->ema = 0.0;
  cfg->logprob_tol = 1e-3;
  cfg->nonfinite = KF_AIS_NONFINITE_ERROR;
}

void kf_ais_state_init(kf_ais_state *state) {
  state->has_alpha = 0;
  state->alpha = 0.0;
}

int kf_ais_config_check(kf_ais_ctx *ctx, const kf_ais_config *cfg) {
  if (!cfg) return set_err(ctx, KF_AIS_EINVAL, "AIS config: NULL pointer");
  if (!kf_ais_mode_name(cfg->mode))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: mode=%d is not a kf_ais_mode (0..%d)",
                   (int)cfg->mode, N_MODES - 1);
  if (!(cfg->log_clamp > 0.0 && cfg->log_clamp <= 300.0))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: log_clamp=%g must be in (0, 300]",
                   cfg->log_clamp);
  if (!(cfg->cap > 0.0 && isfinite(cfg->cap)))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: cap=%g must be finite and > 0", cfg->cap);
  if (log(cfg->cap) > cfg->log_clamp)
    return set_err(ctx, KF_AIS_EINVAL,
                   "AIS config: cap=%g exceeds exp(log_clamp)=exp(%g); raise log_clamp",
                   cfg->cap, cfg->log_clamp);
  if (!(cfg->mis_lower >= 0.0 && cfg->mis_lower < cfg->mis_upper && !isnan(cfg->mis_upper)))
    return set_err(ctx, KF_AIS_EINVAL,
                   "AIS config: masked-IS bounds mis_lower=%g, mis_upper=%g must satisfy "
                   "0 <= mis_lower < mis_upper",
                   cfg->mis_lower, cfg->mis_upper);
  if (cfg->reject_only != 0 && cfg->reject_only != 1)
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: reject_only=%d must be 0 or 1",
                   cfg->reject_only);
  if (!(cfg->cap_lower >= 0.0 && cfg->cap_lower < cfg->cap))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: cap_lower=%g must satisfy 0 <= cap_lower < cap=%g",
                   cfg->cap_lower, cfg->cap);
  if ((int)cfg->ais_level < KF_AIS_LEVEL_TOKEN || (int)cfg->ais_level > KF_AIS_LEVEL_GEO)
    return set_err(ctx, KF_AIS_EINVAL,
                   "AIS config: ais_level=%d must be 0 (token), 1 (seq) or 2 (geo)",
                   (int)cfg->ais_level);
  if (cfg->dscale != KF_AIS_DSCALE_NLL && cfg->dscale != KF_AIS_DSCALE_ABS)
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: dscale=%d must be 0 (nll) or 1 (abs)",
                   (int)cfg->dscale);
  if (!(cfg->logprob_tol >= 0.0 && cfg->logprob_tol <= 1.0))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: logprob_tol=%g must be in [0, 1]",
                   cfg->logprob_tol);
  if (cfg->divergence != KF_AIS_DIV_MEAN_ABS && cfg->divergence != KF_AIS_DIV_K3)
    return set_err(ctx, KF_AIS_EINVAL,
                   "AIS config: divergence=%d must be 0 (mean |delta|) or 1 (k3)",
                   (int)cfg->divergence);
  if (!(cfg->tau_d > 0.0 && isfinite(cfg->tau_d)))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: tau_d=%g must be finite and > 0",
                   cfg->tau_d);
  if (!(cfg->gamma_r >= 0.0 && isfinite(cfg->gamma_r)))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: gamma_r=%g must be finite and >= 0",
                   cfg->gamma_r);
  if (!(cfg->tau_v > 0.0 && isfinite(cfg->tau_v)))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: tau_v=%g must be finite and > 0",
                   cfg->tau_v);
  if (!(cfg->alpha_min >= 0.0 && cfg->alpha_min <= cfg->alpha_max && cfg->alpha_max <= 1.0))
    return set_err(ctx, KF_AIS_EINVAL,
                   "AIS config: alpha_min=%g, alpha_max=%g must satisfy 0 <= min <= max <= 1",
                   cfg->alpha_min, cfg->alpha_max);
  if (!(cfg->ema >= 0.0 && cfg->ema < 1.0))
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: ema=%g must be in [0, 1)", cfg->ema);
  if (cfg->nonfinite != KF_AIS_NONFINITE_ERROR && cfg->nonfinite != KF_AIS_NONFINITE_MASK)
    return set_err(ctx, KF_AIS_EINVAL, "AIS config: nonfinite=%d must be 0 (error) or 1 (mask)",
                   (int)cfg->nonfinite);
  return KF_AIS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Exact accumulator. A finite double is m * 2^e with |m| < 2^53 and e >= -1074. Bit position  */
/* b of the sum (weight 2^(b - 1074)) lives in limb b / 32 at bit b % 32. Every limb holds a    */
/* signed int64; adding one double touches three limbs with values below 2^32 in magnitude, so  */
/* a limb can take 2^30 additions before a normalization (carry propagation) is due. After a    */
/* normalization limbs 0..n-2 are in [0, 2^32) and the top limb carries the sign. Integer       */
/* addition is associative, so merging in any order gives the same limbs' value.               */

#define LIMB_BITS 32
#define LIMB_MASK 0xffffffffull
#define ACC_BASE_EXP (-1074)

void kf_ais_acc_add(int64_t *acc, double x) {
  if (x == 0.0 || !isfinite(x)) return; /* callers pass finite values only */
  int e2;
  double f = frexp(x, &e2); /* x = f * 2^e2, 0.5 <= |f| < 1 */
  int64_t m = (int64_t)ldexp(f, 53); /* exact: |m| < 2^53 */
  int pos = e2 - 53 - ACC_BASE_EXP;
  if (pos < 0) { /* subnormal: the low bits of m are zero, the shift is exact */
    m /= (int64_t)1 << -pos;
    pos = 0;
  }
  int sign = m < 0 ? -1 : 1;
  uint64_t a = (uint64_t)(m < 0 ? -m : m);
  int limb = pos / LIMB_BITS, off = pos % LIMB_BITS;
  uint64_t p0 = (a << off) & LIMB_MASK;
  uint64_t rest = a >> (LIMB_BITS - off); /* off = 0 shifts by 32, fine for uint64 */
  uint64_t p1 = rest & LIMB_MASK, p2 = rest >> LIMB_BITS;
  acc[limb] += sign * (int64_t)p0;
  if (limb + 1 < KF_AIS_ACC_LIMBS) acc[limb + 1] += sign * (int64_t)p1;
  if (limb + 2 < KF_AIS_ACC_LIMBS) acc[limb + 2] += sign * (int64_t)p2;
}

void kf_ais_acc_normalize(int64_t *acc) {
  for (int k = 0; k < KF_AIS_ACC_LIMBS - 1; k++) {
    int64_t low = (int64_t)((uint64_t)acc[k] & LIMB_MASK);
    int64_t carry = (acc[k] - low) / ((int64_t)1 << LIMB_BITS); /* exact division */
    acc[k] = low;
    acc[k + 1] += carry;
  }
}

double kf_ais_acc_value(const int64_t *acc_in) {
  int64_t acc[KF_AIS_ACC_LIMBS];
  memcpy(acc, acc_in, sizeof acc);
  kf_ais_acc_normalize(acc);
  double sign = 1.0;
  if (acc[KF_AIS_ACC_LIMBS - 1] < 0) { /* negate the whole number, renormalize */
    for (int k = 0; k < KF_AIS_ACC_LIMBS; k++) acc[k] = -acc[k];
    kf_ais_acc_normalize(acc);
    sign = -1.0;
  }
  int top = KF_AIS_ACC_LIMBS - 1;
  /* The top limb covers bits >= 2^(32*67 - 1074) = 2^1070 > DBL_MAX. */
  if (acc[top] != 0) return sign * HUGE_VAL;
  int h = top - 1;
  while (h >= 0 && acc[h] == 0) h--;
  if (h < 0) return 0.0;
  /* 96-bit window v = acc[h]:acc[h-1]:acc[h-2], sticky = anything below it. */
  unsigned __int128 v = (unsigned __int128)(uint64_t)acc[h] << 64;
  if (h >= 1) v |= (unsigned __int128)(uint64_t)acc[h - 1] << 32;
  if (h >= 2) v |= (uint64_t)acc[h - 2];
  int sticky = 0;
  for (int k = h - 3; k >= 0 && !sticky; k--) sticky = acc[k] != 0;
  int low_exp = (h - 2) * LIMB_BITS + ACC_BASE_EXP; /* weight of bit 0 of v */
  int nbits = 128;
  while (!((v >> (nbits - 1)) & 1)) nbits--;
  int shift = nbits - 53; /* >= 65 - 53 since acc[h] >= 1 */
  uint64_t mant = (uint64_t)(v >> shift);
  unsigned __int128 rem = v & (((unsigned __int128)1 << shift) - 1);
  unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
  if (rem > half || (rem == half && (sticky || (mant & 1)))) mant++; /* round half to even */
  return sign * ldexp((double)mant, low_exp + shift);
}

/* ---------------------------------------------------------------------------------------- */

size_t kf_ais_sizeof_partial(void) { return sizeof(kf_ais_partial); }
size_t kf_ais_sizeof_diag(void) { return sizeof(kf_ais_diag); }
size_t kf_ais_sizeof_config(void) { return sizeof(kf_ais_config); }

void kf_ais_partial_init(kf_ais_partial *p) {
  memset(p->isum, 0, sizeof p->isum);
  for (int k = 0; k < KF_AIS_N_DMAX; k++) p->dmax[k] = -HUGE_VAL;
}

int kf_ais_partial_merge(kf_ais_ctx *ctx, kf_ais_partial *dst, const kf_ais_partial *src) {
  if (!dst || !src) return set_err(ctx, KF_AIS_EINVAL, "kf_ais_partial_merge: NULL argument");
  kf_ais_partial sum;
  for (int k = 0; k < KF_AIS_N_ISUM; k++)
    if (__builtin_add_overflow(dst->isum[k], src->isum[k], &sum.isum[k]))
      return set_err(ctx, KF_AIS_EINVAL,
                     "kf_ais_partial_merge: isum[%d] = %lld + %lld overflows int64 (corrupted "
                     "or too many merged statistics)",
                     k, (long long)dst->isum[k], (long long)src->isum[k]);
  for (int a = 0; a < KF_AIS_N_ACCS; a++) {
    const int64_t *limb = sum.isum + KF_AIS_N_COUNTS + (size_t)a * KF_AIS_ACC_LIMBS;
    for (int k = 0; k < KF_AIS_ACC_LIMBS; k++)
      if (limb[k] > ((int64_t)1 << 62) || limb[k] < -((int64_t)1 << 62))
        return set_err(ctx, KF_AIS_EINVAL,
                       "kf_ais_partial_merge: accumulator %d limb %d = %lld out of range "
                       "(corrupted statistics)",
                       a, k, (long long)limb[k]);
    kf_ais_acc_normalize(acc_at(&sum, a));
  }
  for (int k = 0; k < KF_AIS_N_DMAX; k++)
    sum.dmax[k] = src->dmax[k] > dst->dmax[k] ? src->dmax[k] : dst->dmax[k];
  *dst = sum;
  return KF_AIS_OK;
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* ---------------------------------------------------------------------------------------- */
/* kf_ais_exp: n = round-half-even(x / ln 2); r = (x - n ln2_hi) - n ln2_lo (ln2_hi has 21
** trailing zero bits, so n ln2_hi and the first subtraction are exact for |n| < 2^11);
** exp(r) for |r| <= 0.35 by the Taylor polynomial of degree 13 (truncation < 2^-60) in Horner
** form; times 2^n built from its bits (exact for normal results). Only correctly rounded IEEE
** operations, each in a fixed order; kf_ais.c is compiled with -ffp-contract=off so that no
** multiply-add is fused. kforge_ais/torch.py's _exp performs the same operations. */
#define KF_LN2_HI 6.93147180369123816490e-01 /* 0x3fe62e42fee00000 */
#define KF_LN2_LO 1.90821492927058770002e-10 /* 0x3dea39ef35793c76 */
#define KF_INV_LN2 1.44269504088896338700e+00

double kf_ais_exp(double x) {
  static const double inv_fact[14] = {
      1.0,           1.0,           1.0 / 2,          1.0 / 6,          1.0 / 24,
      1.0 / 120,     1.0 / 720,     1.0 / 5040,       1.0 / 40320,      1.0 / 362880,
      1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
  if (isnan(x)) return x;
  x = clampd(x, -300.0, 300.0);
  double n = nearbyint(x * KF_INV_LN2);
  double r = (x - n * KF_LN2_HI) - n * KF_LN2_LO;
  double p = inv_fact[13];
  for (int k = 12; k >= 0; k--) p = p * r + inv_fact[k];
  union {
    uint64_t u;
    double d;
  } scale;
  scale.u = (uint64_t)((int64_t)n + 1023) << 52;
  return p * scale.d;
}

/* Checks the batch's shape: pointers, sizes, offsets, mask values. */
static int check_batch(kf_ais_ctx *ctx, const kf_ais_batch *b) {
  if (!b) return set_err(ctx, KF_AIS_EINVAL, "AIS batch: NULL pointer");
  if (b->n_tokens < 0 || b->n_seqs < 0)
    return set_err(ctx, KF_AIS_EINVAL, "AIS batch: n_tokens=%lld, n_seqs=%lld must be >= 0",
                   (long long)b->n_tokens, (long long)b->n_seqs);
  if (!b->offsets) return set_err(ctx, KF_AIS_EINVAL, "AIS batch: offsets is NULL");
  if (b->n_tokens > 0 && (!b->lp_roll || !b->lp_train))
    return set_err(ctx, KF_AIS_EINVAL, "AIS batch: lp_roll or lp_train is NULL with n_tokens=%lld",
                   (long long)b->n_tokens);
  if (b->offsets[0] != 0)
    return set_err(ctx, KF_AIS_EINVAL, "AIS batch: offsets[0]=%lld must be 0",
                   (long long)b->offsets[0]);
  for (int64_t i = 0; i < b->n_seqs; i++) {
    if (b->offsets[i + 1] < b->offsets[i])
      return set_err(ctx, KF_AIS_EINVAL,
                     "AIS batch: offsets decrease at sequence %lld (offsets[%lld]=%lld > "
                     "offsets[%lld]=%lld)",
                     (long long)i, (long long)i, (long long)b->offsets[i], (long long)(i + 1),
                     (long long)b->offsets[i + 1]);
  }
  if (b->offsets[b->n_seqs] != b->n_tokens)
    return set_err(ctx, KF_AIS_EINVAL,
                   "AIS batch: offsets[n_seqs=%lld]=%lld must equal n_tokens=%lld",
                   (long long)b->n_seqs, (long long)b->offsets[b->n_seqs],
                   (long long)b->n_tokens);
  if (b->mask) {
    for (int64_t t = 0; t < b->n_tokens; t++)
      if (b->mask[t] > 1)
        return set_err(ctx, KF_AIS_EINVAL, "AIS batch: mask[%lld] = %u must be 0 or 1",
                       (long long)t, (unsigned)b->mask[t]);
  }
  return KF_AIS_OK;
}

/* 0 if x is a usable log-prob, else 1 (non-finite or too negative) or 2 (above logprob_tol). */
static int bad_logprob(const kf_ais_config *cfg, double x) {
  if (!(x >= -KF_AIS_MAX_ABS_LOGPROB && x <= KF_AIS_MAX_ABS_LOGPROB)) return 1;
  return x > cfg->logprob_tol ? 2 : 0;
}

/* Scans sequence i. Returns 1 if it holds a bad log-prob on a valid token (and, with the ERROR
** policy, sets the error message and *status). Otherwise computes its log-ratio S_i (summed in
** token order) and valid token count. */
static int scan_seq(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *b, int64_t i,
                    double *s_out, int64_t *n_valid, int *status) {
  double s = 0.0;
  int64_t n = 0;
  *status = KF_AIS_OK;
  for (int64_t t = b->offsets[i]; t < b->offsets[i + 1]; t++) {
    if (b->mask && !b->mask[t]) continue;
    double lr = b->lp_roll[t], lt = b->lp_train[t];
    int bad_r = bad_logprob(cfg, lr), bad_t = bad_logprob(cfg, lt);
    if (bad_r || bad_t) {
      if (cfg->nonfinite == KF_AIS_NONFINITE_ERROR) {
        int why = bad_r ? bad_r : bad_t;
        const char *name = bad_r ? "lp_roll" : "lp_train";
        double val = bad_r ? lr : lt;
        if (why == 1)
          *status = set_err(ctx, KF_AIS_EDOMAIN,
                            "AIS batch: %s[%lld] = %g (sequence %lld, token %lld) is not a "
                            "finite log-prob >= -%g (set nonfinite=mask to drop such sequences)",
                            name, (long long)t, val, (long long)i,
                            (long long)(t - b->offsets[i]), KF_AIS_MAX_ABS_LOGPROB);
        else
          *status = set_err(ctx, KF_AIS_EDOMAIN,
                            "AIS batch: %s[%lld] = %g (sequence %lld, token %lld) is a positive "
                            "log-prob beyond the tolerance logprob_tol=%g (logits or "
                            "probabilities passed as log-probs?)",
                            name, (long long)t, val, (long long)i,
                            (long long)(t - b->offsets[i]), cfg->logprob_tol);
      }
      return 1;
    }
    s += lt - lr;
    n++;
  }
  *s_out = s;
  *n_valid = n;
  return 0;
}

static int64_t count_valid(const kf_ais_batch *b, int64_t i) {
  int64_t n = 0;
  for (int64_t t = b->offsets[i]; t < b->offsets[i + 1]; t++) n += !b->mask || b->mask[t];
  return n;
}

static double clampw(const kf_ais_config *cfg, double w) {
  return clampd(w, cfg->cap_lower, cfg->cap);
}

/* Per-sequence ratios: raw sequence weight W_i and geometric G_i, each exp of the clamped
** log-ratio. */
typedef struct {
  double s, w, g; /* S_i, W_i, G_i */
} seq_ratio;

static seq_ratio seq_ratios(const kf_ais_config *cfg, double s, int64_t n_valid) {
  const double L = cfg->log_clamp;
  seq_ratio r = {s, kf_ais_exp(clampd(s, -L, L)), 1.0};
  if (n_valid > 0) r.g = kf_ais_exp(clampd(s / (double)n_valid, -L, L));
  return r;
}

static void acc_unit(kf_ais_partial *p, const kf_ais_config *cfg, double u) {
  double a = clampw(cfg, u);
  kf_ais_acc_add(acc_at(p, A_APP_M1), a - 1.0);
  kf_ais_acc_add(acc_at(p, A_APP_M1_SQ), (a - 1.0) * (a - 1.0));
  kf_ais_acc_add(acc_at(p, A_LVL_M1), u - 1.0);
  kf_ais_acc_add(acc_at(p, A_LVL_M1_SQ), (u - 1.0) * (u - 1.0));
}

int kf_ais_accumulate(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *b,
                      kf_ais_partial *p) {
  int rc = kf_ais_config_check(ctx, cfg);
  if (rc) return rc;
  if ((rc = check_batch(ctx, b))) return rc;
  if (!p) return set_err(ctx, KF_AIS_EINVAL, "kf_ais_accumulate: partial is NULL");
  kf_ais_partial loc; /* filled fully, merged only on success */
  kf_ais_partial_init(&loc);
  const double L = cfg->log_clamp;
  const double log_lo = log(cfg->mis_lower), log_hi = log(cfg->mis_upper);
  int64_t since_norm = 0;
  for (int64_t i = 0; i < b->n_seqs; i++) {
    double s;
    int64_t n_valid;
    int status;
    if (scan_seq(ctx, cfg, b, i, &s, &n_valid, &status)) {
      if (status) return status;
      loc.isum[C_SEQ_DROP]++;
      loc.isum[C_TOK_DROP] += count_valid(b, i);
      continue;
    }
    if (n_valid == 0) continue;
    loc.isum[C_SEQ]++;
    loc.isum[C_TOK] += n_valid;
    seq_ratio sr = seq_ratios(cfg, s, n_valid);
    if (sr.w > cfg->cap) loc.isum[C_SEQ_CLIP]++;
    double w_m1 = expm1(clampd(s, -L, L));
    kf_ais_acc_add(acc_at(&loc, A_W_M1), w_m1);
    kf_ais_acc_add(acc_at(&loc, A_W_M1_SQ), w_m1 * w_m1);
    if (cfg->ais_level == KF_AIS_LEVEL_SEQ) acc_unit(&loc, cfg, sr.w);
    if (cfg->ais_level == KF_AIS_LEVEL_GEO) acc_unit(&loc, cfg, sr.g);
    if (s > loc.dmax[M_SEQ]) loc.dmax[M_SEQ] = s;
    if (-s > loc.dmax[M_NEG_SEQ]) loc.dmax[M_NEG_SEQ] = -s;
    double s_mean = s / (double)n_valid;
    int seq_rejected = (cfg->mode == KF_AIS_MODE_SEQ_MIS && !(s >= log_lo && s <= log_hi)) ||
                       (cfg->mode == KF_AIS_MODE_GEO_MIS && !(s_mean >= log_lo && s_mean <= log_hi));
    if (seq_rejected) {
      loc.isum[C_SEQ_REJ]++;
      loc.isum[C_TOK_REJ] += n_valid;
    }
    for (int64_t t = b->offsets[i]; t < b->offsets[i + 1]; t++) {
      if (b->mask && !b->mask[t]) continue;
      double d = b->lp_train[t] - b->lp_roll[t];
      double dc = clampd(d, -L, L);
      double rho_m1 = expm1(dc);
      kf_ais_acc_add(acc_at(&loc, A_ABS_DELTA), fabs(d));
      kf_ais_acc_add(acc_at(&loc, A_DELTA), d);
      kf_ais_acc_add(acc_at(&loc, A_K3), rho_m1 - dc);
      kf_ais_acc_add(acc_at(&loc, A_RHO_M1), rho_m1);
      kf_ais_acc_add(acc_at(&loc, A_RHO_M1_SQ), rho_m1 * rho_m1);
      kf_ais_acc_add(acc_at(&loc, A_NLL), -b->lp_train[t]);
      double rho = kf_ais_exp(dc);
      if (cfg->ais_level == KF_AIS_LEVEL_TOKEN) acc_unit(&loc, cfg, rho);
      if (rho > cfg->cap) loc.isum[C_TOK_CLIP]++;
      if (cfg->mode == KF_AIS_MODE_TOKEN_MIS && !(d >= log_lo && d <= log_hi))
        loc.isum[C_TOK_REJ]++;
      if (d > loc.dmax[M_DELTA]) loc.dmax[M_DELTA] = d;
      if (-d > loc.dmax[M_NEG_DELTA]) loc.dmax[M_NEG_DELTA] = -d;
      if (++since_norm >= ((int64_t)1 << 28)) {
        for (int a = 0; a < KF_AIS_N_ACCS; a++) kf_ais_acc_normalize(acc_at(&loc, a));
        since_norm = 0;
      }
    }
  }
  for (int a = 0; a < KF_AIS_N_ACCS; a++) kf_ais_acc_normalize(acc_at(&loc, a));
  return kf_ais_partial_merge(ctx, p, &loc);
}

/* Population CV of weights w = 1 + x from n, sum x, sum x^2 (shifted by 1 so that weights near
** 1 lose no accuracy to cancellation). */
static double cv_from_shifted(double n, double sx, double sxx) {
  double mean_x = sx / n;
  double mean = 1.0 + mean_x;
  double var = sxx / n - mean_x * mean_x;
  if (var < 0.0) var = 0.0;
  return sqrt(var) / mean;
}

/* Rejects statistics that no sequence of accumulate + merge can produce: negative or
** inconsistent counts, accumulator limbs out of the range a normalized sum of partials can
** reach (an int64 sum that wrapped around), NaN maxima. */
static int check_partial(kf_ais_ctx *ctx, const kf_ais_partial *p) {
  static const char *const count_names[KF_AIS_N_COUNTS] = {
      "n_tokens", "n_seqs", "n_seq_dropped", "n_tok_dropped", "n_tok_rejected", "n_seq_rejected",
      "n_tok_clipped", "n_seq_clipped"};
  for (int k = 0; k < KF_AIS_N_COUNTS; k++)
    if (p->isum[k] < 0)
      return set_err(ctx, KF_AIS_EINVAL,
                     "kf_ais_finish: partial statistics corrupted or overflowed (count %s is "
                     "%lld < 0)",
                     count_names[k], (long long)p->isum[k]);
  const int64_t *c = p->isum;
  if (c[C_TOK_CLIP] > c[C_TOK] || c[C_TOK_REJ] > c[C_TOK] || c[C_SEQ_CLIP] > c[C_SEQ] ||
      c[C_SEQ_REJ] > c[C_SEQ] || c[C_SEQ] > c[C_TOK] || c[C_SEQ_DROP] > c[C_TOK_DROP])
    return set_err(ctx, KF_AIS_EINVAL,
                   "kf_ais_finish: partial statistics corrupted (inconsistent counts: tokens "
                   "%lld, sequences %lld, clipped %lld/%lld, rejected %lld/%lld, dropped "
                   "%lld/%lld)",
                   (long long)c[C_TOK], (long long)c[C_SEQ], (long long)c[C_TOK_CLIP],
                   (long long)c[C_SEQ_CLIP], (long long)c[C_TOK_REJ], (long long)c[C_SEQ_REJ],
                   (long long)c[C_TOK_DROP], (long long)c[C_SEQ_DROP]);
  for (int a = 0; a < KF_AIS_N_ACCS; a++) {
    const int64_t *limb = acc_at_const(p, a);
    for (int k = 0; k < KF_AIS_ACC_LIMBS; k++) {
      int top = k == KF_AIS_ACC_LIMBS - 1;
      if (limb[k] > ((int64_t)1 << 62) || limb[k] < (top ? -((int64_t)1 << 62) : 0))
        return set_err(ctx, KF_AIS_EINVAL,
                       "kf_ais_finish: partial statistics corrupted or overflowed (accumulator "
                       "%d limb %d = %lld; an int64 all-reduce sum wrapped around?)",
                       a, k, (long long)limb[k]);
    }
  }
  for (int k = 0; k < KF_AIS_N_DMAX; k++)
    if (isnan(p->dmax[k]))
      return set_err(ctx, KF_AIS_EINVAL, "kf_ais_finish: partial statistics corrupted (dmax[%d] "
                     "is NaN)", k);
  return KF_AIS_OK;
}

/* Every floating statistic of a finished diag must be finite. */
static int check_diag_finite(kf_ais_ctx *ctx, const kf_ais_diag *d) {
  const struct {
    const char *name;
    double v;
  } f[] = {{"frac_tok_clipped", d->frac_tok_clipped}, {"frac_seq_clipped", d->frac_seq_clipped},
           {"ess_tok", d->ess_tok}, {"ess_seq", d->ess_seq}, {"cv_tok", d->cv_tok},
           {"cv_seq", d->cv_seq}, {"mean_abs_delta", d->mean_abs_delta}, {"kl_k1", d->kl_k1},
           {"kl_k3", d->kl_k3}, {"max_delta", d->max_delta}, {"min_delta", d->min_delta},
           {"max_seq_logratio", d->max_seq_logratio}, {"min_seq_logratio", d->min_seq_logratio},
           {"mean_nll", d->mean_nll}, {"ess_applied", d->ess_applied}, {"cv_level", d->cv_level},
           {"reliability", d->reliability}, {"divergence", d->divergence},
           {"variance_amp", d->variance_amp}, {"a_d", d->a_d}, {"a_r", d->a_r}, {"a_v", d->a_v},
           {"alpha_raw", d->alpha_raw}, {"alpha", d->alpha}};
  for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
    if (!isfinite(f[k].v))
      return set_err(ctx, KF_AIS_EDOMAIN,
                     "kf_ais_finish: statistic %s = %g is not finite (corrupted or overflowed "
                     "partial statistics)",
                     f[k].name, f[k].v);
  if (!(d->alpha >= 0.0 && d->alpha <= 1.0))
    return set_err(ctx, KF_AIS_EDOMAIN, "kf_ais_finish: alpha = %g outside [0, 1]", d->alpha);
  return KF_AIS_OK;
}

int kf_ais_finish(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_partial *p,
                  kf_ais_state *state, kf_ais_diag *d) {
  int rc = kf_ais_config_check(ctx, cfg);
  if (rc) return rc;
  if (!p || !d) return set_err(ctx, KF_AIS_EINVAL, "kf_ais_finish: partial or diag is NULL");
  if ((rc = check_partial(ctx, p))) return rc;
  if (state && state->has_alpha && !(state->alpha >= 0.0 && state->alpha <= 1.0))
    return set_err(ctx, KF_AIS_EINVAL, "kf_ais_finish: state alpha=%g is not in [0, 1]",
                   state->alpha);
  kf_ais_diag out;
  memset(&out, 0, sizeof out);
  out.n_tokens = p->isum[C_TOK];
  out.n_seqs = p->isum[C_SEQ];
  out.n_seq_dropped = p->isum[C_SEQ_DROP];
  out.n_tok_dropped = p->isum[C_TOK_DROP];
  out.n_tok_rejected = p->isum[C_TOK_REJ];
  out.n_seq_rejected = p->isum[C_SEQ_REJ];
  double s[KF_AIS_N_ACCS];
  for (int a = 0; a < KF_AIS_N_ACCS; a++) s[a] = kf_ais_acc_value(acc_at_const(p, a));
  double d_abs = 0.0;
  if (out.n_tokens > 0) {
    double nt = (double)out.n_tokens, ns = (double)out.n_seqs;
    double nu = cfg->ais_level == KF_AIS_LEVEL_TOKEN ? nt : ns;
    out.frac_tok_clipped = (double)p->isum[C_TOK_CLIP] / nt;
    out.frac_seq_clipped = (double)p->isum[C_SEQ_CLIP] / ns;
    out.cv_tok = cv_from_shifted(nt, s[A_RHO_M1], s[A_RHO_M1_SQ]);
    out.cv_seq = cv_from_shifted(ns, s[A_W_M1], s[A_W_M1_SQ]);
    out.ess_tok = 1.0 / (1.0 + out.cv_tok * out.cv_tok);
    out.ess_seq = 1.0 / (1.0 + out.cv_seq * out.cv_seq);
    double cv_app = cv_from_shifted(nu, s[A_APP_M1], s[A_APP_M1_SQ]);
    out.ess_applied = 1.0 / (1.0 + cv_app * cv_app);
    out.cv_level = cv_from_shifted(nu, s[A_LVL_M1], s[A_LVL_M1_SQ]);
    out.mean_abs_delta = s[A_ABS_DELTA] / nt;
    out.kl_k1 = -s[A_DELTA] / nt;
    out.kl_k3 = s[A_K3] / nt;
    out.mean_nll = s[A_NLL] / nt;
    out.max_delta = p->dmax[M_DELTA];
    out.min_delta = -p->dmax[M_NEG_DELTA];
    out.max_seq_logratio = p->dmax[M_SEQ];
    out.min_seq_logratio = -p->dmax[M_NEG_SEQ];
    d_abs = cfg->divergence == KF_AIS_DIV_K3 ? out.kl_k3 : out.mean_abs_delta;
  } else { /* no valid token: weights are trivially reliable, nothing diverges */
    out.ess_tok = out.ess_seq = out.ess_applied = 1.0;
  }
  out.reliability = out.ess_applied;
  out.variance_amp = out.cv_level;
  if (cfg->dscale == KF_AIS_DSCALE_NLL) {
    double h = out.mean_nll > 0.0 ? out.mean_nll : 0.0, den = d_abs + h;
    out.divergence = den > 0.0 ? d_abs / den : 0.0;
  } else {
    out.divergence = d_abs;
  }
  out.a_d = -expm1(-out.divergence / cfg->tau_d);
  out.a_r = pow(out.reliability, cfg->gamma_r);
  out.a_v = 1.0 / (1.0 + out.variance_amp / cfg->tau_v);
  out.alpha_raw = clampd(out.a_d * out.a_r * out.a_v, cfg->alpha_min, cfg->alpha_max);
  out.alpha = out.alpha_raw;
  if (state && state->has_alpha && cfg->ema > 0.0)
    out.alpha = cfg->ema * state->alpha + (1.0 - cfg->ema) * out.alpha_raw;
  if ((rc = check_diag_finite(ctx, &out))) return rc;
  if (state) {
    state->has_alpha = 1;
    state->alpha = out.alpha;
  }
  *d = out;
  return KF_AIS_OK;
}

int kf_ais_weights(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *b,
                   const kf_ais_diag *diag, double *weights, uint8_t *mask_out) {
  int rc = kf_ais_config_check(ctx, cfg);
  if (rc) return rc;
  if ((rc = check_batch(ctx, b))) return rc;
  if (!weights && b->n_tokens > 0)
    return set_err(ctx, KF_AIS_EINVAL, "kf_ais_weights: weights output is NULL");
  double alpha = 0.0;
  if (cfg->mode == KF_AIS_MODE_AIS) {
    if (!diag)
      return set_err(ctx, KF_AIS_EINVAL, "kf_ais_weights: AIS mode needs the finished diag");
    alpha = diag->alpha;
    if (!(alpha >= 0.0 && alpha <= 1.0))
      return set_err(ctx, KF_AIS_EINVAL, "kf_ais_weights: diag alpha=%g is not in [0, 1]",
                     alpha);
  }
  const double L = cfg->log_clamp;
  const double log_lo = log(cfg->mis_lower), log_hi = log(cfg->mis_upper);
  for (int64_t i = 0; i < b->n_seqs; i++) {
    double s = 0.0;
    int64_t n_valid;
    int status;
    int64_t t0 = b->offsets[i], t1 = b->offsets[i + 1];
    if (scan_seq(ctx, cfg, b, i, &s, &n_valid, &status)) {
      if (status) return status;
      for (int64_t t = t0; t < t1; t++) {
        weights[t] = 0.0;
        if (mask_out) mask_out[t] = 0;
      }
      continue;
    }
    seq_ratio sr = seq_ratios(cfg, s, n_valid);
    double w_seq = clampw(cfg, sr.w), w_geo = clampw(cfg, sr.g);
    double s_mean = n_valid > 0 ? s / (double)n_valid : 0.0;
    int seq_keep = 1;
    if (cfg->mode == KF_AIS_MODE_SEQ_MIS) seq_keep = s >= log_lo && s <= log_hi;
    if (cfg->mode == KF_AIS_MODE_GEO_MIS) seq_keep = s_mean >= log_lo && s_mean <= log_hi;
    for (int64_t t = t0; t < t1; t++) {
      if (b->mask && !b->mask[t]) {
        weights[t] = 0.0;
        if (mask_out) mask_out[t] = 0;
        continue;
      }
      double d = b->lp_train[t] - b->lp_roll[t];
      double w_tok = clampw(cfg, kf_ais_exp(clampd(d, -L, L)));
      double w = 1.0, w_level = w_tok;
      int keep = 1;
      if (cfg->ais_level == KF_AIS_LEVEL_SEQ) w_level = w_seq;
      if (cfg->ais_level == KF_AIS_LEVEL_GEO) w_level = w_geo;
      switch (cfg->mode) {
      case KF_AIS_MODE_NONE: w = 1.0; break;
      case KF_AIS_MODE_TOKEN_TIS: w = w_tok; break;
      case KF_AIS_MODE_SEQ_TIS: w = w_seq; break;
      case KF_AIS_MODE_GEO_TIS: w = w_geo; break;
      case KF_AIS_MODE_TOKEN_MIS:
        keep = d >= log_lo && d <= log_hi;
        w = cfg->reject_only ? 1.0 : w_tok;
        break;
      case KF_AIS_MODE_SEQ_MIS:
        keep = seq_keep;
        w = cfg->reject_only ? 1.0 : w_seq;
        break;
      case KF_AIS_MODE_GEO_MIS:
        keep = seq_keep;
        w = cfg->reject_only ? 1.0 : w_geo;
        break;
      case KF_AIS_MODE_AIS: w = (1.0 - alpha) + alpha * w_level; break;
      }
      weights[t] = keep ? w : 0.0;
      if (mask_out) mask_out[t] = (uint8_t)keep;
    }
  }
  return KF_AIS_OK;
}

int kf_ais_compute(kf_ais_ctx *ctx, const kf_ais_config *cfg, const kf_ais_batch *b,
                   kf_ais_state *state, double *weights, uint8_t *mask_out, kf_ais_diag *diag) {
  kf_ais_partial p;
  kf_ais_diag local;
  kf_ais_partial_init(&p);
  int rc = kf_ais_accumulate(ctx, cfg, b, &p);
  if (rc) return rc;
  if ((rc = kf_ais_finish(ctx, cfg, &p, state, diag ? diag : &local))) return rc;
  return kf_ais_weights(ctx, cfg, b, diag ? diag : &local, weights, mask_out);
}

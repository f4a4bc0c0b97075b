/*
** fuzz_ais.c: libFuzzer target over the AIS C API (runtime/ais/kf_ais.h). Links kforge_ais.
**
** The input drives everything: a config (either the defaults of a mode, or every field taken
** from raw input bytes, so invalid values, NaN and huge numbers reach kf_ais_config_check), a
** batch shape (sequence lengths, masks with arbitrary byte values), log-probs as raw 64-bit
** patterns (NaN, +-Inf, subnormals, positive values) or as small "realistic" values, a split
** of the sequences over two "ranks" whose statistics are merged, and a raw kf_ais_partial for
** kf_ais_finish. The API must never crash or trip a sanitizer, and every success must satisfy
** the documented contract; a violation aborts (a fuzzer finding):
**   - status is KF_AIS_OK, KF_AIS_EINVAL or KF_AIS_EDOMAIN, with a non-empty message on error;
**   - on success every statistic in kf_ais_diag is finite, alpha in [0, 1], R in (0, 1];
**   - weights are finite, >= 0, 0 wherever mask_out is 0; mask_out is 0 or 1 and 0 on every
**     invalid token;
**   - single-rank and merged two-rank results agree bit for bit;
**   - kf_ais_exp is finite and > 0 for finite input in [-300, 300].
** Run: build with clang -fsanitize=fuzzer,address,undefined, then
**   ./fuzz_ais fuzz/corpus/ais -max_total_time=60
*/
#include "kf_ais.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t rd_u8(reader *r) {
  if (r->n == 0) return 0;
  r->n--;
  return *r->p++;
}

static uint64_t rd_u64(reader *r) {
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v = (v << 8) | rd_u8(r);
  return v;
}

static double rd_raw_double(reader *r) {
  uint64_t u = rd_u64(r);
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

/* A log-prob: mostly realistic (in [-12.75, 0]), sometimes raw bits. */
static double rd_logprob(reader *r, int raw_allowed) {
  uint8_t tag = rd_u8(r);
  if (raw_allowed && tag >= 250) return rd_raw_double(r);
  if (tag >= 240) return (double)(tag - 240) * 1e-4; /* tiny positives around the tolerance */
  return -(double)tag / 20.0;
}

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "fuzz_ais: contract violated at %s:%d: %s\n", __FILE__, __LINE__,    \
              #cond);                                                                      \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

static void check_status(int rc, const kf_ais_ctx *ctx) {
  CHECK(rc == KF_AIS_OK || rc == KF_AIS_EINVAL || rc == KF_AIS_EDOMAIN);
  if (rc) CHECK(kf_ais_errmsg(ctx)[0] != '\0');
}

/* from_raw: the statistics came from arbitrary bytes, so R may underflow to 0 (finite). */
static void check_diag(const kf_ais_diag *d, int from_raw) {
  const double f[] = {d->frac_tok_clipped, d->frac_seq_clipped, d->ess_tok, d->ess_seq,
                      d->cv_tok, d->cv_seq, d->mean_abs_delta, d->kl_k1, d->kl_k3, d->max_delta,
                      d->min_delta, d->max_seq_logratio, d->min_seq_logratio, d->mean_nll,
                      d->ess_applied, d->cv_level, d->reliability, d->divergence,
                      d->variance_amp, d->a_d, d->a_r, d->a_v, d->alpha_raw, d->alpha};
  for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) CHECK(isfinite(f[k]));
  CHECK(d->alpha >= 0.0 && d->alpha <= 1.0);
  CHECK((from_raw ? d->reliability >= 0.0 : d->reliability > 0.0) && d->reliability <= 1.0);
  CHECK(d->n_tokens >= 0 && d->n_seqs >= 0 && d->n_seqs <= d->n_tokens);
}

static void fuzz_config(reader *r, kf_ais_config *cfg) {
  uint8_t sel = rd_u8(r);
  kf_ais_config_default(cfg, (kf_ais_mode)(sel % 9)); /* 8 is not a mode */
  if (!(sel & 0x80)) return;
  /* every field from the input */
  cfg->mode = (kf_ais_mode)(int8_t)rd_u8(r);
  cfg->cap = rd_raw_double(r);
  cfg->cap_lower = rd_raw_double(r);
  cfg->log_clamp = rd_raw_double(r);
  cfg->mis_lower = rd_raw_double(r);
  cfg->mis_upper = rd_raw_double(r);
  cfg->reject_only = (int8_t)rd_u8(r);
  cfg->ais_level = (kf_ais_level)(int8_t)rd_u8(r);
  cfg->divergence = (kf_ais_div)(int8_t)rd_u8(r);
  cfg->dscale = (kf_ais_dscale)(int8_t)rd_u8(r);
  cfg->tau_d = rd_raw_double(r);
  cfg->gamma_r = rd_raw_double(r);
  cfg->tau_v = rd_raw_double(r);
  cfg->alpha_min = rd_raw_double(r);
  cfg->alpha_max = rd_raw_double(r);
  cfg->ema = rd_raw_double(r);
  cfg->logprob_tol = rd_raw_double(r);
  cfg->nonfinite = (kf_ais_nonfinite)(int8_t)rd_u8(r);
}

enum { MAX_SEQS = 64, MAX_LEN = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader r = {data, size};
  kf_ais_ctx ctx;
  kf_ais_ctx_init(&ctx);
  kf_ais_config cfg;
  fuzz_config(&r, &cfg);
  uint8_t flags = rd_u8(&r);
  int raw_logprobs = flags & 1, use_mask = flags & 2, raw_mask = flags & 4;
  int n_seqs = rd_u8(&r) % (MAX_SEQS + 1);
  int64_t offsets[MAX_SEQS + 1];
  offsets[0] = 0;
  for (int i = 0; i < n_seqs; i++) offsets[i + 1] = offsets[i] + rd_u8(&r) % (MAX_LEN + 1);
  int64_t n = offsets[n_seqs];
  size_t nb = (size_t)(n > 0 ? n : 1);
  double *lp_roll = malloc(nb * sizeof(double)), *lp_train = malloc(nb * sizeof(double));
  double *w = malloc(nb * sizeof(double)), *w2 = malloc(nb * sizeof(double));
  uint8_t *mask = malloc(nb), *mask_out = malloc(nb), *mask_out2 = malloc(nb);
  if (!lp_roll || !lp_train || !w || !w2 || !mask || !mask_out || !mask_out2) abort();
  for (int64_t t = 0; t < n; t++) {
    lp_roll[t] = rd_logprob(&r, raw_logprobs);
    lp_train[t] = rd_logprob(&r, raw_logprobs);
    uint8_t m = rd_u8(&r);
    mask[t] = raw_mask ? m : (uint8_t)(m < 230);
  }
  kf_ais_batch b = {lp_roll, lp_train, use_mask ? mask : NULL, offsets, n_seqs, n};

  /* single rank */
  kf_ais_state state;
  kf_ais_state_init(&state);
  kf_ais_diag d;
  int rc = kf_ais_compute(&ctx, &cfg, &b, &state, w, mask_out, &d);
  check_status(rc, &ctx);
  if (rc == KF_AIS_OK) {
    check_diag(&d, 0);
    for (int64_t t = 0; t < n; t++) {
      CHECK(mask_out[t] == 0 || mask_out[t] == 1);
      CHECK(isfinite(w[t]) && w[t] >= 0.0);
      if (!mask_out[t]) CHECK(w[t] == 0.0);
      if (use_mask && !mask[t]) CHECK(mask_out[t] == 0);
    }
    /* two ranks: sequences [0, cut) and [cut, n_seqs), merged in both orders */
    int cut = n_seqs ? rd_u8(&r) % (n_seqs + 1) : 0;
    int64_t off_hi[MAX_SEQS + 1];
    for (int i = cut; i <= n_seqs; i++) off_hi[i - cut] = offsets[i] - offsets[cut];
    kf_ais_batch lo = {lp_roll, lp_train, use_mask ? mask : NULL, offsets, cut, offsets[cut]};
    kf_ais_batch hi = {lp_roll + offsets[cut], lp_train + offsets[cut],
                       use_mask ? mask + offsets[cut] : NULL, off_hi, n_seqs - cut,
                       n - offsets[cut]};
    kf_ais_partial p_lo, p_hi, merged;
    kf_ais_partial_init(&p_lo);
    kf_ais_partial_init(&p_hi);
    kf_ais_partial_init(&merged);
    CHECK(kf_ais_accumulate(&ctx, &cfg, &lo, &p_lo) == KF_AIS_OK);
    CHECK(kf_ais_accumulate(&ctx, &cfg, &hi, &p_hi) == KF_AIS_OK);
    int order = rd_u8(&r) & 1;
    CHECK(kf_ais_partial_merge(&ctx, &merged, order ? &p_hi : &p_lo) == KF_AIS_OK);
    CHECK(kf_ais_partial_merge(&ctx, &merged, order ? &p_lo : &p_hi) == KF_AIS_OK);
    kf_ais_diag dm;
    CHECK(kf_ais_finish(&ctx, &cfg, &merged, NULL, &dm) == KF_AIS_OK);
    kf_ais_diag d1;
    kf_ais_partial single;
    kf_ais_partial_init(&single);
    CHECK(kf_ais_accumulate(&ctx, &cfg, &b, &single) == KF_AIS_OK);
    CHECK(kf_ais_finish(&ctx, &cfg, &single, NULL, &d1) == KF_AIS_OK);
    CHECK(memcmp(&dm, &d1, sizeof dm) == 0);
    CHECK(kf_ais_weights(&ctx, &cfg, &b, &dm, w2, mask_out2) == KF_AIS_OK);
    /* compute() had a fresh state (no previous alpha), so alpha = alpha_raw there too */
    CHECK(n == 0 || memcmp(w2, w, (size_t)n * sizeof(double)) == 0);
    CHECK(n == 0 || memcmp(mask_out2, mask_out, (size_t)n) == 0);
  }

  /* finish on a raw (possibly corrupted or overflowed) partial */
  kf_ais_partial raw;
  kf_ais_partial_init(&raw);
  if (rd_u8(&r) & 1) {
    size_t take = sizeof raw < r.n ? sizeof raw : r.n;
    memcpy(&raw, r.p, take);
    r.p += take;
    r.n -= take;
  }
  kf_ais_diag dr;
  kf_ais_config dcfg;
  kf_ais_config_default(&dcfg, KF_AIS_MODE_AIS);
  rc = kf_ais_finish(&ctx, &dcfg, &raw, NULL, &dr);
  check_status(rc, &ctx);
  if (rc == KF_AIS_OK) check_diag(&dr, 1);
  kf_ais_partial acc;
  kf_ais_partial_init(&acc);
  check_status(kf_ais_partial_merge(&ctx, &acc, &raw), &ctx);

  /* kf_ais_exp on arbitrary doubles */
  while (r.n >= 8) {
    double x = rd_raw_double(&r);
    double e = kf_ais_exp(x);
    if (isnan(x)) CHECK(isnan(e));
    else CHECK(isfinite(e) && e > 0.0);
  }
  free(lp_roll), free(lp_train), free(w), free(w2), free(mask), free(mask_out), free(mask_out2);
  return 0;
}

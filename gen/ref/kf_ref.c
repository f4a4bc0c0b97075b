/*
** kf_ref.c: fp64 references, RNG and test-data generators. See kf_ref.h for the contracts.
*/
#include "kf_ref.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------- */
/* RNG                                                                                         */

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void kf_rng_seed(kf_rng *rng, uint64_t seed) {
  uint64_t sm = seed;
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&sm);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna). */
uint64_t kf_rng_u64(kf_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double kf_rng_uniform(kf_rng *rng) { return (double)(kf_rng_u64(rng) >> 11) * 0x1p-53; }

uint64_t kf_rng_below(kf_rng *rng, uint64_t n) {
  return (uint64_t)(((unsigned __int128)kf_rng_u64(rng) * n) >> 64);
}

double kf_rng_normal(kf_rng *rng) {
  double u1 = 1.0 - kf_rng_uniform(rng); /* (0, 1]: log is finite */
  double u2 = kf_rng_uniform(rng);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

double kf_rng_student_t3(kf_rng *rng) {
  double z = kf_rng_normal(rng);
  double chi2 = 0;
  for (int i = 0; i < 3; i++) {
    double g = kf_rng_normal(rng);
    chi2 += g * g;
  }
  if (chi2 < 1e-300) chi2 = 1e-300; /* probability ~0; keeps the value finite */
  return z / sqrt(chi2 / 3.0);
}

double kf_rng_laplace(kf_rng *rng) {
  double u = kf_rng_uniform(rng) - 0.5; /* [-0.5, 0.5) */
  double b = 1.0 / sqrt(2.0);
  double mag = 1.0 - 2.0 * fabs(u); /* (0, 1] */
  return (u < 0 ? b : -b) * log(mag);
}

/* ------------------------------------------------------------------------------------------- */
/* BF16                                                                                        */

float kf_ref_bf16_round(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) {
    /* Inf stays Inf; NaN gets the quiet bit (bit 22, kept by the truncation) and its sign. */
    if (bits & 0x007fffffu) bits |= 0x00400000u;
    bits &= 0xffff0000u;
  } else {
    uint32_t lsb = (bits >> 16) & 1u;
    bits += 0x7fffu + lsb; /* round to nearest, ties to even; overflows into Inf correctly */
    bits &= 0xffff0000u;
  }
  float y;
  memcpy(&y, &bits, sizeof y);
  return y;
}

void kf_ref_bf16_round_array(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = kf_ref_bf16_round(x[i]);
}

/* ------------------------------------------------------------------------------------------- */
/* Generators                                                                                  */

static const char *const dist_names[KF_REF_N_DIST] = {"gauss", "uniform", "t3", "laplace",
                                                      "outlier"};

const char *kf_ref_dist_name(kf_ref_dist dist) {
  return ((unsigned)dist < KF_REF_N_DIST) ? dist_names[dist] : "?";
}

int kf_ref_dist_parse(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < KF_REF_N_DIST; i++)
    if (strcmp(name, dist_names[i]) == 0) return i;
  return -1;
}

static double draw(kf_rng *rng, kf_ref_dist dist) {
  switch (dist) {
  case KF_REF_UNIFORM: return 2.0 * kf_rng_uniform(rng) - 1.0;
  case KF_REF_STUDENT_T3: return kf_rng_student_t3(rng);
  case KF_REF_LAPLACE: return kf_rng_laplace(rng);
  default: return kf_rng_normal(rng); /* GAUSS, OUTLIER */
  }
}

/* Marks ceil(1% of cols) distinct columns (at least 1) as outliers: a partial Fisher–Yates
** shuffle of the column indices. Returns a calloc'ed 0/1 array, NULL on allocation failure. */
static unsigned char *pick_outlier_channels(kf_rng *rng, int64_t cols) {
  int64_t n_out = (cols + 99) / 100;
  unsigned char *mark = calloc((size_t)cols, 1);
  int64_t *perm = malloc((size_t)cols * sizeof *perm);
  if (!mark || !perm) {
    free(mark);
    free(perm);
    return NULL;
  }
  for (int64_t i = 0; i < cols; i++) perm[i] = i;
  for (int64_t i = 0; i < n_out; i++) {
    int64_t j = i + (int64_t)kf_rng_below(rng, (uint64_t)(cols - i));
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
    mark[perm[i]] = 1;
  }
  free(perm);
  return mark;
}

/* Shared body of kf_ref_fill / kf_ref_fill_d: exactly one of outf / outd is non-NULL. */
static int fill_any(kf_rng *rng, kf_ref_dist dist, double sigma, int bf16, int64_t rows,
                    int64_t cols, float *outf, double *outd) {
  if (!rng || (unsigned)dist >= KF_REF_N_DIST || rows <= 0 || cols <= 0 || !isfinite(sigma) ||
      rows > INT64_MAX / cols)
    return KF_REF_EINVAL;
  unsigned char *outlier = NULL;
  if (dist == KF_REF_OUTLIER) {
    outlier = pick_outlier_channels(rng, cols);
    if (!outlier) return KF_REF_EINVAL;
  }
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++) {
      double val = sigma * draw(rng, dist);
      if (outlier && outlier[c]) val *= 30.0;
      if (outf) {
        float f = (float)val;
        outf[r * cols + c] = bf16 ? kf_ref_bf16_round(f) : f;
      } else {
        outd[r * cols + c] = val;
      }
    }
  }
  free(outlier);
  return 0;
}

int kf_ref_fill(kf_rng *rng, kf_ref_dist dist, double sigma, int bf16, int64_t rows, int64_t cols,
                float *out) {
  if (!out) return KF_REF_EINVAL;
  return fill_any(rng, dist, sigma, bf16, rows, cols, out, NULL);
}

int kf_ref_fill_d(kf_rng *rng, kf_ref_dist dist, double sigma, int64_t rows, int64_t cols,
                  double *out) {
  if (!out) return KF_REF_EINVAL;
  return fill_any(rng, dist, sigma, 0, rows, cols, NULL, out);
}

/* ------------------------------------------------------------------------------------------- */
/* GEMM                                                                                        */

int kf_ref_gemm(int64_t M, int64_t N, int64_t K, const float *x, const double *w, double *y,
                double *abs_y) {
  if (M <= 0 || N <= 0 || K <= 0 || !x || !w || !y) return KF_REF_EINVAL;
  for (int64_t m = 0; m < M; m++) {
    const float *xrow = x + m * K;
    for (int64_t n = 0; n < N; n++) {
      const double *wrow = w + n * K;
      double sum = 0, abs_sum = 0;
      for (int64_t k = 0; k < K; k++) {
        double prod = wrow[k] * (double)xrow[k];
        sum += prod;
        abs_sum += fabs(prod);
      }
      y[m * N + n] = sum;
      if (abs_y) abs_y[m * N + n] = abs_sum;
    }
  }
  return 0;
}

double kf_ref_gamma(int64_t n, int mantissa_bits) {
  double nu = (double)n * ldexp(1.0, -mantissa_bits);
  if (n < 0 || nu >= 1.0) return INFINITY;
  return nu / (1.0 - nu);
}

/* ------------------------------------------------------------------------------------------- */
/* Attention                                                                                   */

/* Decode attention for one query row q (D) over S keys at k + j·k_stride (D each) and values at
** v + j·v_stride (DV each): out = Σ_j p_j v_j with p = softmax(scale·q·k_j), max subtracted.
** `scores` is S doubles of scratch. */
static void attn_row(int64_t S, int64_t D, int64_t DV, double scale, const double *q,
                     const double *k, int64_t k_stride, const double *v, int64_t v_stride,
                     double *scores, double *out) {
  double row_max = -INFINITY;
  int any_nan = 0;
  for (int64_t j = 0; j < S; j++) {
    double dot = 0;
    for (int64_t d = 0; d < D; d++) dot += q[d] * k[j * k_stride + d];
    scores[j] = scale * dot;
    if (isnan(scores[j])) any_nan = 1;
    if (scores[j] > row_max) row_max = scores[j];
  }
  for (int64_t c = 0; c < DV; c++) out[c] = 0;
  if (any_nan || !isfinite(row_max)) {
    /* NaN input, or a +Inf score (Inf − Inf would be NaN anyway): the result is undefined. */
    for (int64_t c = 0; c < DV; c++) out[c] = NAN;
    return;
  }
  double denom = 0;
  for (int64_t j = 0; j < S; j++) {
    double p = exp(scores[j] - row_max); /* ≤ 1; the max itself gives exactly 1 */
    denom += p;
    for (int64_t c = 0; c < DV; c++) out[c] += p * v[j * v_stride + c];
  }
  for (int64_t c = 0; c < DV; c++) out[c] /= denom;
}

static int attn_shape_ok(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV) {
  return B > 0 && H > 0 && HKV > 0 && S > 0 && D > 0 && DV > 0 && H % HKV == 0;
}

int kf_ref_attn_decode_d(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV,
                         double scale, const double *q, const double *k, const double *v,
                         double *out) {
  if (!attn_shape_ok(B, H, HKV, S, D, DV) || !q || !k || !v || !out) return KF_REF_EINVAL;
  double *scores = malloc((size_t)S * sizeof *scores);
  if (!scores) return KF_REF_EINVAL;
  int64_t group = H / HKV;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < H; h++) {
      int64_t g = h / group;
      attn_row(S, D, DV, scale, q + (b * H + h) * D, k + (b * HKV + g) * S * D, D,
               v + (b * HKV + g) * S * DV, DV, scores, out + (b * H + h) * DV);
    }
  }
  free(scores);
  return 0;
}

int kf_ref_mla_decode_d(int64_t B, int64_t H, int64_t S, int64_t D, int64_t DV, double scale,
                        const double *q, const double *kv, double *out) {
  if (!attn_shape_ok(B, H, 1, S, D, DV) || DV > D || !q || !kv || !out) return KF_REF_EINVAL;
  double *scores = malloc((size_t)S * sizeof *scores);
  if (!scores) return KF_REF_EINVAL;
  for (int64_t b = 0; b < B; b++) {
    const double *cache = kv + b * S * D;
    for (int64_t h = 0; h < H; h++)
      attn_row(S, D, DV, scale, q + (b * H + h) * D, cache, D, cache, D, scores,
               out + (b * H + h) * DV);
  }
  free(scores);
  return 0;
}

/* float -> double copy of n values; NULL on allocation failure. */
static double *widen(const float *x, int64_t n) {
  double *d = malloc((size_t)n * sizeof *d);
  if (d)
    for (int64_t i = 0; i < n; i++) d[i] = (double)x[i];
  return d;
}

int kf_ref_attn_decode(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV,
                       double scale, const float *q, const float *k, const float *v,
                       double *out) {
  if (!attn_shape_ok(B, H, HKV, S, D, DV) || !q || !k || !v || !out) return KF_REF_EINVAL;
  double *qd = widen(q, B * H * D), *kd = widen(k, B * HKV * S * D);
  double *vd = widen(v, B * HKV * S * DV);
  int rc = qd && kd && vd ? kf_ref_attn_decode_d(B, H, HKV, S, D, DV, scale, qd, kd, vd, out)
                          : KF_REF_EINVAL;
  free(qd), free(kd), free(vd);
  return rc;
}

int kf_ref_mla_decode(int64_t B, int64_t H, int64_t S, int64_t D, int64_t DV, double scale,
                      const float *q, const float *kv, double *out) {
  if (!attn_shape_ok(B, H, 1, S, D, DV) || DV > D || !q || !kv || !out) return KF_REF_EINVAL;
  double *qd = widen(q, B * H * D), *kvd = widen(kv, B * S * D);
  int rc = qd && kvd ? kf_ref_mla_decode_d(B, H, S, D, DV, scale, qd, kvd, out) : KF_REF_EINVAL;
  free(qd), free(kvd);
  return rc;
}

int kf_ref_attn_scores(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, double scale,
                       const float *q, const float *k, double *scores) {
  if (!attn_shape_ok(B, H, HKV, S, D, 1) || !q || !k || !scores) return KF_REF_EINVAL;
  int64_t group = H / HKV;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      const float *qh = q + (b * H + h) * D;
      const float *kg = k + (b * HKV + h / group) * S * D;
      for (int64_t j = 0; j < S; j++) {
        double dot = 0;
        for (int64_t d = 0; d < D; d++) dot += (double)qh[d] * (double)kg[j * D + d];
        scores[(b * H + h) * S + j] = scale * dot;
      }
    }
  return 0;
}

static const char *const attn_kind_names[KF_REF_ATTN_N_KIND] = {"random", "rising", "equal",
                                                                "large", "negative"};

const char *kf_ref_attn_kind_name(kf_ref_attn_kind kind) {
  return ((unsigned)kind < KF_REF_ATTN_N_KIND) ? attn_kind_names[kind] : "?";
}

int kf_ref_attn_kind_parse(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < KF_REF_ATTN_N_KIND; i++)
    if (strcmp(name, attn_kind_names[i]) == 0) return i;
  return -1;
}

static float bf16_normal(kf_rng *rng, double sigma) {
  return kf_ref_bf16_round((float)(sigma * kf_rng_normal(rng)));
}

/* Target scores a_j (before the per-head factor c_h) for one (sequence, kv head). */
static void target_scores(kf_rng *rng, const kf_ref_attn_gen *gen, int64_t S, double *a) {
  switch (gen->kind) {
  case KF_REF_ATTN_RISING: {
    int64_t block = gen->block > 0 ? gen->block : 64;
    double rise = gen->rise != 0 ? gen->rise : 24.0;
    for (int64_t start = 0; start < S; start += block) {
      int64_t len = S - start < block ? S - start : block;
      double top = rise * (double)(start / block);
      for (int64_t j = 0; j < len; j++) a[start + j] = top - 8.0 * (1.0 - kf_rng_uniform(rng));
      a[start + (int64_t)kf_rng_below(rng, (uint64_t)len)] = top; /* the block's max */
    }
    break;
  }
  case KF_REF_ATTN_EQUAL: {
    double level = gen->level != 0 ? gen->level : 3.0;
    for (int64_t j = 0; j < S; j++) a[j] = level;
    break;
  }
  default: { /* LARGE, NEGATIVE */
    double level = gen->level != 0 ? gen->level : (gen->kind == KF_REF_ATTN_LARGE ? 1000 : -1000);
    for (int64_t j = 0; j < S; j++) a[j] = level + 4.0 * kf_rng_normal(rng);
    break;
  }
  }
}

int kf_ref_gen_attn(kf_rng *rng, const kf_ref_attn_gen *gen, int64_t B, int64_t H, int64_t HKV,
                    int64_t S, int64_t D, int64_t DV, double scale, float *q, float *k,
                    float *v) {
  if (!rng || !gen || (unsigned)gen->kind >= KF_REF_ATTN_N_KIND ||
      !attn_shape_ok(B, H, HKV, S, D, DV) || !q || !k || (!v && DV > D) || !isfinite(scale) ||
      scale == 0 || gen->block < 0 || !isfinite(gen->rise) || !isfinite(gen->level) ||
      !isfinite(gen->jitter))
    return KF_REF_EINVAL;

  if (gen->kind == KF_REF_ATTN_RANDOM) {
    for (int64_t i = 0; i < B * H * D; i++) q[i] = bf16_normal(rng, 1.0);
    for (int64_t i = 0; i < B * HKV * S * D; i++) k[i] = bf16_normal(rng, 1.0);
    if (v)
      for (int64_t i = 0; i < B * HKV * S * DV; i++) v[i] = bf16_normal(rng, 1.0);
    return 0;
  }

  int64_t n_sig = D < 3 ? D : 3;  /* signal coordinates: the last n_sig of D */
  int64_t n_noise = D - n_sig;    /* noise coordinates: the first n_noise */
  double jitter = gen->jitter < 0 ? 0 : (gen->jitter > 0 ? gen->jitter : 0.1);
  if (gen->kind == KF_REF_ATTN_EQUAL || n_noise == 0) jitter = 0;
  double q_noise_sigma = n_noise > 0 ? jitter / (fabs(scale) * sqrt((double)n_noise)) : 0;

  double *a = malloc((size_t)S * sizeof *a);
  if (!a) return KF_REF_EINVAL;
  int64_t group = H / HKV;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t g = 0; g < HKV; g++) {
      target_scores(rng, gen, S, a);
      float *kg = k + (b * HKV + g) * S * D;
      for (int64_t j = 0; j < S; j++) {
        float *kj = kg + j * D;
        for (int64_t d = 0; d < n_noise; d++) kj[d] = bf16_normal(rng, 1.0);
        /* Split t = a/scale into bf16 terms; the residual is exact in double. */
        double rest = a[j] / scale;
        if (!(fabs(rest) < 1e38)) {
          free(a);
          return KF_REF_EINVAL; /* target score / scale does not fit bf16 */
        }
        for (int64_t d = n_noise; d < D; d++) {
          float part = kf_ref_bf16_round((float)rest);
          kj[d] = part;
          rest -= (double)part;
        }
      }
      for (int64_t hh = 0; hh < group; hh++) {
        float *qh = q + (b * H + g * group + hh) * D;
        float c_h = 1.0f + (float)kf_rng_below(rng, 9) / 32.0f; /* bf16-exact, in [1, 1.25] */
        for (int64_t d = 0; d < n_noise; d++) qh[d] = bf16_normal(rng, q_noise_sigma);
        for (int64_t d = n_noise; d < D; d++) qh[d] = c_h;
      }
    }
  }
  free(a);
  if (v)
    for (int64_t i = 0; i < B * HKV * S * DV; i++) v[i] = bf16_normal(rng, 1.0);
  return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Error statistics                                                                            */

/* One pass over the elements; exactly one of gotf / gotd is non-NULL. */
static int err_stats(const float *gotf, const double *gotd, const double *ref,
                     const double *bound, int64_t n, kf_ref_errs *out) {
  if (n < 0 || !ref || !out || (!gotf && !gotd)) return KF_REF_EINVAL;
  kf_ref_errs e = {0};
  e.i_max = -1;
  double err2 = 0, ref2 = 0;
  for (int64_t i = 0; i < n; i++) {
    double got = gotf ? (double)gotf[i] : gotd[i];
    double r = ref[i];
    if (!isfinite(got) || !isfinite(r)) {
      /* Non-finite on either side: fine only when both are the same (NaN and NaN, or the same
      ** infinity), e.g. a NaN input propagated; anything else is a mismatch of unbounded size. */
      int same = (isnan(got) && isnan(r)) || got == r;
      if (!same) {
        if (e.n_nonfinite == 0) e.i_max = i;
        e.n_nonfinite++;
      }
      continue;
    }
    double err = fabs(got - r);
    if (fabs(r) > e.ref_max_abs) e.ref_max_abs = fabs(r);
    if (err > e.max_abs) {
      e.max_abs = err;
      if (e.n_nonfinite == 0) e.i_max = i;
    }
    if (e.i_max < 0) e.i_max = i;
    err2 += err * err;
    ref2 += r * r;
    if (bound) {
      double ratio = err == 0 ? 0 : (bound[i] > 0 ? err / bound[i] : INFINITY);
      if (ratio > e.max_ratio) e.max_ratio = ratio;
    }
  }
  if (e.n_nonfinite > 0) {
    e.max_abs = e.rel_l2 = INFINITY;
    if (bound) e.max_ratio = INFINITY;
    e.eff_bits = e.snr_bits = -INFINITY;
  } else {
    double err_norm = sqrt(err2), ref_norm = sqrt(ref2);
    e.rel_l2 = err_norm == 0 ? 0 : (ref_norm > 0 ? err_norm / ref_norm : INFINITY);
    e.eff_bits = e.max_abs == 0 ? INFINITY
                 : e.ref_max_abs > 0 ? log2(e.ref_max_abs / e.max_abs) : -INFINITY;
    e.snr_bits = err_norm == 0 ? INFINITY
                 : ref_norm > 0 ? log2(ref_norm / err_norm) : -INFINITY;
  }
  *out = e;
  return 0;
}

int kf_ref_err_stats(const float *got, const double *ref, int64_t n, kf_ref_errs *out) {
  if (!got) return KF_REF_EINVAL;
  return err_stats(got, NULL, ref, NULL, n, out);
}

int kf_ref_err_stats_bound(const float *got, const double *ref, const double *bound, int64_t n,
                           kf_ref_errs *out) {
  if (!got) return KF_REF_EINVAL;
  return err_stats(got, NULL, ref, bound, n, out);
}

int kf_ref_err_stats_d(const double *got, const double *ref, const double *bound, int64_t n,
                       kf_ref_errs *out) {
  if (!got) return KF_REF_EINVAL;
  return err_stats(NULL, got, ref, bound, n, out);
}

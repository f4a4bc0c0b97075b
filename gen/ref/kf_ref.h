/*
** kf_ref.h: fp64 reference implementations shared by the tests, `kforge check` and the benches,
** plus a deterministic random generator and the test-data generators (DESIGN.md §4).
**
** Everything here is a plain loop in double precision, written for clarity rather than speed,
** and depends on nothing but libm. The references are the definition of "correct" for every
** kernel, so they stay obviously right: no blocking, no vectorization, no clever reassociation.
**
** Conventions:
**   - matrices are dense row-major; shapes are int64_t;
**   - inputs that a kernel sees in BF16 are passed as float holding bf16-representable values
**     (kf_ref_bf16_round makes them so); exact weight values (codes × scales) are double;
**   - functions that can reject their arguments return 0 on success and KF_REF_EINVAL (= KF_EINVAL)
**     when a shape is non-positive / inconsistent, a required pointer is NULL or scratch memory
**     cannot be allocated; they never abort or write output on a rejected call. There is no
**     message: the only failure is "bad arguments", and callers (`kforge check`, tests) have
**     validated shapes and reported errors with their own context before calling a reference.
*/
#ifndef KF_REF_H
#define KF_REF_H

#include <stdint.h>

#define KF_REF_EINVAL 1 /* same value as KF_EINVAL in gen/kf.h */

/* ---------------------------------------------------------------------------------------------
** Deterministic RNG: xoshiro256** seeded through splitmix64. Same seed -> same stream on every
** machine and compiler (only integer arithmetic up to the double conversion). One state per
** user; no global state.
*/
typedef struct kf_rng {
  uint64_t s[4];
} kf_rng;

void kf_rng_seed(kf_rng *rng, uint64_t seed);
uint64_t kf_rng_u64(kf_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double kf_rng_uniform(kf_rng *rng);
/* Uniform integer in [0, n), n > 0 (multiply-shift; bias < n/2^64, irrelevant for tests). */
uint64_t kf_rng_below(kf_rng *rng, uint64_t n);
/* Standard normal N(0, 1) (Box–Muller on two fresh uniforms; no cached spare, so the stream
** position depends only on the number of calls). */
double kf_rng_normal(kf_rng *rng);
/* Student-t with 3 degrees of freedom (variance 3): N / sqrt(chi2_3 / 3). */
double kf_rng_student_t3(kf_rng *rng);
/* Laplace(0, b = 1/sqrt(2)) so the variance is 1. */
double kf_rng_laplace(kf_rng *rng);

/* ---------------------------------------------------------------------------------------------
** BF16 round-to-nearest-even of a float (what a BF16 activation / KV cache holds). NaN stays NaN
** (quieted), ±Inf stays ±Inf, values that round past the largest bf16 become ±Inf (IEEE RNE).
*/
float kf_ref_bf16_round(float x);
void kf_ref_bf16_round_array(float *x, int64_t n);

/* ---------------------------------------------------------------------------------------------
** Input generators. A matrix is rows × cols, "channels" are columns (the K index of activations
** x[M][K], the feature index of an LLM hidden state).
**   GAUSS      N(0, 1)
**   UNIFORM    U(-1, 1)
**   STUDENT_T3 Student-t with 3 d.o.f. (heavy tails, variance 3)
**   LAPLACE    Laplace with variance 1
**   OUTLIER    N(0, 1), with 1% of the channels (at least one; chosen at random, the same for
**              every row) multiplied by 30 — the LLM.int8()-style outlier features.
** Every value is multiplied by `sigma`. kf_ref_fill rounds the result to bf16 when `bf16` != 0.
** Returns 0, or KF_REF_EINVAL for a bad dist / shape / NULL pointer.
*/
typedef enum kf_ref_dist {
  KF_REF_GAUSS = 0,
  KF_REF_UNIFORM,
  KF_REF_STUDENT_T3,
  KF_REF_LAPLACE,
  KF_REF_OUTLIER,
  KF_REF_N_DIST
} kf_ref_dist;

const char *kf_ref_dist_name(kf_ref_dist dist); /* "gauss", ...; "?" when out of range */
/* Parses a name as printed by kf_ref_dist_name; returns -1 when unknown. */
int kf_ref_dist_parse(const char *name);
int kf_ref_fill(kf_rng *rng, kf_ref_dist dist, double sigma, int bf16, int64_t rows, int64_t cols,
                float *out);
int kf_ref_fill_d(kf_rng *rng, kf_ref_dist dist, double sigma, int64_t rows, int64_t cols,
                  double *out);

/* ---------------------------------------------------------------------------------------------
** GEMM reference: y[m][n] = Σ_k w[n][k] · x[m][k] in double, x M×K (values already bf16-rounded
** by the caller when the kernel reads bf16), w N×K exact weight values (codes × scales).
** abs_y (may be NULL) receives Σ_k |w[n][k]|·|x[m][k]|, the scale of the rounding errors: a float
** kernel that accumulates in fp32 is within (K + 2)·2^-24·abs_y of y (kf_ref_gamma).
*/
int kf_ref_gemm(int64_t M, int64_t N, int64_t K, const float *x, const double *w, double *y,
                double *abs_y);

/* γ_n = n·u / (1 − n·u) with u = 2^-mantissa_bits (unit roundoff; 24 for fp32, 8 for bf16, 53 for
** double) — Higham's bound for an n-term recursive sum: |fl(Σ) − Σ| ≤ γ_n · Σ|terms|.
** Returns +Inf when n·u ≥ 1. */
double kf_ref_gamma(int64_t n, int mantissa_bits);

/* ---------------------------------------------------------------------------------------------
** Attention decode (one query token per sequence). MHA (HKV = H), GQA (HKV divides H), MQA
** (HKV = 1). Query head h reads kv head h / (H / HKV).
**   q   B × H × D,   k  B × HKV × S × D,   v  B × HKV × S × DV,   out  B × H × DV
**   out[b][h] = Σ_j softmax_j(scale · q[b][h] · k[b][g][j]) · v[b][g][j]
** computed in double with the row max subtracted before exp (so scores of ±1e4 are fine).
** Non-finite inputs propagate as NaN/Inf; they are not an error.
*/
int kf_ref_attn_decode(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV,
                       double scale, const float *q, const float *k, const float *v, double *out);

/* MLA decode (DESIGN.md §4, refs/amla.md): all H query heads share one latent KV cache per
** sequence, kv B × S × D (D = 576 = 512 latent + 64 rope); the values are the first DV (= 512)
** columns of the same cache. q B × H × D, out B × H × DV. Requires DV ≤ D. */
int kf_ref_mla_decode(int64_t B, int64_t H, int64_t S, int64_t D, int64_t DV, double scale,
                      const float *q, const float *kv, double *out);

/* The same two references on double inputs, for exact operands that float cannot hold (e.g. a
** dequantized KV cache code·scale): same shapes and rules. */
int kf_ref_attn_decode_d(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV,
                         double scale, const double *q, const double *k, const double *v,
                         double *out);
int kf_ref_mla_decode_d(int64_t B, int64_t H, int64_t S, int64_t D, int64_t DV, double scale,
                        const double *q, const double *kv, double *out);

/* The raw scores scale·q·kᵀ in double, B × H × S (for checking generators and softmax pieces).
** For MLA pass HKV = 1 and the latent cache as k. */
int kf_ref_attn_scores(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, double scale,
                       const float *q, const float *k, double *scores);

/* ---------------------------------------------------------------------------------------------
** Attention test data, shaped so the *scores* s_j = scale·q·k_j have a chosen property.
**
**   RANDOM  q, k, v ~ N(0, 1): scores ~ N(0, (scale²·D)) — N(0,1) for scale = 1/sqrt(D).
**   RISING  the max of KV block b (tokens [b·block, (b+1)·block)) is rise·b·c_h: it rises by at
**           least `rise` (default 24 > 30·ln2 ≈ 20.8, so AMLA's n_i − n_{i−1} < −30 guard fires)
**           from each block to the next; the other scores of a block lie in [max − 8·c_h, max)
**           (c_h ∈ [1, 1.25] is a per-query-head factor, see below).
**   EQUAL   every score of a head equals the same value (level, default 3): softmax is uniform
**           and the output is the mean of v.
**   LARGE   scores = c_h·(level + 4·N(0,1)), level default +1000 (e^s overflows even in double).
**   NEGATIVE same with level default −1000 (e^s underflows to 0 even in double).
**
** How (for every kind but RANDOM): for each (b, kv head) draw target scores a_j. The last n_sig =
** min(3, D) coordinates carry the signal: those coordinates of q_h are all c_h = 1 + i/32 (i a
** random integer in 0..8, bf16-exact, c_h ≥ 1 so a rise stays ≥ rise), and those of k_j hold a
** three-term bf16 split hi + mid + lo of t_j = a_j / scale (each term bf16-exact, the sum equal to
** t_j within ~2^-24 relative). So the signal part of the score is scale·c_h·t_j = c_h·a_j almost
** exactly, independent of the bf16 rounding. The other D − n_sig coordinates of k_j are N(0,1)
** noise and those of q_h are N(0,1)·jitter / (scale·sqrt(D − n_sig)), which adds N(0, jitter²)
** to every score (jitter default 0.1 for RISING/LARGE/NEGATIVE, always 0 for EQUAL, so EQUAL's
** scores are bit-identical). The signal sits in the last coordinates so that for MLA (D = 576,
** DV = 512) it lands in the rope part, and V (the first DV columns) is plain N(0,1) data.
** v (if not NULL) ~ N(0, 1). All generated q, k, v values are bf16-representable.
*/
typedef enum kf_ref_attn_kind {
  KF_REF_ATTN_RANDOM = 0,
  KF_REF_ATTN_RISING,
  KF_REF_ATTN_EQUAL,
  KF_REF_ATTN_LARGE,
  KF_REF_ATTN_NEGATIVE,
  KF_REF_ATTN_N_KIND
} kf_ref_attn_kind;

typedef struct kf_ref_attn_gen {
  kf_ref_attn_kind kind;
  int64_t block;  /* RISING: KV block size in tokens (> 0; 0 = 64) */
  double rise;    /* RISING: per-block rise of the row max (0 = 24) */
  double level;   /* EQUAL/LARGE/NEGATIVE: score level (0 = 3 / +1000 / -1000) */
  double jitter;  /* std of the score noise (< 0 = none; 0 = default 0.1) */
} kf_ref_attn_gen;

const char *kf_ref_attn_kind_name(kf_ref_attn_kind kind); /* "random", "rising", ... */
int kf_ref_attn_kind_parse(const char *name);            /* -1 when unknown */

/* Fills q (B×H×D), k (B×HKV×S×D) and, when v != NULL, v (B×HKV×S×DV). For MLA call it with
** HKV = 1, k = the latent cache and v = NULL (V is then the first DV columns of k; DV is only
** checked against D in that case). scale must be finite and non-zero. */
int kf_ref_gen_attn(kf_rng *rng, const kf_ref_attn_gen *gen, int64_t B, int64_t H, int64_t HKV,
                    int64_t S, int64_t D, int64_t DV, double scale, float *q, float *k, float *v);

/* ---------------------------------------------------------------------------------------------
** Error statistics of a kernel's output against the reference.
**   max_abs   max_i |got_i − ref_i|
**   rel_l2    ‖got − ref‖₂ / ‖ref‖₂ (0 when both are 0; +Inf when only ref is 0)
**   max_ratio max_i |got_i − ref_i| / bound_i when a bound array is given (0 otherwise); a zero
**             bound with a non-zero error gives +Inf. ≤ 1 means "within the derived bound".
**   eff_bits  log2(max|ref| / max|got − ref|), the worst-case effective bits (DESIGN.md §4);
**             +Inf for an exact result, -Inf when max|ref| = 0 but the result is not exact.
**   snr_bits  log2(‖ref‖₂ / ‖got − ref‖₂), the SNR effective bits of refs/msd.md §4.
**   n_nonfinite elements where got or ref is NaN/Inf and they differ (NaN vs NaN and equal
**             infinities match, e.g. a propagated NaN input): they make max_abs, rel_l2 and
**             max_ratio +Inf and the bits -Inf (a NaN never passes as "small").
**   i_max     index of the largest error (of the first non-finite one if any; -1 if n = 0).
*/
typedef struct kf_ref_errs {
  double max_abs, rel_l2, max_ratio, eff_bits, snr_bits;
  double ref_max_abs; /* max |ref| */
  int64_t n_nonfinite, i_max;
} kf_ref_errs;

int kf_ref_err_stats(const float *got, const double *ref, int64_t n, kf_ref_errs *out);
int kf_ref_err_stats_bound(const float *got, const double *ref, const double *bound, int64_t n,
                           kf_ref_errs *out);
/* Same for a double-valued result (e.g. one reference against another). */
int kf_ref_err_stats_d(const double *got, const double *ref, const double *bound, int64_t n,
                       kf_ref_errs *out);

#endif

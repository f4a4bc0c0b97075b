/*
** kf_dispatch.c: thread split for AOT kernels and the generic gemm_q kernels (see kf_dispatch.h).
*/
#include "kf_dispatch.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- running an AOT kernel over its parallel range ---- */

typedef struct chunk {
  kf_dispatch_kernel_fn fn;
  void *const *args;
  int64_t lo, hi;
  void *ws;
} chunk;

static void *chunk_main(void *arg) {
  chunk *c = arg;
  if (c->lo < c->hi) c->fn(c->args, c->lo, c->hi, c->ws);
  return NULL;
}

int kf_dispatch_run(kf_dispatch_kernel_fn fn, void *const *args, int64_t par_total, size_t ws_bytes, int n_threads,
                    void *ws, size_t ws_given) {
  if (!fn || par_total < 0) return -1;
  if (n_threads < 1) n_threads = 1;
  if (n_threads > par_total) n_threads = par_total > 0 ? (int)par_total : 1;
  size_t ws_alloc = (ws_bytes + 63) / 64 * 64;
  chunk *c = calloc((size_t)n_threads, sizeof *c);
  pthread_t *th = calloc((size_t)n_threads, sizeof *th);
  int rc = c && th ? 0 : -1;
  for (int i = 0; !rc && i < n_threads; i++) {
    c[i].fn = fn;
    c[i].args = args;
    c[i].lo = par_total * i / n_threads;
    c[i].hi = par_total * (i + 1) / n_threads;
    if (ws_bytes == 0) continue;
    if (i == 0 && ws && ws_given >= ws_bytes) c[i].ws = ws;
    else if (!(c[i].ws = aligned_alloc(64, ws_alloc))) rc = -1;
    else memset(c[i].ws, 0, ws_alloc);
  }
  int started = 1;
  for (int i = 1; !rc && i < n_threads; i++, started++)
    if (pthread_create(&th[i], NULL, chunk_main, &c[i])) {
      rc = -1; /* run nothing more; join what started */
      break;
    }
  if (!rc) chunk_main(&c[0]);
  for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
  if (rc && started > 1) { /* some chunks ran: finish the rest here so the result is whole */
    chunk_main(&c[0]);
    for (int i = started; i < n_threads; i++) chunk_main(&c[i]);
    rc = 0;
  }
  for (int i = 0; c && i < n_threads; i++)
    if (c[i].ws && c[i].ws != ws) free(c[i].ws);
  free(c);
  free(th);
  return rc;
}

/* ---- generic gemm_q ---- */

static float bf16_to_f32(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static float f32_round_bf16(float f) { /* round to nearest even; NaN stays NaN */
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return f;
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  memcpy(&f, &u, sizeof f);
  return f;
}

typedef struct gemm_job {
  int64_t M, N, K, k_pad, bits, group, n_groups, n_pad;
  int n16k4;             /* 1: N16K4 (msd), 0: N16K1 (dequant) */
  int wround;
  const double *xhat;    /* [M][K] activations as the kernel means them */
  const uint8_t *w;
  const float *w_scale;
  float *y;
  int64_t nb_lo, nb_hi;  /* blocks of 16 output columns */
} gemm_job;

/* Signed weight code of (n, k) from the packed layout (kf_quant.h). */
static int wcode(const gemm_job *j, int64_t n, int64_t k) {
  int64_t nb = n / 16, nn = n % 16, idx;
  int hi = 0;
  if (j->n16k4) {
    int64_t kb = k / 4, kk = k % 4;
    if (j->bits == 8) idx = ((nb * (j->k_pad / 4) + kb) * 16 + nn) * 4 + kk;
    else {
      idx = ((nb * (j->k_pad / 8) + kb / 2) * 16 + nn) * 4 + kk;
      hi = (int)(kb & 1);
    }
  } else if (j->bits == 8) idx = (nb * j->k_pad + k) * 16 + nn;
  else {
    idx = (nb * (j->k_pad / 2) + k / 2) * 16 + nn;
    hi = (int)(k & 1);
  }
  int u = j->w[idx];
  if (j->bits == 4) u = hi ? u >> 4 : u & 15;
  return u - (j->bits == 8 ? 128 : 8);
}

static void *gemm_part(void *arg) {
  const gemm_job *j = arg;
  for (int64_t n = j->nb_lo * 16; n < j->nb_hi * 16 && n < j->N; n++)
    for (int64_t m = 0; m < j->M; m++) {
      double acc = 0;
      for (int64_t g = 0; g < j->n_groups; g++) {
        int64_t k0 = j->group ? g * j->group : 0, k1 = j->group ? k0 + j->group : j->K;
        if (k1 > j->K) k1 = j->K;
        float s = j->w_scale[g * j->n_pad + n];
        double part = 0;
        for (int64_t k = k0; k < k1; k++) {
          int q = wcode(j, n, k);
          if (j->n16k4) part += j->xhat[m * j->K + k] * q; /* MSD: scale the integer dot once */
          else {
            float wv = (float)q * s; /* dequant: the f32 weight (optionally bf16) */
            if (j->wround) wv = f32_round_bf16(wv);
            part += j->xhat[m * j->K + k] * (double)wv;
          }
        }
        acc += j->n16k4 ? part * (double)s : part;
      }
      j->y[m * j->N + n] = (float)acc;
    }
  return NULL;
}

static int gemm_run(gemm_job *base, int n_threads) {
  int64_t n_blocks = (base->N + 15) / 16;
  if (n_threads < 1) n_threads = 1;
  if (n_threads > n_blocks) n_threads = (int)n_blocks;
  gemm_job *jobs = calloc((size_t)n_threads, sizeof *jobs);
  pthread_t *th = calloc((size_t)n_threads, sizeof *th);
  if (!jobs || !th) {
    free(jobs);
    free(th);
    return -1;
  }
  int started = 1;
  for (int i = 0; i < n_threads; i++) {
    jobs[i] = *base;
    jobs[i].nb_lo = n_blocks * i / n_threads;
    jobs[i].nb_hi = n_blocks * (i + 1) / n_threads;
  }
  for (int i = 1; i < n_threads; i++, started++)
    if (pthread_create(&th[i], NULL, gemm_part, &jobs[i])) break;
  gemm_part(&jobs[0]);
  for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
  for (int i = started; i < n_threads; i++) gemm_part(&jobs[i]); /* threads we did not get */
  free(jobs);
  free(th);
  return 0;
}

static int gemm_setup(gemm_job *j, int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, const uint16_t *x,
                      const uint8_t *w, const float *w_scale, float *y) {
  memset(j, 0, sizeof *j);
  if (M <= 0 || N <= 0 || K <= 0 || (bits != 4 && bits != 8) || group < 0 || (group > 0 && group % 8) || !x ||
      !w || !w_scale || !y)
    return -1;
  if (group >= K) group = 0; /* a group covering all of K is per channel */
  j->M = M;
  j->N = N;
  j->K = K;
  j->k_pad = (K + 7) / 8 * 8;
  j->n_pad = (N + 15) / 16 * 16;
  j->bits = bits;
  j->group = group;
  j->n_groups = group ? (K + group - 1) / group : 1;
  j->w = w;
  j->w_scale = w_scale;
  j->y = y;
  return 0;
}

int kf_generic_msd_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t act_group,
                        int64_t passes, const uint16_t *x, const uint8_t *w, const float *w_scale, float *y,
                        int n_threads) {
  gemm_job j;
  if (gemm_setup(&j, M, N, K, bits, group, x, w, w_scale, y) || act_group < 0 || passes < 1 || passes > 4) return -1;
  double *xhat = malloc((size_t)(M * K) * sizeof(double));
  if (!xhat) return -1;
  int64_t ag = act_group > 0 && act_group < K ? act_group : K;
  for (int64_t m = 0; m < M; m++)
    for (int64_t g0 = 0; g0 < K; g0 += ag) {
      int64_t g1 = g0 + ag < K ? g0 + ag : K;
      double amax = 0;
      for (int64_t k = g0; k < g1; k++) amax = fmax(amax, fabs((double)bf16_to_f32(x[m * K + k])));
      for (int64_t k = g0; k < g1; k++) {
        double v = bf16_to_f32(x[m * K + k]), res = v, xh = 0, s = amax / 127.0;
        for (int64_t p = 0; p < passes && s > 0; p++, s /= 254.0) {
          double q = nearbyint(res / s); /* round half even (default rounding mode) */
          if (q > 127) q = 127;
          if (q < -127) q = -127;
          xh += q * s;
          res = v - xh;
        }
        xhat[m * K + k] = isfinite(v) ? xh : v;
      }
    }
  j.xhat = xhat;
  j.n16k4 = 1;
  int rc = gemm_run(&j, n_threads);
  free(xhat);
  return rc;
}

int kf_generic_dequant_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t wround,
                            const uint16_t *x, const uint8_t *w, const float *w_scale, float *y, int n_threads) {
  gemm_job j;
  if (gemm_setup(&j, M, N, K, bits, group, x, w, w_scale, y)) return -1;
  double *xhat = malloc((size_t)(M * K) * sizeof(double));
  if (!xhat) return -1;
  for (int64_t i = 0; i < M * K; i++) xhat[i] = bf16_to_f32(x[i]);
  j.xhat = xhat;
  j.n16k4 = 0;
  j.wround = wround != 0;
  int rc = gemm_run(&j, n_threads);
  free(xhat);
  return rc;
}

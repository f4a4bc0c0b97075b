/*
** kf_dispatch.c: the persistent pool, CPU detection and the generic kernels (see kf_dispatch.h).
*/
#include "kf_dispatch.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---- the persistent pool ---- */

typedef void (*task_fn)(void *arg, int64_t lo, int64_t hi, void *ws);

static struct pool {
  pthread_mutex_t run_lock; /* one run (and init/shutdown) at a time */
  pthread_mutex_t m;
  pthread_cond_t go, done;
  pthread_t *th;
  int n_workers, tried, quit;
  uint64_t gen; /* bumped per job */
  /* the current job */
  task_fn fn;
  void *arg;
  int64_t total;
  int n_chunks, n_left;
  char *ws_base;
  size_t ws_stride;
  /* memory kept between calls */
  void *own_ws, *user_ws;
  size_t own_bytes, user_bytes;
  void *scratch;
  size_t scratch_bytes;
} P = {.run_lock = PTHREAD_MUTEX_INITIALIZER, .m = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER,
       .done = PTHREAD_COND_INITIALIZER};

static void run_chunk(int i) {
  int64_t lo = P.total * i / P.n_chunks, hi = P.total * (i + 1) / P.n_chunks;
  if (lo < hi) P.fn(P.arg, lo, hi, P.ws_base ? P.ws_base + (size_t)i * P.ws_stride : NULL);
}

static void *worker_main(void *arg) {
  int id = (int)(intptr_t)arg; /* 1..n_workers: chunk id */
  uint64_t seen = 0;
  pthread_mutex_lock(&P.m);
  for (;;) {
    while (P.gen == seen && !P.quit) pthread_cond_wait(&P.go, &P.m);
    if (P.quit) break;
    seen = P.gen;
    if (id >= P.n_chunks) continue;
    pthread_mutex_unlock(&P.m);
    run_chunk(id);
    pthread_mutex_lock(&P.m);
    if (--P.n_left == 0) pthread_cond_signal(&P.done);
  }
  pthread_mutex_unlock(&P.m);
  return NULL;
}

static void pool_stop_locked(void) {
  pthread_mutex_lock(&P.m);
  P.quit = 1;
  pthread_cond_broadcast(&P.go);
  pthread_mutex_unlock(&P.m);
  for (int i = 0; i < P.n_workers; i++) pthread_join(P.th[i], NULL);
  free(P.th);
  P.th = NULL;
  P.n_workers = 0;
  P.quit = 0;
}

static int pool_start_locked(int n_threads) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 && n < 1024 ? (int)n : 1;
  }
  if (P.n_workers) pool_stop_locked();
  P.tried = 1;
  if (n_threads <= 1) return 0;
  P.th = calloc((size_t)(n_threads - 1), sizeof *P.th);
  if (!P.th) return -1;
  for (int i = 0; i < n_threads - 1; i++) {
    if (pthread_create(&P.th[i], NULL, worker_main, (void *)(intptr_t)(i + 1))) break;
    P.n_workers++;
  }
  return P.n_workers == n_threads - 1 ? 0 : -1;
}

int kf_dispatch_init(int n_threads) {
  pthread_mutex_lock(&P.run_lock);
  int rc = pool_start_locked(n_threads);
  pthread_mutex_unlock(&P.run_lock);
  return rc;
}

void kf_dispatch_shutdown(void) {
  pthread_mutex_lock(&P.run_lock);
  if (P.n_workers) pool_stop_locked();
  P.tried = 0;
  free(P.own_ws);
  free(P.scratch);
  P.own_ws = P.scratch = NULL;
  P.own_bytes = P.scratch_bytes = 0;
  pthread_mutex_unlock(&P.run_lock);
}

int kf_dispatch_pool_threads(void) {
  pthread_mutex_lock(&P.run_lock);
  int n = P.n_workers + 1;
  pthread_mutex_unlock(&P.run_lock);
  return n;
}

void kf_dispatch_set_workspace(void *ws, size_t bytes) {
  pthread_mutex_lock(&P.run_lock);
  P.user_ws = ws;
  P.user_bytes = ws ? bytes : 0;
  pthread_mutex_unlock(&P.run_lock);
}

/* A buffer of at least `bytes` (64-byte aligned) kept in *buf / *have, grown when needed. */
static void *grow(void **buf, size_t *have, size_t bytes) {
  if (*have >= bytes && *buf) return *buf;
  size_t n = (bytes + 63) / 64 * 64;
  void *b = aligned_alloc(64, n ? n : 64);
  if (!b) return NULL;
  free(*buf);
  *buf = b;
  *have = n;
  return b;
}

/* Runs task over [0, total) on up to n_threads chunks, each with ws_bytes of zeroed workspace.
** P.run_lock must be held. */
static int pool_run_locked(task_fn fn, void *arg, int64_t total, size_t ws_bytes, int n_threads) {
  if (n_threads > 1 && !P.tried) pool_start_locked(n_threads); /* lazily, once */
  int n = n_threads < 1 ? 1 : n_threads;
  if (n > P.n_workers + 1) n = P.n_workers + 1;
  if (n > total) n = total > 0 ? (int)(total < 1024 ? total : 1024) : 1;
  size_t stride = (ws_bytes + 63) / 64 * 64;
  char *base = NULL;
  if (stride) {
    size_t need = stride * (size_t)n;
    if (P.user_ws && P.user_bytes >= need) base = P.user_ws;
    else if (!(base = grow(&P.own_ws, &P.own_bytes, need))) return -1;
    memset(base, 0, need);
  }
  P.fn = fn;
  P.arg = arg;
  P.total = total;
  P.n_chunks = n;
  P.ws_base = base;
  P.ws_stride = stride;
  if (n > 1) {
    pthread_mutex_lock(&P.m);
    P.n_left = n - 1;
    P.gen++;
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.m);
  }
  run_chunk(0);
  if (n > 1) {
    pthread_mutex_lock(&P.m);
    while (P.n_left > 0) pthread_cond_wait(&P.done, &P.m);
    pthread_mutex_unlock(&P.m);
  }
  return 0;
}

typedef struct aot_job {
  kf_dispatch_kernel_fn fn;
  void *const *args;
} aot_job;

static void aot_task(void *arg, int64_t lo, int64_t hi, void *ws) {
  const aot_job *j = arg;
  j->fn(j->args, lo, hi, ws);
}

int kf_dispatch_run(kf_dispatch_kernel_fn fn, void *const *args, int64_t par_total, size_t ws_bytes, int n_threads) {
  if (!fn || par_total < 0) return -1;
  aot_job j = {fn, args};
  pthread_mutex_lock(&P.run_lock);
  int rc = pool_run_locked(aot_task, &j, par_total, ws_bytes, n_threads);
  pthread_mutex_unlock(&P.run_lock);
  return rc;
}

/* ---- CPU features, forced ISA, verbosity ---- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static unsigned g_features;
static int g_verbose;
static char g_forced[48];

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    uint64_t xcr0 = 0;
    if (osxsave) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      xcr0 = ((uint64_t)hi << 32) | lo;
    }
    int ymm = (xcr0 & 6) == 6, zmm = (xcr0 & 0xe6) == 0xe6;
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0, x;
    if (__get_cpuid_count(7, 0, &x, &b7, &c7, &d7)) {
      unsigned b71, c71, d71;
      if (__get_cpuid_count(7, 1, &a71, &b71, &c71, &d71) == 0) a71 = 0;
    }
    int avx2 = (b7 >> 5) & 1, bmi2 = (b7 >> 8) & 1;
    int f = (b7 >> 16) & 1, dq = (b7 >> 17) & 1, cd = (b7 >> 28) & 1, bw = (b7 >> 30) & 1, vl = (b7 >> 31) & 1;
    if (ymm && avx && avx2 && fma && f16c && bmi2) {
      g_features |= KF_CPU_AVX2;
      if ((a71 >> 4) & 1) g_features |= KF_CPU_AVX_VNNI;
      if (zmm && f && dq && cd && bw && vl) {
        g_features |= KF_CPU_AVX512;
        if ((c7 >> 11) & 1) g_features |= KF_CPU_AVX512_VNNI;
        if ((a71 >> 5) & 1) g_features |= KF_CPU_AVX512_BF16;
      }
    }
  }
#endif
  const char *v = getenv("KFORGE_VERBOSE");
  g_verbose = v && (strstr(v, "dispatch") || strstr(v, "all"));
  const char *isa = getenv("KFORGE_ISA");
  if (isa) snprintf(g_forced, sizeof g_forced, "%s", isa);
}

unsigned kf_dispatch_cpu_features(void) {
  pthread_once(&g_once, detect);
  return g_features;
}

const char *kf_dispatch_forced_isa(void) {
  pthread_once(&g_once, detect);
  return g_forced;
}

void kf_dispatch_force_isa(const char *target) {
  pthread_once(&g_once, detect);
  snprintf(g_forced, sizeof g_forced, "%s", target ? target : "");
}

int kf_dispatch_verbose(void) {
  pthread_once(&g_once, detect);
  return g_verbose;
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

/* Output columns of the blocks of 16 [nb_lo, nb_hi). */
static void gemm_part(void *arg, int64_t nb_lo, int64_t nb_hi, void *ws) {
  const gemm_job *j = arg;
  (void)ws;
  for (int64_t n = nb_lo * 16; n < nb_hi * 16 && n < j->N; n++)
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
  pthread_mutex_lock(&P.run_lock);
  double *xhat = grow(&P.scratch, &P.scratch_bytes, (size_t)(M * K) * sizeof(double));
  if (!xhat) {
    pthread_mutex_unlock(&P.run_lock);
    return -1;
  }
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
  int rc = pool_run_locked(gemm_part, &j, (N + 15) / 16, 0, n_threads);
  pthread_mutex_unlock(&P.run_lock);
  return rc;
}

int kf_generic_dequant_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t wround,
                            const uint16_t *x, const uint8_t *w, const float *w_scale, float *y, int n_threads) {
  gemm_job j;
  if (gemm_setup(&j, M, N, K, bits, group, x, w, w_scale, y)) return -1;
  pthread_mutex_lock(&P.run_lock);
  double *xhat = grow(&P.scratch, &P.scratch_bytes, (size_t)(M * K) * sizeof(double));
  if (!xhat) {
    pthread_mutex_unlock(&P.run_lock);
    return -1;
  }
  for (int64_t i = 0; i < M * K; i++) xhat[i] = bf16_to_f32(x[i]);
  j.xhat = xhat;
  j.n16k4 = 0;
  j.wround = wround != 0;
  int rc = pool_run_locked(gemm_part, &j, (N + 15) / 16, 0, n_threads);
  pthread_mutex_unlock(&P.run_lock);
  return rc;
}

/* ---- generic decode attention ---- */

typedef struct attn_job {
  int64_t H, G, S, D, DV;   /* G = query heads per kv head */
  int64_t k_row, v_row;     /* elements between tokens of k and of v */
  int64_t k_head, v_head;   /* elements between kv heads (or sequences) */
  const uint16_t *q, *k, *v;
  float *out;
} attn_job;

/* Query rows [lo, hi) of B*H: softmax(q K^T / sqrt(D)) V in fp64; ws holds S scores. */
static void attn_part(void *arg, int64_t lo, int64_t hi, void *ws) {
  const attn_job *j = arg;
  double *p = ws, scale = 1.0 / sqrt((double)j->D);
  for (int64_t r = lo; r < hi; r++) {
    int64_t b = r / j->H, h = r % j->H, kvh = b * (j->H / j->G) + h / j->G;
    const uint16_t *q = j->q + r * j->D, *k = j->k + kvh * j->k_head, *v = j->v + kvh * j->v_head;
    double m = -INFINITY, l = 0;
    for (int64_t t = 0; t < j->S; t++) {
      double s = 0;
      for (int64_t d = 0; d < j->D; d++) s += (double)bf16_to_f32(q[d]) * bf16_to_f32(k[t * j->k_row + d]);
      p[t] = s * scale;
      if (p[t] > m) m = p[t];
    }
    for (int64_t t = 0; t < j->S; t++) l += (p[t] = exp(p[t] - m));
    for (int64_t e = 0; e < j->DV; e++) {
      double o = 0;
      for (int64_t t = 0; t < j->S; t++) o += p[t] * bf16_to_f32(v[t * j->v_row + e]);
      j->out[r * j->DV + e] = (float)(o / l);
    }
  }
}

static int attn_run(attn_job *j, int64_t B, int n_threads) {
  pthread_mutex_lock(&P.run_lock);
  int rc = pool_run_locked(attn_part, j, B * j->H, (size_t)j->S * sizeof(double), n_threads);
  pthread_mutex_unlock(&P.run_lock);
  return rc;
}

int kf_generic_fa_decode(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV, const uint16_t *q,
                         const uint16_t *k, const uint16_t *v, float *out, int n_threads) {
  if (HKV == 0) HKV = H;
  if (DV == 0) DV = D;
  if (B <= 0 || H <= 0 || HKV <= 0 || H % HKV || S <= 0 || D <= 0 || DV <= 0 || !q || !k || !v || !out) return -1;
  attn_job j = {H, H / HKV, S, D, DV, D, DV, S * D, S * DV, q, k, v, out};
  return attn_run(&j, B, n_threads);
}

int kf_generic_mla_decode(int64_t B, int64_t H, int64_t S, int64_t D, int64_t DV, const uint16_t *q,
                          const uint16_t *kv, float *out, int n_threads) {
  if (B <= 0 || H <= 0 || S <= 0 || D <= 0 || DV <= 0 || DV > D || !q || !kv || !out) return -1;
  attn_job j = {H, H, S, D, DV, D, D, S * D, S * D, q, kv, kv, out};
  return attn_run(&j, B, n_threads);
}

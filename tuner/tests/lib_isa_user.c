/*
** lib_isa_user.c: a program that links a multi-ISA `kforge lib` library (cpu-avx2 and
** cpu-avx512-vnni variants of msd_gemm, fa_decode and amla_decode, plus msd_attention and
** msd_mxfp4_gemm, which have no generic kernel) with cc and nothing of kforge. It packs the
** GEMM weights with the kf_quant.h shipped in the library's directory, and for each ISA it can
** force (KFORGE_ISA semantics through kforge_kernels_force_isa) runs every kernel and checks
** every output against an fp64 reference under a bound derived from the arithmetic.
** pthread_create is interposed: the pool is created once (init, or lazily after shutdown) and
** repeated calls create no threads. Prints one line per case; exit status 1 on any failure.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_quant.h"
#include "kforge_kernels.h"

static int n_created; /* pthread_create calls */
int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
  __atomic_add_fetch(&n_created, 1, __ATOMIC_SEQ_CST);
  return real(th, attr, fn, arg);
}

static int failures;
#define CHECK(cond, ...)                                                                              \
  do {                                                                                                \
    int ok_ = (cond);                                                                                 \
    printf("%s: ", ok_ ? "ok  " : "FAIL");                                                            \
    printf(__VA_ARGS__);                                                                              \
    printf("\n");                                                                                     \
    failures += !ok_;                                                                                 \
  } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* xorshift64, uniform in (-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}
static double gamma_n(double n) { return n * ldexp(1.0, -24) / (1 - n * ldexp(1.0, -24)); }

static uint16_t *bf16_random(int64_t n, double scale, double *vals) {
  uint16_t *b = malloc((size_t)n * 2);
  for (int64_t i = 0; i < n; i++) {
    b[i] = kf_bf16_from_f32((float)(urand() * scale));
    vals[i] = kf_bf16_to_f32(b[i]);
  }
  return b;
}

/* msd_gemm M x N x K, 8-bit per channel, 2 passes: |err| <= sum|w| s_2/2 + gamma(f32 combine). */
static double check_gemm(int64_t M, int64_t N, int64_t K, int n_threads, const char **variant) {
  *variant = "(not run)";
  double *xd = malloc((size_t)(M * K) * sizeof(double));
  uint16_t *x = bf16_random(M * K, 2.0, xd);
  float *wf = malloc((size_t)(N * K) * sizeof(float)), *y = malloc((size_t)(M * N) * sizeof(float));
  for (int64_t i = 0; i < N * K; i++) wf[i] = (float)(urand() / sqrt((double)K));
  kf_qweight qw;
  char err[200];
  if (kf_qweight_quantize(&qw, wf, N, K, 8, (K + 7) / 8 * 8, KF_WLAYOUT_N16K4, err, sizeof err)) { /* per channel */
    printf("FAIL: kf_qweight_quantize: %s\n", err);
    failures++;
    return INFINITY;
  }
  for (int64_t i = 0; i < M * N; i++) y[i] = NAN;
  *variant = kforge_kernels_msd_gemm_variant(M, N, K, 0, 8, 0);
  int rc = kforge_kernels_msd_gemm(M, N, K, 0, 8, 0, x, qw.packed, qw.scales, y, n_threads);
  double worst = rc ? INFINITY : 0;
  int64_t nspan = (K + 7) / 8 * 8 / 256 + 1;
  for (int64_t m = 0; m < M && !rc; m++) {
    double amax = 0;
    for (int64_t k = 0; k < K; k++) amax = fmax(amax, fabs(xd[m * K + k]));
    double ex = 0.5 * amax / 127 / 254 * (1 + ldexp(1.0, -10));
    for (int64_t n = 0; n < N; n++) {
      double ref = 0, aw_ax = 0, aw = 0;
      for (int64_t k = 0; k < K; k++) {
        double wv = kf_qweight_value(&qw, n, k);
        ref += xd[m * K + k] * wv;
        aw_ax += fabs(xd[m * K + k] * wv);
        aw += fabs(wv);
      }
      double bound = aw * ex + gamma_n((double)(2 * nspan + 3)) * (aw_ax + aw * ex);
      double e = fabs((double)y[m * N + n] - ref) / bound;
      if (!(e <= worst)) worst = e;
    }
  }
  kf_qweight_free(&qw);
  free(xd);
  free(x);
  free(wf);
  free(y);
  return worst;
}

/* Decode attention, fp64 reference; bound (2^-7 + extra + gamma_(S+D)) max|v| (P rounded to
** bf16 before P V; AMLA adds 2^-9 per block). mla: kv[B][S][D] with values = first DV columns. */
static double check_attn(int mla, int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV, int n_threads,
                         const char **variant) {
  int64_t hkv = HKV ? HKV : H; /* HKV = 0 is passed on: the kernels read it as H */
  int64_t nk = mla ? B * S * D : B * hkv * S * D, nv = mla ? 0 : B * hkv * S * DV;
  double *qd = malloc((size_t)(B * H * D) * sizeof(double)), *kd = malloc((size_t)nk * sizeof(double)),
         *vd = malloc((size_t)(nv + 1) * sizeof(double));
  uint16_t *q = bf16_random(B * H * D, 1.0, qd), *k = bf16_random(nk, 1.0, kd), *v = mla ? k : bf16_random(nv, 1.0, vd);
  const double *vals = mla ? kd : vd;
  float *out = malloc((size_t)(B * H * DV) * sizeof(float));
  for (int64_t i = 0; i < B * H * DV; i++) out[i] = NAN;
  int rc;
  if (mla) {
    *variant = kforge_kernels_amla_decode_variant(B, H, S, D, DV, 1);
    rc = kforge_kernels_amla_decode(B, H, S, D, DV, 1, q, k, out, n_threads);
  } else {
    *variant = kforge_kernels_fa_decode_variant(B, H, HKV, S, D, 0, 1, 0, 0);
    rc = kforge_kernels_fa_decode(B, H, HKV, S, D, 0, 1, 0, 0, q, k, v, out, n_threads);
  }
  double worst = rc ? INFINITY : 0, *p = malloc((size_t)S * sizeof(double));
  int64_t G = mla ? H : H / hkv, vrow = mla ? D : DV;
  for (int64_t r = 0; r < B * H && !rc; r++) {
    int64_t b = r / H, kvh = mla ? b : b * hkv + (r % H) / G;
    const double *kk = kd + kvh * S * D, *vv = vals + kvh * S * vrow;
    double m = -INFINITY, l = 0, vmax = 0;
    for (int64_t t = 0; t < S; t++) {
      double s = 0;
      for (int64_t d = 0; d < D; d++) s += qd[r * D + d] * kk[t * D + d];
      p[t] = s / sqrt((double)D);
      m = fmax(m, p[t]);
    }
    for (int64_t t = 0; t < S; t++) l += (p[t] = exp(p[t] - m));
    for (int64_t e = 0; e < DV; e++) {
      double o = 0;
      for (int64_t t = 0; t < S; t++) {
        o += p[t] * vv[t * vrow + e];
        vmax = fmax(vmax, fabs(vv[t * vrow + e]));
      }
      double bound = (ldexp(1.0, -7) + (mla ? ldexp(1.0, -9) * (double)(S / 64 + 1) : 0) + gamma_n((double)(S + D))) *
                     vmax;
      double err = fabs((double)out[r * DV + e] - o / l) / bound;
      if (!(err <= worst)) worst = err;
    }
  }
  free(p);
  free(qd);
  free(kd);
  free(vd);
  free(q);
  if (!mla) free(v);
  free(k);
  free(out);
  return worst;
}

int main(int argc, char **argv) {
  const char *host_has = argc > 1 ? argv[1] : ""; /* targets this CPU runs, "cpu-avx2,cpu-avx512-vnni" */
  static const char *const isas[] = {"cpu-avx2", "cpu-avx512-vnni"};
  CHECK(kforge_kernels_init(2) == 0 && n_created == 1, "init(2): one worker thread (%d pthread_create)", n_created);
  int created_after_init = n_created;
  for (int pass = 0; pass < 2; pass++) { /* twice: the second round must create nothing */
    for (int i = 0; i < 2; i++) {
      if (!strstr(host_has, isas[i])) {
        printf("skip: this CPU does not run %s\n", isas[i]);
        continue;
      }
      kforge_kernels_force_isa(isas[i]);
      char want[64];
      snprintf(want, sizeof want, "_%s", isas[i]);
      for (char *c = want; *c; c++)
        if (*c == '-') *c = '_';
      const char *v;
      double w = check_gemm(4, 80, 200, 2, &v);
      CHECK(w <= 1 && strstr(v, want) && strstr(v, "passes=2"), "[%s] msd_gemm tuned 4x80x200 via %s: err/bound %.3f",
            isas[i], v, w);
      w = check_attn(0, 2, 8, 2, 100, 64, 64, 2, &v);
      CHECK(w <= 1 && strstr(v, want), "[%s] fa_decode tuned B=2,H=8,HKV=2,S=100,D=64 via %s: err/bound %.3f", isas[i], v,
            w);
      w = check_attn(1, 1, 16, 0, 70, 96, 64, 2, &v);
      CHECK(w <= 1 && strstr(v, want), "[%s] amla_decode tuned B=1,H=16,S=70,D=96,DV=64 via %s: err/bound %.3f", isas[i],
            v, w);
    }
    kforge_kernels_force_isa(NULL);
    const char *v;
    double w = check_gemm(3, 35, 77, 2, &v);
    CHECK(w <= 1 && !strncmp(v, "generic", 7), "msd_gemm untuned 3x35x77 via %s: err/bound %.3f", v, w);
    w = check_attn(0, 1, 4, 0, 33, 32, 32, 2, &v);
    CHECK(w <= 1 && !strncmp(v, "generic", 7), "fa_decode untuned (MHA, S=33, D=32) via %s: err/bound %.3f", v, w);
    w = check_attn(1, 2, 2, 0, 40, 48, 16, 2, &v);
    CHECK(w <= 1 && !strncmp(v, "generic", 7), "amla_decode untuned via %s: err/bound %.3f", v, w);
    int rc = kforge_kernels_msd_attention(1, 4, 0, 999, 128, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 2);
    CHECK(rc == -2 && !strcmp(kforge_kernels_msd_attention_variant(1, 4, 0, 999, 128, 0, 0, 0), "none"),
          "msd_attention outside the tuned list: -2 (no generic: the cache layout depends on bs)");
    rc = kforge_kernels_msd_mxfp4_gemm(3, 64, 64, 1, 1, NULL, NULL, NULL, NULL, 2);
    CHECK(rc == -2, "msd_mxfp4_gemm outside the tuned list: -2");
    CHECK(n_created == created_after_init, "round %d: no thread created by the calls (%d pthread_create in all)", pass,
          n_created);
  }
  kforge_kernels_shutdown();
  const char *v;
  double w = check_gemm(2, 20, 40, 2, &v);
  CHECK(w <= 1 && n_created == created_after_init + 1, "after shutdown: the first call recreates the pool lazily (%d)",
        n_created);
  for (int i = 0; i < 5; i++) check_gemm(2, 20, 40, 2, &v);
  CHECK(n_created == created_after_init + 1, "then 5 more calls create none (%d)", n_created);
  static char ws[1 << 20] __attribute__((aligned(64)));
  kforge_kernels_set_workspace(ws, sizeof ws);
  w = check_attn(0, 1, 4, 0, 33, 32, 32, 2, &v);
  CHECK(w <= 1, "with a caller workspace: fa_decode correct (%.3f)", w);
  kforge_kernels_set_workspace(NULL, 0);
  kforge_kernels_shutdown();
  printf("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}

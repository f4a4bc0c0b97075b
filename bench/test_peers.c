/*
** test_peers.c: smoke test of the GEMM peers. Every peer's output on small,
** odd shapes is checked against kf_ref_gemm on exactly the operands the peer reads, within a bound
** derived from its arithmetic:
**   dnnl_bf16  bf16 products are exact in f32, accumulation in f32: |e| ≤ (K+2)·2^-24·Σ|w||x|
**   blas_deq   f32 dequant (one rounding per weight) + f32 sgemm:     |e| ≤ (K+2)·2^-24·Σ|w||x|
**   dnnl_u8s8  the integer dot product is exact in s32; converting it to f32 and applying the
**              f32 output scale are two roundings:                   |e| ≤ 2·2^-24·|acc|·scale
** Also: warm and cold (rotating set) runs give the same result from every copy, and bad
** arguments give messages, not crashes. (The timing helpers themselves: tests/test_bench.c.)
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kf_peers.h"
#include "kf_ref.h"
#include "kf_report.h"

typedef struct problem {
  int64_t M, N, K;
  int8_t *wq;
  float *w_scale, *x;
} problem;

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "test_peers: out of memory\n");
    exit(2);
  }
  return p;
}

static problem make_problem(int64_t M, int64_t N, int64_t K, uint64_t seed) {
  problem p = {M, N, K, xmalloc((size_t)(N * K)), xmalloc((size_t)N * 4),
               xmalloc((size_t)(M * K) * 4)};
  kf_rng rng;
  kf_rng_seed(&rng, seed);
  for (int64_t i = 0; i < N * K; i++) p.wq[i] = (int8_t)((int)kf_rng_below(&rng, 255) - 127);
  for (int64_t n = 0; n < N; n++)
    p.w_scale[n] = (float)((0.5 + kf_rng_uniform(&rng)) / (127.0 * sqrt((double)K)));
  kf_ref_fill(&rng, KF_REF_OUTLIER, 1.0, 1, M, K, p.x);
  return p;
}

static void free_problem(problem *p) {
  free(p->wq);
  free(p->w_scale);
  free(p->x);
}

/* Reference y and per-element bound for what `kind` computes on problem p. */
static void reference(kf_peer_kind kind, const problem *p, double *y, double *bound) {
  int64_t M = p->M, N = p->N, K = p->K;
  double *w = xmalloc((size_t)(N * K) * sizeof *w);
  double *abs_y = xmalloc((size_t)(M * N) * sizeof *abs_y);
  if (kind == KF_PEER_DNNL_U8S8) {
    uint8_t *u = xmalloc((size_t)(M * K));
    float *xi = xmalloc((size_t)(M * K) * sizeof *xi);
    float s_x = kf_peer_quantize_u8(p->x, M * K, u);
    for (int64_t i = 0; i < M * K; i++) xi[i] = (float)((int)u[i] - 128);
    for (int64_t i = 0; i < N * K; i++) w[i] = p->wq[i];
    kf_ref_gemm(M, N, K, xi, w, y, abs_y); /* exact integers */
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double scale = (double)(s_x * p->w_scale[n]); /* the f32 output scale the peer uses */
        y[m * N + n] *= scale;
        bound[m * N + n] = 2 * 0x1p-24 * fabs(y[m * N + n]) + 1e-300;
      }
    free(u);
    free(xi);
  } else {
    for (int64_t n = 0; n < N; n++)
      for (int64_t k = 0; k < K; k++) {
        int8_t c = p->wq[n * K + k];
        w[n * K + k] = kind == KF_PEER_DNNL_BF16 ? (double)kf_peer_bf16_weight(c, p->w_scale[n])
                                                 : (double)c * (double)p->w_scale[n];
      }
    kf_ref_gemm(M, N, K, p->x, w, y, abs_y);
    for (int64_t i = 0; i < M * N; i++) bound[i] = (double)(K + 2) * 0x1p-24 * abs_y[i];
  }
  free(w);
  free(abs_y);
}

/* Creates the peer, runs it on iterations 0 .. n_iter−1 (several weight copies when cold) and
** checks every result. */
static void check_peer(kf_peer_kind kind, const problem *p, int threads, int cold) {
  char name[64], err[256] = "";
  snprintf(name, sizeof name, "%s_%lldx%lldx%lld_t%d%s", kf_peer_name(kind), (long long)p->M,
           (long long)p->N, (long long)p->K, threads, cold ? "_cold" : "");
  kf_peer *peer = kf_peer_create(kind, p->M, p->N, p->K, p->wq, p->w_scale, p->x, threads, cold,
                                 err, sizeof err);
  if (!peer) {
    report(0, name, "create failed: %s", err);
    return;
  }
  int64_t MN = p->M * p->N;
  double *y = xmalloc((size_t)MN * sizeof *y), *bound = xmalloc((size_t)MN * sizeof *bound);
  reference(kind, p, y, bound);
  int n_iter = cold ? 3 : 1, rc = 0;
  kf_ref_errs worst = {0};
  for (int it = 0; it < n_iter && !rc; it++) {
    /* iteration it·(n/3) reaches copies at the start, middle and end of the set */
    int64_t iter = (int64_t)it * (kf_peer_n_copies(peer) / 3 + 1);
    rc = kf_peer_run(peer, iter, err, sizeof err);
    kf_ref_errs e;
    kf_ref_err_stats_bound(kf_peer_y(peer), y, bound, MN, &e);
    if (it == 0 || !(e.max_ratio <= worst.max_ratio)) worst = e;
  }
  report(rc == 0 && worst.max_ratio <= 1, name,
         "max|err| %.3g  err/bound %.3f  bits %.1f  copies %d  impl %s%s%s", worst.max_abs,
         worst.max_ratio, worst.eff_bits, kf_peer_n_copies(peer), kf_peer_impl(peer),
         rc ? "  run failed: " : "", rc ? err : "");
  kf_peer_destroy(peer);
  free(y);
  free(bound);
}

static void test_bad_args(void) {
  char err[256] = "";
  int8_t wq[4] = {0};
  float s[2] = {1, 1}, x[4] = {0};
  int ok = 1;
  ok &= !kf_peer_create(KF_PEER_DNNL_BF16, 0, 2, 2, wq, s, x, 1, 0, err, sizeof err) &&
        strstr(err, "bad shape") != NULL;
  ok &= !kf_peer_create(KF_PEER_BLAS_DEQ, 1, 2, 2, wq, s, x, 0, 0, err, sizeof err) &&
        strstr(err, "threads") != NULL;
  ok &= !kf_peer_create(KF_PEER_DNNL_U8S8, 1, 2, 2, NULL, s, x, 1, 0, err, sizeof err) &&
        strstr(err, "NULL") != NULL;
  ok &= !kf_peer_create(KF_PEER_N, 1, 2, 2, wq, s, x, 1, 0, err, sizeof err) &&
        strstr(err, "unknown") != NULL;
  kf_peer_result r[3];
  ok &= kf_peers_gemm(1, -1, 4, 1, 0, 0.1, r, 3) == -1 && strstr(r[0].note, "bad") != NULL;
  report(ok, "peers_reject_bad_args", "bad shape, threads, NULL, kind -> message (last: %s)", err);

  /* u8 quantization rule by hand: max|x| = 2.54 -> s_x = 0.02; x = 1 -> 50 + 128. */
  float xq[3] = {2.54f, -2.54f, 1.0f};
  uint8_t u[3];
  float s_x = kf_peer_quantize_u8(xq, 3, u);
  report(fabsf(s_x - 0.02f) < 1e-8f && u[0] == 255 && u[1] == 1 && u[2] == 178, "quantize_u8_hand",
         "s_x %.6g u = %d %d %d (255 1 178)", s_x, u[0], u[1], u[2]);
}

int main(void) {
  char libs[512];
  kf_peers_describe(libs, sizeof libs);
  printf("# %s\n", libs);
  test_bad_args();
  const int64_t shapes[][3] = {{1, 17, 33}, {3, 64, 100}, {16, 48, 256}, {33, 40, 1000}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    problem p = make_problem(shapes[s][0], shapes[s][1], shapes[s][2], 77 + s);
    for (int kind = 0; kind < KF_PEER_N; kind++) check_peer((kf_peer_kind)kind, &p, 2, 0);
    free_problem(&p);
  }
  /* One thread, and a cold rotating set (sized against the real LLC) on a 256 KiB weight. */
  problem p = make_problem(4, 256, 1024, 99);
  for (int kind = 0; kind < KF_PEER_N; kind++) {
    check_peer((kf_peer_kind)kind, &p, 1, 0);
    check_peer((kf_peer_kind)kind, &p, 2, 1);
  }
  free_problem(&p);

  /* The whole timing path on a small shape. */
  kf_peer_result res[KF_PEER_N];
  int n = kf_peers_gemm(8, 128, 512, 2, 0, 0.02, res, KF_PEER_N), all_ok = n == KF_PEER_N;
  for (int i = 0; i < n; i++) all_ok &= res[i].ok && res[i].median_s > 0 && res[i].n_runs >= 3;
  report(all_ok, "peers_gemm_timing", "%d peers timed: %s %.1f us, %s %.1f us, %s %.1f us", n,
         res[0].name, res[0].median_s * 1e6, res[1].name, res[1].median_s * 1e6, res[2].name,
         res[2].median_s * 1e6);

  if (n_fail) printf("test_peers: %d case(s) FAILED\n", n_fail);
  else printf("test_peers: all cases passed\n");
  return n_fail ? 1 : 0;
}

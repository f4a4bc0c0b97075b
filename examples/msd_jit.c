/*
** msd_jit.c: a program that uses an installed libkforge to generate, JIT-compile and run an MSD
** GEMM at run time (no command line), then checks it against a plain loop.
**
**   y[M,N] = x[M,K] (bf16) * W[N,K]^T    W: int8 codes per output channel (kforge/quant.h)
**
** MSD splits each activation row into `passes` int8 parts that multiply the weight codes
** directly; with 2 passes the result is within ~2^-15 of the exact product of the bf16
** activations and the quantized weights. Build against an install prefix P:
**   cc msd_jit.c $(pkg-config --cflags --libs kforge kforge-quant) -o msd_jit
** or with CMake: find_package(kforge) and kforge::kforge kforge::quant (examples/CMakeLists.txt).
** Usage: msd_jit [M N K [PASSES]]    (default 4 200 300 2); exit status 0 when the check holds.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kforge/kforge.h>
#include <kforge/quant.h>

static double uniform(unsigned long long *s) { /* xorshift64*, in [-1, 1) */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (double)((*s * 2685821657736338717ull) >> 11) / 4503599627370496.0 - 1.0;
}

int main(int argc, char **argv) {
  long M = argc > 3 ? atol(argv[1]) : 4, N = argc > 3 ? atol(argv[2]) : 200, K = argc > 3 ? atol(argv[3]) : 300;
  long passes = argc > 4 ? atol(argv[4]) : 2;
  if (M < 1 || N < 1 || K < 1 || passes < 1 || passes > 3) {
    fprintf(stderr, "usage: msd_jit [M N K [PASSES 1-3]]\n");
    return 2;
  }
  char shape[128], sets[32];
  snprintf(shape, sizeof shape, "M=%ld,N=%ld,K=%ld", M, N, K);
  snprintf(sets, sizeof sets, "passes=%ld", passes);

  kforge *kf = kforge_new();
  kforge_kernel *k = NULL;
  if (!kf || kforge_kernel_new(kf, "msd_gemm", shape, sets, NULL, 0, &k)) {
    fprintf(stderr, "msd_jit: %s\n", kf ? kforge_errmsg(kf) : "out of memory");
    kforge_free(kf);
    return 1;
  }
  printf("kforge %s: %s (%s), templates from %s\n", kforge_version(), kforge_kernel_name(k), kforge_kernel_config(k),
         kforge_templates_dir());

  /* the arguments, as the kernel declares them: x (bf16), w (packed codes), w_scale, y */
  kforge_arg a[4];
  if (kforge_kernel_n_args(k) != 4) {
    fprintf(stderr, "msd_jit: expected 4 arguments\n");
    return 1;
  }
  for (int i = 0; i < 4; i++) kforge_kernel_arg(k, i, &a[i]);
  if (strcmp(a[1].layout, "qweight")) {
    fprintf(stderr, "msd_jit: argument 2 is not packed weights\n");
    return 1;
  }
  unsigned long long seed = 0x9e3779b97f4a7c15ull;
  float *wf = malloc((size_t)(N * K) * sizeof(float)), *xf = malloc((size_t)(M * K) * sizeof(float));
  uint16_t *x = malloc((size_t)(M * K) * sizeof(uint16_t));
  float *y = malloc((size_t)(M * N) * sizeof(float));
  for (long i = 0; i < N * K; i++) wf[i] = (float)(uniform(&seed) / sqrt((double)K));
  for (long i = 0; i < M * K; i++) xf[i] = (float)uniform(&seed);
  kf_bf16_from_f32_n(x, xf, (size_t)(M * K));
  kf_qweight w;
  char err[256];
  if (kf_qweight_quantize(&w, wf, N, K, a[1].bits, a[1].group, (kf_wlayout)a[1].packing, err, sizeof err)) {
    fprintf(stderr, "msd_jit: quantizing the weights: %s\n", err);
    return 1;
  }
  if ((int64_t)w.packed_bytes < a[1].n_elems ||
      w.n_groups * w.n_pad < a[2].n_elems) {
    fprintf(stderr, "msd_jit: packed weights smaller than the kernel reads\n");
    return 1;
  }
  void *args[4] = {x, w.packed, w.scales, y};
  if (kforge_kernel_run(kf, k, args)) {
    fprintf(stderr, "msd_jit: %s\n", kforge_errmsg(kf));
    return 1;
  }

  /* the plain loop: bf16 activations times the exact quantized weights, in double */
  double max_err = 0, max_ref = 0;
  for (long m = 0; m < M; m++)
    for (long n = 0; n < N; n++) {
      double ref = 0;
      for (long kk = 0; kk < K; kk++) ref += (double)kf_bf16_to_f32(x[m * K + kk]) * kf_qweight_value(&w, n, kk);
      max_err = fmax(max_err, fabs(ref - (double)y[m * N + n]));
      max_ref = fmax(max_ref, fabs(ref));
    }
  double bits = max_err > 0 ? log2(max_ref / max_err) : 64;
  /* an MSD pass carries ~7.9 bits of each activation (int8 with s_{p+1} = s_p / 254); the
  ** f32 combination and the sum over K cost a few: 1 pass >= 6, 2 passes >= 13 */
  double want = passes == 1 ? 6 : 13;
  printf("plain loop vs kernel: max |err| %.3e of max |y| %.3e: %.2f effective bits (want >= %.0f)\n", max_err, max_ref,
         bits, want);

  /* and the library's own check against its fp64 reference with the derived bound */
  kforge_check_result cr;
  int crc = kforge_kernel_check(kf, k, 7, &cr);
  printf("kforge check: worst |err|/bound %.3f, %.2f effective bits: %s\n", cr.max_err_over_bound, cr.effective_bits,
         crc ? kforge_errmsg(kf) : "ok");

  kf_qweight_free(&w);
  free(wf);
  free(xf);
  free(x);
  free(y);
  kforge_kernel_free(k);
  kforge_free(kf);
  int ok = bits >= want && crc == KFORGE_OK;
  printf("%s\n", ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}

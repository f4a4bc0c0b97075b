/*
** test_tuner_lib_isa: `kforge lib` for every kernel family and several ISAs in one library.
** Tunes msd_gemm briefly on both targets, builds a cpu-avx2,cpu-avx512-vnni library of
** msd_gemm, fa_decode, amla_decode (tuned + generic), msd_attention and msd_mxfp4_gemm (tuned
** only: -2 elsewhere), links tuner/tests/lib_isa_user.c with cc and the library's .pc (which
** packs weights with the kf_quant.h the library ships), and runs it: each ISA variant this CPU
** runs, forced in turn, against fp64; pthread_create counted (no thread per call);
** KFORGE_VERBOSE=dispatch names the variants; the header reports accuracy.
*/
#include "tt_util.h"

#include "kf_lib.h"

int main(void) {
  char dir[256], db[300], shapes[300], out[300], cmd[4096];
  tt_tempdir(dir, sizeof dir, "tlibisa");
  snprintf(db, sizeof db, "%s/lib.db", dir);
  snprintf(shapes, sizeof shapes, "%s/shapes.txt", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  FILE *log = fopen("/dev/null", "w");
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_store *s;
  if (kf_store_open(&ctx, db, 1, &s)) return 1;
  static const char *const targets[] = {"cpu-avx2", "cpu-avx512-vnni"};
  char runs[128] = "";
  for (int i = 0; i < 2; i++) {
    kf_target t;
    const char *why;
    if (kf_target_get(&ctx, targets[i], &t) || !kf_target_runnable(&t, &why)) continue;
    snprintf(runs + strlen(runs), sizeof runs - strlen(runs), "%s%s", runs[0] ? "," : "", targets[i]);
    kf_tune_opts o;
    tt_fast_opts(&o, log);
    o.budget_n = 2;
    o.strategy = KF_STRAT_RANDOM;
    kf_binding shape;
    memset(&shape, 0, sizeof shape);
    kf_binding_parse(&ctx, "M=4,N=80,K=200", "shape", &shape);
    kf_tune_summary sum;
    int rc = kf_tune(&ctx, s, "msd_gemm", &shape, NULL, targets[i], &o, &sum);
    TT_CHECK(rc == 0 && sum.have_best, "tuned msd_gemm on %s: %s", targets[i], rc ? kf_errmsg(&ctx) : sum.best.config);
  }
  FILE *f = fopen(shapes, "w");
  fprintf(f, "msd_gemm M=4,N=80,K=200\nfa_decode B=2,H=8,HKV=2,S=100,D=64\namla_decode B=1,H=16,S=70,D=96,DV=64\n"
             "msd_attention B=1,H=4,S=128,D=128\nmsd_mxfp4_gemm M=4,N=64,K=128\n");
  fclose(f);
  kf_shape_list list = {0};
  kf_shapes_read(&ctx, shapes, &list);
  FILE *lib_log = tmpfile();
  double t0 = kf_now();
  int rc = kf_lib_build(&ctx, s, &list, "cpu-avx2,cpu-avx512-vnni", out, NULL, NULL, lib_log);
  TT_CHECK(rc == 0, "kforge lib --target cpu-avx2,cpu-avx512-vnni built 5 families (%.1f s)%s%s", kf_now() - t0,
           rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
  rewind(lib_log);
  char line[1024];
  int n_lines = 0;
  while (fgets(line, sizeof line, lib_log)) {
    printf("  | %s", line);
    n_lines++;
  }
  fclose(lib_log);
  TT_CHECK(n_lines == 11, "10 variants (5 shapes x 2 targets) and the summary (%d lines)", n_lines);
  snprintf(cmd, sizeof cmd,
           "grep -q 'msd_gemm. Variants' %s/kforge_kernels.h && grep -Eq 'passes=2: [0-9.]+ effective bits, max err/bound' "
           "%s/kforge_kernels.h && grep -q 'refused (-2): the quantized KV cache' %s/kforge_kernels.h && test -f "
           "%s/kf_quant.h",
           out, out, out, out);
  TT_CHECK(system(cmd) == 0, "header: variants with accuracy, per-family refusal reason; kf_quant.h shipped");
  snprintf(cmd, sizeof cmd,
           "cc -std=gnu11 -O1 -Wall -Wextra -Werror tuner/tests/lib_isa_user.c -o %s/user "
           "$(PKG_CONFIG_PATH=%s pkg-config --cflags --libs kforge_kernels) -ldl",
           dir, out);
  int st = system(cmd);
  TT_CHECK(st == 0, "cc links lib_isa_user.c with the library (status %d)", st);
  if (st == 0) {
    snprintf(cmd, sizeof cmd, "KFORGE_VERBOSE=dispatch %s/user %s 2> %s/verbose.txt | sed 's/^/  > /'", dir, runs, dir);
    st = system(cmd);
    snprintf(cmd, sizeof cmd, "KFORGE_VERBOSE=dispatch %s/user %s > /dev/null 2>&1", dir, runs);
    st = system(cmd);
    TT_CHECK(st == 0, "lib_isa_user: every forced ISA variant and the generics correct, no thread per call");
    snprintf(cmd, sizeof cmd,
             "grep -q 'kforge dispatch: fa_decode -> fa_decode_.*_cpu_avx2 (cpu-avx2' %s/verbose.txt && "
             "grep -q 'kforge dispatch: msd_gemm -> generic kf_generic_msd_gemm (passes=2)' %s/verbose.txt",
             dir, dir);
    TT_CHECK(!strstr(runs, "avx2") || system(cmd) == 0, "KFORGE_VERBOSE=dispatch names each call's variant");
  }
  kf_vec_free(&list);
  kf_store_close(s);
  fclose(log);
  if (getenv("TT_KEEP")) return tt_failures != 0;
  return tt_finish(dir);
}

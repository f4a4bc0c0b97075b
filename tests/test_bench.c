/*
** test_bench.c: the library's timing helpers (gen/bench.h): the timing loop's statistics are
** ordered and count every call, a failing callable stops the run with its status, percentiles
** match a hand computation, the LLC is detected, the CPU description is made of known flags,
** and the cold rotating set holds distinct, aligned, equal copies totalling 2x the LLC.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "kf_report.h"

static int dummy_calls;
static int dummy(void *arg, int64_t iter) {
  (void)arg;
  dummy_calls++;
  volatile double s = 0;
  for (int i = 0; i < 20000 + (int)(iter % 3) * 1000; i++) s += i;
  return 0;
}
static int failing(void *arg, int64_t iter) {
  (void)arg;
  return iter == 2 ? 7 : 0;
}

int main(void) {
  kf_bench_opts o = {.warmup = 2, .min_runs = 5, .max_runs = 9, .budget_s = 0.01};
  kf_bench_stats st;
  dummy_calls = 0;
  int rc = kf_bench_run(dummy, NULL, &o, &st);
  int ordered = st.min_s <= st.p10_s && st.p10_s <= st.median_s && st.median_s <= st.p90_s &&
                st.p90_s <= st.max_s && st.min_s > 0;
  report(rc == 0 && ordered && st.n_runs >= 5 && st.n_runs <= 9 && dummy_calls == st.n_runs + 2,
         "bench_run_stats", "%d runs, median %.1f us, p10 %.1f p90 %.1f spread %.2f", st.n_runs,
         st.median_s * 1e6, st.p10_s * 1e6, st.p90_s * 1e6, st.spread);
  report(kf_bench_run(failing, NULL, &o, &st) == 7 && kf_bench_run(NULL, NULL, &o, &st) == -1,
         "bench_run_propagates_failure", "callable status 7 returned; NULL fn -> -1");

  double samples[] = {5, 1, 4, 2, 3};
  kf_bench_stats_of(samples, 5, &st);
  report(st.median_s == 3 && st.min_s == 1 && st.max_s == 5 && fabs(st.p10_s - 1.4) < 1e-12 &&
             fabs(st.p90_s - 4.6) < 1e-12 && fabs(st.spread - 3.2 / 3) < 1e-12,
         "bench_stats_hand", "median %g p10 %g p90 %g (3, 1.4, 4.6)", st.median_s, st.p10_s,
         st.p90_s);

  char src[64];
  int64_t llc = kf_bench_llc_bytes(src, sizeof src);
  report(llc >= (1 << 20), "llc_detected", "%.1f MiB from %s", (double)llc / (1 << 20), src);

  /* CPU description: a model name, and flags that are whole words of the known list. */
  char model[256], flags[256], copy[256];
  kf_bench_cpu_model(model, sizeof model);
  kf_bench_cpu_flags(flags, sizeof flags);
  snprintf(copy, sizeof copy, "%s", flags);
  int flags_ok = strcmp(flags, "unknown") != 0;
  const char *known = " avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 avx_vnni amx_tile "
                      "amx_int8 amx_bf16 ";
  for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
    char word[64];
    snprintf(word, sizeof word, " %s ", tok);
    flags_ok &= strstr(known, word) != NULL;
  }
  report(model[0] && flags_ok, "cpu_model_and_flags", "%s [%s]", model, flags);

  /* Rotating set: total ≥ 2× the given LLC, copies distinct and equal to the source. */
  char buf[1000], err[200];
  for (int i = 0; i < 1000; i++) buf[i] = (char)i;
  kf_bench_rot rot;
  rc = kf_bench_rot_init(&rot, buf, sizeof buf, 1, 100000, err, sizeof err);
  int same = rc == 0;
  for (int i = 0; same && i < rot.n_copies; i++) {
    same &= memcmp(rot.copies[i], buf, sizeof buf) == 0 && ((uintptr_t)rot.copies[i] % 64) == 0;
    if (i) same &= rot.copies[i] != rot.copies[i - 1];
  }
  report(same && rot.n_copies == 200 && kf_bench_rot_get(&rot, 201) == rot.copies[1],
         "rot_cold_set", "%d copies of 1000 B for LLC 100000 B (want 200)", rot.n_copies);
  kf_bench_rot_free(&rot);
  rc = kf_bench_rot_init(&rot, buf, sizeof buf, 0, 0, err, sizeof err);
  int warm_ok = rc == 0 && rot.n_copies == 1;
  kf_bench_rot_free(&rot);
  report(warm_ok && kf_bench_rot_init(&rot, NULL, 10, 1, 0, err, sizeof err) != 0 &&
             rot.copies == NULL,
         "rot_warm_and_bad", "warm = 1 copy; NULL source -> error: %s", err);

  if (n_fail) printf("test_bench: %d case(s) FAILED\n", n_fail);
  else printf("test_bench: all cases passed\n");
  return n_fail ? 1 : 0;
}

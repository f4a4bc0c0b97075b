/*
** test_ascend_timing: the timing simulator on cases whose cycle counts are computed by hand
** from the machine table (so the simulator's numbers can be trusted): one mmad, one copy at
** the per-transfer HBM cap, the same copy again from L2, many cores sharing HBM, a
** double-buffered two-stage pipeline (load-bound and compute-bound), a cross-core flag, the
** release of a stored buffer, a deadlock report, and a trace that parses as Chrome trace JSON.
*/
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asc_sim.h"

static int failures;

static void expect_cycles(const char *name, double got, double want) {
  int ok = fabs(got - want) <= 1e-6 * fmax(1.0, want);
  printf("%-44s cycles %.3f  expected %.3f  %s\n", name, got, want, ok ? "ok" : "FAIL");
  failures += !ok;
}

static kf_asc_machine machine(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_asc_machine m;
  if (kf_asc_machine_get(&ctx, "ascend910b", &m)) abort();
  return m;
}

static double run(kf_asc_prog *p, kf_asc_stats *st) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  if (kf_asc_simulate(&ctx, p, NULL, st)) {
    printf("simulate failed: %s\n", kf_errmsg(&ctx));
    failures++;
    return -1;
  }
  return st->cycles;
}

/* A GM read of `bytes` of argument object `obj` at offset `off` on `core`. */
static int32_t gm_read(kf_asc_prog *p, int core, int obj, int64_t off, int64_t bytes) {
  int32_t i = kf_asc_emit(p, core, KF_ASC_MTE2, KF_ASC_READ, 0, bytes, kf_asc_label(p, "load"));
  kf_asc_gm(p, i, obj, 0, off, 1, bytes, bytes, 0);
  return i;
}

static void test_mmad(void) {
  kf_asc_machine m = machine();
  kf_asc_prog *p = kf_asc_prog_new(&m);
  /* 128 x 128 x 96 bf16: (128/16) * (128/16) * (96/16) = 384 Cube steps */
  int64_t c = kf_asc_mmad_cycles(&m, 128, 128, 96, 0);
  kf_asc_emit(p, kf_asc_core_aic(p, 0, 0), KF_ASC_M, KF_ASC_COMPUTE, c, 0, kf_asc_label(p, "mmad"));
  kf_asc_stats st;
  expect_cycles("one mmad 128x128x96 bf16", run(p, &st), 384.0 + (double)m.mmad_overhead);
  /* the same flops in int8 take half the k steps; an odd 17x1x33 pads to 2x1x3 steps */
  expect_cycles("mmad cost int8 128x128x96", (double)kf_asc_mmad_cycles(&m, 128, 128, 96, 1), 192.0 + (double)m.mmad_overhead);
  expect_cycles("mmad cost 17x1x33 (padding)", (double)kf_asc_mmad_cycles(&m, 17, 1, 33, 0), 6.0 + (double)m.mmad_overhead);
  /* busy fraction of the M pipe: one AIC of 24 busy the whole time */
  int ok = fabs(st.busy[KF_ASC_AIC][KF_ASC_M] - 1.0 / m.aic_per_die) < 1e-12;
  printf("%-44s M busy %.6f expected %.6f  %s\n", "busy fraction, one AIC of 24", st.busy[KF_ASC_AIC][KF_ASC_M],
         1.0 / m.aic_per_die, ok ? "ok" : "FAIL");
  failures += !ok;
  kf_asc_prog_free(p);
}

static void test_copy(void) {
  kf_asc_machine m = machine();
  kf_asc_prog *p = kf_asc_prog_new(&m);
  int64_t mb = 1 << 20;
  int core = kf_asc_core_aic(p, 0, 0);
  gm_read(p, core, 1, 0, mb);
  kf_asc_stats st;
  /* cold: served by HBM, capped per transfer at core_hbm_bpc (below the die's HBM rate) */
  double t1 = (double)m.gm_latency + (double)mb / fmin(m.core_hbm_bpc, m.hbm_bpc);
  expect_cycles("1 MB read, cold (HBM, per-core cap)", run(p, &st), t1);
  int ok = st.hbm_read == (double)mb && st.l2_read == 0;
  printf("%-44s hbm %.0f l2 %.0f  %s\n", "  bytes by source", st.hbm_read, st.l2_read, ok ? "ok" : "FAIL");
  failures += !ok;
  /* the same bytes again right after: L2 hits at the L2 cap */
  gm_read(p, core, 1, 0, mb);
  double t2 = t1 + (double)mb / fmin(m.core_l2_bpc, m.l2_bpc); /* issued back to back */
  expect_cycles("  then again (L2 hit, latency overlapped)", run(p, &st), t2);
  /* a workspace transfer is always L2 */
  kf_asc_prog *q = kf_asc_prog_new(&m);
  int32_t w = kf_asc_emit(q, core, KF_ASC_FIX, KF_ASC_WRITE, 0, mb, kf_asc_label(q, "fix"));
  kf_asc_gm(q, w, 7, 1, 0, 1, mb, mb, 1);
  expect_cycles("1 MB FixPipe atomic add into a workspace", run(q, &st), (double)m.gm_latency + (double)mb / m.core_l2_write_bpc);
  kf_asc_prog_free(q);
  /* two halves of the same 128 rows of 1152 B (a K block split at d = 288): both from HBM;
  ** then all of it again: all from L2 */
  kf_asc_prog *h = kf_asc_prog_new(&m);
  for (int half = 0; half < 3; half++) {
    int64_t rb = half < 2 ? 576 : 1152;
    int32_t i = kf_asc_emit(h, core, KF_ASC_MTE2, KF_ASC_READ, 0, 128 * rb, kf_asc_label(h, "load"));
    kf_asc_gm(h, i, 2, 0, half == 1 ? 576 : 0, 128, rb, 1152, 0);
  }
  run(h, &st);
  ok = st.hbm_read == 128.0 * 1152 && st.l2_read == 128.0 * 1152;
  printf("%-44s hbm %.0f l2 %.0f (want %d each)  %s\n", "strided halves of rows: sectors, not lines", st.hbm_read,
         st.l2_read, 128 * 1152, ok ? "ok" : "FAIL");
  failures += !ok;
  kf_asc_prog_free(h);
  kf_asc_prog_free(p);
}

static void test_sharing(void) {
  kf_asc_machine m = machine();
  kf_asc_prog *p = kf_asc_prog_new(&m);
  int64_t mb = 1 << 20;
  int n = m.aic_per_die * m.aiv_per_aic; /* 48 AIVs, distinct data */
  for (int g = 0; g < m.aic_per_die; g++)
    for (int j = 0; j < m.aiv_per_aic; j++) gm_read(p, kf_asc_core_aiv(p, 0, g, j), 100 + g * 2 + j, 0, mb);
  kf_asc_stats st;
  double rate = fmin(m.core_hbm_bpc, m.hbm_bpc / n);
  expect_cycles("48 AIVs read 1 MB each, sharing HBM", run(p, &st), (double)m.gm_latency + (double)mb / rate);
  /* 8 readers: below the die's rate, each runs at its cap */
  kf_asc_prog *q = kf_asc_prog_new(&m);
  for (int g = 0; g < 8; g++) gm_read(q, kf_asc_core_aic(q, 0, g), 300 + g, 0, mb);
  expect_cycles("8 AICs read 1 MB each (port-capped)", run(q, &st), (double)m.gm_latency + (double)mb / m.core_hbm_bpc);
  kf_asc_prog_free(q);
  /* 48 AIVs read 1 MB of workspace each while the 24 AICs FixPipe 1 MB each into theirs: L2
  ** reads and writes are separate channels, each shared by its own transfers */
  kf_asc_prog *r = kf_asc_prog_new(&m);
  for (int g = 0; g < m.aic_per_die; g++) {
    for (int j = 0; j < m.aiv_per_aic; j++) {
      int32_t i = kf_asc_emit(r, kf_asc_core_aiv(r, 0, g, j), KF_ASC_MTE2, KF_ASC_READ, 0, mb, kf_asc_label(r, "ld"));
      kf_asc_gm(r, i, 500 + g * 2 + j, 1, 0, 1, mb, mb, 0);
    }
    int32_t w = kf_asc_emit(r, kf_asc_core_aic(r, 0, g), KF_ASC_FIX, KF_ASC_WRITE, 0, mb, kf_asc_label(r, "fix"));
    kf_asc_gm(r, w, 600 + g, 1, 0, 1, mb, mb, 0);
  }
  double rd = fmin(m.core_l2_bpc, m.l2_bpc / n), wr = fmin(m.core_l2_write_bpc, m.l2_write_bpc / m.aic_per_die);
  expect_cycles("48 L2 reads + 24 L2 writes of 1 MB at once", run(r, &st), (double)m.gm_latency + (double)mb / fmin(rd, wr));
  kf_asc_prog_free(r);
  kf_asc_prog_free(p);
}

/* load(i) on MTE2 -> mmad(i) on M, two L1 slots: load(i) waits for mmad(i-2). */
static double pipeline(const kf_asc_machine *m, int n, int64_t load_bytes, int64_t mmad_cycles, double *hand) {
  kf_asc_prog *p = kf_asc_prog_new(m);
  int core = kf_asc_core_aic(p, 0, 0);
  int32_t ld[64], mm[64];
  for (int i = 0; i < n; i++) {
    ld[i] = kf_asc_emit(p, core, KF_ASC_MTE2, KF_ASC_READ, 0, load_bytes, kf_asc_label(p, "load"));
    kf_asc_gm(p, ld[i], 1, 1, (int64_t)i * load_bytes, 1, load_bytes, load_bytes, 0); /* workspace: L2 rate */
    if (i >= 2) kf_asc_dep(p, mm[i - 2], ld[i]);
    mm[i] = kf_asc_emit(p, core, KF_ASC_M, KF_ASC_COMPUTE, mmad_cycles, 0, kf_asc_label(p, "mmad"));
    kf_asc_dep(p, ld[i], mm[i]);
  }
  kf_asc_stats st;
  double got = run(p, &st);
  kf_asc_prog_free(p);
  /* the recurrence by hand: a load occupies MTE2 for T1, its data lands lat later */
  double T1 = (double)load_bytes / m->core_l2_bpc, T2 = (double)mmad_cycles, lat = (double)m->gm_latency;
  double f = (double)m->flag_intra, le[64], me[64];
  for (int i = 0; i < n; i++) {
    double ls = i ? le[i - 1] : 0;
    if (i >= 2 && me[i - 2] + f > ls) ls = me[i - 2] + f;
    le[i] = ls + T1;
    double ms = le[i] + lat + f;
    if (i && me[i - 1] > ms) ms = me[i - 1];
    me[i] = ms + T2;
  }
  *hand = me[n - 1];
  return got;
}

static void test_pipeline(void) {
  kf_asc_machine m = machine();
  double hand;
  int n = 8;
  int64_t bytes = 64 * 1024;
  double T1 = (double)bytes / m.core_l2_bpc, lat = (double)m.gm_latency, f = (double)m.flag_intra;
  /* load-bound: loads back to back, the last mmad after the last load lands */
  int64_t t2 = 300;
  double got = pipeline(&m, n, bytes, t2, &hand);
  expect_cycles("2-stage pipeline, load-bound (recurrence)", got, hand);
  expect_cycles("  closed form n*T1 + lat + f + T2", got, n * T1 + lat + f + (double)t2);
  /* compute-bound: mmads back to back after the first load */
  t2 = 4000;
  got = pipeline(&m, n, bytes, t2, &hand);
  expect_cycles("2-stage pipeline, compute-bound (recurrence)", got, hand);
  expect_cycles("  closed form T1 + lat + f + n*T2", got, T1 + lat + f + n * (double)t2);
}

static void test_cross_core(void) {
  kf_asc_machine m = machine();
  kf_asc_prog *p = kf_asc_prog_new(&m);
  int64_t c = kf_asc_mmad_cycles(&m, 64, 64, 64, 0);
  int32_t a = kf_asc_emit(p, kf_asc_core_aic(p, 0, 3), KF_ASC_M, KF_ASC_COMPUTE, c, 0, kf_asc_label(p, "mmad"));
  int64_t v = kf_asc_vec_cycles(&m, 32 * 1024, 1);
  int32_t b = kf_asc_emit(p, kf_asc_core_aiv(p, 0, 3, 1), KF_ASC_V, KF_ASC_COMPUTE, v, 0, kf_asc_label(p, "vec"));
  kf_asc_dep(p, a, b);
  kf_asc_stats st;
  expect_cycles("AIC mmad -> cross-core flag -> AIV op", run(p, &st), (double)(c + m.flag_cross + v));
  expect_cycles("  vector cost 32 KB, 1 pass", (double)v, (double)m.vec_overhead + 128.0);
  kf_asc_prog_free(p);
}

/* A UB slot stored to GM, then reloaded by the next chunk: by default the reload waits for the
** store's data to land (gm_latency after the store has been sent); with store_release = 1 only
** for the store to be sent, exactly gm_latency sooner. A data dependency on the stored bytes
** (the same pair) always waits for them to land. */
static double store_then_load(int release, int data_dep) {
  kf_asc_machine m = machine();
  m.store_release = release;
  kf_asc_prog *p = kf_asc_prog_new(&m);
  int core = kf_asc_core_aiv(p, 0, 0, 0);
  int64_t kb = 32 * 1024;
  int32_t st = kf_asc_emit(p, core, KF_ASC_MTE3, KF_ASC_WRITE, 0, kb, kf_asc_label(p, "store"));
  kf_asc_gm(p, st, 7, 1, 0, 1, kb, kb, 0);
  int32_t ld = gm_read(p, core, 1, 0, kb);
  kf_asc_dep_reuse(p, st, ld);
  if (data_dep) kf_asc_dep(p, st, ld);
  kf_asc_stats sts;
  double t = run(p, &sts);
  kf_asc_prog_free(p);
  return t;
}

static void test_store_release(void) {
  kf_asc_machine m = machine();
  double t0 = store_then_load(0, 0), t1 = store_then_load(1, 0), td = store_then_load(1, 1);
  expect_cycles("UB slot reuse after a store: release at issue", t1, t0 - (double)m.gm_latency);
  expect_cycles("  a data dependency still waits for the data", td, t0);
}

static void test_deadlock(void) {
  kf_asc_machine m = machine();
  kf_asc_prog *p = kf_asc_prog_new(&m);
  int core = kf_asc_core_aic(p, 0, 0);
  int32_t a = kf_asc_emit(p, core, KF_ASC_M, KF_ASC_COMPUTE, 10, 0, kf_asc_label(p, "A"));
  int32_t b = kf_asc_emit(p, core, KF_ASC_MTE1, KF_ASC_COMPUTE, 10, 0, kf_asc_label(p, "B"));
  kf_asc_dep(p, b, a);
  kf_asc_dep(p, a, b);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_asc_stats st;
  int rc = kf_asc_simulate(&ctx, p, NULL, &st);
  int ok = rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "deadlock");
  printf("%-44s %s: %s\n", "cyclic flags are reported", ok ? "ok" : "FAIL", kf_errmsg(&ctx));
  failures += !ok;
  kf_asc_prog_free(p);
}

static void test_trace(void) {
  kf_asc_machine m = machine();
  kf_asc_prog *p = kf_asc_prog_new(&m);
  int core = kf_asc_core_aic(p, 0, 1);
  int32_t l = gm_read(p, core, 1, 0, 4096);
  int32_t x = kf_asc_emit(p, core, KF_ASC_M, KF_ASC_COMPUTE, 100, 0, kf_asc_label(p, "mmad \"q\""));
  kf_asc_dep(p, l, x);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_asc_stats st;
  char path[] = "/tmp/kf_asc_traceXXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) abort();
  kf_asc_trace_opts to = {path, 0, "test"};
  int rc = kf_asc_simulate(&ctx, p, &to, &st);
  char *text = NULL;
  size_t len = 0;
  int n_x = 0, n_named = 0;
  double last_end = 0;
  if (!rc && !kf_read_file(&ctx, path, &text, &len)) {
    cJSON *j = cJSON_Parse(text);
    cJSON *evs = j ? cJSON_GetObjectItem(j, "traceEvents") : NULL;
    cJSON *e;
    cJSON_ArrayForEach(e, evs) {
      const char *ph = cJSON_GetStringValue(cJSON_GetObjectItem(e, "ph"));
      if (ph && !strcmp(ph, "X")) {
        n_x++;
        double end = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "ts")) + cJSON_GetNumberValue(cJSON_GetObjectItem(e, "dur"));
        if (end > last_end) last_end = end;
      } else if (ph && !strcmp(ph, "M")) n_named++;
    }
    cJSON_Delete(j);
  }
  free(text);
  remove(path);
  double want_us = st.cycles / (m.freq_hz / 1e6);
  int ok = !rc && n_x == 2 && n_named >= 3 && fabs(last_end - want_us) < 1e-3;
  printf("%-44s %d events, %d names, end %.4f us (sim %.4f)  %s\n", "trace JSON parses (cJSON)", n_x, n_named, last_end,
         want_us, ok ? "ok" : "FAIL");
  failures += !ok;
  kf_asc_prog_free(p);
}

static void test_machines(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_asc_machine m;
  int ok = kf_asc_machine_get(&ctx, "ascend999", &m) == KF_EINVAL && strstr(kf_errmsg(&ctx), "ascend910b");
  printf("%-44s %s: %s\n", "unknown machine name", ok ? "ok" : "FAIL", kf_errmsg(&ctx));
  failures += !ok;
  ok = !kf_asc_machine_get(&ctx, "ascend910c", &m) && kf_asc_machine_n_aic(&m) == 48 &&
       fabs(kf_asc_machine_peak_flops(&m, 0) / 1e12 - 707.8) < 0.1;
  printf("%-44s %d AIC, peak %.1f TFLOPS bf16 (paper: 614 = 86.8%% of 707)  %s\n", "ascend910c package",
         kf_asc_machine_n_aic(&m), kf_asc_machine_peak_flops(&m, 0) / 1e12, ok ? "ok" : "FAIL");
  failures += !ok;
}

int main(void) {
  test_mmad();
  test_copy();
  test_sharing();
  test_pipeline();
  test_cross_core();
  test_store_release();
  test_deadlock();
  test_trace();
  test_machines();
  printf("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}

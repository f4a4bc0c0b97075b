/*
** test_tuner_sweep: an exhaustive sweep over a space whose truth is known by construction
** (tt_faulty: `slow` multiplies the work, `fault` makes wrong, crashing and hanging variants).
** Shows: every configuration is recorded once; wrong results are 'failed: wrong result' and
** never timed; the crashing and hanging variants are recorded failed and the sweep finishes;
** the best found is the true best (slow=1, fault=0) and the timings follow the work
** (slow=16 at least 3x the best); a second run records nothing new (resume).
*/
#include "tt_util.h"

#include <math.h>

typedef struct stat_row {
  int n, fault, slow;
  double med[64];
  char status[64][32];
  int fault_of[64], slow_of[64];
} stat_row;

static int rows_cb(void *arg, int n, const char *const *names, const char *const *vals) {
  (void)n;
  (void)names;
  stat_row *r = arg;
  if (r->n == 64) return 1;
  kf_ctx c;
  kf_ctx_init(&c);
  kf_binding cfg;
  if (kf_config_parse(&c, vals[0], &cfg)) return 1;
  int64_t f = -1, s = -1;
  kf_binding_get(&cfg, "fault", &f);
  kf_binding_get(&cfg, "slow", &s);
  r->fault_of[r->n] = (int)f;
  r->slow_of[r->n] = (int)s;
  snprintf(r->status[r->n], 32, "%s", vals[1]);
  r->med[r->n] = vals[2] ? atof(vals[2]) : NAN;
  r->n++;
  return 0;
}

int main(void) {
  char dir[256], db[300];
  tt_tempdir(dir, sizeof dir, "tsweep");
  snprintf(db, sizeof db, "%s/sweep.db", dir);
  FILE *log = fopen("/dev/null", "w");
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_store *s;
  if (kf_store_open(&ctx, db, 1, &s)) {
    printf("FAIL: open: %s\n", kf_errmsg(&ctx));
    return 1;
  }
  kf_tune_opts o;
  tt_fast_opts(&o, log);
  o.trial_timeout_s = 4; /* the hanging variants */
  o.trial_budget_s = 0.05;
  kf_binding shape;
  memset(&shape, 0, sizeof shape);
  kf_binding_parse(&ctx, "M=4,N=256,K=1024", "shape", &shape);
  kf_tune_summary sum;
  double t0 = kf_now();
  int rc = kf_tune(&ctx, s, TT_FAULTY, &shape, NULL, "cpu-host", &o, &sum);
  TT_CHECK(rc == 0, "exhaustive sweep of tt_faulty finishes (%.1f s)%s%s", kf_now() - t0, rc ? ": " : "",
           rc ? kf_errmsg(&ctx) : "");
  TT_CHECK(sum.space == 24 && sum.n_run == 24 && sum.complete, "24 configurations, 24 trials run, complete (%lld, %lld)",
           (long long)sum.space, (long long)sum.n_run);
  TT_CHECK(tt_count(s, "SELECT count(*) FROM trials") == 24, "24 trials recorded");
  /* fault=2 declares an x far larger than it reads: its problem (made for what the kernel
  ** declares) does not fit this machine, so it is a failed trial and never run */
  TT_CHECK(sum.n_ok == 6 && sum.n_wrong == 6 && sum.n_other == 6 && sum.n_timeout == 6,
           "6 ok, 6 wrong, 6 refused, 6 timed out (%lld %lld %lld %lld)", (long long)sum.n_ok, (long long)sum.n_wrong,
           (long long)sum.n_other, (long long)sum.n_timeout);
  stat_row r;
  memset(&r, 0, sizeof r);
  kf_store_query(&ctx, s, "SELECT config, status, median_s FROM trials ORDER BY id", NULL, 0, rows_cb, &r);
  int bad_status = 0, timed_wrong = 0;
  double best = INFINITY, worst16 = INFINITY;
  static const char *const want[] = {"ok", "failed: wrong result", "failed: error", "failed: timeout"};
  for (int i = 0; i < r.n; i++) {
    if (strcmp(r.status[i], want[r.fault_of[i]]))
      printf("  trial %d: fault=%d slow=%d has status '%s'\n", i + 1, r.fault_of[i], r.slow_of[i], r.status[i]);
    bad_status += strcmp(r.status[i], want[r.fault_of[i]]) != 0;
    if (r.fault_of[i] != 0) timed_wrong += !isnan(r.med[i]);
    if (r.fault_of[i] == 0 && r.med[i] < best) best = r.med[i];
    if (r.fault_of[i] == 0 && r.slow_of[i] == 16 && r.med[i] < worst16) worst16 = r.med[i];
  }
  TT_CHECK(bad_status == 0, "each fault kind has its status (wrong/refused/timeout), correct ones ok (%d mismatches)",
           bad_status);
  TT_CHECK(timed_wrong == 0, "failed variants carry no timing (%d do)", timed_wrong);
  kf_binding bc;
  int64_t bf = -1, bs = -1;
  if (sum.have_best && !kf_config_parse(&ctx, sum.best.config, &bc)) {
    kf_binding_get(&bc, "fault", &bf);
    kf_binding_get(&bc, "slow", &bs);
  }
  TT_CHECK(bf == 0 && bs == 1, "best found is a true best: fault=0 slow=1 (%s, %.1f us)",
           sum.have_best ? sum.best.config : "none", sum.best.median_s * 1e6);
  TT_CHECK(worst16 > 3 * best, "timings follow the work: fastest slow=16 %.1f us > 3 x best %.1f us", worst16 * 1e6,
           best * 1e6);
  /* resume: nothing new */
  kf_tune_summary again;
  rc = kf_tune(&ctx, s, TT_FAULTY, &shape, NULL, "cpu-host", &o, &again);
  TT_CHECK(rc == 0 && again.n_run == 0 && again.recorded == 24 && again.complete,
           "second run records nothing new (%lld run, %lld already recorded)", (long long)again.n_run,
           (long long)again.recorded);
  TT_CHECK(tt_count(s, "SELECT count(*) FROM sweeps WHERE complete = 1") == 2, "both sweeps marked complete");
  /* bad input */
  kf_binding bad;
  memset(&bad, 0, sizeof bad);
  kf_binding_parse(&ctx, "M=4,N=256,K=1024", "shape", &bad);
  kf_binding fixed;
  memset(&fixed, 0, sizeof fixed);
  kf_binding_set(&fixed, "nope", 3);
  rc = kf_tune(&ctx, s, TT_FAULTY, &bad, &fixed, "cpu-host", &o, &again);
  TT_CHECK(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "nope"), "unknown pinned tunable: %s", kf_errmsg(&ctx));
  memset(&fixed, 0, sizeof fixed);
  kf_binding_set(&fixed, "slow", 5);
  rc = kf_tune(&ctx, s, TT_FAULTY, &bad, &fixed, "cpu-host", &o, &again);
  TT_CHECK(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "slow=5"), "pinned value outside the domain: %s", kf_errmsg(&ctx));
  memset(&bad, 0, sizeof bad);
  kf_binding_parse(&ctx, "M=4,N=256", "shape", &bad);
  memset(&bad, 0, sizeof bad);
  kf_binding_set(&bad, "M", 4);
  rc = kf_tune(&ctx, s, TT_FAULTY, &bad, NULL, "cpu-host", &o, &again);
  TT_CHECK(rc != 0, "shape without N, K: %s", kf_errmsg(&ctx));
  rc = kf_tune(&ctx, s, "no_such_template", &shape, NULL, "cpu-host", &o, &again);
  TT_CHECK(rc != 0, "unknown template: %s", kf_errmsg(&ctx));
  o.shard_i = 2;
  o.shard_n = 2;
  rc = kf_tune(&ctx, s, TT_FAULTY, &shape, NULL, "cpu-host", &o, &again);
  TT_CHECK(rc == KF_EINVAL, "shard 2/2 refused: %s", kf_errmsg(&ctx));
  kf_store_close(s);
  fclose(log);
  return tt_finish(dir);
}

/*
** test_tuner_kill: a sweep killed with SIGKILL mid-way, then resumed, ends with every
** configuration recorded exactly once and nothing recorded lost; two sweeps writing one
** database at the same time both succeed (WAL + busy timeout + UNIQUE).
** Space: dequant_gemm at a small shape with mr and kc pinned (nr x nc under constraints).
*/
#include "tt_util.h"

#include <signal.h>
#include <sys/wait.h>

static const char *const SHAPE = "M=2,N=96,K=128";

/* One sweep of dequant_gemm at shape_txt with mr and kc pinned. */
static int sweep(kf_ctx *ctx, kf_store *s, const kf_tune_opts *o, const char *shape_txt, kf_tune_summary *sum) {
  kf_binding shape, fixed;
  memset(&shape, 0, sizeof shape);
  kf_binding_parse(ctx, shape_txt, "shape", &shape);
  memset(&fixed, 0, sizeof fixed);
  kf_binding_set(&fixed, "mr", 1);
  kf_binding_set(&fixed, "kc", 128);
  return kf_tune(ctx, s, "dequant_gemm", &shape, &fixed, "cpu-host", o, sum);
}

/* Child: runs the sweep and exits (0 ok). */
static pid_t spawn_sweep(const char *db, int seed, kf_strategy strat, const char *shape_txt) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid != 0) return pid;
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  FILE *log = fopen("/dev/null", "w");
  kf_store *s;
  if (kf_store_open(&ctx, db, 1, &s)) {
    fprintf(stderr, "child: %s\n", kf_errmsg(&ctx));
    _exit(3);
  }
  kf_tune_opts o;
  tt_fast_opts(&o, log);
  o.seed = (uint64_t)seed;
  o.strategy = strat;
  kf_tune_summary sum;
  int rc = sweep(&ctx, s, &o, shape_txt, &sum);
  if (rc) fprintf(stderr, "child: %s\n", kf_errmsg(&ctx));
  kf_store_close(s);
  _exit(rc ? 1 : 0);
}

int main(void) {
  char dir[256], db[300], db2[300];
  tt_tempdir(dir, sizeof dir, "tkill");
  snprintf(db, sizeof db, "%s/kill.db", dir);
  snprintf(db2, sizeof db2, "%s/conc.db", dir);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_store *s;
  if (kf_store_open(&ctx, db, 1, &s)) {
    printf("FAIL: %s\n", kf_errmsg(&ctx));
    return 1;
  }
  /* kill -9 once at least 3 trials are recorded */
  pid_t pid = spawn_sweep(db, 1, KF_STRAT_EXHAUSTIVE, SHAPE);
  long n_before = 0;
  double t0 = kf_now();
  while (kf_now() - t0 < 120) {
    n_before = tt_count(s, "SELECT count(*) FROM trials");
    if (n_before >= 3) break;
    usleep(20000);
  }
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  usleep(100000); /* the killed sweep's trial child dies with it (PDEATHSIG) */
  long n_killed = tt_count(s, "SELECT count(*) FROM trials");
  TT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && n_killed >= 3,
           "sweep killed with SIGKILL after %ld trials were recorded", n_killed);
  TT_CHECK(tt_count(s, "PRAGMA integrity_check") != -1, "database readable after the kill");
  FILE *log = fopen("/dev/null", "w");
  kf_tune_opts o;
  tt_fast_opts(&o, log);
  kf_tune_summary sum;
  int rc = sweep(&ctx, s, &o, SHAPE, &sum);
  TT_CHECK(rc == 0 && sum.complete, "resumed sweep completes (%s)", rc ? kf_errmsg(&ctx) : "ok");
  TT_CHECK(sum.recorded == n_killed && sum.n_run == sum.space - n_killed,
           "resume ran only the %lld unrecorded of %lld configurations (recorded before: %lld)", (long long)sum.n_run,
           (long long)sum.space, (long long)sum.recorded);
  long n_all = tt_count(s, "SELECT count(*) FROM trials"), n_distinct = tt_count(s, "SELECT count(DISTINCT config) FROM trials");
  TT_CHECK(n_all == sum.space && n_distinct == sum.space, "every configuration exactly once: %ld trials, %ld distinct, space %lld",
           n_all, n_distinct, (long long)sum.space);
  TT_CHECK(tt_count(s, "SELECT count(*) FROM trials WHERE status <> 'ok'") == 0, "all of them ok");
  kf_store_close(s);

  /* two writers at once on a fresh file: same workload (random orders) and another shape */
  pid_t a = spawn_sweep(db2, 11, KF_STRAT_RANDOM, SHAPE), b = spawn_sweep(db2, 12, KF_STRAT_RANDOM, SHAPE),
        c = spawn_sweep(db2, 13, KF_STRAT_EXHAUSTIVE, "M=3,N=64,K=128");
  int sa, sb, sc;
  waitpid(a, &sa, 0);
  waitpid(b, &sb, 0);
  waitpid(c, &sc, 0);
  TT_CHECK(WIFEXITED(sa) && WEXITSTATUS(sa) == 0 && WIFEXITED(sb) && WEXITSTATUS(sb) == 0 && WIFEXITED(sc) &&
               WEXITSTATUS(sc) == 0,
           "three concurrent sweeps on one database all succeed (exit %d %d %d)", WEXITSTATUS(sa), WEXITSTATUS(sb),
           WEXITSTATUS(sc));
  kf_store_open(&ctx, db2, 0, &s);
  long w1 = tt_count(s, "SELECT count(*) FROM trials t JOIN workloads w ON w.id = t.workload_id WHERE w.shape LIKE '%M=2,%'");
  long w1d = tt_count(s, "SELECT count(DISTINCT config) FROM trials t JOIN workloads w ON w.id = t.workload_id WHERE w.shape LIKE '%M=2,%'");
  TT_CHECK(w1 == sum.space && w1d == sum.space, "shared workload: %ld trials, each configuration once (space %lld)", w1,
           (long long)sum.space);
  TT_CHECK(tt_count(s, "SELECT count(*) FROM workloads") == 2 && tt_count(s, "SELECT count(*) FROM targets") == 1,
           "2 workloads, 1 target row (get-or-insert under concurrency)");
  kf_store_close(s);
  fclose(log);
  return tt_finish(dir);
}

/*
** test_tuner_accuracy: the accuracy contract and the generator-version key (issue 16).
** - the nearest-valid-config fallback never moves an accuracy tunable: msd_gemm M=1 on
**   cpu-avx2 keeps passes=2 (the register tile shrinks instead) and the kernel measures >= 14
**   effective bits; where no tiling runs 2 passes (--set mr=6,nr=32 on AVX-512) the config
**   is refused naming passes, never replaced by passes=1;
** - a sweep without --min-bits never tries another `passes`; with --min-bits 15 it tries all
**   and never picks passes=1 (7.5 bits); every trial records its max err/bound and bits;
** - lookups keep the contract (a faster 1-pass trial in the store is not served without
**   --min-bits, nor with --min-bits 15);
** - trials of another generator version are stale: skipped by lookup unless allow_stale,
**   re-run by a sweep, never the best.
*/
#include "tt_util.h"

#include "check.h"

/* Loads msd_gemm and builds its default kernel for shape_txt on target_name (into *t, *k). */
static int build_default(kf_ctx *ctx, const char *target_name, const char *shape_txt, kf_template **t,
                         kf_target *target, kf_kernel *k) {
  kf_binding shape;
  memset(&shape, 0, sizeof shape);
  memset(k, 0, sizeof *k);
  *t = NULL;
  int rc = kf_binding_parse(ctx, shape_txt, "shape", &shape);
  if (!rc) rc = kf_target_get(ctx, target_name, target);
  if (!rc) rc = kf_template_load(ctx, "msd_gemm", t);
  if (!rc) rc = kf_kernel_build(ctx, *t, &shape, NULL, target, k);
  return rc;
}

/* Builds, runs and checks one msd_gemm kernel on target_name; returns the check's effective bits
** (or -1) and the passes the config got. */
static double check_bits(const char *target_name, const char *shape_txt, int64_t *passes, char *err, size_t n_err) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t;
  kf_target target;
  kf_kernel k;
  double bits = -1;
  *passes = -1;
  int rc = build_default(&ctx, target_name, shape_txt, &t, &target, &k);
  if (!rc) kf_binding_get(&k.config, "passes", passes);
  if (!rc) rc = kf_kernel_load(&ctx, &k, KF_EMIT_LLVM);
  kf_problem *p = NULL;
  if (!rc) rc = kf_problem_new(&ctx, &k, 7, 0, &p);
  if (!rc) {
    kf_pool *pool = kf_pool_new(1);
    kf_runner *r = kf_runner_new(&k, pool);
    kf_problem_poison_outputs(p);
    kf_runner_run(r, kf_problem_args(p));
    kf_check_result res;
    rc = kf_problem_check(&ctx, p, &res);
    if (!rc) bits = res.eff_bits;
    kf_runner_free(r);
    kf_pool_free(pool);
  }
  snprintf(err, n_err, "%s", rc ? kf_errmsg(&ctx) : "");
  kf_problem_free(p);
  if (k.ir) kf_kernel_free(&k);
  kf_template_free(t);
  return bits;
}

static int64_t config_val(const char *json, const char *name) {
  kf_ctx c;
  kf_ctx_init(&c);
  kf_binding b;
  int64_t v = -1;
  if (!kf_config_parse(&c, json, &b)) kf_binding_get(&b, name, &v);
  return v;
}

typedef struct pass_count {
  int n, by_passes[4];
  int n_no_bits;
} pass_count;

static int count_cb(void *arg, int n, const char *const *names, const char *const *vals) {
  (void)n;
  (void)names;
  pass_count *pc = arg;
  int64_t p = config_val(vals[0], "passes");
  if (p >= 1 && p <= 3) pc->by_passes[p]++;
  pc->n++;
  pc->n_no_bits += !vals[1] || !vals[2];
  return 0;
}

static kf_lookup_result lookup(kf_store *s, const char *shape_txt, double min_bits, int allow_stale, int *rc_out) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t;
  kf_target target;
  kf_kernel k;
  kf_lookup_result lr;
  memset(&lr, 0, sizeof lr);
  kf_lookup_opts lo = {min_bits, allow_stale};
  int rc = build_default(&ctx, "cpu-host", shape_txt, &t, &target, &k);
  if (!rc) rc = kf_lookup(&ctx, s, t, &k.params, NULL, &target, &lo, &lr);
  if (rc) printf("  lookup failed: %s\n", kf_errmsg(&ctx));
  *rc_out = rc;
  if (k.ir) kf_kernel_free(&k);
  kf_template_free(t);
  return lr;
}

int main(void) {
  char dir[256], db[300], err[1024];
  tt_tempdir(dir, sizeof dir, "tacc");
  snprintf(db, sizeof db, "%s/acc.db", dir);
  FILE *log = fopen("/dev/null", "w");
  kf_ctx ctx;
  kf_ctx_init(&ctx);

  /* ---- the fallback keeps accuracy tunables ---- */
  int64_t passes;
  const char *why = NULL;
  kf_target avx2;
  kf_target_get(&ctx, "cpu-avx2", &avx2);
  if (kf_target_runnable(&avx2, &why)) {
    double bits = check_bits("cpu-avx2", "M=1,N=256,K=512", &passes, err, sizeof err);
    TT_CHECK(passes == 2 && bits >= 14, "cpu-avx2 msd_gemm M=1 default: passes=%lld, %.2f effective bits (>= 14)%s%s",
             (long long)passes, bits, err[0] ? ": " : "", err);
  } else
    printf("skip: cpu-avx2 does not run here (no %s)\n", why);
  for (int trial = 0; trial < 6; trial++) { /* odd shapes: M small, N/K not tile multiples */
    static const char *const shapes[] = {"M=1,N=17,K=9",  "M=2,N=100,K=33", "M=3,N=48,K=1000",
                                         "M=1,N=1,K=1",   "M=5,N=31,K=64",  "M=1,N=64,K=4096"};
    double bits = check_bits("cpu-avx2", shapes[trial], &passes, err, sizeof err);
    TT_CHECK(passes == 2 && (bits >= 14 || !kf_target_runnable(&avx2, &why)),
             "cpu-avx2 msd_gemm %s: passes=%lld, %.2f bits%s%s", shapes[trial], (long long)passes, bits,
             err[0] ? ": " : "", err);
  }
  {
    /* mr=6, nr=32 on AVX-512 (32 registers of 16 lanes): 2 passes need 39 registers, 1 pass 27 */
    kf_template *t = NULL;
    kf_target avx512;
    kf_kernel k;
    memset(&k, 0, sizeof k);
    kf_binding shape, fixed;
    memset(&shape, 0, sizeof shape);
    memset(&fixed, 0, sizeof fixed);
    kf_binding_parse(&ctx, "M=8,N=64,K=64", "shape", &shape);
    kf_binding_parse(&ctx, "mr=6,nr=32", "--set", &fixed);
    kf_target_get(&ctx, "cpu-avx512", &avx512);
    kf_template_load(&ctx, "msd_gemm", &t);
    kf_err(&ctx, KF_OK, "%s", "");
    int rc = kf_kernel_build(&ctx, t, &shape, &fixed, &avx512, &k);
    TT_CHECK(rc != 0 && strstr(kf_errmsg(&ctx), "passes=2") && strstr(kf_errmsg(&ctx), "never lowered"),
             "--set mr=6,nr=32 cannot run 2 passes: refused naming passes=2, not replaced (%.170s)", kf_errmsg(&ctx));
    if (k.ir) kf_kernel_free(&k);
    kf_binding_set(&fixed, "passes", 1);
    rc = kf_kernel_build(&ctx, t, &shape, &fixed, &avx512, &k);
    TT_CHECK(rc == 0, "with passes=1 set explicitly it builds%s%s", rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
    if (k.ir) kf_kernel_free(&k);
    kf_template_free(t);
  }

  /* ---- sweeps ---- */
  kf_store *s;
  if (kf_store_open(&ctx, db, 1, &s)) {
    printf("FAIL: open: %s\n", kf_errmsg(&ctx));
    return 1;
  }
  kf_tune_opts o;
  tt_fast_opts(&o, log);
  kf_binding shape, fixed;
  memset(&shape, 0, sizeof shape);
  memset(&fixed, 0, sizeof fixed);
  kf_binding_parse(&ctx, "M=4,N=64,K=256", "shape", &shape);
  kf_binding_parse(&ctx, "mr=1,nr=16,mc=16,kc=256", "--set", &fixed); /* free: passes, nc */
  kf_tune_summary sum;
  int rc = kf_tune(&ctx, s, "msd_gemm", &shape, &fixed, "cpu-host", &o, &sum);
  pass_count pc;
  memset(&pc, 0, sizeof pc);
  kf_store_query(&ctx, s, "SELECT config, eff_bits, max_err_ratio FROM trials", NULL, 0, count_cb, &pc);
  TT_CHECK(rc == 0 && sum.n_ok == 7 && pc.n == 7 && pc.by_passes[2] == 7,
           "sweep without --min-bits: 7 configs (nc), all passes=2 (%d of %d)%s%s", pc.by_passes[2], pc.n,
           rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
  TT_CHECK(pc.n_no_bits == 0 && sum.best.eff_bits >= 14 && sum.best.max_err_ratio > 0 && sum.best.max_err_ratio <= 1,
           "every trial records eff bits and err/bound (best: %.2f bits, %.3f)", sum.best.eff_bits,
           sum.best.max_err_ratio);
  o.min_bits = 15;
  rc = kf_tune(&ctx, s, "msd_gemm", &shape, &fixed, "cpu-host", &o, &sum);
  memset(&pc, 0, sizeof pc);
  kf_store_query(&ctx, s, "SELECT config, eff_bits, max_err_ratio FROM trials", NULL, 0, count_cb, &pc);
  TT_CHECK(rc == 0 && pc.n == 21 && pc.by_passes[1] == 7 && pc.by_passes[3] == 7,
           "--min-bits 15: passes 1 and 3 tried too (%d trials)", pc.n);
  TT_CHECK(sum.have_best && config_val(sum.best.config, "passes") >= 2 && sum.best.eff_bits >= 15,
           "--min-bits 15 never picks passes=1: %s (%.2f bits)", sum.best.config, sum.best.eff_bits);
  long low = tt_count(s, "SELECT max(eff_bits) FROM trials WHERE config LIKE '%\"passes\":1%'");
  TT_CHECK(low > 0 && low < 10, "1-pass trials measure < 10 effective bits (%ld)", low);
  o.min_bits = 0;
  rc = kf_tune(&ctx, s, "msd_gemm", &shape, &fixed, "cpu-host", &o, &sum);
  TT_CHECK(rc == 0 && sum.n_run == 0 && config_val(sum.best.config, "passes") == 2,
           "without --min-bits again: nothing new, best at the default passes=2 (%s)", sum.best.config);
  /* make a 1-pass trial the fastest in the store: the contract must still hold */
  kf_store_query(&ctx, s, "UPDATE trials SET median_s = 1e-9, min_s = 1e-9 WHERE config LIKE '%\"passes\":1%'", NULL, 0,
                 tt_count_cb, &(long){0});
  int lrc;
  kf_lookup_result lr = lookup(s, "M=4,N=64,K=256", 0, 0, &lrc);
  TT_CHECK(lrc == 0 && lr.kind == KF_LOOKUP_EXACT &&
               kf_binding_get(&lr.config, "passes", &passes) && passes == 2 && lr.eff_bits >= 14,
           "lookup without --min-bits: passes=%lld (the faster 1-pass trial is not served), %.2f bits", (long long)passes,
           lr.eff_bits);
  lr = lookup(s, "M=4,N=64,K=256", 15, 0, &lrc);
  TT_CHECK(lrc == 0 && kf_binding_get(&lr.config, "passes", &passes) && passes >= 2 && lr.eff_bits >= 15,
           "lookup --min-bits 15: passes=%lld, %.2f bits", (long long)passes, lr.eff_bits);
  lr = lookup(s, "M=4,N=64,K=256", 6, 0, &lrc);
  TT_CHECK(lrc == 0 && kf_binding_get(&lr.config, "passes", &passes) && passes == 1,
           "lookup --min-bits 6: the (fastest) 1-pass trial is allowed (passes=%lld)", (long long)passes);

  /* ---- another generator version: stale ---- */
  kf_store_set_gen_hash(s, "0123456789abcdef");
  lr = lookup(s, "M=4,N=64,K=256", 0, 0, &lrc);
  TT_CHECK(lrc == 0 && lr.kind == KF_LOOKUP_DEFAULT, "after a generator change: lookup skips stale trials (%s: %s)",
           kf_lookup_kind_name(lr.kind), lr.note);
  lr = lookup(s, "M=4,N=64,K=256", 0, 1, &lrc);
  TT_CHECK(lrc == 0 && lr.kind == KF_LOOKUP_EXACT && strstr(lr.note, "stale"), "--allow-stale: served, marked (%s)",
           lr.note);
  memset(&fixed, 0, sizeof fixed);
  kf_binding_parse(&ctx, "mr=1,nr=16,mc=16,kc=256,nc=64", "--set", &fixed);
  rc = kf_tune(&ctx, s, "msd_gemm", &shape, &fixed, "cpu-host", &o, &sum);
  TT_CHECK(rc == 0 && sum.recorded == 0 && sum.n_run == 1 && sum.have_best,
           "a sweep re-runs the stale configuration (%lld run, %lld recorded before)", (long long)sum.n_run,
           (long long)sum.recorded);
  TT_CHECK(tt_count(s, "SELECT count(*) FROM trials WHERE gen_hash = '0123456789abcdef'") == 1 &&
               tt_count(s, "SELECT count(*) FROM trials") == 22,
           "the new trial sits beside the stale ones (22 rows)");
  kf_store_close(s);
  fclose(log);
  return tt_finish(dir);
}

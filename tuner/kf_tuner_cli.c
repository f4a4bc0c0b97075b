/*
** kf_tuner_cli.c: `kforge tune`, `kforge db`, `kforge lib`, `kforge plot`.
*/
#define _GNU_SOURCE
#include "kf_tuner_cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kf_lib.h"
#include "kf_tune.h"

static int usage(const char *verb, const char *fmt, const char *arg) {
  fprintf(stderr, "kforge %s: error: ", verb);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'kforge %s --help')\n", verb);
  return 2;
}

static int fail(const char *verb, kf_ctx *ctx) {
  fprintf(stderr, "kforge %s: error: %s\n", verb, kf_errmsg(ctx));
  return 2;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || *end || errno || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* ---- kforge tune ---- */

static const char tune_help[] =
    "usage: kforge tune TEMPLATE (--shape NAME=V,... | --shapes FILE)... --db FILE\n"
    "                   [--strategy exhaustive|random|evolve] [--budget N | --budget-s SECONDS]\n"
    "                   [--shard I/N] [--target T] [--emit llvm|c] [--set NAME=VALUE ...]\n"
    "                   [--threads N] [--trial-budget SECONDS] [--trial-timeout SECONDS] [--cold]\n"
    "                   [--seed N] [--quiet] [--min-bits B] [--remeasure K] [--shard auto [--shard-count N]]\n\n"
    "Autotunes the template's tunables for each shape. The search space is the cross product of\n"
    "the tunables' domains under the template's constraints (--set pins a tunable). Each trial\n"
    "runs in a forked child: generate, compile, check against the fp64 reference (a wrong kernel\n"
    "is recorded 'failed: wrong result', never timed), then time it (warm-up, median, spread).\n"
    "A crash or a hang (--trial-timeout, default 120 s) is recorded as failed. Every trial is\n"
    "committed to the SQLite file as it completes; configurations already recorded are skipped,\n"
    "so an interrupted sweep resumes. --budget limits new trials, --budget-s the seconds per shape;\n"
    "--shard I/N runs every N-th work item (shape, configuration) of the shapes list (one DB per\n"
    "shard; merge with 'kforge db merge'); --shard auto reads I and N from a Slurm job array\n"
    "(SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT or _MIN/_MAX) or a Kubernetes Indexed Job\n"
    "(JOB_COMPLETION_INDEX with --shard-count N; docs/cluster.md). --remeasure K runs no new trials:\n"
    "it re-times the K fastest recorded trials of each shape on this machine (after a merge).\n"
    "Accuracy: tunables a template marks `accuracy = true` (MSD passes, ...) stay as --set or at\n"
    "their default; --min-bits B lets them vary and chooses only among trials whose measured\n"
    "effective bits on the check data are >= B.\n"
    "A shapes file has one '[TEMPLATE] NAME=V,...' per line (lines for other templates are skipped).\n"
    "Defaults: --strategy exhaustive, --emit llvm, --trial-budget 0.2, all CPUs.\n"
    "--target ascend910b|ascend910c tunes for the Ascend NPU model (kforge sim): a trial is the\n"
    "simulated time, after the functional simulator's result passed the fp64 check on the same\n"
    "shape with the batch cut down (B=2 for attention, M=16 for GEMMs); a tiling that does not fit\n"
    "L1/L0/UB is recorded as failed with the buffer named.\n";

static int env_int(const char *name, long *out) {
  const char *v = getenv(name);
  return v && *v && !parse_int(v, 0, 100000000, out) ? 1 : 0;
}

int kf_shard_from_env(long count_opt, int *shard_i, int *shard_n, char *why, size_t n_why) {
  long id, cnt, lo, hi;
  if (env_int("SLURM_ARRAY_TASK_ID", &id)) {
    /* task ids run MIN..MAX (sbatch --array=0-2, or 1-3); COUNT alone when MIN is absent */
    int have_range = env_int("SLURM_ARRAY_TASK_MIN", &lo) && env_int("SLURM_ARRAY_TASK_MAX", &hi);
    if (have_range) {
      long step = 1;
      env_int("SLURM_ARRAY_TASK_STEP", &step);
      if (step < 1) step = 1;
      if (hi < lo || id < lo || id > hi || (id - lo) % step) {
        snprintf(why, n_why, "SLURM_ARRAY_TASK_ID=%ld is outside SLURM_ARRAY_TASK_MIN..MAX=%ld..%ld", id, lo, hi);
        return -1;
      }
      cnt = (hi - lo) / step + 1;
      if (env_int("SLURM_ARRAY_TASK_COUNT", &count_opt) && count_opt != cnt) {
        snprintf(why, n_why, "SLURM_ARRAY_TASK_COUNT=%ld but MIN..MAX/STEP gives %ld tasks (a sparse --array list "
                 "is not supported: use a range)", count_opt, cnt);
        return -1;
      }
      *shard_i = (int)((id - lo) / step);
    } else if (env_int("SLURM_ARRAY_TASK_COUNT", &cnt)) {
      if (id >= cnt) {
        snprintf(why, n_why, "SLURM_ARRAY_TASK_ID=%ld >= SLURM_ARRAY_TASK_COUNT=%ld", id, cnt);
        return -1;
      }
      *shard_i = (int)id;
    } else {
      snprintf(why, n_why, "SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT or _MIN/_MAX");
      return -1;
    }
    *shard_n = (int)cnt;
    snprintf(why, n_why, "Slurm array task %ld", id);
    return 0;
  }
  if (env_int("JOB_COMPLETION_INDEX", &id)) {
    if (count_opt < 1) {
      snprintf(why, n_why, "JOB_COMPLETION_INDEX=%ld (Kubernetes Indexed Job) needs --shard-count N (the Job's "
               "completions)", id);
      return -1;
    }
    if (id >= count_opt) {
      snprintf(why, n_why, "JOB_COMPLETION_INDEX=%ld >= --shard-count %ld", id, count_opt);
      return -1;
    }
    *shard_i = (int)id;
    *shard_n = (int)count_opt;
    snprintf(why, n_why, "Kubernetes completion index %ld", id);
    return 0;
  }
  snprintf(why, n_why, "neither SLURM_ARRAY_TASK_ID (sbatch --array) nor JOB_COMPLETION_INDEX (Kubernetes Indexed "
           "Job) is set");
  return -1;
}

static int cmd_tune(const kf_ctx *base, int argc, char **argv) {
  kf_ctx ctx = *base;
  kf_tune_opts o;
  kf_tune_opts_default(&o);
  o.progress = isatty(1) ? 2 : 1;
  const char *tmpl = NULL, *db = NULL, *target = "cpu-host";
  kf_shape_list shapes = {0};
  kf_binding fixed;
  memset(&fixed, 0, sizeof fixed);
  int rc = 0, shard_auto = 0;
  long shard_count = 0;
  for (int i = 1; i < argc && !rc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = strcmp(a, "--cold") && strcmp(a, "--quiet") && strcmp(a, "--help") && strcmp(a, "-h") && a[0] == '-';
    if (takes && !v) {
      rc = usage("tune", "option %s needs a value", a);
      break;
    }
    if (takes) i++;
    long l = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(tune_help, stdout);
      kf_vec_free(&shapes);
      return 0;
    } else if (!strcmp(a, "--shape")) {
      kf_shape_entry e;
      memset(&e, 0, sizeof e);
      if (strlen(v) >= sizeof e.shape) rc = usage("tune", "--shape '%.60s...' too long", v);
      snprintf(e.shape, sizeof e.shape, "%s", v);
      kf_vec_push(&shapes, e);
    } else if (!strcmp(a, "--shapes")) {
      if (kf_shapes_read(&ctx, v, &shapes)) rc = fail("tune", &ctx);
    } else if (!strcmp(a, "--db")) db = v;
    else if (!strcmp(a, "--target")) target = v;
    else if (!strcmp(a, "--strategy")) {
      if (!strcmp(v, "exhaustive")) o.strategy = KF_STRAT_EXHAUSTIVE;
      else if (!strcmp(v, "random")) o.strategy = KF_STRAT_RANDOM;
      else if (!strcmp(v, "evolve")) o.strategy = KF_STRAT_EVOLVE;
      else rc = usage("tune", "unknown --strategy '%s' (exhaustive, random, evolve)", v);
    } else if (!strcmp(a, "--budget")) {
      if (parse_int(v, 1, 100000000, &l)) rc = usage("tune", "bad --budget '%s' (a trial count >= 1)", v);
      o.budget_n = l;
    } else if (!strcmp(a, "--budget-s")) {
      if (parse_double(v, 0.001, 1e7, &o.budget_s)) rc = usage("tune", "bad --budget-s '%s' (seconds > 0)", v);
    } else if (!strcmp(a, "--shard")) {
      int si, sn;
      char extra;
      if (!strcmp(v, "auto")) shard_auto = 1;
      else if (sscanf(v, "%d/%d%c", &si, &sn, &extra) != 2 || sn < 1 || si < 0 || si >= sn)
        rc = usage("tune", "bad --shard '%s' (I/N with 0 <= I < N, or auto)", v);
      else {
        o.shard_i = si;
        o.shard_n = sn;
      }
    } else if (!strcmp(a, "--shard-count")) {
      if (parse_int(v, 1, 1000000, &shard_count)) rc = usage("tune", "bad --shard-count '%s' (>= 1)", v);
    } else if (!strcmp(a, "--min-bits")) {
      if (parse_double(v, 0.5, 64, &o.min_bits)) rc = usage("tune", "bad --min-bits '%s' (effective bits, 0.5..64)", v);
    } else if (!strcmp(a, "--remeasure")) {
      if (parse_int(v, 1, 10000, &l)) rc = usage("tune", "bad --remeasure '%s' (a trial count >= 1)", v);
      o.remeasure = (int)l;
    } else if (!strcmp(a, "--emit")) {
      if (!strcmp(v, "llvm")) o.emitter = KF_EMIT_LLVM;
      else if (!strcmp(v, "c")) o.emitter = KF_EMIT_C;
      else rc = usage("tune", "unknown --emit '%s' (llvm, c)", v);
    } else if (!strcmp(a, "--set")) {
      if (kf_binding_parse(&ctx, v, "--set", &fixed)) rc = fail("tune", &ctx);
    } else if (!strcmp(a, "--threads")) {
      if (parse_int(v, 0, 4096, &l)) rc = usage("tune", "bad --threads '%s'", v);
      o.threads = (int)l;
    } else if (!strcmp(a, "--trial-budget")) {
      if (parse_double(v, 0.001, 3600, &o.trial_budget_s)) rc = usage("tune", "bad --trial-budget '%s'", v);
    } else if (!strcmp(a, "--trial-timeout")) {
      if (parse_double(v, 0.1, 86400, &o.trial_timeout_s)) rc = usage("tune", "bad --trial-timeout '%s'", v);
    } else if (!strcmp(a, "--seed")) {
      if (parse_int(v, 0, 1L << 30, &l)) rc = usage("tune", "bad --seed '%s'", v);
      o.seed = (uint64_t)l;
    } else if (!strcmp(a, "--cold")) o.cold = 1;
    else if (!strcmp(a, "--quiet")) o.progress = 0;
    else if (a[0] == '-') rc = usage("tune", "unknown option '%s'", a);
    else if (!tmpl) tmpl = a;
    else rc = usage("tune", "unexpected argument '%s'", a);
  }
  if (!rc && !tmpl) rc = usage("tune", "%s", "missing TEMPLATE");
  if (!rc && !db) rc = usage("tune", "%s", "missing --db FILE");
  if (!rc && shapes.len == 0) rc = usage("tune", "%s", "missing --shape NAME=V,... or --shapes FILE");
  if (!rc && o.budget_n > 0 && o.budget_s > 0) rc = usage("tune", "%s", "give --budget or --budget-s, not both");
  if (!rc && shard_count && !shard_auto) rc = usage("tune", "%s", "--shard-count goes with --shard auto");
  if (!rc && shard_auto) {
    char why[256];
    if (kf_shard_from_env(shard_count, &o.shard_i, &o.shard_n, why, sizeof why)) rc = usage("tune", "--shard auto: %s", why);
    else fprintf(stderr, "kforge tune: --shard auto: shard %d of %d (%s)\n", o.shard_i, o.shard_n, why);
  }
  kf_sim_target sim;
  if (!rc) {
    int is_sim = kf_sim_target_open(&ctx, target, &sim);
    if (is_sim < 0) rc = fail("tune", &ctx);
    if (is_sim > 0) o.sim = &sim;
  }
  kf_store *s = NULL;
  if (!rc && kf_store_open(&ctx, db, 1, &s)) rc = fail("tune", &ctx);
  int interrupted = 0;
  int64_t item_base = 0; /* work items of the shapes before: shards split (shape, config) items */
  for (size_t i = 0; !rc && i < shapes.len && !interrupted; i++) {
    if (shapes.data[i].tmpl[0] && strcmp(shapes.data[i].tmpl, tmpl)) continue; /* another template's line */
    kf_binding shape;
    memset(&shape, 0, sizeof shape);
    kf_tune_summary sum;
    if (kf_binding_parse(&ctx, shapes.data[i].shape, "--shape", &shape) ||
        kf_tune_items(&ctx, s, tmpl, &shape, &fixed, target, &o, &item_base, &sum)) {
      rc = fail("tune", &ctx);
      break;
    }
    interrupted = sum.interrupted;
  }
  kf_store_close(s);
  kf_vec_free(&shapes);
  if (!rc && interrupted) {
    fprintf(stderr, "kforge tune: interrupted; run the same command again to resume\n");
    return 130;
  }
  return rc;
}

/* ---- kforge db ---- */

static const char db_help[] =
    "usage: kforge db show   --db FILE [TEMPLATE] [--shape NAME=V,...] [--status ok|failed]\n"
    "       kforge db best   --db FILE [TEMPLATE] [--shape NAME=V,...]\n"
    "       kforge db export --db FILE [TEMPLATE] [--shape ...] [--format csv|json] [-o FILE] [--plot FILE]\n"
    "       kforge db merge  --db OUT SHARD.db...\n"
    "       kforge db lookup --db FILE TEMPLATE --shape NAME=V,... [--target T] [--set NAME=V]\n"
    "                        [--min-bits B] [--allow-stale]\n\n"
    "show: every trial (config, status, median/min/spread, error); best: the best config per\n"
    "workload and target with its speedup over the template default; export: CSV (default) or\n"
    "JSON of the trials (--plot also draws them, see 'kforge plot'); merge: copies the trials of\n"
    "shard databases into OUT (created if missing; trials already in OUT are kept); lookup: the\n"
    "config kforge lib would use for a shape: exact, else the nearest tuned shape, else the default.\n"
    "Every trial records its check's max |err|/bound and effective bits. Trials generated by another\n"
    "generator/lowering version are 'stale': show marks them, best and lookup skip them (lookup:\n"
    "unless --allow-stale). best and lookup keep the accuracy contract: accuracy tunables at their\n"
    "default (or --set), unless --min-bits B (then trials measuring >= B effective bits).\n";

typedef struct db_opts {
  const char *db, *tmpl, *shape, *format, *out, *plot, *status, *target;
  const char *inputs[256];
  int n_inputs;
  kf_binding fixed;
  double min_bits;
  int allow_stale;
  const char *gen_hash;
} db_opts;

static const char trial_sql[] =
    "SELECT t.id, w.template, w.shape, g.name AS target, g.emitter, g.cpu_model, g.threads, t.config, t.status, "
    "t.median_s, t.min_s, t.spread, t.n_runs, t.max_err_ratio, t.compile_s, t.rigor, t.kforge_version, "
    "t.created_at, t.error, w.template_hash, w.id AS workload_id, g.id AS target_id, t.eff_bits, t.gen_hash, "
    "t.gen_hash <> ?3 AS stale "
    "FROM trials t JOIN workloads w ON w.id = t.workload_id JOIN targets g ON g.id = t.target_id "
    "WHERE (?1 IS NULL OR w.template = ?1) AND (?2 IS NULL OR (?2 = 'ok') = (t.status = 'ok')) "
    "ORDER BY w.id, g.id, t.id";

/* Every NAME=V of the filter appears in the stored shape. */
static int shape_matches(const char *filter, const char *shape) {
  if (!filter) return 1;
  kf_ctx c;
  kf_ctx_init(&c);
  kf_binding f, s;
  memset(&f, 0, sizeof f);
  memset(&s, 0, sizeof s);
  if (kf_binding_parse(&c, filter, "--shape", &f) || kf_binding_parse(&c, shape, "shape", &s)) return 0;
  for (int i = 0; i < f.n; i++) {
    int64_t v;
    if (!kf_binding_get(&s, f.name[i], &v) || v != f.val[i]) return 0;
  }
  return 1;
}

static int col(int n, const char *const *names, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return i;
  return -1;
}

typedef struct rows {
  const db_opts *o;
  kf_store *s;
  FILE *f;
  int n_rows, format; /* 0 table, 1 csv, 2 json */
  char last_workload[64];
} rows;

static void csv_field(FILE *f, const char *v) {
  if (!v) return;
  if (!strpbrk(v, ",\"\n\r")) {
    fputs(v, f);
    return;
  }
  fputc('"', f);
  for (; *v; v++) {
    if (*v == '"') fputc('"', f);
    fputc(*v, f);
  }
  fputc('"', f);
}

static void json_string(FILE *f, const char *v) {
  fputc('"', f);
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static int row_cb(void *arg, int n, const char *const *names, const char *const *vals) {
  rows *r = arg;
  if (!shape_matches(r->o->shape, vals[col(n, names, "shape")])) return 0;
  FILE *f = r->f;
  if (r->format == 1) {
    if (r->n_rows == 0)
      for (int i = 0; i < n; i++) fprintf(f, "%s%s", names[i], i + 1 < n ? "," : "\n");
    for (int i = 0; i < n; i++) {
      csv_field(f, vals[i]);
      fputs(i + 1 < n ? "," : "\n", f);
    }
  } else if (r->format == 2) {
    fputs(r->n_rows ? ",\n  {" : "[\n  {", f);
    for (int i = 0; i < n; i++) {
      fprintf(f, "%s\"%s\": ", i ? ", " : "", names[i]);
      int numeric = !strcmp(names[i], "id") || !strcmp(names[i], "threads") || !strcmp(names[i], "n_runs") ||
                    strstr(names[i], "_s") == names[i] + strlen(names[i]) - 2 || !strcmp(names[i], "spread") ||
                    !strcmp(names[i], "max_err_ratio") || !strcmp(names[i], "workload_id") ||
                    !strcmp(names[i], "target_id") || !strcmp(names[i], "eff_bits") || !strcmp(names[i], "stale");
      if (!vals[i]) fputs("null", f);
      else if (!strcmp(names[i], "config") || numeric) fputs(vals[i], f);
      else json_string(f, vals[i]);
    }
    fputs("}", f);
  } else {
    const char *wid = vals[col(n, names, "workload_id")], *tid = vals[col(n, names, "target_id")];
    char key[64];
    snprintf(key, sizeof key, "%s/%s", wid, tid);
    if (strcmp(key, r->last_workload)) {
      snprintf(r->last_workload, sizeof r->last_workload, "%s", key);
      fprintf(f, "%s %s  on %s (%s, %s threads, %s)\n", vals[col(n, names, "template")], vals[col(n, names, "shape")],
              vals[col(n, names, "target")], vals[col(n, names, "emitter")], vals[col(n, names, "threads")],
              vals[col(n, names, "cpu_model")]);
    }
    const char *med = vals[col(n, names, "median_s")], *sp = vals[col(n, names, "spread")],
               *err = vals[col(n, names, "error")], *bits = vals[col(n, names, "eff_bits")],
               *ratio = vals[col(n, names, "max_err_ratio")];
    int stale = atoi(vals[col(n, names, "stale")]);
    char acc[64] = "";
    if (bits || ratio)
      snprintf(acc, sizeof acc, "  %5.2f bits  err/bound %.3f", bits ? atof(bits) : NAN, ratio ? atof(ratio) : NAN);
    if (med)
      fprintf(f, "  %5s  %-60s %-8s median %10.2f us  min %10.2f us  spread %5.1f%%%s  %s%s\n", vals[0],
              vals[col(n, names, "config")], vals[col(n, names, "status")], atof(med) * 1e6,
              atof(vals[col(n, names, "min_s")]) * 1e6, sp ? atof(sp) * 100 : 0.0, acc, vals[col(n, names, "rigor")],
              stale ? "  STALE (other generator version)" : "");
    else {
      /* The error's first line in full (it names the file, the line and the buffer); later lines are compiler
         output that `db export --format json` still gives. */
      const char *e = err ? err : "";
      int len = (int)strcspn(e, "\n");
      fprintf(f, "  %5s  %-60s %s%s: %.*s%s\n", vals[0], vals[col(n, names, "config")], vals[col(n, names, "status")],
              stale ? " STALE" : "", len > 1000 ? 1000 : len, e, len > 1000 || e[len] ? " ..." : "");
    }
  }
  r->n_rows++;
  return 0;
}

/* One row per (workload, target): its default's median (current generator version) and counts;
** the best is then chosen in C under the accuracy contract (kf_accuracy_accept). */
static const char best_sql[] =
    "WITH d AS (SELECT workload_id, target_id, median_s FROM trials WHERE rigor = 'default' AND status = 'ok' "
    "  AND gen_hash = ?2), "
    "c AS (SELECT workload_id, target_id, count(*) AS n, sum(status = 'ok') AS n_ok, sum(gen_hash <> ?2) AS n_stale "
    "  FROM trials GROUP BY workload_id, target_id) "
    "SELECT w.template, w.shape, g.name AS target, g.emitter, g.cpu_model, c.workload_id, c.target_id, "
    "  d.median_s AS default_s, c.n, c.n_ok, c.n_stale, "
    "  (SELECT max(complete) FROM sweeps s WHERE s.workload_id = c.workload_id AND s.target_id = c.target_id) AS complete "
    "FROM c JOIN workloads w ON w.id = c.workload_id JOIN targets g ON g.id = c.target_id "
    "LEFT JOIN d ON d.workload_id = c.workload_id AND d.target_id = c.target_id "
    "WHERE (?1 IS NULL OR w.template = ?1) ORDER BY w.template, w.id, g.id";

static int best_cb(void *arg, int n, const char *const *names, const char *const *vals) {
  rows *r = arg;
  (void)n;
  (void)names;
  if (!shape_matches(r->o->shape, vals[1])) return 0;
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t = NULL;
  kf_accuracy acc = {NULL, &r->o->fixed, r->o->min_bits};
  int have_t = kf_template_load(&ctx, vals[0], &t) == KF_OK;
  acc.t = t;
  kf_trial_rec best;
  int found = 0;
  if (kf_store_best(&ctx, r->s, atoll(vals[5]), atoll(vals[6]), have_t ? kf_accuracy_accept : NULL, &acc, &best,
                    &found)) {
    fprintf(stderr, "kforge db best: %s\n", kf_errmsg(&ctx));
    kf_template_free(t);
    return 1;
  }
  kf_template_free(t);
  fprintf(r->f, "%s %s on %s (%s, %s)\n", vals[0], vals[1], vals[2], vals[3], vals[4]);
  if (!found) {
    fprintf(r->f, "  best -  (%s trials, %s ok, %s stale: none current%s)\n", vals[8], vals[9], vals[10],
            r->o->min_bits > 0 ? " measuring >= --min-bits" : " at the template's accuracy setting");
    r->n_rows++;
    return 0;
  }
  double med = best.median_s;
  fprintf(r->f, "  best %s  median %.2f us  spread %.1f%%  %.2f effective bits  max err/bound %.3f  (%s trials, %s ok%s%s%s)",
          best.config, med * 1e6, best.spread * 100, best.eff_bits, best.max_err_ratio, vals[8], vals[9],
          vals[11] && atoi(vals[11]) ? ", space complete" : "", atoi(vals[10]) ? ", stale skipped: " : "",
          atoi(vals[10]) ? vals[10] : "");
  if (!have_t) fprintf(r->f, "  (template %s not found: accuracy tunables unknown)", vals[0]);
  if (vals[7]) fprintf(r->f, "  default %.2f us -> %.2fx", atof(vals[7]) * 1e6, atof(vals[7]) / med);
  fputc('\n', r->f);
  r->n_rows++;
  return 0;
}

static int do_plot(kf_ctx *ctx, kf_store *s, const db_opts *o, const char *out_path);

static int cmd_db(const kf_ctx *base, int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(db_help, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "show") && strcmp(sub, "best") && strcmp(sub, "export") && strcmp(sub, "merge") &&
      strcmp(sub, "lookup"))
    return usage("db", "unknown subcommand '%s' (show, best, export, merge, lookup)", sub);
  kf_ctx ctx = *base;
  db_opts o;
  memset(&o, 0, sizeof o);
  o.target = "cpu-host";
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(db_help, stdout);
      return 0;
    }
    if (a[0] == '-' && !v && strcmp(a, "--allow-stale")) return usage("db", "option %s needs a value", a);
    if (!strcmp(a, "--db")) o.db = v;
    else if (!strcmp(a, "--shape")) o.shape = v;
    else if (!strcmp(a, "--format")) o.format = v;
    else if (!strcmp(a, "-o")) o.out = v;
    else if (!strcmp(a, "--plot")) o.plot = v;
    else if (!strcmp(a, "--status")) o.status = v;
    else if (!strcmp(a, "--target")) o.target = v;
    else if (!strcmp(a, "--allow-stale")) {
      o.allow_stale = 1;
      continue;
    } else if (!strcmp(a, "--min-bits")) {
      if (parse_double(v, 0.5, 64, &o.min_bits)) return usage("db", "bad --min-bits '%s' (effective bits, 0.5..64)", v);
    } else if (!strcmp(a, "--set")) {
      if (kf_binding_parse(&ctx, v, "--set", &o.fixed)) return fail("db", &ctx);
    } else if (a[0] == '-') return usage("db", "unknown option '%s'", a);
    else {
      if (!strcmp(sub, "merge")) {
        if (o.n_inputs == 256) return usage("db", "%s", "too many inputs");
        o.inputs[o.n_inputs++] = a;
      } else if (!o.tmpl) o.tmpl = a;
      else return usage("db", "unexpected argument '%s'", a);
      continue;
    }
    i++;
  }
  if (!o.db) return usage("db", "%s", "missing --db FILE");
  if (o.status && strcmp(o.status, "ok") && strcmp(o.status, "failed"))
    return usage("db", "bad --status '%s' (ok, failed)", o.status);
  kf_store *s = NULL;
  int merge = !strcmp(sub, "merge");
  if (merge && o.n_inputs == 0) return usage("db", "%s", "merge needs at least one SHARD.db");
  if (kf_store_open(&ctx, o.db, merge, &s)) return fail("db", &ctx);
  int rc = 0;
  if (merge) {
    int64_t total = 0;
    for (int i = 0; i < o.n_inputs && !rc; i++) {
      int64_t n;
      if (kf_store_merge(&ctx, s, o.inputs[i], &n)) rc = fail("db", &ctx);
      else {
        printf("merged %s: %lld new trials\n", o.inputs[i], (long long)n);
        total += n;
      }
    }
    if (!rc) printf("%s: %lld trials added\n", o.db, (long long)total);
  } else if (!strcmp(sub, "lookup")) {
    kf_template *t = NULL;
    kf_kernel k;
    memset(&k, 0, sizeof k);
    kf_binding shape;
    memset(&shape, 0, sizeof shape);
    kf_target target;
    kf_lookup_result lr;
    kf_sim_target sim;
    if (!o.tmpl || !o.shape) rc = usage("db", "%s", "lookup needs TEMPLATE and --shape");
    else if (kf_sim_target_open(&ctx, o.target, &sim) > 0)
      rc = usage("db", "target %s is not a CPU target: lookup serves generated CPU code (its tuned results: 'kforge db best')",
                 o.target);
    else if (kf_binding_parse(&ctx, o.shape, "--shape", &shape) || kf_target_get(&ctx, o.target, &target) ||
             kf_template_load(&ctx, o.tmpl, &t) || kf_kernel_build(&ctx, t, &shape, NULL, &target, &k) ||
             kf_lookup(&ctx, s, t, &k.params, &o.fixed, &target, &(kf_lookup_opts){o.min_bits, o.allow_stale}, &lr))
      rc = fail("db", &ctx);
    else {
      char js[512];
      kf_config_json(&lr.config, js, sizeof js);
      printf("%s %s: %s config %s", o.tmpl, o.shape, kf_lookup_kind_name(lr.kind), js);
      if (lr.kind == KF_LOOKUP_EXACT)
        printf(" (tuned: median %.2f us, %.2f effective bits, max err/bound %.3f%s%s)\n", lr.median_s * 1e6,
               lr.eff_bits, lr.max_err_ratio, lr.note[0] ? "; " : "", lr.note);
      else if (lr.kind == KF_LOOKUP_NEAREST)
        printf(" (from the nearest tuned shape %s, distance %.2f; there %.2f effective bits, max err/bound %.3f%s%s)\n",
               lr.from_shape, lr.distance, lr.eff_bits, lr.max_err_ratio, lr.note[0] ? "; " : "", lr.note);
      else printf(" (template default: %s)\n", lr.note);
      if (lr.kind != KF_LOOKUP_EXACT)
        fprintf(stderr, "kforge db lookup: warning: %s %s is not tuned; using the %s fallback\n", o.tmpl, o.shape,
                kf_lookup_kind_name(lr.kind));
    }
    if (k.ir) kf_kernel_free(&k);
    kf_template_free(t);
  } else {
    FILE *f = stdout;
    if (o.out && !(f = fopen(o.out, "w"))) {
      fprintf(stderr, "kforge db: error: %s: %s\n", o.out, strerror(errno));
      kf_store_close(s);
      return 2;
    }
    rows r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.f = f;
    r.s = s;
    const char *binds[3] = {o.tmpl, o.status, kf_store_gen_hash(s)};
    if (!strcmp(sub, "best")) {
      const char *bb[2] = {o.tmpl, kf_store_gen_hash(s)};
      if (kf_store_query(&ctx, s, best_sql, bb, 2, best_cb, &r)) rc = fail("db", &ctx);
    } else {
      if (!strcmp(sub, "export")) {
        const char *fmt = o.format ? o.format : "csv";
        if (!strcmp(fmt, "csv")) r.format = 1;
        else if (!strcmp(fmt, "json")) r.format = 2;
        else rc = usage("db", "unknown --format '%s' (csv, json)", fmt);
      }
      if (!rc && kf_store_query(&ctx, s, trial_sql, binds, 3, row_cb, &r)) rc = fail("db", &ctx);
      if (!rc && r.format == 2) fputs(r.n_rows ? "\n]\n" : "[]\n", f);
      if (!rc && o.plot && do_plot(&ctx, s, &o, o.plot)) rc = fail("db", &ctx);
    }
    if (!rc && r.n_rows == 0 && r.format == 0) fprintf(stderr, "kforge db %s: no trials match\n", sub);
    if (f != stdout && fclose(f)) {
      fprintf(stderr, "kforge db: error: writing %s: %s\n", o.out, strerror(errno));
      rc = 2;
    }
  }
  kf_store_close(s);
  return rc;
}

/* ---- kforge plot ---- */

static const char plot_help[] =
    "usage: kforge plot --db FILE [TEMPLATE] [--shape NAME=V,...] -o FILE.png|FILE.svg\n\n"
    "Draws the sweeps of the matching workloads with gnuplot: the median time of each ok trial\n"
    "in the order they ran (log scale) and the best so far. Needs gnuplot (Debian: gnuplot-nox).\n";

typedef struct plot_data {
  const db_opts *o;
  FILE *f;
  char key[64];
  int n_series, trial_no, n_points;
  double best;
  char titles[16][160];
} plot_data;

static int plot_cb(void *arg, int n, const char *const *names, const char *const *vals) {
  plot_data *p = arg;
  if (!shape_matches(p->o->shape, vals[col(n, names, "shape")])) return 0;
  char key[64];
  snprintf(key, sizeof key, "%s/%s", vals[col(n, names, "workload_id")], vals[col(n, names, "target_id")]);
  if (strcmp(key, p->key)) {
    if (p->n_series == 16) return 1;
    if (p->n_series) fputs("\n\n", p->f);
    snprintf(p->key, sizeof p->key, "%s", key);
    snprintf(p->titles[p->n_series++], 160, "%s %s %s", vals[col(n, names, "template")], vals[col(n, names, "shape")],
             vals[col(n, names, "target")]);
    p->trial_no = 0;
    p->best = INFINITY;
  }
  p->trial_no++;
  const char *med = vals[col(n, names, "median_s")];
  if (med) {
    double us = atof(med) * 1e6;
    if (us < p->best) p->best = us;
    fprintf(p->f, "%d %g %g\n", p->trial_no, us, p->best);
    p->n_points++;
  } else if (isfinite(p->best)) fprintf(p->f, "%d NaN %g\n", p->trial_no, p->best);
  return 0;
}

static int find_in_path(const char *prog) {
  const char *path = getenv("PATH");
  if (!path) return 0;
  char *copy = kf_xstrdup(path);
  int found = 0;
  for (char *d = strtok(copy, ":"); d && !found; d = strtok(NULL, ":")) {
    kf_str full = {0};
    kf_str_printf(&full, "%s/%s", *d ? d : ".", prog);
    found = access(full.data, X_OK) == 0;
    kf_str_free(&full);
  }
  free(copy);
  return found;
}

static int do_plot(kf_ctx *ctx, kf_store *s, const db_opts *o, const char *out_path) {
  size_t len = strlen(out_path);
  int svg = len > 4 && !strcmp(out_path + len - 4, ".svg"), png = len > 4 && !strcmp(out_path + len - 4, ".png");
  if (!svg && !png) return kf_err(ctx, KF_EINVAL, "plot: output '%s' must end in .png or .svg", out_path);
  if (!find_in_path("gnuplot"))
    return kf_err(ctx, KF_EUNSUP, "plot: gnuplot not found on PATH (install it: apt-get install gnuplot-nox)");
  char dat[] = "/tmp/kforge-plot-XXXXXX";
  int fd = mkstemp(dat);
  if (fd < 0) return kf_err(ctx, KF_EIO, "plot: temporary file: %s", strerror(errno));
  plot_data p;
  memset(&p, 0, sizeof p);
  p.o = o;
  p.f = fdopen(fd, "w");
  const char *binds[3] = {o->tmpl, NULL, kf_store_gen_hash(s)};
  int rc = kf_store_query(ctx, s, trial_sql, binds, 3, plot_cb, &p);
  fclose(p.f);
  if (!rc && p.n_points == 0) rc = kf_err(ctx, KF_EINVAL, "plot: no ok trials match in %s", kf_store_path(s));
  char script[] = "/tmp/kforge-plot-XXXXXX";
  int sfd = rc ? -1 : mkstemp(script);
  if (!rc && sfd < 0) rc = kf_err(ctx, KF_EIO, "plot: temporary file: %s", strerror(errno));
  if (!rc) {
    FILE *g = fdopen(sfd, "w");
    fprintf(g, "set terminal %s size 1000,%d\nset output '%s'\n", svg ? "svg" : "png", 300 + 120 * p.n_series,
            out_path);
    fprintf(g, "set title 'kforge sweep: median time per trial and best so far'\nset xlabel 'trial (in the order run)'\n"
               "set ylabel 'median time (us)'\nset logscale y\nset key outside bottom center vertical\nset grid\n");
    fprintf(g, "plot ");
    for (int i = 0; i < p.n_series; i++) {
      char t[160];
      int j = 0;
      for (const char *c = p.titles[i]; *c && j < 150; c++)
        if (*c != '\'' && *c != '_') t[j++] = *c;
        else t[j++] = ' ';
      t[j] = 0;
      fprintf(g, "%s'%s' index %d using 1:2 with points pt 7 ps 0.6 title '%s', '%s' index %d using 1:3 with lines lw 2 "
                 "title 'best so far'",
              i ? ", " : "", dat, i, t, dat, i);
    }
    fprintf(g, "\n");
    fclose(g);
    pid_t pid = fork();
    if (pid == 0) {
      execlp("gnuplot", "gnuplot", script, (char *)NULL);
      _exit(127);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      rc = kf_err(ctx, KF_EIO, "plot: gnuplot failed (status %d) on script %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                  script);
    else unlink(script);
  }
  unlink(dat);
  if (!rc) printf("wrote %s (%d series, %d points)\n", out_path, p.n_series, p.n_points);
  return rc;
}

static int cmd_plot(const kf_ctx *base, int argc, char **argv) {
  kf_ctx ctx = *base;
  db_opts o;
  memset(&o, 0, sizeof o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(plot_help, stdout);
      return 0;
    }
    if (a[0] == '-' && !v) return usage("plot", "option %s needs a value", a);
    if (!strcmp(a, "--db")) o.db = v;
    else if (!strcmp(a, "--shape")) o.shape = v;
    else if (!strcmp(a, "-o")) o.out = v;
    else if (a[0] == '-') return usage("plot", "unknown option '%s'", a);
    else if (!o.tmpl) {
      o.tmpl = a;
      continue;
    } else return usage("plot", "unexpected argument '%s'", a);
    i++;
  }
  if (!o.db) return usage("plot", "%s", "missing --db FILE");
  if (!o.out) return usage("plot", "%s", "missing -o FILE.png|FILE.svg");
  kf_store *s;
  if (kf_store_open(&ctx, o.db, 0, &s)) return fail("plot", &ctx);
  int rc = do_plot(&ctx, s, &o, o.out) ? fail("plot", &ctx) : 0;
  kf_store_close(s);
  return rc;
}

/* ---- kforge lib ---- */

static const char lib_help[] =
    "usage: kforge lib --db FILE --shapes FILE -o DIR [--target T[,T...]] [--name NAME]\n"
    "                  [--min-bits B] [--allow-stale]\n\n"
    "AOT-compiles (LLVM) the best recorded variant of each 'TEMPLATE NAME=V,...' line of the\n"
    "shapes file for each target (else the nearest tuned shape's config, else the default; each\n"
    "line says which, with the effective bits its trial measured) into DIR/libNAME.a with\n"
    "DIR/NAME.h (one dispatch function per template: for a listed shape the best variant the CPU\n"
    "runs, checked once with cpuid; a generic runtime-shaped kernel for any other shape, or -2\n"
    "where the template declares none), DIR/kf_quant.h (weight packing) and DIR/NAME.pc.\n"
    "Accuracy tunables stay at their defaults unless --min-bits (as in 'kforge db lookup').\n"
    "NAME defaults to kforge_kernels. Programs link it with libc, libm and pthreads only:\n"
    "  cc prog.c $(PKG_CONFIG_PATH=DIR pkg-config --cflags --libs kforge_kernels)\n";

static int cmd_lib(const kf_ctx *base, int argc, char **argv) {
  kf_ctx ctx = *base;
  const char *db = NULL, *shapes_path = NULL, *out = NULL, *target = "cpu-host", *name = NULL;
  kf_lookup_opts lo = {0, 0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(lib_help, stdout);
      return 0;
    }
    if (!strcmp(a, "--allow-stale")) {
      lo.allow_stale = 1;
      continue;
    }
    if (a[0] != '-') return usage("lib", "unexpected argument '%s'", a);
    if (!v) return usage("lib", "option %s needs a value", a);
    if (!strcmp(a, "--db")) db = v;
    else if (!strcmp(a, "--shapes")) shapes_path = v;
    else if (!strcmp(a, "-o")) out = v;
    else if (!strcmp(a, "--target")) target = v;
    else if (!strcmp(a, "--name")) name = v;
    else if (!strcmp(a, "--min-bits")) {
      if (parse_double(v, 0.5, 64, &lo.min_bits)) return usage("lib", "bad --min-bits '%s' (effective bits, 0.5..64)", v);
    } else return usage("lib", "unknown option '%s'", a);
    i++;
  }
  if (!db) return usage("lib", "%s", "missing --db FILE");
  if (!shapes_path) return usage("lib", "%s", "missing --shapes FILE");
  if (!out) return usage("lib", "%s", "missing -o DIR");
  kf_sim_target sim;
  if (kf_sim_target_open(&ctx, target, &sim) > 0)
    return usage("lib", "target %s is not a CPU target: lib builds CPU code (its tuned results: 'kforge db best')", target);
  kf_shape_list shapes = {0};
  kf_store *s = NULL;
  int rc = 0;
  if (kf_shapes_read(&ctx, shapes_path, &shapes) || kf_store_open(&ctx, db, 0, &s) ||
      kf_lib_build(&ctx, s, &shapes, target, out, name, &lo, stdout))
    rc = fail("lib", &ctx);
  kf_store_close(s);
  kf_vec_free(&shapes);
  return rc;
}

int kf_tuner_main(const kf_ctx *base, int argc, char **argv) {
  if (argc < 1) return 2;
  if (!strcmp(argv[0], "tune")) return cmd_tune(base, argc, argv);
  if (!strcmp(argv[0], "db")) return cmd_db(base, argc, argv);
  if (!strcmp(argv[0], "lib")) return cmd_lib(base, argc, argv);
  if (!strcmp(argv[0], "plot")) return cmd_plot(base, argc, argv);
  fprintf(stderr, "kforge: error: unknown tuner verb '%s' (tune, db, lib, plot)\n", argv[0]);
  return 2;
}

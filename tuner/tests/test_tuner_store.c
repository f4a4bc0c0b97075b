/*
** test_tuner_store: the SQLite store on its own and through small real sweeps.
** Failure paths first: a corrupt file and a foreign SQLite file are refused with a clear
** message and left byte-for-byte untouched; a newer schema is refused. Then: migrations from
** schema 1 (old trials become stale), UNIQUE(workload, target, config, generator), merge of two shards (and merging again adds
** nothing), and lookup: exact, nearest (log2 distance), nearest skipped when its config is
** invalid for the shape, default when nothing comparable is tuned.
*/
#include "tt_util.h"

#include <sqlite3.h>
#include <sys/stat.h>

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static void refused_untouched(const char *path, const char *want, const char *what) {
  size_t n0, n1;
  char *before = slurp(path, &n0);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_store *s = NULL;
  int rc = kf_store_open(&ctx, path, 1, &s);
  char *after = slurp(path, &n1);
  TT_CHECK(rc != 0 && s == NULL && strstr(kf_errmsg(&ctx), want), "%s refused: %s", what, kf_errmsg(&ctx));
  TT_CHECK(before && after && n0 == n1 && !memcmp(before, after, n0), "%s left untouched (%zu bytes)", what, n0);
  char wal[600];
  snprintf(wal, sizeof wal, "%s-wal", path);
  struct stat sb;
  TT_CHECK(stat(wal, &sb) != 0, "%s: no WAL file created", what);
  free(before);
  free(after);
  kf_store_close(s);
}

static void lookup_case(kf_store *s, const char *tmpl, const char *shape_txt, kf_lookup_kind want,
                        const char *want_from, const char *what) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t = NULL;
  kf_kernel k;
  memset(&k, 0, sizeof k);
  kf_binding shape;
  kf_target target;
  kf_lookup_result lr;
  memset(&lr, 0, sizeof lr);
  memset(&shape, 0, sizeof shape);
  int rc = kf_binding_parse(&ctx, shape_txt, "shape", &shape);
  if (!rc) rc = kf_target_get(&ctx, "cpu-host", &target);
  if (!rc) rc = kf_template_load(&ctx, tmpl, &t);
  if (!rc) rc = kf_kernel_build(&ctx, t, &shape, NULL, &target, &k);
  if (!rc) rc = kf_lookup(&ctx, s, t, &k.params, NULL, &target, NULL, &lr);
  char js[512] = "";
  kf_config_json(&lr.config, js, sizeof js);
  TT_CHECK(rc == 0 && lr.kind == want && (!want_from || strstr(lr.from_shape, want_from)),
           "lookup %s %s: %s %s from '%s' distance %.2f %s (%s)%s%s", tmpl, shape_txt, kf_lookup_kind_name(lr.kind), js,
           lr.from_shape, lr.distance, lr.note, what, rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
  if (k.ir) kf_kernel_free(&k);
  kf_template_free(t);
}

int main(void) {
  char dir[256], path[400];
  tt_tempdir(dir, sizeof dir, "tstore");
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  FILE *log = fopen("/dev/null", "w");

  /* corrupt: not SQLite at all */
  snprintf(path, sizeof path, "%s/corrupt.db", dir);
  FILE *f = fopen(path, "wb");
  for (int i = 0; i < 5000; i++) fputc((i * 7919) & 255, f);
  fclose(f);
  refused_untouched(path, "not an SQLite file", "corrupt file");
  /* an SQLite header followed by garbage */
  snprintf(path, sizeof path, "%s/trunc.db", dir);
  f = fopen(path, "wb");
  fwrite("SQLite format 3", 1, 16, f);
  for (int i = 0; i < 200; i++) fputc(i, f);
  fclose(f);
  refused_untouched(path, "refusing", "SQLite header with garbage");
  /* foreign SQLite database */
  snprintf(path, sizeof path, "%s/foreign.db", dir);
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES ('mine');", NULL, NULL, NULL);
  sqlite3_close(db);
  refused_untouched(path, "not a kforge tuning database", "foreign SQLite database");
  /* ours, but from the future */
  snprintf(path, sizeof path, "%s/future.db", dir);
  sqlite3_open(path, &db);
  char sql[160];
  snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = 99; CREATE TABLE x(y);", KF_STORE_APP_ID);
  sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_close(db);
  refused_untouched(path, "newer", "schema from a newer kforge");
  /* missing file without create */
  kf_store *s = NULL;
  snprintf(path, sizeof path, "%s/missing.db", dir);
  TT_CHECK(kf_store_open(&ctx, path, 0, &s) != 0, "missing database without create: %s", kf_errmsg(&ctx));

  /* migrations: a schema-1 store is upgraded on open, its rows kept */
  snprintf(path, sizeof path, "%s/old.db", dir);
  int rc = kf_store_open_version(&ctx, path, 1, 1, &s);
  TT_CHECK(rc == 0 && kf_store_version(s) == 1, "created at schema 1");
  kf_store_target tg = {"cpu-test", "llvm", "LLVM 19", "Test CPU", "avx2", 1};
  kf_store_workload wl = {"tt", "abc", "K=1,M=1,N=1", "x:bf16"};
  int64_t tid = 0, wid = 0;
  kf_store_target_id(&ctx, s, &tg, &tid);
  kf_store_workload_id(&ctx, s, &wl, &wid);
  kf_trial_rec tr;
  memset(&tr, 0, sizeof tr);
  snprintf(tr.config, sizeof tr.config, "{\"a\":1}");
  snprintf(tr.status, sizeof tr.status, "ok");
  snprintf(tr.rigor, sizeof tr.rigor, "exhaustive");
  tr.median_s = tr.min_s = 1e-3;
  tr.max_err_ratio = 0.5;
  int ins = 0;
  /* a schema-1 trial, as kforge of that schema wrote it */
  {
    char ins_sql[512];
    snprintf(ins_sql, sizeof ins_sql,
             "INSERT INTO trials (workload_id, target_id, config, status, median_s, min_s, max_err_ratio, rigor, "
             "kforge_version) VALUES (%lld, %lld, '{\"a\":1}', 'ok', 1e-3, 1e-3, 0.5, 'exhaustive', '0.1')",
             (long long)wid, (long long)tid);
    sqlite3 *raw;
    sqlite3_open(path, &raw);
    TT_CHECK(sqlite3_exec(raw, ins_sql, NULL, NULL, NULL) == SQLITE_OK, "schema-1 trial written");
    sqlite3_close(raw);
  }
  kf_store_close(s);
  rc = kf_store_open(&ctx, path, 0, &s);
  TT_CHECK(rc == 0 && kf_store_version(s) == KF_STORE_SCHEMA, "reopened: migrated to schema %d", KF_STORE_SCHEMA);
  TT_CHECK(tt_count(s, "SELECT count(*) FROM trials") == 1 && tt_count(s, "SELECT count(*) FROM sweeps") == 0,
           "rows kept, sweeps table added");
  TT_CHECK(tt_count(s, "SELECT count(*) FROM trials WHERE gen_hash = 'unknown' AND eff_bits IS NULL") == 1,
           "the migrated trial is of an unknown generator version (stale), no effective bits");
  {
    kf_trial_rec got;
    int found = 1;
    rc = kf_store_best(&ctx, s, wid, tid, NULL, NULL, &got, &found);
    TT_CHECK(rc == 0 && !found, "a stale trial is never the best");
  }
  rc = kf_store_add_trial(&ctx, s, wid, tid, &tr, &ins);
  TT_CHECK(rc == 0 && ins == 1, "the same config under this generator version is a new trial");
  tr.median_s = 5e-4;
  rc = kf_store_add_trial(&ctx, s, wid, tid, &tr, &ins);
  TT_CHECK(rc == 0 && ins == 0, "same (workload, target, config, generator) again: not inserted, first kept");
  snprintf(tr.status, sizeof tr.status, "bogus");
  rc = kf_store_add_trial(&ctx, s, wid, tid, &tr, &ins);
  TT_CHECK(rc != 0, "a status outside ok/failed: ... is refused by the schema: %s", kf_errmsg(&ctx));
  TT_CHECK(kf_store_network_fs(0x6969) && !strcmp(kf_store_network_fs(0x6969), "NFS") &&
               kf_store_network_fs(0x0bd00bd0) && !kf_store_network_fs(0xEF53) && !kf_store_network_fs(0x01021994),
           "network file systems named (NFS, Lustre), local ones (ext4, tmpfs) not");
  TT_CHECK(tt_count(s, "SELECT count(*) FROM pragma_table_list WHERE strict = 1 AND schema = 'main'") == 4,
           "4 STRICT tables");
  TT_CHECK(tt_count(s, "PRAGMA journal_mode") == -1 || 1, "journal mode queried");
  kf_store_close(s);

  /* two shards of one sweep, merged */
  kf_tune_opts o;
  tt_fast_opts(&o, log);
  kf_binding shape, fixed;
  memset(&shape, 0, sizeof shape);
  kf_binding_parse(&ctx, "M=4,N=64,K=256", "shape", &shape);
  memset(&fixed, 0, sizeof fixed);
  kf_binding_set(&fixed, "fault", 0); /* 6 configurations: slow x nr */
  char shard[2][400], merged[400];
  kf_tune_summary sum[2];
  for (int i = 0; i < 2; i++) {
    snprintf(shard[i], sizeof shard[i], "%s/shard%d.db", dir, i);
    o.shard_i = i;
    o.shard_n = 2;
    kf_store_open(&ctx, shard[i], 1, &s);
    rc = kf_tune(&ctx, s, TT_FAULTY, &shape, &fixed, "cpu-host", &o, &sum[i]);
    TT_CHECK(rc == 0 && sum[i].space == 3 && sum[i].n_run == 3, "shard %d/2: 3 of 6 configurations", i);
    kf_store_close(s);
  }
  snprintf(merged, sizeof merged, "%s/merged.db", dir);
  kf_store_open(&ctx, merged, 1, &s);
  int64_t n_new[3] = {0, 0, 0};
  rc = kf_store_merge(&ctx, s, shard[0], &n_new[0]) || kf_store_merge(&ctx, s, shard[1], &n_new[1]);
  TT_CHECK(rc == 0 && n_new[0] == 3 && n_new[1] == 3, "merge adds 3 + 3 trials (%lld, %lld)", (long long)n_new[0],
           (long long)n_new[1]);
  TT_CHECK(tt_count(s, "SELECT count(DISTINCT config) FROM trials") == 6 && tt_count(s, "SELECT count(*) FROM workloads") == 1 &&
               tt_count(s, "SELECT count(*) FROM targets") == 1 && tt_count(s, "SELECT count(*) FROM sweeps") == 2,
           "merged: 6 distinct configs, 1 workload, 1 target, 2 sweeps");
  rc = kf_store_merge(&ctx, s, shard[0], &n_new[2]);
  TT_CHECK(rc == 0 && n_new[2] == 0 && tt_count(s, "SELECT count(*) FROM trials") == 6, "merging again adds nothing");
  snprintf(path, sizeof path, "%s/foreign.db", dir);
  rc = kf_store_merge(&ctx, s, path, &n_new[2]);
  TT_CHECK(rc != 0 && strstr(kf_errmsg(&ctx), "not a kforge"), "merging a foreign file is refused: %s", kf_errmsg(&ctx));
  /* the merged store answers the same as a full sweep: resume finds everything recorded */
  o.shard_i = 0;
  o.shard_n = 1;
  kf_tune_summary full;
  rc = kf_tune(&ctx, s, TT_FAULTY, &shape, &fixed, "cpu-host", &o, &full);
  TT_CHECK(rc == 0 && full.n_run == 0 && full.complete, "full sweep over the merged store runs nothing (%lld)",
           (long long)full.n_run);

  /* lookup */
  lookup_case(s, TT_FAULTY, "M=4,N=64,K=256", KF_LOOKUP_EXACT, "M=4,N=64", "tuned shape");
  lookup_case(s, TT_FAULTY, "M=5,N=64,K=200", KF_LOOKUP_NEAREST, "M=4,N=64", "untuned shape");
  lookup_case(s, TT_FAULTY, "M=5,N=64,K=200,wround=1", KF_LOOKUP_DEFAULT, NULL, "other wround: not comparable");
  memset(&shape, 0, sizeof shape);
  kf_binding_parse(&ctx, "M=64,N=64,K=256", "shape", &shape);
  rc = kf_tune(&ctx, s, TT_FAULTY, &shape, &fixed, "cpu-host", &o, &full);
  TT_CHECK(rc == 0 && full.n_ok == 6, "M=64 tuned too%s%s", rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
  lookup_case(s, TT_FAULTY, "M=40,N=64,K=256", KF_LOOKUP_NEAREST, "M=64,N=64", "nearer to M=64 than M=4");
  lookup_case(s, TT_FAULTY, "M=6,N=64,K=256", KF_LOOKUP_NEAREST, "M=4,N=64", "nearer to M=4");
  /* a nearest config that is invalid for the new shape is skipped: msd_gemm mr=8 needs M >= 8 */
  memset(&fixed, 0, sizeof fixed);
  kf_binding_set(&fixed, "mr", 8);
  kf_binding_set(&fixed, "nr", 16);
  kf_binding_set(&fixed, "passes", 2);
  memset(&shape, 0, sizeof shape);
  kf_binding_parse(&ctx, "M=8,N=32,K=64", "shape", &shape);
  o.budget_n = 1;
  rc = kf_tune(&ctx, s, "msd_gemm", &shape, &fixed, "cpu-host", &o, &full);
  TT_CHECK(rc == 0 && full.n_ok == 1, "msd_gemm M=8 tuned with mr=8 (%s)", rc ? kf_errmsg(&ctx) : full.best.config);
  lookup_case(s, "msd_gemm", "M=16,N=32,K=64", KF_LOOKUP_NEAREST, "M=8", "mr=8 valid for M=16");
  lookup_case(s, "msd_gemm", "M=2,N=32,K=64", KF_LOOKUP_DEFAULT, NULL, "mr=8 invalid for M=2: default");
  kf_store_close(s);
  fclose(log);
  return tt_finish(dir);
}

/*
** fuzz_db.c: libFuzzer target for opening arbitrary bytes as a tuning database (issue 15).
**
** Each input is written to a private file and opened with kf_store_open (no create): a file
** that is not SQLite, a foreign SQLite file, a newer schema or a damaged one must be refused
** with a message; one that opens (possibly after migrating) is then read the ways the CLI
** reads it (schema version, best trials, every ok trial of a template, a raw query) and
** merged into a fresh store. Nothing may crash, leak or trip UBSan.
**
** Links: kforge_tuner (kf_store.c, kf_tune.c), kforge_core, SQLite3; build with
** clang -fsanitize=fuzzer,address,undefined (fuzz/CMakeLists.txt: kf_fuzz_target). Seeds:
** fuzz/corpus/db/ (an empty current store, a store with trials, a schema-2 store, a foreign
** SQLite file, a text file).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_store.h"
#include "kf_tune.h"

static char g_dir[64];

static void remove_db(const char *path) {
  char side[128];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-journal", path);
  unlink(side);
}

static int count_row(void *arg, int n, const char *const *names, const char *const *vals) {
  (void)names;
  for (int i = 0; i < n; i++)
    if (vals[i]) *(size_t *)arg += strlen(vals[i]);
  return 0;
}

static int each_ok(void *arg, const char *shape, const kf_trial_rec *rec) {
  *(size_t *)arg += strlen(shape) + strlen(rec->config);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_dir[0]) {
    snprintf(g_dir, sizeof g_dir, "/tmp/kforge-fuzzdb-XXXXXX");
    if (!mkdtemp(g_dir)) abort();
  }
  char path[128], merged[128];
  snprintf(path, sizeof path, "%s/in.db", g_dir);
  snprintf(merged, sizeof merged, "%s/merged.db", g_dir);
  remove_db(path);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_store *s = NULL;
  if (kf_store_open(&ctx, path, 0, &s) != KF_OK) {
    if (!kf_errmsg(&ctx)[0]) abort(); /* a refusal always says why */
    remove_db(path);
    return 0;
  }
  size_t sink = 0;
  (void)kf_store_version(s);
  kf_trial_rec best;
  int found = 0;
  for (int64_t w = 1; w <= 3; w++)
    if (kf_store_best(&ctx, s, w, 1, NULL, NULL, &best, &found) == KF_OK && found) sink += strlen(best.config);
  kf_store_each_ok(&ctx, s, "msd_gemm", "", "cpu-host", "", 1, each_ok, &sink);
  kf_store_query(&ctx, s,
                 "SELECT w.template, w.shape, t.config, t.status, t.median_s, t.eff_bits, t.gen_hash FROM trials t "
                 "JOIN workloads w ON w.id = t.workload_id",
                 NULL, 0, count_row, &sink);
  kf_store_close(s);
  remove_db(merged);
  kf_store *m = NULL;
  int64_t n_new = 0;
  if (kf_store_open(&ctx, merged, 1, &m) == KF_OK) {
    kf_store_merge(&ctx, m, path, &n_new);
    kf_store_close(m);
  }
  remove_db(merged);
  remove_db(path);
  return (int)(sink & 0); /* keep the reads */
}

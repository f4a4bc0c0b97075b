/*
** kf_store.h: the tuner's SQLite store (DESIGN.md section 5).
**
** One file holds every trial of every sweep: targets (where and how code was generated and
** run), workloads (template + its source hash + full shape) and trials (one configuration of
** one workload on one target: status, timings, error, rigor, kforge version, date).
** UNIQUE(workload, target, config) makes a resumed or concurrent sweep skip what is recorded;
** each trial is committed on its own, so a killed sweep loses nothing it recorded.
**
** The file is WAL-journaled with a busy timeout (several sweeps may write at once), has STRICT
** tables and foreign keys, PRAGMA application_id = KF_STORE_APP_ID marks it as ours, and
** PRAGMA user_version is the schema version (migrations run on open). A file that is not
** SQLite, or is SQLite without our application_id, is refused and left untouched.
*/
#ifndef KF_STORE_H
#define KF_STORE_H

#include <stdint.h>

#include "kf.h"

#define KF_STORE_APP_ID 0x6b66746e /* "kftn" */
#define KF_STORE_SCHEMA 3          /* user_version after all migrations */

typedef struct kf_store kf_store;

/* Opens (create != 0: creates when missing) and migrates the store. */
int kf_store_open(kf_ctx *ctx, const char *path, int create, kf_store **out);
/* Opens without migrating beyond `version` (tests of the migrations). */
int kf_store_open_version(kf_ctx *ctx, const char *path, int create, int version, kf_store **out);
void kf_store_close(kf_store *s);
/* The name of a network file system for a statfs f_type ("NFS", "Lustre", ...), or NULL: the
** store warns when opened on one (WAL needs local disk). */
const char *kf_store_network_fs(long f_type);
int kf_store_version(kf_store *s);
const char *kf_store_path(const kf_store *s);

typedef struct kf_store_target {
  char name[64];      /* kforge target: cpu-avx512-vnni, ... */
  char emitter[16];   /* llvm | c */
  char compiler[128]; /* "LLVM 19.1.7" or the C compiler's version line */
  char cpu_model[128];
  char features[256];
  int threads;
} kf_store_target;

typedef struct kf_store_workload {
  char tmpl[64];
  char hash[40];    /* template source hash */
  char shape[512];  /* every param, canonical NAME=VALUE,... sorted by name */
  char dtypes[256]; /* argument dtypes: x:bf16,w:u8,... */
} kf_store_workload;

/* Get-or-insert; ids are stable within one file. */
int kf_store_target_id(kf_ctx *ctx, kf_store *s, const kf_store_target *t, int64_t *id);
int kf_store_workload_id(kf_ctx *ctx, kf_store *s, const kf_store_workload *w, int64_t *id);

typedef struct kf_trial_rec {
  char config[512]; /* canonical JSON object {"name":value,...} sorted by name */
  char status[32];  /* ok | failed: wrong result | failed: crashed | failed: timeout | ... */
  char error[512];
  double median_s, min_s, spread, max_err_ratio, compile_s, budget_s;
  double eff_bits;  /* measured effective bits of the check (-1: not measured) */
  int n_runs;
  char gen_hash[24]; /* generator + lowering version that produced it (kf_store_gen_hash) */
  int stale;        /* filled on read: gen_hash is not this kforge's */
  char rigor[16];   /* default | exhaustive | random | evolve */
  char version[16]; /* kforge version that ran it */
  char created[32]; /* filled by the store on read */
} kf_trial_rec;

/* The version of the code generator and the target lowerings this kforge was built from (a
** hash of the gen/ and targets/ sources, computed by the build). A trial is keyed by it:
** trials of another version are stale, kept for `db show`, re-run by a sweep and skipped by
** lookups unless asked. kf_store_set_gen_hash overrides it for one store (tests). */
const char *kf_store_gen_hash(const kf_store *s);
void kf_store_set_gen_hash(kf_store *s, const char *hash);

/* Inserts one trial in its own transaction, under this store's gen hash (rec->gen_hash is
** ignored). *inserted = 0 when (workload, target, config, gen hash) was already recorded (by
** this or another sweep); the existing record is kept. */
int kf_store_add_trial(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target,
                       const kf_trial_rec *t, int *inserted);
/* 1 if the configuration is recorded for (workload, target) by this gen hash. */
int kf_store_has_trial(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target,
                       const char *config, int *has);
/* The recorded trial of one configuration; *found = 0 if none. */
int kf_store_get_trial(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target,
                       const char *config, kf_trial_rec *out, int *found);
/* Trial filter: non-zero when rec may be chosen (accuracy contract, kf_tune.h). */
typedef int (*kf_trial_accept_fn)(void *arg, const kf_trial_rec *rec);
/* Best ('ok', current gen hash, accepted by fn when fn is not NULL, smallest median) trial of
** (workload, target); *found = 0 if none. */
int kf_store_best(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, kf_trial_accept_fn fn,
                  void *arg, kf_trial_rec *out, int *found);
/* The k fastest accepted current 'ok' trials of (workload, target), fastest first. */
int kf_store_top(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, kf_trial_accept_fn fn, void *arg,
                 int k, kf_trial_rec *out, int *n_out);
/* Replaces the timings of a recorded trial (kforge tune --remeasure). */
int kf_store_update_timing(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, const kf_trial_rec *rec);

/* Sweep bookkeeping ("how thoroughly tuned", FFTW's rigor): one row per `kforge tune` run
** of one workload, updated as it goes; complete = 1 when the strategy finished its space. */
int kf_store_sweep_begin(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target,
                         const char *strategy, int64_t space, double budget, int64_t *sweep);
int kf_store_sweep_update(kf_ctx *ctx, kf_store *s, int64_t sweep, int64_t n_trials, int complete);

/* Candidates for a lookup: the 'ok' trials of workloads of `tmpl` with hash `hash` on a
** target named `target_name` (any emitter/threads), grouped by workload; in a workload the
** current CPU model's first, then by median. Stale trials only with allow_stale. Calls
** fn(arg, shape, rec) for each; stops when fn returns non-zero. */
typedef int (*kf_store_trial_fn)(void *arg, const char *shape, const kf_trial_rec *rec);
int kf_store_each_ok(kf_ctx *ctx, kf_store *s, const char *tmpl, const char *hash, const char *target_name,
                     const char *cpu_model, int allow_stale, kf_store_trial_fn fn, void *arg);

/* Copies every target, workload, sweep and trial of the store at `src_path` into s (trials
** already present are kept). *n_new gets the number of trials added. */
int kf_store_merge(kf_ctx *ctx, kf_store *s, const char *src_path, int64_t *n_new);

/* Runs a read-only query for the CLI (show/export): calls fn per row with column texts. */
typedef int (*kf_store_row_fn)(void *arg, int n_cols, const char *const *names,
                               const char *const *values);
int kf_store_query(kf_ctx *ctx, kf_store *s, const char *sql, const char *const *binds, int n_binds,
                   kf_store_row_fn fn, void *arg);

#endif

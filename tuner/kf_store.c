/*
** kf_store.c: the SQLite store of tuning trials (see kf_store.h).
*/
#include "kf_store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct kf_store {
  sqlite3 *db;
  char *path;
};

/* Schema migrations: migration[i] takes user_version i to i + 1. Never edit a shipped one;
** append a new one and bump KF_STORE_SCHEMA. */
static const char *const migrations[KF_STORE_SCHEMA] = {
    /* 0 -> 1: targets, workloads, trials */
    "CREATE TABLE targets (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"      /* cpu-avx512-vnni, ... */
    "  emitter TEXT NOT NULL,\n"   /* llvm | c */
    "  compiler TEXT NOT NULL,\n"  /* LLVM / cc version */
    "  cpu_model TEXT NOT NULL,\n"
    "  features TEXT NOT NULL,\n"
    "  threads INTEGER NOT NULL CHECK (threads >= 1),\n"
    "  UNIQUE (name, emitter, compiler, cpu_model, features, threads)\n"
    ") STRICT;\n"
    "CREATE TABLE workloads (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  template TEXT NOT NULL,\n"
    "  template_hash TEXT NOT NULL,\n"
    "  shape TEXT NOT NULL,\n"     /* every param: K=..,M=..,N=..,bits=8 (sorted) */
    "  dtypes TEXT NOT NULL,\n"
    "  UNIQUE (template, template_hash, shape)\n"
    ") STRICT;\n"
    "CREATE TABLE trials (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  workload_id INTEGER NOT NULL REFERENCES workloads(id),\n"
    "  target_id INTEGER NOT NULL REFERENCES targets(id),\n"
    "  config TEXT NOT NULL,\n"    /* canonical JSON object, keys sorted */
    "  status TEXT NOT NULL CHECK (status = 'ok' OR status LIKE 'failed: %'),\n"
    "  error TEXT NOT NULL DEFAULT '',\n"
    "  median_s REAL, min_s REAL, spread REAL, n_runs INTEGER,\n"
    "  max_err_ratio REAL,\n"      /* worst |err| / bound of the check */
    "  compile_s REAL,\n"
    "  rigor TEXT NOT NULL,\n"     /* default | exhaustive | random | evolve */
    "  budget_s REAL,\n"           /* timing budget of the trial */
    "  kforge_version TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),\n"
    "  UNIQUE (workload_id, target_id, config),\n"
    "  CHECK (status <> 'ok' OR (median_s > 0 AND min_s > 0))\n"
    ") STRICT;\n"
    "CREATE INDEX trials_best ON trials (workload_id, target_id, status, median_s);\n",
    /* 1 -> 2: sweeps (how thoroughly a workload was tuned) */
    "CREATE TABLE sweeps (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  workload_id INTEGER NOT NULL REFERENCES workloads(id),\n"
    "  target_id INTEGER NOT NULL REFERENCES targets(id),\n"
    "  strategy TEXT NOT NULL,\n"
    "  space INTEGER NOT NULL,\n"  /* valid configurations in the (shard's) space */
    "  budget REAL,\n"
    "  n_trials INTEGER NOT NULL DEFAULT 0,\n"
    "  complete INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),\n"
    "  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),\n"
    "  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\n"
    ") STRICT;\n"
    "CREATE INDEX sweeps_workload ON sweeps (workload_id, target_id);\n",
};

static int db_err(kf_ctx *ctx, kf_store *s, const char *what) {
  return kf_err(ctx, KF_EIO, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(kf_ctx *ctx, kf_store *s, const char *sql, const char *what) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = kf_err(ctx, KF_EIO, "%s: %s: %s", s->path, what, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return rc;
  }
  return KF_OK;
}

static int pragma_int(kf_store *s, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return SQLITE_ERROR;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* A file that exists and is not empty must start with the SQLite header; checked before
** SQLite touches it, so nothing is written to a foreign file. */
static int check_header(kf_ctx *ctx, const char *path, int *exists) {
  struct stat sb;
  *exists = 0;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) return KF_OK;
    return kf_err(ctx, KF_EIO, "%s: %s", path, strerror(errno));
  }
  if (!S_ISREG(sb.st_mode)) return kf_err(ctx, KF_EINVAL, "%s: not a regular file", path);
  *exists = sb.st_size > 0;
  if (!*exists) return KF_OK;
  FILE *f = fopen(path, "rb");
  if (!f) return kf_err(ctx, KF_EIO, "%s: %s", path, strerror(errno));
  char head[16] = {0};
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  if (n < sizeof head || memcmp(head, "SQLite format 3", 16) != 0)
    return kf_err(ctx, KF_EINVAL,
                  "%s: not a kforge tuning database (not an SQLite file); refusing to touch it", path);
  return KF_OK;
}

int kf_store_open_version(kf_ctx *ctx, const char *path, int create, int version, kf_store **out) {
  *out = NULL;
  int exists, rc;
  if ((rc = check_header(ctx, path, &exists))) return rc;
  if (!exists && !create) return kf_err(ctx, KF_EIO, "%s: no such tuning database", path);
  kf_store *s = kf_xcalloc(1, sizeof *s);
  s->path = kf_xstrdup(path);
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), NULL) !=
      SQLITE_OK) {
    rc = kf_err(ctx, KF_EIO, "%s: cannot open: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
    kf_store_close(s);
    return rc;
  }
  sqlite3_busy_timeout(s->db, 60000);
  sqlite3_extended_result_codes(s->db, 1);
  /* Identify before changing anything (journal mode writes the header). The three reads are
  ** one snapshot: read one by one, they could straddle another process's migration commit
  ** (tables without the application_id yet) and refuse a good database. */
  int64_t app = 0, uv = 0, n_obj = 0;
  int snap = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
  int ok = snap && pragma_int(s, "PRAGMA application_id", &app) == SQLITE_OK &&
           pragma_int(s, "PRAGMA user_version", &uv) == SQLITE_OK &&
           pragma_int(s, "SELECT count(*) FROM sqlite_schema", &n_obj) == SQLITE_OK;
  if (!ok) rc = kf_err(ctx, KF_EINVAL, "%s: not a usable SQLite database (%s); refusing to touch it", path, sqlite3_errmsg(s->db));
  if (snap) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (!ok) {
    kf_store_close(s);
    return rc;
  }
  if (app != KF_STORE_APP_ID && !(app == 0 && n_obj == 0 && uv == 0)) {
    rc = kf_err(ctx, KF_EINVAL,
                "%s: an SQLite database that is not a kforge tuning database (application_id 0x%llx, "
                "%lld schema objects); refusing to touch it",
                path, (long long)app, (long long)n_obj);
    kf_store_close(s);
    return rc;
  }
  if (uv > KF_STORE_SCHEMA) {
    rc = kf_err(ctx, KF_EINVAL, "%s: schema version %lld is newer than this kforge understands (%d)", path,
                (long long)uv, KF_STORE_SCHEMA);
    kf_store_close(s);
    return rc;
  }
  if ((rc = exec(ctx, s, "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                 "setting up"))) {
    kf_store_close(s);
    return rc;
  }
  /* Migrate under one write lock, re-reading the version inside it (two sweeps may open a
  ** fresh file at the same time). */
  if (uv < version) {
    if ((rc = exec(ctx, s, "BEGIN IMMEDIATE", "locking for migration"))) {
      kf_store_close(s);
      return rc;
    }
    if (pragma_int(s, "PRAGMA user_version", &uv) != SQLITE_OK) rc = db_err(ctx, s, "reading user_version");
    for (int v = (int)uv; !rc && v < version; v++) {
      char sql[96];
      snprintf(sql, sizeof sql, "migration %d -> %d", v, v + 1);
      rc = exec(ctx, s, migrations[v], sql);
      if (!rc) {
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d;", v + 1, KF_STORE_APP_ID);
        rc = exec(ctx, s, sql, "setting the schema version");
      }
    }
    if (!rc) rc = exec(ctx, s, "COMMIT", "committing the migration");
    else sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (rc) {
      kf_store_close(s);
      return rc;
    }
  }
  *out = s;
  return KF_OK;
}

int kf_store_open(kf_ctx *ctx, const char *path, int create, kf_store **out) {
  return kf_store_open_version(ctx, path, create, KF_STORE_SCHEMA, out);
}

void kf_store_close(kf_store *s) {
  if (!s) return;
  sqlite3_close(s->db);
  free(s->path);
  free(s);
}

int kf_store_version(kf_store *s) {
  int64_t v = -1;
  pragma_int(s, "PRAGMA user_version", &v);
  return (int)v;
}

const char *kf_store_path(const kf_store *s) { return s->path; }

/* Prepares sql and binds text values (NULL: SQL NULL). */
static int prepare(kf_ctx *ctx, kf_store *s, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) return db_err(ctx, s, "preparing a query");
  return KF_OK;
}

static int step_done(kf_ctx *ctx, kf_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    int r = db_err(ctx, s, what);
    sqlite3_finalize(st);
    return r;
  }
  sqlite3_finalize(st);
  return KF_OK;
}

static int select_id(kf_ctx *ctx, kf_store *s, sqlite3_stmt *st, int64_t *id, const char *what) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    int r = rc == SQLITE_DONE ? kf_err(ctx, KF_EIO, "%s: %s: row vanished", s->path, what) : db_err(ctx, s, what);
    sqlite3_finalize(st);
    return r;
  }
  *id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return KF_OK;
}

int kf_store_target_id(kf_ctx *ctx, kf_store *s, const kf_store_target *t, int64_t *id) {
  const char *cols[] = {t->name, t->emitter, t->compiler, t->cpu_model, t->features};
  sqlite3_stmt *st;
  int rc = prepare(ctx, s,
                   "INSERT INTO targets (name, emitter, compiler, cpu_model, features, threads) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                   &st);
  if (rc) return rc;
  for (int i = 0; i < 5; i++) sqlite3_bind_text(st, i + 1, cols[i], -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 6, t->threads);
  if ((rc = step_done(ctx, s, st, "recording the target"))) return rc;
  if ((rc = prepare(ctx, s,
                    "SELECT id FROM targets WHERE name = ?1 AND emitter = ?2 AND compiler = ?3 AND "
                    "cpu_model = ?4 AND features = ?5 AND threads = ?6",
                    &st)))
    return rc;
  for (int i = 0; i < 5; i++) sqlite3_bind_text(st, i + 1, cols[i], -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 6, t->threads);
  return select_id(ctx, s, st, id, "looking up the target");
}

int kf_store_workload_id(kf_ctx *ctx, kf_store *s, const kf_store_workload *w, int64_t *id) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s,
                   "INSERT INTO workloads (template, template_hash, shape, dtypes) VALUES (?1, ?2, ?3, ?4) "
                   "ON CONFLICT DO NOTHING",
                   &st);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, w->tmpl, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, w->hash, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, w->shape, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, w->dtypes, -1, SQLITE_TRANSIENT);
  if ((rc = step_done(ctx, s, st, "recording the workload"))) return rc;
  if ((rc = prepare(ctx, s, "SELECT id FROM workloads WHERE template = ?1 AND template_hash = ?2 AND shape = ?3",
                    &st)))
    return rc;
  sqlite3_bind_text(st, 1, w->tmpl, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, w->hash, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, w->shape, -1, SQLITE_TRANSIENT);
  return select_id(ctx, s, st, id, "looking up the workload");
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double v, int ok) {
  if (ok) sqlite3_bind_double(st, i, v);
  else sqlite3_bind_null(st, i);
}

int kf_store_add_trial(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, const kf_trial_rec *t,
                       int *inserted) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s,
                   "INSERT INTO trials (workload_id, target_id, config, status, error, median_s, min_s, spread, "
                   "n_runs, max_err_ratio, compile_s, rigor, budget_s, kforge_version) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
                   &st);
  if (rc) return rc;
  int ok = !strcmp(t->status, "ok");
  sqlite3_bind_int64(st, 1, workload);
  sqlite3_bind_int64(st, 2, target);
  sqlite3_bind_text(st, 3, t->config, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, t->status, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 5, t->error, -1, SQLITE_TRANSIENT);
  bind_real_or_null(st, 6, t->median_s, ok);
  bind_real_or_null(st, 7, t->min_s, ok);
  bind_real_or_null(st, 8, t->spread, ok);
  if (ok) sqlite3_bind_int(st, 9, t->n_runs);
  else sqlite3_bind_null(st, 9);
  bind_real_or_null(st, 10, t->max_err_ratio, t->max_err_ratio >= 0);
  bind_real_or_null(st, 11, t->compile_s, t->compile_s > 0);
  sqlite3_bind_text(st, 12, t->rigor, -1, SQLITE_TRANSIENT);
  bind_real_or_null(st, 13, t->budget_s, t->budget_s > 0);
  sqlite3_bind_text(st, 14, t->version[0] ? t->version : KF_VERSION, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = db_err(ctx, s, "recording a trial");
    sqlite3_finalize(st);
    return rc;
  }
  sqlite3_finalize(st);
  if (inserted) *inserted = sqlite3_changes(s->db) > 0;
  return KF_OK;
}

int kf_store_has_trial(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, const char *config, int *has) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s, "SELECT 1 FROM trials WHERE workload_id = ?1 AND target_id = ?2 AND config = ?3", &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, workload);
  sqlite3_bind_int64(st, 2, target);
  sqlite3_bind_text(st, 3, config, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  *has = rc == SQLITE_ROW;
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(ctx, s, "looking up a trial");
  return KF_OK;
}

#define TRIAL_COLS                                                                                   \
  "t.config, t.status, t.error, t.median_s, t.min_s, t.spread, t.n_runs, t.max_err_ratio, "        \
  "t.compile_s, t.rigor, t.budget_s, t.kforge_version, t.created_at"

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t n) {
  const unsigned char *v = sqlite3_column_text(st, i);
  snprintf(dst, n, "%s", v ? (const char *)v : "");
}

static void read_trial(sqlite3_stmt *st, int c0, kf_trial_rec *r) {
  memset(r, 0, sizeof *r);
  copy_col(st, c0 + 0, r->config, sizeof r->config);
  copy_col(st, c0 + 1, r->status, sizeof r->status);
  copy_col(st, c0 + 2, r->error, sizeof r->error);
  r->median_s = sqlite3_column_double(st, c0 + 3);
  r->min_s = sqlite3_column_double(st, c0 + 4);
  r->spread = sqlite3_column_double(st, c0 + 5);
  r->n_runs = sqlite3_column_int(st, c0 + 6);
  r->max_err_ratio = sqlite3_column_type(st, c0 + 7) == SQLITE_NULL ? -1 : sqlite3_column_double(st, c0 + 7);
  r->compile_s = sqlite3_column_double(st, c0 + 8);
  copy_col(st, c0 + 9, r->rigor, sizeof r->rigor);
  r->budget_s = sqlite3_column_double(st, c0 + 10);
  copy_col(st, c0 + 11, r->version, sizeof r->version);
  copy_col(st, c0 + 12, r->created, sizeof r->created);
}

/* Looks up at most one trial: sql selects TRIAL_COLS for workload ?1 and target ?2 and, when
** config is not NULL, config ?3. */
static int query_trial(kf_ctx *ctx, kf_store *s, const char *sql, int64_t workload, int64_t target,
                       const char *config, kf_trial_rec *out, int *found, const char *what) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s, sql, &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, workload);
  sqlite3_bind_int64(st, 2, target);
  if (config) sqlite3_bind_text(st, 3, config, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  *found = rc == SQLITE_ROW;
  if (*found) read_trial(st, 0, out);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(ctx, s, what);
  return KF_OK;
}

int kf_store_best(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, kf_trial_rec *out, int *found) {
  return query_trial(ctx, s,
                     "SELECT " TRIAL_COLS " FROM trials t WHERE t.workload_id = ?1 AND t.target_id = ?2 AND "
                     "t.status = 'ok' ORDER BY t.median_s, t.id LIMIT 1",
                     workload, target, NULL, out, found, "looking up the best trial");
}

int kf_store_get_trial(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, const char *config,
                       kf_trial_rec *out, int *found) {
  return query_trial(ctx, s,
                     "SELECT " TRIAL_COLS " FROM trials t WHERE t.workload_id = ?1 AND t.target_id = ?2 AND "
                     "t.config = ?3",
                     workload, target, config, out, found, "looking up a trial");
}

int kf_store_sweep_begin(kf_ctx *ctx, kf_store *s, int64_t workload, int64_t target, const char *strategy,
                         int64_t space, double budget, int64_t *sweep) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s,
                   "INSERT INTO sweeps (workload_id, target_id, strategy, space, budget) VALUES (?1, ?2, ?3, ?4, ?5) "
                   "RETURNING id",
                   &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, workload);
  sqlite3_bind_int64(st, 2, target);
  sqlite3_bind_text(st, 3, strategy, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 4, space);
  bind_real_or_null(st, 5, budget, budget > 0);
  return select_id(ctx, s, st, sweep, "recording the sweep");
}

int kf_store_sweep_update(kf_ctx *ctx, kf_store *s, int64_t sweep, int64_t n_trials, int complete) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s,
                   "UPDATE sweeps SET n_trials = ?2, complete = ?3, "
                   "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                   &st);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, sweep);
  sqlite3_bind_int64(st, 2, n_trials);
  sqlite3_bind_int(st, 3, complete ? 1 : 0);
  return step_done(ctx, s, st, "updating the sweep");
}

int kf_store_each_best(kf_ctx *ctx, kf_store *s, const char *tmpl, const char *hash, const char *target_name,
                       const char *cpu_model, kf_store_best_fn fn, void *arg) {
  /* Best ok trial per workload, on targets of that name; the host's CPU model ranks first. */
  sqlite3_stmt *st;
  int rc = prepare(ctx, s,
                   "SELECT w.shape, " TRIAL_COLS " FROM trials t JOIN workloads w ON w.id = t.workload_id "
                   "JOIN targets g ON g.id = t.target_id "
                   "WHERE w.template = ?1 AND w.template_hash = ?2 AND g.name = ?3 AND t.status = 'ok' "
                   "ORDER BY w.id, g.cpu_model <> ?4, t.median_s, t.id",
                   &st);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, tmpl, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, target_name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, cpu_model ? cpu_model : "", -1, SQLITE_TRANSIENT);
  char last[512] = "";
  int first = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    char shape[512];
    copy_col(st, 0, shape, sizeof shape);
    if (!first && !strcmp(shape, last)) continue; /* rows of one workload are adjacent, best first */
    first = 0;
    snprintf(last, sizeof last, "%s", shape);
    kf_trial_rec r;
    read_trial(st, 1, &r);
    if (fn(arg, shape, &r)) {
      rc = SQLITE_DONE;
      break;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_err(ctx, s, "reading tuned workloads");
  return KF_OK;
}

int kf_store_merge(kf_ctx *ctx, kf_store *s, const char *src_path, int64_t *n_new) {
  *n_new = 0;
  if (!strcmp(src_path, s->path)) return kf_err(ctx, KF_EINVAL, "%s: cannot merge a database into itself", src_path);
  /* Validate (and migrate) the source the same way any store is opened. */
  kf_store *src;
  int rc = kf_store_open(ctx, src_path, 0, &src);
  if (rc) return rc;
  kf_store_close(src);
  sqlite3_stmt *st;
  if ((rc = prepare(ctx, s, "ATTACH DATABASE ?1 AS src", &st))) return rc;
  sqlite3_bind_text(st, 1, src_path, -1, SQLITE_TRANSIENT);
  if ((rc = step_done(ctx, s, st, "attaching the source"))) return rc;
  static const char merge_sql[] =
      "BEGIN IMMEDIATE;\n"
      "INSERT INTO targets (name, emitter, compiler, cpu_model, features, threads)\n"
      "  SELECT name, emitter, compiler, cpu_model, features, threads FROM src.targets WHERE true\n"
      "  ON CONFLICT DO NOTHING;\n"
      "INSERT INTO workloads (template, template_hash, shape, dtypes)\n"
      "  SELECT template, template_hash, shape, dtypes FROM src.workloads WHERE true ON CONFLICT DO NOTHING;\n"
      "CREATE TEMP TABLE merge_map_t AS SELECT s.id AS sid, d.id AS did FROM src.targets s JOIN main.targets d\n"
      "  USING (name, emitter, compiler, cpu_model, features, threads);\n"
      "CREATE TEMP TABLE merge_map_w AS SELECT s.id AS sid, d.id AS did FROM src.workloads s JOIN main.workloads d\n"
      "  USING (template, template_hash, shape);\n"
      "INSERT INTO trials (workload_id, target_id, config, status, error, median_s, min_s, spread, n_runs,\n"
      "    max_err_ratio, compile_s, rigor, budget_s, kforge_version, created_at)\n"
      "  SELECT w.did, g.did, t.config, t.status, t.error, t.median_s, t.min_s, t.spread, t.n_runs,\n"
      "    t.max_err_ratio, t.compile_s, t.rigor, t.budget_s, t.kforge_version, t.created_at\n"
      "  FROM src.trials t JOIN merge_map_w w ON w.sid = t.workload_id JOIN merge_map_t g ON g.sid = t.target_id\n"
      "  WHERE true ORDER BY t.id ON CONFLICT DO NOTHING;\n"
      "CREATE TEMP TABLE merge_count AS SELECT changes() AS n;\n"
      "INSERT INTO sweeps (workload_id, target_id, strategy, space, budget, n_trials, complete, started_at,\n"
      "    updated_at)\n"
      "  SELECT w.did, g.did, s.strategy, s.space, s.budget, s.n_trials, s.complete, s.started_at, s.updated_at\n"
      "  FROM src.sweeps s JOIN merge_map_w w ON w.sid = s.workload_id JOIN merge_map_t g ON g.sid = s.target_id\n"
      "  WHERE NOT EXISTS (SELECT 1 FROM main.sweeps m WHERE m.workload_id = w.did AND m.target_id = g.did\n"
      "    AND m.strategy = s.strategy AND m.started_at = s.started_at);\n"
      "COMMIT;\n";
  rc = exec(ctx, s, merge_sql, "merging");
  if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  int64_t n = 0;
  if (!rc) pragma_int(s, "SELECT n FROM temp.merge_count", &n);
  *n_new = n;
  sqlite3_exec(s->db,
               "DROP TABLE IF EXISTS temp.merge_map_t; DROP TABLE IF EXISTS temp.merge_map_w; "
               "DROP TABLE IF EXISTS temp.merge_count; DETACH DATABASE src;",
               NULL, NULL, NULL);
  return rc;
}

int kf_store_query(kf_ctx *ctx, kf_store *s, const char *sql, const char *const *binds, int n_binds,
                   kf_store_row_fn fn, void *arg) {
  sqlite3_stmt *st;
  int rc = prepare(ctx, s, sql, &st);
  if (rc) return rc;
  for (int i = 0; i < n_binds; i++) {
    if (binds[i]) sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i + 1);
  }
  int n = sqlite3_column_count(st);
  const char **names = kf_xcalloc((size_t)n + 1, sizeof(char *));
  const char **vals = kf_xcalloc((size_t)n + 1, sizeof(char *));
  for (int i = 0; i < n; i++) names[i] = sqlite3_column_name(st, i);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    for (int i = 0; i < n; i++) vals[i] = (const char *)sqlite3_column_text(st, i);
    if (fn(arg, n, names, vals)) {
      rc = SQLITE_DONE;
      break;
    }
  }
  free(names);
  free(vals);
  if (rc != SQLITE_DONE) {
    rc = db_err(ctx, s, "reading");
    sqlite3_finalize(st);
    return rc;
  }
  sqlite3_finalize(st);
  return KF_OK;
}

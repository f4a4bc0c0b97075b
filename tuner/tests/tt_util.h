/*
** tt_util.h: small helpers shared by the tuner's test programs (one line per case, a failure
** count, a private temporary directory, counting rows of a store).
*/
#ifndef TT_UTIL_H
#define TT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_store.h"
#include "kf_tune.h"

static int tt_failures;

#define TT_CHECK(cond, ...)                                                                           \
  do {                                                                                                \
    int tt_ok_ = (cond);                                                                              \
    printf("%s: ", tt_ok_ ? "ok  " : "FAIL");                                                         \
    printf(__VA_ARGS__);                                                                              \
    printf("\n");                                                                                     \
    fflush(stdout);                                                                                   \
    if (!tt_ok_) tt_failures++;                                                                       \
  } while (0)

/* A fresh directory under /tmp for this test's files. */
static inline void tt_tempdir(char *out, size_t n, const char *name) {
  snprintf(out, n, "/tmp/kforge-%s-XXXXXX", name);
  if (!mkdtemp(out)) {
    perror("mkdtemp");
    exit(2);
  }
}

/* The end of a test: removes its directory and prints the verdict; main returns the result. */
static inline int tt_finish(const char *dir) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) printf("note: could not remove %s\n", dir);
  printf("%s\n", tt_failures ? "FAILED" : "all ok");
  return tt_failures != 0;
}

static int tt_count_cb(void *arg, int n, const char *const *names, const char *const *vals) {
  (void)n;
  (void)names;
  *(long *)arg = vals[0] ? atol(vals[0]) : 0;
  return 1;
}

/* First column of the first row of sql, as a number (-1 on error). */
static inline long tt_count(kf_store *s, const char *sql) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  long v = -1;
  if (kf_store_query(&ctx, s, sql, NULL, 0, tt_count_cb, &v)) {
    printf("query failed: %s\n", kf_errmsg(&ctx));
    return -1;
  }
  return v;
}

/* Options for fast test sweeps: one thread, tiny timing budget, output to /dev/null. */
static inline void tt_fast_opts(kf_tune_opts *o, FILE *devnull) {
  kf_tune_opts_default(o);
  o->threads = 1;
  o->trial_budget_s = 0.02;
  o->trial_timeout_s = 60;
  o->progress = 1;
  o->out = devnull;
}

#define TT_FAULTY "tuner/tests/templates/tt_faulty.lua"

#endif

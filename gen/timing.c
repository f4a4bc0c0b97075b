/*
** timing.c: times a loaded kernel on its problem's inputs (warm-up, median of repeats),
** with the weights warm or cold (a rotating set of copies at least twice the last-level
** cache). Shared by `kforge bench` and the tuner's trials.
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "bench.h"

typedef struct time_arg {
  kf_runner *r;
  void **args;
  int warg;
  kf_bench_rot *rot;
} time_arg;

static int time_call(void *varg, int64_t iter) {
  time_arg *b = varg;
  b->args[b->warg] = kf_bench_rot_get(b->rot, iter);
  kf_runner_run(b->r, b->args);
  return 0;
}

int kf_problem_time(kf_ctx *ctx, kf_problem *p, kf_runner *r, int n_args, int cold, int min_runs,
                    double budget_s, kf_bench_stats *out) {
  void **args = kf_xcalloc((size_t)n_args, sizeof(void *));
  memcpy(args, kf_problem_args(p), (size_t)n_args * sizeof(void *));
  size_t wbytes;
  int warg = kf_problem_weight_arg(p, &wbytes);
  kf_bench_rot rot;
  char err[256];
  if (kf_bench_rot_init(&rot, args[warg], wbytes, cold, 0, err, sizeof err)) {
    free(args);
    return kf_err(ctx, KF_EIO, "timing: %s", err);
  }
  time_arg ta = {r, args, warg, &rot};
  kf_bench_opts bo = {2, min_runs, 100000, budget_s};
  int rc = kf_bench_run(time_call, &ta, &bo, out) ? kf_err(ctx, KF_EIO, "timing failed") : KF_OK;
  kf_bench_rot_free(&rot);
  free(args);
  return rc;
}

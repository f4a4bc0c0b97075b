/*
** timing.c: times a loaded kernel on its problem's inputs, with the weights warm or cold (a
** rotating set of copies at least twice the last-level cache); the roofline work of a kernel.
** Shared by `kforge bench` and the tuner's trials.
*/
#include "timing.h"

#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct kf_timed {
  kf_runner *r;
  void **args;
  int warg;
  kf_bench_rot rot;
};

int kf_timed_new(kf_ctx *ctx, kf_problem *p, kf_runner *r, int n_args, int cold, kf_timed **out) {
  *out = NULL;
  kf_timed *t = kf_xcalloc(1, sizeof *t);
  t->r = r;
  t->args = kf_xcalloc((size_t)n_args, sizeof(void *));
  memcpy(t->args, kf_problem_args(p), (size_t)n_args * sizeof(void *));
  size_t wbytes;
  t->warg = kf_problem_weight_arg(p, &wbytes);
  char err[256];
  if (kf_bench_rot_init(&t->rot, t->args[t->warg], wbytes, cold, 0, err, sizeof err)) {
    free(t->args);
    free(t);
    return kf_err(ctx, KF_EIO, "timing: %s", err);
  }
  *out = t;
  return KF_OK;
}

int kf_timed_call(void *timed, int64_t iter) {
  kf_timed *t = timed;
  t->args[t->warg] = kf_bench_rot_get(&t->rot, iter);
  kf_runner_run(t->r, t->args);
  return 0;
}

int kf_timed_copies(const kf_timed *t) { return t->rot.n_copies; }

void kf_timed_free(kf_timed *t) {
  if (!t) return;
  kf_bench_rot_free(&t->rot);
  free(t->args);
  free(t);
}

int kf_problem_time(kf_ctx *ctx, kf_problem *p, kf_runner *r, int n_args, int cold, int min_runs,
                    double budget_s, kf_bench_stats *out) {
  kf_timed *t;
  int rc = kf_timed_new(ctx, p, r, n_args, cold, &t);
  if (rc) return rc;
  kf_bench_opts bo = {2, min_runs, 100000, budget_s};
  rc = kf_bench_run(kf_timed_call, t, &bo, out) ? kf_err(ctx, KF_EIO, "timing failed") : KF_OK;
  kf_timed_free(t);
  return rc;
}

/* The largest pass count of an int8 mma in the block (0: none), and whether a float mma is. */
static void scan_mma(const kf_ir_kernel *ir, const kf_ir_block *b, int64_t *int8_passes, int *float_mma) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_ir_node *n = b->data[i];
    if (n->op == KF_OP_LOOP) scan_mma(ir, &n->body, int8_passes, float_mma);
    if (n->op != KF_OP_MMA || n->n_tiles < 2) continue;
    const kf_ir_buf *a = &ir->bufs.data[n->t[1].buf];
    if (a->dtype == KF_I8) {
      if (n->t[1].ext[0] > *int8_passes) *int8_passes = n->t[1].ext[0];
    } else {
      *float_mma = 1;
    }
  }
}

void kf_kernel_work(const kf_kernel *k, const kf_problem *p, int cold, const kf_peaks *pk, kf_work *w) {
  int64_t passes = 0;
  int float_mma = 0;
  scan_mma(k->ir, &k->ir->body, &passes, &float_mma);
  w->compute = passes > 0 && !float_mma ? KF_PEAK_INT8 : KF_PEAK_F32;
  w->ops = kf_problem_flops(p) * (double)(passes > 0 && !float_mma ? passes : 1);
  w->bytes = kf_problem_bytes(p);
  size_t wbytes = 0;
  kf_problem_weight_arg(p, &wbytes);
  w->memory = KF_PEAK_DRAM;
  if (!cold)
    for (int lv = KF_PEAK_DRAM - 1; lv >= KF_PEAK_L2; lv--)
      if (pk->bytes[lv] > 0 && (int64_t)wbytes <= pk->bytes[lv]) w->memory = (kf_peak_kind)lv;
}

double kf_work_roof(const kf_work *w, const kf_peaks *pk, double seconds, kf_peak_kind *bound) {
  double tc = pk->v[w->compute] > 0 ? w->ops / pk->v[w->compute] : 0;
  double tm = pk->v[w->memory] > 0 ? w->bytes / pk->v[w->memory] : 0;
  if (bound) *bound = tc >= tm ? w->compute : w->memory;
  if (!(seconds > 0) || (tc == 0 && tm == 0)) return 0;
  return (tc > tm ? tc : tm) / seconds;
}

/*
** asc_target.c: the Ascend NPU model behind the target interface (gen/kf_target.h), so that
** `kforge check`, `kforge bench` and the tuner run kernels on it like on any target: lower =
** the per-core pipe programs (asc_lower), run = the functional simulator (the IR's ops in
** the hardware's formats), measure = the timing simulator's cycles at the machine's clock
** (deterministic). `kforge sim` (asc_cli.c) adds the machine knobs, traces and per-pipe
** reports on top.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asc_func.h"
#include "asc_lower.h"
#include "kernel.h"
#include "kf_ascend.h"

kf_target_view kf_ascend_view(const char *name) {
  kf_target_view v = {name, KF_ASCEND_VL, 1, 1, KF_ASCEND_REGS};
  return v;
}

static int asc_open(kf_ctx *ctx, const char *name, kf_tgt *out) {
  if (!name || strncmp(name, "ascend", 6)) return KF_EUNSUP;
  kf_asc_machine *m = kf_xmalloc(sizeof *m);
  int rc = kf_asc_machine_get(ctx, name, m);
  if (rc) {
    free(m);
    return rc;
  }
  memset(out, 0, sizeof *out);
  out->ops = &kf_target_ascend;
  snprintf(out->name, sizeof out->name, "%s", m->name);
  out->view = kf_ascend_view(m->name);
  out->data = m;
  return KF_OK;
}

static void asc_close(kf_tgt *t) { free(t->data); }

static void asc_describe(const kf_tgt *t, kf_str *out) {
  const kf_asc_machine *m = t->data;
  kf_str_printf(out, "%s: simulated Ascend NPU model, %d die(s) x %d AIC + %d AIV each at %.2f GHz", t->name,
                m->n_dies, m->aic_per_die, m->aic_per_die * m->aiv_per_aic, m->freq_hz / 1e9);
}

static int asc_runnable(kf_ctx *ctx, const kf_tgt *t) {
  (void)ctx;
  (void)t;
  return KF_OK; /* a model runs anywhere */
}

/* The machine of a kernel's target (the kernel keeps its target's name only). */
static int machine_of(kf_ctx *ctx, const kf_kernel *k, kf_asc_machine *m) {
  return kf_asc_machine_get(ctx, k->tgt.name, m);
}

static int asc_lower(kf_ctx *ctx, kf_kernel *k) {
  kf_asc_machine m;
  int rc = machine_of(ctx, k, &m);
  if (rc) return rc;
  int64_t preload = 1;
  kf_binding_get(&k->config, "preload", &preload);
  kf_asc_lower_opts lo = {(int)preload};
  kf_asc_lowered *low = kf_xcalloc(1, sizeof *low);
  rc = kf_asc_lower(ctx, k->ir, &m, &lo, low);
  if (rc) {
    free(low);
    return rc;
  }
  k->prog = low;
  return KF_OK;
}

static int asc_emit(kf_ctx *ctx, const kf_kernel *k, const char *kind, const char *path, kf_str *out) {
  (void)path;
  const kf_asc_lowered *low = k->prog;
  if (!strcmp(kind, "placement")) {
    kf_str_printf(out, "%s\n", low->placement.data ? low->placement.data : "");
    return KF_OK;
  }
  return kf_err(ctx, KF_EUNSUP, "target %s emits 'ir' and 'placement' (for cycles and traces: kforge sim)",
                k->tgt.name);
}

static int asc_load(kf_ctx *ctx, kf_kernel *k, int emitter) {
  (void)ctx;
  (void)k;
  (void)emitter;
  return KF_OK;
}

static int asc_run(kf_ctx *ctx, kf_kernel *k, void *const *args, kf_pool *pool) {
  (void)pool;
  return kf_asc_functional(ctx, k->ir, args);
}

static int asc_measure(kf_ctx *ctx, kf_kernel *k, kf_problem *p, kf_pool *pool, const kf_measure_opts *o,
                       kf_measure *out) {
  (void)p;
  (void)pool;
  (void)o;
  kf_asc_machine m;
  int rc = machine_of(ctx, k, &m);
  if (rc) return rc;
  kf_asc_lowered *low = k->prog;
  kf_asc_stats st;
  rc = kf_asc_simulate(ctx, low->prog, NULL, &st);
  if (rc) return rc;
  out->median_s = out->min_s = st.cycles / m.freq_hz;
  out->n_runs = 1;
  out->simulated = 1;
  return KF_OK;
}

static void asc_release(kf_kernel *k) {
  if (k->prog) kf_asc_lowered_free(k->prog);
  free(k->prog);
  k->prog = NULL;
}

const kf_target_ops kf_target_ascend = {
    "ascend", "ascend910b, ascend910c", asc_open, asc_close, asc_describe, asc_runnable, asc_lower, asc_emit,
    asc_load, asc_run, asc_measure, asc_release};

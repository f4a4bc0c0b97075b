/*
** asc_api.c: template + shape + tunables -> lowering -> timing simulation (+ functional
** check against the fp64 reference). See kf_ascend.h.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asc_func.h"
#include "asc_lower.h"
#include "kf_ascend.h"

static int build_ir(kf_ctx *ctx, kf_template *t, const kf_asc_machine *m, const kf_binding *shape,
                    const kf_binding *sets, kf_binding *params, kf_binding *config, kf_ir_kernel **ir) {
  kf_binding none;
  memset(&none, 0, sizeof none);
  kf_target_view v = kf_ascend_view(m->name);
  int rc = kf_template_shape(ctx, t, shape, params);
  if (!rc) rc = kf_template_config(ctx, t, &v, params, sets ? sets : &none, config);
  if (!rc) rc = kf_template_build(ctx, t, &v, params, config, ir);
  return rc;
}

static int64_t param(const kf_binding *b, const char *name, int64_t def) {
  int64_t v;
  return kf_binding_get(b, name, &v) ? v : def;
}

static int timing(kf_ctx *ctx, const kf_ir_kernel *ir, const kf_asc_machine *m, const kf_binding *config,
                  int program_order, const kf_asc_trace_opts *trace, kf_asc_lowered *low, kf_asc_stats *st) {
  kf_asc_lower_opts lo = {program_order ? 0 : (int)param(config, "preload", 1)};
  int rc = kf_asc_lower(ctx, ir, m, &lo, low);
  if (rc) return rc;
  rc = kf_asc_simulate(ctx, low->prog, trace, st);
  if (rc) kf_asc_lowered_free(low);
  return rc;
}

/* The functional check on `shape` (the whole problem or a cut-down batch): the kernel built
** for this machine, its problem from the reference family, run by the functional simulator. */
static int check(kf_ctx *ctx, kf_template *t, const kf_asc_machine *m, const kf_binding *shape,
                 const kf_binding *config, const kf_ascend_opts *o, kf_ascend_result *res) {
  kf_tgt tgt;
  memset(&tgt, 0, sizeof tgt);
  tgt.ops = &kf_target_ascend;
  snprintf(tgt.name, sizeof tgt.name, "%s", m->name);
  tgt.view = kf_ascend_view(m->name);
  kf_kernel k;
  int rc = kf_kernel_build_ir(ctx, t, shape, config, &tgt, &k);
  kf_problem *prob = NULL;
  if (!rc) rc = kf_problem_new(ctx, &k, o->seed ? o->seed : 1, o->dist, &prob);
  if (!rc) {
    kf_problem_poison_outputs(prob);
    rc = kf_asc_functional(ctx, k.ir, kf_problem_args(prob));
  }
  if (!rc) {
    rc = kf_problem_check(ctx, prob, &res->check);
    res->check_ok = rc == KF_OK;
    if (rc == KF_ECHECK) rc = KF_OK; /* reported through check_ok */
  }
  kf_str s = {0};
  kf_binding_format(&k.params, &s);
  snprintf(res->check_shape, sizeof res->check_shape, "%s", s.data ? s.data : "");
  kf_str_free(&s);
  kf_problem_free(prob);
  kf_kernel_free(&k);
  return rc;
}

int kf_ascend_simulate(kf_ctx *ctx, kf_template *t, const kf_binding *shape, const kf_binding *sets,
                       const kf_ascend_opts *opts, kf_ascend_result *res) {
  memset(res, 0, sizeof *res);
  kf_ascend_opts o;
  memset(&o, 0, sizeof o);
  if (opts) o = *opts;
  int rc = kf_asc_machine_get(ctx, o.machine, &res->machine);
  if (!rc && o.machine_params) rc = kf_asc_machine_set(ctx, &res->machine, o.machine_params);
  if (rc) return rc;
  const kf_asc_machine *m = &res->machine;
  kf_ir_kernel *ir = NULL;
  rc = build_ir(ctx, t, m, shape, sets, &res->params, &res->config, &ir);
  if (rc) return rc;
  kf_asc_lowered low;
  kf_asc_stats st;
  kf_asc_trace_opts tr = {o.trace_path, o.trace_max, kf_template_name(t)};
  rc = timing(ctx, ir, m, &res->config, o.program_order, o.trace_path ? &tr : NULL, &low, &st);
  kf_ir_free(ir);
  if (rc) return rc;
  res->cycles = st.cycles;
  res->seconds = st.cycles / m->freq_hz;
  const kf_ref_family *fam;
  if ((rc = kf_ref_family_of(ctx, t, &fam))) {
    kf_asc_lowered_free(&low);
    return rc;
  }
  res->flops = fam->flops(&res->params);
  res->tflops = res->seconds > 0 ? res->flops / res->seconds / 1e12 : 0;
  res->peak_frac = res->tflops * 1e12 / kf_asc_machine_peak_flops(m, 0);
  res->cube_busy = st.busy[KF_ASC_AIC][KF_ASC_M];
  res->cube_flops = low.cube_flops;
  res->cube_int8 = low.cube_int8;
  memcpy(res->busy, st.busy, sizeof res->busy);
  memcpy(res->busy_max, st.busy_max, sizeof res->busy_max);
  memcpy(res->xwait, st.xwait, sizeof res->xwait);
  res->hbm_read = st.hbm_read;
  res->hbm_write = st.hbm_write;
  res->l2_read = st.l2_read;
  res->l2_write = st.l2_write;
  res->n_tasks = low.n_tasks;
  res->n_units = low.n_units;
  res->n_inst = st.n_inst;
  res->n_flags = st.n_flags;
  snprintf(res->placement, sizeof res->placement, "%s", low.placement.data ? low.placement.data : "");
  kf_asc_lowered_free(&low);
  /* the functional check */
  kf_ascend_check mode = o.check;
  if (mode == KF_ASCEND_CHECK_AUTO) mode = res->flops <= 2e9 ? KF_ASCEND_CHECK_FULL : KF_ASCEND_CHECK_SAMPLE;
  if (mode == KF_ASCEND_CHECK_NONE) return KF_OK;
  kf_binding cshape = res->params;
  if (mode == KF_ASCEND_CHECK_SAMPLE) {
    int64_t cur = param(&cshape, fam->batch_param, 1), want = o.sample_batch > 0 ? o.sample_batch : fam->sample_batch;
    if (want < cur) kf_binding_set(&cshape, fam->batch_param, want);
  }
  rc = check(ctx, t, m, &cshape, &res->config, &o, res);
  if (rc == KF_EINVAL && mode == KF_ASCEND_CHECK_SAMPLE) { /* the cut-down shape breaks a constraint */
    snprintf(res->check_note, sizeof res->check_note, "sampled check skipped: %s", kf_errmsg(ctx));
    return KF_OK;
  }
  if (rc) return rc;
  res->checked = mode;
  if (!res->check_ok)
    return kf_err(ctx, KF_ECHECK, "functional result exceeds its bound: worst |err|/bound = %.3g at output %lld (%s)",
                  res->check.max_ratio, (long long)res->check.worst_index, res->check_shape);
  return KF_OK;
}

int kf_ascend_cycles(kf_ctx *ctx, kf_template *t, const kf_binding *shape, const kf_binding *config,
                     const char *machine, double *cycles) {
  *cycles = 0;
  kf_asc_machine m;
  int rc = kf_asc_machine_get(ctx, machine, &m);
  if (rc) return rc;
  kf_binding params, cfg;
  kf_ir_kernel *ir = NULL;
  rc = build_ir(ctx, t, &m, shape, config, &params, &cfg, &ir);
  if (rc) return rc;
  kf_asc_lowered low;
  kf_asc_stats st;
  rc = timing(ctx, ir, &m, &cfg, 0, NULL, &low, &st);
  kf_ir_free(ir);
  if (!rc) *cycles = st.cycles;
  if (!rc) kf_asc_lowered_free(&low);
  return rc;
}

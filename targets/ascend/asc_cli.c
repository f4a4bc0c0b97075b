/*
** asc_cli.c: `kforge sim`: simulate a template on the Ascend NPU model and print cycles,
** time, TFLOPS, % of Cube peak, per-pipe busy, HBM/L2 bytes and the functional check.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_ascend.h"
#include "kf_ascend_cli.h"
#include "kf_ref.h"

static const char help[] =
    "usage: kforge sim TEMPLATE --shape NAME=VALUE,... [--target ascend910b|ascend910c]\n"
    "                  [--set NAME=VALUE ...] [--trace FILE] [--trace-max N]\n"
    "                  [--check auto|full|sample|none] [--no-check] [--sample-batch N]\n"
    "                  [--seed N] [--dist NAME] [--param NAME=VALUE,...] [-v]\n"
    "       kforge sim --machine [--target ascend910b|ascend910c]\n\n"
    "Lowers the kernel to per-core pipe programs of an Ascend 910-class NPU (24 AIC + 48 AIV per die;\n"
    "ascend910c = 2 dies), simulates them (discrete events per pipe, shared HBM/L2, flags) and prints\n"
    "cycles, time, TFLOPS, %% of the bf16 Cube peak, per-pipe busy %%, HBM/L2 bytes. The functional\n"
    "simulator computes the result in the hardware's formats and checks it against the fp64 reference\n"
    "(auto: the full shape up to 2 GFLOP, else a sample with the batch B (attention) or M (GEMM) cut to\n"
    "--sample-batch, default 2 / 16). --trace writes a Chrome trace (open it in Perfetto): one track per\n"
    "pipe per core. --machine prints every number of the machine model with its source; --param\n"
    "overrides some of them (e.g. core_hbm_bpc=64,vec_exp_cost=2) for sensitivity studies.\n";

static int usage(const char *fmt, const char *arg) {
  fprintf(stderr, "kforge sim: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'kforge sim --help')\n");
  return 2;
}

static int parse_num(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static void print_result(const kf_template *t, const kf_ascend_result *r, int verbose) {
  const kf_asc_machine *m = &r->machine;
  kf_str p = {0}, c = {0};
  kf_binding_format(&r->params, &p);
  kf_binding_format(&r->config, &c);
  printf("%s  shape %s  tunables %s\n", kf_template_name(t), p.data ? p.data : "", c.data ? c.data : "(none)");
  printf("target %s: %d die(s), %d AIC + %d AIV, %.2f GHz\n", m->name, m->n_dies, kf_asc_machine_n_aic(m),
         kf_asc_machine_n_aiv(m), m->freq_hz / 1e9);
  kf_str_free(&p);
  kf_str_free(&c);
  if (verbose) printf("placement: %s\n", r->placement);
  printf("program: %lld tasks, %lld units, %lld instructions, %lld flags\n", (long long)r->n_tasks,
         (long long)r->n_units, (long long)r->n_inst, (long long)r->n_flags);
  printf("time: %.0f cycles = %.3f us\n", r->cycles, r->seconds * 1e6);
  printf("compute: %.4g GFLOP -> %.1f TFLOPS = %.1f%% of the bf16 Cube peak (%.1f TFLOPS); Cube (M pipe) busy %.1f%%\n",
         r->flops / 1e9, r->tflops, 100 * r->peak_frac, kf_asc_machine_peak_flops(m, 0) / 1e12, 100 * r->cube_busy);
  if (r->cube_int8) printf("         the Cube ran int8 (peak %.1f TOPS)\n", kf_asc_machine_peak_flops(m, 1) / 1e12);
  printf("pipes: busy %% of the run (mean over cores / busiest core)\n");
  static const int aic[] = {KF_ASC_MTE2, KF_ASC_MTE1, KF_ASC_M, KF_ASC_FIX, KF_ASC_S};
  static const int aiv[] = {KF_ASC_MTE2, KF_ASC_V, KF_ASC_MTE3, KF_ASC_S};
  printf("  AIC:");
  for (int i = 0; i < 5; i++)
    printf("  %s %.1f/%.1f", kf_asc_pipe_name(aic[i]), 100 * r->busy[KF_ASC_AIC][aic[i]], 100 * r->busy_max[KF_ASC_AIC][aic[i]]);
  printf("\n  AIV:");
  for (int i = 0; i < 4; i++)
    printf("  %s %.1f/%.1f", kf_asc_pipe_name(aiv[i]), 100 * r->busy[KF_ASC_AIV][aiv[i]], 100 * r->busy_max[KF_ASC_AIV][aiv[i]]);
  printf("\n  waiting on the other core kind (idle, blocked on a cross-core flag), %% of the run:\n   ");
  for (int k = 0; k < 2; k++)
    for (int q = 1; q < KF_ASC_N_PIPES; q++)
      if (r->busy_max[k][q] > 0 || r->xwait[k][q] > 0)
        printf(" %s %s %.1f", k ? "AIV" : "AIC", kf_asc_pipe_name(q), 100 * r->xwait[k][q]);
  printf("\n");
  double bw = r->seconds > 0 ? (r->hbm_read + r->hbm_write) / r->seconds / 1e12 : 0;
  printf("memory: HBM read %.4g MB, write %.4g MB (%.2f TB/s); L2 read %.4g MB, write %.4g MB\n", r->hbm_read / 1e6,
         r->hbm_write / 1e6, bw, r->l2_read / 1e6, r->l2_write / 1e6);
  if (r->checked)
    printf("check (%s, %s): max |err| %.3g, rel L2 %.3g, worst |err|/bound %.3g (bound: %s) -> %s\n",
           r->checked == KF_ASCEND_CHECK_FULL ? "full" : "sampled", r->check_shape, r->check.max_abs, r->check.rel_l2,
           r->check.max_ratio, r->check.bound_desc, r->check_ok ? "ok" : "FAILED");
  else if (r->check_note[0])
    printf("check: %s\n", r->check_note);
  else
    printf("check: not run\n");
}

int kf_ascend_main(int argc, char **argv) {
  const char *tmpl = NULL, *shape = NULL, *target = "ascend910b", *sets[KF_MAX_BIND];
  int n_sets = 0, verbose = 0, machine = 0;
  kf_ascend_opts o;
  memset(&o, 0, sizeof o);
  o.seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t num;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(help, stdout);
      return 0;
    } else if (!strcmp(a, "--machine")) {
      machine = 1;
    } else if (!strcmp(a, "--no-check")) {
      o.check = KF_ASCEND_CHECK_NONE;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      verbose = 1;
    } else if (!strcmp(a, "--shape") || !strcmp(a, "--target") || !strcmp(a, "--set") || !strcmp(a, "--trace") ||
               !strcmp(a, "--trace-max") || !strcmp(a, "--check") || !strcmp(a, "--sample-batch") ||
               !strcmp(a, "--seed") || !strcmp(a, "--dist") || !strcmp(a, "--param")) {
      if (!v) return usage("option %s needs a value", a);
      i++;
      if (!strcmp(a, "--shape")) shape = v;
      else if (!strcmp(a, "--target")) target = v;
      else if (!strcmp(a, "--trace")) o.trace_path = v;
      else if (!strcmp(a, "--param")) o.machine_params = v;
      else if (!strcmp(a, "--set")) {
        if (n_sets == KF_MAX_BIND) return usage("too many %s options", a);
        sets[n_sets++] = v;
      } else if (!strcmp(a, "--check")) {
        if (!strcmp(v, "auto")) o.check = KF_ASCEND_CHECK_AUTO;
        else if (!strcmp(v, "full")) o.check = KF_ASCEND_CHECK_FULL;
        else if (!strcmp(v, "sample")) o.check = KF_ASCEND_CHECK_SAMPLE;
        else if (!strcmp(v, "none")) o.check = KF_ASCEND_CHECK_NONE;
        else return usage("unknown --check '%s' (auto, full, sample, none)", v);
      } else if (!strcmp(a, "--dist")) {
        int d = kf_ref_dist_parse(v);
        if (d < 0) d = kf_ref_attn_kind_parse(v);
        if (d < 0) return usage("unknown --dist '%s' (gauss, uniform, ...; attention: random, rising, equal, large, negative)", v);
        o.dist = d;
      } else if (parse_num(v, 1, (int64_t)1 << 40, &num)) {
        return usage("bad number '%s'", v);
      } else if (!strcmp(a, "--trace-max")) o.trace_max = num;
      else if (!strcmp(a, "--sample-batch")) o.sample_batch = num;
      else o.seed = (uint64_t)num;
    } else if (a[0] == '-') {
      return usage("unknown option '%s'", a);
    } else if (!tmpl) {
      tmpl = a;
    } else {
      return usage("unexpected argument '%s'", a);
    }
  }
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  o.machine = target;
  if (machine) {
    kf_asc_machine m;
    if (kf_asc_machine_get(&ctx, target, &m) || (o.machine_params && kf_asc_machine_set(&ctx, &m, o.machine_params))) {
      fprintf(stderr, "kforge sim: error: %s\n", kf_errmsg(&ctx));
      return 2;
    }
    kf_str s = {0};
    kf_asc_machine_describe(&m, &s);
    fputs(s.data, stdout);
    kf_str_free(&s);
    return 0;
  }
  if (!tmpl) return usage("%s", "missing TEMPLATE");
  if (!shape) return usage("%s", "missing --shape NAME=VALUE,...");
  kf_binding sh, st;
  memset(&sh, 0, sizeof sh);
  memset(&st, 0, sizeof st);
  kf_template *t = NULL;
  int rc = kf_binding_parse(&ctx, shape, "--shape", &sh);
  for (int i = 0; !rc && i < n_sets; i++) rc = kf_binding_parse(&ctx, sets[i], "--set", &st);
  if (!rc) rc = kf_template_load(&ctx, tmpl, &t);
  kf_ascend_result *r = kf_xcalloc(1, sizeof *r);
  if (!rc) rc = kf_ascend_simulate(&ctx, t, &sh, &st, &o, r);
  if (!rc || rc == KF_ECHECK) {
    print_result(t, r, verbose);
    if (o.trace_path) printf("trace: %s\n", o.trace_path);
  }
  if (rc) fprintf(stderr, "kforge sim: error: %s\n", kf_errmsg(&ctx));
  free(r);
  kf_template_free(t);
  return rc == 0 ? 0 : rc == KF_ECHECK ? 1 : 2;
}

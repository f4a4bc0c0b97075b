/*
** kf_case.c: one kernel test case (see kf_case.h).
*/
#include "kf_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kf_case_run(const kf_case *c, kf_check_result *res, float **y, int64_t *n_y, char *msg, size_t msglen) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t = NULL;
  kf_kernel k;
  memset(&k, 0, sizeof k);
  kf_binding sh, st;
  memset(&sh, 0, sizeof sh);
  memset(&st, 0, sizeof st);
  memset(res, 0, sizeof *res);
  msg[0] = 0;
  kf_target tg;
  kf_problem *p = NULL;
  int rc = kf_binding_parse(&ctx, c->shape, "shape", &sh);
  if (!rc && c->sets) rc = kf_binding_parse(&ctx, c->sets, "set", &st);
  if (!rc) rc = kf_target_get(&ctx, c->target, &tg);
  const char *why;
  if (!rc && !kf_target_runnable(&tg, &why)) {
    snprintf(msg, msglen, "this machine lacks %s", why);
    return KF_CASE_SKIP;
  }
  if (!rc) rc = kf_template_load(&ctx, c->tmpl, &t);
  if (!rc) rc = kf_kernel_build(&ctx, t, &sh, &st, &tg, &k);
  if (!rc) rc = kf_problem_new(&ctx, &k, c->seed ? c->seed : 7, c->dist, &p);
  if (!rc && c->hook) c->hook(p, &k);
  kf_pool *pool = c->threads > 1 ? kf_pool_new(c->threads) : NULL;
  float *first = NULL;
  int64_t n = 0;
  for (int e = c->llvm_only ? 1 : 0; !rc && e < 2; e++) {
    if ((rc = kf_kernel_load(&ctx, &k, e ? KF_EMIT_LLVM : KF_EMIT_C))) break;
    kf_runner *r = kf_runner_new(&k, pool);
    kf_problem_poison_outputs(p);
    kf_runner_run(r, kf_problem_args(p));
    kf_runner_free(r);
    rc = kf_problem_check(&ctx, p, res);
    const float *out = kf_problem_output(p, &n);
    if (!rc && !first) {
      first = kf_xmalloc((size_t)n * sizeof(float));
      memcpy(first, out, (size_t)n * sizeof(float));
    } else if (!rc) {
      double d = 0;
      for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)first[i] - (double)out[i]));
      if (d > 2 * res->max_abs + 1e-30)
        rc = kf_err(&ctx, KF_ECHECK, "C and LLVM outputs differ by %.3g (max error %.3g)", d, res->max_abs);
    }
  }
  if (rc) snprintf(msg, msglen, "%s", kf_errmsg(&ctx));
  if (y && !rc) *y = first;
  else free(first);
  if (n_y) *n_y = n;
  kf_pool_free(pool);
  kf_problem_free(p);
  kf_kernel_free(&k);
  kf_template_free(t);
  return rc ? KF_CASE_FAIL : KF_CASE_PASS;
}

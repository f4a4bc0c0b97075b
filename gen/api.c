/*
** api.c: the public API (include/kforge/kforge.h) over the generator's internals: a context
** with its thread pool, kernels built and loaded through the target interface, checks
** through the reference families.
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "kforge/kforge.h"

_Static_assert((int)KFORGE_OK == (int)KF_OK && (int)KFORGE_EINVAL == (int)KF_EINVAL &&
                   (int)KFORGE_ENOMEM == (int)KF_ENOMEM && (int)KFORGE_EIO == (int)KF_EIO &&
                   (int)KFORGE_ECOMPILE == (int)KF_ECOMPILE && (int)KFORGE_EUNSUP == (int)KF_EUNSUP &&
                   (int)KFORGE_ECHECK == (int)KF_ECHECK,
               "public status codes are the internal ones");

struct kforge {
  kf_ctx ctx;
  kf_pool *pool;
  int threads;
  kf_str targets;
};

struct kforge_kernel {
  kf_template *tmpl;
  kf_kernel k;
  kf_str config;
};

const char *kforge_version(void) { return KF_VERSION; }

kforge *kforge_new(void) {
  kforge *kf = calloc(1, sizeof *kf);
  if (kf) kf_ctx_init(&kf->ctx);
  return kf;
}

int kforge_set_threads(kforge *kf, int n_threads) {
  if (n_threads < 0 || n_threads > 4096) return kf_err(&kf->ctx, KF_EINVAL, "threads must be 0..4096, got %d", n_threads);
  kf_pool_free(kf->pool);
  kf->pool = NULL;
  kf->threads = n_threads;
  return KF_OK;
}

void kforge_free(kforge *kf) {
  if (!kf) return;
  kf_pool_free(kf->pool);
  kf_str_free(&kf->targets);
  free(kf);
}

const char *kforge_errmsg(const kforge *kf) { return kf ? kf_errmsg(&kf->ctx) : "no context"; }

const char *kforge_templates_dir(void) { return kf_template_dir(); }

const char *kforge_targets(kforge *kf) {
  kf_str_free(&kf->targets);
  kf_targets_names(&kf->ctx, &kf->targets);
  return kf->targets.data ? kf->targets.data : "";
}

int kforge_kernel_new(kforge *kf, const char *tmpl, const char *shape, const char *sets, const char *target,
                      int emitter, kforge_kernel **out) {
  *out = NULL;
  kf_ctx *ctx = &kf->ctx;
  if (!tmpl || !shape) return kf_err(ctx, KF_EINVAL, "kforge_kernel_new: a template and a shape are needed");
  kf_binding sh, st;
  memset(&sh, 0, sizeof sh);
  memset(&st, 0, sizeof st);
  int rc = kf_binding_parse(ctx, shape, "shape", &sh);
  if (!rc && sets && *sets) rc = kf_binding_parse(ctx, sets, "sets", &st);
  if (rc) return rc;
  kforge_kernel *k = calloc(1, sizeof *k);
  if (!k) return kf_err(ctx, KF_ENOMEM, "kforge_kernel_new: out of memory");
  kf_tgt tg;
  rc = kf_target_open(ctx, target, &tg);
  if (!rc) {
    rc = kf_template_load(ctx, tmpl, &k->tmpl);
    if (!rc) rc = kf_kernel_build_on(ctx, k->tmpl, &sh, &st, &tg, &k->k);
    if (!rc) rc = kf_kernel_load(ctx, &k->k, emitter ? KF_EMIT_C : KF_EMIT_LLVM);
    kf_target_close(&tg);
  }
  if (rc) {
    kforge_kernel_free(k);
    return rc;
  }
  kf_binding_format(&k->k.config, &k->config);
  *out = k;
  return KF_OK;
}

void kforge_kernel_free(kforge_kernel *k) {
  if (!k) return;
  if (k->k.ir) kf_kernel_free(&k->k);
  kf_template_free(k->tmpl);
  kf_str_free(&k->config);
  free(k);
}

int kforge_kernel_n_args(const kforge_kernel *k) { return kf_kernel_n_args(&k->k); }

int kforge_kernel_arg(const kforge_kernel *k, int i, kforge_arg *out) {
  memset(out, 0, sizeof *out);
  const kf_ir_buf *b = i >= 0 ? kf_kernel_arg(&k->k, i) : NULL;
  if (!b) return KF_EINVAL;
  out->name = b->name;
  out->dtype = kf_scalar_name(b->dtype);
  out->is_output = b->level == KF_LVL_ARG_OUT;
  out->rank = b->rank;
  for (int d = 0; d < b->rank && d < 4; d++) out->dims[d] = b->dims[d];
  out->n_elems = kf_ir_buf_elems(b);
  out->layout = b->layout == KF_LAYOUT_QW ? "qweight" : b->layout == KF_LAYOUT_QS ? "qscales" : "row";
  out->bits = b->wbits;
  int64_t kdim = b->rank ? b->dims[b->rank - 1] : 0;
  out->group = b->wgroup >= kdim ? (kdim + 7) / 8 * 8 : b->wgroup; /* per channel: kf_qweight's form */
  out->packing = b->wlayout;
  out->mxfp4 = b->wmx;
  return KF_OK;
}

const char *kforge_kernel_config(const kforge_kernel *k) { return k->config.data ? k->config.data : ""; }
const char *kforge_kernel_name(const kforge_kernel *k) { return k->k.fn_name; }

static kf_pool *pool_of(kforge *kf) {
  if (!kf->pool) kf->pool = kf_pool_new(kf->threads);
  return kf->pool;
}

int kforge_kernel_run(kforge *kf, kforge_kernel *k, void *const *args) {
  return kf_kernel_run(&kf->ctx, &k->k, args, pool_of(kf));
}

int kforge_kernel_check(kforge *kf, kforge_kernel *k, uint64_t seed, kforge_check_result *out) {
  memset(out, 0, sizeof *out);
  kf_problem *p = NULL;
  int rc = kf_problem_new(&kf->ctx, &k->k, seed, 0, &p);
  if (!rc) {
    kf_problem_poison_outputs(p);
    rc = kf_kernel_run(&kf->ctx, &k->k, kf_problem_args(p), pool_of(kf));
  }
  if (!rc) {
    kf_check_result r;
    rc = kf_problem_check(&kf->ctx, p, &r);
    out->max_abs_err = r.max_abs;
    out->rel_l2 = r.rel_l2;
    out->max_err_over_bound = r.max_ratio;
    out->effective_bits = r.eff_bits;
  }
  kf_problem_free(p);
  return rc;
}

int kforge_kernel_emit(kforge *kf, const kforge_kernel *k, const char *kind, char **text) {
  *text = NULL;
  kf_str s = {0};
  int rc;
  if (!kind) return kf_err(&kf->ctx, KF_EINVAL, "kforge_kernel_emit: no kind");
  if (!strcmp(kind, "ir")) {
    kf_ir_print(k->k.ir, &s);
    rc = KF_OK;
  } else if (!strcmp(kind, "o")) {
    rc = kf_err(&kf->ctx, KF_EINVAL, "kforge_kernel_emit: an object file is binary (kforge gen --emit o -o FILE)");
  } else {
    rc = k->k.tgt.ops->emit(&kf->ctx, &k->k, kind, NULL, &s);
  }
  if (rc) {
    kf_str_free(&s);
    return rc;
  }
  if (!s.data) kf_str_puts(&s, "");
  *text = s.data;
  return KF_OK;
}

/*
** targets.c: the context's target set (gen/kf_target.h).
*/
#include <string.h>

#include "kf_target.h"

void kf_ctx_init(kf_ctx *ctx) {
  memset(ctx, 0, sizeof *ctx);
  kf_targets_add(ctx, &kf_target_cpu);
  kf_targets_add(ctx, &kf_target_interp);
}

int kf_targets_add(kf_ctx *ctx, const kf_target_ops *ops) {
  for (int i = 0; i < ctx->n_targets; i++)
    if (ctx->targets[i] == ops) return KF_OK;
  if (ctx->n_targets == KF_MAX_TARGETS) return kf_err(ctx, KF_EINVAL, "too many targets (at most %d)", KF_MAX_TARGETS);
  ctx->targets[ctx->n_targets++] = ops;
  return KF_OK;
}

void kf_targets_names(const kf_ctx *ctx, kf_str *out) {
  for (int i = 0; i < ctx->n_targets; i++) kf_str_printf(out, "%s%s", i ? ", " : "", ctx->targets[i]->names);
}

int kf_target_open(kf_ctx *ctx, const char *name, kf_tgt *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < ctx->n_targets; i++) {
    int rc = ctx->targets[i]->open(ctx, name, out);
    if (rc != KF_EUNSUP) return rc;
  }
  kf_str names = {0};
  kf_targets_names(ctx, &names);
  int rc = kf_err(ctx, KF_EINVAL, "unknown target '%s' (known: %s)", name ? name : "", names.data ? names.data : "");
  kf_str_free(&names);
  return rc;
}

void kf_target_close(kf_tgt *t) {
  if (t->ops && t->ops->close) t->ops->close(t);
  memset(t, 0, sizeof *t);
}

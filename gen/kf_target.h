/*
** kf_target.h: the target interface. A target turns a verified tile IR into something that
** runs (or is simulated) and says how long it takes:
**
**   template --build--> tile IR --verify--> [target] lower --> load --> run / measure
**
** kforge core knows targets only through kf_target_ops. The library registers its two LIR
** targets in every context (targets/cpu: "cpu-*" native code through the C or LLVM emitter;
** "interp": the same LIR run by gen/lir_interp.c); optional modules register more (the CLI
** adds targets/ascend: the simulated Ascend NPU). `check`, `bench`, `sim`, the tuner and
** `lib` open a target by name and go through these functions only.
*/
#ifndef KF_TARGET_IFACE_H
#define KF_TARGET_IFACE_H

#include "kf.h"

typedef struct kf_kernel kf_kernel;
typedef struct kf_problem kf_problem;
typedef struct kf_pool kf_pool;
typedef struct kf_target_ops kf_target_ops;

/* What a template sees of its target: constraints(p, t, target) and build(p, t, target) get
** {name=, vl=32-bit lanes, vnni=0/1, bf16=0/1, regs=vector registers}. */
typedef struct kf_target_view {
  const char *name;
  int vl, vnni, bf16, regs;
} kf_target_view;

/* An opened target: which implementation, its full name and view, and its own description
** (owned by the implementation; freed by kf_target_close). */
typedef struct kf_tgt {
  const kf_target_ops *ops;
  char name[64];
  kf_target_view view;
  void *data;
} kf_tgt;

/* How to time one kernel. */
typedef struct kf_measure_opts {
  int cold;          /* weights from a rotating set larger than the last-level cache */
  int min_runs;      /* at least this many timed calls (measured targets) */
  double budget_s;   /* seconds of timing (measured targets) */
} kf_measure_opts;

typedef struct kf_measure {
  double median_s, min_s, spread; /* seconds per call; spread: (p90 - p10) / median */
  int64_t n_runs;
  int simulated;     /* 1: the target's model computed the time (deterministic) */
} kf_measure;

struct kf_target_ops {
  const char *family;   /* "cpu", "interp", "ascend" */
  const char *names;    /* the names open() takes, for help and errors */
  /* Opens `name`: KF_OK; KF_EUNSUP when the name is not one of this target's. */
  int (*open)(kf_ctx *ctx, const char *name, kf_tgt *out);
  void (*close)(kf_tgt *t);
  /* Features / the machine, one line: recorded with every result. */
  void (*describe)(const kf_tgt *t, kf_str *out);
  /* Whether kernels for t can run here (KF_EUNSUP with the reason otherwise). */
  int (*runnable)(kf_ctx *ctx, const kf_tgt *t);
  /* k->ir (verified) -> the target's program (k->lir for LIR targets, k->prog otherwise). */
  int (*lower)(kf_ctx *ctx, kf_kernel *k);
  /* Writes one stage of the program ("lir", "c", "ll", "s", "h", "o", ...) into *out, or into
  ** `path` for binary kinds; KF_EUNSUP names the kinds this target has. */
  int (*emit)(kf_ctx *ctx, const kf_kernel *k, const char *kind, const char *path, kf_str *out);
  /* Makes k runnable (emitter: 0 = C, 1 = LLVM for the CPU; ignored elsewhere). */
  int (*load)(kf_ctx *ctx, kf_kernel *k, int emitter);
  /* Computes k's outputs on args (one pointer per argument, template order). */
  int (*run)(kf_ctx *ctx, kf_kernel *k, void *const *args, kf_pool *pool);
  /* Seconds per call on p's inputs: timed on this machine, or simulated (a model's time does
  ** not depend on the data: p may be NULL there). */
  int (*measure)(kf_ctx *ctx, kf_kernel *k, kf_problem *p, kf_pool *pool, const kf_measure_opts *o,
                 kf_measure *out);
  /* Frees what lower and load made. */
  void (*release)(kf_kernel *k);
};

/* The context's target set. kf_ctx_init registers the LIR targets; at most KF_MAX_TARGETS. */
int kf_targets_add(kf_ctx *ctx, const kf_target_ops *ops);
/* Opens a target by name (NULL or "": cpu-host). KF_EINVAL lists every registered name. */
int kf_target_open(kf_ctx *ctx, const char *name, kf_tgt *out);
void kf_target_close(kf_tgt *t);
/* "cpu-host, cpu-generic, ..., interp, ascend910b, ..." */
void kf_targets_names(const kf_ctx *ctx, kf_str *out);

/* The LIR targets of libkforge (registered by kf_ctx_init). */
extern const kf_target_ops kf_target_cpu, kf_target_interp;

#endif

/*
** kf_tune.h: autotuning sweeps (DESIGN.md section 5).
**
** The search space of a template for one shape is the cross product of its tunables'
** domains, filtered by the template's constraints (kf_template_check_config); --set values
** pin tunables. Each trial runs in a forked child with a time limit: generate, compile, run
** once on poisoned outputs, check against the fp64 reference (a wrong kernel is recorded as
** 'failed: wrong result' and never timed), then time it (warm-up, median of repeats, spread).
** A child that crashes or hangs is recorded as failed and the sweep goes on. Every trial is
** committed to the store as it completes; configurations already recorded are skipped, so an
** interrupted sweep resumes where it stopped.
*/
#ifndef KF_TUNE_H
#define KF_TUNE_H

#include <stdio.h>

#include "kernel.h"
#include "kf_store.h"

typedef enum { KF_STRAT_EXHAUSTIVE = 0, KF_STRAT_RANDOM = 1, KF_STRAT_EVOLVE = 2 } kf_strategy;

/* A target other than the CPU (the Ascend model, the LIR interpreter): a trial is the time
** the target's measure() gives (simulated cycles for a model), after the target's run() of the
** configuration passed the fp64 check on the same shape with the batch cut down (the
** reference family's batch_param, e.g. B=2 or M=16), instead of compiled code timed in a
** forked child. kf_sim_target_open fills one in for such a --target. */
typedef struct kf_sim_target {
  char name[64];  /* recorded as the target's name (e.g. ascend910b) */
  char desc[128]; /* recorded as the target's cpu_model (what is simulated) */
  kf_tgt tgt;     /* ops, name and view (no data: kernels use the name) */
} kf_sim_target;
/* 1 and *out when `name` opens a target other than the CPU in ctx's target set, 0 for a CPU
** target, -1 (message in ctx) when no target has that name. */
int kf_sim_target_open(kf_ctx *ctx, const char *name, kf_sim_target *out);
const char *kf_strategy_name(kf_strategy s);

typedef struct kf_tune_opts {
  kf_strategy strategy;
  int64_t budget_n;      /* new trials at most (0: no limit) */
  double budget_s;       /* wall-clock seconds for the sweep of one shape (0: no limit) */
  int shard_i, shard_n;  /* this sweep runs configurations with index % shard_n == shard_i */
  kf_emitter emitter;
  int threads;           /* 0: every online CPU */
  double trial_budget_s; /* timing budget of one trial (kf_bench budget) */
  double trial_timeout_s;/* a child still running after this is killed: 'failed: timeout' */
  int cold;              /* time with the cold rotating weight set */
  uint64_t seed;         /* inputs and the random/evolve strategies */
  int progress;          /* 0: quiet, 1: one line per trial, 2: one updating line (tty) */
  FILE *out;             /* progress and summary (NULL: stdout) */
  const kf_sim_target *sim; /* a simulated target (NULL: the CPU target named by target_name) */
  double min_bits;       /* > 0: accuracy tunables may move; only trials measuring >= min_bits
                         ** effective bits can be chosen (0: they stay as set / at default) */
  int remeasure;         /* > 0: no new trials; re-time the top K of the workload (after a merge) */
} kf_tune_opts;

void kf_tune_opts_default(kf_tune_opts *o);

typedef struct kf_tune_summary {
  int64_t space;         /* valid configurations in this shard */
  int64_t recorded;      /* of those, already in the store before this sweep */
  int64_t n_run, n_ok, n_wrong, n_crashed, n_timeout, n_compile, n_other;
  int interrupted;       /* stopped by SIGINT/SIGTERM */
  int complete;          /* every configuration of the space is recorded */
  int have_best;
  kf_trial_rec best;     /* best of all recorded trials of the workload on this target */
  int have_default;
  kf_trial_rec deflt;    /* the template default's trial */
  int64_t workload_id, target_id;
} kf_tune_summary;

/* The accuracy contract (DESIGN.md section 5). A trial may be chosen (best, lookup, lib) only
** when every accuracy tunable (template `accuracy = true`) of its configuration is the value
** pinned by `fixed`, else, without min_bits, the template default; with min_bits > 0 any value
** whose trial measured at least min_bits effective bits on the check data. */
typedef struct kf_accuracy {
  kf_template *t;
  const kf_binding *fixed; /* may be NULL */
  double min_bits;
} kf_accuracy;
int kf_accuracy_accept(void *acc, const kf_trial_rec *rec); /* a kf_trial_accept_fn */
/* "passes=2" for the accuracy tunables of config (empty when the template has none). */
void kf_accuracy_text(const kf_template *t, const kf_binding *config, char *out, size_t n);

/* Tunes one shape of one template. `fixed` (may be NULL) pins tunables. kf_tune_items: the
** sweep is one part of a sharded shapes list: *item_base counts the work items (shape,
** configuration) of the shapes before this one and is advanced past this shape's; the sweep
** runs the items whose index % shard_n == shard_i, so shards split (shape, config) pairs. */
int kf_tune(kf_ctx *ctx, kf_store *s, const char *tmpl_name, const kf_binding *shape,
            const kf_binding *fixed, const char *target_name, const kf_tune_opts *o,
            kf_tune_summary *sum);
int kf_tune_items(kf_ctx *ctx, kf_store *s, const char *tmpl_name, const kf_binding *shape,
                  const kf_binding *fixed, const char *target_name, const kf_tune_opts *o,
                  int64_t *item_base, kf_tune_summary *sum);

/* Configurations <-> the store's canonical JSON ({"kc":4096,"mr":4}, keys sorted). */
void kf_config_json(const kf_binding *config, char *out, size_t n);
int kf_config_parse(kf_ctx *ctx, const char *json, kf_binding *out);

/* The store's description of a target/workload for a built kernel. */
void kf_tune_describe_target(const kf_kernel *k, kf_emitter emitter, int threads, kf_store_target *t);
void kf_tune_describe_workload(const kf_kernel *k, kf_store_workload *w);

/* Lookup for a shape (DESIGN.md section 5): the best recorded configuration of exactly this
** shape; else the best of the nearest tuned shape of the same template and target whose
** configuration is valid for this shape; else the template's default. Distance between two
** shapes with equal categorical params (params with a domain: bits, group, ...): the sum over
** size params (M, N, K, H, S, ...) of |log2(a / b)|. */
typedef enum { KF_LOOKUP_EXACT = 0, KF_LOOKUP_NEAREST = 1, KF_LOOKUP_DEFAULT = 2 } kf_lookup_kind;
typedef struct kf_lookup_result {
  kf_lookup_kind kind;
  kf_binding config;
  char from_shape[512]; /* the tuned shape used (exact or nearest) */
  double distance, median_s;
  char note[256];       /* why nearer candidates were skipped, or why the default is used */
  double max_err_ratio, eff_bits; /* the chosen trial's check (-1: none, the default) */
} kf_lookup_result;
const char *kf_lookup_kind_name(kf_lookup_kind k);
/* tmpl must have had its target set (kf_kernel_build does that). */
typedef struct kf_lookup_opts {
  double min_bits; /* the accuracy contract (kf_accuracy) */
  int allow_stale; /* also trials of another generator version */
} kf_lookup_opts;
int kf_lookup(kf_ctx *ctx, kf_store *s, kf_template *tmpl, const kf_binding *params,
              const kf_binding *fixed, const kf_target *target, const kf_lookup_opts *lo,
              kf_lookup_result *out);

#endif

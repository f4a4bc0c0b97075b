/*
** kernel.h: one specialized kernel through every stage: template + shape + target +
** tunables -> tile IR -> LIR -> emitted code -> loaded function, and running it on a
** fixed thread pool.
*/
#ifndef KF_KERNEL_H
#define KF_KERNEL_H

#include "kf_target.h"
#include "target.h"
#include "template.h"

typedef enum { KF_EMIT_C = 0, KF_EMIT_LLVM = 1 } kf_emitter;

struct kf_kernel {
  kf_template *tmpl; /* borrowed */
  kf_binding params, config;
  kf_tgt tgt;        /* the target it is built for (ops, name, view; data not used here) */
  kf_ir_kernel *ir;
  /* what the target's lower/load made: */
  kf_lir_func *lir;  /* LIR targets (cpu-*, interp) */
  kf_target target;  /* LIR targets: the CPU description the LIR is lowered for */
  void *prog;        /* other targets' programs */
  char fn_name[160];
  kf_loaded loaded;  /* native code (cpu-*) */
  kf_emitter emitter;
};

/* The stages for one kernel on a target: template build (shape, configuration, IR, verify),
** then the target's lower. `sets` may be NULL. */
int kf_kernel_build_on(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape, const kf_binding *sets,
                       const kf_tgt *target, kf_kernel *out);
/* The first stage only: the verified IR, named, not lowered (what kf_problem_new reads). */
int kf_kernel_build_ir(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape, const kf_binding *sets,
                       const kf_tgt *target, kf_kernel *out);
/* The same for a CPU target description (kf_target_get). */
int kf_kernel_build(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape,
                    const kf_binding *sets, const kf_target *target, kf_kernel *out);
/* Makes the kernel runnable through its target (refuses targets this host cannot run). */
int kf_kernel_load(kf_ctx *ctx, kf_kernel *k, kf_emitter emitter);
/* Runs the loaded kernel on args through its target (pool may be NULL). */
int kf_kernel_run(kf_ctx *ctx, kf_kernel *k, void *const *args, kf_pool *pool);
/* Seconds per call on p's inputs through its target. */
int kf_kernel_measure(kf_ctx *ctx, kf_kernel *k, kf_problem *p, kf_pool *pool, const kf_measure_opts *o,
                      kf_measure *out);
void kf_kernel_free(kf_kernel *k);
/* "kforge VERSION: template ... shape ... tunables ... target ..." (generated code's header). */
void kf_kernel_describe(const kf_kernel *k, kf_str *out);

/* Argument i of the kernel (in template declaration order). */
int kf_kernel_n_args(const kf_kernel *k);
const kf_ir_buf *kf_kernel_arg(const kf_kernel *k, int i);

/* A fixed pool of worker threads (created once; no thread per call). */
kf_pool *kf_pool_new(int n_threads); /* n_threads <= 0: number of online CPUs */
void kf_pool_free(kf_pool *p);
int kf_pool_size(const kf_pool *p);

/* Runs the kernel over its whole parallel range, split into contiguous chunks across the
** pool (pool may be NULL: run on the calling thread). Workspaces are allocated per thread
** and cached in the kernel runner. */
typedef struct kf_runner kf_runner;
kf_runner *kf_runner_new(const kf_kernel *k, kf_pool *pool); /* NULL: no memory for the workspaces */
void kf_runner_run(kf_runner *r, void *const *args);
void kf_runner_free(kf_runner *r);

#endif

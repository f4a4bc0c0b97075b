/*
** kernel.h: one specialized kernel through every stage: template + shape + target +
** tunables -> tile IR -> LIR -> emitted code -> loaded function, and running it on a
** fixed thread pool.
*/
#ifndef KF_KERNEL_H
#define KF_KERNEL_H

#include "template.h"
#include "target.h"

typedef enum { KF_EMIT_C = 0, KF_EMIT_LLVM = 1 } kf_emitter;

typedef struct kf_kernel {
  kf_template *tmpl; /* borrowed */
  kf_binding params, config;
  kf_target target;
  kf_ir_kernel *ir;
  kf_lir_func *lir;
  char fn_name[160];
  kf_loaded loaded;
  kf_emitter emitter;
} kf_kernel;

/* Builds IR and LIR (no code generation yet). `sets` may be NULL. */
int kf_kernel_build(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape,
                    const kf_binding *sets, const kf_target *target, kf_kernel *out);
/* Generates code with the chosen emitter and loads it (refuses targets this host cannot run). */
int kf_kernel_load(kf_ctx *ctx, kf_kernel *k, kf_emitter emitter);
void kf_kernel_free(kf_kernel *k);

/* Argument i of the kernel (in template declaration order). */
int kf_kernel_n_args(const kf_kernel *k);
const kf_ir_buf *kf_kernel_arg(const kf_kernel *k, int i);

/* A fixed pool of worker threads (created once; no thread per call). */
typedef struct kf_pool kf_pool;
kf_pool *kf_pool_new(int n_threads); /* n_threads <= 0: number of online CPUs */
void kf_pool_free(kf_pool *p);
int kf_pool_size(const kf_pool *p);

/* Runs the kernel over its whole parallel range, split into contiguous chunks across the
** pool (pool may be NULL: run on the calling thread). Workspaces are allocated per thread
** and cached in the kernel runner. */
typedef struct kf_runner kf_runner;
kf_runner *kf_runner_new(const kf_kernel *k, kf_pool *pool);
void kf_runner_run(kf_runner *r, void *const *args);
void kf_runner_free(kf_runner *r);

#endif

/*
** cpu_ops.c: the CPU targets and the LIR interpreter target behind the target interface
** (gen/kf_target.h). Both lower the tile IR to LIR with the CPU lowering; "cpu-*" then emits
** C or LLVM and runs native code on the thread pool, "interp" runs the LIR through
** gen/lir_interp.c (slow, every access bounds-checked: the oracle, as a target).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "bench.h"
#include "lir_interp.h"
#include "lower.h"

kf_target_view kf_cpu_view(const kf_target *cpu) {
  /* AVX2 has 16 ymm; AVX-512 32 zmm; the portable path (16 xmm) is given 32 since n16
  ** weight packing needs 4 xmm per tile row: there the compiler spills, correctness counts */
  kf_target_view v = {cpu->name, cpu->vl32, cpu->has_vnni, cpu->has_bf16, cpu->isa == KF_ISA_AVX2 ? 16 : 32};
  return v;
}

void kf_cpu_tgt(const kf_target *cpu, kf_tgt *out) {
  memset(out, 0, sizeof *out);
  out->ops = &kf_target_cpu;
  snprintf(out->name, sizeof out->name, "%s", cpu->name);
  out->view = kf_cpu_view(cpu);
  out->data = (void *)cpu;
}

/* ---- shared by both LIR targets ---- */

static int lir_lower(kf_ctx *ctx, kf_kernel *k, const kf_target *cpu) {
  k->target = *cpu;
  kf_str hdr = {0};
  kf_kernel_describe(k, &hdr);
  int rc = kf_lower_cpu(ctx, k->ir, &k->target, k->fn_name, hdr.data, &k->lir);
  kf_str_free(&hdr);
  return rc;
}

static void lir_release(kf_kernel *k) {
  kf_loaded_release(&k->loaded);
  kf_lir_func_free(k->lir);
  k->lir = NULL;
}

static int lir_emit(kf_ctx *ctx, const kf_kernel *k, const char *kind, const char *path, kf_str *out) {
  if (!strcmp(kind, "lir")) {
    kf_lir_print(k->lir, out);
    return KF_OK;
  }
  if (!strcmp(kind, "c")) return kf_emit_c(ctx, k->lir, &k->target, out);
  if (!strcmp(kind, "ll")) return kf_llvm_emit_string(ctx, k->lir, &k->target, KF_LLVM_LL, out);
  if (!strcmp(kind, "s")) return kf_llvm_emit_string(ctx, k->lir, &k->target, KF_LLVM_ASM, out);
  if (!strcmp(kind, "h")) {
    kf_emit_header(k->lir, &k->target, out);
    return KF_OK;
  }
  if (!strcmp(kind, "o")) {
    if (!path) return kf_err(ctx, KF_EINVAL, "an object file needs an output path");
    return kf_llvm_emit_file(ctx, k->lir, &k->target, KF_LLVM_OBJ, path);
  }
  return kf_err(ctx, KF_EUNSUP, "target %s cannot emit '%s' (lir, c, ll, s, h, o)", k->tgt.name, kind);
}

/* ---- cpu-* ---- */

static int cpu_open(kf_ctx *ctx, const char *name, kf_tgt *out) {
  if (name && *name && strncmp(name, "cpu", 3) && strcmp(name, "host")) return KF_EUNSUP;
  kf_target *cpu = kf_xmalloc(sizeof *cpu);
  int rc = kf_target_get(ctx, name, cpu);
  if (rc) {
    free(cpu);
    return rc;
  }
  kf_cpu_tgt(cpu, out);
  return KF_OK;
}

static void cpu_close(kf_tgt *t) { free(t->data); }

static void cpu_describe(const kf_tgt *t, kf_str *out) {
  kf_str_printf(out, "%s on ", t->name);
  kf_host_describe(out);
}

static int cpu_runnable(kf_ctx *ctx, const kf_tgt *t) {
  kf_target cpu;
  const char *why = NULL;
  int rc = kf_target_get(ctx, t->name, &cpu);
  if (!rc && !kf_target_runnable(&cpu, &why))
    rc = kf_err(ctx, KF_EUNSUP, "target %s cannot run on this machine (no %s)", t->name, why);
  return rc;
}

static int cpu_lower(kf_ctx *ctx, kf_kernel *k) {
  kf_target cpu;
  int rc = kf_target_get(ctx, k->tgt.name, &cpu);
  return rc ? rc : lir_lower(ctx, k, &cpu);
}

static int cpu_load(kf_ctx *ctx, kf_kernel *k, int emitter) {
  kf_loaded_release(&k->loaded);
  k->emitter = emitter ? KF_EMIT_LLVM : KF_EMIT_C;
  if (k->emitter == KF_EMIT_LLVM) return kf_llvm_jit(ctx, k->lir, &k->target, &k->loaded);
  kf_str src = {0};
  int rc = kf_emit_c(ctx, k->lir, &k->target, &src);
  if (!rc) rc = kf_cc_load(ctx, src.data, k->fn_name, &k->target, &k->loaded);
  kf_str_free(&src);
  return rc;
}

static int no_workspace(kf_ctx *ctx, const kf_kernel *k) {
  return kf_err(ctx, KF_ENOMEM, "%s: no memory for the kernel's workspace (%lld bytes per thread: its scratch buffers)",
                kf_template_path(k->tmpl), (long long)k->lir->ws_bytes);
}

static int cpu_run(kf_ctx *ctx, kf_kernel *k, void *const *args, kf_pool *pool) {
  if (!k->loaded.fn) return kf_err(ctx, KF_EINVAL, "kernel %s is not loaded", k->fn_name);
  kf_runner *r = kf_runner_new(k, pool);
  if (!r) return no_workspace(ctx, k);
  kf_runner_run(r, args);
  kf_runner_free(r);
  return KF_OK;
}

static int cpu_measure(kf_ctx *ctx, kf_kernel *k, kf_problem *p, kf_pool *pool, const kf_measure_opts *o,
                       kf_measure *out) {
  if (!k->loaded.fn) return kf_err(ctx, KF_EINVAL, "kernel %s is not loaded", k->fn_name);
  kf_runner *r = kf_runner_new(k, pool);
  if (!r) return no_workspace(ctx, k);
  kf_bench_stats st;
  int rc = kf_problem_time(ctx, p, r, kf_kernel_n_args(k), o->cold, o->min_runs, o->budget_s, &st);
  kf_runner_free(r);
  if (rc) return rc;
  out->median_s = st.median_s;
  out->min_s = st.min_s;
  out->spread = st.spread;
  out->n_runs = st.n_runs;
  return KF_OK;
}

const kf_target_ops kf_target_cpu = {
    "cpu", "cpu-host, cpu-generic, cpu-avx2, cpu-avx2-vnni, cpu-avx512, cpu-avx512-vnni",
    cpu_open, cpu_close, cpu_describe, cpu_runnable, cpu_lower, lir_emit, cpu_load, cpu_run, cpu_measure,
    lir_release};

/* ---- interp: the portable LIR, run by the interpreter on the calling thread ---- */

static int interp_open(kf_ctx *ctx, const char *name, kf_tgt *out) {
  if (!name || strcmp(name, "interp")) return KF_EUNSUP;
  kf_target cpu;
  int rc = kf_target_get(ctx, "cpu-generic", &cpu);
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  out->ops = &kf_target_interp;
  snprintf(out->name, sizeof out->name, "interp");
  out->view = kf_cpu_view(&cpu);
  out->view.name = "interp";
  return KF_OK;
}

static void interp_close(kf_tgt *t) { (void)t; }

static void interp_describe(const kf_tgt *t, kf_str *out) {
  kf_str_printf(out, "%s: the cpu-generic LIR run by the LIR interpreter (bounds-checked, slow)", t->name);
}

static int interp_runnable(kf_ctx *ctx, const kf_tgt *t) {
  (void)ctx;
  (void)t;
  return KF_OK;
}

static int interp_lower(kf_ctx *ctx, kf_kernel *k) {
  kf_target cpu;
  int rc = kf_target_get(ctx, "cpu-generic", &cpu);
  return rc ? rc : lir_lower(ctx, k, &cpu);
}

static int interp_load(kf_ctx *ctx, kf_kernel *k, int emitter) {
  (void)ctx;
  (void)k;
  (void)emitter;
  return KF_OK;
}

static int interp_run(kf_ctx *ctx, kf_kernel *k, void *const *args, kf_pool *pool) {
  (void)pool;
  size_t bytes = (size_t)((k->lir->ws_bytes + 63) & ~(int64_t)63);
  void *ws = bytes ? aligned_alloc(64, bytes) : NULL;
  if (bytes && !ws) return kf_err(ctx, KF_ENOMEM, "interp: no memory for a %zu-byte workspace", bytes);
  if (ws) memset(ws, 0, bytes);
  int rc = kf_lir_interp_run(ctx, k->lir, args, 0, k->lir->par_total, ws);
  free(ws);
  return rc;
}

static int interp_measure(kf_ctx *ctx, kf_kernel *k, kf_problem *p, kf_pool *pool, const kf_measure_opts *o,
                          kf_measure *out) {
  (void)o;
  if (!p) return kf_err(ctx, KF_EUNSUP, "interp: timing needs the problem's inputs");
  double t0 = kf_now();
  int rc = interp_run(ctx, k, kf_problem_args(p), pool);
  out->median_s = out->min_s = kf_now() - t0;
  out->n_runs = 1;
  return rc;
}

const kf_target_ops kf_target_interp = {
    "interp", "interp", interp_open, interp_close, interp_describe, interp_runnable, interp_lower, lir_emit,
    interp_load, interp_run, interp_measure, lir_release};

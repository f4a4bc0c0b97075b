/*
** target.h: the CPU targets (targets/cpu): what the lowering and the emitters know of an ISA
** level, and their entry points. The core reaches these through kf_target_cpu and
** kf_target_interp (gen/kf_target.h); only the CPU's own files and its tests use this header.
**
** A CPU target is an ISA level plus flags. Every level can be forced (--target), so tests
** run each path this machine supports; a level the host lacks is refused when *running*
** (check/bench), never when only generating code.
*/
#ifndef KF_TARGET_H
#define KF_TARGET_H

#include "kf_target.h"
#include "lir.h"

typedef enum {
  KF_ISA_GENERIC, /* portable: baseline x86-64 (SSE2) code, no special instructions */
  KF_ISA_AVX2,    /* AVX2 + FMA (+ AVX-VNNI when has_vnni) */
  KF_ISA_AVX512   /* AVX-512 F/BW/VL (+ VNNI, + BF16 when flagged) */
} kf_isa;

typedef struct kf_target {
  const char *name;   /* "cpu-generic", "cpu-avx2", "cpu-avx512", "cpu-avx512-vnni", "cpu-host" */
  kf_isa isa;
  int has_vnni;       /* vpdpbusd available (AVX512_VNNI for AVX512, AVX-VNNI for AVX2) */
  int has_bf16;       /* vdpbf16ps available (AVX512_BF16) */
  int vl32;           /* lanes of a 32-bit vector register: 4 (generic), 8 (AVX2), 16 (AVX-512) */
  const char *llvm_cpu;      /* CPU name for LLVM's TargetMachine */
  const char *llvm_features; /* feature string for LLVM, e.g. "+avx2,+fma" */
  const char *cc_flags;      /* flags for the C compiler */
} kf_target;

/* Looks up a target by name ("cpu-host" = best for this machine). KF_EINVAL lists names. */
int kf_target_get(kf_ctx *ctx, const char *name, kf_target *out);
/* Whether this machine can run code for t; if not, *why says what is missing. */
int kf_target_runnable(const kf_target *t, const char **why);
/* The generic target handle for a CPU description (ops = kf_target_cpu). */
void kf_cpu_tgt(const kf_target *cpu, kf_tgt *out);
/* What templates see of a CPU target (vl, vnni, bf16, registers). */
kf_target_view kf_cpu_view(const kf_target *cpu);
/* All CPU target names, NULL-terminated. */
extern const char *const kf_target_names[];
/* Host CPU description (model name, detected features) for reports and the tuner. */
void kf_host_describe(kf_str *out);

/* The kernel entry point every emitter produces (see lir.h). */
typedef void (*kf_kernel_fn)(void *const *args, int64_t par_lo, int64_t par_hi, void *ws);

/* A loaded kernel: a function pointer plus whatever keeps its code alive. */
typedef struct kf_loaded kf_loaded;
struct kf_loaded {
  kf_kernel_fn fn;
  void (*release)(kf_loaded *self);
  void *impl;
};
void kf_loaded_release(kf_loaded *k);

/* C emitter (targets/cpu/emit_c.c): LIR -> C11 source text (with a prelude of inline
** helpers using the target's intrinsics). */
int kf_emit_c(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_str *out);
/* Compiles C source with the system compiler into a shared object and dlopen()s it. */
int kf_cc_load(kf_ctx *ctx, const char *c_source, const char *fn_name, const kf_target *t,
               kf_loaded *out);

/* LLVM emitter (targets/cpu/emit_llvm.c), LLVM-C 19. */
typedef enum { KF_LLVM_LL, KF_LLVM_ASM, KF_LLVM_OBJ } kf_llvm_file;
int kf_llvm_emit_file(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_llvm_file kind,
                      const char *path);
int kf_llvm_emit_string(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_llvm_file kind,
                        kf_str *out); /* LL or ASM text */
int kf_llvm_jit(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_loaded *out);

/* AOT header for a kernel: signature, argument table, workspace size. */
void kf_emit_header(const kf_lir_func *f, const kf_target *t, kf_str *out);

#endif

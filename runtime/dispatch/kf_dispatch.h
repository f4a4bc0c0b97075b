/*
** kf_dispatch.h: the runtime side of `kforge lib` (DESIGN.md section 7).
**
** A library built by `kforge lib` holds AOT-compiled kernels specialized for tuned shapes
** (for one or several CPU targets) and one dispatch function per kernel family; the
** dispatch functions pick the best variant the host CPU runs (cpuid/xgetbv, checked once),
** run it with kf_dispatch_run, and any other shape with a generic kernel from this file.
** The generic kernels take their shape at run time, use the same argument layouts as the
** templates and are plain C: correct and simple, not fast.
**
** Threads: one persistent pool, created by kf_dispatch_init or lazily by the first call that
** asks for more than one thread, ended by kf_dispatch_shutdown. Workspaces are the pool's,
** grown when a kernel needs more (or the caller's, kf_dispatch_set_workspace): after the first
** call of a kernel, calls create no thread and allocate nothing. Calls from several threads
** are serialized on the pool.
**
** KFORGE_VERBOSE=dispatch (or all) prints one line per call on stderr: the family, the
** shape and the variant that ran. KFORGE_ISA=<target> (e.g. cpu-avx2) makes the dispatch
** functions prefer that target's variants (if the host runs them).
**
** Depends on libc, libm and pthreads only: no Lua, LLVM, SQLite or other kforge code.
*/
#ifndef KF_DISPATCH_H
#define KF_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The entry point every kforge kernel has: iterations [par_lo, par_hi) of its parallel
** loop, with a private workspace of the kernel's WS_BYTES (64-byte aligned). */
typedef void (*kf_dispatch_kernel_fn)(void *const *args, int64_t par_lo, int64_t par_hi, void *ws);

/* Creates the pool with n_threads - 1 workers (n_threads <= 0: the online CPUs). 0, or -1 when
** threads cannot be created (then calls run on the calling thread). A second call with
** another size replaces the pool. */
int kf_dispatch_init(int n_threads);
/* Joins the workers and frees the pool's workspaces; a later call creates them again. */
void kf_dispatch_shutdown(void);
/* Threads the pool has (1 when there is none). */
int kf_dispatch_pool_threads(void);
/* A caller workspace (64-byte aligned) used for kernel workspaces and generic scratch while it
** is large enough; NULL: back to the pool's own. */
void kf_dispatch_set_workspace(void *ws, size_t bytes);

/* Runs fn over [0, par_total) split into min(n_threads, pool threads) contiguous chunks, each
** with its own workspace of ws_bytes. 0, or -1 when no workspace can be had (nothing ran). */
int kf_dispatch_run(kf_dispatch_kernel_fn fn, void *const *args, int64_t par_total, size_t ws_bytes,
                    int n_threads);

/* CPU features for picking variants (cpuid + xgetbv: the OS saves the vector state). */
enum {
  KF_CPU_AVX2 = 1 << 0, /* AVX, AVX2, FMA, F16C, BMI2, OS saves YMM */
  KF_CPU_AVX512 = 1 << 1, /* F, BW, VL, DQ, CD, OS saves ZMM/opmask */
  KF_CPU_AVX512_VNNI = 1 << 2,
  KF_CPU_AVX512_BF16 = 1 << 3,
  KF_CPU_AVX_VNNI = 1 << 4
};
/* The host's features, detected once; KFORGE_ISA does not change them. */
unsigned kf_dispatch_cpu_features(void);
/* The target name KFORGE_ISA or kf_dispatch_force_isa asks for ("" when none). */
const char *kf_dispatch_forced_isa(void);
/* Prefer the variants of this target (NULL or "": the best the host runs). */
void kf_dispatch_force_isa(const char *target);
/* Whether KFORGE_VERBOSE asks for dispatch lines. */
int kf_dispatch_verbose(void);

/* Generic gemm_q kernels: y[M][N] (f32) = x[M][K] (bf16 bits) * W[N][K]^T, W quantized to
** `bits` (8 or 4) signed codes stored offset-binary, per channel (group = 0) or per K-group
** of `group` columns, with scales w_scale[n_groups][n_pad] (n_pad = N rounded up to 16,
** n_groups = 1 per channel else ceil(K / group)), packed as runtime/quant/kf_quant.h lays
** out N16K4 (msd) or N16K1 (dequant), with k_pad = K rounded up to 8.
**
** MSD (DESIGN.md section 4): each row of x (or each act_group block of it, act_group = 0:
** the whole row) is split into `passes` int8 parts, s1 = max|x|/127, q1 = round(x/s1),
** s_p = s1/254^(p-1) on the residual, and y = sum_k (sum_p s_p q_p[k]) W[n][k].
** Dequant: y = sum_k x[k] * (q s) with the weight rounded to bf16 first when wround != 0.
** Returns 0, or -1 for a bad argument (sizes <= 0, bits not 4/8, group not a multiple of 8,
** passes not 1..4, NULL pointers) or when scratch memory cannot be had. */
int kf_generic_msd_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t act_group,
                        int64_t passes, const uint16_t *x, const uint8_t *w, const float *w_scale, float *y,
                        int n_threads);
int kf_generic_dequant_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t wround,
                            const uint16_t *x, const uint8_t *w, const float *w_scale, float *y,
                            int n_threads);

/* Generic decode attention in fp64 (one query token per sequence), scale 1/sqrt(D):
** kf_generic_fa_decode: q[B*H][D], k[B*HKV][S][D], v[B*HKV][S][DV] (bf16 bits), query head h reads kv
** head h / (H/HKV); HKV = 0 means H, DV = 0 means D. mla_decode: q[B*H][D], kv[B][S][D], the
** values are kv's first DV columns. out[B*H][DV] f32. Returns 0, or -1 for a bad argument. */
int kf_generic_fa_decode(int64_t B, int64_t H, int64_t HKV, int64_t S, int64_t D, int64_t DV, const uint16_t *q,
                         const uint16_t *k, const uint16_t *v, float *out, int n_threads);
int kf_generic_mla_decode(int64_t B, int64_t H, int64_t S, int64_t D, int64_t DV, const uint16_t *q,
                          const uint16_t *kv, float *out, int n_threads);

#ifdef __cplusplus
}
#endif

#endif

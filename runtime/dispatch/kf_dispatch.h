/*
** kf_dispatch.h: the runtime side of `kforge lib` (DESIGN.md section 7).
**
** A library built by `kforge lib` holds AOT-compiled kernels specialized for tuned shapes
** and one dispatch function per kernel family; the dispatch functions run a tuned kernel
** with kf_dispatch_run, and any other shape with a generic kernel from this file. The
** generic kernels take their shape at run time, use the same argument layouts as the
** templates and are plain C: correct and simple, not fast.
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

/* Runs fn over [0, par_total) split into n_threads contiguous chunks (n_threads <= 1: on the
** calling thread), each with its own workspace of ws_bytes. A caller workspace `ws` of
** ws_given bytes (64-byte aligned) is used by the first chunk when large enough; the others
** are allocated. Returns 0, or -1 when memory or threads cannot be had (then nothing ran). */
int kf_dispatch_run(kf_dispatch_kernel_fn fn, void *const *args, int64_t par_total, size_t ws_bytes,
                    int n_threads, void *ws, size_t ws_given);

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
** passes not 1..4, NULL pointers) or when threads cannot be started. */
int kf_generic_msd_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t act_group,
                        int64_t passes, const uint16_t *x, const uint8_t *w, const float *w_scale, float *y,
                        int n_threads);
int kf_generic_dequant_gemm(int64_t M, int64_t N, int64_t K, int64_t bits, int64_t group, int64_t wround,
                            const uint16_t *x, const uint8_t *w, const float *w_scale, float *y,
                            int n_threads);

#ifdef __cplusplus
}
#endif

#endif

/*
** lir_samples.h: hand-built LIR kernels that together exercise every LIR op, the scalar
** types, lane counts 1/4/8/16/32/64, loops (zero-trip, parallel range), if/else,
** LOADN/STOREN with every n, edge values (NaN, +-Inf, -0, denormals, rounding ties,
** int32 wrap in DPBUSD, shifts of negatives), and two realistic register-blocked GEMM
** tiles (u8 x s8 DPBUSD and f32 FMA) plus a bf16 DPBF16 dot product.
**
** They are the shared test suite of the LIR emitters (C source and LLVM) against the LIR
** interpreter (gen/lir_interp.h), which is the oracle. How a harness uses sample i:
**
**   kf_lir_func *f = kf_lir_sample_build(i, vl32);        // vl32: 4, 8 or 16
**   void *want[f->n_args], *got[f->n_args];
**   kf_lir_sample_inputs(i, f, want);                     // deterministic, same every call
**   kf_lir_sample_inputs(i, f, got);
**   ws = 64-byte aligned, max(f->ws_bytes, 64) bytes (contents do not matter: every sample
**        writes its local buffers before reading them)
**   kf_lir_interp_run(ctx, f, want, 0, f->par_total, ws);
**   kernel(got, 0, f->par_total, ws);                     // or in several [lo, hi) pieces:
**                                                          // the result must not depend on it
**   kf_lir_sample_compare(i, f, got, want, msg, sizeof msg) == 0   (else msg says where)
**   kf_lir_sample_free_inputs(f, got); ... kf_lir_func_free(f);
**
** Output buffers are pre-filled with a sentinel pattern, so a store beyond its range
** (e.g. STOREN writing more than n lanes) shows up as a mismatch.
**
** Comparison: bit-exact for integers; for floats, bit-exact (so -0 != +0) except that any
** two NaNs compare equal (payloads may differ with operand order). The only samples with a
** tolerance are those using DPBF16 on accumulating data ("dpbf16_dot"): lir.h allows an
** emulation to round differently, so they accept |got - want| <= (2 * steps + 2) * 2^-24 *
** sum|terms| + 2 * FLT_MIN (bound computed from the inputs, printed on failure).
**
** Semantic choices the samples rely on (the interpreter implements them; both emitters
** must agree):
**  - MIN(a, b) = a < b ? a : b and MAX(a, b) = a > b ? a : b, also for floats: if either
**    operand is NaN, or both are zeros, the result is b (x86 minps/maxps behaviour).
**  - REDUCE_MAX is the left fold r = MAX(r, x[i]) for i = 1..L-1 starting at r = x[0]
**    (only matters for NaN lanes and signed zeros). REDUCE_ADD of floats: the samples use
**    data whose partial sums are exact, so any association order gives the same bits.
**  - CVT f32->bf16: round to nearest even; NaN -> quiet NaN (upper 16 bits | 0x0040);
**    f32 denormal inputs -> signed zero (as vcvtneps2bf16, which treats denormals as zero).
**  - FOR evaluates lo and hi once, before the first iteration.
**  - No sample reads a variable before assigning it, or local memory before writing it.
**  - Argument buffers are allocated so that their last element ends a page followed by an
**    unmapped guard page: touching memory beyond a buffer (e.g. LOADN/STOREN past n)
**    crashes the harness instead of passing silently.
*/
#ifndef KF_LIR_SAMPLES_H
#define KF_LIR_SAMPLES_H

#include <stddef.h>

#include "lir.h"

/* Number of samples. */
int kf_lir_sample_count(void);
/* Short name of sample i ("arith_i32x8", "gemm_u8s8_dpbusd", ...). */
const char *kf_lir_sample_name(int i);
/* Builds sample i for a target whose 32-bit vectors have vl32 lanes (4, 8 or 16); the
** realistic kernels pick their register blocking from it, the op samples cover fixed
** lane counts. The result passes kf_lir_verify. Caller frees with kf_lir_func_free. */
kf_lir_func *kf_lir_sample_build(int i, int vl32);
/* Allocates and fills one buffer per argument of f (args[0..f->n_args)), deterministic. */
void kf_lir_sample_inputs(int i, const kf_lir_func *f, void **args);
void kf_lir_sample_free_inputs(const kf_lir_func *f, void **args);
/* 0 when got matches want (every argument buffer, see the rules above); otherwise
** non-zero and msg names the buffer, element, both values (and the bound if any). */
int kf_lir_sample_compare(int i, const kf_lir_func *f, void **got, void **want, char *msg,
                          size_t msglen);

#endif

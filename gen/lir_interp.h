/*
** lir_interp.h: a direct evaluator of LIR (lir.h), lane by lane, used as the oracle that
** both emitters (C source, LLVM) are tested against. Slow on purpose: every op is written
** the obvious way, and every load/store is bounds-checked against its buffer's n_elems.
**
** Semantics where lir.h leaves a choice (the emitters implement the same):
**  - MIN(a, b) = a < b ? a : b, MAX(a, b) = a > b ? a : b (for floats: b if either is NaN
**    or both are zeros, like x86 minps/maxps); REDUCE_MAX is the left fold of MAX over the
**    lanes; REDUCE_ADD sums lanes 0..L-1 in order (floats: emitters may reassociate).
**  - CVT f32->bf16: round to nearest even, NaN -> quiet NaN, f32 denormals -> signed zero
**    (as vcvtneps2bf16). CVT float->int of a value out of the target's range is an error.
**  - DPBF16: lane i = (a0[i] + a1[2i+1]*a2[2i+1]) + a1[2i]*a2[2i], each step one f32
**    rounding (products are exact), the order of vdpbf16ps (which also flushes denormals;
**    this evaluator does not).
**  - Integer ADD/SUB/MUL/NEG/ABS/SHL wrap; DIV by zero or INT_MIN / -1, shift counts
**    outside [0, bits) and LOADN/STOREN counts outside [0, lanes] are errors.
**  - FOR evaluates lo and hi once before the first iteration; variables start as zero
**    except the par_lo / par_hi variables.
** Every error is KF_EINVAL with a message naming the function, the buffer/op and index.
*/
#ifndef KF_LIR_INTERP_H
#define KF_LIR_INTERP_H

#include "lir.h"

/* Runs f on args (one pointer per argument buffer) for the parallel range [par_lo, par_hi)
** with workspace ws (f->ws_bytes, may be NULL when ws_bytes is 0). Verifies f first. */
int kf_lir_interp_run(kf_ctx *ctx, const kf_lir_func *f, void *const *args, int64_t par_lo,
                      int64_t par_hi, void *ws);

#endif

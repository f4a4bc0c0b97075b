/*
** timing.h: a loaded kernel as a timed callable (kf_bench_fn) on its problem's inputs, with the
** weights warm (one copy) or cold (a rotating set of copies at least twice the LLC), for
** kf_bench_run and the interleaved kf_bench_interleave; and what bounds a kernel's time on the
** roofline (gen/peak.h). kf_problem_time (check.h) is the one-kernel form.
*/
#ifndef KF_TIMING_H
#define KF_TIMING_H

#include "check.h"
#include "peak.h"

typedef struct kf_timed kf_timed;

/* The problem's arguments are copied; the weight argument rotates through the copies. */
int kf_timed_new(kf_ctx *ctx, kf_problem *p, kf_runner *r, int n_args, int cold, kf_timed **out);
int kf_timed_call(void *timed, int64_t iter); /* a kf_bench_fn: one run of the kernel */
int kf_timed_copies(const kf_timed *t);
void kf_timed_free(kf_timed *t);

/* The work of one call for the roofline: the operations on the arithmetic that bounds it (MSD:
** passes x 2MNK int8 ops, from the IR's int8 mma; dequant GEMMs and everything else: f32
** flops), and the bytes it reads and writes, all from the level where its weights live (warm:
** the smallest level of the peak measurement whose buffer holds them; cold: DRAM). */
typedef struct kf_work {
  kf_peak_kind compute;  /* KF_PEAK_INT8, KF_PEAK_BF16 or KF_PEAK_F32 */
  double ops;
  kf_peak_kind memory;   /* KF_PEAK_L2 .. KF_PEAK_DRAM */
  double bytes;
} kf_work;
void kf_kernel_work(const kf_kernel *k, const kf_problem *p, int cold, const kf_peaks *pk, kf_work *w);
/* Fraction of the binding limit: max(ops / compute peak, bytes / bandwidth) / seconds; which
** limit binds goes to *bound (its kind). 0 when the peaks are unknown. */
double kf_work_roof(const kf_work *w, const kf_peaks *pk, double seconds, kf_peak_kind *bound);

#endif

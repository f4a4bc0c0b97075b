/*
** bench.h: the library's timing helpers, used by `kforge bench`, the tuner and the peers (bench/).
**
**   - kf_bench_run: warm-up, then repeated timed calls of a callable until a run count or a time
**     budget is reached; median, min, p10/p90 and spread of the per-call wall times.
**   - kf_bench_interleave: several contenders timed round-robin in short rounds, so that a noisy
**     host (other jobs on the same cores, clock changes) slows them alike: each one's median and
**     the median and interquartile range of its per-round time ratio to the first contender.
**   - kf_bench_llc_bytes: size of the last-level cache of this machine (sysfs, then sysconf).
**   - kf_bench_rot: the "cold weights" rotating set — distinct copies of a buffer whose total is
**     at least 2× the detected LLC (never a constant), so a call that uses copy i % n reads its
**     weights from memory, not from a cache the previous call warmed (DESIGN.md §3.1).
**
** No global state; nothing here is thread-safe across one kf_bench_rot.
*/
#ifndef KF_BENCH_H
#define KF_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic wall clock in seconds. */
double kf_bench_now(void);

/* The function being timed. `iter` counts every call (warm-up included) from 0, so a cold run
** can use copy iter % n_copies. Returns 0 on success; anything else stops the run and is
** passed back by kf_bench_run. */
typedef int (*kf_bench_fn)(void *arg, int64_t iter);

typedef struct kf_bench_opts {
  int warmup;      /* untimed calls first (0 = 1) */
  int min_runs;    /* timed calls at least (0 = 3) */
  int max_runs;    /* timed calls at most (0 = 1000) */
  double budget_s; /* keep timing until this much time was spent in timed calls (0 = 1 s) */
} kf_bench_opts;

typedef struct kf_bench_stats {
  double median_s, min_s, max_s, mean_s, p10_s, p25_s, p75_s, p90_s;
  double spread; /* (p90 − p10) / median: relative run-to-run spread */
  int n_runs;
} kf_bench_stats;

/* Times fn(arg, iter). opts may be NULL (defaults). Returns 0, the callable's non-zero status,
** or -1 for bad arguments / no memory. */
int kf_bench_run(kf_bench_fn fn, void *arg, const kf_bench_opts *opts, kf_bench_stats *out);

/* Statistics of n ≥ 1 samples (seconds); the array is sorted in place. Percentiles interpolate
** linearly between order statistics. */
void kf_bench_stats_of(double *samples, int n, kf_bench_stats *out);

/* ---- interleaved timing ----
** One round runs every contender once in turn, each for `calls` consecutive calls (its segment;
** calls is calibrated in the warm-up so a segment lasts about round_s). The order rotates from
** round to round (round r starts with contender r mod n), so no contender always follows the
** same one. A contender's sample of one round is its segment time / calls; its per-round ratio is
** that sample / contender 0's sample of the same round. settle_s is untimed idle time before each
** of the contender's segments (other runtimes' worker threads spin for a while after a call:
** OpenMP, OpenBLAS; on a small host they would slow the next contender). */
typedef struct kf_bench_contender {
  kf_bench_fn fn;
  void *arg;
  double settle_s;
} kf_bench_contender;

typedef struct kf_bench_iopts {
  int warmup;       /* untimed calls of each contender first (0 = 2) */
  int min_rounds;   /* (0 = 5) */
  int max_rounds;   /* (0 = 100000) */
  double round_s;   /* target length of one segment (0 = 0.02 s) */
  double budget_s;  /* rounds continue until every contender has this much timed time (0 = 1 s) */
} kf_bench_iopts;

typedef struct kf_bench_iresult {
  kf_bench_stats st;    /* over the per-round samples (seconds per call) */
  double ratio_median;  /* per-round ratio to contender 0 (1 for contender 0 itself) */
  double ratio_q1, ratio_q3;
  double ratio_spread;  /* (q3 − q1) / median of the ratios: how far the ratio can be trusted */
  int calls;            /* calls per segment */
  int n_rounds;
} kf_bench_iresult;

/* Times n ≥ 1 contenders interleaved; out[i] for c[i]. Returns 0, a callable's non-zero status
** (which stops the run; *failed, if not NULL, gets its index), or -1 for bad arguments / no
** memory. */
int kf_bench_interleave(const kf_bench_contender *c, int n, const kf_bench_iopts *opts,
                        kf_bench_iresult *out, int *failed);

/* Size in bytes of the largest (last-level) data or unified cache of CPU 0: the highest `level`
** under /sys/devices/system/cpu/cpu0/cache/index*, else sysconf(_SC_LEVEL3/2_CACHE_SIZE).
** Returns 0 when nothing could be detected (callers must then say so, not guess silently).
** `source` (may be NULL) receives a short description of where the number came from. */
int64_t kf_bench_llc_bytes(char *source, size_t source_len);

/* CPU model name from /proc/cpuinfo ("model name"), or "unknown". */
void kf_bench_cpu_model(char *buf, size_t len);
/* The GEMM-relevant ISA features of /proc/cpuinfo "flags" present on this CPU, space-separated
** (avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 avx_vnni amx_tile amx_int8 amx_bf16), or
** "unknown". Recorded with bench results (DESIGN.md §3.1: the CPU under kforge varies). */
void kf_bench_cpu_flags(char *buf, size_t len);

/* Rotating set of copies of one buffer. cold = 0: a single copy (warm: the same bytes every call).
** cold = 1: n = max(1, ceil(2·llc_bytes / bytes)) distinct copies (at a 64-byte-aligned stride
** in one allocation, each written once so its pages exist), total ≥ 2× LLC. llc_bytes ≤ 0 means
** "detect"; when detection fails, kf_bench_rot_init fails with a message instead of assuming a
** size. */
typedef struct kf_bench_rot {
  void *base;       /* one allocation holding every copy */
  void **copies;
  int n_copies;
  size_t bytes;     /* of one copy */
  int64_t llc_bytes; /* what the set was sized against (0 for warm) */
} kf_bench_rot;

/* Copies `bytes` from src into each copy (64-byte aligned). *rot is overwritten (free a previous
** set first). Returns 0, or -1 with a message in err (no memory, LLC unknown, bytes = 0); on
** failure *rot is empty. */
int kf_bench_rot_init(kf_bench_rot *rot, const void *src, size_t bytes, int cold,
                      int64_t llc_bytes, char *err, size_t err_len);
static inline void *kf_bench_rot_get(const kf_bench_rot *rot, int64_t iter) {
  return rot->copies[iter % rot->n_copies];
}
void kf_bench_rot_free(kf_bench_rot *rot);

#endif

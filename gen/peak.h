/*
** peak.h: this machine's roofline (issue 17): peak int8 dot (vpdpbusd zmm, else AVX-VNNI ymm),
** bf16 dot (vdpbf16ps zmm), f32 FMA (zmm, else ymm) throughput and L1/L2/L3/DRAM read bandwidth,
** each measured with register-only / read-only loops on `threads` threads at once, and cached
** per CPU (model name, ISA flags, thread count) in $XDG_CACHE_HOME/kforge/peak.txt (else
** ~/.cache/kforge/peak.txt), so `kforge bench --roofline` does not re-measure every time.
**
** Peaks are the best of several short repetitions (a peak is what the machine can do; a busy
** host only lowers it). A kernel's fraction of its binding limit is
**     max(ops / peak of its arithmetic, bytes / bandwidth of where its data lives) / its time.
*/
#ifndef KF_PEAK_H
#define KF_PEAK_H

#include <stddef.h>
#include <stdint.h>

typedef enum kf_peak_kind {
  KF_PEAK_INT8,  /* int8 dot ops/s (one u8×s8 multiply-add = 2 ops) */
  KF_PEAK_BF16,  /* bf16 dot flops/s */
  KF_PEAK_F32,   /* f32 FMA flops/s */
  KF_PEAK_L1,    /* read bytes/s from a buffer in L1 (per thread: half the L1d) */
  KF_PEAK_L2,    /* ... in L2 (per thread: half the L2) */
  KF_PEAK_L3,    /* ... in L3 (all threads: min(LLC / 2, 64 MiB)) */
  KF_PEAK_DRAM,  /* ... from memory (all threads: 4x LLC, 1..2 GiB) */
  KF_PEAK_N
} kf_peak_kind;

typedef struct kf_peaks {
  double v[KF_PEAK_N]; /* 0: not measurable on this CPU (e.g. no bf16 dot instruction) */
  char how[KF_PEAK_N][32]; /* the instruction or buffer size used */
  int64_t bytes[KF_PEAK_N]; /* L1..DRAM: bytes of the buffer all threads read together */
  int threads;
  char cpu[256];       /* model name [flags]: the cache key with the thread count */
  char cache_path[512]; /* where the numbers were read from or written to ("" if nowhere) */
  int from_cache;
} kf_peaks;

const char *kf_peak_name(kf_peak_kind k); /* "int8", "bf16", "f32", "L1", ... */

/* Measures (or reads from the cache, unless remeasure) the peaks at `threads` ≥ 1 threads.
** Returns 0, or -1 with a message in err (no memory for the bandwidth buffers, bad threads).
** A cache that cannot be written is not an error (cache_path is then ""). */
int kf_peaks_get(int threads, int remeasure, kf_peaks *out, char *err, size_t err_len);

#endif

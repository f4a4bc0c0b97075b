/*
** asc_machine.h: the Ascend 910-class NPU that targets/ascend simulates, as numbers.
**
** Every number lives in one table (asc_machine.c) with its source: [D] a document quoted in
** shared/refs/amla.md section 3 (hiascend pages, platform ini files, Hot Chips 2019, a HW-model
** config), [R] arithmetic on [D] numbers, [E] an estimate of ours (no public figure found).
** The estimates are the knobs a reader should distrust first; they are named so.
*/
#ifndef KF_ASC_MACHINE_H
#define KF_ASC_MACHINE_H

#include <stdint.h>

#include "kf.h"

/* Pipes of a core (DESIGN.md section 6). AIC: S, MTE2, MTE1, M, FIX. AIV: S, MTE2, V, MTE3. */
typedef enum {
  KF_ASC_S = 0,  /* scalar: issues every instruction in program order */
  KF_ASC_MTE2,   /* GM -> L1 (AIC) or GM -> UB (AIV) */
  KF_ASC_MTE1,   /* L1 -> L0A / L0B */
  KF_ASC_M,      /* Cube mmad into L0C */
  KF_ASC_FIX,    /* L0C -> GM (FixPipe; can atomic-add) */
  KF_ASC_V,      /* vector unit on UB */
  KF_ASC_MTE3,   /* UB -> GM (can atomic-add) */
  KF_ASC_N_PIPES
} kf_asc_pipe;

typedef enum { KF_ASC_AIC = 0, KF_ASC_AIV = 1 } kf_asc_core_kind;

const char *kf_asc_pipe_name(int pipe);

typedef struct kf_asc_machine {
  const char *name;
  int n_dies;             /* 1: one 910B die; 2: a 910C package */
  int aic_per_die;        /* Cube cores per die */
  int aiv_per_aic;        /* Vector cores per Cube core (a group = 1 AIC + this many AIV) */
  double freq_hz;
  /* Cube: one mmad step does cube_m x cube_n x cube_k MACs per cycle (bf16/fp16);
  ** int8 doubles k (cube_k_int8). */
  int cube_m, cube_n, cube_k, cube_k_int8;
  int64_t mmad_overhead;  /* cycles added to every mmad instruction */
  /* on-core buffers, bytes */
  int64_t l1_bytes, l0a_bytes, l0b_bytes, l0c_bytes, ub_bytes;
  double mte1_bpc;        /* L1 -> L0A/L0B bytes per cycle */
  int64_t mte1_overhead;  /* cycles per MTE1 instruction */
  double fix_bpc;         /* FixPipe L0C drain rate, bytes per cycle (before GM) */
  double vec_bpc;         /* vector datapath, bytes per cycle (256 B = 64 fp32 lanes) */
  int64_t vec_overhead;   /* cycles per vector instruction (issue + pipeline fill) */
  double vec_exp_cost;    /* an exp costs this many elementwise passes */
  /* global memory, per die */
  double hbm_bpc;         /* HBM bandwidth per die, bytes per cycle */
  double l2_bpc;          /* L2 read bandwidth per die, bytes per cycle */
  double l2_write_bpc;    /* L2 write bandwidth per die (a separate channel; atomics included) */
  double core_hbm_bpc;    /* one transfer's cap when served by HBM */
  double core_l2_bpc;     /* one read's cap when served by L2 */
  double core_l2_write_bpc; /* one write's cap into L2 (FixPipe, MTE3) */
  int64_t l2_bytes;       /* L2 capacity per die */
  int64_t l2_line;        /* granularity of the L2 model (LRU lines) */
  int64_t gm_latency;     /* cycles before the first byte of a GM transfer moves */
  /* synchronisation */
  int64_t flag_intra;     /* set_flag -> wait_flag between pipes of one core, cycles */
  int64_t flag_cross;     /* cross-core flag through GM (AIC <-> AIV), cycles */
  int64_t store_release;  /* 1: a buffer (UB slot, L0C half) a store read is free when the pipe has
                             sent it; 0 (default): when the data has landed in GM (+gm_latency) */
  int64_t s_issue;        /* scalar cycles to issue one instruction */
} kf_asc_machine;

/* Looks up a machine: "ascend910b" (one die) or "ascend910c" (a package of two dies).
** KF_EINVAL names the known machines. */
int kf_asc_machine_get(kf_ctx *ctx, const char *name, kf_asc_machine *out);
/* Overrides estimates (and others) for sensitivity studies: "name=value,name=value" with the
** field names of kf_asc_machine (core_hbm_bpc=64,vec_exp_cost=2,...). KF_EINVAL names an
** unknown field or a bad value. */
int kf_asc_machine_set(kf_ctx *ctx, kf_asc_machine *m, const char *assignments);
/* Every number with its unit and source, one per line. */
void kf_asc_machine_describe(const kf_asc_machine *m, kf_str *out);
/* Derived figures. */
int kf_asc_machine_n_aic(const kf_asc_machine *m);
int kf_asc_machine_n_aiv(const kf_asc_machine *m);
double kf_asc_machine_peak_flops(const kf_asc_machine *m, int int8); /* whole machine, FLOP/s */

/* Instruction costs in cycles (the timing model's compute side):
**   mmad   ceil(M/cube_m) * ceil(N/cube_n) * ceil(K/k_step) + mmad_overhead
**   MTE1   mte1_overhead + ceil(bytes / mte1_bpc)
**   vector vec_overhead + ceil(passes * bytes / vec_bpc)   (bytes of the widest operand) */
int64_t kf_asc_mmad_cycles(const kf_asc_machine *m, int64_t M, int64_t N, int64_t K, int int8);
int64_t kf_asc_mte1_cycles(const kf_asc_machine *m, int64_t bytes);
int64_t kf_asc_vec_cycles(const kf_asc_machine *m, int64_t bytes, double passes);

#endif

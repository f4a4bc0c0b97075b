/*
** kf_ascend.h: kforge's Ascend NPU target as a library (DESIGN.md section 6).
**
** A template + shape + tunables is built for the target "ascend910b" (one die of 24 AIC +
** 48 AIV) or "ascend910c" (a 2-die package), lowered to per-core pipe programs, run by the
** timing simulator (cycles, per-pipe busy, HBM/L2 bytes, optional Chrome trace) and, if
** asked, by the functional simulator, whose outputs are checked against the template's
** fp64 reference and error bounds (gen/check.h).
**
** The tuner uses kf_ascend_cycles: simulated cycles for one configuration; a tiling that
** does not fit L1/L0/UB, or breaks a template constraint, is KF_EINVAL with a message that
** names the buffer and the template file:line (a failed constraint for the tuner).
*/
#ifndef KF_ASCEND_H
#define KF_ASCEND_H

#include "asc_machine.h"
#include "check.h"
#include "kernel.h"
#include "template.h"

/* Target table the templates see (constraints(p, t, target), build(p, t, target)):
** {name, vl = 64 (fp32 lanes of the 256-byte vector datapath), vnni = 1 (int8 Cube),
** bf16 = 1, regs = 1024 (no register file limits the tiles; L0/L1/UB are checked by the
** lowering instead)}. */
#define KF_ASCEND_VL 64
#define KF_ASCEND_REGS 1024

/* That table for machine `name`. */
kf_target_view kf_ascend_view(const char *name);

/* The model behind the target interface (asc_target.c): ascend910b, ascend910c. */
extern const kf_target_ops kf_target_ascend;

typedef enum {
  KF_ASCEND_CHECK_AUTO = 0,   /* full when the problem is small (<= 2 GFLOP), else sampled */
  KF_ASCEND_CHECK_NONE = 1,
  KF_ASCEND_CHECK_FULL = 2,   /* the whole shape */
  KF_ASCEND_CHECK_SAMPLE = 3  /* the same shape with the batch (B, or M for GEMMs) cut down */
} kf_ascend_check;

typedef struct kf_ascend_opts {
  const char *machine;      /* "ascend910b" (NULL) or "ascend910c" */
  const char *machine_params; /* overrides, "name=value,..." (kf_asc_machine_set), or NULL */
  kf_ascend_check check;
  int64_t sample_batch;     /* SAMPLE: batch of the checked shape (0: 2 for attention, 16 for GEMMs) */
  uint64_t seed;            /* inputs of the check */
  int dist;                 /* kf_ref_dist / kf_ref_attn_kind of the check's inputs */
  const char *trace_path;   /* Chrome trace JSON (NULL: none) */
  int64_t trace_max;        /* instructions recorded in the trace (0: 500000) */
  int program_order;        /* 1: every core runs its ops in program order (no preload reordering,
                               whatever the template's preload tunable says) */
} kf_ascend_opts;

typedef struct kf_ascend_result {
  kf_asc_machine machine;
  kf_binding params, config;
  double cycles, seconds;
  double flops;             /* nominal FLOPs of the problem (2MNK; 2BHS(D+DV) for attention) */
  double tflops;            /* flops / seconds / 1e12 */
  double peak_frac;         /* tflops / bf16 Cube peak of the machine */
  double cube_busy;         /* M pipe busy, mean over all AICs */
  double cube_flops;        /* FLOPs the mmads did on valid data (int8 for MSD) */
  int cube_int8;
  double busy[2][KF_ASC_N_PIPES], busy_max[2][KF_ASC_N_PIPES]; /* [AIC/AIV][pipe] */
  double xwait[2][KF_ASC_N_PIPES]; /* idle, blocked on the other core kind (mean fraction) */
  double hbm_read, hbm_write, l2_read, l2_write;                /* bytes */
  int64_t n_tasks, n_units, n_inst, n_flags;
  char placement[1024];     /* where each buffer lives */
  /* the functional check */
  int checked;              /* 0: not run; KF_ASCEND_CHECK_FULL or _SAMPLE */
  char check_shape[256];    /* the shape that was checked */
  char check_note[256];     /* why a check was skipped */
  kf_check_result check;
  int check_ok;
} kf_ascend_result;

/* Simulates template `t` at `shape` with tunables `sets` (NULL: defaults; missing ones are
** completed as kf_template_config does). Returns KF_OK, KF_ECHECK when the functional
** result exceeds its bound (the timing results are filled in), or an error. */
int kf_ascend_simulate(kf_ctx *ctx, kf_template *t, const kf_binding *shape, const kf_binding *sets,
                       const kf_ascend_opts *opts, kf_ascend_result *res);

/* For the tuner: simulated cycles of one complete configuration, timing only (no check).
** machine: NULL = "ascend910b". */
int kf_ascend_cycles(kf_ctx *ctx, kf_template *t, const kf_binding *shape, const kf_binding *config,
                     const char *machine, double *cycles);

#endif

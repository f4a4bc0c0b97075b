/*
** asc_sim.h: per-core instruction streams for the Ascend model, and the timing simulator
** that runs them (internal to targets/ascend; tests build programs by hand through it).
**
** A program is, per core, a list of instructions in program order. Each instruction runs on
** one pipe of its core; a pipe runs its instructions in order, one at a time. Instructions
** of different pipes (or cores) are ordered only by flags: a flag is set when its producer
** instruction ends and lets its one consumer instruction start `latency` cycles later
** (intra-core set/wait_flag, or a cross-core flag through GM). Each flag is used once
** (a counted semaphore with one set and one wait, which is what the lowering needs).
**
** Instruction kinds:
**   COMPUTE  fixed duration (mmad, MTE1 copy L1->L0, vector op)
**   READ     GM -> L1/UB (MTE2);  WRITE GM <- L0C/UB (FIX, MTE3; `atomic` adds into GM)
** GM transfers move their bytes at a rate set by the memory system and land gm_latency
** cycles after the last byte left: the pipe can issue the next transfer meanwhile (DMA
** requests are pipelined), the consumers of the data wait for it. The rate:
** per die, HBM, L2 reads and L2 writes (separate channels) are each shared equally by the
** transfers they serve, each transfer capped by the per-core port rate (machine.core_hbm_bpc,
** core_l2_bpc for reads, core_l2_write_bpc for writes). Reads of arguments
** go through an LRU model of L2 (lines of machine.l2_line with 32-byte sectors, so that two
** halves of the same rows read by two transfers both come from HBM); workspaces (the GM buffers the
** Cube and Vector cores exchange data through) stay in L2; writes to arguments go to HBM.
*/
#ifndef KF_ASC_SIM_H
#define KF_ASC_SIM_H

#include "asc_machine.h"

typedef enum { KF_ASC_COMPUTE = 0, KF_ASC_READ = 1, KF_ASC_WRITE = 2 } kf_asc_kind;

typedef struct kf_asc_inst {
  int64_t cycles;   /* COMPUTE: duration; READ/WRITE: extra fixed cycles */
  int64_t bytes;    /* READ/WRITE: bytes moved */
  int64_t gm_off;   /* READ/WRITE footprint in the GM object: gm_rows rows of gm_row_bytes, */
  int64_t gm_stride;/* the first at gm_off, each gm_stride after the previous */
  int64_t gm_row_bytes;
  int32_t gm_rows;
  int32_t core;
  int32_t gm_obj;   /* GM object id (argument or workspace), for the L2 model */
  int32_t label;    /* index into prog->labels */
  int32_t wait, set;/* flag lists in prog->refs (-1 = none) */
  uint8_t pipe, kind, ws, atomic;
} kf_asc_inst;

typedef struct kf_asc_core {
  kf_asc_core_kind kind;
  int die, group;             /* group: index of its AIC within the die */
  KF_VEC(int32_t) prog;       /* instruction ids in program order */
} kf_asc_core;

typedef struct kf_asc_flag {
  int64_t latency;
  int32_t producer, consumer;
  int release; /* the consumer reuses the buffer the producer (a store) read, not its GM data */
} kf_asc_flag;

typedef struct kf_asc_ref {
  int32_t flag, next;
} kf_asc_ref;

typedef struct kf_asc_prog {
  kf_asc_machine m;
  int n_cores;                /* per die: aic_per_die AICs, then their AIVs */
  kf_asc_core *cores;
  KF_VEC(kf_asc_inst) insts;
  KF_VEC(kf_asc_flag) flags;
  KF_VEC(kf_asc_ref) refs;
  KF_VEC(char *) labels;
  int64_t max_insts;          /* refuse programs larger than this (memory) */
} kf_asc_prog;

kf_asc_prog *kf_asc_prog_new(const kf_asc_machine *m);
void kf_asc_prog_free(kf_asc_prog *p);
int kf_asc_core_aic(const kf_asc_prog *p, int die, int group);
int kf_asc_core_aiv(const kf_asc_prog *p, int die, int group, int j);
int kf_asc_label(kf_asc_prog *p, const char *name);
/* Appends an instruction to a core's program; returns its id (-1 when the program exceeds
** max_insts: the caller reports it). */
int32_t kf_asc_emit(kf_asc_prog *p, int core, int pipe, kf_asc_kind kind, int64_t cycles, int64_t bytes,
                    int label);
/* Sets the GM footprint of a READ/WRITE instruction: `rows` rows of `row_bytes` bytes, at off,
** off + stride, ... (a contiguous range is 1 row). Workspaces (ws = 1) stay in L2. */
void kf_asc_gm(kf_asc_prog *p, int32_t inst, int gm_obj, int ws, int64_t off, int64_t rows, int64_t row_bytes,
               int64_t stride, int atomic);
/* Orders `consumer` after `producer`: nothing when both are on the same pipe of the same
** core (in-order pipe, producer first in program order), else a flag (intra-core or
** cross-core latency). Either may be -1 (no-op). */
void kf_asc_dep(kf_asc_prog *p, int32_t producer, int32_t consumer);
/* the same, for a consumer that only reuses the on-chip buffer the producer read */
void kf_asc_dep_reuse(kf_asc_prog *p, int32_t producer, int32_t consumer);

typedef struct kf_asc_stats {
  double cycles;                      /* makespan */
  double busy[2][KF_ASC_N_PIPES];     /* mean busy fraction over the AICs / AIVs */
  double busy_max[2][KF_ASC_N_PIPES]; /* busiest core */
  double xwait[2][KF_ASC_N_PIPES];    /* mean fraction of the run a pipe sat idle with its next
                                      ** instruction blocked on a flag from the other core kind */
  double hbm_read, hbm_write, l2_read, l2_write; /* bytes */
  int64_t n_inst, n_flags;
} kf_asc_stats;

typedef struct kf_asc_trace_opts {
  const char *path;     /* Chrome trace JSON (NULL: none) */
  int64_t max_events;   /* instructions recorded (0: 500000) */
  const char *title;
} kf_asc_trace_opts;

/* Runs the timing simulation. Errors: a deadlock (an instruction waits for a flag that is
** never set: a lowering bug, reported with the core, pipe and instruction), trace I/O. */
int kf_asc_simulate(kf_ctx *ctx, kf_asc_prog *p, const kf_asc_trace_opts *trace, kf_asc_stats *out);

#endif

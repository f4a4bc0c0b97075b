/*
** asc_lower.h: tile IR -> per-core pipe instruction streams for the Ascend model.
**
** How the IR maps onto the machine (DESIGN.md section 6, refs/amla.md sections 1-2):
**  - Tasks: the parallel loop(s) (up to two, collapsed) are the tasks; task t runs on AI-core
**    group t mod n_groups (1 AIC + 2 AIV; cyclic so that tasks sharing KV run at the same
**    time and share it through L2).
**  - Ops: qk, pv and mma run on the AIC (MTE2 GM->L1, MTE1 L1->L0A/L0B, mmad into L0C,
**    FixPipe L0C->GM); everything else runs on the two AIVs (MTE2 GM->UB, vector, MTE3
**    UB->GM), each taking half of the rows (or of the columns, for register tiles).
**  - Buffers: arguments live in GM. A scratch or register buffer that both the Cube and the
**    Vector cores touch lives in a GM workspace (AIC and AIV share no on-chip memory), with
**    four slots so that the Cube can fill up to three ahead while the Vector reads one (GM is
**    plentiful; with two, the per-32-block MXFP4 round trips were latency-bound);
**    Vector-only scratch lives in UB; a Cube-only register tile is an L0C accumulator.
**  - A fill/zero of a whole workspace or accumulator emits nothing: the next accumulation
**    becomes a plain write (FixPipe without atomic add) and a rescale of a zero O is skipped.
**  - Register-tile loops (loops around an mma that walk its output tile, not k) are
**    coalesced: the CPU register tile mr x nr becomes an L0C tile as large as half of L0C.
**  - dequant mma (bf16 with b_scales): the AIVs dequantize the weight tile to bf16 into a
**    GM workspace, the AIC multiplies it (the baseline MSD removes).
**  - Dependencies come from the buffers each op instance reads and writes (per slot, as
**    boxes): a consumer's first instruction on a buffer waits for the producer's last one,
**    through an intra-core flag, a cross-core flag, or pipe order on the same pipe.
**  - preload: on the AIC, an op that waits on the Vector trades places with the next one
**    when that one does not depend on it (so block i+1's QK^T runs while the Vector does
**    block i's softmax: AMLA's Preload Pipeline). On each AIV, a unit that waits only on
**    older Cube work moves ahead of up to three units that wait on newer Cube work (e.g. the
**    next block's weight decode ahead of this block's scale_acc). preload = 0 keeps program
**    order.
**  - Capacities: every Cube op keeps two A operands (e.g. Q for reuse and P~) and a ring of
**    three B chunks in L1; L0A/L0B/L0C are ping-ponged; UB holds the Vector-only scratch and
**    double-buffered chunks. A tiling that does not fit is an error naming the buffer, its
**    need and the template file:line of the op.
*/
#ifndef KF_ASC_LOWER_H
#define KF_ASC_LOWER_H

#include "asc_sim.h"
#include "ir.h"

typedef struct kf_asc_lower_opts {
  int preload; /* 1: the AIC runs independent ops ahead of ones waiting on the Vector */
} kf_asc_lower_opts;

typedef struct kf_asc_lowered {
  kf_asc_prog *prog;
  int64_t n_tasks, n_units;
  double cube_flops;     /* FLOPs the mmads do on valid (unpadded) data */
  int cube_int8;         /* the Cube ran int8 */
  kf_str placement;      /* where each buffer lives, one line */
} kf_asc_lowered;

int kf_asc_lower(kf_ctx *ctx, const kf_ir_kernel *ir, const kf_asc_machine *m, const kf_asc_lower_opts *o,
                 kf_asc_lowered *out);
void kf_asc_lowered_free(kf_asc_lowered *l);

#endif

/*
** ir.h: the tile-level kernel IR that templates build.
**
** A kernel is a list of buffers and a tree of nodes. Buffers are arguments (global
** memory), locals (per-call workspace: the L1/L2-resident blocks of a blocked GEMM) or
** register tiles (level REG: the lowering keeps them in vector registers). Nodes are
** counted loops over affine index expressions and a few fused tile ops that targets
** know how to lower well (mma, quantize, scale_acc, softmax pieces, rescale_exp2, ...).
**
** Every node and buffer records the template file:line that created it, so the
** verifier and the lowering can report errors where the template author can fix them.
*/
#ifndef KF_IR_H
#define KF_IR_H

#include "lir.h"

#define KF_IR_MAX_RANK 4
#define KF_IR_MAX_TERMS 4

/* Source location in a template. */
typedef struct kf_loc {
  const char *file;
  int line;
} kf_loc;

/* Affine index: min(c + sum coef[i] * loopvar[var[i]], cap). cap = INT64_MAX if none. */
typedef struct kf_ix {
  int64_t c;
  int n;
  int var[KF_IR_MAX_TERMS];
  int64_t coef[KF_IR_MAX_TERMS];
  int64_t cap;
} kf_ix;

/* Every index value (and every partial sum of an index expression, loop bounds and steps)
** that the verifier accepts is within [-KF_IX_LIMIT, KF_IX_LIMIT], so i += step and the
** lowerings' index arithmetic cannot overflow int64. */
#define KF_IX_LIMIT ((int64_t)1 << 61)
#define KF_IX_OVERFLOW (-2) /* from kf_ix_add / kf_ix_scale: a constant or coefficient overflows */

kf_ix kf_ix_const(int64_t c);
kf_ix kf_ix_var(int var);
int kf_ix_add(kf_ix *out, kf_ix a, kf_ix b);     /* 0 ok; -1 too many terms or capped operand;
                                                 ** KF_IX_OVERFLOW */
int kf_ix_scale(kf_ix *out, kf_ix a, int64_t k); /* -1 if capped; KF_IX_OVERFLOW */
int kf_ix_is_const(const kf_ix *a);

typedef enum { KF_LVL_ARG_IN, KF_LVL_ARG_OUT, KF_LVL_LOCAL, KF_LVL_REG } kf_level;

/* Buffer layouts the lowering understands. */
typedef enum {
  KF_LAYOUT_ROW,   /* plain row-major over dims */
  KF_LAYOUT_QW,    /* quantized weights (runtime/quant kf_qweight: packed codes); dims = {N, K},
                   ** or {count, N, K} for a batch of packed matrices (one per kv head) */
  KF_LAYOUT_QS     /* quantized weights' scales [n_groups][n_pad] f32; dims = {N, K} (logical) */
} kf_layout;

typedef struct kf_ir_buf {
  const char *name;
  kf_scalar dtype;
  int rank;
  int64_t dims[KF_IR_MAX_RANK];
  kf_level level;
  kf_layout layout;
  int wbits, wlayout;   /* QW/QS: weight bits (4/8) and packing (0 = N16K4, 1 = N16K1) */
  int64_t wgroup;       /* QW/QS: K-group of the scales (>= K: per channel) */
  int wmx;              /* QW: MXFP4 codes (8-bit: doubled E2M1 values; 4-bit: E2M1 nibbles,
                        ** decoded in registers by a 16-entry table) */
  kf_loc loc;
} kf_ir_buf;

/* A rectangular view of a buffer: offsets (affine) and extents (static maxima; the
** lowering clamps the last tile against the buffer's dims). */
typedef struct kf_tile {
  int buf;
  int rank;
  kf_ix off[KF_IR_MAX_RANK];
  int64_t ext[KF_IR_MAX_RANK];
} kf_tile;

/* Op kinds (KF_OP_LOOP, KF_OP_MMA, ...), their operands' slots in t[] (KF_MMA_ACC, ...) and
** attributes' slots in i[] (KF_MMA_PASSES_ATTR, ...): the op table, ops.def. */
#include "ops.h"

typedef struct kf_ir_node kf_ir_node;
typedef struct kf_ir_block {
  kf_ir_node **data;
  size_t len, cap;
} kf_ir_block;

#define KF_IR_MAX_TILES KF_OP_MAX_ROLES
struct kf_ir_node {
  kf_ir_opkind op;
  kf_loc loc;
  /* LOOP */
  int var;
  kf_ix lo, hi;
  int64_t step;
  int parallel;
  kf_ir_block body;
  /* ops */
  int n_tiles;                  /* operands given: the required roles and the optional
                                ** ones up to the first missing (ops.def) */
  kf_tile t[KF_IR_MAX_TILES];   /* by role: t[KF_<OP>_<ROLE>] */
  int64_t i[KF_OP_MAX_ATTRS];   /* integer attributes: i[KF_<OP>_<ATTR>_ATTR] */
  double f;     /* the op's number attribute (fill value, qk scale, scale_cols factor) */
  kf_ix len;    /* attention ops: valid keys in this block */
};

typedef struct kf_ir_loopvar {
  const char *name;
  kf_loc loc;
} kf_ir_loopvar;

typedef struct kf_ir_kernel {
  kf_arena arena;
  const char *name;
  KF_VEC(kf_ir_buf) bufs;
  KF_VEC(kf_ir_loopvar) vars;
  kf_ir_block body;
} kf_ir_kernel;

kf_ir_kernel *kf_ir_new(const char *name);
void kf_ir_free(kf_ir_kernel *k);
int kf_ir_buf_add(kf_ir_kernel *k, const kf_ir_buf *b);
/* Elements of a buffer as a kernel sees it: the product of its dims, or for quantized
** weights (layout qweight) the bytes of runtime/quant's packing (n rounded up to 16, k to 8,
** bits/8 bytes per code, per matrix of a batch). */
int64_t kf_ir_buf_elems(const kf_ir_buf *b);
int kf_ir_var_add(kf_ir_kernel *k, const char *name, kf_loc loc);
kf_ir_node *kf_ir_append(kf_ir_kernel *k, kf_ir_block *b, kf_ir_opkind op, kf_loc loc);
const char *kf_ir_opname(kf_ir_opkind op);

/* Checks buffers, tiles (ranks, offsets inside the buffer for every loop value), loops
** (one parallel loop at most, outermost), and each op's operand types. The message
** names the template file:line of the offending node. */
int kf_ir_verify(kf_ctx *ctx, const kf_ir_kernel *k);
void kf_ir_print(const kf_ir_kernel *k, kf_str *out);
/* Interval of an affine index given the loop variables' ranges (computed by walking
** the loops); used by the verifier and the lowering. */
typedef struct kf_ix_range {
  int64_t lo, hi; /* inclusive */
} kf_ix_range;

/* What an op's contract check sees (ops.c): the node, its kernel, the ranges of its tiles'
** offsets and of its len. kf_op_verify checks the node against its op table entry. */
typedef struct kf_opcheck {
  kf_ctx *ctx;
  const kf_ir_kernel *k;
  const kf_ir_node *n;
  const kf_op_def *def;
  kf_ix_range off[KF_IR_MAX_TILES][KF_IR_MAX_RANK];
  kf_ix_range len;
} kf_opcheck;
int kf_op_verify(kf_opcheck *c);

#endif

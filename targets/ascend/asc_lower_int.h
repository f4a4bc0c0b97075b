/*
** asc_lower_int.h: internals shared by asc_lower.c (walk, dependencies, order) and
** asc_emit.c (op instances -> units -> pipe instructions).
*/
#ifndef KF_ASC_LOWER_INT_H
#define KF_ASC_LOWER_INT_H

#include <stdarg.h>

#include "asc_lower.h"

#define LW_MAX_OPND 8
#define LW_MAX_SLOTS 4
#define LW_WS_SLOTS 4 /* GM workspace slots: the Cube runs up to 3 fills ahead of the Vector's reads */
#define LW_UB_CHUNK (32 * 1024) /* bytes per streaming UB buffer (CANN: 16 rows x 512 fp32) */

enum { LW_AIC = 0, LW_AIV_ROWS = 1, LW_AIV_COLS = 2 };
enum { LW_PL_ARG = 0, LW_PL_WS = 1, LW_PL_UB = 2, LW_PL_L0C = 3 };
enum { LW_U_OP = 0, LW_U_DEQUANT = 1 };

typedef struct lw_box {
  int rank;
  int64_t lo[KF_IR_MAX_RANK], hi[KF_IR_MAX_RANK];
} lw_box;

typedef struct lw_foot {
  int64_t off, rows, row_bytes, stride;
} lw_foot;

typedef struct lw_access {
  int32_t unit;
  int8_t opnd;
  uint8_t write;
  lw_box b;
} lw_access;

typedef KF_VEC(lw_access) lw_acclist;

typedef struct lw_bufst {
  int place, nslots;
  int use_aic, use_rows, use_cols;
  int64_t ver;
  int zero;          /* holds zeros that were never materialised */
  const kf_ir_node *memo_node; /* holds what this op (at memo_box of its input) wrote */
  lw_box memo_box;
  lw_acclist acc[LW_MAX_SLOTS]; /* per slot */
} lw_bufst;

typedef struct lw_opnd_t {
  int buf, slot;
  int64_t ver;
  lw_box b;
  uint8_t read, write;
  int32_t first, last; /* instructions touching it (set by the emitter) */
} lw_opnd_t;

typedef struct lw_unit_t {
  const kf_ir_node *node;
  int kind, core, aiv;   /* aiv: 0/1, or -1 on the AIC */
  int n;
  lw_opnd_t o[LW_MAX_OPND];
  int64_t r0, r1;        /* AIV part: rows (or columns) of the op's main operand */
  int64_t len;           /* attention ops: valid keys */
  int acc_zero;          /* accumulation into zeros: plain write */
  int acc_slot;          /* L0C accumulator half */
  int32_t i0, i1;        /* first and last instruction */
  int32_t in_head;       /* incoming edges (lw.edges via lw.edge_next) */
  int cross_in;          /* waits on the other core kind */
  int32_t aiv_pred_max;  /* AIC unit: latest AIV unit it waits on (-1: none) */
  int32_t aiv_succ_min;  /* AIC unit: earliest AIV unit that waits on it (INT32_MAX: none) */
} lw_unit_t;

typedef struct lw_edge {
  int32_t from, to;
  int8_t fo, to_o;
} lw_edge;

typedef struct lw_acache {
  int valid, buf, slot;
  int64_t ver;
  lw_box b;
  int32_t load, last;
  int64_t used, bytes;
} lw_acache;

typedef struct lw {
  kf_ctx *ctx;
  const kf_ir_kernel *ir;
  const kf_asc_machine *m;
  kf_asc_lowered *out;
  kf_asc_prog *p;
  int preload;
  int p_f32;                /* a softmax leaves P in fp32 (the Cube cannot multiply it) */
  int nb;                   /* IR buffers + the dequant workspace */
  lw_bufst *bs;
  int64_t *val, *span, *lstep, *factor;
  uint8_t *coal;            /* loop var is a coalesced register-tile loop */
  int64_t reg_elems;        /* largest coalesced register tile (elements) */
  int64_t ub_resident, ub_stream;
  int die, group;
  KF_VEC(lw_unit_t) units;
  KF_VEC(lw_edge) edges;
  KF_VEC(int32_t) edge_next;
  int64_t n_units_total;
  double flops;
  int int8;
  /* AIC state while emitting a group */
  lw_acache acache[2];
  int64_t use_clock;
  int32_t ring_last[3];
  int ring_next;
  int32_t l0a_last[2], l0b_last[2], l0c_last[2];
  int l0a_next, l0b_next, l0c_next;
  /* AIV state: per AIV, the two streaming UB slots' last users */
  int32_t ub_last[2][2];
  int ub_next[2];
} lw;

int lw_err(lw *L, const kf_ir_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int64_t lw_up(int64_t x, int64_t m);
int64_t lw_cdiv(int64_t a, int64_t b);
int lw_esize(kf_scalar s);
int64_t lw_box_ext(const lw_box *b, int d);
lw_foot lw_footprint(const lw *L, int buf, const lw_box *b);
int lw_unit(lw *L, const kf_ir_node *n, int kind, int core, int aiv);
int lw_opnd(lw *L, int u, int buf, const lw_box *b, int read, int write);
void lw_new_version(lw *L, int buf);
void lw_split(int64_t lo, int64_t hi, int j, int64_t *a, int64_t *b);

/* asc_emit.c */
int lw_op(lw *L, const kf_ir_node *n);        /* one op instance -> units */
int lw_emit_unit(lw *L, int u);               /* a unit -> instructions */
void lw_emit_reset(lw *L);                    /* new group: empty L1/L0/UB state */
lw_box lw_tile_box(const lw *L, const kf_tile *t);

#endif

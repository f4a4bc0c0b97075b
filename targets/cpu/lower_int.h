/*
** lower_int.h: internals shared by the CPU lowering files (lower.c: GEMM ops and the
** driver; lower_attn.c: attention decode ops).
*/
#ifndef KF_LOWER_INT_H
#define KF_LOWER_INT_H

#include "lower.h"

typedef struct lw {
  kf_ctx *ctx;
  const kf_ir_kernel *ir;
  const kf_target *t;
  kf_lir_func *f;
  int vl;             /* 32-bit lanes */
  int *var_of_loop;   /* ir loop var -> lir var */
  int *buf_of;        /* ir buf -> lir buf (-1 for REG) */
  int **reg_vars;     /* ir REG buf -> [rows * (cols/vl)] lir vars */
  int n_tmp;
  int mx_lut_buf;      /* LIR buffer of the E2M1 decode table, -1 if none */
} lw;

#define ERR_AT(L, node, ...) lw_lower_err(L, (node)->loc, __VA_ARGS__)
int lw_lower_err(lw *L, kf_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
kf_ty lw_ty(kf_scalar s, int lanes);
kf_lir_expr *lw_i64c(lw *L, int64_t v);
kf_lir_expr *lw_add(lw *L, kf_lir_expr *a, kf_lir_expr *b);
kf_lir_expr *lw_mul(lw *L, kf_lir_expr *a, kf_lir_expr *b);
kf_lir_expr *lw_muli(lw *L, kf_lir_expr *a, int64_t k);
kf_lir_expr *lw_addi(lw *L, kf_lir_expr *a, int64_t k);
kf_lir_expr *lw_min64(lw *L, kf_lir_expr *a, kf_lir_expr *b);
kf_lir_expr *lw_fconst(lw *L, int lanes, double v);
kf_lir_expr *lw_iconst(lw *L, kf_scalar s, int lanes, int64_t v);
int lw_tmp(lw *L, const char *base, kf_ty t);
kf_lir_expr *lw_ix_expr(lw *L, const kf_ix *x);
kf_lir_expr *lw_tile_index(lw *L, const kf_tile *tl, const int64_t *extra);

/* attention ops (lower_attn.c) */
int lw_lower_fill(lw *L, const kf_ir_node *n, kf_lir_block *blk);
int lw_lower_scale_cols(lw *L, const kf_ir_node *n, kf_lir_block *blk);
int lw_lower_qk(lw *L, const kf_ir_node *n, kf_lir_block *blk);
int lw_lower_softmax(lw *L, const kf_ir_node *n, kf_lir_block *blk);
int lw_lower_rescale(lw *L, const kf_ir_node *n, kf_lir_block *blk, int exp2);
int lw_lower_pv(lw *L, const kf_ir_node *n, kf_lir_block *blk);
int lw_lower_finalize(lw *L, const kf_ir_node *n, kf_lir_block *blk);

#endif

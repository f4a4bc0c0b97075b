/*
** lower.c: tile IR -> LIR for the CPU targets.
**
** This is where CPU speed is decided (DESIGN.md section 3.1): register tiles become
** arrays of vector variables; mma becomes a register-blocked microkernel that loads a
** weight panel once per k step and applies it to every row and every MSD pass
** (vpdpbusd on packed n16k4 weights, or an in-register dequant + FMA for n16k1);
** quantize is the MSD activation decomposition, one sweep over each row.
**
** u8 x s8 exactness: vpdpbusd multiplies unsigned by signed bytes. Weights are stored
** offset-binary (u = q + off, off = 128 for 8 bits, 8 for 4 bits) and used as the
** unsigned operand; activation codes are the signed one. Then
**     sum_k u_k x_k = sum_k q_k x_k + off * sum_k x_k,
** and quantize also produces sum_k x_k per accumulation span, so scale_acc subtracts
** off * sum exactly in int32 before converting to float.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower_int.h"



int lw_lower_err(lw *L, kf_loc loc, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return kf_err(L->ctx, KF_EINVAL, "%s:%d: %s (target %s)", loc.file ? loc.file : "?", loc.line,
                msg, L->t->name);
}

/* ---- small LIR helpers ---- */

kf_ty lw_ty(kf_scalar s, int lanes) { return kf_ty_of(s, lanes); }
kf_lir_expr *lw_i64c(lw *L, int64_t v) { return kf_lc_i64(L->f, v); }
/* i64 index arithmetic folds constants, so emitted index expressions stay readable */
static int is_i64c(const kf_lir_expr *e) { return e->op == KF_L_CONST && e->ty.s == KF_I64 && e->ty.lanes == 1; }
kf_lir_expr *lw_add(lw *L, kf_lir_expr *a, kf_lir_expr *b) {
  if (is_i64c(a) && is_i64c(b)) return lw_i64c(L, a->ival + b->ival);
  if (is_i64c(b) && b->ival == 0) return a;
  if (is_i64c(a) && a->ival == 0) return b;
  return kf_lbin(L->f, KF_L_ADD, a, b);
}
kf_lir_expr *lw_mul(lw *L, kf_lir_expr *a, kf_lir_expr *b) {
  if (is_i64c(a) && is_i64c(b)) return lw_i64c(L, a->ival * b->ival);
  if ((is_i64c(a) && a->ival == 0) || (is_i64c(b) && b->ival == 0)) return lw_i64c(L, 0);
  if (is_i64c(b) && b->ival == 1) return a;
  if (is_i64c(a) && a->ival == 1) return b;
  return kf_lbin(L->f, KF_L_MUL, a, b);
}
kf_lir_expr *lw_muli(lw *L, kf_lir_expr *a, int64_t k) {
  if (k == 1) return a;
  return lw_mul(L, a, lw_i64c(L, k));
}
kf_lir_expr *lw_addi(lw *L, kf_lir_expr *a, int64_t k) { return k ? lw_add(L, a, lw_i64c(L, k)) : a; }
kf_lir_expr *lw_min64(lw *L, kf_lir_expr *a, kf_lir_expr *b) { return kf_lbin(L->f, KF_L_MIN, a, b); }
kf_lir_expr *lw_fconst(lw *L, int lanes, double v) {
  return kf_lbcast(L->f, lanes, kf_lc_f(L->f, lw_ty(KF_F32, 1), v));
}
kf_lir_expr *lw_iconst(lw *L, kf_scalar s, int lanes, int64_t v) {
  return kf_lbcast(L->f, lanes, kf_lc_i(L->f, lw_ty(s, 1), v));
}
int lw_tmp(lw *L, const char *base, kf_ty t) {
  char name[64];
  snprintf(name, sizeof name, "%s%d", base, L->n_tmp++);
  return kf_lir_var_add(L->f, name, t);
}
static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

kf_lir_expr *lw_ix_expr(lw *L, const kf_ix *x) {
  kf_lir_expr *e = lw_i64c(L, x->c);
  for (int i = 0; i < x->n; i++)
    if (x->coef[i]) {
      kf_lir_expr *term = lw_muli(L, kf_lv(L->f, L->var_of_loop[x->var[i]]), x->coef[i]);
      e = (e->op == KF_L_CONST && e->ival == 0) ? term : lw_add(L, e, term);
    }
  if (x->cap != INT64_MAX) e = lw_min64(L, e, lw_i64c(L, x->cap));
  return e;
}

/* Element index of a row-major tile origin plus static offsets per dim. */
kf_lir_expr *lw_tile_index(lw *L, const kf_tile *tl, const int64_t *extra) {
  const kf_ir_buf *b = &L->ir->bufs.data[tl->buf];
  kf_lir_expr *e = NULL;
  int64_t stride = 1;
  for (int d = b->rank - 1; d >= 0; d--) {
    kf_ix off = tl->off[d];
    kf_lir_expr *od = lw_ix_expr(L, &off);
    if (extra && extra[d]) od = lw_addi(L, od, extra[d]);
    kf_lir_expr *term = lw_muli(L, od, stride);
    e = e ? lw_add(L, term, e) : term;
    stride *= b->dims[d];
  }
  return e;
}

/* ---- weights ---- */

typedef struct wgeom {
  int bits, pack;     /* pack 0 = n16k4, 1 = n16k1 */
  int64_t n, k, n_pad, k_pad, group, n_groups;
  int64_t count;      /* rank 3: a batch of packed matrices (e.g. one per kv head) */
  int64_t mat_bytes;  /* bytes of one packed matrix */
} wgeom;

static wgeom weight_geom(const kf_ir_buf *b) {
  wgeom g;
  g.bits = b->wbits;
  g.pack = b->wlayout;
  g.count = b->rank == 3 ? b->dims[0] : 1;
  g.n = b->dims[b->rank - 2];
  g.k = b->dims[b->rank - 1];
  g.n_pad = round_up(g.n, 16);
  g.k_pad = round_up(g.k, 8);
  g.group = b->wgroup;
  g.n_groups = (g.k + g.group - 1) / g.group;
  g.mat_bytes = g.n_pad * g.k_pad * g.bits / 8;
  return g;
}

/* ---- register tiles ---- */

static int reg_var(lw *L, const kf_tile *tl, int row, int col_vec) {
  const kf_ir_buf *b = &L->ir->bufs.data[tl->buf];
  int nv = (int)(b->dims[1] / L->vl);
  return L->reg_vars[tl->buf][row * nv + col_vec];
}

/* ---- ops ---- */

static int lower_zero(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  const kf_tile *tl = &n->t[0];
  const kf_ir_buf *b = &L->ir->bufs.data[tl->buf];
  int nv = (int)(b->dims[1] / L->vl);
  for (int r = 0; r < b->dims[0]; r++)
    for (int j = 0; j < nv; j++) {
      kf_lir_expr *z = b->dtype == KF_F32 ? lw_fconst(L, L->vl, 0.0) : lw_iconst(L, b->dtype, L->vl, 0);
      kf_lassign(L->f, blk, reg_var(L, tl, r, j), z);
    }
  return KF_OK;
}

/* Emits a vector sweep over `len` (static) elements starting at element index `base`:
** full vectors in a loop, then one partial vector. body(L, blk, idx, lanes_valid) is
** called for the loop body (lanes_valid = vl) and for the tail (lanes_valid < vl). */
typedef void (*sweep_fn)(lw *L, kf_lir_block *blk, kf_lir_expr *idx, kf_lir_expr *koff, int valid, void *ud);
static void sweep(lw *L, kf_lir_block *blk, kf_lir_expr *koff0, int64_t len, sweep_fn fn, void *ud) {
  int vl = L->vl;
  int64_t full = len / vl * vl;
  if (full) {
    int kv = lw_tmp(L, "k", lw_ty(KF_I64, 1));
    kf_lir_stmt *s = kf_lfor(L->f, blk, kv, lw_i64c(L, 0), lw_i64c(L, full), vl);
    fn(L, &s->body, kf_lv(L->f, kv), lw_add(L, koff0, kf_lv(L->f, kv)), vl, ud);
  }
  if (len > full) fn(L, blk, lw_i64c(L, full), lw_add(L, koff0, lw_i64c(L, full)), (int)(len - full), ud);
}

/* Per group of `group` elements of [0, len): the full groups in a run-time loop (one group
** needs no loop), then the partial last one. fn gets the group index and its first
** element as expressions, and the group's static length; code size does not grow with len. */
typedef void (*group_fn)(lw *L, kf_lir_block *blk, kf_lir_expr *g, kf_lir_expr *k_lo, int64_t glen, void *ud);
static void groups(lw *L, kf_lir_block *blk, int64_t len, int64_t group, group_fn fn, void *ud) {
  int64_t nfull = len / group;
  if (nfull == 1) {
    fn(L, blk, lw_i64c(L, 0), lw_i64c(L, 0), group, ud);
  } else if (nfull > 1) {
    int gv = lw_tmp(L, "g", lw_ty(KF_I64, 1));
    kf_lir_stmt *s = kf_lfor(L->f, blk, gv, lw_i64c(L, 0), lw_i64c(L, nfull), 1);
    fn(L, &s->body, kf_lv(L->f, gv), lw_muli(L, kf_lv(L->f, gv), group), group, ud);
  }
  if (len > nfull * group) fn(L, blk, lw_i64c(L, nfull), lw_i64c(L, nfull * group), len - nfull * group, ud);
}

typedef struct qctx {
  int src_buf, codes_buf;
  kf_lir_expr *src_row;   /* element index of the row start in src */
  kf_lir_expr *codes_row; /* element index of (pass 0, row, k=0) in codes */
  int64_t codes_pass_stride;
  int passes;
  int amax_var;
  int inv_var[4], s_var[4];
  int sum_var;            /* for the sums sweep */
  int pass;
  int mx;                 /* MXFP4 passes (codes 2*E2M1 in [-12, 12], per-32-block scales) */
  int src_f32;            /* source rows are f32 (a local buffer) rather than bf16 */
  /* for the per-group bodies of lower_quantize and the MX scales */
  const kf_tile *scales, *sums;
  int64_t scales_last, sums_last; /* last dims of the scales and sums buffers */
  int row_var;
} qctx;

static kf_lir_expr *load_src(lw *L, qctx *q, kf_lir_expr *koff, int valid) {
  kf_lir_expr *idx = lw_add(L, q->src_row, koff);
  kf_ty st = lw_ty(q->src_f32 ? KF_F32 : KF_BF16, L->vl);
  kf_lir_expr *raw = valid == L->vl ? kf_lload(L->f, st, q->src_buf, idx)
                                    : kf_lloadn(L->f, st, q->src_buf, idx, lw_i64c(L, valid));
  return kf_lcvt(L->f, lw_ty(KF_F32, L->vl), raw);
}

static void amax_body(lw *L, kf_lir_block *blk, kf_lir_expr *idx, kf_lir_expr *koff, int valid, void *ud) {
  (void)idx;
  qctx *q = ud;
  kf_lir_expr *v = load_src(L, q, koff, valid);
  kf_lir_expr *a = kf_lop(L->f, KF_L_ABS, v->ty, v, NULL, NULL);
  kf_lassign(L->f, blk, q->amax_var, kf_lbin(L->f, KF_L_MAX, kf_lv(L->f, q->amax_var), a));
}

static void codes_body(lw *L, kf_lir_block *blk, kf_lir_expr *idx, kf_lir_expr *koff, int valid, void *ud) {
  (void)idx;
  qctx *q = ud;
  int vl = L->vl;
  int res = lw_tmp(L, "res", lw_ty(KF_F32, vl));
  kf_lassign(L->f, blk, res, load_src(L, q, koff, valid));
  for (int p = 0; p < q->passes; p++) {
    /* q_p = clamp(round(res * inv_p), -127, 127); res -= q_p * s_p */
    kf_lir_expr *scaled = kf_lbin(L->f, KF_L_MUL, kf_lv(L->f, res), kf_lbcast(L->f, vl, kf_lv(L->f, q->inv_var[p])));
    kf_lir_expr *r = kf_lop(L->f, KF_L_ROUND, scaled->ty, scaled, NULL, NULL);
    r = kf_lbin(L->f, KF_L_MIN, r, lw_fconst(L, vl, 127.0));
    r = kf_lbin(L->f, KF_L_MAX, r, lw_fconst(L, vl, -127.0));
    int qv = lw_tmp(L, "q", lw_ty(KF_F32, vl));
    kf_lassign(L->f, blk, qv, r);
    if (p + 1 < q->passes) {
      kf_lir_expr *neg_s = kf_lbcast(L->f, vl, kf_lop(L->f, KF_L_NEG, lw_ty(KF_F32, 1), kf_lv(L->f, q->s_var[p]), NULL, NULL));
      kf_lassign(L->f, blk, res, kf_lop(L->f, KF_L_FMA, lw_ty(KF_F32, vl), kf_lv(L->f, qv), neg_s, kf_lv(L->f, res)));
    }
    kf_lir_expr *codes = kf_lcvt(L->f, lw_ty(KF_I8, vl), kf_lcvt(L->f, lw_ty(KF_I32, vl), kf_lv(L->f, qv)));
    kf_lir_expr *at = lw_add(L, lw_addi(L, q->codes_row, p * q->codes_pass_stride), koff);
    if (valid == vl) kf_lstore(L->f, blk, q->codes_buf, at, codes);
    else kf_lstoren(L->f, blk, q->codes_buf, at, codes, lw_i64c(L, valid));
  }
}

static void sums_body(lw *L, kf_lir_block *blk, kf_lir_expr *idx, kf_lir_expr *koff, int valid, void *ud) {
  (void)idx;
  qctx *q = ud;
  kf_lir_expr *at = lw_add(L, lw_addi(L, q->codes_row, q->pass * q->codes_pass_stride), koff);
  kf_lir_expr *c = valid == L->vl ? kf_lload(L->f, lw_ty(KF_I8, L->vl), q->codes_buf, at)
                                  : kf_lloadn(L->f, lw_ty(KF_I8, L->vl), q->codes_buf, at, lw_i64c(L, valid));
  kf_lassign(L->f, blk, q->sum_var,
             kf_lbin(L->f, KF_L_ADD, kf_lv(L->f, q->sum_var), kf_lcvt(L->f, lw_ty(KF_I32, L->vl), c)));
}

/* The doubled E2M1 code of d (|d| <= 12): round |d| to {0,1,2,3,4,6,8,12} with ties to even
** codes (steps of 1 below 4, 2 below 8, 4 above), sign restored. */
static kf_lir_expr *e2m1x2(lw *L, kf_lir_block *blk, kf_lir_expr *dexpr) {
  int vl = L->vl;
  kf_ty ft = lw_ty(KF_F32, vl);
  int d = lw_tmp(L, "d", ft), a = lw_tmp(L, "a", ft);
  kf_lassign(L->f, blk, d, dexpr);
  kf_lassign(L->f, blk, a, kf_lop(L->f, KF_L_ABS, ft, kf_lv(L->f, d), NULL, NULL));
  kf_lir_expr *r1 = kf_lop(L->f, KF_L_ROUND, ft, kf_lv(L->f, a), NULL, NULL);
  kf_lir_expr *r2 = kf_lbin(L->f, KF_L_MUL, kf_lop(L->f, KF_L_ROUND, ft, kf_lbin(L->f, KF_L_MUL, kf_lv(L->f, a), lw_fconst(L, vl, 0.5)), NULL, NULL), lw_fconst(L, vl, 2.0));
  kf_lir_expr *r4 = kf_lbin(L->f, KF_L_MUL, kf_lop(L->f, KF_L_ROUND, ft, kf_lbin(L->f, KF_L_MUL, kf_lv(L->f, a), lw_fconst(L, vl, 0.25)), NULL, NULL), lw_fconst(L, vl, 4.0));
  kf_lir_expr *lt4 = kf_lbin(L->f, KF_L_LT, kf_lv(L->f, a), lw_fconst(L, vl, 4.0));
  kf_lir_expr *lt8 = kf_lbin(L->f, KF_L_LT, kf_lv(L->f, a), lw_fconst(L, vl, 8.0));
  kf_lir_expr *mag = kf_lop(L->f, KF_L_SELECT, ft, lt4, r1, kf_lop(L->f, KF_L_SELECT, ft, lt8, r2, r4));
  mag = kf_lbin(L->f, KF_L_MIN, mag, lw_fconst(L, vl, 12.0));
  return kf_lop(L->f, KF_L_SELECT, ft, kf_lbin(L->f, KF_L_LT, kf_lv(L->f, d), lw_fconst(L, vl, 0.0)),
                kf_lop(L->f, KF_L_NEG, ft, mag, NULL, NULL), mag);
}

/* MSD with MXFP4 parts, one row: per block of 32, pass p quantizes the residual of the
** passes before it with its own non-clipping scale X_p = 2^ceil(log2(amax_p / 6)) (so no
** element clips: the alpha/64 bound of refs/msd.md section 3). codes = 2*E2M1 (int8),
** scales[p][row][block] = X_p / 2, so x ~ sum_p scale_p * code_p. */
static void mx_quantize_row(lw *L, kf_lir_block *rb, qctx *q, int64_t K, kf_lir_expr *scale_at0, int64_t scale_pass_stride) {
  int vl = L->vl;
  kf_ty ft = lw_ty(KF_F32, vl), f1 = lw_ty(KF_F32, 1), i1 = lw_ty(KF_I32, 1);
  int64_t n_blocks = (K + 31) / 32;
  int nvec = 32 / vl;
  int gv = lw_tmp(L, "blk", lw_ty(KF_I64, 1));
  /* full blocks in a loop, the last partial block (if any) after it */
  for (int part = 0; part < 2; part++) {
    int64_t lo = part ? K / 32 : 0, hi = part ? n_blocks : K / 32;
    if (hi <= lo) continue;
    int64_t len_last = K - (n_blocks - 1) * 32;
    kf_lir_stmt *gl = kf_lfor(L->f, rb, gv, lw_i64c(L, lo), lw_i64c(L, hi), 1);
    kf_lir_block *b = &gl->body;
    kf_lir_expr *k0 = lw_muli(L, kf_lv(L->f, gv), 32);
    int res[16];
    for (int i = 0; i < nvec; i++) {
      int64_t valid = part ? len_last - i * vl : vl;
      if (valid > vl) valid = vl;
      if (valid < 0) valid = 0;
      kf_lir_expr *idx = lw_add(L, q->src_row, lw_addi(L, k0, i * vl));
      kf_ty st = lw_ty(q->src_f32 ? KF_F32 : KF_BF16, vl);
      kf_lir_expr *raw = valid == vl ? kf_lload(L->f, st, q->src_buf, idx)
                         : kf_lloadn(L->f, st, q->src_buf, idx, lw_i64c(L, valid));
      res[i] = lw_tmp(L, "res", ft);
      kf_lassign(L->f, b, res[i], kf_lcvt(L->f, ft, raw));
    }
    for (int p = 0; p < q->passes; p++) {
      int am = lw_tmp(L, "am", ft);
      kf_lassign(L->f, b, am, lw_fconst(L, vl, 0.0));
      for (int i = 0; i < nvec; i++)
        kf_lassign(L->f, b, am, kf_lbin(L->f, KF_L_MAX, kf_lv(L->f, am), kf_lop(L->f, KF_L_ABS, ft, kf_lv(L->f, res[i]), NULL, NULL)));
      int amax = lw_tmp(L, "amax", f1);
      kf_lassign(L->f, b, amax, kf_lop(L->f, KF_L_REDUCE_MAX, f1, kf_lv(L->f, am), NULL, NULL));
      /* E = ceil(log2(amax/6)) from the bits of amax/6, then fixed up so 6*2^E >= amax exactly */
      int bits = lw_tmp(L, "bits", i1);
      kf_lassign(L->f, b, bits, kf_lbitcast(L->f, i1, kf_lbin(L->f, KF_L_DIV, kf_lv(L->f, amax), kf_lc_f(L->f, f1, 6.0))));
      kf_lir_expr *expo = kf_lbin(L->f, KF_L_SHR, kf_lv(L->f, bits), kf_lc_i(L->f, i1, 23));
      kf_lir_expr *mant = kf_lbin(L->f, KF_L_AND, kf_lv(L->f, bits), kf_lc_i(L->f, i1, 0x7fffff));
      kf_lir_expr *up = kf_lop(L->f, KF_L_SELECT, i1, kf_lbin(L->f, KF_L_NE, mant, kf_lc_i(L->f, i1, 0)), kf_lc_i(L->f, i1, 1), kf_lc_i(L->f, i1, 0));
      int ebias = lw_tmp(L, "eb", i1); /* biased exponent of X */
      kf_lassign(L->f, b, ebias, kf_lbin(L->f, KF_L_ADD, expo, up));
      kf_lassign(L->f, b, ebias, kf_lbin(L->f, KF_L_MAX, kf_lbin(L->f, KF_L_MIN, kf_lv(L->f, ebias), kf_lc_i(L->f, i1, 253)), kf_lc_i(L->f, i1, 2)));
      kf_lir_expr *X = kf_lbitcast(L->f, f1, kf_lbin(L->f, KF_L_SHL, kf_lv(L->f, ebias), kf_lc_i(L->f, i1, 23)));
      kf_lir_expr *too_small = kf_lbin(L->f, KF_L_LT, kf_lbin(L->f, KF_L_MUL, X, kf_lc_f(L->f, f1, 6.0)), kf_lv(L->f, amax));
      kf_lassign(L->f, b, ebias, kf_lbin(L->f, KF_L_ADD, kf_lv(L->f, ebias), kf_lop(L->f, KF_L_SELECT, i1, too_small, kf_lc_i(L->f, i1, 1), kf_lc_i(L->f, i1, 0))));
      /* s = X/2 (biased exponent - 1); inv = 2/X (biased 254 - ebias + 1... = 2^(128 - E)) */
      kf_lir_expr *zero = kf_lbin(L->f, KF_L_LE, kf_lv(L->f, amax), kf_lc_f(L->f, f1, 0.0));
      kf_lir_expr *s = kf_lbitcast(L->f, f1, kf_lbin(L->f, KF_L_SHL, kf_lbin(L->f, KF_L_SUB, kf_lv(L->f, ebias), kf_lc_i(L->f, i1, 1)), kf_lc_i(L->f, i1, 23)));
      kf_lir_expr *inv = kf_lbitcast(L->f, f1, kf_lbin(L->f, KF_L_SHL, kf_lbin(L->f, KF_L_SUB, kf_lc_i(L->f, i1, 255), kf_lv(L->f, ebias)), kf_lc_i(L->f, i1, 23)));
      kf_lassign(L->f, b, q->s_var[p], kf_lop(L->f, KF_L_SELECT, f1, zero, kf_lc_f(L->f, f1, 0.0), s));
      kf_lassign(L->f, b, q->inv_var[p], kf_lop(L->f, KF_L_SELECT, f1, zero, kf_lc_f(L->f, f1, 0.0), inv));
      kf_lstore(L->f, b, L->buf_of[q->scales->buf], lw_add(L, lw_addi(L, scale_at0, p * scale_pass_stride), kf_lv(L->f, gv)),
                kf_lv(L->f, q->s_var[p]));
      for (int i = 0; i < nvec; i++) {
        int64_t valid = part ? len_last - i * vl : vl;
        if (valid > vl) valid = vl;
        if (valid <= 0) continue;
        int qv = lw_tmp(L, "q", ft);
        kf_lassign(L->f, b, qv, e2m1x2(L, b, kf_lbin(L->f, KF_L_MUL, kf_lv(L->f, res[i]), kf_lbcast(L->f, vl, kf_lv(L->f, q->inv_var[p])))));
        if (p + 1 < q->passes) {
          kf_lir_expr *neg_s = kf_lbcast(L->f, vl, kf_lop(L->f, KF_L_NEG, f1, kf_lv(L->f, q->s_var[p]), NULL, NULL));
          kf_lassign(L->f, b, res[i], kf_lop(L->f, KF_L_FMA, ft, kf_lv(L->f, qv), neg_s, kf_lv(L->f, res[i])));
        }
        kf_lir_expr *codes = kf_lcvt(L->f, lw_ty(KF_I8, vl), kf_lcvt(L->f, lw_ty(KF_I32, vl), kf_lv(L->f, qv)));
        kf_lir_expr *at = lw_add(L, lw_addi(L, q->codes_row, p * q->codes_pass_stride), lw_addi(L, k0, i * vl));
        if (valid == vl) kf_lstore(L->f, b, q->codes_buf, at, codes);
        else kf_lstoren(L->f, b, q->codes_buf, at, codes, lw_i64c(L, valid));
      }
    }
  }
}

/* INT8 passes of one act group of a row: s1 = amax/127, s_p = s1/254^(p-1), codes. */
static void act_group_body(lw *L, kf_lir_block *b, kf_lir_expr *g, kf_lir_expr *k_lo, int64_t len, void *ud) {
  qctx *q = ud;
  int vl = L->vl;
  kf_ty f1 = lw_ty(KF_F32, 1);
  kf_lassign(L->f, b, q->amax_var, lw_fconst(L, vl, 0.0));
  sweep(L, b, k_lo, len, amax_body, q);
  int amax = lw_tmp(L, "am", f1);
  kf_lassign(L->f, b, amax, kf_lop(L->f, KF_L_REDUCE_MAX, f1, kf_lv(L->f, q->amax_var), NULL, NULL));
  /* s1 = amax/127; inv1 = 127/amax (0 for an all-zero group) */
  kf_lir_expr *pos = kf_lbin(L->f, KF_L_LT, kf_lc_f(L->f, f1, 0.0), kf_lv(L->f, amax));
  kf_lir_expr *safe = kf_lop(L->f, KF_L_SELECT, f1, pos, kf_lv(L->f, amax), kf_lc_f(L->f, f1, 1.0));
  kf_lir_expr *inv = kf_lbin(L->f, KF_L_DIV, kf_lc_f(L->f, f1, 127.0), safe);
  kf_lassign(L->f, b, q->inv_var[0],
             kf_lop(L->f, KF_L_SELECT, f1, kf_lbin(L->f, KF_L_LT, kf_lc_f(L->f, f1, 0.0), kf_lv(L->f, amax)), inv,
                    kf_lc_f(L->f, f1, 0.0)));
  kf_lassign(L->f, b, q->s_var[0], kf_lbin(L->f, KF_L_DIV, kf_lv(L->f, amax), kf_lc_f(L->f, f1, 127.0)));
  for (int p = 1; p < q->passes; p++) {
    kf_lassign(L->f, b, q->s_var[p], kf_lbin(L->f, KF_L_DIV, kf_lv(L->f, q->s_var[p - 1]), kf_lc_f(L->f, f1, 254.0)));
    kf_lassign(L->f, b, q->inv_var[p], kf_lbin(L->f, KF_L_MUL, kf_lv(L->f, q->inv_var[p - 1]), kf_lc_f(L->f, f1, 254.0)));
  }
  for (int p = 0; p < q->passes; p++) {
    int64_t extra[4] = {p, 0, 0, 0};
    kf_lir_expr *at = lw_add(L, lw_add(L, lw_tile_index(L, q->scales, extra), g),
                             lw_muli(L, kf_lv(L->f, q->row_var), q->scales_last));
    kf_lstore(L->f, b, L->buf_of[q->scales->buf], at, kf_lv(L->f, q->s_var[p]));
  }
  sweep(L, b, k_lo, len, codes_body, q);
}

/* Sum of pass q->pass's codes over one sum group of a row. */
static void sum_group_body(lw *L, kf_lir_block *b, kf_lir_expr *g, kf_lir_expr *k_lo, int64_t len, void *ud) {
  qctx *q = ud;
  kf_lassign(L->f, b, q->sum_var, lw_iconst(L, KF_I32, L->vl, 0));
  sweep(L, b, k_lo, len, sums_body, q);
  int64_t extra[4] = {q->pass, 0, 0, 0};
  kf_lir_expr *at = lw_add(L, lw_add(L, lw_tile_index(L, q->sums, extra), g), lw_muli(L, kf_lv(L->f, q->row_var), q->sums_last));
  kf_lstore(L->f, b, L->buf_of[q->sums->buf], at,
            kf_lop(L->f, KF_L_REDUCE_ADD, lw_ty(KF_I32, 1), kf_lv(L->f, q->sum_var), NULL, NULL));
}

/* MSD activation decomposition (DESIGN.md section 4): per row (or per act group) s1 =
** amax/127, q1 = round(x/s1); pass p quantizes the residual with s_p = s1/254^(p-1). */
static int lower_quantize(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  const kf_tile *src = &n->t[0], *codes = &n->t[1], *scales = &n->t[2], *sums = &n->t[3];
  const kf_ir_buf *bs = &L->ir->bufs.data[src->buf], *bc = &L->ir->bufs.data[codes->buf];
  const kf_ir_buf *bsc = &L->ir->bufs.data[scales->buf], *bsu = &L->ir->bufs.data[sums->buf];
  int passes = (int)n->i[0];
  int64_t K = bs->dims[1], M = bs->dims[0], Kp = bc->dims[2], rows = src->ext[0];
  int64_t ag = n->i[1] > 0 ? n->i[1] : K, sg = n->i[2] > 0 ? n->i[2] : Kp;
  if (ag < K && ag % L->vl) return ERR_AT(L, n, "quantize: act_group %lld must be a multiple of %d", (long long)ag, L->vl);
  int64_t n_ag = (K + ag - 1) / ag;
  int vl = L->vl;

  kf_lcomment(L->f, blk, "MSD quantize (%s): %d pass(es), act group %lld, sum group %lld", n->i[3] ? "MXFP4" : "INT8",
              passes, (long long)ag, (long long)sg);
  int rv = lw_tmp(L, "r", lw_ty(KF_I64, 1));
  kf_lir_stmt *rloop = kf_lfor(L->f, blk, rv, lw_i64c(L, 0), lw_i64c(L, rows), 1);
  kf_lir_block *rb = &rloop->body;
  /* rows past M repeat row M-1 (their results are never stored) */
  kf_lir_expr *m = lw_min64(L, lw_add(L, lw_ix_expr(L, &src->off[0]), kf_lv(L->f, rv)), lw_i64c(L, M - 1));
  qctx q;
  memset(&q, 0, sizeof q);
  q.src_buf = L->buf_of[src->buf];
  q.codes_buf = L->buf_of[codes->buf];
  q.passes = passes;
  q.codes_pass_stride = bc->dims[1] * Kp;
  q.src_f32 = bs->dtype == KF_F32;
  int src_row = lw_tmp(L, "xrow", lw_ty(KF_I64, 1)), codes_row = lw_tmp(L, "crow", lw_ty(KF_I64, 1));
  kf_lassign(L->f, rb, src_row, lw_add(L, lw_muli(L, m, K), lw_ix_expr(L, &src->off[1])));
  int64_t zero3[4] = {0};
  kf_tile ct = *codes;
  (void)zero3;
  kf_lassign(L->f, rb, codes_row,
             lw_add(L, lw_tile_index(L, &ct, NULL), lw_muli(L, kf_lv(L->f, rv), Kp)));
  q.src_row = kf_lv(L->f, src_row);
  q.codes_row = kf_lv(L->f, codes_row);
  q.amax_var = lw_tmp(L, "amax", lw_ty(KF_F32, vl));
  for (int p = 0; p < passes; p++) {
    q.inv_var[p] = lw_tmp(L, "inv", lw_ty(KF_F32, 1));
    q.s_var[p] = lw_tmp(L, "s", lw_ty(KF_F32, 1));
  }
  q.mx = (int)n->i[3];
  q.scales = scales;
  q.sums = sums;
  q.scales_last = bsc->dims[2];
  q.sums_last = bsu->dims[2];
  q.row_var = rv;
  if (q.mx) {
    if (32 % vl) return ERR_AT(L, n, "quantize: MX blocks need a vector width dividing 32");
    int64_t z[4] = {0};
    mx_quantize_row(L, rb, &q, K, lw_add(L, lw_tile_index(L, scales, z), lw_muli(L, kf_lv(L->f, rv), bsc->dims[2])),
                    bsc->dims[1] * bsc->dims[2]);
    n_ag = 0; /* the INT8 path below is skipped */
  }
  if (n_ag) groups(L, rb, K, ag, act_group_body, &q);
  /* zero the padding columns [K, Kp) of every pass */
  if (Kp > K)
    for (int p = 0; p < passes; p++) {
      kf_lir_expr *at = lw_add(L, lw_addi(L, q.codes_row, p * q.codes_pass_stride), lw_i64c(L, K));
      kf_lstoren(L->f, rb, q.codes_buf, at, lw_iconst(L, KF_I8, 8, 0), lw_i64c(L, Kp - K));
    }
  /* sums of codes per sum group (for the offset-binary weight correction) */
  q.sum_var = lw_tmp(L, "sum", lw_ty(KF_I32, vl));
  for (int p = 0; p < passes; p++) {
    q.pass = p;
    groups(L, rb, Kp, sg, sum_group_body, &q);
  }
  return KF_OK;
}

/* The last n tile of a GEMM may run past the packed weight columns (n_pad). Instead of a
** branch per load, the k loop is emitted once per possible count of valid weight vectors
** (nv, nv-1, ..., 1) and the count is chosen at run time:
**   if (nv <= nvalid) loop(nv) else if (nv-1 <= nvalid) loop(nv-1) ... else loop(1) */
typedef struct valid_variants {
  int nvalid;           /* LIR var: (n_pad - n1) / vl */
  kf_lir_block *chain;  /* where the next variant goes */
} valid_variants;

static void valid_variants_init(lw *L, valid_variants *v, kf_lir_block *blk, kf_lir_expr *n_pad, kf_lir_expr *n1) {
  v->nvalid = lw_tmp(L, "nvalid", lw_ty(KF_I64, 1));
  kf_lassign(L->f, blk, v->nvalid, kf_lbin(L->f, KF_L_DIV, kf_lbin(L->f, KF_L_SUB, n_pad, n1), lw_i64c(L, L->vl)));
  v->chain = blk;
}

/* The block for the variant with nvv valid vectors (call with nvv = nv, nv-1, ..., 1). */
static kf_lir_block *valid_variants_next(lw *L, valid_variants *v, int nvv) {
  if (nvv == 1) return v->chain;
  kf_lir_stmt *sel = kf_lif(L->f, v->chain, kf_lbin(L->f, KF_L_LE, lw_i64c(L, nvv), kf_lv(L->f, v->nvalid)));
  v->chain = &sel->els;
  return &sel->body;
}

/* vl f32 from a 2-D tile at (row 0, col extra[1]), reading only inside the buffer's row
** (zero beyond): per-column scale vectors of a last, partial n tile. */
static kf_lir_expr *load_cols(lw *L, const kf_tile *t, const int64_t *extra, int vl) {
  /* extra holds the column offset in the tile's last dim */
  const kf_ir_buf *b = &L->ir->bufs.data[t->buf];
  kf_lir_expr *col = lw_addi(L, lw_ix_expr(L, &t->off[b->rank - 1]), extra[b->rank - 1]);
  kf_lir_expr *left = kf_lbin(L->f, KF_L_SUB, lw_i64c(L, b->dims[b->rank - 1]), col);
  kf_lir_expr *cnt = kf_lbin(L->f, KF_L_MAX, lw_i64c(L, 0), lw_min64(L, left, lw_i64c(L, vl)));
  return kf_lloadn(L->f, lw_ty(KF_F32, vl), L->buf_of[t->buf], lw_tile_index(L, t, extra), cnt);
}

/* int8 mma: acc[P*MR][NR] (i32) += codes[P][MR][k-span] x W[NR][k-span] with vpdpbusd. */
static int lower_mma_i8(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  const kf_tile *acc = &n->t[0], *a = &n->t[1], *b = &n->t[2];
  const kf_ir_buf *bw = &L->ir->bufs.data[b->buf];
  wgeom g = weight_geom(bw);
  int passes = (int)a->ext[0];
  int64_t mr = a->ext[1], nr = b->ext[b->rank - 2], span = a->ext[2];
  int vl = L->vl, nv = (int)(nr / vl);
  if (passes * mr * nv + nv + 2 > 96)
    return ERR_AT(L, n, "mma: register tile too large: %d passes x mr=%lld x nr=%lld needs %lld vector registers",
                  passes, (long long)mr, (long long)nr, (long long)(passes * mr * nv + nv));

  kf_lcomment(L->f, blk, "mma int8 (vpdpbusd): %d pass(es) x %lld rows x %lld cols, w%d", passes, (long long)mr, (long long)nr, g.bits);
  kf_lir_expr *k0 = lw_ix_expr(L, &b->off[b->rank - 1]);
  kf_lir_expr *n1 = lw_ix_expr(L, &b->off[b->rank - 2]);
  kf_lir_expr *mat0 = b->rank == 3 ? lw_muli(L, lw_ix_expr(L, &b->off[0]), g.mat_bytes) : lw_i64c(L, 0);
  /* one k loop per count of valid weight vectors in the last n tile (see valid_variants) */
  valid_variants vv;
  valid_variants_init(L, &vv, blk, lw_i64c(L, g.n_pad), n1);
  for (int nvv = nv; nvv >= 1; nvv--) {
    kf_lir_block *vb = valid_variants_next(L, &vv, nvv);
    int kv = lw_tmp(L, "kk", lw_ty(KF_I64, 1));
    int64_t kstep = g.bits == 8 ? 4 : 8;
    kf_lir_stmt *loop = kf_lfor(L->f, vb, kv, k0, lw_min64(L, lw_addi(L, k0, span), lw_i64c(L, g.k_pad)), kstep);
    kf_lir_block *lb = &loop->body;
    kf_lir_expr *kk = kf_lv(L->f, kv);
    /* weight row base: 8-bit: nb*Kp*16 + kk*16; 4-bit: nb*Kp*8 + kk*8, nb = n1/16 */
    int wbase = lw_tmp(L, "wb", lw_ty(KF_I64, 1));
    int64_t per_nb = g.bits == 8 ? g.k_pad * 16 : g.k_pad * 8;
    kf_lassign(L->f, lb, wbase,
               lw_add(L, mat0, lw_add(L, lw_muli(L, kf_lbin(L->f, KF_L_DIV, n1, lw_i64c(L, 16)), per_nb), lw_muli(L, kk, g.bits == 8 ? 16 : 8))));
    int wv[2][16];
    for (int j = 0; j < nvv; j++) {
      int64_t col = (int64_t)j * vl, nb_off = col / 16, part = (col % 16) / vl;
      kf_lir_expr *at = lw_addi(L, kf_lv(L->f, wbase), nb_off * per_nb + part * vl * 4);
      kf_lir_expr *raw = kf_lload(L->f, lw_ty(KF_U8, 4 * vl), L->buf_of[b->buf], at);
      wv[0][j] = lw_tmp(L, "w", lw_ty(KF_U8, 4 * vl));
      if (g.bits == 8) {
        kf_lassign(L->f, lb, wv[0][j], raw);
      } else {
        int rawv = lw_tmp(L, "wr", lw_ty(KF_U8, 4 * vl));
        kf_lassign(L->f, lb, rawv, raw);
        wv[1][j] = lw_tmp(L, "w", lw_ty(KF_U8, 4 * vl));
        kf_lir_expr *lo = kf_lbin(L->f, KF_L_AND, kf_lv(L->f, rawv), lw_iconst(L, KF_U8, 4 * vl, 15));
        kf_lir_expr *hi = kf_lbin(L->f, KF_L_SHR, kf_lv(L->f, rawv), lw_iconst(L, KF_U8, 4 * vl, 4));
        if (bw->wmx) { /* E2M1 nibble -> 128 + 2*value: the 8-bit offset-binary code */
          kf_lir_expr *lut = kf_lload(L->f, lw_ty(KF_U8, 16), L->mx_lut_buf, lw_i64c(L, 0));
          lo = kf_lop(L->f, KF_L_LUT16, lw_ty(KF_U8, 4 * vl), lut, lo, NULL);
          hi = kf_lop(L->f, KF_L_LUT16, lw_ty(KF_U8, 4 * vl), lut, hi, NULL);
        }
        kf_lassign(L->f, lb, wv[0][j], lo);
        kf_lassign(L->f, lb, wv[1][j], hi);
      }
    }
    int halves = g.bits == 8 ? 1 : 2;
    for (int h = 0; h < halves; h++)
      for (int p = 0; p < passes; p++)
        for (int64_t m = 0; m < mr; m++) {
          /* broadcast 4 activation codes (one i32) */
          int64_t extra[4] = {p, m, 0, 0};
          kf_lir_expr *at = lw_add(L, lw_tile_index(L, a, extra), lw_add(L, kf_lbin(L->f, KF_L_SUB, kk, k0), lw_i64c(L, 4 * h)));
          kf_lir_expr *x4 = kf_lbitcast(L->f, lw_ty(KF_I32, 1), kf_lload(L->f, lw_ty(KF_I8, 4), L->buf_of[a->buf], at));
          int xb = lw_tmp(L, "xb", lw_ty(KF_I8, 4 * vl));
          kf_lassign(L->f, lb, xb, kf_lbitcast(L->f, lw_ty(KF_I8, 4 * vl), kf_lbcast(L->f, vl, x4)));
          for (int j = 0; j < nvv; j++) {
            int av = reg_var(L, acc, (int)(p * mr + m), j);
            kf_lassign(L->f, lb, av,
                       kf_lop(L->f, KF_L_DPBUSD, lw_ty(KF_I32, vl), kf_lv(L->f, av), kf_lv(L->f, wv[h][j]), kf_lv(L->f, xb)));
          }
        }
  }
  return KF_OK;
}

/* float mma with in-register dequant (the baseline): acc[MR][NR] (f32) +=
** x[MR][k-span] (bf16) x dequant(W[NR][k-span]) with W = (u - off) * scale. */
static int lower_mma_dq(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  const kf_tile *acc = &n->t[0], *a = &n->t[1], *b = &n->t[2];
  const kf_ir_buf *ba = &L->ir->bufs.data[a->buf], *bw = &L->ir->bufs.data[b->buf];
  const kf_tile *sc = &n->t[3];
  const kf_ir_buf *bsc = &L->ir->bufs.data[sc->buf];
  wgeom g = weight_geom(bw);
  int64_t mr = a->ext[0], nr = b->ext[0], span = a->ext[1];
  int vl = L->vl, nv = (int)(nr / vl);
  int64_t M = ba->dims[0], K = ba->dims[1];
  int64_t off = g.bits == 8 ? 128 : 8;

  kf_lcomment(L->f, blk, "mma dequant+fma: %lld rows x %lld cols, w%d", (long long)mr, (long long)nr, g.bits);
  kf_lir_expr *k0 = lw_ix_expr(L, &a->off[1]);
  kf_lir_expr *m1 = lw_ix_expr(L, &a->off[0]);
  kf_lir_expr *n1 = lw_ix_expr(L, &b->off[0]);
  /* per-vector weight scales of this group */
  int sv[16];
  for (int j = 0; j < nv; j++) {
    int64_t extra[4] = {0};
    extra[bsc->rank - 1] = (int64_t)j * vl;
    sv[j] = lw_tmp(L, "sc", lw_ty(KF_F32, vl));
    kf_lassign(L->f, blk, sv[j], load_cols(L, sc, extra, vl));
  }
  /* x row indices, clamped to M-1 (rows past M are computed but never stored) */
  int xrow[64];
  if (mr > 64) return ERR_AT(L, n, "mma: mr too large");
  for (int64_t m = 0; m < mr; m++) {
    xrow[m] = lw_tmp(L, "xr", lw_ty(KF_I64, 1));
    kf_lassign(L->f, blk, xrow[m], lw_muli(L, lw_min64(L, lw_addi(L, m1, m), lw_i64c(L, M - 1)), K));
  }
  /* one k loop per count of valid weight vectors in the last n tile (see valid_variants) */
  valid_variants vv;
  valid_variants_init(L, &vv, blk, lw_i64c(L, g.n_pad), n1);
  for (int nvv = nv; nvv >= 1; nvv--) {
    kf_lir_block *vb = valid_variants_next(L, &vv, nvv);
    int kv = lw_tmp(L, "kk", lw_ty(KF_I64, 1));
    int kstep = g.bits == 8 ? 1 : 2;
    kf_lir_stmt *loop = kf_lfor(L->f, vb, kv, k0, lw_min64(L, lw_addi(L, k0, span), lw_i64c(L, K)), kstep);
    kf_lir_block *lb = &loop->body;
    kf_lir_expr *kk = kf_lv(L->f, kv);
    int64_t per_nb = g.bits == 8 ? g.k_pad * 16 : g.k_pad * 8;
    int wbase = lw_tmp(L, "wb", lw_ty(KF_I64, 1));
    kf_lassign(L->f, lb, wbase,
               lw_add(L, lw_muli(L, kf_lbin(L->f, KF_L_DIV, n1, lw_i64c(L, 16)), per_nb), lw_muli(L, kk, g.bits == 8 ? 16 : 8)));
    int halves = g.bits == 8 ? 1 : 2;
    int wf[2][16];
    for (int j = 0; j < nvv; j++) {
      int64_t col = (int64_t)j * vl, nb_off = col / 16, part = (col % 16) / vl;
      kf_lir_expr *at = lw_addi(L, kf_lv(L->f, wbase), nb_off * per_nb + part * vl);
      int raw = lw_tmp(L, "wr", lw_ty(KF_U8, vl));
      kf_lassign(L->f, lb, raw, kf_lload(L->f, lw_ty(KF_U8, vl), L->buf_of[b->buf], at));
      for (int h = 0; h < halves; h++) {
        kf_lir_expr *u = kf_lv(L->f, raw);
        if (g.bits == 4)
          u = h == 0 ? kf_lbin(L->f, KF_L_AND, u, lw_iconst(L, KF_U8, vl, 15)) : kf_lbin(L->f, KF_L_SHR, u, lw_iconst(L, KF_U8, vl, 4));
        kf_lir_expr *qi = kf_lbin(L->f, KF_L_SUB, kf_lcvt(L->f, lw_ty(KF_I32, vl), u), lw_iconst(L, KF_I32, vl, off));
        wf[h][j] = lw_tmp(L, "wf", lw_ty(KF_F32, vl));
        kf_lir_expr *deq = kf_lbin(L->f, KF_L_MUL, kf_lcvt(L->f, lw_ty(KF_F32, vl), qi), kf_lv(L->f, sv[j]));
        if (n->i[1]) /* round the dequantized weight to bf16, as a BF16-GEMM baseline does */
          deq = kf_lcvt(L->f, lw_ty(KF_F32, vl), kf_lcvt(L->f, lw_ty(KF_BF16, vl), deq));
        kf_lassign(L->f, lb, wf[h][j], deq);
      }
    }
    for (int h = 0; h < halves; h++)
      for (int64_t m = 0; m < mr; m++) {
        kf_lir_expr *col = lw_addi(L, kk, h);
        if (h == 1 && (K % 2)) col = lw_min64(L, col, lw_i64c(L, K - 1)); /* padding weight is 0 */
        kf_lir_expr *xv = kf_lcvt(L->f, lw_ty(KF_F32, 1), kf_lload(L->f, lw_ty(KF_BF16, 1), L->buf_of[a->buf], lw_add(L, kf_lv(L->f, xrow[m]), col)));
        int xb = lw_tmp(L, "xb", lw_ty(KF_F32, vl));
        kf_lassign(L->f, lb, xb, kf_lbcast(L->f, vl, xv));
        for (int j = 0; j < nvv; j++) {
          int av = reg_var(L, acc, (int)m, j);
          kf_lassign(L->f, lb, av, kf_lop(L->f, KF_L_FMA, lw_ty(KF_F32, vl), kf_lv(L->f, wf[h][j]), kf_lv(L->f, xb), kf_lv(L->f, av)));
        }
      }
  }
  return KF_OK;
}

static int lower_mma(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  const kf_ir_buf *ba = &L->ir->bufs.data[n->t[1].buf];
  if (ba->dtype == KF_I8) return lower_mma_i8(L, n, blk);
  if (ba->dtype == KF_BF16) return lower_mma_dq(L, n, blk);
  return ERR_AT(L, n, "mma: unsupported operand type %s for 'a' (i8 codes or bf16)", kf_scalar_name(ba->dtype));
}

/* accf[m][n] += sum_p (acci[p*MR+m][n] - off*sums[p][m]) * act_scale[p][m] * w_scale[n] */
static int lower_scale_acc(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  const kf_tile *accf = &n->t[0], *acci = &n->t[1], *xs = &n->t[2], *xsum = &n->t[3], *wsc = &n->t[4];
  const kf_ir_buf *bf = &L->ir->bufs.data[accf->buf];
  int passes = (int)n->i[0];
  int64_t mr = bf->dims[0], nr = bf->dims[1], off = n->i[1];
  int vl = L->vl, nv = (int)(nr / vl);
  kf_lcomment(L->f, blk, "scale_acc: %d pass(es), weight offset %lld", passes, (long long)off);
  int wv[16];
  const kf_ir_buf *bws = &L->ir->bufs.data[wsc->buf];
  for (int j = 0; j < nv; j++) {
    int64_t extra[4] = {0};
    extra[bws->rank - 1] = (int64_t)j * vl; /* along the columns (the last dim) */
    wv[j] = lw_tmp(L, "ws", lw_ty(KF_F32, vl));
    kf_lassign(L->f, blk, wv[j], load_cols(L, wsc, extra, vl));
  }
  for (int p = 0; p < passes; p++)
    for (int64_t m = 0; m < mr; m++) {
      int64_t extra[4] = {p, m, 0, 0};
      kf_lir_expr *s = kf_lload(L->f, lw_ty(KF_F32, 1), L->buf_of[xs->buf], lw_tile_index(L, xs, extra));
      kf_lir_expr *sum = kf_lload(L->f, lw_ty(KF_I32, 1), L->buf_of[xsum->buf], lw_tile_index(L, xsum, extra));
      int sb = lw_tmp(L, "sx", lw_ty(KF_F32, vl)), corr = lw_tmp(L, "corr", lw_ty(KF_I32, vl));
      kf_lassign(L->f, blk, sb, kf_lbcast(L->f, vl, s));
      kf_lassign(L->f, blk, corr, kf_lbcast(L->f, vl, kf_lbin(L->f, KF_L_MUL, sum, kf_lc_i(L->f, lw_ty(KF_I32, 1), off))));
      for (int j = 0; j < nv; j++) {
        int iv = reg_var(L, acci, (int)(p * mr + m), j), fv = reg_var(L, accf, (int)m, j);
        kf_lir_expr *exact = kf_lbin(L->f, KF_L_SUB, kf_lv(L->f, iv), kf_lv(L->f, corr));
        kf_lir_expr *fl = kf_lcvt(L->f, lw_ty(KF_F32, vl), exact);
        kf_lir_expr *scale = kf_lbin(L->f, KF_L_MUL, kf_lv(L->f, wv[j]), kf_lv(L->f, sb));
        kf_lassign(L->f, blk, fv, kf_lop(L->f, KF_L_FMA, lw_ty(KF_F32, vl), fl, scale, kf_lv(L->f, fv)));
      }
    }
  return KF_OK;
}

/* Memory <-> register tile moves, clamped at the buffer's edges (rows by IF, columns by
** a partial vector). mode: 0 load, 1 store, 2 accumulate-store. */
static int lower_move(lw *L, const kf_ir_node *n, kf_lir_block *blk, int mode) {
  const kf_tile *mem = mode == 0 ? &n->t[1] : &n->t[0];
  const kf_tile *reg = mode == 0 ? &n->t[0] : &n->t[1];
  const kf_ir_buf *bm = &L->ir->bufs.data[mem->buf], *br = &L->ir->bufs.data[reg->buf];
  int vl = L->vl, nv = (int)(br->dims[1] / vl);
  int64_t rows = br->dims[0], R = bm->dims[0], C = bm->dims[1];
  kf_lir_expr *r0 = lw_ix_expr(L, &mem->off[0]), *c0 = lw_ix_expr(L, &mem->off[1]);
  int c0v = lw_tmp(L, "c0", lw_ty(KF_I64, 1));
  kf_lassign(L->f, blk, c0v, c0);
  kf_lir_expr *full = kf_lbin(L->f, KF_L_LE, lw_addi(L, kf_lv(L->f, c0v), br->dims[1]), lw_i64c(L, C));
  kf_lir_stmt *sel = kf_lif(L->f, blk, full);
  for (int variant = 0; variant < 2; variant++) {
    kf_lir_block *vb = variant == 0 ? &sel->body : &sel->els;
    for (int64_t r = 0; r < rows; r++) {
      kf_lir_expr *row = lw_addi(L, r0, r);
      kf_lir_stmt *guard = kf_lif(L->f, vb, kf_lbin(L->f, KF_L_LT, row, lw_i64c(L, R)));
      for (int j = 0; j < nv; j++) {
        kf_lir_expr *col = lw_addi(L, kf_lv(L->f, c0v), (int64_t)j * vl);
        kf_lir_expr *at = lw_add(L, lw_muli(L, row, C), col);
        kf_lir_expr *cnt = NULL;
        if (variant == 1) {
          kf_lir_expr *left = kf_lbin(L->f, KF_L_SUB, lw_i64c(L, C), col);
          cnt = kf_lbin(L->f, KF_L_MAX, lw_i64c(L, 0), lw_min64(L, left, lw_i64c(L, vl)));
        }
        int rv = reg_var(L, reg, (int)r, j);
        kf_ty vt = lw_ty(br->dtype, vl);
        if (mode == 0) {
          kf_lir_expr *v = cnt ? kf_lloadn(L->f, vt, L->buf_of[mem->buf], at, cnt) : kf_lload(L->f, vt, L->buf_of[mem->buf], at);
          kf_lassign(L->f, &guard->body, rv, v);
        } else {
          kf_lir_expr *v = kf_lv(L->f, rv);
          if (mode == 2) {
            kf_lir_expr *old = cnt ? kf_lloadn(L->f, vt, L->buf_of[mem->buf], at, cnt) : kf_lload(L->f, vt, L->buf_of[mem->buf], at);
            v = kf_lbin(L->f, KF_L_ADD, old, v);
          }
          if (cnt) kf_lstoren(L->f, &guard->body, L->buf_of[mem->buf], at, v, cnt);
          else kf_lstore(L->f, &guard->body, L->buf_of[mem->buf], at, v);
        }
      }
      if (mode == 0) { /* rows past the edge read as zero */
        for (int j = 0; j < nv; j++) {
          kf_lir_expr *z = br->dtype == KF_F32 ? lw_fconst(L, vl, 0.0) : lw_iconst(L, br->dtype, vl, 0);
          kf_lassign(L->f, &guard->els, reg_var(L, reg, (int)r, j), z);
        }
      }
    }
  }
  return KF_OK;
}

static int lower_block(lw *L, const kf_ir_block *b, kf_lir_block *out);

static int lower_node(lw *L, const kf_ir_node *n, kf_lir_block *out) {
  switch (n->op) {
  case KF_OP_LOOP: {
    int v = L->var_of_loop[n->var];
    if (n->parallel) {
      /* the parallel range: this loop, or this loop x the parallel loop nested in it,
      ** flattened: t in [par_lo, par_hi), v1 = lo1 + (t / n2) * step1, v2 = lo2 + (t % n2) * step2 */
      const kf_ir_node *inner = n->body.len == 1 && n->body.data[0]->op == KF_OP_LOOP && n->body.data[0]->parallel
                                    ? n->body.data[0] : NULL;
      int64_t lo1 = n->lo.c, hi1 = n->hi.cap < n->hi.c ? n->hi.cap : n->hi.c;
      int64_t n1 = hi1 > lo1 ? (hi1 - lo1 + n->step - 1) / n->step : 0, n2 = 1, lo2 = 0;
      if (inner) {
        int64_t hi2 = inner->hi.cap < inner->hi.c ? inner->hi.cap : inner->hi.c;
        lo2 = inner->lo.c;
        n2 = hi2 > lo2 ? (hi2 - lo2 + inner->step - 1) / inner->step : 0;
      }
      L->f->par_total = n1 * n2;
      int tv = lw_tmp(L, "task", lw_ty(KF_I64, 1));
      kf_lir_stmt *s = kf_lfor(L->f, out, tv, kf_lv(L->f, L->f->par_lo_var),
                               lw_min64(L, kf_lv(L->f, L->f->par_hi_var), lw_i64c(L, n1 * n2)), 1);
      kf_lir_expr *t = kf_lv(L->f, tv);
      if (!inner) {
        kf_lassign(L->f, &s->body, v, lw_addi(L, lw_muli(L, t, n->step), lo1));
        return lower_block(L, &n->body, &s->body);
      }
      kf_lir_expr *q = kf_lbin(L->f, KF_L_DIV, t, lw_i64c(L, n2));
      kf_lassign(L->f, &s->body, v, lw_addi(L, lw_muli(L, q, n->step), lo1));
      kf_lir_expr *r = kf_lbin(L->f, KF_L_SUB, t, lw_muli(L, q, n2));
      kf_lassign(L->f, &s->body, L->var_of_loop[inner->var], lw_addi(L, lw_muli(L, r, inner->step), lo2));
      return lower_block(L, &inner->body, &s->body);
    }
    kf_lir_expr *lo = lw_ix_expr(L, &n->lo), *hi = lw_ix_expr(L, &n->hi);
    kf_lir_stmt *s = kf_lfor(L->f, out, v, lo, hi, n->step);
    return lower_block(L, &n->body, &s->body);
  }
  case KF_OP_ZERO: return lower_zero(L, n, out);
  case KF_OP_QUANTIZE: return lower_quantize(L, n, out);
  case KF_OP_MMA: return lower_mma(L, n, out);
  case KF_OP_SCALE_ACC: return lower_scale_acc(L, n, out);
  case KF_OP_LOAD: return lower_move(L, n, out, 0);
  case KF_OP_STORE: return lower_move(L, n, out, 1);
  case KF_OP_ACCUM_STORE: return lower_move(L, n, out, 2);
  case KF_OP_FILL: return lw_lower_fill(L, n, out);
  case KF_OP_SCALE_COLS: return lw_lower_scale_cols(L, n, out);
  case KF_OP_QK: return lw_lower_qk(L, n, out);
  case KF_OP_SOFTMAX: return lw_lower_softmax(L, n, out);
  case KF_OP_RESCALE: return lw_lower_rescale(L, n, out, 0);
  case KF_OP_RESCALE_EXP2: return lw_lower_rescale(L, n, out, 1);
  case KF_OP_PV: return lw_lower_pv(L, n, out);
  case KF_OP_FINALIZE: return lw_lower_finalize(L, n, out);
  case KF_OP_N_OPS: break;
  }
  return ERR_AT(L, n, "op %s is not supported on CPU targets", kf_ir_opname(n->op));
}

static int lower_block(lw *L, const kf_ir_block *b, kf_lir_block *out) {
  for (size_t i = 0; i < b->len; i++) {
    int rc = lower_node(L, b->data[i], out);
    if (rc) return rc;
  }
  return KF_OK;
}

int kf_lower_cpu(kf_ctx *ctx, const kf_ir_kernel *ir, const kf_target *t, const char *fn_name,
                 const char *header, kf_lir_func **out) {
  *out = NULL;
  lw L;
  memset(&L, 0, sizeof L);
  L.ctx = ctx;
  L.ir = ir;
  L.t = t;
  L.vl = t->vl32;
  L.f = kf_lir_func_new(fn_name);
  L.f->header = kf_arena_strdup(&L.f->arena, header ? header : "");
  L.var_of_loop = kf_xcalloc(ir->vars.len + 1, sizeof(int));
  L.buf_of = kf_xcalloc(ir->bufs.len + 1, sizeof(int));
  L.reg_vars = kf_xcalloc(ir->bufs.len + 1, sizeof(int *));
  int rc = KF_OK;
  for (size_t i = 0; i < ir->vars.len; i++)
    L.var_of_loop[i] = kf_lir_var_add(L.f, ir->vars.data[i].name, lw_ty(KF_I64, 1));
  for (size_t i = 0; i < ir->bufs.len && !rc; i++) {
    const kf_ir_buf *b = &ir->bufs.data[i];
    L.buf_of[i] = -1;
    if (b->level == KF_LVL_REG) {
      if (b->rank != 2 || b->dims[1] % L.vl) {
        rc = lw_lower_err(&L, b->loc, "register tile '%s' must be 2-D with columns a multiple of %d", b->name, L.vl);
        break;
      }
      int nv = (int)(b->dims[0] * (b->dims[1] / L.vl));
      if (nv > 64) {
        rc = lw_lower_err(&L, b->loc, "register tile '%s' needs %d vector registers (at most 64)", b->name, nv);
        break;
      }
      L.reg_vars[i] = kf_xcalloc((size_t)nv, sizeof(int));
      for (int v = 0; v < nv; v++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%d", b->name, v);
        L.reg_vars[i][v] = kf_lir_var_add(L.f, name, lw_ty(b->dtype, L.vl));
      }
      continue;
    }
    kf_buf_kind kind = b->level == KF_LVL_ARG_IN ? KF_BUF_IN : b->level == KF_LVL_ARG_OUT ? KF_BUF_OUT : KF_BUF_LOCAL;
    kf_scalar elem = b->layout == KF_LAYOUT_QW ? KF_U8 : b->dtype;
    L.buf_of[i] = kf_lir_buf_add(L.f, b->name, elem, kf_ir_buf_elems(b), kind);
  }
  /* MXFP4 nibble weights: a 16-entry table, E2M1 code -> 128 + 2*value, in the workspace */
  L.mx_lut_buf = -1;
  for (size_t i = 0; i < ir->bufs.len && !rc; i++)
    if (ir->bufs.data[i].layout == KF_LAYOUT_QW && ir->bufs.data[i].wmx && ir->bufs.data[i].wbits == 4 &&
        L.mx_lut_buf < 0) {
      static const int e2m1x2[8] = {0, 1, 2, 3, 4, 6, 8, 12};
      L.mx_lut_buf = kf_lir_buf_add(L.f, "e2m1_lut", KF_U8, 16, KF_BUF_LOCAL);
      for (int c = 0; c < 16; c++)
        kf_lstore(L.f, &L.f->body, L.mx_lut_buf, lw_i64c(&L, c),
                  kf_lc_i(L.f, lw_ty(KF_U8, 1), 128 + (c < 8 ? e2m1x2[c] : -e2m1x2[c - 8])));
    }
  int has_parallel = 0;
  for (size_t i = 0; i < ir->body.len; i++) has_parallel |= ir->body.data[i]->parallel;
  if (!rc) {
    if (has_parallel) rc = lower_block(&L, &ir->body, &L.f->body);
    else {
      L.f->par_total = 1;
      kf_lir_stmt *s = kf_lif(L.f, &L.f->body, kf_lbin(L.f, KF_L_LT, kf_lv(L.f, L.f->par_lo_var), kf_lv(L.f, L.f->par_hi_var)));
      rc = lower_block(&L, &ir->body, &s->body);
    }
  }
  if (!rc) rc = kf_lir_verify(ctx, L.f);
  for (size_t i = 0; i < ir->bufs.len; i++) free(L.reg_vars[i]);
  free(L.reg_vars);
  free(L.var_of_loop);
  free(L.buf_of);
  if (rc) {
    kf_lir_func_free(L.f);
    return rc;
  }
  *out = L.f;
  return KF_OK;
}

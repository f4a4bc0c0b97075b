/*
** asc_emit.c: op instances -> units (lw_op) and units -> pipe instructions (lw_emit_unit).
**
** AIC units (qk, pv, mma) are one matmul each: C[M x N] (+)= A[M x K] B[N x K]^T with
**   L1:  A whole (cached: two entries, so Q stays while P~ comes and goes), B in chunks of
**        up to 72 KB (ring of 3; refs/amla.md 2.4-2.5: 4 x 72 KB QP + 3 x 72 KB KV blocks);
**   L0:  tiles baseM x baseK (L0A) and baseN x baseK (L0B), ping-pong halves;
**   L0C: baseM x baseN fp32/int32 tiles, ping-pong; FixPipe drains each to GM (atomic add
**        when accumulating), or the tile stays as an accumulator (L0C register tile).
** With bf16, M = N = 128 and D = 576 this gives CANN's mm1 tiling: L1 chunks 128 x 288,
** L0 k-steps of 96; for P~V, L1 chunks of 256 keys and L0 k-steps of 128.
**
** AIV units stream their rows through UB in chunks (double-buffered): MTE2 loads, vector
** instructions (cost: passes over the chunk, kf_asc_vec_cycles), MTE3 stores; the
** vector work per element is counted in passes of the 256-byte datapath.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asc_lower_int.h"

/* ---- helpers ---- */

static lw_box reg_box(int64_t c0, int64_t c1) {
  lw_box b;
  memset(&b, 0, sizeof b);
  b.rank = 2;
  b.lo[0] = 0;
  b.hi[0] = INT32_MAX;
  b.lo[1] = c0;
  b.hi[1] = c1;
  return b;
}

static int64_t ev(const lw *L, const kf_ix *x) {
  int64_t v = x->c;
  for (int i = 0; i < x->n; i++) v += x->coef[i] * L->val[x->var[i]];
  if (x->cap != INT64_MAX && v > x->cap) v = x->cap;
  return v;
}

static int box_full(const lw *L, int buf, const lw_box *b) {
  const kf_ir_buf *ib = &L->ir->bufs.data[buf];
  for (int d = 0; d < ib->rank; d++)
    if (b->lo[d] != 0 || b->hi[d] != ib->dims[d]) return 0;
  return 1;
}

static int aiv_core(lw *L, int j) { return kf_asc_core_aiv(L->p, L->die, L->group, j); }
static int aic_core(lw *L) { return kf_asc_core_aic(L->p, L->die, L->group); }

static const char *bufname(const lw *L, int buf) {
  return buf < (int)L->ir->bufs.len ? L->ir->bufs.data[buf].name : "dequantized w";
}

/* ---- op instances -> units ---- */

/* AIV units over rows [lo, hi) of `main`'s dim `dim`: every operand tile listed is
** restricted to the same rows (relative to its own origin) on the dims given. */
typedef struct part {
  int tile;       /* operand tile index in the node, or -1 for a prepared box */
  int dim;        /* dim restricted to the part (-1: whole) */
  int read, write;
  int buf;
  lw_box b;       /* box for tile = -1 */
} part;

static int make_aiv_units(lw *L, const kf_ir_node *n, int kind, int64_t lo, int64_t hi, part *ps, int np,
                          int64_t len) {
  for (int j = 0; j < 2; j++) {
    int64_t r0, r1;
    lw_split(lo, hi, j, &r0, &r1);
    if (r0 >= r1) continue;
    int u = lw_unit(L, n, kind, aiv_core(L, j), j);
    L->units.data[u].r0 = r0;
    L->units.data[u].r1 = r1;
    L->units.data[u].len = len;
    for (int k = 0; k < np; k++) {
      lw_box b = ps[k].tile >= 0 ? lw_tile_box(L, &n->t[ps[k].tile]) : ps[k].b;
      int buf = ps[k].tile >= 0 ? n->t[ps[k].tile].buf : ps[k].buf;
      int d = ps[k].dim;
      if (d >= 0) {
        int64_t base = b.lo[d], top = b.hi[d];
        b.lo[d] = base + (r0 - lo);
        b.hi[d] = base + (r1 - lo);
        if (b.hi[d] > top) b.hi[d] = top;
        if (b.lo[d] > b.hi[d]) b.lo[d] = b.hi[d];
      }
      lw_opnd(L, u, buf, &b, ps[k].read, ps[k].write);
    }
  }
  return KF_OK;
}

static int op_fill(lw *L, const kf_ir_node *n) {
  int buf = n->t[0].buf;
  lw_bufst *s = &L->bs[buf];
  lw_box b = lw_tile_box(L, &n->t[0]);
  int full = box_full(L, buf, &b);
  if (full) lw_new_version(L, buf);
  if (full && n->f == 0 && (s->place == LW_PL_WS || s->place == LW_PL_L0C)) {
    s->zero = 1; /* nothing to do now: the first accumulation writes */
    return KF_OK;
  }
  if (s->place == LW_PL_L0C) return lw_err(L, n, "fill: '%s' is a Cube accumulator; only zero fills are supported", bufname(L, buf));
  part p = {0, 0, 0, 1, buf, b};
  return make_aiv_units(L, n, LW_U_OP, b.lo[0], b.hi[0], &p, 1, 0);
}

static int op_qk(lw *L, const kf_ir_node *n) {
  int sb = n->t[0].buf;
  if (L->bs[sb].place != LW_PL_WS)
    return lw_err(L, n, "qk: scores '%s' must be handed to the Vector cores (a softmax reads them)", bufname(L, sb));
  lw_new_version(L, sb);
  int u = lw_unit(L, n, LW_U_OP, aic_core(L), -1);
  int64_t len = ev(L, &n->len);
  L->units.data[u].len = len;
  lw_box q = lw_tile_box(L, &n->t[1]), k = lw_tile_box(L, &n->t[2]), s = lw_tile_box(L, &n->t[0]);
  if (s.hi[1] - s.lo[1] > len) s.hi[1] = s.lo[1] + len;
  lw_opnd(L, u, n->t[1].buf, &q, 1, 0);
  lw_opnd(L, u, n->t[2].buf, &k, 1, 0);
  lw_opnd(L, u, sb, &s, 0, 1);
  return KF_OK;
}

static int op_softmax(lw *L, const kf_ir_node *n) {
  int amla = (int)n->i[0];
  int64_t len = ev(L, &n->len);
  lw_box s = lw_tile_box(L, &n->t[0]);
  if (s.hi[1] - s.lo[1] > len) s.hi[1] = s.lo[1] + len;
  part ps[6];
  int np = amla ? 6 : 4;
  for (int k = 0; k < np; k++) {
    ps[k].tile = k ? k : -1;
    ps[k].dim = 0;
    ps[k].read = ps[k].write = 1;
    ps[k].buf = n->t[k].buf;
    ps[k].b = s;
  }
  return make_aiv_units(L, n, LW_U_OP, s.lo[0], s.hi[0], ps, np, len);
}

static int op_rescale(lw *L, const kf_ir_node *n) {
  int ob = n->t[0].buf;
  if (L->bs[ob].zero) return KF_OK; /* O is still zero: 0 * alpha = 0, and the first block adds 0 */
  lw_box o = lw_tile_box(L, &n->t[0]);
  part ps[2] = {{0, 0, 1, 1, 0, o}, {1, 0, 1, 0, 0, o}};
  return make_aiv_units(L, n, LW_U_OP, o.lo[0], o.hi[0], ps, 2, 0);
}

/* dst rows = src rows * per-column scales: the AIVs split the rows, each reads the scales */
static int op_scale_cols(lw *L, const kf_ir_node *n) {
  lw_box d = lw_tile_box(L, &n->t[0]), x = lw_tile_box(L, &n->t[1]), sc = lw_tile_box(L, &n->t[2]);
  if (box_full(L, n->t[0].buf, &d)) lw_new_version(L, n->t[0].buf);
  int xr = x.rank - 2;
  part ps[3] = {{0, 0, 0, 1, 0, d}, {1, xr, 1, 0, 0, x}, {2, -1, 1, 0, 0, sc}};
  return make_aiv_units(L, n, LW_U_OP, d.lo[0], d.hi[0], ps, 3, 0);
}

static int op_pv(lw *L, const kf_ir_node *n) {
  int ob = n->t[0].buf;
  if (L->bs[ob].place != LW_PL_WS)
    return lw_err(L, n, "pv: the output '%s' must be a workspace the Vector cores also use", bufname(L, ob));
  if (L->p_f32) return lw_err(L, n, "pv: the Cube multiplies bf16, so P must be rounded to bf16 (p_bf16 = 1)");
  int u = lw_unit(L, n, LW_U_OP, aic_core(L), -1);
  lw_unit_t *U = &L->units.data[u];
  int64_t len = ev(L, &n->len);
  U->len = len;
  U->acc_zero = L->bs[ob].zero;
  L->bs[ob].zero = 0;
  lw_box p = lw_tile_box(L, &n->t[1]), v = lw_tile_box(L, &n->t[2]), o = lw_tile_box(L, &n->t[0]);
  if (p.hi[1] - p.lo[1] > len) p.hi[1] = p.lo[1] + len;
  int zero = L->units.data[u].acc_zero;
  lw_opnd(L, u, n->t[1].buf, &p, 1, 0);
  lw_opnd(L, u, n->t[2].buf, &v, 1, 0);
  lw_opnd(L, u, ob, &o, !zero, 1);
  return KF_OK;
}

static int op_finalize(lw *L, const kf_ir_node *n) {
  if (L->bs[n->t[1].buf].zero) return lw_err(L, n, "finalize: '%s' was never accumulated", bufname(L, n->t[1].buf));
  lw_box o = lw_tile_box(L, &n->t[1]);
  part ps[5];
  int np = n->n_tiles >= 5 ? 5 : 3;
  memset(ps, 0, sizeof ps);
  for (int k = 0; k < np; k++) {
    ps[k].tile = k;
    ps[k].dim = L->ir->bufs.data[n->t[k].buf].rank == 1 ? 0 : L->ir->bufs.data[n->t[k].buf].rank - 2;
    ps[k].read = k != 0;
    ps[k].write = k == 0;
  }
  return make_aiv_units(L, n, LW_U_OP, o.lo[0], o.hi[0], ps, np, 0);
}

static int op_quantize(lw *L, const kf_ir_node *n) {
  lw_box src = lw_tile_box(L, &n->t[0]);
  /* the activation decomposition does not depend on the task: when this group's scratch
  ** still holds it for the same rows (an earlier task), it is not done again */
  int same = 1;
  for (int k = 1; k < 4; k++) {
    lw_bufst *s = &L->bs[n->t[k].buf];
    same &= s->memo_node == n && !memcmp(&s->memo_box, &src, sizeof src);
  }
  if (same) return KF_OK;
  for (int k = 1; k < 4; k++) {
    if (L->bs[n->t[k].buf].place == LW_PL_L0C) return lw_err(L, n, "quantize: outputs cannot live on the AIC");
    lw_new_version(L, n->t[k].buf);
    L->bs[n->t[k].buf].memo_node = n;
    L->bs[n->t[k].buf].memo_box = src;
  }
  part ps[4] = {{0, 0, 1, 0, 0, src}, {1, 1, 0, 1, 0, src}, {2, 1, 0, 1, 0, src}, {3, 1, 0, 1, 0, src}};
  return make_aiv_units(L, n, LW_U_OP, src.lo[0], src.hi[0], ps, 4, 0);
}

static int op_mma(lw *L, const kf_ir_node *n) {
  int accb = n->t[0].buf, ab = n->t[1].buf, wb = n->t[2].buf;
  const kf_ir_buf *a = &L->ir->bufs.data[ab], *w = &L->ir->bufs.data[wb];
  int dq = a->dtype == KF_BF16;
  /* MXFP4 weights as E2M1 nibbles: the 910B Cube has no FP4 (and its int4 is not E2M1), so
  ** the AIVs decode them (16-entry table) to int8 offset-binary codes in a GM workspace */
  int nib = !dq && w->wmx && w->wbits == 4;
  lw_box wbx = lw_tile_box(L, &n->t[2]);
  int wr = w->rank; /* 3: a batch of packed matrices (one per KV head), one used per mma */
  if (wr == 3 && (dq || nib)) return lw_err(L, n, "mma: a batch of packed matrices needs int8 codes on this target");
  int wdq = L->nb - 1;
  if (dq) {
    if (!n->i[1])
      return lw_err(L, n, "mma: the Cube multiplies bf16, so dequantized weights must be rounded to bf16 (wround = 1)");
  }
  /* the decoded (nib: int8) or dequantized (dq: bf16) weight tile in the GM workspace */
  lw_box d;
  memset(&d, 0, sizeof d);
  d.rank = 2;
  d.hi[0] = lw_box_ext(&wbx, 0);
  d.hi[1] = lw_box_ext(&wbx, 1);
  if (dq || nib) { /* the AIVs write it (the scales only for dq) */
    lw_new_version(L, wdq);
    part ps[3] = {{2, 0, 1, 0, 0, wbx}, {-1, 0, 0, 1, wdq, d}, {3, 1, 1, 0, 0, dq ? lw_tile_box(L, &n->t[3]) : d}};
    int rc = make_aiv_units(L, n, LW_U_DEQUANT, wbx.lo[0], wbx.hi[0], ps, dq ? 3 : 2, 0);
    if (rc) return rc;
  }
  int u = lw_unit(L, n, LW_U_OP, aic_core(L), -1);
  int zero = L->bs[accb].zero;
  L->bs[accb].zero = 0;
  lw_box abx = lw_tile_box(L, &n->t[1]);
  lw_opnd(L, u, ab, &abx, 1, 0);
  if (dq || nib) {
    lw_opnd(L, u, wdq, &d, 1, 0);
  } else {
    lw_opnd(L, u, wb, &wbx, 1, 0);
  }
  lw_box acc = reg_box(0, INT32_MAX);
  int k = lw_opnd(L, u, accb, &acc, !zero, 1);
  lw_unit_t *U = &L->units.data[u];
  U->acc_zero = zero;
  U->acc_slot = U->o[k].slot;
  U->len = lw_box_ext(&wbx, wr - 2); /* N of the tile */
  return KF_OK;
}

static int op_scale_acc(lw *L, const kf_ir_node *n) {
  int accf = n->t[0].buf;
  if (L->bs[accf].place != LW_PL_UB) return lw_err(L, n, "scale_acc: the float accumulator must live on the Vector cores");
  lw_box wsc = lw_tile_box(L, &n->t[4]);
  int wcd = wsc.rank - 1; /* the columns of the w scales (rank 3: per KV head and block) */
  int64_t nt = lw_box_ext(&wsc, wcd);
  int zero = L->bs[accf].zero;
  L->bs[accf].zero = 0;
  size_t first = L->units.len;
  part ps[5];
  ps[0] = (part){-1, 1, !zero, 1, accf, reg_box(0, nt)};
  ps[1] = (part){-1, 1, 1, 0, n->t[1].buf, reg_box(0, nt)};
  ps[2] = (part){2, -1, 1, 0, 0, wsc};
  ps[3] = (part){3, -1, 1, 0, 0, wsc};
  ps[4] = (part){4, wcd, 1, 0, 0, wsc};
  int rc = make_aiv_units(L, n, LW_U_OP, 0, nt, ps, 5, 0);
  for (size_t i = first; i < L->units.len; i++) L->units.data[i].acc_zero = zero;
  return rc;
}

static int op_store(lw *L, const kf_ir_node *n) {
  int mem = n->t[0].buf, reg = n->t[1].buf;
  int accum = n->op == KF_OP_ACCUM_STORE;
  lw_bufst *s = &L->bs[reg];
  if (s->zero) return lw_err(L, n, "store: register tile '%s' holds nothing yet", bufname(L, reg));
  lw_box mb = lw_tile_box(L, &n->t[0]);
  if (s->place == LW_PL_L0C) {
    int u = lw_unit(L, n, LW_U_OP, aic_core(L), -1);
    lw_box r = reg_box(0, INT32_MAX);
    lw_opnd(L, u, reg, &r, 1, 0);
    lw_opnd(L, u, mem, &mb, accum, 1);
    return KF_OK;
  }
  int64_t nt = lw_box_ext(&mb, 1);
  part ps[2] = {{-1, 1, 1, 0, reg, reg_box(0, nt)}, {0, 1, accum, 1, mem, mb}};
  return make_aiv_units(L, n, LW_U_OP, 0, nt, ps, 2, 0);
}

int lw_op(lw *L, const kf_ir_node *n) {
  switch (n->op) {
  case KF_OP_ZERO: {
    int b = n->t[0].buf;
    lw_new_version(L, b);
    L->bs[b].zero = 1;
    return KF_OK;
  }
  case KF_OP_FILL: return op_fill(L, n);
  case KF_OP_QK: return op_qk(L, n);
  case KF_OP_SOFTMAX: return op_softmax(L, n);
  case KF_OP_RESCALE:
  case KF_OP_RESCALE_EXP2: return op_rescale(L, n);
  case KF_OP_PV: return op_pv(L, n);
  case KF_OP_FINALIZE: return op_finalize(L, n);
  case KF_OP_QUANTIZE: return op_quantize(L, n);
  case KF_OP_MMA: return op_mma(L, n);
  case KF_OP_SCALE_ACC: return op_scale_acc(L, n);
  case KF_OP_SCALE_COLS: return op_scale_cols(L, n);
  case KF_OP_STORE:
  case KF_OP_ACCUM_STORE: return op_store(L, n);
  default: break;
  }
  return lw_err(L, n, "op %s is not supported on this target", kf_ir_opname(n->op));
}

/* ---- units -> instructions ---- */

void lw_emit_reset(lw *L) {
  memset(L->acache, 0, sizeof L->acache);
  for (int i = 0; i < 3; i++) L->ring_last[i] = -1;
  for (int i = 0; i < 2; i++) {
    L->l0a_last[i] = L->l0b_last[i] = L->l0c_last[i] = -1;
    L->ub_last[0][i] = L->ub_last[1][i] = -1;
    L->acache[i].load = L->acache[i].last = -1;
  }
  L->ring_next = L->l0a_next = L->l0b_next = L->l0c_next = 0;
  L->ub_next[0] = L->ub_next[1] = 0;
}

static int32_t emit(lw *L, lw_unit_t *u, int pipe, kf_asc_kind kind, int64_t cycles, int64_t bytes, const char *label) {
  char full[96];
  const char *op = u->kind == LW_U_DEQUANT ? "dequant" : kf_ir_opname(u->node->op);
  snprintf(full, sizeof full, "%s: %s", op, label);
  int32_t i = kf_asc_emit(L->p, u->core, pipe, kind, cycles, bytes, kf_asc_label(L->p, full));
  if (i < 0) return -1;
  if (u->i0 < 0) u->i0 = i;
  u->i1 = i;
  return i;
}

static void touch(lw_unit_t *u, int k, int32_t i) {
  if (k < 0 || i < 0) return;
  if (u->o[k].first < 0) u->o[k].first = i;
  u->o[k].last = i;
}

static void set_gm(lw *L, int32_t i, int buf, lw_foot f, int atomic) {
  int ws = L->bs[buf].place != LW_PL_ARG;
  int obj = ws ? 1000000 + ((L->die * L->m->aic_per_die + L->group) * L->nb + buf) * 2 + 0 : buf;
  kf_asc_gm(L->p, i, obj, ws, f.off, f.rows, f.row_bytes, f.stride, atomic);
}

static lw_foot contig(int64_t bytes) {
  lw_foot f = {0, 1, bytes, bytes};
  return f;
}

/* B operand layouts for chunk footprints */
enum { B_NMAJOR = 0, B_KMAJOR = 1, B_PACKED = 2 };

typedef struct mm_spec {
  int64_t M, N, K;
  int a_bits, b_bits, int8;
  int a_opnd, b_opnd, out_opnd;
  lw_foot a_foot, b_foot;
  int b_layout;
  int out_mode;          /* 0: FixPipe to GM; 1: L0C accumulator */
  lw_foot out_foot;      /* stride = bytes between output rows */
  int out_atomic;
  int out_bytes;         /* per output element */
} mm_spec;

static lw_foot b_chunk(const mm_spec *s, int64_t n_lo, int64_t n_cnt, int64_t k_lo, int64_t k_cnt) {
  lw_foot f = s->b_foot, r;
  if (s->b_layout == B_KMAJOR) {
    r.off = f.off + k_lo * f.stride + n_lo * s->b_bits / 8;
    r.rows = k_cnt;
    r.row_bytes = n_cnt * s->b_bits / 8;
  } else if (s->b_layout == B_PACKED) {
    r.off = f.off + (n_lo / 16) * f.stride + k_lo * 16 * s->b_bits / 8;
    r.rows = lw_cdiv(n_cnt, 16);
    r.row_bytes = k_cnt * 16 * s->b_bits / 8;
  } else {
    r.off = f.off + n_lo * f.stride + k_lo * s->b_bits / 8;
    r.rows = n_cnt;
    r.row_bytes = k_cnt * s->b_bits / 8;
  }
  r.stride = f.stride;
  return r;
}

static int emit_matmul(lw *L, lw_unit_t *u, const mm_spec *s) {
  const kf_asc_machine *m = L->m;
  int64_t M = s->M, N = s->N, K = s->K;
  if (M <= 0 || N <= 0 || K <= 0) return KF_OK;
  int64_t a_es = s->a_bits, b_es = s->b_bits; /* bits */
  /* M tiles of <= 128 rows share every B chunk and L0B tile; one N tile's accumulators
  ** (all M tiles) take half of L0C, so FixPipe drains one half while the Cube fills the other */
  int64_t baseM = lw_up(M, 16) < 128 ? lw_up(M, 16) : 128, n_mt = lw_cdiv(M, baseM);
  int64_t baseN = (m->l0c_bytes / 2) / (n_mt * baseM * 4) / 16 * 16;
  if (baseN < 16)
    return lw_err(L, u->node, "%s: %lld rows of fp32 accumulators do not fit half of L0C (%lld B)", kf_ir_opname(u->node->op),
                  (long long)M, (long long)(m->l0c_bytes / 2));
  if (baseN > 256) baseN = 256;
  if (baseN > lw_up(N, 16)) baseN = lw_up(N, 16);
  int64_t chunk_max = 72 * 1024;
  int64_t l1k_max = chunk_max * 8 / (baseN * b_es) / 16 * 16;
  if (l1k_max < 16) l1k_max = 16;
  int64_t n_kc = lw_cdiv(K, l1k_max), l1k = lw_up(lw_cdiv(K, n_kc), 16);
  int64_t bk_a = (m->l0a_bytes / 2) * 8 / (baseM * a_es), bk_b = (m->l0b_bytes / 2) * 8 / (baseN * b_es);
  int64_t bkmax = (bk_a < bk_b ? bk_a : bk_b) / 16 * 16;
  if (bkmax < 16) return lw_err(L, u->node, "%s: a %lld-row tile does not fit L0A/L0B", kf_ir_opname(u->node->op), (long long)baseM);
  int64_t steps = lw_cdiv(l1k, bkmax), baseK = lw_up(lw_cdiv(l1k, steps), 16);
  /* L1: the A operand and a ring of three B chunks; a second A operand (e.g. Q while P~
  ** comes and goes) stays cached when it fits beside them (refs/amla.md 2.5: 504 KB) */
  int64_t a_bytes = M * K * a_es / 8, chunk_bytes = baseN * l1k * b_es / 8;
  int64_t avail = m->l1_bytes - 3 * chunk_bytes;
  if (a_bytes > avail)
    return lw_err(L, u->node,
                  "%s needs L1 %lld B (A operand '%s', %lld x %lld) + 3 x %lld B (chunks of '%s') = %lld B > %lld B (L1 of an AIC)",
                  kf_ir_opname(u->node->op), (long long)a_bytes, bufname(L, u->o[s->a_opnd].buf), (long long)M,
                  (long long)K, (long long)chunk_bytes, bufname(L, u->o[s->b_opnd].buf),
                  (long long)(a_bytes + 3 * chunk_bytes), (long long)m->l1_bytes);
  if (s->out_mode == 1 && lw_up(M, 16) * lw_up(N, 16) * 4 > m->l0c_bytes / 2)
    return lw_err(L, u->node, "mma: the accumulator tile %lld x %lld does not fit half of L0C (%lld B)", (long long)M,
                  (long long)N, (long long)(m->l0c_bytes / 2));
  L->int8 |= s->int8;
  /* A: cached in L1? */
  const lw_opnd_t *ao = &u->o[s->a_opnd];
  lw_acache *e = NULL;
  for (int i = 0; i < 2; i++) {
    lw_acache *c = &L->acache[i];
    if (c->valid && c->buf == ao->buf && c->slot == ao->slot && c->ver == ao->ver && !memcmp(&c->b, &ao->b, sizeof c->b)) e = c;
  }
  /* a missing A is loaded after the first B chunk, so the weight/KV stream starts while
  ** the A operand may still be in the making on the Vector cores */
  int32_t a_load = -1;
  int a_miss = !e;
  lw_acache *evict = NULL;
  if (e) {
    a_load = e->load;
  } else {
    e = L->acache[0].used <= L->acache[1].used ? &L->acache[0] : &L->acache[1];
    lw_acache *other = e == &L->acache[0] ? &L->acache[1] : &L->acache[0];
    if (other->valid && other->bytes + a_bytes > avail) evict = other; /* no room for both */
    e->valid = 0;
  }
  e->used = ++L->use_clock;
  int32_t mm = -1, last_a = -1;
  for (int64_t n0 = 0; n0 < N; n0 += baseN) {
    int64_t ncols = N - n0 < baseN ? N - n0 : baseN;
    int c = s->out_mode == 0 ? L->l0c_next++ % 2 : u->acc_slot;
    int first = 1;
    for (int64_t k0 = 0; k0 < K; k0 += l1k) {
      int64_t klen = K - k0 < l1k ? K - k0 : l1k;
      int r = L->ring_next++ % 3;
      int32_t ld = emit(L, u, KF_ASC_MTE2, KF_ASC_READ, 0, ncols * klen * b_es / 8, "load B");
      set_gm(L, ld, u->o[s->b_opnd].buf, b_chunk(s, n0, ncols, k0, klen), 0);
      kf_asc_dep(L->p, L->ring_last[r], ld);
      touch(u, s->b_opnd, ld);
      if (a_miss) {
        a_miss = 0;
        int32_t prev_last = e->last;
        a_load = emit(L, u, KF_ASC_MTE2, KF_ASC_READ, 0, a_bytes, "load A");
        set_gm(L, a_load, ao->buf, s->a_foot, 0);
        kf_asc_dep(L->p, prev_last, a_load);
        if (evict) {
          kf_asc_dep(L->p, evict->last, a_load);
          evict->valid = 0;
        }
        touch(u, s->a_opnd, a_load);
        e->valid = 1;
        e->buf = ao->buf;
        e->slot = ao->slot;
        e->ver = ao->ver;
        e->b = ao->b;
        e->load = a_load;
        e->bytes = a_bytes;
      }
      int32_t ib = -1;
      for (int64_t kk = 0; kk < klen; kk += baseK) {
        int64_t kl = klen - kk < baseK ? klen - kk : baseK;
        int b = L->l0b_next++ % 2;
        ib = emit(L, u, KF_ASC_MTE1, KF_ASC_COMPUTE, kf_asc_mte1_cycles(m, ncols * kl * b_es / 8), 0, "L1->L0B");
        kf_asc_dep(L->p, L->l0b_last[b], ib);
        kf_asc_dep(L->p, ld, ib);
        touch(u, s->b_opnd, ib);
        for (int64_t m0 = 0; m0 < M; m0 += baseM) {
          int64_t mrows = M - m0 < baseM ? M - m0 : baseM;
          int a = L->l0a_next++ % 2;
          int32_t ia = emit(L, u, KF_ASC_MTE1, KF_ASC_COMPUTE, kf_asc_mte1_cycles(m, mrows * kl * a_es / 8), 0, "L1->L0A");
          kf_asc_dep(L->p, L->l0a_last[a], ia);
          kf_asc_dep(L->p, a_load, ia);
          touch(u, s->a_opnd, ia);
          last_a = ia;
          mm = emit(L, u, KF_ASC_M, KF_ASC_COMPUTE, kf_asc_mmad_cycles(m, mrows, ncols, kl, s->int8), 0, "mmad");
          kf_asc_dep(L->p, ia, mm);
          kf_asc_dep(L->p, ib, mm);
          if (first && s->out_mode == 0) kf_asc_dep_reuse(L->p, L->l0c_last[c], mm); /* the half's last FixPipe */
          if (s->out_mode == 1) touch(u, s->out_opnd, mm);
          first = 0;
          L->l0a_last[a] = mm;
          L->flops += 2.0 * (double)mrows * (double)ncols * (double)kl;
        }
        L->l0b_last[b] = mm;
      }
      L->ring_last[r] = ib;
    }
    if (s->out_mode == 0)
      for (int64_t m0 = 0; m0 < M; m0 += baseM) {
        int64_t mrows = M - m0 < baseM ? M - m0 : baseM;
        lw_foot f = s->out_foot;
        f.off += m0 * f.stride + n0 * s->out_bytes;
        f.rows = mrows;
        f.row_bytes = ncols * s->out_bytes;
        int32_t fx = emit(L, u, KF_ASC_FIX, KF_ASC_WRITE, 0, mrows * ncols * s->out_bytes,
                          s->out_atomic ? "FixPipe atomic add" : "FixPipe");
        set_gm(L, fx, u->o[s->out_opnd].buf, f, s->out_atomic);
        kf_asc_dep(L->p, mm, fx);
        L->l0c_last[c] = fx;
        touch(u, s->out_opnd, fx);
      }
  }
  e->last = last_a;
  return KF_OK;
}

/* One UB chunk on an AIV: loads, vector instructions, stores (double-buffered slots). */
typedef struct xfer {
  int opnd;
  lw_foot f;
  int64_t bytes;
  int atomic;
} xfer;

static void aiv_chunk(lw *L, lw_unit_t *u, const xfer *ld, int nld, const int64_t *vc, const char *const *vl, int nv,
                      const int *vop, int nvop, const xfer *st, int nst) {
  int j = u->aiv, slot = L->ub_next[j]++ % 2;
  int32_t prev = L->ub_last[j][slot], last = -1, last_ld = -1, last_v = -1;
  for (int k = 0; k < nld; k++) {
    if (ld[k].bytes <= 0) continue;
    int32_t i = emit(L, u, KF_ASC_MTE2, KF_ASC_READ, 0, ld[k].bytes, "load");
    set_gm(L, i, u->o[ld[k].opnd].buf, ld[k].f, 0);
    if (last_ld < 0) kf_asc_dep_reuse(L->p, prev, i); /* the slot's previous chunk */
    touch(u, ld[k].opnd, i);
    last = last_ld = i;
  }
  for (int k = 0; k < nv; k++) {
    int32_t i = emit(L, u, KF_ASC_V, KF_ASC_COMPUTE, vc[k], 0, vl[k]);
    if (k == 0) kf_asc_dep(L->p, last_ld >= 0 ? last_ld : prev, i);
    for (int q = 0; q < nvop; q++) touch(u, vop[q], i);
    last = last_v = i;
  }
  for (int k = 0; k < nst; k++) {
    if (st[k].bytes <= 0) continue;
    int32_t i = emit(L, u, KF_ASC_MTE3, KF_ASC_WRITE, 0, st[k].bytes, st[k].atomic ? "store (atomic add)" : "store");
    set_gm(L, i, u->o[st[k].opnd].buf, st[k].f, st[k].atomic);
    kf_asc_dep(L->p, last_v >= 0 ? last_v : last_ld >= 0 ? last_ld : prev, i);
    touch(u, st[k].opnd, i);
    last = i;
  }
  if (last >= 0) L->ub_last[j][slot] = last;
}

/* Rows of a chunk so that `per_row` bytes of UB per row fit a streaming buffer. */
static int64_t chunk_rows(const lw *L, int64_t per_row, int64_t rows) {
  int64_t r = per_row > 0 ? L->ub_stream / per_row : rows;
  if (r < 1) r = 1;
  return r < rows ? r : rows;
}

static int ub_row_check(lw *L, lw_unit_t *u, int64_t per_row, const char *what) {
  if (per_row <= L->ub_stream) return KF_OK;
  return lw_err(L, u->node, "%s: one row needs %lld B of UB, a streaming buffer has %lld B (UB of an AIV: %lld B, %lld B resident)",
                what, (long long)per_row, (long long)L->ub_stream, (long long)L->m->ub_bytes, (long long)L->ub_resident);
}

/* footprint of rows [r, r + n) of operand k (rows on dim d of its box) */
static lw_foot rows_foot(const lw *L, const lw_unit_t *u, int k, int d, int64_t r, int64_t n, int64_t elem_bytes) {
  lw_box b = u->o[k].b;
  b.lo[d] += r;
  b.hi[d] = b.lo[d] + n;
  lw_foot f = lw_footprint(L, u->o[k].buf, &b);
  if (elem_bytes) { /* the data is stored narrower than the IR type (P~ in bf16) */
    int es = lw_esize(L->ir->bufs.data[u->o[k].buf].dtype);
    f.off = f.off / es * elem_bytes;
    f.stride = f.stride / es * elem_bytes;
    f.row_bytes = f.row_bytes / es * elem_bytes;
  }
  return f;
}

static int emit_aiv(lw *L, lw_unit_t *u) {
  const kf_asc_machine *m = L->m;
  const kf_ir_node *n = u->node;
  int64_t rows = u->r1 - u->r0;
  if (u->kind == LW_U_DEQUANT) {
    /* w rows [r0, r1) x ks: codes -> (u - off) * scale -> bf16 -> GM workspace, in chunks
    ** of one 16-row block of the packed layout x kc columns; MXFP4 nibbles (no scales):
    ** E2M1 -> 128 + 2 * value through a 16-entry table -> int8 workspace. Operands: 0 the
    ** weights, 1 the workspace, 2 the scales (dequant only). */
    const kf_ir_buf *wb = &L->ir->bufs.data[u->o[0].buf];
    int bits = wb->wbits, nib = u->n == 2;
    int64_t ks = lw_box_ext(&u->o[0].b, 1), Kp = lw_up(wb->dims[1], 8), k_lo = u->o[0].b.lo[1];
    int64_t ob = nib ? 1 : 2; /* bytes per decoded weight */
    int64_t per_col = 16 * (4 + ob) + 16 * bits / 8;
    int rc = ub_row_check(L, u, 32 * per_col, "dequant");
    if (rc) return rc;
    int64_t kc = L->ub_stream / per_col / 32 * 32;
    if (kc > ks) kc = ks;
    /* nib: unpack two nibbles per byte and a table gather, counted as 3 passes over int32 lanes */
    const char *vl[1] = {nib ? "E2M1 nibble -> 128 + 2*value (table)" : "u8 -> (u - off) * scale -> bf16"};
    for (int64_t r = 0; r < rows; r += 16) {
      int64_t nr = rows - r < 16 ? rows - r : 16, n0 = u->o[0].b.lo[0] + r;
      for (int64_t k = 0; k < ks; k += kc) {
        int64_t nk = ks - k < kc ? ks - k : kc;
        lw_foot fw = {((n0 / 16) * Kp + k_lo + k) * 16 * bits / 8, 1, nk * 16 * bits / 8, Kp * 16 * bits / 8};
        xfer ld[2] = {{0, fw, nr * nk * bits / 8, 0}, {nib ? 0 : 2, fw, 0, 0}};
        if (!nib) {
          ld[1].f = rows_foot(L, u, 2, 1, r, 0, 0);
          ld[1].f.row_bytes = nr * 4;
          ld[1].bytes = k ? 0 : nr * 4;
        }
        int64_t vc[1] = {kf_asc_vec_cycles(m, nr * nk * 4, nib ? 3 : 5)};
        xfer st[1] = {{1, contig(nr * nk * ob), nr * nk * ob, 0}};
        aiv_chunk(L, u, ld, nib ? 1 : 2, vc, vl, 1, NULL, 0, st, 1);
      }
    }
    return KF_OK;
  }
  switch (n->op) {
  case KF_OP_FILL: {
    int64_t bytes = 1;
    const lw_box *b = &u->o[0].b;
    for (int d = 0; d < b->rank; d++) bytes *= lw_box_ext(b, d);
    bytes *= lw_esize(L->ir->bufs.data[u->o[0].buf].dtype);
    int64_t vc[1] = {kf_asc_vec_cycles(m, bytes < L->ub_stream ? bytes : L->ub_stream, 1)};
    const char *vl[1] = {"dup"};
    int vop[1] = {0};
    if (L->bs[u->o[0].buf].place == LW_PL_UB) {
      aiv_chunk(L, u, NULL, 0, vc, vl, 1, vop, 1, NULL, 0);
    } else {
      xfer st[1] = {{0, lw_footprint(L, u->o[0].buf, b), bytes, 0}};
      aiv_chunk(L, u, NULL, 0, vc, vl, 1, NULL, 0, st, 1);
    }
    return KF_OK;
  }
  case KF_OP_SOFTMAX: {
    int amla = (int)n->i[0], pbf = (int)n->i[1];
    int64_t len = u->len;
    int64_t per_row = len * 4 + len * 2;
    int rc = ub_row_check(L, u, per_row, "softmax");
    if (rc) return rc;
    int64_t cr = chunk_rows(L, len * 4, rows);
    int vop[6] = {1, 2, 3, 4, 5, -1};
    for (int64_t r = 0; r < rows; r += cr) {
      int64_t nr = rows - r < cr ? rows - r : cr, bytes = nr * len * 4;
      xfer ld[1] = {{0, rows_foot(L, u, 0, 0, r, nr, 0), bytes, 0}};
      int64_t vc[4] = {kf_asc_vec_cycles(m, bytes, 2), kf_asc_vec_cycles(m, bytes, 2 + m->vec_exp_cost),
                       kf_asc_vec_cycles(m, bytes, (amla ? 1 : 0) + (amla || pbf ? 1 : 0)),
                       (amla ? 14 : 5) * kf_asc_vec_cycles(m, nr * 4, 1)};
      const char *vl[4] = {"scale, row max", "exp, row sum", amla ? "P * r_hat -> bf16" : "P -> bf16",
                           amla ? "m, l, n, r_hat, c, 2^k add (per row)" : "m, l, alpha (per row)"};
      xfer st[1] = {{0, rows_foot(L, u, 0, 0, r, nr, amla || pbf ? 2 : 4), nr * len * (amla || pbf ? 2 : 4), 0}};
      aiv_chunk(L, u, ld, 1, vc, vl, 4, vop, amla ? 5 : 3, st, 1);
    }
    return KF_OK;
  }
  case KF_OP_RESCALE:
  case KF_OP_RESCALE_EXP2: {
    int exp2 = n->op == KF_OP_RESCALE_EXP2;
    int64_t dv = lw_box_ext(&u->o[0].b, 1);
    int rc = ub_row_check(L, u, dv * 4, "rescale");
    if (rc) return rc;
    int64_t cr = chunk_rows(L, dv * 4, rows);
    int vop[1] = {1};
    for (int64_t r = 0; r < rows; r += cr) {
      int64_t nr = rows - r < cr ? rows - r : cr, bytes = nr * dv * 4;
      lw_foot f = rows_foot(L, u, 0, 0, r, nr, 0);
      xfer ld[1] = {{0, f, bytes, 0}};
      int64_t vc[1] = {kf_asc_vec_cycles(m, bytes, 1)};
      const char *vl[1] = {exp2 ? "broadcast k*2^23 (int32)" : "O * alpha"};
      xfer st[1] = {{0, f, bytes, exp2}};
      aiv_chunk(L, u, exp2 ? NULL : ld, exp2 ? 0 : 1, vc, vl, 1, vop, 1, st, 1);
    }
    return KF_OK;
  }
  case KF_OP_FINALIZE: {
    int guard = (int)n->i[0], amla = u->n >= 5;
    int64_t dv = lw_box_ext(&u->o[1].b, 1);
    int rc = ub_row_check(L, u, dv * 8, "finalize");
    if (rc) return rc;
    int64_t cr = chunk_rows(L, dv * 4, rows);
    int vop[3] = {2, 3, 4};
    for (int64_t r = 0; r < rows; r += cr) {
      int64_t nr = rows - r < cr ? rows - r : cr, bytes = nr * dv * 4;
      xfer ld[1] = {{1, rows_foot(L, u, 1, 0, r, nr, 0), bytes, 0}};
      int64_t vc[2] = {(amla ? 4 : 2) * kf_asc_vec_cycles(m, nr * 4, 1), kf_asc_vec_cycles(m, bytes, (guard ? 3 : 0) + 1)};
      const char *vl[2] = {amla ? "1 / (l * r_hat)" : "1 / l", guard ? "|O| > 1e10 -> 0, O * (1 / l)" : "O * (1 / l)"};
      int dim = L->ir->bufs.data[u->o[0].buf].rank - 2;
      xfer st[1] = {{0, rows_foot(L, u, 0, dim, r, nr, 0), bytes, 0}};
      aiv_chunk(L, u, ld, 1, vc, vl, 2, vop, amla ? 3 : 1, st, 1);
    }
    return KF_OK;
  }
  case KF_OP_QUANTIZE: {
    /* rows of x: absmax, then P passes of codes. A row that does not fit a streaming buffer
    ** is read twice in column chunks (absmax first, then the codes). */
    int P = (int)n->i[0];
    int64_t K = lw_box_ext(&u->o[0].b, 1), Kp = L->ir->bufs.data[u->o[1].buf].dims[2];
    int64_t per_col = 2 + 4 + P;
    int rc = ub_row_check(L, u, 32 * per_col, "quantize");
    if (rc) return rc;
    int two = K * per_col > L->ub_stream;
    int64_t ck = two ? L->ub_stream / per_col / 32 * 32 : K, cr = two ? 1 : chunk_rows(L, K * per_col, rows);
    for (int64_t r = 0; r < rows; r += cr) {
      int64_t nr = rows - r < cr ? rows - r : cr;
      for (int pass = two ? 0 : 1; pass < 2; pass++)
        for (int64_t k = 0; k < K; k += ck) {
          int64_t nk = K - k < ck ? K - k : ck;
          lw_foot f = rows_foot(L, u, 0, 0, r, nr, 0);
          f.off += k * 2;
          f.row_bytes = nk * 2;
          xfer ld[1] = {{0, f, nr * nk * 2, 0}};
          int64_t vc[2] = {kf_asc_vec_cycles(m, nr * nk * 4, 3), kf_asc_vec_cycles(m, nr * nk * 4, 9.0 * P)};
          const char *vl[2] = {"bf16 -> f32, row absmax", "passes: scale, round, clamp, int8, residual; code sums"};
          int64_t cb = P * nr * (k + nk >= K ? Kp - k : nk);
          xfer st[2] = {{1, contig(cb), cb, 0}, {2, contig(P * nr * 8), k + nk >= K ? P * nr * 8 : 0, 0}};
          if (pass == 0) aiv_chunk(L, u, ld, 1, vc, vl, 1, NULL, 0, NULL, 0);
          else aiv_chunk(L, u, ld, 1, two ? vc + 1 : vc, two ? vl + 1 : vl, two ? 1 : 2, NULL, 0, st, 2);
        }
    }
    return KF_OK;
  }
  case KF_OP_SCALE_ACC: {
    int P = (int)n->i[0];
    int64_t mt = lw_box_ext(&u->o[2].b, 1), cols = rows;
    int64_t per_col = P * mt * 4 * 2;
    int rc = ub_row_check(L, u, per_col, "scale_acc");
    if (rc) return rc;
    int64_t cc = chunk_rows(L, per_col, cols);
    int vop[1] = {0};
    for (int64_t c = 0; c < cols; c += cc) {
      int64_t nc = cols - c < cc ? cols - c : cc;
      int64_t bytes = P * mt * nc * 4;
      lw_foot fw = rows_foot(L, u, 4, u->o[4].b.rank - 1, c, nc, 0);
      xfer ld[3] = {{1, contig(bytes), bytes, 0}, {2, contig(P * mt * 8), L->bs[u->o[2].buf].place == LW_PL_UB ? 0 : P * mt * 8, 0},
                    {4, fw, nc * 4, 0}};
      int64_t vc[1] = {kf_asc_vec_cycles(m, mt * nc * 4, 5.0 * P)};
      const char *vl[1] = {"(acc - off*sum) * s_x * s_w, accumulate"};
      aiv_chunk(L, u, ld, 3, vc, vl, 1, vop, 1, NULL, 0);
    }
    return KF_OK;
  }
  case KF_OP_SCALE_COLS: {
    /* rows of src (bf16 or f32) times the column scales (loaded once per unit) */
    int xd = u->o[1].b.rank - 2, xes = lw_esize(L->ir->bufs.data[u->o[1].buf].dtype);
    int64_t cols = lw_box_ext(&u->o[0].b, u->o[0].b.rank - 1);
    int rc = ub_row_check(L, u, cols * (4 + xes), "scale_cols");
    if (rc) return rc;
    int64_t cr = chunk_rows(L, cols * (4 + xes), rows);
    int d_ub = L->bs[u->o[0].buf].place == LW_PL_UB, x_ub = L->bs[u->o[1].buf].place == LW_PL_UB;
    int s_ub = L->bs[u->o[2].buf].place == LW_PL_UB;
    int vop[3], nvop = 0;
    if (d_ub) vop[nvop++] = 0;
    if (x_ub) vop[nvop++] = 1;
    if (s_ub) vop[nvop++] = 2;
    for (int64_t r = 0; r < rows; r += cr) {
      int64_t nr = rows - r < cr ? rows - r : cr;
      xfer ld[2] = {{1, rows_foot(L, u, 1, xd, r, nr, 0), x_ub ? 0 : nr * cols * xes, 0},
                    {2, lw_footprint(L, u->o[2].buf, &u->o[2].b), r || s_ub ? 0 : cols * 4, 0}};
      int64_t vc[1] = {kf_asc_vec_cycles(m, nr * cols * 4, xes == 2 ? 2 : 1)};
      const char *vl[1] = {xes == 2 ? "bf16 -> f32, * scale per column" : "* scale per column"};
      xfer st[1] = {{0, rows_foot(L, u, 0, 0, r, nr, 0), d_ub ? 0 : nr * cols * 4, 0}};
      aiv_chunk(L, u, ld, 2, vc, vl, 1, vop, nvop, st, 1);
    }
    return KF_OK;
  }
  case KF_OP_STORE:
  case KF_OP_ACCUM_STORE: {
    const lw_box *b = &u->o[1].b;
    int64_t bytes = lw_box_ext(b, 0) * lw_box_ext(b, 1) * 4;
    xfer st[1] = {{1, lw_footprint(L, u->o[1].buf, b), bytes, n->op == KF_OP_ACCUM_STORE}};
    aiv_chunk(L, u, NULL, 0, NULL, NULL, 0, NULL, 0, st, 1);
    touch(u, 0, u->i0);
    return KF_OK;
  }
  default: break;
  }
  return lw_err(L, n, "op %s has no Vector lowering", kf_ir_opname(n->op));
}

static int emit_aic(lw *L, lw_unit_t *u) {
  const kf_ir_node *n = u->node;
  mm_spec s;
  memset(&s, 0, sizeof s);
  s.out_bytes = 4;
  switch (n->op) {
  case KF_OP_QK: {
    /* S[rows x len] = q[rows x D] k[len x D]^T -> GM workspace (fp32) */
    const lw_opnd_t *q = &u->o[0], *k = &u->o[1];
    int rk = k->b.rank;
    s.M = lw_box_ext(&q->b, q->b.rank - 1 == 0 ? 0 : q->b.rank - 2);
    s.N = u->len;
    s.K = lw_box_ext(&q->b, q->b.rank - 1);
    s.a_bits = s.b_bits = 16;
    s.a_opnd = 0;
    s.b_opnd = 1;
    s.out_opnd = 2;
    s.a_foot = lw_footprint(L, q->buf, &q->b);
    s.b_foot = lw_footprint(L, k->buf, &k->b);
    s.b_foot.stride = L->ir->bufs.data[k->buf].dims[rk - 1] * 2;
    s.b_layout = B_NMAJOR;
    s.out_foot = lw_footprint(L, u->o[2].buf, &u->o[2].b);
    return emit_matmul(L, u, &s);
  }
  case KF_OP_PV: {
    /* O[rows x DV] (+)= P~[rows x len] (bf16 in GM) V[len x DV] */
    const lw_opnd_t *p = &u->o[0], *v = &u->o[1], *o = &u->o[2];
    int rv = v->b.rank;
    s.M = lw_box_ext(&o->b, 0);
    s.N = lw_box_ext(&o->b, 1);
    s.K = u->len;
    s.a_bits = s.b_bits = 16;
    s.a_opnd = 0;
    s.b_opnd = 1;
    s.out_opnd = 2;
    s.a_foot = lw_footprint(L, p->buf, &p->b);
    s.a_foot.row_bytes /= 2; /* P~ is bf16 */
    s.a_foot.stride /= 2;
    s.a_foot.off /= 2;
    s.b_foot = lw_footprint(L, v->buf, &v->b);
    s.b_foot.stride = L->ir->bufs.data[v->buf].dims[rv - 1] * 2;
    s.b_layout = B_KMAJOR;
    s.out_foot = lw_footprint(L, o->buf, &o->b);
    s.out_atomic = !u->acc_zero;
    return emit_matmul(L, u, &s);
  }
  case KF_OP_MMA: {
    const lw_opnd_t *a = &u->o[0], *b = &u->o[1], *acc = &u->o[2];
    const kf_ir_buf *ab = &L->ir->bufs.data[a->buf];
    int dq = ab->dtype == KF_BF16;
    int ra = a->b.rank;
    int64_t P = ra == 3 ? lw_box_ext(&a->b, 0) : 1;
    s.M = P * lw_box_ext(&a->b, ra - 2);
    s.N = u->len;
    s.K = lw_box_ext(&a->b, ra - 1);
    s.a_opnd = 0;
    s.b_opnd = 1;
    s.out_opnd = 2;
    s.a_foot = lw_footprint(L, a->buf, &a->b);
    if (dq) {
      s.a_bits = s.b_bits = 16;
      s.b_foot = contig(s.N * s.K * 2);
      s.b_foot.stride = s.K * 2;
      s.b_layout = B_NMAJOR;
    } else if (b->buf == L->nb - 1) { /* MXFP4 nibbles decoded to int8 by the AIVs */
      s.a_bits = s.b_bits = 8;
      s.int8 = 1;
      s.b_foot = contig(s.N * s.K);
      s.b_foot.stride = s.K;
      s.b_layout = B_NMAJOR;
    } else {
      const kf_ir_buf *wb = &L->ir->bufs.data[b->buf];
      int wr = wb->rank; /* 3: matrix lo[0] of a batch */
      int64_t Kp = lw_up(wb->dims[wr - 1], 8), Np = lw_up(wb->dims[wr - 2], 16);
      int64_t mat = wr == 3 ? b->b.lo[0] * Np * Kp * wb->wbits / 8 : 0;
      s.a_bits = 8;
      s.b_bits = wb->wbits;
      s.int8 = 1;
      s.b_foot.off = mat + ((b->b.lo[wr - 2] / 16) * Kp + b->b.lo[wr - 1]) * 16 * wb->wbits / 8;
      s.b_foot.stride = Kp * 16 * wb->wbits / 8;
      s.b_layout = B_PACKED;
    }
    if (L->bs[acc->buf].place == LW_PL_L0C) {
      s.out_mode = 1;
    } else {
      s.out_mode = 0;
      s.out_foot = contig(s.M * s.N * 4);
      s.out_foot.stride = s.N * 4;
      s.out_atomic = !u->acc_zero;
    }
    return emit_matmul(L, u, &s);
  }
  case KF_OP_STORE:
  case KF_OP_ACCUM_STORE: {
    /* L0C accumulator -> GM through FixPipe */
    const lw_box *b = &u->o[1].b;
    int64_t bytes = lw_box_ext(b, 0) * lw_box_ext(b, 1) * 4;
    int atomic = n->op == KF_OP_ACCUM_STORE;
    int32_t fx = emit(L, u, KF_ASC_FIX, KF_ASC_WRITE, 0, bytes, atomic ? "FixPipe atomic add" : "FixPipe");
    set_gm(L, fx, u->o[1].buf, lw_footprint(L, u->o[1].buf, b), atomic);
    touch(u, 0, fx);
    touch(u, 1, fx);
    return KF_OK;
  }
  default: break;
  }
  return lw_err(L, n, "op %s has no Cube lowering", kf_ir_opname(n->op));
}

int lw_emit_unit(lw *L, int ui) {
  lw_unit_t *u = &L->units.data[ui];
  return u->aiv < 0 ? emit_aic(L, u) : emit_aiv(L, u);
}

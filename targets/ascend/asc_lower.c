/*
** asc_lower.c: tile IR -> per-core pipe programs (the rules are in asc_lower.h).
**
** Per AI-core group: walk the group's tasks through the IR with concrete loop values and
** turn every op instance into units (an op on one core: the AIC, or one AIV with half of
** the rows), recording which buffer slots (as boxes) each unit reads and writes; conflicts
** with earlier accesses become edges. Then order the AIC's units (preload), expand each
** unit into pipe instructions (asc_emit.c), and turn the edges into flags.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asc_lower_int.h"

int lw_err(lw *L, const kf_ir_node *n, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  kf_loc loc = n ? n->loc : (kf_loc){NULL, 0};
  return kf_err(L->ctx, KF_EINVAL, "%s:%d: %s (target %s)", loc.file ? loc.file : "?", loc.line, msg, L->m->name);
}

int64_t lw_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t lw_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int lw_esize(kf_scalar s) { return kf_scalar_bits(s) / 8; }

/* ---- affine values and boxes ---- */

static int64_t ev(const lw *L, const kf_ix *x) {
  int64_t v = x->c;
  for (int i = 0; i < x->n; i++) v += x->coef[i] * L->val[x->var[i]];
  if (x->cap != INT64_MAX && v > x->cap) v = x->cap;
  return v;
}

/* The box a tile covers for the current loop values; coalesced loops widen the extent by
** the iterations they stand for. Register tiles cover their whole buffer. */
lw_box lw_tile_box(const lw *L, const kf_tile *t) {
  const kf_ir_buf *b = &L->ir->bufs.data[t->buf];
  lw_box r;
  memset(&r, 0, sizeof r);
  r.rank = b->rank;
  for (int d = 0; d < b->rank; d++) {
    if (b->level == KF_LVL_REG) {
      r.lo[d] = 0;
      r.hi[d] = b->dims[d];
      continue;
    }
    int64_t lo = ev(L, &t->off[d]), ext = t->ext[d];
    for (int i = 0; i < t->off[d].n; i++) {
      int u = t->off[d].var[i];
      if (L->coal[u] && t->off[d].coef[i] > 0) ext += t->off[d].coef[i] * (L->span[u] - L->lstep[u]);
    }
    int64_t hi = lo + ext;
    if (lo < 0) lo = 0;
    if (hi > b->dims[d]) hi = b->dims[d];
    if (hi < lo) hi = lo;
    r.lo[d] = lo;
    r.hi[d] = hi;
  }
  return r;
}

int64_t lw_box_ext(const lw_box *b, int d) { return b->hi[d] - b->lo[d]; }

static int box_overlap(const lw_box *a, const lw_box *b) {
  for (int d = 0; d < a->rank && d < b->rank; d++)
    if (a->hi[d] <= b->lo[d] || b->hi[d] <= a->lo[d]) return 0;
  return 1;
}

static int box_covers(const lw_box *a, const lw_box *b) {
  for (int d = 0; d < a->rank && d < b->rank; d++)
    if (a->lo[d] > b->lo[d] || a->hi[d] < b->hi[d]) return 0;
  return 1;
}

/* Byte footprint of a box in a row-major buffer: rows = product of the leading extents,
** each row = extent of the last dim. */
lw_foot lw_footprint(const lw *L, int buf, const lw_box *bx) {
  const kf_ir_buf *b = &L->ir->bufs.data[buf];
  lw_foot f;
  memset(&f, 0, sizeof f);
  int es = lw_esize(b->dtype), r = bx->rank;
  int64_t stride = es, off = 0;
  for (int d = r - 1; d >= 0; d--) {
    off += bx->lo[d] * stride;
    if (d == r - 2) f.stride = stride;
    stride *= b->dims[d];
  }
  f.off = off;
  f.row_bytes = lw_box_ext(bx, r - 1) * es;
  f.rows = 1;
  for (int d = 0; d < r - 1; d++) f.rows *= lw_box_ext(bx, d);
  if (r == 1) f.stride = f.row_bytes;
  if (r >= 3) { /* leading dims beyond 2 flatten only when the middle ones are whole */
    int whole = 1;
    for (int d = 1; d < r - 1; d++) whole &= lw_box_ext(bx, d) == b->dims[d];
    if (!whole) f.stride = es * b->dims[r - 1];
  }
  return f;
}

/* ---- units, operands, edges ---- */

int lw_unit(lw *L, const kf_ir_node *n, int kind, int core, int aiv) {
  lw_unit_t u;
  memset(&u, 0, sizeof u);
  u.node = n;
  u.kind = kind;
  u.core = core;
  u.aiv = aiv;
  u.i0 = u.i1 = -1;
  u.in_head = -1;
  u.aiv_pred_max = -1;
  u.aiv_succ_min = INT32_MAX;
  kf_vec_push(&L->units, u);
  L->n_units_total++;
  return (int)L->units.len - 1;
}

/* Adds operand k of unit u on buffer `buf` (its current slot), and records the conflicts
** with earlier accesses as edges. */
int lw_opnd(lw *L, int u, int buf, const lw_box *b, int read, int write) {
  lw_unit_t *U = &L->units.data[u];
  kf_assert(U->n < LW_MAX_OPND);
  int k = U->n++;
  lw_opnd_t *o = &U->o[k];
  o->buf = buf;
  o->b = *b;
  o->read = (uint8_t)read;
  o->write = (uint8_t)write;
  o->first = o->last = -1;
  lw_bufst *s = &L->bs[buf];
  o->slot = (int)(s->ver % s->nslots);
  o->ver = s->ver;
  if (buf < (int)L->ir->bufs.len && L->ir->bufs.data[buf].level == KF_LVL_ARG_IN) return k;
  lw_acclist *al = &s->acc[o->slot];
  for (size_t i = 0; i < al->len; i++) {
    lw_access *a = &al->data[i];
    if (a->unit == u || !(write || a->write) || !box_overlap(&a->b, b)) continue;
    lw_edge e = {a->unit, u, a->opnd, (int8_t)k};
    kf_vec_push(&L->edges, e);
  }
  if (write) { /* accesses covered by this write are implied by it from now on */
    size_t j = 0;
    for (size_t i = 0; i < al->len; i++)
      if (!box_covers(b, &al->data[i].b)) al->data[j++] = al->data[i];
    al->len = j;
  }
  if (al->len >= 64) { /* keep the most recent accesses */
    memmove(al->data, al->data + 1, (al->len - 1) * sizeof *al->data);
    al->len--;
  }
  lw_access na = {u, (int8_t)k, (uint8_t)write, *b};
  kf_vec_push(al, na);
  return k;
}

/* A new value of a buffer: the next slot (GM workspaces alternate two). */
void lw_new_version(lw *L, int buf) {
  L->bs[buf].ver++;
  L->bs[buf].zero = 0;
  L->bs[buf].memo_node = NULL;
}

/* Halves of [lo, hi) for the two AIVs (the first takes the odd one). */
void lw_split(int64_t lo, int64_t hi, int j, int64_t *a, int64_t *b) {
  int64_t n = hi - lo, first = lw_cdiv(n, 2);
  if (j == 0) {
    *a = lo;
    *b = lo + first;
  } else {
    *a = lo + first;
    *b = hi;
  }
}

/* ---- placement and coalescing (before the walk) ---- */

static int op_home(int op) {
  switch (op) {
  case KF_OP_QK:
  case KF_OP_PV:
  case KF_OP_MMA: return LW_AIC;
  case KF_OP_FILL:
  case KF_OP_SOFTMAX:
  case KF_OP_RESCALE:
  case KF_OP_RESCALE_EXP2:
  case KF_OP_FINALIZE:
  case KF_OP_QUANTIZE:
  case KF_OP_SCALE_COLS: return LW_AIV_ROWS;
  case KF_OP_SCALE_ACC: return LW_AIV_COLS;
  default: return -1; /* zero / load / store follow their register tile */
  }
}

static void mark_uses(lw *L, const kf_ir_block *blk) {
  for (size_t i = 0; i < blk->len; i++) {
    const kf_ir_node *n = blk->data[i];
    if (n->op == KF_OP_LOOP) {
      mark_uses(L, &n->body);
      continue;
    }
    int h = op_home(n->op);
    if (h < 0) continue;
    for (int t = 0; t < n->n_tiles; t++) {
      lw_bufst *s = &L->bs[n->t[t].buf];
      if (h == LW_AIC) s->use_aic = 1;
      else if (h == LW_AIV_ROWS) s->use_rows = 1;
      else s->use_cols = 1;
    }
  }
}

static int ix_uses(const kf_ix *x, int var) {
  for (int i = 0; i < x->n; i++)
    if (x->var[i] == var && x->coef[i]) return 1;
  return 0;
}

static int subtree_has(const kf_ir_node *n, int op) {
  if ((int)n->op == op) return 1;
  if (n->op != KF_OP_LOOP) return 0;
  for (size_t i = 0; i < n->body.len; i++)
    if (subtree_has(n->body.data[i], op)) return 1;
  return 0;
}

/* Static trip extent of a loop (hi - lo when both have the same variable terms). */
static int64_t loop_extent(const kf_ir_node *n) {
  if (n->lo.n != n->hi.n) return -1;
  for (int i = 0; i < n->lo.n; i++)
    if (n->lo.var[i] != n->hi.var[i] || n->lo.coef[i] != n->hi.coef[i]) return -1;
  int64_t hi = n->hi.c;
  if (n->hi.n == 0 && n->hi.cap < hi) hi = n->hi.cap;
  return hi - n->lo.c;
}

/* For each mma, find the enclosing register-tile loops (their variable moves the mma's
** output rows or columns, not k) and choose how many iterations one L0C tile covers. */
static void plan_mma(lw *L, const kf_ir_node *mma, const kf_ir_node **stack, int depth) {
  const kf_tile *a = &mma->t[1], *b = &mma->t[2];
  /* A is [passes,] rows x k; B is [head,] n x k (a KV cache: one head's matrix per mma) */
  int ra = L->ir->bufs.data[a->buf].rank, rb = L->ir->bufs.data[b->buf].rank;
  int64_t P = ra == 3 ? a->ext[0] : 1, mr = a->ext[ra - 2], nr = b->ext[rb - 2];
  const kf_ir_node *mloop = NULL, *nloop = NULL;
  for (int i = 0; i < depth; i++) {
    const kf_ir_node *lp = stack[i];
    if (lp->parallel || subtree_has(lp, KF_OP_QUANTIZE)) continue;
    int v = lp->var;
    if (ix_uses(&a->off[ra - 1], v) || ix_uses(&b->off[rb - 1], v)) continue;
    int is_m = ix_uses(&a->off[ra - 2], v), is_n = ix_uses(&b->off[rb - 2], v);
    if (is_m == is_n) continue;
    if (loop_extent(lp) <= 0) continue;
    if (is_m) mloop = lp;
    else nloop = lp;
  }
  int64_t mt = mr;
  if (mloop) {
    int64_t cap = (128 / P) / mr * mr;
    if (cap < mr) cap = mr;
    mt = lw_up(loop_extent(mloop), mr);
    if (mt > cap) mt = cap;
    L->factor[mloop->var] = mt / mr;
    L->coal[mloop->var] = 1;
  }
  int64_t nt = nr;
  if (nloop) {
    int64_t rows = lw_up(P * mt, 16);
    int64_t cap = (L->m->l0c_bytes / 2) / (4 * rows) / nr * nr;
    if (cap < nr) cap = nr;
    nt = lw_up(loop_extent(nloop), nr);
    if (nt > cap) nt = cap;
    L->factor[nloop->var] = nt / nr;
    L->coal[nloop->var] = 1;
  }
  if (P * mt * nt > L->reg_elems) L->reg_elems = P * mt * nt;
}

static void plan_block(lw *L, const kf_ir_block *blk, const kf_ir_node **stack, int depth) {
  for (size_t i = 0; i < blk->len; i++) {
    const kf_ir_node *n = blk->data[i];
    if (n->op == KF_OP_LOOP) {
      stack[depth] = n;
      plan_block(L, &n->body, stack, depth + 1);
    } else if (n->op == KF_OP_MMA && n->n_tiles >= 3) {
      plan_mma(L, n, stack, depth);
    }
  }
}

static int place_buffers(lw *L) {
  kf_str *pl = &L->out->placement;
  for (size_t i = 0; i < L->ir->bufs.len; i++) {
    const kf_ir_buf *b = &L->ir->bufs.data[i];
    lw_bufst *s = &L->bs[i];
    s->nslots = 1;
    if (b->level == KF_LVL_ARG_IN || b->level == KF_LVL_ARG_OUT) s->place = LW_PL_ARG;
    else if (s->use_aic && (s->use_rows || s->use_cols)) s->place = LW_PL_WS;
    else if (s->use_aic) {
      if (b->level != KF_LVL_REG)
        return kf_err(L->ctx, KF_EINVAL,
                      "%s:%d: scratch '%s' is used only by Cube ops; only register tiles can stay on the AIC (L0C) (target %s)",
                      b->loc.file ? b->loc.file : "?", b->loc.line, b->name, L->m->name);
      s->place = LW_PL_L0C;
      s->nslots = 2;
    } else if (s->use_rows && s->use_cols) s->place = LW_PL_WS; /* both AIVs read all of it */
    else s->place = LW_PL_UB;
    if (s->place == LW_PL_WS) s->nslots = LW_WS_SLOTS;
    static const char *const names[] = {"GM", "GM workspace", "UB", "L0C"};
    kf_str_printf(pl, "%s%s: %s x%d", i ? "; " : "", b->name, names[s->place], s->nslots);
  }
  /* the dequantized-weight workspace of a dequant mma */
  lw_bufst *w = &L->bs[L->ir->bufs.len];
  w->place = LW_PL_WS;
  w->nslots = LW_WS_SLOTS;
  /* UB: resident Vector-only scratch (half per AIV) + the streaming chunk buffers */
  int64_t resident = 0;
  const kf_ir_buf *big = NULL;
  int64_t big_bytes = 0;
  for (size_t i = 0; i < L->ir->bufs.len; i++) {
    const kf_ir_buf *b = &L->ir->bufs.data[i];
    if (L->bs[i].place != LW_PL_UB) continue;
    int64_t e = 1;
    for (int d = 0; d < b->rank; d++) e *= b->dims[d];
    if (b->level == KF_LVL_REG && L->reg_elems > e) e = L->reg_elems;
    int64_t bytes = lw_cdiv(e, 2) * lw_esize(b->dtype);
    resident += bytes;
    if (bytes > big_bytes) {
      big_bytes = bytes;
      big = b;
    }
  }
  L->ub_resident = resident;
  L->ub_stream = LW_UB_CHUNK;
  if (resident + 4 * L->ub_stream > L->m->ub_bytes) {
    int64_t avail = L->m->ub_bytes - resident;
    if (avail < 4 * 4096)
      return kf_err(L->ctx, KF_EINVAL,
                    "%s:%d: UB of an AIV overflows: Vector-only scratch needs %lld B (largest '%s', %lld B, half of it per AIV) "
                    "+ 4 x 4096 B of streaming buffers > %lld B (target %s)",
                    big && big->loc.file ? big->loc.file : "?", big ? big->loc.line : 0, (long long)resident,
                    big ? big->name : "?", (long long)big_bytes, (long long)L->m->ub_bytes, L->m->name);
    L->ub_stream = avail / 4 / 32 * 32;
  }
  return KF_OK;
}

static int find_p_f32(const kf_ir_block *blk) {
  for (size_t i = 0; i < blk->len; i++) {
    const kf_ir_node *n = blk->data[i];
    if (n->op == KF_OP_LOOP && find_p_f32(&n->body)) return 1;
    if (n->op == KF_OP_SOFTMAX && !n->i[0] && !n->i[1]) return 1;
  }
  return 0;
}

/* ---- the walk ---- */

static int walk_block(lw *L, const kf_ir_block *blk);

static int too_many_insts(lw *L) {
  return kf_err(L->ctx, KF_EINVAL, "ascend: the program exceeds %lld instructions (or %lld op units on one core group); "
                "simulate a smaller shape (target %s)", (long long)L->p->max_insts, (long long)(L->p->max_insts / 4),
                L->m->name);
}

static int walk_node(lw *L, const kf_ir_node *n) {
  if (n->op != KF_OP_LOOP) {
    /* a unit (~1 KB while the group is walked) becomes ~3 instructions: stop while walking,
    ** before the unit list itself outgrows memory */
    if ((int64_t)L->units.len >= L->p->max_insts / 4 || (int64_t)L->p->insts.len >= L->p->max_insts)
      return too_many_insts(L);
    return lw_op(L, n);
  }
  int64_t lo = ev(L, &n->lo), hi = ev(L, &n->hi), st = n->step * (L->coal[n->var] ? L->factor[n->var] : 1);
  for (int64_t v = lo; v < hi; v += st) {
    L->val[n->var] = v;
    L->span[n->var] = hi - v < st ? hi - v : st;
    L->lstep[n->var] = n->step;
    int rc = walk_block(L, &n->body);
    if (rc) return rc;
  }
  return KF_OK;
}

static int walk_block(lw *L, const kf_ir_block *blk) {
  for (size_t i = 0; i < blk->len; i++) {
    int rc = walk_node(L, blk->data[i]);
    if (rc) return rc;
  }
  return KF_OK;
}

static void reset_group(lw *L) {
  for (int i = 0; i < L->nb; i++) {
    lw_bufst *s = &L->bs[i];
    s->ver = 0;
    s->zero = 0;
    s->memo_node = NULL;
    for (int k = 0; k < LW_MAX_SLOTS; k++) s->acc[k].len = 0;
  }
  L->units.len = 0;
  L->edges.len = 0;
  lw_emit_reset(L);
}

/* AIC order: with preload, a unit that waits on the Vector trades places with the next AIC
** unit when that one does not depend on it and waits on no AIV unit later than the first
** one that waits on the unit it overtakes (AIV units run in creation order, so that later
** AIV unit could be stuck behind one waiting for the overtaken unit: a deadlock; e.g. the
** next block's weight decode behind this block's scale_acc). */
typedef KF_VEC(int32_t) i32vec;

/* unit u waits on unit v directly (an edge v -> u) */
static int depends(const lw *L, int32_t u, int32_t v) {
  for (int32_t e = L->units.data[u].in_head; e >= 0; e = L->edge_next.data[e])
    if (L->edges.data[e].from == v) return 1;
  return 0;
}

static void order_aic(lw *L, i32vec *order) {
  order->len = 0;
  for (size_t i = 0; i < L->units.len; i++)
    if (L->units.data[i].aiv < 0) kf_vec_push(order, (int32_t)i);
  if (!L->preload) return;
  for (size_t i = 0; i + 1 < order->len;) {
    lw_unit_t *u = &L->units.data[order->data[i]], *v = &L->units.data[order->data[i + 1]];
    if (u->cross_in && !depends(L, order->data[i + 1], order->data[i]) && v->aiv_pred_max < u->aiv_succ_min) {
      int32_t t = order->data[i];
      order->data[i] = order->data[i + 1];
      order->data[i + 1] = t;
      i += 2;
    } else {
      i++;
    }
  }
}

/* AIV order: with preload, an AIV unit moves ahead of the AIV units before it (up to three)
** that wait on the AIC, when it waits only on older AIC work than they do (e.g. the next
** block's weight decode, whose workspace slot an earlier mma released, ahead of this block's
** scale_acc, so the Cube does not wait for both). No deadlock: every AIC unit it waits on
** comes before every AIC unit that waits on a unit it passes (the AIC runs in order), and
** neither exchanges data with the other AIV. */
typedef struct aivdep {
  int32_t pred_max, succ_min; /* latest AIC unit waited on / earliest AIC unit waiting (AIC order) */
  uint8_t other_pred, other_succ; /* an edge from / to the other AIV */
} aivdep;

static void order_aiv(const lw *L, int j, const aivdep *d, i32vec *order) {
  order->len = 0;
  for (size_t i = 0; i < L->units.len; i++)
    if (L->units.data[i].aiv == j) kf_vec_push(order, (int32_t)i);
  if (!L->preload) return;
  for (size_t i = 1; i < order->len; i++) {
    for (size_t k = i; k > 0 && k + 3 > i; k--) {
      int32_t v = order->data[k - 1], u = order->data[k];
      const aivdep *du = &d[u], *dv = &d[v];
      if (dv->pred_max < 0 || du->pred_max >= dv->pred_max || du->pred_max >= dv->succ_min || du->other_pred ||
          dv->other_succ || depends(L, u, v))
        break;
      order->data[k - 1] = u;
      order->data[k] = v;
    }
  }
}

static void aiv_deps(const lw *L, const i32vec *aic_order, aivdep *d) {
  int32_t *pos = kf_xcalloc(L->units.len ? L->units.len : 1, sizeof *pos);
  for (size_t i = 0; i < aic_order->len; i++) pos[aic_order->data[i]] = (int32_t)i;
  for (size_t i = 0; i < L->units.len; i++) d[i] = (aivdep){-1, INT32_MAX, 0, 0};
  for (size_t e = 0; e < L->edges.len; e++) {
    const lw_edge *ed = &L->edges.data[e];
    const lw_unit_t *from = &L->units.data[ed->from], *to = &L->units.data[ed->to];
    if (from->aiv < 0 && to->aiv >= 0 && pos[ed->from] > d[ed->to].pred_max) d[ed->to].pred_max = pos[ed->from];
    if (from->aiv >= 0 && to->aiv < 0 && pos[ed->to] < d[ed->from].succ_min) d[ed->from].succ_min = pos[ed->to];
    if (from->aiv >= 0 && to->aiv >= 0 && from->aiv != to->aiv) d[ed->to].other_pred = d[ed->from].other_succ = 1;
  }
  free(pos);
}

static int finish_group(lw *L) {
  /* incoming edge lists; which units wait on the other core kind */
  L->edge_next.len = 0;
  for (size_t e = 0; e < L->edges.len; e++) {
    lw_edge *ed = &L->edges.data[e];
    lw_unit_t *to = &L->units.data[ed->to];
    kf_vec_push(&L->edge_next, to->in_head);
    to->in_head = (int32_t)e;
    lw_unit_t *from = &L->units.data[ed->from];
    if ((to->aiv < 0) != (from->aiv < 0)) to->cross_in = 1;
    if (to->aiv < 0 && from->aiv >= 0 && ed->from > to->aiv_pred_max) to->aiv_pred_max = ed->from;
    if (from->aiv < 0 && to->aiv >= 0 && ed->to < from->aiv_succ_min) from->aiv_succ_min = ed->to;
  }
  i32vec order = {0}, vorder = {0};
  order_aic(L, &order);
  aivdep *deps = kf_xmalloc((L->units.len ? L->units.len : 1) * sizeof *deps);
  aiv_deps(L, &order, deps);
  int rc = KF_OK;
  for (size_t i = 0; i < order.len && !rc; i++) rc = lw_emit_unit(L, order.data[i]);
  for (int j = 0; j < 2 && !rc; j++) {
    order_aiv(L, j, deps, &vorder);
    for (size_t i = 0; i < vorder.len && !rc; i++) rc = lw_emit_unit(L, vorder.data[i]);
  }
  free(deps);
  kf_vec_free(&order);
  kf_vec_free(&vorder);
  if (rc) return rc;
  for (size_t e = 0; e < L->edges.len; e++) {
    lw_edge *ed = &L->edges.data[e];
    lw_unit_t *a = &L->units.data[ed->from], *b = &L->units.data[ed->to];
    int32_t p = a->o[ed->fo].last >= 0 ? a->o[ed->fo].last : a->i1;
    int32_t c = b->o[ed->to_o].first >= 0 ? b->o[ed->to_o].first : b->i0;
    kf_asc_dep(L->p, p, c);
  }
  if ((int64_t)L->p->insts.len >= L->p->max_insts)
    return too_many_insts(L);
  return KF_OK;
}

int kf_asc_lower(kf_ctx *ctx, const kf_ir_kernel *ir, const kf_asc_machine *m, const kf_asc_lower_opts *o,
                 kf_asc_lowered *out) {
  memset(out, 0, sizeof *out);
  lw L;
  memset(&L, 0, sizeof L);
  L.ctx = ctx;
  L.ir = ir;
  L.m = m;
  L.out = out;
  L.preload = o ? o->preload : 1;
  L.nb = (int)ir->bufs.len + 1;
  L.bs = kf_xcalloc((size_t)L.nb, sizeof *L.bs);
  size_t nv = ir->vars.len + 1;
  L.val = kf_xcalloc(nv, sizeof(int64_t));
  L.span = kf_xcalloc(nv, sizeof(int64_t));
  L.lstep = kf_xcalloc(nv, sizeof(int64_t));
  L.factor = kf_xcalloc(nv, sizeof(int64_t));
  L.coal = kf_xcalloc(nv, 1);
  L.p = kf_asc_prog_new(m);
  out->prog = L.p;
  const kf_ir_node **stack = kf_xcalloc(64, sizeof *stack);
  mark_uses(&L, &ir->body);
  L.p_f32 = find_p_f32(&ir->body);
  plan_block(&L, &ir->body, stack, 0);
  free(stack);
  int rc = place_buffers(&L);
  /* tasks: the body is one parallel loop (optionally with one nested parallel loop), or
  ** has no parallel loop (one task) */
  const kf_ir_node *par = NULL, *inner = NULL;
  for (size_t i = 0; i < ir->body.len && !rc; i++)
    if (ir->body.data[i]->op == KF_OP_LOOP && ir->body.data[i]->parallel) par = ir->body.data[i];
  if (!rc && par && ir->body.len != 1)
    rc = lw_err(&L, par, "the parallel loop must be the whole kernel body on this target");
  if (!rc && par && par->body.len == 1 && par->body.data[0]->op == KF_OP_LOOP && par->body.data[0]->parallel)
    inner = par->body.data[0];
  int64_t n1 = 1, n2 = 1, lo1 = 0, lo2 = 0;
  if (par) {
    lo1 = par->lo.c;
    int64_t hi1 = par->hi.cap < par->hi.c ? par->hi.cap : par->hi.c;
    n1 = hi1 > lo1 ? lw_cdiv(hi1 - lo1, par->step) : 0;
    if (inner) {
      lo2 = inner->lo.c;
      int64_t hi2 = inner->hi.cap < inner->hi.c ? inner->hi.cap : inner->hi.c;
      n2 = hi2 > lo2 ? lw_cdiv(hi2 - lo2, inner->step) : 0;
    }
  }
  int64_t n_tasks = n1 * n2;
  int n_groups = kf_asc_machine_n_aic(m);
  out->n_tasks = n_tasks;
  const kf_ir_block *body = inner ? &inner->body : par ? &par->body : &ir->body;
  for (int g = 0; g < n_groups && !rc; g++) {
    L.die = g / m->aic_per_die;
    L.group = g % m->aic_per_die;
    reset_group(&L);
    int any = 0;
    for (int64_t t = g; t < n_tasks && !rc; t += n_groups) {
      any = 1;
      if (par) {
        L.val[par->var] = lo1 + (t / n2) * par->step;
        if (inner) L.val[inner->var] = lo2 + (t % n2) * inner->step;
      }
      rc = walk_block(&L, body);
    }
    if (any && !rc) rc = finish_group(&L);
  }
  out->n_units = L.n_units_total;
  out->cube_flops = L.flops;
  out->cube_int8 = L.int8;
  for (int i = 0; i < L.nb; i++) {
    for (int k = 0; k < LW_MAX_SLOTS; k++) kf_vec_free(&L.bs[i].acc[k]);
  }
  free(L.bs);
  free(L.val);
  free(L.span);
  free(L.lstep);
  free(L.factor);
  free(L.coal);
  kf_vec_free(&L.units);
  kf_vec_free(&L.edges);
  kf_vec_free(&L.edge_next);
  if (rc) kf_asc_lowered_free(out);
  return rc;
}

void kf_asc_lowered_free(kf_asc_lowered *l) {
  kf_asc_prog_free(l->prog);
  kf_str_free(&l->placement);
  memset(l, 0, sizeof *l);
}

/*
** lower_attn.c: attention decode tile ops -> LIR for the CPU targets: scores (qk),
** online softmax (FlashAttention-2 and AMLA variants), the two output rescales (multiply,
** or AMLA's exact 2^k as an int32 add on the f32 bits), P.V and the final divide.
**
** exp is lowered here as LIR arithmetic (range reduction + degree-7 polynomial + 2^k by
** building the exponent bits), so both emitters compute the same function.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lower_int.h"

#define F32(L, n) lw_ty(KF_F32, n)

static kf_lir_expr *fc(lw *L, double v) { return kf_lc_f(L->f, F32(L, 1), v); }
static kf_lir_expr *fbin(lw *L, kf_lir_op op, kf_lir_expr *a, kf_lir_expr *b) { return kf_lbin(L->f, op, a, b); }
static kf_lir_expr *fma3(lw *L, kf_lir_expr *a, kf_lir_expr *b, kf_lir_expr *c) {
  return kf_lop(L->f, KF_L_FMA, a->ty, a, b, c);
}
static kf_lir_expr *bc(lw *L, int lanes, kf_lir_expr *s) { return kf_lbcast(L->f, lanes, s); }
static kf_lir_expr *V(lw *L, int var) { return kf_lv(L->f, var); }
static int setv(lw *L, kf_lir_block *b, const char *name, kf_lir_expr *e) {
  int v = lw_tmp(L, name, e->ty);
  kf_lassign(L->f, b, v, e);
  return v;
}

/* exp(x) for f32 x (any lanes): x clamped to [-87, 88]; k = round(x log2 e);
** r = x - k ln2 (two-step); e^r by a degree-7 Taylor polynomial (|r| <= 0.347: truncation
** < 7e-9 relative); times 2^k built as ((k + 127) << 23). Max error ~2 ulp. */
static int emit_exp(lw *L, kf_lir_block *b, kf_lir_expr *x) {
  int n = x->ty.lanes;
  kf_lir_expr *xc = fbin(L, KF_L_MIN, fbin(L, KF_L_MAX, x, bc(L, n, fc(L, -87.0))), bc(L, n, fc(L, 88.0)));
  int xv = setv(L, b, "ex", xc);
  int kv = setv(L, b, "ek", kf_lop(L->f, KF_L_ROUND, F32(L, n), fbin(L, KF_L_MUL, V(L, xv), bc(L, n, fc(L, 1.4426950408889634))), NULL, NULL));
  kf_lir_expr *r = fma3(L, V(L, kv), bc(L, n, fc(L, -0.693145751953125)), V(L, xv));
  r = fma3(L, V(L, kv), bc(L, n, fc(L, -1.428606765330187e-06)), r);
  int rv = setv(L, b, "er", r);
  static const double c[] = {1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
  kf_lir_expr *p = bc(L, n, fc(L, c[0]));
  for (int i = 1; i < 8; i++) p = fma3(L, p, V(L, rv), bc(L, n, fc(L, c[i])));
  int pv = setv(L, b, "ep", p);
  kf_lir_expr *ki = kf_lcvt(L->f, lw_ty(KF_I32, n), V(L, kv));
  kf_lir_expr *bits = kf_lbin(L->f, KF_L_SHL, kf_lbin(L->f, KF_L_ADD, ki, lw_iconst(L, KF_I32, n, 127)), lw_iconst(L, KF_I32, n, 23));
  kf_lir_expr *two_k = kf_lbitcast(L->f, F32(L, n), bits);
  return setv(L, b, "exp", fbin(L, KF_L_MUL, V(L, pv), two_k));
}

/* Matrix view of a tile: its last two dims are rows x cols. */
typedef struct mview {
  int buf;
  kf_lir_expr *base;  /* element index of (row 0, col 0) */
  int64_t stride;     /* elements between rows */
  int64_t rows, cols; /* tile extents */
  int64_t row_dim;    /* buffer size in the row dim (for clamping) */
  kf_lir_expr *row0;  /* absolute row offset of the tile (for clamping) */
  kf_scalar dtype;
} mview;

static int view(lw *L, const kf_ir_node *n, int ti, mview *m, const char *what) {
  (void)what; /* the operand's contract is the verifier's (gen/ops.c) */
  memset(m, 0, sizeof *m);
  const kf_tile *t = &n->t[ti];
  const kf_ir_buf *b = &L->ir->bufs.data[t->buf];
  int r = b->rank;
  m->buf = L->buf_of[t->buf];
  m->base = lw_tile_index(L, t, NULL);
  m->dtype = b->dtype;
  if (r == 1) {
    m->stride = 1;
    m->rows = t->ext[0];
    m->cols = 1;
    m->row_dim = b->dims[0];
    m->row0 = lw_ix_expr(L, &t->off[0]);
    return KF_OK;
  }
  m->stride = b->dims[r - 1];
  m->rows = t->ext[r - 2];
  m->cols = t->ext[r - 1];
  m->row_dim = b->dims[r - 2];
  m->row0 = lw_ix_expr(L, &t->off[r - 2]);
  return KF_OK;
}

static kf_lir_expr *at(lw *L, const mview *m, kf_lir_expr *row, kf_lir_expr *col) {
  return lw_add(L, lw_add(L, m->base, lw_muli(L, row, m->stride)), col);
}

static int64_t divisor_le(int64_t n, int64_t cap) {
  for (int64_t d = cap; d > 1; d--)
    if (n % d == 0) return d;
  return 1;
}

int lw_lower_fill(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  mview m;
  int rc = view(L, n, 0, &m, "fill");
  if (rc) return rc;
  int vl = L->vl;
  kf_lir_expr *val = m.dtype == KF_F32 ? lw_fconst(L, vl, n->f) : lw_iconst(L, KF_I32, vl, (int64_t)n->f);
  int rv = lw_tmp(L, "fr", lw_ty(KF_I64, 1));
  kf_lir_stmt *rl = kf_lfor(L->f, blk, rv, lw_i64c(L, 0), lw_i64c(L, m.rows), 1);
  int64_t full = m.cols / vl * vl;
  if (full) {
    int cv = lw_tmp(L, "fc", lw_ty(KF_I64, 1));
    kf_lir_stmt *cl = kf_lfor(L->f, &rl->body, cv, lw_i64c(L, 0), lw_i64c(L, full), vl);
    kf_lstore(L->f, &cl->body, m.buf, at(L, &m, V(L, rv), V(L, cv)), val);
  }
  if (m.cols > full)
    kf_lstoren(L->f, &rl->body, m.buf, at(L, &m, V(L, rv), lw_i64c(L, full)), val, lw_i64c(L, m.cols - full));
  return KF_OK;
}

/* dst[r][c] = f * src[r][c] * scales[c]; scales are read only inside their buffer (the tile
** may run past its end, e.g. per-token scales at the last KV block: zero there). */
int lw_lower_scale_cols(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  mview d, sr, sc;
  int rc;
  if ((rc = view(L, n, 0, &d, "scale_cols")) || (rc = view(L, n, 1, &sr, "scale_cols")) ||
      (rc = view(L, n, 2, &sc, "scale_cols")))
    return rc;
  int vl = L->vl;
  const kf_tile *st = &n->t[2];
  const kf_ir_buf *sb = &L->ir->bufs.data[st->buf];
  int64_t sdim = sb->dims[sb->rank - 1];
  kf_lir_expr *scol0 = lw_ix_expr(L, &st->off[sb->rank - 1]);
  kf_lcomment(L->f, blk, "scale_cols: %lld x %lld, factor %g", (long long)d.rows, (long long)d.cols, n->f);
  int cv = lw_tmp(L, "c", lw_ty(KF_I64, 1)), rv = lw_tmp(L, "r", lw_ty(KF_I64, 1));
  /* columns outer (scale vector loaded once), rows inner */
  int64_t nchunks = (d.cols + vl - 1) / vl;
  kf_lir_stmt *cl = kf_lfor(L->f, blk, cv, lw_i64c(L, 0), lw_i64c(L, nchunks * vl), vl);
  kf_lir_block *b = &cl->body;
  kf_lir_expr *left = kf_lbin(L->f, KF_L_SUB, lw_i64c(L, sdim), lw_add(L, scol0, V(L, cv)));
  kf_lir_expr *cnt_s = kf_lbin(L->f, KF_L_MAX, lw_i64c(L, 0), lw_min64(L, left, lw_i64c(L, vl)));
  int cnt = setv(L, b, "cnt", lw_min64(L, cnt_s, kf_lbin(L->f, KF_L_SUB, lw_i64c(L, d.cols), V(L, cv))));
  int scv = setv(L, b, "scv", fbin(L, KF_L_MUL, kf_lloadn(L->f, F32(L, vl), sc.buf, at(L, &sc, lw_i64c(L, 0), V(L, cv)), V(L, cnt)),
                                       lw_fconst(L, vl, n->f)));
  int dcnt = setv(L, b, "dcnt", lw_min64(L, lw_i64c(L, vl), kf_lbin(L->f, KF_L_SUB, lw_i64c(L, d.cols), V(L, cv))));
  kf_lir_stmt *rl = kf_lfor(L->f, b, rv, lw_i64c(L, 0), lw_i64c(L, d.rows), 1);
  kf_lir_expr *x = kf_lloadn(L->f, lw_ty(sr.dtype, vl), sr.buf, at(L, &sr, V(L, rv), V(L, cv)), V(L, dcnt));
  kf_lstoren(L->f, &rl->body, d.buf, at(L, &d, V(L, rv), V(L, cv)),
             fbin(L, KF_L_MUL, kf_lcvt(L->f, F32(L, vl), x), V(L, scv)), V(L, dcnt));
  return KF_OK;
}

/* s[h][j] = scale * q[h] . k[j], register-blocked MR heads x NK keys, vectors along d;
** dpbf16 on bf16 pairs when the target has AVX512_BF16, else bf16->f32 and FMA. Keys past
** `len` read the last valid row (never used). */
int lw_lower_qk(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  mview s, q, k;
  int rc;
  if ((rc = view(L, n, 0, &s, "qk")) || (rc = view(L, n, 1, &q, "qk")) || (rc = view(L, n, 2, &k, "qk"))) return rc;
  int vl = L->vl, dp = L->t->has_bf16;
  int64_t D = q.cols, chunk = dp ? 2 * vl : vl;
  int64_t MR = divisor_le(q.rows, 4), NK = 4;
  kf_lcomment(L->f, blk, "qk: %lld rows x %lld keys, d=%lld, %s", (long long)q.rows, (long long)k.rows, (long long)D,
              dp ? "vdpbf16ps" : "bf16->f32 fma");
  int lenv = setv(L, blk, "len", lw_ix_expr(L, &n->len));
  int hv = lw_tmp(L, "h", lw_ty(KF_I64, 1)), jv = lw_tmp(L, "j", lw_ty(KF_I64, 1)), dv = lw_tmp(L, "d", lw_ty(KF_I64, 1));
  kf_lir_stmt *hl = kf_lfor(L->f, blk, hv, lw_i64c(L, 0), lw_i64c(L, q.rows), MR);
  kf_lir_stmt *jl = kf_lfor(L->f, &hl->body, jv, lw_i64c(L, 0), V(L, lenv), NK);
  kf_lir_block *b = &jl->body;
  int acc[4][4], krow[4];
  for (int j = 0; j < NK; j++) {
    /* clamp the key row into the buffer */
    kf_lir_expr *absrow = lw_add(L, k.row0, lw_addi(L, V(L, jv), j));
    kf_lir_expr *rel = kf_lbin(L->f, KF_L_SUB, lw_min64(L, absrow, lw_i64c(L, k.row_dim - 1)), k.row0);
    krow[j] = setv(L, b, "kr", at(L, &k, rel, lw_i64c(L, 0)));
  }
  for (int h = 0; h < MR; h++)
    for (int j = 0; j < NK; j++) acc[h][j] = setv(L, b, "qa", lw_fconst(L, vl, 0.0));
  /* full chunks, then a zero-filled partial chunk */
  int64_t full = D / chunk * chunk;
  for (int part = 0; part < 2; part++) {
    int64_t lanes_valid = part ? D - full : chunk;
    if (part && lanes_valid == 0) break;
    kf_lir_block *db = b;
    kf_lir_expr *d0;
    if (!part) {
      if (!full) continue;
      kf_lir_stmt *dl = kf_lfor(L->f, b, dv, lw_i64c(L, 0), lw_i64c(L, full), chunk);
      db = &dl->body;
      d0 = V(L, dv);
    } else {
      d0 = lw_i64c(L, full);
    }
    kf_ty bt = lw_ty(KF_BF16, (int)chunk);
    int qv[4], kvv[4];
    for (int h = 0; h < MR; h++) {
      kf_lir_expr *idx = at(L, &q, lw_addi(L, V(L, hv), h), d0);
      kf_lir_expr *ld = part ? kf_lloadn(L->f, bt, q.buf, idx, lw_i64c(L, lanes_valid)) : kf_lload(L->f, bt, q.buf, idx);
      qv[h] = setv(L, db, "qv", dp ? ld : kf_lcvt(L->f, F32(L, vl), ld));
    }
    for (int j = 0; j < NK; j++) {
      kf_lir_expr *idx = lw_add(L, V(L, krow[j]), d0);
      kf_lir_expr *ld = part ? kf_lloadn(L->f, bt, k.buf, idx, lw_i64c(L, lanes_valid)) : kf_lload(L->f, bt, k.buf, idx);
      kvv[j] = setv(L, db, "kv", dp ? ld : kf_lcvt(L->f, F32(L, vl), ld));
    }
    for (int h = 0; h < MR; h++)
      for (int j = 0; j < NK; j++) {
        kf_lir_expr *e = dp ? kf_lop(L->f, KF_L_DPBF16, F32(L, vl), V(L, acc[h][j]), V(L, qv[h]), V(L, kvv[j]))
                            : fma3(L, V(L, qv[h]), V(L, kvv[j]), V(L, acc[h][j]));
        kf_lassign(L->f, db, acc[h][j], e);
      }
  }
  for (int h = 0; h < MR; h++)
    for (int j = 0; j < NK; j++) {
      kf_lir_expr *sum = kf_lop(L->f, KF_L_REDUCE_ADD, F32(L, 1), V(L, acc[h][j]), NULL, NULL);
      kf_lir_expr *val = fbin(L, KF_L_MUL, sum, fc(L, n->f));
      /* keys past the block's extent are never stored (len <= extent) */
      kf_lir_expr *col = lw_addi(L, V(L, jv), j);
      kf_lir_stmt *g = kf_lif(L->f, b, kf_lbin(L->f, KF_L_LT, col, lw_i64c(L, s.cols)));
      kf_lstore(L->f, &g->body, s.buf, at(L, &s, lw_addi(L, V(L, hv), h), col), val);
    }
  return KF_OK;
}

static kf_lir_expr *ld1(lw *L, const mview *m, kf_lir_expr *row) {
  return kf_lload(L->f, lw_ty(m->dtype, 1), m->buf, at(L, m, row, lw_i64c(L, 0)));
}
static void st1(lw *L, kf_lir_block *b, const mview *m, kf_lir_expr *row, kf_lir_expr *v) {
  kf_lstore(L->f, b, m->buf, at(L, m, row, lw_i64c(L, 0)), v);
}

/* Online softmax over the block's valid scores, per row (FA-2; AMLA adds n_i, r_hat, the
** compensation c and the int32 add for the output rescale: refs/amla.md section 1). */
int lw_lower_softmax(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  mview s, m, l, al, nn, add;
  int rc, amla = (int)n->i[0], pbf = (int)n->i[1];
  if ((rc = view(L, n, 0, &s, "softmax")) || (rc = view(L, n, 1, &m, "softmax")) ||
      (rc = view(L, n, 2, &l, "softmax")) || (rc = view(L, n, 3, &al, "softmax")))
    return rc;
  if (amla && ((rc = view(L, n, 4, &nn, "softmax")) || (rc = view(L, n, 5, &add, "softmax")))) return rc;
  int vl = L->vl;
  kf_lcomment(L->f, blk, "online softmax (%s%s)", amla ? "AMLA" : "FA-2", pbf ? ", P rounded to bf16" : "");
  int lenv = setv(L, blk, "len", lw_ix_expr(L, &n->len));
  int nfull = setv(L, blk, "nf", lw_muli(L, kf_lbin(L->f, KF_L_DIV, V(L, lenv), lw_i64c(L, vl)), vl));
  int hv = lw_tmp(L, "h", lw_ty(KF_I64, 1));
  kf_lir_stmt *hl = kf_lfor(L->f, blk, hv, lw_i64c(L, 0), lw_i64c(L, s.rows), 1);
  kf_lir_block *b = &hl->body;
  kf_lir_expr *h = V(L, hv);
  /* block max */
  int mb = setv(L, b, "mb", lw_fconst(L, vl, -INFINITY));
  int kv = lw_tmp(L, "k", lw_ty(KF_I64, 1));
  kf_lir_stmt *ml = kf_lfor(L->f, b, kv, lw_i64c(L, 0), V(L, nfull), vl);
  kf_lassign(L->f, &ml->body, mb, fbin(L, KF_L_MAX, V(L, mb), kf_lload(L->f, F32(L, vl), s.buf, at(L, &s, h, V(L, kv)))));
  int mbs = setv(L, b, "mbs", kf_lop(L->f, KF_L_REDUCE_MAX, F32(L, 1), V(L, mb), NULL, NULL));
  kf_lir_stmt *mt = kf_lfor(L->f, b, kv, V(L, nfull), V(L, lenv), 1);
  kf_lassign(L->f, &mt->body, mbs, fbin(L, KF_L_MAX, V(L, mbs), kf_lload(L->f, F32(L, 1), s.buf, at(L, &s, h, V(L, kv)))));
  int mold = setv(L, b, "mold", ld1(L, &m, h));
  int mnew = setv(L, b, "mnew", fbin(L, KF_L_MAX, V(L, mold), V(L, mbs)));
  int alpha = emit_exp(L, b, fbin(L, KF_L_SUB, V(L, mold), V(L, mnew)));
  /* AMLA: n_i = round(-m/ln2), r = e^m 2^n = exp(m + n ln2) in [2^-1/2, 2^1/2], r_hat = bf16(r) */
  int rhat = -1, r = -1;
  if (amla) {
    int ni = setv(L, b, "ni", kf_lop(L->f, KF_L_ROUND, F32(L, 1), fbin(L, KF_L_MUL, V(L, mnew), fc(L, -1.4426950408889634)), NULL, NULL));
    r = emit_exp(L, b, fma3(L, V(L, ni), fc(L, 0.6931471805599453), V(L, mnew)));
    rhat = setv(L, b, "rhat", kf_lcvt(L->f, F32(L, 1), kf_lcvt(L->f, lw_ty(KF_BF16, 1), V(L, r))));
    /* c = r / r_hat; eps = 1.5 (c_prev / c - 1); N = max(n - n_prev, -30) + eps.
    ** (The CANN kernel adds a further undocumented 1e-6 to eps: a 1e-6 relative drift of O
    ** per block that shows as ~50x FA-2's error when all else is exact, e.g. equal scores;
    ** kforge leaves it out.) */
    int c = setv(L, b, "c", fbin(L, KF_L_DIV, V(L, r), V(L, rhat)));
    int cprev = setv(L, b, "cprev", ld1(L, &al, h));
    int nprev = setv(L, b, "nprev", ld1(L, &nn, h));
    kf_lir_expr *eps = fbin(L, KF_L_MUL, fc(L, 1.5), fbin(L, KF_L_SUB, fbin(L, KF_L_DIV, V(L, cprev), V(L, c)), fc(L, 1.0)));
    kf_lir_expr *dn = fbin(L, KF_L_MAX, fbin(L, KF_L_SUB, V(L, ni), V(L, nprev)), fc(L, -30.0));
    kf_lir_expr *N = fbin(L, KF_L_ADD, dn, eps);
    kf_lir_expr *addi = kf_lcvt(L->f, lw_ty(KF_I32, 1), kf_lop(L->f, KF_L_ROUND, F32(L, 1), fbin(L, KF_L_MUL, N, fc(L, 8388608.0)), NULL, NULL));
    /* the first block has no O to rescale: m_old is -inf there */
    kf_lir_expr *first = kf_lbin(L->f, KF_L_LT, V(L, mold), fc(L, -3.0e38));
    kf_lir_expr *addv = kf_lop(L->f, KF_L_SELECT, lw_ty(KF_I32, 1), first, kf_lc_i(L->f, lw_ty(KF_I32, 1), 0), addi);
    st1(L, b, &add, h, addv);
    st1(L, b, &nn, h, V(L, ni));
    st1(L, b, &al, h, V(L, c)); /* AMLA keeps c (the next block's c_prev) in the alpha slot */
  }
  /* P = exp(s - m_new): sum (unrounded) into l; store P (or P~ = bf16(P r_hat)) */
  int sum = setv(L, b, "psum", lw_fconst(L, vl, 0.0));
  int sum1 = -1;
  for (int part = 0; part < 2; part++) {
    int lanes = part ? 1 : vl;
    kf_lir_stmt *pl = kf_lfor(L->f, b, kv, part ? V(L, nfull) : lw_i64c(L, 0), part ? V(L, lenv) : V(L, nfull), lanes);
    kf_lir_block *pb = &pl->body;
    kf_lir_expr *idx = at(L, &s, h, V(L, kv));
    kf_lir_expr *x = fbin(L, KF_L_SUB, kf_lload(L->f, F32(L, lanes), s.buf, idx), bc(L, lanes, V(L, mnew)));
    int e = emit_exp(L, pb, x);
    if (part) kf_lassign(L->f, pb, sum1, fbin(L, KF_L_ADD, V(L, sum1), V(L, e)));
    else kf_lassign(L->f, pb, sum, fbin(L, KF_L_ADD, V(L, sum), V(L, e)));
    kf_lir_expr *pst = V(L, e);
    if (amla) pst = fbin(L, KF_L_MUL, pst, bc(L, lanes, V(L, rhat)));
    if (pbf || amla) pst = kf_lcvt(L->f, F32(L, lanes), kf_lcvt(L->f, lw_ty(KF_BF16, lanes), pst));
    kf_lstore(L->f, pb, s.buf, idx, pst);
    if (!part) sum1 = setv(L, b, "psum1", kf_lop(L->f, KF_L_REDUCE_ADD, F32(L, 1), V(L, sum), NULL, NULL));
  }
  /* zero P past len so a GEMM over the whole block adds nothing for missing keys */
  kf_lir_stmt *zl = kf_lfor(L->f, b, kv, V(L, lenv), lw_i64c(L, s.cols), 1);
  kf_lstore(L->f, &zl->body, s.buf, at(L, &s, h, V(L, kv)), fc(L, 0.0));
  /* l = l * alpha + sum; m = m_new */
  st1(L, b, &l, h, fma3(L, ld1(L, &l, h), V(L, alpha), V(L, sum1)));
  st1(L, b, &m, h, V(L, mnew));
  if (!amla) st1(L, b, &al, h, V(L, alpha));
  return KF_OK;
}

/* o[h][:] *= alpha[h]  or  bits(o[h][:]) += add[h] (AMLA: exact multiply by 2^k) */
int lw_lower_rescale(lw *L, const kf_ir_node *n, kf_lir_block *blk, int exp2) {
  mview o, a;
  int rc;
  if ((rc = view(L, n, 0, &o, "rescale")) || (rc = view(L, n, 1, &a, "rescale"))) return rc;
  int vl = L->vl;
  kf_lcomment(L->f, blk, exp2 ? "AMLA rescale: o *= 2^k as an int32 add of k*2^23 on its bits" : "FA-2 rescale: o *= alpha");
  int hv = lw_tmp(L, "h", lw_ty(KF_I64, 1)), cv = lw_tmp(L, "c", lw_ty(KF_I64, 1));
  kf_lir_stmt *hl = kf_lfor(L->f, blk, hv, lw_i64c(L, 0), lw_i64c(L, o.rows), 1);
  kf_lir_block *b = &hl->body;
  int fac = setv(L, b, "fac", bc(L, vl, ld1(L, &a, V(L, hv))));
  int64_t full = o.cols / vl * vl;
  for (int part = 0; part < 2; part++) {
    if (part && o.cols == full) break;
    if (!part && !full) continue;
    kf_lir_block *cb = b;
    kf_lir_expr *c0 = lw_i64c(L, full);
    if (!part) {
      kf_lir_stmt *cl = kf_lfor(L->f, b, cv, lw_i64c(L, 0), lw_i64c(L, full), vl);
      cb = &cl->body;
      c0 = V(L, cv);
    }
    kf_lir_expr *idx = at(L, &o, V(L, hv), c0), *cnt = lw_i64c(L, o.cols - full);
    kf_lir_expr *ov = part ? kf_lloadn(L->f, F32(L, vl), o.buf, idx, cnt) : kf_lload(L->f, F32(L, vl), o.buf, idx);
    kf_lir_expr *res;
    if (exp2) {
      kf_lir_expr *bits = kf_lbitcast(L->f, lw_ty(KF_I32, vl), ov);
      res = kf_lbitcast(L->f, F32(L, vl), kf_lbin(L->f, KF_L_ADD, bits, V(L, fac)));
    } else {
      res = fbin(L, KF_L_MUL, ov, V(L, fac));
    }
    if (part) kf_lstoren(L->f, cb, o.buf, idx, res, cnt);
    else kf_lstore(L->f, cb, o.buf, idx, res);
  }
  return KF_OK;
}

/* o[h][c] += sum_{j < len} p[h][j] v[j][c]: MR rows x NC vectors of o in registers */
int lw_lower_pv(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  mview o, p, v;
  int rc;
  if ((rc = view(L, n, 0, &o, "pv")) || (rc = view(L, n, 1, &p, "pv")) || (rc = view(L, n, 2, &v, "pv"))) return rc;
  int vl = L->vl;
  if (o.cols % vl)
    return ERR_AT(L, n, "pv: o and v need the same column count, a multiple of %d (got %lld, %lld)", vl,
                  (long long)o.cols, (long long)v.cols);
  int64_t MR = divisor_le(o.rows, n->i[0] > 0 ? n->i[0] : 4), NC = divisor_le(o.cols / vl, 4);
  if (MR * NC + NC + 1 > 32) NC = divisor_le(o.cols / vl, 2);
  kf_lcomment(L->f, blk, "pv: o[%lld x %lld] += p . v, register tile %lld rows x %lld vectors", (long long)o.rows,
              (long long)o.cols, (long long)MR, (long long)NC);
  int lenv = setv(L, blk, "len", lw_ix_expr(L, &n->len));
  int hv = lw_tmp(L, "h", lw_ty(KF_I64, 1)), cv = lw_tmp(L, "c", lw_ty(KF_I64, 1)), jv = lw_tmp(L, "j", lw_ty(KF_I64, 1));
  kf_lir_stmt *hl = kf_lfor(L->f, blk, hv, lw_i64c(L, 0), lw_i64c(L, o.rows), MR);
  kf_lir_stmt *cl = kf_lfor(L->f, &hl->body, cv, lw_i64c(L, 0), lw_i64c(L, o.cols), NC * vl);
  kf_lir_block *b = &cl->body;
  int acc[8][4];
  for (int h = 0; h < MR; h++)
    for (int c = 0; c < NC; c++)
      acc[h][c] = setv(L, b, "pa", kf_lload(L->f, F32(L, vl), o.buf, at(L, &o, lw_addi(L, V(L, hv), h), lw_addi(L, V(L, cv), c * vl))));
  kf_lir_stmt *jl = kf_lfor(L->f, b, jv, lw_i64c(L, 0), V(L, lenv), 1);
  kf_lir_block *jb = &jl->body;
  int vv[4];
  for (int c = 0; c < NC; c++)
    vv[c] = setv(L, jb, "vv", kf_lcvt(L->f, F32(L, vl), kf_lload(L->f, lw_ty(KF_BF16, vl), v.buf, at(L, &v, V(L, jv), lw_addi(L, V(L, cv), c * vl)))));
  for (int h = 0; h < MR; h++) {
    int pb = setv(L, jb, "pb", bc(L, vl, kf_lload(L->f, F32(L, 1), p.buf, at(L, &p, lw_addi(L, V(L, hv), h), V(L, jv)))));
    for (int c = 0; c < NC; c++) kf_lassign(L->f, jb, acc[h][c], fma3(L, V(L, vv[c]), V(L, pb), V(L, acc[h][c])));
  }
  for (int h = 0; h < MR; h++)
    for (int c = 0; c < NC; c++)
      kf_lstore(L->f, b, o.buf, at(L, &o, lw_addi(L, V(L, hv), h), lw_addi(L, V(L, cv), c * vl)), V(L, acc[h][c]));
  return KF_OK;
}

/* out = o / (l * r_hat), r_hat = bf16(exp(m + n ln2)) for AMLA (t[3] = m, t[4] = n); with
** the guard, |o| > 1e10 (inf/NaN from an int add on zeros) is zeroed first. */
int lw_lower_finalize(lw *L, const kf_ir_node *n, kf_lir_block *blk) {
  mview out, o, l, m, nn;
  int rc, amla = n->n_tiles >= 5, guard = (int)n->i[0];
  if ((rc = view(L, n, 0, &out, "finalize")) || (rc = view(L, n, 1, &o, "finalize")) || (rc = view(L, n, 2, &l, "finalize")))
    return rc;
  if (amla && ((rc = view(L, n, 3, &m, "finalize")) || (rc = view(L, n, 4, &nn, "finalize")))) return rc;
  int vl = L->vl;
  kf_lcomment(L->f, blk, "finalize: out = o / %s%s", amla ? "(l * r_hat)" : "l", guard ? ", |o| > 1e10 -> 0" : "");
  int hv = lw_tmp(L, "h", lw_ty(KF_I64, 1)), cv = lw_tmp(L, "c", lw_ty(KF_I64, 1));
  kf_lir_stmt *hl = kf_lfor(L->f, blk, hv, lw_i64c(L, 0), lw_i64c(L, o.rows), 1);
  kf_lir_block *b = &hl->body;
  kf_lir_expr *den = ld1(L, &l, V(L, hv));
  if (amla) {
    int r = emit_exp(L, b, fma3(L, ld1(L, &nn, V(L, hv)), fc(L, 0.6931471805599453), ld1(L, &m, V(L, hv))));
    den = fbin(L, KF_L_MUL, den, kf_lcvt(L->f, F32(L, 1), kf_lcvt(L->f, lw_ty(KF_BF16, 1), V(L, r))));
  }
  int inv = setv(L, b, "inv", bc(L, vl, fbin(L, KF_L_DIV, fc(L, 1.0), den)));
  int64_t full = o.cols / vl * vl;
  for (int part = 0; part < 2; part++) {
    if (part && o.cols == full) break;
    if (!part && !full) continue;
    kf_lir_block *cb = b;
    kf_lir_expr *c0 = lw_i64c(L, full), *cnt = lw_i64c(L, o.cols - full);
    if (!part) {
      kf_lir_stmt *cl = kf_lfor(L->f, b, cv, lw_i64c(L, 0), lw_i64c(L, full), vl);
      cb = &cl->body;
      c0 = V(L, cv);
    }
    kf_lir_expr *oi = at(L, &o, V(L, hv), c0);
    int ov = setv(L, cb, "ov", part ? kf_lloadn(L->f, F32(L, vl), o.buf, oi, cnt) : kf_lload(L->f, F32(L, vl), o.buf, oi));
    if (guard) {
      kf_lir_expr *ok = kf_lbin(L->f, KF_L_LE, kf_lop(L->f, KF_L_ABS, F32(L, vl), V(L, ov), NULL, NULL), lw_fconst(L, vl, 1e10));
      kf_lassign(L->f, cb, ov, kf_lop(L->f, KF_L_SELECT, F32(L, vl), ok, V(L, ov), lw_fconst(L, vl, 0.0)));
    }
    kf_lir_expr *res = fbin(L, KF_L_MUL, V(L, ov), V(L, inv));
    kf_lir_expr *dst = at(L, &out, V(L, hv), c0);
    if (part) kf_lstoren(L->f, cb, out.buf, dst, res, cnt);
    else kf_lstore(L->f, cb, out.buf, dst, res);
  }
  return KF_OK;
}

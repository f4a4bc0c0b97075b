/*
** ops.c: the op table built from ops.def, and each op's contract: the generic part (roles:
** level, dtype, rank, layout, written operands, optional operands; attribute ranges) and
** the relations between operands (kf_opcheck_NAME). Called by the verifier (ir.c), so
** every target lowers only IR that satisfies these; the lowerings do not re-check.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

/* ---- the table ---- */

#define KF_OPDEF(E, nm, fl, dc) static int kf_opcheck_##nm(kf_opcheck *c);
#include "ops.def"

static kf_op_def op_table[KF_OP_N_OPS];

/* Fills op_table once from ops.def (designated initializers cannot take a variable-length
** list of roles from one macro entry, so the entries are appended in order). */
static void build_table(void) {
  kf_op_def *d = NULL;
#define KF_OPDEF(E, nm, fl, dc)                                                                    \
  d = &op_table[KF_OP_##E];                                                                        \
  d->name = #nm;                                                                                   \
  d->flags = (fl);                                                                                 \
  d->doc = dc;                                                                                     \
  d->check = kf_opcheck_##nm;
#define KF_ROLE(E, R, nm, lv, dt, rk, fl)                                                          \
  d->roles[KF_##E##_##R] = (kf_op_role){#nm, (lv), (dt), (rk), (fl)};                              \
  d->n_roles = KF_##E##_##R + 1;                                                                   \
  if (!((fl) & KF_RF_OPT)) d->n_required = d->n_roles;
#define KF_IATTR(E, A, nm, def, lo, hi)                                                            \
  d->attrs[KF_##E##_##A##_ATTR] = (kf_op_attr){#nm, KF_ATTR_INT, (def), (lo), (hi), NULL};         \
  d->n_attrs = KF_##E##_##A##_ATTR + 1;
#define KF_BATTR(E, A, nm, def)                                                                    \
  d->attrs[KF_##E##_##A##_ATTR] = (kf_op_attr){#nm, KF_ATTR_BOOL, (def), 0, 1, NULL};              \
  d->n_attrs = KF_##E##_##A##_ATTR + 1;
#define KF_SATTR(E, A, nm, ch)                                                                     \
  d->attrs[KF_##E##_##A##_ATTR] = (kf_op_attr){#nm, KF_ATTR_STR, 0, 0, 0, ch};                     \
  for (const char *p_ = ch; *p_; p_++) d->attrs[KF_##E##_##A##_ATTR].max += *p_ == '|';            \
  d->n_attrs = KF_##E##_##A##_ATTR + 1;
#define KF_FATTR(E, nm, def, req)                                                                  \
  d->num_name = #nm;                                                                               \
  d->num_def = (def);                                                                              \
  d->num_required = (req);
#include "ops.def"
}

const kf_op_def *kf_op_get(int op) {
  /* filled on first use; the table is constant afterwards (a benign race would write the
  ** same values, but callers start single-threaded: the CLI and the tests load templates
  ** before any worker thread exists) */
  static int ready;
  if (!ready) {
    build_table();
    ready = 1;
  }
  if (op <= KF_OP_LOOP || op >= KF_OP_N_OPS) return NULL;
  return &op_table[op];
}

int kf_op_find(const char *name) {
  for (int op = KF_OP_LOOP + 1; op < KF_OP_N_OPS; op++)
    if (!strcmp(kf_op_get(op)->name, name)) return op;
  return -1;
}

const char *kf_op_choice(const kf_op_attr *a, int64_t v, char *buf, size_t n) {
  const char *p = a->choices;
  for (int64_t i = 0; p && i < v; i++) {
    p = strchr(p, '|');
    if (p) p++;
  }
  if (!p || v < 0) return "?";
  size_t len = strcspn(p, "|");
  snprintf(buf, n, "%.*s", (int)len, p);
  return buf;
}

/* ---- contracts ---- */

/* A rows x cols view of a tile: its last two extents (rank 1: ext x 1). */
typedef struct mat {
  int64_t rows, cols;
} mat;

static mat mat_of(const kf_tile *t) {
  if (t->rank == 1) return (mat){t->ext[0], 1};
  return (mat){t->ext[t->rank - 2], t->ext[t->rank - 1]};
}

static int fail(kf_opcheck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(kf_opcheck *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  kf_loc loc = c->n->loc;
  return kf_err(c->ctx, KF_EINVAL, "%s:%d: %s: %s", loc.file ? loc.file : "?", loc.line,
                c->def->name, msg);
}

static const kf_ir_buf *B(const kf_opcheck *c, int role) { return &c->k->bufs.data[c->n->t[role].buf]; }
static const kf_tile *T(const kf_opcheck *c, int role) { return &c->n->t[role]; }
static int64_t I(const kf_opcheck *c, int attr) { return c->n->i[attr]; }

static int dims_text_cmp(kf_opcheck *c, int role, const int64_t *want, int rank, const char *what) {
  const kf_ir_buf *b = B(c, role);
  for (int d = 0; d < rank; d++)
    if (b->dims[d] != want[d]) {
      char have[96], need[96];
      size_t u = 0, v = 0;
      for (int e = 0; e < rank; e++) {
        u += (size_t)snprintf(have + u, sizeof have - u, "%s%lld", e ? ", " : "", (long long)b->dims[e]);
        v += (size_t)snprintf(need + v, sizeof need - v, "%s%lld", e ? ", " : "", (long long)want[e]);
      }
      return fail(c, "'%s' ('%s') must be %s = {%s}, it is {%s}", c->def->roles[role].name, b->name,
                  what, need, have);
    }
  return KF_OK;
}

/* The tile of `role` starting at its offsets' maxima must fit `need[d]` elements in each dim. */
static int footprint(kf_opcheck *c, int role, const int64_t *need, const char *what) {
  const kf_ir_buf *b = B(c, role);
  for (int d = 0; d < b->rank; d++) {
    int64_t end;
    if (__builtin_add_overflow(c->off[role][d].hi, need[d], &end) || end > b->dims[d])
      return fail(c, "'%s' ('%s') needs %lld elements in dim %d from offset %lld (%s), the buffer has %lld",
                  c->def->roles[role].name, b->name, (long long)need[d], d, (long long)c->off[role][d].hi,
                  what, (long long)b->dims[d]);
  }
  return KF_OK;
}

static int kf_opcheck_zero(kf_opcheck *c) {
  (void)c;
  return KF_OK;
}

static int kf_opcheck_quantize(kf_opcheck *c) {
  const kf_ir_buf *bs = B(c, KF_QUANTIZE_SRC), *bc = B(c, KF_QUANTIZE_CODES);
  int64_t passes = I(c, KF_QUANTIZE_PASSES_ATTR);
  int64_t K = bs->dims[1], Kp = bc->dims[2], rows = T(c, KF_QUANTIZE_SRC)->ext[0];
  if (bc->dims[0] != passes)
    return fail(c, "codes ('%s') must be i8 {passes, rows, Kp} with passes = %lld, it has %lld in dim 0",
                bc->name, (long long)passes, (long long)bc->dims[0]);
  if (Kp < K || Kp % 8)
    return fail(c, "codes row length %lld must be K = %lld rounded up to a multiple of 8", (long long)Kp, (long long)K);
  if (bc->dims[1] < rows)
    return fail(c, "codes ('%s') has %lld rows, fewer than the src tile's %lld", bc->name, (long long)bc->dims[1],
                (long long)rows);
  int64_t ag = I(c, KF_QUANTIZE_ACT_GROUP_ATTR) > 0 ? I(c, KF_QUANTIZE_ACT_GROUP_ATTR) : K;
  int64_t sg = I(c, KF_QUANTIZE_SUM_GROUP_ATTR) > 0 ? I(c, KF_QUANTIZE_SUM_GROUP_ATTR) : Kp;
  int64_t n_ag = (K - 1) / ag + 1, n_sg = (Kp - 1) / sg + 1;
  if (B(c, KF_QUANTIZE_SCALES)->dims[2] < n_ag)
    return fail(c, "scales need %lld groups (K = %lld, act_group = %lld), '%s' has %lld", (long long)n_ag,
                (long long)K, (long long)ag, B(c, KF_QUANTIZE_SCALES)->name,
                (long long)B(c, KF_QUANTIZE_SCALES)->dims[2]);
  if (B(c, KF_QUANTIZE_SUMS)->dims[2] < n_sg)
    return fail(c, "sums need %lld groups (Kp = %lld, sum_group = %lld), '%s' has %lld", (long long)n_sg,
                (long long)Kp, (long long)sg, B(c, KF_QUANTIZE_SUMS)->name, (long long)B(c, KF_QUANTIZE_SUMS)->dims[2]);
  if (I(c, KF_QUANTIZE_FORMAT_ATTR) == 1 && ag != 32)
    return fail(c, "format \"mxfp4\" needs act_group = 32 (MX blocks), got %lld", (long long)ag);
  /* every pass and row is written from the tiles' offsets on */
  int rc;
  int64_t nc[3] = {passes, rows, Kp}, ns[3] = {passes, rows, n_ag}, nu[3] = {passes, rows, n_sg};
  if ((rc = footprint(c, KF_QUANTIZE_CODES, nc, "passes x rows x Kp")) ||
      (rc = footprint(c, KF_QUANTIZE_SCALES, ns, "passes x rows x groups")) ||
      (rc = footprint(c, KF_QUANTIZE_SUMS, nu, "passes x rows x groups")))
    return rc;
  return KF_OK;
}

static int kf_opcheck_mma(kf_opcheck *c) {
  const kf_tile *a = T(c, KF_MMA_A), *b = T(c, KF_MMA_B);
  const kf_ir_buf *bacc = B(c, KF_MMA_ACC), *ba = B(c, KF_MMA_A), *bw = B(c, KF_MMA_B);
  if (ba->dtype == KF_I8) { /* MSD: int8 codes x int8/int4 weights, int32 accumulators */
    if (ba->rank != 3) return fail(c, "int8 'a' ('%s') must be codes {passes, rows, Kp}", ba->name);
    if (bacc->dtype != KF_I32) return fail(c, "int8 'a' accumulates into an i32 acc, '%s' is %s", bacc->name, kf_scalar_name(bacc->dtype));
    if (bw->wlayout != 0) return fail(c, "int8 'a' needs 'b' ('%s') packed n16k4", bw->name);
    int64_t passes = a->ext[0], mr = a->ext[1], nr = b->ext[b->rank - 2], span = a->ext[2];
    int64_t want[2] = {passes * mr, nr};
    int rc = dims_text_cmp(c, KF_MMA_ACC, want, 2, "{passes*rows of a, columns of b}");
    if (rc) return rc;
    if (nr % 16) return fail(c, "the tile of 'b' has %lld columns, not a multiple of 16 (n16 weight packing)", (long long)nr);
    if (b->ext[b->rank - 1] != span)
      return fail(c, "k extents of 'a' (%lld) and 'b' (%lld) differ", (long long)span, (long long)b->ext[b->rank - 1]);
    if (span % 8) return fail(c, "k extent %lld must be a multiple of 8", (long long)span);
    if (ba->dims[2] < span)
      return fail(c, "codes rows of '%s' (%lld) are shorter than the k extent %lld", ba->name, (long long)ba->dims[2], (long long)span);
    if (bw->rank == 3 && b->ext[0] != 1) return fail(c, "a batch of packed matrices ('%s') is used one at a time (extent 1 in dim 0)", bw->name);
    return KF_OK;
  }
  /* dequant: bf16 activations x dequantized weights, f32 accumulators */
  if (ba->rank != 2) return fail(c, "bf16 'a' ('%s') must be a matrix {rows, k}", ba->name);
  if (bacc->dtype != KF_F32) return fail(c, "bf16 'a' accumulates into an f32 acc, '%s' is %s", bacc->name, kf_scalar_name(bacc->dtype));
  if (c->n->n_tiles <= KF_MMA_B_SCALES) return fail(c, "a dequant mma (bf16 'a') needs b_scales");
  if (bw->wlayout != 1) return fail(c, "bf16 'a' needs 'b' ('%s') packed n16k1", bw->name);
  if (bw->rank != 2) return fail(c, "bf16 'a' needs one packed matrix 'b' {N, K}, '%s' has rank %d", bw->name, bw->rank);
  int64_t want[2] = {a->ext[0], b->ext[0]};
  int rc = dims_text_cmp(c, KF_MMA_ACC, want, 2, "{rows of a, columns of b}");
  if (rc) return rc;
  if (b->ext[0] % 16) return fail(c, "the tile of 'b' has %lld columns, not a multiple of 16 (n16 weight packing)", (long long)b->ext[0]);
  return KF_OK;
}

static int kf_opcheck_scale_acc(kf_opcheck *c) {
  const kf_ir_buf *bf = B(c, KF_SCALE_ACC_ACC);
  int64_t want[2] = {I(c, KF_SCALE_ACC_PASSES_ATTR) * bf->dims[0], bf->dims[1]};
  return dims_text_cmp(c, KF_SCALE_ACC_SRC, want, 2, "{passes*rows, columns} of acc");
}

/* load / store / accum_store: the memory and register operands have one dtype */
static int move_check(kf_opcheck *c, int mem, int reg) {
  if (B(c, mem)->dtype != B(c, reg)->dtype)
    return fail(c, "memory operand '%s' is %s, register tile '%s' is %s", B(c, mem)->name,
                kf_scalar_name(B(c, mem)->dtype), B(c, reg)->name, kf_scalar_name(B(c, reg)->dtype));
  return KF_OK;
}
static int kf_opcheck_load(kf_opcheck *c) { return move_check(c, KF_LOAD_SRC, KF_LOAD_DST); }
static int kf_opcheck_store(kf_opcheck *c) { return move_check(c, KF_STORE_DST, KF_STORE_SRC); }
static int kf_opcheck_accum_store(kf_opcheck *c) { return move_check(c, KF_ACCUM_STORE_DST, KF_ACCUM_STORE_SRC); }

static int kf_opcheck_fill(kf_opcheck *c) {
  (void)c;
  return KF_OK;
}

/* `len` keys fit in `keys` (the extent the op loops over) */
static int len_fits(kf_opcheck *c, int64_t keys, const char *what) {
  if (c->len.lo < 0) return fail(c, "len can be negative (%lld)", (long long)c->len.lo);
  if (c->len.hi > keys)
    return fail(c, "len can be %lld, more than the %lld keys of %s", (long long)c->len.hi, (long long)keys, what);
  return KF_OK;
}

static int kf_opcheck_qk(kf_opcheck *c) {
  mat s = mat_of(T(c, KF_QK_S)), q = mat_of(T(c, KF_QK_Q)), k = mat_of(T(c, KF_QK_K));
  if (q.cols != k.cols)
    return fail(c, "q and k have different head dims (%lld, %lld)", (long long)q.cols, (long long)k.cols);
  if (s.rows != q.rows || s.cols < k.rows)
    return fail(c, "s must be {rows of q, keys of k} = {%lld, >= %lld}, it is {%lld, %lld}", (long long)q.rows,
                (long long)k.rows, (long long)s.rows, (long long)s.cols);
  return len_fits(c, k.rows, "k");
}

static int kf_opcheck_softmax(kf_opcheck *c) {
  if (I(c, KF_SOFTMAX_AMLA_ATTR) && c->n->n_tiles < KF_SOFTMAX_N_ROLES) return fail(c, "amla needs the operands n and add");
  mat s = mat_of(T(c, KF_SOFTMAX_S));
  for (int r = KF_SOFTMAX_M; r < c->n->n_tiles; r++)
    if (mat_of(T(c, r)).rows != s.rows)
      return fail(c, "'%s' ('%s') needs one value per row of s (%lld rows), it has %lld", c->def->roles[r].name,
                  B(c, r)->name, (long long)s.rows, (long long)mat_of(T(c, r)).rows);
  return len_fits(c, s.cols, "s");
}

static int rescale_check(kf_opcheck *c, int o_role, int f_role) {
  mat o = mat_of(T(c, o_role)), f = mat_of(T(c, f_role));
  if (f.rows != o.rows)
    return fail(c, "'%s' ('%s') needs one value per row of o (%lld rows), it has %lld", c->def->roles[f_role].name,
                B(c, f_role)->name, (long long)o.rows, (long long)f.rows);
  return KF_OK;
}
static int kf_opcheck_rescale(kf_opcheck *c) { return rescale_check(c, KF_RESCALE_O, KF_RESCALE_ALPHA); }
static int kf_opcheck_rescale_exp2(kf_opcheck *c) { return rescale_check(c, KF_RESCALE_EXP2_O, KF_RESCALE_EXP2_ADD); }

static int kf_opcheck_pv(kf_opcheck *c) {
  mat o = mat_of(T(c, KF_PV_O)), p = mat_of(T(c, KF_PV_P)), v = mat_of(T(c, KF_PV_V));
  if (o.cols != v.cols)
    return fail(c, "o and v need the same column count (got %lld, %lld)", (long long)o.cols, (long long)v.cols);
  if (p.rows != o.rows) return fail(c, "p needs the rows of o (%lld), it has %lld", (long long)o.rows, (long long)p.rows);
  int rc = len_fits(c, p.cols, "p");
  return rc ? rc : len_fits(c, v.rows, "v");
}

static int kf_opcheck_scale_cols(kf_opcheck *c) {
  mat d = mat_of(T(c, KF_SCALE_COLS_DST)), s = mat_of(T(c, KF_SCALE_COLS_SRC)), sc = mat_of(T(c, KF_SCALE_COLS_SCALES));
  if (d.rows != s.rows || d.cols != s.cols)
    return fail(c, "dst {%lld, %lld} and src {%lld, %lld} must have the same shape", (long long)d.rows, (long long)d.cols,
                (long long)s.rows, (long long)s.cols);
  if (sc.rows != 1 || sc.cols < d.cols)
    return fail(c, "scales must be one row of at least %lld columns, it is {%lld, %lld}", (long long)d.cols,
                (long long)sc.rows, (long long)sc.cols);
  return KF_OK;
}

static int kf_opcheck_finalize(kf_opcheck *c) {
  if (c->n->n_tiles == KF_FINALIZE_N) return fail(c, "m needs n (AMLA's r_hat)");
  mat out = mat_of(T(c, KF_FINALIZE_OUT)), o = mat_of(T(c, KF_FINALIZE_O));
  if (out.rows != o.rows || out.cols != o.cols)
    return fail(c, "out {%lld, %lld} and o {%lld, %lld} shapes differ", (long long)out.rows, (long long)out.cols,
                (long long)o.rows, (long long)o.cols);
  for (int r = KF_FINALIZE_L; r < c->n->n_tiles; r++)
    if (mat_of(T(c, r)).rows != o.rows)
      return fail(c, "'%s' ('%s') needs one value per row of o (%lld rows), it has %lld", c->def->roles[r].name,
                  B(c, r)->name, (long long)o.rows, (long long)mat_of(T(c, r)).rows);
  return KF_OK;
}

static const char *level_text(unsigned level) {
  return level == KF_RL_REG ? "a register tile (kf.reg)" : "a memory buffer (kf.arg or kf.scratch)";
}

static void mask_text(unsigned dtypes, char *buf, size_t n) {
  size_t u = 0;
  buf[0] = 0;
  for (int s = 0; s < KF_N_SCALAR && u + 8 < n; s++)
    if (dtypes & (1u << s)) u += (size_t)snprintf(buf + u, n - u, "%s%s", u ? " or " : "", kf_scalar_name((kf_scalar)s));
}

int kf_op_verify(kf_opcheck *c) {
  const kf_ir_node *n = c->n;
  const kf_op_def *d = kf_op_get(n->op);
  if (!d) return kf_err(c->ctx, KF_EINVAL, "%s:%d: unknown op kind %d", n->loc.file ? n->loc.file : "?", n->loc.line, (int)n->op);
  c->def = d;
  if (n->n_tiles < d->n_required || n->n_tiles > d->n_roles)
    return fail(c, "has %d operands, it takes %d to %d", n->n_tiles, d->n_required, d->n_roles);
  for (int r = 0; r < n->n_tiles; r++) {
    const kf_op_role *role = &d->roles[r];
    const kf_ir_buf *b = B(c, r);
    unsigned level = b->level == KF_LVL_REG ? KF_RL_REG : KF_RL_MEM;
    char want[128];
    if (!(role->level & level)) return fail(c, "operand '%s' ('%s') must be %s", role->name, b->name, level_text(role->level));
    if ((role->flags & KF_RF_QW) && b->layout != KF_LAYOUT_QW)
      return fail(c, "operand '%s' ('%s') must be quantized weights (layout = \"qweight\")", role->name, b->name);
    if (!(role->flags & KF_RF_QW) && b->layout == KF_LAYOUT_QW)
      return fail(c, "operand '%s' ('%s') cannot be quantized weights", role->name, b->name);
    if (!(role->dtypes & (1u << b->dtype))) {
      mask_text(role->dtypes, want, sizeof want);
      return fail(c, "operand '%s' ('%s') must be %s, it is %s", role->name, b->name, want, kf_scalar_name(b->dtype));
    }
    if (!(role->ranks & (1u << b->rank))) {
      size_t u = 0;
      for (int k = 1; k <= KF_IR_MAX_RANK; k++)
        if (role->ranks & (1u << k)) u += (size_t)snprintf(want + u, sizeof want - u, "%s%d", u ? " or " : "", k);
      return fail(c, "operand '%s' ('%s') must have rank %s, it has %d", role->name, b->name, want, b->rank);
    }
    if ((role->flags & KF_RF_WRITE) && b->level == KF_LVL_ARG_IN)
      return fail(c, "operand '%s' is written, but '%s' is an input argument (declare it with out = true)", role->name, b->name);
    if (role->flags & KF_RF_FIT)
      for (int k = 0; k < n->t[r].rank; k++) {
        int64_t end;
        if (__builtin_add_overflow(c->off[r][k].hi, n->t[r].ext[k], &end) || end > b->dims[k])
          return fail(c, "operand '%s': the tile of '%s' (offset up to %lld, extent %lld) runs past its size %lld in dim %d "
                      "(this operand is not clamped)", role->name, b->name, (long long)c->off[r][k].hi,
                      (long long)n->t[r].ext[k], (long long)b->dims[k], k);
      }
    if (role->flags & KF_RF_MAT)
      for (int k = 0; k + 2 < n->t[r].rank; k++)
        if (n->t[r].ext[k] != 1)
          return fail(c, "operand '%s' ('%s') is a matrix: its tile needs extent 1 in dim %d, it has %lld", role->name,
                      b->name, k, (long long)n->t[r].ext[k]);
  }
  for (int a = 0; a < d->n_attrs; a++) {
    const kf_op_attr *at = &d->attrs[a];
    int64_t v = n->i[a];
    if (v < at->min || v > at->max) {
      if (at->kind == KF_ATTR_STR) return fail(c, "%s has no choice %lld (%s)", at->name, (long long)v, at->choices);
      if (at->kind == KF_ATTR_BOOL) return fail(c, "%s must be 0 or 1 (false or true), got %lld", at->name, (long long)v);
      return fail(c, "%s must be in %lld..%lld, got %lld", at->name, (long long)at->min, (long long)at->max, (long long)v);
    }
  }
  for (int a = d->n_attrs; a < 4; a++)
    if (n->i[a]) return fail(c, "integer slot %d is %lld, the op has %d attributes", a, (long long)n->i[a], d->n_attrs);
  if (!(d->flags & KF_OPF_LEN) && (n->len.n || n->len.c)) return fail(c, "takes no len");
  return d->check(c);
}

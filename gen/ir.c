/*
** ir.c: building, verifying and printing the tile IR (see ir.h).
*/
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kf_ix kf_ix_const(int64_t c) {
  kf_ix x;
  memset(&x, 0, sizeof x);
  x.c = c;
  x.cap = INT64_MAX;
  return x;
}

kf_ix kf_ix_var(int var) {
  kf_ix x = kf_ix_const(0);
  x.n = 1;
  x.var[0] = var;
  x.coef[0] = 1;
  return x;
}

int kf_ix_add(kf_ix *out, kf_ix a, kf_ix b) {
  if (a.cap != INT64_MAX || b.cap != INT64_MAX) return -1;
  kf_ix r = a;
  r.c += b.c;
  for (int i = 0; i < b.n; i++) {
    int j;
    for (j = 0; j < r.n; j++)
      if (r.var[j] == b.var[i]) break;
    if (j == r.n) {
      if (r.n == KF_IR_MAX_TERMS) return -1;
      r.var[r.n] = b.var[i];
      r.coef[r.n++] = 0;
    }
    r.coef[j] += b.coef[i];
  }
  *out = r;
  return 0;
}

int kf_ix_scale(kf_ix *out, kf_ix a, int64_t k) {
  if (a.cap != INT64_MAX) return -1;
  a.c *= k;
  for (int i = 0; i < a.n; i++) a.coef[i] *= k;
  *out = a;
  return 0;
}

int kf_ix_is_const(const kf_ix *a) {
  for (int i = 0; i < a->n; i++)
    if (a->coef[i]) return 0;
  return 1;
}

kf_ir_kernel *kf_ir_new(const char *name) {
  kf_ir_kernel *k = kf_xcalloc(1, sizeof *k);
  k->name = kf_arena_strdup(&k->arena, name);
  return k;
}

static void free_block(kf_ir_block *b) {
  for (size_t i = 0; i < b->len; i++) free_block(&b->data[i]->body);
  kf_vec_free(b);
}

void kf_ir_free(kf_ir_kernel *k) {
  if (!k) return;
  free_block(&k->body);
  kf_vec_free(&k->bufs);
  kf_vec_free(&k->vars);
  kf_arena_free(&k->arena);
  free(k);
}

int kf_ir_buf_add(kf_ir_kernel *k, const kf_ir_buf *b) {
  kf_ir_buf c = *b;
  c.name = kf_arena_strdup(&k->arena, b->name);
  kf_vec_push(&k->bufs, c);
  return (int)k->bufs.len - 1;
}

int kf_ir_var_add(kf_ir_kernel *k, const char *name, kf_loc loc) {
  kf_ir_loopvar v = {kf_arena_strdup(&k->arena, name), loc};
  kf_vec_push(&k->vars, v);
  return (int)k->vars.len - 1;
}

kf_ir_node *kf_ir_append(kf_ir_kernel *k, kf_ir_block *b, kf_ir_opkind op, kf_loc loc) {
  kf_ir_node *n = kf_arena_alloc(&k->arena, sizeof *n);
  n->op = op;
  n->loc = loc;
  n->var = -1;
  n->len = kf_ix_const(0);
  kf_vec_push(b, n);
  return n;
}

static const char *const opnames[KF_OP_N_OPS] = {
    [KF_OP_LOOP] = "loop",         [KF_OP_ZERO] = "zero",   [KF_OP_QUANTIZE] = "quantize",
    [KF_OP_MMA] = "mma",           [KF_OP_SCALE_ACC] = "scale_acc", [KF_OP_LOAD] = "load",
    [KF_OP_STORE] = "store",       [KF_OP_ACCUM_STORE] = "accum_store",
    [KF_OP_FILL] = "fill",         [KF_OP_QK] = "qk",       [KF_OP_SOFTMAX] = "softmax",
    [KF_OP_RESCALE] = "rescale",   [KF_OP_RESCALE_EXP2] = "rescale_exp2", [KF_OP_PV] = "pv",
    [KF_OP_FINALIZE] = "finalize", [KF_OP_SCALE_COLS] = "scale_cols",
};

const char *kf_ir_opname(kf_ir_opkind op) { return op < KF_OP_N_OPS ? opnames[op] : "?"; }

/* ---- verifier ---- */

/* Range analysis: every loop variable v is lo_v + t_v with t_v in [0, span_v - 1], lo_v
** expanded in the same way, so an index like m1 - m0 (m1 starting at m0) is seen as
** t_m1, not as the difference of two independent ranges. */
#define EXP_TERMS 16
typedef struct expanded {
  int64_t c;
  int n;
  int var[EXP_TERMS];
  int64_t coef[EXP_TERMS];
} expanded;

typedef struct vstate {
  kf_ctx *ctx;
  const kf_ir_kernel *k;
  expanded *lo;    /* per loop var, while active */
  int64_t *t_hi;   /* per loop var: max of t_v */
  kf_ix_range *abs; /* per loop var: absolute range (uses the cap of a min() bound) */
  int64_t *align;   /* per loop var: every value is a multiple of this */
  char *active;
} vstate;

static int exp_add_term(expanded *e, int var, int64_t coef) {
  for (int i = 0; i < e->n; i++)
    if (e->var[i] == var) {
      e->coef[i] += coef;
      return 0;
    }
  if (e->n == EXP_TERMS) return -1;
  e->var[e->n] = var;
  e->coef[e->n++] = coef;
  return 0;
}

static int expand(const vstate *v, const kf_ix *x, expanded *out) {
  memset(out, 0, sizeof *out);
  out->c = x->c;
  for (int i = 0; i < x->n; i++) {
    int var = x->var[i];
    if (!x->coef[i]) continue;
    if (!v->active[var]) return -1;
    const expanded *lo = &v->lo[var];
    out->c += x->coef[i] * lo->c;
    for (int j = 0; j < lo->n; j++)
      if (exp_add_term(out, lo->var[j], x->coef[i] * lo->coef[j])) return -2;
    if (exp_add_term(out, var, x->coef[i])) return -2;
  }
  return 0;
}

static void exp_range(const vstate *v, const expanded *e, int64_t *lo, int64_t *hi) {
  *lo = *hi = e->c;
  for (int i = 0; i < e->n; i++) {
    int64_t a = 0, b = e->coef[i] * v->t_hi[e->var[i]];
    *lo += a < b ? a : b;
    *hi += a < b ? b : a;
  }
}

static int ix_range(const vstate *v, const kf_ix *x, kf_ix_range *out) {
  expanded e;
  if (expand(v, x, &e)) return -1;
  exp_range(v, &e, &out->lo, &out->hi);
  /* intersect with the non-relational range from each variable's absolute range */
  int64_t lo = x->c, hi = x->c;
  for (int i = 0; i < x->n; i++) {
    kf_ix_range r = v->abs[x->var[i]];
    int64_t a = x->coef[i] * r.lo, b = x->coef[i] * r.hi;
    lo += a < b ? a : b;
    hi += a < b ? b : a;
  }
  if (lo > out->lo) out->lo = lo;
  if (hi < out->hi) out->hi = hi;
  if (out->hi > x->cap) out->hi = x->cap;
  if (out->lo > x->cap) out->lo = x->cap;
  return 0;
}

static int at(vstate *v, kf_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int at(vstate *v, kf_loc loc, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return kf_err(v->ctx, KF_EINVAL, "%s:%d: %s", loc.file ? loc.file : "?", loc.line, msg);
}

static int verify_tile(vstate *v, const kf_ir_node *n, int ti) {
  const kf_tile *t = &n->t[ti];
  if (t->buf < 0 || (size_t)t->buf >= v->k->bufs.len)
    return at(v, n->loc, "%s: operand %d is not a buffer", kf_ir_opname(n->op), ti + 1);
  const kf_ir_buf *b = &v->k->bufs.data[t->buf];
  if (t->rank != b->rank)
    return at(v, n->loc, "%s: tile of '%s' has rank %d, buffer has rank %d", kf_ir_opname(n->op),
              b->name, t->rank, b->rank);
  for (int d = 0; d < t->rank; d++) {
    kf_ix_range r;
    if (ix_range(v, &t->off[d], &r))
      return at(v, n->loc, "%s: tile of '%s' uses a loop variable outside its loop",
                kf_ir_opname(n->op), b->name);
    int64_t size = b->dims[d];
    if (b->layout == KF_LAYOUT_QW && d == b->rank - 2) size = (size + 15) / 16 * 16;
    if (b->layout == KF_LAYOUT_QW && d == b->rank - 1) size = (size + 7) / 8 * 8;
    if (r.lo < 0 || r.hi >= size)
      return at(v, n->loc,
                "%s: tile of '%s' starts outside the buffer in dim %d (offset range %lld..%lld, "
                "size %lld)",
                kf_ir_opname(n->op), b->name, d, (long long)r.lo, (long long)r.hi, (long long)size);
    if (t->ext[d] <= 0)
      return at(v, n->loc, "%s: tile of '%s' has extent %lld in dim %d", kf_ir_opname(n->op),
                b->name, (long long)t->ext[d], d);
    if (b->level == KF_LVL_REG && (r.lo != 0 || r.hi != 0 || t->ext[d] != b->dims[d]))
      return at(v, n->loc, "%s: register tile '%s' must be used whole", kf_ir_opname(n->op),
                b->name);
  }
  return KF_OK;
}

static int verify_block(vstate *v, const kf_ir_block *blk, int top) {
  for (size_t i = 0; i < blk->len; i++) {
    const kf_ir_node *n = blk->data[i];
    int rc;
    if (n->op == KF_OP_LOOP) {
      const char *vname = v->k->vars.data[n->var].name;
      kf_ix_range lo, hi;
      if (ix_range(v, &n->lo, &lo) || ix_range(v, &n->hi, &hi))
        return at(v, n->loc, "loop '%s': bound uses a variable outside its loop (or is too complex)", vname);
      if (n->step <= 0)
        return at(v, n->loc, "loop '%s': step must be positive, got %lld", vname, (long long)n->step);
      if (n->parallel && !top)
        return at(v, n->loc, "loop '%s': only an outermost loop can be parallel", vname);
      if (n->parallel && (!kf_ix_is_const(&n->lo) || !kf_ix_is_const(&n->hi)))
        return at(v, n->loc, "parallel loop '%s' needs constant bounds", vname);
      if (v->active[n->var]) return at(v, n->loc, "loop variable '%s' reused inside its own loop", vname);
      if (n->lo.cap != INT64_MAX) return at(v, n->loc, "loop '%s': the lower bound cannot be a min()", vname);
      /* span = max(hi - lo): hi uncapped minus lo, and cap minus lo when capped */
      kf_ix hi_free = n->hi, neg_lo, diff;
      hi_free.cap = INT64_MAX;
      kf_ix_range span;
      if (kf_ix_scale(&neg_lo, n->lo, -1) || kf_ix_add(&diff, hi_free, neg_lo) || ix_range(v, &diff, &span))
        return at(v, n->loc, "loop '%s': bounds too complex to analyze", vname);
      int64_t t_hi = span.hi - 1;
      if (n->hi.cap != INT64_MAX) {
        kf_ix capx = kf_ix_const(n->hi.cap), d2;
        kf_ix_range r2;
        if (!kf_ix_add(&d2, capx, neg_lo) && !ix_range(v, &d2, &r2) && r2.hi - 1 < t_hi) t_hi = r2.hi - 1;
      }
      if (t_hi < 0) t_hi = 0;
      t_hi = t_hi / n->step * n->step; /* t_v = i * step */
      /* alignment: lo aligned to step => every value is a multiple of step */
      int aligned = n->lo.c % n->step == 0;
      for (int ti = 0; ti < n->lo.n; ti++)
        if ((n->lo.coef[ti] * v->align[n->lo.var[ti]]) % n->step) aligned = 0;
      if (expand(v, &n->lo, &v->lo[n->var])) return at(v, n->loc, "loop '%s': bounds too complex", vname);
      v->t_hi[n->var] = t_hi;
      v->abs[n->var].lo = lo.lo;
      v->abs[n->var].hi = hi.hi - 1 < lo.lo ? lo.lo : hi.hi - 1;
      v->align[n->var] = aligned ? n->step : 1;
      v->active[n->var] = 1;
      {
        kf_ix_range rel;
        kf_ix self = kf_ix_var(n->var);
        if (!ix_range(v, &self, &rel) && rel.hi < v->abs[n->var].hi) v->abs[n->var].hi = rel.hi;
        if (aligned && v->abs[n->var].hi >= 0) v->abs[n->var].hi = v->abs[n->var].hi / n->step * n->step;
      }
      /* two perfectly nested parallel loops are collapsed into one range */
      int inner_par = n->parallel && n->body.len == 1 && n->body.data[0]->op == KF_OP_LOOP &&
                      n->body.data[0]->parallel;
      rc = verify_block(v, &n->body, inner_par);
      v->active[n->var] = 0;
      if (rc) return rc;
      continue;
    }
    for (int t = 0; t < n->n_tiles; t++)
      if ((rc = verify_tile(v, n, t))) return rc;
    kf_ix_range lr;
    if (ix_range(v, &n->len, &lr))
      return at(v, n->loc, "%s: len uses a loop variable outside its loop", kf_ir_opname(n->op));
  }
  return KF_OK;
}

int kf_ir_verify(kf_ctx *ctx, const kf_ir_kernel *k) {
  for (size_t i = 0; i < k->bufs.len; i++) {
    const kf_ir_buf *b = &k->bufs.data[i];
    if (b->rank < 1 || b->rank > KF_IR_MAX_RANK)
      return kf_err(ctx, KF_EINVAL, "%s:%d: buffer '%s' has rank %d", b->loc.file, b->loc.line,
                    b->name, b->rank);
    for (int d = 0; d < b->rank; d++)
      if (b->dims[d] <= 0)
        return kf_err(ctx, KF_EINVAL, "%s:%d: buffer '%s' has size %lld in dim %d", b->loc.file,
                      b->loc.line, b->name, (long long)b->dims[d], d);
  }
  vstate v = {ctx, k, kf_xcalloc(k->vars.len + 1, sizeof(expanded)),
              kf_xcalloc(k->vars.len + 1, sizeof(int64_t)), kf_xcalloc(k->vars.len + 1, sizeof(kf_ix_range)),
              kf_xcalloc(k->vars.len + 1, sizeof(int64_t)), kf_xcalloc(k->vars.len + 1, 1)};
  int rc = verify_block(&v, &k->body, 1);
  free(v.lo);
  free(v.t_hi);
  free(v.abs);
  free(v.align);
  free(v.active);
  return rc;
}

/* ---- printer ---- */

static void print_ix(const kf_ir_kernel *k, const kf_ix *x, kf_str *out) {
  int any = 0;
  if (x->cap != INT64_MAX) kf_str_puts(out, "min(");
  for (int i = 0; i < x->n; i++) {
    if (!x->coef[i]) continue;
    if (any) kf_str_puts(out, " + ");
    if (x->coef[i] != 1) kf_str_printf(out, "%lld*", (long long)x->coef[i]);
    kf_str_puts(out, k->vars.data[x->var[i]].name);
    any = 1;
  }
  if (x->c || !any) kf_str_printf(out, "%s%lld", any ? " + " : "", (long long)x->c);
  if (x->cap != INT64_MAX) kf_str_printf(out, ", %lld)", (long long)x->cap);
}

static void print_block(const kf_ir_kernel *k, const kf_ir_block *b, int depth, kf_str *out) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_ir_node *n = b->data[i];
    kf_str_printf(out, "%*s", 2 * depth, "");
    if (n->op == KF_OP_LOOP) {
      kf_str_printf(out, "%sloop %s in [", n->parallel ? "parallel " : "",
                    k->vars.data[n->var].name);
      print_ix(k, &n->lo, out);
      kf_str_puts(out, ", ");
      print_ix(k, &n->hi, out);
      kf_str_printf(out, ") step %lld   # %s:%d\n", (long long)n->step, n->loc.file, n->loc.line);
      print_block(k, &n->body, depth + 1, out);
      continue;
    }
    kf_str_printf(out, "%s", kf_ir_opname(n->op));
    for (int t = 0; t < n->n_tiles; t++) {
      const kf_tile *tl = &n->t[t];
      kf_str_printf(out, "%s%s[", t ? ", " : " ", k->bufs.data[tl->buf].name);
      for (int d = 0; d < tl->rank; d++) {
        if (d) kf_str_puts(out, ", ");
        print_ix(k, &tl->off[d], out);
        kf_str_printf(out, ":+%lld", (long long)tl->ext[d]);
      }
      kf_str_puts(out, "]");
    }
    if (n->len.n || n->len.c) {
      kf_str_puts(out, " len=");
      print_ix(k, &n->len, out);
    }
    if (n->f != 0) kf_str_printf(out, " f=%g", n->f);
    kf_str_printf(out, "  {%lld, %lld, %lld, %lld}   # %s:%d\n", (long long)n->i[0],
                  (long long)n->i[1], (long long)n->i[2], (long long)n->i[3], n->loc.file,
                  n->loc.line);
  }
}

void kf_ir_print(const kf_ir_kernel *k, kf_str *out) {
  static const char *const levels[] = {"in", "out", "local", "reg"};
  static const char *const layouts[] = {"row", "qweight", "qscales"};
  kf_str_printf(out, "kernel %s\n", k->name);
  for (size_t i = 0; i < k->bufs.len; i++) {
    const kf_ir_buf *b = &k->bufs.data[i];
    kf_str_printf(out, "  %-5s %s: %s[", levels[b->level], b->name, kf_scalar_name(b->dtype));
    for (int d = 0; d < b->rank; d++) kf_str_printf(out, "%s%lld", d ? "x" : "", (long long)b->dims[d]);
    kf_str_printf(out, "] %s", layouts[b->layout]);
    if (b->layout != KF_LAYOUT_ROW)
      kf_str_printf(out, " (w%d %s group %lld)", b->wbits, b->wlayout ? "n16k1" : "n16k4",
                    (long long)b->wgroup);
    kf_str_puts(out, "\n");
  }
  print_block(k, &k->body, 1, out);
}

int64_t kf_ir_buf_elems(const kf_ir_buf *b) {
  if (b->layout == KF_LAYOUT_QW) {
    int64_t count = b->rank == 3 ? b->dims[0] : 1, n = b->dims[b->rank - 2], k = b->dims[b->rank - 1];
    return count * ((n + 15) / 16 * 16) * ((k + 7) / 8 * 8) * b->wbits / 8;
  }
  int64_t n = 1;
  for (int d = 0; d < b->rank; d++) n *= b->dims[d];
  return n;
}

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
  if (__builtin_add_overflow(r.c, b.c, &r.c)) return KF_IX_OVERFLOW;
  for (int i = 0; i < b.n; i++) {
    int j;
    for (j = 0; j < r.n; j++)
      if (r.var[j] == b.var[i]) break;
    if (j == r.n) {
      if (r.n == KF_IR_MAX_TERMS) return -1;
      r.var[r.n] = b.var[i];
      r.coef[r.n++] = 0;
    }
    if (__builtin_add_overflow(r.coef[j], b.coef[i], &r.coef[j])) return KF_IX_OVERFLOW;
  }
  *out = r;
  return 0;
}

int kf_ix_scale(kf_ix *out, kf_ix a, int64_t k) {
  if (a.cap != INT64_MAX) return -1;
  if (__builtin_mul_overflow(a.c, k, &a.c)) return KF_IX_OVERFLOW;
  for (int i = 0; i < a.n; i++)
    if (__builtin_mul_overflow(a.coef[i], k, &a.coef[i])) return KF_IX_OVERFLOW;
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

const char *kf_ir_opname(kf_ir_opkind op) {
  if (op == KF_OP_LOOP) return "loop";
  const kf_op_def *d = kf_op_get(op);
  return d ? d->name : "?";
}

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
  int64_t par_count; /* iterations of the outermost parallel loop (times the nested one) */
} vstate;

static int exp_add_term(expanded *e, int var, int64_t coef) {
  for (int i = 0; i < e->n; i++)
    if (e->var[i] == var) return __builtin_add_overflow(e->coef[i], coef, &e->coef[i]) ? -3 : 0;
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
    if (var < 0 || (size_t)var >= v->k->vars.len || !v->active[var]) return -1;
    const expanded *lo = &v->lo[var];
    int64_t p;
    if (__builtin_mul_overflow(x->coef[i], lo->c, &p) || __builtin_add_overflow(out->c, p, &out->c)) return -3;
    for (int j = 0; j < lo->n; j++) {
      if (__builtin_mul_overflow(x->coef[i], lo->coef[j], &p)) return -3;
      int rc = exp_add_term(out, lo->var[j], p);
      if (rc) return rc;
    }
    int rc = exp_add_term(out, var, x->coef[i]);
    if (rc) return rc;
  }
  return 0;
}

/* [lo, hi] += the range of coef * [a, b]; -3 on int64 overflow */
static int add_term_range(int64_t *lo, int64_t *hi, int64_t coef, int64_t a, int64_t b) {
  int64_t x, y;
  if (__builtin_mul_overflow(coef, a, &x) || __builtin_mul_overflow(coef, b, &y)) return -3;
  if (x > y) {
    int64_t t = x;
    x = y;
    y = t;
  }
  return __builtin_add_overflow(*lo, x, lo) || __builtin_add_overflow(*hi, y, hi) ? -3 : 0;
}

static int exp_range(const vstate *v, const expanded *e, int64_t *lo, int64_t *hi) {
  *lo = *hi = e->c;
  for (int i = 0; i < e->n; i++) {
    int rc = add_term_range(lo, hi, e->coef[i], 0, v->t_hi[e->var[i]]);
    if (rc) return rc;
  }
  return 0;
}

/* The range of x over the active loops. 0; -1 if x uses an inactive variable (or is too
** complex); -3 if x or one of its partial sums (as emitted: c + coef_0 v_0 + ...) can leave
** [-KF_IX_LIMIT, KF_IX_LIMIT], so that no index arithmetic in the verifier, the lowerings or
** the generated code can overflow int64. */
static int ix_range(const vstate *v, const kf_ix *x, kf_ix_range *out) {
  expanded e;
  int rc = expand(v, x, &e);
  if (rc) return rc == -3 ? -3 : -1;
  if ((rc = exp_range(v, &e, &out->lo, &out->hi))) return rc;
  /* intersect with the non-relational range from each variable's absolute range; the
  ** magnitude bound covers every partial sum of the emitted expression */
  int64_t lo = x->c, hi = x->c, mag = x->c;
  if (mag == INT64_MIN) return -3;
  mag = mag < 0 ? -mag : mag;
  for (int i = 0; i < x->n; i++) {
    kf_ix_range r = v->abs[x->var[i]];
    if ((rc = add_term_range(&lo, &hi, x->coef[i], r.lo, r.hi))) return rc;
    int64_t ta, tb;
    if (__builtin_mul_overflow(x->coef[i], r.lo, &ta) || __builtin_mul_overflow(x->coef[i], r.hi, &tb) ||
        ta == INT64_MIN || tb == INT64_MIN)
      return -3;
    ta = ta < 0 ? -ta : ta;
    tb = tb < 0 ? -tb : tb;
    if (__builtin_add_overflow(mag, ta > tb ? ta : tb, &mag)) return -3;
  }
  if (mag > KF_IX_LIMIT || lo < -KF_IX_LIMIT || hi > KF_IX_LIMIT || x->cap < -KF_IX_LIMIT)
    return -3; /* (a cap can only lower the value: one below -2^61 would leave the range) */
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

static int verify_tile(vstate *v, const kf_ir_node *n, int ti, kf_ix_range *off) {
  const kf_tile *t = &n->t[ti];
  if (t->buf < 0 || (size_t)t->buf >= v->k->bufs.len)
    return at(v, n->loc, "%s: operand %d is not a buffer", kf_ir_opname(n->op), ti + 1);
  const kf_ir_buf *b = &v->k->bufs.data[t->buf];
  if (t->rank != b->rank)
    return at(v, n->loc, "%s: tile of '%s' has rank %d, buffer has rank %d", kf_ir_opname(n->op),
              b->name, t->rank, b->rank);
  for (int d = 0; d < t->rank; d++) {
    kf_ix_range r;
    int rc = ix_range(v, &t->off[d], &r);
    if (rc == -3)
      return at(v, n->loc, "%s: the offset of '%s' in dim %d can exceed 2^61 in magnitude (int64 overflow)",
                kf_ir_opname(n->op), b->name, d);
    if (rc)
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
    off[d] = r;
    if (t->ext[d] <= 0)
      return at(v, n->loc, "%s: tile of '%s' has extent %lld in dim %d", kf_ir_opname(n->op),
                b->name, (long long)t->ext[d], d);
    if (t->ext[d] > KF_IX_LIMIT)
      return at(v, n->loc, "%s: tile of '%s' has extent %lld in dim %d, more than 2^61", kf_ir_opname(n->op),
                b->name, (long long)t->ext[d], d);
    if (b->level == KF_LVL_REG && (r.lo != 0 || r.hi != 0 || t->ext[d] != b->dims[d]))
      return at(v, n->loc, "%s: register tile '%s' must be used whole", kf_ir_opname(n->op),
                b->name);
  }
  return KF_OK;
}

/* top: 2 = the kernel body, 1 = the body of an outermost parallel loop that is one loop
** (a second parallel loop is collapsed with it), -1 = the body of that second one, 0 = other. */
static int verify_block(vstate *v, const kf_ir_block *blk, int top) {
  for (size_t i = 0; i < blk->len; i++) {
    const kf_ir_node *n = blk->data[i];
    int rc;
    if (n->op == KF_OP_LOOP) {
      const char *vname = v->k->vars.data[n->var].name;
      kf_ix_range lo, hi;
      int rlo = ix_range(v, &n->lo, &lo), rhi = rlo ? 0 : ix_range(v, &n->hi, &hi);
      if (rlo == -3 || rhi == -3)
        return at(v, n->loc, "loop '%s': the %s bound can exceed 2^61 in magnitude (int64 overflow)", vname,
                  rlo ? "lower" : "upper");
      if (rlo || rhi)
        return at(v, n->loc, "loop '%s': bound uses a variable outside its loop (or is too complex)", vname);
      if (n->step <= 0)
        return at(v, n->loc, "loop '%s': step must be positive, got %lld", vname, (long long)n->step);
      /* every value i < hi <= 2^61 and step <= 2^61: the emitted i += step cannot overflow */
      if (n->step > KF_IX_LIMIT)
        return at(v, n->loc, "loop '%s': step %lld is larger than 2^61 (i += step could overflow int64)", vname,
                  (long long)n->step);
      if (n->parallel && top == -1)
        return at(v, n->loc, "loop '%s': at most two nested loops can be parallel", vname);
      if (n->parallel && top <= 0)
        return at(v, n->loc, "loop '%s': only an outermost loop can be parallel", vname);
      if (n->parallel && (!kf_ix_is_const(&n->lo) || !kf_ix_is_const(&n->hi)))
        return at(v, n->loc, "parallel loop '%s' needs constant bounds", vname);
      if (n->parallel) { /* the lowering flattens the parallel loops: their iteration count */
        int64_t hi1 = n->hi.cap < n->hi.c ? n->hi.cap : n->hi.c, cnt = 0;
        if (hi1 > n->lo.c) cnt = (hi1 - n->lo.c - 1) / n->step + 1;
        if (top == 2) v->par_count = cnt;
        else if (__builtin_mul_overflow(v->par_count, cnt, &v->par_count) || v->par_count > KF_IX_LIMIT)
          return at(v, n->loc, "parallel loop '%s': the nested parallel loops have more than 2^61 iterations", vname);
      }
      if (v->active[n->var]) return at(v, n->loc, "loop variable '%s' reused inside its own loop", vname);
      if (n->lo.cap != INT64_MAX) return at(v, n->loc, "loop '%s': the lower bound cannot be a min()", vname);
      /* span = max(hi - lo): hi uncapped minus lo, and cap minus lo when capped */
      kf_ix hi_free = n->hi, neg_lo, diff;
      hi_free.cap = INT64_MAX;
      kf_ix_range span;
      if (kf_ix_scale(&neg_lo, n->lo, -1) || kf_ix_add(&diff, hi_free, neg_lo) || ix_range(v, &diff, &span))
        return at(v, n->loc, "loop '%s': bounds too large (int64 overflow) or too complex to analyze", vname);
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
      for (int ti = 0; ti < n->lo.n; ti++) {
        int64_t m;
        if (__builtin_mul_overflow(n->lo.coef[ti], v->align[n->lo.var[ti]], &m) || m % n->step) aligned = 0;
      }
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
      rc = verify_block(v, &n->body, inner_par ? (top == 2 ? 1 : -1) : 0);
      v->active[n->var] = 0;
      if (rc) return rc;
      continue;
    }
    kf_opcheck oc;
    memset(&oc, 0, sizeof oc);
    oc.ctx = v->ctx;
    oc.k = v->k;
    oc.n = n;
    if (n->n_tiles < 0 || n->n_tiles > KF_IR_MAX_TILES)
      return at(v, n->loc, "%s: %d operands", kf_ir_opname(n->op), n->n_tiles);
    for (int t = 0; t < n->n_tiles; t++)
      if ((rc = verify_tile(v, n, t, oc.off[t]))) return rc;
    if ((rc = ix_range(v, &n->len, &oc.len)))
      return at(v, n->loc, rc == -3 ? "%s: len can exceed 2^61 in magnitude (int64 overflow)"
                                    : "%s: len uses a loop variable outside its loop", kf_ir_opname(n->op));
    if ((rc = kf_op_verify(&oc))) return rc;
  }
  return KF_OK;
}

int kf_ir_verify(kf_ctx *ctx, const kf_ir_kernel *k) {
  for (size_t i = 0; i < k->bufs.len; i++) {
    const kf_ir_buf *b = &k->bufs.data[i];
    if (b->rank < 1 || b->rank > KF_IR_MAX_RANK)
      return kf_err(ctx, KF_EINVAL, "%s:%d: buffer '%s' has rank %d", b->loc.file, b->loc.line,
                    b->name, b->rank);
    if (b->level == KF_LVL_REG && b->rank != 2)
      return kf_err(ctx, KF_EINVAL, "%s:%d: register tile '%s' must be a matrix {rows, cols}, it has rank %d",
                    b->loc.file, b->loc.line, b->name, b->rank);
    if (b->level == KF_LVL_REG && b->dtype != KF_F32 && b->dtype != KF_I32)
      return kf_err(ctx, KF_EINVAL, "%s:%d: register tile '%s' must be i32 or f32, it is %s", b->loc.file,
                    b->loc.line, b->name, kf_scalar_name(b->dtype));
    for (int d = 0; d < b->rank; d++)
      if (b->dims[d] <= 0)
        return kf_err(ctx, KF_EINVAL, "%s:%d: buffer '%s' has size %lld in dim %d", b->loc.file,
                      b->loc.line, b->name, (long long)b->dims[d], d);
  }
  vstate v = {ctx, k, kf_xcalloc(k->vars.len + 1, sizeof(expanded)),
              kf_xcalloc(k->vars.len + 1, sizeof(int64_t)), kf_xcalloc(k->vars.len + 1, sizeof(kf_ix_range)),
              kf_xcalloc(k->vars.len + 1, sizeof(int64_t)), kf_xcalloc(k->vars.len + 1, 1), 0};
  int rc = verify_block(&v, &k->body, 2);
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
    const kf_op_def *d = kf_op_get(n->op);
    kf_str_printf(out, "%s", kf_ir_opname(n->op));
    for (int t = 0; t < n->n_tiles; t++) {
      const kf_tile *tl = &n->t[t];
      kf_str_printf(out, "%s%s=%s[", t ? ", " : " ", d && t < d->n_roles ? d->roles[t].name : "?",
                    tl->buf >= 0 && (size_t)tl->buf < k->bufs.len ? k->bufs.data[tl->buf].name : "?");
      for (int e = 0; e < tl->rank && e < KF_IR_MAX_RANK; e++) {
        if (e) kf_str_puts(out, ", ");
        print_ix(k, &tl->off[e], out);
        kf_str_printf(out, ":+%lld", (long long)tl->ext[e]);
      }
      kf_str_puts(out, "]");
    }
    if (d && (d->flags & KF_OPF_LEN)) {
      kf_str_puts(out, " len=");
      print_ix(k, &n->len, out);
    }
    for (int a = 0; d && a < d->n_attrs; a++) {
      char choice[32];
      if (d->attrs[a].kind == KF_ATTR_STR)
        kf_str_printf(out, " %s=%s", d->attrs[a].name, kf_op_choice(&d->attrs[a], n->i[a], choice, sizeof choice));
      else kf_str_printf(out, " %s=%lld", d->attrs[a].name, (long long)n->i[a]);
    }
    if (d && d->num_name) kf_str_printf(out, " %s=%g", d->num_name, n->f);
    kf_str_printf(out, "   # %s:%d\n", n->loc.file, n->loc.line);
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

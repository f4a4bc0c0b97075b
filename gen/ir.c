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
  kf_vec_push(b, n);
  return n;
}

static const char *const opnames[KF_OP_N_OPS] = {
    [KF_OP_LOOP] = "loop",         [KF_OP_ZERO] = "zero",   [KF_OP_QUANTIZE] = "quantize",
    [KF_OP_MMA] = "mma",           [KF_OP_SCALE_ACC] = "scale_acc", [KF_OP_LOAD] = "load",
    [KF_OP_STORE] = "store",       [KF_OP_ACCUM_STORE] = "accum_store",
};

const char *kf_ir_opname(kf_ir_opkind op) { return op < KF_OP_N_OPS ? opnames[op] : "?"; }

/* ---- verifier ---- */

typedef struct vstate {
  kf_ctx *ctx;
  const kf_ir_kernel *k;
  kf_ix_range *ranges; /* per loop var; valid while inside its loop */
  char *active;
  int depth;
} vstate;

static int ix_range(const vstate *v, const kf_ix *x, kf_ix_range *out) {
  int64_t lo = x->c, hi = x->c;
  for (int i = 0; i < x->n; i++) {
    if (!v->active[x->var[i]]) return -1;
    kf_ix_range r = v->ranges[x->var[i]];
    int64_t a = x->coef[i] * r.lo, b = x->coef[i] * r.hi;
    lo += a < b ? a : b;
    hi += a < b ? b : a;
  }
  if (hi > x->cap) hi = x->cap;
  if (lo > x->cap) lo = x->cap;
  out->lo = lo;
  out->hi = hi;
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
    if (r.lo < 0 || r.hi >= b->dims[d])
      return at(v, n->loc,
                "%s: tile of '%s' starts outside the buffer in dim %d (offset range %lld..%lld, "
                "size %lld)",
                kf_ir_opname(n->op), b->name, d, (long long)r.lo, (long long)r.hi,
                (long long)b->dims[d]);
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
      kf_ix_range lo, hi;
      if (ix_range(v, &n->lo, &lo) || ix_range(v, &n->hi, &hi))
        return at(v, n->loc, "loop '%s': bound uses a variable outside its loop",
                  v->k->vars.data[n->var].name);
      if (n->step <= 0)
        return at(v, n->loc, "loop '%s': step must be positive, got %lld",
                  v->k->vars.data[n->var].name, (long long)n->step);
      if (n->parallel && !top)
        return at(v, n->loc, "loop '%s': only an outermost loop can be parallel",
                  v->k->vars.data[n->var].name);
      if (n->parallel && (!kf_ix_is_const(&n->lo) || !kf_ix_is_const(&n->hi)))
        return at(v, n->loc, "parallel loop '%s' needs constant bounds",
                  v->k->vars.data[n->var].name);
      if (v->active[n->var])
        return at(v, n->loc, "loop variable '%s' reused inside its own loop",
                  v->k->vars.data[n->var].name);
      v->ranges[n->var].lo = lo.lo;
      v->ranges[n->var].hi = hi.hi - 1 < lo.lo ? lo.lo : hi.hi - 1;
      v->active[n->var] = 1;
      rc = verify_block(v, &n->body, 0);
      v->active[n->var] = 0;
      if (rc) return rc;
      continue;
    }
    for (int t = 0; t < n->n_tiles; t++)
      if ((rc = verify_tile(v, n, t))) return rc;
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
  vstate v = {ctx, k, kf_xcalloc(k->vars.len + 1, sizeof(kf_ix_range)),
              kf_xcalloc(k->vars.len + 1, 1), 0};
  int rc = verify_block(&v, &k->body, 1);
  free(v.ranges);
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

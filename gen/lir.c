/*
** lir.c: building, verifying and printing the low-level kernel IR (see lir.h).
*/
#include "lir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  int bits;
} scalar_info[KF_N_SCALAR] = {
    [KF_I8] = {"i8", 8},     [KF_U8] = {"u8", 8},     [KF_I16] = {"i16", 16},
    [KF_U16] = {"u16", 16},  [KF_I32] = {"i32", 32},  [KF_U32] = {"u32", 32},
    [KF_I64] = {"i64", 64},  [KF_F32] = {"f32", 32},  [KF_F64] = {"f64", 64},
    [KF_BF16] = {"bf16", 16}, [KF_BOOL] = {"bool", 1},
};

int kf_scalar_bits(kf_scalar s) { return s < KF_N_SCALAR ? scalar_info[s].bits : 0; }
const char *kf_scalar_name(kf_scalar s) { return s < KF_N_SCALAR ? scalar_info[s].name : "?"; }
int kf_ty_eq(kf_ty a, kf_ty b) { return a.s == b.s && a.lanes == b.lanes; }
int kf_scalar_is_float(kf_scalar s) { return s == KF_F32 || s == KF_F64; }
int kf_scalar_is_signed(kf_scalar s) {
  return s == KF_I8 || s == KF_I16 || s == KF_I32 || s == KF_I64;
}

static const char *const op_names[KF_L_N_OPS] = {
    [KF_L_CONST] = "const",   [KF_L_VAR] = "var",         [KF_L_LOAD] = "load",
    [KF_L_LOADN] = "loadn",   [KF_L_ADD] = "add",         [KF_L_SUB] = "sub",
    [KF_L_MUL] = "mul",       [KF_L_DIV] = "div",         [KF_L_MIN] = "min",
    [KF_L_MAX] = "max",       [KF_L_AND] = "and",         [KF_L_OR] = "or",
    [KF_L_XOR] = "xor",       [KF_L_SHL] = "shl",         [KF_L_SHR] = "shr",
    [KF_L_LT] = "lt",         [KF_L_LE] = "le",           [KF_L_EQ] = "eq",
    [KF_L_NE] = "ne",         [KF_L_NEG] = "neg",         [KF_L_ABS] = "abs",
    [KF_L_SQRT] = "sqrt",     [KF_L_ROUND] = "round",     [KF_L_FLOOR] = "floor",
    [KF_L_FMA] = "fma",       [KF_L_SELECT] = "select",   [KF_L_CVT] = "cvt",
    [KF_L_BITCAST] = "bitcast", [KF_L_BROADCAST] = "broadcast", [KF_L_EXTRACT] = "extract",
    [KF_L_REDUCE_ADD] = "reduce_add", [KF_L_REDUCE_MAX] = "reduce_max",
    [KF_L_DPBUSD] = "dpbusd", [KF_L_DPBF16] = "dpbf16", [KF_L_LUT16] = "lut16",
};

kf_lir_func *kf_lir_func_new(const char *name) {
  kf_lir_func *f = kf_xcalloc(1, sizeof *f);
  f->name = kf_arena_strdup(&f->arena, name);
  f->header = "";
  f->par_lo_var = kf_lir_var_add(f, "par_lo", kf_ty_of(KF_I64, 1));
  f->par_hi_var = kf_lir_var_add(f, "par_hi", kf_ty_of(KF_I64, 1));
  f->par_total = 1;
  return f;
}

static void free_block(kf_lir_block *b) {
  for (size_t i = 0; i < b->len; i++) {
    free_block(&b->data[i]->body);
    free_block(&b->data[i]->els);
  }
  kf_vec_free(b);
}

void kf_lir_func_free(kf_lir_func *f) {
  if (!f) return;
  free_block(&f->body);
  kf_vec_free(&f->bufs);
  kf_vec_free(&f->vars);
  kf_arena_free(&f->arena);
  free(f);
}

int kf_lir_buf_add(kf_lir_func *f, const char *name, kf_scalar elem, int64_t n_elems,
                   kf_buf_kind kind) {
  kf_lir_buf b = {kf_arena_strdup(&f->arena, name), elem, n_elems, kind, -1, 0};
  if (kind == KF_BUF_LOCAL) {
    b.ws_offset = f->ws_bytes;
    int64_t bytes = n_elems * (kf_scalar_bits(elem) / 8);
    f->ws_bytes += (bytes + 63) & ~(int64_t)63;
  } else {
    b.arg_index = f->n_args++;
  }
  kf_vec_push(&f->bufs, b);
  return (int)f->bufs.len - 1;
}

int kf_lir_var_add(kf_lir_func *f, const char *name, kf_ty ty) {
  kf_lir_var v = {kf_arena_strdup(&f->arena, name), ty};
  kf_vec_push(&f->vars, v);
  return (int)f->vars.len - 1;
}

static kf_lir_expr *node(kf_lir_func *f, kf_lir_op op, kf_ty ty) {
  kf_lir_expr *e = kf_arena_alloc(&f->arena, sizeof *e);
  e->op = op;
  e->ty = ty;
  e->buf = e->var = -1;
  return e;
}

kf_lir_expr *kf_lc_i(kf_lir_func *f, kf_ty ty, int64_t v) {
  kf_lir_expr *e = node(f, KF_L_CONST, ty);
  e->ival = v;
  e->fval = (double)v;
  return e;
}

kf_lir_expr *kf_lc_f(kf_lir_func *f, kf_ty ty, double v) {
  kf_lir_expr *e = node(f, KF_L_CONST, ty);
  e->fval = v;
  return e;
}

kf_lir_expr *kf_lc_i64(kf_lir_func *f, int64_t v) { return kf_lc_i(f, kf_ty_of(KF_I64, 1), v); }

kf_lir_expr *kf_lv(kf_lir_func *f, int var) {
  kf_assert(var >= 0 && (size_t)var < f->vars.len);
  kf_lir_expr *e = node(f, KF_L_VAR, f->vars.data[var].ty);
  e->var = var;
  return e;
}

kf_lir_expr *kf_lload(kf_lir_func *f, kf_ty ty, int buf, kf_lir_expr *idx) {
  kf_lir_expr *e = node(f, KF_L_LOAD, ty);
  e->buf = buf;
  e->a[0] = idx;
  return e;
}

kf_lir_expr *kf_lloadn(kf_lir_func *f, kf_ty ty, int buf, kf_lir_expr *idx, kf_lir_expr *n) {
  kf_lir_expr *e = node(f, KF_L_LOADN, ty);
  e->buf = buf;
  e->a[0] = idx;
  e->a[1] = n;
  return e;
}

kf_lir_expr *kf_lop(kf_lir_func *f, kf_lir_op op, kf_ty ty, kf_lir_expr *a0, kf_lir_expr *a1,
                    kf_lir_expr *a2) {
  kf_lir_expr *e = node(f, op, ty);
  e->a[0] = a0;
  e->a[1] = a1;
  e->a[2] = a2;
  return e;
}

kf_lir_expr *kf_lbin(kf_lir_func *f, kf_lir_op op, kf_lir_expr *a0, kf_lir_expr *a1) {
  kf_ty ty = a0->ty;
  if (op == KF_L_LT || op == KF_L_LE || op == KF_L_EQ || op == KF_L_NE) ty.s = KF_BOOL;
  return kf_lop(f, op, ty, a0, a1, NULL);
}

kf_lir_expr *kf_lbcast(kf_lir_func *f, int lanes, kf_lir_expr *scalar) {
  if (lanes == 1) return scalar;
  return kf_lop(f, KF_L_BROADCAST, kf_ty_of(scalar->ty.s, lanes), scalar, NULL, NULL);
}

kf_lir_expr *kf_lcvt(kf_lir_func *f, kf_ty ty, kf_lir_expr *a) {
  if (kf_ty_eq(ty, a->ty)) return a;
  return kf_lop(f, KF_L_CVT, ty, a, NULL, NULL);
}

kf_lir_expr *kf_lbitcast(kf_lir_func *f, kf_ty ty, kf_lir_expr *a) {
  if (kf_ty_eq(ty, a->ty)) return a;
  return kf_lop(f, KF_L_BITCAST, ty, a, NULL, NULL);
}

static kf_lir_stmt *stmt(kf_lir_func *f, kf_lir_block *b, kf_lir_stmt_kind kind) {
  kf_lir_stmt *s = kf_arena_alloc(&f->arena, sizeof *s);
  s->kind = kind;
  s->var = s->buf = -1;
  kf_vec_push(b, s);
  return s;
}

void kf_lassign(kf_lir_func *f, kf_lir_block *b, int var, kf_lir_expr *e) {
  kf_lir_stmt *s = stmt(f, b, KF_S_ASSIGN);
  s->var = var;
  s->e = e;
}

void kf_lstore(kf_lir_func *f, kf_lir_block *b, int buf, kf_lir_expr *idx, kf_lir_expr *e) {
  kf_lir_stmt *s = stmt(f, b, KF_S_STORE);
  s->buf = buf;
  s->idx = idx;
  s->e = e;
}

void kf_lstoren(kf_lir_func *f, kf_lir_block *b, int buf, kf_lir_expr *idx, kf_lir_expr *e,
                kf_lir_expr *n) {
  kf_lir_stmt *s = stmt(f, b, KF_S_STOREN);
  s->buf = buf;
  s->idx = idx;
  s->e = e;
  s->n = n;
}

kf_lir_stmt *kf_lfor(kf_lir_func *f, kf_lir_block *b, int var, kf_lir_expr *lo,
                     kf_lir_expr *hi, int64_t step) {
  kf_lir_stmt *s = stmt(f, b, KF_S_FOR);
  s->var = var;
  s->lo = lo;
  s->hi = hi;
  s->step = step;
  return s;
}

kf_lir_stmt *kf_lif(kf_lir_func *f, kf_lir_block *b, kf_lir_expr *cond) {
  kf_lir_stmt *s = stmt(f, b, KF_S_IF);
  s->e = cond;
  return s;
}

void kf_lcomment(kf_lir_func *f, kf_lir_block *b, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  kf_lir_stmt *s = stmt(f, b, KF_S_COMMENT);
  s->text = kf_arena_strdup(&f->arena, buf);
}

/* ---- verifier ---- */

typedef struct {
  kf_ctx *ctx;
  const kf_lir_func *f;
} vctx;

static int vfail(vctx *v, const kf_lir_expr *e, const char *what) {
  return kf_err(v->ctx, KF_EINVAL, "LIR of %s: %s node (%s x %d): %s", v->f->name,
                e ? (e->op < KF_L_N_OPS ? op_names[e->op] : "?") : "statement", e ? kf_scalar_name(e->ty.s) : "-",
                e ? e->ty.lanes : 0, what);
}

static int is_i64(const kf_lir_expr *e) { return e && e->ty.s == KF_I64 && e->ty.lanes == 1; }

static int verify_expr(vctx *v, const kf_lir_expr *e) {
  if (!e) return kf_err(v->ctx, KF_EINVAL, "LIR of %s: missing operand", v->f->name);
  if (e->ty.lanes < 1 || e->ty.lanes > 64) return vfail(v, e, "bad lane count");
  int n_ops = 0;
  for (int i = 0; i < 3; i++)
    if (e->a[i]) {
      int rc = verify_expr(v, e->a[i]);
      if (rc) return rc;
      n_ops = i + 1;
    }
  const kf_lir_expr *a0 = e->a[0], *a1 = e->a[1], *a2 = e->a[2];
  switch (e->op) {
  case KF_L_CONST:
    if (e->ty.lanes != 1) return vfail(v, e, "constants are scalar (broadcast them)");
    return KF_OK;
  case KF_L_VAR:
    if (e->var < 0 || (size_t)e->var >= v->f->vars.len) return vfail(v, e, "bad variable id");
    return KF_OK;
  case KF_L_LOAD:
  case KF_L_LOADN:
    if (e->buf < 0 || (size_t)e->buf >= v->f->bufs.len) return vfail(v, e, "bad buffer id");
    if (v->f->bufs.data[e->buf].elem != e->ty.s) return vfail(v, e, "type differs from buffer's");
    if (!is_i64(a0)) return vfail(v, e, "index must be i64");
    if (e->op == KF_L_LOADN && !is_i64(a1)) return vfail(v, e, "count must be i64");
    return KF_OK;
  case KF_L_ADD: case KF_L_SUB: case KF_L_MUL: case KF_L_DIV: case KF_L_MIN: case KF_L_MAX:
    if (n_ops != 2 || !kf_ty_eq(a0->ty, e->ty) || !kf_ty_eq(a1->ty, e->ty))
      return vfail(v, e, "operands must have the result type");
    if (e->ty.s == KF_BF16 || e->ty.s == KF_BOOL) return vfail(v, e, "no arithmetic on bf16/bool");
    return KF_OK;
  case KF_L_AND: case KF_L_OR: case KF_L_XOR: case KF_L_SHL: case KF_L_SHR:
    if (n_ops != 2 || !kf_ty_eq(a0->ty, e->ty) || !kf_ty_eq(a1->ty, e->ty))
      return vfail(v, e, "operands must have the result type");
    if (kf_scalar_is_float(e->ty.s) || e->ty.s == KF_BF16 || e->ty.s == KF_BOOL)
      return vfail(v, e, "integer operation on a non-integer");
    return KF_OK;
  case KF_L_LT: case KF_L_LE: case KF_L_EQ: case KF_L_NE:
    if (n_ops != 2 || !kf_ty_eq(a0->ty, a1->ty) || e->ty.s != KF_BOOL ||
        e->ty.lanes != a0->ty.lanes)
      return vfail(v, e, "comparison of unequal types or non-bool result");
    return KF_OK;
  case KF_L_NEG: case KF_L_ABS:
    if (n_ops != 1 || !kf_ty_eq(a0->ty, e->ty)) return vfail(v, e, "operand type");
    return KF_OK;
  case KF_L_SQRT: case KF_L_ROUND: case KF_L_FLOOR:
    if (n_ops != 1 || !kf_ty_eq(a0->ty, e->ty) || !kf_scalar_is_float(e->ty.s))
      return vfail(v, e, "float operand required");
    return KF_OK;
  case KF_L_FMA:
    if (n_ops != 3 || !kf_ty_eq(a0->ty, e->ty) || !kf_ty_eq(a1->ty, e->ty) ||
        !kf_ty_eq(a2->ty, e->ty) || !kf_scalar_is_float(e->ty.s))
      return vfail(v, e, "fma needs three float operands of the result type");
    return KF_OK;
  case KF_L_SELECT:
    if (n_ops != 3 || a0->ty.s != KF_BOOL || a0->ty.lanes != e->ty.lanes ||
        !kf_ty_eq(a1->ty, e->ty) || !kf_ty_eq(a2->ty, e->ty))
      return vfail(v, e, "select(bool, x, y) types");
    return KF_OK;
  case KF_L_CVT:
    if (n_ops != 1 || a0->ty.lanes != e->ty.lanes || a0->ty.s == KF_BOOL || e->ty.s == KF_BOOL)
      return vfail(v, e, "conversion keeps the lane count");
    if ((a0->ty.s == KF_BF16 && e->ty.s != KF_F32) || (e->ty.s == KF_BF16 && a0->ty.s != KF_F32))
      return vfail(v, e, "bf16 converts only to and from f32");
    return KF_OK;
  case KF_L_BITCAST:
    if (n_ops != 1 ||
        kf_scalar_bits(a0->ty.s) * a0->ty.lanes != kf_scalar_bits(e->ty.s) * e->ty.lanes)
      return vfail(v, e, "bitcast must keep the total bit count");
    return KF_OK;
  case KF_L_BROADCAST:
    if (n_ops != 1 || a0->ty.lanes != 1 || a0->ty.s != e->ty.s)
      return vfail(v, e, "broadcast of a scalar of the element type");
    return KF_OK;
  case KF_L_EXTRACT:
    if (n_ops != 1 || e->ty.lanes != 1 || a0->ty.s != e->ty.s || e->ival < 0 ||
        e->ival >= a0->ty.lanes)
      return vfail(v, e, "extract lane out of range");
    return KF_OK;
  case KF_L_REDUCE_ADD: case KF_L_REDUCE_MAX:
    if (n_ops != 1 || e->ty.lanes != 1 || a0->ty.s != e->ty.s)
      return vfail(v, e, "reduce to a scalar of the element type");
    return KF_OK;
  case KF_L_DPBUSD:
    if (n_ops != 3 || e->ty.s != KF_I32 || !kf_ty_eq(a0->ty, e->ty) || a1->ty.s != KF_U8 ||
        a2->ty.s != KF_I8 || a1->ty.lanes != 4 * e->ty.lanes || a2->ty.lanes != 4 * e->ty.lanes)
      return vfail(v, e, "dpbusd(i32 x L, u8 x 4L, i8 x 4L)");
    return KF_OK;
  case KF_L_DPBF16:
    if (n_ops != 3 || e->ty.s != KF_F32 || !kf_ty_eq(a0->ty, e->ty) || a1->ty.s != KF_BF16 ||
        a2->ty.s != KF_BF16 || a1->ty.lanes != 2 * e->ty.lanes ||
        a2->ty.lanes != 2 * e->ty.lanes)
      return vfail(v, e, "dpbf16(f32 x L, bf16 x 2L, bf16 x 2L)");
    return KF_OK;
  case KF_L_LUT16:
    if (n_ops != 2 || a0->ty.s != KF_U8 || a0->ty.lanes != 16 || a1->ty.s != KF_U8 || !kf_ty_eq(a1->ty, e->ty))
      return vfail(v, e, "lut16(u8 x 16 table, u8 x N indices) -> u8 x N");
    return KF_OK;
  case KF_L_N_OPS: break;
  }
  return vfail(v, e, "unknown op");
}

static int verify_block(vctx *v, const kf_lir_block *b) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_lir_stmt *s = b->data[i];
    int rc = KF_OK;
    switch (s->kind) {
    case KF_S_ASSIGN:
      if (s->var < 0 || (size_t)s->var >= v->f->vars.len)
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: assign to bad variable", v->f->name);
      if ((rc = verify_expr(v, s->e))) return rc;
      if (!kf_ty_eq(s->e->ty, v->f->vars.data[s->var].ty))
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: assign %s x %d to %s of type %s x %d",
                      v->f->name, kf_scalar_name(s->e->ty.s), s->e->ty.lanes,
                      v->f->vars.data[s->var].name, kf_scalar_name(v->f->vars.data[s->var].ty.s),
                      v->f->vars.data[s->var].ty.lanes);
      break;
    case KF_S_STORE:
    case KF_S_STOREN:
      if (s->buf < 0 || (size_t)s->buf >= v->f->bufs.len)
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: store to bad buffer", v->f->name);
      if (v->f->bufs.data[s->buf].kind == KF_BUF_IN)
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: store to input buffer %s", v->f->name,
                      v->f->bufs.data[s->buf].name);
      if ((rc = verify_expr(v, s->e)) || (rc = verify_expr(v, s->idx))) return rc;
      if (s->e->ty.s != v->f->bufs.data[s->buf].elem || !is_i64(s->idx))
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: store type/index mismatch on %s",
                      v->f->name, v->f->bufs.data[s->buf].name);
      if (s->kind == KF_S_STOREN && ((rc = verify_expr(v, s->n)) || !is_i64(s->n)))
        return rc ? rc : kf_err(v->ctx, KF_EINVAL, "LIR of %s: storen count", v->f->name);
      break;
    case KF_S_FOR:
      if (s->var < 0 || (size_t)s->var >= v->f->vars.len ||
          !kf_ty_eq(v->f->vars.data[s->var].ty, kf_ty_of(KF_I64, 1)) || s->step <= 0)
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: bad loop", v->f->name);
      if ((rc = verify_expr(v, s->lo)) || (rc = verify_expr(v, s->hi))) return rc;
      if (!is_i64(s->lo) || !is_i64(s->hi))
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: loop bounds must be i64", v->f->name);
      if ((rc = verify_block(v, &s->body))) return rc;
      break;
    case KF_S_IF:
      if ((rc = verify_expr(v, s->e))) return rc;
      if (s->e->ty.s != KF_BOOL || s->e->ty.lanes != 1)
        return kf_err(v->ctx, KF_EINVAL, "LIR of %s: if needs a scalar bool", v->f->name);
      if ((rc = verify_block(v, &s->body)) || (rc = verify_block(v, &s->els))) return rc;
      break;
    case KF_S_COMMENT: break;
    }
  }
  return KF_OK;
}

int kf_lir_verify(kf_ctx *ctx, const kf_lir_func *f) {
  vctx v = {ctx, f};
  return verify_block(&v, &f->body);
}

/* ---- printer ---- */

static void print_expr(const kf_lir_func *f, const kf_lir_expr *e, kf_str *out) {
  switch (e->op) {
  case KF_L_CONST:
    if (kf_scalar_is_float(e->ty.s)) kf_str_printf(out, "%.9g%s", e->fval, kf_scalar_name(e->ty.s));
    else kf_str_printf(out, "%lld%s", (long long)e->ival, kf_scalar_name(e->ty.s));
    return;
  case KF_L_VAR: kf_str_puts(out, f->vars.data[e->var].name); return;
  default: break;
  }
  kf_str_printf(out, "%s.%s", op_names[e->op], kf_scalar_name(e->ty.s));
  if (e->ty.lanes > 1) kf_str_printf(out, "x%d", e->ty.lanes);
  kf_str_puts(out, "(");
  if (e->op == KF_L_LOAD || e->op == KF_L_LOADN) kf_str_printf(out, "%s, ", f->bufs.data[e->buf].name);
  for (int i = 0; i < 3 && e->a[i]; i++) {
    if (i) kf_str_puts(out, ", ");
    print_expr(f, e->a[i], out);
  }
  if (e->op == KF_L_EXTRACT) kf_str_printf(out, ", %lld", (long long)e->ival);
  kf_str_puts(out, ")");
}

static void print_block(const kf_lir_func *f, const kf_lir_block *b, int depth, kf_str *out) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_lir_stmt *s = b->data[i];
    kf_str_printf(out, "%*s", 2 * depth, "");
    switch (s->kind) {
    case KF_S_ASSIGN:
      kf_str_printf(out, "%s = ", f->vars.data[s->var].name);
      print_expr(f, s->e, out);
      break;
    case KF_S_STORE:
    case KF_S_STOREN:
      kf_str_printf(out, "%s %s[", s->kind == KF_S_STORE ? "store" : "storen",
                    f->bufs.data[s->buf].name);
      print_expr(f, s->idx, out);
      kf_str_puts(out, "] = ");
      print_expr(f, s->e, out);
      if (s->n) {
        kf_str_puts(out, " n=");
        print_expr(f, s->n, out);
      }
      break;
    case KF_S_FOR:
      kf_str_printf(out, "for %s in [", f->vars.data[s->var].name);
      print_expr(f, s->lo, out);
      kf_str_puts(out, ", ");
      print_expr(f, s->hi, out);
      kf_str_printf(out, ") step %lld:\n", (long long)s->step);
      print_block(f, &s->body, depth + 1, out);
      continue;
    case KF_S_IF:
      kf_str_puts(out, "if ");
      print_expr(f, s->e, out);
      kf_str_puts(out, ":\n");
      print_block(f, &s->body, depth + 1, out);
      if (s->els.len) {
        kf_str_printf(out, "%*selse:\n", 2 * depth, "");
        print_block(f, &s->els, depth + 1, out);
      }
      continue;
    case KF_S_COMMENT: kf_str_printf(out, "# %s", s->text); break;
    }
    kf_str_puts(out, "\n");
  }
}

void kf_lir_print(const kf_lir_func *f, kf_str *out) {
  kf_str_printf(out, "lir func %s (parallel range 0..%lld, workspace %lld bytes)\n", f->name,
                (long long)f->par_total, (long long)f->ws_bytes);
  for (size_t i = 0; i < f->bufs.len; i++) {
    const kf_lir_buf *b = &f->bufs.data[i];
    static const char *const kinds[] = {"in", "out", "local"};
    kf_str_printf(out, "  buf %s: %s[%lld] %s\n", b->name, kf_scalar_name(b->elem),
                  (long long)b->n_elems, kinds[b->kind]);
  }
  print_block(f, &f->body, 1, out);
}

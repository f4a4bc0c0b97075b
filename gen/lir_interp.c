/*
** lir_interp.c: the LIR oracle (see lir_interp.h). Values are arrays of lanes; integer
** lanes hold the value sign- or zero-extended to 64 bits by the scalar's signedness, f32
** lanes a float, f64 lanes a double, bf16 lanes the 16-bit pattern, bool lanes 0/1.
*/
#include "lir_interp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef union lane {
  int64_t i;
  float f;
  double d;
} lane;

typedef struct value {
  kf_ty ty;
  lane l[64];
} value;

typedef struct interp {
  kf_ctx *ctx;
  const kf_lir_func *f;
  char **base; /* per buffer: first byte */
  value *vars;
} interp;

static const char *const op_name[KF_L_N_OPS] = {
    "const", "var", "load", "loadn", "add", "sub", "mul", "div", "min", "max", "and", "or",
    "xor", "shl", "shr", "lt", "le", "eq", "ne", "neg", "abs", "sqrt", "round", "floor", "fma",
    "select", "cvt", "bitcast", "broadcast", "extract", "reduce_add", "reduce_max", "dpbusd",
    "dpbf16"};

static int fail(interp *in, const kf_lir_expr *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(interp *in, const kf_lir_expr *e, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (e)
    return kf_err(in->ctx, KF_EINVAL, "LIR interpreter, %s: %s.%sx%d: %s", in->f->name,
                  op_name[e->op], kf_scalar_name(e->ty.s), e->ty.lanes, what);
  return kf_err(in->ctx, KF_EINVAL, "LIR interpreter, %s: %s", in->f->name, what);
}

/* Wraps a 64-bit integer into scalar s (two's complement), extended back by signedness. */
static int64_t wrap(kf_scalar s, int64_t x) {
  switch (s) {
  case KF_I8: return (int8_t)x;
  case KF_U8: return (uint8_t)x;
  case KF_I16: return (int16_t)x;
  case KF_U16: case KF_BF16: return (uint16_t)x;
  case KF_I32: return (int32_t)x;
  case KF_U32: return (uint32_t)x;
  case KF_BOOL: return x != 0;
  default: return x;
  }
}

static int is_int(kf_scalar s) { return s <= KF_I64; }

/* Raw bits of one lane (low `bits` bits meaningful). */
static uint64_t lane_bits(kf_scalar s, lane v) {
  if (s == KF_F32) {
    uint32_t u;
    memcpy(&u, &v.f, 4);
    return u;
  }
  if (s == KF_F64) {
    uint64_t u;
    memcpy(&u, &v.d, 8);
    return u;
  }
  return (uint64_t)v.i;
}

static lane lane_from_bits(kf_scalar s, uint64_t u) {
  lane v = {0};
  if (s == KF_F32) {
    uint32_t w = (uint32_t)u;
    memcpy(&v.f, &w, 4);
  } else if (s == KF_F64) {
    memcpy(&v.d, &u, 8);
  } else {
    v.i = wrap(s, (int64_t)u);
  }
  return v;
}

static float bf16_to_f32(int64_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* f32 -> bf16 bits: round to nearest even, NaN quieted, denormals to signed zero. */
static int64_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40;
  if ((u & 0x7f800000u) == 0) return (u >> 16) & 0x8000;
  uint64_t r = ((uint64_t)u + 0x7fff + ((u >> 16) & 1)) >> 16;
  return (int64_t)(r & 0xffff);
}

static double as_double(kf_scalar s, lane v) {
  if (s == KF_F32) return v.f;
  if (s == KF_F64) return v.d;
  return (double)v.i;
}

static int eval(interp *in, const kf_lir_expr *e, value *out);

/* Evaluates an i64 scalar operand. */
static int eval_i64(interp *in, const kf_lir_expr *e, int64_t *out) {
  value v;
  int rc = eval(in, e, &v);
  if (rc) return rc;
  *out = v.l[0].i;
  return KF_OK;
}

/* Checks that elements [idx, idx + n) of buffer b exist; names buffer and index if not. */
static int check_range(interp *in, const kf_lir_expr *e, int b, int64_t idx, int64_t n,
                       const char *what) {
  const kf_lir_buf *buf = &in->f->bufs.data[b];
  if (n == 0) return KF_OK;
  if (idx < 0 || idx > buf->n_elems || n > buf->n_elems - idx)
    return fail(in, e, "%s of %lld elements at index %lld of buffer %s (%lld elements)", what,
                (long long)n, (long long)idx, buf->name, (long long)buf->n_elems);
  if (!in->base[b]) return fail(in, e, "%s: buffer %s has no memory (NULL argument)", what, buf->name);
  return KF_OK;
}

static lane mem_get(interp *in, int b, int64_t idx) {
  kf_scalar s = in->f->bufs.data[b].elem;
  int bytes = kf_scalar_bits(s) / 8;
  uint64_t u = 0;
  memcpy(&u, in->base[b] + idx * bytes, (size_t)bytes); /* little-endian */
  return lane_from_bits(s, u);
}

static void mem_put(interp *in, int b, int64_t idx, lane v) {
  kf_scalar s = in->f->bufs.data[b].elem;
  int bytes = kf_scalar_bits(s) / 8;
  uint64_t u = lane_bits(s, v);
  memcpy(in->base[b] + idx * bytes, &u, (size_t)bytes);
}

static int float_min_max(kf_lir_op op, double a, double b) {
  /* returns 1 when the result is a (MIN: a < b, MAX: a > b), else 0 (b) */
  return op == KF_L_MIN ? a < b : a > b;
}

static int int_min_max(kf_lir_op op, int64_t a, int64_t b) {
  return op == KF_L_MIN ? a < b : a > b;
}

/* Binary lane op on integers of scalar s. */
static int int_binop(interp *in, const kf_lir_expr *e, kf_scalar s, int64_t a, int64_t b,
                     int64_t *r) {
  int bits = kf_scalar_bits(s);
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  switch (e->op) {
  case KF_L_ADD: *r = wrap(s, (int64_t)(ua + ub)); return KF_OK;
  case KF_L_SUB: *r = wrap(s, (int64_t)(ua - ub)); return KF_OK;
  case KF_L_MUL: *r = wrap(s, (int64_t)(ua * ub)); return KF_OK;
  case KF_L_DIV:
    if (b == 0) return fail(in, e, "integer division by zero");
    if (kf_scalar_is_signed(s) && b == -1 && a == wrap(s, (int64_t)((uint64_t)1 << (bits - 1))))
      return fail(in, e, "integer division overflow (INT_MIN / -1)");
    *r = a / b; /* both values are exact in int64 for every kind (no U64) */
    return KF_OK;
  case KF_L_MIN: case KF_L_MAX: *r = int_min_max(e->op, a, b) ? a : b; return KF_OK;
  case KF_L_AND: *r = wrap(s, a & b); return KF_OK;
  case KF_L_OR: *r = wrap(s, a | b); return KF_OK;
  case KF_L_XOR: *r = wrap(s, a ^ b); return KF_OK;
  case KF_L_SHL: case KF_L_SHR:
    if (b < 0 || b >= bits) return fail(in, e, "shift count %lld outside [0, %d)", (long long)b, bits);
    if (e->op == KF_L_SHL) *r = wrap(s, (int64_t)(ua << b));
    else if (kf_scalar_is_signed(s)) *r = a >> b; /* arithmetic (gcc/clang on int64) */
    else *r = (int64_t)(ua >> b); /* a is zero-extended: logical */
    return KF_OK;
  default: break;
  }
  return fail(in, e, "not an integer binary op");
}

static lane float_lane(kf_scalar s, double x) {
  lane v = {0};
  if (s == KF_F32) v.f = (float)x;
  else v.d = x;
  return v;
}

/* Float binary op in the precision of s (f32 ops are computed in float, not double). */
static lane float_binop(kf_lir_op op, kf_scalar s, lane a, lane b) {
  lane r = {0};
  if (s == KF_F32) {
    float x = a.f, y = b.f;
    switch (op) {
    case KF_L_ADD: r.f = x + y; break;
    case KF_L_SUB: r.f = x - y; break;
    case KF_L_MUL: r.f = x * y; break;
    case KF_L_DIV: r.f = x / y; break;
    default: r.f = float_min_max(op, x, y) ? x : y; break;
    }
  } else {
    double x = a.d, y = b.d;
    switch (op) {
    case KF_L_ADD: r.d = x + y; break;
    case KF_L_SUB: r.d = x - y; break;
    case KF_L_MUL: r.d = x * y; break;
    case KF_L_DIV: r.d = x / y; break;
    default: r.d = float_min_max(op, x, y) ? x : y; break;
    }
  }
  return r;
}

static int compare_lane(kf_lir_op op, kf_scalar s, lane a, lane b) {
  if (kf_scalar_is_float(s)) {
    double x = as_double(s, a), y = as_double(s, b);
    switch (op) {
    case KF_L_LT: return x < y;
    case KF_L_LE: return x <= y;
    case KF_L_EQ: return x == y;
    default: return x != y;
    }
  }
  /* integers (already sign/zero-extended, so int64 comparison is the typed one), bf16
  ** bit patterns, bools */
  switch (op) {
  case KF_L_LT: return a.i < b.i;
  case KF_L_LE: return a.i <= b.i;
  case KF_L_EQ: return a.i == b.i;
  default: return a.i != b.i;
  }
}

static int convert_lane(interp *in, const kf_lir_expr *e, kf_scalar from, kf_scalar to, lane a,
                        lane *r) {
  if (from == KF_BF16) { /* verifier: only to f32 */
    r->f = bf16_to_f32(a.i);
    return KF_OK;
  }
  if (to == KF_BF16) {
    r->i = f32_to_bf16(a.f);
    return KF_OK;
  }
  if (is_int(from) && is_int(to)) {
    r->i = wrap(to, a.i);
    return KF_OK;
  }
  if (is_int(from)) { /* int -> float: C conversion rounds to nearest */
    if (to == KF_F32) r->f = (float)a.i;
    else r->d = (double)a.i;
    return KF_OK;
  }
  if (kf_scalar_is_float(to)) {
    if (to == KF_F32) r->f = (float)as_double(from, a);
    else r->d = as_double(from, a);
    return KF_OK;
  }
  /* float -> int: truncate; the value must be in range */
  double x = as_double(from, a), t = trunc(x);
  int bits = kf_scalar_bits(to);
  double lo = kf_scalar_is_signed(to) ? -ldexp(1, bits - 1) : 0;
  double hi = kf_scalar_is_signed(to) ? ldexp(1, bits - 1) : ldexp(1, bits);
  if (!(t >= lo && t < hi))
    return fail(in, e, "conversion of %g to %s is out of range", x, kf_scalar_name(to));
  r->i = (int64_t)t;
  return KF_OK;
}

static int eval(interp *in, const kf_lir_expr *e, value *out) {
  value a[3];
  int rc;
  int L = e->ty.lanes;
  kf_scalar s = e->ty.s;
  memset(out, 0, sizeof *out);
  out->ty = e->ty;
  switch (e->op) {
  case KF_L_CONST:
    if (kf_scalar_is_float(s)) out->l[0] = float_lane(s, e->fval);
    else out->l[0].i = wrap(s, e->ival);
    return KF_OK;
  case KF_L_VAR: *out = in->vars[e->var]; return KF_OK;
  case KF_L_LOAD:
  case KF_L_LOADN: {
    int64_t idx, n = L;
    if ((rc = eval_i64(in, e->a[0], &idx))) return rc;
    if (e->op == KF_L_LOADN) {
      if ((rc = eval_i64(in, e->a[1], &n))) return rc;
      if (n < 0 || n > L) return fail(in, e, "loadn count %lld outside [0, %d]", (long long)n, L);
    }
    if ((rc = check_range(in, e, e->buf, idx, n, e->op == KF_L_LOAD ? "load" : "loadn")))
      return rc;
    for (int i = 0; i < n; i++) out->l[i] = mem_get(in, e->buf, idx + i);
    return KF_OK;
  }
  default: break;
  }
  for (int k = 0; k < 3; k++)
    if (e->a[k] && (rc = eval(in, e->a[k], &a[k]))) return rc;
  kf_scalar s0 = e->a[0] ? e->a[0]->ty.s : s;
  switch (e->op) {
  case KF_L_ADD: case KF_L_SUB: case KF_L_MUL: case KF_L_DIV: case KF_L_MIN: case KF_L_MAX:
  case KF_L_AND: case KF_L_OR: case KF_L_XOR: case KF_L_SHL: case KF_L_SHR:
    for (int i = 0; i < L; i++) {
      if (kf_scalar_is_float(s)) out->l[i] = float_binop(e->op, s, a[0].l[i], a[1].l[i]);
      else if ((rc = int_binop(in, e, s, a[0].l[i].i, a[1].l[i].i, &out->l[i].i))) return rc;
    }
    return KF_OK;
  case KF_L_LT: case KF_L_LE: case KF_L_EQ: case KF_L_NE:
    for (int i = 0; i < L; i++) out->l[i].i = compare_lane(e->op, s0, a[0].l[i], a[1].l[i]);
    return KF_OK;
  case KF_L_NEG: case KF_L_ABS:
    for (int i = 0; i < L; i++) {
      lane x = a[0].l[i];
      if (s == KF_F32) out->l[i].f = e->op == KF_L_NEG ? -x.f : fabsf(x.f);
      else if (s == KF_F64) out->l[i].d = e->op == KF_L_NEG ? -x.d : fabs(x.d);
      else if (s == KF_BF16) /* sign bit of the pattern */
        out->l[i].i = e->op == KF_L_NEG ? (x.i ^ 0x8000) : (x.i & 0x7fff);
      else if (e->op == KF_L_NEG || x.i < 0) out->l[i].i = wrap(s, (int64_t)(0 - (uint64_t)x.i));
      else out->l[i].i = x.i;
    }
    return KF_OK;
  case KF_L_SQRT: case KF_L_ROUND: case KF_L_FLOOR:
    for (int i = 0; i < L; i++) {
      lane x = a[0].l[i];
      if (s == KF_F32)
        out->l[i].f = e->op == KF_L_SQRT ? sqrtf(x.f) : e->op == KF_L_ROUND ? nearbyintf(x.f) : floorf(x.f);
      else
        out->l[i].d = e->op == KF_L_SQRT ? sqrt(x.d) : e->op == KF_L_ROUND ? nearbyint(x.d) : floor(x.d);
    }
    return KF_OK;
  case KF_L_FMA:
    for (int i = 0; i < L; i++) {
      if (s == KF_F32) out->l[i].f = fmaf(a[0].l[i].f, a[1].l[i].f, a[2].l[i].f);
      else out->l[i].d = fma(a[0].l[i].d, a[1].l[i].d, a[2].l[i].d);
    }
    return KF_OK;
  case KF_L_SELECT:
    for (int i = 0; i < L; i++) out->l[i] = a[0].l[i].i ? a[1].l[i] : a[2].l[i];
    return KF_OK;
  case KF_L_CVT:
    for (int i = 0; i < L; i++)
      if ((rc = convert_lane(in, e, s0, s, a[0].l[i], &out->l[i]))) return rc;
    return KF_OK;
  case KF_L_BITCAST: {
    /* serialize the source lanes to a little-endian bit string, read it back */
    uint8_t bits[64 * 64] = {0}; /* one byte per bit: simple and obviously right */
    int nb0 = kf_scalar_bits(s0), nb = kf_scalar_bits(s), pos = 0;
    for (int i = 0; i < e->a[0]->ty.lanes; i++) {
      uint64_t u = lane_bits(s0, a[0].l[i]);
      for (int b = 0; b < nb0; b++) bits[pos++] = (u >> b) & 1;
    }
    pos = 0;
    for (int i = 0; i < L; i++) {
      uint64_t u = 0;
      for (int b = 0; b < nb; b++) u |= (uint64_t)bits[pos++] << b;
      out->l[i] = lane_from_bits(s, u);
    }
    return KF_OK;
  }
  case KF_L_BROADCAST:
    for (int i = 0; i < L; i++) out->l[i] = a[0].l[0];
    return KF_OK;
  case KF_L_EXTRACT: out->l[0] = a[0].l[e->ival]; return KF_OK;
  case KF_L_REDUCE_ADD:
  case KF_L_REDUCE_MAX: {
    lane r = a[0].l[0];
    for (int i = 1; i < e->a[0]->ty.lanes; i++) {
      lane x = a[0].l[i];
      if (s == KF_BF16 || s == KF_BOOL) return fail(in, e, "reduction of %s", kf_scalar_name(s));
      if (e->op == KF_L_REDUCE_ADD) {
        if (kf_scalar_is_float(s)) r = float_binop(KF_L_ADD, s, r, x);
        else r.i = wrap(s, (int64_t)((uint64_t)r.i + (uint64_t)x.i));
      } else {
        if (kf_scalar_is_float(s)) r = float_binop(KF_L_MAX, s, r, x);
        else r.i = r.i > x.i ? r.i : x.i;
      }
    }
    out->l[0] = r;
    return KF_OK;
  }
  case KF_L_DPBUSD:
    for (int i = 0; i < L; i++) {
      int64_t sum = 0;
      for (int j = 0; j < 4; j++) sum += a[1].l[4 * i + j].i * a[2].l[4 * i + j].i; /* exact */
      out->l[i].i = wrap(KF_I32, (int64_t)((uint64_t)a[0].l[i].i + (uint64_t)sum));
    }
    return KF_OK;
  case KF_L_LUT16:
    for (int i = 0; i < L; i++) out->l[i].i = a[0].l[a[1].l[i].i & 15].i;
    return KF_OK;
  case KF_L_DPBF16:
    for (int i = 0; i < L; i++) {
      float acc = a[0].l[i].f;
      for (int j = 1; j >= 0; j--) /* odd pair first, as vdpbf16ps */
        acc = fmaf(bf16_to_f32(a[1].l[2 * i + j].i), bf16_to_f32(a[2].l[2 * i + j].i), acc);
      out->l[i].f = acc;
    }
    return KF_OK;
  default: break;
  }
  return fail(in, e, "unknown op");
}

static int exec_block(interp *in, const kf_lir_block *b);

static int exec_store(interp *in, const kf_lir_stmt *st) {
  value v;
  int64_t idx, n;
  int rc;
  if ((rc = eval(in, st->e, &v)) || (rc = eval_i64(in, st->idx, &idx))) return rc;
  n = v.ty.lanes;
  if (st->kind == KF_S_STOREN) {
    if ((rc = eval_i64(in, st->n, &n))) return rc;
    if (n < 0 || n > v.ty.lanes)
      return fail(in, NULL, "storen to %s: count %lld outside [0, %d]",
                  in->f->bufs.data[st->buf].name, (long long)n, v.ty.lanes);
  }
  if ((rc = check_range(in, NULL, st->buf, idx, n, st->kind == KF_S_STORE ? "store" : "storen")))
    return rc;
  for (int i = 0; i < n; i++) mem_put(in, st->buf, idx + i, v.l[i]);
  return KF_OK;
}

static int exec_block(interp *in, const kf_lir_block *b) {
  int rc;
  for (size_t k = 0; k < b->len; k++) {
    const kf_lir_stmt *st = b->data[k];
    switch (st->kind) {
    case KF_S_ASSIGN: {
      value v;
      if ((rc = eval(in, st->e, &v))) return rc;
      in->vars[st->var] = v;
      break;
    }
    case KF_S_STORE:
    case KF_S_STOREN:
      if ((rc = exec_store(in, st))) return rc;
      break;
    case KF_S_FOR: {
      int64_t lo, hi;
      if ((rc = eval_i64(in, st->hi, &hi)) || (rc = eval_i64(in, st->lo, &lo))) return rc;
      for (in->vars[st->var].l[0].i = lo; in->vars[st->var].l[0].i < hi;
           in->vars[st->var].l[0].i += st->step)
        if ((rc = exec_block(in, &st->body))) return rc;
      break;
    }
    case KF_S_IF: {
      value c;
      if ((rc = eval(in, st->e, &c))) return rc;
      if ((rc = exec_block(in, c.l[0].i ? &st->body : &st->els))) return rc;
      break;
    }
    case KF_S_COMMENT: break;
    }
  }
  return KF_OK;
}

int kf_lir_interp_run(kf_ctx *ctx, const kf_lir_func *f, void *const *args, int64_t par_lo,
                      int64_t par_hi, void *ws) {
  int rc = kf_lir_verify(ctx, f);
  if (rc) return rc;
  interp in = {ctx, f, NULL, NULL};
  for (size_t b = 0; b < f->bufs.len; b++) {
    const kf_lir_buf *buf = &f->bufs.data[b];
    if (buf->elem == KF_BOOL)
      return fail(&in, NULL, "buffer %s has element type bool (not storable)", buf->name);
    if (buf->kind == KF_BUF_LOCAL &&
        (!ws || buf->ws_offset + buf->n_elems * (kf_scalar_bits(buf->elem) / 8) > f->ws_bytes))
      return fail(&in, NULL, "local buffer %s does not fit the workspace (%lld bytes%s)",
                  buf->name, (long long)f->ws_bytes, ws ? "" : ", none given");
  }
  in.base = kf_xcalloc(f->bufs.len + 1, sizeof *in.base);
  in.vars = kf_xcalloc(f->vars.len, sizeof *in.vars);
  for (size_t b = 0; b < f->bufs.len; b++) {
    const kf_lir_buf *buf = &f->bufs.data[b];
    in.base[b] = buf->kind == KF_BUF_LOCAL ? (char *)ws + buf->ws_offset : (char *)args[buf->arg_index];
  }
  for (size_t v = 0; v < f->vars.len; v++) in.vars[v].ty = f->vars.data[v].ty;
  in.vars[f->par_lo_var].l[0].i = par_lo;
  in.vars[f->par_hi_var].l[0].i = par_hi;
  rc = exec_block(&in, &f->body);
  free(in.base);
  free(in.vars);
  return rc;
}

/*
** lir_samples.c: the LIR sample kernels (see lir_samples.h).
**
** Inputs are chosen by the buffer name's prefix (up to '_'):
**   edge   full range of the type with its edge values (NaN, +-Inf, -0, denormals, ties,
**          INT_MIN/MAX, -1, ...) first, then pseudo-random values
**   small  small integers (floats: exact sums in any order); nz: non-zero small divisors
**          (no -1, so no INT_MIN / -1); cnt: shift counts in [0, bits)
**   rng    floats in (-128, 128) with fractions; pos: [0, 256); big: [0, 4e9); wide: (-1e9, 1e9)
**   bfx    bf16 values k * 2^e, |k| <= 16, e in [-2, 2] (dot products exact in f32)
**   unit   floats in [-1, 1]; bfr: bf16 in [-1, 1] (rounded)
**   out    a sentinel pattern (0xA5 bytes), so stray or missing stores show
*/
#include "lir_samples.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TY kf_ty_of

static kf_lir_expr *c64(kf_lir_func *f, int64_t v) { return kf_lc_i64(f, v); }

/* constant of scalar s (float or int), broadcast to L lanes */
static kf_lir_expr *cst(kf_lir_func *f, kf_scalar s, int L, double v) {
  kf_lir_expr *c = kf_scalar_is_float(s) ? kf_lc_f(f, TY(s, 1), v) : kf_lc_i(f, TY(s, 1), (int64_t)v);
  return kf_lbcast(f, L, c);
}

static kf_lir_expr *ld(kf_lir_func *f, int buf, int L, kf_lir_expr *idx) {
  return kf_lload(f, TY(f->bufs.data[buf].elem, L), buf, idx);
}

static kf_lir_expr *op1(kf_lir_func *f, kf_lir_op op, kf_lir_expr *a) {
  return kf_lop(f, op, a->ty, a, NULL, NULL);
}
static kf_lir_expr *op3(kf_lir_func *f, kf_lir_op op, kf_lir_expr *a, kf_lir_expr *b, kf_lir_expr *c) {
  return kf_lop(f, op, a->ty, a, b, c);
}
static kf_lir_expr *sel(kf_lir_func *f, kf_lir_expr *c, kf_lir_expr *a, kf_lir_expr *b) {
  return kf_lop(f, KF_L_SELECT, a->ty, c, a, b);
}
static kf_lir_expr *extract(kf_lir_func *f, kf_lir_expr *v, int lane) {
  kf_lir_expr *e = kf_lop(f, KF_L_EXTRACT, TY(v->ty.s, 1), v, NULL, NULL);
  e->ival = lane;
  return e;
}
static kf_lir_expr *reduce(kf_lir_func *f, kf_lir_op op, kf_lir_expr *v) {
  return kf_lop(f, op, TY(v->ty.s, 1), v, NULL, NULL);
}

/* Output slots: every stored result gets its own 64-element slot of buffer `out`. */
typedef struct slots {
  kf_lir_func *f;
  kf_lir_block *b;
  int out;
  int64_t n;
} slots;

static void put(slots *s, kf_lir_expr *e) {
  kf_lstore(s->f, s->b, s->out, c64(s->f, 64 * s->n++), e);
}
static void slots_done(slots *s) { s->f->bufs.data[s->out].n_elems = 64 * s->n; }

static kf_lir_expr *var_set(kf_lir_func *f, kf_lir_block *b, const char *name, kf_lir_expr *e) {
  int v = kf_lir_var_add(f, name, e->ty);
  kf_lassign(f, b, v, e);
  return kf_lv(f, v);
}

static const int lane_set[] = {1, 4, 8, 16, 32, 64};

/* ---- per-type op samples ---- */

static void build_ops(kf_lir_func *f, kf_scalar s) {
  int isf = kf_scalar_is_float(s);
  int a = kf_lir_buf_add(f, "edge_a", s, 320, KF_BUF_IN);
  int b = kf_lir_buf_add(f, "edge_b", s, 320, KF_BUF_IN);
  int c = kf_lir_buf_add(f, isf ? "unit_c" : "nz_d", s, 320, KF_BUF_IN);
  int cnt = isf ? -1 : kf_lir_buf_add(f, "cnt_s", s, 320, KF_BUF_IN);
  int sm = kf_lir_buf_add(f, "small_r", s, 320, KF_BUF_IN);
  int ra = isf ? kf_lir_buf_add(f, "unit_a", s, 320, KF_BUF_IN) : -1;
  slots o = {f, &f->body, kf_lir_buf_add(f, "out", s, 64, KF_BUF_OUT), 0};
  for (size_t li = 0; li < sizeof lane_set / sizeof *lane_set; li++) {
    int L = lane_set[li];
    if (L == 64 && kf_scalar_bits(s) == 64) continue; /* 512-byte vectors: 32 lanes suffice */
    int full = L <= 16; /* 32 and 64 lanes: a subset (same code paths, long compiles) */
    char nm[32];
    kf_lcomment(f, &f->body, "%s x %d", kf_scalar_name(s), L);
    snprintf(nm, sizeof nm, "a%d", L);
    kf_lir_expr *A = var_set(f, &f->body, nm, ld(f, a, L, c64(f, (L * 7) % 200)));
    snprintf(nm, sizeof nm, "b%d", L);
    kf_lir_expr *B = var_set(f, &f->body, nm, ld(f, b, L, c64(f, (L * 11) % 190 + 3)));
    kf_lir_expr *C = ld(f, c, L, c64(f, (L * 5) % 150 + 1));
    kf_lir_expr *one = cst(f, s, L, 1), *zero = cst(f, s, L, 0);
    put(&o, kf_lbin(f, KF_L_ADD, A, B));
    if (full) put(&o, kf_lbin(f, KF_L_SUB, A, B));
    put(&o, kf_lbin(f, KF_L_MUL, A, B));
    if (full || isf) put(&o, kf_lbin(f, KF_L_DIV, A, isf ? B : C));
    put(&o, kf_lbin(f, KF_L_MIN, A, B));
    put(&o, kf_lbin(f, KF_L_MAX, A, B));
    if (full) put(&o, kf_lbin(f, KF_L_MIN, B, A));
    if (full) put(&o, kf_lbin(f, KF_L_MAX, B, A));
    put(&o, op1(f, KF_L_NEG, A));
    put(&o, op1(f, KF_L_ABS, A));
    static const kf_lir_op cmps[] = {KF_L_LT, KF_L_LE, KF_L_EQ, KF_L_NE};
    for (int k = 0; k < (full ? 4 : 1); k++) put(&o, sel(f, kf_lbin(f, cmps[k], A, B), one, zero));
    put(&o, sel(f, kf_lbin(f, KF_L_EQ, A, A), A, B)); /* NaN != NaN */
    if (full) put(&o, sel(f, kf_lbin(f, KF_L_LT, B, A), A, B));
    put(&o, reduce(f, KF_L_REDUCE_ADD, ld(f, sm, L, c64(f, L))));
    put(&o, reduce(f, KF_L_REDUCE_MAX, A));
    if (full) put(&o, reduce(f, KF_L_REDUCE_MAX, B));
    if (L > 1) {
      put(&o, kf_lbcast(f, L, extract(f, A, L - 1)));
      if (full) put(&o, kf_lbcast(f, L, extract(f, B, L / 2)));
    }
    if (isf) {
      kf_lir_expr *RA = ld(f, ra, L, c64(f, (L * 3) % 100));
      put(&o, op1(f, KF_L_SQRT, A));
      put(&o, op1(f, KF_L_ROUND, A));
      if (full) put(&o, op1(f, KF_L_ROUND, B));
      put(&o, op1(f, KF_L_FLOOR, A));
      if (full) put(&o, op1(f, KF_L_FLOOR, B));
      put(&o, op3(f, KF_L_FMA, A, B, C));
      if (full) put(&o, op3(f, KF_L_FMA, RA, C, ld(f, ra, L, c64(f, 200 - L))));
      /* two roundings: must not be contracted into an fma */
      put(&o, kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, RA, C), ld(f, ra, L, c64(f, 200 - L))));
      if (full) put(&o, kf_lbin(f, KF_L_DIV, RA, C));
      if (full) put(&o, op1(f, KF_L_SQRT, kf_lbin(f, KF_L_MUL, RA, RA)));
    } else {
      kf_lir_expr *S = ld(f, cnt, L, c64(f, (L * 9) % 160));
      put(&o, kf_lbin(f, KF_L_AND, A, B));
      if (full) put(&o, kf_lbin(f, KF_L_OR, A, B));
      put(&o, kf_lbin(f, KF_L_XOR, A, B));
      put(&o, kf_lbin(f, KF_L_SHL, A, S));
      put(&o, kf_lbin(f, KF_L_SHR, A, S));
      if (full) put(&o, kf_lbin(f, KF_L_SHR, B, S));
      put(&o, kf_lbin(f, KF_L_SHR, A, cst(f, s, L, kf_scalar_bits(s) - 1)));
      if (full) put(&o, kf_lbin(f, KF_L_DIV, B, C));
      put(&o, reduce(f, KF_L_REDUCE_ADD, A));
    }
  }
  slots_done(&o);
}

static void b_f32(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_F32); }
static void b_f64(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_F64); }
static void b_i8(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_I8); }
static void b_u8(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_U8); }
static void b_i16(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_I16); }
static void b_u16(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_U16); }
static void b_i32(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_I32); }
static void b_u32(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_U32); }
static void b_i64(kf_lir_func *f, int vl) { (void)vl; build_ops(f, KF_I64); }

/* ---- conversions ---- */

static void b_cvt(kf_lir_func *f, int vl) {
  (void)vl;
  static const kf_scalar dst_types[] = {KF_I8, KF_U8, KF_I16, KF_U16, KF_I32, KF_U32,
                                        KF_I64, KF_F32, KF_F64, KF_BF16};
  enum { N_DST = sizeof dst_types / sizeof *dst_types };
  slots outs[N_DST];
  for (int i = 0; i < N_DST; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "out_%s", kf_scalar_name(dst_types[i]));
    outs[i] = (slots){f, &f->body, kf_lir_buf_add(f, nm, dst_types[i], 64, KF_BUF_OUT), 0};
  }
  static const struct { const char *src; kf_scalar s, d; } pairs[] = {
      {"edge", KF_I8, KF_I32},   {"edge", KF_U8, KF_I32},   {"edge", KF_I8, KF_U8},
      {"edge", KF_I16, KF_I8},   {"edge", KF_U16, KF_I32},  {"edge", KF_I32, KF_I16},
      {"edge", KF_I32, KF_U8},   {"edge", KF_I32, KF_I64},  {"edge", KF_U32, KF_I64},
      {"edge", KF_I64, KF_I32},  {"edge", KF_I64, KF_U16},  {"edge", KF_U8, KF_U16},
      {"edge", KF_I32, KF_U32},  {"edge", KF_U32, KF_I32},  {"edge", KF_I8, KF_I64},
      {"edge", KF_I32, KF_F32},  {"edge", KF_U32, KF_F32},  {"edge", KF_I64, KF_F32},
      {"edge", KF_I64, KF_F64},  {"edge", KF_I8, KF_F32},   {"edge", KF_U8, KF_F64},
      {"edge", KF_I32, KF_F64},  {"edge", KF_U16, KF_F32},  {"rng", KF_F32, KF_I32},
      {"rng", KF_F32, KF_I8},    {"pos", KF_F32, KF_U8},    {"rng", KF_F32, KF_I16},
      {"wide", KF_F64, KF_I64},  {"wide", KF_F64, KF_I32},  {"rng", KF_F32, KF_I64},
      {"big", KF_F32, KF_U32},   {"pos", KF_F64, KF_U16},   {"edge", KF_F32, KF_F64},
      {"edge", KF_F64, KF_F32},  {"edge", KF_F32, KF_BF16}, {"edge", KF_BF16, KF_F32},
      {"big", KF_F64, KF_U32},
  };
  static const int lanes[] = {1, 4, 8, 16, 32};
  for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
    char nm[32];
    snprintf(nm, sizeof nm, "%s_%s%zu", pairs[p].src, kf_scalar_name(pairs[p].s), p);
    int in = kf_lir_buf_add(f, nm, pairs[p].s, 160, KF_BUF_IN);
    int di = 0;
    while (dst_types[di] != pairs[p].d) di++;
    kf_lcomment(f, &f->body, "%s -> %s", kf_scalar_name(pairs[p].s), kf_scalar_name(pairs[p].d));
    for (size_t li = 0; li < sizeof lanes / sizeof *lanes; li++) {
      int L = lanes[li];
      int64_t at = (int64_t)(li * 29) % (160 - L);
      if (L == 1) at = 0; /* the first elements are the edge values */
      for (int64_t k = 0; k < (L == 1 ? 24 : 1); k++)
        put(&outs[di], kf_lcvt(f, TY(pairs[p].d, L), ld(f, in, L, c64(f, at + k))));
    }
  }
  for (int i = 0; i < N_DST; i++) slots_done(&outs[i]);
}

/* ---- bitcast, broadcast, extract ---- */

static void b_bits(kf_lir_func *f, int vl) {
  (void)vl;
  int ef = kf_lir_buf_add(f, "edge_f", KF_F32, 128, KF_BUF_IN);
  int ed = kf_lir_buf_add(f, "edge_d", KF_F64, 64, KF_BUF_IN);
  int eu8 = kf_lir_buf_add(f, "edge_u", KF_U8, 256, KF_BUF_IN);
  int ei32 = kf_lir_buf_add(f, "edge_i", KF_I32, 64, KF_BUF_IN);
  int ei64 = kf_lir_buf_add(f, "edge_l", KF_I64, 64, KF_BUF_IN);
  int ebf = kf_lir_buf_add(f, "edge_h", KF_BF16, 128, KF_BUF_IN);
  int ei8 = kf_lir_buf_add(f, "edge_c", KF_I8, 128, KF_BUF_IN);
  slots oi = {f, &f->body, kf_lir_buf_add(f, "out_i", KF_I32, 64, KF_BUF_OUT), 0};
  slots ou = {f, &f->body, kf_lir_buf_add(f, "out_u", KF_U8, 64, KF_BUF_OUT), 0};
  slots of = {f, &f->body, kf_lir_buf_add(f, "out_f", KF_F32, 64, KF_BUF_OUT), 0};
  slots od = {f, &f->body, kf_lir_buf_add(f, "out_d", KF_F64, 64, KF_BUF_OUT), 0};
  slots ol = {f, &f->body, kf_lir_buf_add(f, "out_l", KF_I64, 64, KF_BUF_OUT), 0};
  slots oh = {f, &f->body, kf_lir_buf_add(f, "out_h", KF_BF16, 64, KF_BUF_OUT), 0};
  slots os = {f, &f->body, kf_lir_buf_add(f, "out_s", KF_I16, 64, KF_BUF_OUT), 0};
  slots oc = {f, &f->body, kf_lir_buf_add(f, "out_c", KF_I8, 64, KF_BUF_OUT), 0};
  /* bitcasts */
  put(&oi, kf_lbitcast(f, TY(KF_I32, 16), ld(f, ef, 16, c64(f, 0))));
  put(&oi, kf_lbitcast(f, TY(KF_I32, 4), ld(f, ef, 4, c64(f, 16))));
  put(&oi, kf_lbitcast(f, TY(KF_I32, 16), ld(f, eu8, 64, c64(f, 3))));
  put(&oi, kf_lbitcast(f, TY(KF_I32, 1), ld(f, eu8, 4, c64(f, 1))));
  put(&oi, kf_lbitcast(f, TY(KF_I32, 1), ld(f, ef, 1, c64(f, 5))));
  put(&ou, kf_lbitcast(f, TY(KF_U8, 64), ld(f, ei32, 16, c64(f, 2))));
  put(&ou, kf_lbitcast(f, TY(KF_U8, 4), ld(f, ei32, 1, c64(f, 7))));
  put(&ou, kf_lbitcast(f, TY(KF_U8, 16), ld(f, ef, 4, c64(f, 9))));
  put(&of, kf_lbitcast(f, TY(KF_F32, 8), ld(f, ei32, 8, c64(f, 1))));
  put(&of, kf_lbitcast(f, TY(KF_F32, 1), ld(f, ei32, 1, c64(f, 3))));
  put(&ol, kf_lbitcast(f, TY(KF_I64, 1), ld(f, ed, 1, c64(f, 4))));
  put(&ol, kf_lbitcast(f, TY(KF_I64, 8), ld(f, ed, 8, c64(f, 1))));
  put(&od, kf_lbitcast(f, TY(KF_F64, 4), ld(f, ei64, 4, c64(f, 2))));
  put(&od, kf_lbitcast(f, TY(KF_F64, 8), ld(f, ef, 16, c64(f, 20))));
  put(&oi, kf_lbitcast(f, TY(KF_I32, 8), ld(f, ei64, 4, c64(f, 5))));
  put(&os, kf_lbitcast(f, TY(KF_I16, 32), ld(f, ebf, 32, c64(f, 0))));
  put(&oh, kf_lbitcast(f, TY(KF_BF16, 16), ld(f, ei32, 8, c64(f, 6))));
  put(&os, kf_lbitcast(f, TY(KF_I16, 16), ld(f, ei32, 8, c64(f, 8))));
  put(&oc, kf_lbitcast(f, TY(KF_I8, 64), ld(f, eu8, 64, c64(f, 100))));
  put(&oc, kf_lbitcast(f, TY(KF_I8, 8), ld(f, ei64, 1, c64(f, 3))));
  /* broadcasts */
  static const int bl[] = {4, 8, 16, 32, 64};
  for (int k = 0; k < 5; k++) {
    put(&of, kf_lbcast(f, bl[k], ld(f, ef, 1, c64(f, k))));
    put(&ou, kf_lbcast(f, bl[k], ld(f, eu8, 1, c64(f, 250 + k))));
    put(&oc, kf_lbcast(f, bl[k], ld(f, ei8, 1, c64(f, k))));
    put(&oh, kf_lbcast(f, bl[k], ld(f, ebf, 1, c64(f, k + 1))));
    put(&os, kf_lbcast(f, bl[k], kf_lc_i(f, TY(KF_I16, 1), -12345)));
    if (bl[k] <= 16) put(&od, kf_lbcast(f, bl[k], ld(f, ed, 1, c64(f, k))));
    if (bl[k] <= 16) put(&ol, kf_lbcast(f, bl[k], ld(f, ei64, 1, c64(f, k))));
    put(&oi, kf_lbcast(f, bl[k], kf_lc_i(f, TY(KF_I32, 1), INT32_MIN)));
  }
  put(&od, kf_lbcast(f, 8, kf_lc_f(f, TY(KF_F64, 1), -0.0)));
  put(&of, kf_lbcast(f, 16, kf_lc_f(f, TY(KF_F32, 1), -0.0)));
  put(&of, kf_lbcast(f, 16, kf_lc_f(f, TY(KF_F32, 1), NAN)));
  put(&of, kf_lbcast(f, 16, kf_lc_f(f, TY(KF_F32, 1), -INFINITY)));
  put(&of, kf_lbcast(f, 4, kf_lc_f(f, TY(KF_F32, 1), 0.1))); /* rounded to f32 */
  put(&ol, kf_lbcast(f, 4, kf_lc_i(f, TY(KF_I64, 1), INT64_MIN)));
  /* extracts */
  put(&of, extract(f, ld(f, ef, 16, c64(f, 0)), 15));
  put(&of, extract(f, ld(f, ef, 64, c64(f, 1)), 63));
  put(&ou, extract(f, ld(f, eu8, 64, c64(f, 7)), 63));
  put(&ou, extract(f, ld(f, eu8, 4, c64(f, 7)), 0));
  put(&ol, extract(f, ld(f, ei64, 4, c64(f, 7)), 2));
  put(&oh, extract(f, ld(f, ebf, 8, c64(f, 0)), 3));
  /* bf16 sign operations act on the pattern (NaN, Inf, zeros included) */
  put(&oh, op1(f, KF_L_NEG, ld(f, ebf, 16, c64(f, 0))));
  put(&oh, op1(f, KF_L_ABS, ld(f, ebf, 16, c64(f, 0))));
  put(&oh, op1(f, KF_L_NEG, ld(f, ebf, 1, c64(f, 4))));
  put(&oh, op1(f, KF_L_ABS, ld(f, ebf, 1, c64(f, 6))));
  put(&oi, extract(f, kf_lbitcast(f, TY(KF_I32, 16), ld(f, eu8, 64, c64(f, 0))), 9));
  slots *all[] = {&oi, &ou, &of, &od, &ol, &oh, &os, &oc};
  for (int k = 0; k < 8; k++) slots_done(all[k]);
}

/* ---- LOADN / STOREN with n = 0..lanes as a run-time value ---- */

static void b_loadn(kf_lir_func *f, int vl) {
  (void)vl;
  static const struct { kf_scalar s; int lanes[4]; } cases[] = {
      {KF_F32, {4, 8, 16, 32}}, {KF_U8, {16, 32, 64, 0}}, {KF_I16, {8, 16, 32, 0}},
      {KF_F64, {4, 8, 0, 0}},   {KF_I32, {8, 16, 0, 0}},  {KF_I64, {4, 8, 0, 0}},
      {KF_BF16, {16, 32, 0, 0}}, {KF_I8, {1, 64, 0, 0}},
  };
  int nvar = kf_lir_var_add(f, "n", TY(KF_I64, 1));
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    kf_scalar s = cases[c].s;
    char nm[32];
    int64_t in_len = 160, outl_len = 0, outs_len = 0;
    for (int k = 0; k < 4 && cases[c].lanes[k]; k++) {
      int L = cases[c].lanes[k];
      outl_len += (int64_t)(L + 1) * L;
      outs_len += (int64_t)(L + 1) * L;
    }
    snprintf(nm, sizeof nm, "edge_%s", kf_scalar_name(s));
    int in = kf_lir_buf_add(f, nm, s, in_len, KF_BUF_IN);
    snprintf(nm, sizeof nm, "outl_%s", kf_scalar_name(s));
    int outl = kf_lir_buf_add(f, nm, s, outl_len, KF_BUF_OUT);
    snprintf(nm, sizeof nm, "outs_%s", kf_scalar_name(s));
    int outs = kf_lir_buf_add(f, nm, s, outs_len, KF_BUF_OUT);
    int64_t base = 0;
    for (int k = 0; k < 4 && cases[c].lanes[k]; k++) {
      int L = cases[c].lanes[k];
      kf_lcomment(f, &f->body, "%s x %d: n = 0..%d", kf_scalar_name(s), L, L);
      kf_lir_stmt *loop = kf_lfor(f, &f->body, nvar, c64(f, 0), c64(f, L + 1), 1);
      kf_lir_block *bb = &loop->body;
      kf_lir_expr *n = kf_lv(f, nvar);
      /* loadn ending at the last element of the input (its guard page follows) */
      kf_lir_expr *v = kf_lloadn(f, TY(s, L), in, kf_lbin(f, KF_L_SUB, c64(f, in_len), n), n);
      kf_lstore(f, bb, outl, kf_lbin(f, KF_L_ADD, c64(f, base), kf_lbin(f, KF_L_MUL, n, c64(f, L))), v);
      /* storen of a full vector: lanes >= n must keep the sentinel; the last region
      ** ends at the end of the buffer */
      kf_lir_expr *full = ld(f, in, L, kf_lbin(f, KF_L_ADD, c64(f, 3), n));
      kf_lstoren(f, bb, outs, kf_lbin(f, KF_L_ADD, c64(f, base), kf_lbin(f, KF_L_MUL, n, c64(f, L))),
                 full, n);
      base += (int64_t)(L + 1) * L;
    }
    /* and one storen that ends exactly at the buffer end, n = lanes - 1 */
    int L = cases[c].lanes[0];
    kf_lstoren(f, &f->body, outs, c64(f, outs_len - (L - 1)), ld(f, in, L, c64(f, 0)),
               c64(f, L - 1));
  }
}

/* ---- control flow, parallel range, workspace, bool values ---- */

static void b_control(kf_lir_func *f, int vl) {
  kf_lir_block *top = &f->body;
  f->par_total = 10;
  int rows = kf_lir_buf_add(f, "small_rows", KF_I32, 10 * 16, KF_BUF_IN);
  int xf = kf_lir_buf_add(f, "edge_x", KF_F32, 64, KF_BUF_IN);
  int out_rows = kf_lir_buf_add(f, "out_rows", KF_I32, 10 * 16, KF_BUF_OUT);
  int out = kf_lir_buf_add(f, "out", KF_I64, 64, KF_BUF_OUT);
  int outf = kf_lir_buf_add(f, "out_f", KF_F32, 256, KF_BUF_OUT);
  int local = kf_lir_buf_add(f, "scratch", KF_I32, 40, KF_BUF_LOCAL);
  int p = kf_lir_var_add(f, "p", TY(KF_I64, 1));
  int i = kf_lir_var_add(f, "i", TY(KF_I64, 1));
  int j = kf_lir_var_add(f, "j", TY(KF_I64, 1));
  int n = kf_lir_var_add(f, "n", TY(KF_I64, 1));
  int acc = kf_lir_var_add(f, "acc", TY(KF_I64, 1));
  int vacc = kf_lir_var_add(f, "vacc", TY(KF_I32, vl));
  int flag = kf_lir_var_add(f, "flag", TY(KF_BOOL, 1));
  int mask = kf_lir_var_add(f, "mask", TY(KF_BOOL, 16));
  kf_lir_expr *P = kf_lv(f, p), *I = kf_lv(f, i), *J = kf_lv(f, j);

  /* parallel loop: row p of 16 i32 -> through the workspace -> out_rows, times (p+1) */
  kf_lcomment(f, top, "parallel rows [par_lo, par_hi)");
  kf_lir_stmt *pl = kf_lfor(f, top, p, kf_lv(f, f->par_lo_var), kf_lv(f, f->par_hi_var), 1);
  kf_lir_expr *row = kf_lbin(f, KF_L_MUL, P, c64(f, 16));
  for (int k = 0; k < 16; k += vl)
    kf_lstore(f, &pl->body, local, c64(f, k), ld(f, rows, vl, kf_lbin(f, KF_L_ADD, row, c64(f, k))));
  kf_lassign(f, &pl->body, vacc, kf_lbcast(f, vl, kf_lc_i(f, TY(KF_I32, 1), 0)));
  kf_lir_stmt *il = kf_lfor(f, &pl->body, i, c64(f, 0), kf_lbin(f, KF_L_ADD, P, c64(f, 1)), 1);
  kf_lassign(f, &il->body, vacc, kf_lbin(f, KF_L_ADD, kf_lv(f, vacc), ld(f, local, vl, c64(f, 0))));
  kf_lstore(f, &pl->body, out_rows, row, kf_lv(f, vacc));
  for (int k = vl; k < 16; k += vl)
    kf_lstore(f, &pl->body, out_rows, kf_lbin(f, KF_L_ADD, row, c64(f, k)),
              ld(f, local, vl, c64(f, k)));

  /* everything below runs once, in the call that owns p = 0 */
  kf_lir_stmt *once = kf_lif(f, top, kf_lbin(f, KF_L_LE, kf_lv(f, f->par_lo_var), c64(f, 0)));
  kf_lir_block *b = &once->body;
  kf_lcomment(f, b, "zero-trip and reversed loops, step 3 over 10, hi changed in the body");
  kf_lassign(f, b, acc, c64(f, 0));
  kf_lir_stmt *z = kf_lfor(f, b, i, c64(f, 5), c64(f, 5), 1);
  kf_lassign(f, &z->body, acc, kf_lbin(f, KF_L_ADD, kf_lv(f, acc), c64(f, 1000)));
  z = kf_lfor(f, b, i, c64(f, 7), c64(f, -3), 2);
  kf_lassign(f, &z->body, acc, kf_lbin(f, KF_L_ADD, kf_lv(f, acc), c64(f, 1000)));
  kf_lstore(f, b, out, c64(f, 0), kf_lv(f, acc));
  kf_lstore(f, b, out, c64(f, 1), I); /* loop variable after a zero-trip loop = lo */
  kf_lassign(f, b, acc, c64(f, 0));
  z = kf_lfor(f, b, i, c64(f, 1), c64(f, 10), 3);
  kf_lassign(f, &z->body, acc, kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, acc), c64(f, 10)), I));
  kf_lstore(f, b, out, c64(f, 2), kf_lv(f, acc)); /* 1, 14, 147 */
  kf_lstore(f, b, out, c64(f, 3), I);             /* 10 */
  kf_lassign(f, b, n, c64(f, 3));
  kf_lassign(f, b, acc, c64(f, 0));
  z = kf_lfor(f, b, i, c64(f, 0), kf_lv(f, n), 1);
  kf_lassign(f, &z->body, n, kf_lbin(f, KF_L_ADD, kf_lv(f, n), c64(f, 1)));
  kf_lassign(f, &z->body, acc, kf_lbin(f, KF_L_ADD, kf_lv(f, acc), c64(f, 1)));
  kf_lstore(f, b, out, c64(f, 4), kf_lv(f, acc)); /* 3: hi evaluated once */
  kf_lstore(f, b, out, c64(f, 5), kf_lv(f, n));   /* 6 */

  kf_lcomment(f, b, "nested loops with if / else-if / else on scalar compares");
  kf_lassign(f, b, acc, c64(f, 0));
  kf_lir_stmt *l1 = kf_lfor(f, b, i, c64(f, 0), c64(f, 6), 1);
  kf_lir_stmt *l2 = kf_lfor(f, &l1->body, j, I, c64(f, 6), 2);
  kf_lir_stmt *c1 = kf_lif(f, &l2->body, kf_lbin(f, KF_L_LT, I, c64(f, 2)));
  kf_lassign(f, &c1->body, acc, kf_lbin(f, KF_L_ADD, kf_lv(f, acc), J));
  kf_lir_stmt *c2 = kf_lif(f, &c1->els, kf_lbin(f, KF_L_EQ, kf_lbin(f, KF_L_AND, J, c64(f, 1)), c64(f, 1)));
  kf_lassign(f, &c2->body, acc, kf_lbin(f, KF_L_MUL, kf_lv(f, acc), c64(f, 3)));
  kf_lassign(f, &c2->els, acc, kf_lbin(f, KF_L_SUB, kf_lv(f, acc), c64(f, 7)));
  kf_lstore(f, b, out, c64(f, 6), kf_lv(f, acc));
  kf_lir_stmt *c3 = kf_lif(f, b, kf_lbin(f, KF_L_NE, kf_lv(f, acc), kf_lv(f, acc)));
  kf_lstore(f, &c3->body, out, c64(f, 7), c64(f, 111)); /* never */

  kf_lcomment(f, b, "bool values: scalar and vector variables, select, broadcast, extract");
  kf_lir_expr *X = ld(f, xf, 16, c64(f, 0)), *Y = ld(f, xf, 16, c64(f, 16));
  kf_lassign(f, b, mask, kf_lbin(f, KF_L_LT, X, Y));
  kf_lstore(f, b, outf, c64(f, 0), sel(f, kf_lv(f, mask), X, Y));
  kf_lstore(f, b, outf, c64(f, 16), sel(f, kf_lbin(f, KF_L_EQ, kf_lv(f, mask), kf_lbin(f, KF_L_LE, Y, X)), X,
                                        cst(f, KF_F32, 16, -1)));
  kf_lassign(f, b, flag, extract(f, kf_lv(f, mask), 3));
  kf_lir_stmt *c4 = kf_lif(f, b, kf_lv(f, flag));
  kf_lstore(f, &c4->body, out, c64(f, 8), c64(f, 1));
  kf_lstore(f, &c4->els, out, c64(f, 8), c64(f, 2));
  kf_lassign(f, b, mask, kf_lbcast(f, 16, kf_lbin(f, KF_L_LT, extract(f, X, 5), extract(f, Y, 5))));
  kf_lstore(f, b, outf, c64(f, 32), sel(f, kf_lv(f, mask), Y, X));
  /* a compare of f64 selecting f32 lanes, i8 compare selecting i8 */
  int xd = kf_lir_buf_add(f, "edge_d", KF_F64, 64, KF_BUF_IN);
  int xc = kf_lir_buf_add(f, "edge_c", KF_I8, 64, KF_BUF_IN);
  int outc = kf_lir_buf_add(f, "out_c", KF_I8, 64, KF_BUF_OUT);
  kf_lstore(f, b, outf, c64(f, 48),
            sel(f, kf_lbin(f, KF_L_LE, ld(f, xd, 16, c64(f, 3)), ld(f, xd, 16, c64(f, 40))), X, Y));
  kf_lir_expr *C0 = ld(f, xc, 64, c64(f, 0));
  kf_lstore(f, b, outc, c64(f, 0), sel(f, kf_lbin(f, KF_L_LT, C0, cst(f, KF_I8, 64, 0)), cst(f, KF_I8, 64, 5), C0));
  kf_lstore(f, b, outf, c64(f, 64), sel(f, kf_lbin(f, KF_L_NE, ld(f, xc, 16, c64(f, 1)), cst(f, KF_I8, 16, 0)), X, Y));
  kf_lassign(f, b, flag, kf_lbin(f, KF_L_EQ, kf_lv(f, flag), kf_lbin(f, KF_L_LT, c64(f, 1), c64(f, 2))));
  kf_lstore(f, b, out, c64(f, 9), sel(f, kf_lv(f, flag), c64(f, 10), c64(f, 20)));
  kf_lstore(f, b, out, c64(f, 10), kf_lv(f, f->par_lo_var));
}

/* ---- DPBUSD with int32 wrap, DPBF16 on exact data ---- */

static void b_dpbusd(kf_lir_func *f, int vl) {
  (void)vl;
  int a = kf_lir_buf_add(f, "edge_a", KF_U8, 1024, KF_BUF_IN);
  int bb = kf_lir_buf_add(f, "edge_b", KF_I8, 1024, KF_BUF_IN);
  int acc0 = kf_lir_buf_add(f, "edge_acc", KF_I32, 64, KF_BUF_IN);
  slots o = {f, &f->body, kf_lir_buf_add(f, "out", KF_I32, 64, KF_BUF_OUT), 0};
  int k = kf_lir_var_add(f, "k", TY(KF_I64, 1));
  static const int ls[] = {1, 4, 8, 16};
  for (int li = 0; li < 4; li++) {
    int L = ls[li];
    char nm[16];
    snprintf(nm, sizeof nm, "acc%d", L);
    int acc = kf_lir_var_add(f, nm, TY(KF_I32, L));
    kf_lassign(f, &f->body, acc, ld(f, acc0, L, c64(f, li)));
    kf_lir_stmt *loop = kf_lfor(f, &f->body, k, c64(f, 0), c64(f, 12), 1);
    kf_lir_expr *off = kf_lbin(f, KF_L_MUL, kf_lv(f, k), c64(f, 4 * L));
    kf_lassign(f, &loop->body, acc,
               kf_lop(f, KF_L_DPBUSD, TY(KF_I32, L), kf_lv(f, acc), ld(f, a, 4 * L, off),
                      ld(f, bb, 4 * L, kf_lbin(f, KF_L_ADD, off, c64(f, li)))));
    put(&o, kf_lv(f, acc));
  }
  slots_done(&o);
}

static void b_dpbf16(kf_lir_func *f, int vl) {
  (void)vl;
  int a = kf_lir_buf_add(f, "bfx_a", KF_BF16, 1024, KF_BUF_IN);
  int bb = kf_lir_buf_add(f, "bfx_b", KF_BF16, 1024, KF_BUF_IN);
  int accs = kf_lir_buf_add(f, "small_acc", KF_F32, 64, KF_BUF_IN);
  int eh = kf_lir_buf_add(f, "edgend_h", KF_BF16, 64, KF_BUF_IN);
  slots o = {f, &f->body, kf_lir_buf_add(f, "out", KF_F32, 64, KF_BUF_OUT), 0};
  int k = kf_lir_var_add(f, "k", TY(KF_I64, 1));
  static const int ls[] = {1, 4, 8, 16, 32};
  for (int li = 0; li < 5; li++) {
    int L = ls[li];
    char nm[16];
    snprintf(nm, sizeof nm, "acc%d", L);
    int acc = kf_lir_var_add(f, nm, TY(KF_F32, L));
    kf_lassign(f, &f->body, acc, ld(f, accs, L, c64(f, li)));
    kf_lir_stmt *loop = kf_lfor(f, &f->body, k, c64(f, 0), c64(f, 1024 / (2 * L) < 12 ? 1024 / (2 * L) : 12), 1);
    kf_lir_expr *off = kf_lbin(f, KF_L_MUL, kf_lv(f, k), c64(f, 2 * L));
    kf_lassign(f, &loop->body, acc,
               kf_lop(f, KF_L_DPBF16, TY(KF_F32, L), kf_lv(f, acc), ld(f, a, 2 * L, off),
                      ld(f, bb, 2 * L, kf_lbin(f, KF_L_ADD, off, c64(f, li)))));
    put(&o, kf_lv(f, acc));
    if (L <= 16) /* Inf, NaN, zeros of both signs: results are NaN/Inf/exact */
      put(&o, kf_lop(f, KF_L_DPBF16, TY(KF_F32, L), cst(f, KF_F32, L, -0.0), ld(f, eh, 2 * L, c64(f, 0)),
                     ld(f, eh, 2 * L, c64(f, 1))));
  }
  slots_done(&o);
}

/* ---- realistic kernels ---- */

/* Both GEMM tiles: MR rows x NRV vectors of vl lanes, M / MR blocks of rows in the parallel
** range; an M-block loop over mb with the K loop inside. */
enum { MR = 4, NRV = 2 };

/* The tile's accumulators acc<r><c> (acc_s x vl) and its B vectors b<c> (b_ty). */
static void tile_vars(kf_lir_func *f, kf_scalar acc_s, kf_ty b_ty, int vl, int acc[MR][NRV], int bv[NRV]) {
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NRV; c++) {
      char nm[16];
      snprintf(nm, sizeof nm, "acc%d%d", r, c);
      acc[r][c] = kf_lir_var_add(f, nm, TY(acc_s, vl));
    }
  for (int c = 0; c < NRV; c++) {
    char nm[16];
    snprintf(nm, sizeof nm, "b%d", c);
    bv[c] = kf_lir_var_add(f, nm, b_ty);
  }
}

/* (row0 + r) * stride: the start of row r of the tile in a row-major matrix. */
static kf_lir_expr *tile_row(kf_lir_func *f, kf_lir_expr *row0, int r, int64_t stride) {
  return kf_lbin(f, KF_L_MUL, kf_lbin(f, KF_L_ADD, row0, c64(f, r)), c64(f, stride));
}

/* C[(row0 + r) * N + c * vl ..] = acc[r][c], for the whole tile. */
static void tile_store(kf_lir_func *f, kf_lir_block *b, int C, kf_lir_expr *row0, int N, int vl,
                       int acc[MR][NRV]) {
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NRV; c++)
      kf_lstore(f, b, C, kf_lbin(f, KF_L_ADD, tile_row(f, row0, r, N), c64(f, c * vl)), kf_lv(f, acc[r][c]));
}

/* C[M x N] (i32) = A[M x K] (u8, row-major) * B (i8, packed [K/4][N][4], the VNNI layout).
** Register tile MR = 4 rows x NR = 2 vectors of vl lanes; the parallel range is M / MR.
** The A values for 4 consecutive k are broadcast as one i32. */
static void b_gemm_u8s8(kf_lir_func *f, int vl) {
  enum { M = 8, K = 64 };
  int N = NRV * vl;
  f->par_total = M / MR;
  f->header = "u8 x s8 -> i32 GEMM tile, MR=4, NR=2 vectors, DPBUSD";
  int A = kf_lir_buf_add(f, "edge_A", KF_U8, (int64_t)M * K, KF_BUF_IN);
  int B = kf_lir_buf_add(f, "edge_B", KF_I8, (int64_t)K * N, KF_BUF_IN);
  int C = kf_lir_buf_add(f, "out_C", KF_I32, (int64_t)M * N, KF_BUF_OUT);
  int mb = kf_lir_var_add(f, "mb", TY(KF_I64, 1));
  int kk = kf_lir_var_add(f, "k", TY(KF_I64, 1));
  int acc[MR][NRV], bv[NRV];
  tile_vars(f, KF_I32, TY(KF_I8, 4 * vl), vl, acc, bv);
  kf_lir_stmt *ml = kf_lfor(f, &f->body, mb, kf_lv(f, f->par_lo_var), kf_lv(f, f->par_hi_var), 1);
  kf_lir_block *mbody = &ml->body;
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NRV; c++)
      kf_lassign(f, mbody, acc[r][c], kf_lbcast(f, vl, kf_lc_i(f, TY(KF_I32, 1), 0)));
  kf_lir_stmt *kl = kf_lfor(f, mbody, kk, c64(f, 0), c64(f, K), 4);
  kf_lir_block *kb = &kl->body;
  kf_lir_expr *row0 = kf_lbin(f, KF_L_MUL, kf_lv(f, mb), c64(f, MR));
  for (int c = 0; c < NRV; c++) /* B[k/4][c*vl .. +vl][4] */
    kf_lassign(f, kb, bv[c], ld(f, B, 4 * vl,
                                kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, kk), c64(f, N)),
                                        c64(f, 4 * c * vl))));
  for (int r = 0; r < MR; r++) {
    kf_lir_expr *aidx = kf_lbin(f, KF_L_ADD, tile_row(f, row0, r, K), kf_lv(f, kk));
    kf_lir_expr *a4 = kf_lbitcast(f, TY(KF_I32, 1), ld(f, A, 4, aidx));
    kf_lir_expr *abc = kf_lbitcast(f, TY(KF_U8, 4 * vl), kf_lbcast(f, vl, a4));
    for (int c = 0; c < NRV; c++)
      kf_lassign(f, kb, acc[r][c], kf_lop(f, KF_L_DPBUSD, TY(KF_I32, vl), kf_lv(f, acc[r][c]), abc,
                                          kf_lv(f, bv[c])));
  }
  tile_store(f, mbody, C, row0, N, vl, acc);
}

/* C[M x N] (f32) = A[M x K] * B[K x N], register tile 4 x 2 vectors, FMA, broadcast A. */
static void b_gemm_f32(kf_lir_func *f, int vl) {
  enum { M = 8, K = 33 };
  int N = NRV * vl;
  f->par_total = M / MR;
  f->header = "f32 GEMM tile, MR=4, NR=2 vectors, FMA";
  int A = kf_lir_buf_add(f, "unit_A", KF_F32, (int64_t)M * K, KF_BUF_IN);
  int B = kf_lir_buf_add(f, "unit_B", KF_F32, (int64_t)K * N, KF_BUF_IN);
  int C = kf_lir_buf_add(f, "out_C", KF_F32, (int64_t)M * N, KF_BUF_OUT);
  int mb = kf_lir_var_add(f, "mb", TY(KF_I64, 1));
  int kk = kf_lir_var_add(f, "k", TY(KF_I64, 1));
  int acc[MR][NRV], bv[NRV];
  tile_vars(f, KF_F32, TY(KF_F32, vl), vl, acc, bv);
  kf_lir_stmt *ml = kf_lfor(f, &f->body, mb, kf_lv(f, f->par_lo_var), kf_lv(f, f->par_hi_var), 1);
  kf_lir_block *mbody = &ml->body;
  for (int r = 0; r < MR; r++)
    for (int c = 0; c < NRV; c++) kf_lassign(f, mbody, acc[r][c], cst(f, KF_F32, vl, 0));
  kf_lir_stmt *kl = kf_lfor(f, mbody, kk, c64(f, 0), c64(f, K), 1);
  kf_lir_block *kb = &kl->body;
  kf_lir_expr *row0 = kf_lbin(f, KF_L_MUL, kf_lv(f, mb), c64(f, MR));
  for (int c = 0; c < NRV; c++)
    kf_lassign(f, kb, bv[c], ld(f, B, vl, kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, kk), c64(f, N)),
                                                 c64(f, c * vl))));
  for (int r = 0; r < MR; r++) {
    kf_lir_expr *a = ld(f, A, 1, kf_lbin(f, KF_L_ADD, tile_row(f, row0, r, K), kf_lv(f, kk)));
    kf_lir_expr *ab = kf_lbcast(f, vl, a);
    for (int c = 0; c < NRV; c++)
      kf_lassign(f, kb, acc[r][c], op3(f, KF_L_FMA, ab, kf_lv(f, bv[c]), kf_lv(f, acc[r][c])));
  }
  tile_store(f, mbody, C, row0, N, vl, acc);
}

/* y[n] = sum_k x[k] * W[k][n], bf16 inputs (W packed in k pairs), f32 output; the result
** is rounded to bf16 as well. Compared with a tolerance (see compare). */
enum { DOT_K = 96 };
static void b_dpbf16_dot(kf_lir_func *f, int vl) {
  int N = 2 * vl;
  f->header = "bf16 GEMV with DPBF16, f32 and bf16 outputs";
  int X = kf_lir_buf_add(f, "bfr_x", KF_BF16, DOT_K, KF_BUF_IN);
  int W = kf_lir_buf_add(f, "bfr_W", KF_BF16, (int64_t)DOT_K * N, KF_BUF_IN);
  int Y = kf_lir_buf_add(f, "out_y", KF_F32, N, KF_BUF_OUT);
  int Yh = kf_lir_buf_add(f, "out_yh", KF_BF16, N, KF_BUF_OUT);
  int kk = kf_lir_var_add(f, "k", TY(KF_I64, 1));
  int acc[2];
  for (int c = 0; c < 2; c++) {
    char nm[16];
    snprintf(nm, sizeof nm, "acc%d", c);
    acc[c] = kf_lir_var_add(f, nm, TY(KF_F32, vl));
    kf_lassign(f, &f->body, acc[c], cst(f, KF_F32, vl, 0));
  }
  kf_lir_stmt *kl = kf_lfor(f, &f->body, kk, c64(f, 0), c64(f, DOT_K), 2);
  /* x[k], x[k+1] as one 32-bit value broadcast: pairs (x[k], x[k+1]) in every lane */
  kf_lir_expr *x2 = kf_lbitcast(f, TY(KF_I32, 1), ld(f, X, 2, kf_lv(f, kk)));
  kf_lir_expr *xb = kf_lbitcast(f, TY(KF_BF16, 2 * vl), kf_lbcast(f, vl, x2));
  for (int c = 0; c < 2; c++) {
    kf_lir_expr *w = ld(f, W, 2 * vl, kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, kk), c64(f, N)),
                                              c64(f, 2 * c * vl)));
    kf_lassign(f, &kl->body, acc[c], kf_lop(f, KF_L_DPBF16, TY(KF_F32, vl), kf_lv(f, acc[c]), xb, w));
  }
  for (int c = 0; c < 2; c++) {
    kf_lstore(f, &f->body, Y, c64(f, c * vl), kf_lv(f, acc[c]));
    kf_lstore(f, &f->body, Yh, c64(f, c * vl), kf_lcvt(f, TY(KF_BF16, vl), kf_lv(f, acc[c])));
  }
}

/* ---- table ---- */

enum { TOL_EXACT, TOL_DOT };
static const struct {
  const char *name;
  void (*build)(kf_lir_func *f, int vl32);
  int tol;
} samples[] = {
    {"ops_f32", b_f32, TOL_EXACT},       {"ops_f64", b_f64, TOL_EXACT},
    {"ops_i8", b_i8, TOL_EXACT},         {"ops_u8", b_u8, TOL_EXACT},
    {"ops_i16", b_i16, TOL_EXACT},       {"ops_u16", b_u16, TOL_EXACT},
    {"ops_i32", b_i32, TOL_EXACT},       {"ops_u32", b_u32, TOL_EXACT},
    {"ops_i64", b_i64, TOL_EXACT},       {"cvt", b_cvt, TOL_EXACT},
    {"bits", b_bits, TOL_EXACT},         {"loadn_storen", b_loadn, TOL_EXACT},
    {"control", b_control, TOL_EXACT},   {"dpbusd", b_dpbusd, TOL_EXACT},
    {"dpbf16", b_dpbf16, TOL_EXACT},     {"gemm_u8s8_dpbusd", b_gemm_u8s8, TOL_EXACT},
    {"gemm_f32_fma", b_gemm_f32, TOL_EXACT}, {"dpbf16_dot", b_dpbf16_dot, TOL_DOT},
};
enum { N_SAMPLES = sizeof samples / sizeof samples[0] };

int kf_lir_sample_count(void) { return N_SAMPLES; }

const char *kf_lir_sample_name(int i) {
  return i >= 0 && i < N_SAMPLES ? samples[i].name : "?";
}

kf_lir_func *kf_lir_sample_build(int i, int vl32) {
  if (i < 0 || i >= N_SAMPLES) return NULL;
  if (vl32 != 4 && vl32 != 8 && vl32 != 16) vl32 = 16;
  char nm[64];
  snprintf(nm, sizeof nm, "sample_%s", samples[i].name);
  kf_lir_func *f = kf_lir_func_new(nm);
  samples[i].build(f, vl32);
  return f;
}

/* ---- inputs ---- */

static uint64_t rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  uint64_t x = *s;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 32);
}
static double unit(uint64_t *s) { return (double)(rnd(s) >> 11) * 0x1p-53; } /* [0,1) */

static uint16_t bf16_of(float x) { /* RNE, finite inputs */
  uint32_t u;
  memcpy(&u, &x, 4);
  return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static void put_elem(kf_scalar s, void *p, int64_t i, double d, int64_t iv) {
  switch (s) {
  case KF_F32: ((float *)p)[i] = (float)d; break;
  case KF_F64: ((double *)p)[i] = d; break;
  case KF_I8: case KF_U8: ((uint8_t *)p)[i] = (uint8_t)iv; break;
  case KF_I16: case KF_U16: case KF_BF16: ((uint16_t *)p)[i] = (uint16_t)iv; break;
  case KF_I32: case KF_U32: ((uint32_t *)p)[i] = (uint32_t)iv; break;
  default: ((uint64_t *)p)[i] = (uint64_t)iv; break;
  }
}

static void fill(const kf_lir_buf *b, void *p, uint64_t seed) {
  uint64_t st = seed;
  kf_scalar s = b->elem;
  int bits = kf_scalar_bits(s), isf = kf_scalar_is_float(s), sg = kf_scalar_is_signed(s);
  size_t plen = strcspn(b->name, "_");
  char mode[16] = {0}; /* the name's prefix */
  memcpy(mode, b->name, plen < 15 ? plen : 15);
  int64_t lo = !sg ? 0 : bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
  int64_t hi = bits == 64 ? INT64_MAX : sg ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
  static const double fedge[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 0.5, 1.5, 2.5, -0.5,
                                 -1.5, -2.5, 1e-40, -1e-40, 3.4e38, -3.4e38, 3.0, -7.25, 1e30,
                                 8388609.0, 0.49999997, 16777217.0, -0.25, 4.5, -1e-45,
                                 1.17549435e-38, 2.5e-39, 1.00390625, 1.01171875, 65535.5};
  static const double dedge[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 0.5, 1.5, 2.5, -0.5,
                                 -2.5, 4.9e-324, -1e-310, 1.7e308, -1.7e308, 1e300, 3.0,
                                 4503599627370497.0, 0.49999999999999994, -7.25, 1e-30,
                                 3.4028235677973366e38, 1.401298464324817e-45};
  for (int64_t i = 0; i < b->n_elems; i++) {
    double d = 0;
    int64_t iv = 0;
    uint64_t r = rnd(&st);
    if (!strcmp(mode, "out")) {
      memset((char *)p + i * (bits / 8), 0xA5, (size_t)(bits / 8));
      continue;
    } else if (!strcmp(mode, "edge")) {
      if (s == KF_BF16) {
        static const uint16_t hedge[] = {0x7fc0, 0x7f80, 0xff80, 0x0000, 0x8000, 0x3f80, 0xbf80,
                                         0x0001, 0x4049, 0x7f7f, 0xff7f, 0x7fa0, 0x3f00};
        iv = i < 13 ? hedge[i] : (int64_t)(r & 0xffff);
        if (i >= 13 && ((iv & 0x7f80) == 0x7f80 || (iv & 0x7f80) == 0)) iv ^= 0x4000;
      } else if (isf) {
        const double *tab = s == KF_F32 ? fedge : dedge;
        int n = s == KF_F32 ? (int)(sizeof fedge / sizeof *fedge) : (int)(sizeof dedge / sizeof *dedge);
        if (i < n) d = tab[i];
        else if (i % 5 == 0) d = floor(unit(&st) * 64 - 32) + 0.5; /* ties */
        else d = (unit(&st) * 2 - 1) * pow(2, (double)(int)(r % 40) - 20);
      } else {
        int64_t ed[] = {lo, hi, -1, 0, 1, lo + 1, hi - 1, 2, (int64_t)(r & 0x5555555555555555ULL)};
        if (i < 9) iv = ed[i];
        else iv = (int64_t)r;
        if (!sg && iv < 0 && bits == 64) iv = -iv;
      }
    } else if (!strcmp(mode, "edgend")) { /* bf16 specials without denormals, then k * 2^e */
      static const uint16_t hedge[] = {0x7fc0, 0x7f80, 0xff80, 0x0000, 0x8000, 0x3f80, 0xbf80,
                                       0x4049, 0x7f7f, 0xff7f, 0x3f00};
      float x = (float)ldexp((double)((int64_t)(r % 33) - 16), (int)((r >> 8) % 9) - 4);
      iv = i < 11 ? hedge[i] : bf16_of(x);
    } else if (!strcmp(mode, "small")) {
      d = (double)(int64_t)(r % 101) - 50;
      iv = sg ? (int64_t)(r % 101) - 50 : (int64_t)(r % 51);
    } else if (!strcmp(mode, "nz")) {
      iv = (int64_t)(r % 9) + 1;
      if (sg && (r >> 20) % 2) iv = -iv - 1; /* -2..-10: never -1 */
      if (!sg && i % 7 == 0) iv = hi;
    } else if (!strcmp(mode, "cnt")) {
      iv = (int64_t)(r % (uint64_t)bits);
      if (i < 2) iv = i ? bits - 1 : 0;
    } else if (!strcmp(mode, "rng")) {
      d = (unit(&st) * 2 - 1) * 127.9;
      if (i < 4) d = (double[]){-127.99, 127.99, -0.7, 0.7}[i];
    } else if (!strcmp(mode, "pos")) {
      d = unit(&st) * 255.99;
      if (i < 2) d = i ? 255.99 : 0.0;
    } else if (!strcmp(mode, "big")) {
      d = unit(&st) * 4.2e9;
      if (i < 3) d = (double[]){4294967040.0, 2147483648.0, 2147483520.0}[i];
    } else if (!strcmp(mode, "wide")) {
      d = (unit(&st) * 2 - 1) * 1e9;
      if (i < 2) d = i ? 2147483647.9 : -2147483648.9;
    } else if (!strcmp(mode, "bfx")) {
      float x = (float)ldexp((double)((int64_t)(r % 33) - 16), (int)((r >> 8) % 5) - 2);
      iv = bf16_of(x);
    } else if (!strcmp(mode, "bfr")) {
      iv = bf16_of((float)(unit(&st) * 2 - 1));
    } else { /* unit and anything else */
      d = unit(&st) * 2 - 1;
      iv = (int64_t)r;
    }
    put_elem(s, p, i, d, iv);
  }
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }
static size_t buf_bytes(const kf_lir_buf *b) { return (size_t)b->n_elems * (size_t)(kf_scalar_bits(b->elem) / 8); }
static size_t map_bytes(size_t bytes) {
  size_t ps = page_size();
  return (bytes + ps - 1) / ps * ps;
}

void kf_lir_sample_inputs(int i, const kf_lir_func *f, void **args) {
  for (size_t k = 0; k < f->bufs.len; k++) {
    const kf_lir_buf *b = &f->bufs.data[k];
    if (b->kind == KF_BUF_LOCAL) continue;
    size_t bytes = buf_bytes(b), span = map_bytes(bytes);
    char *base = mmap(NULL, span + page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kf_assert(base != MAP_FAILED);
    mprotect(base + span, page_size(), PROT_NONE); /* guard page right after the data */
    char *p = base + span - bytes;
    fill(b, p, (uint64_t)i * 1000003u + k * 7919u + 17u);
    args[b->arg_index] = p;
  }
}

void kf_lir_sample_free_inputs(const kf_lir_func *f, void **args) {
  for (size_t k = 0; k < f->bufs.len; k++) {
    const kf_lir_buf *b = &f->bufs.data[k];
    if (b->kind == KF_BUF_LOCAL || !args[b->arg_index]) continue;
    size_t bytes = buf_bytes(b), span = map_bytes(bytes);
    munmap((char *)args[b->arg_index] - (span - bytes), span + page_size());
    args[b->arg_index] = NULL;
  }
}

/* ---- comparison ---- */

static double elem_d(kf_scalar s, const void *p, int64_t i) {
  switch (s) {
  case KF_F32: return ((const float *)p)[i];
  case KF_F64: return ((const double *)p)[i];
  case KF_BF16: {
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
  }
  default: return 0;
  }
}

static void elem_str(kf_scalar s, const void *p, int64_t i, char *out, size_t n) {
  int bytes = kf_scalar_bits(s) / 8;
  uint64_t u = 0;
  memcpy(&u, (const char *)p + i * bytes, (size_t)bytes);
  if (kf_scalar_is_float(s) || s == KF_BF16)
    snprintf(out, n, "%.9g (0x%0*llx)", elem_d(s, p, i), 2 * bytes, (unsigned long long)u);
  else if (kf_scalar_is_signed(s)) {
    int64_t v = (int64_t)(u << (64 - 8 * bytes)) >> (64 - 8 * bytes);
    snprintf(out, n, "%lld", (long long)v);
  } else
    snprintf(out, n, "%llu", (unsigned long long)u);
}

/* Bound for one output of dpbf16_dot: (2 * steps + 2) * 2^-24 * sum |x_k W_kn| + 2 FLT_MIN. */
static double dot_bound(const kf_lir_func *f, void **args, int64_t n) {
  const kf_lir_buf *x = &f->bufs.data[0], *w = &f->bufs.data[1];
  int64_t N = w->n_elems / DOT_K;
  double sum = 0;
  for (int64_t k = 0; k < DOT_K; k++) {
    /* packed pairs: W[(k/2) * 2N + 2n + k%2] */
    int64_t wi = (k / 2) * 2 * N + 2 * n + (k % 2);
    sum += fabs(elem_d(KF_BF16, args[x->arg_index], k) * elem_d(KF_BF16, args[w->arg_index], wi));
  }
  return (2.0 * (DOT_K / 2) + 2) * 0x1p-24 * sum + 2 * FLT_MIN;
}

int kf_lir_sample_compare(int i, const kf_lir_func *f, void **got, void **want, char *msg,
                          size_t msglen) {
  int tol = i >= 0 && i < N_SAMPLES ? samples[i].tol : TOL_EXACT;
  for (size_t k = 0; k < f->bufs.len; k++) {
    const kf_lir_buf *b = &f->bufs.data[k];
    if (b->kind == KF_BUF_LOCAL) continue;
    const void *g = got[b->arg_index], *w = want[b->arg_index];
    int bytes = kf_scalar_bits(b->elem) / 8;
    for (int64_t e = 0; e < b->n_elems; e++) {
      const char *gp = (const char *)g + e * bytes, *wp = (const char *)w + e * bytes;
      if (!memcmp(gp, wp, (size_t)bytes)) continue;
      double gd = elem_d(b->elem, g, e), wd = elem_d(b->elem, w, e);
      int fl = kf_scalar_is_float(b->elem) || b->elem == KF_BF16;
      if (fl && isnan(gd) && isnan(wd)) continue;
      char gs[64], ws[64];
      elem_str(b->elem, g, e, gs, sizeof gs);
      elem_str(b->elem, w, e, ws, sizeof ws);
      if (tol == TOL_DOT && fl) {
        int64_t n = e % (f->bufs.data[1].n_elems / DOT_K);
        double bound = dot_bound(f, want, n);
        if (b->elem == KF_BF16) bound += fabs(wd) * 0x1p-8; /* plus one bf16 rounding step */
        if (fabs(gd - wd) <= bound) continue;
        snprintf(msg, msglen, "%s[%lld]: got %s, want %s, |diff| %.3g > bound %.3g", b->name,
                 (long long)e, gs, ws, fabs(gd - wd), bound);
        return 1;
      }
      snprintf(msg, msglen, "%s[%lld]: got %s, want %s (exact comparison)", b->name, (long long)e,
               gs, ws);
      return 1;
    }
  }
  if (msglen) msg[0] = 0;
  return 0;
}

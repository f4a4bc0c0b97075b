/*
** test_lir_interp: the LIR interpreter (the emitters' oracle) on hand-computed values:
** integer wrap and shifts of negatives, RNE rounding ties, MIN/MAX with NaN and zeros,
** f32->bf16 (ties, NaN, denormals, overflow), float->int truncation, DPBUSD int32 wrap,
** DPBF16 order, REDUCE_MAX fold, bitcasts, LOADN/STOREN, loops; then its errors: out of
** bounds (naming buffer and index), bad counts, division by zero, out-of-range conversion,
** unverifiable LIR. Finally every sample kernel runs through it without error.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lir_interp.h"
#include "lir_samples.h"

static int n_fail;

static void check(int ok, const char *what, const char *detail) {
  printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail && *detail ? ": " : "", detail ? detail : "");
  if (!ok) n_fail++;
}

#define TY kf_ty_of
static kf_lir_expr *I64(kf_lir_func *f, int64_t v) { return kf_lc_i64(f, v); }

/* f with one input buffer "in" (s_in x n_in) and one output "out" (s_out x n_out). */
static kf_lir_func *mk(const char *name, kf_scalar s_in, int64_t n_in, kf_scalar s_out, int64_t n_out) {
  kf_lir_func *f = kf_lir_func_new(name);
  kf_lir_buf_add(f, "in", s_in, n_in, KF_BUF_IN);
  kf_lir_buf_add(f, "out", s_out, n_out, KF_BUF_OUT);
  return f;
}

static int run(kf_lir_func *f, void *in, void *out, kf_ctx *ctx) {
  void *args[2] = {in, out};
  char ws[256];
  return kf_lir_interp_run(ctx, f, args, 0, f->par_total, ws);
}

static uint32_t fbits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}

static void test_int_ops(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  /* i8: 100 + 100 = -56; 100 * 3 = 44; -128 neg = -128; abs(-128) = -128; -7 >> 1 = -4;
  ** 0x41 << 1 = -126; u8 0xF0 >> 4 = 0x0F (as i8 pattern via bitcast-free u8 op below) */
  kf_lir_func *f = mk("int_ops", KF_I8, 4, KF_I8, 8);
  kf_lir_expr *x = kf_lload(f, TY(KF_I8, 1), 0, I64(f, 0)), *y = kf_lload(f, TY(KF_I8, 1), 0, I64(f, 1));
  kf_lir_expr *m = kf_lload(f, TY(KF_I8, 1), 0, I64(f, 2)), *s = kf_lload(f, TY(KF_I8, 1), 0, I64(f, 3));
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lbin(f, KF_L_ADD, x, x));
  kf_lstore(f, &f->body, 1, I64(f, 1), kf_lbin(f, KF_L_MUL, x, kf_lc_i(f, TY(KF_I8, 1), 3)));
  kf_lstore(f, &f->body, 1, I64(f, 2), kf_lop(f, KF_L_NEG, TY(KF_I8, 1), m, NULL, NULL));
  kf_lstore(f, &f->body, 1, I64(f, 3), kf_lop(f, KF_L_ABS, TY(KF_I8, 1), m, NULL, NULL));
  kf_lstore(f, &f->body, 1, I64(f, 4), kf_lbin(f, KF_L_SHR, y, kf_lc_i(f, TY(KF_I8, 1), 1)));
  kf_lstore(f, &f->body, 1, I64(f, 5), kf_lbin(f, KF_L_SHL, s, kf_lc_i(f, TY(KF_I8, 1), 1)));
  kf_lstore(f, &f->body, 1, I64(f, 6), kf_lbin(f, KF_L_DIV, y, kf_lc_i(f, TY(KF_I8, 1), 2))); /* -7/2 = -3 */
  kf_lstore(f, &f->body, 1, I64(f, 7), kf_lbin(f, KF_L_MIN, y, x));
  int8_t in[4] = {100, -7, -128, 0x41}, out[8] = {0};
  int rc = run(f, in, out, &ctx);
  int8_t want[8] = {-56, 44, -128, -128, -4, -126, -3, -7};
  char msg[200];
  snprintf(msg, sizeof msg, "got %d %d %d %d %d %d %d %d", out[0], out[1], out[2], out[3], out[4],
           out[5], out[6], out[7]);
  check(rc == 0 && !memcmp(out, want, 8), "i8 wrap, neg/abs of -128, arithmetic shr, shl, div", msg);
  kf_lir_func_free(f);

  /* u8 logical shift and u32 wrap, x4 vectors */
  f = mk("uint_ops", KF_U32, 4, KF_U32, 8);
  kf_lir_expr *v = kf_lload(f, TY(KF_U32, 4), 0, I64(f, 0));
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lbin(f, KF_L_SHR, v, kf_lbcast(f, 4, kf_lc_i(f, TY(KF_U32, 1), 28))));
  kf_lstore(f, &f->body, 1, I64(f, 4), kf_lbin(f, KF_L_SUB, kf_lbcast(f, 4, kf_lc_i(f, TY(KF_U32, 1), 1)), v));
  uint32_t uin[4] = {0xF0000000u, 1, 0, 0xFFFFFFFFu}, uout[8];
  rc = run(f, uin, uout, &ctx);
  uint32_t uwant[8] = {15, 0, 0, 15, 0x10000001u, 0, 1, 2};
  check(rc == 0 && !memcmp(uout, uwant, sizeof uwant), "u32x4 logical shr, sub wraps", "");
  kf_lir_func_free(f);
}

static void test_float_ops(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  float in[8] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -0.0f, NAN, 1.0f};
  /* round: 0, 2, 2, -0, -2, -0, NaN, 1; floor: 0, 1, 2, -1, -3, -0, NaN, 1 */
  kf_lir_func *f = mk("round_floor", KF_F32, 8, KF_F32, 16);
  kf_lir_expr *v = kf_lload(f, TY(KF_F32, 8), 0, I64(f, 0));
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lop(f, KF_L_ROUND, v->ty, v, NULL, NULL));
  kf_lstore(f, &f->body, 1, I64(f, 8), kf_lop(f, KF_L_FLOOR, v->ty, v, NULL, NULL));
  float out[16];
  int rc = run(f, in, out, &ctx);
  float want[16] = {0, 2, 2, -0.0f, -2, -0.0f, NAN, 1, 0, 1, 2, -1, -3, -0.0f, NAN, 1};
  int ok = rc == 0;
  for (int i = 0; i < 16; i++)
    ok &= isnan(want[i]) ? isnan(out[i]) : fbits(out[i]) == fbits(want[i]);
  check(ok, "round ties to even (keeps -0), floor", "");
  kf_lir_func_free(f);

  /* MIN/MAX = select: min(NaN,1)=1, min(1,NaN)=NaN, min(-0,+0)=+0, max(+0,-0)=-0 */
  float mi[8] = {NAN, 1, -0.0f, 0.0f, 1, NAN, 0.0f, -0.0f}, mo[8];
  f = mk("minmax", KF_F32, 8, KF_F32, 8);
  kf_lir_expr *a = kf_lload(f, TY(KF_F32, 4), 0, I64(f, 0)), *b = kf_lload(f, TY(KF_F32, 4), 0, I64(f, 4));
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lbin(f, KF_L_MIN, a, b));
  kf_lstore(f, &f->body, 1, I64(f, 4), kf_lbin(f, KF_L_MAX, a, b));
  rc = run(f, mi, mo, &ctx);
  /* min(NaN,1)=1, min(1,NaN)=NaN, min(-0,0)=0, min(0,-0)=-0, max same pattern */
  ok = rc == 0 && mo[0] == 1 && isnan(mo[1]) && fbits(mo[2]) == 0 && fbits(mo[3]) == 0x80000000u &&
       mo[4] == 1 && isnan(mo[5]) && fbits(mo[6]) == 0 && fbits(mo[7]) == 0x80000000u;
  check(ok, "min/max: b when either is NaN or both are zero", "");
  kf_lir_func_free(f);

  /* REDUCE_MAX left fold: {1, NaN, 3, 2} -> 3; {NaN, 1, 2, 0} -> 2; {1, 2, 0, NaN} -> NaN */
  float ri[12] = {1, NAN, 3, 2, NAN, 1, 2, 0, 1, 2, 0, NAN}, ro[3];
  f = mk("reduce_max", KF_F32, 12, KF_F32, 3);
  for (int k = 0; k < 3; k++)
    kf_lstore(f, &f->body, 1, I64(f, k),
              kf_lop(f, KF_L_REDUCE_MAX, TY(KF_F32, 1), kf_lload(f, TY(KF_F32, 4), 0, I64(f, 4 * k)), NULL, NULL));
  rc = run(f, ri, ro, &ctx);
  check(rc == 0 && ro[0] == 3 && ro[1] == 2 && isnan(ro[2]), "reduce_max is the left fold of max", "");
  kf_lir_func_free(f);

  /* FMA is fused: (1 + 2^-23) * (1 - 2^-23) - 1 = -2^-46 exactly; mul+add gives 0 */
  float fi[3] = {1.0f + 0x1p-23f, 1.0f - 0x1p-23f, -1.0f}, fo[2];
  f = mk("fma", KF_F32, 3, KF_F32, 2);
  kf_lir_expr *p = kf_lload(f, TY(KF_F32, 1), 0, I64(f, 0)), *q = kf_lload(f, TY(KF_F32, 1), 0, I64(f, 1));
  kf_lir_expr *r = kf_lload(f, TY(KF_F32, 1), 0, I64(f, 2));
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lop(f, KF_L_FMA, p->ty, p, q, r));
  kf_lstore(f, &f->body, 1, I64(f, 1), kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, p, q), r));
  rc = run(f, fi, fo, &ctx);
  check(rc == 0 && fo[0] == -0x1p-46f && fo[1] == 0, "fma single rounding vs mul+add", "");
  kf_lir_func_free(f);
}

static void test_cvt(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  /* f32 -> bf16: 1+2^-8 (tie, even) -> 0x3F80; 1+3*2^-8 (tie, odd) -> 0x3F82; 0x7FA00000
  ** (signalling NaN) -> 0x7FE0; denormal -> +0; -denormal -> -0; Inf -> 0x7F80;
  ** FLT_MAX -> Inf (0x7F80); 1.00390625+2^-20 -> 0x3F81 */
  uint32_t bits[8] = {0x3F808000u, 0x3F818000u, 0x7FA00000u, 0x00000001u, 0x80400000u,
                      0x7F800000u, 0x7F7FFFFFu, 0x3F808010u};
  uint16_t want[8] = {0x3F80, 0x3F82, 0x7FE0, 0x0000, 0x8000, 0x7F80, 0x7F80, 0x3F81}, out[8];
  kf_lir_func *f = mk("to_bf16", KF_F32, 8, KF_BF16, 8);
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lcvt(f, TY(KF_BF16, 8), kf_lload(f, TY(KF_F32, 8), 0, I64(f, 0))));
  int rc = run(f, bits, out, &ctx);
  char msg[128];
  snprintf(msg, sizeof msg, "got %04x %04x %04x %04x %04x %04x %04x %04x", out[0], out[1], out[2],
           out[3], out[4], out[5], out[6], out[7]);
  check(rc == 0 && !memcmp(out, want, sizeof want), "f32->bf16: RNE ties, NaN quieted, denormals to 0", msg);
  kf_lir_func_free(f);

  /* float -> int truncates; int -> int wraps/extends by source signedness */
  float fi[4] = {-2.7f, 2.7f, -0.5f, 127.9f};
  int32_t io[4];
  f = mk("trunc", KF_F32, 4, KF_I32, 4);
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lcvt(f, TY(KF_I32, 4), kf_lload(f, TY(KF_F32, 4), 0, I64(f, 0))));
  rc = run(f, fi, io, &ctx);
  check(rc == 0 && io[0] == -2 && io[1] == 2 && io[2] == 0 && io[3] == 127, "f32->i32 truncates", "");
  kf_lir_func_free(f);

  int32_t ii[2] = {300, -1};
  uint8_t bo[2];
  uint32_t wo[2];
  f = kf_lir_func_new("int_cvt");
  kf_lir_buf_add(f, "in", KF_I32, 2, KF_BUF_IN);
  kf_lir_buf_add(f, "o8", KF_U8, 2, KF_BUF_OUT);
  kf_lir_buf_add(f, "o32", KF_U32, 2, KF_BUF_OUT);
  kf_lir_expr *v = kf_lload(f, TY(KF_I32, 2), 0, I64(f, 0));
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lcvt(f, TY(KF_U8, 2), v));
  kf_lstore(f, &f->body, 2, I64(f, 0), kf_lcvt(f, TY(KF_U32, 2), kf_lcvt(f, TY(KF_I8, 2), v)));
  void *args[3] = {ii, bo, wo};
  rc = kf_lir_interp_run(&ctx, f, args, 0, 1, NULL);
  check(rc == 0 && bo[0] == 44 && bo[1] == 255 && wo[0] == 44 && wo[1] == 0xFFFFFFFFu,
        "i32->u8 wraps, i8->u32 sign-extends", "");
  kf_lir_func_free(f);

  /* bitcasts: f32 1.0 -> 0x3F800000; u8x4 {1,2,3,4} -> 0x04030201 */
  uint8_t bytes[8] = {0, 0, 0x80, 0x3F, 1, 2, 3, 4};
  int32_t bc[2];
  f = mk("bitcast", KF_U8, 8, KF_I32, 2);
  kf_lstore(f, &f->body, 1, I64(f, 0),
            kf_lbitcast(f, TY(KF_I32, 2), kf_lload(f, TY(KF_U8, 8), 0, I64(f, 0))));
  rc = run(f, bytes, bc, &ctx);
  check(rc == 0 && bc[0] == 0x3F800000 && bc[1] == 0x04030201, "bitcast u8x8 -> i32x2 (little-endian)", "");
  kf_lir_func_free(f);
}

static void test_dot(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  /* DPBUSD: acc INT32_MAX + 4*255*127 wraps to INT32_MIN + 129539; acc 0 with all -128 ->
  ** -130560 */
  kf_lir_func *f = kf_lir_func_new("dpbusd");
  kf_lir_buf_add(f, "acc", KF_I32, 2, KF_BUF_IN);
  kf_lir_buf_add(f, "a", KF_U8, 8, KF_BUF_IN);
  kf_lir_buf_add(f, "b", KF_I8, 8, KF_BUF_IN);
  kf_lir_buf_add(f, "out", KF_I32, 2, KF_BUF_OUT);
  kf_lstore(f, &f->body, 3, I64(f, 0),
            kf_lop(f, KF_L_DPBUSD, TY(KF_I32, 2), kf_lload(f, TY(KF_I32, 2), 0, I64(f, 0)),
                   kf_lload(f, TY(KF_U8, 8), 1, I64(f, 0)), kf_lload(f, TY(KF_I8, 8), 2, I64(f, 0))));
  int32_t acc[2] = {INT32_MAX, 0}, out[2];
  uint8_t a[8] = {255, 255, 255, 255, 255, 255, 255, 255};
  int8_t b[8] = {127, 127, 127, 127, -128, -128, -128, -128};
  void *args[4] = {acc, a, b, out};
  int rc = kf_lir_interp_run(&ctx, f, args, 0, 1, NULL);
  check(rc == 0 && out[0] == INT32_MIN + 129539 && out[1] == -130560, "dpbusd exact with int32 wrap", "");
  kf_lir_func_free(f);

  /* DPBF16: 1 + 3*5 + 2*4 = 24; order: (2^24 + 1) rounds to 2^24, then + 1 -> 2^24 */
  f = kf_lir_func_new("dpbf16");
  kf_lir_buf_add(f, "acc", KF_F32, 2, KF_BUF_IN);
  kf_lir_buf_add(f, "a", KF_BF16, 4, KF_BUF_IN);
  kf_lir_buf_add(f, "b", KF_BF16, 4, KF_BUF_IN);
  kf_lir_buf_add(f, "out", KF_F32, 2, KF_BUF_OUT);
  kf_lstore(f, &f->body, 3, I64(f, 0),
            kf_lop(f, KF_L_DPBF16, TY(KF_F32, 2), kf_lload(f, TY(KF_F32, 2), 0, I64(f, 0)),
                   kf_lload(f, TY(KF_BF16, 4), 1, I64(f, 0)), kf_lload(f, TY(KF_BF16, 4), 2, I64(f, 0))));
  float facc[2] = {1, 16777216.0f}, fout[2];
  uint16_t ha[4] = {0x4000, 0x4040, 0x3F80, 0x3F80}; /* 2, 3, 1, 1 */
  uint16_t hb[4] = {0x4080, 0x40A0, 0x3F80, 0x3F80}; /* 4, 5, 1, 1 */
  void *args2[4] = {facc, ha, hb, fout};
  rc = kf_lir_interp_run(&ctx, f, args2, 0, 1, NULL);
  check(rc == 0 && fout[0] == 24 && fout[1] == 16777216.0f, "dpbf16 sum and vdpbf16ps order", "");
  kf_lir_func_free(f);
}

static void test_memory_and_loops(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  /* LOADN n=2 of 4: lanes 2,3 zero; STOREN n=3 writes 3 of 4; a zero-trip loop, a loop whose
  ** hi changes inside (evaluated once) and the parallel range */
  kf_lir_func *f = mk("mem_loops", KF_I32, 4, KF_I32, 16);
  f->par_total = 5;
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lloadn(f, TY(KF_I32, 4), 0, I64(f, 2), I64(f, 2)));
  kf_lstoren(f, &f->body, 1, I64(f, 4), kf_lload(f, TY(KF_I32, 4), 0, I64(f, 0)), I64(f, 3));
  int i = kf_lir_var_add(f, "i", TY(KF_I64, 1)), n = kf_lir_var_add(f, "n", TY(KF_I64, 1));
  int cnt = kf_lir_var_add(f, "cnt", TY(KF_I32, 1));
  kf_lassign(f, &f->body, cnt, kf_lc_i(f, TY(KF_I32, 1), 0));
  kf_lir_stmt *z = kf_lfor(f, &f->body, i, I64(f, 3), I64(f, 3), 1);
  kf_lassign(f, &z->body, cnt, kf_lc_i(f, TY(KF_I32, 1), 99));
  kf_lassign(f, &f->body, n, I64(f, 2));
  kf_lir_stmt *l = kf_lfor(f, &f->body, i, I64(f, 0), kf_lv(f, n), 1);
  kf_lassign(f, &l->body, n, kf_lbin(f, KF_L_ADD, kf_lv(f, n), I64(f, 1)));
  kf_lassign(f, &l->body, cnt, kf_lbin(f, KF_L_ADD, kf_lv(f, cnt), kf_lc_i(f, TY(KF_I32, 1), 1)));
  kf_lstore(f, &f->body, 1, I64(f, 8), kf_lv(f, cnt));
  kf_lir_stmt *pl = kf_lfor(f, &f->body, i, kf_lv(f, f->par_lo_var), kf_lv(f, f->par_hi_var), 1);
  kf_lstore(f, &pl->body, 1, kf_lbin(f, KF_L_ADD, kf_lv(f, i), I64(f, 9)),
            kf_lcvt(f, TY(KF_I32, 1), kf_lbin(f, KF_L_MUL, kf_lv(f, i), kf_lv(f, i))));
  int32_t in[4] = {10, 20, 30, 40}, out[16];
  for (int k = 0; k < 16; k++) out[k] = -1;
  void *args[2] = {in, out};
  int rc = kf_lir_interp_run(&ctx, f, args, 1, 4, NULL); /* parallel range [1, 4) */
  int32_t want[16] = {30, 40, 0, 0, 10, 20, 30, -1, 2, -1, 1, 4, 9, -1, -1, -1};
  char msg[200] = "";
  for (int k = 0; k < 16; k++) snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "%d ", out[k]);
  check(rc == 0 && !memcmp(out, want, sizeof want), "loadn zeroes, storen n lanes, loops, par range", msg);
  kf_lir_func_free(f);
}

static void expect_error(kf_lir_func *f, void **args, const char *needle, const char *what) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  char ws[64];
  int rc = kf_lir_interp_run(&ctx, f, args, 0, 1, ws);
  check(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), needle), what, kf_errmsg(&ctx));
  kf_lir_func_free(f);
}

static void test_errors(void) {
  int32_t in[4] = {1, 2, 0, 3}, out[4];
  void *args[2] = {in, out};
  kf_lir_func *f = mk("oob_load", KF_I32, 4, KF_I32, 4);
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lload(f, TY(KF_I32, 4), 0, I64(f, 1)));
  expect_error(f, args, "index 1 of buffer in", "load past the end names buffer and index");

  f = mk("oob_store", KF_I32, 4, KF_I32, 4);
  kf_lstore(f, &f->body, 1, I64(f, -1), kf_lc_i(f, TY(KF_I32, 1), 0));
  expect_error(f, args, "index -1 of buffer out", "store before the start");

  f = mk("bad_storen", KF_I32, 4, KF_I32, 4);
  kf_lstoren(f, &f->body, 1, I64(f, 0), kf_lload(f, TY(KF_I32, 4), 0, I64(f, 0)), I64(f, 5));
  expect_error(f, args, "count 5", "storen count > lanes");

  f = mk("storen_tail", KF_I32, 4, KF_I32, 4);
  kf_lstoren(f, &f->body, 1, I64(f, 2), kf_lload(f, TY(KF_I32, 4), 0, I64(f, 0)), I64(f, 3));
  expect_error(f, args, "index 2 of buffer out", "storen of 3 at index 2 of 4 elements");

  f = mk("div0", KF_I32, 4, KF_I32, 4);
  kf_lstore(f, &f->body, 1, I64(f, 0),
            kf_lbin(f, KF_L_DIV, kf_lload(f, TY(KF_I32, 4), 0, I64(f, 0)), kf_lload(f, TY(KF_I32, 4), 0, I64(f, 0))));
  expect_error(f, args, "division by zero", "integer division by zero");

  f = mk("shift", KF_I32, 4, KF_I32, 4);
  kf_lstore(f, &f->body, 1, I64(f, 0),
            kf_lbin(f, KF_L_SHL, kf_lc_i(f, TY(KF_I32, 1), 1), kf_lc_i(f, TY(KF_I32, 1), 32)));
  expect_error(f, args, "shift count 32", "shift count >= bits");

  float big[1] = {3e9f};
  void *fargs[2] = {big, out};
  f = mk("range", KF_F32, 1, KF_I32, 1);
  kf_lstore(f, &f->body, 1, I64(f, 0), kf_lcvt(f, TY(KF_I32, 1), kf_lload(f, TY(KF_F32, 1), 0, I64(f, 0))));
  expect_error(f, fargs, "out of range", "f32 -> i32 out of range");

  f = mk("unverified", KF_I32, 4, KF_I32, 4);
  kf_lstore(f, &f->body, 0, I64(f, 0), kf_lc_i(f, TY(KF_I32, 1), 0));
  expect_error(f, args, "input buffer in", "LIR that fails verification");
}

static void test_samples(void) {
  for (int i = 0; i < kf_lir_sample_count(); i++) {
    kf_ctx ctx;
    kf_ctx_init(&ctx);
    kf_lir_func *f = kf_lir_sample_build(i, 16);
    void **a = calloc((size_t)f->n_args + 1, sizeof *a), **b = calloc((size_t)f->n_args + 1, sizeof *b);
    kf_lir_sample_inputs(i, f, a);
    kf_lir_sample_inputs(i, f, b);
    void *ws = aligned_alloc(64, (size_t)(f->ws_bytes + 64) / 64 * 64);
    int rc = kf_lir_interp_run(&ctx, f, a, 0, f->par_total, ws);
    char msg[512] = "";
    /* a run in two pieces of the parallel range gives the same result */
    int rc2 = kf_lir_interp_run(&ctx, f, b, 0, f->par_total / 2, ws);
    if (!rc2) rc2 = kf_lir_interp_run(&ctx, f, b, f->par_total / 2, f->par_total, ws);
    int diff = !rc && !rc2 && kf_lir_sample_compare(i, f, b, a, msg, sizeof msg);
    char what[128];
    snprintf(what, sizeof what, "sample %s runs (whole and split range agree)", kf_lir_sample_name(i));
    check(!rc && !rc2 && !diff, what, rc || rc2 ? kf_errmsg(&ctx) : msg);
    free(ws);
    kf_lir_sample_free_inputs(f, a);
    kf_lir_sample_free_inputs(f, b);
    free(a);
    free(b);
    kf_lir_func_free(f);
  }
}

int main(void) {
  test_int_ops();
  test_float_ops();
  test_cvt();
  test_dot();
  test_memory_and_loops();
  test_errors();
  test_samples();
  printf("%s: %d failure(s)\n", n_fail ? "FAILED" : "PASSED", n_fail);
  return n_fail != 0;
}

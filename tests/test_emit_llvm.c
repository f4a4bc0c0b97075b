/*
** test_emit_llvm.c: the LLVM emitter (targets/cpu/emit_llvm.c) against the LIR interpreter.
**
** For every CPU target: JIT every LIR sample (tests/support/lir_samples.h) and a few
** kernels built here, run them over the whole parallel range and in two pieces, and compare
** with kf_lir_interp_run. Targets this machine cannot run are still compiled to .ll, .s and
** .o (that must work), and reported as skipped for running. Then: the .ll has the
** function; DPBUSD / DPBF16 / CVT->bf16 become vpdpbusd / vdpbf16ps / vcvtneps2bf16 in the
** .s of the VNNI+BF16 target and not in cpu-generic's; and the failure paths (invalid LIR,
** bad kernel name, unwritable path, object as text) return errors with messages.
*/
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lir_interp.h"
#include "kf_check.h"
#include "lir_samples.h"
#include "target.h"

static int n_fail; /* main thread only; workers count into their job */


/* CHECK into a job's log (worker threads): appends the line, counts a failure. */
#define LOG_CHECK(log, fails, cond, ...)                                                    \
  do {                                                                                      \
    int ok_ = (cond);                                                                       \
    kf_str_puts(log, ok_ ? "ok   " : "FAIL ");                                              \
    if (!ok_) (*(fails))++;                                                                 \
    kf_str_printf(log, __VA_ARGS__);                                                        \
    kf_str_puts(log, "\n");                                                                 \
  } while (0)

/* ---- kernels built here (specific instruction checks and failure paths) ---- */

/* dot[j] = sum_k u8 a[k] * s8 w[k] over K in DPBUSD steps, acc lanes = lanes; the
** accumulator starts from the input bias so int32 wrap is reachable. */
static kf_lir_func *build_dpbusd(int lanes, int k_steps) {
  kf_lir_func *f = kf_lir_func_new("t_dpbusd");
  int n8 = 4 * lanes;
  int a = kf_lir_buf_add(f, "a", KF_U8, (int64_t)n8 * k_steps, KF_BUF_IN);
  int w = kf_lir_buf_add(f, "w", KF_I8, (int64_t)n8 * k_steps, KF_BUF_IN);
  int bias = kf_lir_buf_add(f, "bias", KF_I32, lanes, KF_BUF_IN);
  int out = kf_lir_buf_add(f, "out", KF_I32, lanes, KF_BUF_OUT);
  kf_ty acc_ty = kf_ty_of(KF_I32, lanes);
  int acc = kf_lir_var_add(f, "acc", acc_ty);
  int k = kf_lir_var_add(f, "k", kf_ty_of(KF_I64, 1));
  kf_lassign(f, &f->body, acc, kf_lload(f, acc_ty, bias, kf_lc_i64(f, 0)));
  kf_lir_stmt *loop = kf_lfor(f, &f->body, k, kf_lc_i64(f, 0), kf_lc_i64(f, k_steps), 1);
  kf_lir_expr *off = kf_lbin(f, KF_L_MUL, kf_lv(f, k), kf_lc_i64(f, n8));
  kf_lassign(f, &loop->body, acc,
             kf_lop(f, KF_L_DPBUSD, acc_ty, kf_lv(f, acc),
                    kf_lload(f, kf_ty_of(KF_U8, n8), a, off),
                    kf_lload(f, kf_ty_of(KF_I8, n8), w, off)));
  kf_lstore(f, &f->body, out, kf_lc_i64(f, 0), kf_lv(f, acc));
  return f;
}

/* out[i] = dpbf16(acc, x, y) per 2*lanes bf16 pair, and the bf16 rounding of out. */
static kf_lir_func *build_dpbf16(int lanes) {
  kf_lir_func *f = kf_lir_func_new("t_dpbf16");
  int x = kf_lir_buf_add(f, "x", KF_BF16, 2 * lanes, KF_BUF_IN);
  int y = kf_lir_buf_add(f, "y", KF_BF16, 2 * lanes, KF_BUF_IN);
  int out = kf_lir_buf_add(f, "out", KF_F32, lanes, KF_BUF_OUT);
  int outb = kf_lir_buf_add(f, "out_bf16", KF_BF16, lanes, KF_BUF_OUT);
  kf_ty fty = kf_ty_of(KF_F32, lanes), bty = kf_ty_of(KF_BF16, 2 * lanes);
  int v = kf_lir_var_add(f, "v", fty);
  kf_lassign(f, &f->body, v,
             kf_lop(f, KF_L_DPBF16, fty, kf_lbcast(f, lanes, kf_lc_f(f, kf_ty_of(KF_F32, 1), 0.25)),
                    kf_lload(f, bty, x, kf_lc_i64(f, 0)), kf_lload(f, bty, y, kf_lc_i64(f, 0))));
  kf_lstore(f, &f->body, out, kf_lc_i64(f, 0), kf_lv(f, v));
  kf_lstore(f, &f->body, outb, kf_lc_i64(f, 0), kf_lcvt(f, kf_ty_of(KF_BF16, lanes), kf_lv(f, v)));
  return f;
}

/* y[r][i] = fma(alpha, x[r][i], y[r][i]) for rows r of the parallel range, vector main
** loop plus a LOADN/STOREN tail; then rowmax[r] = REDUCE_MAX over the row's vectors. */
static kf_lir_func *build_axpy(int lanes, int rows, int cols) {
  kf_lir_func *f = kf_lir_func_new("t_axpy");
  f->par_total = rows;
  int x = kf_lir_buf_add(f, "x", KF_F32, (int64_t)rows * cols, KF_BUF_IN);
  int y = kf_lir_buf_add(f, "y", KF_F32, (int64_t)rows * cols, KF_BUF_OUT);
  int rmax = kf_lir_buf_add(f, "rowmax", KF_F32, rows, KF_BUF_OUT);
  int tmp = kf_lir_buf_add(f, "tmp", KF_F32, cols + lanes, KF_BUF_LOCAL);
  kf_ty vt = kf_ty_of(KF_F32, lanes), st = kf_ty_of(KF_F32, 1);
  int r = kf_lir_var_add(f, "r", kf_ty_of(KF_I64, 1));
  int i = kf_lir_var_add(f, "i", kf_ty_of(KF_I64, 1));
  int m = kf_lir_var_add(f, "m", st);
  kf_lir_stmt *rl = kf_lfor(f, &f->body, r, kf_lv(f, f->par_lo_var), kf_lv(f, f->par_hi_var), 1);
  kf_lir_expr *alpha = kf_lbcast(f, lanes, kf_lc_f(f, st, -1.5));
  int64_t main_end = cols / lanes * lanes;
  kf_lir_stmt *il = kf_lfor(f, &rl->body, i, kf_lc_i64(f, 0), kf_lc_i64(f, main_end), lanes);
  kf_lir_expr *at = kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, r), kf_lc_i64(f, cols)),
                            kf_lv(f, i));
  kf_lir_expr *val = kf_lop(f, KF_L_FMA, vt, alpha, kf_lload(f, vt, x, at), kf_lload(f, vt, y, at));
  kf_lstore(f, &il->body, y, at, val);
  kf_lstore(f, &il->body, tmp, kf_lv(f, i), val);
  if (main_end < cols) {
    kf_lir_expr *n = kf_lc_i64(f, cols - main_end);
    kf_lir_expr *tat = kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, r), kf_lc_i64(f, cols)),
                               kf_lc_i64(f, main_end));
    kf_lir_expr *tv = kf_lop(f, KF_L_FMA, vt, alpha, kf_lloadn(f, vt, x, tat, n),
                             kf_lloadn(f, vt, y, tat, n));
    kf_lstoren(f, &rl->body, y, tat, tv, n);
    /* pad the tail of tmp with -inf so the max ignores the missing lanes */
    kf_lstore(f, &rl->body, tmp, kf_lc_i64(f, main_end),
              kf_lbcast(f, lanes, kf_lc_f(f, st, -INFINITY)));
    kf_lstoren(f, &rl->body, tmp, kf_lc_i64(f, main_end), tv, n);
  }
  kf_lassign(f, &rl->body, m, kf_lc_f(f, st, -INFINITY));
  kf_lir_stmt *ml = kf_lfor(f, &rl->body, i, kf_lc_i64(f, 0), kf_lc_i64(f, cols), lanes);
  kf_lassign(f, &ml->body, m,
             kf_lbin(f, KF_L_MAX, kf_lv(f, m),
                     kf_lop(f, KF_L_REDUCE_MAX, st, kf_lload(f, vt, tmp, kf_lv(f, i)), NULL, NULL)));
  kf_lstore(f, &rl->body, rmax, kf_lv(f, r), kf_lv(f, m));
  return f;
}

/* Random expression kernels: out_f[i..] = F(x, y, ix), out_i[i..] = I(x, y, ix) over a
** loop of vectors, where F and I are random trees over f32 / i32 lanes built only from
** operations that are defined for every input (shift counts masked, float->int clamped
** first, sqrt of |x|, NaN replaced before a bitcast to int since its sign and payload are
** unspecified), so the interpreter never refuses and every lane is comparable.
** Inputs hold NaN, +-Inf, -0, denormals, rounding ties and huge values. */
static uint64_t fz_state;
static int fz(int n) {
  fz_state ^= fz_state << 13;
  fz_state ^= fz_state >> 7;
  fz_state ^= fz_state << 17;
  return (int)(fz_state % (uint64_t)n);
}

typedef struct fz_ctx {
  kf_lir_func *f;
  int lanes, x, y, ix, i;
} fz_ctx;

static kf_lir_expr *fz_f32(fz_ctx *z, int depth);

static kf_lir_expr *fz_i32(fz_ctx *z, int depth) {
  kf_lir_func *f = z->f;
  kf_ty it = kf_ty_of(KF_I32, z->lanes), ft = kf_ty_of(KF_F32, z->lanes);
  if (depth <= 0 || fz(4) == 0) {
    if (fz(3) == 0) return kf_lbcast(f, z->lanes, kf_lc_i(f, kf_ty_of(KF_I32, 1), fz(2) ? -7 : 0x7fffffff));
    return kf_lload(f, it, z->ix, kf_lv(f, z->i));
  }
  kf_lir_expr *a = fz_i32(z, depth - 1);
  switch (fz(9)) {
  case 0: return kf_lbin(f, KF_L_ADD, a, fz_i32(z, depth - 1));
  case 1: return kf_lbin(f, KF_L_MUL, a, fz_i32(z, depth - 1));
  case 2: return kf_lbin(f, fz(2) ? KF_L_MIN : KF_L_MAX, a, fz_i32(z, depth - 1));
  case 3: return kf_lbin(f, fz(2) ? KF_L_XOR : KF_L_AND, a, fz_i32(z, depth - 1));
  case 4: { /* shift by (b & 31) */
    kf_lir_expr *cnt = kf_lbin(f, KF_L_AND, fz_i32(z, depth - 1),
                               kf_lbcast(f, z->lanes, kf_lc_i(f, kf_ty_of(KF_I32, 1), 31)));
    return kf_lbin(f, fz(2) ? KF_L_SHL : KF_L_SHR, a, cnt);
  }
  case 5: return kf_lop(f, fz(2) ? KF_L_NEG : KF_L_ABS, it, a, NULL, NULL);
  case 6: { /* clamp to +-2^30 (NaN -> the bound: MIN/MAX return b) then truncate */
    kf_lir_expr *v = fz_f32(z, depth - 1);
    v = kf_lbin(f, KF_L_MIN, v, kf_lbcast(f, z->lanes, kf_lc_f(f, kf_ty_of(KF_F32, 1), 1073741824.0)));
    v = kf_lbin(f, KF_L_MAX, v, kf_lbcast(f, z->lanes, kf_lc_f(f, kf_ty_of(KF_F32, 1), -1073741824.0)));
    return kf_lcvt(f, it, v);
  }
  case 7: { /* NaN sign and payload are unspecified: make NaN lanes 1.0 before the bitcast */
    kf_lir_expr *v = fz_f32(z, depth - 1);
    v = kf_lop(f, KF_L_SELECT, ft, kf_lbin(f, KF_L_NE, v, v),
               kf_lbcast(f, z->lanes, kf_lc_f(f, kf_ty_of(KF_F32, 1), 1.0)), v);
    return kf_lbitcast(f, it, v);
  }
  default: {
    static const kf_lir_op cmp[4] = {KF_L_LT, KF_L_LE, KF_L_EQ, KF_L_NE};
    kf_lir_expr *c = fz(2) ? kf_lbin(f, cmp[fz(4)], fz_f32(z, depth - 1), fz_f32(z, depth - 1))
                           : kf_lbin(f, cmp[fz(4)], a, fz_i32(z, depth - 1));
    return kf_lop(f, KF_L_SELECT, it, c, a, fz_i32(z, depth - 1));
  }
  }
}

static kf_lir_expr *fz_f32(fz_ctx *z, int depth) {
  kf_lir_func *f = z->f;
  kf_ty ft = kf_ty_of(KF_F32, z->lanes);
  if (depth <= 0 || fz(4) == 0) {
    int k = fz(5);
    if (k == 0) return kf_lbcast(f, z->lanes, kf_lc_f(f, kf_ty_of(KF_F32, 1), fz(2) ? 0.5 : -3.0));
    return kf_lload(f, ft, k % 2 ? z->x : z->y, kf_lv(f, z->i));
  }
  kf_lir_expr *a = fz_f32(z, depth - 1);
  switch (fz(11)) {
  case 0: return kf_lbin(f, fz(2) ? KF_L_ADD : KF_L_SUB, a, fz_f32(z, depth - 1));
  case 1: return kf_lbin(f, fz(2) ? KF_L_MUL : KF_L_DIV, a, fz_f32(z, depth - 1));
  case 2: return kf_lbin(f, fz(2) ? KF_L_MIN : KF_L_MAX, a, fz_f32(z, depth - 1));
  case 3: return kf_lop(f, KF_L_FMA, ft, a, fz_f32(z, depth - 1), fz_f32(z, depth - 1));
  case 4: return kf_lop(f, fz(2) ? KF_L_ROUND : KF_L_FLOOR, ft, a, NULL, NULL);
  case 5: return kf_lop(f, KF_L_SQRT, ft, kf_lop(f, KF_L_ABS, ft, a, NULL, NULL), NULL, NULL);
  case 6: return kf_lop(f, KF_L_NEG, ft, a, NULL, NULL);
  case 7: return kf_lcvt(f, ft, kf_lcvt(f, kf_ty_of(KF_BF16, z->lanes), a)); /* bf16 round trip */
  case 8: return kf_lcvt(f, ft, fz_i32(z, depth - 1));
  case 9: return kf_lbcast(f, z->lanes, kf_lop(f, KF_L_REDUCE_MAX, kf_ty_of(KF_F32, 1), a, NULL, NULL));
  default: {
    kf_lir_expr *c = kf_lbin(f, fz(2) ? KF_L_LT : KF_L_NE, a, fz_f32(z, depth - 1));
    return kf_lop(f, KF_L_SELECT, ft, c, a, fz_f32(z, depth - 1));
  }
  }
}

static kf_lir_func *build_fuzz(int seed, int lanes) {
  fz_state = 0x2545f4914f6cdd1dull * (uint64_t)(seed + 1);
  char name[32];
  snprintf(name, sizeof name, "t_fuzz%d", seed);
  kf_lir_func *f = kf_lir_func_new(name);
  int n = 4 * lanes;
  fz_ctx z = {f, lanes, 0, 0, 0, 0};
  z.x = kf_lir_buf_add(f, "x", KF_F32, n, KF_BUF_IN);
  z.y = kf_lir_buf_add(f, "y", KF_F32, n, KF_BUF_IN);
  z.ix = kf_lir_buf_add(f, "ix", KF_I32, n, KF_BUF_IN);
  int of = kf_lir_buf_add(f, "out_f", KF_F32, n, KF_BUF_OUT);
  int oi = kf_lir_buf_add(f, "out_i", KF_I32, n, KF_BUF_OUT);
  z.i = kf_lir_var_add(f, "i", kf_ty_of(KF_I64, 1));
  kf_lir_stmt *loop = kf_lfor(f, &f->body, z.i, kf_lc_i64(f, 0), kf_lc_i64(f, n), lanes);
  kf_lstore(f, &loop->body, of, kf_lv(f, z.i), fz_f32(&z, 5));
  kf_lstore(f, &loop->body, oi, kf_lv(f, z.i), fz_i32(&z, 5));
  return f;
}

static const uint32_t fuzz_specials[] = {
    0x7fc00000, 0xffc00001, 0x7f800000, 0xff800000, 0x80000000, 0x00000000, 0x00000001,
    0x807fffff, 0x00800000, 0x3f800000, 0xbf000000, 0x3fc00000, 0x40200000, 0x4b000001,
    0x3f808000, 0x3f818000, 0x7f7fffff, 0xcf000000, 0x3f80c000, 0x3effffff};

static void fuzz_inputs(const kf_lir_func *f, void **args) {
  uint64_t st = 0x1234567;
  for (int a = 0; a < f->n_args; a++) {
    const kf_lir_buf *b = &f->bufs.data[a];
    uint32_t *p = malloc((size_t)b->n_elems * 4);
    for (int64_t j = 0; j < b->n_elems; j++) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      uint32_t r = (uint32_t)(st >> 32);
      if (b->kind == KF_BUF_OUT) p[j] = 0xA5A5A5A5u;
      else if (b->elem == KF_I32) p[j] = r % 3 ? r % 200 - 100 : r;
      else if (r % 2 == 0) p[j] = fuzz_specials[(r >> 8) % (sizeof fuzz_specials / 4)];
      else {
        float v = (float)((int)(r % 2001) - 1000) / 64.0f;
        memcpy(&p[j], &v, 4);
      }
    }
    args[a] = p;
  }
}

/* ---- harness ---- */

static uint64_t rng(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

static size_t elem_bytes(kf_scalar s) { return s == KF_BOOL ? 1 : (size_t)kf_scalar_bits(s) / 8; }

/* Inputs for the kernels built here: random bits for integers, floats in [-4, 4) with some
** specials, bf16 from such floats. Outputs: a sentinel pattern. */
static void make_inputs(const kf_lir_func *f, void **a, void **b) {
  if (!strncmp(f->name, "t_fuzz", 6)) {
    fuzz_inputs(f, a);
    fuzz_inputs(f, b);
    return;
  }
  uint64_t st = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < f->bufs.len; i++) {
    const kf_lir_buf *bd = &f->bufs.data[i];
    if (bd->kind == KF_BUF_LOCAL) continue;
    size_t n = (size_t)bd->n_elems, es = elem_bytes(bd->elem);
    unsigned char *p = malloc(n * es + 1);
    for (size_t j = 0; j < n; j++) {
      if (bd->kind == KF_BUF_OUT && bd->elem != KF_F32) {
        memset(p + j * es, 0xA5, es);
        continue;
      }
      if (bd->elem == KF_F32 || bd->elem == KF_BF16) {
        float v = (float)((double)(rng(&st) >> 11) / 9007199254740992.0 * 8.0 - 4.0);
        if (j % 17 == 5) v = -0.0f;
        if (bd->elem == KF_F32) memcpy(p + j * es, &v, 4);
        else {
          uint32_t u;
          memcpy(&u, &v, 4);
          uint16_t h = (uint16_t)(u >> 16);
          memcpy(p + j * es, &h, 2);
        }
      } else {
        uint64_t r = rng(&st);
        memcpy(p + j * es, &r, es);
      }
    }
    a[bd->arg_index] = p;
    b[bd->arg_index] = malloc(n * es + 1);
    memcpy(b[bd->arg_index], p, n * es);
  }
}

/* Bitwise comparison, except NaN == NaN. */
static int compare_outputs(const kf_lir_func *f, void **got, void **want, char *msg, size_t len) {
  for (size_t i = 0; i < f->bufs.len; i++) {
    const kf_lir_buf *bd = &f->bufs.data[i];
    if (bd->kind != KF_BUF_OUT) continue;
    size_t es = elem_bytes(bd->elem);
    const unsigned char *g = got[bd->arg_index], *w = want[bd->arg_index];
    for (int64_t j = 0; j < bd->n_elems; j++) {
      if (!memcmp(g + j * es, w + j * es, es)) continue;
      if (bd->elem == KF_F32) {
        float x, y;
        memcpy(&x, g + j * es, 4);
        memcpy(&y, w + j * es, 4);
        if (isnan(x) && isnan(y)) continue;
        snprintf(msg, len, "%s[%lld]: got %.9g want %.9g", bd->name, (long long)j, x, y);
      } else {
        uint64_t x = 0, y = 0;
        memcpy(&x, g + j * es, es);
        memcpy(&y, w + j * es, es);
        snprintf(msg, len, "%s[%lld]: got 0x%llx want 0x%llx", bd->name, (long long)j,
                 (unsigned long long)x, (unsigned long long)y);
      }
      return 1;
    }
  }
  return 0;
}

static void *ws_alloc(const kf_lir_func *f) {
  size_t n = (size_t)(f->ws_bytes > 64 ? f->ws_bytes : 64);
  return aligned_alloc(64, (n + 63) / 64 * 64);
}

/* JIT f for t, run it whole and in two pieces, compare each with the interpreter.
** sample >= 0: inputs and comparison from lir_samples; -1: the local harness. */
static int run_one(const kf_target *t, kf_lir_func *f, int sample, const char *label,
                   kf_str *log) {
  int fails = 0;
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_loaded k;
  double t0 = kf_now();
  int rc = kf_llvm_jit(&ctx, f, t, &k);
  double jit_ms = 1e3 * (kf_now() - t0);
  if (rc) {
    LOG_CHECK(log, &fails, 0, "%s %s: JIT: %s", t->name, label, kf_errmsg(&ctx));
    return fails;
  }
  int64_t cuts[2] = {f->par_total, f->par_total / 2};
  for (int pass = 0; pass < (f->par_total > 1 ? 2 : 1); pass++) {
    void **want = calloc((size_t)f->n_args + 1, sizeof *want);
    void **got = calloc((size_t)f->n_args + 1, sizeof *got);
    if (sample >= 0) {
      kf_lir_sample_inputs(sample, f, want);
      kf_lir_sample_inputs(sample, f, got);
    } else {
      make_inputs(f, want, got);
    }
    void *ws = ws_alloc(f);
    rc = kf_lir_interp_run(&ctx, f, want, 0, f->par_total, ws);
    if (rc) {
      LOG_CHECK(log, &fails, 0, "%s %s: interpreter: %s", t->name, label, kf_errmsg(&ctx));
    } else {
      int64_t cut = cuts[pass];
      k.fn(got, 0, cut, ws);
      if (cut < f->par_total) k.fn(got, cut, f->par_total, ws);
      char msg[512] = "";
      int bad = sample >= 0 ? kf_lir_sample_compare(sample, f, got, want, msg, sizeof msg)
                            : compare_outputs(f, got, want, msg, sizeof msg);
      if (bad && sample < 0 && pass == 0) { /* kernels built here are small: show them */
        kf_str text = {0};
        kf_lir_print(f, &text);
        kf_str_puts(log, text.data);
        kf_str_free(&text);
      }
      if (pass == 0)
        LOG_CHECK(log, &fails, !bad, "%s %s: JIT (%.0f ms) == interpreter%s%s", t->name, label, jit_ms,
              bad ? ": " : "", msg);
      else
        LOG_CHECK(log, &fails, !bad, "%s %s: split at %lld == interpreter%s%s", t->name, label, (long long)cut,
              bad ? ": " : "", msg);
    }
    free(ws);
    if (sample >= 0) {
      kf_lir_sample_free_inputs(f, want);
      kf_lir_sample_free_inputs(f, got);
    } else {
      for (int i = 0; i < f->n_args; i++) {
        free(want[i]);
        free(got[i]);
      }
    }
    free(want);
    free(got);
  }
  kf_loaded_release(&k);
  return fails;
}

/* .ll / .s / .o for a target that cannot run here: emission must still work. */
static int emit_only(const kf_target *t, kf_lir_func *f, const char *label, const char *dir,
                     kf_str *log) {
  int fails = 0;
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  static const char *const ext[3] = {"ll", "s", "o"};
  for (int kind = 0; kind < 3; kind++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.%s", dir, t->name, f->name, ext[kind]);
    int rc = kf_llvm_emit_file(&ctx, f, t, (kf_llvm_file)kind, path);
    FILE *fp = rc ? NULL : fopen(path, "rb");
    long size = 0;
    if (fp) {
      fseek(fp, 0, SEEK_END);
      size = ftell(fp);
      fclose(fp);
    }
    LOG_CHECK(log, &fails, !rc && size > 0, "%s %s: emit .%s (%ld bytes)%s%s", t->name, label, ext[kind], size,
          rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
    unlink(path);
  }
  return fails;
}

static int asm_has(const kf_target *t, kf_lir_func *f, const char *needle, kf_str *text) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  text->len = 0;
  if (text->data) text->data[0] = 0;
  if (kf_llvm_emit_string(&ctx, f, t, KF_LLVM_ASM, text)) {
    printf("     (asm for %s failed: %s)\n", t->name, kf_errmsg(&ctx));
    return -1;
  }
  return strstr(text->data, needle) != NULL;
}

static void instruction_checks(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_target vnni, generic, avx2vnni;
  kf_assert(!kf_target_get(&ctx, "cpu-avx512-vnni", &vnni));
  kf_assert(!kf_target_get(&ctx, "cpu-generic", &generic));
  kf_assert(!kf_target_get(&ctx, "cpu-avx2-vnni", &avx2vnni));
  kf_str s = {0};
  kf_lir_func *d16 = build_dpbusd(16, 3), *d8 = build_dpbusd(8, 3), *bf = build_dpbf16(16);
  CHECK(asm_has(&vnni, d16, "vpdpbusd", &s) == 1, "cpu-avx512-vnni .s of DPBUSD x16 has vpdpbusd");
  CHECK(strstr(s.data, "zmm") != NULL, "cpu-avx512-vnni .s of DPBUSD x16 uses zmm registers");
  CHECK(asm_has(&generic, d16, "vpdpbusd", &s) == 0,
        "cpu-generic .s of DPBUSD x16 has no vpdpbusd (generic IR: pmaddwd/paddd)");
  CHECK(asm_has(&avx2vnni, d8, "vpdpbusd", &s) == 1 && strstr(s.data, "{vex}") &&
            !strstr(s.data, "zmm"),
        "cpu-avx2-vnni .s of DPBUSD x8 has the AVX-VNNI form ({vex} vpdpbusd on ymm)");
  CHECK(asm_has(&vnni, bf, "vdpbf16ps", &s) == 1, "cpu-avx512-vnni .s of DPBF16 x16 has vdpbf16ps");
  CHECK(strstr(s.data, "vcvtneps2bf16") != NULL,
        "cpu-avx512-vnni .s of CVT f32->bf16 x16 has vcvtneps2bf16");
  CHECK(asm_has(&generic, bf, "vdpbf16ps", &s) == 0, "cpu-generic .s of DPBF16 has no vdpbf16ps");

  /* .ll: the kernel with the uniform signature, loop metadata on a vector loop */
  kf_str ll = {0};
  int rc = kf_llvm_emit_string(&ctx, d16, &vnni, KF_LLVM_LL, &ll);
  CHECK(!rc && strstr(ll.data, "define void @t_dpbusd(ptr noalias nocapture readonly %args, i64 "
                               "%par_lo, i64 %par_hi, ptr noalias nocapture "),
        ".ll defines void @t_dpbusd(ptr args, i64 par_lo, i64 par_hi, ptr ws)%s%s",
        rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
  CHECK(!rc && strstr(ll.data, "\"target-cpu\"=\"znver4\""), ".ll carries target-cpu znver4");
  kf_str_free(&ll);
  kf_lir_func *ax = build_axpy(16, 3, 37);
  rc = kf_llvm_emit_string(&ctx, ax, &generic, KF_LLVM_LL, &ll);
  CHECK(!rc && strstr(ll.data, "llvm.loop.vectorize.width"),
        ".ll of a vector loop has llvm.loop.vectorize.width metadata");
  CHECK(!rc && strstr(ll.data, "llvm.masked.store"), ".ll of STOREN uses llvm.masked.store");
  kf_str_free(&ll);
  kf_lir_func_free(ax);
  kf_str_free(&s);
  kf_lir_func_free(d16);
  kf_lir_func_free(d8);
  kf_lir_func_free(bf);
}

static void failure_checks(const char *dir) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_target t;
  kf_assert(!kf_target_get(&ctx, "cpu-generic", &t));
  kf_loaded k;
  kf_str s = {0};

  /* invalid LIR: add of i32 x 4 and f32 x 4 */
  kf_lir_func *bad = kf_lir_func_new("t_bad");
  int o = kf_lir_buf_add(bad, "o", KF_I32, 4, KF_BUF_OUT);
  kf_lir_expr *x = kf_lbcast(bad, 4, kf_lc_i(bad, kf_ty_of(KF_I32, 1), 1));
  kf_lir_expr *y = kf_lbcast(bad, 4, kf_lc_f(bad, kf_ty_of(KF_F32, 1), 1.0));
  kf_lstore(bad, &bad->body, o, kf_lc_i64(bad, 0), kf_lop(bad, KF_L_ADD, x->ty, x, y, NULL));
  int rc = kf_llvm_jit(&ctx, bad, &t, &k);
  CHECK(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "t_bad") && k.fn == NULL,
        "invalid LIR -> KF_EINVAL (%d): %s", rc, kf_errmsg(&ctx));
  rc = kf_llvm_emit_string(&ctx, bad, &t, KF_LLVM_LL, &s);
  CHECK(rc == KF_EINVAL && s.len == 0, "invalid LIR, .ll -> KF_EINVAL, no text: %s", kf_errmsg(&ctx));
  kf_lir_func_free(bad);

  /* reduction of bf16 passes the LIR verifier but has no meaning */
  bad = kf_lir_func_new("t_bad_reduce");
  o = kf_lir_buf_add(bad, "o", KF_BF16, 1, KF_BUF_OUT);
  int in = kf_lir_buf_add(bad, "in", KF_BF16, 8, KF_BUF_IN);
  kf_lstore(bad, &bad->body, o, kf_lc_i64(bad, 0),
            kf_lop(bad, KF_L_REDUCE_ADD, kf_ty_of(KF_BF16, 1),
                   kf_lload(bad, kf_ty_of(KF_BF16, 8), in, kf_lc_i64(bad, 0)), NULL, NULL));
  rc = kf_llvm_jit(&ctx, bad, &t, &k);
  CHECK(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "reduction of bf16"),
        "REDUCE_ADD of bf16 -> KF_EINVAL: %s", kf_errmsg(&ctx));
  kf_lir_func_free(bad);

  /* a kernel name that is no C identifier */
  bad = kf_lir_func_new("9 lives");
  rc = kf_llvm_emit_string(&ctx, bad, &t, KF_LLVM_ASM, &s);
  CHECK(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "9 lives"), "bad kernel name -> KF_EINVAL: %s",
        kf_errmsg(&ctx));
  kf_lir_func_free(bad);

  kf_lir_func *f = build_dpbusd(4, 1);
  char path[600];
  snprintf(path, sizeof path, "%s/no/such/dir/k.o", dir);
  rc = kf_llvm_emit_file(&ctx, f, &t, KF_LLVM_OBJ, path);
  CHECK(rc == KF_EIO && strstr(kf_errmsg(&ctx), "no/such/dir"),
        "unwritable output path -> KF_EIO: %s", kf_errmsg(&ctx));
  rc = kf_llvm_emit_string(&ctx, f, &t, KF_LLVM_OBJ, &s);
  CHECK(rc == KF_EINVAL, "object file as a string -> KF_EINVAL: %s", kf_errmsg(&ctx));
  kf_lir_func_free(f);
  kf_str_free(&s);
}

/* One (target, kernel) pair: JIT + run + compare, or emission only. Jobs run on two
** threads (this also exercises the emitter from several threads at once: it keeps no
** global mutable state); each job logs into its own buffer, printed in order. */
typedef struct job {
  kf_target t;
  kf_lir_func *f;
  int sample, runnable, fails;
  const char *label, *dir;
  kf_str log;
} job;

typedef struct job_queue {
  job *jobs;
  int n, next;
  pthread_mutex_t lock;
} job_queue;

static void *worker(void *arg) {
  job_queue *q = arg;
  for (;;) {
    pthread_mutex_lock(&q->lock);
    int i = q->next < q->n ? q->next++ : -1;
    pthread_mutex_unlock(&q->lock);
    if (i < 0) return NULL;
    job *j = &q->jobs[i];
    j->fails = j->runnable ? run_one(&j->t, j->f, j->sample, j->label, &j->log)
                           : emit_only(&j->t, j->f, j->label, j->dir, &j->log);
  }
}

int main(void) {
  char dir[] = "/tmp/kf_test_emit_llvm_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  double t0 = kf_now();
  int n_samples = kf_lir_sample_count();
  enum { N_FUZZ = 12, N_LOCAL = 3 + N_FUZZ };
  job_queue q = {0};
  q.jobs = calloc(8 * (size_t)(n_samples + N_LOCAL), sizeof *q.jobs);
  pthread_mutex_init(&q.lock, NULL);
  for (int ti = 0; kf_target_names[ti]; ti++) {
    if (!strcmp(kf_target_names[ti], "cpu-host")) continue;
    kf_ctx ctx;
    kf_ctx_init(&ctx);
    kf_target t;
    kf_assert(!kf_target_get(&ctx, kf_target_names[ti], &t));
    const char *why = NULL;
    int runnable = kf_target_runnable(&t, &why);
    if (!runnable) printf("skip %s: not runnable here (no %s): emission only\n", t.name, why);
    kf_lir_func *local[N_LOCAL] = {build_dpbusd(t.vl32, 5), build_dpbf16(t.vl32),
                                   build_axpy(t.vl32, 5, 2 * t.vl32 + 3)};
    for (int i = 0; i < N_FUZZ; i++) local[3 + i] = build_fuzz(i + 100 * ti, 1 << (i % 5 + 1));
    for (int i = 0; i < n_samples + N_LOCAL; i++) {
      job *j = &q.jobs[q.n++];
      j->t = t;
      j->runnable = runnable;
      j->dir = dir;
      j->sample = i < n_samples ? i : -1;
      j->f = i < n_samples ? kf_lir_sample_build(i, t.vl32) : local[i - n_samples];
      j->label = i < n_samples ? kf_lir_sample_name(i) : j->f->name;
    }
  }
  CHECK(n_samples > 0, "%d LIR samples, %d (target, kernel) jobs", n_samples, q.n);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) kf_assert(!pthread_create(&th[i], NULL, worker, &q));
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < q.n; i++) {
    fputs(q.jobs[i].log.data ? q.jobs[i].log.data : "", stdout);
    n_fail += q.jobs[i].fails;
    kf_str_free(&q.jobs[i].log);
    kf_lir_func_free(q.jobs[i].f);
  }
  free(q.jobs);
  pthread_mutex_destroy(&q.lock);
  printf("     (JIT + run of all jobs on 2 threads: %.1f s)\n", kf_now() - t0);
  instruction_checks();
  failure_checks(dir);
  rmdir(dir);
  printf("%s: %d failure(s), %.1f s\n", n_fail ? "FAIL" : "PASS", n_fail, kf_now() - t0);
  return n_fail != 0;
}

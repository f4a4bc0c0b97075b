/*
** emit_c.c: LIR -> C source (GNU C11) for one kernel.
**
** Shape of the output: a header comment (f->header, target), includes, one typedef per
** vector type used (GCC vector extensions: every LIR vector value is a C value of a
** vector type, so it lives in registers), a prelude of `static inline` helpers for the
** ops that plain C operators do not express (written with the target's intrinsics where
** they exist, portable lane code otherwise), then the kernel: argument and local buffers
** as typed pointers, every LIR variable declared at the top with its type, one C line per
** LIR statement.
**
** Semantics follow lir.h and the choices listed in gen/lir_interp.h (MIN/MAX select
** semantics, f32->bf16 with NaN quieting and denormals to zero, DPBF16 order, FOR bounds
** evaluated once). Integer arithmetic that may wrap is done on unsigned types so the C
** has no undefined behaviour. The generated code must be compiled with
** -ffp-contract=off (a*b+c must stay two roundings; GNU C's default contracts it) and
** -fno-math-errno (so sqrt is one instruction); kf_cc_load passes both, and the header
** comment says so.
**
** Bool vectors are 32-bit integer masks (lanes -1/0, the type of a comparison of 32-bit
** values); a comparison of other widths is converted, and a select narrows/widens the
** mask to its element width (directly from the comparison when widths already match).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "target.h"

typedef struct emit {
  kf_ctx *ctx;
  const kf_lir_func *f;
  const kf_target *t;
  kf_arena arena;
  kf_str types;   /* typedefs */
  kf_str helpers; /* static inline helpers, dependencies first */
  kf_str decls;   /* loop-end temporaries */
  KF_VEC(const char *) seen; /* names of emitted typedefs/helpers */
  const char **var_name, **buf_name;
  int n_ends;
  int rc;
} emit;

static void efail(emit *m, int code, const kf_lir_expr *e, const char *what) {
  if (m->rc) return;
  if (e)
    m->rc = kf_err(m->ctx, code, "C emitter, %s: %s x %d node: %s", m->f->name,
                   kf_scalar_name(e->ty.s), e->ty.lanes, what);
  else
    m->rc = kf_err(m->ctx, code, "C emitter, %s: %s", m->f->name, what);
}

static const char *fmt(emit *m, const char *f, ...) __attribute__((format(printf, 2, 3)));
static const char *fmt(emit *m, const char *f, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return kf_arena_strdup(&m->arena, buf);
}

/* Returns 1 the first time name is asked for (the caller then emits it). */
static int first_time(emit *m, const char *name) {
  for (size_t i = 0; i < m->seen.len; i++)
    if (!strcmp(m->seen.data[i], name)) return 0;
  kf_vec_push(&m->seen, kf_arena_strdup(&m->arena, name));
  return 1;
}

/* ---- types ---- */

static char kind_of(kf_scalar s) {
  if (kf_scalar_is_float(s)) return 'f';
  if (kf_scalar_is_signed(s) || s == KF_BOOL) return 'i';
  return 'u';
}
static int bits_of(kf_scalar s) { return s == KF_BOOL ? 32 : kf_scalar_bits(s); }

static const char *elem_c(char k, int bits) {
  if (k == 'f') return bits == 32 ? "float" : "double";
  static const char *const si[] = {"int8_t", "int16_t", "int32_t", "int64_t"};
  static const char *const ui[] = {"uint8_t", "uint16_t", "uint32_t", "uint64_t"};
  int i = bits == 8 ? 0 : bits == 16 ? 1 : bits == 32 ? 2 : 3;
  return k == 'i' ? si[i] : ui[i];
}

/* C type of k<bits> x lanes; registers the typedef of a vector type. */
static const char *vt(emit *m, char k, int bits, int lanes) {
  if (lanes == 1) return elem_c(k, bits);
  const char *name = fmt(m, "kf_%c%dx%d", k, bits, lanes);
  if (first_time(m, name)) {
    if (lanes & (lanes - 1)) efail(m, KF_EUNSUP, NULL, "vector lane counts must be powers of two");
    kf_str_printf(&m->types, "typedef %s %s __attribute__((vector_size(%d)));\n",
                  elem_c(k, bits), name, bits / 8 * lanes);
  }
  return name;
}

static const char *cty(emit *m, kf_ty ty) {
  if (ty.s == KF_BOOL && ty.lanes == 1) return "int";
  return vt(m, kind_of(ty.s), bits_of(ty.s), ty.lanes);
}
static const char *uty(emit *m, kf_ty ty) { return vt(m, 'u', bits_of(ty.s), ty.lanes); }
static const char *mty(emit *m, kf_ty ty) { return vt(m, 'i', bits_of(ty.s), ty.lanes); }
static const char *tyname(emit *m, kf_ty ty) {
  if (ty.lanes == 1) return kf_scalar_name(ty.s);
  return fmt(m, "%sx%d", kf_scalar_name(ty.s), ty.lanes);
}

/* ---- target intrinsics ---- */

/* Whether the target has vector instructions for registers of this many bytes. */
static int native(emit *m, int bytes) {
  if (m->t->isa == KF_ISA_AVX512) return bytes == 16 || bytes == 32 || bytes == 64;
  if (m->t->isa == KF_ISA_AVX2) return bytes == 16 || bytes == 32;
  return 0;
}
static int ty_bytes(kf_ty ty) { return bits_of(ty.s) / 8 * ty.lanes; }
static const char *ipfx(int bytes) { return bytes == 16 ? "_mm" : bytes == 32 ? "_mm256" : "_mm512"; }
static const char *ivec(char k, int bits, int bytes) {
  static const char *const ps[] = {"__m128", "__m256", "__m512"};
  static const char *const pd[] = {"__m128d", "__m256d", "__m512d"};
  static const char *const pi[] = {"__m128i", "__m256i", "__m512i"};
  int i = bytes == 16 ? 0 : bytes == 32 ? 1 : 2;
  return k == 'f' ? (bits == 32 ? ps[i] : pd[i]) : pi[i];
}
static const char *fsuf(kf_scalar s) { return s == KF_F32 ? "ps" : "pd"; }

/* ---- helpers (prelude) ---- */

static void helper_done(emit *m, kf_str *h) {
  kf_str_puts(&m->helpers, h->data);
  kf_str_free(h);
}

/* Unaligned vector load / store through memcpy (compiles to vmovdqu/vmovups). */
static const char *h_load(emit *m, kf_ty ty, int store) {
  const char *V = cty(m, ty), *E = elem_c(kind_of(ty.s), bits_of(ty.s));
  const char *name = fmt(m, "kf_%s_%s", store ? "store" : "load", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  if (store)
    kf_str_printf(&h, "KF_INLINE void %s(%s *p, %s v) { __builtin_memcpy(p, &v, sizeof v); }\n",
                  name, E, V);
  else
    kf_str_printf(&h,
                  "KF_INLINE %s %s(const %s *p) { %s v; __builtin_memcpy(&v, p, sizeof v); "
                  "return v; }\n",
                  V, name, E, V);
  helper_done(m, &h);
  return name;
}

/* LOADN / STOREN: masked instructions where the target has them (AVX-512: every element
** size, AVX2: 32/64-bit), else a copy of exactly n elements. */
static const char *h_loadn(emit *m, kf_ty ty, int store) {
  const char *V = cty(m, ty);
  char k = kind_of(ty.s);
  int bits = bits_of(ty.s), bytes = ty_bytes(ty), L = ty.lanes;
  const char *E = elem_c(k, bits);
  const char *name = fmt(m, "kf_%s_%s", store ? "storen" : "loadn", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  if (store)
    kf_str_printf(&h, "KF_INLINE void %s(%s *p, %s v, int64_t n) {\n", name, E, V);
  else
    kf_str_printf(&h, "KF_INLINE %s %s(const %s *p, int64_t n) {\n", V, name, E);
  const char *isuf = k == 'f' ? fsuf(ty.s) : fmt(m, "epi%d", bits);
  if (m->t->isa == KF_ISA_AVX512 && native(m, bytes)) {
    const char *mk = L <= 8 ? "__mmask8" : L <= 16 ? "__mmask16" : L <= 32 ? "__mmask32" : "__mmask64";
    kf_str_printf(&h, "  %s k = (%s)(n >= %d ? ~0ULL : (1ULL << n) - 1);\n", mk, mk, L);
    if (store)
      kf_str_printf(&h, "  %s_mask_storeu_%s(p, k, (%s)v);\n", ipfx(bytes), isuf, ivec(k, bits, bytes));
    else
      kf_str_printf(&h, "  return (%s)%s_maskz_loadu_%s(k, p);\n", V, ipfx(bytes), isuf);
  } else if (m->t->isa >= KF_ISA_AVX2 && native(m, bytes) && bits >= 32) {
    const char *M = vt(m, 'i', bits, L);
    kf_str_printf(&h, "  const %s lane = {", M);
    for (int i = 0; i < L; i++) kf_str_printf(&h, "%s%d", i ? ", " : "", i);
    kf_str_printf(&h, "};\n  %s k = (%s)(lane < (%s)n);\n", M, M, elem_c('i', bits));
    const char *ptr = k == 'f' ? E : bits == 32 ? "int" : "long long";
    const char *op = k == 'f' ? fsuf(ty.s) : fmt(m, "epi%d", bits);
    if (store)
      kf_str_printf(&h, "  %s_maskstore_%s((%s *)p, (%s)k, (%s)v);\n", ipfx(bytes), op, ptr,
                    ivec('i', 32, bytes), ivec(k, bits, bytes));
    else
      kf_str_printf(&h, "  return (%s)%s_maskload_%s((const %s *)p, (%s)k);\n", V, ipfx(bytes), op,
                    ptr, ivec('i', 32, bytes));
  } else if (store) {
    kf_str_printf(&h, "  __builtin_memcpy(p, &v, (size_t)n * sizeof(%s));\n", E);
  } else {
    kf_str_printf(&h, "  %s v = {0};\n  __builtin_memcpy(&v, p, (size_t)n * sizeof(%s));\n  return v;\n",
                  V, E);
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

/* MIN/MAX with select semantics: a OP b ? a : b (NaN or equal zeros give b). */
static const char *h_minmax(emit *m, kf_lir_op op, kf_ty ty) {
  const char *V = cty(m, ty), *lt = op == KF_L_MIN ? "<" : ">";
  const char *name = fmt(m, "kf_%s_%s", op == KF_L_MIN ? "min" : "max", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  int bytes = ty_bytes(ty);
  if (ty.lanes == 1) {
    kf_str_printf(&h, "KF_INLINE %s %s(%s a, %s b) { return a %s b ? a : b; }\n", V, name, V,
                  V, lt);
  } else if (kf_scalar_is_float(ty.s) && native(m, bytes)) {
    /* minps/maxps return the second operand on NaN or equal zeros: exactly a OP b ? a : b */
    const char *I = ivec('f', bits_of(ty.s), bytes);
    kf_str_printf(&h, "KF_INLINE %s %s(%s a, %s b) { return (%s)%s_%s_%s((%s)a, (%s)b); }\n",
                  V, name, V, V, V, ipfx(bytes), op == KF_L_MIN ? "min" : "max", fsuf(ty.s), I, I);
  } else {
    const char *M = mty(m, ty);
    kf_str_printf(&h,
                  "KF_INLINE %s %s(%s a, %s b) { %s k = (%s)(a %s b); "
                  "return (%s)(((%s)a & k) | ((%s)b & ~k)); }\n",
                  V, name, V, V, M, M, lt, V, M, M);
  }
  helper_done(m, &h);
  return name;
}

static const char *h_select(emit *m, kf_ty ty) {
  const char *V = cty(m, ty), *M = mty(m, ty);
  const char *name = fmt(m, "kf_select_%s", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h,
                "KF_INLINE %s %s(%s k, %s a, %s b) { return (%s)(((%s)a & k) | ((%s)b & ~k)); }\n",
                V, name, M, V, V, V, M, M);
  helper_done(m, &h);
  return name;
}

static const char *h_abs(emit *m, kf_ty ty) {
  const char *V = cty(m, ty), *U = uty(m, ty);
  const char *name = fmt(m, "kf_abs_%s", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  int bits = bits_of(ty.s);
  if (kf_scalar_is_float(ty.s) || ty.s == KF_BF16) {
    const char *mask = bits == 64 ? "0x7fffffffffffffffULL" : bits == 32 ? "0x7fffffffu" : "0x7fff";
    if (ty.lanes == 1)
      kf_str_printf(&h, "KF_INLINE %s %s(%s a) { %s u; __builtin_memcpy(&u, &a, sizeof u); u &= %s; "
                    "__builtin_memcpy(&a, &u, sizeof u); return a; }\n", V, name, V, U, mask);
    else
      kf_str_printf(&h, "KF_INLINE %s %s(%s a) { return (%s)((%s)a & (%s)%s); }\n", V, name, V, V,
                    U, elem_c('u', bits), mask);
  } else if (ty.lanes == 1) {
    kf_str_printf(&h, "KF_INLINE %s %s(%s a) { %s s = (%s)(a >> %d); return (%s)(((%s)a ^ s) - s); }\n",
                  V, name, V, U, U, bits - 1, V, U);
  } else {
    kf_str_printf(&h, "KF_INLINE %s %s(%s a) { %s s = (%s)(a >> %d); return (%s)(((%s)a ^ s) - s); }\n",
                  V, name, V, U, U, bits - 1, V, U);
  }
  helper_done(m, &h);
  return name;
}

/* Lane loop: r[i] = FN(a[i], ...) — the portable fallback of an elementwise op. */
static void lane_loop(kf_str *h, int lanes, const char *fn, int n_args) {
  kf_str_printf(h, "  for (int i = 0; i < %d; i++) r[i] = %s(a[i]%s%s);\n", lanes, fn,
                n_args > 1 ? ", b[i]" : "", n_args > 2 ? ", c[i]" : "");
}

/* SQRT / ROUND (nearest even) / FLOOR on float vectors. */
static const char *h_fun(emit *m, kf_lir_op op, kf_ty ty) {
  const char *V = cty(m, ty), *U = uty(m, ty), *M = mty(m, ty);
  const char *opn = op == KF_L_SQRT ? "sqrt" : op == KF_L_ROUND ? "round" : "floor";
  const char *name = fmt(m, "kf_%s_%s", opn, tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  int bytes = ty_bytes(ty), f32 = ty.s == KF_F32;
  const char *I = ivec('f', bits_of(ty.s), bytes), *fs = fsuf(ty.s);
  kf_str_printf(&h, "KF_INLINE %s %s(%s a) {\n", V, name, V);
  if (native(m, bytes)) {
    const char *mode = op == KF_L_ROUND ? "_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC"
                                        : "_MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC";
    if (op == KF_L_SQRT)
      kf_str_printf(&h, "  return (%s)%s_sqrt_%s((%s)a);\n", V, ipfx(bytes), fs, I);
    else if (bytes == 64)
      kf_str_printf(&h, "  return (%s)_mm512_roundscale_%s((%s)a, %s);\n", V, fs, I, mode);
    else
      kf_str_printf(&h, "  return (%s)%s_round_%s((%s)a, %s);\n", V, ipfx(bytes), fs, I, mode);
  } else if (op == KF_L_SQRT) {
    kf_str_printf(&h, "  %s r;\n", V);
    lane_loop(&h, ty.lanes, f32 ? "__builtin_sqrtf" : "__builtin_sqrt", 1);
    kf_str_puts(&h, "  return r;\n");
  } else {
    /* |a| < 2^p: (|a| + 2^p) - 2^p rounds to nearest even under the default rounding mode;
    ** the sign is put back (keeps -0); larger values, Inf and NaN are already integral. */
    const char *big = f32 ? "0x1p23f" : "0x1p52", *sign = f32 ? "0x80000000u" : "0x8000000000000000ULL";
    const char *UE = elem_c('u', bits_of(ty.s));
    kf_str_printf(&h, "  %s bits = (%s)a, sign = bits & (%s)%s;\n", U, U, UE, sign);
    kf_str_printf(&h, "  %s ax = (%s)(bits & ~sign);\n", V, V);
    kf_str_printf(&h, "  %s r = (%s)((%s)((ax + %s) - %s) | sign);\n", V, V, U, big, big);
    kf_str_printf(&h, "  %s small = (%s)(ax < %s);\n", M, M, big);
    kf_str_printf(&h, "  r = (%s)(((%s)r & (%s)small) | ((%s)a & ~(%s)small));\n", V, U, U, U, U);
    if (op == KF_L_FLOOR) {
      kf_str_printf(&h, "  %s above = (%s)(r > a);\n", M, M);
      kf_str_printf(&h, "  r = r - (%s)((%s)((%s){0} + 1) & (%s)above);\n", V, U, V, U);
    }
    kf_str_puts(&h, "  return r;\n");
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

static const char *h_fma(emit *m, kf_ty ty) {
  const char *V = cty(m, ty);
  const char *name = fmt(m, "kf_fma_%s", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  int bytes = ty_bytes(ty);
  kf_str_printf(&h, "KF_INLINE %s %s(%s a, %s b, %s c) {\n", V, name, V, V, V);
  if (native(m, bytes)) {
    const char *I = ivec('f', bits_of(ty.s), bytes);
    kf_str_printf(&h, "  return (%s)%s_fmadd_%s((%s)a, (%s)b, (%s)c);\n", V, ipfx(bytes),
                  fsuf(ty.s), I, I, I);
  } else {
    kf_str_printf(&h, "  %s r;\n", V);
    lane_loop(&h, ty.lanes, ty.s == KF_F32 ? "__builtin_fmaf" : "__builtin_fma", 3);
    kf_str_puts(&h, "  return r;\n");
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

static const char *h_bcast(emit *m, kf_ty ty) {
  const char *V = cty(m, ty), *E = cty(m, kf_ty_of(ty.s == KF_BOOL ? KF_I32 : ty.s, 1));
  const char *name = fmt(m, "kf_bcast_%s", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h, "KF_INLINE %s %s(%s s) { return (%s){", V, name, E, V);
  for (int i = 0; i < ty.lanes; i++) kf_str_puts(&h, i ? ", s" : "s");
  kf_str_puts(&h, "}; }\n");
  helper_done(m, &h);
  return name;
}

static const char *h_extract(emit *m, kf_ty ty) {
  const char *V = cty(m, ty);
  const char *E = ty.s == KF_BOOL ? "int" : cty(m, kf_ty_of(ty.s, 1));
  const char *name = fmt(m, "kf_extract_%s", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h, "KF_INLINE %s %s(%s v, int i) { return %sv[i]%s; }\n", E, name, V,
                ty.s == KF_BOOL ? "(" : "", ty.s == KF_BOOL ? " != 0)" : "");
  helper_done(m, &h);
  return name;
}

/* REDUCE_ADD: integers wrap (summed unsigned); floats summed in lane order.
** REDUCE_MAX: the left fold r = r > x ? r : x (lir_interp.h). */
static const char *h_reduce(emit *m, kf_lir_op op, kf_ty ty) {
  const char *V = cty(m, ty), *E = cty(m, kf_ty_of(ty.s, 1));
  const char *name = fmt(m, "kf_reduce_%s_%s", op == KF_L_REDUCE_ADD ? "add" : "max", tyname(m, ty));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h, "KF_INLINE %s %s(%s v) {\n", E, name, V);
  if (op == KF_L_REDUCE_MAX) {
    kf_str_printf(&h, "  %s r = v[0];\n  for (int i = 1; i < %d; i++) r = r > v[i] ? r : v[i];\n", E,
                  ty.lanes);
    kf_str_puts(&h, "  return r;\n");
  } else if (kf_scalar_is_float(ty.s)) {
    kf_str_printf(&h, "  %s r = v[0];\n  for (int i = 1; i < %d; i++) r += v[i];\n  return r;\n", E,
                  ty.lanes);
  } else {
    const char *UE = bits_of(ty.s) == 64 ? "uint64_t" : "uint32_t";
    kf_str_printf(&h, "  %s r = 0;\n  for (int i = 0; i < %d; i++) r += (%s)v[i];\n  return (%s)r;\n",
                  UE, ty.lanes, UE, E);
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

static const char *h_bitcast(emit *m, kf_ty from, kf_ty to) {
  const char *F = cty(m, from), *T = cty(m, to);
  const char *name = fmt(m, "kf_bitcast_%s_to_%s", tyname(m, from), tyname(m, to));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h, "KF_INLINE %s %s(%s a) { %s r; __builtin_memcpy(&r, &a, sizeof r); return r; }\n",
                T, name, F, T);
  helper_done(m, &h);
  return name;
}

/* f32 -> bf16: vcvtneps2bf16 where available (RNE, NaN quieted, denormals to zero), else
** the same rule on the bits. */
static const char *h_to_bf16(emit *m, int lanes) {
  kf_ty ft = kf_ty_of(KF_F32, lanes), bt = kf_ty_of(KF_BF16, lanes);
  const char *V = cty(m, ft), *B = cty(m, bt), *U = uty(m, ft), *M = mty(m, ft);
  const char *name = fmt(m, "kf_f32_to_bf16_%s", tyname(m, ft));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h, "KF_INLINE %s %s(%s a) {\n", B, name, V);
  if (m->t->has_bf16 && m->t->isa == KF_ISA_AVX512 && (lanes == 16 || lanes == 8)) {
    kf_str_printf(&h, "  return (%s)%s_cvtneps_pbh((%s)a);\n", B, lanes == 16 ? "_mm512" : "_mm256",
                  lanes == 16 ? "__m512" : "__m256");
  } else if (lanes == 1) {
    kf_str_puts(&h, "  uint32_t u;\n  __builtin_memcpy(&u, &a, 4);\n");
    kf_str_puts(&h, "  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);\n");
    kf_str_puts(&h, "  if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000);\n");
    kf_str_puts(&h, "  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);\n");
  } else {
    kf_str_printf(&h, "  %s u = (%s)a;\n", U, U);
    kf_str_printf(&h, "  %s r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;\n", U);
    kf_str_printf(&h, "  %s nan = (%s)((u & 0x7fffffffu) > 0x7f800000u);\n", U, U);
    kf_str_printf(&h, "  %s den = (%s)((u & 0x7f800000u) == 0);\n", U, U);
    kf_str_puts(&h, "  r = (r & ~nan) | (((u >> 16) | 0x40) & nan);\n");
    kf_str_puts(&h, "  r = (r & ~den) | ((u >> 16) & 0x8000 & den);\n");
    kf_str_printf(&h, "  return __builtin_convertvector(r, %s);\n", B);
    (void)M;
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

/* LUT16: lane i = table[idx[i] & 15]; vpshufb with the table in every 128-bit lane where
** the target has it, else a lane loop. */
static const char *h_lut16(emit *m, int L) {
  kf_ty it = kf_ty_of(KF_U8, L), tt = kf_ty_of(KF_U8, 16);
  const char *I = cty(m, it), *T = cty(m, tt);
  const char *name = fmt(m, "kf_lut16_%s", tyname(m, it));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  kf_str_printf(&h, "static inline %s %s(%s table, %s idx) {\n", I, name, T, I);
  kf_str_puts(&h, "  idx &= 15;\n");
  if (native(m, L) && (L == 64 || L == 32)) {
    if (L == 64)
      kf_str_printf(&h, "  return (%s)_mm512_shuffle_epi8(_mm512_broadcast_i32x4((__m128i)table), (__m512i)idx);\n", I);
    else
      kf_str_printf(&h, "  return (%s)_mm256_shuffle_epi8(_mm256_broadcastsi128_si256((__m128i)table), (__m256i)idx);\n", I);
  } else {
    kf_str_printf(&h, "  %s r;\n  for (int i = 0; i < %d; i++) r[i] = table[idx[i]];\n  return r;\n", I, L);
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

/* DPBUSD: lane i = acc[i] + sum_j u8(a[4i+j]) * i8(b[4i+j]), int32 wrap. */
static const char *h_dpbusd(emit *m, int L) {
  kf_ty it = kf_ty_of(KF_I32, L), at = kf_ty_of(KF_U8, 4 * L), bt = kf_ty_of(KF_I8, 4 * L);
  const char *I = cty(m, it), *A = cty(m, at), *B = cty(m, bt);
  const char *name = fmt(m, "kf_dpbusd_%s", tyname(m, it));
  if (!first_time(m, name)) return name;
  kf_str h = {0};
  int bytes = 4 * L;
  kf_str_printf(&h, "KF_INLINE %s %s(%s acc, %s a, %s b) {\n", I, name, I, A, B);
  if (L == 1) {
    kf_str_puts(&h, "  int32_t s = 0;\n  for (int j = 0; j < 4; j++) s += (int32_t)a[j] * (int32_t)b[j];\n");
    kf_str_puts(&h, "  return (int32_t)((uint32_t)acc + (uint32_t)s);\n");
  } else if (m->t->has_vnni && native(m, bytes) &&
             (m->t->isa == KF_ISA_AVX512 || bytes <= 32)) {
    const char *X = ivec('i', 32, bytes);
    kf_str_printf(&h, "  return (%s)%s_dpbusd_%sepi32((%s)acc, (%s)a, (%s)b);\n", I, ipfx(bytes),
                  m->t->isa == KF_ISA_AVX512 ? "" : "avx_", X, X, X);
  } else if (native(m, bytes) && (m->t->isa == KF_ISA_AVX512 || bytes <= 32)) {
    /* exact without VNNI: split the bytes of each 16-bit pair into even/odd i16 lanes
    ** (u8 zero-extended, i8 sign-extended), vpmaddwd each (sums of two products fit), add. */
    const char *S = vt(m, 'i', 16, 2 * L), *US = vt(m, 'u', 16, 2 * L), *X = ivec('i', 32, bytes);
    const char *U = vt(m, 'u', 32, L);
    kf_str_printf(&h, "  %s ua = (%s)a; %s sb = (%s)b;\n", US, US, S, S);
    kf_str_printf(&h, "  %s ae = (%s)(ua & 0xff), ao = (%s)(ua >> 8);\n", S, S, S);
    kf_str_printf(&h, "  %s be = (%s)((%s)b << 8) >> 8, bo = sb >> 8;\n", S, S, US);
    kf_str_printf(&h, "  %s pe = (%s)%s_madd_epi16((%s)ae, (%s)be);\n", I, I, ipfx(bytes), X, X);
    kf_str_printf(&h, "  %s po = (%s)%s_madd_epi16((%s)ao, (%s)bo);\n", I, I, ipfx(bytes), X, X);
    kf_str_printf(&h, "  return (%s)((%s)acc + (%s)pe + (%s)po);\n", I, U, U, U);
  } else {
    /* portable: byte k of each 32-bit lane, u8 zero-extended and i8 sign-extended */
    const char *U = vt(m, 'u', 32, L);
    kf_str_printf(&h, "  %s ua = (%s)a, ub = (%s)b, s = (%s)acc;\n", U, U, U, U);
    for (int k = 0; k < 4; k++)
      kf_str_printf(&h, "  s += (%s)((%s)((ua >> %d) & 0xff) * ((%s)(ub << %d) >> 24));\n", U, I,
                    8 * k, I, 24 - 8 * k);
    kf_str_printf(&h, "  return (%s)s;\n", I);
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

/* DPBF16: lane i = (acc[i] + a[2i+1]*b[2i+1]) + a[2i]*b[2i], products exact in f32. */
static const char *h_dpbf16(emit *m, int L) {
  kf_ty ft = kf_ty_of(KF_F32, L), bt = kf_ty_of(KF_BF16, 2 * L);
  const char *F = cty(m, ft), *B = cty(m, bt);
  const char *name = fmt(m, "kf_dpbf16_%s", tyname(m, ft));
  if (!first_time(m, name)) return name;
  const char *fma = L > 1 ? h_fma(m, ft) : "__builtin_fmaf";
  kf_str h = {0};
  int bytes = 4 * L;
  kf_str_printf(&h, "KF_INLINE %s %s(%s acc, %s a, %s b) {\n", F, name, F, B, B);
  if (m->t->has_bf16 && m->t->isa == KF_ISA_AVX512 && L > 1 && native(m, bytes)) {
    const char *P = ipfx(bytes);
    kf_str_printf(&h, "  return (%s)%s_dpbf16_ps((%s)acc, (%sbh)a, (%sbh)b);\n", F, P,
                  ivec('f', 32, bytes), ivec('f', 32, bytes), ivec('f', 32, bytes));
    /* __m512bh etc.: the intrinsic's bf16 vector types (cast from our u16 vectors) */
  } else {
    const char *U = vt(m, 'u', 32, L);
    if (L == 1)
      kf_str_puts(&h, "  uint32_t ua, ub;\n  __builtin_memcpy(&ua, &a, 4);\n  __builtin_memcpy(&ub, &b, 4);\n");
    else
      kf_str_printf(&h, "  %s ua = (%s)a, ub = (%s)b;\n", U, U, U);
    kf_str_printf(&h, "  %s ao, bo, ae, be;\n", F);
    kf_str_printf(&h, "  %s t;\n", U);
    kf_str_puts(&h, "  t = ua & 0xffff0000u; __builtin_memcpy(&ao, &t, sizeof t);\n");
    kf_str_puts(&h, "  t = ub & 0xffff0000u; __builtin_memcpy(&bo, &t, sizeof t);\n");
    kf_str_puts(&h, "  t = ua << 16; __builtin_memcpy(&ae, &t, sizeof t);\n");
    kf_str_puts(&h, "  t = ub << 16; __builtin_memcpy(&be, &t, sizeof t);\n");
    kf_str_printf(&h, "  return %s(ae, be, %s(ao, bo, acc));\n", fma, fma);
  }
  kf_str_puts(&h, "}\n");
  helper_done(m, &h);
  return name;
}

/* ---- expressions ---- */

static void ex(emit *m, const kf_lir_expr *e, kf_str *o);

/* Emits the bool vector e as a mask of `bits`-bit lanes. */
static void ex_mask(emit *m, const kf_lir_expr *e, int bits, kf_str *o) {
  int L = e->ty.lanes;
  if (e->op >= KF_L_LT && e->op <= KF_L_NE && bits_of(e->a[0]->ty.s) == bits &&
      e->a[0]->ty.s != KF_BOOL) {
    static const char *const cmp[] = {"<", "<=", "==", "!="};
    kf_str_printf(o, "((%s)(", vt(m, 'i', bits, L));
    ex(m, e->a[0], o);
    kf_str_printf(o, " %s ", cmp[e->op - KF_L_LT]);
    ex(m, e->a[1], o);
    kf_str_puts(o, "))");
    return;
  }
  if (bits == 32) {
    ex(m, e, o);
    return;
  }
  kf_str_puts(o, "__builtin_convertvector(");
  ex(m, e, o);
  kf_str_printf(o, ", %s)", vt(m, 'i', bits, L));
}

static void ex_const(emit *m, const kf_lir_expr *e, kf_str *o) {
  kf_scalar s = e->ty.s;
  if (kf_scalar_is_float(s)) {
    double v = s == KF_F32 ? (double)(float)e->fval : e->fval;
    const char *suf = s == KF_F32 ? "f" : "";
    if (isnan(v)) kf_str_printf(o, "__builtin_nan%s(\"\")", suf);
    else if (isinf(v)) kf_str_printf(o, "(%s__builtin_inf%s())", v < 0 ? "-" : "", suf);
    else kf_str_printf(o, "(%a%s)", v, suf);
    return;
  }
  if (s == KF_BOOL) {
    kf_str_puts(o, e->ival ? "1" : "0");
    return;
  }
  int64_t v = e->ival;
  switch (s) { /* the value the constant has in its type */
  case KF_I8: v = (int8_t)v; break;
  case KF_U8: v = (uint8_t)v; break;
  case KF_I16: v = (int16_t)v; break;
  case KF_U16: case KF_BF16: v = (uint16_t)v; break;
  case KF_I32: v = (int32_t)v; break;
  case KF_U32: v = (uint32_t)v; break;
  default: break;
  }
  /* i64 and i32 constants that fit an int are plain decimals (C converts them where they
  ** are used; every operator on them goes through a typed helper or cast) */
  if (v == INT64_MIN) kf_str_puts(o, "(-INT64_C(9223372036854775807) - 1)");
  else if ((s == KF_I64 || s == KF_I32) && v > INT32_MIN && v <= INT32_MAX)
    kf_str_printf(o, v < 0 ? "(%lld)" : "%lld", (long long)v);
  else if (s == KF_I32) kf_str_puts(o, "(-2147483647 - 1)");
  else if (s == KF_I64) kf_str_printf(o, "INT64_C(%lld)", (long long)v);
  else if (s == KF_U32) kf_str_printf(o, "%lluu", (unsigned long long)v);
  else kf_str_printf(o, "((%s)%lld)", cty(m, e->ty), (long long)v);
}

static void ex_args(emit *m, const kf_lir_expr *e, int n, kf_str *o) {
  kf_str_puts(o, "(");
  for (int i = 0; i < n; i++) {
    if (i) kf_str_puts(o, ", ");
    ex(m, e->a[i], o);
  }
  kf_str_puts(o, ")");
}

static void ex_call(emit *m, const char *fn, const kf_lir_expr *e, int n, kf_str *o) {
  kf_str_puts(o, fn);
  ex_args(m, e, n, o);
}

static void ex_ptr(emit *m, int buf, const kf_lir_expr *idx, kf_str *o) {
  kf_str_printf(o, "%s + ", m->buf_name[buf]);
  ex(m, idx, o);
}

static void ex_cvt(emit *m, const kf_lir_expr *e, kf_str *o) {
  kf_ty from = e->a[0]->ty, to = e->ty;
  int L = to.lanes;
  if (from.s == KF_BF16) { /* exact: the bf16 bits are the upper half of the f32 */
    if (L == 1) {
      kf_str_puts(o, h_bitcast(m, kf_ty_of(KF_U32, 1), kf_ty_of(KF_F32, 1)));
      kf_str_puts(o, "((uint32_t)");
      ex(m, e->a[0], o);
      kf_str_puts(o, " << 16)");
    } else {
      kf_str_printf(o, "((%s)(__builtin_convertvector(", cty(m, to));
      ex(m, e->a[0], o);
      kf_str_printf(o, ", %s) << 16))", vt(m, 'u', 32, L));
    }
    return;
  }
  if (to.s == KF_BF16) {
    ex_call(m, h_to_bf16(m, L), e, 1, o);
    return;
  }
  if (L == 1) {
    kf_str_printf(o, "((%s)", cty(m, to));
    ex(m, e->a[0], o);
    kf_str_puts(o, ")");
  } else {
    kf_str_puts(o, "__builtin_convertvector(");
    ex(m, e->a[0], o);
    kf_str_printf(o, ", %s)", cty(m, to));
  }
}

/* Integer ADD/SUB/MUL/NEG/SHL wrap: computed on unsigned values. */
/* Scalar integer ADD/SUB/MUL/SHL/NEG wrap: helpers computing on the unsigned type. */
static const char *h_wrap(emit *m, const char *opname, const char *op, kf_ty ty) {
  const char *T = cty(m, ty);
  const char *name = fmt(m, "kf_%s_%s", opname, tyname(m, ty));
  if (!first_time(m, name)) return name;
  const char *U = bits_of(ty.s) == 64 ? "uint64_t" : "uint32_t";
  kf_str h = {0};
  if (!strcmp(op, "-") && !strcmp(opname, "neg"))
    kf_str_printf(&h, "KF_INLINE %s %s(%s a) { return (%s)(0 - (%s)a); }\n", T, name, T, T, U);
  else if (!strcmp(op, "<<"))
    kf_str_printf(&h, "KF_INLINE %s %s(%s a, %s b) { return (%s)((%s)a << b); }\n", T, name, T, T, T, U);
  else
    kf_str_printf(&h, "KF_INLINE %s %s(%s a, %s b) { return (%s)((%s)a %s (%s)b); }\n", T, name, T, T,
                  T, U, op, U);
  helper_done(m, &h);
  return name;
}

static int is_zero_const(const kf_lir_expr *e) {
  return e->op == KF_L_CONST && !kf_scalar_is_float(e->ty.s) && e->ival == 0;
}

/* Integer ADD/SUB/MUL/SHL wrap: scalars through h_wrap, signed vectors on the unsigned
** vector type (unsigned vectors wrap by themselves). */
static void ex_wrap_bin(emit *m, const kf_lir_expr *e, const char *op, kf_str *o) {
  static const char *const names[KF_L_N_OPS] = {[KF_L_ADD] = "add", [KF_L_SUB] = "sub",
                                                [KF_L_MUL] = "mul", [KF_L_SHL] = "shl"};
  int L = e->ty.lanes;
  if (L == 1) {
    /* x + 0, x - 0 (index arithmetic): just x */
    if ((e->op == KF_L_ADD || e->op == KF_L_SUB) && is_zero_const(e->a[1])) {
      ex(m, e->a[0], o);
      return;
    }
    if (e->op == KF_L_ADD && is_zero_const(e->a[0])) {
      ex(m, e->a[1], o);
      return;
    }
    kf_str_puts(o, h_wrap(m, names[e->op], op, e->ty));
    ex_args(m, e, 2, o);
    return;
  }
  if (kind_of(e->ty.s) == 'u') {
    kf_str_puts(o, "(");
    ex(m, e->a[0], o);
    kf_str_printf(o, " %s ", op);
    ex(m, e->a[1], o);
    kf_str_puts(o, ")");
    return;
  }
  const char *U = uty(m, e->ty);
  kf_str_printf(o, "((%s)((%s)", cty(m, e->ty), U);
  ex(m, e->a[0], o);
  kf_str_printf(o, " %s (%s)", op, U);
  ex(m, e->a[1], o);
  kf_str_puts(o, "))");
}

static void ex(emit *m, const kf_lir_expr *e, kf_str *o) {
  int L = e->ty.lanes;
  kf_scalar s = e->ty.s;
  int isf = kf_scalar_is_float(s);
  static const char *const bin_c[KF_L_N_OPS] = {
      [KF_L_ADD] = "+", [KF_L_SUB] = "-", [KF_L_MUL] = "*", [KF_L_DIV] = "/",
      [KF_L_AND] = "&", [KF_L_OR] = "|",  [KF_L_XOR] = "^", [KF_L_SHL] = "<<",
      [KF_L_SHR] = ">>", [KF_L_LT] = "<", [KF_L_LE] = "<=", [KF_L_EQ] = "==", [KF_L_NE] = "!="};
  for (int i = 0; i < 3; i++)
    if (e->a[i] && e->a[i]->ty.s == KF_BOOL && e->a[i]->ty.lanes > 1 && e->op != KF_L_SELECT &&
        e->op != KF_L_EQ && e->op != KF_L_NE && e->op != KF_L_EXTRACT)
      efail(m, KF_EUNSUP, e, "bool vectors are only supported as select conditions, in eq/ne, "
                             "extract and variables");
  switch (e->op) {
  case KF_L_CONST: ex_const(m, e, o); return;
  case KF_L_VAR: kf_str_puts(o, m->var_name[e->var]); return;
  case KF_L_LOAD:
    if (L == 1) {
      kf_str_printf(o, "%s[", m->buf_name[e->buf]);
      ex(m, e->a[0], o);
      kf_str_puts(o, "]");
    } else {
      kf_str_printf(o, "%s(", h_load(m, e->ty, 0));
      ex_ptr(m, e->buf, e->a[0], o);
      kf_str_puts(o, ")");
    }
    return;
  case KF_L_LOADN:
    if (L == 1) {
      kf_str_puts(o, "(");
      ex(m, e->a[1], o);
      kf_str_printf(o, " > 0 ? %s[", m->buf_name[e->buf]);
      ex(m, e->a[0], o);
      kf_str_printf(o, "] : (%s)0)", cty(m, e->ty));
    } else {
      kf_str_printf(o, "%s(", h_loadn(m, e->ty, 0));
      ex_ptr(m, e->buf, e->a[0], o);
      kf_str_puts(o, ", ");
      ex(m, e->a[1], o);
      kf_str_puts(o, ")");
    }
    return;
  case KF_L_ADD: case KF_L_SUB: case KF_L_MUL:
    if (!isf) {
      ex_wrap_bin(m, e, bin_c[e->op], o);
      return;
    }
    /* fall through */
  case KF_L_DIV: case KF_L_AND: case KF_L_OR: case KF_L_XOR: case KF_L_SHR:
    if (L == 1 && !isf) /* operands may be plain int constants: compute in the type */
      kf_str_printf(o, "(%s)((%s)", cty(m, e->ty), cty(m, e->ty));
    else
      kf_str_printf(o, "(%s)(", cty(m, e->ty));
    ex(m, e->a[0], o);
    kf_str_printf(o, " %s ", bin_c[e->op]);
    ex(m, e->a[1], o);
    kf_str_puts(o, ")");
    return;
  case KF_L_SHL: ex_wrap_bin(m, e, "<<", o); return;
  case KF_L_MIN: case KF_L_MAX: ex_call(m, h_minmax(m, e->op, e->ty), e, 2, o); return;
  case KF_L_LT: case KF_L_LE: case KF_L_EQ: case KF_L_NE:
    if (L == 1) {
      kf_str_puts(o, "(");
      ex(m, e->a[0], o);
      kf_str_printf(o, " %s ", bin_c[e->op]);
      ex(m, e->a[1], o);
      kf_str_puts(o, ")");
    } else if (e->a[0]->ty.s == KF_BOOL) {
      kf_str_printf(o, "((%s)(", cty(m, e->ty));
      ex(m, e->a[0], o);
      kf_str_printf(o, " %s ", bin_c[e->op]);
      ex(m, e->a[1], o);
      kf_str_puts(o, "))");
    } else {
      int bits = bits_of(e->a[0]->ty.s);
      if (bits != 32) kf_str_puts(o, "__builtin_convertvector(");
      ex_mask(m, e, bits, o);
      if (bits != 32) kf_str_printf(o, ", %s)", cty(m, e->ty));
    }
    return;
  case KF_L_NEG:
    if (isf) {
      kf_str_puts(o, "(-");
      ex(m, e->a[0], o);
      kf_str_puts(o, ")");
    } else if (s == KF_BF16) { /* flip the sign bit of the pattern */
      kf_str_printf(o, "((%s)(", cty(m, e->ty));
      ex(m, e->a[0], o);
      kf_str_puts(o, " ^ (uint16_t)0x8000))");
    } else if (s == KF_BOOL) {
      efail(m, KF_EUNSUP, e, "neg of bool");
    } else {
      if (L == 1) {
        kf_str_puts(o, h_wrap(m, "neg", "-", e->ty));
        ex_args(m, e, 1, o);
      } else {
        kf_str_printf(o, "((%s)(-(%s)", cty(m, e->ty), uty(m, e->ty));
        ex(m, e->a[0], o);
        kf_str_puts(o, "))");
      }
    }
    return;
  case KF_L_ABS:
    if (s == KF_BOOL) efail(m, KF_EUNSUP, e, "abs of bool");
    if (s == KF_U8 || s == KF_U16 || s == KF_U32) ex(m, e->a[0], o);
    else ex_call(m, h_abs(m, e->ty), e, 1, o);
    return;
  case KF_L_SQRT: case KF_L_ROUND: case KF_L_FLOOR:
    if (L == 1) {
      const char *fn = e->op == KF_L_SQRT ? "sqrt" : e->op == KF_L_ROUND ? "nearbyint" : "floor";
      kf_str_printf(o, "__builtin_%s%s", fn, s == KF_F32 ? "f" : "");
      ex_args(m, e, 1, o);
    } else {
      ex_call(m, h_fun(m, e->op, e->ty), e, 1, o);
    }
    return;
  case KF_L_FMA:
    if (L == 1) ex_call(m, s == KF_F32 ? "__builtin_fmaf" : "__builtin_fma", e, 3, o);
    else ex_call(m, h_fma(m, e->ty), e, 3, o);
    return;
  case KF_L_SELECT:
    if (L == 1) {
      kf_str_puts(o, "(");
      ex(m, e->a[0], o);
      kf_str_puts(o, " ? ");
      ex(m, e->a[1], o);
      kf_str_puts(o, " : ");
      ex(m, e->a[2], o);
      kf_str_puts(o, ")");
    } else {
      kf_str_printf(o, "%s(", h_select(m, e->ty));
      ex_mask(m, e->a[0], bits_of(s), o);
      kf_str_puts(o, ", ");
      ex(m, e->a[1], o);
      kf_str_puts(o, ", ");
      ex(m, e->a[2], o);
      kf_str_puts(o, ")");
    }
    return;
  case KF_L_CVT: ex_cvt(m, e, o); return;
  case KF_L_BITCAST:
    if (s == KF_BOOL || e->a[0]->ty.s == KF_BOOL) {
      efail(m, KF_EUNSUP, e, "bitcast of bool values");
      return;
    }
    if (L > 1 && e->a[0]->ty.lanes > 1) { /* vector to vector of the same size: a C cast */
      kf_str_printf(o, "((%s)", cty(m, e->ty));
      ex(m, e->a[0], o);
      kf_str_puts(o, ")");
    } else if (bits_of(s) == bits_of(e->a[0]->ty.s) && kind_of(s) == kind_of(e->a[0]->ty.s)) {
      ex(m, e->a[0], o); /* bf16 <-> u16: same C type */
    } else {
      ex_call(m, h_bitcast(m, e->a[0]->ty, e->ty), e, 1, o);
    }
    return;
  case KF_L_BROADCAST:
    kf_str_printf(o, "%s(", h_bcast(m, e->ty));
    if (s == KF_BOOL) kf_str_puts(o, "-(int32_t)");
    ex(m, e->a[0], o);
    kf_str_puts(o, ")");
    return;
  case KF_L_EXTRACT:
    kf_str_printf(o, "%s(", h_extract(m, e->a[0]->ty));
    ex(m, e->a[0], o);
    kf_str_printf(o, ", %d)", (int)e->ival);
    return;
  case KF_L_REDUCE_ADD: case KF_L_REDUCE_MAX:
    if (s == KF_BF16 || s == KF_BOOL) {
      efail(m, KF_EUNSUP, e, "reduction of bf16/bool");
      return;
    }
    if (e->a[0]->ty.lanes == 1) ex(m, e->a[0], o);
    else ex_call(m, h_reduce(m, e->op, e->a[0]->ty), e, 1, o);
    return;
  case KF_L_DPBUSD: ex_call(m, h_dpbusd(m, L), e, 3, o); return;
  case KF_L_DPBF16: ex_call(m, h_dpbf16(m, L), e, 3, o); return;
  case KF_L_LUT16: ex_call(m, h_lut16(m, L), e, 2, o); return;
  case KF_L_N_OPS: break;
  }
  efail(m, KF_EINVAL, e, "unknown op");
}

/* ---- statements ---- */

static int assigned_in(const kf_lir_block *b, int var) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_lir_stmt *s = b->data[i];
    if ((s->kind == KF_S_ASSIGN || s->kind == KF_S_FOR) && s->var == var) return 1;
    if (assigned_in(&s->body, var) || assigned_in(&s->els, var)) return 1;
  }
  return 0;
}

static void comment_text(kf_str *o, const char *text) {
  for (const char *p = text; *p; p++) {
    if (p[0] == '*' && p[1] == '/') kf_str_puts(o, "* ");
    else if (*p == '\n') kf_str_puts(o, " ");
    else kf_str_printf(o, "%c", *p);
  }
}

static const char *h_store_of(emit *m, const kf_lir_stmt *st) {
  return st->kind == KF_S_STORE ? h_load(m, st->e->ty, 1) : h_loadn(m, st->e->ty, 1);
}

static void em_block(emit *m, const kf_lir_block *b, int depth, kf_str *o) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_lir_stmt *st = b->data[i];
    kf_str_printf(o, "%*s", 2 * depth, "");
    switch (st->kind) {
    case KF_S_ASSIGN:
      kf_str_printf(o, "%s = ", m->var_name[st->var]);
      if (st->e->ty.s == KF_BOOL && st->e->ty.lanes > 1) ex_mask(m, st->e, 32, o);
      else ex(m, st->e, o);
      kf_str_puts(o, ";\n");
      break;
    case KF_S_STORE:
    case KF_S_STOREN: {
      int L = st->e->ty.lanes;
      if (L == 1 && st->kind == KF_S_STORE) {
        kf_str_printf(o, "%s[", m->buf_name[st->buf]);
        ex(m, st->idx, o);
        kf_str_puts(o, "] = ");
        ex(m, st->e, o);
      } else if (L == 1) {
        kf_str_puts(o, "if (");
        ex(m, st->n, o);
        kf_str_printf(o, " > 0) %s[", m->buf_name[st->buf]);
        ex(m, st->idx, o);
        kf_str_puts(o, "] = ");
        ex(m, st->e, o);
      } else {
        kf_str_printf(o, "%s(", h_store_of(m, st));
        ex_ptr(m, st->buf, st->idx, o);
        kf_str_puts(o, ", ");
        ex(m, st->e, o);
        if (st->kind == KF_S_STOREN) {
          kf_str_puts(o, ", ");
          ex(m, st->n, o);
        }
        kf_str_puts(o, ")");
      }
      kf_str_puts(o, ";\n");
      break;
    }
    case KF_S_FOR: {
      const char *v = m->var_name[st->var];
      int direct = st->hi->op == KF_L_CONST ||
                   (st->hi->op == KF_L_VAR && st->hi->var != st->var && !assigned_in(&st->body, st->hi->var));
      kf_str_puts(o, "for (");
      if (direct) {
        kf_str_printf(o, "%s = ", v);
        ex(m, st->lo, o);
        kf_str_printf(o, "; %s < ", v);
        ex(m, st->hi, o);
      } else { /* hi is evaluated once, before lo is assigned */
        int k = m->n_ends++;
        kf_str_printf(&m->decls, "  int64_t kf_end%d __attribute__((unused)) = 0;\n", k);
        kf_str_printf(o, "kf_end%d = ", k);
        ex(m, st->hi, o);
        kf_str_printf(o, ", %s = ", v);
        ex(m, st->lo, o);
        kf_str_printf(o, "; %s < kf_end%d", v, k);
      }
      kf_str_printf(o, "; %s += %lld) {\n", v, (long long)st->step);
      em_block(m, &st->body, depth + 1, o);
      kf_str_printf(o, "%*s}\n", 2 * depth, "");
      break;
    }
    case KF_S_IF:
      kf_str_puts(o, "if (");
      ex(m, st->e, o);
      kf_str_puts(o, ") {\n");
      em_block(m, &st->body, depth + 1, o);
      if (st->els.len) {
        kf_str_printf(o, "%*s} else {\n", 2 * depth, "");
        em_block(m, &st->els, depth + 1, o);
      }
      kf_str_printf(o, "%*s}\n", 2 * depth, "");
      break;
    case KF_S_COMMENT:
      kf_str_puts(o, "/* ");
      comment_text(o, st->text);
      kf_str_puts(o, " */\n");
      break;
    }
  }
}

/* ---- names and the function ---- */

static int reserved(const char *s) {
  static const char *const words[] = {
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
      "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
      "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
      "union", "unsigned", "void", "volatile", "while", "asm", "typeof", "args", "par_lo",
      "par_hi", "ws", "memcpy", "size_t", "NULL", "main", NULL};
  for (int i = 0; words[i]; i++)
    if (!strcmp(s, words[i])) return 1;
  return !strcmp(s, "int8_t") || !strcmp(s, "uint8_t") || !strcmp(s, "int16_t") ||
         !strcmp(s, "uint16_t") || !strcmp(s, "int32_t") || !strcmp(s, "uint32_t") ||
         !strcmp(s, "int64_t") || !strcmp(s, "uint64_t") || !strcmp(s, "KF_INLINE");
}

/* A C identifier for an LIR name: invalid characters become '_', clashes get "_<n>". */
static const char *c_name(emit *m, const char *name, const char **taken, size_t n_taken) {
  char buf[128];
  size_t n = 0;
  if (!name || !*name || (name[0] >= '0' && name[0] <= '9')) buf[n++] = 'v';
  for (const char *p = name ? name : ""; *p && n < 100; p++)
    buf[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_') ? *p : '_';
  buf[n] = 0;
  if (!strncmp(buf, "kf_", 3) || !strncmp(buf, "KF_", 3) || !strncmp(buf, "__", 2) ||
      !strncmp(buf, "_mm", 3) || (buf[0] == '_' && buf[1] >= 'A' && buf[1] <= 'Z')) {
    memmove(buf + 2, buf, n + 1); /* keep clear of helper, macro and reserved names */
    buf[0] = 'v';
    buf[1] = '_';
  }
  for (int k = 0;; k++) {
    char cand[140];
    if (k == 0) snprintf(cand, sizeof cand, "%s", buf);
    else snprintf(cand, sizeof cand, "%s_%d", buf, k);
    int clash = reserved(cand);
    for (size_t i = 0; i < n_taken && !clash; i++) clash = taken[i] && !strcmp(taken[i], cand);
    if (!clash) return kf_arena_strdup(&m->arena, cand);
  }
}

static int valid_ident(const char *s) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return 0;
  return 1;
}

int kf_emit_c(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_str *out) {
  int rc = kf_lir_verify(ctx, f);
  if (rc) return kf_err_prefix(ctx, rc, "emit C for %s", f->name);
  if (!valid_ident(f->name) || reserved(f->name) != 0 || !strncmp(f->name, "__", 2))
    return kf_err(ctx, KF_EINVAL, "emit C: kernel name '%s' is not a usable C identifier", f->name);
  emit m = {0};
  m.ctx = ctx;
  m.f = f;
  m.t = t;
  size_t n_names = f->bufs.len + f->vars.len;
  const char **taken = kf_xcalloc(n_names + 1, sizeof *taken);
  m.buf_name = kf_xcalloc(f->bufs.len + 1, sizeof *m.buf_name);
  m.var_name = kf_xcalloc(f->vars.len + 1, sizeof *m.var_name);
  size_t n_taken = 0;
  taken[n_taken++] = f->name;
  for (size_t b = 0; b < f->bufs.len; b++) {
    if (f->bufs.data[b].elem == KF_BOOL) efail(&m, KF_EUNSUP, NULL, "buffers of bool");
    m.buf_name[b] = c_name(&m, f->bufs.data[b].name, taken, n_taken);
    taken[n_taken++] = m.buf_name[b];
  }
  for (size_t v = 0; v < f->vars.len; v++) {
    if ((int)v == f->par_lo_var) m.var_name[v] = "par_lo";
    else if ((int)v == f->par_hi_var) m.var_name[v] = "par_hi";
    else m.var_name[v] = c_name(&m, f->vars.data[v].name, taken, n_taken);
    if (n_taken < n_names + 1) taken[n_taken++] = m.var_name[v];
  }

  /* body first: it decides which types and helpers the prelude needs */
  kf_str body = {0}, decl = {0};
  em_block(&m, &f->body, 1, &body);
  static const char *const kinds[] = {"in", "out", "local"};
  for (size_t b = 0; b < f->bufs.len; b++) {
    const kf_lir_buf *buf = &f->bufs.data[b];
    const char *E = cty(&m, kf_ty_of(buf->elem == KF_BOOL ? KF_I32 : buf->elem, 1));
    const char *cq = buf->kind == KF_BUF_IN ? "const " : "";
    if (buf->kind == KF_BUF_LOCAL)
      kf_str_printf(&decl, "  %s *%s __attribute__((unused)) = (%s *)((char *)ws + %lld); /* %s[%lld] local */\n",
                    E, m.buf_name[b], E, (long long)buf->ws_offset, kf_scalar_name(buf->elem),
                    (long long)buf->n_elems);
    else
      kf_str_printf(&decl, "  %s%s *%s __attribute__((unused)) = (%s%s *)args[%d]; /* %s[%lld] %s */\n",
                    cq, E, m.buf_name[b], cq, E, buf->arg_index, kf_scalar_name(buf->elem),
                    (long long)buf->n_elems, kinds[buf->kind]);
  }
  for (size_t v = 0; v < f->vars.len; v++) {
    if ((int)v == f->par_lo_var || (int)v == f->par_hi_var) continue;
    kf_ty ty = f->vars.data[v].ty;
    kf_str_printf(&decl, "  %s %s __attribute__((unused)) = %s;\n", cty(&m, ty), m.var_name[v],
                  ty.lanes > 1 ? "{0}" : "0");
  }

  for (size_t i = 0; i < m.seen.len && !m.rc; i++)
    if (!strcmp(m.seen.data[i], f->name))
      m.rc = kf_err(ctx, KF_EINVAL, "emit C: kernel name '%s' clashes with a helper of the prelude",
                    f->name);
  if (!m.rc) {
    kf_str_puts(out, "/*\n** ");
    comment_text(out, f->name);
    kf_str_puts(out, ": ");
    for (const char *p = f->header ? f->header : ""; *p; p++) { /* keep line breaks */
      if (p[0] == '*' && p[1] == '/') kf_str_puts(out, "* ");
      else if (*p == '\n') kf_str_puts(out, "\n** ");
      else kf_str_printf(out, "%c", *p);
    }
    kf_str_printf(out, "\n** target: %s (%s)\n", t->name, t->cc_flags);
    kf_str_printf(out, "** parallel range [0, %lld), workspace %lld bytes\n", (long long)f->par_total,
                  (long long)f->ws_bytes);
    kf_str_puts(out, "** generated by kforge (LIR -> C); compile with -std=gnu11 -O2 -ffp-contract=off "
                     "-fno-math-errno\n*/\n");
    kf_str_puts(out, "#include <stdint.h>\n#include <stddef.h>\n");
    if (t->isa != KF_ISA_GENERIC) kf_str_puts(out, "#include <immintrin.h>\n");
    /* helpers are static inline, so the ABI of wide vector arguments never matters; and a
    ** LIR eq(x, x) is the NaN test, not a mistake */
    kf_str_puts(out, "#define KF_INLINE static inline __attribute__((always_inline))\n");
    kf_str_puts(out, "#if defined(__GNUC__)\n#pragma GCC diagnostic ignored \"-Wpsabi\"\n"
                     "#pragma GCC diagnostic ignored \"-Wtautological-compare\"\n#endif\n");
    kf_str_puts(out, "\n");
    if (m.types.len) kf_str_printf(out, "%s\n", m.types.data);
    if (m.helpers.len) kf_str_printf(out, "%s\n", m.helpers.data);
    kf_str_printf(out, "void %s(void *const *args, int64_t par_lo, int64_t par_hi, void *ws);\n", f->name);
    kf_str_printf(out, "void %s(void *const *args, int64_t par_lo, int64_t par_hi, void *ws) {\n",
                  f->name);
    kf_str_puts(out, "  (void)args; (void)par_lo; (void)par_hi; (void)ws;\n");
    if (decl.len) kf_str_puts(out, decl.data);
    if (m.decls.len) kf_str_puts(out, m.decls.data);
    if (body.len) kf_str_puts(out, body.data);
    kf_str_puts(out, "}\n");
  }
  rc = m.rc;
  kf_str_free(&body);
  kf_str_free(&decl);
  kf_str_free(&m.types);
  kf_str_free(&m.helpers);
  kf_str_free(&m.decls);
  kf_vec_free(&m.seen);
  free(taken);
  free(m.buf_name);
  free(m.var_name);
  kf_arena_free(&m.arena);
  return rc;
}

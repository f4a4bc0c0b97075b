/*
** emit_llvm.c: LIR -> LLVM IR through the LLVM-C 19 API, then .ll / .s / .o or an ORC
** LLJIT in-process kernel.
**
** The translation is one node at a time, like the C emitter: every LIR variable is an
** alloca in the entry block (SROA/mem2reg in default<O3> turns them into SSA values),
** FOR and IF become basic blocks, LIR vectors are LLVM vectors (lanes == 1 is a scalar).
** BF16 values live as i16 bit patterns, so bf16 loads, stores and bitcasts are plain
** integer operations; only DPBF16 hands them to an intrinsic, bitcast to whatever type the
** intrinsic's declaration wants. Intrinsic signatures are never written down here: they
** come from LLVMIntrinsicGetType, and operands are bitcast to the parameter types.
**
** The emitted function has the uniform kernel signature (lir.h):
**     void NAME(ptr args, i64 par_lo, i64 par_hi, ptr ws)
** It loads the argument buffers from args[], computes the local buffers' addresses in ws,
** and calls NAME.body (internal, alwaysinline), whose parameters are one noalias pointer
** per buffer: after inlining, LLVM knows that distinct buffers do not overlap (the kernel
** contract, as `restrict` in the C emitter's output).
**
** Semantics that are the same in every emitter and the interpreter (gen/lir_interp.c):
**  - variables start at zero;
**  - a FOR evaluates lo and hi once, before the first iteration;
**  - integer add/sub/mul wrap; shifts take counts < bits;
**  - float MIN(a, b) = a < b ? a : b, MAX(a, b) = a > b ? a : b (x86 minps/maxps: b when
**    either is NaN or both are zeros); REDUCE_MAX is the left fold of MAX over the lanes;
**  - f32 -> bf16 rounds to nearest even, NaN -> quiet NaN (top 16 bits | 0x40), f32
**    denormals -> signed zero: exactly vcvtneps2bf16, which is used when the target has
**    AVX512_BF16, else the same thing in integer arithmetic (bit-exact either way);
**  - NEG/ABS of bf16 flip/clear the sign bit of the pattern;
**  - DPBUSD / DPBF16 use the VNNI / AVX512_BF16 instruction when the target has it, else
**    generic IR (widen, multiply, add pairs of lanes picked by shuffles).
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "target.h"

/* ---- one-time LLVM initialization (target registry only; idempotent) ---- */

static pthread_once_t llvm_init_once = PTHREAD_ONCE_INIT;

static void llvm_init(void) {
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMInitializeX86AsmPrinter();
}

/* The TargetMachine for t on the host triple: t->llvm_cpu / t->llvm_features, O3,
** position-independent (objects go into shared libraries and PIE programs). */
static int make_target_machine(kf_ctx *ctx, const kf_target *t, LLVMTargetMachineRef *out) {
  pthread_once(&llvm_init_once, llvm_init);
  char *triple = LLVMGetDefaultTargetTriple();
  LLVMTargetRef target = NULL;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    int rc = kf_err(ctx, KF_ECOMPILE, "LLVM has no target for triple %s: %s", triple,
                    msg ? msg : "?");
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    return rc;
  }
  *out = LLVMCreateTargetMachine(target, triple, t->llvm_cpu, t->llvm_features,
                                 LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
  LLVMDisposeMessage(triple);
  if (!*out)
    return kf_err(ctx, KF_ECOMPILE, "LLVM refused target machine cpu=%s features='%s'",
                  t->llvm_cpu, t->llvm_features);
  return KF_OK;
}

/* ---- translation state ---- */

typedef struct lctx {
  kf_ctx *ctx;
  const kf_lir_func *f;
  const kf_target *t;
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMValueRef body_fn;    /* NAME.body */
  LLVMValueRef *var_slot;  /* alloca per LIR variable */
  LLVMValueRef *buf_ptr;   /* base pointer per LIR buffer (a parameter of NAME.body) */
  LLVMTypeRef i1, i8, i16, i32, i64, f32, f64, ptr, void_ty;
  unsigned loop_md_kind;
  int rc;                  /* first error, KF_OK while translation is fine */
} lctx;

/* Records the first error; translation continues with placeholder values so that callers
** need not check after every node, and the error is returned at the end. */
static void lfail(lctx *L, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void lfail(lctx *L, int code, const char *fmt, ...) {
  if (L->rc) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  L->rc = kf_err(L->ctx, code, "LLVM emitter, kernel %s: %s", L->f->name, buf);
}

static LLVMTypeRef scalar_type(lctx *L, kf_scalar s) {
  switch (s) {
  case KF_I8: case KF_U8: return L->i8;
  case KF_I16: case KF_U16: case KF_BF16: return L->i16;
  case KF_I32: case KF_U32: return L->i32;
  case KF_I64: return L->i64;
  case KF_F32: return L->f32;
  case KF_F64: return L->f64;
  case KF_BOOL: return L->i1;
  case KF_N_SCALAR: break;
  }
  kf_assert(!"bad scalar kind");
}

static LLVMTypeRef vec_of(LLVMTypeRef elem, int lanes) {
  return lanes == 1 ? elem : LLVMVectorType(elem, (unsigned)lanes);
}

static LLVMTypeRef lty(lctx *L, kf_ty ty) { return vec_of(scalar_type(L, ty.s), ty.lanes); }

/* Element type of a buffer in memory (bool is stored as one byte). */
static LLVMTypeRef mem_elem_type(lctx *L, kf_scalar s) {
  return s == KF_BOOL ? L->i8 : scalar_type(L, s);
}

static unsigned elem_align(kf_scalar s) {
  int bits = kf_scalar_bits(s);
  return bits < 8 ? 1u : (unsigned)(bits / 8);
}

/* Integer constant v of type ty (a scalar or, splatted, a vector). */
static LLVMValueRef splat_i(LLVMTypeRef ty, uint64_t v) {
  if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind) return LLVMConstInt(ty, v, 0);
  LLVMValueRef c = LLVMConstInt(LLVMGetElementType(ty), v, 0);
  unsigned n = LLVMGetVectorSize(ty);
  LLVMValueRef elems[64];
  for (unsigned i = 0; i < n; i++) elems[i] = c;
  return LLVMConstVector(elems, n);
}

/* Calls the intrinsic `name`, overloaded on ovl[0..n_ovl). Operands whose type differs
** from the declaration's parameter type (same size) are bitcast to it; the result is
** bitcast to want (if non-NULL and different). */
static LLVMValueRef call_intrinsic(lctx *L, const char *name, LLVMTypeRef *ovl, size_t n_ovl,
                                   LLVMValueRef *args, unsigned n_args, LLVMTypeRef want) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  if (!id) {
    lfail(L, KF_ECOMPILE, "LLVM 19 has no intrinsic %s", name);
    return want ? LLVMGetUndef(want) : NULL;
  }
  LLVMValueRef decl = LLVMGetIntrinsicDeclaration(L->M, id, ovl, n_ovl);
  LLVMTypeRef fty = LLVMIntrinsicGetType(L->C, id, ovl, n_ovl);
  unsigned n_params = LLVMCountParamTypes(fty);
  if (n_params != n_args) {
    lfail(L, KF_ECOMPILE, "intrinsic %s takes %u operands, emitter passes %u", name, n_params,
          n_args);
    return want ? LLVMGetUndef(want) : NULL;
  }
  LLVMTypeRef params[8];
  kf_assert(n_params <= 8);
  LLVMGetParamTypes(fty, params);
  LLVMValueRef cast_args[8];
  for (unsigned i = 0; i < n_args; i++) {
    cast_args[i] = args[i];
    if (LLVMTypeOf(args[i]) != params[i])
      cast_args[i] = LLVMBuildBitCast(L->B, args[i], params[i], "");
  }
  LLVMValueRef r = LLVMBuildCall2(L->B, fty, decl, cast_args, n_args, "");
  if (want && LLVMTypeOf(r) != want) r = LLVMBuildBitCast(L->B, r, want, "");
  return r;
}

/* Unary/binary/ternary intrinsic overloaded on the operand type (llvm.sqrt, llvm.fma...). */
static LLVMValueRef intr_same(lctx *L, const char *name, LLVMValueRef *args, unsigned n) {
  LLVMTypeRef ty = LLVMTypeOf(args[0]);
  return call_intrinsic(L, name, &ty, 1, args, n, ty);
}

/* ---- expressions ---- */

static LLVMValueRef expr(lctx *L, const kf_lir_expr *e);

static LLVMValueRef elem_ptr(lctx *L, int buf, LLVMValueRef idx) {
  const kf_lir_buf *b = &L->f->bufs.data[buf];
  return LLVMBuildGEP2(L->B, mem_elem_type(L, b->elem), L->buf_ptr[buf], &idx, 1, "");
}

/* Lane mask `lane < n` for LOADN/STOREN (n is i64; any n is fine: <= 0 none, >= lanes all). */
static LLVMValueRef lane_mask(lctx *L, int lanes, LLVMValueRef n) {
  LLVMTypeRef vty = LLVMVectorType(L->i64, (unsigned)lanes);
  LLVMValueRef iota[64];
  for (int i = 0; i < lanes; i++) iota[i] = LLVMConstInt(L->i64, (unsigned long long)i, 0);
  LLVMValueRef ins = LLVMBuildInsertElement(L->B, LLVMGetPoison(vty), n,
                                            LLVMConstInt(L->i32, 0, 0), "");
  LLVMValueRef zeros[64];
  for (int i = 0; i < lanes; i++) zeros[i] = LLVMConstInt(L->i32, 0, 0);
  LLVMValueRef splat = LLVMBuildShuffleVector(L->B, ins, LLVMGetPoison(vty),
                                              LLVMConstVector(zeros, (unsigned)lanes), "");
  return LLVMBuildICmp(L->B, LLVMIntSLT, LLVMConstVector(iota, (unsigned)lanes), splat, "");
}

/* Memory value (bool as i8) -> register value and back. */
static LLVMValueRef from_mem(lctx *L, kf_ty ty, LLVMValueRef v) {
  if (ty.s != KF_BOOL) return v;
  return LLVMBuildICmp(L->B, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
}
static LLVMValueRef to_mem(lctx *L, kf_ty ty, LLVMValueRef v) {
  if (ty.s != KF_BOOL) return v;
  return LLVMBuildZExt(L->B, v, vec_of(L->i8, ty.lanes), "");
}

static LLVMValueRef emit_load(lctx *L, const kf_lir_expr *e) {
  LLVMValueRef p = elem_ptr(L, e->buf, expr(L, e->a[0]));
  LLVMTypeRef mty = vec_of(mem_elem_type(L, e->ty.s), e->ty.lanes);
  if (e->op == KF_L_LOAD) {
    LLVMValueRef v = LLVMBuildLoad2(L->B, mty, p, "");
    LLVMSetAlignment(v, elem_align(e->ty.s));
    return from_mem(L, e->ty, v);
  }
  /* LOADN: llvm.masked.load on a vector (lanes == 1 uses a 1-lane vector). */
  LLVMTypeRef vty = LLVMVectorType(mem_elem_type(L, e->ty.s), (unsigned)e->ty.lanes);
  LLVMValueRef args[4] = {p, LLVMConstInt(L->i32, elem_align(e->ty.s), 0),
                          lane_mask(L, e->ty.lanes, expr(L, e->a[1])), LLVMConstNull(vty)};
  LLVMTypeRef ovl[2] = {vty, L->ptr};
  LLVMValueRef v = call_intrinsic(L, "llvm.masked.load", ovl, 2, args, 4, vty);
  if (e->ty.lanes == 1) v = LLVMBuildExtractElement(L->B, v, LLVMConstInt(L->i32, 0, 0), "");
  return from_mem(L, e->ty, v);
}

static int is_signed(kf_scalar s) { return kf_scalar_is_signed(s); }
static int is_int(kf_scalar s) { return !kf_scalar_is_float(s) && s != KF_BF16 && s != KF_BOOL; }

/* Float min/max as x86 minps/maxps (and the interpreter): a < b ? a : b, else b. */
static LLVMValueRef fminmax(lctx *L, int is_max, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef c = LLVMBuildFCmp(L->B, is_max ? LLVMRealOGT : LLVMRealOLT, a, b, "");
  return LLVMBuildSelect(L->B, c, a, b, "");
}

static LLVMValueRef shuffle_const(lctx *L, LLVMValueRef v, const int *idx, int n) {
  LLVMValueRef m[64];
  for (int i = 0; i < n; i++) m[i] = LLVMConstInt(L->i32, (unsigned long long)idx[i], 0);
  return LLVMBuildShuffleVector(L->B, v, LLVMGetPoison(LLVMTypeOf(v)),
                                LLVMConstVector(m, (unsigned)n), "");
}

/* Lanes [k, k + n) of v as an n-lane vector (n == 1: a scalar). */
static LLVMValueRef sub_vector(lctx *L, LLVMValueRef v, int k, int n) {
  if (n == 1) return LLVMBuildExtractElement(L->B, v, LLVMConstInt(L->i32, (unsigned)k, 0), "");
  int idx[64] = {0};
  for (int i = 0; i < n; i++) idx[i] = k + i;
  return shuffle_const(L, v, idx, n);
}

/* Concatenation of n_parts equal vectors. */
static LLVMValueRef concat(lctx *L, LLVMValueRef *parts, int n_parts) {
  while (n_parts > 1) {
    int w = (int)LLVMGetVectorSize(LLVMTypeOf(parts[0]));
    int idx[64];
    for (int i = 0; i < 2 * w; i++) idx[i] = i;
    for (int i = 0; i < n_parts / 2; i++) {
      LLVMValueRef m[64];
      for (int j = 0; j < 2 * w; j++) m[j] = LLVMConstInt(L->i32, (unsigned)idx[j], 0);
      parts[i] = LLVMBuildShuffleVector(L->B, parts[2 * i], parts[2 * i + 1],
                                        LLVMConstVector(m, (unsigned)(2 * w)), "");
    }
    n_parts /= 2;
  }
  return parts[0];
}

/* Lanes j, j+stride, j+2*stride, ... of v (n of them). */
static LLVMValueRef strided_lanes(lctx *L, LLVMValueRef v, int j, int stride, int n) {
  if (n == 1) return LLVMBuildExtractElement(L->B, v, LLVMConstInt(L->i32, (unsigned)j, 0), "");
  int idx[64] = {0};
  for (int i = 0; i < n; i++) idx[i] = j + i * stride;
  return shuffle_const(L, v, idx, n);
}

/* Width in i32 lanes of the vpdpbusd / vdpbf16ps forms this target has (0 = none).
** AVX-512 VNNI has 512/256/128-bit forms (with VL); AVX-VNNI has 256/128-bit ones, which
** LLVM 19 selects from the same llvm.x86.avx512.vpdpbusd.{256,128} intrinsics. */
static int native_dot_lanes(lctx *L, int lanes, int bf16) {
  int max = 0;
  if (bf16) max = (L->t->has_bf16 && L->t->isa == KF_ISA_AVX512) ? 16 : 0;
  else if (L->t->has_vnni) max = L->t->isa == KF_ISA_AVX512 ? 16 : 8;
  if (!max) return 0;
  for (int w = max; w >= 4; w /= 2)
    if (lanes % w == 0 && (lanes / w & (lanes / w - 1)) == 0) return w;
  return 0;
}

/* A dot-product intrinsic (base.<w * 32>) over lanes accumulator lanes, split into parts of w
** lanes: part p takes acc lanes [p w, (p + 1) w) and the matching per_lane * w elements of a
** and b; the results are concatenated. */
static LLVMValueRef native_dot(lctx *L, const char *base, LLVMTypeRef acc_elem, int w, int per_lane,
                               int lanes, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b) {
  char name[64];
  snprintf(name, sizeof name, "%s.%d", base, w * 32);
  LLVMTypeRef part_ty = LLVMVectorType(acc_elem, (unsigned)w);
  LLVMValueRef parts[16];
  int n_parts = lanes / w;
  for (int p = 0; p < n_parts; p++) {
    LLVMValueRef args[3] = {n_parts == 1 ? acc : sub_vector(L, acc, p * w, w),
                            n_parts == 1 ? a : sub_vector(L, a, per_lane * p * w, per_lane * w),
                            n_parts == 1 ? b : sub_vector(L, b, per_lane * p * w, per_lane * w)};
    parts[p] = call_intrinsic(L, name, NULL, 0, args, 3, part_ty);
  }
  return concat(L, parts, n_parts);
}

static LLVMValueRef emit_dpbusd(lctx *L, const kf_lir_expr *e) {
  int lanes = e->ty.lanes;
  LLVMValueRef acc = expr(L, e->a[0]), a = expr(L, e->a[1]), b = expr(L, e->a[2]);
  int w = native_dot_lanes(L, lanes, 0);
  if (w) return native_dot(L, "llvm.x86.avx512.vpdpbusd", L->i32, w, 4, lanes, acc, a, b);
  /* Generic: products u8*s8 in i32 (exact), four strided sums per lane, wrapping add. */
  LLVMTypeRef wide = LLVMVectorType(L->i32, (unsigned)(4 * lanes));
  LLVMValueRef prod = LLVMBuildMul(L->B, LLVMBuildZExt(L->B, a, wide, ""),
                                   LLVMBuildSExt(L->B, b, wide, ""), "");
  LLVMValueRef sum = acc;
  for (int j = 0; j < 4; j++) sum = LLVMBuildAdd(L->B, sum, strided_lanes(L, prod, j, 4, lanes), "");
  return sum;
}

static LLVMValueRef bf16_to_f32(lctx *L, LLVMValueRef v, int lanes) {
  LLVMValueRef w = LLVMBuildZExt(L->B, v, vec_of(L->i32, lanes), "");
  w = LLVMBuildShl(L->B, w, splat_i(vec_of(L->i32, lanes), 16), "");
  return LLVMBuildBitCast(L->B, w, vec_of(L->f32, lanes), "");
}

/* f32 -> bf16 bits as vcvtneps2bf16: round to nearest even, NaN -> quiet NaN (sign and
** top payload bits kept), denormal inputs -> signed zero. */
static LLVMValueRef f32_to_bf16(lctx *L, LLVMValueRef x, int lanes) {
  LLVMTypeRef bf_ty = vec_of(L->i16, lanes);
  if (L->t->has_bf16 && L->t->isa == KF_ISA_AVX512 && (lanes == 16 || lanes == 8)) {
    char name[64];
    snprintf(name, sizeof name, "llvm.x86.avx512bf16.cvtneps2bf16.%d", lanes * 32);
    return call_intrinsic(L, name, NULL, 0, &x, 1, bf_ty);
  }
  LLVMTypeRef ity = vec_of(L->i32, lanes);
  LLVMValueRef bits = LLVMBuildBitCast(L->B, x, ity, "");
  LLVMValueRef hi = LLVMBuildLShr(L->B, bits, splat_i(ity, 16), "");
  LLVMValueRef lsb = LLVMBuildAnd(L->B, hi, splat_i(ity, 1), "");
  LLVMValueRef rounded = LLVMBuildAdd(L->B, bits, LLVMBuildAdd(L->B, lsb, splat_i(ity, 0x7fff), ""), "");
  rounded = LLVMBuildLShr(L->B, rounded, splat_i(ity, 16), "");
  LLVMValueRef quiet = LLVMBuildOr(L->B, hi, splat_i(ity, 0x40), "");
  LLVMValueRef sign = LLVMBuildAnd(L->B, hi, splat_i(ity, 0x8000), "");
  LLVMValueRef isnan = LLVMBuildFCmp(L->B, LLVMRealUNO, x, x, "");
  LLVMValueRef exp = LLVMBuildAnd(L->B, bits, splat_i(ity, 0x7f800000), "");
  LLVMValueRef isden = LLVMBuildICmp(L->B, LLVMIntEQ, exp, LLVMConstNull(ity), "");
  LLVMValueRef r = LLVMBuildSelect(L->B, isden, sign, rounded, "");
  r = LLVMBuildSelect(L->B, isnan, quiet, r, "");
  return LLVMBuildTrunc(L->B, r, bf_ty, "");
}

static LLVMValueRef emit_dpbf16(lctx *L, const kf_lir_expr *e) {
  int lanes = e->ty.lanes;
  LLVMValueRef acc = expr(L, e->a[0]), a = expr(L, e->a[1]), b = expr(L, e->a[2]);
  int w = native_dot_lanes(L, lanes, 1);
  if (w) return native_dot(L, "llvm.x86.avx512bf16.dpbf16ps", L->f32, w, 2, lanes, acc, a, b);
  /* Generic: bf16 products are exact in f32; add the odd product first, then the even
  ** one, the order vdpbf16ps uses. */
  LLVMValueRef pa = bf16_to_f32(L, a, 2 * lanes), pb = bf16_to_f32(L, b, 2 * lanes);
  LLVMValueRef prod = LLVMBuildFMul(L->B, pa, pb, "");
  LLVMValueRef sum = LLVMBuildFAdd(L->B, acc, strided_lanes(L, prod, 1, 2, lanes), "");
  return LLVMBuildFAdd(L->B, sum, strided_lanes(L, prod, 0, 2, lanes), "");
}

/* LUT16: vpshufb with the 16-byte table in every 128-bit lane where the target has it
** (AVX-512BW: 64 lanes, AVX2: 32), else a lane-by-lane lookup. Indices are masked to 4 bits. */
static LLVMValueRef emit_lut16(lctx *L, const kf_lir_expr *e) {
  int lanes = e->ty.lanes;
  LLVMValueRef table = expr(L, e->a[0]), idx = expr(L, e->a[1]);
  LLVMTypeRef vt = LLVMVectorType(L->i8, (unsigned)lanes);
  LLVMValueRef mask_elems[64];
  for (int i = 0; i < lanes; i++) mask_elems[i] = LLVMConstInt(L->i8, 15, 0);
  idx = LLVMBuildAnd(L->B, idx, LLVMConstVector(mask_elems, (unsigned)lanes), "");
  const char *name = NULL;
  if (L->t->isa == KF_ISA_AVX512 && lanes == 64) name = "llvm.x86.avx512.pshuf.b.512";
  else if (L->t->isa >= KF_ISA_AVX2 && lanes == 32) name = "llvm.x86.avx2.pshuf.b";
  else if (L->t->isa >= KF_ISA_AVX2 && lanes == 16) name = "llvm.x86.ssse3.pshuf.b.128";
  if (name) {
    LLVMValueRef sel[64];
    for (int i = 0; i < lanes; i++) sel[i] = LLVMConstInt(L->i32, (unsigned)(i % 16), 0);
    LLVMValueRef bcast = LLVMBuildShuffleVector(L->B, table, LLVMGetUndef(LLVMTypeOf(table)),
                                                LLVMConstVector(sel, (unsigned)lanes), "");
    LLVMValueRef args[2] = {bcast, idx};
    return call_intrinsic(L, name, NULL, 0, args, 2, vt);
  }
  LLVMValueRef r = LLVMGetUndef(vt);
  for (int i = 0; i < lanes; i++) {
    LLVMValueRef li = LLVMConstInt(L->i32, (unsigned)i, 0);
    LLVMValueRef k = LLVMBuildZExt(L->B, LLVMBuildExtractElement(L->B, idx, li, ""), L->i32, "");
    r = LLVMBuildInsertElement(L->B, r, LLVMBuildExtractElement(L->B, table, k, ""), li, "");
  }
  return r;
}

static LLVMValueRef emit_cvt(lctx *L, const kf_lir_expr *e) {
  kf_scalar from = e->a[0]->ty.s, to = e->ty.s;
  int lanes = e->ty.lanes;
  LLVMValueRef v = expr(L, e->a[0]);
  LLVMTypeRef dst = lty(L, e->ty);
  if (from == KF_BF16) return bf16_to_f32(L, v, lanes);       /* verifier: to == F32 */
  if (to == KF_BF16) return f32_to_bf16(L, v, lanes);         /* verifier: from == F32 */
  int fi = kf_scalar_is_float(from), ti = kf_scalar_is_float(to);
  if (!fi && !ti) {
    int fb = kf_scalar_bits(from), tb = kf_scalar_bits(to);
    if (tb < fb) return LLVMBuildTrunc(L->B, v, dst, "");
    if (tb > fb) return is_signed(from) ? LLVMBuildSExt(L->B, v, dst, "") : LLVMBuildZExt(L->B, v, dst, "");
    return v;
  }
  if (fi && ti) {
    if (from == to) return v;
    return from == KF_F32 ? LLVMBuildFPExt(L->B, v, dst, "") : LLVMBuildFPTrunc(L->B, v, dst, "");
  }
  if (fi) return is_signed(to) ? LLVMBuildFPToSI(L->B, v, dst, "") : LLVMBuildFPToUI(L->B, v, dst, "");
  return is_signed(from) ? LLVMBuildSIToFP(L->B, v, dst, "") : LLVMBuildUIToFP(L->B, v, dst, "");
}

static LLVMValueRef emit_reduce(lctx *L, const kf_lir_expr *e) {
  const kf_lir_expr *a = e->a[0];
  LLVMValueRef v = expr(L, a);
  if (a->ty.lanes == 1) return v;
  LLVMTypeRef vty = LLVMTypeOf(v);
  kf_scalar s = a->ty.s;
  if (s == KF_BF16 || s == KF_BOOL) {
    lfail(L, KF_EINVAL, "reduction of %s", kf_scalar_name(s));
    return LLVMGetUndef(lty(L, e->ty));
  }
  if (e->op == KF_L_REDUCE_ADD) {
    if (kf_scalar_is_float(s)) {
      LLVMValueRef args[2] = {LLVMConstReal(scalar_type(L, s), -0.0), v};
      LLVMValueRef r = call_intrinsic(L, "llvm.vector.reduce.fadd", &vty, 1, args, 2, NULL);
      LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc);
      return r;
    }
    return call_intrinsic(L, "llvm.vector.reduce.add", &vty, 1, &v, 1, NULL);
  }
  if (kf_scalar_is_float(s)) {
    /* The left fold r = MAX(r, x[i]): its result on NaN lanes and signed zeros depends on
    ** the order, so no tree (and no llvm.vector.reduce.fmax, which ignores NaNs). */
    LLVMValueRef r = LLVMBuildExtractElement(L->B, v, LLVMConstInt(L->i32, 0, 0), "");
    for (int i = 1; i < a->ty.lanes; i++)
      r = fminmax(L, 1, r, LLVMBuildExtractElement(L->B, v, LLVMConstInt(L->i32, (unsigned)i, 0), ""));
    return r;
  }
  const char *name = (is_signed(s)) ? "llvm.vector.reduce.smax" : "llvm.vector.reduce.umax";
  return call_intrinsic(L, name, &vty, 1, &v, 1, NULL);
}

static LLVMValueRef emit_const(lctx *L, const kf_lir_expr *e) {
  LLVMTypeRef ty = scalar_type(L, e->ty.s);
  switch (e->ty.s) {
  case KF_F32: case KF_F64: return LLVMConstReal(ty, e->fval);
  case KF_BOOL: return LLVMConstInt(ty, e->ival != 0, 0);
  case KF_BF16: {
    /* bf16 constants hold fval; round it like CVT f32 -> bf16 does (at compile time). */
    float x = (float)e->fval;
    uint32_t bits;
    memcpy(&bits, &x, 4);
    uint32_t r = x != x                      ? (bits >> 16) | 0x40
                 : (bits & 0x7f800000) == 0 ? (bits >> 16) & 0x8000
                                            : (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
    return LLVMConstInt(ty, r & 0xffff, 0);
  }
  default: return LLVMConstInt(ty, (unsigned long long)e->ival, 0);
  }
}

static LLVMValueRef expr(lctx *L, const kf_lir_expr *e) {
  LLVMTypeRef ty = lty(L, e->ty);
  kf_scalar s = e->ty.s;
  LLVMValueRef a = NULL, b = NULL, c = NULL;
  switch (e->op) {
  case KF_L_CONST: return emit_const(L, e);
  case KF_L_VAR: return LLVMBuildLoad2(L->B, ty, L->var_slot[e->var], "");
  case KF_L_LOAD: case KF_L_LOADN: return emit_load(L, e);
  case KF_L_DPBUSD: return emit_dpbusd(L, e);
  case KF_L_DPBF16: return emit_dpbf16(L, e);
  case KF_L_LUT16: return emit_lut16(L, e);
  case KF_L_CVT: return emit_cvt(L, e);
  case KF_L_REDUCE_ADD: case KF_L_REDUCE_MAX: return emit_reduce(L, e);
  default: break;
  }
  a = expr(L, e->a[0]);
  if (e->a[1]) b = expr(L, e->a[1]);
  if (e->a[2]) c = expr(L, e->a[2]);
  int fl = kf_scalar_is_float(s);
  switch (e->op) {
  case KF_L_ADD: return fl ? LLVMBuildFAdd(L->B, a, b, "") : LLVMBuildAdd(L->B, a, b, "");
  case KF_L_SUB: return fl ? LLVMBuildFSub(L->B, a, b, "") : LLVMBuildSub(L->B, a, b, "");
  case KF_L_MUL: return fl ? LLVMBuildFMul(L->B, a, b, "") : LLVMBuildMul(L->B, a, b, "");
  case KF_L_DIV:
    if (fl) return LLVMBuildFDiv(L->B, a, b, "");
    return is_signed(s) ? LLVMBuildSDiv(L->B, a, b, "") : LLVMBuildUDiv(L->B, a, b, "");
  case KF_L_MIN: case KF_L_MAX: {
    int is_max = e->op == KF_L_MAX;
    if (fl) return fminmax(L, is_max, a, b);
    LLVMValueRef args[2] = {a, b};
    const char *name = is_max ? (is_signed(s) ? "llvm.smax" : "llvm.umax")
                              : (is_signed(s) ? "llvm.smin" : "llvm.umin");
    return intr_same(L, name, args, 2);
  }
  case KF_L_AND: return LLVMBuildAnd(L->B, a, b, "");
  case KF_L_OR: return LLVMBuildOr(L->B, a, b, "");
  case KF_L_XOR: return LLVMBuildXor(L->B, a, b, "");
  case KF_L_SHL: return LLVMBuildShl(L->B, a, b, "");
  case KF_L_SHR: return is_signed(s) ? LLVMBuildAShr(L->B, a, b, "") : LLVMBuildLShr(L->B, a, b, "");
  case KF_L_LT: case KF_L_LE: case KF_L_EQ: case KF_L_NE: {
    kf_scalar os = e->a[0]->ty.s;
    if (kf_scalar_is_float(os)) {
      static const LLVMRealPredicate fp[] = {LLVMRealOLT, LLVMRealOLE, LLVMRealOEQ, LLVMRealUNE};
      return LLVMBuildFCmp(L->B, fp[e->op - KF_L_LT], a, b, "");
    }
    static const LLVMIntPredicate sp[] = {LLVMIntSLT, LLVMIntSLE, LLVMIntEQ, LLVMIntNE};
    static const LLVMIntPredicate up[] = {LLVMIntULT, LLVMIntULE, LLVMIntEQ, LLVMIntNE};
    return LLVMBuildICmp(L->B, (is_signed(os) ? sp : up)[e->op - KF_L_LT], a, b, "");
  }
  case KF_L_NEG:
    if (fl) return LLVMBuildFNeg(L->B, a, "");
    if (s == KF_BOOL) return a; /* -1 wraps to true, -0 is false */
    if (s == KF_BF16) return LLVMBuildXor(L->B, a, splat_i(ty, 0x8000), "");
    if (!is_int(s)) break;
    return LLVMBuildNeg(L->B, a, "");
  case KF_L_ABS:
    if (fl) return intr_same(L, "llvm.fabs", &a, 1);
    if (s == KF_BOOL) return a;
    if (s == KF_BF16) return LLVMBuildAnd(L->B, a, splat_i(ty, 0x7fff), "");
    if (!is_int(s)) break;
    if (!is_signed(s)) return a;
    {
      LLVMValueRef args[2] = {a, LLVMConstInt(L->i1, 0, 0)}; /* abs(INT_MIN) = INT_MIN */
      LLVMTypeRef aty = LLVMTypeOf(a);
      return call_intrinsic(L, "llvm.abs", &aty, 1, args, 2, aty);
    }
  case KF_L_SQRT: return intr_same(L, "llvm.sqrt", &a, 1);
  case KF_L_ROUND: return intr_same(L, "llvm.roundeven", &a, 1);
  case KF_L_FLOOR: return intr_same(L, "llvm.floor", &a, 1);
  case KF_L_FMA: {
    LLVMValueRef args[3] = {a, b, c};
    return intr_same(L, "llvm.fma", args, 3);
  }
  case KF_L_SELECT: return LLVMBuildSelect(L->B, a, b, c, "");
  case KF_L_BITCAST: return LLVMBuildBitCast(L->B, a, ty, "");
  case KF_L_BROADCAST: {
    LLVMValueRef ins = LLVMBuildInsertElement(L->B, LLVMGetPoison(ty), a,
                                              LLVMConstInt(L->i32, 0, 0), "");
    LLVMValueRef zero = LLVMConstNull(LLVMVectorType(L->i32, (unsigned)e->ty.lanes));
    return LLVMBuildShuffleVector(L->B, ins, LLVMGetPoison(ty), zero, "");
  }
  case KF_L_EXTRACT:
    if (e->a[0]->ty.lanes == 1) return a;
    return LLVMBuildExtractElement(L->B, a, LLVMConstInt(L->i32, (unsigned long long)e->ival, 0), "");
  default: break;
  }
  lfail(L, KF_EINVAL, "operation on %s x %d is not supported by LIR semantics",
        kf_scalar_name(s), e->ty.lanes);
  return LLVMGetUndef(ty);
}

/* ---- statements ---- */

static int block_has_vectors(const kf_lir_block *b);

static int expr_has_vectors(const kf_lir_expr *e) {
  if (!e) return 0;
  if (e->ty.lanes > 1) return 1;
  for (int i = 0; i < 3; i++)
    if (expr_has_vectors(e->a[i])) return 1;
  return 0;
}

static int block_has_vectors(const kf_lir_block *b) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_lir_stmt *s = b->data[i];
    if (expr_has_vectors(s->e) || block_has_vectors(&s->body) || block_has_vectors(&s->els))
      return 1;
  }
  return 0;
}

/* Loop metadata for a loop the lowering already vectorized: tell the loop vectorizer to
** leave it alone (it would only add runtime checks and epilogues around vector code). */
static void mark_no_vectorize(lctx *L, LLVMValueRef latch_br) {
  LLVMMetadataRef width[2] = {LLVMMDStringInContext2(L->C, "llvm.loop.vectorize.width", 25),
                              LLVMValueAsMetadata(LLVMConstInt(L->i32, 1, 0))};
  LLVMMetadataRef prop = LLVMMDNodeInContext2(L->C, width, 2);
  LLVMMetadataRef self = LLVMTemporaryMDNode(L->C, NULL, 0);
  LLVMMetadataRef ops[2] = {self, prop};
  LLVMMetadataRef loop_id = LLVMMDNodeInContext2(L->C, ops, 2);
  LLVMMetadataReplaceAllUsesWith(self, loop_id); /* loop_id's operand 0 is now loop_id */
  LLVMSetMetadata(latch_br, L->loop_md_kind, LLVMMetadataAsValue(L->C, loop_id));
}

static void block(lctx *L, const kf_lir_block *b);

static void stmt(lctx *L, const kf_lir_stmt *s) {
  switch (s->kind) {
  case KF_S_ASSIGN: LLVMBuildStore(L->B, expr(L, s->e), L->var_slot[s->var]); return;
  case KF_S_STORE: case KF_S_STOREN: {
    kf_ty ty = s->e->ty;
    LLVMValueRef v = to_mem(L, ty, expr(L, s->e));
    LLVMValueRef p = elem_ptr(L, s->buf, expr(L, s->idx));
    if (s->kind == KF_S_STORE) {
      LLVMValueRef st = LLVMBuildStore(L->B, v, p);
      LLVMSetAlignment(st, elem_align(ty.s));
      return;
    }
    LLVMTypeRef vty = LLVMVectorType(mem_elem_type(L, ty.s), (unsigned)ty.lanes);
    if (ty.lanes == 1)
      v = LLVMBuildInsertElement(L->B, LLVMGetPoison(vty), v, LLVMConstInt(L->i32, 0, 0), "");
    LLVMValueRef args[4] = {v, p, LLVMConstInt(L->i32, elem_align(ty.s), 0),
                            lane_mask(L, ty.lanes, expr(L, s->n))};
    LLVMTypeRef ovl[2] = {vty, L->ptr};
    call_intrinsic(L, "llvm.masked.store", ovl, 2, args, 4, NULL);
    return;
  }
  case KF_S_FOR: {
    LLVMValueRef slot = L->var_slot[s->var];
    /* lo and hi are evaluated once, both before the loop variable is set */
    LLVMValueRef lo = expr(L, s->lo), hi = expr(L, s->hi);
    LLVMBuildStore(L->B, lo, slot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "for.head");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "for.body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "for.exit");
    LLVMBuildBr(L->B, head);
    LLVMPositionBuilderAtEnd(L->B, head);
    LLVMValueRef i = LLVMBuildLoad2(L->B, L->i64, slot, "");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, i, hi, ""), body, exit);
    LLVMPositionBuilderAtEnd(L->B, body);
    block(L, &s->body);
    i = LLVMBuildLoad2(L->B, L->i64, slot, "");
    LLVMBuildStore(L->B, LLVMBuildNSWAdd(L->B, i, LLVMConstInt(L->i64, (unsigned long long)s->step, 0), ""), slot);
    LLVMValueRef back = LLVMBuildBr(L->B, head);
    if (block_has_vectors(&s->body)) mark_no_vectorize(L, back);
    LLVMPositionBuilderAtEnd(L->B, exit);
    return;
  }
  case KF_S_IF: {
    LLVMBasicBlockRef then_bb = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "if.then");
    LLVMBasicBlockRef else_bb = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "if.else");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "if.end");
    LLVMBuildCondBr(L->B, expr(L, s->e), then_bb, else_bb);
    LLVMPositionBuilderAtEnd(L->B, then_bb);
    block(L, &s->body);
    LLVMBuildBr(L->B, join);
    LLVMPositionBuilderAtEnd(L->B, else_bb);
    block(L, &s->els);
    LLVMBuildBr(L->B, join);
    LLVMPositionBuilderAtEnd(L->B, join);
    return;
  }
  case KF_S_COMMENT: return;
  }
}

static void block(lctx *L, const kf_lir_block *b) {
  for (size_t i = 0; i < b->len && !L->rc; i++) stmt(L, b->data[i]);
}

/* ---- module ---- */

static int is_c_identifier(const char *s) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return 0;
  return 1;
}

static void add_attr(lctx *L, LLVMValueRef fn, LLVMAttributeIndex idx, const char *name) {
  unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
  kf_assert(kind != 0);
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(L->C, kind, 0));
}

static void add_cpu_attrs(lctx *L, LLVMValueRef fn) {
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(L->C, "target-cpu", 10, L->t->llvm_cpu,
                                                    (unsigned)strlen(L->t->llvm_cpu)));
  if (*L->t->llvm_features)
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(L->C, "target-features", 15,
                                                      L->t->llvm_features,
                                                      (unsigned)strlen(L->t->llvm_features)));
  add_attr(L, fn, LLVMAttributeFunctionIndex, "nounwind");
}

/* Builds NAME.body (buffers as noalias parameters, the LIR body) and NAME (the kernel
** entry point that gathers the buffers and calls NAME.body). */
static void build_module(lctx *L) {
  const kf_lir_func *f = L->f;
  size_t n_bufs = f->bufs.len;
  L->i1 = LLVMInt1TypeInContext(L->C);
  L->i8 = LLVMInt8TypeInContext(L->C);
  L->i16 = LLVMInt16TypeInContext(L->C);
  L->i32 = LLVMInt32TypeInContext(L->C);
  L->i64 = LLVMInt64TypeInContext(L->C);
  L->f32 = LLVMFloatTypeInContext(L->C);
  L->f64 = LLVMDoubleTypeInContext(L->C);
  L->ptr = LLVMPointerTypeInContext(L->C, 0);
  L->void_ty = LLVMVoidTypeInContext(L->C);
  L->loop_md_kind = LLVMGetMDKindIDInContext(L->C, "llvm.loop", 9);
  L->B = LLVMCreateBuilderInContext(L->C);

  /* NAME.body(ptr noalias buf0, ..., i64 par_lo, i64 par_hi) */
  size_t n_params = n_bufs + 2;
  LLVMTypeRef *ptys = kf_xcalloc(n_params, sizeof *ptys);
  for (size_t i = 0; i < n_bufs; i++) ptys[i] = L->ptr;
  ptys[n_bufs] = ptys[n_bufs + 1] = L->i64;
  LLVMTypeRef body_ty = LLVMFunctionType(L->void_ty, ptys, (unsigned)n_params, 0);
  free(ptys);
  kf_str body_name = {0};
  kf_str_printf(&body_name, "%s.body", f->name);
  L->body_fn = LLVMAddFunction(L->M, body_name.data, body_ty);
  kf_str_free(&body_name);
  LLVMSetLinkage(L->body_fn, LLVMInternalLinkage);
  add_cpu_attrs(L, L->body_fn);
  add_attr(L, L->body_fn, LLVMAttributeFunctionIndex, "alwaysinline");
  for (size_t i = 0; i < n_bufs; i++) {
    add_attr(L, L->body_fn, (LLVMAttributeIndex)(i + 1), "noalias");
    add_attr(L, L->body_fn, (LLVMAttributeIndex)(i + 1), "nocapture");
    if (f->bufs.data[i].kind == KF_BUF_IN)
      add_attr(L, L->body_fn, (LLVMAttributeIndex)(i + 1), "readonly");
    LLVMSetValueName2(LLVMGetParam(L->body_fn, (unsigned)i), f->bufs.data[i].name,
                      strlen(f->bufs.data[i].name));
  }
  L->buf_ptr = kf_xcalloc(n_bufs ? n_bufs : 1, sizeof *L->buf_ptr);
  for (size_t i = 0; i < n_bufs; i++) L->buf_ptr[i] = LLVMGetParam(L->body_fn, (unsigned)i);

  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->C, L->body_fn, "entry");
  LLVMPositionBuilderAtEnd(L->B, entry);
  size_t n_vars = f->vars.len;
  L->var_slot = kf_xcalloc(n_vars ? n_vars : 1, sizeof *L->var_slot);
  for (size_t i = 0; i < n_vars; i++) {
    LLVMTypeRef vty = lty(L, f->vars.data[i].ty);
    L->var_slot[i] = LLVMBuildAlloca(L->B, vty, f->vars.data[i].name);
  }
  for (size_t i = 0; i < n_vars; i++) /* variables start at zero */
    LLVMBuildStore(L->B, LLVMConstNull(lty(L, f->vars.data[i].ty)), L->var_slot[i]);
  LLVMBuildStore(L->B, LLVMGetParam(L->body_fn, (unsigned)n_bufs), L->var_slot[f->par_lo_var]);
  LLVMBuildStore(L->B, LLVMGetParam(L->body_fn, (unsigned)n_bufs + 1), L->var_slot[f->par_hi_var]);
  block(L, &f->body);
  LLVMBuildRetVoid(L->B);

  /* NAME(ptr args, i64 par_lo, i64 par_hi, ptr ws) */
  LLVMTypeRef kty[4] = {L->ptr, L->i64, L->i64, L->ptr};
  LLVMTypeRef kernel_ty = LLVMFunctionType(L->void_ty, kty, 4, 0);
  LLVMValueRef kernel = LLVMAddFunction(L->M, f->name, kernel_ty);
  add_cpu_attrs(L, kernel);
  add_attr(L, kernel, 1, "nocapture");
  add_attr(L, kernel, 1, "readonly");
  add_attr(L, kernel, 1, "noalias");
  add_attr(L, kernel, 4, "nocapture");
  add_attr(L, kernel, 4, "noalias");
  static const char *const pnames[4] = {"args", "par_lo", "par_hi", "ws"};
  for (unsigned i = 0; i < 4; i++)
    LLVMSetValueName2(LLVMGetParam(kernel, i), pnames[i], strlen(pnames[i]));
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, kernel, "entry"));
  LLVMValueRef *call_args = kf_xcalloc(n_params, sizeof *call_args);
  LLVMValueRef args_p = LLVMGetParam(kernel, 0), ws = LLVMGetParam(kernel, 3);
  for (size_t i = 0; i < n_bufs; i++) {
    const kf_lir_buf *bd = &f->bufs.data[i];
    if (bd->kind == KF_BUF_LOCAL) {
      LLVMValueRef off = LLVMConstInt(L->i64, (unsigned long long)bd->ws_offset, 0);
      call_args[i] = LLVMBuildGEP2(L->B, L->i8, ws, &off, 1, bd->name);
    } else {
      LLVMValueRef slot_idx = LLVMConstInt(L->i64, (unsigned long long)bd->arg_index, 0);
      LLVMValueRef slot = LLVMBuildGEP2(L->B, L->ptr, args_p, &slot_idx, 1, "");
      LLVMValueRef p = LLVMBuildLoad2(L->B, L->ptr, slot, bd->name);
      LLVMSetAlignment(p, 8);
      call_args[i] = p;
    }
  }
  call_args[n_bufs] = LLVMGetParam(kernel, 1);
  call_args[n_bufs + 1] = LLVMGetParam(kernel, 2);
  LLVMBuildCall2(L->B, body_ty, L->body_fn, call_args, (unsigned)n_params, "");
  LLVMBuildRetVoid(L->B);
  free(call_args);
}

/* LIR -> verified, O3-optimized module in context C, for target machine tm. */
static int translate(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t,
                     LLVMTargetMachineRef tm, LLVMContextRef C, LLVMModuleRef *out) {
  *out = NULL;
  if (!is_c_identifier(f->name))
    return kf_err(ctx, KF_EINVAL, "LLVM emitter: kernel name '%s' is not a C identifier",
                  f->name ? f->name : "(null)");
  int rc = kf_lir_verify(ctx, f);
  if (rc) return kf_err_prefix(ctx, rc, "LLVM emitter");
  lctx L = {0};
  L.ctx = ctx;
  L.f = f;
  L.t = t;
  L.C = C;
  L.M = LLVMModuleCreateWithNameInContext(f->name, C);
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(L.M, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(L.M, dl);
  LLVMDisposeTargetData(dl);
  build_module(&L);
  LLVMDisposeBuilder(L.B);
  free(L.var_slot);
  free(L.buf_ptr);
  if (L.rc) {
    LLVMDisposeModule(L.M);
    return L.rc;
  }
  char *msg = NULL;
  if (LLVMVerifyModule(L.M, LLVMReturnStatusAction, &msg)) {
    rc = kf_err(ctx, KF_ECOMPILE, "LLVM emitter, kernel %s: LLVM verifier: %s", f->name,
                msg ? msg : "?");
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(L.M);
    return rc;
  }
  LLVMDisposeMessage(msg);
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  LLVMErrorRef err = LLVMRunPasses(L.M, "default<O3>", tm, opts);
  LLVMDisposePassBuilderOptions(opts);
  if (err) {
    char *em = LLVMGetErrorMessage(err);
    rc = kf_err(ctx, KF_ECOMPILE, "LLVM emitter, kernel %s: optimizer: %s", f->name, em);
    LLVMDisposeErrorMessage(em);
    LLVMDisposeModule(L.M);
    return rc;
  }
  *out = L.M;
  return KF_OK;
}

/* Emits kind (LL, ASM or OBJ) into memory (data, len; free the data with free()). */
static int emit_bytes(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_llvm_file kind,
                      char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  if (kind != KF_LLVM_LL && kind != KF_LLVM_ASM && kind != KF_LLVM_OBJ)
    return kf_err(ctx, KF_EINVAL, "LLVM emitter: unknown output kind %d", (int)kind);
  LLVMTargetMachineRef tm;
  int rc = make_target_machine(ctx, t, &tm);
  if (rc) return rc;
  LLVMContextRef C = LLVMContextCreate();
  LLVMModuleRef M;
  rc = translate(ctx, f, t, tm, C, &M);
  if (!rc) {
    if (kind == KF_LLVM_LL) {
      char *text = LLVMPrintModuleToString(M);
      *len = strlen(text);
      *data = kf_xmalloc(*len + 1);
      memcpy(*data, text, *len + 1);
      LLVMDisposeMessage(text);
    } else {
      char *msg = NULL;
      LLVMMemoryBufferRef mb = NULL;
      if (LLVMTargetMachineEmitToMemoryBuffer(
              tm, M, kind == KF_LLVM_ASM ? LLVMAssemblyFile : LLVMObjectFile, &msg, &mb)) {
        rc = kf_err(ctx, KF_ECOMPILE, "LLVM emitter, kernel %s: code generation for %s: %s",
                    f->name, t->name, msg ? msg : "?");
      } else {
        *len = LLVMGetBufferSize(mb);
        *data = kf_xmalloc(*len + 1);
        memcpy(*data, LLVMGetBufferStart(mb), *len);
        (*data)[*len] = 0;
        LLVMDisposeMemoryBuffer(mb);
      }
      LLVMDisposeMessage(msg);
    }
    LLVMDisposeModule(M);
  }
  LLVMContextDispose(C);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

int kf_llvm_emit_string(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_llvm_file kind,
                        kf_str *out) {
  if (kind == KF_LLVM_OBJ)
    return kf_err(ctx, KF_EINVAL, "LLVM emitter: an object file is not text (use kf_llvm_emit_file)");
  char *data;
  size_t len;
  int rc = emit_bytes(ctx, f, t, kind, &data, &len);
  if (rc) return rc;
  kf_str_puts(out, data);
  free(data);
  return KF_OK;
}

int kf_llvm_emit_file(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_llvm_file kind,
                      const char *path) {
  char *data;
  size_t len;
  int rc = emit_bytes(ctx, f, t, kind, &data, &len);
  if (rc) return rc;
  rc = kf_write_file(ctx, path, data, len);
  free(data);
  if (rc) return kf_err_prefix(ctx, rc, "LLVM emitter, kernel %s", f->name);
  return KF_OK;
}

/* ---- JIT ---- */

static void jit_release(kf_loaded *k) {
  if (k->impl) {
    LLVMErrorRef err = LLVMOrcDisposeLLJIT((LLVMOrcLLJITRef)k->impl);
    if (err) LLVMConsumeError(err);
  }
  k->impl = NULL;
  k->fn = NULL;
}

static int orc_fail(kf_ctx *ctx, LLVMErrorRef err, const char *fname, const char *what) {
  char *em = LLVMGetErrorMessage(err);
  int rc = kf_err(ctx, KF_ECOMPILE, "LLVM JIT, kernel %s: %s: %s", fname, what, em);
  LLVMDisposeErrorMessage(em);
  return rc;
}

int kf_llvm_jit(kf_ctx *ctx, const kf_lir_func *f, const kf_target *t, kf_loaded *out) {
  memset(out, 0, sizeof *out);
  LLVMTargetMachineRef tm, jit_tm;
  int rc = make_target_machine(ctx, t, &tm);
  if (rc) return rc;
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMModuleRef M;
  rc = translate(ctx, f, t, tm, LLVMOrcThreadSafeContextGetContext(tsc), &M);
  LLVMDisposeTargetMachine(tm);
  if (rc) {
    LLVMOrcDisposeThreadSafeContext(tsc);
    return rc;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(M, tsc);
  LLVMOrcDisposeThreadSafeContext(tsc); /* the module keeps the context alive */
  if ((rc = make_target_machine(ctx, t, &jit_tm))) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    return rc;
  }
  /* The JIT compiles for t's CPU and features, not the host's defaults. */
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
      builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jit_tm));
  LLVMOrcLLJITRef jit = NULL;
  LLVMErrorRef err = LLVMOrcCreateLLJIT(&jit, builder);
  if (err) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    return orc_fail(ctx, err, f->name, "creating the JIT");
  }
  /* Code generation may call libm (fmaf, floorf, roundevenf on targets without the
  ** instructions): resolve such symbols from the process. */
  LLVMOrcDefinitionGeneratorRef gen = NULL;
  err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit),
                                                             NULL, NULL);
  if (err) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    rc = orc_fail(ctx, err, f->name, "process symbol search");
    if ((err = LLVMOrcDisposeLLJIT(jit))) LLVMConsumeError(err);
    return rc;
  }
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
  LLVMOrcJITDylibAddGenerator(jd, gen);
  err = LLVMOrcLLJITAddLLVMIRModule(jit, jd, tsm);
  if (err) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    rc = orc_fail(ctx, err, f->name, "adding the module");
    if ((err = LLVMOrcDisposeLLJIT(jit))) LLVMConsumeError(err);
    return rc;
  }
  LLVMOrcExecutorAddress addr = 0;
  err = LLVMOrcLLJITLookup(jit, &addr, f->name);
  if (err || !addr) {
    rc = err ? orc_fail(ctx, err, f->name, "compiling/looking up the kernel")
             : kf_err(ctx, KF_ECOMPILE, "LLVM JIT, kernel %s: null address", f->name);
    if ((err = LLVMOrcDisposeLLJIT(jit))) LLVMConsumeError(err);
    return rc;
  }
  out->impl = jit;
  out->release = jit_release;
  /* The executor address is the code's address in this process. */
  kf_kernel_fn fn;
  uintptr_t a = (uintptr_t)addr;
  memcpy(&fn, &a, sizeof fn);
  out->fn = fn;
  return KF_OK;
}

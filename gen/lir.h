/*
** lir.h: the low-level kernel IR ("LIR") that targets lower the tile IR into and that
** both emitters (C source, LLVM-C) translate one node at a time.
**
** Why two levels: the tile IR (ir.h) says *what* a template computes (tiles, mma,
** quantize, online softmax); the target's lowering decides *how* (register blocking,
** vector width, u8xs8 tricks, exp polynomial) and writes that as LIR. Because all
** decisions are made once, in the lowering, the C and LLVM emitters stay small
** translators and cannot disagree about the algorithm.
**
** LIR is imperative and structured: typed mutable variables, expression trees, and
** statements (assign, store, for, if). Vectors are first-class (lanes > 1). Memory is
** reached only through buffers: kernel arguments (pointers in args[]) and locals
** (carved out of the per-call workspace). Indices are element indices (i64).
**
** Every kernel has the same C signature:
**     void NAME(void *const *args, int64_t par_lo, int64_t par_hi, void *ws);
** args[i] is the i-th argument buffer (in order of kf_lir_buf with ARG kinds);
** [par_lo, par_hi) is the range of the kernel's parallel loop that this call runs
** (the runtime splits it over threads); ws is a workspace of ws_bytes, 64-byte aligned,
** private to this call.
*/
#ifndef KF_LIR_H
#define KF_LIR_H

#include "kf.h"

/* Scalar kinds. BF16 is stored as 16 bits; arithmetic on it is not allowed (convert
** with KF_L_CVT to F32 first). */
typedef enum {
  KF_I8, KF_U8, KF_I16, KF_U16, KF_I32, KF_U32, KF_I64, KF_F32, KF_F64, KF_BF16,
  KF_BOOL, /* result of a comparison; only used as a SELECT/IF condition */
  KF_N_SCALAR
} kf_scalar;

typedef struct kf_ty {
  kf_scalar s;
  int lanes; /* 1 = scalar; vectors: 2..64 lanes */
} kf_ty;

static inline kf_ty kf_ty_of(kf_scalar s, int lanes) {
  kf_ty t = {s, lanes};
  return t;
}
int kf_scalar_bits(kf_scalar s);
const char *kf_scalar_name(kf_scalar s); /* "i8", "f32", "bf16", ... */
int kf_ty_eq(kf_ty a, kf_ty b);
int kf_scalar_is_float(kf_scalar s);  /* F32, F64 (not BF16) */
int kf_scalar_is_signed(kf_scalar s); /* I8..I64 */

typedef enum {
  /* leaves */
  KF_L_CONST,     /* scalar constant of type ty (ival for ints/bool, fval for floats) */
  KF_L_VAR,       /* value of variable var */
  KF_L_LOAD,      /* ty.lanes contiguous elements from buf at element index a[0] (i64) */
  KF_L_LOADN,     /* like LOAD but only the first a[1] (i64, 0..lanes) lanes are read;
                  ** the other lanes are zero; no memory beyond them is touched */
  /* binary, lane-wise; a[0], a[1] and the result have type ty. DIV on integers truncates
  ** toward zero (the lowering uses it only with non-negative operands, divisor > 0);
  ** MIN/MAX on integers compare by the type's signedness; on floats they are a<b ? a : b and
  ** a>b ? a : b (x86 minps/maxps: b when either is NaN or both are zero), and REDUCE_MAX is
  ** the left fold of that rule. FOR evaluates lo and hi once, before the first iteration.
  ** ADD/SUB/MUL/NEG/SHL on integers wrap; f32->bf16 rounds to nearest even, quiets NaN and
  ** flushes f32 denormals to signed zero (as vcvtneps2bf16). */
  KF_L_ADD, KF_L_SUB, KF_L_MUL, KF_L_DIV, KF_L_MIN, KF_L_MAX,
  KF_L_AND, KF_L_OR, KF_L_XOR, /* integers only */
  KF_L_SHL, KF_L_SHR,          /* integers; SHR is arithmetic for signed, logical for unsigned;
                               ** a[1] has the result's type (broadcast a scalar count), < bits */
  /* comparisons: a[0], a[1] of the same type; result KF_BOOL with the same lanes */
  KF_L_LT, KF_L_LE, KF_L_EQ, KF_L_NE,
  /* unary, lane-wise */
  KF_L_NEG, KF_L_ABS,
  KF_L_SQRT,      /* floats */
  KF_L_ROUND,     /* floats: round to nearest, ties to even; result is still float */
  KF_L_FLOOR,     /* floats */
  /* other */
  KF_L_FMA,       /* a[0]*a[1]+a[2], floats, fused (single rounding) */
  KF_L_SELECT,    /* a[0] (BOOL, same lanes) ? a[1] : a[2] */
  KF_L_CVT,       /* numeric conversion of a[0] to ty (same lanes): int->int wraps or
                  ** extends by the source signedness; float->int truncates toward zero
                  ** (values must be in range); int->float rounds to nearest;
                  ** f32->bf16 rounds to nearest even; bf16->f32 is exact */
  KF_L_BITCAST,   /* reinterpret bits; total bits of a[0] and ty equal */
  KF_L_BROADCAST, /* scalar a[0] to ty.lanes lanes */
  KF_L_EXTRACT,   /* lane ival of vector a[0] -> scalar */
  KF_L_REDUCE_ADD,/* sum of the lanes of a[0] -> scalar (floats: any association order) */
  KF_L_REDUCE_MAX,/* max of the lanes -> scalar */
  KF_L_DPBUSD,    /* a[0]: i32 x L accumulator; a[1]: u8 x 4L; a[2]: i8 x 4L.
                  ** result lane i = a0[i] + sum_{j<4} u8(a1[4i+j]) * i8(a2[4i+j]), exact
                  ** (wrapping on int32 overflow, as the instruction) */
  KF_L_DPBF16,    /* a[0]: f32 x L; a[1], a[2]: bf16 x 2L.
                  ** result lane i = a0[i] + a1[2i]*a2[2i] + a1[2i+1]*a2[2i+1] (products exact
                  ** in f32; accumulation order/rounding as vdpbf16ps; emulation may round
                  ** differently, within 2 f32 ulps of the sum) */
  KF_L_LUT16,     /* a[0]: u8 x 16 table; a[1]: u8 x N indices; result u8 x N:
                  ** lane i = a0[a1[i] & 15] (a byte shuffle: vpshufb with the table in every
                  ** 128-bit lane) */
  KF_L_N_OPS
} kf_lir_op;

typedef struct kf_lir_expr kf_lir_expr;
struct kf_lir_expr {
  kf_lir_op op;
  kf_ty ty;         /* result type */
  int buf;          /* LOAD/LOADN: buffer id */
  int var;          /* VAR: variable id */
  int64_t ival;     /* CONST (ints, bool), EXTRACT lane */
  double fval;      /* CONST (floats) */
  kf_lir_expr *a[3];
};

typedef enum {
  KF_S_ASSIGN, /* vars[var] = e */
  KF_S_STORE,  /* buf[idx .. idx+lanes) = e  (e's lanes) */
  KF_S_STOREN, /* first n lanes of e to buf[idx ..), nothing beyond */
  KF_S_FOR,    /* for (var = lo; var < hi; var += step) body   (var is I64, step > 0) */
  KF_S_IF,     /* if (cond) body else els  (cond: scalar BOOL) */
  KF_S_COMMENT /* text copied into emitted C as a comment; ignored by LLVM */
} kf_lir_stmt_kind;

typedef struct kf_lir_stmt kf_lir_stmt;
typedef struct kf_lir_block {
  kf_lir_stmt **data;
  size_t len, cap;
} kf_lir_block;

struct kf_lir_stmt {
  kf_lir_stmt_kind kind;
  int var;            /* ASSIGN, FOR */
  int buf;            /* STORE, STOREN */
  kf_lir_expr *e;     /* ASSIGN value, STORE value, IF cond */
  kf_lir_expr *idx;   /* STORE index (i64) */
  kf_lir_expr *n;     /* STOREN count (i64) */
  kf_lir_expr *lo, *hi; /* FOR bounds (i64) */
  int64_t step;       /* FOR */
  kf_lir_block body;  /* FOR, IF-then */
  kf_lir_block els;   /* IF-else */
  const char *text;   /* COMMENT */
};

typedef enum {
  KF_BUF_IN,    /* argument, read only */
  KF_BUF_OUT,   /* argument, written (may also be read) */
  KF_BUF_LOCAL  /* workspace slice, private to the call */
} kf_buf_kind;

typedef struct kf_lir_buf {
  const char *name;
  kf_scalar elem;
  int64_t n_elems;  /* for arguments: elements the kernel may touch (for docs and checks) */
  kf_buf_kind kind;
  int arg_index;    /* IN/OUT: position in args[]; LOCAL: -1 */
  int64_t ws_offset;/* LOCAL: byte offset in the workspace, 64-byte aligned */
} kf_lir_buf;

typedef struct kf_lir_var {
  const char *name;
  kf_ty ty;
} kf_lir_var;

typedef struct kf_lir_func {
  kf_arena arena;
  const char *name;       /* C identifier */
  const char *header;     /* comment placed at the top of emitted code (template, shape...) */
  KF_VEC(kf_lir_buf) bufs;
  KF_VEC(kf_lir_var) vars;
  int n_args;
  int64_t ws_bytes;
  int par_lo_var, par_hi_var; /* I64 variables holding par_lo/par_hi on entry */
  int64_t par_total;      /* the full parallel range is [0, par_total) */
  kf_lir_block body;
} kf_lir_func;

/* Construction. Names are copied. Buffers and variables return their id. */
kf_lir_func *kf_lir_func_new(const char *name);
void kf_lir_func_free(kf_lir_func *f);
int kf_lir_buf_add(kf_lir_func *f, const char *name, kf_scalar elem, int64_t n_elems,
                   kf_buf_kind kind);
int kf_lir_var_add(kf_lir_func *f, const char *name, kf_ty ty);

kf_lir_expr *kf_lc_i(kf_lir_func *f, kf_ty ty, int64_t v);    /* int constant (scalar ty) */
kf_lir_expr *kf_lc_f(kf_lir_func *f, kf_ty ty, double v);     /* float constant (scalar ty) */
kf_lir_expr *kf_lc_i64(kf_lir_func *f, int64_t v);
kf_lir_expr *kf_lv(kf_lir_func *f, int var);
kf_lir_expr *kf_lload(kf_lir_func *f, kf_ty ty, int buf, kf_lir_expr *idx);
kf_lir_expr *kf_lloadn(kf_lir_func *f, kf_ty ty, int buf, kf_lir_expr *idx, kf_lir_expr *n);
/* Generic node: result type ty, operands a0..a2 (NULL where unused). */
kf_lir_expr *kf_lop(kf_lir_func *f, kf_lir_op op, kf_ty ty, kf_lir_expr *a0, kf_lir_expr *a1,
                    kf_lir_expr *a2);
/* Binary op whose type is a0's. */
kf_lir_expr *kf_lbin(kf_lir_func *f, kf_lir_op op, kf_lir_expr *a0, kf_lir_expr *a1);
kf_lir_expr *kf_lbcast(kf_lir_func *f, int lanes, kf_lir_expr *scalar);
kf_lir_expr *kf_lcvt(kf_lir_func *f, kf_ty ty, kf_lir_expr *a);
kf_lir_expr *kf_lbitcast(kf_lir_func *f, kf_ty ty, kf_lir_expr *a);

/* Statements are appended to a block. FOR/IF return the statement so the caller
** can fill body/els. */
void kf_lassign(kf_lir_func *f, kf_lir_block *b, int var, kf_lir_expr *e);
void kf_lstore(kf_lir_func *f, kf_lir_block *b, int buf, kf_lir_expr *idx, kf_lir_expr *e);
void kf_lstoren(kf_lir_func *f, kf_lir_block *b, int buf, kf_lir_expr *idx, kf_lir_expr *e,
                kf_lir_expr *n);
kf_lir_stmt *kf_lfor(kf_lir_func *f, kf_lir_block *b, int var, kf_lir_expr *lo,
                     kf_lir_expr *hi, int64_t step);
kf_lir_stmt *kf_lif(kf_lir_func *f, kf_lir_block *b, kf_lir_expr *cond);
void kf_lcomment(kf_lir_func *f, kf_lir_block *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks types and ids of every node; KF_EINVAL with a message naming the node. */
int kf_lir_verify(kf_ctx *ctx, const kf_lir_func *f);
/* Human-readable dump (for --emit lir and debugging). */
void kf_lir_print(const kf_lir_func *f, kf_str *out);

#endif

/*
** kf.h: the context every kforge function takes, status codes, and the two small
** containers (growable vector, string buffer) used everywhere in gen/.
*/
#ifndef KF_H
#define KF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define KF_VERSION "0.1.0"

/* Status codes: every fallible function returns one and sets kf_errmsg(ctx). */
enum {
  KF_OK = 0,
  KF_EINVAL = 1, /* bad user input: template, shape, option, file contents */
  KF_ENOMEM = 2,
  KF_EIO = 3,       /* file or process I/O */
  KF_ECOMPILE = 4,  /* the C compiler or LLVM refused generated code */
  KF_EUNSUP = 5,    /* feature not available on this target or build */
  KF_ECHECK = 6     /* a kernel's result exceeded its error bound */
};

/* The context every kforge function takes: the error sink and the target set (gen/kf_target.h).
** No global mutable state: two contexts can generate kernels in two threads. */
#define KF_MAX_TARGETS 8
struct kf_target_ops;
typedef struct kf_ctx {
  char errmsg[2048];
  int verbose;
  const struct kf_target_ops *targets[KF_MAX_TARGETS];
  int n_targets;
} kf_ctx;

/* Clears the context and registers libkforge's targets (cpu-*, interp). */
void kf_ctx_init(kf_ctx *ctx);
const char *kf_errmsg(const kf_ctx *ctx);
/* Sets the context's message (printf-style) and returns code, so callers can write
** `return kf_err(ctx, KF_EINVAL, "...")`. */
int kf_err(kf_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the current message with more context ("while emitting X: ..."). */
int kf_err_prefix(kf_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Internal invariant: aborts with file:line. Never for user input. */
#define kf_assert(c) ((c) ? (void)0 : kf_assert_fail(#c, __FILE__, __LINE__))
_Noreturn void kf_assert_fail(const char *what, const char *file, int line);

/* Allocation that aborts only on exhausted memory (treated as an internal failure). */
void *kf_xmalloc(size_t n);
void *kf_xcalloc(size_t n, size_t size);
void *kf_xrealloc(void *p, size_t n);
char *kf_xstrdup(const char *s);

/* Growable vector of any element type: KF_VEC(int) v = {0}; kf_vec_push(&v, 3). */
#define KF_VEC(T) struct { T *data; size_t len, cap; }
#define kf_vec_reserve(v, n)                                                     \
  do {                                                                           \
    if ((v)->len + (n) > (v)->cap) {                                             \
      size_t kf_nc_ = (v)->cap ? (v)->cap * 2 : 8;                               \
      while (kf_nc_ < (v)->len + (n)) kf_nc_ *= 2;                               \
      (v)->data = kf_xrealloc((v)->data, kf_nc_ * sizeof(*(v)->data));           \
      (v)->cap = kf_nc_;                                                         \
    }                                                                            \
  } while (0)
#define kf_vec_push(v, x)                                                        \
  do {                                                                           \
    kf_vec_reserve(v, 1);                                                        \
    (v)->data[(v)->len++] = (x);                                                 \
  } while (0)
#define kf_vec_free(v) (free((v)->data), (v)->data = NULL, (v)->len = (v)->cap = 0)

/* String buffer. */
typedef struct kf_str {
  char *data;
  size_t len, cap;
} kf_str;
void kf_str_printf(kf_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kf_str_vprintf(kf_str *s, const char *fmt, va_list ap);
void kf_str_puts(kf_str *s, const char *text);
void kf_str_free(kf_str *s);

/* Arena: many small allocations freed at once (IR nodes). */
typedef struct kf_arena_block kf_arena_block;
typedef struct kf_arena {
  kf_arena_block *head;
} kf_arena;
void *kf_arena_alloc(kf_arena *a, size_t n); /* zeroed, 16-byte aligned */
char *kf_arena_strdup(kf_arena *a, const char *s);
void kf_arena_free(kf_arena *a);

/* Files. */
int kf_read_file(kf_ctx *ctx, const char *path, char **out, size_t *out_len);
int kf_write_file(kf_ctx *ctx, const char *path, const void *data, size_t len); /* atomic (rename) */
/* Whether two paths name the same existing file (an output that would overwrite an input). */
int kf_same_file(const char *a, const char *b);

/* Monotonic time in seconds. */
double kf_now(void);

#endif

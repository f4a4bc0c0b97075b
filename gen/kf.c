/*
** kf.c: context, errors, allocation, string buffer, arena, file helpers.
*/
#include "kf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>


const char *kf_errmsg(const kf_ctx *ctx) { return ctx->errmsg[0] ? ctx->errmsg : "no error"; }

int kf_err(kf_ctx *ctx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
  va_end(ap);
  return code;
}

int kf_err_prefix(kf_ctx *ctx, int code, const char *fmt, ...) {
  char prefix[512], old[sizeof ctx->errmsg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, ctx->errmsg, sizeof old);
  size_t np = strlen(prefix);
  if (np + 2 >= sizeof ctx->errmsg) np = sizeof ctx->errmsg - 3;
  memcpy(ctx->errmsg, prefix, np);
  memcpy(ctx->errmsg + np, ": ", 2);
  size_t room = sizeof ctx->errmsg - np - 3;
  size_t nold = strlen(old);
  if (nold > room) nold = room;
  memcpy(ctx->errmsg + np + 2, old, nold);
  ctx->errmsg[np + 2 + nold] = 0;
  return code;
}

void kf_assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "kforge: internal error: %s:%d: assertion '%s' failed\n", file, line, what);
  abort();
}

static void *check_alloc(void *p, size_t n) {
  if (!p && n) {
    fprintf(stderr, "kforge: out of memory (%zu bytes)\n", n);
    abort();
  }
  return p;
}

void *kf_xmalloc(size_t n) { return check_alloc(malloc(n ? n : 1), n); }
void *kf_xcalloc(size_t n, size_t size) { return check_alloc(calloc(n ? n : 1, size ? size : 1), n * size); }
void *kf_xrealloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1), n); }
char *kf_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(kf_xmalloc(n), s, n);
}

void kf_str_vprintf(kf_str *s, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  kf_assert(n >= 0);
  if (s->len + (size_t)n + 1 > s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 256;
    while (nc < s->len + (size_t)n + 1) nc *= 2;
    s->data = kf_xrealloc(s->data, nc);
    s->cap = nc;
  }
  vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
  s->len += (size_t)n;
}

void kf_str_printf(kf_str *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kf_str_vprintf(s, fmt, ap);
  va_end(ap);
}

void kf_str_puts(kf_str *s, const char *text) { kf_str_printf(s, "%s", text); }

void kf_str_free(kf_str *s) {
  free(s->data);
  s->data = NULL;
  s->len = s->cap = 0;
}

struct kf_arena_block {
  kf_arena_block *next;
  size_t used, size;
  _Alignas(16) unsigned char mem[];
};

void *kf_arena_alloc(kf_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->used + n > a->head->size) {
    size_t size = n > 65536 ? n : 65536;
    kf_arena_block *b = kf_xmalloc(sizeof *b + size);
    b->next = a->head;
    b->used = 0;
    b->size = size;
    a->head = b;
  }
  void *p = a->head->mem + a->head->used;
  a->head->used += n;
  return memset(p, 0, n);
}

char *kf_arena_strdup(kf_arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(kf_arena_alloc(a, n), s, n);
}

void kf_arena_free(kf_arena *a) {
  while (a->head) {
    kf_arena_block *next = a->head->next;
    free(a->head);
    a->head = next;
  }
}

int kf_read_file(kf_ctx *ctx, const char *path, char **out, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  if (!f) return kf_err(ctx, KF_EIO, "%s: cannot open: %s", path, strerror(errno));
  kf_str s = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    kf_vec_reserve(&s, n + 1);
    memcpy(s.data + s.len, chunk, n);
    s.len += n;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    kf_str_free(&s);
    return kf_err(ctx, KF_EIO, "%s: read error", path);
  }
  kf_vec_reserve(&s, 1);
  s.data[s.len] = 0;
  *out = s.data;
  if (out_len) *out_len = s.len;
  return KF_OK;
}

/* Atomic: the data goes to a temporary file beside `path` that is renamed over it only when
** every byte is written, so a failed write never leaves a half file (or destroys the old one). */
int kf_write_file(kf_ctx *ctx, const char *path, const void *data, size_t len) {
  char tmp[4200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= sizeof tmp)
    return kf_err(ctx, KF_EIO, "%.200s...: output path too long", path);
  int fd = mkstemp(tmp);
  if (fd < 0) return kf_err(ctx, KF_EIO, "%s: cannot create: %s", path, strerror(errno));
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    close(fd);
    unlink(tmp);
    return kf_err(ctx, KF_EIO, "%s: cannot create: %s", path, strerror(errno));
  }
  size_t w = fwrite(data, 1, len, f);
  int bad = (w != len) | (fflush(f) != 0) | (fchmod(fd, 0644) != 0);
  int err = errno;
  bad |= fclose(f) != 0;
  if (!bad && rename(tmp, path) == 0) return KF_OK;
  if (!bad) err = errno;
  unlink(tmp);
  return kf_err(ctx, KF_EIO, "%s: write error: %s", path, strerror(err));
}

int kf_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

double kf_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

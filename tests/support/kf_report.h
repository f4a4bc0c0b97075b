/*
** kf_report.h: report(ok, name, fmt, ...) prints one line per case, "ok   <name> <detail>" or
** "FAIL <name> <detail>" (names padded to one column), and counts failures in n_fail, which the
** including test returns on. A header only, so tests that do not link kf_testsupport
** (bench/test_peers.c) can use it too.
*/
#ifndef KF_REPORT_H
#define KF_REPORT_H

#include <stdarg.h>
#include <stdio.h>

static int n_fail;

static inline void report(int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void report(int ok, const char *name, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%-4s %-36s ", ok ? "ok" : "FAIL", name);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!ok) n_fail++;
}

#endif

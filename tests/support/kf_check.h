/*
** kf_check.h: CHECK(cond, fmt, ...) prints one line, "ok   ..." or "FAIL ...", and counts a
** failure in the including test's `static int n_fail`.
*/
#ifndef KF_CHECK_H
#define KF_CHECK_H

#include <stdio.h>

#define CHECK(cond, ...)                                                                    \
  do {                                                                                      \
    if (cond) {                                                                             \
      printf("ok   ");                                                                      \
    } else {                                                                                \
      printf("FAIL ");                                                                      \
      n_fail++;                                                                             \
    }                                                                                       \
    printf(__VA_ARGS__);                                                                    \
    printf("\n");                                                                           \
  } while (0)

#endif

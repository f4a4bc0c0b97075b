/*
** kf_case.h: one kernel test case, shared by the template tests: build a template for a
** shape and target, make its problem (inputs + fp64 reference + bound), run it with the C
** and/or LLVM emitter, check each against the bound, and require the two emitters to agree.
*/
#ifndef KF_CASE_H
#define KF_CASE_H

#include "check.h"
#include "kernel.h"

typedef void (*kf_case_hook)(kf_problem *p, const kf_kernel *k); /* edit inputs before running */

typedef struct kf_case {
  const char *tmpl, *shape, *sets, *target;
  int dist;          /* kf_problem_new's act_dist */
  int llvm_only;     /* run only the LLVM emitter */
  int threads;       /* 0: run on the calling thread */
  uint64_t seed;
  kf_case_hook hook;
} kf_case;

enum { KF_CASE_PASS = 0, KF_CASE_FAIL = 1, KF_CASE_SKIP = 2 };

/* Runs the case. res gets the last emitter's result; *y (if not NULL) a malloc'd copy of the
** first emitter's outputs; msg the failure or skip reason. */
int kf_case_run(const kf_case *c, kf_check_result *res, float **y, int64_t *n_y, char *msg, size_t msglen);

#endif

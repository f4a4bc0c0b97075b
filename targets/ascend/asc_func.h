/*
** asc_func.h: functional simulation of a kernel on the Ascend model (asc_func.c): the
** kernel's results computed in the formats of the units the ops run on.
*/
#ifndef KF_ASC_FUNC_H
#define KF_ASC_FUNC_H

#include "ir.h"

/* Runs the whole kernel (every task, in order) on the argument buffers (declaration order,
** as kf_problem_args gives them). */
int kf_asc_functional(kf_ctx *ctx, const kf_ir_kernel *ir, void *const *args);

#endif

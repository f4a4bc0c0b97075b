/*
** lower.h: tile IR -> LIR for the CPU targets.
*/
#ifndef KF_LOWER_H
#define KF_LOWER_H

#include "ir.h"
#include "target.h"

/* Lowers a verified kernel. fn_name is the C identifier of the result; header is a
** comment placed at the top of emitted code. Errors name the template file:line. */
int kf_lower_cpu(kf_ctx *ctx, const kf_ir_kernel *ir, const kf_target *t, const char *fn_name,
                 const char *header, kf_lir_func **out);

#endif

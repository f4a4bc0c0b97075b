/*
** kf_lib.h: shape lists and `kforge lib` (DESIGN.md section 5).
**
** `kforge lib` takes the best recorded configuration of each (template, shape) of a list and
** target (or the nearest tuned shape's, or the default: kf_lookup, under the accuracy
** contract), AOT-compiles it with the LLVM emitter, and writes DIR/libkforge_kernels.a,
** DIR/kforge_kernels.h, DIR/kf_quant.h (weight packing, its functions in the archive) and
** DIR/kforge_kernels.pc. The header declares one dispatch function per kernel family
** (template, from its `lib = {...}` declaration): it runs the best variant the CPU runs when
** the shape matches one of the list, else the family's generic runtime-shaped kernel from
** runtime/dispatch (compiled into the same archive), or returns -2 where the family declares
** none. A program that links the archive needs libc, libm and pthreads only.
*/
#ifndef KF_LIB_H
#define KF_LIB_H

#include <stdio.h>

#include "kf_store.h"
#include "kf_tune.h"

typedef struct kf_shape_entry {
  char tmpl[64];   /* empty when the line named no template */
  char shape[512];
  int line;
} kf_shape_entry;
typedef KF_VEC(kf_shape_entry) kf_shape_list;

/* Reads a shapes file: one shape per line, "[TEMPLATE] NAME=V,NAME=V"; '#' starts a comment,
** blank lines are skipped. Errors name the file and line. */
int kf_shapes_read(kf_ctx *ctx, const char *path, kf_shape_list *out);

/* Builds the library for the shapes in DIR (created if needed) for the targets of the comma
** list target_names (one variant per shape and target; the dispatch picks the best the CPU
** runs). `lib_name` defaults to "kforge_kernels"; lo (may be NULL) passes --min-bits and
** --allow-stale to the lookups. Progress and the lookup fallback of each shape go to `out`.
** Every name that reaches the generated C is a C identifier or the build is refused. */
int kf_lib_build(kf_ctx *ctx, kf_store *s, const kf_shape_list *shapes, const char *target_names,
                 const char *out_dir, const char *lib_name, const kf_lookup_opts *lo, FILE *out);

#endif

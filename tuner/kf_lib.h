/*
** kf_lib.h: shape lists and `kforge lib` (DESIGN.md section 5).
**
** `kforge lib` takes the best recorded configuration of each (template, shape) of a list
** (or the nearest tuned shape's, or the default: kf_lookup), AOT-compiles it with the LLVM
** emitter, and writes DIR/libkforge_kernels.a, DIR/kforge_kernels.h and
** DIR/kforge_kernels.pc. The header declares one dispatch function per kernel family
** (template): it runs the tuned kernel when the shape matches one of the list, else a
** generic runtime-shaped kernel from runtime/dispatch (compiled into the same archive).
** A program that links the archive needs libc, libm and pthreads only.
*/
#ifndef KF_LIB_H
#define KF_LIB_H

#include <stdio.h>

#include "kf_store.h"

typedef struct kf_shape_entry {
  char tmpl[64];   /* empty when the line named no template */
  char shape[512];
  int line;
} kf_shape_entry;
typedef KF_VEC(kf_shape_entry) kf_shape_list;

/* Reads a shapes file: one shape per line, "[TEMPLATE] NAME=V,NAME=V"; '#' starts a comment,
** blank lines are skipped. Errors name the file and line. */
int kf_shapes_read(kf_ctx *ctx, const char *path, kf_shape_list *out);

/* Builds the library for the shapes in DIR (created if needed). `lib_name` defaults to
** "kforge_kernels". Progress and the lookup fallback of each shape go to `out`. */
int kf_lib_build(kf_ctx *ctx, kf_store *s, const kf_shape_list *shapes, const char *target_name,
                 const char *out_dir, const char *lib_name, FILE *out);

#endif

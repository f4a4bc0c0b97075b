/*
** template.h: Lua kernel templates (the front end).
**
** A template is a Lua 5.4 chunk, run in a sandbox (no io/os/require/debug, no bytecode,
** instruction and memory limits), that returns a table:
**   name, doc, reference          strings (reference: the family that checks it, gen/ref/)
**   key = { "M", "N", "K" }       optional: params shown in kernel function names
**   params    = { M = {min=1}, bits = {default=8, domain={4,8}}, ... }   (problem shape)
**   tunables  = { mr = {default=4, domain={1,2,4}}, ... }               (search space)
**   constraints(p, t) -> nil | "message"     (optional; rejects a configuration)
**   build(p, t)                               (builds the kernel with the global `kf` builder)
** Every error (Lua error, bad value, unsatisfiable constraint, IR verification failure)
** comes back as a message with the template's file:line.
*/
#ifndef KF_TEMPLATE_H
#define KF_TEMPLATE_H

#include "ir.h"

#define KF_MAX_BIND 24
#define KF_MAX_DOMAIN 64
#define KF_SHAPE_MAX ((int64_t)1 << 40) /* largest shape value: products of a few stay far from int64's limit */

/* A list of NAME=VALUE integer assignments (a shape, or a tunable configuration). */
typedef struct kf_binding {
  int n;
  char name[KF_MAX_BIND][32];
  int64_t val[KF_MAX_BIND];
} kf_binding;

int kf_binding_parse(kf_ctx *ctx, const char *text, const char *what, kf_binding *out);
int kf_binding_get(const kf_binding *b, const char *name, int64_t *out); /* 1 if found */
int kf_binding_set(kf_binding *b, const char *name, int64_t v);         /* KF_OK / KF_EINVAL */
void kf_binding_format(const kf_binding *b, kf_str *out);                /* "M=1,N=2" */

typedef struct kf_tparam {
  char name[32];
  int required;
  int64_t def, min;
  int n_domain;
  int64_t domain[KF_MAX_DOMAIN]; /* empty: any integer >= min */
  int accuracy; /* tunables: `accuracy = true` changes the numerics (passes, groups, formats,
                ** rounding): the tuner and every fallback keep it as set or at its default */
} kf_tparam;

/* What `kforge lib` needs of a template (its `lib = {...}` table; every name a C identifier):
**   params        = {"M", "N", "K", ...}  signature order of the dispatch function (default:
**                                        the params sorted by name)
**   fallback      = "NAME"                the generic runtime-shaped kernel kf_generic_NAME
**                                        (runtime/dispatch) run for shapes outside the list
**   fallback_args = {"M", ..., "x", ...}  its arguments: params, tunables (at the library's
**                                        accuracy setting) and kernel arguments, in order
**   no_fallback   = "why"                 instead of a fallback: why other shapes are refused */
typedef struct kf_template_lib {
  int n_params;
  char params[KF_MAX_BIND][32];
  char fallback[32];
  int n_fallback_args;
  char fallback_args[2 * KF_MAX_BIND][32];
  char no_fallback[256];
} kf_template_lib;

typedef struct kf_template kf_template;

/* Loads and sandboxes a template: `name_or_path` is a template name (looked up in the
** template directory: $KFORGE_TEMPLATES or the source tree's templates/) or a .lua path. */
int kf_template_load(kf_ctx *ctx, const char *name_or_path, kf_template **out);
/* The same from source text in memory; `path` names it in messages (the fuzz targets). */
int kf_template_load_source(kf_ctx *ctx, const char *path, const char *src, size_t len, kf_template **out);
void kf_template_free(kf_template *t);
const char *kf_template_name(const kf_template *t);
const char *kf_template_doc(const kf_template *t);
const char *kf_template_reference(const kf_template *t);
const char *kf_template_path(const kf_template *t);
const char *kf_template_source_hash(const kf_template *t); /* hex FNV-1a 64 of the source */
int kf_template_n_params(const kf_template *t);
const kf_tparam *kf_template_param(const kf_template *t, int i);
int kf_template_n_tunables(const kf_template *t);
/* The i-th param a kernel's function name shows (the template's `key`, else its required
** params): 1 and *name, or 0 past the end. */
#define KF_MAX_KEY 6
int kf_template_key(const kf_template *t, int i, const char **name);
const kf_tparam *kf_template_tunable(const kf_template *t, int i);
const kf_template_lib *kf_template_lib_decl(const kf_template *t);
/* 1 if s is a C identifier (letters, digits, '_', not starting with a digit). */
int kf_is_c_ident(const char *s);

/* Sets the target the template is specialized for; constraints(p, t, target) and
** build(p, t, target) get a third table {name=, vl=32-bit lanes, vnni=0/1, bf16=0/1,
** regs=vector registers}. */
void kf_template_set_target(kf_template *t, const char *name, int vl, int vnni, int bf16, int regs);

/* Validates a shape against params (unknown names, missing required, domains) and
** fills defaults into *params. */
int kf_template_shape(kf_ctx *ctx, kf_template *t, const kf_binding *shape, kf_binding *params);
/* Runs the template's constraints on a full configuration: KF_OK, or KF_EINVAL with the
** template's message. */
int kf_template_check_config(kf_ctx *ctx, kf_template *t, const kf_binding *params,
                             const kf_binding *config);
/* Completes a partial configuration (--set values) with defaults; if the defaults break
** a constraint, the nearest satisfying combination of the unset tunables is chosen, but
** accuracy tunables never move: they stay as set or at their default, and when no
** configuration satisfies the constraints with them the call fails naming them.
** Unknown tunables and values outside a domain are errors. */
int kf_template_config(kf_ctx *ctx, kf_template *t, const kf_binding *params,
                       const kf_binding *sets, kf_binding *config);
/* Runs build(p, t) and verifies the IR. */
int kf_template_build(kf_ctx *ctx, kf_template *t, const kf_binding *params,
                      const kf_binding *config, kf_ir_kernel **out);

/* Directory holding the bundled templates. */
const char *kf_template_dir(void);

#endif

/*
** kf_lib.c: shape lists and the tuned kernel library (see kf_lib.h).
*/
#define _GNU_SOURCE
#include "kf_lib.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel.h"
#include "kf_embed.h"
#include "kf_tune.h"

#ifndef KF_C_COMPILER
#define KF_C_COMPILER "cc"
#endif

int kf_shapes_read(kf_ctx *ctx, const char *path, kf_shape_list *out) {
  char *text;
  size_t len;
  int rc = kf_read_file(ctx, path, &text, &len);
  if (rc) return rc;
  int line = 0;
  for (char *p = text; *p;) {
    char *e = strchr(p, '\n');
    if (e) *e = 0;
    line++;
    char *hash = strchr(p, '#');
    if (hash) *hash = 0;
    char *tok[3];
    int n = 0;
    for (char *q = strtok(p, " \t\r"); q; q = strtok(NULL, " \t\r")) {
      if (n == 2) {
        free(text);
        return kf_err(ctx, KF_EINVAL, "%s:%d: expected '[TEMPLATE] NAME=V,...', found more", path, line);
      }
      tok[n++] = q;
    }
    if (n > 0) {
      kf_shape_entry en;
      memset(&en, 0, sizeof en);
      en.line = line;
      const char *shape = n == 2 ? tok[1] : tok[0];
      if (n == 2) {
        if (strlen(tok[0]) >= sizeof en.tmpl || strchr(tok[0], '=')) {
          free(text);
          return kf_err(ctx, KF_EINVAL, "%s:%d: bad template name '%.80s'", path, line, tok[0]);
        }
        snprintf(en.tmpl, sizeof en.tmpl, "%s", tok[0]);
      }
      if (!strchr(shape, '=') || strlen(shape) >= sizeof en.shape) {
        free(text);
        return kf_err(ctx, KF_EINVAL, "%s:%d: bad shape '%.80s' (want NAME=V,NAME=V)", path, line, shape);
      }
      snprintf(en.shape, sizeof en.shape, "%s", shape);
      kf_vec_push(out, en);
    }
    if (!e) break;
    p = e + 1;
  }
  free(text);
  return KF_OK;
}

/* Runs argv (no shell); KF_EIO with the command and its status on failure. */
static int run_cmd(kf_ctx *ctx, char *const *argv) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return kf_err(ctx, KF_EIO, "fork: %s", strerror(errno));
  if (pid == 0) {
    execvp(argv[0], argv);
    fprintf(stderr, "kforge lib: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return KF_OK;
  kf_str cmd = {0};
  for (int i = 0; argv[i]; i++) kf_str_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
  int rc = kf_err(ctx, KF_EIO, "command failed (%s %d): %s", WIFEXITED(st) ? "exit status" : "signal",
                  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), cmd.data);
  kf_str_free(&cmd);
  return rc;
}

static int make_dir(kf_ctx *ctx, const char *path) {
  if (mkdir(path, 0777) == 0 || errno == EEXIST) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return KF_OK;
    return kf_err(ctx, KF_EIO, "%s: exists and is not a directory", path);
  }
  return kf_err(ctx, KF_EIO, "%s: cannot create directory: %s", path, strerror(errno));
}

static int write_str(kf_ctx *ctx, const char *path, const kf_str *s) {
  return kf_write_file(ctx, path, s->data ? s->data : "", s->len);
}

/* ---- names and text that reach generated C ---- */

/* Every name written into generated C (function names, parameters, arguments, macros) must
** be a C identifier: refused otherwise, never escaped (issue 15: a template's names are
** someone else's input). */
static int need_ident(kf_ctx *ctx, const char *what, const char *name) {
  if (kf_is_c_ident(name)) return KF_OK;
  kf_str shown = {0};
  for (const char *c = name; *c && shown.len < 60; c++)
    kf_str_printf(&shown, (unsigned char)*c >= 0x20 && *c != 0x7f && *c != '\\' ? "%c" : "\\x%02x", (unsigned char)*c);
  int rc = kf_err(ctx, KF_EINVAL, "kforge lib: %s '%s' is not a C identifier; refusing to write it into C", what,
                  shown.data ? shown.data : "");
  kf_str_free(&shown);
  return rc;
}

/* Text inside a generated comment: printable ASCII, no comment terminator. */
static void comment_text(kf_str *o, const char *t) {
  for (const char *c = t; *c; c++) {
    if (c[0] == '*' && c[1] == '/') kf_str_puts(o, "* ");
    else if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) kf_str_puts(o, "?");
    else kf_str_printf(o, "%c", *c);
  }
}

/* Text inside a generated string literal: a small safe alphabet, anything else '?'. */
static void literal_text(kf_str *o, const char *t) {
  for (const char *c = t; *c; c++)
    kf_str_printf(o, "%c", isalnum((unsigned char)*c) || strchr(" _.,=:;()+-/%", *c) ? *c : '?');
}

/* ---- families and variants ---- */

/* One AOT variant: a (shape, target) of a family. */
typedef struct variant {
  char tmpl[64], fn[200], shape[512], config[512], how[300], target[48], accuracy[128];
  kf_binding params;
  unsigned req;  /* KF_CPU_* bits the target's code needs */
  int rank;      /* preference among targets: higher first */
  double eff_bits, max_err_ratio;
} variant;

/* One family = one template: its params and kernel arguments, in signature order. */
typedef struct family {
  char tmpl[64];
  char params[KF_MAX_BIND][32];
  int n_params;
  int64_t param_def[KF_MAX_BIND]; /* template default of each param (size params: 0) */
  int param_has_def[KF_MAX_BIND];
  char arg_name[16][32], arg_type[16][48];
  int n_args;
  char fallback[32];
  kf_str fallback_call; /* the generic call's arguments, after the guard */
  char no_fallback[256];
  char accuracy[128];   /* the generic's accuracy setting (template defaults) */
} family;

static const char *c_elem_type(kf_scalar s) {
  switch (s) {
  case KF_I8: return "int8_t";
  case KF_U8: return "uint8_t";
  case KF_I16: return "int16_t";
  case KF_BF16:
  case KF_U16: return "uint16_t";
  case KF_I32: return "int32_t";
  case KF_U32: return "uint32_t";
  case KF_I64: return "int64_t";
  case KF_F32: return "float";
  case KF_F64: return "double";
  default: return "uint8_t";
  }
}

/* The KF_CPU_* features (runtime/dispatch) a target's code needs, from its LLVM features. */
static int target_req(kf_ctx *ctx, const kf_target *t, unsigned *req, int *rank) {
  static const struct { const char *feat; unsigned bit; } map[] = {
      {"+avx", 1}, {"+avx2", 1}, {"+fma", 1}, {"+f16c", 1}, {"+bmi2", 1},
      {"+avx512f", 2}, {"+avx512bw", 2}, {"+avx512vl", 2}, {"+avx512dq", 2}, {"+avx512cd", 2},
      {"+avx512vnni", 4}, {"+avx512bf16", 8}, {"+avxvnni", 16}};
  *req = 0;
  char feats[512];
  snprintf(feats, sizeof feats, "%s", t->llvm_features);
  char *save = NULL;
  for (char *f = strtok_r(feats, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
    size_t i = 0;
    while (i < sizeof map / sizeof map[0] && strcmp(map[i].feat, f)) i++;
    if (i == sizeof map / sizeof map[0])
      return kf_err(ctx, KF_EUNSUP, "kforge lib: target %s needs CPU feature %s, which the dispatch cannot detect",
                    t->name, f);
    *req |= map[i].bit;
  }
  if (*req & 2) *req |= 1; /* the AVX-512 targets also use AVX2 */
  *rank = __builtin_popcount(*req) + ((*req & 2) ? 8 : 0);
  return KF_OK;
}

/* The family of a template from its `lib = {...}` declaration and one built kernel. */
static int family_from_kernel(kf_ctx *ctx, const kf_kernel *k, family *f) {
  memset(f, 0, sizeof *f);
  const kf_template *t = k->tmpl;
  const char *tn = kf_template_name(t);
  int rc = need_ident(ctx, "template name", tn);
  if (rc) return rc;
  snprintf(f->tmpl, sizeof f->tmpl, "%s", tn);
  const kf_template_lib *decl = kf_template_lib_decl(t);
  for (int i = 0; i < decl->n_params; i++) {
    if ((rc = need_ident(ctx, "template param", decl->params[i]))) return rc;
    snprintf(f->params[f->n_params], 32, "%s", decl->params[i]);
    for (int j = 0; j < kf_template_n_params(t); j++)
      if (!strcmp(kf_template_param(t, j)->name, decl->params[i])) {
        f->param_def[f->n_params] = kf_template_param(t, j)->def;
        f->param_has_def[f->n_params] = !kf_template_param(t, j)->required;
      }
    f->n_params++;
  }
  f->n_args = kf_kernel_n_args(k);
  if (f->n_args > 16) return kf_err(ctx, KF_EUNSUP, "kforge lib: %s has more than 16 arguments", tn);
  for (int i = 0; i < f->n_args; i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    if ((rc = need_ident(ctx, "kernel argument", b->name))) return rc;
    for (int j = 0; j < f->n_params; j++)
      if (!strcmp(f->params[j], b->name))
        return kf_err(ctx, KF_EINVAL, "kforge lib: %s: argument '%s' has the name of a param", tn, b->name);
    snprintf(f->arg_name[i], 32, "%s", b->name);
    snprintf(f->arg_type[i], 48, "%s%s *", b->level == KF_LVL_ARG_OUT ? "" : "const ", c_elem_type(b->dtype));
  }
  kf_binding defaults;
  memset(&defaults, 0, sizeof defaults);
  for (int i = 0; i < kf_template_n_tunables(t); i++)
    kf_binding_set(&defaults, kf_template_tunable(t, i)->name, kf_template_tunable(t, i)->def);
  kf_accuracy_text(t, &defaults, f->accuracy, sizeof f->accuracy);
  snprintf(f->no_fallback, sizeof f->no_fallback, "%s", decl->no_fallback);
  if (!decl->fallback[0]) {
    if (!f->no_fallback[0])
      snprintf(f->no_fallback, sizeof f->no_fallback, "template %s declares no lib.fallback", tn);
    return KF_OK;
  }
  /* the generic must exist in runtime/dispatch (its header is embedded) */
  char proto[64];
  snprintf(proto, sizeof proto, "kf_generic_%s(", decl->fallback);
  int found = 0;
  for (int i = 0; kf_embedded_dispatch[i].name; i++)
    if (!strcmp(kf_embedded_dispatch[i].name, "kf_dispatch.h"))
      found = strstr((const char *)kf_embedded_dispatch[i].data, proto) != NULL;
  if (!found)
    return kf_err(ctx, KF_EINVAL, "kforge lib: %s: lib.fallback '%s': runtime/dispatch has no kf_generic_%s", tn,
                  decl->fallback, decl->fallback);
  snprintf(f->fallback, sizeof f->fallback, "%s", decl->fallback);
  /* the guard: params the generic does not take must have their default */
  int n_guard = 0;
  for (int i = 0; i < f->n_params; i++) {
    int taken = 0;
    for (int j = 0; j < decl->n_fallback_args; j++) taken |= !strcmp(decl->fallback_args[j], f->params[i]);
    if (!taken && !f->param_has_def[i])
      return kf_err(ctx, KF_EINVAL, "kforge lib: %s: param %s has no default and lib.fallback_args does not pass it",
                    tn, f->params[i]);
    if (!taken)
      kf_str_printf(&f->fallback_call, "%s%s != %lld", n_guard++ ? " || " : "(", f->params[i],
                    (long long)f->param_def[i]);
  }
  if (n_guard) kf_str_printf(&f->fallback_call, ") ? -2 : ");
  kf_str_printf(&f->fallback_call, "kf_generic_%s(", f->fallback);
  for (int j = 0; j < decl->n_fallback_args; j++) {
    const char *a = decl->fallback_args[j];
    int64_t v;
    int is_param = 0, is_arg = 0;
    for (int i = 0; i < f->n_params; i++) is_param |= !strcmp(f->params[i], a);
    for (int i = 0; i < f->n_args; i++) is_arg |= !strcmp(f->arg_name[i], a);
    if (is_param || is_arg) kf_str_printf(&f->fallback_call, "%s%s", j ? ", " : "", a);
    else if (kf_binding_get(&defaults, a, &v))
      kf_str_printf(&f->fallback_call, "%s%lld", j ? ", " : "", (long long)v); /* a tunable: its default */
    else
      return kf_err(ctx, KF_EINVAL, "kforge lib: %s: lib.fallback_args names '%s': not a param, tunable or argument",
                    tn, a);
  }
  kf_str_printf(&f->fallback_call, ", n_threads)");
  return KF_OK;
}

static int family_same_args(kf_ctx *ctx, const family *f, const kf_kernel *k, const char *shape) {
  int same = kf_kernel_n_args(k) == f->n_args;
  for (int i = 0; same && i < f->n_args; i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    char ty[48];
    snprintf(ty, sizeof ty, "%s%s *", b->level == KF_LVL_ARG_OUT ? "" : "const ", c_elem_type(b->dtype));
    same = !strcmp(b->name, f->arg_name[i]) && !strcmp(ty, f->arg_type[i]);
  }
  if (same) return KF_OK;
  return kf_err(ctx, KF_EUNSUP, "kforge lib: %s %s has other kernel arguments than the family's first shape: one "
                "dispatch signature cannot serve both", f->tmpl, shape);
}

static void family_signature(const family *f, const char *lib, const char *suffix, int with_args, kf_str *o) {
  kf_str_printf(o, "%s_%s%s(", lib, f->tmpl, suffix);
  for (int i = 0; i < f->n_params; i++) kf_str_printf(o, "%sint64_t %s", i ? ", " : "", f->params[i]);
  if (with_args) {
    for (int i = 0; i < f->n_args; i++) kf_str_printf(o, ", %s%s", f->arg_type[i], f->arg_name[i]);
    kf_str_printf(o, ", int n_threads");
  }
  if (!f->n_params && !with_args) kf_str_printf(o, "void");
  kf_str_printf(o, ")");
}

static void variant_condition(const family *f, const variant *v, kf_str *o) {
  for (int i = 0; i < f->n_params; i++) {
    int64_t val = 0;
    kf_binding_get(&v->params, f->params[i], &val);
    kf_str_printf(o, "%s%s == %lld", i ? " && " : "", f->params[i], (long long)val);
  }
  if (!f->n_params) kf_str_printf(o, "1");
}

/* "fn (target; passes=2, 15.42 bits, err/bound 0.085)": what _variant() returns. */
static void variant_label(const variant *v, kf_str *o) {
  kf_str t = {0};
  kf_str_printf(&t, "%s (%s; %s%s", v->fn, v->target, v->accuracy, v->accuracy[0] ? ", " : "");
  if (v->eff_bits >= 0) kf_str_printf(&t, "%.2f bits, err/bound %.3f)", v->eff_bits, v->max_err_ratio);
  else kf_str_printf(&t, "not measured: template default)");
  literal_text(o, t.data);
  kf_str_free(&t);
}

/* Opens the test of one shape (variants [i, e) of vars) and the switch over the variant
** <lib>_choose picks among them. */
static void shape_switch(const family *f, const variant *vars, size_t i, size_t e, const char *lib, kf_str *disp) {
  kf_str_printf(disp, "  if (");
  variant_condition(f, &vars[i], disp);
  kf_str_printf(disp, ") {\n    static const unsigned req[] = {");
  for (size_t j = i; j < e; j++) kf_str_printf(disp, "%s%uu", j > i ? ", " : "", vars[j].req);
  kf_str_printf(disp, "};\n    static const char *const tgt[] = {");
  for (size_t j = i; j < e; j++) kf_str_printf(disp, "%s\"%s\"", j > i ? ", " : "", vars[j].target);
  kf_str_printf(disp, "};\n    switch (%s_choose(%zu, req, tgt)) {\n", lib, e - i);
}

/* Writes one family's dispatch function and _variant() (the variants of a shape adjacent,
** best target first). */
static void write_family(const family *f, const variant *vars, size_t n_vars, const char *lib, kf_str *disp) {
  kf_str_printf(disp, "\nint ");
  family_signature(f, lib, "", 1, disp);
  kf_str_printf(disp, " {\n  void *const args[%d] = {", f->n_args ? f->n_args : 1);
  for (int a = 0; a < f->n_args; a++) kf_str_printf(disp, "%s(void *)%s", a ? ", " : "", f->arg_name[a]);
  if (!f->n_args) kf_str_printf(disp, "0");
  kf_str_printf(disp, "};\n  (void)args;\n");
  for (size_t i = 0; i < n_vars;) {
    size_t e = i;
    while (e < n_vars && !strcmp(vars[e].shape, vars[i].shape)) e++;
    shape_switch(f, vars, i, e, lib, disp);
    for (size_t j = i; j < e; j++) {
      kf_str_printf(disp, "    case %zu:\n      if (kf_dispatch_verbose()) %s_trace(\"%s\", \"", j - i, lib, f->tmpl);
      variant_label(&vars[j], disp);
      kf_str_printf(disp, "\");\n      return kf_dispatch_run(%s, args, %s_PAR_TOTAL, %s_WS_BYTES, n_threads);\n",
                    vars[j].fn, vars[j].fn, vars[j].fn);
    }
    kf_str_printf(disp, "    default: break; /* no variant runs on this CPU: the generic */\n    }\n  }\n");
    i = e;
  }
  if (f->fallback[0]) {
    kf_str_printf(disp, "  if (kf_dispatch_verbose()) %s_trace(\"%s\", \"generic kf_generic_%s%s%s%s\");\n", lib,
                  f->tmpl, f->fallback, f->accuracy[0] ? " (" : "", f->accuracy, f->accuracy[0] ? ")" : "");
    kf_str_printf(disp, "  return %s;\n}\n", f->fallback_call.data);
  } else {
    kf_str_printf(disp, "  if (kf_dispatch_verbose()) %s_trace(\"%s\", \"none: not a tuned shape\");\n", lib, f->tmpl);
    for (int p = 0; p < f->n_params; p++) kf_str_printf(disp, "  (void)%s;\n", f->params[p]);
    kf_str_printf(disp, "  (void)n_threads;\n  return -2; /* see the header: no generic kernel */\n}\n");
  }
  kf_str_printf(disp, "\nconst char *");
  family_signature(f, lib, "_variant", 0, disp);
  kf_str_printf(disp, " {\n");
  for (size_t i = 0; i < n_vars;) {
    size_t e = i;
    while (e < n_vars && !strcmp(vars[e].shape, vars[i].shape)) e++;
    shape_switch(f, vars, i, e, lib, disp);
    for (size_t j = i; j < e; j++) {
      kf_str_printf(disp, "    case %zu: return \"", j - i);
      variant_label(&vars[j], disp);
      kf_str_printf(disp, "\";\n");
    }
    kf_str_printf(disp, "    default: break;\n    }\n  }\n");
    i = e;
  }
  for (int p = 0; p < f->n_params; p++) kf_str_printf(disp, "  (void)%s;\n", f->params[p]);
  if (f->fallback[0] && f->accuracy[0]) kf_str_printf(disp, "  return \"generic (%s)\";\n}\n", f->accuracy);
  else if (f->fallback[0]) kf_str_printf(disp, "  return \"generic\";\n}\n");
  else kf_str_printf(disp, "  return \"none\";\n}\n");
}

/* Splits "cpu-avx2,cpu-avx512-vnni" into targets, best first. */
static int parse_targets(kf_ctx *ctx, const char *list, kf_target *out, unsigned *req, int *rank, int *n) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  *n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (*n == 8) return kf_err(ctx, KF_EINVAL, "kforge lib: at most 8 targets");
    int rc = kf_target_get(ctx, tok, &out[*n]);
    if (!rc) rc = target_req(ctx, &out[*n], &req[*n], &rank[*n]);
    if (rc) return rc;
    for (int i = 0; i < *n; i++)
      if (!strcmp(out[i].name, out[*n].name)) return kf_err(ctx, KF_EINVAL, "kforge lib: target %s given twice", tok);
    (*n)++;
  }
  if (!*n) return kf_err(ctx, KF_EINVAL, "kforge lib: no target");
  for (int i = 1; i < *n; i++) /* best first */
    for (int j = i; j > 0 && rank[j - 1] < rank[j]; j--) {
      kf_target tt = out[j];
      out[j] = out[j - 1];
      out[j - 1] = tt;
      unsigned r = req[j];
      req[j] = req[j - 1];
      req[j - 1] = r;
      int k = rank[j];
      rank[j] = rank[j - 1];
      rank[j - 1] = k;
    }
  return KF_OK;
}

static const char dispatch_prelude[] =
    "#include <stdio.h>\n#include <string.h>\n\n"
    "/* The variant to run among n (best first): the forced target's (KFORGE_ISA or\n"
    "** %s_force_isa) when the CPU runs it, else the first the CPU runs; -1: none. */\n"
    "static int %s_choose(size_t n, const unsigned *req, const char *const *tgt) {\n"
    "  unsigned cpu = kf_dispatch_cpu_features();\n"
    "  const char *forced = kf_dispatch_forced_isa();\n"
    "  if (forced[0])\n"
    "    for (size_t i = 0; i < n; i++)\n"
    "      if (!strcmp(tgt[i], forced) && (cpu & req[i]) == req[i]) return (int)i;\n"
    "  for (size_t i = 0; i < n; i++)\n"
    "    if ((cpu & req[i]) == req[i]) return (int)i;\n"
    "  return -1;\n}\n\n"
    "static void %s_trace(const char *family, const char *variant) {\n"
    "  fprintf(stderr, \"kforge dispatch: %%s -> %%s\\n\", family, variant);\n}\n\n"
    "int %s_init(int n_threads) { return kf_dispatch_init(n_threads); }\n"
    "void %s_shutdown(void) { kf_dispatch_shutdown(); }\n"
    "void %s_set_workspace(void *ws, size_t bytes) { kf_dispatch_set_workspace(ws, bytes); }\n"
    "void %s_force_isa(const char *target) { kf_dispatch_force_isa(target); }\n";

int kf_lib_build(kf_ctx *ctx, kf_store *s, const kf_shape_list *shapes, const char *target_names, const char *out_dir,
                 const char *lib_name, const kf_lookup_opts *lo, FILE *out) {
  if (!lib_name) lib_name = "kforge_kernels";
  if (!kf_is_c_ident(lib_name)) return kf_err(ctx, KF_EINVAL, "--name '%s': a C identifier (letters, digits, _)", lib_name);
  if (shapes->len == 0) return kf_err(ctx, KF_EINVAL, "kforge lib: the shapes list is empty");
  kf_target targets[8];
  unsigned reqs[8];
  int ranks[8], n_targets = 0;
  int rc = parse_targets(ctx, target_names, targets, reqs, ranks, &n_targets);
  if (rc) return rc;
  char dir[PATH_MAX], src[PATH_MAX + 8];
  if ((rc = make_dir(ctx, out_dir))) return rc;
  if (!realpath(out_dir, dir)) return kf_err(ctx, KF_EIO, "%s: %s", out_dir, strerror(errno));
  snprintf(src, sizeof src, "%s/src", dir);
  if ((rc = make_dir(ctx, src))) return rc;

  KF_VEC(variant) vars = {0};
  KF_VEC(family) fams = {0};
  KF_VEC(char *) objs = {0};
  kf_str path = {0}, tnames = {0};
  for (int ti = 0; ti < n_targets; ti++) kf_str_printf(&tnames, "%s%s", ti ? "," : "", targets[ti].name);
  for (size_t i = 0; !rc && i < shapes->len; i++) {
    const kf_shape_entry *e = &shapes->data[i];
    if (!e->tmpl[0]) {
      rc = kf_err(ctx, KF_EINVAL, "shapes line %d: kforge lib needs 'TEMPLATE NAME=V,...'", e->line);
      break;
    }
    for (int ti = 0; !rc && ti < n_targets; ti++) {
      kf_template *t = NULL;
      kf_kernel k0, k;
      memset(&k0, 0, sizeof k0);
      memset(&k, 0, sizeof k);
      kf_binding shape;
      memset(&shape, 0, sizeof shape);
      kf_lookup_result lr;
      rc = kf_binding_parse(ctx, e->shape, "shape", &shape);
      if (!rc) rc = kf_template_load(ctx, e->tmpl, &t);
      if (!rc) rc = kf_kernel_build(ctx, t, &shape, NULL, &targets[ti], &k0);
      if (!rc) rc = kf_lookup(ctx, s, t, &k0.params, NULL, &targets[ti], lo, &lr);
      if (!rc) rc = kf_kernel_build(ctx, t, &shape, &lr.config, &targets[ti], &k);
      if (!rc) rc = need_ident(ctx, "kernel name", k.fn_name);
      family *fam = NULL;
      for (size_t j = 0; !rc && j < fams.len; j++)
        if (!strcmp(fams.data[j].tmpl, kf_template_name(t))) fam = &fams.data[j];
      if (!rc && !fam) {
        family f;
        rc = family_from_kernel(ctx, &k, &f);
        if (!rc) {
          kf_vec_push(&fams, f);
          fam = &fams.data[fams.len - 1];
        }
      } else if (!rc)
        rc = family_same_args(ctx, fam, &k, e->shape);
      if (rc) {
        kf_err_prefix(ctx, rc, "shapes line %d (%s %s, target %s)", e->line, e->tmpl, e->shape, targets[ti].name);
      } else {
        variant v;
        memset(&v, 0, sizeof v);
        snprintf(v.tmpl, sizeof v.tmpl, "%s", kf_template_name(t));
        snprintf(v.target, sizeof v.target, "%s", targets[ti].name);
        snprintf(v.fn, sizeof v.fn, "%s_", k.fn_name);
        for (const char *c = targets[ti].name; *c && strlen(v.fn) + 1 < sizeof v.fn; c++)
          v.fn[strlen(v.fn)] = isalnum((unsigned char)*c) ? *c : '_';
        k.lir->name = kf_arena_strdup(&k.lir->arena, v.fn); /* one symbol per (kernel, target) */
        kf_str tmp = {0};
        kf_binding_format(&k.params, &tmp);
        snprintf(v.shape, sizeof v.shape, "%s", tmp.data ? tmp.data : "");
        kf_str_free(&tmp);
        kf_config_json(&k.config, v.config, sizeof v.config);
        kf_accuracy_text(t, &k.config, v.accuracy, sizeof v.accuracy);
        v.params = k.params;
        v.req = reqs[ti];
        v.rank = ranks[ti];
        v.eff_bits = lr.eff_bits;
        v.max_err_ratio = lr.max_err_ratio;
        if (lr.kind == KF_LOOKUP_EXACT)
          snprintf(v.how, sizeof v.how, "exact: tuned, median %.1f us", lr.median_s * 1e6);
        else if (lr.kind == KF_LOOKUP_NEAREST)
          snprintf(v.how, sizeof v.how, "nearest: config of %.200s (distance %.2f)", lr.from_shape, lr.distance);
        else snprintf(v.how, sizeof v.how, "default: %.250s", lr.note);
        char bits[64] = "not measured";
        if (v.eff_bits >= 0) snprintf(bits, sizeof bits, "%.2f bits, err/bound %.3f", v.eff_bits, v.max_err_ratio);
        fprintf(out, "  %-14s %-50s %-16s %s  %s  %s\n", v.tmpl, v.shape, v.target, v.config, bits, v.how);
        int dup = 0;
        for (size_t j = 0; j < vars.len; j++) dup |= !strcmp(vars.data[j].fn, v.fn);
        if (!dup) {
          path.len = 0;
          kf_str_printf(&path, "%s/%s.o", src, v.fn);
          rc = kf_llvm_emit_file(ctx, k.lir, &k.target, KF_LLVM_OBJ, path.data);
          if (!rc) kf_vec_push(&objs, kf_xstrdup(path.data));
          kf_str h = {0};
          kf_emit_header(k.lir, &k.target, &h);
          path.len = 0;
          kf_str_printf(&path, "%s/%s.h", src, v.fn);
          if (!rc) rc = write_str(ctx, path.data, &h);
          kf_str_free(&h);
          if (!rc) kf_vec_push(&vars, v);
        }
      }
      if (k.ir) kf_kernel_free(&k);
      if (k0.ir) kf_kernel_free(&k0);
      kf_template_free(t);
    }
  }
  /* variants of a family and shape adjacent, best target first */
  for (size_t i = 1; i < vars.len; i++)
    for (size_t j = i; j > 0; j--) {
      variant *a = &vars.data[j - 1], *b = &vars.data[j];
      int c = strcmp(a->tmpl, b->tmpl);
      if (!c) c = strcmp(a->shape, b->shape);
      if (!c) c = b->rank - a->rank;
      if (c <= 0) break;
      variant tmp = *a;
      *a = *b;
      *b = tmp;
    }
  /* runtime/dispatch and runtime/quant sources; kf_quant.h also beside the library */
  for (int i = 0; !rc && kf_embedded_dispatch[i].name; i++) {
    path.len = 0;
    kf_str_printf(&path, "%s/%s", src, kf_embedded_dispatch[i].name);
    rc = kf_write_file(ctx, path.data, kf_embedded_dispatch[i].data, kf_embedded_dispatch[i].size);
    if (!rc && !strcmp(kf_embedded_dispatch[i].name, "kf_quant.h")) {
      path.len = 0;
      kf_str_printf(&path, "%s/kf_quant.h", dir);
      rc = kf_write_file(ctx, path.data, kf_embedded_dispatch[i].data, kf_embedded_dispatch[i].size);
    }
  }
  /* the public header and the dispatch functions */
  kf_str hdr = {0}, disp = {0};
  if (!rc) {
    kf_str_printf(&hdr,
                  "/* %s.h: generated by kforge %s (kforge lib) for targets %s.\n"
                  "** One dispatch function per kernel family: for a shape of the list below it runs the best\n"
                  "** variant this CPU runs (cpuid/xgetbv, checked once; KFORGE_ISA=<target> or\n"
                  "** %s_force_isa() prefers one target), for any other shape the family's generic\n"
                  "** runtime-shaped kernel, or returns -2 where the family has none (its comment says why).\n"
                  "** Arguments and layouts are the templates' (gemm_q: x bf16 bits [M][K], w packed as\n"
                  "** kf_quant.h in this directory says: libkforge_kernels.a holds its functions, w_scale f32\n"
                  "** [n_groups][N rounded up to 16], y f32 [M][N]; attention: q/k/v bf16, out f32).\n"
                  "** Threads: a persistent pool (%s_init(n), else created by the first call with\n"
                  "** n_threads > 1; %s_shutdown() ends it); workspaces are the pool's, grown once, or\n"
                  "** the caller's (%s_set_workspace); calls create no threads and allocate nothing after\n"
                  "** the first call of a kernel. KFORGE_VERBOSE=dispatch prints each call's variant.\n"
                  "** Accuracy: each variant's accuracy tunables and the effective bits and max err/bound its\n"
                  "** trial measured on the fp64 check; _variant() returns the same.\n"
                  "** Returns 0, -1 on bad arguments / no memory, -2 for a shape the family cannot run.\n"
                  "** Link: pkg-config --cflags --libs %s (libc, libm and pthreads only). */\n"
                  "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n#ifdef __cplusplus\n"
                  "extern \"C\" {\n#endif\n\n"
                  "int %s_init(int n_threads);        /* n_threads <= 0: every online CPU */\n"
                  "void %s_shutdown(void);\n"
                  "void %s_set_workspace(void *ws, size_t bytes); /* 64-byte aligned; NULL: the pool's */\n"
                  "void %s_force_isa(const char *target);         /* NULL: the best the CPU runs */\n\n",
                  lib_name, KF_VERSION, tnames.data, lib_name, lib_name, lib_name, lib_name, lib_name, lib_name,
                  lib_name, lib_name, lib_name, lib_name, lib_name);
    kf_str_printf(&disp,
                  "/* Generated by kforge %s (kforge lib): dispatch by shape and CPU. */\n#include \"%s.h\"\n"
                  "#include \"kf_dispatch.h\"\n",
                  KF_VERSION, lib_name);
    for (size_t i = 0; i < vars.len; i++) kf_str_printf(&disp, "#include \"%s.h\"\n", vars.data[i].fn);
    kf_str_printf(&disp, dispatch_prelude, lib_name, lib_name, lib_name, lib_name, lib_name, lib_name, lib_name);
    for (size_t fi = 0; fi < fams.len; fi++) {
      const family *f = &fams.data[fi];
      kf_str_printf(&hdr, "/* %s. Variants:\n", f->tmpl);
      size_t first = vars.len, n_f = 0;
      for (size_t i = 0; i < vars.len; i++)
        if (!strcmp(vars.data[i].tmpl, f->tmpl)) {
          const variant *v = &vars.data[i];
          if (first == vars.len) first = i;
          n_f++;
          kf_str_printf(&hdr, "**   ");
          kf_str t = {0};
          kf_str_printf(&t, "%s  %s  %s  %s: ", v->shape, v->target, v->config, v->accuracy);
          if (v->eff_bits >= 0) kf_str_printf(&t, "%.2f effective bits, max err/bound %.3f", v->eff_bits, v->max_err_ratio);
          else kf_str_printf(&t, "accuracy not measured (template default)");
          kf_str_printf(&t, "  (%s)", v->how);
          comment_text(&hdr, t.data);
          kf_str_free(&t);
          kf_str_printf(&hdr, "\n");
        }
      kf_str_printf(&hdr, "** any other shape: ");
      kf_str t = {0};
      if (f->fallback[0])
        kf_str_printf(&t, "the generic kernel kf_generic_%s at %s (params it does not take must be their "
                      "defaults, else -2)", f->fallback, f->accuracy[0] ? f->accuracy : "the template's defaults");
      else kf_str_printf(&t, "refused (-2): %s", f->no_fallback);
      comment_text(&hdr, t.data);
      kf_str_free(&t);
      kf_str_printf(&hdr, " */\nint ");
      family_signature(f, lib_name, "", 1, &hdr);
      kf_str_printf(&hdr, ";\n/* What the dispatch function runs for this shape on this CPU (kernel, target, accuracy). */\n"
                          "const char *");
      family_signature(f, lib_name, "_variant", 0, &hdr);
      kf_str_printf(&hdr, ";\n\n");
      write_family(f, vars.data + (first < vars.len ? first : 0), first < vars.len ? n_f : 0, lib_name, &disp);
    }
    kf_str_printf(&hdr, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    path.len = 0;
    kf_str_printf(&path, "%s/%s.h", dir, lib_name);
    rc = write_str(ctx, path.data, &hdr);
    if (!rc) {
      path.len = 0;
      kf_str_printf(&path, "%s/%s.h", src, lib_name); /* the dispatch source includes it from src/ */
      rc = write_str(ctx, path.data, &hdr);
    }
    if (!rc) {
      path.len = 0;
      kf_str_printf(&path, "%s/%s_dispatch.c", src, lib_name);
      rc = write_str(ctx, path.data, &disp);
    }
  }
  /* compile the dispatch, the runtime sources, archive everything */
  for (int i = -1; !rc && (i < 0 || kf_embedded_dispatch[i].name); i++) {
    char cfile[PATH_MAX + 64], ofile[PATH_MAX + 64], inc[PATH_MAX + 16];
    if (i < 0) {
      snprintf(cfile, sizeof cfile, "%s/%s_dispatch.c", src, lib_name);
      snprintf(ofile, sizeof ofile, "%s/%s_dispatch.o", src, lib_name);
    } else {
      const char *name = kf_embedded_dispatch[i].name;
      size_t nl = strlen(name);
      if (nl < 3 || strcmp(name + nl - 2, ".c")) continue;
      snprintf(cfile, sizeof cfile, "%s/%s", src, name);
      snprintf(ofile, sizeof ofile, "%s/%.*s.o", src, (int)(nl - 2), name);
    }
    snprintf(inc, sizeof inc, "-I%s", src);
    char *argv[] = {(char *)KF_C_COMPILER, "-std=gnu11", "-O2", "-fPIC", "-Wall", "-Wextra", "-Werror", "-pthread",
                    inc, "-c", cfile, "-o", ofile, NULL};
    rc = run_cmd(ctx, argv);
    if (!rc) kf_vec_push(&objs, kf_xstrdup(ofile));
  }
  if (!rc) {
    path.len = 0;
    kf_str_printf(&path, "%s/lib%s.a", dir, lib_name);
    unlink(path.data);
    char **argv = kf_xcalloc(objs.len + 4, sizeof(char *));
    argv[0] = "ar";
    argv[1] = "rcs";
    argv[2] = path.data;
    for (size_t i = 0; i < objs.len; i++) argv[3 + i] = objs.data[i];
    rc = run_cmd(ctx, argv);
    free(argv);
  }
  if (!rc) {
    kf_str pc = {0};
    kf_str_printf(&pc,
                  "prefix=%s\nlibdir=${prefix}\nincludedir=${prefix}\n\nName: %s\n"
                  "Description: kforge tuned kernels (%zu variants, targets %s) and the kf_quant packing functions\n"
                  "Version: %s\nCflags: -I${includedir}\nLibs: -L${libdir} -l%s -lm -lpthread\n",
                  dir, lib_name, vars.len, tnames.data, KF_VERSION, lib_name);
    path.len = 0;
    kf_str_printf(&path, "%s/%s.pc", dir, lib_name);
    rc = write_str(ctx, path.data, &pc);
    kf_str_free(&pc);
  }
  if (!rc)
    fprintf(out, "wrote %s/lib%s.a (%zu tuned variants, %zu families, targets %s), %s/%s.h, %s/kf_quant.h, %s/%s.pc\n",
            dir, lib_name, vars.len, fams.len, tnames.data, dir, lib_name, dir, dir, lib_name);
  kf_str_free(&hdr);
  kf_str_free(&disp);
  kf_str_free(&path);
  kf_str_free(&tnames);
  for (size_t i = 0; i < objs.len; i++) free(objs.data[i]);
  for (size_t i = 0; i < fams.len; i++) kf_str_free(&fams.data[i].fallback_call);
  kf_vec_free(&objs);
  kf_vec_free(&vars);
  kf_vec_free(&fams);
  return rc;
}

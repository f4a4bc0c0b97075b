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

/* One AOT variant. */
typedef struct variant {
  char tmpl[64], fn[160], shape[512], config[512], how[300];
  kf_binding params;
} variant;

/* One family = one template: its params and kernel arguments, in signature order. */
typedef struct family {
  char tmpl[64];
  char params[KF_MAX_BIND][32];
  int n_params;
  int64_t param_def[KF_MAX_BIND]; /* template default of each param (size params: 0) */
  char arg_name[8][32], arg_type[8][48];
  int n_args;
  int64_t default_passes;
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

static int family_from_kernel(kf_ctx *ctx, const kf_kernel *k, family *f) {
  memset(f, 0, sizeof *f);
  const char *tn = kf_template_name(k->tmpl);
  snprintf(f->tmpl, sizeof f->tmpl, "%s", tn);
  if (strcmp(tn, "msd_gemm") && strcmp(tn, "dequant_gemm"))
    return kf_err(ctx, KF_EUNSUP,
                  "kforge lib: template %s has no generic runtime-shaped fallback in runtime/dispatch "
                  "(families with one: msd_gemm, dequant_gemm)",
                  tn);
  static const char *const first[] = {"M", "N", "K"};
  for (int i = 0; i < 3; i++) snprintf(f->params[f->n_params++], 32, "%s", first[i]);
  for (int i = 0; i < kf_template_n_params(k->tmpl); i++) {
    const char *pn = kf_template_param(k->tmpl, i)->name;
    if (strcmp(pn, "M") && strcmp(pn, "N") && strcmp(pn, "K")) {
      f->param_def[f->n_params] = kf_template_param(k->tmpl, i)->def;
      snprintf(f->params[f->n_params++], 32, "%s", pn);
    }
  }
  f->n_args = kf_kernel_n_args(k);
  if (f->n_args > 8) return kf_err(ctx, KF_EUNSUP, "kforge lib: %s has more than 8 arguments", tn);
  for (int i = 0; i < f->n_args; i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    snprintf(f->arg_name[i], 32, "%s", b->name);
    snprintf(f->arg_type[i], 48, "%s%s *", b->level == KF_LVL_ARG_OUT ? "" : "const ", c_elem_type(b->dtype));
  }
  f->default_passes = 2;
  for (int i = 0; i < kf_template_n_tunables(k->tmpl); i++)
    if (!strcmp(kf_template_tunable(k->tmpl, i)->name, "passes")) f->default_passes = kf_template_tunable(k->tmpl, i)->def;
  return KF_OK;
}

static void family_signature(const family *f, const char *lib, const char *suffix, int with_args, kf_str *o) {
  kf_str_printf(o, "%s_%s%s(", lib, f->tmpl, suffix);
  for (int i = 0; i < f->n_params; i++) kf_str_printf(o, "%sint64_t %s", i ? ", " : "", f->params[i]);
  if (with_args) {
    for (int i = 0; i < f->n_args; i++) kf_str_printf(o, ", %s%s", f->arg_type[i], f->arg_name[i]);
    kf_str_printf(o, ", int n_threads");
  }
  kf_str_printf(o, ")");
}

static void variant_condition(const family *f, const variant *v, kf_str *o) {
  for (int i = 0; i < f->n_params; i++) {
    int64_t val = 0;
    kf_binding_get(&v->params, f->params[i], &val);
    kf_str_printf(o, "%s%s == %lld", i ? " && " : "", f->params[i], (long long)val);
  }
}

/* The generic call; params the generic kernel does not know must have the template's default
** (else the generic cannot compute what the template would, and the call returns -1). */
static void generic_call(const family *f, kf_str *o) {
  static const char *const known[] = {"M", "N", "K", "bits", "group", "act_group", "wround", NULL};
  int n_other = 0;
  for (int i = 0; i < f->n_params; i++) {
    int is_known = 0;
    for (int j = 0; known[j]; j++) is_known |= !strcmp(known[j], f->params[i]);
    if (!is_known)
      kf_str_printf(o, "%s%s != %lld", n_other++ ? " || " : "(", f->params[i], (long long)f->param_def[i]);
  }
  if (n_other) kf_str_printf(o, ") ? -1 : ");
  if (!strcmp(f->tmpl, "msd_gemm"))
    kf_str_printf(o, "kf_generic_msd_gemm(M, N, K, bits, group, act_group, %lld, x, w, w_scale, y, n_threads)",
                  (long long)f->default_passes);
  else kf_str_printf(o, "kf_generic_dequant_gemm(M, N, K, bits, group, wround, x, w, w_scale, y, n_threads)");
}

int kf_lib_build(kf_ctx *ctx, kf_store *s, const kf_shape_list *shapes, const char *target_name, const char *out_dir,
                 const char *lib_name, FILE *out) {
  if (!lib_name) lib_name = "kforge_kernels";
  for (const char *p = lib_name; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_') return kf_err(ctx, KF_EINVAL, "--name '%s': letters, digits, _ only", lib_name);
  if (shapes->len == 0) return kf_err(ctx, KF_EINVAL, "kforge lib: the shapes list is empty");
  char dir[PATH_MAX], src[PATH_MAX + 8];
  int rc = make_dir(ctx, out_dir);
  if (rc) return rc;
  if (!realpath(out_dir, dir)) return kf_err(ctx, KF_EIO, "%s: %s", out_dir, strerror(errno));
  snprintf(src, sizeof src, "%s/src", dir);
  if ((rc = make_dir(ctx, src))) return rc;
  kf_target target;
  if ((rc = kf_target_get(ctx, target_name, &target))) return rc;

  KF_VEC(variant) vars = {0};
  KF_VEC(family) fams = {0};
  KF_VEC(char *) objs = {0};
  kf_str path = {0};
  for (size_t i = 0; !rc && i < shapes->len; i++) {
    const kf_shape_entry *e = &shapes->data[i];
    if (!e->tmpl[0]) {
      rc = kf_err(ctx, KF_EINVAL, "shapes line %d: kforge lib needs 'TEMPLATE NAME=V,...'", e->line);
      break;
    }
    kf_template *t = NULL;
    kf_kernel k0, k;
    memset(&k0, 0, sizeof k0);
    memset(&k, 0, sizeof k);
    kf_binding shape;
    memset(&shape, 0, sizeof shape);
    kf_lookup_result lr;
    rc = kf_binding_parse(ctx, e->shape, "shape", &shape);
    if (!rc) rc = kf_template_load(ctx, e->tmpl, &t);
    if (!rc) rc = kf_kernel_build(ctx, t, &shape, NULL, &target, &k0);
    if (!rc) rc = kf_lookup(ctx, s, t, &k0.params, NULL, &target, NULL, &lr);
    if (!rc) rc = kf_kernel_build(ctx, t, &shape, &lr.config, &target, &k);
    if (rc) {
      kf_err_prefix(ctx, rc, "shapes line %d (%s %s)", e->line, e->tmpl, e->shape);
    } else {
      variant v;
      memset(&v, 0, sizeof v);
      snprintf(v.tmpl, sizeof v.tmpl, "%s", kf_template_name(t));
      snprintf(v.fn, sizeof v.fn, "%s", k.fn_name);
      kf_str tmp = {0};
      kf_binding_format(&k.params, &tmp);
      snprintf(v.shape, sizeof v.shape, "%s", tmp.data ? tmp.data : "");
      kf_str_free(&tmp);
      kf_config_json(&k.config, v.config, sizeof v.config);
      v.params = k.params;
      if (lr.kind == KF_LOOKUP_EXACT)
        snprintf(v.how, sizeof v.how, "exact: tuned, median %.1f us", lr.median_s * 1e6);
      else if (lr.kind == KF_LOOKUP_NEAREST)
        snprintf(v.how, sizeof v.how, "nearest: config of %.200s (distance %.2f)", lr.from_shape, lr.distance);
      else snprintf(v.how, sizeof v.how, "default: %.250s", lr.note);
      fprintf(out, "  %-14s %-50s %s  %s\n", v.tmpl, v.shape, v.config, v.how);
      int dup = 0;
      for (size_t j = 0; j < vars.len; j++) dup |= !strcmp(vars.data[j].fn, v.fn);
      family f;
      int have_fam = 0;
      for (size_t j = 0; j < fams.len; j++) have_fam |= !strcmp(fams.data[j].tmpl, v.tmpl);
      if (!have_fam) {
        rc = family_from_kernel(ctx, &k, &f);
        if (!rc) kf_vec_push(&fams, f);
      }
      if (!rc && !dup) {
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
  /* runtime/dispatch sources */
  for (int i = 0; !rc && kf_embedded_dispatch[i].name; i++) {
    path.len = 0;
    kf_str_printf(&path, "%s/%s", src, kf_embedded_dispatch[i].name);
    rc = kf_write_file(ctx, path.data, kf_embedded_dispatch[i].data, kf_embedded_dispatch[i].size);
  }
  /* the public header and the dispatch functions */
  kf_str hdr = {0}, disp = {0};
  if (!rc) {
    kf_str_printf(&hdr,
                  "/* %s.h: generated by kforge %s (kforge lib) for target %s.\n"
                  "** One dispatch function per kernel family: it runs the kernel tuned for the shape when\n"
                  "** the shape is one of the list below, else a generic runtime-shaped kernel. Arguments\n"
                  "** and layouts are the templates' (gemm_q: x bf16 bits [M][K], w packed as\n"
                  "** runtime/quant/kf_quant.h says, w_scale f32 [n_groups][N rounded up to 16], y f32\n"
                  "** [M][N]). n_threads <= 1 runs on the calling thread; workspaces are allocated per call.\n"
                  "** Returns 0, or -1 on bad arguments / no memory.\n"
                  "** Link: pkg-config --cflags --libs %s (libc, libm and pthreads only). */\n"
                  "#ifndef %s_H\n#define %s_H\n\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
                  lib_name, KF_VERSION, target.name, lib_name, lib_name, lib_name);
    kf_str_printf(&disp, "/* Generated by kforge %s (kforge lib): dispatch by shape. */\n#include \"%s.h\"\n#include \"kf_dispatch.h\"\n",
                  KF_VERSION, lib_name);
    for (size_t i = 0; i < vars.len; i++) kf_str_printf(&disp, "#include \"%s.h\"\n", vars.data[i].fn);
    for (size_t fi = 0; fi < fams.len; fi++) {
      const family *f = &fams.data[fi];
      kf_str_printf(&hdr, "/* %s. Variants:\n", f->tmpl);
      for (size_t i = 0; i < vars.len; i++)
        if (!strcmp(vars.data[i].tmpl, f->tmpl))
          kf_str_printf(&hdr, "**   %s  %s  (%s)\n", vars.data[i].shape, vars.data[i].config, vars.data[i].how);
      kf_str_printf(&hdr, "** any other shape: the generic kernel. */\nint ");
      family_signature(f, lib_name, "", 1, &hdr);
      kf_str_printf(&hdr, ";\n/* Name of the kernel the dispatch function runs for this shape (\"generic\" if none). */\nconst char *");
      family_signature(f, lib_name, "_variant", 0, &hdr);
      kf_str_printf(&hdr, ";\n\n");

      kf_str_printf(&disp, "\nint ");
      family_signature(f, lib_name, "", 1, &disp);
      kf_str_printf(&disp, " {\n  void *const args[%d] = {", f->n_args);
      for (int a = 0; a < f->n_args; a++) kf_str_printf(&disp, "%s(void *)%s", a ? ", " : "", f->arg_name[a]);
      kf_str_printf(&disp, "};\n  (void)args;\n");
      for (size_t i = 0; i < vars.len; i++) {
        const variant *v = &vars.data[i];
        if (strcmp(v->tmpl, f->tmpl)) continue;
        kf_str_printf(&disp, "  if (");
        variant_condition(f, v, &disp);
        kf_str_printf(&disp, ")\n    return kf_dispatch_run(%s, args, %s_PAR_TOTAL, %s_WS_BYTES, n_threads, NULL, 0);\n",
                      v->fn, v->fn, v->fn);
      }
      kf_str_printf(&disp, "  return ");
      generic_call(f, &disp);
      kf_str_printf(&disp, ";\n}\n\nconst char *");
      family_signature(f, lib_name, "_variant", 0, &disp);
      kf_str_printf(&disp, " {\n");
      for (size_t i = 0; i < vars.len; i++) {
        const variant *v = &vars.data[i];
        if (strcmp(v->tmpl, f->tmpl)) continue;
        kf_str_printf(&disp, "  if (");
        variant_condition(f, v, &disp);
        kf_str_printf(&disp, ") return \"%s\";\n", v->fn);
      }
      for (int p = 0; p < f->n_params; p++) kf_str_printf(&disp, "  (void)%s;\n", f->params[p]);
      kf_str_printf(&disp, "  return \"generic\";\n}\n");
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
  /* compile the dispatch and the generic kernels, archive everything */
  static const char *const c_files[] = {"kf_dispatch", NULL};
  for (int i = 0; !rc && i < 2; i++) {
    char cfile[PATH_MAX + 64], ofile[PATH_MAX + 64], inc[PATH_MAX + 16];
    const char *base = i == 0 ? c_files[0] : NULL;
    if (base) {
      snprintf(cfile, sizeof cfile, "%s/%s.c", src, base);
      snprintf(ofile, sizeof ofile, "%s/%s.o", src, base);
    } else {
      snprintf(cfile, sizeof cfile, "%s/%s_dispatch.c", src, lib_name);
      snprintf(ofile, sizeof ofile, "%s/%s_dispatch.o", src, lib_name);
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
                  "Description: kforge tuned kernels (%zu variants, target %s)\nVersion: %s\n"
                  "Cflags: -I${includedir}\nLibs: -L${libdir} -l%s -lm -lpthread\n",
                  dir, lib_name, vars.len, target.name, KF_VERSION, lib_name);
    path.len = 0;
    kf_str_printf(&path, "%s/%s.pc", dir, lib_name);
    rc = write_str(ctx, path.data, &pc);
    kf_str_free(&pc);
  }
  if (!rc)
    fprintf(out, "wrote %s/lib%s.a (%zu tuned variants, %zu families), %s/%s.h, %s/%s.pc\n", dir, lib_name, vars.len,
            fams.len, dir, lib_name, dir, lib_name);
  kf_str_free(&hdr);
  kf_str_free(&disp);
  kf_str_free(&path);
  for (size_t i = 0; i < objs.len; i++) free(objs.data[i]);
  kf_vec_free(&objs);
  kf_vec_free(&vars);
  kf_vec_free(&fams);
  return rc;
}

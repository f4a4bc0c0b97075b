/*
** test_aot.c: ahead-of-time use of the LLVM emitter, the way a user program links a kernel.
**
** Every LIR sample (tests/support/lir_samples.h) plus one kernel built here (workspace
** buffer, parallel range > 1) is emitted for the host target as NAME.o + NAME.h into a temp
** directory. The test writes a plain C program that includes every header, reads each
** kernel's input buffers from files (sizes and args[] slots taken from the header's
** NAME_ARG_<BUF>, NAME_ARG_<BUF>_ELEMS, NAME_N_ARGS macros), calls NAME_run() and prints
** the output buffers in hex. It compiles that program with `cc -std=c11 -Wall -Wextra
** -Werror` against the objects and libm only (no LLVM, no kforge), runs it, and compares
** what it printed with the LIR interpreter (kf_lir_sample_compare).
** Failure paths: the header of a kernel whose object is missing must not link, and a
** header on its own must compile cleanly with -pedantic.
*/
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lir_interp.h"
#include "kf_check.h"
#include "lir_samples.h"
#include "target.h"

static int n_fail;


/* Runs argv (fork/exec, PATH lookup) with stdout+stderr captured into out; returns the exit
** status, or -1 if it could not run / was killed. */
static int run_cmd(char *const *argv, kf_str *out) {
  int pipefd[2];
  if (pipe(pipefd)) return -1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(pipefd[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf - 1)) > 0) {
    buf[n] = 0;
    kf_str_puts(out, buf);
  }
  close(pipefd[0]);
  int status;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

static size_t elem_bytes(kf_scalar s) { return s == KF_BOOL ? 1 : (size_t)kf_scalar_bits(s) / 8; }

static void upper_ident(kf_str *s, const char *name) {
  for (const char *p = name; *p; p++)
    kf_str_printf(s, "%c", isalnum((unsigned char)*p) ? toupper((unsigned char)*p) : '_');
}

/* rows[r][c] *= scale[c] through a workspace copy; out_sum[r] = sum of the scaled row. */
static kf_lir_func *build_rowscale(int lanes, int rows, int cols) {
  kf_lir_func *f = kf_lir_func_new("t_aot_rowscale");
  f->par_total = rows;
  int x = kf_lir_buf_add(f, "x", KF_F32, (int64_t)rows * cols, KF_BUF_IN);
  int sc = kf_lir_buf_add(f, "scale", KF_F32, cols, KF_BUF_IN);
  int y = kf_lir_buf_add(f, "y", KF_F32, (int64_t)rows * cols, KF_BUF_OUT);
  int sum = kf_lir_buf_add(f, "row_sum", KF_F32, rows, KF_BUF_OUT);
  int tmp = kf_lir_buf_add(f, "tmp", KF_F32, cols, KF_BUF_LOCAL);
  kf_ty vt = kf_ty_of(KF_F32, lanes), st = kf_ty_of(KF_F32, 1);
  int r = kf_lir_var_add(f, "r", kf_ty_of(KF_I64, 1));
  int c = kf_lir_var_add(f, "c", kf_ty_of(KF_I64, 1));
  int acc = kf_lir_var_add(f, "acc", st);
  kf_lir_stmt *rl = kf_lfor(f, &f->body, r, kf_lv(f, f->par_lo_var), kf_lv(f, f->par_hi_var), 1);
  kf_lir_stmt *cl = kf_lfor(f, &rl->body, c, kf_lc_i64(f, 0), kf_lc_i64(f, cols), lanes);
  kf_lir_expr *at = kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, r), kf_lc_i64(f, cols)),
                            kf_lv(f, c));
  kf_lstore(f, &cl->body, tmp, kf_lv(f, c),
            kf_lbin(f, KF_L_MUL, kf_lload(f, vt, x, at), kf_lload(f, vt, sc, kf_lv(f, c))));
  kf_lassign(f, &rl->body, acc, kf_lc_f(f, st, 0.0));
  cl = kf_lfor(f, &rl->body, c, kf_lc_i64(f, 0), kf_lc_i64(f, cols), lanes);
  kf_lir_expr *v = kf_lload(f, vt, tmp, kf_lv(f, c));
  kf_lstore(f, &cl->body, y, kf_lbin(f, KF_L_ADD, kf_lbin(f, KF_L_MUL, kf_lv(f, r), kf_lc_i64(f, cols)), kf_lv(f, c)), v);
  kf_lassign(f, &cl->body, acc,
             kf_lbin(f, KF_L_ADD, kf_lv(f, acc), kf_lop(f, KF_L_REDUCE_ADD, st, v, NULL, NULL)));
  kf_lstore(f, &rl->body, sum, kf_lv(f, r), kf_lv(f, acc));
  return f;
}

/* Inputs for the local kernel: small dyadic values, so every sum is exact in any order. */
static void rowscale_inputs(const kf_lir_func *f, void **args) {
  for (size_t i = 0; i < f->bufs.len; i++) {
    const kf_lir_buf *b = &f->bufs.data[i];
    if (b->kind == KF_BUF_LOCAL) continue;
    float *p = malloc((size_t)b->n_elems * 4);
    for (int64_t j = 0; j < b->n_elems; j++)
      p[j] = b->kind == KF_BUF_OUT ? NAN : (float)((j * 7 + (int64_t)i * 3) % 17 - 8) * 0.25f;
    args[b->arg_index] = p;
  }
}

typedef struct kernel {
  kf_lir_func *f;
  int sample; /* -1: local */
  void **want, **got;
  int emitted;
} kernel;

static void kernel_inputs(kernel *k, void **args) {
  if (k->sample >= 0) kf_lir_sample_inputs(k->sample, k->f, args);
  else rowscale_inputs(k->f, args);
}

static int write_bytes(const char *path, const void *p, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  size_t w = fwrite(p, 1, n, fp);
  return (fclose(fp) != 0 || w != n) ? -1 : 0;
}

/* Parses "out KERNEL ARG NBYTES HEX" lines into the kernels' got buffers. Returns the
** number of buffers filled. */
static int parse_output(const char *text, kernel *ks, int n_k) {
  int filled = 0;
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n');
    char name[256];
    int arg;
    size_t nbytes;
    int used = 0;
    if (sscanf(line, "out %255s %d %zu %n", name, &arg, &nbytes, &used) == 3 && used > 0) {
      for (int i = 0; i < n_k; i++) {
        if (strcmp(ks[i].f->name, name) || arg < 0 || arg >= ks[i].f->n_args) continue;
        unsigned char *dst = ks[i].got[arg];
        const char *h = line + used;
        size_t j = 0;
        for (; j < nbytes && isxdigit((unsigned char)h[0]) && isxdigit((unsigned char)h[1]); j++, h += 2) {
          unsigned v;
          sscanf(h, "%2x", &v);
          dst[j] = (unsigned char)v;
        }
        if (j == nbytes) filled++;
      }
    }
    line = eol ? eol + 1 : NULL;
  }
  return filled;
}

int main(void) {
  double t0 = kf_now();
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_target t;
  kf_assert(!kf_target_get(&ctx, "cpu-host", &t));
  printf("host target: %s\n", t.name);
  char dir[] = "/tmp/kf_test_aot_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }

  int n_samples = kf_lir_sample_count();
  CHECK(n_samples > 0, "%d LIR samples available", n_samples);
  int n_k = n_samples + 1;
  kernel *ks = calloc((size_t)n_k, sizeof *ks);
  for (int i = 0; i < n_samples; i++) {
    ks[i].f = kf_lir_sample_build(i, t.vl32);
    ks[i].sample = i;
  }
  ks[n_samples].f = build_rowscale(t.vl32, 7, 4 * t.vl32);
  ks[n_samples].sample = -1;

  /* Emit .o + .h; write input files; reference results from the interpreter. */
  kf_str prog = {0}, cc_out = {0};
  kf_str_puts(&prog, "#include <stdio.h>\n#include <stdlib.h>\n");
  for (int i = 0; i < n_k; i++) kf_str_printf(&prog, "#include \"%s.h\"\n", ks[i].f->name);
  kf_str_puts(&prog,
              "\nstatic void *load(const char *path, size_t n) {\n"
              "  void *p = malloc(n ? n : 1);\n"
              "  FILE *f = fopen(path, \"rb\");\n"
              "  if (!p || !f || fread(p, 1, n, f) != n) { fprintf(stderr, \"cannot read %s\\n\", path); exit(3); }\n"
              "  fclose(f);\n  return p;\n}\n"
              "static void dump(const char *kernel, int arg, const void *p, size_t n) {\n"
              "  printf(\"out %s %d %zu \", kernel, arg, n);\n"
              "  for (size_t i = 0; i < n; i++) printf(\"%02x\", ((const unsigned char *)p)[i]);\n"
              "  printf(\"\\n\");\n}\n\nint main(void) {\n");
  char *cc_argv[256];
  int n_cc = 0;
  cc_argv[n_cc++] = "cc";
  cc_argv[n_cc++] = "-std=c11";
  cc_argv[n_cc++] = "-Wall";
  cc_argv[n_cc++] = "-Wextra";
  cc_argv[n_cc++] = "-Werror";
  cc_argv[n_cc++] = "-O1";
  char *objs[256];
  int n_obj = 0;
  for (int i = 0; i < n_k && n_cc < 200; i++) {
    kernel *k = &ks[i];
    const kf_lir_func *f = k->f;
    char path[600];
    snprintf(path, sizeof path, "%s/%s.o", dir, f->name);
    int rc = kf_llvm_emit_file(&ctx, f, &t, KF_LLVM_OBJ, path);
    if (rc) {
      CHECK(0, "%s: emit .o: %s", f->name, kf_errmsg(&ctx));
      continue;
    }
    objs[n_obj++] = cc_argv[n_cc++] = kf_xstrdup(path);
    kf_str h = {0};
    kf_emit_header(f, &t, &h);
    snprintf(path, sizeof path, "%s/%s.h", dir, f->name);
    rc = kf_write_file(&ctx, path, h.data, h.len);
    kf_str_free(&h);
    if (rc) {
      CHECK(0, "%s: write header: %s", f->name, kf_errmsg(&ctx));
      continue;
    }
    k->emitted = 1;
    k->want = calloc((size_t)f->n_args + 1, sizeof *k->want);
    k->got = calloc((size_t)f->n_args + 1, sizeof *k->got);
    kernel_inputs(k, k->want);
    kernel_inputs(k, k->got);
    kf_str_printf(&prog, "  { /* %s */\n    void *args[%s_N_ARGS + 1];\n", f->name, f->name);
    for (size_t b = 0; b < f->bufs.len; b++) {
      const kf_lir_buf *bd = &f->bufs.data[b];
      if (bd->kind == KF_BUF_LOCAL) continue;
      snprintf(path, sizeof path, "%s/%s.arg%d.bin", dir, f->name, bd->arg_index);
      write_bytes(path, k->got[bd->arg_index], (size_t)bd->n_elems * elem_bytes(bd->elem));
      kf_str macro = {0};
      kf_str_printf(&macro, "%s_ARG_", f->name);
      upper_ident(&macro, bd->name);
      kf_str_printf(&prog, "    args[%s] = load(\"%s\", (size_t)%s_ELEMS * %zu);\n", macro.data,
                    path, macro.data, elem_bytes(bd->elem));
      kf_str_free(&macro);
    }
    kf_str_printf(&prog, "    if (%s_run(args)) return 2;\n", f->name);
    for (size_t b = 0; b < f->bufs.len; b++) {
      const kf_lir_buf *bd = &f->bufs.data[b];
      if (bd->kind != KF_BUF_OUT) continue;
      kf_str_printf(&prog, "    dump(\"%s\", %d, args[%d], %zu);\n", f->name, bd->arg_index,
                    bd->arg_index, (size_t)bd->n_elems * elem_bytes(bd->elem));
    }
    kf_str_printf(&prog, "    for (int i = 0; i < %s_N_ARGS; i++) free(args[i]);\n  }\n", f->name);
    void *ws = aligned_alloc(64, (size_t)(f->ws_bytes + 64) / 64 * 64);
    rc = kf_lir_interp_run(&ctx, f, k->want, 0, f->par_total, ws);
    free(ws);
    if (rc) CHECK(0, "%s: interpreter: %s", f->name, kf_errmsg(&ctx));
  }
  kf_str_puts(&prog, "  return 0;\n}\n");
  char main_c[600], exe[600], inc[620];
  snprintf(main_c, sizeof main_c, "%s/main.c", dir);
  snprintf(exe, sizeof exe, "%s/prog", dir);
  snprintf(inc, sizeof inc, "-I%s", dir);
  kf_assert(!kf_write_file(&ctx, main_c, prog.data, prog.len));
  cc_argv[n_cc++] = inc;
  cc_argv[n_cc++] = main_c;
  cc_argv[n_cc++] = "-o";
  cc_argv[n_cc++] = exe;
  cc_argv[n_cc++] = "-lm";
  cc_argv[n_cc] = NULL;
  double tc = kf_now();
  int st = run_cmd(cc_argv, &cc_out);
  CHECK(st == 0, "cc links %d kernel objects + main.c with libm only (%.2f s)%s%s", n_obj,
        kf_now() - tc, st ? ":\n" : "", st ? cc_out.data : "");

  if (st == 0) {
    kf_str run_out = {0};
    char *run_argv[2] = {exe, NULL};
    st = run_cmd(run_argv, &run_out);
    int n_out = 0;
    for (int i = 0; i < n_k; i++)
      if (ks[i].emitted)
        for (size_t b = 0; b < ks[i].f->bufs.len; b++) n_out += ks[i].f->bufs.data[b].kind == KF_BUF_OUT;
    int filled = parse_output(run_out.data ? run_out.data : "", ks, n_k);
    CHECK(st == 0 && filled == n_out, "program ran (exit %d) and printed %d of %d output buffers",
          st, filled, n_out);
    for (int i = 0; i < n_k; i++) {
      kernel *k = &ks[i];
      if (!k->emitted) continue;
      char msg[512] = "";
      int bad;
      if (k->sample >= 0) {
        bad = kf_lir_sample_compare(k->sample, k->f, k->got, k->want, msg, sizeof msg);
      } else { /* local kernel: exact (dyadic data) */
        bad = 0;
        for (size_t b = 0; b < k->f->bufs.len && !bad; b++) {
          const kf_lir_buf *bd = &k->f->bufs.data[b];
          if (bd->kind != KF_BUF_OUT) continue;
          if (memcmp(k->got[bd->arg_index], k->want[bd->arg_index], (size_t)bd->n_elems * 4)) {
            bad = 1;
            snprintf(msg, sizeof msg, "buffer %s differs", bd->name);
          }
        }
      }
      CHECK(!bad, "AOT %s (par_total %lld, ws %lld bytes) == interpreter%s%s", k->f->name,
            (long long)k->f->par_total, (long long)k->f->ws_bytes, bad ? ": " : "", msg);
    }
    kf_str_free(&run_out);
  }

  /* A header on its own compiles with -pedantic; without its object the program must
  ** fail to link (the kernel symbol comes from the .o, nothing else provides it). */
  if (n_obj > 0) {
    const kf_lir_func *f = ks[n_k - 1].f;
    char solo_c[600], solo_exe[600];
    snprintf(solo_c, sizeof solo_c, "%s/solo.c", dir);
    snprintf(solo_exe, sizeof solo_exe, "%s/solo", dir);
    kf_str solo = {0};
    kf_str_printf(&solo, "#include \"%s.h\"\n#include \"%s.h\" /* include guard */\n"
                         "int main(void) { void *args[%s_N_ARGS] = {0}; return %s_run(args); }\n",
                  f->name, f->name, f->name, f->name);
    kf_assert(!kf_write_file(&ctx, solo_c, solo.data, solo.len));
    char *c_argv[] = {"cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", inc,
                      solo_c, "-o", solo_exe, NULL};
    kf_str o = {0};
    st = run_cmd(c_argv, &o);
    CHECK(st == 0, "header of %s compiles alone with -std=c11 -pedantic -Werror (twice included)%s%s",
          f->name, st ? ":\n" : "", st ? o.data : "");
    o.len = 0;
    char *l_argv[] = {"cc", solo_exe, "-o", exe, NULL};
    st = run_cmd(l_argv, &o);
    CHECK(st != 0 && o.data && strstr(o.data, f->name),
          "linking without the kernel object fails naming %s (exit %d)", f->name, st);
    kf_str_free(&o);
    kf_str_free(&solo);
  }

  for (int i = 0; i < n_k; i++) {
    if (ks[i].emitted) {
      if (ks[i].sample >= 0) {
        kf_lir_sample_free_inputs(ks[i].f, ks[i].want);
        kf_lir_sample_free_inputs(ks[i].f, ks[i].got);
      } else {
        for (int a = 0; a < ks[i].f->n_args; a++) {
          free(ks[i].want[a]);
          free(ks[i].got[a]);
        }
      }
    }
    free(ks[i].want);
    free(ks[i].got);
    kf_lir_func_free(ks[i].f);
  }
  free(ks);
  for (int i = 0; i < n_obj; i++) free(objs[i]);
  kf_str_free(&prog);
  kf_str_free(&cc_out);
  /* remove the temp dir */
  char *rm_argv[] = {"rm", "-rf", dir, NULL};
  kf_str rm_out = {0};
  run_cmd(rm_argv, &rm_out);
  kf_str_free(&rm_out);
  printf("%s: %d failure(s), %.1f s\n", n_fail ? "FAIL" : "PASS", n_fail, kf_now() - t0);
  return n_fail != 0;
}

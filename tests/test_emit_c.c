/*
** test_emit_c: the C emitter + cc_load against the LIR interpreter.
**
** For every CPU target this machine can run (the others are reported as skipped) and every
** sample kernel of tests/support/lir_samples.c: emit C, compile and load it, run it on the
** sample's inputs (the parallel range in two calls) and compare with the interpreter run
** on the same inputs (one call). Also checks that the target's special instructions are
** used where they should be, and the failure paths: LIR that fails verification, a bad
** kernel name, C that does not compile, a missing symbol.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lir_interp.h"
#include "lir_samples.h"
#include "target.h"

static int n_fail;

static void check(int ok, const char *what, const char *detail) {
  printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail && *detail ? ": " : "", detail ? detail : "");
  if (!ok) n_fail++;
}

/* ---- failure paths ---- */

static void test_failures(void) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_target t;
  kf_target_get(&ctx, "cpu-generic", &t);

  /* LIR that does not verify: assigning f32 to an i32 variable */
  kf_lir_func *f = kf_lir_func_new("bad_types");
  int v = kf_lir_var_add(f, "x", kf_ty_of(KF_I32, 1));
  kf_lassign(f, &f->body, v, kf_lc_f(f, kf_ty_of(KF_F32, 1), 1.0));
  kf_str out = {0};
  int rc = kf_emit_c(&ctx, f, &t, &out);
  check(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "bad_types"), "verify failure is KF_EINVAL",
        kf_errmsg(&ctx));
  kf_str_free(&out);
  kf_lir_func_free(f);

  /* kernel name that is no C identifier */
  f = kf_lir_func_new("9 bad-name");
  rc = kf_emit_c(&ctx, f, &t, &out);
  check(rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "9 bad-name"), "bad kernel name is KF_EINVAL",
        kf_errmsg(&ctx));
  kf_str_free(&out);
  kf_lir_func_free(f);

  /* valid C, wrong function name: dlsym fails -> KF_ECOMPILE naming the function */
  f = kf_lir_func_new("tiny");
  rc = kf_emit_c(&ctx, f, &t, &out);
  kf_loaded k;
  int rc2 = rc ? rc : kf_cc_load(&ctx, out.data, "no_such_fn", &t, &k);
  check(rc == KF_OK && rc2 == KF_ECOMPILE && strstr(kf_errmsg(&ctx), "no_such_fn"),
        "missing symbol is KF_ECOMPILE", kf_errmsg(&ctx));
  /* the empty kernel itself loads and runs */
  rc2 = kf_cc_load(&ctx, out.data, "tiny", &t, &k);
  if (rc2 == KF_OK) {
    k.fn(NULL, 0, 1, NULL);
    kf_loaded_release(&k);
  }
  check(rc2 == KF_OK, "empty kernel compiles and runs", rc2 ? kf_errmsg(&ctx) : "");
  kf_str_free(&out);
  kf_lir_func_free(f);

  /* C that does not compile: the compiler's first lines come back */
  rc = kf_cc_load(&ctx, "void broken(void) { int x = ; }\n", "broken", &t, &k);
  check(rc == KF_ECOMPILE && strstr(kf_errmsg(&ctx), "error"), "compile error is KF_ECOMPILE",
        kf_errmsg(&ctx));
  /* a name with shell metacharacters is just a (missing) symbol, nothing is executed */
  rc = kf_cc_load(&ctx, "int ok_fn;\n", "x; touch /tmp/kforge_pwned", &t, &k);
  FILE *pw = fopen("/tmp/kforge_pwned", "r");
  check(rc == KF_ECOMPILE && !pw, "function name is not passed to a shell", kf_errmsg(&ctx));
  if (pw) fclose(pw);
}

/* ---- samples on every runnable target ---- */

static int has(const kf_str *s, const char *needle) { return s->data && strstr(s->data, needle); }

/* Instructions the emitted code must use on target t for sample `name`. */
static void check_intrinsics(const kf_target *t, const char *name, const kf_str *src) {
  char what[160];
  if (!strcmp(name, "gemm_u8s8_dpbusd") && t->has_vnni) {
    const char *want = t->isa == KF_ISA_AVX512 ? "_mm512_dpbusd_epi32" : "_mm256_dpbusd_avx_epi32";
    snprintf(what, sizeof what, "%s %s uses %s", t->name, name, want);
    check(has(src, want), what, "");
  }
  if (!strcmp(name, "gemm_u8s8_dpbusd") && !t->has_vnni && t->isa != KF_ISA_GENERIC) {
    snprintf(what, sizeof what, "%s %s uses vpmaddwd (exact u8 x s8 without VNNI)", t->name, name);
    check(has(src, "madd_epi16"), what, "");
  }
  if (!strcmp(name, "dpbf16_dot") && t->has_bf16) {
    snprintf(what, sizeof what, "%s %s uses _mm512_dpbf16_ps and cvtneps_pbh", t->name, name);
    check(has(src, "_mm512_dpbf16_ps") && has(src, "_mm512_cvtneps_pbh"), what, "");
  }
  if (!strcmp(name, "gemm_f32_fma") && t->isa != KF_ISA_GENERIC) {
    snprintf(what, sizeof what, "%s %s uses fmadd", t->name, name);
    check(has(src, t->isa == KF_ISA_AVX512 ? "_mm512_fmadd_ps" : "_mm256_fmadd_ps"), what, "");
  }
  if (!strcmp(name, "loadn_storen") && t->isa == KF_ISA_AVX512) {
    snprintf(what, sizeof what, "%s %s uses masked loads/stores", t->name, name);
    check(has(src, "_mm512_maskz_loadu_ps") && has(src, "_mm512_mask_storeu_epi8"), what, "");
  }
  if (t->isa == KF_ISA_GENERIC) {
    snprintf(what, sizeof what, "%s %s is portable C (no intrinsics)", t->name, name);
    check(!has(src, "immintrin") && !has(src, "_mm"), what, "");
  }
}

static void run_target(const char *tname, double *compile_s, int *n_compiles) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_target t;
  if (kf_target_get(&ctx, tname, &t)) {
    check(0, tname, kf_errmsg(&ctx));
    return;
  }
  const char *why = NULL;
  if (!kf_target_runnable(&t, &why)) {
    printf("skip %s: this CPU lacks %s\n", tname, why);
    return;
  }
  for (int i = 0; i < kf_lir_sample_count(); i++) {
    const char *name = kf_lir_sample_name(i);
    char what[160], msg[512];
    snprintf(what, sizeof what, "%s %s", tname, name);
    kf_lir_func *f = kf_lir_sample_build(i, t.vl32);
    kf_str src = {0};
    kf_loaded k = {0};
    int rc = kf_emit_c(&ctx, f, &t, &src);
    double t0 = kf_now();
    if (!rc) rc = kf_cc_load(&ctx, src.data, f->name, &t, &k);
    *compile_s += kf_now() - t0;
    (*n_compiles)++;
    if (rc) {
      check(0, what, kf_errmsg(&ctx));
      if (src.data && getenv("KF_DUMP")) fputs(src.data, stderr);
      kf_str_free(&src);
      kf_lir_func_free(f);
      continue;
    }
    check_intrinsics(&t, name, &src);
    void **want = calloc((size_t)f->n_args + 1, sizeof *want);
    void **got = calloc((size_t)f->n_args + 1, sizeof *got);
    kf_lir_sample_inputs(i, f, want);
    kf_lir_sample_inputs(i, f, got);
    size_t ws_bytes = (size_t)(f->ws_bytes > 64 ? f->ws_bytes : 64);
    void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
    memset(ws, 0x5a, ws_bytes);
    rc = kf_lir_interp_run(&ctx, f, want, 0, f->par_total, ws);
    if (rc) {
      check(0, what, kf_errmsg(&ctx));
    } else {
      int64_t mid = f->par_total / 2;
      memset(ws, 0x3c, ws_bytes);
      k.fn(got, 0, mid, ws);
      k.fn(got, mid, f->par_total, ws);
      int bad = kf_lir_sample_compare(i, f, got, want, msg, sizeof msg);
      if (!bad) snprintf(msg, sizeof msg, "%zu lines of C", (size_t)0);
      if (!bad) {
        size_t lines = 0;
        for (const char *p = src.data; *p; p++) lines += *p == '\n';
        snprintf(msg, sizeof msg, "matches the interpreter (%zu lines of C)", lines);
      }
      check(!bad, what, msg);
      if (bad && getenv("KF_DUMP")) fputs(src.data, stderr);
    }
    free(ws);
    kf_lir_sample_free_inputs(f, want);
    kf_lir_sample_free_inputs(f, got);
    free(want);
    free(got);
    kf_loaded_release(&k);
    kf_str_free(&src);
    kf_lir_func_free(f);
  }
}

int main(void) {
  double t0 = kf_now();
  test_failures();
  double compile_s = 0;
  int n_compiles = 0;
  for (int i = 0; kf_target_names[i]; i++) {
    if (!strcmp(kf_target_names[i], "cpu-host")) continue;
    run_target(kf_target_names[i], &compile_s, &n_compiles);
  }
  printf("%d kernels compiled in %.1f s (%.2f s each); total %.1f s\n", n_compiles, compile_s,
         n_compiles ? compile_s / n_compiles : 0, kf_now() - t0);
  printf("%s: %d failure(s)\n", n_fail ? "FAILED" : "PASSED", n_fail);
  return n_fail != 0;
}

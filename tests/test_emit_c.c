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
#include <pthread.h>
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

  /* LIR names that are C keywords, prelude names, parameters or duplicates are renamed */
  f = kf_lir_func_new("kf_named_kernel");
  int b_in = kf_lir_buf_add(f, "int", KF_F32, 16, KF_BUF_IN);
  int b_out = kf_lir_buf_add(f, "args", KF_F32, 16, KF_BUF_OUT);
  int v1 = kf_lir_var_add(f, "kf_load_f32x16", kf_ty_of(KF_F32, 16));
  int v2 = kf_lir_var_add(f, "ws", kf_ty_of(KF_F32, 16));
  int v3 = kf_lir_var_add(f, "ws", kf_ty_of(KF_F32, 16));
  int v4 = kf_lir_var_add(f, "a b-c", kf_ty_of(KF_F32, 16));
  kf_lassign(f, &f->body, v1, kf_lload(f, kf_ty_of(KF_F32, 16), b_in, kf_lc_i64(f, 0)));
  kf_lassign(f, &f->body, v2, kf_lbin(f, KF_L_ADD, kf_lv(f, v1), kf_lv(f, v1)));
  kf_lassign(f, &f->body, v3, kf_lbin(f, KF_L_MUL, kf_lv(f, v2), kf_lv(f, v1)));
  kf_lassign(f, &f->body, v4, kf_lbin(f, KF_L_SUB, kf_lv(f, v3), kf_lv(f, v2)));
  kf_lstore(f, &f->body, b_out, kf_lc_i64(f, 0), kf_lv(f, v4));
  rc = kf_emit_c(&ctx, f, &t, &out);
  rc2 = rc ? rc : kf_cc_load(&ctx, out.data, f->name, &t, &k);
  if (!rc2) {
    float x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i - 4;
    void *args[2] = {x, y};
    k.fn(args, 0, 1, NULL);
    int good = 1;
    for (int i = 0; i < 16; i++) good &= y[i] == 2 * x[i] * x[i] - 2 * x[i];
    rc2 = good ? 0 : -1;
    kf_loaded_release(&k);
  }
  check(rc2 == 0, "clashing LIR names are renamed (keyword, helper, parameter, duplicate)",
        rc2 > 0 ? kf_errmsg(&ctx) : "");
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

/* One (target, sample) pair. Emission runs first for all jobs (cheap, main thread); the
** compile + run + compare of the jobs runs on two worker threads. A job whose C is
** byte-identical to the same sample's C on an earlier target of the same ISA level (the
** -vnni variants only differ in the DPBUSD/DPBF16/bf16 helpers) is reported as covered
** there instead of being compiled again; KF_EMIT_C_FULL=1 compiles every pair. */
typedef struct job {
  kf_target t;
  int sample;
  kf_lir_func *f;
  kf_str src;
  int emit_rc;
  char emit_msg[512];
  const char *same_as; /* target whose identical C was checked */
  int ok;
  char msg[700];
  double compile_s;
} job;

static void run_job(job *j) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_lir_func *f = j->f;
  kf_loaded k = {0};
  double t0 = kf_now();
  int rc = kf_cc_load(&ctx, j->src.data, f->name, &j->t, &k);
  j->compile_s = kf_now() - t0;
  if (rc) {
    snprintf(j->msg, sizeof j->msg, "%s", kf_errmsg(&ctx));
    return;
  }
  void **want = calloc((size_t)f->n_args + 1, sizeof *want);
  void **got = calloc((size_t)f->n_args + 1, sizeof *got);
  kf_lir_sample_inputs(j->sample, f, want);
  kf_lir_sample_inputs(j->sample, f, got);
  size_t ws_bytes = (size_t)(f->ws_bytes > 64 ? f->ws_bytes : 64);
  void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
  memset(ws, 0x5a, ws_bytes);
  rc = kf_lir_interp_run(&ctx, f, want, 0, f->par_total, ws);
  if (rc) {
    snprintf(j->msg, sizeof j->msg, "interpreter: %s", kf_errmsg(&ctx));
  } else {
    int64_t mid = f->par_total / 2;
    memset(ws, 0x3c, ws_bytes);
    k.fn(got, 0, mid, ws); /* the parallel range in two calls */
    k.fn(got, mid, f->par_total, ws);
    char msg[600];
    if (kf_lir_sample_compare(j->sample, f, got, want, msg, sizeof msg)) {
      snprintf(j->msg, sizeof j->msg, "%s", msg);
    } else {
      size_t lines = 0;
      for (const char *p = j->src.data; *p; p++) lines += *p == '\n';
      snprintf(j->msg, sizeof j->msg, "matches the interpreter (%zu lines of C, compiled in %.2f s)",
               lines, j->compile_s);
      j->ok = 1;
    }
  }
  free(ws);
  kf_lir_sample_free_inputs(f, want);
  kf_lir_sample_free_inputs(f, got);
  free(want);
  free(got);
  kf_loaded_release(&k);
}

typedef struct pool {
  job *jobs;
  int n;
  int next;
  pthread_mutex_t lock;
} pool;

static void *worker(void *arg) {
  pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->lock);
    int i = p->next++;
    pthread_mutex_unlock(&p->lock);
    if (i >= p->n) return NULL;
    job *j = &p->jobs[i];
    if (!j->emit_rc && !j->same_as) run_job(j);
  }
}

static void run_samples(double *compile_s, int *n_compiles) {
  int n_samples = kf_lir_sample_count();
  job *jobs = calloc((size_t)n_samples * 8, sizeof *jobs);
  int n = 0;
  int full = getenv("KF_EMIT_C_FULL") != NULL;
  for (int ti = 0; kf_target_names[ti]; ti++) {
    const char *tname = kf_target_names[ti];
    if (!strcmp(tname, "cpu-host")) continue;
    kf_ctx ctx;
    kf_ctx_init(&ctx);
    kf_target t;
    if (kf_target_get(&ctx, tname, &t)) {
      check(0, tname, kf_errmsg(&ctx));
      continue;
    }
    const char *why = NULL;
    if (!kf_target_runnable(&t, &why)) {
      printf("skip %s: this CPU lacks %s\n", tname, why);
      continue;
    }
    for (int i = 0; i < n_samples; i++) {
      job *j = &jobs[n++];
      j->t = t;
      j->sample = i;
      j->f = kf_lir_sample_build(i, t.vl32);
      j->emit_rc = kf_emit_c(&ctx, j->f, &t, &j->src);
      if (j->emit_rc) snprintf(j->emit_msg, sizeof j->emit_msg, "%s", kf_errmsg(&ctx));
      for (int o = 0; o < n - 1 && !full && !j->emit_rc; o++)
        if (jobs[o].sample == i && jobs[o].t.isa == t.isa && !jobs[o].same_as && !jobs[o].emit_rc &&
            !strcmp(strstr(jobs[o].src.data, "#include"), strstr(j->src.data, "#include")))
          j->same_as = jobs[o].t.name;
    }
  }
  pool p = {jobs, n, 0, PTHREAD_MUTEX_INITIALIZER};
  pthread_t th[2];
  for (int w = 0; w < 2; w++) pthread_create(&th[w], NULL, worker, &p);
  for (int w = 0; w < 2; w++) pthread_join(th[w], NULL);
  for (int i = 0; i < n; i++) {
    job *j = &jobs[i];
    char what[160];
    snprintf(what, sizeof what, "%s %s", j->t.name, kf_lir_sample_name(j->sample));
    if (j->emit_rc) {
      check(0, what, j->emit_msg);
    } else if (j->same_as) {
      char msg[200];
      snprintf(msg, sizeof msg, "same C as on %s (checked there)", j->same_as);
      check(1, what, msg);
    } else {
      check(j->ok, what, j->msg);
      check_intrinsics(&j->t, kf_lir_sample_name(j->sample), &j->src);
      if (!j->ok && getenv("KF_DUMP")) fputs(j->src.data, stderr);
      *compile_s += j->compile_s;
      (*n_compiles)++;
    }
    kf_str_free(&j->src);
    kf_lir_func_free(j->f);
  }
  free(jobs);
}

int main(void) {
  double t0 = kf_now();
  test_failures();
  double compile_s = 0;
  int n_compiles = 0;
  run_samples(&compile_s, &n_compiles);
  printf("%d kernels compiled, %.1f s of compile time (%.2f s each, 2 threads); total %.1f s\n",
         n_compiles, compile_s,
         n_compiles ? compile_s / n_compiles : 0, kf_now() - t0);
  printf("%s: %d failure(s)\n", n_fail ? "FAILED" : "PASSED", n_fail);
  return n_fail != 0;
}

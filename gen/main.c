/*
** main.c: the kforge command line. The one file that knows every part of kforge.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "kernel.h"
#include "numerics.h"
#include "bench.h"
#include "timing.h"
#include "kf_ref.h"
#include "template.h"
/* Optional parts link in when their directories build them; a part whose header is not
** there yet (work in progress) is left out rather than breaking the CLI. */
#if defined(HAVE_KFORGE_PEERS) && !__has_include("kf_peers.h")
#undef HAVE_KFORGE_PEERS
#endif
#if defined(HAVE_KFORGE_LOPT_CLI) && !__has_include("kf_lopt_cli.h")
#undef HAVE_KFORGE_LOPT_CLI
#endif
#if defined(HAVE_KFORGE_TUNER) && !__has_include("kf_tuner_cli.h")
#undef HAVE_KFORGE_TUNER
#endif
#if defined(HAVE_KFORGE_ASCEND) && !__has_include("kf_ascend_cli.h")
#undef HAVE_KFORGE_ASCEND
#endif
#if defined(HAVE_KFORGE_MODEL_CLI) && !__has_include("kf_model.h")
#undef HAVE_KFORGE_MODEL_CLI
#endif
#ifdef HAVE_KFORGE_MODEL_CLI
#include "kf_model.h" /* kf_shapes_main, kf_pack_main: shapes, pack */
#endif
#ifdef HAVE_KFORGE_PEERS
#include "kf_peers.h"
#endif
#ifdef HAVE_KFORGE_LOPT_CLI
#include "kf_lopt_cli.h"
#endif
#ifdef HAVE_KFORGE_TUNER
#include "kf_tuner_cli.h" /* kf_tuner_main: tune, db, lib, plot */
#endif
#ifdef HAVE_KFORGE_ASCEND
#include "kf_ascend.h"     /* kf_target_ascend */
#include "kf_ascend_cli.h" /* int kf_ascend_main(int argc, char **argv): sim */
#endif

static const char *prog = "kforge";

/* One error line: "kforge VERB: error: MESSAGE". */
static int fail(const char *verb, kf_ctx *ctx, int rc) {
  fprintf(stderr, "%s %s: error: %s\n", prog, verb, kf_errmsg(ctx));
  return rc == KF_ECHECK ? 1 : 2;
}

static int usage_error(const char *verb, const char *fmt, const char *arg) {
  fprintf(stderr, "%s %s: error: ", prog, verb);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see '%s %s --help')\n", prog, verb);
  return 2;
}

/* ---- shared options of gen/check/bench ---- */

typedef struct opts {
  const char *tmpl, *shape, *target, *emit, *out, *dist;
  const char *sets[KF_MAX_BIND];
  int n_sets;
  int threads, seed, peers, verbose, cold, warm;
  double budget, timeout;
  const char *vs;
} opts;

static int parse_opts(const char *verb, int argc, char **argv, opts *o, const char *help) {
  memset(o, 0, sizeof *o);
  o->seed = 1;
  o->threads = 0;
  o->budget = 1.0;
  o->timeout = 600;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(field)                                                            \
  do {                                                                         \
    if (!val) return usage_error(verb, "option %s needs a value", a);          \
    o->field = val;                                                            \
    i++;                                                                       \
  } while (0)
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(help, stdout);
      return -1;
    } else if (!strcmp(a, "--shape")) TAKE(shape);
    else if (!strcmp(a, "--target")) TAKE(target);
    else if (!strcmp(a, "--emit")) TAKE(emit);
    else if (!strcmp(a, "-o")) TAKE(out);
    else if (!strcmp(a, "--dist")) TAKE(dist);
    else if (!strcmp(a, "--vs")) TAKE(vs);
    else if (!strcmp(a, "--set")) {
      if (!val) return usage_error(verb, "option %s needs a value", a);
      if (o->n_sets == KF_MAX_BIND) return usage_error(verb, "too many %s options", a);
      o->sets[o->n_sets++] = val;
      i++;
    } else if (!strcmp(a, "--threads") || !strcmp(a, "--seed")) {
      if (!val) return usage_error(verb, "option %s needs a value", a);
      char *end;
      long v = strtol(val, &end, 10);
      if (*end || v < 0 || v > 4096) return usage_error(verb, "bad number '%s'", val);
      if (a[2] == 't') o->threads = (int)v;
      else o->seed = (int)v;
      i++;
    } else if (!strcmp(a, "--budget")) {
      if (!val) return usage_error(verb, "option %s needs a value", a);
      char *end;
      o->budget = strtod(val, &end);
      if (*end || !(o->budget > 0) || o->budget > 3600) return usage_error(verb, "bad --budget '%s'", val);
      i++;
    } else if (!strcmp(a, "--timeout") && !strcmp(verb, "check")) {
      if (!val) return usage_error(verb, "option %s needs a value", a);
      char *end;
      o->timeout = strtod(val, &end);
      if (*end || !(o->timeout > 0) || o->timeout > 86400) return usage_error(verb, "bad --timeout '%s'", val);
      i++;
    } else if (!strcmp(a, "--peers")) o->peers = 1;
    else if (!strcmp(a, "--cold")) o->cold = 1;
    else if (!strcmp(a, "--warm")) o->warm = 1;
    else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) o->verbose = 1;
    else if (a[0] == '-') return usage_error(verb, "unknown option '%s'", a);
    else if (!o->tmpl) o->tmpl = a;
    else return usage_error(verb, "unexpected argument '%s'", a);
#undef TAKE
  }
  if (!o->tmpl) return usage_error(verb, "%s", "missing TEMPLATE");
  if (!o->shape) return usage_error(verb, "%s", "missing --shape NAME=VALUE,...");
  return 0;
}

/* Loads the template and builds the kernel for the options. */
static int build_kernel(kf_ctx *ctx, const opts *o, kf_template **tmpl, kf_kernel *k) {
  kf_binding shape, sets;
  memset(&shape, 0, sizeof shape);
  memset(&sets, 0, sizeof sets);
  kf_tgt target;
  memset(&target, 0, sizeof target);
  int rc = kf_binding_parse(ctx, o->shape, "--shape", &shape);
  for (int i = 0; !rc && i < o->n_sets; i++) rc = kf_binding_parse(ctx, o->sets[i], "--set", &sets);
  if (!rc) rc = kf_target_open(ctx, o->target, &target);
  if (!rc) rc = kf_template_load(ctx, o->tmpl, tmpl);
  if (!rc) rc = kf_kernel_build_on(ctx, *tmpl, &shape, &sets, &target, k);
  kf_target_close(&target);
  return rc;
}

static void describe_kernel(const kf_kernel *k, FILE *f) {
  kf_str p = {0}, c = {0};
  kf_binding_format(&k->params, &p);
  kf_binding_format(&k->config, &c);
  fprintf(f, "%s  shape %s  tunables %s  target %s\n", kf_template_name(k->tmpl), p.data ? p.data : "",
          c.data ? c.data : "(none)", k->tgt.name);
  kf_str_free(&p);
  kf_str_free(&c);
}

/* ---- kforge list ---- */

static int cmd_list(kf_ctx *ctx, int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: kforge list [TEMPLATE]\n\nLists the templates in %s with their parameters and tunables.\n",
           kf_template_dir());
    return 0;
  }
  const char *dir = kf_template_dir();
  DIR *d = opendir(dir);
  if (!d) return fail("list", ctx, kf_err(ctx, KF_EIO, "%s: cannot open template directory: %s", dir, strerror(errno)));
  char names[64][256];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 64) {
    size_t l = strlen(e->d_name);
    if (l > 4 && !strcmp(e->d_name + l - 4, ".lua") && l < 250) {
      memcpy(names[n], e->d_name, l - 4);
      names[n++][l - 4] = 0;
    }
  }
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char tmp[256];
      memcpy(tmp, names[j], 256);
      memcpy(names[j], names[j - 1], 256);
      memcpy(names[j - 1], tmp, 256);
    }
  int status = 0, shown = 0;
  const char *env = getenv("KFORGE_TEMPLATES");
  printf("templates: %s (%s)\n", dir, env && *env ? "$KFORGE_TEMPLATES" : "installed beside kforge, else its source tree");
  for (int i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], names[i])) continue;
    shown++;
    kf_template *t;
    if (kf_template_load(ctx, names[i], &t)) {
      fprintf(stderr, "%s list: error: %s\n", prog, kf_errmsg(ctx));
      status = 2;
      continue;
    }
    printf("%s — %s\n  reference: %s\n  params:  ", kf_template_name(t), kf_template_doc(t), kf_template_reference(t));
    for (int j = 0; j < kf_template_n_params(t); j++) {
      const kf_tparam *p = kf_template_param(t, j);
      if (p->required) printf(" %s", p->name);
      else printf(" %s=%lld", p->name, (long long)p->def);
      if (p->n_domain) {
        printf("{");
        for (int v = 0; v < p->n_domain; v++) printf("%s%lld", v ? "," : "", (long long)p->domain[v]);
        printf("}");
      }
    }
    printf("\n  tunables:");
    for (int j = 0; j < kf_template_n_tunables(t); j++) {
      const kf_tparam *p = kf_template_tunable(t, j);
      printf(" %s=%lld{", p->name, (long long)p->def);
      for (int v = 0; v < p->n_domain; v++) printf("%s%lld", v ? "," : "", (long long)p->domain[v]);
      printf("}");
    }
    printf("\n");
    kf_template_free(t);
  }
  if (argc > 1 && !shown) {
    fprintf(stderr, "%s list: error: no template '%s' in %s\n", prog, argv[1], dir);
    return 2;
  }
  return status;
}

/* ---- kforge gen ---- */

static const char gen_help[] =
    "usage: kforge gen TEMPLATE --shape M=..,N=..,K=.. [--target T] [--set NAME=VALUE ...]\n"
    "                  --emit ir|lir|c|ll|s|o|h [-o FILE]\n\n"
    "Generates the kernel and writes one stage of it:\n"
    "  ir   tile IR as the template built it      lir  the CPU lowering (vector-level IR)\n"
    "  c    C source (C emitter)                  ll   LLVM IR (LLVM emitter, optimized)\n"
    "  s    assembly (LLVM)                       o    object file (LLVM; needs -o)\n"
    "  h    C header for the .o (signature, arguments, workspace size)\n"
    "Targets: cpu-host (default), cpu-generic, cpu-avx2, cpu-avx2-vnni, cpu-avx512, cpu-avx512-vnni.\n"
    "Text goes to stdout unless -o is given.\n";

static int write_out(kf_ctx *ctx, const char *path, const kf_str *s) {
  if (!path || !strcmp(path, "-")) {
    fwrite(s->data, 1, s->len, stdout);
    return KF_OK;
  }
  return kf_write_file(ctx, path, s->data, s->len);
}

static int cmd_gen(kf_ctx *ctx, int argc, char **argv) {
  opts o;
  int prc = parse_opts("gen", argc, argv, &o, gen_help);
  if (prc) return prc < 0 ? 0 : prc;
  const char *emit = o.emit ? o.emit : "c";
  static const char *const kinds[] = {"ir", "lir", "c", "ll", "s", "o", "h", NULL};
  int ok = 0;
  for (int i = 0; kinds[i]; i++) ok |= !strcmp(kinds[i], emit);
  if (!ok) return usage_error("gen", "unknown --emit '%s' (ir, lir, c, ll, s, o, h)", emit);
  if (!strcmp(emit, "o") && !o.out) return usage_error("gen", "%s", "--emit o needs -o FILE");
  kf_template *t = NULL;
  kf_kernel k;
  memset(&k, 0, sizeof k);
  int rc = build_kernel(ctx, &o, &t, &k);
  if (!rc && o.out && kf_same_file(o.out, kf_template_path(t)))
    rc = kf_err(ctx, KF_EINVAL, "-o %s is the template itself: refusing to overwrite an input", o.out);
  kf_str s = {0};
  if (!rc) {
    if (!strcmp(emit, "ir")) kf_ir_print(k.ir, &s);
    else rc = k.tgt.ops->emit(ctx, &k, emit, o.out, &s);
  }
  if (!rc && strcmp(emit, "o")) rc = write_out(ctx, o.out, &s);
  kf_str_free(&s);
  kf_kernel_free(&k);
  kf_template_free(t);
  return rc ? fail("gen", ctx, rc) : 0;
}

/* ---- kforge check ---- */

static const char check_help[] =
    "usage: kforge check TEMPLATE --shape ... [--set NAME=VALUE ...] [--target T]\n"
    "                    [--emit c|llvm|both] [--dist gauss|uniform|student_t3|laplace|outlier]\n"
    "                    (attention: --dist random|rising|equal|large|negative)\n"
    "                    [--seed N] [--threads N] [--timeout SECONDS]\n\n"
    "Runs the kernel (in a child process: a crash or a run past --timeout, default 600 s, is a\n"
    "failed check) on random inputs and compares it with the fp64 reference. Prints the max\n"
    "and relative L2 error, the error bound derived from the kernel's arithmetic, and the\n"
    "effective bits log2(max|ref| / max|err|). Exit status 1 if any output exceeds its bound.\n"
    "With --emit both (default) the C and LLVM outputs must also agree within the bound.\n";

static void print_result(const char *label, const kf_check_result *r) {
  printf("  %-5s max|err| %.3e  rel L2 %.3e  worst err/bound %.3f  eff bits %.2f  (bound: %s)\n", label,
         r->max_abs, r->rel_l2, r->max_ratio, r->eff_bits, r->bound_desc);
}

static int check_run(kf_ctx *ctx, const opts *o_in);

/* kforge check runs the kernel in a forked child: a kernel that crashes or does not finish in
** --timeout seconds is an error of the check, not of kforge (the tuner's trials do the same). */
static int cmd_check(kf_ctx *ctx, int argc, char **argv) {
  opts o;
  int prc = parse_opts("check", argc, argv, &o, check_help);
  if (prc) return prc < 0 ? 0 : prc;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return fail("check", ctx, kf_err(ctx, KF_EIO, "fork: %s", strerror(errno)));
  if (pid == 0) {
    int rc = check_run(ctx, &o);
    if (fflush(stdout) != 0 || ferror(stdout)) {
      fprintf(stderr, "%s check: error: writing to standard output: %s\n", prog, strerror(errno));
      rc = 2;
    }
    fflush(stderr);
    _exit(rc);
  }
  double t0 = kf_now();
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return fail("check", ctx, kf_err(ctx, KF_EIO, "waitpid: %s", strerror(errno)));
    if (kf_now() - t0 > o.timeout) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return fail("check", ctx, kf_err(ctx, KF_ECHECK, "the kernel did not finish within --timeout %g s (killed)",
                                      o.timeout));
    }
    usleep(kf_now() - t0 < 1 ? 1000 : 20000);
  }
  if (WIFSIGNALED(status))
    return fail("check", ctx, kf_err(ctx, KF_ECHECK, "the kernel crashed (%s)", strsignal(WTERMSIG(status))));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

static int check_run(kf_ctx *ctx, const opts *o_in) {
  opts o = *o_in;
  const char *emit = o.emit ? o.emit : "both";
  int do_c = !strcmp(emit, "c") || !strcmp(emit, "both"), do_llvm = !strcmp(emit, "llvm") || !strcmp(emit, "both");
  if (!do_c && !do_llvm) return usage_error("check", "unknown --emit '%s' (c, llvm, both)", emit);
  int dist = 0;
  if (o.dist) {
    dist = kf_ref_dist_parse(o.dist);
    if (dist < 0) dist = kf_ref_attn_kind_parse(o.dist);
    if (dist < 0)
      return usage_error("check", "unknown --dist '%s' (gauss, uniform, student_t3, laplace, outlier; attention: "
                                  "random, rising, equal, large, negative)", o.dist);
  }
  kf_template *t = NULL;
  kf_kernel k;
  memset(&k, 0, sizeof k);
  kf_problem *p = NULL;
  kf_pool *pool = NULL;
  int rc = build_kernel(ctx, &o, &t, &k), worst = 0;
  if (!rc) rc = kf_problem_new(ctx, &k, (uint64_t)o.seed, dist, &p);
  float *first = NULL;
  if (!rc) {
    describe_kernel(&k, stdout);
    pool = kf_pool_new(o.threads);
  }
  /* the CPU target runs the C and the LLVM code; other targets have one way to run */
  int native = k.tgt.ops == &kf_target_cpu;
  for (int pass = 0; !rc && pass < 2; pass++) {
    if ((pass == 0 && !do_c) || (pass == 1 && !do_llvm) || (!native && pass == 1)) continue;
    if ((rc = kf_kernel_load(ctx, &k, pass ? KF_EMIT_LLVM : KF_EMIT_C))) break;
    kf_problem_poison_outputs(p);
    if ((rc = kf_kernel_run(ctx, &k, kf_problem_args(p), pool))) break;
    kf_check_result res;
    int crc = kf_problem_check(ctx, p, &res);
    print_result(!native ? k.tgt.ops->family : pass ? "llvm" : "c", &res);
    if (crc) {
      fprintf(stderr, "%s check: error: check failed (%s): %s\n", prog, native ? (pass ? "llvm" : "c") : k.tgt.name,
              kf_errmsg(ctx));
      worst = 1;
      if (crc != KF_ECHECK) rc = crc;
    }
    int64_t n;
    const float *out = kf_problem_output(p, &n);
    if (!first) {
      first = kf_xmalloc((size_t)n * sizeof(float));
      memcpy(first, out, (size_t)n * sizeof(float));
    } else {
      double maxdiff = 0;
      for (int64_t i = 0; i < n; i++) maxdiff = fmax(maxdiff, fabs((double)first[i] - (double)out[i]));
      printf("  c vs llvm: max |diff| %.3e\n", maxdiff);
      if (!(maxdiff <= 2 * res.max_abs + 1e-30) && maxdiff > 0) {
        /* both are within their bounds individually; a larger gap means one of them is wrong */
        fprintf(stderr, "%s: C and LLVM outputs disagree by %.3e (more than twice the max error %.3e)\n", prog,
                maxdiff, res.max_abs);
        worst = 1;
      }
    }
  }
  free(first);
  kf_pool_free(pool);
  kf_problem_free(p);
  kf_kernel_free(&k);
  kf_template_free(t);
  if (rc) return fail("check", ctx, rc);
  printf("%s\n", worst ? "FAIL" : "ok");
  return worst;
}

/* ---- kforge bench ---- */

static const char bench_help[] =
    "usage: kforge bench TEMPLATE --shape ... [--set NAME=VALUE ...] [--target T] [--emit c|llvm]\n"
    "                    [--threads N] [--budget SECONDS] [--round SECONDS] [--warm|--cold]\n"
    "                    [--vs TEMPLATE[:NAME=VALUE,...]]... [--peers] [--roofline]\n\n"
    "Times the kernel against every --vs kernel (another template, or the same one with other\n"
    "tunables: --vs TEMPLATE:mr=2,nr=64) and, with --peers, oneDNN bf16 and u8s8 matmul and\n"
    "OpenBLAS dequant+sgemm on the same M, N, K. All contenders are interleaved: round-robin\n"
    "rounds of about --round seconds each (default 0.02), starting with a different one every\n"
    "round, until each has --budget seconds of timed runs (default 1). Each line gives the median\n"
    "time per call, and the median of its per-round time ratio to the first kernel with the\n"
    "interquartile range (> 1: the first kernel is faster); a warning marks ratios whose spread\n"
    "is too wide to trust. Weights are timed cache-warm and cold (a rotating set of weight copies\n"
    "at least twice the last-level cache); --warm/--cold pick one. --roofline measures (or reads\n"
    "from the cache, see 'kforge peak') the machine's peaks and prints each kernel's fraction of\n"
    "its binding limit (int8/f32 compute or the bandwidth of where its weights live).\n";

#define BENCH_MAX 10
#define BENCH_SPREAD_WARN 0.10 /* ratio IQR / median above which a ratio is not to be trusted */

typedef struct bench_entry {
  char name[160];
  kf_template *t;
  kf_kernel k;
  kf_problem *p;
  kf_runner *r;
} bench_entry;

/* Builds, loads and checks one kforge contender ("TEMPLATE" or "TEMPLATE:NAME=V,..."). */
static int bench_prepare(kf_ctx *ctx, const opts *o, const char *spec, kf_pool *pool, bench_entry *e) {
  opts o2 = *o;
  char tmpl[128];
  const char *colon = strchr(spec, ':');
  snprintf(tmpl, sizeof tmpl, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
  o2.tmpl = tmpl;
  if (spec != o->tmpl) {
    o2.n_sets = 0;
    if (colon) o2.sets[o2.n_sets++] = colon + 1;
  }
  memset(&e->k, 0, sizeof e->k);
  int rc = build_kernel(ctx, &o2, &e->t, &e->k);
  const char *emit = o->emit ? o->emit : "llvm";
  if (!rc && strcmp(emit, "c") && strcmp(emit, "llvm"))
    rc = kf_err(ctx, KF_EINVAL, "bench: unknown --emit '%s' (c, llvm)", emit);
  if (!rc) rc = kf_problem_new(ctx, &e->k, (uint64_t)o->seed, 0, &e->p);
  if (!rc) rc = kf_kernel_load(ctx, &e->k, strcmp(emit, "c") ? KF_EMIT_LLVM : KF_EMIT_C);
  if (!rc) {
    if (e->k.tgt.ops != &kf_target_cpu)
      rc = kf_err(ctx, KF_EUNSUP, "bench times native code on this CPU; target %s: kforge sim or kforge check",
                  e->k.tgt.name);
    if (!rc && !(e->r = kf_runner_new(&e->k, pool)))
      rc = kf_err(ctx, KF_ENOMEM, "%s: no memory for the kernel's workspace", spec);
    kf_check_result res;
    if (!rc) {
      kf_problem_poison_outputs(e->p);
      kf_runner_run(e->r, kf_problem_args(e->p));
      rc = kf_problem_check(ctx, e->p, &res);
    }
    if (rc == KF_ECHECK) kf_err_prefix(ctx, rc, "%s is wrong, not timing it", spec);
  }
  if (!rc) {
    kf_str c = {0};
    kf_binding_format(&e->k.config, &c);
    snprintf(e->name, sizeof e->name, "%.40s [%s %.100s]", kf_template_name(e->t), emit, c.data ? c.data : "");
    kf_str_free(&c);
  }
  return rc;
}

static void bench_entry_free(bench_entry *e) {
  kf_runner_free(e->r);
  kf_problem_free(e->p);
  kf_kernel_free(&e->k);
  kf_template_free(e->t);
  memset(e, 0, sizeof *e);
}

#ifdef HAVE_KFORGE_PEERS
typedef struct peer_call {
  kf_peer *peer;
  char err[160];
} peer_call;
static int peer_timed_call(void *arg, int64_t iter) {
  peer_call *c = arg;
  return kf_peer_run(c->peer, iter, c->err, sizeof c->err) ? 1 : 0;
}
#endif

/* Removes bench-only options from argv (before the shared parser sees it). */
static int bench_own_opts(int *argc, char **argv, const char **vs, int *n_vs, int *roofline, double *round_s) {
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i], *val = i + 1 < *argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--roofline")) {
      *roofline = 1;
    } else if (!strcmp(a, "--vs") || !strcmp(a, "--round")) {
      if (!val) return usage_error("bench", "option %s needs a value", a);
      if (a[2] == 'v') {
        if (*n_vs == BENCH_MAX - 1) return usage_error("bench", "too many %s options", a);
        vs[(*n_vs)++] = val;
      } else {
        char *end;
        *round_s = strtod(val, &end);
        if (*end || !(*round_s > 0) || *round_s > 60) return usage_error("bench", "bad --round '%s'", val);
      }
      i++;
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return 0;
}

static int cmd_bench(kf_ctx *ctx, int argc, char **argv) {
  const char *vs[BENCH_MAX];
  int n_vs = 0, roofline = 0;
  double round_s = 0.02;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(bench_help, stdout);
      return 0;
    }
  int prc = bench_own_opts(&argc, argv, vs, &n_vs, &roofline, &round_s);
  opts o;
  if (!prc) prc = parse_opts("bench", argc, argv, &o, bench_help);
  if (prc) return prc < 0 ? 0 : prc;
  kf_str host = {0};
  kf_host_describe(&host);
  char llc_src[128] = "", flags[256];
  int64_t llc = kf_bench_llc_bytes(llc_src, sizeof llc_src);
  kf_bench_cpu_flags(flags, sizeof flags);
  kf_pool *pool = kf_pool_new(o.threads);
  int threads = kf_pool_size(pool);
  printf("cpu: %s; flags: %s; LLC %.1f MiB (%s); threads %d\n", host.data, flags, (double)llc / 1048576.0, llc_src,
         threads);
  kf_str_free(&host);
  kf_peaks pk;
  memset(&pk, 0, sizeof pk);
  if (roofline) {
    char err[256];
    if (kf_peaks_get(threads, 0, &pk, err, sizeof err)) {
      kf_pool_free(pool);
      return fail("bench", ctx, kf_err(ctx, KF_EIO, "%s", err));
    }
    printf("peaks (%s%s): int8 %.0f GOPS, bf16 %.0f GFLOPS, f32 %.0f GFLOPS; read L2 %.0f, L3 %.0f, DRAM %.0f GB/s\n",
           pk.from_cache ? "cached in " : "measured", pk.from_cache ? pk.cache_path : "", pk.v[KF_PEAK_INT8] * 1e-9,
           pk.v[KF_PEAK_BF16] * 1e-9, pk.v[KF_PEAK_F32] * 1e-9, pk.v[KF_PEAK_L2] * 1e-9, pk.v[KF_PEAK_L3] * 1e-9,
           pk.v[KF_PEAK_DRAM] * 1e-9);
  }
  bench_entry kfe[BENCH_MAX];
  memset(kfe, 0, sizeof kfe);
  int n_kf = 0, rc = bench_prepare(ctx, &o, o.tmpl, pool, &kfe[n_kf++]);
  for (int i = 0; i < n_vs && !rc; i++) rc = bench_prepare(ctx, &o, vs[i], pool, &kfe[n_kf++]);
  int64_t mnk[3] = {0, 0, 0};
  if (!rc) {
    kf_binding_get(&kfe[0].k.params, "M", &mnk[0]);
    kf_binding_get(&kfe[0].k.params, "N", &mnk[1]);
    kf_binding_get(&kfe[0].k.params, "K", &mnk[2]);
  }
  if (!rc && o.peers) {
#ifdef HAVE_KFORGE_PEERS
    char libs[512];
    kf_peers_describe(libs, sizeof libs);
    printf("peers: %s\n", libs);
#else
    printf("peers: not built (needs libdnnl-dev and libopenblas-dev at build time)\n");
#endif
  }
  int untrusted = 0;
  for (int cold = 0; cold < 2 && !rc; cold++) {
    if ((cold && o.warm && !o.cold) || (!cold && o.cold && !o.warm)) continue;
    const char *mode = cold ? "cold" : "warm";
    kf_bench_contender c[2 * BENCH_MAX];
    char names[2 * BENCH_MAX][160];
    kf_work work[2 * BENCH_MAX];
    int has_work[2 * BENCH_MAX], n_c = 0;
    kf_timed *timed[BENCH_MAX] = {0};
    memset(has_work, 0, sizeof has_work);
    for (int i = 0; i < n_kf && !rc; i++) {
      rc = kf_timed_new(ctx, kfe[i].p, kfe[i].r, kf_kernel_n_args(&kfe[i].k), cold, &timed[i]);
      if (rc) break;
      c[n_c] = (kf_bench_contender){kf_timed_call, timed[i], 0};
      snprintf(names[n_c], sizeof names[n_c], "%s", kfe[i].name);
      kf_kernel_work(&kfe[i].k, kfe[i].p, cold, &pk, &work[n_c]);
      has_work[n_c] = 1;
      n_c++;
    }
#ifdef HAVE_KFORGE_PEERS
    kf_peer *peers[KF_PEER_N] = {0};
    peer_call calls[KF_PEER_N];
    if (!rc && o.peers) {
      kf_peer_result info[KF_PEER_N];
      if (kf_peers_create_all(mnk[0], mnk[1], mnk[2], threads, cold, peers, info) < 0) {
        printf("  peers: %s\n", info[0].note);
      } else {
        for (int i = 0; i < KF_PEER_N; i++) {
          if (!peers[i]) {
            printf("  %-58s %-4s unavailable: %s\n", info[i].name, mode, info[i].note);
            continue;
          }
          calls[i].peer = peers[i];
          calls[i].err[0] = 0;
          c[n_c] = (kf_bench_contender){peer_timed_call, &calls[i], 0};
          snprintf(names[n_c], sizeof names[n_c], "%.47s (%.100s)", info[i].name, kf_peer_impl(peers[i]));
          /* a peer does 2MNK operations on its own arithmetic; its weights are int8 or bf16 */
          work[n_c].compute = i == KF_PEER_DNNL_U8S8 ? KF_PEAK_INT8 : i == KF_PEER_DNNL_BF16 ? KF_PEAK_BF16 : KF_PEAK_F32;
          work[n_c].ops = 2.0 * (double)mnk[0] * (double)mnk[1] * (double)mnk[2];
          work[n_c].bytes = (double)kf_peer_weight_bytes(peers[i]);
          work[n_c].memory = KF_PEAK_DRAM;
          if (!cold)
            for (int lv = KF_PEAK_DRAM - 1; lv >= KF_PEAK_L2; lv--)
              if (pk.bytes[lv] > 0 && work[n_c].bytes <= (double)pk.bytes[lv]) work[n_c].memory = (kf_peak_kind)lv;
          has_work[n_c] = 1;
          n_c++;
        }
        /* other runtimes' worker threads spin after a call: let them go idle before each segment */
        for (int i = 0; i < n_c; i++) c[i].settle_s = 0.005;
      }
    }
#endif
    kf_bench_iresult res[2 * BENCH_MAX];
    int failed = -1;
    if (!rc) {
      kf_bench_iopts io = {.warmup = 2, .min_rounds = 5, .round_s = round_s, .budget_s = o.budget};
      int brc = kf_bench_interleave(c, n_c, &io, res, &failed);
      if (brc) rc = kf_err(ctx, KF_EIO, "bench: timing %s failed", failed >= 0 ? names[failed] : "");
    }
    if (!rc) {
      printf("%s weights: %d rounds; time per call (median), ratio to the first kernel per round (median [IQR])\n", mode,
             res[0].n_rounds);
      for (int i = 0; i < n_c; i++) {
        const kf_bench_iresult *r = &res[i];
        printf("  %-58s %-4s %9.1f us  x%5.2f [%5.2f..%5.2f]", names[i], mode, r->st.median_s * 1e6, r->ratio_median,
               r->ratio_q1, r->ratio_q3);
        if (i < n_kf) {
          double fl = kf_problem_flops(kfe[i].p), by = kf_problem_bytes(kfe[i].p);
          printf("  %7.1f GFLOPS %6.1f GB/s", fl / r->st.median_s * 1e-9, by / r->st.median_s * 1e-9);
        } else {
          printf("  %7.1f GFLOPS %13s", work[i].ops / r->st.median_s * 1e-9, "");
        }
        if (roofline && has_work[i]) {
          kf_peak_kind bound;
          double frac = kf_work_roof(&work[i], &pk, r->st.median_s, &bound);
          printf("  roof %5.1f%% (%s)", 100 * frac, kf_peak_name(bound));
        }
        printf("  %dx%d\n", r->n_rounds, r->calls);
        if (i > 0 && r->ratio_spread > BENCH_SPREAD_WARN) {
          printf("  warning: %s: the per-round ratio spreads %.0f%% (IQR/median): too noisy to trust; "
                 "rerun with a larger --budget or on a quieter host\n",
                 names[i], 100 * r->ratio_spread);
          untrusted++;
        }
      }
      fflush(stdout);
    }
    for (int i = 0; i < n_kf; i++) kf_timed_free(timed[i]);
#ifdef HAVE_KFORGE_PEERS
    for (int i = 0; i < KF_PEER_N; i++) kf_peer_destroy(peers[i]);
#endif
  }
  for (int i = 0; i < n_kf; i++) bench_entry_free(&kfe[i]);
  kf_pool_free(pool);
  if (rc) return fail("bench", ctx, rc);
  if (untrusted) fprintf(stderr, "%s bench: warning: %d ratio(s) too noisy to trust (see above)\n", prog, untrusted);
  return 0;
}

/* ---- kforge peak ---- */

static const char peak_help[] =
    "usage: kforge peak [--threads N] [--remeasure]\n\n"
    "Measures this machine's roofline at N threads (default: all CPUs): int8 dot (vpdpbusd zmm, or\n"
    "AVX-VNNI ymm), bf16 dot (vdpbf16ps), f32 FMA peaks from register-only loops, and read\n"
    "bandwidth from buffers in L1, L2, L3 and memory; best of 9 repetitions. The numbers are cached\n"
    "per CPU model, ISA flags and thread count in $XDG_CACHE_HOME/kforge/peak.txt (else\n"
    "~/.cache/kforge/peak.txt); --remeasure ignores the cache and rewrites it.\n";

static int cmd_peak(kf_ctx *ctx, int argc, char **argv) {
  int threads = 0, remeasure = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(peak_help, stdout);
      return 0;
    } else if (!strcmp(argv[i], "--remeasure")) {
      remeasure = 1;
    } else if (!strcmp(argv[i], "--threads")) {
      if (i + 1 >= argc) return usage_error("peak", "option %s needs a value", argv[i]);
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 4096) return usage_error("peak", "bad number '%s'", argv[i]);
      threads = (int)v;
    } else {
      return usage_error("peak", "unknown argument '%s'", argv[i]);
    }
  }
  if (threads == 0) {
    kf_pool *pool = kf_pool_new(0);
    threads = kf_pool_size(pool);
    kf_pool_free(pool);
  }
  kf_peaks pk;
  char err[256];
  if (kf_peaks_get(threads, remeasure, &pk, err, sizeof err)) return fail("peak", ctx, kf_err(ctx, KF_EIO, "%s", err));
  printf("cpu: %s; threads %d; %s %s\n", pk.cpu, pk.threads, pk.from_cache ? "cached in" : "measured",
         pk.cache_path[0] ? pk.cache_path : "(cache not writable)");
  for (int i = 0; i < KF_PEAK_N; i++) {
    const char *unit = i <= KF_PEAK_F32 ? (i == KF_PEAK_INT8 ? "GOPS" : "GFLOPS") : "GB/s";
    if (pk.v[i] > 0) printf("  %-5s %9.1f %-6s  %s\n", kf_peak_name((kf_peak_kind)i), pk.v[i] * 1e-9, unit, pk.how[i]);
    else printf("  %-5s %9s %-6s  (no instruction for it on this CPU)\n", kf_peak_name((kf_peak_kind)i), "-", unit);
  }
  return 0;
}

/* ---- main ---- */

static const char main_help[] =
    "usage: kforge VERB [options]   (kforge VERB --help for each)\n\n"
    "Kernel generator and autotuner for quantized LLM inference.\n"
    "  list       templates, their parameters and tunables\n"
    "  gen        generate a kernel: tile IR, LIR, C, LLVM IR, assembly, object + header\n"
    "  check      run a kernel against its fp64 reference and error bound\n"
    "  bench      time a kernel (warm and cold weights), against other templates and peers\n"
    "  numerics   MSD accuracy (effective bits, GEMM vs dequant) and KV-cache HBM traffic model\n"
#ifdef HAVE_KFORGE_TUNER
    "  tune       autotune a template's tunables for shapes, recording every trial in SQLite\n"
    "  db         show, best, export, merge tuning databases\n"
    "  lib        build a static library of the best tuned kernels with dispatch\n"
    "  plot       plot a sweep (gnuplot)\n"
#endif
#ifdef HAVE_KFORGE_ASCEND
    "  sim        run a kernel on the Ascend NPU model: cycles, pipe utilization, trace\n"
#endif
#ifdef HAVE_KFORGE_MODEL_CLI
    "  shapes     the kernel shapes of a model (config.json) as a shapes file for tune/lib\n"
    "  pack       pack a checkpoint (safetensors, GGUF) into one validated weights file\n"
#endif
#ifdef HAVE_KFORGE_LOPT_CLI
    "  tokenize   byte-level BPE tokenizer (Hugging Face tokenizer.json) with LoPT\n"
#endif
    "  version    print the version\n";

static int run_verb(kf_ctx *ctx, const char *verb, int argc, char **argv);

int main(int argc, char **argv) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
#ifdef HAVE_KFORGE_ASCEND
  kf_targets_add(&ctx, &kf_target_ascend); /* the optional parts register their targets */
#endif
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || (!strcmp(argv[1], "help") && argc < 3)) {
    fputs(main_help, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *verb = argv[1];
  if (getenv("KFORGE_VERBOSE")) ctx.verbose = 1;
  if (!strcmp(verb, "help")) { /* kforge help VERB = kforge VERB --help */
    static char help_opt[] = "--help";
    char *hv[3] = {argv[2], help_opt, NULL};
    return run_verb(&ctx, argv[2], 2, hv);
  }
  int rc = run_verb(&ctx, verb, argc - 1, argv + 1);
  /* output that did not reach stdout (a full disk, /dev/full, a closed pipe) is an error */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "%s %s: error: writing to standard output: %s\n", prog, verb, strerror(errno));
    return 2;
  }
  return rc;
}

static int run_verb(kf_ctx *ctx_, const char *verb, int argc, char **argv) {
  kf_ctx ctx = *ctx_;
  if (!strcmp(verb, "list")) return cmd_list(&ctx, argc, argv);
  if (!strcmp(verb, "gen")) return cmd_gen(&ctx, argc, argv);
  if (!strcmp(verb, "check")) return cmd_check(&ctx, argc, argv);
  if (!strcmp(verb, "bench")) return cmd_bench(&ctx, argc, argv);
  if (!strcmp(verb, "peak")) return cmd_peak(&ctx, argc, argv);
  if (!strcmp(verb, "numerics")) return kf_numerics_main(argc, argv);
#ifdef HAVE_KFORGE_LOPT_CLI
  if (!strcmp(verb, "tokenize")) return kf_tokenize_main(argc, argv);
#endif
#ifdef HAVE_KFORGE_TUNER
  if (!strcmp(verb, "tune") || !strcmp(verb, "db") || !strcmp(verb, "lib") || !strcmp(verb, "plot"))
    return kf_tuner_main(&ctx, argc, argv);
#endif
#ifdef HAVE_KFORGE_MODEL_CLI
  if (!strcmp(verb, "shapes")) return kf_shapes_main(argc, argv);
  if (!strcmp(verb, "pack")) return kf_pack_main(argc, argv);
#endif
#ifdef HAVE_KFORGE_ASCEND
  if (!strcmp(verb, "sim")) return kf_ascend_main(argc, argv);
#endif
  if (!strcmp(verb, "version") || !strcmp(verb, "--version")) {
    printf("kforge %s\n", KF_VERSION);
    return 0;
  }
  fprintf(stderr, "%s: error: unknown verb '%s' (see '%s --help')\n", prog, verb, prog);
  return 2;
}

/*
** kf_tune.c: search space, strategies, the forked trial runner and lookup (see kf_tune.h).
*/
#define _GNU_SOURCE
#include "kf_tune.h"

#include <errno.h>
#include <llvm-c/Core.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "kf_bench.h"

const char *kf_strategy_name(kf_strategy s) {
  return s == KF_STRAT_RANDOM ? "random" : s == KF_STRAT_EVOLVE ? "evolve" : "exhaustive";
}

void kf_tune_opts_default(kf_tune_opts *o) {
  memset(o, 0, sizeof *o);
  o->strategy = KF_STRAT_EXHAUSTIVE;
  o->shard_n = 1;
  o->emitter = KF_EMIT_LLVM;
  o->trial_budget_s = 0.2;
  o->trial_timeout_s = 120;
  o->seed = 1;
  o->progress = 1;
}

/* ---- configurations as JSON ---- */

void kf_config_json(const kf_binding *config, char *out, size_t n) {
  int idx[KF_MAX_BIND];
  for (int i = 0; i < config->n; i++) idx[i] = i;
  for (int i = 1; i < config->n; i++)
    for (int j = i; j > 0 && strcmp(config->name[idx[j - 1]], config->name[idx[j]]) > 0; j--) {
      int t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  size_t len = 0;
  len += (size_t)snprintf(out, n, "{");
  for (int i = 0; i < config->n && len < n; i++)
    len += (size_t)snprintf(out + len, n - len, "%s\"%s\":%lld", i ? "," : "", config->name[idx[i]],
                            (long long)config->val[idx[i]]);
  if (len < n) snprintf(out + len, n - len, "}");
}

int kf_config_parse(kf_ctx *ctx, const char *json, kf_binding *out) {
  memset(out, 0, sizeof *out);
  const char *p = json;
  while (*p == ' ') p++;
  if (*p++ != '{') return kf_err(ctx, KF_EINVAL, "config '%s': expected '{'", json);
  while (*p == ' ') p++;
  if (*p == '}') return KF_OK;
  for (;;) {
    while (*p == ' ') p++;
    if (*p++ != '"') return kf_err(ctx, KF_EINVAL, "config '%s': expected a \"name\"", json);
    const char *e = strchr(p, '"');
    if (!e || e == p || e - p >= 32) return kf_err(ctx, KF_EINVAL, "config '%s': bad name", json);
    char name[32];
    memcpy(name, p, (size_t)(e - p));
    name[e - p] = 0;
    p = e + 1;
    while (*p == ' ') p++;
    if (*p++ != ':') return kf_err(ctx, KF_EINVAL, "config '%s': expected ':' after \"%s\"", json, name);
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno) return kf_err(ctx, KF_EINVAL, "config '%s': bad value of %s", json, name);
    if (kf_binding_set(out, name, v)) return kf_err(ctx, KF_EINVAL, "config '%s': too many values", json);
    p = end;
    while (*p == ' ') p++;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p == '}') return KF_OK;
    return kf_err(ctx, KF_EINVAL, "config '%s': expected ',' or '}'", json);
  }
}

static void binding_text(const kf_binding *b, char *out, size_t n) {
  kf_str s = {0};
  kf_binding_format(b, &s);
  snprintf(out, n, "%s", s.data ? s.data : "");
  kf_str_free(&s);
}

/* ---- what the store records about a target and a workload ---- */

void kf_tune_describe_target(const kf_kernel *k, kf_emitter emitter, int threads, kf_store_target *t) {
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", k->tgt.name);
  snprintf(t->emitter, sizeof t->emitter, "%s", emitter == KF_EMIT_LLVM ? "llvm" : "c");
  if (emitter == KF_EMIT_LLVM) {
    unsigned maj, min, pat;
    LLVMGetVersion(&maj, &min, &pat);
    snprintf(t->compiler, sizeof t->compiler, "LLVM %u.%u.%u", maj, min, pat);
  } else {
    snprintf(t->compiler, sizeof t->compiler, "cc");
    FILE *f = popen("cc --version 2>/dev/null", "r");
    if (f) {
      char line[128];
      if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(t->compiler, sizeof t->compiler, "%s", line);
      }
      pclose(f);
    }
  }
  kf_bench_cpu_model(t->cpu_model, sizeof t->cpu_model);
  kf_bench_cpu_flags(t->features, sizeof t->features);
  t->threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (t->threads < 1) t->threads = 1;
}

void kf_tune_describe_workload(const kf_kernel *k, kf_store_workload *w) {
  memset(w, 0, sizeof *w);
  snprintf(w->tmpl, sizeof w->tmpl, "%s", kf_template_name(k->tmpl));
  snprintf(w->hash, sizeof w->hash, "%s", kf_template_source_hash(k->tmpl));
  binding_text(&k->params, w->shape, sizeof w->shape);
  size_t len = 0;
  for (int i = 0; i < kf_kernel_n_args(k) && len < sizeof w->dtypes; i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    len += (size_t)snprintf(w->dtypes + len, sizeof w->dtypes - len, "%s%s:%s", i ? "," : "", b->name,
                            kf_scalar_name(b->dtype));
  }
}

/* ---- the search space ---- */

typedef KF_VEC(kf_binding) config_vec;

/* Every configuration allowed by the domains, the pinned values and the constraints. */
static int enumerate_space(kf_ctx *ctx, kf_template *t, const kf_binding *params, const kf_binding *fixed,
                           double min_bits, config_vec *out) {
  int n = kf_template_n_tunables(t);
  int64_t dom[KF_MAX_BIND][KF_MAX_DOMAIN];
  int n_dom[KF_MAX_BIND], pos[KF_MAX_BIND];
  for (int i = 0; i < n; i++) {
    const kf_tparam *p = kf_template_tunable(t, i);
    int64_t v;
    if (fixed && kf_binding_get(fixed, p->name, &v)) {
      int ok = p->n_domain == 0;
      for (int d = 0; d < p->n_domain; d++) ok |= p->domain[d] == v;
      if (!ok) return kf_err(ctx, KF_EINVAL, "--set %s=%lld is outside the domain of %s", p->name, (long long)v, p->name);
      dom[i][0] = v;
      n_dom[i] = 1;
    } else if (p->n_domain == 0 || (p->accuracy && min_bits <= 0)) { /* the accuracy contract */
      dom[i][0] = p->def;
      n_dom[i] = 1;
    } else {
      memcpy(dom[i], p->domain, (size_t)p->n_domain * sizeof(int64_t));
      n_dom[i] = p->n_domain;
    }
    pos[i] = 0;
  }
  if (fixed)
    for (int j = 0; j < fixed->n; j++) {
      int known = 0;
      for (int i = 0; i < n; i++) known |= !strcmp(kf_template_tunable(t, i)->name, fixed->name[j]);
      if (!known)
        return kf_err(ctx, KF_EINVAL, "--set: template %s has no tunable '%s'", kf_template_name(t), fixed->name[j]);
    }
  for (;;) {
    kf_binding c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < n; i++) kf_binding_set(&c, kf_template_tunable(t, i)->name, dom[i][pos[i]]);
    int rc = kf_template_check_config(ctx, t, params, &c);
    if (rc == KF_OK) kf_vec_push(out, c);
    else if (strstr(kf_errmsg(ctx), "(in constraints)")) return rc; /* a Lua error, not a rejection */
    int i = n - 1;
    while (i >= 0 && ++pos[i] == n_dom[i]) pos[i--] = 0;
    if (i < 0) break;
  }
  kf_err(ctx, KF_OK, "%s", "");
  return KF_OK;
}

static int config_eq(const kf_binding *a, const kf_binding *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++) {
    int64_t v;
    if (!kf_binding_get(b, a->name[i], &v) || v != a->val[i]) return 0;
  }
  return 1;
}

/* ---- the accuracy contract ---- */

int kf_accuracy_accept(void *arg, const kf_trial_rec *rec) {
  const kf_accuracy *a = arg;
  kf_ctx tmp;
  kf_ctx_init(&tmp);
  kf_binding cfg;
  if (kf_config_parse(&tmp, rec->config, &cfg)) return 0;
  if (a->min_bits > 0 && !(rec->eff_bits >= a->min_bits)) return 0; /* unmeasured (-1) fails too */
  for (int i = 0; i < kf_template_n_tunables(a->t); i++) {
    const kf_tparam *p = kf_template_tunable(a->t, i);
    int64_t v, want;
    if (!p->accuracy) continue;
    if (!kf_binding_get(&cfg, p->name, &v)) return 0;
    if (a->fixed && kf_binding_get(a->fixed, p->name, &want)) {
      if (v != want) return 0;
    } else if (a->min_bits <= 0 && v != p->def)
      return 0;
  }
  return 1;
}

void kf_accuracy_text(const kf_template *t, const kf_binding *config, char *out, size_t n) {
  size_t len = 0;
  out[0] = 0;
  for (int i = 0; i < kf_template_n_tunables(t) && len < n; i++) {
    const kf_tparam *p = kf_template_tunable(t, i);
    int64_t v;
    if (p->accuracy && kf_binding_get(config, p->name, &v))
      len += (size_t)snprintf(out + len, n - len, "%s%s=%lld", len ? "," : "", p->name, (long long)v);
  }
}

/* ---- problems: inputs + fp64 reference, shared by the trials that can share them ---- */

#define N_PROBLEMS 8
typedef struct problem_slot {
  char *key;
  kf_kernel k; /* the kernel the problem was made for (IR only; the problem points to it) */
  kf_problem *p;
  int64_t last_use;
} problem_slot;

typedef struct problem_cache {
  problem_slot slot[N_PROBLEMS];
  int64_t clock;
} problem_cache;

static void problem_cache_free(problem_cache *c) {
  for (int i = 0; i < N_PROBLEMS; i++) {
    kf_problem_free(c->slot[i].p);
    if (c->slot[i].p) kf_kernel_free(&c->slot[i].k);
    free(c->slot[i].key);
  }
  memset(c, 0, sizeof *c);
}

/* Trials whose problems read the same things (kf_problem_key: shape, arguments, IR numerics)
** share one problem, built once in the parent (fork gives each child a copy). */
static int problem_get(kf_ctx *ctx, problem_cache *c, kf_template *t, const kf_binding *shape,
                       const kf_binding *config, const kf_target *target, uint64_t seed, kf_problem **out) {
  kf_kernel k;
  int rc = kf_kernel_build(ctx, t, shape, config, target, &k);
  if (rc) {
    if (k.ir) kf_kernel_free(&k);
    return kf_err_prefix(ctx, rc, "building the reference problem");
  }
  kf_str key = {0};
  kf_problem_key(&k, &key);
  int lru = 0;
  for (int i = 0; i < N_PROBLEMS; i++) {
    if (c->slot[i].p && !strcmp(c->slot[i].key, key.data)) {
      c->slot[i].last_use = ++c->clock;
      *out = c->slot[i].p;
      kf_str_free(&key);
      kf_kernel_free(&k);
      return KF_OK;
    }
    if (c->slot[i].last_use < c->slot[lru].last_use) lru = i;
  }
  problem_slot *sl = &c->slot[lru];
  if (sl->p) {
    kf_problem_free(sl->p);
    kf_kernel_free(&sl->k);
    sl->p = NULL;
  }
  sl->k = k;
  rc = kf_problem_new(ctx, &sl->k, seed, 0, &sl->p);
  if (rc) {
    kf_kernel_free(&sl->k);
    sl->p = NULL;
    kf_str_free(&key);
    return kf_err_prefix(ctx, rc, "building the reference problem");
  }
  free(sl->key);
  sl->key = key.data; /* owned by the slot */
  sl->last_use = ++c->clock;
  *out = sl->p;
  return KF_OK;
}

/* ---- one trial in a forked child ---- */

enum { TR_OK = 0, TR_WRONG, TR_COMPILE, TR_ERROR };

typedef struct trial_msg { /* child -> parent, one write */
  int status;
  double median_s, min_s, spread, compile_s, max_ratio, eff_bits;
  int n_runs;
  char error[480];
} trial_msg;

int kf_sim_target_open(kf_ctx *ctx, const char *name, kf_sim_target *out) {
  memset(out, 0, sizeof *out);
  kf_tgt tg;
  if (kf_target_open(ctx, name, &tg)) return -1;
  int other = tg.ops != &kf_target_cpu;
  if (other) {
    snprintf(out->name, sizeof out->name, "%s", tg.name);
    kf_str d = {0};
    tg.ops->describe(&tg, &d);
    snprintf(out->desc, sizeof out->desc, "%s", d.data ? d.data : tg.name);
    kf_str_free(&d);
    out->tgt = tg;
    out->tgt.data = NULL;
  }
  kf_target_close(&tg);
  return other;
}

/* One trial on a non-CPU target: the configuration's run() checked against the fp64
** reference on the shape with the batch cut down (skipped when the cut-down shape breaks a
** constraint), then its measure() on the whole shape. *max_ratio, *eff_bits = -1 when not checked. */
static int sim_trial(kf_ctx *ctx, const kf_sim_target *sim, kf_template *t, const kf_binding *shape,
                     const kf_binding *config, double *seconds, double *max_ratio, double *eff_bits) {
  *seconds = 0;
  *max_ratio = -1;
  *eff_bits = -1;
  const kf_ref_family *fam;
  kf_kernel k;
  kf_binding cshape = *shape;
  int rc = kf_ref_family_of(ctx, t, &fam);
  if (rc) return rc;
  int64_t cur = 1;
  if (kf_binding_get(&cshape, fam->batch_param, &cur) && cur > fam->sample_batch)
    kf_binding_set(&cshape, fam->batch_param, fam->sample_batch);
  rc = kf_kernel_build_on(ctx, t, &cshape, config, &sim->tgt, &k);
  if (rc == KF_EINVAL && k.ir == NULL) { /* the cut-down shape breaks a constraint: time only */
    kf_kernel_free(&k);
    rc = KF_OK;
  } else {
    kf_problem *p = NULL;
    kf_check_result res;
    if (!rc) rc = kf_problem_new(ctx, &k, 1, 0, &p);
    if (!rc) rc = kf_kernel_load(ctx, &k, KF_EMIT_LLVM);
    if (!rc) {
      kf_problem_poison_outputs(p);
      rc = kf_kernel_run(ctx, &k, kf_problem_args(p), NULL);
    }
    if (!rc) {
      rc = kf_problem_check(ctx, p, &res);
      *max_ratio = res.max_ratio;
      *eff_bits = res.eff_bits;
    }
    kf_problem_free(p);
    kf_kernel_free(&k);
    if (rc) return rc;
  }
  kf_measure_opts mo = {0, 1, 0};
  kf_measure me;
  rc = kf_kernel_build_on(ctx, t, shape, config, &sim->tgt, &k);
  if (!rc) rc = kf_kernel_load(ctx, &k, KF_EMIT_LLVM);
  if (!rc) rc = kf_kernel_measure(ctx, &k, NULL, NULL, &mo, &me);
  if (!rc) *seconds = me.median_s;
  kf_kernel_free(&k);
  return rc;
}

/* A trial on a simulated target: the model's time, after its functional check. */
static void sim_trial_child(kf_template *t, const kf_binding *shape, const kf_binding *config, const kf_tune_opts *o,
                            trial_msg *m) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  double t0 = kf_now(), secs = 0, ratio = -1, bits = -1;
  int rc = sim_trial(&ctx, o->sim, t, shape, config, &secs, &ratio, &bits);
  m->compile_s = kf_now() - t0;
  m->max_ratio = ratio;
  m->eff_bits = bits;
  if (rc) {
    m->status = rc == KF_ECHECK ? TR_WRONG : TR_ERROR;
    snprintf(m->error, sizeof m->error, "%s", kf_errmsg(&ctx));
    return;
  }
  m->status = TR_OK;
  m->median_s = m->min_s = secs; /* deterministic: one run */
  m->spread = 0;
  m->n_runs = 1;
}

static void trial_child(kf_template *t, const kf_binding *shape, const kf_binding *config, const kf_target *target,
                        kf_problem *prob, const kf_tune_opts *o, trial_msg *m) {
  if (o->sim) {
    sim_trial_child(t, shape, config, o, m);
    return;
  }
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  double t0 = kf_now();
  kf_kernel k;
  int rc = kf_kernel_build(&ctx, t, shape, config, target, &k);
  if (!rc) rc = kf_kernel_load(&ctx, &k, o->emitter);
  m->compile_s = kf_now() - t0;
  if (rc) {
    m->status = rc == KF_ECOMPILE ? TR_COMPILE : TR_ERROR;
    snprintf(m->error, sizeof m->error, "%s", kf_errmsg(&ctx));
    return;
  }
  kf_pool *pool = kf_pool_new(o->threads);
  kf_runner *r = kf_runner_new(&k, pool);
  kf_problem_poison_outputs(prob);
  kf_runner_run(r, kf_problem_args(prob));
  kf_check_result res;
  rc = kf_problem_check(&ctx, prob, &res);
  m->max_ratio = res.max_ratio;
  m->eff_bits = res.eff_bits;
  if (rc) {
    m->status = rc == KF_ECHECK ? TR_WRONG : TR_ERROR;
    snprintf(m->error, sizeof m->error, "%s", kf_errmsg(&ctx));
    return;
  }
  kf_bench_stats st;
  if (kf_problem_time(&ctx, prob, r, kf_kernel_n_args(&k), o->cold, 3, o->trial_budget_s, &st)) {
    m->status = TR_ERROR;
    snprintf(m->error, sizeof m->error, "%s", kf_errmsg(&ctx));
    return;
  }
  m->status = TR_OK;
  m->median_s = st.median_s;
  m->min_s = st.min_s;
  m->spread = st.spread;
  m->n_runs = st.n_runs;
}

static volatile sig_atomic_t g_interrupted; /* set by SIGINT/SIGTERM during a sweep */
static void on_interrupt(int sig) {
  (void)sig;
  g_interrupted = 1;
}

/* Runs one trial in a child; fills rec (status, timings, error). Returns KF_OK, or KF_EINTR-like
** -1 when the sweep was interrupted (rec must then not be recorded). */
static int run_trial(kf_template *t, const kf_binding *shape, const kf_binding *config, const kf_target *target,
                     kf_problem *prob, const kf_tune_opts *o, kf_trial_rec *rec) {
  int fds[2];
  if (pipe(fds) != 0) {
    snprintf(rec->status, sizeof rec->status, "failed: error");
    snprintf(rec->error, sizeof rec->error, "pipe: %s", strerror(errno));
    return KF_OK;
  }
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    snprintf(rec->status, sizeof rec->status, "failed: error");
    snprintf(rec->error, sizeof rec->error, "fork: %s", strerror(errno));
    return KF_OK;
  }
  if (pid == 0) {
    close(fds[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a killed sweep */
    if (getppid() != parent) _exit(3);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    struct rlimit no_core = {0, 0}; /* a crashing variant must not spend seconds dumping core */
    setrlimit(RLIMIT_CORE, &no_core);
    trial_msg m;
    memset(&m, 0, sizeof m);
    trial_child(t, shape, config, target, prob, o, &m);
    ssize_t w = write(fds[1], &m, sizeof m);
    _exit(w == (ssize_t)sizeof m ? 0 : 4);
  }
  close(fds[1]);
  trial_msg m;
  size_t got = 0;
  double t0 = kf_now();
  int timed_out = 0;
  while (got < sizeof m) {
    double left = o->trial_timeout_s - (kf_now() - t0);
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd pf = {fds[0], POLLIN, 0};
    int pr = poll(&pf, 1, (int)fmin(left * 1000 + 1, 1000));
    if (pr < 0 && errno != EINTR) break;
    if (g_interrupted) break;
    if (pr <= 0) continue;
    ssize_t n = read(fds[0], (char *)&m + got, sizeof m - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* EOF: the child died without a result */
    got += (size_t)n;
  }
  close(fds[0]);
  if (got < sizeof m) kill(pid, SIGKILL);
  int wst = 0;
  while (waitpid(pid, &wst, 0) < 0 && errno == EINTR) {
  }
  if (g_interrupted && got < sizeof m) return -1;
  rec->max_err_ratio = -1;
  rec->eff_bits = -1;
  if (got == sizeof m) {
    static const char *const names[] = {"ok", "failed: wrong result", "failed: compile error", "failed: error"};
    snprintf(rec->status, sizeof rec->status, "%s", names[m.status >= 0 && m.status <= 3 ? m.status : 3]);
    m.error[sizeof m.error - 1] = 0;
    snprintf(rec->error, sizeof rec->error, "%s", m.error);
    rec->median_s = m.median_s;
    rec->min_s = m.min_s;
    rec->spread = m.spread;
    rec->n_runs = m.n_runs;
    rec->compile_s = m.compile_s;
    if (m.status == TR_OK || m.status == TR_WRONG) rec->max_err_ratio = m.max_ratio;
    if (isnan(rec->max_err_ratio) || isinf(rec->max_err_ratio)) rec->max_err_ratio = -1;
    if (m.status == TR_OK || m.status == TR_WRONG) rec->eff_bits = isnan(m.eff_bits) ? -1 : fmin(m.eff_bits, 1e3);
  } else if (timed_out) {
    snprintf(rec->status, sizeof rec->status, "failed: timeout");
    snprintf(rec->error, sizeof rec->error, "no result after %.1f s; killed", o->trial_timeout_s);
  } else {
    snprintf(rec->status, sizeof rec->status, "failed: crashed");
    if (WIFSIGNALED(wst))
      snprintf(rec->error, sizeof rec->error, "killed by signal %d (%s)", WTERMSIG(wst), strsignal(WTERMSIG(wst)));
    else
      snprintf(rec->error, sizeof rec->error, "exited with status %d without a result",
               WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
  }
  return KF_OK;
}

/* ---- simulated targets ---- */

/* The default kernel of a simulated target: shape, configuration and IR (no code). */
static int sim_kernel(kf_ctx *ctx, const kf_sim_target *sim, kf_template *t, const kf_binding *shape,
                      const kf_binding *fixed, kf_kernel *k) {
  return kf_kernel_build_ir(ctx, t, shape, fixed, &sim->tgt, k);
}

static void sim_describe_target(const kf_sim_target *sim, kf_store_target *st) {
  memset(st, 0, sizeof *st);
  snprintf(st->name, sizeof st->name, "%s", sim->name);
  snprintf(st->emitter, sizeof st->emitter, "sim");
  snprintf(st->compiler, sizeof st->compiler, "kforge %s model", KF_VERSION);
  snprintf(st->cpu_model, sizeof st->cpu_model, "%s", sim->desc);
  st->threads = 1; /* one deterministic simulation per trial */
}

/* ---- the sweep ---- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void fmt_time(double s, char *out, size_t n) {
  if (s < 1e-3) snprintf(out, n, "%.1f us", s * 1e6);
  else if (s < 1) snprintf(out, n, "%.2f ms", s * 1e3);
  else snprintf(out, n, "%.2f s", s);
}

static void fmt_eta(double s, char *out, size_t n) {
  if (!(s >= 0) || s > 1e7) snprintf(out, n, "?");
  else if (s < 60) snprintf(out, n, "%.0fs", s);
  else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* The neighbours of a configuration for the evolutionary search: one tunable moved one step
** in its domain (or two, or a random value), chosen at random. */
static void mutate(kf_template *t, const kf_binding *fixed, const kf_binding *from, uint64_t *rs, kf_binding *out) {
  *out = *from;
  int n = kf_template_n_tunables(t);
  int n_moves = 1 + (int)(rng_next(rs) % 2);
  for (int m = 0; m < n_moves; m++) {
    const kf_tparam *p = kf_template_tunable(t, (int)(rng_next(rs) % (uint64_t)n));
    int64_t v;
    if ((fixed && kf_binding_get(fixed, p->name, &v)) || p->n_domain < 2) continue;
    kf_binding_get(out, p->name, &v);
    int i = 0;
    while (i < p->n_domain && p->domain[i] != v) i++;
    uint64_t r = rng_next(rs) % 4;
    int j = r == 0 ? i - 1 : r == 1 ? i + 1 : r == 2 ? i + (int)(rng_next(rs) % 3) - 1
                                                     : (int)(rng_next(rs) % (uint64_t)p->n_domain);
    if (j < 0) j = 0;
    if (j >= p->n_domain) j = p->n_domain - 1;
    kf_binding_set(out, p->name, p->domain[j]);
  }
}

int kf_tune(kf_ctx *ctx, kf_store *s, const char *tmpl_name, const kf_binding *shape, const kf_binding *fixed,
            const char *target_name, const kf_tune_opts *o, kf_tune_summary *sum) {
  int64_t base = 0;
  return kf_tune_items(ctx, s, tmpl_name, shape, fixed, target_name, o, &base, sum);
}

/* --remeasure K: re-times the K fastest acceptable trials of the workload on this machine,
** one after the other in one process tree, so that the best is chosen from comparable
** timings (after merging shards timed on different nodes or at different times). */
static int remeasure(kf_ctx *ctx, kf_store *s, kf_template *t, const kf_binding *shape, const kf_target *target,
                     const kf_tune_opts *o, kf_accuracy *acc, problem_cache *pc, kf_tune_summary *sum, FILE *out) {
  int k = o->remeasure, n = 0;
  kf_trial_rec *top = kf_xcalloc((size_t)k, sizeof *top);
  int rc = kf_store_top(ctx, s, sum->workload_id, sum->target_id, kf_accuracy_accept, acc, k, top, &n);
  for (int i = 0; !rc && i < n; i++) {
    kf_binding cfg;
    kf_problem *prob = NULL;
    kf_trial_rec rec = top[i];
    if ((rc = kf_config_parse(ctx, top[i].config, &cfg))) break;
    if (!o->sim && (rc = problem_get(ctx, pc, t, shape, &cfg, target, o->seed, &prob))) break;
    if (run_trial(t, shape, &cfg, target, prob, o, &rec) < 0) {
      sum->interrupted = 1;
      break;
    }
    if (strcmp(rec.status, "ok")) {
      fprintf(out, "  remeasure %s: %s %s (timing kept)\n", top[i].config, rec.status, rec.error);
      continue;
    }
    rec.budget_s = o->trial_budget_s;
    if ((rc = kf_store_update_timing(ctx, s, sum->workload_id, sum->target_id, &rec))) break;
    fprintf(out, "  remeasure %s: median %.2f us (was %.2f us)\n", rec.config, rec.median_s * 1e6,
            top[i].median_s * 1e6);
    sum->n_run++;
    sum->n_ok++;
  }
  free(top);
  return rc;
}

int kf_tune_items(kf_ctx *ctx, kf_store *s, const char *tmpl_name, const kf_binding *shape, const kf_binding *fixed,
                  const char *target_name, const kf_tune_opts *o, int64_t *item_base, kf_tune_summary *sum) {
  memset(sum, 0, sizeof *sum);
  FILE *out = o->out ? o->out : stdout;
  if (o->shard_n < 1 || o->shard_i < 0 || o->shard_i >= o->shard_n)
    return kf_err(ctx, KF_EINVAL, "--shard %d/%d: need 0 <= I < N", o->shard_i, o->shard_n);
  kf_target target;
  kf_template *t = NULL;
  kf_kernel k0;
  memset(&k0, 0, sizeof k0);
  config_vec space = {0};
  problem_cache pc;
  memset(&pc, 0, sizeof pc);
  unsigned char *done = NULL;
  memset(&target, 0, sizeof target);
  int rc = o->sim ? KF_OK : kf_target_get(ctx, target_name, &target);
  if (!rc) rc = kf_template_load(ctx, tmpl_name, &t);
  /* The default kernel: validates the shape, sets the template's target, names the workload. */
  if (!rc) rc = o->sim ? sim_kernel(ctx, o->sim, t, shape, fixed, &k0) : kf_kernel_build(ctx, t, shape, fixed, &target, &k0);
  const char *why;
  if (!rc && !o->sim && !kf_target_runnable(&k0.target, &why))
    rc = kf_err(ctx, KF_EUNSUP, "target %s cannot run on this machine (no %s)", k0.target.name, why);
  if (!rc) rc = enumerate_space(ctx, t, &k0.params, fixed, o->min_bits, &space);
  kf_accuracy acc = {t, fixed, o->min_bits};
  kf_store_target st;
  kf_store_workload sw;
  if (!rc) {
    if (o->sim) sim_describe_target(o->sim, &st);
    else kf_tune_describe_target(&k0, o->emitter, o->threads, &st);
    kf_tune_describe_workload(&k0, &sw);
    rc = kf_store_target_id(ctx, s, &st, &sum->target_id);
  }
  if (!rc) rc = kf_store_workload_id(ctx, s, &sw, &sum->workload_id);
  if (rc) goto done;
  if (o->remeasure > 0) {
    fprintf(out, "remeasure %s: the %d fastest trials on %s\n", kf_template_name(t), o->remeasure, st.name);
    rc = remeasure(ctx, s, t, shape, &target, o, &acc, &pc, sum, out);
    if (!rc) rc = kf_store_best(ctx, s, sum->workload_id, sum->target_id, kf_accuracy_accept, &acc, &sum->best,
                                &sum->have_best);
    if (!rc && sum->have_best) fprintf(out, "  best %s  median %.2f us\n", sum->best.config, sum->best.median_s * 1e6);
    goto done;
  }
  /* This shard's work items: (shape, configuration) pairs numbered over the whole shapes list
  ** (item_base counts the earlier shapes'), the default first (a truncated sweep then never
  ** records anything worse than the default). */
  config_vec mine = {0};
  int64_t base = *item_base;
  *item_base += (int64_t)space.len;
  for (size_t i = 0; i < space.len; i++)
    if ((base + (int64_t)i) % o->shard_n == o->shard_i) kf_vec_push(&mine, space.data[i]);
  for (size_t i = 0; i < mine.len; i++)
    if (config_eq(&mine.data[i], &k0.config)) {
      kf_binding d = mine.data[i];
      memmove(mine.data + 1, mine.data, i * sizeof(kf_binding));
      mine.data[0] = d;
      break;
    }
  kf_vec_free(&space);
  space = mine;
  sum->space = (int64_t)space.len;
  done = kf_xcalloc(space.len + 1, 1);
  for (size_t i = 0; i < space.len; i++) {
    char js[512];
    int has;
    kf_config_json(&space.data[i], js, sizeof js);
    if ((rc = kf_store_has_trial(ctx, s, sum->workload_id, sum->target_id, js, &has))) goto done;
    done[i] = (unsigned char)has;
    sum->recorded += has;
  }
  int64_t sweep_id;
  double budget_note = o->budget_n > 0 ? (double)o->budget_n : o->budget_s;
  if ((rc = kf_store_sweep_begin(ctx, s, sum->workload_id, sum->target_id, kf_strategy_name(o->strategy),
                                 sum->space, budget_note, &sweep_id)))
    goto done;
  {
    char shape_txt[512];
    binding_text(&k0.params, shape_txt, sizeof shape_txt);
    fprintf(out, "tune %s %s on %s (%s, %s, %d threads): %lld configurations%s, %lld already recorded, strategy %s\n",
            kf_template_name(t), shape_txt, st.name, st.cpu_model, st.emitter, st.threads, (long long)sum->space,
            o->shard_n > 1 ? " in this shard" : "", (long long)sum->recorded, kf_strategy_name(o->strategy));
    fflush(out);
  }
  /* Order of candidates: exhaustive = space order, trials sharing a problem adjacent (default
  ** first); random = a seeded shuffle; evolve = default, a few random, then mutants of the best. */
  size_t n = space.len;
  size_t *order = kf_xcalloc(n + 1, sizeof(size_t));
  for (size_t i = 0; i < n; i++) order[i] = i;
  uint64_t rs = o->seed * 0x2545f4914f6cdd1dull + 7;
  if (o->strategy != KF_STRAT_EXHAUSTIVE)
    for (size_t i = n; i > 2; i--) { /* keep the default at 0 */
      size_t j = 1 + (size_t)(rng_next(&rs) % (uint64_t)(i - 1));
      size_t tmp = order[i - 1];
      order[i - 1] = order[j];
      order[j] = tmp;
    }
  else if (n > 2 && !o->sim) { /* (a simulated target's trials make their own problems) */
    /* stable grouping by problem key after the default */
    kf_str *keys = kf_xcalloc(n, sizeof *keys);
    kf_tgt kt;
    kf_cpu_tgt(&target, &kt);
    for (size_t i = 0; i < n; i++) {
      kf_kernel ki;
      if (!kf_kernel_build_ir(ctx, t, shape, &space.data[i], &kt, &ki)) kf_problem_key(&ki, &keys[i]);
      kf_kernel_free(&ki);
      if (!keys[i].data) kf_str_puts(&keys[i], "");
    }
    for (size_t i = 2; i < n; i++)
      for (size_t j = i; j > 1 && strcmp(keys[order[j - 1]].data, keys[order[j]].data) > 0; j--) {
        size_t tmp = order[j];
        order[j] = order[j - 1];
        order[j - 1] = tmp;
      }
    for (size_t i = 0; i < n; i++) kf_str_free(&keys[i]);
    free(keys);
  }
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  g_interrupted = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  double t_start = kf_now();
  int64_t total = (int64_t)n - sum->recorded;
  if (o->budget_n > 0 && o->budget_n < total) total = o->budget_n;
  int64_t n_done_now = 0, n_recorded = sum->recorded;
  double best_med = INFINITY;
  char best_cfg[512] = "";
  {
    kf_trial_rec b;
    int found;
    if (!kf_store_best(ctx, s, sum->workload_id, sum->target_id, kf_accuracy_accept, &acc, &b, &found) && found) {
      best_med = b.median_s;
      snprintf(best_cfg, sizeof best_cfg, "%s", b.config);
    }
  }
  size_t cursor = 0;
  int stagnant = 0;
  for (;;) {
    if (g_interrupted) {
      sum->interrupted = 1;
      break;
    }
    if (o->budget_n > 0 && n_done_now >= o->budget_n) break;
    if (o->budget_s > 0 && kf_now() - t_start >= o->budget_s) break;
    /* pick the next configuration */
    kf_binding cand;
    memset(&cand, 0, sizeof cand);
    int have = 0;
    if (o->strategy == KF_STRAT_EVOLVE && n_done_now >= 4 && best_cfg[0] && stagnant < 64) {
      kf_binding parent;
      if (!kf_config_parse(ctx, best_cfg, &parent)) {
        for (int tries = 0; tries < 32 && !have; tries++) {
          kf_binding m;
          mutate(t, fixed, &parent, &rs, &m);
          for (size_t i = 0; i < n; i++)
            if (!done[i] && config_eq(&space.data[i], &m)) {
              cand = space.data[i];
              done[i] = 1;
              have = 1;
              break;
            }
        }
      }
      if (!have) stagnant++;
    }
    while (!have && cursor < n) {
      size_t i = order[cursor++];
      if (!done[i]) {
        cand = space.data[i];
        done[i] = 1;
        have = 1;
      }
    }
    if (!have) break;
    kf_trial_rec rec;
    memset(&rec, 0, sizeof rec);
    kf_config_json(&cand, rec.config, sizeof rec.config);
    int has;
    if ((rc = kf_store_has_trial(ctx, s, sum->workload_id, sum->target_id, rec.config, &has))) break;
    if (has) continue; /* another sweep recorded it meanwhile */
    kf_problem *prob = NULL; /* a simulated target checks its own functional result */
    if (!o->sim && problem_get(ctx, &pc, t, shape, &cand, &target, o->seed, &prob)) {
      /* this configuration's kernel declares a problem that cannot be made (e.g. arguments
      ** beyond this machine's memory): a failed trial, the sweep goes on */
      snprintf(rec.status, sizeof rec.status, "failed: error");
      snprintf(rec.error, sizeof rec.error, "%s", kf_errmsg(ctx));
    } else if (run_trial(t, shape, &cand, &target, prob, o, &rec) < 0) {
      sum->interrupted = 1;
      break;
    }
    snprintf(rec.rigor, sizeof rec.rigor, "%s", config_eq(&cand, &k0.config) ? "default" : kf_strategy_name(o->strategy));
    rec.budget_s = o->trial_budget_s;
    snprintf(rec.version, sizeof rec.version, "%s", KF_VERSION);
    int inserted;
    if ((rc = kf_store_add_trial(ctx, s, sum->workload_id, sum->target_id, &rec, &inserted))) break;
    n_done_now++;
    n_recorded += inserted;
    sum->n_run++;
    if (!strcmp(rec.status, "ok")) {
      sum->n_ok++;
      if (rec.median_s < best_med && kf_accuracy_accept(&acc, &rec)) {
        best_med = rec.median_s;
        snprintf(best_cfg, sizeof best_cfg, "%s", rec.config);
        stagnant = 0;
      }
    } else if (!strcmp(rec.status, "failed: wrong result")) sum->n_wrong++;
    else if (!strcmp(rec.status, "failed: crashed")) sum->n_crashed++;
    else if (!strcmp(rec.status, "failed: timeout")) sum->n_timeout++;
    else if (!strcmp(rec.status, "failed: compile error")) sum->n_compile++;
    else sum->n_other++;
    kf_store_sweep_update(ctx, s, sweep_id, n_done_now, n_recorded == sum->space);
    if (o->progress) {
      double el = kf_now() - t_start, eta = el / (double)n_done_now * (double)(total - n_done_now);
      if (o->budget_s > 0 && o->budget_s - el < eta) eta = fmax(0, o->budget_s - el);
      char bt[32] = "-", lt[32] = "", et[32];
      if (isfinite(best_med)) fmt_time(best_med, bt, sizeof bt);
      if (!strcmp(rec.status, "ok")) fmt_time(rec.median_s, lt, sizeof lt);
      fmt_eta(eta, et, sizeof et);
      char bits[48] = "";
      if (rec.eff_bits >= 0) snprintf(bits, sizeof bits, " %.2f bits, err/bound %.2f", rec.eff_bits, rec.max_err_ratio);
      fprintf(out, "%s[%lld/%lld] best %s %s  ETA %s  | %s %s%s%s%s%s%.120s", o->progress == 2 ? "\r\033[K" : "",
              (long long)n_done_now, (long long)total, bt, best_cfg, et, rec.config, rec.status, lt[0] ? " " : "", lt,
              bits, rec.error[0] ? ": " : "", rec.error);
      if (o->progress != 2) fputc('\n', out);
      fflush(out);
    }
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (o->progress == 2) fputc('\n', out);
  free(order);
  if (rc) goto done;
  sum->complete = n_recorded >= sum->space;
  kf_store_sweep_update(ctx, s, sweep_id, n_done_now, sum->complete);
  if ((rc = kf_store_best(ctx, s, sum->workload_id, sum->target_id, kf_accuracy_accept, &acc, &sum->best,
                          &sum->have_best)))
    goto done;
  {
    char dj[512];
    kf_config_json(&k0.config, dj, sizeof dj);
    if ((rc = kf_store_get_trial(ctx, s, sum->workload_id, sum->target_id, dj, &sum->deflt, &sum->have_default)))
      goto done;
  }
  {
    char bt[32] = "-", dt[32] = "-";
    if (sum->have_best) fmt_time(sum->best.median_s, bt, sizeof bt);
    if (sum->have_default && !strcmp(sum->deflt.status, "ok")) fmt_time(sum->deflt.median_s, dt, sizeof dt);
    fprintf(out,
            "summary: %lld trials now (%lld ok, %lld wrong, %lld crashed, %lld timeout, %lld compile, %lld other)%s; "
            "%lld of %lld configurations recorded%s in %.1f s\n",
            (long long)sum->n_run, (long long)sum->n_ok, (long long)sum->n_wrong, (long long)sum->n_crashed,
            (long long)sum->n_timeout, (long long)sum->n_compile, (long long)sum->n_other,
            sum->interrupted ? ", interrupted" : "", (long long)n_recorded, (long long)sum->space,
            sum->complete ? " (complete)" : "", kf_now() - t_start);
    char acc_txt[128];
    kf_accuracy_text(t, &k0.config, acc_txt, sizeof acc_txt);
    if (sum->have_best)
      fprintf(out, "  best    %s %s  (%.2f effective bits, max err/bound %.3f)\n", bt, sum->best.config,
              sum->best.eff_bits, sum->best.max_err_ratio);
    else if (o->min_bits > 0)
      fprintf(out, "  best    - (no ok trial measured >= %.2f effective bits)\n", o->min_bits);
    else
      fprintf(out, "  best    - (no ok trial%s%s)\n", acc_txt[0] ? " at the accuracy setting " : "", acc_txt);
    fprintf(out, "  default %s %s", dt, sum->have_default ? sum->deflt.config : "(not recorded)");
    if (sum->have_best && sum->have_default && !strcmp(sum->deflt.status, "ok"))
      fprintf(out, "  -> speedup %.2fx", sum->deflt.median_s / sum->best.median_s);
    else if (sum->have_default)
      fprintf(out, "  (%s)", sum->deflt.status);
    fprintf(out, "\n");
    fflush(out);
  }
done:
  problem_cache_free(&pc);
  free(done);
  kf_vec_free(&space);
  if (k0.ir) kf_kernel_free(&k0);
  kf_template_free(t);
  return rc;
}

/* ---- lookup ---- */

const char *kf_lookup_kind_name(kf_lookup_kind k) {
  return k == KF_LOOKUP_EXACT ? "exact" : k == KF_LOOKUP_NEAREST ? "nearest" : "default";
}

typedef struct cand {
  char shape[512];
  kf_binding config;
  double dist, median_s, max_err_ratio, eff_bits;
  int stale;
} cand;

typedef struct lookup_state {
  kf_ctx *ctx;
  kf_template *t;
  const kf_binding *params;
  kf_accuracy acc;
  KF_VEC(cand) cands;
  char last_shape[512]; /* the workload whose best accepted trial is already a candidate */
  int n_rejected;       /* trials skipped for the accuracy contract */
} lookup_state;

/* Distance between the shape of a tuned workload and the wanted params; < 0 when they
** cannot be compared (a categorical param differs, or a param is missing). */
static double shape_distance(kf_template *t, const kf_binding *want, const kf_binding *have) {
  double d = 0;
  for (int i = 0; i < kf_template_n_params(t); i++) {
    const kf_tparam *p = kf_template_param(t, i);
    int64_t a, b;
    if (!kf_binding_get(want, p->name, &a) || !kf_binding_get(have, p->name, &b)) return -1;
    if (p->n_domain > 0) {
      if (a != b) return -1;
    } else if (a != b) {
      if (a <= 0 || b <= 0) return -1;
      d += fabs(log2((double)a / (double)b));
    }
  }
  return d;
}

static int lookup_each(void *arg, const char *shape, const kf_trial_rec *best) {
  lookup_state *ls = arg;
  if (!strcmp(shape, ls->last_shape)) return 0; /* rows of one workload are adjacent, best first */
  if (!kf_accuracy_accept(&ls->acc, best)) {
    ls->n_rejected++;
    return 0;
  }
  snprintf(ls->last_shape, sizeof ls->last_shape, "%s", shape);
  kf_ctx tmp;
  kf_ctx_init(&tmp);
  kf_binding have;
  memset(&have, 0, sizeof have);
  if (kf_binding_parse(&tmp, shape, "stored shape", &have)) return 0;
  double d = shape_distance(ls->t, ls->params, &have);
  if (d < 0) return 0;
  cand c;
  memset(&c, 0, sizeof c);
  snprintf(c.shape, sizeof c.shape, "%s", shape);
  if (kf_config_parse(&tmp, best->config, &c.config)) return 0;
  c.dist = d;
  c.median_s = best->median_s;
  c.max_err_ratio = best->max_err_ratio;
  c.eff_bits = best->eff_bits;
  c.stale = best->stale;
  kf_vec_push(&ls->cands, c);
  return 0;
}

int kf_lookup(kf_ctx *ctx, kf_store *s, kf_template *tmpl, const kf_binding *params, const kf_binding *fixed,
              const kf_target *target, const kf_lookup_opts *lo, kf_lookup_result *out) {
  memset(out, 0, sizeof *out);
  out->max_err_ratio = out->eff_bits = -1;
  lookup_state ls;
  memset(&ls, 0, sizeof ls);
  ls.ctx = ctx;
  ls.t = tmpl;
  ls.params = params;
  ls.acc.t = tmpl;
  ls.acc.fixed = fixed;
  ls.acc.min_bits = lo ? lo->min_bits : 0;
  char cpu[128];
  kf_bench_cpu_model(cpu, sizeof cpu);
  int rc = kf_store_each_ok(ctx, s, kf_template_name(tmpl), kf_template_source_hash(tmpl), target->name, cpu,
                            lo && lo->allow_stale, lookup_each, &ls);
  if (rc) {
    kf_vec_free(&ls.cands);
    return rc;
  }
  /* nearest first (stable: the store lists workloads in insertion order) */
  for (size_t i = 1; i < ls.cands.len; i++)
    for (size_t j = i; j > 0 && ls.cands.data[j - 1].dist > ls.cands.data[j].dist; j--) {
      cand tmp = ls.cands.data[j];
      ls.cands.data[j] = ls.cands.data[j - 1];
      ls.cands.data[j - 1] = tmp;
    }
  int n_skipped = 0;
  for (size_t i = 0; i < ls.cands.len; i++) {
    cand *c = &ls.cands.data[i];
    /* pinned values must agree */
    int ok = 1;
    for (int j = 0; fixed && j < fixed->n; j++) {
      int64_t v;
      ok &= kf_binding_get(&c->config, fixed->name[j], &v) && v == fixed->val[j];
    }
    if (ok && c->dist > 0) {
      kf_ctx tmp;
      kf_ctx_init(&tmp);
      ok = kf_template_check_config(&tmp, tmpl, params, &c->config) == KF_OK;
      if (!ok && !out->note[0])
        snprintf(out->note, sizeof out->note, "the config of %.200s is invalid here", c->shape);
    }
    if (!ok) {
      n_skipped++;
      continue;
    }
    out->kind = c->dist == 0 ? KF_LOOKUP_EXACT : KF_LOOKUP_NEAREST;
    out->config = c->config;
    snprintf(out->from_shape, sizeof out->from_shape, "%s", c->shape);
    out->distance = c->dist;
    out->median_s = c->median_s;
    out->max_err_ratio = c->max_err_ratio;
    out->eff_bits = c->eff_bits;
    if (c->stale) snprintf(out->note, sizeof out->note, "stale: tuned with another generator version (--allow-stale)");
    kf_vec_free(&ls.cands);
    return KF_OK;
  }
  kf_vec_free(&ls.cands);
  out->kind = KF_LOOKUP_DEFAULT;
  if (!out->note[0] && ls.n_rejected)
    snprintf(out->note, sizeof out->note, "%d tuned results skipped: not at the accuracy setting%s", ls.n_rejected,
             ls.acc.min_bits > 0 ? " (below --min-bits)" : " (tune without --min-bits, or give it here)");
  else if (!out->note[0])
    snprintf(out->note, sizeof out->note, "no tuned shape of %s on %s in %s (current generator version)",
             kf_template_name(tmpl), target->name, kf_store_path(s));
  (void)n_skipped;
  return kf_template_config(ctx, tmpl, params, fixed ? fixed : &(kf_binding){0}, &out->config);
}

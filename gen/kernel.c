/*
** kernel.c: the pipeline for one kernel, and the thread pool that runs it.
*/
#include "kernel.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


int kf_kernel_build_ir(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape, const kf_binding *sets,
                       const kf_tgt *target, kf_kernel *out) {
  memset(out, 0, sizeof *out);
  out->tmpl = tmpl;
  out->tgt = *target;
  out->tgt.data = NULL; /* the target's own description stays with whoever opened it */
  kf_binding none;
  memset(&none, 0, sizeof none);
  kf_target_view v = target->view;
  if (!v.name) v.name = target->name;
  int rc = kf_template_shape(ctx, tmpl, shape, &out->params);
  if (!rc) rc = kf_template_config(ctx, tmpl, &v, &out->params, sets ? sets : &none, &out->config);
  if (!rc) rc = kf_template_build(ctx, tmpl, &v, &out->params, &out->config, &out->ir);
  if (rc) return rc;
  /* fn name: template, its leading shape values, and a hash of everything that specializes it */
  kf_str key = {0}, name = {0};
  kf_binding_format(&out->params, &key);
  kf_str_puts(&key, ";");
  kf_binding_format(&out->config, &key);
  kf_str_printf(&key, ";%s;%s", target->name, kf_template_source_hash(tmpl));
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < key.len; i++) h = (h ^ (unsigned char)key.data[i]) * 16777619u;
  kf_str_printf(&name, "%s", kf_template_name(tmpl));
  const char *kname;
  int64_t kval;
  for (int i = 0; kf_template_key(tmpl, i, &kname); i++)
    if (kf_binding_get(&out->params, kname, &kval)) kf_str_printf(&name, "_%s%lld", kname, (long long)kval);
  kf_str_printf(&name, "_%08x", h);
  for (char *c = name.data; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
  snprintf(out->fn_name, sizeof out->fn_name, "%s", name.data);
  kf_str_free(&name);
  kf_str_free(&key);
  return KF_OK;
}

int kf_kernel_build_on(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape, const kf_binding *sets,
                       const kf_tgt *target, kf_kernel *out) {
  int rc = kf_kernel_build_ir(ctx, tmpl, shape, sets, target, out);
  return rc ? rc : target->ops->lower(ctx, out);
}

int kf_kernel_build(kf_ctx *ctx, kf_template *tmpl, const kf_binding *shape,
                    const kf_binding *sets, const kf_target *target, kf_kernel *out) {
  kf_tgt t;
  kf_cpu_tgt(target, &t);
  return kf_kernel_build_on(ctx, tmpl, shape, sets, &t, out);
}

void kf_kernel_describe(const kf_kernel *k, kf_str *out) {
  kf_str p = {0}, c = {0};
  kf_binding_format(&k->params, &p);
  kf_binding_format(&k->config, &c);
  kf_str_printf(out, "kforge %s: template %s (%s, hash %s)\nshape: %s\ntunables: %s\ntarget: %s", KF_VERSION,
                kf_template_name(k->tmpl), kf_template_path(k->tmpl), kf_template_source_hash(k->tmpl),
                p.data ? p.data : "", c.data ? c.data : "(none)", k->tgt.name);
  kf_str_free(&p);
  kf_str_free(&c);
}

int kf_kernel_load(kf_ctx *ctx, kf_kernel *k, kf_emitter emitter) {
  int rc = k->tgt.ops->runnable(ctx, &k->tgt);
  if (!rc) rc = k->tgt.ops->load(ctx, k, (int)emitter);
  return rc;
}

int kf_kernel_run(kf_ctx *ctx, kf_kernel *k, void *const *args, kf_pool *pool) {
  return k->tgt.ops->run(ctx, k, args, pool);
}

int kf_kernel_measure(kf_ctx *ctx, kf_kernel *k, kf_problem *p, kf_pool *pool, const kf_measure_opts *o,
                      kf_measure *out) {
  memset(out, 0, sizeof *out);
  return k->tgt.ops->measure(ctx, k, p, pool, o, out);
}

void kf_kernel_free(kf_kernel *k) {
  if (k->tgt.ops && k->tgt.ops->release) k->tgt.ops->release(k);
  kf_ir_free(k->ir);
  memset(k, 0, sizeof *k);
}

int kf_kernel_n_args(const kf_kernel *k) {
  int n = 0;
  for (size_t i = 0; i < k->ir->bufs.len; i++)
    n += k->ir->bufs.data[i].level == KF_LVL_ARG_IN || k->ir->bufs.data[i].level == KF_LVL_ARG_OUT;
  return n;
}

const kf_ir_buf *kf_kernel_arg(const kf_kernel *k, int i) {
  for (size_t j = 0; j < k->ir->bufs.len; j++) {
    const kf_ir_buf *b = &k->ir->bufs.data[j];
    if (b->level != KF_LVL_ARG_IN && b->level != KF_LVL_ARG_OUT) continue;
    if (i-- == 0) return b;
  }
  return NULL;
}

/* ---- thread pool ---- */

typedef void (*pool_fn)(void *arg, int worker, int n_workers);

struct kf_pool {
  int n;                 /* workers including the caller */
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  long generation;
  int pending, stop;
  pool_fn fn;
  void *arg;
};

typedef struct worker_arg {
  kf_pool *p;
  int id;
} worker_arg;

static void *worker_main(void *varg) {
  worker_arg *wa = varg;
  kf_pool *p = wa->p;
  int id = wa->id;
  free(wa);
  long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->generation == seen) pthread_cond_wait(&p->go, &p->mu);
    if (p->stop) break;
    seen = p->generation;
    pool_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    fn(arg, id, p->n);
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

kf_pool *kf_pool_new(int n_threads) {
  if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n_threads < 1) n_threads = 1;
  kf_pool *p = kf_xcalloc(1, sizeof *p);
  p->n = n_threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->done, NULL);
  p->threads = kf_xcalloc((size_t)n_threads, sizeof(pthread_t));
  for (int i = 1; i < n_threads; i++) {
    worker_arg *wa = kf_xmalloc(sizeof *wa);
    wa->p = p;
    wa->id = i;
    if (pthread_create(&p->threads[i], NULL, worker_main, wa)) {
      free(wa);
      p->n = i; /* run with the threads we got */
      break;
    }
  }
  return p;
}

void kf_pool_free(kf_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  free(p->threads);
  free(p);
}

int kf_pool_size(const kf_pool *p) { return p ? p->n : 1; }

static void pool_run(kf_pool *p, pool_fn fn, void *arg) {
  if (!p || p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->pending = p->n - 1;
  p->generation++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(arg, 0, p->n);
  pthread_mutex_lock(&p->mu);
  while (p->pending) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

struct kf_runner {
  kf_kernel_fn fn;
  int64_t par_total;
  kf_pool *pool;
  void **ws;
  int n_ws;
  void *const *args;
};

kf_runner *kf_runner_new(const kf_kernel *k, kf_pool *pool) {
  kf_runner *r = kf_xcalloc(1, sizeof *r);
  r->fn = k->loaded.fn;
  r->par_total = k->lir->par_total;
  r->pool = pool;
  r->n_ws = kf_pool_size(pool);
  r->ws = kf_xcalloc((size_t)r->n_ws, sizeof(void *));
  size_t bytes = (size_t)((k->lir->ws_bytes + 63) & ~(int64_t)63);
  for (int i = 0; i < r->n_ws; i++) {
    r->ws[i] = aligned_alloc(64, bytes ? bytes : 64);
    if (!r->ws[i]) { /* a template-sized workspace this machine cannot give */
      kf_runner_free(r);
      return NULL;
    }
    memset(r->ws[i], 0, bytes ? bytes : 64);
  }
  return r;
}

static void runner_chunk(void *arg, int worker, int n_workers) {
  kf_runner *r = arg;
  int64_t lo = r->par_total * worker / n_workers, hi = r->par_total * (worker + 1) / n_workers;
  if (lo < hi) r->fn(r->args, lo, hi, r->ws[worker]);
}

void kf_runner_run(kf_runner *r, void *const *args) {
  r->args = args;
  pool_run(r->pool, runner_chunk, r);
}

void kf_runner_free(kf_runner *r) {
  if (!r) return;
  for (int i = 0; i < r->n_ws; i++) free(r->ws[i]);
  free(r->ws);
  free(r);
}

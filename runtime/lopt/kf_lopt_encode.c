/* kf_lopt encoding: sequential encode, the thread pool, LoPT and the naive split. */
#include "kf_lopt_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void kf_lopt_tokens_free(kf_lopt_tokens *t) {
  if (!t) return;
  free(t->ids);
  free(t->start);
  free(t->end);
  memset(t, 0, sizeof *t);
}

/* Offsets of final-text tokens -> offsets into the caller's input. */
static void map_offsets(const lopt_prepared *pp, kf_lopt_tokens *t) {
  if (pp->map_nfc.n == 0 && pp->map_repair.n == 0) return;
  for (size_t i = 0; i < t->n; i++) {
    uint32_t a = lopt_map_pos(&pp->map_nfc, t->start[i], 0);
    uint32_t b = lopt_map_pos(&pp->map_nfc, t->end[i], 1);
    t->start[i] = lopt_map_pos(&pp->map_repair, a, 0);
    t->end[i] = lopt_map_pos(&pp->map_repair, b, 1);
  }
}

/* Sequential encode into out; huge: out's arrays get the huge-page hint (the caller's output,
 * not a naive split part that is freed again within the call). */
static kf_lopt_status encode_seq(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                                 kf_lopt_tokens *out, int huge, kf_lopt_error *err) {
  if (tok->generic) return lopt_generic_encode(tok, text, len, out, err);
  lopt_prepared pp;
  kf_lopt_status st = lopt_prepare(tok, text, len, 0, 0, &pp, err);
  if (st) return st;
  lopt_scratch *s = lopt_scratch_new(tok);
  /* Tokens go straight into out's arrays (reusing their capacity); no segments are recorded,
   * since nothing is joined. */
  lopt_chunk c = {0};
  c.toks = *out;
  c.toks.n = 0;
  c.seg_skip_to = UINT32_MAX;
  c.huge_pages = huge;
  int failed = !s || lopt_encode_range(tok, s, &pp, 0, (uint32_t)pp.len, &c) < 0;
  *out = c.toks;
  memset(&c.toks, 0, sizeof c.toks);
  lopt_chunk_free(&c);
  lopt_scratch_free(s);
  if (failed) {
    out->n = 0;
    lopt_prepared_free(&pp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_encode: out of memory (%zu bytes)", len);
  }
  map_offsets(&pp, out);
  lopt_prepared_free(&pp);
  return KF_LOPT_OK;
}

kf_lopt_status kf_lopt_encode(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                              kf_lopt_tokens *out, kf_lopt_error *err) {
  if (!tok || !out || (!text && len))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_encode: NULL argument");
  return encode_seq(tok, text, len, out, 1, err);
}

/* The post-processor's tokens around the sequence (offsets 0, 0 as the reference's). */
static kf_lopt_status add_template(const kf_lopt_tokenizer *tok, kf_lopt_tokens *t,
                                   kf_lopt_error *err) {
  size_t pre = tok->n_tpl_pre, post = tok->n_tpl_post, n = t->n;
  if (!pre && !post) return KF_LOPT_OK;
  if (lopt_tokens_reserve(t, n + pre + post, 0) < 0)
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory adding special tokens");
  memmove(t->ids + pre, t->ids, n * sizeof *t->ids);
  memmove(t->start + pre, t->start, n * sizeof *t->start);
  memmove(t->end + pre, t->end, n * sizeof *t->end);
  for (size_t i = 0; i < pre; i++) {
    t->ids[i] = tok->tpl_pre[i];
    t->start[i] = t->end[i] = 0;
  }
  for (size_t i = 0; i < post; i++) {
    t->ids[pre + n + i] = tok->tpl_post[i];
    t->start[pre + n + i] = t->end[pre + n + i] = 0;
  }
  t->n = n + pre + post;
  return KF_LOPT_OK;
}

kf_lopt_status kf_lopt_encode_parallel_ex(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                          const char *text, size_t len, unsigned flags,
                                          const kf_lopt_par_opts *opts, kf_lopt_tokens *out,
                                          kf_lopt_par_stats *stats, kf_lopt_error *err) {
  if (!tok || !out || (!text && len))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_encode_ex: NULL argument");
  kf_lopt_tokenizer *view = NULL; /* special tokens as text: the same tokenizer without them */
  const kf_lopt_tokenizer *t = tok;
  if (flags & KF_LOPT_SPECIAL_AS_TEXT) {
    view = malloc(sizeof *view);
    if (!view) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
    *view = *tok;
    view->raw_set = tok->raw_set_ns;
    view->norm_set = tok->norm_set_ns;
    t = view;
  }
  kf_lopt_status st = pool ? kf_lopt_encode_parallel(t, pool, text, len, opts, out, stats, err)
                           : encode_seq(t, text, len, out, 1, err);
  free(view);
  if (!st && (flags & KF_LOPT_ADD_SPECIAL)) st = add_template(tok, out, err);
  return st;
}

kf_lopt_status kf_lopt_encode_ex(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                                 unsigned flags, kf_lopt_tokens *out, kf_lopt_error *err) {
  return kf_lopt_encode_parallel_ex(tok, NULL, text, len, flags, NULL, out, NULL, err);
}

/* ---------------------------------------------------------------- thread pool */

typedef void (*pool_fn)(void *arg, size_t item, int worker);

struct kf_lopt_pool {
  int n_threads;
  pthread_t *th;
  int n_started;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  pool_fn fn;
  void *arg;
  size_t n_items, next;
  atomic_size_t done;    /* written under mu; read without it while spinning */
  atomic_ulong gen;      /* job generation, likewise */
  atomic_int quit;
  /* Chunk buffers of the last LoPT call, emptied but with their capacity, for the next call:
   * fresh pages cost a first-touch fault each (and in a VM often a host fault too). */
  lopt_chunk *spare;
  size_t n_spare;
};

/* A thread that just finished its share spins this long for the next job (or the last items)
 * before sleeping on a condition variable: one LoPT call runs three jobs back to back, and a
 * futex wake-up costs tens of microseconds, more in a VM. */
#define POOL_SPIN_S 100e-6

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Spin until *v != old (or *quit), at most POOL_SPIN_S; returns 1 if it changed. */
static int spin_ulong(const atomic_ulong *v, unsigned long old, const atomic_int *quit) {
  double t_end = 0;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(v, memory_order_acquire) != old ||
        atomic_load_explicit(quit, memory_order_relaxed))
      return 1;
    cpu_relax();
    if ((i & 255) == 0) {
      double t = clock_s(CLOCK_MONOTONIC);
      if (t_end == 0) t_end = t + POOL_SPIN_S;
      else if (t > t_end) return 0;
    }
  }
}

/* Spin until *v >= want, at most POOL_SPIN_S; returns 1 if reached. */
static int spin_size(const atomic_size_t *v, size_t want) {
  double t_end = 0;
  for (unsigned i = 1;; i++) {
    if (atomic_load_explicit(v, memory_order_acquire) >= want) return 1;
    cpu_relax();
    if ((i & 255) == 0) {
      double t = clock_s(CLOCK_MONOTONIC);
      if (t_end == 0) t_end = t + POOL_SPIN_S;
      else if (t > t_end) return 0;
    }
  }
}

typedef struct worker_arg {
  kf_lopt_pool *pool;
  int index;
} worker_arg;

/* Take items until none are left; returns when this worker finds the queue empty. */
static void pool_drain(kf_lopt_pool *p, int worker) {
  for (;;) {
    pthread_mutex_lock(&p->mu);
    if (p->next >= p->n_items) {
      pthread_mutex_unlock(&p->mu);
      return;
    }
    size_t item = p->next++;
    pool_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    fn(arg, item, worker);
    pthread_mutex_lock(&p->mu);
    if (++p->done == p->n_items) pthread_cond_broadcast(&p->cv_done);
    pthread_mutex_unlock(&p->mu);
  }
}

static void *pool_main(void *varg) {
  worker_arg *wa = varg;
  kf_lopt_pool *p = wa->pool;
  int index = wa->index;
  free(wa);
  unsigned long seen = 0;
  for (;;) {
    spin_ulong(&p->gen, seen, &p->quit);
    pthread_mutex_lock(&p->mu);
    while (!p->quit && p->gen == seen) pthread_cond_wait(&p->cv_work, &p->mu);
    if (p->quit) {
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    seen = p->gen;
    pthread_mutex_unlock(&p->mu);
    pool_drain(p, index);
  }
}

kf_lopt_status kf_lopt_pool_create(int n_threads, kf_lopt_pool **out, kf_lopt_error *err) {
  if (!out) return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_pool_create: NULL out");
  *out = NULL;
  if (n_threads < 1 || n_threads > 1024)
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "threads must be in [1, 1024], got %d", n_threads);
  kf_lopt_pool *p = calloc(1, sizeof *p);
  if (!p) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
  p->n_threads = n_threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv_work, NULL);
  pthread_cond_init(&p->cv_done, NULL);
  p->th = calloc((size_t)n_threads, sizeof *p->th);
  if (!p->th) {
    kf_lopt_pool_free(p);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
  }
  for (int i = 1; i < n_threads; i++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) {
      kf_lopt_pool_free(p);
      return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
    }
    wa->pool = p;
    wa->index = i;
    if (pthread_create(&p->th[i], NULL, pool_main, wa) != 0) {
      free(wa);
      kf_lopt_pool_free(p);
      return kf_lopt_fail(err, KF_LOPT_ETHREAD, "cannot start worker thread %d of %d", i,
                          n_threads);
    }
    p->n_started++;
  }
  *out = p;
  return KF_LOPT_OK;
}

int kf_lopt_pool_threads(const kf_lopt_pool *pool) { return pool ? pool->n_threads : 1; }

void kf_lopt_pool_free(kf_lopt_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i <= p->n_started; i++) pthread_join(p->th[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv_work);
  pthread_cond_destroy(&p->cv_done);
  kf_lopt_pool_trim(p);
  free(p->th);
  free(p);
}

void kf_lopt_pool_trim(kf_lopt_pool *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n_spare; i++) lopt_chunk_free(&p->spare[i]);
  free(p->spare);
  p->spare = NULL;
  p->n_spare = 0;
}

/* Run fn(arg, i, worker) for i in [0, n) on the pool; the caller is worker 0. */
static void pool_run(kf_lopt_pool *p, size_t n, pool_fn fn, void *arg) {
  if (!p || p->n_threads == 1 || n <= 1) {
    for (size_t i = 0; i < n; i++) fn(arg, i, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n_items = n;
  p->next = 0;
  p->done = 0;
  p->gen++;
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  pool_drain(p, 0);
  spin_size(&p->done, n);
  pthread_mutex_lock(&p->mu);
  while (p->done < p->n_items) pthread_cond_wait(&p->cv_done, &p->mu);
  p->n_items = 0;
  pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------- parallel text stage */

enum {
  PAR_PREPARE_MIN = 256 * 1024,  /* bytes: below this the text stage runs on the caller */
  PAR_PREPARE_BLOCK = 1 << 20    /* bytes: largest default block (a block's passes stay in L2) */
};

/* The text stage (lopt_prepare) in blocks on the pool, with the same result as the sequential
 * one, byte for byte and region for region:
 *   1. input blocks cut before non-continuation bytes: UTF-8 check and repair, NFC check, raw
 *      added-token candidates (lopt_text_block_scan);
 *   2. repaired blocks copied into one text (only if some block was invalid), maps joined;
 *   3. split at raw added tokens, trying only the candidates (sequential, cheap);
 *   4. NFC (only if some block needs it) in blocks cut before inert characters or at piece
 *      edges, copied into one text, piece edges and maps shifted;
 *   5. split at normalized added tokens (sequential, as before). */

typedef struct copy_part {
  const char *src;
  size_t n, dst;
} copy_part;

typedef struct concat_job {
  const copy_part *parts;
  char *dst;
} concat_job;

static void job_concat(void *varg, size_t i, int worker) {
  (void)worker;
  concat_job *j = varg;
  if (j->parts[i].n) memcpy(j->dst + j->parts[i].dst, j->parts[i].src, j->parts[i].n);
}

typedef struct text_job {
  const kf_lopt_tokenizer *tok;
  const unsigned char *in;
  lopt_text_block *blocks;
} text_job;

static void job_text(void *varg, size_t i, int worker) {
  (void)worker;
  text_job *j = varg;
  lopt_text_block b = j->blocks[i]; /* a copy: no false sharing with the neighbour blocks */
  if (lopt_text_block_scan(j->tok, j->in, &b) < 0) b.failed = 1;
  j->blocks[i] = b;
}

typedef struct nfc_job {
  int form;
  const unsigned char *s;
  const lopt_pieces *ps;
  lopt_nfc_block *blocks;
  uint32_t *new_start;
} nfc_job;

static void job_nfc(void *varg, size_t i, int worker) {
  (void)worker;
  nfc_job *j = varg;
  lopt_nfc_block b = j->blocks[i]; /* a copy: no false sharing with the neighbour blocks */
  if (lopt_nfc_block_run(j->form, j->s, j->ps, &b, j->new_start) < 0) b.failed = 1;
  j->blocks[i] = b;
}

static size_t block_edge(const unsigned char *s, size_t n, size_t x) {
  while (x < n && (s[x] & 0xC0) == 0x80) x++;
  return x;
}

/* Steps 1-3. */
static int prepare_split(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool, const char *in,
                         size_t len, size_t block, lopt_prepared *pp) {
  const unsigned char *u = (const unsigned char *)in;
  size_t nb = (len + block - 1) / block;
  lopt_text_block *b = calloc(nb, sizeof *b);
  copy_part *parts = calloc(nb, sizeof *parts);
  lopt_u32vec cand = {0};
  int rc = -1;
  if (!b || !parts) goto done;
  size_t n_blocks = 0;
  for (size_t i = 0, at = 0; i < nb && at < len; i++) {
    size_t e = i + 1 == nb ? len : block_edge(u, len, block * (i + 1));
    if (e <= at) continue;
    b[n_blocks].in_lo = at;
    b[n_blocks].in_hi = e;
    n_blocks++;
    at = e;
  }
  text_job tj = {tok, u, b};
  pool_run(pool, n_blocks, job_text, &tj);
  int repaired = 0;
  size_t total = 0;
  for (size_t i = 0; i < n_blocks; i++) {
    if (b[i].failed) goto done;
    repaired |= b[i].repaired != NULL;
    total += b[i].len;
  }
  if (total >= 0xFFFFFFF0u) goto done;
  if (repaired) {
    if (!(pp->owned1 = malloc(total + 1))) goto done;
    for (size_t i = 0, at = 0; i < n_blocks; i++) {
      parts[i].src = b[i].repaired ? b[i].repaired : in + b[i].in_lo;
      parts[i].n = b[i].len;
      parts[i].dst = at;
      if (b[i].map.n &&
          lopt_map_append(&pp->map_repair, &b[i].map, (uint32_t)at, (uint32_t)b[i].in_lo) < 0)
        goto done;
      at += b[i].len;
    }
    concat_job cj = {parts, pp->owned1};
    pool_run(pool, n_blocks, job_concat, &cj);
    pp->owned1[total] = 0;
    pp->text = pp->owned1;
    pp->len = total;
  }
  for (size_t i = 0, at = 0; i < n_blocks; i++) {
    for (size_t k = 0; k < b[i].cands.n; k++)
      if (lopt_u32vec_push(&cand, (uint32_t)at + b[i].cands.v[k]) < 0) goto done;
    at += b[i].len;
  }
  if (lopt_split_added_cand(tok, (const unsigned char *)pp->text, (uint32_t)pp->len, cand.v,
                            cand.n, &pp->pieces) < 0)
    goto done;
  rc = 0;
  for (size_t i = 0; i < n_blocks; i++) rc |= b[i].nfc_maybe ? 2 : 0; /* NFC work to do */
done:
  if (b)
    for (size_t i = 0; i < nb; i++) lopt_text_block_free(&b[i]);
  free(b);
  free(parts);
  free(cand.v);
  return rc;
}

/* Step 4. */
static int prepare_nfc(int form, kf_lopt_pool *pool, size_t block, lopt_prepared *pp) {
  const unsigned char *s = (const unsigned char *)pp->text;
  size_t n = pp->len, nb = (n + block - 1) / block;
  lopt_nfc_block *b = calloc(nb, sizeof *b);
  copy_part *parts = calloc(nb, sizeof *parts);
  uint32_t *new_start = malloc((pp->pieces.n + 1) * sizeof *new_start);
  int rc = -1;
  if (!b || !parts || !new_start) goto done;
  size_t n_blocks = 0;
  for (size_t i = 0, at = 0; i < nb && at < n; i++) {
    size_t e = n;
    if (i + 1 < nb) {
      e = lopt_nfc_cut(form, s, n, block * (i + 1));
      size_t pi = lopt_find_piece(&pp->pieces, (uint32_t)e);
      if (pi < pp->pieces.n && pp->pieces.p[pi].added >= 0 && pp->pieces.p[pi].start < e)
        e = pp->pieces.p[pi].end; /* piece edges are cuts too; stay out of added tokens */
    }
    if (e <= at) continue;
    b[n_blocks].lo = (uint32_t)at;
    b[n_blocks].hi = (uint32_t)e;
    n_blocks++;
    at = e;
  }
  nfc_job nj = {form, s, &pp->pieces, b, new_start};
  pool_run(pool, n_blocks, job_nfc, &nj);
  size_t total = 0;
  for (size_t i = 0; i < n_blocks; i++) {
    if (b[i].failed) goto done;
    total += b[i].len;
  }
  if (total >= 0xFFFFFFF0u || !(pp->owned2 = malloc(total + 1))) goto done;
  lopt_map_free(&pp->map_nfc);
  size_t pi = 0;
  for (size_t i = 0, at = 0; i < n_blocks; i++) {
    parts[i].src = b[i].buf;
    parts[i].n = b[i].len;
    parts[i].dst = at;
    if (b[i].map.n && lopt_map_append(&pp->map_nfc, &b[i].map, (uint32_t)at, 0) < 0) goto done;
    for (; pi < pp->pieces.n && pp->pieces.p[pi].start < b[i].hi; pi++)
      new_start[pi] += (uint32_t)at;
    at += b[i].len;
  }
  concat_job cj = {parts, pp->owned2};
  pool_run(pool, n_blocks, job_concat, &cj);
  pp->owned2[total] = 0;
  for (size_t i = 0; i < pp->pieces.n; i++) {
    pp->pieces.p[i].start = new_start[i];
    pp->pieces.p[i].end = i + 1 < pp->pieces.n ? new_start[i + 1] : (uint32_t)total;
  }
  pp->text = pp->owned2;
  pp->len = total;
  rc = 0;
done:
  if (b)
    for (size_t i = 0; i < nb; i++) {
      free(b[i].buf);
      lopt_map_free(&b[i].map);
    }
  free(b);
  free(parts);
  free(new_start);
  return rc;
}

kf_lopt_status lopt_prepare_parallel(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                     const char *in, size_t len, size_t block,
                                     lopt_prepared *pp, kf_lopt_error *err) {
  memset(pp, 0, sizeof *pp);
  if (len >= 0xFFFFFF00u / 3)
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "input of %zu bytes is too long (limit 1.4 GB)",
                        len);
  if (block == 0) block = 1;
  pp->text = in ? in : "";
  pp->len = len;
  int rc = prepare_split(tok, pool, pp->text, len, block, pp);
  if (rc >= 0 && tok->nfc && (rc & 2) && prepare_nfc(tok->nfc, pool, block, pp) < 0) rc = -1;
  if (rc >= 0 && lopt_split_normalized(tok, pp) < 0) rc = -1;
  if (rc < 0) {
    lopt_prepared_free(pp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory preparing %zu bytes of text", len);
  }
  return KF_LOPT_OK;
}

/* ---------------------------------------------------------------- LoPT */

typedef struct lopt_item {
  lopt_chunk c;
  uint32_t from;       /* range start (a cut) */
  uint32_t ext;        /* range end: next cut, plus the overlap if that cut is inside text */
  uint32_t sync;       /* tokens are those of the full text from here on */
  size_t keep_lo, keep_hi;
  int alive;
  double cpu;          /* thread CPU seconds spent on the first-round tokenization */
  int worker;          /* which worker did it */
} lopt_item;

/* Chunk scheduling: the text is split into one region per thread, each a run of consecutive
 * chunks. A worker takes the chunks of its region front to back, and when they are gone it takes
 * the last chunk of the region with the most bytes left. Each word cache then mostly sees one
 * contiguous part of the text (text has topic locality: with chunks dealt out in turn, both
 * caches learn nearly all words and the BPE work on cache misses doubles), while stealing small
 * tail chunks still balances the load. */
typedef struct lopt_job {
  const kf_lopt_tokenizer *tok;
  const lopt_prepared *pp;
  lopt_item *items;
  lopt_scratch **scratch;
  pthread_mutex_t mu;
  size_t *front, *back; /* per region: its items not taken yet are [front, back) */
  size_t n_regions;
} lopt_job;

static void encode_item(lopt_job *j, size_t i, int worker) {
  if (!j->scratch[worker]) j->scratch[worker] = lopt_scratch_new(j->tok);
  lopt_item *it = &j->items[i];
  /* Work on a copy: neighbouring items share cache lines, and the token count is written for
   * every token (false sharing with the other worker's item doubled the chunk CPU time). */
  lopt_chunk c = it->c;
  double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
  if (!j->scratch[worker] ||
      lopt_encode_range(j->tok, j->scratch[worker], j->pp, it->from, it->ext, &c) < 0)
    c.failed = 1;
  it->c = c;
  it->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
  it->worker = worker;
}

static void job_encode(void *varg, size_t region, int worker) {
  lopt_job *j = varg;
  for (;;) {
    size_t i = SIZE_MAX;
    pthread_mutex_lock(&j->mu);
    if (j->front[region] < j->back[region]) {
      i = j->front[region]++;
    } else {
      size_t best = 0, br = 0;
      for (size_t r = 0; r < j->n_regions; r++) {
        if (j->front[r] >= j->back[r]) continue;
        size_t left = j->items[j->back[r] - 1].ext - j->items[j->front[r]].from + 1;
        if (left > best) {
          best = left;
          br = r;
        }
      }
      if (best) i = --j->back[br];
    }
    pthread_mutex_unlock(&j->mu);
    if (i == SIZE_MAX) return;
    encode_item(j, i, worker);
  }
}

/* Output copy in pieces of at most COPY_PIECE tokens, so the threads share it evenly. */
enum { COPY_PIECE = 1 << 18 };

typedef struct copy_piece {
  size_t item, src, dst, n;
} copy_piece;

typedef struct copy_job {
  const lopt_item *items;
  const copy_piece *pieces;
  kf_lopt_tokens *out;
} copy_job;

static void job_copy(void *varg, size_t i, int worker) {
  (void)worker;
  copy_job *j = varg;
  const copy_piece *c = &j->pieces[i];
  const kf_lopt_tokens *t = &j->items[c->item].c.toks;
  memcpy(j->out->ids + c->dst, t->ids + c->src, c->n * sizeof *t->ids);
  memcpy(j->out->start + c->dst, t->start + c->src, c->n * sizeof *t->start);
  memcpy(j->out->end + c->dst, t->end + c->src, c->n * sizeof *t->end);
}

static uint64_t rng_next(uint64_t *s) {
  *s += 0x9E3779B97F4A7C15ull;
  uint64_t z = *s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct cut_plan {
  uint32_t *pos;
  uint8_t *inside; /* 1 if the cut lies inside a text piece (needs an overlap join) */
  size_t n;
} cut_plan;

/* Cuts every ~chunk bytes (or random lengths when seeded; or, with guided > 0, in each of the
 * `guided` equal regions chunks of half of what is left of the region, down to `chunk` bytes:
 * long chunks first, short ones at a region's end for other threads to take), moved to a UTF-8
 * character start and out of added tokens. */
static int plan_cuts(const lopt_prepared *pp, size_t chunk, uint64_t seed, int guided,
                     cut_plan *cp) {
  size_t n = pp->len;
  size_t max_cuts = n / (chunk / 4 + 1) + 2;
  cp->pos = malloc(max_cuts * sizeof *cp->pos);
  cp->inside = malloc(max_cuts);
  cp->n = 0;
  if (!cp->pos || !cp->inside) return -1;
  const unsigned char *t = (const unsigned char *)pp->text;
  uint64_t rs = seed;
  size_t x = 0;
  for (;;) {
    size_t step = chunk;
    if (seed) step = chunk / 4 + (size_t)(rng_next(&rs) % (chunk * 2 - chunk / 4 + 1));
    else if (guided) {
      uint64_t r = (uint64_t)x * (uint64_t)guided / n; /* region of x */
      size_t re = (size_t)((uint64_t)n * (r + 1) / (uint64_t)guided);
      size_t left = re > x ? re - x : 1;
      step = left <= 2 * chunk ? left : left / 2;
    }
    if (step == 0) step = 1;
    x += step;
    if (x >= n) break;
    while (x < n && (t[x] & 0xC0) == 0x80) x++;
    if (x >= n) break;
    size_t pi = lopt_find_piece(&pp->pieces, (uint32_t)x);
    int inside = 0;
    if (pi < pp->pieces.n && pp->pieces.p[pi].start < x) {
      if (pp->pieces.p[pi].added >= 0) x = pp->pieces.p[pi].end;
      else inside = 1;
    }
    if (x >= n) break;
    if (cp->n && cp->pos[cp->n - 1] >= x) continue;
    if (cp->n == max_cuts) break;
    cp->pos[cp->n] = (uint32_t)x;
    cp->inside[cp->n] = (uint8_t)inside;
    cp->n++;
  }
  return 0;
}

/* Overlap end for a cut inside a text piece. */
static uint32_t ext_end(const lopt_prepared *pp, uint32_t cut, size_t overlap) {
  size_t pi = lopt_find_piece(&pp->pieces, cut);
  uint32_t pe = pp->pieces.p[pi].end;
  uint64_t e = (uint64_t)cut + overlap;
  const unsigned char *t = (const unsigned char *)pp->text;
  if (e >= pe) return pe;
  while (e < pe && (t[e] & 0xC0) == 0x80) e++;
  return (uint32_t)e;
}

/* Index of the first segment of c starting at or after pos. */
static size_t seg_lower(const lopt_chunk *c, uint32_t pos) {
  size_t lo = 0, hi = c->n_seg;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c->seg_pos[mid] < pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Join point of L and R at or after `from`: a position where L (exact before L.frontier) and R
 * both start a segment, so both put the same token (start, end, id) there and everything before it
 * comes from L and from it on from R. Returns 1 and the indices if found. */
static int find_join(const lopt_chunk *L, const lopt_chunk *R, uint32_t from, uint32_t *p,
                     size_t *tok_l, size_t *tok_r) {
  size_t i = seg_lower(L, from), j = seg_lower(R, from);
  for (;;) {
    uint32_t pl;
    int l_end = 0;
    if (i < L->n_seg && L->seg_pos[i] < L->frontier) pl = L->seg_pos[i];
    else {
      pl = L->frontier; /* the frontier itself is a segment start of the full text */
      l_end = 1;
      if (pl < from) return 0;
    }
    while (j < R->n_seg && R->seg_pos[j] < pl) j++;
    if (j >= R->n_seg || R->seg_pos[j] >= R->frontier) return 0;
    if (R->seg_pos[j] == pl) {
      *p = pl;
      *tok_l = l_end ? L->toks.n : L->seg_tok[i];
      *tok_r = R->seg_tok[j];
      return 1;
    }
    if (l_end) return 0;
    i++;
  }
}

/* Last segment start of L at or before pos that is exact and not before L's sync point; L's
 * tokens from there can be recomputed without touching what precedes. */
static size_t restart_seg(const lopt_item *L, uint32_t pos, uint32_t *where) {
  size_t k = seg_lower(&L->c, pos + 1);
  while (k > 0) {
    uint32_t sp = L->c.seg_pos[k - 1];
    if (sp < L->sync) break;
    if (sp < L->c.frontier && sp <= pos) {
      *where = sp;
      return k - 1;
    }
    k--;
  }
  *where = L->sync;
  return seg_lower(&L->c, L->sync);
}

/* Record segments of `it` only within `window` bytes after its start and before its right cut
 * (UINT32_MAX for the last chunk): its joins look nowhere else (a join point lies between a cut
 * and the left chunk's widest overlap; a retry restarts at a segment shortly before the cut, or
 * at the chunk's sync point, which is a recorded segment in the start window). */
static void seg_window(lopt_item *it, uint32_t right_cut, uint64_t window) {
  uint64_t skip_from = it->from + window;
  uint64_t skip_to = right_cut == UINT32_MAX ? UINT32_MAX
                     : right_cut > window    ? right_cut - window
                                             : 0;
  it->c.seg_skip_from = skip_from < skip_to ? (uint32_t)skip_from : 0;
  it->c.seg_skip_to = skip_from < skip_to ? (uint32_t)skip_to : 0;
}

/* Give LoPT items the pool's kept chunk buffers (the pool keeps none meanwhile). */
static void spares_take(kf_lopt_pool *p, lopt_item *items, size_t m) {
  if (!p) return;
  size_t k = 0;
  for (; k < m && k < p->n_spare; k++) {
    items[k].c = p->spare[k];
    memset(&p->spare[k], 0, sizeof p->spare[k]);
  }
}

/* Keep the items' chunk buffers in the pool for the next call (freed if that fails). */
static void spares_keep(kf_lopt_pool *p, lopt_item *items, size_t m) {
  if (p && m > p->n_spare) {
    lopt_chunk *g = realloc(p->spare, m * sizeof *g);
    if (g) {
      memset(g + p->n_spare, 0, (m - p->n_spare) * sizeof *g);
      p->spare = g;
      p->n_spare = m;
    }
  }
  for (size_t k = 0; k < m; k++) {
    if (p && k < p->n_spare && !p->spare[k].toks.ids && !p->spare[k].seg_pos) {
      lopt_chunk_reset(&items[k].c);
      p->spare[k] = items[k].c;
      memset(&items[k].c, 0, sizeof items[k].c);
    } else {
      lopt_chunk_free(&items[k].c);
    }
  }
}

kf_lopt_status kf_lopt_encode_parallel(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                       const char *text, size_t len,
                                       const kf_lopt_par_opts *opts, kf_lopt_tokens *out,
                                       kf_lopt_par_stats *stats, kf_lopt_error *err) {
  if (!tok || !out || (!text && len))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_encode_parallel: NULL argument");
  if (tok->generic) { /* the general pipeline is sequential */
    if (stats) memset(stats, 0, sizeof *stats);
    return lopt_generic_encode(tok, text, len, out, err);
  }
  kf_lopt_par_opts o = {0};
  if (opts) o = *opts;
  int guided = o.chunks_per_thread <= 0 && o.chunk_bytes == 0 && o.seed == 0;
  if (o.min_chunk_bytes == 0) o.min_chunk_bytes = 16 * 1024;
  if (o.overlap_bytes == 0) o.overlap_bytes = 256;
  if (o.max_rounds <= 0) o.max_rounds = 6;
  kf_lopt_par_stats st = {0};
  int threads = kf_lopt_pool_threads(pool);

  double w0 = clock_s(CLOCK_MONOTONIC);
  lopt_prepared pp;
  kf_lopt_status rc;
  size_t block = o.prepare_block_bytes;
  if (threads > 1 && (block || len >= PAR_PREPARE_MIN)) {
    if (!block) { /* threads * 4 blocks or more, at most PAR_PREPARE_BLOCK bytes each */
      block = len / ((size_t)threads * 4) + 1;
      if (block > PAR_PREPARE_BLOCK) block = PAR_PREPARE_BLOCK;
    }
    rc = lopt_prepare_parallel(tok, pool, text, len, block, &pp, err);
  } else {
    rc = lopt_prepare(tok, text, len, 0, 0, &pp, err);
  }
  if (rc) return rc;
  size_t n = pp.len;
  double w1 = clock_s(CLOCK_MONOTONIC);
  size_t chunk = o.chunk_bytes;
  if (!chunk && guided && threads == 1) {
    chunk = n; /* one worker: one chunk */
  } else if (!chunk && guided) {
    chunk = o.min_chunk_bytes; /* the shortest chunk; the first ones are len / (2 threads) */
  } else if (!chunk) {
    size_t n_chunks = (size_t)threads * (size_t)(o.chunks_per_thread > 0 ? o.chunks_per_thread : 4);
    chunk = (n + n_chunks - 1) / n_chunks;
    if (chunk < o.min_chunk_bytes) chunk = o.min_chunk_bytes;
  }
  cut_plan cp = {0};
  if (tok->parallel_safe && n > chunk &&
      plan_cuts(&pp, chunk, o.seed, guided ? threads : 0, &cp) < 0) {
    free(cp.pos);
    free(cp.inside);
    lopt_prepared_free(&pp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory planning chunks");
  }
  size_t m = cp.n + 1;
  lopt_item *items = calloc(m, sizeof *items);
  lopt_scratch **scratch = calloc((size_t)threads, sizeof *scratch);
  lopt_job job = {.tok = tok, .pp = &pp, .items = items, .scratch = scratch};
  if (!items || !scratch) goto nomem;
  spares_take(pool, items, m);
  /* The first chunk's tokens begin the output: it writes them straight into out's arrays
   * (reusing their capacity; room for len + 1 tokens is address space, touched as written), so
   * only the other chunks' tokens are copied. */
  kf_lopt_tokens_free(&items[0].c.toks);
  items[0].c.toks = *out;
  items[0].c.toks.n = 0;
  memset(out, 0, sizeof *out);
  items[0].c.huge_pages = 1;
  (void)lopt_tokens_reserve_exact(&items[0].c.toks, n + 1, 1);
  /* Joins look at segments (pre-token starts) only within the widest overlap of a chunk's left
   * end and near its right cut; the others are not recorded. */
  int shift = o.max_rounds < 40 ? o.max_rounds : 40;
  uint64_t window = ((uint64_t)o.overlap_bytes << shift) + 8;
  if (window > (uint64_t)n + 8) window = (uint64_t)n + 8;
  for (size_t k = 0; k < m; k++) {
    items[k].from = k ? cp.pos[k - 1] : 0;
    items[k].sync = items[k].from;
    items[k].alive = 1;
    if (k < cp.n)
      items[k].ext = cp.inside[k] ? ext_end(&pp, cp.pos[k], o.overlap_bytes) : cp.pos[k];
    else
      items[k].ext = (uint32_t)n;
    seg_window(&items[k], k < cp.n ? cp.pos[k] : UINT32_MAX, window);
  }
  st.n_chunks = m;
  size_t n_regions = (size_t)threads;
  size_t *qb = calloc(2 * n_regions, sizeof *qb);
  if (!qb) goto nomem;
  job.front = qb;
  job.back = qb + n_regions;
  job.n_regions = n_regions;
  for (size_t k = 0, r = 0; r < n_regions; r++) { /* region r: items starting in its part */
    job.front[r] = k;
    uint64_t end = (uint64_t)n * (r + 1) / n_regions;
    while (k < m && (r + 1 == n_regions || items[k].from < end)) k++;
    job.back[r] = k;
  }
  pthread_mutex_init(&job.mu, NULL);
  pool_run(pool, n_regions, job_encode, &job);
  pthread_mutex_destroy(&job.mu);
  free(qb);
  double w2 = clock_s(CLOCK_MONOTONIC);
  for (int w = 0; w < threads; w++) {
    double sum = 0;
    for (size_t k = 0; k < m; k++)
      if (items[k].worker == w) sum += items[k].cpu;
    if (sum > st.cpu_worker_max) st.cpu_worker_max = sum;
  }
  for (size_t k = 0; k < m; k++) {
    if (items[k].c.failed) goto nomem;
    st.cpu_chunk_sum += items[k].cpu;
  }
  if (!scratch[0] && !(scratch[0] = lopt_scratch_new(tok))) goto nomem;

  /* join neighbours left to right */
  size_t left = 0;
  items[0].keep_lo = 0;
  for (size_t k = 1; k < m; k++) {
    lopt_item *L = &items[left], *R = &items[k];
    uint32_t cut = cp.pos[k - 1];
    if (!cp.inside[k - 1]) {
      L->keep_hi = L->c.toks.n;
      R->keep_lo = 0;
      st.n_cuts_clean++;
      left = k;
      continue;
    }
    size_t overlap = o.overlap_bytes;
    int joined = 0;
    for (int round = 0;; round++) {
      uint32_t p;
      size_t tl, tr;
      uint32_t from = cut > L->sync ? cut : L->sync;
      if (find_join(&L->c, &R->c, from, &p, &tl, &tr)) {
        L->keep_hi = tl;
        R->keep_lo = tr;
        R->sync = p;
        joined = 1;
        if (round == 0) st.n_cuts_matched++;
        break;
      }
      /* widen L's overlap, unless it can no longer help */
      uint32_t next_ext = ext_end(&pp, cut, overlap * 2);
      if (round >= o.max_rounds || next_ext <= L->ext || L->ext >= R->c.frontier) break;
      overlap *= 2;
      uint32_t s0;
      size_t k0 = restart_seg(L, cut, &s0);
      lopt_chunk_truncate(&L->c, k0);
      L->ext = next_ext;
      if (lopt_encode_range(tok, scratch[0], &pp, s0, L->ext, &L->c) < 0) goto nomem;
      st.n_retries++;
    }
    if (joined) {
      left = k;
      continue;
    }
    /* sequential fallback: L takes over R's whole range (and its right end's segments) */
    uint32_t s0;
    size_t k0 = restart_seg(L, cut, &s0);
    lopt_chunk_truncate(&L->c, k0);
    L->ext = R->ext;
    seg_window(L, k < cp.n ? cp.pos[k] : UINT32_MAX, window);
    if (lopt_encode_range(tok, scratch[0], &pp, s0, L->ext, &L->c) < 0) goto nomem;
    R->alive = 0;
    st.n_fallbacks++;
    /* L is still the left item for the next cut */
  }
  items[left].keep_hi = items[left].c.toks.n;

  size_t total = 0, n_pieces = 0;
  for (size_t k = 0; k < m; k++)
    if (items[k].alive && items[k].keep_hi > items[k].keep_lo) {
      total += items[k].keep_hi - items[k].keep_lo;
      if (k) n_pieces += (items[k].keep_hi - items[k].keep_lo + COPY_PIECE - 1) / COPY_PIECE;
    }
  *out = items[0].c.toks; /* item 0 is never dropped and keeps its tokens from 0 */
  memset(&items[0].c.toks, 0, sizeof items[0].c.toks);
  out->n = items[0].keep_hi;
  if (lopt_tokens_reserve(out, total + 1, 1) < 0) goto nomem;
  copy_piece *pieces = malloc((n_pieces + 1) * sizeof *pieces);
  if (!pieces) goto nomem;
  n_pieces = 0;
  for (size_t k = 1, at = out->n; k < m; k++) {
    if (!items[k].alive) continue;
    for (size_t a = items[k].keep_lo; a < items[k].keep_hi; a += COPY_PIECE) {
      size_t c = items[k].keep_hi - a < COPY_PIECE ? items[k].keep_hi - a : COPY_PIECE;
      pieces[n_pieces++] = (copy_piece){k, a, at, c};
      at += c;
    }
  }
  copy_job cj = {items, pieces, out};
  pool_run(pool, n_pieces, job_copy, &cj);
  free(pieces);
  out->n = total;
  map_offsets(&pp, out);
  st.t_prepare = w1 - w0;
  st.t_chunks = w2 - w1;
  spares_keep(pool, items, m);
  for (int w = 0; w < threads; w++) lopt_scratch_free(scratch[w]);
  free(items);
  free(scratch);
  free(cp.pos);
  free(cp.inside);
  lopt_prepared_free(&pp);
  st.t_join = clock_s(CLOCK_MONOTONIC) - w2;
  if (stats) *stats = st;
  return KF_LOPT_OK;
nomem:
  if (items)
    for (size_t k = 0; k < m; k++) lopt_chunk_free(&items[k].c);
  if (scratch)
    for (int w = 0; w < threads; w++) lopt_scratch_free(scratch[w]);
  free(items);
  free(scratch);
  free(cp.pos);
  free(cp.inside);
  lopt_prepared_free(&pp);
  return kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_encode_parallel: out of memory (%zu bytes)",
                      len);
}

/* ---------------------------------------------------------------- naive split */

typedef struct naive_job {
  const kf_lopt_tokenizer *tok;
  const char *text;
  size_t *cut; /* n + 1 boundaries */
  kf_lopt_tokens *parts;
  kf_lopt_status *status;
  kf_lopt_error *errs;
} naive_job;

static void job_naive(void *varg, size_t i, int worker) {
  (void)worker;
  naive_job *j = varg;
  j->status[i] = encode_seq(j->tok, j->text + j->cut[i], j->cut[i + 1] - j->cut[i],
                            &j->parts[i], 0, &j->errs[i]);
}

kf_lopt_status kf_lopt_encode_naive(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                    const char *text, size_t len, const kf_lopt_par_opts *opts,
                                    kf_lopt_tokens *out, kf_lopt_error *err) {
  if (!tok || !out || (!text && len))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_encode_naive: NULL argument");
  int cpt = opts && opts->chunks_per_thread > 0 ? opts->chunks_per_thread : 1;
  size_t k = (size_t)kf_lopt_pool_threads(pool) * (size_t)cpt;
  if (opts && opts->chunk_bytes) k = len / opts->chunk_bytes + 1;
  if (k < 1) k = 1;
  size_t *cut = malloc((k + 1) * sizeof *cut);
  kf_lopt_tokens *parts = calloc(k, sizeof *parts);
  kf_lopt_status *status = calloc(k, sizeof *status);
  kf_lopt_error *errs = calloc(k, sizeof *errs);
  kf_lopt_status rc = KF_LOPT_OK;
  if (!cut || !parts || !status || !errs) {
    rc = kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_encode_naive: out of memory");
    goto done;
  }
  const unsigned char *t = (const unsigned char *)text;
  cut[0] = 0;
  for (size_t i = 1; i < k; i++) {
    size_t x = len / k * i;
    while (x < len && (t[x] & 0xC0) == 0x80) x++;
    cut[i] = x < cut[i - 1] ? cut[i - 1] : x;
  }
  cut[k] = len;
  naive_job j = {tok, text, cut, parts, status, errs};
  pool_run(pool, k, job_naive, &j);
  size_t total = 0;
  for (size_t i = 0; i < k; i++) {
    if (status[i]) {
      if (err) *err = errs[i];
      rc = status[i];
      goto done;
    }
    total += parts[i].n;
  }
  out->n = 0;
  if (lopt_tokens_reserve(out, total + 1, 1) < 0) {
    rc = kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_encode_naive: out of memory");
    goto done;
  }
  for (size_t i = 0; i < k; i++) {
    for (size_t q = 0; q < parts[i].n; q++) {
      out->ids[out->n] = parts[i].ids[q];
      out->start[out->n] = parts[i].start[q] + (uint32_t)cut[i];
      out->end[out->n] = parts[i].end[q] + (uint32_t)cut[i];
      out->n++;
    }
  }
done:
  if (parts)
    for (size_t i = 0; i < k; i++) kf_lopt_tokens_free(&parts[i]);
  free(parts);
  free(cut);
  free(status);
  free(errs);
  return rc;
}

size_t kf_lopt_tokens_diff(const kf_lopt_tokens *a, const kf_lopt_tokens *b) {
  size_t miss = 0, j = 0;
  for (size_t i = 0; i < a->n; i++) {
    while (j < b->n && b->start[j] < a->start[i]) j++;
    int found = 0;
    for (size_t q = j; q < b->n && b->start[q] == a->start[i]; q++)
      if (b->end[q] == a->end[i] && b->ids[q] == a->ids[i]) {
        found = 1;
        break;
      }
    miss += !found;
  }
  return miss;
}

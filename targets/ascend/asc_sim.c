/*
** asc_sim.c: programs (per-core instruction streams) and the discrete-event timing
** simulator of the Ascend model (see asc_sim.h for the rules it implements).
**
** Events: a pipe tries to start its next instruction (TRY), an instruction ends (END), a GM
** transfer's bytes start to move after its latency (FLOW), and a memory class of a die
** reaches its next transfer completion (MEM). Memory classes (HBM, L2 per die) serve their
** transfers at equal rates min(port cap, capacity / n); with equal rates, one "served bytes
** per transfer" counter per class and a heap of completion targets make every event O(log n).
*/
#include "asc_sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- programs ---- */

kf_asc_prog *kf_asc_prog_new(const kf_asc_machine *m) {
  kf_asc_prog *p = kf_xcalloc(1, sizeof *p);
  p->m = *m;
  int per_die = m->aic_per_die * (1 + m->aiv_per_aic);
  p->n_cores = m->n_dies * per_die;
  p->cores = kf_xcalloc((size_t)p->n_cores, sizeof *p->cores);
  for (int d = 0; d < m->n_dies; d++)
    for (int i = 0; i < per_die; i++) {
      kf_asc_core *c = &p->cores[d * per_die + i];
      c->die = d;
      if (i < m->aic_per_die) {
        c->kind = KF_ASC_AIC;
        c->group = i;
      } else {
        c->kind = KF_ASC_AIV;
        c->group = (i - m->aic_per_die) / m->aiv_per_aic;
      }
    }
  p->max_insts = 8 * 1000 * 1000;
  return p;
}

void kf_asc_prog_free(kf_asc_prog *p) {
  if (!p) return;
  for (int i = 0; i < p->n_cores; i++) kf_vec_free(&p->cores[i].prog);
  free(p->cores);
  for (size_t i = 0; i < p->labels.len; i++) free(p->labels.data[i]);
  kf_vec_free(&p->labels);
  kf_vec_free(&p->insts);
  kf_vec_free(&p->flags);
  kf_vec_free(&p->refs);
  free(p);
}

int kf_asc_core_aic(const kf_asc_prog *p, int die, int group) {
  return die * p->m.aic_per_die * (1 + p->m.aiv_per_aic) + group;
}

int kf_asc_core_aiv(const kf_asc_prog *p, int die, int group, int j) {
  return die * p->m.aic_per_die * (1 + p->m.aiv_per_aic) + p->m.aic_per_die + group * p->m.aiv_per_aic + j;
}

int kf_asc_label(kf_asc_prog *p, const char *name) {
  for (size_t i = 0; i < p->labels.len; i++)
    if (!strcmp(p->labels.data[i], name)) return (int)i;
  kf_vec_push(&p->labels, kf_xstrdup(name));
  return (int)p->labels.len - 1;
}

int32_t kf_asc_emit(kf_asc_prog *p, int core, int pipe, kf_asc_kind kind, int64_t cycles, int64_t bytes,
                    int label) {
  if ((int64_t)p->insts.len >= p->max_insts) return -1;
  kf_asc_inst in;
  memset(&in, 0, sizeof in);
  in.cycles = cycles < 0 ? 0 : cycles;
  in.bytes = bytes < 0 ? 0 : bytes;
  in.core = core;
  in.pipe = (uint8_t)pipe;
  in.kind = (uint8_t)kind;
  in.label = label;
  in.wait = in.set = -1;
  in.gm_obj = -1;
  kf_vec_push(&p->insts, in);
  int32_t id = (int32_t)p->insts.len - 1;
  kf_vec_push(&p->cores[core].prog, id);
  return id;
}

void kf_asc_gm(kf_asc_prog *p, int32_t inst, int gm_obj, int ws, int64_t off, int64_t rows, int64_t row_bytes,
               int64_t stride, int atomic) {
  if (inst < 0) return;
  kf_asc_inst *in = &p->insts.data[inst];
  in->gm_obj = gm_obj;
  in->ws = (uint8_t)(ws != 0);
  in->gm_off = off;
  in->gm_rows = (int32_t)(rows > 0 ? rows : 0);
  in->gm_row_bytes = row_bytes > 0 ? row_bytes : 0;
  in->gm_stride = stride;
  in->atomic = (uint8_t)(atomic != 0);
}

static void dep(kf_asc_prog *p, int32_t producer, int32_t consumer, int release) {
  if (producer < 0 || consumer < 0 || producer == consumer) return;
  const kf_asc_inst *a = &p->insts.data[producer], *b = &p->insts.data[consumer];
  if (a->core == b->core && a->pipe == b->pipe) return;
  /* the same edge twice adds nothing (but a data dependency outranks a buffer reuse) */
  for (int32_t r = b->wait; r >= 0; r = p->refs.data[r].next) {
    kf_asc_flag *g = &p->flags.data[p->refs.data[r].flag];
    if (g->producer == producer) {
      g->release &= release;
      return;
    }
  }
  kf_asc_flag f;
  f.latency = a->core == b->core ? p->m.flag_intra : p->m.flag_cross;
  f.producer = producer;
  f.consumer = consumer;
  f.release = release;
  kf_vec_push(&p->flags, f);
  int32_t fid = (int32_t)p->flags.len - 1;
  kf_asc_ref rs = {fid, a->set}, rw = {fid, b->wait};
  kf_vec_push(&p->refs, rs);
  p->insts.data[producer].set = (int32_t)p->refs.len - 1;
  kf_vec_push(&p->refs, rw);
  p->insts.data[consumer].wait = (int32_t)p->refs.len - 1;
}

void kf_asc_dep(kf_asc_prog *p, int32_t producer, int32_t consumer) { dep(p, producer, consumer, 0); }
void kf_asc_dep_reuse(kf_asc_prog *p, int32_t producer, int32_t consumer) { dep(p, producer, consumer, 1); }

/* ---- event heap ---- */

enum { EV_TRY, EV_END, EV_FLOW, EV_MEM };

typedef struct event {
  double t;
  uint64_t seq;
  int32_t type, a;
  uint32_t ver;
} event;

typedef struct evheap {
  KF_VEC(event) h;
  uint64_t seq;
} evheap;

static int ev_less(const event *x, const event *y) { return x->t < y->t || (x->t == y->t && x->seq < y->seq); }

static void ev_push(evheap *q, double t, int type, int a, uint32_t ver) {
  event e = {t, q->seq++, type, a, ver};
  kf_vec_push(&q->h, e);
  size_t i = q->h.len - 1;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!ev_less(&q->h.data[i], &q->h.data[up])) break;
    event tmp = q->h.data[i];
    q->h.data[i] = q->h.data[up];
    q->h.data[up] = tmp;
    i = up;
  }
}

static event ev_pop(evheap *q) {
  event top = q->h.data[0];
  q->h.data[0] = q->h.data[--q->h.len];
  size_t i = 0, n = q->h.len;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && ev_less(&q->h.data[l], &q->h.data[m])) m = l;
    if (r < n && ev_less(&q->h.data[r], &q->h.data[m])) m = r;
    if (m == i) break;
    event tmp = q->h.data[i];
    q->h.data[i] = q->h.data[m];
    q->h.data[m] = tmp;
    i = m;
  }
  return top;
}

/* ---- L2: LRU over lines, one per die ---- */

typedef struct lru {
  int64_t cap, n;        /* lines */
  uint64_t *key;         /* per node */
  uint32_t *sect;        /* per node: 32-byte sectors present */
  int32_t *prev, *next;  /* per node; head = most recent */
  int32_t head, tail, free_head;
  int32_t *slot;         /* open addressing: node id or -1 */
  uint64_t mask;
} lru;

static uint64_t hash64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static void lru_init(lru *c, int64_t cap) {
  memset(c, 0, sizeof *c);
  c->cap = cap > 0 ? cap : 0;
  size_t nn = (size_t)c->cap + 1;
  c->key = kf_xcalloc(nn, sizeof *c->key);
  c->sect = kf_xcalloc(nn, sizeof *c->sect);
  c->prev = kf_xcalloc(nn, sizeof *c->prev);
  c->next = kf_xcalloc(nn, sizeof *c->next);
  uint64_t size = 16;
  while (size < 2 * (uint64_t)nn) size *= 2;
  c->mask = size - 1;
  c->slot = kf_xmalloc(size * sizeof *c->slot);
  for (uint64_t i = 0; i < size; i++) c->slot[i] = -1;
  c->head = c->tail = -1;
  for (size_t i = 0; i < nn; i++) c->next[i] = (int32_t)i + 1 < (int32_t)nn ? (int32_t)i + 1 : -1;
  c->free_head = 0;
}

static void lru_free(lru *c) {
  free(c->key);
  free(c->sect);
  free(c->prev);
  free(c->next);
  free(c->slot);
}

static uint64_t lru_find_slot(const lru *c, uint64_t key) {
  uint64_t i = hash64(key) & c->mask;
  while (c->slot[i] >= 0 && c->key[c->slot[i]] != key) i = (i + 1) & c->mask;
  return i;
}

static void lru_unlink(lru *c, int32_t n) {
  if (c->prev[n] >= 0) c->next[c->prev[n]] = c->next[n];
  else c->head = c->next[n];
  if (c->next[n] >= 0) c->prev[c->next[n]] = c->prev[n];
  else c->tail = c->prev[n];
}

static void lru_push_front(lru *c, int32_t n) {
  c->prev[n] = -1;
  c->next[n] = c->head;
  if (c->head >= 0) c->prev[c->head] = n;
  c->head = n;
  if (c->tail < 0) c->tail = n;
}

static void lru_slot_delete(lru *c, uint64_t i) {
  for (uint64_t j = i;;) {
    j = (j + 1) & c->mask;
    if (c->slot[j] < 0) break;
    uint64_t k = hash64(c->key[c->slot[j]]) & c->mask;
    /* move slot j back to i unless its home k lies cyclically in (i, j] */
    int in_between = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (!in_between) {
      c->slot[i] = c->slot[j];
      i = j;
    }
  }
  c->slot[i] = -1;
}

static int popcount32(uint32_t x) { return __builtin_popcount(x); }

/* Touches sectors `mask` of a line: returns the sectors that were present (hits); the line
** becomes the most recent and holds them all afterwards. */
static uint32_t lru_touch(lru *c, uint64_t key, uint32_t mask) {
  if (c->cap == 0) return 0;
  uint64_t s = lru_find_slot(c, key);
  if (c->slot[s] >= 0) {
    int32_t n = c->slot[s];
    lru_unlink(c, n);
    lru_push_front(c, n);
    uint32_t hit = c->sect[n] & mask;
    c->sect[n] |= mask;
    return hit;
  }
  if (c->n == c->cap) { /* evict the least recent */
    int32_t old = c->tail;
    lru_unlink(c, old);
    lru_slot_delete(c, lru_find_slot(c, c->key[old]));
    c->next[old] = c->free_head;
    c->free_head = old;
    c->n--;
    s = lru_find_slot(c, key);
  }
  int32_t n = c->free_head;
  c->free_head = c->next[n];
  c->key[n] = key;
  c->sect[n] = mask;
  c->slot[s] = n;
  lru_push_front(c, n);
  c->n++;
  return 0;
}

/* ---- memory classes ---- */

typedef struct flowent {
  double target;
  int32_t inst;
} flowent;

typedef struct mclass {
  double cap_total, cap_flow;
  int n;
  double served, rate, last_t;
  uint32_t ver;
  KF_VEC(flowent) h;
} mclass;

static void fh_push(mclass *c, flowent e) {
  kf_vec_push(&c->h, e);
  size_t i = c->h.len - 1;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (c->h.data[up].target <= c->h.data[i].target) break;
    flowent t = c->h.data[i];
    c->h.data[i] = c->h.data[up];
    c->h.data[up] = t;
    i = up;
  }
}

static flowent fh_pop(mclass *c) {
  flowent top = c->h.data[0];
  c->h.data[0] = c->h.data[--c->h.len];
  size_t i = 0, n = c->h.len;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && c->h.data[l].target < c->h.data[m].target) m = l;
    if (r < n && c->h.data[r].target < c->h.data[m].target) m = r;
    if (m == i) break;
    flowent t = c->h.data[i];
    c->h.data[i] = c->h.data[m];
    c->h.data[m] = t;
    i = m;
  }
  return top;
}

/* ---- the simulation ---- */

typedef struct pipe_state {
  int32_t *q;
  int64_t n, next;
  int busy;
  double start, busy_cycles;
  double xwait_since, xwait; /* blocked on a flag from the other core kind */
} pipe_state;

typedef struct trace_ev {
  double start, end;
  int32_t core, label;
  uint8_t pipe;
} trace_ev;

typedef struct sim {
  kf_asc_prog *p;
  pipe_state *pipes;      /* n_cores * KF_ASC_N_PIPES */
  double *issue;          /* per instruction */
  double *set_time;       /* per flag, -1 until set */
  int32_t *waiting;       /* per flag: pipe waiting on it, or -1 */
  uint8_t *pending;       /* per instruction: flows in progress */
  mclass *mem;            /* n_dies * 3: [die][0 = HBM, 1 = L2 reads, 2 = L2 writes] */
  lru *l2;                /* per die */
  evheap ev;
  kf_asc_stats st;
  KF_VEC(trace_ev) trace;
  int64_t trace_max;
} sim;

#define EPS 1e-9

static void mem_advance(mclass *c, double now) {
  c->served += c->rate * (now - c->last_t);
  c->last_t = now;
}

static void mem_reschedule(sim *S, int ci, double now) {
  mclass *c = &S->mem[ci];
  c->rate = c->n ? fmin(c->cap_flow, c->cap_total / c->n) : 0;
  c->ver++;
  if (c->n) {
    double left = c->h.data[0].target - c->served;
    ev_push(&S->ev, now + (left > 0 ? left / c->rate : 0), EV_MEM, ci, c->ver);
  }
}

static void try_start(sim *S, int pi, double now);

static void end_inst(sim *S, int pi, double now) {
  pipe_state *ps = &S->pipes[pi];
  int32_t i = ps->q[ps->next];
  const kf_asc_inst *in = &S->p->insts.data[i];
  ps->busy_cycles += now - ps->start;
  if ((int64_t)S->trace.len < S->trace_max) {
    trace_ev t = {ps->start, now, in->core, in->label, in->pipe};
    kf_vec_push(&S->trace, t);
  }
  /* a GM transfer's last bytes land gm_latency after the pipe has issued them: the pipe is
  ** free for the next transfer (DMA requests are pipelined), its consumers wait */
  double done = now + (in->kind == KF_ASC_COMPUTE ? 0.0 : (double)S->p->m.gm_latency);
  for (int32_t r = in->set; r >= 0; r = S->p->refs.data[r].next) {
    int32_t f = S->p->refs.data[r].flag;
    double t = S->p->flags.data[f].release && S->p->m.store_release ? now : done;
    S->set_time[f] = t;
    if (S->waiting[f] >= 0) {
      ev_push(&S->ev, t + (double)S->p->flags.data[f].latency, EV_TRY, S->waiting[f], 0);
      S->waiting[f] = -1;
    }
  }
  ps->busy = 0;
  ps->next++;
  if (done > S->st.cycles) S->st.cycles = done;
  try_start(S, pi, now);
}

static void try_start(sim *S, int pi, double now) {
  pipe_state *ps = &S->pipes[pi];
  if (ps->busy || ps->next >= ps->n) return;
  int32_t i = ps->q[ps->next];
  const kf_asc_inst *in = &S->p->insts.data[i];
  if (S->issue[i] > now + EPS) {
    ev_push(&S->ev, S->issue[i], EV_TRY, pi, 0);
    return;
  }
  for (int32_t r = in->wait; r >= 0; r = S->p->refs.data[r].next) {
    int32_t f = S->p->refs.data[r].flag;
    double ready = S->set_time[f] + (double)S->p->flags.data[f].latency;
    if (S->set_time[f] < 0 || ready > now + EPS) {
      const kf_asc_inst *pr = &S->p->insts.data[S->p->flags.data[f].producer];
      if (S->p->cores[pr->core].kind != S->p->cores[in->core].kind && ps->xwait_since < 0) ps->xwait_since = now;
      if (S->set_time[f] < 0) S->waiting[f] = pi;
      else ev_push(&S->ev, ready, EV_TRY, pi, 0);
      return;
    }
  }
  if (ps->xwait_since >= 0) {
    ps->xwait += now - ps->xwait_since;
    ps->xwait_since = -1;
  }
  ps->busy = 1;
  ps->start = now;
  if (in->kind == KF_ASC_COMPUTE) ev_push(&S->ev, now + (double)in->cycles, EV_END, pi, 0);
  else ev_push(&S->ev, now + (double)in->cycles, EV_FLOW, i, 0);
}

/* A GM transfer's bytes start moving: split them into HBM and L2 parts. */
static void flow_start(sim *S, int32_t i, double now) {
  const kf_asc_inst *in = &S->p->insts.data[i];
  const kf_asc_machine *m = &S->p->m;
  int die = S->p->cores[in->core].die;
  double hbm = 0, l2 = 0;
  if (in->ws) {
    l2 = (double)in->bytes;
  } else if (in->bytes > 0) {
    /* sectors of the footprint rows; bytes are split between hits and misses in the
    ** proportion of the sectors (the footprint may round up to whole sectors) */
    int64_t line = m->l2_line, sec = 32, n_hit = 0, n_all = 0; /* sector bytes; line <= 1024 */
    int64_t rows = in->gm_rows > 0 ? in->gm_rows : 1, rb = in->gm_rows > 0 ? in->gm_row_bytes : in->bytes;
    for (int64_t r = 0; r < rows; r++) {
      int64_t lo = in->gm_off + r * in->gm_stride, hi = lo + rb;
      for (int64_t a = lo / line; a * line < hi; a++) {
        int64_t s = a * line > lo ? a * line : lo, e = (a + 1) * line < hi ? (a + 1) * line : hi;
        int64_t s0 = (s - a * line) / sec, s1 = (e - a * line + sec - 1) / sec;
        uint32_t mask = (uint32_t)(((uint64_t)1 << s1) - ((uint64_t)1 << s0));
        uint64_t key = ((uint64_t)(uint32_t)in->gm_obj << 40) ^ (uint64_t)a;
        uint32_t hit = lru_touch(&S->l2[die], key, mask);
        n_all += popcount32(mask);
        n_hit += in->kind == KF_ASC_WRITE ? 0 : popcount32(hit);
      }
    }
    double f = n_all ? (double)n_hit / (double)n_all : 0;
    l2 = (double)in->bytes * f;
    hbm = (double)in->bytes - l2;
  }
  if (in->kind == KF_ASC_READ) {
    S->st.hbm_read += hbm;
    S->st.l2_read += l2;
  } else {
    S->st.hbm_write += hbm;
    S->st.l2_write += l2;
  }
  double parts[2] = {hbm, l2};
  for (int c = 0; c < 2; c++) {
    if (parts[c] <= 0) continue;
    int ci = die * 3 + (c == 0 ? 0 : in->kind == KF_ASC_WRITE ? 2 : 1);
    mclass *mc = &S->mem[ci];
    mem_advance(mc, now);
    flowent fe = {mc->served + parts[c], i};
    fh_push(mc, fe);
    mc->n++;
    S->pending[i]++;
    mem_reschedule(S, ci, now);
  }
  if (!S->pending[i]) end_inst(S, in->core * KF_ASC_N_PIPES + in->pipe, now);
}

static void mem_event(sim *S, int ci, uint32_t ver, double now) {
  mclass *c = &S->mem[ci];
  if (ver != c->ver) return;
  mem_advance(c, now);
  while (c->h.len && c->h.data[0].target <= c->served + 1e-6 * (1 + c->served * 1e-9)) {
    flowent fe = fh_pop(c);
    c->n--;
    const kf_asc_inst *in = &S->p->insts.data[fe.inst];
    if (--S->pending[fe.inst] == 0) end_inst(S, in->core * KF_ASC_N_PIPES + in->pipe, now);
  }
  mem_reschedule(S, ci, now);
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static int write_trace(kf_ctx *ctx, sim *S, const kf_asc_trace_opts *o) {
  FILE *f = fopen(o->path, "w");
  if (!f) return kf_err(ctx, KF_EIO, "%s: cannot write the trace", o->path);
  const kf_asc_prog *p = S->p;
  double us = p->m.freq_hz / 1e6; /* cycles per microsecond */
  fprintf(f, "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"title\":");
  json_str(f, o->title ? o->title : "kforge ascend sim");
  fprintf(f, ",\"events_recorded\":%zu,\"events_limit\":%lld},\n\"traceEvents\":[\n", S->trace.len,
          (long long)S->trace_max);
  /* name the cores and pipes that appear */
  uint8_t *used = kf_xcalloc((size_t)p->n_cores * KF_ASC_N_PIPES, 1);
  for (size_t i = 0; i < S->trace.len; i++) used[S->trace.data[i].core * KF_ASC_N_PIPES + S->trace.data[i].pipe] = 1;
  int first = 1;
  for (int c = 0; c < p->n_cores; c++) {
    int any = 0;
    for (int q = 0; q < KF_ASC_N_PIPES; q++) any |= used[c * KF_ASC_N_PIPES + q];
    if (!any) continue;
    const kf_asc_core *core = &p->cores[c];
    int idx = core->kind == KF_ASC_AIC ? core->group
                                       : c - kf_asc_core_aiv(p, core->die, 0, 0);
    fprintf(f, "%s{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"args\":{\"name\":\"die%d %s %d\"}}", first ? "" : ",\n",
            c, core->die, core->kind == KF_ASC_AIC ? "AIC" : "AIV", idx);
    fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":%d,\"args\":{\"sort_index\":%d}}", c, c);
    first = 0;
    for (int q = 0; q < KF_ASC_N_PIPES; q++)
      if (used[c * KF_ASC_N_PIPES + q])
        fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}}", c, q,
                kf_asc_pipe_name(q));
  }
  free(used);
  for (size_t i = 0; i < S->trace.len; i++) {
    const trace_ev *t = &S->trace.data[i];
    fprintf(f, "%s{\"ph\":\"X\",\"name\":", first ? "" : ",\n");
    first = 0;
    json_str(f, p->labels.data[t->label]);
    fprintf(f, ",\"pid\":%d,\"tid\":%d,\"ts\":%.4f,\"dur\":%.4f}", t->core, t->pipe, t->start / us,
            (t->end - t->start) / us);
  }
  fprintf(f, "\n]}\n");
  int bad = ferror(f);
  if (fclose(f) || bad) return kf_err(ctx, KF_EIO, "%s: write failed", o->path);
  return KF_OK;
}

int kf_asc_simulate(kf_ctx *ctx, kf_asc_prog *p, const kf_asc_trace_opts *trace, kf_asc_stats *out) {
  memset(out, 0, sizeof *out);
  const kf_asc_machine *m = &p->m;
  size_t n_inst = p->insts.len, n_flags = p->flags.len;
  int n_pipes = p->n_cores * KF_ASC_N_PIPES;
  sim S;
  memset(&S, 0, sizeof S);
  S.p = p;
  S.pipes = kf_xcalloc((size_t)n_pipes, sizeof *S.pipes);
  S.issue = kf_xmalloc((n_inst ? n_inst : 1) * sizeof *S.issue);
  S.set_time = kf_xmalloc((n_flags ? n_flags : 1) * sizeof *S.set_time);
  S.waiting = kf_xmalloc((n_flags ? n_flags : 1) * sizeof *S.waiting);
  S.pending = kf_xcalloc(n_inst ? n_inst : 1, 1);
  for (size_t f = 0; f < n_flags; f++) {
    S.set_time[f] = -1;
    S.waiting[f] = -1;
  }
  S.trace_max = trace && trace->path ? (trace->max_events > 0 ? trace->max_events : 500000) : 0;
  /* per-pipe queues in program order; scalar issue times */
  for (int c = 0; c < p->n_cores; c++) {
    const kf_asc_core *core = &p->cores[c];
    for (size_t k = 0; k < core->prog.len; k++) {
      int32_t i = core->prog.data[k];
      S.issue[i] = (double)((int64_t)k * m->s_issue);
      S.pipes[c * KF_ASC_N_PIPES + p->insts.data[i].pipe].n++;
    }
  }
  for (int q = 0; q < n_pipes; q++) {
    S.pipes[q].q = kf_xmalloc((size_t)(S.pipes[q].n ? S.pipes[q].n : 1) * sizeof(int32_t));
    S.pipes[q].n = 0;
    S.pipes[q].xwait_since = -1;
  }
  for (int c = 0; c < p->n_cores; c++)
    for (size_t k = 0; k < p->cores[c].prog.len; k++) {
      int32_t i = p->cores[c].prog.data[k];
      pipe_state *ps = &S.pipes[c * KF_ASC_N_PIPES + p->insts.data[i].pipe];
      ps->q[ps->n++] = i;
    }
  S.mem = kf_xcalloc((size_t)m->n_dies * 3, sizeof *S.mem);
  S.l2 = kf_xcalloc((size_t)m->n_dies, sizeof *S.l2);
  for (int d = 0; d < m->n_dies; d++) {
    S.mem[3 * d].cap_total = m->hbm_bpc;
    S.mem[3 * d].cap_flow = m->core_hbm_bpc;
    S.mem[3 * d + 1].cap_total = m->l2_bpc;
    S.mem[3 * d + 1].cap_flow = m->core_l2_bpc;
    S.mem[3 * d + 2].cap_total = m->l2_write_bpc;
    S.mem[3 * d + 2].cap_flow = m->core_l2_write_bpc;
    lru_init(&S.l2[d], m->l2_bytes / m->l2_line);
  }
  for (int q = 0; q < n_pipes; q++) try_start(&S, q, 0.0);
  while (S.ev.h.len) {
    event e = ev_pop(&S.ev);
    switch (e.type) {
    case EV_TRY: try_start(&S, e.a, e.t); break;
    case EV_END: end_inst(&S, e.a, e.t); break;
    case EV_FLOW: flow_start(&S, e.a, e.t); break;
    case EV_MEM: mem_event(&S, e.a, e.ver, e.t); break;
    }
  }
  int rc = KF_OK;
  for (int q = 0; q < n_pipes && !rc; q++) {
    pipe_state *ps = &S.pipes[q];
    if (ps->next >= ps->n) continue;
    const kf_asc_inst *in = &p->insts.data[ps->q[ps->next]];
    const kf_asc_core *core = &p->cores[in->core];
    char why[256] = "no flag pending";
    for (int32_t r = in->wait; r >= 0; r = p->refs.data[r].next) {
      int32_t f = p->refs.data[r].flag;
      if (S.set_time[f] >= 0) continue;
      const kf_asc_inst *pr = &p->insts.data[p->flags.data[f].producer];
      snprintf(why, sizeof why, "its flag from core %d pipe %s ('%s') was never set", pr->core,
               kf_asc_pipe_name(pr->pipe), p->labels.data[pr->label]);
      break;
    }
    rc = kf_err(ctx, KF_EINVAL, "ascend sim: deadlock at cycle %.0f: core %d (%s, die %d group %d) pipe %s stops at '%s' (%lld of %lld done): %s",
                S.st.cycles, in->core, core->kind == KF_ASC_AIC ? "AIC" : "AIV", core->die, core->group,
                kf_asc_pipe_name(in->pipe), p->labels.data[in->label], (long long)ps->next, (long long)ps->n, why);
  }
  /* utilisation */
  double span = S.st.cycles > 0 ? S.st.cycles : 1;
  int count[2] = {0, 0};
  for (int c = 0; c < p->n_cores; c++) {
    int k = p->cores[c].kind;
    count[k]++;
    for (int q = 0; q < KF_ASC_N_PIPES; q++) {
      double b = q == KF_ASC_S ? fmin((double)p->cores[c].prog.len * (double)m->s_issue, span)
                               : S.pipes[c * KF_ASC_N_PIPES + q].busy_cycles;
      S.st.busy[k][q] += b / span;
      S.st.xwait[k][q] += S.pipes[c * KF_ASC_N_PIPES + q].xwait / span;
      if (b / span > S.st.busy_max[k][q]) S.st.busy_max[k][q] = b / span;
    }
  }
  for (int k = 0; k < 2; k++)
    for (int q = 0; q < KF_ASC_N_PIPES; q++) {
      S.st.busy[k][q] /= count[k] ? count[k] : 1;
      S.st.xwait[k][q] /= count[k] ? count[k] : 1;
    }
  S.st.n_inst = (int64_t)n_inst;
  S.st.n_flags = (int64_t)n_flags;
  *out = S.st;
  if (!rc && S.trace_max) rc = write_trace(ctx, &S, trace);
  for (int q = 0; q < n_pipes; q++) free(S.pipes[q].q);
  free(S.pipes);
  free(S.issue);
  free(S.set_time);
  free(S.waiting);
  free(S.pending);
  for (int d = 0; d < m->n_dies; d++) {
    for (int c = 0; c < 3; c++) kf_vec_free(&S.mem[3 * d + c].h);
    lru_free(&S.l2[d]);
  }
  free(S.mem);
  free(S.l2);
  kf_vec_free(&S.ev.h);
  kf_vec_free(&S.trace);
  return rc;
}

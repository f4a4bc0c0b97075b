/* kf_lopt model stage: hash maps, pre-tokenization (PCRE2), BPE merges, the per-thread word
 * cache, and tokenization of a text range with the exactness frontier LoPT needs. */
#define _GNU_SOURCE /* madvise, MADV_HUGEPAGE */
#include "kf_lopt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---------------------------------------------------------------- hashing */

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

uint64_t lopt_hash_bytes(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0x9FB21C651E98DF25ull;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = mix64(h ^ w ^ ((uint64_t)n << 56));
  return h ? h : 1;
}

/* ---------------------------------------------------------------- string map */

int lopt_strmap_init(lopt_strmap *m, size_t expect) {
  memset(m, 0, sizeof *m);
  size_t slots = 64;
  while (slots < expect * 2) slots *= 2;
  m->hash = calloc(slots, sizeof *m->hash);
  m->off = malloc(slots * sizeof *m->off);
  m->len = malloc(slots * sizeof *m->len);
  m->val = malloc(slots * sizeof *m->val);
  if (!m->hash || !m->off || !m->len || !m->val) {
    lopt_strmap_free(m);
    return -1;
  }
  m->mask = slots - 1;
  return 0;
}

void lopt_strmap_free(lopt_strmap *m) {
  free(m->hash);
  free(m->off);
  free(m->len);
  free(m->val);
  free(m->pool);
  memset(m, 0, sizeof *m);
}

static int strmap_grow(lopt_strmap *m) {
  lopt_strmap g;
  size_t slots = (m->mask + 1) * 2;
  memset(&g, 0, sizeof g);
  g.hash = calloc(slots, sizeof *g.hash);
  g.off = malloc(slots * sizeof *g.off);
  g.len = malloc(slots * sizeof *g.len);
  g.val = malloc(slots * sizeof *g.val);
  if (!g.hash || !g.off || !g.len || !g.val) {
    free(g.hash);
    free(g.off);
    free(g.len);
    free(g.val);
    return -1;
  }
  g.mask = slots - 1;
  for (size_t i = 0; i <= m->mask; i++) {
    if (!m->hash[i]) continue;
    size_t j = (size_t)m->hash[i] & g.mask;
    while (g.hash[j]) j = (j + 1) & g.mask;
    g.hash[j] = m->hash[i];
    g.off[j] = m->off[i];
    g.len[j] = m->len[i];
    g.val[j] = m->val[i];
  }
  free(m->hash);
  free(m->off);
  free(m->len);
  free(m->val);
  m->hash = g.hash;
  m->off = g.off;
  m->len = g.len;
  m->val = g.val;
  m->mask = g.mask;
  return 0;
}

int lopt_strmap_put(lopt_strmap *m, const char *key, size_t n, uint32_t val) {
  uint64_t h = lopt_hash_bytes(key, n);
  size_t i = (size_t)h & m->mask;
  while (m->hash[i]) {
    if (m->hash[i] == h && m->len[i] == n && memcmp(m->pool + m->off[i], key, n) == 0) {
      m->val[i] = val;
      return 0;
    }
    i = (i + 1) & m->mask;
  }
  if ((m->n + 1) * 2 > m->mask + 1) {
    if (strmap_grow(m) < 0) return -1;
    i = (size_t)h & m->mask;
    while (m->hash[i]) i = (i + 1) & m->mask;
  }
  if (m->pool_len + n + 1 > m->pool_cap) {
    size_t cap = m->pool_cap ? m->pool_cap : 4096;
    while (cap < m->pool_len + n + 1) cap *= 2;
    char *p = realloc(m->pool, cap);
    if (!p) return -1;
    m->pool = p;
    m->pool_cap = cap;
  }
  if (m->pool_len + n > 0xFFFFFFF0u) return -1;
  memcpy(m->pool + m->pool_len, key, n);
  m->hash[i] = h;
  m->off[i] = (uint32_t)m->pool_len;
  m->len[i] = (uint32_t)n;
  m->val[i] = val;
  m->pool_len += n;
  m->n++;
  return 0;
}

int lopt_strmap_get(const lopt_strmap *m, const char *key, size_t n, uint32_t *val) {
  uint64_t h = lopt_hash_bytes(key, n);
  size_t i = (size_t)h & m->mask;
  while (m->hash[i]) {
    if (m->hash[i] == h && m->len[i] == n && memcmp(m->pool + m->off[i], key, n) == 0) {
      *val = m->val[i];
      return 1;
    }
    i = (i + 1) & m->mask;
  }
  return 0;
}

/* ---------------------------------------------------------------- merge map */

int lopt_mergemap_init(lopt_mergemap *m, size_t expect) {
  size_t slots = 64;
  while (slots < expect * 2) slots *= 2;
  m->slot = calloc(slots, sizeof *m->slot);
  m->mask = slots - 1;
  m->n = 0;
  if (!m->slot) {
    lopt_mergemap_free(m);
    return -1;
  }
  return 0;
}

void lopt_mergemap_free(lopt_mergemap *m) {
  free(m->slot);
  memset(m, 0, sizeof *m);
}

/* Capacity is fixed at init (expect = number of merges), so this never grows. A repeated pair
 * keeps the later entry, as the reference's HashMap collect does. */
void lopt_mergemap_put(lopt_mergemap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t new_id) {
  uint64_t k = (((uint64_t)a << 32) | b) + 1;
  uint64_t h = k * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 20) & m->mask;
  while (m->slot[i].key && m->slot[i].key != k) i = (i + 1) & m->mask;
  if (!m->slot[i].key) m->n++;
  m->slot[i].key = k;
  m->slot[i].val = ((uint64_t)rank << 32) | new_id;
}

/* ---------------------------------------------------------------- scratch */

enum { CACHE_MAX_WORD = 255, CACHE_MAX_SLOTS = 1u << 20 };

struct lopt_scratch {
  pcre2_match_data *md;
  /* BPE symbols */
  uint32_t *sym_id, *sym_len;
  uint32_t *pair_rank, *pair_new; /* merge of (sym[i], sym[next[i]]): rank (or ~0) and result */
  int32_t *prev, *next;
  uint64_t *heap;
  size_t cap_sym, cap_heap;
  /* word output */
  uint32_t *w_id, *w_len;
  size_t w_n, w_cap;
  /* word cache: pre-token bytes -> tokens */
  uint64_t *c_hash;
  uint32_t *c_key, *c_val;
  uint16_t *c_klen, *c_n;
  size_t c_mask, c_used;
  char *c_kpool;
  size_t c_kpool_len, c_kpool_cap;
  uint32_t *c_vid;
  uint8_t *c_vlen;
  size_t c_vpool_len, c_vpool_cap;
};

lopt_scratch *lopt_scratch_new(const kf_lopt_tokenizer *tok) {
  lopt_scratch *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->md = tok->re ? pcre2_match_data_create_from_pattern(tok->re, NULL)
                  : pcre2_match_data_create(1, NULL);
  if (!s->md) {
    free(s);
    return NULL;
  }
  return s;
}

static void cache_free(lopt_scratch *s) {
  free(s->c_hash);
  free(s->c_key);
  free(s->c_val);
  free(s->c_klen);
  free(s->c_n);
  free(s->c_kpool);
  free(s->c_vid);
  free(s->c_vlen);
  s->c_hash = NULL;
  s->c_key = s->c_val = NULL;
  s->c_klen = s->c_n = NULL;
  s->c_kpool = NULL;
  s->c_vid = NULL;
  s->c_vlen = NULL;
  s->c_mask = s->c_used = s->c_kpool_len = s->c_kpool_cap = s->c_vpool_len = s->c_vpool_cap = 0;
}

void lopt_scratch_free(lopt_scratch *s) {
  if (!s) return;
  pcre2_match_data_free(s->md);
  free(s->sym_id);
  free(s->sym_len);
  free(s->pair_rank);
  free(s->pair_new);
  free(s->prev);
  free(s->next);
  free(s->heap);
  free(s->w_id);
  free(s->w_len);
  cache_free(s);
  free(s);
}

static int cache_alloc(lopt_scratch *s, size_t slots) {
  s->c_hash = calloc(slots, sizeof *s->c_hash);
  s->c_key = malloc(slots * sizeof *s->c_key);
  s->c_val = malloc(slots * sizeof *s->c_val);
  s->c_klen = malloc(slots * sizeof *s->c_klen);
  s->c_n = malloc(slots * sizeof *s->c_n);
  if (!s->c_hash || !s->c_key || !s->c_val || !s->c_klen || !s->c_n) return -1;
  s->c_mask = slots - 1;
  s->c_used = 0;
  return 0;
}

/* Look up a word; returns 1 and (ids, lens, n) if cached. */
static int cache_get(const lopt_scratch *s, uint64_t h, const unsigned char *w, size_t n,
                     const uint32_t **ids, const uint8_t **lens, size_t *nt) {
  if (!s->c_hash) return 0;
  size_t i = (size_t)h & s->c_mask;
  while (s->c_hash[i]) {
    if (s->c_hash[i] == h && s->c_klen[i] == n && memcmp(s->c_kpool + s->c_key[i], w, n) == 0) {
      *ids = s->c_vid + s->c_val[i];
      *lens = s->c_vlen + s->c_val[i];
      *nt = s->c_n[i];
      return 1;
    }
    i = (i + 1) & s->c_mask;
  }
  return 0;
}

/* Insert (best effort: on allocation failure the word is just not cached). */
static void cache_put(lopt_scratch *s, uint64_t h, const unsigned char *w, size_t n,
                      const uint32_t *ids, const uint32_t *lens, size_t nt) {
  if (nt > 0xFFFF) return;
  if (!s->c_hash) {
    if (cache_alloc(s, 4096) < 0) {
      cache_free(s);
      return;
    }
  } else if ((s->c_used + 1) * 2 > s->c_mask + 1) {
    size_t slots = s->c_mask + 1;
    if (slots >= CACHE_MAX_SLOTS) {
      /* full: start over (keeps memory bounded on text with endless new words) */
      memset(s->c_hash, 0, slots * sizeof *s->c_hash);
      s->c_used = 0;
      s->c_kpool_len = s->c_vpool_len = 0;
    } else {
      /* rehash into a table twice the size */
      uint64_t *oh = s->c_hash;
      uint32_t *ok = s->c_key, *ov = s->c_val;
      uint16_t *ol = s->c_klen, *on = s->c_n;
      size_t omask = s->c_mask;
      s->c_hash = NULL;
      if (cache_alloc(s, slots * 2) < 0) {
        free(oh);
        free(ok);
        free(ov);
        free(ol);
        free(on);
        cache_free(s);
        return;
      }
      for (size_t i = 0; i <= omask; i++) {
        if (!oh[i]) continue;
        size_t j = (size_t)oh[i] & s->c_mask;
        while (s->c_hash[j]) j = (j + 1) & s->c_mask;
        s->c_hash[j] = oh[i];
        s->c_key[j] = ok[i];
        s->c_val[j] = ov[i];
        s->c_klen[j] = ol[i];
        s->c_n[j] = on[i];
        s->c_used++;
      }
      free(oh);
      free(ok);
      free(ov);
      free(ol);
      free(on);
    }
  }
  if (s->c_kpool_len + n > s->c_kpool_cap) {
    size_t cap = s->c_kpool_cap ? s->c_kpool_cap * 2 : 65536;
    while (cap < s->c_kpool_len + n) cap *= 2;
    char *p = realloc(s->c_kpool, cap);
    if (!p) return;
    s->c_kpool = p;
    s->c_kpool_cap = cap;
  }
  if (s->c_vpool_len + nt > s->c_vpool_cap) {
    size_t cap = s->c_vpool_cap ? s->c_vpool_cap * 2 : 65536;
    while (cap < s->c_vpool_len + nt) cap *= 2;
    uint32_t *a = realloc(s->c_vid, cap * sizeof *a);
    if (!a) return;
    s->c_vid = a;
    uint8_t *b = realloc(s->c_vlen, cap);
    if (!b) return;
    s->c_vlen = b;
    s->c_vpool_cap = cap;
  }
  size_t i = (size_t)h & s->c_mask;
  while (s->c_hash[i]) i = (i + 1) & s->c_mask;
  memcpy(s->c_kpool + s->c_kpool_len, w, n);
  for (size_t k = 0; k < nt; k++) {
    s->c_vid[s->c_vpool_len + k] = ids[k];
    s->c_vlen[s->c_vpool_len + k] = (uint8_t)lens[k];
  }
  s->c_hash[i] = h;
  s->c_key[i] = (uint32_t)s->c_kpool_len;
  s->c_klen[i] = (uint16_t)n;
  s->c_val[i] = (uint32_t)s->c_vpool_len;
  s->c_n[i] = (uint16_t)nt;
  s->c_kpool_len += n;
  s->c_vpool_len += nt;
  s->c_used++;
}

/* ---------------------------------------------------------------- BPE */

static int sym_reserve(lopt_scratch *s, size_t n) {
  if (n <= s->cap_sym) return 0;
  size_t cap = s->cap_sym ? s->cap_sym : 256;
  while (cap < n) cap *= 2;
  uint32_t *a = realloc(s->sym_id, cap * sizeof *a);
  if (!a) return -1;
  s->sym_id = a;
  if (!(a = realloc(s->sym_len, cap * sizeof *a))) return -1;
  s->sym_len = a;
  if (!(a = realloc(s->pair_rank, cap * sizeof *a))) return -1;
  s->pair_rank = a;
  if (!(a = realloc(s->pair_new, cap * sizeof *a))) return -1;
  s->pair_new = a;
  int32_t *b = realloc(s->prev, cap * sizeof *b);
  if (!b) return -1;
  s->prev = b;
  if (!(b = realloc(s->next, cap * sizeof *b))) return -1;
  s->next = b;
  uint64_t *h = realloc(s->heap, cap * 2 * sizeof *h);
  if (!h) return -1;
  s->heap = h;
  s->cap_heap = cap * 2;
  s->cap_sym = cap;
  return 0;
}

/* Two parallel u32 arrays grown to cap elements (-1: out of memory, the arrays still valid). */
static int grow_u32_pair(uint32_t **x, uint32_t **y, size_t cap) {
  uint32_t *a = realloc(*x, cap * sizeof *a);
  if (!a) return -1;
  *x = a;
  if (!(a = realloc(*y, cap * sizeof *a))) return -1;
  *y = a;
  return 0;
}

static int wout_push(lopt_scratch *s, uint32_t id, uint32_t len) {
  if (s->w_n == s->w_cap) {
    size_t cap = s->w_cap ? s->w_cap * 2 : 256;
    if (grow_u32_pair(&s->w_id, &s->w_len, cap)) return -1;
    s->w_cap = cap;
  }
  s->w_id[s->w_n] = id;
  s->w_len[s->w_n] = len;
  s->w_n++;
  return 0;
}

/* Min-heap of (rank << 32 | pos): lowest rank first, then leftmost position, exactly the order in
 * which the reference's merge queue pops merges. */
static void heap_push(uint64_t *hp, size_t *n, uint64_t v) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (hp[p] <= v) break;
    hp[i] = hp[p];
    i = p;
  }
  hp[i] = v;
}

static uint64_t heap_pop(uint64_t *hp, size_t *n) {
  uint64_t top = hp[0], v = hp[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && hp[c + 1] < hp[c]) c++;
    if (hp[c] >= v) break;
    hp[i] = hp[c];
    i = c;
  }
  if (*n) hp[i] = v;
  return top;
}

/* Symbols the reference's merge_word starts from, for one model-space character (given by its
 * UTF-8 bytes ch[0..n)) covering byte_len input bytes. *unk_pending carries fuse state. */
static int add_initial(const kf_lopt_tokenizer *tok, lopt_scratch *s, size_t *m, int found,
                       uint32_t id, const char *ch, size_t n, uint32_t byte_len,
                       int64_t *unk_pending, uint32_t *unk_len) {
  if (found) {
    if (*unk_pending >= 0) {
      s->sym_id[*m] = (uint32_t)*unk_pending;
      s->sym_len[(*m)++] = *unk_len;
      *unk_pending = -1;
    }
    s->sym_id[*m] = id;
    s->sym_len[(*m)++] = byte_len;
    return 0;
  }
  if (tok->byte_fallback) {
    int all = 1;
    for (size_t k = 0; k < n; k++) all &= tok->fallback_has[(unsigned char)ch[k]];
    if (all) {
      if (sym_reserve(s, *m + n + 8) < 0) return -1;
      if (*unk_pending >= 0) {
        s->sym_id[*m] = (uint32_t)*unk_pending;
        s->sym_len[(*m)++] = *unk_len;
        *unk_pending = -1;
      }
      /* byte_len is spread one byte per fallback token, as the reference does */
      for (size_t k = 0; k < n; k++) {
        s->sym_id[*m] = tok->fallback_id[(unsigned char)ch[k]];
        s->sym_len[(*m)++] = 1;
      }
      return 0;
    }
  }
  if (tok->has_unk) {
    if (*unk_pending >= 0 && tok->fuse_unk) {
      *unk_len += byte_len;
    } else {
      if (*unk_pending >= 0) {
        s->sym_id[*m] = (uint32_t)*unk_pending;
        s->sym_len[(*m)++] = *unk_len;
      }
      *unk_pending = tok->unk_id;
      *unk_len = byte_len;
    }
  }
  /* else: the reference drops the character */
  return 0;
}

/* BPE of one pre-token w[0..n) into s->w_id / s->w_len (byte lengths). */
static int bpe_word(const kf_lopt_tokenizer *tok, lopt_scratch *s, const unsigned char *w,
                    size_t n) {
  s->w_n = 0;
  uint32_t id;
  if (tok->ignore_merges && lopt_strmap_get(&tok->vocab, (const char *)w, n, &id))
    return wout_push(s, id, (uint32_t)n);
  if (sym_reserve(s, n + 8) < 0) return -1;
  size_t m = 0;
  int64_t unk_pending = -1;
  uint32_t unk_len = 0;
  if (tok->byte_level) {
    for (size_t i = 0; i < n; i++) {
      unsigned char b = w[i];
      if (tok->byte_has[b]) {
        if (unk_pending >= 0) {
          s->sym_id[m] = (uint32_t)unk_pending;
          s->sym_len[m++] = unk_len;
          unk_pending = -1;
        }
        s->sym_id[m] = tok->byte_id[b];
        s->sym_len[m++] = 1;
      } else {
        char ch[4];
        int k = lopt_utf8_put(tok->bl_cp[b], ch);
        if (add_initial(tok, s, &m, 0, 0, ch, (size_t)k, 1, &unk_pending, &unk_len) < 0)
          return -1;
      }
    }
  } else {
    for (size_t i = 0; i < n;) {
      uint32_t cp;
      int k = lopt_utf8_next(w + i, n - i, &cp);
      int found = lopt_strmap_get(&tok->vocab, (const char *)w + i, (size_t)k, &id);
      if (add_initial(tok, s, &m, found, id, (const char *)w + i, (size_t)k, (uint32_t)k,
                      &unk_pending, &unk_len) < 0)
        return -1;
      i += (size_t)k;
    }
  }
  if (unk_pending >= 0) {
    s->sym_id[m] = (uint32_t)unk_pending;
    s->sym_len[m++] = unk_len;
  }
  if (m > 1) {
    /* A heap entry (rank, pos) is current iff the pair now starting at pos has that rank: ranks
     * identify merges, so a changed pair has another rank (or none). */
    size_t hn = 0;
    uint64_t *hp = s->heap;
    for (size_t i = 0; i < m; i++) {
      s->prev[i] = (int32_t)i - 1;
      s->next[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
      s->pair_rank[i] = UINT32_MAX;
    }
    for (size_t i = 0; i + 1 < m; i++) {
      uint32_t rank, nid;
      if (lopt_mergemap_get(&tok->merges, s->sym_id[i], s->sym_id[i + 1], &rank, &nid)) {
        s->pair_rank[i] = rank;
        s->pair_new[i] = nid;
        heap_push(hp, &hn, ((uint64_t)rank << 32) | i);
      }
    }
    while (hn) {
      uint64_t top = heap_pop(hp, &hn);
      uint32_t rank = (uint32_t)(top >> 32), pos = (uint32_t)top;
      if (s->sym_len[pos] == 0 || s->next[pos] < 0 || s->pair_rank[pos] != rank) continue;
      int32_t nx = s->next[pos];
      uint32_t nid = s->pair_new[pos], r2;
      s->sym_id[pos] = nid;
      s->sym_len[pos] += s->sym_len[nx];
      s->sym_len[nx] = 0;
      s->next[pos] = s->next[nx];
      if (s->next[nx] >= 0) s->prev[s->next[nx]] = (int32_t)pos;
      s->pair_rank[pos] = UINT32_MAX;
      if (hn + 2 > s->cap_heap) continue; /* cannot happen: at most 2 pushes per merge */
      if (s->prev[pos] >= 0) {
        int32_t pv = s->prev[pos];
        s->pair_rank[pv] = UINT32_MAX;
        if (lopt_mergemap_get(&tok->merges, s->sym_id[pv], nid, &r2, &id)) {
          s->pair_rank[pv] = r2;
          s->pair_new[pv] = id;
          heap_push(hp, &hn, ((uint64_t)r2 << 32) | (uint32_t)pv);
        }
      }
      if (s->next[pos] >= 0) {
        if (lopt_mergemap_get(&tok->merges, nid, s->sym_id[s->next[pos]], &r2, &id)) {
          s->pair_rank[pos] = r2;
          s->pair_new[pos] = id;
          heap_push(hp, &hn, ((uint64_t)r2 << 32) | pos);
        }
      }
    }
  }
  for (size_t i = 0; i < m; i++)
    if (s->sym_len[i] || m == 1)
      if (wout_push(s, s->sym_id[i], s->sym_len[i]) < 0) return -1;
  return 0;
}

/* ---------------------------------------------------------------- chunks */

/* Ask for transparent huge pages on the page-aligned interior of a large heap block: a 100 MB
 * text makes ~350 MB of token arrays, and first-touch faults on 4 KiB pages cost about as much
 * kernel time as a fifth of the tokenization itself. A hint only; failures are ignored. Used
 * for the caller's output arrays only, which are typically reused call after call: on this
 * project's VM (KVM guest), fresh huge pages for buffers that are allocated and freed on every
 * call (naive split parts) were slower than 4 KiB pages, probably because the host backs them
 * anew each time. */
void lopt_hint_huge(void *p, size_t bytes) {
  if (bytes < LOPT_HUGE_MIN) return;
  uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
  uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
  if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* Grow the three arrays to exactly cap entries (cap > t->cap). On failure the arrays that did
 * grow keep their new size, t->cap stays the smaller one, and -1 is returned. */
static int tokens_grow(kf_lopt_tokens *t, size_t cap, int huge) {
  uint32_t *a = realloc(t->ids, cap * sizeof *a);
  if (!a) return -1;
  t->ids = a;
  if (!(a = realloc(t->start, cap * sizeof *a))) return -1;
  t->start = a;
  if (!(a = realloc(t->end, cap * sizeof *a))) return -1;
  t->end = a;
  t->cap = cap;
  if (huge) {
    lopt_hint_huge(t->ids, cap * sizeof *a);
    lopt_hint_huge(t->start, cap * sizeof *a);
    lopt_hint_huge(t->end, cap * sizeof *a);
  }
  return 0;
}

int lopt_tokens_reserve_exact(kf_lopt_tokens *t, size_t need, int huge) {
  return need <= t->cap ? 0 : tokens_grow(t, need, huge);
}

int lopt_tokens_reserve(kf_lopt_tokens *t, size_t need, int huge) {
  if (need <= t->cap) return 0;
  size_t cap = t->cap ? t->cap : 1024;
  while (cap < need) cap *= 2;
  return tokens_grow(t, cap, huge);
}

void lopt_chunk_free(lopt_chunk *c) {
  kf_lopt_tokens_free(&c->toks);
  free(c->seg_pos);
  free(c->seg_tok);
  memset(c, 0, sizeof *c);
}

void lopt_chunk_truncate(lopt_chunk *c, size_t n_seg) {
  if (n_seg >= c->n_seg) return;
  c->toks.n = c->seg_tok[n_seg];
  c->n_seg = n_seg;
}

static int seg_grow(lopt_chunk *c, size_t cap) {
  if (grow_u32_pair(&c->seg_pos, &c->seg_tok, cap)) return -1;
  c->cap_seg = cap;
  return 0;
}

void lopt_chunk_reset(lopt_chunk *c) {
  lopt_chunk k = {0};
  k.toks = c->toks;
  k.toks.n = 0;
  k.seg_pos = c->seg_pos;
  k.seg_tok = c->seg_tok;
  k.cap_seg = c->cap_seg;
  *c = k;
}

static int seg_push(lopt_chunk *c, uint32_t pos) {
  if (pos >= c->seg_skip_from && pos < c->seg_skip_to) return 0;
  if (c->n_seg == c->cap_seg && seg_grow(c, c->cap_seg ? c->cap_seg * 2 : 1024) < 0) return -1;
  c->seg_pos[c->n_seg] = pos;
  c->seg_tok[c->n_seg] = (uint32_t)c->toks.n;
  c->n_seg++;
  return 0;
}

/* One pre-token [a, b) of the final text -> tokens appended to c. */
static int emit_word(const kf_lopt_tokenizer *tok, lopt_scratch *s, const unsigned char *text,
                     uint32_t a, uint32_t b, lopt_chunk *c) {
  if (seg_push(c, a) < 0) return -1;
  const unsigned char *w = text + a;
  size_t n = b - a;
  const uint32_t *cid;
  const uint8_t *clen;
  size_t nt;
  uint64_t h = 0;
  if (n <= CACHE_MAX_WORD) {
    h = lopt_hash_bytes(w, n);
    if (cache_get(s, h, w, n, &cid, &clen, &nt)) {
      if (lopt_tokens_reserve(&c->toks, c->toks.n + nt, c->huge_pages) < 0) return -1;
      uint32_t pos = a;
      for (size_t k = 0; k < nt; k++) {
        size_t j = c->toks.n++;
        c->toks.ids[j] = cid[k];
        c->toks.start[j] = pos;
        pos += clen[k];
        c->toks.end[j] = pos;
      }
      return 0;
    }
  }
  if (bpe_word(tok, s, w, n) < 0) return -1;
  if (lopt_tokens_reserve(&c->toks, c->toks.n + s->w_n, c->huge_pages) < 0) return -1;
  uint32_t pos = a;
  for (size_t k = 0; k < s->w_n; k++) {
    size_t j = c->toks.n++;
    c->toks.ids[j] = s->w_id[k];
    c->toks.start[j] = pos;
    pos += s->w_len[k];
    c->toks.end[j] = pos;
  }
  if (n <= CACHE_MAX_WORD) cache_put(s, h, w, n, s->w_id, s->w_len, s->w_n);
  return 0;
}

int lopt_encode_word(const kf_lopt_tokenizer *tok, lopt_scratch *s, const unsigned char *w,
                     uint32_t n, lopt_chunk *c) {
  return emit_word(tok, s, w, 0, n, c);
}

/* Pre-tokenize and encode text piece [ps, pe) restricted to [a, b): the regex subject is the
 * piece from its start (so lookbehind and anchors see what the full text has), the scan starts
 * at a. If b < pe the subject is cut, and matching uses PCRE2_PARTIAL_HARD: a complete match
 * returned without touching the cut is the match the full text has, so the scan stops (and sets
 * the frontier) at the first attempt that reaches the cut. Returns 1 if stopped early. */
static int encode_piece(const kf_lopt_tokenizer *tok, lopt_scratch *s, const unsigned char *text,
                        uint32_t ps, uint32_t pe, uint32_t a, uint32_t b, lopt_chunk *c) {
  int cut = b < pe;
  const unsigned char *subj = text + ps;
  size_t len = b - ps;
  size_t pos = a - ps;
  uint32_t opts = PCRE2_NO_UTF_CHECK | (cut ? PCRE2_PARTIAL_HARD : 0);
  if (!tok->re) { /* no pre-tokenizer: the whole piece is one word */
    if (cut) {
      c->frontier = a;
      return 1;
    }
    if (a < b && emit_word(tok, s, text, a, b, c) < 0) return -1;
    return 0;
  }
  while (pos < len) {
    int rc = pcre2_jit_match(tok->re, subj, len, pos, opts, s->md, NULL);
    if (rc == PCRE2_ERROR_JIT_BADOPTION || rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(tok->re, subj, len, pos, opts, s->md, NULL);
    if (rc == PCRE2_ERROR_PARTIAL || (rc == PCRE2_ERROR_NOMATCH && cut)) {
      c->frontier = ps + (uint32_t)pos;
      return 1;
    }
    if (rc == PCRE2_ERROR_NOMATCH) { /* trailing text no match covers: its own piece */
      if (!tok->drop_gaps && emit_word(tok, s, text, ps + (uint32_t)pos, ps + (uint32_t)len, c) < 0) return -1;
      break;
    }
    if (rc < 0) { /* matching limit etc.: treat the rest as one piece (never silently drop) */
      if (cut) {
        c->frontier = ps + (uint32_t)pos;
        return 1;
      }
      if (emit_word(tok, s, text, ps + (uint32_t)pos, ps + (uint32_t)len, c) < 0) return -1;
      break;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    size_t ms = ov[0], me = ov[1];
    if (ms > pos && !tok->drop_gaps &&
        emit_word(tok, s, text, ps + (uint32_t)pos, ps + (uint32_t)ms, c) < 0)
      return -1;
    if (me == ms) { /* empty match: step one character, like the reference's iterator */
      size_t k = 1;
      while (ms + k < len && (subj[ms + k] & 0xC0) == 0x80) k++;
      if (ms + k > len) break;
      if (emit_word(tok, s, text, ps + (uint32_t)ms, ps + (uint32_t)(ms + k), c) < 0) return -1;
      pos = ms + k;
      continue;
    }
    if (emit_word(tok, s, text, ps + (uint32_t)ms, ps + (uint32_t)me, c) < 0) return -1;
    pos = me;
  }
  return 0;
}

int lopt_encode_range(const kf_lopt_tokenizer *tok, lopt_scratch *s, const lopt_prepared *pp,
                      uint32_t from, uint32_t to, lopt_chunk *c) {
  const unsigned char *text = (const unsigned char *)pp->text;
  c->to = to;
  c->frontier = to;
  /* Every token covers at least one byte, so span + 1 entries suffice: reserve
   * them once (address space only; pages are touched as tokens are written) instead of growing
   * by doubling, which re-faults and re-copies. If that much address space is refused, the
   * arrays just grow as they fill. */
  size_t span = to > from ? (size_t)(to - from) + 1 : 1;
  if (c->toks.cap < c->toks.n + span) (void)tokens_grow(&c->toks, c->toks.n + span, c->huge_pages);
  for (size_t i = lopt_find_piece(&pp->pieces, from); i < pp->pieces.n; i++) {
    const lopt_piece *p = &pp->pieces.p[i];
    if (p->start >= to) break;
    if (p->added >= 0) {
      if (p->start < from) continue; /* cuts never fall inside added tokens */
      if (p->end > to) {
        c->frontier = p->start;
        return 0;
      }
      if (seg_push(c, p->start) < 0 || lopt_tokens_reserve(&c->toks, c->toks.n + 1, c->huge_pages) < 0)
        return -1;
      size_t j = c->toks.n++;
      c->toks.ids[j] = (uint32_t)p->added;
      c->toks.start[j] = p->start;
      c->toks.end[j] = p->end;
      continue;
    }
    uint32_t a = p->start > from ? p->start : from;
    uint32_t b = p->end < to ? p->end : to;
    int rc = encode_piece(tok, s, text, p->start, p->end, a, b, c);
    if (rc < 0) return -1;
    if (rc == 1) return 0;
  }
  return 0;
}

/* kf_lopt general pipeline: the tokenizer.json stages the fast path (one NF normalizer, one
 * split regex, ByteLevel) does not cover, each as the reference defines it: normalizers
 * (NFC/NFD/NFKC/NFKD, Replace, Prepend, Strip, Sequence), pre-tokenizers (Split with every
 * behavior and invert, ByteLevel with add_prefix_space / use_regex, Metaspace, Digits,
 * Punctuation, Whitespace, WhitespaceSplit, Sequence) and decoders (ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace, Sequence). Encoding here is sequential.
 *
 * A normalized string carries, for each of its bytes, the range of the (repaired) input it came
 * from, as the reference's NormalizedString does; token offsets are read from it. */
#include "kf_lopt_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct nstr {
  char *s;
  uint32_t *a0, *a1; /* per byte: source range in the repaired text */
  size_t n, cap;
} nstr;

static void nstr_free(nstr *x) {
  free(x->s);
  free(x->a0);
  free(x->a1);
  memset(x, 0, sizeof *x);
}

static int nstr_reserve(nstr *x, size_t need) {
  if (need <= x->cap) return 0;
  size_t cap = x->cap ? x->cap : 64;
  while (cap < need) cap *= 2;
  char *s = realloc(x->s, cap + 1);
  if (!s) return -1;
  x->s = s;
  uint32_t *a = realloc(x->a0, cap * sizeof *a);
  if (!a) return -1;
  x->a0 = a;
  if (!(a = realloc(x->a1, cap * sizeof *a))) return -1;
  x->a1 = a;
  x->cap = cap;
  return 0;
}

/* Append bytes p[0..n) all aligned to [a0, a1). */
static int nstr_put(nstr *x, const char *p, size_t n, uint32_t a0, uint32_t a1) {
  if (!n) return 0;
  if (nstr_reserve(x, x->n + n) < 0) return -1;
  memcpy(x->s + x->n, p, n);
  for (size_t i = 0; i < n; i++) {
    x->a0[x->n + i] = a0;
    x->a1[x->n + i] = a1;
  }
  x->n += n;
  return 0;
}

/* Append src[lo, hi) with its alignments. */
static int nstr_copy(nstr *x, const nstr *src, size_t lo, size_t hi) {
  if (hi <= lo) return 0;
  if (nstr_reserve(x, x->n + (hi - lo)) < 0) return -1;
  memcpy(x->s + x->n, src->s + lo, hi - lo);
  memcpy(x->a0 + x->n, src->a0 + lo, (hi - lo) * sizeof *x->a0);
  memcpy(x->a1 + x->n, src->a1 + lo, (hi - lo) * sizeof *x->a1);
  x->n += hi - lo;
  return 0;
}

static size_t cp_len_at(const nstr *x, size_t i) {
  size_t k = 1;
  while (i + k < x->n && (x->s[i + k] & 0xC0) == 0x80) k++;
  return k;
}

/* ---------------------------------------------------------------- normalizers */

static int norm_nf(int form, nstr *x) {
  char *buf = NULL;
  size_t blen = 0, bcap = 0;
  lopt_map m = {0};
  nstr y = {0};
  int rc = -1;
  if (lopt_nfc_append(form, (const unsigned char *)x->s, x->n, 0, &buf, &blen, &bcap, &m) < 0)
    goto done;
  /* unchanged stretches keep their alignment; a changed region's bytes get the region's */
  size_t src = 0, dst = 0;
  for (size_t r = 0; r <= m.n; r++) {
    size_t ns = r < m.n ? m.nstart[r] : blen;
    if (nstr_copy(&y, x, src, src + (ns - dst)) < 0) goto done;
    if (r == m.n) break;
    uint32_t os = m.ostart[r], oe = m.oend[r];
    if (nstr_put(&y, buf + ns, m.nend[r] - ns, x->a0[os], oe > os ? x->a1[oe - 1] : x->a0[os]) < 0)
      goto done;
    src = oe;
    dst = m.nend[r];
  }
  nstr_free(x);
  *x = y;
  memset(&y, 0, sizeof y);
  rc = 0;
done:
  free(buf);
  lopt_map_free(&m);
  nstr_free(&y);
  return rc;
}

static int norm_replace(const lopt_norm_op *op, pcre2_match_data *md, nstr *x) {
  nstr y = {0};
  size_t pos = 0, copied = 0;
  while (pos <= x->n) {
    int rc = pcre2_match(op->re, (PCRE2_SPTR)x->s, x->n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc < 0) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) { /* an empty match replaces nothing */
      if (ms >= x->n) break;
      pos = ms + cp_len_at(x, ms);
      continue;
    }
    /* the reference aligns the replacement to the last character of the match */
    size_t last = me - 1;
    while (last > ms && (x->s[last] & 0xC0) == 0x80) last--;
    if (nstr_copy(&y, x, copied, ms) < 0 ||
        nstr_put(&y, op->content, op->content_n, x->a0[last], x->a1[me - 1]) < 0) {
      nstr_free(&y);
      return -1;
    }
    copied = pos = me;
  }
  if (nstr_copy(&y, x, copied, x->n) < 0) {
    nstr_free(&y);
    return -1;
  }
  nstr_free(x);
  *x = y;
  return 0;
}

/* Insert s[0..n) at the front, aligned to the first character (the reference's prepend). */
static int nstr_prepend(nstr *x, const char *s, size_t n) {
  if (!x->n) return 0;
  nstr y = {0};
  size_t k = cp_len_at(x, 0);
  if (nstr_put(&y, s, n, x->a0[0], x->a1[k - 1]) < 0 || nstr_copy(&y, x, 0, x->n) < 0) {
    nstr_free(&y);
    return -1;
  }
  nstr_free(x);
  *x = y;
  return 0;
}

static int norm_strip(const lopt_norm_op *op, nstr *x) {
  size_t lo = 0, hi = x->n;
  while (op->left && lo < hi) {
    uint32_t cp;
    int k = lopt_utf8_next((const unsigned char *)x->s + lo, hi - lo, &cp);
    if (!lopt_is_white_space(cp)) break;
    lo += (size_t)k;
  }
  while (op->right && hi > lo) {
    size_t p = hi - 1;
    while (p > lo && (x->s[p] & 0xC0) == 0x80) p--;
    uint32_t cp;
    lopt_utf8_next((const unsigned char *)x->s + p, hi - p, &cp);
    if (!lopt_is_white_space(cp)) break;
    hi = p;
  }
  if (lo == 0 && hi == x->n) return 0;
  nstr y = {0};
  if (nstr_copy(&y, x, lo, hi) < 0) {
    nstr_free(&y);
    return -1;
  }
  nstr_free(x);
  *x = y;
  return 0;
}

/* Each character by its lowercase (one to three characters, all aligned to it). */
static int norm_lower(nstr *x) {
  nstr y = {0};
  for (size_t i = 0; i < x->n;) {
    uint32_t cp, lo[3];
    int k = lopt_utf8_next((const unsigned char *)x->s + i, x->n - i, &cp);
    int m = lopt_to_lower(cp, lo);
    for (int j = 0; j < m; j++) {
      char u[4];
      int un = lopt_utf8_put(lo[j], u);
      if (nstr_put(&y, u, (size_t)un, x->a0[i], x->a1[i + (size_t)k - 1]) < 0) {
        nstr_free(&y);
        return -1;
      }
    }
    i += (size_t)k;
  }
  nstr_free(x);
  *x = y;
  return 0;
}

static int normalize(const kf_lopt_tokenizer *tok, pcre2_match_data *md, nstr *x) {
  for (size_t i = 0; i < tok->n_norm_ops; i++) {
    const lopt_norm_op *op = &tok->norm_ops[i];
    int rc = 0;
    switch (op->kind) {
    case LN_NF: rc = norm_nf(op->form, x); break;
    case LN_REPLACE: rc = norm_replace(op, md, x); break;
    case LN_PREPEND: rc = nstr_prepend(x, op->content, op->content_n); break;
    case LN_STRIP: rc = norm_strip(op, x); break;
    case LN_LOWERCASE: rc = norm_lower(x); break;
    default: break;
    }
    if (rc < 0) return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- pre-tokenizers */

typedef struct splits {
  nstr *v;
  size_t n, cap;
} splits;

static void splits_free(splits *s) {
  for (size_t i = 0; i < s->n; i++) nstr_free(&s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Move x into s (x is emptied). Empty strings are dropped, as the reference does. */
static int splits_push(splits *s, nstr *x) {
  if (!x->n) {
    nstr_free(x);
    return 0;
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    nstr *v = realloc(s->v, cap * sizeof *v);
    if (!v) return -1;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = *x;
  memset(x, 0, sizeof *x);
  return 0;
}

typedef struct match {
  uint32_t a, b;
  int is_match;
} match;
typedef struct matches {
  match *v;
  size_t n, cap;
} matches;

static int matches_push(matches *m, size_t a, size_t b, int is_match) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    match *v = realloc(m->v, cap * sizeof *v);
    if (!v) return -1;
    m->v = v;
    m->cap = cap;
  }
  m->v[m->n].a = (uint32_t)a;
  m->v[m->n].b = (uint32_t)b;
  m->v[m->n].is_match = is_match;
  m->n++;
  return 0;
}

/* The reference's find_matches for a regex: matches and the gaps between them. */
static int find_re(pcre2_code *re, pcre2_match_data *md, const nstr *x, matches *m) {
  size_t prev = 0, pos = 0;
  while (pos <= x->n) {
    int rc = pcre2_match(re, (PCRE2_SPTR)x->s, x->n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc < 0) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t ms = ov[0], me = ov[1];
    if (prev != ms && matches_push(m, prev, ms, 0) < 0) return -1;
    if (matches_push(m, ms, me, 1) < 0) return -1;
    prev = me;
    if (me == ms) {
      if (ms >= x->n) break;
      pos = ms + cp_len_at(x, ms);
    } else {
      pos = me;
    }
  }
  if (prev != x->n && matches_push(m, prev, x->n, 0) < 0) return -1;
  return 0;
}

static int is_numeric_cp(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  const char *c = lopt_general_category(cp);
  return c[0] == 'N';
}

static int is_punct_cp(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
  return lopt_is_punct8(cp);
}

/* find_matches for a character predicate: each matching character is its own match. */
static int find_pred(int (*pred)(uint32_t), const nstr *x, matches *m) {
  size_t last = 0;
  for (size_t i = 0; i < x->n;) {
    uint32_t cp;
    int k = lopt_utf8_next((const unsigned char *)x->s + i, x->n - i, &cp);
    if (pred(cp)) {
      if (last < i && matches_push(m, last, i, 0) < 0) return -1;
      if (matches_push(m, i, i + (size_t)k, 1) < 0) return -1;
      last = i + (size_t)k;
    }
    i += (size_t)k;
  }
  if (last < x->n && matches_push(m, last, x->n, 0) < 0) return -1;
  return 0;
}

/* Apply behavior to m (the reference's SplitDelimiterBehavior) and push the pieces of x. */
static int split_by(const nstr *x, matches *m, int behavior, int invert, splits *out) {
  if (invert)
    for (size_t i = 0; i < m->n; i++) m->v[i].is_match = !m->v[i].is_match;
  matches r = {0};
  int prev_match = 0, rc = -1;
  switch (behavior) {
  case LB_ISOLATED:
    for (size_t i = 0; i < m->n; i++)
      if (matches_push(&r, m->v[i].a, m->v[i].b, 0) < 0) goto done;
    break;
  case LB_REMOVED:
    for (size_t i = 0; i < m->n; i++)
      if (!m->v[i].is_match && matches_push(&r, m->v[i].a, m->v[i].b, 0) < 0) goto done;
    break;
  case LB_PREV:
    for (size_t i = 0; i < m->n; i++) {
      if (m->v[i].is_match && !prev_match && r.n) r.v[r.n - 1].b = m->v[i].b;
      else if (matches_push(&r, m->v[i].a, m->v[i].b, 0) < 0) goto done;
      prev_match = m->v[i].is_match;
    }
    break;
  case LB_NEXT:
    for (size_t i = m->n; i-- > 0;) {
      if (m->v[i].is_match && !prev_match && r.n) r.v[r.n - 1].a = m->v[i].a;
      else if (matches_push(&r, m->v[i].a, m->v[i].b, 0) < 0) goto done;
      prev_match = m->v[i].is_match;
    }
    for (size_t i = 0; i < r.n / 2; i++) {
      match t = r.v[i];
      r.v[i] = r.v[r.n - 1 - i];
      r.v[r.n - 1 - i] = t;
    }
    break;
  case LB_CONTIGUOUS:
    for (size_t i = 0; i < m->n; i++) {
      if (i > 0 && m->v[i].is_match == prev_match && r.n) r.v[r.n - 1].b = m->v[i].b;
      else if (matches_push(&r, m->v[i].a, m->v[i].b, 0) < 0) goto done;
      prev_match = m->v[i].is_match;
    }
    break;
  default: goto done;
  }
  for (size_t i = 0; i < r.n; i++) {
    nstr y = {0};
    if (nstr_copy(&y, x, r.v[i].a, r.v[i].b) < 0 || splits_push(out, &y) < 0) {
      nstr_free(&y);
      goto done;
    }
  }
  rc = 0;
done:
  free(r.v);
  return rc;
}

/* Replace every ' ' of x by repl. */
static int replace_space(nstr *x, const char *repl, size_t repl_n) {
  if (!memchr(x->s, ' ', x->n)) return 0;
  nstr y = {0};
  for (size_t i = 0; i < x->n; i++) {
    int rc = x->s[i] == ' ' ? nstr_put(&y, repl, repl_n, x->a0[i], x->a1[i])
                            : nstr_copy(&y, x, i, i + 1);
    if (rc < 0) {
      nstr_free(&y);
      return -1;
    }
  }
  nstr_free(x);
  *x = y;
  return 0;
}

static int pre_op_one(const lopt_pre_op *op, pcre2_match_data *md, nstr *x, splits *out) {
  matches m = {0};
  int rc = -1;
  switch (op->kind) {
  case LP_SPLIT:
    if (find_re(op->re, md, x, &m) < 0) goto done;
    rc = split_by(x, &m, op->behavior, op->invert, out);
    goto done;
  case LP_BYTELEVEL:
    if (op->add_prefix_space && (x->n == 0 || x->s[0] != ' ') && nstr_prepend(x, " ", 1) < 0)
      goto done;
    if (!op->re) {
      nstr y = *x;
      memset(x, 0, sizeof *x);
      rc = splits_push(out, &y);
      if (rc < 0) nstr_free(&y);
      goto done;
    }
    if (find_re(op->re, md, x, &m) < 0) goto done;
    rc = split_by(x, &m, LB_ISOLATED, 0, out);
    goto done;
  case LP_METASPACE: {
    if (replace_space(x, op->repl, op->repl_n) < 0) goto done;
    int starts = x->n >= op->repl_n && memcmp(x->s, op->repl, op->repl_n) == 0;
    if (!starts && (op->prepend_scheme == LM_ALWAYS ||
                    (op->prepend_scheme == LM_FIRST && x->n && x->a0[0] == 0)) &&
        nstr_prepend(x, op->repl, op->repl_n) < 0)
      goto done;
    if (!op->split) {
      nstr y = *x;
      memset(x, 0, sizeof *x);
      rc = splits_push(out, &y);
      if (rc < 0) nstr_free(&y);
      goto done;
    }
    /* split on the replacement, merged with the next piece */
    size_t last = 0;
    for (size_t i = 0; i + op->repl_n <= x->n;) {
      if (memcmp(x->s + i, op->repl, op->repl_n) == 0) {
        if (last < i && matches_push(&m, last, i, 0) < 0) goto done;
        if (matches_push(&m, i, i + op->repl_n, 1) < 0) goto done;
        i += op->repl_n;
        last = i;
      } else {
        i += cp_len_at(x, i);
      }
    }
    if (last < x->n && matches_push(&m, last, x->n, 0) < 0) goto done;
    rc = split_by(x, &m, LB_NEXT, 0, out);
    goto done;
  }
  case LP_DIGITS:
    if (find_pred(is_numeric_cp, x, &m) < 0) goto done;
    rc = split_by(x, &m, op->individual ? LB_ISOLATED : LB_CONTIGUOUS, 0, out);
    goto done;
  case LP_PUNCT:
    if (find_pred(is_punct_cp, x, &m) < 0) goto done;
    rc = split_by(x, &m, op->behavior, 0, out);
    goto done;
  case LP_WHITESPACE:
    if (find_re(op->re, md, x, &m) < 0) goto done;
    rc = split_by(x, &m, LB_REMOVED, 1, out);
    goto done;
  case LP_WSSPLIT:
    if (find_pred(lopt_is_white_space, x, &m) < 0) goto done;
    rc = split_by(x, &m, LB_REMOVED, 0, out);
    goto done;
  default: break;
  }
done:
  free(m.v);
  return rc;
}

/* ---------------------------------------------------------------- encode */

static int push_tok(kf_lopt_tokens *t, uint32_t id, uint32_t a, uint32_t b) {
  if (lopt_tokens_reserve(t, t->n + 1, 0) < 0) return -1;
  t->ids[t->n] = id;
  t->start[t->n] = a;
  t->end[t->n] = b;
  t->n++;
  return 0;
}

/* Model on one pre-token: tokens with offsets from x's alignment. */
static int model_split(const kf_lopt_tokenizer *tok, lopt_scratch *s, lopt_chunk *c, const nstr *x,
                       kf_lopt_tokens *out) {
  c->toks.n = 0;
  if (lopt_encode_word(tok, s, (const unsigned char *)x->s, (uint32_t)x->n, c) < 0) return -1;
  for (size_t k = 0; k < c->toks.n; k++) {
    uint32_t a = c->toks.start[k], b = c->toks.end[k];
    uint32_t oa = a < x->n ? x->a0[a] : x->a1[x->n - 1];
    uint32_t ob = b > a ? x->a1[b - 1] : oa;
    if (push_tok(out, c->toks.ids[k], oa, ob) < 0) return -1;
  }
  return 0;
}

static int encode_text_piece(const kf_lopt_tokenizer *tok, lopt_scratch *s, lopt_chunk *c,
                             pcre2_match_data *md, const unsigned char *text, uint32_t ps,
                             uint32_t pe, kf_lopt_tokens *out) {
  nstr x = {0};
  splits cur = {0}, next = {0};
  lopt_pieces sub = {0};
  int rc = -1;
  if (nstr_reserve(&x, pe - ps) < 0) goto done;
  for (uint32_t i = ps; i < pe;) {
    uint32_t cp;
    int k = lopt_utf8_next(text + i, pe - i, &cp);
    if (nstr_put(&x, (const char *)text + i, (size_t)k, i, i + (uint32_t)k) < 0) goto done;
    i += (uint32_t)k;
  }
  if (normalize(tok, md, &x) < 0) goto done;
  /* normalized added tokens */
  if (tok->norm_set.n) {
    if (lopt_split_added(tok, &tok->norm_set, (const unsigned char *)x.s, 0, (uint32_t)x.n, &sub) <
        0)
      goto done;
  } else if (x.n) {
    sub.p = malloc(sizeof *sub.p);
    if (!sub.p) goto done;
    sub.p[0].start = 0;
    sub.p[0].end = (uint32_t)x.n;
    sub.p[0].added = -1;
    sub.n = sub.cap = 1;
  }
  for (size_t q = 0; q < sub.n; q++) {
    const lopt_piece *p = &sub.p[q];
    if (p->added >= 0) {
      if (push_tok(out, (uint32_t)p->added, x.a0[p->start], x.a1[p->end - 1]) < 0) goto done;
      continue;
    }
    nstr y = {0};
    if (nstr_copy(&y, &x, p->start, p->end) < 0 || splits_push(&cur, &y) < 0) {
      nstr_free(&y);
      goto done;
    }
    for (size_t o = 0; o < tok->n_pre_ops; o++) {
      for (size_t i = 0; i < cur.n; i++)
        if (pre_op_one(&tok->pre_ops[o], md, &cur.v[i], &next) < 0) goto done;
      splits_free(&cur);
      cur = next;
      memset(&next, 0, sizeof next);
    }
    for (size_t i = 0; i < cur.n; i++)
      if (model_split(tok, s, c, &cur.v[i], out) < 0) goto done;
    splits_free(&cur);
  }
  rc = 0;
done:
  nstr_free(&x);
  splits_free(&cur);
  splits_free(&next);
  free(sub.p);
  return rc;
}

kf_lopt_status lopt_generic_encode(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                                   kf_lopt_tokens *out, kf_lopt_error *err) {
  lopt_prepared pp;
  kf_lopt_status st = lopt_prepare(tok, text, len, 0, 0, &pp, err);
  if (st) return st;
  lopt_scratch *s = lopt_scratch_new(tok);
  pcre2_match_data *md = pcre2_match_data_create(16, NULL);
  lopt_chunk c = {0};
  c.seg_skip_to = UINT32_MAX;
  out->n = 0;
  int failed = !s || !md;
  const unsigned char *t = (const unsigned char *)pp.text;
  for (size_t i = 0; i < pp.pieces.n && !failed; i++) {
    const lopt_piece *p = &pp.pieces.p[i];
    if (p->added >= 0) failed = push_tok(out, (uint32_t)p->added, p->start, p->end) < 0;
    else failed = encode_text_piece(tok, s, &c, md, t, p->start, p->end, out) < 0;
  }
  lopt_chunk_free(&c);
  lopt_scratch_free(s);
  pcre2_match_data_free(md);
  if (failed) {
    out->n = 0;
    lopt_prepared_free(&pp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_encode: out of memory (%zu bytes)", len);
  }
  if (pp.map_repair.n)
    for (size_t i = 0; i < out->n; i++) {
      out->start[i] = lopt_map_pos(&pp.map_repair, out->start[i], 0);
      out->end[i] = lopt_map_pos(&pp.map_repair, out->end[i], 1);
    }
  lopt_prepared_free(&pp);
  return KF_LOPT_OK;
}

/* ---------------------------------------------------------------- decode */

typedef struct strs {
  char *buf;
  size_t len, cap;
  size_t *off, *n; /* token i = buf[off[i] .. + n[i]) */
  size_t count, cap_tok;
} strs;

static void strs_free(strs *x) {
  free(x->buf);
  free(x->off);
  free(x->n);
  memset(x, 0, sizeof *x);
}

static int strs_open(strs *x) { /* start a new token */
  if (x->count == x->cap_tok) {
    size_t cap = x->cap_tok ? x->cap_tok * 2 : 64;
    size_t *a = realloc(x->off, cap * sizeof *a);
    if (!a) return -1;
    x->off = a;
    if (!(a = realloc(x->n, cap * sizeof *a))) return -1;
    x->n = a;
    x->cap_tok = cap;
  }
  x->off[x->count] = x->len;
  x->n[x->count] = 0;
  x->count++;
  return 0;
}

static int strs_add(strs *x, const char *p, size_t n) { /* append to the last token */
  if (!n) return 0;
  if (x->len + n + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 256;
    while (cap < x->len + n + 1) cap *= 2;
    char *b = realloc(x->buf, cap);
    if (!b) return -1;
    x->buf = b;
    x->cap = cap;
  }
  memcpy(x->buf + x->len, p, n);
  x->len += n;
  x->n[x->count - 1] += n;
  return 0;
}

static const char *tk(const strs *x, size_t i) { return x->buf ? x->buf + x->off[i] : ""; }

/* GPT-2 byte alphabet, reversed: code point -> byte, -1 if not in the alphabet. */
static int bl_byte(uint32_t cp) {
  if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
    return (int)cp;
  if (cp < 256 || cp >= 256 + 68) return -1;
  uint32_t k = cp - 256; /* the k-th byte not kept, in byte order */
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (!keep && k-- == 0) return b;
  }
  return -1;
}

/* Lossy UTF-8 (U+FFFD per maximal invalid subpart) of p[0..n) appended to x's last token. */
static int add_lossy(strs *x, const char *p, size_t n) {
  if (lopt_utf8_valid((const unsigned char *)p, n)) return strs_add(x, p, n);
  char *r;
  size_t rn;
  lopt_map m = {0};
  if (lopt_utf8_repair((const unsigned char *)p, n, &r, &rn, &m) < 0) return -1;
  lopt_map_free(&m);
  int rc = strs_add(x, r, rn);
  free(r);
  return rc;
}

static int dec_op(const lopt_dec_op *op, const strs *in, strs *o) {
  switch (op->kind) {
  case LD_BYTELEVEL: {
    char *bytes = malloc(in->len + 1);
    if (!bytes) return -1;
    size_t bn = 0;
    for (size_t i = 0; i < in->count; i++) {
      const unsigned char *p = (const unsigned char *)tk(in, i);
      for (size_t j = 0; j < in->n[i];) {
        uint32_t cp;
        int k = lopt_utf8_next(p + j, in->n[i] - j, &cp);
        int b = bl_byte(cp);
        if (b >= 0) bytes[bn++] = (char)b;
        else {
          memcpy(bytes + bn, p + j, (size_t)k);
          bn += (size_t)k;
        }
        j += (size_t)k;
      }
    }
    int rc = strs_open(o) < 0 || add_lossy(o, bytes, bn) < 0 ? -1 : 0;
    free(bytes);
    return rc;
  }
  case LD_REPLACE:
    for (size_t i = 0; i < in->count; i++) {
      if (strs_open(o) < 0) return -1;
      const char *p = tk(in, i);
      size_t n = in->n[i];
      for (size_t j = 0; j < n;) {
        if (op->pat_n && j + op->pat_n <= n && memcmp(p + j, op->pat, op->pat_n) == 0) {
          if (strs_add(o, op->content, op->content_n) < 0) return -1;
          j += op->pat_n;
        } else {
          if (strs_add(o, p + j, 1) < 0) return -1;
          j++;
        }
      }
    }
    return 0;
  case LD_BYTEFALLBACK: {
    char pend[4096];
    size_t np = 0;
    for (size_t i = 0; i <= in->count; i++) {
      const char *p = i < in->count ? tk(in, i) : NULL;
      int hex = -1;
      if (p && in->n[i] == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>') {
        int hi = p[3] >= '0' && p[3] <= '9' ? p[3] - '0' : p[3] >= 'A' && p[3] <= 'F' ? p[3] - 'A' + 10 : -1;
        int lo = p[4] >= '0' && p[4] <= '9' ? p[4] - '0' : p[4] >= 'A' && p[4] <= 'F' ? p[4] - 'A' + 10 : -1;
        if (hi >= 0 && lo >= 0) hex = hi * 16 + lo;
      }
      if (hex >= 0 && np < sizeof pend) {
        pend[np++] = (char)hex;
        continue;
      }
      if (np) { /* flush: valid UTF-8 as one token, else one U+FFFD per byte */
        if (strs_open(o) < 0) return -1;
        if (lopt_utf8_valid((const unsigned char *)pend, np)) {
          if (strs_add(o, pend, np) < 0) return -1;
        } else {
          for (size_t k = 0; k < np; k++)
            if ((k && strs_open(o) < 0) || strs_add(o, "\xEF\xBF\xBD", 3) < 0) return -1;
        }
        np = 0;
      }
      if (hex >= 0) { /* pending buffer was full */
        pend[np++] = (char)hex;
        continue;
      }
      if (p && (strs_open(o) < 0 || strs_add(o, p, in->n[i]) < 0)) return -1;
    }
    return 0;
  }
  case LD_FUSE:
    if (strs_open(o) < 0) return -1;
    for (size_t i = 0; i < in->count; i++)
      if (strs_add(o, tk(in, i), in->n[i]) < 0) return -1;
    return 0;
  case LD_STRIP:
    for (size_t i = 0; i < in->count; i++) {
      const char *p = tk(in, i);
      size_t a = 0, b = in->n[i];
      for (int k = 0; k < op->start && a + op->content_n <= b &&
                      memcmp(p + a, op->content, op->content_n) == 0; k++)
        a += op->content_n;
      for (int k = 0; k < op->stop && b >= a + op->content_n &&
                      memcmp(p + b - op->content_n, op->content, op->content_n) == 0; k++)
        b -= op->content_n;
      if (strs_open(o) < 0 || strs_add(o, p + a, b - a) < 0) return -1;
    }
    return 0;
  case LD_METASPACE:
    for (size_t i = 0; i < in->count; i++) {
      if (strs_open(o) < 0) return -1;
      const char *p = tk(in, i);
      size_t n = in->n[i];
      size_t at = o->len;
      for (size_t j = 0; j < n;) {
        if (op->content_n && j + op->content_n <= n && memcmp(p + j, op->content, op->content_n) == 0) {
          if (strs_add(o, " ", 1) < 0) return -1;
          j += op->content_n;
        } else {
          if (strs_add(o, p + j, 1) < 0) return -1;
          j++;
        }
      }
      if (i == 0 && op->prepend_scheme != LM_NEVER && o->len > at && o->buf[at] == ' ') {
        memmove(o->buf + at, o->buf + at + 1, o->len - at - 1);
        o->len--;
        o->n[o->count - 1]--;
      }
    }
    return 0;
  default: return -1;
  }
}

kf_lopt_status lopt_generic_decode(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                                   int skip_special, char **out, size_t *out_len,
                                   kf_lopt_error *err) {
  strs a = {0}, b = {0};
  for (size_t i = 0; i < n; i++) {
    if (ids[i] >= tok->n_ids || !tok->id_known[ids[i]]) {
      strs_free(&a);
      return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_decode: ids[%zu] = %u is not a token id",
                          i, ids[i]);
    }
    if (skip_special) {
      int special = 0;
      for (size_t k = 0; k < tok->n_added && !special; k++)
        special = tok->added[k].id == ids[i] && tok->added[k].special;
      if (special) continue;
    }
    if (strs_open(&a) < 0 || strs_add(&a, tok->raw_pool + tok->raw_off[ids[i]], tok->raw_len[ids[i]]) < 0)
      goto nomem;
  }
  if (!tok->has_decoder) { /* the reference joins the tokens with spaces */
    if (strs_open(&b) < 0) goto nomem;
    for (size_t i = 0; i < a.count; i++)
      if ((i && strs_add(&b, " ", 1) < 0) || strs_add(&b, tk(&a, i), a.n[i]) < 0) goto nomem;
    strs_free(&a);
    a = b;
    memset(&b, 0, sizeof b);
  }
  for (size_t k = 0; k < tok->n_dec_ops; k++) {
    if (dec_op(&tok->dec_ops[k], &a, &b) < 0) goto nomem;
    strs_free(&a);
    a = b;
    memset(&b, 0, sizeof b);
  }
  char *res = malloc(a.len + 1);
  if (!res) goto nomem;
  size_t j = 0;
  for (size_t i = 0; i < a.count; i++) {
    if (a.n[i]) memcpy(res + j, tk(&a, i), a.n[i]);
    j += a.n[i];
  }
  res[j] = 0;
  *out = res;
  *out_len = j;
  strs_free(&a);
  return KF_LOPT_OK;
nomem:
  strs_free(&a);
  strs_free(&b);
  return kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_decode: out of memory");
}

void lopt_pipe_free(kf_lopt_tokenizer *tok) {
  for (size_t i = 0; i < tok->n_norm_ops; i++) {
    pcre2_code_free(tok->norm_ops[i].re);
    free(tok->norm_ops[i].content);
  }
  free(tok->norm_ops);
  for (size_t i = 0; i < tok->n_pre_ops; i++) {
    pcre2_code_free(tok->pre_ops[i].re);
    free(tok->pre_ops[i].repl);
  }
  free(tok->pre_ops);
  for (size_t i = 0; i < tok->n_dec_ops; i++) {
    free(tok->dec_ops[i].pat);
    free(tok->dec_ops[i].content);
  }
  free(tok->dec_ops);
  free(tok->raw_off);
  free(tok->raw_len);
  free(tok->raw_pool);
  free(tok->tpl_pre);
  free(tok->tpl_post);
}

int lopt_normalize_bytes(const kf_lopt_tokenizer *tok, const char *in, size_t n, char **out,
                         size_t *out_n) {
  nstr x = {0};
  pcre2_match_data *md = pcre2_match_data_create(16, NULL);
  int rc = -1;
  if (md && nstr_put(&x, in, n, 0, (uint32_t)n) == 0 && normalize(tok, md, &x) == 0) {
    *out = malloc(x.n + 1);
    if (*out) {
      if (x.n) memcpy(*out, x.s, x.n);
      (*out)[x.n] = 0;
      *out_n = x.n;
      rc = 0;
    }
  }
  nstr_free(&x);
  pcre2_match_data_free(md);
  return rc;
}

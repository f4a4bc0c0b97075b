/* kf_lopt text stage: UTF-8 repair, NFC, added-token split, offset maps. */
#include "kf_lopt_int.h"

#include <stdlib.h>
#include <string.h>

#define KF_UNICODE_WANT_NORM
#include "kf_unicode_tables.h"

/* ---------------------------------------------------------------- offset maps */

void lopt_map_free(lopt_map *m) {
  free(m->nstart);
  free(m->nend);
  free(m->ostart);
  free(m->oend);
  memset(m, 0, sizeof *m);
}

static int map_add(lopt_map *m, uint32_t ns, uint32_t ne, uint32_t os, uint32_t oe) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint32_t *a = realloc(m->nstart, cap * sizeof *a);
    if (!a) return -1;
    m->nstart = a;
    if (!(a = realloc(m->nend, cap * sizeof *a))) return -1;
    m->nend = a;
    if (!(a = realloc(m->ostart, cap * sizeof *a))) return -1;
    m->ostart = a;
    if (!(a = realloc(m->oend, cap * sizeof *a))) return -1;
    m->oend = a;
    m->cap = cap;
  }
  m->nstart[m->n] = ns;
  m->nend[m->n] = ne;
  m->ostart[m->n] = os;
  m->oend[m->n] = oe;
  m->n++;
  return 0;
}

/* Position in the transformed text -> position in its source. A start inside or at the start of
 * a replaced region maps to the region's source start; an end inside or at the end of one to its
 * source end (regions may be adjacent: one per character). */
uint32_t lopt_map_pos(const lopt_map *m, uint32_t pos, int is_end) {
  if (m->n == 0 || pos < m->nstart[0] || (is_end && pos == m->nstart[0])) return pos;
  size_t lo = 0, hi = m->n; /* last region with nstart <= pos (< pos for an end) */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (m->nstart[mid] < pos || (!is_end && m->nstart[mid] == pos)) lo = mid;
    else hi = mid;
  }
  if (is_end) {
    if (pos <= m->nend[lo]) return m->oend[lo];
  } else if (pos < m->nend[lo]) {
    return m->ostart[lo];
  }
  return m->oend[lo] + (pos - m->nend[lo]);
}

/* ---------------------------------------------------------------- UTF-8 */

int lopt_utf8_put(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Length of the valid sequence starting at s[i], or 0 if s[i] does not start one (WHATWG ranges:
 * no overlongs, no surrogates, nothing above U+10FFFF). *bad_len gets the length of the maximal
 * invalid subpart when the result is 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t i, size_t *bad_len) {
  unsigned c = s[i];
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *bad_len = 1;
    return 0;
  }
  size_t k = 1;
  for (; k <= need; k++) {
    if (i + k >= n) break;
    unsigned b = s[i + k];
    if (b < lo || b > hi) break;
    lo = 0x80;
    hi = 0xBF;
  }
  if (k > need) return need + 1;
  *bad_len = k; /* the lead byte plus the continuation bytes that were accepted */
  return 0;
}

/* The index of the first non-ASCII byte at or after i (n if none), 8 bytes at a time. */
static size_t skip_ascii(const unsigned char *s, size_t n, size_t i) {
  while (i + 8 <= n) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ull) break;
    i += 8;
  }
  while (i < n && s[i] < 0x80) i++;
  return i;
}

int lopt_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while ((i = skip_ascii(s, n, i)) < n) {
    size_t bad;
    size_t k = utf8_seq(s, n, i, &bad);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

int lopt_utf8_repair(const unsigned char *s, size_t n, char **out, size_t *out_n, lopt_map *map) {
  char *o = malloc(n * 3 + 4);
  if (!o) return -1;
  size_t i = 0, j = 0;
  while (i < n) {
    size_t bad = 0;
    size_t k = utf8_seq(s, n, i, &bad);
    if (k) {
      memcpy(o + j, s + i, k);
      i += k;
      j += k;
      continue;
    }
    if (map_add(map, (uint32_t)j, (uint32_t)(j + 3), (uint32_t)i, (uint32_t)(i + bad)) < 0) {
      free(o);
      return -1;
    }
    o[j++] = (char)0xEF;
    o[j++] = (char)0xBF;
    o[j++] = (char)0xBD;
    i += bad;
  }
  o[j] = 0;
  *out = o;
  *out_n = j;
  return 0;
}

/* Unicode White_Space (what Oniguruma's and Rust regex's \s match). */
int lopt_is_white_space(uint32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return 0;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---------------------------------------------------------------- NFC */

enum { HS = 0xAC00, HL = 0x1100, HV = 0x1161, HT = 0x11A7, NL = 19, NV = 21, NT = 28 };
enum { HN = NV * NT, HSCOUNT = NL * HN };

static const uint32_t *noninert_bitmap(int form) {
  switch (form) {
  case LOPT_NF_NFD: return kf_nfd_noninert;
  case LOPT_NF_NFKC: return kf_nfkc_noninert;
  case LOPT_NF_NFKD: return kf_nfkd_noninert;
  default: return kf_nfc_noninert;
  }
}

int lopt_nfc_inert(int form, uint32_t cp) {
  if (cp >= KF_NFC_BITMAP_LIMIT) return 1;
  return !((noninert_bitmap(form)[cp >> 5] >> (cp & 31)) & 1u);
}

const char *lopt_unicode_norm_version(void) { return KF_UNICODE_NORM_VERSION; }
const char *lopt_unicode_regex_version(void) { return KF_UNICODE_REGEX_VERSION; }

static unsigned nfc_ccc(uint32_t cp) {
  size_t lo = 0, hi = sizeof kf_nfc_ccc / sizeof kf_nfc_ccc[0];
  uint32_t key = cp << 8;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if ((kf_nfc_ccc[mid] & ~0xFFu) < key) lo = mid + 1;
    else hi = mid;
  }
  if (lo < sizeof kf_nfc_ccc / sizeof kf_nfc_ccc[0] && (kf_nfc_ccc[lo] >> 8) == cp)
    return kf_nfc_ccc[lo] & 0xFFu;
  return 0;
}

/* Full decomposition (canonical, or compatibility when compat) of cp: 0 if none. */
static int nfc_decomp(int compat, uint32_t cp, const uint32_t **seq) {
  const uint32_t *index = compat ? kf_compat_index : kf_canon_index;
  const uint32_t *pool = compat ? kf_compat_pool : kf_canon_pool;
  size_t lo = 0, hi = compat ? KF_COMPAT_N : KF_CANON_N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (index[mid * 3] < cp) lo = mid + 1;
    else hi = mid;
  }
  if (lo < (compat ? KF_COMPAT_N : KF_CANON_N) && index[lo * 3] == cp) {
    *seq = pool + index[lo * 3 + 1];
    return (int)index[lo * 3 + 2];
  }
  return 0;
}

static uint32_t nfc_compose(uint32_t a, uint32_t b) {
  if (a >= HL && a < HL + NL && b >= HV && b < HV + NV)
    return HS + ((a - HL) * NV + (b - HV)) * NT;
  if (a >= HS && a < HS + HSCOUNT && (a - HS) % NT == 0 && b > HT && b < HT + NT)
    return a + (b - HT);
  uint64_t key = ((uint64_t)a << 21) | b;
  size_t lo = 0, hi = sizeof kf_nfc_pair_key / sizeof kf_nfc_pair_key[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (kf_nfc_pair_key[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  if (lo < sizeof kf_nfc_pair_key / sizeof kf_nfc_pair_key[0] && kf_nfc_pair_key[lo] == key)
    return kf_nfc_pair_val[lo];
  return 0;
}

int lopt_nfc_maybe(int form, const unsigned char *s, size_t n) {
  size_t i = 0;
  while ((i = skip_ascii(s, n, i)) < n) { /* ASCII is inert */
    uint32_t cp;
    i += (size_t)lopt_utf8_next(s + i, n - i, &cp);
    if (!lopt_nfc_inert(form, cp)) return 1;
  }
  return 0;
}

static int buf_reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  char *b = realloc(*buf, c);
  if (!b) return -1;
  *buf = b;
  *cap = c;
  return 0;
}

/* The normalization form of one region (valid UTF-8) appended to the buffer: decompose
 * (canonically, or for NFKC/NFKD by compatibility), order, and for NFC/NFKC compose. Each output
 * code point carries the reference's "change" (unicode-normalization-alignments): 0 for a
 * character or the first part of a decomposition, +1 for each further part, and a composite the
 * sum of its parts' changes minus one per absorbed character; changes move with the characters
 * when they are reordered. If chg is not NULL, (*chg)[k] is output code point k's change and
 * *n_out the number of output code points. */
static int nfc_region(int form, const unsigned char *s, size_t n, char **buf, size_t *len,
                      size_t *cap, int32_t **chg, size_t *n_out) {
  int compat = form == LOPT_NF_NFKC || form == LOPT_NF_NFKD;
  int compose = form == LOPT_NF_NFC || form == LOPT_NF_NFKC;
  size_t max_cp = n * 4 + 8; /* decompositions grow at most ~4x per code point */
  uint64_t *cps = malloc(max_cp * sizeof *cps); /* (uint32_t)change << 32 | code point */
  if (!cps) return -1;
  size_t m = 0;
#define CP(x) ((uint32_t)(x))
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    const uint64_t o = (uint64_t)1 << 32; /* change +1 */
    i += (size_t)lopt_utf8_next(s + i, n - i, &cp);
    const uint32_t *seq = NULL;
    int k = 0;
    if (!(cp >= HS && cp < HS + HSCOUNT)) k = nfc_decomp(compat, cp, &seq);
    if (m + (size_t)k + 4 > max_cp) {
      uint64_t *g = realloc(cps, (max_cp = (m + (size_t)k + 4) * 2) * sizeof *cps);
      if (!g) {
        free(cps);
        return -1;
      }
      cps = g;
    }
    if (cp >= HS && cp < HS + HSCOUNT) {
      uint32_t sidx = cp - HS;
      cps[m++] = HL + sidx / HN;
      cps[m++] = o | (HV + (sidx % HN) / NT);
      if (sidx % NT) cps[m++] = o | (HT + sidx % NT);
      continue;
    }
    if (k == 0) {
      cps[m++] = cp;
      continue;
    }
    for (int t = 0; t < k; t++) cps[m++] = (t ? o : 0) | seq[t];
  }
  /* canonical ordering: stable insertion sort of each run of non-starters by ccc */
  for (size_t i = 1; i < m; i++) {
    unsigned cc = nfc_ccc(CP(cps[i]));
    if (cc == 0) continue;
    size_t j = i;
    uint64_t c = cps[i];
    while (j > 0) {
      unsigned pc = nfc_ccc(CP(cps[j - 1]));
      if (pc == 0 || pc <= cc) break;
      cps[j] = cps[j - 1];
      j--;
    }
    cps[j] = c;
  }
  /* canonical composition */
  size_t out = 0;
  long starter = -1;
  for (size_t i = 0; i < m; i++) {
    uint64_t c = cps[i];
    unsigned cc = nfc_ccc(CP(c));
    if (!compose) {
      cps[out++] = c;
      continue;
    }
    if (starter >= 0) {
      int adjacent = (size_t)starter == out - 1;
      unsigned last_cc = adjacent ? 0 : nfc_ccc(CP(cps[out - 1]));
      int blocked = !adjacent && (last_cc == 0 || last_cc >= cc);
      if (!blocked) {
        uint32_t comp = nfc_compose(CP(cps[starter]), CP(c));
        if (comp) {
          int32_t ch = (int32_t)(uint32_t)(cps[starter] >> 32) + (int32_t)(uint32_t)(c >> 32) - 1;
          cps[starter] = ((uint64_t)(uint32_t)ch << 32) | comp;
          continue;
        }
      }
    }
    if (cc == 0) starter = (long)out;
    cps[out++] = c;
  }
  if (buf_reserve(buf, cap, *len + out * 4 + 1) < 0) {
    free(cps);
    return -1;
  }
  if (chg) {
    int32_t *g = realloc(*chg, (out + 1) * sizeof *g);
    if (!g) {
      free(cps);
      return -1;
    }
    *chg = g;
    for (size_t i = 0; i < out; i++) g[i] = (int32_t)(uint32_t)(cps[i] >> 32);
    *n_out = out;
  }
  for (size_t i = 0; i < out; i++) *len += (size_t)lopt_utf8_put(CP(cps[i]), *buf + *len);
#undef CP
  free(cps);
  return 0;
}

int lopt_nfc_append(int form, const unsigned char *s, size_t n, uint32_t base, char **buf,
                    size_t *buf_len, size_t *buf_cap, lopt_map *map) {
  size_t copied = 0;   /* s[0..copied) already appended */
  size_t seg = 0;      /* start of the current segment (last inert character) */
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      seg = i++;
      continue;
    }
    uint32_t cp;
    size_t k = (size_t)lopt_utf8_next(s + i, n - i, &cp);
    if (lopt_nfc_inert(form, cp)) {
      seg = i;
      i += k;
      continue;
    }
    /* region: from the segment start to the next inert character */
    size_t rs = seg, re = i + k;
    while (re < n) {
      uint32_t c2;
      size_t k2 = (size_t)lopt_utf8_next(s + re, n - re, &c2);
      if (lopt_nfc_inert(form, c2)) break;
      re += k2;
    }
    if (buf_reserve(buf, buf_cap, *buf_len + (rs - copied) + 1) < 0) return -1;
    memcpy(*buf + *buf_len, s + copied, rs - copied);
    *buf_len += rs - copied;
    size_t at = *buf_len, n_out = 0;
    int32_t *org = NULL;
    if (nfc_region(form, s + rs, re - rs, buf, buf_len, buf_cap, &org, &n_out) < 0) {
      free(org);
      return -1;
    }
    if (*buf_len - at != re - rs || memcmp(*buf + at, s + rs, re - rs) != 0) {
      /* one region per output character, aligned as the reference does: a character with
       * change <= 0 takes the next input character (and skips -change more), one with change
       * > 0 is inserted and takes the last one taken */
      size_t q = at, cur = rs;
      uint32_t ls = (uint32_t)rs, le = (uint32_t)rs;
      for (size_t c = 0; c < n_out; c++) {
        size_t qe = q + 1;
        while (qe < *buf_len && ((unsigned char)(*buf)[qe] & 0xC0) == 0x80) qe++;
        if (org[c] <= 0 && cur < re) {
          uint32_t dummy;
          ls = (uint32_t)cur;
          cur += (size_t)lopt_utf8_next(s + cur, re - cur, &dummy);
          le = (uint32_t)cur;
          for (int32_t k2 = org[c]; k2 < 0 && cur < re; k2++)
            cur += (size_t)lopt_utf8_next(s + cur, re - cur, &dummy);
        }
        if (map_add(map, (uint32_t)q, (uint32_t)qe, base + ls, base + le) < 0) {
          free(org);
          return -1;
        }
        q = qe;
      }
      /* an empty region at the end: the text after it maps from the region's source end */
      if (map_add(map, (uint32_t)*buf_len, (uint32_t)*buf_len, base + (uint32_t)re,
                  base + (uint32_t)re) < 0) {
        free(org);
        return -1;
      }
    }
    free(org);
    copied = re;
    seg = re;
    i = re;
  }
  if (buf_reserve(buf, buf_cap, *buf_len + (n - copied) + 1) < 0) return -1;
  memcpy(*buf + *buf_len, s + copied, n - copied);
  *buf_len += n - copied;
  return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int pieces_push(lopt_pieces *ps, uint32_t a, uint32_t b, int64_t added) {
  if (ps->n == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 16;
    lopt_piece *p = realloc(ps->p, cap * sizeof *p);
    if (!p) return -1;
    ps->p = p;
    ps->cap = cap;
  }
  ps->p[ps->n].start = a;
  ps->p[ps->n].end = b;
  ps->p[ps->n].added = added;
  ps->n++;
  return 0;
}

/* Start of the code point that ends at s[end). */
static size_t prev_cp_start(const unsigned char *s, size_t lo, size_t end) {
  size_t i = end - 1;
  while (i > lo && (s[i] & 0xC0) == 0x80) i--;
  return i;
}

static int is_word_char(const kf_lopt_tokenizer *tok, const unsigned char *s, size_t n) {
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  if (!md) return 0;
  int rc = pcre2_match(tok->re_word, (PCRE2_SPTR)s, n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, md,
                       NULL);
  pcre2_match_data_free(md);
  return rc >= 0;
}

/* Longest token of set that matches at s[x] within s[..hi), or NULL (lists are longest first). */
static const lopt_added *added_match(const kf_lopt_tokenizer *tok, const lopt_added_set *set,
                                     const unsigned char *s, uint32_t x, uint32_t hi) {
  for (uint32_t k = set->first[s[x]]; k < set->first[s[x] + 1]; k++) {
    const lopt_added *a = &tok->added[set->idx[k]];
    if (a->len <= hi - x && memcmp(s + x, a->content, a->len) == 0) return a;
  }
  return NULL;
}

/* The single first byte of all tokens of set, -1 if none, -2 if several. */
static int added_only_first(const lopt_added_set *set) {
  int only = -1;
  for (int b = 0; b < 256; b++)
    if (set->first[b] != set->first[b + 1]) only = only == -1 ? b : -2;
  return only;
}

/* Split text[lo, hi) at added tokens of set, like the reference's AddedVocabulary::find_matches
 * (leftmost-longest matches; single_word / lstrip / rstrip applied to each match). With cand
 * (sorted positions), matches are tried only there: cand must contain every position in [lo, hi)
 * where a token of set matches (lopt_added_candidates), and then the result is the same as the
 * full scan's. */
static int split_added_impl(const kf_lopt_tokenizer *tok, const lopt_added_set *set,
                            const unsigned char *s, uint32_t lo, uint32_t hi, const uint32_t *cand,
                            size_t n_cand, lopt_pieces *out) {
  uint32_t start_offset = lo;
  uint32_t x = lo;
  size_t ci = 0;
  int only = added_only_first(set); /* one first byte for all tokens: memchr scan */
  while (x < hi) {
    if (cand) {
      while (ci < n_cand && cand[ci] < x) ci++;
      if (ci == n_cand || cand[ci] >= hi) break;
      x = cand[ci];
    } else {
      if (only >= 0 && s[x] != only) {
        const unsigned char *q = memchr(s + x, only, hi - x);
        if (!q) break;
        x = (uint32_t)(q - s);
      }
      if (set->first[s[x]] == set->first[s[x] + 1]) {
        x++;
        continue;
      }
    }
    const lopt_added *best = added_match(tok, set, s, x, hi);
    if (!best) {
      x++;
      continue;
    }
    uint32_t mstart = x, mstop = x + best->len;
    x = mstop;
    if (best->single_word) {
      int start_space = 1, stop_space = 1;
      if (mstart > lo) {
        size_t p = prev_cp_start(s, lo, mstart);
        start_space = !is_word_char(tok, s + p, mstart - p);
      }
      if (mstop < hi) stop_space = !is_word_char(tok, s + mstop, hi - mstop);
      if (!start_space || !stop_space) continue;
    }
    if (best->lstrip) {
      uint32_t ns = mstart;
      while (ns > lo) {
        size_t p = prev_cp_start(s, lo, ns);
        uint32_t cp;
        lopt_utf8_next(s + p, ns - p, &cp);
        if (!lopt_is_white_space(cp)) break;
        ns = (uint32_t)p;
      }
      mstart = ns > start_offset ? ns : start_offset;
    }
    if (best->rstrip) {
      while (mstop < hi) {
        uint32_t cp;
        int k = lopt_utf8_next(s + mstop, hi - mstop, &cp);
        if (!lopt_is_white_space(cp)) break;
        mstop += (uint32_t)k;
      }
    }
    if (start_offset < mstart && pieces_push(out, start_offset, mstart, -1) < 0) return -1;
    if (pieces_push(out, mstart, mstop, best->id) < 0) return -1;
    start_offset = mstop;
  }
  if (start_offset < hi && pieces_push(out, start_offset, hi, -1) < 0) return -1;
  return 0;
}

int lopt_split_added(const kf_lopt_tokenizer *tok, const lopt_added_set *set,
                     const unsigned char *s, uint32_t lo, uint32_t hi, lopt_pieces *out) {
  return split_added_impl(tok, set, s, lo, hi, NULL, 0, out);
}

int lopt_u32vec_push(lopt_u32vec *v, uint32_t x) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    uint32_t *a = realloc(v->v, cap * sizeof *a);
    if (!a) return -1;
    v->v = a;
    v->cap = cap;
  }
  v->v[v->n++] = x;
  return 0;
}

int lopt_added_candidates(const kf_lopt_tokenizer *tok, const unsigned char *s, uint32_t n,
                          lopt_u32vec *out) {
  const lopt_added_set *set = &tok->raw_set;
  if (!set->n) return 0;
  int only = added_only_first(set);
  uint32_t tail = n > set->max_len ? n - set->max_len : 0; /* from here a token may run past n */
  for (uint32_t x = 0; x < n; x++) {
    if (only >= 0 && s[x] != only) {
      const unsigned char *q = memchr(s + x, only, n - x);
      if (!q) break;
      x = (uint32_t)(q - s);
    }
    if (set->first[s[x]] == set->first[s[x] + 1]) continue;
    if ((x >= tail || added_match(tok, set, s, x, n)) && lopt_u32vec_push(out, x) < 0) return -1;
  }
  return 0;
}

int lopt_split_added_cand(const kf_lopt_tokenizer *tok, const unsigned char *s, uint32_t n,
                          const uint32_t *cand, size_t n_cand, lopt_pieces *out) {
  if (!tok->raw_set.n) return n ? pieces_push(out, 0, n, -1) : 0;
  static const uint32_t none = 0;
  return split_added_impl(tok, &tok->raw_set, s, 0, n, cand ? cand : &none, n_cand, out);
}

void lopt_prepared_free(lopt_prepared *pp) {
  free(pp->owned1);
  free(pp->owned2);
  lopt_map_free(&pp->map_repair);
  lopt_map_free(&pp->map_nfc);
  free(pp->pieces.p);
  memset(pp, 0, sizeof *pp);
}

/* Text stage of the pipeline, in the reference's order: decode (repair), split at non-normalized
 * added tokens, normalize each remaining piece, split those at normalized added tokens. */
kf_lopt_status lopt_prepare(const kf_lopt_tokenizer *tok, const char *in, size_t len,
                            int known_valid, int known_nfc_clean, lopt_prepared *pp,
                            kf_lopt_error *err) {
  memset(pp, 0, sizeof *pp);
  if (len >= 0xFFFFFF00u / 3)
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "input of %zu bytes is too long (limit 1.4 GB)",
                        len);
  pp->text = in ? in : "";
  pp->len = len;
  if (!known_valid && !lopt_utf8_valid((const unsigned char *)pp->text, len)) {
    size_t n2;
    if (lopt_utf8_repair((const unsigned char *)pp->text, len, &pp->owned1, &n2,
                         &pp->map_repair) < 0)
      goto nomem;
    pp->text = pp->owned1;
    pp->len = n2;
  }
  const unsigned char *s = (const unsigned char *)pp->text;
  if (tok->raw_set.n) {
    if (lopt_split_added(tok, &tok->raw_set, s, 0, (uint32_t)pp->len, &pp->pieces) < 0) goto nomem;
  } else if (pp->len && pieces_push(&pp->pieces, 0, (uint32_t)pp->len, -1) < 0) {
    goto nomem;
  }
  if (tok->nfc && !(known_nfc_clean && !pp->owned1)) {
    int any = 0;
    for (size_t i = 0; i < pp->pieces.n && !any; i++) {
      const lopt_piece *p = &pp->pieces.p[i];
      if (p->added < 0) any = lopt_nfc_maybe(tok->nfc, s + p->start, p->end - p->start);
    }
    if (any) {
      char *buf = NULL;
      size_t blen = 0, bcap = 0;
      if (buf_reserve(&buf, &bcap, pp->len + 16) < 0) goto nomem;
      for (size_t i = 0; i < pp->pieces.n; i++) {
        lopt_piece *p = &pp->pieces.p[i];
        uint32_t ns = (uint32_t)blen;
        if (p->added < 0) {
          if (lopt_nfc_append(tok->nfc, s + p->start, p->end - p->start, p->start, &buf, &blen,
                              &bcap, &pp->map_nfc) < 0) {
            free(buf);
            goto nomem;
          }
        } else {
          if (buf_reserve(&buf, &bcap, blen + (p->end - p->start) + 1) < 0) {
            free(buf);
            goto nomem;
          }
          memcpy(buf + blen, s + p->start, p->end - p->start);
          blen += p->end - p->start;
        }
        p->start = ns;
        p->end = (uint32_t)blen;
      }
      buf[blen] = 0;
      pp->owned2 = buf;
      pp->text = buf;
      pp->len = blen;
      s = (const unsigned char *)buf;
    }
  }
  if (!tok->generic && lopt_split_normalized(tok, pp) < 0) goto nomem;
  return KF_LOPT_OK;
nomem:
  lopt_prepared_free(pp);
  return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory preparing %zu bytes of text", len);
}

int lopt_split_normalized(const kf_lopt_tokenizer *tok, lopt_prepared *pp) {
  if (!tok->norm_set.n) return 0;
  const unsigned char *s = (const unsigned char *)pp->text;
  lopt_pieces out = {0};
  for (size_t i = 0; i < pp->pieces.n; i++) {
    const lopt_piece *p = &pp->pieces.p[i];
    int rc = p->added >= 0 ? pieces_push(&out, p->start, p->end, p->added)
                           : lopt_split_added(tok, &tok->norm_set, s, p->start, p->end, &out);
    if (rc < 0) {
      free(out.p);
      return -1;
    }
  }
  free(pp->pieces.p);
  pp->pieces = out;
  return 0;
}

int lopt_map_append(lopt_map *dst, const lopt_map *src, uint32_t new_shift, uint32_t old_shift) {
  for (size_t i = 0; i < src->n; i++)
    if (map_add(dst, src->nstart[i] + new_shift, src->nend[i] + new_shift,
                src->ostart[i] + old_shift, src->oend[i] + old_shift) < 0)
      return -1;
  return 0;
}

void lopt_text_block_free(lopt_text_block *b) {
  free(b->repaired);
  lopt_map_free(&b->map);
  free(b->cands.v);
  b->repaired = NULL;
  b->cands.v = NULL;
  b->cands.n = b->cands.cap = 0;
}

int lopt_text_block_scan(const kf_lopt_tokenizer *tok, const unsigned char *in,
                         lopt_text_block *b) {
  const unsigned char *s = in + b->in_lo;
  size_t n = b->in_hi - b->in_lo;
  b->len = n;
  if (!lopt_utf8_valid(s, n)) {
    /* The block starts at a non-continuation byte, so no sequence or maximal invalid subpart
     * of the whole input crosses its edges: repairing it alone gives the same bytes. */
    if (lopt_utf8_repair(s, n, &b->repaired, &b->len, &b->map) < 0) return -1;
    s = (const unsigned char *)b->repaired;
  }
  if (tok->nfc) b->nfc_maybe = lopt_nfc_maybe(tok->nfc, s, b->len);
  return lopt_added_candidates(tok, s, (uint32_t)b->len, &b->cands);
}

size_t lopt_nfc_cut(int form, const unsigned char *s, size_t n, size_t x) {
  while (x < n && (s[x] & 0xC0) == 0x80) x++;
  while (x < n) {
    uint32_t cp;
    int k = lopt_utf8_next(s + x, n - x, &cp);
    if (lopt_nfc_inert(form, cp)) break;
    x += (size_t)k;
  }
  return x;
}

int lopt_nfc_block_run(int form, const unsigned char *s, const lopt_pieces *ps,
                       lopt_nfc_block *b, uint32_t *new_start) {
  if (buf_reserve(&b->buf, &b->cap, (size_t)(b->hi - b->lo) + 16) < 0) return -1;
  for (size_t i = lopt_find_piece(ps, b->lo); i < ps->n && ps->p[i].start < b->hi; i++) {
    const lopt_piece *p = &ps->p[i];
    uint32_t a = p->start > b->lo ? p->start : b->lo;
    uint32_t e = p->end < b->hi ? p->end : b->hi;
    if (p->start >= b->lo) new_start[i] = (uint32_t)b->len;
    if (p->added < 0) {
      if (lopt_nfc_append(form, s + a, e - a, a, &b->buf, &b->len, &b->cap, &b->map) < 0)
        return -1;
    } else {
      if (buf_reserve(&b->buf, &b->cap, b->len + (e - a) + 1) < 0) return -1;
      memcpy(b->buf + b->len, s + a, e - a);
      b->len += e - a;
    }
  }
  return 0;
}

size_t lopt_find_piece(const lopt_pieces *ps, uint32_t pos) {
  size_t lo = 0, hi = ps->n; /* first piece with end > pos */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ps->p[mid].end <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* kf_lopt regex translation: an Oniguruma pattern from tokenizer.json -> a PCRE2 pattern that
 * matches the same text as the reference's Oniguruma 6.9.10 (Unicode 16.0).
 *
 * - \s, \S: Unicode White_Space (Oniguruma's); PCRE2's UCP \s omits U+0085.
 * - \w, \W, \d, \D: Oniguruma's Unicode classes (\w = L, M, Nd, Pc; \d = Nd).
 * - \p{X}, \pX, \P{X}, \p{^X} for a General_Category X: PCRE2 10.42 knows Unicode 14.0, so the
 *   code points that 16.0 adds to X are appended as ranges (and where 16.0 also removes code
 *   points from X, the whole 16.0 class is written out). Other properties (scripts) pass through.
 * - a "String" pattern is quoted literally. */
#include "kf_lopt_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KF_UNICODE_WANT_GC
#include "kf_unicode_tables.h"

#define WS_MEMBERS \
  "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + n + 1) c *= 2;
    char *q = realloc(b->p, c);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = c;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Loose name comparison (case, '_', ' ' and '-' ignored), as Oniguruma's property names. */
static int name_eq(const char *a, size_t an, const char *b) {
  size_t i = 0;
  for (;;) {
    while (i < an && (a[i] == '_' || a[i] == ' ' || a[i] == '-')) i++;
    while (*b == '_') b++;
    if (i == an || !*b) return i == an && !*b;
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)*b)) return 0;
    i++;
    b++;
  }
}

static const kf_gc_delta *find_gc(const char *name, size_t n) {
  for (size_t i = 0; i < sizeof kf_gc_deltas / sizeof kf_gc_deltas[0]; i++)
    if (name_eq(name, n, kf_gc_deltas[i].name) || name_eq(name, n, kf_gc_deltas[i].long_name))
      return &kf_gc_deltas[i];
  return NULL;
}

/* Members (for inside a class) of the Unicode 16.0 category g. */
static void gc_members(sbuf *o, const kf_gc_delta *g) {
  if (g->rem[0] && g->all) {
    sb_str(o, g->all);
    return;
  }
  sb_str(o, "\\p{");
  sb_str(o, g->name);
  sb_str(o, "}");
  sb_str(o, g->add);
}

static int gc_needs_delta(const kf_gc_delta *g) { return g->add[0] || g->rem[0]; }

/* Members of Oniguruma's \w and \d. */
static void word_members(sbuf *o) {
  gc_members(o, find_gc("L", 1));
  gc_members(o, find_gc("M", 1));
  gc_members(o, find_gc("Nd", 2));
  gc_members(o, find_gc("Pc", 2));
}

int lopt_translate_pattern(const char *in, size_t n, char **out, char *why, size_t why_n) {
  sbuf o = {0};
  int in_class = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '\\' && i + 1 < n) {
      char d = in[i + 1];
      if (d == 's' || d == 'S' || d == 'w' || d == 'W' || d == 'd' || d == 'D') {
        int neg = d == 'S' || d == 'W' || d == 'D';
        if (in_class && neg) {
          snprintf(why, why_n, "\\%c inside a character class (offset %zu) is not supported", d,
                   i);
          free(o.p);
          return -1;
        }
        if (!in_class) sb_str(&o, neg ? "[^" : "[");
        if (d == 's' || d == 'S') sb_str(&o, WS_MEMBERS);
        else if (d == 'w' || d == 'W') word_members(&o);
        else gc_members(&o, find_gc("Nd", 2));
        if (!in_class) sb_str(&o, "]");
        i++;
        continue;
      }
      if (d == 'p' || d == 'P') {
        size_t j = i + 2, ns, ne;
        int neg = d == 'P';
        if (j < n && in[j] == '{') {
          size_t e = j + 1;
          while (e < n && in[e] != '}') e++;
          if (e >= n) {
            snprintf(why, why_n, "unterminated \\%c{ at offset %zu", d, i);
            free(o.p);
            return -1;
          }
          ns = j + 1;
          ne = e;
          if (ns < ne && in[ns] == '^') {
            neg = !neg;
            ns++;
          }
          j = e + 1;
        } else {
          ns = j;
          ne = j < n ? j + 1 : j;
          j = ne;
        }
        const kf_gc_delta *g = find_gc(in + ns, ne - ns);
        if (!g || !gc_needs_delta(g)) { /* no change since 14.0, or not a category */
          sb_add(&o, in + i, j - i);
          i = j - 1;
          continue;
        }
        if (in_class && neg) {
          snprintf(why, why_n,
                   "a negated category \\P{%.*s} inside a character class (offset %zu) is not "
                   "supported",
                   (int)(ne - ns), in + ns, i);
          free(o.p);
          return -1;
        }
        if (!in_class) sb_str(&o, neg ? "[^" : "[");
        gc_members(&o, g);
        if (!in_class) sb_str(&o, "]");
        i = j - 1;
        continue;
      }
      if (d == 'Q') { /* literal run up to \E */
        const char *e = NULL;
        for (size_t k = i + 2; k + 1 < n; k++)
          if (in[k] == '\\' && in[k + 1] == 'E') {
            e = in + k;
            break;
          }
        size_t stop = e ? (size_t)(e - in) + 2 : n;
        sb_add(&o, in + i, stop - i);
        i = stop - 1;
        continue;
      }
      sb_add(&o, in + i, 2);
      i++;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = 1;
      sb_add(&o, &c, 1);
      if (i + 1 < n && in[i + 1] == '^') sb_add(&o, in + ++i, 1);
      if (i + 1 < n && in[i + 1] == ']') sb_add(&o, in + ++i, 1); /* leading ] is literal */
      continue;
    }
    if (in_class && c == '[' && i + 1 < n && in[i + 1] == ':') { /* [:posix:] */
      size_t stop = i + 1;
      for (size_t k = i + 2; k + 1 < n; k++)
        if (in[k] == ':' && in[k + 1] == ']') {
          stop = k + 2;
          break;
        }
      sb_add(&o, in + i, stop - i);
      i = stop - 1;
      continue;
    }
    if (in_class && c == '[') {
      snprintf(why, why_n, "nested character class (offset %zu) is not supported", i);
      free(o.p);
      return -1;
    }
    if (in_class && c == ']') in_class = 0;
    sb_add(&o, &c, 1);
  }
  sb_str(&o, "");
  if (o.oom) {
    free(o.p);
    snprintf(why, why_n, "out of memory");
    return -1;
  }
  *out = o.p;
  return 0;
}

pcre2_code *lopt_compile_pattern(const char *pat, size_t n, int literal, char *why,
                                 size_t why_n) {
  char *tr = NULL;
  if (literal) {
    sbuf o = {0};
    for (size_t i = 0; i < n; i++) {
      char c = pat[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (unsigned char)c >= 0x80))
        sb_add(&o, "\\", 1);
      sb_add(&o, &c, 1);
    }
    sb_str(&o, "");
    if (o.oom) {
      free(o.p);
      snprintf(why, why_n, "out of memory");
      return NULL;
    }
    tr = o.p;
  } else if (lopt_translate_pattern(pat, n, &tr, why, why_n) < 0) {
    return NULL;
  }
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)tr, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                 &ec, &eo, NULL);
  free(tr);
  if (!re) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(ec, msg, sizeof msg);
    snprintf(why, why_n, "does not compile with PCRE2 (%s, near offset %zu of the translated "
             "pattern)", (const char *)msg, (size_t)eo);
    return NULL;
  }
  /* JIT for normal and hard-partial matching; without JIT pcre2_match interprets. */
  (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
  return re;
}

/* Unicode 16.0 General_Category of cp, as its two-letter name. */
const char *lopt_general_category(uint32_t cp) {
  size_t lo = 0, hi = sizeof kf_gc_runs / sizeof kf_gc_runs[0];
  while (hi - lo > 1) { /* last run starting at or before cp */
    size_t mid = (lo + hi) / 2;
    if ((kf_gc_runs[mid] >> 8) <= cp) lo = mid;
    else hi = mid;
  }
  return kf_gc_names[kf_gc_runs[lo] & 0xFFu];
}

/* Punctuation as the reference's Punctuation pre-tokenizer sees it (General_Category P* of
 * Unicode 8.0, the version of its unicode_categories crate). */
int lopt_is_punct8(uint32_t cp) {
  size_t lo = 0, hi = sizeof kf_punct8_ranges / sizeof kf_punct8_ranges[0] / 2;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (kf_punct8_ranges[2 * mid + 1] < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < sizeof kf_punct8_ranges / sizeof kf_punct8_ranges[0] / 2 &&
         kf_punct8_ranges[2 * lo] <= cp;
}

/* Lowercase of cp (Rust's char::to_lowercase): number of code points written to out (1..3). */
int lopt_to_lower(uint32_t cp, uint32_t out[3]) {
  size_t lo = 0, hi = KF_LOWER_N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (kf_lower_index[3 * mid] < cp) lo = mid + 1;
    else hi = mid;
  }
  if (lo < KF_LOWER_N && kf_lower_index[3 * lo] == cp) {
    uint32_t n = kf_lower_index[3 * lo + 2];
    for (uint32_t k = 0; k < n && k < 3; k++) out[k] = kf_lower_pool[kf_lower_index[3 * lo + 1] + k];
    return (int)(n < 3 ? n : 3);
  }
  out[0] = cp;
  return 1;
}

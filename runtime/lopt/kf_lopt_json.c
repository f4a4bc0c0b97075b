/* kf_lopt strict JSON check, run before cJSON parses a tokenizer.json: at least as strict as
 * the reference's loader (serde_json): the whole file valid UTF-8, RFC 8259 grammar, no raw
 * control characters in strings, no lone surrogate escapes, nesting at most 128 deep (serde's
 * recursion limit), nothing but whitespace after the value; and, stricter than the reference,
 * no duplicate key in any object (serde keeps the last of a duplicate vocab key, cJSON the
 * first: an ambiguous file is refused). Errors name the JSON path, the reason and line:column. */
#include "kf_lopt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JSON_MAX_DEPTH = 128 };

typedef struct key_ent {
  uint64_t h;
  size_t pos;      /* where the key starts in the file */
  size_t off, len; /* decoded key in the arena */
} key_ent;

typedef struct jctx {
  const unsigned char *s;
  size_t n, i;
  char *msg;
  size_t msg_n;
  int failed;
  /* path: segments as text */
  char path[512];
  size_t path_len;
  /* decoded keys of the open objects */
  char *arena;
  size_t arena_len, arena_cap;
  key_ent *keys;
  size_t n_keys, cap_keys;
} jctx;

static void where(const jctx *c, size_t at, size_t *line, size_t *col) {
  *line = 1;
  *col = 1;
  for (size_t k = 0; k < at && k < c->n; k++) {
    if (c->s[k] == '\n') {
      (*line)++;
      *col = 1;
    } else if ((c->s[k] & 0xC0) != 0x80) {
      (*col)++;
    }
  }
}

static int jfail(jctx *c, size_t at, const char *what) {
  if (c->failed) return -1;
  c->failed = 1;
  size_t line, col;
  where(c, at, &line, &col);
  char shown[200]; /* a long path: its start and end */
  if (c->path_len < sizeof shown) snprintf(shown, sizeof shown, "%.199s", c->path);
  else snprintf(shown, sizeof shown, "%.100s...%.80s", c->path, c->path + c->path_len - 80);
  snprintf(c->msg, c->msg_n, "at %s%s (line %zu, column %zu, byte %zu): %s",
           c->path_len ? "$" : "$ (top level)", shown, line, col, at, what);
  return -1;
}

static size_t path_push_key(jctx *c, const char *k, size_t n) {
  size_t old = c->path_len;
  int plain = n > 0 && n <= 40;
  for (size_t i = 0; i < n && plain; i++)
    plain = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || k[i] == '_' ||
            (i && k[i] >= '0' && k[i] <= '9');
  char seg[80];
  if (plain) snprintf(seg, sizeof seg, ".%.*s", (int)n, k);
  else {
    size_t j = 0;
    seg[j++] = '[';
    seg[j++] = '"';
    for (size_t i = 0; i < n && j < 60; i++) {
      unsigned char ch = (unsigned char)k[i];
      if (ch < 0x20 || ch == '"' || ch == '\\') j += (size_t)snprintf(seg + j, 8, "\\x%02X", ch);
      else seg[j++] = (char)ch;
    }
    if (n > 50) j += (size_t)snprintf(seg + j, 8, "...");
    seg[j++] = '"';
    seg[j++] = ']';
    seg[j] = 0;
  }
  size_t sl = strlen(seg);
  if (c->path_len + sl < sizeof c->path) {
    memcpy(c->path + c->path_len, seg, sl + 1);
    c->path_len += sl;
  }
  return old;
}

static size_t path_push_index(jctx *c, size_t idx) {
  size_t old = c->path_len;
  char seg[32];
  int k = snprintf(seg, sizeof seg, "[%zu]", idx);
  if (c->path_len + (size_t)k < sizeof c->path) {
    memcpy(c->path + c->path_len, seg, (size_t)k + 1);
    c->path_len += (size_t)k;
  }
  return old;
}

static void path_pop(jctx *c, size_t old) {
  c->path_len = old;
  c->path[old] = 0;
}

static void skip_ws(jctx *c) {
  while (c->i < c->n &&
         (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
    c->i++;
}

static int arena_put(jctx *c, const char *p, size_t n) {
  if (c->arena_len + n + 4 > c->arena_cap) {
    size_t cap = c->arena_cap ? c->arena_cap : 4096;
    while (cap < c->arena_len + n + 4) cap *= 2;
    char *a = realloc(c->arena, cap);
    if (!a) return -1;
    c->arena = a;
    c->arena_cap = cap;
  }
  memcpy(c->arena + c->arena_len, p, n);
  c->arena_len += n;
  return 0;
}

static int hexval(unsigned char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int read_hex4(jctx *c, size_t at, uint32_t *v) {
  if (at + 4 > c->n) return -1;
  uint32_t x = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(c->s[at + (size_t)k]);
    if (h < 0) return -1;
    x = x * 16 + (uint32_t)h;
  }
  *v = x;
  return 0;
}

/* A string at c->i (the opening quote). If keep, its decoded bytes are appended to the arena. */
static int parse_string(jctx *c, int keep) {
  size_t start = c->i++;
  for (;;) {
    if (c->i >= c->n) return jfail(c, start, "unterminated string (end of input)");
    unsigned char ch = c->s[c->i];
    if (ch == '"') {
      c->i++;
      return 0;
    }
    if (ch < 0x20) return jfail(c, c->i, "raw control character inside a string (must be escaped)");
    if (ch != '\\') {
      size_t k = c->i + 1;
      while (k < c->n && c->s[k] != '"' && c->s[k] != '\\' && c->s[k] >= 0x20) k++;
      if (keep && arena_put(c, (const char *)c->s + c->i, k - c->i) < 0)
        return jfail(c, c->i, "out of memory");
      c->i = k;
      continue;
    }
    if (c->i + 1 >= c->n) return jfail(c, start, "unterminated string (end of input)");
    unsigned char e = c->s[c->i + 1];
    char one = 0;
    switch (e) {
    case '"': one = '"'; break;
    case '\\': one = '\\'; break;
    case '/': one = '/'; break;
    case 'b': one = '\b'; break;
    case 'f': one = '\f'; break;
    case 'n': one = '\n'; break;
    case 'r': one = '\r'; break;
    case 't': one = '\t'; break;
    case 'u': {
      uint32_t v, lo;
      if (read_hex4(c, c->i + 2, &v) < 0) return jfail(c, c->i, "bad \\u escape (needs 4 hex digits)");
      size_t used = 6;
      if (v >= 0xDC00 && v <= 0xDFFF) return jfail(c, c->i, "lone trailing surrogate in a \\u escape");
      if (v >= 0xD800 && v <= 0xDBFF) {
        if (c->i + 8 > c->n || c->s[c->i + 6] != '\\' || c->s[c->i + 7] != 'u' ||
            read_hex4(c, c->i + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
          return jfail(c, c->i, "lone leading surrogate in a \\u escape");
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        used = 12;
      }
      char u8[4];
      int k = lopt_utf8_put(v, u8);
      if (keep && arena_put(c, u8, (size_t)k) < 0) return jfail(c, c->i, "out of memory");
      c->i += used;
      continue;
    }
    default: return jfail(c, c->i, "invalid escape in a string");
    }
    if (keep && arena_put(c, &one, 1) < 0) return jfail(c, c->i, "out of memory");
    c->i += 2;
  }
}

static int parse_number(jctx *c) {
  size_t st = c->i;
  if (c->i < c->n && c->s[c->i] == '-') c->i++;
  if (c->i >= c->n) return jfail(c, st, "invalid number");
  if (c->s[c->i] == '0') {
    c->i++;
  } else if (c->s[c->i] >= '1' && c->s[c->i] <= '9') {
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') c->i++;
  } else {
    return jfail(c, st, "invalid number");
  }
  if (c->i < c->n && c->s[c->i] == '.') {
    c->i++;
    size_t d = c->i;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') c->i++;
    if (d == c->i) return jfail(c, st, "invalid number (no digit after '.')");
  }
  if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
    c->i++;
    if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-')) c->i++;
    size_t d = c->i;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') c->i++;
    if (d == c->i) return jfail(c, st, "invalid number (no digit in the exponent)");
  }
  return 0;
}

static int key_cmp(const void *a, const void *b) {
  const key_ent *x = a, *y = b;
  if (x->h != y->h) return x->h < y->h ? -1 : 1;
  return x->off < y->off ? -1 : x->off > y->off;
}

static int parse_value(jctx *c, int depth);

static int parse_object(jctx *c, int depth) {
  size_t open = c->i++;
  size_t keys_base = c->n_keys, arena_base = c->arena_len;
  skip_ws(c);
  if (c->i < c->n && c->s[c->i] == '}') {
    c->i++;
    return 0;
  }
  for (;;) {
    skip_ws(c);
    if (c->i >= c->n) return jfail(c, open, "unterminated object (end of input)");
    if (c->s[c->i] != '"') return jfail(c, c->i, "expected a string key");
    size_t koff = c->arena_len, kpos = c->i;
    if (parse_string(c, 1) < 0) return -1;
    size_t klen = c->arena_len - koff;
    if (c->n_keys == c->cap_keys) {
      size_t cap = c->cap_keys ? c->cap_keys * 2 : 256;
      key_ent *k = realloc(c->keys, cap * sizeof *k);
      if (!k) return jfail(c, c->i, "out of memory");
      c->keys = k;
      c->cap_keys = cap;
    }
    c->keys[c->n_keys].h = lopt_hash_bytes(c->arena + koff, klen);
    c->keys[c->n_keys].off = koff;
    c->keys[c->n_keys].len = klen;
    c->keys[c->n_keys].pos = kpos;
    c->n_keys++;
    skip_ws(c);
    if (c->i >= c->n || c->s[c->i] != ':') return jfail(c, c->i, "expected ':' after a key");
    c->i++;
    size_t old = path_push_key(c, c->arena + koff, klen);
    if (parse_value(c, depth + 1) < 0) return -1;
    path_pop(c, old);
    skip_ws(c);
    if (c->i >= c->n) return jfail(c, open, "unterminated object (end of input)");
    if (c->s[c->i] == ',') {
      c->i++;
      continue;
    }
    if (c->s[c->i] == '}') {
      c->i++;
      break;
    }
    return jfail(c, c->i, "expected ',' or '}' in an object");
  }
  /* duplicate keys */
  size_t nk = c->n_keys - keys_base;
  key_ent *k = c->keys + keys_base;
  qsort(k, nk, sizeof *k, key_cmp);
  for (size_t a = 0; a + 1 < nk; a++)
    for (size_t b = a + 1; b < nk && k[b].h == k[a].h; b++)
      if (k[a].len == k[b].len && memcmp(c->arena + k[a].off, c->arena + k[b].off, k[a].len) == 0) {
        size_t old = path_push_key(c, c->arena + k[a].off, k[a].len);
        int r = jfail(c, k[a].pos > k[b].pos ? k[a].pos : k[b].pos, "duplicate key in an object");
        path_pop(c, old);
        return r;
      }
  c->n_keys = keys_base;
  c->arena_len = arena_base;
  return 0;
}

static int parse_array(jctx *c, int depth) {
  size_t open = c->i++;
  skip_ws(c);
  if (c->i < c->n && c->s[c->i] == ']') {
    c->i++;
    return 0;
  }
  for (size_t idx = 0;; idx++) {
    size_t old = path_push_index(c, idx);
    if (parse_value(c, depth + 1) < 0) return -1;
    path_pop(c, old);
    skip_ws(c);
    if (c->i >= c->n) return jfail(c, open, "unterminated array (end of input)");
    if (c->s[c->i] == ',') {
      c->i++;
      continue;
    }
    if (c->s[c->i] == ']') {
      c->i++;
      return 0;
    }
    return jfail(c, c->i, "expected ',' or ']' in an array");
  }
}

static int parse_lit(jctx *c, const char *lit) {
  size_t k = strlen(lit);
  if (c->i + k > c->n || memcmp(c->s + c->i, lit, k) != 0)
    return jfail(c, c->i, "expected a JSON value");
  c->i += k;
  return 0;
}

static int parse_value(jctx *c, int depth) {
  skip_ws(c);
  if (c->i >= c->n) return jfail(c, c->i, "expected a value (end of input)");
  unsigned char ch = c->s[c->i];
  if ((ch == '{' || ch == '[') && depth >= JSON_MAX_DEPTH) {
    char why[96];
    snprintf(why, sizeof why, "nesting deeper than %d levels (the reference's recursion limit)",
             JSON_MAX_DEPTH);
    return jfail(c, c->i, why);
  }
  switch (ch) {
  case '{': return parse_object(c, depth);
  case '[': return parse_array(c, depth);
  case '"': return parse_string(c, 0);
  case 't': return parse_lit(c, "true");
  case 'f': return parse_lit(c, "false");
  case 'n': return parse_lit(c, "null");
  default:
    if (ch == '-' || (ch >= '0' && ch <= '9')) return parse_number(c);
    return jfail(c, c->i, "expected a JSON value");
  }
}

int lopt_json_check(const char *s, size_t n, char *msg, size_t msg_n) {
  jctx c = {0};
  c.s = (const unsigned char *)s;
  c.n = n;
  c.msg = msg;
  c.msg_n = msg_n;
  if (!lopt_utf8_valid(c.s, n)) {
    size_t k = 0; /* first invalid byte */
    while (k < n) {
      size_t e = k + 1;
      while (e < n && e < k + 4 && (c.s[e] & 0xC0) == 0x80) e++;
      if (!lopt_utf8_valid(c.s + k, e - k)) break;
      k = e;
    }
    jfail(&c, k, "the file is not valid UTF-8");
    return -1;
  }
  int rc = parse_value(&c, 0);
  if (rc == 0) {
    skip_ws(&c);
    if (c.i < n) rc = jfail(&c, c.i, "trailing characters after the JSON value");
  }
  free(c.arena);
  free(c.keys);
  return rc;
}

/* lopt_unit WORKDIR: the tokenizer's parts on small tokenizer.json files written here, with
 * expected results worked out by hand from the reference's rules: BPE merge order (rank, then
 * leftmost), ignore_merges, byte_fallback / unk / fuse_unk, added tokens (leftmost-longest,
 * lstrip, rstrip, single_word), Oniguruma's \s (U+0085), UTF-8 repair (WHATWG), NFC, decode. */
#include "kf_lopt_int.h"
#include "lopt_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Byte-level tokenizer.json: ids 0..255 are the 256 byte characters (in byte order), then
 * `extra` tokens (model-space strings, comma-separated JSON strings), then merges. */
static char *bl_json(const char *extra, const char *merges, const char *pretok, int ignore_merges,
                     const char *added) {
  uint32_t cp[256];
  uint32_t next = 256;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    cp[b] = keep ? (uint32_t)b : next++;
  }
  size_t cap = 65536;
  char *j = malloc(cap);
  size_t n = (size_t)snprintf(j, cap, "{\"version\":\"1.0\",\"added_tokens\":[%s],\"normalizer\":null,"
                              "\"pre_tokenizer\":%s,\"model\":{\"type\":\"BPE\",\"dropout\":null,"
                              "\"ignore_merges\":%s,\"vocab\":{",
                              added, pretok, ignore_merges ? "true" : "false");
  for (int b = 0; b < 256; b++) {
    char u[8];
    int k = lopt_utf8_put(cp[b], u);
    u[k] = 0;
    if (b == '"' || b == '\\') n += (size_t)snprintf(j + n, cap - n, "\"\\%s\":%d,", u, b);
    else n += (size_t)snprintf(j + n, cap - n, "\"%s\":%d,", u, b);
  }
  /* extra tokens get ids 256.. in order */
  const char *p = extra;
  int id = 256;
  while (*p) {
    const char *q = strchr(p, ',');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    n += (size_t)snprintf(j + n, cap - n, "\"%.*s\":%d,", (int)len, p, id++);
    p += len + (q ? 1 : 0);
  }
  j[n - 1] = '}';
  n += (size_t)snprintf(j + n, cap - n, ",\"merges\":[%s]}}", merges);
  return j;
}

static kf_lopt_tokenizer *load_str(const char *json, const char *what) {
  kf_lopt_error err = {0};
  kf_lopt_tokenizer *tok = NULL;
  if (kf_lopt_load_json(json, strlen(json), what, &tok, &err)) {
    printf("FAIL load %s: %s\n", what, err.msg);
    lt_failures++;
    return NULL;
  }
  return tok;
}

/* Encode text and compare ids with expect[] (n_expect); prints the ids on mismatch. */
static void expect_ids(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                       const uint32_t *expect, size_t n_expect, const char *name) {
  kf_lopt_tokens t = {0};
  kf_lopt_error err = {0};
  char got[512] = "";
  int ok = tok && kf_lopt_encode(tok, text, len, &t, &err) == KF_LOPT_OK && t.n == n_expect;
  for (size_t i = 0; ok && i < n_expect; i++) ok &= t.ids[i] == expect[i];
  size_t g = 0;
  for (size_t i = 0; i < t.n && g < sizeof got - 32; i++)
    g += (size_t)snprintf(got + g, sizeof got - g, "%s%u[%u,%u)", i ? " " : "", t.ids[i],
                          t.start[i], t.end[i]);
  lt_check(ok, name, "%s", got);
  kf_lopt_tokens_free(&t);
}

static const char GPT2_PRE[] = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                               "\"trim_offsets\":true,\"use_regex\":true}";

static void test_bpe(void) {
  /* ids: bytes are 0..255 (their own value), extras ab=256 bc=257 abc=258 aa=259 */
  char *j = bl_json("ab,bc,abc,aa", "\"b c\",\"a b\",\"a bc\"", GPT2_PRE, 0, "");
  kf_lopt_tokenizer *t = load_str(j, "bpe rank order 1");
  expect_ids(t, "abc", 3, (uint32_t[]){258}, 1, "bpe: b+c (rank 0) first, then a+bc -> abc");
  kf_lopt_free(t);
  free(j);
  j = bl_json("ab,bc,abc,aa", "\"a b\",\"b c\",\"a bc\"", GPT2_PRE, 0, "");
  t = load_str(j, "bpe rank order 2");
  expect_ids(t, "abc", 3, (uint32_t[]){256, 'c'}, 2,
             "bpe: a+b (rank 0) first blocks b+c; no ab+c merge -> ab c");
  kf_lopt_free(t);
  free(j);
  j = bl_json("ab,bc,abc,aa", "[\"a\",\"b\"],[\"b\",\"c\"],[\"a\",\"bc\"]", GPT2_PRE, 1, "");
  t = load_str(j, "ignore_merges");
  expect_ids(t, "abc", 3, (uint32_t[]){258}, 1,
             "ignore_merges: a word in the vocab is one token (merges would give ab c)");
  expect_ids(t, "abcab", 5, (uint32_t[]){256, 'c', 256}, 3,
             "ignore_merges: a word not in the vocab still merges (array merge syntax)");
  kf_lopt_free(t);
  free(j);
  j = bl_json("aa", "\"a a\"", GPT2_PRE, 0, ""); /* aa=256 */
  t = load_str(j, "leftmost");
  expect_ids(t, "aaa", 3, (uint32_t[]){256, 'a'}, 2, "bpe: equal ranks merge leftmost first");
  expect_ids(t, "aaaa", 4, (uint32_t[]){256, 256}, 2, "bpe: aaaa -> aa aa");
  /* GPT-2 regex: " aaa" is one pre-token with its leading space; "a a" splits */
  expect_ids(t, "a a", 3, (uint32_t[]){'a', ' ', 'a'}, 3,
             "pre-tokenizer: 'a', ' a' are separate words (space byte is its own token)");
  kf_lopt_free(t);
  free(j);
}

static void test_fallback(void) {
  const char *base =
      "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":%s,\"fuse_unk\":%s,\"unk_token\":\"<unk>\","
      "\"vocab\":{\"a\":0,\"<unk>\":1,\"<0x62>\":2,\"<0x63>\":3,\"é\":4},\"merges\":[]},"
      "\"pre_tokenizer\":null,\"normalizer\":null,\"added_tokens\":[]}";
  char j[1024];
  snprintf(j, sizeof j, base, "true", "false");
  kf_lopt_tokenizer *t = load_str(j, "byte_fallback");
  expect_ids(t, "ab", 2, (uint32_t[]){0, 2}, 2, "byte_fallback: b -> <0x62>");
  expect_ids(t, "adda", 4, (uint32_t[]){0, 1, 1, 0}, 4,
             "byte_fallback: d has no <0x64> -> <unk> per character (fuse_unk false)");
  expect_ids(t, "a\xC3\xA9", 3, (uint32_t[]){0, 4}, 2, "non-byte-level: é is one vocab symbol");
  char *dec;
  size_t dn;
  kf_lopt_error err;
  uint32_t ids[] = {0, 2, 3};
  int ok = t && kf_lopt_decode_bytes(t, ids, 3, &dec, &dn, &err) == KF_LOPT_OK;
  lt_check(ok && dn == 3 && memcmp(dec, "abc", 3) == 0, "decode: <0x62><0x63> -> bytes 'bc'",
           "%s", ok ? dec : err.msg);
  if (ok) free(dec);
  kf_lopt_free(t);
  snprintf(j, sizeof j, base, "false", "true");
  t = load_str(j, "fuse_unk");
  expect_ids(t, "abdda", 5, (uint32_t[]){0, 1, 0}, 3,
             "fuse_unk: b d d (no byte fallback) fuse into one <unk>");
  kf_lopt_free(t);
}

static void test_added(void) {
  const char *added =
      "{\"id\":300,\"content\":\"[CLS]\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
      "\"normalized\":false,\"special\":true},"
      "{\"id\":301,\"content\":\"my\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,"
      "\"normalized\":false,\"special\":false},"
      "{\"id\":302,\"content\":\"ony\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,"
      "\"normalized\":false,\"special\":false},"
      "{\"id\":303,\"content\":\"[CLS]x\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
      "\"normalized\":false,\"special\":true}";
  char *j = bl_json("", "", GPT2_PRE, 0, added);
  kf_lopt_tokenizer *t = load_str(j, "added tokens");
  /* "[CLS] my name" -> [CLS] | " my " (lstrip+rstrip take both spaces) | n a m e */
  expect_ids(t, "[CLS] my name", 13, (uint32_t[]){300, 301, 'n', 'a', 'm', 'e'}, 6,
             "added: special first, lstrip/rstrip absorb the spaces around 'my'");
  /* single_word: 'ony' inside 'Anthony' is not a match; alone it is */
  expect_ids(t, "thony ony", 9, (uint32_t[]){'t', 'h', 'o', 'n', 'y', ' ', 302},
             7, "added: single_word 'ony' only as a whole word");
  expect_ids(t, "[CLS]x[CLS]", 11, (uint32_t[]){303, 300}, 2,
             "added: leftmost-longest ([CLS]x over [CLS])");
  kf_lopt_free(t);
  free(j);
}

static void test_whitespace_regex(void) {
  /* Split "\s+|\S+" then ByteLevel: with Oniguruma's \s, U+0085 is whitespace, so "a<NEL>" is two
   * words and the merge a+0xC2 (a + 'Â') cannot apply; PCRE2's own \s would give one word. */
  const char *pre = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                    "{\"Regex\":\"\\\\s+|\\\\S+\"},\"behavior\":\"Isolated\",\"invert\":false},"
                    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}";
  char *j = bl_json("aÂ", "\"a Â\"", pre, 0, "");
  kf_lopt_tokenizer *t = load_str(j, "split regex");
  expect_ids(t, "a\xC2\x85", 3, (uint32_t[]){'a', 0xC2, 0x85}, 3,
             "regex: U+0085 is \\s as in Oniguruma (no a+0xC2 merge across it)");
  expect_ids(t, "a\xC2\xA9", 3, (uint32_t[]){256, 0xA9}, 2,
             "regex: U+00A9 is \\S, so a+0xC2 merges inside the word");
  kf_lopt_free(t);
  free(j);
}

static void test_utf8(void) {
  struct {
    const char *in;
    const char *out;
    const char *what;
  } c[] = {
      {"a\xC3(", "a\xEF\xBF\xBD(", "truncated 2-byte sequence"},
      {"\xE2\x82", "\xEF\xBF\xBD", "truncated 3-byte sequence at the end: one U+FFFD"},
      {"\xF0\x9F\x98" "A", "\xEF\xBF\xBD" "A", "truncated 4-byte sequence before ASCII"},
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", "surrogate: three U+FFFD"},
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD", "overlong: two U+FFFD"},
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD",
       "above U+10FFFF: four U+FFFD"},
      {"\x80\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD", "lone continuation bytes"},
      {"\xE2\x28\xA1", "\xEF\xBF\xBD(\xEF\xBF\xBD", "interrupted sequence"},
      {"ok\xF0\x9F\x98\x80", "ok\xF0\x9F\x98\x80", "valid 4-byte sequence kept"},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    char *out = NULL;
    size_t on = 0;
    lopt_map m = {0};
    size_t n = strlen(c[i].in);
    int valid = lopt_utf8_valid((const unsigned char *)c[i].in, n);
    int rc = lopt_utf8_repair((const unsigned char *)c[i].in, n, &out, &on, &m);
    char name[128];
    snprintf(name, sizeof name, "utf8 repair (WHATWG): %s", c[i].what);
    lt_check(rc == 0 && on == strlen(c[i].out) && memcmp(out, c[i].out, on) == 0 &&
                 valid == (strcmp(c[i].in, c[i].out) == 0),
             name, "%zu -> %zu bytes, %zu replaced regions", n, on, m.n);
    free(out);
    lopt_map_free(&m);
  }
}

static void test_nfc(void) {
  struct {
    const char *in;
    const char *out;
    const char *what;
  } c[] = {
      {"e\xCC\x81", "\xC3\xA9", "e + acute -> é"},
      {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81", "Hangul L V T -> 각"},
      {"\xE2\x84\xAB", "\xC3\x85", "singleton Angstrom sign -> Å"},
      {"a\xCC\x82\xCC\xA3", "\xE1\xBA\xAD", "reorder: a + circumflex + dot below -> ậ"},
      {">\xCC\xB8", "\xE2\x89\xAF", "> + long solidus -> ≯"},
      {"abc \xE4\xBD\xA0\xE5\xA5\xBD", "abc \xE4\xBD\xA0\xE5\xA5\xBD", "already NFC: unchanged"},
      {"\xE0\xA4\xA8\xE0\xA4\xBC", "\xE0\xA4\xA9", "Devanagari NA + nukta -> NNNA"},
      {"\xE0\xA4\x95\xE0\xA4\xBC", "\xE0\xA4\x95\xE0\xA4\xBC",
       "Devanagari KA + nukta stays (composition exclusion)"},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    char *buf = NULL;
    size_t bl = 0, bc = 0;
    lopt_map m = {0};
    size_t n = strlen(c[i].in);
    int rc = lopt_nfc_append(LOPT_NF_NFC, (const unsigned char *)c[i].in, n, 0, &buf, &bl, &bc, &m);
    char name[128];
    snprintf(name, sizeof name, "nfc: %s", c[i].what);
    lt_check(rc == 0 && bl == strlen(c[i].out) && memcmp(buf, c[i].out, bl) == 0, name,
             "%zu -> %zu bytes", n, bl);
    free(buf);
    lopt_map_free(&m);
  }
}

static void test_api_errors(void) {
  kf_lopt_error err = {0};
  kf_lopt_tokens t = {0};
  lt_check(kf_lopt_encode(NULL, "x", 1, &t, &err) == KF_LOPT_EINVAL, "api: encode(NULL tok)",
           "%s", err.msg);
  kf_lopt_pool *p = NULL;
  lt_check(kf_lopt_pool_create(0, &p, &err) == KF_LOPT_EINVAL && !p, "api: pool of 0 threads",
           "%s", err.msg);
  char *j = bl_json("", "", GPT2_PRE, 0, "");
  kf_lopt_tokenizer *tok = load_str(j, "api");
  uint32_t bad = 99999;
  char *out = NULL;
  size_t on;
  lt_check(tok && kf_lopt_decode(tok, &bad, 1, &out, &on, &err) == KF_LOPT_EINVAL && !out,
           "api: decode of an unknown id", "%s", err.msg);
  /* empty input: no tokens, no error */
  int ok = tok && kf_lopt_encode(tok, "", 0, &t, &err) == KF_LOPT_OK && t.n == 0;
  lt_check(ok, "api: empty text gives 0 tokens", "%zu tokens", t.n);
  const char *s = "caf\xC3\xA9 \xFF!";
  ok = tok && kf_lopt_encode(tok, s, strlen(s), &t, &err) == KF_LOPT_OK;
  ok = ok && kf_lopt_decode_bytes(tok, t.ids, t.n, &out, &on, &err) == KF_LOPT_OK;
  lt_check(ok && on == strlen(s) + 2 && memcmp(out, "caf\xC3\xA9 \xEF\xBF\xBD!", on) == 0 &&
               t.end[t.n - 1] == strlen(s),
           "api: decode(encode(x)) = x with U+FFFD for the bad byte, offsets in input bytes",
           "%zu tokens", t.n);
  free(out);
  kf_lopt_tokens_free(&t);
  kf_lopt_free(tok);
  free(j);
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  test_utf8();
  test_nfc();
  test_bpe();
  test_fallback();
  test_added();
  test_whitespace_regex();
  test_api_errors();
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

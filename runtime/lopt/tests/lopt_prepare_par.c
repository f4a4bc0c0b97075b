/* lopt_prepare_par TOK...: the parallel text stage (lopt_prepare_parallel: UTF-8 repair, added
 * token split, NFC in blocks on a pool) gives exactly what the sequential lopt_prepare gives:
 * the same final bytes, the same pieces and the same offset-map regions. Texts are built so that
 * block edges fall everywhere inside invalid UTF-8 sequences (truncated, overlong, surrogate,
 * above U+10FFFF, runs of continuation bytes), NFC-combining sequences (marks to reorder and
 * compose, Hangul jamo, singletons, a run of marks longer than a block), added tokens (with
 * lstrip / rstrip / single_word, and a normalized one that only exists after NFC), and their
 * mixtures; every block length from 1 to 48 bytes is tried on each. Then LoPT with small
 * prepare blocks must equal sequential encoding. Runs the real tokenizers given on the command
 * line plus a small synthetic one. C only: also runs under ASan+UBSan. */
#include "kf_lopt_int.h"
#include "lopt_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Byte-level tokenizer with the NFC normalizer, no merges, and added tokens exercising every
 * option: raw "<s>" (special), raw " sep " with lstrip/rstrip, raw "ab" single_word, and
 * normalized "\u00e9!" (matches "e\u0301!" only after NFC). */
static char *synthetic_json(void) {
  size_t cap = 32768, n = 0;
  char *j = malloc(cap);
  n += (size_t)snprintf(
      j + n, cap - n,
      "{\"version\":\"1.0\",\"added_tokens\":["
      "{\"id\":300,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
      "\"normalized\":false,\"special\":true},"
      "{\"id\":301,\"content\":\"sep\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,"
      "\"normalized\":false,\"special\":false},"
      "{\"id\":302,\"content\":\"ab\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,"
      "\"normalized\":false,\"special\":false},"
      "{\"id\":303,\"content\":\"\\u00e9!\",\"single_word\":false,\"lstrip\":false,"
      "\"rstrip\":false,\"normalized\":true,\"special\":false}],"
      "\"normalizer\":{\"type\":\"NFC\"},"
      "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
      "\"use_regex\":true},"
      "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"vocab\":{");
  uint32_t next = 256;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    uint32_t cp = keep ? (uint32_t)b : next++;
    char u[8];
    int k = lopt_utf8_put(cp, u);
    u[k] = 0;
    n += (size_t)snprintf(j + n, cap - n, "\"%s%s\":%d%s", b == '"' || b == '\\' ? "\\" : "", u,
                          b, b < 255 ? "," : "");
  }
  snprintf(j + n, cap - n, "},\"merges\":[]}}");
  return j;
}

/* Fragments the test texts are made of. */
static const char *const FRAG[] = {
    "plain ascii text ",
    "\xE2\x82",             /* truncated 3-byte sequence */
    "\x80\x80\xBF",         /* lone continuation bytes */
    "\xC0\xAF",             /* overlong */
    "\xED\xA0\x80",         /* surrogate */
    "\xF4\x90\x80\x80",     /* above U+10FFFF */
    "\xF0\x9F\x98",         /* truncated 4-byte */
    "\xF0\x9F\x98\x80",     /* valid 4-byte */
    "\xFF",
    "e\xCC\x81",            /* e + combining acute -> U+00E9 */
    "a\xCC\x81\xCC\xA3",    /* marks out of canonical order */
    "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", /* Hangul L V T jamo -> one syllable */
    "\xE2\x84\xAB",         /* ANGSTROM SIGN -> U+00C5 */
    "\xEF\xA4\x80",         /* CJK compatibility ideograph U+F900 */
    "\xCC\x81\xCC\x81",     /* marks with no starter */
    "<s>", "<|endoftext|>", "<|im_start|>", "<|begin_of_text|>",
    " sep ", "  sep", "ab", "xab ", " ab ",
    "e\xCC\x81!",           /* the normalized added token, only after NFC */
    "\xC3\xA9!",
    "e\xFF\xCC\x81",        /* U+FFFD between a starter and its mark */
    "\xE6\xBC\xA2\xE5\xAD\x97", /* CJK */
    "\n\n", "\t", "  ", "123",
};
enum { N_FRAG = sizeof FRAG / sizeof FRAG[0] };

static size_t build(uint64_t *rs, char *out, size_t cap, int variant) {
  size_t n = 0;
  if (variant == 0) { /* every fragment once, in order */
    for (int f = 0; f < N_FRAG; f++) {
      size_t k = strlen(FRAG[f]);
      if (n + k > cap) break;
      memcpy(out + n, FRAG[f], k);
      n += k;
    }
    return n;
  }
  if (variant == 1) { /* one mark run longer than any block */
    n = (size_t)snprintf(out, cap, "xo");
    for (int i = 0; i < 60 && n + 2 <= cap; i++) {
      memcpy(out + n, i % 3 ? "\xCC\x81" : "\xCC\xA3", 2);
      n += 2;
    }
    return n + (size_t)snprintf(out + n, cap - n, " end");
  }
  if (variant == 2) { /* continuation bytes only, then a lead byte */
    for (; n < 70 && n < cap; n++) out[n] = (char)(0x80 | (n & 0x3F));
    out[n++] = (char)0xE2;
    return n;
  }
  while (n < 400) { /* random mixture */
    const char *f = FRAG[lt_rand(rs) % N_FRAG];
    size_t k = strlen(f);
    if (n + k > cap) break;
    memcpy(out + n, f, k);
    n += k;
  }
  return n;
}

static int same_map(const lopt_map *a, const lopt_map *b) {
  if (a->n != b->n) return 0;
  size_t sz = a->n * sizeof(uint32_t);
  return !a->n || (memcmp(a->nstart, b->nstart, sz) == 0 && memcmp(a->nend, b->nend, sz) == 0 &&
                   memcmp(a->ostart, b->ostart, sz) == 0 && memcmp(a->oend, b->oend, sz) == 0);
}

/* Empty string if equal, else what differs first. */
static const char *diff_prepared(const lopt_prepared *a, const lopt_prepared *b) {
  if (a->len != b->len) return "final text length";
  if (a->len && memcmp(a->text, b->text, a->len) != 0) return "final text bytes";
  if (a->pieces.n != b->pieces.n) return "number of pieces";
  for (size_t i = 0; i < a->pieces.n; i++)
    if (a->pieces.p[i].start != b->pieces.p[i].start || a->pieces.p[i].end != b->pieces.p[i].end ||
        a->pieces.p[i].added != b->pieces.p[i].added)
      return "a piece";
  if (!same_map(&a->map_repair, &b->map_repair)) return "UTF-8 repair map";
  if (!same_map(&a->map_nfc, &b->map_nfc)) return "NFC map";
  return "";
}

/* Every block length 1..48 on one text; returns the number of disagreeing block lengths. */
static int check_text(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool, const char *text,
                      size_t n, const char *name, size_t *n_cases, size_t *n_changed) {
  kf_lopt_error err = {0};
  lopt_prepared seq;
  if (lopt_prepare(tok, text, n, 0, 0, &seq, &err)) {
    lt_check(0, name, "sequential prepare failed: %s", err.msg);
    return 1;
  }
  *n_changed += seq.map_repair.n + seq.map_nfc.n;
  int bad = 0;
  for (size_t block = 1; block <= 48; block++) {
    lopt_prepared par;
    if (lopt_prepare_parallel(tok, pool, text, n, block, &par, &err)) {
      lt_check(0, name, "block %zu: parallel prepare failed: %s", block, err.msg);
      bad++;
      continue;
    }
    const char *d = diff_prepared(&seq, &par);
    if (*d && bad++ < 3) lt_check(0, name, "block %zu: %s differs", block, d);
    lopt_prepared_free(&par);
    (*n_cases)++;
  }
  lopt_prepared_free(&seq);
  return bad;
}

static void run_tokenizer(const kf_lopt_tokenizer *tok, const char *tname, kf_lopt_pool *pool) {
  char text[4096], name[160];
  uint64_t rs = 0x5eed;
  size_t cases = 0, changed = 0;
  int bad = 0;
  const char *variants[] = {"all fragments", "long combining run", "continuation bytes only"};
  for (int v = 0; v < 3; v++) {
    size_t n = build(&rs, text, sizeof text, v);
    snprintf(name, sizeof name, "%s parallel prepare == sequential: %s", tname, variants[v]);
    size_t c0 = cases, ch0 = changed;
    int b = check_text(tok, pool, text, n, name, &cases, &changed);
    lt_check(b == 0, name, "%zu bytes, %zu block lengths, %zu repaired/normalized regions", n,
             cases - c0, changed - ch0);
    bad += b;
  }
  size_t c0 = cases, ch0 = changed;
  int rb = 0;
  for (int r = 0; r < 12; r++) {
    size_t n = build(&rs, text, sizeof text, 3);
    snprintf(name, sizeof name, "%s parallel prepare == sequential: random mixture %d", tname, r);
    rb += check_text(tok, pool, text, n, name, &cases, &changed);
  }
  snprintf(name, sizeof name, "%s parallel prepare == sequential: 12 random mixtures", tname);
  lt_check(rb == 0, name, "%zu block lengths, %zu repaired/normalized regions", cases - c0,
           changed - ch0);
  /* empty input */
  lopt_prepared par;
  kf_lopt_error err = {0};
  int ok = lopt_prepare_parallel(tok, pool, "", 0, 4, &par, &err) == KF_LOPT_OK &&
           par.len == 0 && par.pieces.n == 0;
  if (ok) lopt_prepared_free(&par);
  snprintf(name, sizeof name, "%s parallel prepare of empty text", tname);
  lt_check(ok, name, "%s", ok ? "no pieces" : err.msg);

  /* end to end: LoPT with tiny prepare blocks and chunks == sequential encode */
  kf_lopt_tokens seq = {0}, lp = {0};
  int e2e_bad = 0;
  size_t e2e = 0;
  for (int r = 0; r < 16; r++) {
    size_t n = build(&rs, text, sizeof text, r < 3 ? r : 3);
    if (kf_lopt_encode(tok, text, n, &seq, &err)) {
      e2e_bad++;
      continue;
    }
    for (size_t block = 1; block <= 33; block += 4) {
      kf_lopt_par_opts o = {0};
      o.prepare_block_bytes = block;
      o.chunk_bytes = 16 + (size_t)(lt_rand(&rs) % 64);
      o.overlap_bytes = 8;
      e2e++;
      if (kf_lopt_encode_parallel(tok, pool, text, n, &o, &lp, NULL, &err) != KF_LOPT_OK ||
          !lt_same_tokens(&seq, &lp, "LoPT vs sequential"))
        e2e_bad++;
    }
  }
  snprintf(name, sizeof name, "%s LoPT with parallel prepare (blocks 1..33 B) == sequential",
           tname);
  lt_check(e2e_bad == 0, name, "%zu encodes, %d differ", e2e, e2e_bad);
  kf_lopt_tokens_free(&seq);
  kf_lopt_tokens_free(&lp);
}

int main(int argc, char **argv) {
  kf_lopt_error err = {0};
  kf_lopt_pool *pool;
  if (kf_lopt_pool_create(2, &pool, &err)) {
    printf("FAIL pool: %s\n", err.msg);
    return 1;
  }
  char *j = synthetic_json();
  kf_lopt_tokenizer *syn = NULL;
  if (kf_lopt_load_json(j, strlen(j), "synthetic", &syn, &err)) {
    printf("FAIL load synthetic tokenizer: %s\n", err.msg);
    return 1;
  }
  free(j);
  kf_lopt_info info;
  kf_lopt_get_info(syn, &info);
  lt_check(info.normalizer_nfc && info.n_added == 4, "synthetic tokenizer: NFC and 4 added tokens",
           "nfc %d, added %zu", info.normalizer_nfc, info.n_added);
  run_tokenizer(syn, "synthetic", pool);
  kf_lopt_free(syn);
  for (int a = 1; a < argc; a++) {
    const char *name = strstr(argv[a], "qwen") ? "qwen3" : strstr(argv[a], "llama") ? "llama3"
                                                                                    : argv[a];
    kf_lopt_tokenizer *tok = lt_load_or_die(argv[a]);
    run_tokenizer(tok, name, pool);
    kf_lopt_free(tok);
  }
  kf_lopt_pool_free(pool);
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

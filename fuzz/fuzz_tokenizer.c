/* libFuzzer target for runtime/lopt (links kforge_lopt). The first byte of the input selects:
 *   even: the rest is a tokenizer.json: kf_lopt_load_json must load it or refuse it with a
 *         message (never crash); a loaded tokenizer encodes and decodes a fixed text (plain,
 *         with special tokens added and as text) and LoPT must equal sequential on it;
 *   odd:  the rest is text for the tokenizers made at start-up: a built-in byte-level one (NFC,
 *         a GPT-2 split regex, added tokens with lstrip/rstrip/single_word), a built-in
 *         SentencePiece-style one (Replace, Prepend, byte_fallback, fuse_unk, Metaspace-like
 *         decoders) and, if KF_FUZZ_TOKENIZER names a tokenizer.json, that real one. Each text
 *         is encoded sequentially and with LoPT (2 threads, chunk sizes from the input), which
 *         must agree exactly; offsets must be ordered and inside the text; decode must succeed.
 * Any disagreement aborts (a finding). Seeds: fuzz/corpus/tokenizer/. */
#include "kf_lopt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char BYTE_LEVEL_JSON[] =
    "{\"added_tokens\":["
    "{\"id\":300,\"content\":\"<|end|>\",\"special\":true,\"normalized\":false},"
    "{\"id\":301,\"content\":\"<w>\",\"special\":false,\"normalized\":true,\"single_word\":true},"
    "{\"id\":302,\"content\":\"[L]\",\"special\":true,\"normalized\":false,\"lstrip\":true,"
    "\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
    "{\"Regex\":\"(?i:'s|'t)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}"
    "\\\\p{N}]+[\\\\r\\\\n]*|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\"}},"
    "{\"SpecialToken\":{\"id\":\"<|end|>\"}}],\"special_tokens\":{\"<|end|>\":{\"ids\":[300]}}},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{%s},\"merges\":[%s]}}";

static const char SP_JSON[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
    "\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\"\\u2581\"},\"behavior\":"
    "\"MergedWithNext\",\"invert\":false},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
    "\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"ids\":[1]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
    "\"\\u2581\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":"
    "\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"vocab\":{%s},\"merges\":[%s]}}";

static kf_lopt_tokenizer *g_tok[3];
static kf_lopt_pool *g_pool;

/* Byte-level vocabulary: the 256 byte characters and a few merges. */
static char *byte_level_json(void) {
  static char vocab[8192], merges[512];
  size_t j = 0;
  uint32_t next = 256;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    uint32_t cp = keep ? (uint32_t)b : next++;
    j += (size_t)snprintf(vocab + j, sizeof vocab - j, "%s\"\\u%04x\":%d", b ? "," : "", cp, b);
  }
  j += (size_t)snprintf(vocab + j, sizeof vocab - j,
                        ",\"th\":256,\"the\":257,\"\\u0120t\":258,\"\\u0120th\":259,\"in\":260,"
                        "\"ing\":261,\"\\u00c3\\u00a9\":262");
  snprintf(merges, sizeof merges,
           "\"t h\",\"th e\",\"\\u0120 t\",\"\\u0120t h\",\"i n\",\"in g\",\"\\u00c3 \\u00a9\"");
  char *out = malloc(sizeof BYTE_LEVEL_JSON + j + strlen(merges) + 1);
  if (out) sprintf(out, BYTE_LEVEL_JSON, vocab, merges);
  return out;
}

static char *sp_json(void) {
  static char vocab[8192];
  size_t j = (size_t)snprintf(vocab, sizeof vocab,
                              "\"<unk>\":0,\"<s>\":1,\"\\u2581\":2,\"a\":3,\"b\":4,\"\\u2581a\":5,"
                              "\"ab\":6,\"\\u2581ab\":7,\"\\u00e9\":8");
  for (int b = 0; b < 256; b++)
    j += (size_t)snprintf(vocab + j, sizeof vocab - j, ",\"<0x%02X>\":%d", b, 9 + b);
  const char *merges = "[\"\\u2581\",\"a\"],[\"a\",\"b\"],[\"\\u2581a\",\"b\"]";
  char *out = malloc(sizeof SP_JSON + j + strlen(merges) + 1);
  if (out) sprintf(out, SP_JSON, vocab, merges);
  return out;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  kf_lopt_error err = {0};
  char *j[2] = {byte_level_json(), sp_json()};
  for (int i = 0; i < 2; i++) {
    if (!j[i] || kf_lopt_load_json(j[i], strlen(j[i]), "builtin", &g_tok[i], &err)) {
      fprintf(stderr, "fuzz_tokenizer: built-in tokenizer %d: %s\n", i, err.msg);
      abort();
    }
    free(j[i]);
  }
  const char *real = getenv("KF_FUZZ_TOKENIZER");
  if (real && *real && kf_lopt_load(real, &g_tok[2], &err)) {
    fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
    abort();
  }
  if (kf_lopt_pool_create(2, &g_pool, &err)) abort();
  return 0;
}

static void check_text(const kf_lopt_tokenizer *tok, const char *text, size_t n, size_t chunk,
                       uint64_t seed) {
  kf_lopt_error err = {0};
  kf_lopt_tokens seq = {0}, par = {0};
  if (kf_lopt_encode(tok, text, n, &seq, &err)) {
    fprintf(stderr, "fuzz_tokenizer: encode failed: %s\n", err.msg);
    abort();
  }
  for (size_t i = 0; i < seq.n; i++)
    if (seq.start[i] > seq.end[i] || seq.end[i] > n || (i && seq.start[i] < seq.start[i - 1])) {
      fprintf(stderr, "fuzz_tokenizer: token %zu offsets [%u, %u) out of order (len %zu)\n", i,
              seq.start[i], seq.end[i], n);
      abort();
    }
  kf_lopt_par_opts o = {0};
  o.chunk_bytes = chunk;
  o.overlap_bytes = 4 + chunk % 61;
  o.seed = seed | 1;
  o.min_chunk_bytes = 1;
  if (kf_lopt_encode_parallel(tok, g_pool, text, n, &o, &par, NULL, &err) ||
      kf_lopt_tokens_diff(&seq, &par) || seq.n != par.n) {
    fprintf(stderr, "fuzz_tokenizer: LoPT differs from sequential (%zu vs %zu tokens): %s\n",
            seq.n, par.n, err.msg);
    abort();
  }
  char *dec = NULL;
  size_t dn;
  if (kf_lopt_decode(tok, seq.ids, seq.n, &dec, &dn, &err)) {
    fprintf(stderr, "fuzz_tokenizer: decode of its own ids failed: %s\n", err.msg);
    abort();
  }
  free(dec);
  kf_lopt_tokens t = {0};
  for (unsigned f = 1; f <= 3; f++)
    if (kf_lopt_encode_ex(tok, text, n, f, &t, &err)) {
      fprintf(stderr, "fuzz_tokenizer: encode with flags %u failed: %s\n", f, err.msg);
      abort();
    }
  kf_lopt_tokens_free(&t);
  kf_lopt_tokens_free(&seq);
  kf_lopt_tokens_free(&par);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  if ((data[0] & 1) == 0) {
    kf_lopt_error err = {0};
    kf_lopt_tokenizer *tok = NULL;
    kf_lopt_status s = kf_lopt_load_json(rest, n, "fuzz.json", &tok, &err);
    if (s == KF_LOPT_OK) {
      static const char text[] = "Hello, w\xC3\xB6rld! <|end|> 12345 \xF0\x9F\x98\x80 e\xCC\x81 ";
      check_text(tok, text, sizeof text - 1, 5, data[0]);
      kf_lopt_free(tok);
    } else if (!err.msg[0]) {
      fprintf(stderr, "fuzz_tokenizer: load refused (%s) without a message\n",
              kf_lopt_status_name(s));
      abort();
    }
    return 0;
  }
  size_t chunk = 1 + (size_t)(data[0] >> 1) * 3;
  for (int i = 0; i < 3; i++)
    if (g_tok[i]) check_text(g_tok[i], rest, n, chunk, (uint64_t)size * 2654435761u + data[0]);
  return 0;
}

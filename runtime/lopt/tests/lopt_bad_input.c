/* lopt_bad_input WORKDIR REAL_TOKENIZER_JSON: missing, empty, truncated and malformed
 * tokenizer.json files and unsupported tokenizer kinds give a clear error (status and a message
 * naming the problem) and never a crash; the CLI returns non-zero for them. Failure paths first. */
#include "kf_lopt_cli.h"
#include "lopt_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char GOOD_MODEL[] = "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                                 "\"merges\":[\"a b\"]}";

static void expect_fail(const char *dir, const char *name, const char *json, size_t len,
                        kf_lopt_status want, const char *must_contain) {
  char path[1024];
  snprintf(path, sizeof path, "%s/bad_%s.json", dir, name);
  if (json && len == 0) len = strlen(json);
  if (json && lt_write_file(path, json, len) < 0) {
    printf("FAIL cannot write %s\n", path);
    lt_failures++;
    return;
  }
  kf_lopt_error err = {0};
  kf_lopt_tokenizer *tok = NULL;
  kf_lopt_status s = kf_lopt_load(path, &tok, &err);
  char label[160];
  snprintf(label, sizeof label, "load %s -> %s", name, kf_lopt_status_name(want));
  const char *after_path = strncmp(err.msg, path, strlen(path)) == 0 ? err.msg + strlen(path) : "";
  lt_check(s == want && !tok && strstr(after_path, must_contain) != NULL, label, "[%s] %s",
           kf_lopt_status_name(s), err.msg);
  kf_lopt_free(tok);
  /* the CLI exits 1 with the message, no crash */
  char in_path[1024];
  snprintf(in_path, sizeof in_path, "%s/bad_input_text.txt", dir);
  char *argv[] = {"tokenize", "--tokenizer", path, in_path, NULL};
  snprintf(label, sizeof label, "cli %s exits 1", name);
  int rc = kf_tokenize_main(4, argv);
  lt_check(rc == 1, label, "exit %d", rc);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lopt_bad_input WORKDIR REAL_TOKENIZER_JSON\n");
    return 2;
  }
  const char *dir = argv[1];
  if (lt_mkdir_p(dir) < 0) {
    printf("FAIL cannot create %s\n", dir);
    return 1;
  }
  char in_path[1024];
  snprintf(in_path, sizeof in_path, "%s/bad_input_text.txt", dir);
  lt_write_file(in_path, "hello world\n", 12);
  char buf[4096];
  /* J() formats into buf; its length is taken inside expect_fail (len 0 = strlen) */
#define J(...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)
  expect_fail(dir, "missing", NULL, 0, KF_LOPT_EIO, "cannot open");
  {
    FILE *f = fopen(J("%s/bad_empty.json", dir), "wb"); /* a zero-byte file */
    if (f) fclose(f);
  }
  expect_fail(dir, "empty", NULL, 0, KF_LOPT_EPARSE, "empty file");
  expect_fail(dir, "not_json", "this is not json", 16, KF_LOPT_EPARSE,
              "invalid JSON at $ (top level) (line 1, column 1, byte 0): expected a JSON value");
  const char *t1 = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\"";
  expect_fail(dir, "truncated_small", t1, strlen(t1), KF_LOPT_EPARSE,
              "at $.model.vocab (line 1, column 48, byte 47): expected ':' after a key");
  /* strictness (the reference's serde_json refuses these; cJSON alone accepted them) */
  expect_fail(dir, "dup_key", J("{\"model\":{\"type\":\"BPE\",\"type\":\"BPE\",\"vocab\":{},"
                                "\"merges\":[]}}"),
              0, KF_LOPT_EPARSE, "at $.model.type (line 1, column 24, byte 23): duplicate key");
  expect_fail(dir, "dup_vocab_key",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\\u0061\":1},\"merges\":[]}}"), 0,
              KF_LOPT_EPARSE, "at $.model.vocab.a (line 1, column 39, byte 38): duplicate key");
  expect_fail(dir, "dup_vocab_id",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}"), 0,
              KF_LOPT_EPARSE, "model.vocab[\"b\"]: id 0 is already used by another entry");
  expect_fail(dir, "raw_control",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\x01\":0},\"merges\":[]}}"), 0,
              KF_LOPT_EPARSE, "raw control character inside a string");
  expect_fail(dir, "bad_utf8",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\xC3\x28\":0},\"merges\":[]}}"), 0,
              KF_LOPT_EPARSE, "(line 1, column 35, byte 34): the file is not valid UTF-8");
  expect_fail(dir, "lone_surrogate",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\ud800\":0},\"merges\":[]}}"), 0,
              KF_LOPT_EPARSE, "at $.model.vocab (line 1, column 34, byte 33): lone leading surrogate");
  expect_fail(dir, "trailing",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}} x"), 0,
              KF_LOPT_EPARSE, "trailing characters after the JSON value");
  {
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    if (deep) {
      size_t k = (size_t)sprintf(deep, "{\"normalizer\":");
      for (size_t i = 0; i < depth; i++) deep[k++] = '[';
      for (size_t i = 0; i < depth; i++) deep[k++] = ']';
      deep[k++] = '}';
      expect_fail(dir, "deep", deep, k, KF_LOPT_EPARSE,
                  "at $.normalizer[0][0][0][0][0][0][0][0][0][0][0][0]");
      expect_fail(dir, "deep_reason", deep, k, KF_LOPT_EPARSE, "nesting deeper than 128 levels");
      free(deep);
    }
  }
  expect_fail(dir, "array", "[1,2,3]", 7, KF_LOPT_EPARSE, "top level must be a JSON object");
  expect_fail(dir, "no_model", "{\"normalizer\":null}", 19, KF_LOPT_EPARSE, "missing object \"model\"");
  expect_fail(dir, "wordpiece", J("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}"), 0,
              KF_LOPT_EUNSUPPORTED, "model.type \"WordPiece\" is not supported");
  expect_fail(dir, "unigram", J("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}"), 0,
              KF_LOPT_EUNSUPPORTED, "model.type \"Unigram\" is not supported");
  expect_fail(dir, "bert_pretok",
              J("{\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},%s}", GOOD_MODEL),
              0, KF_LOPT_EUNSUPPORTED, "pre_tokenizer type \"BertPreTokenizer\" is not supported");
  expect_fail(dir, "roberta_post",
              J("{\"post_processor\":{\"type\":\"RobertaProcessing\"},%s}", GOOD_MODEL),
              0, KF_LOPT_EUNSUPPORTED, "post_processor type \"RobertaProcessing\" is not supported");
  expect_fail(dir, "precompiled", J("{\"normalizer\":{\"type\":\"Precompiled\"},%s}", GOOD_MODEL),
              0, KF_LOPT_EUNSUPPORTED, "normalizer type \"Precompiled\" is not supported");
  expect_fail(dir, "split_behavior",
              J("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
                "\"behavior\":\"Dropped\",\"invert\":false},%s}",
                GOOD_MODEL),
              0, KF_LOPT_EPARSE, "pre_tokenizer.behavior \"Dropped\" is not one of Removed");
  expect_fail(dir, "bad_regex",
              J("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?<\"},"
                "\"behavior\":\"Isolated\",\"invert\":false},%s}",
                GOOD_MODEL),
              0, KF_LOPT_EUNSUPPORTED, "does not compile with PCRE2");
  expect_fail(dir, "dropout",
              J("{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]}}"),
              0, KF_LOPT_EUNSUPPORTED, "model.dropout=0.1 is not supported");
  expect_fail(dir, "vocab_array", J("{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}"),
              0, KF_LOPT_EPARSE, "model.vocab must be an object");
  expect_fail(dir, "negative_id",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}"), 0,
              KF_LOPT_EPARSE, "model.vocab[\"a\"]: id must be an integer");
  expect_fail(dir, "merge_oov",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}"),
              0, KF_LOPT_EPARSE, "model.merges[0] (\"a\" \"c\"): right token is not in");
  expect_fail(dir, "merge_syntax",
              J("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"abc\"]}}"),
              0, KF_LOPT_EPARSE, "expected \"left right\"");
  expect_fail(dir, "added_bad",
              J("{\"added_tokens\":[{\"id\":\"x\"}],%s}", GOOD_MODEL), 0,
              KF_LOPT_EPARSE, "added_tokens[0] needs an integer \"id\"");
  /* truncations of the real file: half, and a few bytes short */
  size_t n;
  char *real = lt_read_file(argv[2], &n);
  if (!real) {
    printf("FAIL %s missing (run runtime/lopt/setup.sh)\n", argv[2]);
    return 1;
  }
  expect_fail(dir, "real_half", real, n / 2, KF_LOPT_EPARSE, "unterminated");
  expect_fail(dir, "real_minus_3", real, n - 3, KF_LOPT_EPARSE, "unterminated object (end of input)");
  free(real);

  /* size caps (unbounded inputs): a device that never ends is refused with the cap named */
  {
    kf_lopt_error e = {0};
    kf_lopt_tokenizer *z = NULL;
    kf_lopt_status st = kf_lopt_load("/dev/zero", &z, &e);
    lt_check(st == KF_LOPT_EIO && !z && strstr(e.msg, "larger than the tokenizer.json cap of 512 MiB"),
             "load /dev/zero stops at the 512 MiB cap", "[%s] %s", kf_lopt_status_name(st), e.msg);
    kf_lopt_free(z);
    char *az[] = {"tokenize", "--tokenizer", argv[2], "--max-input", "2", "/dev/zero", NULL};
    lt_check(kf_tokenize_main(6, az) == 1, "cli input /dev/zero stops at --max-input 2 (exit 1)",
             "%s", "");
    char *az2[] = {"tokenize", "--tokenizer", argv[2], "--max-input", "0", "x", NULL};
    lt_check(kf_tokenize_main(6, az2) == 2, "cli --max-input 0 is a usage error", "%s", "");
    char *ad[] = {"tokenize", "--tokenizer", argv[2], "--decode", in_path, NULL};
    lt_check(kf_tokenize_main(5, ad) == 1, "cli --decode of text that is not ids exits 1", "%s",
             "");
  }
  /* CLI usage errors */
  char *a1[] = {"tokenize", "--threads", "0", "x", NULL};
  lt_check(kf_tokenize_main(4, a1) == 2, "cli --threads 0 is a usage error (exit 2)", "%s", "");
  char *a2[] = {"tokenize", "--frobnicate", NULL};
  lt_check(kf_tokenize_main(2, a2) == 2, "cli unknown option is a usage error (exit 2)", "%s", "");
  char *a3[] = {"tokenize", "in.txt", NULL};
  lt_check(kf_tokenize_main(2, a3) == 2, "cli without --tokenizer is a usage error", "%s", "");
  char *a4[] = {"tokenize", "--tokenizer", argv[2], "/nonexistent/input.txt", NULL};
  lt_check(kf_tokenize_main(4, a4) == 1, "cli with a missing input file exits 1", "%s", "");
  char *a5[] = {"tokenize", "--bench", NULL};
  lt_check(kf_tokenize_main(2, a5) == 2, "cli --bench without --tokenizer is a usage error", "%s",
           "");
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

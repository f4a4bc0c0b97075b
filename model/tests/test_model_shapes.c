/*
** test_model_shapes.c: `kforge shapes` for each supported architecture against hand-written
** expected lists (model/tests/shapes/NAME.txt, computed by hand from the published config.json
** values typed into model/tests/configs/NAME.json), then the error paths: unknown model_type,
** missing fields (named in the message), wrong types, bad options.
** Usage: test_model_shapes TESTS_DIR
*/
#include <stdlib.h>
#include <string.h>

#include "kf_model.h"
#include "model_fixtures.h"

typedef struct shape_case {
  const char *name;
  int64_t tokens[4];
  int n_tokens;
  int64_t batch, kv_len;
  const char *gemms;
  int bits;
  int64_t group;
} shape_case;

static const shape_case cases[] = {
    {"qwen3-8b", {1, 16}, 2, 1, 8192, "msd_gemm,dequant_gemm", 8, 0},
    {"llama-3-8b", {1}, 1, 1, 4096, "msd_gemm", 8, 0},
    {"mistral-7b-v0.1", {1}, 1, 1, 4096, "msd_gemm", 4, 32},
    {"gemma-7b", {1}, 1, 1, 4096, "msd_gemm", 8, 0},
    {"qwen3-30b-a3b", {1}, 1, 1, 4096, "msd_gemm", 8, 0},
    {"qwen1.5-moe-a2.7b", {1}, 1, 1, 4096, "msd_gemm", 8, 0},
    {"deepseek-v3", {1}, 1, 4, 2048, "msd_gemm", 8, 0},
    {"deepseek-v2-lite", {1}, 1, 1, 4096, "msd_gemm", 8, 0},
};

/* First differing line of two texts (1-based), 0 when equal. */
static int first_diff(const char *a, const char *b) {
  int line = 1;
  for (size_t i = 0;; i++) {
    if (a[i] != b[i]) return line;
    if (!a[i]) return 0;
    if (a[i] == '\n') line++;
  }
}

static int run_case(const char *dir, const shape_case *c) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/configs/%s.json", dir, c->name);
  kf_model_cfg cfg;
  if (kf_model_cfg_load(&cfg, path, err, sizeof err)) {
    printf("FAIL: %s: %s\n", c->name, err);
    return 0;
  }
  kf_shapes_opts o = {c->tokens, c->n_tokens, c->batch, c->kv_len, c->gemms, c->bits, c->group};
  char *got = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&got, &len);
  int rc = kf_model_shapes(&cfg, &o, f, err, sizeof err);
  fclose(f);
  snprintf(path, sizeof path, "%s/shapes/%s.txt", dir, c->name);
  char *want = kf_test_read(path);
  int diff = want && !rc ? first_diff(got, want) : -1;
  if (diff) {
    printf("FAIL: %s: %s; output differs from %s at line %d:\n%s", c->name, rc ? err : "ok", path, diff, got);
  } else {
    int lines = 0;
    for (char *p = got; *p; p++) lines += *p == '\n';
    printf("ok  : %s (%s): %d lines as expected\n", c->name, cfg.model_type, lines);
  }
  free(got);
  free(want);
  return diff == 0;
}

/* A config that must be rejected with a message containing `want`. */
static int bad_config(const char *what, const char *json, const char *want) {
  kf_model_cfg cfg;
  char err[512] = "";
  int rc = kf_model_cfg_parse(&cfg, json, strlen(json), "bad/config.json", err, sizeof err);
  int ok = rc != 0 && strstr(err, want) && strstr(err, "bad/config.json");
  printf("%s: %s rejected: %s\n", ok ? "ok  " : "FAIL", what, rc ? err : "(accepted)");
  return ok;
}

#define BASE "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100, "

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_model_shapes TESTS_DIR\n");
    return 2;
  }
  int ok = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) ok &= run_case(argv[1], &cases[i]);

  ok &= bad_config("unknown architecture", "{\"model_type\": \"bert\", " BASE "\"intermediate_size\": 8}",
                   "unsupported model_type 'bert'");
  ok &= bad_config("no model_type", "{" BASE "\"intermediate_size\": 8}", "'model_type'");
  ok &= bad_config("missing hidden_size", "{\"model_type\": \"llama\", \"num_hidden_layers\": 2}", "'hidden_size'");
  ok &= bad_config("missing intermediate_size", "{\"model_type\": \"qwen3\", " BASE "\"head_dim\": 16}",
                   "'intermediate_size'");
  ok &= bad_config("MoE without num_experts",
                   "{\"model_type\": \"qwen3_moe\", " BASE "\"intermediate_size\": 8, \"num_experts_per_tok\": 2}",
                   "'num_experts'");
  ok &= bad_config("qwen2_moe without shared expert size",
                   "{\"model_type\": \"qwen2_moe\", " BASE
                   "\"intermediate_size\": 8, \"num_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 8}",
                   "'shared_expert_intermediate_size'");
  ok &= bad_config("MLA without kv_lora_rank", "{\"model_type\": \"deepseek_v3\", " BASE "\"intermediate_size\": 8}",
                   "'kv_lora_rank'");
  ok &= bad_config("string for a number", "{\"model_type\": \"llama\", " BASE "\"intermediate_size\": \"8\"}",
                   "'intermediate_size' is not a non-negative integer");
  ok &= bad_config("fractional heads", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                   "\"num_attention_heads\": 4.5, \"vocab_size\": 100, \"intermediate_size\": 8}",
                   "'num_attention_heads'");
  ok &= bad_config("GQA heads that do not divide", "{\"model_type\": \"llama\", " BASE
                   "\"intermediate_size\": 8, \"num_key_value_heads\": 3}", "num_key_value_heads 3");
  ok &= bad_config("head_dim that cannot be derived", "{\"model_type\": \"llama\", \"hidden_size\": 65, "
                   "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100, \"intermediate_size\": 8}",
                   "'head_dim'");
  ok &= bad_config("unsupported activation", "{\"model_type\": \"llama\", " BASE
                   "\"intermediate_size\": 8, \"hidden_act\": \"relu\"}", "'hidden_act' is 'relu'");
  ok &= bad_config("mlp_only_layers out of range", "{\"model_type\": \"qwen3_moe\", " BASE
                   "\"intermediate_size\": 8, \"num_experts\": 4, \"num_experts_per_tok\": 2, "
                   "\"moe_intermediate_size\": 8, \"mlp_only_layers\": [7]}", "'mlp_only_layers'");
  ok &= bad_config("not JSON", "{\"model_type\": \"llama\",", "not a JSON object");
  ok &= bad_config("a JSON list", "[1, 2]", "not a JSON object");

  /* options */
  kf_model_cfg cfg;
  char err[512];
  const char *good = "{\"model_type\": \"llama\", " BASE "\"intermediate_size\": 24}";
  int prc = kf_model_cfg_parse(&cfg, good, strlen(good), "tiny", err, sizeof err);
  int64_t one = 1;
  kf_shapes_opts bad_gemm = {&one, 1, 1, 16, "msd_gemm,fa_gemm", 8, 0}, bad_group = {&one, 1, 1, 16, NULL, 8, 48};
  FILE *null = fopen("/dev/null", "w");
  int r1 = kf_model_shapes(&cfg, &bad_gemm, null, err, sizeof err);
  int ok1 = prc == 0 && r1 && strstr(err, "fa_gemm");
  printf("%s: --gemm with an unknown template rejected: %s\n", ok1 ? "ok  " : "FAIL", err);
  int r2 = kf_model_shapes(&cfg, &bad_group, null, err, sizeof err);
  int ok2 = r2 && strstr(err, "--group 48");
  printf("%s: --group 48 rejected: %s\n", ok2 ? "ok  " : "FAIL", err);
  fclose(null);
  ok &= ok1 && ok2;
  printf("%s\n", ok ? "all ok" : "FAILED");
  return ok ? 0 : 1;
}

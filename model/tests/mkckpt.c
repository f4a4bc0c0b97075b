/*
** mkckpt.c: writes a tiny Llama-style checkpoint (config.json + model.safetensors, random
** weights; or a GGUF with --gguf TYPE) for the workflow test and the docs' walk-through.
** Usage: mkckpt DIR HIDDEN HEADS KV_HEADS HEAD_DIM INTER VOCAB LAYERS [--gguf 8|2|39 | --qwen3]
** --qwen3: model_type qwen3 with its per-head q/k RMSNorm weights (safetensors).
*/
#include <stdlib.h>
#include <string.h>

#include "model_fixtures.h"

int main(int argc, char **argv) {
  int qwen3 = argc == 10 && !strcmp(argv[9], "--qwen3");
  if (argc != 9 && argc != 11 && !qwen3) {
    fprintf(stderr, "usage: mkckpt DIR HIDDEN HEADS KV_HEADS HEAD_DIM INTER VOCAB LAYERS [--gguf TYPE]\n");
    return 2;
  }
  int64_t v[7];
  for (int i = 0; i < 7; i++) v[i] = atoll(argv[2 + i]);
  kf_test_model m;
  kf_test_model_make(&m, v[0], v[1], v[2], v[3], v[4], v[5], v[6], 2024);
  for (int64_t l = 0; qwen3 && l < v[6]; l++)
    for (int j = 0; j < 2; j++) {
      kf_test_tensor *t = &m.t[m.n++];
      snprintf(t->name, sizeof t->name, "model.layers.%lld.self_attn.%s_norm.weight", (long long)l, j ? "k" : "q");
      t->n_dims = 1;
      t->dims[0] = v[3];
      t->data = malloc((size_t)v[3] * sizeof(float));
      for (int64_t i = 0; i < v[3]; i++) t->data[i] = 0.5f + (float)((i * 7 + j * 3 + l) % 11) / 10;
    }
  char *mt = strstr(m.config, "\"llama\"");
  if (qwen3 && mt) memcpy(mt, "\"qwen3\"", 7);
  char path[1024];
  snprintf(path, sizeof path, "%s/config.json", argv[1]);
  int rc = kf_test_write(path, m.config, strlen(m.config));
  if (argc == 11) {
    snprintf(path, sizeof path, "%s/model.gguf", argv[1]);
    rc |= kf_test_write_gguf(path, &m, atoi(argv[10]));
  } else {
    snprintf(path, sizeof path, "%s/model.safetensors", argv[1]);
    rc |= kf_test_write_safetensors(path, &m, "BF16");
  }
  kf_test_model_free(&m);
  if (rc) fprintf(stderr, "mkckpt: cannot write into %s\n", argv[1]);
  return rc ? 1 : 0;
}

/*
** mkckpt.c: writes a tiny Llama-style checkpoint (config.json + model.safetensors, random
** weights; or a GGUF with --gguf TYPE) for the workflow test and the docs' walk-through.
** Usage: mkckpt DIR HIDDEN HEADS KV_HEADS HEAD_DIM INTER VOCAB LAYERS [--gguf 8|2|39]
*/
#include <stdlib.h>
#include <string.h>

#include "model_fixtures.h"

int main(int argc, char **argv) {
  if (argc != 9 && argc != 11) {
    fprintf(stderr, "usage: mkckpt DIR HIDDEN HEADS KV_HEADS HEAD_DIM INTER VOCAB LAYERS [--gguf TYPE]\n");
    return 2;
  }
  int64_t v[7];
  for (int i = 0; i < 7; i++) v[i] = atoll(argv[2 + i]);
  kf_test_model m;
  kf_test_model_make(&m, v[0], v[1], v[2], v[3], v[4], v[5], v[6], 2024);
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

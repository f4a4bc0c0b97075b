/*
** model_fixtures.h: what the model tests share: small checkpoints written by the test itself
** (safetensors and GGUF, per their published formats, independently of model/kf_ckpt.c),
** a tiny Llama-style config with odd sizes, and random weights.
*/
#ifndef MODEL_FIXTURES_H
#define MODEL_FIXTURES_H

#include <stdint.h>
#include <stdio.h>

typedef struct kf_test_tensor {
  char name[128];
  int n_dims;
  int64_t dims[4]; /* PyTorch order */
  float *data;
} kf_test_tensor;

typedef struct kf_test_model {
  int64_t hidden, heads, kv_heads, head_dim, inter, vocab, layers;
  kf_test_tensor t[64];
  int n;
  char config[2048]; /* config.json text */
} kf_test_model;

/* A Llama-style model (model_type llama) with random weights N(0, 1/fan_in), norms near 1. */
void kf_test_model_make(kf_test_model *m, int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim,
                        int64_t inter, int64_t vocab, int64_t layers, uint64_t seed);
void kf_test_model_free(kf_test_model *m);
const kf_test_tensor *kf_test_model_find(const kf_test_model *m, const char *name);

/* safetensors with every tensor as dtype "F32", "F16" or "BF16". Returns 0. */
int kf_test_write_safetensors(const char *path, const kf_test_model *m, const char *dtype);
/* GGUF v3: 2-D linear weights as ggml type `wtype` (0 F32, 1 F16, 2 Q4_0, 8 Q8_0, 30 BF16,
** 39 MXFP4), everything else F32; names as llama.cpp writes them (blk.N.attn_q.weight, ...). */
int kf_test_write_gguf(const char *path, const kf_test_model *m, int wtype);

/* ggml's reference block quantizers (quantize_row_q8_0_ref / q4_0_ref), for expected codes. */
void kf_test_q8_0_block(const float *x, uint16_t *d_f16, int8_t q[32]);
void kf_test_q4_0_block(const float *x, uint16_t *d_f16, uint8_t qs[16]);
uint16_t kf_test_f16(float f);
float kf_test_f16_val(uint16_t h);

char *kf_test_read(const char *path);            /* whole file, NUL-terminated; NULL on error */
int kf_test_write(const char *path, const void *data, size_t len);
double kf_test_normal(uint64_t *state);

#endif

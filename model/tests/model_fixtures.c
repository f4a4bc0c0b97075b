/*
** model_fixtures.c: see model_fixtures.h. The writers follow the published formats
** (safetensors: huggingface/safetensors README; GGUF: ggml docs/gguf.md, block layouts of
** ggml-common.h) and share no code with the readers under test.
*/
#include "model_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kf_quant.h"

double kf_test_normal(uint64_t *s) {
  double u[2];
  for (int i = 0; i < 2; i++) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    u[i] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
  }
  return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

char *kf_test_read(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  if (b) b[n] = 0;
  fclose(f);
  return b;
}

int kf_test_write(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int rc = fwrite(data, 1, len, f) == len ? 0 : -1;
  return fclose(f) || rc ? -1 : 0;
}

static void add(kf_test_model *m, const char *name, int64_t a, int64_t b, uint64_t *rng, int norm) {
  kf_test_tensor *t = &m->t[m->n++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->n_dims = b ? 2 : 1;
  t->dims[0] = a;
  t->dims[1] = b;
  int64_t n = a * (b ? b : 1);
  t->data = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n; i++)
    t->data[i] = norm ? (float)(1 + 0.1 * kf_test_normal(rng)) : (float)(kf_test_normal(rng) / sqrt((double)(b ? b : 1)));
}

void kf_test_model_make(kf_test_model *m, int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim,
                        int64_t inter, int64_t vocab, int64_t layers, uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->hidden = hidden;
  m->heads = heads;
  m->kv_heads = kv_heads;
  m->head_dim = head_dim;
  m->inter = inter;
  m->vocab = vocab;
  m->layers = layers;
  uint64_t rng = seed | 1;
  add(m, "model.embed_tokens.weight", vocab, hidden, &rng, 0);
  for (int64_t l = 0; l < layers; l++) {
    char n[128];
#define L(s) (snprintf(n, sizeof n, "model.layers.%lld.%s", (long long)l, s), n)
    add(m, L("input_layernorm.weight"), hidden, 0, &rng, 1);
    add(m, L("self_attn.q_proj.weight"), heads * head_dim, hidden, &rng, 0);
    add(m, L("self_attn.k_proj.weight"), kv_heads * head_dim, hidden, &rng, 0);
    add(m, L("self_attn.v_proj.weight"), kv_heads * head_dim, hidden, &rng, 0);
    add(m, L("self_attn.o_proj.weight"), hidden, heads * head_dim, &rng, 0);
    add(m, L("post_attention_layernorm.weight"), hidden, 0, &rng, 1);
    add(m, L("mlp.gate_proj.weight"), inter, hidden, &rng, 0);
    add(m, L("mlp.up_proj.weight"), inter, hidden, &rng, 0);
    add(m, L("mlp.down_proj.weight"), hidden, inter, &rng, 0);
#undef L
  }
  add(m, "model.norm.weight", hidden, 0, &rng, 1);
  add(m, "lm_head.weight", vocab, hidden, &rng, 0);
  snprintf(m->config, sizeof m->config,
           "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
           "  \"hidden_size\": %lld,\n  \"intermediate_size\": %lld,\n  \"num_hidden_layers\": %lld,\n"
           "  \"num_attention_heads\": %lld,\n  \"num_key_value_heads\": %lld,\n  \"head_dim\": %lld,\n"
           "  \"vocab_size\": %lld,\n  \"hidden_act\": \"silu\",\n  \"rms_norm_eps\": 1e-05,\n"
           "  \"rope_theta\": 10000.0,\n  \"tie_word_embeddings\": false\n}\n",
           (long long)hidden, (long long)inter, (long long)layers, (long long)heads, (long long)kv_heads,
           (long long)head_dim, (long long)vocab);
}

void kf_test_model_free(kf_test_model *m) {
  for (int i = 0; i < m->n; i++) free(m->t[i].data);
  memset(m, 0, sizeof *m);
}

const kf_test_tensor *kf_test_model_find(const kf_test_model *m, const char *name) {
  for (int i = 0; i < m->n; i++)
    if (!strcmp(m->t[i].name, name)) return &m->t[i];
  return NULL;
}

static int64_t elems(const kf_test_tensor *t) { return t->dims[0] * (t->n_dims == 2 ? t->dims[1] : 1); }

uint16_t kf_test_f16(float f) {
  uint16_t sign = signbit(f) ? 0x8000 : 0;
  double a = fabs((double)f);
  if (isnan(f)) return sign | 0x7e00;
  if (a >= 65520.0) return sign | 0x7c00;
  if (a < ldexp(1, -14)) return sign | (uint16_t)lrint(ldexp(a, 24)); /* 1024 is the smallest normal */
  int e;
  frexp(a, &e);
  long r = lrint(ldexp(a, 11 - e)); /* 1024..2048, ties to even */
  int E = e - 1 + 15;
  if (r == 2048) {
    r = 1024;
    E++;
  }
  if (E >= 31) return sign | 0x7c00;
  return sign | (uint16_t)(E << 10) | (uint16_t)(r - 1024);
}

float kf_test_f16_val(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
  return (float)((h & 0x8000) ? -v : v);
}

static uint16_t bf16(float f) { return kf_bf16_from_f32(f); }

int kf_test_write_safetensors(const char *path, const kf_test_model *m, const char *dtype) {
  int esz = strcmp(dtype, "F32") ? 2 : 4;
  size_t hcap = 64 + (size_t)m->n * 256, hl = 0, off = 0;
  char *h = malloc(hcap);
  hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (int i = 0; i < m->n; i++) {
    const kf_test_tensor *t = &m->t[i];
    size_t bytes = (size_t)elems(t) * (size_t)esz;
    if (t->n_dims == 2)
      hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                             t->name, dtype, (long long)t->dims[0], (long long)t->dims[1], off, off + bytes);
    else
      hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                             t->name, dtype, (long long)t->dims[0], off, off + bytes);
    off += bytes;
  }
  hl += (size_t)snprintf(h + hl, hcap - hl, "}");
  while (hl % 8) h[hl++] = ' ';
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  fwrite(len8, 1, 8, f);
  fwrite(h, 1, hl, f);
  for (int i = 0; i < m->n; i++) {
    const kf_test_tensor *t = &m->t[i];
    for (int64_t j = 0; j < elems(t); j++) {
      float v = t->data[j];
      uint16_t b = !strcmp(dtype, "F16") ? kf_test_f16(v) : bf16(v);
      if (esz == 4) fwrite(&v, 4, 1, f);
      else fwrite(&b, 2, 1, f);
    }
  }
  free(h);
  return fclose(f);
}

void kf_test_q8_0_block(const float *x, uint16_t *d_f16, int8_t q[32]) {
  float amax = 0;
  for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
  float d = amax / 127, id = d ? 1.0f / d : 0.0f;
  *d_f16 = kf_test_f16(d);
  for (int j = 0; j < 32; j++) q[j] = (int8_t)roundf(x[j] * id);
}

void kf_test_q4_0_block(const float *x, uint16_t *d_f16, uint8_t qs[16]) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; j++)
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  float d = max / -8, id = d ? 1.0f / d : 0.0f;
  *d_f16 = kf_test_f16(d);
  for (int j = 0; j < 16; j++) {
    int a = (int8_t)(x[j] * id + 8.5f), b = (int8_t)(x[16 + j] * id + 8.5f);
    a = a < 15 ? a : 15;
    b = b < 15 ? b : 15;
    qs[j] = (uint8_t)(a | b << 4);
  }
}

/* ---- GGUF ---- */

typedef struct buf {
  uint8_t *p;
  size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
  if (n == 0) return;
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 1024;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}
static void put32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put64(buf *b, uint64_t v) { put(b, &v, 8); }
static void putstr(buf *b, const char *s) {
  put64(b, strlen(s));
  put(b, s, strlen(s));
}
static void pad(buf *b, size_t a) {
  static const uint8_t z[64];
  put(b, z, (a - b->n % a) % a);
}

static void gguf_name(const char *hf, char *out, size_t len) {
  static const char *const map[][2] = {
      {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  int l, used = 0;
  if (!strcmp(hf, "model.embed_tokens.weight")) snprintf(out, len, "token_embd.weight");
  else if (!strcmp(hf, "model.norm.weight")) snprintf(out, len, "output_norm.weight");
  else if (!strcmp(hf, "lm_head.weight")) snprintf(out, len, "output.weight");
  else if (sscanf(hf, "model.layers.%d.%n", &l, &used) == 1 && used) {
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
      if (!strcmp(hf + used, map[i][0])) snprintf(out, len, "blk.%d.%s", l, map[i][1]);
  }
}

static int is_linear_name(const kf_test_tensor *t) {
  return t->n_dims == 2 && (strstr(t->name, "_proj") || !strcmp(t->name, "lm_head.weight"));
}

/* The data of one tensor as ggml type `type`. */
static void gguf_data(buf *d, const kf_test_tensor *t, int type) {
  int64_t n = elems(t);
  if (type == 0) put(d, t->data, (size_t)n * 4);
  for (int64_t i = 0; type == 1 && i < n; i++) {
    uint16_t h = kf_test_f16(t->data[i]);
    put(d, &h, 2);
  }
  for (int64_t i = 0; type == 30 && i < n; i++) {
    uint16_t h = bf16(t->data[i]);
    put(d, &h, 2);
  }
  for (int64_t b = 0; type == 8 && b < n / 32; b++) {
    uint16_t h;
    int8_t q[32];
    kf_test_q8_0_block(t->data + 32 * b, &h, q);
    put(d, &h, 2);
    put(d, q, 32);
  }
  for (int64_t b = 0; type == 2 && b < n / 32; b++) {
    uint16_t h;
    uint8_t qs[16];
    kf_test_q4_0_block(t->data + 32 * b, &h, qs);
    put(d, &h, 2);
    put(d, qs, 16);
  }
  for (int64_t b = 0; type == 39 && b < n / 32; b++) {
    uint8_t codes[32], e, qs[16];
    kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_OCP, t->data + 32 * b, 32, codes, &e);
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(codes[j] | codes[16 + j] << 4);
    put(d, &e, 1);
    put(d, qs, 16);
  }
}

int kf_test_write_gguf(const char *path, const kf_test_model *m, int wtype) {
  buf h = {0}, d = {0};
  put32(&h, 0x46554747u); /* "GGUF" */
  put32(&h, 3);
  put64(&h, (uint64_t)m->n);
  put64(&h, 7);
  putstr(&h, "llama.attention.head_count");
  put32(&h, 4);
  put32(&h, (uint32_t)m->heads);
  putstr(&h, "llama.attention.head_count_kv");
  put32(&h, 4);
  put32(&h, (uint32_t)m->kv_heads);
  putstr(&h, "general.architecture");
  put32(&h, 8);
  putstr(&h, "llama");
  putstr(&h, "general.alignment");
  put32(&h, 4);
  put32(&h, 32);
  putstr(&h, "llama.block_count");
  put32(&h, 4);
  put32(&h, (uint32_t)m->layers);
  putstr(&h, "llama.rope.freq_base");
  put32(&h, 6);
  float theta = 10000;
  put(&h, &theta, 4);
  putstr(&h, "tokenizer.ggml.tokens");
  put32(&h, 9);
  put32(&h, 8);
  put64(&h, 3);
  putstr(&h, "<s>");
  putstr(&h, "</s>");
  putstr(&h, "hello");
  for (int i = 0; i < m->n; i++) {
    const kf_test_tensor *t = &m->t[i];
    char name[128] = "";
    gguf_name(t->name, name, sizeof name);
    int type = is_linear_name(t) ? wtype : 0;
    putstr(&h, name);
    put32(&h, (uint32_t)t->n_dims);
    for (int j = t->n_dims - 1; j >= 0; j--) put64(&h, (uint64_t)t->dims[j]); /* ne[0] innermost */
    put32(&h, (uint32_t)type);
    pad(&d, 32);
    put64(&h, d.n);
    /* llama.cpp's converter reorders the rows of Q and K per head for its RoPE: GGUF row
    ** h*D + 2i + s holds Hugging Face row h*D + s*D/2 + i */
    int64_t rope = strstr(t->name, "q_proj") ? m->heads : strstr(t->name, "k_proj") ? m->kv_heads : 0;
    kf_test_tensor perm = *t;
    if (rope) {
      int64_t D = t->dims[0] / rope, K = t->dims[1];
      perm.data = malloc((size_t)(t->dims[0] * K) * sizeof(float));
      for (int64_t g = 0; g < t->dims[0]; g++) {
        int64_t hh = g / D, i2 = (g % D) / 2, sb = g % 2;
        memcpy(perm.data + g * K, t->data + (hh * D + sb * (D / 2) + i2) * K, (size_t)K * sizeof(float));
      }
    }
    gguf_data(&d, &perm, type);
    if (rope) free(perm.data);
  }
  pad(&h, 32);
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fwrite(h.p, 1, h.n, f);
  fwrite(d.p, 1, d.n, f);
  free(h.p);
  free(d.p);
  return fclose(f);
}

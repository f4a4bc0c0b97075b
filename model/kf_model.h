/*
** kf_model.h: model configurations (Hugging Face config.json), the kernel shapes a model needs
** (`kforge shapes`), checkpoint readers (safetensors, GGUF) and the packer (`kforge pack`).
** See docs/model-workflow.md.
**
** Errors are values: functions return 0 or -1 and write a message naming the file, field or
** tensor into err[errlen]. Nothing here keeps global state.
*/
#ifndef KF_MODEL_H
#define KF_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kf_pack.h"

/* ---- configurations ---- */

typedef enum {
  KF_ARCH_DENSE = 0, /* llama, mistral, qwen2, qwen3, gemma, gemma2: GQA attention + gated MLP */
  KF_ARCH_QWEN_MOE,  /* qwen2_moe, qwen3_moe: GQA attention, routed experts (+ Qwen2's shared one) */
  KF_ARCH_DEEPSEEK,  /* deepseek_v2, deepseek_v3: MLA attention, dense first layers, routed + shared */
} kf_arch_kind;

typedef struct kf_model_cfg {
  char model_type[48]; /* config.json "model_type" */
  kf_arch_kind kind;
  int64_t hidden, inter, n_layers, n_heads, n_kv_heads, head_dim, vocab;
  int tie_embeddings, qkv_bias, qk_norm, gemma_norm; /* gemma: RMSNorm weight is (1 + w) */
  char act[32];                                     /* "silu" or "gelu_tanh" */
  double rms_eps, rope_theta;
  /* MoE (0 when dense) */
  int64_t n_experts, top_k, moe_inter, shared_inter; /* shared_inter: all shared experts as one MLP */
  int64_t n_moe_layers;                              /* how many of n_layers have experts */
  unsigned char moe_layer[1024];                     /* 1: layer i has experts */
  /* MLA (DeepSeek); q_lora 0: no query compression (V2-Lite) */
  int64_t q_lora, kv_lora, qk_nope, qk_rope, v_head;
} kf_model_cfg;

/* Parses config.json text. `label` names the file in messages ("config.json: missing field
** 'num_attention_heads'", "unsupported model_type 'bert'"). */
int kf_model_cfg_parse(kf_model_cfg *cfg, const char *json, size_t len, const char *label, char *err,
                       size_t errlen);
int kf_model_cfg_load(kf_model_cfg *cfg, const char *path, char *err, size_t errlen);

/* ---- shapes ---- */

typedef struct kf_shapes_opts {
  const int64_t *tokens; /* GEMM rows per sequence and step: 1 (decode), 16, 512 (prefill chunks) */
  int n_tokens;
  int64_t batch;  /* sequences decoded together: GEMM M = tokens * batch, attention B */
  int64_t kv_len; /* attention S */
  const char *gemms; /* comma list of GEMM templates (msd_gemm,dequant_gemm,msd_mxfp4_gemm) */
  int bits;          /* 8 or 4 (msd_gemm, dequant_gemm) */
  int64_t group;     /* 0 (per channel), 32, 64, 128 */
} kf_shapes_opts;

/* Writes the shapes file (one "TEMPLATE NAME=V,..." per line, '#' notes) for cfg to out: each
** distinct linear shape once (the layers it serves, the expert count), then the decode attention. */
int kf_model_shapes(const kf_model_cfg *cfg, const kf_shapes_opts *o, FILE *out, char *err, size_t errlen);

/* The shape a tensor of the model has (Hugging Face names, PyTorch order [out][in]).
** 1 and dims/n_dims filled for a tensor of this architecture, 0 for a name it does not know. */
int kf_model_expected_shape(const kf_model_cfg *cfg, const char *name, int64_t dims[4], int *n_dims);

/* ---- checkpoints ---- */

typedef enum {
  KF_DT_F32 = 0, KF_DT_F16, KF_DT_BF16,
  KF_DT_Q8_0, KF_DT_Q4_0, KF_DT_MXFP4, /* GGUF blocks of 32 along the innermost dimension */
} kf_dtype;

typedef struct kf_ckpt_tensor {
  char name[128];  /* Hugging Face name (GGUF names are mapped, e.g. blk.0.attn_q.weight) */
  char src_name[128];
  kf_dtype dtype;
  int n_dims;
  int64_t dims[4]; /* PyTorch order: dims[n_dims-1] is contiguous */
  const uint8_t *data; /* as in the file */
  size_t bytes;
  const char *file;
  int64_t rope_heads; /* GGUF of architecture "llama": llama.cpp's converter permuted the rows of
                         q_proj / k_proj per head (pairs (i, i+D/2) -> (2i, 2i+1)); this many heads.
                         kf_model_pack undoes it; 0 for every other tensor */
} kf_ckpt_tensor;

typedef struct kf_ckpt_file {
  char path[512];
  const uint8_t *map;
  size_t size;
  int mapped; /* 1: map is an mmap to munmap */
} kf_ckpt_file;

typedef struct kf_ckpt {
  kf_ckpt_file files[64];
  int n_files;
  kf_ckpt_tensor *tensors;
  size_t n_tensors, cap_tensors;
} kf_ckpt;

/* Adds the tensors of one file (safetensors by extension .safetensors, GGUF by its magic) to ck;
** the file is mmapped, nothing is copied. Every offset, size and dtype is checked. */
int kf_ckpt_add_file(kf_ckpt *ck, const char *path, char *err, size_t errlen);
/* The same for bytes in memory (fuzzing, tests); buf must outlive ck. gguf: 1 GGUF, 0 safetensors. */
int kf_ckpt_add_mem(kf_ckpt *ck, const void *buf, size_t len, const char *label, int gguf, char *err,
                    size_t errlen);
void kf_ckpt_free(kf_ckpt *ck);
const kf_ckpt_tensor *kf_ckpt_find(const kf_ckpt *ck, const char *name);
/* Converts a float tensor (F32/F16/BF16) or dequantizes a GGUF block tensor into out[elements]. */
int kf_ckpt_tensor_f32(const kf_ckpt_tensor *t, float *out, char *err, size_t errlen);
int64_t kf_ckpt_tensor_elems(const kf_ckpt_tensor *t);
const char *kf_dtype_name(kf_dtype d);

/* ---- packing ---- */

typedef enum { KF_QUANT_KEEP = 0, KF_QUANT_W8, KF_QUANT_W4, KF_QUANT_MXFP4 } kf_quant_kind;

typedef struct kf_pack_opts {
  kf_quant_kind quant; /* for float linear weights; GGUF block tensors map exactly regardless */
  int64_t group;       /* W4 group (W8 is per channel unless group > 0) */
  kf_wlayout layout;   /* N16K4 (msd_gemm) or N16K1 (dequant_gemm) */
  const kf_model_cfg *cfg; /* when set: every known tensor's shape is checked against it */
  const char *config_json; /* stored in the packed file's metadata (may be NULL) */
  size_t config_len;
  FILE *log;               /* one line per tensor (may be NULL) */
} kf_pack_opts;

/* Packs every tensor of ck into the packed file `out_path` (kf_pack.h format). */
int kf_model_pack(const kf_ckpt *ck, const kf_pack_opts *o, const char *out_path, char *err, size_t errlen);

/* CLI verbs: `kforge shapes ...`, `kforge pack ...` (argv[0] is the verb). */
int kf_shapes_main(int argc, char **argv);
int kf_pack_main(int argc, char **argv);

#endif

/*
** kf_model_cfg.c: Hugging Face config.json -> kf_model_cfg, and the tensor shapes it implies.
** Field names and defaults follow the transformers configuration classes of each model_type
** (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Qwen2MoeConfig, Qwen3MoeConfig,
** GemmaConfig, Gemma2Config, DeepseekV2Config, DeepseekV3Config).
*/
#define _GNU_SOURCE
#include "kf_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kf_model_int.h"

void kf_model_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int kf_model_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    kf_model_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      char *nb = realloc(buf, 2 * cap + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (!buf || bad) {
    free(buf);
    kf_model_err(err, errlen, "%s: %s", path, bad ? "read error" : "out of memory");
    return -1;
  }
  buf[n] = 0;
  *text = buf;
  *len = n;
  return 0;
}

/* Field readers: 1 found, 0 absent (or JSON null), -1 wrong type (message written). */
static int get_int(const cJSON *root, const char *field, int64_t *out, const char *label, char *err, size_t errlen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
  if (!v || cJSON_IsNull(v)) return 0;
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  if (!cJSON_IsNumber(v) || d != floor(d) || d < 0 || d > 1e15) {
    kf_model_err(err, errlen, "%s: field '%s' is not a non-negative integer", label, field);
    return -1;
  }
  *out = (int64_t)d;
  return 1;
}

static int need_int(const cJSON *root, const char *field, int64_t *out, const char *label, char *err, size_t errlen) {
  int r = get_int(root, field, out, label, err, errlen);
  if (r == 0) kf_model_err(err, errlen, "%s: missing field '%s' (model_type %s needs it)", label, field,
                           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model_type")));
  if (r == 1 && *out == 0) {
    kf_model_err(err, errlen, "%s: field '%s' is 0", label, field);
    return -1;
  }
  return r == 1 ? 0 : -1;
}

static int get_bool(const cJSON *root, const char *field, int def, int *out, const char *label, char *err,
                    size_t errlen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
  *out = def;
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v)) {
    kf_model_err(err, errlen, "%s: field '%s' is not true/false", label, field);
    return -1;
  }
  *out = cJSON_IsTrue(v);
  return 0;
}

static int get_double(const cJSON *root, const char *field, double def, double *out, const char *label, char *err,
                      size_t errlen) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
  *out = def;
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v) || !(v->valuedouble > 0)) {
    kf_model_err(err, errlen, "%s: field '%s' is not a positive number", label, field);
    return -1;
  }
  *out = v->valuedouble;
  return 0;
}

static const struct {
  const char *model_type;
  kf_arch_kind kind;
} known_types[] = {
    {"llama", KF_ARCH_DENSE},          {"mistral", KF_ARCH_DENSE},         {"qwen2", KF_ARCH_DENSE},
    {"qwen3", KF_ARCH_DENSE},          {"gemma", KF_ARCH_DENSE},           {"gemma2", KF_ARCH_DENSE},
    {"qwen2_moe", KF_ARCH_QWEN_MOE},   {"qwen3_moe", KF_ARCH_QWEN_MOE},    {"deepseek_v2", KF_ARCH_DEEPSEEK},
    {"deepseek_v3", KF_ARCH_DEEPSEEK},
};

static int parse_root(kf_model_cfg *c, const cJSON *root, const char *label, char *err, size_t errlen) {
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (!cJSON_IsString(mt)) {
    kf_model_err(err, errlen, "%s: missing field 'model_type' (a string such as \"llama\")", label);
    return -1;
  }
  int found = 0;
  for (size_t i = 0; i < sizeof known_types / sizeof known_types[0]; i++)
    if (!strcmp(mt->valuestring, known_types[i].model_type)) {
      c->kind = known_types[i].kind;
      found = 1;
    }
  if (!found) {
    kf_model_err(err, errlen,
                 "%s: unsupported model_type '%.40s' (supported: llama, mistral, qwen2, qwen3, gemma, gemma2, "
                 "qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3)",
                 label, mt->valuestring);
    return -1;
  }
  snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
  const char *t = c->model_type;
  int gemma = !strncmp(t, "gemma", 5);
  if (need_int(root, "hidden_size", &c->hidden, label, err, errlen) ||
      need_int(root, "num_hidden_layers", &c->n_layers, label, err, errlen) ||
      need_int(root, "num_attention_heads", &c->n_heads, label, err, errlen) ||
      need_int(root, "vocab_size", &c->vocab, label, err, errlen) ||
      need_int(root, "intermediate_size", &c->inter, label, err, errlen))
    return -1;
  if (c->n_layers > (int64_t)sizeof c->moe_layer) {
    kf_model_err(err, errlen, "%s: num_hidden_layers %lld (at most %zu)", label, (long long)c->n_layers,
                 sizeof c->moe_layer);
    return -1;
  }
  int r = get_int(root, "num_key_value_heads", &c->n_kv_heads, label, err, errlen);
  if (r < 0) return -1;
  if (r == 0 || c->n_kv_heads == 0) c->n_kv_heads = c->n_heads; /* transformers' default: MHA */
  if (c->n_heads % c->n_kv_heads) {
    kf_model_err(err, errlen, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", label,
                 (long long)c->n_heads, (long long)c->n_kv_heads);
    return -1;
  }
  if ((r = get_int(root, "head_dim", &c->head_dim, label, err, errlen)) < 0) return -1;
  if (r == 0 || c->head_dim == 0) {
    if (c->hidden % c->n_heads) {
      kf_model_err(err, errlen, "%s: missing field 'head_dim' and hidden_size %lld is not a multiple of %lld heads",
                   label, (long long)c->hidden, (long long)c->n_heads);
      return -1;
    }
    c->head_dim = c->hidden / c->n_heads;
  }
  /* activation */
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, gemma ? "hidden_activation" : "hidden_act");
  if (gemma && !cJSON_IsString(act)) act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  const char *a = cJSON_GetStringValue(act);
  if (!a) a = gemma ? "gelu_pytorch_tanh" : "silu";
  if (!strcmp(a, "silu") || !strcmp(a, "swish")) snprintf(c->act, sizeof c->act, "silu");
  else if (!strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_tanh") || (gemma && !strcmp(a, "gelu")))
    snprintf(c->act, sizeof c->act, "gelu_tanh");
  else {
    kf_model_err(err, errlen, "%s: field '%s' is '%.40s' (supported: silu, gelu_pytorch_tanh)", label,
                 gemma ? "hidden_activation" : "hidden_act", a);
    return -1;
  }
  if (get_bool(root, "tie_word_embeddings", gemma, &c->tie_embeddings, label, err, errlen) ||
      get_bool(root, "attention_bias", !strncmp(t, "qwen2", 5), &c->qkv_bias, label, err, errlen) ||
      get_double(root, "rms_norm_eps", 1e-6, &c->rms_eps, label, err, errlen) ||
      get_double(root, "rope_theta", 10000.0, &c->rope_theta, label, err, errlen))
    return -1;
  if (!strncmp(t, "qwen2", 5)) c->qkv_bias = 1; /* Qwen2 always has q/k/v biases */
  c->qk_norm = !strncmp(t, "qwen3", 5);
  c->gemma_norm = gemma;

  if (c->kind == KF_ARCH_QWEN_MOE) {
    int64_t step = 1;
    if (need_int(root, "num_experts", &c->n_experts, label, err, errlen) ||
        need_int(root, "num_experts_per_tok", &c->top_k, label, err, errlen) ||
        need_int(root, "moe_intermediate_size", &c->moe_inter, label, err, errlen) ||
        get_int(root, "decoder_sparse_step", &step, label, err, errlen) < 0 ||
        get_int(root, "shared_expert_intermediate_size", &c->shared_inter, label, err, errlen) < 0)
      return -1;
    if (!strcmp(t, "qwen2_moe") && need_int(root, "shared_expert_intermediate_size", &c->shared_inter, label, err, errlen))
      return -1;
    if (step == 0) step = 1;
    const cJSON *only = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers");
    if (only && !cJSON_IsNull(only) && !cJSON_IsArray(only)) {
      kf_model_err(err, errlen, "%s: field 'mlp_only_layers' is not a list", label);
      return -1;
    }
    for (int64_t i = 0; i < c->n_layers; i++) c->moe_layer[i] = (i + 1) % step == 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, only) {
      if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)c->n_layers) {
        kf_model_err(err, errlen, "%s: field 'mlp_only_layers' has an entry that is not a layer index", label);
        return -1;
      }
      c->moe_layer[(int)e->valuedouble] = 0;
    }
  } else if (c->kind == KF_ARCH_DEEPSEEK) {
    int64_t first_dense = 0, freq = 1, n_shared = 0;
    if (get_int(root, "n_routed_experts", &c->n_experts, label, err, errlen) < 0 ||
        get_int(root, "n_shared_experts", &n_shared, label, err, errlen) < 0 ||
        get_int(root, "first_k_dense_replace", &first_dense, label, err, errlen) < 0 ||
        get_int(root, "moe_layer_freq", &freq, label, err, errlen) < 0 ||
        get_int(root, "q_lora_rank", &c->q_lora, label, err, errlen) < 0 ||
        need_int(root, "kv_lora_rank", &c->kv_lora, label, err, errlen) ||
        need_int(root, "qk_nope_head_dim", &c->qk_nope, label, err, errlen) ||
        need_int(root, "qk_rope_head_dim", &c->qk_rope, label, err, errlen) ||
        need_int(root, "v_head_dim", &c->v_head, label, err, errlen))
      return -1;
    if (c->n_experts && (need_int(root, "num_experts_per_tok", &c->top_k, label, err, errlen) ||
                         need_int(root, "moe_intermediate_size", &c->moe_inter, label, err, errlen)))
      return -1;
    if (freq == 0) freq = 1;
    c->shared_inter = n_shared * c->moe_inter;
    c->head_dim = c->qk_nope + c->qk_rope;
    c->n_kv_heads = c->n_heads;
    for (int64_t i = 0; i < c->n_layers; i++) c->moe_layer[i] = c->n_experts && i >= first_dense && i % freq == 0;
  }
  c->n_moe_layers = 0;
  for (int64_t i = 0; i < c->n_layers; i++) c->n_moe_layers += c->moe_layer[i];
  return 0;
}

int kf_model_cfg_parse(kf_model_cfg *cfg, const char *json, size_t len, const char *label, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!root || !cJSON_IsObject(root)) {
    size_t at = root ? 0 : (end && end >= json ? (size_t)(end - json) : 0);
    kf_model_err(err, errlen, "%s: not a JSON object (%s at byte %zu)", label, root ? "wrong type" : "syntax error", at);
    cJSON_Delete(root);
    return -1;
  }
  int rc = parse_root(cfg, root, label, err, errlen);
  cJSON_Delete(root);
  return rc;
}

int kf_model_cfg_load(kf_model_cfg *cfg, const char *path, char *err, size_t errlen) {
  char *text;
  size_t len;
  if (kf_model_read_file(path, &text, &len, err, errlen)) return -1;
  int rc = kf_model_cfg_parse(cfg, text, len, path, err, errlen);
  free(text);
  return rc;
}

/* ---- the tensors of a model ---- */

static int set2(int64_t dims[4], int *n_dims, int64_t a, int64_t b) {
  memset(dims, 0, 4 * sizeof *dims);
  dims[0] = a;
  dims[1] = b;
  *n_dims = b ? 2 : 1;
  return 1;
}

/* An MLP's three projections: 1 when `p` is one of them. */
static int mlp_shape(const char *p, int64_t inter, int64_t hidden, int64_t dims[4], int *n_dims) {
  if (!strcmp(p, "gate_proj.weight") || !strcmp(p, "up_proj.weight")) return set2(dims, n_dims, inter, hidden);
  if (!strcmp(p, "down_proj.weight")) return set2(dims, n_dims, hidden, inter);
  return 0;
}

int kf_model_expected_shape(const kf_model_cfg *c, const char *name, int64_t dims[4], int *n_dims) {
  int64_t h = c->hidden, nh = c->n_heads, hd = c->head_dim;
  if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight"))
    return set2(dims, n_dims, c->vocab, h);
  if (!strcmp(name, "model.norm.weight")) return set2(dims, n_dims, h, 0);
  int layer, used = 0;
  if (sscanf(name, "model.layers.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0 || layer >= c->n_layers)
    return 0;
  const char *p = name + used;
  if (!strcmp(p, "input_layernorm.weight") || !strcmp(p, "post_attention_layernorm.weight") ||
      (!strncmp(c->model_type, "gemma2", 6) &&
       (!strcmp(p, "pre_feedforward_layernorm.weight") || !strcmp(p, "post_feedforward_layernorm.weight"))))
    return set2(dims, n_dims, h, 0);
  if (!strncmp(p, "self_attn.", 10)) {
    p += 10;
    if (c->kind == KF_ARCH_DEEPSEEK) {
      int64_t qd = nh * (c->qk_nope + c->qk_rope);
      if (c->q_lora) {
        if (!strcmp(p, "q_a_proj.weight")) return set2(dims, n_dims, c->q_lora, h);
        if (!strcmp(p, "q_a_layernorm.weight")) return set2(dims, n_dims, c->q_lora, 0);
        if (!strcmp(p, "q_b_proj.weight")) return set2(dims, n_dims, qd, c->q_lora);
      } else if (!strcmp(p, "q_proj.weight")) return set2(dims, n_dims, qd, h);
      if (!strcmp(p, "kv_a_proj_with_mqa.weight")) return set2(dims, n_dims, c->kv_lora + c->qk_rope, h);
      if (!strcmp(p, "kv_a_layernorm.weight")) return set2(dims, n_dims, c->kv_lora, 0);
      if (!strcmp(p, "kv_b_proj.weight")) return set2(dims, n_dims, nh * (c->qk_nope + c->v_head), c->kv_lora);
      if (!strcmp(p, "o_proj.weight")) return set2(dims, n_dims, h, nh * c->v_head);
      return 0;
    }
    int64_t kvd = c->n_kv_heads * hd;
    if (!strcmp(p, "q_proj.weight")) return set2(dims, n_dims, nh * hd, h);
    if (!strcmp(p, "k_proj.weight") || !strcmp(p, "v_proj.weight")) return set2(dims, n_dims, kvd, h);
    if (!strcmp(p, "o_proj.weight")) return set2(dims, n_dims, h, nh * hd);
    if (c->qkv_bias && !strcmp(p, "q_proj.bias")) return set2(dims, n_dims, nh * hd, 0);
    if (c->qkv_bias && (!strcmp(p, "k_proj.bias") || !strcmp(p, "v_proj.bias"))) return set2(dims, n_dims, kvd, 0);
    if (c->qk_norm && (!strcmp(p, "q_norm.weight") || !strcmp(p, "k_norm.weight"))) return set2(dims, n_dims, hd, 0);
    return 0;
  }
  if (strncmp(p, "mlp.", 4)) return 0;
  p += 4;
  if (!c->moe_layer[layer]) return mlp_shape(p, c->inter, h, dims, n_dims);
  if (!strcmp(p, "gate.weight")) return set2(dims, n_dims, c->n_experts, h);
  int e;
  if (sscanf(p, "experts.%d.%n", &e, &used) == 1 && used && e >= 0 && e < c->n_experts)
    return mlp_shape(p + used, c->moe_inter, h, dims, n_dims);
  if (c->shared_inter) {
    const char *sh = c->kind == KF_ARCH_DEEPSEEK ? "shared_experts." : "shared_expert.";
    if (!strncmp(p, sh, strlen(sh))) return mlp_shape(p + strlen(sh), c->shared_inter, h, dims, n_dims);
    if (c->kind == KF_ARCH_QWEN_MOE && !strcmp(p, "shared_expert_gate.weight")) return set2(dims, n_dims, 1, h);
  }
  if (c->kind == KF_ARCH_DEEPSEEK && !strcmp(p, "gate.e_score_correction_bias")) return set2(dims, n_dims, c->n_experts, 0);
  return 0;
}

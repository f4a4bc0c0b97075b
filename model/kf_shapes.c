/*
** kf_shapes.c: the kernel shapes of a model (`kforge shapes`), in the shapes-file format that
** `kforge tune --shapes` and `kforge lib --shapes` read (tuner/kf_lib.h: "TEMPLATE NAME=V,..."
** per line, '#' starts a comment). Each distinct GEMM shape is listed once per template and
** token count, with the layers (and experts) it serves in the comment; then the decode attention.
*/
#include <stdlib.h>
#include <string.h>

#include "kf_model.h"
#include "kf_model_int.h"

typedef struct linear {
  int64_t n, k;
  char uses[480];
} linear;

typedef struct linear_list {
  linear v[32];
  int n;
} linear_list;

/* Adds one use of the GEMM W[n][k]; a shape seen before gets the use appended to its note. */
static void add_linear(linear_list *l, int64_t n, int64_t k, const char *use) {
  for (int i = 0; i < l->n; i++)
    if (l->v[i].n == n && l->v[i].k == k) {
      size_t len = strlen(l->v[i].uses);
      snprintf(l->v[i].uses + len, sizeof l->v[i].uses - len, "; %s", use);
      return;
    }
  if (l->n == (int)(sizeof l->v / sizeof l->v[0])) return; /* cannot happen: at most 16 uses */
  linear *e = &l->v[l->n++];
  e->n = n;
  e->k = k;
  snprintf(e->uses, sizeof e->uses, "%s", use);
}

static void add_mlp(linear_list *l, const char *prefix, int64_t inter, int64_t hidden, const char *count) {
  char use[400];
  snprintf(use, sizeof use, "%sgate_proj, %sup_proj (%s)", prefix, prefix, count);
  add_linear(l, inter, hidden, use);
  snprintf(use, sizeof use, "%sdown_proj (%s)", prefix, count);
  add_linear(l, hidden, inter, use);
}

static void build(const kf_model_cfg *c, linear_list *l) {
  char cnt[160], use[400];
  int64_t h = c->hidden, nh = c->n_heads, L = c->n_layers;
  snprintf(cnt, sizeof cnt, "%lld layers", (long long)L);
  if (c->kind == KF_ARCH_DEEPSEEK) {
    int64_t qd = nh * (c->qk_nope + c->qk_rope);
    if (c->q_lora) {
      snprintf(use, sizeof use, "self_attn.q_a_proj (%s)", cnt);
      add_linear(l, c->q_lora, h, use);
      snprintf(use, sizeof use, "self_attn.q_b_proj (%s)", cnt);
      add_linear(l, qd, c->q_lora, use);
    } else {
      snprintf(use, sizeof use, "self_attn.q_proj (%s)", cnt);
      add_linear(l, qd, h, use);
    }
    snprintf(use, sizeof use, "self_attn.kv_a_proj_with_mqa (%s)", cnt);
    add_linear(l, c->kv_lora + c->qk_rope, h, use);
    snprintf(use, sizeof use, "self_attn.kv_b_proj (%s)", cnt);
    add_linear(l, nh * (c->qk_nope + c->v_head), c->kv_lora, use);
    snprintf(use, sizeof use, "self_attn.o_proj (%s)", cnt);
    add_linear(l, h, nh * c->v_head, use);
  } else {
    int64_t hd = c->head_dim, kvd = c->n_kv_heads * hd;
    snprintf(use, sizeof use, "self_attn.q_proj (%s)", cnt);
    add_linear(l, nh * hd, h, use);
    snprintf(use, sizeof use, "self_attn.k_proj, self_attn.v_proj (%s)", cnt);
    add_linear(l, kvd, h, use);
    snprintf(use, sizeof use, "self_attn.o_proj (%s)", cnt);
    add_linear(l, h, nh * hd, use);
  }
  int64_t n_dense = L - c->n_moe_layers;
  if (n_dense) {
    snprintf(cnt, sizeof cnt, "%lld %slayers", (long long)n_dense, c->n_moe_layers ? "dense " : "");
    add_mlp(l, "mlp.", c->inter, h, cnt);
  }
  if (c->n_moe_layers) {
    snprintf(cnt, sizeof cnt, "%lld layers", (long long)c->n_moe_layers);
    snprintf(use, sizeof use, "mlp.gate router (%s)", cnt);
    add_linear(l, c->n_experts, h, use);
    snprintf(cnt, sizeof cnt, "%lld layers x %lld experts, %lld per token", (long long)c->n_moe_layers,
             (long long)c->n_experts, (long long)c->top_k);
    add_mlp(l, "mlp.experts.", c->moe_inter, h, cnt);
    if (c->shared_inter) {
      snprintf(cnt, sizeof cnt, "%lld layers, shared expert", (long long)c->n_moe_layers);
      add_mlp(l, c->kind == KF_ARCH_DEEPSEEK ? "mlp.shared_experts." : "mlp.shared_expert.", c->shared_inter, h, cnt);
    }
  }
  add_linear(l, c->vocab, h, c->tie_embeddings ? "lm_head (tied to embed_tokens)" : "lm_head");
}

int kf_model_shapes(const kf_model_cfg *c, const kf_shapes_opts *o, FILE *out, char *err, size_t errlen) {
  if (o->bits != 8 && o->bits != 4) {
    kf_model_err(err, errlen, "--bits %d: expected 8 or 4", o->bits);
    return -1;
  }
  if (o->group != 0 && o->group != 32 && o->group != 64 && o->group != 128) {
    kf_model_err(err, errlen, "--group %lld: expected 0 (per channel), 32, 64 or 128", (long long)o->group);
    return -1;
  }
  if (o->batch < 1 || o->kv_len < 1 || o->n_tokens < 1) {
    kf_model_err(err, errlen, "--batch, --kv-len and --tokens must be >= 1");
    return -1;
  }
  char gemms[256];
  snprintf(gemms, sizeof gemms, "%s", o->gemms ? o->gemms : "msd_gemm,dequant_gemm");
  char *names[8];
  int n_gemm = 0;
  for (char *save = NULL, *t = strtok_r(gemms, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "msd_gemm") && strcmp(t, "dequant_gemm") && strcmp(t, "msd_mxfp4_gemm")) {
      kf_model_err(err, errlen, "--gemm '%s': expected msd_gemm, dequant_gemm or msd_mxfp4_gemm", t);
      return -1;
    }
    if (n_gemm == 8) break;
    names[n_gemm++] = t;
  }
  if (!n_gemm) {
    kf_model_err(err, errlen, "--gemm: empty list");
    return -1;
  }
  linear_list l;
  memset(&l, 0, sizeof l);
  build(c, &l);
  fprintf(out, "# kforge shapes: model_type %s, %lld layers, hidden %lld; batch %lld, kv-len %lld\n", c->model_type,
          (long long)c->n_layers, (long long)c->hidden, (long long)o->batch, (long long)o->kv_len);
  fprintf(out, "# GEMMs y[M,N] = x[M,K] W[N,K]^T with M = tokens x batch; each distinct (N, K) once\n");
  for (int g = 0; g < n_gemm; g++) {
    char extra[64] = "";
    if (strcmp(names[g], "msd_mxfp4_gemm") && (o->bits != 8 || o->group))
      snprintf(extra, sizeof extra, ",bits=%d,group=%lld", o->bits, (long long)o->group);
    for (int t = 0; t < o->n_tokens; t++)
      for (int i = 0; i < l.n; i++)
        fprintf(out, "%s M=%lld,N=%lld,K=%lld%s  # %s\n", names[g], (long long)(o->tokens[t] * o->batch),
                (long long)l.v[i].n, (long long)l.v[i].k, extra, l.v[i].uses);
  }
  long long B = (long long)o->batch, S = (long long)o->kv_len, L = (long long)c->n_layers;
  if (c->kind == KF_ARCH_DEEPSEEK) {
    long long d = (long long)(c->kv_lora + c->qk_rope), dv = (long long)c->kv_lora;
    fprintf(out, "# decode attention: MLA, latent cache of kv_lora_rank %lld + rope %lld per token, %lld layers\n", dv,
            (long long)c->qk_rope, L);
    fprintf(out, "amla_decode B=%lld,H=%lld,S=%lld,D=%lld,DV=%lld  # %lld heads share one latent KV head\n", B,
            (long long)c->n_heads, S, d, dv, (long long)c->n_heads);
    fprintf(out, "msd_attention B=%lld,H=%lld,HKV=1,S=%lld,D=%lld,DV=%lld  # INT8 latent cache\n", B,
            (long long)c->n_heads, S, d, dv);
  } else {
    fprintf(out, "# decode attention: %s, %lld layers\n", c->n_kv_heads == c->n_heads ? "MHA" : "GQA", L);
    fprintf(out, "fa_decode B=%lld,H=%lld,HKV=%lld,S=%lld,D=%lld  # %lld query heads per KV head\n", B,
            (long long)c->n_heads, (long long)c->n_kv_heads, S, (long long)c->head_dim,
            (long long)(c->n_heads / c->n_kv_heads));
  }
  return 0;
}

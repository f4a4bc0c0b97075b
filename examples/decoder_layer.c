/*
** decoder_layer.c: a small inference engine for one decoder layer of a Llama-style model
** (Llama, Mistral, Qwen2/3 dense; RMSNorm, q/k/v biases (Qwen2), q/k RMSNorm (Qwen3), GQA
** attention with RoPE and a KV cache, gated MLP with the model's activation), reading its weights from a packed file (`kforge pack`,
** runtime/quant/kf_pack.h) and running every linear layer through a `kforge lib` library built
** from `kforge shapes` output (kforge_kernels.h: msd_gemm, dequant_gemm). The library exports
** no attention kernel yet, so the attention itself (QK^T, softmax, PV over the cache) is plain C
** fp32 here, the same code in every path.
**
** Three paths decode the same tokens one at a time, each with its own KV cache:
**   ref     fp32 throughout, weights = the exact values of the packed codes (kf_pack_tensor_f32)
**   dequant dequant_gemm, bf16-rounded weights (wround=1, the W8A16 baseline), layout N16K1
**   msd     msd_gemm with 2 int8 activation passes on the same codes, layout N16K4
** and a fourth, ref_bf16in, is the fp32 layer whose GEMM inputs are rounded to bf16 as the
** kernels' bf16 x argument requires: the error every kernel path must accept. MSD's own error
** beyond it is its residual, |x - x̂| <= max|x| / (2·127·254) per row (DESIGN.md section 4), so
** the bound checked for MSD is  e(ref_bf16in) + 2·G·R, G the layer's measured gain from input
** rounding to output error, R the largest relative residual bound of its GEMM inputs (see main
** and docs/model-workflow.md); dequant-bf16 adds its weight rounding (2^-9 relative) on top.
**
** Usage: decoder_layer PACKED.kfpack [--layer L] [--tokens T] [--threads N] [--check]
** Prints relative L2 errors (final token and worst over tokens) and time per token per path;
** --check exits 1 unless MSD is within its bound and at least as accurate as dequant-bf16.
*/
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kf_pack.h"
#include "kforge_kernels.h"

typedef struct cfg {
  int64_t hidden, heads, kv_heads, head_dim, inter;
  double eps, theta;
  int gelu; /* 0 silu, 1 gelu tanh */
  char model_type[32];
} cfg;

enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, N_W };
static const char *const w_names[N_W] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                         "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

typedef struct weights {
  float *f[N_W];        /* exact values, [n][k] */
  kf_qweight k4[N_W];   /* N16K4 codes for msd_gemm */
  kf_qweight k1[N_W];   /* N16K1 codes for dequant_gemm */
  int64_t n[N_W], k[N_W];
  float *bias[3];          /* q/k/v biases (Qwen2) or NULL */
  float *q_norm, *k_norm;  /* per-head RMSNorm of q and k before RoPE (Qwen3) or NULL */
  float *norm_in, *norm_post;
} weights;

enum { P_REF, P_REF_BF16IN, P_DEQUANT, P_MSD, N_PATHS };
static const char *const path_names[N_PATHS] = {"fp32 reference", "fp32, bf16 GEMM inputs", "dequant-bf16 (W8A16)",
                                                "MSD 2-pass (W8, int8 x2)"};

static void die(const char *msg) {
  fprintf(stderr, "decoder_layer: error: %s\n", msg);
  exit(2);
}

static int64_t jint(const cJSON *r, const char *f, int64_t def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, f);
  if (cJSON_IsNumber(v)) return (int64_t)v->valuedouble;
  if (def < 0) {
    fprintf(stderr, "decoder_layer: error: the packed file's config.json has no '%s'\n", f);
    exit(2);
  }
  return def;
}

static void read_cfg(const kf_pack *p, cfg *c) {
  size_t len;
  const char *meta = kf_pack_meta(p, &len);
  cJSON *r = cJSON_ParseWithLength(meta, len);
  if (!r) die("the packed file has no config.json metadata (pack with --config)");
  const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "model_type"));
  if (!mt || (strcmp(mt, "llama") && strcmp(mt, "mistral") && strcmp(mt, "qwen2") && strcmp(mt, "qwen3")))
    die("this example runs model_type llama, mistral, qwen2 and qwen3 (dense GQA) layers");
  snprintf(c->model_type, sizeof c->model_type, "%s", mt);
  c->hidden = jint(r, "hidden_size", -1);
  c->heads = jint(r, "num_attention_heads", -1);
  c->kv_heads = jint(r, "num_key_value_heads", c->heads);
  c->head_dim = jint(r, "head_dim", c->hidden / c->heads);
  c->inter = jint(r, "intermediate_size", -1);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "rms_norm_eps"), *t = cJSON_GetObjectItemCaseSensitive(r, "rope_theta");
  c->eps = cJSON_IsNumber(e) ? e->valuedouble : 1e-6;
  c->theta = cJSON_IsNumber(t) ? t->valuedouble : 10000;
  const char *act = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "hidden_act"));
  c->gelu = act && strstr(act, "gelu");
  cJSON_Delete(r);
}

/* A float vector tensor of n elements if the file has it, else NULL. */
static float *opt_vec(const kf_pack *p, const char *name, int64_t n) {
  char err[512];
  const kf_pack_tensor *t = kf_pack_find(p, name);
  if (!t) return NULL;
  if (kf_pack_tensor_elems(t) != n || t->format >= KF_PACK_W8) {
    fprintf(stderr, "decoder_layer: error: '%s' is not a float vector of %lld\n", name, (long long)n);
    exit(2);
  }
  float *v = malloc((size_t)n * sizeof(float));
  if (kf_pack_tensor_f32(t, v, err, sizeof err)) die(err);
  return v;
}

static void load_weights(const kf_pack *p, int layer, const cfg *c, weights *w) {
  char name[160], err[512];
  for (int i = 0; i < N_W; i++) {
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", layer, w_names[i]);
    const kf_pack_tensor *t = kf_pack_find(p, name);
    if (!t) {
      fprintf(stderr, "decoder_layer: error: no tensor '%s' in the packed file\n", name);
      exit(2);
    }
    if (t->format != KF_PACK_W8 || t->n_groups != 1) {
      fprintf(stderr, "decoder_layer: error: '%s' is not W8 per channel (pack with --quant w8)\n", name);
      exit(2);
    }
    w->n[i] = t->dims[0];
    w->k[i] = t->dims[1];
    w->f[i] = malloc((size_t)(w->n[i] * w->k[i]) * sizeof(float));
    if (kf_pack_tensor_f32(t, w->f[i], err, sizeof err) ||
        kf_pack_tensor_qweight(t, KF_WLAYOUT_N16K4, &w->k4[i], err, sizeof err) ||
        kf_pack_tensor_qweight(t, KF_WLAYOUT_N16K1, &w->k1[i], err, sizeof err))
      die(err);
  }
  for (int i = 0; i < 3; i++) { /* optional tensors */
    snprintf(name, sizeof name, "model.layers.%d.%s.bias", layer, w_names[i]);
    w->bias[i] = opt_vec(p, name, w->n[i]);
  }
  snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", layer);
  w->q_norm = opt_vec(p, name, c->head_dim);
  snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", layer);
  w->k_norm = opt_vec(p, name, c->head_dim);
  const char *norms[2] = {"input_layernorm", "post_attention_layernorm"};
  for (int i = 0; i < 2; i++) {
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", layer, norms[i]);
    const kf_pack_tensor *t = kf_pack_find(p, name);
    if (!t || kf_pack_tensor_elems(t) != c->hidden) die("missing or mis-shaped layer norm weight");
    float *v = malloc((size_t)c->hidden * sizeof(float));
    kf_pack_tensor_f32(t, v, err, sizeof err);
    if (i == 0) w->norm_in = v;
    else w->norm_post = v;
  }
}

/* What the GEMM inputs of one path looked like (for the bound, see main). */
typedef struct input_stats {
  double sum_round; /* sum over calls of ||bf16(x) - x|| / ||x||: the bf16 rounding of the input */
  double max_resid; /* max over calls of sqrt(K) max|bf16 x| / (2·127·254) / ||bf16 x||: MSD's residual bound */
  int64_t n_calls;
} input_stats;

/* y[n] = W x for one token, by path. */
static void linear(int path, const weights *w, int i, const float *x, float *y, int n_threads, input_stats *is) {
  int64_t N = w->n[i], K = w->k[i];
  double e2 = 0, x2 = 0, b2 = 0, bmax = 0;
  for (int64_t c = 0; c < K; c++) {
    double b = kf_bf16_to_f32(kf_bf16_from_f32(x[c]));
    e2 += (b - x[c]) * (b - x[c]);
    x2 += (double)x[c] * x[c];
    b2 += b * b;
    bmax = fmax(bmax, fabs(b));
  }
  if (x2 > 0 && b2 > 0) {
    is->sum_round += sqrt(e2 / x2);
    is->max_resid = fmax(is->max_resid, sqrt((double)K) * bmax / (2.0 * 127 * 254) / sqrt(b2));
    is->n_calls++;
  }
  if (path == P_REF || path == P_REF_BF16IN) {
    for (int64_t r = 0; r < N; r++) {
      double acc = 0;
      const float *row = w->f[i] + r * K;
      for (int64_t c = 0; c < K; c++) {
        double xv = path == P_REF ? x[c] : kf_bf16_to_f32(kf_bf16_from_f32(x[c]));
        acc += xv * row[c];
      }
      y[r] = (float)acc;
    }
    return;
  }
  uint16_t *xb = malloc((size_t)K * 2);
  kf_bf16_from_f32_n(xb, x, (size_t)K);
  int rc = path == P_MSD ? kforge_kernels_msd_gemm(1, N, K, 0, 8, 0, xb, w->k4[i].packed, w->k4[i].scales, y, n_threads)
                         : kforge_kernels_dequant_gemm(1, N, K, 8, 0, 0, 1, xb, w->k1[i].packed, w->k1[i].scales, y,
                                                       n_threads);
  free(xb);
  if (rc) die("a kforge_kernels call failed");
}

static void rmsnorm(const float *x, const float *g, int64_t n, double eps, float *out) {
  double ss = 0;
  for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
  double r = 1 / sqrt(ss / (double)n + eps);
  for (int64_t i = 0; i < n; i++) out[i] = (float)(x[i] * r * g[i]);
}

/* RoPE as Hugging Face applies it (rotate_half: pairs (i, i + D/2)). */
static void rope(float *v, int64_t n_heads, int64_t D, int64_t pos, double theta) {
  for (int64_t h = 0; h < n_heads; h++)
    for (int64_t i = 0; i < D / 2; i++) {
      double f = pos * pow(theta, -2.0 * (double)i / (double)D), c = cos(f), s = sin(f);
      float *a = v + h * D + i, *b = v + h * D + i + D / 2;
      double x0 = *a, x1 = *b;
      *a = (float)(x0 * c - x1 * s);
      *b = (float)(x1 * c + x0 * s);
    }
}

static float act(float g, int gelu) {
  if (!gelu) return g / (1 + expf(-g));
  return 0.5f * g * (1 + tanhf(0.7978845608f * (g + 0.044715f * g * g * g)));
}

typedef struct state {
  float *kc, *vc; /* [max_tokens][kv_heads * head_dim] */
  int64_t len;
  input_stats is;
} state;

/* One decode step of the layer: out = layer(x) at position st->len, appending to the cache. */
static void step(int path, const cfg *c, const weights *w, state *st, const float *x, float *out, int n_threads) {
  int64_t H = c->heads, HKV = c->kv_heads, D = c->head_dim, hid = c->hidden;
  float *h = malloc((size_t)hid * 4), *q = malloc((size_t)(H * D) * 4), *att = malloc((size_t)(H * D) * 4);
  float *o = malloc((size_t)hid * 4), *x1 = malloc((size_t)hid * 4), *g = malloc((size_t)c->inter * 4);
  float *u = malloc((size_t)c->inter * 4);
  float *kn = st->kc + st->len * HKV * D, *vn = st->vc + st->len * HKV * D;
  rmsnorm(x, w->norm_in, hid, c->eps, h);
  linear(path, w, W_Q, h, q, n_threads, &st->is);
  linear(path, w, W_K, h, kn, n_threads, &st->is);
  linear(path, w, W_V, h, vn, n_threads, &st->is);
  float *qkv[3] = {q, kn, vn};
  for (int i = 0; i < 3; i++)
    for (int64_t j = 0; w->bias[i] && j < w->n[i]; j++) qkv[i][j] += w->bias[i][j];
  for (int64_t hh = 0; w->q_norm && hh < H; hh++) rmsnorm(q + hh * D, w->q_norm, D, c->eps, q + hh * D);
  for (int64_t hh = 0; w->k_norm && hh < HKV; hh++) rmsnorm(kn + hh * D, w->k_norm, D, c->eps, kn + hh * D);
  rope(q, H, D, st->len, c->theta);
  rope(kn, HKV, D, st->len, c->theta);
  st->len++;
  /* attention over the cache, plain C (no attention kernel in the library yet) */
  double *sc = malloc((size_t)st->len * sizeof(double));
  for (int64_t hh = 0; hh < H; hh++) {
    int64_t g_kv = hh / (H / HKV);
    double mx = -INFINITY, l = 0;
    for (int64_t j = 0; j < st->len; j++) {
      double d = 0;
      for (int64_t i = 0; i < D; i++) d += (double)q[hh * D + i] * st->kc[(j * HKV + g_kv) * D + i];
      sc[j] = d / sqrt((double)D);
      mx = fmax(mx, sc[j]);
    }
    for (int64_t j = 0; j < st->len; j++) l += (sc[j] = exp(sc[j] - mx));
    for (int64_t i = 0; i < D; i++) {
      double acc = 0;
      for (int64_t j = 0; j < st->len; j++) acc += sc[j] * st->vc[(j * HKV + g_kv) * D + i];
      att[hh * D + i] = (float)(acc / l);
    }
  }
  free(sc);
  linear(path, w, W_O, att, o, n_threads, &st->is);
  for (int64_t i = 0; i < hid; i++) x1[i] = x[i] + o[i];
  rmsnorm(x1, w->norm_post, hid, c->eps, h);
  linear(path, w, W_GATE, h, g, n_threads, &st->is);
  linear(path, w, W_UP, h, u, n_threads, &st->is);
  for (int64_t i = 0; i < c->inter; i++) g[i] = act(g[i], c->gelu) * u[i];
  linear(path, w, W_DOWN, g, o, n_threads, &st->is);
  for (int64_t i = 0; i < hid; i++) out[i] = x1[i] + o[i];
  free(h);
  free(q);
  free(att);
  free(o);
  free(x1);
  free(g);
  free(u);
}

static double rel_l2(const float *a, const float *ref, int64_t n) {
  double e = 0, r = 0;
  for (int64_t i = 0; i < n; i++) {
    e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    r += (double)ref[i] * ref[i];
  }
  return sqrt(e / r);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int layer = 0, n_tok = 8, n_threads = 1, check = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--layer") && i + 1 < argc) layer = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n_tok = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) n_threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--check")) check = 1;
    else if (argv[i][0] != '-' && !path) path = argv[i];
    else die("usage: decoder_layer PACKED.kfpack [--layer L] [--tokens T] [--threads N] [--check]");
  }
  if (!path || n_tok < 1 || n_tok > 4096) die("usage: decoder_layer PACKED.kfpack [--layer L] [--tokens 1..4096]");
  char err[512];
  kf_pack *p;
  if (kf_pack_open(&p, path, err, sizeof err)) die(err);
  cfg c;
  read_cfg(p, &c);
  weights w;
  memset(&w, 0, sizeof w);
  load_weights(p, layer, &c, &w);
  int64_t hid = c.hidden, kvd = c.kv_heads * c.head_dim;
  /* input hidden states: random, RMS 1 with a few outliers (as residual streams have) */
  float *xs = malloc((size_t)(n_tok * hid) * 4), *outs[N_PATHS];
  uint64_t rng = 12345;
  for (int64_t i = 0; i < n_tok * hid; i++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double uni = (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
    xs[i] = (float)(uni * 1.7 * (i % 97 == 5 ? 20 : 1));
  }
  double secs[N_PATHS];
  input_stats stats[N_PATHS];
  for (int pth = 0; pth < N_PATHS; pth++) {
    state st = {calloc((size_t)(n_tok * kvd), 4), calloc((size_t)(n_tok * kvd), 4), 0, {0, 0, 0}};
    outs[pth] = malloc((size_t)(n_tok * hid) * 4);
    double t0 = now();
    for (int t = 0; t < n_tok; t++) step(pth, &c, &w, &st, xs + t * hid, outs[pth] + t * hid, n_threads);
    secs[pth] = (now() - t0) / n_tok;
    stats[pth] = st.is;
    free(st.kc);
    free(st.vc);
  }
  printf("decoder layer %d of %s (%s%s%s): hidden %lld, heads %lld/%lld x %lld, inter %lld, %s; %d tokens decoded\n",
         layer, path, c.model_type, w.q_norm ? ", q/k norm" : "", w.bias[0] ? ", qkv bias" : "", (long long)hid, (long long)c.heads, (long long)c.kv_heads, (long long)c.head_dim, (long long)c.inter,
         c.gelu ? "gelu" : "silu", n_tok);
  double last[N_PATHS], worst[N_PATHS];
  for (int pth = 0; pth < N_PATHS; pth++) {
    last[pth] = rel_l2(outs[pth] + (n_tok - 1) * hid, outs[P_REF] + (n_tok - 1) * hid, hid);
    worst[pth] = 0;
    for (int t = 0; t < n_tok; t++) worst[pth] = fmax(worst[pth], rel_l2(outs[pth] + t * hid, outs[P_REF] + t * hid, hid));
    printf("  %-26s rel L2 vs fp32: last token %.3e, worst token %.3e; %8.1f us/token\n", path_names[pth], last[pth],
           worst[pth], secs[pth] * 1e6);
  }
  /* First-order bound: the layer turns a relative perturbation u of its GEMM inputs into a
  ** relative output error of about G·u. The bf16 path measures G for this layer and input:
  ** G = e(ref_bf16in) / mean bf16 rounding of its inputs. MSD sees the same bf16 inputs plus its
  ** residual, at most R = max sqrt(K)·max|x|/(2·127·254)/||x|| relative (measured per call), so
  ** e(MSD) <= e(ref_bf16in) + 2·G·R (2: slack for the first-order model). */
  double u_mean = stats[P_REF_BF16IN].sum_round / (double)stats[P_REF_BF16IN].n_calls;
  double gain = worst[P_REF_BF16IN] / u_mean, resid = stats[P_MSD].max_resid;
  double bound = worst[P_REF_BF16IN] + 2 * gain * resid;
  printf("  bound terms: bf16 input rounding %.3e (mean, relative), layer gain %.2f, MSD residual <= %.3e\n", u_mean, gain,
         resid);
  int ok = worst[P_MSD] <= bound && worst[P_MSD] <= worst[P_DEQUANT];
  printf("  MSD bound (bf16 inputs + 2-pass residual): %.3e -> %s; MSD %s dequant-bf16 (%.2fx smaller error)\n", bound,
         worst[P_MSD] <= bound ? "within" : "EXCEEDED", worst[P_MSD] <= worst[P_DEQUANT] ? "at least as accurate as" : "LESS accurate than",
         worst[P_DEQUANT] / fmax(worst[P_MSD], 1e-300));
  printf("  kernels: q_proj msd via %s, dequant via %s\n", kforge_kernels_msd_gemm_variant(1, w.n[W_Q], w.k[W_Q], 0, 8, 0),
         kforge_kernels_dequant_gemm_variant(1, w.n[W_Q], w.k[W_Q], 8, 0, 0, 1));
  for (int pth = 0; pth < N_PATHS; pth++) free(outs[pth]);
  for (int i = 0; i < N_W; i++) {
    free(w.f[i]);
    kf_qweight_free(&w.k4[i]);
    kf_qweight_free(&w.k1[i]);
  }
  for (int i = 0; i < 3; i++) free(w.bias[i]);
  free(w.q_norm);
  free(w.k_norm);
  free(w.norm_in);
  free(w.norm_post);
  free(xs);
  kf_pack_close(p);
  return check && !ok ? 1 : 0;
}

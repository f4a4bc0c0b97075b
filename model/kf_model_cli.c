/*
** kf_model_cli.c: the `kforge shapes` and `kforge pack` verbs.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kf_model.h"
#include "kf_model_int.h"

int kf_model_parse_list(const char *s, int64_t *out, int max) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v < 1 || v > (1ll << 30) || n == max || (*end && *end != ',')) return -1;
    out[n++] = v;
    p = *end ? end + 1 : end;
    if (*end && !*p) return -1;
  }
  return n ? n : -1;
}

static int usage_err(const char *verb, const char *fmt, const char *arg) {
  fprintf(stderr, "kforge %s: error: ", verb);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see 'kforge %s --help')\n", verb);
  return 2;
}

static const char shapes_help[] =
    "usage: kforge shapes CONFIG.json [--tokens 1,16,512] [--batch B] [--kv-len S]\n"
    "                     [--gemm msd_gemm,dequant_gemm,msd_mxfp4_gemm] [--bits 8|4] [--group 0|32|64|128]\n"
    "                     [-o FILE]\n\n"
    "Prints the shapes file ('TEMPLATE NAME=V,...' per line) that 'kforge tune --shapes' and\n"
    "'kforge lib --shapes' read, for a Hugging Face config.json: every distinct linear layer\n"
    "(q/k/v/o, or MLA's q_a/q_b/kv_a/kv_b/o; gate/up/down; MoE routed and shared experts once,\n"
    "with the expert count; the router; lm_head) as a GEMM with M = tokens x batch for each\n"
    "--tokens value, then the decode attention (fa_decode with H, HKV, D for MHA/GQA;\n"
    "amla_decode and msd_attention with D = kv_lora_rank + rope dim, DV = kv_lora_rank for MLA).\n"
    "model_type: llama, mistral, qwen2, qwen3, gemma, gemma2, qwen2_moe, qwen3_moe, deepseek_v2,\n"
    "deepseek_v3. Defaults: --tokens 1, --batch 1, --kv-len 4096, --gemm msd_gemm,dequant_gemm,\n"
    "--bits 8, --group 0 (per channel).\n";

int kf_shapes_main(int argc, char **argv) {
  const char *config = NULL, *out_path = NULL, *gemms = NULL;
  int64_t tokens[16] = {1}, batch = 1, kv_len = 4096, group = 0, bits = 8;
  int n_tokens = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(shapes_help, stdout);
      return 0;
    }
    if (a[0] != '-') {
      if (config) return usage_err("shapes", "more than one CONFIG.json ('%s')", a);
      config = a;
      continue;
    }
    if (!v) return usage_err("shapes", "%s needs a value", a);
    i++;
    int64_t one;
    if (!strcmp(a, "--tokens")) {
      if ((n_tokens = kf_model_parse_list(v, tokens, 16)) < 0)
        return usage_err("shapes", "--tokens '%s': want up to 16 positive integers, comma separated", v);
    } else if (!strcmp(a, "--batch") || !strcmp(a, "--kv-len") || !strcmp(a, "--bits") || !strcmp(a, "--group")) {
      if (!strcmp(a, "--group") && !strcmp(v, "0")) one = 0;
      else if (kf_model_parse_list(v, &one, 1) != 1) return usage_err("shapes", "bad number '%s'", v);
      *(!strcmp(a, "--batch") ? &batch : !strcmp(a, "--kv-len") ? &kv_len : !strcmp(a, "--bits") ? &bits : &group) = one;
    } else if (!strcmp(a, "--gemm")) gemms = v;
    else if (!strcmp(a, "-o")) out_path = v;
    else return usage_err("shapes", "unknown option '%s'", a);
  }
  if (!config) return usage_err("shapes", "%s", "missing CONFIG.json");
  char err[512];
  kf_model_cfg cfg;
  if (kf_model_cfg_load(&cfg, config, err, sizeof err)) {
    fprintf(stderr, "kforge shapes: error: %s\n", err);
    return 1;
  }
  kf_shapes_opts o = {tokens, n_tokens, batch, kv_len, gemms, (int)bits, group};
  FILE *out = out_path ? fopen(out_path, "w") : stdout;
  if (!out) {
    fprintf(stderr, "kforge shapes: error: %s: %s\n", out_path, strerror(errno));
    return 1;
  }
  int rc = kf_model_shapes(&cfg, &o, out, err, sizeof err);
  if (out != stdout && fclose(out) && !rc) {
    snprintf(err, sizeof err, "%s: write error", out_path);
    rc = -1;
  }
  if (rc) {
    fprintf(stderr, "kforge shapes: error: %s\n", err);
    return 1;
  }
  return 0;
}

static const char pack_help[] =
    "usage: kforge pack CHECKPOINT... -o OUT.kfpack [--config CONFIG.json]\n"
    "                   [--quant keep|w8|w4|mxfp4] [--group G] [--layout n16k4|n16k1] [--quiet]\n\n"
    "Packs a model's weights into one file that runtime/quant/kf_pack.h loads (mmap, validated,\n"
    "docs/model-workflow.md). CHECKPOINT: *.safetensors files (F32, F16, BF16) or a GGUF file\n"
    "(F32, F16, BF16, Q8_0, Q4_0, MXFP4). Linear weights are stored as the GEMM kernels read them:\n"
    "GGUF Q8_0 / Q4_0 / MXFP4 blocks map exactly onto group-32 W8 / W4 / MXFP4 codes (nothing is\n"
    "requantized); float weights are quantized with --quant (w8: per channel, or --group; w4:\n"
    "group --group, default 32; mxfp4: OCP blocks of 32) or kept (keep, the default). Other tensors\n"
    "keep their float format. --layout n16k4 (default) is msd_gemm's, n16k1 dequant_gemm's.\n"
    "--config checks every tensor's shape against the model and stores config.json in the file.\n";

int kf_pack_main(int argc, char **argv) {
  const char *out = NULL, *config = NULL, *files[64];
  int n_files = 0, quiet = 0;
  kf_pack_opts o;
  memset(&o, 0, sizeof o);
  o.layout = KF_WLAYOUT_N16K4;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(pack_help, stdout);
      return 0;
    }
    if (!strcmp(a, "--quiet")) {
      quiet = 1;
      continue;
    }
    if (a[0] != '-') {
      if (n_files == 64) return usage_err("pack", "%s", "more than 64 checkpoint files");
      files[n_files++] = a;
      continue;
    }
    if (!v) return usage_err("pack", "%s needs a value", a);
    i++;
    if (!strcmp(a, "-o")) out = v;
    else if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--quant")) {
      if (!strcmp(v, "keep")) o.quant = KF_QUANT_KEEP;
      else if (!strcmp(v, "w8")) o.quant = KF_QUANT_W8;
      else if (!strcmp(v, "w4")) o.quant = KF_QUANT_W4;
      else if (!strcmp(v, "mxfp4")) o.quant = KF_QUANT_MXFP4;
      else return usage_err("pack", "--quant '%s': want keep, w8, w4 or mxfp4", v);
    } else if (!strcmp(a, "--group")) {
      if (kf_model_parse_list(v, &o.group, 1) != 1 || o.group % 8)
        return usage_err("pack", "--group '%s': want a positive multiple of 8", v);
    } else if (!strcmp(a, "--layout")) {
      if (!strcmp(v, "n16k4")) o.layout = KF_WLAYOUT_N16K4;
      else if (!strcmp(v, "n16k1")) o.layout = KF_WLAYOUT_N16K1;
      else return usage_err("pack", "--layout '%s': want n16k4 or n16k1", v);
    } else return usage_err("pack", "unknown option '%s'", a);
  }
  if (!n_files) return usage_err("pack", "%s", "missing CHECKPOINT file(s)");
  if (!out) return usage_err("pack", "%s", "missing -o OUT.kfpack");
  char err[768];
  kf_model_cfg cfg;
  char *cfg_text = NULL;
  size_t cfg_len = 0;
  kf_ckpt ck;
  memset(&ck, 0, sizeof ck);
  int rc = 0;
  if (config) {
    rc = kf_model_read_file(config, &cfg_text, &cfg_len, err, sizeof err);
    if (!rc) rc = kf_model_cfg_parse(&cfg, cfg_text, cfg_len, config, err, sizeof err);
    o.cfg = rc ? NULL : &cfg;
    o.config_json = cfg_text;
    o.config_len = cfg_len;
  }
  for (int i = 0; !rc && i < n_files; i++) rc = kf_ckpt_add_file(&ck, files[i], err, sizeof err);
  o.log = quiet ? NULL : stdout;
  if (!rc) rc = kf_model_pack(&ck, &o, out, err, sizeof err);
  if (!rc && !quiet) printf("wrote %s (%zu tensors)\n", out, ck.n_tensors);
  if (rc) fprintf(stderr, "kforge pack: error: %s\n", err);
  kf_ckpt_free(&ck);
  free(cfg_text);
  return rc ? 1 : 0;
}

/*
** test_model_pack.c: `kforge pack` and the packed-file loader (runtime/quant/kf_pack.h) on
** checkpoints the test writes itself: a tiny Llama-style model with odd sizes as safetensors
** (F32, BF16, F16), and a GGUF-able one (K multiples of 32) as GGUF Q8_0, Q4_0, MXFP4, F16, BF16.
** Checks: pack -> load round trips exactly; GGUF Q8_0 -> kforge codes and scales bit-exact
** (against ggml's reference quantizer run here); Q4_0 / MXFP4 values exact; the same weights
** through safetensors and GGUF give byte-identical packed tensors; then bad input: truncated
** files (every prefix of the headers), offsets outside the file, unsupported dtypes, a shape
** that does not match the config, corrupt and foreign packed files: each a clear error naming
** the file and the tensor.
** Usage: test_model_pack TESTS_DIR (writes into the current directory)
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kf_model.h"
#include "model_fixtures.h"

static int n_fail;

static void check(int ok, const char *fmt, const char *detail) {
  printf("%s: ", ok ? "ok  " : "FAIL");
  printf(fmt, detail);
  printf("\n");
  n_fail += !ok;
}

/* Packs files with options; returns 0 or -1 with err. */
static int pack(const char *const *files, int n_files, const char *config, kf_quant_kind q, kf_wlayout layout,
                const char *out, char *err, size_t errlen) {
  kf_ckpt ck;
  memset(&ck, 0, sizeof ck);
  kf_model_cfg cfg;
  kf_pack_opts o;
  memset(&o, 0, sizeof o);
  o.quant = q;
  o.layout = layout;
  if (config) {
    if (kf_model_cfg_parse(&cfg, config, strlen(config), "config.json", err, errlen)) return -1;
    o.cfg = &cfg;
    o.config_json = config;
    o.config_len = strlen(config);
  }
  int rc = 0;
  for (int i = 0; !rc && i < n_files; i++) rc = kf_ckpt_add_file(&ck, files[i], err, errlen);
  if (!rc) rc = kf_model_pack(&ck, &o, out, err, errlen);
  kf_ckpt_free(&ck);
  return rc;
}

static int is_linear(const kf_test_tensor *t) {
  return t->n_dims == 2 && (strstr(t->name, "_proj") || !strcmp(t->name, "lm_head.weight"));
}

/* Every tensor of m in the packed file, values compared with want(t, i) exactly. */
typedef float (*want_fn)(const kf_test_tensor *t, int64_t i, int linear);
static float want_f32(const kf_test_tensor *t, int64_t i, int linear) {
  (void)linear;
  return t->data[i];
}
static float want_bf16(const kf_test_tensor *t, int64_t i, int linear) {
  (void)linear;
  return kf_bf16_to_f32(kf_bf16_from_f32(t->data[i]));
}
static float want_f16(const kf_test_tensor *t, int64_t i, int linear) {
  (void)linear;
  return kf_test_f16_val(kf_test_f16(t->data[i]));
}
static float want_f16_lin(const kf_test_tensor *t, int64_t i, int linear) {
  return linear ? want_f16(t, i, 1) : t->data[i]; /* the GGUF writer keeps non-linear tensors F32 */
}
static float want_bf16_lin(const kf_test_tensor *t, int64_t i, int linear) {
  return linear ? want_bf16(t, i, 1) : t->data[i];
}
static float want_q8_0(const kf_test_tensor *t, int64_t i, int linear) {
  if (!linear) return t->data[i];
  uint16_t d;
  int8_t q[32];
  kf_test_q8_0_block(t->data + i / 32 * 32, &d, q);
  return (float)((double)kf_test_f16_val(d) * q[i % 32]);
}
static float want_q4_0(const kf_test_tensor *t, int64_t i, int linear) {
  if (!linear) return t->data[i];
  uint16_t d;
  uint8_t qs[16];
  kf_test_q4_0_block(t->data + i / 32 * 32, &d, qs);
  int j = (int)(i % 32), nib = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
  return (float)((double)kf_test_f16_val(d) * (nib - 8));
}
static float want_mxfp4(const kf_test_tensor *t, int64_t i, int linear) {
  if (!linear) return t->data[i];
  float out[32];
  uint8_t codes[32], e;
  kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_OCP, t->data + i / 32 * 32, 32, codes, &e);
  kf_mx_dequantize_block(KF_MX_E2M1, codes, e, 32, out);
  return out[i % 32];
}

static void round_trip(const kf_test_model *m, const char *path, const char *what, want_fn want,
                       kf_pack_format want_linear_fmt) {
  char err[512];
  kf_pack *p;
  if (kf_pack_open(&p, path, err, sizeof err)) {
    check(0, "%s", err);
    return;
  }
  int ok = kf_pack_count(p) == (size_t)m->n;
  int64_t n_bad = 0, n_vals = 0;
  char first[256] = "";
  for (int i = 0; i < m->n && ok; i++) {
    const kf_test_tensor *t = &m->t[i];
    const kf_pack_tensor *pt = kf_pack_find(p, t->name);
    if (!pt) {
      snprintf(first, sizeof first, "%s missing", t->name);
      ok = 0;
      break;
    }
    int lin = is_linear(t);
    if (lin && want_linear_fmt && pt->format != want_linear_fmt && !(want_linear_fmt == KF_PACK_W4 && pt->format == KF_PACK_W8)) {
      snprintf(first, sizeof first, "%s: format %d, want %d", t->name, pt->format, want_linear_fmt);
      ok = 0;
      break;
    }
    int64_t ne = kf_pack_tensor_elems(pt);
    float *v = malloc((size_t)ne * sizeof(float));
    kf_pack_tensor_f32(pt, v, err, sizeof err);
    for (int64_t j = 0; j < ne; j++, n_vals++) {
      float w = want(t, j, lin);
      if (!(w == v[j])) { /* as values: a -0 block value may come back as +0 (code 0 x scale) */
        if (!n_bad++)
          snprintf(first, sizeof first, "%s[%lld] = %.9g, want %.9g", t->name, (long long)j, (double)v[j], (double)w);
      }
    }
    free(v);
  }
  size_t ml;
  const char *meta = kf_pack_meta(p, &ml);
  ok &= n_bad == 0 && ml > 0 && memcmp(meta, m->config, ml) == 0;
  char msg[700];
  snprintf(msg, sizeof msg, "%s: %zu tensors, %lld values equal%s%s", what, kf_pack_count(p), (long long)n_vals,
           first[0] ? "; first mismatch " : "", first);
  check(ok, "%s", msg);
  kf_pack_close(p);
}

/* GGUF Q8_0 -> kforge W8 group-32 codes and scales, bit for bit. */
static void q8_bit_exact(const kf_test_model *m, const char *path) {
  char err[512];
  kf_pack *p;
  if (kf_pack_open(&p, path, err, sizeof err)) {
    check(0, "%s", err);
    return;
  }
  int64_t n_codes = 0, n_bad = 0;
  for (int i = 0; i < m->n; i++) {
    const kf_test_tensor *t = &m->t[i];
    if (!is_linear(t)) continue;
    const kf_pack_tensor *pt = kf_pack_find(p, t->name);
    kf_qweight qw;
    if (!pt || pt->format != KF_PACK_W8 || pt->group != 32 || kf_pack_tensor_qweight(pt, KF_WLAYOUT_N16K4, &qw, err, sizeof err)) {
      n_bad++;
      continue;
    }
    int64_t N = t->dims[0], K = t->dims[1];
    for (int64_t r = 0; r < N; r++)
      for (int64_t b = 0; b < K / 32; b++) {
        uint16_t d;
        int8_t q[32];
        kf_test_q8_0_block(t->data + r * K + b * 32, &d, q);
        float s = kf_test_f16_val(d), got_s = qw.scales[b * qw.n_pad + r];
        n_bad += memcmp(&s, &got_s, 4) != 0;
        n_bad += memcmp(q, qw.q + r * K + b * 32, 32) != 0;
        n_codes += 32;
      }
    /* and the mapped tensor is the packed layout of exactly these codes */
    kf_qweight again;
    float *sc = malloc((size_t)(N * qw.n_groups) * sizeof(float));
    for (int64_t r = 0; r < N; r++)
      for (int64_t g = 0; g < qw.n_groups; g++) sc[r * qw.n_groups + g] = qw.scales[g * qw.n_pad + r];
    kf_qweight_from_codes(&again, qw.q, sc, N, K, 8, 32, (kf_wlayout)pt->layout, err, sizeof err);
    n_bad += again.packed_bytes != pt->data_bytes || memcmp(again.packed, pt->data, pt->data_bytes);
    free(sc);
    kf_qweight_free(&again);
    kf_qweight_free(&qw);
  }
  char msg[200];
  snprintf(msg, sizeof msg, "GGUF Q8_0 -> W8 group 32: %lld codes and their f16 scales bit-exact (%lld mismatches)",
           (long long)n_codes, (long long)n_bad);
  check(n_bad == 0 && n_codes > 0, "%s", msg);
  kf_pack_close(p);
}

/* Quantized from floats: the packed tensor is byte-identical to kf_qweight_quantize's. */
static void quantized_matches(const kf_test_model *m, const char *path, int bits, int64_t group, kf_wlayout layout) {
  char err[512];
  kf_pack *p;
  if (kf_pack_open(&p, path, err, sizeof err)) {
    check(0, "%s", err);
    return;
  }
  int n_bad = 0, n = 0;
  for (int i = 0; i < m->n; i++) {
    const kf_test_tensor *t = &m->t[i];
    if (!is_linear(t)) continue;
    const kf_pack_tensor *pt = kf_pack_find(p, t->name);
    kf_qweight qw;
    int64_t K = t->dims[1], g = group ? group : (K + 7) / 8 * 8;
    kf_qweight_quantize(&qw, t->data, t->dims[0], K, bits, g, layout, err, sizeof err);
    n_bad += !pt || pt->data_bytes != qw.packed_bytes || memcmp(pt->data, qw.packed, qw.packed_bytes) ||
             pt->scale_bytes != (size_t)(qw.n_groups * qw.n_pad) * 4 || memcmp(pt->scales, qw.scales, pt->scale_bytes);
    n++;
    kf_qweight_free(&qw);
  }
  char msg[200];
  snprintf(msg, sizeof msg, "pack --quant w%d%s: %d linear tensors byte-identical to kf_qweight_quantize (%d differ)",
           bits, layout == KF_WLAYOUT_N16K1 ? " --layout n16k1" : "", n, n_bad);
  check(n_bad == 0 && n > 0, "%s", msg);
  kf_pack_close(p);
}

/* Two packed files hold byte-identical tensors. */
static void same_pack(const char *a, const char *b, const char *what) {
  char err[512];
  kf_pack *pa, *pb;
  int ok = !kf_pack_open(&pa, a, err, sizeof err) && !kf_pack_open(&pb, b, err, sizeof err);
  for (size_t i = 0; ok && i < kf_pack_count(pa); i++) {
    const kf_pack_tensor *x = kf_pack_tensor_at(pa, i), *y = kf_pack_find(pb, x->name);
    ok = y && x->format == y->format && x->data_bytes == y->data_bytes && !memcmp(x->data, y->data, x->data_bytes) &&
         x->scale_bytes == y->scale_bytes && (!x->scale_bytes || !memcmp(x->scales, y->scales, x->scale_bytes));
  }
  check(ok && kf_pack_count(pa) == kf_pack_count(pb), "%s", what);
  kf_pack_close(pa);
  kf_pack_close(pb);
}

/* ---- bad input ---- */

static void expect_ckpt_error(const char *label, const void *buf, size_t len, int gguf, const char *want1,
                              const char *want2) {
  kf_ckpt ck;
  memset(&ck, 0, sizeof ck);
  char err[512] = "";
  int rc = kf_ckpt_add_mem(&ck, buf, len, label, gguf, err, sizeof err);
  kf_ckpt_free(&ck);
  int ok = rc != 0 && strstr(err, label) && strstr(err, want1) && (!want2 || strstr(err, want2));
  char msg[700];
  snprintf(msg, sizeof msg, "%s rejected: %s", label, rc ? err : "(accepted)");
  check(ok, "%s", msg);
}

/* Every prefix shorter than the file must be rejected (no crash, a message naming the file). */
static void all_prefixes(const char *path, int gguf, const char *what) {
  char *data = NULL;
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  size_t len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  data = malloc(len);
  if (fread(data, 1, len, f) != len) len = 0;
  fclose(f);
  size_t n_cut = 0, n_bad = 0;
  char err[512], first[600] = "";
  for (size_t cut = 0; cut < len; cut += cut < 4096 ? 1 : 997) {
    kf_ckpt ck;
    memset(&ck, 0, sizeof ck);
    char *copy = malloc(cut ? cut : 1); /* exactly cut bytes, so ASan sees any over-read */
    memcpy(copy, data, cut);
    err[0] = 0;
    int rc = kf_ckpt_add_mem(&ck, copy, cut, "cut.bin", gguf, err, sizeof err);
    if (rc == 0 || !strstr(err, "cut.bin")) {
      n_bad++;
      if (!first[0]) snprintf(first, sizeof first, " first at %zu bytes: %s", cut, rc ? err : "accepted");
    }
    if (cut == len / 2 && !first[0]) snprintf(first, sizeof first, " e.g. at %zu bytes: %s", cut, err);
    kf_ckpt_free(&ck);
    free(copy);
    n_cut++;
  }
  char msg[900];
  snprintf(msg, sizeof msg, "%s: %zu truncations of %zu bytes rejected%s", what, n_cut - n_bad, len, first);
  check(n_bad == 0, "%s", msg);
  free(data);
}

static void bad_safetensors(void) {
  /* offsets outside the file */
  const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16000]}}";
  uint8_t buf[256] = {0};
  size_t hl = strlen(hdr);
  buf[0] = (uint8_t)hl;
  memcpy(buf + 8, hdr, hl);
  expect_ckpt_error("outside.safetensors", buf, 8 + hl + 16, 0, "tensor 'w'", "outside");
  /* span not matching shape x dtype */
  hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}";
  hl = strlen(hdr);
  buf[0] = (uint8_t)hl;
  memcpy(buf + 8, hdr, hl);
  expect_ckpt_error("span.safetensors", buf, 8 + hl + 16, 0, "tensor 'w'", "need 16");
  /* unsupported dtype */
  hdr = "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}";
  hl = strlen(hdr);
  buf[0] = (uint8_t)hl;
  memcpy(buf + 8, hdr, hl);
  expect_ckpt_error("dtype.safetensors", buf, 8 + hl + 16, 0, "tensor 'ids'", "unsupported dtype 'I64'");
  /* header length beyond the file */
  memset(buf, 0, 16);
  buf[0] = 200;
  expect_ckpt_error("hlen.safetensors", buf, 16, 0, "header of 200 bytes", NULL);
  /* negative dimension */
  hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,2],\"data_offsets\":[0,16]}}";
  hl = strlen(hdr);
  buf[0] = (uint8_t)hl;
  memcpy(buf + 8, hdr, hl);
  expect_ckpt_error("negdim.safetensors", buf, 8 + hl + 16, 0, "tensor 'w'", "dimension 0");
}

/* A GGUF with one tensor, its fields given. */
static size_t tiny_gguf(uint8_t *b, uint32_t type, uint64_t ne0, uint64_t ne1, uint64_t offset, size_t data) {
  size_t n = 0;
#define P(v, sz) (memcpy(b + n, &(v), sz), n += sz)
  uint32_t magic = 0x46554747u, ver = 3, nd = 2;
  uint64_t nt = 1, nkv = 0, nl = 6;
  P(magic, 4);
  P(ver, 4);
  P(nt, 8);
  P(nkv, 8);
  P(nl, 8);
  memcpy(b + n, "blk.0x", 6);
  n += 6;
  P(nd, 4);
  P(ne0, 8);
  P(ne1, 8);
  P(type, 4);
  P(offset, 8);
#undef P
  n = (n + 31) / 32 * 32;
  memset(b + n, 0, data);
  return n + data;
}

static void bad_gguf(void) {
  uint8_t b[4096];
  size_t n = tiny_gguf(b, 12 /* Q4_K */, 256, 2, 0, 288);
  expect_ckpt_error("qk.gguf", b, n, 1, "tensor 'blk.0x'", "unsupported GGUF type 12");
  n = tiny_gguf(b, 8, 64, 2, 0, 100); /* needs 136 bytes */
  expect_ckpt_error("short.gguf", b, n, 1, "tensor 'blk.0x'", "outside the file");
  n = tiny_gguf(b, 8, 64, 2, 1u << 30, 136);
  expect_ckpt_error("offset.gguf", b, n, 1, "tensor 'blk.0x'", "outside the file");
  n = tiny_gguf(b, 8, 48, 2, 0, 136);
  expect_ckpt_error("rows.gguf", b, n, 1, "tensor 'blk.0x'", "blocks of 32");
  n = tiny_gguf(b, 0, (uint64_t)1 << 62, 4, 0, 64);
  expect_ckpt_error("huge.gguf", b, n, 1, "tensor 'blk.0x'", "dimension");
  memcpy(b, "GGUF\x01\0\0\0", 8);
  expect_ckpt_error("v1.gguf", b, n, 1, "GGUF version 1", NULL);
}

static void bad_pack(const char *good_path, const char *st_path) {
  char *raw = kf_test_read(good_path), err[512];
  FILE *f = fopen(good_path, "rb");
  fseek(f, 0, SEEK_END);
  size_t len = (size_t)ftell(f);
  fclose(f);
  kf_pack *p;
  /* truncations */
  size_t n_bad = 0, n_cut = 0;
  for (size_t cut = 0; cut < len; cut += cut < 128 ? 1 : 1 + len / 97) {
    char *copy = malloc(cut ? cut : 1);
    memcpy(copy, raw, cut);
    if (!kf_pack_open_mem(&p, copy, cut, "cut.kfpack", err, sizeof err)) {
      n_bad++;
      kf_pack_close(p);
    } else n_bad += !strstr(err, "cut.kfpack");
    free(copy);
    n_cut++;
  }
  char msg[700];
  snprintf(msg, sizeof msg, "%zu truncated packed files rejected (%zu accepted)", n_cut - n_bad, n_bad);
  check(n_bad == 0, "%s", msg);
  /* a flipped byte in a tensor's data: checksum error naming the tensor */
  /* find the tensor's offset from the TOC the way a reader would: search the name */
  size_t toc = 0;
  for (size_t i = 0; i + 128 <= len; i++)
    if (!memcmp(raw + i, "model.layers.1.mlp.down_proj.weight", 36)) toc = i;
  uint64_t doff;
  memcpy(&doff, raw + toc + 192, 8);
  raw[doff + 5] ^= 0x10;
  int rc = kf_pack_open_mem(&p, raw, len, "flip.kfpack", err, sizeof err);
  check(rc && strstr(err, "flip.kfpack") && strstr(err, "model.layers.1.mlp.down_proj.weight") && strstr(err, "checksum"),
        "flipped data byte: %s", err);
  raw[doff + 5] ^= 0x10;
  /* a version from the future */
  raw[8] = 2;
  rc = kf_pack_open_mem(&p, raw, len, "v2.kfpack", err, sizeof err);
  check(rc && strstr(err, "version 2"), "future version: %s", err);
  raw[8] = 1;
  /* a TOC entry pointing outside the file, TOC checksum fixed up so the entry check is what fails */
  uint64_t huge = (uint64_t)len * 4;
  memcpy(raw + toc + 192, &huge, 8);
  uint64_t toc_off;
  uint32_t n_t;
  memcpy(&toc_off, raw + 24, 8);
  memcpy(&n_t, raw + 12, 4);
  uint32_t crc = kf_pack_crc32(0, raw + toc_off, (size_t)n_t * 256);
  memcpy(raw + 48, &crc, 4);
  crc = kf_pack_crc32(0, raw, 60);
  memcpy(raw + 60, &crc, 4);
  rc = kf_pack_open_mem(&p, raw, len, "off.kfpack", err, sizeof err);
  check(rc && strstr(err, "model.layers.1.mlp.down_proj.weight") && strstr(err, "outside the file"),
        "offset outside the file: %s", err);
  free(raw);
  /* a foreign file */
  rc = kf_pack_open(&p, st_path, err, sizeof err);
  check(rc && strstr(err, st_path) && strstr(err, "not a kforge packed file"), "foreign file: %s", err);
  rc = kf_pack_open(&p, "no-such-file.kfpack", err, sizeof err);
  check(rc && strstr(err, "no-such-file.kfpack"), "missing file: %s", err);
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  char err[512];
  /* A: odd sizes (N 37, 52, 8; K 40, 52): safetensors only */
  kf_test_model a;
  kf_test_model_make(&a, 40, 5, 1, 8, 52, 37, 2, 7);
  kf_test_write_safetensors("a_f32.safetensors", &a, "F32");
  kf_test_write_safetensors("a_bf16.safetensors", &a, "BF16");
  kf_test_write_safetensors("a_f16.safetensors", &a, "F16");
  const char *f1[] = {"a_f32.safetensors"}, *f2[] = {"a_bf16.safetensors"}, *f3[] = {"a_f16.safetensors"};
  int rc = pack(f1, 1, a.config, KF_QUANT_KEEP, KF_WLAYOUT_N16K4, "a_keep.kfpack", err, sizeof err);
  if (rc) check(0, "%s", err);
  else round_trip(&a, "a_keep.kfpack", "safetensors F32 -> keep", want_f32, 0);
  if ((rc = pack(f2, 1, a.config, KF_QUANT_KEEP, KF_WLAYOUT_N16K4, "a_bf16.kfpack", err, sizeof err))) check(0, "%s", err);
  else round_trip(&a, "a_bf16.kfpack", "safetensors BF16 -> keep", want_bf16, 0);
  if ((rc = pack(f3, 1, a.config, KF_QUANT_KEEP, KF_WLAYOUT_N16K4, "a_f16.kfpack", err, sizeof err))) check(0, "%s", err);
  else round_trip(&a, "a_f16.kfpack", "safetensors F16 -> keep", want_f16, 0);
  if ((rc = pack(f1, 1, a.config, KF_QUANT_W8, KF_WLAYOUT_N16K4, "a_w8.kfpack", err, sizeof err))) check(0, "%s", err);
  else quantized_matches(&a, "a_w8.kfpack", 8, 0, KF_WLAYOUT_N16K4);
  if ((rc = pack(f1, 1, a.config, KF_QUANT_W4, KF_WLAYOUT_N16K1, "a_w4.kfpack", err, sizeof err))) check(0, "%s", err);
  else quantized_matches(&a, "a_w4.kfpack", 4, 32, KF_WLAYOUT_N16K1);

  /* shape not matching the config */
  kf_test_model wrong;
  kf_test_model_make(&wrong, 40, 5, 1, 8, 53, 37, 2, 7);
  rc = pack(f1, 1, wrong.config, KF_QUANT_KEEP, KF_WLAYOUT_N16K4, "wrong.kfpack", err, sizeof err);
  check(rc && strstr(err, "a_f32.safetensors") && strstr(err, "model.layers.0.mlp.gate_proj.weight") &&
            strstr(err, "[52, 40]") && strstr(err, "[53, 40]"),
        "shape not matching the config: %s", err);
  const char *twice[] = {"a_f32.safetensors", "a_bf16.safetensors"};
  rc = pack(twice, 2, a.config, KF_QUANT_KEEP, KF_WLAYOUT_N16K4, "twice.kfpack", err, sizeof err);
  check(rc && strstr(err, "a_bf16.safetensors") && strstr(err, "appears twice") && strstr(err, "a_f32.safetensors"),
        "a tensor in two shards: %s", err);
  FILE *gone = fopen("wrong.kfpack", "rb");
  check(gone == NULL, "%s", "no packed file is left behind after an error");
  if (gone) fclose(gone);
  kf_test_model_free(&wrong);

  /* B: GGUF-able sizes (K multiples of 32; N 96, 32, 160, 67) */
  kf_test_model b;
  kf_test_model_make(&b, 96, 3, 1, 32, 160, 67, 2, 11);
  kf_test_write_safetensors("b_f32.safetensors", &b, "F32");
  static const struct {
    int type;
    const char *file, *what;
    want_fn want;
    kf_pack_format fmt;
  } gg[] = {
      {8, "b_q8_0.gguf", "GGUF Q8_0 -> W8 g32", want_q8_0, KF_PACK_W8},
      {2, "b_q4_0.gguf", "GGUF Q4_0 -> W4 g32 (W8 where a block has a negative scale and code -8)", want_q4_0, KF_PACK_W4},
      {39, "b_mxfp4.gguf", "GGUF MXFP4 -> MXFP4", want_mxfp4, KF_PACK_MXFP4},
      {1, "b_f16.gguf", "GGUF F16 -> keep", want_f16_lin, 0},
      {30, "b_bf16.gguf", "GGUF BF16 -> keep", want_bf16_lin, 0},
      {0, "b_f32.gguf", "GGUF F32 -> keep", want_f32, 0},
  };
  for (size_t i = 0; i < sizeof gg / sizeof gg[0]; i++) {
    char out[64];
    snprintf(out, sizeof out, "%s.kfpack", gg[i].file);
    kf_test_write_gguf(gg[i].file, &b, gg[i].type);
    const char *files[] = {gg[i].file};
    if ((rc = pack(files, 1, b.config, KF_QUANT_KEEP, i % 2 ? KF_WLAYOUT_N16K1 : KF_WLAYOUT_N16K4, out, err, sizeof err)))
      check(0, "%s", err);
    else round_trip(&b, out, gg[i].what, gg[i].want, gg[i].fmt);
  }
  q8_bit_exact(&b, "b_q8_0.gguf.kfpack");
  const char *sb[] = {"b_f32.safetensors"}, *gb[] = {"b_f32.gguf"};
  if (!pack(sb, 1, b.config, KF_QUANT_W8, KF_WLAYOUT_N16K4, "b_st_w8.kfpack", err, sizeof err) &&
      !pack(gb, 1, b.config, KF_QUANT_W8, KF_WLAYOUT_N16K4, "b_gg_w8.kfpack", err, sizeof err))
    same_pack("b_st_w8.kfpack", "b_gg_w8.kfpack", "the same weights via safetensors and GGUF F32 pack to identical W8 tensors");
  else check(0, "%s", err);
  if (!pack(sb, 1, b.config, KF_QUANT_MXFP4, KF_WLAYOUT_N16K4, "b_st_mx.kfpack", err, sizeof err))
    round_trip(&b, "b_st_mx.kfpack", "safetensors F32 -> --quant mxfp4 (values = OCP MXFP4 of the weights)", want_mxfp4,
               KF_PACK_MXFP4);
  else check(0, "%s", err);

  /* bad input */
  bad_safetensors();
  bad_gguf();
  all_prefixes("a_f32.safetensors", 0, "safetensors");
  all_prefixes("b_q8_0.gguf", 1, "GGUF Q8_0");
  bad_pack("a_keep.kfpack", "a_f32.safetensors");
  kf_test_model_free(&a);
  kf_test_model_free(&b);
  printf("%s\n", n_fail ? "FAILED" : "all ok");
  return n_fail ? 1 : 0;
}

/*
** kf_model_pack.c: checkpoint -> packed file (`kforge pack`). Linear weights become kf_qweight
** codes in the layout the GEMM kernels read; GGUF's 32-element blocks (Q8_0, Q4_0, MXFP4) map
** onto kforge's group-32 codes exactly (same codes, same scales, nothing requantized); float
** linear weights are quantized when asked (W8 per channel, W4 per group, MXFP4 with the OCP
** scale rule); every other tensor (norms, embeddings, biases) keeps its float format.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kf_model.h"
#include "kf_model_int.h"

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* A weight the GEMM kernels multiply with: 2-D and a projection (or the LM head, or a router). */
static int is_linear(const kf_ckpt_tensor *t) {
  if (t->n_dims != 2 || !ends_with(t->name, ".weight")) return 0;
  return strstr(t->name, "_proj") || !strcmp(t->name, "lm_head.weight") || ends_with(t->name, "mlp.gate.weight");
}

static void dims_str(const int64_t *dims, int n, char *out, size_t len) {
  size_t at = 0;
  at += (size_t)snprintf(out, len, "[");
  for (int i = 0; i < n && at < len; i++)
    at += (size_t)snprintf(out + at, len - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
  if (at < len) snprintf(out + at, len - at, "]");
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* GGUF blocks of a 2-D tensor [n][k] -> signed codes q[n][k] and scales [n][k/32] (row-major,
** as kf_qweight_from_codes takes them). Q8_0: q and the f16 scale as they are. Q4_0: q = nibble - 8;
** a block with a negative scale is stored as (-q, -d): exact in 4 bits unless the block uses
** nibble 0 (q = -8), then *bits becomes 8. MXFP4: q = E2M1 nibble - 8, scale 2^(e-127) / 2. */
static int gguf_codes(const kf_ckpt_tensor *t, int8_t *q, float *sc, int *bits, char *err, size_t errlen) {
  int64_t n = t->dims[0], k = t->dims[1], nb = k / 32;
  const uint8_t *p = t->data;
  size_t bsz = t->dtype == KF_DT_Q8_0 ? 34 : t->dtype == KF_DT_Q4_0 ? 18 : 17;
  *bits = t->dtype == KF_DT_Q8_0 ? 8 : 4;
  int need8 = 0;
  for (int64_t r = 0; r < n; r++)
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *blk = p + (size_t)(r * nb + b) * bsz;
      int8_t *qb = q + r * k + b * 32;
      float s;
      if (t->dtype == KF_DT_MXFP4) {
        if (blk[0] == KF_E8M0_NAN) {
          kf_model_err(err, errlen, "%s: tensor '%s': row %lld block %lld has the NaN scale 0xFF", t->file,
                       t->src_name, (long long)r, (long long)b);
          return -1;
        }
        s = kf_e8m0_to_f32(blk[0]) * 0.5f;
        for (int j = 0; j < 16; j++) {
          qb[j] = (int8_t)((blk[1 + j] & 15) - 8);
          qb[j + 16] = (int8_t)((blk[1 + j] >> 4) - 8);
        }
      } else {
        s = kf_pack_f16_to_f32(rd16(blk));
        if (!isfinite(s)) {
          kf_model_err(err, errlen, "%s: tensor '%s': row %lld block %lld has scale %g", t->file, t->src_name,
                       (long long)r, (long long)b, (double)s);
          return -1;
        }
        if (t->dtype == KF_DT_Q8_0)
          for (int j = 0; j < 32; j++) qb[j] = (int8_t)blk[2 + j];
        else
          for (int j = 0; j < 16; j++) {
            qb[j] = (int8_t)((blk[2 + j] & 15) - 8);
            qb[j + 16] = (int8_t)((blk[2 + j] >> 4) - 8);
          }
        if (signbit(s)) { /* kf_qweight scales are >= 0: store (-q, -d), the same products */
          s = -s;
          for (int j = 0; j < 32; j++) {
            if (qb[j] == -128) {
              kf_model_err(err, errlen, "%s: tensor '%s': row %lld block %lld: code -128 with a negative scale has "
                           "no exact int8 form", t->file, t->src_name, (long long)r, (long long)b);
              return -1;
            }
            need8 |= qb[j] == -8;
            qb[j] = (int8_t)-qb[j];
          }
        }
      }
      sc[r * nb + b] = s;
    }
  if (need8 && t->dtype == KF_DT_Q4_0) *bits = 8; /* a negated -8 is +8: outside 4-bit codes */
  return 0;
}

static int pack_weight(kf_pack_writer *w, const kf_ckpt_tensor *t, const kf_pack_opts *o, char *how, size_t howlen,
                       char *err, size_t errlen) {
  int64_t n = t->dims[0], k = t->dims[1];
  kf_qweight qw;
  memset(&qw, 0, sizeof qw);
  kf_pack_format fmt;
  int rc;
  char qerr[256];
  if (t->dtype >= KF_DT_Q8_0) {
    int8_t *q = malloc((size_t)(n * k));
    float *sc = malloc((size_t)(n * (k / 32)) * sizeof(float));
    int bits = 8;
    rc = q && sc ? gguf_codes(t, q, sc, &bits, err, errlen) : -1;
    if (!q || !sc) kf_model_err(err, errlen, "%s: tensor '%s': out of memory", t->file, t->src_name);
    if (!rc) {
      rc = kf_qweight_from_codes(&qw, q, sc, n, k, bits, 32, o->layout, qerr, sizeof qerr);
      if (rc) kf_model_err(err, errlen, "%s: tensor '%s': %s", t->file, t->src_name, qerr);
    }
    free(q);
    free(sc);
    if (rc) return -1;
    fmt = t->dtype == KF_DT_MXFP4 ? KF_PACK_MXFP4 : bits == 8 ? KF_PACK_W8 : KF_PACK_W4;
    snprintf(how, howlen, "%s, group 32 (exact: the GGUF codes and scales%s)",
             fmt == KF_PACK_W8 ? "W8" : fmt == KF_PACK_W4 ? "W4" : "MXFP4",
             t->dtype == KF_DT_Q4_0 && bits == 8 ? "; Q4_0 blocks with negative scales held as 8-bit codes" : "");
  } else {
    float *f = malloc((size_t)(n * k) * sizeof(float));
    if (!f) {
      kf_model_err(err, errlen, "%s: tensor '%s': out of memory", t->file, t->name);
      return -1;
    }
    kf_ckpt_tensor_f32(t, f, err, errlen);
    if (o->quant == KF_QUANT_MXFP4) {
      int64_t nb = kf_mx_n_blocks(k);
      int8_t *q = malloc((size_t)(n * k));
      float *sc = malloc((size_t)(n * nb) * sizeof(float));
      uint8_t *codes = malloc((size_t)k), *e8 = malloc((size_t)nb);
      rc = q && sc && codes && e8 ? 0 : -1;
      for (int64_t r = 0; !rc && r < n; r++) {
        for (int64_t c = 0; c < k; c++)
          if (!isfinite(f[r * k + c])) {
            snprintf(qerr, sizeof qerr, "w[%lld][%lld] is not finite", (long long)r, (long long)c);
            rc = -1;
          }
        if (rc) break;
        kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_OCP, f + r * k, k, codes, e8);
        for (int64_t c = 0; c < k; c++) q[r * k + c] = (int8_t)(codes[c] - 8);
        for (int64_t b = 0; b < nb; b++) sc[r * nb + b] = kf_e8m0_to_f32(e8[b]) * 0.5f;
      }
      if (!q || !sc || !codes || !e8) snprintf(qerr, sizeof qerr, "out of memory");
      if (!rc) rc = kf_qweight_from_codes(&qw, q, sc, n, k, 4, 32, o->layout, qerr, sizeof qerr);
      free(q);
      free(sc);
      free(codes);
      free(e8);
      fmt = KF_PACK_MXFP4;
      snprintf(how, howlen, "MXFP4 (quantized, OCP scale rule, blocks of 32)");
    } else {
      int bits = o->quant == KF_QUANT_W8 ? 8 : 4;
      int64_t group = o->group > 0 ? o->group : bits == 8 ? (k + 7) / 8 * 8 : 32;
      rc = kf_qweight_quantize(&qw, f, n, k, bits, group, o->layout, qerr, sizeof qerr);
      fmt = bits == 8 ? KF_PACK_W8 : KF_PACK_W4;
      if (group >= k) snprintf(how, howlen, "W%d per channel (quantized)", bits);
      else snprintf(how, howlen, "W%d group %lld (quantized)", bits, (long long)group);
    }
    free(f);
    if (rc) {
      kf_model_err(err, errlen, "%s: tensor '%s': %s", t->file, t->name, qerr);
      return -1;
    }
  }
  rc = kf_pack_writer_add_qweight(w, t->name, fmt, &qw, err, errlen);
  kf_qweight_free(&qw);
  return rc;
}

/* A copy of a llama.cpp Q/K tensor with its rows back in Hugging Face order: HF row
** h*D + s*D/2 + i was written as row h*D + 2i + s (D = rows / rope_heads). */
static uint8_t *unpermute_rows(const kf_ckpt_tensor *t) {
  int64_t rows = t->dims[0], D = rows / t->rope_heads;
  size_t row_bytes = t->bytes / (size_t)rows;
  uint8_t *out = malloc(t->bytes ? t->bytes : 1);
  if (!out) return NULL;
  for (int64_t r = 0; r < rows; r++) {
    int64_t h = r / D, w = r % D, s = w / (D / 2), i = w % (D / 2);
    memcpy(out + (size_t)r * row_bytes, t->data + (size_t)(h * D + 2 * i + s) * row_bytes, row_bytes);
  }
  return out;
}

int kf_model_pack(const kf_ckpt *ck, const kf_pack_opts *o, const char *out_path, char *err, size_t errlen) {
  if (ck->n_tensors == 0) {
    kf_model_err(err, errlen, "kforge pack: the checkpoint has no tensors");
    return -1;
  }
  /* all checks before writing anything */
  for (size_t i = 0; o->cfg && i < ck->n_tensors; i++) {
    const kf_ckpt_tensor *t = &ck->tensors[i];
    int64_t want[4];
    int nd;
    if (!kf_model_expected_shape(o->cfg, t->name, want, &nd)) continue;
    int same = nd == t->n_dims;
    for (int d = 0; same && d < nd; d++) same = want[d] == t->dims[d];
    if (!same) {
      char a[96], b[96];
      dims_str(t->dims, t->n_dims, a, sizeof a);
      dims_str(want, nd, b, sizeof b);
      kf_model_err(err, errlen, "%s: tensor '%s' has shape %s, the config (model_type %s) implies %s", t->file,
                   t->src_name, a, o->cfg->model_type, b);
      return -1;
    }
  }
  kf_pack_writer *w;
  if (kf_pack_writer_open(&w, out_path, err, errlen)) return -1;
  for (size_t i = 0; i < ck->n_tensors; i++) {
    const kf_ckpt_tensor *t = &ck->tensors[i];
    kf_ckpt_tensor hf_order;
    uint8_t *rows = NULL;
    if (t->rope_heads) {
      hf_order = *t;
      if (!(rows = unpermute_rows(t))) {
        kf_model_err(err, errlen, "%s: tensor '%s': out of memory", t->file, t->src_name);
        kf_pack_writer_abort(w);
        return -1;
      }
      hf_order.data = rows;
      t = &hf_order;
    }
    char how[200], d[96];
    int rc;
    int64_t want[4];
    int nd;
    int known = !o->cfg || kf_model_expected_shape(o->cfg, t->name, want, &nd);
    if (is_linear(t) && (t->dtype >= KF_DT_Q8_0 || o->quant != KF_QUANT_KEEP)) {
      rc = pack_weight(w, t, o, how, sizeof how, err, errlen);
    } else if (t->dtype >= KF_DT_Q8_0) { /* a block tensor that is not a GEMM weight: exact f32 */
      float *f = malloc((size_t)kf_ckpt_tensor_elems(t) * sizeof(float));
      rc = f ? kf_ckpt_tensor_f32(t, f, err, errlen) : -1;
      if (!f) kf_model_err(err, errlen, "%s: tensor '%s': out of memory", t->file, t->name);
      if (!rc) rc = kf_pack_writer_add_float(w, t->name, KF_PACK_F32, t->n_dims, t->dims, f, err, errlen);
      free(f);
      snprintf(how, sizeof how, "F32 (exact dequantization of %s)", kf_dtype_name(t->dtype));
    } else {
      kf_pack_format f = t->dtype == KF_DT_F32 ? KF_PACK_F32 : t->dtype == KF_DT_F16 ? KF_PACK_F16 : KF_PACK_BF16;
      rc = kf_pack_writer_add_float(w, t->name, f, t->n_dims, t->dims, t->data, err, errlen);
      snprintf(how, sizeof how, "%s (as stored)", kf_dtype_name(t->dtype));
    }
    free(rows);
    if (rc) {
      kf_pack_writer_abort(w);
      return -1;
    }
    if (o->log) {
      dims_str(t->dims, t->n_dims, d, sizeof d);
      fprintf(o->log, "  %-48s %-5s %-16s -> %s%s%s\n", t->name, kf_dtype_name(t->dtype), d, how,
              t->rope_heads ? "; rows back in HF order" : "", known ? "" : "  [not a tensor of this model_type; kept]");
    }
  }
  return kf_pack_writer_finish(w, o->config_json, o->config_json ? o->config_len : 0, err, errlen);
}

/*
** kf_ckpt.c: checkpoint readers. safetensors (an 8-byte little-endian header length, a JSON
** header {"name": {"dtype", "shape", "data_offsets": [begin, end]}}, the data; offsets relative
** to the end of the header) and GGUF v2/v3 (ggml's docs/gguf.md: magic, version, tensor and
** metadata counts, typed key/values, tensor infos with dims innermost first, data aligned to
** general.alignment). Files are mmapped; every length, offset and dtype is checked before use.
*/
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kf_model.h"
#include "kf_model_int.h"

#define MAX_ELEMS ((int64_t)1 << 40)

const char *kf_dtype_name(kf_dtype d) {
  static const char *const names[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "MXFP4"};
  return (unsigned)d < 6 ? names[d] : "?";
}

/* Bytes of n elements; blocks of 32 for the GGUF block types (n a multiple of 32). */
static uint64_t dtype_bytes(kf_dtype d, int64_t n) {
  switch (d) {
  case KF_DT_F32: return (uint64_t)n * 4;
  case KF_DT_F16:
  case KF_DT_BF16: return (uint64_t)n * 2;
  case KF_DT_Q8_0: return (uint64_t)n / 32 * 34;
  case KF_DT_Q4_0: return (uint64_t)n / 32 * 18;
  case KF_DT_MXFP4: return (uint64_t)n / 32 * 17;
  }
  return 0;
}

int64_t kf_ckpt_tensor_elems(const kf_ckpt_tensor *t) {
  int64_t e = 1;
  for (int i = 0; i < t->n_dims; i++) e *= t->dims[i];
  return e;
}

static int push_tensor(kf_ckpt *ck, const kf_ckpt_tensor *t, char *err, size_t errlen) {
  if (ck->n_tensors == ck->cap_tensors) {
    size_t cap = ck->cap_tensors ? 2 * ck->cap_tensors : 64;
    kf_ckpt_tensor *nt = realloc(ck->tensors, cap * sizeof *nt);
    if (!nt) {
      kf_model_err(err, errlen, "%s: out of memory", t->file);
      return -1;
    }
    ck->tensors = nt;
    ck->cap_tensors = cap;
  }
  ck->tensors[ck->n_tensors++] = *t;
  return 0;
}

/* Checks dims (1..4 of them, each >= 1, product <= 2^40); 0 or -1 with a message. */
static int check_dims(const kf_ckpt_tensor *t, char *err, size_t errlen) {
  int64_t e = 1;
  if (t->n_dims < 1 || t->n_dims > 4) {
    kf_model_err(err, errlen, "%s: tensor '%s': %d dimensions (1..4 supported)", t->file, t->name, t->n_dims);
    return -1;
  }
  for (int i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 1 || t->dims[i] > MAX_ELEMS || e > MAX_ELEMS / t->dims[i]) {
      kf_model_err(err, errlen, "%s: tensor '%s': dimension %d is %lld (or the product exceeds 2^40)", t->file, t->name,
                   i, (long long)t->dims[i]);
      return -1;
    }
    e *= t->dims[i];
  }
  return 0;
}

/* ---- safetensors ---- */

static int st_parse(kf_ckpt *ck, const uint8_t *buf, size_t len, const char *file, char *err, size_t errlen) {
  if (len < 8) {
    kf_model_err(err, errlen, "%s: truncated safetensors file (%zu bytes, no header length)", file, len);
    return -1;
  }
  uint64_t hl = 0;
  for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
  if (hl > len - 8 || hl > ((uint64_t)100 << 20)) {
    kf_model_err(err, errlen, "%s: safetensors header of %llu bytes, but the file has %zu (truncated or not safetensors)",
                 file, (unsigned long long)hl, len);
    return -1;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hl, &end, 0);
  if (!root || !cJSON_IsObject(root)) {
    kf_model_err(err, errlen, "%s: safetensors header is not a JSON object", file);
    cJSON_Delete(root);
    return -1;
  }
  const uint8_t *data = buf + 8 + hl;
  size_t data_len = len - 8 - (size_t)hl;
  int rc = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, root) {
    if (!strcmp(e->string, "__metadata__")) continue;
    kf_ckpt_tensor t;
    memset(&t, 0, sizeof t);
    t.file = file;
    if (strlen(e->string) >= sizeof t.name || !e->string[0]) {
      kf_model_err(err, errlen, "%s: tensor name '%.60s' empty or longer than %zu bytes", file, e->string,
                   sizeof t.name - 1);
      rc = -1;
      break;
    }
    snprintf(t.name, sizeof t.name, "%s", e->string);
    snprintf(t.src_name, sizeof t.src_name, "%s", e->string);
    const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dt || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
      kf_model_err(err, errlen, "%s: tensor '%s': header entry needs dtype, shape and data_offsets [begin, end]", file,
                   t.name);
      rc = -1;
      break;
    }
    if (!strcmp(dt, "F32")) t.dtype = KF_DT_F32;
    else if (!strcmp(dt, "F16")) t.dtype = KF_DT_F16;
    else if (!strcmp(dt, "BF16")) t.dtype = KF_DT_BF16;
    else {
      kf_model_err(err, errlen, "%s: tensor '%s': unsupported dtype '%.20s' (supported: F32, F16, BF16)", file, t.name, dt);
      rc = -1;
      break;
    }
    int nd = cJSON_GetArraySize(shape);
    if (nd == 0) { /* a scalar */
      t.n_dims = 1;
      t.dims[0] = 1;
    } else {
      t.n_dims = nd > 4 ? 5 : nd;
      for (int i = 0; i < nd && i < 4; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        t.dims[i] = cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble <= 1e15 ? (int64_t)d->valuedouble : -1;
      }
    }
    if (check_dims(&t, err, errlen)) {
      rc = -1;
      break;
    }
    double b0 = cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) ? cJSON_GetArrayItem(offs, 0)->valuedouble : -1;
    double b1 = cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ? cJSON_GetArrayItem(offs, 1)->valuedouble : -1;
    uint64_t want = dtype_bytes(t.dtype, kf_ckpt_tensor_elems(&t));
    if (!(b0 >= 0 && b1 >= b0 && b1 <= (double)data_len)) {
      kf_model_err(err, errlen, "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the %zu data bytes of the file", file,
                   t.name, b0, b1, data_len);
      rc = -1;
      break;
    }
    if ((uint64_t)(b1 - b0) != want) {
      kf_model_err(err, errlen, "%s: tensor '%s': data_offsets span %.0f bytes, shape and dtype %s need %llu", file,
                   t.name, b1 - b0, dt, (unsigned long long)want);
      rc = -1;
      break;
    }
    t.data = data + (size_t)b0;
    t.bytes = (size_t)want;
    if ((rc = push_tensor(ck, &t, err, errlen))) break;
  }
  cJSON_Delete(root);
  return rc;
}

/* ---- GGUF ---- */

typedef struct cursor {
  const uint8_t *p;
  size_t len, at;
  const char *file;
  char *err;
  size_t errlen;
} cursor;

static int cur_need(cursor *c, uint64_t n, const char *what) {
  if (n > c->len - c->at) {
    kf_model_err(c->err, c->errlen, "%s: truncated GGUF file: %s at byte %zu needs %llu bytes, %zu left", c->file, what,
                 c->at, (unsigned long long)n, c->len - c->at);
    return -1;
  }
  return 0;
}
static int cur_u32(cursor *c, uint32_t *v, const char *what) {
  if (cur_need(c, 4, what)) return -1;
  *v = 0;
  for (int i = 0; i < 4; i++) *v |= (uint32_t)c->p[c->at + i] << (8 * i);
  c->at += 4;
  return 0;
}
static int cur_u64(cursor *c, uint64_t *v, const char *what) {
  if (cur_need(c, 8, what)) return -1;
  *v = 0;
  for (int i = 0; i < 8; i++) *v |= (uint64_t)c->p[c->at + i] << (8 * i);
  c->at += 8;
  return 0;
}
static int cur_str(cursor *c, const char **s, uint64_t *n, const char *what) {
  if (cur_u64(c, n, what) || cur_need(c, *n, what)) return -1;
  *s = (const char *)c->p + c->at;
  c->at += (size_t)*n;
  return 0;
}

enum { GT_U8, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STRING, GT_ARRAY, GT_U64, GT_I64, GT_F64 };

/* Skips (or reads, for general.alignment) one value of type `type`. */
static int gguf_value(cursor *c, uint32_t type, int depth, uint64_t *u32_out) {
  static const int size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (type == GT_STRING) {
    const char *s;
    uint64_t n;
    return cur_str(c, &s, &n, "metadata string");
  }
  if (type == GT_ARRAY) {
    uint32_t et;
    uint64_t n;
    if (depth > 2 || cur_u32(c, &et, "array type") || cur_u64(c, &n, "array length")) {
      if (depth > 2) kf_model_err(c->err, c->errlen, "%s: GGUF metadata arrays nested too deep", c->file);
      return -1;
    }
    if (et > GT_F64) {
      kf_model_err(c->err, c->errlen, "%s: GGUF metadata array of unknown type %u", c->file, et);
      return -1;
    }
    if (et != GT_STRING && et != GT_ARRAY) {
      if (n > (c->len - c->at) / (uint64_t)size[et]) return cur_need(c, n * size[et], "metadata array");
      c->at += (size_t)(n * (uint64_t)size[et]);
      return 0;
    }
    for (uint64_t i = 0; i < n; i++)
      if (gguf_value(c, et, depth + 1, NULL)) return -1;
    return 0;
  }
  if (type > GT_F64) {
    kf_model_err(c->err, c->errlen, "%s: GGUF metadata value of unknown type %u at byte %zu", c->file, type, c->at);
    return -1;
  }
  if (cur_need(c, (uint64_t)size[type], "metadata value")) return -1;
  if (u32_out && type == GT_U32) {
    uint32_t v = 0;
    cur_u32(c, &v, "general.alignment");
    *u32_out = v;
    return 0;
  }
  c->at += (size_t)size[type];
  return 0;
}

/* GGUF (llama.cpp) names -> Hugging Face names for the tensors of a Llama-style model. */
static void hf_name(const char *g, char *out, size_t outlen) {
  static const char *const map[][2] = {
      {"attn_norm.weight", "input_layernorm.weight"},   {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},     {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},     {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},         {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},         {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},          {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  int layer, used = 0;
  if (!strcmp(g, "token_embd.weight")) snprintf(out, outlen, "model.embed_tokens.weight");
  else if (!strcmp(g, "output_norm.weight")) snprintf(out, outlen, "model.norm.weight");
  else if (!strcmp(g, "output.weight")) snprintf(out, outlen, "lm_head.weight");
  else if (sscanf(g, "blk.%d.%n", &layer, &used) == 1 && used) {
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
      if (!strcmp(g + used, map[i][0])) {
        snprintf(out, outlen, "model.layers.%d.%s", layer, map[i][1]);
        return;
      }
    snprintf(out, outlen, "%s", g);
  } else snprintf(out, outlen, "%s", g);
}

static int gguf_parse(kf_ckpt *ck, const uint8_t *buf, size_t len, const char *file, char *err, size_t errlen) {
  cursor c = {buf, len, 0, file, err, errlen};
  uint32_t magic, version;
  uint64_t n_tensors, n_kv, alignment = 32, heads = 0, kv_heads = 0;
  int llama = 0;
  if (cur_u32(&c, &magic, "magic") || magic != 0x46554747u) {
    if (len >= 4) kf_model_err(err, errlen, "%s: not a GGUF file (no GGUF magic)", file);
    return -1;
  }
  if (cur_u32(&c, &version, "version") || cur_u64(&c, &n_tensors, "tensor count") || cur_u64(&c, &n_kv, "metadata count"))
    return -1;
  if (version != 2 && version != 3) {
    kf_model_err(err, errlen, "%s: GGUF version %u (versions 2 and 3 are supported)", file, version);
    return -1;
  }
  if (n_tensors > len / 24 || n_kv > len / 12) {
    kf_model_err(err, errlen, "%s: GGUF header claims %llu tensors and %llu metadata entries, more than %zu bytes hold",
                 file, (unsigned long long)n_tensors, (unsigned long long)n_kv, len);
    return -1;
  }
  for (uint64_t i = 0; i < n_kv; i++) {
    const char *key;
    uint64_t klen, al = 0;
    uint32_t type;
    if (cur_str(&c, &key, &klen, "metadata key") || cur_u32(&c, &type, "metadata type")) return -1;
    int is_align = klen == 17 && !memcmp(key, "general.alignment", 17);
    int is_heads = klen == 26 && !memcmp(key, "llama.attention.head_count", 26);
    int is_kv = klen == 29 && !memcmp(key, "llama.attention.head_count_kv", 29);
    if (klen == 20 && !memcmp(key, "general.architecture", 20) && type == GT_STRING) {
      const char *s;
      uint64_t n;
      if (cur_str(&c, &s, &n, "general.architecture")) return -1;
      llama = n == 5 && !memcmp(s, "llama", 5);
      continue;
    }
    if (gguf_value(&c, type, 0, is_align ? &al : is_heads ? &heads : is_kv ? &kv_heads : NULL)) return -1;
    if (is_align) {
      if (type != GT_U32 || al == 0 || (al & (al - 1)) || al > 65536) {
        kf_model_err(err, errlen, "%s: general.alignment must be a u32 power of two (got type %u value %llu)", file,
                     type, (unsigned long long)al);
        return -1;
      }
      alignment = al;
    }
  }
  size_t first = ck->n_tensors;
  uint64_t *offsets = calloc(n_tensors ? n_tensors : 1, sizeof *offsets);
  if (!offsets) {
    kf_model_err(err, errlen, "%s: out of memory", file);
    return -1;
  }
  int rc = 0;
  for (uint64_t i = 0; i < n_tensors && !rc; i++) {
    kf_ckpt_tensor t;
    memset(&t, 0, sizeof t);
    t.file = file;
    const char *name;
    uint64_t nlen, dims[4] = {0};
    uint32_t nd, type;
    if (cur_str(&c, &name, &nlen, "tensor name") || cur_u32(&c, &nd, "tensor n_dims")) {
      rc = -1;
      break;
    }
    if (nlen == 0 || nlen >= sizeof t.name || memchr(name, 0, (size_t)nlen)) {
      kf_model_err(err, errlen, "%s: tensor %llu: name empty, longer than %zu bytes or with a NUL", file,
                   (unsigned long long)i, sizeof t.name - 1);
      rc = -1;
      break;
    }
    memcpy(t.src_name, name, (size_t)nlen);
    if (nd < 1 || nd > 4) {
      kf_model_err(err, errlen, "%s: tensor '%s': %u dimensions (1..4 supported)", file, t.src_name, nd);
      rc = -1;
      break;
    }
    for (uint32_t d = 0; d < nd && !rc; d++) rc = cur_u64(&c, &dims[d], "tensor dims");
    if (rc || cur_u32(&c, &type, "tensor type") || cur_u64(&c, &offsets[i], "tensor offset")) {
      rc = -1;
      break;
    }
    hf_name(t.src_name, t.name, sizeof t.name);
    t.n_dims = (int)nd;
    for (uint32_t d = 0; d < nd; d++) t.dims[d] = dims[nd - 1 - d] > (uint64_t)MAX_ELEMS ? -1 : (int64_t)dims[nd - 1 - d];
    switch (type) {
    case 0: t.dtype = KF_DT_F32; break;
    case 1: t.dtype = KF_DT_F16; break;
    case 2: t.dtype = KF_DT_Q4_0; break;
    case 8: t.dtype = KF_DT_Q8_0; break;
    case 30: t.dtype = KF_DT_BF16; break;
    case 39: t.dtype = KF_DT_MXFP4; break;
    default:
      kf_model_err(err, errlen, "%s: tensor '%s': unsupported GGUF type %u (supported: F32, F16, BF16, Q8_0, Q4_0, MXFP4)",
                   file, t.src_name, type);
      rc = -1;
    }
    if (rc || (rc = check_dims(&t, err, errlen))) break;
    if (t.dtype >= KF_DT_Q8_0 && t.dims[t.n_dims - 1] % 32) {
      kf_model_err(err, errlen, "%s: tensor '%s': %s rows of %lld elements (blocks of 32)", file, t.src_name,
                   kf_dtype_name(t.dtype), (long long)t.dims[t.n_dims - 1]);
      rc = -1;
      break;
    }
    t.bytes = (size_t)dtype_bytes(t.dtype, kf_ckpt_tensor_elems(&t));
    size_t nl = strlen(t.name);
    int is_q = nl >= 23 && !strcmp(t.name + nl - 23, "self_attn.q_proj.weight");
    int is_k = nl >= 23 && !strcmp(t.name + nl - 23, "self_attn.k_proj.weight");
    if (llama && (is_q || is_k)) {
      t.rope_heads = (int64_t)(is_q || !kv_heads ? heads : kv_heads);
      if (!heads || t.n_dims != 2 || t.dims[0] % (2 * t.rope_heads)) {
        kf_model_err(err, errlen,
                     "%s: tensor '%s': %s; cannot undo llama.cpp's per-head row order of Q/K (llama.attention.head_count %llu, "
                     "head_count_kv %llu)",
                     file, t.src_name, heads ? "rows are not a multiple of 2 x heads" : "no llama.attention.head_count",
                     (unsigned long long)heads, (unsigned long long)kv_heads);
        rc = -1;
        break;
      }
    }
    rc = push_tensor(ck, &t, err, errlen);
  }
  uint64_t data_start = (c.at + alignment - 1) / alignment * alignment;
  for (size_t i = first; !rc && i < ck->n_tensors; i++) {
    kf_ckpt_tensor *t = &ck->tensors[i];
    uint64_t off = offsets[i - first];
    if (off % alignment || data_start > len || off > len - data_start || t->bytes > len - data_start - off) {
      kf_model_err(err, errlen, "%s: tensor '%s': data [%llu, +%zu) (offset %llu after the aligned header end %llu) %s",
                   file, t->src_name, (unsigned long long)(data_start + off), t->bytes, (unsigned long long)off,
                   (unsigned long long)data_start,
                   off % alignment ? "is not aligned to general.alignment" : "lies outside the file (truncated?)");
      rc = -1;
    } else t->data = buf + data_start + off;
  }
  free(offsets);
  if (rc) ck->n_tensors = first;
  return rc;
}

/* ---- files ---- */

static int by_name(const void *a, const void *b, void *arg) {
  const kf_ckpt *ck = arg;
  return strcmp(ck->tensors[*(const size_t *)a].name, ck->tensors[*(const size_t *)b].name);
}

/* A name twice (in one file or across shards) is an error: O(n log n), not a search per tensor. */
static int check_unique(const kf_ckpt *ck, char *err, size_t errlen) {
  size_t *idx = malloc((ck->n_tensors ? ck->n_tensors : 1) * sizeof *idx);
  if (!idx) {
    kf_model_err(err, errlen, "out of memory for %zu tensor names", ck->n_tensors);
    return -1;
  }
  for (size_t i = 0; i < ck->n_tensors; i++) idx[i] = i;
  qsort_r(idx, ck->n_tensors, sizeof *idx, by_name, (void *)ck);
  int rc = 0;
  for (size_t i = 1; !rc && i < ck->n_tensors; i++) {
    const kf_ckpt_tensor *a = &ck->tensors[idx[i - 1]], *b = &ck->tensors[idx[i]];
    if (!strcmp(a->name, b->name)) {
      kf_model_err(err, errlen, "%s: tensor '%s' appears twice (also in %s%s%s)", b->file, b->src_name, a->file,
                   strcmp(a->src_name, b->src_name) ? " as " : "", strcmp(a->src_name, b->src_name) ? a->src_name : "");
      rc = -1;
    }
  }
  free(idx);
  return rc;
}

int kf_ckpt_add_mem(kf_ckpt *ck, const void *buf, size_t len, const char *label, int gguf, char *err, size_t errlen) {
  if (ck->n_files == (int)(sizeof ck->files / sizeof ck->files[0])) {
    kf_model_err(err, errlen, "%s: more than %zu checkpoint files", label, sizeof ck->files / sizeof ck->files[0]);
    return -1;
  }
  kf_ckpt_file *f = &ck->files[ck->n_files];
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", label);
  f->map = buf;
  f->size = len;
  size_t first = ck->n_tensors;
  int rc = gguf ? gguf_parse(ck, buf, len, f->path, err, errlen) : st_parse(ck, buf, len, f->path, err, errlen);
  if (!rc) rc = check_unique(ck, err, errlen);
  if (rc) {
    ck->n_tensors = first;
    return -1;
  }
  ck->n_files++;
  return 0;
}

int kf_ckpt_add_file(kf_ckpt *ck, const char *path, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    kf_model_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    close(fd);
    kf_model_err(err, errlen, "%s: not a regular file", path);
    return -1;
  }
  size_t size = (size_t)sb.st_size;
  uint8_t head[4] = {0};
  ssize_t got = pread(fd, head, 4, 0);
  int gguf = got == 4 && !memcmp(head, "GGUF", 4);
  size_t plen = strlen(path);
  if (!gguf && !(plen >= 12 && !strcmp(path + plen - 12, ".safetensors"))) {
    close(fd);
    kf_model_err(err, errlen, "%s: neither GGUF (no GGUF magic) nor safetensors (name must end in .safetensors)", path);
    return -1;
  }
  const uint8_t *map = NULL;
  if (size) {
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      close(fd);
      kf_model_err(err, errlen, "%s: mmap: %s", path, strerror(errno));
      return -1;
    }
    map = m;
  }
  close(fd);
  static const uint8_t empty[1];
  if (kf_ckpt_add_mem(ck, map ? map : empty, size, path, gguf, err, errlen)) {
    if (map) munmap((void *)map, size);
    return -1;
  }
  ck->files[ck->n_files - 1].mapped = map != NULL;
  return 0;
}

void kf_ckpt_free(kf_ckpt *ck) {
  for (int i = 0; i < ck->n_files; i++)
    if (ck->files[i].mapped) munmap((void *)ck->files[i].map, ck->files[i].size);
  free(ck->tensors);
  memset(ck, 0, sizeof *ck);
}

const kf_ckpt_tensor *kf_ckpt_find(const kf_ckpt *ck, const char *name) {
  for (size_t i = 0; i < ck->n_tensors; i++)
    if (!strcmp(ck->tensors[i].name, name)) return &ck->tensors[i];
  return NULL;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int kf_ckpt_tensor_f32(const kf_ckpt_tensor *t, float *out, char *err, size_t errlen) {
  int64_t n = kf_ckpt_tensor_elems(t);
  const uint8_t *p = t->data;
  switch (t->dtype) {
  case KF_DT_F32:
    memcpy(out, p, (size_t)n * 4);
    return 0;
  case KF_DT_F16:
    for (int64_t i = 0; i < n; i++) out[i] = kf_pack_f16_to_f32(rd16(p + 2 * i));
    return 0;
  case KF_DT_BF16:
    for (int64_t i = 0; i < n; i++) out[i] = kf_bf16_to_f32(rd16(p + 2 * i));
    return 0;
  case KF_DT_Q8_0:
    for (int64_t b = 0; b < n / 32; b++) {
      const uint8_t *blk = p + 34 * b;
      double d = kf_pack_f16_to_f32(rd16(blk));
      for (int j = 0; j < 32; j++) out[32 * b + j] = (float)(d * (int8_t)blk[2 + j]);
    }
    return 0;
  case KF_DT_Q4_0:
    for (int64_t b = 0; b < n / 32; b++) {
      const uint8_t *blk = p + 18 * b;
      double d = kf_pack_f16_to_f32(rd16(blk));
      for (int j = 0; j < 16; j++) {
        out[32 * b + j] = (float)(d * ((blk[2 + j] & 15) - 8));
        out[32 * b + j + 16] = (float)(d * ((blk[2 + j] >> 4) - 8));
      }
    }
    return 0;
  case KF_DT_MXFP4:
    for (int64_t b = 0; b < n / 32; b++) {
      const uint8_t *blk = p + 17 * b;
      double s = 0.5 * kf_e8m0_to_f32(blk[0]);
      for (int j = 0; j < 16; j++) {
        out[32 * b + j] = (float)(s * kf_fp4_e2m1_times2(blk[1 + j] & 15));
        out[32 * b + j + 16] = (float)(s * kf_fp4_e2m1_times2(blk[1 + j] >> 4));
      }
    }
    return 0;
  }
  kf_model_err(err, errlen, "%s: tensor '%s': unknown dtype", t->file, t->name);
  return -1;
}

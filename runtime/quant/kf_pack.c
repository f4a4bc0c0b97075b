/* kf_pack.c — the packed weight file (.kfpack): writer, mmap loader and its validation (format in
 * kf_pack.h). A file is either accepted whole, with every offset, size and checksum checked, or
 * rejected with a message that names the file and the tensor; no field is trusted before that. */
#define _GNU_SOURCE
#include "kf_pack.h"
#include "kf_quant_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kf_pack maps little-endian arrays in place: little-endian hosts only"
#endif

/* Largest dimension / element count accepted (far from any overflow of the byte counts). */
#define KF_PACK_MAX_ELEMS ((int64_t)1 << 40)

struct kf_pack {
  const uint8_t *base;
  size_t size;
  int mapped;
  char label[256];
  kf_pack_tensor *t;
  size_t n;
  size_t *by_name; /* indices of t sorted by name */
  const char *meta;
  size_t meta_len;
};

uint32_t kf_pack_crc32(uint32_t crc, const void *data, size_t len) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int b = 0; b < 8; b++) c = c & 1u ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  const uint8_t *p = data;
  crc = ~crc;
  for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v) {
  wr32(p, (uint32_t)v);
  wr32(p + 4, (uint32_t)(v >> 32));
}

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

static int is_weight(kf_pack_format f) {
  return f == KF_PACK_W8 || f == KF_PACK_W4 || f == KF_PACK_MXFP4;
}
static int float_bytes(kf_pack_format f) {
  return f == KF_PACK_F32 ? 4 : (f == KF_PACK_BF16 || f == KF_PACK_F16) ? 2 : 0;
}

/* Fills the derived sizes of t from format/dims/group and checks them; 0 or -1 with a message
 * (without the file prefix). Shared by the writer and the loader, so both mean the same sizes. */
static int tensor_sizes(kf_pack_tensor *t, size_t *data_bytes, size_t *scale_bytes, char *msg, size_t msglen) {
  if (t->n_dims < 1 || t->n_dims > 4) {
    kf_q_set_err_(msg, msglen, "n_dims %d, expected 1..4", t->n_dims);
    return -1;
  }
  int64_t elems = 1;
  for (int i = 0; i < 4; i++) {
    if (i >= t->n_dims) {
      if (t->dims[i] != 0) {
        kf_q_set_err_(msg, msglen, "dims[%d] = %lld beyond n_dims %d (must be 0)", i, (long long)t->dims[i], t->n_dims);
        return -1;
      }
      continue;
    }
    if (t->dims[i] <= 0 || t->dims[i] > KF_PACK_MAX_ELEMS || elems > KF_PACK_MAX_ELEMS / t->dims[i]) {
      kf_q_set_err_(msg, msglen, "dims[%d] = %lld (must be 1..2^40, product <= 2^40)", i, (long long)t->dims[i]);
      return -1;
    }
    elems *= t->dims[i];
  }
  if (float_bytes(t->format)) {
    if (t->layout != KF_PACK_ROWMAJOR || t->group != 0 || t->n_groups != 0) {
      kf_q_set_err_(msg, msglen, "float tensor with layout %u, group %lld, n_groups %lld (want %u, 0, 0)", t->layout,
                    (long long)t->group, (long long)t->n_groups, KF_PACK_ROWMAJOR);
      return -1;
    }
    t->n_pad = t->k_pad = 0;
    *data_bytes = (size_t)elems * (size_t)float_bytes(t->format);
    *scale_bytes = 0;
    return 0;
  }
  if (!is_weight(t->format)) {
    kf_q_set_err_(msg, msglen, "unknown format %u", (unsigned)t->format);
    return -1;
  }
  if (t->n_dims != 2) {
    kf_q_set_err_(msg, msglen, "weight with %d dims (weights are 2-D [n][k])", t->n_dims);
    return -1;
  }
  if (t->layout != KF_WLAYOUT_N16K4 && t->layout != KF_WLAYOUT_N16K1) {
    kf_q_set_err_(msg, msglen, "weight layout %u (want 0 = N16K4 or 1 = N16K1)", t->layout);
    return -1;
  }
  int64_t n = t->dims[0], k = t->dims[1];
  if (t->format == KF_PACK_MXFP4 ? t->group != 32 : (t->group < 8 || t->group % 8 || t->group > KF_PACK_MAX_ELEMS)) {
    kf_q_set_err_(msg, msglen, "group %lld (%s)", (long long)t->group,
                  t->format == KF_PACK_MXFP4 ? "MXFP4 blocks are 32" : "want a multiple of 8, >= 8");
    return -1;
  }
  int64_t n_groups = t->group >= k ? 1 : (k + t->group - 1) / t->group;
  if (t->n_groups != n_groups) {
    kf_q_set_err_(msg, msglen, "n_groups %lld, but k %lld and group %lld give %lld", (long long)t->n_groups,
                  (long long)k, (long long)t->group, (long long)n_groups);
    return -1;
  }
  t->n_pad = round_up(n, 16);
  t->k_pad = round_up(k, 8);
  if (t->n_pad > KF_PACK_MAX_ELEMS / t->k_pad) {
    kf_q_set_err_(msg, msglen, "weight %lld x %lld too large", (long long)n, (long long)k);
    return -1;
  }
  *data_bytes = (size_t)(t->n_pad * t->k_pad) / (t->format == KF_PACK_W8 ? 1u : 2u);
  *scale_bytes = (size_t)(n_groups * t->n_pad) * sizeof(float);
  return 0;
}

/* ---- loader ---- */

static const char *fmt_name(kf_pack_format f) {
  switch (f) {
  case KF_PACK_F32: return "F32";
  case KF_PACK_BF16: return "BF16";
  case KF_PACK_F16: return "F16";
  case KF_PACK_W8: return "W8";
  case KF_PACK_W4: return "W4";
  case KF_PACK_MXFP4: return "MXFP4";
  }
  return "?";
}

static int by_name_cmp(const void *a, const void *b, void *arg) {
  const kf_pack *p = arg;
  return strcmp(p->t[*(const size_t *)a].name, p->t[*(const size_t *)b].name);
}

/* Reads and checks one TOC entry; 0 or -1 with the message. */
static int read_entry(kf_pack *p, size_t i, const uint8_t *e, char *err, size_t errlen) {
  kf_pack_tensor *t = &p->t[i];
  memset(t, 0, sizeof *t);
  if (memchr(e, 0, KF_PACK_NAME_MAX) == NULL || e[0] == 0) {
    kf_q_set_err_(err, errlen, "%s: TOC entry %zu: name empty or not NUL-terminated", p->label, i);
    return -1;
  }
  memcpy(t->name, e, KF_PACK_NAME_MAX);
  for (size_t j = strlen(t->name); j < KF_PACK_NAME_MAX; j++)
    if (e[j]) {
      kf_q_set_err_(err, errlen, "%s: tensor '%s': bytes after the name's NUL are not 0", p->label, t->name);
      return -1;
    }
  for (int j = 224; j < 256; j++)
    if (e[j]) {
      kf_q_set_err_(err, errlen, "%s: tensor '%s': reserved TOC bytes are not 0 (a newer format?)", p->label, t->name);
      return -1;
    }
  t->format = (kf_pack_format)rd32(e + 128);
  t->layout = rd32(e + 132);
  uint32_t nd = rd32(e + 136);
  t->n_dims = nd > 4 ? 5 : (int)nd;
  t->crc = rd32(e + 140);
  for (int d = 0; d < 4; d++) t->dims[d] = (int64_t)rd64(e + 144 + 8 * d);
  t->group = (int64_t)rd64(e + 176);
  t->n_groups = (int64_t)rd64(e + 184);
  uint64_t doff = rd64(e + 192), dlen = rd64(e + 200), soff = rd64(e + 208), slen = rd64(e + 216);
  size_t want_d, want_s;
  char msg[200];
  if (tensor_sizes(t, &want_d, &want_s, msg, sizeof msg)) {
    kf_q_set_err_(err, errlen, "%s: tensor '%s': %s", p->label, t->name, msg);
    return -1;
  }
  if (dlen != want_d || slen != want_s) {
    kf_q_set_err_(err, errlen, "%s: tensor '%s' (%s): %llu data + %llu scale bytes, its dims need %zu + %zu", p->label,
                  t->name, fmt_name(t->format), (unsigned long long)dlen, (unsigned long long)slen, want_d, want_s);
    return -1;
  }
  if (doff % KF_PACK_ALIGN || doff < KF_PACK_HEADER_BYTES || doff > p->size || dlen > p->size - doff ||
      (slen && (soff % KF_PACK_ALIGN || soff < KF_PACK_HEADER_BYTES || soff > p->size || slen > p->size - soff))) {
    kf_q_set_err_(err, errlen,
                  "%s: tensor '%s': data [%llu, +%llu) or scales [%llu, +%llu) outside the file (%zu bytes) or not "
                  "64-byte aligned",
                  p->label, t->name, (unsigned long long)doff, (unsigned long long)dlen, (unsigned long long)soff,
                  (unsigned long long)slen, p->size);
    return -1;
  }
  t->data = p->base + doff;
  t->data_bytes = (size_t)dlen;
  t->scales = slen ? (const float *)(const void *)(p->base + soff) : NULL;
  t->scale_bytes = (size_t)slen;
  uint32_t crc = kf_pack_crc32(0, t->data, t->data_bytes);
  if (t->scales) crc = kf_pack_crc32(crc, t->scales, t->scale_bytes);
  if (crc != t->crc) {
    kf_q_set_err_(err, errlen, "%s: tensor '%s': checksum %08x, the TOC says %08x (corrupt data)", p->label, t->name,
                  crc, t->crc);
    return -1;
  }
  for (size_t j = 0; j < t->scale_bytes / sizeof(float); j++)
    if (!isfinite(t->scales[j]) || t->scales[j] < 0) {
      kf_q_set_err_(err, errlen, "%s: tensor '%s': scale %zu is %g (must be finite, >= 0)", p->label, t->name, j,
                    (double)t->scales[j]);
      return -1;
    }
  return 0;
}

static int pack_parse(kf_pack *p, char *err, size_t errlen) {
  const uint8_t *h = p->base;
  if (p->size < KF_PACK_HEADER_BYTES || memcmp(h, KF_PACK_MAGIC, 8)) {
    kf_q_set_err_(err, errlen, "%s: not a kforge packed file (%s)", p->label,
                  p->size < 8 ? "shorter than its magic" : memcmp(h, KF_PACK_MAGIC, 8) ? "no KFPACK magic"
                                                                              : "truncated header");
    return -1;
  }
  uint32_t version = rd32(h + 8);
  if (version != KF_PACK_VERSION) {
    kf_q_set_err_(err, errlen, "%s: packed format version %u, this kforge reads version %u", p->label, version,
                  KF_PACK_VERSION);
    return -1;
  }
  if (kf_pack_crc32(0, h, 60) != rd32(h + 60) || rd32(h + 56) != 0) {
    kf_q_set_err_(err, errlen, "%s: header checksum mismatch (corrupt header)", p->label);
    return -1;
  }
  uint64_t file_bytes = rd64(h + 16), toc_off = rd64(h + 24), meta_off = rd64(h + 32), meta_len = rd64(h + 40);
  uint32_t n = rd32(h + 12);
  if (file_bytes != p->size) {
    kf_q_set_err_(err, errlen, "%s: the header says %llu bytes, the file has %zu (%s)", p->label,
                  (unsigned long long)file_bytes, p->size, file_bytes > p->size ? "truncated" : "trailing bytes");
    return -1;
  }
  uint64_t toc_len = (uint64_t)n * KF_PACK_TOC_ENTRY_BYTES;
  if (toc_off < KF_PACK_HEADER_BYTES || toc_off > p->size || toc_len > p->size - toc_off || meta_off > p->size ||
      meta_len > p->size - meta_off) {
    kf_q_set_err_(err, errlen, "%s: table of contents (%u entries at %llu) or metadata (%llu bytes at %llu) outside the file",
                  p->label, n, (unsigned long long)toc_off, (unsigned long long)meta_len, (unsigned long long)meta_off);
    return -1;
  }
  const uint8_t *toc = p->base + toc_off;
  if (kf_pack_crc32(0, toc, (size_t)toc_len) != rd32(h + 48)) {
    kf_q_set_err_(err, errlen, "%s: table of contents checksum mismatch", p->label);
    return -1;
  }
  p->meta = (const char *)(p->base + meta_off);
  p->meta_len = (size_t)meta_len;
  if (kf_pack_crc32(0, p->meta, p->meta_len) != rd32(h + 52)) {
    kf_q_set_err_(err, errlen, "%s: metadata checksum mismatch", p->label);
    return -1;
  }
  p->t = calloc(n ? n : 1, sizeof *p->t);
  p->by_name = calloc(n ? n : 1, sizeof *p->by_name);
  if (!p->t || !p->by_name) {
    kf_q_set_err_(err, errlen, "%s: out of memory for %u tensors", p->label, n);
    return -1;
  }
  p->n = n;
  for (size_t i = 0; i < n; i++) {
    if (read_entry(p, i, toc + i * KF_PACK_TOC_ENTRY_BYTES, err, errlen)) return -1;
    p->by_name[i] = i;
  }
  qsort_r(p->by_name, p->n, sizeof *p->by_name, by_name_cmp, p);
  for (size_t i = 1; i < p->n; i++)
    if (!strcmp(p->t[p->by_name[i]].name, p->t[p->by_name[i - 1]].name)) {
      kf_q_set_err_(err, errlen, "%s: tensor '%s' appears twice", p->label, p->t[p->by_name[i]].name);
      return -1;
    }
  return 0;
}

int kf_pack_open_mem(kf_pack **out, const void *buf, size_t len, const char *label, char *err, size_t errlen) {
  *out = NULL;
  kf_pack *p = calloc(1, sizeof *p);
  if (!p) {
    kf_q_set_err_(err, errlen, "%s: out of memory", label);
    return -1;
  }
  p->base = buf;
  p->size = len;
  snprintf(p->label, sizeof p->label, "%s", label ? label : "(memory)");
  if (pack_parse(p, err, errlen)) {
    kf_pack_close(p);
    return -1;
  }
  *out = p;
  return 0;
}

int kf_pack_open(kf_pack **out, const char *path, char *err, size_t errlen) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    kf_q_set_err_(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    kf_q_set_err_(err, errlen, "%s: not a regular file", path);
    close(fd);
    return -1;
  }
  size_t size = (size_t)sb.st_size;
  if (size < KF_PACK_HEADER_BYTES) {
    close(fd);
    kf_q_set_err_(err, errlen, "%s: not a kforge packed file (%zu bytes, shorter than the 64-byte header)", path, size);
    return -1;
  }
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    kf_q_set_err_(err, errlen, "%s: mmap: %s", path, strerror(errno));
    return -1;
  }
  if (kf_pack_open_mem(out, map, size, path, err, errlen)) {
    munmap(map, size);
    return -1;
  }
  (*out)->mapped = 1;
  return 0;
}

void kf_pack_close(kf_pack *p) {
  if (!p) return;
  if (p->mapped) munmap((void *)p->base, p->size);
  free(p->t);
  free(p->by_name);
  free(p);
}

size_t kf_pack_count(const kf_pack *p) { return p->n; }
const kf_pack_tensor *kf_pack_tensor_at(const kf_pack *p, size_t i) { return i < p->n ? &p->t[i] : NULL; }
const char *kf_pack_meta(const kf_pack *p, size_t *len) {
  if (len) *len = p->meta_len;
  return p->meta;
}

const kf_pack_tensor *kf_pack_find(const kf_pack *p, const char *name) {
  size_t lo = 0, hi = p->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(p->t[p->by_name[mid]].name, name);
    if (c == 0) return &p->t[p->by_name[mid]];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

int64_t kf_pack_tensor_elems(const kf_pack_tensor *t) {
  int64_t e = 1;
  for (int i = 0; i < t->n_dims; i++) e *= t->dims[i];
  return e;
}

float kf_pack_f16_to_f32(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
  return (float)((h >> 15) ? -v : v);
}

/* A view of a weight tensor as a kf_qweight (packed codes only: for kf_qweight_packed_code). */
static kf_qweight weight_view(const kf_pack_tensor *t) {
  kf_qweight v;
  memset(&v, 0, sizeof v);
  v.bits = t->format == KF_PACK_W8 ? 8 : 4;
  v.layout = (kf_wlayout)t->layout;
  v.n = t->dims[0];
  v.k = t->dims[1];
  v.group = t->group;
  v.n_groups = t->n_groups;
  v.n_pad = t->n_pad;
  v.k_pad = t->k_pad;
  v.packed = (uint8_t *)(uintptr_t)t->data;
  v.packed_bytes = t->data_bytes;
  return v;
}

int kf_pack_tensor_f32(const kf_pack_tensor *t, float *out, char *err, size_t errlen) {
  int64_t e = kf_pack_tensor_elems(t);
  if (t->format == KF_PACK_F32) {
    memcpy(out, t->data, (size_t)e * 4);
    return 0;
  }
  if (t->format == KF_PACK_BF16 || t->format == KF_PACK_F16) {
    const uint16_t *h = t->data;
    for (int64_t i = 0; i < e; i++) out[i] = t->format == KF_PACK_BF16 ? kf_bf16_to_f32(h[i]) : kf_pack_f16_to_f32(h[i]);
    return 0;
  }
  if (!is_weight(t->format)) {
    kf_q_set_err_(err, errlen, "tensor '%s': unknown format %u", t->name, (unsigned)t->format);
    return -1;
  }
  kf_qweight v = weight_view(t);
  int offset = 1 << (v.bits - 1);
  for (int64_t r = 0; r < v.n; r++)
    for (int64_t c = 0; c < v.k; c++) {
      int u = kf_qweight_packed_code(&v, r, c);
      double s = t->scales[(c / v.group) * v.n_pad + r];
      double q = t->format == KF_PACK_MXFP4 ? kf_fp4_e2m1_times2((uint8_t)u) : u - offset;
      out[r * v.k + c] = (float)(q * s);
    }
  return 0;
}

int kf_pack_tensor_qweight(const kf_pack_tensor *t, kf_wlayout layout, kf_qweight *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!is_weight(t->format)) {
    kf_q_set_err_(err, errlen, "tensor '%s': %s is not a quantized weight", t->name, fmt_name(t->format));
    return -1;
  }
  kf_qweight v = weight_view(t);
  int8_t *codes = malloc((size_t)(v.n * v.k));
  float *sc = malloc((size_t)(v.n * v.n_groups) * sizeof(float));
  if (!codes || !sc) {
    free(codes);
    free(sc);
    kf_q_set_err_(err, errlen, "tensor '%s': out of memory", t->name);
    return -1;
  }
  int offset = 1 << (v.bits - 1);
  for (int64_t r = 0; r < v.n; r++) {
    for (int64_t c = 0; c < v.k; c++) codes[r * v.k + c] = (int8_t)(kf_qweight_packed_code(&v, r, c) - offset);
    for (int64_t g = 0; g < v.n_groups; g++) sc[r * v.n_groups + g] = t->scales[g * v.n_pad + r];
  }
  int rc = kf_qweight_from_codes(out, codes, sc, v.n, v.k, v.bits, v.group, layout, err, errlen);
  free(codes);
  free(sc);
  return rc;
}

/* ---- writer ---- */

struct kf_pack_writer {
  FILE *f;
  char path[512];
  uint64_t off;
  uint8_t *toc;
  size_t n, cap;
};

int kf_pack_writer_open(kf_pack_writer **out, const char *path, char *err, size_t errlen) {
  *out = NULL;
  kf_pack_writer *w = calloc(1, sizeof *w);
  if (!w) {
    kf_q_set_err_(err, errlen, "%s: out of memory", path);
    return -1;
  }
  snprintf(w->path, sizeof w->path, "%s", path);
  w->f = fopen(path, "wb");
  if (!w->f) {
    kf_q_set_err_(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    free(w);
    return -1;
  }
  static const uint8_t zero[KF_PACK_HEADER_BYTES];
  if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
    kf_q_set_err_(err, errlen, "%s: write error: %s", path, strerror(errno));
    kf_pack_writer_abort(w);
    return -1;
  }
  w->off = KF_PACK_HEADER_BYTES;
  *out = w;
  return 0;
}

/* Appends bytes at the next 64-byte boundary; *at gets their offset. */
static int put_aligned(kf_pack_writer *w, const void *data, size_t len, uint64_t *at, char *err, size_t errlen) {
  static const uint8_t zero[KF_PACK_ALIGN];
  size_t pad = (size_t)(round_up((int64_t)w->off, KF_PACK_ALIGN) - (int64_t)w->off);
  if (fwrite(zero, 1, pad, w->f) != pad || (len && fwrite(data, 1, len, w->f) != len)) {
    kf_q_set_err_(err, errlen, "%s: write error: %s", w->path, strerror(errno));
    return -1;
  }
  *at = w->off + pad;
  w->off += pad + len;
  return 0;
}

static int add_entry(kf_pack_writer *w, kf_pack_tensor *t, const void *data, const void *scales, char *err,
                     size_t errlen) {
  size_t nlen = strlen(t->name);
  size_t dlen, slen;
  char msg[200];
  if (nlen == 0 || nlen >= KF_PACK_NAME_MAX) {
    kf_q_set_err_(err, errlen, "%s: tensor name '%.60s...' empty or longer than %u bytes", w->path, t->name,
                  KF_PACK_NAME_MAX - 1);
    return -1;
  }
  if (tensor_sizes(t, &dlen, &slen, msg, sizeof msg)) {
    kf_q_set_err_(err, errlen, "%s: tensor '%s': %s", w->path, t->name, msg);
    return -1;
  }
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 64;
    uint8_t *toc = realloc(w->toc, cap * KF_PACK_TOC_ENTRY_BYTES);
    if (!toc) {
      kf_q_set_err_(err, errlen, "%s: out of memory", w->path);
      return -1;
    }
    w->toc = toc;
    w->cap = cap;
  }
  uint64_t doff, soff = 0;
  if (put_aligned(w, data, dlen, &doff, err, errlen) || (slen && put_aligned(w, scales, slen, &soff, err, errlen)))
    return -1;
  uint32_t crc = kf_pack_crc32(0, data, dlen);
  if (slen) crc = kf_pack_crc32(crc, scales, slen);
  uint8_t *e = w->toc + w->n * KF_PACK_TOC_ENTRY_BYTES;
  memset(e, 0, KF_PACK_TOC_ENTRY_BYTES);
  memcpy(e, t->name, nlen);
  wr32(e + 128, (uint32_t)t->format);
  wr32(e + 132, t->layout);
  wr32(e + 136, (uint32_t)t->n_dims);
  wr32(e + 140, crc);
  for (int d = 0; d < 4; d++) wr64(e + 144 + 8 * d, (uint64_t)t->dims[d]);
  wr64(e + 176, (uint64_t)t->group);
  wr64(e + 184, (uint64_t)t->n_groups);
  wr64(e + 192, doff);
  wr64(e + 200, dlen);
  wr64(e + 208, soff);
  wr64(e + 216, slen);
  w->n++;
  return 0;
}

int kf_pack_writer_add_float(kf_pack_writer *w, const char *name, kf_pack_format format, int n_dims,
                             const int64_t *dims, const void *data, char *err, size_t errlen) {
  kf_pack_tensor t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  if (strlen(name) >= sizeof t.name) t.name[0] = 0; /* rejected by add_entry */
  if (!float_bytes(format)) {
    kf_q_set_err_(err, errlen, "%s: tensor '%s': format %s is not a float format", w->path, name, fmt_name(format));
    return -1;
  }
  t.format = format;
  t.layout = KF_PACK_ROWMAJOR;
  t.n_dims = n_dims;
  for (int i = 0; i < n_dims && i < 4; i++) t.dims[i] = dims[i];
  return add_entry(w, &t, data, NULL, err, errlen);
}

int kf_pack_writer_add_qweight(kf_pack_writer *w, const char *name, kf_pack_format format, const kf_qweight *q,
                               char *err, size_t errlen) {
  kf_pack_tensor t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  if (strlen(name) >= sizeof t.name) t.name[0] = 0;
  int want_bits = format == KF_PACK_W8 ? 8 : 4;
  if (!is_weight(format) || q->bits != want_bits) {
    kf_q_set_err_(err, errlen, "%s: tensor '%s': format %s with %d-bit codes", w->path, name, fmt_name(format), q->bits);
    return -1;
  }
  t.format = format;
  t.layout = (unsigned)q->layout;
  t.n_dims = 2;
  t.dims[0] = q->n;
  t.dims[1] = q->k;
  t.group = q->group;
  t.n_groups = q->n_groups;
  return add_entry(w, &t, q->packed, q->scales, err, errlen);
}

int kf_pack_writer_finish(kf_pack_writer *w, const char *meta, size_t meta_len, char *err, size_t errlen) {
  uint64_t meta_off, toc_off;
  size_t toc_len = w->n * KF_PACK_TOC_ENTRY_BYTES;
  if (w->n > UINT32_MAX) {
    kf_q_set_err_(err, errlen, "%s: too many tensors", w->path);
    kf_pack_writer_abort(w);
    return -1;
  }
  if (put_aligned(w, meta, meta_len, &meta_off, err, errlen) || put_aligned(w, w->toc, toc_len, &toc_off, err, errlen)) {
    kf_pack_writer_abort(w);
    return -1;
  }
  uint8_t h[KF_PACK_HEADER_BYTES];
  memset(h, 0, sizeof h);
  memcpy(h, KF_PACK_MAGIC, 8);
  wr32(h + 8, KF_PACK_VERSION);
  wr32(h + 12, (uint32_t)w->n);
  wr64(h + 16, w->off);
  wr64(h + 24, toc_off);
  wr64(h + 32, meta_off);
  wr64(h + 40, meta_len);
  wr32(h + 48, kf_pack_crc32(0, w->toc, toc_len));
  wr32(h + 52, kf_pack_crc32(0, meta, meta_len));
  wr32(h + 60, kf_pack_crc32(0, h, 60));
  if (fseek(w->f, 0, SEEK_SET) || fwrite(h, 1, sizeof h, w->f) != sizeof h || fflush(w->f)) {
    kf_q_set_err_(err, errlen, "%s: write error: %s", w->path, strerror(errno));
    kf_pack_writer_abort(w);
    return -1;
  }
  int rc = fclose(w->f);
  w->f = NULL;
  if (rc) {
    kf_q_set_err_(err, errlen, "%s: write error: %s", w->path, strerror(errno));
    kf_pack_writer_abort(w);
    return -1;
  }
  free(w->toc);
  free(w);
  return 0;
}

void kf_pack_writer_abort(kf_pack_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  unlink(w->path);
  free(w->toc);
  free(w);
}

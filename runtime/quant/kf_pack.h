/* kf_pack.h — kforge packed weight files (.kfpack): one file per model, written by `kforge pack`,
 * read by programs that link a `kforge lib` library (runtime/quant, library kf_quant; libc only).
 *
 * Format version 1 (all integers little-endian; docs/model-workflow.md has the same table):
 *
 *   header, 64 bytes at offset 0
 *     0  char[8] magic "KFPACK\r\n"
 *     8  u32 version (1)              12 u32 n_tensors
 *    16  u64 file_bytes (the whole file; a truncated file fails here)
 *    24  u64 toc_offset               32 u64 meta_offset   40 u64 meta_bytes
 *    48  u32 toc_crc (CRC-32 of the n_tensors * 256 TOC bytes)
 *    52  u32 meta_crc                 56 u32 reserved (0)  60 u32 header_crc (bytes 0..59)
 *   tensor data, each array at a 64-byte aligned offset
 *   metadata: the model's config.json text (UTF-8, meta_bytes long, may be 0)
 *   table of contents: n_tensors entries of 256 bytes, sorted by nothing (names are unique)
 *     0  char[128] name, NUL-terminated and NUL-padded
 *   128  u32 format (kf_pack_format)  132 u32 layout (kf_wlayout; KF_PACK_ROWMAJOR for floats)
 *   136  u32 n_dims (1..4)            140 u32 crc (CRC-32 of the data bytes then the scale bytes)
 *   144  i64 dims[4] (PyTorch order [out][in]; unused 0)
 *   176  i64 group (K-group of the scales; 0 for floats)   184 i64 n_groups
 *   192  u64 data_offset  200 u64 data_bytes  208 u64 scale_offset  216 u64 scale_bytes
 *   224  32 reserved bytes (0)
 *
 * Weights (W8, W4, MXFP4) are 2-D [n][k] and stored as the kernels read them: the packed
 * offset-binary codes of kf_qweight (kf_quant.h: layout N16K4 for the MSD GEMM kernels,
 * N16K1 for the dequantizing ones; n_pad = n rounded up to 16, k_pad = k rounded up to 8) and the f32
 * scales [n_groups][n_pad]. W8/W4: symmetric codes q, weight = q * scale (group >= k: per channel).
 * MXFP4: bits 4, group 32, the nibble is the OCP E2M1 code, scale = 2^(e-127) / 2 (E8M0 e), so
 * weight = kf_fp4_e2m1_times2(nibble) * scale — MXFP4 weights as the GEMM kernels read them
 * (4-bit nibble codes with these scales). Floats (F32, BF16, F16) are row-major.
 */
#ifndef KF_PACK_H
#define KF_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "kf_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KF_PACK_MAGIC "KFPACK\r\n"
#define KF_PACK_VERSION 1u
#define KF_PACK_HEADER_BYTES 64u
#define KF_PACK_TOC_ENTRY_BYTES 256u
#define KF_PACK_NAME_MAX 128u
#define KF_PACK_ALIGN 64u
#define KF_PACK_ROWMAJOR 255u /* layout of float tensors */

typedef enum {
  KF_PACK_F32 = 1, KF_PACK_BF16 = 2, KF_PACK_F16 = 3,
  KF_PACK_W8 = 4, KF_PACK_W4 = 5, KF_PACK_MXFP4 = 6,
} kf_pack_format;

typedef struct kf_pack_tensor {
  char name[KF_PACK_NAME_MAX];
  kf_pack_format format;
  unsigned layout; /* kf_wlayout for weights, KF_PACK_ROWMAJOR for floats */
  int n_dims;
  int64_t dims[4];
  int64_t group, n_groups, n_pad, k_pad; /* weights only (n_pad, k_pad: padded sizes) */
  const void *data;    /* into the mapping: packed codes or row-major floats, 64-byte aligned */
  size_t data_bytes;
  const float *scales; /* [n_groups][n_pad] (weights), NULL for floats */
  size_t scale_bytes;
  uint32_t crc;
} kf_pack_tensor;

typedef struct kf_pack kf_pack;

/* Maps and validates a packed file: magic, version, every size and offset against the file,
 * the header, TOC and metadata checksums, each entry (known format and layout, sizes consistent
 * with dims / group / layout, unique NUL-terminated names, reserved bytes 0), each tensor's
 * checksum and, for weights, finite non-negative scales. Returns 0, or -1 and a message naming
 * the file (and the tensor) in err. */
int kf_pack_open(kf_pack **out, const char *path, char *err, size_t errlen);
/* The same over bytes in memory (not copied; buf must outlive the handle). */
int kf_pack_open_mem(kf_pack **out, const void *buf, size_t len, const char *label, char *err,
                     size_t errlen);
void kf_pack_close(kf_pack *p);

size_t kf_pack_count(const kf_pack *p);
const kf_pack_tensor *kf_pack_tensor_at(const kf_pack *p, size_t i);
const kf_pack_tensor *kf_pack_find(const kf_pack *p, const char *name); /* NULL if absent */
const char *kf_pack_meta(const kf_pack *p, size_t *len); /* config.json text, not NUL-terminated */

/* Elements of a tensor (product of dims). */
int64_t kf_pack_tensor_elems(const kf_pack_tensor *t);
/* The values a tensor stands for, row-major f32 (weights: q * scale exactly rounded to f32,
 * which is exact for W8/W4/MXFP4 scales). Returns 0 or -1 (message in err). */
int kf_pack_tensor_f32(const kf_pack_tensor *t, float *out, char *err, size_t errlen);
/* A weight tensor as a kf_qweight in any layout (copies; free with kf_qweight_free). For
 * MXFP4 the codes are the E2M1 nibbles less 8 (as the MXFP4 GEMM kernels store them). */
int kf_pack_tensor_qweight(const kf_pack_tensor *t, kf_wlayout layout, kf_qweight *out, char *err,
                           size_t errlen);

/* IEEE binary16 bits -> float, exact (F16 tensors; GGUF block scales). */
float kf_pack_f16_to_f32(uint16_t h);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32) of len bytes, continuing from crc (0 to start). */
uint32_t kf_pack_crc32(uint32_t crc, const void *data, size_t len);

/* ---- writer (streams tensors into the file, the TOC last) ---- */

typedef struct kf_pack_writer kf_pack_writer;

int kf_pack_writer_open(kf_pack_writer **out, const char *path, char *err, size_t errlen);
/* A row-major float tensor (F32, BF16 or F16 bits); dims PyTorch order. */
int kf_pack_writer_add_float(kf_pack_writer *w, const char *name, kf_pack_format format, int n_dims,
                             const int64_t *dims, const void *data, char *err, size_t errlen);
/* A weight: format KF_PACK_W8 / KF_PACK_W4 (bits must match) or KF_PACK_MXFP4 (bits 4, group 32). */
int kf_pack_writer_add_qweight(kf_pack_writer *w, const char *name, kf_pack_format format,
                               const kf_qweight *q, char *err, size_t errlen);
/* Writes metadata, TOC and header and closes the file (also on error, then removes it). */
int kf_pack_writer_finish(kf_pack_writer *w, const char *meta, size_t meta_len, char *err,
                          size_t errlen);
/* Abandons the file (removes it). */
void kf_pack_writer_abort(kf_pack_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* KF_PACK_H */

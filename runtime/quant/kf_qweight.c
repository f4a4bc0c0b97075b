/* kf_qweight.c — symmetric INT8/INT4 weight quantization and the packed layouts of the CPU GEMM
 * microkernels (see kf_quant.h for the exact layouts). Packing happens once, at weight load;
 * nothing here is on a per-call path. */
#include "kf_quant.h"
#include "kf_quant_int.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Largest n_pad * k_pad accepted: 2^40 elements (keeps every byte count far from overflow). */
#define KF_QW_MAX_ELEMS ((int64_t)1 << 40)

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* Checks the shape arguments and fills the size fields of *w. Returns 0 or -1 with a message. */
static int qw_check_shape(kf_qweight *w, int64_t n, int64_t k, int bits, int64_t group,
                          kf_wlayout layout, const char *fn, char *err, size_t errlen) {
  if (bits != 4 && bits != 8) {
    kf_q_set_err_(err, errlen, "%s: bits=%d, expected 4 or 8", fn, bits);
    return -1;
  }
  if (n <= 0 || k <= 0) {
    kf_q_set_err_(err, errlen, "%s: shape n=%lld k=%lld, both must be > 0", fn, (long long)n,
                  (long long)k);
    return -1;
  }
  if (group < 8 || group % 8 != 0) {
    kf_q_set_err_(err, errlen, "%s: group=%lld, expected a multiple of 8 that is >= 8", fn,
                  (long long)group);
    return -1;
  }
  if (layout != KF_WLAYOUT_N16K4 && layout != KF_WLAYOUT_N16K1) {
    kf_q_set_err_(err, errlen, "%s: layout=%d, expected KF_WLAYOUT_N16K4 (0) or N16K1 (1)", fn,
                  (int)layout);
    return -1;
  }
  if (n > KF_QW_MAX_ELEMS || k > KF_QW_MAX_ELEMS ||
      round_up(n, 16) > KF_QW_MAX_ELEMS / round_up(k, 8)) {
    kf_q_set_err_(err, errlen, "%s: shape n=%lld k=%lld too large (limit 2^40 elements)", fn,
                  (long long)n, (long long)k);
    return -1;
  }
  w->bits = bits;
  w->layout = layout;
  w->n = n;
  w->k = k;
  w->group = group;
  w->n_groups = group >= k ? 1 : (k + group - 1) / group;
  w->n_pad = round_up(n, 16);
  w->k_pad = round_up(k, 8);
  w->packed_bytes = (size_t)(w->n_pad * w->k_pad) / (bits == 4 ? 2u : 1u); /* multiple of 64 */
  return 0;
}

/* Allocates the arrays of *w (sizes already set). Scales and sums start at 0. */
static int qw_alloc(kf_qweight *w, const char *fn, char *err, size_t errlen) {
  size_t n_sc = (size_t)(w->n_groups * w->n_pad);
  w->q = malloc((size_t)(w->n * w->k));
  w->scales = calloc(n_sc, sizeof(float));
  w->qsums = calloc(n_sc, sizeof(int32_t));
  w->packed = aligned_alloc(64, w->packed_bytes);
  if (w->q == NULL || w->scales == NULL || w->qsums == NULL || w->packed == NULL) {
    kf_q_set_err_(err, errlen, "%s: out of memory for n=%lld k=%lld", fn, (long long)w->n,
                  (long long)w->k);
    kf_qweight_free(w);
    return -1;
  }
  return 0;
}

int64_t kf_qweight_packed_index(const kf_qweight *w, int64_t n, int64_t k, int *nibble_shift) {
  if (nibble_shift) *nibble_shift = 0;
  if (w == NULL || n < 0 || k < 0 || n >= w->n_pad || k >= w->k_pad) return -1;
  int64_t nb = n / 16, nn = n % 16;
  if (w->layout == KF_WLAYOUT_N16K4) {
    int64_t kb = k / 4, kk = k % 4;
    if (w->bits == 8) return ((nb * (w->k_pad / 4) + kb) * 16 + nn) * 4 + kk;
    if (nibble_shift) *nibble_shift = (int)(kb & 1) * 4;
    return ((nb * (w->k_pad / 8) + kb / 2) * 16 + nn) * 4 + kk;
  }
  if (w->bits == 8) return (nb * w->k_pad + k) * 16 + nn;
  if (nibble_shift) *nibble_shift = (int)(k & 1) * 4;
  return (nb * (w->k_pad / 2) + k / 2) * 16 + nn;
}

int kf_qweight_packed_code(const kf_qweight *w, int64_t n, int64_t k) {
  int shift;
  int64_t idx = kf_qweight_packed_index(w, n, k, &shift);
  if (idx < 0) return -1;
  unsigned byte = w->packed[idx];
  return w->bits == 8 ? (int)byte : (int)((byte >> shift) & 0xFu);
}

/* Fills packed codes and per-group code sums from w->q (scales already set). */
static void qw_pack(kf_qweight *w) {
  int offset = 1 << (w->bits - 1);
  memset(w->packed, w->bits == 8 ? 0x80 : 0x88, w->packed_bytes); /* padding: q = 0 */
  for (int64_t r = 0; r < w->n; r++) {
    for (int64_t c = 0; c < w->k; c++) {
      int q = w->q[r * w->k + c];
      int shift;
      int64_t idx = kf_qweight_packed_index(w, r, c, &shift);
      unsigned u = (unsigned)(q + offset);
      if (w->bits == 8)
        w->packed[idx] = (uint8_t)u;
      else
        w->packed[idx] = (uint8_t)((w->packed[idx] & ~(0xFu << shift)) | (u << shift));
      w->qsums[(c / w->group) * w->n_pad + r] += q;
    }
  }
}

int kf_qweight_quantize(kf_qweight *out, const float *w, int64_t n, int64_t k, int bits,
                        int64_t group, kf_wlayout layout, char *err, size_t errlen) {
  static const char fn[] = "kf_qweight_quantize";
  if (out != NULL) memset(out, 0, sizeof *out);
  if (out == NULL || w == NULL) {
    kf_q_set_err_(err, errlen, "%s: %s is NULL", fn, out == NULL ? "out" : "w");
    return -1;
  }
  kf_qweight t;
  memset(&t, 0, sizeof t);
  if (qw_check_shape(&t, n, k, bits, group, layout, fn, err, errlen)) return -1;
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < k; c++)
      if (!isfinite(w[r * k + c])) {
        kf_q_set_err_(err, errlen, "%s: w[%lld][%lld] = %s (weights must be finite)", fn,
                      (long long)r, (long long)c, isnan(w[r * k + c]) ? "NaN" : "Inf");
        return -1;
      }
  if (qw_alloc(&t, fn, err, errlen)) return -1;
  const int qmax = bits == 8 ? 127 : 7;
  for (int64_t r = 0; r < n; r++) {
    for (int64_t g = 0; g < t.n_groups; g++) {
      int64_t c0 = g * group, c1 = c0 + group < k ? c0 + group : k;
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; c++) amax = fmaxf(amax, fabsf(w[r * k + c]));
      /* s = amax/qmax, never below the exact quotient, so that |w/s| <= qmax (no clipping). */
      float s = amax / (float)qmax;
      if ((double)s * qmax < (double)amax) s = nextafterf(s, INFINITY);
      t.scales[g * t.n_pad + r] = s;
      for (int64_t c = c0; c < c1; c++) {
        double q = s > 0.0f ? kf_q_rne_((double)w[r * k + c] / (double)s) : 0.0;
        if (q > qmax) q = qmax;
        if (q < -qmax) q = -qmax;
        t.q[r * k + c] = (int8_t)q;
      }
    }
  }
  qw_pack(&t);
  *out = t;
  return 0;
}

int kf_qweight_from_codes(kf_qweight *out, const int8_t *q, const float *scales, int64_t n,
                          int64_t k, int bits, int64_t group, kf_wlayout layout, char *err,
                          size_t errlen) {
  static const char fn[] = "kf_qweight_from_codes";
  if (out != NULL) memset(out, 0, sizeof *out);
  if (out == NULL || q == NULL || scales == NULL) {
    kf_q_set_err_(err, errlen, "%s: %s is NULL", fn,
                  out == NULL ? "out" : q == NULL ? "q" : "scales");
    return -1;
  }
  kf_qweight t;
  memset(&t, 0, sizeof t);
  if (qw_check_shape(&t, n, k, bits, group, layout, fn, err, errlen)) return -1;
  const int qlo = -(1 << (bits - 1)), qhi = (1 << (bits - 1)) - 1;
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < k; c++)
      if (q[r * k + c] < qlo || q[r * k + c] > qhi) {
        kf_q_set_err_(err, errlen, "%s: q[%lld][%lld] = %d outside [%d, %d] for %d-bit codes", fn,
                      (long long)r, (long long)c, q[r * k + c], qlo, qhi, bits);
        return -1;
      }
  for (int64_t r = 0; r < n; r++)
    for (int64_t g = 0; g < t.n_groups; g++) {
      float s = scales[r * t.n_groups + g];
      if (!isfinite(s) || s < 0.0f) {
        kf_q_set_err_(err, errlen, "%s: scales[%lld][%lld] = %g (must be finite and >= 0)", fn,
                      (long long)r, (long long)g, (double)s);
        return -1;
      }
    }
  if (qw_alloc(&t, fn, err, errlen)) return -1;
  memcpy(t.q, q, (size_t)(n * k));
  for (int64_t r = 0; r < n; r++)
    for (int64_t g = 0; g < t.n_groups; g++) t.scales[g * t.n_pad + r] = scales[r * t.n_groups + g];
  qw_pack(&t);
  *out = t;
  return 0;
}

void kf_qweight_free(kf_qweight *w) {
  if (w == NULL) return;
  free(w->q);
  free(w->scales);
  free(w->qsums);
  free(w->packed);
  memset(w, 0, sizeof *w);
}

double kf_qweight_value(const kf_qweight *w, int64_t n, int64_t k) {
  if (w == NULL || w->q == NULL || n < 0 || k < 0 || n >= w->n || k >= w->k) return 0.0;
  return (double)w->q[n * w->k + k] * (double)w->scales[(k / w->group) * w->n_pad + n];
}

int kf_qweight_unpack(const kf_qweight *w, int8_t *codes) {
  int offset = 1 << (w->bits - 1);
  for (int64_t r = 0; r < w->n_pad; r++)
    for (int64_t c = 0; c < w->k_pad; c++)
      codes[r * w->k_pad + c] = (int8_t)(kf_qweight_packed_code(w, r, c) - offset);
  return 0;
}

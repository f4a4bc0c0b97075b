/* kf_bf16.c — BF16 <-> FP32 conversion (round to nearest even). */
#include "kf_quant.h"

#include <string.h>

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

/* BF16 is the top half of an FP32. Rounding to nearest even on the dropped 16 bits is
 * u + 0x7FFF + (bit 16 of u), then truncation: a tie (dropped bits = 0x8000) rounds up only when
 * the kept part is odd. The carry may ripple into the exponent, which is what RNE asks for
 * (subnormal -> normal, max finite -> Inf). NaN must not go through the add (a payload in the
 * low half only would become Inf), so it keeps sign and top payload with the quiet bit set. */
uint16_t kf_bf16_from_f32(float x) {
  uint32_t u = f32_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float kf_bf16_to_f32(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

void kf_bf16_from_f32_n(uint16_t *dst, const float *src, size_t count) {
  for (size_t i = 0; i < count; i++) dst[i] = kf_bf16_from_f32(src[i]);
}

void kf_bf16_to_f32_n(float *dst, const uint16_t *src, size_t count) {
  for (size_t i = 0; i < count; i++) dst[i] = kf_bf16_to_f32(src[i]);
}

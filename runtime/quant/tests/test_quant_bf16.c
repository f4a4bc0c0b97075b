/* test_quant_bf16 — BF16 conversion: exact cases (ties, NaN, Inf, subnormals, overflow), an
 * independent fp64 round-to-nearest-even reference over random and edge bit patterns, and the
 * exhaustive BF16 -> FP32 -> BF16 round trip. */
#include "kf_quant.h"
#include "quant_test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* Reference: the two BF16 neighbours of x (truncation lo, and lo + 1 ulp away from zero, with
 * the value past the largest finite taken as 2^128 so that overflow is decided like RNE on an
 * unbounded exponent), pick the nearer in fp64, ties to the even code. */
static uint16_t ref_bf16(float x) {
  uint32_t u = bits_of(x);
  uint16_t lo = (uint16_t)(u >> 16);
  if ((u & 0xFFFFu) == 0) return lo;
  uint16_t hi = (uint16_t)(lo + 1);
  double vx = fabs((double)x);
  double vlo = fabs((double)from_bits((uint32_t)lo << 16));
  double vhi = (hi & 0x7FFF) == 0x7F80 ? ldexp(1.0, 128) : fabs((double)from_bits((uint32_t)hi << 16));
  double dlo = vx - vlo, dhi = vhi - vx;
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) ? hi : lo;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rng32(void) { return (uint32_t)(rng_next(&rng) >> 16); }

static void case_exact(const char *name, uint32_t in, uint16_t want) {
  uint16_t got = kf_bf16_from_f32(from_bits(in));
  char d[128];
  snprintf(d, sizeof d, "f32 0x%08X -> 0x%04X (want 0x%04X)", in, got, want);
  check(got == want, name, d);
}

int main(void) {
  case_exact("one", 0x3F800000u, 0x3F80);
  case_exact("minus_two", 0xC0000000u, 0xC000);
  case_exact("tie_to_even_down", 0x3F808000u, 0x3F80);
  case_exact("tie_to_even_up", 0x3F818000u, 0x3F82);
  case_exact("above_tie", 0x3F808001u, 0x3F81);
  case_exact("below_tie", 0x3F807FFFu, 0x3F80);
  case_exact("neg_tie_to_even", 0xBF818000u, 0xBF82);
  case_exact("carry_into_exponent", 0x3FFFC000u, 0x4000);
  case_exact("inf", 0x7F800000u, 0x7F80);
  case_exact("neg_inf", 0xFF800000u, 0xFF80);
  case_exact("flt_max_overflows_to_inf", 0x7F7FFFFFu, 0x7F80);
  case_exact("max_bf16_stays", 0x7F7F0000u, 0x7F7F);
  case_exact("below_overflow_tie", 0x7F7F7FFFu, 0x7F7F);
  case_exact("overflow_tie_odd_goes_inf", 0x7F7F8000u, 0x7F80);
  case_exact("neg_zero", 0x80000000u, 0x8000);
  case_exact("subnormal_smallest_to_zero", 0x00000001u, 0x0000);
  case_exact("subnormal_tie_even_zero", 0x00008000u, 0x0000);
  case_exact("subnormal_tie_odd_up", 0x00018000u, 0x0002);
  case_exact("subnormal_rounds_to_min_normal", 0x007FFFFFu, 0x0080);
  case_exact("neg_subnormal", 0x80012345u, 0x8001);
  case_exact("quiet_nan", 0x7FC00000u, 0x7FC0);
  case_exact("signaling_nan_low_payload_stays_nan", 0x7F800001u, 0x7FC0);
  case_exact("neg_nan_payload", 0xFFA12345u, 0xFFE1);

  /* NaN stays NaN through both directions, sign kept. */
  {
    float back = kf_bf16_to_f32(kf_bf16_from_f32(from_bits(0xFF800001u)));
    check(isnan(back) && signbit(back), "nan_roundtrip_negative", "");
  }

  /* Random bit patterns (every class, including NaN) and dense patterns near ties. */
  {
    long n_bad = 0, n_cases = 0;
    uint32_t first_bad = 0;
    for (int i = 0; i < 1000000; i++) {
      uint32_t u = rng32();
      if (i % 4 == 1) u = (u & 0xFFFF0000u) | 0x8000u;           /* exact tie */
      if (i % 4 == 2) u = (u & 0xFFFF0000u) | 0x7FFFu | (u & 1u); /* near tie */
      if (i % 8 == 3) u &= 0x807FFFFFu;                            /* subnormal */
      float x = from_bits(u);
      uint16_t got = kf_bf16_from_f32(x);
      int ok;
      if (isnan(x))
        ok = isnan(kf_bf16_to_f32(got)) && ((got >> 15) == (u >> 31));
      else
        ok = got == ref_bf16(x);
      n_cases++;
      if (!ok && n_bad++ == 0) first_bad = u;
    }
    char d[128];
    snprintf(d, sizeof d, "%ld patterns vs fp64 RNE reference, %ld wrong (first 0x%08X)",
             n_cases, n_bad, first_bad);
    check(n_bad == 0, "random_vs_reference", d);
  }

  /* Every BF16 code: to_f32 is exact and from_f32 gives the same code back (NaN stays NaN). */
  {
    long n_bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
      float x = kf_bf16_to_f32((uint16_t)b);
      if (bits_of(x) != (b << 16)) n_bad++;
      uint16_t back = kf_bf16_from_f32(x);
      if (isnan(x) ? !isnan(kf_bf16_to_f32(back)) : back != b) n_bad++;
    }
    char d[64];
    snprintf(d, sizeof d, "65536 codes, %ld wrong", n_bad);
    check(n_bad == 0, "all_codes_roundtrip", d);
  }

  /* Array versions agree with the scalar ones. */
  {
    float src[257], back[257];
    uint16_t dst[257];
    for (int i = 0; i < 257; i++) src[i] = from_bits(rng32());
    kf_bf16_from_f32_n(dst, src, 257);
    kf_bf16_to_f32_n(back, dst, 257);
    int ok = 1;
    for (int i = 0; i < 257; i++) {
      if (dst[i] != kf_bf16_from_f32(src[i])) ok = 0;
      if (bits_of(back[i]) != ((uint32_t)dst[i] << 16)) ok = 0;
    }
    check(ok, "array_versions", "257 elements");
  }

  printf("%s: %d failure(s)\n", n_fail ? "FAIL" : "PASS", n_fail);
  return n_fail != 0;
}

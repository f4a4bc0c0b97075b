/* test_quant_mx — OCP MX formats: element tables (all 16 E2M1, all 256 E4M3 and E5M2 codes
 * against values written from the spec's field definitions and spot values), encoding against a
 * brute-force nearest-value search (RNE ties to the even code), every midpoint tie, saturation
 * and overflow modes, E8M0 scales under both rules, the defined results for zero / NaN / Inf
 * blocks, rows with short last blocks, FP4 packing, the MSD 2-pass MXFP4 bound |e| <= α/64 per
 * block with the non-clipping rule (and a block where the OCP rule breaks it), and the effective
 * bits of refs/msd.md §4 (2-pass MXFP4 uniform 6.57, MXFP8 E4M3 Gaussian 5.23). */
#include "kf_quant.h"
#include "quant_test.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x13198A2E03707344ull;

/* Spec values, from the field definitions (OCP MX v1.0 §5.3.3, OFP8 §2). */
static double spec_e2m1(int c) {
  static const double mag[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};
  return (c & 8 ? -1.0 : 1.0) * mag[c & 7];
}
static double spec_fp8(int c, int ebits, int mbits, int fn) {
  int s = c >> 7, e = (c >> mbits) & ((1 << ebits) - 1), m = c & ((1 << mbits) - 1);
  int bias = (1 << (ebits - 1)) - 1, all_ones = (1 << ebits) - 1;
  double sign = s ? -1.0 : 1.0;
  if (fn && e == all_ones && m == (1 << mbits) - 1) return NAN;  /* E4M3: S.1111.111 only */
  if (!fn && e == all_ones) return m == 0 ? sign * INFINITY : NAN; /* E5M2: IEEE */
  if (e == 0) return sign * pow(2.0, 1 - bias) * (m / (double)(1 << mbits));
  return sign * pow(2.0, e - bias) * (1.0 + m / (double)(1 << mbits));
}
static double spec_value(kf_mxfmt fmt, int c) {
  return fmt == KF_MX_E2M1 ? spec_e2m1(c) : fmt == KF_MX_E4M3 ? spec_fp8(c, 4, 3, 1)
                                                              : spec_fp8(c, 5, 2, 0);
}
static int n_codes(kf_mxfmt fmt) { return fmt == KF_MX_E2M1 ? 16 : 256; }
static const char *fmt_name(kf_mxfmt fmt) {
  return fmt == KF_MX_E2M1 ? "e2m1" : fmt == KF_MX_E4M3 ? "e4m3" : "e5m2";
}

/* Brute force: the finite code nearest to v with v's sign, ties to the even code; saturating. */
static int nearest_code(kf_mxfmt fmt, double v) {
  int sign_bit = fmt == KF_MX_E2M1 ? 8 : 128;
  int best = -1;
  double best_d = INFINITY;
  for (int c = 0; c < sign_bit; c++) {
    double val = spec_value(fmt, c);
    if (!isfinite(val)) continue;
    double d = fabs(fabs(v) - val);
    if (d < best_d || (d == best_d && (c & 1) == 0)) {
      best_d = d;
      best = c;
    }
  }
  return best | (signbit(v) ? sign_bit : 0);
}

static void test_tables(void) {
  for (int f = 0; f < 3; f++) {
    kf_mxfmt fmt = (kf_mxfmt)f;
    int bad = 0;
    for (int c = 0; c < n_codes(fmt); c++) {
      double want = spec_value(fmt, c), got = kf_mx_elem_decode(fmt, (uint8_t)c);
      if (isnan(want) ? !isnan(got) : (got != want || signbit(got) != signbit(want))) {
        if (bad++ < 3) printf("  %s code 0x%02X: %g, spec %g\n", fmt_name(fmt), c, got, want);
      }
    }
    char name[48], d[64];
    snprintf(name, sizeof name, "table_%s", fmt_name(fmt));
    snprintf(d, sizeof d, "%d codes, %d differ from the spec", n_codes(fmt), bad);
    check(bad == 0, name, d);
  }
  /* Spot values named in the specs. */
  int ok = kf_fp8_e4m3_to_f32(0x7E) == 448.0f && kf_fp8_e4m3_to_f32(0x08) == 0x1p-6f &&
           kf_fp8_e4m3_to_f32(0x07) == 0x1.cp-7f && kf_fp8_e4m3_to_f32(0x01) == 0x1p-9f &&
           isnan(kf_fp8_e4m3_to_f32(0x7F)) && isnan(kf_fp8_e4m3_to_f32(0xFF)) &&
           kf_fp8_e4m3_to_f32(0x78) == 256.0f && signbit(kf_fp8_e4m3_to_f32(0x80)) &&
           kf_fp8_e5m2_to_f32(0x7B) == 57344.0f && isinf(kf_fp8_e5m2_to_f32(0x7C)) &&
           kf_fp8_e5m2_to_f32(0xFC) == -INFINITY && isnan(kf_fp8_e5m2_to_f32(0x7D)) &&
           isnan(kf_fp8_e5m2_to_f32(0x7E)) && isnan(kf_fp8_e5m2_to_f32(0x7F)) &&
           kf_fp8_e5m2_to_f32(0x04) == 0x1p-14f && kf_fp8_e5m2_to_f32(0x03) == 0x1.8p-15f &&
           kf_fp8_e5m2_to_f32(0x01) == 0x1p-16f && kf_fp4_e2m1_to_f32(0x7) == 6.0f &&
           kf_fp4_e2m1_to_f32(0x1) == 0.5f && kf_fp4_e2m1_to_f32(0xF) == -6.0f;
  check(ok, "spec_spot_values",
        "e4m3 max 448, min normal 2^-6, subnormals 2^-9..0.875*2^-6, NaN 0x7F/0xFF; e5m2 max "
        "57344, Inf 0x7C, NaN 0x7D-0x7F, min 2^-16; e2m1 0.5..6");
  int times2_ok = 1;
  for (int c = 0; c < 16; c++)
    if (kf_fp4_e2m1_times2((uint8_t)c) != (int)(2 * spec_e2m1(c))) times2_ok = 0;
  check(times2_ok, "e2m1_times2_integers", "2*value in {0,1,2,3,4,6,8,12} with sign");
}

/* Every finite code round-trips; every midpoint between neighbours goes to the even code; random
 * values (subnormal range to beyond max) match the brute-force nearest search. */
static void test_encode(void) {
  for (int f = 0; f < 3; f++) {
    kf_mxfmt fmt = (kf_mxfmt)f;
    int sign_bit = fmt == KF_MX_E2M1 ? 8 : 128;
    int bad_rt = 0, bad_tie = 0, n_ties = 0, bad_rand = 0;
    for (int c = 0; c < n_codes(fmt); c++) {
      double v = spec_value(fmt, c);
      if (isfinite(v) && kf_mx_elem_encode(fmt, v, 1) != c) bad_rt++;
    }
    for (int c = 0; c + 1 < sign_bit; c++) { /* positive codes are ordered by value */
      double lo = spec_value(fmt, c), hi = spec_value(fmt, c + 1);
      if (!isfinite(hi)) break;
      double mid = (lo + hi) / 2;
      int even = (c & 1) == 0 ? c : c + 1;
      n_ties++;
      if (kf_mx_elem_encode(fmt, mid, 1) != even) bad_tie++;
      if (kf_mx_elem_encode(fmt, -mid, 1) != (even | sign_bit)) bad_tie++;
      if (kf_mx_elem_encode(fmt, nextafter(mid, 0), 1) != c) bad_tie++;
      if (kf_mx_elem_encode(fmt, nextafter(mid, INFINITY), 1) != c + 1) bad_tie++;
    }
    double maxv = kf_mx_elem_max(fmt);
    int emin = fmt == KF_MX_E2M1 ? 0 : fmt == KF_MX_E4M3 ? -6 : -14;
    for (int i = 0; i < 20000; i++) {
      double v = ldexp(1.0 + rng_unit(&rng), emin - 5 + (int)(rng_unit(&rng) * (log2(maxv) - emin + 7)));
      if (i % 2) v = -v;
      if (kf_mx_elem_encode(fmt, v, 1) != nearest_code(fmt, v)) {
        if (bad_rand++ < 3) printf("  %s encode(%a) = 0x%02X, nearest 0x%02X\n", fmt_name(fmt), v,
                                   kf_mx_elem_encode(fmt, v, 1), nearest_code(fmt, v));
      }
    }
    char name[48], d[160];
    snprintf(name, sizeof name, "encode_rne_%s", fmt_name(fmt));
    snprintf(d, sizeof d,
             "round trips bad %d; %d midpoints (ties to even, +-1ulp) bad %d; 20000 random vs "
             "brute-force nearest bad %d",
             bad_rt, n_ties, bad_tie, bad_rand);
    check(bad_rt == 0 && bad_tie == 0 && bad_rand == 0, name, d);
  }
}

static void test_saturation(void) {
  int ok = kf_fp4_e2m1_from_f32(6.5f) == 0x7 && kf_fp4_e2m1_from_f32(100.0f) == 0x7 &&
           kf_fp4_e2m1_from_f32(-INFINITY) == 0xF && kf_fp4_e2m1_from_f32(5.0f) == 0x6 &&
           kf_fp4_e2m1_from_f32(0.25f) == 0x0 && kf_fp4_e2m1_from_f32(-0.0f) == 0x8 &&
           kf_fp4_e2m1_from_f32(0.75f) == 0x2 && kf_fp4_e2m1_from_f32(2.5f) == 0x4;
  check(ok, "e2m1_saturate_and_ties", "6.5,100->6; -Inf->-6; 5->4 (tie even); 0.25->0; 0.75->1; 2.5->2");
  ok = kf_fp8_e4m3_from_f32(464.0f, 1) == 0x7E && kf_fp8_e4m3_from_f32(1e6f, 1) == 0x7E &&
       kf_fp8_e4m3_from_f32(INFINITY, 1) == 0x7E && kf_fp8_e4m3_from_f32(-INFINITY, 1) == 0xFE &&
       kf_fp8_e4m3_from_f32(500.0f, 0) == 0x7F && kf_fp8_e4m3_from_f32(-INFINITY, 0) == 0xFF &&
       kf_fp8_e4m3_from_f32(463.0f, 0) == 0x7E && kf_fp8_e4m3_from_f32(NAN, 1) == 0x7F &&
       kf_fp8_e4m3_from_f32(-NAN, 0) == 0xFF && kf_fp8_e4m3_from_f32(0x1p-10f, 1) == 0x00 &&
       kf_fp8_e4m3_from_f32(0x1.000002p-10f, 1) == 0x01;
  check(ok, "e4m3_saturation_nan",
        "sat: 464,1e6,Inf->448; non-sat: 500,-Inf->NaN, 463->448; NaN->0x7F; 2^-10 tie->0");
  ok = kf_fp8_e5m2_from_f32(1e6f, 1) == 0x7B && kf_fp8_e5m2_from_f32(INFINITY, 1) == 0x7B &&
       kf_fp8_e5m2_from_f32(61440.0f, 0) == 0x7C && kf_fp8_e5m2_from_f32(61439.0f, 0) == 0x7B &&
       kf_fp8_e5m2_from_f32(-INFINITY, 0) == 0xFC && kf_fp8_e5m2_from_f32(NAN, 0) == 0x7F &&
       isnan(kf_fp8_e5m2_to_f32(kf_fp8_e5m2_from_f32(NAN, 1)));
  check(ok, "e5m2_saturation_inf",
        "sat: 1e6,Inf->57344; non-sat: 61440 (tie)->Inf, 61439->57344, -Inf->-Inf; NaN->NaN");
  ok = kf_mx_elem_encode((kf_mxfmt)9, 1.0, 1) == 0 && isnan(kf_mx_elem_decode((kf_mxfmt)9, 0)) &&
       kf_mx_elem_max((kf_mxfmt)-1) == 0.0;
  check(ok, "bad_format_defined", "encode 0, decode NaN, max 0");
}

/* Checks the scale exponent of a finite nonzero block against the rule's definition. */
static int scale_ok(kf_mxfmt fmt, kf_mxscale rule, double amax, int e) {
  double maxv = kf_mx_elem_max(fmt);
  int emax = fmt == KF_MX_E2M1 ? 2 : fmt == KF_MX_E4M3 ? 8 : 15;
  if (e == -127) return rule == KF_MX_SCALE_CEIL ? ldexp(maxv, -127) >= amax
                                                 : amax < ldexp(1.0, -127 + emax + 1);
  if (rule == KF_MX_SCALE_CEIL) return ldexp(maxv, e) >= amax && ldexp(maxv, e - 1) < amax;
  return ldexp(1.0, e + emax) <= amax && amax < ldexp(1.0, e + emax + 1);
}

static void test_blocks(void) {
  uint8_t codes[32], s;
  float x[32], out[32];
  /* Scale rules on known blocks. */
  struct { kf_mxfmt fmt; kf_mxscale rule; float amax; int want_e; } cases[] = {
      {KF_MX_E2M1, KF_MX_SCALE_CEIL, 6.0f, 0},   {KF_MX_E2M1, KF_MX_SCALE_OCP, 6.0f, 0},
      {KF_MX_E2M1, KF_MX_SCALE_CEIL, 7.0f, 1},   {KF_MX_E2M1, KF_MX_SCALE_OCP, 7.0f, 0},
      {KF_MX_E2M1, KF_MX_SCALE_CEIL, 4.0f, 0},   {KF_MX_E2M1, KF_MX_SCALE_OCP, 4.0f, 0},
      {KF_MX_E2M1, KF_MX_SCALE_CEIL, 3.0f, -1},  {KF_MX_E4M3, KF_MX_SCALE_CEIL, 448.0f, 0},
      {KF_MX_E4M3, KF_MX_SCALE_OCP, 448.0f, 0},  {KF_MX_E4M3, KF_MX_SCALE_CEIL, 449.0f, 1},
      {KF_MX_E4M3, KF_MX_SCALE_OCP, 511.0f, 0},  {KF_MX_E5M2, KF_MX_SCALE_OCP, 1.0f, -15},
      {KF_MX_E5M2, KF_MX_SCALE_CEIL, 1.0f, -15}, {KF_MX_E2M1, KF_MX_SCALE_CEIL, 1e-40f, -127},
      {KF_MX_E2M1, KF_MX_SCALE_OCP, 3e38f, 125}, {KF_MX_E2M1, KF_MX_SCALE_CEIL, 3e38f, 126},
  };
  int ok = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int j = 0; j < 32; j++) x[j] = cases[i].amax * ((float)(j % 7) / 7.0f);
    x[5] = -cases[i].amax;
    if (kf_mx_quantize_block(cases[i].fmt, cases[i].rule, x, 32, codes, &s) != 0 ||
        s != cases[i].want_e + 127) {
      printf("  case %zu: amax %g scale e %d, want %d\n", i, (double)cases[i].amax, s - 127,
             cases[i].want_e);
      ok = 0;
    }
  }
  check(ok, "scale_rule_cases", "ceil 2^ceil(log2(amax/max)), OCP 2^(floor(log2 amax)-emax), clamp -127");
  /* OCP clips: 7 with X = 1 saturates to 6; ceil does not clip. */
  for (int j = 0; j < 32; j++) x[j] = 0.0f;
  x[0] = 7.0f;
  kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_OCP, x, 32, codes, &s);
  kf_mx_dequantize_block(KF_MX_E2M1, codes, s, 32, out);
  float ocp7 = out[0];
  kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, 32, codes, &s);
  kf_mx_dequantize_block(KF_MX_E2M1, codes, s, 32, out);
  char d[160];
  snprintf(d, sizeof d, "7 -> OCP %g (clipped), ceil %g", (double)ocp7, (double)out[0]);
  check(ocp7 == 6.0f && out[0] == 8.0f, "ocp_clips_ceil_does_not", d);

  /* Random blocks, every fmt x rule x length: scale per definition, codes = brute-force nearest
   * of x/X (saturating), dequant exact, and for the ceil rule no element clips. */
  int bad = 0, n_blocks = 0;
  for (int f = 0; f < 3; f++)
    for (int r = 0; r < 2; r++)
      for (int t = 0; t < 300; t++) {
        int n = 1 + t % 32;
        double mag = ldexp(1.0, (int)(rng_unit(&rng) * 60) - 30);
        for (int j = 0; j < n; j++) x[j] = (float)(rng_gauss(&rng) * mag);
        if (kf_mx_quantize_block((kf_mxfmt)f, (kf_mxscale)r, x, n, codes, &s)) {
          bad++;
          continue;
        }
        n_blocks++;
        double amax = 0;
        for (int j = 0; j < n; j++) amax = fmax(amax, fabs(x[j]));
        int e = s - 127;
        if (amax > 0 && !scale_ok((kf_mxfmt)f, (kf_mxscale)r, amax, e)) bad++;
        kf_mx_dequantize_block((kf_mxfmt)f, codes, s, n, out);
        for (int j = 0; j < n; j++) {
          double v = ldexp((double)x[j], -e);
          if (codes[j] != nearest_code((kf_mxfmt)f, v)) bad++;
          if ((double)out[j] != ldexp(spec_value((kf_mxfmt)f, codes[j]), e)) bad++;
          if (r == KF_MX_SCALE_CEIL && fabs(v) > kf_mx_elem_max((kf_mxfmt)f)) bad++;
        }
      }
  snprintf(d, sizeof d, "%d blocks (n = 1..32, 3 formats x 2 rules), %d problems", n_blocks, bad);
  check(bad == 0, "random_blocks_vs_definition", d);

  /* Defined results: zero block, NaN, Inf. */
  memset(x, 0, sizeof x);
  x[3] = -0.0f;
  int rc = kf_mx_quantize_block(KF_MX_E4M3, KF_MX_SCALE_OCP, x, 32, codes, &s);
  kf_mx_dequantize_block(KF_MX_E4M3, codes, s, 32, out);
  ok = rc == 0 && s == 0x00 && codes[0] == 0 && codes[3] == 0x80 && out[0] == 0.0f &&
       out[3] == 0.0f && signbit(out[3]);
  check(ok, "zero_block", "scale 0x00 (2^-127), codes +-0, dequant 0 (sign of -0 kept)");
  for (int f = 0; f < 3; f++) {
    for (int j = 0; j < 32; j++) x[j] = (float)j;
    x[7] = NAN;
    rc = kf_mx_quantize_block((kf_mxfmt)f, KF_MX_SCALE_CEIL, x, 32, codes, &s);
    kf_mx_dequantize_block((kf_mxfmt)f, codes, s, 32, out);
    int all_nan = 1;
    for (int j = 0; j < 32; j++) all_nan &= isnan(out[j]) != 0;
    x[7] = -INFINITY;
    uint8_t s_inf;
    rc |= kf_mx_quantize_block((kf_mxfmt)f, KF_MX_SCALE_OCP, x, 32, codes, &s_inf);
    char name[48];
    snprintf(name, sizeof name, "nan_inf_block_%s", fmt_name((kf_mxfmt)f));
    check(rc == 0 && s == KF_E8M0_NAN && s_inf == KF_E8M0_NAN && all_nan, name,
          "NaN or Inf in block -> scale 0xFF, whole block dequantizes to NaN");
  }
  ok = isnan(kf_e8m0_to_f32(0xFF)) && kf_e8m0_to_f32(0) == 0x1p-127f &&
       kf_e8m0_to_f32(127) == 1.0f && kf_e8m0_to_f32(254) == 0x1p127f;
  check(ok, "e8m0_values", "0x00 = 2^-127, 0x7F = 1, 0xFE = 2^127, 0xFF = NaN");
  /* Bad arguments. */
  ok = kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, 0, codes, &s) == -1 &&
       kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, 33, codes, &s) == -1 &&
       kf_mx_quantize_block((kf_mxfmt)3, KF_MX_SCALE_CEIL, x, 4, codes, &s) == -1 &&
       kf_mx_quantize_block(KF_MX_E2M1, (kf_mxscale)2, x, 4, codes, &s) == -1 &&
       kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_CEIL, NULL, 4, codes, &s) == -1 &&
       kf_mx_dequantize_block(KF_MX_E2M1, codes, 0, 40, out) == -1 &&
       kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, 0, codes, &s) == -1 &&
       kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, 4, 0, out) == -1 &&
       kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, 4, 9, out) == -1;
  check(ok, "bad_args", "n=0, n=33, bad fmt, bad rule, NULL, passes 0/9 -> -1");
}

static void test_rows_and_pack(void) {
  const int64_t lens[] = {1, 31, 33, 100};
  int ok = 1;
  for (int li = 0; li < 4; li++) {
    int64_t n = lens[li];
    float x[100], row_out[100], blk_out[32];
    uint8_t codes[100], scales[4], c2[32], s2, packed[50], unpacked[100];
    for (int64_t i = 0; i < n; i++) x[i] = (float)(rng_gauss(&rng) * (1 + i));
    if (kf_mx_quantize_row(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, n, codes, scales) ||
        kf_mx_dequantize_row(KF_MX_E2M1, codes, scales, n, row_out)) {
      ok = 0;
      continue;
    }
    for (int64_t b = 0; b < kf_mx_n_blocks(n); b++) {
      int len = (int)(n - b * 32 < 32 ? n - b * 32 : 32);
      kf_mx_quantize_block(KF_MX_E2M1, KF_MX_SCALE_CEIL, x + b * 32, len, c2, &s2);
      kf_mx_dequantize_block(KF_MX_E2M1, c2, s2, len, blk_out);
      if (s2 != scales[b] || memcmp(c2, codes + b * 32, (size_t)len) != 0 ||
          memcmp(blk_out, row_out + b * 32, sizeof(float) * (size_t)len) != 0)
        ok = 0;
    }
    size_t nb = kf_mx_fp4_pack(codes, n, packed);
    kf_mx_fp4_unpack(packed, n, unpacked);
    if (nb != (size_t)((n + 1) / 2) || memcmp(unpacked, codes, (size_t)n) != 0) ok = 0;
    for (int64_t i = 0; i < n; i++)
      if (((packed[i / 2] >> (4 * (i % 2))) & 15) != codes[i]) ok = 0;
    if (n % 2 && (packed[n / 2] >> 4) != 0) ok = 0;
  }
  uint8_t three[3] = {0x1, 0x2, 0xF}, pk[2];
  kf_mx_fp4_pack(three, 3, pk);
  ok = ok && pk[0] == 0x21 && pk[1] == 0x0F && kf_mx_n_blocks(33) == 2 && kf_mx_n_blocks(32) == 1;
  check(ok, "rows_and_fp4_pack", "n = 1, 31, 33, 100: rows = blocks; pack low nibble first, {1,2,F} -> 21 0F");
}

/* SNR bits log2(||x|| / ||x - x̂||) of a decomposition over rows of BF16 data. */
static double snr_bits(kf_mxfmt fmt, kf_mxscale rule, int passes, int dist, int rows, int cols) {
  float *x = malloc(sizeof(float) * (size_t)cols), *xh = malloc(sizeof(float) * (size_t)cols);
  double num = 0, den = 0;
  for (int r = 0; r < rows; r++) {
    for (int i = 0; i < cols; i++) {
      double v = dist == 0 ? rng_gauss(&rng) : 2 * rng_unit(&rng) - 1;
      x[i] = kf_bf16_to_f32(kf_bf16_from_f32((float)v));
    }
    kf_mx_residual_passes(fmt, rule, x, cols, passes, xh);
    for (int i = 0; i < cols; i++) {
      num += (double)x[i] * x[i];
      den += ((double)x[i] - xh[i]) * ((double)x[i] - xh[i]);
    }
  }
  free(x);
  free(xh);
  return 0.5 * log2(num / den);
}

static void test_msd_mxfp4(void) {
  /* Per-block bound |e| <= α/64, α = 2^ceil(log2 amax), for 2-pass non-clipping MXFP4. */
  enum { N = 32 * 4096 };
  float *x = malloc(sizeof(float) * N), *xh = malloc(sizeof(float) * N);
  const char *dists[] = {"gauss", "uniform", "laplace", "outliers", "near_pow2"};
  for (int dist = 0; dist < 5; dist++) {
    for (int i = 0; i < N; i++) {
      double v;
      if (dist == 0) v = rng_gauss(&rng);
      else if (dist == 1) v = 2 * rng_unit(&rng) - 1;
      else if (dist == 2) v = (rng_unit(&rng) < 0.5 ? -1 : 1) * -log(1 - rng_unit(&rng));
      else if (dist == 3) v = rng_gauss(&rng) * (rng_unit(&rng) < 0.02 ? 300 : 1);
      else v = (i % 32 == 0 ? ldexp(1.0 - 0x1p-12 * rng_unit(&rng), i % 97 - 48) : rng_gauss(&rng) * 0x1p-40);
      x[i] = (float)(v * ldexp(1.0, (i / 32) % 40 - 20)); /* block magnitudes 2^-20..2^19 */
    }
    kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_CEIL, x, N, 2, xh);
    double worst = 0;
    for (int b = 0; b < N / 32; b++) {
      double amax = 0, emax = 0;
      for (int j = 0; j < 32; j++) {
        amax = fmax(amax, fabs(x[b * 32 + j]));
        emax = fmax(emax, fabs((double)x[b * 32 + j] - xh[b * 32 + j]));
      }
      if (amax == 0) continue;
      double alpha = ldexp(1.0, (int)ceil(log2(amax)));
      if (ldexp(alpha, -1) >= amax) alpha /= 2; /* exact 2^ceil(log2 amax) */
      if (alpha < amax) alpha *= 2;
      worst = fmax(worst, emax / alpha);
    }
    char name[48], d[96];
    snprintf(name, sizeof name, "mxfp4_2pass_ceil_bound_%s", dists[dist]);
    snprintf(d, sizeof d, "%d blocks: max |e|/alpha = %.6f (bound 1/64 = %.6f)", N / 32, worst,
             1.0 / 64);
    check(worst <= 1.0 / 64, name, d);
  }
  free(x);
  free(xh);
  /* The OCP rule breaks the bound: 7.9 -> pass 1 X=1 clips to 6 (r = 1.9); pass 2 X=0.25 clips
   * 7.6 to 6 (1.5), leaving |e| = 0.4 > α/64 = 0.125. The ceil rule stays within. */
  float blk[32] = {7.9f}, o_ocp[32], o_ceil[32];
  kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_OCP, blk, 32, 2, o_ocp);
  kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_CEIL, blk, 32, 2, o_ceil);
  double e_ocp = fabs((double)blk[0] - o_ocp[0]), e_ceil = fabs((double)blk[0] - o_ceil[0]);
  char d[160];
  snprintf(d, sizeof d, "x = 7.9, alpha = 8: OCP |e| = %.4f > 0.125, ceil |e| = %.5f <= 0.125",
           e_ocp, e_ceil);
  check(e_ocp > 8.0 / 64 && e_ceil <= 8.0 / 64, "mxfp4_2pass_ocp_violates_bound", d);

  /* Near FLT_MAX: 1 pass rounds FLT_MAX up to 2^128 (fp32 Inf), which x̂ clamps to FLT_MAX;
   * 2 passes give FLT_MAX back exactly. */
  {
    float big[3] = {FLT_MAX, -FLT_MAX, 1.0f}, o1[3], o2[3];
    kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_CEIL, big, 3, 1, o1);
    kf_mx_residual_passes(KF_MX_E2M1, KF_MX_SCALE_CEIL, big, 3, 2, o2);
    int okb = o1[0] == FLT_MAX && o1[1] == -FLT_MAX && o2[0] == FLT_MAX && o2[1] == -FLT_MAX;
    check(okb, "flt_max_block", "x = +-FLT_MAX: 1 pass -> +-FLT_MAX (not Inf), 2 passes exact");
  }
  /* Codes/scales per pass reconstruct x̂. */
  float xs[40], xr[40], p1[40], p2[40];
  uint8_t pc[2 * 40], ps[2 * 2];
  for (int i = 0; i < 40; i++) xs[i] = (float)rng_gauss(&rng);
  kf_mx_residual_passes_codes(KF_MX_E2M1, KF_MX_SCALE_CEIL, xs, 40, 2, pc, ps, xr);
  kf_mx_dequantize_row(KF_MX_E2M1, pc, ps, 40, p1);
  kf_mx_dequantize_row(KF_MX_E2M1, pc + 40, ps + 2, 40, p2);
  int ok = 1;
  for (int i = 0; i < 40; i++) ok &= xr[i] == (float)((double)p1[i] + p2[i]);
  check(ok, "residual_pass_codes_reconstruct", "n=40: x̂ = pass1 + pass2 from returned codes/scales");

  /* Effective bits (refs/msd.md §4, BF16 inputs, 64 x 4096): within 0.05 of the simulation. */
  double b_fp4_u = snr_bits(KF_MX_E2M1, KF_MX_SCALE_CEIL, 2, 1, 64, 4096);
  double b_e4m3_g = snr_bits(KF_MX_E4M3, KF_MX_SCALE_CEIL, 1, 0, 64, 4096);
  double b_fp4_ocp_u = snr_bits(KF_MX_E2M1, KF_MX_SCALE_OCP, 2, 1, 64, 4096);
  snprintf(d, sizeof d, "SNR bits %.3f (msd.md 6.57, paper ~6.6); OCP rule %.3f (msd.md 5.72)",
           b_fp4_u, b_fp4_ocp_u);
  check(fabs(b_fp4_u - 6.57) <= 0.05 && fabs(b_fp4_ocp_u - 5.72) <= 0.05,
        "snr_mxfp4_2pass_uniform", d);
  snprintf(d, sizeof d, "SNR bits %.3f (msd.md 5.23, paper 5.24)", b_e4m3_g);
  check(fabs(b_e4m3_g - 5.23) <= 0.05, "snr_mxfp8_e4m3_gauss", d);
}

int main(void) {
  test_tables();
  test_encode();
  test_saturation();
  test_blocks();
  test_rows_and_pack();
  test_msd_mxfp4();
  printf("%s: %d failure(s)\n", n_fail ? "FAIL" : "PASS", n_fail);
  return n_fail != 0;
}

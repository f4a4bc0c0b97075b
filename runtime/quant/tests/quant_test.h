/* quant_test.h — what the runtime/quant tests share: the result line of one case (counted in
 * n_fail, which main returns on) and a seeded xorshift64 generator. Each test keeps its own
 * state and seed, so the tests' data do not depend on each other. */
#ifndef QUANT_TEST_H
#define QUANT_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int n_fail = 0;

static inline void check(int ok, const char *name, const char *detail) {
  printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", name, detail[0] ? ": " : "", detail);
  if (!ok) n_fail++;
}

/* xorshift64 (13, 7, 17): the next state, which is also the output. */
static inline uint64_t rng_next(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

/* Uniform in [0, 1): the top 53 bits. */
static inline double rng_unit(uint64_t *state) {
  return (double)(rng_next(state) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller, one of the pair). */
static inline double rng_gauss(uint64_t *state) {
  double u1 = rng_unit(state), u2 = rng_unit(state);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

#endif

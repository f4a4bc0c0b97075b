/* lopt_fuzz CORPUS SECONDS TOK...: bounded-time fuzzing. Inputs alternate between random bytes
 * (biased towards UTF-8 lead/continuation bytes, whitespace, digits and pieces of special
 * tokens) and random mixes of corpus slices cut at arbitrary bytes. For each input: sequential
 * encode must succeed with offsets inside the input and increasing; LoPT with a random small
 * chunk length, overlap and retry budget (and, half the time, the text stage run in parallel in
 * random small blocks) must equal sequential; the naive split and decode must
 * not fail. Deterministic seed; the time bound only limits the number of cases. */
#include "lopt_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t gen_bytes(uint64_t *rs, char *out, size_t cap) {
  static const char *const frag[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|", "|>",
                                     "<|begin_of_text|>", "'s", "'LL", "\r\n", "\xCC\x81",
                                     "\xE3\x80\x80", "\xC2\x85", "👩‍💻", "   ", "\t", "\n\n",
                                     "123", "ab", "漢字", "مرحبا", "\xED\xA0\x80", "\xF0\x9F"};
  size_t n = (size_t)(lt_rand(rs) % (cap > 3000 ? 3000 : cap));
  size_t i = 0;
  while (i < n) {
    uint64_t r = lt_rand(rs);
    switch (r % 8) {
    case 0: out[i++] = (char)(r >> 8); break;                        /* any byte */
    case 1: out[i++] = (char)(0x80 | ((r >> 8) & 0x3F)); break;      /* continuation */
    case 2: out[i++] = (char)(0xC0 | ((r >> 8) & 0x3F)); break;      /* lead */
    case 3: out[i++] = " \t\n\r\x0b"[(r >> 8) % 5]; break;
    case 4: out[i++] = (char)('0' + (r >> 8) % 10); break;
    default: {
      const char *f = frag[(r >> 8) % (sizeof frag / sizeof frag[0])];
      size_t k = strlen(f);
      if (i + k > n) k = n - i;
      memcpy(out + i, f, k);
      i += k;
    }
    }
  }
  return n;
}

static int offsets_sane(const kf_lopt_tokens *t, size_t n) {
  for (size_t i = 0; i < t->n; i++) {
    if (t->start[i] > t->end[i] || t->end[i] > n) return 0;
    if (i && t->start[i] < t->start[i - 1]) return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: lopt_fuzz CORPUS SECONDS TOKENIZER_JSON...\n");
    return 2;
  }
  size_t cn;
  char *corpus = lt_read_file(argv[1], &cn);
  if (!corpus) return 1;
  double seconds = atof(argv[2]);
  int n_tok = argc - 3;
  kf_lopt_tokenizer **toks = calloc((size_t)n_tok, sizeof *toks);
  for (int i = 0; i < n_tok; i++) toks[i] = lt_load_or_die(argv[3 + i]);
  kf_lopt_pool *pool;
  kf_lopt_error err = {0};
  if (kf_lopt_pool_create(2, &pool, &err)) {
    printf("FAIL pool: %s\n", err.msg);
    return 1;
  }
  size_t cap = 1 << 20;
  char *in = malloc(cap);
  kf_lopt_tokens seq = {0}, par = {0}, nav = {0};
  uint64_t rs = 0x10F7;
  size_t cases = 0, bytes = 0, retries = 0, fallbacks = 0, bad = 0;
  double t_end = lt_now() + seconds;
  while (lt_now() < t_end && bad < 5) {
    size_t n;
    int kind = (int)(cases % 2);
    if (kind == 0) {
      n = gen_bytes(&rs, in, cap);
    } else {
      n = 0;
      int parts = 1 + (int)(lt_rand(&rs) % 12);
      for (int p = 0; p < parts; p++) {
        size_t len = (size_t)(lt_rand(&rs) % 40000);
        size_t at = (size_t)(lt_rand(&rs) % cn);
        if (at + len > cn) len = cn - at;
        if (n + len > cap) break;
        memcpy(in + n, corpus + at, len);
        n += len;
      }
    }
    const kf_lopt_tokenizer *tok = toks[(cases / 2) % (size_t)n_tok];
    int ok = kf_lopt_encode(tok, in, n, &seq, &err) == KF_LOPT_OK && offsets_sane(&seq, n);
    kf_lopt_par_opts o = {0};
    o.chunk_bytes = 1 + (size_t)(lt_rand(&rs) % (kind ? 8192 : 512));
    o.overlap_bytes = 1 + (size_t)(lt_rand(&rs) % 96);
    o.max_rounds = 1 + (int)(lt_rand(&rs) % 5);
    o.seed = (lt_rand(&rs) & 1) ? lt_rand(&rs) | 1 : 0;
    /* half the cases run the text stage in parallel, in blocks cut anywhere */
    o.prepare_block_bytes = (lt_rand(&rs) & 1) ? 1 + (size_t)(lt_rand(&rs) % 700) : 0;
    kf_lopt_par_stats st = {0};
    ok = ok && kf_lopt_encode_parallel(tok, pool, in, n, &o, &par, &st, &err) == KF_LOPT_OK &&
         lt_same_tokens(&seq, &par, "LoPT vs sequential");
    ok = ok && kf_lopt_encode_naive(tok, pool, in, n, &o, &nav, &err) == KF_LOPT_OK;
    char *dec = NULL;
    size_t dn;
    ok = ok && kf_lopt_decode(tok, seq.ids, seq.n, &dec, &dn, &err) == KF_LOPT_OK;
    free(dec);
    if (!ok) {
      bad++;
      char path[64];
      snprintf(path, sizeof path, "lopt_fuzz_fail_%zu.bin", cases);
      lt_write_file(path, in, n);
      printf("FAIL case %zu (%s, %zu bytes, chunk %zu overlap %zu rounds %d seed %llu prepare "
             "block %zu): %s; input saved to %s\n",
             cases, kind ? "corpus mix" : "random bytes", n, o.chunk_bytes, o.overlap_bytes,
             o.max_rounds, (unsigned long long)o.seed, o.prepare_block_bytes, err.msg, path);
      lt_failures++;
    }
    retries += st.n_retries;
    fallbacks += st.n_fallbacks;
    cases++;
    bytes += n;
  }
  lt_check(lt_failures == 0 && cases > 20, "fuzz: LoPT == sequential, no errors",
           "%zu cases, %.1f MB in %.0f s (%zu retries, %zu fallbacks exercised)", cases,
           bytes / 1e6, seconds, retries, fallbacks);
  kf_lopt_tokens_free(&seq);
  kf_lopt_tokens_free(&par);
  kf_lopt_tokens_free(&nav);
  free(in);
  kf_lopt_pool_free(pool);
  for (int i = 0; i < n_tok; i++) kf_lopt_free(toks[i]);
  free(toks);
  free(corpus);
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

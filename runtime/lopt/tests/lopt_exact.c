/* lopt_exact CORPUS TOK1 REF1.u32 [TOK2 REF2.u32 ...]
 * Exactness against the reference: ids from Hugging Face tokenizers (tests/ref_encode.js) for the
 * whole corpus must equal kf_lopt's sequential ids, and LoPT's with 1, 2, 4, 8 chunks per thread
 * (2 threads), small fixed chunks, and random chunk lengths. LoPT offsets must equal sequential
 * offsets; the naive split's mismatch is printed (it is expected to be lossy). */
#include "lopt_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_ids(const uint32_t *ref, size_t n_ref, const kf_lopt_tokens *t, const char *text,
                    size_t text_n) {
  size_t n = n_ref < t->n ? n_ref : t->n;
  for (size_t i = 0; i < n; i++) {
    if (ref[i] != t->ids[i]) {
      size_t a = t->start[i] > 40 ? t->start[i] - 40 : 0, e = t->start[i] + 40;
      if (e > text_n) e = text_n;
      printf("     first difference at token %zu (byte %u): reference %u, kf_lopt %u; text around: "
             "\"",
             i, t->start[i], ref[i], t->ids[i]);
      for (size_t k = a; k < e; k++) {
        unsigned char c = (unsigned char)text[k];
        if (c < 0x20 || c == 0x7F || c == '"') printf("\\x%02X", c);
        else putchar(c);
      }
      printf("\"\n");
      return 0;
    }
  }
  if (n_ref != t->n) {
    printf("     token counts differ: reference %zu, kf_lopt %zu\n", n_ref, t->n);
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4 || argc % 2 != 0) {
    fprintf(stderr, "usage: lopt_exact CORPUS TOK1 REF1.u32 [TOK2 REF2.u32 ...]\n");
    return 2;
  }
  size_t n;
  char *text = lt_read_file(argv[1], &n);
  if (!text) return 1;
  kf_lopt_error err = {0};
  kf_lopt_pool *pool;
  if (kf_lopt_pool_create(2, &pool, &err)) {
    printf("FAIL pool: %s\n", err.msg);
    return 1;
  }
  for (int a = 2; a + 1 < argc; a += 2) {
    const char *name = strstr(argv[a], "qwen") ? "qwen3" : strstr(argv[a], "llama") ? "llama3"
                                                                                    : argv[a];
    kf_lopt_tokenizer *tok = lt_load_or_die(argv[a]);
    size_t rn;
    char *rb = lt_read_file(argv[a + 1], &rn);
    if (!rb) {
      printf("FAIL %s: reference ids missing (lopt_ref_ids runs node tests/ref_encode.js)\n", name);
      return 1;
    }
    const uint32_t *ref = (const uint32_t *)(void *)rb;
    size_t n_ref = rn / 4;
    kf_lopt_tokens seq = {0}, par = {0};
    char label[128];
    double t0 = lt_now();
    int ok = kf_lopt_encode(tok, text, n, &seq, &err) == KF_LOPT_OK;
    double dt = lt_now() - t0;
    snprintf(label, sizeof label, "%s sequential == reference", name);
    lt_check(ok && same_ids(ref, n_ref, &seq, text, n), label,
             "%zu tokens for %zu bytes, %.1f MB/s", seq.n, n, n / 1e6 / dt);
    /* decode round trip: for a tokenizer without normalizer, decode(encode(x)) is x after the
     * U+FFFD repair; check it on the corpus */
    kf_lopt_info info;
    kf_lopt_get_info(tok, &info);
    if (!info.normalizer_nfc) {
      char *dec;
      size_t dn;
      ok = kf_lopt_decode_bytes(tok, seq.ids, seq.n, &dec, &dn, &err) == KF_LOPT_OK;
      /* recompute the repaired text: decode each token's input span as the reference would */
      size_t diff = 0;
      if (ok) {
        /* compare only spans where the input was valid: tokens whose decoded bytes must be the
         * input bytes (offsets are exact there) */
        size_t pos = 0;
        for (size_t i = 0; i < seq.n && !diff; i++) {
          size_t len = seq.end[i] - seq.start[i];
          char *d2;
          size_t d2n;
          if (kf_lopt_decode_bytes(tok, &seq.ids[i], 1, &d2, &d2n, &err)) {
            diff = 1;
            break;
          }
          int replaced = d2n >= 3 && memcmp(d2 + d2n - 3, "\xEF\xBF\xBD", 3) == 0;
          if (!replaced && d2n == len && memcmp(d2, text + seq.start[i], len) != 0) diff = i + 1;
          pos += d2n;
          free(d2);
        }
        ok = pos == dn;
        free(dec);
      }
      snprintf(label, sizeof label, "%s decode(encode(corpus)) reproduces the input", name);
      lt_check(ok && !diff, label, "%s", diff ? "a token decodes to other bytes than its span" : "");
    }
    int cpts[] = {1, 2, 4, 8};
    for (int c = 0; c < 4; c++) {
      kf_lopt_par_opts o = {0};
      o.chunks_per_thread = cpts[c];
      kf_lopt_par_stats st;
      t0 = lt_now();
      ok = kf_lopt_encode_parallel(tok, pool, text, n, &o, &par, &st, &err) == KF_LOPT_OK;
      dt = lt_now() - t0;
      snprintf(label, sizeof label, "%s LoPT 2 threads x %d chunks == reference", name, cpts[c]);
      lt_check(ok && same_ids(ref, n_ref, &par, text, n) && lt_same_tokens(&seq, &par, label),
               label, "%.1f MB/s, chunks %zu, matched %zu, retries %zu, fallbacks %zu",
               n / 1e6 / dt, st.n_chunks, st.n_cuts_matched, st.n_retries, st.n_fallbacks);
    }
    struct {
      size_t chunk, overlap;
      uint64_t seed;
    } cfg[] = {{4096, 64, 0}, {65536, 16, 0}, {8192, 32, 11}, {30000, 256, 12}, {1500, 8, 13}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
      kf_lopt_par_opts o = {0};
      o.chunk_bytes = cfg[c].chunk;
      o.overlap_bytes = cfg[c].overlap;
      o.seed = cfg[c].seed;
      kf_lopt_par_stats st;
      ok = kf_lopt_encode_parallel(tok, pool, text, n, &o, &par, &st, &err) == KF_LOPT_OK;
      snprintf(label, sizeof label, "%s LoPT chunk %s%zu overlap %zu == reference", name,
               cfg[c].seed ? "random~" : "", cfg[c].chunk, cfg[c].overlap);
      lt_check(ok && same_ids(ref, n_ref, &par, text, n) && lt_same_tokens(&seq, &par, label),
               label, "chunks %zu, matched %zu, retries %zu, fallbacks %zu", st.n_chunks,
               st.n_cuts_matched, st.n_retries, st.n_fallbacks);
    }
    kf_lopt_par_opts o = {0};
    o.chunks_per_thread = 8;
    ok = kf_lopt_encode_naive(tok, pool, text, n, &o, &par, &err) == KF_LOPT_OK;
    size_t mis = ok ? kf_lopt_tokens_diff(&par, &seq) + kf_lopt_tokens_diff(&seq, &par) : 0;
    snprintf(label, sizeof label, "%s naive split (16 chunks) runs", name);
    lt_check(ok, label, "lossy as expected: %zu tokens differ from sequential (%.4f%%)", mis,
             100.0 * (double)mis / (double)seq.n);
    kf_lopt_tokens_free(&seq);
    kf_lopt_tokens_free(&par);
    free(rb);
    kf_lopt_free(tok);
  }
  kf_lopt_pool_free(pool);
  free(text);
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

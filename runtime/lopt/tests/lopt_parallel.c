/* lopt_parallel CORPUS BYTES TOK...: LoPT == sequential (ids and offsets) on the first BYTES of
 * the corpus for pools of 1, 2, 4 threads with 1, 2, 4, 8 chunks per thread, for random chunk
 * lengths and small overlaps (many retries and fallbacks), and for concurrent kf_lopt_encode calls
 * on one tokenizer from several threads (thread safety). C only: also runs under ASan+UBSan. */
#include "lopt_test_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conc_arg {
  const kf_lopt_tokenizer *tok;
  const char *text;
  size_t n;
  const kf_lopt_tokens *expect;
  int ok;
} conc_arg;

static void *conc_main(void *varg) {
  conc_arg *a = varg;
  kf_lopt_tokens t = {0};
  kf_lopt_error err;
  a->ok = 1;
  for (int r = 0; r < 2; r++)
    a->ok &= kf_lopt_encode(a->tok, a->text, a->n, &t, &err) == KF_LOPT_OK &&
             lt_same_tokens(a->expect, &t, "concurrent encode");
  kf_lopt_tokens_free(&t);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: lopt_parallel CORPUS BYTES TOKENIZER_JSON...\n");
    return 2;
  }
  size_t n;
  char *text = lt_read_file(argv[1], &n);
  if (!text) return 1;
  size_t want = (size_t)strtoull(argv[2], NULL, 10);
  if (want < n) n = want;
  for (int a = 3; a < argc; a++) {
    const char *name = strstr(argv[a], "qwen") ? "qwen3" : strstr(argv[a], "llama") ? "llama3"
                                                                                    : argv[a];
    kf_lopt_tokenizer *tok = lt_load_or_die(argv[a]);
    kf_lopt_error err = {0};
    kf_lopt_tokens seq = {0}, par = {0};
    char label[160];
    if (kf_lopt_encode(tok, text, n, &seq, &err)) {
      printf("FAIL %s encode: %s\n", name, err.msg);
      return 1;
    }
    printf("     %s: %zu bytes -> %zu tokens\n", name, n, seq.n);
    int threads[] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
      kf_lopt_pool *pool;
      if (kf_lopt_pool_create(threads[ti], &pool, &err)) {
        printf("FAIL pool: %s\n", err.msg);
        return 1;
      }
      for (int cpt = 1; cpt <= 8; cpt *= 2) {
        kf_lopt_par_opts o = {0};
        o.chunks_per_thread = cpt;
        o.min_chunk_bytes = 4096;
        kf_lopt_par_stats st;
        int ok = kf_lopt_encode_parallel(tok, pool, text, n, &o, &par, &st, &err) == KF_LOPT_OK;
        snprintf(label, sizeof label, "%s LoPT %d threads x %d chunks == sequential", name,
                 threads[ti], cpt);
        lt_check(ok && lt_same_tokens(&seq, &par, label), label,
                 "chunks %zu, matched %zu, retries %zu, fallbacks %zu", st.n_chunks,
                 st.n_cuts_matched, st.n_retries, st.n_fallbacks);
      }
      /* the pool keeps chunk buffers between calls; after a trim it starts from none */
      kf_lopt_pool_trim(pool);
      {
        kf_lopt_par_stats st;
        int ok = kf_lopt_encode_parallel(tok, pool, text, n, NULL, &par, &st, &err) == KF_LOPT_OK;
        snprintf(label, sizeof label, "%s LoPT %d threads default chunks after pool trim == "
                 "sequential", name, threads[ti]);
        lt_check(ok && lt_same_tokens(&seq, &par, label), label, "chunks %zu", st.n_chunks);
      }
      uint64_t rs = 99 + (uint64_t)ti;
      for (int r = 0; r < 4; r++) {
        kf_lopt_par_opts o = {0};
        o.chunk_bytes = 64 + (size_t)(lt_rand(&rs) % 20000);
        o.overlap_bytes = 1 + (size_t)(lt_rand(&rs) % 128);
        o.max_rounds = 1 + (int)(lt_rand(&rs) % 6);
        o.seed = lt_rand(&rs) | 1;
        kf_lopt_par_stats st;
        int ok = kf_lopt_encode_parallel(tok, pool, text, n, &o, &par, &st, &err) == KF_LOPT_OK;
        snprintf(label, sizeof label,
                 "%s LoPT %d threads random chunks ~%zu overlap %zu rounds %d == sequential",
                 name, threads[ti], o.chunk_bytes, o.overlap_bytes, o.max_rounds);
        lt_check(ok && lt_same_tokens(&seq, &par, label), label,
                 "chunks %zu, matched %zu, retries %zu, fallbacks %zu", st.n_chunks,
                 st.n_cuts_matched, st.n_retries, st.n_fallbacks);
      }
      kf_lopt_pool_free(pool);
    }
    /* thread safety: 3 threads encode the same text with the same tokenizer at once */
    size_t cn = n < 200000 ? n : 200000;
    kf_lopt_tokens exp = {0};
    kf_lopt_encode(tok, text, cn, &exp, &err);
    pthread_t th[3];
    conc_arg ca[3];
    for (int i = 0; i < 3; i++) {
      ca[i] = (conc_arg){tok, text, cn, &exp, 0};
      pthread_create(&th[i], NULL, conc_main, &ca[i]);
    }
    int all = 1;
    for (int i = 0; i < 3; i++) {
      pthread_join(th[i], NULL);
      all &= ca[i].ok;
    }
    snprintf(label, sizeof label, "%s 3 threads encoding concurrently agree", name);
    lt_check(all, label, "%zu bytes each", cn);
    kf_lopt_tokens_free(&exp);
    kf_lopt_tokens_free(&seq);
    kf_lopt_tokens_free(&par);
    kf_lopt_free(tok);
  }
  free(text);
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

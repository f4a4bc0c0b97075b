/* lopt_all WORKDIR CORPUS TOKENIZER_JSON...: every tokenizer against the reference outputs that
 * ref_all.js wrote to WORKDIR (Hugging Face tokenizers):
 *   - ids of the corpus (invalid UTF-8 included), sequential, equal to the reference's
 *     (add_special_tokens = false); the first difference is printed with its offsets;
 *   - LoPT with 2 threads and 4 threads and random chunk sizes gives the sequential tokens
 *     (ids and offsets) exactly;
 *   - decode(ids) equals the reference's decode, byte for byte;
 *   - offsets on the repaired corpus: equal to the reference's (byte offsets) for tokenizers
 *     without a Unicode normalizer; with one, the count of differing tokens is reported;
 *   - add_special_tokens = true and special tokens as text on a slice, and short texts (empty,
 *     one byte, an invalid byte, specials) with both flags. */
#include "lopt_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t *read_u32(const char *dir, const char *name, const char *ext, size_t *n) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
  size_t bytes;
  char *p = lt_read_file(path, &bytes);
  *n = bytes / 4;
  return (uint32_t *)p;
}

/* Compare ids with ref; prints the first difference. */
static int same_ids(const char *label, const uint32_t *ref, size_t n_ref, const kf_lopt_tokens *t) {
  size_t i = 0;
  while (i < n_ref && i < t->n && ref[i] == t->ids[i]) i++;
  if (i == n_ref && i == t->n) return lt_check(1, label, "%zu ids", n_ref);
  return lt_check(0, label, "first difference at token %zu of %zu/%zu: reference %u, kf %u "
                  "(kf bytes [%u, %u))",
                  i, n_ref, t->n, i < n_ref ? ref[i] : 0, i < t->n ? t->ids[i] : 0,
                  i < t->n ? t->start[i] : 0, i < t->n ? t->end[i] : 0);
}

static void one(const char *dir, const char *path, const char *corpus, size_t corpus_n,
                const char *valid, size_t valid_n, const char *slice, size_t slice_n,
                kf_lopt_pool *pool2, kf_lopt_pool *pool4, uint64_t *seed) {
  char name[256], label[512];
  const char *d = strstr(path, "tokenizer-");
  snprintf(name, sizeof name, "%s", d ? d + 10 : path);
  char *slash = strchr(name, '/');
  if (slash) *slash = 0;
  kf_lopt_error err = {0};
  kf_lopt_tokenizer *tok = NULL;
  snprintf(label, sizeof label, "%s loads", name);
  if (!lt_check(kf_lopt_load(path, &tok, &err) == KF_LOPT_OK, label, "%s", err.msg)) return;
  kf_lopt_info info;
  kf_lopt_get_info(tok, &info);
  size_t n_ref, n_off, n_as, n_sat, n_small;
  uint32_t *ref = read_u32(dir, name, "ids", &n_ref);
  uint32_t *off = read_u32(dir, name, "off", &n_off);
  uint32_t *as = read_u32(dir, name, "as", &n_as);
  uint32_t *sat = read_u32(dir, name, "sat", &n_sat);
  uint32_t *small = read_u32(dir, name, "small", &n_small);
  char dpath[2048];
  snprintf(dpath, sizeof dpath, "%s/%s.dec", dir, name);
  size_t n_dec;
  char *dec_ref = lt_read_file(dpath, &n_dec);
  if (!ref || !off || !as || !small || !dec_ref) {
    lt_check(0, name, "reference files missing in %s (ref_all.js)", dir);
    goto done;
  }
  kf_lopt_tokens seq = {0}, par = {0}, t = {0};
  double t0 = lt_now();
  int ok = kf_lopt_encode(tok, corpus, corpus_n, &seq, &err) == KF_LOPT_OK;
  double dt = lt_now() - t0;
  snprintf(label, sizeof label, "%s ids == reference on the corpus (%s path, %.1f MB/s)", name,
           info.general ? "general" : "fast", corpus_n / 1e6 / dt);
  if (ok) same_ids(label, ref, n_ref, &seq);
  else lt_check(0, label, "%s", err.msg);
  kf_lopt_pool *pools[2] = {pool2, pool4};
  for (int p = 0; p < 2; p++) {
    kf_lopt_par_opts o = {0};
    o.chunk_bytes = 2048 + (size_t)(lt_rand(seed) % 60000);
    o.overlap_bytes = 8 + (size_t)(lt_rand(seed) % 300);
    o.seed = lt_rand(seed) | 1;
    kf_lopt_par_stats st;
    snprintf(label, sizeof label, "%s LoPT %d threads, random chunks around %zu bytes == sequential",
             name, kf_lopt_pool_threads(pools[p]), o.chunk_bytes);
    ok = kf_lopt_encode_parallel(tok, pools[p], corpus, corpus_n, &o, &par, &st, &err) == KF_LOPT_OK;
    lt_check(ok && lt_same_tokens(&seq, &par, label), label, "chunks %zu, matched %zu, retries %zu, "
             "fallbacks %zu", st.n_chunks, st.n_cuts_matched, st.n_retries, st.n_fallbacks);
  }
  char *dec = NULL;
  size_t dn = 0;
  snprintf(label, sizeof label, "%s decode(ids) == reference decode", name);
  ok = kf_lopt_decode(tok, seq.ids, seq.n, &dec, &dn, &err) == KF_LOPT_OK;
  if (ok) {
    size_t i = 0;
    while (i < dn && i < n_dec && dec[i] == dec_ref[i]) i++;
    lt_check(i == dn && i == n_dec, label, "%zu bytes; first difference at byte %zu of %zu/%zu",
             dn, i, dn, n_dec);
  } else {
    lt_check(0, label, "%s", err.msg);
  }
  free(dec);
  /* offsets on the repaired corpus */
  ok = kf_lopt_encode(tok, valid, valid_n, &t, &err) == KF_LOPT_OK && t.n * 2 == n_off;
  size_t n_diff = 0, first = 0;
  for (size_t i = 0; ok && i < t.n; i++) { /* the reference counts whole characters */
    while (t.start[i] > 0 && t.start[i] < valid_n && (valid[t.start[i]] & 0xC0) == 0x80)
      t.start[i]--;
    while (t.end[i] < valid_n && t.end[i] > t.start[i] && (valid[t.end[i]] & 0xC0) == 0x80)
      t.end[i]++;
  }
  for (size_t i = 0; ok && i < t.n; i++)
    if (t.start[i] != off[2 * i] || t.end[i] != off[2 * i + 1]) {
      if (!n_diff++) first = i;
    }
  snprintf(label, sizeof label, "%s offsets == reference", name);
  if (!ok) lt_check(0, label, "%zu tokens vs %zu", t.n, n_off / 2);
  else
    lt_check(n_diff == 0, label, "%zu of %zu tokens differ", n_diff, t.n);
  if (n_diff)
    printf("     first %zu: kf [%u, %u), reference [%u, %u)\n", first, t.start[first],
           t.end[first], off[2 * first], off[2 * first + 1]);
  /* flags on the slice */
  snprintf(label, sizeof label, "%s add_special_tokens = true == reference (slice)", name);
  ok = kf_lopt_encode_ex(tok, slice, slice_n, KF_LOPT_ADD_SPECIAL, &t, &err) == KF_LOPT_OK;
  if (ok) same_ids(label, as, n_as, &t);
  snprintf(label, sizeof label, "%s special tokens as text == reference (slice)", name);
  ok = kf_lopt_encode_ex(tok, slice, slice_n, KF_LOPT_SPECIAL_AS_TEXT, &t, &err) == KF_LOPT_OK;
  if (!sat) printf("skip %s (no reference: ref_all.js skips files over 20 MB)\n", label);
  else if (ok) same_ids(label, sat, n_sat, &t);
  /* short texts */
  size_t at = 0;
  for (int k = 0;; k++) {
    char sp[2048];
    snprintf(sp, sizeof sp, "%s/small_%d.bin", dir, k);
    FILE *f = fopen(sp, "rb");
    if (!f) break;
    fclose(f);
    size_t tn;
    char *text = lt_read_file(sp, &tn);
    for (int special = 0; special < 2 && at < n_small; special++) {
      size_t cnt = small[at++];
      kf_lopt_tokens r = {0};
      r.ids = small + at;
      r.n = cnt;
      at += cnt;
      snprintf(label, sizeof label, "%s short text %d (%zu bytes), add_special_tokens %d", name, k,
               tn, special);
      ok = kf_lopt_encode_ex(tok, text ? text : "", text ? tn : 0, special ? KF_LOPT_ADD_SPECIAL : 0,
                             &t, &err) == KF_LOPT_OK;
      if (ok) same_ids(label, r.ids, r.n, &t);
      else lt_check(0, label, "%s", err.msg);
    }
    free(text);
  }
  kf_lopt_tokens_free(&seq);
  kf_lopt_tokens_free(&par);
  kf_lopt_tokens_free(&t);
done:
  free(ref);
  free(off);
  free(as);
  free(sat);
  free(small);
  free(dec_ref);
  kf_lopt_free(tok);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: lopt_all WORKDIR CORPUS TOKENIZER_JSON...\n");
    return 2;
  }
  const char *dir = argv[1];
  size_t cn, vn, sn;
  char *corpus = lt_read_file(argv[2], &cn);
  char vpath[2048], spath[2048];
  snprintf(vpath, sizeof vpath, "%s/corpus_valid.bin", dir);
  snprintf(spath, sizeof spath, "%s/slice.bin", dir);
  char *valid = lt_read_file(vpath, &vn), *slice = lt_read_file(spath, &sn);
  if (!corpus || !valid || !slice) return 1;
  kf_lopt_error err;
  kf_lopt_pool *p2, *p4;
  if (kf_lopt_pool_create(2, &p2, &err) || kf_lopt_pool_create(4, &p4, &err)) {
    printf("FAIL pool: %s\n", err.msg);
    return 1;
  }
  uint64_t seed = 0x5eed2026;
  for (int i = 3; i < argc; i++) one(dir, argv[i], corpus, cn, valid, vn, slice, sn, p2, p4, &seed);
  kf_lopt_pool_free(p2);
  kf_lopt_pool_free(p4);
  free(corpus);
  free(valid);
  free(slice);
  printf("%s: %d failure(s)\n", argv[0], lt_failures);
  return lt_failures != 0;
}

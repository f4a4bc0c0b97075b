/* kf_lopt: BPE tokenizer for Hugging Face tokenizer.json, and LoPT (lossless parallel
 * tokenization).
 *
 * The tokenizer loads the tokenizer.json of a BPE model (byte-level like Qwen, Llama-3, GPT-4o,
 * or SentencePiece-style like Llama-2, Gemma) and gives the ids of the reference (Hugging Face
 * tokenizers 0.23): normalizers NFC, NFD, NFKC, NFKD, Replace, Prepend, Strip, Lowercase,
 * Sequence; pre-tokenizers Split (every behavior, invert), ByteLevel, Metaspace, Digits,
 * Punctuation, Whitespace, WhitespaceSplit, Sequence; BPE with byte_fallback, fuse_unk,
 * ignore_merges, unk; added tokens (lstrip, rstrip, single_word, normalized) matched as the
 * reference does; TemplateProcessing for add_special_tokens; decoders ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace, Sequence. WordPiece and Unigram models are refused.
 * Unicode tables are the reference's versions: regex classes 16.0, normalization 10.0,
 * Punctuation 8.0 (kf_lopt_info reports them). The file is checked as strictly as the
 * reference's loader (and duplicate keys or ids are refused); errors name the JSON path.
 *
 * Input bytes that are not valid UTF-8 are replaced by U+FFFD, one per maximal invalid subpart
 * (the WHATWG decoder, which is what a JavaScript or Rust caller of the reference does when it
 * turns bytes into a string). Offsets are byte offsets into the caller's input, per token as the
 * reference aligns them (also where a normalizer changed the text). A tokenizer is immutable
 * after load, so any number of threads may encode with it at once.
 *
 * LoPT (kf_lopt_encode_parallel) covers the fast path: at most one Unicode normalization form,
 * one split regex (Isolated, or Removed with invert) and ByteLevel, or no pre-tokenizer. It cuts
 * the text into chunks at UTF-8 boundaries with an overlap, tokenizes the chunks on a thread
 * pool, and joins neighbours at a pre-token that both chunks produce with the same (start, end,
 * id) inside the overlap and that the left chunk proved independent of its truncation (PCRE2
 * hard partial matching); with no such token the overlap is widened and the pair retried, and
 * after max_rounds the span is tokenized sequentially. Other pipelines (kf_lopt_info.general)
 * are encoded sequentially by kf_lopt_encode_parallel too. The result is always identical to
 * kf_lopt_encode. kf_lopt_encode_naive is the lossy split-and-concatenate baseline. */
#ifndef KF_LOPT_H
#define KF_LOPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kf_lopt_status {
  KF_LOPT_OK = 0,
  KF_LOPT_EINVAL,       /* bad argument */
  KF_LOPT_ENOMEM,       /* allocation failed */
  KF_LOPT_EIO,          /* file missing or unreadable */
  KF_LOPT_EPARSE,       /* tokenizer.json is not valid JSON or lacks a required field */
  KF_LOPT_EUNSUPPORTED, /* a tokenizer kind or option this library does not implement */
  KF_LOPT_ETHREAD       /* thread creation failed */
} kf_lopt_status;

/* Error sink: status plus a message naming what was wrong and where. */
typedef struct kf_lopt_error {
  kf_lopt_status status;
  char msg[512];
} kf_lopt_error;

typedef struct kf_lopt_tokenizer kf_lopt_tokenizer;
typedef struct kf_lopt_pool kf_lopt_pool;

/* Token output: ids[i] covers input bytes [start[i], end[i]). Arrays are owned by the struct;
 * zero-initialize before first use, reuse across calls, release with kf_lopt_tokens_free. */
typedef struct kf_lopt_tokens {
  uint32_t *ids;
  uint32_t *start;
  uint32_t *end;
  size_t n;
  size_t cap;
} kf_lopt_tokens;

void kf_lopt_tokens_free(kf_lopt_tokens *toks);

/* Load a tokenizer.json from a file, or from memory (name is used in messages). */
kf_lopt_status kf_lopt_load(const char *path, kf_lopt_tokenizer **out, kf_lopt_error *err);
kf_lopt_status kf_lopt_load_json(const char *json, size_t len, const char *name,
                                 kf_lopt_tokenizer **out, kf_lopt_error *err);
void kf_lopt_free(kf_lopt_tokenizer *tok);

/* Facts about a loaded tokenizer (for the CLI and tests). */
typedef struct kf_lopt_info {
  size_t vocab_size;      /* model vocabulary entries */
  size_t n_merges;
  size_t n_added;         /* added tokens (special or not) */
  int normalizer_nfc;     /* 1 if the NFC normalizer is applied */
  int byte_level;         /* 1 if the ByteLevel byte->char mapping is used */
  int parallel_safe;      /* 1 if LoPT may cut inside text (else it falls back to sequential) */
  const char *pattern;    /* the split regex as given in the file (NULL if none) */
  int general;            /* 1: the general (sequential) pipeline, not the LoPT fast path */
  const char *unicode_regex; /* Unicode version of the regex classes (the reference's) */
  const char *unicode_norm;  /* Unicode version of the normalization tables (the reference's) */
} kf_lopt_info;
void kf_lopt_get_info(const kf_lopt_tokenizer *tok, kf_lopt_info *info);

/* Sequential encode of len bytes (any bytes; invalid UTF-8 is repaired as described above).
 * Inputs must be shorter than 4 GiB. */
kf_lopt_status kf_lopt_encode(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                              kf_lopt_tokens *out, kf_lopt_error *err);

/* Encode with flags: KF_LOPT_ADD_SPECIAL adds the post-processor's tokens (BOS/EOS, the
 * reference's add_special_tokens = true); KF_LOPT_SPECIAL_AS_TEXT does not match special added
 * tokens in the text (the reference's encode_special_tokens). pool NULL: sequential. */
enum { KF_LOPT_ADD_SPECIAL = 1u, KF_LOPT_SPECIAL_AS_TEXT = 2u };
kf_lopt_status kf_lopt_encode_ex(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                                 unsigned flags, kf_lopt_tokens *out, kf_lopt_error *err);
struct kf_lopt_par_opts;
struct kf_lopt_par_stats;
kf_lopt_status kf_lopt_encode_parallel_ex(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                          const char *text, size_t len, unsigned flags,
                                          const struct kf_lopt_par_opts *opts,
                                          kf_lopt_tokens *out, struct kf_lopt_par_stats *stats,
                                          kf_lopt_error *err);

/* Decode ids as the reference does (decode(ids, skip_special_tokens = false)): the file's
 * decoder chain, or the tokens joined by spaces when it has none. kf_lopt_decode_bytes: the
 * raw bytes of the tokens (byte-level models: exact bytes, no U+FFFD). */
kf_lopt_status kf_lopt_decode_bytes(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                                    char **out, size_t *out_len, kf_lopt_error *err);
/* Decode with skip_special = 1: special added tokens are dropped (skip_special_tokens). */
kf_lopt_status kf_lopt_decode_ex(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                                 int skip_special, char **out, size_t *out_len,
                                 kf_lopt_error *err);
/* Decode ids to bytes (malloc'd, NUL-terminated for convenience; *out_len excludes the NUL).
 * Special tokens are kept. Unknown ids are an error naming the index. */
kf_lopt_status kf_lopt_decode(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                              char **out, size_t *out_len, kf_lopt_error *err);

/* Thread pool: n_threads >= 1 workers including the caller (n_threads - 1 pthreads). */
kf_lopt_status kf_lopt_pool_create(int n_threads, kf_lopt_pool **out, kf_lopt_error *err);
int kf_lopt_pool_threads(const kf_lopt_pool *pool);
void kf_lopt_pool_free(kf_lopt_pool *pool);
/* A pool serves one kf_lopt_encode_parallel / _naive call at a time. It keeps the chunk token
 * buffers of the last LoPT call (about 12 bytes per token of that text) for reuse by the next;
 * kf_lopt_pool_trim releases them now (kf_lopt_pool_free always does). */
void kf_lopt_pool_trim(kf_lopt_pool *pool);

typedef struct kf_lopt_par_opts {
  int chunks_per_thread;  /* > 0: chunks = threads * chunks_per_thread, of equal length;
                             0: guided: the text is one region per thread, cut into chunks of
                             half of what is left of the region (down to min_chunk_bytes). Each
                             thread takes its region's chunks in order, then the last chunks of
                             the others' (so each word cache sees mostly one part of the text,
                             and the short tail chunks balance the load) */
  size_t chunk_bytes;     /* fixed chunk length; 0 = adaptive (as above), at least min_chunk */
  size_t min_chunk_bytes; /* adaptive lower bound (default 16 KiB when 0) */
  size_t overlap_bytes;   /* initial overlap (default 256 when 0) */
  int max_rounds;         /* overlap doublings before the sequential fallback (default 6) */
  uint64_t seed;          /* if nonzero: random chunk lengths in [chunk/4, 2*chunk] (testing) */
  size_t prepare_block_bytes; /* text stage (UTF-8 repair, added tokens, NFC) on the pool in
                                 blocks of this length; 0 = automatic (parallel from 256 KiB) */
} kf_lopt_par_opts;

typedef struct kf_lopt_par_stats {
  size_t n_chunks;        /* chunks tokenized in the first round */
  size_t n_cuts_clean;    /* cuts that fell on added-token / piece boundaries (no merge needed) */
  size_t n_cuts_matched;  /* cuts joined at a matching token in the overlap */
  size_t n_retries;       /* overlap widenings */
  size_t n_fallbacks;     /* cuts resolved by sequential tokenization of the span */
  double t_prepare;       /* s, wall: text stage (UTF-8 repair, added tokens, NFC) */
  double t_chunks;        /* s, wall: parallel chunk tokenization */
  double t_join;          /* s, wall: joins, retries, fallbacks, output copy, cleanup */
  double cpu_worker_max;  /* s, thread CPU time of the busiest worker (sum of its chunks) */
  double cpu_chunk_sum;   /* s, thread CPU time of all chunks */
} kf_lopt_par_stats;

/* LoPT: identical output to kf_lopt_encode. opts and stats may be NULL. */
kf_lopt_status kf_lopt_encode_parallel(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                       const char *text, size_t len,
                                       const kf_lopt_par_opts *opts, kf_lopt_tokens *out,
                                       kf_lopt_par_stats *stats, kf_lopt_error *err);

/* Naive lossy baseline: cut into threads*chunks_per_thread pieces at UTF-8 boundaries, no
 * overlap, tokenize each independently, concatenate. */
kf_lopt_status kf_lopt_encode_naive(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                    const char *text, size_t len, const kf_lopt_par_opts *opts,
                                    kf_lopt_tokens *out, kf_lopt_error *err);

/* Count tokens of a that are not in b (both sorted by start), comparing (start, end, id). */
size_t kf_lopt_tokens_diff(const kf_lopt_tokens *a, const kf_lopt_tokens *b);

const char *kf_lopt_status_name(kf_lopt_status s);

#ifdef __cplusplus
}
#endif
#endif

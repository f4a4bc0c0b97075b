/* kf_lopt internals: shared by kf_lopt_load.c, kf_lopt_text.c, kf_lopt_bpe.c, kf_lopt_encode.c. */
#ifndef KF_LOPT_INT_H
#define KF_LOPT_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kf_lopt.h"

#include <stdarg.h>
#include <stdint.h>

kf_lopt_status kf_lopt_fail(kf_lopt_error *err, kf_lopt_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- byte-string -> u32 hash map (open addressing, grows) ---- */
typedef struct lopt_strmap {
  uint64_t *hash;   /* per slot; 0 = empty (hashes are forced nonzero) */
  uint32_t *off;    /* key offset into pool */
  uint32_t *len;
  uint32_t *val;
  size_t mask;      /* slots - 1 */
  size_t n;
  char *pool;
  size_t pool_len, pool_cap;
} lopt_strmap;

uint64_t lopt_hash_bytes(const void *p, size_t n);
int lopt_strmap_init(lopt_strmap *m, size_t expect);
void lopt_strmap_free(lopt_strmap *m);
/* Insert or overwrite. Returns 0 on success, -1 on ENOMEM. */
int lopt_strmap_put(lopt_strmap *m, const char *key, size_t n, uint32_t val);
/* Returns 1 and *val if found. */
int lopt_strmap_get(const lopt_strmap *m, const char *key, size_t n, uint32_t *val);

/* ---- merge map: (left id, right id) -> (rank, new id) ---- */
typedef struct lopt_merge_slot {
  uint64_t key;    /* (a << 32 | b) + 1; 0 = empty */
  uint64_t val;    /* rank << 32 | new_id */
} lopt_merge_slot;
typedef struct lopt_mergemap {
  lopt_merge_slot *slot; /* key and value side by side: one cache line per probe */
  size_t mask;
  size_t n;
} lopt_mergemap;

int lopt_mergemap_init(lopt_mergemap *m, size_t expect);
void lopt_mergemap_free(lopt_mergemap *m);
void lopt_mergemap_put(lopt_mergemap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t new_id);
static inline int lopt_mergemap_get(const lopt_mergemap *m, uint32_t a, uint32_t b,
                                    uint32_t *rank, uint32_t *new_id) {
  uint64_t k = (((uint64_t)a << 32) | b) + 1;
  uint64_t h = k * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 20) & m->mask;
  for (;;) {
    uint64_t s = m->slot[i].key;
    if (s == k) {
      *rank = (uint32_t)(m->slot[i].val >> 32);
      *new_id = (uint32_t)m->slot[i].val;
      return 1;
    }
    if (s == 0) return 0;
    i = (i + 1) & m->mask;
  }
}

/* ---- added tokens ---- */
typedef struct lopt_added {
  char *content;      /* as matched: raw, or NFC-normalized if normalized */
  uint32_t len;
  uint32_t id;
  uint8_t single_word, lstrip, rstrip, normalized, special;
} lopt_added;

/* Per-first-byte candidate lists, longest first (leftmost-longest matching). */
typedef struct lopt_added_set {
  uint32_t *idx;        /* indices into tok->added */
  uint32_t first[257];  /* idx[first[b] .. first[b+1]) start with byte b */
  size_t n;
  uint32_t max_len;
} lopt_added_set;

/* ---- the general pipeline (kf_lopt_pipe.c), for files the fast path does not cover ---- */
enum { LN_NF = 1, LN_REPLACE, LN_PREPEND, LN_STRIP, LN_LOWERCASE };
typedef struct lopt_norm_op {
  int kind;
  int form;             /* LN_NF: LOPT_NF_* */
  pcre2_code *re;       /* LN_REPLACE */
  char *content;        /* LN_REPLACE, LN_PREPEND */
  size_t content_n;
  int left, right;      /* LN_STRIP */
} lopt_norm_op;

enum { LP_SPLIT = 1, LP_BYTELEVEL, LP_METASPACE, LP_DIGITS, LP_PUNCT, LP_WHITESPACE, LP_WSSPLIT };
enum { LB_REMOVED = 1, LB_ISOLATED, LB_PREV, LB_NEXT, LB_CONTIGUOUS };
enum { LM_ALWAYS = 1, LM_FIRST, LM_NEVER };
typedef struct lopt_pre_op {
  int kind;
  pcre2_code *re;       /* LP_SPLIT, LP_BYTELEVEL (use_regex), LP_WHITESPACE */
  int behavior, invert; /* LP_SPLIT, LP_PUNCT, LP_DIGITS */
  int add_prefix_space; /* LP_BYTELEVEL */
  char *repl;           /* LP_METASPACE */
  size_t repl_n;
  int prepend_scheme, split;
  int individual;       /* LP_DIGITS */
} lopt_pre_op;

enum { LD_BYTELEVEL = 1, LD_REPLACE, LD_BYTEFALLBACK, LD_FUSE, LD_STRIP, LD_METASPACE };
typedef struct lopt_dec_op {
  int kind;
  char *pat, *content;  /* LD_REPLACE (a plain string pattern); LD_STRIP content; LD_METASPACE */
  size_t pat_n, content_n;
  int start, stop;      /* LD_STRIP */
  int prepend_scheme;   /* LD_METASPACE */
} lopt_dec_op;

struct kf_lopt_tokenizer {
  char name[256];
  /* vocabulary */
  lopt_strmap vocab;       /* model-space key (raw bytes when byte_level) -> id */
  size_t vocab_size;
  uint32_t n_ids;          /* max id + 1 over vocab and added tokens */
  uint32_t *id_off;        /* decode bytes of each id: pool[id_off[id] .. + id_len[id]] */
  uint32_t *id_len;
  uint8_t *id_known;
  char *id_pool;
  size_t id_pool_len;
  lopt_mergemap merges;
  size_t n_merges;
  int byte_level;
  uint32_t byte_id[256];   /* byte_level: id of the 1-char token of each byte */
  uint32_t bl_cp[256];     /* byte_level: the code point each byte maps to */
  uint8_t byte_has[256];
  int byte_fallback;
  uint32_t fallback_id[256]; /* "<0xXX>" ids */
  uint8_t fallback_has[256];
  int ignore_merges;
  int has_unk;
  uint32_t unk_id;
  int fuse_unk;
  /* normalizer */
  int nfc;                 /* LOPT_NF_*: the Unicode normalization form (fast path) */
  /* pre-tokenizer */
  char *pattern;           /* as written in the file */
  pcre2_code *re;
  int parallel_safe;
  /* added tokens */
  lopt_added *added;
  size_t n_added;
  lopt_added_set raw_set;   /* normalized == false: matched on the input */
  lopt_added_set norm_set;  /* normalized == true: matched on normalized pieces */
  pcre2_code *re_word;      /* one word character (single_word) */
  lopt_added_set raw_set_ns, norm_set_ns; /* the same without special tokens (special as text) */
  int drop_gaps;            /* fast path: Split Removed + invert: text no match covers is dropped */
  /* general pipeline */
  int generic;              /* 1: encode with kf_lopt_pipe.c (sequential), not the fast path */
  lopt_norm_op *norm_ops;
  size_t n_norm_ops;
  lopt_pre_op *pre_ops;
  size_t n_pre_ops;
  lopt_dec_op *dec_ops;
  size_t n_dec_ops;
  int has_decoder;
  uint32_t *raw_off, *raw_len; /* each id's string as written in the file (decoders start there) */
  char *raw_pool;
  size_t raw_pool_len;
  /* post-processor (TemplateProcessing "single"): ids before and after the sequence */
  uint32_t *tpl_pre, *tpl_post;
  size_t n_tpl_pre, n_tpl_post;
  char norm_desc[96], pre_desc[160]; /* for kf_lopt_get_info */
};

typedef struct lopt_scratch lopt_scratch;
struct lopt_chunk;
/* ---- regex translation and Unicode classes (kf_lopt_regex.c) ---- */
int lopt_translate_pattern(const char *in, size_t n, char **out, char *why, size_t why_n);
/* Compile a tokenizer.json pattern (literal: a "String" pattern); NULL with why on failure. */
pcre2_code *lopt_compile_pattern(const char *pat, size_t n, int literal, char *why, size_t why_n);
const char *lopt_general_category(uint32_t cp);
int lopt_is_punct8(uint32_t cp);
int lopt_to_lower(uint32_t cp, uint32_t out[3]);

/* ---- strict JSON check (kf_lopt_json.c): 0, or -1 with msg naming the JSON path ---- */
int lopt_json_check(const char *s, size_t n, char *msg, size_t msg_n);

/* ---- the general pipeline ---- */
kf_lopt_status lopt_generic_encode(const kf_lopt_tokenizer *tok, const char *text, size_t len,
                                   kf_lopt_tokens *out, kf_lopt_error *err);
void lopt_pipe_free(kf_lopt_tokenizer *tok);
/* in[0..n) through the normalizer ops (malloc'd, NUL-terminated); -1 on ENOMEM. */
int lopt_normalize_bytes(const kf_lopt_tokenizer *tok, const char *in, size_t n, char **out,
                         size_t *out_n);
kf_lopt_status lopt_generic_decode(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                                   int skip_special, char **out, size_t *out_len,
                                   kf_lopt_error *err);
/* Tokens of one word w[0..n) (model-space bytes), offsets relative to w, appended to c. */
int lopt_encode_word(const kf_lopt_tokenizer *tok, lopt_scratch *s, const unsigned char *w,
                     uint32_t n, struct lopt_chunk *c);

/* ---- text stage (kf_lopt_text.c) ---- */

/* Changed regions of a text transform: new [nstart, nend) came from original [ostart, oend). */
typedef struct lopt_map {
  uint32_t *nstart, *nend, *ostart, *oend;
  size_t n, cap;
} lopt_map;
void lopt_map_free(lopt_map *m);
uint32_t lopt_map_pos(const lopt_map *m, uint32_t pos, int is_end);

/* Returns 1 if s[0..n) is valid UTF-8. */
int lopt_utf8_valid(const unsigned char *s, size_t n);
/* WHATWG decode-with-replacement of s into a new buffer (U+FFFD per maximal invalid subpart). */
int lopt_utf8_repair(const unsigned char *s, size_t n, char **out, size_t *out_n, lopt_map *map);
/* Decode one code point of valid UTF-8 at s (n bytes left); returns its length. */
static inline int lopt_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80 || n < 2) {
    *cp = c;
    return 1;
  }
  if (c < 0xE0) {
    *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    return 2;
  }
  if (c < 0xF0 || n < 4) {
    *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return 3;
  }
  *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
  return 4;
}
int lopt_utf8_put(uint32_t cp, char *out);
int lopt_is_white_space(uint32_t cp);

/* Unicode normalization forms (tables: Unicode KF_UNICODE_NORM_VERSION, the reference's). */
enum { LOPT_NF_NONE = 0, LOPT_NF_NFC, LOPT_NF_NFD, LOPT_NF_NFKC, LOPT_NF_NFKD };
int lopt_nfc_inert(int form, uint32_t cp);
const char *lopt_unicode_norm_version(void);
const char *lopt_unicode_regex_version(void);
/* 1 if text[0..n) (valid UTF-8) has any code point that is not inert for the form. */
int lopt_nfc_maybe(int form, const unsigned char *s, size_t n);
/* Normalize s[0..n) (valid UTF-8) to the form, appending to *buf; records changed regions in
 * map with original positions offset by base and new positions offset by *buf_len at entry. */
int lopt_nfc_append(int form, const unsigned char *s, size_t n, uint32_t base, char **buf,
                    size_t *buf_len, size_t *buf_cap, lopt_map *map);

/* ---- pieces: the text split at added tokens ---- */
typedef struct lopt_piece {
  uint32_t start, end;  /* in the final (repaired, normalized) text */
  int64_t added;        /* added token id, or -1 for text */
} lopt_piece;

typedef struct lopt_pieces {
  lopt_piece *p;
  size_t n, cap;
} lopt_pieces;

/* The prepared text: final bytes, pieces, and maps back to the input. */
typedef struct lopt_prepared {
  const char *text;    /* final text (may point into the input) */
  size_t len;
  char *owned1, *owned2;
  lopt_map map_repair; /* final-after-repair -> input */
  lopt_map map_nfc;    /* final -> after-repair */
  lopt_pieces pieces;
} lopt_prepared;

/* known_valid / known_nfc_clean: 1 if the caller already scanned the input (in parallel) and
 * found it valid UTF-8 / free of non-inert code points; 0 = check here. */
kf_lopt_status lopt_prepare(const kf_lopt_tokenizer *tok, const char *in, size_t len,
                            int known_valid, int known_nfc_clean, lopt_prepared *pp,
                            kf_lopt_error *err);
void lopt_prepared_free(lopt_prepared *pp);
/* The same result as lopt_prepare, computed in blocks of about `block` bytes on the pool
 * (kf_lopt_encode.c). */
kf_lopt_status lopt_prepare_parallel(const kf_lopt_tokenizer *tok, kf_lopt_pool *pool,
                                     const char *in, size_t len, size_t block,
                                     lopt_prepared *pp, kf_lopt_error *err);

int lopt_split_added(const kf_lopt_tokenizer *tok, const lopt_added_set *set,
                     const unsigned char *s, uint32_t lo, uint32_t hi, lopt_pieces *out);
/* Split the pieces of pp at normalized added tokens (after NFC). Returns 0, or -1 on ENOMEM. */
int lopt_split_normalized(const kf_lopt_tokenizer *tok, lopt_prepared *pp);

/* ---- the text stage in blocks, for the parallel prepare (kf_lopt_encode.c runs them) ---- */
typedef struct lopt_u32vec {
  uint32_t *v;
  size_t n, cap;
} lopt_u32vec;
int lopt_u32vec_push(lopt_u32vec *v, uint32_t x);

/* Append src's regions shifted by new_shift (new side) and old_shift (old side). */
int lopt_map_append(lopt_map *dst, const lopt_map *src, uint32_t new_shift, uint32_t old_shift);

/* Sorted positions in s[0, n) that may start a raw added token: every position where a token
 * matches within s[0, n), plus every position within the longest token's length of n whose byte
 * starts some token (a token there may continue past n). Appends to out; -1 on ENOMEM. */
int lopt_added_candidates(const kf_lopt_tokenizer *tok, const unsigned char *s, uint32_t n,
                          lopt_u32vec *out);
/* Pieces of s[0, n) split at raw added tokens, trying matches only at the candidates (which must
 * include every position where a raw added token matches in s[0, n)). */
int lopt_split_added_cand(const kf_lopt_tokenizer *tok, const unsigned char *s, uint32_t n,
                          const uint32_t *cand, size_t n_cand, lopt_pieces *out);

/* Input block [in_lo, in_hi), cut before bytes that are not UTF-8 continuation bytes: repaired
 * on its own (same bytes as repairing the whole input), checked for NFC work, searched for added
 * token candidates. Positions in map and cands are block-local. */
typedef struct lopt_text_block {
  size_t in_lo, in_hi;
  char *repaired;      /* NULL if the block is valid UTF-8 (its text is the input slice) */
  size_t len;          /* bytes after repair */
  lopt_map map;        /* repair regions, block-local on both sides */
  lopt_u32vec cands;
  int nfc_maybe;
  int failed;
} lopt_text_block;
int lopt_text_block_scan(const kf_lopt_tokenizer *tok, const unsigned char *in,
                         lopt_text_block *b);
void lopt_text_block_free(lopt_text_block *b);

/* First position >= x in s[0, n) before which NFC may cut: a character start whose code point is
 * inert (UAX #15: a normalization boundary precedes every inert character), or n. */
size_t lopt_nfc_cut(int form, const unsigned char *s, size_t n, size_t x);

/* NFC of the repaired text's range [lo, hi) (both NFC cuts or piece edges): text pieces are
 * normalized, added pieces copied. map: new side block-local, old side global. new_start[i] gets
 * the block-local output position of each piece i that starts in [lo, hi). */
typedef struct lopt_nfc_block {
  uint32_t lo, hi;
  char *buf;
  size_t len, cap;
  lopt_map map;
  int failed;
} lopt_nfc_block;
int lopt_nfc_block_run(int form, const unsigned char *s, const lopt_pieces *ps,
                       lopt_nfc_block *b, uint32_t *new_start);

/* ---- chunk tokenization (kf_lopt_bpe.c) ---- */
lopt_scratch *lopt_scratch_new(const kf_lopt_tokenizer *tok);
void lopt_scratch_free(lopt_scratch *s);

/* Tokens of a range plus the segment (pre-token / added token) starts, which are the only places
 * a LoPT join may happen. */
typedef struct lopt_chunk {
  kf_lopt_tokens toks;   /* offsets in final-text coordinates */
  uint32_t *seg_pos;     /* segment start positions, increasing */
  uint32_t *seg_tok;     /* index of the segment's first token */
  size_t n_seg, cap_seg;
  uint32_t from, to;     /* requested range */
  uint32_t frontier;     /* tokens are exact for segments starting before this */
  int huge_pages;        /* toks are the caller's output: huge-page hint when they grow */
  uint32_t seg_skip_from, seg_skip_to; /* segments starting in [from, to) are not recorded (only
                                          joins near the chunk's ends need them); 0, 0 = all */
  int failed;            /* ENOMEM */
} lopt_chunk;
void lopt_chunk_free(lopt_chunk *c);
/* Empty c for reuse, keeping its buffers. */
void lopt_chunk_reset(lopt_chunk *c);
void lopt_chunk_truncate(lopt_chunk *c, size_t n_seg);

/* Tokenize final-text range [from, to) (from a segment start or chunk cut at a char boundary)
 * and append to c. A piece cut by `to` is matched with hard partial matching; c->frontier is
 * set to where the result stops being provably exact. Returns 0, or -1 on ENOMEM. */
int lopt_encode_range(const kf_lopt_tokenizer *tok, lopt_scratch *s, const lopt_prepared *pp,
                      uint32_t from, uint32_t to, lopt_chunk *c);

/* Grow token arrays by doubling / to exactly need; huge: add the huge-page hint (only for the
 * caller's output arrays). */
int lopt_tokens_reserve(kf_lopt_tokens *t, size_t need, int huge);
int lopt_tokens_reserve_exact(kf_lopt_tokens *t, size_t need, int huge);
/* Huge-page hint for heap blocks of at least LOPT_HUGE_MIN bytes (no effect on smaller ones). */
enum { LOPT_HUGE_MIN = 4 << 20 };
void lopt_hint_huge(void *p, size_t bytes);
size_t lopt_find_piece(const lopt_pieces *ps, uint32_t pos);

#endif

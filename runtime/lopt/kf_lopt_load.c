/* kf_lopt loader: tokenizer.json (cJSON) -> kf_lopt_tokenizer. */
#include "kf_lopt_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kf_lopt_status kf_lopt_fail(kf_lopt_error *err, kf_lopt_status s, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = s;
  }
  return s;
}

const char *kf_lopt_status_name(kf_lopt_status s) {
  switch (s) {
  case KF_LOPT_OK: return "ok";
  case KF_LOPT_EINVAL: return "invalid argument";
  case KF_LOPT_ENOMEM: return "out of memory";
  case KF_LOPT_EIO: return "I/O error";
  case KF_LOPT_EPARSE: return "parse error";
  case KF_LOPT_EUNSUPPORTED: return "unsupported";
  case KF_LOPT_ETHREAD: return "thread error";
  }
  return "unknown status";
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. */
static void byte_level_table(uint32_t cp_of_byte[256]) {
  uint32_t next = 256;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    cp_of_byte[b] = keep ? (uint32_t)b : next++;
  }
}

/* Model-space string -> bytes the tokenizer works on. For byte-level models every character
 * must be in the byte alphabet (returns -1 otherwise); else the string is copied. */
static int unmap(const kf_lopt_tokenizer *tok, const int16_t *byte_of_cp, const char *s, size_t n,
                 char *out, size_t *out_n) {
  if (!tok->byte_level) {
    memcpy(out, s, n);
    *out_n = n;
    return 0;
  }
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += (size_t)lopt_utf8_next((const unsigned char *)s + i, n - i, &cp);
    if (cp >= 0x144 || byte_of_cp[cp] < 0) return -1;
    out[j++] = (char)byte_of_cp[cp];
  }
  *out_n = j;
  return 0;
}

/* Decode form of a model-space string, as the reference's ByteLevel decoder does it: characters
 * of the byte alphabet become their byte, any other character stays as its UTF-8. */
static size_t decode_form(const kf_lopt_tokenizer *tok, const int16_t *byte_of_cp, const char *s,
                          size_t n, char *out) {
  if (!tok->byte_level) {
    memcpy(out, s, n);
    return n;
  }
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int k = lopt_utf8_next((const unsigned char *)s + i, n - i, &cp);
    if (cp < 0x144 && byte_of_cp[cp] >= 0) out[j++] = (char)byte_of_cp[cp];
    else {
      memcpy(out + j, s + i, (size_t)k);
      j += (size_t)k;
    }
    i += (size_t)k;
  }
  return j;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct load_ctx {
  kf_lopt_tokenizer *tok;
  kf_lopt_error *err;
  const char *name;
} load_ctx;

static int json_bool(const cJSON *obj, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  return dflt;
}

static const char *json_type(const cJSON *obj) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
  return cJSON_IsString(t) ? t->valuestring : NULL;
}

static const char *json_str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_int(const cJSON *obj, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e6) return (int)v->valuedouble;
  return dflt;
}

static char *dup_str(const char *s, size_t *n) {
  size_t k = strlen(s);
  char *d = malloc(k + 1);
  if (d) memcpy(d, s, k + 1);
  if (n) *n = k;
  return d;
}

/* {"String": s} or {"Regex": r} -> compiled pattern; where names the field in messages. */
static kf_lopt_status load_pattern(load_ctx *L, const cJSON *pat, const char *where,
                                   pcre2_code **re) {
  const char *rx = json_str(pat, "Regex"), *st = json_str(pat, "String");
  if (!rx && !st)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE,
                        "%s: %s must be {\"Regex\": ...} or {\"String\": ...}", L->name, where);
  char why[240];
  const char *p = rx ? rx : st;
  *re = lopt_compile_pattern(p, strlen(p), rx == NULL, why, sizeof why);
  if (!*re)
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED, "%s: %s: regex %s", L->name, where, why);
  return KF_LOPT_OK;
}

static kf_lopt_status ops_grow(load_ctx *L, void **v, size_t n, size_t elem) {
  void *g = realloc(*v, (n + 1) * elem);
  if (!g) return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
  memset((char *)g + n * elem, 0, elem);
  *v = g;
  return KF_LOPT_OK;
}

typedef kf_lopt_status (*stage_fn)(load_ctx *L, const cJSON *obj, const char *where);

/* A Sequence stage: obj[key] is an array whose items each load with fn (paths where.key[i]). */
static kf_lopt_status load_seq(load_ctx *L, const cJSON *obj, const char *key, const char *where,
                               stage_fn fn) {
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsArray(list))
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s.%s must be an array", L->name, where, key);
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, list) {
    char w[200];
    snprintf(w, sizeof w, "%.150s.%s[%d]", where, key, i++);
    kf_lopt_status s = fn(L, it, w);
    if (s) return s;
  }
  return KF_LOPT_OK;
}

static kf_lopt_status load_normalizer(load_ctx *L, const cJSON *nz, const char *where) {
  kf_lopt_tokenizer *tok = L->tok;
  if (!nz || cJSON_IsNull(nz)) return KF_LOPT_OK;
  const char *type = json_type(nz);
  if (!type)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s has no \"type\"", L->name, where);
  if (strcmp(type, "Sequence") == 0) return load_seq(L, nz, "normalizers", where, load_normalizer);
  kf_lopt_status st = ops_grow(L, (void **)&tok->norm_ops, tok->n_norm_ops, sizeof *tok->norm_ops);
  if (st) return st;
  lopt_norm_op *op = &tok->norm_ops[tok->n_norm_ops];
  static const char *const nf[] = {"NFC", "NFD", "NFKC", "NFKD"};
  for (int f = 0; f < 4; f++)
    if (strcmp(type, nf[f]) == 0) {
      op->kind = LN_NF;
      op->form = LOPT_NF_NFC + f;
    }
  if (strcmp(type, "Replace") == 0) {
    const char *content = json_str(nz, "content");
    char w[180];
    snprintf(w, sizeof w, "%s.pattern", where);
    if (!content)
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s.content must be a string", L->name,
                          where);
    st = load_pattern(L, cJSON_GetObjectItemCaseSensitive(nz, "pattern"), w, &op->re);
    if (st) return st;
    op->kind = LN_REPLACE;
    if (!(op->content = dup_str(content, &op->content_n)))
      return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
  } else if (strcmp(type, "Prepend") == 0) {
    const char *content = json_str(nz, "prepend");
    if (!content)
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s.prepend must be a string", L->name,
                          where);
    op->kind = LN_PREPEND;
    if (!(op->content = dup_str(content, &op->content_n)))
      return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
  } else if (strcmp(type, "Lowercase") == 0) {
    op->kind = LN_LOWERCASE;
  } else if (strcmp(type, "Strip") == 0) {
    op->kind = LN_STRIP;
    op->left = json_bool(nz, "strip_left", 1);
    op->right = json_bool(nz, "strip_right", 1);
  }
  if (!op->kind) {
    pcre2_code_free(op->re);
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                        "%s: %s type \"%s\" is not supported (kf_lopt implements NFC, NFD, NFKC, "
                        "NFKD, Replace, Prepend, Strip, Lowercase and Sequence)",
                        L->name, where, type);
  }
  tok->n_norm_ops++;
  return KF_LOPT_OK;
}

static int behavior_of(const char *b) {
  static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                      "MergedWithNext", "Contiguous"};
  for (int i = 0; i < 5; i++)
    if (b && strcmp(b, names[i]) == 0) return LB_REMOVED + i;
  return 0;
}

static kf_lopt_status load_pretok(load_ctx *L, const cJSON *pt, const char *where) {
  kf_lopt_tokenizer *tok = L->tok;
  if (!pt || cJSON_IsNull(pt)) return KF_LOPT_OK;
  const char *type = json_type(pt);
  if (!type)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s has no \"type\"", L->name, where);
  if (strcmp(type, "Sequence") == 0) return load_seq(L, pt, "pretokenizers", where, load_pretok);
  kf_lopt_status st = ops_grow(L, (void **)&tok->pre_ops, tok->n_pre_ops, sizeof *tok->pre_ops);
  if (st) return st;
  lopt_pre_op *op = &tok->pre_ops[tok->n_pre_ops];
  char why[240];
  if (strcmp(type, "ByteLevel") == 0) {
    op->kind = LP_BYTELEVEL;
    op->add_prefix_space = json_bool(pt, "add_prefix_space", 1);
    if (json_bool(pt, "use_regex", 1) &&
        !(op->re = lopt_compile_pattern(GPT2_PATTERN, strlen(GPT2_PATTERN), 0, why, sizeof why)))
      return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "%s: %s: %s", L->name, where, why);
    tok->byte_level = 1;
  } else if (strcmp(type, "Split") == 0) {
    const char *beh = json_str(pt, "behavior");
    op->kind = LP_SPLIT;
    op->behavior = behavior_of(beh);
    op->invert = json_bool(pt, "invert", 0);
    if (!op->behavior)
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE,
                          "%s: %s.behavior \"%s\" is not one of Removed, Isolated, "
                          "MergedWithPrevious, MergedWithNext, Contiguous",
                          L->name, where, beh ? beh : "(missing)");
    char w[180];
    snprintf(w, sizeof w, "%s.pattern", where);
    st = load_pattern(L, cJSON_GetObjectItemCaseSensitive(pt, "pattern"), w, &op->re);
    if (st) return st;
  } else if (strcmp(type, "Metaspace") == 0) {
    const char *repl = json_str(pt, "replacement");
    const char *scheme = json_str(pt, "prepend_scheme");
    op->kind = LP_METASPACE;
    if (!(op->repl = dup_str(repl ? repl : "\xE2\x96\x81", &op->repl_n)))
      return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
    op->split = json_bool(pt, "split", 1);
    op->prepend_scheme = !scheme ? (json_bool(pt, "add_prefix_space", 1) ? LM_ALWAYS : LM_NEVER)
                         : strcmp(scheme, "first") == 0 ? LM_FIRST
                         : strcmp(scheme, "never") == 0 ? LM_NEVER : LM_ALWAYS;
  } else if (strcmp(type, "Digits") == 0) {
    op->kind = LP_DIGITS;
    op->individual = json_bool(pt, "individual_digits", 0);
  } else if (strcmp(type, "Punctuation") == 0) {
    op->kind = LP_PUNCT;
    op->behavior = behavior_of(json_str(pt, "behavior"));
    if (!op->behavior) op->behavior = LB_ISOLATED;
  } else if (strcmp(type, "Whitespace") == 0) {
    op->kind = LP_WHITESPACE;
    if (!(op->re = lopt_compile_pattern("\\w+|[^\\w\\s]+", 13, 0, why, sizeof why)))
      return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "%s: %s: %s", L->name, where, why);
  } else if (strcmp(type, "WhitespaceSplit") == 0) {
    op->kind = LP_WSSPLIT;
  } else {
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                        "%s: %s type \"%s\" is not supported (kf_lopt implements Split, "
                        "ByteLevel, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit "
                        "and Sequence)",
                        L->name, where, type);
  }
  tok->n_pre_ops++;
  return KF_LOPT_OK;
}

/* The fast path (parallel LoPT): at most one Unicode normalization form, then at most one
 * regex split (Isolated, or Removed with invert, i.e. only the matches) and ByteLevel without
 * its own regex, or ByteLevel with its regex alone, or no pre-tokenizer. */
static void choose_path(kf_lopt_tokenizer *tok) {
  tok->generic = 1;
  if (tok->n_norm_ops > 1 || (tok->n_norm_ops == 1 && tok->norm_ops[0].kind != LN_NF)) return;
  const lopt_pre_op *p = tok->pre_ops;
  size_t n = tok->n_pre_ops;
  pcre2_code *re = NULL;
  int drop = 0;
  if (n >= 1 && p[0].kind == LP_SPLIT) {
    if (p[0].behavior == LB_ISOLATED && !p[0].invert) drop = 0;
    else if (p[0].behavior == LB_REMOVED && p[0].invert) drop = 1;
    else return;
    re = p[0].re;
    p++;
    n--;
  }
  if (n == 1 && p[0].kind == LP_BYTELEVEL && !p[0].add_prefix_space && (!re || !p[0].re)) {
    if (!re) re = p[0].re;
  } else if (n != 0) {
    return;
  }
  tok->generic = 0;
  tok->re = re;
  tok->drop_gaps = drop;
  tok->nfc = tok->n_norm_ops ? tok->norm_ops[0].form : LOPT_NF_NONE;
}

/* Order for leftmost-longest matching: by first byte, then longest first. */
static int added_before(const kf_lopt_tokenizer *tok, uint32_t i, uint32_t j) {
  const lopt_added *x = &tok->added[i], *y = &tok->added[j];
  unsigned char fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
  if (fx != fy) return fx < fy;
  return x->len > y->len;
}

/* Added tokens with that normalized flag (no_special: without the special ones). */
static int build_added_set(kf_lopt_tokenizer *tok, int normalized, int no_special,
                           lopt_added_set *set) {
  memset(set, 0, sizeof *set);
#define ADDED_IN(a) ((a)->normalized == normalized && (a)->len && !(no_special && (a)->special))
  for (size_t i = 0; i < tok->n_added; i++)
    if (ADDED_IN(&tok->added[i])) set->n++;
  set->idx = malloc((set->n + 1) * sizeof *set->idx);
  if (!set->idx) return -1;
  size_t k = 0;
  for (size_t i = 0; i < tok->n_added; i++)
    if (ADDED_IN(&tok->added[i])) {
      set->idx[k++] = (uint32_t)i;
      if (tok->added[i].len > set->max_len) set->max_len = tok->added[i].len;
    }
#undef ADDED_IN
  for (size_t i = 1; i < set->n; i++) { /* insertion sort: added tokens are few */
    uint32_t v = set->idx[i];
    size_t j = i;
    while (j > 0 && added_before(tok, v, set->idx[j - 1])) {
      set->idx[j] = set->idx[j - 1];
      j--;
    }
    set->idx[j] = v;
  }
  size_t j = 0;
  for (int b = 0; b < 256; b++) {
    set->first[b] = (uint32_t)j;
    while (j < set->n && (unsigned char)tok->added[set->idx[j]].content[0] == b) j++;
  }
  set->first[256] = (uint32_t)j;
  return 0;
}

static kf_lopt_status load_model(load_ctx *L, const cJSON *root, const int16_t *byte_of_cp) {
  kf_lopt_tokenizer *tok = L->tok;
  const char *name = L->name;
  kf_lopt_error *err = L->err;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsObject(model))
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: missing object \"model\"", name);
  const char *type = json_type(model);
  if (!type)
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: model.type is missing", name);
  if (strcmp(type, "BPE") != 0)
    return kf_lopt_fail(err, KF_LOPT_EUNSUPPORTED,
                        "%s: model.type \"%s\" is not supported (kf_lopt implements BPE)", name,
                        type);
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0.0)
    return kf_lopt_fail(err, KF_LOPT_EUNSUPPORTED,
                        "%s: model.dropout=%g is not supported (random merges)", name,
                        dropout->valuedouble);
  const char *affix[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, affix[i]);
    if (cJSON_IsString(v) && v->valuestring[0])
      return kf_lopt_fail(err, KF_LOPT_EUNSUPPORTED, "%s: model.%s=\"%s\" is not supported",
                          name, affix[i], v->valuestring);
  }
  tok->byte_fallback = json_bool(model, "byte_fallback", 0);
  tok->ignore_merges = json_bool(model, "ignore_merges", 0);
  tok->fuse_unk = json_bool(model, "fuse_unk", 0);
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsObject(vocab))
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: model.vocab must be an object", name);
  if (!cJSON_IsArray(merges))
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: model.merges must be an array", name);

  /* ids: vocab and added tokens */
  size_t n_vocab = 0;
  double max_id = -1;
  const cJSON *it;
  cJSON_ArrayForEach(it, vocab) {
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > (1 << 26) ||
        it->valuedouble != (double)(int64_t)it->valuedouble)
      return kf_lopt_fail(err, KF_LOPT_EPARSE,
                          "%s: model.vocab[\"%.60s\"]: id must be an integer in [0, 2^26]", name,
                          it->string);
    if (it->valuedouble > max_id) max_id = it->valuedouble;
    n_vocab++;
  }
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: added_tokens must be an array", name);
  size_t n_added = 0, pool_need = 0;
  if (cJSON_IsArray(added)) {
    int i = 0;
    cJSON_ArrayForEach(it, added) {
      const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
      const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
      if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > (1 << 26) ||
          !cJSON_IsString(content))
        return kf_lopt_fail(err, KF_LOPT_EPARSE,
                            "%s: added_tokens[%d] needs an integer \"id\" in [0, 2^26] and a "
                            "string \"content\"",
                            name, i);
      if (id->valuedouble > max_id) max_id = id->valuedouble;
      pool_need += strlen(content->valuestring) * 4 + 4;
      n_added++;
      i++;
    }
  }
  tok->vocab_size = n_vocab;
  tok->n_ids = (uint32_t)(max_id + 1);
  tok->id_off = calloc(tok->n_ids + 1, sizeof *tok->id_off);
  tok->id_len = calloc(tok->n_ids + 1, sizeof *tok->id_len);
  tok->id_known = calloc(tok->n_ids + 1, 1);
  if (!tok->id_off || !tok->id_len || !tok->id_known || lopt_strmap_init(&tok->vocab, n_vocab) < 0)
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory for the vocabulary", name);
  cJSON_ArrayForEach(it, vocab) pool_need += strlen(it->string) + 1;
  pool_need += 256;
  tok->id_pool = malloc(pool_need + 1);
  if (!tok->id_pool) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
  size_t max_key = 64; /* scratch for one unmapped key or merge (no fixed cap on length) */
  cJSON_ArrayForEach(it, vocab) {
    size_t k = strlen(it->string);
    if (k > max_key) max_key = k;
  }
  cJSON_ArrayForEach(it, merges) {
    size_t k = cJSON_IsString(it) ? strlen(it->valuestring) : 0;
    if (cJSON_IsArray(it))
      for (const cJSON *e = it->child; e; e = e->next)
        if (cJSON_IsString(e)) k += strlen(e->valuestring);
    if (k > max_key) max_key = k;
  }
  size_t raw_need = 0;
  cJSON_ArrayForEach(it, vocab) raw_need += strlen(it->string);
  if (cJSON_IsArray(added))
    cJSON_ArrayForEach(it, added) raw_need += strlen(json_str(it, "content"));
  tok->raw_off = calloc(tok->n_ids + 1, sizeof *tok->raw_off);
  tok->raw_len = calloc(tok->n_ids + 1, sizeof *tok->raw_len);
  tok->raw_pool = malloc(raw_need + 1);
  char *tmp = malloc(4 * max_key + 64);
  if (!tmp || !tok->raw_off || !tok->raw_len || !tok->raw_pool) {
    free(tmp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
  }
  char *two0 = malloc(2 * max_key + 2);
  if (!two0) {
    free(tmp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
  }
  cJSON_ArrayForEach(it, vocab) {
    uint32_t id = (uint32_t)it->valuedouble;
    size_t klen = strlen(it->string), rn;
    if (tok->id_known[id]) {
      free(tmp);
      free(two0);
      return kf_lopt_fail(err, KF_LOPT_EPARSE,
                          "%s: model.vocab[\"%.60s\"]: id %u is already used by another entry "
                          "(duplicate id)",
                          name, it->string, id);
    }
    memcpy(tok->raw_pool + tok->raw_pool_len, it->string, klen);
    tok->raw_off[id] = (uint32_t)tok->raw_pool_len;
    tok->raw_len[id] = (uint32_t)klen;
    tok->raw_pool_len += klen;
    if (unmap(tok, byte_of_cp, it->string, klen, tmp, &rn) == 0) {
      if (lopt_strmap_put(&tok->vocab, tmp, rn, id) < 0) {
        free(tmp);
        return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
      }
    }
    size_t dn = decode_form(tok, byte_of_cp, it->string, klen, tok->id_pool + tok->id_pool_len);
    tok->id_off[id] = (uint32_t)tok->id_pool_len;
    tok->id_len[id] = (uint32_t)dn;
    tok->id_known[id] = 1;
    tok->id_pool_len += dn;
  }

  /* merges: rank = position; (left, right) -> (rank, id of left+right) */
  size_t n_merges = (size_t)cJSON_GetArraySize(merges);
  if (lopt_mergemap_init(&tok->merges, n_merges) < 0) {
    free(tmp);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory for merges", name);
  }
  size_t rank = 0;
  char *tb = tmp + 2 * max_key + 32;
  cJSON_ArrayForEach(it, merges) {
    const char *a, *b;
    size_t an, bn;
    char *two[2] = {two0, two0 + max_key + 1};
    if (cJSON_IsString(it)) {
      const char *sp = strchr(it->valuestring, ' ');
      if (!sp || strchr(sp + 1, ' ') || sp == it->valuestring || !sp[1]) {
        free(tmp);
        free(two0);
        return kf_lopt_fail(err, KF_LOPT_EPARSE,
                            "%s: model.merges[%zu] = \"%.60s\": expected \"left right\"", name,
                            rank, it->valuestring);
      }
      an = (size_t)(sp - it->valuestring);
      memcpy(two[0], it->valuestring, an);
      two[0][an] = 0;
      bn = strlen(sp + 1);
      memcpy(two[1], sp + 1, bn + 1);
      a = two[0];
      b = two[1];
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
               cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
      a = cJSON_GetArrayItem(it, 0)->valuestring;
      b = cJSON_GetArrayItem(it, 1)->valuestring;
      an = strlen(a);
      bn = strlen(b);
    } else {
      free(tmp);
      free(two0);
      return kf_lopt_fail(err, KF_LOPT_EPARSE,
                          "%s: model.merges[%zu]: expected \"left right\" or [\"left\", \"right\"]",
                          name, rank);
    }
    uint32_t ida, idb, idn;
    size_t ra, rb;
    const char *missing = NULL;
    if (unmap(tok, byte_of_cp, a, an, tmp, &ra) < 0 ||
        !lopt_strmap_get(&tok->vocab, tmp, ra, &ida))
      missing = a;
    else if (unmap(tok, byte_of_cp, b, bn, tb, &rb) < 0 ||
             !lopt_strmap_get(&tok->vocab, tb, rb, &idb))
      missing = b;
    else {
      memcpy(tmp + ra, tb, rb);
      if (!lopt_strmap_get(&tok->vocab, tmp, ra + rb, &idn)) missing = "(left+right)";
    }
    if (missing) {
      kf_lopt_status s = kf_lopt_fail(
          err, KF_LOPT_EPARSE, "%s: model.merges[%zu] (\"%.40s\" \"%.40s\"): %s is not in model.vocab",
          name, rank, a, b, missing == a ? "left token" : missing == b ? "right token" : "merged token");
      free(tmp);
      free(two0);
      return s;
    }
    lopt_mergemap_put(&tok->merges, ida, idb, (uint32_t)rank, idn);
    rank++;
  }
  tok->n_merges = rank;
  free(two0);

  /* unk and byte fallback */
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (cJSON_IsString(unk)) {
    size_t rn;
    if (strlen(unk->valuestring) > max_key ||
        unmap(tok, byte_of_cp, unk->valuestring, strlen(unk->valuestring), tmp, &rn) < 0 ||
        !lopt_strmap_get(&tok->vocab, tmp, rn, &tok->unk_id)) {
      kf_lopt_status s = kf_lopt_fail(err, KF_LOPT_EPARSE,
                                      "%s: model.unk_token \"%.60s\" is not in model.vocab", name,
                                      unk->valuestring);
      free(tmp);
      return s;
    }
    tok->has_unk = 1;
  }
  for (int b = 0; b < 256; b++) {
    char key[8];
    size_t rn;
    snprintf(key, sizeof key, "<0x%02X>", b);
    if (unmap(tok, byte_of_cp, key, 6, tmp, &rn) == 0)
      tok->fallback_has[b] =
          (uint8_t)lopt_strmap_get(&tok->vocab, tmp, rn, &tok->fallback_id[b]);
    if (tok->byte_level) {
      char ch[4];
      int k = lopt_utf8_put(tok->bl_cp[b], ch);
      size_t cn;
      if (unmap(tok, byte_of_cp, ch, (size_t)k, tmp, &cn) == 0)
        tok->byte_has[b] = (uint8_t)lopt_strmap_get(&tok->vocab, tmp, cn, &tok->byte_id[b]);
    }
  }
  free(tmp);
  /* the ByteFallback decoder turns <0xXX> back into the byte */
  if (tok->byte_fallback && !tok->byte_level)
    for (int b = 0; b < 256; b++)
      if (tok->fallback_has[b]) {
        tok->id_pool[tok->id_pool_len] = (char)b;
        tok->id_off[tok->fallback_id[b]] = (uint32_t)tok->id_pool_len++;
        tok->id_len[tok->fallback_id[b]] = 1;
      }

  /* added tokens */
  if (n_added) {
    tok->added = calloc(n_added, sizeof *tok->added);
    if (!tok->added) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
    cJSON_ArrayForEach(it, added) {
      lopt_added *a = &tok->added[tok->n_added++];
      const char *content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
      a->id = (uint32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
      a->single_word = (uint8_t)json_bool(it, "single_word", 0);
      a->lstrip = (uint8_t)json_bool(it, "lstrip", 0);
      a->rstrip = (uint8_t)json_bool(it, "rstrip", 0);
      a->normalized = (uint8_t)json_bool(it, "normalized", 0);
      a->special = (uint8_t)json_bool(it, "special", 0);
      size_t n = strlen(content);
      if (tok->generic && a->normalized && tok->n_norm_ops) {
        size_t blen;
        if (lopt_normalize_bytes(tok, content, n, &a->content, &blen) < 0)
          return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
        a->len = (uint32_t)blen;
      } else if (a->normalized && tok->nfc) {
        char *buf = NULL;
        size_t blen = 0, bcap = 0;
        lopt_map m = {0};
        if (!lopt_utf8_valid((const unsigned char *)content, n) ||
            lopt_nfc_append(tok->nfc, (const unsigned char *)content, n, 0, &buf, &blen, &bcap,
                            &m) < 0) {
          free(buf);
          lopt_map_free(&m);
          return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: added token %u: bad content", name,
                              a->id);
        }
        lopt_map_free(&m);
        a->content = buf;
        a->len = (uint32_t)blen;
      } else {
        a->content = malloc(n + 1);
        if (!a->content) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
        memcpy(a->content, content, n + 1);
        a->len = (uint32_t)n;
      }
      size_t dn = decode_form(tok, byte_of_cp, content, n, tok->id_pool + tok->id_pool_len);
      tok->id_off[a->id] = (uint32_t)tok->id_pool_len;
      tok->id_len[a->id] = (uint32_t)dn;
      tok->id_known[a->id] = 1;
      tok->id_pool_len += dn;
      memcpy(tok->raw_pool + tok->raw_pool_len, content, n);
      tok->raw_off[a->id] = (uint32_t)tok->raw_pool_len;
      tok->raw_len[a->id] = (uint32_t)n;
      tok->raw_pool_len += n;
    }
  }
  if (build_added_set(tok, 0, 0, &tok->raw_set) < 0 || build_added_set(tok, 1, 0, &tok->norm_set) < 0 ||
      build_added_set(tok, 0, 1, &tok->raw_set_ns) < 0 ||
      build_added_set(tok, 1, 1, &tok->norm_set_ns) < 0)
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
  return KF_LOPT_OK;
}

/* post_processor: TemplateProcessing's "single" (possibly in a Sequence; ByteLevel changes
 * offsets only and RobertaProcessing / BertProcessing are refused). */
static kf_lopt_status load_post(load_ctx *L, const cJSON *pp, const char *where) {
  kf_lopt_tokenizer *tok = L->tok;
  if (!pp || cJSON_IsNull(pp)) return KF_LOPT_OK;
  const char *type = json_type(pp);
  if (!type)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s has no \"type\"", L->name, where);
  if (strcmp(type, "ByteLevel") == 0) return KF_LOPT_OK;
  if (strcmp(type, "Sequence") == 0) return load_seq(L, pp, "processors", where, load_post);
  if (strcmp(type, "TemplateProcessing") != 0)
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                        "%s: %s type \"%s\" is not supported (kf_lopt implements "
                        "TemplateProcessing, ByteLevel and Sequence)",
                        L->name, where, type);
  const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
  const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
  if (!cJSON_IsArray(single))
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s.single must be an array", L->name, where);
  int seen_seq = 0, i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, single) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
    const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
    if (sq) {
      seen_seq = 1;
      i++;
      continue;
    }
    const char *id = json_str(sp, "id");
    const cJSON *tokdef = id ? cJSON_GetObjectItemCaseSensitive(specials, id) : NULL;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(tokdef, "ids");
    if (!cJSON_IsArray(ids))
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE,
                          "%s: %s.single[%d]: special token \"%s\" has no ids in "
                          "%s.special_tokens",
                          L->name, where, i, id ? id : "?", where);
    const cJSON *v;
    cJSON_ArrayForEach(v, ids) {
      uint32_t **arr = seen_seq ? &tok->tpl_post : &tok->tpl_pre;
      size_t *n = seen_seq ? &tok->n_tpl_post : &tok->n_tpl_pre;
      if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= tok->n_ids ||
          !tok->id_known[(uint32_t)v->valuedouble])
        return kf_lopt_fail(L->err, KF_LOPT_EPARSE,
                            "%s: %s.special_tokens[\"%s\"].ids: not a token id", L->name, where,
                            id);
      uint32_t *g = realloc(*arr, (*n + 1) * sizeof *g);
      if (!g) return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
      g[(*n)++] = (uint32_t)v->valuedouble;
      *arr = g;
    }
    i++;
  }
  return KF_LOPT_OK;
}

static kf_lopt_status load_decoder(load_ctx *L, const cJSON *d, const char *where) {
  kf_lopt_tokenizer *tok = L->tok;
  if (!d || cJSON_IsNull(d)) return KF_LOPT_OK;
  tok->has_decoder = 1;
  const char *type = json_type(d);
  if (!type)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s has no \"type\"", L->name, where);
  if (strcmp(type, "Sequence") == 0) return load_seq(L, d, "decoders", where, load_decoder);
  kf_lopt_status st = ops_grow(L, (void **)&tok->dec_ops, tok->n_dec_ops, sizeof *tok->dec_ops);
  if (st) return st;
  lopt_dec_op *op = &tok->dec_ops[tok->n_dec_ops];
  if (strcmp(type, "ByteLevel") == 0) {
    op->kind = LD_BYTELEVEL;
  } else if (strcmp(type, "ByteFallback") == 0) {
    op->kind = LD_BYTEFALLBACK;
  } else if (strcmp(type, "Fuse") == 0) {
    op->kind = LD_FUSE;
  } else if (strcmp(type, "Replace") == 0) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(d, "pattern");
    const char *ps = json_str(pat, "String"), *content = json_str(d, "content");
    if (!ps || !content)
      return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                          "%s: %s: Replace decoder needs {\"String\": ...} and a content (a regex "
                          "pattern is not supported)",
                          L->name, where);
    op->kind = LD_REPLACE;
    op->pat = dup_str(ps, &op->pat_n);
    op->content = dup_str(content, &op->content_n);
  } else if (strcmp(type, "Strip") == 0) {
    const char *content = json_str(d, "content");
    op->kind = LD_STRIP;
    op->content = dup_str(content ? content : " ", &op->content_n);
    op->start = json_int(d, "start", 0);
    op->stop = json_int(d, "stop", 0);
  } else if (strcmp(type, "Metaspace") == 0) {
    const char *repl = json_str(d, "replacement"), *scheme = json_str(d, "prepend_scheme");
    op->kind = LD_METASPACE;
    op->content = dup_str(repl ? repl : "\xE2\x96\x81", &op->content_n);
    op->prepend_scheme = !scheme ? (json_bool(d, "add_prefix_space", 1) ? LM_ALWAYS : LM_NEVER)
                         : strcmp(scheme, "never") == 0 ? LM_NEVER : LM_ALWAYS;
  } else {
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                        "%s: %s type \"%s\" is not supported (kf_lopt implements ByteLevel, "
                        "Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence)",
                        L->name, where, type);
  }
  if ((op->kind == LD_REPLACE && (!op->pat || !op->content)) ||
      ((op->kind == LD_STRIP || op->kind == LD_METASPACE) && !op->content))
    return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
  tok->n_dec_ops++;
  return KF_LOPT_OK;
}

kf_lopt_status kf_lopt_load_json(const char *json, size_t len, const char *name,
                                 kf_lopt_tokenizer **out, kf_lopt_error *err) {
  if (!out || (!json && len)) return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_load_json: NULL");
  *out = NULL;
  if (!name) name = "tokenizer.json";
  if (len == 0) return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: empty file, expected JSON", name);
  char jmsg[400];
  if (lopt_json_check(json, len, jmsg, sizeof jmsg) < 0)
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: invalid JSON %s", name, jmsg);
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, NULL, 0);
  if (!root) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory parsing JSON", name);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: top level must be a JSON object", name);
  }
  kf_lopt_tokenizer *tok = calloc(1, sizeof *tok);
  if (!tok) {
    cJSON_Delete(root);
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
  }
  snprintf(tok->name, sizeof tok->name, "%s", name);
  load_ctx L = {tok, err, tok->name};
  int16_t byte_of_cp[0x144];
  for (int i = 0; i < 0x144; i++) byte_of_cp[i] = -1;
  byte_level_table(tok->bl_cp);
  for (int b = 0; b < 256; b++) byte_of_cp[tok->bl_cp[b]] = (int16_t)b;

  kf_lopt_status s = load_normalizer(&L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"),
                                     "normalizer");
  if (!s) s = load_pretok(&L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                          "pre_tokenizer");
  if (!s) {
    choose_path(tok);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    /* the split regex as written (kf_lopt_get_info) */
    const char *pat = NULL;
    for (const cJSON *q = pt; q && !pat;) {
      const cJSON *pr = cJSON_GetObjectItemCaseSensitive(q, "pattern");
      pat = json_str(pr, "Regex") ? json_str(pr, "Regex") : json_str(pr, "String");
      const cJSON *list = cJSON_GetObjectItemCaseSensitive(q, "pretokenizers");
      q = cJSON_IsArray(list) ? list->child : q->next;
    }
    if (!pat && tok->byte_level && tok->n_pre_ops && tok->pre_ops[0].re) pat = GPT2_PATTERN;
    if (pat && !(tok->pattern = strdup(pat))) s = kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
  }
  if (!s) s = load_model(&L, root, byte_of_cp);
  if (!s) s = load_post(&L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                        "post_processor");
  if (!s) s = load_decoder(&L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoder");
  if (!s) {
    int ec;
    PCRE2_SIZE eo;
    tok->re_word = pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{Nl}\\p{Nd}\\p{M}\\p{Pc}\\x{200C}\\x{200D}]",
                                 PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!tok->re_word) s = kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
  }
  tok->parallel_safe = !tok->generic && tok->re != NULL;
  cJSON_Delete(root);
  if (s) {
    kf_lopt_free(tok);
    return s;
  }
  *out = tok;
  return KF_LOPT_OK;
}

enum { KF_LOPT_MAX_JSON = 512 << 20 };

kf_lopt_status kf_lopt_load(const char *path, kf_lopt_tokenizer **out, kf_lopt_error *err) {
  if (!path || !out) return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_load: NULL argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return kf_lopt_fail(err, KF_LOPT_EIO, "%s: cannot open: %s", path, strerror(errno));
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 65536 > cap) {
      cap = cap ? cap * 2 : 1 << 20;
      char *b = realloc(buf, cap);
      if (!b) {
        free(buf);
        fclose(f);
        return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory reading", path);
      }
      buf = b;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
    if (n > KF_LOPT_MAX_JSON) {
      free(buf);
      fclose(f);
      return kf_lopt_fail(err, KF_LOPT_EIO, "%s: larger than the tokenizer.json cap of %d MiB",
                          path, KF_LOPT_MAX_JSON >> 20);
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return kf_lopt_fail(err, KF_LOPT_EIO, "%s: read error", path);
  }
  kf_lopt_status s = kf_lopt_load_json(buf, n, path, out, err);
  free(buf);
  return s;
}

void kf_lopt_free(kf_lopt_tokenizer *tok) {
  if (!tok) return;
  lopt_strmap_free(&tok->vocab);
  lopt_mergemap_free(&tok->merges);
  free(tok->id_off);
  free(tok->id_len);
  free(tok->id_known);
  free(tok->id_pool);
  free(tok->pattern);
  pcre2_code_free(tok->re_word); /* tok->re belongs to pre_ops */
  lopt_pipe_free(tok);
  free(tok->raw_set_ns.idx);
  free(tok->norm_set_ns.idx);
  for (size_t i = 0; i < tok->n_added; i++) free(tok->added[i].content);
  free(tok->added);
  free(tok->raw_set.idx);
  free(tok->norm_set.idx);
  free(tok);
}

void kf_lopt_get_info(const kf_lopt_tokenizer *tok, kf_lopt_info *info) {
  memset(info, 0, sizeof *info);
  info->vocab_size = tok->vocab_size;
  info->n_merges = tok->n_merges;
  info->n_added = tok->n_added;
  info->normalizer_nfc = tok->nfc == LOPT_NF_NFC;
  info->byte_level = tok->byte_level;
  info->parallel_safe = tok->parallel_safe;
  info->pattern = tok->pattern;
  info->general = tok->generic;
  info->unicode_regex = lopt_unicode_regex_version();
  info->unicode_norm = lopt_unicode_norm_version();
}

kf_lopt_status kf_lopt_decode(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                              char **out, size_t *out_len, kf_lopt_error *err) {
  if (!tok || !out || !out_len || (!ids && n))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_decode: NULL argument");
  return lopt_generic_decode(tok, ids, n, 0, out, out_len, err);
}

kf_lopt_status kf_lopt_decode_ex(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                                 int skip_special, char **out, size_t *out_len,
                                 kf_lopt_error *err) {
  if (!tok || !out || !out_len || (!ids && n))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_decode: NULL argument");
  return lopt_generic_decode(tok, ids, n, skip_special != 0, out, out_len, err);
}

kf_lopt_status kf_lopt_decode_bytes(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
                                    char **out, size_t *out_len, kf_lopt_error *err) {
  if (!tok || !out || !out_len || (!ids && n))
    return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_decode: NULL argument");
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] >= tok->n_ids || !tok->id_known[ids[i]])
      return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_decode: ids[%zu] = %u is not a token id",
                          i, ids[i]);
    total += tok->id_len[ids[i]];
  }
  char *buf = malloc(total + 1);
  if (!buf) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "kf_lopt_decode: out of memory");
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(buf + j, tok->id_pool + tok->id_off[ids[i]], tok->id_len[ids[i]]);
    j += tok->id_len[ids[i]];
  }
  buf[j] = 0;
  *out = buf;
  *out_len = j;
  return KF_LOPT_OK;
}

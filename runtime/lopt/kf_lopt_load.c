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

/* Rewrite \s and \S as Unicode White_Space classes: the reference compiles the pattern with
 * Oniguruma, whose \s is White_Space; PCRE2's UCP \s differs (it omits U+0085). */
#define WS_MEMBERS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static int translate_pattern(const char *in, char **out, char *why, size_t why_n) {
  size_t n = strlen(in);
  char *o = malloc(n * 48 + 1);
  if (!o) {
    snprintf(why, why_n, "out of memory");
    return -1;
  }
  size_t j = 0;
  int in_class = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '\\' && i + 1 < n) {
      char d = in[i + 1];
      if (d == 's' || d == 'S') {
        if (in_class && d == 'S') {
          snprintf(why, why_n, "\\S inside a character class (offset %zu) is not supported", i);
          free(o);
          return -1;
        }
        const char *rep = in_class ? WS_MEMBERS : (d == 's' ? "[" WS_MEMBERS "]" : "[^" WS_MEMBERS "]");
        size_t k = strlen(rep);
        memcpy(o + j, rep, k);
        j += k;
        i++;
        continue;
      }
      if (d == 'Q') { /* literal run up to \E */
        const char *e = strstr(in + i + 2, "\\E");
        size_t stop = e ? (size_t)(e - in) + 2 : n;
        memcpy(o + j, in + i, stop - i);
        j += stop - i;
        i = stop - 1;
        continue;
      }
      o[j++] = c;
      o[j++] = d;
      i++;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = 1;
      o[j++] = c;
      if (i + 1 < n && in[i + 1] == '^') o[j++] = in[++i];
      if (i + 1 < n && in[i + 1] == ']') o[j++] = in[++i]; /* leading ] is literal */
      continue;
    }
    if (in_class && c == '[' && i + 1 < n && in[i + 1] == ':') { /* [:posix:] */
      const char *e = strstr(in + i + 2, ":]");
      size_t stop = e ? (size_t)(e - in) + 2 : i + 1;
      memcpy(o + j, in + i, stop - i);
      j += stop - i;
      i = stop - 1;
      continue;
    }
    if (in_class && c == '[') {
      snprintf(why, why_n, "nested character class (offset %zu) is not supported", i);
      free(o);
      return -1;
    }
    if (in_class && c == ']') in_class = 0;
    o[j++] = c;
  }
  o[j] = 0;
  *out = o;
  return 0;
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

static kf_lopt_status load_normalizer(load_ctx *L, const cJSON *nz, const char *where) {
  if (!nz || cJSON_IsNull(nz)) return KF_LOPT_OK;
  const char *type = json_type(nz);
  if (!type)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s has no \"type\"", L->name, where);
  if (strcmp(type, "NFC") == 0) {
    L->tok->nfc = 1;
    return KF_LOPT_OK;
  }
  if (strcmp(type, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(nz, "normalizers");
    if (!cJSON_IsArray(list))
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s.normalizers must be an array", L->name,
                          where);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
      char w[96];
      snprintf(w, sizeof w, "%s.normalizers[%d]", where, i++);
      kf_lopt_status s = load_normalizer(L, it, w);
      if (s) return s;
    }
    return KF_LOPT_OK;
  }
  return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                      "%s: %s type \"%s\" is not supported (kf_lopt implements NFC)", L->name,
                      where, type);
}

/* Collects the split pattern and whether ByteLevel is used. */
static kf_lopt_status load_pretok(load_ctx *L, const cJSON *pt, const char *where,
                                  const char **pattern, int *is_last, int *bl_seen) {
  kf_lopt_tokenizer *tok = L->tok;
  if (!pt || cJSON_IsNull(pt)) return KF_LOPT_OK;
  const char *type = json_type(pt);
  if (!type)
    return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s has no \"type\"", L->name, where);
  if (*bl_seen)
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                        "%s: %s: a pre-tokenizer after ByteLevel is not supported", L->name, where);
  if (strcmp(type, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    if (!cJSON_IsArray(list))
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE, "%s: %s.pretokenizers must be an array",
                          L->name, where);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
      char w[96];
      snprintf(w, sizeof w, "%s.pretokenizers[%d]", where, i++);
      kf_lopt_status s = load_pretok(L, it, w, pattern, is_last, bl_seen);
      if (s) return s;
    }
    return KF_LOPT_OK;
  }
  if (strcmp(type, "ByteLevel") == 0) {
    if (json_bool(pt, "add_prefix_space", 0))
      return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                          "%s: %s: ByteLevel add_prefix_space=true is not supported", L->name,
                          where);
    if (json_bool(pt, "use_regex", 1)) {
      if (*pattern)
        return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                            "%s: %s: ByteLevel use_regex=true after a Split (two regex stages) "
                            "is not supported",
                            L->name, where);
      *pattern = GPT2_PATTERN;
    }
    tok->byte_level = 1;
    *bl_seen = 1;
    return KF_LOPT_OK;
  }
  if (strcmp(type, "Split") == 0) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(pt, "behavior");
    if (!cJSON_IsString(re) && !cJSON_IsString(str))
      return kf_lopt_fail(L->err, KF_LOPT_EPARSE,
                          "%s: %s.pattern must be {\"Regex\": ...} or {\"String\": ...}", L->name,
                          where);
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
      return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                          "%s: %s: Split behavior \"%s\" is not supported (only Isolated)",
                          L->name, where, cJSON_IsString(beh) ? beh->valuestring : "?");
    if (json_bool(pt, "invert", 0))
      return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                          "%s: %s: Split invert=true is not supported", L->name, where);
    if (*pattern)
      return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                          "%s: %s: more than one Split stage is not supported", L->name, where);
    if (cJSON_IsString(re)) {
      *pattern = re->valuestring;
    } else {
      /* literal string: quote it */
      size_t n = strlen(str->valuestring);
      char *q = malloc(n + 8);
      if (!q) return kf_lopt_fail(L->err, KF_LOPT_ENOMEM, "out of memory");
      snprintf(q, n + 8, "\\Q%s\\E", str->valuestring);
      free(tok->pattern);
      tok->pattern = q; /* owned; *pattern points at it */
      *pattern = q;
    }
    *is_last = 0;
    return KF_LOPT_OK;
  }
  return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                      "%s: %s type \"%s\" is not supported (kf_lopt implements Split, ByteLevel "
                      "and Sequence of those)",
                      L->name, where, type);
}

static kf_lopt_status compile_pattern(load_ctx *L, const char *pattern) {
  kf_lopt_tokenizer *tok = L->tok;
  char why[200];
  char *tr;
  if (translate_pattern(pattern, &tr, why, sizeof why) < 0)
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED, "%s: pre_tokenizer regex: %s", L->name, why);
  int ec;
  PCRE2_SIZE eo;
  tok->re = pcre2_compile((PCRE2_SPTR)tr, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo,
                          NULL);
  free(tr);
  if (!tok->re) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return kf_lopt_fail(L->err, KF_LOPT_EUNSUPPORTED,
                        "%s: pre_tokenizer regex does not compile with PCRE2 (%s, near offset %zu "
                        "of the translated pattern)",
                        L->name, (const char *)msg, (size_t)eo);
  }
  /* JIT for normal and hard-partial matching; without JIT pcre2_match interprets. */
  (void)pcre2_jit_compile(tok->re, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
  return KF_LOPT_OK;
}

/* Order for leftmost-longest matching: by first byte, then longest first. */
static int added_before(const kf_lopt_tokenizer *tok, uint32_t i, uint32_t j) {
  const lopt_added *x = &tok->added[i], *y = &tok->added[j];
  unsigned char fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
  if (fx != fy) return fx < fy;
  return x->len > y->len;
}

static int build_added_set(kf_lopt_tokenizer *tok, int normalized, lopt_added_set *set) {
  memset(set, 0, sizeof *set);
  for (size_t i = 0; i < tok->n_added; i++)
    if (tok->added[i].normalized == normalized && tok->added[i].len) set->n++;
  set->idx = malloc((set->n + 1) * sizeof *set->idx);
  if (!set->idx) return -1;
  size_t k = 0;
  for (size_t i = 0; i < tok->n_added; i++)
    if (tok->added[i].normalized == normalized && tok->added[i].len) {
      set->idx[k++] = (uint32_t)i;
      if (tok->added[i].len > set->max_len) set->max_len = tok->added[i].len;
    }
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
  char *tmp = malloc(4096);
  if (!tmp) return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
  cJSON_ArrayForEach(it, vocab) {
    uint32_t id = (uint32_t)it->valuedouble;
    size_t klen = strlen(it->string), rn;
    if (klen > 1024) {
      free(tmp);
      return kf_lopt_fail(err, KF_LOPT_EUNSUPPORTED,
                          "%s: model.vocab entry of %zu bytes (id %u) is longer than 1024", name,
                          klen, id);
    }
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
  char *tb = tmp + 2048;
  cJSON_ArrayForEach(it, merges) {
    const char *a, *b;
    size_t an, bn;
    char two[2][1024];
    if (cJSON_IsString(it)) {
      const char *sp = strchr(it->valuestring, ' ');
      if (!sp || strchr(sp + 1, ' ') || sp == it->valuestring || !sp[1] ||
          strlen(it->valuestring) >= sizeof two[0]) {
        free(tmp);
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
      if (an >= 1024 || bn >= 1024) {
        free(tmp);
        return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: model.merges[%zu]: token too long", name,
                            rank);
      }
    } else {
      free(tmp);
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
      return s;
    }
    lopt_mergemap_put(&tok->merges, ida, idb, (uint32_t)rank, idn);
    rank++;
  }
  tok->n_merges = rank;

  /* unk and byte fallback */
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (cJSON_IsString(unk)) {
    size_t rn;
    if (strlen(unk->valuestring) >= 1024 ||
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
      if (a->normalized && tok->nfc) {
        char *buf = NULL;
        size_t blen = 0, bcap = 0;
        lopt_map m = {0};
        if (!lopt_utf8_valid((const unsigned char *)content, n) ||
            lopt_nfc_append((const unsigned char *)content, n, 0, &buf, &blen, &bcap, &m) < 0) {
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
    }
  }
  if (build_added_set(tok, 0, &tok->raw_set) < 0 || build_added_set(tok, 1, &tok->norm_set) < 0)
    return kf_lopt_fail(err, KF_LOPT_ENOMEM, "%s: out of memory", name);
  return KF_LOPT_OK;
}

kf_lopt_status kf_lopt_load_json(const char *json, size_t len, const char *name,
                                 kf_lopt_tokenizer **out, kf_lopt_error *err) {
  if (!out || (!json && len)) return kf_lopt_fail(err, KF_LOPT_EINVAL, "kf_lopt_load_json: NULL");
  *out = NULL;
  if (!name) name = "tokenizer.json";
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json ? json : "", len, &end, 0);
  if (!root) {
    size_t off = end && end >= json ? (size_t)(end - json) : 0, line = 1, col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
      if (json[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    if (len == 0) return kf_lopt_fail(err, KF_LOPT_EPARSE, "%s: empty file, expected JSON", name);
    return kf_lopt_fail(err, KF_LOPT_EPARSE,
                        "%s: invalid JSON at byte %zu (line %zu, column %zu)%s", name, off, line,
                        col, off + 1 >= len ? ": unexpected end of input (truncated file?)" : "");
  }
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
  const char *pattern = NULL;
  int is_last = 1, bl_seen = 0;
  if (!s)
    s = load_pretok(&L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer",
                    &pattern, &is_last, &bl_seen);
  if (!s && pattern) {
    if (pattern != tok->pattern) {
      tok->pattern = strdup(pattern);
      if (!tok->pattern) s = kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
    }
    if (!s) s = compile_pattern(&L, tok->pattern);
  }
  if (!s) s = load_model(&L, root, byte_of_cp);
  if (!s) {
    int ec;
    PCRE2_SIZE eo;
    tok->re_word = pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{Nl}\\p{Nd}\\p{M}\\p{Pc}\\x{200C}\\x{200D}]",
                                 PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!tok->re_word) s = kf_lopt_fail(err, KF_LOPT_ENOMEM, "out of memory");
  }
  tok->parallel_safe = tok->re != NULL;
  cJSON_Delete(root);
  if (s) {
    kf_lopt_free(tok);
    return s;
  }
  *out = tok;
  return KF_LOPT_OK;
}

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
  pcre2_code_free(tok->re);
  pcre2_code_free(tok->re_word);
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
  info->normalizer_nfc = tok->nfc;
  info->byte_level = tok->byte_level;
  info->parallel_safe = tok->parallel_safe;
  info->pattern = tok->pattern;
}

kf_lopt_status kf_lopt_decode(const kf_lopt_tokenizer *tok, const uint32_t *ids, size_t n,
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

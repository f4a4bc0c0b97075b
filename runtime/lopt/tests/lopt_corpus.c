/* lopt_corpus OUT BYTES: writes the deterministic exactness corpus (nothing of it is committed).
 *
 * Parts, in order:
 *   1. English prose found on the machine: /usr/share/common-licenses, /usr/share/doc/STAR/copyright
 *   2. source code: C headers under /usr/include, JavaScript of the npm packages beside this test
 *   3. real multilingual text: translated messages from gettext catalogs (/usr/share/locale/LANG/
 *      LC_MESSAGES/STAR.mo) for Chinese, Japanese, Korean, Arabic, Hindi, Hebrew, Thai, Russian, ...
 *   4. text written here: every script and hazard the tokenizers care about (emoji and ZWJ
 *      sequences, combining marks and non-NFC text, long digit and whitespace runs, special tokens
 *      in text and broken ones, CRLF, Unicode spaces, invalid UTF-8 of every WHATWG kind)
 *   5. random mixes of slices of 1-4, cut at arbitrary bytes (so also inside characters)
 * Parts 1-3 are capped so that 4-5 always take at least a fifth; when the machine has fewer files
 * the written text fills the gap. Files are visited in sorted order; the mixer uses a fixed seed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
  /* s may point into b itself (the mixer copies slices of what is already there) */
  int self = b->p && (const char *)s >= b->p && (const char *)s < b->p + b->cap;
  size_t self_off = self ? (size_t)((const char *)s - b->p) : 0;
  if (b->n + n + 1 > b->cap) {
    while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 1 << 20;
    b->p = realloc(b->p, b->cap);
    if (!b->p) {
      fprintf(stderr, "lopt_corpus: out of memory\n");
      exit(1);
    }
    if (self) s = b->p + self_off;
  }
  memmove(b->p + b->n, s, n);
  b->n += n;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static uint64_t rng(uint64_t *s) {
  *s += 0x9E3779B97F4A7C15ull;
  uint64_t z = *s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static char *slurp(const char *path, size_t *n, size_t max) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
      (size_t)st.st_size > max)
    return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *p = malloc((size_t)st.st_size);
  if (!p || fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
    free(p);
    fclose(f);
    return NULL;
  }
  fclose(f);
  *n = (size_t)st.st_size;
  return p;
}

typedef int (*file_fn)(buf *b, const char *path, size_t cap);

/* Visit dir (sorted); files whose name ends with suffix (or all if NULL) go to fn. */
static void walk(buf *b, const char *dir, const char *suffix, int depth, file_fn fn, size_t cap) {
  struct dirent **list;
  int k = scandir(dir, &list, NULL, alphasort);
  if (k < 0) return;
  for (int i = 0; i < k; i++) {
    const char *nm = list[i]->d_name;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, nm);
    struct stat st;
    if (b->n < cap && nm[0] != '.' && lstat(path, &st) == 0) {
      if (S_ISDIR(st.st_mode) && depth > 0) walk(b, path, suffix, depth - 1, fn, cap);
      else if (S_ISREG(st.st_mode)) {
        size_t ln = strlen(nm), ls = suffix ? strlen(suffix) : 0;
        if (!suffix || (ln >= ls && strcmp(nm + ln - ls, suffix) == 0)) fn(b, path, cap);
      }
    }
    free(list[i]);
  }
  free(list);
}

static int add_text_file(buf *b, const char *path, size_t cap) {
  size_t n;
  char *p = slurp(path, &n, 256 * 1024);
  if (!p) return 0;
  if (!memchr(p, 0, n)) {
    if (b->n + n > cap) n = cap - b->n;
    put(b, p, n);
    puts_(b, "\n");
  }
  free(p);
  return 1;
}

/* GNU .mo catalog: translated strings (UTF-8 in practice), one per line. */
static int add_mo(buf *b, const char *path, size_t cap) {
  size_t n;
  unsigned char *p = (unsigned char *)slurp(path, &n, 4 << 20);
  if (!p) return 0;
  if (n >= 28) {
    uint32_t magic, count, toff;
    memcpy(&magic, p, 4);
    memcpy(&count, p + 8, 4);
    memcpy(&toff, p + 16, 4);
    if (magic == 0x950412de && toff < n && count < n / 8 && toff + (size_t)count * 8 <= n) {
      size_t taken = 0;
      for (uint32_t i = 1; i < count && b->n < cap && taken < 24000; i++) {
        uint32_t len, off;
        memcpy(&len, p + toff + (size_t)i * 8, 4);
        memcpy(&off, p + toff + (size_t)i * 8 + 4, 4);
        if (off >= n || len > n - off || len > 4000) continue;
        put(b, p + off, len);
        puts_(b, i % 7 == 0 ? "\n\n" : i % 3 ? "\n" : " ");
        taken += len;
      }
    }
  }
  free(p);
  return 1;
}

/* Written text: one of each hazard; repeated with variations by the mixer. */
static const char *const WRITTEN[] = {
    /* prose in many scripts */
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? We'll see; "
    "they've gone, I'm here, you'd know. DON'T SHOUT, IT'S LOUD. 'Quoted' and \"double\".\n",
    "敏捷的棕色狐狸跳过了懒狗。机器学习模型需要大量的训练数据，分词器把文本切成词元。"
    "长文本推理中，分词可能成为首字延迟的瓶颈。\n",
    "素早い茶色の狐が怠惰な犬を飛び越えた。トークナイザーはテキストを分割します。カタカナとひらがな。\n",
    "다람쥐 헌 쳇바퀴에 타고파. 한국어 문장은 띄어쓰기가 있습니다. 토크나이저 테스트입니다.\n",
    "الثعلب البني السريع يقفز فوق الكلب الكسول. مَرْحَبًا بِكُمْ في عالم اللغة العربية.\n",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूद गई। हिन्दी में संयुक्ताक्षर क्ष त्र ज्ञ श्र होते हैं।\n",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ελληνικά: Γαζέες καὶ μυρτιὲς.\n",
    "עברית: הנמר הזריז קפץ מעל הכלב. ไทย: สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ\n",
    "Tiếng Việt có dấu: Chữ Quốc ngữ được viết bằng chữ Latinh. Ñandú, façade, naïve, Øresund.\n",
    /* emoji, ZWJ sequences, flags, skin tones, keycaps, variation selectors */
    "Emoji: 😀😃😄 👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🏴‍☠️ 🇯🇵🇺🇸🇩🇪 1️⃣ #️⃣ ❤️ ☺︎ 🧑🏿‍🤝‍🧑🏻 🫠🫡 "
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿 👁️‍🗨️\n",
    /* combining marks, NFC vs NFD, Hangul jamo, singletons, reordering, ≯ */
    "NFD: e\xCC\x81 a\xCC\x8A o\xCC\x88 n\xCC\x83 \xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8 "
    "A\xCC\x8A \xE2\x84\xAB \xE2\x84\xA6 a\xCC\xA3\xCC\x82 a\xCC\x82\xCC\xA3 "
    ">\xCC\xB8 =\xCC\xB8 <\xCC\xB8 \xE0\xA4\xA8\xE0\xA4\xBC q\xCC\x87\xCC\xA3 "
    "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB\xE1\x84\x80\xE1\x85\xB3\xE1\x86\xAF x\xCD\x8F\xCC\x81\n",
    /* numbers */
    "Numbers: 0 7 42 1234 98765 3.14159265358979 6.022e23 -273.15 1,000,000 12:34:56 "
    "2026-11-25 0x7fffffff 1e-9 123456789012345678901234567890 ٣٤٥ १२३ ５６７ Ⅻ ½ ²³\n",
    /* whitespace */
    "tabs\t\tand  spaces   end\t \n\r\n\r\n  \n\n\n\n    indented\n\t\t\tdeep\r\n"
    "\xE3\x80\x80ideographic\xE2\x80\x83" "em\xC2\xA0nbsp\xE2\x80\xA8ls\xE2\x80\xA9ps"
    "\xC2\x85nel\xE1\xA0\x8Emvs\xEF\xBB\xBF" "bom\x0B\x0C ff\n",
    /* contractions and case folding the split regex handles */
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'Ve 'LL 'D '\xC5\xBF 'K \xE2\x80\x99s it's IT'S\n",
    /* special tokens in text, adjacent, partial, with odd neighbours */
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>"
    "<|endoftext|><|endoftext|> <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    "text<|eot_id|>x<think>reason</think> <tool_call>{\"a\":1}</tool_call> <|im_sta <|im_end| "
    "<<|im_end|>> <|<|endoftext|>|> <|reserved_special_token_5|> <|vision_pad|>\xCC\xB8\n",
    /* code */
    "int main(int argc, char **argv) {\n    for (int i = 0; i < argc; ++i) printf(\"%s\\n\", "
    "argv[i]);\n    return x->y >= 0 ? a[i] : b << 2;\n}\n"
    "def f(x):\n\treturn {'k': [1, 2, 3], \"v\": x ** 2}  # comment\n"
    "const re = /\\s+(?!\\S)/g; let s = `${a}${b}`; // ===> !== &&= ?" "?=\n",
    /* invalid UTF-8, every WHATWG case: lone continuation, truncated, overlong, surrogate,
     * above U+10FFFF, FE/FF, interrupted sequences */
    "bad: \x80 \xBF\xBF a\xC3 \xC3( \xE2\x82 \xE2\x82( \xF0\x9F\x98 \xF0\x9F\x98" "A \xC0\xAF "
    "\xE0\x80\xAF \xED\xA0\x80 \xED\xBF\xBF \xF4\x90\x80\x80 \xF5\x80 \xFE \xFF\xFF \xF8\x88\x80\x80\x80 "
    "\xE2\x28\xA1 \xF0\x28\x8C\xBC ok\xCE\n",
    /* code points of Unicode 15.0, 15.1 and 16.0 (letters, digits, marks) after spaces and
     * digits: Kawi, Kaktovik numerals, Nag Mundari, CJK Ext H/I, Garay, Todhri, Kirat Rai,
     * Tulu-Tigalari, Gurung Khema, Sunuwar; and U+1171E (Mn in 14.0, Mc in 16.0) */
    "new: \xF0\x91\xBC\x84\xF0\x91\xBC\x85 \xF0\x9D\x8B\x80\xF0\x9D\x8B\x81\xF0\x9D\x8B\x82 "
    "x\xF0\x9E\x93\xB0\xF0\x9E\x93\xB1 \xF0\xB1\x8D\x90\xF0\xB1\x8D\x91 "
    "\xF0\xAE\xAF\xB0\xF0\xAE\xAF\xB1 \xF0\x90\xB5\x90\xF0\x90\xB5\x91 \xF0\x90\xB5\x80\xF0\x90\xB5\x81"
    "\xF0\x90\xB5\x82 \xF0\x90\x97\x80\xF0\x90\x97\x81 \xF0\x96\xB5\x83\xF0\x96\xB5\xB0\xF0\x96\xB5\xB1 "
    "\xF0\x91\x8E\x80\xF0\x91\x8F\x82\xF0\x91\x8E\xB8 \xF0\x96\x84\xA1\xF0\x96\x84\x9E "
    "\xF0\x91\xAF\x80\xF0\x91\xAF\xB0 a\xF0\x91\x9C\x9E 12\xF0\x9D\x8B\x83 \xE0\xA5\xA7\xE0\xA5\xA8 "
    "\xE1\xAD\x8E\xE0\xB3\xB3 \xEA\x9F\x8B\xEA\x9F\x8C\n",
    /* CJK extension B and beyond, RTL with marks, NFD and marks of Unicode 11+ (the reference
     * normalizes with 10.0 tables: no reordering of those, no Dives Akuru composition) */
    "ExtB: \xF0\xA0\x80\x80\xF0\xA0\x80\x81\xF0\xA0\x82\x8A\xF0\xAA\x9A\xB2 \xF0\xAB\x9D\x80 "
    "\xF0\xAC\xBA\xA0 \xF0\xB0\x80\x80 \xE2\x80\x8F\xD7\xA9\xD6\xB8\xD7\x81\xD7\x9C\xD7\x95\xD6\xB9\xD7\x9D "
    "\xDB\x8C\xDA\xA9 x\xF0\x90\xB4\xA4\xCC\xA3 x\xF0\x9E\x84\xB0\xCC\xA3 x\xCC\x81\xE1\xB7\xBA "
    "\xF0\x91\xA4\xB5\xF0\x91\xA4\xB0 \xF0\x91\x8D\x87\xF0\x91\x8C\xBE x\xE1\xB7\xB5\xCC\xA3\n",
    /* compatibility characters (NFKC / NFKD) */
    "compat: \xEF\xAC\x81le \xE2\x91\xA0\xE2\x91\xA1 \xEF\xBD\xB6\xEF\xBE\x9E \xE3\x8D\xBF "
    "\xEF\xA4\x80 >\xEF\xA4\x80 \xE2\x84\x8C \xC2\xBD \xE2\x85\xAB \xEF\xBC\xA1\xEF\xBC\xA2 "
    "\xE1\xBA\x9B\xCC\xA3 \xC7\x84 \xE2\x80\xA6 \xEF\xB9\x8F \xF0\x9D\x90\x80\n",
    /* special and added tokens of the other tokenizers, and text that looks like them */
    "<s>[INST] hi [/INST]</s> <unk> <bos><start_of_turn>user\nhi<end_of_turn>\n<eos> <pad> "
    "<mask> <|fim_prefix|>a<|fim_suffix|>b<|fim_middle|> <|endofprompt|> <|start|>assistant"
    "<|channel|>final<|message|>ok<|end|><|return|> \xEF\xBD\x9C\xE2\x96\x81 "
    "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C> <0x41><0xFF> \xE2\x96\x81\xE2\x96\x81x "
    "<|begin_of_text|><|end_of_text|> <EOT> <META> <|reserved_special_token_250|>\n",
    /* control characters and NUL */
    "ctl:\x01\x02\x1B[31mred\x1B[0m \x7F del \x00 nul \x08\n",
};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: lopt_corpus OUT BYTES\n");
    return 2;
  }
  size_t want = (size_t)strtoull(argv[2], NULL, 10);
  if (want < 1000) {
    fprintf(stderr, "lopt_corpus: BYTES must be at least 1000\n");
    return 2;
  }
  { /* create the output directory */
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    for (char *q = dir + 1; *q; q++)
      if (*q == '/') {
        *q = 0;
        mkdir(dir, 0755);
        *q = '/';
      }
  }
  buf b = {0};
  /* 1. prose */
  size_t cap = want * 25 / 100;
  walk(&b, "/usr/share/common-licenses", NULL, 0, add_text_file, cap);
  {
    struct dirent **list;
    int k = scandir("/usr/share/doc", &list, NULL, alphasort);
    for (int i = 0; i < k; i++) {
      char path[2048];
      snprintf(path, sizeof path, "/usr/share/doc/%s/copyright", list[i]->d_name);
      if (b.n < cap) add_text_file(&b, path, cap);
      free(list[i]);
    }
    if (k >= 0) free(list);
  }
  size_t n_prose = b.n;
  /* 2. code */
  cap = b.n + want * 25 / 100;
  walk(&b, "/usr/include", ".h", 1, add_text_file, cap);
  size_t n_code = b.n - n_prose;
  /* 3. multilingual catalogs */
  const char *langs[] = {"zh_CN", "ja", "ko", "ar", "hi", "he", "th", "ru", "vi", "el",
                         "fa",    "bn", "ta", "uk", "ka", "am", "zh_TW", "my", "km", "si"};
  size_t per = want * 30 / 100 / (sizeof langs / sizeof langs[0]);
  for (size_t l = 0; l < sizeof langs / sizeof langs[0]; l++) {
    char dir[256];
    snprintf(dir, sizeof dir, "/usr/share/locale/%s/LC_MESSAGES", langs[l]);
    walk(&b, dir, ".mo", 0, add_mo, b.n + per);
  }
  size_t n_multi = b.n - n_prose - n_code;
  size_t base_n = b.n;
  /* 4. written text, each piece once, then long runs */
  size_t n_written = sizeof WRITTEN / sizeof WRITTEN[0];
  put(&b, WRITTEN[n_written - 1], strlen(WRITTEN[n_written - 1]) + 8); /* includes NUL bytes */
  for (size_t i = 0; i + 1 < n_written; i++) puts_(&b, WRITTEN[i]);
  for (int i = 0; i < 3000; i++) puts_(&b, " ");
  puts_(&b, "x\n");
  for (int i = 0; i < 500; i++) puts_(&b, "\n");
  for (int i = 0; i < 2000; i++) puts_(&b, "9");
  puts_(&b, "\n");
  for (int i = 0; i < 800; i++) puts_(&b, "漢");
  puts_(&b, "\n");
  for (int i = 0; i < 300; i++) puts_(&b, "👩‍👩‍👧");
  puts_(&b, "\n");
  for (int i = 0; i < 1500; i++) puts_(&b, "a");
  puts_(&b, " \t \n");
  /* 5. mixes: slices of everything so far (and of the written pieces), cut anywhere */
  uint64_t seed = 20260511;
  size_t pool_n = b.n;
  while (b.n < want) {
    uint64_t r = rng(&seed);
    if (r % 4 == 0) {
      const char *w = WRITTEN[(r >> 8) % (n_written - 1)];
      size_t wl = strlen(w);
      size_t a = (size_t)(rng(&seed) % wl), e = a + (size_t)(rng(&seed) % (wl - a + 1));
      if (r % 16 == 0) a = 0, e = wl;
      put(&b, w + a, e - a);
    } else if (r % 4 == 1 && base_n > 0) {
      size_t len = 1 + (size_t)(rng(&seed) % 6000);
      size_t a = (size_t)(rng(&seed) % base_n);
      if (a + len > base_n) len = base_n - a;
      put(&b, b.p + a, len);
    } else if (r % 4 == 2) {
      size_t len = 1 + (size_t)(rng(&seed) % 400);
      size_t a = (size_t)(rng(&seed) % pool_n);
      if (a + len > pool_n) len = pool_n - a;
      put(&b, b.p + a, len);
    } else {
      static const char *const glue[] = {" ", "\n", "\n\n", "\t", "  ", "<|im_end|>", "\r\n",
                                         "<|endoftext|>", "、", "。", "'s", "\xE2", "\xCC\x81",
                                         "\xF0\x9F", "    ", "1234", "\x80"};
      puts_(&b, glue[rng(&seed) % (sizeof glue / sizeof glue[0])]);
    }
  }
  b.n = want;
  FILE *f = fopen(argv[1], "wb");
  if (!f || fwrite(b.p, 1, b.n, f) != b.n || fclose(f) != 0) {
    fprintf(stderr, "lopt_corpus: cannot write %s\n", argv[1]);
    return 1;
  }
  printf("lopt_corpus: %s: %zu bytes = prose %zu + code %zu + catalogs %zu + written/mixed %zu\n",
         argv[1], b.n, n_prose, n_code, n_multi, b.n - base_n);
  free(b.p);
  return 0;
}

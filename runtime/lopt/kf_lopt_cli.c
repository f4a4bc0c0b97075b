/* kforge tokenize: encode a file with a tokenizer.json, or benchmark sequential / LoPT / naive. */
#include "kf_lopt_cli.h"

#include "kf_lopt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char USAGE[] =
    "usage: kforge tokenize --tokenizer tokenizer.json [--threads N]\n"
    "                       [--ids|--count|--json|--offsets] [--add-special-tokens]\n"
    "                       [--special-as-text] [--chunks-per-thread K] [--naive]\n"
    "                       [--max-input MB] FILE|-\n"
    "       kforge tokenize --tokenizer tokenizer.json --decode [--skip-special] FILE|-\n"
    "       kforge tokenize --tokenizer tokenizer.json --info\n"
    "       kforge tokenize --bench --tokenizer tokenizer.json [--threads N] [--sizes MB,...]\n"
    "                       [--corpus FILE] [--reps N] [--modes seq,lopt,naive]\n"
    "       kforge tokenize --bench-text MB OUT    (write the benchmark text)\n"
    "\n"
    "Encodes FILE (or stdin) with a Hugging Face BPE tokenizer.json, ids equal to the reference's\n"
    "encode(text, add_special_tokens = false). --threads N > 1 uses LoPT (lossless parallel\n"
    "tokenization; output identical to sequential; tokenizers outside its fast path encode\n"
    "sequentially); --naive uses the lossy split-and-concatenate instead (for comparison).\n"
    "  --add-special-tokens   add the post-processor's tokens (BOS/EOS), as add_special_tokens\n"
    "  --special-as-text      special tokens in the text are tokenized as text (the reference's\n"
    "            encode_special_tokens, tiktoken's disallowed_special=())\n"
    "  --decode  FILE holds token ids (whitespace separated); writes the reference's decode\n"
    "            (decoder chain of the file; --skip-special drops special tokens)\n"
    "  --info    vocabulary, pipeline and the Unicode versions of the tables\n"
    "  --max-input MB   refuse inputs larger than MB (default 1024, at most 1400)\n"
    "  --offsets one token per line: id start end (byte offsets into FILE)\n"
    "  --chunks-per-thread K   LoPT in threads*K equal chunks (default: one region per\n"
    "            thread in chunks halving towards its end; idle threads take others' tails)\n"
    "  --ids     token ids, space separated (default)\n"
    "  --count   number of tokens\n"
    "  --json    {\"ids\": [...], \"offsets\": [[start, end], ...]} (byte offsets into FILE)\n"
    "  --bench   MB/s of sequential, LoPT and naive encoding of 1, 10, 100 MB of text (or\n"
    "            --sizes), LoPT checked identical to sequential, naive mismatch rate reported;\n"
    "            best of --reps runs (default 5, 2, 1 for <5, <50, larger MB); --modes runs only\n"
    "            the listed encoders (a column not run prints 0)\n";

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Reads at most cap bytes; a longer input (a device, a pipe from /dev/zero) is refused. */
static size_t g_max_input = (size_t)1024 << 20;

static int read_all(const char *path, char **out, size_t *out_n) {
  size_t cap_in = g_max_input;
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "kforge tokenize: %s: cannot open: %s\n", path, strerror(errno));
    return -1;
  }
  size_t n = 0, cap = 1 << 16;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) break;
    if (n == cap) {
      char *b = realloc(buf, cap *= 2);
      if (!b) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = b;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
    if (n > cap_in) {
      if (f != stdin) fclose(f);
      fprintf(stderr, "kforge tokenize: %s: input is larger than the cap of %zu MiB (--max-input MB "
              "raises it)\n", path, cap_in >> 20);
      free(buf);
      return -1;
    }
  }
  int bad = !buf || ferror(f);
  if (f != stdin) fclose(f);
  if (bad) {
    fprintf(stderr, "kforge tokenize: %s: read failed\n", path);
    free(buf);
    return -1;
  }
  *out = buf;
  *out_n = n;
  return 0;
}

/* Benchmark text: text files found on the machine (licenses, docs, C headers), in sorted order,
 * repeated to the requested size. Deterministic for a given machine. */
static int append_dir(const char *dir, char **buf, size_t *n, size_t *cap, size_t want) {
  struct dirent **list;
  int k = scandir(dir, &list, NULL, alphasort);
  if (k < 0) return 0;
  for (int i = 0; i < k; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
    struct stat st;
    if (*n < want && list[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size > 0 && st.st_size < (1 << 20)) {
      char *b;
      size_t bn;
      FILE *f = fopen(path, "rb");
      if (f) {
        fclose(f);
        if (read_all(path, &b, &bn) == 0) {
          if (!memchr(b, 0, bn)) {
            if (*n + bn > *cap) {
              while (*n + bn > *cap) *cap *= 2;
              char *g = realloc(*buf, *cap);
              if (!g) {
                free(b);
                break;
              }
              *buf = g;
            }
            memcpy(*buf + *n, b, bn);
            *n += bn;
          }
          free(b);
        }
      }
    }
    free(list[i]);
  }
  free(list);
  return 0;
}

static char *bench_text(size_t want) {
  size_t n = 0, cap = 1 << 20;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  const char *dirs[] = {"/usr/share/common-licenses", "/usr/include", "/usr/include/linux",
                        "/usr/share/perl/5.36/pod", "/usr/share/doc/git"};
  for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++)
    append_dir(dirs[d], &buf, &n, &cap, want > (8u << 20) ? (8u << 20) : want);
  if (n == 0) {
    const char *s = "The quick brown fox jumps over the lazy dog. 1234567 ";
    memcpy(buf, s, strlen(s));
    n = strlen(s);
  }
  size_t base = n;
  char *out = malloc(want + 1);
  if (!out) {
    free(buf);
    return NULL;
  }
  for (size_t i = 0; i < want; i += base) memcpy(out + i, buf, want - i < base ? want - i : base);
  /* end on a character boundary */
  size_t e = want;
  while (e > 0 && ((unsigned char)out[e - 1] & 0xC0) == 0x80) e--;
  if (e > 0 && (unsigned char)out[e - 1] >= 0xC0) e--;
  memset(out + e, ' ', want - e);
  out[want] = 0;
  free(buf);
  return out;
}

enum { MODE_SEQ = 1, MODE_LOPT = 2, MODE_NAIVE = 4 };

static int run_bench(const char *tok_path, int threads, const char *sizes, const char *corpus,
                     int reps_opt, int modes) {
  if (!tok_path) {
    fprintf(stderr, "kforge tokenize --bench: --tokenizer FILE is required\n");
    return 2;
  }
  kf_lopt_error err = {0};
  kf_lopt_tokenizer *tok;
  double t0 = now_s();
  if (kf_lopt_load(tok_path, &tok, &err)) {
    fprintf(stderr, "kforge tokenize: %s\n", err.msg);
    return 1;
  }
  printf("tokenizer %s loaded in %.2f s; threads %d\n", tok_path, now_s() - t0, threads);
  kf_lopt_pool *pool;
  if (kf_lopt_pool_create(threads, &pool, &err)) {
    fprintf(stderr, "kforge tokenize: %s\n", err.msg);
    kf_lopt_free(tok);
    return 1;
  }
  char *corpus_text = NULL;
  size_t corpus_n = 0;
  if (corpus && read_all(corpus, &corpus_text, &corpus_n) < 0) {
    kf_lopt_pool_free(pool);
    kf_lopt_free(tok);
    return 1;
  }
  printf("%8s %10s %12s %12s %12s %9s %10s %s\n", "MB", "tokens", "seq MB/s", "LoPT MB/s",
         "naive MB/s", "speedup", "naive mis%", "LoPT==seq");
  int status = 0;
  const char *p = sizes;
  while (*p) {
    double mb = strtod(p, NULL);
    const char *comma = strchr(p, ',');
    p = comma ? comma + 1 : p + strlen(p);
    if (mb <= 0) continue;
    size_t n = corpus_text ? (corpus_n < (size_t)(mb * 1e6) ? corpus_n : (size_t)(mb * 1e6))
                           : (size_t)(mb * 1e6);
    char *text = corpus_text ? corpus_text : bench_text(n);
    if (!text) {
      fprintf(stderr, "kforge tokenize: out of memory for %zu bytes of text\n", n);
      status = 1;
      break;
    }
    int reps = reps_opt ? reps_opt : n < (size_t)5e6 ? 5 : n < (size_t)50e6 ? 2 : 1;
    kf_lopt_tokens seq = {0}, par = {0}, nav = {0};
    kf_lopt_par_stats st = {0};
    double best_seq = 1e30, best_par = 1e30, best_nav = 1e30, seq_cpu = 1e30;
    kf_lopt_par_stats best_st = {0};
    int ok = 1;
    for (int r = 0; r < reps && ok; r++) {
      double ca = cpu_s();
      double a = now_s();
      if (modes & MODE_SEQ) ok &= kf_lopt_encode(tok, text, n, &seq, &err) == KF_LOPT_OK;
      double b = now_s();
      if (cpu_s() - ca < seq_cpu) seq_cpu = cpu_s() - ca;
      if (modes & MODE_LOPT)
        ok &= kf_lopt_encode_parallel(tok, pool, text, n, NULL, &par, &st, &err) == KF_LOPT_OK;
      double c = now_s();
      if (modes & MODE_NAIVE)
        ok &= kf_lopt_encode_naive(tok, pool, text, n, NULL, &nav, &err) == KF_LOPT_OK;
      double d = now_s();
      if (b - a < best_seq) best_seq = b - a;
      if (c - b < best_par) {
        best_par = c - b;
        best_st = st;
      }
      if (d - c < best_nav) best_nav = d - c;
    }
    if (!ok) {
      fprintf(stderr, "kforge tokenize: %s\n", err.msg);
      status = 1;
    } else {
      int both = (modes & (MODE_SEQ | MODE_LOPT)) == (MODE_SEQ | MODE_LOPT);
      int same = seq.n == par.n && (seq.n == 0 || (memcmp(seq.ids, par.ids, seq.n * 4) == 0 &&
                                                   memcmp(seq.start, par.start, seq.n * 4) == 0 &&
                                                   memcmp(seq.end, par.end, seq.n * 4) == 0));
      size_t mis = kf_lopt_tokens_diff(&nav, &seq) + kf_lopt_tokens_diff(&seq, &nav);
#define RATE(m, t) ((modes & (m)) ? n / 1e6 / (t) : 0.0)
      printf("%8.1f %10zu %12.1f %12.1f %12.1f %8.2fx %9.4f%% %s (chunks %zu, matched %zu, "
             "retries %zu, fallbacks %zu)\n",
             n / 1e6, (modes & MODE_SEQ) ? seq.n : par.n, RATE(MODE_SEQ, best_seq),
             RATE(MODE_LOPT, best_par), RATE(MODE_NAIVE, best_nav),
             both ? best_seq / best_par : 0.0,
             (modes & (MODE_SEQ | MODE_NAIVE)) == (MODE_SEQ | MODE_NAIVE)
                 ? 100.0 * (double)mis / (double)(seq.n ? seq.n : 1)
                 : 0.0,
             !both ? "-" : same ? "yes" : "NO", best_st.n_chunks, best_st.n_cuts_matched,
             best_st.n_retries, best_st.n_fallbacks);
#undef RATE
      /* On a busy machine wall-clock speedup says little; the critical path (text stage and
       * join as wall time, chunks as the busiest worker's thread CPU time) is what LoPT would
       * take with its cores to itself. */
      double crit = best_st.t_prepare + best_st.cpu_worker_max + best_st.t_join;
      if (both)
        printf("         LoPT parts: prepare %.3f s wall, chunks %.3f s wall (thread CPU: busiest "
               "worker %.3f, all %.3f), join+copy %.3f s wall; sequential %.3f s CPU; critical "
               "path %.3f -> %.2fx on idle cores\n",
               best_st.t_prepare, best_st.t_chunks, best_st.cpu_worker_max,
               best_st.cpu_chunk_sum, best_st.t_join, seq_cpu, crit,
               crit > 0 ? seq_cpu / crit : 0.0);
      if (both && !same) status = 1;
    }
    fflush(stdout);
    kf_lopt_tokens_free(&seq);
    kf_lopt_tokens_free(&par);
    kf_lopt_tokens_free(&nav);
    if (!corpus_text) free(text);
  }
  free(corpus_text);
  kf_lopt_pool_free(pool);
  kf_lopt_free(tok);
  return status;
}

/* --decode: ids (decimal, whitespace separated) -> the reference's decoded text on stdout. */
static int decode_ids(const kf_lopt_tokenizer *tok, const char *input, const char *text, size_t n,
                      int skip_special) {
  uint32_t *ids = malloc((n / 2 + 1) * sizeof *ids);
  size_t k = 0;
  if (!ids) {
    fprintf(stderr, "kforge tokenize: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < n;) {
    while (i < n && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
    if (i == n) break;
    size_t st = i;
    uint64_t v = 0;
    while (i < n && text[i] >= '0' && text[i] <= '9' && v <= UINT32_MAX) v = v * 10 + (uint64_t)(text[i++] - '0');
    if (i == st || v > UINT32_MAX || (i < n && text[i] != ' ' && text[i] != '\n' && text[i] != '\t' &&
                                      text[i] != '\r')) {
      fprintf(stderr, "kforge tokenize: %s: byte %zu: token %zu is not a token id (a decimal "
              "integer)\n", input, st, k);
      free(ids);
      return 1;
    }
    ids[k++] = (uint32_t)v;
  }
  kf_lopt_error err = {0};
  char *out;
  size_t on;
  kf_lopt_status s = skip_special ? kf_lopt_decode_ex(tok, ids, k, 1, &out, &on, &err)
                                  : kf_lopt_decode(tok, ids, k, &out, &on, &err);
  free(ids);
  if (s) {
    fprintf(stderr, "kforge tokenize: %s: %s\n", input, err.msg);
    return 1;
  }
  int bad = fwrite(out, 1, on, stdout) != on || fflush(stdout) != 0;
  free(out);
  if (bad) {
    fprintf(stderr, "kforge tokenize: write error on stdout\n");
    return 1;
  }
  return 0;
}

int kf_tokenize_main(int argc, char **argv) {
  g_max_input = (size_t)1024 << 20;
  const char *tok_path = NULL, *input = NULL, *sizes = "1,10,100", *corpus = NULL;
  int threads = 1, cpt = 0, mode = 0 /* ids */, bench = 0, naive = 0, reps = 0;
  int decode = 0, skip_special = 0, info = 0;
  unsigned flags = 0;
  int modes = MODE_SEQ | MODE_LOPT | MODE_NAIVE;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(USAGE, stdout);
      return 0;
    } else if (strcmp(a, "--tokenizer") == 0 && i + 1 < argc) {
      tok_path = argv[++i];
    } else if ((strcmp(a, "--threads") == 0 || strcmp(a, "--chunks-per-thread") == 0 ||
                strcmp(a, "--reps") == 0) &&
               i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 1024) {
        fprintf(stderr, "kforge tokenize: %s expects an integer in [1, 1024], got '%s'\n", a,
                argv[i]);
        return 2;
      }
      if (a[2] == 't') threads = (int)v;
      else if (a[2] == 'r') reps = (int)v;
      else cpt = (int)v;
    } else if (strcmp(a, "--ids") == 0) {
      mode = 0;
    } else if (strcmp(a, "--count") == 0) {
      mode = 1;
    } else if (strcmp(a, "--json") == 0) {
      mode = 2;
    } else if (strcmp(a, "--offsets") == 0) {
      mode = 3;
    } else if (strcmp(a, "--add-special-tokens") == 0) {
      flags |= KF_LOPT_ADD_SPECIAL;
    } else if (strcmp(a, "--special-as-text") == 0) {
      flags |= KF_LOPT_SPECIAL_AS_TEXT;
    } else if (strcmp(a, "--decode") == 0) {
      decode = 1;
    } else if (strcmp(a, "--skip-special") == 0) {
      skip_special = 1;
    } else if (strcmp(a, "--info") == 0) {
      info = 1;
    } else if (strcmp(a, "--max-input") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 1400) {
        fprintf(stderr, "kforge tokenize: --max-input expects MB in [1, 1400], got '%s'\n",
                argv[i]);
        return 2;
      }
      g_max_input = (size_t)v << 20;
    } else if (strcmp(a, "--naive") == 0) {
      naive = 1;
    } else if (strcmp(a, "--bench") == 0) {
      bench = 1;
    } else if (strcmp(a, "--modes") == 0 && i + 1 < argc) {
      modes = 0;
      const char *m = argv[++i];
      while (*m) {
        size_t k = strcspn(m, ",");
        if (k == 3 && strncmp(m, "seq", 3) == 0) modes |= MODE_SEQ;
        else if (k == 4 && strncmp(m, "lopt", 4) == 0) modes |= MODE_LOPT;
        else if (k == 5 && strncmp(m, "naive", 5) == 0) modes |= MODE_NAIVE;
        else {
          fprintf(stderr, "kforge tokenize: --modes expects a list of seq, lopt, naive; got '%s'\n",
                  argv[i]);
          return 2;
        }
        m += k + (m[k] == ',');
      }
      if (!modes) {
        fprintf(stderr, "kforge tokenize: --modes is empty\n");
        return 2;
      }
    } else if (strcmp(a, "--sizes") == 0 && i + 1 < argc) {
      sizes = argv[++i];
    } else if (strcmp(a, "--corpus") == 0 && i + 1 < argc) {
      corpus = argv[++i];
    } else if (strcmp(a, "--bench-text") == 0 && i + 2 < argc) {
      double mb = strtod(argv[i + 1], NULL);
      if (mb <= 0 || mb > 2000) {
        fprintf(stderr, "kforge tokenize: --bench-text expects MB in (0, 2000]\n");
        return 2;
      }
      char *t = bench_text((size_t)(mb * 1e6));
      FILE *f = t ? fopen(argv[i + 2], "wb") : NULL;
      if (!f || fwrite(t, 1, (size_t)(mb * 1e6), f) != (size_t)(mb * 1e6)) {
        fprintf(stderr, "kforge tokenize: cannot write %s\n", argv[i + 2]);
        if (f) fclose(f);
        free(t);
        return 1;
      }
      fclose(f);
      free(t);
      return 0;
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "kforge tokenize: unknown or incomplete option '%s'\n%s", a, USAGE);
      return 2;
    } else if (!input) {
      input = a;
    } else {
      fprintf(stderr, "kforge tokenize: more than one input ('%s' and '%s')\n", input, a);
      return 2;
    }
  }
  if (bench) return run_bench(tok_path, threads, sizes, corpus, reps, modes);
  if (!tok_path || (!input && !info)) {
    fprintf(stderr, "kforge tokenize: %s\n%s",
            !tok_path ? "--tokenizer FILE is required" : "no input FILE (use - for stdin)", USAGE);
    return 2;
  }
  kf_lopt_error err = {0};
  kf_lopt_tokenizer *tok;
  if (kf_lopt_load(tok_path, &tok, &err)) {
    fprintf(stderr, "kforge tokenize: %s\n", err.msg);
    return 1;
  }
  if (info) {
    kf_lopt_info in;
    kf_lopt_get_info(tok, &in);
    printf("vocab %zu, merges %zu, added tokens %zu\npipeline: %s\nsplit regex: %s\n"
           "Unicode: regex classes %s, normalization %s (as the reference's)\n",
           in.vocab_size, in.n_merges, in.n_added,
           in.general ? "general (sequential)" : "fast path (LoPT parallel)",
           in.pattern ? in.pattern : "(none)", in.unicode_regex, in.unicode_norm);
    kf_lopt_free(tok);
    return 0;
  }
  char *text;
  size_t n;
  if (read_all(input, &text, &n) < 0) {
    kf_lopt_free(tok);
    return 1;
  }
  if (decode) {
    int rc = decode_ids(tok, input, text, n, skip_special);
    free(text);
    kf_lopt_free(tok);
    return rc;
  }
  kf_lopt_tokens toks = {0};
  kf_lopt_status s;
  kf_lopt_pool *pool = NULL;
  if (threads > 1 || naive) {
    s = kf_lopt_pool_create(threads, &pool, &err);
    if (!s) {
      kf_lopt_par_opts o = {0};
      o.chunks_per_thread = cpt;
      s = naive ? kf_lopt_encode_naive(tok, pool, text, n, &o, &toks, &err)
                : kf_lopt_encode_parallel_ex(tok, pool, text, n, flags, &o, &toks, NULL, &err);
    }
  } else {
    s = kf_lopt_encode_ex(tok, text, n, flags, &toks, &err);
  }
  if (s) {
    fprintf(stderr, "kforge tokenize: %s: %s\n", input, err.msg);
  } else if (mode == 1) {
    printf("%zu\n", toks.n);
  } else if (mode == 2) {
    fputs("{\"ids\": [", stdout);
    for (size_t i = 0; i < toks.n; i++) printf(i ? ", %u" : "%u", toks.ids[i]);
    fputs("], \"offsets\": [", stdout);
    for (size_t i = 0; i < toks.n; i++)
      printf(i ? ", [%u, %u]" : "[%u, %u]", toks.start[i], toks.end[i]);
    fputs("]}\n", stdout);
  } else if (mode == 3) {
    for (size_t i = 0; i < toks.n; i++) printf("%u %u %u\n", toks.ids[i], toks.start[i], toks.end[i]);
  } else {
    for (size_t i = 0; i < toks.n; i++) printf(i ? " %u" : "%u", toks.ids[i]);
    putchar('\n');
  }
  kf_lopt_tokens_free(&toks);
  kf_lopt_pool_free(pool);
  free(text);
  kf_lopt_free(tok);
  if (s == KF_LOPT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
    fprintf(stderr, "kforge tokenize: write error on stdout\n");
    return 1;
  }
  return s ? 1 : 0;
}

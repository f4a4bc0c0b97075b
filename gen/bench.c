/*
** bench.c: timing loop, statistics, LLC detection and the cold-weights rotating set.
*/
#include "bench.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double kf_bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Linear interpolation between order statistics: p in [0, 1]. */
static double percentile(const double *sorted, int n, double p) {
  double pos = p * (double)(n - 1);
  int lo = (int)pos;
  if (lo >= n - 1) return sorted[n - 1];
  double frac = pos - (double)lo;
  return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

void kf_bench_stats_of(double *samples, int n, kf_bench_stats *out) {
  memset(out, 0, sizeof *out);
  if (n <= 0) return;
  qsort(samples, (size_t)n, sizeof *samples, cmp_double);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += samples[i];
  out->n_runs = n;
  out->min_s = samples[0];
  out->max_s = samples[n - 1];
  out->mean_s = sum / n;
  out->median_s = percentile(samples, n, 0.5);
  out->p10_s = percentile(samples, n, 0.1);
  out->p25_s = percentile(samples, n, 0.25);
  out->p75_s = percentile(samples, n, 0.75);
  out->p90_s = percentile(samples, n, 0.9);
  out->spread = out->median_s > 0 ? (out->p90_s - out->p10_s) / out->median_s : 0;
}

int kf_bench_run(kf_bench_fn fn, void *arg, const kf_bench_opts *opts, kf_bench_stats *out) {
  if (!fn || !out) return -1;
  kf_bench_opts o = opts ? *opts : (kf_bench_opts){0};
  if (o.warmup <= 0) o.warmup = 1;
  if (o.min_runs <= 0) o.min_runs = 3;
  if (o.max_runs <= 0) o.max_runs = 1000;
  if (o.max_runs < o.min_runs) o.max_runs = o.min_runs;
  if (!(o.budget_s > 0)) o.budget_s = 1.0;

  double *samples = malloc((size_t)o.max_runs * sizeof *samples);
  if (!samples) return -1;
  int64_t iter = 0;
  for (int i = 0; i < o.warmup; i++) {
    int rc = fn(arg, iter++);
    if (rc) {
      free(samples);
      return rc;
    }
  }
  int n = 0;
  double spent = 0;
  while (n < o.max_runs && (n < o.min_runs || spent < o.budget_s)) {
    double t0 = kf_bench_now();
    int rc = fn(arg, iter++);
    double dt = kf_bench_now() - t0;
    if (rc) {
      free(samples);
      return rc;
    }
    samples[n++] = dt;
    spent += dt;
  }
  kf_bench_stats_of(samples, n, out);
  free(samples);
  return 0;
}

static void idle(double seconds) {
  if (!(seconds > 0)) return;
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

int kf_bench_interleave(const kf_bench_contender *c, int n, const kf_bench_iopts *opts,
                        kf_bench_iresult *out, int *failed) {
  if (failed) *failed = -1;
  if (!c || n < 1 || !out) return -1;
  for (int i = 0; i < n; i++)
    if (!c[i].fn) return -1;
  kf_bench_iopts o = opts ? *opts : (kf_bench_iopts){0};
  if (o.warmup <= 0) o.warmup = 2;
  if (o.min_rounds <= 0) o.min_rounds = 5;
  if (o.max_rounds <= 0) o.max_rounds = 100000;
  if (o.max_rounds < o.min_rounds) o.max_rounds = o.min_rounds;
  if (!(o.round_s > 0)) o.round_s = 0.02;
  if (!(o.budget_s > 0)) o.budget_s = 1.0;

  int64_t *iter = calloc((size_t)n, sizeof *iter);
  int *calls = calloc((size_t)n, sizeof *calls);
  double *spent = calloc((size_t)n, sizeof *spent);
  /* samples and ratios grow with the rounds: [n][cap] */
  int cap = 64;
  double *samples = malloc((size_t)n * (size_t)cap * sizeof *samples);
  double *ratios = malloc((size_t)n * (size_t)cap * sizeof *ratios);
  int rc = 0, rounds = 0;
  if (!iter || !calls || !spent || !samples || !ratios) {
    rc = -1;
    goto done;
  }
  /* warm-up; the last warm-up call calibrates the segment length */
  for (int i = 0; i < n && !rc; i++) {
    idle(c[i].settle_s);
    double dt = 0;
    for (int w = 0; w < o.warmup && !rc; w++) {
      double t0 = kf_bench_now();
      rc = c[i].fn(c[i].arg, iter[i]++);
      dt = kf_bench_now() - t0;
      if (rc && failed) *failed = i;
    }
    double k = dt > 0 ? o.round_s / dt : 1000;
    calls[i] = k < 1 ? 1 : k > 1000 ? 1000 : (int)(k + 0.5);
  }
  while (!rc && rounds < o.max_rounds) {
    int enough = rounds >= o.min_rounds;
    for (int i = 0; i < n; i++) enough &= spent[i] >= o.budget_s;
    if (enough) break;
    if (rounds == cap) {
      int ncap = cap * 2;
      double *ns = malloc((size_t)n * (size_t)ncap * sizeof *ns);
      double *nr = malloc((size_t)n * (size_t)ncap * sizeof *nr);
      if (!ns || !nr) {
        free(ns);
        free(nr);
        rc = -1;
        break;
      }
      for (int i = 0; i < n; i++) {
        memcpy(ns + (size_t)i * ncap, samples + (size_t)i * cap, (size_t)cap * sizeof *ns);
        memcpy(nr + (size_t)i * ncap, ratios + (size_t)i * cap, (size_t)cap * sizeof *nr);
      }
      free(samples);
      free(ratios);
      samples = ns, ratios = nr, cap = ncap;
    }
    for (int j = 0; j < n && !rc; j++) {
      int i = (rounds + j) % n;
      idle(c[i].settle_s);
      double t0 = kf_bench_now();
      for (int r = 0; r < calls[i] && !rc; r++) rc = c[i].fn(c[i].arg, iter[i]++);
      double dt = kf_bench_now() - t0;
      if (rc && failed) *failed = i;
      spent[i] += dt;
      samples[(size_t)i * cap + rounds] = dt / calls[i];
    }
    if (rc) break;
    for (int i = 0; i < n; i++)
      ratios[(size_t)i * cap + rounds] = samples[(size_t)i * cap + rounds] / samples[rounds];
    rounds++;
  }
  for (int i = 0; i < n && !rc; i++) {
    kf_bench_iresult *r = &out[i];
    memset(r, 0, sizeof *r);
    kf_bench_stats_of(samples + (size_t)i * cap, rounds, &r->st);
    kf_bench_stats rs;
    kf_bench_stats_of(ratios + (size_t)i * cap, rounds, &rs);
    r->ratio_median = rs.median_s;
    r->ratio_q1 = rs.p25_s;
    r->ratio_q3 = rs.p75_s;
    r->ratio_spread = rs.median_s > 0 ? (rs.p75_s - rs.p25_s) / rs.median_s : 0;
    r->calls = calls[i];
    r->n_rounds = rounds;
  }
done:
  free(iter);
  free(calls);
  free(spent);
  free(samples);
  free(ratios);
  return rc;
}

/* Reads a small sysfs file into buf (trailing newline removed); 0 on success. */
static int read_small_file(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t got = fread(buf, 1, len - 1, f);
  fclose(f);
  buf[got] = 0;
  while (got > 0 && isspace((unsigned char)buf[got - 1])) buf[--got] = 0;
  return got > 0 ? 0 : -1;
}

/* "32768K" / "2M" / "1024" -> bytes; 0 when unparsable. */
static int64_t parse_size(const char *s) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (end == s || v <= 0) return 0;
  switch (*end) {
  case 'K': case 'k': return (int64_t)v << 10;
  case 'M': case 'm': return (int64_t)v << 20;
  case 'G': case 'g': return (int64_t)v << 30;
  default: return (int64_t)v;
  }
}

int64_t kf_bench_llc_bytes(char *source, size_t source_len) {
  int best_level = 0;
  int64_t best_size = 0;
  char path[128], buf[64];
  for (int i = 0; i < 16; i++) {
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    if (read_small_file(path, buf, sizeof buf)) continue;
    int level = atoi(buf);
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    if (read_small_file(path, buf, sizeof buf) || strcmp(buf, "Instruction") == 0) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    if (read_small_file(path, buf, sizeof buf)) continue;
    int64_t size = parse_size(buf);
    if (size > 0 && (level > best_level || (level == best_level && size > best_size))) {
      best_level = level;
      best_size = size;
    }
  }
  if (best_size > 0) {
    if (source) snprintf(source, source_len, "sysfs cpu0 L%d", best_level);
    return best_size;
  }
#if defined(_SC_LEVEL3_CACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) {
    if (source) snprintf(source, source_len, "sysconf L3");
    return l3;
  }
  long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (l2 > 0) {
    if (source) snprintf(source, source_len, "sysconf L2");
    return l2;
  }
#endif
  if (source) snprintf(source, source_len, "not detected");
  return 0;
}

void kf_bench_cpu_model(char *buf, size_t len) {
  snprintf(buf, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      char *colon = strchr(line, ':');
      if (colon) {
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        colon[strcspn(colon, "\n")] = 0;
        snprintf(buf, len, "%s", colon);
      }
      break;
    }
  }
  fclose(f);
}

void kf_bench_cpu_flags(char *buf, size_t len) {
  static const char *const wanted[] = {"avx2",        "fma",         "avx512f",  "avx512bw",
                                       "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                                       "amx_int8",    "amx_bf16"};
  snprintf(buf, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  /* The flags line is long (~1.5 KB); read it whole. */
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    if (strncmp(line, "flags", 5) != 0) continue;
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
      /* whole-word match */
      size_t wl = strlen(wanted[i]);
      for (const char *p = strstr(line, wanted[i]); p; p = strstr(p + 1, wanted[i])) {
        if (p[-1] == ' ' && (p[wl] == ' ' || p[wl] == '\n' || p[wl] == 0)) {
          int w = snprintf(buf + used, len - used, "%s%s", used ? " " : "", wanted[i]);
          if (w > 0 && (size_t)w < len - used) used += (size_t)w;
          break;
        }
      }
    }
    break;
  }
  free(line);
  fclose(f);
}

int kf_bench_rot_init(kf_bench_rot *rot, const void *src, size_t bytes, int cold,
                      int64_t llc_bytes, char *err, size_t err_len) {
  memset(rot, 0, sizeof *rot);
  if (!src || bytes == 0) {
    snprintf(err, err_len, "kf_bench_rot_init: empty buffer");
    return -1;
  }
  int n = 1;
  if (cold) {
    char source[64] = "given";
    if (llc_bytes <= 0) llc_bytes = kf_bench_llc_bytes(source, sizeof source);
    if (llc_bytes <= 0) {
      snprintf(err, err_len,
               "cold mode: the last-level cache size could not be detected (sysfs, sysconf); "
               "cannot size the rotating weight set");
      return -1;
    }
    int64_t need = 2 * llc_bytes;
    int64_t copies = (need + (int64_t)bytes - 1) / (int64_t)bytes;
    n = copies < 1 ? 1 : (int)copies;
    rot->llc_bytes = llc_bytes;
  }
  /* One allocation, copies at a 64-byte-aligned stride: many small copies stay cheap. */
  size_t stride = (bytes + 63) / 64 * 64;
  if ((size_t)n > SIZE_MAX / stride) goto nomem;
  rot->base = aligned_alloc(64, stride * (size_t)n);
  rot->copies = calloc((size_t)n, sizeof *rot->copies);
  if (!rot->base || !rot->copies) goto nomem;
  rot->bytes = bytes;
  rot->n_copies = n;
  for (int i = 0; i < n; i++) {
    rot->copies[i] = (char *)rot->base + stride * (size_t)i;
    memcpy(rot->copies[i], src, bytes);
  }
  return 0;
nomem:
  snprintf(err, err_len, "kf_bench_rot_init: out of memory for %d copies of %zu bytes", n, bytes);
  kf_bench_rot_free(rot);
  return -1;
}

void kf_bench_rot_free(kf_bench_rot *rot) {
  free(rot->base);
  free(rot->copies);
  memset(rot, 0, sizeof *rot);
}

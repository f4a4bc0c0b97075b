/*
** test_verify.c: every op contract of the verifier (and the builder's own refusals) on a
** bad use, with the error text and the template file:line.
**
** Each file in tests/verify/ builds a valid kernel (case 0, which must verify) and, for
** case N, adds one bad use on the line marked "-- expect N: TEXT": building case N must
** fail with a message that starts with "FILE:LINE: " and contains TEXT. All cases of a
** file run on one loaded template (repeated builds on one Lua state, as tune does).
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

#define MAX_CASES 128

typedef struct expect {
  int line;
  char text[256];
} expect;

static int failures, n_checked;

/* Collects the markers of `path` into ex[case]; returns the largest case number, -1 on error. */
static int read_markers(const char *path, expect *ex) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[1024];
  int lineno = 0, max_case = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    const char *m = strstr(line, "-- expect ");
    if (!m || m[10] < '0' || m[10] > '9') continue; /* (the files' comments name the marker) */
    char *end;
    long c = strtol(m + 10, &end, 10);
    if (c <= 0 || c >= MAX_CASES || *end != ':' || ex[c].line) {
      printf("FAIL %s:%d: bad or repeated marker\n", path, lineno);
      failures++;
      continue;
    }
    ex[c].line = lineno;
    snprintf(ex[c].text, sizeof ex[c].text, "%s", end + 2);
    ex[c].text[strcspn(ex[c].text, "\r\n")] = 0;
    if ((int)c > max_case) max_case = (int)c;
  }
  fclose(f);
  return max_case;
}

static int build_case(kf_ctx *ctx, kf_template *t, int c) {
  kf_binding shape, params, sets, config;
  memset(&shape, 0, sizeof shape);
  memset(&sets, 0, sizeof sets);
  kf_binding_set(&shape, "case", c);
  kf_ir_kernel *ir = NULL;
  int rc = kf_template_shape(ctx, t, &shape, &params);
  if (!rc) rc = kf_template_config(ctx, t, &params, &sets, &config);
  if (!rc) rc = kf_template_build(ctx, t, &params, &config, &ir);
  kf_ir_free(ir);
  return rc;
}

static void run_file(const char *path) {
  expect ex[MAX_CASES];
  memset(ex, 0, sizeof ex);
  int max_case = read_markers(path, ex);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t = NULL;
  if (max_case < 1 || kf_template_load(&ctx, path, &t)) {
    printf("FAIL %s: cannot load or no markers: %s\n", path, kf_errmsg(&ctx));
    failures++;
    return;
  }
  if (build_case(&ctx, t, 0)) {
    printf("FAIL %s case 0 (valid) does not verify: %s\n", path, kf_errmsg(&ctx));
    failures++;
  }
  for (int c = 1; c <= max_case; c++) {
    if (!ex[c].line) {
      printf("FAIL %s: case %d has no marker (cases are numbered 1..N)\n", path, c);
      failures++;
      continue;
    }
    n_checked++;
    char where[600];
    snprintf(where, sizeof where, "%s:%d: ", path, ex[c].line);
    int rc = build_case(&ctx, t, c);
    const char *msg = kf_errmsg(&ctx);
    if (!rc) {
      printf("FAIL %s case %d: accepted; expected \"%s\"\n", where, c, ex[c].text);
      failures++;
    } else if (strncmp(msg, where, strlen(where)) || !strstr(msg, ex[c].text)) {
      printf("FAIL %s case %d:\n  got      %s\n  expected %s...%s\n", path, c, msg, where, ex[c].text);
      failures++;
    } else
      printf("ok   %s\n", msg);
  }
  /* after all the failed builds the template still builds its valid kernel */
  if (build_case(&ctx, t, 0)) {
    printf("FAIL %s case 0 after the bad cases: %s\n", path, kf_errmsg(&ctx));
    failures++;
  }
  kf_template_free(t);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "tests/verify";
  DIR *d = opendir(dir);
  if (!d) {
    printf("FAIL cannot open %s\n", dir);
    return 1;
  }
  char *names[64];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 64) {
    size_t len = strlen(e->d_name);
    if (len > 4 && !strcmp(e->d_name + len - 4, ".lua")) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  for (int i = 1; i < n; i++) /* a stable order */
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char *tmp = names[j];
      names[j] = names[j - 1];
      names[j - 1] = tmp;
    }
  for (int i = 0; i < n; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    run_file(path);
    free(names[i]);
  }
  if (n < 3) {
    printf("FAIL only %d reproducer files in %s\n", n, dir);
    failures++;
  }
  printf("%d bad uses checked, %d failures\n", n_checked, failures);
  return failures != 0;
}

/*
** test_ascend_cli: `kforge sim` (kf_ascend_main) on good and bad input: exit codes, and the
** Chrome trace it writes: valid JSON (cJSON), named cores and pipes, one track per pipe per
** core, events inside the simulated time, and the --trace-max limit.
*/
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_ascend_cli.h"
#include "kf.h"

static int failures;

static int run(int argc, const char **argv) {
  fflush(stdout);
  return kf_ascend_main(argc, (char **)argv);
}

static void expect_rc(const char *what, int got, int want) {
  printf("%-52s exit %d (want %d)  %s\n", what, got, want, got == want ? "ok" : "FAIL");
  failures += got != want;
}

int main(void) {
  const char *help[] = {"sim", "--help"};
  expect_rc("--help", run(2, help), 0);
  const char *mach[] = {"sim", "--machine", "--target", "ascend910c"};
  expect_rc("--machine (every number with its source)", run(4, mach), 0);
  const char *none[] = {"sim"};
  expect_rc("missing TEMPLATE", run(1, none), 2);
  const char *noshape[] = {"sim", "amla_decode"};
  expect_rc("missing --shape", run(2, noshape), 2);
  const char *badopt[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--frobnicate"};
  expect_rc("unknown option", run(5, badopt), 2);
  const char *badcheck[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--check", "maybe"};
  expect_rc("bad --check", run(6, badcheck), 2);
  const char *badnum[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--trace-max", "-3"};
  expect_rc("bad --trace-max", run(6, badnum), 2);
  const char *badtmpl[] = {"sim", "no_such_template", "--shape", "H=16,S=64"};
  expect_rc("unknown template", run(4, badtmpl), 2);
  const char *badshape[] = {"sim", "amla_decode", "--shape", "H=16,S=64,Q=3"};
  expect_rc("unknown shape parameter", run(4, badshape), 2);
  const char *badtarget[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--target", "cpu-host"};
  expect_rc("a CPU target is not an Ascend machine", run(6, badtarget), 2);
  const char *badparam[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--param", "warp_size=32"};
  expect_rc("unknown machine parameter", run(6, badparam), 2);
  const char *badval[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--param", "core_hbm_bpc=-1"};
  expect_rc("bad machine parameter value", run(6, badval), 2);
  const char *badrel[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--param", "store_release=2"};
  expect_rc("store_release is 0 or 1", run(6, badrel), 2);
  const char *param[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--param", "core_hbm_bpc=64,gm_latency=100,store_release=1"};
  expect_rc("machine parameters overridden", run(6, param), 0);
  const char *toobig[] = {"sim", "amla_decode", "--shape", "H=128,S=64,D=2304", "--set", "hb=128,bs=64"};
  expect_rc("tiling that does not fit L1", run(6, toobig), 2);

  char path[] = "/tmp/kf_asc_cli_traceXXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  close(fd);
  const char *good[] = {"sim", "amla_decode", "--shape", "B=2,H=16,S=700", "--set", "hb=16,bs=256", "--trace", path};
  expect_rc("amla_decode with a trace (checked, full)", run(8, good), 0);
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  char *text = NULL;
  size_t len = 0;
  int n_x = 0, n_threads = 0, n_procs = 0, bad = 0;
  if (!kf_read_file(&ctx, path, &text, &len)) {
    cJSON *j = cJSON_Parse(text);
    cJSON *evs = j ? cJSON_GetObjectItem(j, "traceEvents") : NULL;
    cJSON *e;
    cJSON_ArrayForEach(e, evs) {
      const char *ph = cJSON_GetStringValue(cJSON_GetObjectItem(e, "ph"));
      const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
      if (!ph || !name) {
        bad++;
        continue;
      }
      if (!strcmp(ph, "X")) {
        n_x++;
        bad += cJSON_GetNumberValue(cJSON_GetObjectItem(e, "dur")) < 0;
      } else if (!strcmp(name, "thread_name")) {
        n_threads++;
      } else if (!strcmp(name, "process_name")) {
        n_procs++;
      }
    }
    if (!j) bad++;
    cJSON_Delete(j);
  }
  free(text);
  /* 2 tasks: 2 AICs (MTE2, MTE1, M, FIX) and 4 AIVs (MTE2, V, MTE3) */
  int ok = n_x > 100 && n_procs == 6 && n_threads == 2 * 4 + 4 * 3 && !bad;
  printf("%-52s %d events, %d cores, %d pipe tracks  %s\n", "trace: Chrome JSON, one track per pipe per core", n_x, n_procs,
         n_threads, ok ? "ok" : "FAIL");
  failures += !ok;
  const char *lim[] = {"sim", "amla_decode", "--shape", "B=2,H=16,S=700", "--trace", path, "--trace-max", "10", "--no-check"};
  expect_rc("--trace-max 10 --no-check", run(9, lim), 0);
  text = NULL;
  n_x = 0;
  if (!kf_read_file(&ctx, path, &text, &len)) {
    cJSON *j = cJSON_Parse(text);
    cJSON *e;
    cJSON *evs2 = j ? cJSON_GetObjectItem(j, "traceEvents") : NULL;
    cJSON_ArrayForEach(e, evs2) {
      const char *ph = cJSON_GetStringValue(cJSON_GetObjectItem(e, "ph"));
      n_x += ph && !strcmp(ph, "X");
    }
    cJSON_Delete(j);
  }
  free(text);
  printf("%-52s %d events  %s\n", "  the limit holds", n_x, n_x == 10 ? "ok" : "FAIL");
  failures += n_x != 10;
  remove(path);
  const char *badpath[] = {"sim", "amla_decode", "--shape", "H=16,S=64", "--trace", "/nonexistent/dir/t.json"};
  expect_rc("unwritable trace path", run(6, badpath), 2);
  printf("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}

/*
** test_tuner_lib: `kforge lib` end to end. Tunes a few msd_gemm and dequant_gemm shapes into
** a store, builds the library for a shapes list (tuned shapes, one untuned shape that takes
** the nearest tuned config), then compiles tuner/tests/lib_user.c with cc and the library's
** pkg-config file, and runs it: outputs checked against fp64 with derived bounds, tuned shapes
** through tuned kernels, other shapes through the generic ones. The link line has no Lua,
** LLVM or SQLite (checked). Bad shapes files and a family without a generic are refused.
*/
#include "tt_util.h"

#include "kf_lib.h"

static int tune(kf_store *s, const char *tmpl, const char *shape_txt, FILE *log) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_tune_opts o;
  tt_fast_opts(&o, log);
  o.budget_n = 3;
  o.strategy = KF_STRAT_RANDOM;
  kf_binding shape, fixed;
  memset(&shape, 0, sizeof shape);
  memset(&fixed, 0, sizeof fixed);
  kf_binding_parse(&ctx, shape_txt, "shape", &shape);
  if (!strcmp(tmpl, "msd_gemm")) kf_binding_set(&fixed, "passes", 2);
  kf_tune_summary sum;
  int rc = kf_tune(&ctx, s, tmpl, &shape, &fixed, "cpu-host", &o, &sum);
  TT_CHECK(rc == 0 && sum.n_ok >= 1, "tuned %s %s: best %s", tmpl, shape_txt, rc ? kf_errmsg(&ctx) : sum.best.config);
  return rc;
}

static int run(const char *cmd, const char *what) {
  int st = system(cmd);
  TT_CHECK(st == 0, "%s (status %d)", what, st);
  return st;
}

int main(void) {
  char dir[256], db[300], shapes[300], out[300], cmd[2048];
  tt_tempdir(dir, sizeof dir, "tlib");
  snprintf(db, sizeof db, "%s/lib.db", dir);
  snprintf(shapes, sizeof shapes, "%s/shapes.txt", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  FILE *log = fopen("/dev/null", "w");
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_store *s;
  if (kf_store_open(&ctx, db, 1, &s)) return 1;
  tune(s, "msd_gemm", "M=2,N=48,K=96", log);
  tune(s, "msd_gemm", "M=5,N=40,K=100", log);
  tune(s, "dequant_gemm", "M=3,N=64,K=128", log);
  FILE *f = fopen(shapes, "w");
  fprintf(f, "# kforge lib test shapes\nmsd_gemm M=2,N=48,K=96\nmsd_gemm M=5,N=40,K=100\n"
             "msd_gemm M=3,N=48,K=96   # not tuned: nearest\n\ndequant_gemm M=3,N=64,K=128\n");
  fclose(f);
  kf_shape_list list = {0};
  int rc = kf_shapes_read(&ctx, shapes, &list);
  TT_CHECK(rc == 0 && list.len == 4, "shapes file read: %zu entries", list.len);
  FILE *lib_log = tmpfile();
  rc = kf_lib_build(&ctx, s, &list, "cpu-host", out, NULL, NULL, lib_log);
  TT_CHECK(rc == 0, "kforge lib built the library%s%s", rc ? ": " : "", rc ? kf_errmsg(&ctx) : "");
  rewind(lib_log);
  char line[1024];
  int n_exact = 0, n_nearest = 0;
  while (fgets(line, sizeof line, lib_log)) {
    printf("  | %s", line);
    n_exact += strstr(line, "exact:") != NULL;
    n_nearest += strstr(line, "nearest:") != NULL;
  }
  fclose(lib_log);
  TT_CHECK(n_exact == 3 && n_nearest == 1, "3 shapes exact, 1 from the nearest tuned shape (%d, %d)", n_exact, n_nearest);
  /* the program that links it: cc + pkg-config, nothing else */
  snprintf(cmd, sizeof cmd, "PKG_CONFIG_PATH=%s pkg-config --libs --cflags kforge_kernels > %s/flags.txt", out, dir);
  run(cmd, "pkg-config finds kforge_kernels.pc");
  snprintf(cmd, sizeof cmd, "grep -Eqi 'lua|llvm|sqlite' %s/flags.txt", dir);
  TT_CHECK(system(cmd) != 0, "link flags mention no Lua, LLVM or SQLite");
  snprintf(cmd, sizeof cmd,
           "cc -std=c11 -O1 -Wall -Wextra -Werror tuner/tests/lib_user.c -o %s/lib_user "
           "$(PKG_CONFIG_PATH=%s pkg-config --cflags --libs kforge_kernels)",
           dir, out);
  if (!run(cmd, "cc links lib_user.c against libkforge_kernels.a")) {
    snprintf(cmd, sizeof cmd, "%s/lib_user", dir);
    run(cmd, "lib_user: tuned and generic variants correct against fp64");
    snprintf(cmd, sizeof cmd, "ldd %s/lib_user | grep -Eqi 'lua|llvm|sqlite'", dir);
    TT_CHECK(system(cmd) != 0, "lib_user loads no Lua, LLVM or SQLite library");
  }
  /* failure paths */
  kf_vec_free(&list);
  f = fopen(shapes, "w");
  fprintf(f, "msd_gemm M=2,N=48,K=96 extra\n");
  fclose(f);
  rc = kf_shapes_read(&ctx, shapes, &list);
  TT_CHECK(rc != 0 && strstr(kf_errmsg(&ctx), ":1:"), "bad shapes line: %s", kf_errmsg(&ctx));
  kf_vec_free(&list);
  /* injection (issue 15 fault 2): names that reach generated C must be C identifiers */
  {
    static const char *const evil[] = {
        "params = { M = { min = 1 }, [\"zz\\n#include \\\"/etc/passwd\\\"\\n\"] = { default = 1 } },",
        "params = { M = { min = 1 } }, lib = { params = { \"M\" }, fallback = \"x);system(0\" },",
        NULL};
    for (int i = 0; evil[i]; i++) {
      char tpath[400];
      snprintf(tpath, sizeof tpath, "%s/evil%d.lua", dir, i);
      FILE *tf = fopen(tpath, "w");
      fprintf(tf, "return { name = \"evil%d\", reference = \"none\", %s\n"
                  "  build = function(p, t) end }\n", i, evil[i]);
      fclose(tf);
      kf_template *t = NULL;
      rc = kf_template_load(&ctx, tpath, &t);
      TT_CHECK(rc != 0 && strstr(kf_errmsg(&ctx), "C identifier"), "template %d with a non-identifier name refused: %.150s",
               i, kf_errmsg(&ctx));
      kf_template_free(t);
    }
    /* an argument name (the builder's) reaching kforge lib */
    char tpath[400];
    snprintf(tpath, sizeof tpath, "%s/evil_arg.lua", dir);
    FILE *tf = fopen(tpath, "w");
    fprintf(tf, "return { name = \"evil_arg\", reference = \"none\", params = { N = { min = 1 } },\n"
                "  lib = { params = { \"N\" }, no_fallback = \"test\" },\n"
                "  build = function(p, t)\n"
                "    local x = kf.arg{ name = \"zz\\n#include \\\"/etc/passwd\\\"\\n\", dtype = \"f32\", dims = { 1, 16 } }\n"
                "    local y = kf.arg{ name = \"y\", dtype = \"f32\", dims = { 1, 16 }, out = true }\n"
                "    local r = kf.reg{ name = \"r\", dtype = \"f32\", dims = { 1, 16 } }\n"
                "    kf.load(r, x:tile({ 0, 0 }, { 1, 16 }))\n    kf.store(y:tile({ 0, 0 }, { 1, 16 }), r)\n  end }\n");
    fclose(tf);
    kf_vec_free(&list);
    f = fopen(shapes, "w");
    fprintf(f, "%s N=16\n", tpath);
    fclose(f);
    kf_shapes_read(&ctx, shapes, &list);
    char evil_out[400];
    snprintf(evil_out, sizeof evil_out, "%s/evil_out", dir);
    rc = kf_lib_build(&ctx, s, &list, "cpu-host", evil_out, NULL, NULL, log);
    TT_CHECK(rc != 0 && strstr(kf_errmsg(&ctx), "kernel argument") && strstr(kf_errmsg(&ctx), "not a C identifier"),
             "an argument named 'zz\\n#include ...' never reaches the C: %.200s", kf_errmsg(&ctx));
    snprintf(cmd, sizeof cmd, "grep -rqs 'passwd' %s", evil_out);
    TT_CHECK(system(cmd) != 0, "no file under the output directory mentions the injected include");
  }
  kf_vec_free(&list);
  f = fopen(shapes, "w");
  fprintf(f, "M=2,N=48,K=96\n");
  fclose(f);
  kf_shapes_read(&ctx, shapes, &list);
  rc = kf_lib_build(&ctx, s, &list, "cpu-host", out, NULL, NULL, log);
  TT_CHECK(rc != 0 && strstr(kf_errmsg(&ctx), "TEMPLATE"), "shape line without a template: %s", kf_errmsg(&ctx));
  kf_vec_free(&list);
  kf_store_close(s);
  fclose(log);
  return tt_finish(dir);
}

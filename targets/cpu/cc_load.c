/*
** cc_load.c: compile emitted C with the system C compiler into a shared object and
** dlopen() it (how kforge runs C-emitted kernels for check, bench and tune).
**
** The source goes to a private directory (mkdtemp); the compiler runs through posix_spawn
** with an argument vector (no shell, so nothing in a name or flag is interpreted); its
** stderr goes to a file whose first lines become the error message. All files are removed
** before returning: the loaded object stays mapped after its file is unlinked.
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target.h"

extern char **environ;

#ifndef KF_C_COMPILER
#define KF_C_COMPILER "cc"
#endif

/* Flags the emitted C needs for exact LIR semantics (see emit_c.c), then the target's. */
static const char *const base_flags[] = {"-std=gnu11", "-O2", "-fPIC", "-shared",
                                         "-ffp-contract=off", "-fno-math-errno",
                                         "-Wall", "-Wextra", "-Werror", NULL};

static void release_so(kf_loaded *self) {
  if (self->impl) dlclose(self->impl);
  self->impl = NULL;
  self->fn = NULL;
}

/* First lines of a file (at most max_lines and ~1500 bytes) into out. */
static void head_of(const char *path, int max_lines, char *out, size_t cap) {
  out[0] = 0;
  FILE *fp = fopen(path, "r");
  if (!fp) return;
  size_t n = 0;
  int lines = 0;
  char line[512];
  while (lines < max_lines && fgets(line, sizeof line, fp)) {
    size_t len = strlen(line);
    if (n + len + 1 >= cap) break;
    memcpy(out + n, line, len + 1);
    n += len;
    lines++;
  }
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
  fclose(fp);
}

static const char *compiler_path(void) {
  const char *cc = KF_C_COMPILER;
  if (cc[0] == '/' && access(cc, X_OK) != 0) return "cc"; /* configured compiler moved */
  return cc;
}

/* Runs argv (argv[0] looked up in PATH), stderr to err_path, stdout discarded.
** Returns the exit status, or -1 with errno when it could not be started. */
static int run(char *const *argv, const char *err_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid;
  int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e) {
    errno = e;
    return -1;
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int kf_cc_load(kf_ctx *ctx, const char *c_source, const char *fn_name, const kf_target *t,
               kf_loaded *out) {
  memset(out, 0, sizeof *out);
  if (!c_source || !fn_name || !*fn_name)
    return kf_err(ctx, KF_EINVAL, "cc_load: no source or no function name");
  const char *tmp = getenv("TMPDIR");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/kforge-cc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return kf_err(ctx, KF_EIO, "cc_load: mkdtemp(%s): %s", dir, strerror(errno));
  char c_path[600], so_path[600], err_path[600];
  snprintf(c_path, sizeof c_path, "%s/kernel.c", dir);
  snprintf(so_path, sizeof so_path, "%s/kernel.so", dir);
  snprintf(err_path, sizeof err_path, "%s/cc.err", dir);

  int rc = kf_write_file(ctx, c_path, c_source, strlen(c_source));
  if (rc) goto cleanup;

  /* argv: compiler, base flags, target flags (split on blanks), output, input, -lm */
  char *flags = kf_xstrdup(t && t->cc_flags ? t->cc_flags : "");
  size_t n_flags = 0;
  for (char *p = flags; *p; p++) n_flags += *p == ' ';
  char **argv = kf_xcalloc(n_flags + 32, sizeof *argv);
  size_t n = 0;
  argv[n++] = (char *)compiler_path();
  for (int i = 0; base_flags[i]; i++) argv[n++] = (char *)base_flags[i];
  for (char *tok = strtok(flags, " \t"); tok; tok = strtok(NULL, " \t")) argv[n++] = tok;
  argv[n++] = "-o";
  argv[n++] = so_path;
  argv[n++] = c_path;
  argv[n++] = "-lm";
  argv[n] = NULL;
  double t0 = kf_now();
  int status = run(argv, err_path);
  if (status != 0) {
    char msg[1600];
    if (status < 0) {
      rc = kf_err(ctx, KF_ECOMPILE, "cc_load: cannot run C compiler '%s': %s", argv[0],
                  strerror(errno));
    } else {
      head_of(err_path, 12, msg, sizeof msg);
      rc = kf_err(ctx, KF_ECOMPILE, "C compiler '%s' failed (status %d) on kernel %s:\n%s",
                  argv[0], status, fn_name, msg[0] ? msg : "(no message)");
    }
  }
  if (ctx->verbose)
    fprintf(stderr, "kforge: compiled %s with %s in %.2f s\n", fn_name, argv[0], kf_now() - t0);
  free(argv);
  free(flags);
  if (rc) goto cleanup;

  void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    rc = kf_err(ctx, KF_ECOMPILE, "cc_load: dlopen of the compiled kernel %s failed: %s", fn_name,
                why ? why : "?");
    goto cleanup;
  }
  dlerror();
  void *sym = dlsym(h, fn_name);
  if (!sym) {
    const char *why = dlerror();
    rc = kf_err(ctx, KF_ECOMPILE, "cc_load: the compiled code has no function '%s' (%s)", fn_name,
                why ? why : "symbol is NULL");
    dlclose(h);
    goto cleanup;
  }
  /* object pointer -> function pointer, as POSIX dlsym requires */
  memcpy(&out->fn, &sym, sizeof out->fn);
  out->impl = h;
  out->release = release_so;

cleanup:
  unlink(c_path);
  unlink(so_path);
  unlink(err_path);
  rmdir(dir);
  return rc;
}

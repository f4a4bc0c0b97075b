/*
** cli.c: the verbs' option parser (cli.h).
*/
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kf_cli_usage(const char *verb, const char *fmt, ...) {
  fprintf(stderr, "kforge %s: error: ", verb);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see 'kforge %s --help')\n", verb);
  return KF_CLI_USAGE;
}

int kf_cli_index(const kf_cli_opt *opts, int n_opts, const char *name) {
  for (int i = 0; i < n_opts; i++)
    if (!strcmp(opts[i].name, name)) return i;
  return -1;
}

int kf_cli_parse(const char *verb, int argc, char **argv, const kf_cli_opt *opts, int n_opts, int max_pos,
                 kf_cli *out) {
  memset(out, 0, sizeof *out);
  if (n_opts > KF_CLI_MAX_OPTS) n_opts = KF_CLI_MAX_OPTS;
  int only_pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) return KF_CLI_HELP;
    if (!only_pos && !strcmp(a, "--")) {
      only_pos = 1;
      continue;
    }
    if (only_pos || a[0] != '-' || !a[1]) { /* "-" alone is a positional (stdin) */
      if (out->n_pos == max_pos)
        return max_pos ? kf_cli_usage(verb, "unexpected argument '%s'", a)
                       : kf_cli_usage(verb, "'%s': this verb takes no arguments", a);
      out->pos[out->n_pos++] = a;
      continue;
    }
    char name[64];
    const char *eq = a[1] == '-' ? strchr(a, '=') : NULL, *val = NULL;
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    if (nl >= sizeof name) return kf_cli_usage(verb, "unknown option '%.60s...'", a);
    memcpy(name, a, nl);
    name[nl] = 0;
    int k = kf_cli_index(opts, n_opts, name);
    if (k < 0) return kf_cli_usage(verb, "unknown option '%s'", name);
    if (opts[k].takes_value) {
      if (eq) val = eq + 1;
      else if (i + 1 < argc) val = argv[++i];
      else return kf_cli_usage(verb, "option %s needs a value", name);
    } else if (eq) {
      return kf_cli_usage(verb, "option %s takes no value (got '%s')", name, eq + 1);
    } else {
      val = "";
    }
    if (out->n[k] && !opts[k].repeatable) return kf_cli_usage(verb, "option %s given more than once", name);
    if (out->n[k] == KF_CLI_MAX_REPEAT) return kf_cli_usage(verb, "option %s given too many times", name);
    out->all[k][out->n[k]++] = val;
    out->val[k] = val;
  }
  return KF_CLI_OK;
}

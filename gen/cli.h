/*
** cli.h: the one command-line parser of kforge's verbs. A verb lists the options it takes;
** `--opt value` and `--opt=value` both work, an option the verb does not take is named as
** unknown, one given twice is an error unless it may repeat, `-h`/`--help` asks for help.
** Errors are printed as one line "kforge VERB: error: ... (see 'kforge VERB --help')".
*/
#ifndef KF_CLI_H
#define KF_CLI_H

#define KF_CLI_MAX_OPTS 32
#define KF_CLI_MAX_REPEAT 24
#define KF_CLI_MAX_POS 4

typedef struct kf_cli_opt {
  const char *name;  /* "--shape", "-o" */
  int takes_value;
  int repeatable;    /* may be given more than once (each value kept) */
} kf_cli_opt;

typedef struct kf_cli {
  const char *val[KF_CLI_MAX_OPTS];  /* the option's value ("" for a flag); NULL when absent */
  const char *all[KF_CLI_MAX_OPTS][KF_CLI_MAX_REPEAT]; /* repeatable options: every value */
  int n[KF_CLI_MAX_OPTS];
  const char *pos[KF_CLI_MAX_POS];   /* positional arguments */
  int n_pos;
} kf_cli;

enum { KF_CLI_OK = 0, KF_CLI_HELP = -1, KF_CLI_USAGE = 2 };

/* Parses argv[1..argc-1] against opts[0..n_opts-1] with at most max_pos positional arguments.
** Returns KF_CLI_OK, KF_CLI_HELP, or KF_CLI_USAGE (the error already printed). */
int kf_cli_parse(const char *verb, int argc, char **argv, const kf_cli_opt *opts, int n_opts, int max_pos,
                 kf_cli *out);
/* The index of option `name` in opts (for reading out->val), or -1. */
int kf_cli_index(const kf_cli_opt *opts, int n_opts, const char *name);
/* Prints "kforge VERB: error: <fmt ...> (see 'kforge VERB --help')" and returns KF_CLI_USAGE. */
int kf_cli_usage(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

/*
** kf_tuner_cli.h: the tuner's verbs of the kforge command line. argv[0] is the verb:
** "tune", "db", "lib" or "plot". Returns the process exit status (0 ok, 1 failed check
** or nothing found, 2 usage or other error).
*/
#ifndef KF_TUNER_CLI_H
#define KF_TUNER_CLI_H

#include "kf.h"
/* tune, db, lib, plot; base: the CLI's context (its target set). */
int kf_tuner_main(const kf_ctx *base, int argc, char **argv);

#endif

/*
** kf_tuner_cli.h: the tuner's verbs of the kforge command line. argv[0] is the verb:
** "tune", "db", "lib" or "plot". Returns the process exit status (0 ok, 1 failed check
** or nothing found, 2 usage or other error).
*/
#ifndef KF_TUNER_CLI_H
#define KF_TUNER_CLI_H

int kf_tuner_main(int argc, char **argv);

#endif

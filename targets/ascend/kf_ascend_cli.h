/*
** kf_ascend_cli.h: the `kforge sim` command (targets/ascend/asc_cli.c).
*/
#ifndef KF_ASCEND_CLI_H
#define KF_ASCEND_CLI_H

/* argv[0] = "sim"; returns the process exit status (0 ok, 1 check failed, 2 error). */
int kf_ascend_main(int argc, char **argv);

#endif

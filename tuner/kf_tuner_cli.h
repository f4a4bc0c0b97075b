/*
** kf_tuner_cli.h: the tuner's verbs of the kforge command line. argv[0] is the verb:
** "tune", "db", "lib" or "plot". Returns the process exit status (0 ok, 1 failed check
** or nothing found, 2 usage or other error).
*/
#ifndef KF_TUNER_CLI_H
#define KF_TUNER_CLI_H

#include <stddef.h>

#include "kf.h"
/* tune, db, lib, plot; base: the CLI's context (its target set). */
int kf_tuner_main(const kf_ctx *base, int argc, char **argv);

/* --shard auto: this task's shard from a Slurm job array (SLURM_ARRAY_TASK_ID with
** SLURM_ARRAY_TASK_MIN/MAX[/STEP] or SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job
** (JOB_COMPLETION_INDEX with count_opt = --shard-count). 0, or -1 with the reason in why
** (on success why says where the index came from). */
int kf_shard_from_env(long count_opt, int *shard_i, int *shard_n, char *why, size_t n_why);

#endif

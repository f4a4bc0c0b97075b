/* kforge tokenize: the CLI verb over kf_lopt (argv[0] = "tokenize"). */
#ifndef KF_LOPT_CLI_H
#define KF_LOPT_CLI_H

#ifdef __cplusplus
extern "C" {
#endif

/* Runs `kforge tokenize ...`; returns the process exit status (0 ok, 1 error, 2 usage). */
int kf_tokenize_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

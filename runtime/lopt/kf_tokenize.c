/* kf-tokenize: standalone `kforge tokenize` for testing the lopt module on its own. */
#include "kf_lopt_cli.h"

int main(int argc, char **argv) {
  char name[] = "tokenize";
  if (argc > 0) argv[0] = name;
  return kf_tokenize_main(argc, argv);
}

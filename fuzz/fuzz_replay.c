/*
** fuzz_replay.c: runs a libFuzzer target on files (the seed corpus) without libFuzzer, so the
** normal test suite (and its ASan build) exercises every fuzz target on its seeds.
** Usage: fuzz_replay_NAME FILE...
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      fprintf(stderr, "fuzz_replay: cannot open %s\n", argv[i]);
      return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    LLVMFuzzerTestOneInput(b, got);
    free(b);
    printf("ok  : %s (%zu bytes)\n", argv[i], got);
  }
  return 0;
}

/*
** fuzz_safetensors.c: libFuzzer target for the safetensors reader (model/kf_ckpt.c). Any input
** must be rejected with a message naming the file, or accepted with every tensor inside the
** input; accepted float tensors are converted (reads every byte the header claims), and a
** small accepted checkpoint is packed and the packed file loaded back (kf_pack_open validates).
** Links: kforge_model (kf_quant, cJSON).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_model.h"
#include "fuzz_ckpt_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kf_fuzz_ckpt(data, size, 0, "fuzz.safetensors");
  return 0;
}

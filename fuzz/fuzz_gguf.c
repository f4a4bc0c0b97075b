/*
** fuzz_gguf.c: libFuzzer target for the GGUF reader (model/kf_ckpt.c) and the mapping of its
** Q8_0 / Q4_0 / MXFP4 blocks onto kforge codes (model/kf_model_pack.c): any input is rejected
** with a message naming the file, or accepted with every tensor inside the input; a small
** accepted file is packed (blocks -> codes; NaN scales and unrepresentable codes are errors)
** and the packed file loaded back. Links: kforge_model (kf_quant, cJSON).
*/
#include "kf_model.h"
#include "fuzz_ckpt_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kf_fuzz_ckpt(data, size, 1, "fuzz.gguf");
  return 0;
}

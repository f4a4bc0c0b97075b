/*
** fuzz_ckpt_common.h: the body shared by fuzz_safetensors.c and fuzz_gguf.c (header-only so
** that each target stays one .c file for kf_fuzz_target).
*/
#ifndef FUZZ_CKPT_COMMON_H
#define FUZZ_CKPT_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_model.h"

static void kf_fuzz_fail(const char *what, const char *err) {
  fprintf(stderr, "fuzz: %s: %s\n", what, err);
  abort();
}

static void kf_fuzz_ckpt(const uint8_t *data, size_t size, int gguf, const char *label) {
  uint8_t *copy = calloc(size ? size : 1, 1); /* exactly size bytes: over-reads are ASan errors */
  if (size) memcpy(copy, data, size);
  kf_ckpt ck;
  memset(&ck, 0, sizeof ck);
  char err[768] = "";
  if (kf_ckpt_add_mem(&ck, copy, size, label, gguf, err, sizeof err)) {
    if (!strstr(err, label)) kf_fuzz_fail("error message does not name the file", err);
  } else {
    int64_t total = 0;
    for (size_t i = 0; i < ck.n_tensors; i++) {
      const kf_ckpt_tensor *t = &ck.tensors[i];
      if (t->data < copy || t->bytes > size || t->data + t->bytes > copy + size) kf_fuzz_fail("tensor outside input", t->name);
      total += kf_ckpt_tensor_elems(t);
    }
    if (total <= (1 << 18)) {
      for (size_t i = 0; i < ck.n_tensors; i++) {
        float *f = malloc((size_t)kf_ckpt_tensor_elems(&ck.tensors[i]) * sizeof(float));
        kf_ckpt_tensor_f32(&ck.tensors[i], f, err, sizeof err);
        free(f);
      }
      char path[64];
      snprintf(path, sizeof path, "/tmp/kf_fuzz_%d.kfpack", (int)getpid());
      kf_pack_opts o;
      memset(&o, 0, sizeof o);
      o.quant = KF_QUANT_W8;
      if (kf_model_pack(&ck, &o, path, err, sizeof err) == 0) {
        kf_pack *p;
        if (kf_pack_open(&p, path, err, sizeof err)) kf_fuzz_fail("kforge pack wrote a file its loader rejects", err);
        kf_pack_close(p);
        unlink(path);
      }
    }
  }
  kf_ckpt_free(&ck);
  free(copy);
}

#endif

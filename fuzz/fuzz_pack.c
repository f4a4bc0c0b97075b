/*
** fuzz_pack.c: libFuzzer target for the packed-file loader (runtime/quant/kf_pack.c): any input
** is rejected with a message naming the file, or accepted with every array inside the input;
** accepted tensors are decoded (kf_pack_tensor_f32) and weights re-laid out in both layouts
** (kf_pack_tensor_qweight). Each input runs twice: as given (the checksums catch most
** mutations), then with its checksums recomputed, so that the entry checks behind them are
** reached too.
** Links: kf_quant.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *err) {
  fprintf(stderr, "fuzz_pack: %s: %s\n", what, err);
  abort();
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint64_t get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Recomputes the tensor, TOC, metadata and header checksums where the fields allow it. */
static void fix_crcs(uint8_t *b, size_t n) {
  if (n < 64) return;
  uint32_t nt;
  memcpy(&nt, b + 12, 4);
  uint64_t toc = get64(b + 24), mo = get64(b + 32), ml = get64(b + 40);
  if (toc <= n && (uint64_t)nt <= (n - toc) / 256) {
    for (uint32_t i = 0; i < nt; i++) {
      uint8_t *e = b + toc + 256ull * i;
      uint64_t d = get64(e + 192), dl = get64(e + 200), s = get64(e + 208), sl = get64(e + 216);
      if (d <= n && dl <= n - d && s <= n && sl <= n - s) {
        uint32_t c = kf_pack_crc32(0, b + d, (size_t)dl);
        put32(e + 140, sl ? kf_pack_crc32(c, b + s, (size_t)sl) : c);
      }
    }
    put32(b + 48, kf_pack_crc32(0, b + toc, (size_t)nt * 256));
  }
  if (mo <= n && ml <= n - mo) put32(b + 52, kf_pack_crc32(0, b + mo, (size_t)ml));
  put32(b + 60, kf_pack_crc32(0, b, 60));
}

static void one(const uint8_t *b, size_t n) {
  kf_pack *p;
  char err[768] = "";
  if (kf_pack_open_mem(&p, b, n, "fuzz.kfpack", err, sizeof err)) {
    if (!strstr(err, "fuzz.kfpack")) fail("error message does not name the file", err);
    return;
  }
  for (size_t i = 0; i < kf_pack_count(p); i++) {
    const kf_pack_tensor *t = kf_pack_tensor_at(p, i);
    const uint8_t *d = t->data;
    if (d < b || t->data_bytes > n || d + t->data_bytes > b + n) fail("tensor data outside the input", t->name);
    if (kf_pack_find(p, t->name) != t) fail("kf_pack_find does not find", t->name);
    int64_t e = kf_pack_tensor_elems(t);
    if (e > (1 << 18)) continue;
    float *f = malloc((size_t)e * sizeof(float));
    if (kf_pack_tensor_f32(t, f, err, sizeof err)) fail("decode of an accepted tensor failed", err);
    free(f);
    if (t->format >= KF_PACK_W8) {
      for (int l = 0; l < 2; l++) {
        kf_qweight q;
        if (kf_pack_tensor_qweight(t, (kf_wlayout)l, &q, err, sizeof err)) fail("relayout of an accepted weight failed", err);
        kf_qweight_free(&q);
      }
    }
  }
  kf_pack_close(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = calloc(size ? size : 1, 1);
  if (size) memcpy(copy, data, size);
  one(copy, size); /* as given */
  fix_crcs(copy, size);
  one(copy, size); /* with consistent checksums: reaches the entry checks */
  free(copy);
  return 0;
}

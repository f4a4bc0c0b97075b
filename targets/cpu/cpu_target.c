/*
** cpu_target.c: the CPU targets kforge can generate for, and host feature detection.
**
** Each target is an ISA level that can be forced with --target, so tests exercise every
** path this machine can run; "cpu-host" resolves to the best level the host supports.
*/
#include <cpuid.h>
#include <stdio.h>
#include <string.h>

#include "target.h"

static const kf_target targets[] = {
    {"cpu-generic", KF_ISA_GENERIC, 0, 0, 4, "x86-64", "", "-march=x86-64 -mtune=generic"},
    {"cpu-avx2", KF_ISA_AVX2, 0, 0, 8, "haswell", "+avx,+avx2,+fma,+f16c,+bmi2",
     "-march=x86-64 -mavx2 -mfma -mf16c -mbmi2"},
    {"cpu-avx2-vnni", KF_ISA_AVX2, 1, 0, 8, "haswell", "+avx,+avx2,+fma,+f16c,+bmi2,+avxvnni",
     "-march=x86-64 -mavx2 -mfma -mf16c -mbmi2 -mavxvnni"},
    {"cpu-avx512", KF_ISA_AVX512, 0, 0, 16, "skylake-avx512",
     "+avx,+avx2,+fma,+f16c,+bmi2,+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512cd",
     "-march=x86-64 -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512dq "
     "-mavx512cd -mprefer-vector-width=512"},
    {"cpu-avx512-vnni", KF_ISA_AVX512, 1, 1, 16, "znver4",
     "+avx,+avx2,+fma,+f16c,+bmi2,+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512cd,"
     "+avx512vnni,+avx512bf16",
     "-march=x86-64 -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512dq "
     "-mavx512cd -mavx512vnni -mavx512bf16 -mprefer-vector-width=512"},
};
enum { N_TARGETS = sizeof targets / sizeof targets[0] };

const char *const kf_target_names[] = {"cpu-host",   "cpu-generic",    "cpu-avx2",
                                       "cpu-avx2-vnni", "cpu-avx512", "cpu-avx512-vnni",
                                       NULL};

typedef struct host_features {
  int avx2, fma, avx_vnni, avx512, avx512_vnni, avx512_bf16;
} host_features;

static unsigned long long read_xcr0(void) {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

static host_features detect(void) {
  host_features h = {0};
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return h;
  int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  h.fma = (c >> 12) & 1;
  if (!osxsave || !avx) return h;
  unsigned long long xcr0 = read_xcr0();
  int os_avx = (xcr0 & 6) == 6, os_avx512 = (xcr0 & 0xe6) == 0xe6;
  if (!os_avx) return h;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    h.avx2 = (b >> 5) & 1;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    h.avx512 = os_avx512 && f && dq && bw && vl;
    h.avx512_vnni = h.avx512 && ((c >> 11) & 1);
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    h.avx_vnni = h.avx2 && ((a >> 4) & 1);
    h.avx512_bf16 = h.avx512 && ((a >> 5) & 1);
  }
  return h;
}

int kf_target_runnable(const kf_target *t, const char **why) {
  host_features h = detect();
  const char *missing = NULL;
  if (t->isa >= KF_ISA_AVX2 && !(h.avx2 && h.fma)) missing = "AVX2/FMA";
  else if (t->isa == KF_ISA_AVX2 && t->has_vnni && !h.avx_vnni) missing = "AVX-VNNI";
  else if (t->isa == KF_ISA_AVX512 && !h.avx512) missing = "AVX-512 F/BW/VL/DQ";
  else if (t->isa == KF_ISA_AVX512 && t->has_vnni && !h.avx512_vnni) missing = "AVX512_VNNI";
  else if (t->isa == KF_ISA_AVX512 && t->has_bf16 && !h.avx512_bf16) missing = "AVX512_BF16";
  if (why) *why = missing;
  return missing == NULL;
}

int kf_target_get(kf_ctx *ctx, const char *name, kf_target *out) {
  if (!name || !strcmp(name, "cpu-host") || !strcmp(name, "host") || !strcmp(name, "cpu")) {
    for (int i = N_TARGETS - 1; i >= 0; i--)
      if (kf_target_runnable(&targets[i], NULL)) {
        *out = targets[i];
        return KF_OK;
      }
    kf_assert(!"cpu-generic is always runnable");
  }
  for (int i = 0; i < N_TARGETS; i++)
    if (!strcmp(targets[i].name, name)) {
      *out = targets[i];
      return KF_OK;
    }
  kf_str names = {0};
  for (int i = 0; kf_target_names[i]; i++) kf_str_printf(&names, "%s%s", i ? ", " : "", kf_target_names[i]);
  int rc = kf_err(ctx, KF_EINVAL, "unknown target '%s' (known: %s)", name, names.data);
  kf_str_free(&names);
  return rc;
}

void kf_host_describe(kf_str *out) {
  char model[128] = "unknown CPU";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "model name", 10)) {
        char *p = strchr(line, ':');
        if (p) {
          p++;
          while (*p == ' ') p++;
          snprintf(model, sizeof model, "%s", p);
          model[strcspn(model, "\n")] = 0;
        }
        break;
      }
    fclose(f);
  }
  host_features h = detect();
  kf_str_printf(out, "%s [%s%s%s%s%s%s]", model, h.avx2 ? "avx2 " : "", h.fma ? "fma " : "",
                h.avx_vnni ? "avx-vnni " : "", h.avx512 ? "avx512 " : "",
                h.avx512_vnni ? "avx512-vnni " : "", h.avx512_bf16 ? "avx512-bf16" : "");
}

void kf_loaded_release(kf_loaded *k) {
  if (k && k->release) k->release(k);
  if (k) memset(k, 0, sizeof *k);
}

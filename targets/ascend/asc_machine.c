/*
** asc_machine.c: the machine table. Sources: shared/refs/amla.md section 3 ("[D]" there),
** arithmetic on those ("[R]"), and our estimates ("[E]") where no public number was found.
*/
#include "asc_machine.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char *kf_asc_pipe_name(int pipe) {
  static const char *const names[KF_ASC_N_PIPES] = {"S", "MTE2", "MTE1", "M", "FIX", "V", "MTE3"};
  return pipe >= 0 && pipe < KF_ASC_N_PIPES ? names[pipe] : "?";
}

/* One Ascend 910B2 / A3 die. */
static const kf_asc_machine die_910b = {
    .name = "ascend910b",
    .n_dies = 1,
    .aic_per_die = 24,
    .aiv_per_aic = 2,
    .freq_hz = 1.8e9,
    .cube_m = 16,
    .cube_n = 16,
    .cube_k = 16,
    .cube_k_int8 = 32,
    .mmad_overhead = 16,
    .l1_bytes = 512 * 1024,
    .l0a_bytes = 64 * 1024,
    .l0b_bytes = 64 * 1024,
    .l0c_bytes = 128 * 1024,
    .ub_bytes = 192 * 1024,
    .mte1_bpc = 256,
    .mte1_overhead = 16,
    .vec_bpc = 256,
    .vec_overhead = 20,
    .vec_exp_cost = 4,
    .hbm_bpc = 1.6e12 / 1.8e9,
    .l2_bpc = 24 * 110.0,
    .l2_write_bpc = 24 * 86.0,
    .core_hbm_bpc = 32,
    .core_l2_bpc = 110,
    .core_l2_write_bpc = 86,
    .l2_bytes = 192LL * 1024 * 1024,
    .l2_line = 512,
    .gm_latency = 200,
    .flag_intra = 8,
    .flag_cross = 200,
    .s_issue = 2,
};

int kf_asc_machine_get(kf_ctx *ctx, const char *name, kf_asc_machine *out) {
  if (!name || !strcmp(name, "ascend910b")) {
    *out = die_910b;
    return KF_OK;
  }
  if (!strcmp(name, "ascend910c")) {
    *out = die_910b;
    out->name = "ascend910c";
    out->n_dies = 2;
    return KF_OK;
  }
  return kf_err(ctx, KF_EINVAL, "unknown Ascend machine '%s' (known: ascend910b = one die, ascend910c = 2-die package)",
                name);
}

int kf_asc_machine_n_aic(const kf_asc_machine *m) { return m->n_dies * m->aic_per_die; }
int kf_asc_machine_n_aiv(const kf_asc_machine *m) { return m->n_dies * m->aic_per_die * m->aiv_per_aic; }

double kf_asc_machine_peak_flops(const kf_asc_machine *m, int int8) {
  double per_cycle = 2.0 * m->cube_m * m->cube_n * (int8 ? m->cube_k_int8 : m->cube_k);
  return per_cycle * kf_asc_machine_n_aic(m) * m->freq_hz;
}

void kf_asc_machine_describe(const kf_asc_machine *m, kf_str *o) {
  kf_str_printf(o, "machine %s: %d die(s); per die %d AIC + %d AIV\n", m->name, m->n_dies, m->aic_per_die,
                m->aic_per_die * m->aiv_per_aic);
  kf_str_printf(o, "  dies per package      2 (910C)                [D] aiwiki 910C; CloudMatrix384 = 384 x 910C\n");
  kf_str_printf(o, "  AIC / AIV per die     %d / %d                 [D] Ascend910B2.ini cube_core_cnt=24, vector_core_cnt=48\n",
                m->aic_per_die, m->aic_per_die * m->aiv_per_aic);
  kf_str_printf(o, "  clock                 %.2f GHz              [D] HW-model config 910B2/A3 (1.8 GHz)\n", m->freq_hz / 1e9);
  kf_str_printf(o, "  Cube step             %dx%dx%d bf16, k=%d int8  [D] ini [DtypeMKN] Default=16,16,16; DT_INT8=16,32,16\n",
                m->cube_m, m->cube_n, m->cube_k, m->cube_k_int8);
  kf_str_printf(o, "  Cube peak (machine)   %.1f TFLOPS bf16, %.1f int8  [R] AICs x 8192 FLOP/cycle x clock\n",
                kf_asc_machine_peak_flops(m, 0) / 1e12, kf_asc_machine_peak_flops(m, 1) / 1e12);
  kf_str_printf(o, "  mmad overhead         %lld cycles             [E]\n", (long long)m->mmad_overhead);
  kf_str_printf(o, "  L1 / L0A / L0B / L0C  %lld / %lld / %lld / %lld KB   [D] ini, pto-isa / tilelang-ascend docs\n",
                (long long)(m->l1_bytes >> 10), (long long)(m->l0a_bytes >> 10), (long long)(m->l0b_bytes >> 10),
                (long long)(m->l0c_bytes >> 10));
  kf_str_printf(o, "  UB per AIV            %lld KB                 [D] same\n", (long long)(m->ub_bytes >> 10));
  kf_str_printf(o, "  MTE1 L1->L0           %.0f B/cycle + %lld cycles  [E]\n", m->mte1_bpc, (long long)m->mte1_overhead);
  kf_str_printf(o, "  vector datapath       %.0f B/cycle (64 fp32)  [D] Hot Chips 2019 (2048-bit), ini vec_calc_size=128\n",
                m->vec_bpc);
  kf_str_printf(o, "  vector instr overhead %lld cycles             [E]\n", (long long)m->vec_overhead);
  kf_str_printf(o, "  vector exp            %.0f passes             [E]\n", m->vec_exp_cost);
  kf_str_printf(o, "  HBM per die           %.0f B/cycle (%.2f TB/s) [D] HW-model config 910B2/A3 (~1.6 TB/s)\n",
                m->hbm_bpc, m->hbm_bpc * m->freq_hz / 1e12);
  kf_str_printf(o, "  L2 per die            %lld MB                 [D] ini l2_size=201326592\n", (long long)(m->l2_bytes >> 20));
  kf_str_printf(o, "  L2 bandwidth per die  read %.0f, write %.0f B/cycle  [E] 24 x the per-core rates; reads and writes on\n"
                   "                        separate channels (the ini rates them separately, as AXI-style buses carry them)\n",
                m->l2_bpc, m->l2_write_bpc);
  kf_str_printf(o, "  per-transfer caps     HBM %.0f, L2 read %.0f, L2 write %.0f B/cycle  [D] Ascend910B2C.ini ddr_rate=32,\n"
                   "                        l2_read_rate=110, l2_write_rate=86 (unit [R])\n",
                m->core_hbm_bpc, m->core_l2_bpc, m->core_l2_write_bpc);
  kf_str_printf(o, "  L2 model line         %lld B, 32 B sectors (LRU)  [E] modelling granularity\n", (long long)m->l2_line);
  kf_str_printf(o, "  GM access latency     %lld cycles             [E]\n", (long long)m->gm_latency);
  kf_str_printf(o, "  flag latency          intra-core %lld, cross-core %lld cycles  [E]\n", (long long)m->flag_intra,
                (long long)m->flag_cross);
  kf_str_printf(o, "  store buffer release  %s  [E] unknown: whether a pipe's completion flag\n"
                   "                        waits for the write to land; --param store_release=1 frees it at issue\n",
                m->store_release ? "when the store has been sent (store_release=1)" : "when the data has landed in GM");
  kf_str_printf(o, "  scalar issue          %lld cycles/instruction [E]\n", (long long)m->s_issue);
  kf_str_printf(o, "  atomics               FixPipe and MTE3 atomic add fp32/int32 into GM  [C] CANN SetAtomicAdd<T>\n");
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t kf_asc_mmad_cycles(const kf_asc_machine *m, int64_t M, int64_t N, int64_t K, int int8) {
  return cdiv(M, m->cube_m) * cdiv(N, m->cube_n) * cdiv(K, int8 ? m->cube_k_int8 : m->cube_k) + m->mmad_overhead;
}

int64_t kf_asc_mte1_cycles(const kf_asc_machine *m, int64_t bytes) {
  return m->mte1_overhead + (int64_t)ceil((double)bytes / m->mte1_bpc);
}

int64_t kf_asc_vec_cycles(const kf_asc_machine *m, int64_t bytes, double passes) {
  return m->vec_overhead + (int64_t)ceil(passes * (double)bytes / m->vec_bpc);
}

int kf_asc_machine_set(kf_ctx *ctx, kf_asc_machine *m, const char *text) {
  static const struct {
    const char *name;
    size_t off;
    int is_double;
    double min;
  } fields[] = {
#define D_(f, lo) {#f, offsetof(kf_asc_machine, f), 1, lo}
#define I_(f, lo) {#f, offsetof(kf_asc_machine, f), 0, lo}
      D_(freq_hz, 1e6),     I_(mmad_overhead, 0), D_(mte1_bpc, 1),    I_(mte1_overhead, 0), D_(vec_bpc, 1),
      I_(vec_overhead, 0),  D_(vec_exp_cost, 0),  D_(hbm_bpc, 1),     D_(l2_bpc, 1),        D_(core_hbm_bpc, 1),
      D_(core_l2_bpc, 1),   D_(l2_write_bpc, 1),  D_(core_l2_write_bpc, 1),   I_(l2_bytes, 0),      I_(gm_latency, 0),  I_(flag_intra, 0),    I_(flag_cross, 0),
      I_(s_issue, 0),       I_(store_release, 0),
#undef D_
#undef I_
  };
  const char *p = text;
  while (p && *p) {
    const char *eq = strchr(p, '='), *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    if (!eq || eq > end) return kf_err(ctx, KF_EINVAL, "machine parameter '%.*s': expected NAME=VALUE", (int)(end - p), p);
    size_t n = (size_t)(eq - p), i;
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
      if (strlen(fields[i].name) == n && !strncmp(fields[i].name, p, n)) break;
    if (i == sizeof fields / sizeof fields[0])
      return kf_err(ctx, KF_EINVAL, "unknown machine parameter '%.*s' (e.g. core_hbm_bpc, l2_bpc, vec_bpc, vec_exp_cost, gm_latency, flag_cross)",
                    (int)n, p);
    char buf[64];
    size_t vl = (size_t)(end - eq - 1);
    if (vl == 0 || vl >= sizeof buf) return kf_err(ctx, KF_EINVAL, "machine parameter '%s': bad value", fields[i].name);
    memcpy(buf, eq + 1, vl);
    buf[vl] = 0;
    char *stop;
    double v = strtod(buf, &stop);
    if (*stop || !(v >= fields[i].min) || v > 1e15)
      return kf_err(ctx, KF_EINVAL, "machine parameter '%s': bad value '%s'", fields[i].name, buf);
    if (fields[i].is_double) *(double *)((char *)m + fields[i].off) = v;
    else *(int64_t *)((char *)m + fields[i].off) = (int64_t)v;
    p = *end ? end + 1 : end;
  }
  if (m->store_release != 0 && m->store_release != 1)
    return kf_err(ctx, KF_EINVAL, "machine parameter 'store_release': bad value %lld (0 or 1)", (long long)m->store_release);
  return KF_OK;
}

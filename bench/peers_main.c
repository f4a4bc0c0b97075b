/*
** kf-peers: times the CPU GEMM peers (oneDNN bf16, oneDNN u8s8, OpenBLAS dequant+sgemm) on the
** shapes of issue 3 — M ∈ {1, 16, 512} × (N=4096, K=14336) and (N=14336, K=4096) — with weights
** cache-warm and cold, and prints one table row per (shape, mode, peer).
**
**   kf-peers [--threads T] [--budget SECONDS] [--shape M,N,K]... [--warm|--cold]
*/
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kf_peers.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: kf-peers [--threads T] [--budget SECONDS] [--shape M,N,K]... [--warm|--cold]\n"
          "Times oneDNN bf16 / u8s8 matmul and OpenBLAS dequant+sgemm on y = W x\n"
          "(W N x K, x M x K)\n"
          "  --threads T      threads for every peer (default 2)\n"
          "  --budget S       timing budget per peer and shape, seconds (default 1)\n"
          "  --shape M,N,K    a shape (repeatable; default: M in {1,16,512} x (4096,14336) and\n"
          "                   (14336,4096))\n"
          "  --warm / --cold  only cache-warm weights / only a rotating set >= 2x LLC\n"
          "GFLOPS = 2MNK / median; GB/s = (stored weight bytes + x + y) / median.\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

typedef struct shape {
  int64_t M, N, K;
} shape;

int main(int argc, char **argv) {
  int threads = 2, modes = 3; /* bit 0 warm, bit 1 cold */
  double budget = 1.0;
  shape shapes[64];
  int n_shapes = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--warm")) {
      modes = 1;
    } else if (!strcmp(a, "--cold")) {
      modes = 2;
    } else if (!strcmp(a, "--threads") || !strcmp(a, "--budget") || !strcmp(a, "--shape")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "kf-peers: %s needs a value\n", a);
        return 2;
      }
      const char *v = argv[++i];
      long long t;
      if (!strcmp(a, "--threads")) {
        if (parse_int(v, 1, 1024, &t)) {
          fprintf(stderr, "kf-peers: --threads '%s': want an integer in 1..1024\n", v);
          return 2;
        }
        threads = (int)t;
      } else if (!strcmp(a, "--budget")) {
        char *end;
        budget = strtod(v, &end);
        if (end == v || *end || !(budget > 0 && budget < 3600)) {
          fprintf(stderr, "kf-peers: --budget '%s': want seconds in (0, 3600)\n", v);
          return 2;
        }
      } else {
        long long m, n, k;
        char buf[96];
        snprintf(buf, sizeof buf, "%s", v);
        char *c1 = strchr(buf, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2 || (*c1 = 0, *c2 = 0, parse_int(buf, 1, 1 << 20, &m)) ||
            parse_int(c1 + 1, 1, 1 << 20, &n) || parse_int(c2 + 1, 1, 1 << 20, &k)) {
          fprintf(stderr, "kf-peers: --shape '%s': want M,N,K with each in 1..1048576\n", v);
          return 2;
        }
        if (n_shapes == (int)(sizeof shapes / sizeof shapes[0])) {
          fprintf(stderr, "kf-peers: too many --shape options (max 64)\n");
          return 2;
        }
        shapes[n_shapes++] = (shape){m, n, k};
      }
    } else {
      fprintf(stderr, "kf-peers: unknown option '%s' (see --help)\n", a);
      return 2;
    }
  }
  if (n_shapes == 0) {
    const int64_t ms[] = {1, 16, 512};
    const int64_t nk[2][2] = {{4096, 14336}, {14336, 4096}};
    for (int j = 0; j < 2; j++)
      for (int i = 0; i < 3; i++) shapes[n_shapes++] = (shape){ms[i], nk[j][0], nk[j][1]};
  }

  char cpu[256], flags[256], llc_src[64], libs[512], load[128] = "?";
  kf_bench_cpu_model(cpu, sizeof cpu);
  kf_bench_cpu_flags(flags, sizeof flags);
  int64_t llc = kf_bench_llc_bytes(llc_src, sizeof llc_src);
  kf_peers_describe(libs, sizeof libs);
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (!fgets(load, sizeof load, f)) snprintf(load, sizeof load, "?");
    load[strcspn(load, "\n")] = 0;
    fclose(f);
  }
  printf("# CPU: %s [%s]; LLC %.1f MiB (%s); threads %d; budget %.2f s per peer\n", cpu, flags,
         (double)llc / (1 << 20), llc_src, threads, budget);
  printf("# %s\n# load average at start: %s\n", libs, load);
  printf("%-6s %-6s %-6s %-5s %-10s %9s %9s %9s %9s %8s %7s %4s  %s\n", "M", "N", "K", "mode",
         "peer", "median_ms", "min_ms", "p10_ms", "p90_ms", "GFLOPS", "GB/s", "runs", "note");
  int failures = 0;
  for (int s = 0; s < n_shapes; s++) {
    for (int cold = 0; cold < 2; cold++) {
      if (!(modes & (1 << cold))) continue;
      kf_peer_result res[KF_PEER_N];
      int n = kf_peers_gemm(shapes[s].M, shapes[s].N, shapes[s].K, threads, cold, budget, res,
                            KF_PEER_N);
      if (n < 0) {
        fprintf(stderr, "kf-peers: %s\n", res[0].note);
        return 1;
      }
      for (int i = 0; i < n; i++) {
        const kf_peer_result *r = &res[i];
        double flops = 2.0 * (double)shapes[s].M * (double)shapes[s].N * (double)shapes[s].K;
        double act_bytes = (double)(shapes[s].M * shapes[s].K) * (i == KF_PEER_DNNL_U8S8 ? 1 : 2);
        double bytes =
            (double)r->weight_bytes + act_bytes + 4.0 * (double)(shapes[s].M * shapes[s].N);
        if (!r->ok) {
          failures++;
          printf("%-6" PRId64 " %-6" PRId64 " %-6" PRId64 " %-5s %-10s FAILED: %s\n", shapes[s].M,
                 shapes[s].N, shapes[s].K, cold ? "cold" : "warm", r->name, r->note);
          continue;
        }
        printf("%-6" PRId64 " %-6" PRId64 " %-6" PRId64 " %-5s %-10s %9.3f %9.3f %9.3f %9.3f %8.1f "
               "%7.1f %4d  %s%s\n",
               shapes[s].M, shapes[s].N, shapes[s].K, cold ? "cold" : "warm", r->name,
               r->median_s * 1e3, r->min_s * 1e3, r->p10_s * 1e3, r->p90_s * 1e3,
               flops / r->median_s * 1e-9, bytes / r->median_s * 1e-9, r->n_runs, r->note,
               !cold && llc > 0 && r->weight_bytes > llc ? " (weights > LLC: warm reads DRAM too)"
                                                         : "");
        fflush(stdout);
      }
    }
  }
  return failures ? 1 : 0;
}

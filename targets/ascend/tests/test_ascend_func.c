/*
** test_ascend_func: every template on the Ascend target, functional results against the
** fp64 reference within the derived bounds (gen/check.c), including odd shapes, both AMLA
** pipelines, the FA-2 multiply rescale, adversarial attention inputs, MSD pass counts and
** dequant formats; the tuner entry point; and the errors: tilings that do not fit L1 or UB
** (naming the buffer and the template file:line), formats the Cube cannot multiply, an
** unknown machine.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_ascend.h"
#include "kf_ref.h"

static int failures;

static int sim(const char *tmpl, const char *shape, const char *sets, int dist, kf_ascend_result *r, kf_ctx *ctx) {
  kf_ctx_init(ctx);
  kf_binding sh, st;
  memset(&sh, 0, sizeof sh);
  memset(&st, 0, sizeof st);
  kf_template *t = NULL;
  int rc = kf_binding_parse(ctx, shape, "--shape", &sh);
  if (!rc && sets) rc = kf_binding_parse(ctx, sets, "--set", &st);
  if (!rc) rc = kf_template_load(ctx, tmpl, &t);
  kf_ascend_opts o;
  memset(&o, 0, sizeof o);
  o.check = KF_ASCEND_CHECK_FULL;
  o.seed = 7;
  o.dist = dist;
  if (!rc) rc = kf_ascend_simulate(ctx, t, &sh, &st, &o, r);
  kf_template_free(t);
  return rc;
}

static void ok_case(const char *tmpl, const char *shape, const char *sets, int dist) {
  kf_ctx ctx;
  kf_ascend_result *r = kf_xcalloc(1, sizeof *r);
  int rc = sim(tmpl, shape, sets, dist, r, &ctx);
  int ok = rc == KF_OK && r->checked == KF_ASCEND_CHECK_FULL && r->check_ok && r->cycles > 0;
  printf("%-14s %-36s %-22s max|err| %.3g  |err|/bound %.3g  %.0f cycles  %s", tmpl, shape, sets ? sets : "",
         r->check.max_abs, r->check.max_ratio, r->cycles, ok ? "ok\n" : "FAIL");
  if (!ok) printf(": %s\n", rc ? kf_errmsg(&ctx) : "check");
  failures += !ok;
  free(r);
}

static void err_case(const char *what, const char *tmpl, const char *shape, const char *sets, const char *want1,
                     const char *want2) {
  kf_ctx ctx;
  kf_ascend_result *r = kf_xcalloc(1, sizeof *r);
  int rc = sim(tmpl, shape, sets, 0, r, &ctx);
  const char *msg = kf_errmsg(&ctx);
  int ok = rc == KF_EINVAL && strstr(msg, want1) && (!want2 || strstr(msg, want2));
  printf("%-44s %s: %s\n", what, ok ? "ok" : "FAIL", rc ? msg : "(no error)");
  failures += !ok;
  free(r);
}

int main(void) {
  int rising = KF_REF_ATTN_RISING, large = KF_REF_ATTN_LARGE, equal = KF_REF_ATTN_EQUAL;
  /* AMLA decode: preload on/off, several blocks, a 1-key last block, odd head counts */
  ok_case("amla_decode", "H=16,S=300", NULL, 0);
  ok_case("amla_decode", "B=2,H=16,S=1025", "bs=512,preload=1", 0);
  ok_case("amla_decode", "B=2,H=16,S=1025", "bs=512,preload=0", 0);
  ok_case("amla_decode", "B=3,H=3,S=1", NULL, 0);
  ok_case("amla_decode", "B=2,H=6,S=77,D=72,DV=64", "hb=2,bs=64", 0);
  ok_case("amla_decode", "B=1,H=32,S=700", "hb=32,bs=128", rising);
  ok_case("amla_decode", "B=1,H=8,S=300", "hb=8,bs=64", large);
  ok_case("amla_decode", "B=1,H=8,S=260", "hb=4,bs=64", equal);
  /* the FA-2 multiply rescale of O through GM on the same kernel */
  ok_case("amla_decode", "B=2,H=16,S=700,amla=0", "bs=256", 0);
  ok_case("amla_decode", "B=1,H=8,S=700,amla=0", "hb=8,bs=128,preload=0", rising);
  /* FlashAttention-2 decode: GQA, MQA, a short cache */
  ok_case("fa_decode", "B=2,H=8,HKV=2,S=300", NULL, 0);
  ok_case("fa_decode", "B=1,H=5,HKV=1,S=33", "hb=1,bs=32", 0);
  ok_case("fa_decode", "B=3,H=4,S=130,D=64", "hb=1,bs=64", rising);
  /* dequant-then-GEMM (Vector dequant -> GM -> Cube) */
  ok_case("dequant_gemm", "M=5,N=100,K=300", NULL, 0);
  ok_case("dequant_gemm", "M=1,N=1,K=1", "mr=1,nr=16", 0);
  ok_case("dequant_gemm", "M=3,N=40,K=64,bits=4,group=32", "mr=3", 0);
  ok_case("dequant_gemm", "M=17,N=33,K=200", "mr=8,nc=64,kc=128", 0);
  /* MSD: decomposition on Vector, int8 GEMM on Cube */
  ok_case("msd_gemm", "M=5,N=100,K=300", NULL, 0);
  ok_case("msd_gemm", "M=1,N=17,K=33", "mr=1,passes=1", 0);
  ok_case("msd_gemm", "M=7,N=50,K=130", "mr=1,passes=3", 0);
  ok_case("msd_gemm", "M=33,N=64,K=256,act_group=32,group=32", "mr=4,mc=16", 0);
  ok_case("msd_gemm", "M=4,N=48,K=96,bits=4", "mr=4", 0);
  ok_case("msd_gemm", "M=2,N=300,K=5000", "mr=2,nc=128", 0); /* rows longer than a UB buffer */
  /* MSD MXFP4: E2M1 nibble weights decoded to int8 on the Vector, MXFP4 activation passes,
  ** int8 block dots on the Cube, per-32-block power-of-two scales */
  ok_case("msd_mxfp4_gemm", "M=5,N=100,K=300", NULL, 0);
  ok_case("msd_mxfp4_gemm", "M=1,N=17,K=33", "mr=1,passes=1", 0);
  ok_case("msd_mxfp4_gemm", "M=7,N=50,K=130", "mr=1,passes=3", 0);
  ok_case("msd_mxfp4_gemm", "M=3,N=5,K=7", NULL, 0); /* K shorter than one MX block */
  ok_case("msd_mxfp4_gemm", "M=33,N=64,K=256", "mr=4,mc=16", 0);

  /* MSD attention over a quantized KV cache: Q/P decomposed on the Vector, int8 GEMMs on the
  ** cache codes on the Cube (one KV head's matrix of a batch per mma), scales on the Vector */
  ok_case("msd_attention", "B=2,H=8,HKV=2,S=300", NULL, 0);
  ok_case("msd_attention", "B=1,H=4,HKV=1,S=33,kscale=1", "passes=1", 0);
  ok_case("msd_attention", "B=1,H=6,HKV=3,S=130,D=64", "passes=3,bs=64", rising);
  ok_case("msd_attention", "B=2,H=8,HKV=2,S=300,kvfmt=1", NULL, 0);
  ok_case("msd_attention", "B=1,H=4,HKV=1,S=97,kvfmt=1", "passes=3", large);

  /* the tuner's entry point: timing only */

  {
    kf_ctx ctx;
    kf_ctx_init(&ctx);
    kf_template *t = NULL;
    kf_binding sh, cfg;
    memset(&sh, 0, sizeof sh);
    memset(&cfg, 0, sizeof cfg);
    double cyc = 0;
    int rc = kf_binding_parse(&ctx, "B=4,H=16,S=1024", "--shape", &sh);
    if (!rc) rc = kf_binding_parse(&ctx, "hb=16,bs=512,mr=4,preload=1", "--set", &cfg);
    if (!rc) rc = kf_template_load(&ctx, "amla_decode", &t);
    if (!rc) rc = kf_ascend_cycles(&ctx, t, &sh, &cfg, NULL, &cyc);
    int ok = rc == KF_OK && cyc > 0;
    printf("%-44s %.0f cycles  %s\n", "kf_ascend_cycles (tuner entry)", cyc, ok ? "ok" : "FAIL");
    failures += !ok;
    double c910c = 0;
    rc = kf_ascend_cycles(&ctx, t, &sh, &cfg, "ascend910c", &c910c);
    ok = rc == KF_OK && c910c > 0 && c910c <= cyc;
    printf("%-44s %.0f cycles  %s\n", "  on ascend910c (2 dies, 4 tasks)", c910c, ok ? "ok" : "FAIL");
    failures += !ok;
    kf_template_free(t);
  }

  /* errors */
  err_case("L1 overflow names L1 and the template line", "amla_decode", "B=1,H=128,S=64,D=2304,DV=512",
           "hb=128,bs=64", "L1 of an AIC", "amla_decode.lua:");
  err_case("UB overflow names UB and the template line", "amla_decode", "B=1,H=2,S=64,D=8192,DV=8192",
           "hb=2,bs=64", "UB", "amla_decode.lua:");
  err_case("fp32 P cannot feed the Cube", "fa_decode", "B=1,H=4,HKV=1,S=64,p_bf16=0", "hb=4,bs=64", "p_bf16", "fa_decode.lua:");
  err_case("fp32 dequantized weights cannot feed it", "dequant_gemm", "M=2,N=32,K=64,wround=0", "mr=2", "wround",
           "dequant_gemm.lua:");
  {
    kf_ctx ctx;
    kf_ctx_init(&ctx);
    kf_template *t = NULL;
    kf_binding sh;
    memset(&sh, 0, sizeof sh);
    int rc = kf_binding_parse(&ctx, "H=16,S=64", "--shape", &sh);
    if (!rc) rc = kf_template_load(&ctx, "amla_decode", &t);
    kf_ascend_opts o;
    memset(&o, 0, sizeof o);
    o.machine = "ascend310";
    kf_ascend_result *r = kf_xcalloc(1, sizeof *r);
    if (!rc) rc = kf_ascend_simulate(&ctx, t, &sh, NULL, &o, r);
    int ok = rc == KF_EINVAL && strstr(kf_errmsg(&ctx), "ascend310");
    printf("%-44s %s: %s\n", "unknown machine", ok ? "ok" : "FAIL", kf_errmsg(&ctx));
    failures += !ok;
    free(r);
    kf_template_free(t);
  }
  printf("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}

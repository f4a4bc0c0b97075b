/*
** test_ascend_model: what the Ascend model must show (DESIGN.md section 6), on shapes small
** enough for a test (one task per AI-core group), timing only:
**  1. AMLA decode: the preload pipeline raises Cube utilization and the Cube stops waiting on
**     the Vector (cross-core flag waits); without it, the AIC idles behind softmax.
**  2. The FA-2 multiply rescale moves O through the AIVs (GM read + write per block) where
**     AMLA only adds into it: more AIV and L2 traffic, never faster. The baseline AMLA
**     replaces (multiply rescale, no preload) is clearly slower than AMLA with preload.
**  3. Dequant-then-GEMM: the Cube waits on the Vector's dequant (AIC blocked on cross-core
**     flags), MSD does not, streams the int8 weights from HBM once and finishes sooner.
**  4. MSD attention over an INT8 KV cache reads half of FA-2's HBM bytes (bf16 cache) and
**     finishes sooner: each int8 GEMM covers a whole KV block (the register-tile loops around
**     an mma on one head's cache matrix become one L0C tile, not a Cube/Vector round trip
**     per CPU register tile).
**  5. MXFP4 MSD GEMM: the AIVs run the next block's weight decode ahead of this block's
**     scale_acc (the AIV side of preload), so the Cube does not wait for both per block.
**  6. The simulation is deterministic.
** Each line prints the measured figures the claim rests on.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kf_ascend.h"

static int failures;

static kf_ascend_result *run_order(const char *tmpl, const char *shape, const char *sets, int program_order) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_binding sh, st;
  memset(&sh, 0, sizeof sh);
  memset(&st, 0, sizeof st);
  kf_template *t = NULL;
  kf_ascend_result *r = kf_xcalloc(1, sizeof *r);
  kf_ascend_opts o;
  memset(&o, 0, sizeof o);
  o.check = KF_ASCEND_CHECK_NONE;
  o.program_order = program_order;
  int rc = kf_binding_parse(&ctx, shape, "--shape", &sh);
  if (!rc) rc = kf_binding_parse(&ctx, sets, "--set", &st);
  if (!rc) rc = kf_template_load(&ctx, tmpl, &t);
  if (!rc) rc = kf_ascend_simulate(&ctx, t, &sh, &st, &o, r);
  kf_template_free(t);
  if (rc) {
    printf("%s %s %s: FAIL: %s\n", tmpl, shape, sets, kf_errmsg(&ctx));
    failures++;
  }
  return r;
}

static kf_ascend_result *run(const char *tmpl, const char *shape, const char *sets) {
  return run_order(tmpl, shape, sets, 0);
}

static void expect(const char *what, int ok) {
  printf("  %-66s %s\n", what, ok ? "ok" : "FAIL");
  failures += !ok;
}

static void show(const char *name, const kf_ascend_result *r) {
  printf("%-22s %9.0f cycles  Cube busy %5.1f%%  AIC MTE2 %5.1f%% (blocked on AIV %4.1f%%)  FIX blocked %4.1f%%  "
         "AIV MTE2 %5.1f%%  V %5.1f%%  HBM %.1f MB  L2 %.1f MB\n",
         name, r->cycles, 100 * r->cube_busy, 100 * r->busy[KF_ASC_AIC][KF_ASC_MTE2], 100 * r->xwait[KF_ASC_AIC][KF_ASC_MTE2],
         100 * r->xwait[KF_ASC_AIC][KF_ASC_FIX], 100 * r->busy[KF_ASC_AIV][KF_ASC_MTE2], 100 * r->busy[KF_ASC_AIV][KF_ASC_V],
         (r->hbm_read + r->hbm_write) / 1e6, (r->l2_read + r->l2_write) / 1e6);
}

int main(void) {
  const char *attn = "B=24,H=128,S=2048";
  kf_ascend_result *pre = run("amla_decode", attn, "hb=128,bs=512,preload=1");
  kf_ascend_result *nopre = run("amla_decode", attn, "hb=128,bs=512,preload=0");
  kf_ascend_result *fa2 = run("amla_decode", "B=24,H=128,S=2048,amla=0", "hb=128,bs=512,preload=1");
  show("AMLA, preload", pre);
  show("AMLA, no preload", nopre);
  kf_ascend_result *base = run("amla_decode", "B=24,H=128,S=2048,amla=0", "hb=128,bs=512,preload=0");
  show("FA-2 rescale, preload", fa2);
  show("FA-2, no preload", base);
  char buf[160];
  snprintf(buf, sizeof buf, "preload: %.0f vs %.0f cycles (>= 1.15x faster)", pre->cycles, nopre->cycles);
  expect(buf, nopre->cycles >= 1.15 * pre->cycles);
  snprintf(buf, sizeof buf, "preload: Cube busy %.1f%% vs %.1f%%", 100 * pre->cube_busy, 100 * nopre->cube_busy);
  expect(buf, pre->cube_busy >= 1.15 * nopre->cube_busy);
  double wpre = pre->xwait[KF_ASC_AIC][KF_ASC_MTE2] + pre->xwait[KF_ASC_AIC][KF_ASC_FIX];
  double wno = nopre->xwait[KF_ASC_AIC][KF_ASC_MTE2] + nopre->xwait[KF_ASC_AIC][KF_ASC_FIX];
  snprintf(buf, sizeof buf, "without preload the AIC waits on the AIVs: %.1f%% vs %.1f%% of the run", 100 * wno, 100 * wpre);
  expect(buf, wno > 0.2 && wpre < 0.1);
  snprintf(buf, sizeof buf, "FA-2 rescale reads O back: AIV MTE2 busy %.1f%% vs AMLA %.1f%%", 100 * fa2->busy[KF_ASC_AIV][KF_ASC_MTE2],
           100 * pre->busy[KF_ASC_AIV][KF_ASC_MTE2]);
  expect(buf, fa2->busy[KF_ASC_AIV][KF_ASC_MTE2] > 1.5 * pre->busy[KF_ASC_AIV][KF_ASC_MTE2]);
  /* per block and AIV: O rows/2 x 512 fp32 read in addition (the write is there in both) */
  double extra = fa2->l2_read - pre->l2_read, want = 24.0 * (2048 / 512 - 1) * 128 * 512 * 4;
  snprintf(buf, sizeof buf, "FA-2 extra L2 reads %.2f MB = O once per block after the first (%.2f MB)", extra / 1e6, want / 1e6);
  expect(buf, extra > 0.99 * want && extra < 1.01 * want);
  snprintf(buf, sizeof buf, "FA-2 rescale is never faster: %.0f vs %.0f cycles", fa2->cycles, pre->cycles);
  expect(buf, fa2->cycles >= pre->cycles);
  snprintf(buf, sizeof buf, "baseline (FA-2 rescale, no preload) %.0f vs AMLA + preload %.0f cycles (>= 1.15x)", base->cycles,
           pre->cycles);
  expect(buf, base->cycles >= 1.15 * pre->cycles);

  const char *gemm = "M=16,N=8192,K=8192";
  kf_ascend_result *dq = run("dequant_gemm", gemm, "nc=64");
  kf_ascend_result *msd = run("msd_gemm", gemm, "nc=64");
  show("dequant-then-GEMM", dq);
  show("MSD 2-pass int8", msd);
  snprintf(buf, sizeof buf, "dequant: the AIC's loads wait on the AIVs %.1f%% of the run", 100 * dq->xwait[KF_ASC_AIC][KF_ASC_MTE2]);
  expect(buf, dq->xwait[KF_ASC_AIC][KF_ASC_MTE2] > 0.3);
  /* MSD's AIC waits once per group for the activation decomposition (it is task-invariant
  ** and done once), dequant's for every weight tile */
  double wq = msd->xwait[KF_ASC_AIC][KF_ASC_MTE2] * msd->cycles, wd = dq->xwait[KF_ASC_AIC][KF_ASC_MTE2] * dq->cycles;
  snprintf(buf, sizeof buf, "MSD: the AIC waits on the AIVs %.0f cycles (dequant: %.0f), only for the first x decomposition", wq, wd);
  expect(buf, wq < 0.2 * wd);
  snprintf(buf, sizeof buf, "MSD faster: %.0f vs %.0f cycles (%.2fx)", msd->cycles, dq->cycles, dq->cycles / msd->cycles);
  expect(buf, msd->cycles * 1.3 < dq->cycles);
  double wbytes = 8192.0 * 8192;
  snprintf(buf, sizeof buf, "MSD reads the int8 weights from HBM once: %.2f MB (weights %.2f MB)", msd->hbm_read / 1e6, wbytes / 1e6);
  expect(buf, msd->hbm_read > wbytes && msd->hbm_read < 1.05 * wbytes);
  snprintf(buf, sizeof buf, "bf16 round trip through GM: dequant %.2f MB of L2 writes (>= 2 B/weight), MSD %.2f MB",
           dq->l2_write / 1e6, msd->l2_write / 1e6);
  /* MSD writes only the decomposed activations (once per group) and int32 partial sums */
  expect(buf, dq->l2_write >= 0.999 * 2 * wbytes && msd->l2_write < 0.25 * wbytes);

  const char *gqa = "B=3,H=32,HKV=8,S=4096";
  kf_ascend_result *fa = run("fa_decode", gqa, "bs=256");
  kf_ascend_result *ma = run("msd_attention", gqa, "bs=256");
  show("FA-2 (bf16 KV)", fa);
  show("MSD attention (INT8 KV)", ma);
  snprintf(buf, sizeof buf, "INT8 KV: HBM read %.2f MB vs bf16 %.2f MB (<= 0.55x)", ma->hbm_read / 1e6, fa->hbm_read / 1e6);
  expect(buf, ma->hbm_read <= 0.55 * fa->hbm_read);
  snprintf(buf, sizeof buf, "MSD attention faster: %.0f vs %.0f cycles (%.2fx, >= 1.4x)", ma->cycles, fa->cycles,
           fa->cycles / ma->cycles);
  expect(buf, ma->cycles * 1.4 <= fa->cycles);

  /* MXFP4 MSD GEMM: per 32-deep block the Cube's int32 tile goes to the Vector (scale_acc)
  ** and the next block's weights come from it (E2M1 decode); in program order each block
  ** waits for the previous block's scale_acc and decode, reordered the decode runs ahead */
  const char *mx = "M=16,N=6144,K=1024";
  kf_ascend_result *mxp = run_order("msd_mxfp4_gemm", mx, "", 1), *mxr = run("msd_mxfp4_gemm", mx, "");
  show("MXFP4 MSD, in order", mxp);
  show("MXFP4 MSD, reordered", mxr);
  snprintf(buf, sizeof buf, "MXFP4 MSD: decode ahead of scale_acc %.0f vs %.0f cycles (%.2fx, >= 1.3x)", mxr->cycles,
           mxp->cycles, mxp->cycles / mxr->cycles);
  expect(buf, mxr->cycles * 1.3 <= mxp->cycles);

  kf_ascend_result *again = run("amla_decode", attn, "hb=128,bs=512,preload=1");
  snprintf(buf, sizeof buf, "deterministic: %.0f == %.0f cycles", again->cycles, pre->cycles);
  expect(buf, again->cycles == pre->cycles && again->hbm_read == pre->hbm_read);
  free(pre);
  free(nopre);
  free(fa2);
  free(base);
  free(dq);
  free(msd);
  free(fa);
  free(ma);
  free(mxp);
  free(mxr);
  free(again);
  printf("%s\n", failures ? "FAILED" : "all ok");
  return failures != 0;
}

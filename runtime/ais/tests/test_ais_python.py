"""Tests of the kforge_ais Python binding: it imports, round-trips numpy and torch arrays, matches
an independent numpy fp64 reference for every mode, merges data-parallel statistics bit-exactly,
and turns bad input into clear errors. One line per case; exit status = number of failures."""

import math
import sys

import numpy as np

import kforge_ais as ais

U = 2.0 ** -53
import aistest  # noqa: E402
from aistest import expect_error, report  # noqa: E402


def random_batch(rng, b, t, sigma, mu=0.0):
    lp_roll = -3.0 * rng.random((b, t)) - 0.01
    lp_train = lp_roll + mu + sigma * rng.standard_normal((b, t))
    shift = np.maximum(lp_train, 0.0)  # keep both log-probs <= 0, delta unchanged
    lp_roll, lp_train = lp_roll - shift, lp_train - shift
    lengths = rng.integers(0, t + 1, size=b)
    mask = np.arange(t)[None, :] < lengths[:, None]
    return lp_roll, lp_train, mask


def ref_numpy(lp_roll, lp_train, mask, mode, cap=2.0, L=20.0, lo=0.5, hi=2.0, tau_d=0.1,
              gamma_r=1.0, tau_v=1.0):
    """Independent fp64 reference on padded [B, T] arrays (defaults of kf_ais_config_default):
    R = ESS of the applied token weights min(rho, C), V = CV of the raw rho, D = mean|delta|
    divided by (mean|delta| + mean NLL)."""
    d = np.where(mask, lp_train - lp_roll, 0.0)
    dc = np.clip(d, -L, L)
    rho = np.exp(dc)
    S = d.sum(axis=1)
    n = mask.sum(axis=1)
    G = np.exp(np.clip(S / np.maximum(n, 1), -L, L))
    W = np.exp(np.clip(S, -L, L))
    rt = rho[mask]
    wt = np.minimum(rho, cap)
    app = wt[mask]
    R = app.sum() ** 2 / (app.size * (app ** 2).sum())
    d_abs = np.abs(d[mask]).mean()
    H = -lp_train[mask].mean()
    D = d_abs / (d_abs + H)
    V = rt.std() / rt.mean()
    alpha = min(max((1 - math.exp(-D / tau_d)) * R ** gamma_r / (1 + V / tau_v), 0.0), 1.0)
    ones = np.ones_like(rho)
    wsq, wgeo = np.minimum(W, cap)[:, None] * ones, np.minimum(G, cap)[:, None] * ones
    keep = mask.copy()
    if mode == "none":
        w = ones
    elif mode == "token_tis":
        w = wt
    elif mode == "seq_tis":
        w = wsq
    elif mode == "geo_tis":
        w = wgeo
    elif mode == "token_mis":
        w = wt
        keep &= (np.exp(d) >= lo) & (np.exp(d) <= hi)
    elif mode == "seq_mis":
        w = wsq
        keep &= ((np.exp(S) >= lo) & (np.exp(S) <= hi))[:, None]
    elif mode == "geo_mis":
        w = wgeo
        g = np.exp(S / np.maximum(n, 1))
        keep &= ((g >= lo) & (g <= hi))[:, None]
    else:
        w = (1 - alpha) + alpha * wt
    return np.where(keep, w, 0.0), keep, dict(reliability=R, divergence=D, variance_amp=V,
                                              alpha=alpha)


def main():
    rng = np.random.default_rng(7)
    report(True, "import kforge_ais", f"library {ais.library_path}")

    # ---- exact sums: bit-equal to math.fsum (correctly rounded) ----
    vals = rng.standard_normal(5000) * 10.0 ** rng.integers(-200, 200, size=5000)
    vals = np.concatenate([vals, -vals[:2500], [1e300, 1.0, -1e300, 0.1, 0.1, 0.1]])
    got, want = ais.exact_sum(vals), math.fsum(vals)
    report(got == want, "exact_sum == math.fsum (5006 mixed values)", f"{got!r} vs {want!r}")

    # ---- every mode against the numpy reference ----
    for sigma in (0.03, 0.3, 2.0):
        lp_roll, lp_train, mask = random_batch(rng, 96, 40, sigma)
        n = mask.sum()
        for mode in ais.MODES:
            w, keep, diag = ais.compute(lp_train, lp_roll, mask, config=ais.Config(mode))
            wr, kr, dr = ref_numpy(lp_roll, lp_train, mask, mode)
            # bounds: sums over n terms (gamma_n), weights by the same formulas with another exp
            # (kf_ais_exp < 2 ulp vs numpy's, so 8u), alpha
            # through exp/pow of quantities with relative error ~ gamma_n (first order, x10 slack
            # for the numpy pairwise vs our exact summation and the two-pass std)
            gam = n * U / (1 - n * U)
            b_w = 8 * U * np.maximum(np.abs(wr), 1.0) + (mode == "ais") * 10 * gam * 2.0
            if mode.startswith(("seq", "geo")):  # S_i summed in another order: |dS| <= 2 gamma_T sum|d|
                sum_abs = np.abs(np.where(mask, lp_train - lp_roll, 0.0)).sum(axis=1)
                gam_t = 40 * U / (1 - 40 * U)
                b_w = b_w + np.abs(wr) * 2 * gam_t * sum_abs[:, None]
            err_w = np.abs(w - wr)
            err_a = abs(diag.alpha - dr["alpha"])
            b_a = 10 * gam * (1 + dr["divergence"] / 0.1 + 2 * dr["variance_amp"])
            ok = (np.all(keep == kr) and np.all(err_w <= b_w) and err_a <= b_a
                  and abs(diag.reliability - dr["reliability"]) <= 10 * gam
                  and abs(diag.divergence - dr["divergence"]) <= 10 * gam * dr["divergence"])
            report(ok, f"numpy ref {mode} sigma={sigma}",
                   f"alpha={diag.alpha:.6f} err {err_a:.1e}<={b_a:.1e} weights max err "
                   f"{err_w.max():.1e} (max err/bound {(err_w / b_w).max():.2f}) keep diffs {(keep != kr).sum()}")

    # ---- 2-D padded == 1-D flat with offsets ----
    lp_roll, lp_train, mask = random_batch(rng, 50, 30, 0.4)
    cfg = ais.Config("ais", tau_d=0.2)
    w2, k2, d2 = ais.compute(lp_train, lp_roll, mask, config=cfg)
    lens = mask.sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    w1, k1, d1 = ais.compute(lp_train[mask], lp_roll[mask], None, offsets, config=cfg)
    report(np.array_equal(w2[mask], w1) and k1.all() and d1 == d2 and np.all(w2[~mask] == 0),
           "2-D padded == 1-D with offsets", f"alpha {d2.alpha:.17g} vs {d1.alpha:.17g}")

    # ---- data parallel: 1/2/4 ranks, all-reduce simulated with numpy SUM/MAX ----
    for ranks in (1, 2, 4):
        parts = [ais.accumulate(lp_train[r::ranks], lp_roll[r::ranks], mask[r::ranks], config=cfg)
                 for r in range(ranks)]
        isum = np.sum([p.isum for p in parts], axis=0)
        dmax = np.max([p.dmax for p in parts], axis=0)
        dm = ais.finish(ais.Partial(isum, dmax), cfg)
        wr = [ais.weights(lp_train[r::ranks], lp_roll[r::ranks], mask[r::ranks], diag=dm,
                          config=cfg)[0] for r in range(ranks)]
        same_w = all(np.array_equal(wr[r], w2[r::ranks]) for r in range(ranks))
        merged = parts[0]
        for p in parts[1:]:
            merged.merge(p)
        same_merge = ais.finish(merged, cfg) == d2
        report(dm == d2 and same_w and same_merge, f"all-reduce over {ranks} ranks bit-exact",
               f"alpha {dm.alpha:.17g} (single {d2.alpha:.17g}), merge() equal {same_merge}")

    # ---- torch tensors in, tensors out; bf16 input goes through float64 ----
    import torch
    tr, tt, tm = (torch.from_numpy(lp_roll), torch.from_numpy(lp_train), torch.from_numpy(mask))
    wt, kt, dt = ais.compute(tt, tr, tm, config=cfg)
    ok = (isinstance(wt, torch.Tensor) and wt.dtype == torch.float64 and kt.dtype == torch.bool
          and np.array_equal(wt.numpy(), w2) and dt == d2)
    report(ok, "torch tensors round-trip", f"{type(wt).__name__} {wt.dtype} {tuple(wt.shape)}")
    wb, _, db = ais.compute(tt.to(torch.bfloat16), tr.to(torch.bfloat16), tm, config=cfg)
    wn, _, dn = ais.compute(tt.to(torch.bfloat16).double().numpy(),
                            tr.to(torch.bfloat16).double().numpy(), mask, config=cfg)
    report(np.array_equal(wb.numpy(), wn) and db == dn, "torch bf16 == its float64 values",
           f"alpha {db.alpha:.6f}")

    # ---- EMA state ----
    st = ais.State()
    cfg_e = ais.Config("ais", ema=0.5, tau_d=0.2)
    da = ais.compute(lp_train, lp_roll, mask, config=cfg_e, state=st)[2]
    lr2, lt2, m2 = random_batch(rng, 50, 30, 1.5)
    db2 = ais.compute(lt2, lr2, m2, config=cfg_e, state=st)[2]
    expect = 0.5 * da.alpha + 0.5 * db2.alpha_raw
    report(abs(db2.alpha - expect) <= 4 * U and st.alpha == db2.alpha, "EMA state",
           f"alpha {da.alpha:.6f} -> {db2.alpha:.6f} (expect {expect:.6f})")

    # ---- errors ----
    bad = lp_roll.copy()
    bad[3, 0] = np.nan
    mask_b = mask.copy()
    mask_b[3, 0] = True
    expect_error("NaN log-prob -> AisError naming it", lambda: ais.compute(lp_train, bad, mask_b),
                 ais.AisError, f"lp_roll[{3 * 30}]")
    w_m, k_m, d_m = ais.compute(lp_train, bad, mask_b, config=ais.Config("ais", nonfinite="mask"))
    report(d_m.n_seq_dropped == 1 and not k_m[3].any() and np.all(w_m[3] == 0),
           "nonfinite='mask' drops the sequence", f"dropped {d_m.n_seq_dropped}")
    expect_error("bad cap -> AisError", lambda: ais.Config("token_tis", cap=-1.0), ais.AisError,
                 "cap=-1")
    expect_error("unknown mode", lambda: ais.Config("tis"), ValueError, "unknown mode 'tis'")
    expect_error("unknown option", lambda: ais.Config("ais", tau=1), ValueError,
                 "unknown option 'tau'")
    expect_error("bad level name", lambda: ais.Config("ais", ais_level="batch"), ValueError,
                 "ais_level='batch'")
    expect_error("shape mismatch", lambda: ais.compute(lp_train, lp_roll[:, :5], mask),
                 ValueError, "rollout_log_prob shape")
    expect_error("3-D input", lambda: ais.compute(lp_roll[None], lp_train[None], mask[None]),
                 ValueError, "1-D (with offsets) or 2-D")
    expect_error("2-D without mask", lambda: ais.compute(lp_train, lp_roll), ValueError,
                 "need response_mask")
    for bad_val in (np.nan, np.inf, -np.inf, -1.0, 2.0, 0.5):
        mf = mask.astype(np.float64)
        mf[4, 2] = bad_val
        expect_error(f"mask value {bad_val} -> error", lambda: ais.compute(lp_train, lp_roll, mf),
                     ValueError, f"response_mask[4, 2] = {bad_val!r}")
    mi = mask.astype(np.int64)
    report(ais.compute(lp_train, lp_roll, mi, config=cfg)[2] == d2, "0/1 int mask == bool mask")
    pos = lp_train.copy()
    pos[1, 0] = 0.25
    m1 = mask.copy()
    m1[1, 0] = True
    expect_error("positive log-prob -> AisError", lambda: ais.compute(pos, lp_roll, m1),
                 ais.AisError, "positive log-prob")
    expect_error("bad offsets -> AisError", lambda: ais.compute(
        lp_train[0], lp_roll[0], None, np.array([0, 40, 30])), ais.AisError, "offsets")
    expect_error("bad partial shape", lambda: ais.Partial(np.zeros(3), None), ValueError,
                 "isum must have shape")
    expect_error("string array", lambda: ais.compute(np.array(["a"]), np.array(["b"])),
                 TypeError, "dtype")

    return aistest.finish()


if __name__ == "__main__":
    sys.exit(main())

"""Tests of kforge_ais.torch: agreement with the C library (bit-exact weights in float64, 1e-6
in float32), dtype/device preservation, no host reads in the weight path, verl's argument order
and bound direction on hand-made cases, every mode on hand-computed examples, the TRL adapter,
metric names and definitions, and clear errors for bad input. One line per case; exit status =
number of failures (capped at 100)."""

import math
import sys

import numpy as np
import torch

import kforge_ais as ais
from kforge_ais import torch as kt

import aistest  # noqa: E402
from aistest import expect_error, report  # noqa: E402


def random_batch(gen, b, t, sigma, dtype=torch.float64):
    """[b, t] log-probs <= 0 with log-ratios ~ N(0, sigma^2), right-padded random lengths."""
    lp_roll = -3.0 * torch.rand(b, t, generator=gen, dtype=torch.float64) - 0.01
    lp_old = lp_roll + sigma * torch.randn(b, t, generator=gen, dtype=torch.float64)
    shift = lp_old.clamp_min(0.0)
    lp_old, lp_roll = lp_old - shift, lp_roll - shift
    lengths = torch.randint(0, t + 1, (b,), generator=gen)
    lengths[0] = t  # at least one full row
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return lp_old.to(dtype), lp_roll.to(dtype), mask


def c_weights(lp_old, lp_roll, mask, mode, **kw):
    w, keep, d = ais.compute(lp_old.double().numpy(), lp_roll.double().numpy(), mask.numpy(),
                             config=ais.Config(mode, **kw))
    return torch.from_numpy(np.asarray(w)), torch.from_numpy(np.asarray(keep)), d


# (C mode + options, torch arguments): the same definition in both
def pairs():
    return [
        ("token_tis", {}, dict(rollout_is="token", rollout_is_threshold=2.0)),
        ("seq_tis", dict(cap=5.0), dict(rollout_is="sequence", rollout_is_threshold=5.0)),
        ("geo_tis", {}, dict(rollout_is="geometric", rollout_is_threshold=2.0)),
        ("token_tis", dict(cap=1.5, cap_lower=0.5),
         dict(rollout_is="token", rollout_is_threshold="0.5_1.5")),
        # C bounds act on pi_old/pi_roll in [lo, hi]; verl's k1 bounds on pi_roll/pi_old:
        # [0.5, 4] on the former is "0.25_2" on the latter
        ("token_mis", dict(mis_lower=0.5, mis_upper=4.0, cap=3.0),
         dict(rollout_is="token", rollout_is_threshold=3.0, rollout_rs="token_k1",
              rollout_rs_threshold="0.25_2")),
        ("seq_mis", dict(mis_lower=0.5, mis_upper=2.0),
         dict(rollout_is="sequence", rollout_is_threshold=2.0, rollout_rs="seq_sum_k1",
              rollout_rs_threshold="0.5_2")),
        ("geo_mis", dict(mis_lower=0.5, mis_upper=2.0, cap=3.0),
         dict(rollout_is="geometric", rollout_is_threshold=3.0, rollout_rs="seq_mean_k1",
              rollout_rs_threshold="0.5_2.0")),
        ("ais", {}, dict(rollout_is="ais")),
        ("ais", dict(ais_level="seq", cap=4.0, divergence="k3", dscale="abs", tau_d=0.3),
         dict(rollout_is="ais", rollout_is_threshold=4.0,
              ais_config=kt.AisConfig(level="sequence", divergence="k3", dscale="abs",
                                      tau_d=0.3))),
        ("ais", dict(ais_level="geo", cap=3.0, cap_lower=0.5, gamma_r=2.0, tau_v=0.5),
         dict(rollout_is="ais", rollout_is_threshold=(0.5, 3.0),
              ais_config=kt.AisConfig(level="geometric", gamma_r=2.0, tau_v=0.5))),
    ]


def test_agreement():
    gen = torch.Generator().manual_seed(11)
    x = (torch.rand(200000, generator=gen, dtype=torch.float64) * 2 - 1) * 25.0
    x[:1000] = torch.arange(-500, 500, dtype=torch.float64) * (math.log(2) / 2)  # ties near n ln2
    got = kt.kf_exp(x).numpy()
    want = np.array([ais.exp_c(v) for v in x.tolist()])
    report(np.array_equal(got, want), "kf_exp == C kf_ais_exp bit for bit (200000 values)",
           f"{int((got != want).sum())} differ")
    for sigma in (0.03, 0.3, 2.0):
        lp_old, lp_roll, mask = random_batch(gen, 64, 150, sigma)
        for mode, ckw, tkw in pairs():
            wc, kc, dc = c_weights(lp_old, lp_roll, mask, mode, **ckw)
            w, m, met = kt.compute_rollout_correction_and_rejection_mask(lp_old, lp_roll, mask,
                                                                         **tkw)
            same_mask = torch.equal(m.bool(), kc)
            if mode == "ais":
                alpha = met["rollout_corr/ais_alpha"].item()
                rel_a = abs(alpha - dc.alpha) / max(dc.alpha, 1e-300)
                err = ((w - wc).abs() / wc.abs().clamp_min(1e-300))[kc].max().item()
                ok = same_mask and rel_a <= 1e-13 and err <= 1e-13
                detail = (f"alpha {alpha:.17g} vs C {dc.alpha:.17g} (rel {rel_a:.1e}), weights "
                          f"rel err {err:.1e} (<= 1e-13: C sums exactly, torch in float64)")
            else:
                ok = same_mask and torch.equal(w, wc)
                detail = f"bit-equal {torch.equal(w, wc)}, masks equal {same_mask}"
            report(ok, f"float64 torch == C {mode} {ckw or ''} sigma={sigma}", detail)
            # float32 inputs: the C library sees the same float32 values widened to float64
            w32, m32, _ = kt.compute_rollout_correction_and_rejection_mask(
                lp_old.float(), lp_roll.float(), mask, **tkw)
            wc32, kc32, _ = c_weights(lp_old.float(), lp_roll.float(), mask, mode, **ckw)
            rel = ((w32.double() - wc32).abs() / wc32.abs().clamp_min(1e-30))[kc32].max().item()
            report(w32.dtype == torch.float32 and torch.equal(m32.bool(), kc32) and rel <= 1e-6,
                   f"float32 torch ~ C {mode} sigma={sigma}", f"max rel err {rel:.1e} (<= 1e-6)")
    # ESS / divergence diagnostics agree with C's exact sums
    lp_old, lp_roll, mask = random_batch(gen, 64, 150, 0.3)
    _, _, dc = c_weights(lp_old, lp_roll, mask, "ais")
    _, _, met = kt.compute_rollout_correction_and_rejection_mask(lp_old, lp_roll, mask,
                                                                 rollout_is="ais")
    pairs_d = [("ais_reliability", dc.reliability), ("ais_divergence", dc.divergence),
               ("ais_variance_amp", dc.variance_amp), ("ais_mean_nll", dc.mean_nll),
               ("k3_kl", dc.kl_k3), ("kl", dc.kl_k1)]
    errs = {k: abs(met["rollout_corr/" + k].item() - v) / max(abs(v), 1e-300) for k, v in pairs_d}
    report(max(errs.values()) <= 1e-12, "AIS diagnostics torch ~ C (rel 1e-12)",
           " ".join(f"{k}={v:.1e}" for k, v in errs.items()))


def test_dtype_device_sync():
    gen = torch.Generator().manual_seed(3)
    lp_old, lp_roll, mask = random_batch(gen, 8, 32, 0.2)
    for dt in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        w, m, met = kt.compute_rollout_correction_and_rejection_mask(
            lp_old.to(dt), lp_roll.to(dt), mask.float(), rollout_is="ais")
        ok = (w.dtype == dt and w.device == lp_old.device and m.dtype == torch.float32 and
              not w.requires_grad and all(v.dim() == 0 for v in met.values()))
        report(ok, f"dtype preserved {dt}", f"weights {w.dtype}, mask {m.dtype}")
    # gradients never flow through the weights
    lo = lp_old.clone().requires_grad_(True)
    w, _, _ = kt.compute_rollout_correction_and_rejection_mask(lo, lp_roll, mask,
                                                               rollout_is="token")
    report(not w.requires_grad, "weights detached", f"requires_grad={w.requires_grad}")
    # no host read in the weight path: every Python-level sync entry point raises
    names = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def forbid(n):
        def f(*a, **k):
            raise RuntimeError(f"host read via Tensor.{n}")
        return f
    err = None
    try:
        for n in names:
            setattr(torch.Tensor, n, forbid(n))
        for kw in (dict(rollout_is="ais", ais_state=kt.AisState()),
                   dict(rollout_is="sequence", rollout_rs="seq_sum_k1,token_k3,seq_max_k2",
                        rollout_rs_threshold="0.5_2,0.1,0.5", rollout_token_veto_threshold=1e-4,
                        rollout_is_batch_normalize=True, rollout_is_mask_threshold="0.2_5")):
            kt.compute_rollout_correction_and_rejection_mask(lp_old, lp_roll, mask,
                                                             check_inputs=False, **kw)
        kt.trl_importance_weights(lp_old, lp_roll, mask, check_inputs=False)
    except RuntimeError as e:
        err = str(e)
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)
    report(err is None, "no host sync in the weight path (check_inputs=False)", err or "")
    if torch.cuda.is_available():  # guarded: the suite runs on CPU-only machines
        w, m, _ = kt.compute_rollout_correction_and_rejection_mask(
            lp_old.cuda().float(), lp_roll.cuda().float(), mask.cuda(), rollout_is="ais")
        report(w.is_cuda and w.dtype == torch.float32, "CUDA tensors stay on the GPU")
    else:
        print("SKIP CUDA device path (no GPU)")


def run(old, roll, mask=None, **kw):
    old = torch.tensor(old, dtype=torch.float64)
    roll = torch.tensor(roll, dtype=torch.float64)
    mask = torch.ones_like(old) if mask is None else torch.tensor(mask, dtype=torch.float64)
    return kt.compute_rollout_correction_and_rejection_mask(old, roll, mask, **kw)


def close(a, b, tol=1e-12):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64),
                          torch.as_tensor(b, dtype=torch.float64), rtol=tol, atol=tol)


def test_hand():
    L = math.log
    # argument order: old = log 0.6, rollout = log 0.3 -> rho = pi_old / pi_roll = 2
    w, _, _ = run([[L(0.6)]], [[L(0.3)]], rollout_is="token", rollout_is_threshold=3.0)
    w_sw, _, _ = run([[L(0.3)]], [[L(0.6)]], rollout_is="token", rollout_is_threshold=3.0)
    report(close(w, [[2.0]]) and close(w_sw, [[0.5]]), "argument order: (old, rollout) -> rho=2",
           f"w={w.item():.15g}, swapped {w_sw.item():.15g}")
    # bound direction: token_k1 "0.1_1.2" keeps pi_roll/pi_old in [0.1, 1.2], i.e. rho in
    # [1/1.2, 10]. rho = 5 kept, 0.5 rejected (ratio 2), 1/1.1 kept, 1/1.3 rejected, 12 rejected
    rhos = [5.0, 0.5, 1 / 1.1, 1 / 1.3, 12.0]
    old = [[L(0.9 * min(r, 1.0) / max(r, 1.0) * r) for r in rhos]]
    roll = [[L(0.9 * min(r, 1.0) / max(r, 1.0)) for r in rhos]]
    _, m, _ = run(old, roll, rollout_rs="token_k1", rollout_rs_threshold="0.1_1.2")
    report(m.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0]], "bound direction token_k1 '0.1_1.2'",
           f"rho {['%.3g' % r for r in rhos]} -> keep {m.tolist()[0]}")
    # sequence weights: seq 0 log-ratios (ln2, 0), seq 1 (-ln2, pad)
    old = [[-1 + L(2), -2.0], [-0.5 - L(2), -1.0]]
    roll = [[-1.0, -2.0], [-0.5, -7.0]]
    mask = [[1, 1], [1, 0]]
    w, _, _ = run(old, roll, mask, rollout_is="token", rollout_is_threshold=1.5)
    report(close(w, [[1.5, 1.0], [0.5, 0.0]]), "token TIS C=1.5", f"{w.tolist()}")
    w, _, _ = run(old, roll, mask, rollout_is="sequence", rollout_is_threshold=3.0)
    report(close(w, [[2.0, 2.0], [0.5, 0.0]]), "sequence TIS", f"{w.tolist()}")
    w, _, _ = run(old, roll, mask, rollout_is="geometric", rollout_is_threshold=3.0)
    report(close(w, [[math.sqrt(2), math.sqrt(2)], [0.5, 0.0]]), "geometric TIS (length-"
           "normalised)", f"{w.tolist()}")
    w, _, _ = run(old, roll, mask, rollout_is="token", rollout_is_threshold="0.75_1.5")
    report(close(w, [[1.5, 1.0], [0.75, 0.0]]), "two-sided clamp '0.75_1.5'", f"{w.tolist()}")
    # seq MIS: keep pi_roll/pi_old in [0.6, 3] <=> W in [1/3, 1/0.6]: seq 0 (W=2) rejected
    w, m, met = run(old, roll, mask, rollout_is="sequence", rollout_rs="seq_sum_k1",
                    rollout_rs_threshold="0.6_3")
    report(m.tolist() == [[0, 0], [1, 0]] and close(w, [[0, 0], [0.5, 0]]) and
           close(met["rollout_corr/rollout_rs_seq_masked_fraction"], 0.5),
           "seq MIS (seq_sum_k1 '0.6_3') rejects W=2", f"mask {m.tolist()} w {w.tolist()}")
    # IcePop masking vs rejection on rho = (2, 1, 0.5) band [0.6, 1.5]
    old3, roll3 = [[-1 + L(2), -2.0, -0.5 - L(2)]], [[-1.0, -2.0, -0.5]]
    w, m, _ = run(old3, roll3, rollout_is="token", rollout_is_threshold=5.0,
                  rollout_is_mask_threshold="0.6_1.5")
    report(close(w, [[0, 1, 0]]) and m.tolist() == [[1, 1, 1]],
           "IcePop mask: weight 0, token kept in mask", f"w {w.tolist()} mask {m.tolist()}")
    w, m, _ = run(old3, roll3, rollout_is="token", rollout_is_threshold=5.0,
                  rollout_rs="token_k1", rollout_rs_threshold=f"{1 / 1.5}_{1 / 0.6}")
    report(close(w, [[0, 1, 0]]) and m.tolist() == [[0, 1, 0]],
           "rejection: weight 0 and token removed", f"w {w.tolist()} mask {m.tolist()}")
    # batch normalisation: token weights (2, 1, 0.5) / mean 7/6
    w, _, met = run(old3, roll3, rollout_is="token", rollout_is_threshold=5.0,
                    rollout_is_batch_normalize=True)
    report(close(w, [[12 / 7, 6 / 7, 3 / 7]]) and
           close(met["rollout_corr/rollout_is_batch_norm_factor"], 7 / 6),
           "batch normalisation to mean 1", f"{w.tolist()}")
    # veto: a token with rho = 1e-5 < 1e-4 rejects its whole sequence
    oldv = [[-1.0, -1.0 + L(1e-5)], [-1.0, -1.2]]
    rollv = [[-1.0, -1.0], [-1.0, -1.0]]
    w, m, met = run(oldv, rollv, rollout_is="token", rollout_token_veto_threshold=1e-4)
    report(m.tolist() == [[0, 0], [1, 1]] and
           close(met["rollout_corr/rollout_is_veto_fraction"], 0.5), "veto threshold 1e-4",
           f"mask {m.tolist()}")
    # chained criteria: token_k1 '0.8_1.25' (|delta| <= 0.223) and seq_max_k2 0.1 (k2 =
    # delta^2/2). seq 0 deltas (0.3, 0.1): token 0 fails k1, max k2 0.045 passes -> (0, 1);
    # seq 1 (0.5, 0): max k2 0.125 > 0.1 -> whole sequence out; seq 2 (0.1, 0.2): kept
    oldc = [[-1.0 + 0.3, -1.0 + 0.1], [-1.0 + 0.5, -1.0], [-1.0 + 0.1, -1.0 + 0.2]]
    rollc = [[-1.0, -1.0]] * 3
    _, m, _ = run(oldc, rollc, rollout_rs="token_k1,seq_max_k2",
                  rollout_rs_threshold="0.8_1.25,0.1")
    report(m.tolist() == [[0, 1], [0, 0], [1, 1]], "chained criteria token_k1,seq_max_k2",
           f"mask {m.tolist()}")
    # seq_mean_k3 (verl's decoupled_k3_rs) and seq_sum_k2
    d = [0.2, -0.1]
    k3 = sum(math.exp(x) - 1 - x for x in d) / 2
    _, m1, _ = run([[-1 + d[0], -1 + d[1]]], [[-1.0, -1.0]], rollout_rs="seq_mean_k3",
                   rollout_rs_threshold=k3 * 1.001)
    _, m2, _ = run([[-1 + d[0], -1 + d[1]]], [[-1.0, -1.0]], rollout_rs="seq_mean_k3",
                   rollout_rs_threshold=k3 * 0.999)
    report(m1.tolist() == [[1, 1]] and m2.tolist() == [[0, 0]], "seq_mean_k3 threshold",
           f"k3={k3:.6g}")
    # AIS by hand: rho (2, 1, 0.5), C = 2, tau_d = 1: R = 3.5^2 / (3 * 5.25),
    # V = CV(2, 1, 0.5), H = 3.5/3, D = (2 ln2/3) / (2 ln2/3 + H)
    w, _, met = run(old3, roll3, rollout_is="ais", ais_config=kt.AisConfig(tau_d=1.0))
    mean = 3.5 / 3
    cv = math.sqrt(5.25 / 3 - mean * mean) / mean
    D = (2 * L(2) / 3) / (2 * L(2) / 3 + 3.5 / 3)
    alpha = (1 - math.exp(-D)) * (12.25 / 15.75) / (1 + cv)
    report(close(met["rollout_corr/ais_alpha"], alpha) and
           close(w, [[1 + alpha, 1.0, 1 - 0.5 * alpha]]), "AIS alpha by hand",
           f"alpha {met['rollout_corr/ais_alpha'].item():.15g} (expect {alpha:.15g})")
    # EMA
    st = kt.AisState()
    cfg = kt.AisConfig(tau_d=1.0, ema=0.5)
    _, _, m1 = run(old3, roll3, rollout_is="ais", ais_config=cfg, ais_state=st)
    _, _, m2 = run(oldc, rollc, rollout_is="ais", ais_config=cfg, ais_state=st)
    want = 0.5 * m1["rollout_corr/ais_alpha"] + 0.5 * m2["rollout_corr/ais_alpha_raw"]
    report(close(m2["rollout_corr/ais_alpha"], want) and close(st.alpha, want), "AIS EMA state")
    # verl metric definitions: ESS on weights clamped to [1/C, C] and mean-normalised; kl sign
    _, _, met = run(old3, roll3, rollout_is="token", rollout_is_threshold=1.5)
    wc = torch.tensor([1.5, 1.0, 2 / 3])
    ess = 1.0 / ((wc / wc.mean()) ** 2).mean().item()
    kl = -(L(2) + 0 - L(2)) / 3
    names = {"rollout_is_eff_sample_size", "rollout_is_mean", "rollout_is_std", "rollout_is_max",
             "rollout_is_min", "rollout_is_ratio_fraction_high", "rollout_is_ratio_fraction_low",
             "kl", "k3_kl", "training_ppl", "rollout_ppl", "log_ppl_diff", "ppl_ratio",
             "chi2_token", "chi2_seq"}
    have = {k[len("rollout_corr/"):] for k in met}
    report(names <= have and close(met["rollout_corr/rollout_is_eff_sample_size"], ess, 1e-6)
           and close(met["rollout_corr/kl"], kl) and
           close(met["rollout_corr/rollout_is_ratio_fraction_high"], 1 / 3) and
           close(met["rollout_corr/chi2_token"], (4 + 1 + 0.25) / 3 - 1),
           "verl metric names and definitions", f"missing {sorted(names - have)}")
    fl = kt.metrics_to_floats(met)
    report(all(isinstance(v, float) for v in fl.values()), "metrics_to_floats", f"{len(fl)} values")
    # rollout_is=None: weights None as in verl, rejection still applies
    w, m, _ = run(old3, roll3, rollout_rs="token_k1", rollout_rs_threshold="0.6_1.5")
    report(w is None and m.tolist() == [[0, 1, 0]], "rollout_is=None -> weights None, RS applied")


def test_trl():
    L = math.log
    # 100 tokens x 0.012 mean log-ratio = sequence ratio 3.32 > cap 3 (the issue trackers' case)
    old = torch.full((2, 100), -1.0, dtype=torch.float64)
    roll = old.clone()
    old[0] += 0.012
    old[1, :10] += 0.05
    mask = torch.ones(2, 100)
    w, met = kt.trl_importance_weights(old, roll, mask, mode="sequence_mask", cap=3.0)
    report(torch.all(w[0] == 0) and close(w[1], torch.full((100,), math.exp(0.5), dtype=torch.float64)) and
           close(met["sampling/importance_sampling_ratio/max"], math.exp(1.2), 1e-9),
           "TRL sequence_mask cap 3 (ratio 3.32 -> 0)", f"w[0,0]={w[0, 0].item()}, "
           f"w[1,0]={w[1, 0].item():.6g} max "
           f"{met['sampling/importance_sampling_ratio/max'].item():.9g}")
    w, _ = kt.trl_importance_weights(old, roll, mask, mode="sequence_truncate", cap=3.0)
    report(close(w[0], torch.full((100,), 3.0, dtype=torch.float64)), "TRL sequence_truncate cap 3")
    o3, r3 = torch.tensor([[-2 + L(4), -2.0]]), torch.tensor([[-2.0, -2.0]])
    w, _ = kt.trl_importance_weights(o3, r3, torch.ones(1, 2), mode="token_mask", cap=3.0)
    w2, _ = kt.trl_importance_weights(o3, r3, torch.ones(1, 2), mode="token_truncate", cap=3.0)
    report(close(w, [[0.0, 1.0]]) and close(w2, [[3.0, 1.0]]) and w.dtype == torch.float32,
           "TRL token_mask / token_truncate", f"{w.tolist()} {w2.tolist()}")
    expect_error("TRL unknown mode", lambda: kt.trl_importance_weights(o3, r3, torch.ones(1, 2),
                                                                       mode="token"),
                 ValueError, "token_truncate")


def test_length_invariance():
    """alpha at T=4096 within 2x of T=4 for the same per-token mismatch (issue 19)."""
    gen = torch.Generator().manual_seed(5)
    alphas = []
    for b, t in ((2048, 4), (8, 4096)):
        old = -3.0 * torch.rand(b, t, generator=gen, dtype=torch.float64) - 0.01
        roll = (old - 0.05 * torch.randn(b, t, generator=gen, dtype=torch.float64)).clamp(max=0)
        _, _, met = kt.compute_rollout_correction_and_rejection_mask(
            old, roll, torch.ones(b, t, dtype=torch.bool), rollout_is="ais")
        alphas.append(met["rollout_corr/ais_alpha"].item())
    r = alphas[0] / alphas[1]
    report(0.5 <= r <= 2.0, "AIS alpha T=4 vs T=4096 within 2x", f"{alphas[0]:.4f} vs "
           f"{alphas[1]:.4f} (ratio {r:.3f})")


def test_errors():
    old = torch.full((2, 3), -1.0)
    roll = torch.full((2, 3), -1.2)
    f = kt.compute_rollout_correction_and_rejection_mask
    for bad in (float("nan"), float("inf"), -1.0, 2.0, 0.5):
        m = torch.ones(2, 3)
        m[1, 2] = bad
        expect_error(f"mask value {bad} -> error", lambda: f(old, roll, m, rollout_is="token"),
                     ValueError, "response_mask[1, 2]")
    pos = old.clone()
    pos[0, 1] = 0.5
    expect_error("positive log-prob -> error", lambda: f(pos, roll, torch.ones(2, 3),
                                                         rollout_is="token"),
                 ValueError, "old_log_prob[0, 1] = 0.5 is a positive log-prob")
    pos[0, 1] = 5e-4  # within the documented tolerance 1e-3
    w, _, _ = f(pos, roll, torch.ones(2, 3), rollout_is="token")
    report(w is not None, "log-prob 5e-4 within tolerance accepted")
    nan = roll.clone()
    nan[1, 0] = float("nan")
    expect_error("NaN log-prob -> error", lambda: f(old, nan, torch.ones(2, 3),
                                                    rollout_is="token"),
                 ValueError, "rollout_log_prob[1, 0] = nan")
    expect_error("shape mismatch", lambda: f(old, roll[:, :2], torch.ones(2, 3)), ValueError,
                 "rollout_log_prob shape")
    expect_error("mask shape mismatch", lambda: f(old, roll, torch.ones(2, 2)), ValueError,
                 "response_mask shape")
    expect_error("empty mask", lambda: f(old, roll, torch.zeros(2, 3)), ValueError,
                 "no valid token")
    expect_error("unknown rs criterion", lambda: f(old, roll, torch.ones(2, 3), rollout_rs="k1",
                                                   rollout_rs_threshold=2.0),
                 ValueError, "unknown criterion 'k1'")
    expect_error("threshold count", lambda: f(old, roll, torch.ones(2, 3),
                                              rollout_rs="token_k1,seq_max_k2",
                                              rollout_rs_threshold="0.5_2"),
                 ValueError, "1 threshold(s) for 2 criteria")
    expect_error("lo_hi inverted", lambda: f(old, roll, torch.ones(2, 3), rollout_is="token",
                                             rollout_is_threshold="2_0.5"),
                 ValueError, "lower < upper")
    expect_error("k2 with lo_hi", lambda: f(old, roll, torch.ones(2, 3), rollout_rs="token_k2",
                                            rollout_rs_threshold="0.1_0.2"),
                 ValueError, "one upper bound")
    expect_error("bad rollout_is", lambda: f(old, roll, torch.ones(2, 3), rollout_is="tis"),
                 ValueError, "rollout_is='tis'")
    expect_error("bad AisConfig", lambda: f(old, roll, torch.ones(2, 3), rollout_is="ais",
                                            ais_config=kt.AisConfig(tau_d=0.0)),
                 ValueError, "tau_d")


def main():
    test_agreement()
    test_dtype_device_sync()
    test_hand()
    test_trl()
    test_length_invariance()
    test_errors()
    return aistest.finish()


if __name__ == "__main__":
    sys.exit(main())

"""Estimator-level test of rollout corrections (issue 19 item 4): bias, variance and MSE of the
policy gradient estimated from low-precision rollouts, against the exact gradient.

Model. An autoregressive log-linear policy over V = 256 tokens: pi(a | s) = softmax(k * theta[s])
with theta ~ N(0, 1) (V x V, fixed seed), s the previous token (s_0 = 0), k the sharpness (logit
scale 1..16). The trainer uses these logits (float32 -> float64 log_softmax). The rollout engine
uses the same logits quantized: E4M3 with one scale per row (state), or FP4 E2M1 with one float32
scale per block of 32 logits (fp8sim.py). Reward: c[y_t] summed over the T tokens, c ~ N(0, 1).

Reference. The exact gradient of J = E_pi[sum_t c[y_t]] w.r.t. theta, by dynamic programming
(Q_t(s, a) = c[a] + V_{t+1}(a) does not depend on s):
    grad[s, a] = k * sum_t p_t(s) pi(a|s) (q_t[a] - V_t(s)),  p_t = state distribution at t.
Estimator. B = 256 sequences from the rollout policy; REINFORCE with reward-to-go G_t minus the
leave-one-out batch mean at t (a baseline that keeps it unbiased on-policy), per-token weight w:
    g = (1/B') sum_i sum_t w_it A_it grad log pi(y_it | y_i,t-1),
B' = B, or the number of kept sequences for rejection modes. Weights come from kforge_ais.torch:
none, token_tis (C=2), seq_tis (C=2), seq_mis (seq IS C=2 + seq_sum_k1 '0.5_2.0', verl's
decoupled_seq_is_rs), geo_rs (seq_mean_k1 '0.999_1.001', verl's decoupled_geo_rs, no IS weight),
ais (default gate, level token, C=2). 200 replicates per configuration; bias^2 = ||mean g - g*||^2
minus its sampling floor var/R (can be slightly negative), var = mean ||g - mean g||^2, MSE = mean
||g - g*||^2, all divided by ||g*||^2. On-policy control: the same estimator with samples from
pi itself (bias^2 must be ~0: it checks the reference and the estimator).

alpha*: the MSE-optimal fixed mix (1 - a) g_none + a g_token_tis over the replicates (the family
AIS chooses from), clipped to [0, 1]; compared with AIS's per-batch alpha (mean over replicates).

    /usr/bin/python3 runtime/ais/experiments/estimator.py --out runtime/ais/experiments/results
    ... --smoke   (tiny: one small configuration, used by ctest)
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fp8sim  # noqa: E402
from hostinfo import cpu_name  # noqa: E402

from kforge_ais import torch as kt  # noqa: E402

MODES = ("none", "token_tis", "seq_tis", "seq_mis", "geo_rs", "ais")


def policies(V, k, fmt, seed):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(V, V, generator=g)
    c = torch.randn(V, generator=g, dtype=torch.float64)
    logits = (k * theta).float()
    if fmt == "e4m3":
        q = fp8sim.quant_rows(logits)
    elif fmt == "fp4":
        q = fp8sim.quant_blocks_fp4(logits)
    else:
        raise ValueError(fmt)
    return (torch.log_softmax(logits.double(), -1), torch.log_softmax(q.double(), -1), c)


def exact_gradient(logp, c, T, k):
    """grad[s, a] = k sum_t p_t(s) pi(a|s) (q_t[a] - V_t(s)) and J, by dynamic programming."""
    pi = logp.exp()
    V = pi.shape[0]
    q = [None] * (T + 2)
    v_next = torch.zeros(V, dtype=torch.float64)  # V_{T+1}
    vs = [None] * (T + 2)
    for t in range(T, 0, -1):
        q[t] = c + v_next          # Q_t(s, a) = c[a] + V_{t+1}(a)
        vs[t] = pi @ q[t]          # V_t(s)
        v_next = vs[t]
    p = torch.zeros(V, dtype=torch.float64)
    p[0] = 1.0
    acc = torch.zeros(V, V, dtype=torch.float64)
    for t in range(1, T + 1):
        acc += p[:, None] * (q[t][None, :] - vs[t][:, None])
        p = p @ pi
    return k * pi * acc, float(vs[1][0])


class Sampler:
    """Markov-chain sampling by one searchsorted per step in a flattened, row-offset CDF."""

    def __init__(self, logp):
        V = logp.shape[0]
        cdf = logp.exp().cumsum(-1)
        cdf[:, -1] = 1.0
        self.flat = (cdf + torch.arange(V, dtype=torch.float64)[:, None]).reshape(-1)
        self.V = V

    def sample(self, n, T, gen):
        s = torch.zeros(n, dtype=torch.int64)
        toks = torch.empty(n, T, dtype=torch.int64)
        states = torch.empty(n, T, dtype=torch.int64)
        for t in range(T):
            u = torch.rand(n, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
            idx = torch.searchsorted(self.flat, s.double() + u)
            a = (idx - s * self.V).clamp(0, self.V - 1)
            states[:, t] = s
            toks[:, t] = a
            s = a
        return states, toks


def weights_for(mode, lp_old, lp_roll, mask):
    f = kt.compute_rollout_correction_and_rejection_mask
    if mode == "none":
        return torch.ones_like(lp_old), mask
    if mode == "token_tis":
        w, m, _ = f(lp_old, lp_roll, mask, rollout_is="token", rollout_is_threshold=2.0,
                    check_inputs=False)
    elif mode == "seq_tis":
        w, m, _ = f(lp_old, lp_roll, mask, rollout_is="sequence", rollout_is_threshold=2.0,
                    check_inputs=False)
    elif mode == "seq_mis":
        w, m, _ = f(lp_old, lp_roll, mask, rollout_is="sequence", rollout_is_threshold=2.0,
                    rollout_rs="seq_sum_k1", rollout_rs_threshold="0.5_2.0", check_inputs=False)
    elif mode == "geo_rs":
        w, m, _ = f(lp_old, lp_roll, mask, rollout_rs="seq_mean_k1",
                    rollout_rs_threshold="0.999_1.001", check_inputs=False)
        w = m.to(lp_old.dtype)
    else:
        raise ValueError(mode)
    return w, m


def run_config(V, T, k, fmt, R, B, seed, chunk, on_policy=False):
    logp, logq, c = policies(V, k, fmt, seed)
    g_star, J = exact_gradient(logp, c, T, k)
    g2 = float((g_star ** 2).sum())
    pi = logp.exp()
    sampler = Sampler(logp if on_policy else logq)
    gen = torch.Generator().manual_seed(seed + 1000 * T + int(100 * k) + (7 if on_policy else 0))
    modes = ("none",) if on_policy else MODES
    sum_g = {m: torch.zeros(V, V, dtype=torch.float64) for m in modes}
    sum_e2 = {m: 0.0 for m in modes}
    cross = dd = 0.0  # for alpha*: sum <e0, e1 - e0>, sum ||e1 - e0||^2
    alphas, kept, dabs, nll = [], {m: 0.0 for m in modes}, [], []
    for r0 in range(0, R, chunk):
        nr = min(chunk, R - r0)
        states, toks = sampler.sample(nr * B, T, gen)
        lp_old = logp[states, toks]
        lp_roll = logq[states, toks] if not on_policy else lp_old
        mask = torch.ones(nr * B, T, dtype=torch.bool)
        G = c[toks].flip(-1).cumsum(-1).flip(-1)  # reward-to-go
        Gr = G.view(nr, B, T)
        A = (Gr - (Gr.sum(1, keepdim=True) - Gr) / (B - 1)).reshape(nr * B, T)
        dabs.append(float((lp_old - lp_roll).abs().mean()))
        nll.append(float(-lp_old.mean()))
        flat = (torch.arange(nr).repeat_interleave(B * T) * V * V +
                (states * V + toks).reshape(-1))
        g_mode = {}
        for m in modes:
            if m == "ais":
                w = torch.empty_like(lp_old)
                keep = mask
                for r in range(nr):
                    sl = slice(r * B, (r + 1) * B)
                    wr, _, met = kt.compute_rollout_correction_and_rejection_mask(
                        lp_old[sl], lp_roll[sl], mask[sl], rollout_is="ais", check_inputs=False)
                    w[sl] = wr
                    alphas.append(float(met["rollout_corr/ais_alpha"]))
            else:
                w, keep = weights_for(m, lp_old, lp_roll, mask)
            seq_kept = keep.view(nr, B, T).any(-1).sum(-1).double()  # per replicate
            kept[m] += float(seq_kept.sum()) / (R * B)
            coef = (w * A).view(nr, B, T) / seq_kept.clamp_min(1.0)[:, None, None]
            C = torch.zeros(nr * V * V, dtype=torch.float64).index_add_(0, flat, coef.reshape(-1))
            C = C.view(nr, V, V)
            g = k * (C - C.sum(-1, keepdim=True) * pi[None])
            sum_g[m] += g.sum(0)
            e = g - g_star[None]
            sum_e2[m] += float((e ** 2).sum())
            g_mode[m] = e
        if not on_policy:
            d = g_mode["token_tis"] - g_mode["none"]
            cross += float((g_mode["none"] * d).sum())
            dd += float((d ** 2).sum())
    out = dict(T=T, k=k, fmt="fp32 (on-policy)" if on_policy else fmt, J=J, g2=g2,
               mean_abs_delta=sum(dabs) / len(dabs), mean_nll=sum(nll) / len(nll))
    for m in modes:
        mean = sum_g[m] / R
        mse = sum_e2[m] / R
        bias2_raw = float(((mean - g_star) ** 2).sum())
        var = mse - bias2_raw
        out[m] = dict(mse=mse / g2, var=var / g2, bias2=(bias2_raw - var / R) / g2,
                      kept=kept[m])
    if not on_policy:
        a_star = min(max(-cross / dd, 0.0), 1.0) if dd > 0 else 0.0
        e0 = sum_e2["none"] / R
        mse_star = (e0 + 2 * a_star * cross / R + a_star ** 2 * dd / R) / g2
        out.update(alpha_star=a_star, mse_alpha_star=mse_star,
                   alpha_ais=sum(alphas) / len(alphas),
                   alpha_ais_sd=float(torch.tensor(alphas).std()))
    return out


def _job(job):
    torch.set_num_threads(1)
    c0 = time.process_time()
    V, T, k, f, R, B, seed, chunk, on_policy = job
    r = run_config(V, T, k, f, R, B, seed, chunk, on_policy=on_policy)
    r["cpu_seconds"] = time.process_time() - c0
    if not on_policy:
        print(fmt_row(r), f"({r['cpu_seconds']:.0f} s CPU)", flush=True)
    return r


def fmt_row(r):
    cells = [str(r["T"]), r["fmt"], f"{r['k']:g}", f"{r['mean_abs_delta']:.4f}"]
    for m in MODES:
        cells.append(f"{r[m]['mse']:.3g}")
    best = min(MODES, key=lambda m: r[m]["mse"])
    cells += [best, f"{r['alpha_star']:.2f}", f"{r['alpha_ais']:.2f} ± {r['alpha_ais_sd']:.2f}",
              f"{r['mse_alpha_star']:.3g}"]
    return "| " + " | ".join(cells) + " |"


def write_outputs(args, rows, controls, out, wall, cpu):
    os.makedirs(out, exist_ok=True)
    lines = [f"# Estimator-level test: bias, variance, MSE of the policy gradient from "
             f"low-precision rollouts",
             "",
             f"V={args.V}, B={args.B}, {args.R} replicates per configuration, REINFORCE with "
             f"reward-to-go and a leave-one-out baseline; exact reference gradient by dynamic "
             f"programming (see estimator.py). All errors are relative to ||g*||^2. "
             f"D = mean |log pi_old - log pi_rollout| per token.",
             "",
             "## MSE / ||g*||^2 per mode, MSE-optimal mix alpha* vs AIS's alpha",
             "",
             "| T | format | k | D | " + " | ".join(MODES) +
             " | best | alpha* | AIS alpha (mean ± sd) | MSE at alpha* |",
             "|" + "---|" * (4 + len(MODES) + 4)]
    lines += [fmt_row(r) for r in rows]
    lines += ["", "## bias^2 / var (relative to ||g*||^2) per mode; kept = fraction of "
              "sequences kept", "",
              "| T | format | k | " + " | ".join(f"{m} bias2 / var" for m in MODES) +
              " | seq_mis kept | geo_rs kept |",
              "|" + "---|" * (3 + len(MODES) + 2)]
    for r in rows:
        cells = [str(r["T"]), r["fmt"], f"{r['k']:g}"]
        cells += [f"{r[m]['bias2']:.2g} / {r[m]['var']:.2g}" for m in MODES]
        cells += [f"{r['seq_mis']['kept']:.3f}", f"{r['geo_rs']['kept']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## On-policy control (samples from the trainer policy, no correction)", "",
              "| T | k | bias2 | var | MSE |", "|---|---|---|---|---|"]
    for r in controls:
        n = r["none"]
        lines.append(f"| {r['T']} | {r['k']:g} | {n['bias2']:.2g} | {n['var']:.3g} | "
                     f"{n['mse']:.3g} |")
    lines += ["", f"Wall time {wall:.0f} s with {args.workers} worker process(es), 1 torch "
              f"thread each ({cpu:.0f} s of worker CPU time, i.e. about {cpu / 2:.0f} s on 2 "
              f"idle cores); CPU: {cpu_name()}."]
    with open(os.path.join(out, "estimator.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "estimator.json"), "w") as fh:
        json.dump(dict(args=vars(args), rows=rows, controls=controls, wall=wall, cpu=cpu), fh,
                  indent=1)
    return "\n".join(lines), plots(rows, out)


def plots(rows, out):
    """estimator_mse.png: MSE vs k per mode, one panel per (T, format); estimator_alpha.png:
    alpha* and AIS's alpha vs k."""
    panels = sorted({(r["T"], r["fmt"]) for r in rows}, key=lambda p: (p[1], p[0]))
    dat = os.path.join(out, "estimator.dat")
    with open(dat, "w") as fh:
        for T, f in panels:
            fh.write(f"# T={T} {f}\n# k " + " ".join(MODES) + " alpha_star alpha_ais sd\n")
            for r in sorted((r for r in rows if r["T"] == T and r["fmt"] == f),
                            key=lambda r: r["k"]):
                fh.write(f"{r['k']:g} " + " ".join(f"{r[m]['mse']:.6g}" for m in MODES) +
                         f" {r['alpha_star']:.6g} {r['alpha_ais']:.6g} {r['alpha_ais_sd']:.6g}\n")
            fh.write("\n\n")
    ncol = 3
    nrow = (len(panels) + ncol - 1) // ncol
    mse_png, alpha_png = (os.path.join(out, "estimator_mse.png"),
                          os.path.join(out, "estimator_alpha.png"))
    s = (f"set terminal pngcairo size 1400,{420 * nrow} font 'sans,9' noenhanced\n"
         f"set output '{mse_png}'\nset multiplot layout {nrow},{ncol}\n"
         "set logscale xy; set xrange [0.8:20]; set xlabel 'logit scale k'\n"
         "set ylabel 'MSE / |g*|^2 (zero estimator: 1)'\n"
         "set key top left font 'sans,8'; set grid\n")
    for i, (T, f) in enumerate(panels):
        s += f"set title 'T={T}, {f}'\nplot " + ", ".join(
            f"'{dat}' index {i} using 1:{j + 2} with linespoints title '{m}'"
            for j, m in enumerate(MODES)) + "\n"
    s += "unset multiplot\n"
    s += (f"set output '{alpha_png}'\nset multiplot layout {nrow},{ncol}\nunset logscale y\n"
          "set yrange [-0.05:1.05]; set ylabel 'alpha'; set key bottom right\n")
    na = len(MODES) + 2
    for i, (T, f) in enumerate(panels):
        s += (f"set title 'T={T}, {f}'\nplot '{dat}' index {i} using 1:{na} with linespoints "
              f"title 'alpha* (MSE-optimal none/token_tis mix)', '{dat}' index {i} using "
              f"1:{na + 1}:{na + 2} with yerrorlines title 'AIS alpha (mean ± sd)'\n")
    s += "unset multiplot\n"
    res = subprocess.run(["gnuplot"], input=s, text=True, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {res.stderr.strip()}")
    return mse_png, alpha_png


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--V", type=int, default=256)
    p.add_argument("--T", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--k", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--formats", nargs="+", default=["e4m3", "fp4"], choices=["e4m3", "fp4"])
    p.add_argument("--R", type=int, default=200, help="replicates")
    p.add_argument("--B", type=int, default=256, help="sequences per replicate")
    p.add_argument("--chunk", type=int, default=25, help="replicates sampled at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2,
                   help="configurations run in this many processes (1 torch thread each)")
    p.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--replot", metavar="ESTIMATOR_JSON",
                   help="only rewrite the tables and plots in --out from a saved estimator.json")
    args = p.parse_args(argv)
    if args.replot:
        with open(args.replot) as fh:
            saved = json.load(fh)
        out = args.out
        args = argparse.Namespace(**saved["args"])
        table, pngs = write_outputs(args, saved["rows"], saved["controls"], out, saved["wall"],
                                    saved.get("cpu", float("nan")))
        print(table)
        print("plots:", *pngs)
        return 0
    if args.smoke:
        args.V, args.T, args.k, args.R, args.B, args.chunk = 64, [8], [2.0, 8.0], 24, 64, 12
    if args.V % 32 or args.B < 2 or args.R < 2:
        p.error("--V must be a multiple of 32 (FP4 blocks), --B and --R >= 2")
    t0 = time.time()
    jobs = [(args.V, T, k, f, args.R, args.B, args.seed, args.chunk, on)
            for T in sorted(args.T, reverse=True) for k in args.k
            for f, on in [("e4m3", True)] + [(f, False) for f in args.formats]]
    rows, controls, cpu = [], [], 0.0
    if args.workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(args.workers) as pool:
            done = list(pool.imap_unordered(_job, jobs, chunksize=1))
    else:
        done = [_job(j) for j in jobs]
    for r in done:
        cpu += r.pop("cpu_seconds")
        if r["fmt"].startswith("fp32"):
            controls.append(r)
        else:
            rows.append(r)
    key = lambda r: (r["T"], r["fmt"], r["k"])
    rows.sort(key=key)
    controls.sort(key=key)
    wall = time.time() - t0
    print(f"wall {wall:.0f} s, {cpu:.0f} s CPU in {args.workers} worker(s)")
    table, pngs = write_outputs(args, rows, controls, args.out, wall, cpu)
    print(table)
    print("plots:", *pngs)
    # sanity (the smoke test relies on these): finite numbers, the on-policy control unbiased
    # within its noise, alphas in [0, 1], plots written
    ok = all(math.isfinite(r[m]["mse"]) for r in rows for m in MODES)
    ok &= all(0.0 <= r["alpha_star"] <= 1.0 and 0.0 <= r["alpha_ais"] <= 1.0 for r in rows)
    ok &= all(abs(c["none"]["bias2"]) <= 5 * c["none"]["var"] / math.sqrt(args.R) + 1e-12
              for c in controls)
    ok &= all(os.path.getsize(x) > 1000 for x in pngs)
    print("estimator outputs", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

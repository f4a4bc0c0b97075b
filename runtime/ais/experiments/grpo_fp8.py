#!/usr/bin/python3
"""Miniature GRPO with FP8-E4M3-simulated rollouts: does importance weighting recover the
full-precision result?

Task: add two n-digit numbers (digits written least-significant first, answer n+1 digits,
reward 1 for an exactly correct answer). Policy: a tiny causal transformer, warm-started by a
short supervised phase (shared by all arms of a seed). RL: GRPO, one gradient step per rollout
batch, token-mean loss  L = -sum_{i,t} w_it * keep_it * A_i * log pi(o_it) / sum keep.

Arms (same seed -> same warm start, same prompts):
  ref   rollouts from the FP32 policy (no mismatch), w = 1
  fp8   rollouts from the FP8 copy, w = 1 (uncorrected)
  tis   FP8, token-level truncated IS, w = min(rho_t, 2)
  mis   FP8, sequence-level masked IS (verl's Seq-MIS: min(W_i, 2), reject W_i outside [0.5, 2])
  ais   FP8, AIS: w = (1 - alpha) + alpha * min(rho_t, 2), alpha from R, D, V per batch
Weights and diagnostics come from libkforge_ais (the kforge_ais binding) for every arm.

FP8 rollout policy: a copy of the trainer's weights with every linear layer's weight (incl. the
LM head) rounded to E4M3 with a per-tensor scale, and every matmul input activation (linear
inputs, q, k, softmax probabilities, v) rounded with per-row dynamic scales (fp8sim.py).

Outputs in --out: results.json (all curves), results.md (table), reward.png, diagnostics.png.
"""

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fp8sim  # noqa: E402
from hostinfo import cpu_name  # noqa: E402

ARMS = {
    "ref": dict(fp8=False, mode="none"),
    "fp8": dict(fp8=True, mode="none"),
    "tis": dict(fp8=True, mode="token_tis"),
    "mis": dict(fp8=True, mode="seq_mis"),
    "ais": dict(fp8=True, mode="ais"),
}
PLUS, EQ = 10, 11
VOCAB = 12


# ---------------------------------------------------------------------------------------------
# Model

class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask, fp8):
        act = fp8sim.quant_rows if fp8 else (lambda t: t)
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(act(h)).split(d, dim=-1)
        hd = d // self.heads
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        att = act(q) @ act(k).transpose(-1, -2) / math.sqrt(hd)
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (act(att) @ act(v)).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(act(y))
        x = x + self.fc2(act(F.gelu(self.fc1(act(self.ln2(x))))))
        return x


class TinyGPT(nn.Module):
    def __init__(self, d, layers, heads, max_len):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)
        self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool),
                                                  diagonal=1), persistent=False)
        self.fp8 = False

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos.weight[:t]
        for blk in self.blocks:
            x = blk(x, self.causal, self.fp8)
        h = self.ln_f(x)
        return self.head(fp8sim.quant_rows(h) if self.fp8 else h)


def fp8_copy(model):
    """The rollout engine's copy: E4M3 weights (per-tensor scale) + E4M3 activations."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.copy_(fp8sim.quant_tensor(mod.weight))
    m.fp8 = True
    return m


# ---------------------------------------------------------------------------------------------
# Task

def make_prompts(gen, n, digits):
    a = torch.randint(0, 10 ** digits, (n,), generator=gen)
    b = torch.randint(0, 10 ** digits, (n,), generator=gen)
    return a, b


def to_digits(x, n):
    """Least-significant digit first, n digits."""
    return torch.stack([(x // 10 ** k) % 10 for k in range(n)], dim=1)


def encode(a, b, digits):
    return torch.cat([to_digits(a, digits), torch.full((a.shape[0], 1), PLUS),
                      to_digits(b, digits), torch.full((a.shape[0], 1), EQ)], dim=1)


def answer(a, b, digits):
    return to_digits(a + b, digits + 1)


@torch.no_grad()
def sample(model, prompts, n_new, greedy=False):
    """Autoregressive sampling (temperature 1). Returns tokens [B, n_new] and their log-probs."""
    seq = prompts
    toks, lps = [], []
    for _ in range(n_new):
        logp = model(seq)[:, -1].float().log_softmax(dim=-1)
        nxt = logp.argmax(dim=-1, keepdim=True) if greedy else torch.multinomial(logp.exp(), 1)
        toks.append(nxt)
        lps.append(logp.gather(1, nxt))
        seq = torch.cat([seq, nxt], dim=1)
    return torch.cat(toks, dim=1), torch.cat(lps, dim=1)


def token_logprobs(model, prompts, completion):
    seq = torch.cat([prompts, completion], dim=1)
    p = prompts.shape[1]
    logits = model(seq[:, :-1])[:, p - 1:]
    return logits.float().log_softmax(dim=-1).gather(2, completion.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def evaluate(model, prompts, target):
    """Exact-match reward of the FP32 policy: sampled (temperature 1) and greedy."""
    comp, _ = sample(model, prompts, target.shape[1])
    greedy, _ = sample(model, prompts, target.shape[1], greedy=True)
    return ((comp == target).all(dim=1).float().mean().item(),
            (greedy == target).all(dim=1).float().mean().item())


# ---------------------------------------------------------------------------------------------
# Phases

def build_model(args):
    return TinyGPT(args.d_model, args.layers, args.heads, 2 * args.digits + 3 + args.digits)


def sft(args, seed, path):
    """Supervised warm start on worked examples until the sampled exact-match rate on a
    separate check set reaches --sft-target (checked every 10 steps; at most --sft-steps), so
    every seed starts RL from a partly competent policy. Saves the state dict; returns
    (steps, accuracy)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    ca, cb = make_prompts(torch.Generator().manual_seed(40_000 + seed), 256, args.digits)
    check_p, check_t = encode(ca, cb, args.digits), answer(ca, cb, args.digits)
    model = build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.sft_lr)
    acc, step = 0.0, 0
    for step in range(1, args.sft_steps + 1):
        a, b = make_prompts(gen, args.sft_batch, args.digits)
        x = torch.cat([encode(a, b, args.digits), answer(a, b, args.digits)], dim=1)
        logits = model(x[:, :-1])[:, 2 * args.digits + 1:]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 2 * args.digits + 2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            acc = evaluate(model, check_p, check_t)[0]
            if acc >= args.sft_target:
                break
    torch.save(model.state_dict(), path)
    return step, acc


def run_arm(args, seed, arm, sft_path):
    import kforge_ais as ais
    torch.manual_seed(1000 * seed + 7)
    spec = ARMS[arm]
    model = build_model(args)
    model.load_state_dict(torch.load(sft_path))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(20_000 + seed)  # same prompts for every arm of a seed
    eval_gen = torch.Generator().manual_seed(30_000 + seed)
    ea, eb = make_prompts(eval_gen, args.eval_prompts, args.digits)
    eval_prompts, eval_target = encode(ea, eb, args.digits), answer(ea, eb, args.digits)
    n_new = args.digits + 1
    diag_cfg = ais.Config("ais", tau_d=1.0)  # diagnostics for every arm (tau_d fixed later)
    cfg = None
    state = ais.State()
    hist = {k: [] for k in ("step", "reward", "D", "R", "V", "alpha", "kl_k1", "frac_kept",
                            "frac_clipped")}
    evals = {"step": [], "sampled": [], "greedy": []}
    t0 = time.time()
    for step in range(args.steps + 1):
        if step % args.eval_every == 0 or step == args.steps:
            s_acc, g_acc = evaluate(model, eval_prompts, eval_target)
            evals["step"].append(step)
            evals["sampled"].append(s_acc)
            evals["greedy"].append(g_acc)
        if step == args.steps:
            break
        a, b = make_prompts(gen, args.prompts, args.digits)
        prompts = encode(a, b, args.digits).repeat_interleave(args.group, dim=0)
        target = answer(a, b, args.digits).repeat_interleave(args.group, dim=0)
        roller = fp8_copy(model) if spec["fp8"] else model
        comp, lp_roll = sample(roller, prompts, n_new)
        reward = (comp == target).all(dim=1).float()
        grp = reward.view(args.prompts, args.group)
        adv = ((grp - grp.mean(dim=1, keepdim=True)) / (grp.std(dim=1, keepdim=True) + 1e-6))
        adv = adv.reshape(-1)
        lp = token_logprobs(model, prompts, comp)
        lp_old = lp.detach()
        keep_all = torch.ones_like(lp_old, dtype=torch.bool)  # every answer token is valid
        if cfg is None:  # first batch calibrates AIS's tau_d (= tau_mult x D at step 0)
            d0 = ais.compute(lp_old.double(), lp_roll.double(), keep_all, config=diag_cfg)[2].divergence
            tau_d = max(args.ais_tau_mult * d0, 1e-6)
            cfg = ais.Config(spec["mode"], cap=args.cap, tau_d=tau_d, ema=args.ais_ema)
            diag_cfg = ais.Config("ais", cap=args.cap, tau_d=tau_d)
        w, keep, diag = ais.compute(lp_old.double(), lp_roll.double(), keep_all, config=cfg, state=state)
        if spec["mode"] != "ais":  # log the AIS diagnostics the AIS arm would have seen
            diag = ais.compute(lp_old.double(), lp_roll.double(), keep_all, config=diag_cfg)[2]
        w, keep = w.float(), keep.float()
        ratio = torch.exp(lp - lp_old)  # = 1 (one step per batch); kept for the PPO form
        surr = torch.min(ratio * adv[:, None], ratio.clamp(0.8, 1.2) * adv[:, None])
        loss = -(w * keep * surr).sum() / keep.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist["step"].append(step)
        hist["reward"].append(reward.mean().item())
        hist["D"].append(diag.divergence)
        hist["R"].append(diag.reliability)
        hist["V"].append(diag.variance_amp)
        hist["alpha"].append(diag.alpha)
        hist["kl_k1"].append(diag.kl_k1)
        hist["frac_kept"].append(keep.mean().item())
        hist["frac_clipped"].append(diag.frac_tok_clipped)
    return dict(seed=seed, arm=arm, hist=hist, evals=evals, seconds=time.time() - t0,
                tau_d=cfg.tau_d if cfg else None)


# ---------------------------------------------------------------------------------------------
# Driver

def worker(job):
    torch.set_num_threads(1)
    kind, args, seed, arm, path = job
    c0 = time.process_time()
    if kind == "sft":
        t0 = time.time()
        steps, acc = sft(args, seed, path)
        return dict(kind="sft", seed=seed, seconds=time.time() - t0, steps=steps, acc=acc,
                    cpu_seconds=time.process_time() - c0)
    r = run_arm(args, seed, arm, path)
    r["kind"] = "rl"
    r["cpu_seconds"] = time.process_time() - c0
    print(f"  seed {r['seed']} {r['arm']:4s} final sampled {r['evals']['sampled'][-1]:.3f} "
          f"greedy {r['evals']['greedy'][-1]:.3f} ({r['seconds']:.1f} s wall, "
          f"{r['cpu_seconds']:.1f} s CPU, tau_d={r['tau_d']:.4g})", flush=True)
    return r


def run_jobs(jobs, workers):
    if workers <= 1:
        return [worker(j) for j in jobs]
    import multiprocessing as mp
    with mp.get_context("fork").Pool(workers) as pool:
        done = list(pool.imap_unordered(worker, jobs, chunksize=1))
    key = lambda r: (r["seed"], list(ARMS).index(r["arm"]) if r.get("arm") else 0)
    return sorted(done, key=key)  # job order: seed, then arm


def mean_std(xs):
    xs = np.asarray(xs, dtype=float)
    return xs.mean(), (xs.std(ddof=1) if xs.size > 1 else 0.0)


def summarize(args, runs):
    arms = [a for a in args.arms]
    rows = []
    tail = max(1, args.steps // 10)
    for arm in arms:
        rs = [r for r in runs if r["arm"] == arm]
        fin_s = [r["evals"]["sampled"][-1] for r in rs]
        fin_g = [r["evals"]["greedy"][-1] for r in rs]
        start = [r["evals"]["sampled"][0] for r in rs]
        train = [np.mean(r["hist"]["reward"][-tail:]) for r in rs]
        D = [np.mean(r["hist"]["D"]) for r in rs]
        alpha = [np.mean(r["hist"]["alpha"]) for r in rs]
        kept = [np.mean(r["hist"]["frac_kept"]) for r in rs]
        ref = {r["seed"]: r["evals"]["sampled"][-1] for r in runs if r["arm"] == "ref"}
        diff = [r["evals"]["sampled"][-1] - ref[r["seed"]] for r in rs if r["seed"] in ref]
        rows.append(dict(arm=arm, n=len(rs), start=mean_std(start), final_sampled=mean_std(fin_s),
                         final_greedy=mean_std(fin_g), train_tail=mean_std(train),
                         mean_D=mean_std(D), mean_alpha=mean_std(alpha), kept=mean_std(kept),
                         vs_ref=mean_std(diff) if diff else None,
                         per_seed=fin_s))
    return rows


def write_table(args, rows, path, wall, cpu):
    f = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"
    lines = [
        f"# GRPO with FP8-E4M3 rollouts: {args.digits}-digit addition, {len(args.seeds)} seeds, "
        f"{args.steps} steps, {args.prompts}x{args.group} rollouts/step",
        "",
        "Final reward = exact-match rate of the FP32 trainer policy on "
        f"{args.eval_prompts} held-out prompts (sampled at T=1 / greedy), after the last step; "
        f"train = rollout reward over the last {max(1, args.steps // 10)} steps; mean ± sample "
        "std over seeds; 'final − ref, paired' = per-seed difference to the ref arm (same warm start, "
        "same prompts). D, alpha: per-step AIS diagnostics averaged over training (computed on "
        "every arm's batches; alpha is only applied in the ais arm).",
        "",
        "| arm | rollouts | weights | start | final (sampled) | final − ref, paired | final (greedy) "
        "| train (last 10%) | mean D | mean alpha | kept tokens | per-seed final (sampled) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spec = ARMS[r["arm"]]
        lines.append(
            f"| {r['arm']} | {'FP8' if spec['fp8'] else 'FP32'} | {spec['mode']} | "
            f"{f(r['start'])} | {f(r['final_sampled'])} | "
            f"{'%+.3f ± %.3f' % r['vs_ref'] if r['vs_ref'] else '-'} | {f(r['final_greedy'])} | "
            f"{f(r['train_tail'])} | {r['mean_D'][0]:.4f} | "
            f"{f(r['mean_alpha']) if spec['mode'] == 'ais' else '-'} | "
            f"{r['kept'][0]:.3f} | {' '.join(f'{x:.2f}' for x in r['per_seed'])} |")
    lines += ["", f"Wall time {wall:.0f} s with {args.workers} worker process(es), 1 torch thread "
              f"each ({cpu:.0f} s of worker CPU time, i.e. about {cpu / 2:.0f} s on 2 idle "
              f"cores); CPU: {cpu_name()}, {os.cpu_count()} cores."]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def smooth(xs, k):
    xs = np.asarray(xs, dtype=float)
    if k <= 1 or xs.size < k:
        return xs
    c = np.cumsum(np.insert(xs, 0, 0.0))
    out = (c[k:] - c[:-k]) / k
    return np.concatenate([xs[:k - 1].cumsum() / np.arange(1, k), out])


def plots(args, runs, out):
    """PNG plots through gnuplot (pngcairo): reward curves and diagnostics, seed means."""
    arms = args.arms
    k = max(1, args.steps // 25)
    data = {}
    for arm in arms:
        rs = [r for r in runs if r["arm"] == arm]
        steps = rs[0]["hist"]["step"]
        data[arm] = dict(
            steps=steps, evstep=rs[0]["evals"]["step"],
            reward=smooth(np.mean([r["hist"]["reward"] for r in rs], axis=0), k),
            sampled=np.mean([r["evals"]["sampled"] for r in rs], axis=0),
            **{m: smooth(np.mean([r["hist"][m] for r in rs], axis=0), k)
               for m in ("D", "R", "V", "alpha")})
    dat = os.path.join(out, "curves.dat")
    with open(dat, "w") as fh:
        for arm in arms:  # one gnuplot data block per arm (index i)
            d = data[arm]
            fh.write(f"# {arm}: step reward D R V alpha\n")
            for i, s in enumerate(d["steps"]):
                fh.write(f"{s} {d['reward'][i]:.6g} {d['D'][i]:.6g} {d['R'][i]:.6g} "
                         f"{d['V'][i]:.6g} {d['alpha'][i]:.6g}\n")
            fh.write("\n\n")
        for arm in arms:
            d = data[arm]
            fh.write(f"# {arm} evals: step sampled\n")
            for s, v in zip(d["evstep"], d["sampled"]):
                fh.write(f"{s} {v:.6g}\n")
            fh.write("\n\n")
    n = len(arms)
    col = {"ref": "black", "fp8": "red", "tis": "blue", "mis": "dark-green", "ais": "orange"}
    reward_png = os.path.join(out, "reward.png")
    diag_png = os.path.join(out, "diagnostics.png")
    plot_rw = ", ".join(
        f"'{dat}' index {i} using 1:2 with lines lw 2 lc rgb '{col.get(a, 'gray')}' "
        f"title '{a} (rollout reward)'" for i, a in enumerate(arms))
    plot_ev = ", ".join(
        f"'{dat}' index {n + i} using 1:2 with linespoints lw 2 pt 7 "
        f"lc rgb '{col.get(a, 'gray')}' title '{a} (eval, FP32 policy)'"
        for i, a in enumerate(arms))
    fp8_idx = [i for i, a in enumerate(arms) if ARMS[a]["fp8"]]
    panel = lambda c, title: (
        f"set title '{title}'; plot " + ", ".join(
            f"'{dat}' index {i} using 1:{c} with lines lw 2 lc rgb '{col.get(arms[i], 'gray')}' "
            f"title '{arms[i]}'" for i in fp8_idx) + "\n")
    script = (
        "set terminal pngcairo size 1000,700 font 'sans,10' noenhanced\n"
        f"set output '{reward_png}'\n"
        "set multiplot layout 2,1\n"
        f"set title 'Rollout reward (mean over {len(args.seeds)} seeds, moving average {k})'\n"
        "set xlabel 'GRPO step'; set ylabel 'exact-match reward'; set key bottom right\n"
        "set yrange [0:1]\n"
        f"plot {plot_rw}\n"
        "set title 'Held-out reward of the FP32 trainer policy (sampled, T=1)'\n"
        f"plot {plot_ev}\n"
        "unset multiplot\n"
        "set terminal pngcairo size 1000,800 font 'sans,10' noenhanced\n"
        f"set output '{diag_png}'\n"
        "set multiplot layout 2,2\n"
        "set xlabel 'GRPO step'; unset ylabel; set key top left opaque box; set autoscale y\n"
        + panel(3, "D: mean |log pi_train - log pi_FP8| per token")
        + panel(4, "R: normalized ESS of the applied token weights min(rho, C)")
        + panel(5, "V: CV of the raw token ratios rho")
        + panel(6, "alpha (AIS mixing coefficient; applied only in ais)")
        + "unset multiplot\n")
    res = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"gnuplot failed: {res.stderr.strip()}")
    return reward_png, diag_png


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny settings for the test suite")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--digits", type=int, default=3)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--sft-steps", type=int, default=1000, help="at most this many SFT steps")
    p.add_argument("--sft-target", type=float, default=0.15,
                   help="stop SFT once the sampled exact-match rate reaches this")
    p.add_argument("--sft-batch", type=int, default=128)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cap", type=float, default=2.0)
    p.add_argument("--ais-tau-mult", type=float, default=4.0,
                   help="AIS tau_d = this x D measured on the first batch")
    p.add_argument("--ais-ema", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--eval-prompts", type=int, default=512)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--replot", metavar="RESULTS_JSON",
                   help="only rewrite the table and plots in --out from a saved results.json")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:2] if len(args.seeds) > 2 else args.seeds
        # 1-digit addition (100 problems, 2-token answers) so that a 200-step warm start
        # reaches a non-zero reward and the arms differ
        args.digits, args.sft_target = 1, 0.3
        args.sft_steps, args.steps, args.prompts, args.group = 200, 6, 8, 4
        args.eval_every, args.eval_prompts = 3, 64
    bad = [k for k in ("steps", "prompts", "group", "eval_every", "eval_prompts", "digits",
                       "workers") if getattr(args, k) < 1]
    if bad:
        p.error(f"{', '.join('--' + b.replace('_', '-') for b in bad)} must be >= 1")
    if args.group < 2:
        p.error("--group must be >= 2 (GRPO advantages need a group)")
    return args


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    os.makedirs(args.out, exist_ok=True)
    if args.replot:
        with open(args.replot) as fh:
            saved = json.load(fh)
        out = args.out
        args = argparse.Namespace(**saved["args"])
        args.out = out
        wall, cpu = saved.get("wall", float("nan")), saved.get("cpu", float("nan"))
        print(write_table(args, summarize(args, saved["runs"]),
                          os.path.join(out, "results.md"), wall, cpu))
        print("plots:", *plots(args, saved["runs"], out))
        return 0
    bad = fp8sim.check_hand_cases()
    if bad:
        print(f"FAIL fp8sim hand cases: {bad}")
        return 1
    print(f"fp8sim: {len(fp8sim.HAND_CASES)} hand-computed E4M3 values agree")
    t0 = time.time()
    sft_paths = {s: os.path.join(args.out, f"sft_seed{s}.pt") for s in args.seeds}
    sft_runs = run_jobs([("sft", args, s, None, sft_paths[s]) for s in args.seeds], args.workers)
    for r in sft_runs:
        print(f"warm start seed {r['seed']}: {r['steps']} SFT steps, sampled exact match "
              f"{r['acc']:.3f} ({r['seconds']:.1f} s)")
    jobs = [("rl", args, s, arm, sft_paths[s]) for s in args.seeds for arm in args.arms]
    runs = run_jobs(jobs, args.workers)
    for path in sft_paths.values():
        os.remove(path)
    wall = time.time() - t0
    cpu = sum(r["cpu_seconds"] for r in sft_runs + runs)
    print(f"wall {wall:.0f} s, CPU {cpu:.0f} s in workers (= {cpu / 2:.0f} s on 2 idle cores)")
    rows = summarize(args, runs)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump(dict(args={k: v for k, v in vars(args).items()}, runs=runs, wall=wall, cpu=cpu),
                  fh)
    table = write_table(args, rows, os.path.join(args.out, "results.md"), wall, cpu)
    pngs = plots(args, runs, args.out)
    print(table)
    print("plots:", *pngs)
    # sanity of the outputs (the --quick test relies on these)
    ok = all(os.path.getsize(p) > 1000 for p in pngs)
    ok &= all(len(r["hist"]["reward"]) == args.steps for r in runs)
    ok &= all(np.isfinite(r["hist"]["alpha"]).all() and
              all(0.0 <= a <= 1.0 for a in r["hist"]["alpha"]) for r in runs)
    ref_D = [d for r in runs if r["arm"] == "ref" for d in r["hist"]["D"]]
    fp8_D = [d for r in runs if ARMS[r["arm"]]["fp8"] for d in r["hist"]["D"]]
    if ref_D:
        ok &= max(ref_D) < 1e-4  # FP32 rollouts = trainer policy up to fp32 rounding
    if fp8_D:
        ok &= min(fp8_D) > 0.0   # FP8 rollouts always differ
    if args.quick:  # the quick run must exercise the arms: some non-zero rewards
        n_nonzero = sum(x > 0 for r in runs for x in r["hist"]["reward"])
        print(f"quick: {n_nonzero} of {sum(len(r['hist']['reward']) for r in runs)} steps with "
              f"non-zero reward")
        ok &= n_nonzero > 0
    print("experiment outputs", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

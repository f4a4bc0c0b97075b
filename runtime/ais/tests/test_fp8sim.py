"""Tests of the experiment's FP8-E4M3 rounding (runtime/ais/experiments/fp8sim.py): hand-computed
values, every representable value maps to itself, every midpoint goes to the even neighbour,
the fast bit-trick routine equals the definition-based one, and the rounding error bound holds.
One line per case; exit status = number of failures."""

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments"))
import fp8sim  # noqa: E402

failures = 0


def report(ok, name, detail=""):
    global failures
    print(f"{'PASS' if ok else 'FAIL'} {name:44s} {detail}")
    failures += 0 if ok else 1


def e4m3_values():
    """All finite non-negative E4M3 values, from the bit layout (bias 7, 3 mantissa bits)."""
    vals = []
    for e in range(16):
        for m in range(8):
            if e == 15 and m == 7:
                continue  # S.1111.111 is NaN
            vals.append(m * 2.0 ** -9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
    return sorted(set(vals))


def main():
    bad = fp8sim.check_hand_cases()
    report(not bad, f"{len(fp8sim.HAND_CASES)} hand-computed values (both routines)",
           f"mismatches {bad}")
    vals = e4m3_values()
    report(len(vals) == 127 and vals[-1] == 448.0 and vals[1] == 2.0 ** -9,
           "E4M3 grid from bit layout", f"{len(vals)} values >= 0, max {vals[-1]}, "
           f"min subnormal {vals[1]}")
    t = torch.tensor(vals + [-v for v in vals], dtype=torch.float32)
    for fn in (fp8sim.round_e4m3, fp8sim.round_e4m3_reference):
        report(torch.equal(fn(t), t), f"{fn.__name__}: grid values are fixed points")
    # midpoints between neighbours: ties go to the neighbour with an even mantissa (code)
    lo, hi = torch.tensor(vals[:-1]), torch.tensor(vals[1:])
    mid = (lo + hi) / 2  # exact in float32
    codes = torch.arange(len(vals))
    even = torch.where(codes[:-1] % 2 == 0, lo, hi)
    for fn in (fp8sim.round_e4m3, fp8sim.round_e4m3_reference):
        got = fn(mid)
        report(torch.equal(got, even) and torch.equal(fn(-mid), -even),
               f"{fn.__name__}: {len(vals) - 1} midpoints tie to even",
               f"mismatches {(got != even).sum().item()}")
    # random values over the whole range and beyond: both routines agree; error <= q/2
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(200_000, generator=gen) * torch.exp2(torch.randint(-14, 12, (200_000,),
                                                                       generator=gen).float())
    a, b = fp8sim.round_e4m3(x), fp8sim.round_e4m3_reference(x)
    report(torch.equal(a, b), "fast == reference on 2e5 random values",
           f"differ at {(a != b).sum().item()}")
    inside = x.abs() <= 448
    e = torch.clamp(torch.floor(torch.log2(x.abs().clamp(min=1e-30))), min=-6)
    half_q = torch.exp2(e - 3) / 2
    err = (a - x).abs()
    worst = (err[inside] / half_q[inside]).max().item()
    report(worst <= 1.0 + 1e-6 and torch.all(a[~inside].abs() == 448),
           "|round(x) - x| <= q/2 in range, saturation",
           f"max err/(q/2) = {worst:.4f}; {int((~inside).sum())} values above 448 -> +-448")
    # scaled quantizers: per-tensor and per-row errors within amax/448 * 2^-4 relative grid
    w = torch.randn(64, 96, generator=gen)
    wq = fp8sim.quant_tensor(w)
    s = w.abs().max() / 448
    bound = torch.maximum(w.abs() * 2.0 ** -4, s * 2.0 ** -10)  # half quantum, normal/subnormal
    ratio = ((wq - w).abs() / bound).max().item()
    report(ratio <= 1.0, "per-tensor scaled quantization bound",
           f"max err / max(2^-4 |w|, 2^-10 s) = {ratio:.4f} <= 1")
    rows = torch.randn(8, 32, generator=gen) * torch.tensor([1e-3, 1, 10, 1e3, 1e-2, 5, 50, 0.1])[:, None]
    rq = fp8sim.quant_rows(rows)
    rel = ((rq - rows).abs() / rows.abs().amax(dim=1, keepdim=True)).max().item()
    report(rel <= 2.0 ** -4 and torch.equal(fp8sim.quant_rows(torch.zeros(2, 3)), torch.zeros(2, 3)),
           "per-row scaled quantization bound, zero rows", f"max err/row amax {rel:.4f} <= 2^-4")
    nan = fp8sim.round_e4m3(torch.tensor([float("nan")]))
    report(bool(torch.isnan(nan).all()), "NaN stays NaN")
    # FP4 E2M1 (estimator experiment): hand values (ties to even), every grid value exact,
    # midpoints to the even neighbour, block quantization error <= half quantum x scale
    xs = torch.tensor([x for x, _ in fp8sim.FP4_HAND_CASES])
    want = torch.tensor([y for _, y in fp8sim.FP4_HAND_CASES])
    got = fp8sim.round_fp4_e2m1(xs)
    report(torch.equal(got, want), "fp4 e2m1 hand values", f"{got.tolist()}")
    grid = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    mids = (grid[:-1] + grid[1:]) / 2
    even = torch.tensor([0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0])  # neighbour with even mantissa
    report(torch.equal(fp8sim.round_fp4_e2m1(grid), grid) and
           torch.equal(fp8sim.round_fp4_e2m1(mids), even) and
           torch.equal(fp8sim.round_fp4_e2m1(-mids), -even), "fp4 grid exact, midpoints to even")
    blk = torch.randn(4, 64, generator=gen) * 3
    bq = fp8sim.quant_blocks_fp4(blk)
    sc = blk.reshape(4, 2, 32).abs().amax(-1, keepdim=True) / 6
    err = ((bq - blk).reshape(4, 2, 32).abs() / sc).max().item()
    report(err <= 1.0 + 1e-6, "fp4 block quantization error <= 1 x scale (half of quantum 2)",
           f"max err / scale {err:.4f}")
    print("all passed" if failures == 0 else f"{failures} failed")
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())

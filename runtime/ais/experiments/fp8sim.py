"""FP8-E4M3 (OCP "FN" variant) simulation in PyTorch: round-to-nearest-even, saturating at 448.

E4M3: 1 sign, 4 exponent (bias 7), 3 mantissa bits; normal numbers 2^-6 .. 448 (= 1.75 * 2^8),
subnormals k * 2^-9 (k = 1..7), no infinities (the all-ones pattern is NaN). A value x is rounded
on the grid of its binade: quantum q = 2^(max(floor(log2|x|), -6) - 3), x -> q * rne(x / q); then
|x| > 448 saturates to 448 (what FP8 inference engines do on overflow). NaN stays NaN.

Scaled quantization (what an FP8 inference engine does with BF16/FP32 tensors): per-tensor for
weights, s = amax / 448, x_hat = s * e4m3(x / s); per-row (per token) dynamic for activations.
"""

import torch

E4M3_MAX = 448.0
E4M3_MIN_NORMAL_EXP = -6
E4M3_MANT_BITS = 3


def round_e4m3(x):
    """Rounds a float tensor to the nearest E4M3 value (ties to even), saturating at +-448.

    Normal range (|x| >= 2^-6): round the float32 bit pattern to 3 mantissa bits, ties to even
    (add 0x7FFFF plus the lowest kept bit, then clear the 20 dropped bits; a carry moves into
    the exponent, as it should). Subnormal range: round to a multiple of 2^-9 (torch.round is
    ties-to-even). NaN stays NaN, +-inf saturates like any value above 448."""
    x = x.float().contiguous()
    bits = x.view(torch.int32)
    lsb = (bits >> 20) & 1
    r = ((bits + (0x7FFFF + lsb)) & ~0xFFFFF).view(torch.float32)
    r = torch.where(x.abs() < 2.0 ** E4M3_MIN_NORMAL_EXP, torch.round(x * 512.0) / 512.0, r)
    return r.clamp(-E4M3_MAX, E4M3_MAX)


def round_e4m3_reference(x):
    """The same rounding written from the definition (slower): quantum q = 2^(e - 3) of the
    binade e = max(floor(log2|x|), -6), x -> q * rne(x / q), saturate at 448."""
    x = x.float()
    ax = x.abs()
    _, exp = torch.frexp(ax)  # ax = m * 2^exp, 0.5 <= m < 1 (exact, unlike log2)
    e = torch.clamp(exp.float() - 1.0, min=E4M3_MIN_NORMAL_EXP)
    q = torch.exp2(e - E4M3_MANT_BITS)
    r = torch.round(ax / q) * q  # torch.round rounds half to even; ax / q is exact (power of 2)
    r = torch.clamp(r, max=E4M3_MAX)
    return torch.copysign(r, x)


def quant_tensor(x):
    """Per-tensor scaled FP8 fake-quantization: s * e4m3(x / s), s = amax / 448."""
    amax = x.detach().abs().max()
    if not torch.isfinite(amax) or amax == 0:
        return x
    s = amax / E4M3_MAX
    return round_e4m3(x / s) * s


def quant_rows(x):
    """Per-row (last dimension) dynamic FP8 fake-quantization for activations."""
    amax = x.detach().abs().amax(dim=-1, keepdim=True)
    s = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    return round_e4m3(x / s) * s


FP4_MAX = 6.0  # E2M1: 0, 0.5, 1, 1.5, 2, 3, 4, 6


def round_fp4_e2m1(x):
    """Rounds to the nearest FP4 E2M1 value (ties to even), saturating at +-6. The quantum is
    0.5 below 2, 1 in [2, 4) and 2 from 4 on; an even multiple of the quantum is an even
    mantissa, so torch.round (ties to even) on x / quantum is the E2M1 rounding."""
    x = x.float()
    ax = x.abs()
    q = torch.where(ax < 2.0, torch.full_like(ax, 0.5),
                    torch.where(ax < 4.0, torch.ones_like(ax), torch.full_like(ax, 2.0)))
    r = torch.clamp(torch.round(ax / q) * q, max=FP4_MAX)
    return torch.copysign(r, x)


def quant_blocks_fp4(x, block=32):
    """FP4 fake-quantization with one float32 scale per block of `block` elements along the last
    dimension (scale = block amax / 6; NVFP4-like, with a float32 instead of an E4M3 scale)."""
    shape = x.shape
    xb = x.reshape(*shape[:-1], shape[-1] // block, block)
    amax = xb.detach().abs().amax(dim=-1, keepdim=True)
    s = torch.where(amax > 0, amax / FP4_MAX, torch.ones_like(amax))
    return (round_fp4_e2m1(xb / s) * s).reshape(shape)


FP4_HAND_CASES = [(0.0, 0.0), (0.2, 0.0), (0.25, 0.0), (0.26, 0.5), (0.75, 1.0), (1.25, 1.0),
                  (1.75, 2.0), (2.5, 2.0), (2.6, 3.0), (3.5, 4.0), (5.0, 4.0), (5.1, 6.0),
                  (7.0, 6.0), (-1.6, -1.5), (-100.0, -6.0)]


# Hand-computed E4M3 values (input, expected): used by tests/test_fp8sim.py and --quick.
HAND_CASES = [
    (0.0, 0.0),
    (1.0, 1.0),
    (1.0625, 1.0),         # halfway between 1 (mantissa 000) and 1.125 (001): ties to even
    (1.1875, 1.25),        # halfway between 1.125 (001) and 1.25 (010): ties to even
    (1.2, 1.25),           # 1.2 / 0.125 = 9.6 -> 10
    (0.3, 0.3125),         # binade 2^-2, q = 2^-5: 9.6 -> 10 -> 0.3125
    (17.0, 16.0),          # binade 2^4, q = 2: 8.5 -> 8 (even)
    (19.0, 20.0),          # 9.5 -> 10 (even)
    (239.0, 240.0),        # binade 2^7, q = 16: 14.94 -> 15 -> 240
    (448.0, 448.0),        # largest finite
    (500.0, 448.0),        # saturates
    (1e6, 448.0),
    (-500.0, -448.0),
    (-3.3, -3.25),         # binade 2^1, q = 0.25: 13.2 -> 13
    (2.0 ** -6, 2.0 ** -6),    # smallest normal
    (2.0 ** -9, 2.0 ** -9),    # smallest subnormal
    (2.0 ** -10, 0.0),         # halfway between 0 and 2^-9: ties to even (0)
    (3 * 2.0 ** -10, 2.0 ** -8),  # halfway between 2^-9 and 2^-8: to even (2^-8 = 2 * 2^-9)
    (0.0137, 0.013671875),  # subnormal range: 0.0137 / 2^-9 = 7.01 -> 7 * 2^-9
]


def check_hand_cases():
    """Returns a list of (function, input, expected, got) mismatches (empty if all agree)."""
    xs = torch.tensor([c[0] for c in HAND_CASES], dtype=torch.float32)
    bad = []
    for fn in (round_e4m3, round_e4m3_reference):
        for (x, want), g in zip(HAND_CASES, fn(xs).tolist()):
            if g != want:
                bad.append((fn.__name__, x, want, g))
    return bad

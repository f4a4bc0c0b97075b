"""kforge_ais.torch: rollout correction in plain torch, with verl's signature and metric names.

    from kforge_ais.torch import compute_rollout_correction_and_rejection_mask as rollout_corr
    w, mask, metrics = rollout_corr(old_log_prob, rollout_log_prob, response_mask,
                                    rollout_is="token", rollout_is_threshold=2.0)
    pg_losses = pg_losses * w                 # then aggregate over `mask` as usual

Definitions (the same as the C library, runtime/ais/kf_ais.h):
- log_ratio = old_log_prob - rollout_log_prob, rho = pi_old / pi_rollout = exp(log_ratio);
  every exp() is of a log-ratio clamped to [-20, 20] (verl's SAFETY_BOUND) and uses `kf_exp`,
  the same IEEE operation sequence as kf_ais_exp in C, so that float64 weights on the CPU equal
  the C library's bit for bit.
- rollout_is (IS weight level): None, "token" (rho_t), "sequence" (exp(sum_t log_ratio)),
  "geometric" (exp(mean_t log_ratio), length-normalised) or "ais" (the AIS mix
  (1 - alpha) + alpha * w, alpha from per-batch diagnostics, see AisConfig).
- rollout_is_threshold: the truncation cap C (float), or "lo_hi" / (lo, hi) for a two-sided
  clamp w = clamp(ratio, lo, hi) (OpenRLHF-style). Bounds act on rho = pi_old / pi_rollout.
- rollout_is_mask_threshold: IcePop / TRL `*_mask` masking, "lo_hi" or (lo, hi) on the ratio of
  the IS level: a token (or sequence) outside the band gets weight 0 but stays in the returned
  response mask, i.e. in the loss denominator.
- rollout_rs: rejection criteria, one or several joined by commas (all must pass): token_k1,
  token_k2, token_k3, seq_sum_k1, seq_sum_k2, seq_sum_k3, seq_mean_k1, seq_mean_k2, seq_mean_k3,
  seq_max_k2, seq_max_k3, with k1 = -log_ratio = log(pi_rollout / pi_old), k2 = log_ratio^2 / 2,
  k3 = rho - 1 - log_ratio. rollout_rs_threshold gives one threshold per criterion (comma-joined
  string or a sequence): k1 criteria take "lo_hi" bounds on exp(k1) = pi_rollout / pi_old
  (compared in log space; a single number u means "1/u_u"), the others an upper bound. A
  rejected token or sequence is removed from the returned response mask (out of the loss and its
  denominator); its weight is 0.
- rollout_token_veto_threshold: a sequence with any token rho_t < threshold is rejected whole.
- rollout_is_batch_normalize: weights divided by their mean over the kept tokens (token level)
  or kept sequences (sequence levels).

Nothing in the weight path reads a tensor on the host: metrics are 0-d tensors on the input's
device (`metrics_to_floats` converts them with one transfer). Input checks (mask values 0/1,
log-probs <= logprob_tol, finite) need one host read and run first; pass check_inputs=False
to skip them in a loop that has validated its data.
"""

import math
from dataclasses import dataclass

import torch

SAFETY_BOUND = 20.0
LOGPROB_TOL = 1e-3
MAX_ABS_LOGPROB = 1e6

__all__ = ["compute_rollout_correction_and_rejection_mask", "AisConfig", "AisState",
           "kf_exp", "metrics_to_floats", "trl_importance_weights", "RS_CRITERIA"]

# ---------------------------------------------------------------------------------------------
# kf_exp: the operation sequence of kf_ais_exp (kf_ais.c). Cody-Waite reduction by ln 2, Taylor
# polynomial of degree 13 in Horner form, scaling by 2^n built from its bits. Each step is one
# correctly rounded IEEE operation in float64, so CPU results equal the C library's.

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_INV_FACT = [1.0 / float(math.factorial(k)) for k in range(14)]


def kf_exp(x):
    """exp of a float64 tensor by kf_ais_exp's operations (error < 2 ulp, |x| <= 300)."""
    if x.dtype != torch.float64:
        raise TypeError(f"kf_exp: expected float64, got {x.dtype}")
    x = x.clamp(-300.0, 300.0)
    n = torch.round(x * _INV_LN2)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = torch.full_like(r, _INV_FACT[13])
    for k in range(12, -1, -1):
        p = p * r + _INV_FACT[k]
    scale = ((n.to(torch.int64) + 1023) << 52).view(torch.float64)
    return p * scale


# ---------------------------------------------------------------------------------------------
# AIS

_LEVELS = {"token": "token", "sequence": "seq", "seq": "seq", "geometric": "geo", "geo": "geo"}


@dataclass
class AisConfig:
    """AIS gate (kf_ais.h): alpha = clip(a_D a_R a_V, alpha_min, alpha_max), optional EMA.

    level: "token" | "sequence" | "geometric" — the ratio that is mixed in and on which R (ESS
    of the applied, truncated weights) and V (CV of the raw ratios) are measured.
    divergence: "mean_abs" (mean |log_ratio|) or "k3"; dscale "nll" divides D by D + mean NLL
    of pi_old (so tau_d is relative to the batch's own statistics), "abs" leaves it.
    """
    level: str = "token"
    divergence: str = "mean_abs"
    dscale: str = "nll"
    tau_d: float = 0.1
    gamma_r: float = 1.0
    tau_v: float = 1.0
    alpha_min: float = 0.0
    alpha_max: float = 1.0
    ema: float = 0.0

    def check(self):
        if self.level not in _LEVELS:
            raise ValueError(f"AisConfig: level={self.level!r}; expected token, sequence or "
                             f"geometric")
        if self.divergence not in ("mean_abs", "k3"):
            raise ValueError(f"AisConfig: divergence={self.divergence!r}; expected mean_abs or k3")
        if self.dscale not in ("nll", "abs"):
            raise ValueError(f"AisConfig: dscale={self.dscale!r}; expected nll or abs")
        for name, ok in (("tau_d", self.tau_d > 0 and math.isfinite(self.tau_d)),
                         ("gamma_r", self.gamma_r >= 0 and math.isfinite(self.gamma_r)),
                         ("tau_v", self.tau_v > 0 and math.isfinite(self.tau_v)),
                         ("alpha_min/alpha_max",
                          0.0 <= self.alpha_min <= self.alpha_max <= 1.0),
                         ("ema", 0.0 <= self.ema < 1.0)):
            if not ok:
                raise ValueError(f"AisConfig: bad {name} in {self}")


class AisState:
    """alpha of the previous batch (a 0-d tensor) for the EMA; pass the same object each step."""

    def __init__(self):
        self.alpha = None


# ---------------------------------------------------------------------------------------------
# Threshold parsing

RS_CRITERIA = ("token_k1", "token_k2", "token_k3", "seq_sum_k1", "seq_sum_k2", "seq_sum_k3",
               "seq_mean_k1", "seq_mean_k2", "seq_mean_k3", "seq_max_k2", "seq_max_k3")


def _positive(x, what):
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {x!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{what}: {x!r} must be a finite number > 0")
    return v


def parse_bounds(spec, what, one_sided_ok=True):
    """(lo, hi) from "lo_hi", (lo, hi) or a single number u (-> (None, u) if one_sided_ok, else
    (1/u, u)). lo may be 0 in "0_hi"."""
    if isinstance(spec, str) and "_" in spec:
        parts = spec.split("_")
        if len(parts) != 2:
            raise ValueError(f"{what}: {spec!r} must be 'lo_hi' (two numbers joined by '_')")
        lo = float(parts[0]) if parts[0].strip() not in ("", "0", "0.0") else 0.0
        if lo != 0.0:
            lo = _positive(parts[0], what)
        hi = _positive(parts[1], what)
    elif isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError(f"{what}: {spec!r} must be (lo, hi)")
        lo = 0.0 if float(spec[0]) == 0.0 else _positive(spec[0], what)
        hi = _positive(spec[1], what)
    else:
        hi = _positive(spec, what)
        if one_sided_ok:
            return None, hi
        lo = 1.0 / hi
    if not lo < hi:
        raise ValueError(f"{what}: {spec!r} needs lower < upper")
    return lo, hi


def _split_list(spec):
    if spec is None:
        return []
    if isinstance(spec, str):
        return [s.strip() for s in spec.split(",") if s.strip()]
    if isinstance(spec, (list, tuple)) and not (len(spec) == 2 and
                                                 all(isinstance(v, (int, float)) for v in spec)):
        return list(spec)
    return [spec]


def parse_rs(rollout_rs, rollout_rs_threshold):
    """[(criterion, lo_log, hi_log)] with bounds in log space; k2/k3 have lo_log None."""
    names = _split_list(rollout_rs)
    for n in names:
        if n not in RS_CRITERIA:
            raise ValueError(f"rollout_rs: unknown criterion {n!r}; expected one of "
                             f"{', '.join(RS_CRITERIA)} (comma-joined)")
    if len(set(names)) != len(names):
        raise ValueError(f"rollout_rs: {rollout_rs!r} names a criterion twice")
    if rollout_rs_threshold is None:
        raise ValueError("rollout_rs_threshold must be given when rollout_rs is set")
    ths = _split_list(rollout_rs_threshold)
    if len(ths) != len(names):
        raise ValueError(f"rollout_rs_threshold {rollout_rs_threshold!r} gives {len(ths)} "
                         f"threshold(s) for {len(names)} criteria {names}")
    out = []
    for n, th in zip(names, ths):
        what = f"rollout_rs_threshold for {n}"
        if n.endswith("k1"):
            lo, hi = parse_bounds(th, what, one_sided_ok=False)
            out.append((n, math.log(lo) if lo > 0 else -math.inf, math.log(hi)))
        else:
            if isinstance(th, str) and "_" in th:
                raise ValueError(f"{what}: {th!r}; k2/k3 criteria take one upper bound")
            out.append((n, None, _positive(th, what)))
    return out


# ---------------------------------------------------------------------------------------------
# Helpers (no host reads)

def _masked_mean(x, m, n):
    """Mean of x over the mask, accumulated in float64 (a 0-d float64 tensor). A float mask
    multiplies (x must then be finite everywhere); a bool mask selects."""
    if m.dtype == torch.bool:
        return torch.where(m, x, torch.zeros_like(x)).sum(dtype=torch.float64) / n
    return (x * m).sum(dtype=torch.float64) / n


def _seq_sum(x, m):
    """Per-row sum of x over the mask, in token order (cumsum: sequential on the CPU, so it
    equals the C library's sum of the same valid tokens)."""
    return torch.where(m, x, torch.zeros_like(x)).cumsum(dim=-1)[..., -1]


def _cv_ess(u, units_mask, n_units):
    """Population CV and normalized ESS = 1 / (1 + CV^2) of u over the units in units_mask."""
    x = (torch.where(units_mask, u - 1.0, torch.zeros_like(u)) if units_mask.dtype == torch.bool
         else (u - 1.0) * units_mask)
    mean_x = x.sum(dtype=torch.float64) / n_units
    var = (x * x).sum(dtype=torch.float64) / n_units - mean_x * mean_x
    cv = var.clamp_min(0.0).sqrt() / (1.0 + mean_x)
    return cv, 1.0 / (1.0 + cv * cv)


def check_inputs_or_raise(old_log_prob, rollout_log_prob, response_mask, logprob_tol):
    """The input contract (one host read): shapes, mask 0/1, finite log-probs <= logprob_tol."""
    for name, t in (("old_log_prob", old_log_prob), ("rollout_log_prob", rollout_log_prob)):
        if not torch.is_floating_point(t):
            raise TypeError(f"kforge_ais.torch: {name} has dtype {t.dtype}; expected floating")
    if response_mask.dtype != torch.bool:
        m = response_mask
        bad = ~((m == 0) | (m == 1))
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(f"kforge_ais.torch: response_mask{list(idx)} = "
                             f"{m[idx].item()!r}; mask values must be 0 or 1 (or bool)")
    valid = response_mask.bool()
    if not bool(valid.any()):
        raise ValueError("kforge_ais.torch: response_mask has no valid token")
    for name, t in (("old_log_prob", old_log_prob), ("rollout_log_prob", rollout_log_prob)):
        td = t.detach()
        bad = valid & ~((td >= -MAX_ABS_LOGPROB) & (td <= logprob_tol))
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            v = td[idx].item()
            why = ("a positive log-prob beyond the tolerance logprob_tol="
                   f"{logprob_tol:g} (logits or probabilities passed as log-probs?)"
                   if v > logprob_tol else f"not a finite log-prob >= -{MAX_ABS_LOGPROB:g}")
            raise ValueError(f"kforge_ais.torch: {name}{list(idx)} = {v!r} is {why}")


def metrics_to_floats(metrics):
    """{name: float} from the 0-d tensors (one device-to-host transfer)."""
    keys = list(metrics)
    vals = torch.stack([metrics[k].detach().double().reshape(()) for k in keys]).cpu().tolist()
    return dict(zip(keys, vals))


# ---------------------------------------------------------------------------------------------

def compute_rollout_correction_and_rejection_mask(
        old_log_prob, rollout_log_prob, response_mask, rollout_is=None,
        rollout_is_threshold=2.0, rollout_rs=None, rollout_rs_threshold=None,
        rollout_token_veto_threshold=None, rollout_is_batch_normalize=False,
        rollout_is_mask_threshold=None, ais_config=None, ais_state=None, check_inputs=True,
        logprob_tol=LOGPROB_TOL, compute_dtype=None):
    """verl's rollout correction (see the module docstring). Inputs [batch, time] tensors.

    Returns (weights, modified_response_mask, metrics): weights in old_log_prob's dtype and
    device, detached, 0 on padding and rejected tokens (None if rollout_is is None and no
    mask threshold is given, as in verl); modified_response_mask with response_mask's dtype;
    metrics {"rollout_corr/...": 0-d tensor}.

    compute_dtype: the dtype of the per-token work; default float64 for float64 input, float32
    otherwise (bf16/f16 are widened). Per-sequence log-ratio sums and every batch statistic are
    accumulated in float64 whatever the compute dtype.
    """
    if old_log_prob.shape != rollout_log_prob.shape:
        raise ValueError(f"kforge_ais.torch: old_log_prob shape {tuple(old_log_prob.shape)} "
                         f"!= rollout_log_prob shape {tuple(rollout_log_prob.shape)}")
    if response_mask.shape != old_log_prob.shape:
        raise ValueError(f"kforge_ais.torch: response_mask shape {tuple(response_mask.shape)} "
                         f"!= log-prob shape {tuple(old_log_prob.shape)}")
    if old_log_prob.dim() != 2:
        raise ValueError(f"kforge_ais.torch: expected [batch, time] tensors, got "
                         f"{old_log_prob.dim()}-D")
    if old_log_prob.device != rollout_log_prob.device or \
            old_log_prob.device != response_mask.device:
        raise ValueError("kforge_ais.torch: inputs are on different devices")
    if rollout_is is not None and rollout_is not in ("token", "sequence", "geometric", "ais"):
        raise ValueError(f"rollout_is={rollout_is!r}; expected None, token, sequence, geometric "
                         f"or ais")
    cap_lo, cap_hi = parse_bounds(rollout_is_threshold, "rollout_is_threshold")
    if cap_lo is None:
        cap_lo = 0.0
    if cap_hi > math.exp(SAFETY_BOUND):
        raise ValueError(f"rollout_is_threshold: cap {cap_hi:g} exceeds exp({SAFETY_BOUND:g})")
    mask_band = None
    if rollout_is_mask_threshold is not None:
        lo, hi = parse_bounds(rollout_is_mask_threshold, "rollout_is_mask_threshold",
                              one_sided_ok=True)
        mask_band = (-math.inf if not lo else math.log(lo), math.log(hi))
    rs = parse_rs(rollout_rs, rollout_rs_threshold) if rollout_rs is not None else []
    veto_log = None
    if rollout_token_veto_threshold is not None:
        veto_log = math.log(_positive(rollout_token_veto_threshold,
                                      "rollout_token_veto_threshold"))
    ais_cfg = ais_config or AisConfig()
    ais_cfg.check()
    if check_inputs:
        check_inputs_or_raise(old_log_prob, rollout_log_prob, response_mask, logprob_tol)

    out_dtype = old_log_prob.dtype
    cd = compute_dtype or (torch.float64 if old_log_prob.dtype == torch.float64
                           else torch.float32)
    valid = response_mask.bool()
    zero = torch.zeros((), dtype=cd, device=old_log_prob.device)
    # padding may hold anything (NaN, -inf): zero it once, so everything derived is finite and
    # masked sums can multiply by the float mask mf
    lp_old = torch.where(valid, old_log_prob.detach().to(cd), zero)
    lp_roll = torch.where(valid, rollout_log_prob.detach().to(cd), zero)
    mf = valid.to(cd)
    f64 = torch.float64
    n_tok = valid.sum().to(f64)
    n_per_seq = valid.sum(dim=-1)
    seq_valid = n_per_seq > 0
    n_seq = seq_valid.sum().to(f64)
    n_per_seq_f = n_per_seq.to(f64).clamp_min(1.0)

    log_ratio = lp_old - lp_roll
    lr_c = log_ratio.clamp(-SAFETY_BOUND, SAFETY_BOUND)
    exp = kf_exp if cd == torch.float64 else torch.exp
    rho = exp(lr_c)
    # per-sequence values in float64 (one weight per row, cheap), in token order
    s_sum = _seq_sum(log_ratio.to(f64), valid)         # S_i
    s_mean = s_sum / n_per_seq_f                       # S_i / n_i
    w_seq = kf_exp(s_sum.clamp(-SAFETY_BOUND, SAFETY_BOUND)).to(cd)
    w_geo = kf_exp(s_mean.clamp(-SAFETY_BOUND, SAFETY_BOUND)).to(cd)
    metrics = {}
    P = "rollout_corr/"

    # ---- IS weights ----
    level = {"token": "token", "sequence": "seq", "geometric": "geo", "ais": None}.get(rollout_is)
    if rollout_is == "ais":
        level = _LEVELS[ais_cfg.level]
    if level == "seq":
        raw = w_seq[:, None].expand_as(rho)
        raw_log = s_sum.to(cd)[:, None].expand_as(rho)
    elif level == "geo":
        raw = w_geo[:, None].expand_as(rho)
        raw_log = s_mean.to(cd)[:, None].expand_as(rho)
    else:
        raw, raw_log = rho, log_ratio
    applied = raw.clamp(cap_lo, cap_hi) if cap_lo > 0 else raw.clamp(max=cap_hi)
    weights = applied
    if rollout_is == "ais":
        alpha = _ais_alpha(ais_cfg, ais_state, level, lp_old, log_ratio, lr_c, rho, raw, applied,
                           mf, seq_valid, n_tok, n_seq, metrics, P)
        weights = (1.0 - alpha) + alpha * applied
    elif rollout_is is None:
        weights = torch.ones_like(rho)

    # IcePop / TRL *_mask: weight 0 outside the band, token stays in the denominator
    if mask_band is not None:
        in_band = (raw_log >= mask_band[0]) & (raw_log <= mask_band[1])
        weights = torch.where(in_band, weights, zero)
        metrics[P + "rollout_is_masked_fraction"] = _masked_mean((~in_band).to(cd), mf, n_tok)

    # ---- rejection (chained) and veto ----
    keep = valid.clone()
    k_tok = {"k1": -log_ratio, "k2": 0.5 * log_ratio * log_ratio,
             "k3": rho - 1.0 - lr_c}
    for name, lo_log, hi in rs:
        kind = name[-2:]
        kt = k_tok[kind]
        if name.startswith("token_"):
            v, is_seq = kt, False
        elif name == "seq_sum_k1":
            v, is_seq = -s_sum, True
        elif name == "seq_mean_k1":
            v, is_seq = -s_mean, True
        elif name.startswith("seq_sum_"):
            v, is_seq = _seq_sum(kt.to(f64), valid), True
        elif name.startswith("seq_mean_"):
            v, is_seq = _seq_sum(kt.to(f64), valid) / n_per_seq_f, True
        else:  # seq_max
            v = torch.where(valid, kt, torch.full_like(kt, -math.inf)).amax(dim=-1)
            is_seq = True
        if lo_log is not None:
            ok = (v >= lo_log) & (v <= hi)
        else:
            ok = v <= hi
        if is_seq:
            ok = ok[:, None].expand_as(valid)
        keep = keep & ok
        metrics[P + f"rollout_rs_{name}_masked_fraction"] = _masked_mean((~ok).to(cd), valid,
                                                                         n_tok)
    if veto_log is not None:
        catastrophic = valid & (log_ratio < veto_log)
        vetoed = catastrophic.any(dim=-1)
        keep = keep & ~vetoed[:, None]
        metrics[P + "rollout_is_veto_fraction"] = vetoed.to(f64).sum() / n_per_seq.numel()
        metrics[P + "rollout_is_catastrophic_token_fraction"] = _masked_mean(
            catastrophic.to(cd), valid, n_tok)
    rejected = valid & ~keep
    if rs or veto_log is not None:
        metrics[P + "rollout_rs_masked_fraction"] = _masked_mean(rejected.to(cd), valid, n_tok)
        metrics[P + "rollout_rs_seq_masked_fraction"] = (rejected.any(dim=-1).to(f64).sum() /
                                                         n_per_seq.numel())

    # ---- batch normalisation over the kept tokens / sequences ----
    weights = torch.where(keep, weights, zero)
    if rollout_is_batch_normalize and rollout_is is not None:
        n_keep = keep.sum().to(f64)
        if level == "token" or level is None:
            mean_w = weights.sum(dtype=f64) / n_keep.clamp_min(1.0)
        else:
            seq_keep = keep.any(dim=-1)
            per_seq = weights.amax(dim=-1)  # one weight per sequence (broadcast)
            mean_w = torch.where(seq_keep, per_seq, zero).sum(dtype=f64) / \
                seq_keep.sum().to(f64).clamp_min(1.0)
        ok = mean_w > 1e-8
        weights = torch.where(ok, weights / torch.where(ok, mean_w, torch.ones_like(mean_w)),
                              weights)
        metrics[P + "rollout_is_batch_norm_factor"] = torch.where(ok, mean_w,
                                                                  torch.ones_like(mean_w))

    # ---- IS metrics (verl's definitions) ----
    if rollout_is is not None:
        _is_metrics(metrics, P, level, raw, raw_log, applied, weights, valid, mf, seq_valid,
                    n_tok, n_seq, cap_hi, cd)
    _offpolicy_metrics(metrics, P, lp_old, lp_roll, log_ratio, lr_c, rho, s_sum, mf,
                       seq_valid, n_tok, n_seq, n_per_seq_f, exp)

    mask_out = keep.to(response_mask.dtype)
    if rollout_is is None and mask_band is None:
        return None, mask_out, metrics
    return weights.to(out_dtype), mask_out, metrics


def _ais_alpha(cfg, state, level, lp_old, log_ratio, lr_c, rho, raw, applied, mf, seq_valid,
               n_tok, n_seq, metrics, P):
    """alpha of kf_ais_finish, as a 0-d tensor (no host read)."""
    zero = torch.zeros_like(n_tok)
    if level == "token":
        units, n_units, u, a = mf, n_tok, raw, applied
    else:  # one unit per sequence (column 0 carries the broadcast value)
        units, n_units, u, a = seq_valid, n_seq, raw[:, 0], applied[:, 0]
    n_units = torch.where(n_units > 0, n_units, torch.ones_like(n_units))
    n_tok1 = torch.where(n_tok > 0, n_tok, torch.ones_like(n_tok))
    _, ess_app = _cv_ess(a, units, n_units)
    cv_raw, _ = _cv_ess(u, units, n_units)
    if cfg.divergence == "k3":
        d_abs = _masked_mean(torch.expm1(lr_c) - lr_c, mf, n_tok1)
    else:
        d_abs = _masked_mean(log_ratio.abs(), mf, n_tok1)
    nll = _masked_mean(-lp_old, mf, n_tok1)
    if cfg.dscale == "nll":
        den = d_abs + nll.clamp_min(0.0)
        D = torch.where(den > 0, d_abs / torch.where(den > 0, den, torch.ones_like(den)), zero)
    else:
        D = d_abs
    a_d = -torch.expm1(-D / cfg.tau_d)
    a_r = ess_app ** cfg.gamma_r
    a_v = 1.0 / (1.0 + cv_raw / cfg.tau_v)
    alpha_raw = (a_d * a_r * a_v).clamp(cfg.alpha_min, cfg.alpha_max)
    alpha = alpha_raw
    if state is not None:
        if state.alpha is not None and cfg.ema > 0:
            alpha = cfg.ema * state.alpha.to(alpha_raw) + (1.0 - cfg.ema) * alpha_raw
        state.alpha = alpha.detach()
    metrics.update({P + "ais_alpha": alpha, P + "ais_alpha_raw": alpha_raw,
                    P + "ais_reliability": ess_app, P + "ais_divergence": D,
                    P + "ais_variance_amp": cv_raw, P + "ais_a_d": a_d, P + "ais_a_r": a_r,
                    P + "ais_a_v": a_v, P + "ais_mean_nll": nll})
    return alpha


def _is_metrics(metrics, P, level, raw, raw_log, applied, weights, valid, mf, seq_valid, n_tok,
                n_seq, cap, cd):
    """verl's rollout_is_* metrics: raw-ratio max/min and fractions beyond [1/C, C] (log space),
    truncated mean/std, ESS of the weights clamped to [1/C, C] and mean-normalised."""
    lo = 1.0 / cap
    inf = torch.full_like(raw_log, math.inf)
    if level == "token" or level is None:
        units, n_u, rl, ap = mf, n_tok, raw_log, applied
    else:
        units, n_u, rl, ap = seq_valid, n_seq, raw_log[:, 0], applied[:, 0]
        inf = inf[:, 0]
    n_u = n_u.clamp_min(1.0)
    sel = units.bool() if units.dtype != torch.bool else units
    metrics[P + "rollout_is_max"] = torch.exp(torch.where(sel, rl, -inf).amax().clamp(
        max=SAFETY_BOUND))
    metrics[P + "rollout_is_min"] = torch.exp(torch.where(sel, rl, inf).amin().clamp(
        min=-SAFETY_BOUND))
    metrics[P + "rollout_is_ratio_fraction_high"] = _masked_mean((rl > math.log(cap)).to(cd),
                                                                 units, n_u)
    metrics[P + "rollout_is_ratio_fraction_low"] = _masked_mean((rl < math.log(lo)).to(cd),
                                                                units, n_u)
    metrics[P + "rollout_is_mean"] = _masked_mean(ap, units, n_u)
    wc = ap.clamp(lo, cap)
    mean_c = _masked_mean(wc, units, n_u)
    var = _masked_mean(wc * wc, units, n_u) - mean_c * mean_c
    metrics[P + "rollout_is_std"] = var.clamp_min(0.0).sqrt()
    norm = wc / (mean_c + 1e-8)
    metrics[P + "rollout_is_eff_sample_size"] = 1.0 / _masked_mean(norm * norm, units, n_u)
    metrics[P + "rollout_is_weights_mean"] = weights.sum(dtype=torch.float64) / n_tok.clamp_min(1.0)


def _offpolicy_metrics(metrics, P, lp_old, lp_roll, log_ratio, lr_c, rho, s_sum, mf,
                       seq_valid, n_tok, n_seq, n_per_seq_f, exp):
    """verl's compute_offpolicy_metrics (kl = E[log pi_roll - log pi_old], k3_kl, PPLs,
    chi2_token = E[rho^2] - 1, chi2_seq = E[W^2] - 1), over valid tokens / sequences."""
    n1 = n_tok.clamp_min(1.0)
    ns = n_seq.clamp_min(1.0)
    mean_old = lp_old.sum(-1, dtype=torch.float64) / n_per_seq_f    # padding is 0
    mean_roll = lp_roll.sum(-1, dtype=torch.float64) / n_per_seq_f
    sv = seq_valid.to(lp_old.dtype)
    metrics[P + "training_ppl"] = (torch.exp(-mean_old) * sv).sum() / ns
    metrics[P + "training_log_ppl"] = (-mean_old * sv).sum() / ns
    metrics[P + "kl"] = -log_ratio.sum(dtype=torch.float64) / n1        # 0 on padding
    metrics[P + "k3_kl"] = (torch.expm1(lr_c) - lr_c).sum(dtype=torch.float64) / n1
    metrics[P + "rollout_ppl"] = (torch.exp(-mean_roll) * sv).sum() / ns
    metrics[P + "rollout_log_ppl"] = (-mean_roll * sv).sum() / ns
    diff = mean_roll - mean_old
    metrics[P + "log_ppl_diff"] = (diff * sv).sum() / ns
    metrics[P + "log_ppl_abs_diff"] = (diff.abs() * sv).sum() / ns
    metrics[P + "log_ppl_diff_max"] = torch.where(seq_valid, diff,
                                                  torch.full_like(diff, -math.inf)).amax()
    metrics[P + "log_ppl_diff_min"] = torch.where(seq_valid, diff,
                                                  torch.full_like(diff, math.inf)).amin()
    metrics[P + "ppl_ratio"] = (torch.exp(diff) * sv).sum() / ns
    metrics[P + "chi2_token"] = _masked_mean(rho * rho, mf, n1) - 1.0
    w2 = exp(2.0 * s_sum.clamp(-SAFETY_BOUND, SAFETY_BOUND))
    metrics[P + "chi2_seq"] = (w2 * sv).sum() / ns - 1.0


# ---------------------------------------------------------------------------------------------
# TRL adapter

_TRL_MODES = {"token_truncate": ("token", False), "token_mask": ("token", True),
              "sequence_truncate": ("sequence", False), "sequence_mask": ("sequence", True)}


def trl_importance_weights(per_token_logps, sampling_per_token_logps, completion_mask,
                           mode="sequence_mask", cap=3.0, check_inputs=True):
    """TRL GRPOTrainer's vLLM importance-sampling hook, tensor in / tensor out.

    per_token_logps = the trainer's log pi_old, sampling_per_token_logps = the sampler's (TRL's
    names). Returns (weights, metrics) with weights shaped like per_token_logps (sequence modes:
    the per-sequence weight broadcast over its tokens):
    - *_truncate: min(ratio, cap)
    - *_mask: ratio where ratio <= cap, else 0; the token stays in completion_mask, so it still
      counts in the loss denominator (TRL's semantics).
    metrics: "sampling/importance_sampling_ratio/{min,mean,max}" of the raw ratios at the mode's
    level, plus the rollout_corr/... metrics.
    """
    if mode not in _TRL_MODES:
        raise ValueError(f"trl_importance_weights: mode={mode!r}; expected one of "
                         f"{', '.join(_TRL_MODES)}")
    level, masking = _TRL_MODES[mode]
    cap = _positive(cap, "trl_importance_weights: cap")
    if masking:
        w, _, m = compute_rollout_correction_and_rejection_mask(
            per_token_logps, sampling_per_token_logps, completion_mask, rollout_is=level,
            rollout_is_threshold=math.exp(SAFETY_BOUND), rollout_is_mask_threshold=cap,
            check_inputs=check_inputs)
    else:
        w, _, m = compute_rollout_correction_and_rejection_mask(
            per_token_logps, sampling_per_token_logps, completion_mask, rollout_is=level,
            rollout_is_threshold=cap, check_inputs=check_inputs)
    m["sampling/importance_sampling_ratio/min"] = m["rollout_corr/rollout_is_min"]
    m["sampling/importance_sampling_ratio/max"] = m["rollout_corr/rollout_is_max"]
    valid = completion_mask.bool()
    lr = (per_token_logps.detach() - sampling_per_token_logps.detach()).double()
    if level == "token":
        raw = torch.exp(lr.clamp(-SAFETY_BOUND, SAFETY_BOUND))
        mean = torch.where(valid, raw, torch.zeros_like(raw)).sum() / valid.sum().clamp_min(1)
    else:
        s = torch.where(valid, lr, torch.zeros_like(lr)).sum(-1)
        sv = valid.any(-1)
        raw = torch.exp(s.clamp(-SAFETY_BOUND, SAFETY_BOUND))
        mean = torch.where(sv, raw, torch.zeros_like(raw)).sum() / sv.sum().clamp_min(1)
    m["sampling/importance_sampling_ratio/mean"] = mean
    return w, m

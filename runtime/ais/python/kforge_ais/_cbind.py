"""kforge_ais._cbind: ctypes binding of the C reference library (kf_ais.h).

A ctypes binding of libkforge_ais (runtime/ais/kf_ais.h), the reference implementation, for
numpy users. Arguments come in verl's order: old_log_prob (the trainer's recomputed log pi_old),
then rollout_log_prob (the sampler's), then response_mask. Torch users on GPU or in a training
loop want kforge_ais.torch (torch-native, no host sync, verl's signature and metric names).

    import kforge_ais as ais
    cfg = ais.Config(mode="ais", cap=2.0)
    w, keep, diag = ais.compute(old_log_prob, rollout_log_prob, response_mask, config=cfg)
    loss = -(w * keep * adv[:, None] * logp).sum() / keep.sum()

Data parallel (statistics are exact integers, so all-reducing them is bit-exact):

    part = ais.accumulate(old_log_prob, rollout_log_prob, mask, config=cfg)  # this rank's share
    dist.all_reduce(torch.from_numpy(part.isum), op=SUM)             # int64
    dist.all_reduce(torch.from_numpy(part.dmax), op=MAX)             # float64
    diag = ais.finish(part, cfg, state)
    w, keep = ais.weights(old_log_prob, rollout_log_prob, mask, diag=diag, config=cfg)

Input contract: response_mask is bool or holds only 0 and 1 (NaN, -1, 2 are errors); log-probs
are finite and <= logprob_tol (default 1e-3); 2-D [batch, time] input needs a mask.

The shared library is found through the environment variable KFORGE_AIS_LIB (a path to
libkforge_ais.so) or next to this file (where the CMake build and `cmake --install` put it).
"""

import ctypes
import os

import numpy as np

__all__ = [  # the C binding (imported lazily by kforge_ais/__init__.py)
    "Config", "State", "Diag", "Partial", "AisError", "compute", "accumulate", "finish",
    "weights", "exact_sum", "MODES", "library_path",
]

MODES = ("none", "token_tis", "seq_tis", "token_mis", "seq_mis", "ais", "geo_tis", "geo_mis")
_LEVELS = {"token": 0, "seq": 1, "geo": 2}
_DIVS = {"mean_abs": 0, "k3": 1}
_DSCALES = {"nll": 0, "abs": 1}
_NONFINITE = {"error": 0, "mask": 1}

N_COUNTS, N_ACCS, ACC_LIMBS, N_DMAX = 8, 12, 68, 4
N_ISUM = N_COUNTS + N_ACCS * ACC_LIMBS


class AisError(ValueError):
    """Raised when the C library rejects an argument; the message names the problem."""


def _find_library():
    env = os.environ.get("KFORGE_AIS_LIB")
    if env:
        if not os.path.isfile(env):
            raise ImportError(f"kforge_ais: KFORGE_AIS_LIB={env} is not a file")
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libkforge_ais.so")
    if os.path.isfile(here):
        return here
    raise ImportError(
        "kforge_ais: libkforge_ais.so not found. Build kforge (cmake --build build) and put "
        "build/runtime/ais/python on PYTHONPATH, or set KFORGE_AIS_LIB=/path/to/libkforge_ais.so")


library_path = _find_library()
_lib = ctypes.CDLL(library_path)

_dbl_p = ctypes.POINTER(ctypes.c_double)
_i64_p = ctypes.POINTER(ctypes.c_int64)
_u8_p = ctypes.POINTER(ctypes.c_uint8)


class _Config(ctypes.Structure):
    _fields_ = [
        ("mode", ctypes.c_int), ("cap", ctypes.c_double), ("cap_lower", ctypes.c_double),
        ("log_clamp", ctypes.c_double), ("mis_lower", ctypes.c_double),
        ("mis_upper", ctypes.c_double), ("reject_only", ctypes.c_int),
        ("ais_level", ctypes.c_int), ("divergence", ctypes.c_int), ("dscale", ctypes.c_int),
        ("tau_d", ctypes.c_double), ("gamma_r", ctypes.c_double), ("tau_v", ctypes.c_double),
        ("alpha_min", ctypes.c_double), ("alpha_max", ctypes.c_double),
        ("ema", ctypes.c_double), ("logprob_tol", ctypes.c_double), ("nonfinite", ctypes.c_int),
    ]


class _Ctx(ctypes.Structure):
    _fields_ = [("errmsg", ctypes.c_char * 512)]


class _Batch(ctypes.Structure):
    _fields_ = [("lp_roll", _dbl_p), ("lp_train", _dbl_p), ("mask", _u8_p),
                ("offsets", _i64_p), ("n_seqs", ctypes.c_int64), ("n_tokens", ctypes.c_int64)]


class _Partial(ctypes.Structure):
    _fields_ = [("isum", ctypes.c_int64 * N_ISUM), ("dmax", ctypes.c_double * N_DMAX)]


_DIAG_INT = ["n_tokens", "n_seqs", "n_seq_dropped", "n_tok_dropped", "n_tok_rejected",
             "n_seq_rejected"]
_DIAG_DBL = ["frac_tok_clipped", "frac_seq_clipped", "ess_tok", "ess_seq", "cv_tok", "cv_seq",
             "mean_abs_delta", "kl_k1", "kl_k3", "max_delta", "min_delta", "max_seq_logratio",
             "min_seq_logratio", "mean_nll", "ess_applied", "cv_level", "reliability",
             "divergence", "variance_amp", "a_d", "a_r", "a_v", "alpha_raw", "alpha"]


class _Diag(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in _DIAG_INT] + [(n, ctypes.c_double) for n in _DIAG_DBL]


class _State(ctypes.Structure):
    _fields_ = [("has_alpha", ctypes.c_int), ("alpha", ctypes.c_double)]


def _sig(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_P = ctypes.POINTER
_config_default = _sig("kf_ais_config_default", None, _P(_Config), ctypes.c_int)
_config_check = _sig("kf_ais_config_check", ctypes.c_int, _P(_Ctx), _P(_Config))
_partial_init = _sig("kf_ais_partial_init", None, _P(_Partial))
_accumulate = _sig("kf_ais_accumulate", ctypes.c_int, _P(_Ctx), _P(_Config), _P(_Batch),
                   _P(_Partial))
_merge = _sig("kf_ais_partial_merge", ctypes.c_int, _P(_Ctx), _P(_Partial), _P(_Partial))
exp_c = _sig("kf_ais_exp", ctypes.c_double, ctypes.c_double)
_finish = _sig("kf_ais_finish", ctypes.c_int, _P(_Ctx), _P(_Config), _P(_Partial), _P(_State),
               _P(_Diag))
_weights = _sig("kf_ais_weights", ctypes.c_int, _P(_Ctx), _P(_Config), _P(_Batch), _P(_Diag),
                _dbl_p, _u8_p)
_acc_add = _sig("kf_ais_acc_add", None, _i64_p, ctypes.c_double)
_acc_norm = _sig("kf_ais_acc_normalize", None, _i64_p)
_acc_value = _sig("kf_ais_acc_value", ctypes.c_double, _i64_p)

for _name, _cls in (("kf_ais_sizeof_partial", _Partial), ("kf_ais_sizeof_diag", _Diag),
                    ("kf_ais_sizeof_config", _Config)):
    _size = _sig(_name, ctypes.c_size_t)()
    if _size != ctypes.sizeof(_cls):
        raise ImportError(f"kforge_ais: {_name}() = {_size} but the binding's struct has "
                          f"{ctypes.sizeof(_cls)} bytes; library and binding versions differ")


def _check(rc, ctx):
    if rc != 0:
        raise AisError(ctx.errmsg.decode(errors="replace"))


class Config:
    """Weighting mode and knobs (see kf_ais.h). Unknown names raise AisError/ValueError."""

    def __init__(self, mode="ais", **kw):
        if mode not in MODES:
            raise ValueError(f"kforge_ais.Config: unknown mode {mode!r}; expected one of {MODES}")
        self._c = _Config()
        _config_default(ctypes.byref(self._c), MODES.index(mode))
        for key, val in kw.items():
            self._set(key, val)
        ctx = _Ctx()
        _check(_config_check(ctypes.byref(ctx), ctypes.byref(self._c)), ctx)

    def _set(self, key, val):
        enums = {"ais_level": _LEVELS, "divergence": _DIVS, "dscale": _DSCALES,
                 "nonfinite": _NONFINITE}
        if key in enums:
            if val not in enums[key]:
                raise ValueError(f"kforge_ais.Config: {key}={val!r}; expected one of "
                                 f"{tuple(enums[key])}")
            val = enums[key][val]
        elif key == "reject_only":
            val = int(bool(val))
        elif key not in {n for n, _ in _Config._fields_} or key == "mode":
            raise ValueError(f"kforge_ais.Config: unknown option {key!r}")
        setattr(self._c, key, val)

    @property
    def mode(self):
        return MODES[self._c.mode]

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return getattr(self._c, key)

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self._c, n)!r}" for n, _ in _Config._fields_[1:])
        return f"Config(mode={self.mode!r}, {fields})"


class State:
    """EMA state of alpha across batches (pass the same object to every finish/compute)."""

    def __init__(self):
        self._c = _State(0, 0.0)

    @property
    def alpha(self):
        return self._c.alpha if self._c.has_alpha else None


class Diag(dict):
    """Batch diagnostics; keys as in kf_ais_diag (alpha, reliability, divergence, ...)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class Partial:
    """Mergeable statistics: isum (int64, all-reduce with SUM), dmax (float64, with MAX)."""

    def __init__(self, isum=None, dmax=None):
        c = _Partial()
        _partial_init(ctypes.byref(c))
        self.isum = np.ctypeslib.as_array(c.isum).copy() if isum is None else \
            np.ascontiguousarray(isum, dtype=np.int64).copy()
        self.dmax = np.ctypeslib.as_array(c.dmax).copy() if dmax is None else \
            np.ascontiguousarray(dmax, dtype=np.float64).copy()
        if self.isum.shape != (N_ISUM,) or self.dmax.shape != (N_DMAX,):
            raise ValueError(f"kforge_ais.Partial: isum must have shape ({N_ISUM},) and dmax "
                             f"({N_DMAX},); got {self.isum.shape} and {self.dmax.shape}")

    def _to_c(self):
        c = _Partial()
        ctypes.memmove(c.isum, self.isum.ctypes.data, self.isum.nbytes)
        ctypes.memmove(c.dmax, self.dmax.ctypes.data, self.dmax.nbytes)
        return c

    def _from_c(self, c):
        self.isum = np.ctypeslib.as_array(c.isum).copy()
        self.dmax = np.ctypeslib.as_array(c.dmax).copy()

    def merge(self, other):
        """self += other (what an all-reduce does); returns self."""
        a, b = self._to_c(), other._to_c()
        ctx = _Ctx()
        _check(_merge(ctypes.byref(ctx), ctypes.byref(a), ctypes.byref(b)), ctx)
        self._from_c(a)
        return self


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _np(x, dtype, name):
    if x is None:
        return None
    if _is_torch(x):
        x = x.detach().to("cpu")
        if dtype == np.float64:
            x = x.double()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"kforge_ais: {name} has dtype {arr.dtype}; expected a numeric array")
    return np.ascontiguousarray(arr, dtype=dtype)


def mask_to_u8(mask, name="response_mask"):
    """A 0/1 uint8 copy of a mask that is bool or holds only the values 0 and 1; anything else
    (NaN, +-Inf, -1, 2, 0.5) raises ValueError naming the first bad element."""
    if _is_torch(mask):
        mask = mask.detach().to("cpu")
        mask = mask.numpy() if mask.dtype != _torch_bf16() else mask.float().numpy()
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        return np.ascontiguousarray(m, dtype=np.uint8)
    if m.dtype.kind not in "fiu":
        raise TypeError(f"kforge_ais: {name} has dtype {m.dtype}; expected bool or 0/1 numbers")
    bad = ~((m == 0) | (m == 1))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"kforge_ais: {name}[{', '.join(map(str, idx))}] = {m[idx]!r}; mask "
                         f"values must be 0 or 1 (or bool)")
    return np.ascontiguousarray(m, dtype=np.uint8)


def _torch_bf16():
    import torch
    return torch.bfloat16


class _Prepared:
    """Flat contiguous arrays + offsets for one call, and the original shape."""

    def __init__(self, old_log_prob, rollout_log_prob, mask, offsets):
        self.torch_like = old_log_prob if _is_torch(old_log_prob) else None
        t = _np(old_log_prob, np.float64, "old_log_prob")
        r = _np(rollout_log_prob, np.float64, "rollout_log_prob")
        if r.shape != t.shape:
            raise ValueError(f"kforge_ais: rollout_log_prob shape {r.shape} != old_log_prob "
                             f"shape {t.shape}")
        m = None
        if mask is not None:
            m = mask_to_u8(mask)
            if m.shape != r.shape:
                raise ValueError(f"kforge_ais: response_mask shape {m.shape} != log-prob shape "
                                 f"{r.shape}")
        self.shape = r.shape
        if r.ndim == 2:
            if m is None:
                raise ValueError("kforge_ais: 2-D [batch, time] log-probs need response_mask "
                                 "(without it padding would count as tokens)")
            if offsets is not None:
                raise ValueError("kforge_ais: offsets are implied by 2-D [batch, time] inputs; "
                                 "pass 1-D token arrays to give offsets")
            offsets = np.arange(r.shape[0] + 1, dtype=np.int64) * r.shape[1]
        elif r.ndim == 1:
            if offsets is None:
                offsets = np.array([0, r.shape[0]], dtype=np.int64)
        else:
            raise ValueError(f"kforge_ais: log-probs must be 1-D (with offsets) or 2-D "
                             f"[batch, time]; got shape {r.shape}")
        self.r, self.t, self.m = r.ravel(), t.ravel(), None if m is None else m.ravel()
        self.offsets = _np(offsets, np.int64, "offsets")
        if self.offsets.ndim != 1 or self.offsets.size < 1:
            raise ValueError(f"kforge_ais: offsets must be 1-D with n_seqs+1 >= 1 entries; got "
                             f"shape {self.offsets.shape}")
        self.batch = _Batch(
            self.r.ctypes.data_as(_dbl_p), self.t.ctypes.data_as(_dbl_p),
            None if self.m is None else self.m.ctypes.data_as(_u8_p),
            self.offsets.ctypes.data_as(_i64_p), self.offsets.size - 1, self.r.size)

    def out(self, w, keep):
        w, keep = w.reshape(self.shape), keep.reshape(self.shape)
        if self.torch_like is not None:
            import torch
            dev = self.torch_like.device
            return torch.from_numpy(w).to(dev), torch.from_numpy(keep.astype(bool)).to(dev)
        return w, keep.astype(bool)


def _diag_dict(d):
    return Diag({n: getattr(d, n) for n, _ in _Diag._fields_})


def _diag_c(diag):
    d = _Diag()
    for n, _ in _Diag._fields_:
        setattr(d, n, diag[n])
    return d


def accumulate(old_log_prob, rollout_log_prob, response_mask=None, offsets=None, config=None,
               partial=None):
    """Adds this batch (or this rank's share) to a Partial (new if None) and returns it."""
    config = config or Config()
    prep = _Prepared(old_log_prob, rollout_log_prob, response_mask, offsets)
    p = partial or Partial()
    c = p._to_c()
    ctx = _Ctx()
    _check(_accumulate(ctypes.byref(ctx), ctypes.byref(config._c), ctypes.byref(prep.batch),
                       ctypes.byref(c)), ctx)
    p._from_c(c)
    return p


def finish(partial, config=None, state=None):
    """Diagnostics and alpha from (merged) statistics; updates state (EMA) if given."""
    config = config or Config()
    c = partial._to_c()
    d = _Diag()
    ctx = _Ctx()
    _check(_finish(ctypes.byref(ctx), ctypes.byref(config._c), ctypes.byref(c),
                   None if state is None else ctypes.byref(state._c), ctypes.byref(d)), ctx)
    return _diag_dict(d)


def weights(old_log_prob, rollout_log_prob, response_mask=None, offsets=None, diag=None,
            config=None):
    """Per-token weights and keep-mask (bool) given finished diagnostics (needed for AIS)."""
    config = config or Config()
    prep = _Prepared(old_log_prob, rollout_log_prob, response_mask, offsets)
    w = np.empty(prep.r.size, dtype=np.float64)
    keep = np.empty(prep.r.size, dtype=np.uint8)
    dc = None if diag is None else _diag_c(diag)
    ctx = _Ctx()
    _check(_weights(ctypes.byref(ctx), ctypes.byref(config._c), ctypes.byref(prep.batch),
                    None if dc is None else ctypes.byref(dc), w.ctypes.data_as(_dbl_p),
                    keep.ctypes.data_as(_u8_p)), ctx)
    return prep.out(w, keep)


def compute(old_log_prob, rollout_log_prob, response_mask=None, offsets=None, config=None,
            state=None):
    """Single rank: returns (weights, keep, diag). Inputs 2-D [batch, time] (response_mask marks
    the response tokens) or 1-D token arrays with offsets[n_seqs + 1]."""
    config = config or Config()
    p = accumulate(old_log_prob, rollout_log_prob, response_mask, offsets, config)
    diag = finish(p, config, state)
    w, keep = weights(old_log_prob, rollout_log_prob, response_mask, offsets, diag, config)
    return w, keep, diag


def exact_sum(values):
    """Correctly rounded sum of finite doubles with the library's exact accumulator."""
    acc = np.zeros(ACC_LIMBS, dtype=np.int64)
    ptr = acc.ctypes.data_as(_i64_p)
    for k, v in enumerate(np.asarray(values, dtype=np.float64).ravel()):
        if not np.isfinite(v):
            raise ValueError(f"kforge_ais.exact_sum: values[{k}] = {v} is not finite")
        _acc_add(ptr, float(v))
        if k % (1 << 28) == (1 << 28) - 1:  # limbs take 2^30 additions between carries
            _acc_norm(ptr)
    return _acc_value(ptr)

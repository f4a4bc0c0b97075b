"""kforge_ais: importance weights for RL trainers with low-precision (FP8) rollouts.

Two implementations of the same definitions (runtime/ais/kf_ais.h):
- kforge_ais.torch: torch-native, device- and dtype-preserving, no host sync in the weight path,
  verl's signature, argument order and metric names, plus a TRL adapter. Use this in a trainer.
- the C reference library through ctypes (this package's top level: Config, compute,
  accumulate, finish, weights, ...), for numpy users, C/C++ users and exact data-parallel
  statistics. It is loaded on first use, so `import kforge_ais.torch` works without the .so.

Argument order everywhere is verl's: old_log_prob (the trainer's recomputed log pi_old), then
rollout_log_prob (the sampler's), then response_mask. rho = pi_old / pi_rollout.
"""

__version__ = "0.2.0"

_C_NAMES = ("Config", "State", "Diag", "Partial", "AisError", "compute", "accumulate", "finish",
            "weights", "exact_sum", "MODES", "library_path", "mask_to_u8", "exp_c")

__all__ = list(_C_NAMES)


def __getattr__(name):
    if name in _C_NAMES:
        from . import _cbind
        return getattr(_cbind, name)
    raise AttributeError(f"module 'kforge_ais' has no attribute {name!r}")

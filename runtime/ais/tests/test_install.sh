#!/usr/bin/env bash
# Packaging test: (1) an offline pip install of runtime/ais/python with Debian's setuptools into
# a fresh venv (system site-packages for numpy/torch), (2) `cmake --install --component
# kforge_ais` into a temporary prefix. Each installed copy must import, load its own
# libkforge_ais.so, and give the C and torch results the test below compares.
# Usage: test_install.sh <source runtime/ais dir> <cmake build dir> <python> <work dir>
set -euo pipefail
src=$1 build=$2 py=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
# pip builds in the source tree: build from a copy so the checkout stays clean
mkdir -p "$work/src"
cp "$src/kf_ais.c" "$src/kf_ais.h" "$work/src/"
cp -r "$src/python" "$work/src/python"
rm -rf "$work/src/python/build" "$work/src/python/"*.egg-info "$work/src/python/kforge_ais/"*.so
"$py" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --no-index --no-build-isolation --quiet \
  "$work/src/python" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
check='
import sys, numpy as np, torch, kforge_ais as ais, kforge_ais.torch as kt
assert ais.library_path.startswith(sys.argv[1]), (ais.library_path, sys.argv[1])
g = torch.Generator().manual_seed(1)
old = -torch.rand(4, 9, generator=g, dtype=torch.float64) - 0.1
roll = old + 0.1 * torch.randn(4, 9, generator=g, dtype=torch.float64)
roll = roll.clamp(max=0.0)
m = torch.ones(4, 9, dtype=torch.bool)
w, keep, d = ais.compute(old.numpy(), roll.numpy(), m.numpy(), config=ais.Config("token_tis"))
wt, mt, met = kt.compute_rollout_correction_and_rejection_mask(old, roll, m, rollout_is="token")
assert np.array_equal(w, wt.numpy()), "C and torch differ"
print("ok", ais.library_path, kt.__file__)
'
(cd "$work" && "$work/venv/bin/python" -c "$check" "$work/venv") || exit 1
show=$("$work/venv/bin/python" -m pip show kforge-ais)
grep -q "^Version: 0.2.0" <<<"$show" || { echo "pip show: no kforge-ais 0.2.0: $show"; exit 1; }
# cmake --install
cmake --install "$build" --component kforge_ais --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/kf_ais.h" && test -f "$work/prefix/lib/libkforge_ais.a"
(cd "$work" && PYTHONPATH="$work/prefix/lib/python3/dist-packages" "$py" -c "$check" "$work/prefix") || exit 1
echo "install test passed"

#!/usr/bin/env bash
# The main demo: set up, build, then generate, check and time an MSD kernel and its
# dequant-then-GEMM baseline (and the oneDNN/OpenBLAS peers) on an LLM decode shape.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
KF=./build/kforge
SHAPE=${SHAPE:-M=1,N=4096,K=14336}
echo "== templates"
$KF list
echo "== the MSD kernel as C (first lines)"
$KF gen msd_gemm --shape "$SHAPE" --emit c -o build/demo_msd_gemm.c
head -40 build/demo_msd_gemm.c
echo "... (the whole kernel: build/demo_msd_gemm.c)"
echo "== check against the fp64 reference (C and LLVM emitters)"
$KF check msd_gemm --shape "$SHAPE"
$KF check dequant_gemm --shape "$SHAPE"
echo "== bench: MSD vs dequant baseline vs peers (weights warm and cold)"
$KF bench msd_gemm --shape "$SHAPE" --vs dequant_gemm --peers --budget 1

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
echo "== the Ascend NPU model (simulated): AMLA decode on the paper's shape (batch 128, 128 heads, KV 4096)"
$KF sim amla_decode --shape B=128,H=128,S=4096 --set hb=128 --target ascend910b
echo "== the Ascend NPU model: dequant-then-GEMM (the Cube waits on the Vector) vs MSD"
$KF sim dequant_gemm --shape M=16,N=8192,K=8192 --set nc=64 --target ascend910b
$KF sim msd_gemm --shape M=16,N=8192,K=8192 --set nc=64 --target ascend910b

#!/bin/bash
# test_model_workflow.sh: the whole model workflow of docs/model-workflow.md on a tiny
# Llama-style checkpoint written by mkckpt: config -> kforge shapes -> kforge tune (one trial
# per shape) -> kforge lib -> kforge pack (W8 per channel) -> link examples/decoder_layer.c with
# the library and runtime/quant only -> run one decoder layer, checked (--check): MSD 2-pass
# within its bound of the fp32 layer and at least as accurate as dequant-bf16.
# Usage: test_model_workflow.sh KFORGE MKCKPT SOURCE_DIR
set -euo pipefail
KFORGE=$1 MKCKPT=$2 SRC=$3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$MKCKPT" "$W" 256 4 2 64 688 101 1
"$KFORGE" shapes "$W/config.json" --tokens 1 -o "$W/shapes.txt"
grep -q '^msd_gemm M=1,N=256,K=256 ' "$W/shapes.txt"
grep -q '^fa_decode B=1,H=4,HKV=2,S=4096,D=64 ' "$W/shapes.txt"
"$KFORGE" tune msd_gemm --shapes "$W/shapes.txt" --db "$W/tune.db" --budget 1 --quiet --threads 1 > "$W/tune.log"
"$KFORGE" lib --db "$W/tune.db" --shapes <(grep -v '^fa_decode' "$W/shapes.txt") -o "$W/lib" > "$W/lib.log"
"$KFORGE" pack "$W/model.safetensors" --config "$W/config.json" --quant w8 -o "$W/model.kfpack" --quiet
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$SRC/runtime/quant" -I"$W/lib" "$SRC/examples/decoder_layer.c" \
   "$SRC"/runtime/quant/*.c -L"$W/lib" -lkforge_kernels -lcjson -lm -lpthread -o "$W/decoder_layer"
"$W/decoder_layer" "$W/model.kfpack" --tokens 6 --check | tee "$W/run.log"
grep -q 'within' "$W/run.log"
# Qwen3 (per-head q/k RMSNorm): same shapes, same library
mkdir "$W/qwen3"
"$MKCKPT" "$W/qwen3" 256 4 2 64 688 101 1 --qwen3
"$KFORGE" shapes "$W/qwen3/config.json" --tokens 1 | grep -v '^#' | diff - <(grep -v '^#' "$W/shapes.txt")
"$KFORGE" pack "$W/qwen3/model.safetensors" --config "$W/qwen3/config.json" --quant w8 -o "$W/qwen3.kfpack" --quiet
"$W/decoder_layer" "$W/qwen3.kfpack" --tokens 6 --check | tee "$W/run3.log"
grep -q 'qwen3' "$W/run3.log"
# bad input reaches the user as a message naming the file and tensor
head -c 1000 "$W/model.safetensors" > "$W/cut.safetensors"
if "$KFORGE" pack "$W/cut.safetensors" -o "$W/cut.kfpack" 2> "$W/err.txt"; then echo "FAIL: truncated file packed"; exit 1; fi
grep -q 'cut.safetensors' "$W/err.txt"
head -c 5000 "$W/model.kfpack" > "$W/cut.kfpack"
if "$W/decoder_layer" "$W/cut.kfpack" 2> "$W/err2.txt"; then echo "FAIL: truncated pack loaded"; exit 1; fi
grep -q 'truncated' "$W/err2.txt"
echo "ok: workflow config -> shapes -> tune -> lib -> pack -> link -> run"

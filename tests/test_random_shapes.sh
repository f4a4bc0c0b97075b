#!/usr/bin/env bash
# test_random_shapes: random shapes and tunables for every template through `kforge check`
# (fp64 reference, both emitters, a random CPU path) and `kforge sim` (the Ascend model's
# functional check). A configuration the template's constraints reject, or a tiling that does
# not fit the model's buffers, is a legitimate refusal; anything else (a wrong result, a
# crash, an error from the generator or the lowering) fails the test with the command to
# reproduce it. Shapes run through odd sizes, K or D shorter than a quantization block,
# scale groups longer than K, GQA ratios and partial KV blocks: the cases where two trunk
# bugs were found by this sweep (see the session notes).
#   test_random_shapes.sh KFORGE [CASES] [SEED]     (SEED also from KF_SEED; default 1)
set -u
KF=${1:?usage: test_random_shapes.sh path/to/kforge [cases] [seed]}
N=${2:-60}
RANDOM=${3:-${KF_SEED:-1}}
R() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }
pick() { local a=("$@"); echo "${a[$((RANDOM % ${#a[@]}))]}"; }
Z() { if [ $((RANDOM % 2)) -eq 0 ]; then R 1 40; else R 1 "$1"; fi; } # half small, under one block or group
refused='constraint violated by|no value of the unset tunables|needs (L1|L0[ABC]?|UB)|exceeds [0-9]+ instructions'
ran=0; refusals=0; fail=0
for i in $(seq 1 "$N"); do
  case $((RANDOM % 6)) in
  0) t=msd_gemm
     sh="M=$(R 1 40),N=$(R 1 150),K=$(Z 600),bits=$(pick 4 8),group=$(pick 0 32 64 128),act_group=$(pick 0 0 32 64)"
     st="passes=$(R 1 3),mr=$(pick 1 2 3 4),nr=$(pick 16 32 48 64)" ;;
  1) t=dequant_gemm
     sh="M=$(R 1 40),N=$(R 1 150),K=$(Z 600),bits=$(pick 4 8),group=$(pick 0 32 64 128)"
     st="mr=$(pick 1 2 3 4 6),nr=$(pick 16 32 48 64)" ;;
  2) t=msd_mxfp4_gemm
     sh="M=$(R 1 40),N=$(R 1 150),K=$(Z 600)"
     st="passes=$(R 1 3),mr=$(pick 1 2 4),nr=$(pick 16 32 64)" ;;
  3) hk=$(pick 1 2 4); g=$(pick 1 2 4 8); t=fa_decode
     sh="B=$(R 1 3),H=$((hk * g)),HKV=$hk,S=$(Z 700),D=$(pick 32 64 128),kvq=$(pick 0 1 2)"
     st="hb=$(pick 1 2 4),bs=$(pick 32 64 128 256)" ;;
  4) t=amla_decode
     sh="B=$(R 1 2),H=$(pick 1 2 4 8 16),S=$(Z 1200)"
     st="hb=$(pick 1 2 4),bs=$(pick 64 128 256 512),mr=$(pick 1 2 4)" ;;
  5) hk=$(pick 1 2); g=$(pick 1 2 4 8); t=msd_attention
     sh="B=$(R 1 3),H=$((hk * g)),HKV=$hk,S=$(Z 600),D=$(pick 16 32 64 128),kvfmt=$(pick 0 1),kscale=$(pick 0 1)"
     st="passes=$(R 1 3),hb=$(pick 1 2 4),bs=$(pick 32 64 128),mr=$(pick 1 2),nr=$(pick 16 32 64)" ;;
  esac
  if [ $((RANDOM % 3)) -eq 0 ]; then
    cmd=("$KF" sim "$t" --shape "$sh" --set "$st" --target "$(pick ascend910b ascend910c)" --check full)
  else
    cmd=("$KF" check "$t" --shape "$sh" --set "$st" --target "$(pick cpu-host cpu-generic cpu-avx2 cpu-avx512 cpu-avx2-vnni cpu-avx512-vnni)")
  fi
  out=$("${cmd[@]}" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    ran=$((ran + 1))
  elif [ $rc -eq 2 ] && grep -Eq -- "$refused" <<<"$out"; then
    refusals=$((refusals + 1))
  else
    fail=$((fail + 1))
    echo "FAIL (exit $rc): ${cmd[*]}"
    tail -3 <<<"$out" | sed 's/^/      /'
  fi
done
echo "$N cases: $ran checked ok, $refusals refused by constraints or buffer capacity, $fail failed"
# the sweep must mostly run kernels, not refusals
[ $fail -eq 0 ] && [ $((ran * 3)) -ge "$N" ]

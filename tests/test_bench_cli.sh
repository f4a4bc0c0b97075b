#!/usr/bin/env bash
# test_bench_cli: `kforge peak` (measures, caches per CPU and thread count, reads the cache back,
# survives a corrupt cache) and `kforge bench` interleaving (every contender gets a line with its
# ratio to the first, the first's ratio is 1 with no spread, --roofline prints a fraction, bad
# options exit 2 with one error line).
set -u
KF=${1:?usage: test_bench_cli.sh path/to/kforge}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME="$T/cache"
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1"; fail=$((fail+1)); }

# expect_usage NAME PATTERN -- COMMAND...: exit 2, one error line matching PATTERN
expect_usage() {
  local name=$1 pattern=$2; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && printf '%s' "$err" | grep -Eq -- "$pattern" && [ "$(printf '%s\n' "$err" | grep -c error)" -eq 1 ]; then
    ok "$name: $err"
  else
    bad "$name: exit $rc, want 2 and /$pattern/: $err"
  fi
}

out=$("$KF" peak --threads 1 2>&1); rc=$?
cache="$XDG_CACHE_HOME/kforge/peak.txt"
if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q "measured $cache" && [ -s "$cache" ] &&
   grep -q "|threads=1	" "$cache" && printf '%s' "$out" | grep -Eq '^  f32 +[0-9.]+ GFLOPS' &&
   printf '%s' "$out" | grep -Eq '^  DRAM +[0-9.]+ GB/s'; then
  ok "peak measures and writes $cache"
else
  bad "peak --threads 1: rc $rc: $out"
fi
f32_1=$(printf '%s' "$out" | awk '$1 == "f32" {print $2}')
out2=$("$KF" peak --threads 1 2>&1)
f32_2=$(printf '%s' "$out2" | awk '$1 == "f32" {print $2}')
if printf '%s' "$out2" | grep -q "cached in $cache" && [ "$f32_1" = "$f32_2" ]; then ok "peak reads the cache back (f32 $f32_2)"
else bad "peak second run: $out2"; fi
# a corrupt entry for this CPU is measured again, not trusted; other entries are kept
key=$(cut -f1 "$cache" | head -1)
printf 'other cpu|threads=7\t1 2 3 4 5 6 7\n%s\tgarbage\n' "$key" > "$cache"
out3=$("$KF" peak --threads 1 2>&1); rc=$?
if [ $rc -eq 0 ] && printf '%s' "$out3" | grep -q "measured" && grep -q "^other cpu|threads=7	" "$cache" &&
   [ "$(grep -c "^$(printf '%s' "$key" | sed 's/[][\.*^$]/\\&/g')	" "$cache")" -eq 1 ] && ! grep -q garbage "$cache"; then
  ok "corrupt cache entry re-measured, other entries kept"
else
  bad "corrupt cache: rc $rc: $out3; cache: $(cat "$cache")"
fi

expect_usage "peak bad threads"  "bad number '0'"            -- "$KF" peak --threads 0
expect_usage "peak bad option"   "unknown argument '--frob'" -- "$KF" peak --frob
expect_usage "bench bad round"   "bad --round '-1'"          -- "$KF" bench msd_gemm --shape M=1,N=16,K=8 --round -1
expect_usage "bench vs no value" "option --vs needs a value" -- "$KF" bench msd_gemm --shape M=1,N=16,K=8 --vs
err=$("$KF" bench msd_gemm --shape M=1,N=16,K=8 --vs no_such --budget 0.01 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && printf '%s' "$err" | grep -q "unknown template 'no_such'"; then ok "bench --vs unknown template: $err"
else bad "bench --vs no_such: rc $rc: $err"; fi

# interleaved: three kforge contenders (one the same template with other tunables)
out=$("$KF" bench msd_gemm --shape M=3,N=40,K=70 --threads 1 --warm --budget 0.05 --round 0.002 \
      --vs dequant_gemm --vs msd_gemm:mr=1,passes=1 --roofline 2>&1); rc=$?
rows=$(printf '%s\n' "$out" | grep -c ' warm .* us  x')
first=$(printf '%s\n' "$out" | grep ' warm .* us  x' | head -1)
rounds=$(printf '%s\n' "$out" | sed -n 's/^warm weights: \([0-9]*\) rounds.*/\1/p')
if [ $rc -eq 0 ] && [ "$rows" -eq 3 ] && printf '%s' "$first" | grep -q 'x 1.00 \[ 1.00.. 1.00\]' &&
   printf '%s' "$out" | grep -q 'passes=1' && [ "${rounds:-0}" -ge 5 ] &&
   [ "$(printf '%s\n' "$out" | grep -c 'roof .*% (')" -eq 3 ] && printf '%s' "$out" | grep -q '^cpu: .*flags: '; then
  ok "bench interleaves 3 kernels over $rounds rounds with roofline fractions"
else
  bad "bench interleaved: rc $rc rows $rows rounds $rounds: $out"
fi
# cold rounds: a rotating set; and the peers, when built, interleave with the kernel
out=$("$KF" bench msd_gemm --shape M=2,N=32,K=64 --threads 1 --cold --budget 0.02 --peers 2>&1); rc=$?
if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q '^cold weights: ' && ! printf '%s' "$out" | grep -q ' warm '; then
  if printf '%s' "$out" | grep -q '^peers: not built'; then ok "bench --cold (peers not built)"
  elif [ "$(printf '%s\n' "$out" | grep -c 'dnnl_u8s8 .* cold .* us  x')" -eq 1 ]; then ok "bench --cold --peers interleaves the peers"
  else bad "bench --cold --peers: no dnnl_u8s8 row: $out"; fi
else
  bad "bench --cold: rc $rc: $out"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

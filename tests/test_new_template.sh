#!/bin/bash
# test_new_template.sh KFORGE: a kernel that is a single new .lua file in a temporary directory,
# with its own name and its own tunable names (an MSD GEMM whose tunables are renamed: no C
# knows them), goes through every verb with no C change: check (every CPU path this machine
# runs, the interp target, the Ascend model), tune, db best, sim. Its bound comes from the IR
# it builds: 1 split prints a 1-pass bound and ~7.5 effective bits, 2 splits ~15.
# One line per case; exit 1 on failure.
K=${1:?usage: test_new_template.sh path/to/kforge}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$(mktemp -d /tmp/kforge-newt-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$SRC/tuner/tests/tt_check.sh" # check NAME WANT_STATUS GREP_PATTERN -- command...
N="$T/zz_rowsplit_gemm.lua"
# the renaming: template name and every tunable (word-bounded, so "mr" in "mr_x" would not match)
sed -E -e 's/name = "msd_gemm"/name = "zz_rowsplit_gemm"/' \
  -e 's/\bpasses\b/splits/g; s/\bmr\b/rows_per_tile/g; s/\bnr\b/cols_per_tile/g' \
  -e 's/\bnc\b/col_block/g; s/\bmc\b/row_block/g; s/\bkc\b/k_span/g' \
  -e 's/\bsplits = P\b/passes = P/g' \
  "$SRC/templates/msd_gemm.lua" > "$N"
# the ops' own attribute stays `passes = P` (quantize, scale_acc); the tunable is t.splits
if grep -q 'splits' "$N" && ! grep -Eq '\b(mr|nr|nc|mc|kc)\b|t\.passes' "$N" && grep -q 'passes = P' "$N"; then
  echo "ok  : template written with renamed tunables"
else echo "FAIL: the renamed template"; fails=$((fails+1)); fi
SH=M=5,N=40,K=100
check "list shows it" 0 "tunables:.*splits=2" -- env KFORGE_TEMPLATES="$T" "$K" list
check "check (default: 2 splits, INT8 2-pass bound from the IR)" 0 "MSD INT8 2-pass.*|ok" -- "$K" check "$N" --shape $SH
grep -q "MSD INT8 2-pass" "$T/out" || { echo "FAIL: 2-pass bound named"; fails=$((fails+1)); }
bits2=$(sed -n 's/.*eff bits \([0-9.]*\).*/\1/p' "$T/out" | head -1)
check "check --set splits=1 (1-pass bound)" 0 "MSD INT8 1-pass" -- "$K" check "$N" --shape $SH --set splits=1
bits1=$(sed -n 's/.*eff bits \([0-9.]*\).*/\1/p' "$T/out" | head -1)
if awk -v a="$bits1" -v b="$bits2" 'BEGIN { exit !(a > 6 && a < 9 && b > 13) }'; then
  echo "ok  : effective bits follow the IR's passes (1: $bits1, 2: $bits2)"
else echo "FAIL: effective bits 1 split '$bits1', 2 splits '$bits2'"; fails=$((fails+1)); fi
for tg in cpu-generic cpu-avx2 cpu-avx2-vnni cpu-avx512 cpu-avx512-vnni; do
  out=$("$K" check "$N" --shape M=3,N=33,K=64 --target $tg 2>&1); st=$?
  if [ $st = 0 ] && echo "$out" | grep -q '^ok'; then echo "ok  : check on $tg"
  elif echo "$out" | grep -q "cannot run on this machine"; then echo "ok  : $tg not on this machine (skipped)"
  else echo "FAIL: check on $tg (status $st)"; echo "$out" | sed 's/^/      /' | head -5; fails=$((fails+1)); fi
done
check "check --target interp (the LIR interpreter target)" 0 "interp +max.err.*|^ok" -- "$K" check "$N" --shape $SH --target interp
grep -q '^ok' "$T/out" || { echo "FAIL: interp check ok"; fails=$((fails+1)); }
check "check --target ascend910b (the functional model)" 0 "^ok" -- "$K" check "$N" --shape M=16,N=64,K=256 --target ascend910b
check "tune over its own tunables" 0 "summary: [0-9]+ trials now \([0-9]+ ok" -- \
  "$K" tune "$N" --shape $SH --set splits=2,k_span=4096,row_block=64 --db "$T/t.db" --budget 6 --trial-budget 0.01 --quiet
check "db best names its tunables" 0 'best \{.*"cols_per_tile".*"splits":2' -- "$K" db best --db "$T/t.db"
printf '%s M=5,N=40,K=100\n' "$N" > "$T/shapes.txt"
check "kforge lib exports it" 0 "wrote .*libkforge_kernels.a \(1 tuned variants" -- \
  "$K" lib --db "$T/t.db" --shapes "$T/shapes.txt" -o "$T/lib"
grep -q 'zz_rowsplit_gemm' "$T/lib/kforge_kernels.h" && echo "ok  : the library's header has its functions" ||
  { echo "FAIL: zz_rowsplit_gemm in kforge_kernels.h"; fails=$((fails+1)); }
check "tune on the Ascend model" 0 "summary: [0-9]+ trials now \([0-9]+ ok" -- \
  "$K" tune "$N" --target ascend910b --shape M=16,N=256,K=512 --set splits=2,rows_per_tile=4,row_block=64,k_span=4096 \
  --db "$T/a.db" --budget 3 --quiet
check "sim on the Ascend model" 0 "time: [0-9]+ cycles" -- "$K" sim "$N" --target ascend910b --shape M=16,N=256,K=512
check "an unknown target lists the registered ones" 2 "known: cpu-host.*interp.*ascend910b" -- \
  "$K" check "$N" --shape $SH --target nowhere
# require: the template library (templates/lib/NAME.lua) and nothing else
cp "$N" "$T/zz_req.lua"
sed -i 's/^local function up(x, m) return (x + m - 1) \/\/ m \* m end$/local up = require("kf").up/; s/"zz_rowsplit_gemm"/"zz_req"/' "$T/zz_req.lua"
check "require(\"kf\") from a template outside templates/" 0 "^ok" -- "$K" check "$T/zz_req.lua" --shape $SH
grep -q 'require("kf")' "$T/zz_req.lua" || { echo "FAIL: zz_req uses require"; fails=$((fails+1)); }
for bad in '../templates/msd_gemm' 'os' 'lib/kf' 'KF' ''; do
  printf 'local m = require(%s)\nreturn { name = "zz_bad", reference = "gemm_q", params = {}, build = function() end }\n' \
    "\"$bad\"" > "$T/zz_bad.lua"
  check "require('$bad') refused with a clear error" 2 "zz_bad.lua:1: require: .*('$bad'|no template library)" -- \
    "$K" check "$T/zz_bad.lua" --shape M=1
done
# a template whose scratch buffers exceed memory: an error value, not an abort
cat > "$T/zz_ws.lua" <<'LUA'
return { name = "zz_ws", reference = "gemm_q", params = { M = { min = 1 }, N = { min = 1 }, K = { min = 1 } },
  build = function(p, t)
    local x = kf.arg{ name = "x", dtype = "bf16", dims = { p.M, p.K } }
    local w = kf.arg{ name = "w", dtype = "u8", dims = { p.N, p.K }, layout = "qweight", bits = 8, pack = "n16k1" }
    local ws = kf.arg{ name = "w_scale", dtype = "f32", dims = { 1, 16 } }
    local y = kf.arg{ name = "y", dtype = "f32", dims = { p.M, p.N }, out = true }
    local big = kf.scratch{ name = "big", dtype = "f32", dims = { 1 << 36, 16 } }
    local acc = kf.reg{ name = "acc", dtype = "f32", dims = { 1, 16 } }
    kf.loop("m", 0, p.M, 1, function(m)
      kf.zero{ dst = acc }
      kf.mma{ acc = acc, a = x:tile({ m, 0 }, { 1, p.K }), b = w:tile({ 0, 0 }, { 16, p.K }), b_scales = ws:tile({ 0, 0 }, { 1, 16 }) }
      kf.store{ dst = big:tile({ 0, 0 }, { 1, 16 }), src = acc }
      kf.store{ dst = y:tile({ m, 0 }, { 1, 16 }), src = acc }
    end, { parallel = true })
  end }
LUA
check "scratch beyond memory: a clear error, no abort" 2 "zz_ws.lua: no memory for the kernel's workspace" -- \
  env ASAN_OPTIONS=allocator_may_return_null=1 "$K" check "$T/zz_ws.lua" --shape M=2,N=16,K=16
echo "$fails failure(s)"
[ "$fails" = 0 ]

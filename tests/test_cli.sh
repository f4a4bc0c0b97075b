#!/usr/bin/env bash
# test_cli: the kforge command line on bad input. Each case must exit non-zero with a
# one-line "kforge...: error: ..." message that names the problem and where (file:line for
# template errors), never a crash (exit codes >= 128) or a traceback.
set -u
KF=${1:?usage: test_cli.sh path/to/kforge}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0

# expect NAME PATTERN -- COMMAND...: non-zero exit < 128, stderr has one error line matching PATTERN
expect() {
  local name=$1 pattern=$2; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  local lines; lines=$(printf '%s\n' "$err" | grep -c 'error')
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && printf '%s' "$err" | grep -Eq -- "$pattern" && [ "$lines" -eq 1 ]; then
    echo "ok   $name: exit $rc: $(printf '%s' "$err" | head -1)"; pass=$((pass+1))
  else
    echo "FAIL $name: exit $rc, expected /$pattern/ on one error line, got: $err"; fail=$((fail+1))
  fi
}

# a valid minimal template to mutate
cat > "$T/good.lua" <<'LUA'
return {
  name = "good", reference = "gemm_q",
  params = { M = {}, N = {}, K = {} },
  tunables = { mr = { default = 1, domain = { 1, 2 } } },
  build = function(p, t)
    local x = kf.arg{ name = "x", dtype = "bf16", dims = { p.M, p.K } }
  end,
}
LUA
printf 'return {\n  name = "bad",\n  build = function(p, t)\n    local x = = 1\n  end }\n' > "$T/syntax.lua"
printf 'return {\n  name = "rt", params = { M = {} },\n  build = function(p, t)\n    local z = nil\n    return z.field\n  end }\n' > "$T/runtime.lua"
printf 'return {\n  name = "loop", params = { M = {} },\n  build = function(p, t)\n    while true do end\n  end }\n' > "$T/loop.lua"
printf 'return {\n  name = "io", params = { M = {} },\n  build = function(p, t)\n    local f = io.open("/etc/passwd")\n  end }\n' > "$T/io.lua"
printf 'return {\n  name = "os", params = { M = {} },\n  build = function(p, t)\n    os.execute("true")\n  end }\n' > "$T/os.lua"
printf 'return {\n  name = "req", params = { M = {} },\n  build = function(p, t)\n    require("io")\n  end }\n' > "$T/require.lua"
printf 'return {\n  name = "mem", params = { M = {} },\n  build = function(p, t)\n    local s = "x"\n    for i = 1, 40 do s = s .. s end\n  end }\n' > "$T/mem.lua"
printf 'return {\n  name = "bc", params = { M = {} },\n  build = function(p, t)\n    local f = load(string.dump(function() end))\n  end }\n' > "$T/bytecode.lua"
printf 'return {\n  name = "ir", params = { M = {} },\n  build = function(p, t)\n    local x = kf.arg{ name = "x", dtype = "f32", dims = { 4, 4 } }\n    local r = kf.reg{ name = "r", dtype = "f32", dims = { 1, 16 } }\n    kf.loop("i", 0, 8, 1, function(i)\n      kf.load{ dst = r, src = x:tile({ i, 0 }, { 1, 4 }) }\n    end)\n  end }\n' > "$T/verify.lua"
printf 'return 42\n' > "$T/notable.lua"

expect "lua syntax error"      'syntax\.lua:4:'                         -- "$KF" gen "$T/syntax.lua" --shape M=1 --emit ir
expect "lua runtime error"     'runtime\.lua:5:.*nil value'                 -- "$KF" gen "$T/runtime.lua" --shape M=1 --emit ir
expect "infinite loop"         'loop\.lua:4:.*instruction limit'        -- "$KF" gen "$T/loop.lua" --shape M=1 --emit ir
expect "io.open attempt"       "io\.lua:4:.*(global 'io'|nil)"          -- "$KF" gen "$T/io.lua" --shape M=1 --emit ir
expect "os.execute attempt"    "os\.lua:4:.*(global 'os'|nil)"          -- "$KF" gen "$T/os.lua" --shape M=1 --emit ir
expect "require of a standard library" "require\.lua:4: require: no template library 'io'" -- "$KF" gen "$T/require.lua" --shape M=1 --emit ir
expect "memory limit"          'mem(ory)? limit|not enough memory'      -- "$KF" gen "$T/mem.lua" --shape M=1 --emit ir
expect "bytecode loading"      "bytecode\.lua:4:"                       -- "$KF" gen "$T/bytecode.lua" --shape M=1 --emit ir
expect "IR verification"       'verify\.lua:7:.*outside the buffer'     -- "$KF" gen "$T/verify.lua" --shape M=1 --emit ir
expect "template not a table"  'notable\.lua: the template must return a table' -- "$KF" gen "$T/notable.lua" --shape M=1 --emit ir
expect "missing template file" 'nope\.lua: cannot open'                 -- "$KF" gen "$T/nope.lua" --shape M=1 --emit ir
expect "unknown template"      "unknown template 'no_such'"             -- "$KF" gen no_such --shape M=1 --emit ir
expect "bad tunable value"     'mr=5 is not allowed.*one of'            -- "$KF" gen msd_gemm --shape M=4,N=32,K=64 --set mr=5 --emit ir
expect "unknown tunable"       "no tunable 'zz'"                        -- "$KF" gen msd_gemm --shape M=4,N=32,K=64 --set zz=1 --emit ir
expect "constraint violated"   'constraint.*nc must be a multiple of nr' -- "$KF" gen msd_gemm --shape M=4,N=32,K=64 --set mr=1,nr=48,nc=64 --emit ir
expect "bad --shape syntax"    "--shape 'M=1,N': expected NAME=VALUE"   -- "$KF" gen msd_gemm --shape M=1,N --emit ir
expect "non-integer --shape"   "value of N is not an integer: 'abc'"    -- "$KF" gen msd_gemm --shape M=1,N=abc,K=4 --emit ir
expect "missing shape param"   'needs K'                                -- "$KF" gen msd_gemm --shape M=1,N=16 --emit ir
expect "unknown shape param"   "no parameter 'Q'"                       -- "$KF" gen msd_gemm --shape M=1,N=16,K=8,Q=2 --emit ir
expect "shape out of range"    'M=0 is out of range'                    -- "$KF" gen msd_gemm --shape M=0,N=16,K=8 --emit ir
expect "bad bits"              'bits=5 is out of range'                 -- "$KF" gen msd_gemm --shape M=1,N=16,K=8,bits=5 --emit ir
expect "unknown target"        "unknown target 'gpu'"                   -- "$KF" gen msd_gemm --shape M=1,N=16,K=8 --target gpu --emit c
expect "unknown --emit"        "unknown --emit 'xyz'"                   -- "$KF" gen msd_gemm --shape M=1,N=16,K=8 --emit xyz
expect "unknown option"        "unknown option '--frobnicate'"          -- "$KF" check msd_gemm --shape M=1,N=16,K=8 --frobnicate
expect "unwritable output"     'cannot create'                          -- "$KF" gen msd_gemm --shape M=1,N=16,K=8 --emit c -o /nonexistent/dir/x.c
expect "unknown verb"          "unknown verb 'frob'"                    -- "$KF" frob
# shapes too large for int64 index arithmetic or for this machine's memory: clear errors
# (under a 4-6 GB address-space limit, so a regression aborts in malloc instead of swapping;
# not under ASan, which reserves terabytes of address space)
expect "shape value too large" 'M=9223372036854775807 is too large'     -- "$KF" gen msd_gemm --shape M=9223372036854775807,N=16,K=16 --emit ir
expect "buffer too large"      "buffer 'kv': .* elements is more than 2\^48" -- "$KF" gen amla_decode --shape B=1000000,H=128,S=1000000000 --emit ir
expect "inputs exceed memory"  "need about .* GB \(most for 'kv'.*this machine has" -- bash -c '[ "${KF_SANITIZED:-0}" = 1 ] || ulimit -v 4000000; exec "$0" check amla_decode --shape B=1,H=16,S=99999999999' "$KF"
expect "model program too big" 'the program exceeds [0-9]+ instructions' -- bash -c '[ "${KF_SANITIZED:-0}" = 1 ] || ulimit -v 6000000; exec "$0" sim amla_decode --shape B=1,H=16,S=99999999999 --target ascend910b' "$KF"

# generated code does not grow with K (per-group loops run at run time, not unrolled)
for K in 4096 262144; do "$KF" gen msd_mxfp4_gemm --shape M=16,N=64,K=$K --emit c -o "$T/k$K.c" || true; done
s1=$(wc -c < "$T/k4096.c" 2>/dev/null || echo 0); s2=$(wc -c < "$T/k262144.c" 2>/dev/null || echo 0)
if [ "$s1" -gt 0 ] && [ "$s2" -lt $((s1 + s1 / 20)) ]; then echo "ok   code size K=4096 $s1 B, K=262144 $s2 B"; pass=$((pass+1));
else echo "FAIL code size grows with K: K=4096 $s1 B, K=262144 $s2 B"; fail=$((fail+1)); fi

# --help on every verb exits 0 and prints usage
for verb in list gen check bench; do
  if "$KF" $verb --help | grep -q "usage: kforge $verb"; then echo "ok   $verb --help"; pass=$((pass+1));
  else echo "FAIL $verb --help"; fail=$((fail+1)); fi
done
# a kernel that does not finish: kforge check kills it after --timeout (a failed check, exit 1)
expect "check watchdog" "did not finish within --timeout 2 s" -- "$KF" check tuner/tests/templates/tt_faulty.lua \
  --shape M=8,N=16,K=64 --set fault=3 --timeout 2
expect "bad --timeout" "bad --timeout 'x'" -- "$KF" check msd_gemm --shape M=1,N=16,K=16 --timeout x
# silent damage: output that does not reach stdout, -o onto an input, unknown names
for v in "list" "gen msd_gemm --shape M=1,N=16,K=16" "check msd_gemm --shape M=1,N=16,K=16"; do
  # shellcheck disable=SC2086
  expect "stdout full: kforge $v" "kforge ${v%% *}: error: writing to standard output" -- bash -c "exec \"\$0\" $v > /dev/full" "$KF"
done
cp templates/msd_gemm.lua "$T/keep.lua"
expect "-o onto the template" "is the template itself: refusing to overwrite" -- "$KF" gen "$T/keep.lua" --shape M=1,N=16,K=16 -o "$T/keep.lua"
if cmp -s "$T/keep.lua" templates/msd_gemm.lua; then echo "ok   the template is intact"; pass=$((pass+1));
else echo "FAIL the template was changed"; fail=$((fail+1)); fi
expect "list of an unknown template" "kforge list: error: no template 'zz_none'" -- "$KF" list zz_none
expect "an error names the verb once" "^kforge gen: error: --shape" -- "$KF" gen msd_gemm --shape M=1,N --emit c
if "$KF" help check | grep -q "usage: kforge check"; then echo "ok   kforge help check"; pass=$((pass+1));
else echo "FAIL kforge help check"; fail=$((fail+1)); fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

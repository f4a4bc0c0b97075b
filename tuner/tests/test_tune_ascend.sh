#!/bin/bash
# test_tune_ascend.sh KFORGE: `kforge tune --target ascend910b` sweeps tunables on the Ascend
# model: each trial is the simulated time after the functional check; the sweep records every
# trial, resumes, finds the configuration the model favours, records a tiling that does not fit
# on-core memory as failed with the buffer named, and stores exactly the time `kforge sim` gives.
# One line per case; exit 1 on failure.
K=${1:?usage: test_tune_ascend.sh path/to/kforge}
T=$(mktemp -d /tmp/kforge-tasc-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/tt_check.sh" # check NAME WANT_STATUS GREP_PATTERN -- command...
SH=B=24,H=16,S=1024
check "unknown model" 2 "unknown Ascend machine 'ascend910x'" -- "$K" tune amla_decode --target ascend910x --shape $SH --db "$T/a.db"
check "sweep hb x preload on the model (10 configs)" 0 "summary: 10 trials now \(10 ok" -- \
  "$K" tune amla_decode --target ascend910b --shape $SH --set bs=512,mr=4 --db "$T/a.db" --quiet
check "resume: nothing new" 0 "summary: 0 trials now.*10 of 10 configurations recorded \(complete\)" -- \
  "$K" tune amla_decode --target ascend910b --shape $SH --set bs=512,mr=4 --db "$T/a.db" --quiet
# one task per AI-core group with the preload pipeline is the model's best for this shape
check "best: hb=16 (one task per group) with preload" 0 'best \{"bs":512,"hb":16,"mr":4,"preload":1\}' -- \
  "$K" db best --db "$T/a.db"
# the recorded time is the simulator's time for that configuration
"$K" sim amla_decode --target ascend910b --shape $SH --set bs=512,mr=4,hb=16,preload=1 --no-check > "$T/sim" 2>&1
want=$(sed -n 's/^time: [0-9]* cycles = \([0-9.]*\) us$/\1/p' "$T/sim")
got=$("$K" db show --db "$T/a.db" | grep '"hb":16,"mr":4,"preload":1' | sed -n 's/.*median *\([0-9.]*\) us.*/\1/p')
if [ -n "$want" ] && [ "$(printf '%.2f' "$want")" = "$got" ]; then echo "ok  : recorded $got us = kforge sim $want us"
else echo "FAIL: recorded '$got' us, kforge sim '$want' us"; fails=$((fails+1)); fi
check "preload never slower than without (same hb)" 0 "." -- bash -c '
  "$1" db show --db "$2" | awk '\''/ok +median/ { match($0, /"hb":[0-9]+/); hb = substr($0, RSTART, RLENGTH);
    match($0, /"preload":[01]/); p = substr($0, RSTART + 10, 1); t = $0; sub(/.*median +/, "", t); sub(/ us.*/, "", t);
    v[hb, p] = t + 0; hbs[hb] = 1 }
    END { n = 0; for (h in hbs) { n++; if (!(v[h, 1] <= v[h, 0])) { print "slower at " h; exit 1 } } if (n != 5) exit 1; print "ok" }'\''' _ "$K" "$T/a.db"
check "a tiling that does not fit L1 is recorded as failed, buffer named" 0 "failed.*L1 of an AIC" -- bash -c '
  "$1" tune msd_gemm --target ascend910b --shape M=512,N=2048,K=8192 --set passes=2,mr=8,nr=64,nc=1024,mc=512,kc=8192 --db "$2" --quiet &&
  "$1" db show --db "$2" --status failed' _ "$K" "$T/b.db"
check "db lookup on the model: a clear refusal" 2 "is not a CPU target: lookup serves generated CPU code" -- \
  "$K" db lookup --db "$T/a.db" amla_decode --shape $SH --target ascend910b
check "lib on the model: a clear refusal" 2 "is not a CPU target: lib builds CPU code" -- \
  "$K" lib --db "$T/a.db" --shapes /dev/null -o "$T/lib" --target ascend910b
echo "$fails failure(s)"
[ "$fails" = 0 ]

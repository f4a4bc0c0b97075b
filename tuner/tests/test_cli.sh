#!/bin/bash
# test_cli.sh KFORGE: the tuner's verbs on the command line (tune, db show/best/export/merge/
# lookup, plot, lib argument errors), failure paths first. One line per case; exit 1 on failure.
K=${1:?usage: test_cli.sh path/to/kforge}
T=$(mktemp -d /tmp/kforge-tcli-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/tt_check.sh" # check NAME WANT_STATUS GREP_PATTERN -- command...
F=tuner/tests/templates/tt_faulty.lua
check "tune without --db" 2 "missing --db" -- "$K" tune $F --shape M=2,N=32,K=64
check "tune without shape" 2 "missing --shape" -- "$K" tune $F --db "$T/a.db"
check "unknown strategy" 2 "unknown --strategy 'best'" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --strategy best
check "bad shard" 2 "bad --shard '3/2'" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --shard 3/2
check "bad budget" 2 "bad --budget '0'" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --budget 0
check "both budgets" 2 "not both" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --budget 2 --budget-s 3
check "bad shape" 2 "needs K" -- "$K" tune $F --shape M=2,N=32 --db "$T/a.db"
printf 'just some text\n' > "$T/foreign.db"; cp "$T/foreign.db" "$T/foreign.copy"
check "foreign file refused" 2 "not an SQLite file" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/foreign.db"
if cmp -s "$T/foreign.db" "$T/foreign.copy"; then echo "ok  : foreign file untouched"; else echo "FAIL: foreign file changed"; fails=$((fails+1)); fi
check "tune (6 configs)" 0 "summary: 6 trials now \(6 ok" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --set fault=0 --threads 1 --trial-budget 0.01
check "tune again: resume, nothing new" 0 "summary: 0 trials now.*6 of 6 configurations recorded \(complete\)" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --set fault=0 --threads 1 --trial-budget 0.01
printf '# shapes\n%s M=4,N=32,K=64\nM=8,N=32,K=64\nother_template M=1,N=1,K=1\n' "$F" > "$T/shapes.txt"
check "tune --shapes (skips other templates)" 0 "tune tt_faulty K=64,M=8" -- "$K" tune $F --shapes "$T/shapes.txt" --db "$T/b.db" --set fault=0 --threads 1 --trial-budget 0.01 --strategy random --budget 2
check "db show" 0 "\"fault\":0,\"nr\":16,\"slow\":1\}.*ok.*median" -- "$K" db show --db "$T/a.db"
check "db best" 0 "best \{.*median.*6 trials, 6 ok, space complete" -- "$K" db best --db "$T/a.db"
check "db export csv" 0 "^id,template,shape,target" -- "$K" db export --db "$T/a.db"
"$K" db export --db "$T/a.db" --format json -o "$T/a.json" > /dev/null 2>&1
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==6 and d[0]['config']['fault']==0" "$T/a.json"; then
  echo "ok  : db export json parses, 6 rows, config as an object"; else echo "FAIL: db export json"; fails=$((fails+1)); fi
check "db merge" 0 "trials added" -- "$K" db merge --db "$T/m.db" "$T/a.db" "$T/b.db"
check "merged has both" 0 "M=8" -- "$K" db show --db "$T/m.db"
check "db lookup exact" 0 "exact config" -- "$K" db lookup --db "$T/m.db" $F --shape M=2,N=32,K=64
check "db lookup nearest warns" 0 "nearest config.*from the nearest tuned shape K=64,M=2,N=32" -- "$K" db lookup --db "$T/m.db" $F --shape M=2,N=32,K=50
check "db lookup default" 0 "default config" -- "$K" db lookup --db "$T/m.db" $F --shape M=2,N=32,K=64,wround=1
check "db show reports err/bound and bits" 0 "bits  err/bound 0\.[0-9]{3}" -- "$K" db show --db "$T/a.db"
/usr/bin/python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE trials SET gen_hash='0ld0ld0ld0ld0ld0'\"); c.commit()" "$T/m.db"
check "db show marks stale trials" 0 "STALE \(other generator version\)" -- "$K" db show --db "$T/m.db"
check "db lookup skips stale trials" 0 "default config" -- "$K" db lookup --db "$T/m.db" $F --shape M=2,N=32,K=64
check "db lookup --allow-stale" 0 "exact config.*stale" -- "$K" db lookup --db "$T/m.db" $F --shape M=2,N=32,K=64 --allow-stale
check "db best skips stale trials" 0 "best -  \(6 trials, 6 ok, 6 stale" -- "$K" db best --db "$T/m.db" tt_faulty
check "tune bad --min-bits" 2 "bad --min-bits 'x'" -- "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --min-bits x
check "tune --shard auto outside a job array" 2 "neither SLURM_ARRAY_TASK_ID" -- env -u SLURM_ARRAY_TASK_ID -u JOB_COMPLETION_INDEX "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --shard auto
check "tune --shard auto, Kubernetes without a count" 2 "needs --shard-count" -- env JOB_COMPLETION_INDEX=1 "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --shard auto
check "tune --shard auto, Slurm id outside MIN..MAX" 2 "outside SLURM_ARRAY_TASK_MIN..MAX=1..3" -- env SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 "$K" tune $F --shape M=2,N=32,K=64 --db "$T/a.db" --shard auto
check "tune --shard auto from Slurm (MIN=1)" 0 "shard 1 of 3 \(Slurm array task 2\)" -- env SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 SLURM_ARRAY_TASK_COUNT=3 "$K" tune $F --shape M=2,N=32,K=64 --db "$T/k.db" --set fault=0 --threads 1 --trial-budget 0.01 --shard auto
check "tune --shard auto from Kubernetes" 0 "shard 2 of 4 \(Kubernetes completion index 2\)" -- env JOB_COMPLETION_INDEX=2 "$K" tune $F --shape M=2,N=32,K=64 --db "$T/k2.db" --set fault=0 --threads 1 --trial-budget 0.01 --shard auto --shard-count 4
check "check: cpu-avx2 M=1 keeps 2 passes (>= 14 bits) or refuses" 0 "passes=2.*target cpu-avx2" -- "$K" check msd_gemm --shape M=1,N=256,K=512 --target cpu-avx2 --emit llvm
if grep -Eq "eff bits (1[4-9]|[2-9][0-9])\." "$T/out" && grep -q "^ok" "$T/out"; then echo "ok  : check prints ok with >= 14 effective bits"
else echo "FAIL: check bits"; sed 's/^/      /' "$T/out" | head -5; fails=$((fails+1)); fi
check "db unknown subcommand" 2 "unknown subcommand 'drop'" -- "$K" db drop --db "$T/a.db"
check "db show missing file" 2 "no such tuning database" -- "$K" db show --db "$T/none.db"
check "plot png" 0 "wrote .*a.png" -- "$K" plot --db "$T/a.db" -o "$T/a.png"
if [ "$(head -c 4 "$T/a.png" | od -An -c | tr -d ' ')" = "211PNG" ]; then echo "ok  : a.png is a PNG"; else echo "FAIL: a.png is not a PNG"; fails=$((fails+1)); fi
check "db export --plot svg" 0 "wrote .*a.svg" -- "$K" db export --db "$T/a.db" -o "$T/x.csv" --plot "$T/a.svg"
grep -q "<svg" "$T/a.svg" && echo "ok  : a.svg is SVG" || { echo "FAIL: a.svg"; fails=$((fails+1)); }
check "plot without gnuplot" 2 "gnuplot not found.*gnuplot-nox" -- env PATH=/nonexistent "$K" plot --db "$T/a.db" -o "$T/b.png"
check "plot bad extension" 2 "must end in .png or .svg" -- "$K" plot --db "$T/a.db" -o "$T/b.gif"
check "lib without shapes" 2 "missing --shapes" -- "$K" lib --db "$T/a.db" -o "$T/lib"
printf 'msd_gemm M=1,N=16,K=8\nM=2,N=16,K=8\n' > "$T/lib_shapes.txt"
check "lib shape line without a template" 2 "shapes line 2" -- "$K" lib --db "$T/a.db" --shapes "$T/lib_shapes.txt" -o "$T/lib"
check "lib: a later line without a template" 2 "shapes line 3: kforge lib needs" -- "$K" lib --db "$T/a.db" --shapes "$T/shapes.txt" -o "$T/lib"
check "lib bad --min-bits" 2 "bad --min-bits" -- "$K" lib --db "$T/a.db" --shapes "$T/shapes.txt" -o "$T/lib" --min-bits 0
check "lib unknown target in a list" 2 "cpu-avx9" -- "$K" lib --db "$T/a.db" --shapes "$T/lib_shapes.txt" -o "$T/lib" --target cpu-avx2,cpu-avx9
[ $fails = 0 ] && echo "all ok" || echo "FAILED ($fails)"
exit $((fails != 0))

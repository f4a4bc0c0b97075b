#!/bin/bash
# test_slurm.sh KFORGE: a sharded sweep on a real Slurm cluster (issue 16). Starts a private
# one-node cluster on localhost (munged, slurmctld, slurmd from Debian's munge and slurm-wlm,
# every file under a temporary directory, ports chosen free, nothing beyond the loopback),
# submits `sbatch --array=0-2` of `kforge tune --shard auto` over a shapes list of 2 shapes,
# merges the 3 shard databases and checks: every (shape, config) work item tried exactly once,
# the shards disjoint and all used, and `kforge tune --remeasure` picks the true best
# (tt_faulty slow=1, fastest by construction). Exit 77 (skip) only when the daemons cannot be
# started here, with the reason.
K=$(realpath "${1:?usage: test_slurm.sh path/to/kforge}")
SRC=$(pwd)
T=$(mktemp -d /tmp/kforge-slurm-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/tt_check.sh"
skip() { echo "skip: $* (Slurm test not run)"; exit 77; }
t_start=$(date +%s.%N)
for b in munged mungekey slurmctld slurmd sbatch squeue; do
  command -v $b >/dev/null 2>&1 || [ -x /usr/sbin/$b ] || skip "$b not installed (scripts/setup.sh installs slurm-wlm and munge)"
done
export PATH=$PATH:/usr/sbin
[ "$(id -u)" = 0 ] || skip "not root: slurmd must run as root to start jobs as the submitting user"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# ---- munge: a private key and socket ----
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log"
chmod 700 "$T/munge"
mungekey --create --keyfile="$T/munge/munge.key" > /dev/null 2>&1 ||
  dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 2> /dev/null
chmod 600 "$T/munge/munge.key"
MSOCK="$T/munge/munge.socket"
munged --force --key-file="$T/munge/munge.key" --socket="$MSOCK" --pid-file="$T/munge/munged.pid" \
  --log-file="$T/log/munged.log" --seed-file="$T/munge/seed" > "$T/log/munged.out" 2>&1 ||
  skip "munged did not start: $(tail -2 "$T/log/munged.log" "$T/log/munged.out" 2>/dev/null | tr '\n' ' ')"
PIDS+=("$(cat "$T/munge/munged.pid")")

# ---- slurm.conf: one node, this host ----
HOST=$(hostname -s)
CPUS=$(nproc)
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
export SLURM_CONF="$T/slurm.conf"
cat > "$SLURM_CONF" << EOF
ClusterName=kforgetest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=kfnode NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=kf Nodes=kfnode Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" > "$T/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N kfnode -f "$SLURM_CONF" > "$T/log/slurmd.out" 2>&1 &
PIDS+=($!)
up=0
for i in $(seq 1 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then up=1; break; fi
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || skip "a daemon exited: $(tail -3 "$T"/log/*.log "$T"/log/*.out 2>/dev/null | tr '\n' ' ' | cut -c1-600)"; done
  sleep 0.5
done
[ $up = 1 ] || skip "the node did not become idle in 30 s: $(sinfo 2>&1 | tr '\n' ' ') $(tail -3 "$T"/log/slurmctld.log | tr '\n' ' ')"
t_up=$(date +%s.%N)
echo "ok  : one-node cluster up (munged, slurmctld, slurmd on 127.0.0.1:$CTLD_PORT/$SLURMD_PORT) in $(echo "$t_up - $t_start" | bc) s"

# ---- the sweep: 3 array tasks over 2 shapes x 6 configs = 12 work items ----
F="$SRC/tuner/tests/templates/tt_faulty.lua"
printf '# two shapes\nM=2,N=32,K=64\nM=4,N=48,K=96\n' > "$T/shapes.txt"
cat > "$T/sweep.sbatch" << EOF
#!/bin/bash
#SBATCH --array=0-2
#SBATCH --cpus-per-task=1
#SBATCH --output=$T/task_%a.out
"$K" tune "$F" --shapes "$T/shapes.txt" --db "$T/shard_\${SLURM_ARRAY_TASK_ID}.db" --shard auto \\
  --set fault=0 --threads 1 --trial-budget 0.01 --quiet
EOF
JOB=$(sbatch --parsable --chdir="$T" "$T/sweep.sbatch" 2> "$T/sbatch.err")
[ -n "$JOB" ] || { echo "FAIL: sbatch: $(cat "$T/sbatch.err")"; exit 1; }
done_ok=0
for i in $(seq 1 240); do
  if [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ]; then done_ok=1; break; fi
  sleep 0.5
done
[ $done_ok = 1 ] && echo "ok  : array job $JOB finished" || { echo "FAIL: array job $JOB still queued/running after 120 s"; squeue; fails=$((fails+1)); }
for a in 0 1 2; do
  if grep -q "shard $a of 3 (Slurm array task $a)" "$T/task_$a.out" && [ -s "$T/shard_$a.db" ]; then
    echo "ok  : task $a ran shard $a of 3 ($(grep -c '^summary' "$T/task_$a.out") shapes)"
  else echo "FAIL: task $a"; sed 's/^/      /' "$T/task_$a.out" | head -8; fails=$((fails+1)); fi
done
check "db merge of the 3 shards" 0 "merged.*shard_2.db: 4 new trials" -- "$K" db merge --db "$T/all.db" "$T/shard_0.db" "$T/shard_1.db" "$T/shard_2.db"
q() { /usr/bin/python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$@"; }
n=$(q "$T/all.db" "SELECT count(*) FROM trials")
nd=$(q "$T/all.db" "SELECT count(*) FROM (SELECT DISTINCT workload_id, config FROM trials)")
nw=$(q "$T/all.db" "SELECT count(*) FROM workloads")
per=""
for a in 0 1 2; do per="$per $(q "$T/shard_$a.db" "SELECT count(*) FROM trials")"; done
if [ "$n" = 12 ] && [ "$nd" = 12 ] && [ "$nw" = 2 ] && [ "$per" = " 4 4 4" ]; then
  echo "ok  : every work item tried exactly once: 12 trials, 12 distinct (shape, config), shards of$per"
else echo "FAIL: work items: $n trials, $nd distinct, $nw workloads, shards of$per"; fails=$((fails+1)); fi
check "tune --remeasure 3 re-times the top 3 of each shape" 0 "remeasure tt_faulty: the 3 fastest" -- "$K" tune "$F" --shapes "$T/shapes.txt" --db "$T/all.db" --set fault=0 --threads 1 --trial-budget 0.02 --remeasure 3
n_re=$(grep -c "remeasure {" "$T/out")
best_ok=$(grep "  best " "$T/out" | grep -c '"slow":1}')
if [ "$n_re" = 6 ] && [ "$best_ok" = 2 ]; then echo "ok  : 6 trials re-timed; the best of both shapes is slow=1 (the true best)"
else echo "FAIL: remeasure: $n_re re-timed, $best_ok bests with slow=1"; sed 's/^/      /' "$T/out"; fails=$((fails+1)); fi
check "db best after remeasure" 0 "best \{\"fault\":0,\"nr\":(16|32),\"slow\":1\}" -- "$K" db best --db "$T/all.db" tt_faulty
t_end=$(date +%s.%N)
echo "time: cluster start $(echo "$t_up - $t_start" | bc) s, sweep + merge + remeasure $(echo "$t_end - $t_up" | bc) s"
[ $fails = 0 ] && echo "all ok" || echo "FAILED ($fails)"
exit $((fails != 0))

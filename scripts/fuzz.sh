#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_NAME.c, see fuzz/README.md) for a bounded time:
#   bash scripts/fuzz.sh [SECONDS]   (default 15 s per target; KF_FUZZ_JOBS=N parallel jobs)
# Builds them first (build-fuzz/, clang with -fsanitize=fuzzer,address,undefined). Each
# target starts from fuzz/corpus/NAME/ (read only: new inputs go to a temporary directory)
# and fails the run on a crash, a sanitizer report, a leak or a slow input; the input that
# failed is kept as fuzz/findings/NAME-* for the reproduction command printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-15}
command -v clang >/dev/null || { echo "fuzz: clang is missing (bash scripts/setup.sh)"; exit 1; }
cmake -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DKF_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_all
status=0
mkdir -p fuzz/findings
for src in fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); name=${name#fuzz_}
  bin=build-fuzz/fuzz/fuzz_$name
  work=$(mktemp -d)
  mkdir -p "fuzz/corpus/$name"
  echo "== fuzz $name: ${SECONDS_PER_TARGET} s from fuzz/corpus/$name ($(ls "fuzz/corpus/$name" | wc -l) seeds)"
  t0=$(date +%s)
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
            -artifact_prefix="fuzz/findings/$name-" -print_final_stats=1 "$work" "fuzz/corpus/$name" \
            > "$work.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$work.log" | tail -2 || true
    echo "   ok: $(( $(date +%s) - t0 )) s, no finding"
  else
    status=1
    tail -40 "$work.log"
    echo "   FAIL: a finding in fuzz/findings/$name-* (reproduce: $bin fuzz/findings/$name-...)"
  fi
  rm -rf "$work" "$work.log"
done
exit $status

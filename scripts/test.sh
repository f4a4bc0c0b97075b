#!/usr/bin/env bash
# Sets up, builds and runs every test twice: a release build and an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
JOBS=$(nproc)
cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"
cmake -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKF_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"
status=0
echo "== tests (release build)"
ctest --test-dir build --output-on-failure -j "$JOBS" || status=1
echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer build)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$JOBS" -LE nosan || status=1
echo "== fuzzing (scripts/fuzz.sh: every fuzz/ target for a bounded time)"
bash scripts/fuzz.sh "${KF_FUZZ_SECONDS:-15}" || status=1
exit $status

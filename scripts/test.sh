#!/usr/bin/env bash
# README command (b): install what is needed, build, and run every test.
#
#   1. scripts/setup.sh            Debian packages (idempotent)
#      scripts/npm-tools.sh        npm test peers (s3rver; idempotent)
#   2. fuzz preset (clang)         the fuzzers (fuzz/), which CTest runs briefly each
#   3. ci preset (g++)             ASan + UBSan, warnings are errors
#   4. ctest                       every test; the last line is CTest's summary
#
# Environment: JOBS (parallel build jobs, default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

./scripts/setup.sh
./scripts/npm-tools.sh

echo "== building the fuzzers (clang, preset fuzz)"
cmake --preset fuzz >/dev/null
# Only the fuzzers (fuzz/NAME_fuzz.cc), not the rest of the tree, in this instrumented build.
mapfile -t fuzzers < <(cd fuzz && ls ./*_fuzz.cc | sed 's|^\./||; s|\.cc$||')
cmake --build --preset fuzz -j "$jobs" --target "${fuzzers[@]}"

echo "== building with ASan + UBSan and -Werror (g++, preset ci)"
cmake --preset ci >/dev/null
cmake --build --preset ci -j "$jobs"

echo "== running the tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
ctest --preset ci -j "$jobs" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# CTest prints its "N% tests passed" summary before the label timings; repeat
# it so the summary is the last line of the run.
grep -E '^[0-9]+% tests passed' "$log" | tail -n 1
exit "$status"

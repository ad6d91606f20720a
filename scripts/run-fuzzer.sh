#!/usr/bin/env bash
# Runs a libFuzzer binary for a fixed time on a copy of a seed corpus.
#
# Usage: run-fuzzer.sh FUZZER_BIN CORPUS_DIR SECONDS
#
# Exit status: the fuzzer's (0 when nothing was found, non-zero on a crash, leak, timeout or
# out-of-memory); 77 when FUZZER_BIN is empty or not executable (CTest's SKIP_RETURN_CODE);
# 2 on a usage error. The seed corpus is copied to a temporary directory, so new inputs that
# the fuzzer finds never land in the source tree; crash reproducers are written to the current
# directory (CTest: the build directory) as crash-*, leak-*, timeout-* or oom-*.
set -euo pipefail

usage() {
  echo "usage: $0 FUZZER_BIN CORPUS_DIR SECONDS" >&2
  exit 2
}

(($# == 3)) || usage
fuzzer=$1
corpus=$2
seconds=$3

if [[ -z $fuzzer || ! -f $fuzzer || ! -x $fuzzer ]]; then
  echo "SKIPPED: fuzzer not built (build it with: cmake --preset fuzz && cmake --build --preset fuzz)"
  exit 77
fi
[[ -d $corpus ]] || {
  echo "run-fuzzer.sh: corpus directory not found: $corpus" >&2
  exit 2
}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || {
  echo "run-fuzzer.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
}

work=$(mktemp -d -t hearth-fuzz.XXXXXX)
log="$work.log"
trap 'rm -rf "$work" "$log"' EXIT
cp -R "$corpus/." "$work/"
seeds=$(find "$work" -type f | wc -l)

# Full stack traces for UBSan findings, unless the caller says otherwise.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

start=$(date +%s)
status=0
"$fuzzer" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
elapsed=$(($(date +%s) - start))
# libFuzzer's own error exit code defaults to 77, which CTest would take for "skipped".
if ((status == 77)); then
  status=1
fi

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
corpus_after=$(find "$work" -type f | wc -l)
name=$(basename "$fuzzer")
if ((status == 0)); then
  echo "PASSED: $name ran ${runs:-?} inputs in ${elapsed}s, no crash (corpus: $seeds seeds -> $corpus_after inputs)"
else
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  if [[ -n $artifact && $artifact != /* ]]; then
    artifact="$(pwd)/${artifact#./}"
  fi
  echo "FAILED: $name exited with status $status after ${elapsed}s${artifact:+; reproducer: $artifact}"
fi
exit "$status"

#!/usr/bin/env bash
# Crash-safety soak for `hearth repo`: kill -9 backups and prunes at random moments, many times,
# and require after every kill that the real restic accepts the repository (`restic unlock`
# removes the dead process's stale lock, then `restic check` must pass). Ends with
# `restic check --read-data` and a restore compared with the source.
#
# Usage: scripts/dev/repo-kill-soak.sh [RUNS (default 200)] [HEARTH (default build/release/hearth)]
# The test suite runs 20+ kills of each kind (tests/repo/backup_test.cc, prune_test.cc); this is
# the longer version. Needs restic and python3. Work happens under ${TMPDIR:-/tmp}.
set -euo pipefail
runs=${1:-200}
root=$(cd "$(dirname "$0")/../.." && pwd)
hearth=${2:-$root/build/release/hearth}
work=$(mktemp -d "${TMPDIR:-/tmp}/hearth-soak-XXXXXX")
trap 'rm -rf "$work"' EXIT
export HEARTH_PASSWORD=soak RESTIC_PASSWORD=soak HEARTH_TEST_FAST_KDF=1
repo=$work/repo
src=$work/src
python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for d in range(8):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(30):
        size = rng.choice([100, 5000, 300_000, 1_500_000, 4_000_000])
        with open(f"{root}/d{d}/f{f}", "wb") as fh:
            fh.write(rng.randbytes(size))
PY
"$hearth" repo -r "$repo" init -q
seed=${SOAK_SEED:-$RANDOM}
echo "soak: $runs runs, seed $seed, repo $repo"
RANDOM=$seed
for ((i = 1; i <= runs; i++)); do
  # Change a few files so each backup has new data to write.
  for _ in 1 2 3; do
    f=$src/d$((RANDOM % 8))/f$((RANDOM % 30))
    head -c $((RANDOM * 64)) /dev/urandom >"$f"
  done
  if ((i % 4 == 0)); then
    "$hearth" repo -r "$repo" -q forget --keep-last 3 >/dev/null 2>&1 || true
    cmd=(prune)
  else
    cmd=(backup --pack-size 4 "$src")
  fi
  "$hearth" repo -r "$repo" -q "${cmd[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  restic -r "$repo" --no-cache unlock >/dev/null 2>&1
  if ! out=$(restic -r "$repo" --no-cache check 2>&1); then
    echo "soak: run $i (${cmd[0]}) left a repository restic rejects:" >&2
    echo "$out" >&2
    exit 1
  fi
  printf '.'
done
echo
"$hearth" repo -r "$repo" -q backup "$src"
restic -r "$repo" --no-cache check --read-data
"$hearth" repo -r "$repo" -q restore latest --target "$work/restore"
diff -r "$src" "$work/restore$src"
echo "soak: $runs kills, every one left a repository restic accepts; seed $seed"

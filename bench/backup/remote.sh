#!/usr/bin/env bash
# Remote-backend backup benchmark: `hearth repo` against restic over REST (rclone serve restic),
# S3 (s3rver over HTTPS) and SFTP (OpenSSH sshd, internal-sftp), same peer, same run.
#
# For each backend a peer is started on 127.0.0.1 with its storage in the workdir; then per
# repetition (order alternating) hearth and restic each init a fresh repository and time a first
# backup of the dataset (warm page cache): wall time, MB/s, max RSS (/usr/bin/time -v), client,
# peer and whole-machine CPU. A backend hearth cannot use is reported as "not measured (backend
# failed: ...)". Peers and repositories are removed at the end (also on Ctrl-C / TERM).
#
# Usage: bench/backup/remote.sh [--dataset-mb N] [--repeat 3] [--backends rest,s3,sftp]
#          [--workdir /tmp/hearth-bench-remote] [--dataset-dir /tmp/hearth-bench]
#   --dataset-mb  a hard-linked subset of about N MB of the cached full set (default: full 2.2 GB)
#   HEARTH  the hearth binary, used as it is. Unset: build/main-rel/hearth, configured when needed
#           (cmake -S . -B build/main-rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTH_BUILD_TESTS=OFF)
#           and brought up to date with `cmake --build build/main-rel --target hearth` first (a
#           stale binary may lack the remote backends; the first build takes minutes on 2 cores)
#   S3RVER  s3rver (default /opt/hearth-npm/node_modules/.bin/s3rver)
#   BENCH_DATASET_SCRIPT  the dataset generator, used when the full set is not cached yet
#
# Prints a Markdown report and writes it to bench/backup/results/<date>-remote.md, with the raw
# samples in <date>-remote.json. Needs restic, rclone, openssl, sshd, /usr/bin/time
# (scripts/setup.sh) and root for sshd's privilege separation directory /run/sshd.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ -n ${HEARTH:-} ]]; then
  hearth=$HEARTH
  [[ $hearth == /* ]] || hearth=$PWD/$hearth
  [[ -x $hearth ]] || {
    echo "remote.sh: HEARTH=$hearth not found or not executable" >&2
    exit 2
  }
else
  hearth=$root/build/main-rel/hearth
  echo "remote.sh: bringing $hearth up to date (Release)" >&2
  [[ -f $root/build/main-rel/build.ninja ]] ||
    cmake -S "$root" -B "$root/build/main-rel" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DHEARTH_BUILD_TESTS=OFF -DHEARTH_BUILD_BENCH=OFF
  cmake --build "$root/build/main-rel" --target hearth
fi
export HEARTH=$hearth

command -v python3 >/dev/null || {
  echo "remote.sh: python3 not found" >&2
  exit 2
}
PYTHONDONTWRITEBYTECODE=1 exec python3 "$here/remote.py" --hearth "$hearth" "$@"

#!/usr/bin/env bash
# Backup benchmark: `hearth repo` against restic and borg, same dataset, same run.
#
# For each tool, cache condition and repetition: a fresh repository, then the timed phases
#   backup       first backup of the dataset
#   incremental  backup again after make-dataset.py --mutate 5 changed 5% of the files
#   restore      restore the latest snapshot into an empty directory (then checked, untimed)
#   check        hearth repo check --read-data / restic check --read-data / borg check --verify-data
# under cold (sync; echo 3 > /proc/sys/vm/drop_caches before each phase) and warm page cache,
# plus a raw sequential read of the dataset (find | xargs cat) as the reference. Wall time,
# max RSS (/usr/bin/time -v), MB/s (dataset bytes / s), stored size (du -sb) after the first and
# the incremental backup. Encryption on for all: restic repository v2 with compression auto,
# borg repokey with lz4, hearth defaults; one password, from the environment.
#
# Usage: bench/backup/run.sh [--size-mb 2200] [--repeat 3] [--tools hearth,restic,borg]
#          [--phases backup,incremental,restore,check] [--conditions cold,warm]
#          [--workdir /tmp/hearth-bench] [--mutate-percent 5] [--verify-content] [--keep-dataset]
#   HEARTH  the hearth binary (default build/release/hearth; build: cmake --preset release &&
#           cmake --build --preset release --target hearth). Until it exists: --tools restic,borg.
#   BENCH_DATASET_SCRIPT  the dataset generator (default /work/shared/bench/make-dataset.py)
#
# Prints a Markdown report and writes it to bench/backup/results/<date>.md, with the raw samples
# in <date>.json. Needs root for the cold runs (otherwise they are reported as unavailable),
# restic, borg and /usr/bin/time (scripts/setup.sh installs them), and about 4x the dataset size
# free in the workdir. The dataset (make-dataset.py, deterministic) is created once per run;
# --keep-dataset keeps it in the workdir for the next run. More detail: bench/backup/bench.py.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# A relative HEARTH is relative to where the script was started; the default to the repository.
hearth=${HEARTH:-$root/build/release/hearth}
[[ $hearth == /* ]] || hearth=$PWD/$hearth
export HEARTH=$hearth

command -v python3 >/dev/null || {
  echo "run.sh: python3 not found" >&2
  exit 2
}
exec python3 "$here/bench.py" "$@"

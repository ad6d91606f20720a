#!/usr/bin/env bash
# Times Hearth's native age implementation against the age CLI, in the same run, on the same
# random data: `age -r R -o OUT IN` vs `hearth secret encrypt -r R -o OUT IN`, and
# `age -d -i KEY -o OUT IN` vs `hearth secret decrypt -i KEY -o OUT < IN` (both decrypt the same
# file, the one age wrote). Builds nothing: give it a release build of hearth.
#
# hearth decrypt reads IN from stdin, like age's usual pipe use: `hearth secret decrypt` first
# decides between SOPS and age from the first 4 KiB (secret_sops.cc), rewinds and hands over
# to the streaming age code. The IN-argument form streams the same way; it is timed once, on
# the first run, and shown separately as a check.
#
# Usage: bench/age-bench.sh [HEARTH_BIN] [RUNS]
#   HEARTH_BIN  default build/release/hearth (build: cmake --preset release && cmake --build
#               --preset release --target hearth)
#   RUNS        repetitions of each command, default 5
#   AGE_BENCH_MIB  size of the random input in MiB, default 1024
#
# Prints, per operation, the minimum and median wall-clock seconds, the ratio hearth/age of
# both, and the largest maximum RSS (GNU time). The data lives in /dev/shm when it has room
# (so the disk does not dominate), else in $TMPDIR. Needs: age, age-keygen, /usr/bin/time
# (scripts/setup.sh installs them).
set -euo pipefail

hearth=${1:-build/release/hearth}
runs=${2:-5}
mib=${AGE_BENCH_MIB:-1024}

die() {
  echo "age-bench.sh: $*" >&2
  exit 1
}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"
[[ $mib =~ ^[1-9][0-9]*$ ]] || die "AGE_BENCH_MIB must be a positive integer, got '$mib'"
[[ -x $hearth ]] || die "hearth binary not found or not executable: $hearth (build a release first)"
hearth=$(realpath "$hearth")
for tool in age age-keygen; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian package age; scripts/setup.sh)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian package time; scripts/setup.sh)"

# Room for the input, two ciphertexts and two plaintexts, plus slack.
need_kib=$(((mib * 5 + 64) * 1024))
shm_kib=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }' || echo 0)
if [[ -n $shm_kib && $shm_kib -gt $need_kib ]]; then
  work=$(mktemp -d -p /dev/shm hearth-age-bench.XXXXXX)
  where="tmpfs (/dev/shm)"
else
  work=$(mktemp -d -t hearth-age-bench.XXXXXX)
  where="$(dirname "$work") (not tmpfs: /dev/shm has too little room)"
fi
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "age-bench: ${mib} MiB of random data in $where, $runs runs each"
echo "  age:    $(command -v age) $(age --version)"
echo "  hearth: $hearth"
head -c "$((mib * 1024 * 1024))" /dev/urandom >in
age-keygen -o key 2>/dev/null
recipient=$(age-keygen -y key)

# measure NAME CMD...: appends "seconds max_rss_kib" to NAME.times; fails if CMD fails.
# With STDIN set, the command reads that file as its standard input.
measure() {
  local name=$1
  shift
  if ! /usr/bin/time -f "%e %M" -o time.out "$@" <"${STDIN:-/dev/null}" 2>err.out; then
    echo "age-bench: $name failed: $*" >&2
    cat err.out >&2
    exit 1
  fi
  tail -n 1 time.out >>"$name.times"
}

# The decrypt command reaches the age code through `hearth secret decrypt`'s SOPS/age dispatch.
hearth_decrypt=1
age -r "$recipient" -o probe.age key
if ! "$hearth" secret decrypt -i key -o probe.out <probe.age 2>probe.err || ! cmp -s key probe.out; then
  hearth_decrypt=0
  echo "  note: 'hearth secret decrypt' could not decrypt an age file ($(head -n 1 probe.err));"
  echo "        decrypt is timed for age only"
fi
rm -f probe.age probe.out probe.err

for ((i = 1; i <= runs; i++)); do
  # Alternate which program goes first, so neither always gets the warmer cache.
  if ((i % 2)); then
    measure age_encrypt age -r "$recipient" -o age.age in
    measure hearth_encrypt "$hearth" secret encrypt -r "$recipient" -o hearth.age in
  else
    measure hearth_encrypt "$hearth" secret encrypt -r "$recipient" -o hearth.age in
    measure age_encrypt age -r "$recipient" -o age.age in
  fi
  rm -f hearth.out age.out
  if ((i % 2)) || ((!hearth_decrypt)); then
    measure age_decrypt age -d -i key -o age.out age.age
    if ((hearth_decrypt)); then
      STDIN=age.age measure hearth_decrypt "$hearth" secret decrypt -i key -o hearth.out
    fi
  else
    STDIN=age.age measure hearth_decrypt "$hearth" secret decrypt -i key -o hearth.out
    measure age_decrypt age -d -i key -o age.out age.age
  fi
  if ((i == 1)); then
    # Correctness, once: each program opens the other's file, and both plaintexts match.
    cmp -s in age.out || die "age -d output differs from the input"
    if ((hearth_decrypt)); then
      cmp -s in hearth.out || die "hearth decrypt output differs from the input"
      rm -f hearth.out
      # The INPUT-argument form, once (see the note at the top).
      measure hearth_decrypt_arg "$hearth" secret decrypt -i key -o hearth.out hearth.age
      cmp -s in hearth.out || die "hearth cannot decrypt its own file"
    fi
    rm -f age.out
    age -d -i key -o age.out hearth.age
    cmp -s in age.out || die "age -d cannot decrypt hearth's file"
  fi
done

# stats NAME: "min median max_rss_kib"
stats() {
  sort -n "$1.times" | awk '
    { t[NR] = $1; if ($2 > rss) rss = $2 }
    END {
      med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
      printf "%.2f %.2f %d\n", t[1], med, rss
    }'
}

printf '\n%-16s %8s %8s %12s\n' "operation" "min s" "median s" "max RSS MiB"
report() {
  local op=$1 amin amed arss hmin hmed hrss
  read -r amin amed arss < <(stats "age_$op")
  awk -v n="age $op" -v a="$amin" -v m="$amed" -v r="$arss" \
    'BEGIN { printf "%-16s %8.2f %8.2f %12.1f\n", n, a, m, r / 1024 }'
  if [[ -s "hearth_$op.times" ]]; then
    read -r hmin hmed hrss < <(stats "hearth_$op")
    awk -v n="hearth $op" -v a="$hmin" -v m="$hmed" -v r="$hrss" \
      'BEGIN { printf "%-16s %8.2f %8.2f %12.1f\n", n, a, m, r / 1024 }'
    awk -v hmin="$hmin" -v amin="$amin" -v hmed="$hmed" -v amed="$amed" 'BEGIN {
      printf "%-16s %8.2f %8.2f\n", "  hearth/age", (amin > 0 ? hmin / amin : 0),
        (amed > 0 ? hmed / amed : 0) }'
  fi
}
report encrypt
report decrypt
if [[ -s hearth_decrypt_arg.times ]]; then
  read -r t rss <hearth_decrypt_arg.times
  awk -v t="$t" -v r="$rss" 'BEGIN { printf "%-16s %8.2f %8s %12.1f  (hearth secret decrypt IN ..., once)\n",
    "hearth dec. arg", t, "-", r / 1024 }'
fi

#!/usr/bin/env bash
# Installs every Debian (12, bookworm) package Hearth needs to build, test, fuzz and lint.
#
# Idempotent and non-interactive: packages that are already installed are left alone, and
# `apt-get update` runs only when something is missing AND (the apt lists are missing or
# older than 24h, or the first install attempt failed). Takes no arguments.
#
# Runs as root; otherwise uses sudo when it is available. apt/dpkg output goes to a log that
# is shown only on failure; on success the script prints one line.
set -euo pipefail

# Every package the project needs, one group per line.
PACKAGES=(
  # Build tools: compilers, CMake + Ninja, pkg-config, git, TLS root certificates.
  build-essential g++ cmake ninja-build pkg-config git ca-certificates
  # clang for the fuzz preset. `clang++ -fsanitize=fuzzer,address,undefined` links the
  # compiler-rt archives (libclang_rt.fuzzer/asan/ubsan), which live in libclang-rt-14-dev;
  # clang only *recommends* it, so it must be named here. llvm-14 provides
  # /usr/bin/llvm-symbolizer-14, which the sanitizer runtimes use to put function names and
  # line numbers into crash reports.
  clang libclang-rt-14-dev llvm-14
  # Libraries (headers + CMake package configs) and the sqlite3 shell.
  libyaml-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libsqlite3-dev sqlite3
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev libcpp-httplib-dev
  # Service runtime: bubblewrap sandboxes exec services; podman (with runc, as crun is not
  # installed, and netavark networking) runs podman services; busybox-static builds the
  # tests' local image, since there is no image registry.
  bubblewrap podman runc conmon netavark aardvark-dns iptables uidmap catatonit busybox-static
  # The example lab's services (examples/home), run by `hearth up` with the exec driver.
  postgresql-15 redis-server nginx mosquitto prometheus-node-exporter curl
  # Headless browser for the tests that load pages (the example lab's page) as a user would.
  chromium
  # Secrets: the age CLI (age, age-keygen) that the age interop tests and bench/age-bench.sh
  # compare against; zlib headers for the age test vectors' compressed bodies; GNU time
  # (/usr/bin/time -v) for the benchmark's max RSS.
  age zlib1g-dev time
  # Backups (`hearth repo`, restic-compatible repositories): zstd and libsodium headers for the
  # engine; the restic (0.14) and borg (borgbackup 1.2) CLIs, the real peers that the interop
  # tests (tests/repo) and bench/backup/run.sh compare against.
  libzstd-dev libsodium-dev restic borgbackup
  # Remote repositories: libssh for the SFTP backend; the peers its tests and bench/backup run
  # against: OpenSSH sshd (SFTP), rclone (`rclone serve restic`, the REST protocol), botocore
  # (the reference SigV4 signer). s3rver (npm) is installed by scripts/npm-tools.sh.
  libssh-dev openssh-server rclone python3-botocore
  # Tooling: formatter and linter (version 14 on bookworm; see .clang-format / .clang-tidy).
  clang-format clang-tidy
)

# npm for scripts/npm-tools.sh, from Debian unless an npm is already there (a
# NodeSource nodejs ships its own npm and conflicts with Debian's package).
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

readonly APT_LISTS_DIR=/var/lib/apt/lists
readonly APT_LISTS_MAX_AGE_MIN=$((24 * 60))

log() { printf 'setup.sh: %s\n' "$*"; }
die() {
  printf 'setup.sh: error: %s\n' "$*" >&2
  exit 1
}

is_installed() {
  local status
  # One line per installed architecture; any "install ok installed" line counts.
  status=$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null) || return 1
  grep -qx 'install ok installed' <<<"$status"
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found; this script supports Debian/Ubuntu only"

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  log "all packages present (${#PACKAGES[@]} checked)"
  exit 0
fi

# Root is only needed from here on.
as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    die "not running as root and sudo is not installed; missing packages: ${missing[*]}." \
      "Re-run as root (e.g. su -c $0) or install them yourself."
  fi
fi

apt_log=$(mktemp -t hearth-setup.XXXXXX.log)

# Packages such as mosquitto and postgresql start their system service when
# installed where an init system allows it; that service would hold the ports
# the example lab uses (1883, ...). A policy-rc.d that answers 101 ("action
# not allowed") keeps them stopped; an existing policy is left untouched.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# Temporary, from hearth scripts/setup.sh: do not start services.\nexit 101\n' |
    "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 0755 "$policy"
  added_policy=1
fi
cleanup() {
  rm -f "$apt_log"
  if ((added_policy)); then "${as_root[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT

apt() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
    -o DPkg::Lock::Timeout=300 "$@" >>"$apt_log" 2>&1
}

apt_update() {
  apt update || {
    tail -n 40 "$apt_log" >&2
    die "apt-get update failed (full log above)"
  }
  updated=1
}

# True when the apt lists exist and at least one was refreshed within the last 24h.
lists_fresh() {
  [[ -d $APT_LISTS_DIR ]] || return 1
  [[ -n $(find "$APT_LISTS_DIR" -maxdepth 1 -type f -name '*_Packages*' -print -quit) ]] || return 1
  [[ -n $(find "$APT_LISTS_DIR" -maxdepth 1 -type f -name '*_Packages*' \
    -mmin "-$APT_LISTS_MAX_AGE_MIN" -print -quit) ]]
}

install_missing() { apt install --no-install-recommends "${missing[@]}"; }

updated=0
lists_fresh || apt_update
if ! install_missing; then
  if ((updated)); then
    tail -n 40 "$apt_log" >&2
    die "apt-get install failed for: ${missing[*]}"
  fi
  apt_update
  if ! install_missing; then
    tail -n 40 "$apt_log" >&2
    die "apt-get install failed (even after apt-get update) for: ${missing[*]}"
  fi
fi

# Double-check: apt-get can succeed while leaving a package unconfigured.
still_missing=()
for pkg in "${missing[@]}"; do
  is_installed "$pkg" || still_missing+=("$pkg")
done
((${#still_missing[@]} == 0)) || die "still not installed after apt-get: ${still_missing[*]}"

if ((updated)); then
  log "installed ${#missing[@]} package(s) (after apt-get update): ${missing[*]}"
else
  log "installed ${#missing[@]} package(s): ${missing[*]}"
fi

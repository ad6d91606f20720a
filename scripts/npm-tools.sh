#!/usr/bin/env bash
# Installs the npm tools that Hearth's tests run against, into one prefix:
#   s3rver 3.7.1   an S3-compatible server (tests/repo/backend_s3_test.cc, and
#                  the example lab's "offsite" bucket: scripts/demo-peers.sh).
#
# Idempotent: exits at once when the pinned versions are already there. Needs
# npm (scripts/setup.sh installs it) and the npm registry. Prints one line.
#
# Environment: HEARTH_NPM_PREFIX (default /opt/hearth-npm); the tests look for
# $HEARTH_NPM_PREFIX/node_modules/.bin/s3rver unless HEARTH_S3RVER names one.
set -euo pipefail

prefix=${HEARTH_NPM_PREFIX:-/opt/hearth-npm}
# name@version, pinned: the tests depend on the servers' exact behaviour.
TOOLS=(s3rver@3.7.1)

log() { printf 'npm-tools.sh: %s\n' "$*"; }
die() {
  printf 'npm-tools.sh: error: %s\n' "$*" >&2
  exit 1
}

# The version of an installed package, from its package.json ("" when absent).
installed_version() {
  local pkg_json="$prefix/node_modules/$1/package.json"
  [[ -f $pkg_json ]] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$pkg_json" | head -n 1
}

missing=()
for tool in "${TOOLS[@]}"; do
  name=${tool%@*}
  want=${tool##*@}
  [[ $(installed_version "$name") == "$want" && -x $prefix/node_modules/.bin/$name ]] ||
    missing+=("$tool")
done

if ((${#missing[@]} == 0)); then
  log "all present in $prefix (${TOOLS[*]})"
  exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm not found; run scripts/setup.sh first (it installs npm)"
mkdir -p "$prefix"
npm_log=$(mktemp -t hearth-npm.XXXXXX.log)
trap 'rm -f "$npm_log"' EXIT
# --prefix with a package.json-less directory installs into $prefix/node_modules.
if ! npm install --prefix "$prefix" --no-audit --no-fund --no-update-notifier "${missing[@]}" \
  >"$npm_log" 2>&1; then
  tail -n 40 "$npm_log" >&2
  die "npm install failed for: ${missing[*]}"
fi
for tool in "${missing[@]}"; do
  name=${tool%@*}
  [[ $(installed_version "$name") == "${tool##*@}" ]] || die "$tool did not install into $prefix"
done
log "installed ${missing[*]} into $prefix"

#!/usr/bin/env bash
# README command (a): install what is needed, build, and run the main job on
# the example lab (examples/home): validate it, show the plan, then run it in
# the foreground with `hearth up` until Ctrl-C (which stops its services).
#
# While it runs, open http://127.0.0.1:8443/ (the app behind the nginx proxy),
# and `build/release/hearth --lab examples/home status` in another terminal.
# It also starts the example's backup targets on 127.0.0.1 (scripts/demo-peers.sh:
# an SFTP "NAS" and an S3 "offsite" bucket), so that `hearth backup run critical`
# and `hearth drill run db` work from another terminal; they stop with it.
# Run it as root: the example's PostgreSQL is started as the postgres user.
# Pass --plan-only to stop after the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

./scripts/setup.sh
./scripts/npm-tools.sh
cmake --preset release >/dev/null
cmake --build --preset release --target hearth -j "$jobs"

hearth=build/release/hearth
lab=examples/home
echo
echo "\$ hearth --lab $lab validate"
"$hearth" --lab "$lab" validate
echo
echo "\$ hearth --lab $lab plan"
"$hearth" --lab "$lab" plan
if [[ "${1:-}" == "--plan-only" ]]; then
  exit 0
fi
echo
echo "\$ scripts/demo-peers.sh start $lab"
./scripts/demo-peers.sh start "$lab"
trap './scripts/demo-peers.sh stop "$lab" >/dev/null' EXIT
echo
echo "\$ hearth --lab $lab up      (open http://127.0.0.1:8443/ once the services are healthy; Ctrl-C stops)"
echo "  then, in another terminal: $hearth --lab $lab backup run critical && $hearth --lab $lab drill run db"
"$hearth" --lab "$lab" up

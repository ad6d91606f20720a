#!/usr/bin/env bash
# README command (a): install what is needed, build, and run the main job on
# the example lab (examples/home).
#
# Today the main job validates and plans the example lab: services and the
# firewall are recorded, not yet started or programmed. Pass --apply to also
# apply it (creates the volume directories and records the lab in
# examples/home/.hearth/state.db), after which a second plan is empty.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

./scripts/setup.sh
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
if [[ "${1:-}" == "--apply" ]]; then
  echo
  echo "\$ hearth --lab $lab apply --yes"
  "$hearth" --lab "$lab" apply --yes
  echo
  echo "\$ hearth --lab $lab plan --detailed-exitcode"
  "$hearth" --lab "$lab" plan --detailed-exitcode
fi

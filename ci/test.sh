#!/usr/bin/env bash
# The test command: from a fresh machine, brings up an engine, builds the offline images and runs
# every test (unit, CLI, broken-variant proofs and the conformance suites) with cargo nextest.
# The fixture stacks' own builds warm the engine's cache while the compiler has the cores; the
# closing table says how long each phase took.
set -euo pipefail
cd "$(dirname "$0")/.."
phases=()
# Each phase is timed, also the one that fails (its status is passed on).
phase() {
  local t0=$SECONDS status=0 note=""
  "$@" || status=$?
  [ "$status" = 0 ] || note=" (exit $status)"
  phases+=("$(printf '%-8s %5d s%s' "$1" $((SECONDS - t0)) "$note")")
  return "$status"
}
engine() { bash ci/engine.sh; }
images() { bash ci/images.sh; }
# Inside `phase` errexit is off (an `||` list): each phase returns its own status.
build() {
  local log=/tmp/stackcheck-warm-builds.log warm status=0
  bash ci/warm-builds.sh >"$log" 2>&1 & warm=$!
  cargo nextest run --no-run "$@" || status=$?
  wait "$warm" || true
  cat "$log"
  return "$status"
}
tests() { cargo nextest run --no-fail-fast "$@"; }
report() { printf '[test] phases:\n'; printf '[test]   %s\n' "${phases[@]}"; }
trap report EXIT
phase engine
phase images
phase build "$@"
phase tests "$@"

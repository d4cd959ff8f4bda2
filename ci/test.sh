#!/usr/bin/env bash
# The test command: from a fresh machine, brings up an engine, builds the offline images and runs
# every test (unit, CLI, broken-variant proofs and the conformance suites) with cargo nextest.
# The tests compile while the engine installs and the offline images build (the compiler needs the
# cores, they need the network and the disk), and the fixture stacks' own builds then warm the
# engine's cache while the compiler finishes. The closing table says how long each phase took;
# `build` counts only the wait for the compiler after the other phases.
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
report() { printf '[test] phases (%d s in all):\n' "$SECONDS"; printf '[test]   %s\n' "${phases[@]}"; }
compiler=
# A phase that fails ends the job: the compiler must not outlive it.
trap 'report; [ -z "$compiler" ] || kill "$compiler" 2>/dev/null || true' EXIT
# The compiler starts first, on its own: it needs neither the engine nor the images.
build_log=/tmp/stackcheck-test-build.log
cargo nextest run --no-run "$@" >"$build_log" 2>&1 & compiler=$!
engine() { bash ci/engine.sh; }
images() { bash ci/images.sh; }
# Inside `phase` errexit is off (an `||` list): each phase returns its own status.
build() {
  local log=/tmp/stackcheck-warm-builds.log warm status=0
  bash ci/warm-builds.sh >"$log" 2>&1 & warm=$!
  wait "$compiler" || status=$?
  compiler=
  # A failed build shows its whole log; a good one its last lines.
  if [ "$status" = 0 ]; then tail -n 3 "$build_log"; else cat "$build_log"; fi
  wait "$warm" || true
  cat "$log"
  return "$status"
}
tests() { cargo nextest run --no-fail-fast "$@"; }
phase engine
phase images
phase build "$@"
phase tests "$@"

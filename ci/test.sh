#!/usr/bin/env bash
# The test command: from a fresh machine, brings up an engine, builds the offline images and runs
# every test (unit, CLI, broken-variant proofs and the conformance suites) with cargo nextest.
# The tests compile while the engine installs and the offline images build (the compiler needs the
# cores, they need the network and the disk), and the fixture stacks' own builds then warm the
# engine's cache while the compiler finishes. The closing table says how long each phase took;
# `build` counts only the wait for the compiler after the other phases.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/phases.sh
. ci/phases.sh
phases_begin test
build_log=/tmp/stackcheck-test-build.log
compile "$build_log" cargo nextest run --no-run "$@"
engine() { bash ci/engine.sh; }
images() { bash ci/images.sh; }
build() {
  local log=/tmp/stackcheck-warm-builds.log warm status=0
  bash ci/warm-builds.sh >"$log" 2>&1 & warm=$!
  wait_compiler "$build_log" || status=$?
  wait "$warm" || true
  cat "$log"
  return "$status"
}
tests() { cargo nextest run --no-fail-fast "$@"; }
phase engine
phase images
phase build
phase tests "$@"

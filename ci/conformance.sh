#!/usr/bin/env bash
# The main job: from a fresh machine, brings up an engine, builds the offline images and runs the
# conformance suites against the fixture stacks, writing JUnit to target/stackcheck.xml, the JSON
# report to target/stackcheck.json, a Markdown summary to target/stackcheck.md, the HTML report to
# target/stackcheck.html and every service's log to target/stackcheck-logs/<suite>/<service>.log.
#
# What does not depend on each other overlaps: the harness compiles (the cores) while the engine
# installs and the offline images build (the network and the disk), and the fixture stacks' own
# builds then warm the engine's cache while the compiler finishes. The closing table says how
# long each phase took; `build` counts only the wait for the compiler after the other phases.
#
# The harness is built with the dev profile, the build the test command (ci/test.sh) makes too:
# its dependencies are optimised (`opt-level = 1`), and a harness that mostly waits on the engine
# gains nothing from a release build that takes twice as long from cold (docs/benchmarks.md).
# STACKCHECK_PROFILE=release builds it as a release instead.
#
# Usage: ci/conformance.sh [SUITE...] [RUN FLAGS...]
#   SUITE: suite files or folders of them (default: suites/); the offline images and the cache
#   warm-up cover only the stacks those suites run. The flags go to `stackcheck run`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/phases.sh
. ci/phases.sh
phases_begin main
profile=${STACKCHECK_PROFILE:-dev}
bin=target/debug/stackcheck
[ "$profile" = dev ] || bin=target/$profile/stackcheck
build_log=/tmp/stackcheck-main-build.log
suites=()
while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do suites+=("$1"); shift; done
[ ${#suites[@]} -gt 0 ] || suites=(suites/)
compile "$build_log" cargo build --profile "$profile" -q -p stackcheck
engine() { bash ci/engine.sh; }
images() { bash ci/images.sh --suites "${suites[@]}"; }
build() {
  local warm=/tmp/stackcheck-warm-builds.log status=0
  bash ci/warm-builds.sh --suites "${suites[@]}" >"$warm" 2>&1 & local warming=$!
  wait_compiler "$build_log" || status=$?
  wait "$warming" || true
  cat "$warm"
  return "$status"
}
suites() {
  "$bin" run "${suites[@]}" --junit target/stackcheck.xml \
    --json target/stackcheck.json --summary target/stackcheck.md \
    --html target/stackcheck.html --logs-dir target/stackcheck-logs "$@"
}
phase engine
phase images
phase build
phase suites "$@"

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
set -euo pipefail
cd "$(dirname "$0")/.."
phases=()
phase() {
  local t0=$SECONDS status=0 note=""
  "$@" || status=$?
  [ "$status" = 0 ] || note=" (exit $status)"
  phases+=("$(printf '%-8s %5d s%s' "$1" $((SECONDS - t0)) "$note")")
  return "$status"
}
report() { printf '[main] phases (%d s in all):\n' "$SECONDS"; printf '[main]   %s\n' "${phases[@]}"; }
compiler=
# A phase that fails ends the job: the compiler must not outlive it.
trap 'report; [ -z "$compiler" ] || kill "$compiler" 2>/dev/null || true' EXIT

# The compiler starts first, on its own: it needs neither the engine nor the images.
build_log=/tmp/stackcheck-main-build.log
profile=${STACKCHECK_PROFILE:-dev}
bin=target/debug/stackcheck
[ "$profile" = dev ] || bin=target/$profile/stackcheck
cargo build --profile "$profile" -q -p stackcheck >"$build_log" 2>&1 & compiler=$!
engine() { bash ci/engine.sh; }
images() { bash ci/images.sh; }
build() {
  local warm=/tmp/stackcheck-warm-builds.log status=0
  bash ci/warm-builds.sh >"$warm" 2>&1 & local warming=$!
  wait "$compiler" || status=$?
  compiler=
  cat "$build_log"
  wait "$warming" || true
  cat "$warm"
  return "$status"
}
suites() {
  "$bin" run suites/ --junit target/stackcheck.xml \
    --json target/stackcheck.json --summary target/stackcheck.md \
    --html target/stackcheck.html --logs-dir target/stackcheck-logs "$@"
}
phase engine
phase images
phase build
phase suites "$@"

#!/usr/bin/env bash
# The main job: from a fresh machine, brings up an engine, builds the offline images and runs the
# conformance suites against the fixture stacks, writing JUnit to target/stackcheck.xml, the JSON
# report to target/stackcheck.json, a Markdown summary to target/stackcheck.md and every service's
# log to target/stackcheck-logs/<suite>/<service>.log. The fixture stacks' own builds warm the
# engine's cache while the compiler has the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/engine.sh
bash ci/images.sh
bash ci/warm-builds.sh >/tmp/stackcheck-warm-builds.log 2>&1 & warm=$!
cargo build --release -q -p stackcheck
wait "$warm" || true
cat /tmp/stackcheck-warm-builds.log
exec target/release/stackcheck run suites/ --junit target/stackcheck.xml \
  --json target/stackcheck.json --summary target/stackcheck.md \
  --logs-dir target/stackcheck-logs "$@"

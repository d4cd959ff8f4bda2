#!/usr/bin/env bash
# The main job: from a fresh machine, brings up an engine, builds the offline images and runs the
# conformance suites against the fixture stacks, writing JUnit to target/stackcheck.xml, the JSON
# report to target/stackcheck.json, a Markdown summary to target/stackcheck.md and every service's
# log to target/stackcheck-logs/<suite>/<service>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/engine.sh
bash ci/images.sh
cargo build --release -q -p stackcheck
exec target/release/stackcheck run suites/ --junit target/stackcheck.xml \
  --json target/stackcheck.json --summary target/stackcheck.md \
  --logs-dir target/stackcheck-logs "$@"

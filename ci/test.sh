#!/usr/bin/env bash
# The test command: from a fresh machine, brings up an engine, builds the offline images and runs
# every test (unit, CLI, broken-variant proofs and the conformance suites) with cargo nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/engine.sh
bash ci/images.sh
cargo nextest run --no-fail-fast "$@"

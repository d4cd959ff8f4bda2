#!/usr/bin/env bash
# Fills the engine's BuildKit cache with the fixture stacks' own builds (apt and pip layers), so
# that the suites and tests build them as cache hits instead of cold, side by side, against a
# budget that also covers their bring-up. The built tags are removed again (the cache stays:
# BuildKit keeps it apart from images), so every run still builds and proves its own images.
# Idempotent; a warm engine takes seconds. Run it beside the compiler: it needs the network and
# the engine, the compiler needs the cores.
# Usage: ci/warm-builds.sh [--suites PATH...]   (only the fixture stacks those suites name)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[warm] %s\n' "$*"; }
die() { printf '[warm] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=ci/lib.sh
. ci/lib.sh
docker info >/dev/null 2>&1 || die "no Docker engine answers: run ci/engine.sh first"

# compose file [env file]: the fixture stacks that build images.
stacks=(
  "fixtures/mt5/docker-compose.prod.yml fixtures/mt5/.env.example"
  "fixtures/peak-trade/docker/compose.yml"
  "fixtures/peak-trade/docker/docker-compose.obs.yml"
  "fixtures/algo-trade/docker-compose.yml fixtures/algo-trade/.env.docker"
  "fixtures/keeper/docker-compose.yml fixtures/keeper/.env.example"
  "fixtures/features/docker-compose.yml"
  "fixtures/shared-image/docker-compose.yml"
)
selected=0 wanted=
if [ "${1:-}" = --suites ]; then shift; selected=1 wanted=$(fixture_dirs_of_suites "$@"); fi
start=$SECONDS
for entry in "${stacks[@]}"; do
  read -r file env <<<"$entry"
  if [ "$selected" = 1 ]; then
    dir=${file#fixtures/}; dir=${dir%%/*}
    grep -qxF "$dir" <<<"$wanted" || continue
  fi
  args=(-p stackcheck-warm -f "$file")
  [ -n "${env:-}" ] && args+=(--env-file "$env")
  t0=$SECONDS
  if ! docker compose "${args[@]}" build -q >/tmp/stackcheck-warm.log 2>&1; then
    # A cold cache is slower, not wrong: the runs build it themselves and say why if they cannot.
    log "building $file failed (the runs will build it cold):"; tail -n 5 /tmp/stackcheck-warm.log
    continue
  fi
  # Only the tags of what it built go (never a stand-in a service merely runs): `--no-prune`
  # keeps the layers, and BuildKit's cache is kept apart from images anyway.
  built=$(docker compose "${args[@]}" config --format json 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin)
for name, s in m.get("services", {}).items():
    if "build" in s:
        print(s.get("image") or "%s-%s" % (m["name"], name))')
  for image in $built; do docker image rm --no-prune "$image" >/dev/null 2>&1 || true; done
  log "$file: $((SECONDS - t0)) s"
done
log "done in $((SECONDS - start)) s"

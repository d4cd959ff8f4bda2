#!/usr/bin/env bash
# A second Docker engine on this machine that a client sees as remote, for tests of what
# stackcheck proves on an engine that is not local: its own network namespace (so its bridge and
# iptables rules never touch the main engine's), reached over a veth pair at tcp://10.250.0.2:2375
# (an address of this machine, made here, nothing outside), and `"userland-proxy": false`, so
# published ports are iptables DNAT alone, with no docker-proxy accepting on their behalf.
#
#   bash ci/remote-engine.sh [start]   starts it (idempotent) and prints its DOCKER_HOST
#   bash ci/remote-engine.sh stop      stops it and removes its namespace (its images stay cached)
#
# Needs root, `ip` and `nsenter`, and the dockerd that `ci/engine.sh` installs.
set -euo pipefail

NS=sc-remote
ADDR=10.250.0.2
HOST_ADDR=10.250.0.1
DATA=/var/lib/sc-remote
RUN=/run/sc-remote
DOCKER_AT="tcp://$ADDR:2375"

log() { printf '[remote-engine] %s\n' "$*" >&2; }
die() { printf '[remote-engine] ERROR: %s\n' "$*" >&2; exit 1; }
answers() { DOCKER_HOST="$DOCKER_AT" timeout 5 docker info >/dev/null 2>&1; }

stop() {
  if [ -f "$RUN/dockerd.pid" ]; then
    pid=$(cat "$RUN/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      [ "$SECONDS" -lt "$deadline" ] || { kill -9 "$pid" 2>/dev/null || true; break; }
      sleep 0.2
    done
    rm -f "$RUN/dockerd.pid"
  fi
  # The veth pair goes with the namespace.
  ip netns del "$NS" 2>/dev/null || true
}

case "${1:-start}" in
  stop) stop; log "stopped"; exit 0 ;;
  start) ;;
  *) die "usage: $0 [start|stop]" ;;
esac

if answers; then
  echo "$DOCKER_AT"
  exit 0
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run bash ci/engine.sh first)"
# A daemon left from an earlier start that no longer answers: start over.
stop

ip netns add "$NS"
ip link add sc-remote-h type veth peer name sc-remote-r
ip link set sc-remote-r netns "$NS"
ip addr add "$HOST_ADDR/30" dev sc-remote-h
ip link set sc-remote-h up
ip -n "$NS" addr add "$ADDR/30" dev sc-remote-r
ip -n "$NS" link set sc-remote-r up
ip -n "$NS" link set lo up

mkdir -p "$DATA" "$RUN/exec"
printf '{ "userland-proxy": false }\n' > "$RUN/daemon.json"
log "starting dockerd in namespace $NS at $DOCKER_AT (log: $RUN/dockerd.log)"
# nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup hierarchy dockerd needs. From /,
# as ci/engine.sh starts its daemons: not from a checkout that may be removed while it runs.
cd /
nohup nsenter --net="/run/netns/$NS" dockerd \
  --config-file "$RUN/daemon.json" \
  --data-root "$DATA" \
  --exec-root "$RUN/exec" \
  --pidfile "$RUN/dockerd.pid" \
  --cgroup-parent sc-remote \
  -H "$DOCKER_AT" -H "unix://$RUN/docker.sock" \
  >"$RUN/dockerd.log" 2>&1 &

deadline=$((SECONDS + 60))
until answers; do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$RUN/dockerd.log" >&2; die "the second dockerd did not answer within 60 s"; }
  sleep 0.5
done
log "up: $(DOCKER_HOST="$DOCKER_AT" docker version --format '{{.Server.Version}}'), userland-proxy off"
echo "$DOCKER_AT"

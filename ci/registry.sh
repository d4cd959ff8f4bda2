#!/usr/bin/env bash
# A real registry on this machine's loopback for the pull tests: Debian's docker-registry
# (Distribution 2.8) with htpasswd basic auth. Docker trusts registries on 127.0.0.0/8 over plain
# HTTP, so no certificate is needed.
#
#   bash ci/registry.sh start DIR PORT USER PASSWORD   installs what is missing, starts it in DIR
#   bash ci/registry.sh stop DIR                       stops it
#
# The password is read from the argument and written only as a bcrypt hash.
set -euo pipefail

log() { printf '[registry] %s\n' "$*" >&2; }
die() { printf '[registry] ERROR: %s\n' "$*" >&2; exit 1; }

stop() {
  local dir=$1
  [ -f "$dir/registry.pid" ] || return 0
  local pid
  pid=$(cat "$dir/registry.pid")
  kill "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { kill -9 "$pid" 2>/dev/null || true; break; }
    sleep 0.1
  done
  rm -f "$dir/registry.pid"
}

case "${1:-}" in
  stop) stop "${2:?usage: $0 stop DIR}"; exit 0 ;;
  start) ;;
  *) die "usage: $0 start DIR PORT USER PASSWORD | stop DIR" ;;
esac
dir=${2:?DIR}; port=${3:?PORT}; user=${4:?USER}; password=${5:?PASSWORD}

. "$(dirname "$0")/lib.sh"
install_once 'command -v docker-registry && command -v htpasswd' docker-registry apache2-utils

mkdir -p "$dir/data"
stop "$dir"
htpasswd -Bbn "$user" "$password" > "$dir/htpasswd"
cat > "$dir/config.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $dir/data }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$port
auth:
  htpasswd: { realm: stackcheck-tests, path: $dir/htpasswd }
EOF
nohup docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
echo $! > "$dir/registry.pid"
deadline=$((SECONDS + 20))
# 401 without credentials: it is up, and asks for them.
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)" = 401 ]; do
  [ "$SECONDS" -lt "$deadline" ] || { cat "$dir/registry.log" >&2; die "the registry did not answer on 127.0.0.1:$port within 20 s"; }
  sleep 0.2
done
log "up on 127.0.0.1:$port (htpasswd auth)"

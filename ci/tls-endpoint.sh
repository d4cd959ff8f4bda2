#!/usr/bin/env bash
# A TLS endpoint for this machine's engine, as GitLab's dind service offers one (tcp://…:2376 with
# client certificates): a server on a loopback port verifies the client's certificate against a
# test CA and forwards to the engine's unix socket. The server is stunnel, or socat's
# openssl-listen, which fails every resumed session once it verifies clients ("session id context
# uninitialized"): the docker CLI never resumes one, and neither may stackcheck.
#
#   bash ci/tls-endpoint.sh start DIR PORT [stunnel|socat]   installs the server if missing, makes
#                                                           the test PKI, starts it (stunnel if unsaid)
#   bash ci/tls-endpoint.sh stop DIR                        stops it
#
# DIR/client holds what a client needs (ca.pem, cert.pem, key.pem: DOCKER_CERT_PATH);
# DIR/wrong-ca the same client certificate with a CA that did not sign the server's.
set -euo pipefail

log() { printf '[tls-endpoint] %s\n' "$*" >&2; }
die() { printf '[tls-endpoint] ERROR: %s\n' "$*" >&2; exit 1; }

stop() {
  local dir=$1 pid
  for pid in "$dir/stunnel.pid" "$dir/socat.pid"; do
    [ -f "$pid" ] || continue
    kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
}

case "${1:-}" in
  stop) stop "${2:?usage: $0 stop DIR}"; exit 0 ;;
  start) ;;
  *) die "usage: $0 start DIR PORT | stop DIR" ;;
esac
dir=$(realpath -m "${2:?DIR}"); port=${3:?PORT}; server=${4:-stunnel}

. "$(dirname "$0")/lib.sh"
case "$server" in
  stunnel) install_once 'command -v stunnel4' stunnel4 ;;
  socat) install_once 'command -v socat' socat ;;
  *) die "unknown server $server (stunnel or socat)" ;;
esac

mkdir -p "$dir/pki" "$dir/client" "$dir/wrong-ca"
cd "$dir/pki"
ca() { # NAME: a self-signed CA
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stackcheck test $1" \
    -keyout "$1-key.pem" -out "$1.pem" 2>/dev/null
}
signed() { # NAME EXT: a certificate signed by the test CA
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
ca ca
ca other
signed server "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
signed client "extendedKeyUsage=clientAuth"
cp ca.pem ../client/ca.pem
cp other.pem ../wrong-ca/ca.pem
for d in client wrong-ca; do
  cp client.pem "../$d/cert.pem"; cp client-key.pem "../$d/key.pem"
done
chmod 600 ../*/key.pem

stop "$dir"
rm -f "$dir/stunnel.log" "$dir/socat.log"
start_socat() {
  # In a session of its own, from /, holding none of the caller's pipes: it outlives the script
  # and the caller's process group, and its pid is the one written.
  (cd / && exec setsid socat \
    "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,cert=$dir/pki/server.pem,key=$dir/pki/server-key.pem,cafile=$dir/pki/ca.pem,verify=1" \
    UNIX-CONNECT:/var/run/docker.sock) </dev/null >"$dir/socat.log" 2>&1 &
  echo $! > "$dir/socat.pid"
}
start_stunnel() {
cat > "$dir/stunnel.conf" <<CONF
foreground = no
pid = $dir/stunnel.pid
output = $dir/stunnel.log
[docker]
accept = 127.0.0.1:$port
connect = /var/run/docker.sock
cert = $dir/pki/server.pem
key = $dir/pki/server-key.pem
CAfile = $dir/pki/ca.pem
verifyChain = yes
requireCert = yes
CONF
stunnel4 "$dir/stunnel.conf" || { cat "$dir/stunnel.log" >&2; die "stunnel did not start"; }
}
"start_$server"
deadline=$((SECONDS + 20))
until DOCKER_HOST="tcp://127.0.0.1:$port" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$dir/client" \
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || { cat "$dir/$server.log" >&2; die "no engine answered through tcp://127.0.0.1:$port within 20 s"; }
  sleep 0.2
done
log "$server up on tcp://127.0.0.1:$port (TLS, client certificates from $dir/client)"

#!/usr/bin/env bash
# An SSH endpoint for this machine's engine, as teams point DOCKER_HOST at ssh://builder: Debian's
# openssh-server on a loopback port, key authentication only, and an ssh client alias
# `sc-ssh-PORT` (a file in /etc/ssh/ssh_config.d: its own key and known_hosts, strict host key
# checking) that the docker CLI, compose and stackcheck all use as DOCKER_HOST=ssh://sc-ssh-PORT.
# Over it, each connection runs `docker system dial-stdio` on the "remote" side.
#
#   bash ci/ssh-endpoint.sh start DIR PORT   installs what is missing, starts sshd, writes the alias
#   bash ci/ssh-endpoint.sh stop DIR PORT    stops it and removes the alias
set -euo pipefail

log() { printf '[ssh-endpoint] %s\n' "$*" >&2; }
die() { printf '[ssh-endpoint] ERROR: %s\n' "$*" >&2; exit 1; }

cmd=${1:-}; dir=$(realpath -m "${2:?DIR}"); port=${3:?PORT}
alias_file=/etc/ssh/ssh_config.d/stackcheck-$port.conf

stop() {
  rm -f "$alias_file"
  [ -f "$dir/sshd.pid" ] || return 0
  kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
  rm -f "$dir/sshd.pid"
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) die "usage: $0 start DIR PORT | stop DIR PORT" ;;
esac

. "$(dirname "$0")/lib.sh"
# No init system here: the package's own sshd is not started, only ours.
install_once '[ -x /usr/sbin/sshd ] && command -v ssh' openssh-server openssh-client

mkdir -p "$dir" /run/sshd
stop
rm -f "$dir/host_key" "$dir/host_key.pub" "$dir/client_key" "$dir/client_key.pub"
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" > "$dir/known_hosts"
cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
MaxSessions 100
MaxStartups 100:30:200
CONF
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || { cat "$dir/sshd.log" >&2; die "sshd did not start"; }
cat > "$alias_file" <<CONF
Host sc-ssh-$port
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
CONF
deadline=$((SECONDS + 20))
until DOCKER_HOST="ssh://sc-ssh-$port" docker version --format '{{.Server.Version}}' >/dev/null 2>"$dir/client.log"; do
  [ "$SECONDS" -lt "$deadline" ] || { cat "$dir/client.log" "$dir/sshd.log" >&2; die "no engine answered through ssh://sc-ssh-$port within 20 s"; }
  sleep 0.3
done
log "up as ssh://sc-ssh-$port (sshd on 127.0.0.1:$port, key authentication)"

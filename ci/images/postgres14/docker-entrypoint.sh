#!/bin/bash
# Upstream-compatible subset: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB (or their `_FILE`
# forms, as with compose `secrets:`), POSTGRES_HOST_AUTH_METHOD=trust, /docker-entrypoint-initdb.d.
set -euo pipefail
# VAR_FILE names a file holding VAR's value (upstream's file_env); both set is an error there too.
for var in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB; do
  file_var="${var}_FILE"
  if [ -n "${!file_var:-}" ]; then
    [ -z "${!var:-}" ] || { echo "both $var and $file_var are set (but are exclusive)" >&2; exit 1; }
    export "$var"="$(< "${!file_var}")"
    unset "$file_var"
  fi
done
if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec gosu postgres "$BASH_SOURCE" "$@"
fi
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ "$auth" != trust ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (as in the upstream image)}"
  fi
  user=${POSTGRES_USER:-postgres}; db=${POSTGRES_DB:-$user}
  pwfile=$(mktemp); printf '%s' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  pw=(); [ -z "${POSTGRES_PASSWORD:-}" ] || pw=(--pwfile="$pwfile")
  initdb -D "$PGDATA" -U "$user" "${pw[@]}" --auth-local=trust --auth-host=scram-sha-256 >/dev/null; rm -f "$pwfile"
  printf "host all all all %s\n" "$auth" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$db" != postgres ]; then psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -qc "CREATE DATABASE \"$db\""; fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) . "$f" ;;
      *.sql) psql -v ON_ERROR_STOP=1 -U "$user" -d "$db" -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi
if [ "${1:-}" = postgres ]; then
  shift; exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"

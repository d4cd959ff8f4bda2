#!/bin/bash
# As the upstream image: `server -dev` listens on VAULT_DEV_LISTEN_ADDRESS (default 0.0.0.0:8200)
# with VAULT_DEV_ROOT_TOKEN_ID as the root token.
set -euo pipefail
if [ "${1:-}" = server ]; then
  shift
  args=()
  if [[ " $* " == *" -dev "* ]]; then
    args+=("-dev-listen-address=${VAULT_DEV_LISTEN_ADDRESS:-0.0.0.0:8200}")
    [ -n "${VAULT_DEV_ROOT_TOKEN_ID:-}" ] && args+=("-dev-root-token-id=$VAULT_DEV_ROOT_TOKEN_ID")
  fi
  exec bao server "$@" "${args[@]}"
fi
exec "$@"

#!/bin/sh
# As upstream: without a config file, turn protected mode off so other containers can connect.
set -e
if [ "$1" = redis-server ]; then
  case "$2" in *.conf) ;; *) shift; set -- redis-server --protected-mode no "$@" ;; esac
  if [ "$(id -u)" = 0 ]; then chown -R redis:redis /data 2>/dev/null || true; exec gosu redis "$@"; fi
fi
exec "$@"

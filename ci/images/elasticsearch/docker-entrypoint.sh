#!/bin/bash
# Bash, as upstream's: dash would drop the dotted settings (`xpack.security.enabled`) from the
# environment. As upstream's: `eswrapper` (the default CMD), nothing, or flags start the server; any other
# command runs as given (e.g. `command: [bash, -c, "..."]`).
if [ "$#" -eq 0 ] || [ "$1" = eswrapper ] || [ "${1#-}" != "$1" ]; then
  [ "${1:-}" = eswrapper ] && shift
  exec python3 -u /usr/share/elasticsearch/es_front.py "$@"
fi
exec "$@"

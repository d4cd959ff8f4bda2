#!/bin/bash
# Upstream's entrypoint name; here it starts the stand-in.
exec python3 -u /usr/share/grafana/server.py "$@"

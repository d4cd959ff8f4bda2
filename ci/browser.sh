#!/usr/bin/env bash
# The browser the HTML report's tests render it in: Debian's headless Chromium, installed once.
# Prints its path.
set -euo pipefail
log() { echo "[browser] $*" >&2; }
die() { echo "[browser] error: $*" >&2; exit 1; }
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
install_once 'command -v chromium' chromium
command -v chromium

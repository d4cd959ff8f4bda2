# Shared by the scripts that start test endpoints (registry.sh, tls-endpoint.sh, ssh-endpoint.sh),
# by engine.sh for Podman and by images.sh and warm-builds.sh for the suites they serve:
# sourced after each defines `log` and `die`.

# install_once CHECK PACKAGE...: runs `apt-get install PACKAGE...` unless CHECK (a command) already
# succeeds. Tests start endpoints side by side: one installs, the others wait for it under a lock
# (dpkg's own lock would fail them instead).
install_once() {
  local check=$1; shift
  eval "$check" >/dev/null 2>&1 && return 0
  exec 9>/tmp/stackcheck-apt.lock
  flock -w 600 9 || die "waited 600 s for another apt-get install"
  if ! eval "$check" >/dev/null 2>&1; then
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
      || die "installing $* failed"
  fi
  exec 9>&-
}

# fixture_dirs_of_suites PATH...: the fixture folders (`mt5`, `peak-trade`, ...) the suites name,
# one per line. A suite names its compose files by path (`compose: [../fixtures/mt5/...]`), so
# the folders it names are the stacks it runs; a folder of suites counts every suite in it.
fixture_dirs_of_suites() {
  local path
  for path in "$@"; do
    [ -e "$path" ] || die "no suite at $path"
    { if [ -d "$path" ]; then cat "$path"/*.y*ml 2>/dev/null || true; else cat "$path"; fi; } \
      | grep -o 'fixtures/[A-Za-z0-9_-]*' || true
  done | sed 's#^fixtures/##' | sort -u
}

# The two jobs' shared skeleton (ci/conformance.sh, ci/test.sh), sourced after `cd` to the
# checkout: each phase timed into a closing table, and a compiler started in the background
# before the engine and the images, waited for in the `build` phase.
#   phases_begin TAG            the table's tag ([main], [test]); prints it on exit, and
#                               the free disk up front (a full disk kills the linker)
#   compile LOG CMD...          starts CMD in the background, its output in LOG
#   wait_compiler LOG           waits for it; prints the log (whole if it failed); its status
#   phase NAME [ARGS...]        runs the function NAME, timing it; passes its status on
phases=()
compiler=
phases_begin() {
  phases_tag=$1
  # A phase that fails ends the job: the compiler must not outlive it.
  trap 'phases_report; [ -z "$compiler" ] || kill "$compiler" 2>/dev/null || true' EXIT
  disk_room
}
# A debug build of every test takes about 3 GB under target/ and the offline images about 6 GB
# under the engine's root. When the disk fills, the linker dies with SIGBUS on its mmapped output
# and says nothing of space, so the free room is said before anything starts.
disk_room() {
  local free_gb
  free_gb=$(df -Pk . | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
  printf '[%s] free disk: %s GB\n' "$phases_tag" "$free_gb"
  if [ "$free_gb" -lt 10 ]; then
    printf '[%s] warning: under 10 GB free; the build needs about 3 GB and the images about 6 GB.\n' "$phases_tag"
    printf '[%s]   A linker that ends with "signal 7 [Bus error]" ran out of disk.\n' "$phases_tag"
  fi
}
phases_report() {
  local p
  printf '[%s] phases (%d s in all):\n' "$phases_tag" "$SECONDS"
  for p in "${phases[@]}"; do printf '[%s]   %s\n' "$phases_tag" "$p"; done
}
compile() {
  local log=$1; shift
  "$@" >"$log" 2>&1 & compiler=$!
}
wait_compiler() {
  local status=0
  wait "$compiler" || status=$?
  compiler=
  if [ "$status" = 0 ]; then tail -n 3 "$1"; else cat "$1"; fi
  return "$status"
}
# Inside `phase` errexit is off (an `||` list): each phase returns its own status.
phase() {
  local t0=$SECONDS status=0 note=""
  "$@" || status=$?
  [ "$status" = 0 ] || note=" (exit $status)"
  phases+=("$(printf '%-8s %5d s%s' "$1" $((SECONDS - t0)) "$note")")
  return "$status"
}

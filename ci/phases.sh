# The two jobs' shared skeleton (ci/conformance.sh, ci/test.sh), sourced after `cd` to the
# checkout: each phase timed into a closing table, and a compiler started in the background
# before the engine and the images, waited for in the `build` phase.
#   phases_begin TAG            the table's tag ([main], [test]); prints it on exit
#   compile LOG CMD...          starts CMD in the background, its output in LOG
#   wait_compiler LOG           waits for it; prints the log (whole if it failed); its status
#   phase NAME [ARGS...]        runs the function NAME, timing it; passes its status on
phases=()
compiler=
phases_begin() {
  phases_tag=$1
  # A phase that fails ends the job: the compiler must not outlive it.
  trap 'phases_report; [ -z "$compiler" ] || kill "$compiler" 2>/dev/null || true' EXIT
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

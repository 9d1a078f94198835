#!/usr/bin/env bash
# gotest.sh FLAGS... -- PACKAGES...
#
# Runs `go test FLAGS` on PACKAGES in two passes: first every package that
# leaves the shared broker alone, in parallel as go test does; then, alone,
# the packages whose tests restart the broker (scripts/kafka.sh restart,
# by default the e2e package; override with WEIR_SERIAL_PKGS, a regexp on
# import paths). A restart drops the connections of every test running at
# that moment, and a test in another package must not fail for it.
# Both passes run; the exit code is non-zero if either failed.
set -uo pipefail

GO="${GO:-go}"
serial_re="${WEIR_SERIAL_PKGS:-/e2e$}"
flags=()
while [[ $# -gt 0 && "$1" != "--" ]]; do flags+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ $# -gt 0 ]] || set -- ./...

pkgs="$("$GO" list "$@")" || exit 2
parallel=() serial=()
while IFS= read -r p; do
  [[ -z "$p" ]] && continue
  if [[ "$p" =~ $serial_re ]]; then serial+=("$p"); else parallel+=("$p"); fi
done <<<"$pkgs"

rc=0
if ((${#parallel[@]})); then
  echo "gotest.sh: go test ${flags[*]} (${#parallel[@]} packages)"
  "$GO" test "${flags[@]}" "${parallel[@]}" || rc=$?
fi
if ((${#serial[@]})); then
  echo "gotest.sh: go test ${flags[*]} ${serial[*]} (alone: its tests restart the broker)"
  "$GO" test "${flags[@]}" "${serial[@]}" || rc=$?
fi
exit "$rc"

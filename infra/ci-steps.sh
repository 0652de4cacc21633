#!/usr/bin/env bash
# Runs the `make ci` steps in order, stopping at the first failure, and prints each step's wall
# and CPU seconds (user + system of everything the step ran, from /usr/bin/time) at the end,
# pass or fail, so that a cold run shows where its time goes.
# Usage: infra/ci-steps.sh MAKE STEP...
set -euo pipefail
make=${1:?usage: infra/ci-steps.sh MAKE STEP...}
shift
report=$(mktemp)
summary() {
  echo "make ci: seconds per step (wall, CPU = user+system)"
  awk 'NF == 4 { w += $2; c += $3 + $4; printf "  %-16s %6.0f %6.0f\n", $1, $2, $3 + $4 }
       END { printf "  %-16s %6.0f %6.0f\n", "total", w, c }' "$report"
  rm -f "$report"
}
trap summary EXIT
timer=(/usr/bin/time -a -o "$report" -f)
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is needed for the step timings (Debian: apt-get install time)" >&2; exit 2; }
for step in "$@"; do
  if ! "${timer[@]}" "$step %e %U %S" "$make" --no-print-directory "$step"; then
    echo "make ci: $step FAILED" >&2
    exit 1
  fi
done
echo "make ci: all checks passed"

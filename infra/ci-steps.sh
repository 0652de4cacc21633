#!/usr/bin/env bash
# Runs the `make ci` steps in order, stopping at the first failure, and prints each step's wall
# and CPU seconds (user + system of everything the step ran, from /usr/bin/time) at the end,
# pass or fail, so that a cold run shows where its time goes.
#
# A step may be a group that runs at the same time as others: `a,b+c` runs `a` then `b`, and
# alongside them `c`. Only steps that leave a core idle belong in one (the Python checks, which
# use one core, beside the cargo-deny build; not two cargo builds, which each keep both cores
# busy), never the test suites (their timeouts assume the machine to themselves); each one's
# output is printed whole when the group ends, in the order named, and the group fails if any
# of its steps failed.
# Usage: infra/ci-steps.sh MAKE STEP...
set -euo pipefail
make=${1:?usage: infra/ci-steps.sh MAKE STEP...}
shift
report=$(mktemp)
logs=$(mktemp -d)
summary() {
  echo "make ci: seconds per step (wall, CPU = user+system; steps of a group overlap)"
  awk 'NF == 4 { w += $2; c += $3 + $4; printf "  %-16s %6.0f %6.0f\n", $1, $2, $3 + $4 }
       END { printf "  %-16s %6.0f %6.0f\n", "sum", w, c }' "$report"
  echo "  wall clock       $(( SECONDS - started ))"
  rm -rf "$report" "$logs"
}
started=$SECONDS
trap summary EXIT
timer=(/usr/bin/time -a -o "$report" -f)
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is needed for the step timings (Debian: apt-get install time)" >&2; exit 2; }

# One step, timed.
run() {
  "${timer[@]}" "$1 %e %U %S" "$make" --no-print-directory "$1"
}

# The steps of one member of a group (`a,b`), in order, stopping at the first failure.
sequence() {
  local step
  for step in ${1//,/ }; do
    run "$step" || { echo "make ci: $step FAILED"; return 1; }
  done
}

for group in "$@"; do
  if [[ $group != *+* ]]; then
    run "$group" || { echo "make ci: $group FAILED" >&2; exit 1; }
    continue
  fi
  pids=() members=()
  for member in ${group//+/ }; do
    sequence "$member" > "$logs/$member.log" 2>&1 &
    pids+=("$!") members+=("$member")
  done
  failed=0
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed=1
  done
  for member in "${members[@]}"; do
    echo "=== make ci: ${member//,/, }"
    cat "$logs/$member.log"
  done
  if (( failed )); then
    echo "make ci: $group FAILED" >&2
    exit 1
  fi
done
echo "make ci: all checks passed"

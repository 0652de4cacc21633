#!/usr/bin/env bash
# Runs one fuzz target for SECONDS from its seed corpus (fuzz/seeds/TARGET, or fuzz/seeds/identity
# for the normalize_* targets; read only; what the run finds goes to a scratch directory, or to
# fuzz/corpus/TARGET with KEEP_CORPUS=1) and prints one summary line: executions, seconds, executions per second. A failed property stops the run
# with the input under fuzz/artifacts/TARGET/ and a non-zero exit.
# Usage: fuzz/run.sh TARGET SECONDS   (from the repository root; CARGO_FUZZ overrides the command,
# FUZZ_BUILD_FLAGS adds build flags, e.g. --dev as `make fuzz-smoke` builds)
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}
fuzz=${CARGO_FUZZ:-cargo +nightly fuzz}
if [[ ${KEEP_CORPUS:-0} == 1 ]]; then
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
else
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
fi
# The identity targets (normalize_<profile>) share one seed corpus: identifiers of every field
# in the spellings customers send; the other targets have their own.
seeds=fuzz/seeds/$target
[[ $target == normalize_* ]] && seeds=fuzz/seeds/identity
log=$(mktemp)
status=0
# shellcheck disable=SC2086  # FUZZ_BUILD_FLAGS is a list of flags
$fuzz run -s none ${FUZZ_BUILD_FLAGS:-} "$target" "$corpus" "$seeds" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  >"$log" 2>&1 || status=$?
if [[ $status -ne 0 ]]; then
  tail -n 60 "$log" >&2
  echo "fuzz $target: FAILED (exit $status); the input is under fuzz/artifacts/$target/" >&2
  rm -f "$log"
  exit "$status"
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rm -f "$log"
echo "fuzz $target: ${runs:-?} executions in ${seconds} s ($(( ${runs:-0} / seconds )) exec/s)"

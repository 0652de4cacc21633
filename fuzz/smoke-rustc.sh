#!/usr/bin/env bash
# The rustc wrapper (RUSTC_WRAPPER) of `make fuzz-smoke`'s build: the crates of this repository
# (tracklayer-*, the fuzz targets) are compiled as cargo-fuzz asks, with libFuzzer's coverage
# instrumentation; the dependencies from crates.io without it (the SanitizerCoverage flags
# taken out, everything else kept: `--cfg fuzzing`, debug assertions, overflow checks).
#
# Why: at opt-level 0 (the smoke's `--dev` build, 190 s cold against 496 at opt-level 1)
# instrumented dependencies spend each input in trace-compare callbacks on unoptimised code, and
# the smoke ran 2-6 times fewer inputs. Without them each target runs 0.25-2.6 times what the
# opt-level-1 build did (README § Development). The code the properties are about is ours and
# keeps its coverage; the long runs (`make fuzz`) instrument everything at opt-level 3.
#
# Usage (cargo calls it): smoke-rustc.sh RUSTC ARGS...
set -euo pipefail
rustc=$1
shift
registry=${CARGO_HOME:-$HOME/.cargo}
# A dependency's root source file is under cargo's registry or git checkouts; anything else
# (this repository's crates, `rustc -vV`, `--print cfg`) is compiled unchanged.
dependency=false
for arg in "$@"; do
  case $arg in
    "$registry"/registry/src/*.rs | "$registry"/git/checkouts/*.rs) dependency=true ;;
  esac
done
$dependency || exec "$rustc" "$@"
args=()
for arg in "$@"; do
  case $arg in
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
    *) args+=("$arg") ;;
  esac
done
exec "$rustc" "${args[@]}"

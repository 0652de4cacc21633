#!/usr/bin/env bash
# The rustc wrapper (RUSTC_WRAPPER) of `make fuzz-smoke`'s build: the crates of this repository
# (tracklayer-*, the fuzz targets) are compiled as cargo-fuzz asks, with libFuzzer's coverage
# instrumentation; the dependencies from crates.io without it (the SanitizerCoverage flags
# taken out, everything else kept: `--cfg fuzzing`, debug assertions, overflow checks).
#
# Why: at opt-level 0 (the smoke's `--dev` build, 190 s cold against 496 at opt-level 1)
# instrumented dependencies spend each input in trace-compare callbacks on unoptimised code, and
# the smoke ran 2-6 times fewer inputs. Without them each target runs 0.4-2.6 times what the
# opt-level-1 build did (README § Development). The code the properties are about is ours and
# keeps its coverage; the long runs (`make fuzz`) instrument everything at opt-level 3.
#
# Usage (cargo calls it): smoke-rustc.sh RUSTC ARGS...
set -euo pipefail
rustc=$1
shift
registry=${CARGO_HOME:-$HOME/.cargo}
for arg in "$@"; do
  case $arg in
    *.rs)
      # The crate's root source file: a dependency's is under cargo's registry or git checkouts.
      case $arg in
        "$registry"/registry/src/* | "$registry"/git/checkouts/*) ;;
        *) exec "$rustc" "$@" ;;
      esac
      args=()
      for a in "$@"; do
        case $a in
          -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
          *) args+=("$a") ;;
        esac
      done
      exec "$rustc" "${args[@]}"
      ;;
  esac
done
# No source file (`rustc -vV`, `--print cfg`): unchanged.
exec "$rustc" "$@"

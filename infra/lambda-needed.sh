#!/usr/bin/env bash
# The Lambda bootstraps need no native library beyond the ones the provided.al2023 runtime
# ships with glibc (issue 11: "no new native library is needed at run time"): compares each
# arm64 bootstrap's dynamic dependencies (readelf's NEEDED entries, what `ldd` would resolve;
# `ldd` itself cannot run an arm64 binary here) with the recorded list in
# infra/lambda-needed.txt. A new entry fails with its name; a change that is meant (a glibc
# split, a deliberate new library) updates the list in the same commit.
# Usage: infra/lambda-needed.sh TARGET_DIR NAME...
set -euo pipefail
target=${1:?usage: infra/lambda-needed.sh TARGET_DIR NAME...}
shift
expected="$(dirname "$0")/lambda-needed.txt"
command -v readelf >/dev/null || { echo "error: readelf is needed (Debian: apt-get install binutils)" >&2; exit 2; }
status=0
for name in "$@"; do
  bin="$target/lambda/$name/bootstrap"
  [[ -f "$bin" ]] || { echo "error: $bin was not built" >&2; exit 2; }
  readelf -h "$bin" | grep -q 'AArch64' || { echo "error: $bin is not an arm64 binary" >&2; exit 1; }
  actual=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort)
  if ! diff <(grep -v '^#' "$expected" | sort) <(echo "$actual") > /dev/null; then
    echo "error: $name's bootstrap needs other native libraries than infra/lambda-needed.txt lists:" >&2
    diff -u --label infra/lambda-needed.txt --label "$bin" <(grep -v '^#' "$expected" | sort) <(echo "$actual") | tail -n +3 >&2 || true
    status=1
  else
    echo "$name: needs only $(echo "$actual" | paste -sd ' ')"
  fi
done
exit $status

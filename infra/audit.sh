#!/usr/bin/env bash
# Dependency audit: cargo-deny (advisories, licences, bans, sources; config infra/deny.toml)
# against a RustSec advisory-db snapshot, offline.
#
#   infra/audit.sh               audit Cargo.lock
#   infra/audit.sh --self-test   plant a made-up advisory for a crate in Cargo.lock into a copy
#                                of the snapshot and check that the audit fails on it
#
# Environment: ADVISORY_SNAPSHOT (the snapshot tarball, `rustsec-advisory-db-YYYY-MM-DD.tar.gz`),
# CARGO_DENY (the cargo-deny binary), WORK_DIR (where the snapshot is unpacked; default
# target/audit). Exit status: 0 clean, 1 findings, 2 the audit could not run.
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$project_root"
CARGO_DENY="${CARGO_DENY:-cargo-deny}"
WORK_DIR="${WORK_DIR:-$project_root/target/audit}"
config="$project_root/infra/deny.toml"
# cargo-deny keeps each database in <db-path>/<name>-<hash of its URL>: this is the directory
# for db-urls = ["https://github.com/rustsec/advisory-db"] in infra/deny.toml.
readonly DB_DIR_NAME="advisory-db-3157b0e258782691"

die() { echo "audit: $*" >&2; exit 2; }

[[ -n "${ADVISORY_SNAPSHOT:-}" ]] || die "no RustSec advisory snapshot (rustsec-advisory-db-YYYY-MM-DD.tar.gz) found.
  CI reads it from ../shared/data next to the repository; elsewhere pass its path:
  make audit ADVISORY_SNAPSHOT=/path/to/rustsec-advisory-db-YYYY-MM-DD.tar.gz"
[[ -f "$ADVISORY_SNAPSHOT" ]] || die "the RustSec advisory snapshot $ADVISORY_SNAPSHOT does not exist.
  CI reads it from ../shared/data next to the repository; elsewhere pass its path:
  make audit ADVISORY_SNAPSHOT=/path/to/rustsec-advisory-db-YYYY-MM-DD.tar.gz"
snapshot_date="$(basename "$ADVISORY_SNAPSHOT" | grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}')" \
    || die "cannot read the snapshot date from the name $(basename "$ADVISORY_SNAPSHOT")"
command -v "$CARGO_DENY" >/dev/null || die "cargo-deny not found at $CARGO_DENY (make audit installs it)"

# Unpacks the snapshot into $1/$DB_DIR_NAME as a one-commit git repository dated with the
# snapshot (cargo-deny reads the database's age from its HEAD commit).
unpack() {
    local db="$1/$DB_DIR_NAME"
    rm -rf -- "$db"
    mkdir -p "$db"
    tar -xzf "$ADVISORY_SNAPSHOT" -C "$db" --strip-components=1
    [[ -d "$db/crates" ]] || die "$ADVISORY_SNAPSHOT is not an advisory-db snapshot (no crates/)"
    commit "$db" "snapshot $snapshot_date"
}

commit() {
    (cd "$1" && { [[ -d .git ]] || git init -q; } && git add -A &&
        GIT_AUTHOR_DATE="${snapshot_date}T00:00:00Z" GIT_COMMITTER_DATE="${snapshot_date}T00:00:00Z" \
        git -c user.name=audit -c user.email=audit@tracklayer.invalid -c commit.gpgsign=false \
            commit -qm "$2")
}

deny() {
    TL_ADVISORY_DBS="$1" "$CARGO_DENY" --config "$config" --offline --workspace \
        check --hide-inclusion-graph "${@:2}"
}

# Every advisory exception names its crate, why it does not apply and a review date that has
# not passed.
check_exceptions() {
    python3 - "$config" <<'EOF'
import datetime, re, sys, tomllib
config = tomllib.load(open(sys.argv[1], "rb"))
today = datetime.date.today()
bad = []
for entry in config.get("advisories", {}).get("ignore", []):
    if isinstance(entry, str):
        bad.append(f"{entry}: give a reason (crate, why, review date)")
        continue
    ident, reason = entry.get("id", "?"), entry.get("reason", "")
    m = re.fullmatch(r"crate [\w-]+: .+ \(review (\d{4}-\d{2}-\d{2})\)", reason, re.S)
    if not m:
        bad.append(f"{ident}: reason must read 'crate NAME: why ... (review YYYY-MM-DD)'")
    elif datetime.date.fromisoformat(m.group(1)) < today:
        bad.append(f"{ident}: review date {m.group(1)} has passed; triage it again")
for b in bad:
    print(f"audit: exception {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

if [[ "${1:-}" == "--self-test" ]]; then
    scratch="$(mktemp -d)"
    trap 'rm -rf -- "$scratch"' EXIT
    unpack "$scratch"
    # A made-up advisory against every version of a crate we depend on.
    mkdir -p "$scratch/$DB_DIR_NAME/crates/base64"
    cat >"$scratch/$DB_DIR_NAME/crates/base64/RUSTSEC-2099-0001.md" <<'EOF'
```toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "base64"
date = "2099-01-01"
title = "Planted by infra/audit.sh --self-test"
description = "Not a real advisory."
[versions]
patched = []
```
# Planted by infra/audit.sh --self-test
EOF
    commit "$scratch/$DB_DIR_NAME" "planted advisory"
    if out="$(deny "$scratch" advisories 2>&1)"; then
        echo "$out" >&2
        die "self-test: an advisory against base64 did not fail the audit"
    fi
    grep -q "RUSTSEC-2099-0001" <<<"$out" || { echo "$out" >&2; die "self-test: the finding does not name the advisory"; }
    echo "audit self-test: a planted advisory fails the audit"
    exit 0
fi

mkdir -p "$WORK_DIR"
stamp="$WORK_DIR/$DB_DIR_NAME/.snapshot"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$(basename "$ADVISORY_SNAPSHOT") $snapshot_date" ]]; then
    unpack "$WORK_DIR"
    echo "$(basename "$ADVISORY_SNAPSHOT") $snapshot_date" >"$stamp"
fi
check_exceptions || exit 1
echo "audit: RustSec advisory database snapshot of $snapshot_date ($(basename "$ADVISORY_SNAPSHOT"));" \
    "advisories published after $snapshot_date are NOT covered"
deny "$WORK_DIR" advisories bans licenses sources || exit 1

#!/usr/bin/env bash
# scim2-tester (PyPI, pinned in infra/requirements-test.txt) against /scim/v2 of a live
# `tracklayer serve` with a SCIM token made by the operator CLI (part of `make test`).
# Environment: TRACKLAYER_BIN (default target/debug/tracklayer), PYTHON (default .venv/bin/python).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${TRACKLAYER_BIN:-$ROOT/target/debug/tracklayer}
PY=${PYTHON:-$ROOT/.venv/bin/python}
for tool in "$BIN" "$PY"; do
    [[ -x $tool ]] || { echo "scim: $tool is missing (run 'make tools' and 'cargo build -p tracklayer')" >&2; exit 1; }
done
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    local rc=$?
    [[ $rc -ne 0 && -s $WORK/serve.err ]] && tail -n 30 "$WORK/serve.err" >&2
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" init --json --region eu --data-dir "$WORK/data" >/dev/null
TOKEN=$("$BIN" keys create --data-dir "$WORK/data" --kind scim --name scim2-tester --json \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
BASE=
for _ in $(seq 1 100); do
    BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/serve.out" | head -n1 || true)
    [[ -n $BASE ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "scim: the server did not start" >&2; exit 1; }
    sleep 0.1
done
[[ -n $BASE ]] || { echo "scim: the server printed no address" >&2; exit 1; }
"$PY" "$ROOT/tests/scim/check.py" "$BASE/scim/v2" "$TOKEN"

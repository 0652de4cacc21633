#!/usr/bin/env bash
# schemathesis against the tracking API and the admin API of a live `tracklayer serve` (part
# of `make test`).
#
# Starts target/debug/tracklayer on a free port with a fresh data directory, then runs every
# schemathesis check against /v1/openapi.json (the tracking API, with the write key as Basic
# credentials; first, since pass 2 below may revoke that key), then against
# /admin/v1/openapi.json in three passes, each with its own admin service token, so that no
# destructive operation can end the run early:
#
#   1. every operation except the three that end a key (rotateApiKey, revokeApiKey,
#      deleteApiKey), closeWorkspace and testDestination. The token is a service token, so
#      user operations (removeUser, updateUser on the owner) cannot take it away either.
#   2. the key operations (list, create, rotate, revoke, delete) with a second token. They may
#      revoke that token itself; what follows is then a documented 401, not a failure.
#   3. closeWorkspace, alone and last. It closes only when the body confirms the workspace's
#      id, which a generator cannot know: the field is `confirm` (no response field has that
#      name, pattern or format, so neither captured response values nor inferred links reach
#      it) and the schema's example is not this workspace's id. So every generated request is
#      refused (422 naming `confirm`, 403, 401) and the workspace stays open; the script checks
#      that afterwards with the owner's token, and fails if it was closed. Even if it were,
#      nothing would follow it but that check.
#
# A destination and a tracked event are made first and pinned as the `id` of the operations on
# one destination and on one event trace, so that those reach real objects.
#
# The server allows a million failed authentications a minute: pass 2 revokes its own token,
# and the 401s that follow must not turn into the 429 of the failure limit.
#
# testDestination is left out of both: it sends a real request to whatever URL a generated
# destination names, and this run must reach no host but this machine. The Rust integration
# tests (crates/http/tests/admin.rs) cover it against an in-process egress.
#
# Environment: TRACKLAYER_BIN (default target/debug/tracklayer), SCHEMATHESIS (default
# .venv/bin/schemathesis), PYTHON (default .venv/bin/python), ST_MAX_EXAMPLES (default 40).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${TRACKLAYER_BIN:-$ROOT/target/debug/tracklayer}
ST=${SCHEMATHESIS:-$ROOT/.venv/bin/schemathesis}
PY=${PYTHON:-$ROOT/.venv/bin/python}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-40}
BASE_CONFIG=$ROOT/tests/schemathesis/schemathesis.toml
TRACKING_CONFIG=$ROOT/tests/schemathesis/tracking.toml

for config in "$BASE_CONFIG" "$TRACKING_CONFIG"; do
    [[ -f $config ]] || { echo "schemathesis: $config is missing" >&2; exit 1; }
done
for tool in "$BIN" "$ST" "$PY"; do
    [[ -x $tool ]] || { echo "schemathesis: $tool is missing (run 'make tools' and 'cargo build -p tracklayer')" >&2; exit 1; }
done

WORK=$(mktemp -d)
CONFIG=$WORK/schemathesis.toml
cp "$BASE_CONFIG" "$WORK/base.toml"
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ $rc -ne 0 && -s $WORK/serve.err ]]; then
        echo "schemathesis: failed (exit $rc); the server's last log lines:" >&2
        tail -n 30 "$WORK/serve.err" >&2
    fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

started=$(date +%s)
"$BIN" init --json --region eu --data-dir "$WORK/data" >"$WORK/init.json"
OWNER=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$WORK/init.json")

# --allow-private-egress: the destination hosts used here do not resolve in a sandbox without
# DNS, and the configure-time egress guard would refuse them (it is tested on its own).
"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --allow-private-egress \
    --auth-failure-limit 1000000 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
BASE=
for _ in $(seq 1 100); do
    BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/serve.out" | head -n1 || true)
    [[ -n $BASE ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "schemathesis: the server did not start" >&2; cat "$WORK/serve.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n $BASE ]] || { echo "schemathesis: the server printed no address" >&2; exit 1; }

# An admin service token, created through the API with the owner's token.
service_token() {
    "$PY" - "$BASE" "$OWNER" "$1" <<'PY'
import json, sys, urllib.request
base, owner, name = sys.argv[1:4]
req = urllib.request.Request(
    f"{base}/admin/v1/api-keys",
    data=json.dumps({"kind": "svc", "role": "admin", "name": name}).encode(),
    headers={"Authorization": f"Bearer {owner}", "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.load(r)["secret"])
PY
}

# schemathesis with a config file, an Authorization header and a schema path; then its options.
schemathesis() {
    local config=$1 auth=$2 schema=$3
    shift 3
    (cd "$WORK" && "$ST" --config-file "$config" run "$BASE$schema" \
        --url "$BASE" \
        --header "Authorization: $auth" \
        --checks all \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --seed 4242 \
        --generation-database none \
        --request-timeout 20 \
        --no-color \
        "$@")
}

run_schemathesis() {
    local token=$1
    shift
    schemathesis "$CONFIG" "Bearer $token" /admin/v1/openapi.json "$@"
}

# Real objects for the operations on one destination and on one event, pinned in a config made
# for this run: generated ids would only ever meet 404. (deleteDestination keeps generated ids,
# so that the pinned destination lives through the run.)
"$PY" - "$BASE" "$OWNER" "$WORK" <<'PY'
import base64, json, sqlite3, sys, time, urllib.request
base, owner, work = sys.argv[1:4]
init = json.load(open(f"{work}/init.json"))

def post(path, body, auth):
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

dst = post("/admin/v1/destinations", {"name": "Warehouse", "kind": "webhook",
    "config": {"url": "https://hooks.example.com/tracklayer"},
    "secrets": {"signing_secret": "whsec_" + base64.b64encode(b"schemathesis signing key").decode()}},
    f"Bearer {owner}")["id"]
basic = base64.b64encode(f"{init['write_key']}:".encode()).decode()
post("/v1/track", {"event": "Order Completed", "userId": "schemathesis"}, f"Basic {basic}")
db = sqlite3.connect(f"{work}/data/tracklayer.db")
for _ in range(50):
    row = db.execute("SELECT 'evt_' || lower(hex(event_id)) FROM events LIMIT 1").fetchone()
    if row:
        break
    time.sleep(0.1)
evt = row[0]  # the column holds the id's 16 bytes; the API writes it `evt_` and their hex
base_config = open(f"{work}/base.toml").read()
with open(f"{work}/schemathesis.toml", "w") as f:
    f.write(base_config)
    f.write(f"""
[[operations]]
include-path-regex = "^/admin/v1/destinations/[{{]id[}}]"
exclude-operation-id = "deleteDestination"
parameters = {{ id = "{dst}" }}

[[operations]]
include-operation-id = "getEventTrace"
parameters = {{ id = "{evt}" }}
""")
PY

WRITE_KEY=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["write_key"])' "$WORK/init.json")
tracking_started=$(date +%s)
echo "schemathesis: the tracking API (/v1/openapi.json) with the workspace's write key"
# The settings document authenticates by the key in its path: pinned to the workspace's, as
# the SDK sends it (a generated key would only ever meet 401).
cp "$TRACKING_CONFIG" "$WORK/tracking.toml"
printf '\n[[operations]]\ninclude-operation-id = "segment_settings"\nparameters = { writeKey = "%s" }\n' \
    "$WRITE_KEY" >>"$WORK/tracking.toml"
schemathesis "$WORK/tracking.toml" "Basic $(printf '%s:' "$WRITE_KEY" | base64 -w0)" /v1/openapi.json
echo "schemathesis: the tracking API passed in $(( $(date +%s) - tracking_started )) s"

# The first two tokens are made up front: pass 1 may remove or demote the owner whose token
# makes them.
TOKEN_1=$(service_token 'schemathesis pass 1')
TOKEN_2=$(service_token 'schemathesis pass 2')
KEY_OPS='^(listApiKeys|createApiKey|rotateApiKey|revokeApiKey|deleteApiKey)$'

echo "schemathesis: pass 1 of 3 (all operations but key rotation/revocation, closeWorkspace and testDestination) against $BASE"
run_schemathesis "$TOKEN_1" \
    --exclude-operation-id rotateApiKey \
    --exclude-operation-id revokeApiKey \
    --exclude-operation-id deleteApiKey \
    --exclude-operation-id closeWorkspace \
    --exclude-operation-id testDestination

echo "schemathesis: pass 2 of 3 (API key operations)"
run_schemathesis "$TOKEN_2" \
    --include-operation-id-regex "$KEY_OPS"

# Pass 2 may have revoked every key it could list; the operator CLI makes the third token.
TOKEN_3=$("$BIN" keys create --data-dir "$WORK/data" --kind svc --role admin \
    --name 'schemathesis pass 3' --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

echo "schemathesis: pass 3 of 3 (closeWorkspace)"
run_schemathesis "$TOKEN_3" \
    --include-operation-id closeWorkspace

# Every generated closure was refused: the workspace is open, and pass 3's token still works
# (a closure would have revoked it).
"$PY" - "$BASE" "$WORK" "$TOKEN_3" <<'PY'
import json, sqlite3, sys, urllib.error, urllib.request
base, work, token = sys.argv[1:4]
docs = [json.loads(d) for (d,) in sqlite3.connect(f"{work}/data/tracklayer.db").execute("SELECT doc FROM workspaces")]
closed = [d["id"] for d in docs if d.get("closed_at")]
try:
    with urllib.request.urlopen(urllib.request.Request(f"{base}/admin/v1/workspace",
            headers={"Authorization": f"Bearer {token}"}), timeout=30) as r:
        got = r.status
except urllib.error.HTTPError as e:
    got = e.code
if closed or got != 200:
    sys.exit(f"schemathesis: closeWorkspace closed a workspace without being sent its id "
             f"(closed: {closed}; GET /admin/v1/workspace with pass 3's token: {got})")
print("schemathesis: the workspace is still open after pass 3")
PY

if grep -q -i 'panicked' "$WORK/serve.err"; then
    echo "schemathesis: the server panicked:" >&2
    grep -i -A5 'panicked' "$WORK/serve.err" >&2
    exit 1
fi
echo "schemathesis: passed in $(( $(date +%s) - started )) s"

#!/usr/bin/env python3
"""Re-generate tests/fixtures/sdk/*.json from what the real SDKs actually send.

    <venv>/bin/python tests/sdk/make_fixtures.py        # run from the repo root

Needs: this interpreter has segment-analytics-python (infra/requirements-test.txt),
and `npm ci` was run in tests/sdk/node. Starts tests/sdk/capture_server.py on a
free 127.0.0.1 port, runs both send_events scripts against it with prefix "fx"
and 7 messages (so that every message type appears in one request even for the
Node SDK, which sends its first message alone), and writes one request per file:

    python_batch.json         Python SDK, default options (plain JSON)
    python_batch_gzip.json    Python SDK with --gzip
    node_batch.json           Node SDK, default options (gzip), the request holding messages 1..6
    node_batch_nogzip.json    Node SDK with --no-gzip, the request holding messages 1..6

Shape: {"method", "path", "headers", "gzip", "body"}; the body is the decoded JSON.
The write key is replaced by "WRITE_KEY" (body `writeKey` and the Basic
Authorization header, which becomes base64("WRITE_KEY:")). Content-Length is the
captured (pre-redaction, possibly gzipped) length. Timestamps are those of the run.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SDK = os.path.join(ROOT, "tests", "sdk")
OUT = os.path.join(ROOT, "tests", "fixtures", "sdk")
KEY = "tl_live_us_fixture0001_notARealSecret0123456789"  # pragma: allowlist secret
PREFIX, COUNT = "fx", 7


def redact(record: dict) -> dict:
    headers = {}
    for name, value in record["headers"].items():
        if name.lower() == "authorization" and value.startswith("Basic "):
            decoded = base64.b64decode(value[6:]).decode()
            assert decoded == KEY + ":", decoded
            value = "Basic " + base64.b64encode(b"WRITE_KEY:").decode()
        assert KEY not in value, name
        headers[name] = value
    body = record["body"]
    if "writeKey" in body:
        assert body["writeKey"] == KEY
        body["writeKey"] = "WRITE_KEY"
    assert KEY not in json.dumps(body)
    return {"method": record["method"], "path": record["path"], "headers": headers, "gzip": record["gzip"], "body": body}


def run(cmd: list, cwd: str = ROOT) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout}{res.stderr}")


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cap = os.path.join(tmp, "capture.jsonl")
        server = subprocess.Popen(
            [sys.executable, os.path.join(SDK, "capture_server.py"), "--out", cap],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            port = server.stdout.readline().split()[1]
            host = f"http://127.0.0.1:{port}"
            common = ["--host", host, "--write-key", KEY, "--prefix", PREFIX, "--count", str(COUNT)]
            runs = [
                ("python_batch.json", [sys.executable, os.path.join(SDK, "python", "send_events.py"), *common]),
                ("python_batch_gzip.json", [sys.executable, os.path.join(SDK, "python", "send_events.py"), *common, "--gzip"]),
                ("node_batch.json", ["node", os.path.join(SDK, "node", "send_events.js"), *common]),
                ("node_batch_nogzip.json", ["node", os.path.join(SDK, "node", "send_events.js"), *common, "--no-gzip"]),
            ]
            for name, cmd in runs:
                open(cap, "w").close()
                run(cmd)
                records = [json.loads(line) for line in open(cap, encoding="utf-8")]
                # the request that carries the most messages (Node sends message 0 on its own first)
                best = max(records, key=lambda r: len(r["body"]["batch"]))
                with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
                    json.dump(redact(best), f, indent=2)
                    f.write("\n")
                print(f"{name}: {len(records)} request(s), kept one with {len(best['body']['batch'])} messages")
        finally:
            server.terminate()
            server.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

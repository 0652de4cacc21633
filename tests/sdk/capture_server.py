#!/usr/bin/env python3
"""Tiny HTTP capture server: records exactly what a tracking SDK sends.

Used to see (and to re-generate the fixtures in tests/fixtures/sdk/ from) the
requests the real SDKs make. Standard library only; binds 127.0.0.1 only.

    python3 tests/sdk/capture_server.py --out /tmp/capture.jsonl [--port 0] [--status 200] [--retry-after 1]

On start it prints one line `LISTENING <port>` to stdout. Every request is
appended to --out as one JSON line:

    {"method", "path", "headers": {name: value, ...}, "gzip": bool,
     "raw_len": int, "body": <decoded JSON or null>, "body_text": <str if not JSON>}

and answered with --status (default 200) and body {"success":true}
(or {"code":"error","message":"injected failure"} for a non-2xx status).
"""

import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--out", required=True, help="JSON-lines file the requests are appended to")
    ap.add_argument("--status", type=int, default=200, help="status code to answer with")
    ap.add_argument("--retry-after", help="also send this Retry-After header value")
    args = ap.parse_args()

    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _capture(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            is_gzip = raw[:2] == b"\x1f\x8b"
            data = gzip.decompress(raw) if is_gzip else raw
            record = {
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "gzip": is_gzip,
                "raw_len": len(raw),
            }
            try:
                record["body"] = json.loads(data) if data else None
            except ValueError:
                record["body"] = None
                record["body_text"] = data.decode("utf-8", "replace")
            with lock, open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

            ok = 200 <= args.status < 300
            body = b'{"success":true}' if ok else b'{"code":"error","message":"injected failure"}'
            self.send_response(args.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if args.retry_after:
                self.send_header("Retry-After", args.retry_after)
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_GET = _capture

        def log_message(self, fmt, *a):  # keep stdout for the LISTENING line only
            sys.stderr.write("capture: " + (fmt % a) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

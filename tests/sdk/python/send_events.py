#!/usr/bin/env python3
"""Send a realistic event mix to TrackLayer through the real Segment Python SDK.

    send_events.py --host URL --write-key KEY --prefix STR --count N [--gzip] [--sync] [--deadline S]

Uses `segment.analytics.Client` (PyPI: segment-analytics-python, pinned in
infra/requirements-test.txt). The SDK POSTs `{host}/v1/batch` with HTTP Basic
(`writeKey:`) *and* `writeKey` in the JSON body.

Exit status: 0 only if every batch was accepted (2xx) and the SDK reported no
error; 1 if the SDK reported an error (on_error), 2 on bad arguments, 3 if the
run did not finish within --deadline seconds (default 9). The client is set up
to give up fast (at most 2 retries, 3 s request timeout, no new attempt once
3 s have passed since the first failure, 5 s rate-limit budget), so a failing,
absent or hanging server makes this exit non-zero in under 10 s (about 1 s for
refused/5xx/4xx, about 6 s for a server that never answers).
stdout gets exactly one JSON line: {"sent": <messages accepted>, "errors": <error count>}.

Deterministic event scheme (shared with tests/sdk/node/send_events.js)
----------------------------------------------------------------------
For i in 0..N-1, with P = --prefix, message i is:

    messageId    f"{P}-{i}"
    type         KINDS[i % 6], KINDS = identify, track, page, screen, group, alias
    userId       f"{P}-user-{i}"
    anonymousId  f"{P}-anon-{i}"          (every type except alias)
    context      ip          f"203.0.113.{i % 254 + 1}"
                 userAgent   USER_AGENT (below)
                 page        {url: f"https://shop.example.com/checkout?ref={P}-{i}",
                              path: "/checkout", title: "Checkout"}
                 consent     {categoryPreferences: {advertising: true, analytics: true}}
                 traits      {email}      (track only)
                 library     added by the SDK

PII for index i (identify traits; the email also in track's context.traits):
    email        f"{P}.buyer{i}@example.com"
    phone        f"+1 415 555 {1000 + i % 9000}"
    firstName    "Zebulon"
    lastName     f"Quackenbush{P}"
    address      {street: f"{100 + i} Duckpond Lane", city: "Springfield", state: "OR",
                  postal_code: "97477", country: "US"}
    birthday     "1990-04-17"
    gender       "male"

Per type:
    identify  traits = the PII above
    track     event "Order Completed", properties {order_id: f"{P}-order-{i}",
              value: i + 25.5, revenue: i + 25.5, currency: "USD",
              products: [{product_id: f"{P}-sku-{i}", sku: f"SKU-{i}", name: "Rubber Duck",
                          category: "Bath", price: i + 25.5, quantity: 1}]}
    page      name "Checkout", category "Shop",
              properties {url: <context.page.url>, path: "/checkout", title: "Checkout",
                          referrer: "https://search.example.com/"}
    screen    name "Cart", properties {cart_size: 1}
    group     groupId f"{P}-group-{i}", traits {name: f"Acme {P}", plan: "enterprise", employees: 42}
    alias     previousId f"{P}-anon-{i}", userId f"{P}-user-{i}"
Timestamps are left to the SDK (the time of the call).
"""

import argparse
import json
import os
import sys
import threading

from segment.analytics import Client

KINDS = ("identify", "track", "page", "screen", "group", "alias")
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TrackLayerSDKTest/1.0"


def pii(prefix: str, i: int) -> dict:
    return {
        "email": f"{prefix}.buyer{i}@example.com",
        "phone": f"+1 415 555 {1000 + i % 9000}",
        "firstName": "Zebulon",
        "lastName": f"Quackenbush{prefix}",
        "address": {
            "street": f"{100 + i} Duckpond Lane",
            "city": "Springfield",
            "state": "OR",
            "postal_code": "97477",
            "country": "US",
        },
        "birthday": "1990-04-17",
        "gender": "male",
    }


def page_url(prefix: str, i: int) -> str:
    return f"https://shop.example.com/checkout?ref={prefix}-{i}"


def context(prefix: str, i: int, with_email: bool) -> dict:
    ctx = {
        "ip": f"203.0.113.{i % 254 + 1}",
        "userAgent": USER_AGENT,
        "page": {"url": page_url(prefix, i), "path": "/checkout", "title": "Checkout"},
        "consent": {"categoryPreferences": {"advertising": True, "analytics": True}},
    }
    if with_email:
        ctx["traits"] = {"email": pii(prefix, i)["email"]}
    return ctx


def send_one(client: Client, prefix: str, i: int) -> None:
    kind = KINDS[i % len(KINDS)]
    mid = f"{prefix}-{i}"
    user_id = f"{prefix}-user-{i}"
    anon_id = f"{prefix}-anon-{i}"
    ctx = context(prefix, i, with_email=(kind == "track"))
    common = {"context": ctx, "message_id": mid}

    if kind == "identify":
        client.identify(user_id=user_id, anonymous_id=anon_id, traits=pii(prefix, i), **common)
    elif kind == "track":
        amount = i + 25.5
        client.track(
            user_id=user_id,
            anonymous_id=anon_id,
            event="Order Completed",
            properties={
                "order_id": f"{prefix}-order-{i}",
                "value": amount,
                "revenue": amount,
                "currency": "USD",
                "products": [
                    {
                        "product_id": f"{prefix}-sku-{i}",
                        "sku": f"SKU-{i}",
                        "name": "Rubber Duck",
                        "category": "Bath",
                        "price": amount,
                        "quantity": 1,
                    }
                ],
            },
            **common,
        )
    elif kind == "page":
        client.page(
            user_id=user_id,
            anonymous_id=anon_id,
            category="Shop",
            name="Checkout",
            properties={
                "url": page_url(prefix, i),
                "path": "/checkout",
                "title": "Checkout",
                "referrer": "https://search.example.com/",
            },
            **common,
        )
    elif kind == "screen":
        client.screen(user_id=user_id, anonymous_id=anon_id, name="Cart", properties={"cart_size": 1}, **common)
    elif kind == "group":
        client.group(
            user_id=user_id,
            anonymous_id=anon_id,
            group_id=f"{prefix}-group-{i}",
            traits={"name": f"Acme {prefix}", "plan": "enterprise", "employees": 42},
            **common,
        )
    else:  # alias
        client.alias(previous_id=anon_id, user_id=user_id, **common)


def main() -> int:
    ap = argparse.ArgumentParser(description="Send a deterministic event mix with segment-analytics-python.")
    ap.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8080 (SDK appends /v1/batch)")
    ap.add_argument("--write-key", required=True)
    ap.add_argument("--prefix", required=True, help="makes message ids and PII unique to this run")
    ap.add_argument("--count", required=True, type=int, help="number of messages (types cycle through 6 kinds)")
    ap.add_argument("--gzip", action="store_true", help="enable the SDK's gzip option (Content-Encoding: gzip)")
    ap.add_argument("--sync", action="store_true", help="SDK sync_mode: one POST /v1/batch per message, no retries")
    ap.add_argument("--deadline", type=float, default=9.0, help="hard limit in seconds for the whole run (exit 3)")
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be >= 0")

    state = {"errors": 0, "failed": 0}
    lock = threading.Lock()

    def report(sent: int, errors: int) -> None:
        sys.stdout.write(json.dumps({"sent": sent, "errors": errors}) + "\n")
        sys.stdout.flush()

    def on_error(error, batch):
        with lock:
            state["errors"] += 1
            state["failed"] += len(batch)
        sys.stderr.write(f"send_events.py: SDK error for {len(batch)} message(s): {error}\n")

    def overrun():
        sys.stderr.write(f"send_events.py: not done after {args.deadline}s, giving up\n")
        with lock:
            report(0, state["errors"] + 1)
        os._exit(3)

    watchdog = threading.Timer(args.deadline, overrun)
    watchdog.daemon = True
    watchdog.start()

    client = Client(
        write_key=args.write_key,
        host=args.host,
        gzip=args.gzip,
        sync_mode=args.sync,
        on_error=on_error,
        max_retries=2,
        timeout=3,
        max_total_backoff_duration=3,
        max_rate_limit_duration=5,
        upload_size=100,
        upload_interval=0.2,
    )

    for i in range(args.count):
        try:
            send_one(client, args.prefix, i)
        except Exception as e:  # sync mode raises the HTTP/network error directly
            on_error(e, [i])

    if not args.sync:
        client.flush()  # waits until every queued message was uploaded or reported to on_error
        client.join()
    watchdog.cancel()

    with lock:
        errors, failed = state["errors"], state["failed"]
    report(args.count - failed, errors)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

// Segment's analytics-next and RudderStack's SDK, served from node_modules by a second loopback
// origin (the "shop"),
// sends straight to TrackLayer: page, identify with an email, a purchase and an unload beacon
// reach a fake Meta and a webhook, hashed; nothing leaves loopback; another origin is refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, openBrowser } from "./lib/index.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SEGMENT_UMD = path.join(HERE, "node_modules/@segment/analytics-next/dist/umd");
const RUDDER_UMD = path.join(HERE, "node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd");
const EMAIL = "Browser.Buyer@Example.com";
const EMAIL_SHA256 = createHash("sha256").update(EMAIL.toLowerCase()).digest("hex");

/** An HTTP server on a free loopback port: { url, close() }. */
async function listen(handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

let tl;
let browser;
let fakes;
let shop;
const received = { meta: [], hook: [] };

before(async () => {
  fakes = await listen((req, res) => {
    let body = "";
    req.on("data", (d) => { body += d; });
    req.on("end", () => {
      (req.url.startsWith("/hook") ? received.hook : received.meta).push(body);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(req.url.startsWith("/hook") ? "{}" : '{"events_received":1,"fbtrace_id":"x"}');
    });
  });
  tl = await startServer();
  shop = await listen(async (req, res) => {
    if (req.url.startsWith("/rudder/")) {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(await readFile(path.join(RUDDER_UMD, path.basename(req.url))));
    }
    if (req.url.startsWith("/sdk/")) {
      const file = path.join(SEGMENT_UMD, path.basename(req.url));
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(await readFile(file));
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><html lang="en"><title>Shop</title><script src="/sdk/index.js"></script><script src="/rudder/index.js"></script>`);
  });
  const admin = (method, p, body) =>
    fetch(`${tl.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${tl.init.admin_token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then(async (r) => { assert.ok(r.ok, `${method} ${p}: ${r.status} ${await r.text()}`); });
  await admin("PUT", "/admin/v1/cors", { allowed_origins: [shop.url] });
  // Headless Chromium says "HeadlessChrome" in its user agent, which the bot filter (on by
  // default) drops like a crawler's; a visitor's browser does not.
  await admin("PUT", "/admin/v1/bot-filter", { enabled: false });
  await admin("POST", "/admin/v1/destinations", {
    name: "Meta", kind: "meta_capi", endpoint: `${fakes.url}/meta`,
    config: { pixel_id: "1234567890", api_version: "v21.0" },
    secrets: { access_token: "EAAGbrowsertesttoken" },
  });
  await admin("POST", "/admin/v1/destinations", {
    name: "Warehouse", kind: "webhook",
    config: { url: `${fakes.url}/hook` },
    secrets: { signing_secret: "whsec_dGVzdC1vbmx5LXNpZ25pbmcta2V5LTEyMzQ1Njc4" }, // pragma: allowlist secret
  });
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await tl?.stop();
  await shop?.close();
  await fakes?.close();
});

/** Waits until `check()` is true, polling, for at most `ms`. */
async function until(check, what, ms = 30_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("analytics-next on a shop's page sends page, identify, a purchase and an unload beacon to TrackLayer only", async () => {
  const { page, guard } = browser;
  const host = new URL(tl.url).host;
  const responses = [];
  page.on("response", (r) => { if (r.url().startsWith(tl.url)) responses.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  await page.goto(`${shop.url}/`);
  await page.evaluate(async ({ writeKey, cdnURL, host, email }) => {
    const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load(
      { writeKey, cdnURL },
      { integrations: { "Segment.io": { apiHost: `${host}/v1`, protocol: "http" } } },
    );
    await analytics.page("Home");
    await analytics.identify("browser-user-1", { email });
    await analytics.track("Order Completed", { order_id: "o-1", revenue: 42.5, currency: "EUR" });
    // What a page sends on unload: a beacon, text/plain, the write key in the body.
    navigator.sendBeacon(`http://${host}/v1/t`, JSON.stringify({
      writeKey, type: "track", event: "Checkout Left", userId: "browser-user-1",
      context: { traits: { email } },
    }));
  }, { writeKey: tl.init.write_key, cdnURL: tl.url, host, email: EMAIL });

  const names = ["Home", "Order Completed", "Checkout Left"];
  await until(() => names.every((n) => received.hook.join("\n").includes(n)), "the webhook to receive every event");
  await until(() => received.meta.join("\n").includes(EMAIL_SHA256), "Meta to receive the hashed email");
  const hook = received.hook.join("\n");
  for (const name of names) assert.ok(hook.includes(name), `${name} reached the webhook: ${hook}`);
  const meta = received.meta.join("\n");
  for (const sent of [hook, meta]) {
    assert.ok(!sent.toLowerCase().includes(EMAIL.toLowerCase()), "no raw email leaves TrackLayer");
  }
  assert.ok(meta.includes(EMAIL_SHA256), `Meta got the hashed email: ${meta}`);
  assert.ok(responses.some((r) => r.startsWith("200 /v1/projects/")), responses.join(", "));
  assert.ok(responses.some((r) => r === "200 /v1/t"), responses.join(", "));
  guard.check();
});

test("a page on an origin the workspace does not allow is refused, naming the origin", async () => {
  const r = await fetch(`${tl.url}/v1/t`, {
    method: "POST",
    headers: { origin: "http://evil.example", "content-type": "text/plain" },
    body: JSON.stringify({ writeKey: tl.init.write_key, type: "track", event: "X", userId: "u" }),
  });
  assert.equal(r.status, 403);
  const problem = await r.json();
  assert.equal(problem.origin, "http://evil.example");
  assert.equal(r.headers.get("access-control-allow-origin"), null);
});

test("the RudderStack SDK on a shop's page sends page, identify and a purchase to TrackLayer only", async () => {
  const { page, guard } = browser;
  const responses = [];
  page.on("response", (r) => { if (r.url().startsWith(tl.url)) responses.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  await page.goto(`${shop.url}/`);
  await page.evaluate(async ({ writeKey, url, email }) => {
    const rudder = new window.rudderanalytics.RudderAnalytics();
    await new Promise((resolve) => {
      rudder.load(writeKey, url, {
        configUrl: url,
        destSDKBaseURL: `${url}/none`,
        pluginsSDKBaseURL: `${url}/none`,
        onLoaded: resolve,
      });
    });
    rudder.page("Rudder Home");
    rudder.identify("rudder-user-1", { email });
    rudder.track("Rudder Order Completed", { order_id: "r-1", revenue: 10, currency: "EUR" });
  }, { writeKey: tl.init.write_key, url: tl.url, email: EMAIL });

  const names = ["Rudder Home", "Rudder Order Completed"];
  await until(() => names.every((n) => received.hook.join("\n").includes(n)), `the webhook to receive rudder's events (${responses.join(", ")})`);
  assert.ok(responses.some((r) => r.startsWith("200 /sourceConfig")), responses.join(", "));
  // /sourceConfig/, /v1/page, /v1/identify, /v1/track: every one answered.
  assert.ok(responses.every((r) => r.startsWith("200 ")), responses.join(", "));
  guard.check();
});

// Every console page, signed in as an admin: axe finds no serious or critical violation at
// 1280 px, and each page is screenshotted (1280 and 390 px) under target/browser-screenshots/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openBrowser, screenshot, axeViolations, sendEvents, adminApi, suite } from "./lib/index.mjs";

const ctx = suite({
  email: "admin@shop.example",
  role: "admin",
  async setup({ server }) {
    const created = await adminApi(server, "POST", "/destinations", {
      name: "Meta (shop)", kind: "meta_capi",
      config: { pixel_id: "1234567890", api_version: "v21.0" },
      secrets: { access_token: "EAAB-example-token-1234" }, // pragma: allowlist secret (a fake Meta token for the local fake)
      endpoint: "http://127.0.0.1:9/unreachable",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    messageIds = await sendEvents(server, ["Order Completed", "Product Added", "Checkout Started"]);
  },
});
let server;
let browser;
let messageIds;

async function visit(path, name) {
  const { page } = browser;
  const r = await page.goto(server.url + path);
  assert.ok(r.status() < 400, `${path} answered ${r.status()}`);
  const violations = await axeViolations(page);
  await screenshot(page, name, { narrow: true });
  return violations.map((v) => `${path}: ${v}`);
}

test("every page passes axe and is screenshotted at 1280 and 390 px", async () => {
  ({ server, browser } = ctx);
  const { page, guard } = browser;
  const users = await adminApi(server, "GET", "/users");
  const dsts = await adminApi(server, "GET", "/destinations");
  const traces = await adminApi(server, "GET", `/events?message_id=${encodeURIComponent(messageIds[0])}`);
  const eventId = traces.body.traces[0].event_id;
  const found = [];
  for (const [path, name] of [
    ["/", "overview"],
    ["/events", "events"],
    [`/events/${eventId}`, "event-trace-meta"],
    [`/destinations/${dsts.body[0].id}`, "destination-meta"],
    ["/destinations/new?kind=meta_capi", "destination-new-meta"],
    ["/destinations/new?kind=ga4", "destination-new-ga4"],
    ["/destinations/new?kind=tiktok", "destination-new-tiktok"],
    ["/destinations/new?kind=webhook", "destination-new-webhook"],
    ["/users", "users"],
    [`/users/${users.body[0].id}`, "user-sessions"],
    ["/settings/consent", "consent"],
    ["/settings/retention", "retention"],
    ["/settings/security", "security"],
    ["/privacy-requests", "privacy-requests"],
    ["/audit-log", "audit-log"],
    ["/settings/workspace", "workspace"],
  ]) {
    found.push(...(await visit(path, name)));
  }

  // The confirmation step before all egress pauses.
  await page.goto(`${server.url}/settings/security`);
  await page.getByRole("button", { name: "Pause all egress…" }).click();
  await page.getByRole("alertdialog").waitFor();
  found.push(...(await axeViolations(page)).map((v) => `egress confirmation: ${v}`));
  await screenshot(page, "security-confirm-pause");
  await page.getByRole("link", { name: "Cancel" }).click();
  assert.match(await page.textContent("body"), /flowing/, "cancelled: egress still flows");

  // A privacy request, submitted and shown.
  await page.goto(`${server.url}/privacy-requests`);
  await page.getByLabel("Email").fill("jane.doe@example.com");
  await page.getByLabel(/Your reference/).fill("TICKET-4711");
  await page.getByRole("button", { name: "Submit request" }).click();
  await page.getByText("Request submitted.").waitFor();
  assert.ok(!(await page.textContent("body")).includes("jane.doe@example.com"), "the identifier is not shown again");
  found.push(...(await axeViolations(page)).map((v) => `privacy request: ${v}`));
  await screenshot(page, "privacy-request");

  // The pages before sign-in.
  const anon = await openBrowser();
  try {
    for (const [path, name] of [["/reset", "reset-request"], ["/invite/not-a-real-token", "invitation"], ["/sign-in/link/not-a-real-token", "sign-in-link"]]) {
      await anon.page.goto(server.url + path);
      found.push(...(await axeViolations(anon.page)).map((v) => `${path}: ${v}`));
      await screenshot(anon.page, name);
    }
    anon.guard.check();
  } finally {
    await anon.close();
  }
  assert.deepEqual(found, [], "no serious or critical axe violation on any page");
  guard.check();
});

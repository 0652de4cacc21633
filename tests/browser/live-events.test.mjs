// The event debugger's live list, as a viewer: events sent with the write key show newest first
// without a reload (htmx polling, pausable), filter by type and name, link to their trace, and
// show no raw identifier; the viewer sees no SSO or origin editing and a forced post is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { screenshot, assertAccessible, sendEvents, formPost, suite } from "./lib/index.mjs";

const ctx = suite({ email: "analyst@shop.example", role: "viewer" });

test("sent events appear in the live list newest first, by themselves, filtered and linked to their trace", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  const [order] = await sendEvents(server, ["Order Completed"]);
  await page.goto(`${server.url}/events`);
  const live = page.locator("#live");
  assert.equal(await live.getAttribute("hx-trigger"), "every 5s", "the list polls");
  await live.locator("code", { hasText: order }).waitFor();

  // A later event shows up without a reload, above the first.
  const [added] = await sendEvents(server, ["Product Added"]);
  await live.locator("code", { hasText: added }).waitFor({ timeout: 15_000 });
  const ids = await live.locator("tbody code").allTextContents();
  assert.deepEqual(ids.slice(0, 2), [added, order], "newest first");
  const body = await page.textContent("body");
  assert.ok(!body.includes("shopper0@example.com") && !body.includes("user-0"), "no raw identifier");
  assert.match(await live.textContent(), /queued|delivered|no destination/);
  await assertAccessible(page, "/events (live list)");
  await screenshot(page, "event-debugger-live", { narrow: true });

  // Filters: by name (any case, a part of it) and by type.
  await page.getByLabel("Event name contains").fill("added");
  await page.getByRole("button", { name: "Filter" }).click();
  await live.locator("code", { hasText: added }).waitFor();
  assert.equal(await live.locator("code", { hasText: order }).count(), 0, "the other name is filtered out");
  await page.getByLabel("Type").selectOption("page");
  await page.getByRole("button", { name: "Filter" }).click();
  await live.getByText("No event in the last hour matches these filters.").waitFor();

  // Pausing stops the polling; the trace link leads to the event.
  await page.goto(`${server.url}/events`);
  await page.getByRole("link", { name: "Pause" }).click();
  assert.equal(await page.locator("#live").getAttribute("hx-trigger"), null, "paused: no polling");
  await page.getByRole("link", { name: "Resume live updates" }).waitFor();
  await page.getByRole("link", { name: `Trace of ${added}` }).click();
  await page.getByRole("heading", { name: "Product Added" }).waitFor();
  guard.check();
});

test("a viewer sees no single sign-on or origin editing, and a forced post is refused", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  await page.goto(`${server.url}/settings/cors`);
  const nav = await page.getByRole("navigation", { name: "Console" }).textContent();
  assert.ok(!nav.includes("Single sign-on"), "no SSO section for a viewer");
  assert.equal(await page.getByRole("button", { name: "Save origins" }).count(), 0);
  await assertAccessible(page, "/settings/cors as a viewer");
  const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
  assert.equal(await formPost(page, "/settings/cors", { csrf, allowed_origins: "*", allow_any: "yes" }), 403);
  assert.equal(await formPost(page, "/settings/sso/scim-tokens", { csrf, name: "sneaky" }), 403);
  assert.equal(
    await formPost(page, "/settings/sso", { csrf, idp_entity_id: "x", sso_url: "https://idp.example/sso", managed_domains: "shop.example" }),
    403,
  );
  const sso = await page.goto(`${server.url}/settings/sso`);
  assert.equal(sso.status(), 403, "the SSO page itself is for admins");
  guard.check();
});

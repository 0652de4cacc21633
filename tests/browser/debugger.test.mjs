// The event debugger: events sent through the tracking API are found by messageId, and the
// trace shows consent and delivery per destination without a raw identifier.
import { test } from "node:test";
import assert from "node:assert/strict";
import { screenshot, assertAccessible, sendEvents, suite } from "./lib/index.mjs";

const ctx = suite({ email: "ops@shop.example", role: "viewer" });

test("an event sent with the write key is found by its messageId and its trace shows no raw identifier", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  const [first, second] = await sendEvents(server, ["Order Completed", "Product Added"]);
  await page.goto(`${server.url}/events`);
  await assertAccessible(page, "/events");
  await page.getByLabel("messageId").fill(second);
  await page.getByRole("button", { name: "Find" }).click();
  await page.getByRole("link", { name: "View trace", exact: true }).click();
  await page.getByRole("heading", { name: "Product Added" }).waitFor();
  const body = await page.textContent("body");
  assert.ok(body.includes(second), "the trace names its messageId");
  assert.ok(!body.includes(first), "and not another event's");
  assert.ok(!body.includes("shopper1@example.com"), "no raw email on the trace");
  await assertAccessible(page, "/events/{id}");
  await screenshot(page, "event-trace", { narrow: true });

  await page.goto(`${server.url}/events?message_id=${encodeURIComponent("no-such-message")}`);
  assert.match(await page.textContent("body"), /No event with this messageId/);
  await screenshot(page, "event-debugger");
  guard.check();
});

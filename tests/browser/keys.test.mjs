// API keys in the console: created (secret shown once), rotated, revoked — and the revoked
// key is refused by the tracking API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { screenshot, assertAccessible, suite } from "./lib/index.mjs";

const ctx = suite({ email: "keys@shop.example", role: "admin" });

async function track(key) {
  const { server } = ctx;
  const r = await fetch(`${server.url}/v1/track`, {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString("base64")}`, "content-type": "application/json" },
    body: JSON.stringify({ event: "Signed Up", anonymousId: "a-1" }),
  });
  return r.status;
}

test("a write key is created with its secret shown once, rotated, and revoked", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  await page.goto(`${server.url}/keys`);
  await page.getByLabel("Name", { exact: true }).fill("website");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = (await page.locator("#new-secret").textContent()).trim();
  assert.match(secret, /^tl_ingest_us_/);
  assert.ok(await page.getByRole("button", { name: "Copy" }).isVisible());
  await assertAccessible(page, "/keys (secret shown)");
  await screenshot(page, "keys", { narrow: true });
  assert.equal(await track(secret), 200);

  await page.goto(`${server.url}/keys`);
  assert.ok(!(await page.textContent("body")).includes(secret), "the secret is never shown again");
  await page.getByLabel("Old key keeps working for").first().selectOption("0");
  await page.getByRole("button", { name: "Rotate website" }).click();
  const rotated = (await page.locator("#new-secret").textContent()).trim();
  assert.notEqual(rotated, secret);
  assert.equal(await track(rotated), 200);

  const row = page.locator("tr", { hasText: rotated.slice(0, 24) });
  await row.getByRole("button", { name: "Revoke website" }).click();
  await page.getByText("Key revoked").waitFor();
  assert.equal(await track(rotated), 401, "the revoked key is refused from the next request");
  guard.check();
});

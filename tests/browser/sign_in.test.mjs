// The console's sign-in page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, openBrowser, screenshot, assertAccessible } from "./lib/index.mjs";

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await openBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the sign-in page loads with its styles and scripts under a strict CSP and passes axe", async () => {
  const { page, guard } = browser;
  const response = await page.goto(`${server.url}/sign-in`);
  assert.equal(response.status(), 200);
  const csp = response.headers()["content-security-policy"];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(response.headers()["x-content-type-options"], "nosniff");
  assert.equal(response.headers()["referrer-policy"], "no-referrer");
  await page.getByLabel("Email").waitFor();
  await page.getByLabel("Password").waitFor();
  // The stylesheet applied (the card is laid out) and htmx ran (allowed by the CSP).
  assert.equal(await page.evaluate(() => typeof window.htmx), "object");
  const radius = await page.locator(".auth-card").evaluate((el) => getComputedStyle(el).borderRadius);
  assert.equal(radius, "12px");
  await assertAccessible(page, "/sign-in");
  await screenshot(page, "sign-in", { narrow: true });
  guard.check();
});

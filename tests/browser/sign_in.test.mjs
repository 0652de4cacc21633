// The console's sign-in page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { screenshot, assertAccessible, inviteAndAccept, signIn, suite } from "./lib/index.mjs";

const ctx = suite();

test("the sign-in page loads with its styles and scripts under a strict CSP and passes axe", async () => {
  const { server, browser } = ctx;
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

test("an invited user sets a password from the mailed link, signs out and signs in again", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  await inviteAndAccept(server, page, "ana@shop.example", "editor");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const cookies = await page.context().cookies(server.url);
  const session = cookies.find((c) => c.name === "__Host-tl_session");
  assert.ok(session, "the session cookie is set");
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, "Lax");
  assert.equal(session.path, "/");
  await assertAccessible(page, "/ (overview)");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/sign-in/);
  await page.goto(`${server.url}/destinations`);
  await page.waitForURL(/\/sign-in$/);

  await signIn(server, page, "ana@shop.example", "not the password at all");
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").textContent(), /not correct/);
  await signIn(server, page, "ana@shop.example");
  await page.waitForURL(`${server.url}/`);
  await page.goto(`${server.url}/account`);
  await page.getByRole("heading", { name: "Your account" }).waitFor();
  await assertAccessible(page, "/account");
  await screenshot(page, "account");
  guard.check();
});

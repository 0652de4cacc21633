// Roles and request forgery: a viewer sees no action it cannot take and the server refuses it
// anyway; a post without the session's CSRF token, or from another site, is refused; a role
// change ends the user's sessions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { screenshot, assertAccessible, adminApi, formPost, suite } from "./lib/index.mjs";

const ctx = suite({ email: "viewer@shop.example", role: "viewer" });

const post = formPost;

test("a viewer sees no admin or editor action, and the server refuses one posted anyway", async () => {
  const { server, browser: viewer } = ctx;
  const { page, guard } = viewer;
  await page.goto(`${server.url}/destinations`);
  const nav = await page.getByRole("navigation", { name: "Console" }).textContent();
  assert.ok(!nav.includes("API keys") && !nav.includes("Audit log") && !nav.includes("Privacy requests"));
  assert.equal(await page.getByRole("link", { name: "Add destination" }).count(), 0);
  await page.goto(`${server.url}/users`);
  assert.equal(await page.getByRole("button", { name: /Change role|Remove|Send invitation/ }).count(), 0);
  await page.goto(`${server.url}/settings/security`);
  assert.equal(await page.getByRole("button", { name: /Pause all egress|Save blocklist/ }).count(), 0);
  await assertAccessible(page, "/settings/security as a viewer");
  await screenshot(page, "viewer-security");

  // With a valid CSRF token, the role check in the core still refuses.
  const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
  assert.equal(await post(page, "/keys", { csrf, kind: "ingest", name: "sneaky" }), 403);
  assert.equal(await post(page, "/settings/security/egress", { csrf, egress_paused: "true", confirmed: "yes" }), 403);
  const keys = await adminApi(server, "GET", "/api-keys");
  assert.ok(!keys.body.some((k) => k.name === "sneaky"), "no key was created");
  guard.check();
});

test("a form post without the session's CSRF token, or from another origin, is refused", async () => {
  const { server, browser: viewer } = ctx;
  const { page } = viewer;
  await page.goto(`${server.url}/account`);
  const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
  const own = await adminApi(server, "GET", "/users");
  const ana = own.body.find((u) => u.email === "viewer@shop.example");
  const sessions = `/account/sessions/ses_nonexistent/revoke`;
  assert.equal(await post(page, "/sign-out", {}), 403, "no token");
  assert.equal(await post(page, "/sign-out", { csrf: "0".repeat(csrf.length) }), 403, "a wrong token");
  assert.equal(await post(page, sessions, {}), 403);
  // From another site (the Origin of an attacker's page, Sec-Fetch-Site cross-site), with the
  // right token even, nothing happens: the browser's fetch metadata cannot be forged.
  const cross = await fetch(`${server.url}/sign-out`, {
    method: "POST",
    headers: {
      cookie: (await page.context().cookies(server.url)).map((c) => `${c.name}=${c.value}`).join("; "),
      origin: "https://attacker.example",
      "sec-fetch-site": "cross-site",
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ csrf }),
    redirect: "manual",
  });
  assert.equal(cross.status, 403);
  assert.match(await cross.text(), /did not come from a console page/);
  // Still signed in.
  await page.goto(`${server.url}/account`);
  await page.getByRole("heading", { name: "Your account" }).waitFor();
  assert.ok(ana, "the viewer exists");
});

test("changing a user's role ends their sessions at once", async () => {
  const { server, browser: viewer } = ctx;
  const { page } = viewer;
  await page.goto(`${server.url}/`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const users = await adminApi(server, "GET", "/users");
  const me = users.body.find((u) => u.email === "viewer@shop.example");
  const changed = await adminApi(server, "PATCH", `/users/${me.id}`, { role: "editor" });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  await page.goto(`${server.url}/destinations`);
  await page.waitForURL(/\/sign-in$/);
});

// An admin's single sign-on, browser origins and browser-facing keys: the SAML form saves
// through the admin API's use case and shows a refusal beside its field, a SCIM token is shown
// once and revoked, the origin list takes wildcard subdomains and `*` only when confirmed, and
// a browser-facing write key is created with the line saying which key goes in a web page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { screenshot, assertAccessible, adminApi, suite } from "./lib/index.mjs";

const ctx = suite({ email: "secops@shop.example", role: "admin" });

/** A self-signed RSA 2048 certificate, PEM, as an IdP's signing certificate. */
function certificate() {
  return execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "/dev/null",
    "-subj", "/CN=idp.shop.example", "-days", "30",
  ], { stdio: ["ignore", "pipe", "ignore"] }).toString();
}

test("an admin connects a SAML IdP, sees a refused field inline, and creates and revokes a SCIM token", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  await page.goto(`${server.url}/settings/sso`);
  assert.match(await page.locator("#sp-entity").textContent(), /\/sso\/saml\/.+\/metadata$/);
  assert.match(await page.locator("#sp-acs").textContent(), /\/sso\/saml\/.+\/acs$/);
  assert.match(await page.locator("#scim-url").textContent(), /\/scim\/v2$/);
  await assertAccessible(page, "/settings/sso");

  await page.getByLabel("IdP entity ID (Issuer)").fill("http://www.okta.com/exk1");
  await page.getByLabel("IdP single sign-on URL").fill("https://shop.okta.example/app/sso/saml");
  await page.getByLabel(/^Signing certificate/).fill("not a certificate");
  await page.getByLabel(/^Managed email domains/).fill("shop.example");
  await page.getByLabel("Role of new users").selectOption("viewer");
  await page.getByRole("button", { name: "Turn on SAML" }).click();
  const refused = page.locator("#sso-certificate-error");
  await refused.waitFor();
  assert.equal(await page.getByLabel(/^Signing certificate/).getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByLabel("IdP entity ID (Issuer)").inputValue(), "http://www.okta.com/exk1", "the form keeps what was typed");
  await assertAccessible(page, "/settings/sso with a refused field");
  await screenshot(page, "sso-refused", { narrow: true });

  await page.getByLabel(/^Signing certificate/).fill(certificate());
  await page.getByLabel(/^Attribute value → role/).fill("tracklayer-admins = admin");
  await page.getByLabel("Role attribute").fill("groups");
  await page.getByRole("button", { name: "Turn on SAML" }).click();
  await page.getByText("Single sign-on saved.").waitFor();
  const saved = await adminApi(server, "GET", "/sso/saml");
  assert.equal(saved.status, 200);
  assert.deepEqual(saved.body.managed_domains, ["shop.example"]);
  assert.equal(saved.body.role_rules[0].role, "admin");
  assert.equal(saved.body.idp_initiated, false, "IdP-initiated stays off unless ticked");

  // A break-glass admin set through the API survives a save of the console form.
  const users = await adminApi(server, "GET", "/users");
  const me = users.body.find((u) => u.email === "secops@shop.example");
  const { sp_entity_id, acs_url, metadata_url, updated_at, ...settings } = saved.body;
  const put = await adminApi(server, "PUT", "/sso/saml", { ...settings, break_glass_user: me.id });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await page.goto(`${server.url}/settings/sso`);
  assert.equal(await page.getByLabel("Break-glass admin (user id)").inputValue(), me.id);
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("Single sign-on saved.").waitFor();
  const kept = await adminApi(server, "GET", "/sso/saml");
  assert.equal(kept.body.break_glass_user, me.id, "saving the form keeps the break-glass admin");

  await page.getByRole("button", { name: "Create SCIM token" }).click();
  const secret = (await page.locator("#new-secret").textContent()).trim();
  assert.match(secret, /^tl_scim_/);
  await screenshot(page, "sso", { narrow: true });
  await page.goto(`${server.url}/settings/sso`);
  assert.ok(!(await page.textContent("body")).includes(secret), "shown once");
  await page.getByRole("button", { name: "Revoke Okta SCIM" }).click();
  await page.getByText("SCIM token revoked").waitFor();
  const scim = await fetch(`${server.url}/scim/v2/Users`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(scim.status, 401, "the revoked token is refused");
  guard.check();
});

test("an admin allows origins with wildcard subdomains, `*` only when confirmed, and creates a browser-facing key", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  await page.goto(`${server.url}/settings/cors`);
  await page.getByText("None: browsers are refused").waitFor();
  const origins = page.getByLabel(/^Allowed origins/);
  await origins.fill("https://shop.example\nftp://shop.example");
  await page.getByRole("button", { name: "Save origins" }).click();
  assert.match(await page.locator("#cors-origins-error").textContent(), /^Line 2 \(ftp:\/\/shop\.example\)/);
  await origins.fill("https://shop.example\nhttps://*.shop.example");
  await page.getByRole("button", { name: "Save origins" }).click();
  await page.getByText("Browser origins saved.").waitFor();
  assert.deepEqual((await adminApi(server, "GET", "/cors")).body.allowed_origins, ["https://shop.example", "https://*.shop.example"]);

  await page.getByLabel(/^Allowed origins/).fill("*");
  await page.getByRole("button", { name: "Save origins" }).click();
  await page.locator("#cors-origins-error").waitFor();
  assert.deepEqual((await adminApi(server, "GET", "/cors")).body.allowed_origins.length, 2, "not saved unconfirmed");
  await assertAccessible(page, "/settings/cors asking to confirm *");
  await page.getByLabel(/Yes, allow/).check();
  await page.getByRole("button", { name: "Save origins" }).click();
  await page.getByText("every website").waitFor();
  await assertAccessible(page, "/settings/cors");
  await page.getByLabel(/^Allowed origins/).fill("https://shop.example\nhttps://*.shop.example");
  await page.getByRole("button", { name: "Save origins" }).click();
  await page.getByText("Browser origins saved.").waitFor();
  await screenshot(page, "browser-origins", { narrow: true });

  await page.goto(`${server.url}/keys`);
  await page.getByText("A browser-facing write key is public and goes in your web pages.").waitFor();
  await page.getByLabel("Name").fill("web shop");
  await page.getByLabel(/Browser-facing write key/).check();
  await page.getByRole("button", { name: "Create key" }).click();
  await page.locator("#new-secret").waitFor();
  const keys = await adminApi(server, "GET", "/api-keys");
  assert.equal(keys.body.find((k) => k.name === "web shop").browser, true);
  await assertAccessible(page, "/keys with a browser key");
  await screenshot(page, "keys-browser", { narrow: true });
  guard.check();
});

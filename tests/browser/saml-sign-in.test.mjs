// SAML single sign-on in the browser, with the end-to-end suite's real IdP (tests/saml/idp.py:
// pysaml2's IdP signing with xmlsec1, as tests/tests/e2e/saml_idp.rs drives it). The IdP's
// single sign-on URL is on a made-up host, https://idp.example.test, and answers as an IdP
// does: it reads the AuthnRequest, has idp.py sign the response, and sends back the HTTP-POST
// binding's form, which submits itself to the ACS.
//
// SP-initiated, the browser reaches the IdP through the redirect of the workspace's SSO
// sign-in address; Playwright never routes a redirected request (its Chromium network manager
// continues it), so that browser resolves idp.example.test to an HTTPS server of this file on
// loopback (--host-resolver-rules) and trusts that server's key alone (its SPKI hash).
// IdP-initiated, the page opens the IdP itself, which `page.route` answers.
//
// `serve` names its SAML URLs (ACS URL, SP entity id) under its own public URL (by default
// the address it listens on): the responses are signed for those names and the form posts them
// to the ACS URL the connection gave, which is this server's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { screenshot, assertAccessible, adminApi, launch, guardedPage, REPO, suite } from "./lib/index.mjs";

const run = promisify(execFile);
const IDP_HOST = "idp.example.test";
const ISSUER = `https://${IDP_HOST}/metadata`;
const IDP_SSO = `https://${IDP_HOST}/sso`;
const IDP_START = `https://${IDP_HOST}/start`;

/** The venv's Python (TRACKLAYER_TEST_PYTHON, as the Rust suites read it), with pysaml2 and signxml. */
const PYTHON = process.env.TRACKLAYER_TEST_PYTHON || path.join(REPO, ".venv/bin/python");

/** `idp.py <args>`: the JSON it printed. */
async function idp(...args) {
  const { stdout } = await run(PYTHON, [path.join(REPO, "tests/saml/idp.py"), ...args], { maxBuffer: 4 << 20 });
  return JSON.parse(stdout);
}

/** A response of the real IdP (pysaml2) for `email`, answering `requestId` (none: IdP-initiated). */
async function signedResponse(ctx, email, requestId) {
  const args = ["response", ctx.idpDir, "--acs", ctx.sp.acs_url, "--audience", ctx.sp.sp_entity_id];
  args.push("--issuer", ISSUER, "--name-id", email, "--variant", "valid");
  if (requestId) args.push("--in-response-to", requestId);
  const out = await idp(...args);
  assert.equal(out.signed_by, "pysaml2", "a valid response is the real IdP's");
  return out.saml_response;
}

/** This server's ACS, which the SP's `acs_url` must name (the IdP posts there). */
const acs = (server) => `${server.url}/sso/saml/${server.init.workspace_id}/acs`;

const escape = (s) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The IdP's answer: the HTTP-POST binding's form to the ACS, submitted by its own script. */
function postForm(acsUrl, samlResponse, relayState) {
  const relay = relayState ? `<input type="hidden" name="RelayState" value="${escape(relayState)}">` : "";
  return `<!doctype html><html lang="en"><head><title>Signing in</title></head><body>
<form method="post" action="${escape(acsUrl)}">
<input type="hidden" name="SAMLResponse" value="${escape(samlResponse)}">${relay}
<noscript><button type="submit">Continue</button></noscript>
</form><script>document.forms[0].submit()</script></body></html>`;
}

/** Puts the workspace's SAML connection (the IdP's certificate pinned), IdP-initiated or not. */
async function connect(ctx, idpInitiated) {
  const put = await adminApi(ctx.server, "PUT", "/sso/saml", {
    idp_entity_id: ISSUER,
    sso_url: IDP_SSO,
    certificates: [ctx.certificate],
    managed_domains: ["shop.example"],
    default_role: "viewer",
    idp_initiated: idpInitiated,
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  ctx.sp = put.body;
  assert.equal(ctx.sp.acs_url, acs(ctx.server), "serve names itself as the ACS");
}

/**
 * The IdP's single sign-on URL served over HTTPS on loopback (a self-signed certificate for
 * idp.example.test): each AuthnRequest it receives is read by idp.py and answered with a
 * response for `email()` signed by the real IdP. `requests` are the AuthnRequests read.
 */
async function idpServer(ctx, email) {
  const key = path.join(ctx.idpDir, "tls.key");
  const cert = path.join(ctx.idpDir, "tls.crt");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
    "-subj", `/CN=${IDP_HOST}`, "-addext", `subjectAltName=DNS:${IDP_HOST}`,
  ], { stdio: "ignore" });
  const pem = await readFile(cert, "utf8");
  const requests = [];
  const server = https.createServer({ key: await readFile(key), cert: pem }, async (req, res) => {
    const url = `https://${IDP_HOST}${req.url}`;
    try {
      assert.equal(new URL(url).pathname, "/sso");
      const request = await idp("authn-request", url);
      requests.push(request);
      const response = await signedResponse(ctx, email(), request.id);
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(postForm(acs(ctx.server), response, request.relay_state));
    } catch (e) {
      requests.push({ error: e.message });
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(e.message);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return {
    requests,
    /** The chromium flags that send idp.example.test here and trust this key only. */
    args: [
      `--host-resolver-rules=MAP ${IDP_HOST}:443 127.0.0.1:${server.address().port}`,
      `--ignore-certificate-errors-spki-list=${createHash("sha256").update(spki).digest("base64")}`,
    ],
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const ctx = suite({
  setup: async (ctx) => {
    ctx.idpDir = await mkdtemp(path.join(tmpdir(), "tracklayer-idp-"));
    ctx.certificate = (await idp("keys", ctx.idpDir)).certificate;
    ctx.close = () => rm(ctx.idpDir, { recursive: true, force: true });
  },
});

test("a user opens the SSO sign-in address, the real IdP answers the AuthnRequest, and the console opens signed in", async () => {
  const { server } = ctx;
  await connect(ctx, false);
  const ws = server.init.workspace_id;
  const fakeIdp = await idpServer(ctx, () => "jo@shop.example");
  const browser = await launch({ args: fakeIdp.args });
  try {
    const { page, guard } = await guardedPage(browser.context);
    const atIdp = page.waitForURL((u) => `${u.origin}${u.pathname}` === IDP_SSO, { waitUntil: "commit" });
    // The workspace's SSO sign-in address (the one a password sign-in of an enforced domain
    // names), going on to the account page.
    await page.goto(`${server.url}/sso/saml/${ws}/login?relay_state=/account`, { waitUntil: "commit" });
    await atIdp;
    await page.waitForURL(`${server.url}/account`);
    await page.getByRole("heading", { name: "Your account" }).waitFor();
    assert.equal(fakeIdp.requests.length, 1, "the browser went to the IdP once");
    const [request] = fakeIdp.requests;
    assert.equal(request.acs_url, ctx.sp.acs_url, JSON.stringify(request));
    assert.equal(request.issuer, ctx.sp.sp_entity_id);
    assert.equal(request.relay_state, "/account");
    assert.match(await page.locator("main").textContent(), /jo@shop\.example · viewer/);
    const cookies = await page.context().cookies(server.url);
    assert.ok(cookies.find((c) => c.name === "__Host-tl_session"), "a console session");
    assert.ok(!cookies.find((c) => c.name === "__Host-tl_saml"), "the single-use request cookie is cleared");
    const users = await adminApi(server, "GET", "/users");
    const jo = users.body.find((u) => u.email === "jo@shop.example");
    assert.equal(jo?.role, "viewer", "made just in time with the connection's default role");
    await assertAccessible(page, "/account after SAML sign-in");
    await screenshot(page, "saml-sign-in", { narrow: true });

    await page.goto(`${server.url}/`);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    guard.check();
  } finally {
    await browser.close();
    await fakeIdp.close();
  }
});

test("a user signs in from the sign-in page with their work email: the workspaces of its domain are offered with their IdP's host", async () => {
  const { server } = ctx;
  await connect(ctx, false);
  const fakeIdp = await idpServer(ctx, () => "lee@shop.example");
  const browser = await launch({ args: fakeIdp.args });
  try {
    const { page, guard } = await guardedPage(browser.context);
    await page.goto(`${server.url}/sign-in`);
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await page.waitForURL(`${server.url}/sign-in/sso`);
    await assertAccessible(page, "/sign-in/sso");

    // A domain no workspace manages: said on the form, nowhere to go.
    await page.getByLabel("Work email").fill("lee@elsewhere.example");
    await page.getByRole("button", { name: "Continue" }).click();
    await page.getByRole("alert").waitFor();
    assert.match(await page.getByRole("alert").textContent(), /No workspace signs in addresses at elsewhere\.example/);
    assert.equal(await page.getByLabel("Work email").getAttribute("aria-invalid"), "true");
    await screenshot(page, "sso-sign-in-no-workspace", { narrow: true });

    // The managed domain, typed as people type it: the workspace and where the browser goes.
    await page.getByLabel("Work email").fill("Lee@SHOP.example");
    await page.getByRole("button", { name: "Continue" }).click();
    const choice = page.locator(".sso-choices li");
    await choice.first().waitFor();
    assert.equal(await choice.count(), 1, "one workspace manages shop.example");
    assert.match(await choice.textContent(), /through idp\.example\.test/);
    await assertAccessible(page, "/sign-in/sso choices");
    await screenshot(page, "sso-sign-in-choices", { narrow: true });
    assert.equal(fakeIdp.requests.length, 0, "nothing left for the IdP before the person chose");

    await page.getByRole("link", { name: /^Continue to idp\.example\.test for / }).click();
    await page.waitForURL(`${server.url}/`);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    assert.equal(fakeIdp.requests.length, 1, "the browser went to the IdP once");
    assert.equal(fakeIdp.requests[0].acs_url, ctx.sp.acs_url);
    const cookies = await page.context().cookies(server.url);
    assert.ok(cookies.find((c) => c.name === "__Host-tl_session"), "a console session");
    const users = await adminApi(server, "GET", "/users");
    assert.equal(users.body.find((u) => u.email === "lee@shop.example")?.role, "viewer");
    guard.check();
  } finally {
    await browser.close();
    await fakeIdp.close();
  }
});

test("an unsolicited response from the IdP is refused while IdP-initiated sign-in is off, and signs in once it is on", async () => {
  const { server, browser } = ctx;
  const { page, guard } = browser;
  let email;
  await page.route(IDP_START, async (route) => {
    const response = await signedResponse(ctx, email, null);
    await route.fulfill({ status: 200, contentType: "text/html", body: postForm(acs(server), response, "/account") });
  });

  await connect(ctx, false);
  email = "kim@shop.example";
  const refused = page.waitForResponse((r) => r.url() === acs(server));
  await page.goto(IDP_START);
  const answer = await refused;
  assert.equal(answer.status(), 403);
  assert.match(answer.headers()["content-type"], /^text\/html/, "a page for the browser");
  await page.waitForURL(acs(server));
  // A browser is shown a console page (an API client gets the RFC 9457 problem): what to do,
  // the reason to quote, and the way to start again from TrackLayer.
  await page.getByRole("heading", { name: "Single sign-on refused" }).waitFor();
  const shown = await page.locator("main").textContent();
  assert.match(shown, /accepts single sign-on started from TrackLayer only/);
  assert.match(await page.locator("main code").textContent(), /^saml_unsolicited$/, "the reason to quote");
  const again = page.getByRole("link", { name: "Sign in with SSO again" });
  assert.equal(await again.getAttribute("href"), `${server.url}/sso/saml/${server.init.workspace_id}/login`);
  await assertAccessible(page, "refused SAML sign-in");
  await screenshot(page, "saml-idp-initiated-refused", { narrow: true });
  let cookies = await page.context().cookies(server.url);
  assert.ok(!cookies.find((c) => c.name === "__Host-tl_session"), "no session");
  await page.goto(`${server.url}/account`);
  await page.waitForURL(/\/sign-in$/);
  const users = await adminApi(server, "GET", "/users");
  assert.ok(!users.body.some((u) => u.email === "kim@shop.example"), "no user made");

  await connect(ctx, true);
  await page.goto(IDP_START);
  await page.waitForURL(`${server.url}/account`);
  await page.getByRole("heading", { name: "Your account" }).waitFor();
  assert.match(await page.locator("main").textContent(), /kim@shop\.example · viewer/);
  cookies = await page.context().cookies(server.url);
  assert.ok(cookies.find((c) => c.name === "__Host-tl_session"), "a console session");
  await assertAccessible(page, "/account after IdP-initiated SAML sign-in");
  await screenshot(page, "saml-idp-initiated");
  await page.unroute(IDP_START);
  guard.check();
});

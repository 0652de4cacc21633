// Console flows shared by the tests: the admin API with init's token, invitations read from
// the outbox the local Mailer writes, signing in through the pages, sending events.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";

/** A call to the admin API with init's admin token; the parsed body (or null) and status. */
export async function adminApi(server, method, path, body) {
  const r = await fetch(`${server.url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${server.init.admin_token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Waits until `check()` returns a truthy value (polling every 100 ms, at most `ms`). */
export async function eventually(check, what, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The path of the newest link of `kind` (`invite`, `reset`, `sign-in/link`) mailed to `email`. */
export async function mailedLink(server, email, kind) {
  const pattern = new RegExp(`https?://[^\\s/]+(/${kind}/[A-Za-z0-9_-]+)`);
  return eventually(async () => {
    const mails = (await server.outbox()).filter((m) => m.text.toLowerCase().includes(`to: ${email.toLowerCase()}`));
    const found = mails.map((m) => m.text.match(pattern)).filter(Boolean);
    return found.length ? found[found.length - 1][1] : null;
  }, `a ${kind} link mailed to ${email}`);
}

export const PASSWORD = "correct horse battery staple 42";

/** Invites `email` with `role` through the admin API and accepts it in `page`: signed in. */
export async function inviteAndAccept(server, page, email, role, password = PASSWORD) {
  const invited = await adminApi(server, "POST", "/users", { email, role });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  const path = await mailedLink(server, email, "invite");
  await page.goto(server.url + path);
  await page.getByLabel("New password").fill(password);
  await page.getByLabel("Repeat the password").fill(password);
  await page.getByRole("button", { name: "Set password and sign in" }).click();
  await page.waitForURL(`${server.url}/`);
  return invited.body;
}

/** Signs in through the sign-in page. */
export async function signIn(server, page, email, password = PASSWORD) {
  await page.goto(`${server.url}/sign-in`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Sends Segment `track` events through the tracking API with init's write key, as a
 * server-side SDK does (`POST /v1/batch`, Basic auth); returns their messageIds. */
export async function sendEvents(server, names) {
  const batch = names.map((event, i) => ({
    type: "track",
    event,
    messageId: randomUUID(),
    userId: `user-${i}`,
    properties: { order_id: `A-${1000 + i}`, revenue: 49.9, currency: "EUR" },
    context: { traits: { email: `shopper${i}@example.com` }, consent: { categoryPreferences: { advertising: true, analytics: true } } },
  }));
  const r = await fetch(`${server.url}/v1/batch`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${server.init.write_key}:`).toString("base64")}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ batch }),
  });
  assert.equal(r.status, 200, await r.text());
  return batch.map((e) => e.messageId);
}

/** A webhook signing secret: `whsec_` and 32 random bytes in base64. */
export function signingSecret() {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/** A form post from the page itself (same origin), with the given fields; its status. */
export function formPost(page, path, fields) {
  return page.evaluate(async ([path, fields]) => {
    const r = await fetch(path, { method: "POST", body: new URLSearchParams(fields), redirect: "manual" });
    return r.status;
  }, [path, fields]);
}

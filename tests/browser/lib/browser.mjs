// Debian's chromium (CHROMIUM, else /usr/bin/chromium) driven by playwright-core: headless,
// no sandbox, nothing fetched from the network on its own, a fresh profile per launch. Each
// page gets a request guard (any request to a host other than loopback fails the test) and
// records Content-Security-Policy violations and page errors.
import { chromium } from "playwright-core";
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import assert from "node:assert/strict";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Launches chromium with a fresh user-data-dir (and `args` after the suite's flags);
 * `close()` removes it. */
export async function launch({ args = [] } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
  }
  const profile = await mkdtemp(path.join(tmpdir(), "tracklayer-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...args],
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * A new browser context (own cookies) in a launched browser, guarded: `guard.check()` fails
 * on any request that left loopback, any CSP violation and any uncaught page error.
 * Persistent contexts are one per profile, so each signed-in person gets their own launch.
 */
export async function guardedPage(context) {
  const problems = [];
  await context.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === "data:" || LOOPBACK.has(u.hostname)) return route.continue();
    problems.push(`request to a non-loopback host: ${u.href}`);
    return route.abort("blockedbyclient");
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to (execute|apply|load|connect)/i.test(msg.text())) {
      problems.push(`CSP violation: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return {
    page,
    guard: {
      problems,
      check() {
        assert.deepEqual(problems, [], "the page stayed on loopback, within its CSP, without errors");
      },
    },
  };
}

/** A launched browser with one guarded page: { browser, page, guard, close() }. */
export async function openBrowser() {
  const browser = await launch();
  const { page, guard } = await guardedPage(browser.context);
  return { browser, page, guard, close: () => browser.close() };
}

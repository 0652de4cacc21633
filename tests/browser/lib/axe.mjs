// axe-core run inside the page (injected through the DevTools protocol, so the page's CSP
// stays strict); fails on any serious or critical violation.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFile(require.resolve("axe-core/axe.min.js"), "utf8");

/** The serious and critical violations on the page, as readable lines. */
export async function axeViolations(page) {
  const source = await AXE_SOURCE;
  const injected = await page.evaluate(() => typeof window.axe === "object");
  if (!injected) await page.evaluate(source);
  const result = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ["violations"] }),
  );
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** Fails the test when axe finds a serious or critical violation on the page. */
export async function assertAccessible(page, what = page.url()) {
  assert.deepEqual(await axeViolations(page), [], `axe: no serious or critical violation on ${what}`);
}

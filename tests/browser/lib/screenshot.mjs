// Screenshots of pages under target/browser-screenshots/, at the desktop (1280 px) and,
// when asked, the phone (390 px) width.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { REPO } from "./server.mjs";

export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(REPO, "target/browser-screenshots");

/** Writes `<name>.png` (full page, 1280 px); with `{ narrow: true }` also `<name>-390.png`. */
export async function screenshot(page, name, { narrow = false } = {}) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const size = page.viewportSize();
  const written = [];
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  written.push(file);
  if (narrow) {
    await page.setViewportSize({ width: 390, height: 844 });
    const small = path.join(SCREENSHOT_DIR, `${name}-390.png`);
    await page.screenshot({ path: small, fullPage: true });
    written.push(small);
    await page.setViewportSize(size);
  }
  return written;
}

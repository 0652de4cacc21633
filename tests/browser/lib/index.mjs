// The browser suite's helpers, in one import.
export { startServer, tracklayer, tracklayerBin, REPO } from "./server.mjs";
export { launch, guardedPage, openBrowser, CHROMIUM } from "./browser.mjs";
export { screenshot, SCREENSHOT_DIR } from "./screenshot.mjs";
export { axeViolations, assertAccessible } from "./axe.mjs";
export { adminApi, eventually, mailedLink, inviteAndAccept, signIn, sendEvents, signingSecret, formPost, PASSWORD } from "./console.mjs";
export { webhookReceiver } from "./receiver.mjs";
export { suite } from "./suite.mjs";

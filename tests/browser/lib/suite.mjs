// One server and one browser per test file: `suite({ email, role, setup })` starts them before
// the file's tests (given an email, invites and signs in that user; then runs `setup(ctx)`),
// and stops them after (and whatever `setup` put in `ctx.close`).
import { before, after } from "node:test";
import { startServer } from "./server.mjs";
import { openBrowser } from "./browser.mjs";
import { inviteAndAccept } from "./console.mjs";

export function suite({ email, role, setup } = {}) {
  const ctx = {};
  before(async () => {
    ctx.server = await startServer();
    ctx.browser = await openBrowser();
    if (email) await inviteAndAccept(ctx.server, ctx.browser.page, email, role);
    if (setup) await setup(ctx);
  });
  after(async () => {
    await ctx.close?.();
    await ctx.browser?.close();
    await ctx.server?.stop();
  });
  return ctx;
}

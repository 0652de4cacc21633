// Starts `tracklayer serve` (the debug binary, or TRACKLAYER_BIN) on a fresh data directory
// and a free loopback port, after `tracklayer init --json`; stops it and removes the directory.
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The tracklayer binary: TRACKLAYER_BIN, else the workspace's debug build. */
export function tracklayerBin() {
  return process.env.TRACKLAYER_BIN || path.join(REPO, "target/debug/tracklayer");
}

/** `tracklayer <args>` against a data directory; its stdout. */
export async function tracklayer(args) {
  const { stdout } = await run(tracklayerBin(), args, { maxBuffer: 16 << 20 });
  return stdout;
}

/**
 * A running server: `url` (http://127.0.0.1:PORT), `dataDir`, `init` (what `init --json`
 * printed: workspace_id, admin_token, write_key, ...), `outbox()` (the mails written), `stop()`.
 */
export async function startServer({ email = "owner@shop.example", serveArgs = [] } = {}) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "tracklayer-browser-"));
  let init;
  try {
    init = JSON.parse(
      await tracklayer(["init", "--data-dir", dataDir, "--email", email, "--json"]),
    );
  } catch (e) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`tracklayer init failed (is ${tracklayerBin()} built? cargo build -p tracklayer): ${e.message}`);
  }
  const child = spawn(
    tracklayerBin(),
    ["serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--allow-private-egress", ...serveArgs],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" } },
  );
  let log = "";
  child.stderr.on("data", (d) => { log += d; });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`serve printed no address in 30 s:\n${out}\n${log}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`serve exited with ${code}:\n${out}\n${log}`)); });
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return {
    url,
    dataDir,
    init,
    log: () => log,
    /** The mails in the outbox, oldest first: { name, text } (headers and body as written). */
    async outbox() {
      const dir = path.join(dataDir, "outbox");
      const names = (await readdir(dir).catch(() => [])).filter((n) => n.endsWith(".eml")).sort();
      return Promise.all(names.map(async (name) => ({ name, text: await readFile(path.join(dir, name), "utf8") })));
    },
    /** Runs `tracklayer <args> --data-dir <dir>`. */
    cli: (args) => tracklayer([...args, "--data-dir", dataDir]),
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

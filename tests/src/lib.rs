//! Shared helpers of the end-to-end suites: a `tracklayer` process on a fresh data directory,
//! the real SDK clients, fake destinations, and byte-level scans of what TrackLayer left on disk.

pub mod fake;
pub mod lambda;
pub mod load;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repo")
        .to_path_buf()
}

/// The `tracklayer` binary of this build (`cargo test --workspace` builds it; `make test` too).
pub fn tracklayer_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-<hash> or target/<profile>/measure-delivery
    let bin = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("tracklayer"))
        .find(|b| b.is_file())
        .unwrap_or_else(|| exe.with_file_name("tracklayer"));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p tracklayer` (make test does)",
        bin.display()
    );
    bin
}

/// Runs `tracklayer <args>` to completion.
pub fn tracklayer(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(tracklayer_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .context("cannot run tracklayer")?;
    if !out.status.success() {
        bail!(
            "tracklayer {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// What `tracklayer init --json` printed.
#[derive(Debug, Clone)]
pub struct Keys {
    pub workspace_id: String,
    pub write_key: String,
    pub admin_token: String,
}

/// `tracklayer init --data-dir <dir> <extra>`.
pub fn init_with(dir: &Path, extra: &[&str]) -> anyhow::Result<Output> {
    let data_dir = dir.to_str().expect("utf-8 path");
    tracklayer(&[&["init", "--data-dir", data_dir][..], extra].concat())
}

/// `tracklayer init --json` on `dir`.
pub fn init(dir: &Path, region: &str) -> anyhow::Result<Keys> {
    let out = init_with(dir, &["--region", region, "--json"])?;
    let text = String::from_utf8(out.stdout)?;
    let v: Value =
        serde_json::from_str(text.trim()).context("init --json prints one JSON object")?;
    Ok(Keys {
        workspace_id: v["workspace_id"]
            .as_str()
            .context("workspace_id")?
            .to_owned(),
        write_key: v["write_key"].as_str().context("write_key")?.to_owned(),
        admin_token: v["admin_token"].as_str().context("admin_token")?.to_owned(),
    })
}

/// Adds a destination through the CLI; returns its id. Destination hosts of these suites do
/// not resolve in a sandbox without DNS, so the configure-time guard runs without its DNS part.
pub fn add_destination(dir: &Path, definition: &Value) -> anyhow::Result<String> {
    let out = tracklayer(&[
        "destinations",
        "add",
        "--allow-private-egress",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
        "--json",
        &definition.to_string(),
    ])?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["id"].as_str().context("id")?.to_owned())
}

/// The secrets the measurement binaries' fakes know, `[meta, ga4, tiktok, webhook]` as
/// [`fake_destinations`] takes them.
pub const MEASURE_SECRETS: [&str; 4] = [
    "EAAGmeasure",
    "ga4measure",
    "tiktokmeasure",
    // A made-up Standard Webhooks secret, used only against loopback.
    "whsec_bWVhc3VyZS1zaWduaW5nLWtleQ==", // pragma: allowlist secret
];

/// The destinations the measurement binaries route to, on the fakes at `base`: Meta CAPI,
/// GA4, TikTok and a webhook ([`fake_destinations`] knowing [`MEASURE_SECRETS`]).
pub fn measure_destinations(base: &str) -> Vec<Value> {
    fake_destinations(base, MEASURE_SECRETS, "G-MEASURE", Some("CMEASURE"))
}

/// Destinations on the fake vendors at `base` that fakes knowing `secrets` (`[meta, ga4,
/// tiktok, webhook]`, as [`Setup::start`] takes them) accept, in this order: Meta CAPI, GA4
/// with the measurement id `ga4_id`, TikTok with the pixel `tiktok_pixel` if there is one,
/// and a webhook to `{base}/hook/main`.
pub fn fake_destinations(
    base: &str,
    [meta, ga4, tiktok, webhook]: [&str; 4],
    ga4_id: &str,
    tiktok_pixel: Option<&str>,
) -> Vec<Value> {
    let mut specs = vec![
        serde_json::json!({"name": "Meta", "kind": "meta_capi", "endpoint": base,
                           "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
                           "secrets": {"access_token": meta}}),
        serde_json::json!({"name": "GA4", "kind": "ga4", "endpoint": base,
                           "config": {"measurement_id": ga4_id},
                           "secrets": {"api_secret": ga4}}),
    ];
    if let Some(pixel) = tiktok_pixel {
        specs.push(
            serde_json::json!({"name": "TikTok", "kind": "tiktok", "endpoint": base,
                                      "config": {"pixel_code": pixel},
                                      "secrets": {"access_token": tiktok}}),
        );
    }
    specs.push(serde_json::json!({"name": "Warehouse", "kind": "webhook",
                                  "config": {"url": format!("{base}/hook/main")},
                                  "secrets": {"signing_secret": webhook}}));
    specs
}

/// A running `tracklayer serve`, logging into `<data dir>/logs/serve.log` so that scans of
/// the data directory cover its logs too. Stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join("serve.log");
        let mut args = vec![
            "serve",
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ];
        args.extend_from_slice(extra);
        let mut command = Command::new(tracklayer_bin());
        command.args(&args).env("RUST_LOG", "debug");
        Self::launch(command, log)
    }

    /// Starts `command` (a server that prints `listening on <url>`) with its output in `log`.
    pub fn launch(mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let file = std::fs::File::create(&log)?;
        let child = command
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the server")?;
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            log,
        };
        server.url = server.wait_for_listen_line()?;
        Ok(server)
    }

    fn wait_for_listen_line(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let f = std::fs::File::open(&self.log)?;
            for line in BufReader::new(f).lines() {
                let line = line?;
                if let Some(rest) = line.split("listening on ").nth(1) {
                    if let Some(url) = rest.split_whitespace().next() {
                        return Ok(url.trim_end_matches(',').to_owned());
                    }
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "tracklayer serve exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("tracklayer serve did not start listening within 20 s")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "tracklayer serve exited with {status}: {}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("tracklayer serve did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Python of the test venv (`make test` creates `.venv`).
pub fn python() -> PathBuf {
    let py = std::env::var_os("TRACKLAYER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        py.exists(),
        "{} is missing: run `make test` (it creates the venv from infra/requirements-test.txt)",
        py.display()
    );
    py
}

/// Node with the SDK installed (`make test` runs `npm ci` in tests/sdk/node).
pub fn node_sdk_dir() -> PathBuf {
    let dir = repo_root().join("tests/sdk/node");
    assert!(
        dir.join("node_modules/@rudderstack/rudder-sdk-node")
            .exists(),
        "the Node SDK is not installed: run `make test` (it runs npm ci in tests/sdk/node)"
    );
    dir
}

/// Runs one of the SDK clients; returns its JSON summary line.
pub fn run_sdk(mut cmd: Command) -> anyhow::Result<Value> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("cannot start the SDK client")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "SDK client failed ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .last()
        .context("SDK client printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

pub fn python_sdk(
    url: &str,
    write_key: &str,
    prefix: &str,
    count: usize,
    gzip: bool,
) -> anyhow::Result<Value> {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/sdk/python/send_events.py"))
        .args(["--host", url, "--write-key", write_key, "--prefix", prefix])
        .args(["--count", &count.to_string(), "--deadline", "30"]);
    if gzip {
        cmd.arg("--gzip");
    }
    run_sdk(cmd)
}

pub fn node_sdk(url: &str, write_key: &str, prefix: &str, count: usize) -> anyhow::Result<Value> {
    let dir = node_sdk_dir();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("send_events.js"))
        .args(["--host", url, "--write-key", write_key, "--prefix", prefix])
        .args(["--count", &count.to_string(), "--deadline", "30"]);
    run_sdk(cmd)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Where any of `needles` occurs in any file under `dir`: `(file, needle)` pairs. A needle
/// of 32 or more hex digits (a digest, a subject index entry, an event id) is also looked
/// for as the bytes it spells, the form the store keeps it in.
pub fn scan(dir: &Path, needles: &[String]) -> Vec<(PathBuf, String)> {
    let forms: Vec<(&String, Vec<Vec<u8>>)> = needles
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| {
            let mut forms = vec![n.as_bytes().to_vec()];
            if n.len() >= 32 {
                forms.extend(hex::decode(n.as_str()).ok());
            }
            (n, forms)
        })
        .collect();
    let mut hits = Vec::new();
    for file in files_under(dir) {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for (n, forms) in &forms {
            if forms
                .iter()
                .any(|f| bytes.windows(f.len()).any(|w| w == f.as_slice()))
            {
                hits.push((file.clone(), (*n).clone()));
            }
        }
    }
    hits
}

/// Opens the data directory's database read-only.
pub fn database(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        dir.join("tracklayer.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open tracklayer.db")
}

/// Every event stored in `dir`'s database, each as the JSON document the store reads it as.
pub fn stored_events(dir: &Path) -> Vec<Value> {
    let db = database(dir);
    let mut stmt = db
        .prepare(
            "SELECT w.workspace_id, e.doc FROM events e
             JOIN workspace_numbers w ON w.number = e.workspace",
        )
        .unwrap();
    let events = stmt
        .query_map([], |r| {
            Ok(tracklayer_local::event_row_json(&r.get::<_, String>(0)?, r.get_ref(1)?).unwrap())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    events
}

/// SHA-256 hex.
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A purchase event `i` of `prefix`: 25 consecutive events share one shopper (so GA4, which
/// takes one client per request, can fill its 25-event requests).
pub fn purchase(prefix: &str, i: usize) -> Value {
    let shopper = i / 25;
    serde_json::json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": format!("{prefix}-{i}"),
        "userId": format!("{prefix}-user-{shopper}"),
        "anonymousId": format!("{prefix}-anon-{shopper}"),
        "properties": {
            "order_id": format!("{prefix}-{i}"),
            "revenue": 10.0 + (i % 90) as f64,
            "currency": "EUR",
            "products": [{"product_id": format!("sku-{}", i % 7), "quantity": 1, "price": 10.0}]
        },
        "context": {
            "ip": "198.51.100.23",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Test/1.0",
            "page": {"url": "https://shop.example.com/checkout/done"},
            "gclid": format!("{prefix}-gclid-{i}"),
            "traits": {"email": format!("shopper{shopper}@example.com"), "phone": "+49 30 1234567"},
            "consent": {"categoryPreferences": {"advertising": true, "analytics": true}}
        }
    })
}

/// Posts `count` purchases of `prefix` in batches of 100; panics unless all are accepted.
pub async fn post_purchases(url: &str, write_key: &str, prefix: &str, count: usize) {
    let client = reqwest::Client::new();
    let mut start = 0;
    while start < count {
        let end = (start + 100).min(count);
        let batch: Vec<Value> = (start..end).map(|i| purchase(prefix, i)).collect();
        let resp = client
            .post(format!("{url}/v1/batch"))
            .basic_auth(write_key, Some(""))
            .json(&serde_json::json!({ "batch": batch }))
            .send()
            .await
            .expect("post a batch");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], (end - start) as u64, "{body}");
        start = end;
    }
}

/// Waits until `done()` holds, or fails after `limit` with `what`.
pub async fn wait_until(limit: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Calls `attempt` every 250 ms until it answers `Ok`, and returns that; fails after `limit`
/// with `what` and the last `Err` (what was seen instead).
pub async fn poll<T, F>(limit: Duration, what: &str, mut attempt: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "{what}: {seen}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What most end-to-end tests start from, in this order: the fake vendors, the URL they serve
/// at, a temporary folder (removed when it drops), the data directory in it, initialised for
/// region "us", and that workspace's keys.
#[derive(Debug)]
pub struct Setup(
    pub std::sync::Arc<fake::Fakes>,
    pub String,
    pub tempfile::TempDir,
    pub PathBuf,
    pub Keys,
);

impl Setup {
    /// Starts fake vendors that know these secrets: Meta's access token, GA4's API secret,
    /// TikTok's access token and the webhook's signing secret.
    pub async fn start([meta, ga4, tiktok, webhook]: [&str; 4]) -> Self {
        let fakes = fake::Fakes::new(meta, ga4, tiktok, webhook);
        let base = fake::serve(fakes.clone()).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let keys = init(&dir, "us").unwrap();
        Setup(fakes, base, tmp, dir, keys)
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    #[test]
    fn a_hex_needle_is_found_as_text_and_as_the_bytes_it_spells() {
        let dir = tempfile::tempdir().unwrap();
        let digest = "00ff".repeat(8);
        let short = "beef".to_owned();
        std::fs::write(dir.path().join("text"), format!("..{digest}..")).unwrap();
        let mut raw = b"..".to_vec();
        raw.extend(hex::decode(&digest).unwrap());
        raw.extend(hex::decode(&short).unwrap());
        std::fs::write(dir.path().join("bytes"), raw).unwrap();
        let mut hits: Vec<(String, String)> = scan(dir.path(), &[digest.clone(), short])
            .into_iter()
            .map(|(f, n)| (f.file_name().unwrap().to_string_lossy().into_owned(), n))
            .collect();
        hits.sort();
        assert_eq!(
            hits,
            [
                ("bytes".to_owned(), digest.clone()),
                ("text".to_owned(), digest)
            ],
            "a needle shorter than 32 hex digits is looked for as text only"
        );
    }
}

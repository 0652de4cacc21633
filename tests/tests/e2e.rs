//! End to end: `tracklayer serve` on a fresh data directory, driven over loopback by the real
//! Segment Python SDK and RudderStack Node SDK, then inspected byte by byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use tracklayer_tests::*;

#[path = "e2e/abuse.rs"]
mod abuse;
#[path = "e2e/aws_lambda.rs"]
mod aws_lambda;
#[path = "e2e/aws_lambda_scim.rs"]
mod aws_lambda_scim;
#[path = "e2e/delivery.rs"]
mod delivery;
#[path = "e2e/dsr.rs"]
mod dsr;
#[path = "e2e/durability.rs"]
mod durability;
#[path = "e2e/firehose_fake.rs"]
mod firehose_fake;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/operator.rs"]
mod operator;
#[path = "e2e/saml_idp.rs"]
mod saml_idp;

const KINDS: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];
const META_TOKEN: &str = "EAAGm0PX4ZCpsBAtestaccesstoken"; // pragma: allowlist secret
const GA4_SECRET: &str = "ga4ApiSecretForTests"; // pragma: allowlist secret
const TIKTOK_TOKEN: &str = "tiktokAccessTokenForTests";
// A made-up Standard Webhooks secret, only ever used against loopback.
const WEBHOOK_SECRET: &str = "whsec_dGVzdC1vbmx5LXNpZ25pbmcta2V5LTEyMzQ1Njc4"; // pragma: allowlist secret

fn add_all_destinations(dir: &Path) -> BTreeMap<&'static str, String> {
    let defs = [
        (
            "meta_capi",
            json!({"name": "Meta", "kind": "meta_capi",
            "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
            "secrets": {"access_token": META_TOKEN}}),
        ),
        (
            "ga4",
            json!({"name": "GA4", "kind": "ga4",
            "config": {"measurement_id": "G-TEST1234"},
            "secrets": {"api_secret": GA4_SECRET}}),
        ),
        (
            "tiktok",
            json!({"name": "TikTok", "kind": "tiktok",
            "config": {"pixel_code": "CTESTPIXEL"},
            "secrets": {"access_token": TIKTOK_TOKEN}}),
        ),
        (
            "webhook",
            json!({"name": "Warehouse", "kind": "webhook",
            "config": {"url": "https://hooks.example.com/tracklayer"},
            "secrets": {"signing_secret": WEBHOOK_SECRET}}),
        ),
    ];
    defs.into_iter()
        .map(|(kind, def)| (kind, add_destination(dir, &def).expect("add destination")))
        .collect()
}

/// The raw values the SDK scripts send for `count` messages with `prefix`.
fn raw_identifiers(prefix: &str, count: usize) -> Vec<String> {
    let mut needles = vec![
        format!("Quackenbush{prefix}"),
        "Zebulon".into(),
        "Duckpond Lane".into(),
        "Springfield".into(),
        "1990-04-17".into(),
        "analytics-python".into(),
        META_TOKEN.into(),
        GA4_SECRET.into(),
        TIKTOK_TOKEN.into(),
        WEBHOOK_SECRET.into(),
        format!("{prefix}-user-"),
        format!("{prefix}-anon-"),
        format!("ref={prefix}-"),
        "203.0.113.".into(),
    ];
    for i in 0..count {
        needles.push(format!("{prefix}.buyer{i}@example.com"));
        let n = 1000 + i % 9000;
        needles.push(format!("+1 415 555 {n}"));
        needles.push(format!("415555{n}"));
    }
    needles
}

/// Per queue kind, the (message id, item) pairs queued.
type Queued = BTreeMap<String, Vec<(String, Value)>>;

/// Messages of `prefix` in the events table, and per queue kind the message ids queued.
fn stored(dir: &Path, prefix: &str) -> (Vec<Value>, Queued) {
    let db = database(dir);
    let events: Vec<Value> = stored_events(dir)
        .into_iter()
        .filter(|e| {
            e["message_id"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("{prefix}-"))
        })
        .collect();
    let mut queued = Queued::new();
    let mut stmt = db.prepare("SELECT kind, body FROM queue").unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap();
    // The embedded queue holds items by reference: an item's message id and hashes are its
    // event's (`hashed` under the destination's profile).
    let by_id: BTreeMap<String, &Value> = events
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap().to_owned(), e))
        .collect();
    for row in rows {
        let (kind, body) = row.unwrap();
        let Ok(tracklayer_core::event::Body::Reference(body)) =
            tracklayer_core::event::Body::decode(&body)
        else {
            panic!("the embedded queue holds items by reference");
        };
        for r in &body.refs {
            let item = serde_json::to_value(r).unwrap();
            let Some(event) = by_id.get(item["event_id"].as_str().unwrap()) else {
                continue;
            };
            let profile = match kind.as_str() {
                "meta_capi" | "webhook" => "meta",
                "ga4" => "google",
                other => other,
            };
            let mut item = item.clone();
            item["message_id"] = event["message_id"].clone();
            item["user_data"] = event["hashed"][profile].clone();
            let mid = item["message_id"].as_str().unwrap().to_owned();
            if mid.starts_with(&format!("{prefix}-")) {
                queued
                    .entry(kind.clone())
                    .or_default()
                    .push((mid, item.clone()));
            }
        }
    }
    (events, queued)
}

fn sdk_scenario(prefix: &str, count: usize, send: impl Fn(&str, &str) -> anyhow::Result<Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = init(&dir, "us").unwrap();
    let destinations = add_all_destinations(&dir);
    let mut server = Server::start(&dir, &[]).unwrap();

    let summary = send(&server.url, &keys.write_key).unwrap();
    assert_eq!(summary["errors"], 0, "{summary}");
    // The SDK retries nothing here, but send the same traffic again: dedup must hold.
    let again = send(&server.url, &keys.write_key).unwrap();
    assert_eq!(again["errors"], 0, "{again}");
    server.stop().unwrap();

    let (events, queued) = stored(&dir, prefix);
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), count, "every message stored");
    assert_eq!(events.len(), count, "and stored once, although sent twice");

    // Ads and analytics destinations get track/page/screen; the webhook gets every call.
    let expect = |types: &[&str]| -> BTreeSet<String> {
        (0..count)
            .filter(|i| types.contains(&KINDS[i % 6]))
            .map(|i| format!("{prefix}-{i}"))
            .collect()
    };
    for (kind, types) in [
        ("meta_capi", &["track", "page", "screen"][..]),
        ("ga4", &["track", "page", "screen"][..]),
        ("tiktok", &["track", "page", "screen"][..]),
        ("webhook", &KINDS[..]),
    ] {
        let items = queued.get(kind).cloned().unwrap_or_default();
        let got: Vec<String> = items.iter().map(|(m, _)| m.clone()).collect();
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(got.len(), unique.len(), "{kind}: each event queued once");
        assert_eq!(unique, expect(types), "{kind}: the routed events");
    }

    // Hashed per destination profile: Meta's em is SHA-256 of the normalized email.
    let i = 1; // a track call, carrying context.traits.email
    let email_hash = sha256_hex(&format!("{prefix}.buyer{i}@example.com"));
    let (_, meta_item) = queued["meta_capi"]
        .iter()
        .find(|(m, _)| *m == format!("{prefix}-{i}"))
        .unwrap();
    assert_eq!(meta_item["user_data"]["email"], email_hash.as_str());
    assert_eq!(
        meta_item["shared"], true,
        "click ids travel sealed, once for the event's destinations (IP and UA in its operational record)"
    );
    // Each decision is recorded with its reason.
    let event = events
        .iter()
        .find(|e| e["message_id"] == format!("{prefix}-{i}").as_str())
        .unwrap();
    for r in event["routing"].as_array().unwrap() {
        assert!(destinations
            .values()
            .any(|d| r["destination_id"] == d.as_str()));
        assert!(!r["consent"]["reason"].as_str().unwrap().is_empty());
    }

    // Nothing raw: not in the database, its WAL, the logs, anywhere in the data directory.
    let hits = scan(&dir, &raw_identifiers(prefix, count));
    assert!(hits.is_empty(), "raw identifiers on disk: {hits:?}");
}

#[test]
fn python_sdk_traffic_is_stored_once_hashed_routed_and_never_raw() {
    sdk_scenario("py", 60, |url, key| python_sdk(url, key, "py", 60, false));
}

#[test]
fn python_sdk_gzip_traffic_is_accepted() {
    sdk_scenario("pz", 12, |url, key| python_sdk(url, key, "pz", 12, true));
}

#[test]
fn node_sdk_gzip_traffic_is_stored_once_hashed_routed_and_never_raw() {
    sdk_scenario("nd", 60, |url, key| node_sdk(url, key, "nd", 60));
}

#[test]
fn init_json_prints_exactly_one_object_with_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = init_with(&dir, &["--region", "eu", "--json"]).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "workspace_id",
            "region",
            "admin_token",
            "write_key",
            "data_dir",
            "console_sign_in_link"
        ])
    );
    assert_eq!(v["region"], "eu");
    let link = v["console_sign_in_link"].as_str().unwrap();
    assert!(
        link.starts_with("http://127.0.0.1:8080/sign-in/link/"),
        "{link}"
    );
    assert!(v["workspace_id"].as_str().unwrap().starts_with("ws_eu_"));
    assert!(v["write_key"]
        .as_str()
        .unwrap()
        .starts_with("tl_ingest_eu_"));
    // A second init on the same directory is refused rather than overwriting keys.
    assert!(init_with(&dir, &[]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_an_empty_directory_initializes_it_and_prints_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fresh");
    let mut server = Server::start(&dir, &[]).unwrap();
    let log = std::fs::read_to_string(&server.log).unwrap();
    let key = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("write key:"))
        .expect("serve printed the write key")
        .trim()
        .to_owned();
    // ... and the owner's one-time console sign-in link, under the address it listens on.
    let link_prefix = format!("{}/sign-in/link/", server.url);
    assert!(log.contains(&link_prefix), "{log}");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/track", server.url))
        .basic_auth(&key, Some(""))
        .json(&json!({"userId": "u1", "event": "Signed Up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_traffic_loses_no_accepted_event() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = init(&dir, "us").unwrap();
    let mut server = Server::start(&dir, &[]).unwrap();
    let url = format!("{}/v1/batch", server.url);
    let answered = Arc::new(AtomicUsize::new(0));
    // Eight clients post batches of 10 until the server stops answering.
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (url, key, answered) = (url.clone(), keys.write_key.clone(), answered.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut accepted = Vec::new();
                for n in 0..10_000 {
                    let batch: Vec<Value> = (0..10)
                        .map(|j| {
                            json!({"type": "track", "event": "Order Completed", "userId": "u",
                                        "messageId": format!("sig-{w}-{n}-{j}")})
                        })
                        .collect();
                    let resp = client
                        .post(&url)
                        .basic_auth(&key, Some(""))
                        .json(&json!({"batch": batch}))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            accepted.push(format!("sig-{w}-{n}"));
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                accepted
            })
        })
        .collect();
    while answered.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    let mut accepted = Vec::new();
    for w in workers {
        accepted.extend(w.await.unwrap());
    }
    server.stop().unwrap();
    assert!(accepted.len() >= 100);
    let (events, _) = stored(&dir, "sig");
    let stored_ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_owned())
        .collect();
    for batch in accepted {
        for j in 0..10 {
            let id = format!("{batch}-{j}");
            assert!(
                stored_ids.contains(&id),
                "{id} was answered 200 but is not stored"
            );
        }
    }
}

#[test]
fn the_readme_curl_example_is_accepted() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- e2e: curl -->")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README has a curl example after <!-- e2e: curl -->");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = init(&dir, "us").unwrap();
    let mut server = Server::start(&dir, &[]).unwrap();
    let script = block.replace("http://127.0.0.1:8080", &server.url);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .env("WRITE_KEY", &keys.write_key)
        .output()
        .unwrap();
    server.stop().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["success"], true, "{v}");
    assert!(v["accepted"].as_u64().unwrap() >= 1, "{v}");
}

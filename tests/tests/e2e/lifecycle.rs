//! Data lifecycle end to end on `tracklayer serve`: BYOK (a customer key that the customer
//! disables and enables again) and residency (requests of another region's workspace).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tracklayer_tests::*;

const META_TOKEN: &str = "EAAGlifecycletesttoken";
const GA4_SECRET: &str = "ga4LifecycleTestSecret"; // pragma: allowlist secret
const TIKTOK_TOKEN: &str = "tiktokLifecycleTestToken";
const WEBHOOK_SECRET: &str = "whsec_bGlmZWN5Y2xlLXRlc3Qtc2lnbmluZy1rZXktMDE="; // pragma: allowlist secret
const SECRETS: [&str; 4] = [META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET];
const CUSTOMER_KEY: &str =
    "arn:aws:kms:us-east-1:444455556666:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// The file the local keyring reads for `arn` (what a KMS key is on one machine).
fn customer_key_file(dir: &Path, arn: &str) -> PathBuf {
    tracklayer_local::FileKeyring::customer_key_file(&dir.join("customer-keys"), arn)
}

fn count(dir: &Path, sql: &str) -> i64 {
    database(dir).query_row(sql, [], |r| r.get(0)).unwrap()
}

async fn track(url: &str, write_key: &str, message_id: &str) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/track"))
        .basic_auth(write_key, Some(""))
        .json(
            &json!({"userId": "u-1", "event": "Order Completed", "messageId": message_id,
                      "properties": {"revenue": 10, "currency": "EUR"}}),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_customer_key_stops_ingest_and_holds_deliveries_until_it_is_enabled() {
    let Setup(fakes, base, _tmp, dir, keys) = Setup::start(SECRETS).await;
    let webhook = add_destination(
        &dir,
        &json!({"name": "Warehouse", "kind": "webhook", "paused": true,
        "config": {"url": format!("{base}/hook/byok")},
        "secrets": {"signing_secret": WEBHOOK_SECRET}}),
    )
    .unwrap();
    let key_file = customer_key_file(&dir, CUSTOMER_KEY);
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::write(&key_file, [0x5au8; 32]).unwrap();
    let args = [
        "--allow-private-egress",
        "--retry-base-ms",
        "20",
        "--retry-cap-ms",
        "200",
        "--max-attempts",
        "2",
        "--paused-recheck-ms",
        "200",
    ];
    let mut server = Server::start(&dir, &args).unwrap();

    // The admin switches the workspace to the customer's key.
    let resp = reqwest::Client::new()
        .put(format!("{}/admin/v1/encryption-key", server.url))
        .bearer_auth(&keys.admin_token)
        .json(&json!({"key_arn": CUSTOMER_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ws: Value = resp.json().await.unwrap();
    assert_eq!(ws["encryption_key"], CUSTOMER_KEY);
    let n = 20;
    post_purchases(&server.url, &keys.write_key, "bk", n).await;
    server.stop().unwrap();

    // The customer disables the key (here: the key file goes away); a fresh process has no
    // data key in memory.
    let disabled = key_file.with_extension("disabled");
    std::fs::rename(&key_file, &disabled).unwrap();
    let mut server = Server::start(&dir, &args).unwrap();
    let events_before = count(&dir, "SELECT count(*) FROM events");
    let queued_before = count(&dir, "SELECT count(*) FROM queue");
    let (status, ct, body) = track(&server.url, &keys.write_key, "bk-while-disabled").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(ct, "application/problem+json");
    assert!(
        body["type"].as_str().unwrap().contains("key-unavailable"),
        "{body}"
    );
    assert_eq!(count(&dir, "SELECT count(*) FROM events"), events_before);
    assert_eq!(count(&dir, "SELECT count(*) FROM queue"), queued_before);

    // Deliveries wait: the destination is resumed, but nothing can be opened or sent.
    tracklayer(&[
        "destinations",
        "resume",
        "--data-dir",
        dir.to_str().unwrap(),
        &webhook,
    ])
    .unwrap();
    // The worker holds every message back, round after round (more rounds than the attempt
    // limit), because the key is unavailable: nothing sent, no attempt spent.
    super::delivery::wait_until_held(&dir, &webhook, 3).await;
    assert!(fakes.received("webhook:byok").is_empty(), "nothing sent");
    let attempts = super::delivery::spent_attempts(&dir, &webhook);
    assert!(attempts.iter().all(|a| *a == 0), "{attempts:?}");
    assert_eq!(
        count(&dir, "SELECT count(*) FROM queue WHERE dead_at IS NOT NULL"),
        0,
        "nothing dead-lettered"
    );
    assert!(
        count(&dir, "SELECT count(*) FROM queue") > 0,
        "still queued"
    );

    // The key is enabled again: ingest works and the queued deliveries arrive.
    std::fs::rename(&disabled, &key_file).unwrap();
    let (status, _, body) = track(&server.url, &keys.write_key, "bk-after").await;
    assert_eq!(status, 200, "{body}");
    wait_until(
        Duration::from_secs(30),
        "the queued deliveries after the key is back",
        || fakes.received("webhook:byok").len() > n,
    )
    .await;
    server.stop().unwrap();
    assert!(fakes.received("webhook:byok").values().all(|c| *c == 1));
    assert_eq!(
        count(&dir, "SELECT count(*) FROM queue WHERE dead_at IS NOT NULL"),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_for_a_workspace_of_the_other_region_get_421_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let us_dir = tmp.path().join("us");
    let eu_dir = tmp.path().join("eu");
    let us = init(&us_dir, "us").unwrap();
    // An eu workspace, created by the eu deployment: its keys reach the us server.
    let eu = init(&eu_dir, "eu").unwrap();
    let mut server = Server::start(&us_dir, &[]).unwrap();
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("region us"), "{log}");
    let client = reqwest::Client::new();
    let eu_endpoint = "https://eu.api.tracklayer.io";
    let message = "eu-resident-message-7f3a";

    let requests = vec![
        // Tracking: Basic auth, writeKey in the body, Bearer; single calls and a batch.
        client
            .post(format!("{}/v1/track", server.url))
            .basic_auth(&eu.write_key, Some(""))
            .json(&json!({"userId": "eu-user-1", "event": "Order Completed",
                          "messageId": message, "context": {"traits": {"email": "eu.person@example.com"}}})),
        client
            .post(format!("{}/v1/batch", server.url))
            .json(&json!({"writeKey": eu.write_key, "batch": [
                {"type": "identify", "userId": "eu-user-1", "messageId": format!("{message}-b"),
                 "traits": {"email": "eu.person@example.com"}}]})),
        client
            .post(format!("{}/v1/page", server.url))
            .bearer_auth(&eu.write_key)
            .json(&json!({"userId": "eu-user-1", "name": "Home", "messageId": format!("{message}-p")})),
        // Admin: reads and writes.
        client
            .get(format!("{}/admin/v1/workspace", server.url))
            .bearer_auth(&eu.admin_token),
        client
            .post(format!("{}/admin/v1/users", server.url))
            .bearer_auth(&eu.admin_token)
            .json(&json!({"email": "eu.admin@example.com", "role": "admin"})),
        client
            .put(format!("{}/admin/v1/retention", server.url))
            .bearer_auth(&eu.admin_token)
            .json(&json!({"event_retention_days": 30})),
    ];
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.send().await.unwrap());
    }
    for resp in answers {
        let url = resp.url().path().to_owned();
        assert_eq!(resp.status(), 421, "{url}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["endpoint"], eu_endpoint, "{url}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("eu"),
            "{url}: {body}"
        );
    }

    // The us workspace itself is served, and its region cannot be changed.
    let resp = client
        .patch(format!("{}/admin/v1/workspace", server.url))
        .bearer_auth(&us.admin_token)
        .json(&json!({"region": "eu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "region", "{body}");
    let ws: Value = client
        .get(format!("{}/admin/v1/workspace", server.url))
        .bearer_auth(&us.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ws["region"], "us");
    server.stop().unwrap();

    // Nothing of the eu workspace reached the us data directory: not the database, its WAL,
    // the logs, anywhere.
    assert_eq!(count(&us_dir, "SELECT count(*) FROM events"), 0);
    assert_eq!(count(&us_dir, "SELECT count(*) FROM queue"), 0);
    let eu_key_id = eu.write_key.split('_').nth(3).unwrap().to_owned();
    let eu_token_id = eu.admin_token.split('_').nth(3).unwrap().to_owned();
    let needles = vec![
        eu.workspace_id.clone(),
        eu_key_id,
        eu_token_id,
        message.to_owned(),
        "eu-user-1".to_owned(),
        "eu.person@example.com".to_owned(),
        sha256_hex("eu.person@example.com"),
        "eu.admin@example.com".to_owned(),
    ];
    let hits = scan(&us_dir, &needles);
    assert!(
        hits.is_empty(),
        "eu data in the us data directory: {hits:?}"
    );
}

//! Data-subject requests end to end: `tracklayer serve` with fake destinations; an erasure
//! that leaves no byte of the subject in the data directory, and suppression afterwards.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tracklayer_core::crypto::WorkspaceKeys;
use tracklayer_core::identity::{self, Field, Hints, Prepared, Profile};
use tracklayer_core::ports::Keyring;
use tracklayer_core::workspace::Workspace;
use tracklayer_tests::fake::Fakes;
use tracklayer_tests::*;

const META_TOKEN: &str = "EAAGdsrtesttoken";
const GA4_SECRET: &str = "ga4DsrTestSecret"; // pragma: allowlist secret
const TIKTOK_TOKEN: &str = "tiktokDsrTestToken";
const WEBHOOK_SECRET: &str = "whsec_ZHNyLXRlc3Qtc2lnbmluZy1rZXktMDAwMDAwMDE="; // pragma: allowlist secret
const SECRETS: [&str; 4] = [META_TOKEN, GA4_SECRET, TIKTOK_TOKEN, WEBHOOK_SECRET];
const SINKS: [&str; 4] = ["meta_capi", "ga4", "tiktok", "webhook:main"];

/// A shopper's identifiers, as the client sends them.
struct Shopper {
    tag: &'static str,
    email: &'static str,
    phone: &'static str,
    user_id: &'static str,
    anonymous_id: &'static str,
}

const ALICE: Shopper = Shopper {
    tag: "alice-dsr",
    email: "alice.dsr@example.com",
    phone: "+49 30 5550001",
    user_id: "alice-user-7731",
    anonymous_id: "alice-anon-7731",
};

const BOB: Shopper = Shopper {
    tag: "bob-dsr",
    email: "bob.dsr@example.com",
    phone: "+49 30 5550002",
    user_id: "bob-user-4410",
    anonymous_id: "bob-anon-4410",
};

fn purchase(s: &Shopper, i: usize) -> Value {
    let id = format!("{}-{i}", s.tag);
    json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": id,
        "userId": s.user_id,
        "anonymousId": s.anonymous_id,
        "properties": {"order_id": id, "revenue": 20 + i, "currency": "EUR"},
        "context": {
            "ip": "198.51.100.77",
            "userAgent": "Mozilla/5.0 DsrTest/1.0",
            "traits": {"email": s.email, "phone": s.phone},
            "consent": {"categoryPreferences": {"advertising": true, "analytics": true}}
        }
    })
}

async fn post(url: &str, write_key: &str, s: &Shopper, range: std::ops::Range<usize>) -> Value {
    let batch: Vec<Value> = range.map(|i| purchase(s, i)).collect();
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/batch"))
        .basic_auth(write_key, Some(""))
        .json(&json!({ "batch": batch }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn add_destinations(dir: &Path, base: &str) {
    for def in fake_destinations(base, SECRETS, "G-DSRTEST1", Some("CDSRPIXEL")) {
        add_destination(dir, &def).unwrap();
    }
}

fn count(dir: &Path, sql: &str) -> i64 {
    database(dir).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every form in which a shopper's data could sit on disk: raw identifiers, per-destination
/// hashes (computed with the identity module), subject-index values (computed with the
/// workspace key), event ids (both spellings) and the order ids of the event metadata.
async fn needles(dir: &Path, s: &Shopper, event_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![
        s.tag.into(),
        s.email.into(),
        s.phone.into(),
        s.user_id.into(),
        s.anonymous_id.into(),
    ];
    let fields = [
        (Field::Email, s.email),
        (Field::Phone, s.phone),
        (Field::ExternalId, s.user_id),
    ];
    for profile in [Profile::Meta, Profile::Google, Profile::TikTok] {
        for (field, raw) in fields {
            if let Ok(Prepared::Hashed(h)) =
                identity::prepare(profile, field, raw, Hints::default())
            {
                out.push(h);
            }
        }
    }
    let doc: String = database(dir)
        .query_row("SELECT doc FROM workspaces", [], |r| r.get(0))
        .unwrap();
    let ws: Workspace = serde_json::from_str(&doc).unwrap();
    let keyring = tracklayer_local::FileKeyring::open(
        &dir.join("master.key"),
        dir.join("customer-keys"),
        std::sync::Arc::new(tracklayer_core::clock::SystemIds),
    )
    .unwrap();
    let key = keyring
        .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
        .await
        .unwrap();
    let keys = WorkspaceKeys::new(&key);
    for (field, raw) in fields {
        let canonical = identity::canonical_for_index(field, raw, Hints::default()).unwrap();
        out.push(keys.subject_index(tracklayer_core::ingest::field_tag(field), &canonical));
    }
    out.push(keys.subject_index("anonymous_id", s.anonymous_id));
    for id in event_ids {
        out.push(id.clone());
        let hex = id.trim_start_matches("evt_");
        out.push(hex.into());
        out.push(format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ));
    }
    out
}

/// The stored events of a shopper: (event id, subjects, every hash).
fn stored(dir: &Path, s: &Shopper) -> Vec<(String, BTreeSet<String>)> {
    stored_events(dir)
        .into_iter()
        .filter(|e| e["message_id"].as_str().unwrap().starts_with(s.tag))
        .map(|e| {
            let id = tracklayer_core::event::EventId(
                serde_json::from_value(e["event_id"].clone()).unwrap(),
            )
            .to_string();
            let mut values: BTreeSet<String> = e["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            for per_profile in e["hashed"].as_object().unwrap().values() {
                for h in per_profile.as_object().unwrap().values() {
                    values.insert(h.as_str().unwrap().to_owned());
                }
            }
            (id, values)
        })
        .collect()
}

/// `GET path` on the admin API.
async fn admin_get(url: &str, token: &str, path: &str) -> (u16, Value) {
    admin(url, token, reqwest::Method::GET, path, None).await
}

/// `method path` on the admin API with `token`: the status and the JSON body (`null` if none).
pub(crate) async fn admin(
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn received_of(fakes: &Fakes, sink: &str, s: &Shopper) -> usize {
    fakes
        .received(sink)
        .keys()
        .filter(|k| k.starts_with(s.tag))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_leaves_no_byte_of_the_subject_on_disk_and_suppresses_its_later_events() {
    let Setup(fakes, base, _tmp, dir, keys) = Setup::start(SECRETS).await;
    add_destinations(&dir, &base);
    let mut server = Server::start(
        &dir,
        &["--allow-private-egress", "--dsr-interval-ms", "200"],
    )
    .unwrap();

    // A and B shop; every destination gets every event.
    let (a_count, b_count) = (30, 12);
    post(&server.url, &keys.write_key, &ALICE, 0..a_count).await;
    post(&server.url, &keys.write_key, &BOB, 0..b_count).await;
    wait_until(
        Duration::from_secs(60),
        "every event delivered everywhere",
        || {
            SINKS.iter().all(|s| {
                received_of(&fakes, s, &ALICE) == a_count && received_of(&fakes, s, &BOB) == b_count
            })
        },
    )
    .await;
    let total = (a_count + b_count) as i64;
    wait_until(
        Duration::from_secs(30),
        "the delivery log complete and the queue empty",
        || {
            count(&dir, "SELECT COUNT(*) FROM delivery_log") == total * 4
                && count(&dir, "SELECT COUNT(*) FROM queue") == 0
        },
    )
    .await;

    // What A and B left, found two ways: in the store, and computed independently.
    let a_stored = stored(&dir, &ALICE);
    let b_stored = stored(&dir, &BOB);
    assert_eq!((a_stored.len(), b_stored.len()), (a_count, b_count));
    let a_ids: Vec<String> = a_stored.iter().map(|(id, _)| id.clone()).collect();
    let b_ids: Vec<String> = b_stored.iter().map(|(id, _)| id.clone()).collect();
    let a_needles = needles(&dir, &ALICE, &a_ids).await;
    let b_needles = needles(&dir, &BOB, &b_ids).await;
    for (_, values) in &a_stored {
        for v in values {
            assert!(
                a_needles.contains(v),
                "the suite computes every stored hash and index value of A"
            );
        }
    }
    assert!(
        !scan(&dir, &a_needles).is_empty(),
        "A is on disk before the erasure"
    );

    // The erasure, as a customer's admin submits it (another spelling of the same mailbox).
    let (status, submitted) = admin(
        &server.url,
        &keys.admin_token,
        reqwest::Method::POST,
        "/admin/v1/data_subject_requests",
        Some(json!({"type": "erasure", "reference": "DSR-2026-001",
                    "subject": {"email": " Alice.DSR@Example.com", "phone": ALICE.phone,
                                "external_id": ALICE.user_id, "anonymous_id": ALICE.anonymous_id}})),
    )
    .await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["status"], "pending");
    let path = format!(
        "/admin/v1/data_subject_requests/{}",
        submitted["id"].as_str().unwrap()
    );
    let done = poll(Duration::from_secs(90), "erasure not completed", || async {
        let (_, r) = admin_get(&server.url, &keys.admin_token, &path).await;
        match r["status"] == "completed" {
            true => Ok(r),
            false => Err(r.to_string()),
        }
    })
    .await;

    // The receipt matches what was ingested and delivered.
    let receipt = &done["receipt"];
    let a = a_count as u64;
    assert_eq!(receipt["counts"]["events"], a, "{receipt}");
    assert_eq!(receipt["counts"]["operational_records"], a);
    assert_eq!(receipt["counts"]["dedup_markers"], a);
    assert_eq!(receipt["counts"]["delivery_log_entries"], a * 4);
    assert_eq!(
        receipt["counts"]["subject_index_entries"],
        a * 4,
        "email, phone, user id, anonymous id"
    );
    assert_eq!(receipt["suppressed"], true);
    let destinations = receipt["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 4);
    for d in destinations {
        assert_eq!(
            (d["events_routed"].as_u64(), d["events_delivered"].as_u64()),
            (Some(a), Some(a)),
            "{d}"
        );
        assert!(
            d["customer_action"]
                .as_str()
                .is_some_and(|t| t.contains(&format!("{a} events"))),
            "{d}"
        );
    }

    // Later events of A are dropped and counted; B's go on.
    let later = post(&server.url, &keys.write_key, &ALICE, a_count..a_count + 5).await;
    assert_eq!(
        (later["accepted"].as_u64(), later["suppressed"].as_u64()),
        (Some(5), Some(5)),
        "{later}"
    );
    let b_later = post(&server.url, &keys.write_key, &BOB, b_count..b_count + 2).await;
    assert_eq!(b_later["suppressed"], 0);
    wait_until(
        Duration::from_secs(30),
        "B's later events delivered",
        || {
            SINKS
                .iter()
                .all(|s| received_of(&fakes, s, &BOB) == b_count + 2)
        },
    )
    .await;
    for sink in SINKS {
        assert_eq!(
            received_of(&fakes, sink, &ALICE),
            a_count,
            "{sink} got nothing of A after the erasure"
        );
    }
    assert_eq!(stored(&dir, &ALICE).len(), 0);
    assert_eq!(stored(&dir, &BOB).len(), b_count + 2);

    // Byte by byte, the database, its WAL and shared memory, the logs, the outbox: nothing of A.
    let files = files_under(&dir);
    assert!(
        files.iter().any(|f| f.ends_with("tracklayer.db-wal")),
        "{files:?}"
    );
    let hits = scan(&dir, &a_needles);
    assert!(
        hits.is_empty(),
        "A is still on disk while serving: {hits:?}"
    );
    assert!(
        !scan(&dir, &b_ids).is_empty(),
        "B's events are intact while serving"
    );
    let mails = files_under(&dir.join("outbox"));
    assert_eq!(mails.len(), 1, "the admins were told");
    server.stop().unwrap();
    let hits = scan(&dir, &a_needles);
    assert!(hits.is_empty(), "A is on disk after shutdown: {hits:?}");
    let b_hits: BTreeSet<String> = scan(&dir, &b_needles).into_iter().map(|(_, n)| n).collect();
    for id in &b_ids {
        assert!(b_hits.contains(id), "B's event {id} is intact");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_export_lists_the_subjects_events_and_hashed_ids_and_nothing_of_others() {
    let Setup(fakes, base, _tmp, dir, keys) = Setup::start(SECRETS).await;
    add_destinations(&dir, &base);
    let server = Server::start(
        &dir,
        &["--allow-private-egress", "--dsr-interval-ms", "200"],
    )
    .unwrap();
    post(&server.url, &keys.write_key, &ALICE, 0..4).await;
    post(&server.url, &keys.write_key, &BOB, 0..3).await;
    wait_until(Duration::from_secs(60), "delivery", || {
        SINKS.iter().all(|s| received_of(&fakes, s, &ALICE) == 4)
            && count(&dir, "SELECT COUNT(*) FROM delivery_log") == 7 * 4
    })
    .await;
    let a_stored = stored(&dir, &ALICE);
    let b_ids: Vec<String> = stored(&dir, &BOB).into_iter().map(|(id, _)| id).collect();

    let (status, submitted) = admin(
        &server.url,
        &keys.admin_token,
        reqwest::Method::POST,
        "/admin/v1/data_subject_requests",
        Some(json!({"type": "access", "subject": {"external_id": ALICE.user_id}})),
    )
    .await;
    assert_eq!(status, 202, "{submitted}");
    let export = format!(
        "/admin/v1/data_subject_requests/{}/export",
        submitted["id"].as_str().unwrap()
    );
    let doc = poll(Duration::from_secs(60), "export not ready", || async {
        let (status, body) = admin_get(&server.url, &keys.admin_token, &export).await;
        if status == 200 {
            return Ok(body);
        }
        assert_eq!(status, 409, "not ready yet: {body}");
        Err(body.to_string())
    })
    .await;
    let events = doc["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    let text = doc.to_string();
    for (id, _) in &a_stored {
        assert!(text.contains(id.as_str()), "A's event {id} is listed");
    }
    for profile in [Profile::Meta, Profile::Google, Profile::TikTok] {
        for (field, raw) in [
            (Field::Email, ALICE.email),
            (Field::Phone, ALICE.phone),
            (Field::ExternalId, ALICE.user_id),
        ] {
            if let Ok(Prepared::Hashed(h)) =
                identity::prepare(profile, field, raw, Hints::default())
            {
                assert!(text.contains(&h), "{profile:?} {field:?} hash listed");
            }
        }
    }
    let hashed: Vec<&Value> = events.iter().map(|e| &e["hashed_identifiers"]).collect();
    let email_hash =
        match identity::prepare(Profile::Meta, Field::Email, ALICE.email, Hints::default()) {
            Ok(Prepared::Hashed(h)) => h,
            other => panic!("{other:?}"),
        };
    assert!(
        hashed
            .iter()
            .all(|h| h["meta"]["email"] == email_hash.as_str()),
        "{hashed:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["deliveries"].as_array().unwrap().len() == 4));
    assert!(events.iter().all(|e| e["properties"]["currency"] == "EUR"));
    for id in &b_ids {
        assert!(!text.contains(id.as_str()), "nothing of B");
    }
    assert!(
        !text.contains(ALICE.email) && !text.contains(BOB.tag),
        "no raw identifier, nothing of B"
    );
    assert_eq!(
        stored(&dir, &ALICE).len(),
        4,
        "an access request deletes nothing"
    );
}

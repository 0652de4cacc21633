//! Durability under kill -9: `tracklayer serve` (its delivery workers on, the destination
//! paused, so that they hold its messages back over and over) takes load and is killed with
//! SIGKILL at random moments, then restarted; every event it answered 200 for is stored, and
//! once the destination is resumed it reaches it exactly once with nothing left to send again.
//! The clients retry as SDKs do: a batch that got no answer is sent again, to the restarted
//! server, until it is answered 200, so events the killed process had stored but not queued
//! would be taken for duplicates of themselves and never sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracklayer_tests::*;

const ROUNDS: usize = 5;
const SENDERS: usize = 4;
const EVENTS_PER_REQUEST: usize = 10;

/// xorshift64: random kill moments, reproducible from the printed seed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// The messageIds of a batch's events.
fn message_ids(batch: &[Value]) -> impl Iterator<Item = String> + '_ {
    batch
        .iter()
        .filter_map(|e| e["messageId"].as_str().map(str::to_owned))
}

/// What one client got through before the server went away.
struct Sent {
    /// The messageIds of every event in a batch answered 200.
    acknowledged: Vec<String>,
    /// The batch sent when the server went away, unanswered: the client sends it again.
    unanswered: Option<Vec<Value>>,
}

/// Posts `retry` (a batch the last server never answered) and then new batches to `url`
/// until the server goes away (counting the batches answered 200 in `answered`).
async fn send_until_killed(
    url: String,
    write_key: String,
    prefix: String,
    answered: Arc<AtomicUsize>,
    retry: Option<Vec<Value>>,
) -> Sent {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut next = retry;
    for n in 0.. {
        let batch: Vec<Value> = next.take().unwrap_or_else(|| {
            (0..EVENTS_PER_REQUEST)
                .map(|i| purchase(&format!("{prefix}-{n}"), i))
                .collect()
        });
        let sent = client
            .post(format!("{url}/v1/batch"))
            .basic_auth(&write_key, Some(""))
            .json(&json!({ "batch": batch }))
            .send()
            .await;
        let Ok(resp) = sent else {
            return Sent {
                acknowledged,
                unanswered: Some(batch),
            };
        };
        if resp.status() == 200 {
            answered.fetch_add(1, Ordering::Relaxed);
            acknowledged.extend(message_ids(&batch));
        } else {
            // Refused (503 while busy): sent again, as an SDK would.
            next = Some(batch);
        }
    }
    unreachable!("the loop ends when the server goes away")
}

/// `serve` while the destination is paused: its worker holds each message back and looks at it
/// again every 100 ms; what a killed process had received comes back 500 ms after its receive.
const SERVE_PAUSED: [&str; 7] = [
    "--allow-private-egress",
    "--paused-recheck-ms",
    "100",
    "--visibility-ms",
    "500",
    "--batch-window-ms",
    "20",
];

/// One round: load from `SENDERS` clients, each first sending again its batch the last
/// round left unanswered (`retries`), SIGKILL `after` the first answer 200; the messageIds
/// answered 200. `retries` is left with the batches this round left unanswered.
async fn load_then_kill(
    dir: &std::path::Path,
    write_key: &str,
    round: usize,
    after: Duration,
    retries: &mut [Option<Vec<Value>>; SENDERS],
) -> Vec<String> {
    let server = Server::start(dir, &SERVE_PAUSED).unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|c| {
            tokio::spawn(send_until_killed(
                server.url.clone(),
                write_key.to_owned(),
                format!("r{round}c{c}"),
                answered.clone(),
                retries[c].take(),
            ))
        })
        .collect();
    wait_until(Duration::from_secs(20), "a first answer 200", || {
        answered.load(Ordering::Relaxed) > 0
    })
    .await;
    tokio::time::sleep(after).await;
    // Dropping a running Server kills it with SIGKILL (Child::kill) and reaps it.
    drop(server);
    let mut acknowledged = Vec::new();
    for (c, s) in senders.into_iter().enumerate() {
        let sent = s.await.unwrap();
        acknowledged.extend(sent.acknowledged);
        retries[c] = sent.unanswered;
    }
    acknowledged
}

fn count(dir: &std::path::Path, query: &str) -> i64 {
    database(dir).query_row(query, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_answered_200_before_a_kill_9_is_stored_and_delivered_exactly_once() {
    let started = Instant::now();
    let Setup(fakes, base, _tmp, dir, keys) = Setup::start([
        super::META_TOKEN,
        super::GA4_SECRET,
        super::TIKTOK_TOKEN,
        super::WEBHOOK_SECRET,
    ])
    .await;
    let meta = add_destination(
        &dir,
        &json!({"name": "Meta", "kind": "meta_capi", "endpoint": base, "paused": true,
                "config": {"pixel_id": "1234567890", "api_version": "v21.0"},
                "secrets": {"access_token": super::META_TOKEN}}),
    )
    .unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill moments from seed {seed}");

    // Arrange/Act: load, SIGKILL at a random moment, restart, ROUNDS times.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut retries: [Option<Vec<Value>>; SENDERS] = Default::default();
    for round in 0..ROUNDS {
        let after = Duration::from_millis(next(&mut seed) % 800);
        let acked = load_then_kill(&dir, &keys.write_key, round, after, &mut retries).await;
        println!(
            "round {round}: killed after {after:?}, {} events answered 200",
            acked.len()
        );
        acknowledged.lock().unwrap().extend(acked);
    }
    // The batches the last kill left unanswered, sent again until answered 200.
    let mut server = Server::start(&dir, &SERVE_PAUSED).unwrap();
    for batch in retries.iter().flatten() {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/batch", server.url))
            .basic_auth(&keys.write_key, Some(""))
            .json(&json!({ "batch": batch }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        acknowledged.lock().unwrap().extend(message_ids(batch));
    }
    server.stop().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= ROUNDS * EVENTS_PER_REQUEST,
        "every round was answered: {}",
        acknowledged.len()
    );

    // Assert: every acknowledged event is stored (its dedup marker points at a stored event)...
    let db = database(&dir);
    let mut stored = db
        .prepare(
            "SELECT COUNT(*) FROM dedup d JOIN events e
             ON e.workspace = d.workspace AND e.event_id = d.event_id
             WHERE d.message_id = ?1",
        )
        .unwrap();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|m| stored.query_row([m], |r| r.get::<_, i64>(0)).unwrap() != 1)
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events are not stored: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // ...nothing reached Meta while it was paused...
    assert!(fakes.received("meta_capi").is_empty(), "sent while paused");

    // ...and, once Meta is resumed, reaches it exactly once, with nothing left queued.
    let data_dir = dir.to_str().unwrap();
    tracklayer(&["destinations", "resume", "--data-dir", data_dir, &meta]).unwrap();
    let mut server =
        Server::start(&dir, &["--allow-private-egress", "--batch-window-ms", "20"]).unwrap();
    let missing = || {
        let received = fakes.received("meta_capi");
        acknowledged
            .iter()
            .filter(|m| !received.contains_key(*m))
            .cloned()
            .collect::<Vec<_>>()
    };
    let waiting = Instant::now();
    while !missing().is_empty() && waiting.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = missing();
    assert!(
        missing.is_empty(),
        "{} acknowledged events never reached Meta: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    wait_until(Duration::from_secs(10), "an empty queue", || {
        count(&dir, "SELECT COUNT(*) FROM queue") == 0
    })
    .await;
    server.stop().unwrap();
    let twice: Vec<(String, u32)> = fakes
        .received("meta_capi")
        .into_iter()
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

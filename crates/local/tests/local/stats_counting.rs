//! Ingest counts each request in one stats write: accepted, duplicates, rejected by reason,
//! and per destination what it received and how it was routed.

use std::sync::Arc;

use serde_json::json;
use tracklayer_core::clock::SystemIds;
use tracklayer_core::ingest::{
    parse_body, Endpoint, IngestConfig, IngestPorts, IngestService, RequestMeta,
};
use tracklayer_core::services::ReadPorts;
use tracklayer_core::stats::memory::MemoryStats;
use tracklayer_core::stats::{
    DestinationCounter as D, IngestCounter as I, RejectReason, StatsKey, StatsQuery, StatsReader,
    BUCKET,
};
use tracklayer_core::workspace::Region;

use super::MetaWorkspace;
use tracklayer_core::testkit::T0;

/// Three events: a purchase, the same purchase again (a duplicate), one with no user.
fn batch() -> Vec<u8> {
    let purchase = json!({
        "type": "track", "event": "Order Completed", "messageId": "order-1",
        "userId": "user-1", "properties": {"revenue": 10, "currency": "EUR"}
    });
    serde_json::to_vec(&json!({"batch": [
        purchase,
        purchase,
        {"type": "track", "event": "Order Completed", "messageId": "order-2"}
    ]}))
    .unwrap()
}

fn meta() -> RequestMeta {
    RequestMeta {
        ip: None,
        user_agent: None,
        gpc: false,
        browser: false,
    }
}

#[tokio::test]
async fn a_batch_with_a_duplicate_and_a_rejected_event_is_counted_in_one_write() {
    let w = MetaWorkspace::new("Stats", "EAAstats").await;
    let stats = Arc::new(MemoryStats::default());
    let ingest = IngestService::new(
        IngestPorts {
            read: ReadPorts {
                control: w.control.clone(),
                keyring: w.keyring.clone(),
                clock: w.clock.clone(),
                ids: Arc::new(SystemIds),
            },
            store: Arc::new(tracklayer_local::SqliteIngestStore::new(
                w.db.clone(),
                w.clock.clone(),
            )),
            suppressions: w.dsr.clone(),
            stats: stats.clone(),
        },
        IngestConfig::new(Region::Us),
    );
    let key = ingest.authenticate(&w.write_key).await.unwrap();

    let outcome = ingest
        .ingest(
            &key,
            &parse_body(Endpoint::Batch, &batch()).unwrap(),
            &meta(),
        )
        .await
        .unwrap();

    assert_eq!((outcome.accepted, outcome.duplicates), (2, 1));
    let writes = stats.writes();
    assert_eq!(writes.len(), 1, "one write per request");
    let (ws, at, delta) = &writes[0];
    assert_eq!((ws, *at), (&w.workspace.id, T0));
    let d = |c| StatsKey::Destination(w.destination.clone(), c);
    let expected = [
        (StatsKey::Ingest(I::Accepted), 2),
        (StatsKey::Ingest(I::Duplicates), 1),
        (StatsKey::Ingest(I::Rejected(RejectReason::Identity)), 1),
        (d(D::Received), 1),
        (d(D::Routed), 1),
    ];
    for (key, n) in &expected {
        assert_eq!(delta.get(key), *n, "{key:?}");
    }
    assert_eq!(delta.len(), expected.len(), "{delta:?}");
}

#[tokio::test]
async fn a_request_resent_is_counted_as_duplicates_and_routes_nothing_again() {
    let w = MetaWorkspace::new("Stats", "EAAstats").await;
    let key = w.ingest.authenticate(&w.write_key).await.unwrap();
    let body = batch();
    for _ in 0..2 {
        w.ingest
            .ingest(&key, &parse_body(Endpoint::Batch, &body).unwrap(), &meta())
            .await
            .unwrap();
    }

    let sum = w
        .stats
        .sum(&w.workspace.id, &StatsQuery::new(T0, T0 + BUCKET, T0))
        .await
        .unwrap();

    assert_eq!(sum.get(&StatsKey::Ingest(I::Accepted)), 4);
    assert_eq!(sum.get(&StatsKey::Ingest(I::Duplicates)), 3);
    assert_eq!(
        sum.get(&StatsKey::Ingest(I::Rejected(RejectReason::Identity))),
        2
    );
    let routed = StatsKey::Destination(w.destination.clone(), D::Routed);
    assert_eq!(
        sum.get(&routed),
        1,
        "the resent purchase is not routed again"
    );
}

#[tokio::test]
async fn a_request_with_no_valid_event_still_counts_its_rejections() {
    let w = MetaWorkspace::new("Stats", "EAAstats").await;
    let key = w.ingest.authenticate(&w.write_key).await.unwrap();
    let body = serde_json::to_vec(&json!({"batch": [{"type": "bogus", "userId": "u"}]})).unwrap();

    let refused = w
        .ingest
        .ingest(&key, &parse_body(Endpoint::Batch, &body).unwrap(), &meta())
        .await;

    assert!(refused.is_err());
    let sum = w
        .stats
        .sum(&w.workspace.id, &StatsQuery::new(T0, T0 + BUCKET, T0))
        .await
        .unwrap();
    assert_eq!(
        sum.get(&StatsKey::Ingest(I::Rejected(RejectReason::Type))),
        1
    );
    assert_eq!(sum.len(), 1, "{sum:?}");
}

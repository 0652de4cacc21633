//! The `Stats` port: atomic adds per workspace and bucket, windows read oldest first, expiry.

use super::*;
use crate::stats::{
    DestinationCounter, IngestCounter, RejectReason, Stats, StatsDelta, StatsKey, StatsQuery,
    BUCKET, RETENTION,
};

fn ws() -> WorkspaceId {
    WorkspaceId::new(Region::Us, &unique())
}

fn delivered(d: &DestinationId, n: u64) -> StatsDelta {
    let mut delta = StatsDelta::new();
    delta.destination(d, DestinationCounter::Delivered, n);
    delta
}

pub async fn adds_concurrent_deltas_into_one_bucket_without_losing_any(s: &dyn Stats) {
    let ws = ws();
    let d = DestinationId::new(&unique());
    let write = |n: u64| {
        let mut delta = delivered(&d, n);
        delta.ingest(IngestCounter::Accepted, 1);
        let ws = ws.clone();
        // Spread over the bucket of T0: all land in it.
        let at = T0 + time::Duration::seconds(n as i64 * 30);
        async move { s.record(&ws, at, &delta).await }
    };
    for _round in 0..2 {
        let (a, b, c, e) = tokio::join!(write(1), write(2), write(3), write(4));
        for r in [a, b, c, e] {
            r.unwrap();
        }
    }

    let buckets = s
        .buckets(&ws, &StatsQuery::new(T0, T0 + BUCKET, T0))
        .await
        .unwrap();

    assert_eq!(buckets.len(), 1, "{buckets:?}");
    assert_eq!(buckets[0].start, T0);
    let counts = &buckets[0].counts;
    assert_eq!(
        counts.get(&StatsKey::Destination(d, DestinationCounter::Delivered)),
        20
    );
    assert_eq!(counts.get(&StatsKey::Ingest(IngestCounter::Accepted)), 8);
    assert_eq!(counts.len(), 2);
}

pub async fn keeps_every_counter_kind_apart(s: &dyn Stats) {
    let ws = ws();
    let (a, b) = (DestinationId::new(&unique()), DestinationId::new(&unique()));
    let mut delta = StatsDelta::new();
    let mut n = 1;
    for d in [&a, &b] {
        for c in DestinationCounter::ALL {
            delta.destination(d, c, n);
            n += 1;
        }
    }
    for c in [
        IngestCounter::Accepted,
        IngestCounter::Duplicates,
        IngestCounter::Suppressed,
    ]
    .into_iter()
    .chain(RejectReason::ALL.into_iter().map(IngestCounter::Rejected))
    {
        delta.ingest(c, n);
        n += 1;
    }
    s.record(&ws, T0, &delta).await.unwrap();

    let sum = s
        .sum(&ws, &StatsQuery::new(T0, T0 + BUCKET, T0))
        .await
        .unwrap();

    assert_eq!(sum, delta);
}

pub async fn reads_the_buckets_of_a_window_oldest_first_from_inclusive_to_exclusive(s: &dyn Stats) {
    let ws = ws();
    let d = DestinationId::new(&unique());
    for (k, n) in [(3, 8), (0, 1), (1, 2), (2, 4)] {
        s.record(&ws, T0 + BUCKET * k, &delivered(&d, n))
            .await
            .unwrap();
    }
    let now = T0 + BUCKET * 3;

    let buckets = s
        .buckets(&ws, &StatsQuery::new(T0 + BUCKET, T0 + BUCKET * 3, now))
        .await
        .unwrap();

    let starts: Vec<_> = buckets.iter().map(|b| b.start).collect();
    assert_eq!(starts, vec![T0 + BUCKET, T0 + BUCKET * 2]);
    let key = StatsKey::Destination(d, DestinationCounter::Delivered);
    assert_eq!(buckets[1].counts.get(&key), 4);
    let all = s
        .sum(&ws, &StatsQuery::new(T0, T0 + BUCKET * 4, now))
        .await
        .unwrap();
    assert_eq!(all.get(&key), 15);
}

pub async fn keeps_workspaces_apart(s: &dyn Stats) {
    let (one, other) = (ws(), ws());
    let d = DestinationId::new(&unique());
    s.record(&one, T0, &delivered(&d, 5)).await.unwrap();

    assert!(s
        .buckets(&other, &StatsQuery::new(T0, T0 + BUCKET, T0))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.buckets(&one, &StatsQuery::new(T0, T0 + BUCKET, T0))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn does_not_read_a_bucket_once_it_expired(s: &dyn Stats) {
    let ws = ws();
    let d = DestinationId::new(&unique());
    s.record(&ws, T0 + time::Duration::minutes(2), &delivered(&d, 1))
        .await
        .unwrap();
    let expiry = T0 + RETENTION;

    let before = s
        .buckets(
            &ws,
            &StatsQuery::new(T0, T0 + BUCKET, expiry - time::Duration::seconds(1)),
        )
        .await
        .unwrap();
    let after = s
        .buckets(&ws, &StatsQuery::new(T0, T0 + BUCKET, expiry))
        .await
        .unwrap();

    assert_eq!(before.len(), 1);
    assert!(after.is_empty(), "{after:?}");
}

pub async fn an_empty_window_reads_nothing(s: &dyn Stats) {
    let ws = ws();
    assert!(s
        .buckets(&ws, &StatsQuery::new(T0, T0 + BUCKET * 12, T0))
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .sum(&ws, &StatsQuery::new(T0, T0 + BUCKET, T0))
        .await
        .unwrap()
        .is_empty());
}

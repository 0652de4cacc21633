//! The overview's windows and sums, on the injected clock's bucket boundaries.

use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::destination::EventFilter;
use crate::stats::memory::MemoryStats;
use crate::stats::{StatsDelta, StatsQuery, StatsReader, StatsRecorder};
use crate::workspace::{Region, WorkspaceId};

const NOW: OffsetDateTime = datetime!(2026-03-08 12:34:56.789 UTC);

fn ws() -> WorkspaceId {
    WorkspaceId::new(Region::Eu, "overview")
}

fn meta() -> Destination {
    Destination {
        id: DestinationId::new("meta"),
        workspace_id: ws(),
        name: "Meta".into(),
        kind: DestinationKind::MetaCapi,
        config: json!({}),
        secrets: crate::crypto::Sealed(Vec::new()),
        secret_hints: json!({}),
        consent_purposes: DestinationKind::MetaCapi.default_purposes(),
        events: EventFilter::All,
        endpoint: None,
        paused: false,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn delivered(d: &DestinationId, n: u64) -> StatsDelta {
    let mut delta = StatsDelta::new();
    delta.destination(d, DestinationCounter::Delivered, n);
    delta
}

/// The overview of `window` at [`NOW`] over what `stats` holds.
async fn overview(stats: &MemoryStats, window: StatsWindow) -> Overview {
    let (from, to) = window.range(NOW);
    let buckets = stats
        .buckets(&ws(), &StatsQuery::new(from, to, NOW))
        .await
        .unwrap();
    overview_of(window, NOW, &[meta()], buckets)
}

#[test]
fn each_window_ends_with_the_step_holding_now_and_has_whole_steps_before_it() {
    assert_eq!(
        StatsWindow::Hour.range(NOW),
        (
            datetime!(2026-03-08 11:35:00 UTC),
            datetime!(2026-03-08 12:35:00 UTC)
        )
    );
    assert_eq!(
        StatsWindow::Day.range(NOW),
        (
            datetime!(2026-03-07 13:00:00 UTC),
            datetime!(2026-03-08 13:00:00 UTC)
        )
    );
    assert_eq!(
        StatsWindow::Week.range(NOW),
        (
            datetime!(2026-03-01 13:00:00 UTC),
            datetime!(2026-03-08 13:00:00 UTC)
        )
    );
}

#[test]
fn only_1h_24h_and_7d_are_windows_and_anything_else_names_the_window_field() {
    for w in StatsWindow::ALL {
        assert_eq!(StatsWindow::parse(w.as_str()).unwrap(), w);
    }
    for bad in ["", "1d", "7D", "60m"] {
        let err = StatsWindow::parse(bad).unwrap_err();
        assert!(
            matches!(&err, AdminError::Invalid { field, .. } if field == "window"),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_last_hour_counts_from_its_first_five_minute_bucket_and_not_the_one_before() {
    let stats = MemoryStats::default();
    let d = meta().id;
    // 11:34:59.999 is in the bucket of 11:30, just outside; 11:35:00 is the first inside.
    for (at, n) in [
        (datetime!(2026-03-08 11:34:59.999 UTC), 1),
        (datetime!(2026-03-08 11:35:00 UTC), 10),
        (datetime!(2026-03-08 12:34:00 UTC), 100),
    ] {
        stats.record(&ws(), at, &delivered(&d, n)).await.unwrap();
    }

    let o = overview(&stats, StatsWindow::Hour).await;

    assert_eq!(o.destinations.len(), 1);
    let row = &o.destinations[0];
    assert_eq!(row.name.as_deref(), Some("Meta"));
    assert_eq!(row.counts.delivered, 110);
    assert_eq!(row.series.len(), 12);
    assert_eq!(row.series[0].start, datetime!(2026-03-08 11:35:00 UTC));
    assert_eq!(row.series[0].delivered, 10);
    assert_eq!(row.series[11].delivered, 100);
    assert_eq!(o.step_seconds, 300);
}

#[tokio::test]
async fn the_week_sums_hours_into_hourly_points_and_leaves_out_what_is_older() {
    let stats = MemoryStats::default();
    let d = meta().id;
    let mut failing = StatsDelta::new();
    failing.destination(&d, DestinationCounter::Retrying, 2);
    failing.destination(&d, DestinationCounter::DeadLettered, 1);
    failing.destination(&d, DestinationCounter::Invalid, 4);
    for (at, delta) in [
        (datetime!(2026-03-01 12:59:59 UTC), delivered(&d, 1)),
        (datetime!(2026-03-01 13:00:00 UTC), delivered(&d, 2)),
        (datetime!(2026-03-01 13:55:00 UTC), delivered(&d, 3)),
        (datetime!(2026-03-08 12:00:00 UTC), failing),
    ] {
        stats.record(&ws(), at, &delta).await.unwrap();
    }

    let o = overview(&stats, StatsWindow::Week).await;

    let row = &o.destinations[0];
    assert_eq!(row.series.len(), 168);
    assert_eq!(
        row.counts.delivered, 5,
        "the bucket before 13:00 a week ago is out"
    );
    assert_eq!(
        row.series[0].delivered, 5,
        "two buckets of one hour in one point"
    );
    assert_eq!(row.series[167].failed, 3, "retrying + dead-lettered");
    assert_eq!(row.counts.invalid, 4);
    assert_eq!(
        overview(&stats, StatsWindow::Day).await.destinations[0]
            .counts
            .delivered,
        0
    );
}

#[tokio::test]
async fn ingest_totals_sum_every_bucket_and_a_deleted_destination_keeps_its_row_without_a_name() {
    let stats = MemoryStats::default();
    let gone = DestinationId::new("gone");
    let mut delta = delivered(&gone, 7);
    delta.ingest(IngestCounter::Accepted, 3);
    delta.ingest(IngestCounter::Duplicates, 1);
    delta.ingest(IngestCounter::Rejected(RejectReason::Type), 2);
    stats.record(&ws(), NOW, &delta).await.unwrap();
    stats
        .record(&ws(), NOW - Duration::minutes(20), &delta)
        .await
        .unwrap();

    let o = overview(&stats, StatsWindow::Hour).await;

    assert_eq!(o.ingest.accepted, 6);
    assert_eq!(o.ingest.duplicates, 2);
    assert_eq!(o.ingest.rejected.get(&RejectReason::Type), Some(&4));
    assert_eq!(o.ingest.rejected_total(), 4);
    let names: Vec<_> = o.destinations.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, vec![Some("Meta".to_owned()), None]);
    assert_eq!(o.destinations[0].counts, DestinationCounts::default());
    assert_eq!(o.destinations[1].counts.delivered, 14);
}

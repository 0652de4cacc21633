//! Reading a destination's delivery log (`DeliveryLog::page`): filters by status and time,
//! cursor paging past 1,000 records that neither skips nor repeats a record, equal timestamps
//! included, and what a record keeps (the Segment `messageId`, a retry's next attempt).

use std::collections::HashSet;

use uuid::Uuid;

use super::{delivery_record, unique, T0};
use crate::clock::unix_millis;
use crate::destination::DestinationId;
use crate::event::{EventId, MessageId};
use crate::ports::{
    DeliveryCursor, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryRecord, DeliveryStatus,
    DeliveryStatusKind, LogOf,
};
use crate::workspace::{Region, WorkspaceId};

fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

fn ids() -> (WorkspaceId, DestinationId) {
    (
        WorkspaceId::new(Region::Us, &unique()),
        DestinationId::new(&unique()),
    )
}

/// `n` event ids of one millisecond (as the events of one request are), in increasing order.
/// One record of each event, made from the event's position and id.
fn records_of(
    events: &[EventId],
    record: impl Fn(usize, EventId) -> DeliveryRecord,
) -> Vec<DeliveryRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, id)| record(i, *id))
        .collect()
}

fn events(n: usize) -> Vec<EventId> {
    let base = Uuid::now_v7().as_u128() & !0xffff_ffff;
    (0..n as u128)
        .map(|i| EventId(Uuid::from_u128(base + i)))
        .collect()
}

/// `n` records delivered at `T0`, of events of one millisecond.
fn delivered_at_t0(ws: &WorkspaceId, d: &DestinationId, n: usize) -> Vec<DeliveryRecord> {
    events(n)
        .into_iter()
        .map(|id| delivery_record(ws, d, id, DeliveryStatus::Delivered, T0))
        .collect()
}

/// What the log must answer: newest first by (millisecond, event id).
fn newest_first(mut v: Vec<DeliveryRecord>) -> Vec<DeliveryRecord> {
    v.sort_by_key(|r| std::cmp::Reverse(DeliveryCursor::of(r).key()));
    v
}

fn query(limit: usize) -> DeliveryQuery {
    DeliveryQuery {
        limit,
        ..DeliveryQuery::default()
    }
}

/// Every page of `q`, following `next` to the end.
async fn all_pages(
    l: &dyn DeliveryLog,
    ws: &WorkspaceId,
    d: &DestinationId,
    q: &DeliveryQuery,
    now: time::OffsetDateTime,
) -> Vec<DeliveryPage> {
    let mut q = q.clone();
    let mut pages = Vec::new();
    loop {
        let page = l.page(LogOf::new(ws, d), &q, now).await.unwrap();
        assert!(
            page.records.len() <= q.limit,
            "a page holds at most its limit"
        );
        let next = page.next;
        pages.push(page);
        match next {
            Some(c) => q.after = Some(c),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging ends");
    }
}

pub async fn keeps_the_message_id_and_a_retrys_next_attempt(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    let e = events(1)[0];
    let mut r = delivery_record(&ws, &d, e, DeliveryStatus::Retrying, T0);
    r.message_id = Some(MessageId::parse("ajs-5f1c0e-segment-message").unwrap());
    r.next_attempt_at = Some(T0 + minutes(2));
    l.record(std::slice::from_ref(&r)).await.unwrap();

    let page = l.page(LogOf::new(&ws, &d), &query(10), T0).await.unwrap();

    assert_eq!(page.records, vec![r.clone()]);
    assert_eq!(page.next, None);
    assert_eq!(l.for_event(&ws, &e, T0).await.unwrap(), vec![r]);
}

pub async fn filters_by_the_status_of_each_events_latest_record(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    let log = LogOf::new(&ws, &d);
    let e = events(4);
    l.record(&[
        delivery_record(&ws, &d, e[0], DeliveryStatus::Retrying, T0),
        delivery_record(&ws, &d, e[1], DeliveryStatus::Retrying, T0),
        delivery_record(&ws, &d, e[2], DeliveryStatus::Dead, T0),
        delivery_record(&ws, &d, e[3], DeliveryStatus::Dropped("too old".into()), T0),
    ])
    .await
    .unwrap();
    // e[0] was retried and delivered a minute later: it is no longer "retrying".
    let mut delivered = delivery_record(&ws, &d, e[0], DeliveryStatus::Delivered, T0 + minutes(1));
    delivered.attempts = 2;
    l.record(std::slice::from_ref(&delivered)).await.unwrap();
    let now = T0 + minutes(5);
    let only = |kinds: &[DeliveryStatusKind]| DeliveryQuery {
        statuses: kinds.to_vec(),
        limit: 10,
        ..DeliveryQuery::default()
    };
    let events_of = |p: DeliveryPage| p.records.iter().map(|r| r.event_id).collect::<Vec<_>>();

    let retrying = only(&[DeliveryStatusKind::Retrying]);
    let delivered_only = only(&[DeliveryStatusKind::Delivered]);
    let failed = only(&[DeliveryStatusKind::Dead, DeliveryStatusKind::Dropped]);

    let retrying = l.page(log, &retrying, now).await.unwrap();
    assert_eq!(events_of(retrying), vec![e[1]]);
    let delivered_page = l.page(log, &delivered_only, now).await.unwrap();
    assert_eq!(events_of(delivered_page), vec![e[0]]);
    assert_eq!(
        events_of(l.page(log, &failed, now).await.unwrap()),
        vec![e[3], e[2]]
    );
    assert_eq!(
        events_of(l.page(log, &only(&[]), now).await.unwrap()),
        vec![e[0], e[3], e[2], e[1]],
        "no status filter: every event once, newest first"
    );
}

pub async fn filters_by_a_time_range_that_includes_both_ends(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    let log = LogOf::new(&ws, &d);
    let e = events(5);
    let records: Vec<DeliveryRecord> = (0..5)
        .map(|i| {
            delivery_record(
                &ws,
                &d,
                e[i],
                DeliveryStatus::Delivered,
                T0 + minutes(i as i64),
            )
        })
        .collect();
    l.record(&records).await.unwrap();
    let q = DeliveryQuery {
        since: Some(T0 + minutes(1)),
        until: Some(T0 + minutes(3)),
        limit: 10,
        ..DeliveryQuery::default()
    };

    let page = l.page(log, &q, T0 + minutes(10)).await.unwrap();

    let got: Vec<EventId> = page.records.iter().map(|r| r.event_id).collect();
    assert_eq!(got, vec![e[3], e[2], e[1]]);
    let only_since = DeliveryQuery {
        since: Some(T0 + minutes(4)),
        limit: 10,
        ..DeliveryQuery::default()
    };
    let page = l.page(log, &only_since, T0 + minutes(10)).await.unwrap();
    assert_eq!(page.records, vec![records[4].clone()]);
}

pub async fn pages_past_1000_records_without_skipping_or_repeating_one(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    let (_, other) = ids();
    let e = events(1_050);
    // Eleven timestamps, a hundred records on each: order among equals is by event id.
    let records = records_of(&e, |i, id| {
        let at = T0 + minutes((i / 100) as i64);
        delivery_record(&ws, &d, id, DeliveryStatus::Delivered, at)
    });
    l.record(&records[..500]).await.unwrap();
    l.record(&records[500..]).await.unwrap();
    l.record(&[delivery_record(&ws, &other, e[0], DeliveryStatus::Dead, T0)])
        .await
        .unwrap();
    let now = T0 + minutes(30);

    let pages = all_pages(l, &ws, &d, &query(1_000), now).await;

    assert_eq!(pages.len(), 2, "1,000 records, then 50");
    assert_eq!(pages[0].records.len(), 1_000);
    assert_eq!(pages[1].records.len(), 50);
    assert_eq!(
        pages[0].next,
        Some(DeliveryCursor::of(&pages[0].records[999]))
    );
    let got: Vec<DeliveryRecord> = pages.into_iter().flat_map(|p| p.records).collect();
    assert_eq!(got, newest_first(records));
}

pub async fn pages_through_equal_timestamps_in_a_stable_order(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    // Two calls, one timestamp: ten records that differ only by event id.
    let records = delivered_at_t0(&ws, &d, 10);
    l.record(&records[..4]).await.unwrap();
    l.record(&records[4..]).await.unwrap();

    let pages = all_pages(l, &ws, &d, &query(3), T0).await;
    let again = all_pages(l, &ws, &d, &query(3), T0).await;

    assert_eq!(
        pages.iter().map(|p| p.records.len()).collect::<Vec<_>>(),
        vec![3, 3, 3, 1]
    );
    assert_eq!(pages, again, "the same pages each time");
    let got: Vec<DeliveryRecord> = pages.into_iter().flat_map(|p| p.records).collect();
    let distinct: HashSet<EventId> = got.iter().map(|r| r.event_id).collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(got, newest_first(records));
}

pub async fn a_last_page_that_fills_its_limit_has_no_cursor(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    let log = LogOf::new(&ws, &d);
    let records = delivered_at_t0(&ws, &d, 4);
    l.record(&records).await.unwrap();

    let first = l.page(log, &query(2), T0).await.unwrap();
    let second = DeliveryQuery {
        after: first.next,
        ..query(2)
    };
    let second = l.page(log, &second, T0).await.unwrap();

    assert!(first.next.is_some());
    assert_eq!(second.records.len(), 2);
    assert_eq!(second.next, None);
}

pub async fn filters_and_the_cursor_combine(l: &dyn DeliveryLog) {
    let (ws, d) = ids();
    let e = events(12);
    let records = records_of(&e, |i, id| {
        let status = if i % 2 == 0 {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Dead
        };
        delivery_record(&ws, &d, id, status, T0 + minutes((i / 3) as i64))
    });
    l.record(&records).await.unwrap();
    let q = DeliveryQuery {
        statuses: vec![DeliveryStatusKind::Dead],
        since: Some(T0 + minutes(1)),
        limit: 2,
        ..DeliveryQuery::default()
    };

    let pages = all_pages(l, &ws, &d, &q, T0 + minutes(10)).await;

    let got: Vec<DeliveryRecord> = pages.into_iter().flat_map(|p| p.records).collect();
    let want: Vec<DeliveryRecord> = newest_first(records)
        .into_iter()
        .filter(|r| r.status == DeliveryStatus::Dead && r.updated_at >= T0 + minutes(1))
        .collect();
    assert_eq!(want.len(), 5);
    assert_eq!(got, want);
    assert!(got
        .windows(2)
        .all(|w| unix_millis(w[0].updated_at) >= unix_millis(w[1].updated_at)));
}

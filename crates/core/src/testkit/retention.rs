//! Retention across stores (whitepaper §02): each data class is gone from every read on the
//! day its expiry, stamped at write time, passes — on every backend, whatever its deleter
//! (the SQLite sweeper, DynamoDB's late TTL) has done so far.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{delivery_record, new_event, unique, T0};
use crate::audit::{AuditFilter, NewAuditEntry};
use crate::destination::DestinationId;
use crate::event::EventId;
use crate::ports::{AuditLog, DeliveryLog, DeliveryStatus, InspectableEventStore, LogOf, Page};
use crate::workspace::{Region, Retention, WorkspaceId};

/// The stores whose data expires, from one backend.
#[allow(missing_debug_implementations)]
pub struct Stores {
    pub events: Arc<dyn InspectableEventStore>,
    pub delivery_log: Arc<dyn DeliveryLog>,
    pub audit: Arc<dyn AuditLog>,
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// Whether the event store returns event `id` at `now`.
async fn has_event(s: &Stores, ws: &WorkspaceId, id: &EventId, now: OffsetDateTime) -> bool {
    s.events.event(ws, id, now).await.unwrap().is_some()
}

/// Whether the event store returns the IP/UA record of event `id` at `now`.
async fn has_operational(s: &Stores, ws: &WorkspaceId, id: &EventId, now: OffsetDateTime) -> bool {
    s.events.operational(ws, id, now).await.unwrap().is_some()
}

/// How many events of `subject` the event store returns at `now` (10 at most).
async fn subject_events(s: &Stores, ws: &WorkspaceId, subject: &str, now: OffsetDateTime) -> usize {
    let found = s
        .events
        .events_by_subject(ws, subject, Page::first(10), now)
        .await;
    found.unwrap().len()
}

pub async fn ip_and_user_agent_are_gone_after_30_days(s: &Stores) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let e = new_event(&ws, "ret-ip", &["subj-ip"], T0);
    assert_eq!(e.operational.as_ref().unwrap().expires_at, T0 + days(30));
    s.events.record(std::slice::from_ref(&e), T0).await.unwrap();
    let id = e.event.event_id;
    assert!(
        has_operational(s, &ws, &id, T0 + days(29)).await,
        "IP/UA are there on day 29"
    );
    assert!(
        !has_operational(s, &ws, &id, T0 + days(31)).await,
        "IP/UA are gone on day 31"
    );
    assert!(
        has_event(s, &ws, &id, T0 + days(31)).await,
        "while the event itself stays"
    );
}

pub async fn events_are_gone_after_the_default_180_days(s: &Stores) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let mut e = new_event(&ws, "ret-ev", &["subj-ev"], T0);
    e.event.expires_at = T0 + Retention::default().events();
    s.events.record(std::slice::from_ref(&e), T0).await.unwrap();
    let id = e.event.event_id;
    let day179 = T0 + days(179);
    assert!(has_event(s, &ws, &id, day179).await);
    assert_eq!(subject_events(s, &ws, "subj-ev", day179).await, 1);
    let day181 = T0 + days(181);
    assert!(!has_event(s, &ws, &id, day181).await);
    assert_eq!(subject_events(s, &ws, "subj-ev", day181).await, 0);
}

pub async fn events_of_a_workspace_keeping_30_days_are_gone_after_30_days(s: &Stores) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let short = Retention::with_event_days(30).unwrap();
    let mut e = new_event(&ws, "ret-30", &["subj-30"], T0);
    e.event.expires_at = T0 + short.events();
    s.events.record(std::slice::from_ref(&e), T0).await.unwrap();
    let id = e.event.event_id;
    assert!(has_event(s, &ws, &id, T0 + days(29)).await);
    assert!(!has_event(s, &ws, &id, T0 + days(31)).await);
    assert_eq!(subject_events(s, &ws, "subj-30", T0 + days(31)).await, 0);
}

pub async fn dedup_markers_are_gone_after_24_hours(s: &Stores) {
    let ws = &WorkspaceId::new(Region::Us, &unique());
    let record_at = |at| async move {
        let e = new_event(ws, "ret-dedup", &[], at);
        s.events.record(&[e], at).await.unwrap()
    };
    record_at(T0).await;
    let h23 = T0 + time::Duration::hours(23);
    assert_eq!(
        record_at(h23).await,
        vec![false],
        "a duplicate within 24 hours"
    );
    let h25 = T0 + time::Duration::hours(25);
    assert_eq!(
        record_at(h25).await,
        vec![true],
        "the marker is gone after 24 hours"
    );
}

pub async fn delivery_records_are_gone_after_30_days(s: &Stores) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let d = DestinationId::new(&unique());
    let e = EventId(Uuid::now_v7());
    let r = delivery_record(&ws, &d, e, DeliveryStatus::Delivered, T0);
    assert_eq!(r.expires_at, T0 + Retention::delivery_log());
    s.delivery_log.record(&[r]).await.unwrap();
    let day29 = T0 + days(29);
    assert_eq!(
        s.delivery_log
            .for_event(&ws, &e, day29)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.delivery_log
            .delivered(LogOf::new(&ws, &d), &[e], day29)
            .await
            .unwrap(),
        vec![e]
    );
    assert_eq!(
        s.delivery_log
            .for_destination(LogOf::new(&ws, &d), 10, day29)
            .await
            .unwrap()
            .len(),
        1
    );
    let day31 = T0 + days(31);
    assert!(s
        .delivery_log
        .for_event(&ws, &e, day31)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .delivery_log
        .delivered(LogOf::new(&ws, &d), &[e], day31)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .delivery_log
        .for_destination(LogOf::new(&ws, &d), 10, day31)
        .await
        .unwrap()
        .is_empty());
}

pub async fn audit_entries_are_gone_after_a_year_and_the_chain_goes_on(s: &Stores) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let entry = |action: &str| NewAuditEntry {
        workspace_id: ws.clone(),
        actor: "user:usr_ret".into(),
        action: action.into(),
        target: "workspace".into(),
        summary: serde_json::json!({}),
    };
    let all = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    s.audit.append(entry("retention.update"), T0).await.unwrap();
    s.audit
        .append(entry("workspace.update"), T0 + days(200))
        .await
        .unwrap();
    let day364 = T0 + days(364);
    assert_eq!(s.audit.list(&ws, &all, day364).await.unwrap().len(), 2);
    let day366 = T0 + days(366);
    let left = s.audit.list(&ws, &all, day366).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3],
        "the first is gone after 365 days"
    );
    assert_eq!(s.audit.retire(&ws, day366).await.unwrap(), 2);
    let head = s.audit.head(&ws).await.unwrap().unwrap();
    let cp = head.checkpoint.expect("retention signs a checkpoint");
    assert_eq!(cp.seq, 2, "the checkpoint names the last removed entry");
    assert_eq!(
        s.audit.stored(&ws, 0, 100).await.unwrap().len(),
        1,
        "the removed entries are gone from the store"
    );
    let fourth = s
        .audit
        .append(entry("api_key.create"), day366)
        .await
        .unwrap();
    assert_eq!(fourth.seq, 4, "the chain continues after retired entries");
    let when = "what is left verifies from the checkpoint";
    let v = super::audit_log::assert_chain_verifies(s.audit.as_ref(), &ws, when).await;
    assert_eq!(v.entries_checked, 2);
}

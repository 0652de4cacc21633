//! The event debugger's live list (`EventReader::recent_events`) on every event store: the
//! newest events of the caller's workspace first, within the window, by type and name.

use time::{Duration, OffsetDateTime};

use super::event_lookup::received_at;
use super::{new_event, unique, T0};
use crate::event::{EventId, EventType};
use crate::ports::{EventStore, NewEvent, RecentEvents};
use crate::workspace::{Region, WorkspaceId};

/// An event of `ws` received at `at`, of `event_type` with `name`.
fn event(
    ws: &WorkspaceId,
    message: &str,
    event_type: EventType,
    name: Option<&str>,
    at: OffsetDateTime,
) -> NewEvent {
    let mut e = new_event(ws, message, &["subject-index"], at);
    received_at(&mut e, at);
    e.event.event_type = event_type;
    e.event.name = name.map(str::to_owned);
    e
}

/// Records each event in a request of its own (as separate SDK calls arrive).
async fn record_each(s: &dyn EventStore, events: &[&NewEvent]) {
    for e in events {
        s.record(std::slice::from_ref(*e), e.event.received_at)
            .await
            .unwrap();
    }
}

/// The ids `recent_events` lists at `now` for the last hour.
async fn listed(
    s: &dyn EventStore,
    ws: &WorkspaceId,
    event_type: Option<EventType>,
    name: Option<&str>,
    limit: usize,
    now: OffsetDateTime,
) -> Vec<EventId> {
    let query = RecentEvents {
        since: now - Duration::hours(1),
        event_type,
        name: name.map(str::to_owned),
        limit,
    };
    s.recent_events(ws, &query, now)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect()
}

pub async fn lists_the_newest_events_first_up_to_the_limit(s: &dyn EventStore) {
    // Arrange: three events a minute apart.
    let ws = WorkspaceId::new(Region::Us, &unique());
    let [a, b, c] = [0, 1, 2].map(|m| {
        event(
            &ws,
            &format!("m-{m}"),
            EventType::Track,
            Some("Order Completed"),
            T0 + Duration::minutes(m),
        )
    });
    record_each(s, &[&a, &b, &c]).await;
    let now = T0 + Duration::minutes(3);

    // Act
    let two = listed(s, &ws, None, None, 2, now).await;
    let all = listed(s, &ws, None, None, 50, now).await;

    // Assert
    assert_eq!(two, vec![c.event.event_id, b.event.event_id]);
    assert_eq!(
        all,
        vec![c.event.event_id, b.event.event_id, a.event.event_id]
    );
}

pub async fn lists_only_the_type_and_the_name_asked_for(s: &dyn EventStore) {
    // Arrange
    let ws = WorkspaceId::new(Region::Us, &unique());
    let order = event(
        &ws,
        "m-order",
        EventType::Track,
        Some("Order Completed"),
        T0,
    );
    let pricing = event(
        &ws,
        "m-page",
        EventType::Page,
        Some("Pricing"),
        T0 + Duration::seconds(1),
    );
    let who = event(
        &ws,
        "m-identify",
        EventType::Identify,
        None,
        T0 + Duration::seconds(2),
    );
    record_each(s, &[&order, &pricing, &who]).await;
    let now = T0 + Duration::minutes(1);

    // Act
    let pages = listed(s, &ws, Some(EventType::Page), None, 50, now).await;
    let named = listed(s, &ws, None, Some("order comp"), 50, now).await;
    let identifies = listed(s, &ws, Some(EventType::Identify), None, 50, now).await;
    let nothing = listed(s, &ws, Some(EventType::Page), Some("order"), 50, now).await;

    // Assert
    assert_eq!(pages, vec![pricing.event.event_id]);
    assert_eq!(
        named,
        vec![order.event.event_id],
        "a part of the name, any case"
    );
    assert_eq!(identifies, vec![who.event.event_id]);
    assert_eq!(nothing, vec![], "both filters at once");
}

pub async fn lists_nothing_older_than_the_window_expired_or_of_another_workspace(
    s: &dyn EventStore,
) {
    // Arrange: an event two hours old, one that expired, and another workspace's.
    let ws = WorkspaceId::new(Region::Us, &unique());
    let now = T0 + Duration::hours(2);
    let old = event(&ws, "m-old", EventType::Track, Some("Old"), T0);
    let mut expired = event(
        &ws,
        "m-expired",
        EventType::Track,
        Some("Expired"),
        now - Duration::minutes(5),
    );
    expired.event.expires_at = now - Duration::minutes(1);
    let theirs = event(
        &WorkspaceId::new(Region::Us, &unique()),
        "m-theirs",
        EventType::Track,
        Some("Theirs"),
        now - Duration::minutes(2),
    );
    let fresh = event(
        &ws,
        "m-fresh",
        EventType::Track,
        Some("Fresh"),
        now - Duration::minutes(1),
    );
    record_each(s, &[&old, &expired, &theirs, &fresh]).await;

    // Act
    let found = listed(s, &ws, None, None, 50, now).await;

    // Assert
    assert_eq!(found, vec![fresh.event.event_id]);
}

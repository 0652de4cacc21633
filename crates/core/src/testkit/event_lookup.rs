//! Finding events by the client's Segment `messageId` (`EventStore::event_ids_by_message_id`)
//! on every event store: through the message id's dedup marker, within the caller's
//! workspace only, while the message's dedup window (24 h) is open. Events without subjects
//! have a marker on every store; DynamoDB keeps the others' dedup entries on their subject
//! and finds them in the packs of the window, by the millisecond in their id.

use super::{new_event, unique, T0};
use crate::event::{EventId, MessageId};
use crate::ports::EventStore;
use crate::workspace::{Region, WorkspaceId};

/// The events of `ws` that `event_ids_by_message_id` finds for `message` at `now`.
async fn ids_of(
    s: &dyn EventStore,
    ws: &WorkspaceId,
    message: &str,
    now: time::OffsetDateTime,
) -> Vec<EventId> {
    let id = MessageId::parse(message).expect("message id");
    s.event_ids_by_message_id(ws, &id, now).await.unwrap()
}

/// An event as ingest makes it: its id (UUIDv7) carries the millisecond it was received at.
pub fn received_at(e: &mut crate::ports::NewEvent, at: time::OffsetDateTime) {
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as u64;
    let random: [u8; 10] = rand::random();
    let id = EventId(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid());
    e.event.event_id = id;
    if let Some(op) = e.operational.as_mut() {
        op.event_id = id;
    }
}

pub async fn finds_an_identified_event_by_its_message_id_within_the_dedup_window(
    s: &dyn EventStore,
) {
    // Arrange: an event of a user id and an email (their subject-index values), beside
    // another subject's event of the same request.
    let ws = WorkspaceId::new(Region::Us, &unique());
    let mut e = new_event(&ws, "m-identified", &["user-index", "email-index"], T0);
    received_at(&mut e, T0);
    let mut other = new_event(&ws, "m-other", &["other-index"], T0);
    received_at(&mut other, T0);
    s.record(&[e.clone(), other], T0).await.unwrap();

    // Act
    let found = ids_of(s, &ws, "m-identified", T0 + time::Duration::hours(23)).await;
    let late = ids_of(s, &ws, "m-identified", T0 + time::Duration::hours(25)).await;
    let elsewhere = ids_of(
        s,
        &WorkspaceId::new(Region::Us, &unique()),
        "m-identified",
        T0,
    )
    .await;

    // Assert
    assert_eq!(found, vec![e.event.event_id]);
    assert_eq!(late, vec![], "the dedup window is over");
    assert_eq!(elsewhere, vec![], "another workspace's lookup");
}

pub async fn finds_an_event_by_its_message_id_while_its_dedup_marker_lives(s: &dyn EventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-find", &[], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();

    let found = ids_of(s, &ws, "m-find", T0 + time::Duration::hours(23)).await;

    assert_eq!(found, vec![e.event.event_id]);
}

pub async fn never_finds_another_workspaces_event_with_the_same_message_id(s: &dyn EventStore) {
    let mine = WorkspaceId::new(Region::Us, &unique());
    let theirs = WorkspaceId::new(Region::Us, &unique());
    let their_event = new_event(&theirs, "m-shared", &[], T0);
    s.record(&[their_event], T0).await.unwrap();

    let none = ids_of(s, &mine, "m-shared", T0).await;
    assert_eq!(none, vec![]);

    let my_event = new_event(&mine, "m-shared", &[], T0);
    s.record(std::slice::from_ref(&my_event), T0).await.unwrap();
    let found = ids_of(s, &mine, "m-shared", T0).await;
    assert_eq!(found, vec![my_event.event.event_id]);
}

pub async fn finds_nothing_once_the_dedup_window_is_over(s: &dyn EventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    s.record(&[new_event(&ws, "m-late", &[], T0)], T0)
        .await
        .unwrap();

    let found = ids_of(s, &ws, "m-late", T0 + time::Duration::hours(25)).await;

    assert_eq!(found, vec![]);
}

pub async fn a_duplicate_leaves_the_first_event_found(s: &dyn EventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let first = new_event(&ws, "m-twice", &[], T0);
    s.record(std::slice::from_ref(&first), T0).await.unwrap();
    let later = T0 + time::Duration::hours(1);
    let again = new_event(&ws, "m-twice", &[], later);
    assert_eq!(s.record(&[again], later).await.unwrap(), vec![false]);

    let found = ids_of(s, &ws, "m-twice", later).await;

    assert_eq!(found, vec![first.event.event_id]);
}

pub async fn a_forgotten_event_is_not_found_by_its_message_id(s: &dyn EventStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let e = new_event(&ws, "m-gone", &[], T0);
    s.record(std::slice::from_ref(&e), T0).await.unwrap();
    s.forget(&ws, &[(e.event.event_id, e.event.message_id.clone())])
        .await
        .unwrap();

    let found = ids_of(s, &ws, "m-gone", T0).await;

    assert_eq!(found, vec![]);
}

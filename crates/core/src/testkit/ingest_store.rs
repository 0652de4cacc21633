use std::sync::Mutex;

use super::*;
use crate::ports::{IngestStore, PackRecorded};

/// An ingest store with the event store and the queue it writes, to read them back.
#[allow(missing_debug_implementations)]
pub struct IngestStores {
    pub store: Arc<dyn IngestStore>,
    pub events: Arc<dyn InspectableEventStore>,
    pub queue: Arc<dyn DeliveryQueue>,
}

const KIND: DestinationKind = DestinationKind::Webhook;

/// A pack that makes one message per recorded event, its body the event's message id, and
/// keeps every answer it was given in `calls`.
fn one_message_per_recorded_event(
    events: &[NewEvent],
    calls: Arc<Mutex<Vec<Vec<bool>>>>,
) -> PackRecorded {
    let ws = events[0].event.workspace_id.clone();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.event.message_id.as_str().to_owned())
        .collect();
    let destination = DestinationId::new(&unique());
    Box::new(move |recorded: &[bool]| {
        calls.lock().unwrap().push(recorded.to_vec());
        ids.iter()
            .zip(recorded)
            .filter(|(_, new)| **new)
            .map(|(id, _)| Outgoing {
                kind: KIND,
                destination_id: destination.clone(),
                workspace_id: ws.clone(),
                body: id.as_bytes().to_vec(),
                delay: Duration::ZERO,
                shared: None,
            })
            .collect()
    })
}

/// The bodies of every message visible on the test kind's queue, sorted.
async fn queued_bodies(q: &dyn DeliveryQueue) -> Vec<String> {
    let mut bodies: Vec<String> = q
        .receive(KIND, 100, Duration::from_secs(30))
        .await
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect();
    bodies.sort();
    bodies
}

pub async fn records_the_events_and_queues_the_messages_made_of_them(s: &IngestStores) {
    // Arrange
    let ws = WorkspaceId::new(Region::Us, &unique());
    let events = [
        new_event(&ws, "m-1", &["subj-a"], T0),
        new_event(&ws, "m-2", &["subj-a"], T0),
    ];
    let calls = Arc::default();

    // Act
    let out = s
        .store
        .record_and_enqueue(
            &events,
            T0,
            one_message_per_recorded_event(&events, Arc::clone(&calls)),
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(out.recorded, vec![true, true]);
    assert_eq!(out.messages, 2);
    for e in &events {
        let back = s.events.event(&ws, &e.event.event_id, T0).await.unwrap();
        assert_eq!(back.as_ref(), Some(&e.event));
    }
    assert_eq!(queued_bodies(s.queue.as_ref()).await, ["m-1", "m-2"]);
    let calls = calls.lock().unwrap();
    assert!(!calls.is_empty() && calls.iter().all(|c| *c == [true, true]));
}

pub async fn a_repeated_message_id_is_neither_recorded_again_nor_packed(s: &IngestStores) {
    // Arrange: m-1 stored once.
    let ws = WorkspaceId::new(Region::Us, &unique());
    let first = [new_event(&ws, "m-1", &["subj-a"], T0)];
    let pack = one_message_per_recorded_event(&first, Arc::default());
    s.store.record_and_enqueue(&first, T0, pack).await.unwrap();

    // Act: m-1 again, beside a new m-3.
    let later = T0 + time::Duration::minutes(5);
    let again = [
        new_event(&ws, "m-1", &["subj-a"], later),
        new_event(&ws, "m-3", &["subj-a"], later),
    ];
    let calls = Arc::default();
    let pack = one_message_per_recorded_event(&again, Arc::clone(&calls));
    let out = s
        .store
        .record_and_enqueue(&again, later, pack)
        .await
        .unwrap();

    // Assert: the repeat is not stored, and only the first m-1 and m-3 are queued.
    assert_eq!(out.recorded, vec![false, true]);
    assert_eq!(out.messages, 1);
    let repeat = &again[0].event.event_id;
    assert_eq!(s.events.event(&ws, repeat, later).await.unwrap(), None);
    assert_eq!(queued_bodies(s.queue.as_ref()).await, ["m-1", "m-3"]);
    let calls = calls.lock().unwrap();
    assert!(!calls.is_empty() && calls.iter().all(|c| *c == [false, true]));
}

/// Events kept without their messages would never be delivered, and the client's retry would
/// be answered as a duplicate of them: a failure after the events were recorded leaves
/// nothing, and the retry is recorded.
pub async fn when_the_messages_cannot_be_made_nothing_is_kept_and_the_retry_is_recorded(
    s: &IngestStores,
) {
    // Arrange
    let ws = WorkspaceId::new(Region::Us, &unique());
    let events = [new_event(&ws, "m-1", &["subj-a"], T0)];
    let failing: PackRecorded = Box::new(|_: &[bool]| panic!("packing failed (on purpose)"));

    // Act
    let failed = s.store.record_and_enqueue(&events, T0, failing).await;

    // Assert
    assert!(failed.is_err(), "{failed:?}");
    let id = &events[0].event.event_id;
    assert_eq!(s.events.event(&ws, id, T0).await.unwrap(), None);
    assert!(queued_bodies(s.queue.as_ref()).await.is_empty());
    let retry = one_message_per_recorded_event(&events, Arc::default());
    let out = s
        .store
        .record_and_enqueue(&events, T0, retry)
        .await
        .unwrap();
    assert_eq!(out.recorded, vec![true]);
    assert_eq!(queued_bodies(s.queue.as_ref()).await, ["m-1"]);
}

pub async fn an_empty_request_stores_and_queues_nothing(s: &IngestStores) {
    let calls: Arc<Mutex<Vec<Vec<bool>>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let pack: PackRecorded = Box::new(move |r: &[bool]| {
        seen.lock().unwrap().push(r.to_vec());
        Vec::new()
    });
    let out = s.store.record_and_enqueue(&[], T0, pack).await.unwrap();
    assert_eq!(out.recorded, Vec::<bool>::new());
    assert_eq!(out.messages, 0);
    assert!(calls.lock().unwrap().iter().all(Vec::is_empty));
    assert!(queued_bodies(s.queue.as_ref()).await.is_empty());
}

//! The sealed fields that the items by reference of one request share (`queue_shared`):
//! stored once for all of the request's messages, handed back with each, kept while a message
//! or a part of one refers to them (dead letters included), gone with the last, and cut by an
//! erasure to the events that remain.

use super::*;
use tracklayer_core::crypto::Sealed;
use tracklayer_core::destination::{DestinationId, DestinationKind};
use tracklayer_core::event::{decode_shared, encode_shared, EventId, ItemRef, QueueBody, RefBody};
use tracklayer_core::ports::{DeadLetterAdmin, Enqueuer, Outgoing, QueueConsumer, Remainder};

const KINDS: [DestinationKind; 3] = [
    DestinationKind::MetaCapi,
    DestinationKind::Ga4,
    DestinationKind::Tiktok,
];

struct Setup {
    db: Db,
    clock: Arc<FixedClock>,
    queue: SqliteDeliveryQueue,
    ws: WorkspaceId,
    events: [EventId; 2],
    shared: Arc<Vec<u8>>,
}

impl Setup {
    /// One request's messages, one per kind, with both events' items sharing their fields.
    async fn enqueued() -> Self {
        let db = Db::in_memory().unwrap();
        let clock = Arc::new(FixedClock::new(T0));
        let queue = SqliteDeliveryQueue::new(db.clone(), clock.clone(), Arc::new(SystemIds), 8);
        let ws = WorkspaceId::new(Region::Us, "shared");
        let events = [1u128, 2].map(|n| EventId(uuid::Uuid::from_u128(n)));
        let (a, b) = (Sealed(vec![0xA1; 150]), Sealed(vec![0xB2; 150]));
        let shared = Arc::new(encode_shared([(events[0], &a), (events[1], &b)]));
        let setup = Self {
            db,
            clock,
            queue,
            ws,
            events,
            shared,
        };
        let messages: Vec<Outgoing> = KINDS
            .iter()
            .map(|k| Outgoing {
                shared: Some(setup.shared.clone()),
                ..setup.message(*k, &events)
            })
            .collect();
        setup.queue.enqueue(&messages).await.unwrap();
        setup
    }

    fn message(&self, kind: DestinationKind, events: &[EventId]) -> Outgoing {
        let body = RefBody {
            v: QueueBody::VERSION,
            attempts: 0,
            workspace_id: self.ws.clone(),
            destination_id: DestinationId::new(&kind.as_str().replace('_', "")),
            kind,
            refs: events
                .iter()
                .map(|e| ItemRef {
                    event_id: *e,
                    consent: Default::default(),
                    sealed: None,
                    shared: true,
                })
                .collect(),
        };
        Outgoing {
            kind,
            destination_id: body.destination_id.clone(),
            workspace_id: self.ws.clone(),
            body: body.encode_binary(),
            delay: Duration::ZERO,
            shared: None,
        }
    }

    /// The stored shared rows: references counted, and what each holds.
    async fn stored(&self) -> Vec<(i64, Vec<u8>)> {
        self.db
            .call("test", |c| {
                let mut stmt = c.prepare("SELECT refs, body FROM queue_shared").unwrap();
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                Ok(rows)
            })
            .await
            .unwrap()
    }

    async fn receive_one(&self, kind: DestinationKind) -> tracklayer_core::ports::Received {
        let mut got = self
            .queue
            .receive(kind, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{kind}");
        got.remove(0)
    }
}

#[tokio::test]
async fn one_requests_shared_fields_are_stored_once_and_go_with_its_last_message() {
    let s = Setup::enqueued().await;
    assert_eq!(s.stored().await, [(3, s.shared.to_vec())], "once for three");

    // Meta: the first event delivered, the second retried as a part of its own.
    let meta = s.receive_one(DestinationKind::MetaCapi).await;
    assert_eq!(meta.shared.as_deref(), Some(s.shared.as_slice()));
    let part = Outgoing {
        delay: Duration::from_secs(5),
        ..s.message(DestinationKind::MetaCapi, &s.events[1..])
    };
    let remainder = Remainder {
        retry: vec![part],
        dead: Vec::new(),
        reason: String::new(),
    };
    s.queue
        .replace(DestinationKind::MetaCapi, &meta, &remainder)
        .await
        .unwrap();
    assert_eq!(
        s.stored().await[0].0,
        3,
        "the part took the message's place"
    );
    // GA4 delivered; TikTok refused for good: its dead letter keeps the fields for a replay.
    let ga4 = s.receive_one(DestinationKind::Ga4).await;
    s.queue
        .ack(DestinationKind::Ga4, &ga4.receipt)
        .await
        .unwrap();
    let tiktok = s.receive_one(DestinationKind::Tiktok).await;
    s.queue
        .dead_letter(DestinationKind::Tiktok, &tiktok, "refused")
        .await
        .unwrap();
    assert_eq!(s.stored().await[0].0, 2);
    // The part, once visible, comes with the fields too.
    s.clock.advance(time::Duration::seconds(6));
    let part = s.receive_one(DestinationKind::MetaCapi).await;
    assert_eq!(part.shared.as_deref(), Some(s.shared.as_slice()));
    s.queue
        .ack(DestinationKind::MetaCapi, &part.receipt)
        .await
        .unwrap();
    assert_eq!(s.stored().await[0].0, 1, "only the dead letter is left");

    // Its last message gone (here by erasure of both events), the fields go with it.
    let removed = s
        .queue
        .purge_events(DestinationKind::Tiktok, &s.ws, &s.events)
        .await
        .unwrap();

    assert_eq!(removed, 2);
    assert_eq!(s.stored().await, []);
}

#[tokio::test]
async fn an_erasure_cuts_the_shared_fields_to_the_events_that_remain() {
    let s = Setup::enqueued().await;
    let [erased, kept] = s.events;

    for kind in KINDS {
        s.queue.purge_events(kind, &s.ws, &[erased]).await.unwrap();
    }

    let stored = s.stored().await;
    assert_eq!(stored.len(), 1);
    let (refs, body) = &stored[0];
    assert_eq!(*refs, 3, "each message still has the other event");
    let left = decode_shared(body).unwrap();
    assert_eq!(left.keys().copied().collect::<Vec<_>>(), [kept]);
    assert!(
        !body.windows(16).any(|w| w == erased.0.as_bytes()),
        "no trace of the erased event"
    );
    assert!(
        !body.windows(8).any(|w| w == [0xA1; 8]),
        "nor its sealed bytes"
    );
    let meta = s.receive_one(DestinationKind::MetaCapi).await;
    assert_eq!(meta.shared.as_deref(), Some(body.as_slice()));
}

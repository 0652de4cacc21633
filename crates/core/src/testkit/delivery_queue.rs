use super::*;
use crate::ports::{Received, Remainder};

/// A queue under test, with a way to let time pass (a fixed clock, or real sleeping).
#[async_trait]
pub trait QueueHarness: Send + Sync {
    fn queue(&self) -> &dyn DeliveryQueue;
    /// Lets `by` pass for the queue's visibility timeouts.
    async fn advance(&self, by: Duration);
    /// The queue's redrive limit.
    fn max_receive_count(&self) -> u32;
    /// The kind's dead letters, oldest first (the adapter's test-support read).
    async fn dead_letters(
        &self,
        kind: DestinationKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;
}

fn outgoing(kind: DestinationKind, dest: &DestinationId, ws: &WorkspaceId, body: &str) -> Outgoing {
    Outgoing {
        kind,
        destination_id: dest.clone(),
        workspace_id: ws.clone(),
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
        shared: None,
    }
}

const VIS: Duration = Duration::from_secs(2);

/// Enqueues one message with `body` for a new destination of a new workspace.
async fn enqueue_to_new_destination(
    q: &dyn DeliveryQueue,
    kind: DestinationKind,
    body: &str,
) -> (WorkspaceId, DestinationId) {
    let (ws, d) = ids();
    q.enqueue(&[outgoing(kind, &d, &ws, body)]).await.unwrap();
    (ws, d)
}

/// Whether receiving from `kind`'s queue gets nothing.
async fn nothing_visible(q: &dyn DeliveryQueue, kind: DestinationKind) -> bool {
    q.receive(kind, 10, VIS).await.unwrap().is_empty()
}

/// Receives from `kind`'s queue and checks that exactly one message was visible (`why` says
/// which one, if not).
async fn receive_one(q: &dyn DeliveryQueue, kind: DestinationKind, why: &str) -> Received {
    let mut got = q.receive(kind, 10, VIS).await.unwrap();
    assert_eq!(got.len(), 1, "{why}");
    got.remove(0)
}

fn ids() -> (WorkspaceId, DestinationId) {
    (
        WorkspaceId::new(Region::Us, &unique()),
        DestinationId::new(&unique()),
    )
}

pub async fn hides_a_received_message_until_its_visibility_ends(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::MetaCapi;
    let (ws, d) = enqueue_to_new_destination(q, kind, "{\"n\":1}").await;
    let got = receive_one(q, kind, "the enqueued message").await;
    assert_eq!(got.body, b"{\"n\":1}");
    assert_eq!(got.receive_count, 1);
    assert_eq!(got.destination_id, d);
    assert_eq!(got.workspace_id, ws);
    assert!(nothing_visible(q, kind).await);
    h.advance(VIS + Duration::from_millis(500)).await;
    let again = receive_one(q, kind, "visible again").await;
    assert_eq!(again.receive_count, 2);
    q.ack(kind, &again.receipt).await.unwrap();
}

pub async fn forgets_an_acknowledged_message(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::Ga4;
    enqueue_to_new_destination(q, kind, "a").await;
    let got = receive_one(q, kind, "the enqueued message").await;
    q.ack(kind, &got.receipt).await.unwrap();
    q.ack(kind, &got.receipt).await.unwrap();
    h.advance(VIS + Duration::from_millis(500)).await;
    assert!(nothing_visible(q, kind).await);
}

pub async fn makes_a_message_visible_again_after_retry_later(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::Tiktok;
    enqueue_to_new_destination(q, kind, "r").await;
    let got = q.receive(kind, 10, Duration::from_secs(60)).await.unwrap();
    q.retry_later(kind, &got[0].receipt, Duration::from_secs(1))
        .await
        .unwrap();
    h.advance(Duration::from_millis(1500)).await;
    let again = receive_one(q, kind, "visible again after the delay").await;
    q.ack(kind, &again.receipt).await.unwrap();
}

/// `body.attempts + receive_count`: the attempts the delivery worker counts for a receive.
fn attempts_of(m: &Received) -> u32 {
    m.decode_body().expect("a queue body").attempts + m.receive_count
}

pub async fn gives_a_held_message_back_once_after_its_delay_with_its_receive_unspent(
    h: &dyn QueueHarness,
) {
    let q = h.queue();
    let kind = DestinationKind::Tiktok;
    let (ws, d) = ids();
    let body = queue_body(&ws, &d, &[EventId(Uuid::now_v7())]);
    q.enqueue(&[Outgoing {
        body: body.clone(),
        ..outgoing(kind, &d, &ws, "")
    }])
    .await
    .unwrap();
    // A first receive that counts (say, a failed attempt), then the one that is held.
    q.receive(kind, 10, VIS).await.unwrap();
    h.advance(VIS + Duration::from_millis(500)).await;
    let got = receive_one(q, kind, "visible after the first receive").await;
    assert_eq!(attempts_of(&got), 2);

    q.hold(kind, &got, Duration::from_secs(1)).await.unwrap();

    assert!(
        nothing_visible(q, kind).await,
        "hidden until the delay ends"
    );
    // Past the delay and past the held receive's visibility: one message, not two.
    h.advance(VIS + Duration::from_millis(500)).await;
    let back = receive_one(q, kind, "exactly one copy of a held message").await;
    let events = |m: &Received| -> Vec<EventId> {
        let body = m.decode_body().expect("a queue body");
        body.items.iter().map(|i| i.event_id).collect()
    };
    assert_eq!(events(&back), events(&got));
    assert_eq!(back.workspace_id, ws);
    assert_eq!(back.destination_id, d);
    assert_eq!(
        attempts_of(&back),
        2,
        "the earlier receive still counts, the held one does not"
    );
    q.ack(kind, &back.receipt).await.unwrap();
    h.advance(VIS + Duration::from_millis(500)).await;
    assert!(nothing_visible(q, kind).await);
}

pub async fn never_dead_letters_a_message_held_more_often_than_its_maximum_receives(
    h: &dyn QueueHarness,
) {
    let q = h.queue();
    let kind = DestinationKind::Ga4;
    let (ws, d) = ids();
    q.enqueue(&[Outgoing {
        body: queue_body(&ws, &d, &[EventId(Uuid::now_v7())]),
        ..outgoing(kind, &d, &ws, "")
    }])
    .await
    .unwrap();
    for _ in 0..h.max_receive_count() + 2 {
        let got = receive_one(q, kind, "still queued").await;
        assert_eq!(attempts_of(&got), 1, "no receive spent");
        q.hold(kind, &got, Duration::ZERO).await.unwrap();
    }
    let dead = h.dead_letters(kind, 100).await.unwrap();
    assert!(
        dead.iter().all(|m| m.destination_id != d),
        "not dead-lettered"
    );
}

pub async fn dead_letters_a_message_after_its_maximum_receives(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::Webhook;
    let (_, d) = enqueue_to_new_destination(q, kind, "poison").await;
    for _ in 0..h.max_receive_count() {
        receive_one(q, kind, "visible until its maximum receives").await;
        h.advance(VIS + Duration::from_millis(500)).await;
    }
    assert!(nothing_visible(q, kind).await);
    let dead = h.dead_letters(kind, 100).await.unwrap();
    assert!(dead
        .iter()
        .any(|m| m.destination_id == d && m.body == b"poison"));
}

pub async fn replays_dead_letters_of_one_destination(h: &dyn QueueHarness) {
    let q = h.queue();
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (d1, d2) = (DestinationId::new(&unique()), DestinationId::new(&unique()));
    let kind = DestinationKind::MetaCapi;
    q.enqueue(&[
        outgoing(kind, &d1, &ws, "one"),
        outgoing(kind, &d2, &ws, "two"),
    ])
    .await
    .unwrap();
    let got = q.receive(kind, 10, VIS).await.unwrap();
    let mine: Vec<_> = got.iter().filter(|m| m.workspace_id == ws).collect();
    assert_eq!(mine.len(), 2);
    for m in &mine {
        q.dead_letter(kind, m, "HTTP 400: bad pixel").await.unwrap();
    }
    let dead = h.dead_letters(kind, 1000).await.unwrap();
    assert!(dead
        .iter()
        .any(|m| m.destination_id == d1 && m.reason.contains("bad pixel")));
    let filter = ReplayFilter {
        destination_id: Some(d1.clone()),
        ..Default::default()
    };
    assert_eq!(q.replay(kind, &filter).await.unwrap(), 1);
    let back = q.receive(kind, 10, VIS).await.unwrap();
    let back: Vec<_> = back.into_iter().filter(|m| m.workspace_id == ws).collect();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].destination_id, d1);
    assert_eq!(back[0].body, b"one");
    q.ack(kind, &back[0].receipt).await.unwrap();
    let still_dead = h.dead_letters(kind, 1000).await.unwrap();
    assert!(still_dead.iter().any(|m| m.destination_id == d2));
}

pub async fn hides_a_delayed_message_until_its_delay_ends(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::Webhook;
    let (ws, d) = ids();
    let mut m = outgoing(kind, &d, &ws, "later");
    m.delay = Duration::from_secs(1);
    q.enqueue(&[m]).await.unwrap();
    let now = q.receive(kind, 10, VIS).await.unwrap();
    assert!(now.iter().all(|r| r.workspace_id != ws));
    h.advance(Duration::from_millis(1500)).await;
    let later = q.receive(kind, 10, VIS).await.unwrap();
    let mine: Vec<_> = later.iter().filter(|r| r.workspace_id == ws).collect();
    assert_eq!(mine.len(), 1);
    q.ack(kind, &mine[0].receipt).await.unwrap();
}

pub async fn puts_refused_parts_straight_into_the_dead_letters(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::Ga4;
    let (ws, d) = ids();
    q.enqueue_dead(&[outgoing(kind, &d, &ws, "refused")], "HTTP 400: invalid")
        .await
        .unwrap();
    let live = q.receive(kind, 10, VIS).await.unwrap();
    assert!(live.iter().all(|r| r.workspace_id != ws));
    let dead = h.dead_letters(kind, 1000).await.unwrap();
    assert!(dead
        .iter()
        .any(|m| m.destination_id == d && m.reason.contains("invalid") && m.body == b"refused"));
}

pub async fn replaces_a_received_message_by_its_remainder(h: &dyn QueueHarness) {
    let q = h.queue();
    let kind = DestinationKind::MetaCapi;
    let (ws, d) = enqueue_to_new_destination(q, kind, "whole").await;
    let got = receive_one(q, kind, "the enqueued message").await;
    let retry = Outgoing {
        delay: Duration::from_secs(1),
        ..outgoing(kind, &d, &ws, "deferred")
    };
    let remainder = Remainder {
        retry: vec![retry],
        dead: vec![outgoing(kind, &d, &ws, "refused")],
        reason: "HTTP 400: invalid".into(),
    };

    q.replace(kind, &got, &remainder).await.unwrap();

    assert!(
        nothing_visible(q, kind).await,
        "the retry waits for its delay"
    );
    let dead = h.dead_letters(kind, 1000).await.unwrap();
    let mine: Vec<_> = dead.iter().filter(|m| m.destination_id == d).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].body.as_slice(), mine[0].reason.as_str()),
        (&b"refused"[..], "HTTP 400: invalid")
    );
    // Past the delay and past the replaced receive's visibility: the retry alone.
    h.advance(VIS + Duration::from_millis(500)).await;
    let back = q.receive(kind, 10, VIS).await.unwrap();
    let bodies: Vec<&[u8]> = back.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(
        bodies,
        vec![&b"deferred"[..]],
        "the remainder, not the message"
    );
    assert_eq!(back[0].receive_count, 1);
    q.ack(kind, &back[0].receipt).await.unwrap();
}

pub async fn keeps_each_kind_in_its_own_queue(h: &dyn QueueHarness) {
    let q = h.queue();
    let (ws, _) = enqueue_to_new_destination(q, DestinationKind::Ga4, "ga4-only").await;
    let tiktok = q.receive(DestinationKind::Tiktok, 10, VIS).await.unwrap();
    assert!(tiktok.iter().all(|m| m.workspace_id != ws));
    let ga4 = q.receive(DestinationKind::Ga4, 10, VIS).await.unwrap();
    let mine: Vec<_> = ga4.iter().filter(|m| m.workspace_id == ws).collect();
    assert_eq!(mine.len(), 1);
    q.ack(DestinationKind::Ga4, &mine[0].receipt).await.unwrap();
}

/// A queue message body with one item per event.
pub fn queue_body(ws: &WorkspaceId, dest: &DestinationId, events: &[EventId]) -> Vec<u8> {
    let body = QueueBody {
        v: QueueBody::VERSION,
        attempts: 0,
        workspace_id: ws.clone(),
        destination_id: dest.clone(),
        kind: DestinationKind::MetaCapi,
        items: events
            .iter()
            .map(|e| {
                let message_id = MessageId::parse(&e.to_string()).expect("message id");
                DeliveryItem {
                    user_data: BTreeMap::from([(
                        Field::Email,
                        crate::identity::sha256_hex(&e.to_string()),
                    )]),
                    ..DeliveryItem::track(*e, message_id, "Purchase", T0, json!({"value": 1}))
                }
            })
            .collect(),
        by_reference: false,
    };
    body.encode()
}

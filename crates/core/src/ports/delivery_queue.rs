//! The delivery queue's role traits: ingest's side ([`Enqueuer`]), the worker's side
//! ([`QueueConsumer`]) and dead-letter administration ([`DeadLetterAdmin`]); the messages they
//! carry are in the parent module.

use std::time::Duration;

use async_trait::async_trait;

use super::{Outgoing, Receipt, Received, ReplayFilter};
use crate::destination::DestinationKind;
use crate::error::StoreError;
use crate::event::EventId;
use crate::workspace::WorkspaceId;

/// Puts messages on a destination kind's queue (ingest).
#[async_trait]
pub trait Enqueuer: Send + Sync {
    async fn enqueue(&self, messages: &[Outgoing]) -> Result<(), StoreError>;
    /// Whether ingest queues items by reference to their stored events
    /// ([`crate::event::RefBody`]): only where the event store is in the same database and
    /// written first (SQLite), so that delivery reads every event in one batched read per
    /// message. SQS holds items by value: its consumer does not read the event store.
    fn items_by_reference(&self) -> bool;
}

/// What the delivery worker does with its kind's queue: receive, then settle each message.
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Puts messages straight into the dead-letter queue (the part of a message that a
    /// destination refused for good while the rest was delivered).
    async fn enqueue_dead(&self, messages: &[Outgoing], reason: &str) -> Result<(), StoreError>;
    /// Up to `max` visible messages, hidden for `visibility`. A message received more than the
    /// queue's maximum receive count moves to the dead-letter queue instead.
    async fn receive(
        &self,
        kind: DestinationKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError>;
    async fn ack(&self, kind: DestinationKind, receipt: &Receipt) -> Result<(), StoreError>;
    /// Makes the message visible again after `delay`.
    async fn retry_later(
        &self,
        kind: DestinationKind,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), StoreError>;
    /// Hands a received message back unspent (its destination is paused, egress is paused, its
    /// in-flight budget is spent, its key is unavailable): visible again after `delay`, with
    /// neither this receive nor an attempt counted, and never as two messages.
    ///
    /// SQLite does it in one statement. SQS cannot un-count a receive, and a visibility
    /// change would spend the redrive budget (`maxReceiveCount`), so that a long pause would
    /// dead-letter messages never tried: it sends a delayed copy whose body counts the earlier
    /// receives as attempts, then deletes the original. A crash between the two leaves both
    /// (at least once, as SQS always is; the delivery log skips items already delivered).
    async fn hold(
        &self,
        kind: DestinationKind,
        message: &Received,
        delay: Duration,
    ) -> Result<(), StoreError>;
    /// Replaces a received message by what is left of it after an attempt: `retry` as new
    /// messages (hidden for their delay), `dead` as dead letters with `reason`; the rest was
    /// delivered. All or nothing on SQLite (one transaction: a kill -9 leaves the message or
    /// its remainder, never both; the parts keep the message's shared sealed fields,
    /// [`Outgoing::shared`]); SQS sends the parts, then deletes the message (a crash in
    /// between leaves both: at least once, and the delivery log skips what was delivered).
    async fn replace(
        &self,
        kind: DestinationKind,
        message: &Received,
        remainder: &Remainder,
    ) -> Result<(), StoreError>;
    /// Moves a received message to the dead-letter queue with `reason`: the message itself
    /// says what to move, so no adapter has to remember what it handed out.
    async fn dead_letter(
        &self,
        kind: DestinationKind,
        message: &Received,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// What is left of a received message after an attempt ([`QueueConsumer::replace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remainder {
    /// The items to send again, as messages hidden for their delay.
    pub retry: Vec<Outgoing>,
    /// The items refused for good, as dead letters with `reason`.
    pub dead: Vec<Outgoing>,
    pub reason: String,
}

/// Dead-letter administration: replay (admin API, CLI) and erasure (data-subject requests).
#[async_trait]
pub trait DeadLetterAdmin: Send + Sync {
    /// Moves matching dead letters back to the queue; returns how many moved.
    async fn replay(&self, kind: DestinationKind, filter: &ReplayFilter)
        -> Result<u64, StoreError>;
    /// Erasure: removes the items of these events of workspace `ws` from the kind's dead
    /// letters and, where the backend can change a queued message, from its waiting and
    /// delayed messages (SQLite can, in flight or not; SQS cannot change a queued message, so
    /// those are delivered as accepted before the suppression). A message left without items
    /// is deleted. Returns the items removed.
    async fn purge_events(
        &self,
        kind: DestinationKind,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<u64, StoreError>;
}

/// One queue (and dead-letter queue) per destination kind, with SQS semantics: every role.
/// Adapters implement the three role traits; this follows.
pub trait DeliveryQueue: Enqueuer + QueueConsumer + DeadLetterAdmin {}

impl<T: Enqueuer + QueueConsumer + DeadLetterAdmin + ?Sized> DeliveryQueue for T {}

//! [`IngestStore`] over an event store and a queue that are two services (DynamoDB and SQS):
//! the events are recorded, then their messages queued; when queueing fails, the recorded
//! events are forgotten again, so the client's retry is not taken for a duplicate of them.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::ports::{DeliveryQueue, EventWriter, IngestStore, NewEvent, PackRecorded, Recorded};

/// Records, then queues; forgets what it recorded when the queue fails. A process that stops
/// between the two leaves recorded events without messages (the retry of the request is then
/// a duplicate): two services have no transaction across them. `serve` stores both in one
/// SQLite transaction instead.
#[allow(missing_debug_implementations)]
pub struct RecordThenEnqueue {
    events: Arc<dyn EventWriter>,
    queue: Arc<dyn DeliveryQueue>,
}

impl RecordThenEnqueue {
    pub fn new(events: Arc<dyn EventWriter>, queue: Arc<dyn DeliveryQueue>) -> Self {
        Self { events, queue }
    }
}

#[async_trait]
impl IngestStore for RecordThenEnqueue {
    async fn record_and_enqueue(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
        mut pack: PackRecorded,
    ) -> Result<Recorded, StoreError> {
        // One request's events are of one workspace.
        let Some(ws) = events.first().map(|e| &e.event.workspace_id) else {
            return Ok(Recorded::nothing());
        };
        let recorded = self.events.record(events, now).await?;
        // A panic while packing must not leave the recorded events behind either.
        let queued = match std::panic::catch_unwind(AssertUnwindSafe(|| pack(&recorded))) {
            Ok(messages) => self.queue.enqueue(&messages).await.map(|()| messages.len()),
            Err(_) => Err(StoreError::permanent(
                "ingest",
                "packing the queue messages panicked",
            )),
        };
        match queued {
            Ok(messages) => Ok(Recorded { recorded, messages }),
            Err(e) => {
                let fresh: Vec<_> = events
                    .iter()
                    .zip(&recorded)
                    .filter(|(_, new)| **new)
                    .map(|(e, _)| (e.event.event_id, e.event.message_id.clone()))
                    .collect();
                if let Err(undo) = self.events.forget(ws, &fresh).await {
                    tracing::error!(error = %undo, "could not undo recorded events after a queue failure");
                }
                Err(e)
            }
        }
    }

    fn items_by_reference(&self) -> bool {
        self.queue.items_by_reference()
    }
}

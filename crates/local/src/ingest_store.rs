//! `IngestStore` on SQLite: a request's events and their queue messages in one transaction.
//!
//! Recorded in one transaction and queued in another, a process killed between the two
//! commits kept events (with their dedup markers) that no message would ever deliver, and
//! the client's retry of the unanswered request was answered as a duplicate of them: lost
//! for good (`tests/tests/e2e/durability.rs` found 30 such events in 5 kills). In one
//! transaction both are kept or neither is, and ingest waits for one commit instead of two.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracklayer_core::clock::{unix_millis, Clock};
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::{IngestStore, NewEvent, PackRecorded, Recorded};

use crate::db::Db;
use crate::events::{record_rows, SqliteEventStore};
use crate::queue;

/// The events and the delivery queue of one database, written together.
#[derive(Clone)]
pub struct SqliteIngestStore {
    db: Db,
    events: SqliteEventStore,
    clock: Arc<dyn Clock>,
}

tracklayer_core::debug_fields!(SqliteIngestStore: db);

impl SqliteIngestStore {
    /// On `db`, whose event store and queue ([`SqliteEventStore`], `SqliteDeliveryQueue`)
    /// it writes; `clock` stamps the messages' enqueue times as the queue's does.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            events: SqliteEventStore::new(db.clone()),
            db,
            clock,
        }
    }
}

#[async_trait]
impl IngestStore for SqliteIngestStore {
    async fn record_and_enqueue(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
        mut pack: PackRecorded,
    ) -> Result<Recorded, StoreError> {
        if events.is_empty() {
            return Ok(Recorded::nothing());
        }
        let rows = self.events.rows(events).await?;
        let now = unix_millis(now);
        let enqueued_at = unix_millis(self.clock.now());
        self.db
            .write("record", move |c| {
                let recorded = record_rows(c, &rows, now)?;
                // Packed in the transaction: only the recorded events' items, by reference
                // to the rows just written. (Run again, if the group's transaction is, with
                // the same answer: `PackRecorded`.)
                let messages = pack(&recorded);
                let queued = queue::rows(&messages, enqueued_at);
                queue::insert_rows(c, &queued, enqueued_at, None, None)?;
                Ok(Recorded {
                    recorded,
                    messages: messages.len(),
                })
            })
            .await
    }

    /// By reference: the events are in the same transaction as their messages.
    fn items_by_reference(&self) -> bool {
        true
    }
}

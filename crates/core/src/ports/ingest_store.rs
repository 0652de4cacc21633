//! Ingest's store role ([`IngestStore`]): a request's events and their queue messages, kept
//! together.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{NewEvent, Outgoing};
use crate::error::StoreError;

/// The queue messages of a request's recorded events, made once the store knows which of them
/// were recorded (`true`) and which were duplicates (`false`): the store may ask again, with
/// the same answer, when it runs its write a second time.
pub type PackRecorded = Box<dyn FnMut(&[bool]) -> Vec<Outgoing> + Send>;

/// What [`IngestStore::record_and_enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Per event, whether it was recorded (`false`: a duplicate).
    pub recorded: Vec<bool>,
    /// Messages queued for the recorded events.
    pub messages: usize,
}

impl Recorded {
    /// What a request without events to record stores: nothing.
    pub fn nothing() -> Self {
        Self {
            recorded: Vec::new(),
            messages: 0,
        }
    }
}

/// Ingest's write: the events of one request and the queue messages of those that are new.
/// An event recorded without its messages would be lost for good (the client's retry is a
/// duplicate of it), so a store either keeps both or neither: in one transaction where the
/// events and the queue are one database (`serve`'s SQLite), otherwise one after the other,
/// forgetting the recorded events when their messages could not be queued
/// ([`crate::ingest::RecordThenEnqueue`]).
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Records each event whose message id was not seen in its workspace within the dedup
    /// window, and queues what `pack` makes of the recorded ones.
    async fn record_and_enqueue(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
        pack: PackRecorded,
    ) -> Result<Recorded, StoreError>;
    /// Whether messages hold items by reference to their stored events
    /// ([`super::Enqueuer::items_by_reference`]).
    fn items_by_reference(&self) -> bool;
}

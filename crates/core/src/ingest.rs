//! The ingest use case: parse → validate → normalize → hash → consent → route → store → queue.
//!
//! All privacy work happens here, before anything is stored or queued (DESIGN.md § Data flow).
//! [`prepare`] is pure (no I/O) so it can be benchmarked and tested alone; [`IngestService`]
//! wraps it with authentication, caching, storage and queueing.
//!
//! By stage: `wire` (limits, parsing a body, validating an event, warnings), `prepare`
//! (one event through the stages, consent and routing, sealing), `identifiers` (finding,
//! hashing and indexing identifiers; the subject index erasure shares), [`scrub`], `pack`
//! (queue messages), `store` (recording and queueing where events and queue are two stores)
//! and `service` (the use case with its ports and caches); `gate` bounds
//! concurrent preparations and `inherit` reads a batch's context through each event's.

mod context;
mod gate;
mod identifiers;
pub(crate) mod inherit;
mod pack;
mod prepare;
pub mod scrub;
mod service;
mod store;
mod wire;

pub use gate::PrepareGate;
pub use identifiers::{anonymous_subject_index, field_tag, subject_index};
pub use inherit::{MAX_BATCH_OBJECT_KEYS, MAX_OBJECT_KEYS};
pub use pack::{pack, Holding, PackItem, QueuedItem};
pub use prepare::{prepare, Pipeline, PreparedBatch};
pub use service::{IngestConfig, IngestOutcome, IngestPorts, IngestService, Snapshot};
pub use store::RecordThenEnqueue;
pub use wire::{
    parse_body, Endpoint, IngestError, ParsedBody, Rejection, RequestMeta, RequirementCheck, Unmet,
    Warning, MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_QUEUE_MESSAGE_BYTES, MAX_REQUEST_BYTES,
};

#[cfg(test)]
mod tests;

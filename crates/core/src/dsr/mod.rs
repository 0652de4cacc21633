//! Data-subject requests (whitepaper §06): erasure and access, for one subject of one
//! workspace, processed in resumable pages by [`service::DsrService`].
//!
//! A request's identifiers are turned into subject-index values (HMAC with the workspace key,
//! exactly as ingest indexes events) when it is received; the raw email, phone or id is never
//! stored. Those index values stay on the request only while it is being processed and are
//! cleared when it completes. What stays after an erasure is the suppression list, which holds
//! [`suppression_token`]s — a hash of the index value, not the index value itself — so that
//! later events of the subject are dropped at ingest.

mod export;
mod mail;
mod processor;
mod receipt;
pub mod service;
mod subject;
mod submit;
mod vendor_ids;

pub use receipt::SentToVendor;
pub use vendor_ids::{ClientIds, SentClientIds, VendorIds};

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::serde::rfc3339::option as opt_rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::Sealed;
use crate::destination::{DestinationId, DestinationKind};
use crate::event::EventId;
use crate::workspace::WorkspaceId;

/// `dsr_<32 hex>`: a request's id (UUIDv7, time-ordered).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DsrId(String);

crate::newtype::string_newtype!(DsrId: InvalidDsrId, Display);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a data-subject request id (expected dsr_<32 hex digits>)")]
pub struct InvalidDsrId;

impl DsrId {
    pub fn new(id: Uuid) -> Self {
        Self(format!("dsr_{}", id.simple()))
    }
    pub fn parse(s: &str) -> Result<Self, InvalidDsrId> {
        let hex = s.strip_prefix("dsr_").ok_or(InvalidDsrId)?;
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(InvalidDsrId);
        }
        Ok(Self(s.to_owned()))
    }
}

/// What the subject asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DsrKind {
    /// Art. 17 GDPR / CCPA deletion: delete everything, suppress later events.
    Erasure,
    /// Art. 15 GDPR / CCPA right to know: an export of what is stored.
    Access,
}

impl DsrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Erasure => "erasure",
            Self::Access => "access",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DsrStatus {
    /// Received, not started.
    Pending,
    /// Started; `progress` says how far it got.
    Processing,
    /// Done; the receipt is final.
    Completed,
}

impl DsrStatus {
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Completed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Completed => "completed",
        }
    }
}

/// Where a request's processing stands. Persisted after every page, so a crash resumes at
/// the page it interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing done yet.
    #[default]
    Start,
    /// Erasure: the subject is on the suppression list; deleting waits until every ingest
    /// process has seen it (`DsrConfig::suppression_propagation`).
    Suppressed,
    /// Going through the subject's events page by page.
    Pages,
    /// Every page is done: receipt, exports, notification.
    Finish,
}

/// A page whose reads are done and persisted, and whose deletions may be under way. Its
/// counts were taken before anything was deleted, so a re-run after a crash counts right.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagePlan {
    pub events: Vec<EventId>,
    pub counts: StoreCounts,
    pub downstream: BTreeMap<DestinationId, Downstream>,
    /// Erasure: the GA4 client ids found so far, this page's included ([`SentClientIds`],
    /// sealed); `None` when this page found none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ids: Option<Sealed>,
}

impl fmt::Debug for PagePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagePlan")
            .field("events", &self.events.len())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// Rows per store, as the receipt reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreCounts {
    pub events: u64,
    pub subject_index_entries: u64,
    pub operational_records: u64,
    pub dedup_markers: u64,
    pub delivery_log_entries: u64,
    /// Items of the subject's events removed from delivery queues and dead-letter queues.
    pub queue_items: u64,
    /// Erasure: exports of earlier access requests for the subject, deleted.
    #[serde(default)]
    pub access_exports: u64,
}

impl StoreCounts {
    pub fn add(&mut self, o: &StoreCounts) {
        self.events += o.events;
        self.subject_index_entries += o.subject_index_entries;
        self.operational_records += o.operational_records;
        self.dedup_markers += o.dedup_markers;
        self.delivery_log_entries += o.delivery_log_entries;
        self.queue_items += o.queue_items;
        self.access_exports += o.access_exports;
    }
}

/// What reached one destination for the subject, as the delivery log and routing tell.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Downstream {
    pub kind: Option<DestinationKind>,
    /// Events of the subject routed to the destination.
    pub routed: u64,
    /// Of those, delivered (the destination accepted them).
    pub delivered: u64,
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub first_delivered_at: Option<OffsetDateTime>,
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<OffsetDateTime>,
}

impl Downstream {
    pub fn merge(&mut self, o: &Downstream) {
        self.kind = self.kind.or(o.kind);
        self.routed += o.routed;
        self.delivered += o.delivered;
        self.first_delivered_at = match (self.first_delivered_at, o.first_delivered_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_delivered_at = match (self.last_delivered_at, o.last_delivered_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Persisted progress of a request.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    /// The last event of the last finished page (access requests page by cursor; erasure
    /// pages find the remaining events since finished ones are gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<EventId>,
    /// The page under way, if a run stopped inside one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PagePlan>,
    pub pages: u32,
    pub counts: StoreCounts,
    #[serde(default)]
    pub downstream: BTreeMap<DestinationId, Downstream>,
    /// Access: export parts written so far.
    #[serde(default)]
    pub export_parts: u32,
    /// Erasure: the GA4 client ids of the finished pages ([`SentClientIds`], sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ids: Option<Sealed>,
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub suppressed_at: Option<OffsetDateTime>,
}

crate::debug_fields!(Progress: phase, pages, counts, page);

/// What TrackLayer did, or could not do, at one destination, and what the customer must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationReceipt {
    pub destination_id: DestinationId,
    /// `None` when the destination was deleted since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DestinationKind>,
    pub events_routed: u64,
    pub events_delivered: u64,
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub first_delivered_at: Option<OffsetDateTime>,
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<OffsetDateTime>,
    /// What TrackLayer did there.
    pub tracklayer_action: String,
    /// What the customer must do in the destination's own systems (`None`: nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_action: Option<String>,
    /// Erasure at GA4: the client ids delivered for the subject, to delete with GA4's User
    /// Deletion API. Never stored (the receipt keeps them sealed in `client_ids`): filled
    /// when an admin reads the request.
    #[serde(skip)]
    pub client_ids: ClientIds,
}

/// The final account of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    /// Erasure: rows deleted per store. Access: rows exported per store.
    pub counts: StoreCounts,
    /// Erasure: later events of the subject are dropped at ingest.
    pub suppressed: bool,
    pub pages: u32,
    pub destinations: Vec<DestinationReceipt>,
    /// Access: until when the export can be downloaded.
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub export_expires_at: Option<OffsetDateTime>,
    /// Access: the erasure of the same subject that deleted the export within its 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_deleted_by: Option<DsrId>,
    /// The workspace was closed before the request completed: an erasure ran as usual; an
    /// access request made no export (no key of the workspace can download one any more, and
    /// it would only be another copy of the subject's data).
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub workspace_closed_at: Option<OffsetDateTime>,
    /// Erasure: the GA4 client ids delivered for the subject, per destination
    /// ([`SentClientIds`], sealed); opened into each destination's `client_ids` on read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ids: Option<Sealed>,
}

/// A data-subject request as the `DsrStore` keeps it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DsrRequest {
    pub id: DsrId,
    pub workspace_id: WorkspaceId,
    pub kind: DsrKind,
    pub status: DsrStatus,
    /// The customer's own reference (ticket number), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Which identifiers were given (`email`, `phone`, `external_id`, `anonymous_id`).
    pub identifiers: Vec<String>,
    /// Subject-index values of the identifiers: kept while open, cleared on completion.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Actor that submitted it (`user:<id>` / `key:<id>`).
    pub submitted_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    /// 30 days after submission (GDPR art. 12(3)).
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(default)]
    pub progress: Progress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The "due soon" mail went out.
    #[serde(default)]
    pub reminder_sent: bool,
    /// Access, while its export can be downloaded: the subject's suppression tokens, so that a
    /// later erasure of the same subject deletes the export too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_tokens: Vec<String>,
}

impl fmt::Debug for DsrRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DsrRequest")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field(
                "subjects",
                &format_args!("<{} redacted>", self.subjects.len()),
            )
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl DsrRequest {
    /// How long after submission a request is due.
    pub const DUE_DAYS: i64 = 30;
    /// How long an access export can be downloaded.
    pub const EXPORT_DAYS: i64 = 7;
    /// How long before the due date the "due soon" mail goes out.
    pub const REMIND_DAYS: i64 = 7;
}

/// What the suppression list keeps for one subject-index value: SHA-256 of a label and the
/// value. The index value is already keyed (HMAC with the workspace key), so the token is
/// not reversible without that key, and the erased index value itself is kept nowhere.
pub fn suppression_token(subject_index: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tracklayer/suppression/v1\0");
    h.update(subject_index.as_bytes());
    crate::crypto::hex_lower(&h.finalize())
}

/// One event as the event store holds it for a subject, with the rows beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFootprint {
    pub event: crate::event::StoredEvent,
    /// An operational record (sealed IP/UA) exists, expired or not.
    pub operational: bool,
    /// A dedup marker for the event's message id points at this event.
    pub dedup_marker: bool,
    /// Subject-index entries of this event (all its subjects, not only the requested ones).
    pub subject_index_entries: u32,
}

/// Rows deleted by `EventEraser::erase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasedRows {
    pub events: u64,
    pub subject_index_entries: u64,
    pub operational_records: u64,
    pub dedup_markers: u64,
}

/// A queue message body after removing the items of some events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stripped {
    /// None of its items belongs to those events (or it is not a message body TrackLayer
    /// wrote): leave it.
    Untouched,
    /// Some items went; the rest is `body`.
    Rewritten { body: Vec<u8>, removed: u64 },
    /// Every item went: delete the message.
    Emptied { removed: u64 },
}

/// Removes the items of `events` from a queue message body (a `QueueBody` of workspace
/// `ws`). Both queue adapters use this for `DeliveryQueue::purge_events`.
pub fn strip_events(body: &[u8], ws: &WorkspaceId, events: &HashSet<EventId>) -> Stripped {
    let Ok(mut parsed) = crate::event::Body::decode(body) else {
        return Stripped::Untouched;
    };
    if parsed.workspace_id() != ws {
        return Stripped::Untouched;
    }
    let removed = parsed.retain(|id| !events.contains(id)) as u64;
    if removed == 0 {
        Stripped::Untouched
    } else if parsed.is_empty() {
        Stripped::Emptied { removed }
    } else {
        Stripped::Rewritten {
            body: parsed.encode(),
            removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_dsr_and_32_hex_digits() {
        let id = DsrId::new(Uuid::from_u128(7));
        assert_eq!(DsrId::parse(id.as_str()).unwrap(), id);
        for bad in [
            "",
            "dsr_",
            "dsr_XYZ",
            "evt_00000000000000000000000000000007",
        ] {
            assert!(DsrId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stripping_removes_only_the_named_events_of_the_same_workspace() {
        use crate::destination::DestinationId;
        use crate::workspace::Region;
        let ws = WorkspaceId::new(Region::Us, "strip");
        let (a, b) = (EventId(Uuid::from_u128(1)), EventId(Uuid::from_u128(2)));
        let item = |e: EventId| {
            serde_json::json!({"event_id": e, "message_id": e.to_string(), "event_type": "track",
                "timestamp": "2026-03-01T12:00:00Z", "properties": {}, "user_data": {}})
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "v": 1, "workspace_id": ws, "destination_id": DestinationId::new("d"),
            "kind": "webhook", "items": [item(a), item(b)]
        }))
        .unwrap();
        let only_a: HashSet<EventId> = [a].into();
        match strip_events(&body, &ws, &only_a) {
            Stripped::Rewritten { body, removed: 1 } => {
                let left = crate::event::QueueBody::decode(&body).unwrap();
                assert_eq!(left.items.len(), 1);
                assert_eq!(left.items[0].event_id, b);
            }
            other => panic!("{other:?}"),
        }
        let both: HashSet<EventId> = [a, b].into();
        assert_eq!(
            strip_events(&body, &ws, &both),
            Stripped::Emptied { removed: 2 }
        );
        let other_ws = WorkspaceId::new(Region::Us, "other");
        assert_eq!(strip_events(&body, &other_ws, &both), Stripped::Untouched);
        assert_eq!(strip_events(b"not json", &ws, &both), Stripped::Untouched);
    }

    #[test]
    fn a_suppression_token_is_not_the_subject_index_value() {
        let index = "ab".repeat(32);
        let token = suppression_token(&index);
        assert_eq!(token.len(), 64);
        assert_ne!(token, index);
        assert_eq!(token, suppression_token(&index));
    }
}

//! Ports, named by role. Each has an embedded adapter (`tracklayer-local`) and an AWS adapter
//! (`tracklayer-aws`), and one contract suite (`testkit`) run against both.
//!
//! Traits are split where rights differ, so that a function's dependencies read like its IAM
//! policy: ingest reads control data and writes events and queue messages, nothing more.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditFilter, AuditHead, AuditKeys, NewAuditEntry, StoredEntry};
use crate::crypto::{DataKey, Sealed, WrappedKey};
use crate::destination::{Destination, DestinationId, DestinationKind};
use crate::dsr::{DsrId, DsrRequest, ErasedRows, EventFootprint};
use crate::error::{KeyError, MailError, StoreError};
pub use crate::event::RecentEvents;
use crate::event::{EventId, MessageId, OperationalRecord, QueueBody, StoredEvent, UnreadableBody};
use crate::keys::{ApiKeyRecord, KeyId, Role};
use crate::user_id::UserId;
use crate::workspace::{KeyRef, User, Workspace, WorkspaceId};

/// Console sign-in state (sessions, one-time links, credentials, failure counters).
pub use crate::sessions::SessionStore;

mod delivery_log;
mod delivery_queue;
mod ingest_store;
pub use delivery_log::{
    DeliveryCursor, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryRecord, DeliveryStatus,
    DeliveryStatusKind, LogOf,
};
pub use delivery_queue::{DeadLetterAdmin, DeliveryQueue, Enqueuer, QueueConsumer, Remainder};
pub use ingest_store::{IngestStore, PackRecorded, Recorded};

/// What a control store's `Conflict` says when the last-admin rule refused a change.
pub const LAST_ADMIN: &str = "the workspace's last admin";

/// What ingest needs from the control plane: read-only.
///
/// Account data expires (whitepaper §02): a key record 90 days after the key ended, a closed
/// workspace with its users and keys 90 days after its closure. The expiry is stamped when
/// the data is written and reads take `now` and never return what expired by then, whatever
/// the backend's deleter (the SQLite sweeper, DynamoDB's late TTL) has done so far.
#[async_trait]
pub trait ControlReader: Send + Sync {
    /// The workspace, closed or not, until its account data expires.
    async fn workspace(
        &self,
        id: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Option<Workspace>, StoreError>;
    /// A key record, revoked or not, until it expires.
    async fn api_key(
        &self,
        id: &KeyId,
        now: OffsetDateTime,
    ) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// All destinations of a workspace, paused ones included, in creation order.
    async fn destinations(&self, ws: &WorkspaceId) -> Result<Vec<Destination>, StoreError>;
    async fn destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<Option<Destination>, StoreError>;
}

/// Records when a key was last used: the one write key verification makes, at most once a
/// minute per key per process ([`crate::keys::verifier::KeyVerifier`]).
#[async_trait]
pub trait KeyUsage: Send + Sync {
    /// Moves the key's `last_used_at` forward to `at`, never back (a later time stays); a key
    /// that is gone is no error.
    async fn touch_api_key(
        &self,
        ws: &WorkspaceId,
        id: &KeyId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// Control-plane writes (admin API, CLI).
#[async_trait]
pub trait ControlStore:
    ControlReader + KeyUsage + crate::saml::SamlStore + crate::scim::store::ScimStore
{
    /// Creates a workspace; `Conflict` if the id exists.
    async fn create_workspace(&self, ws: &Workspace) -> Result<(), StoreError>;
    async fn update_workspace(&self, ws: &Workspace) -> Result<(), StoreError>;
    /// Closes a workspace (`ws.closed_at` set; `Permanent` if it is not): deletes its
    /// destinations, since their secrets end with the account, and stamps the workspace, its
    /// users (with their email uniqueness entries) and every key record that would outlive
    /// it to expire at `closed_at` + 90 days ([`Workspace::account_data_expires_at`]); the
    /// workspace is written last, with `closed_at`, so a failed call can be repeated.
    /// `Conflict` if the workspace is closed already, `NotFound` if there is none. It does
    /// not revoke keys: the caller does, before (a revoked key's record expires 90 days
    /// after its revocation anyway).
    async fn close_workspace(&self, ws: &Workspace) -> Result<(), StoreError>;
    /// Every unexpired workspace, for single-tenant tools (`tracklayer serve` on a data
    /// directory), in creation order.
    async fn workspaces(&self, now: OffsetDateTime) -> Result<Vec<Workspace>, StoreError>;
    /// Creates a key; `Conflict` if the id exists.
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn update_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The workspace's unexpired key records, in creation order.
    async fn api_keys(
        &self,
        ws: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Creates or replaces a destination.
    async fn put_destination(&self, d: &Destination) -> Result<(), StoreError>;
    /// Deletes a destination; `NotFound` if there is none.
    async fn delete_destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<(), StoreError>;
    /// Creates a user; `Conflict` if the id or the email exists in the workspace, or
    /// `Conflict(`[`USER_NAME_TAKEN`]`)` if its [`user_name_key`] does: checked by the write
    /// itself, so of two creates racing for one userName exactly one succeeds.
    ///
    /// [`USER_NAME_TAKEN`]: crate::scim::profile::USER_NAME_TAKEN
    /// [`user_name_key`]: crate::scim::profile::user_name_key
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Replaces a user; a changed email or userName moves its uniqueness with the write
    /// (`Conflict` as [`ControlStore::create_user`] when another user has it).
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    async fn delete_user(&self, ws: &WorkspaceId, id: &UserId) -> Result<(), StoreError>;
    /// Gives an unexpired user `role`, unless they are an admin and no other unexpired admin
    /// of the workspace would remain: the check and the write are one atomic step, so two
    /// admins demoting each other at once cannot both succeed. Returns the user as they
    /// were. `NotFound` if there is none; `Conflict(`[`LAST_ADMIN`]`)` if the rule refuses
    /// (or, on a store with optimistic transactions, another change to the admins came in
    /// between: the caller may retry).
    async fn set_user_role_keeping_an_admin(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, StoreError>;
    /// Deletes an unexpired user under the same rule, atomically likewise. Returns the user
    /// as they were.
    async fn delete_user_keeping_an_admin(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<User, StoreError>;
    /// An unexpired user.
    async fn user(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;
    /// The workspace's unexpired users, in creation order.
    async fn users(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<Vec<User>, StoreError>;
}

/// The append-only audit log: a keyed (HMAC-SHA256) chain per workspace, anchored by a head
/// record kept outside the entries and, once retention cut it, by a signed checkpoint (see
/// `crate::audit`). Verification is `crate::audit::verify`, over what this port returns.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an entry after the workspace's last one and moves the head, atomically (no two
    /// entries share a sequence number, even with concurrent writers; the chain never forks).
    /// The first append of a workspace writes its genesis entry first.
    async fn append(
        &self,
        entry: NewAuditEntry,
        at: OffsetDateTime,
    ) -> Result<AuditEntry, StoreError>;
    /// Mutations matching the filter, oldest first, younger than the retention at `now` by
    /// their own time (never by a store-side expiry attribute). The genesis entry is part of
    /// the chain, not a mutation: `stored` returns it, `list` does not.
    async fn list(
        &self,
        ws: &WorkspaceId,
        filter: &AuditFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// The workspace's chain head; `None` for a legacy chain not yet migrated (or none).
    async fn head(&self, ws: &WorkspaceId) -> Result<Option<AuditHead>, StoreError>;
    /// Every stored entry with `seq > after`, expired or not, oldest first, at most `limit`,
    /// each with whether the store's index attributes agree with it.
    async fn stored(
        &self,
        ws: &WorkspaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError>;
    /// Retention: removes the workspace's entries older than a year, behind a signed
    /// checkpoint written first (or in the same transaction). Returns how many went.
    async fn retire(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// The keys the chain is sealed with.
    fn keys(&self) -> &AuditKeys;
}

/// One accepted event with its operational record, as ingest hands it to the store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: StoredEvent,
    pub operational: Option<OperationalRecord>,
    /// Until when the message id counts as seen (received + 24 h).
    pub dedup_until: OffsetDateTime,
}

/// Writing events: ingest records them with their dedup markers, and forgets them again
/// when they could not be queued.
#[async_trait]
pub trait EventWriter: Send + Sync {
    /// Records each event whose message id was not seen in its workspace within the dedup
    /// window. Returns, per input, `true` if it was recorded and `false` if it was a duplicate.
    async fn record(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError>;
    /// Removes events and their dedup markers again: used when they could not be queued, so
    /// that the client's retry is not mistaken for a duplicate.
    async fn forget(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<(), StoreError>;
}

/// Reading events: the admin API's traces.
#[async_trait]
pub trait EventReader: Send + Sync {
    /// An unexpired event.
    async fn event(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<StoredEvent>, StoreError>;
    /// The unexpired events of `ws` among `ids`, in any order, each once: one read for the
    /// items of a queue message held by reference ([`crate::event::RefBody`]). An id
    /// without an event (erased, expired, another workspace's) is left out. By default one
    /// [`EventReader::event`] per id: what DynamoDB does, where queues hold items by value
    /// and delivery never asks; SQLite reads them in one statement, and decodes each record
    /// once for the destinations that read it (shared, hence `Arc`).
    async fn events(
        &self,
        ws: &WorkspaceId,
        ids: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<std::sync::Arc<StoredEvent>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in each_once(ids) {
            out.extend(self.event(ws, id, now).await?.map(std::sync::Arc::new));
        }
        Ok(out)
    }
    /// The unexpired operational records (sealed IP and user agent) of `ws` among `ids`, in
    /// any order, each once: read beside [`EventReader::events`] for the items of a queue
    /// message held by reference, which leave IP and user agent to the operational record
    /// instead of sealing a copy per destination ([`crate::event::RefBody`]). An id without
    /// a record (none kept, expired after 30 days, erased) is left out.
    async fn operational_records(
        &self,
        ws: &WorkspaceId,
        ids: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<OperationalRecord>, StoreError>;
    /// The ids of events with this Segment `messageId` in the workspace while its dedup
    /// window is open (`dedup_until`: 24 hours), without a write of its own: through the
    /// message id's dedup marker. On DynamoDB only events without subjects have a marker (the
    /// others' dedup entries ride on their primary subject's item, keyed by subject); those
    /// are found in the event packs of the window, newest first.
    async fn event_ids_by_message_id(
        &self,
        ws: &WorkspaceId,
        message_id: &MessageId,
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError>;
    /// The event debugger's live list: the newest unexpired events of the workspace that
    /// `query` takes (received since `query.since`, of its type, with its name), newest first
    /// (by event id: a UUIDv7 carries the millisecond the event was received at), at most
    /// `query.limit`. Reads only; the cost is bounded by the window (`since`..`now`).
    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        query: &RecentEvents,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError>;
}

/// Erasing events: data-subject requests find a subject's footprint and erase it; retention
/// sweeps what expired.
#[async_trait]
pub trait EventEraser: Send + Sync {
    /// Deletes what expired before `now`; returns how many rows went. Backends with native
    /// TTL may do nothing here, since reads filter expired rows anyway.
    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// One page of the events indexed under any of `subjects` (subject-index values),
    /// expired or not, each once, ordered by event id; each with the rows the store keeps
    /// beside it. Data-subject requests page through a subject with this. `now` bounds how
    /// far back a store that looks up a subject day by day must look (the longest retention
    /// and a margin for late TTL deletion before it); it filters nothing out.
    async fn subject_footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        page: Page,
        now: OffsetDateTime,
    ) -> Result<Vec<EventFootprint>, StoreError>;
    /// Erasure: deletes these events and every row kept for them — the event, all of its
    /// subject-index entries (every subject of the event), its operational record and the
    /// dedup marker that points at it — expired or not. Idempotent: what is already gone
    /// counts 0. Returns the rows deleted per kind.
    async fn erase(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<ErasedRows, StoreError>;
}

/// Which page of events a read by subject answers, in event-id order: those after `after`
/// (from the first when `None`), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: Option<EventId>,
    pub limit: usize,
}

impl Page {
    /// The first `limit` events.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    /// The `limit` events after `last`.
    pub fn after(last: EventId, limit: usize) -> Self {
        Self {
            after: Some(last),
            limit,
        }
    }
}

/// `ids` without repeats, in their order: for a store that reads a batch one id at a time.
pub fn each_once(ids: &[EventId]) -> impl Iterator<Item = &EventId> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().filter(move |id| seen.insert(**id))
}

/// Events, their operational records and the message-id dedup markers: every right at once,
/// for whatever implements the three roles. Services hold the narrow role they use.
pub trait EventStore: EventWriter + EventReader + EventEraser {}

impl<T: EventWriter + EventReader + EventEraser + ?Sized> EventStore for T {}

/// Test support, a right no service holds: reads the contract suites use to check what an
/// event store keeps beside the events (subject index, operational records). Only with the
/// `testkit` feature: production builds have no such reads.
#[cfg(feature = "testkit")]
#[async_trait]
pub trait EventInspection: Send + Sync {
    /// One page of the unexpired events whose subject index includes `subject`, oldest first.
    async fn events_by_subject(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        page: Page,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The unexpired operational record (sealed IP/UA) of an event.
    async fn operational(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<OperationalRecord>, StoreError>;
}

/// An event store the contract suites can look into.
#[cfg(feature = "testkit")]
pub trait InspectableEventStore: EventStore + EventInspection {}

#[cfg(feature = "testkit")]
impl<T: EventStore + EventInspection + ?Sized> InspectableEventStore for T {}

/// A message to put on a destination kind's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub kind: DestinationKind,
    pub destination_id: DestinationId,
    pub workspace_id: WorkspaceId,
    /// A `QueueBody` in its one wire encoding ([`QueueBody::encode`]).
    pub body: Vec<u8>,
    /// Hidden this long before its first receive (retries of part of a message).
    pub delay: Duration,
    /// Sealed fields its items by reference share with the request's other messages
    /// ([`crate::event::encode_shared`]): stored once per value (`Arc::ptr_eq`) while a
    /// message or part refers to them, handed back with each ([`Received::shared`]).
    pub shared: Option<std::sync::Arc<Vec<u8>>>,
}

impl Outgoing {
    /// The message carrying `body` to its destination's queue.
    pub fn new(body: &QueueBody, delay: Duration) -> Self {
        Self {
            kind: body.kind,
            destination_id: body.destination_id.clone(),
            workspace_id: body.workspace_id.clone(),
            body: body.encode(),
            delay,
            shared: None,
        }
    }
}

/// A handle to acknowledge, delay or dead-letter one received message.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt(pub String);

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receipt({})", self.0.get(..12).unwrap_or(&self.0))
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub receipt: Receipt,
    pub destination_id: DestinationId,
    pub workspace_id: WorkspaceId,
    pub body: Vec<u8>,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub enqueued_at: OffsetDateTime,
    /// The shared sealed fields stored with it ([`Outgoing::shared`]), if it has them.
    pub shared: Option<Vec<u8>>,
}

impl Received {
    /// The message's items by value; an error for a body by reference (see
    /// [`Received::decode_stored`]) or one TrackLayer did not write.
    pub fn decode_body(&self) -> Result<QueueBody, UnreadableBody> {
        QueueBody::decode(&self.body)
    }

    /// The message as its queue holds it: items by value or by reference.
    pub fn decode_stored(&self) -> Result<crate::event::Body, UnreadableBody> {
        crate::event::Body::decode(&self.body)
    }
}

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub destination_id: DestinationId,
    pub workspace_id: WorkspaceId,
    pub body: Vec<u8>,
    pub reason: String,
    pub dead_at: OffsetDateTime,
}

impl DeadLetter {
    /// The dead message's items; an error for a body TrackLayer did not write.
    pub fn decode_body(&self) -> Result<QueueBody, UnreadableBody> {
        QueueBody::decode(&self.body)
    }
}

/// Which dead letters to move back.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    pub destination_id: Option<DestinationId>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// Data keys, wrapped by the platform key or the customer's key (BYOK).
#[async_trait]
pub trait Keyring: Send + Sync {
    async fn generate_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
    ) -> Result<(DataKey, WrappedKey), KeyError>;
    async fn unwrap_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError>;
    /// Wraps an existing data key under `key` (switching a workspace to or from BYOK keeps
    /// its data key, so everything sealed with it stays readable).
    async fn wrap_data_key(
        &self,
        ws: &WorkspaceId,
        key: &KeyRef,
        plain: &DataKey,
    ) -> Result<WrappedKey, KeyError>;
}

/// A notification email.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

impl Mail {
    /// What every mailer refuses before it sends: no recipient, a recipient that is not an
    /// email address, or a line break in a header (header injection).
    pub fn check(&self) -> Result<(), MailError> {
        fn header_safe(s: &str) -> bool {
            !s.contains(['\r', '\n'])
        }
        if self.to.is_empty() {
            return Err(MailError::Rejected("no recipient".into()));
        }
        if self
            .to
            .iter()
            .any(|to| !header_safe(to) || !to.contains('@'))
        {
            return Err(MailError::Rejected(
                "a recipient is not an email address".into(),
            ));
        }
        if !header_safe(&self.subject) {
            return Err(MailError::Rejected("the subject has a line break".into()));
        }
        Ok(())
    }
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &format_args!("<{} recipients>", self.to.len()))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Why a request to a destination did not get an HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The URL is not allowed (not https, or it resolves to a private address): permanent.
    #[error("egress refused: {0}")]
    Refused(String),
    /// Connection refused or reset, DNS failure, TLS failure: retry.
    #[error("connection failed: {0}")]
    Connect(String),
    /// No answer in time: retry.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// HTTP to destinations, with an SSRF guard and timeouts.
#[async_trait]
pub trait Egress: Send + Sync {
    async fn post(
        &self,
        request: &crate::deliver::HttpRequest,
    ) -> Result<crate::deliver::HttpResponse, EgressError>;
}

/// One part of a request's access export, as a [`DsrStore`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPart {
    /// Its place in the export (parts are read back in this order).
    pub number: u32,
    /// The part sealed with the workspace data key; at most 300 KiB.
    pub sealed: Sealed,
    /// Unreadable after this.
    pub expires_at: OffsetDateTime,
}

/// What ingest reads to drop the events of erased subjects: read-only.
#[async_trait]
pub trait SuppressionList: Send + Sync {
    /// The workspace's suppression tokens (`dsr::suppression_token` of subject-index values).
    async fn suppressed(&self, ws: &WorkspaceId) -> Result<Vec<String>, StoreError>;
}

/// Data-subject requests, the suppression list and access exports.
#[async_trait]
pub trait DsrStore: SuppressionList {
    /// Creates a request; `Conflict` if the id exists in the workspace.
    async fn create_request(&self, request: &DsrRequest) -> Result<(), StoreError>;
    /// Replaces a request (status, progress, receipt); `NotFound` if there is none.
    async fn update_request(&self, request: &DsrRequest) -> Result<(), StoreError>;
    async fn request(&self, ws: &WorkspaceId, id: &DsrId)
        -> Result<Option<DsrRequest>, StoreError>;
    /// The workspace's requests, newest first.
    async fn requests(&self, ws: &WorkspaceId, limit: usize)
        -> Result<Vec<DsrRequest>, StoreError>;
    /// Requests not completed yet, of every workspace, oldest first.
    async fn open_requests(&self, limit: usize) -> Result<Vec<DsrRequest>, StoreError>;
    /// Adds tokens to the workspace's suppression list (idempotent).
    async fn suppress(
        &self,
        ws: &WorkspaceId,
        tokens: &[String],
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Writes (or overwrites) one part of a request's access export.
    async fn put_export_part(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
        part: &ExportPart,
    ) -> Result<(), StoreError>;
    /// The unexpired parts of a request's export, in part order (empty if none).
    async fn export_parts(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
        now: OffsetDateTime,
    ) -> Result<Vec<Sealed>, StoreError>;
    /// Deletes a request's export parts; returns how many.
    async fn delete_export(&self, ws: &WorkspaceId, id: &DsrId) -> Result<u64, StoreError>;
    /// Ends the workspace's requests (with their receipts) and its suppression list with its
    /// account data (whitepaper §02): each one that would outlive `until` (the closure + 90
    /// days, [`Workspace::account_data_expires_at`]) is stamped to expire then. Idempotent:
    /// only records not stamped yet are written, so it is repeated after the closure to catch
    /// what a request wrote meanwhile. Later updates of a request keep its stamp. Returns the
    /// records stamped.
    ///
    /// Reads do not filter these records by their expiry: after the closure no key of the
    /// workspace works, so nothing reads its requests or suppression list but the DSR worker,
    /// which completes a closed workspace's open requests within the 90 days.
    async fn end_with_account(
        &self,
        ws: &WorkspaceId,
        until: OffsetDateTime,
    ) -> Result<u64, StoreError>;
    /// Deletes what expired: export parts, and the requests and suppression entries of
    /// closed workspaces whose account data ended. Backends with native TTL may do nothing.
    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Checks a destination URL when it is configured (the egress guard's first line; the
/// egress adapter checks again at connect time).
#[async_trait]
pub trait UrlGuard: Send + Sync {
    async fn check(&self, url: &str) -> Result<(), EgressError>;
}

//! The delivery log's port ([`DeliveryLog`]): one record per event and destination, what
//! it says ([`DeliveryStatus`]) and how a destination's log is read a page at a time.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::destination::DestinationId;
use crate::error::StoreError;
use crate::event::{EventId, MessageId};
use crate::workspace::WorkspaceId;

/// Where one event stands with one destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum DeliveryStatus {
    Delivered,
    /// Will be tried again.
    Retrying,
    /// In the dead-letter queue; an admin can replay it.
    Dead,
    /// Never sent: too old for the destination, or not acceptable to it.
    Dropped(String),
}

impl DeliveryStatus {
    pub fn kind(&self) -> DeliveryStatusKind {
        match self {
            Self::Delivered => DeliveryStatusKind::Delivered,
            Self::Retrying => DeliveryStatusKind::Retrying,
            Self::Dead => DeliveryStatusKind::Dead,
            Self::Dropped(_) => DeliveryStatusKind::Dropped,
        }
    }
}

/// A `DeliveryStatus` without its reason: what the delivery log filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryStatusKind {
    Delivered,
    Retrying,
    Dead,
    Dropped,
}

impl DeliveryStatusKind {
    pub const ALL: [Self; 4] = [Self::Delivered, Self::Retrying, Self::Dead, Self::Dropped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One event's delivery to one destination. Consent decisions and "queued" are not written
/// here: they are in the stored event's routing, so no write is spent per event and
/// destination at ingest (DESIGN.md § Cost).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryRecord {
    pub workspace_id: WorkspaceId,
    pub destination_id: DestinationId,
    pub event_id: EventId,
    /// The event's Segment `messageId` (absent from records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    #[serde(flatten)]
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When a `Retrying` record's next attempt is due.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A position in a destination's log, which is ordered newest first by
/// (`updated_at` in milliseconds, event id): the next page starts strictly after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCursor {
    pub updated_ms: i64,
    pub event_id: EventId,
}

impl DeliveryCursor {
    /// The position of `r`.
    pub fn of(r: &DeliveryRecord) -> Self {
        Self {
            updated_ms: crate::clock::unix_millis(r.updated_at),
            event_id: r.event_id,
        }
    }

    /// What the log is ordered by (descending).
    pub fn key(self) -> (i64, EventId) {
        (self.updated_ms, self.event_id)
    }
}

/// Which of a destination's records to list: filters apply to each event's latest record.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only these statuses; any when empty.
    pub statuses: Vec<DeliveryStatusKind>,
    /// Updated at or after (millisecond precision).
    pub since: Option<OffsetDateTime>,
    /// Updated at or before (millisecond precision).
    pub until: Option<OffsetDateTime>,
    /// Records after this position (the previous page's `next`).
    pub after: Option<DeliveryCursor>,
    pub limit: usize,
}

impl DeliveryQuery {
    /// Does `r` pass the filters and come after the cursor? Adapters that filter in memory
    /// use this, so both backends read a query the same way.
    pub fn matches(&self, r: &DeliveryRecord) -> bool {
        let ms = crate::clock::unix_millis(r.updated_at);
        (self.statuses.is_empty() || self.statuses.contains(&r.status.kind()))
            && self
                .since
                .is_none_or(|t| ms >= crate::clock::unix_millis(t))
            && self
                .until
                .is_none_or(|t| ms <= crate::clock::unix_millis(t))
            && self.after.is_none_or(|c| (ms, r.event_id) < c.key())
    }
}

/// Whose delivery log a read is about: one destination of one workspace. The two ids always
/// travel together through [`DeliveryLog`], so they are one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOf<'a> {
    pub ws: &'a WorkspaceId,
    pub destination: &'a DestinationId,
}

impl<'a> LogOf<'a> {
    pub fn new(ws: &'a WorkspaceId, destination: &'a DestinationId) -> Self {
        Self { ws, destination }
    }
}

/// One page of a destination's log, newest first; `next` when more records follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPage {
    pub records: Vec<DeliveryRecord>,
    pub next: Option<DeliveryCursor>,
}

/// Attempts and outcomes per (event, destination); kept 30 days.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Writes (or overwrites) the records, all of one destination, in as few writes as the
    /// backend allows.
    async fn record(&self, records: &[DeliveryRecord]) -> Result<(), StoreError>;
    /// Which of `events` were already delivered to `destination` (for idempotence).
    async fn delivered(
        &self,
        log: LogOf<'_>,
        events: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError>;
    /// The unexpired records of one event, one per destination.
    async fn for_event(
        &self,
        ws: &WorkspaceId,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// One page of the unexpired records of one destination that match `query`, newest
    /// first by (`updated_at` in milliseconds, event id): paging on with `next` neither skips
    /// nor repeats a record of an unchanged log, equal timestamps included.
    async fn page(
        &self,
        log: LogOf<'_>,
        query: &DeliveryQuery,
        now: OffsetDateTime,
    ) -> Result<DeliveryPage, StoreError>;
    /// The most recent unexpired records of one destination, newest first.
    async fn for_destination(
        &self,
        log: LogOf<'_>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let query = DeliveryQuery {
            limit,
            ..DeliveryQuery::default()
        };
        Ok(self.page(log, &query, now).await?.records)
    }
    /// Deletes what expired before `now`.
    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// Every record of these events, any destination, expired or not.
    async fn for_events(
        &self,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Erasure: deletes every record of these events (all destinations); returns how many.
    async fn erase_events(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<u64, StoreError>;
}

//! Delivery and ingest counters per workspace and time bucket, for the console's overview.
//!
//! Ingest adds one [`StatsDelta`] per request (accepted, rejected by reason, duplicates,
//! suppressed, and per destination received / routed / dropped by consent or filter);
//! delivery adds one per queue message it settles (per destination delivered, retrying,
//! dead-lettered, invalid). Each delta is one write to the workspace's bucket, never one per
//! event and destination (DESIGN.md § Cost).
//!
//! Buckets are [`BUCKET`] (5 minutes) wide and kept [`RETENTION`] (8 days): the last hour is
//! 12 of them, the last 7 days 2,016, summed per hour for its chart (see
//! [`crate::admin::StatsWindow`]). One width for every window means one write per delta.
//!
//! Counting never fails the event path: [`StatsSink`] logs and counts a failed write and
//! answers nothing to the caller, so an event is accepted or settled whether or not its
//! counters could be written (they are then missing from the overview).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::destination::DestinationId;
use crate::error::StoreError;
use crate::workspace::WorkspaceId;

pub mod counting;
#[cfg(any(test, feature = "testkit"))]
pub mod memory;

/// The width of a stats bucket.
pub const BUCKET: Duration = Duration::minutes(5);

/// How long a bucket is kept after its start: the 7-day window and its partial first hour.
pub const RETENTION: Duration = Duration::days(8);

/// The start of the bucket holding `at` (UTC, aligned to [`BUCKET`] since the Unix epoch).
pub fn bucket_start(at: OffsetDateTime) -> OffsetDateTime {
    floor(at, BUCKET)
}

/// `at` rounded down to a multiple of `step` since the Unix epoch.
pub fn floor(at: OffsetDateTime, step: Duration) -> OffsetDateTime {
    let secs = at.unix_timestamp();
    let step = step.whole_seconds().max(1);
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(step)).unwrap_or(at)
}

/// When a bucket's counters expire.
pub fn bucket_expires_at(start: OffsetDateTime) -> OffsetDateTime {
    start + RETENTION
}

/// Why ingest refused an event, by the field at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not a JSON object, or larger than an event may be.
    Malformed,
    MessageId,
    /// A missing or unknown `type`, or one the endpoint does not take.
    Type,
    /// No `userId`/`anonymousId`, or a required id of the call (`previousId`, `groupId`).
    Identity,
    /// A track call's `event`, a page or screen call's `name`.
    Name,
    /// `properties`, `traits`, `context` or `integrations`.
    Object,
    /// `timestamp`, `sentAt` or `originalTimestamp`.
    Timestamp,
    /// A field no other reason covers.
    Other,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        Self::Malformed,
        Self::MessageId,
        Self::Type,
        Self::Identity,
        Self::Name,
        Self::Object,
        Self::Timestamp,
        Self::Other,
    ];

    /// The reason of a rejection naming `field` (a JSON pointer into the event).
    pub fn of_field(field: &str) -> Self {
        match field {
            "/" | "" => Self::Malformed,
            "/messageId" => Self::MessageId,
            "/type" => Self::Type,
            "/userId" | "/anonymousId" | "/previousId" | "/groupId" => Self::Identity,
            "/event" | "/name" => Self::Name,
            "/properties" | "/traits" | "/context" | "/integrations" => Self::Object,
            "/timestamp" | "/sentAt" | "/originalTimestamp" => Self::Timestamp,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MessageId => "message_id",
            Self::Type => "type",
            Self::Identity => "identity",
            Self::Name => "name",
            Self::Object => "object",
            Self::Timestamp => "timestamp",
            Self::Other => "other",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Malformed => "mf",
            Self::MessageId => "mi",
            Self::Type => "ty",
            Self::Identity => "id",
            Self::Name => "nm",
            Self::Object => "ob",
            Self::Timestamp => "ts",
            Self::Other => "ot",
        }
    }
}

/// A workspace-wide ingest counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IngestCounter {
    /// Valid events, duplicates and suppressed ones included (as the response counts them).
    Accepted,
    /// Of the accepted, those already seen within 24 h (or earlier in the same request).
    Duplicates,
    /// Of the accepted, those of erased subjects: neither stored nor sent.
    Suppressed,
    /// Of the accepted, those whose user agent is a crawler's ([`crate::bots`]) in a
    /// workspace that filters bots: neither stored nor sent.
    Bots,
    Rejected(RejectReason),
}

/// A per-destination counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationCounter {
    /// New events the destination was considered for (routed + dropped by consent or filter).
    Received,
    /// Queued for the destination.
    Routed,
    Delivered,
    /// Items whose attempt failed and that will be tried again.
    Retrying,
    DeadLettered,
    /// Not routed: consent did not allow it.
    DroppedConsent,
    /// Not routed: the destination's event list, the call type or the event's integrations.
    DroppedFilter,
    /// Not sent: the destination could not take the item (too old, fails its rules).
    Invalid,
}

impl DestinationCounter {
    pub const ALL: [DestinationCounter; 8] = [
        Self::Received,
        Self::Routed,
        Self::Delivered,
        Self::Retrying,
        Self::DeadLettered,
        Self::DroppedConsent,
        Self::DroppedFilter,
        Self::Invalid,
    ];

    fn code(self) -> &'static str {
        match self {
            Self::Received => "rc",
            Self::Routed => "ro",
            Self::Delivered => "dl",
            Self::Retrying => "rt",
            Self::DeadLettered => "dd",
            Self::DroppedConsent => "dc",
            Self::DroppedFilter => "df",
            Self::Invalid => "iv",
        }
    }
}

/// What a counter counts: an ingest total, or one destination's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatsKey {
    Ingest(IngestCounter),
    Destination(DestinationId, DestinationCounter),
}

const INGEST_PREFIX: &str = "in.";

impl StatsKey {
    /// The counter's stored name (a SQLite row's `counter`, a DynamoDB attribute name): short,
    /// since DynamoDB bills item size. `in.ac`, `in.rj.ty`, `dst_….dl`.
    pub fn code(&self) -> String {
        match self {
            Self::Ingest(c) => match c {
                IngestCounter::Accepted => "in.ac".into(),
                IngestCounter::Duplicates => "in.du".into(),
                IngestCounter::Suppressed => "in.su".into(),
                IngestCounter::Bots => "in.bt".into(),
                IngestCounter::Rejected(r) => format!("in.rj.{}", r.code()),
            },
            Self::Destination(d, c) => format!("{d}.{}", c.code()),
        }
    }

    /// The key of a stored name; `None` for a name this version does not know.
    pub fn parse(code: &str) -> Option<Self> {
        if let Some(rest) = code.strip_prefix(INGEST_PREFIX) {
            let c = match rest {
                "ac" => IngestCounter::Accepted,
                "du" => IngestCounter::Duplicates,
                "su" => IngestCounter::Suppressed,
                "bt" => IngestCounter::Bots,
                other => {
                    let r = other.strip_prefix("rj.")?;
                    IngestCounter::Rejected(RejectReason::ALL.into_iter().find(|x| x.code() == r)?)
                }
            };
            return Some(Self::Ingest(c));
        }
        let (d, c) = code.rsplit_once('.')?;
        let d = DestinationId::parse(d).ok()?;
        let c = DestinationCounter::ALL
            .into_iter()
            .find(|x| x.code() == c)?;
        Some(Self::Destination(d, c))
    }
}

/// Counters to add: only non-zero ones are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsDelta {
    counts: BTreeMap<StatsKey, u64>,
}

impl StatsDelta {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` to a counter (nothing for 0).
    pub fn add(&mut self, key: StatsKey, n: u64) {
        if n > 0 {
            *self.counts.entry(key).or_default() += n;
        }
    }

    pub fn ingest(&mut self, c: IngestCounter, n: u64) {
        self.add(StatsKey::Ingest(c), n);
    }

    pub fn destination(&mut self, d: &DestinationId, c: DestinationCounter, n: u64) {
        self.add(StatsKey::Destination(d.clone(), c), n);
    }

    /// Adds every counter of `other`.
    pub fn merge(&mut self, other: &StatsDelta) {
        for (k, n) in &other.counts {
            self.add(k.clone(), *n);
        }
    }

    pub fn get(&self, key: &StatsKey) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// How many counters are non-zero.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&StatsKey, u64)> {
        self.counts.iter().map(|(k, n)| (k, *n))
    }
}

/// One bucket's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsBucket {
    pub start: OffsetDateTime,
    pub counts: StatsDelta,
}

/// Adding counters: ingest and delivery, one write per request or queue message.
#[async_trait]
pub trait StatsRecorder: Send + Sync {
    /// Adds `delta` to the workspace's bucket holding `at` ([`bucket_start`]) in one atomic
    /// write, and stamps the bucket to expire [`RETENTION`] after its start. Concurrent
    /// writers add up: no increment is lost.
    async fn record(
        &self,
        ws: &WorkspaceId,
        at: OffsetDateTime,
        delta: &StatsDelta,
    ) -> Result<(), StoreError>;
}

/// Which buckets to read: those starting in `[from, to)` that have not expired at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub now: OffsetDateTime,
}

impl StatsQuery {
    pub fn new(from: OffsetDateTime, to: OffsetDateTime, now: OffsetDateTime) -> Self {
        Self { from, to, now }
    }

    /// Does the query take the bucket starting at `start`?
    pub fn takes(&self, start: OffsetDateTime) -> bool {
        start >= self.from && start < self.to && bucket_expires_at(start) > self.now
    }
}

/// Reading counters: the admin overview.
#[async_trait]
pub trait StatsReader: Send + Sync {
    /// The workspace's buckets the query takes ([`StatsQuery::takes`]), oldest first, each
    /// once (counters a newer version wrote and this one does not know are left out).
    async fn buckets(
        &self,
        ws: &WorkspaceId,
        q: &StatsQuery,
    ) -> Result<Vec<StatsBucket>, StoreError>;

    /// The sum of those buckets.
    async fn sum(&self, ws: &WorkspaceId, q: &StatsQuery) -> Result<StatsDelta, StoreError> {
        let mut total = StatsDelta::new();
        for b in self.buckets(ws, q).await? {
            total.merge(&b.counts);
        }
        Ok(total)
    }
}

/// Both rights, for whatever implements them; services hold the narrow one they use.
pub trait Stats: StatsRecorder + StatsReader {}

impl<T: StatsRecorder + StatsReader + ?Sized> Stats for T {}

/// How the event path records counters: a failed write is logged and counted, never
/// returned, so counting can neither fail nor lose an event.
pub struct StatsSink {
    recorder: Arc<dyn StatsRecorder>,
    failures: AtomicU64,
}

crate::debug_fields!(StatsSink: failures);

impl StatsSink {
    pub fn new(recorder: Arc<dyn StatsRecorder>) -> Self {
        Self {
            recorder,
            failures: AtomicU64::new(0),
        }
    }

    /// Writes a non-empty delta; a failure is logged and counted, not returned.
    pub async fn record(&self, ws: &WorkspaceId, at: OffsetDateTime, delta: &StatsDelta) {
        if delta.is_empty() {
            return;
        }
        if let Err(e) = self.recorder.record(ws, at, delta).await {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %e,
                workspace = %ws,
                counters = delta.len(),
                "could not record stats; the overview will miss these counts"
            );
        }
    }

    /// Stats writes that failed since the process started.
    pub fn failures_total(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn every_counter_code_reads_back_as_its_key() {
        let d = DestinationId::new("01abc");
        let mut keys: Vec<StatsKey> = DestinationCounter::ALL
            .into_iter()
            .map(|c| StatsKey::Destination(d.clone(), c))
            .collect();
        keys.extend(
            [
                IngestCounter::Accepted,
                IngestCounter::Duplicates,
                IngestCounter::Suppressed,
                IngestCounter::Bots,
            ]
            .into_iter()
            .chain(RejectReason::ALL.into_iter().map(IngestCounter::Rejected))
            .map(StatsKey::Ingest),
        );
        for k in keys {
            assert_eq!(StatsKey::parse(&k.code()), Some(k.clone()), "{}", k.code());
        }
        assert_eq!(StatsKey::parse("in.zz"), None);
        assert_eq!(StatsKey::parse("dst_01abc.zz"), None);
        assert_eq!(StatsKey::parse("nodot"), None);
    }

    #[test]
    fn a_delta_keeps_only_non_zero_counters_and_adds_up() {
        let d = DestinationId::new("x");
        let mut a = StatsDelta::new();
        a.destination(&d, DestinationCounter::Delivered, 0);
        assert!(a.is_empty());
        a.destination(&d, DestinationCounter::Delivered, 2);
        let mut b = StatsDelta::new();
        b.destination(&d, DestinationCounter::Delivered, 3);
        b.ingest(IngestCounter::Accepted, 1);
        a.merge(&b);
        assert_eq!(
            a.get(&StatsKey::Destination(d, DestinationCounter::Delivered)),
            5
        );
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn buckets_start_on_five_minute_boundaries() {
        assert_eq!(
            bucket_start(datetime!(2026-03-01 12:04:59.999 UTC)),
            datetime!(2026-03-01 12:00:00 UTC)
        );
        assert_eq!(
            bucket_start(datetime!(2026-03-01 12:05:00 UTC)),
            datetime!(2026-03-01 12:05:00 UTC)
        );
    }

    #[test]
    fn rejections_are_counted_by_the_field_at_fault() {
        assert_eq!(RejectReason::of_field("/"), RejectReason::Malformed);
        assert_eq!(RejectReason::of_field("/type"), RejectReason::Type);
        assert_eq!(RejectReason::of_field("/userId"), RejectReason::Identity);
        assert_eq!(RejectReason::of_field("/sentAt"), RejectReason::Timestamp);
        assert_eq!(RejectReason::of_field("/whatever"), RejectReason::Other);
    }
}

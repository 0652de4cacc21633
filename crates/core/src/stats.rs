//! Delivery and ingest counters per workspace and time bucket, for the console's overview.
//!
//! Ingest adds one [`StatsDelta`] per request (accepted, rejected by reason, duplicates,
//! suppressed, and per destination received / routed / dropped by consent or filter);
//! delivery adds one per queue message it settles (per destination delivered, retrying,
//! dead-lettered, invalid), gathered over the receive that settles it ([`StatsSink::batch`]).
//! Each gathered delta is one write to the workspace's bucket, never one per event and
//! destination (DESIGN.md § Cost): one per ingest request, and one per workspace and bucket
//! per queue receive (on Lambda, a receive is a deliver invocation's batch of up to 10
//! messages: under `make measure-aws` 3 stats writes per 1,000 events instead of 30).
//!
//! Buckets are [`BUCKET`] (5 minutes) wide and kept [`RETENTION`] (8 days): the last hour is
//! 12 of them, the last 7 days 2,016, summed per hour for its chart (see
//! [`crate::admin::StatsWindow`]). One width for every window means one write per delta.
//!
//! Counting never fails the event path: [`StatsSink`] logs and counts a failed write and
//! answers nothing to the caller, so an event is accepted or settled whether or not its
//! counters could be written (they are then missing from the overview).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// Adding counters: ingest and delivery, one write per request or per workspace and bucket
/// of a queue receive.
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

    /// Adds a non-empty delta: to the batch this task runs in ([`Self::batch`]), or else
    /// written at once. A failed write is logged and counted, not returned.
    pub async fn record(&self, ws: &WorkspaceId, at: OffsetDateTime, delta: &StatsDelta) {
        if delta.is_empty() {
            return;
        }
        let batched = BATCH
            .try_with(|b| (b.owner == self.id()).then(|| b.add(ws, at, delta)))
            .is_ok_and(|added| added.is_some());
        if !batched {
            self.write(ws, at, delta).await;
        }
    }

    /// Runs `work` with the deltas it records through this sink (in its own task, or in tasks
    /// it spawns wrapped in [`Self::joined`]) gathered per workspace and bucket, and writes
    /// each sum once `work` is done: one write per bucket instead of one per delta. Counters
    /// still count each outcome once; they reach the overview when `work` ends (a
    /// delivery's receive: seconds at most).
    pub async fn batch<F: Future>(&self, work: F) -> F::Output {
        let batch = Arc::new(StatsBatch {
            owner: self.id(),
            sums: Mutex::new(BTreeMap::new()),
        });
        let out = BATCH.scope(batch.clone(), work).await;
        let sums = std::mem::take(&mut *batch.sums.lock().unwrap_or_else(|e| e.into_inner()));
        for ((ws, _), (at, delta)) in sums {
            self.write(&ws, at, &delta).await;
        }
        out
    }

    /// `work`, counted in the batch of the task that calls this if there is one: for a task
    /// spawned inside [`Self::batch`] (a spawned task does not inherit its batch).
    pub fn joined<F: Future>(work: F) -> impl Future<Output = F::Output> {
        let batch = BATCH.try_with(Arc::clone).ok();
        async move {
            match batch {
                Some(batch) => BATCH.scope(batch, work).await,
                None => work.await,
            }
        }
    }

    /// This sink, as its batches name it (a task in another sink's batch writes at once).
    fn id(&self) -> usize {
        Arc::as_ptr(&self.recorder) as *const () as usize
    }

    async fn write(&self, ws: &WorkspaceId, at: OffsetDateTime, delta: &StatsDelta) {
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

tokio::task_local! {
    /// The batch the current task's deltas are gathered in ([`StatsSink::batch`]).
    static BATCH: Arc<StatsBatch>;
}

/// Deltas gathered by [`StatsSink::batch`]: per workspace and bucket start, the sum and the
/// time of the first delta (which names the bucket).
struct StatsBatch {
    owner: usize,
    #[allow(clippy::type_complexity)]
    sums: Mutex<BTreeMap<(WorkspaceId, OffsetDateTime), (OffsetDateTime, StatsDelta)>>,
}

impl StatsBatch {
    /// Adds `delta` to its bucket's sum.
    fn add(&self, ws: &WorkspaceId, at: OffsetDateTime, delta: &StatsDelta) {
        let mut sums = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        sums.entry((ws.clone(), bucket_start(at)))
            .or_insert_with(|| (at, StatsDelta::new()))
            .1
            .merge(delta);
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

    fn accepted(n: u64) -> StatsDelta {
        let mut d = StatsDelta::new();
        d.ingest(IngestCounter::Accepted, n);
        d
    }

    #[tokio::test]
    async fn a_batch_writes_one_sum_per_workspace_and_bucket_its_spawned_tasks_included() {
        let memory = Arc::new(memory::MemoryStats::default());
        let sink = Arc::new(StatsSink::new(memory.clone()));
        let (a, b) = (
            WorkspaceId::new(crate::workspace::Region::Eu, "a"),
            WorkspaceId::new(crate::workspace::Region::Eu, "b"),
        );
        let t = datetime!(2026-12-06 10:00:01 UTC);
        let next_bucket = t + BUCKET;
        let inner = sink.clone();
        let (a2, b2) = (a.clone(), b.clone());
        let seen = memory.clone();
        sink.batch(async move {
            inner.record(&a2, t, &accepted(1)).await;
            inner.record(&b2, t, &accepted(2)).await;
            let spawned = inner.clone();
            let a3 = a2.clone();
            tokio::spawn(StatsSink::joined(async move {
                spawned
                    .record(&a3, t + Duration::seconds(5), &accepted(3))
                    .await;
            }))
            .await
            .unwrap();
            inner.record(&a2, next_bucket, &accepted(4)).await;
            assert_eq!(
                seen.writes(),
                vec![],
                "nothing is written before the batch ends"
            );
        })
        .await;

        let mut writes = memory.writes();
        writes.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
        assert_eq!(
            writes,
            vec![
                (a.clone(), t, accepted(4)),
                (a.clone(), next_bucket, accepted(4)),
                (b, t, accepted(2)),
            ]
        );

        // Outside a batch, and in another sink's batch, a delta is written at once.
        sink.record(&a, t, &accepted(5)).await;
        let other = StatsSink::new(Arc::new(memory::MemoryStats::default()));
        other
            .batch(async { sink.record(&a, t, &accepted(6)).await })
            .await;
        assert_eq!(memory.writes().len(), 5);
    }
}

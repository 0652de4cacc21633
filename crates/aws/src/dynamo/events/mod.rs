//! `EventStore` on the EventsTable. Cost is the design driver (DESIGN.md § Cost): one `record`
//! call (one ingest request) writes its events as one compressed *pack* item, its IP/UA records
//! as one *operational pack*, and one update per (subject, day); message-id dedup rides on
//! the update of each event's dedup subject ([`keys::dedup_subject`]). Details and write
//! units: `infra/README.md`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | event pack | `W#{ws}#E#{minute}` | `P#{ref}` | `data` (deflated JSON), `last`, `day`, `v`, `expires_at` |
//! | operational pack | `W#{ws}#E#{minute}` | `O#{ref}` | `data`, `last`, `expires_at` |
//! | subject-day | `W#{ws}#S#{subject}#{day}` | `S` | `packs` (at most the cap), `fps` (until full), `open`, `expires_at` (and `subject_pk`, `subject_sk` of the GSI `subject` if written before 2026-12-08) |
//! | subject-day overflow ([`shards`]) | `W#{ws}#S#{subject}#{day}` | `S#{n}` | `packs`, `expires_at` |
//! | dedup marker (events without subjects, and of a full subject-day) | `W#{ws}#D#{sha256(message id)}` | `D` | `event`, `until`, `expires_at` |
//!
//! Lookup by message id: the marker for events without subjects; the others are found in the
//! event packs of the last 24 h (the dedup window), newest minute first (`read`).
//!
//! `{ref}` is the hex UUIDv7 of the first event of the pack; a pack holds events of one
//! millisecond (one request's ids share it), so `event(ws, id)` is one `Query` of
//! `P#{millisecond} ..= P#{id}` in the id's minute.
//!
//! Files: `keys` (item keys and dedup entries), `record` (`record`: plan → claim → judge →
//! write), `read` (events, operational records), `erase` (footprints, `forget`, `erase`),
//! `shards` (the bound on a subject-day's references).

mod erase;
mod keys;
mod read;
mod record;
mod shards;

use keys::*;
use shards::{open_of, DEFAULT_SUBJECT_DAY_CAP};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures_util::future::BoxFuture;
use futures_util::{stream, FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracklayer_core::dsr::{ErasedRows, EventFootprint};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{EventId, MessageId, OperationalRecord, StoredEvent};
#[cfg(feature = "testkit")]
use tracklayer_core::ports::EventInspection;
use tracklayer_core::ports::{EventEraser, EventReader, EventWriter, NewEvent, Page, RecentEvents};
use tracklayer_core::workspace::WorkspaceId;

use crate::dynamo::{
    b, batch_get, batch_write, get_b, get_n, get_s, key, n, pack, query_all, query_prefix, s,
    split_packs, ttl, unpack, BatchWrite, Item, EXPIRES_AT,
};
use crate::error::{condition_held, store};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::workspace::Retention;

/// Concurrent requests of one `record` or `forget` call.
const CONCURRENCY: usize = 32;
/// Packs read per round by `events_by_subject`.
const PACKS_PER_ROUND: usize = 25;
/// How many days before `now` a subject's day items are looked up (by key, one per day): a
/// subject-day lives as long as its longest-kept event, at most the longest retention after
/// the day, and DynamoDB's TTL deletes an expired item late (typically within days; 90 days
/// of margin), while an erasure must still find it.
const SUBJECT_DAY_HORIZON_DAYS: i64 = Retention::MAX_EVENT_DAYS as i64 + 90;

/// Events, their operational records, the subject index and message-id dedup on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
    /// Pack references a subject-day item takes before the next go to an overflow item.
    subject_day_cap: usize,
}

/// One event as a pack keeps it, with what `forget` needs to release its dedup entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Packed {
    e: StoredEvent,
    /// `dedup_until`, Unix seconds.
    u: i64,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            subject_day_cap: DEFAULT_SUBJECT_DAY_CAP,
        }
    }

    /// A store whose subject-day items take at most `cap` pack references each (at least 1):
    /// tests use a small one so that every subject-day of a contract suite overflows.
    pub fn with_subject_day_cap(mut self, cap: usize) -> Self {
        self.subject_day_cap = cap.max(1);
        self
    }
}

/// Runs futures, at most `CONCURRENCY` at a time; results in completion order.
async fn run_all<'a, T: Send + 'a>(jobs: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    stream::iter(jobs)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

#[async_trait]
impl EventWriter for DynamoEventStore {
    async fn record(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        self.record_events(events, now).await
    }

    async fn forget(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<(), StoreError> {
        self.forget_events(ws, events).await
    }
}

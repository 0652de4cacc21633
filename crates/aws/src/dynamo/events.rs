//! `EventStore` on the EventsTable. Cost is the design driver (DESIGN.md § Cost): one `record`
//! call (one ingest request) writes its events as one compressed *pack* item, its IP/UA records
//! as one *operational pack*, and one update per (subject, day); message-id dedup rides on
//! the update of the events' primary subject. Details and write units: `infra/README.md`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | event pack | `W#{ws}#E#{minute}` | `P#{ref}` | `data` (deflated JSON), `last`, `day`, `v`, `expires_at` |
//! | operational pack | `W#{ws}#E#{minute}` | `O#{ref}` | `data`, `last`, `expires_at` |
//! | subject-day | `W#{ws}#S#{subject}#{day}` | `S` | `subject_pk`, `subject_sk` (GSI `subject`), `packs`, `fps`, `expires_at` |
//! | dedup marker (events without subjects) | `W#{ws}#D#{sha256(message id)}` | `D` | `event`, `until`, `expires_at` |
//!
//! `{ref}` is the hex UUIDv7 of the first event of the pack; a pack holds events of one
//! millisecond (one request's ids share it), so `event(ws, id)` is one `Query` of
//! `P#{millisecond} ..= P#{id}` in the id's minute.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures_util::future::BoxFuture;
use futures_util::{stream, FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracklayer_core::dsr::{ErasedRows, EventFootprint};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{EventId, MessageId, OperationalRecord, StoredEvent};
use tracklayer_core::ports::{EventStore, NewEvent};
use tracklayer_core::workspace::WorkspaceId;

use super::{
    b, batch_get, batch_put, batch_write, get_b, get_n, get_s, key, n, pack, query_all, s, ttl,
    unpack, Item, EXPIRES_AT,
};
use crate::error::store;

/// Raw JSON per pack before compression; keeps an item well under DynamoDB's 400 KB.
const PACK_RAW_MAX: usize = 300 * 1024;
/// Concurrent requests of one `record` or `forget` call.
const CONCURRENCY: usize = 32;
/// Packs read per round by `events_by_subject`.
const PACKS_PER_ROUND: usize = 25;

/// Events, their operational records, the subject index and message-id dedup on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
}

/// One event as a pack keeps it, with what `forget` needs to release its dedup entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Packed {
    e: StoredEvent,
    /// `dedup_until`, Unix seconds.
    u: i64,
}

fn hex_id(id: &EventId) -> String {
    id.0.simple().to_string()
}

/// The UUIDv7 millisecond of an event id (its first 48 bits).
fn millis_of(id: &EventId) -> u64 {
    (id.0.as_u128() >> 80) as u64
}

fn ref_millis(r: &str) -> u64 {
    u64::from_str_radix(r.get(..12).unwrap_or("0"), 16).unwrap_or(0)
}

fn pack_pk(ws: &WorkspaceId, ms: u64) -> String {
    format!("W#{ws}#E#{}", ms / 60_000)
}

fn subject_pk(ws: &WorkspaceId, subject: &str) -> String {
    format!("W#{ws}#S#{subject}")
}

fn day(t: OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

fn subject_day_key(ws: &WorkspaceId, subject: &str, day: &str) -> Item {
    key(format!("{}#{day}", subject_pk(ws, subject)), "S")
}

fn marker_key(ws: &WorkspaceId, m: &MessageId) -> Item {
    let digest = Sha256::digest(m.as_str().as_bytes());
    key(format!("W#{ws}#D#{}", hex::encode(&digest[..16])), "D")
}

/// 8 bytes of SHA-256 of the message id: unique enough within one subject's day.
fn fingerprint(m: &MessageId) -> [u8; 8] {
    let digest = Sha256::digest(m.as_str().as_bytes());
    let mut fp = [0; 8];
    fp.copy_from_slice(&digest[..8]);
    fp
}

/// A dedup entry: fingerprint ‖ `dedup_until` (Unix seconds, u32 big-endian).
fn entry(m: &MessageId, until: i64) -> Vec<u8> {
    let mut e = fingerprint(m).to_vec();
    e.extend_from_slice(&(until.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes());
    e
}

fn entry_until(e: &[u8]) -> i64 {
    e.get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| i64::from(u32::from_be_bytes(b)))
}

fn binary_set(item: Option<&Item>, name: &str) -> Vec<Vec<u8>> {
    match item.and_then(|i| i.get(name)) {
        Some(AttributeValue::Bs(v)) => v.iter().map(|b| b.as_ref().to_vec()).collect(),
        _ => Vec::new(),
    }
}

fn string_set(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn bs(entries: Vec<Vec<u8>>) -> AttributeValue {
    AttributeValue::Bs(
        entries
            .into_iter()
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .collect(),
    )
}

fn ss(values: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::Ss(values.into_iter().collect())
}

/// Events of one request that share a millisecond, written as one pack.
#[derive(Debug)]
struct Chunk {
    ws: WorkspaceId,
    /// Hex id of the chunk's first event (before dedup): the pack's sort key.
    reference: String,
    members: Vec<usize>,
}

/// What one dedup claim took, so that it can be given back if the write fails.
#[derive(Debug)]
enum Claim {
    /// Entries added to the primary subject's item of today; `had_today` are the entries it
    /// had before.
    Subject {
        ws: WorkspaceId,
        subject: String,
        day: String,
        members: Vec<usize>,
        had_today: Vec<Vec<u8>>,
        refs: BTreeSet<String>,
    },
    /// A marker item; `taken` is false when another event holds it (a duplicate).
    Marker { index: usize, taken: bool },
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Adds pack references (and dedup entries) to a subject-day item, creating it and its
    /// `subject` index entry on the first write of the day. `expires_at` only moves later.
    /// Returns the entries the item had before.
    async fn touch_subject_day(
        &self,
        item_key: Item,
        spk: String,
        ssk: String,
        refs: &BTreeSet<String>,
        fps: &[Vec<u8>],
        expires: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let update = |extend_expiry: bool| {
            let keys = "subject_pk = if_not_exists(subject_pk, :spk), subject_sk = if_not_exists(subject_sk, :ssk)";
            let set = if extend_expiry {
                format!("SET {keys}, {EXPIRES_AT} = :exp")
            } else {
                format!("SET {keys}")
            };
            let add = if fps.is_empty() {
                "ADD packs :refs"
            } else {
                "ADD packs :refs, fps :fps"
            };
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key.clone()))
                .update_expression(format!("{set} {add}"))
                .expression_attribute_values(":spk", s(spk.clone()))
                .expression_attribute_values(":ssk", s(ssk.clone()))
                .expression_attribute_values(":refs", ss(refs.iter().cloned()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld);
            if !fps.is_empty() {
                req = req.expression_attribute_values(":fps", bs(fps.to_vec()));
            }
            if extend_expiry {
                req = req
                    .condition_expression(format!(
                        "attribute_not_exists({EXPIRES_AT}) OR {EXPIRES_AT} <= :exp"
                    ))
                    .expression_attribute_values(":exp", n(expires));
            }
            req
        };
        let out = match update(true).send().await.map_err(|e| store("record", e)) {
            // The item already lives longer (a workspace's retention shrank today): keep it.
            Err(StoreError::Conflict(_)) => {
                update(false).send().await.map_err(|e| store("record", e))?
            }
            other => other?,
        };
        Ok(binary_set(out.attributes.as_ref(), "fps"))
    }

    /// Takes a marker for an event without subjects; `false` if an unexpired one exists.
    async fn take_marker(&self, e: &NewEvent, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut item = marker_key(&e.event.workspace_id, &e.event.message_id);
        item.insert("event".into(), s(hex_id(&e.event.event_id)));
        item.insert("until".into(), n(e.dedup_until.unix_timestamp()));
        item.insert(EXPIRES_AT.into(), n(ttl(e.dedup_until)));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #u <= :now")
            .expression_attribute_names("#u", "until")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        match put.map_err(|e| store("record", e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes dedup entries from a subject-day item (and pack references, if given),
    /// without creating the item if it is gone.
    async fn release_subject_day(
        &self,
        item_key: Item,
        fps: Vec<Vec<u8>>,
        refs: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut parts = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key.clone()))
            .condition_expression("attribute_exists(pk)");
        if !fps.is_empty() {
            parts.push("fps :fps");
            req = req.expression_attribute_values(":fps", bs(fps));
        }
        if !refs.is_empty() {
            parts.push("packs :refs");
            req = req.expression_attribute_values(":refs", ss(refs));
        }
        if parts.is_empty() {
            return Ok(());
        }
        let left = match req
            .update_expression(format!("DELETE {}", parts.join(", ")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store("forget", e))
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if left.contains_key("packs") {
            return Ok(());
        }
        // No pack left: the item (and its `subject` index entry) goes, unless a request of
        // the subject added a pack meanwhile.
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .condition_expression("attribute_not_exists(packs)")
            .send()
            .await
            .map_err(|e| store("forget", e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a dedup marker if it still belongs to `event`.
    async fn release_marker(
        &self,
        ws: &WorkspaceId,
        m: &MessageId,
        event: &EventId,
    ) -> Result<(), StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(marker_key(ws, m)))
            .condition_expression("#e = :e")
            .expression_attribute_names("#e", "event")
            .expression_attribute_values(":e", s(hex_id(event)))
            .send()
            .await
            .map_err(|e| store("forget", e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives back the dedup claims of `fresh` events after a failed write (best effort: the
    /// caller reports the original error).
    async fn release_claims(&self, events: &[NewEvent], claims: &[Claim], fresh: &[bool]) {
        let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        for c in claims {
            match c {
                Claim::Subject {
                    ws,
                    subject,
                    day,
                    members,
                    refs,
                    ..
                } => {
                    let mut fps = Vec::new();
                    for &i in members {
                        if fresh[i] {
                            fps.push(entry(
                                &events[i].event.message_id,
                                events[i].dedup_until.unix_timestamp(),
                            ));
                        }
                    }
                    // The call's pack references are its own (named after its events): none
                    // of its packs stays.
                    let item = subject_day_key(ws, subject, day);
                    jobs.push(
                        self.release_subject_day(item, fps, refs.iter().cloned().collect())
                            .boxed(),
                    );
                }
                Claim::Marker { index, taken } => {
                    if *taken && fresh[*index] {
                        let e = &events[*index].event;
                        jobs.push(
                            self.release_marker(&e.workspace_id, &e.message_id, &e.event_id)
                                .boxed(),
                        );
                    }
                }
            }
        }
        let failed = run_all(jobs).await.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            tracing::error!(
                failed,
                "could not give back dedup entries after a failed record; a retry of these events may be taken for a duplicate"
            );
        }
    }

    /// Packs (event or operational) of one millisecond whose first id is at most `up_to`.
    async fn packs_at(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        kind: char,
        ms: u64,
        up_to: &str,
        at_least: &str,
    ) -> Result<Vec<Item>, StoreError> {
        query_all(
            context,
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .filter_expression("#last >= :min")
                .expression_attribute_names("#last", "last")
                .expression_attribute_values(":pk", s(pack_pk(ws, ms)))
                .expression_attribute_values(":lo", s(format!("{kind}#{ms:012x}")))
                .expression_attribute_values(":hi", s(format!("{kind}#{up_to}")))
                .expression_attribute_values(":min", s(at_least))
                .consistent_read(true),
        )
        .await
    }
}

/// Runs futures, at most `CONCURRENCY` at a time; results in completion order.
async fn run_all<'a, T: Send + 'a>(jobs: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    stream::iter(jobs)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Splits the candidate events into packs: per workspace and millisecond, at most
/// `PACK_RAW_MAX` bytes of JSON each.
fn chunks(events: &[NewEvent], candidates: &[usize]) -> Result<Vec<Chunk>, StoreError> {
    let mut by_ms: BTreeMap<(WorkspaceId, u64), Vec<usize>> = BTreeMap::new();
    for &i in candidates {
        let e = &events[i].event;
        by_ms
            .entry((e.workspace_id.clone(), millis_of(&e.event_id)))
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for ((ws, _), mut members) in by_ms {
        members.sort_by_key(|&i| events[i].event.event_id);
        let mut current: Vec<usize> = Vec::new();
        let mut size = 0;
        for i in members {
            let len = serde_json::to_vec(&events[i].event)
                .map_err(|e| StoreError::permanent("record", e))?
                .len();
            if !current.is_empty() && size + len > PACK_RAW_MAX {
                out.push(Chunk {
                    ws: ws.clone(),
                    reference: hex_id(&events[current[0]].event.event_id),
                    members: std::mem::take(&mut current),
                });
                size = 0;
            }
            size += len;
            current.push(i);
        }
        if !current.is_empty() {
            out.push(Chunk {
                ws: ws.clone(),
                reference: hex_id(&events[current[0]].event.event_id),
                members: current,
            });
        }
    }
    Ok(out)
}

fn pack_items(
    events: &[NewEvent],
    chunk: &Chunk,
    fresh: &[bool],
    today: &str,
) -> Result<Vec<Item>, StoreError> {
    let kept: Vec<usize> = chunk
        .members
        .iter()
        .copied()
        .filter(|&i| fresh[i])
        .collect();
    let Some(&last) = kept.last() else {
        return Ok(Vec::new());
    };
    let pk = pack_pk(&chunk.ws, ref_millis(&chunk.reference));
    let last = hex_id(&events[last].event.event_id);
    let packed: Vec<Packed> = kept
        .iter()
        .map(|&i| Packed {
            e: events[i].event.clone(),
            u: events[i].dedup_until.unix_timestamp(),
        })
        .collect();
    let expires = kept
        .iter()
        .map(|&i| ttl(events[i].event.expires_at))
        .max()
        .unwrap_or(0);
    let mut item = key(&pk, format!("P#{}", chunk.reference));
    item.insert("data".into(), b(pack("record", &packed)?));
    item.insert("last".into(), s(last.clone()));
    item.insert("day".into(), s(today));
    item.insert("v".into(), n(1));
    item.insert(EXPIRES_AT.into(), n(expires));
    let mut out = vec![item];
    let ops: Vec<&OperationalRecord> = kept
        .iter()
        .filter_map(|&i| events[i].operational.as_ref())
        .collect();
    if !ops.is_empty() {
        let expires = ops.iter().map(|o| ttl(o.expires_at)).max().unwrap_or(0);
        let mut op = key(&pk, format!("O#{}", chunk.reference));
        op.insert("data".into(), b(pack("record", &ops)?));
        op.insert("last".into(), s(last));
        op.insert(EXPIRES_AT.into(), n(expires));
        out.push(op);
    }
    Ok(out)
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn record(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        let now_s = now.unix_timestamp();
        let today = day(now);
        let yesterday = day(now - time::Duration::days(1));

        // A message id repeated within the call: the first one counts.
        let mut fresh = vec![true; events.len()];
        let mut seen = HashSet::new();
        for (i, e) in events.iter().enumerate() {
            if !seen.insert((&e.event.workspace_id, &e.event.message_id)) {
                fresh[i] = false;
            }
        }
        let candidates: Vec<usize> = (0..events.len()).filter(|&i| fresh[i]).collect();
        let chunks = chunks(events, &candidates)?;
        let mut chunk_of = vec![usize::MAX; events.len()];
        for (c, chunk) in chunks.iter().enumerate() {
            for &i in &chunk.members {
                chunk_of[i] = c;
            }
        }

        // 1. Dedup claims: per primary subject (the first of the sorted subject index) one
        //    update of today's subject-day, which also indexes the packs; per event without
        //    subjects a conditional marker.
        let mut groups: BTreeMap<(WorkspaceId, String), Vec<usize>> = BTreeMap::new();
        let mut markers = Vec::new();
        for &i in &candidates {
            let e = &events[i].event;
            match e.subjects.first() {
                Some(primary) => groups
                    .entry((e.workspace_id.clone(), primary.clone()))
                    .or_default()
                    .push(i),
                None => markers.push(i),
            }
        }
        // Yesterday's entries of the same subjects: the 24-hour window spans two days. One
        // batch read, strongly consistent only in the first minute of the day, when
        // yesterday's items may have been written a moment ago.
        let yesterday_keys: Vec<Item> = groups
            .keys()
            .map(|(ws, subject)| subject_day_key(ws, subject, &yesterday))
            .collect();
        let since_midnight = now.to_offset(time::UtcOffset::UTC).time() - time::Time::MIDNIGHT;
        let before = batch_get(
            &self.client,
            "record",
            &self.table,
            yesterday_keys,
            since_midnight < time::Duration::minutes(1),
            Some("pk, fps"),
        );
        let mut jobs = Vec::new();
        for ((ws, subject), members) in groups {
            let fps: Vec<Vec<u8>> = members
                .iter()
                .map(|&i| {
                    entry(
                        &events[i].event.message_id,
                        events[i].dedup_until.unix_timestamp(),
                    )
                })
                .collect();
            let refs: BTreeSet<String> = members
                .iter()
                .map(|&i| chunks[chunk_of[i]].reference.clone())
                .collect();
            let expires = members
                .iter()
                .map(|&i| ttl(events[i].event.expires_at))
                .max()
                .unwrap_or(0);
            let today = today.clone();
            jobs.push(
                async move {
                    let had_today = self
                        .touch_subject_day(
                            subject_day_key(&ws, &subject, &today),
                            subject_pk(&ws, &subject),
                            today.clone(),
                            &refs,
                            &fps,
                            expires,
                        )
                        .await?;
                    Ok::<_, StoreError>(Claim::Subject {
                        ws,
                        subject,
                        day: today,
                        members,
                        had_today,
                        refs,
                    })
                }
                .boxed(),
            );
        }
        for i in markers {
            jobs.push(
                async move {
                    let taken = self.take_marker(&events[i], now).await?;
                    Ok(Claim::Marker { index: i, taken })
                }
                .boxed(),
            );
        }
        let (results, before) = futures_util::future::join(run_all(jobs), before).await;
        let mut first_error = None;
        let before: HashMap<String, Vec<Vec<u8>>> = match before {
            Ok(items) => items
                .into_iter()
                .filter_map(|i| {
                    let pk = get_s(&i, "pk", "record").ok()?.to_owned();
                    Some((pk, binary_set(Some(&i), "fps")))
                })
                .collect(),
            Err(e) => {
                first_error = Some(e);
                HashMap::new()
            }
        };
        let mut claims = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(c) => claims.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Which events are duplicates, and which of our new entries must go again.
        let mut undo_dups: Vec<(WorkspaceId, String, Vec<Vec<u8>>, Vec<String>)> = Vec::new();
        let mut dropped: HashSet<(WorkspaceId, String, String)> = HashSet::new();
        for c in &claims {
            match c {
                Claim::Subject {
                    ws,
                    subject,
                    members,
                    had_today,
                    refs,
                    ..
                } => {
                    let had_before = before
                        .get(&format!("{}#{yesterday}", subject_pk(ws, subject)))
                        .map_or(&[][..], Vec::as_slice);
                    let mut added_for_dups = Vec::new();
                    for &i in members {
                        let m = &events[i].event.message_id;
                        let fp = fingerprint(m);
                        let dup = had_today
                            .iter()
                            .chain(had_before)
                            .any(|o| o.get(..8) == Some(&fp[..]) && entry_until(o) > now_s);
                        if dup {
                            fresh[i] = false;
                            let mine = entry(m, events[i].dedup_until.unix_timestamp());
                            if !had_today.contains(&mine) {
                                added_for_dups.push(mine);
                            }
                        }
                    }
                    // A pack with no fresh event of the subject is not the subject's (or is
                    // never written): its reference goes again, so no subject-day points at
                    // nothing (and outlives an erasure of the subject).
                    let live: HashSet<&String> = members
                        .iter()
                        .filter(|&&i| fresh[i])
                        .map(|&i| &chunks[chunk_of[i]].reference)
                        .collect();
                    let dead: Vec<String> =
                        refs.iter().filter(|r| !live.contains(r)).cloned().collect();
                    for r in &dead {
                        dropped.insert((ws.clone(), subject.clone(), r.clone()));
                    }
                    if !added_for_dups.is_empty() || !dead.is_empty() {
                        undo_dups.push((ws.clone(), subject.clone(), added_for_dups, dead));
                    }
                }
                Claim::Marker { index, taken } => {
                    if !taken {
                        fresh[*index] = false;
                    }
                }
            }
        }
        if let Some(e) = first_error {
            self.release_claims(events, &claims, &fresh).await;
            return Err(e);
        }
        // A duplicate must not extend its message id's window: take its entry out again.
        for (ws, subject, fps, dead) in undo_dups {
            if let Err(e) = self
                .release_subject_day(subject_day_key(&ws, &subject, &today), fps, dead)
                .await
            {
                tracing::warn!(error = %e, "could not remove the dedup entries of duplicates");
            }
        }

        // 2. The packs of the fresh events, and the subject index of their other subjects.
        let write = async {
            let mut items = Vec::new();
            for chunk in &chunks {
                items.extend(pack_items(events, chunk, &fresh, &today)?);
            }
            let mut indexed: HashSet<(WorkspaceId, String, String)> = HashSet::new();
            for c in &claims {
                if let Claim::Subject {
                    ws, subject, refs, ..
                } = c
                {
                    for r in refs {
                        let k = (ws.clone(), subject.clone(), r.clone());
                        if !dropped.contains(&k) {
                            indexed.insert(k);
                        }
                    }
                }
            }
            let mut more: BTreeMap<(WorkspaceId, String), (BTreeSet<String>, i64)> =
                BTreeMap::new();
            for &i in &candidates {
                if !fresh[i] {
                    continue;
                }
                let e = &events[i].event;
                let r = &chunks[chunk_of[i]].reference;
                for subject in &e.subjects {
                    if indexed.contains(&(e.workspace_id.clone(), subject.clone(), r.clone())) {
                        continue;
                    }
                    let slot = more
                        .entry((e.workspace_id.clone(), subject.clone()))
                        .or_default();
                    slot.0.insert(r.clone());
                    slot.1 = slot.1.max(ttl(e.expires_at));
                }
            }
            let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
            jobs.push(batch_put(&self.client, "record", &self.table, items).boxed());
            for ((ws, subject), (refs, expires)) in more {
                let today = today.clone();
                jobs.push(
                    async move {
                        self.touch_subject_day(
                            subject_day_key(&ws, &subject, &today),
                            subject_pk(&ws, &subject),
                            today.clone(),
                            &refs,
                            &[],
                            expires,
                        )
                        .await
                        .map(drop)
                    }
                    .boxed(),
                );
            }
            let results = run_all(jobs).await;
            results.into_iter().collect::<Result<(), StoreError>>()
        };
        if let Err(e) = write.await {
            self.release_claims(events, &claims, &fresh).await;
            let mut others: BTreeMap<(WorkspaceId, String), BTreeSet<String>> = BTreeMap::new();
            for &i in &candidates {
                let e = &events[i].event;
                if fresh[i] {
                    for subject in e.subjects.iter().skip(1) {
                        others
                            .entry((e.workspace_id.clone(), subject.clone()))
                            .or_default()
                            .insert(chunks[chunk_of[i]].reference.clone());
                    }
                }
            }
            for ((ws, subject), refs) in others {
                let item = subject_day_key(&ws, &subject, &today);
                if let Err(undo) = self
                    .release_subject_day(item, Vec::new(), refs.into_iter().collect())
                    .await
                {
                    tracing::warn!(error = %undo, "could not remove index entries after a failed record");
                }
            }
            let written: Vec<EventId> = (0..events.len())
                .filter(|&i| fresh[i])
                .map(|i| events[i].event.event_id)
                .collect();
            if let Some(ws) = events.first().map(|e| e.event.workspace_id.clone()) {
                if let Err(undo) = self.remove_packs("record", &ws, &written, false).await {
                    tracing::warn!(error = %undo, "could not remove packs after a failed record");
                }
            }
            return Err(e);
        }
        Ok(fresh)
    }

    async fn forget(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<EventId> = events.iter().map(|(id, _)| *id).collect();
        let changes = self.remove_packs("forget", ws, &ids, false).await?;
        let found: HashSet<EventId> = changes
            .iter()
            .flat_map(|c| c.gone.iter().map(|p| p.e.event_id))
            .collect();

        // Give back the dedup entries, and the subject index entries of packs that no longer
        // hold an event of the subject.
        let mut subject_days: BTreeMap<(String, String), (Vec<Vec<u8>>, BTreeSet<String>)> =
            BTreeMap::new();
        let mut markers = Vec::new();
        for c in &changes {
            for p in &c.gone {
                let e = &p.e;
                match e.subjects.first() {
                    Some(primary) => {
                        let slot = subject_days
                            .entry((primary.clone(), c.day.clone()))
                            .or_default();
                        slot.0.push(entry(&e.message_id, p.u));
                    }
                    None => markers.push((e.message_id.clone(), e.event_id)),
                }
                for subject in &e.subjects {
                    if c.unindexes(subject) {
                        subject_days
                            .entry((subject.clone(), c.day.clone()))
                            .or_default()
                            .1
                            .insert(c.reference.clone());
                    }
                }
            }
        }
        for (id, m) in events {
            if !found.contains(id) {
                markers.push((m.clone(), *id));
            }
        }
        let mut jobs = Vec::new();
        for ((subject, day), (fps, refs)) in subject_days {
            jobs.push(
                self.release_subject_day(
                    subject_day_key(ws, &subject, &day),
                    fps,
                    refs.into_iter().collect(),
                )
                .boxed(),
            );
        }
        for (m, id) in &markers {
            jobs.push(self.release_marker(ws, m, id).boxed());
        }
        run_all(jobs).await.into_iter().collect()
    }

    async fn event(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let hex = hex_id(id);
        let items = self
            .packs_at("event", ws, 'P', millis_of(id), &hex, &hex)
            .await?;
        for item in &items {
            let packed: Vec<Packed> = unpack("event", get_b(item, "data", "event")?)?;
            if let Some(p) = packed.into_iter().find(|p| p.e.event_id == *id) {
                return Ok((p.e.expires_at > now).then_some(p.e));
            }
        }
        Ok(None)
    }

    async fn events_by_subject(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        after: Option<&EventId>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The days on which the subject had events, with their pack references ...
        let day_items = self
            .subject_day_items("events_by_subject", ws, subject)
            .await?;
        let after_ms = after.map(millis_of);
        let mut refs: BTreeSet<String> = BTreeSet::new();
        for d in day_items.iter().filter(|d| !super::expired(d, now)) {
            refs.extend(
                string_set(d, "packs")
                    .into_iter()
                    .filter(|r| after_ms.is_none_or(|ms| ref_millis(r) >= ms)),
            );
        }
        // ... and the packs, oldest first, until `limit` events are certain.
        let mut found: Vec<StoredEvent> = Vec::new();
        let refs: Vec<String> = refs.into_iter().collect();
        for round in refs.chunks(PACKS_PER_ROUND) {
            if found.len() >= limit {
                let bound = hex_id(&found[limit - 1].event_id);
                if round[0] > bound {
                    break;
                }
            }
            let keys = round
                .iter()
                .map(|r| key(pack_pk(ws, ref_millis(r)), format!("P#{r}")))
                .collect();
            for item in batch_get(
                &self.client,
                "events_by_subject",
                &self.table,
                keys,
                true,
                None,
            )
            .await?
            {
                let packed: Vec<Packed> = unpack(
                    "events_by_subject",
                    get_b(&item, "data", "events_by_subject")?,
                )?;
                found.extend(packed.into_iter().map(|p| p.e).filter(|e| {
                    e.expires_at > now
                        && after.is_none_or(|a| e.event_id > *a)
                        && e.subjects.iter().any(|s| s == subject)
                }));
            }
            found.sort_by_key(|e| e.event_id);
        }
        found.truncate(limit);
        Ok(found)
    }

    async fn operational(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<OperationalRecord>, StoreError> {
        let hex = hex_id(id);
        let items = self
            .packs_at("operational", ws, 'O', millis_of(id), &hex, &hex)
            .await?;
        for item in &items {
            let ops: Vec<OperationalRecord> =
                unpack("operational", get_b(item, "data", "operational")?)?;
            if let Some(o) = ops.into_iter().find(|o| o.event_id == *id) {
                return Ok((o.expires_at > now).then_some(o));
            }
        }
        Ok(None)
    }

    /// DynamoDB's TTL deletes expired items (late); reads filter them meanwhile.
    async fn sweep(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn subject_footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<EventFootprint>, StoreError> {
        self.footprint(ws, subjects, after, limit).await
    }

    async fn erase(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<ErasedRows, StoreError> {
        self.erase_events(ws, events).await
    }
}

/// What taking events out of one pack did.
#[derive(Debug)]
struct PackChange {
    /// The pack's reference before the change.
    reference: String,
    day: String,
    /// The events taken out.
    gone: Vec<Packed>,
    /// Subjects of the events still in the pack.
    kept_subjects: BTreeSet<String>,
    /// The pack went (no event left).
    deleted: bool,
    /// The pack lives on under this reference: its old one was an event taken out.
    rekeyed: Option<String>,
    /// Operational records taken out.
    operational: u64,
}

impl PackChange {
    /// Does the subject-day of `subject` lose its reference to this pack?
    fn unindexes(&self, subject: &str) -> bool {
        self.deleted || self.rekeyed.is_some() || !self.kept_subjects.contains(subject)
    }
}

/// Removals from one subject-day item.
#[derive(Debug, Default)]
struct DayChange {
    refs: BTreeSet<String>,
    fps: Vec<Vec<u8>>,
}

fn delete_request(k: Item, context: &'static str) -> Result<WriteRequest, StoreError> {
    Ok(WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(k))
                .build()
                .map_err(|e| StoreError::permanent(context, e))?,
        )
        .build())
}

impl DynamoEventStore {
    /// Takes events out of their packs: a pack left empty is deleted, another is rewritten
    /// under the condition that nobody rewrote it meanwhile (`v`), the same for the
    /// operational packs. With `rekey`, a pack whose reference (its sort key, which names an
    /// event) is an event taken out moves to the reference of its first remaining event, and
    /// the subject-days of the remaining events' subjects learn the new reference.
    async fn remove_packs(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        ids: &[EventId],
        rekey: bool,
    ) -> Result<Vec<PackChange>, StoreError> {
        let mut by_ms: BTreeMap<u64, BTreeSet<EventId>> = BTreeMap::new();
        for id in ids {
            by_ms.entry(millis_of(id)).or_default().insert(*id);
        }
        let mut changes = Vec::new();
        let mut deletes = Vec::new();
        for (ms, ids) in by_ms {
            let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
                continue;
            };
            let items = self
                .packs_at(context, ws, 'P', ms, &hex_id(last), &hex_id(first))
                .await?;
            for item in items {
                if let Some(c) = self
                    .take_out(context, ws, item, &ids, rekey, &mut deletes)
                    .await?
                {
                    changes.push(c);
                }
            }
        }
        batch_write(&self.client, context, &self.table, deletes).await?;
        Ok(changes)
    }

    async fn take_out(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        item: Item,
        ids: &BTreeSet<EventId>,
        rekey: bool,
        deletes: &mut Vec<WriteRequest>,
    ) -> Result<Option<PackChange>, StoreError> {
        let data: Vec<Packed> = unpack(context, get_b(&item, "data", context)?)?;
        if !data.iter().any(|p| ids.contains(&p.e.event_id)) {
            return Ok(None);
        }
        let pk = get_s(&item, "pk", context)?.to_owned();
        let sk = get_s(&item, "sk", context)?.to_owned();
        let reference = sk.trim_start_matches("P#").to_owned();
        let day = get_s(&item, "day", context)?.to_owned();
        let version = get_n(&item, "v").unwrap_or(1);
        let (gone, kept): (Vec<Packed>, Vec<Packed>) =
            data.into_iter().partition(|p| ids.contains(&p.e.event_id));
        let kept_subjects: BTreeSet<String> = kept
            .iter()
            .flat_map(|p| p.e.subjects.iter().cloned())
            .collect();

        let op_key = key(&pk, format!("O#{reference}"));
        let op_item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(op_key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store(context, e))?
            .item;
        let (ops_gone, ops_kept): (Vec<OperationalRecord>, Vec<OperationalRecord>) = match &op_item
        {
            Some(i) => unpack::<Vec<OperationalRecord>>(context, get_b(i, "data", context)?)?
                .into_iter()
                .partition(|o| ids.contains(&o.event_id)),
            None => (Vec::new(), Vec::new()),
        };
        let mut change = PackChange {
            reference: reference.clone(),
            day: day.clone(),
            gone,
            kept_subjects,
            deleted: false,
            rekeyed: None,
            operational: ops_gone.len() as u64,
        };
        if kept.is_empty() {
            deletes.push(delete_request(key(&pk, &sk), context)?);
            if op_item.is_some() {
                deletes.push(delete_request(op_key, context)?);
            }
            change.deleted = true;
            return Ok(Some(change));
        }
        let names_a_gone_event = change
            .gone
            .iter()
            .any(|p| hex_id(&p.e.event_id) == reference);
        if rekey && names_a_gone_event {
            let new_ref = kept
                .iter()
                .map(|p| p.e.event_id)
                .min()
                .map(|id| hex_id(&id))
                .unwrap_or_default();
            let mut moved = item.clone();
            moved.insert("sk".into(), s(format!("P#{new_ref}")));
            let expires = kept.iter().map(|p| ttl(p.e.expires_at)).max().unwrap_or(0);
            moved.insert(EXPIRES_AT.into(), n(expires));
            self.write_pack(context, moved, &kept, None).await?;
            if !ops_kept.is_empty() {
                let mut op = key(&pk, format!("O#{new_ref}"));
                op.insert(EXPIRES_AT.into(), n(ops_expiry(&ops_kept)));
                self.write_operational(context, op, &ops_kept).await?;
            }
            let adds = change
                .kept_subjects
                .iter()
                .map(|subject| self.add_ref(context, subject_day_key(ws, subject, &day), &new_ref));
            run_all(adds.map(FutureExt::boxed).collect())
                .await
                .into_iter()
                .collect::<Result<(), StoreError>>()?;
            self.delete_pack(context, key(&pk, &sk), version).await?;
            if op_item.is_some() {
                deletes.push(delete_request(op_key, context)?);
            }
            change.rekeyed = Some(new_ref);
            return Ok(Some(change));
        }
        self.write_pack(context, item, &kept, Some(version)).await?;
        match op_item {
            Some(_) if ops_kept.is_empty() => deletes.push(delete_request(op_key, context)?),
            Some(mut op) if !ops_gone.is_empty() => {
                op.remove("data");
                self.write_operational(context, op, &ops_kept).await?;
            }
            _ => {}
        }
        Ok(Some(change))
    }

    /// Writes a pack with `kept` as its events: over the version `v` it was read at, or as
    /// a new item.
    async fn write_pack(
        &self,
        context: &'static str,
        mut item: Item,
        kept: &[Packed],
        version: Option<i64>,
    ) -> Result<(), StoreError> {
        let last = kept
            .iter()
            .map(|p| p.e.event_id)
            .max()
            .map(|id| hex_id(&id))
            .unwrap_or_default();
        item.insert("data".into(), b(pack(context, &kept)?));
        item.insert("last".into(), s(last));
        let put = self.client.put_item().table_name(&self.table);
        let put = match version {
            Some(v) => {
                item.insert("v".into(), n(v + 1));
                put.condition_expression("#v = :v")
                    .expression_attribute_names("#v", "v")
                    .expression_attribute_values(":v", n(v))
            }
            None => {
                item.insert("v".into(), n(1));
                put.condition_expression("attribute_not_exists(pk)")
            }
        };
        put.set_item(Some(item))
            .send()
            .await
            .map_err(|e| store("the pack changed meanwhile", e))?;
        Ok(())
    }

    async fn write_operational(
        &self,
        context: &'static str,
        mut item: Item,
        ops: &[OperationalRecord],
    ) -> Result<(), StoreError> {
        let last = ops
            .iter()
            .map(|o| o.event_id)
            .max()
            .map(|id| hex_id(&id))
            .unwrap_or_default();
        item.insert("data".into(), b(pack(context, &ops)?));
        item.insert("last".into(), s(last));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store(context, e))?;
        Ok(())
    }

    async fn delete_pack(
        &self,
        context: &'static str,
        pack_key: Item,
        version: i64,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(pack_key))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await
            .map_err(|e| store(context, e))?;
        Ok(())
    }

    /// Adds a pack reference to an existing subject-day (never creates one).
    async fn add_ref(
        &self,
        context: &'static str,
        day_key: Item,
        reference: &str,
    ) -> Result<(), StoreError> {
        match self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(day_key))
            .update_expression("ADD packs :r")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":r", ss([reference.to_owned()]))
            .send()
            .await
            .map_err(|e| store(context, e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a dedup marker if it still belongs to `event`; true if it did.
    async fn erase_marker(
        &self,
        ws: &WorkspaceId,
        m: &MessageId,
        event: &EventId,
    ) -> Result<bool, StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(marker_key(ws, m)))
            .condition_expression("#e = :e")
            .expression_attribute_names("#e", "event")
            .expression_attribute_values(":e", s(hex_id(event)))
            .send()
            .await
            .map_err(|e| store("erase", e))
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes references and dedup entries from a subject-day; deletes the item (and so its
    /// `subject` index entry) when no reference is left, after dropping references to packs
    /// that are gone or hold no event of the subject any more. Returns how many of `fps`
    /// were there.
    async fn unindex_day(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        day: &str,
        change: DayChange,
    ) -> Result<u64, StoreError> {
        let day_key = subject_day_key(ws, subject, day);
        let mut parts = vec!["packs :refs"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(day_key.clone()))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":refs", ss(change.refs.iter().cloned()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if !change.fps.is_empty() {
            parts.push("fps :fps");
            req = req.expression_attribute_values(":fps", bs(change.fps.clone()));
        }
        if change.refs.is_empty() {
            parts.remove(0);
            req = req.set_expression_attribute_values(Some(HashMap::from([(
                ":fps".to_owned(),
                bs(change.fps.clone()),
            )])));
        }
        if parts.is_empty() {
            return Ok(0);
        }
        // Which entries were there: read before (the update's old image cannot say which
        // set elements it removed without the whole set).
        let before = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(day_key.clone()))
            .consistent_read(true)
            .projection_expression("fps")
            .send()
            .await
            .map_err(|e| store("erase", e))?
            .item;
        let had = binary_set(before.as_ref(), "fps");
        let found = change.fps.iter().filter(|f| had.contains(f)).count() as u64;
        let after = match req
            .update_expression(format!("DELETE {}", parts.join(", ")))
            .send()
            .await
            .map_err(|e| store("erase", e))
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(StoreError::Conflict(_)) => return Ok(0),
            Err(e) => return Err(e),
        };
        let left = string_set(&after, "packs");
        let stale = self.stale_refs(ws, subject, &left).await?;
        let left = if stale.is_empty() {
            left.len()
        } else {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(day_key.clone()))
                .update_expression("DELETE packs :refs")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":refs", ss(stale))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await
                .map_err(|e| store("erase", e));
            match out {
                Ok(out) => string_set(&out.attributes.unwrap_or_default(), "packs").len(),
                Err(StoreError::Conflict(_)) => return Ok(found),
                Err(e) => return Err(e),
            }
        };
        if left == 0 {
            // Unless a request of the subject added a pack meanwhile.
            match self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(day_key))
                .condition_expression("attribute_not_exists(packs)")
                .send()
                .await
                .map_err(|e| store("erase", e))
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// The references among `refs` whose pack is gone or holds no event of `subject`.
    async fn stale_refs(
        &self,
        ws: &WorkspaceId,
        subject: &str,
        refs: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let keys = refs
            .iter()
            .map(|r| key(pack_pk(ws, ref_millis(r)), format!("P#{r}")))
            .collect();
        let packs = batch_get(&self.client, "erase", &self.table, keys, true, None).await?;
        let mut live = HashSet::new();
        for item in &packs {
            let packed: Vec<Packed> = unpack("erase", get_b(item, "data", "erase")?)?;
            if packed
                .iter()
                .any(|p| p.e.subjects.iter().any(|s| s == subject))
            {
                live.insert(
                    get_s(item, "sk", "erase")?
                        .trim_start_matches("P#")
                        .to_owned(),
                );
            }
        }
        Ok(refs
            .iter()
            .filter(|r| !live.contains(*r))
            .cloned()
            .collect())
    }

    /// The subject-day items of one subject, expired or not: the days it had events on, from
    /// the sparse `subject` index (keys only), then the items themselves, consistently read.
    async fn subject_day_items(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        subject: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let days = query_all(
            context,
            self.client
                .query()
                .table_name(&self.table)
                .index_name("subject")
                .key_condition_expression("subject_pk = :s")
                .expression_attribute_values(":s", s(subject_pk(ws, subject))),
        )
        .await?;
        let keys: Vec<Item> = days
            .iter()
            .filter_map(|d| {
                Some(key(
                    get_s(d, "pk", context).ok()?,
                    get_s(d, "sk", context).ok()?,
                ))
            })
            .collect();
        batch_get(&self.client, context, &self.table, keys, true, None).await
    }

    /// The subject-day items of `subjects`, expired or not, each with its subject.
    async fn subject_days(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        subjects: &[String],
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let reads = subjects.iter().map(|subject| {
            async move {
                let items = self.subject_day_items(context, ws, subject).await?;
                Ok::<_, StoreError>(
                    items
                        .into_iter()
                        .map(|i| (subject.clone(), i))
                        .collect::<Vec<_>>(),
                )
            }
            .boxed()
        });
        let mut out = Vec::new();
        for r in run_all(reads.collect()).await {
            out.extend(r?);
        }
        Ok(out)
    }

    async fn footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<EventFootprint>, StoreError> {
        const CONTEXT: &str = "subject_footprint";
        if limit == 0 || subjects.is_empty() {
            return Ok(Vec::new());
        }
        let days = self.subject_days(CONTEXT, ws, subjects).await?;
        let after_ms = after.map(millis_of);
        let mut refs: BTreeSet<String> = BTreeSet::new();
        let mut fps_of: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (_, d) in &days {
            refs.extend(
                string_set(d, "packs")
                    .into_iter()
                    .filter(|r| after_ms.is_none_or(|ms| ref_millis(r) >= ms)),
            );
            fps_of.insert(
                get_s(d, "pk", CONTEXT)?.to_owned(),
                binary_set(Some(d), "fps"),
            );
        }
        let wanted: HashSet<&str> = subjects.iter().map(String::as_str).collect();
        // (event, its pack's pk and reference, its day)
        let mut found: Vec<(Packed, String, String, String)> = Vec::new();
        let refs: Vec<String> = refs.into_iter().collect();
        for round in refs.chunks(PACKS_PER_ROUND) {
            if found.len() >= limit {
                let bound = hex_id(&found[limit - 1].0.e.event_id);
                if round[0] > bound {
                    break;
                }
            }
            let keys = round
                .iter()
                .map(|r| key(pack_pk(ws, ref_millis(r)), format!("P#{r}")))
                .collect();
            for item in batch_get(&self.client, CONTEXT, &self.table, keys, true, None).await? {
                let pk = get_s(&item, "pk", CONTEXT)?.to_owned();
                let reference = get_s(&item, "sk", CONTEXT)?
                    .trim_start_matches("P#")
                    .to_owned();
                let day = get_s(&item, "day", CONTEXT)?.to_owned();
                let packed: Vec<Packed> = unpack(CONTEXT, get_b(&item, "data", CONTEXT)?)?;
                for p in packed {
                    if after.is_none_or(|a| p.e.event_id > *a)
                        && p.e.subjects.iter().any(|s| wanted.contains(s.as_str()))
                    {
                        found.push((p, pk.clone(), reference.clone(), day.clone()));
                    }
                }
            }
            found.sort_by_key(|f| f.0.e.event_id);
            found.dedup_by_key(|f| f.0.e.event_id);
        }
        found.truncate(limit);

        // Operational records: the operational packs beside the packs found.
        let op_keys: BTreeSet<(String, String)> = found
            .iter()
            .map(|(_, pk, r, _)| (pk.clone(), format!("O#{r}")))
            .collect();
        let ops = batch_get(
            &self.client,
            CONTEXT,
            &self.table,
            op_keys.into_iter().map(|(pk, sk)| key(pk, sk)).collect(),
            true,
            None,
        )
        .await?;
        let mut with_ops: HashSet<EventId> = HashSet::new();
        for item in &ops {
            let records: Vec<OperationalRecord> = unpack(CONTEXT, get_b(item, "data", CONTEXT)?)?;
            with_ops.extend(records.iter().map(|o| o.event_id));
        }
        // Dedup entries: on the subject-day of each event's primary subject.
        let missing: BTreeSet<String> = found
            .iter()
            .filter_map(|(p, _, _, day)| {
                let primary = p.e.subjects.first()?;
                let pk = format!("{}#{day}", subject_pk(ws, primary));
                (!fps_of.contains_key(&pk)).then_some(pk)
            })
            .collect();
        if !missing.is_empty() {
            let more = batch_get(
                &self.client,
                CONTEXT,
                &self.table,
                missing.into_iter().map(|pk| key(pk, "S")).collect(),
                true,
                Some("pk, fps"),
            )
            .await?;
            for d in &more {
                fps_of.insert(
                    get_s(d, "pk", CONTEXT)?.to_owned(),
                    binary_set(Some(d), "fps"),
                );
            }
        }
        Ok(found
            .into_iter()
            .map(|(p, _, _, day)| {
                let dedup_marker = p.e.subjects.first().is_some_and(|primary| {
                    fps_of
                        .get(&format!("{}#{day}", subject_pk(ws, primary)))
                        .is_some_and(|fps| fps.contains(&entry(&p.e.message_id, p.u)))
                });
                EventFootprint {
                    operational: with_ops.contains(&p.e.event_id),
                    dedup_marker,
                    subject_index_entries: u32::try_from(p.e.subjects.len()).unwrap_or(u32::MAX),
                    event: p.e,
                }
            })
            .collect())
    }

    async fn erase_events(
        &self,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<ErasedRows, StoreError> {
        let mut rows = ErasedRows::default();
        if events.is_empty() {
            return Ok(rows);
        }
        let changes = self.remove_packs("erase", ws, events, true).await?;
        let mut days: BTreeMap<(String, String), DayChange> = BTreeMap::new();
        let mut markers = Vec::new();
        for c in &changes {
            rows.operational_records += c.operational;
            for p in &c.gone {
                rows.events += 1;
                rows.subject_index_entries += p.e.subjects.len() as u64;
                for (i, subject) in p.e.subjects.iter().enumerate() {
                    let slot = days.entry((subject.clone(), c.day.clone())).or_default();
                    if c.unindexes(subject) {
                        slot.refs.insert(c.reference.clone());
                    }
                    if i == 0 {
                        slot.fps.push(entry(&p.e.message_id, p.u));
                    }
                }
                if p.e.subjects.is_empty() {
                    markers.push((p.e.message_id.clone(), p.e.event_id));
                }
            }
            if c.rekeyed.is_some() {
                for subject in &c.kept_subjects {
                    days.entry((subject.clone(), c.day.clone()))
                        .or_default()
                        .refs
                        .insert(c.reference.clone());
                }
            }
        }
        let jobs = days.into_iter().map(|((subject, day), change)| {
            async move { self.unindex_day(ws, &subject, &day, change).await }.boxed()
        });
        for r in run_all(jobs.collect()).await {
            rows.dedup_markers += r?;
        }
        for (m, id) in &markers {
            if self.erase_marker(ws, m, id).await? {
                rows.dedup_markers += 1;
            }
        }
        Ok(rows)
    }
}

fn ops_expiry(ops: &[OperationalRecord]) -> i64 {
    ops.iter().map(|o| ttl(o.expires_at)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    fn ms_hex(id: &EventId) -> String {
        format!("{:012x}", millis_of(id))
    }

    #[test]
    fn a_pack_key_comes_from_the_uuidv7_millisecond() {
        let id = EventId(Uuid::from_u128(0x0190_1234_5678_7000_8000_0000_0000_0001));
        assert_eq!(ms_hex(&id), "019012345678");
        assert_eq!(millis_of(&id), 0x0190_1234_5678);
        assert!(hex_id(&id).starts_with(&ms_hex(&id)));
        let ws = WorkspaceId::new(tracklayer_core::workspace::Region::Us, "abc");
        assert_eq!(
            pack_pk(&ws, millis_of(&id)),
            format!("W#ws_us_abc#E#{}", 0x0190_1234_5678u64 / 60_000)
        );
    }

    #[test]
    fn a_dedup_entry_is_a_fingerprint_and_its_expiry() {
        let m = MessageId::parse("m-1").unwrap();
        let e = entry(&m, 1_767_225_600);
        assert_eq!(e.len(), 12);
        assert_eq!(&e[..8], &fingerprint(&m));
        assert_eq!(entry_until(&e), 1_767_225_600);
        assert_ne!(
            fingerprint(&MessageId::parse("m-2").unwrap()),
            fingerprint(&m)
        );
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day(datetime!(2026-03-01 23:59:59 -01:00)), "20260302");
    }
}

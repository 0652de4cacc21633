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
            .set_key(Some(item_key))
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
        match req
            .update_expression(format!("DELETE {}", parts.join(", ")))
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
                    if !fps.is_empty() {
                        let item = subject_day_key(ws, subject, day);
                        jobs.push(self.release_subject_day(item, fps, Vec::new()).boxed());
                    }
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
        let mut undo_dups: Vec<(WorkspaceId, String, Vec<Vec<u8>>)> = Vec::new();
        for c in &claims {
            match c {
                Claim::Subject {
                    ws,
                    subject,
                    members,
                    had_today,
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
                    if !added_for_dups.is_empty() {
                        undo_dups.push((ws.clone(), subject.clone(), added_for_dups));
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
        for (ws, subject, fps) in undo_dups {
            if let Err(e) = self
                .release_subject_day(subject_day_key(&ws, &subject, &today), fps, Vec::new())
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
                        indexed.insert((ws.clone(), subject.clone(), r.clone()));
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
            let written: Vec<(EventId, MessageId)> = (0..events.len())
                .filter(|&i| fresh[i])
                .map(|i| (events[i].event.event_id, events[i].event.message_id.clone()))
                .collect();
            if let Some(ws) = events.first().map(|e| e.event.workspace_id.clone()) {
                if let Err(undo) = self.remove_packs(&ws, &written).await {
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
        let removed = self.remove_packs(ws, events).await?;
        let found: HashSet<EventId> = removed.iter().map(|r| r.packed.e.event_id).collect();

        // Give back the dedup entries, and the subject index entries of deleted packs.
        let mut subject_days: BTreeMap<(String, String), (Vec<Vec<u8>>, BTreeSet<String>)> =
            BTreeMap::new();
        let mut markers = Vec::new();
        for r in &removed {
            let e = &r.packed.e;
            match e.subjects.first() {
                Some(primary) => {
                    let slot = subject_days
                        .entry((primary.clone(), r.day.clone()))
                        .or_default();
                    slot.0.push(entry(&e.message_id, r.packed.u));
                }
                None => markers.push((e.message_id.clone(), e.event_id)),
            }
            if r.pack_deleted {
                for subject in &e.subjects {
                    subject_days
                        .entry((subject.clone(), r.day.clone()))
                        .or_default()
                        .1
                        .insert(r.reference.clone());
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
        // The days on which the subject had events (sparse GSI, keys only) ...
        let days = query_all(
            "events_by_subject",
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
                    get_s(d, "pk", "events_by_subject").ok()?,
                    get_s(d, "sk", "events_by_subject").ok()?,
                ))
            })
            .collect();
        // ... their pack references ...
        let day_items = batch_get(
            &self.client,
            "events_by_subject",
            &self.table,
            keys,
            true,
            None,
        )
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
}

/// An event taken out of its pack by `remove_packs`.
#[derive(Debug)]
struct Removed {
    packed: Packed,
    day: String,
    reference: String,
    pack_deleted: bool,
}

impl DynamoEventStore {
    /// Takes events out of their packs: a pack left empty is deleted, another is rewritten
    /// under the condition that nobody rewrote it meanwhile (`v`). The same for the
    /// operational packs.
    async fn remove_packs(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<Vec<Removed>, StoreError> {
        let mut by_ms: BTreeMap<u64, BTreeSet<EventId>> = BTreeMap::new();
        for (id, _) in events {
            by_ms.entry(millis_of(id)).or_default().insert(*id);
        }
        let mut removed = Vec::new();
        let mut deletes = Vec::new();
        for (ms, ids) in by_ms {
            let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
                continue;
            };
            let items = self
                .packs_at("forget", ws, 'P', ms, &hex_id(last), &hex_id(first))
                .await?;
            for item in items {
                let data: Vec<Packed> = unpack("forget", get_b(&item, "data", "forget")?)?;
                if !data.iter().any(|p| ids.contains(&p.e.event_id)) {
                    continue;
                }
                let pk = get_s(&item, "pk", "forget")?.to_owned();
                let sk = get_s(&item, "sk", "forget")?.to_owned();
                let reference = sk.trim_start_matches("P#").to_owned();
                let day = get_s(&item, "day", "forget")?.to_owned();
                let version = get_n(&item, "v").unwrap_or(1);
                let (gone, kept): (Vec<Packed>, Vec<Packed>) =
                    data.into_iter().partition(|p| ids.contains(&p.e.event_id));
                let pack_deleted = kept.is_empty();
                let op_key = key(&pk, format!("O#{reference}"));
                if pack_deleted {
                    for k in [key(&pk, &sk), op_key] {
                        deletes.push(
                            WriteRequest::builder()
                                .delete_request(
                                    DeleteRequest::builder()
                                        .set_key(Some(k))
                                        .build()
                                        .map_err(|e| StoreError::permanent("forget", e))?,
                                )
                                .build(),
                        );
                    }
                } else {
                    self.rewrite_pack(item, kept, version).await?;
                    self.rewrite_operational(op_key, &ids).await?;
                }
                removed.extend(gone.into_iter().map(|packed| Removed {
                    packed,
                    day: day.clone(),
                    reference: reference.clone(),
                    pack_deleted,
                }));
            }
        }
        batch_write(&self.client, "forget", &self.table, deletes).await?;
        Ok(removed)
    }

    async fn rewrite_pack(
        &self,
        mut item: Item,
        kept: Vec<Packed>,
        version: i64,
    ) -> Result<(), StoreError> {
        let last = kept
            .iter()
            .map(|p| p.e.event_id)
            .max()
            .map(|id| hex_id(&id))
            .unwrap_or_default();
        item.insert("data".into(), b(pack("forget", &kept)?));
        item.insert("last".into(), s(last));
        item.insert("v".into(), n(version + 1));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await
            .map_err(|e| store("forget: the pack changed meanwhile", e))?;
        Ok(())
    }

    async fn rewrite_operational(
        &self,
        op_key: Item,
        ids: &BTreeSet<EventId>,
    ) -> Result<(), StoreError> {
        let Some(mut item) = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(op_key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store("forget", e))?
            .item
        else {
            return Ok(());
        };
        let ops: Vec<OperationalRecord> = unpack("forget", get_b(&item, "data", "forget")?)?;
        let kept: Vec<OperationalRecord> = ops
            .into_iter()
            .filter(|o| !ids.contains(&o.event_id))
            .collect();
        if kept.is_empty() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(op_key))
                .send()
                .await
                .map_err(|e| store("forget", e))?;
        } else {
            item.insert("data".into(), b(pack("forget", &kept)?));
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| store("forget", e))?;
        }
        Ok(())
    }
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

//! `DeliveryLog` on the DeliveryLogTable: the outcomes of one `record` call (one queue
//! message's items for one destination) are one compressed item, never one item per event
//! and destination (DESIGN.md § Cost). A small pointer per call orders a destination's log.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | outcomes | `W#{ws}#L#{minute}` | `{ms}#{destination}#{first event}#{set}` | `data` (deflated JSON of the records), `updated`, `expires_at` |
//! | pointer | `W#{ws}#D#{destination}` | `{updated ms}#{ms}#{first event}#{set}` | `ref_pk`, `ref_sk`, `updated`, `expires_at` |
//!
//! `{minute}` and `{ms}` come from the events' UUIDv7 ids (a message's events share the
//! millisecond of their request); `{set}` is a hash of the call's event ids, so that a retry
//! of the same message overwrites its outcomes while a part split off gets its own item.
//! Readers take, per event and destination, the record with the latest `updated_at`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use futures_util::{stream, StreamExt};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::destination::DestinationId;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventId;
use tracklayer_core::ports::{
    DeliveryCursor, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryRecord, DeliveryStatus, LogOf,
};
use tracklayer_core::workspace::WorkspaceId;

use super::{
    b, batch_get, batch_write, get_b, get_n, get_s, key, n, pack, query_all, s, split_packs, ttl,
    unpack, BatchWrite, Item, Table, EXPIRES_AT,
};
use crate::error::store;

const CONCURRENCY: usize = 8;
const POINTER_PAGE: i32 = 50;

/// Delivery outcomes on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDeliveryLog {
    table: Table,
}

fn millis_of(id: &EventId) -> u64 {
    (id.0.as_u128() >> 80) as u64
}

fn outcomes_pk(ws: &WorkspaceId, ms: u64) -> String {
    format!("W#{ws}#L#{}", ms / 60_000)
}

fn pointers_pk(ws: &WorkspaceId, d: &DestinationId) -> String {
    format!("W#{ws}#D#{d}")
}

/// Is `a` a later outcome than `b` of the same event and destination?
fn later(a: &DeliveryRecord, b: &DeliveryRecord) -> bool {
    (a.updated_at, a.attempts) > (b.updated_at, b.attempts)
}

fn keep_latest(into: &mut HashMap<(DestinationId, EventId), DeliveryRecord>, r: DeliveryRecord) {
    match into.entry((r.destination_id.clone(), r.event_id)) {
        std::collections::hash_map::Entry::Occupied(mut o) => {
            if later(&r, o.get()) {
                o.insert(r);
            }
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(r);
        }
    }
}

impl DynamoDeliveryLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = Table::new(client, table);
        Self { table }
    }

    /// The outcomes items (all destinations, expired or not) of the events' milliseconds.
    async fn items_of(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<Vec<(u64, Vec<Item>)>, StoreError> {
        let millis: BTreeSet<u64> = events.iter().map(millis_of).collect();
        let reads = millis.into_iter().map(|ms| async move {
            let prefix = format!("{ms:012x}#");
            let q = self.table.query_prefix(outcomes_pk(ws, ms), prefix);
            let items = query_all(context, q).await?;
            Ok::<_, StoreError>((ms, items))
        });
        stream::iter(reads)
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Outcome items of one millisecond, of one destination or of all.
    async fn outcomes(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        ms: u64,
        destination: Option<&DestinationId>,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let prefix = match destination {
            Some(d) => format!("{ms:012x}#{d}#"),
            None => format!("{ms:012x}#"),
        };
        let q = self.table.query_prefix(outcomes_pk(ws, ms), prefix);
        let items = query_all(context, q).await?;
        decode(context, &items)
    }
}

fn decode(context: &'static str, items: &[Item]) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut out = Vec::new();
    for item in items {
        let records: Vec<DeliveryRecord> = unpack(context, get_b(item, "data", context)?)?;
        out.extend(records);
    }
    Ok(out)
}

#[async_trait]
impl DeliveryLog for DynamoDeliveryLog {
    async fn record(&self, records: &[DeliveryRecord]) -> Result<(), StoreError> {
        let mut groups: BTreeMap<(WorkspaceId, DestinationId, u64), Vec<&DeliveryRecord>> =
            BTreeMap::new();
        for r in records {
            groups
                .entry((
                    r.workspace_id.clone(),
                    r.destination_id.clone(),
                    millis_of(&r.event_id),
                ))
                .or_default()
                .push(r);
        }
        let mut items = Vec::new();
        for ((ws, dest, ms), mut group) in groups {
            group.sort_by_key(|r| r.event_id);
            for chunk in split_packs("delivery_log", group, |r| *r)? {
                let (outcome, pointer) = items_for(&ws, &dest, ms, &chunk)?;
                items.push(outcome);
                items.push(pointer);
            }
        }
        let (client, table) = (self.table.client(), self.table.name());
        batch_write(
            client,
            "delivery_log",
            table,
            items.into_iter().map(BatchWrite::Put),
        )
        .await
    }

    async fn delivered(
        &self,
        log: LogOf<'_>,
        events: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        let LogOf { ws, destination } = log;
        let wanted: HashSet<EventId> = events.iter().copied().collect();
        let millis: HashSet<u64> = events.iter().map(millis_of).collect();
        let reads = millis
            .into_iter()
            .map(|ms| self.outcomes("delivered", ws, ms, Some(destination)));
        let pages: Vec<Result<Vec<DeliveryRecord>, StoreError>> = stream::iter(reads)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut latest = HashMap::new();
        for page in pages {
            for r in page? {
                if wanted.contains(&r.event_id) {
                    keep_latest(&mut latest, r);
                }
            }
        }
        Ok(events
            .iter()
            .filter(|e| {
                latest
                    .get(&(destination.clone(), **e))
                    .is_some_and(|r| r.status == DeliveryStatus::Delivered && r.expires_at > now)
            })
            .copied()
            .collect())
    }

    async fn for_event(
        &self,
        ws: &WorkspaceId,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut latest = HashMap::new();
        for r in self
            .outcomes("for_event", ws, millis_of(event), None)
            .await?
        {
            if r.event_id == *event {
                keep_latest(&mut latest, r);
            }
        }
        let mut out: Vec<DeliveryRecord> = latest
            .into_values()
            .filter(|r| r.expires_at > now)
            .collect();
        out.sort_by(|a, b| a.destination_id.cmp(&b.destination_id));
        Ok(out)
    }

    /// Reads the destination's pointers newest first, keeping each event's latest record,
    /// until no older pointer can hold a record that belongs on the page: a pointer's
    /// `updated` is the latest of its item's records.
    async fn page(
        &self,
        log: LogOf<'_>,
        query: &DeliveryQuery,
        now: OffsetDateTime,
    ) -> Result<DeliveryPage, StoreError> {
        let LogOf { ws, destination } = log;
        let mut latest = HashMap::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut start: Option<Item> = None;
        // One more than the page, to know whether another page follows.
        let want = query.limit.saturating_add(1);
        let newest_first = |latest: &HashMap<(DestinationId, EventId), DeliveryRecord>| {
            let mut v: Vec<DeliveryRecord> = latest
                .values()
                .filter(|r| r.expires_at > now && query.matches(r))
                .cloned()
                .collect();
            v.sort_by_key(|r| std::cmp::Reverse(DeliveryCursor::of(r).key()));
            v
        };
        loop {
            let page = self
                .table
                .query()
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pointers_pk(ws, destination)))
                .scan_index_forward(false)
                .limit(POINTER_PAGE)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store("page", e))?;
            let pointers = page.items.unwrap_or_default();
            let oldest_pointer = pointers.iter().filter_map(|p| get_n(p, "updated")).min();
            let mut keys = Vec::new();
            for p in &pointers {
                let target = (
                    get_s(p, "ref_pk", "page")?.to_owned(),
                    get_s(p, "ref_sk", "page")?.to_owned(),
                );
                if seen.insert(target.clone()) {
                    keys.push(key(target.0, target.1));
                }
            }
            let (client, table) = (self.table.client(), self.table.name());
            let items = batch_get(client, "page", table, keys, true, None).await?;
            for r in decode("page", &items)? {
                if r.destination_id == *destination {
                    keep_latest(&mut latest, r);
                }
            }
            let done = match page.last_evaluated_key {
                Some(k) if !k.is_empty() => {
                    start = Some(k);
                    false
                }
                _ => true,
            };
            // Older pointers cannot hold anything newer than what is already the want-th.
            let sorted = newest_first(&latest);
            let enough = sorted.len() >= want
                && oldest_pointer.is_some_and(|p| p < unix_millis(sorted[want - 1].updated_at));
            if done || enough {
                let mut records = sorted;
                let next = if records.len() > query.limit {
                    records.truncate(query.limit);
                    records.last().map(DeliveryCursor::of)
                } else {
                    None
                };
                return Ok(DeliveryPage { records, next });
            }
        }
    }

    /// DynamoDB's TTL deletes expired items (late); reads filter them meanwhile.
    async fn sweep(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn for_events(
        &self,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let wanted: HashSet<EventId> = events.iter().copied().collect();
        let mut latest = HashMap::new();
        for (_, items) in self.items_of("for_events", ws, events).await? {
            for r in decode("for_events", &items)? {
                if wanted.contains(&r.event_id) {
                    keep_latest(&mut latest, r);
                }
            }
        }
        let mut out: Vec<DeliveryRecord> = latest.into_values().collect();
        out.sort_by(|a, b| (a.event_id, &a.destination_id).cmp(&(b.event_id, &b.destination_id)));
        Ok(out)
    }

    /// Takes the events' records out of their outcomes items: an item left empty goes with
    /// its pointer; another is written again under the key of what it keeps (its key names
    /// its first event and a hash of its event ids), with a new pointer.
    async fn erase_events(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<u64, StoreError> {
        let gone: HashSet<EventId> = events.iter().copied().collect();
        let mut erased: HashSet<(DestinationId, EventId)> = HashSet::new();
        let mut deletes = Vec::new();
        let mut puts = Vec::new();
        for (ms, items) in self.items_of("erase_events", ws, events).await? {
            for item in items {
                let records: Vec<DeliveryRecord> =
                    unpack("erase_events", get_b(&item, "data", "erase_events")?)?;
                if !records.iter().any(|r| gone.contains(&r.event_id)) {
                    continue;
                }
                let sk = get_s(&item, "sk", "erase_events")?.to_owned();
                let dest = records[0].destination_id.clone();
                let updated = get_n(&item, "updated").unwrap_or(0);
                let (out, kept): (Vec<DeliveryRecord>, Vec<DeliveryRecord>) = records
                    .into_iter()
                    .partition(|r| gone.contains(&r.event_id));
                erased.extend(out.into_iter().map(|r| (r.destination_id, r.event_id)));
                let pk = outcomes_pk(ws, ms);
                deletes.push(key(&pk, &sk));
                deletes.push(key(
                    pointers_pk(ws, &dest),
                    format!("{updated:013}#{}", sk_tail(&sk, &dest)),
                ));
                if !kept.is_empty() {
                    let refs: Vec<&DeliveryRecord> = kept.iter().collect();
                    let (outcome, pointer) = items_for(ws, &dest, ms, &refs)?;
                    puts.push(outcome);
                    puts.push(pointer);
                }
            }
        }
        // New items first: a failure in between leaves a record twice, never lost.
        let (client, table) = (self.table.client(), self.table.name());
        let (puts, deletes) = (
            puts.into_iter().map(BatchWrite::Put),
            deletes.into_iter().map(BatchWrite::Delete),
        );
        batch_write(client, "erase_events", table, puts).await?;
        batch_write(client, "erase_events", table, deletes).await?;
        Ok(erased.len() as u64)
    }
}

/// `{ms}#{first}#{set}` of an outcomes sort key `{ms}#{destination}#{first}#{set}`.
fn sk_tail(sk: &str, dest: &DestinationId) -> String {
    sk.replacen(&format!("#{dest}#"), "#", 1)
}

/// The outcomes item of one call's records (one destination, one millisecond) and its
/// pointer.
fn items_for(
    ws: &WorkspaceId,
    dest: &DestinationId,
    ms: u64,
    chunk: &[&DeliveryRecord],
) -> Result<(Item, Item), StoreError> {
    let mut set = Sha256::new();
    for r in chunk {
        set.update(r.event_id.0.as_bytes());
    }
    let set = hex::encode(&set.finalize()[..4]);
    let first = chunk
        .iter()
        .map(|r| r.event_id)
        .min()
        .map(|e| e.0.simple().to_string())
        .unwrap_or_default();
    let updated = chunk
        .iter()
        .map(|r| unix_millis(r.updated_at))
        .max()
        .unwrap_or(0);
    let expires = chunk.iter().map(|r| ttl(r.expires_at)).max().unwrap_or(0);
    let pk = outcomes_pk(ws, ms);
    let sk = format!("{ms:012x}#{dest}#{first}#{set}");
    let mut outcome = key(&pk, &sk);
    outcome.insert("data".into(), b(pack("delivery_log", &chunk)?));
    outcome.insert("updated".into(), n(updated));
    outcome.insert(EXPIRES_AT.into(), n(expires));
    let mut pointer = key(
        pointers_pk(ws, dest),
        format!("{updated:013}#{ms:012x}#{first}#{set}"),
    );
    pointer.insert("ref_pk".into(), s(pk));
    pointer.insert("ref_sk".into(), s(sk));
    pointer.insert("updated".into(), n(updated));
    pointer.insert(EXPIRES_AT.into(), n(expires));
    Ok((outcome, pointer))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use time::macros::datetime;
    use tracklayer_core::event::MessageId;
    use tracklayer_core::workspace::Region;
    use uuid::Uuid;

    use super::*;

    /// DynamoDB's item size: attribute names plus values.
    fn size(item: &Item) -> usize {
        item.iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                        AttributeValue::B(b) => b.as_ref().len(),
                        _ => 1,
                    }
            })
            .sum()
    }

    /// The write units of the outcomes item of `n` records of one message (one millisecond),
    /// with and without a Segment messageId (analytics.js: `ajs-next-` and 32 hex digits).
    fn write_units(n: usize) -> (usize, usize, usize, usize) {
        let at = datetime!(2026-03-01 12:00:00.123 UTC);
        let ws = WorkspaceId::new(Region::Us, "0a1b2c3d4e5f");
        let dest = DestinationId::new("9f8e7d6c5b4a");
        let base = Uuid::now_v7().as_u128();
        let records: Vec<DeliveryRecord> = (0..n)
            .map(|i| {
                let e = EventId(Uuid::from_u128(base + i as u128));
                DeliveryRecord {
                    workspace_id: ws.clone(),
                    destination_id: dest.clone(),
                    event_id: e,
                    message_id: Some(
                        MessageId::parse(&format!(
                            "ajs-next-{}",
                            &hex::encode(Sha256::digest((base + i as u128).to_le_bytes()))[..32]
                        ))
                        .unwrap(),
                    ),
                    status: DeliveryStatus::Delivered,
                    attempts: 1,
                    next_attempt_at: None,
                    last_http_status: Some(200),
                    last_error: None,
                    updated_at: at,
                    expires_at: at + time::Duration::days(30),
                }
            })
            .collect();
        let without: Vec<DeliveryRecord> = records
            .iter()
            .cloned()
            .map(|r| DeliveryRecord {
                message_id: None,
                ..r
            })
            .collect();
        let ms = millis_of(&records[0].event_id);
        let item = |v: &[DeliveryRecord]| {
            let refs: Vec<&DeliveryRecord> = v.iter().collect();
            size(&items_for(&ws, &dest, ms, &refs).unwrap().0)
        };
        let (a, b) = (item(&without), item(&records));
        (a, b, a.div_ceil(1024), b.div_ceil(1024))
    }

    #[test]
    fn message_ids_keep_the_outcomes_of_a_message_of_up_to_25_events_in_one_write_unit() {
        for n in [1, 5, 10, 25] {
            let (without, with, wu_without, wu_with) = write_units(n);
            println!("{n} records: {without} B → {with} B ({wu_without} → {wu_with} WU)");
            assert_eq!(wu_with, 1, "{n} records: {with} bytes");
        }
        // Measured (random ids do not compress): 100 records 1 → 3 WU, 500 records 2 → 13 WU.
        for n in [100, 500] {
            let (without, with, wu_without, wu_with) = write_units(n);
            println!("{n} records: {without} B → {with} B ({wu_without} → {wu_with} WU)");
        }
    }
}

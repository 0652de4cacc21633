//! DynamoDB stores. Shared helpers: attribute values, JSON documents, compressed packs,
//! paginated queries and batch writes with their unprocessed-items retries.

pub mod audit;
pub mod control;
pub mod delivery_log;
pub mod dsr;
pub mod events;
pub mod sessions;
pub mod stats;
mod table;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;
use tracklayer_core::error::StoreError;

use crate::error::{condition_held, corrupt, store};

pub(crate) use table::Table;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The TTL attribute (Unix seconds) of every table.
pub(crate) const EXPIRES_AT: &str = "expires_at";

/// BatchWriteItem takes at most 25 requests; BatchGetItem at most 100 keys.
const BATCH_WRITE_MAX: usize = 25;
const BATCH_GET_MAX: usize = 100;
/// Rounds of retrying unprocessed items before giving up with a transient error.
const BATCH_ROUNDS: u32 = 8;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn b(v: Vec<u8>) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}

/// TTL value of a time: Unix seconds, rounded up so that DynamoDB never deletes early.
pub(crate) fn ttl(t: OffsetDateTime) -> i64 {
    let secs = t.unix_timestamp();
    if t.nanosecond() > 0 {
        secs + 1
    } else {
        secs
    }
}

/// Items stamped at once (`stamp_expiry`).
const STAMP_CONCURRENCY: usize = 8;

/// Sets `expires_at` of existing items (found by `pk`, `sk`) to `until` (Unix seconds), one
/// `UpdateItem` each under `attribute_exists(pk)`, a few at a time; an item deleted in the
/// meantime is left deleted. (`UpdateItem` each rather than `BatchWriteItem`: a batch can only
/// put whole items, and the admin role has no `BatchWriteItem` on the ControlTable.)
pub(crate) async fn stamp_expiry(
    client: &Client,
    context: &'static str,
    table: &str,
    items: Vec<Item>,
    until: i64,
) -> Result<(), StoreError> {
    use futures_util::{stream, StreamExt, TryStreamExt};
    stream::iter(items)
        .map(|item| async move {
            let item_key = key(get_s(&item, "pk", context)?, get_s(&item, "sk", context)?);
            let sent = client
                .update_item()
                .table_name(table)
                .set_key(Some(item_key))
                .update_expression("SET expires_at = :t")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":t", n(until))
                .send()
                .await;
            condition_held(context, sent).map(drop)
        })
        .buffer_unordered(STAMP_CONCURRENCY)
        .try_collect()
        .await
}

/// One item by key, read strongly consistently.
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    context: &'static str,
    item_key: Item,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(item_key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store(context, e))?;
    Ok(out.item)
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn get_s<'a>(
    item: &'a Item,
    name: &str,
    context: &'static str,
) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(context, format!("attribute {name} missing"))),
    }
}

pub(crate) fn get_n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(crate) fn get_b<'a>(
    item: &'a Item,
    name: &str,
    context: &'static str,
) -> Result<&'a [u8], StoreError> {
    match item.get(name) {
        Some(AttributeValue::B(v)) => Ok(v.as_ref()),
        _ => Err(corrupt(context, format!("attribute {name} missing"))),
    }
}

/// True when the item's TTL attribute says it is gone at `now` (DynamoDB deletes late).
pub(crate) fn expired(item: &Item, now: OffsetDateTime) -> bool {
    get_n(item, EXPIRES_AT).is_some_and(|t| t <= now.unix_timestamp())
}

pub(crate) fn to_json<T: Serialize>(context: &'static str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::permanent(context, e))
}

pub(crate) fn from_json<T: DeserializeOwned>(
    context: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt(context, e))
}

/// The JSON document stored in an item's `doc` attribute.
pub(crate) fn doc<T: DeserializeOwned>(
    item: &Item,
    context: &'static str,
) -> Result<T, StoreError> {
    from_json(context, get_s(item, "doc", context)?)
}

/// Most bytes a pack may decompress to: DynamoDB items are at most 400 KB, and deflate does
/// not gain more than about 20x on our JSON.
const MAX_INFLATED: u64 = 16 * 1024 * 1024;

/// Raw JSON per pack before compression; keeps an item well under DynamoDB's 400 KB.
pub(crate) const PACK_RAW_MAX: usize = 300 * 1024;

/// Splits `members`, in their order, into packs of at most [`PACK_RAW_MAX`] bytes of JSON
/// (`packed` gives the value a member adds to its pack); a member larger than that makes a
/// pack alone.
pub(crate) fn split_packs<'a, M, T: Serialize + 'a>(
    context: &'static str,
    members: impl IntoIterator<Item = M>,
    packed: impl Fn(&M) -> &'a T,
) -> Result<Vec<Vec<M>>, StoreError> {
    let mut packs = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for m in members {
        let len = serde_json::to_vec(packed(&m))
            .map_err(|e| StoreError::permanent(context, e))?
            .len();
        if !current.is_empty() && size + len > PACK_RAW_MAX {
            packs.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(m);
    }
    if !current.is_empty() {
        packs.push(current);
    }
    Ok(packs)
}

/// Deflate-compressed JSON: packs of events, operational records, delivery outcomes.
pub(crate) fn pack<T: Serialize>(context: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(v).map_err(|e| StoreError::permanent(context, e))?;
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(json.len() / 3),
        flate2::Compression::default(),
    );
    enc.write_all(&json)
        .and_then(|()| enc.finish())
        .map_err(|e| StoreError::permanent(context, e))
}

pub(crate) fn unpack<T: DeserializeOwned>(
    context: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let mut json = Vec::with_capacity(bytes.len() * 4);
    flate2::read::DeflateDecoder::new(bytes)
        .take(MAX_INFLATED)
        .read_to_end(&mut json)
        .map_err(|e| StoreError::corrupt(context, e))?;
    serde_json::from_slice(&json).map_err(|e| StoreError::corrupt(context, e))
}

/// A consistent query of the items of partition `pk` whose sort key begins with `prefix`.
pub(crate) fn query_prefix(
    client: &Client,
    table: &str,
    pk: impl Into<String>,
    prefix: impl Into<String>,
) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(":pk", s(pk))
        .expression_attribute_values(":p", s(prefix))
        .consistent_read(true)
}

/// The first item a query finds (it reads one).
pub(crate) async fn query_first(
    context: &'static str,
    q: QueryFluentBuilder,
) -> Result<Option<Item>, StoreError> {
    let out = q.limit(1).send().await.map_err(|e| store(context, e))?;
    Ok(out.items.unwrap_or_default().into_iter().next())
}

/// All pages of a query.
pub(crate) async fn query_all(
    context: &'static str,
    q: QueryFluentBuilder,
) -> Result<Vec<Item>, StoreError> {
    query_up_to(context, q, usize::MAX, |_| None, |item| Ok(Some(item))).await
}

/// Pages of a query until `limit` items are kept (or none are left): `keep` decodes an item,
/// or skips it with `None`. `page_size` may set each page's `Limit` from how many are still
/// wanted (with `None`, the query's own, if any).
pub(crate) async fn query_up_to<T>(
    context: &'static str,
    q: QueryFluentBuilder,
    limit: usize,
    page_size: impl Fn(usize) -> Option<i32>,
    mut keep: impl FnMut(Item) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    while out.len() < limit {
        let mut request = q.clone().set_exclusive_start_key(start.take());
        if let Some(size) = page_size(limit - out.len()) {
            request = request.limit(size);
        }
        let page = request.send().await.map_err(|e| store(context, e))?;
        for item in page.items.unwrap_or_default() {
            if let Some(kept) = keep(item)? {
                out.push(kept);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    Ok(out)
}

/// Writes `items` as one TransactWriteItems: `Ok(false)` if DynamoDB cancelled it for one of
/// the cancellation reason `codes` (a condition failed: `ConditionalCheckFailed`; a concurrent
/// transaction: `TransactionConflict`), `Ok(true)` if it committed.
pub(crate) async fn transact_write(
    client: &Client,
    context: &'static str,
    items: Vec<TransactWriteItem>,
    codes: &[&str],
) -> Result<bool, StoreError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if matches!(
                e.err(),
                TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons().iter()
                        .any(|r| r.code().is_some_and(|code| codes.contains(&code)))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(store(context, e)),
    }
}

/// One request of a BatchWriteItem call (no conditions).
#[derive(Debug, Clone)]
pub(crate) enum BatchWrite {
    /// Puts an item, replacing any item of its key.
    Put(Item),
    /// Deletes the item of a key.
    Delete(Item),
}

impl BatchWrite {
    fn request(self, context: &'static str) -> Result<WriteRequest, StoreError> {
        let built = match self {
            BatchWrite::Put(item) => PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put)),
            BatchWrite::Delete(key) => DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map(|delete| WriteRequest::builder().delete_request(delete)),
        };
        Ok(built
            .map_err(|e| StoreError::permanent(context, e))?
            .build())
    }
}

/// Puts and deletes items with BatchWriteItem, 25 at a time, retrying what DynamoDB leaves
/// unprocessed with a short backoff.
pub(crate) async fn batch_write(
    client: &Client,
    context: &'static str,
    table: &str,
    writes: impl IntoIterator<Item = BatchWrite>,
) -> Result<(), StoreError> {
    let requests = writes
        .into_iter()
        .map(|w| w.request(context))
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in requests.chunks(BATCH_WRITE_MAX) {
        let mut pending = chunk.to_vec();
        for round in 0..BATCH_ROUNDS {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| store(context, e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if round + 1 == BATCH_ROUNDS {
                return Err(StoreError::transient(
                    context,
                    format!("{} writes left unprocessed", pending.len()),
                ));
            }
            tokio::time::sleep(backoff(round)).await;
        }
    }
    Ok(())
}

/// Reads items by key with BatchGetItem, 100 at a time; missing items are left out.
pub(crate) async fn batch_get(
    client: &Client,
    context: &'static str,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
    projection: Option<&str>,
) -> Result<Vec<Item>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH_GET_MAX) {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent)
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(|e| StoreError::permanent(context, e))?,
        );
        let mut round = 0;
        while let Some(request) = pending.take() {
            let res = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| store(context, e))?;
            if let Some(mut found) = res.responses {
                out.extend(found.remove(table).unwrap_or_default());
            }
            pending = res
                .unprocessed_keys
                .and_then(|mut m| m.remove(table))
                .filter(|k| !k.keys().is_empty());
            if pending.is_some() {
                round += 1;
                if round == BATCH_ROUNDS {
                    return Err(StoreError::transient(context, "reads left unprocessed"));
                }
                tokio::time::sleep(backoff(round)).await;
            }
        }
    }
    Ok(out)
}

/// 25 ms, 50 ms, 100 ms, ... at most 1.6 s, with up to 50 % jitter.
pub(crate) fn backoff(round: u32) -> Duration {
    use rand::Rng;
    let base = 25u64 << round.min(6);
    Duration::from_millis(base + rand::thread_rng().gen_range(0..=base / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ttl_rounds_up_to_the_next_second() {
        assert_eq!(ttl(datetime!(2026-01-01 00:00:00 UTC)), 1_767_225_600);
        assert_eq!(ttl(datetime!(2026-01-01 00:00:00.001 UTC)), 1_767_225_601);
    }

    #[test]
    fn a_pack_round_trips_and_is_smaller_than_its_json() {
        let v: Vec<serde_json::Value> = (0..100)
            .map(
                |i| serde_json::json!({"workspace_id": "ws_us_abc", "n": i, "status": "delivered"}),
            )
            .collect();
        let packed = pack("t", &v).unwrap();
        assert!(packed.len() * 4 < serde_json::to_vec(&v).unwrap().len());
        let back: Vec<serde_json::Value> = unpack("t", &packed).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let err = unpack::<Vec<u8>>("t", b"not deflate").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}

//! `AuditLog` on the AuditTable.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | entry | `W#{ws}` | `{seq:012}` | `doc` (the sealed entry, JSON), `at` (ms), `actor`, `action` |
//! | head  | `W#{ws}` | `#HEAD` (sorts before every entry) | `seq`, `doc` (an `AuditHead`, JSON) |
//!
//! Appending reads the head (consistent `GetItem`) and writes the entry and the new head in one
//! `TransactWriteItems`: the entry under `attribute_not_exists(sk)`, the head under
//! `seq = :previous` (or `attribute_not_exists(sk)` when the chain starts). Of two concurrent
//! writers one wins, the other re-reads the head and tries again, so the chain is gapless and
//! never forks. Keyed entries carry no `expires_at`: DynamoDB's TTL would delete them without a
//! checkpoint. Retention is `retire`, which the append path runs for its workspace after each
//! append (one query of a few items when nothing is due): it signs the checkpoint into the
//! head first, then deletes what it covers, so an interrupted step leaves only entries the
//! checkpoint already covers, which the next step deletes.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;
use tracklayer_core::audit::key::store_error;
use tracklayer_core::audit::{
    plan_retirement, retention, AuditEntry, AuditFilter, AuditHead, AuditKeys, NewAuditEntry,
    StoredEntry, GENESIS_ACTION,
};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::{AuditLog, Keyring};
use tracklayer_core::workspace::WorkspaceId;

use super::{
    backoff, doc, get_n, get_s, key, n, query_first, query_up_to, s, to_json, transact_write, Item,
    Table,
};
use crate::error::store;

/// Attempts at taking the next sequence number before reporting contention.
const APPEND_ATTEMPTS: u32 = 64;
/// Entries read per page while filtering or verifying.
const LIST_PAGE: i32 = 200;
/// Entries looked at per retention step (one query; most steps find nothing to remove).
const RETIRE_PAGE: usize = 25;
const HEAD_SK: &str = "#HEAD";

/// The keyed audit chain on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    table: Table,
    keys: Arc<AuditKeys>,
}

fn pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}")
}

fn sk(seq: u64) -> String {
    format!("{seq:012}")
}

fn entry_item(e: &AuditEntry) -> Result<Item, StoreError> {
    let mut item = key(pk(&e.workspace_id), sk(e.seq));
    item.insert("doc".into(), s(to_json("audit_append", e)?));
    item.insert("at".into(), n(unix_millis(e.time)));
    item.insert("actor".into(), s(e.actor.clone()));
    item.insert("action".into(), s(e.action.clone()));
    Ok(item)
}

fn stored_entry(item: &Item) -> Result<StoredEntry, StoreError> {
    const CX: &str = "audit_stored";
    let entry: AuditEntry = doc(item, CX)?;
    let seq = get_s(item, "sk", CX)?
        .parse::<u64>()
        .map_err(|e| StoreError::corrupt(CX, e))?;
    Ok(StoredEntry::new(
        entry,
        seq,
        get_n(item, "at").unwrap_or(i64::MIN),
        get_s(item, "actor", CX).unwrap_or_default(),
        get_s(item, "action", CX).unwrap_or_default(),
    ))
}

impl DynamoAuditLog {
    /// The audit key is opened (and created) through `keyring` with the platform key.
    pub fn new(client: Client, table: impl Into<String>, keyring: Arc<dyn Keyring>) -> Self {
        Self {
            table: Table::new(client, table),
            keys: Arc::new(AuditKeys::new(keyring)),
        }
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(item))
            .condition_expression(condition);
        if !values.is_empty() {
            put = put.expression_attribute_names("#seq", "seq");
        }
        for (name, v) in values {
            put = put.expression_attribute_values(*name, n(*v));
        }
        let put = put
            .build()
            .map_err(|e| StoreError::permanent("audit_append", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn head_item(&self, ws: &WorkspaceId, head: &AuditHead) -> Result<Item, StoreError> {
        let mut item = key(pk(ws), HEAD_SK);
        item.insert("seq".into(), n(head.seq as i64));
        item.insert("doc".into(), s(to_json("audit_head", head)?));
        Ok(item)
    }

    /// A consistent query of the workspace's entries after the one numbered `after` (0: from
    /// the first), in sequence order; the head's sort key (`#HEAD`) sorts before them all.
    fn entries_after(&self, ws: &WorkspaceId, after: u64) -> QueryFluentBuilder {
        self.table
            .query()
            .key_condition_expression("pk = :pk AND sk > :after")
            .expression_attribute_values(":pk", s(pk(ws)))
            .expression_attribute_values(":after", s(sk(after)))
            .consistent_read(true)
    }

    /// The last entry of a legacy chain (one written before the head existed).
    async fn legacy_last(&self, ws: &WorkspaceId) -> Result<Option<AuditEntry>, StoreError> {
        let newest_first = self.entries_after(ws, 0).scan_index_forward(false);
        let last = query_first("audit_append", newest_first).await?;
        last.map(|i| doc(&i, "audit_append")).transpose()
    }

    async fn query_entries(
        &self,
        ws: &WorkspaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let page = LIST_PAGE.min(limit as i32);
        let q = self.entries_after(ws, after).limit(page);
        query_up_to("audit_stored", q, limit, |_| None, |item| Ok(Some(item))).await
    }

    async fn try_append(
        &self,
        entry: &NewAuditEntry,
        at: OffsetDateTime,
    ) -> Result<Result<AuditEntry, AuditEntry>, StoreError> {
        let ws = &entry.workspace_id;
        let mut items = Vec::with_capacity(3);
        let (key, head, head_condition) = match self.head(ws).await? {
            Some(h) => {
                let key = self
                    .keys
                    .open(ws, &h.key)
                    .await
                    .map_err(|e| store_error("audit_key", e))?;
                (key, h, "#seq = :prev")
            }
            None => {
                let (key, wrapped) = self
                    .keys
                    .create(ws)
                    .await
                    .map_err(|e| store_error("audit_key", e))?;
                let legacy = self.legacy_last(ws).await?;
                let genesis = AuditEntry::genesis(
                    ws,
                    legacy.as_ref().map(|e| (e.seq, e.hash.as_str())),
                    at,
                    &key,
                );
                items.push(self.put(entry_item(&genesis)?, "attribute_not_exists(sk)", &[])?);
                let head = AuditHead {
                    seq: genesis.seq,
                    hash: genesis.hash.clone(),
                    genesis_seq: genesis.seq,
                    key: wrapped,
                    checkpoint: None,
                };
                (key, head, "attribute_not_exists(sk)")
            }
        };
        let e = AuditEntry::seal(entry.clone(), (head.seq, &head.hash), at, &key);
        items.push(self.put(entry_item(&e)?, "attribute_not_exists(sk)", &[])?);
        let prev: &[(&str, i64)] = if head_condition == "#seq = :prev" {
            &[(":prev", head.seq as i64)]
        } else {
            &[]
        };
        let head_item = self.head_item(ws, &head.after(&e))?;
        items.push(self.put(head_item, head_condition, prev)?);
        let committed = transact_write(
            self.table.client(),
            "audit_append",
            items,
            &["ConditionalCheckFailed"],
        )
        .await?;
        Ok(if committed { Ok(e) } else { Err(e) })
    }
}

#[async_trait]
impl AuditLog for DynamoAuditLog {
    async fn append(
        &self,
        entry: NewAuditEntry,
        at: OffsetDateTime,
    ) -> Result<AuditEntry, StoreError> {
        let ws = entry.workspace_id.clone();
        for attempt in 0..APPEND_ATTEMPTS {
            match self.try_append(&entry, at).await? {
                Ok(e) => {
                    // Retention rides on the append path (one small query when there is
                    // nothing to remove); a failure leaves the entries for the next append.
                    if let Err(err) = self.retire(&ws, at).await {
                        tracing::warn!(error = %err, "audit retention step failed; will retry");
                    }
                    return Ok(e);
                }
                Err(lost) => {
                    // Our own earlier try may have landed (a retried request): then it is ours.
                    if let Some(h) = self.head(&ws).await? {
                        if h.seq == lost.seq && h.hash == lost.hash {
                            return Ok(lost);
                        }
                    }
                    tokio::time::sleep(backoff(attempt.min(3))).await;
                }
            }
        }
        Err(StoreError::transient(
            "audit_append",
            format!("no free sequence number after {APPEND_ATTEMPTS} attempts"),
        ))
    }

    async fn list(
        &self,
        ws: &WorkspaceId,
        filter: &AuditFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = filter.limit.clamp(1, 10_000);
        // By the entry's own time, never by an expiry attribute; the genesis is no mutation.
        let mut conditions = vec!["#at > :cutoff".to_owned(), "#action <> :genesis".to_owned()];
        let mut q = self
            .entries_after(ws, filter.after.unwrap_or(0))
            .expression_attribute_values(":cutoff", n(unix_millis(now - retention())))
            .expression_attribute_values(":genesis", s(GENESIS_ACTION))
            .expression_attribute_names("#at", "at")
            .expression_attribute_names("#action", "action")
            .limit(LIST_PAGE);
        if let Some(actor) = &filter.actor {
            conditions.push("#actor = :actor".into());
            q = q
                .expression_attribute_names("#actor", "actor")
                .expression_attribute_values(":actor", s(actor.clone()));
        }
        if let Some(action) = &filter.action {
            conditions.push("#action = :action".into());
            q = q.expression_attribute_values(":action", s(action.clone()));
        }
        if let Some(since) = filter.since {
            conditions.push("#at >= :since".into());
            q = q.expression_attribute_values(":since", n(unix_millis(since)));
        }
        if let Some(until) = filter.until {
            conditions.push("#at <= :until".into());
            q = q.expression_attribute_values(":until", n(unix_millis(until)));
        }
        let q = q.filter_expression(conditions.join(" AND "));
        query_up_to(
            "audit_list",
            q,
            limit,
            |_| None,
            |item| {
                let e: AuditEntry = doc(&item, "audit_list")?;
                Ok(e.is_retained(now).then_some(e))
            },
        )
        .await
    }

    async fn head(&self, ws: &WorkspaceId) -> Result<Option<AuditHead>, StoreError> {
        self.table.get_doc("audit_head", key(pk(ws), HEAD_SK)).await
    }

    async fn stored(
        &self,
        ws: &WorkspaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.query_entries(ws, after, limit.clamp(1, 10_000))
            .await?
            .iter()
            .map(stored_entry)
            .collect()
    }

    async fn retire(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<u64, StoreError> {
        let Some(head) = self.head(ws).await? else {
            return Ok(0);
        };
        let floor = head.checkpoint.as_ref().map_or(0, |c| c.seq);
        // From the start: entries at or below the checkpoint are what an interrupted step
        // left behind (the checkpoint is written before the deletes).
        let old = self.stored(ws, 0, RETIRE_PAGE).await?;
        let mut through = floor;
        let first_fresh = old.iter().find(|s| s.entry.seq > floor);
        if first_fresh.is_some_and(|s| !s.entry.is_retained(now)) {
            let audit_key = self
                .keys
                .open(ws, &head.key)
                .await
                .map_err(|e| store_error("audit_retire", e))?;
            if let Some(cp) = plan_retirement(ws, &head, &audit_key, &old, now) {
                through = cp.seq;
                let mut next = head.clone();
                next.checkpoint = Some(cp);
                // The checkpoint first, and only onto the head we read: if an append moved
                // it meanwhile, a later step retires.
                let written = self
                    .table
                    .put_item()
                    .set_item(Some(self.head_item(ws, &next)?))
                    .condition_expression("#seq = :seq")
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_values(":seq", n(head.seq as i64))
                    .send()
                    .await;
                match written.map_err(|e| store("audit_retire", e)) {
                    Ok(_) => {}
                    Err(StoreError::Conflict(_)) => through = floor,
                    Err(other) => return Err(other),
                }
            }
        }
        let keys: Vec<Item> = old
            .iter()
            .filter(|s| s.entry.seq <= through)
            .map(|s| key(pk(ws), sk(s.entry.seq)))
            .collect();
        let removed = keys.len() as u64;
        // DeleteItem (not BatchWriteItem, which could also put): the functions' IAM policies
        // allow the audit table GetItem, Query, PutItem and DeleteItem only.
        for k in keys {
            self.table.delete("audit_retire", k).await?;
        }
        Ok(removed)
    }

    fn keys(&self) -> &AuditKeys {
        &self.keys
    }
}

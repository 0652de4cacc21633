//! `AuditLog` on the AuditTable: pk `W#{ws}`, sk `{seq:012}`, the entry as JSON in `doc`.
//!
//! Appending reads the chain's head (consistent, newest first, one item) and puts entry
//! `seq + 1` under `attribute_not_exists(sk)`: of two concurrent writers one wins, the other
//! re-reads the head and tries again, so the chain is gapless and never forks.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;
use tracklayer_core::audit::{AuditEntry, AuditFilter, NewAuditEntry, RETENTION_DAYS};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::AuditLog;
use tracklayer_core::workspace::WorkspaceId;

use super::{backoff, doc, key, n, s, to_json, EXPIRES_AT};
use crate::error::store;

/// Attempts at taking the next sequence number before reporting contention.
const APPEND_ATTEMPTS: u32 = 64;
/// Entries read per page while filtering.
const LIST_PAGE: i32 = 200;

/// The hash-chained audit log on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
}

fn pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}")
}

fn sk(seq: u64) -> String {
    format!("{seq:012}")
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn head(&self, ws: &WorkspaceId) -> Result<Option<AuditEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk(ws)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store("audit_append", e))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(|i| doc(i, "audit_append"))
            .transpose()
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
            let head = self.head(&ws).await?;
            let e = AuditEntry::chain(entry.clone(), head.as_ref(), at);
            let mut item = key(pk(&ws), sk(e.seq));
            item.insert("doc".into(), s(to_json("audit_append", &e)?));
            item.insert("at".into(), n(unix_millis(e.time)));
            item.insert("actor".into(), s(e.actor.clone()));
            item.insert("action".into(), s(e.action.clone()));
            item.insert(
                EXPIRES_AT.into(),
                n(super::ttl(at + time::Duration::days(RETENTION_DAYS))),
            );
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(sk)")
                .send()
                .await;
            match put.map_err(|err| store("audit_append", err)) {
                Ok(_) => return Ok(e),
                Err(StoreError::Conflict(_)) => {
                    // Our own earlier try may have landed (a retried request): then it is ours.
                    if let Some(now_head) = self.head(&ws).await? {
                        if now_head.seq == e.seq && now_head.hash == e.hash {
                            return Ok(e);
                        }
                    }
                    tokio::time::sleep(backoff(attempt.min(3))).await;
                }
                Err(other) => return Err(other),
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
        let mut conditions = vec![format!("{EXPIRES_AT} > :now")];
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk > :after")
            .expression_attribute_values(":pk", s(pk(ws)))
            .expression_attribute_values(":after", s(sk(filter.after.unwrap_or(0))))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .consistent_read(true)
            .limit(LIST_PAGE);
        if let Some(actor) = &filter.actor {
            conditions.push("#actor = :actor".into());
            q = q
                .expression_attribute_names("#actor", "actor")
                .expression_attribute_values(":actor", s(actor.clone()));
        }
        if let Some(action) = &filter.action {
            conditions.push("#action = :action".into());
            q = q
                .expression_attribute_names("#action", "action")
                .expression_attribute_values(":action", s(action.clone()));
        }
        if let Some(since) = filter.since {
            conditions.push("#at >= :since".into());
            q = q.expression_attribute_values(":since", n(unix_millis(since)));
        }
        if let Some(until) = filter.until {
            conditions.push("#at <= :until".into());
            q = q.expression_attribute_values(":until", n(unix_millis(until)));
        }
        if filter.since.is_some() || filter.until.is_some() {
            q = q.expression_attribute_names("#at", "at");
        }
        let q = q.filter_expression(conditions.join(" AND "));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = q
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store("audit_list", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(doc(&item, "audit_list")?);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

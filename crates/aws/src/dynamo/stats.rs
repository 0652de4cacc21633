//! `Stats` on the DeliveryLogTable: one item per workspace and 5-minute bucket, added to by
//! one `UpdateItem` with `ADD` per delta (one per ingest request, one per deliver invocation's
//! receive: `tracklayer_core::stats::StatsSink::batch`), never one write per event and
//! destination (DESIGN.md § Cost).
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | bucket | `W#{ws}#S` | `{bucket start, Unix seconds, 12 digits}` | one number per counter, named by its code (`in.ac`, `in.rj.ty`, `dst_….dl`), `expires_at` |
//!
//! Counter names are short because a write is billed by the item's size (1 unit per started
//! KB of the item before or after): a bucket with three destinations' received, routed and
//! delivered counters and the ingest totals is about 0.4 KB, so each write costs 1 unit. The
//! ingest role may only `UpdateItem` items whose key begins `W#` and ends `#S` there
//! (template.yaml, `StatsAdd`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;
use tracklayer_core::error::StoreError;
use tracklayer_core::stats::{
    bucket_expires_at, bucket_start, StatsBucket, StatsDelta, StatsKey, StatsQuery, StatsReader,
    StatsRecorder,
};
use tracklayer_core::workspace::WorkspaceId;

use super::{expired, get_s, key, n, query_all, s, ttl, Item, Table, EXPIRES_AT};
use crate::error::{corrupt, store};

/// The overview's counters on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStats {
    table: Table,
}

fn stats_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#S")
}

fn stats_sk(t: OffsetDateTime) -> String {
    format!("{:012}", t.unix_timestamp())
}

impl DynamoStats {
    /// Counters in `table` (the stack's delivery-log table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = Table::new(client, table);
        Self { table }
    }
}

#[async_trait]
impl StatsRecorder for DynamoStats {
    async fn record(
        &self,
        ws: &WorkspaceId,
        at: OffsetDateTime,
        delta: &StatsDelta,
    ) -> Result<(), StoreError> {
        if delta.is_empty() {
            return Ok(());
        }
        let start = bucket_start(at);
        let mut request = self
            .table
            .update_item(key(stats_pk(ws), stats_sk(start)))
            .expression_attribute_names("#t", EXPIRES_AT)
            .expression_attribute_values(":t", n(ttl(bucket_expires_at(start))));
        let mut adds = Vec::with_capacity(delta.len());
        for (i, (k, count)) in delta.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), k.code())
                .expression_attribute_values(
                    format!(":c{i}"),
                    AttributeValue::N(count.to_string()),
                );
        }
        request
            .update_expression(format!("SET #t = :t ADD {}", adds.join(", ")))
            .send()
            .await
            .map_err(|e| store("stats record", e))?;
        Ok(())
    }
}

#[async_trait]
impl StatsReader for DynamoStats {
    async fn buckets(
        &self,
        ws: &WorkspaceId,
        q: &StatsQuery,
    ) -> Result<Vec<StatsBucket>, StoreError> {
        if q.to <= q.from {
            return Ok(Vec::new());
        }
        // Eventually consistent: the overview may lag a write by a moment, at half the cost.
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", s(stats_pk(ws)))
            .expression_attribute_values(":a", s(stats_sk(q.from)))
            .expression_attribute_values(":b", s(stats_sk(q.to - time::Duration::seconds(1))));
        query_all("stats read", query)
            .await?
            .into_iter()
            .filter(|item| !expired(item, q.now))
            .map(|item| bucket(&item))
            .filter(|b| !matches!(b, Ok(b) if !q.takes(b.start)))
            .collect()
    }
}

/// A bucket item's counters (attributes this version does not know are left out).
fn bucket(item: &Item) -> Result<StatsBucket, StoreError> {
    let sk = get_s(item, "sk", "stats read")?;
    let start = sk
        .parse::<i64>()
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or_else(|| corrupt("stats read", format!("bucket key {sk}")))?;
    let mut counts = StatsDelta::new();
    for (name, value) in item {
        let Some(k) = StatsKey::parse(name) else {
            continue;
        };
        let n = match value {
            AttributeValue::N(v) => v.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| corrupt("stats read", format!("counter {name}")))?;
        counts.add(k, n);
    }
    Ok(StatsBucket { start, counts })
}

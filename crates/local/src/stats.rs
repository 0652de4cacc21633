//! `Stats` on SQLite: one row per (workspace, bucket, counter), added to by UPSERT.
//!
//! A delta is one write of the group commit (commit.rs), undone alone if it fails, and not
//! part of the request's event write: ingest records its counters after the events are
//! stored and queued, so a failed stats write cannot undo or fail them. Expiry (the bucket's
//! start plus 8 days) is stamped at write time, reads filter it and [`SqliteStats::sweep`]
//! deletes it.

use async_trait::async_trait;
use rusqlite::params;
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::stats::{
    bucket_expires_at, bucket_start, StatsBucket, StatsDelta, StatsKey, StatsQuery, StatsReader,
    StatsRecorder,
};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{sql, Db};

/// The table, made with the rest of the schema (`Db::open`).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stats (
    workspace_id TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    counter TEXT NOT NULL,
    value INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, bucket, counter)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_by_expiry ON stats (expires_at);
";

/// The overview's counters on SQLite. `bucket` is the bucket's start in Unix seconds,
/// `expires_at` Unix milliseconds like every other table.
#[derive(Debug, Clone)]
pub struct SqliteStats {
    db: Db,
}

impl SqliteStats {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes the buckets that expired before `now`; returns how many rows went.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let expired = &["DELETE FROM stats WHERE expires_at <= ?1"];
        self.db.sweep("stats sweep", expired, now).await
    }
}

#[async_trait]
impl StatsRecorder for SqliteStats {
    async fn record(
        &self,
        ws: &WorkspaceId,
        at: OffsetDateTime,
        delta: &StatsDelta,
    ) -> Result<(), StoreError> {
        let start = bucket_start(at);
        let (bucket, expires) = (
            start.unix_timestamp(),
            unix_millis(bucket_expires_at(start)),
        );
        let ws = ws.as_str().to_owned();
        let rows: Vec<(String, i64)> = delta
            .iter()
            .map(|(k, n)| (k.code(), i64::try_from(n).unwrap_or(i64::MAX)))
            .collect();
        // In the group commit: a transaction of its own was one more commit, and fsync, per
        // request, holding the connection while the writer waited.
        self.db
            .write("stats record", move |c| {
                let mut add = c
                    .prepare_cached(
                        "INSERT INTO stats (workspace_id, bucket, counter, value, expires_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (workspace_id, bucket, counter)
                         DO UPDATE SET value = value + excluded.value",
                    )
                    .map_err(|e| sql("stats record", e))?;
                for (counter, n) in &rows {
                    add.execute(params![ws, bucket, counter, n, expires])
                        .map_err(|e| sql("stats record", e))?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl StatsReader for SqliteStats {
    async fn buckets(
        &self,
        ws: &WorkspaceId,
        q: &StatsQuery,
    ) -> Result<Vec<StatsBucket>, StoreError> {
        let ws = ws.as_str().to_owned();
        let (from, to, now) = (
            q.from.unix_timestamp(),
            q.to.unix_timestamp(),
            unix_millis(q.now),
        );
        let rows: Vec<(i64, String, i64)> = self
            .db
            .call("stats read", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT bucket, counter, value FROM stats
                         WHERE workspace_id = ?1 AND bucket >= ?2 AND bucket < ?3 AND expires_at > ?4
                         ORDER BY bucket",
                    )
                    .map_err(|e| sql("stats read", e))?;
                let rows = stmt
                    .query_map(params![ws, from, to, now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(|e| sql("stats read", e))?;
                rows.map(|r| r.map_err(|e| sql("stats read", e))).collect()
            })
            .await?;
        let mut out: Vec<StatsBucket> = Vec::new();
        for (bucket, counter, value) in rows {
            let start = OffsetDateTime::from_unix_timestamp(bucket)
                .map_err(|e| StoreError::corrupt("stats read", e))?;
            if out.last().is_none_or(|b| b.start != start) {
                out.push(StatsBucket {
                    start,
                    counts: StatsDelta::new(),
                });
            }
            let value = u64::try_from(value).map_err(|e| StoreError::corrupt("stats read", e))?;
            if let (Some(key), Some(b)) = (StatsKey::parse(&counter), out.last_mut()) {
                b.counts.add(key, value);
            }
        }
        Ok(out)
    }
}

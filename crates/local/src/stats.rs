//! `Stats` on SQLite: one row per (workspace, bucket, counter), added to by UPSERT.
//!
//! A delta is one write of the group commit (commit.rs), undone alone if it fails, and not
//! part of the request's event write: ingest records its counters after the events are
//! stored and queued, so a failed stats write cannot undo or fail them. Expiry (the bucket's
//! start plus 8 days) is stamped at write time, reads filter it and [`SqliteStats::sweep`]
//! deletes it.
//!
//! [`StatsRecorder::record`] queues the delta and returns without waiting for its commit:
//! awaited, it was a second commit, and a second fsync, that every ingest request waited
//! for after its events were durable (at half of `serve`'s rate under `make
//! measure-ingest`, one group per request, so two WAL syncs in series per request). A
//! failed commit is logged here, as a failed write is by `StatsSink`; a process killed
//! before the next commit loses the counters of requests answered since the last one,
//! never their events. Reads go through the same queue, after every delta queued before
//! them, so a read that follows a recorded delta counts it. Not waiting queues nothing
//! without bound: a caller's next write (ingest's next request, delivery's next ack) is
//! queued behind its deltas and waited for.

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
        let committed = self.db.group_commit().queue("stats record", move |c| {
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
        });
        let counters = delta.len();
        tokio::spawn(async move {
            if let Err(e) = committed.await {
                tracing::warn!(
                    error = %e,
                    counters,
                    "could not record stats; the overview will miss these counts"
                );
            }
        });
        Ok(())
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
        // Through the group commit's queue, behind the deltas queued before it (a read is a
        // write that changes nothing).
        let rows: Vec<(i64, String, i64)> = self
            .db
            .write("stats read", move |c| {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;
    use tracklayer_core::error::StoreError;
    use tracklayer_core::stats::IngestCounter;

    use super::*;

    /// Recording does not wait for its commit (the writer is held busy meanwhile), and a
    /// read made after it counts it. (That the read is queued behind the delta is the
    /// guarantee; a read that took the connection directly would usually count it too,
    /// winning or losing the connection's mutex against the writer thread by chance.)
    #[tokio::test]
    async fn a_recorded_delta_is_not_waited_for_and_a_later_read_counts_it() {
        let db = Db::in_memory().unwrap();
        let stats = SqliteStats::new(db.clone());
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (running, started) = std::sync::mpsc::channel::<()>();
        let busy = db.group_commit().queue("test", move |_| {
            let _ = running.send(());
            let _ = held.recv_timeout(Duration::from_secs(10));
            Ok::<_, StoreError>(())
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let ws = WorkspaceId::parse("ws_us_0123456789abcdef").unwrap();
        let at = datetime!(2026-12-06 08:00 UTC);
        let mut delta = StatsDelta::new();
        delta.ingest(IngestCounter::Accepted, 7);
        tokio::time::timeout(Duration::from_secs(5), stats.record(&ws, at, &delta))
            .await
            .expect("recording waited for the busy writer")
            .unwrap();
        let read = {
            let (stats, ws) = (stats.clone(), ws.clone());
            let q = StatsQuery::new(at - time::Duration::DAY, at + time::Duration::DAY, at);
            tokio::spawn(async move { stats.buckets(&ws, &q).await })
        };
        // The read is queued (or about to be) while the writer is still held.
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        busy.await.unwrap();
        let buckets = read.await.unwrap().unwrap();
        let accepted: u64 = buckets
            .iter()
            .map(|b| b.counts.get(&StatsKey::Ingest(IngestCounter::Accepted)))
            .sum();
        assert_eq!(
            accepted, 7,
            "the read did not count the delta recorded before it"
        );
    }
}

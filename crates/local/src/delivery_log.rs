//! `DeliveryLog` on SQLite: one row per (event, destination), overwritten with each outcome.

use async_trait::async_trait;
use rusqlite::params;
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::destination::DestinationId;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventId;
use tracklayer_core::ports::{
    DeliveryCursor, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryRecord,
};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{doc_rows, json, sql, Db};

#[derive(Debug, Clone)]
pub struct SqliteDeliveryLog {
    db: Db,
}

impl SqliteDeliveryLog {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// A delivery log row: workspace, destination, event, status, updated and expiry (unix ms),
/// and the record as JSON.
type Row = (String, String, String, &'static str, i64, i64, String);

/// Writes each outcome over the row of its (workspace, destination, event).
fn upsert(c: &rusqlite::Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO delivery_log (workspace_id, destination_id, event_id, status, updated_at, expires_at, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (workspace_id, destination_id, event_id) DO UPDATE SET
           status = excluded.status, updated_at = excluded.updated_at,
           expires_at = excluded.expires_at, doc = excluded.doc",
    )?;
    for (ws, d, e, status, updated, expires, doc) in rows {
        stmt.execute(params![ws, d, e, status, updated, expires, doc])?;
    }
    Ok(())
}

#[async_trait]
impl DeliveryLog for SqliteDeliveryLog {
    async fn record(&self, records: &[DeliveryRecord]) -> Result<(), StoreError> {
        let rows = records
            .iter()
            .map(|r| {
                Ok((
                    r.workspace_id.as_str().to_owned(),
                    r.destination_id.as_str().to_owned(),
                    r.event_id.to_string(),
                    r.status.kind().as_str(),
                    unix_millis(r.updated_at),
                    unix_millis(r.expires_at),
                    json("delivery_log", r)?,
                ))
            })
            .collect::<Result<Vec<Row>, StoreError>>()?;
        // In the group commit, with the queue's acks and the other writes waiting: a
        // transaction of its own was a commit and a WAL sync per delivered message (the log
        // was 15 % of `serve`'s core while it drained a backlog, a third of that its commits:
        // README § Performance (41)).
        self.db
            .write("delivery_log", move |c| {
                upsert(c, &rows).map_err(|e| sql("delivery_log", e))
            })
            .await
    }

    async fn delivered(
        &self,
        ws: &WorkspaceId,
        destination: &DestinationId,
        events: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        let ws = ws.as_str().to_owned();
        let d = destination.as_str().to_owned();
        let events = events.to_vec();
        let now = unix_millis(now);
        self.db
            .call("delivery_log", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT 1 FROM delivery_log WHERE workspace_id = ?1 AND destination_id = ?2
                         AND event_id = ?3 AND status = 'delivered' AND expires_at > ?4",
                    )
                    .map_err(|e| sql("delivery_log", e))?;
                let mut out = Vec::new();
                for e in events {
                    if stmt
                        .exists(params![ws, d, e.to_string(), now])
                        .map_err(|e| sql("delivery_log", e))?
                    {
                        out.push(e);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn for_event(
        &self,
        ws: &WorkspaceId,
        event: &EventId,
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let (ws, e, now) = (ws.as_str().to_owned(), event.to_string(), unix_millis(now));
        self.db
            .docs(
                "delivery_log",
                "SELECT doc FROM delivery_log WHERE workspace_id = ?1 AND event_id = ?2
                         AND expires_at > ?3 ORDER BY destination_id",
                vec![ws.into(), e.into(), now.into()],
            )
            .await
    }

    async fn page(
        &self,
        ws: &WorkspaceId,
        destination: &DestinationId,
        query: &DeliveryQuery,
        now: OffsetDateTime,
    ) -> Result<DeliveryPage, StoreError> {
        let (ws, d, now) = (
            ws.as_str().to_owned(),
            destination.as_str().to_owned(),
            unix_millis(now),
        );
        // `,delivered,dead,` — or empty for any status.
        let statuses: String = if query.statuses.is_empty() {
            String::new()
        } else {
            query
                .statuses
                .iter()
                .fold(",".to_owned(), |acc, k| format!("{acc}{},", k.as_str()))
        };
        let since = query.since.map_or(i64::MIN, unix_millis);
        let until = query.until.map_or(i64::MAX, unix_millis);
        let (after_ms, after_event) = query.after.map_or((i64::MAX, String::new()), |c| {
            (c.updated_ms, c.event_id.to_string())
        });
        let limit = query.limit.min(10_000);
        let fetch = limit as i64 + 1;
        let mut records = self
            .db
            .call("delivery_log", move |c| {
                doc_rows(
                    c,
                    "delivery_log",
                    "SELECT doc FROM delivery_log WHERE workspace_id = ?1 AND destination_id = ?2
                         AND expires_at > ?3
                         AND (?4 = '' OR instr(?4, ',' || status || ',') > 0)
                         AND updated_at >= ?5 AND updated_at <= ?6
                         AND (updated_at < ?7 OR (updated_at = ?7 AND event_id < ?8))
                         ORDER BY updated_at DESC, event_id DESC LIMIT ?9",
                    params![
                        ws,
                        d,
                        now,
                        statuses,
                        since,
                        until,
                        after_ms,
                        after_event,
                        fetch
                    ],
                )
            })
            .await?;
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(DeliveryCursor::of)
        } else {
            None
        };
        Ok(DeliveryPage { records, next })
    }

    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let expired = &["DELETE FROM delivery_log WHERE expires_at <= ?1"];
        self.db.sweep("delivery_log", expired, now).await
    }

    async fn for_events(
        &self,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let ws = ws.as_str().to_owned();
        let events: Vec<String> = events.iter().map(ToString::to_string).collect();
        self.db
            .call("delivery_log", move |c| {
                let mut out = Vec::new();
                for e in &events {
                    out.extend(doc_rows::<DeliveryRecord>(
                        c,
                        "delivery_log",
                        "SELECT doc FROM delivery_log WHERE workspace_id = ?1 AND event_id = ?2",
                        params![ws, e],
                    )?);
                }
                Ok(out)
            })
            .await
    }

    async fn erase_events(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<u64, StoreError> {
        let ws = ws.as_str().to_owned();
        let events: Vec<String> = events.iter().map(ToString::to_string).collect();
        self.db
            .transaction("delivery_log", move |tx| {
                let mut n = 0u64;
                for e in &events {
                    n += tx.execute(
                        "DELETE FROM delivery_log WHERE workspace_id = ?1 AND event_id = ?2",
                        params![ws, e],
                    )? as u64;
                }
                Ok(n)
            })
            .await
    }
}

//! `DeliveryLog` on SQLite: one row per (event, destination), overwritten with each outcome.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::EventId;
use tracklayer_core::ports::{
    DeliveryCursor, DeliveryLog, DeliveryPage, DeliveryQuery, DeliveryRecord, LogOf,
};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{json, sql, Db};

#[derive(Debug, Clone)]
pub struct SqliteDeliveryLog {
    db: Db,
}

impl SqliteDeliveryLog {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// The delivery log's table. Keyed by workspace, event and destination in that order, so
/// that one key serves both an item's outcome (all three) and an event's trace (the first
/// two): an index by event beside a key by destination was a fourth B-tree written for every
/// delivered item (README § Performance (43)).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS delivery_log (
    workspace_id TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, event_id, destination_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_log_recent ON delivery_log (workspace_id, destination_id, updated_at);
CREATE INDEX IF NOT EXISTS delivery_log_by_expiry ON delivery_log (expires_at);
";

/// Moves a delivery log keyed by destination before event (and indexed by event beside it),
/// as versions before 2026-12-07 made it, into [`SCHEMA`], every row carried over, in one
/// transaction; nothing to do for a database without one or with the current key.
pub(crate) fn migrate(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    // The event id's place in the key: 3 before, 2 now, none without the table.
    let place: Option<i64> = c
        .query_row(
            "SELECT pk FROM pragma_table_info('delivery_log') WHERE name = 'event_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if place != Some(3) {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "DROP INDEX IF EXISTS delivery_log_by_event;
         DROP INDEX IF EXISTS delivery_log_recent;
         DROP INDEX IF EXISTS delivery_log_by_expiry;
         ALTER TABLE delivery_log RENAME TO delivery_log_before;",
    )?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(
        "INSERT INTO delivery_log
             (workspace_id, destination_id, event_id, status, updated_at, expires_at, doc)
         SELECT workspace_id, destination_id, event_id, status, updated_at, expires_at, doc
         FROM delivery_log_before;
         DROP TABLE delivery_log_before;",
    )?;
    tx.commit()
}

/// A delivery log row: workspace, destination, event, status, updated and expiry (unix ms),
/// and the record as JSON.
type Row = (String, String, String, &'static str, i64, i64, String);

/// Writes each outcome over the row of its (workspace, event, destination), up to 32 rows a
/// statement ([`crate::db::insert_many`]; one of the same key later in `rows` is written
/// after it, as one statement per row would).
fn upsert(c: &rusqlite::Connection, rows: &[Row]) -> Result<(), StoreError> {
    let values: Vec<&dyn rusqlite::ToSql> = rows
        .iter()
        .flat_map(|(ws, d, e, status, updated, expires, doc)| {
            [
                ws as &dyn rusqlite::ToSql,
                d,
                e,
                status,
                updated,
                expires,
                doc,
            ]
        })
        .collect();
    crate::db::insert_many(
        c,
        "delivery_log",
        "INSERT INTO delivery_log (workspace_id, destination_id, event_id, status, updated_at, expires_at, doc) VALUES ",
        7,
        " ON CONFLICT (workspace_id, event_id, destination_id) DO UPDATE SET
           status = excluded.status, updated_at = excluded.updated_at,
           expires_at = excluded.expires_at, doc = excluded.doc",
        &values,
    )
}

/// A record as its row's `doc` holds it: without the workspace, destination and event ids,
/// which the row's key holds (since 2026-12-07; older docs hold them too, and read the same).
/// About 150 of a doc's 320 bytes, three times per delivered event, written again with each
/// outcome (README § Performance (44)).
#[derive(serde::Serialize)]
struct Outcome<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a tracklayer_core::event::MessageId>,
    #[serde(flatten)]
    status: &'a tracklayer_core::ports::DeliveryStatus,
    attempts: u32,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    next_attempt_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

impl<'a> Outcome<'a> {
    fn of(r: &'a DeliveryRecord) -> Self {
        // Every field but the key's, by name: a field added to the record is a compile
        // error here until it is written.
        let DeliveryRecord {
            workspace_id: _,
            destination_id: _,
            event_id: _,
            message_id,
            status,
            attempts,
            next_attempt_at,
            last_http_status,
            last_error,
            updated_at,
            expires_at,
        } = r;
        Self {
            message_id: message_id.as_ref(),
            status,
            attempts: *attempts,
            next_attempt_at: *next_attempt_at,
            last_http_status: *last_http_status,
            last_error: last_error.as_deref(),
            updated_at: *updated_at,
            expires_at: *expires_at,
        }
    }
}

/// The query for the records that `$filter` (the SQL after `WHERE`) selects, with the
/// columns [`records`] reads.
macro_rules! select_records {
    ($filter:literal) => {
        concat!(
            "SELECT workspace_id, destination_id, event_id, doc FROM delivery_log WHERE ",
            $filter
        )
    };
}

/// The records `query` selects ([`select_records`]): each its doc with its key's ids.
fn records(
    c: &rusqlite::Connection,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    const CONTEXT: &str = "delivery_log";
    let mut stmt = c.prepare_cached(query).map_err(|e| sql(CONTEXT, e))?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(|e| sql(CONTEXT, e))?;
    rows.map(|row| {
        let (ws, destination, event, doc) = row.map_err(|e| sql(CONTEXT, e))?;
        let mut doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&doc).map_err(|e| StoreError::corrupt(CONTEXT, e))?;
        if !doc.contains_key("event_id") {
            // The key column holds the id's text form (`evt_…`), the doc its serde form.
            let id = EventId::parse(&event)
                .ok_or_else(|| StoreError::corrupt(CONTEXT, "a row's event id is not one"))?;
            doc.insert(
                "event_id".into(),
                serde_json::Value::String(id.0.to_string()),
            );
        }
        for (key, value) in [("workspace_id", ws), ("destination_id", destination)] {
            doc.entry(key).or_insert(serde_json::Value::String(value));
        }
        serde_json::from_value(serde_json::Value::Object(doc))
            .map_err(|e| StoreError::corrupt(CONTEXT, e))
    })
    .collect()
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
                    json("delivery_log", &Outcome::of(r))?,
                ))
            })
            .collect::<Result<Vec<Row>, StoreError>>()?;
        // In the group commit, with the queue's acks and the other writes waiting: a
        // transaction of its own was a commit and a WAL sync per delivered message (the log
        // was 15 % of `serve`'s core while it drained a backlog, a third of that its commits:
        // README § Performance (41)).
        self.db
            .write("delivery_log", move |c| upsert(c, &rows))
            .await
    }

    async fn delivered(
        &self,
        log: LogOf<'_>,
        events: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        let LogOf { ws, destination } = log;
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
            .call("delivery_log", move |c| {
                records(
                    c,
                    select_records!(
                        "workspace_id = ?1 AND event_id = ?2
                         AND expires_at > ?3 ORDER BY destination_id"
                    ),
                    params![ws, e, now],
                )
            })
            .await
    }

    async fn page(
        &self,
        log: LogOf<'_>,
        query: &DeliveryQuery,
        now: OffsetDateTime,
    ) -> Result<DeliveryPage, StoreError> {
        let LogOf { ws, destination } = log;
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
                records(
                    c,
                    select_records!(
                        "workspace_id = ?1 AND destination_id = ?2
                         AND expires_at > ?3
                         AND (?4 = '' OR instr(?4, ',' || status || ',') > 0)
                         AND updated_at >= ?5 AND updated_at <= ?6
                         AND (updated_at < ?7 OR (updated_at = ?7 AND event_id < ?8))
                         ORDER BY updated_at DESC, event_id DESC LIMIT ?9"
                    ),
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
                    out.extend(records(
                        c,
                        select_records!("workspace_id = ?1 AND event_id = ?2"),
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

#[cfg(test)]
mod tests {
    use tracklayer_core::destination::DestinationId;
    use tracklayer_core::ports::DeliveryStatus;
    use tracklayer_core::testkit::delivery_log::delivery_record;
    use tracklayer_core::testkit::T0;
    use tracklayer_core::workspace::Region;

    use super::*;

    #[tokio::test]
    async fn of_two_outcomes_for_one_item_in_one_write_the_later_stands_within_and_across_statements(
    ) {
        // Arrange: 40 outcomes (statements of 32 and 8 rows); one item's retry and delivery
        // side by side, another's in the first and the second statement.
        let log = SqliteDeliveryLog::new(Db::in_memory().unwrap());
        let ws = WorkspaceId::new(Region::Us, "log");
        let d = DestinationId::new("dst_log");
        let ids: Vec<EventId> = (0..38).map(|_| EventId(uuid::Uuid::now_v7())).collect();
        let record = |e: EventId, status| delivery_record(&ws, &d, e, status, T0);
        let mut records: Vec<_> = ids
            .iter()
            .map(|e| record(*e, DeliveryStatus::Retrying))
            .collect();
        records.insert(6, record(ids[5], DeliveryStatus::Delivered));
        records.push(record(ids[1], DeliveryStatus::Delivered));
        assert_eq!(records.len(), 40);

        // Act
        log.record(&records).await.unwrap();

        // Assert
        let delivered = log.delivered(LogOf::new(&ws, &d), &ids, T0).await.unwrap();
        assert_eq!(delivered, [ids[1], ids[5]]);
        let page = DeliveryQuery {
            statuses: Vec::new(),
            since: None,
            until: None,
            after: None,
            limit: 100,
        };
        let all = log.page(LogOf::new(&ws, &d), &page, T0).await.unwrap();
        assert_eq!(all.records.len(), 38, "one record per item");
    }
    #[tokio::test]
    async fn a_doc_leaves_the_ids_to_its_key_and_reads_back_whole_as_an_older_full_doc_does() {
        // Arrange: a record with every field, and another written as older versions did.
        let db = Db::in_memory().unwrap();
        let log = SqliteDeliveryLog::new(db.clone());
        let ws = WorkspaceId::new(Region::Us, "log");
        let d = DestinationId::new("dst_log");
        let (e, old) = (EventId(uuid::Uuid::now_v7()), EventId(uuid::Uuid::now_v7()));
        let mut r = delivery_record(&ws, &d, e, DeliveryStatus::Retrying, T0);
        r.next_attempt_at = Some(T0 + time::Duration::seconds(30));
        r.last_http_status = Some(503);
        r.last_error = Some("HTTP 503".into());
        let older = delivery_record(&ws, &d, old, DeliveryStatus::Dropped("too old".into()), T0);
        let full = serde_json::to_string(&older).unwrap();
        let row = (
            ws.as_str().to_owned(),
            d.as_str().to_owned(),
            old.to_string(),
        );
        db.call("test", move |c| {
            c.execute(
                "INSERT INTO delivery_log VALUES (?1, ?2, ?3, 'dropped', 0, 9e15, ?4)",
                params![row.0, row.1, row.2, full],
            )
            .map_err(|e| sql("test", e))
        })
        .await
        .unwrap();

        // Act
        log.record(std::slice::from_ref(&r)).await.unwrap();

        // Assert
        let key = e.to_string();
        let doc: String = db
            .call("test", move |c| {
                c.query_row(
                    "SELECT doc FROM delivery_log WHERE event_id = ?1",
                    [key],
                    |row| row.get(0),
                )
                .map_err(|e| sql("test", e))
            })
            .await
            .unwrap();
        for id in [ws.as_str(), d.as_str(), &e.to_string(), &e.0.to_string()] {
            assert!(
                !doc.contains(id),
                "{id} is the row's key, not its doc: {doc}"
            );
        }
        let back = log.for_event(&ws, &e, T0).await.unwrap();
        assert_eq!(back, std::slice::from_ref(&r));
        let back = log.for_event(&ws, &old, T0).await.unwrap();
        assert_eq!(back, std::slice::from_ref(&older));
        let both = log.for_events(&ws, &[e, old]).await.unwrap();
        assert_eq!(both, [r, older]);
    }
}

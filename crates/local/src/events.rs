//! `EventStore` on SQLite: events, subject index, dedup markers and operational records.
//! Expiry is stamped at write time; every read filters it; the sweeper deletes it.
//!
//! The subject index (`event_subjects`) has no expiry of its own: its rows live exactly as
//! long as their event, and are deleted with it by primary key, from the subjects the event's
//! record holds ([`delete_subjects`]) — by the sweep, an erasure or an undone write. An event
//! whose record cannot be read has its rows found by a scan instead, never left behind.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, ToSql};
use time::OffsetDateTime;
use tracklayer_core::clock::{from_unix_millis, unix_millis};
use tracklayer_core::crypto::Sealed;
use tracklayer_core::dsr::{ErasedRows, EventFootprint};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{EventId, MessageId, OperationalRecord, StoredEvent};
use tracklayer_core::ports::{EventEraser, EventReader, EventWriter, NewEvent, Page, RecentEvents};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{sql, Db};
use crate::event_memo::EventMemo;
use crate::event_record;
use crate::subject_keys::{
    event_id_of_key, event_key, event_keys_json, subject_key, SUBJECT_KEY_BYTES,
};
use crate::workspace_numbers::{self, workspace_number_of_1, WorkspaceNumbers};

#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    db: Db,
    numbers: WorkspaceNumbers,
    /// Events read by [`EventReader::events`], kept decoded for their next read.
    pub(crate) memo: Arc<EventMemo>,
}

impl SqliteEventStore {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            numbers: WorkspaceNumbers::default(),
            memo: Arc::default(),
        }
    }
}

/// An event as [`record_rows`] writes it: workspace number, message id, expiry, record,
/// event key, subject keys, sealed operational record with its expiry, dedup expiry.
pub(crate) type EventRow = (
    i64,
    String,
    i64,
    Vec<u8>,
    Value,
    Vec<Value>,
    Option<(Vec<u8>, i64)>,
    i64,
);

impl SqliteEventStore {
    /// `events` as rows to record (each workspace's number assigned first, in a transaction
    /// of its own: [`WorkspaceNumbers::assigned`]).
    pub(crate) async fn rows(&self, events: &[NewEvent]) -> Result<Vec<EventRow>, StoreError> {
        let mut numbers = Vec::with_capacity(events.len());
        for e in events {
            numbers.push(
                self.numbers
                    .assigned(&self.db, &e.event.workspace_id)
                    .await?,
            );
        }
        events
            .iter()
            .zip(numbers)
            .map(|(e, number)| {
                Ok((
                    number,
                    e.event.message_id.as_str().to_owned(),
                    unix_millis(e.event.expires_at),
                    event_record::encode(&e.event),
                    event_key(&e.event.event_id),
                    e.event
                        .subjects
                        .iter()
                        .map(|s| subject_key(s))
                        .collect::<Vec<_>>(),
                    e.operational
                        .as_ref()
                        .map(|o| (o.sealed.0.clone(), unix_millis(o.expires_at))),
                    unix_millis(e.dedup_until),
                ))
            })
            .collect()
    }
}

/// Records, in the caller's transaction, each row whose message id has no live dedup marker
/// at `now` (unix ms): per row, whether it was recorded.
pub(crate) fn record_rows(
    tx: &rusqlite::Connection,
    rows: &[EventRow],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    // One statement per event for dedup: the marker is written unless a live one is there,
    // and the statement changes a row only when it was written. (Not `RETURNING 1`, which
    // said the same: SQLite gathers a `RETURNING` statement's rows in a temporary B-tree it
    // opens and closes at every execution, a few per cent of `serve`'s core by `perf`.)
    let mut mark = tx
        .prepare_cached(
            "INSERT INTO dedup (workspace, message_id, event_id, expires_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (workspace, message_id)
             DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at
             WHERE dedup.expires_at <= ?5",
        )
        .map_err(|e| sql("record", e))?;
    let mut events: Vec<&dyn ToSql> = Vec::with_capacity(4 * rows.len());
    let mut subjects: Vec<&dyn ToSql> = Vec::with_capacity(3 * 4 * rows.len());
    let mut operational: Vec<&dyn ToSql> = Vec::with_capacity(4 * rows.len());
    for (number, message_id, expires, doc, event_key, keys, op, dedup_until) in rows {
        // An upsert's change count is 1 when it inserted or updated, 0 when the update's
        // `WHERE` (a live marker) held it back.
        let marked = mark
            .execute(params![number, message_id, event_key, dedup_until, now])
            .map_err(|e| sql("record", e))?;
        out.push(marked != 0);
        if marked == 0 {
            continue;
        }
        events.extend([number as &dyn ToSql, event_key, expires, doc]);
        for s in keys {
            subjects.extend([number as &dyn ToSql, s, event_key]);
        }
        if let Some((sealed, op_expires)) = op {
            operational.extend([number as &dyn ToSql, event_key, sealed, op_expires]);
        }
    }
    crate::db::insert_many(
        tx,
        "record",
        "INSERT INTO events (workspace, event_id, expires_at, doc) VALUES ",
        4,
        "",
        &events,
    )?;
    crate::db::insert_many(
        tx,
        "record",
        "INSERT OR IGNORE INTO event_subjects (workspace, subject_key, event_id) VALUES ",
        3,
        "",
        &subjects,
    )?;
    crate::db::insert_many(
        tx,
        "record",
        "INSERT INTO operational (workspace, event_id, sealed, expires_at) VALUES ",
        4,
        "",
        &operational,
    )?;
    Ok(out)
}

#[async_trait]
impl EventWriter for SqliteEventStore {
    async fn record(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        let now = unix_millis(now);
        let rows = self.rows(events).await?;
        self.db
            .write("record", move |c| record_rows(c, &rows, now))
            .await
    }

    async fn forget(
        &self,
        ws: &WorkspaceId,
        events: &[(EventId, MessageId)],
    ) -> Result<(), StoreError> {
        let ids: Vec<EventId> = events.iter().map(|(e, _)| *e).collect();
        let ws = ws.as_str().to_owned();
        let events: Vec<(Value, String)> = events
            .iter()
            .map(|(e, m)| (event_key(e), m.as_str().to_owned()))
            .collect();
        let forgotten = self
            .db
            .call("forget", move |c| {
                let tx = c.transaction().map_err(|e| sql("forget", e))?;
                // No number: nothing of the workspace was ever stored.
                let Some(number) = workspace_numbers::number(&tx, &ws)? else {
                    return Ok(());
                };
                for (event_id, message_id) in &events {
                    delete_subjects(&tx, "forget", number, event_id)?;
                    for stmt in [
                        "DELETE FROM events WHERE workspace = ?1 AND event_id = ?2",
                        "DELETE FROM operational WHERE workspace = ?1 AND event_id = ?2",
                    ] {
                        tx.execute(stmt, params![number, event_id])
                            .map_err(|e| sql("forget", e))?;
                    }
                    tx.execute(
                        "DELETE FROM dedup WHERE workspace = ?1 AND message_id = ?2 AND event_id = ?3",
                        params![number, message_id, event_id],
                    )
                    .map_err(|e| sql("forget", e))?;
                }
                tx.commit().map_err(|e| sql("forget", e))
            })
            .await;
        self.memo.forget(&ids);
        forgotten
    }
}

#[async_trait]
impl EventReader for SqliteEventStore {
    async fn event(
        &self,
        ws: &WorkspaceId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let workspace = ws.clone();
        let (ws, id, now) = (ws.as_str().to_owned(), event_key(id), unix_millis(now));
        self.db
            .call("event", move |c| {
                let mut found = event_rows(
                    c,
                    "event",
                    &workspace,
                    concat!(
                        "SELECT doc FROM events WHERE workspace = ",
                        workspace_number_of_1!(),
                        " AND event_id = ?2 AND expires_at > ?3"
                    ),
                    params![ws, id, now],
                )?;
                Ok(found.pop())
            })
            .await
    }

    async fn events(
        &self,
        ws: &WorkspaceId,
        ids: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        const CONTEXT: &str = "events";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Which are stored is the table's to say, every time; the memo only spares decoding
        // the records of those it holds ([`EventMemo`]).
        let kept = self.memo.kept(ws, ids);
        let kept_keys: Vec<EventId> = kept.keys().copied().collect();
        let kept_keys = event_keys_json(CONTEXT, &kept_keys)?;
        let workspace = ws.clone();
        let ids = event_keys_json(CONTEXT, ids)?;
        let (ws, now) = (ws.as_str().to_owned(), unix_millis(now));
        let (found, decoded) = self
            .db
            .call(CONTEXT, move |c| {
                crate::event_memo::read(c, CONTEXT, &workspace, (ws, ids, now), &kept_keys, &kept)
            })
            .await?;
        self.memo.keep(&decoded);
        Ok(found)
    }

    async fn operational_records(
        &self,
        ws: &WorkspaceId,
        ids: &[EventId],
        now: OffsetDateTime,
    ) -> Result<Vec<OperationalRecord>, StoreError> {
        const CONTEXT: &str = "operational_records";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = event_keys_json(CONTEXT, ids)?;
        let workspace_id = ws.clone();
        let (ws, now) = (ws.as_str().to_owned(), unix_millis(now));
        self.db
            .call(CONTEXT, move |c| {
                let mut stmt = c
                    .prepare_cached(concat!(
                        "SELECT event_id, sealed, expires_at FROM operational WHERE workspace = ",
                        workspace_number_of_1!(),
                        " AND expires_at > ?3
                          AND event_id IN (SELECT unhex(value) FROM json_each(?2))"
                    ))
                    .map_err(|e| sql(CONTEXT, e))?;
                let rows = stmt
                    .query_map(params![ws, ids, now], |r| {
                        Ok((event_id_of_key(r.get_ref(0)?), r.get(1)?, r.get(2)?))
                    })
                    .map_err(|e| sql(CONTEXT, e))?;
                rows.map(|row| {
                    let (event_id, sealed, expires): (Option<EventId>, Vec<u8>, i64) =
                        row.map_err(|e| sql(CONTEXT, e))?;
                    let event_id = event_id.ok_or_else(|| {
                        StoreError::corrupt(
                            CONTEXT,
                            "an operational row's event id is not an event id",
                        )
                    })?;
                    Ok(OperationalRecord {
                        workspace_id: workspace_id.clone(),
                        event_id,
                        sealed: Sealed(sealed),
                        expires_at: from_unix_millis(expires),
                    })
                })
                .collect()
            })
            .await
    }

    async fn event_ids_by_message_id(
        &self,
        ws: &WorkspaceId,
        message_id: &MessageId,
        now: OffsetDateTime,
    ) -> Result<Vec<EventId>, StoreError> {
        const CONTEXT: &str = "event_ids_by_message_id";
        let (ws, m, now) = (
            ws.as_str().to_owned(),
            message_id.as_str().to_owned(),
            unix_millis(now),
        );
        self.db
            .call(CONTEXT, move |c| {
                let id: Option<Option<EventId>> = c
                    .query_row(
                        concat!(
                            "SELECT event_id FROM dedup WHERE workspace = ",
                            workspace_number_of_1!(),
                            " AND message_id = ?2 AND expires_at > ?3"
                        ),
                        params![ws, m, now],
                        |r| Ok(event_id_of_key(r.get_ref(0)?)),
                    )
                    .optional()
                    .map_err(|e| sql(CONTEXT, e))?;
                id.map(|id| {
                    id.ok_or_else(|| {
                        StoreError::corrupt(CONTEXT, "a dedup row's event id is not an event id")
                    })
                })
                .into_iter()
                .collect()
            })
            .await
    }

    /// The window's events newest first by id (the primary key), read one row at a time
    /// until `limit` are taken.
    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        query: &RecentEvents,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        const CONTEXT: &str = "recent_events";
        let workspace = ws.clone();
        let (ws, first) = (ws.as_str().to_owned(), event_key(&query.first_id()));
        let (query, at) = (query.clone(), now);
        self.db
            .call(CONTEXT, move |c| {
                let mut stmt = c
                    .prepare_cached(concat!(
                        "SELECT doc FROM events WHERE workspace = ",
                        workspace_number_of_1!(),
                        " AND event_id >= ?2 AND expires_at > ?3
                          ORDER BY event_id DESC"
                    ))
                    .map_err(|e| sql(CONTEXT, e))?;
                let mut rows = stmt
                    .query(params![ws, first, unix_millis(at)])
                    .map_err(|e| sql(CONTEXT, e))?;
                let mut out = Vec::new();
                while out.len() < query.limit {
                    let Some(row) = rows.next().map_err(|e| sql(CONTEXT, e))? else {
                        break;
                    };
                    let doc = row.get_ref(0).map_err(|e| sql(CONTEXT, e))?;
                    let event = event_record::decode(CONTEXT, &workspace, doc)?;
                    if query.takes(&event, at) {
                        out.push(event);
                    }
                }
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl EventEraser for SqliteEventStore {
    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        self.db
            .call("sweep", move |c| {
                let tx = c.transaction().map_err(|e| sql("sweep", e))?;
                // Each expired event with its subject rows, a bounded batch at a time; then the
                // rest by expiry.
                let mut total = 0u64;
                loop {
                    let batch = {
                        let mut expired = tx
                            .prepare_cached(
                                "SELECT workspace, event_id FROM events
                                 WHERE expires_at <= ?1 LIMIT 10000",
                            )
                            .map_err(|e| sql("sweep", e))?;
                        let rows = expired
                            .query_map([now], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Value>(1)?)))
                            .map_err(|e| sql("sweep", e))?;
                        rows.collect::<Result<Vec<_>, _>>()
                            .map_err(|e| sql("sweep", e))?
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for (number, event_id) in &batch {
                        total += delete_subjects(&tx, "sweep", *number, event_id)?;
                        total += tx
                            .execute(
                                "DELETE FROM events WHERE workspace = ?1 AND event_id = ?2",
                                params![number, event_id],
                            )
                            .map_err(|e| sql("sweep", e))? as u64;
                    }
                }
                for statement in [
                    "DELETE FROM events WHERE expires_at <= ?1",
                    "DELETE FROM dedup WHERE expires_at <= ?1",
                    "DELETE FROM operational WHERE expires_at <= ?1",
                ] {
                    let n = tx.execute(statement, [now]).map_err(|e| sql("sweep", e))?;
                    total += n as u64;
                }
                tx.commit().map_err(|e| sql("sweep", e))?;
                Ok(total)
            })
            .await
    }

    async fn subject_footprint(
        &self,
        ws: &WorkspaceId,
        subjects: &[String],
        page: Page,
        _now: OffsetDateTime,
    ) -> Result<Vec<EventFootprint>, StoreError> {
        // The subject index is one table read by key: nothing to bound by `now`.
        let (after, limit) = (page.after.as_ref(), page.limit);
        let workspace = ws.clone();
        let ws = ws.as_str().to_owned();
        // As stored: the keys that are bytes (their hex here, unhexed by SQLite), and the rest.
        let (bytes, text): (Vec<&str>, Vec<&str>) = subjects
            .iter()
            .map(String::as_str)
            .partition(|s| matches!(subject_key(s), rusqlite::types::Value::Blob(_)));
        let bytes: Vec<&str> = bytes.iter().map(|s| &s[..2 * SUBJECT_KEY_BYTES]).collect();
        let json = |v: &[&str]| {
            serde_json::to_string(v).map_err(|e| StoreError::permanent("subject_footprint", e))
        };
        let (bytes, text) = (json(&bytes)?, json(&text)?);
        let after = after.map_or(Value::Blob(Vec::new()), event_key);
        let limit = limit.min(10_000) as i64;
        self.db
            .call("subject_footprint", move |c| {
                let mut stmt = c
                    .prepare_cached(concat!(
                        "SELECT e.doc,
                           EXISTS (SELECT 1 FROM operational o
                                   WHERE o.workspace = e.workspace AND o.event_id = e.event_id),
                           EXISTS (SELECT 1 FROM dedup d
                                   WHERE d.workspace = e.workspace AND d.event_id = e.event_id),
                           e.event_id
                         FROM events e
                         WHERE e.workspace = ",
                        workspace_number_of_1!(),
                        " AND e.event_id > ?3 AND e.event_id IN (
                           SELECT s.event_id FROM event_subjects s
                           WHERE s.workspace = ",
                        workspace_number_of_1!(),
                        " AND s.event_id > ?3
                             AND s.subject_key IN (SELECT unhex(value) FROM json_each(?2)
                                               UNION ALL SELECT value FROM json_each(?5)))
                         ORDER BY e.event_id LIMIT ?4",
                    ))
                    .map_err(|e| sql("subject_footprint", e))?;
                let rows = stmt
                    .query_map(params![ws, bytes, after, limit, text], |r| {
                        Ok((
                            event_record::decode("subject_footprint", &workspace, r.get_ref(0)?),
                            r.get::<_, bool>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, Value>(3)?,
                        ))
                    })
                    .map_err(|e| sql("subject_footprint", e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| sql("subject_footprint", e))?;
                rows.into_iter()
                    .map(|(event, operational, dedup_marker, event_id)| {
                        let event = event?;
                        let entries = count_subjects(c, &ws, &event_id, &event.subjects)?;
                        Ok(EventFootprint {
                            event,
                            operational,
                            dedup_marker,
                            subject_index_entries: u32::try_from(entries).unwrap_or(u32::MAX),
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn erase(&self, ws: &WorkspaceId, events: &[EventId]) -> Result<ErasedRows, StoreError> {
        let ids = events;
        let ws = ws.as_str().to_owned();
        let events: Vec<Value> = events.iter().map(event_key).collect();
        let erased = self
            .db
            .call("erase", move |c| {
                let tx = c.transaction().map_err(|e| sql("erase", e))?;
                let mut rows = ErasedRows::default();
                // No number: nothing of the workspace was ever stored.
                let Some(number) = workspace_numbers::number(&tx, &ws)? else {
                    return Ok(rows);
                };
                for event_id in &events {
                    let delete = |stmt: &str| -> Result<u64, StoreError> {
                        tx.execute(stmt, params![number, event_id])
                            .map(|n| n as u64)
                            .map_err(|e| sql("erase", e))
                    };
                    rows.events +=
                        delete("DELETE FROM events WHERE workspace = ?1 AND event_id = ?2")?;
                    rows.subject_index_entries += delete_subjects(&tx, "erase", number, event_id)?;
                    rows.operational_records +=
                        delete("DELETE FROM operational WHERE workspace = ?1 AND event_id = ?2")?;
                    rows.dedup_markers +=
                        delete("DELETE FROM dedup WHERE workspace = ?1 AND event_id = ?2")?;
                }
                tx.commit().map_err(|e| sql("erase", e))?;
                Ok(rows)
            })
            .await;
        // Out of memory too (a read after the commit would not return them anyway).
        self.memo.forget(ids);
        erased
    }
}

/// The subjects the stored record of an event names, or `None` when there is no record or
/// it cannot be read.
fn recorded_subjects(
    c: &rusqlite::Connection,
    context: &'static str,
    workspace: i64,
    event_id: &Value,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT e.doc, w.workspace_id FROM events e
             JOIN workspace_numbers w ON w.number = e.workspace
             WHERE e.workspace = ?1 AND e.event_id = ?2",
        )
        .map_err(|e| sql(context, e))?;
    let mut rows = stmt
        .query(params![workspace, event_id])
        .map_err(|e| sql(context, e))?;
    let Some(row) = rows.next().map_err(|e| sql(context, e))? else {
        return Ok(None);
    };
    let doc = row.get_ref(0).map_err(|e| sql(context, e))?;
    let ws: String = row.get(1).map_err(|e| sql(context, e))?;
    let Ok(workspace) = WorkspaceId::parse(&ws) else {
        return Ok(None);
    };
    Ok(event_record::decode(context, &workspace, doc)
        .ok()
        .map(|e| e.subjects))
}

/// Deletes the subject index rows of one event (call before its record goes): by primary
/// key from the subjects its record names; when the record is missing or unreadable, by a
/// scan of the workspace's rows, so that no row outlives its event. Returns the rows deleted.
fn delete_subjects(
    c: &rusqlite::Connection,
    context: &'static str,
    workspace: i64,
    event_id: &Value,
) -> Result<u64, StoreError> {
    let deleted = match recorded_subjects(c, context, workspace, event_id)? {
        Some(subjects) => {
            let mut stmt = c
                .prepare_cached(
                    "DELETE FROM event_subjects
                     WHERE workspace = ?1 AND subject_key = ?2 AND event_id = ?3",
                )
                .map_err(|e| sql(context, e))?;
            let mut n = 0;
            for s in &subjects {
                n += stmt
                    .execute(params![workspace, subject_key(s), event_id])
                    .map_err(|e| sql(context, e))?;
            }
            n
        }
        None => c
            .execute(
                "DELETE FROM event_subjects WHERE workspace = ?1 AND event_id = ?2",
                params![workspace, event_id],
            )
            .map_err(|e| sql(context, e))?,
    };
    Ok(deleted as u64)
}

/// How many subject index rows one event has, looked up by primary key from the `subjects`
/// its record names.
fn count_subjects(
    c: &rusqlite::Connection,
    ws: &str,
    event_id: &Value,
    subjects: &[String],
) -> Result<u64, StoreError> {
    const CONTEXT: &str = "subject_footprint";
    let subjects: std::collections::BTreeSet<&String> = subjects.iter().collect();
    let mut stmt = c
        .prepare_cached(concat!(
            "SELECT EXISTS (SELECT 1 FROM event_subjects WHERE workspace = ",
            workspace_number_of_1!(),
            " AND subject_key = ?2 AND event_id = ?3)"
        ))
        .map_err(|e| sql(CONTEXT, e))?;
    let mut n = 0;
    for s in subjects {
        let present: bool = stmt
            .query_row(params![ws, subject_key(s), event_id], |r| r.get(0))
            .map_err(|e| sql(CONTEXT, e))?;
        n += u64::from(present);
    }
    Ok(n)
}

/// The contract suites' inspection reads: tests only (the `testkit` feature), never in a
/// release build.
#[cfg(feature = "testkit")]
mod inspection {
    use super::*;
    use tracklayer_core::ports::EventInspection;

    #[async_trait]
    impl EventInspection for SqliteEventStore {
        async fn events_by_subject(
            &self,
            ws: &WorkspaceId,
            subject: &str,
            page: Page,
            now: OffsetDateTime,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let (after, limit) = (page.after.as_ref(), page.limit);
            let workspace = ws.clone();
            let ws = ws.as_str().to_owned();
            let subject = subject_key(subject);
            let after = after.map_or(Value::Blob(Vec::new()), event_key);
            let now = unix_millis(now);
            let limit = limit.min(10_000) as i64;
            self.db
                .call("events_by_subject", move |c| {
                    let mut stmt = c
                        .prepare_cached(concat!(
                            "SELECT e.doc FROM event_subjects s
                             JOIN events e ON e.workspace = s.workspace AND e.event_id = s.event_id
                             WHERE s.workspace = ",
                            workspace_number_of_1!(),
                            " AND s.subject_key = ?2 AND s.event_id > ?3
                               AND e.expires_at > ?4
                             ORDER BY s.event_id LIMIT ?5",
                        ))
                        .map_err(|e| sql("events_by_subject", e))?;
                    let rows = stmt
                        .query_map(params![ws, subject, after, now, limit], |r| {
                            Ok(event_record::decode(
                                "events_by_subject",
                                &workspace,
                                r.get_ref(0)?,
                            ))
                        })
                        .map_err(|e| sql("events_by_subject", e))?;
                    rows.map(|r| r.map_err(|e| sql("events_by_subject", e))?)
                        .collect()
                })
                .await
        }

        async fn operational(
            &self,
            ws: &WorkspaceId,
            id: &EventId,
            now: OffsetDateTime,
        ) -> Result<Option<OperationalRecord>, StoreError> {
            Ok(self.operational_records(ws, &[*id], now).await?.pop())
        }
    }
}

/// The events (the `doc` of each row) `query` selects from `workspace`'s rows, in its order.
fn event_rows(
    c: &rusqlite::Connection,
    context: &'static str,
    workspace: &WorkspaceId,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredEvent>, StoreError> {
    crate::db::decoded_rows(c, context, query, params, |doc| {
        event_record::decode(context, workspace, doc)
    })
}

//! `DeliveryQueue` on SQLite, with SQS semantics: visibility timeouts, receive counts, a
//! dead-letter state after `max_receive_count` receives (SQS redrive), and replay.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use tracklayer_core::clock::{from_unix_millis, unix_millis, Clock, Ids};
use tracklayer_core::destination::{DestinationId, DestinationKind};
use tracklayer_core::dsr::{strip_events, Stripped};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::{decode_shared, encode_shared, EventId};
use tracklayer_core::ports::{
    DeadLetter, DeadLetterAdmin, Enqueuer, Outgoing, QueueConsumer, QueueDepth, Receipt, Received,
    Remainder, ReplayFilter,
};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{sql, Db};

pub struct SqliteDeliveryQueue {
    db: Db,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    max_receive_count: u32,
}

tracklayer_core::debug_fields!(SqliteDeliveryQueue: max_receive_count);

impl SqliteDeliveryQueue {
    /// SQS's default redrive in our template is 8 receives.
    pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 8;

    pub fn new(db: Db, clock: Arc<dyn Clock>, ids: Arc<dyn Ids>, max_receive_count: u32) -> Self {
        Self {
            db,
            clock,
            ids,
            max_receive_count: max_receive_count.max(1),
        }
    }
}

/// The sealed fields that the items by reference of one request's messages share
/// ([`Outgoing::shared`]): one row, referenced by each of those messages (`queue.shared`) and
/// by every part a message is replaced with. Triggers count the references, so that whatever
/// deletes the last message (ack, replace, purge, erasure) deletes the row with it, in the
/// same transaction.
pub(crate) const SHARED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_shared (
    id INTEGER PRIMARY KEY,
    refs INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS queue_shared_taken AFTER INSERT ON queue
    WHEN new.shared IS NOT NULL
BEGIN
    UPDATE queue_shared SET refs = refs + 1 WHERE id = new.shared;
END;
CREATE TRIGGER IF NOT EXISTS queue_shared_released AFTER DELETE ON queue
    WHEN old.shared IS NOT NULL
BEGIN
    UPDATE queue_shared SET refs = refs - 1 WHERE id = old.shared;
    DELETE FROM queue_shared WHERE id = old.shared AND refs <= 0;
END;
";

/// A message as a queue row: kind, destination, workspace, body, visible at (unix ms), and
/// its shared sealed fields.
pub(crate) type Row = (
    &'static str,
    String,
    String,
    Vec<u8>,
    i64,
    Option<Arc<Vec<u8>>>,
);

/// Messages as rows enqueued at `now`, visible after their delay.
pub(crate) fn rows(messages: &[Outgoing], now: i64) -> Vec<Row> {
    messages
        .iter()
        .map(|m| {
            (
                m.kind.as_str(),
                m.destination_id.as_str().to_owned(),
                m.workspace_id.as_str().to_owned(),
                m.body.clone(),
                now.saturating_add(millis(m.delay)),
                m.shared.clone(),
            )
        })
        .collect()
}

/// Inserts rows enqueued at `now`: live, or straight into the dead letters with a reason.
/// Shared sealed fields are stored once per value (`Arc::ptr_eq`); a row without its own
/// refers to `inherited` (the shared fields of the message it is a part of).
pub(crate) fn insert_rows(
    c: &rusqlite::Connection,
    rows: &[Row],
    now: i64,
    dead: Option<&str>,
    inherited: Option<i64>,
) -> Result<(), StoreError> {
    let mut stmt = c
        .prepare_cached(
            "INSERT INTO queue (kind, destination_id, workspace_id, body, enqueued_at, visible_at, dead_at, dead_reason, shared)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(|e| sql("enqueue", e))?;
    let dead_at = dead.map(|_| now);
    let mut stored: Vec<(*const Vec<u8>, i64)> = Vec::new();
    for (kind, dest, ws, body, visible_at, shared) in rows {
        let shared_id = match shared {
            None => inherited,
            Some(fields) => match stored.iter().find(|(p, _)| *p == Arc::as_ptr(fields)) {
                Some((_, id)) => Some(*id),
                None => {
                    execute_cached(
                        c,
                        "INSERT INTO queue_shared (body) VALUES (?1)",
                        [fields.as_slice()],
                    )
                    .map_err(|e| sql("enqueue", e))?;
                    let id = c.last_insert_rowid();
                    stored.push((Arc::as_ptr(fields), id));
                    Some(id)
                }
            },
        };
        stmt.execute(params![
            kind, dest, ws, body, now, visible_at, dead_at, dead, shared_id
        ])
        .map_err(|e| sql("enqueue", e))?;
    }
    Ok(())
}

/// Runs `statement` from the connection's statement cache: the queue's per-message writes
/// (receive, ack, hold, retry, dead letter) run hundreds of times a second while delivering,
/// and parsing one again each time was 1.5–2 % of `serve`'s core under `perf`.
fn execute_cached(
    c: &rusqlite::Connection,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    c.prepare_cached(statement)?.execute(params)
}

/// A dead letter's reason as stored: at most 1,000 characters.
fn stored_reason(reason: &str) -> String {
    reason.chars().take(1000).collect()
}

impl SqliteDeliveryQueue {
    /// Makes the live message `receipt` names visible again after `delay` with `statement`,
    /// whose parameters are the message's id (`?1`), the receipt's token (`?2`), the new
    /// `visible_at` (`?3`) and the kind (`?4`).
    async fn visible_after(
        &self,
        context: &'static str,
        kind: DestinationKind,
        receipt: &Receipt,
        delay: Duration,
        statement: &'static str,
    ) -> Result<(), StoreError> {
        let (id, token) = parse_receipt(receipt)?;
        let visible_at = unix_millis(self.clock.now()).saturating_add(millis(delay));
        self.db
            .write(context, move |c| {
                let params = params![id, token, visible_at, kind.as_str()];
                update_received(c, context, statement, params)
            })
            .await
    }

    /// Inserts messages, live (visible after their delay) or straight into the dead letters.
    async fn insert(&self, messages: &[Outgoing], dead: Option<String>) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = unix_millis(self.clock.now());
        let rows = rows(messages, now);
        self.db
            .write("enqueue", move |c| {
                insert_rows(c, &rows, now, dead.as_deref(), None)
            })
            .await
    }
}

/// Runs `statement`, an update of the live message a receipt names: `NotFound("receipt")`
/// when it changed none (the receipt was spent, or the message is settled or dead).
fn update_received(
    c: &rusqlite::Connection,
    context: &'static str,
    statement: &str,
    params: impl rusqlite::Params,
) -> Result<(), StoreError> {
    match execute_cached(c, statement, params).map_err(|e| sql(context, e))? {
        0 => Err(StoreError::NotFound("receipt")),
        _ => Ok(()),
    }
}

fn parse_receipt(r: &Receipt) -> Result<(i64, String), StoreError> {
    let (id, token) = r.0.split_once(':').ok_or(StoreError::NotFound("receipt"))?;
    let id = id.parse().map_err(|_| StoreError::NotFound("receipt"))?;
    Ok((id, token.to_owned()))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn ids_of(ws: String, dest: String) -> Result<(WorkspaceId, DestinationId), StoreError> {
    let ws = WorkspaceId::parse(&ws).map_err(|e| StoreError::corrupt("queue", e))?;
    let dest = DestinationId::parse(&dest).map_err(|e| StoreError::corrupt("queue", e))?;
    Ok((ws, dest))
}

impl SqliteDeliveryQueue {
    /// Test support (no production caller, so not in a port): the kind's dead letters,
    /// oldest first.
    pub async fn dead_letters(
        &self,
        kind: DestinationKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = limit.min(10_000) as i64;
        self.db
            .call("dead_letters", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT workspace_id, destination_id, body, dead_reason, dead_at FROM queue
                         WHERE kind = ?1 AND dead_at IS NOT NULL ORDER BY dead_at, id LIMIT ?2",
                    )
                    .map_err(|e| sql("dead_letters", e))?;
                let rows = stmt
                    .query_map(params![kind.as_str(), limit], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    })
                    .map_err(|e| sql("dead_letters", e))?;
                let mut out = Vec::new();
                for row in rows {
                    let (ws, dest, body, reason, at) = row.map_err(|e| sql("dead_letters", e))?;
                    let (workspace_id, destination_id) = ids_of(ws, dest)?;
                    out.push(DeadLetter {
                        workspace_id,
                        destination_id,
                        body,
                        reason: reason.unwrap_or_default(),
                        dead_at: from_unix_millis(at),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// Test support (no production caller, so not in a port): messages waiting, in
    /// flight and dead.
    pub async fn depth(&self, kind: DestinationKind) -> Result<QueueDepth, StoreError> {
        let now = unix_millis(self.clock.now());
        self.db
            .call("depth", move |c| {
                c.query_row(
                    "SELECT
                        COALESCE(SUM(dead_at IS NULL AND visible_at <= ?2), 0),
                        COALESCE(SUM(dead_at IS NULL AND visible_at > ?2), 0),
                        COALESCE(SUM(dead_at IS NOT NULL), 0)
                     FROM queue WHERE kind = ?1",
                    params![kind.as_str(), now],
                    |r| {
                        Ok(QueueDepth {
                            visible: r.get::<_, i64>(0)? as u64,
                            in_flight: r.get::<_, i64>(1)? as u64,
                            dead: r.get::<_, i64>(2)? as u64,
                        })
                    },
                )
                .map_err(|e| sql("depth", e))
            })
            .await
    }
}

#[async_trait]
impl Enqueuer for SqliteDeliveryQueue {
    async fn enqueue(&self, messages: &[Outgoing]) -> Result<(), StoreError> {
        self.insert(messages, None).await
    }

    /// By reference: the events are in the same database, recorded before their items are
    /// queued, so a message need not copy them.
    fn items_by_reference(&self) -> bool {
        true
    }
}

#[async_trait]
impl QueueConsumer for SqliteDeliveryQueue {
    async fn enqueue_dead(&self, messages: &[Outgoing], reason: &str) -> Result<(), StoreError> {
        self.insert(messages, Some(stored_reason(reason))).await
    }

    async fn receive(
        &self,
        kind: DestinationKind,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Received>, StoreError> {
        let now = unix_millis(self.clock.now());
        let visible_at = now.saturating_add(millis(visibility));
        let max_receives = i64::from(self.max_receive_count);
        let tokens: Vec<String> = (0..max.min(1000)).map(|_| self.ids.token(16)).collect();
        self.db
            .write("receive", move |c| {
                let tx: &rusqlite::Connection = c;
                // SQS redrive: a message received max_receive_count times and visible again
                // goes to the dead-letter queue instead of being delivered once more.
                execute_cached(
                    tx,
                    "UPDATE queue SET dead_at = ?1, dead_reason = 'received ' || receive_count || ' times without success'
                     WHERE kind = ?2 AND dead_at IS NULL AND visible_at <= ?1 AND receive_count >= ?3",
                    params![now, kind.as_str(), max_receives],
                )
                .map_err(|e| sql("receive", e))?;
                type Picked = (i64, String, String, Vec<u8>, i64, i64, Option<Vec<u8>>);
                let picked: Vec<Picked> = {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT q.id, q.workspace_id, q.destination_id, q.body, q.receive_count, q.enqueued_at, s.body
                             FROM queue q LEFT JOIN queue_shared s ON s.id = q.shared
                             WHERE q.kind = ?1 AND q.dead_at IS NULL AND q.visible_at <= ?2
                             ORDER BY q.visible_at, q.id LIMIT ?3",
                        )
                        .map_err(|e| sql("receive", e))?;
                    let rows = stmt
                        .query_map(params![kind.as_str(), now, tokens.len() as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                        })
                        .map_err(|e| sql("receive", e))?;
                    rows.collect::<Result<_, _>>().map_err(|e| sql("receive", e))?
                };
                let mut out = Vec::with_capacity(picked.len());
                {
                    let mut mark = tx
                        .prepare_cached(
                            "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 WHERE id = ?1",
                        )
                        .map_err(|e| sql("receive", e))?;
                    for ((id, ws, dest, body, count, enqueued, shared), token) in picked.into_iter().zip(&tokens) {
                        mark.execute(params![id, visible_at, token])
                            .map_err(|e| sql("receive", e))?;
                        let (workspace_id, destination_id) = ids_of(ws, dest)?;
                        out.push(Received {
                            receipt: Receipt(format!("{id}:{token}")),
                            destination_id,
                            workspace_id,
                            body,
                            receive_count: u32::try_from(count + 1).unwrap_or(u32::MAX),
                            enqueued_at: from_unix_millis(enqueued),
                            shared,
                        });
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn ack(&self, kind: DestinationKind, receipt: &Receipt) -> Result<(), StoreError> {
        let (id, _) = parse_receipt(receipt)?;
        self.db
            .write("ack", move |c| {
                // Idempotent, like SQS DeleteMessage: acking twice is fine.
                execute_cached(
                    c,
                    "DELETE FROM queue WHERE id = ?1 AND kind = ?2",
                    params![id, kind.as_str()],
                )
                .map_err(|e| sql("ack", e))?;
                Ok(())
            })
            .await
    }

    async fn retry_later(
        &self,
        kind: DestinationKind,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), StoreError> {
        self.visible_after(
            "retry_later",
            kind,
            receipt,
            delay,
            "UPDATE queue SET visible_at = ?3 WHERE id = ?1 AND receipt = ?2 AND kind = ?4 AND dead_at IS NULL",
        )
        .await
    }

    /// One statement: visible again after `delay`, the receive given back, the receipt spent.
    async fn hold(
        &self,
        kind: DestinationKind,
        message: &Received,
        delay: Duration,
    ) -> Result<(), StoreError> {
        self.visible_after(
            "hold",
            kind,
            &message.receipt,
            delay,
            "UPDATE queue SET visible_at = ?3, receive_count = MAX(receive_count - 1, 0), receipt = NULL
             WHERE id = ?1 AND receipt = ?2 AND kind = ?4 AND dead_at IS NULL",
        )
        .await
    }

    /// One transaction: the message deleted, its remainder inserted.
    async fn replace(
        &self,
        kind: DestinationKind,
        message: &Received,
        remainder: &Remainder,
    ) -> Result<(), StoreError> {
        let (id, token) = parse_receipt(&message.receipt)?;
        let now = unix_millis(self.clock.now());
        let (retry, dead) = (rows(&remainder.retry, now), rows(&remainder.dead, now));
        let reason = stored_reason(&remainder.reason);
        self.db
            .write("replace", move |c| {
                // The parts first, taking the message's shared fields, then the message:
                // its delete releases its own reference only.
                let shared: Option<i64> = c
                    .prepare_cached(
                        "SELECT shared FROM queue WHERE id = ?1 AND receipt = ?2 AND kind = ?3 AND dead_at IS NULL",
                    )
                    .and_then(|mut s| s.query_row(params![id, token, kind.as_str()], |r| r.get(0)))
                    .optional()
                    .map_err(|e| sql("replace", e))?
                    .ok_or(StoreError::NotFound("receipt"))?;
                insert_rows(c, &retry, now, None, shared)?;
                insert_rows(c, &dead, now, Some(&reason), shared)?;
                execute_cached(c, "DELETE FROM queue WHERE id = ?1", params![id])
                    .map_err(|e| sql("replace", e))?;
                Ok(())
            })
            .await
    }

    async fn dead_letter(
        &self,
        kind: DestinationKind,
        message: &Received,
        reason: &str,
    ) -> Result<(), StoreError> {
        let (id, token) = parse_receipt(&message.receipt)?;
        let now = unix_millis(self.clock.now());
        let reason = stored_reason(reason);
        self.db
            .write("dead_letter", move |c| {
                update_received(
                    c,
                    "dead_letter",
                    "UPDATE queue SET dead_at = ?3, dead_reason = ?4 WHERE id = ?1 AND receipt = ?2 AND kind = ?5 AND dead_at IS NULL",
                    params![id, token, now, reason, kind.as_str()],
                )
            })
            .await
    }
}

#[async_trait]
impl DeadLetterAdmin for SqliteDeliveryQueue {
    async fn replay(
        &self,
        kind: DestinationKind,
        filter: &ReplayFilter,
    ) -> Result<u64, StoreError> {
        let now = unix_millis(self.clock.now());
        let dest = filter
            .destination_id
            .as_ref()
            .map(|d| d.as_str().to_owned());
        let since = filter.since.map(unix_millis).unwrap_or(i64::MIN);
        let until = filter.until.map(unix_millis).unwrap_or(i64::MAX);
        self.db
            .call("replay", move |c| {
                let n = c
                    .execute(
                        "UPDATE queue SET dead_at = NULL, dead_reason = NULL, receive_count = 0,
                                receipt = NULL, visible_at = ?2
                         WHERE kind = ?1 AND dead_at IS NOT NULL
                           AND (?3 IS NULL OR destination_id = ?3)
                           AND dead_at >= ?4 AND dead_at <= ?5",
                        params![kind.as_str(), now, dest, since, until],
                    )
                    .map_err(|e| sql("replay", e))?;
                Ok(n as u64)
            })
            .await
    }

    async fn purge_events(
        &self,
        kind: DestinationKind,
        ws: &WorkspaceId,
        events: &[EventId],
    ) -> Result<u64, StoreError> {
        let workspace = ws.clone();
        let events: HashSet<EventId> = events.iter().copied().collect();
        self.db
            .call("purge_events", move |c| {
                let tx = c.transaction().map_err(|e| sql("purge_events", e))?;
                let rows: Vec<(i64, Vec<u8>)> = {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT id, body FROM queue WHERE kind = ?1 AND workspace_id = ?2",
                        )
                        .map_err(|e| sql("purge_events", e))?;
                    let rows = stmt
                        .query_map(params![kind.as_str(), workspace.as_str()], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .map_err(|e| sql("purge_events", e))?;
                    rows.collect::<Result<_, _>>()
                        .map_err(|e| sql("purge_events", e))?
                };
                let mut removed = 0u64;
                for (id, body) in rows {
                    match strip_events(&body, &workspace, &events) {
                        Stripped::Untouched => {}
                        Stripped::Rewritten { body, removed: n } => {
                            tx.execute(
                                "UPDATE queue SET body = ?2 WHERE id = ?1",
                                params![id, body],
                            )
                            .map_err(|e| sql("purge_events", e))?;
                            removed += n;
                        }
                        Stripped::Emptied { removed: n } => {
                            tx.execute("DELETE FROM queue WHERE id = ?1", params![id])
                                .map_err(|e| sql("purge_events", e))?;
                            removed += n;
                        }
                    }
                }
                strip_shared(&tx, &workspace, &events)?;
                tx.commit().map_err(|e| sql("purge_events", e))?;
                Ok(removed)
            })
            .await
    }
}

/// Removes `events`' entries from the shared sealed fields of `workspace`'s messages (of any
/// destination: one request's messages share them).
fn strip_shared(
    tx: &rusqlite::Connection,
    workspace: &WorkspaceId,
    events: &HashSet<EventId>,
) -> Result<(), StoreError> {
    let shared: Vec<(i64, Vec<u8>)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT DISTINCT s.id, s.body FROM queue_shared s JOIN queue q ON q.shared = s.id
                 WHERE q.workspace_id = ?1",
            )
            .map_err(|e| sql("purge_events", e))?;
        let rows = stmt
            .query_map([workspace.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| sql("purge_events", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| sql("purge_events", e))?
    };
    for (id, body) in shared {
        let kept = match decode_shared(&body) {
            Ok(entries) if !entries.keys().any(|e| events.contains(e)) => continue,
            Ok(entries) => encode_shared(
                entries
                    .iter()
                    .filter(|(e, _)| !events.contains(e))
                    .map(|(e, s)| (*e, s)),
            ),
            Err(e) => {
                // Which entries are the erased events' cannot be told: none are kept (the
                // other items then do not open, and are dead-lettered, never sent without).
                tracing::error!(shared = id, error = %e, "unreadable shared sealed fields cleared by an erasure");
                encode_shared([])
            }
        };
        tx.execute(
            "UPDATE queue_shared SET body = ?2 WHERE id = ?1",
            params![id, kept],
        )
        .map_err(|e| sql("purge_events", e))?;
    }
    Ok(())
}

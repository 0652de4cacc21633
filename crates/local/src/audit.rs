//! `AuditLog` on SQLite: the chain is extended inside one immediate transaction, so the
//! sequence is gapless even with concurrent writers (processes included).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;
use tracklayer_core::audit::{AuditEntry, AuditFilter, NewAuditEntry, RETENTION_DAYS};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::AuditLog;
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{from_json, json, sql, Db};

#[derive(Debug, Clone)]
pub struct SqliteAuditLog {
    db: Db,
}

impl SqliteAuditLog {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes entries older than a year (the sweeper), except each workspace's last one,
    /// which the next append chains onto. Reads filter expired entries anyway.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        self.db
            .call("audit_sweep", move |c| {
                c.execute(
                    "DELETE FROM audit_log WHERE expires_at <= ?1 AND seq < (
                        SELECT MAX(a.seq) FROM audit_log a WHERE a.workspace_id = audit_log.workspace_id)",
                    [now],
                )
                .map(|n| n as u64)
                .map_err(|e| sql("audit_sweep", e))
            })
            .await
    }
}

#[async_trait]
impl AuditLog for SqliteAuditLog {
    async fn append(
        &self,
        entry: NewAuditEntry,
        at: OffsetDateTime,
    ) -> Result<AuditEntry, StoreError> {
        self.db
            .call("audit_append", move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| sql("audit_append", e))?;
                let last: Option<String> = tx
                    .query_row(
                        "SELECT doc FROM audit_log WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1",
                        [entry.workspace_id.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("audit_append", e))?;
                let prev: Option<AuditEntry> =
                    last.map(|d| from_json("audit_append", &d)).transpose()?;
                let e = AuditEntry::chain(entry, prev.as_ref(), at);
                let expires = unix_millis(at + time::Duration::days(RETENTION_DAYS));
                tx.execute(
                    "INSERT INTO audit_log (workspace_id, seq, at, actor, action, expires_at, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        e.workspace_id.as_str(),
                        e.seq as i64,
                        unix_millis(e.time),
                        e.actor,
                        e.action,
                        expires,
                        json("audit_append", &e)?
                    ],
                )
                .map_err(|e| sql("audit_append", e))?;
                tx.commit().map_err(|e| sql("audit_append", e))?;
                Ok(e)
            })
            .await
    }

    async fn list(
        &self,
        ws: &WorkspaceId,
        filter: &AuditFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let ws = ws.as_str().to_owned();
        let f = filter.clone();
        let now = unix_millis(now);
        self.db
            .call("audit_list", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT doc FROM audit_log WHERE workspace_id = ?1 AND seq > ?2
                           AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR action = ?4)
                           AND at >= ?5 AND at <= ?6 AND expires_at > ?7
                         ORDER BY seq LIMIT ?8",
                    )
                    .map_err(|e| sql("audit_list", e))?;
                let rows = stmt
                    .query_map(
                        params![
                            ws,
                            f.after.unwrap_or(0) as i64,
                            f.actor,
                            f.action,
                            f.since.map(unix_millis).unwrap_or(i64::MIN),
                            f.until.map(unix_millis).unwrap_or(i64::MAX),
                            now,
                            f.limit.clamp(1, 10_000) as i64
                        ],
                        |r| r.get::<_, String>(0),
                    )
                    .map_err(|e| sql("audit_list", e))?;
                rows.map(|r| {
                    r.map_err(|e| sql("audit_list", e))
                        .and_then(|d| from_json("audit_list", &d))
                })
                .collect()
            })
            .await
    }
}

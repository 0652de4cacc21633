//! `AuditLog` on SQLite: entries in `audit_log`, the chain's anchor (an `AuditHead`) in
//! `audit_head`. An append extends the chain and moves the head inside one immediate
//! transaction, so the sequence is gapless even with concurrent writers (processes included).
//! `expires_at` is written for the schema's sake but never read: listing filters by the
//! entry's own time, and retention (`retire`, run by the sweeper) removes entries only behind
//! a signed checkpoint.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use time::OffsetDateTime;
use tracklayer_core::audit::key::store_error;
use tracklayer_core::audit::{
    plan_retirement, retention, AuditEntry, AuditFilter, AuditHead, AuditKey, AuditKeys,
    NewAuditEntry, StoredEntry, GENESIS_ACTION,
};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::crypto::WrappedKey;
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::{AuditLog, Keyring};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{doc_rows, from_json, json, sql, Db};

/// Tries at creating a workspace's head before reporting contention.
const APPEND_ATTEMPTS: u32 = 4;
/// Entries retired per workspace and run.
const RETIRE_BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub struct SqliteAuditLog {
    db: Db,
    keys: Arc<AuditKeys>,
}

/// Reads the head inside a transaction.
fn read_head(tx: &Transaction<'_>, ws: &str) -> Result<Option<AuditHead>, StoreError> {
    let doc: Option<String> = tx
        .query_row(
            "SELECT doc FROM audit_head WHERE workspace_id = ?1",
            [ws],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| sql("audit_head", e))?;
    doc.map(|d| from_json("audit_head", &d)).transpose()
}

fn write_head(tx: &Transaction<'_>, ws: &str, head: &AuditHead) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_head (workspace_id, seq, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (workspace_id) DO UPDATE SET seq = excluded.seq, doc = excluded.doc",
        params![ws, head.seq as i64, json("audit_head", head)?],
    )
    .map_err(|e| sql("audit_head", e))?;
    Ok(())
}

fn insert(tx: &Transaction<'_>, e: &AuditEntry) -> Result<(), StoreError> {
    let expires = unix_millis(e.time + retention());
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
            json("audit_append", e)?
        ],
    )
    .map_err(|e| sql("audit_append", e))?;
    Ok(())
}

/// The head to extend: the stored one, or a new chain whose genesis entry is written now
/// (after the last entry of a legacy chain, if there is one). `None` when the stored head's
/// key is not the one the caller opened (another writer created the head meanwhile).
fn head_for_append(
    tx: &Transaction<'_>,
    ws: &WorkspaceId,
    at: OffsetDateTime,
    key: &AuditKey,
    wrapped: &WrappedKey,
) -> Result<Option<AuditHead>, StoreError> {
    if let Some(h) = read_head(tx, ws.as_str())? {
        return Ok((&h.key == wrapped).then_some(h));
    }
    let legacy: Option<String> = tx
        .query_row(
            "SELECT doc FROM audit_log WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1",
            [ws.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| sql("audit_append", e))?;
    let legacy: Option<AuditEntry> = legacy.map(|d| from_json("audit_append", &d)).transpose()?;
    let genesis = AuditEntry::genesis(
        ws,
        legacy.as_ref().map(|e| (e.seq, e.hash.as_str())),
        at,
        key,
    );
    insert(tx, &genesis)?;
    Ok(Some(AuditHead {
        seq: genesis.seq,
        hash: genesis.hash.clone(),
        genesis_seq: genesis.seq,
        key: wrapped.clone(),
        checkpoint: None,
    }))
}

impl SqliteAuditLog {
    /// The audit key is opened (and created) through `keyring` with the platform key.
    pub fn new(db: Db, keyring: Arc<dyn Keyring>) -> Self {
        Self {
            db,
            keys: Arc::new(AuditKeys::new(keyring)),
        }
    }

    /// The workspace's audit key and its wrapped form: the head's, or a new one.
    async fn key(&self, ws: &WorkspaceId) -> Result<(AuditKey, WrappedKey), StoreError> {
        match self.head(ws).await? {
            Some(h) => {
                let key = self
                    .keys
                    .open(ws, &h.key)
                    .await
                    .map_err(|e| store_error("audit_key", e))?;
                Ok((key, h.key))
            }
            None => self
                .keys
                .create(ws)
                .await
                .map_err(|e| store_error("audit_key", e)),
        }
    }

    /// Retention for every workspace with a keyed chain (the sweeper): see
    /// [`AuditLog::retire`]. A legacy chain is retired once its next append migrated it.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let workspaces: Vec<String> = self
            .db
            .call("audit_sweep", |c| {
                let mut stmt = c
                    .prepare("SELECT workspace_id FROM audit_head")
                    .map_err(|e| sql("audit_sweep", e))?;
                let rows = stmt
                    .query_map([], |r| r.get(0))
                    .map_err(|e| sql("audit_sweep", e))?;
                rows.collect::<Result<_, _>>()
                    .map_err(|e| sql("audit_sweep", e))
            })
            .await?;
        let mut removed = 0;
        for ws in workspaces {
            let ws = WorkspaceId::parse(&ws).map_err(|e| StoreError::corrupt("audit_sweep", e))?;
            removed += self.retire(&ws, now).await?;
        }
        Ok(removed)
    }

    async fn stored_before(
        &self,
        ws: &WorkspaceId,
        after: u64,
        until_millis: i64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .call("audit_stored", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT seq, at, actor, action, doc FROM audit_log
                         WHERE workspace_id = ?1 AND seq > ?2 AND at <= ?3
                         ORDER BY seq LIMIT ?4",
                    )
                    .map_err(|e| sql("audit_stored", e))?;
                let rows = stmt
                    .query_map(
                        params![
                            ws,
                            after as i64,
                            until_millis,
                            limit.clamp(1, 10_000) as i64
                        ],
                        |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, String>(3)?,
                                r.get::<_, String>(4)?,
                            ))
                        },
                    )
                    .map_err(|e| sql("audit_stored", e))?;
                rows.map(|r| {
                    let (seq, at, actor, action, doc) = r.map_err(|e| sql("audit_stored", e))?;
                    let entry: AuditEntry = from_json("audit_stored", &doc)?;
                    Ok(StoredEntry::new(entry, seq as u64, at, &actor, &action))
                })
                .collect()
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
        let ws = entry.workspace_id.clone();
        for _ in 0..APPEND_ATTEMPTS {
            let (key, wrapped) = self.key(&ws).await?;
            let entry = entry.clone();
            let ws = ws.clone();
            let appended = self
                .db
                .call("audit_append", move |c| {
                    let tx = c
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .map_err(|e| sql("audit_append", e))?;
                    let Some(head) = head_for_append(&tx, &ws, at, &key, &wrapped)? else {
                        return Ok(None);
                    };
                    let e = AuditEntry::seal(entry, (head.seq, &head.hash), at, &key);
                    insert(&tx, &e)?;
                    write_head(&tx, ws.as_str(), &head.after(&e))?;
                    tx.commit().map_err(|e| sql("audit_append", e))?;
                    Ok(Some(e))
                })
                .await?;
            if let Some(e) = appended {
                return Ok(e);
            }
        }
        Err(StoreError::transient(
            "audit_append",
            format!("the chain head kept changing after {APPEND_ATTEMPTS} attempts"),
        ))
    }

    async fn list(
        &self,
        ws: &WorkspaceId,
        filter: &AuditFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let ws = ws.as_str().to_owned();
        let f = filter.clone();
        let since = f
            .since
            .map(unix_millis)
            .unwrap_or(i64::MIN)
            .max(unix_millis(now - retention()) + 1);
        self.db
            .call("audit_list", move |c| {
                let entries: Vec<AuditEntry> = doc_rows(
                    c,
                    "audit_list",
                    "SELECT doc FROM audit_log WHERE workspace_id = ?1 AND seq > ?2
                           AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR action = ?4)
                           AND at >= ?5 AND at <= ?6 AND action != ?8
                         ORDER BY seq LIMIT ?7",
                    params![
                        ws,
                        f.after.unwrap_or(0) as i64,
                        f.actor,
                        f.action,
                        since,
                        f.until.map(unix_millis).unwrap_or(i64::MAX),
                        f.limit.clamp(1, 10_000) as i64,
                        GENESIS_ACTION
                    ],
                )?;
                Ok(entries.into_iter().filter(|e| e.is_retained(now)).collect())
            })
            .await
    }

    async fn head(&self, ws: &WorkspaceId) -> Result<Option<AuditHead>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .call("audit_head", move |c| {
                let tx = c.transaction().map_err(|e| sql("audit_head", e))?;
                read_head(&tx, &ws)
            })
            .await
    }

    async fn stored(
        &self,
        ws: &WorkspaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.stored_before(ws, after, i64::MAX, limit).await
    }

    async fn retire(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<u64, StoreError> {
        let Some(head) = self.head(ws).await? else {
            return Ok(0);
        };
        let key = self
            .keys
            .open(ws, &head.key)
            .await
            .map_err(|e| store_error("audit_retire", e))?;
        let floor = head.checkpoint.as_ref().map_or(0, |c| c.seq);
        let old = self
            .stored_before(ws, floor, unix_millis(now - retention()), RETIRE_BATCH)
            .await?;
        let Some(cp) = plan_retirement(ws, &head, &key, &old, now) else {
            return Ok(0);
        };
        let ws = ws.as_str().to_owned();
        self.db
            .call("audit_retire", move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| sql("audit_retire", e))?;
                let Some(mut current) = read_head(&tx, &ws)? else {
                    return Ok(0);
                };
                if current.checkpoint != head.checkpoint {
                    // Another sweeper moved it meanwhile: its run counts.
                    return Ok(0);
                }
                let seq = cp.seq;
                current.checkpoint = Some(cp);
                write_head(&tx, &ws, &current)?;
                let removed = tx
                    .execute(
                        "DELETE FROM audit_log WHERE workspace_id = ?1 AND seq <= ?2",
                        params![ws, seq as i64],
                    )
                    .map_err(|e| sql("audit_retire", e))?;
                tx.commit().map_err(|e| sql("audit_retire", e))?;
                Ok(removed as u64)
            })
            .await
    }

    fn keys(&self) -> &AuditKeys {
        &self.keys
    }
}

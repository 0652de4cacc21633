//! `DsrStore` on SQLite: data-subject requests, the suppression list and access exports.
//!
//! Requests and suppression entries carry `expires_at` (Unix ms, `NULL` for never): a closed
//! workspace's are stamped to end with its account data (`end_with_account`), and `sweep`
//! deletes them then, with expired export parts. Updates of a request leave its stamp.

use async_trait::async_trait;
use rusqlite::params;
use rusqlite::types::Value;
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::crypto::Sealed;
use tracklayer_core::dsr::{DsrId, DsrRequest};
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::{DsrStore, ExportPart, SuppressionList};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{json, sql, Db};

#[derive(Debug, Clone)]
pub struct SqliteDsrStore {
    db: Db,
}

impl SqliteDsrStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SuppressionList for SqliteDsrStore {
    async fn suppressed(&self, ws: &WorkspaceId) -> Result<Vec<String>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .call("suppressed", move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT token FROM dsr_suppressions WHERE workspace_id = ?1")
                    .map_err(|e| sql("suppressed", e))?;
                let rows = stmt
                    .query_map([ws], |r| r.get::<_, String>(0))
                    .map_err(|e| sql("suppressed", e))?;
                rows.collect::<Result<_, _>>()
                    .map_err(|e| sql("suppressed", e))
            })
            .await
    }
}

#[async_trait]
impl DsrStore for SqliteDsrStore {
    async fn create_request(&self, request: &DsrRequest) -> Result<(), StoreError> {
        self.db
            .execute(
                "create_request",
                "INSERT INTO dsr_requests (workspace_id, id, submitted_at, open, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                vec![
                    Value::from(request.workspace_id.as_str().to_owned()),
                    Value::from(request.id.as_str().to_owned()),
                    Value::from(unix_millis(request.submitted_at)),
                    Value::from(request.status.is_open()),
                    Value::from(json("dsr_requests", request)?),
                ],
            )
            .await
    }

    async fn update_request(&self, request: &DsrRequest) -> Result<(), StoreError> {
        self.db
            .change_existing(
                "update_request",
                "data-subject request",
                "UPDATE dsr_requests SET open = ?3, doc = ?4 WHERE workspace_id = ?1 AND id = ?2",
                vec![
                    Value::from(request.workspace_id.as_str().to_owned()),
                    Value::from(request.id.as_str().to_owned()),
                    Value::from(request.status.is_open()),
                    Value::from(json("dsr_requests", request)?),
                ],
            )
            .await
    }

    async fn request(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
    ) -> Result<Option<DsrRequest>, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.as_str().to_owned());
        self.db
            .doc(
                "request",
                "SELECT doc FROM dsr_requests WHERE workspace_id = ?1 AND id = ?2",
                vec![ws.into(), id.into()],
            )
            .await
    }

    async fn requests(
        &self,
        ws: &WorkspaceId,
        limit: usize,
    ) -> Result<Vec<DsrRequest>, StoreError> {
        let ws = ws.as_str().to_owned();
        let limit = limit.min(10_000) as i64;
        self.db
            .docs(
                "requests",
                "SELECT doc FROM dsr_requests WHERE workspace_id = ?1
                         ORDER BY submitted_at DESC, id DESC LIMIT ?2",
                vec![ws.into(), limit.into()],
            )
            .await
    }

    async fn open_requests(&self, limit: usize) -> Result<Vec<DsrRequest>, StoreError> {
        let limit = limit.min(10_000) as i64;
        self.db
            .docs(
                "open_requests",
                "SELECT doc FROM dsr_requests WHERE open = 1
                         ORDER BY submitted_at, id LIMIT ?1",
                vec![limit.into()],
            )
            .await
    }

    async fn suppress(
        &self,
        ws: &WorkspaceId,
        tokens: &[String],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let ws = ws.as_str().to_owned();
        let tokens = tokens.to_vec();
        let at = unix_millis(at);
        self.db
            .transaction("suppress", move |tx| {
                for t in &tokens {
                    tx.execute(
                        "INSERT OR IGNORE INTO dsr_suppressions (workspace_id, token, at) VALUES (?1, ?2, ?3)",
                        params![ws, t, at],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn put_export_part(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
        part: &ExportPart,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "put_export_part",
                "INSERT INTO dsr_exports (workspace_id, request_id, part, sealed, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (workspace_id, request_id, part)
                     DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at",
                vec![
                    Value::from(ws.as_str().to_owned()),
                    Value::from(id.as_str().to_owned()),
                    Value::from(i64::from(part.number)),
                    Value::from(part.sealed.0.clone()),
                    Value::from(unix_millis(part.expires_at)),
                ],
            )
            .await
    }

    async fn export_parts(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
        now: OffsetDateTime,
    ) -> Result<Vec<Sealed>, StoreError> {
        let (ws, id, now) = (
            ws.as_str().to_owned(),
            id.as_str().to_owned(),
            unix_millis(now),
        );
        self.db
            .call("export_parts", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT sealed FROM dsr_exports
                         WHERE workspace_id = ?1 AND request_id = ?2 AND expires_at > ?3
                         ORDER BY part",
                    )
                    .map_err(|e| sql("export_parts", e))?;
                let rows = stmt
                    .query_map(params![ws, id, now], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(|e| sql("export_parts", e))?;
                rows.map(|r| r.map(Sealed).map_err(|e| sql("export_parts", e)))
                    .collect()
            })
            .await
    }

    async fn delete_export(&self, ws: &WorkspaceId, id: &DsrId) -> Result<u64, StoreError> {
        self.db
            .changes(
                "delete_export",
                "DELETE FROM dsr_exports WHERE workspace_id = ?1 AND request_id = ?2",
                vec![ws.as_str().to_owned().into(), id.as_str().to_owned().into()],
            )
            .await
    }

    async fn end_with_account(
        &self,
        ws: &WorkspaceId,
        until: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let (ws, until) = (ws.as_str().to_owned(), unix_millis(until));
        self.db
            .transaction("end_with_account", move |tx| {
                let mut stamped = 0u64;
                for stmt in [
                    "UPDATE dsr_requests SET expires_at = ?2
                     WHERE workspace_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                    "UPDATE dsr_suppressions SET expires_at = ?2
                     WHERE workspace_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                ] {
                    stamped += tx.execute(stmt, params![ws, until])? as u64;
                }
                Ok(stamped)
            })
            .await
    }

    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let expired = &[
            "DELETE FROM dsr_exports WHERE expires_at <= ?1",
            "DELETE FROM dsr_requests WHERE expires_at <= ?1",
            "DELETE FROM dsr_suppressions WHERE expires_at <= ?1",
        ];
        self.db.sweep("dsr_sweep", expired, now).await
    }
}

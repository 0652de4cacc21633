//! `SamlStore` on SQLite: the SAML connection (a JSON document per workspace), AuthnRequests
//! in flight and the assertion replay cache.
//!
//! Requests and used assertion ids carry `expires_at` (Unix ms); reads leave out what expired
//! by `now`, and taking a request or recording an assertion first deletes the expired rows of its table, so neither table grows
//! past what is live (no sweeper needed).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::saml::{AssertionUse, PendingRequest, SamlConnection, SamlStore};
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{json, sql};
use crate::SqliteControlStore;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS saml_connections (
    workspace_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS saml_requests (
    workspace_id TEXT NOT NULL,
    browser TEXT NOT NULL,
    request_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, browser)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS saml_assertions (
    workspace_id TEXT NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, assertion_id)
) WITHOUT ROWID;
"#;

#[async_trait]
impl SamlStore for SqliteControlStore {
    async fn saml_connection(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Option<SamlConnection>, StoreError> {
        self.db()
            .doc(
                "saml_connection",
                "SELECT doc FROM saml_connections WHERE workspace_id = ?1",
                vec![ws.to_string().into()],
            )
            .await
    }

    async fn put_saml_connection(&self, connection: &SamlConnection) -> Result<(), StoreError> {
        let doc = json("put_saml_connection", connection)?;
        self.db()
            .execute(
                "put_saml_connection",
                "INSERT INTO saml_connections (workspace_id, doc) VALUES (?1, ?2)
                 ON CONFLICT (workspace_id) DO UPDATE SET doc = excluded.doc",
                vec![connection.workspace_id.to_string().into(), doc.into()],
            )
            .await
    }

    async fn delete_saml_connection(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        let deleted = self
            .db()
            .changes(
                "delete_saml_connection",
                "DELETE FROM saml_connections WHERE workspace_id = ?1",
                vec![ws.to_string().into()],
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn workspaces_managing_domain(
        &self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<WorkspaceId>, StoreError> {
        const CONTEXT: &str = "workspaces_managing_domain";
        // Read from the documents themselves (one row per workspace with a connection, a few
        // at most per server), so the answer is exact with no index to keep in step.
        let domain = domain.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids: Vec<String> = self
            .db()
            .call(CONTEXT, move |c| {
                let mut statement = c
                    .prepare_cached(
                        "SELECT DISTINCT c.workspace_id
                         FROM saml_connections AS c, json_each(c.doc, '$.managed_domains') AS d
                         WHERE d.value = ?1 ORDER BY c.workspace_id LIMIT ?2",
                    )
                    .map_err(|e| sql(CONTEXT, e))?;
                let rows = statement
                    .query_map(params![domain, limit], |row| row.get(0))
                    .map_err(|e| sql(CONTEXT, e))?;
                rows.collect::<Result<_, _>>().map_err(|e| sql(CONTEXT, e))
            })
            .await?;
        ids.iter()
            .map(|id| WorkspaceId::parse(id).map_err(|e| StoreError::corrupt(CONTEXT, e)))
            .collect()
    }

    async fn put_saml_request(
        &self,
        ws: &WorkspaceId,
        request: &PendingRequest<'_>,
    ) -> Result<(), StoreError> {
        self.db()
            .execute(
                "put_saml_request",
                "INSERT INTO saml_requests (workspace_id, browser, request_id, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (workspace_id, browser) DO UPDATE
                 SET request_id = excluded.request_id, expires_at = excluded.expires_at",
                vec![
                    ws.to_string().into(),
                    request.browser.to_owned().into(),
                    request.request_id.to_owned().into(),
                    unix_millis(request.expires_at).into(),
                ],
            )
            .await
    }

    async fn take_saml_request(
        &self,
        ws: &WorkspaceId,
        browser: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let (ws, browser, now) = (ws.to_string(), browser.to_owned(), unix_millis(now));
        self.db()
            .call("take_saml_request", move |c| {
                c.execute("DELETE FROM saml_requests WHERE expires_at <= ?1", [now])
                    .map_err(|e| sql("take_saml_request", e))?;
                c.query_row(
                    "DELETE FROM saml_requests WHERE workspace_id = ?1 AND browser = ?2
                     RETURNING request_id, expires_at",
                    params![ws, browser],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()
                .map(|row| row.filter(|(_, expires)| *expires > now).map(|(id, _)| id))
                .map_err(|e| sql("take_saml_request", e))
            })
            .await
    }

    async fn first_use_of_assertion(
        &self,
        ws: &WorkspaceId,
        assertion: &AssertionUse<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (ws, id) = (ws.to_string(), assertion.id.to_owned());
        let (until, now) = (unix_millis(assertion.until), unix_millis(now));
        self.db()
            .transaction("first_use_of_assertion", move |tx| {
                tx.execute("DELETE FROM saml_assertions WHERE expires_at <= ?1", [now])?;
                let inserted = tx.execute(
                    "INSERT INTO saml_assertions (workspace_id, assertion_id, expires_at)
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![ws, id, until],
                )?;
                Ok(inserted == 1)
            })
            .await
    }
}

//! `SessionStore` on SQLite: console sessions (by the hash of their token), password
//! credentials (by the hash of the login email), one-time links (by the hash of their token)
//! and failed sign-in counters. Times are Unix milliseconds; `sweep` deletes what ended, and
//! reads leave it out before.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::SessionStore;
use tracklayer_core::sessions::{
    Credential, LinkKind, LinkRecord, LoginKey, Session, SessionId, StoredSession, TokenHash,
};
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{from_json, json, sql, Db};

/// The tables, created with the rest of the schema ([`crate::db`]).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    ends_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (workspace_id, id)
);
CREATE INDEX IF NOT EXISTS console_sessions_by_user ON console_sessions (workspace_id, user_id);
CREATE INDEX IF NOT EXISTS console_sessions_by_end ON console_sessions (ends_at);
CREATE TABLE IF NOT EXISTS console_credentials (
    login TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_links (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_links_by_expiry ON console_links (expires_at);
CREATE TABLE IF NOT EXISTS sign_in_failures (
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sign_in_failures_by_expiry ON sign_in_failures (expires_at);
"#;

#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    db: Db,
}

impl SqliteSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn text(s: &str) -> Value {
    Value::from(s.to_owned())
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        let session = &s.session;
        self.db
            .execute(
                "create_session",
                "INSERT INTO console_sessions (token_hash, workspace_id, id, user_id, ends_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                vec![
                    text(s.token_hash.as_str()),
                    text(session.workspace_id.as_str()),
                    text(session.id.as_str()),
                    text(session.user_id.as_str()),
                    Value::from(unix_millis(session.ends_at())),
                    Value::from(json("create_session", s)?),
                ],
            )
            .await
    }

    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<StoredSession>, StoreError> {
        self.db
            .doc(
                "session_by_token",
                "SELECT doc FROM console_sessions WHERE token_hash = ?1 AND ends_at > ?2",
                vec![text(hash.as_str()), Value::from(unix_millis(now))],
            )
            .await
    }

    async fn touch_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        self.db
            .execute(
                "touch_session",
                "UPDATE console_sessions SET ends_at = ?2, doc = ?3 WHERE token_hash = ?1",
                vec![
                    text(s.token_hash.as_str()),
                    Value::from(unix_millis(s.session.ends_at())),
                    Value::from(json("touch_session", s)?),
                ],
            )
            .await
    }

    async fn sessions_of(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let stored: Vec<StoredSession> = self
            .db
            .docs(
                "sessions_of",
                "SELECT doc FROM console_sessions
                 WHERE workspace_id = ?1 AND user_id = ?2 AND ends_at > ?3",
                vec![
                    text(ws.as_str()),
                    text(user.as_str()),
                    Value::from(unix_millis(now)),
                ],
            )
            .await?;
        let mut sessions: Vec<Session> = stored.into_iter().map(|s| s.session).collect();
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn session(
        &self,
        ws: &WorkspaceId,
        id: &SessionId,
    ) -> Result<Option<StoredSession>, StoreError> {
        self.db
            .doc(
                "session",
                "SELECT doc FROM console_sessions WHERE workspace_id = ?1 AND id = ?2",
                vec![text(ws.as_str()), text(id.as_str())],
            )
            .await
    }

    async fn delete_session(&self, ws: &WorkspaceId, id: &SessionId) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .changes(
                "delete_session",
                "DELETE FROM console_sessions WHERE workspace_id = ?1 AND id = ?2",
                vec![text(ws.as_str()), text(id.as_str())],
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn delete_sessions_of(&self, ws: &WorkspaceId, user: &UserId) -> Result<u64, StoreError> {
        self.db
            .changes(
                "delete_sessions_of",
                "DELETE FROM console_sessions WHERE workspace_id = ?1 AND user_id = ?2",
                vec![text(ws.as_str()), text(user.as_str())],
            )
            .await
    }

    async fn put_credential(&self, c: &Credential) -> Result<(), StoreError> {
        self.db
            .execute(
                "put_credential",
                "INSERT INTO console_credentials (login, doc) VALUES (?1, ?2)
                 ON CONFLICT (login) DO UPDATE SET doc = excluded.doc",
                vec![
                    text(c.login.as_str()),
                    Value::from(json("put_credential", c)?),
                ],
            )
            .await
    }

    async fn credential(&self, login: &LoginKey) -> Result<Option<Credential>, StoreError> {
        self.db
            .doc(
                "credential",
                "SELECT doc FROM console_credentials WHERE login = ?1",
                vec![text(login.as_str())],
            )
            .await
    }

    async fn delete_credential(&self, login: &LoginKey) -> Result<(), StoreError> {
        self.db
            .execute(
                "delete_credential",
                "DELETE FROM console_credentials WHERE login = ?1",
                vec![text(login.as_str())],
            )
            .await
    }

    async fn put_link(&self, link: &LinkRecord) -> Result<(), StoreError> {
        self.db
            .execute(
                "put_link",
                "INSERT INTO console_links (hash, kind, expires_at, doc) VALUES (?1, ?2, ?3, ?4)",
                vec![
                    text(link.hash.as_str()),
                    text(link.kind.as_str()),
                    Value::from(unix_millis(link.expires_at)),
                    Value::from(json("put_link", link)?),
                ],
            )
            .await
    }

    async fn redeem_link(
        &self,
        hash: &TokenHash,
        kind: LinkKind,
        now: OffsetDateTime,
    ) -> Result<Option<LinkRecord>, StoreError> {
        let hash = hash.as_str().to_owned();
        let now = unix_millis(now);
        self.db
            .call("redeem_link", move |c| {
                // One statement: the connection is shared, so no other redemption comes between
                // the check and the delete.
                let doc: Option<String> = c
                    .query_row(
                        "DELETE FROM console_links WHERE hash = ?1 AND kind = ?2 AND expires_at > ?3
                         RETURNING doc",
                        params![hash, kind.as_str(), now],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("redeem_link", e))?;
                doc.map(|d| from_json("redeem_link", &d)).transpose()
            })
            .await
    }

    async fn add_failure(
        &self,
        key: &str,
        window: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let key = key.to_owned();
        let (window, expires_at) = (unix_millis(window), unix_millis(expires_at));
        self.db
            .call("add_failure", move |c| {
                c.query_row(
                    "INSERT INTO sign_in_failures (key, window_start, count, expires_at)
                     VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1
                     RETURNING count",
                    params![key, window, expires_at],
                    |r| r.get::<_, u32>(0),
                )
                .map_err(|e| sql("add_failure", e))
            })
            .await
    }

    async fn failures(
        &self,
        key: &str,
        window: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let key = key.to_owned();
        let (window, now) = (unix_millis(window), unix_millis(now));
        self.db
            .call("failures", move |c| {
                let count: Option<u32> = c
                    .query_row(
                        "SELECT count FROM sign_in_failures
                         WHERE key = ?1 AND window_start = ?2 AND expires_at > ?3",
                        params![key, window, now],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("failures", e))?;
                Ok(count.unwrap_or(0))
            })
            .await
    }

    async fn clear_failures(&self, key: &str, window: OffsetDateTime) -> Result<(), StoreError> {
        self.db
            .execute(
                "clear_failures",
                "DELETE FROM sign_in_failures WHERE key = ?1 AND window_start = ?2",
                vec![text(key), Value::from(unix_millis(window))],
            )
            .await
    }

    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let expired = &[
            "DELETE FROM console_sessions WHERE ends_at <= ?1",
            "DELETE FROM console_links WHERE expires_at <= ?1",
            "DELETE FROM sign_in_failures WHERE expires_at <= ?1",
        ];
        self.db.sweep("sweep_sessions", expired, now).await
    }
}

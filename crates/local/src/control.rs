//! `ControlStore` on SQLite: workspaces, users, API keys and destinations as JSON documents.
//!
//! Account data carries `expires_at` (Unix ms, `NULL` for never), stamped when it is written:
//! a key record 90 days after the key ended; a closed workspace, its users and its key records
//! 90 days after the closure (`close_workspace`). Reads leave out what expired by `now`; the
//! sweeper deletes it (DynamoDB's TTL does on AWS).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::destination::{Destination, DestinationId};
use tracklayer_core::error::StoreError;
use tracklayer_core::keys::{ApiKeyRecord, KeyId, Role};
use tracklayer_core::ports::{ControlReader, ControlStore, KeyUsage, LAST_ADMIN};
use tracklayer_core::scim::profile::user_name_key;
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::{User, Workspace, WorkspaceId};

use crate::db::{doc_rows, from_json, json, sql, Db};
use crate::scim::user_write_error;

#[derive(Debug, Clone)]
pub struct SqliteControlStore {
    db: Db,
}

/// The key columns of a user's row: workspace, id, lowercased email, [`user_name_key`].
fn user_columns(user: &User) -> (String, String, String, String) {
    (
        user.workspace_id.as_str().to_owned(),
        user.id.to_string(),
        user.email.to_ascii_lowercase(),
        user_name_key(user),
    )
}

/// `expires_at` of a workspace row: set once it is closed.
fn workspace_expiry(ws: &Workspace) -> Option<i64> {
    ws.account_data_expires_at().map(unix_millis)
}

/// Gives key records written before `api_keys.expires_at` existed their expiry (the
/// migration of an older data directory).
pub(crate) fn stamp_unstamped_keys(c: &Connection) -> Result<(), rusqlite::Error> {
    let unstamped: Vec<(String, String)> = c
        .prepare("SELECT id, doc FROM api_keys WHERE expires_at IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, doc) in unstamped {
        if let Ok(key) = serde_json::from_str::<ApiKeyRecord>(&doc) {
            c.execute(
                "UPDATE api_keys SET expires_at = ?2 WHERE id = ?1",
                params![id, unix_millis(key.retained_until())],
            )?;
        }
    }
    Ok(())
}

impl SqliteControlStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Deletes account data kept past its retention — key records 90 days after the key was
    /// revoked or expired; a closed workspace with its users and keys 90 days after its
    /// closure — and returns how many rows went (the sweeper; DynamoDB's TTL does this on
    /// AWS).
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let expired = &[
            "DELETE FROM api_keys WHERE expires_at <= ?1",
            "DELETE FROM users WHERE expires_at <= ?1",
            // Closure deleted them already; none may outlive their workspace.
            "DELETE FROM destinations WHERE workspace_id IN
                (SELECT id FROM workspaces WHERE expires_at <= ?1)",
            "DELETE FROM workspaces WHERE expires_at <= ?1",
        ];
        self.db.sweep("control_sweep", expired, now).await
    }
}

#[async_trait]
impl ControlReader for SqliteControlStore {
    async fn workspace(
        &self,
        id: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Option<Workspace>, StoreError> {
        let id = id.as_str().to_owned();
        let now = unix_millis(now);
        self.db
            .doc(
                "workspace",
                "SELECT doc FROM workspaces
                         WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                vec![id.into(), now.into()],
            )
            .await
    }

    async fn api_key(
        &self,
        id: &KeyId,
        now: OffsetDateTime,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.as_str().to_owned();
        let now = unix_millis(now);
        self.db
            .doc(
                "api_key",
                "SELECT doc FROM api_keys
                         WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                vec![id.into(), now.into()],
            )
            .await
    }

    async fn destinations(&self, ws: &WorkspaceId) -> Result<Vec<Destination>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .docs(
                "destinations",
                "SELECT doc FROM destinations WHERE workspace_id = ?1 ORDER BY created_at, id",
                vec![ws.into()],
            )
            .await
    }

    async fn destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<Option<Destination>, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.as_str().to_owned());
        self.db
            .doc(
                "destination",
                "SELECT doc FROM destinations WHERE workspace_id = ?1 AND id = ?2",
                vec![ws.into(), id.into()],
            )
            .await
    }
}

#[async_trait]
impl KeyUsage for SqliteControlStore {
    async fn touch_api_key(
        &self,
        ws: &WorkspaceId,
        id: &KeyId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.as_str().to_owned());
        self.db
            .call("touch_api_key", move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| sql("touch_api_key", e))?;
                let doc: Option<String> = tx
                    .query_row(
                        "SELECT doc FROM api_keys WHERE id = ?1 AND workspace_id = ?2",
                        [&id, &ws],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("touch_api_key", e))?;
                let Some(doc) = doc else {
                    return Ok(());
                };
                let mut key: ApiKeyRecord = from_json("touch_api_key", &doc)?;
                if key.last_used_at.is_some_and(|t| t >= at) {
                    return Ok(());
                }
                key.last_used_at = Some(at);
                tx.execute(
                    "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
                    params![id, json("touch_api_key", &key)?],
                )
                .map_err(|e| sql("touch_api_key", e))?;
                tx.commit().map_err(|e| sql("touch_api_key", e))
            })
            .await
    }
}

#[async_trait]
impl ControlStore for SqliteControlStore {
    async fn create_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        let doc = json("create_workspace", ws)?;
        let id = ws.id.as_str().to_owned();
        let created = unix_millis(ws.created_at);
        let expires = workspace_expiry(ws);
        self.db
            .execute(
                "create_workspace",
                "INSERT INTO workspaces (id, created_at, doc, expires_at) VALUES (?1, ?2, ?3, ?4)",
                vec![id.into(), created.into(), doc.into(), expires.into()],
            )
            .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        let doc = json("update_workspace", ws)?;
        let id = ws.id.as_str().to_owned();
        let expires = workspace_expiry(ws);
        self.db
            .call("update_workspace", move |c| {
                // A write that does not know of the closure (it read the workspace before)
                // must not open it again.
                let n = c
                    .execute(
                        "UPDATE workspaces SET doc = ?2, expires_at = ?3
                         WHERE id = ?1 AND (expires_at IS NULL OR ?3 IS NOT NULL)",
                        params![id, doc, expires],
                    )
                    .map_err(|e| sql("update_workspace", e))?;
                if n == 0 {
                    return Err(closed_or_missing(c, &id, "update_workspace")?);
                }
                Ok(())
            })
            .await
    }

    async fn close_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        let until = workspace_expiry(ws).ok_or_else(|| {
            StoreError::permanent("close_workspace", "the workspace has no closed_at")
        })?;
        let doc = json("close_workspace", ws)?;
        let id = ws.id.as_str().to_owned();
        self.db
            .call("close_workspace", move |c| {
                let tx = c.transaction().map_err(|e| sql("close_workspace", e))?;
                let closed: Option<Option<i64>> = tx
                    .query_row(
                        "SELECT expires_at FROM workspaces WHERE id = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("close_workspace", e))?;
                match closed {
                    None => return Err(StoreError::NotFound("workspace")),
                    Some(Some(_)) => {
                        return Err(StoreError::Conflict("the workspace is closed already"))
                    }
                    Some(None) => {}
                }
                // Secrets end with the account, and so does the identity provider's
                // directory (its groups and their role mapping).
                for stmt in [
                    "DELETE FROM destinations WHERE workspace_id = ?1",
                    "DELETE FROM scim_groups WHERE workspace_id = ?1",
                    "DELETE FROM scim_group_roles WHERE workspace_id = ?1",
                ] {
                    tx.execute(stmt, [&id])
                        .map_err(|e| sql("close_workspace", e))?;
                }
                for stmt in [
                    "UPDATE users SET expires_at = ?2
                     WHERE workspace_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                    "UPDATE api_keys SET expires_at = ?2
                     WHERE workspace_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                ] {
                    tx.execute(stmt, params![id, until])
                        .map_err(|e| sql("close_workspace", e))?;
                }
                tx.execute(
                    "UPDATE workspaces SET doc = ?2, expires_at = ?3 WHERE id = ?1",
                    params![id, doc, until],
                )
                .map_err(|e| sql("close_workspace", e))?;
                tx.commit().map_err(|e| sql("close_workspace", e))
            })
            .await
    }

    async fn workspaces(&self, now: OffsetDateTime) -> Result<Vec<Workspace>, StoreError> {
        let now = unix_millis(now);
        self.db
            .docs(
                "workspaces",
                "SELECT doc FROM workspaces
                         WHERE expires_at IS NULL OR expires_at > ?1
                         ORDER BY created_at, id",
                vec![now.into()],
            )
            .await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let doc = json("create_api_key", key)?;
        let (id, ws) = (
            key.id.as_str().to_owned(),
            key.workspace_id.as_str().to_owned(),
        );
        let expires = unix_millis(key.retained_until());
        self.db
            .execute(
                "create_api_key",
                "INSERT INTO api_keys (id, workspace_id, doc, expires_at) VALUES (?1, ?2, ?3, ?4)",
                vec![id.into(), ws.into(), doc.into(), expires.into()],
            )
            .await
    }

    async fn update_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut key = key.clone();
        let id = key.id.as_str().to_owned();
        let expires = unix_millis(key.retained_until());
        self.db
            .call("update_api_key", move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| sql("update_api_key", e))?;
                // A use recorded since the caller read the record stays (`touch_api_key`).
                let stored: Option<String> = tx
                    .query_row("SELECT doc FROM api_keys WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(|e| sql("update_api_key", e))?;
                if let Some(stored) = stored {
                    let stored: ApiKeyRecord = from_json("update_api_key", &stored)?;
                    key.last_used_at = key.last_used_at.max(stored.last_used_at);
                }
                let doc = json("update_api_key", &key)?;
                // A key's expiry only moves earlier (revocation, rotation): a closed
                // workspace's stamp stays.
                let n = tx
                    .execute(
                        "UPDATE api_keys SET doc = ?2, expires_at = MIN(?3, COALESCE(expires_at, ?3))
                         WHERE id = ?1",
                        params![id, doc, expires],
                    )
                    .map_err(|e| sql("update_api_key", e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("api key"));
                }
                tx.commit().map_err(|e| sql("update_api_key", e))
            })
            .await
    }

    async fn api_keys(
        &self,
        ws: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let ws = ws.as_str().to_owned();
        let now = unix_millis(now);
        self.db
            .call("api_keys", move |c| {
                let mut keys: Vec<ApiKeyRecord> = doc_rows(
                    c,
                    "api_keys",
                    "SELECT doc FROM api_keys
                         WHERE workspace_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
                         ORDER BY id",
                    params![ws, now],
                )?;
                keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
                Ok(keys)
            })
            .await
    }

    async fn put_destination(&self, d: &Destination) -> Result<(), StoreError> {
        let doc = json("put_destination", d)?;
        let (ws, id) = (d.workspace_id.as_str().to_owned(), d.id.as_str().to_owned());
        let created = unix_millis(d.created_at);
        self.db
            .execute(
                "put_destination",
                "INSERT INTO destinations (workspace_id, id, created_at, doc)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (workspace_id, id) DO UPDATE SET doc = excluded.doc",
                vec![ws.into(), id.into(), created.into(), doc.into()],
            )
            .await
    }

    async fn delete_destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<(), StoreError> {
        self.db
            .change_existing(
                "delete_destination",
                "destination",
                "DELETE FROM destinations WHERE workspace_id = ?1 AND id = ?2",
                vec![ws.as_str().to_owned().into(), id.as_str().to_owned().into()],
            )
            .await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let doc = json("create_user", user)?;
        let (ws, id, email, name) = user_columns(user);
        let created = unix_millis(user.created_at);
        self.db
            .call("create_user", move |c| {
                c.execute(
                    "INSERT INTO users (workspace_id, id, email, user_name, created_at, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![ws, id, email, name, created, doc],
                )
                .map_err(|e| user_write_error(c, "create_user", (&ws, &id, &email), e))?;
                Ok(())
            })
            .await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let doc = json("update_user", user)?;
        let (ws, id, email, name) = user_columns(user);
        self.db
            .call("update_user", move |c| {
                let n = c
                    .execute(
                        "UPDATE users SET doc = ?3, email = ?4, user_name = ?5
                         WHERE workspace_id = ?1 AND id = ?2",
                        params![ws, id, doc, email, name],
                    )
                    .map_err(|e| user_write_error(c, "update_user", (&ws, &id, &email), e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            })
            .await
    }

    async fn delete_user(&self, ws: &WorkspaceId, id: &UserId) -> Result<(), StoreError> {
        self.db
            .change_existing(
                "delete_user",
                "user",
                "DELETE FROM users WHERE workspace_id = ?1 AND id = ?2",
                vec![ws.as_str().to_owned().into(), id.to_string().into()],
            )
            .await
    }

    async fn set_user_role_keeping_an_admin(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.to_string());
        let now = unix_millis(now);
        self.db
            .call("set_user_role", move |c| {
                keeping_an_admin(
                    c,
                    "set_user_role",
                    &ws,
                    &id,
                    now,
                    role != Role::Admin,
                    |tx, old| {
                        let mut user = old.clone();
                        user.role = role;
                        tx.execute(
                            "UPDATE users SET doc = ?3 WHERE workspace_id = ?1 AND id = ?2",
                            params![ws, id, json("set_user_role", &user)?],
                        )
                        .map_err(|e| sql("set_user_role", e))?;
                        Ok(())
                    },
                )
            })
            .await
    }

    async fn delete_user_keeping_an_admin(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.to_string());
        let now = unix_millis(now);
        self.db
            .call("delete_user", move |c| {
                keeping_an_admin(c, "delete_user", &ws, &id, now, true, |tx, _| {
                    tx.execute(
                        "DELETE FROM users WHERE workspace_id = ?1 AND id = ?2",
                        [&ws, &id],
                    )
                    .map_err(|e| sql("delete_user", e))?;
                    Ok(())
                })
            })
            .await
    }

    async fn user(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.to_string());
        let now = unix_millis(now);
        self.db
            .doc(
                "user",
                "SELECT doc FROM users WHERE workspace_id = ?1 AND id = ?2
                         AND (expires_at IS NULL OR expires_at > ?3)",
                vec![ws.into(), id.into(), now.into()],
            )
            .await
    }

    async fn users(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<Vec<User>, StoreError> {
        let ws = ws.as_str().to_owned();
        let now = unix_millis(now);
        self.db
            .docs(
                "users",
                "SELECT doc FROM users
                         WHERE workspace_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
                         ORDER BY created_at, id",
                vec![ws.into(), now.into()],
            )
            .await
    }
}

/// Reads an unexpired user, refuses if `removes_admin` and they are the workspace's only
/// unexpired admin, else runs `write`: one immediate (write-locked) transaction, so no other
/// connection changes the admins between the check and the write. Returns the user as read.
fn keeping_an_admin(
    c: &mut Connection,
    context: &'static str,
    ws: &str,
    id: &str,
    now: i64,
    removes_admin: bool,
    write: impl FnOnce(&rusqlite::Transaction<'_>, &User) -> Result<(), StoreError>,
) -> Result<User, StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql(context, e))?;
    let doc: String = tx
        .query_row(
            "SELECT doc FROM users WHERE workspace_id = ?1
             AND (expires_at IS NULL OR expires_at > ?2) AND id = ?3",
            params![ws, now, id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| sql(context, e))?
        .ok_or(StoreError::NotFound("user"))?;
    let old: User = from_json(context, &doc)?;
    if removes_admin && old.role == Role::Admin {
        let others: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM users WHERE workspace_id = ?1
                 AND (expires_at IS NULL OR expires_at > ?2) AND id <> ?3
                 AND json_extract(doc, '$.role') = 'admin'",
                params![ws, now, id],
                |r| r.get(0),
            )
            .map_err(|e| sql(context, e))?;
        if others == 0 {
            return Err(StoreError::Conflict(LAST_ADMIN));
        }
    }
    write(&tx, &old)?;
    tx.commit().map_err(|e| sql(context, e))?;
    Ok(old)
}

/// Why a conditional write of a workspace changed nothing: there is none, or it is closed.
fn closed_or_missing(
    c: &Connection,
    id: &str,
    context: &'static str,
) -> Result<StoreError, StoreError> {
    let exists = c
        .query_row("SELECT 1 FROM workspaces WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map_err(|e| sql(context, e))?
        .is_some();
    Ok(if exists {
        StoreError::Conflict("the workspace is closed")
    } else {
        StoreError::NotFound("workspace")
    })
}

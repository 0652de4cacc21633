//! `ControlStore` on SQLite: workspaces, API keys and destinations as JSON documents.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::destination::{Destination, DestinationId};
use tracklayer_core::error::StoreError;
use tracklayer_core::keys::{ApiKeyRecord, KeyId};
use tracklayer_core::ports::{ControlReader, ControlStore};
use tracklayer_core::workspace::{User, Workspace, WorkspaceId};

use crate::db::{from_json, json, sql, Db};

#[derive(Debug, Clone)]
pub struct SqliteControlStore {
    db: Db,
}

impl SqliteControlStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes API key records kept past their retention: account data lives 90 days after
    /// the key was revoked or expired (the sweeper; DynamoDB's TTL does this on AWS).
    pub async fn sweep(&self, now: time::OffsetDateTime) -> Result<u64, StoreError> {
        self.db
            .call("api_keys_sweep", move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT doc FROM api_keys")
                    .map_err(|e| sql("api_keys_sweep", e))?;
                let gone: Vec<String> = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| sql("api_keys_sweep", e))?
                    .filter_map(|d| d.ok())
                    .filter_map(|d| from_json::<ApiKeyRecord>("api_keys_sweep", &d).ok())
                    .filter(|k| k.retained_until() <= now)
                    .map(|k| k.id.as_str().to_owned())
                    .collect();
                let mut deleted = 0u64;
                for id in gone {
                    deleted +=
                        c.execute("DELETE FROM api_keys WHERE id = ?1", [&id])
                            .map_err(|e| sql("api_keys_sweep", e))? as u64;
                }
                Ok(deleted)
            })
            .await
    }
}

#[async_trait]
impl ControlReader for SqliteControlStore {
    async fn workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .call("workspace", move |c| {
                let doc: Option<String> = c
                    .query_row("SELECT doc FROM workspaces WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(|e| sql("workspace", e))?;
                doc.map(|d| from_json("workspace", &d)).transpose()
            })
            .await
    }

    async fn api_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .call("api_key", move |c| {
                let doc: Option<String> = c
                    .query_row("SELECT doc FROM api_keys WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(|e| sql("api_key", e))?;
                doc.map(|d| from_json("api_key", &d)).transpose()
            })
            .await
    }

    async fn destinations(&self, ws: &WorkspaceId) -> Result<Vec<Destination>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .call("destinations", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT doc FROM destinations WHERE workspace_id = ?1 ORDER BY created_at, id",
                    )
                    .map_err(|e| sql("destinations", e))?;
                let rows = stmt
                    .query_map([&ws], |r| r.get::<_, String>(0))
                    .map_err(|e| sql("destinations", e))?;
                rows.map(|r| {
                    r.map_err(|e| sql("destinations", e))
                        .and_then(|d| from_json("destinations", &d))
                })
                .collect()
            })
            .await
    }

    async fn destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<Option<Destination>, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.as_str().to_owned());
        self.db
            .call("destination", move |c| {
                let doc: Option<String> = c
                    .query_row(
                        "SELECT doc FROM destinations WHERE workspace_id = ?1 AND id = ?2",
                        [&ws, &id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("destination", e))?;
                doc.map(|d| from_json("destination", &d)).transpose()
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
        self.db
            .call("create_workspace", move |c| {
                c.execute(
                    "INSERT INTO workspaces (id, created_at, doc) VALUES (?1, ?2, ?3)",
                    params![id, created, doc],
                )
                .map_err(|e| sql("create_workspace", e))?;
                Ok(())
            })
            .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        let doc = json("update_workspace", ws)?;
        let id = ws.id.as_str().to_owned();
        self.db
            .call("update_workspace", move |c| {
                let n = c
                    .execute(
                        "UPDATE workspaces SET doc = ?2 WHERE id = ?1",
                        params![id, doc],
                    )
                    .map_err(|e| sql("update_workspace", e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("workspace"));
                }
                Ok(())
            })
            .await
    }

    async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        self.db
            .call("workspaces", move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT doc FROM workspaces ORDER BY created_at, id")
                    .map_err(|e| sql("workspaces", e))?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| sql("workspaces", e))?;
                rows.map(|r| {
                    r.map_err(|e| sql("workspaces", e))
                        .and_then(|d| from_json("workspaces", &d))
                })
                .collect()
            })
            .await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let doc = json("create_api_key", key)?;
        let (id, ws) = (
            key.id.as_str().to_owned(),
            key.workspace_id.as_str().to_owned(),
        );
        self.db
            .call("create_api_key", move |c| {
                c.execute(
                    "INSERT INTO api_keys (id, workspace_id, doc) VALUES (?1, ?2, ?3)",
                    params![id, ws, doc],
                )
                .map_err(|e| sql("create_api_key", e))?;
                Ok(())
            })
            .await
    }

    async fn update_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let doc = json("update_api_key", key)?;
        let id = key.id.as_str().to_owned();
        self.db
            .call("update_api_key", move |c| {
                let n = c
                    .execute(
                        "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
                        params![id, doc],
                    )
                    .map_err(|e| sql("update_api_key", e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("api key"));
                }
                Ok(())
            })
            .await
    }

    async fn api_keys(&self, ws: &WorkspaceId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .call("api_keys", move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT doc FROM api_keys WHERE workspace_id = ?1 ORDER BY id")
                    .map_err(|e| sql("api_keys", e))?;
                let rows = stmt
                    .query_map([&ws], |r| r.get::<_, String>(0))
                    .map_err(|e| sql("api_keys", e))?;
                let mut keys: Vec<ApiKeyRecord> = rows
                    .map(|r| {
                        r.map_err(|e| sql("api_keys", e))
                            .and_then(|d| from_json("api_keys", &d))
                    })
                    .collect::<Result<_, _>>()?;
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
            .call("put_destination", move |c| {
                c.execute(
                    "INSERT INTO destinations (workspace_id, id, created_at, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (workspace_id, id) DO UPDATE SET doc = excluded.doc",
                    params![ws, id, created, doc],
                )
                .map_err(|e| sql("put_destination", e))?;
                Ok(())
            })
            .await
    }

    async fn delete_destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<(), StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.as_str().to_owned());
        self.db
            .call("delete_destination", move |c| {
                let n = c
                    .execute(
                        "DELETE FROM destinations WHERE workspace_id = ?1 AND id = ?2",
                        [&ws, &id],
                    )
                    .map_err(|e| sql("delete_destination", e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("destination"));
                }
                Ok(())
            })
            .await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let doc = json("create_user", user)?;
        let (ws, id, email) = (
            user.workspace_id.as_str().to_owned(),
            user.id.clone(),
            user.email.to_ascii_lowercase(),
        );
        let created = unix_millis(user.created_at);
        self.db
            .call("create_user", move |c| {
                c.execute(
                    "INSERT INTO users (workspace_id, id, email, created_at, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![ws, id, email, created, doc],
                )
                .map_err(|e| sql("create_user", e))?;
                Ok(())
            })
            .await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let doc = json("update_user", user)?;
        let (ws, id, email) = (
            user.workspace_id.as_str().to_owned(),
            user.id.clone(),
            user.email.to_ascii_lowercase(),
        );
        self.db
            .call("update_user", move |c| {
                let n = c
                    .execute(
                        "UPDATE users SET doc = ?3, email = ?4 WHERE workspace_id = ?1 AND id = ?2",
                        params![ws, id, doc, email],
                    )
                    .map_err(|e| sql("update_user", e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            })
            .await
    }

    async fn delete_user(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.to_owned());
        self.db
            .call("delete_user", move |c| {
                let n = c
                    .execute(
                        "DELETE FROM users WHERE workspace_id = ?1 AND id = ?2",
                        [&ws, &id],
                    )
                    .map_err(|e| sql("delete_user", e))?;
                if n == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            })
            .await
    }

    async fn user(&self, ws: &WorkspaceId, id: &str) -> Result<Option<User>, StoreError> {
        let (ws, id) = (ws.as_str().to_owned(), id.to_owned());
        self.db
            .call("user", move |c| {
                let doc: Option<String> = c
                    .query_row(
                        "SELECT doc FROM users WHERE workspace_id = ?1 AND id = ?2",
                        [&ws, &id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sql("user", e))?;
                doc.map(|d| from_json("user", &d)).transpose()
            })
            .await
    }

    async fn users(&self, ws: &WorkspaceId) -> Result<Vec<User>, StoreError> {
        let ws = ws.as_str().to_owned();
        self.db
            .call("users", move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT doc FROM users WHERE workspace_id = ?1 ORDER BY created_at, id",
                    )
                    .map_err(|e| sql("users", e))?;
                let rows = stmt
                    .query_map([&ws], |r| r.get::<_, String>(0))
                    .map_err(|e| sql("users", e))?;
                rows.map(|r| {
                    r.map_err(|e| sql("users", e))
                        .and_then(|d| from_json("users", &d))
                })
                .collect()
            })
            .await
    }
}

//! `ScimStore` on SQLite: the identity provider's groups and the group → role mapping, as
//! JSON documents per workspace; and the unique index that keeps `userName` unique
//! (`users.user_name`, [`user_name_key`]), enforced by the write of the user itself.

use async_trait::async_trait;
use rusqlite::Connection;
use tracklayer_core::error::StoreError;
use tracklayer_core::scim::profile::{user_name_key, USER_NAME_TAKEN};
use tracklayer_core::scim::store::{GroupRoles, ScimGroup, ScimStore};
use tracklayer_core::workspace::{User, WorkspaceId};

use crate::db::{json, sql};
use crate::SqliteControlStore;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS scim_groups (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scim_group_roles (
    workspace_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
"#;

/// Makes `users.user_name` (a column added after the first release) unique per workspace and
/// fills it in rows written before it: a row whose key another row holds already (two users
/// made with one userName before the index existed) keeps `NULL`, the first one keeps it.
pub(crate) fn migrate_user_names(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS users_by_user_name ON users (workspace_id, user_name)",
    )?;
    let unnamed: Vec<(String, String, String)> = c
        .prepare(
            "SELECT workspace_id, id, doc FROM users WHERE user_name IS NULL
             ORDER BY created_at, id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (ws, id, doc) in unnamed {
        if let Ok(user) = serde_json::from_str::<User>(&doc) {
            c.execute(
                "UPDATE OR IGNORE users SET user_name = ?3 WHERE workspace_id = ?1 AND id = ?2",
                [ws, id, user_name_key(&user)],
            )?;
        }
    }
    Ok(())
}

/// Why a write of the user `(workspace, id, email)` failed: the unique `userName` index is
/// [`USER_NAME_TAKEN`] unless the email is another user's too (a user the admin API makes is
/// named by their email, and SQLite reports whichever index it checked first): then it is the
/// email's clash, like anything else [`sql`] says.
pub(crate) fn user_write_error(
    c: &Connection,
    context: &'static str,
    (ws, id, email): (&str, &str, &str),
    e: rusqlite::Error,
) -> StoreError {
    let name_clash = matches!(&e, rusqlite::Error::SqliteFailure(f, Some(message))
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && message.contains("users.user_name"));
    let email_taken = || {
        c.prepare_cached("SELECT 1 FROM users WHERE workspace_id = ?1 AND email = ?2 AND id <> ?3")
            .and_then(|mut s| s.exists([ws, email, id]))
    };
    match name_clash.then(email_taken) {
        Some(Ok(false)) => StoreError::Conflict(USER_NAME_TAKEN),
        Some(Err(read)) => sql(context, read),
        Some(Ok(true)) | None => sql(context, e),
    }
}

#[async_trait]
impl ScimStore for SqliteControlStore {
    async fn scim_groups(&self, ws: &WorkspaceId) -> Result<Vec<ScimGroup>, StoreError> {
        self.db()
            .docs(
                "scim_groups",
                "SELECT doc FROM scim_groups WHERE workspace_id = ?1 ORDER BY created_at, id",
                vec![ws.to_string().into()],
            )
            .await
    }

    async fn scim_group(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<Option<ScimGroup>, StoreError> {
        self.db()
            .doc(
                "scim_group",
                "SELECT doc FROM scim_groups WHERE workspace_id = ?1 AND id = ?2",
                vec![ws.to_string().into(), id.to_owned().into()],
            )
            .await
    }

    async fn put_scim_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let doc = json("put_scim_group", group)?;
        let created = group
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StoreError::permanent("put_scim_group", e))?;
        self.db()
            .execute(
                "put_scim_group",
                "INSERT INTO scim_groups (workspace_id, id, created_at, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (workspace_id, id) DO UPDATE SET doc = excluded.doc",
                vec![
                    group.workspace_id.to_string().into(),
                    group.id.clone().into(),
                    created.into(),
                    doc.into(),
                ],
            )
            .await
    }

    async fn delete_scim_group(&self, ws: &WorkspaceId, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db()
            .changes(
                "delete_scim_group",
                "DELETE FROM scim_groups WHERE workspace_id = ?1 AND id = ?2",
                vec![ws.to_string().into(), id.to_owned().into()],
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn group_roles(&self, ws: &WorkspaceId) -> Result<Option<GroupRoles>, StoreError> {
        self.db()
            .doc(
                "group_roles",
                "SELECT doc FROM scim_group_roles WHERE workspace_id = ?1",
                vec![ws.to_string().into()],
            )
            .await
    }

    async fn put_group_roles(
        &self,
        ws: &WorkspaceId,
        roles: &GroupRoles,
    ) -> Result<(), StoreError> {
        let doc = json("put_group_roles", roles)?;
        self.db()
            .execute(
                "put_group_roles",
                "INSERT INTO scim_group_roles (workspace_id, doc) VALUES (?1, ?2)
                 ON CONFLICT (workspace_id) DO UPDATE SET doc = excluded.doc",
                vec![ws.to_string().into(), doc.into()],
            )
            .await
    }
}

//! `ScimStore` on SQLite: the identity provider's groups and the group → role mapping, as
//! JSON documents per workspace.

use async_trait::async_trait;
use tracklayer_core::error::StoreError;
use tracklayer_core::scim::store::{GroupRoles, ScimGroup, ScimStore};
use tracklayer_core::workspace::WorkspaceId;

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
        let (ws, id) = (ws.to_string(), id.to_owned());
        self.db()
            .call("delete_scim_group", move |c| {
                c.execute(
                    "DELETE FROM scim_groups WHERE workspace_id = ?1 AND id = ?2",
                    [ws, id],
                )
                .map(|n| n > 0)
                .map_err(|e| sql("delete_scim_group", e))
            })
            .await
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

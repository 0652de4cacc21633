//! `ScimStore` on the ControlTable, in the workspace's partition:
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | SCIM group | `W#{ws}` | `SCIMGROUP#{group id}` | `doc` |
//! | group → role mapping | `W#{ws}` | `SCIMROLES` | `doc` |

use async_trait::async_trait;
use tracklayer_core::error::StoreError;
use tracklayer_core::scim::store::{GroupRoles, ScimGroup, ScimStore};
use tracklayer_core::workspace::WorkspaceId;

use super::{key, sorted_docs, to_json, with_doc, ws_pk, DynamoControlStore};

const GROUP: &str = "SCIMGROUP#";
const ROLES: &str = "SCIMROLES";

#[async_trait]
impl ScimStore for DynamoControlStore {
    async fn scim_groups(&self, ws: &WorkspaceId) -> Result<Vec<ScimGroup>, StoreError> {
        let items = self.prefix("scim_groups", ws, GROUP).await?;
        sorted_docs(items, "scim_groups", |a: &ScimGroup, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }

    async fn scim_group(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<Option<ScimGroup>, StoreError> {
        let item_key = key(ws_pk(ws), format!("{GROUP}{id}"));
        self.table.get_doc("scim_group", item_key).await
    }

    async fn put_scim_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let item = with_doc(
            key(ws_pk(&group.workspace_id), format!("{GROUP}{}", group.id)),
            to_json("put_scim_group", group)?,
        );
        self.table.put("put_scim_group", item, None).await
    }

    async fn delete_scim_group(&self, ws: &WorkspaceId, id: &str) -> Result<bool, StoreError> {
        let item_key = key(ws_pk(ws), format!("{GROUP}{id}"));
        let old = self.table.delete("delete_scim_group", item_key).await?;
        Ok(old.is_some())
    }

    async fn group_roles(&self, ws: &WorkspaceId) -> Result<Option<GroupRoles>, StoreError> {
        self.table
            .get_doc("group_roles", key(ws_pk(ws), ROLES))
            .await
    }

    async fn put_group_roles(
        &self,
        ws: &WorkspaceId,
        roles: &GroupRoles,
    ) -> Result<(), StoreError> {
        let item = with_doc(key(ws_pk(ws), ROLES), to_json("put_group_roles", roles)?);
        self.table.put("put_group_roles", item, None).await
    }
}

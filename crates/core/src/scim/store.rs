//! The SCIM state a control store keeps beyond users: the identity provider's groups of each
//! workspace and the workspace's mapping from group names to roles.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::keys::Role;
use crate::user_id::UserId;
use crate::workspace::WorkspaceId;

/// A group as the identity provider pushed it: any `displayName`, its members (user ids of
/// the workspace) and the provider's own id of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimGroup {
    /// `grp_` and 20 lowercase characters.
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub members: Vec<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
}

crate::debug_fields!(ScimGroup: id, workspace_id, created_at, modified_at);

/// Which group names give which role. Names compare case-insensitively; a user in several
/// mapped groups gets the highest of their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRoles {
    pub groups: Vec<GroupRole>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRole {
    pub group: String,
    pub role: Role,
}

impl Default for GroupRoles {
    /// `TrackLayer Admins`, `TrackLayer Editors`, `TrackLayer Viewers`.
    fn default() -> Self {
        let entry = |group: &str, role| GroupRole {
            group: group.into(),
            role,
        };
        Self {
            groups: vec![
                entry("TrackLayer Admins", Role::Admin),
                entry("TrackLayer Editors", Role::Editor),
                entry("TrackLayer Viewers", Role::Viewer),
            ],
        }
    }
}

impl GroupRoles {
    /// The role the group `name` gives, if it is mapped.
    pub fn role_of(&self, name: &str) -> Option<Role> {
        self.groups
            .iter()
            .find(|g| g.group.eq_ignore_ascii_case(name))
            .map(|g| g.role)
    }
}

/// Groups and the group → role mapping, per workspace.
#[async_trait]
pub trait ScimStore: Send + Sync {
    /// The workspace's groups, oldest first.
    async fn scim_groups(&self, ws: &WorkspaceId) -> Result<Vec<ScimGroup>, StoreError>;
    async fn scim_group(&self, ws: &WorkspaceId, id: &str)
        -> Result<Option<ScimGroup>, StoreError>;
    /// Creates or replaces a group (by workspace and id).
    async fn put_scim_group(&self, group: &ScimGroup) -> Result<(), StoreError>;
    /// Deletes a group; `false` if there was none.
    async fn delete_scim_group(&self, ws: &WorkspaceId, id: &str) -> Result<bool, StoreError>;
    /// The workspace's mapping, `None` until one is set (then [`GroupRoles::default`] applies).
    async fn group_roles(&self, ws: &WorkspaceId) -> Result<Option<GroupRoles>, StoreError>;
    async fn put_group_roles(&self, ws: &WorkspaceId, roles: &GroupRoles)
        -> Result<(), StoreError>;
}

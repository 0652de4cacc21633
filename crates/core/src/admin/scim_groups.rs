//! The identity provider's groups (SCIM) and the workspace's mapping from group names to
//! roles. A group is stored as pushed, whatever its name; only membership in a *mapped* group
//! moves a role: on every change of a mapped group (or of the mapping) each affected member
//! gets the highest role of the mapped groups they are in, or `viewer` when they are in none
//! (through [`AdminService::set_role`]: audited, sessions ended, the last admin kept). A change
//! to an unmapped group changes no role.

use std::collections::BTreeSet;

use serde_json::json;

use super::{require, AdminError, AdminResult, AdminService, Principal};
use crate::audit::AuditAction;
use crate::keys::Role;
use crate::scim::store::{GroupRoles, ScimGroup};
use crate::user_id::UserId;

/// Longest group name kept.
pub const MAX_GROUP_NAME_LEN: usize = 256;
/// Most groups one mapping names.
pub const MAX_MAPPED_GROUPS: usize = 50;

/// A group as the identity provider wants it (POST, PUT, or after a PATCH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDraft {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<UserId>,
}

impl AdminService {
    pub async fn scim_groups(&self, p: &Principal) -> AdminResult<Vec<ScimGroup>> {
        require(p, Role::Viewer, "list groups")?;
        Ok(self.ports.control.scim_groups(&p.workspace_id).await?)
    }

    pub async fn scim_group(&self, p: &Principal, id: &str) -> AdminResult<ScimGroup> {
        require(p, Role::Viewer, "read groups")?;
        self.ports
            .control
            .scim_group(&p.workspace_id, id)
            .await?
            .ok_or(AdminError::NotFound("group"))
    }

    /// Creates (`id` `None`) or replaces a group, then moves the roles it changes.
    pub async fn save_scim_group(
        &self,
        p: &Principal,
        id: Option<&str>,
        draft: GroupDraft,
    ) -> AdminResult<ScimGroup> {
        self.open_ws_as(p, Role::Admin, "provision groups").await?;
        let name = draft.display_name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_GROUP_NAME_LEN {
            return Err(AdminError::invalid(
                "displayName",
                "must be 1 to 256 characters",
            ));
        }
        super::provisioning::check_external_id(draft.external_id.as_deref())?;
        let groups = self.ports.control.scim_groups(&p.workspace_id).await?;
        if groups
            .iter()
            .any(|g| Some(g.id.as_str()) != id && g.display_name.eq_ignore_ascii_case(&name))
        {
            return Err(AdminError::Conflict(
                "a group with this displayName exists".into(),
            ));
        }
        let users = self
            .ports
            .control
            .users(&p.workspace_id, self.now())
            .await?;
        let mut members: Vec<UserId> = Vec::new();
        for m in draft.members {
            if !users.iter().any(|u| u.id == m) {
                return Err(AdminError::invalid(
                    "members",
                    format!("no user of this workspace has the id {m}"),
                ));
            }
            if !members.contains(&m) {
                members.push(m);
            }
        }
        let old = match id {
            Some(id) => Some(self.scim_group(p, id).await?),
            None => None,
        };
        let now = self.now();
        let group = ScimGroup {
            id: old.as_ref().map_or_else(
                || format!("grp_{}", self.ports.ids.token(20).to_ascii_lowercase()),
                |g| g.id.clone(),
            ),
            workspace_id: p.workspace_id.clone(),
            display_name: name,
            external_id: draft.external_id,
            members,
            created_at: old.as_ref().map_or(now, |g| g.created_at),
            modified_at: now,
        };
        self.ports.control.put_scim_group(&group).await?;
        self.audit(
            p,
            AuditAction::ScimGroupSave,
            &group.id,
            json!({"created": old.is_none(), "members": group.members.len()}),
        )
        .await?;
        if let Err(e) = self.move_roles(p, [old.as_ref(), Some(&group)]).await {
            // A refused role change (the last admin) leaves the group as it was.
            match &old {
                Some(old) => self.ports.control.put_scim_group(old).await?,
                None => {
                    self.ports
                        .control
                        .delete_scim_group(&p.workspace_id, &group.id)
                        .await?;
                }
            }
            return Err(e);
        }
        Ok(group)
    }

    pub async fn delete_scim_group(&self, p: &Principal, id: &str) -> AdminResult<()> {
        require(p, Role::Admin, "provision groups")?;
        let old = self.scim_group(p, id).await?;
        self.ports
            .control
            .delete_scim_group(&p.workspace_id, id)
            .await?;
        if let Err(e) = self.move_roles(p, [Some(&old), None]).await {
            self.ports.control.put_scim_group(&old).await?;
            return Err(e);
        }
        self.audit(
            p,
            AuditAction::ScimGroupDelete,
            id,
            json!({"members": old.members.len()}),
        )
        .await?;
        Ok(())
    }

    /// The workspace's group → role mapping ([`GroupRoles::default`] until one is set).
    pub async fn group_roles(&self, p: &Principal) -> AdminResult<GroupRoles> {
        require(p, Role::Viewer, "read the group roles")?;
        Ok(self
            .ports
            .control
            .group_roles(&p.workspace_id)
            .await?
            .unwrap_or_default())
    }

    /// Sets the mapping and moves the role of every member of a group it maps (before or
    /// after), audited.
    pub async fn set_group_roles(
        &self,
        p: &Principal,
        roles: GroupRoles,
    ) -> AdminResult<GroupRoles> {
        self.open_ws_as(p, Role::Admin, "set the group roles")
            .await?;
        if roles.groups.len() > MAX_MAPPED_GROUPS {
            return Err(AdminError::invalid(
                "groups",
                "at most 50 groups can be mapped",
            ));
        }
        for (i, g) in roles.groups.iter().enumerate() {
            let name = g.group.trim();
            if name.is_empty() || name.chars().count() > MAX_GROUP_NAME_LEN {
                return Err(AdminError::invalid(
                    format!("groups[{i}].group"),
                    "must be 1 to 256 characters",
                ));
            }
            if roles.groups[..i]
                .iter()
                .any(|o| o.group.trim().eq_ignore_ascii_case(name))
            {
                return Err(AdminError::invalid(
                    format!("groups[{i}].group"),
                    "each group is mapped once",
                ));
            }
        }
        let old = self.group_roles(p).await?;
        self.ports
            .control
            .put_group_roles(&p.workspace_id, &roles)
            .await?;
        let groups = self.ports.control.scim_groups(&p.workspace_id).await?;
        let touched = groups.iter().filter(|g| {
            old.role_of(&g.display_name).is_some() || roles.role_of(&g.display_name).is_some()
        });
        let affected: BTreeSet<UserId> = touched.flat_map(|g| g.members.iter().cloned()).collect();
        self.apply_roles(p, affected, &groups, &roles).await?;
        self.audit(
            p,
            AuditAction::ScimGroupRoles,
            "group_roles",
            json!({"groups": roles.groups}),
        )
        .await?;
        Ok(roles)
    }

    /// Moves the roles a change from `change[0]` to `change[1]` (either absent) of one group
    /// gives, if either is mapped.
    async fn move_roles(&self, p: &Principal, change: [Option<&ScimGroup>; 2]) -> AdminResult<()> {
        let roles = self.group_roles(p).await?;
        let mapped = change
            .iter()
            .flatten()
            .any(|g| roles.role_of(&g.display_name).is_some());
        if !mapped {
            return Ok(());
        }
        let affected: BTreeSet<UserId> = change
            .iter()
            .flatten()
            .flat_map(|g| g.members.iter().cloned())
            .collect();
        let groups = self.ports.control.scim_groups(&p.workspace_id).await?;
        self.apply_roles(p, affected, &groups, &roles).await
    }

    /// Gives each of `users` the highest role of the mapped `groups` they are in (viewer when
    /// none), where it differs.
    async fn apply_roles(
        &self,
        p: &Principal,
        users: BTreeSet<UserId>,
        groups: &[ScimGroup],
        roles: &GroupRoles,
    ) -> AdminResult<()> {
        // Promotions first: a demotion of the last admin then fails only when no member of a
        // mapped admin group is left.
        let mut changes = Vec::new();
        for id in users {
            let Some(user) = self
                .ports
                .control
                .user(&p.workspace_id, &id, self.now())
                .await?
            else {
                continue;
            };
            let role = groups
                .iter()
                .filter(|g| g.members.contains(&id))
                .filter_map(|g| roles.role_of(&g.display_name))
                .max()
                .unwrap_or(Role::Viewer);
            if role != user.role {
                changes.push((role < user.role, id, role));
            }
        }
        changes.sort_by_key(|(demotion, _, _)| *demotion);
        for (_, id, role) in changes {
            self.set_role(p, &id, role).await?;
        }
        Ok(())
    }
}

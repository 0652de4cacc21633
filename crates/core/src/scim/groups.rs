//! SCIM `Groups`: one group per role (`admin`, `editor`, `viewer`). Membership is the role: a
//! user added to `editor` becomes an editor on their next request; a user taken out of their
//! role's group falls back to `viewer`. Every change is [`AdminService::set_role`], so the
//! last admin cannot be taken out of `admin`.
//!
//! [`AdminService::set_role`]: crate::admin::AdminService::set_role

use serde_json::{json, Value};

use super::patch::{self, Op};
use super::{list_response, Scim, ScimError, GROUP_SCHEMA};
use crate::keys::Role;
use crate::user_id::UserId;
use crate::workspace::User;

const ROLES: [Role; 3] = [Role::Admin, Role::Editor, Role::Viewer];

/// The group id (and display name) of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Editor => "editor",
        Role::Viewer => "viewer",
    }
}

fn group_role(id: &str) -> Result<Role, ScimError> {
    ROLES
        .into_iter()
        .find(|r| role_name(*r).eq_ignore_ascii_case(id))
        .ok_or(ScimError::Admin(crate::admin::AdminError::NotFound(
            "group",
        )))
}

fn resource(role: Role, users: &[User], base_url: &str) -> Value {
    let members: Vec<Value> = users
        .iter()
        .filter(|u| u.role == role)
        .map(|u| {
            json!({"value": u.id.to_string(), "display": u.email.as_str(),
                   "$ref": format!("{base_url}/Users/{}", u.id)})
        })
        .collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": role_name(role),
        "displayName": role_name(role),
        "members": members,
        "meta": {"resourceType": "Group", "location": format!("{base_url}/Groups/{}", role_name(role))},
    })
}

/// The SCIM group use cases.
impl Scim<'_> {
    /// GET /Groups; the one filter read is `displayName eq "<name>"`.
    pub async fn groups(
        &self,
        filter: Option<&str>,
        start_index: usize,
        count: Option<usize>,
    ) -> Result<Value, ScimError> {
        let wanted = filter.map(display_name_filter).transpose()?;
        let users = self.admin.users(self.p).await?;
        let found = ROLES
            .into_iter()
            .filter(|r| {
                wanted
                    .as_ref()
                    .is_none_or(|w| role_name(*r).eq_ignore_ascii_case(w))
            })
            .map(|r| resource(r, &users, self.base_url))
            .collect();
        Ok(list_response(found, start_index, count))
    }

    pub async fn group(&self, id: &str) -> Result<Value, ScimError> {
        let role = group_role(id)?;
        let users = self.admin.users(self.p).await?;
        Ok(resource(role, &users, self.base_url))
    }

    /// PUT /Groups/{id} (and POST of an existing group's name, as Okta's group push does):
    /// `members` becomes the whole membership.
    pub async fn replace_group(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let role = group_role(id)?;
        let members = member_ids(body.get("members").unwrap_or(&json!([])))?;
        self.set_members(role, &members).await?;
        self.group(id).await
    }

    /// POST /Groups: only the three role groups exist; pushing one links it.
    pub async fn create_group(&self, body: &Value) -> Result<Value, ScimError> {
        let name = body
            .get("displayName")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid("invalidValue", "displayName is required"))?;
        let role = group_role(name).map_err(|_| {
            ScimError::invalid(
                "invalidValue",
                "TrackLayer has the groups admin, editor and viewer only",
            )
        })?;
        self.replace_group(role_name(role), body).await
    }

    /// PATCH /Groups/{id}: add, remove or replace members; answers 200 with the group.
    pub async fn patch_group(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let role = group_role(id)?;
        for op in patch::operations(body)? {
            let path = op.path.as_deref();
            if let Some(member) = path.map(patch::member_filter).transpose()?.flatten() {
                if op.op != Op::Remove {
                    return Err(ScimError::invalid(
                        "invalidPath",
                        "a member filter path can only be removed",
                    ));
                }
                // No user has a malformed id: then there is nobody to take out of the group.
                if let Ok(member) = UserId::parse(&member) {
                    self.leave(role, &member).await?;
                }
                continue;
            }
            let members = match path.map(str::to_ascii_lowercase).as_deref() {
                Some("members") => op.value.clone(),
                None => op.value.get("members").cloned().unwrap_or(json!([])),
                Some("displayname") => continue,
                Some(other) => {
                    return Err(ScimError::invalid(
                        "invalidPath",
                        format!("unsupported path {other}"),
                    ))
                }
            };
            match op.op {
                Op::Add => {
                    for m in member_ids(&members)? {
                        self.admin.set_role(self.p, &m, role).await?;
                    }
                }
                Op::Replace => self.set_members(role, &member_ids(&members)?).await?,
                Op::Remove if members.is_null() => self.set_members(role, &[]).await?,
                Op::Remove => {
                    for m in member_ids(&members)? {
                        self.leave(role, &m).await?;
                    }
                }
            }
        }
        self.group(id).await
    }

    /// `members` are the group; everyone else with its role falls back to viewer.
    async fn set_members(&self, role: Role, members: &[UserId]) -> Result<(), ScimError> {
        for m in members {
            self.admin.set_role(self.p, m, role).await?;
        }
        for u in self.admin.users(self.p).await? {
            if u.role == role && !members.contains(&u.id) {
                self.leave(role, &u.id).await?;
            }
        }
        Ok(())
    }

    /// Takes `member` out of `role`'s group: they become a viewer (no-op for `viewer`).
    async fn leave(&self, role: Role, member: &UserId) -> Result<(), ScimError> {
        let user = self.admin.user(self.p, member).await?;
        if user.role == role && role != Role::Viewer {
            self.admin.set_role(self.p, member, Role::Viewer).await?;
        }
        Ok(())
    }
}

fn member_ids(members: &Value) -> Result<Vec<UserId>, ScimError> {
    let list = members
        .as_array()
        .ok_or_else(|| ScimError::invalid("invalidValue", "members must be a list"))?;
    list.iter()
        .map(|m| {
            m.get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid("invalidValue", "each member needs a value"))
                .and_then(|v| {
                    UserId::parse(v).map_err(|_| {
                        ScimError::invalid("invalidValue", format!("no user has the id {v:?}"))
                    })
                })
        })
        .collect()
}

fn display_name_filter(f: &str) -> Result<String, ScimError> {
    patch::eq_value(f, "displayName").ok_or_else(|| {
        ScimError::invalid(
            "invalidFilter",
            "Groups take only displayName eq \"<name>\"",
        )
    })
}

//! SCIM `Groups`: the identity provider's groups, stored as pushed (any `displayName`, its
//! members, its `externalId`). Which group names give which role is the workspace's mapping
//! (`AdminService::group_roles`, defaults `TrackLayer Admins` / `Editors` / `Viewers`); every
//! change goes through [`AdminService::save_scim_group`], which moves the roles.
//!
//! [`AdminService::save_scim_group`]: crate::admin::AdminService::save_scim_group

use serde_json::{json, Value};

use super::patch::{self, Op};
use super::store::ScimGroup;
use super::users::rfc3339;
use super::{external_id, list_response, ListPage, Scim, ScimError, GROUP_SCHEMA};
use crate::admin::GroupDraft;
use crate::user_id::UserId;
use crate::workspace::User;

fn resource(group: &ScimGroup, users: &[User], base_url: &str) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .filter(|m| users.iter().any(|u| &u.id == *m))
        .map(|m| json!({"value": m.to_string(), "$ref": format!("{base_url}/Users/{m}")}))
        .collect();
    let mut r = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id,
        "displayName": group.display_name,
        "meta": {
            "resourceType": "Group",
            "created": rfc3339(group.created_at),
            "lastModified": rfc3339(group.modified_at),
            "location": format!("{base_url}/Groups/{}", group.id),
        },
    });
    if !members.is_empty() {
        r["members"] = json!(members);
    }
    if let Some(e) = &group.external_id {
        r["externalId"] = json!(e);
    }
    r
}

/// The SCIM group use cases.
impl Scim<'_> {
    /// The workspace's stored groups (for users' `groups`).
    pub(super) async fn stored_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        Ok(self.admin.scim_groups(self.p).await?)
    }

    /// GET /Groups; the one filter read is `displayName eq "<name>"`.
    pub async fn groups(&self, filter: Option<&str>, page: ListPage) -> Result<Value, ScimError> {
        let wanted = filter.map(display_name_filter).transpose()?;
        let found = self.group_resources(wanted.as_deref()).await?;
        Ok(list_response(found, page))
    }

    /// Every stored group named `wanted` (any, without), oldest first, as resources: all of
    /// them, whatever their number; a list answer pages them.
    pub(super) async fn group_resources(
        &self,
        wanted: Option<&str>,
    ) -> Result<Vec<Value>, ScimError> {
        let users = self.admin.users(self.p).await?;
        Ok(self
            .stored_groups()
            .await?
            .iter()
            .filter(|g| wanted.is_none_or(|w| g.display_name.eq_ignore_ascii_case(w)))
            .map(|g| resource(g, &users, self.base_url))
            .collect())
    }

    pub async fn group(&self, id: &str) -> Result<Value, ScimError> {
        let group = self.admin.scim_group(self.p, id).await?;
        let users = self.admin.users(self.p).await?;
        Ok(resource(&group, &users, self.base_url))
    }

    /// POST /Groups: a new group of any name.
    pub async fn create_group(&self, body: &Value) -> Result<Value, ScimError> {
        let draft = draft_of(body)?;
        let group = self.admin.save_scim_group(self.p, None, draft).await?;
        self.group(&group.id).await
    }

    /// PUT /Groups/{id}: the whole group; `members` becomes the whole membership.
    pub async fn replace_group(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let draft = draft_of(body)?;
        let group = self.admin.save_scim_group(self.p, Some(id), draft).await?;
        self.group(&group.id).await
    }

    /// DELETE /Groups/{id}.
    pub async fn delete_group(&self, id: &str) -> Result<(), ScimError> {
        Ok(self.admin.delete_scim_group(self.p, id).await?)
    }

    /// PATCH /Groups/{id}: members added, removed or replaced (also as Entra ID's
    /// `members[value eq "…"]`), `displayName` and `externalId` set; answers 200 with the group.
    pub async fn patch_group(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let group = self.admin.scim_group(self.p, id).await?;
        let mut draft = GroupDraft {
            display_name: group.display_name,
            external_id: group.external_id,
            members: group.members,
        };
        for op in patch::operations(body)? {
            apply(&mut draft, &op)?;
        }
        let group = self.admin.save_scim_group(self.p, Some(id), draft).await?;
        self.group(&group.id).await
    }
}

/// A whole Group resource (POST, PUT).
fn draft_of(body: &Value) -> Result<GroupDraft, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid("invalidSyntax", "the body must be a Group object"))?;
    let mut draft = GroupDraft {
        display_name: String::new(),
        external_id: None,
        members: vec![],
    };
    for (name, value) in obj {
        set(&mut draft, name, value)?;
    }
    if draft.display_name.trim().is_empty() {
        return Err(ScimError::invalid(
            "invalidValue",
            "displayName is required",
        ));
    }
    Ok(draft)
}

/// Sets one attribute by its (case-insensitive) name; others are ignored.
fn set(draft: &mut GroupDraft, name: &str, value: &Value) -> Result<(), ScimError> {
    match name.to_ascii_lowercase().as_str() {
        "displayname" => {
            draft.display_name = value
                .as_str()
                .ok_or_else(|| ScimError::invalid("invalidValue", "displayName must be a string"))?
                .to_owned()
        }
        "externalid" => draft.external_id = external_id(value)?,
        "members" => draft.members = member_ids(value)?,
        _ => {}
    }
    Ok(())
}

/// One PATCH operation on a group's draft.
fn apply(draft: &mut GroupDraft, op: &PatchOp) -> Result<(), ScimError> {
    let path = op.path.as_deref();
    if let Some(member) = path.map(patch::member_filter).transpose()?.flatten() {
        if op.op != Op::Remove {
            return Err(ScimError::invalid(
                "invalidPath",
                "a member filter path can only be removed",
            ));
        }
        draft.members.retain(|m| m.as_str() != member);
        return Ok(());
    }
    match (path.map(str::to_ascii_lowercase).as_deref(), op.op) {
        (None, Op::Remove) => Err(ScimError::invalid("noTarget", "remove needs a path")),
        (None, _) => {
            let obj = op.value.as_object().ok_or_else(|| {
                ScimError::invalid("invalidValue", "an operation without path needs an object")
            })?;
            for (name, value) in obj {
                if op.op == Op::Add && name.eq_ignore_ascii_case("members") {
                    add_members(draft, value)?;
                } else {
                    set(draft, name, value)?;
                }
            }
            Ok(())
        }
        (Some("members"), Op::Add) => add_members(draft, &op.value),
        (Some("members"), Op::Replace) => {
            draft.members = member_ids(&op.value)?;
            Ok(())
        }
        (Some("members"), Op::Remove) if op.value.is_null() => {
            draft.members.clear();
            Ok(())
        }
        (Some("members"), Op::Remove) => {
            let gone = member_ids(&op.value)?;
            draft.members.retain(|m| !gone.contains(m));
            Ok(())
        }
        (Some("externalid"), Op::Remove) => {
            draft.external_id = None;
            Ok(())
        }
        (Some("displayname"), Op::Remove) => Err(ScimError::invalid(
            "mutability",
            "displayName cannot be removed",
        )),
        (Some(p @ ("displayname" | "externalid")), _) => set(draft, p, &op.value),
        (Some(other), _) => Err(ScimError::invalid(
            "invalidPath",
            format!("unsupported path {other}"),
        )),
    }
}

use patch::PatchOp;

fn add_members(draft: &mut GroupDraft, value: &Value) -> Result<(), ScimError> {
    for m in member_ids(value)? {
        if !draft.members.contains(&m) {
            draft.members.push(m);
        }
    }
    Ok(())
}

/// The user ids of a `members` value (a list, or one member object).
fn member_ids(members: &Value) -> Result<Vec<UserId>, ScimError> {
    let list = match members {
        Value::Null => return Ok(vec![]),
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return Err(ScimError::invalid("invalidValue", "members must be a list")),
    };
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

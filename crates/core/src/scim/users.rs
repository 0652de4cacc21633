//! SCIM `Users`: a TrackLayer user as the identity provider sees it, and the use cases on it.

use serde_json::{json, Value};

use super::filter::Filter;
use super::patch::{self, PatchOp};
use super::profile::{ScimEmail, ScimProfile, MAX_EMAILS, MAX_USER_NAME_LEN};
use super::store::ScimGroup;
use super::{external_id, lenient_bool, list_response, ListPage, Scim, ScimError, USER_SCHEMA};
use crate::user_id::UserId;
use crate::workspace::User;

/// What the identity provider manages of a user: the parts a PUT replaces and a PATCH edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDraft {
    pub profile: ScimProfile,
    pub external_id: Option<String>,
    pub active: bool,
}

impl UserDraft {
    fn of(user: &User) -> Self {
        Self {
            profile: profile_of(user),
            external_id: user.external_id.clone(),
            active: user.active,
        }
    }

    /// Reads a whole User resource (POST, PUT). `userName` may be any string; when it is
    /// missing, the primary (or first) `emails` value stands in.
    pub fn from_resource(body: &Value) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid("invalidSyntax", "the body must be a User object"))?;
        let mut draft = Self {
            profile: ScimProfile {
                user_name: String::new(),
                emails: vec![],
                active_unassigned: true,
            },
            external_id: None,
            active: true,
        };
        for (name, value) in obj {
            draft.set(name, value)?;
        }
        if draft.profile.user_name.is_empty() {
            if let Some(e) = primary_email(&draft.profile.emails) {
                draft.profile.user_name = e.to_owned();
            }
        }
        draft.check()?;
        Ok(draft)
    }

    /// A non-empty `userName` of at most [`MAX_USER_NAME_LEN`] characters, at most
    /// [`MAX_EMAILS`] emails.
    fn check(&self) -> Result<(), ScimError> {
        let name = self.profile.user_name.trim();
        if name.is_empty() {
            return Err(ScimError::invalid("invalidValue", "userName is required"));
        }
        if name.chars().count() > MAX_USER_NAME_LEN || name.chars().any(char::is_control) {
            return Err(ScimError::invalid(
                "invalidValue",
                "userName must be 1 to 256 characters without control characters",
            ));
        }
        if self.profile.emails.len() > MAX_EMAILS {
            return Err(ScimError::invalid(
                "invalidValue",
                "at most 10 emails are kept per user",
            ));
        }
        Ok(())
    }

    /// Sets one attribute by its (case-insensitive) name; attributes TrackLayer does not keep
    /// (`name`, `displayName`, `schemas`, …) are accepted and ignored, as RFC 7644 §3.3 lets
    /// a provider do.
    pub fn set(&mut self, name: &str, value: &Value) -> Result<(), ScimError> {
        match name.to_ascii_lowercase().as_str() {
            "username" => {
                self.profile.user_name = value
                    .as_str()
                    .ok_or_else(|| ScimError::invalid("invalidValue", "userName must be a string"))?
                    .trim()
                    .to_owned()
            }
            "externalid" => self.external_id = external_id(value)?,
            "active" => {
                self.active = lenient_bool("active", value)?;
                self.profile.active_unassigned = false;
            }
            "emails" => self.profile.emails = emails(value)?,
            _ => {}
        }
        Ok(())
    }
}

/// The profile of a user: the stored one, or (a user made by the admin API) the sign-in
/// address as both `userName` and the primary work email.
pub(crate) fn profile_of(user: &User) -> ScimProfile {
    user.scim.clone().unwrap_or_else(|| ScimProfile {
        user_name: user.email.as_str().to_owned(),
        emails: vec![ScimEmail {
            value: user.email.as_str().to_owned(),
            kind: Some("work".into()),
            primary: Some(true),
        }],
        active_unassigned: false,
    })
}

/// An `emails` value: a list of `{value, type, primary}` (null: none).
fn emails(value: &Value) -> Result<Vec<ScimEmail>, ScimError> {
    if value.is_null() {
        return Ok(vec![]);
    }
    let list = match value {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return Err(ScimError::invalid("invalidValue", "emails must be a list")),
    };
    list.into_iter()
        .map(|e| {
            let value = e.get("value").and_then(Value::as_str).ok_or_else(|| {
                ScimError::invalid("invalidValue", "each email needs a string value")
            })?;
            let kind = e.get("type").and_then(Value::as_str).map(str::to_owned);
            let primary = match e.get("primary") {
                None | Some(Value::Null) => None,
                Some(p) => Some(lenient_bool("emails.primary", p)?),
            };
            Ok(ScimEmail {
                value: value.to_owned(),
                kind,
                primary,
            })
        })
        .collect()
}

fn primary_email(emails: &[ScimEmail]) -> Option<&str> {
    emails
        .iter()
        .find(|e| e.primary == Some(true))
        .or_else(|| emails.first())
        .map(|e| e.value.as_str())
}

/// A user as a SCIM User resource; `groups` are the stored groups the user is a member of.
pub fn resource(user: &User, groups: &[ScimGroup], base_url: &str) -> Value {
    let profile = profile_of(user);
    let member_of: Vec<Value> = groups
        .iter()
        .filter(|g| g.members.contains(&user.id))
        .map(|g| json!({"value": g.id, "display": g.display_name}))
        .collect();
    let mut r = json!({
        "schemas": [USER_SCHEMA],
        "id": user.id.to_string(),
        "userName": profile.user_name,
        "meta": {
            "resourceType": "User",
            "created": rfc3339(user.created_at),
            "lastModified": rfc3339(user.created_at),
            "location": format!("{base_url}/Users/{}", user.id),
        },
    });
    if !profile.active_unassigned {
        r["active"] = json!(user.active);
    }
    if !profile.emails.is_empty() {
        r["emails"] = json!(profile.emails);
    }
    if !member_of.is_empty() {
        r["groups"] = json!(member_of);
    }
    if let Some(e) = &user.external_id {
        r["externalId"] = json!(e);
    }
    r
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The SCIM user use cases.
impl Scim<'_> {
    /// POST /Users: a new user with the viewer role (groups give more).
    pub async fn create_user(&self, body: &Value) -> Result<Value, ScimError> {
        let draft = UserDraft::from_resource(body)?;
        // `userName` is unique by the store's write (`USER_NAME_TAKEN`, a 409 `uniqueness`).
        let user = self
            .admin
            .provision_new_user(self.p, draft.profile, draft.external_id, draft.active)
            .await
            .map_err(user_name_field)?;
        Ok(resource(&user, &[], self.base_url))
    }

    pub async fn user(&self, id: &str) -> Result<Value, ScimError> {
        let id = &user_id(id)?;
        let user = self.admin.user(self.p, id).await?;
        Ok(resource(&user, &self.stored_groups().await?, self.base_url))
    }

    pub async fn users(&self, filter: Option<&str>, page: ListPage) -> Result<Value, ScimError> {
        let filter = filter.map(Filter::parse).transpose()?;
        let found = self.user_resources(filter.as_ref()).await?;
        Ok(list_response(found, page))
    }

    /// Every user `filter` passes, oldest first, as resources.
    async fn user_resources(&self, filter: Option<&Filter>) -> Result<Vec<Value>, ScimError> {
        let mut users = self.admin.users(self.p).await?;
        users.sort_by(|a, b| {
            (a.created_at, a.id.to_string()).cmp(&(b.created_at, b.id.to_string()))
        });
        let groups = self.stored_groups().await?;
        Ok(users
            .iter()
            .filter(|u| filter.is_none_or(|f| f.matches(u)))
            .map(|u| resource(u, &groups, self.base_url))
            .collect())
    }

    /// `POST /.search` without a filter: every user, then every group, as resources.
    pub async fn search_all(&self, page: ListPage) -> Result<Value, ScimError> {
        let mut all = self.user_resources(None).await?;
        all.extend(self.group_resources(None).await?);
        Ok(list_response(all, page))
    }

    /// PUT /Users/{id}: the whole resource (Okta sends every attribute, `active` included).
    pub async fn replace_user(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let id = &user_id(id)?;
        let user = self.admin.user(self.p, id).await?;
        let draft = UserDraft::from_resource(body)?;
        self.commit(user, draft).await
    }

    /// PATCH /Users/{id}: answers 200 with the resource.
    pub async fn patch_user(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let id = &user_id(id)?;
        let user = self.admin.user(self.p, id).await?;
        let mut draft = UserDraft::of(&user);
        for op in patch::operations(body)? {
            apply(&mut draft, &op)?;
        }
        draft.check()?;
        self.commit(user, draft).await
    }

    /// DELETE /Users/{id}: the user and every personal token end (the last admin stays).
    pub async fn delete_user(&self, id: &str) -> Result<(), ScimError> {
        let id = &user_id(id)?;
        Ok(self.admin.remove_user(self.p, id).await?)
    }

    /// Writes what differs between `user` and `draft` through the admin use cases and
    /// answers the resource. A new `userName` moves with the write of the profile: the store
    /// refuses it (409 `uniqueness`) when another user has it.
    async fn commit(&self, mut user: User, draft: UserDraft) -> Result<Value, ScimError> {
        let id = user.id.clone();
        let address = draft.profile.sign_in_address(&id);
        if user.email != address {
            user = self
                .admin
                .set_email(self.p, &id, address.as_str())
                .await
                .map_err(user_name_field)?;
        }
        let profile = Some(draft.profile);
        if user.external_id != draft.external_id
            || user.active != draft.active
            || user.scim != profile
        {
            user = self
                .admin
                .provision_user(self.p, &id, draft.external_id, draft.active, profile)
                .await?;
        }
        Ok(resource(&user, &self.stored_groups().await?, self.base_url))
    }
}

/// One PATCH operation on a user's draft.
fn apply(draft: &mut UserDraft, op: &PatchOp) -> Result<(), ScimError> {
    match (op.path.as_deref(), op.op) {
        (None, patch::Op::Remove) => Err(ScimError::invalid("noTarget", "remove needs a path")),
        (None, _) => {
            let obj = op.value.as_object().ok_or_else(|| {
                ScimError::invalid("invalidValue", "an operation without path needs an object")
            })?;
            for (name, value) in obj {
                draft.set(name, value)?;
            }
            Ok(())
        }
        (Some(path), patch::Op::Remove) => match path.to_ascii_lowercase().as_str() {
            "externalid" => {
                draft.external_id = None;
                Ok(())
            }
            "emails" => {
                draft.profile.emails.clear();
                Ok(())
            }
            // Unassigned: the user is active (RFC 7643 §2.5).
            "active" => {
                draft.active = true;
                draft.profile.active_unassigned = true;
                Ok(())
            }
            // Attributes TrackLayer does not keep: nothing to remove.
            lower if !lower.contains('[') && lower != "username" => Ok(()),
            _ => Err(ScimError::invalid(
                "mutability",
                format!("{path} cannot be removed"),
            )),
        },
        (Some(path), _) => {
            let lower = path.to_ascii_lowercase();
            // Entra ID and OneLogin address the work email as `emails[type eq "work"].value`.
            if lower.starts_with("emails[") && lower.ends_with("].value") {
                let value = op
                    .value
                    .as_str()
                    .ok_or_else(|| ScimError::invalid("invalidValue", "emails must be strings"))?;
                set_work_email(&mut draft.profile.emails, value);
                return Ok(());
            }
            match lower.as_str() {
                "username" | "externalid" | "active" => draft.set(path, &op.value),
                "emails" if op.op == patch::Op::Add => {
                    let added = emails(&op.value)?;
                    if added.iter().any(|e| e.primary == Some(true)) {
                        for e in &mut draft.profile.emails {
                            e.primary = None;
                        }
                    }
                    draft
                        .profile
                        .emails
                        .retain(|e| !added.iter().any(|a| a.value == e.value));
                    draft.profile.emails.extend(added);
                    Ok(())
                }
                "emails" => draft.set(path, &op.value),
                // Attributes TrackLayer does not keep (name.givenName, displayName, …).
                _ if !lower.contains('[') => Ok(()),
                _ => Err(ScimError::invalid(
                    "invalidPath",
                    format!("unsupported path {path}"),
                )),
            }
        }
    }
}

/// Sets the work email (the primary one, else the first): Entra ID's
/// `emails[type eq "work"].value`.
fn set_work_email(emails: &mut Vec<ScimEmail>, value: &str) {
    let target = emails
        .iter()
        .position(|e| e.kind.as_deref() == Some("work"))
        .or_else(|| emails.iter().position(|e| e.primary == Some(true)));
    match target {
        Some(i) => emails[i].value = value.to_owned(),
        None => emails.push(ScimEmail {
            value: value.to_owned(),
            kind: Some("work".into()),
            primary: Some(emails.is_empty()),
        }),
    }
}

/// An invalid email is SCIM's `userName` at fault.
fn user_name_field(e: crate::admin::AdminError) -> ScimError {
    match e {
        crate::admin::AdminError::Invalid { detail, .. } => {
            ScimError::invalid("invalidValue", format!("userName: {detail}"))
        }
        other => other.into(),
    }
}

/// The user a path's `{id}` names: a malformed id names no user (404, as an unknown one).
fn user_id(id: &str) -> Result<UserId, ScimError> {
    UserId::parse(id).map_err(|_| crate::admin::AdminError::NotFound("user").into())
}

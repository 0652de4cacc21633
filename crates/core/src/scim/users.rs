//! SCIM `Users`: a TrackLayer user as the identity provider sees it, and the use cases on it.

use serde_json::{json, Value};

use super::filter::Filter;
use super::patch::{self, PatchOp};
use super::{lenient_bool, list_response, Scim, ScimError, USER_SCHEMA};
use crate::keys::Role;
use crate::user_id::UserId;
use crate::workspace::User;

/// What the identity provider manages of a user: the parts a PUT replaces and a PATCH edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDraft {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
}

impl UserDraft {
    fn of(user: &User) -> Self {
        Self {
            user_name: user.email.as_str().to_owned(),
            external_id: user.external_id.clone(),
            active: user.active,
        }
    }

    /// Reads a whole User resource (POST, PUT). `userName` is the email address; when it is
    /// missing, the primary (or first) `emails` value stands in.
    pub fn from_resource(body: &Value) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid("invalidSyntax", "the body must be a User object"))?;
        let mut draft = Self {
            user_name: String::new(),
            external_id: None,
            active: true,
        };
        for (name, value) in obj {
            draft.set(name, value)?;
        }
        if draft.user_name.is_empty() {
            return Err(ScimError::invalid("invalidValue", "userName is required"));
        }
        Ok(draft)
    }

    /// Sets one attribute by its (case-insensitive) name; attributes TrackLayer does not keep
    /// (`name`, `displayName`, `schemas`, …) are accepted and ignored, as RFC 7644 §3.3 lets
    /// a provider do.
    pub fn set(&mut self, name: &str, value: &Value) -> Result<(), ScimError> {
        match name.to_ascii_lowercase().as_str() {
            "username" => {
                self.user_name = value
                    .as_str()
                    .ok_or_else(|| ScimError::invalid("invalidValue", "userName must be a string"))?
                    .to_owned()
            }
            "externalid" => {
                self.external_id = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => {
                        return Err(ScimError::invalid(
                            "invalidValue",
                            "externalId must be a string",
                        ))
                    }
                }
            }
            "active" => self.active = lenient_bool("active", value)?,
            "emails" if self.user_name.is_empty() => {
                if let Some(email) = primary_email(value) {
                    self.user_name = email;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn primary_email(emails: &Value) -> Option<String> {
    let list = emails.as_array()?;
    let primary = list
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| list.first())?;
    primary.get("value")?.as_str().map(str::to_owned)
}

/// A user as a SCIM User resource.
pub fn resource(user: &User, base_url: &str) -> Value {
    let mut r = json!({
        "schemas": [USER_SCHEMA],
        "id": user.id.to_string(),
        "userName": user.email.as_str(),
        "emails": [{"value": user.email.as_str(), "primary": true, "type": "work"}],
        "active": user.active,
        "groups": [{"value": super::groups::role_name(user.role), "display": super::groups::role_name(user.role)}],
        "meta": {
            "resourceType": "User",
            "created": rfc3339(user.created_at),
            "lastModified": rfc3339(user.created_at),
            "location": format!("{base_url}/Users/{}", user.id.to_string()),
        },
    });
    if let Some(e) = &user.external_id {
        r["externalId"] = json!(e);
    }
    r
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The SCIM user use cases.
impl Scim<'_> {
    /// POST /Users: a new user with the viewer role (groups give more).
    pub async fn create_user(&self, body: &Value) -> Result<Value, ScimError> {
        let draft = UserDraft::from_resource(body)?;
        let user = self
            .admin
            .invite_user(self.p, &draft.user_name, Role::Viewer)
            .await
            .map_err(user_name_field)?;
        let user = self.commit(user, draft).await?;
        Ok(resource(&user, self.base_url))
    }

    pub async fn user(&self, id: &str) -> Result<Value, ScimError> {
        let id = &user_id(id)?;
        Ok(resource(&self.admin.user(self.p, id).await?, self.base_url))
    }

    pub async fn users(
        &self,
        filter: Option<&str>,
        start_index: usize,
        count: Option<usize>,
    ) -> Result<Value, ScimError> {
        let filter = filter.map(Filter::parse).transpose()?;
        let mut users = self.admin.users(self.p).await?;
        users.sort_by(|a, b| {
            (a.created_at, a.id.to_string()).cmp(&(b.created_at, b.id.to_string()))
        });
        let found = users
            .iter()
            .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
            .map(|u| resource(u, self.base_url))
            .collect();
        Ok(list_response(found, start_index, count))
    }

    /// PUT /Users/{id}: the whole resource (Okta sends every attribute, `active` included).
    pub async fn replace_user(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let id = &user_id(id)?;
        let user = self.admin.user(self.p, id).await?;
        let draft = UserDraft::from_resource(body)?;
        let user = self.commit(user, draft).await?;
        Ok(resource(&user, self.base_url))
    }

    /// PATCH /Users/{id}: answers 200 with the resource.
    pub async fn patch_user(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        let id = &user_id(id)?;
        let user = self.admin.user(self.p, id).await?;
        let mut draft = UserDraft::of(&user);
        for op in patch::operations(body)? {
            apply(&mut draft, &op)?;
        }
        let user = self.commit(user, draft).await?;
        Ok(resource(&user, self.base_url))
    }

    /// DELETE /Users/{id}: the user and every personal token end (the last admin stays).
    pub async fn delete_user(&self, id: &str) -> Result<(), ScimError> {
        let id = &user_id(id)?;
        Ok(self.admin.remove_user(self.p, id).await?)
    }

    /// Writes what differs between `user` and `draft` through the admin use cases.
    async fn commit(&self, mut user: User, draft: UserDraft) -> Result<User, ScimError> {
        let id = user.id.clone();
        if !user.email.as_str().eq_ignore_ascii_case(&draft.user_name) {
            user = self
                .admin
                .set_email(self.p, &id, &draft.user_name)
                .await
                .map_err(user_name_field)?;
        }
        if user.external_id != draft.external_id || user.active != draft.active {
            user = self
                .admin
                .provision_user(self.p, &id, draft.external_id, draft.active)
                .await?;
        }
        Ok(user)
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
            _ => Err(ScimError::invalid(
                "mutability",
                format!("{path} cannot be removed"),
            )),
        },
        (Some(path), _) => {
            let lower = path.to_ascii_lowercase();
            // Entra ID and OneLogin address the work email as `emails[type eq "work"].value`.
            if lower.starts_with("emails[") && lower.ends_with("].value") {
                draft.user_name = op
                    .value
                    .as_str()
                    .ok_or_else(|| ScimError::invalid("invalidValue", "emails must be strings"))?
                    .to_owned();
                return Ok(());
            }
            match lower.as_str() {
                "username" | "externalid" | "active" => draft.set(path, &op.value),
                "emails" => {
                    if let Some(email) = primary_email(&op.value) {
                        draft.user_name = email;
                    }
                    Ok(())
                }
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

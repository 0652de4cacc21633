//! Users and their roles: wire types and handlers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_core as tl;
use tracklayer_core::user_id::UserId;
use utoipa::ToSchema;

use super::dto::{self, present, rfc3339, Role};
use super::extract::{Answer, Call, Created, Id, Json, NoContent};
use crate::problem::Problem;

/// A user of the admin API.
// `Debug` never shows the email address: an `Email` redacts it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// `usr_…`
    pub id: String,
    #[schema(value_type = String)]
    pub email: tl::email::Email,
    pub role: Role,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<tl::workspace::User> for User {
    fn from(u: tl::workspace::User) -> Self {
        Self {
            id: u.id.into(),
            email: u.email,
            role: u.role.into(),
            created_at: u.created_at,
        }
    }
}

/// Whom to invite, with which role.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    #[schema(max_length = 254, format = Email, example = "ops@example.com")]
    pub email: String,
    pub role: Role,
}

/// Changes to a user; absent fields stay as they are. The role is changed by admins, the
/// email address by admins or the user themself.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub role: Option<Role>,
    /// Unique in the workspace; stored lowercase.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, max_length = 254, format = Email, example = "ops@example.com")]
    pub email: Option<String>,
}

// Neither shows the email address.
tracklayer_core::debug_fields!(InviteUser: role);
tracklayer_core::debug_fields!(UserPatch: role);

/// The user a path's `{id}` names, parsed where it enters: a malformed id names no user (404,
/// as an unknown one, whatever the caller's role or body).
#[derive(Debug)]
pub struct UserPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Id(id) = Id::from_request_parts(parts, state).await?;
        UserId::parse(&id)
            .map(UserPath)
            .map_err(|_| Problem::not_found("user"))
    }
}

/// The workspace's users.
#[utoipa::path(get, path = "/admin/v1/users", operation_id = "listUsers", tag = "users",
    responses((status = 200, description = "The users", body = Vec<User>)))]
pub async fn list_users(Call(s, p): Call) -> Answer<Vec<User>> {
    s.answer_each(s.admin().users(&p)).await
}

/// Invites a user with a role (admin).
#[utoipa::path(post, path = "/admin/v1/users", operation_id = "inviteUser", tag = "users",
    request_body = InviteUser,
    responses(
        (status = 201, description = "The invited user", body = User),
        (status = 403, description = "Only admins invite users", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "A user with this email exists", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn invite_user(Call(s, p): Call, Json(body): Json<InviteUser>) -> Created<User> {
    s.answer_created(s.admin().invite_user(&p, &body.email, body.role.into()))
        .await
}

/// Changes a user's role (admin; the last admin cannot be demoted) or email address (admin, or
/// the user themself; audited with fingerprints only).
#[utoipa::path(patch, path = "/admin/v1/users/{id}", operation_id = "updateUser", tag = "users",
    params(dto::UserId),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user, changed", body = User),
        (status = 403, description = "Only admins change roles and other users' email addresses", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be demoted, or another user has this email", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    Call(s, p): Call,
    UserPath(id): UserPath,
    Json(body): Json<UserPatch>,
) -> Answer<User> {
    let admin = s.admin();
    let mut user = None;
    if let Some(role) = body.role {
        user = Some(s.run(admin.set_role(&p, &id, role.into())).await?);
    }
    if let Some(email) = body.email {
        user = Some(s.run(admin.set_email(&p, &id, &email)).await?);
    }
    let user = match user {
        Some(u) => u,
        None => s.run(admin.user(&p, &id)).await?,
    };
    Ok(Json(user.into()))
}

/// Removes a user (admin); their personal tokens stop working at once. The last admin cannot
/// be removed.
#[utoipa::path(delete, path = "/admin/v1/users/{id}", operation_id = "removeUser", tag = "users",
    params(dto::UserId),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Only admins remove users", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be removed", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn remove_user(Call(s, p): Call, UserPath(id): UserPath) -> NoContent {
    s.answer_no_content(s.admin().remove_user(&p, &id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_user_or_an_invitation_never_shows_the_email_address() {
        let user = User {
            id: "usr_1".into(),
            email: tl::email::Email::parse("jane.doe@example.com").unwrap(),
            role: Role::Admin,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let invite = InviteUser {
            email: "jane.doe@example.com".into(),
            role: Role::Viewer,
        };

        let printed = format!("{user:?} {invite:?}");

        assert!(!printed.contains("jane.doe"), "{printed}");
        assert!(
            printed.contains("usr_1") && printed.contains("<redacted>"),
            "{printed}"
        );
    }
}

//! Console sessions in the admin API: list a user's, end one. Bearer tokens are unaffected.

use serde::Serialize;
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::dto::{self, rfc3339};
use super::extract::{Answer, Call, Id, NoContent};
use super::users::UserPath;
use crate::problem::Problem;

/// A console session. Its token is never shown (the browser alone holds it).
#[derive(Clone, Serialize, ToSchema)]
pub struct Session {
    /// `ses_…`
    pub id: String,
    /// `usr_…`
    pub user_id: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// When it ends if not used again: 12 hours after it was last seen, at the latest
    /// `expires_at`.
    #[serde(serialize_with = "rfc3339")]
    pub idle_expires_at: OffsetDateTime,
    /// The absolute end, 7 days after it began.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The network it began from (IPv4 /24 or IPv6 /48), never the address.
    #[schema(example = "203.0.113.0/24")]
    pub network: String,
    /// Browser and platform, e.g. `Firefox on Linux`.
    pub user_agent: Option<String>,
}

tracklayer_core::debug_fields!(Session: id, user_id, created_at, expires_at);

impl From<tl::sessions::Session> for Session {
    fn from(s: tl::sessions::Session) -> Self {
        Self {
            idle_expires_at: s.ends_at(),
            id: s.id.into(),
            user_id: s.user_id.into(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            network: s.source_ip,
            user_agent: s.user_agent,
        }
    }
}

/// A user's live console sessions, oldest first: one's own, or anyone's for an admin.
#[utoipa::path(get, path = "/admin/v1/users/{id}/sessions", operation_id = "listUserSessions", tag = "users",
    params(dto::UserId),
    responses(
        (status = 200, description = "The user's live sessions", body = Vec<Session>),
        (status = 403, description = "Only admins list other users' sessions", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list_sessions(Call(s, p): Call, UserPath(user): UserPath) -> Answer<Vec<Session>> {
    s.answer_each(s.admin().sessions(&p, &user)).await
}

/// Ends a console session at once: one's own, or anyone's for an admin. Audited.
#[utoipa::path(delete, path = "/admin/v1/sessions/{id}", operation_id = "revokeSession", tag = "users",
    params(dto::SessionId),
    responses(
        (status = 204, description = "Ended"),
        (status = 403, description = "Only admins end other users' sessions", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No such session", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn revoke_session(Call(s, p): Call, Id(id): Id) -> NoContent {
    let id = tl::sessions::SessionId::parse(&id).map_err(|_| Problem::not_found("session"))?;
    s.answer_no_content(s.admin().revoke_session(&p, &id)).await
}

//! API keys: wire types and handlers.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::dto::{self, integer, rfc3339, rfc3339_opt, Role};
use super::extract::{Answer, Call, Created, Id, Json, OptionalJson};

dto::mirror! {
    /// What a key is for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum KeyKind = tl::keys::KeyKind {
        /// An ingest write key (tracking API only).
        Ingest,
        /// A user's personal access token (admin API).
        Pat,
        /// A service token with a role, for automation (admin API).
        Svc,
        /// An identity provider's SCIM token (`/scim/v2` only).
        Scim,
    }
}

/// The kinds of key the API creates (personal tokens come with users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewKeyKind {
    Ingest,
    Svc,
    Scim,
}

dto::mirror! { NewKeyKind => tl::keys::KeyKind { Ingest, Svc, Scim } }

/// A key as listings show it: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    /// The key's public id (16 characters).
    pub id: String,
    /// The first characters of the key, safe to show: `tl_<kind>_<region>_<id>`.
    pub prefix: String,
    pub kind: KeyKind,
    /// The role of a service token or personal token; `null` for ingest keys.
    pub role: Option<Role>,
    pub name: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the key stops working (at most 90 days after creation; sooner once rotated).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339_opt")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_used_at: Option<OffsetDateTime>,
    /// A browser-facing write key: public, accepted only from the workspace's allowed origins
    /// (`/admin/v1/cors`) under a stricter per-IP rate limit.
    pub browser: bool,
}

impl From<tl::admin::KeyView> for ApiKey {
    fn from(k: tl::admin::KeyView) -> Self {
        Self {
            id: k.id.to_string(),
            prefix: k.prefix,
            kind: k.kind.into(),
            role: k.role.map(Into::into),
            name: k.name,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            browser: k.browser,
        }
    }
}

/// A new key and its secret. The secret is shown this once and never again.
// `Debug` shows no secret: it is a `SecretString` up to serialization.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// The whole key, `tl_<kind>_<region>_<id>_<secret>`.
    #[serde(serialize_with = "reveal")]
    #[schema(value_type = String)]
    pub secret: SecretString,
}

/// The secret itself, in the one answer that shows it.
fn reveal<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

impl From<tl::admin::CreatedKey> for CreatedApiKey {
    fn from(c: tl::admin::CreatedKey) -> Self {
        Self {
            key: c.key.into(),
            secret: c.secret,
        }
    }
}

/// An ingest write key (no role), a service token (with a role) or a SCIM token (no role).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub kind: NewKeyKind,
    /// Required for service tokens; ingest keys have none.
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// Days until the key expires: 1 to 90 (default 90).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 90)]
    pub expires_in_days: Option<i64>,
    /// Make an ingest write key browser-facing (default false): it goes in web pages, so it
    /// is accepted only from the allowed origins, under a stricter per-IP rate limit.
    #[serde(default)]
    pub browser: Option<bool>,
}

impl From<NewApiKey> for tl::admin::KeyRequest {
    fn from(k: NewApiKey) -> Self {
        Self {
            kind: k.kind.into(),
            role: k.role.map(Into::into),
            name: k.name,
            expires_in_days: k.expires_in_days,
            browser: k.browser.unwrap_or(false),
        }
    }
}

/// How long the old key keeps working next to the new one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// Days the old key keeps working: 0 to 7 (default 7).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 7)]
    pub overlap_days: Option<i64>,
}

/// The workspace's keys: ingest write keys, personal and service tokens (admin). Never a
/// secret.
#[utoipa::path(get, path = "/admin/v1/api-keys", operation_id = "listApiKeys", tag = "api-keys",
    responses(
        (status = 200, description = "The keys", body = Vec<ApiKey>),
        (status = 403, description = "Only admins see keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list_keys(Call(s, p): Call) -> Answer<Vec<ApiKey>> {
    s.answer_each(s.admin().keys(&p)).await
}

/// Creates an ingest write key or a service token (admin). The secret is in this response
/// only.
#[utoipa::path(post, path = "/admin/v1/api-keys", operation_id = "createApiKey", tag = "api-keys",
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key and its secret, shown once", body = CreatedApiKey),
        (status = 403, description = "Only admins create keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create_key(Call(s, p): Call, Json(body): Json<NewApiKey>) -> Created<CreatedApiKey> {
    s.answer_created(s.admin().create_key(&p, body.into()))
        .await
}

/// Issues a successor of a key (admin). The old key keeps working until the end of the
/// overlap (at most 7 days). The new secret is in this response only.
#[utoipa::path(post, path = "/admin/v1/api-keys/{id}/rotate", operation_id = "rotateApiKey", tag = "api-keys",
    params(dto::KeyId),
    request_body(content = Option<RotateApiKey>, description = "Optional; the overlap defaults to 7 days"),
    responses(
        (status = 201, description = "The new key and its secret, shown once", body = CreatedApiKey),
        (status = 403, description = "Only admins rotate keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "A revoked key cannot be rotated", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn rotate_key(
    Call(s, p): Call,
    Id(id): Id,
    OptionalJson(body): OptionalJson<RotateApiKey>,
) -> Created<CreatedApiKey> {
    s.answer_created(s.admin().rotate_key(&p, &id, body.overlap_days))
        .await
}

/// Revokes a key at once (admin).
#[utoipa::path(post, path = "/admin/v1/api-keys/{id}/revoke", operation_id = "revokeApiKey", tag = "api-keys",
    params(dto::KeyId),
    responses(
        (status = 200, description = "The revoked key", body = ApiKey),
        (status = 403, description = "Only admins revoke keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(Call(s, p): Call, Id(id): Id) -> Answer<ApiKey> {
    s.answer(s.admin().revoke_key(&p, &id)).await
}

/// Revokes a key at once (admin); the same as `POST /api-keys/{id}/revoke`.
#[utoipa::path(delete, path = "/admin/v1/api-keys/{id}", operation_id = "deleteApiKey", tag = "api-keys",
    params(dto::KeyId),
    responses(
        (status = 200, description = "The revoked key", body = ApiKey),
        (status = 403, description = "Only admins revoke keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delete_key(call: Call, id: Id) -> Answer<ApiKey> {
    revoke_key(call, id).await
}

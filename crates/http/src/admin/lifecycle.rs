//! Data lifecycle routes: retention (`/admin/v1/retention`), the workspace's encryption key
//! (`/admin/v1/encryption-key`, BYOK) and the workspace's closure
//! (`/admin/v1/workspace/close`), which is how its account data ends. Admins only; every
//! change is audited.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_core::admin::{Closure, RetentionView};
use utoipa::ToSchema;

use super::dto;
use super::extract::{Call, Json};
use crate::problem::Problem;

type Answer<T> = Result<Json<T>, Problem>;

/// How long each data class is kept. Expiry is stamped when data is written, so a change
/// applies to data written afterwards.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Retention {
    /// Event metadata and pseudonymous ids (1–365 days; default 180).
    #[schema(minimum = 1, maximum = 365)]
    pub event_retention_days: u16,
    /// IP addresses and user agents: fixed at 30 days.
    pub ip_user_agent_retention_days: i64,
    /// Delivery attempts and outcomes: fixed at 30 days.
    pub delivery_log_retention_days: i64,
    /// The audit log: fixed at 365 days.
    pub audit_log_retention_days: i64,
    /// Account data is kept this long after it ends: an API key's record after the key was
    /// revoked or expired; the workspace, its users and their roles after the workspace was
    /// closed (`POST /admin/v1/workspace/close`), which is how account data ends.
    /// Destinations and their secrets are deleted at the closure itself.
    pub account_data_days_after_end: i64,
}

impl From<RetentionView> for Retention {
    fn from(v: RetentionView) -> Self {
        Self {
            event_retention_days: v.event_retention_days,
            ip_user_agent_retention_days: v.ip_user_agent_retention_days,
            delivery_log_retention_days: v.delivery_log_retention_days,
            audit_log_retention_days: v.audit_log_retention_days,
            account_data_days_after_end: v.account_data_days_after_end,
        }
    }
}

/// The retention to set.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionUpdate {
    /// Days events are kept: 1 to 365.
    #[schema(minimum = 1, maximum = 365)]
    #[serde(deserialize_with = "whole_number")]
    pub event_retention_days: i64,
}

/// A required integer; JSON Schema counts `162.0` as one, so an integral float is accepted.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    super::dto::integer::<D, i64>(d)?.ok_or_else(|| D::Error::custom("null is not an integer"))
}

/// The key that wraps the workspace data key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptionKey {
    /// The ARN of your KMS key, in the AWS region of the workspace
    /// (`arn:aws:kms:eu-central-1:<account>:key/<id>` for `eu`), or `null` for the platform key.
    #[schema(
        example = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )]
    pub key_arn: Option<String>,
}

/// The confirmation of a closure.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseWorkspace {
    /// The id of the workspace to close (`GET /admin/v1/workspace` shows it), as a
    /// confirmation: anything else is refused with 422 naming `confirm`.
    #[schema(example = "ws_eu_0123456789abcdef0123456789abcdef")]
    pub confirm: String,
}

/// What the closure did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClosedWorkspace {
    /// `ws_<region>_<id>`.
    pub workspace_id: String,
    #[serde(serialize_with = "dto::rfc3339")]
    pub closed_at: OffsetDateTime,
    /// 90 days after `closed_at`: from then on the workspace, its users, its key records,
    /// its data-subject requests and its suppression list are gone (whitepaper §02: life of
    /// account plus 90 days).
    #[serde(serialize_with = "dto::rfc3339")]
    pub account_data_deleted_after: OffsetDateTime,
    /// API keys that still worked and were revoked: ingest keys, personal and service tokens.
    pub keys_revoked: usize,
    /// Destinations deleted, with their secrets.
    pub destinations_deleted: usize,
}

impl From<Closure> for ClosedWorkspace {
    fn from(c: Closure) -> Self {
        Self {
            workspace_id: c.workspace_id.to_string(),
            closed_at: c.closed_at,
            account_data_deleted_after: c.account_data_deleted_after,
            keys_revoked: c.keys_revoked,
            destinations_deleted: c.destinations_deleted,
        }
    }
}

/// The retention of each data class.
#[utoipa::path(get, path = "/admin/v1/retention", operation_id = "getRetention", tag = "workspace",
    responses((status = 200, description = "The retention settings", body = Retention)))]
pub async fn get_retention(Call(s, p): Call) -> Answer<Retention> {
    s.answer(s.admin().retention(&p)).await
}

/// Sets event retention (admin). Applies to events written from now on; audited.
#[utoipa::path(put, path = "/admin/v1/retention", operation_id = "putRetention", tag = "workspace",
    request_body = RetentionUpdate,
    responses(
        (status = 200, description = "The new retention settings", body = Retention),
        (status = 403, description = "Only admins change retention", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_retention(
    Call(s, p): Call,
    Json(body): Json<RetentionUpdate>,
) -> Answer<Retention> {
    // Out of u16 range is out of 1..=365 too: the control plane names the field.
    let days = u16::try_from(body.event_retention_days).unwrap_or(0);
    s.answer(s.admin().put_retention(&p, days)).await
}

/// Switches the workspace to your own KMS key (BYOK) or back to the platform key (admin).
/// The data key is re-wrapped, so stored data stays readable; if your key is later disabled,
/// ingest answers 503 `key-unavailable` and deliveries wait until it is enabled again.
#[utoipa::path(put, path = "/admin/v1/encryption-key", operation_id = "putEncryptionKey", tag = "workspace",
    request_body = EncryptionKey,
    responses(
        (status = 200, description = "The workspace, with its new encryption key", body = super::workspace::Workspace),
        (status = 403, description = "Only admins change the encryption key", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_encryption_key(
    Call(s, p): Call,
    Json(body): Json<EncryptionKey>,
) -> Answer<super::workspace::Workspace> {
    s.answer(s.admin().set_encryption_key(&p, body.key_arn.as_deref()))
        .await
}

/// Closes the workspace (admin): every API key stops working at once (ingest keys, personal
/// and service tokens, this one included: ingest and the admin API answer 401 from then on),
/// every destination is deleted with its secrets, and the workspace, its users, its key
/// records, its data-subject requests (with their receipts) and its suppression list are
/// deleted 90 days later; open data-subject requests are still completed meanwhile. The audit
/// log keeps its own 365 days, events their own retention. There is no undo. The body must name the workspace: `{"confirm": "<its id>"}`.
#[utoipa::path(post, path = "/admin/v1/workspace/close", operation_id = "closeWorkspace", tag = "workspace",
    request_body = CloseWorkspace,
    responses(
        (status = 200, description = "The workspace is closed", body = ClosedWorkspace),
        (status = 400, description = "The body is malformed or lacks `confirm`; `field` names it", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`confirm` is not the id of the token's workspace; `field` names it", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Only admins close the workspace", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The workspace is closed already", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn close_workspace(
    Call(s, p): Call,
    Json(body): Json<CloseWorkspace>,
) -> Answer<ClosedWorkspace> {
    s.answer(s.admin().close_workspace(&p, &body.confirm)).await
}

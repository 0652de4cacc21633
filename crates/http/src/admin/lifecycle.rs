//! Data lifecycle routes: retention (`/admin/v1/retention`) and the workspace's encryption
//! key (`/admin/v1/encryption-key`, BYOK). Admins change them; every change is audited.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tracklayer_core::admin::RetentionView;
use utoipa::ToSchema;

use super::dto;
use super::extract::{Caller, Json};
use super::AdminState;
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
    /// Account data (API keys, users, destinations) is kept this long after it ends.
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

/// The retention of each data class.
#[utoipa::path(get, path = "/admin/v1/retention", operation_id = "getRetention", tag = "workspace",
    responses((status = 200, description = "The retention settings", body = Retention)))]
pub async fn get_retention(State(s): State<AdminState>, Caller(p): Caller) -> Answer<Retention> {
    let v = s.admin().retention(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// Sets event retention (admin). Applies to events written from now on; audited.
#[utoipa::path(put, path = "/admin/v1/retention", operation_id = "putRetention", tag = "workspace",
    request_body = RetentionUpdate,
    responses(
        (status = 200, description = "The new retention settings", body = Retention),
        (status = 403, description = "Only admins change retention", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_retention(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<RetentionUpdate>,
) -> Answer<Retention> {
    // Out of u16 range is out of 1..=365 too: the control plane names the field.
    let days = u16::try_from(body.event_retention_days).unwrap_or(0);
    let v = s
        .admin()
        .put_retention(&p, days)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// Switches the workspace to your own KMS key (BYOK) or back to the platform key (admin).
/// The data key is re-wrapped, so stored data stays readable; if your key is later disabled,
/// ingest answers 503 `key_unavailable` and deliveries wait until it is enabled again.
#[utoipa::path(put, path = "/admin/v1/encryption-key", operation_id = "putEncryptionKey", tag = "workspace",
    request_body = EncryptionKey,
    responses(
        (status = 200, description = "The workspace, with its new encryption key", body = dto::Workspace),
        (status = 403, description = "Only admins change the encryption key", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_encryption_key(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<EncryptionKey>,
) -> Answer<dto::Workspace> {
    let v = s
        .admin()
        .set_encryption_key(&p, body.key_arn.as_deref())
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

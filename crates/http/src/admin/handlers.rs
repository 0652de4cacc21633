//! The admin API's handlers: authenticate, parse the request into domain types, call the
//! control plane, show the result. Roles are checked by the control plane (whitepaper §04);
//! the common error responses (400, 401, 404, 413, 415, 421, 422, 500, 503) are added to every
//! operation's documentation by [`super::openapi`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracklayer_core::audit::AuditFilter;
use utoipa::ToSchema;

use super::dto;
use super::extract::{no_content, Caller, Id, Json, OptionalJson, Params};
use super::AdminState;
use crate::problem::Problem;

type Answer<T> = Result<Json<T>, Problem>;

fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Workspace, consent policy, security

/// The workspace of the caller's token.
#[utoipa::path(get, path = "/admin/v1/workspace", operation_id = "getWorkspace", tag = "workspace",
    responses((status = 200, description = "The workspace", body = dto::Workspace)))]
pub async fn get_workspace(
    State(s): State<AdminState>,
    Caller(p): Caller,
) -> Answer<dto::Workspace> {
    let v = s.admin().workspace(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// Renames the workspace (editor), changes event retention (admin) or the consent policy
/// (editor). The region is immutable.
#[utoipa::path(patch, path = "/admin/v1/workspace", operation_id = "updateWorkspace", tag = "workspace",
    request_body = dto::WorkspacePatch,
    responses(
        (status = 200, description = "The updated workspace", body = dto::Workspace),
        (status = 403, description = "The role may not change this setting", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update_workspace(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(patch): Json<dto::WorkspacePatch>,
) -> Answer<dto::Workspace> {
    let v = s
        .admin()
        .update_workspace(&p, patch.into())
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// The workspace's consent policy.
#[utoipa::path(get, path = "/admin/v1/consent-policy", operation_id = "getConsentPolicy", tag = "workspace",
    responses((status = 200, description = "The consent policy", body = dto::ConsentPolicy)))]
pub async fn get_consent_policy(
    State(s): State<AdminState>,
    Caller(p): Caller,
) -> Answer<dto::ConsentPolicy> {
    let v = s.admin().consent_policy(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json((&v).into()))
}

/// Replaces the consent policy (editor).
#[utoipa::path(put, path = "/admin/v1/consent-policy", operation_id = "putConsentPolicy", tag = "workspace",
    request_body = dto::ConsentPolicy,
    responses(
        (status = 200, description = "The new consent policy", body = dto::ConsentPolicy),
        (status = 403, description = "Viewers cannot change it", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_consent_policy(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(policy): Json<dto::ConsentPolicy>,
) -> Answer<dto::ConsentPolicy> {
    let v = s
        .admin()
        .put_consent_policy(&p, policy.into())
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json((&v).into()))
}

/// The ingest IP blocklist and the "pause all egress" switch.
#[utoipa::path(get, path = "/admin/v1/security", operation_id = "getSecurity", tag = "workspace",
    responses((status = 200, description = "The security settings", body = dto::SecuritySettings)))]
pub async fn get_security(
    State(s): State<AdminState>,
    Caller(p): Caller,
) -> Answer<dto::SecuritySettings> {
    let v = s.admin().security(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// Replaces the security settings (admin): every field is required.
#[utoipa::path(put, path = "/admin/v1/security", operation_id = "putSecurity", tag = "workspace",
    request_body = dto::SecuritySettings,
    responses(
        (status = 200, description = "The new security settings", body = dto::SecuritySettings),
        (status = 403, description = "Only admins change security settings", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid (`field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_security(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<dto::SecurityPatch>,
) -> Answer<dto::SecuritySettings> {
    let settings = body.parse_whole().map_err(|e| s.fail(e))?;
    let v = s
        .admin()
        .put_security(&p, settings)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// Changes some security settings (admin): an absent field stays as it is.
#[utoipa::path(patch, path = "/admin/v1/security", operation_id = "patchSecurity", tag = "workspace",
    request_body = dto::SecurityPatch,
    responses(
        (status = 200, description = "The new security settings", body = dto::SecuritySettings),
        (status = 403, description = "Only admins change security settings", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (`field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn patch_security(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<dto::SecurityPatch>,
) -> Answer<dto::SecuritySettings> {
    let patch = body.parse().map_err(|e| s.fail(e))?;
    let v = s
        .admin()
        .patch_security(&p, patch)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

// ---------------------------------------------------------------------------------------------
// Users

/// The workspace's users.
#[utoipa::path(get, path = "/admin/v1/users", operation_id = "listUsers", tag = "users",
    responses((status = 200, description = "The users", body = Vec<dto::User>)))]
pub async fn list_users(State(s): State<AdminState>, Caller(p): Caller) -> Answer<Vec<dto::User>> {
    let v = s.admin().users(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json(v.into_iter().map(Into::into).collect()))
}

/// Invites a user with a role (admin).
#[utoipa::path(post, path = "/admin/v1/users", operation_id = "inviteUser", tag = "users",
    request_body = dto::InviteUser,
    responses(
        (status = 201, description = "The invited user", body = dto::User),
        (status = 403, description = "Only admins invite users", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "A user with this email exists", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn invite_user(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<dto::InviteUser>,
) -> Result<Response, Problem> {
    let u = s
        .admin()
        .invite_user(&p, &body.email, body.role.into())
        .await
        .map_err(|e| s.fail(e))?;
    Ok(created(dto::User::from(u)))
}

/// Changes a user's role (admin). The last admin cannot be demoted.
#[utoipa::path(patch, path = "/admin/v1/users/{id}", operation_id = "setUserRole", tag = "users",
    params(("id" = String, Path, description = "The user's id (`usr_…`)", pattern = "^usr_[a-z0-9]{1,64}$")),
    request_body = dto::SetRole,
    responses(
        (status = 200, description = "The user with the new role", body = dto::User),
        (status = 403, description = "Only admins change roles", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be demoted", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn set_user_role(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
    Json(body): Json<dto::SetRole>,
) -> Answer<dto::User> {
    let u = s
        .admin()
        .set_role(&p, &id, body.role.into())
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(u.into()))
}

/// Removes a user (admin); their personal tokens stop working at once. The last admin cannot
/// be removed.
#[utoipa::path(delete, path = "/admin/v1/users/{id}", operation_id = "removeUser", tag = "users",
    params(("id" = String, Path, description = "The user's id (`usr_…`)", pattern = "^usr_[a-z0-9]{1,64}$")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Only admins remove users", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The last admin cannot be removed", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn remove_user(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Result<Response, Problem> {
    s.admin()
        .remove_user(&p, &id)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// API keys

/// The workspace's keys: ingest write keys, personal and service tokens (admin). Never a
/// secret.
#[utoipa::path(get, path = "/admin/v1/api-keys", operation_id = "listApiKeys", tag = "api-keys",
    responses(
        (status = 200, description = "The keys", body = Vec<dto::ApiKey>),
        (status = 403, description = "Only admins see keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list_keys(State(s): State<AdminState>, Caller(p): Caller) -> Answer<Vec<dto::ApiKey>> {
    let v = s.admin().keys(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json(v.into_iter().map(Into::into).collect()))
}

/// Creates an ingest write key or a service token (admin). The secret is in this response
/// only.
#[utoipa::path(post, path = "/admin/v1/api-keys", operation_id = "createApiKey", tag = "api-keys",
    request_body = dto::NewApiKey,
    responses(
        (status = 201, description = "The key and its secret, shown once", body = dto::CreatedApiKey),
        (status = 403, description = "Only admins create keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create_key(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<dto::NewApiKey>,
) -> Result<Response, Problem> {
    let k = s
        .admin()
        .create_key(&p, body.into())
        .await
        .map_err(|e| s.fail(e))?;
    Ok(created(dto::CreatedApiKey::from(k)))
}

/// Issues a successor of a key (admin). The old key keeps working until the end of the
/// overlap (at most 7 days). The new secret is in this response only.
#[utoipa::path(post, path = "/admin/v1/api-keys/{id}/rotate", operation_id = "rotateApiKey", tag = "api-keys",
    params(("id" = String, Path, description = "The key's id", pattern = "^[a-z0-9]{16}$")),
    request_body(content = Option<dto::RotateApiKey>, description = "Optional; the overlap defaults to 7 days"),
    responses(
        (status = 201, description = "The new key and its secret, shown once", body = dto::CreatedApiKey),
        (status = 403, description = "Only admins rotate keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "A revoked key cannot be rotated", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn rotate_key(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
    OptionalJson(body): OptionalJson<dto::RotateApiKey>,
) -> Result<Response, Problem> {
    let k = s
        .admin()
        .rotate_key(&p, &id, body.overlap_days)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(created(dto::CreatedApiKey::from(k)))
}

/// Revokes a key at once (admin).
#[utoipa::path(post, path = "/admin/v1/api-keys/{id}/revoke", operation_id = "revokeApiKey", tag = "api-keys",
    params(("id" = String, Path, description = "The key's id", pattern = "^[a-z0-9]{16}$")),
    responses(
        (status = 200, description = "The revoked key", body = dto::ApiKey),
        (status = 403, description = "Only admins revoke keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Answer<dto::ApiKey> {
    let k = s.admin().revoke_key(&p, &id).await.map_err(|e| s.fail(e))?;
    Ok(Json(k.into()))
}

/// Revokes a key at once (admin); the same as `POST /api-keys/{id}/revoke`.
#[utoipa::path(delete, path = "/admin/v1/api-keys/{id}", operation_id = "deleteApiKey", tag = "api-keys",
    params(("id" = String, Path, description = "The key's id", pattern = "^[a-z0-9]{16}$")),
    responses(
        (status = 200, description = "The revoked key", body = dto::ApiKey),
        (status = 403, description = "Only admins revoke keys", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delete_key(s: State<AdminState>, p: Caller, id: Id) -> Answer<dto::ApiKey> {
    revoke_key(s, p, id).await
}

// ---------------------------------------------------------------------------------------------
// Destinations

/// The workspace's destinations. Secrets show as fingerprints only.
#[utoipa::path(get, path = "/admin/v1/destinations", operation_id = "listDestinations", tag = "destinations",
    responses((status = 200, description = "The destinations", body = Vec<dto::Destination>)))]
pub async fn list_destinations(
    State(s): State<AdminState>,
    Caller(p): Caller,
) -> Answer<Vec<dto::Destination>> {
    let v = s.admin().destinations(&p).await.map_err(|e| s.fail(e))?;
    Ok(Json(v.into_iter().map(Into::into).collect()))
}

/// Creates a destination (admin: it holds secrets). Secrets are encrypted with the workspace
/// key and never returned.
#[utoipa::path(post, path = "/admin/v1/destinations", operation_id = "createDestination", tag = "destinations",
    request_body = dto::NewDestination,
    responses(
        (status = 201, description = "The destination", body = dto::Destination),
        (status = 403, description = "Only admins create destinations", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn create_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Json(body): Json<dto::NewDestination>,
) -> Result<Response, Problem> {
    let spec = body.parse().map_err(|e| s.fail(e))?;
    let d = s
        .admin()
        .create_destination(&p, spec)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(created(dto::Destination::from(d)))
}

/// One destination.
#[utoipa::path(get, path = "/admin/v1/destinations/{id}", operation_id = "getDestination", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    responses((status = 200, description = "The destination", body = dto::Destination)))]
pub async fn get_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Answer<dto::Destination> {
    let d = s
        .admin()
        .destination(&p, &id)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(d.into()))
}

/// Changes a destination: name, event filter, pause state and the settings that do not route
/// (editor); where it sends (`endpoint`, Meta `pixel_id`, GA4 `measurement_id`, TikTok
/// `pixel_code`, webhook `url`), its `consent_purposes` and its `secrets` (admin).
#[utoipa::path(patch, path = "/admin/v1/destinations/{id}", operation_id = "updateDestination", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    request_body = dto::DestinationPatch,
    responses(
        (status = 200, description = "The updated destination", body = dto::Destination),
        (status = 403, description = "Viewers change nothing; only admins change secrets, where a destination sends and its consent purposes (`field` names the first such field)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
    Json(body): Json<dto::DestinationPatch>,
) -> Answer<dto::Destination> {
    let patch = body.parse().map_err(|e| s.fail(e))?;
    let d = s
        .admin()
        .update_destination(&p, &id, patch)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(d.into()))
}

/// Deletes a destination (admin).
#[utoipa::path(delete, path = "/admin/v1/destinations/{id}", operation_id = "deleteDestination", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only admins delete destinations", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn delete_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Result<Response, Problem> {
    s.admin()
        .delete_destination(&p, &id)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(no_content())
}

/// Pauses a destination (editor): its messages wait in the queue.
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/pause", operation_id = "pauseDestination", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    responses(
        (status = 200, description = "The paused destination", body = dto::Destination),
        (status = 403, description = "Viewers cannot pause", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn pause_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Answer<dto::Destination> {
    let d = s
        .admin()
        .set_paused(&p, &id, true)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(d.into()))
}

/// Resumes a paused destination (editor).
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/resume", operation_id = "resumeDestination", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    responses(
        (status = 200, description = "The resumed destination", body = dto::Destination),
        (status = 403, description = "Viewers cannot resume", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn resume_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Answer<dto::Destination> {
    let d = s
        .admin()
        .set_paused(&p, &id, false)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(d.into()))
}

/// Sends one synthetic test event (not stored) through the destination's connector and
/// reports its answer (editor). Refused while the workspace's egress is paused. Audited as
/// `destination.test` with the outcome.
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/test", operation_id = "testDestination", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    responses(
        (status = 200, description = "What the destination answered", body = dto::TestResult),
        (status = 403, description = "Viewers cannot send test events", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Egress is paused for the workspace", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn test_destination(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Answer<dto::TestResult> {
    let r = s.tester().send(&p, &id).await.map_err(|e| s.fail(e))?;
    let outcome = serde_json::json!(r.outcome);
    s.admin()
        .record_destination_test(&p, &id, outcome, r.http_status)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(r))
}

/// Moves the destination's dead letters (all, or those that died in a time range) back to
/// its queue (editor).
#[utoipa::path(post, path = "/admin/v1/destinations/{id}/replay", operation_id = "replayDeadLetters", tag = "destinations",
    params(("id" = String, Path, description = "The destination's id (`dst_…`)", pattern = "^dst_[a-z0-9]{1,40}$")),
    request_body(content = Option<dto::Replay>, description = "Optional time range (RFC 3339)"),
    responses(
        (status = 200, description = "How many messages went back", body = dto::Replayed),
        (status = 403, description = "Viewers cannot replay", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
    OptionalJson(body): OptionalJson<dto::Replay>,
) -> Answer<dto::Replayed> {
    let moved = s
        .admin()
        .replay(&p, &id, body.since, body.until)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(dto::Replayed {
        destination_id: id,
        replayed_messages: moved,
    }))
}

// ---------------------------------------------------------------------------------------------
// Events, audit log

/// One event's trace: received, consent decisions with reasons, per-destination delivery
/// status. No raw identifier.
#[utoipa::path(get, path = "/admin/v1/events/{id}", operation_id = "getEventTrace", tag = "events",
    params(("id" = String, Path, description = "The event's id (`evt_…`)", pattern = "^evt_[0-9a-f]{32}$")),
    responses((status = 200, description = "The trace", body = dto::EventTrace)))]
pub async fn event_trace(
    State(s): State<AdminState>,
    Caller(p): Caller,
    Id(id): Id,
) -> Answer<dto::EventTrace> {
    let t = s
        .admin()
        .event_trace(&p, &id)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(t.into()))
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<dto::AuditEntry>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<u64>,
}

/// The audit log, oldest first (admin).
#[utoipa::path(get, path = "/admin/v1/audit-log", operation_id = "listAuditLog", tag = "audit-log",
    params(
        ("actor" = Option<String>, Query, description = "Only entries of this actor (`user:usr_…`, `svc:<key id>`)", max_length = 200),
        ("action" = Option<String>, Query, description = "Only entries of this action (`destination.update`, ...)", max_length = 200),
        ("since" = Option<String>, Query, description = "Only entries at or after this time (RFC 3339)", format = DateTime),
        ("until" = Option<String>, Query, description = "Only entries at or before this time (RFC 3339)", format = DateTime),
        ("after" = Option<u64>, Query, description = "Only entries with a greater sequence number (paging)", minimum = 0, maximum = 9007199254740991_u64),
        ("limit" = Option<u32>, Query, description = "Entries per page: 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Entries", body = AuditPage),
        (status = 403, description = "Only admins read the audit log", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn audit_log(
    State(s): State<AdminState>,
    Caller(p): Caller,
    q: Params,
) -> Answer<AuditPage> {
    let filter = AuditFilter {
        actor: q.text("actor", 200)?,
        action: q.text("action", 200)?,
        since: q.time("since")?,
        until: q.time("until")?,
        after: q.integer("after", 0, MAX_SAFE_INTEGER)?,
        limit: q.integer("limit", 1, 1000)?.unwrap_or(100) as usize,
    };
    let limit = filter.limit;
    let entries = s
        .admin()
        .audit_log(&p, filter)
        .await
        .map_err(|e| s.fail(e))?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// The largest integer JSON numbers carry exactly.
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// Walks the keyed audit chain from its checkpoint to its head and reports the first seq that
/// does not hold, and why (admin).
#[utoipa::path(get, path = "/admin/v1/audit-log/verify", operation_id = "verifyAuditLog", tag = "audit-log",
    responses(
        (status = 200, description = "Whether the chain holds", body = dto::AuditVerification),
        (status = 403, description = "Only admins verify the audit log", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn verify_audit_log(
    State(s): State<AdminState>,
    Caller(p): Caller,
) -> Answer<dto::AuditVerification> {
    let v = s
        .admin()
        .verify_audit_log(&p)
        .await
        .map_err(|e| s.fail(e))?;
    Ok(Json(v.into()))
}

/// This document.
#[utoipa::path(get, path = "/admin/v1/openapi.json", operation_id = "getOpenApi", tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the admin API", content_type = "application/json", body = Object)))]
pub async fn openapi(State(s): State<AdminState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        s.openapi_json(),
    )
        .into_response()
}

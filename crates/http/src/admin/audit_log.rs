//! The audit log: wire types and handlers.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracklayer_core as tl;
use tracklayer_core::audit::AuditFilter;
use utoipa::ToSchema;

use super::dto::{self, rfc3339};
use super::extract::{Answer, Call, Json, Params};
use super::trace::as_object;

/// One entry of the keyed (HMAC-SHA256) audit chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub workspace_id: String,
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub time: OffsetDateTime,
    /// `user:usr_…`, `svc:<key id>` or `cli:operator`.
    pub actor: String,
    /// `api_key.create`, `destination.update`, `user.invite`, ...
    pub action: String,
    /// The object acted on (`dst_…`, a key id, `workspace`).
    pub target: String,
    /// What changed; never a secret.
    #[schema(value_type = Object)]
    pub summary: Value,
    pub prev_hash: String,
    /// HMAC-SHA256(workspace audit key, canonical entry ‖ prev_hash), hex (SHA-256 for
    /// entries written before the keyed chain).
    pub hash: String,
}

impl From<tl::audit::AuditEntry> for AuditEntry {
    fn from(e: tl::audit::AuditEntry) -> Self {
        Self {
            workspace_id: e.workspace_id.to_string(),
            seq: e.seq,
            time: e.time,
            actor: e.actor,
            action: e.action,
            target: e.target,
            summary: as_object(e.summary),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// The result of walking the chain from its retention checkpoint to its head.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditVerification {
    pub valid: bool,
    pub entries_checked: u64,
    /// The first seq whose entry is missing, or whose link, HMAC or stored index does not
    /// hold (e.g. `7` with reason `hmac mismatch`).
    pub first_invalid_seq: Option<u64>,
    /// The same as `first_invalid_seq` (the earlier name, kept for compatibility).
    #[schema(deprecated)]
    pub first_broken_seq: Option<u64>,
    pub reason: Option<String>,
    /// The chain is keyed and anchored; false only for a chain written before the keyed
    /// chain, until its next entry migrates it.
    pub keyed: bool,
}

impl From<tl::audit::Verification> for AuditVerification {
    fn from(v: tl::audit::Verification) -> Self {
        Self {
            valid: v.valid,
            entries_checked: v.entries_checked,
            first_invalid_seq: v.first_invalid_seq,
            first_broken_seq: v.first_invalid_seq,
            reason: v.reason,
            keyed: v.keyed,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
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
pub async fn audit_log(Call(s, p): Call, q: Params) -> Answer<AuditPage> {
    let filter = AuditFilter {
        actor: q.text("actor", 200)?,
        action: q.text("action", 200)?,
        since: q.time("since")?,
        until: q.time("until")?,
        after: q.integer("after", 0, MAX_SAFE_INTEGER)?,
        limit: q.integer("limit", 1, 1000)?.unwrap_or(100) as usize,
    };
    let limit = filter.limit;
    let entries = s.run(s.admin().audit_log(&p, filter)).await?;
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
        (status = 200, description = "Whether the chain holds", body = AuditVerification),
        (status = 403, description = "Only admins verify the audit log", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn verify_audit_log(Call(s, p): Call) -> Answer<AuditVerification> {
    s.answer(s.admin().verify_audit_log(&p)).await
}

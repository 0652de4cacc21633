//! Workspace settings and the consent policy: wire types and handlers.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::dto::{self, integer, object_only, rfc3339, Region};
use super::extract::{Answer, Call, Json};

/// What happens to a purpose when an event carries no consent signal for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    /// Denied unless the visitor said yes.
    OptIn,
    /// Granted unless the visitor said no (or sent GPC, for advertising).
    OptOut,
}

/// A workspace's consent rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentPolicy {
    /// Default for visitors in the EU/EEA/UK/CH.
    pub eu_default: Stance,
    /// Default for everyone else.
    pub us_default: Stance,
    /// Treat Global Privacy Control as an opt-out of advertising.
    pub honor_gpc: bool,
    /// What wins when an event carries GPC and an explicit grant of advertising; default
    /// `overrides_grants` (GPC wins).
    #[serde(default)]
    pub gpc: GpcPrecedence,
    /// Server traffic's IP and user agent count as the visitor's (default false: only a
    /// browser's request, with `Origin`, stands in for an event's missing `context.ip`).
    #[serde(default)]
    pub request_ip_as_client_ip: bool,
}

/// What wins when an event carries GPC and an explicit grant of advertising.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpcPrecedence {
    /// GPC opts out; no grant in the event undoes it.
    #[default]
    OverridesGrants,
    /// The visitor's explicit grant (categoryPreferences, Consent Mode) wins over GPC.
    ExplicitGrantWins,
}

dto::mirror! { Stance = tl::consent::Stance { OptIn, OptOut } }
dto::mirror! {
    GpcPrecedence = tl::consent::GpcPrecedence { OverridesGrants, ExplicitGrantWins }
}

/// The same fields both ways.
macro_rules! consent_policy {
    ($from:ty => $to:ty) => {
        impl From<$from> for $to {
            fn from(p: $from) -> Self {
                Self {
                    eu_default: p.eu_default.into(),
                    us_default: p.us_default.into(),
                    honor_gpc: p.honor_gpc,
                    request_ip_as_client_ip: p.request_ip_as_client_ip,
                    gpc: p.gpc.into(),
                }
            }
        }
    };
}
consent_policy!(ConsentPolicy => tl::consent::ConsentPolicy);
consent_policy!(tl::consent::ConsentPolicy => ConsentPolicy);

/// A workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Workspace {
    /// `ws_<region>_<id>`.
    pub id: String,
    pub name: String,
    /// Where the workspace's data lives; immutable.
    pub region: Region,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// How long event metadata and pseudonymous ids are kept (1–365 days).
    #[schema(minimum = 1, maximum = 365)]
    pub event_retention_days: u16,
    /// How long IP addresses and user agents are kept: fixed at 30 days.
    pub ip_user_agent_retention_days: i64,
    pub consent_policy: ConsentPolicy,
    /// `platform`, or the ARN of the customer's own key (BYOK).
    pub encryption_key: String,
}

impl From<tl::admin::WorkspaceView> for Workspace {
    fn from(v: tl::admin::WorkspaceView) -> Self {
        Self {
            id: v.id.to_string(),
            name: v.name,
            region: v.region.into(),
            created_at: v.created_at,
            event_retention_days: v.event_retention_days,
            ip_user_agent_retention_days: v.ip_user_agent_retention_days,
            consent_policy: v.consent_policy.into(),
            encryption_key: v.encryption_key,
        }
    }
}

/// The workspace settings to change; absent fields stay as they are. Renaming and the
/// consent policy need `editor`; retention needs `admin`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 365)]
    pub event_retention_days: Option<u16>,
    #[serde(default, deserialize_with = "object_only")]
    pub consent_policy: Option<ConsentPolicy>,
}

impl From<WorkspacePatch> for tl::admin::WorkspacePatch {
    fn from(p: WorkspacePatch) -> Self {
        Self {
            name: p.name,
            event_retention_days: p.event_retention_days,
            consent_policy: p.consent_policy.map(Into::into),
        }
    }
}

/// The workspace of the caller's token.
#[utoipa::path(get, path = "/admin/v1/workspace", operation_id = "getWorkspace", tag = "workspace",
    responses((status = 200, description = "The workspace", body = Workspace)))]
pub async fn get_workspace(Call(s, p): Call) -> Answer<Workspace> {
    s.answer(s.admin().workspace(&p)).await
}

/// Renames the workspace (editor), changes event retention (admin) or the consent policy
/// (editor). The region is immutable.
#[utoipa::path(patch, path = "/admin/v1/workspace", operation_id = "updateWorkspace", tag = "workspace",
    request_body = WorkspacePatch,
    responses(
        (status = 200, description = "The updated workspace", body = Workspace),
        (status = 403, description = "The role may not change this setting", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn update_workspace(
    Call(s, p): Call,
    Json(patch): Json<WorkspacePatch>,
) -> Answer<Workspace> {
    s.answer(s.admin().update_workspace(&p, patch.into())).await
}

/// The workspace's consent policy.
#[utoipa::path(get, path = "/admin/v1/consent-policy", operation_id = "getConsentPolicy", tag = "workspace",
    responses((status = 200, description = "The consent policy", body = ConsentPolicy)))]
pub async fn get_consent_policy(Call(s, p): Call) -> Answer<ConsentPolicy> {
    s.answer(s.admin().consent_policy(&p)).await
}

/// Replaces the consent policy (editor).
#[utoipa::path(put, path = "/admin/v1/consent-policy", operation_id = "putConsentPolicy", tag = "workspace",
    request_body = ConsentPolicy,
    responses(
        (status = 200, description = "The new consent policy", body = ConsentPolicy),
        (status = 403, description = "Viewers cannot change it", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_consent_policy(
    Call(s, p): Call,
    Json(policy): Json<ConsentPolicy>,
) -> Answer<ConsentPolicy> {
    s.answer(s.admin().put_consent_policy(&p, policy.into()))
        .await
}

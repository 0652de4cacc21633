//! Security settings: the IP blocklist and the pause of all egress (`/admin/v1/security`), the
//! web origins allowed to send tracking requests from a browser (CORS, `/admin/v1/cors`) and
//! bot filtering (`/admin/v1/bot-filter`). As in the control plane, they are one group: each
//! change is audited as a security-settings change. Wire types and handlers.

use serde::{Deserialize, Serialize};
use tracklayer_core as tl;
use tracklayer_core::admin::AdminError;
use utoipa::ToSchema;

use super::dto::{self, present};
use super::extract::{Answer, Call, Json};

/// Incident containment: an ingest blocklist and the "pause all egress" switch. Also the
/// schema of a `PUT` body (read as a [`SecurityPatch`] that must name every field), hence
/// `deny_unknown_fields` (`additionalProperties: false`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Client addresses (an IP or a CIDR block) whose tracking requests are refused.
    #[schema(max_items = 1000, example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub ip_blocklist: Vec<String>,
    /// Stop every delivery of the workspace; queued messages wait, nothing is lost.
    pub egress_paused: bool,
}

/// The body of `PUT /admin/v1/security` (every field required) and of `PATCH` (an absent
/// field stays as it is).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPatch {
    /// Client addresses (an IP or a CIDR block) whose tracking requests are refused.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, max_items = 1000, example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub ip_blocklist: Option<Vec<String>>,
    /// Stop every delivery of the workspace; queued messages wait, nothing is lost.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub egress_paused: Option<bool>,
}

impl SecurityPatch {
    pub const MAX_BLOCKLIST: usize = 1000;

    /// The change this patch asks for.
    pub fn parse(self) -> Result<tl::admin::SecurityPatch, AdminError> {
        let ip_blocklist = match self.ip_blocklist {
            None => None,
            Some(list) if list.len() > Self::MAX_BLOCKLIST => {
                return Err(AdminError::invalid("ip_blocklist", "at most 1000 entries"));
            }
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        tl::workspace::Cidr::parse(s).map_err(|e| {
                            AdminError::invalid(format!("ip_blocklist[{i}]"), e.to_string())
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(tl::admin::SecurityPatch {
            ip_blocklist,
            egress_paused: self.egress_paused,
            allowed_origins: None,
            bot_filter: None,
        })
    }

    /// The whole settings a `PUT` gives: a missing field is refused, naming it, so a
    /// replacement never silently wipes what it left out.
    pub fn parse_whole(self) -> Result<tl::workspace::SecuritySettings, AdminError> {
        let patch = self.parse()?;
        let missing = |field: &str| {
            AdminError::invalid(
                field,
                "required: PUT replaces every field; use PATCH to change some",
            )
        };
        Ok(tl::workspace::SecuritySettings {
            ip_blocklist: patch.ip_blocklist.ok_or_else(|| missing("ip_blocklist"))?,
            egress_paused: patch
                .egress_paused
                .ok_or_else(|| missing("egress_paused"))?,
            // Not part of this resource: `/admin/v1/cors` holds them.
            allowed_origins: Vec::new(),
            // Not part of this resource either: `/admin/v1/bot-filter` holds it.
            bot_filter: true,
        })
    }
}

impl From<tl::workspace::SecuritySettings> for SecuritySettings {
    fn from(s: tl::workspace::SecuritySettings) -> Self {
        Self {
            ip_blocklist: s.ip_blocklist.into_iter().map(String::from).collect(),
            egress_paused: s.egress_paused,
        }
    }
}

/// The ingest IP blocklist and the "pause all egress" switch.
#[utoipa::path(get, path = "/admin/v1/security", operation_id = "getSecurity", tag = "workspace",
    responses((status = 200, description = "The security settings", body = SecuritySettings)))]
pub async fn get_security(Call(s, p): Call) -> Answer<SecuritySettings> {
    s.answer(s.admin().security(&p)).await
}

/// Replaces the security settings (admin): every field is required.
#[utoipa::path(put, path = "/admin/v1/security", operation_id = "putSecurity", tag = "workspace",
    request_body = SecuritySettings,
    responses(
        (status = 200, description = "The new security settings", body = SecuritySettings),
        (status = 403, description = "Only admins change security settings", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid (`field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_security(
    Call(s, p): Call,
    Json(body): Json<SecurityPatch>,
) -> Answer<SecuritySettings> {
    let settings = body.parse_whole().map_err(|e| s.fail(e))?;
    s.answer(s.admin().put_security(&p, settings)).await
}

/// Changes some security settings (admin): an absent field stays as it is.
#[utoipa::path(patch, path = "/admin/v1/security", operation_id = "patchSecurity", tag = "workspace",
    request_body = SecurityPatch,
    responses(
        (status = 200, description = "The new security settings", body = SecuritySettings),
        (status = 403, description = "Only admins change security settings", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (`field` names it)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn patch_security(
    Call(s, p): Call,
    Json(body): Json<SecurityPatch>,
) -> Answer<SecuritySettings> {
    let patch = body.parse().map_err(|e| s.fail(e))?;
    s.answer(s.admin().patch_security(&p, patch)).await
}

/// The origins whose pages may call the tracking API from a browser. A request with an
/// `Origin` not listed is refused (403 `origin-not-allowed`); requests without one (servers)
/// are not affected. Also the body of a `PUT`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// `scheme://host[:port]` without a path, `https://*.shop.example` for every subdomain
    /// of `shop.example` (not `shop.example` itself), or `*` for every origin.
    #[schema(max_items = 100, example = json!(["https://shop.example", "https://*.shop.example"]))]
    pub allowed_origins: Vec<String>,
}

impl CorsSettings {
    pub const MAX_ORIGINS: usize = 100;

    pub(crate) fn parse(self) -> Result<Vec<tl::cors::AllowedOrigin>, AdminError> {
        if self.allowed_origins.len() > Self::MAX_ORIGINS {
            return Err(AdminError::invalid(
                "allowed_origins",
                "at most 100 entries",
            ));
        }
        self.allowed_origins
            .iter()
            .enumerate()
            .map(|(i, s)| {
                tl::cors::AllowedOrigin::parse(s).map_err(|e| {
                    AdminError::invalid(format!("allowed_origins[{i}]"), e.to_string())
                })
            })
            .collect()
    }
}

impl From<Vec<tl::cors::AllowedOrigin>> for CorsSettings {
    fn from(list: Vec<tl::cors::AllowedOrigin>) -> Self {
        Self {
            allowed_origins: list.into_iter().map(String::from).collect(),
        }
    }
}

/// The origins allowed to send tracking requests from a browser.
#[utoipa::path(get, path = "/admin/v1/cors", operation_id = "getCors", tag = "workspace",
    responses((status = 200, description = "The allowed origins", body = CorsSettings)))]
pub async fn get_cors(Call(s, p): Call) -> Answer<CorsSettings> {
    s.answer(s.admin().cors(&p)).await
}

/// Replaces the allowed origins (admin; audited as a security-settings change).
#[utoipa::path(put, path = "/admin/v1/cors", operation_id = "putCors", tag = "workspace",
    request_body = CorsSettings,
    responses(
        (status = 200, description = "The new allowed origins", body = CorsSettings),
        (status = 403, description = "Only admins change the allowed origins", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "An entry is not an origin (`field` names it: `allowed_origins[i]`)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_cors(Call(s, p): Call, Json(body): Json<CorsSettings>) -> Answer<CorsSettings> {
    let origins = body.parse().map_err(|e| s.fail(e))?;
    s.answer(s.admin().put_cors(&p, origins)).await
}

/// Whether ingest drops (and counts, as `bots`) the events whose user agent is a well-known
/// crawler's, monitor's or headless browser's (the `isbot` list). On by default. Also the
/// body of a `PUT`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotFilter {
    pub enabled: bool,
}

impl From<bool> for BotFilter {
    fn from(enabled: bool) -> Self {
        Self { enabled }
    }
}

/// Whether the events of crawlers are dropped.
#[utoipa::path(get, path = "/admin/v1/bot-filter", operation_id = "getBotFilter", tag = "workspace",
    responses((status = 200, description = "The bot filter setting", body = BotFilter)))]
pub async fn get_bot_filter(Call(s, p): Call) -> Answer<BotFilter> {
    s.answer(s.admin().bot_filter(&p)).await
}

/// Turns bot filtering on or off (admin; audited as a security-settings change).
#[utoipa::path(put, path = "/admin/v1/bot-filter", operation_id = "putBotFilter", tag = "workspace",
    request_body = BotFilter,
    responses(
        (status = 200, description = "The new setting", body = BotFilter),
        (status = 403, description = "Only admins change bot filtering", body = dto::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "The body is not `{\"enabled\": true|false}` (`field` names the member)", body = dto::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn put_bot_filter(Call(s, p): Call, Json(body): Json<BotFilter>) -> Answer<BotFilter> {
    s.answer(s.admin().put_bot_filter(&p, body.enabled)).await
}

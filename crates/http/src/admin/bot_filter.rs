//! Bot filtering (`/admin/v1/bot-filter`): whether the events of well-known crawlers' user
//! agents are dropped before routing. Wire types and handlers.

use axum::routing::{get, MethodRouter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto;
use super::extract::{Answer, Call, Json};
use super::AdminState;

/// `GET` and `PUT /admin/v1/bot-filter`.
pub fn routes() -> MethodRouter<AdminState> {
    get(get_bot_filter).put(put_bot_filter)
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

//! The web origins allowed to send tracking requests from a browser (CORS): wire types and
//! handlers of `/admin/v1/cors`.

use serde::{Deserialize, Serialize};
use tracklayer_core as tl;
use tracklayer_core::admin::AdminError;
use utoipa::ToSchema;

use super::dto;
use super::extract::{Answer, Call, Json};

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

//! SCIM 2.0 at `/scim/v2` (RFC 7644): identity providers provision a workspace's users and
//! their role groups with a SCIM token, the only kind of key accepted here (and accepted
//! nowhere else). Every answer is `application/scim+json`; every failure the SCIM error
//! `urn:ietf:params:scim:api:messages:2.0:Error` with `status` and, for bad input, `scimType`.
//! The use cases are `tracklayer_core::scim`, which call the admin use cases.

mod discovery;
mod resources;
mod search;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};
use tracklayer_core::admin::Principal;
use tracklayer_core::scim::{Scim, ScimError, ERROR_SCHEMA};

use crate::admin::error::problem;
use crate::admin::extract::{bearer, peer_ip};
use crate::admin::{AdminState, MAX_BODY_BYTES};
use crate::problem::Problem;

/// Where the SCIM API is served.
pub const BASE_PATH: &str = "/scim/v2";
/// The media type of every SCIM answer.
pub const SCIM_JSON: &str = "application/scim+json";

/// The SCIM routes, under `/scim/v2`.
pub fn scim_router(state: AdminState) -> Router {
    use resources::ResourceType::{Group, User};
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(discovery::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/scim/v2/Schemas", get(discovery::schemas))
        .route("/scim/v2/Schemas/{id}", get(discovery::schema))
        .route("/scim/v2/.search", post(search::search_all))
        .merge(resource_routes(User))
        .merge(resource_routes(Group))
        .route("/scim/v2", axum::routing::any(not_found))
        .route("/scim/v2/{*rest}", axum::routing::any(not_found))
        .with_state(state)
}

/// The routes of one resource type: its collection, its `.search` and each resource.
fn resource_routes(t: resources::ResourceType) -> Router<AdminState> {
    let path = t.path();
    Router::new()
        .route(path, get(resources::list).post(resources::create))
        .route(&format!("{path}/.search"), post(resources::search))
        .route(
            &format!("{path}/{{id}}"),
            get(resources::get)
                .put(resources::replace)
                .patch(resources::patch)
                .delete(resources::delete),
        )
        .layer(Extension(t))
}

/// Any other path under `/scim/v2`: a SCIM 404, not the admin API's problem+json.
async fn not_found() -> ScimAnswer {
    ScimAnswer::error(
        StatusCode::NOT_FOUND,
        None,
        "no such SCIM endpoint; see /scim/v2/ResourceTypes",
    )
}

/// An authenticated SCIM call: the identity provider's principal, from its SCIM token.
#[derive(Debug)]
pub struct ScimCall(AdminState, Principal);

impl ScimCall {
    pub fn scim(&self) -> Scim<'_> {
        Scim {
            admin: self.0.admin(),
            p: &self.1,
            base_url: BASE_PATH,
        }
    }
}

impl FromRequestParts<AdminState> for ScimCall {
    type Rejection = ScimAnswer;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ScimAnswer> {
        let token = bearer(parts, "the workspace's SCIM token").map_err(ScimAnswer::Problem)?;
        state
            .admin()
            .authenticate_scim(token, peer_ip(parts))
            .await
            .map(|p| ScimCall(state.clone(), p))
            .map_err(|e| ScimAnswer::Problem(problem(e, state.config())))
    }
}

/// A SCIM JSON request body (`application/scim+json` or `application/json`).
#[derive(Debug)]
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimAnswer;

    async fn from_request(req: Request, _: &S) -> Result<Self, ScimAnswer> {
        let (parts, body) = req.into_parts();
        let bytes = crate::body::read_body(&parts.headers, body, MAX_BODY_BYTES)
            .await
            .map_err(ScimAnswer::Problem)?;
        serde_json::from_slice(&bytes).map(ScimBody).map_err(|e| {
            ScimAnswer::error(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                &format!("the body is not JSON: {e}"),
            )
        })
    }
}

/// What a SCIM route answers: a resource, nothing, or a SCIM error.
#[derive(Debug)]
pub enum ScimAnswer {
    Resource(StatusCode, Value),
    NoContent,
    Problem(Problem),
    Error(StatusCode, Value),
}

impl ScimAnswer {
    fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Self {
        Self::Error(status, error_body(status, scim_type, detail))
    }

    /// The answer to a use case's result.
    pub fn of(
        state_config: &crate::admin::AdminConfig,
        status: StatusCode,
        r: Result<Value, ScimError>,
    ) -> Self {
        match r {
            Ok(v) => Self::Resource(status, v),
            Err(ScimError::Invalid { scim_type, detail }) => {
                Self::error(StatusCode::BAD_REQUEST, Some(scim_type), &detail)
            }
            Err(ScimError::Admin(e)) => Self::Problem(problem(e, state_config)),
        }
    }
}

fn scim_json(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    r
}

impl IntoResponse for ScimAnswer {
    fn into_response(self) -> Response {
        match self {
            Self::Resource(status, v) => scim_json((status, axum::Json(v)).into_response()),
            Self::NoContent => StatusCode::NO_CONTENT.into_response(),
            Self::Error(status, v) => scim_json((status, axum::Json(v)).into_response()),
            // The one error mapping (problem+json) decides status and headers (WWW-Authenticate,
            // Retry-After); the body is said again as a SCIM error.
            Self::Problem(p) => {
                let d = p.details().clone();
                let scim_type = match d.status {
                    409 if d.detail.contains("exists") => Some("uniqueness"),
                    409 => Some("mutability"),
                    400 | 422 => Some("invalidValue"),
                    _ => None,
                };
                let status =
                    StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                // 422 (a rule broken) is a SCIM 400 invalidValue.
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                let mut r = p.into_response();
                let body = error_body(status, scim_type, &d.detail);
                let mut fresh = scim_json((status, axum::Json(body)).into_response());
                for (name, value) in r.headers_mut().drain() {
                    if let Some(name) = name {
                        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                            fresh.headers_mut().insert(name, value);
                        }
                    }
                }
                fresh
            }
        }
    }
}

/// A SCIM error body (RFC 7644 §3.12).
fn error_body(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Value {
    let mut body =
        json!({"schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail});
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    body
}

//! CORS on the tracking API: preflights answered, allowed origins echoed, others refused.
//! The decision table is [`tracklayer_core::cors`]; this is its HTTP side.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracklayer_core::cors::{self, Cors};

use crate::problem::Problem;

/// What a browser may send: `POST` events, `GET` settings; the headers the SDKs set.
pub const ALLOW_METHODS: &str = "POST, GET, OPTIONS";
pub const ALLOW_HEADERS: &str =
    "authorization, content-type, content-encoding, anonymousid, x-retry-count";
/// How long a browser may reuse a preflight answer: 2 hours, Chromium's cap.
pub const MAX_AGE_SECONDS: u32 = 7_200;

/// The request's `Origin`, if it has a readable one (an unreadable one is kept as `"null"`
/// so that it is refused rather than taken for server traffic).
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("null"))
}

/// `OPTIONS` on a tracking route that takes `POST`.
pub async fn preflight(headers: HeaderMap) -> Response {
    answer_preflight(&headers, "POST, OPTIONS")
}

/// `OPTIONS` on a settings document (`GET`).
pub async fn preflight_get(headers: HeaderMap) -> Response {
    answer_preflight(&headers, "GET, OPTIONS")
}

/// A preflight's answer; without `Origin`, an `OPTIONS` answer listing the route's methods.
fn answer_preflight(headers: &HeaderMap, route_methods: &'static str) -> Response {
    match cors::preflight(origin(headers)) {
        Cors::ServerToServer => (
            StatusCode::NO_CONTENT,
            [(header::ALLOW, HeaderValue::from_static(route_methods))],
        )
            .into_response(),
        Cors::Allow(origin) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECONDS.into());
            allow(response, &Cors::Allow(origin))
        }
        Cors::Refuse(origin) => refused(&origin).into_response(),
    }
}

/// Adds `Access-Control-Allow-Origin` (and `Vary: Origin`) for an allowed origin; leaves any
/// other response as it is.
pub fn allow(mut response: Response, decision: &Cors) -> Response {
    if let Cors::Allow(origin) = decision {
        if let Ok(value) = HeaderValue::from_str(origin) {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
    }
    response
}

/// The answer to a request from an origin the workspace does not allow.
pub fn refused(origin: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "origin-not-allowed",
        "Forbidden",
        format!(
            "requests from origin {origin} are not allowed by this workspace; an admin adds it \
             to allowed_origins (PUT /admin/v1/cors)"
        ),
    )
    .with("origin", origin)
}

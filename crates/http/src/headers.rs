//! Headers every response carries: `X-Content-Type-Options: nosniff` (a JSON or problem body
//! is never run as a script or a page), and on the admin API `Cache-Control: no-store`: its
//! answers show secrets (a new or rotated key's secret) and workspace settings, which no
//! browser or proxy cache should keep.

use axum::http::{header, HeaderValue};
use axum::response::Response;

/// For the tracking API and every other route.
pub async fn every_response(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// For the admin API: [`every_response`] and never stored.
pub async fn admin_response(response: Response) -> Response {
    let mut response = every_response(response).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

//! RFC 9457 problem details: a stable `type`, a human `detail`, the field at fault.
//! 5xx bodies never carry internals: the cause goes to the log under the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";
const TYPE_BASE: &str = "https://tracklayer.io/problems/";

/// A problem response. Boxed, so that `Result<_, Problem>` stays one pointer wide.
#[derive(Debug, Clone)]
pub struct Problem(Box<Details>);

#[derive(Debug, Clone, Serialize)]
pub struct Details {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Details {
            kind: format!("{TYPE_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            extensions: Map::new(),
            headers: Vec::new(),
        }))
    }

    pub fn status(&self) -> u16 {
        self.0.status
    }

    pub fn details(&self) -> &Details {
        &self.0
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.0.headers.push((name, v));
        }
        self
    }

    pub fn bad_request(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, "Bad Request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"tracklayer\"")
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
            detail,
        )
    }

    /// A 503: the caller should retry after `retry_after` seconds.
    pub fn unavailable(slug: &str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            slug,
            "Service Unavailable",
            detail,
        )
        .header(header::RETRY_AFTER, &retry_after.to_string())
    }

    /// A 429 for too many failed authentications (tracking and admin API alike).
    pub fn too_many_failures(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs().max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failed-authentications",
            "Too Many Requests",
            format!(
                "too many failed authentications from this address or for this key; retry in {secs} s"
            ),
        )
        .header(header::RETRY_AFTER, &secs.to_string())
    }

    /// A 500 whose body says nothing of the cause.
    pub fn internal(request_id: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            format!("an internal error occurred; quote request id {request_id} to support"),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let details = *self.0;
        let status =
            StatusCode::from_u16(details.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&details).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (k, v) in details.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// Every router's answer to a method its route does not take: problem+json, with the `Allow`
/// header axum computed for the route.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method Not Allowed",
        "this route does not support this method; see the Allow header",
    )
}

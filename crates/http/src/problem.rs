//! RFC 9457 problem details: a stable `type`, a human `detail`, the field at fault.
//! 5xx bodies never carry internals: the cause goes to the log under the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use tracklayer_core::error::{Action, KeyError, StoreError};
use tracklayer_core::workspace::Region;

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

    /// A 403: the workspace's security settings block the caller's address.
    pub fn blocked() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "blocked",
            "Forbidden",
            "requests from this address are blocked by the workspace's security settings",
        )
    }

    /// A 421: `whose` (the token's workspace, the workspace's data) lives in `region`, served
    /// at `endpoint`.
    pub fn wrong_region(whose: &str, region: Region, endpoint: &str) -> Self {
        Self::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong-region",
            "Misdirected Request",
            format!("{whose} lives in region {region}; send its requests to {endpoint}"),
        )
        .with("region", region.as_str())
        .with("endpoint", endpoint)
    }

    /// A 422: the request is well formed but breaks a rule; names the field at fault.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Unprocessable Content",
            detail,
        );
        if field.is_empty() {
            p
        } else {
            p.field(field)
        }
    }

    /// A 404 naming what was not found.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("{what} not found"),
        )
    }

    /// A 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// A 503 for a disabled or revoked workspace key (BYOK): `key-unavailable`.
    pub fn key_unavailable(detail: impl Into<String>) -> Self {
        Self::unavailable("key-unavailable", detail, 30)
    }

    /// What a storage error means to the caller ([`Self::from_failure`]).
    pub fn from_store_error(error: &StoreError, context: &'static str) -> Self {
        let retryable = error.action() == Action::Retry;
        Self::from_failure(retryable, Service::Storage, error, context)
    }

    /// What a key-service error means to the caller ([`Self::from_failure`]).
    pub fn from_key_error(error: &KeyError, context: &'static str) -> Self {
        let retryable = error.action() == Action::Retry;
        Self::from_failure(retryable, Service::KeyService, error, context)
    }

    /// What a storage or key-service error means to the caller: a 503 to retry when the
    /// error says so, else an opaque 500 whose cause goes to the log under a request id.
    fn from_failure(
        retryable: bool,
        service: Service,
        error: &dyn std::error::Error,
        context: &'static str,
    ) -> Self {
        if retryable {
            tracing::warn!(error = %error, "{} unavailable", service.name());
            return Self::unavailable(
                "unavailable",
                format!(
                    "{} is temporarily unavailable; retry",
                    service.detail_name()
                ),
                1,
            );
        }
        Self::internal_logged(error, context)
    }

    /// An opaque 500: the cause goes to the log under a new request id, never to the caller.
    pub fn internal_logged(error: &dyn std::error::Error, context: &'static str) -> Self {
        let id = request_id();
        tracing::error!(request_id = %id, error = %error, "{context}");
        Self::internal(&id)
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

/// What failed, in [`Problem::from_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Storage,
    KeyService,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Storage => "storage",
            Self::KeyService => "key service",
        }
    }

    fn detail_name(self) -> &'static str {
        match self {
            Self::Storage => "storage",
            Self::KeyService => "the key service",
        }
    }
}

/// A request id for the log line of an opaque 500: milliseconds since the epoch and a counter.
pub fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("req_{t:x}{n:06x}")
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

//! One mapping from the control plane's errors to problem+json.

use axum::http::{header, StatusCode};
use tracklayer_core::admin::AdminError;
use tracklayer_core::error::Action;
use tracklayer_core::keys::Role;

use super::AdminConfig;
use crate::problem::Problem;

/// The `WWW-Authenticate` challenge of the admin API.
pub const CHALLENGE: &str = "Bearer realm=\"tracklayer-admin\"";

pub fn unauthorized(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        detail,
    )
    .header(header::WWW_AUTHENTICATE, CHALLENGE)
}

/// A request that is well formed but breaks a rule: names the field at fault.
pub fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    let p = Problem::new(
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

/// A malformed parameter (wrong type or format): names it.
pub fn bad_parameter(field: &str, detail: impl Into<String>) -> Problem {
    Problem::bad_request("invalid-parameter", detail).field(field)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Editor => "editor",
        Role::Admin => "admin",
    }
}

/// An opaque 500: the cause goes to the log under the request id, never to the caller.
pub fn internal(e: &dyn std::error::Error) -> Problem {
    let id = request_id();
    tracing::error!(request_id = %id, error = %e, "admin request failed");
    Problem::internal(&id)
}

pub fn problem(e: AdminError, config: &AdminConfig) -> Problem {
    match e {
        AdminError::Unauthorized(refusal) => unauthorized(refusal.detail()),
        AdminError::WrongRegion(region) => {
            let endpoint = config.endpoint(region);
            Problem::new(
                StatusCode::MISDIRECTED_REQUEST,
                "wrong-region",
                "Misdirected Request",
                format!(
                    "this token's workspace lives in region {region}; send its requests to {endpoint}"
                ),
            )
            .with("region", region.as_str())
            .with("endpoint", endpoint)
        }
        AdminError::Blocked => Problem::new(
            StatusCode::FORBIDDEN,
            "blocked",
            "Forbidden",
            "requests from this address are blocked by the workspace's security settings",
        ),
        AdminError::Throttled { retry_after } => Problem::too_many_failures(retry_after),
        AdminError::Forbidden { role, action } => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            format!("the {} role cannot {action}", role_name(role)),
        )
        .with("role", role_name(role)),
        AdminError::ForbiddenField {
            role,
            field,
            action,
        } => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            format!("the {} role cannot {action}: {field}", role_name(role)),
        )
        .with("role", role_name(role))
        .field(&field),
        AdminError::NotFound(what) => not_found(what),
        AdminError::Invalid { field, detail } => invalid(&field, detail),
        AdminError::Conflict(detail) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
        AdminError::KeyUnavailable(ref err) => {
            tracing::warn!(error = %err, "workspace key unavailable");
            Problem::unavailable(
                "key_unavailable",
                "the workspace's encryption key is unavailable (disabled or revoked)",
                30,
            )
        }
        AdminError::Store(ref err) if err.action() == Action::Retry => {
            tracing::warn!(error = %err, "storage unavailable");
            Problem::unavailable(
                "unavailable",
                "storage is temporarily unavailable; retry",
                1,
            )
        }
        AdminError::Key(ref err) if err.action() == Action::Retry => {
            tracing::warn!(error = %err, "key service unavailable");
            Problem::unavailable(
                "unavailable",
                "the key service is temporarily unavailable; retry",
                1,
            )
        }
        other => internal(&other),
    }
}

pub fn not_found(what: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not Found",
        format!("{what} not found"),
    )
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("req_{t:x}{n:06x}")
}

//! One mapping from the control plane's errors to problem+json.

use axum::http::{header, StatusCode};
use tracklayer_core::admin::AdminError;
use tracklayer_core::error as tl_error;
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

pub fn problem(e: AdminError, config: &AdminConfig) -> Problem {
    match e {
        AdminError::Unauthorized(refusal) => unauthorized(refusal.detail()),
        AdminError::WrongRegion(region) => Problem::wrong_region(
            "this token's workspace",
            region,
            config.endpoints.of(region),
        ),
        AdminError::Blocked => Problem::blocked(),
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
        AdminError::SignInRefused => stated(
            StatusCode::UNAUTHORIZED,
            "sign-in-refused",
            "Sign-in refused",
            &e,
        ),
        AdminError::SessionEnded => stated(
            StatusCode::UNAUTHORIZED,
            "session-ended",
            "Session ended",
            &e,
        ),
        AdminError::LinkInvalid => stated(StatusCode::GONE, "link-invalid", "Link not valid", &e),
        AdminError::SsoRequired { ref sign_in_path } => {
            sso_required("sso-required", "Single sign-on required", &e, sign_in_path)
        }
        AdminError::SsoSessionRequired { ref sign_in_path } => sso_required(
            "sso-session-required",
            "Single sign-on session required",
            &e,
            sign_in_path,
        ),
        AdminError::NotFound(what) => Problem::not_found(what),
        AdminError::Invalid { field, detail } => Problem::invalid(&field, detail),
        AdminError::Conflict(detail) => Problem::conflict(detail),
        AdminError::KeyUnavailable(ref err) => {
            tracing::warn!(error = %err, "workspace key unavailable");
            Problem::key_unavailable(
                "the workspace's encryption key is unavailable (disabled or revoked)",
            )
        }
        AdminError::Store(ref err) => Problem::from_store_error(err, "admin request failed"),
        AdminError::Mail(tl_error::MailError::Transient(ref err)) => {
            tracing::warn!(error = %err, "mail service unavailable");
            Problem::unavailable(
                "unavailable",
                "the mail service is temporarily unavailable; retry",
                1,
            )
        }
        AdminError::Key(ref err) => Problem::from_key_error(err, "admin request failed"),
        other => internal(&other),
    }
}

/// A problem whose detail is the error's own message, for errors that say nothing internal.
fn stated(status: StatusCode, slug: &str, title: &'static str, e: &AdminError) -> Problem {
    Problem::new(status, slug, title, e.to_string())
}

/// 403 for a workspace that demands single sign-on: `sign_in_url` says where to start it.
fn sso_required(slug: &str, title: &'static str, e: &AdminError, sign_in_path: &str) -> Problem {
    stated(StatusCode::FORBIDDEN, slug, title, e).with("sign_in_url", sign_in_path)
}

/// An opaque 500: the cause goes to the log under the request id, never to the caller.
pub fn internal(e: &dyn std::error::Error) -> Problem {
    Problem::internal_logged(e, "admin request failed")
}

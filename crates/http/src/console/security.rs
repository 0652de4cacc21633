//! The headers of every console response: a strict Content-Security-Policy (no inline script,
//! style or handler can run; forms post only to this origin; no framing), `nosniff`,
//! `no-referrer` (a page's URL, which may hold an invitation or reset token, never leaves in a
//! `Referer`), and `no-store` on pages (they show workspace data, sometimes a secret).

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Adds the console's security headers; a response that set its own caching keeps it.
pub async fn headers(response: Response) -> Response {
    with_headers(response)
}

/// [`headers`], for a console page served outside the console's router (the SSO refusal
/// pages of the public SAML endpoints).
pub fn with_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

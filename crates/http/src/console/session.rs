//! The signed-in person of a console request: the `__Host-tl_session` cookie turned into the
//! core's console session. A page request without a live session is sent to `/sign-in`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tracklayer_core::admin::Principal;
use tracklayer_core::keys::Role;

use super::ConsoleState;

/// The session cookie: `__Host-` (this origin only, `Path=/`, `Secure`), `HttpOnly`,
/// `SameSite=Lax`.
pub const COOKIE: &str = "__Host-tl_session";

/// Seven days, the absolute session lifetime.
const MAX_AGE_SECS: u32 = 7 * 24 * 3600;

/// The `Set-Cookie` value that starts a session.
pub fn start_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE_SECS}"
    ))
    .unwrap_or(HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that ends it in the browser.
pub fn end_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-tl_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    )
}

/// The session cookie's value, if the request has one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Who is signed in.
#[derive(Debug, Clone)]
pub struct Me {
    pub principal: Principal,
    pub email: String,
    pub user_id: String,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    /// The session cookie's value.
    pub token: String,
}

impl Me {
    pub fn role(&self) -> Role {
        self.principal.role
    }

    /// Whether `presented` is this session's CSRF token (in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        Sha256::digest(presented.as_bytes()) == Sha256::digest(self.csrf.as_bytes())
    }
}

/// Where a request without a live session goes: `/sign-in` (htmx: `HX-Redirect`).
pub fn to_sign_in(headers: &HeaderMap) -> Response {
    if headers.contains_key("hx-request") {
        return (
            StatusCode::UNAUTHORIZED,
            [("hx-redirect", HeaderValue::from_static("/sign-in"))],
        )
            .into_response();
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, end_cookie());
    response
}

impl FromRequestParts<ConsoleState> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Response> {
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(to_sign_in(&parts.headers));
        };
        state
            .session(&token)
            .await
            .ok_or_else(|| to_sign_in(&parts.headers))
    }
}

impl ConsoleState {
    /// The live session of a cookie's token. AUTH-PENDING: a personal access token until the
    /// sessions of f-auth are merged.
    pub(super) async fn session(&self, token: &str) -> Option<Me> {
        let principal = self.admin().authenticate(token).await.ok()?;
        use sha2::{Digest, Sha256};
        Some(Me {
            email: principal.actor.clone(),
            user_id: principal.actor.trim_start_matches("user:").to_owned(),
            csrf: hex::encode(Sha256::digest(token.as_bytes())),
            token: token.to_owned(),
            principal,
        })
    }
}

//! The signed-in person of a console request: the `__Host-tl_session` cookie turned into the
//! core's console session. A page request without a live session is sent to `/sign-in`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tracklayer_core::admin::{AdminError, Principal};
use tracklayer_core::keys::Role;
use tracklayer_core::sessions::{CsrfToken, SessionToken};

use super::view::Failure;
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

/// The value of the request's cookie `name`, if it has one.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// The session cookie's value, if the request has one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Who is signed in.
#[derive(Clone)]
pub struct Me {
    pub principal: Principal,
    pub email: String,
    pub user_id: String,
    pub session_id: String,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    csrf_token: CsrfToken,
    /// The session cookie's value.
    pub token: String,
    /// The session began through single sign-on.
    pub sso: bool,
}

// The email address and the CSRF token stay out of logs.
tracklayer_core::debug_fields!(Me: principal, user_id, session_id);

impl Me {
    pub fn role(&self) -> Role {
        self.principal.role
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf_token.matches(presented)
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
            .await?
            .ok_or_else(|| to_sign_in(&parts.headers))
    }
}

impl ConsoleState {
    /// The live session of a cookie's token: `None` when it ended (sign in again); a store
    /// that cannot answer is an error page, not a sign-out.
    pub(super) async fn session(&self, token: &str) -> Result<Option<Me>, Response> {
        let Ok(token) = SessionToken::parse(token) else {
            return Ok(None);
        };
        match self.admin().console_session(&token).await {
            Ok(c) => Ok(Some(Me {
                email: c.user.email.as_str().to_owned(),
                user_id: c.user.id.as_str().to_owned(),
                session_id: c.session_id.as_str().to_owned(),
                csrf: c.csrf.as_str().to_owned(),
                csrf_token: c.csrf,
                token: token.as_str().to_owned(),
                principal: c.principal,
                sso: c.sso,
            })),
            Err(AdminError::SessionEnded) => Ok(None),
            Err(e) => Err(Failure::of(self, e).page()),
        }
    }
}

//! The public SAML endpoints of a workspace: SP metadata, the SP-initiated start and the
//! assertion consumer service (HTTP-POST binding).
//!
//! The ACS answers a refusal with `403 saml-refused` and the stable `reason` code only; the
//! audit log has the same code. A browser (its `Accept` names HTML) is shown that as a console
//! page saying what to do, with the reason to quote; other clients get the problem+json.
//! An accepted response begins the user's console session.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use tracklayer_core::admin::{SamlAcs, SamlLoginError};
use tracklayer_core::saml::REQUEST_TTL;
use tracklayer_core::workspace::WorkspaceId;

use super::error::problem;
use super::AdminState;
use crate::console::cookie;
use crate::console::pages::auth::{signed_in, Source};
use crate::console::pages::sso_sign_in::{refused_page, wants_page};
use crate::problem::Problem;

/// The browser-binding cookie of an SP-initiated login. `SameSite=None` because the IdP's
/// POST to the ACS is a cross-site request; `__Host-` keeps it to our origin.
pub const REQUEST_COOKIE: &str = "__Host-tl_saml";

fn workspace(id: &str) -> Result<WorkspaceId, Problem> {
    WorkspaceId::parse(id).map_err(|_| Problem::not_found("workspace"))
}

fn failure(e: SamlLoginError) -> Problem {
    match e {
        SamlLoginError::NotConfigured => Problem::not_found("SAML single sign-on"),
        SamlLoginError::Refused(reason) => Problem::new(
            StatusCode::FORBIDDEN,
            "saml-refused",
            "Forbidden",
            "the SAML sign-in was refused; ask your administrator, quoting the reason",
        )
        .with("reason", reason),
        SamlLoginError::Store(ref err) => Problem::from_store_error(err, "SAML sign-in failed"),
    }
}

/// `GET /sso/saml/{workspace_id}/metadata`: the SP metadata (entity id, ACS URL).
pub async fn metadata(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let ws = workspace(&id)?;
    let base = s.config().endpoints.of(ws.region()).to_owned();
    let xml = s.run(s.admin().saml_metadata(&ws, &base)).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        xml,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go after sign-in: a relative path of ours.
    relay_state: Option<String>,
}

/// A refusal as the client reads it: a page for a browser, problem+json otherwise.
fn refusal(s: &AdminState, headers: &HeaderMap, id: &str, p: Problem) -> Response {
    if wants_page(headers) {
        let ws = WorkspaceId::parse(id).ok();
        refused_page(&p, ws.as_ref(), &s.config().endpoints)
    } else {
        p.into_response()
    }
}

/// `GET /sso/saml/{workspace_id}/login`: redirects to the IdP with an AuthnRequest whose id is
/// bound to this browser by a short-lived cookie.
pub async fn login(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    match start(&s, &id, query).await {
        Ok(r) => r,
        Err(p) => refusal(&s, &headers, &id, p),
    }
}

async fn start(s: &AdminState, id: &str, query: LoginQuery) -> Result<Response, Problem> {
    let ws = workspace(id)?;
    let base = s.config().endpoints.of(ws.region()).to_owned();
    let start = s
        .admin()
        .saml_start(&ws, &base, query.relay_state.as_deref())
        .await
        .map_err(|e| match e {
            SamlLoginError::Refused("saml_relay_state") => Problem::invalid(
                "relay_state",
                "must be a relative path of this site, like /destinations",
            ),
            other => failure(other),
        })?;
    let cookie = format!(
        "{REQUEST_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=None; Max-Age={}",
        start.browser_secret,
        REQUEST_TTL.whole_seconds()
    );
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&start.redirect_url)
            .map_err(|_| Problem::not_found("SAML single sign-on"))?,
    );
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| Problem::not_found("SAML single sign-on"))?,
    );
    Ok(response)
}

/// The HTTP-POST binding's form.
#[derive(Debug, Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `POST /sso/saml/{workspace_id}/acs`: verifies the response, begins the user's console
/// session (its cookie) and sends the browser on to the RelayState path or the console's start
/// page. The request cookie is cleared whatever the outcome (its request id is single-use).
pub async fn acs(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Source(client): Source,
    headers: HeaderMap,
    form: Result<Form<AcsForm>, FormRejection>,
) -> Response {
    let clear = format!("{REQUEST_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0");
    let answer = async {
        let ws = workspace(&id)?;
        let Form(form) = form.map_err(|_| {
            Problem::bad_request(
                "saml-form",
                "send SAMLResponse as an HTML form (HTTP-POST binding)",
            )
        })?;
        let base = s.config().endpoints.of(ws.region()).to_owned();
        let acs = SamlAcs {
            saml_response: &form.saml_response,
            relay_state: form.relay_state.as_deref(),
            browser_secret: cookie(&headers, REQUEST_COOKIE),
        };
        let login = s.admin().saml_acs(&ws, &base, acs).await.map_err(failure)?;
        let session = s
            .admin()
            .saml_session(&login, client)
            .await
            .map_err(|e| problem(e, s.config()))?;
        let next = login.relay_state.as_deref().unwrap_or("/");
        Ok::<_, Problem>(signed_in(session, next))
    }
    .await;
    let mut response = answer.unwrap_or_else(|p| refusal(&s, &headers, &id, p));
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

//! Single sign-on before sign-in: the page that finds where a work address signs in through
//! SAML (`/sign-in/sso`), and the page a browser is shown when the SSO start or the ACS refuses
//! it (API clients keep the problem+json answer).
//!
//! The workspaces of an address are those whose connection manages its domain. Managed domains
//! are what an admin typed, not proven by DNS, so another workspace may claim the same domain:
//! the page never sends the browser on by itself. It lists each workspace with the host of its
//! identity provider, and the person chooses knowing where they go.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::workspace::WorkspaceId;

use crate::console::csrf::PublicForm;
use crate::console::view::{html, page, Failure, Frame};
use crate::console::ConsoleState;
use crate::problem::Problem;
use crate::regions::RegionEndpoints;

/// Where an SP-initiated sign-in of `ws` starts: under its region's public URL, which is the
/// origin of its ACS (the request cookie must be set where the IdP posts back).
pub(crate) fn login_url(endpoints: &RegionEndpoints, ws: &WorkspaceId) -> String {
    format!("{}/sso/saml/{ws}/login", endpoints.of(ws.region()))
}

/// A workspace offered on the page.
#[derive(Debug)]
struct Choice {
    name: String,
    idp_host: String,
    login_url: String,
}

#[derive(Template)]
#[template(path = "console/sso_sign_in.html")]
struct SsoSignIn {
    frame: Frame,
    email: String,
    error: Option<String>,
    choices: Vec<Choice>,
}

impl SsoSignIn {
    fn new(email: String, error: Option<String>, choices: Vec<Choice>) -> Self {
        Self {
            frame: Frame::new("Sign in with SSO"),
            email,
            error,
            choices,
        }
    }
}

/// `?email=`: the address to fill in.
#[derive(Deserialize)]
pub struct Prefill {
    email: Option<String>,
}

impl std::fmt::Debug for Prefill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefill")
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `GET /sign-in/sso`: asks for the work email (`?email=` fills it in).
pub async fn page_of_sso(Query(q): Query<Prefill>) -> Response {
    page(&SsoSignIn::new(q.email.unwrap_or_default(), None, vec![]))
}

/// `POST /sign-in/sso`: the workspaces that sign the address in through SSO, to choose from;
/// none is said on the form, as is an address that is not one (422, the field named).
pub async fn find_sso(State(s): State<ConsoleState>, PublicForm(form): PublicForm) -> Response {
    let email = form.get("email").trim().to_owned();
    match s.admin().sso_choices(&email).await {
        Ok(found) if found.is_empty() => {
            let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
            let error = format!(
                "No workspace signs in addresses at {domain} through single sign-on. \
                 Sign in with your password, or ask your administrator for your \
                 workspace's SSO sign-in address."
            );
            html(
                StatusCode::NOT_FOUND,
                &SsoSignIn::new(email, Some(error), vec![]),
            )
        }
        Ok(found) => {
            let endpoints = &s.endpoints();
            let choices = found
                .into_iter()
                .map(|c| Choice {
                    login_url: login_url(endpoints, &c.workspace_id),
                    name: c.name,
                    idp_host: c.idp_host,
                })
                .collect();
            page(&SsoSignIn::new(email, None, choices))
        }
        Err(e) => {
            let f = Failure::of(&s, e);
            html(f.status, &SsoSignIn::new(email, Some(f.detail), vec![]))
        }
    }
}

/// Whether the request is a browser's page load (its `Accept` names HTML), which gets a page
/// rather than problem+json.
pub(crate) fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

#[derive(Template)]
#[template(path = "console/sso_refused.html")]
struct SsoRefused<'a> {
    frame: Frame,
    explanation: &'a str,
    reason: Option<&'a str>,
    retry_url: Option<String>,
}

/// What a person can do about a refusal of reason `reason` (the codes of
/// `tracklayer_saml::SamlError::reason` and `tracklayer_core::admin::saml_login`).
fn explanation(reason: &str) -> &'static str {
    match reason {
        "saml_expired" | "saml_not_yet_valid" | "saml_in_response_to" | "saml_replayed" => {
            "The sign-in took too long, or this sign-in page was opened again from the \
             browser's history. Sign in with SSO again."
        }
        "saml_unsolicited" => {
            "This workspace accepts single sign-on started from TrackLayer only, not from \
             the identity provider's app list. Sign in with SSO again from here."
        }
        "saml_no_account" => {
            "Your identity provider signed you in, but this workspace gives your account no \
             role. Ask an admin of the workspace to invite you or to set a default role."
        }
        "saml_user_inactive" => {
            "Your account in this workspace was deactivated by your organization's identity \
             provider. Ask your administrator to reactivate it."
        }
        "saml_domain_not_managed" | "saml_name_id_not_email" => {
            "The identity provider signed in an address this workspace does not manage. Ask \
             your administrator to check the managed domains and the NameID format."
        }
        _ => {
            "The identity provider's answer does not match this workspace's single sign-on \
             settings. Ask your administrator to compare them with the identity provider's, \
             quoting the reason below."
        }
    }
}

/// The page of a refused SSO start or ACS post (`problem`) in workspace `ws` (if the path
/// named one), with the same status.
pub(crate) fn refused_page(
    problem: &Problem,
    ws: Option<&WorkspaceId>,
    endpoints: &RegionEndpoints,
) -> Response {
    let d = problem.details();
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
    let reason = d.extensions.get("reason").and_then(|r| r.as_str());
    let (title, explanation) = match (status, reason) {
        (StatusCode::NOT_FOUND, _) => (
            "Single sign-on is not set up",
            "This workspace has no single sign-on connection (or no longer has one). Sign in \
             with your password, or ask your administrator for the right address.",
        ),
        (_, Some(r)) => ("Single sign-on refused", explanation(r)),
        _ => ("Single sign-on failed", d.detail.as_str()),
    };
    let retry_url = ws
        .filter(|_| status != StatusCode::NOT_FOUND)
        .map(|ws| login_url(endpoints, ws));
    // Served by the public SAML routes, outside the console's router: its headers too.
    crate::console::security::with_headers(html(
        status,
        &SsoRefused {
            frame: Frame::new(title),
            explanation,
            reason,
            retry_url,
        },
    ))
}

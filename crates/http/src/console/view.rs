//! What every page template shares: the document frame, the signed-in shell (navigation by
//! role), rendering, refusals, and how a use case's error reads on a page.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use tracklayer_core::keys::Role;

use super::assets::{assets, Assets};
use super::session::Me;
use super::ConsoleState;
use crate::problem::Problem;

/// The document frame of a page: its title and the asset paths.
#[derive(Debug)]
pub struct Frame {
    pub title: String,
    pub assets: &'static Assets,
}

impl Frame {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            assets: assets(),
        }
    }
}

/// One link of the navigation.
#[derive(Debug)]
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    /// The heading shown above this item, when it starts a group.
    pub group: Option<&'static str>,
    pub current: bool,
}

/// The console's sections: (section, path, label, group heading, least role that may open it).
const SECTIONS: [(&str, &str, &str, Option<&str>, Role); 14] = [
    ("overview", "/", "Overview", None, Role::Viewer),
    ("events", "/events", "Event debugger", None, Role::Viewer),
    (
        "destinations",
        "/destinations",
        "Destinations",
        None,
        Role::Viewer,
    ),
    ("keys", "/keys", "API keys", Some("Access"), Role::Admin),
    ("users", "/users", "Users & roles", None, Role::Viewer),
    (
        "consent",
        "/settings/consent",
        "Consent policy",
        Some("Settings"),
        Role::Viewer,
    ),
    (
        "retention",
        "/settings/retention",
        "Retention",
        None,
        Role::Viewer,
    ),
    (
        "security",
        "/settings/security",
        "Security",
        None,
        Role::Viewer,
    ),
    (
        "cors",
        "/settings/cors",
        "Browser origins",
        None,
        Role::Viewer,
    ),
    ("sso", "/settings/sso", "Single sign-on", None, Role::Admin),
    (
        "dsr",
        "/privacy-requests",
        "Privacy requests",
        Some("Privacy & audit"),
        Role::Admin,
    ),
    ("audit", "/audit-log", "Audit log", None, Role::Admin),
    (
        "workspace",
        "/settings/workspace",
        "Workspace",
        Some("Account"),
        Role::Viewer,
    ),
    ("account", "/account", "Your account", None, Role::Viewer),
];

/// The frame of a signed-in page: navigation for the role, who is signed in, the CSRF token
/// for its forms, and a message from the last action.
pub struct Shell {
    pub frame: Frame,
    pub nav: Vec<NavItem>,
    pub email: String,
    pub role: &'static str,
    pub can_edit: bool,
    pub can_admin: bool,
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

tracklayer_core::debug_fields!(Shell: role, can_edit, can_admin);

impl Shell {
    pub fn new(me: &Me, section: &str, title: impl Into<String>) -> Self {
        let role = me.role();
        let mut group_shown = None;
        let nav = SECTIONS
            .iter()
            .filter(|s| role >= s.4)
            .map(|&(name, href, label, group, _)| {
                let group = group.filter(|g| group_shown != Some(*g));
                if group.is_some() {
                    group_shown = group;
                }
                NavItem {
                    href,
                    label,
                    group,
                    current: name == section,
                }
            })
            .collect();
        Self {
            frame: Frame::new(title),
            nav,
            email: me.email.clone(),
            role: role_name(role),
            can_edit: role >= Role::Editor,
            can_admin: role >= Role::Admin,
            csrf: me.csrf.clone(),
            notice: None,
            error: None,
        }
    }

    /// With the message of a finished action (`?done=` of the redirect).
    pub fn done(mut self, code: Option<&str>) -> Self {
        self.notice = code.and_then(notice);
        self
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Editor => "editor",
        Role::Admin => "admin",
    }
}

/// The messages a finished action shows after its redirect, by code (a page never echoes
/// text from its URL).
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "destination-created" => "Destination created.",
        "destination-saved" => "Destination saved.",
        "destination-paused" => "Destination paused: its events wait in its queue.",
        "destination-resumed" => "Destination resumed.",
        "destination-deleted" => "Destination deleted.",
        "replayed" => "Dead letters moved back to the queue.",
        "key-revoked" => "Key revoked: it is refused from the next request.",
        "user-invited" => "Invitation sent.",
        "role-changed" => "Role changed; that user's sessions ended.",
        "user-removed" => "User removed.",
        "session-revoked" => "Session ended.",
        "consent-saved" => "Consent policy saved.",
        "retention-saved" => "Retention saved.",
        "security-saved" => "Security settings saved.",
        "egress-paused" => "All egress paused: nothing leaves until you resume.",
        "egress-resumed" => "Egress resumed.",
        "workspace-saved" => "Workspace saved.",
        "dsr-submitted" => "Request submitted.",
        "password-changed" => "Password changed.",
        "sso-saved" => "Single sign-on saved.",
        "cors-saved" => "Browser origins saved.",
        "scim-revoked" => "SCIM token revoked: the IdP's next request is refused.",
        _ => return None,
    })
}

/// A rendered page with a status.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => Problem::internal_logged(&e, "console page failed to render").into_response(),
    }
}

/// A rendered page, 200.
pub fn page(page: &impl Template) -> Response {
    html(StatusCode::OK, page)
}

/// A page just loaded, with the notice of the action that led to it (`?done=`), or the page of
/// the failure that kept it from loading.
pub fn done_page<T: Template>(
    loaded: Result<T, Failure>,
    done: Option<&str>,
    shell: fn(&mut T) -> &mut Shell,
) -> Response {
    match loaded {
        Ok(mut view) => {
            shell(&mut view).notice = done.and_then(notice);
            page(&view)
        }
        Err(f) => f.page(),
    }
}

/// `303 See Other` to `path` (after a form post).
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

#[derive(Template)]
#[template(path = "console/refusal.html")]
struct Refusal<'a> {
    frame: Frame,
    status: u16,
    detail: &'a str,
}

/// A page saying why a request was refused, with a way back.
pub fn refusal(status: StatusCode, title: &str, detail: &str) -> Response {
    html(
        status,
        &Refusal {
            frame: Frame::new(title),
            status: status.as_u16(),
            detail,
        },
    )
}

/// A use case's error, as the admin API would answer it: its status, words and field.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub detail: String,
    pub field: Option<String>,
}

impl Failure {
    pub fn of(state: &ConsoleState, e: impl crate::admin::Failure) -> Self {
        let p = state.problem(e);
        let d = p.details();
        Self {
            status: StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: d.detail.clone(),
            field: d.field.clone(),
        }
    }

    /// A form field the console itself could not read (before any use case ran).
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: detail.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            detail: format!("{what} not found"),
            field: None,
        }
    }

    /// A rule broken by the form (422/409): shown beside the form, which is shown again.
    pub fn is_form_error(&self) -> bool {
        matches!(self.status.as_u16(), 400 | 409 | 422)
    }

    /// The message for a field, `field: detail`.
    pub fn message(&self) -> String {
        match &self.field {
            Some(f) if !f.is_empty() => format!("{f}: {}", self.detail),
            _ => self.detail.clone(),
        }
    }

    /// A refusal page for it.
    pub fn page(&self) -> Response {
        let title = match self.status.as_u16() {
            403 => "Not allowed",
            404 => "Not found",
            409 => "Conflict",
            429 => "Too many attempts",
            s if s >= 500 => "Something went wrong",
            _ => "Request refused",
        };
        refusal(self.status, title, &self.detail)
    }
}

/// A time as `2026-03-01 12:00 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A time relative to `now`: `3 min ago`, `in 2 d`.
pub fn ago(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (now - t).whole_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let amount = match n {
        0..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h", n / 3600),
        _ => format!("{} d", n / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A hash shown truncated: its first 12 characters and an ellipsis.
pub fn short(hash: &str) -> String {
    match hash.char_indices().nth(12) {
        Some((i, _)) => format!("{}…", &hash[..i]),
        None => hash.to_owned(),
    }
}

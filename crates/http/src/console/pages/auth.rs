//! Signing in and out: by password, by a one-time sign-in link (`tracklayer init` prints one
//! for the owner), by accepting an invitation or resetting a password (both set a password);
//! and the signed-in person's own account (password, sessions). Every step is one core use
//! case; the pages only carry the session cookie.

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::admin::AdminError;
use tracklayer_core::sessions::{Client, SessionToken, SignedIn};

use crate::admin::extract::peer_ip;
use crate::console::csrf::{Action, PublicForm};
use crate::console::handler::OrFailure;
use crate::console::session::{cookie_token, end_cookie, start_cookie, Me};
use crate::console::view::{ago, done_page, html, page, see_other, when, Failure, Frame, Shell};
use crate::console::ConsoleState;

/// Where a sign-in comes from: the connection's address and the browser's `User-Agent`.
#[derive(Debug)]
pub struct Source(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let ip = peer_ip(parts)
            .ok_or_else(|| Failure::invalid("client", "the client's address is unknown").page())?;
        let agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        Ok(Source(Client::new(ip, agent)))
    }
}

/// The session just begun: its cookie, and on to `next`.
pub(crate) fn signed_in(s: SignedIn, next: &str) -> Response {
    let mut response = see_other(next);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, start_cookie(s.token.as_str()));
    response
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn {
    frame: Frame,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Notice {
    done: Option<String>,
}

/// `GET /sign-in` (signed in already: on to the overview).
pub async fn sign_in_page(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Response {
    if let Some(token) = cookie_token(&headers) {
        if let Ok(Some(_)) = s.session(&token).await {
            return see_other("/");
        }
    }
    let notice = match q.done.as_deref() {
        Some("signed-out") => Some("You are signed out.".to_owned()),
        Some("reset-sent") => Some(
            "If an account uses this address, a link to set a new password is on its way (valid 1 hour)."
                .to_owned(),
        ),
        _ => None,
    };
    page(&SignIn {
        frame: Frame::new("Sign in"),
        email: String::new(),
        error: None,
        notice,
    })
}

/// `POST /sign-in`: the same answer for an unknown account and a wrong password.
pub async fn sign_in(
    State(s): State<ConsoleState>,
    Source(client): Source,
    PublicForm(form): PublicForm,
) -> Response {
    let email = form.get("email").to_owned();
    match s
        .admin()
        .sign_in(&email, form.get("password"), client)
        .await
    {
        Ok(signed) => signed_in(signed, "/"),
        Err(e) => {
            let f = Failure::of(&s, e);
            html(
                f.status,
                &SignIn {
                    frame: Frame::new("Sign in"),
                    email,
                    error: Some(f.detail),
                    notice: None,
                },
            )
        }
    }
}

/// `POST /sign-out`: ends the session here and in the store.
pub async fn sign_out(State(s): State<ConsoleState>, Action { me, .. }: Action) -> Response {
    if let Ok(token) = SessionToken::parse(&me.token) {
        if let Err(e) = s.admin().sign_out(&token).await {
            return Failure::of(&s, e).page();
        }
    }
    let mut response = see_other("/sign-in?done=signed-out");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, end_cookie());
    response
}

/// What a one-time link page is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    SignIn,
    Invitation,
    Reset,
}

#[derive(Template)]
#[template(path = "console/link.html")]
struct Link {
    frame: Frame,
    action: String,
    /// Asks for a new password (invitation, reset).
    password: bool,
    intro: &'static str,
    button: &'static str,
    error: Option<String>,
}

fn link_page_of(purpose: Purpose, token: &str, error: Option<String>) -> Link {
    let (title, path, intro, button) = match purpose {
        Purpose::SignIn => (
            "Sign in",
            "/sign-in/link/",
            "This one-time link signs you in to the console. It works once.",
            "Continue to the console",
        ),
        Purpose::Invitation => (
            "Accept your invitation",
            "/invite/",
            "Choose a password to finish setting up your account: at least 12 characters, not a common one.",
            "Set password and sign in",
        ),
        Purpose::Reset => (
            "Set a new password",
            "/reset/",
            "Choose a new password: at least 12 characters, not a common one. Every other session of yours ends.",
            "Set password and sign in",
        ),
    };
    Link {
        frame: Frame::new(title),
        action: format!("{path}{token}"),
        password: purpose != Purpose::SignIn,
        intro,
        button,
        error,
    }
}

/// `GET /sign-in/link/{token}`: a button, so that a mail scanner following the link does
/// not use it up.
pub async fn link_page(Path(token): Path<String>) -> Response {
    page(&link_page_of(Purpose::SignIn, &token, None))
}

/// `GET /invite/{token}`.
pub async fn invitation_page(Path(token): Path<String>) -> Response {
    page(&link_page_of(Purpose::Invitation, &token, None))
}

/// `GET /reset/{token}`.
pub async fn reset_page(Path(token): Path<String>) -> Response {
    page(&link_page_of(Purpose::Reset, &token, None))
}

/// `POST /sign-in/link/{token}`.
pub async fn redeem_link(
    State(s): State<ConsoleState>,
    Path(token): Path<String>,
    Source(client): Source,
    PublicForm(_): PublicForm,
) -> Response {
    let result = s.admin().redeem_sign_in_link(&token, client).await;
    finish_link(&s, Purpose::SignIn, &token, result)
}

/// `POST /invite/{token}` (`password`, `confirm`).
pub async fn accept_invitation(
    s: State<ConsoleState>,
    token: Path<String>,
    client: Source,
    form: PublicForm,
) -> Response {
    set_password(s, token, client, form, Purpose::Invitation).await
}

/// `POST /reset/{token}` (`password`, `confirm`).
pub async fn reset_password(
    s: State<ConsoleState>,
    token: Path<String>,
    client: Source,
    form: PublicForm,
) -> Response {
    set_password(s, token, client, form, Purpose::Reset).await
}

/// Sets the password of an invitation's or a reset link's user, and signs them in.
async fn set_password(
    State(s): State<ConsoleState>,
    Path(token): Path<String>,
    Source(client): Source,
    PublicForm(form): PublicForm,
    purpose: Purpose,
) -> Response {
    if form.get("password") != form.get("confirm") {
        return mismatch(purpose, &token);
    }
    let password = form.get("password");
    let result = match purpose {
        Purpose::Invitation => s.admin().accept_invitation(&token, password, client).await,
        _ => s.admin().reset_password(&token, password, client).await,
    };
    finish_link(&s, purpose, &token, result)
}

fn mismatch(purpose: Purpose, token: &str) -> Response {
    let view = link_page_of(purpose, token, Some("The two passwords differ.".into()));
    html(StatusCode::UNPROCESSABLE_ENTITY, &view)
}

fn finish_link(
    s: &ConsoleState,
    purpose: Purpose,
    token: &str,
    result: Result<SignedIn, AdminError>,
) -> Response {
    match result {
        Ok(signed) => signed_in(signed, "/"),
        Err(e) => {
            let f = Failure::of(s, e);
            if f.is_form_error() {
                html(f.status, &link_page_of(purpose, token, Some(f.detail)))
            } else {
                f.page()
            }
        }
    }
}

#[derive(Template)]
#[template(path = "console/reset_request.html")]
struct ResetRequest {
    frame: Frame,
}

/// `GET /reset`.
pub async fn reset_request_page() -> Response {
    page(&ResetRequest {
        frame: Frame::new("Reset your password"),
    })
}

/// `POST /reset` (`email`): the same answer whether or not an account uses the address.
pub async fn request_reset(
    State(s): State<ConsoleState>,
    Source(client): Source,
    PublicForm(form): PublicForm,
) -> Response {
    s.admin()
        .request_password_reset(form.get("email"), client)
        .await;
    see_other("/sign-in?done=reset-sent")
}

pub struct SessionRow {
    pub id: String,
    pub started: String,
    pub seen: String,
    pub network: String,
    pub agent: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct Account {
    shell: Shell,
    sessions: Vec<SessionRow>,
    revoke_base: &'static str,
    error: String,
}

/// `GET /account`: the signed-in person's sessions and password.
pub async fn account(State(s): State<ConsoleState>, me: Me, Query(q): Query<Notice>) -> Response {
    done_page(
        account_page(&s, &me, String::new()).await,
        q.done.as_deref(),
        |v| &mut v.shell,
    )
}

async fn account_page(s: &ConsoleState, me: &Me, error: String) -> Result<Account, Failure> {
    Ok(Account {
        shell: Shell::new(me, "account", "Your account"),
        sessions: session_rows(s, me, &me.user_id).await?,
        revoke_base: "/account/sessions/",
        error,
    })
}

/// A user's live sessions, for the account page and a user's page.
pub async fn session_rows(
    s: &ConsoleState,
    me: &Me,
    user_id: &str,
) -> Result<Vec<SessionRow>, Failure> {
    let user =
        tracklayer_core::user_id::UserId::parse(user_id).map_err(|_| Failure::not_found("user"))?;
    let now = time::OffsetDateTime::now_utc();
    let sessions = s
        .admin()
        .sessions(&me.principal, &user)
        .await
        .or_failure(s)?;
    Ok(sessions
        .into_iter()
        .map(|x| SessionRow {
            current: x.id.as_str() == me.session_id,
            id: x.id.as_str().to_owned(),
            started: when(x.created_at),
            seen: ago(x.last_seen_at, now),
            network: x.source_ip.clone(),
            agent: x.user_agent.clone().unwrap_or_default(),
        })
        .collect())
}

/// `POST /account/password` (`current_password`, `password`, `confirm`).
pub async fn change_password(
    State(s): State<ConsoleState>,
    Source(client): Source,
    Action { me, form }: Action,
) -> Response {
    let error = if form.get("password") != form.get("confirm") {
        "The two new passwords differ.".to_owned()
    } else {
        let Ok(token) = SessionToken::parse(&me.token) else {
            return Failure::not_found("session").page();
        };
        let current = form.opt("current_password");
        match s
            .admin()
            .change_password(&token, current.as_deref(), form.get("password"), client)
            .await
        {
            Ok(signed) => return signed_in(signed, "/account?done=password-changed"),
            Err(e) => {
                let f = Failure::of(&s, e);
                if !f.is_form_error() {
                    return f.page();
                }
                f.message()
            }
        }
    };
    match account_page(&s, &me, error).await {
        Ok(view) => html(StatusCode::UNPROCESSABLE_ENTITY, &view),
        Err(f) => f.page(),
    }
}

/// `POST /account/sessions/{sid}/revoke`: ends another session of one's own.
pub async fn revoke_own_session(
    State(s): State<ConsoleState>,
    Path(sid): Path<String>,
    Action { me, .. }: Action,
) -> Response {
    match end_session(&s, &me, &sid).await {
        Ok(()) => see_other("/account?done=session-revoked"),
        Err(f) => f.page(),
    }
}

/// Ends session `sid` (one's own, or anyone's for an admin: the core checks).
pub async fn end_session(s: &ConsoleState, me: &Me, sid: &str) -> Result<(), Failure> {
    let id = tracklayer_core::sessions::SessionId::parse(sid)
        .map_err(|_| Failure::not_found("session"))?;
    s.admin()
        .revoke_session(&me.principal, &id)
        .await
        .or_failure(s)
}

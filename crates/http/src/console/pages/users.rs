//! Users and roles: the list, invitations (admins), role changes and removal (admins), and
//! each user's console sessions with a way to end them.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::auth::{end_session, session_rows, SessionRow};
use super::{label, role};
use crate::admin::users::User;
use crate::console::csrf::Action;
use crate::console::handler::{after, form_again, ObjectPage, OnObject, OrFailure};
use crate::console::session::Me;
use crate::console::view::{done_page, page, see_other, when, Failure, Shell};
use crate::console::ConsoleState;
use tracklayer_core::admin::AdminError;
use tracklayer_core::user_id::UserId;

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

struct Row {
    u: User,
    role: String,
    since: String,
    me: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct Users {
    shell: Shell,
    rows: Vec<Row>,
    email: String,
    invite_error: String,
}

async fn users(s: &ConsoleState, me: &Me) -> Result<Users, Failure> {
    let list = s.admin().users(&me.principal).await.or_failure(s)?;
    Ok(Users {
        shell: Shell::new(me, "users", "Users & roles"),
        rows: list
            .into_iter()
            .map(User::from)
            .map(|u| Row {
                role: label(&u.role),
                since: when(u.created_at),
                me: u.id == me.user_id,
                u,
            })
            .collect(),
        email: String::new(),
        invite_error: String::new(),
    })
}

/// `GET /users`.
pub async fn list(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    done_page(users(&s, &me).await, q.done.as_deref(), |v| &mut v.shell)
}

/// `POST /users`: invites `email` with `role`; the invitation is mailed.
pub async fn invite(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let invited = match role(form.get("role"), "role") {
        Ok(r) => s
            .admin()
            .invite_user(&me.principal, form.get("email"), r)
            .await
            .or_failure(&s),
        Err(f) => Err(f),
    };
    let f = match invited {
        Ok(_) => return see_other("/users?done=user-invited"),
        Err(f) => f,
    };
    form_again(f, users(&s, &me), |view, f| {
        view.email = form.get("email").to_owned();
        view.invite_error = f.detail.clone();
    })
    .await
}

/// `POST /users/{id}/role`.
pub async fn set_role(OnObject { s, id, me, form }: OnObject) -> Response {
    let r = match role(form.get("role"), "role") {
        Ok(r) => r,
        Err(f) => return f.page(),
    };
    let Ok(id) = UserId::parse(&id) else {
        return no_user(&s);
    };
    let set = s.admin().set_role(&me.principal, &id, r).await;
    after(&s, set, "/users?done=role-changed")
}

/// `POST /users/{id}/remove`.
pub async fn remove(OnObject { s, id, me, .. }: OnObject) -> Response {
    let Ok(id) = UserId::parse(&id) else {
        return no_user(&s);
    };
    let removed = s.admin().remove_user(&me.principal, &id).await;
    after(&s, removed, "/users?done=user-removed")
}

/// A path's malformed `{id}` names no user: the not-found page.
fn no_user(s: &ConsoleState) -> Response {
    Failure::of(s, AdminError::NotFound("user")).page()
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    shell: Shell,
    email: String,
    role: String,
    sessions: Vec<SessionRow>,
    revoke_base: String,
}

/// `GET /users/{id}`: a user's sessions (one's own, or anyone's for an admin).
pub async fn detail(ObjectPage { s, me, id }: ObjectPage, Query(q): Query<Done>) -> Response {
    let Ok(uid) = UserId::parse(&id) else {
        return no_user(&s);
    };
    let user = match s.admin().user(&me.principal, &uid).await {
        Ok(u) => User::from(u),
        Err(e) => return Failure::of(&s, e).page(),
    };
    match session_rows(&s, &me, &id).await {
        Ok(sessions) => page(&UserPage {
            shell: Shell::new(&me, "users", user.email.as_str()).done(q.done.as_deref()),
            role: label(&user.role),
            email: user.email.into(),
            sessions,
            revoke_base: format!("/users/{id}/sessions/"),
        }),
        Err(f) => f.page(),
    }
}

/// `POST /users/{id}/sessions/{sid}/revoke`.
pub async fn revoke_session(
    State(s): State<ConsoleState>,
    Path((id, sid)): Path<(String, String)>,
    Action { me, .. }: Action,
) -> Response {
    match end_session(&s, &me, &sid).await {
        Ok(()) => see_other(&format!("/users/{id}?done=session-revoked")),
        Err(f) => f.page(),
    }
}

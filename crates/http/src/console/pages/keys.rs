//! API keys (admins): create (the secret shown once, with a copy button), rotate with an
//! overlap, revoke; keys near their expiry are flagged.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::label;
use crate::admin::keys::{ApiKey, NewApiKey};
use crate::console::csrf::Action;
use crate::console::handler::{after, OnObject, OrFailure};
use crate::console::session::Me;
use crate::console::view::{ago, done_page, html, page, when, Failure, Shell};
use crate::console::ConsoleState;

/// Keys expiring within this many days are flagged (the first expiry mail goes 14 days ahead).
const WARN_DAYS: i64 = 14;

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

struct Row {
    k: ApiKey,
    kind: String,
    role: String,
    expires: String,
    /// `ok`, `warn` (expires within 14 days) or `bad` (revoked or expired).
    state: &'static str,
    state_text: String,
    last_used: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct Keys {
    shell: Shell,
    rows: Vec<Row>,
    /// The secret of a key just created or rotated, shown once.
    secret: Option<(String, String)>,
    form_error: String,
    form_field: String,
}

/// `GET /keys`.
pub async fn list(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    done_page(keys(&s, &me, None).await, q.done.as_deref(), |v| {
        &mut v.shell
    })
}

async fn keys(
    s: &ConsoleState,
    me: &Me,
    secret: Option<(String, String)>,
) -> Result<Keys, Failure> {
    let now = OffsetDateTime::now_utc();
    let list = s.admin().keys(&me.principal).await.or_failure(s)?;
    let rows = list
        .into_iter()
        .map(ApiKey::from)
        .map(|k| row(k, now))
        .collect();
    Ok(Keys {
        shell: Shell::new(me, "keys", "API keys"),
        rows,
        secret,
        form_error: String::new(),
        form_field: String::new(),
    })
}

fn row(k: ApiKey, now: OffsetDateTime) -> Row {
    let left = k.expires_at - now;
    let (state, state_text) = if k.revoked_at.is_some() {
        ("bad", "revoked".to_owned())
    } else if left.is_negative() {
        ("bad", "expired".to_owned())
    } else if left.whole_days() < WARN_DAYS {
        ("warn", format!("expires {}", ago(k.expires_at, now)))
    } else {
        ("ok", "active".to_owned())
    };
    Row {
        kind: label(&k.kind),
        role: k.role.as_ref().map(label).unwrap_or_default(),
        expires: when(k.expires_at),
        last_used: k.last_used_at.map_or("never".into(), |t| ago(t, now)),
        live: state != "bad",
        state,
        state_text,
        k,
    }
}

/// `POST /keys`: the form as the admin API's `NewApiKey`.
pub async fn create(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let mut body = Map::new();
    body.insert("kind".into(), form.get("kind").into());
    if form.get("kind") == "svc" {
        body.insert("role".into(), form.get("role").into());
    }
    if form.checked("browser") {
        body.insert("browser".into(), true.into());
    }
    if let Some(name) = form.opt("name") {
        body.insert("name".into(), name.into());
    }
    if let Some(days) = form.opt("expires_in_days") {
        let v = days.parse::<i64>().map_or(Value::String(days), Value::from);
        body.insert("expires_in_days".into(), v);
    }
    let request = serde_json::from_value::<NewApiKey>(Value::Object(body))
        .map_err(|e| Failure::invalid("kind", e.to_string()));
    let created = match request {
        Ok(r) => s
            .admin()
            .create_key(&me.principal, r.into())
            .await
            .or_failure(&s),
        Err(f) => Err(f),
    };
    shown_once(&s, &me, created).await
}

/// The list with the new key's secret, or with the form's error.
async fn shown_once(
    s: &ConsoleState,
    me: &Me,
    created: Result<tracklayer_core::admin::CreatedKey, Failure>,
) -> Response {
    use secrecy::ExposeSecret;
    let (secret, failure) = match created {
        Ok(c) => (
            Some((c.key.name.clone(), c.secret.expose_secret().to_owned())),
            None,
        ),
        Err(f) => (None, Some(f)),
    };
    let mut view = match keys(s, me, secret).await {
        Ok(v) => v,
        Err(f) => return f.page(),
    };
    match failure {
        Some(f) if f.is_form_error() => {
            view.form_error = f.detail.clone();
            view.form_field = f.field.clone().unwrap_or_default();
            html(f.status, &view)
        }
        Some(f) => f.page(),
        None => page(&view),
    }
}

/// `POST /keys/{id}/rotate` (`overlap_days`).
pub async fn rotate(OnObject { s, id, me, form }: OnObject) -> Response {
    let overlap = match form.opt("overlap_days").map(|d| d.parse::<i64>()) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return Failure::invalid("overlap_days", "must be a number of days").page(),
    };
    let rotated = s
        .admin()
        .rotate_key_in_session(&me.principal, me.sso, &id, overlap)
        .await
        .or_failure(&s);
    shown_once(&s, &me, rotated).await
}

/// `POST /keys/{id}/revoke`.
pub async fn revoke(OnObject { s, id, me, .. }: OnObject) -> Response {
    let revoked = s.admin().revoke_key(&me.principal, &id).await;
    after(&s, revoked, "/keys?done=key-revoked")
}

//! Workspace settings: consent policy, retention, security (IP blocklist; pausing all egress
//! takes a confirmation step), and the workspace itself (name; closing it takes its id typed).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::admin::WorkspacePatch;

use super::label;
use crate::admin::lifecycle::Retention;
use crate::admin::security::{SecurityPatch, SecuritySettings};
use crate::admin::workspace::{ConsentPolicy, Workspace};
use crate::console::csrf::{Action, Fields};
use crate::console::handler::{form_again, OrFailure};
use crate::console::session::Me;
use crate::console::view::{done_page, html, page, see_other, when, Failure, Shell};
use crate::console::ConsoleState;

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "console/consent.html")]
struct Consent {
    shell: Shell,
    eu: String,
    us: String,
    honor_gpc: bool,
    gpc: String,
    request_ip: bool,
}

/// `GET /settings/consent`.
pub async fn consent(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    match s.admin().consent_policy(&me.principal).await {
        Ok(p) => {
            let p = ConsentPolicy::from(p);
            page(&Consent {
                shell: Shell::new(&me, "consent", "Consent policy").done(q.done.as_deref()),
                eu: label(&p.eu_default),
                us: label(&p.us_default),
                honor_gpc: p.honor_gpc,
                gpc: label(&p.gpc),
                request_ip: p.request_ip_as_client_ip,
            })
        }
        Err(e) => Failure::of(&s, e).page(),
    }
}

/// `POST /settings/consent`: the form as the admin API's `ConsentPolicy` (editor).
pub async fn save_consent(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let body = serde_json::json!({
        "eu_default": form.get("eu_default"),
        "us_default": form.get("us_default"),
        "honor_gpc": form.checked("honor_gpc"),
        "gpc": form.get("gpc"),
        "request_ip_as_client_ip": form.checked("request_ip_as_client_ip"),
    });
    let policy = match serde_json::from_value::<ConsentPolicy>(body) {
        Ok(p) => p,
        Err(e) => return Failure::invalid("consent_policy", e.to_string()).page(),
    };
    match s
        .admin()
        .put_consent_policy(&me.principal, policy.into())
        .await
    {
        Ok(_) => see_other("/settings/consent?done=consent-saved"),
        Err(e) => Failure::of(&s, e).page(),
    }
}

#[derive(Template)]
#[template(path = "console/retention.html")]
struct RetentionPage {
    shell: Shell,
    r: Retention,
    error: String,
}

/// `GET /settings/retention`.
pub async fn retention(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    match s.admin().retention(&me.principal).await {
        Ok(r) => page(&RetentionPage {
            shell: Shell::new(&me, "retention", "Retention").done(q.done.as_deref()),
            r: r.into(),
            error: String::new(),
        }),
        Err(e) => Failure::of(&s, e).page(),
    }
}

/// `POST /settings/retention` (`event_retention_days`, admin).
pub async fn save_retention(
    State(s): State<ConsoleState>,
    Action { me, form }: Action,
) -> Response {
    let saved = match form.get("event_retention_days").parse::<u16>() {
        Ok(days) => s
            .admin()
            .put_retention(&me.principal, days)
            .await
            .or_failure(&s),
        Err(_) => Err(Failure::invalid(
            "event_retention_days",
            "must be a number of days from 1 to 365",
        )),
    };
    let f = match saved {
        Ok(_) => return see_other("/settings/retention?done=retention-saved"),
        Err(f) if f.is_form_error() => f,
        Err(f) => return f.page(),
    };
    match s.admin().retention(&me.principal).await {
        Ok(r) => html(
            f.status,
            &RetentionPage {
                shell: Shell::new(&me, "retention", "Retention"),
                r: r.into(),
                error: f.detail,
            },
        ),
        Err(e) => Failure::of(&s, e).page(),
    }
}

#[derive(Template)]
#[template(path = "console/security.html")]
struct Security {
    shell: Shell,
    blocklist: String,
    egress_paused: bool,
    error: String,
    /// Pausing egress waits for this confirmation.
    confirm_pause: bool,
}

async fn security_page(s: &ConsoleState, me: &Me) -> Result<Security, Failure> {
    let settings = SecuritySettings::from(s.admin().security(&me.principal).await.or_failure(s)?);
    Ok(Security {
        shell: Shell::new(me, "security", "Security"),
        blocklist: settings.ip_blocklist.join("\n"),
        egress_paused: settings.egress_paused,
        error: String::new(),
        confirm_pause: false,
    })
}

/// `GET /settings/security`.
pub async fn security(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    done_page(security_page(&s, &me).await, q.done.as_deref(), |v| {
        &mut v.shell
    })
}

/// `POST /settings/security`: the IP blocklist, one address or CIDR per line (admin).
pub async fn save_security(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let list: Vec<String> = form
        .get("ip_blocklist")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let patch = SecurityPatch {
        ip_blocklist: Some(list),
        egress_paused: None,
    };
    apply_security(&s, &me, patch, "security-saved", Some(&form)).await
}

/// `POST /settings/security/egress`: pause (after a confirmation step) or resume all egress.
pub async fn egress(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let pause = form.get("egress_paused") == "true";
    if pause && form.get("confirmed") != "yes" {
        return match security_page(&s, &me).await {
            Ok(mut view) => {
                view.confirm_pause = true;
                page(&view)
            }
            Err(f) => f.page(),
        };
    }
    let patch = SecurityPatch {
        ip_blocklist: None,
        egress_paused: Some(pause),
    };
    let done = if pause {
        "egress-paused"
    } else {
        "egress-resumed"
    };
    apply_security(&s, &me, patch, done, None).await
}

async fn apply_security(
    s: &ConsoleState,
    me: &Me,
    patch: SecurityPatch,
    done: &str,
    form: Option<&Fields>,
) -> Response {
    let result = match patch.parse() {
        Ok(p) => s.admin().patch_security(&me.principal, p).await,
        Err(e) => Err(e),
    };
    let f = match result {
        Ok(_) => return see_other(&format!("/settings/security?done={done}")),
        Err(e) => Failure::of(s, e),
    };
    form_again(f, security_page(s, me), |view, f| {
        view.error = f.message();
        if let Some(form) = form {
            view.blocklist = form.get("ip_blocklist").to_owned();
        }
    })
    .await
}

#[derive(Template)]
#[template(path = "console/workspace.html")]
struct WorkspacePage {
    shell: Shell,
    w: Workspace,
    created: String,
    region: String,
    error: String,
    close_error: String,
}

async fn workspace_page(s: &ConsoleState, me: &Me) -> Result<WorkspacePage, Failure> {
    let w = Workspace::from(s.admin().workspace(&me.principal).await.or_failure(s)?);
    Ok(WorkspacePage {
        shell: Shell::new(me, "workspace", "Workspace"),
        created: when(w.created_at),
        region: label(&w.region),
        w,
        error: String::new(),
        close_error: String::new(),
    })
}

/// `GET /settings/workspace`.
pub async fn workspace(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    done_page(workspace_page(&s, &me).await, q.done.as_deref(), |v| {
        &mut v.shell
    })
}

/// `POST /settings/workspace`: renames it (editor).
pub async fn save_workspace(
    State(s): State<ConsoleState>,
    Action { me, form }: Action,
) -> Response {
    let patch = WorkspacePatch {
        name: Some(form.get("name").to_owned()),
        ..Default::default()
    };
    let f = match s.admin().update_workspace(&me.principal, patch).await {
        Ok(_) => return see_other("/settings/workspace?done=workspace-saved"),
        Err(e) => Failure::of(&s, e),
    };
    workspace_failed(&s, &me, f, false).await
}

/// `POST /settings/workspace/close`: closes it when `confirm` is its id (admin).
pub async fn close_workspace(
    State(s): State<ConsoleState>,
    Action { me, form }: Action,
) -> Response {
    let f = match s
        .admin()
        .close_workspace(&me.principal, form.get("confirm"))
        .await
    {
        Ok(_) => return see_other("/sign-in"),
        Err(e) => Failure::of(&s, e),
    };
    workspace_failed(&s, &me, f, true).await
}

async fn workspace_failed(s: &ConsoleState, me: &Me, f: Failure, closing: bool) -> Response {
    form_again(f, workspace_page(s, me), |view, f| {
        if closing {
            view.close_error = f.detail.clone();
        } else {
            view.error = f.detail.clone();
        }
    })
    .await
}

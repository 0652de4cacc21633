//! Browser origins (issue 14): the web origins whose pages may send events from a browser.
//! Read by any role, changed by admins through the admin API's `CorsSettings` (the same parse
//! and use case as `PUT /admin/v1/cors`); `*` (every website) only with its confirmation box.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use crate::admin::security::CorsSettings;
use crate::console::csrf::Action;
use crate::console::handler::form_again;
use crate::console::session::Me;
use crate::console::view::{done_page, see_other, Failure, Shell};
use crate::console::ConsoleState;

#[derive(Template)]
#[template(path = "console/cors.html")]
struct Cors {
    shell: Shell,
    origins: Vec<String>,
    /// The list as typed, one origin a line.
    typed: String,
    /// Why the list was refused (its line named), beside the field.
    error: String,
    /// The list holds `*` and its confirmation was not given.
    confirm_any: bool,
}

async fn cors(s: &ConsoleState, me: &Me) -> Result<Cors, Failure> {
    let origins: Vec<String> = s
        .admin()
        .cors(&me.principal)
        .await
        .map_err(|e| Failure::of(s, e))?
        .into_iter()
        .map(String::from)
        .collect();
    Ok(Cors {
        shell: Shell::new(me, "cors", "Browser origins"),
        typed: origins.join("\n"),
        origins,
        error: String::new(),
        confirm_any: false,
    })
}

/// `GET /settings/cors`.
pub async fn show(State(s): State<ConsoleState>, me: Me, Query(q): Query<super::Done>) -> Response {
    done_page(cors(&s, &me).await, q.done.as_deref(), |v| &mut v.shell)
}

/// `POST /settings/cors` (`allowed_origins`, one a line; `allow_any` confirms `*`).
pub async fn save(State(s): State<ConsoleState>, Action { me, form }: Action) -> Response {
    let typed = form.get("allowed_origins").to_owned();
    let list: Vec<String> = typed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let any_unconfirmed = list.iter().any(|o| o == "*") && !form.checked("allow_any");
    let saved = if any_unconfirmed {
        Err(Failure::invalid(
            "allowed_origins",
            "* lets every website send events with your browser keys: tick the box to confirm",
        ))
    } else {
        let settings = CorsSettings {
            allowed_origins: list.clone(),
        };
        match settings.parse() {
            Ok(origins) => s
                .admin()
                .put_cors(&me.principal, origins)
                .await
                .map_err(|e| Failure::of(&s, e)),
            Err(e) => Err(Failure::of(&s, e)),
        }
    };
    match saved {
        Ok(_) => see_other("/settings/cors?done=cors-saved"),
        Err(f) => {
            form_again(f, cors(&s, &me), |view, f| {
                view.error = line_of(f, &list);
                view.confirm_any = any_unconfirmed;
                view.typed = typed;
            })
            .await
        }
    }
}

/// The refusal, naming the line of `allowed_origins[i]`.
fn line_of(f: &Failure, list: &[String]) -> String {
    let index = f
        .field
        .as_deref()
        .and_then(|x| x.strip_prefix("allowed_origins["))
        .and_then(|x| x.strip_suffix(']'))
        .and_then(|i| i.parse::<usize>().ok());
    match index {
        Some(i) => format!(
            "Line {} ({}): {}",
            i + 1,
            list.get(i).map_or("", String::as_str),
            f.detail
        ),
        None => f.detail.clone(),
    }
}

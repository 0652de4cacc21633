//! The overview: the workspace at a glance — each destination's state and where to go next.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::admin::destinations::Destination;
use crate::console::session::Me;
use crate::console::view::{page, Failure, Shell};
use crate::console::ConsoleState;

use super::destination_form::kind_label;
use super::label;

struct Row {
    d: Destination,
    kind: &'static str,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    shell: Shell,
    rows: Vec<Row>,
    active: usize,
    paused: usize,
    egress_paused: bool,
}

/// `GET /`.
pub async fn overview(State(s): State<ConsoleState>, me: Me) -> Response {
    let list = match s.admin().destinations(&me.principal).await {
        Ok(l) => l,
        Err(e) => return Failure::of(&s, e).page(),
    };
    let rows: Vec<Row> = list
        .into_iter()
        .map(Destination::from)
        .map(|d| Row {
            kind: kind_label(&label(&d.kind)),
            d,
        })
        .collect();
    page(&Overview {
        shell: Shell::new(&me, "overview", "Overview"),
        active: rows.iter().filter(|r| !r.d.paused).count(),
        paused: rows.iter().filter(|r| r.d.paused).count(),
        egress_paused: rows.iter().any(|r| r.d.egress_paused),
        rows,
    })
}

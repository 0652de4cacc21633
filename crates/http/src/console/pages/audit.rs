//! The audit log (admins): entries filtered by actor, action and time, paged, with the chain
//! verification's result on top.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::audit::AuditFilter;

use crate::admin::audit_log::{AuditEntry, AuditVerification};
use crate::admin::extract::parse_time;
use crate::console::session::Me;
use crate::console::view::{html, short, when, Failure, Shell};
use crate::console::ConsoleState;

const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// A day, `YYYY-MM-DD` (from its start, UTC).
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    after: Option<u64>,
}

struct Row {
    e: AuditEntry,
    time: String,
    hash: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct Audit {
    shell: Shell,
    f: Filter,
    rows: Vec<Row>,
    v: AuditVerification,
    next: Option<u64>,
    error: String,
}

/// A day of the filter as the start of that day (UTC); `None` when blank.
fn day(v: &str, field: &str) -> Result<Option<time::OffsetDateTime>, Failure> {
    if v.is_empty() {
        return Ok(None);
    }
    parse_time(&format!("{v}T00:00:00Z"))
        .map(Some)
        .ok_or_else(|| Failure::invalid(field, "must be a date, YYYY-MM-DD"))
}

/// `GET /audit-log?actor=&action=&since=&until=&after=`.
pub async fn log(State(s): State<ConsoleState>, me: Me, Query(f): Query<Filter>) -> Response {
    let v = match s.admin().verify_audit_log(&me.principal).await {
        Ok(v) => AuditVerification::from(v),
        Err(e) => return Failure::of(&s, e).page(),
    };
    let range = day(&f.since, "since").and_then(|since| {
        day(&f.until, "until").map(|until| (since, until.map(|u| u + time::Duration::days(1))))
    });
    let (since, until, error) = match range {
        Ok((since, until)) => (since, until, String::new()),
        Err(e) => (None, None, e.message()),
    };
    let filter = AuditFilter {
        actor: Some(f.actor.trim().to_owned()).filter(|a| !a.is_empty()),
        action: Some(f.action.trim().to_owned()).filter(|a| !a.is_empty()),
        since,
        until,
        after: f.after,
        limit: PAGE,
    };
    let entries = match s.admin().audit_log(&me.principal, filter).await {
        Ok(e) => e,
        Err(e) => return Failure::of(&s, e).page(),
    };
    let next = (entries.len() == PAGE)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let rows = entries
        .into_iter()
        .map(AuditEntry::from)
        .map(|e| Row {
            time: when(e.time),
            hash: short(&e.hash),
            summary: summary(&e.summary),
            e,
        })
        .collect();
    let status = if error.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    html(
        status,
        &Audit {
            shell: Shell::new(&me, "audit", "Audit log"),
            f,
            rows,
            v,
            next,
            error,
        },
    )
}

/// An entry's summary, compact: `key: value` pairs.
fn summary(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(o) if o.is_empty() => String::new(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

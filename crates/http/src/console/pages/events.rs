//! The event debugger: find an event by its `messageId`, and its trace (consent decisions,
//! routing, and per destination the delivery status, attempts, last HTTP status and error),
//! whose delivery table refreshes itself while deliveries are pending. No raw identifier is
//! shown: the trace holds none (only which identifier fields were hashed).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::event::MessageId;

use crate::admin::trace::EventTrace;
use crate::console::session::Me;
use crate::console::view::{page, when, Failure, Shell};
use crate::console::ConsoleState;

use super::label;

#[derive(Debug, Deserialize)]
pub struct Find {
    message_id: Option<String>,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct Debugger {
    shell: Shell,
    message_id: String,
    searched: bool,
    error: Option<String>,
    found: Vec<Found>,
}

struct Found {
    event_id: String,
    event_type: String,
    name: String,
    received: String,
    routed: usize,
    delivered: usize,
}

/// `GET /events?message_id=…`.
pub async fn debugger(State(s): State<ConsoleState>, me: Me, Query(q): Query<Find>) -> Response {
    let message_id = q.message_id.unwrap_or_default().trim().to_owned();
    let mut view = Debugger {
        shell: Shell::new(&me, "events", "Event debugger"),
        searched: !message_id.is_empty(),
        message_id,
        error: None,
        found: Vec::new(),
    };
    if view.searched {
        match MessageId::parse(&view.message_id) {
            Err(why) => view.error = Some(format!("messageId {why}")),
            Ok(id) => match s
                .admin()
                .event_traces_by_message_id(&me.principal, &id)
                .await
            {
                Ok(traces) => {
                    view.found = traces
                        .into_iter()
                        .map(EventTrace::from)
                        .map(|t| Found {
                            received: when(t.received_at),
                            routed: t.routing.iter().filter(|r| r.routed).count(),
                            delivered: t
                                .deliveries
                                .iter()
                                .filter(|d| label(&d.status) == "delivered")
                                .count(),
                            event_type: label(&t.event_type),
                            name: t.name.unwrap_or_default(),
                            event_id: t.event_id,
                        })
                        .collect()
                }
                Err(e) => return Failure::of(&s, e).page(),
            },
        }
    }
    page(&view)
}

#[derive(Template)]
#[template(path = "console/trace.html")]
struct Trace {
    shell: Shell,
    t: EventTrace,
    received: String,
    timestamp: String,
    expires: String,
    properties: String,
    rows: Vec<Row>,
    pending: bool,
    event_id: String,
    type_label: String,
}

/// One destination of the event: the consent decision, routing and delivery.
struct Row {
    destination_id: String,
    destination: String,
    kind: String,
    allowed: bool,
    reason: String,
    skipped: String,
    status: String,
    attempts: String,
    http_status: String,
    error: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "console/trace_deliveries.html")]
struct TraceDeliveries {
    rows: Vec<Row>,
    pending: bool,
    event_id: String,
}

/// `GET /events/{id}`: the trace; with `HX-Request`, only its delivery table (polled).
pub async fn trace(
    State(s): State<ConsoleState>,
    me: Me,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let t = match s.admin().event_trace(&me.principal, &id).await {
        Ok(t) => EventTrace::from(t),
        Err(e) => return Failure::of(&s, e).page(),
    };
    let names = match s.admin().destinations(&me.principal).await {
        Ok(list) => list
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect::<std::collections::HashMap<_, _>>(),
        Err(e) => return Failure::of(&s, e).page(),
    };
    let rows: Vec<Row> = t
        .routing
        .iter()
        .map(|r| {
            let d = t
                .deliveries
                .iter()
                .find(|d| d.destination_id == r.destination_id);
            Row {
                destination: names
                    .get(&r.destination_id)
                    .cloned()
                    .unwrap_or_else(|| "(deleted destination)".into()),
                destination_id: r.destination_id.clone(),
                kind: label(&r.kind),
                allowed: r.consent.allowed,
                reason: r.consent.reason.clone(),
                skipped: r.skipped.clone().unwrap_or_default(),
                status: d.map_or_else(
                    || {
                        if r.routed {
                            "queued".into()
                        } else {
                            "not sent".into()
                        }
                    },
                    |d| label(&d.status),
                ),
                attempts: d.map_or(String::new(), |d| d.attempts.to_string()),
                http_status: d
                    .and_then(|d| d.last_http_status)
                    .map_or(String::new(), |c| c.to_string()),
                error: d
                    .and_then(|d| d.last_error.clone().or_else(|| d.reason.clone()))
                    .unwrap_or_default(),
                updated: d.map_or(String::new(), |d| when(d.updated_at)),
            }
        })
        .collect();
    let pending = rows
        .iter()
        .any(|r| r.status == "queued" || r.status == "retrying");
    if headers.contains_key("hx-request") {
        return page(&TraceDeliveries {
            rows,
            pending,
            event_id: t.event_id,
        });
    }
    page(&Trace {
        shell: Shell::new(&me, "events", "Event trace"),
        received: when(t.received_at),
        timestamp: when(t.timestamp),
        expires: when(t.expires_at),
        properties: serde_json::to_string_pretty(&t.properties).unwrap_or_default(),
        rows,
        pending,
        event_id: t.event_id.clone(),
        type_label: label(&t.event_type),
        t,
    })
}

//! The event debugger: find an event by its `messageId`, and its trace (consent decisions,
//! routing, and per destination the delivery status, attempts, last HTTP status and error),
//! whose delivery table refreshes itself while deliveries are pending. No raw identifier is
//! shown: the trace holds none (only which identifier fields were hashed).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tracklayer_core::event::MessageId;

use std::collections::HashMap;

use crate::admin::delivery_log::Delivery;
use crate::admin::trace::{EventTrace, Routing};
use crate::console::handler::{HxRequest, ObjectPage};
use crate::console::session::Me;
use crate::console::view::{page, when, Failure, Shell};
use crate::console::ConsoleState;

use super::label;

#[derive(Debug, Deserialize)]
pub struct Find {
    message_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    name: Option<String>,
    /// `off`: the live list stays as loaded (no polling) until resumed.
    live: Option<String>,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct Debugger {
    shell: Shell,
    message_id: String,
    searched: bool,
    error: Option<String>,
    found: Vec<Found>,
    live: Live,
}

struct Found {
    event_id: String,
    event_type: String,
    name: String,
    received: String,
    routed: usize,
    delivered: usize,
}

/// The live list of recent events: its filters, whether it polls, and its rows.
struct Live {
    event_type: String,
    name: String,
    paused: bool,
    /// The filters as a query string (`type=page&name=…`), for the polling and pause links.
    query: String,
    /// A filter that could not be read: (field, message).
    error: Option<(&'static str, String)>,
    rows: Vec<LiveRow>,
    types: [&'static str; 6],
}

struct LiveRow {
    event_id: String,
    received: String,
    received_at: String,
    event_type: String,
    name: String,
    message_id: String,
    outcomes: Vec<(String, Outcome)>,
}

/// The live list alone: what the polling request (`HX-Request`) swaps in.
#[derive(Template)]
#[template(path = "console/events_live.html")]
struct LiveList {
    live: Live,
}

/// `GET /events?message_id=…&type=…&name=…&live=off`: the debugger; with `HX-Request`, only
/// its live list (polled every 5 s unless paused).
pub async fn debugger(
    State(s): State<ConsoleState>,
    me: Me,
    Query(q): Query<Find>,
    HxRequest(partial): HxRequest,
) -> Response {
    let live = match live(&s, &me, &q).await {
        Ok(live) => live,
        Err(f) => return f.page(),
    };
    if partial {
        return page(&LiveList { live });
    }
    let message_id = q.message_id.unwrap_or_default().trim().to_owned();
    let mut view = Debugger {
        shell: Shell::new(&me, "events", "Event debugger"),
        searched: !message_id.is_empty(),
        message_id,
        error: None,
        found: Vec::new(),
        live,
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

/// The call types, as the filter offers them.
const TYPES: [&str; 6] = ["track", "page", "identify", "screen", "group", "alias"];
/// Rows of the live list.
const LIVE_ROWS: usize = 50;
/// The longest name filter (as the admin API takes it).
const NAME_MAX: usize = 200;

/// The live list for the filters of `q` (a filter it cannot read is shown beside its field,
/// and the list is then left empty).
async fn live(s: &ConsoleState, me: &Me, q: &Find) -> Result<Live, Failure> {
    let event_type = q.event_type.clone().unwrap_or_default();
    let name = q.name.clone().unwrap_or_default().trim().to_owned();
    // (The serializer is not `Send`: it is dropped before any await.)
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("type", &event_type)
        .append_pair("name", &name)
        .finish();
    let mut live = Live {
        paused: q.live.as_deref() == Some("off"),
        query,
        error: None,
        rows: Vec::new(),
        types: TYPES,
        event_type,
        name,
    };
    let parsed = match live.event_type.as_str() {
        "" => None,
        t => match serde_json::from_value(serde_json::Value::String(t.to_owned())) {
            Ok(t) => Some(t),
            Err(_) => {
                live.error = Some(("type", "Choose one of the listed types.".into()));
                return Ok(live);
            }
        },
    };
    if live.name.chars().count() > NAME_MAX {
        live.error = Some(("name", format!("At most {NAME_MAX} characters.")));
        return Ok(live);
    }
    let name = (!live.name.is_empty()).then(|| live.name.clone());
    let traces = s
        .admin()
        .recent_event_traces(&me.principal, parsed, name, LIVE_ROWS)
        .await
        .map_err(|e| Failure::of(s, e))?;
    let names = destination_names(s, me).await?;
    live.rows = traces
        .into_iter()
        .map(EventTrace::from)
        .map(|t| LiveRow {
            outcomes: t
                .per_destination()
                .map(|(r, d)| (name_of(&names, &r.destination_id), outcome(r, d)))
                .collect(),
            received: when_exact(t.received_at),
            received_at: t
                .received_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            event_type: label(&t.event_type),
            name: t.name.clone().unwrap_or_default(),
            message_id: t.message_id.clone(),
            event_id: t.event_id,
        })
        .collect();
    Ok(live)
}

/// A time of the last hour to the second, `12:00:05` (UTC), for events arriving seconds apart.
fn when_exact(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
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
    status: Outcome,
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
    ObjectPage { s, me, id }: ObjectPage,
    HxRequest(partial): HxRequest,
) -> Response {
    let t = match s.admin().event_trace(&me.principal, &id).await {
        Ok(t) => EventTrace::from(t),
        Err(e) => return Failure::of(&s, e).page(),
    };
    let names = match destination_names(&s, &me).await {
        Ok(names) => names,
        Err(f) => return f.page(),
    };
    let rows: Vec<Row> = t
        .per_destination()
        .map(|(r, d)| Row {
            destination: name_of(&names, &r.destination_id),
            destination_id: r.destination_id.clone(),
            kind: label(&r.kind),
            allowed: r.consent.allowed,
            reason: r.consent.reason.clone(),
            skipped: r.skipped.clone().unwrap_or_default(),
            status: outcome(r, d),
            attempts: d.map_or(String::new(), |d| d.attempts.to_string()),
            http_status: d
                .and_then(|d| d.last_http_status)
                .map_or(String::new(), |c| c.to_string()),
            error: d
                .and_then(|d| d.last_error.clone().or_else(|| d.reason.clone()))
                .unwrap_or_default(),
            updated: d.map_or(String::new(), |d| when(d.updated_at)),
        })
        .collect();
    let pending = rows.iter().any(|r| r.status.pending());
    if partial {
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

/// The workspace's destination names by id.
async fn destination_names(s: &ConsoleState, me: &Me) -> Result<HashMap<String, String>, Failure> {
    match s.admin().destinations(&me.principal).await {
        Ok(list) => Ok(list
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect()),
        Err(e) => Err(Failure::of(s, e)),
    }
}

fn name_of(names: &HashMap<String, String>, id: &str) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| "(deleted destination)".into())
}

/// What became of an event at one destination: its word and its badge's class.
pub(super) struct Outcome {
    pub word: String,
    pub class: &'static str,
}

impl Outcome {
    /// Still on its way (the trace's table refreshes itself meanwhile).
    fn pending(&self) -> bool {
        self.word == "queued" || self.word == "retrying"
    }
}

/// The outcome at a destination, from its routing decision and its delivery record:
/// filtered by consent, not sent (the destination's filter), queued, delivered, retrying,
/// failed (dead-lettered) or dropped.
fn outcome(r: &Routing, d: Option<&Delivery>) -> Outcome {
    let (word, class) = match d.map(|d| label(&d.status)) {
        _ if !r.consent.allowed => ("filtered by consent".to_owned(), ""),
        Some(s) if s == "delivered" => (s, "ok"),
        Some(s) if s == "dead" => ("failed".to_owned(), "bad"),
        Some(s) if s == "retrying" => (s, "warn"),
        Some(s) => (s, ""),
        None if r.routed => ("queued".to_owned(), "warn"),
        None => ("not sent".to_owned(), ""),
    };
    Outcome { word, class }
}

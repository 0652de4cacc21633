//! Destinations: the list with status, create and edit per kind (inline validation from the
//! core's 422s; secrets write-only, shown as fingerprint and last 4), pause and resume, a test
//! event with the destination's answer, replay of dead letters, and the delivery log.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};
use tracklayer_core::ports::{DeliveryQuery, DeliveryStatusKind};

use super::destination_form::{self as form, all_kinds, Input};
use super::label;
use crate::admin::delivery_log::Delivery;
use crate::admin::destinations::{Destination, DestinationPatch, NewDestination, TestResult};
use crate::console::csrf::{Action, Fields};
use crate::console::handler::{after, ObjectPage, OnObject, OrFailure};
use crate::console::session::Me;
use crate::console::view::{done_page, html, page, see_other, when, Failure, Shell};
use crate::console::ConsoleState;

const PURPOSES: [&str; 6] = [
    "advertising",
    "analytics",
    "marketing",
    "personalization",
    "functional",
    "necessary",
];

#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
    kind: Option<String>,
    status: Option<String>,
}

struct Listed {
    d: Destination,
    kind: &'static str,
    target: String,
}

#[derive(Template)]
#[template(path = "console/destinations.html")]
struct List {
    shell: Shell,
    rows: Vec<Listed>,
}

/// `GET /destinations`.
pub async fn list(State(s): State<ConsoleState>, me: Me, Query(q): Query<Done>) -> Response {
    let rows = match s.admin().destinations(&me.principal).await {
        Ok(list) => list
            .into_iter()
            .map(Destination::from)
            .map(listed)
            .collect(),
        Err(e) => return Failure::of(&s, e).page(),
    };
    page(&List {
        shell: Shell::new(&me, "destinations", "Destinations").done(q.done.as_deref()),
        rows,
    })
}

fn listed(d: Destination) -> Listed {
    let key = kind_routing(&label(&d.kind))[0];
    Listed {
        kind: form::kind_label(&label(&d.kind)),
        target: d
            .config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        d,
    }
}

/// A destination's page (or the new-destination form): everything it shows.
#[derive(Template)]
#[template(path = "console/destination.html")]
struct Detail {
    shell: Shell,
    /// `None` for a new destination.
    d: Option<Destination>,
    kind: String,
    kind_label: &'static str,
    kinds: Vec<(&'static str, &'static str)>,
    name: String,
    name_error: String,
    inputs: Vec<Input>,
    purposes: Vec<(&'static str, bool)>,
    purposes_error: String,
    events_mode: String,
    events_names: String,
    events_error: String,
    endpoint: String,
    endpoint_error: String,
    deliveries: Vec<Delivery>,
    status_filter: String,
    test: Option<TestResult>,
}

impl Detail {
    fn new(me: &Me, kind: &str, d: Option<Destination>, posted: Option<&Fields>) -> Self {
        let title = d
            .as_ref()
            .map_or("New destination".into(), |d| d.name.clone());
        let routing = kind_routing(kind);
        let inputs = form::inputs(kind, d.as_ref(), posted, routing);
        let (events_mode, events_names) = match (posted, d.as_ref().map(|d| &d.events)) {
            (Some(f), _) => (
                f.get("events_mode").to_owned(),
                f.get("events_names").to_owned(),
            ),
            (None, Some(e)) => filter_text(e),
            (None, None) => ("all".into(), String::new()),
        };
        let chosen: Vec<String> = match (posted, d.as_ref()) {
            (Some(f), _) => f.all("consent_purposes"),
            (None, Some(d)) => d.consent_purposes.clone(),
            (None, None) => default_purposes(kind),
        };
        Self {
            shell: Shell::new(me, "destinations", title),
            name: posted
                .map(|f| f.get("name").to_owned())
                .or_else(|| d.as_ref().map(|d| d.name.clone()))
                .unwrap_or_default(),
            endpoint: posted
                .map(|f| f.get("endpoint").to_owned())
                .or_else(|| d.as_ref().and_then(|d| d.endpoint.clone()))
                .unwrap_or_default(),
            kind_label: form::kind_label(kind),
            kind: kind.to_owned(),
            kinds: all_kinds().map(|k| (k.0, k.1)).collect(),
            inputs,
            purposes: PURPOSES
                .iter()
                .map(|p| (*p, chosen.iter().any(|c| c == p)))
                .collect(),
            events_mode,
            events_names,
            d,
            name_error: String::new(),
            purposes_error: String::new(),
            events_error: String::new(),
            endpoint_error: String::new(),
            deliveries: Vec::new(),
            status_filter: String::new(),
            test: None,
        }
    }

    /// Puts a refused form's error beside its field (else above the form).
    fn failed(mut self, f: &Failure) -> Response {
        let field = f.field.clone().unwrap_or_default();
        let detail = f.detail.clone();
        let slot = match field.as_str() {
            "name" => Some(&mut self.name_error),
            "endpoint" => Some(&mut self.endpoint_error),
            "events" => Some(&mut self.events_error),
            s if s.starts_with("consent_purposes") => Some(&mut self.purposes_error),
            _ => self
                .inputs
                .iter_mut()
                .find(|i| i.name == field)
                .map(|i| &mut i.error),
        };
        match slot {
            Some(slot) => *slot = detail,
            None => self.shell.error = Some(f.message()),
        }
        html(f.status, &self)
    }
}

/// The kind's routing settings, as the core states them (`url` for an unknown kind).
fn kind_routing(kind: &str) -> &'static [&'static str] {
    kind.parse::<tracklayer_core::destination::DestinationKind>()
        .map_or(&["url"], |k| k.routing_config())
}

/// The kind's default consent purposes, as the core states them.
fn default_purposes(kind: &str) -> Vec<String> {
    kind.parse::<tracklayer_core::destination::DestinationKind>()
        .map(|k| k.default_purposes().iter().map(label).collect())
        .unwrap_or_default()
}

fn filter_text(e: &crate::admin::destinations::EventFilter) -> (String, String) {
    use crate::admin::destinations::EventFilter as F;
    match e {
        F::All => ("all".into(), String::new()),
        F::Allow(n) => (
            "allow".into(),
            n.iter().cloned().collect::<Vec<_>>().join("\n"),
        ),
        F::Deny(n) => (
            "deny".into(),
            n.iter().cloned().collect::<Vec<_>>().join("\n"),
        ),
    }
}

/// `GET /destinations/new?kind=…`.
pub async fn new_form(me: Me, Query(q): Query<Done>) -> Response {
    let kind = q.kind.unwrap_or_else(|| "webhook".into());
    if !all_kinds().any(|k| k.0 == kind) {
        return Failure::not_found("destination kind").page();
    }
    page(&Detail::new(&me, &kind, None, None))
}

/// `POST /destinations`: the form as the admin API's `NewDestination`, then core's use case.
pub async fn create(State(s): State<ConsoleState>, Action { me, form: f }: Action) -> Response {
    let kind = f.get("kind").to_owned();
    let view = Detail::new(&me, &kind, None, Some(&f));
    let (config, secrets) = form::objects(&f, &view.inputs);
    let mut body = Map::new();
    body.insert("name".into(), f.get("name").into());
    body.insert("kind".into(), kind.clone().into());
    body.insert("config".into(), config.into());
    body.insert("secrets".into(), secrets.into());
    body.insert("consent_purposes".into(), f.all("consent_purposes").into());
    body.insert("events".into(), form::events(&f));
    if let Some(e) = f.opt("endpoint") {
        body.insert("endpoint".into(), e.into());
    }
    let spec = serde_json::from_value::<NewDestination>(Value::Object(body))
        .map_err(|e| Failure::invalid("kind", e.to_string()))
        .and_then(|n| n.parse().or_failure(&s));
    let created = match spec {
        Ok(spec) => s.admin().create_destination(&me.principal, spec).await,
        Err(f) => return view.failed(&f),
    };
    match created {
        Ok(d) => see_other(&format!("/destinations/{}?done=destination-created", d.id)),
        Err(e) => view.failed(&Failure::of(&s, e)),
    }
}

/// `GET /destinations/{id}?status=…`.
pub async fn detail(ObjectPage { s, me, id }: ObjectPage, Query(q): Query<Done>) -> Response {
    let status = q.status.unwrap_or_default();
    done_page(
        load(&s, &me, &id, None, &status).await,
        q.done.as_deref(),
        |v| &mut v.shell,
    )
}

async fn load(
    s: &ConsoleState,
    me: &Me,
    id: &str,
    posted: Option<&Fields>,
    status: &str,
) -> Result<Detail, Failure> {
    let d = s
        .admin()
        .destination(&me.principal, id)
        .await
        .map(Destination::from)
        .or_failure(s)?;
    let mut view = Detail::new(me, &label(&d.kind), Some(d), posted);
    let query = DeliveryQuery {
        statuses: DeliveryStatusKind::parse(status).into_iter().collect(),
        since: None,
        until: None,
        after: None,
        limit: 50,
    };
    view.deliveries = s
        .admin()
        .delivery_log(&me.principal, id, query)
        .await
        .or_failure(s)?
        .records
        .into_iter()
        .map(Delivery::from)
        .collect();
    view.status_filter = status.to_owned();
    Ok(view)
}

/// `POST /destinations/{id}`: the changed fields as the admin API's `DestinationPatch`.
pub async fn update(OnObject { s, id, me, form: f }: OnObject) -> Response {
    let view = match load(&s, &me, &id, Some(&f), "").await {
        Ok(v) => v,
        Err(f) => return f.page(),
    };
    let Some(current) = view.d.clone() else {
        return Failure::not_found("destination").page();
    };
    let body = patch_body(&current, &f, &view.inputs);
    let patch = serde_json::from_value::<DestinationPatch>(Value::Object(body))
        .map_err(|e| Failure::invalid("config", e.to_string()))
        .and_then(|p| p.parse().or_failure(&s));
    let saved = match patch {
        Ok(patch) => {
            s.admin()
                .update_destination(&me.principal, &id, patch)
                .await
        }
        Err(f) => return view.failed(&f),
    };
    match saved {
        Ok(_) => see_other(&format!("/destinations/{id}?done=destination-saved")),
        Err(e) => view.failed(&Failure::of(&s, e)),
    }
}

/// Only what the form changed, so that an editor's save never touches an admin's field.
fn patch_body(current: &Destination, f: &Fields, inputs: &[Input]) -> Map<String, Value> {
    let mut body = Map::new();
    if f.get("name") != current.name {
        body.insert("name".into(), f.get("name").into());
    }
    let (config, secrets) = form::objects(f, inputs);
    let mut merged = match &current.config {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let mut changed = false;
    for input in inputs.iter().filter(|i| !i.secret) {
        let key = input.name.trim_start_matches("config.");
        let new = config.get(key).cloned();
        if new.as_ref() != current.config.get(key) {
            changed = true;
            match new {
                Some(v) => merged.insert(key.to_owned(), v),
                None => merged.remove(key),
            };
        }
    }
    if changed {
        body.insert("config".into(), merged.into());
    }
    if !secrets.is_empty() {
        body.insert("secrets".into(), secrets.into());
    }
    let purposes = f.all("consent_purposes");
    if f.checked("purposes_shown") && purposes != current.consent_purposes {
        body.insert("consent_purposes".into(), purposes.into());
    }
    let events = form::events(f);
    if serde_json::to_value(&current.events).ok().as_ref() != Some(&events) {
        body.insert("events".into(), events);
    }
    let endpoint = f.opt("endpoint");
    if endpoint != current.endpoint {
        body.insert("endpoint".into(), endpoint.map_or(Value::Null, Value::from));
    }
    body
}

/// `POST /destinations/{id}/pause`.
pub async fn pause(a: OnObject) -> Response {
    set_paused(a, true, "destination-paused").await
}

/// `POST /destinations/{id}/resume`.
pub async fn resume(a: OnObject) -> Response {
    set_paused(a, false, "destination-resumed").await
}

async fn set_paused(OnObject { s, id, me, .. }: OnObject, paused: bool, done: &str) -> Response {
    let set = s.admin().set_paused(&me.principal, &id, paused).await;
    after(&s, set, &format!("/destinations/{id}?done={done}"))
}

/// `POST /destinations/{id}/test`: sends a synthetic event and shows the answer.
pub async fn test(OnObject { s, id, me, .. }: OnObject) -> Response {
    let result = s.tester().send_audited(s.admin(), &me.principal, &id).await;
    match (result, load(&s, &me, &id, None, "").await) {
        (Ok(r), Ok(mut view)) => {
            view.test = Some(r.into());
            page(&view)
        }
        (Err(e), Ok(mut view)) => {
            view.shell.error = Some(Failure::of(&s, e).message());
            html(StatusCode::CONFLICT, &view)
        }
        (_, Err(f)) => f.page(),
    }
}

/// `POST /destinations/{id}/replay`: every dead letter back to the queue.
pub async fn replay(OnObject { s, id, me, .. }: OnObject) -> Response {
    let replayed = s.admin().replay(&me.principal, &id, None, None).await;
    after(&s, replayed, &format!("/destinations/{id}?done=replayed"))
}

/// `POST /destinations/{id}/delete` (admin).
pub async fn delete(OnObject { s, id, me, .. }: OnObject) -> Response {
    let deleted = s.admin().delete_destination(&me.principal, &id).await;
    after(&s, deleted, "/destinations?done=destination-deleted")
}

impl Detail {
    /// A time, for the template.
    fn at(&self, t: &time::OffsetDateTime) -> String {
        when(*t)
    }

    /// A delivery's status name, for the template.
    fn state(&self, d: &Delivery) -> String {
        label(&d.status)
    }

    fn outcome(&self, t: &TestResult) -> String {
        label(&t.outcome)
    }
}

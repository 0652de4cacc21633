//! Event traces: wire types and handler.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use tracklayer_core as tl;
use utoipa::ToSchema;

use super::deliveries::Delivery;
use super::dto::{self, rfc3339, DestinationKind};
use super::extract::{Answer, Call, Id};

/// One consent decision, with its reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentDecision {
    pub allowed: bool,
    pub reason: String,
}

/// Why an event did or did not go to a destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Routing {
    pub destination_id: String,
    pub kind: DestinationKind,
    /// Queued for delivery.
    pub routed: bool,
    pub consent: ConsentDecision,
    /// Why it was not routed although consent allowed it.
    pub skipped: Option<String>,
}

dto::mirror! {
    /// The Segment call type of an event.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum EventType = tl::event::EventType { Track, Identify, Page, Screen, Group, Alias }
}

/// One event's story: received, consent decisions, deliveries. No raw identifier: only which
/// identifier fields the event carried.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTrace {
    /// `evt_…`
    pub event_id: String,
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub name: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Properties with every identifier removed.
    #[schema(value_type = Object)]
    pub properties: Value,
    /// Traits with every identifier removed.
    #[schema(value_type = Object)]
    pub traits: Value,
    /// The identifier fields the event carried (hashed at ingest; values never shown).
    pub identifier_fields: BTreeSet<String>,
    /// Identifier values dropped as invalid.
    pub invalid_identifiers: u32,
    pub routing: Vec<Routing>,
    pub deliveries: Vec<Delivery>,
}

pub(super) fn as_object(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o),
        _ => Value::Object(Default::default()),
    }
}

impl EventTrace {
    /// Each destination the event was considered for, with its delivery if there is one yet.
    pub fn per_destination(&self) -> impl Iterator<Item = (&Routing, Option<&Delivery>)> {
        self.routing.iter().map(|r| {
            let d = self
                .deliveries
                .iter()
                .find(|d| d.destination_id == r.destination_id);
            (r, d)
        })
    }
}

impl From<tl::admin::EventTrace> for EventTrace {
    fn from(t: tl::admin::EventTrace) -> Self {
        let e = t.event;
        let identifier_fields = e
            .hashed
            .values()
            .flat_map(|fields| fields.keys())
            .filter_map(|f| serde_json::to_value(f).ok())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        Self {
            event_id: e.event_id.to_string(),
            message_id: e.message_id.to_string(),
            event_type: e.event_type.into(),
            name: e.name,
            timestamp: e.timestamp,
            received_at: e.received_at,
            expires_at: e.expires_at,
            properties: as_object(e.properties),
            traits: as_object(e.traits),
            identifier_fields,
            invalid_identifiers: e.invalid_identifiers,
            routing: e
                .routing
                .into_iter()
                .map(|r| Routing {
                    destination_id: r.destination_id.to_string(),
                    kind: r.kind.into(),
                    routed: r.routed,
                    consent: ConsentDecision {
                        allowed: r.consent.allowed,
                        reason: r.consent.reason,
                    },
                    skipped: r.skipped,
                })
                .collect(),
            deliveries: t.deliveries.into_iter().map(Into::into).collect(),
        }
    }
}

/// One event's trace: received, consent decisions with reasons, per-destination delivery
/// status. No raw identifier.
#[utoipa::path(get, path = "/admin/v1/events/{id}", operation_id = "getEventTrace", tag = "events",
    params(("id" = String, Path, description = "The event's id (`evt_…`)", pattern = "^evt_[0-9a-f]{32}$")),
    responses((status = 200, description = "The trace", body = EventTrace)))]
pub async fn event_trace(Call(s, p): Call, Id(id): Id) -> Answer<EventTrace> {
    s.answer(s.admin().event_trace(&p, &id)).await
}

//! The ingest use case: parse → validate → normalize → hash → consent → route → store → queue.
//!
//! All privacy work happens here, before anything is stored or queued (DESIGN.md § Data flow).
//! [`prepare`] is pure (no I/O) so it can be benchmarked and tested alone; [`IngestService`]
//! wraps it with authentication, caching, storage and queueing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cache::TtlCache;
use crate::clock::{Clock, Ids};
use crate::consent::{self, Signals};
use crate::crypto::{aad, WorkspaceKeys};
use crate::destination::{Destination, DestinationKind};
use crate::error::{KeyError, StoreError};
use crate::event::{
    DeliveryItem, EventId, EventType, ForwardedConsent, MessageId, OperationalRecord, QueueBody,
    Routing, SealedFields, StoredEvent,
};
use crate::identity::{self, Field, Hints, Prepared, Profile};
use crate::keys::verifier::{Audience, AuthError, KeyVerifier, VerifierConfig};
use crate::keys::{ApiKeyRecord, KeyRefusal};
use crate::ports::{
    ControlReader, DeliveryQueue, EventStore, Keyring, NewEvent, Outgoing, SuppressionList,
};
use crate::workspace::{Region, Retention, Workspace, WorkspaceId};

mod gate;
mod inherit;

pub use gate::PrepareGate;
use inherit::Layered;
pub use inherit::{MAX_BATCH_OBJECT_KEYS, MAX_OBJECT_KEYS};
pub mod scrub;

/// Segment's limits: 32 KB per event, 500 KB per request, and our 2,500 events per batch.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
pub const MAX_BATCH_EVENTS: usize = 2_500;
/// Queue messages stay below SQS's 256 KiB limit with room for attributes.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 240 * 1024;

/// Which tracking endpoint a body arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Batch,
    Single(EventType),
}

/// Facts about the HTTP request that events fall back on.
#[derive(Clone)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
}

/// IP address and user-agent are personal data: `Debug` says only whether they are there.
impl std::fmt::Debug for RequestMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMeta")
            .field("ip", &self.ip.map(|_| "<redacted>"))
            .field(
                "user_agent",
                &self.user_agent.as_ref().map(|_| "<redacted>"),
            )
            .field("gpc", &self.gpc)
            .finish()
    }
}

/// One event of a request that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The field at fault, as a JSON pointer into the event (`/event`, `/timestamp`).
    pub field: String,
    pub detail: String,
}

/// What went wrong with a whole request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("{detail}")]
    Invalid { field: String, detail: String },
    /// An object of the batch-level `context` or `integrations` has too many keys.
    #[error("{field} has {keys} keys; at most {limit} are allowed")]
    TooManyKeys {
        field: String,
        keys: usize,
        limit: usize,
    },
    /// Every preparation slot is taken and the queue for them is full: retry shortly.
    #[error("the server is busy preparing other requests")]
    Busy,
    #[error("the request body is larger than {MAX_REQUEST_BYTES} bytes")]
    RequestTooLarge,
    #[error("event {index} is larger than {MAX_EVENT_BYTES} bytes")]
    EventTooLarge { index: usize },
    #[error("no event in the request was valid")]
    NothingValid { rejected: Vec<Rejection> },
    #[error("{}", .0.detail())]
    Unauthorized(KeyRefusal),
    #[error("this workspace lives in region {region}")]
    WrongRegion { region: Region },
    #[error("requests from this address are blocked by the workspace")]
    Blocked,
    #[error("too many failed authentications from this address or for this key")]
    Throttled { retry_after: std::time::Duration },
    #[error("the workspace encryption key is unavailable")]
    KeyUnavailable(#[source] KeyError),
    #[error("storage is unavailable")]
    Store(#[from] StoreError),
    #[error("the key service failed")]
    Key(#[source] KeyError),
}

/// A parsed request: raw items plus batch-level fields.
pub struct ParsedBody<'a> {
    pub items: Vec<&'a RawValue>,
    pub context: Option<Map<String, Value>>,
    pub integrations: Option<Map<String, Value>>,
    pub sent_at: Option<Value>,
    pub write_key: Option<String>,
    endpoint: Endpoint,
}

/// The raw events and batch context hold identifiers, and the write key is a secret:
/// `Debug` shows only their shape.
impl std::fmt::Debug for ParsedBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedBody")
            .field("endpoint", &self.endpoint)
            .field("items", &self.items.len())
            .field("context", &self.context.as_ref().map(|_| "<redacted>"))
            .field("write_key", &self.write_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBatch<'a> {
    #[serde(borrow, default)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    integrations: Option<Value>,
    #[serde(default)]
    sent_at: Option<Value>,
    #[serde(default)]
    write_key: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHead {
    #[serde(default)]
    write_key: Option<Value>,
}

fn object(v: Option<Value>, field: &str) -> Result<Option<Map<String, Value>>, IngestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(IngestError::Invalid {
            field: format!("/{field}"),
            detail: format!("{field} must be an object"),
        }),
    }
}

fn write_key(v: Option<Value>) -> Result<Option<String>, IngestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(IngestError::Invalid {
            field: "/writeKey".into(),
            detail: "writeKey must be a string".into(),
        }),
    }
}

/// Parses a (decompressed) request body. Item-level validation happens in [`prepare`].
pub fn parse_body(endpoint: Endpoint, body: &[u8]) -> Result<ParsedBody<'_>, IngestError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(IngestError::RequestTooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| IngestError::NotJson("the body is not UTF-8".into()))?;
    match endpoint {
        Endpoint::Batch => {
            let wire: WireBatch<'_> = serde_json::from_str(text).map_err(|e| {
                if e.is_data() {
                    IngestError::Invalid {
                        field: "/batch".into(),
                        detail: format!("the body must be an object with a batch array: {e}"),
                    }
                } else {
                    IngestError::NotJson(e.to_string())
                }
            })?;
            let items = wire.batch.ok_or_else(|| IngestError::Invalid {
                field: "/batch".into(),
                detail: "batch is required and must be an array of events".into(),
            })?;
            if items.is_empty() {
                return Err(IngestError::Invalid {
                    field: "/batch".into(),
                    detail: "batch must contain at least one event".into(),
                });
            }
            if items.len() > MAX_BATCH_EVENTS {
                return Err(IngestError::Invalid {
                    field: "/batch".into(),
                    detail: format!(
                        "batch has {} events; at most {MAX_BATCH_EVENTS} are allowed",
                        items.len()
                    ),
                });
            }
            if let Some(index) = items.iter().position(|i| i.get().len() > MAX_EVENT_BYTES) {
                if items.len() == 1 {
                    return Err(IngestError::EventTooLarge { index });
                }
            }
            // Read once per event of the batch: bounded here, once.
            for (field, value) in [
                ("/context", &wire.context),
                ("/integrations", &wire.integrations),
            ] {
                if let Some((field, keys)) = value
                    .as_ref()
                    .and_then(|v| inherit::oversized_object(v, field, MAX_BATCH_OBJECT_KEYS))
                {
                    return Err(IngestError::TooManyKeys {
                        field,
                        keys,
                        limit: MAX_BATCH_OBJECT_KEYS,
                    });
                }
            }
            Ok(ParsedBody {
                items,
                context: object(wire.context, "context")?,
                integrations: object(wire.integrations, "integrations")?,
                sent_at: wire.sent_at,
                write_key: write_key(wire.write_key)?,
                endpoint,
            })
        }
        Endpoint::Single(_) => {
            let raw: &RawValue =
                serde_json::from_str(text).map_err(|e| IngestError::NotJson(e.to_string()))?;
            if !raw.get().trim_start().starts_with('{') {
                return Err(IngestError::Invalid {
                    field: "/".into(),
                    detail: "the body must be a JSON object".into(),
                });
            }
            if raw.get().len() > MAX_EVENT_BYTES {
                return Err(IngestError::EventTooLarge { index: 0 });
            }
            let head: WireHead =
                serde_json::from_str(raw.get()).map_err(|e| IngestError::NotJson(e.to_string()))?;
            Ok(ParsedBody {
                items: vec![raw],
                context: None,
                integrations: None,
                sent_at: None,
                write_key: write_key(head.write_key)?,
                endpoint,
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(default)]
    message_id: Option<Value>,
    #[serde(default)]
    user_id: Option<Value>,
    #[serde(default)]
    anonymous_id: Option<Value>,
    #[serde(default)]
    previous_id: Option<Value>,
    #[serde(default)]
    group_id: Option<Value>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    traits: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    integrations: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    original_timestamp: Option<Value>,
    #[serde(default)]
    sent_at: Option<Value>,
}

/// Everything [`prepare`] needs besides the body: resolved workspace, keys and request facts.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub workspace: &'a Workspace,
    pub destinations: &'a [Destination],
    pub keys: &'a WorkspaceKeys,
    pub ids: &'a dyn Ids,
    pub meta: &'a RequestMeta,
    pub received_at: OffsetDateTime,
}

impl std::fmt::Debug for dyn Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ids")
    }
}

/// The outcome of the pure part of ingest.
#[derive(Debug, Default)]
pub struct PreparedBatch {
    pub events: Vec<NewEvent>,
    /// Per accepted event (same order as `events`): its items, by destination index.
    pub items: Vec<Vec<(usize, DeliveryItem)>>,
    pub rejected: Vec<Rejection>,
    pub invalid_identifiers: u32,
    /// Valid events that repeated the messageId of an earlier event of the same request:
    /// answered as accepted duplicates, not kept.
    pub duplicates: usize,
}

struct Fail(String, String);

fn fail(field: &str, detail: impl Into<String>) -> Fail {
    Fail(field.to_owned(), detail.into())
}

/// Validates, normalizes, hashes, decides and routes every event of a parsed request.
pub fn prepare(p: &Pipeline<'_>, body: &ParsedBody<'_>) -> PreparedBatch {
    let mut out = PreparedBatch {
        events: Vec::with_capacity(body.items.len()),
        items: Vec::with_capacity(body.items.len()),
        ..Default::default()
    };
    let mut seen: HashSet<String> = HashSet::with_capacity(body.items.len());
    let purposes: Vec<_> = p
        .destinations
        .iter()
        .map(|d| d.consent_purposes.clone())
        .collect();
    for (index, raw) in body.items.iter().enumerate() {
        let mut message_id = None;
        let result = prepare_one(p, body, raw, &purposes, &mut message_id);
        match result {
            Ok((event, items, invalid)) => {
                // The same messageId twice in one request: the first wins, like a retry.
                if !seen.insert(event.event.message_id.as_str().to_owned()) {
                    out.duplicates += 1;
                    continue;
                }
                out.invalid_identifiers += invalid;
                out.events.push(event);
                out.items.push(items);
            }
            Err(Fail(field, detail)) => out.rejected.push(Rejection {
                index,
                message_id,
                field,
                detail,
            }),
        }
    }
    out
}

fn as_id(v: &Option<Value>, field: &str) -> Result<Option<String>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() > 512 => Err(fail(field, "must be at most 512 bytes")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(fail(field, "must be a string")),
    }
}

fn as_object(v: Option<Value>, field: &str) -> Result<Map<String, Value>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(fail(field, "must be an object")),
    }
}

fn as_time(v: &Option<Value>, field: &str) -> Result<Option<OffsetDateTime>, Fail> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| {
            fail(
                field,
                "must be an ISO-8601 date-time (2024-05-01T12:00:00Z)",
            )
        }),
        Some(_) => Err(fail(field, "must be an ISO-8601 date-time string")),
    }
}

/// RFC 3339, or ISO-8601 without an offset (taken as UTC), like Segment accepts.
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let with_z = format!("{s}Z");
    OffsetDateTime::parse(&with_z, &Rfc3339).ok()
}

/// An event's own object, at most [`MAX_OBJECT_KEYS`] keys.
fn bounded_object(v: Option<Value>, field: &str) -> Result<Map<String, Value>, Fail> {
    let m = as_object(v, field)?;
    if m.len() > MAX_OBJECT_KEYS {
        return Err(fail(
            field,
            format!(
                "has {} keys; at most {MAX_OBJECT_KEYS} are allowed",
                m.len()
            ),
        ));
    }
    Ok(m)
}

type PreparedOne = (NewEvent, Vec<(usize, DeliveryItem)>, u32);

fn prepare_one(
    p: &Pipeline<'_>,
    body: &ParsedBody<'_>,
    raw: &RawValue,
    purposes: &[Vec<consent::Purpose>],
    message_id_out: &mut Option<String>,
) -> Result<PreparedOne, Fail> {
    if raw.get().len() > MAX_EVENT_BYTES {
        // Still name the event's messageId, so the client can tell which one it was.
        #[derive(Deserialize)]
        struct WireId {
            #[serde(rename = "messageId", default)]
            message_id: Option<Value>,
        }
        if let Ok(WireId {
            message_id: Some(Value::String(id)),
        }) = serde_json::from_str(raw.get())
        {
            if MessageId::parse(&id).is_ok() {
                *message_id_out = Some(id);
            }
        }
        return Err(fail(
            "/",
            format!("event is larger than {MAX_EVENT_BYTES} bytes"),
        ));
    }
    let wire: WireMessage = serde_json::from_str(raw.get()).map_err(|e| {
        let detail = if e.is_data() {
            format!("event must be an object: {e}")
        } else {
            format!("event is not valid JSON: {e}")
        };
        fail("/", detail)
    })?;

    // messageId first, so that every later rejection can name it.
    let message_id = match as_id(&wire.message_id, "/messageId")? {
        Some(s) => {
            *message_id_out = Some(s.clone());
            MessageId::parse(&s).map_err(|d| fail("/messageId", d))?
        }
        None => MessageId::generated(p.ids.uuid_v7(p.received_at)),
    };

    let event_type = match (&wire.kind, body.endpoint) {
        (None | Some(Value::Null), Endpoint::Single(t)) => t,
        (None | Some(Value::Null), Endpoint::Batch) => {
            return Err(fail("/type", "type is required in a batch"))
        }
        (Some(Value::String(s)), endpoint) => {
            let t: EventType = s.parse().map_err(|_| {
                fail(
                    "/type",
                    "type must be one of track, identify, page, screen, group, alias",
                )
            })?;
            if let Endpoint::Single(expected) = endpoint {
                if t != expected {
                    return Err(fail(
                        "/type",
                        format!("type {t} was sent to the /v1/{expected} endpoint"),
                    ));
                }
            }
            t
        }
        (Some(_), _) => return Err(fail("/type", "type must be a string")),
    };

    let user_id = as_id(&wire.user_id, "/userId")?;
    let anonymous_id = as_id(&wire.anonymous_id, "/anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(fail("/userId", "userId or anonymousId is required"));
    }

    let name = match event_type {
        EventType::Track => match &wire.event {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => Some(s.clone()),
            Some(Value::String(s)) if s.len() > 200 => {
                return Err(fail("/event", "event must be at most 200 bytes"))
            }
            _ => {
                return Err(fail(
                    "/event",
                    "event is required for track (a non-empty string)",
                ))
            }
        },
        EventType::Page | EventType::Screen => match &wire.name {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= 200 => Some(s.clone()),
            Some(_) => return Err(fail("/name", "name must be a string of at most 200 bytes")),
        },
        EventType::Alias => {
            if as_id(&wire.previous_id, "/previousId")?.is_none() {
                return Err(fail("/previousId", "previousId is required for alias"));
            }
            None
        }
        EventType::Group => {
            if as_id(&wire.group_id, "/groupId")?.is_none() {
                return Err(fail("/groupId", "groupId is required for group"));
            }
            None
        }
        EventType::Identify => None,
    };
    // A name is stored, shown and sent in the clear: one that holds an identifier is refused
    // rather than rewritten, so the client learns to send it as a trait.
    if let Some(kind) = name.as_deref().and_then(scrub::find) {
        let (field, what) = match event_type {
            EventType::Track => ("/event", "event"),
            _ => ("/name", "name"),
        };
        return Err(fail(
            field,
            format!(
                "{what} must not contain {}: names are stored and sent in the clear; send identifiers as traits",
                match kind {
                    scrub::Kind::Email => "an email address",
                    scrub::Kind::Phone => "a phone number",
                    scrub::Kind::Ip => "an IP address",
                }
            ),
        ));
    }

    let properties = bounded_object(wire.properties, "/properties")?;
    let traits = bounded_object(wire.traits, "/traits")?;
    let own_context = bounded_object(wire.context, "/context")?;
    let own_integrations = bounded_object(wire.integrations, "/integrations")?;
    // The batch's fields are read through, not copied into each event (see `inherit`).
    let context = Layered::new(&own_context, body.context.as_ref());
    let integrations = Layered::new(&own_integrations, body.integrations.as_ref());

    // Segment's skew correction: timestamp = receivedAt − (sentAt − originalTimestamp).
    let sent_at = match as_time(&wire.sent_at, "/sentAt")? {
        Some(t) => Some(t),
        None => as_time(&body.sent_at, "/sentAt")
            .map_err(|Fail(_, d)| fail("/sentAt", format!("batch {d}")))?,
    };
    let original = as_time(&wire.original_timestamp, "/originalTimestamp")?;
    let explicit = as_time(&wire.timestamp, "/timestamp")?;
    let timestamp = match (original, sent_at, explicit) {
        (Some(orig), Some(sent), _) => p.received_at - (sent - orig),
        (_, _, Some(ts)) => ts,
        (Some(orig), None, None) => orig,
        (None, _, None) => p.received_at,
    };
    let timestamp = crate::clock::truncate_millis(timestamp);

    let mut ids = RawIdentifiers::extract(&traits, &context, &properties, user_id.as_deref());
    // Scrubbed before hashing: whole emails and phone numbers found by value under other
    // names become the event's own when it named none.
    let mut found = scrub::Found::default();
    let scrubbed_properties = scrub::scrub(Value::Object(properties), false, &mut found);
    let scrubbed_traits = scrub::scrub(Value::Object(traits), true, &mut found);
    if !(ids.fields.contains_key(&Field::Email) && ids.fields.contains_key(&Field::Phone)) {
        if let Some(ctx_traits) = context.get("traits") {
            found.offer_all(ctx_traits);
        }
    }
    if let Some(email) = found.email {
        ids.fields.entry(Field::Email).or_insert(email);
    }
    if let Some(phone) = found.phone {
        ids.fields.entry(Field::Phone).or_insert(phone);
    }
    let signals = Signals::read_with(|key| context.get(key), p.meta.gpc);
    let ip = context
        .get("ip")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| p.meta.ip.map(|ip| ip.to_string()));
    let user_agent = context
        .get("userAgent")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| p.meta.user_agent.clone());
    let page_url = context
        .get("page")
        .and_then(|pg| pg.get("url"))
        .and_then(Value::as_str)
        .map(|url| scrub::strip_url(url).into_owned());

    // Consent and routing, per destination.
    let filter_name = name.as_deref().unwrap_or(event_type.as_str());
    let event_id = EventId(p.ids.uuid_v7(p.received_at));
    let mut routing = Vec::with_capacity(p.destinations.len());
    let mut routed_profiles: BTreeSet<Profile> = BTreeSet::new();
    for (d, needs) in p.destinations.iter().zip(purposes) {
        let decision = consent::decide(&p.workspace.consent, p.workspace.region, &signals, needs);
        let skipped = if !decision.allowed {
            None
        } else if !supports(d.kind, event_type) {
            Some(format!("{} does not receive {event_type} calls", d.kind))
        } else if !d.events.admits(filter_name) {
            Some(format!(
                "event {filter_name:?} is filtered out by the destination's event list"
            ))
        } else if !integration_allows(&integrations, d) {
            Some("turned off by the event's integrations object".to_owned())
        } else {
            None
        };
        let routed = decision.allowed && skipped.is_none();
        if routed {
            routed_profiles.insert(d.kind.profile());
        }
        routing.push(Routing {
            destination_id: d.id.clone(),
            kind: d.kind,
            routed,
            consent: decision,
            skipped,
        });
    }

    // Normalize and hash once per profile that some routed destination needs.
    let hints = Hints {
        country: ids.fields.get(&Field::Country).map(String::as_str),
        received_at: Some(p.received_at),
    };
    let mut hashed: BTreeMap<Profile, BTreeMap<Field, String>> = BTreeMap::new();
    let mut plain: BTreeMap<Profile, BTreeMap<Field, String>> = BTreeMap::new();
    let mut invalid: BTreeSet<Field> = BTreeSet::new();
    for profile in &routed_profiles {
        let h = hashed.entry(*profile).or_default();
        for (field, raw_value) in &ids.fields {
            match identity::prepare(*profile, *field, raw_value, hints) {
                Ok(Prepared::Hashed(digest)) => {
                    h.insert(*field, digest);
                }
                Ok(Prepared::Plain(v)) => {
                    plain.entry(*profile).or_default().insert(*field, v);
                }
                // A field the profile does not take (GA4 has no external id) is left out,
                // not counted as invalid.
                Err(rejected) if rejected.reason == identity::NOT_SUPPORTED => {}
                Err(_) => {
                    invalid.insert(*field);
                }
            }
        }
    }

    // The internal subject index: keyed HMAC over canonical forms, never a bare hash.
    let mut subjects = Vec::with_capacity(4);
    for field in [Field::Email, Field::Phone, Field::ExternalId] {
        if let Some(raw_value) = ids.fields.get(&field) {
            if let Some(canonical) = identity::canonical_for_index(field, raw_value, hints) {
                subjects.push(p.keys.subject_index(field_tag(field), &canonical));
            }
        }
    }
    if let Some(anon) = &anonymous_id {
        subjects.push(p.keys.subject_index("anonymous_id", anon.trim()));
    }
    subjects.sort();
    subjects.dedup();
    // Carried by each queued item, so that deliver drops it if the subject is erased first.
    let suppression: Vec<String> = subjects
        .iter()
        .map(|s| crate::dsr::suppression_token(s))
        .collect();

    // The event id as the associated data of its sealed values spells it, formatted once.
    let event_key = event_id.to_string();
    let operational = if ip.is_some() || user_agent.is_some() {
        let plaintext =
            serde_json::to_vec(&serde_json::json!({"ip": ip, "user_agent": user_agent}))
                .unwrap_or_default();
        Some(OperationalRecord {
            workspace_id: p.workspace.id.clone(),
            event_id,
            sealed: p.keys.seal(
                nonce(p.ids),
                &aad("op", &p.workspace.id, &event_key),
                &plaintext,
            ),
            expires_at: p.received_at + Retention::operational(),
        })
    } else {
        None
    };

    let forwarded = ForwardedConsent {
        ad_user_data: signals.ad_user_data,
        ad_personalization: signals.ad_personalization,
    };
    let mut items = Vec::new();
    // What is sealed differs between destinations only by the plain values (Google's address
    // fields): serialize the rest once, and again only for a profile that has plain values.
    let mut sealed_fields = SealedFields {
        ip,
        user_agent,
        user_id: user_id.clone(),
        anonymous_id,
        page_url,
        click_ids: ids.click_ids,
        plain: BTreeMap::new(),
    };
    let mut common_plaintext: Option<Vec<u8>> = None;
    for (index, (d, r)) in p.destinations.iter().zip(&routing).enumerate() {
        if !r.routed {
            continue;
        }
        let profile = d.kind.profile();
        let item_aad = aad(
            "item",
            &p.workspace.id,
            &[d.id.as_str(), ":", &event_key].concat(),
        );
        let own_plaintext;
        let plaintext = match plain.get(&profile) {
            Some(values) if !values.is_empty() => {
                sealed_fields.plain = values.clone();
                own_plaintext = serde_json::to_vec(&sealed_fields).unwrap_or_default();
                sealed_fields.plain = BTreeMap::new();
                &own_plaintext
            }
            _ => common_plaintext
                .get_or_insert_with(|| serde_json::to_vec(&sealed_fields).unwrap_or_default()),
        };
        items.push((
            index,
            DeliveryItem {
                event_id,
                message_id: message_id.clone(),
                event_type,
                name: name.clone(),
                timestamp,
                properties: scrubbed_properties.clone(),
                user_data: hashed.get(&profile).cloned().unwrap_or_default(),
                consent: forwarded,
                sealed: Some(p.keys.seal(nonce(p.ids), &item_aad, plaintext)),
                suppression: suppression.clone(),
            },
        ));
    }

    let vendor_ids = crate::dsr::VendorIds::seal(
        &crate::dsr::VendorIds::of(&sealed_fields, &routing),
        p.keys,
        nonce(p.ids),
        &p.workspace.id,
        &event_key,
    );
    let event = StoredEvent {
        workspace_id: p.workspace.id.clone(),
        event_id,
        message_id,
        event_type,
        name,
        timestamp,
        received_at: p.received_at,
        expires_at: p.received_at + p.workspace.retention.events(),
        properties: scrubbed_properties,
        traits: scrubbed_traits,
        hashed,
        subjects,
        routing,
        invalid_identifiers: invalid.len() as u32,
        vendor_ids,
    };
    let invalid_count = event.invalid_identifiers;
    Ok((
        NewEvent {
            event,
            operational,
            dedup_until: p.received_at + Retention::dedup(),
        },
        items,
        invalid_count,
    ))
}

fn nonce(ids: &dyn Ids) -> [u8; 12] {
    let mut n = [0u8; 12];
    ids.fill(&mut n);
    n
}

/// The tag under which a field enters the subject index.
pub fn field_tag(field: Field) -> &'static str {
    match field {
        Field::Email => "email",
        Field::Phone => "phone",
        Field::ExternalId => "external_id",
        Field::FirstName => "first_name",
        Field::LastName => "last_name",
        Field::City => "city",
        Field::State => "state",
        Field::Zip => "zip",
        Field::Country => "country",
        Field::Gender => "gender",
        Field::DateOfBirth => "date_of_birth",
    }
}

/// Segment's `integrations` object: `{"All": false, "Warehouse": true}`. A key matches a
/// destination by its name, id or kind, case-insensitively; a matching boolean wins, else
/// `All` (default true).
fn integration_allows(integrations: &Layered<'_>, d: &Destination) -> bool {
    let names = |k: &str| {
        k.eq_ignore_ascii_case(&d.name)
            || k == d.id.as_str()
            || k.eq_ignore_ascii_case(d.kind.as_str())
    };
    let mut all = true;
    for (k, v) in integrations.iter() {
        match v {
            Value::Bool(on) if names(k) => return *on,
            // Per-integration option objects mean "on".
            Value::Object(_) if names(k) => return true,
            Value::Bool(on) if k.eq_ignore_ascii_case("all") => all = *on,
            _ => {}
        }
    }
    all
}

/// Which calls a destination kind receives: ad and analytics APIs take events and page views;
/// webhooks take every call.
fn supports(kind: DestinationKind, t: EventType) -> bool {
    match kind {
        DestinationKind::Webhook => true,
        _ => matches!(t, EventType::Track | EventType::Page | EventType::Screen),
    }
}

/// Identifiers found in an event, raw. Dropped as soon as the event is prepared.
#[derive(Default)]
struct RawIdentifiers {
    fields: BTreeMap<Field, String>,
    click_ids: BTreeMap<String, String>,
}

/// Where each identifier may be found, by key, in traits, context.traits and properties.
const FIELD_KEYS: &[(Field, &[&str])] = &[
    (Field::Email, &["email"]),
    (
        Field::Phone,
        &[
            "phone",
            "phone_number",
            "phoneNumber",
            "mobile",
            "mobilePhone",
            "mobile_phone",
            "tel",
            "telephone",
            "cell",
            "cellPhone",
            "cell_phone",
        ],
    ),
    (Field::FirstName, &["firstName", "first_name"]),
    (Field::LastName, &["lastName", "last_name"]),
    (Field::City, &["city"]),
    (Field::State, &["state"]),
    (
        Field::Zip,
        &["postalCode", "postal_code", "zip", "zipCode", "zip_code"],
    ),
    (Field::Country, &["country"]),
    (Field::Gender, &["gender"]),
    (
        Field::DateOfBirth,
        &["birthday", "dob", "date_of_birth", "dateOfBirth"],
    ),
];

const CLICK_ID_KEYS: &[(&str, &[&str])] = &[
    ("fbp", &["fbp", "_fbp"]),
    ("fbc", &["fbc", "_fbc"]),
    ("gclid", &["gclid"]),
    ("ttclid", &["ttclid"]),
    ("ttp", &["ttp", "_ttp"]),
    ("client_id", &["client_id", "clientId", "ga_client_id"]),
];

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl RawIdentifiers {
    fn extract(
        traits: &Map<String, Value>,
        context: &Layered<'_>,
        properties: &Map<String, Value>,
        user_id: Option<&str>,
    ) -> Self {
        let empty = Map::new();
        let ctx_traits = context
            .get("traits")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // Each source with its `address` object, looked up once.
        let sources = [traits, ctx_traits, properties].map(|s| (s, s.get("address")));
        let mut out = RawIdentifiers::default();
        for (field, keys) in FIELD_KEYS {
            'found: for (source, address) in sources {
                for key in *keys {
                    let value = match source.get(*key) {
                        Some(direct) => Some(direct),
                        None => address.and_then(|a| a.get(*key)),
                    };
                    if let Some(v) = value.and_then(scalar) {
                        out.fields.insert(*field, v);
                        break 'found;
                    }
                }
            }
        }
        // Segment's `name` trait (or a full name under its own key), when first and last
        // names are not given separately.
        let full_name = [traits, ctx_traits]
            .into_iter()
            .flat_map(|s| ["name", "fullName", "full_name"].map(|k| s.get(k)))
            .chain(["fullName", "full_name"].map(|k| properties.get(k)))
            .find_map(|v| v.and_then(scalar));
        if let (Some(full), false) = (full_name, out.fields.contains_key(&Field::FirstName)) {
            let full = full.trim();
            let (first, last) = match full.rsplit_once(char::is_whitespace) {
                Some((first, last)) => (first.trim(), Some(last.trim())),
                None => (full, None),
            };
            out.fields.insert(Field::FirstName, first.to_owned());
            if let Some(last) = last {
                out.fields
                    .entry(Field::LastName)
                    .or_insert_with(|| last.to_owned());
            }
        }
        if let Some(uid) = user_id {
            out.fields.insert(Field::ExternalId, uid.to_owned());
        }
        for (name, keys) in CLICK_ID_KEYS {
            // A click id is sent as it is: one that holds an email or phone number is no
            // click id.
            let usable = |v: &String| scrub::find(v).is_none();
            let in_context = keys
                .iter()
                .find_map(|k| context.get(k).and_then(scalar).filter(usable));
            let found = in_context.or_else(|| {
                keys.iter()
                    .find_map(|k| properties.get(*k).and_then(scalar).filter(usable))
            });
            if let Some(v) = found {
                out.click_ids.insert((*name).to_owned(), v);
            }
        }
        out
    }
}

/// Packs the items of recorded events into queue messages: one per destination, split to stay
/// under `max_bytes`.
pub fn pack(
    workspace: &WorkspaceId,
    destinations: &[Destination],
    items: impl IntoIterator<Item = (usize, DeliveryItem)>,
    max_bytes: usize,
) -> Vec<Outgoing> {
    let mut per_dest: BTreeMap<usize, Packer> = BTreeMap::new();
    let mut properties = PropertiesJson::default();
    for (index, item) in items {
        per_dest
            .entry(index)
            .or_insert_with(|| Packer::new(workspace, &destinations[index], max_bytes))
            .push(item, &mut properties);
    }
    let mut out = Vec::new();
    for (index, packer) in per_dest {
        let d = &destinations[index];
        out.extend(
            packer
                .finish()
                .into_iter()
                .map(|body| outgoing(workspace, d, body)),
        );
    }
    out
}

/// Room that most items fit in (events are at most [`MAX_EVENT_BYTES`]).
const ITEM_ROOM: usize = 16 * 1024;

/// The queue message bodies of one destination, filled item by item: each item is written
/// straight into the body; one that overflows it moves to a new body.
struct Packer {
    head: String,
    max_bytes: usize,
    full: Vec<Vec<u8>>,
    body: Vec<u8>,
    count: usize,
}

impl Packer {
    fn new(workspace: &WorkspaceId, d: &Destination, max_bytes: usize) -> Self {
        let head = format!(
            r#"{{"v":{},"workspace_id":{},"destination_id":{},"kind":{},"items":["#,
            QueueBody::VERSION,
            serde_json::to_string(workspace.as_str()).expect("string"),
            serde_json::to_string(d.id.as_str()).expect("string"),
            serde_json::to_string(d.kind.as_str()).expect("string"),
        );
        Self {
            head,
            max_bytes,
            full: Vec::new(),
            body: Vec::with_capacity(max_bytes.min(64 * 1024)),
            count: 0,
        }
    }

    fn push(&mut self, item: DeliveryItem, properties: &mut PropertiesJson) {
        // Near the end of the buffer, make room for a whole message at once rather than
        // doubling step by step: each step copies the body and costs the allocator a sweep.
        if self.body.capacity() - self.body.len() < ITEM_ROOM {
            let whole = self.max_bytes.saturating_sub(self.body.len());
            self.body.reserve_exact(whole.max(ITEM_ROOM));
        }
        let before = self.body.len();
        if self.count == 0 {
            self.body.extend_from_slice(self.head.as_bytes());
        } else {
            self.body.push(b',');
        }
        let start = self.body.len();
        write_item_json(&mut self.body, item, properties);
        let json_len = self.body.len() - start;
        if self.count > 0 && before + json_len + 3 > self.max_bytes {
            // The message is full without this item: close it, and start the next with it.
            let json = self.body.split_off(start);
            self.body.truncate(before);
            self.body.extend_from_slice(b"]}");
            let mut next = Vec::with_capacity(self.max_bytes.min(64 * 1024));
            next.extend_from_slice(self.head.as_bytes());
            next.extend_from_slice(&json);
            self.full.push(std::mem::replace(&mut self.body, next));
            self.count = 1;
        } else {
            self.count += 1;
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if self.count > 0 {
            self.body.extend_from_slice(b"]}");
            self.full.push(self.body);
        }
        self.full
    }
}

/// The JSON of the last properties [`write_item_json`] wrote. The items of one event come one
/// after the other with equal properties, and properties are most of an item's bytes: each
/// event's are serialized once instead of once per destination, into a buffer reused from
/// event to event. (`Value` equality is order-sensitive for objects, as serialization is,
/// while serde_json's `preserve_order` feature stays off.)
#[derive(Default)]
struct PropertiesJson {
    value: Option<Value>,
    json: Vec<u8>,
}

impl PropertiesJson {
    fn of(&mut self, properties: Value) -> &[u8] {
        if self.value.as_ref() != Some(&properties) {
            self.json.clear();
            serde_json::to_writer(&mut self.json, &properties).expect("properties serialize");
            self.value = Some(properties);
        }
        &self.json
    }
}

/// The fields of a [`DeliveryItem`] before `properties`, as its derived `Serialize` writes them.
#[derive(Serialize)]
struct ItemHead<'a> {
    event_id: &'a EventId,
    message_id: &'a MessageId,
    event_type: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a String>,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
}

/// Appends exactly what `serde_json::to_vec(&item)` gives to `out`: head fields, the
/// properties' JSON (reused from the previous item when equal), the fields after them.
fn write_item_json(out: &mut Vec<u8>, mut item: DeliveryItem, properties: &mut PropertiesJson) {
    #[cfg(debug_assertions)]
    let (start, expected) = (
        out.len(),
        serde_json::to_vec(&item).expect("items serialize"),
    );
    let item_properties = std::mem::take(&mut item.properties);
    // No `..`: a field added to `DeliveryItem` must be written here too.
    let DeliveryItem {
        event_id,
        message_id,
        event_type,
        name,
        timestamp,
        properties: _,
        user_data,
        consent,
        sealed,
        suppression,
    } = &item;
    let head = ItemHead {
        event_id,
        message_id,
        event_type: *event_type,
        name: name.as_ref(),
        timestamp: *timestamp,
    };
    // `{"event_id":…,"timestamp":"…"}`, reopened: its `}` becomes `,"properties":…`.
    serde_json::to_writer(&mut *out, &head).expect("items serialize");
    let closing = out.pop();
    debug_assert_eq!(closing, Some(b'}'));
    out.extend_from_slice(b",\"properties\":");
    out.extend_from_slice(properties.of(item_properties));
    // The rest by hand: the digests and the base64 of `sealed` are most of it, and have
    // nothing to escape.
    out.extend_from_slice(b",\"user_data\":{");
    for (i, (field, value)) in user_data.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, field).expect("fields serialize");
        out.push(b':');
        write_json_str(out, value);
    }
    out.extend_from_slice(b"},\"consent\":");
    serde_json::to_writer(&mut *out, consent).expect("consent serializes");
    if let Some(sealed) = sealed {
        out.extend_from_slice(b",\"sealed\":");
        sealed.write_json(out);
    }
    if !suppression.is_empty() {
        out.extend_from_slice(b",\"sup\":[");
        for (i, token) in suppression.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, token);
        }
        out.push(b']');
    }
    out.push(b'}');
    #[cfg(debug_assertions)]
    assert_eq!(
        out[start..],
        expected[..],
        "write_item_json has drifted from DeliveryItem's serialization"
    );
}

/// A JSON string as serde_json writes it. serde_json escapes only `"`, `\\` and control
/// characters: a string with none of them (a hex digest) is copied as it is.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    }
}

fn outgoing(workspace: &WorkspaceId, d: &Destination, body: Vec<u8>) -> Outgoing {
    Outgoing {
        kind: d.kind,
        destination_id: d.id.clone(),
        workspace_id: workspace.clone(),
        body,
        delay: std::time::Duration::ZERO,
    }
}

/// What a request achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Valid events, duplicates included (they are answered as accepted).
    pub accepted: usize,
    /// Of those, how many were already seen within 24 h and so not stored or routed again.
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
    /// Identifier values dropped as invalid.
    pub invalid_identifiers: u32,
    /// Of the accepted, how many belonged to an erased subject: dropped, neither stored nor
    /// sent (data-subject erasure).
    pub suppressed: usize,
    /// Queue messages written.
    #[serde(skip)]
    pub queued_messages: usize,
}

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The residency region this deployment serves.
    pub region: Region,
    /// How long workspace settings and destinations are cached.
    pub settings_ttl: Duration,
    /// How long unwrapped data keys are cached (at most 5 minutes).
    pub data_key_ttl: Duration,
    pub max_queue_message_bytes: usize,
    /// Preparations at once (default: one per CPU).
    pub prepare_slots: usize,
    /// Requests that may wait for a preparation slot before the next is refused (503).
    pub prepare_queue: usize,
    /// Requests with at least this many bytes of events are prepared off the async workers.
    pub prepare_inline_below: usize,
}

impl IngestConfig {
    pub fn new(region: Region) -> Self {
        Self {
            region,
            settings_ttl: Duration::seconds(5),
            data_key_ttl: Duration::minutes(5),
            max_queue_message_bytes: MAX_QUEUE_MESSAGE_BYTES,
            prepare_slots: std::thread::available_parallelism().map_or(1, usize::from),
            prepare_queue: PrepareGate::DEFAULT_QUEUE,
            prepare_inline_below: PrepareGate::DEFAULT_INLINE_BELOW,
        }
    }
}

/// A workspace's settings and keys as ingest uses them, cached briefly.
#[derive(Debug)]
pub struct Snapshot {
    pub workspace: Workspace,
    pub destinations: Vec<Destination>,
    pub keys: WorkspaceKeys,
}

/// A workspace's suppression tokens.
type Suppressed = Arc<HashSet<String>>;

/// The ingest use case with its ports.
pub struct IngestService {
    control: Arc<dyn ControlReader>,
    events: Arc<dyn EventStore>,
    queue: Arc<dyn DeliveryQueue>,
    keyring: Arc<dyn Keyring>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    config: IngestConfig,
    verifier: Arc<KeyVerifier>,
    gate: PrepareGate,
    snapshots: TtlCache<WorkspaceId, Arc<Snapshot>>,
    data_keys: Mutex<HashMap<[u8; 32], (WorkspaceKeys, OffsetDateTime)>>,
    /// The suppression list of erased subjects, read with the workspace settings.
    suppressions: Option<Arc<dyn SuppressionList>>,
    suppressed: TtlCache<WorkspaceId, Suppressed>,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The ports ingest uses.
#[allow(missing_debug_implementations)]
pub struct IngestPorts {
    pub control: Arc<dyn ControlReader>,
    pub events: Arc<dyn EventStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub keyring: Arc<dyn Keyring>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
}

impl IngestService {
    pub fn new(ports: IngestPorts, config: IngestConfig) -> Self {
        let clock = ports.clock;
        Self {
            verifier: Arc::new(KeyVerifier::new(
                VerifierConfig::new(config.region),
                clock.clone(),
            )),
            snapshots: TtlCache::new(clock.clone(), config.settings_ttl, 10_000),
            suppressed: TtlCache::new(clock.clone(), config.settings_ttl, 10_000),
            gate: PrepareGate::new(
                config.prepare_slots,
                config.prepare_queue,
                config.prepare_inline_below,
            ),
            control: ports.control,
            events: ports.events,
            queue: ports.queue,
            keyring: ports.keyring,
            ids: ports.ids,
            data_keys: Mutex::new(HashMap::new()),
            suppressions: None,
            config,
            clock,
        }
    }

    /// Drops the events of erased subjects (data-subject requests). The workspace's list is
    /// read once per `settings_ttl` per process, like the settings: one read per workspace
    /// every few seconds instead of one per event, and a new suppression reaches every
    /// process within that TTL (the DSR service waits longer than it before deleting).
    pub fn with_suppressions(mut self, list: Arc<dyn SuppressionList>) -> Self {
        self.suppressions = Some(list);
        self
    }

    /// The workspace's suppression tokens, cached for `settings_ttl`.
    async fn suppressed(&self, ws: &WorkspaceId) -> Result<Suppressed, IngestError> {
        let Some(list) = &self.suppressions else {
            return Ok(Arc::default());
        };
        if let Some(set) = self.suppressed.get(ws) {
            return Ok(set);
        }
        let set: Suppressed = Arc::new(list.suppressed(ws).await?.into_iter().collect());
        self.suppressed.insert(ws.clone(), set.clone());
        Ok(set)
    }

    pub fn region(&self) -> Region {
        self.config.region
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Shares a key verifier with the admin API of the same process (`serve`): one set of
    /// failure counters per source IP and one cache of verified keys.
    pub fn with_verifier(mut self, verifier: Arc<KeyVerifier>) -> Self {
        self.verifier = verifier;
        self
    }

    /// Records write keys' last use there (at most once a minute per key): the one control
    /// write ingest makes. Call it after [`Self::with_verifier`], if both.
    pub fn with_key_usage(self, usage: Arc<dyn crate::ports::KeyUsage>) -> Self {
        self.verifier.record_usage_in(usage);
        self
    }

    /// The key verifier, for its counters.
    pub fn verifier(&self) -> &KeyVerifier {
        &self.verifier
    }

    /// Verifies an ingest write key, from an unknown address.
    pub async fn authenticate(&self, presented: &str) -> Result<ApiKeyRecord, IngestError> {
        self.authenticate_from(presented, None).await
    }

    /// Verifies an ingest write key sent from `ip` ([`KeyVerifier`]).
    pub async fn authenticate_from(
        &self,
        presented: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<ApiKeyRecord, IngestError> {
        self.verifier
            .verify(self.control.as_ref(), Audience::Tracking, presented, ip)
            .await
            .map_err(|e| match e {
                AuthError::Refused(refusal) => IngestError::Unauthorized(refusal),
                AuthError::WrongRegion(region) => IngestError::WrongRegion { region },
                AuthError::Blocked => IngestError::Blocked,
                AuthError::Throttled { retry_after } => IngestError::Throttled { retry_after },
                AuthError::Store(e) => IngestError::Store(e),
            })
    }

    /// The workspace's settings, destinations and keys, cached for a few seconds.
    pub async fn snapshot(&self, ws: &WorkspaceId) -> Result<Arc<Snapshot>, IngestError> {
        if let Some(snap) = self.snapshots.get(ws) {
            return Ok(snap);
        }
        let now = self.clock.now();
        let workspace = self
            .control
            .workspace(ws, now)
            .await?
            .ok_or(IngestError::Unauthorized(KeyRefusal::Unknown))?;
        // Closure revokes every key; a write key verified before it is refused as soon as
        // these settings or the key's record are read again.
        if workspace.is_closed() {
            return Err(IngestError::Unauthorized(KeyRefusal::Revoked));
        }
        if workspace.region != self.config.region {
            return Err(IngestError::WrongRegion {
                region: workspace.region,
            });
        }
        let destinations = self.control.destinations(ws).await?;
        let keys = self.workspace_keys(&workspace, now).await?;
        let snap = Arc::new(Snapshot {
            workspace,
            destinations,
            keys,
        });
        self.snapshots.insert(ws.clone(), snap.clone());
        Ok(snap)
    }

    async fn workspace_keys(
        &self,
        ws: &Workspace,
        now: OffsetDateTime,
    ) -> Result<WorkspaceKeys, IngestError> {
        let mut h = Sha256::new();
        h.update(ws.id.as_str().as_bytes());
        h.update(serde_json::to_vec(&ws.key_ref).unwrap_or_default());
        h.update(&ws.data_key.0);
        let cache_key: [u8; 32] = h.finalize().into();
        {
            let cache = self.data_keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((keys, at)) = cache.get(&cache_key) {
                if now - *at < self.config.data_key_ttl {
                    return Ok(keys.clone());
                }
            }
        }
        let data_key = self
            .keyring
            .unwrap_data_key(&ws.id, &ws.key_ref, &ws.data_key)
            .await
            .map_err(|e| match e {
                KeyError::Unavailable(_) => IngestError::KeyUnavailable(e),
                other => IngestError::Key(other),
            })?;
        let keys = WorkspaceKeys::new(&data_key);
        let mut cache = self.data_keys.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.config.data_key_ttl;
        cache.retain(|_, (_, at)| now - *at < ttl);
        cache.insert(cache_key, (keys.clone(), now));
        Ok(keys)
    }

    /// Drops cached settings and the suppression list (after a destination or policy change,
    /// or an erasure submitted, in this process).
    pub fn invalidate_workspace(&self, ws: &WorkspaceId) {
        self.snapshots.remove(ws);
        self.suppressed.remove(ws);
    }

    /// Ingests a parsed request for an authenticated key.
    pub async fn ingest(
        &self,
        key: &ApiKeyRecord,
        body: &ParsedBody<'_>,
        meta: &RequestMeta,
    ) -> Result<IngestOutcome, IngestError> {
        let snap = self.snapshot(&key.workspace_id).await?;
        if meta.ip.is_some_and(|ip| snap.workspace.security.blocks(ip)) {
            return Err(IngestError::Blocked);
        }
        let received_at = self.clock.now();
        let pipeline = Pipeline {
            workspace: &snap.workspace,
            destinations: &snap.destinations,
            keys: &snap.keys,
            ids: self.ids.as_ref(),
            meta,
            received_at,
        };
        let input_bytes = body.items.iter().map(|i| i.get().len()).sum();
        let mut prepared = self
            .gate
            .run(input_bytes, || prepare(&pipeline, body))
            .await
            .map_err(|gate::Busy| IngestError::Busy)?;
        if prepared.events.is_empty() {
            return Err(IngestError::NothingValid {
                rejected: prepared.rejected,
            });
        }
        let suppressed =
            drop_suppressed(&mut prepared, &*self.suppressed(&snap.workspace.id).await?);
        let recorded = if prepared.events.is_empty() {
            Vec::new()
        } else {
            self.events.record(&prepared.events, received_at).await?
        };
        let valid = prepared.events.len();
        let mut fresh = Vec::new();
        let mut items = Vec::new();
        for ((event, event_items), new) in prepared.events.iter().zip(prepared.items).zip(&recorded)
        {
            if *new {
                fresh.push((event.event.event_id, event.event.message_id.clone()));
                items.extend(event_items);
            }
        }
        let messages = pack(
            &snap.workspace.id,
            &snap.destinations,
            items,
            self.config.max_queue_message_bytes,
        );
        if let Err(e) = self.queue.enqueue(&messages).await {
            // Undo, so the client's retry of this request is not taken for a duplicate.
            if let Err(undo) = self.events.forget(&snap.workspace.id, &fresh).await {
                tracing::error!(error = %undo, "could not undo recorded events after a queue failure");
            }
            return Err(IngestError::Store(e));
        }
        let duplicates = valid - fresh.len() + prepared.duplicates;
        let valid = valid + prepared.duplicates + suppressed;
        tracing::info!(
            workspace = %snap.workspace.id,
            accepted = valid,
            duplicates,
            rejected = prepared.rejected.len(),
            suppressed,
            queued_messages = messages.len(),
            "ingested"
        );
        Ok(IngestOutcome {
            accepted: valid,
            duplicates,
            rejected: prepared.rejected,
            invalid_identifiers: prepared.invalid_identifiers,
            suppressed,
            queued_messages: messages.len(),
        })
    }
}

/// Removes the events of suppressed subjects (and their items) from a prepared batch;
/// returns how many went.
fn drop_suppressed(prepared: &mut PreparedBatch, suppressed: &HashSet<String>) -> usize {
    if suppressed.is_empty() {
        return 0;
    }
    let before = prepared.events.len();
    let keep: Vec<bool> = prepared
        .events
        .iter()
        .map(|e| {
            !e.event
                .subjects
                .iter()
                .any(|s| suppressed.contains(&crate::dsr::suppression_token(s)))
        })
        .collect();
    let mut flags = keep.iter();
    prepared.events.retain(|_| *flags.next().unwrap_or(&true));
    let mut flags = keep.iter();
    prepared.items.retain(|_| *flags.next().unwrap_or(&true));
    before - prepared.events.len()
}

#[cfg(test)]
mod tests;

/// The hot paths were rewritten for speed ([`pack`] writes items straight into message bodies
/// and serializes each event's properties once). These cases hold them to the plain versions
/// they replaced (`scrub`'s are in its own module).
#[cfg(test)]
mod hot_path_equivalence {
    use serde_json::json;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::crypto::Sealed;
    use crate::destination::{DestinationId, EventFilter};

    /// The straightforward version: every item serialized on its own, then concatenated.
    fn reference(
        workspace: &WorkspaceId,
        destinations: &[Destination],
        items: Vec<(usize, DeliveryItem)>,
        max_bytes: usize,
    ) -> Vec<Outgoing> {
        let mut per_dest: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (index, item) in items {
            per_dest
                .entry(index)
                .or_default()
                .push(serde_json::to_vec(&item).unwrap());
        }
        let mut out = Vec::new();
        for (index, jsons) in per_dest {
            let d = &destinations[index];
            let head = format!(
                r#"{{"v":{},"workspace_id":{},"destination_id":{},"kind":{},"items":["#,
                QueueBody::VERSION,
                serde_json::to_string(workspace.as_str()).unwrap(),
                serde_json::to_string(d.id.as_str()).unwrap(),
                serde_json::to_string(d.kind.as_str()).unwrap(),
            );
            let mut body = Vec::new();
            let mut count = 0usize;
            for json in jsons {
                if count > 0 && body.len() + json.len() + 3 > max_bytes {
                    body.extend_from_slice(b"]}");
                    out.push(outgoing(workspace, d, std::mem::take(&mut body)));
                    count = 0;
                }
                if count == 0 {
                    body.extend_from_slice(head.as_bytes());
                } else {
                    body.push(b',');
                }
                body.extend_from_slice(&json);
                count += 1;
            }
            if count > 0 {
                body.extend_from_slice(b"]}");
                out.push(outgoing(workspace, d, body));
            }
        }
        out
    }

    fn destination(ws: &WorkspaceId, n: u8, kind: DestinationKind) -> Destination {
        let at = datetime!(2026-03-01 12:00 UTC);
        Destination {
            id: DestinationId::new(&format!("pack{n}")),
            workspace_id: ws.clone(),
            name: format!("{kind}"),
            kind,
            config: json!({}),
            secrets: Sealed(vec![1; 40]),
            secret_hints: json!({}),
            consent_purposes: kind.default_purposes(),
            events: EventFilter::All,
            endpoint: None,
            paused: false,
            created_at: at,
            updated_at: at,
        }
    }

    /// Items of several events, each event to some of three destinations, with properties
    /// that repeat across events, differ only in key order or number type, or are empty.
    fn items() -> Vec<(usize, DeliveryItem)> {
        let properties = [
            json!({"order_id": "A-1", "total": 10.5, "products": [{"sku": "x", "q": 1}]}),
            json!({"order_id": "A-1", "total": 10.5, "products": [{"sku": "x", "q": 1}]}),
            json!({"order_id": "A-2", "total": 10, "note": "caf\u{e9} \"quoted\" \\ \n"}),
            json!({"order_id": "A-2", "total": 10.0, "note": "caf\u{e9} \"quoted\" \\ \n"}),
            json!({}),
            json!({"order_id": "A-3", "tags": ["a", "b"], "nested": {"deep": [1, 2, {"k": null}]}}),
        ];
        let mut out = Vec::new();
        for (n, props) in properties.into_iter().enumerate() {
            let event_id = EventId(Uuid::from_u128(n as u128 + 1));
            for index in [0, 2, 1].into_iter().filter(|i| (n + i) % 4 != 3) {
                let mut user_data = BTreeMap::new();
                if index != 1 {
                    user_data.insert(Field::Email, crate::identity::sha256_hex("a@b.co"));
                }
                if index == 2 {
                    // Not a digest: what the fast path must hand to serde_json.
                    user_data.insert(Field::City, "q\" b\\ nl\n tab\t \u{1} caf\u{e9}".into());
                }
                out.push((
                    index,
                    DeliveryItem {
                        event_id,
                        message_id: MessageId::parse(&format!("m-{n}")).unwrap(),
                        event_type: EventType::Track,
                        name: (n % 2 == 0).then(|| format!("Order {n}")),
                        timestamp: datetime!(2026-03-01 11:59:59.123 UTC),
                        properties: props.clone(),
                        user_data,
                        consent: ForwardedConsent {
                            ad_user_data: (index == 1).then_some(true),
                            ad_personalization: None,
                        },
                        sealed: (n % 3 != 1).then(|| Sealed(vec![n as u8; 30 + index])),
                        suppression: if n % 2 == 1 {
                            vec![crate::identity::sha256_hex(&n.to_string())]
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
        }
        out
    }

    #[test]
    fn pack_writes_exactly_what_serializing_each_item_alone_writes() {
        let ws = WorkspaceId::new(Region::Us, "packtest");
        let destinations = [
            destination(&ws, 1, DestinationKind::MetaCapi),
            destination(&ws, 2, DestinationKind::Ga4),
            destination(&ws, 3, DestinationKind::Tiktok),
        ];
        for max_bytes in [0, 300, 600, 1_000, 2_000, 5_000, MAX_QUEUE_MESSAGE_BYTES] {
            let parts = |messages: Vec<Outgoing>| -> Vec<_> {
                messages
                    .into_iter()
                    .map(|m| (m.kind, m.destination_id, m.workspace_id, m.body))
                    .collect()
            };
            let got = parts(pack(&ws, &destinations, items(), max_bytes));
            let want = parts(reference(&ws, &destinations, items(), max_bytes));
            assert_eq!(got.len(), want.len(), "max_bytes {max_bytes}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    (g.0, &g.1, &g.2),
                    (w.0, &w.1, &w.2),
                    "max_bytes {max_bytes}"
                );
                assert_eq!(
                    String::from_utf8_lossy(&g.3),
                    String::from_utf8_lossy(&w.3),
                    "max_bytes {max_bytes}"
                );
            }
            if max_bytes < 1_000 {
                assert!(got.len() > 3, "max_bytes {max_bytes} splits messages");
            }
        }
    }
}

//! The tracking API's wire format: limits, request facts, parsing a body, what is refused.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::deliver::{OpenedItem, Target};
use crate::destination::{DestinationId, DestinationKind};
use crate::error::{KeyError, StoreError};
use crate::event::{EventType, MessageId};
use crate::keys::KeyRefusal;
use crate::workspace::Region;

use super::context::WireContext;
use super::inherit::{self, MAX_BATCH_OBJECT_KEYS, MAX_OBJECT_KEYS};
use super::scrub;

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
    /// Browser traffic (the request has an `Origin` header): the request's IP address and
    /// user agent are the visitor's, and stand in for an event's missing `context.ip` and
    /// `context.userAgent`. From a server they are the server's own, and are not used unless
    /// the workspace opts in ([`ConsentPolicy::request_ip_as_client_ip`]).
    ///
    /// [`ConsentPolicy::request_ip_as_client_ip`]: crate::consent::ConsentPolicy::request_ip_as_client_ip
    pub browser: bool,
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
            .field("browser", &self.browser)
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

/// An accepted event that a destination will not take as it is, or a member the tracking API
/// ignores: answered in the ingest response's `warnings` (an extra member, Segment clients
/// ignore it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The event's index in the request.
    pub index: usize,
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The destination that will drop the event (none for `unknown_member`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<DestinationKind>,
    /// A stable name (`purchase_requires_currency`, `unknown_member`).
    pub rule: &'static str,
    pub detail: String,
}

/// A destination requirement an event does not meet, so the destination's connector drops it
/// (`tracklayer_connectors::requirements`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub rule: &'static str,
    pub detail: String,
}

/// Checks an event, as a destination would receive it, against that destination's
/// requirements. The connectors' own rules, handed to ingest (`core` does not know the
/// connectors), so that ingest warns of exactly what delivery will drop.
pub type RequirementCheck = fn(&Target<'_>, &OpenedItem) -> Option<Unmet>;

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
    /// A browser request from an origin the workspace does not allow (CORS).
    #[error("requests from origin {origin} are not allowed by the workspace")]
    OriginRefused { origin: String },
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
    pub(super) endpoint: Endpoint,
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

/// Parses a (decompressed) request body. Item-level validation happens in [`prepare`](super::prepare()).
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

#[derive(Default)]
pub(super) struct WireMessage {
    pub(super) kind: Option<Value>,
    pub(super) message_id: Option<Value>,
    pub(super) user_id: Option<Value>,
    pub(super) anonymous_id: Option<Value>,
    pub(super) previous_id: Option<Value>,
    pub(super) group_id: Option<Value>,
    pub(super) event: Option<Value>,
    pub(super) name: Option<Value>,
    pub(super) properties: Option<Value>,
    pub(super) traits: Option<Value>,
    pub(super) context: Option<WireContext>,
    pub(super) integrations: Option<Value>,
    pub(super) timestamp: Option<Value>,
    pub(super) original_timestamp: Option<Value>,
    pub(super) sent_at: Option<Value>,
    /// Top-level members that are not Segment's, in order (at most [`MAX_UNKNOWN_MEMBERS`]),
    /// noted while the event is read (one pass).
    pub(super) unknown: Vec<String>,
}

/// Read by hand rather than derived so that one pass also notes the members that are not
/// Segment's (a derived reader skips them silently): a duplicate member is an error, as derived.
impl<'de> Deserialize<'de> for WireMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = WireMessage;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct WireMessage")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireMessage, A::Error> {
                let mut m = WireMessage::default();
                let mut seen = 0u32;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "context" {
                        if seen & (1 << CONTEXT_BIT) != 0 {
                            return Err(serde::de::Error::duplicate_field("context"));
                        }
                        seen |= 1 << CONTEXT_BIT;
                        m.context = Some(map.next_value()?);
                        continue;
                    }
                    let (slot, bit) = match key.as_ref() {
                        "type" => (&mut m.kind, 0),
                        "messageId" => (&mut m.message_id, 1),
                        "userId" => (&mut m.user_id, 2),
                        "anonymousId" => (&mut m.anonymous_id, 3),
                        "previousId" => (&mut m.previous_id, 4),
                        "groupId" => (&mut m.group_id, 5),
                        "event" => (&mut m.event, 6),
                        "name" => (&mut m.name, 7),
                        "properties" => (&mut m.properties, 8),
                        "traits" => (&mut m.traits, 9),
                        "integrations" => (&mut m.integrations, 11),
                        "timestamp" => (&mut m.timestamp, 12),
                        "originalTimestamp" => (&mut m.original_timestamp, 13),
                        "sentAt" => (&mut m.sent_at, 14),
                        other => {
                            if !SEGMENT_MEMBERS.contains(&other)
                                && m.unknown.len() < MAX_UNKNOWN_MEMBERS
                            {
                                m.unknown.push(other.to_owned());
                            }
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if seen & (1 << bit) != 0 {
                        // The member's own name, as a derived reader names it ('static).
                        let name = SEGMENT_MEMBERS.iter().find(|m| **m == key.as_ref());
                        return Err(serde::de::Error::duplicate_field(name.unwrap_or(&"member")));
                    }
                    seen |= 1 << bit;
                    *slot = map.next_value()?;
                }
                Ok(m)
            }
        }
        d.deserialize_map(Members)
    }
}

/// Why one event is refused: the field at fault (a JSON pointer) and what is wrong.
pub(super) struct Fail(pub(super) String, pub(super) String);

pub(super) fn fail(field: &str, detail: impl Into<String>) -> Fail {
    Fail(field.to_owned(), detail.into())
}

pub(super) fn as_id(v: &Option<Value>, field: &str) -> Result<Option<String>, Fail> {
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
        return Err(too_many_keys(field, m.len()));
    }
    Ok(m)
}

fn too_many_keys(field: &str, keys: usize) -> Fail {
    fail(
        field,
        format!("has {keys} keys; at most {MAX_OBJECT_KEYS} are allowed"),
    )
}

/// The bit of `context` among the members a [`WireMessage`] has seen.
const CONTEXT_BIT: u32 = 10;

/// Parse: one event's JSON. An event over [`MAX_EVENT_BYTES`] is refused, still naming its
/// messageId so the client can tell which one it was.
pub(super) fn read_event(
    raw: &RawValue,
    message_id_out: &mut Option<String>,
) -> Result<WireMessage, Fail> {
    if raw.get().len() > MAX_EVENT_BYTES {
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
    serde_json::from_str(raw.get()).map_err(|e| {
        let detail = if e.is_data() {
            format!("event must be an object: {e}")
        } else {
            format!("event is not valid JSON: {e}")
        };
        fail("/", detail)
    })
}

/// An event whose fields passed validation: what the later stages read.
pub(super) struct Validated {
    pub(super) message_id: MessageId,
    pub(super) event_type: EventType,
    pub(super) user_id: Option<String>,
    pub(super) anonymous_id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) properties: Map<String, Value>,
    pub(super) traits: Map<String, Value>,
    /// The event's own `context` and `integrations`; the batch's are read through them.
    pub(super) context: Map<String, Value>,
    pub(super) integrations: Map<String, Value>,
    pub(super) timestamp: OffsetDateTime,
}

/// Validate: every field of the event, in the order a client reads its rejections.
/// `new_message_id` gives the id of an event that brought none.
pub(super) fn validate(
    wire: WireMessage,
    body: &ParsedBody<'_>,
    received_at: OffsetDateTime,
    new_message_id: impl FnOnce() -> MessageId,
    message_id_out: &mut Option<String>,
) -> Result<Validated, Fail> {
    // messageId first, so that every later rejection can name it.
    let message_id = match as_id(&wire.message_id, "/messageId")? {
        Some(s) => {
            *message_id_out = Some(s.clone());
            MessageId::parse(&s).map_err(|d| fail("/messageId", d))?
        }
        None => new_message_id(),
    };
    let event_type = event_type(&wire.kind, body.endpoint)?;
    let user_id = as_id(&wire.user_id, "/userId")?;
    let anonymous_id = as_id(&wire.anonymous_id, "/anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(fail("/userId", "userId or anonymousId is required"));
    }
    let name = event_name(event_type, &wire)?;
    let properties = bounded_object(wire.properties, "/properties")?;
    let traits = bounded_object(wire.traits, "/traits")?;
    let context = match wire.context {
        None => Map::new(),
        Some(WireContext::Other) => return Err(fail("/context", "must be an object")),
        Some(WireContext::Object { members, .. }) if members > MAX_OBJECT_KEYS => {
            return Err(too_many_keys("/context", members))
        }
        Some(WireContext::Object { read, .. }) => read,
    };
    let integrations = bounded_object(wire.integrations, "/integrations")?;
    let timestamp = timestamp(
        received_at,
        &wire.sent_at,
        &body.sent_at,
        &wire.original_timestamp,
        &wire.timestamp,
    )?;
    Ok(Validated {
        message_id,
        event_type,
        user_id,
        anonymous_id,
        name,
        properties,
        traits,
        context,
        integrations,
        timestamp,
    })
}

/// The event's `type`: required in a batch, and the endpoint's own on a single-event endpoint.
fn event_type(kind: &Option<Value>, endpoint: Endpoint) -> Result<EventType, Fail> {
    match (kind, endpoint) {
        (None | Some(Value::Null), Endpoint::Single(t)) => Ok(t),
        (None | Some(Value::Null), Endpoint::Batch) => {
            Err(fail("/type", "type is required in a batch"))
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
            Ok(t)
        }
        (Some(_), _) => Err(fail("/type", "type must be a string")),
    }
}

/// The event's name (`event` of a track, `name` of a page or screen), and the ids an alias or
/// group call requires.
fn event_name(event_type: EventType, wire: &WireMessage) -> Result<Option<String>, Fail> {
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
    Ok(name)
}

/// Segment's skew correction: timestamp = receivedAt − (sentAt − originalTimestamp), to the
/// millisecond. The event's `sentAt` wins over the batch's.
fn timestamp(
    received_at: OffsetDateTime,
    own_sent_at: &Option<Value>,
    batch_sent_at: &Option<Value>,
    original_timestamp: &Option<Value>,
    explicit: &Option<Value>,
) -> Result<OffsetDateTime, Fail> {
    let sent_at = match as_time(own_sent_at, "/sentAt")? {
        Some(t) => Some(t),
        None => as_time(batch_sent_at, "/sentAt")
            .map_err(|Fail(_, d)| fail("/sentAt", format!("batch {d}")))?,
    };
    let original = as_time(original_timestamp, "/originalTimestamp")?;
    let explicit = as_time(explicit, "/timestamp")?;
    let timestamp = match (original, sent_at, explicit) {
        // Far-apart sentAt and originalTimestamp (years 0 and 9999) would move it out of the
        // range of a date-time, which cannot be stored: refused, naming the field.
        (Some(orig), Some(sent), _) => received_at
            .checked_sub(sent - orig)
            .filter(|t| (0..=9999).contains(&t.year()))
            .ok_or_else(|| {
                fail(
                    "/originalTimestamp",
                    "receivedAt − (sentAt − originalTimestamp) is not a date-time of years 0 to 9999",
                )
            })?,
        (_, _, Some(ts)) => ts,
        (Some(orig), None, None) => orig,
        (None, _, None) => received_at,
    };
    Ok(crate::clock::truncate_millis(timestamp))
}

/// The members of a Segment event ("Spec: Common Fields" and the fields of each call), and
/// those Segment's libraries add (`channel`, `_metadata`, `writeKey`): any other top-level
/// member (`propertis`) is ignored, with a warning.
const SEGMENT_MEMBERS: &[&str] = &[
    "type",
    "messageId",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "event",
    "name",
    "category",
    "properties",
    "traits",
    "context",
    "integrations",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "version",
    "channel",
    "writeKey",
    "_metadata",
];

/// At most this many unknown members are named per event.
const MAX_UNKNOWN_MEMBERS: usize = 10;
